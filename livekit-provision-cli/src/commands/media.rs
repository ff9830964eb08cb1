//! `livekit-provision start|stop|restart|status`: the media processes.
//!
//! These act directly on the processes (pid files with identity, detached starts). Starting never
//! touches a process that is already running.

use std::time::Instant;

use livekit_provision::media::media_specs;
use livekit_provision::supervise::{LIVEKIT_SERVER, LK_BACKEND, RestartPolicy};
use livekit_provision::{DiskTriple, Ensured, OperatorConfig, Supervisor};

use super::Ctx;
use crate::cli::StopArgs;
use crate::output::{CliError, Exit};

fn supervisor(ctx: &Ctx) -> Supervisor {
    Supervisor::new(
        ctx.state.clone(),
        std::env::vars_os(),
        RestartPolicy::default(),
    )
}

pub fn start(ctx: &Ctx) -> Result<Exit, CliError> {
    let config = OperatorConfig::load(&ctx.state)?;
    let disk = DiskTriple::read(&ctx.state);
    let specs = media_specs(
        &ctx.state,
        &config.settings,
        ctx.livekit_bin.as_deref(),
        &disk,
    )?;
    let mut sup = supervisor(ctx);
    let mut results = Vec::new();
    for spec in &specs {
        let outcome = sup.ensure_running(spec, Instant::now())?;
        let line = match &outcome {
            Ensured::Started { pid } => format!("started {} (pid {pid})", spec.name),
            Ensured::AlreadyRunning { pid, healthy: true } => {
                format!("{} is already running (pid {pid}), healthy", spec.name)
            }
            Ensured::AlreadyRunning {
                pid,
                healthy: false,
            } => {
                format!(
                    "{} is already running (pid {pid}) but not answering its health probe; left alone",
                    spec.name
                )
            }
            Ensured::BackingOff { .. } => format!("{} is backing off after a crash", spec.name),
            Ensured::Failed { reason } => format!("{} failed: {reason}", spec.name),
        };
        results.push(serde_json::json!({ "name": spec.name, "outcome": line }));
        ctx.printer.status(line);
    }
    if ctx.printer.json {
        ctx.printer.json(&results);
    }
    Ok(Exit::Success)
}

pub fn stop(ctx: &Ctx, args: &StopArgs, then_start: bool) -> Result<Exit, CliError> {
    let mut sup = supervisor(ctx);
    // lk-backend first: it talks to livekit-server.
    for name in [LK_BACKEND, LIVEKIT_SERVER] {
        let outcome = sup.stop(name, args.grace)?;
        ctx.printer.status(format!("{name}: {outcome:?}"));
    }
    if then_start {
        return start(ctx);
    }
    Ok(Exit::Success)
}

pub fn status(ctx: &Ctx) -> Result<Exit, CliError> {
    let mut sup = supervisor(ctx);
    let mut statuses = Vec::new();
    for name in [LIVEKIT_SERVER, LK_BACKEND] {
        statuses.push(sup.status(name)?);
    }
    let p = &ctx.printer;
    if p.json {
        p.json(&serde_json::json!({ "processes": statuses }));
    } else {
        for s in &statuses {
            let state = match (s.running, s.healthy, &s.failed) {
                (_, _, Some(why)) => format!("failed: {why}"),
                (true, true, _) => "running, healthy".to_owned(),
                (true, false, _) => "running, not ready".to_owned(),
                (false, _, _) => "stopped".to_owned(),
            };
            let pid = s.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
            let pending = if s.restart_pending {
                ", restart pending"
            } else {
                ""
            };
            p.data(format!("{:<15} {state}{pid}{pending}", s.name));
        }
    }
    Ok(Exit::Success)
}
