//! `livekit-provision render [--show-secrets]`: the files `ensure` would write, secrets redacted;
//! the daemon's `render` result ([`RenderResult`]), printed as JSON with `--json` and rendered
//! otherwise.

use std::time::SystemTime;

use livekit_provision::{CredentialSource, ManagedFile};
use livekit_provision_daemon::protocol::RenderResult;

use super::Ctx;
use crate::cli::RenderArgs;
use crate::output::{CliError, Exit};

pub fn run(ctx: &Ctx, args: &RenderArgs) -> Result<Exit, CliError> {
    let store = ctx.open_store()?;
    let result = RenderResult::from(livekit_provision::admin::preview(
        &ctx.state,
        store.as_ref(),
        &livekit_provision::local_addresses(),
        SystemTime::now(),
        args.show_secrets,
    )?);
    let p = &ctx.printer;
    if p.json {
        p.json(&result);
        return Ok(Exit::Success);
    }
    match &result.credentials {
        CredentialSource::Minted => p.status(
            "note: the secret store holds no credentials yet; `ensure` will mint them (shown here as a sample)",
        ),
        CredentialSource::Adopted { from } => {
            p.status(format!("note: `ensure` will adopt the credentials of {from} into the store"));
        }
        CredentialSource::Store => {}
    }
    // In the order `ensure` lists them (livekit.yaml first), each under its path.
    for file in ManagedFile::ALL {
        if let Some(text) = result.files.get(file.file_name()) {
            p.data(format!("==> {} <==", ctx.state.managed(file).display()));
            p.data(text.trim_end_matches('\n'));
        }
    }
    Ok(Exit::Success)
}
