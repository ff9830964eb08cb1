//! `livekit-provision start|stop|restart|status`: the media processes.
//!
//! When a daemon serves the state directory, these go through its socket (it supervises the
//! media; acting beside it would race it). Otherwise they act directly: identity pid files,
//! detached starts. Starting never touches a process that is already running. Without a daemon
//! the node (settings, files, binary) is read once per command ([`NodeSnapshot`]), or taken from
//! the `ensure` run before (`ensure --start`).

use std::collections::BTreeMap;
use std::time::SystemTime;

use livekit_provision::NodeSnapshot;
use livekit_provision::rotate::Epoch;
use livekit_provision_daemon::media;
use livekit_provision_daemon::protocol::{
    self, MediaProcess, NoParams, StartResult, StatusResult, StopParams, StopResult,
};
use livekit_provision_daemon::supervise::{LIVEKIT_SERVER, MEDIA, RestartPolicy};
use livekit_provision_daemon::{Ensured, ProcessStatus, Supervisor};
use livekit_provision_daemon::{media_processes, status_without_daemon};

use super::{Ctx, DAEMON_TIMEOUT};
use crate::cli::StopArgs;
use crate::output::{CliError, Exit, count};

fn supervisor(ctx: &Ctx) -> Supervisor {
    Supervisor::new(
        ctx.state.clone(),
        std::env::vars_os(),
        RestartPolicy::default(),
    )
}

/// The node as it is now, the binary chosen with `--livekit-bin` first.
fn read_node(ctx: &Ctx) -> Result<NodeSnapshot, CliError> {
    Ok(NodeSnapshot::read(&ctx.state, ctx.livekit_bin.as_deref())?)
}

/// `start`: through the daemon when one runs, else here. `after_ensure` is the node the
/// `ensure` run just before left (`ensure --start`), used instead of reading it again.
pub fn start(ctx: &Ctx, after_ensure: Option<NodeSnapshot>) -> Result<Exit, CliError> {
    if let Some(answer) = ctx.via_daemon::<protocol::Start>(&NoParams {}, DAEMON_TIMEOUT)? {
        print_processes(ctx, &answer, &answer.processes);
        return Ok(Exit::Success);
    }
    let node = match after_ensure {
        Some(node) => node,
        None => read_node(ctx)?,
    };
    // Never on media an outside supervisor owns, nor beside a control plane a host embeds.
    media::refuse_if_external(&node.config.settings)?;
    media::refuse_if_hosted(&ctx.state)?;
    // A start ends the operator's stop: a control plane started later keeps them up.
    media::clear_stop(&ctx.state)?;
    let (processes, failed) = start_here(ctx, &mut supervisor(ctx), &node)?;
    if ctx.printer.json {
        ctx.printer.json(&StartResult { processes });
    }
    failed.map_or(Ok(Exit::Success), Err)
}

/// Start the media of `node` that are down, without a daemon: the processes afterwards (the
/// daemon's `start` result), and the error when one failed.
fn start_here(
    ctx: &Ctx,
    sup: &mut Supervisor,
    node: &NodeSnapshot,
) -> Result<(Vec<MediaProcess>, Option<CliError>), CliError> {
    let specs = media::specs(&ctx.state, node)?;
    let mut failed = None;
    media::start_missing(&ctx.state, sup, &specs, |spec, outcome| {
        let line = match outcome {
            Ensured::Started { pid } => format!("started {} (pid {pid})", spec.name),
            Ensured::AlreadyRunning { pid, healthy: true } => {
                format!("{} is already running (pid {pid}), healthy", spec.name)
            }
            Ensured::AlreadyRunning {
                pid,
                healthy: false,
            } => format!(
                "{} is already running (pid {pid}) but not answering its health probe; left alone",
                spec.name
            ),
            Ensured::BackingOff { .. } => format!("{} is backing off after a crash", spec.name),
            Ensured::CrashLooping { reason, .. } => {
                failed = Some(CliError::msg(
                    format!("{} failed: {reason}", spec.name),
                    Some("see the log in logs/ of the state directory".to_owned()),
                ));
                format!("{} failed", spec.name)
            }
        };
        ctx.printer.status(line);
    })?;
    Ok((media_processes(sup, node), failed))
}

