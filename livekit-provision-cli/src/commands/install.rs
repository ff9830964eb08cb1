//! `livekit-provision install [--version V] [--force] [--sha256 HEX]` and `rollback`: the
//! daemon's `install` and `rollback` results ([`InstallResult`], [`RollbackResult`]), printed as
//! JSON with `--json` and rendered otherwise.

use livekit_provision::LivekitVersion;
use livekit_provision::admin::{self, InstallChoice};
use livekit_provision::fetch::Sha256Digest;
use livekit_provision_daemon::protocol::{InstallResult, InstallVerdict, RollbackResult};

use super::Ctx;
use crate::cli::InstallArgs;
use crate::output::{CliError, Exit};
use crate::progress::Progress;

pub fn install(ctx: &Ctx, args: &InstallArgs) -> Result<Exit, CliError> {
    let version = args
        .version
        .as_deref()
        .map(|text| {
            LivekitVersion::parse(text).map_err(|e| {
                CliError::msg(
                    format!("--version {e}"),
                    Some("pass e.g. --version v1.7.2".to_owned()),
                )
            })
        })
        .transpose()?;
    let sha256 = args
        .sha256
        .as_deref()
        .map(|hex| {
            hex.parse::<Sha256Digest>().map_err(|_| {
                CliError::msg(
                    format!("--sha256 {hex:?} is not a SHA-256 (64 hex digits)"),
                    Some(
                        "pass the SHA-256 of the release tarball, as listed in its checksums.txt"
                            .to_owned(),
                    ),
                )
            })
        })
        .transpose()?;
    let store = ctx.open_store()?;
    let progress = ctx.progress();
    let choice = InstallChoice {
        version,
        sha256,
        force: args.force,
        events: progress.as_ref().map(Progress::sink),
    };
    let runtime = tokio_runtime()?;
    let installed = runtime.block_on(admin::install(
        &ctx.state,
        store.as_ref(),
        choice,
        &ctx.binary_options(),
        ctx.lock_waiter(),
    ));
    drop(progress);
    let result = InstallResult::from(installed?);
    let p = &ctx.printer;
    if p.json {
        p.json(&result);
        return Ok(Exit::Success);
    }
    let verb = match result.outcome {
        InstallVerdict::Installed => "installed",
        InstallVerdict::Reactivated => "switched back to",
        _ => "already installed:",
    };
    p.data(format!(
        "{verb} livekit-server {}{}",
        result.version,
        result
            .sha256
            .as_ref()
            .map(|s| format!(" (sha256 {s})"))
            .unwrap_or_default()
    ));
    if result.outcome != InstallVerdict::AlreadyInstalled {
        p.status("running media keep the old binary until `livekit-provision restart`");
    }
    Ok(Exit::Success)
}

pub fn rollback(ctx: &Ctx) -> Result<Exit, CliError> {
    let store = ctx.open_store()?;
    // Pins what is now active, or the next `ensure` would upgrade straight back.
    let result = RollbackResult::from(admin::rollback(
        &ctx.state,
        store.as_ref(),
        ctx.lock_waiter(),
    )?);
    let p = &ctx.printer;
    if p.json {
        p.json(&result);
    } else {
        p.data(format!(
            "rolled back livekit-server {} -> {}",
            result.from, result.to
        ));
        p.status(format!(
            "LIVEKIT_VERSION is now pinned to v{}; running media keep the old binary until `livekit-provision restart`",
            result.to
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
