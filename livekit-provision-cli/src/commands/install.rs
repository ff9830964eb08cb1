//! `livekit-provision install [--version V] [--force] [--sha256 HEX]` and `rollback`.

use livekit_provision::fetch::{InstallOutcome, Sha256Digest};
use livekit_provision::publish::{self, StateLock};
use livekit_provision::{LivekitVersion, OperatorConfig, SecretName};

use super::Ctx;
use crate::cli::InstallArgs;
use crate::output::{CliError, Exit};
use crate::progress::Progress;

pub fn install(ctx: &Ctx, args: &InstallArgs) -> Result<Exit, CliError> {
    let store = ctx.open_store()?;
    let version = match &args.version {
        Some(text) => LivekitVersion::parse(text).map_err(|e| {
            CliError::msg(
                format!("--version {e}"),
                Some("pass e.g. --version v1.7.2".to_owned()),
            )
        })?,
        None => match store.get(&SecretName::LIVEKIT_VERSION)? {
            Some(v) => LivekitVersion::parse(v.expose().trim()).map_err(|e| {
                CliError::msg(
                    format!("secret LIVEKIT_VERSION {e}"),
                    Some(
                        "fix it with `livekit-provision secrets set LIVEKIT_VERSION v1.7.2`"
                            .to_owned(),
                    ),
                )
            })?,
            None => {
                return Err(CliError::msg(
                    "no version to install: LIVEKIT_VERSION is not set",
                    Some("pass --version v1.7.2, or pin it with `livekit-provision secrets set LIVEKIT_VERSION v1.7.2`".to_owned()),
                ));
            }
        },
    };
    let config = OperatorConfig::load(&ctx.state)?;
    let mut request = livekit_provision::binary::install_request(
        version.clone(),
        &config.settings,
        &ctx.binary_options(),
    )?;
    let pinned = match &args.sha256 {
        Some(hex) => Some(("--sha256", hex.clone())),
        None => store
            .get(&SecretName::LIVEKIT_SHA256)?
            .map(|s| ("LIVEKIT_SHA256", s.expose().to_owned())),
    };
    if let Some((from, hex)) = pinned {
        let digest = livekit_provision::validate::sha256_hex(&hex)
            .ok()
            .and_then(|hex| Sha256Digest::from_hex(&hex));
        request.pinned_sha256 = Some(digest.ok_or_else(|| {
            CliError::msg(
                format!("{from} {hex:?} is not a SHA-256 (64 hex digits)"),
                Some(
                    "pass the SHA-256 of the release tarball, as listed in its checksums.txt"
                        .to_owned(),
                ),
            )
        })?);
    }
    request.force = args.force;
    let progress = ctx.progress();
    request.events = progress.as_ref().map(Progress::sink);

    publish::prepare(&ctx.state)?;
    let _lock = StateLock::acquire(&ctx.state, ctx.lock_waiter())?;
    let runtime = tokio_runtime()?;
    let outcome = runtime.block_on(livekit_provision::install(&ctx.state, &request));
    drop(progress);
    let outcome = outcome?;
    let p = &ctx.printer;
    let (verb, sha) = match &outcome {
        InstallOutcome::Installed { sha256, .. } => ("installed", Some(sha256.to_hex())),
        InstallOutcome::Reactivated { sha256, .. } => ("switched back to", Some(sha256.to_hex())),
        _ => ("already installed:", None),
    };
    if p.json {
        p.json(&serde_json::json!({
            "outcome": verb.trim_end_matches(':'),
            "version": version.to_string(),
            "sha256": sha,
            "path": ctx.state.livekit_bin(),
        }));
    } else {
        p.data(format!(
            "{verb} livekit-server {version}{}",
            sha.map(|s| format!(" (sha256 {s})")).unwrap_or_default()
        ));
        if verb != "already installed:" {
            p.status("running media keep the old binary until `livekit-provision restart`");
        }
    }
    Ok(Exit::Success)
}

pub fn rollback(ctx: &Ctx) -> Result<Exit, CliError> {
    publish::prepare(&ctx.state)?;
    let _lock = StateLock::acquire(&ctx.state, ctx.lock_waiter())?;
    let store = ctx.open_store()?;
    let outcome = livekit_provision::rollback(&ctx.state)?;
    // Pin what is now active, or the next `ensure` would upgrade straight back.
    store.set(
        &SecretName::LIVEKIT_VERSION,
        &livekit_provision::Secret::new(outcome.to.tag()),
    )?;
    let p = &ctx.printer;
    if p.json {
        p.json(&serde_json::json!({
            "from": outcome.from.to_string(),
            "to": outcome.to.to_string(),
        }));
    } else {
        p.data(format!(
            "rolled back livekit-server {} -> {}",
            outcome.from, outcome.to
        ));
        p.status(format!(
            "LIVEKIT_VERSION is now pinned to {}; running media keep the old binary until `livekit-provision restart`",
            outcome.to.tag()
        ));
    }
    Ok(Exit::Success)
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::msg(format!("cannot start the download runtime: {e}"), None))
}