/// The grace of a stop or restart when none is given.
const DEFAULT_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

pub fn stop(ctx: &Ctx, args: &StopArgs, then_start: bool) -> Result<Exit, CliError> {
    let params = StopParams {
        grace_secs: args.grace.map(|g| g.as_secs_f64()),
        force: args.force.then_some(true),
    };
    // The stop sequence may wait for the grace, then a second SIGTERM, then SIGKILL.
    let timeout = args.grace.unwrap_or(DEFAULT_GRACE) + DAEMON_TIMEOUT;
    let answer = if then_start {
        ctx.via_daemon::<protocol::Restart>(&params, timeout)?
    } else {
        ctx.via_daemon::<protocol::Stop>(&params, timeout)?
    };
    if let Some(answer) = answer {
        print_processes(ctx, &answer, &answer.processes);
        if let Some(drain) = &answer.draining {
            ctx.printer.status(format!(
                "livekit-server drains: no new rooms, the calls in progress go on; it restarts when they end, at the latest {} (its participants then reconnect)",
                drain.until
            ));
        }
        return Ok(Exit::Success);
    }
    let node = read_node(ctx)?;
    // Never on media an outside supervisor owns, nor beside a control plane a host embeds.
    media::refuse_if_external(&node.config.settings)?;
    media::refuse_if_hosted(&ctx.state)?;
    let mut sup = supervisor(ctx);
    // Who is in a call, asked of the server itself: a restart or stop that would cut them is
    // refused unless forced.
    if sup.status(LIVEKIT_SERVER)?.running {
        let participants =
            media::participants(&ctx.state, &node.config.settings, SystemTime::now());
        media::refuse_if_occupied(&participants, then_start, args.force)?;
    }
    let grace = args.grace.unwrap_or(DEFAULT_GRACE);
    if !then_start {
        // Kept on disk before anything is signalled: a control plane started later leaves them
        // down until `start`.
        media::record_stop(&ctx.state, SystemTime::now())?;
    }
    let mut stopped = BTreeMap::new();
    // The front and lk-backend first: they talk to livekit-server.
    for name in MEDIA {
        // Before a start, a drain that outlasts the grace ends with SIGKILL (the participants
        // rejoin the new server); for good, with a second SIGTERM (they are told to leave).
        let outcome = if then_start {
            sup.stop_for_restart(name, grace)?
        } else {
            sup.stop(name, grace)?
        };
        ctx.printer.status(format!("{name}: {outcome}"));
        stopped.insert(name.to_owned(), outcome);
    }
    let (processes, failed) = if then_start {
        media::clear_stop(&ctx.state)?;
        start_here(ctx, &mut sup, &node)?
    } else {
        (media_processes(&mut sup, &node), None)
    };
    if ctx.printer.json {
        ctx.printer.json(&StopResult {
            stopped,
            processes,
            draining: None,
        });
    }
    failed.map_or(Ok(Exit::Success), Err)
}

/// `status`: the daemon's answer when one runs, else the same shape built here — which fails
/// for a state directory that was never provisioned (nothing there to report on).
pub fn status(ctx: &Ctx) -> Result<Exit, CliError> {
    let status =
        if let Some(status) = ctx.via_daemon::<protocol::Status>(&NoParams {}, DAEMON_TIMEOUT)? {
            status
        } else {
            let node = read_node(ctx)?;
            if node.disk.is_empty() {
                return Err(not_provisioned(ctx));
            }
            let now = SystemTime::now();
            // The key epoch and the pinned version from the store, when it can be read (status
            // never fails for it: `store` says why).
            let store = ctx.open_store().map_err(|e| e.line());
            let keys = store.as_ref().map_err(Clone::clone).and_then(|store| {
                livekit_provision::rotate::epoch(store.as_ref(), now)
                    .map_err(|e| livekit_provision::one_line(&e))
            });
            let pinned = store.ok().and_then(|store| pinned_version(store.as_ref()));
            status_without_daemon(&ctx.state, &mut supervisor(ctx), &node, keys, pinned, now)
        };
    if ctx.printer.json {
        ctx.printer.json(&status);
    } else {
        print_status(ctx, &status);
    }
    Ok(Exit::Success)
}

