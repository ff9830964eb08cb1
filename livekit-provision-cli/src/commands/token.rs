//! `livekit-provision token --identity ID [--room R] [--ttl 6h] [--admin]`: the daemon's
//! `token.create` result, made by the same function ([`TokenCreateResult::mint`]); `--json`
//! prints it, the human output is the token alone.

use std::time::SystemTime;

use livekit_provision::token::{TokenRequest, VideoGrants};
use livekit_provision_daemon::protocol::TokenCreateResult;

use super::Ctx;
use crate::cli::TokenArgs;
use crate::output::{CliError, Exit};

pub fn run(ctx: &Ctx, args: &TokenArgs) -> Result<Exit, CliError> {
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
    let result = TokenCreateResult::mint(&ctx.state, request, SystemTime::now())?;
    if ctx.printer.json {
        ctx.printer.json(&result);
    } else {
        ctx.printer.data(&result.token);
    }
    Ok(Exit::Success)
}
