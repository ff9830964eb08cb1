//! `livekit-provision exec livekit-server|lk-backend` and `livekit-provision units`: the media
//! under an outside supervisor (`media_owner: external`).
//!
//! `exec` refuses, with exit code 78 (`EX_CONFIG`), when the state is not ready: settings that
//! do not load, `media_owner` not `external`, files missing or disagreeing, no binary, no
//! `backend_command` for lk-backend, the process already running. Otherwise it becomes the
//! program ([`exec_in_place`]: the same cleaned environment as the daemon's detached start, the
//! same pid file and started record), so the unit's pid is the program's.

use std::time::SystemTime;

use livekit_provision::OperatorConfig;
use livekit_provision::settings::MediaOwner;
use livekit_provision::supervise::spawn::exec_in_place;
use livekit_provision::supervise::{PidFileState, ProcessSpec, inspect, listening_on};
use livekit_provision::units::{UnitOptions, render};

use super::Ctx;
use crate::cli::{ExecArgs, UnitsArgs};
use crate::output::{CliError, Exit};

/// Become the media process `args.name`; returns (exit 78) only when that was refused or
/// failed, after printing why.
pub fn exec(ctx: &Ctx, args: &ExecArgs) -> Exit {
    let error = match ready_spec(ctx, &args.name) {
        Ok(spec) => CliError::from(exec_in_place(
            &ctx.state,
            &spec,
            std::env::vars_os(),
            SystemTime::now(),
        )),
        Err(refusal) => refusal,
    };
    error.report();
    Exit::Refused
}

/// The spec of `name` when the state is ready for it to start, else why not.
fn ready_spec(ctx: &Ctx, name: &str) -> Result<ProcessSpec, CliError> {
    let config = OperatorConfig::load(&ctx.state)?;
    if config.settings.media_owner != MediaOwner::External {
        return Err(CliError::msg(
            format!(
                "{name} is owned by the daemon (media_owner: {}), not by an outside supervisor",
                config.settings.media_owner
            ),
            Some(format!(
                "set `media_owner: external` in {} (the daemon then never starts or signals the media)",
                ctx.state.settings_file().display()
            )),
        ));
    }
    let spec = super::media::specs(ctx, &config.settings)?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| {
            CliError::msg(
                format!("{name} is not configured: provision.yaml sets no backend_command"),
                Some("set backend_command in provision.yaml, or do not run lk-backend".to_owned()),
            )
        })?;
    if let PidFileState::Live(process) = inspect(&ctx.state, name)? {
        return Err(CliError::msg(
            format!("{name} is already running (pid {})", process.pid()),
            Some(format!(
                "stop it first (`kill {}`); only one supervisor may own it",
                process.pid()
            )),
        ));
    }
    if let Some(owner) = spec.health.and_then(|a| listening_on(a.port())) {
        return Err(CliError::msg(
            format!(
                "port {} is already in use by {} (pid {})",
                owner.port, owner.name, owner.pid
            ),
            Some(format!(
                "stop it first (`kill {}`), then start this unit again",
                owner.pid
            )),
        ));
    }
    Ok(spec)
}

pub fn units(ctx: &Ctx, args: &UnitsArgs) -> Result<Exit, CliError> {
    let config = OperatorConfig::load(&ctx.state)?;
    if config.settings.media_owner != MediaOwner::External {
        ctx.printer.warn(format!(
            "media_owner is {} in {}: set `media_owner: external` before enabling the media units",
            config.settings.media_owner,
            ctx.state.settings_file().display()
        ));
    }
    let cli = std::env::current_exe().map_err(|e| {
        CliError::msg(
            format!("cannot tell where livekit-provision is installed: {e}"),
            None,
        )
    })?;
    let units = render(&UnitOptions {
        daemon: cli.with_file_name("livekit-provision-daemon"),
        cli,
        state: ctx.state.root().to_owned(),
        user: args.user.clone(),
        backend: config.settings.backend_command.is_some(),
    });
    match &args.out_dir {
        Some(dir) => {
            for unit in &units {
                let path = dir.join(&unit.name);
                livekit_provision::fsio::write_file(&path, unit.text.as_bytes(), 0o644).map_err(
                    |e| CliError::msg(format!("cannot write {}: {e}", path.display()), None),
                )?;
                ctx.printer.status(format!("wrote {}", path.display()));
            }
        }
        None => {
            for unit in &units {
                ctx.printer.data(format!("# ==> {} <==", unit.name));
                ctx.printer.data(&unit.text);
            }
        }
    }
    Ok(Exit::Success)
}
