//! `livekit-provision token --identity ID [--room R] [--ttl 6h] [--admin]`.

use std::time::SystemTime;

use livekit_provision::provisioned_credentials;
use livekit_provision::token::{TokenRequest, VideoGrants, mint};
use livekit_provision::validate::TokenLimits;

use super::Ctx;
use crate::cli::TokenArgs;
use crate::output::{CliError, Exit};

pub fn run(ctx: &Ctx, args: &TokenArgs) -> Result<Exit, CliError> {
    let creds = provisioned_credentials(&ctx.state)?;
    let grants = match (&args.room, args.admin) {
        (_, true) => {
            let mut g = VideoGrants::admin();
            if let Some(room) = &args.room {
                g.room = Some(room.clone());
                g.room_join = Some(true);
            }
            g
        }
        (Some(room), false) => VideoGrants::join(room.clone()),
        (None, false) => {
            return Err(CliError::msg(
                "a token needs a room to join, or --admin",
                Some("pass --room NAME (or --admin for a room-administration token)".to_owned()),
            ));
        }
    };
    let mut request = TokenRequest::new(args.identity.clone(), grants);
    request.name.clone_from(&args.name);
    request.ttl = args.ttl;
    request.limits = TokenLimits::provisioned(&ctx.state);
    let token = mint(&creds, &request, SystemTime::now())?;
    if ctx.printer.json {
        ctx.printer
            .json(&serde_json::json!({ "token": token, "api_key": creds.key.as_str() }));
    } else {
        ctx.printer.data(token);
    }
    Ok(Exit::Success)
}