/// `LIVEKIT_VERSION` as the store holds it, as `ensure` reads it (`1.7.2`); `None` when unset
/// or unreadable.
fn pinned_version(store: &dyn livekit_provision::SecretStore) -> Option<String> {
    let text = store
        .get(&livekit_provision::SecretName::LIVEKIT_VERSION)
        .ok()??;
    livekit_provision::LivekitVersion::parse(text.expose().trim())
        .ok()
        .map(|v| v.to_string())
}

/// The error of `status` on a state directory with none of the three files.
fn not_provisioned(ctx: &Ctx) -> CliError {
    let root = ctx.state.root();
    let what = if root.exists() {
        "holds no livekit.yaml, backend.env or runtime.json"
    } else {
        "does not exist"
    };
    CliError::msg(
        format!(
            "{} is not provisioned: it {what}, and no daemon serves it",
            root.display()
        ),
        Some(
            "run `livekit-provision ensure` to provision it (or pass --state-dir the directory \
             of the node)"
                .to_owned(),
        ),
    )
}

/// The versions, as one line: pinned and installed, and whether they differ.
fn version_line(version: &protocol::VersionReport) -> String {
    let text = match (&version.pinned, &version.installed) {
        (Some(p), Some(i)) if p == i => format!("{p} (pinned and installed)"),
        (Some(p), Some(i)) => format!("{p} pinned, {i} installed"),
        (Some(p), None) => format!("{p} pinned, not installed"),
        (None, Some(i)) => format!("{i} installed, none pinned"),
        (None, None) => "none pinned (control plane only)".to_owned(),
    };
    format!("livekit-server: {text}")
}

/// What waits, without a daemon to do it, and what does it: the pinned version not installed.
fn pending_without_daemon(version: &protocol::VersionReport) -> Option<String> {
    let pinned = version.pinned.as_ref()?;
    (version.installed.as_ref() != Some(pinned)).then(|| {
        format!(
            "pending: livekit-server {pinned} is pinned but not installed: `livekit-provision ensure` installs it (a running livekit-provision-daemon would, by itself)"
        )
    })
}

fn print_status(ctx: &Ctx, status: &StatusResult) {
    if status.daemon {
        let prov = &status.provisioning;
        let error = prov
            .last_error
            .as_ref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        let retry = prov
            .next_retry
            .as_ref()
            .map(|r| format!(", next retry {r}"))
            .unwrap_or_default();
        let reason = prov
            .disabled_reason
            .as_ref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        ctx.printer.data(format!(
            "daemon: provisioning {}{error}{reason}{retry}",
            prov.state
        ));
    } else {
        ctx.printer.data("daemon: not running");
    }
    ctx.printer.data(version_line(&status.version));
    print_processes(ctx, status, &status.media.processes);
    if !status.daemon
        && let Some(line) = pending_without_daemon(&status.version)
    {
        ctx.printer.data(line);
    }
    if status.media.stopped_on_purpose {
        let since = status
            .media
            .stopped_since
            .as_ref()
            .map(|s| format!(" since {s}"))
            .unwrap_or_default();
        ctx.printer.data(format!(
            "media stopped on purpose{since}: they stay down until `livekit-provision start`"
        ));
    }
    if let Some(store) = status.store.as_ref().filter(|s| !s.reachable) {
        let since = store
            .unreachable_since
            .as_ref()
            .map(|s| format!(" since {s}"))
            .unwrap_or_default();
        ctx.printer.data(format!(
            "secret store: unreachable{since} ({}); the media run on the last published files, nothing is minted, rotated or published until it answers",
            store.error.as_deref().unwrap_or("no answer")
        ));
    }
    if let Some(held) = &status.media.held {
        ctx.printer.data(format!(
            "held back since {}: generation {} made livekit-server crash-loop ({}); serving the files of generation {} again (as {}). Change the setting that made it exit; the next run publishes it",
            held.since, held.generation, held.reason, held.served, held.republished
        ));
    }
    print_calls(ctx, status);
}

