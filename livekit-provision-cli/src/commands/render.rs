//! `livekit-provision render [--show-secrets]`: the files `ensure` would write, secrets redacted.

use std::time::SystemTime;

use livekit_provision::CredentialSource;

use super::Ctx;
use crate::cli::RenderArgs;
use crate::output::{CliError, Exit};

pub fn run(ctx: &Ctx, args: &RenderArgs) -> Result<Exit, CliError> {
    let store = ctx.open_store()?;
    let preview = livekit_provision::admin::preview(
        &ctx.state,
        store.as_ref(),
        &livekit_provision::local_addresses(),
        SystemTime::now(),
        args.show_secrets,
    )?;
    let p = &ctx.printer;
    if p.json {
        let files: serde_json::Map<String, serde_json::Value> = preview
            .files
            .iter()
            .map(|(file, text)| (file.file_name().to_owned(), text.clone().into()))
            .collect();
        p.json(&serde_json::json!({
            "credentials": preview.credentials,
            "files": files,
        }));
    } else {
        match preview.credentials {
            CredentialSource::Minted => p.status(
                "note: the secret store holds no credentials yet; `ensure` will mint them (shown here as a sample)",
            ),
            CredentialSource::Adopted { from } => {
                p.status(format!("note: `ensure` will adopt the credentials of {from} into the store"));
            }
            CredentialSource::Store => {}
        }
        for (file, text) in &preview.files {
            p.data(format!("==> {} <==", ctx.state.managed(*file).display()));
            p.data(text.trim_end_matches('\n'));
        }
    }
    Ok(Exit::Success)
}
