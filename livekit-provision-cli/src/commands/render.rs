//! `livekit-provision render [--show-secrets]`: the files `ensure` would write, secrets redacted.

use std::time::SystemTime;

use livekit_provision::resolve::{ResolveContext, resolve};
use livekit_provision::{CredentialSource, DiskTriple, ManagedFile, OperatorConfig, render, sys};

use super::Ctx;
use crate::cli::RenderArgs;
use crate::output::{CliError, Exit};

pub fn run(ctx: &Ctx, args: &RenderArgs) -> Result<Exit, CliError> {
    let store = ctx.open_store()?;
    let config = OperatorConfig::load(&ctx.state)?;
    let disk = DiskTriple::read(&ctx.state);
    let local = sys::local_addresses();
    let resolution = resolve(
        store.as_ref(),
        &ResolveContext {
            state: &ctx.state,
            settings: &config.settings,
            extra: &config.extra,
            disk: &disk,
            local_addresses: &local,
            now: SystemTime::now(),
            dry_run: true,
        },
    )?;
    let rendered = render(&resolution.inputs);
    let show = |text: &str| {
        if args.show_secrets {
            text.to_owned()
        } else {
            resolution.inputs.redact(text)
        }
    };
    let p = &ctx.printer;
    if p.json {
        let files: serde_json::Map<String, serde_json::Value> = ManagedFile::ALL
            .iter()
            .map(|f| (f.file_name().to_owned(), show(rendered.get(*f)).into()))
            .collect();
        p.json(&serde_json::json!({
            "credentials": resolution.credentials_source,
            "files": files,
        }));
    } else {
        match resolution.credentials_source {
            CredentialSource::Minted => p.status(
                "note: the secret store holds no credentials yet; `ensure` will mint them (shown here as a sample)",
            ),
            CredentialSource::Adopted { from } => {
                p.status(format!("note: `ensure` will adopt the credentials of {from} into the store"));
            }
            CredentialSource::Store => {}
        }
        for file in ManagedFile::ALL {
            p.data(format!("==> {} <==", ctx.state.managed(file).display()));
            p.data(show(rendered.get(file)).trim_end_matches('\n'));
        }
    }
    Ok(Exit::Success)
}