/// Who is in a call, what waits for livekit-server to restart and when it applies, and where a
/// key rotation stands.
fn print_calls(ctx: &Ctx, status: &StatusResult) {
    if let Some(occupancy) = &status.occupancy {
        match (&occupancy.participants, &occupancy.error) {
            (Some(0), _) => ctx.printer.data("calls: none (the node is idle)"),
            (Some(n), _) => {
                let rooms: Vec<String> = occupancy
                    .rooms
                    .iter()
                    .filter(|r| r.participants > 0)
                    .map(|r| format!("{} ({})", r.name, r.participants))
                    .collect();
                ctx.printer.data(format!(
                    "calls: {n} participant{} in {}",
                    if *n == 1 { "" } else { "s" },
                    rooms.join(", ")
                ));
            }
            (None, Some(e)) => ctx.printer.data(format!("calls: unknown ({e})")),
            (None, None) => {}
        }
    }
    if let Some(changes) = status.changes.as_ref().filter(|c| c.pending) {
        ctx.printer.data(format!(
            "pending (needs livekit-server restarted): {}",
            changes.reasons.join("; ")
        ));
        if let Some(applies) = &changes.applies {
            ctx.printer.data(format!("  applies {applies}"));
        }
    }
    if let Some(applied) = status
        .changes
        .as_ref()
        .and_then(|c| c.last_applied.as_ref())
    {
        let cut = if applied.ended_by_kill {
            format!(
                "; the drain was ended with {}, who reconnected",
                count(
                    usize::try_from(applied.participants).unwrap_or(usize::MAX),
                    "participant",
                    "participants"
                )
            )
        } else {
            String::new()
        };
        ctx.printer.data(format!(
            "last applied {}: {}{cut}",
            applied.at,
            applied.reasons.join("; ")
        ));
    }
    let rotation = match &status.keys {
        Some(Epoch::Staged { next_key, .. }) => Some(format!(
            "key rotation: {next_key} is staged; livekit-server loads it when it next restarts (at idle), then it signs"
        )),
        Some(Epoch::Grace {
            previous_key,
            until,
            ..
        }) => Some(format!(
            "key rotation: {previous_key} is still accepted until {} (longer while calls are in progress)",
            livekit_provision::clock::rfc3339(*until)
        )),
        _ => None,
    };
    if let Some(line) = rotation {
        ctx.printer.data(line);
    }
}

fn status_line(s: &ProcessStatus) -> String {
    use livekit_provision_daemon::supervise::Condition;
    let since = s
        .since
        .as_deref()
        .map(|t| format!(" since {t}"))
        .unwrap_or_default();
    let mut state = match (s.condition, &s.failed) {
        (Condition::CrashLooping | Condition::Stopped, Some(why)) => {
            format!("crash-looping{since}: {why}")
        }
        (Condition::Serving, _) => "running, healthy".to_owned(),
        (Condition::Unhealthy, _) => {
            format!("running, answering but not ready{since} (never restarted for it)")
        }
        (Condition::Unresponsive, _) => format!("running, answering nothing{since}"),
        (Condition::Draining, _) => format!("draining{since}"),
        (Condition::Restarting, _) => format!("restarting{since}"),
        (_, _) if s.running => "running".to_owned(),
        _ => "stopped".to_owned(),
    };
    if let Some(healed) = &s.healed {
        state = format!("{state}; healed at {}: {}", healed.at, healed.action);
    }
    if let Some(alert) = &s.alert {
        state = format!("{state}; ALERT: {alert}");
    }
    let pid = s.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    let pending = if s.restart_pending {
        ", restart pending"
    } else {
        ""
    };
    format!("{:<15} {state}{pid}{pending}", s.name)
}

/// Print `processes`, one line each (`--json`: the whole `answer`).
fn print_processes(ctx: &Ctx, answer: &impl serde::Serialize, processes: &[MediaProcess]) {
    if ctx.printer.json {
        ctx.printer.json(answer);
        return;
    }
    for p in processes {
        let error = p
            .error
            .as_ref()
            .map(|e| format!(" — {e}"))
            .unwrap_or_default();
        ctx.printer
            .data(format!("{}{error}", status_line(&p.status)));
    }
}
