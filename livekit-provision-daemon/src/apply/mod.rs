//! No change cuts a call: the daemon applies what needs livekit-server restarted by itself, at
//! the first moment its node has no participant, and drives the key epochs of a rotation.
//!
//! livekit-server has no hot reload, so a new release, a config change, a key-epoch step or a
//! new TURN certificate waits in `restart_reasons` until livekit-server restarts. Every tick
//! (once a second) this module:
//! 1. asks the running server who is in a call ([`crate::rooms::occupancy`], RoomService on the
//!    node, with a key the server accepts) — `status` shows it;
//! 2. when a restart is pending, asks the policy of `provision.yaml` (`changes:`,
//!    [`ChangePolicy::decide`]) whether now is the time: the node is idle (`apply: idle`), idle
//!    inside the window (`apply: window`), or the `deadline` passed (applied anyway);
//! 3. applies it by a **drain**: one SIGTERM. livekit-server then refuses new rooms, lets the
//!    calls in progress go on, and exits by itself when its last participant has left — at idle
//!    that is within milliseconds (measured: 6–18 ms on 1.13.5), and someone who joined between
//!    the check and the signal is never cut: the server waits for them. The exit is expected
//!    (no crash is counted) and a run starts the server on the new config at once. A drain that
//!    outlasts `changes.drain` ends with SIGKILL, never a second SIGTERM, so that the
//!    participants rejoin the next server (measured: 6/6 back after SIGKILL, 1/6 after a second
//!    SIGTERM, e2e `test_drain_endings`);
//! 4. drives a staged rotation: once the running server accepts the next key (asked of the
//!    server itself, [`crate::rooms::key_accepted`]), promotes it
//!    ([`livekit_provision::rotate::promote`]) and provisions, so that the signers switch; while a
//!    grace is in force and the node has participants, extends the grace
//!    ([`livekit_provision::rotate::extend_grace`], never past the operator's deadline), so that
//!    the previous key leaves `livekit.yaml` only once nobody can hold a token signed with it
//!    (livekit-server re-signs connected participants' tokens with a random configured key).
//!
//! Before all that, each tick heals what it can ([`crate::heal`]): a hung server is replaced, a
//! crash loop on freshly published files takes them back; while the server answers nothing,
//! nothing else is asked of it.
//!
//! What it must remember across a restart of the control plane — since when a change is
//! pending (the deadline counts from it) and a drain in progress (its end) — is in
//! `run/changes.json`. Nothing here runs with `media_owner: external`: the outside supervisor
//! owns every restart; `status` still says what is pending.

mod fleet;
mod keys;
pub(crate) mod report;
pub(crate) mod state;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use livekit_provision::OperatorConfig;
use livekit_provision::rotate::{self, Epoch};
use livekit_provision::settings::{ChangePolicy, MediaOwner};

use fleet::{exchange, roll, routed};
use report::{changes_report, occupancy_report};
use state::{Applied, Applier, Drain};

use crate::occupancy::read_occupancy;
use crate::protocol::{ChangesReport, OccupancyReport};
use crate::shared::{Event, Shared, lock};
use crate::supervise::{LIVEKIT_SERVER, probe_address};

/// How often the daemon looks.
pub(super) const TICK: Duration = Duration::from_secs(1);

/// What the node's livekit-server is now, for a tick.
pub(super) struct Server {
    pid: u32,
    healthy: bool,
    addr: SocketAddr,
    reasons: Vec<String>,
}

/// One tick, on a blocking thread.
pub(super) fn tick(shared: &Shared) {
    let config = &shared.config;
    let state = &config.state;
    let now = (config.clock)();
    let settings = match OperatorConfig::load(state) {
        Ok(c) => c.settings,
        Err(e) => {
            tracing::debug!(error = %livekit_provision::one_line(&e), "no tick: provision.yaml is refused");
            return;
        }
    };
    let server = server_now(shared, &settings);
    if let Some(server) = &server {
        resume_drain(shared, server.pid);
    }
    let serving = server
        .as_ref()
        .map(|s| (s.pid, s.healthy && s.reasons.is_empty()));
    if crate::heal::heal(shared, &settings, serving, now) {
        // Hung (replaced now, or answering nothing still: every question would only wait), or
        // down.
        return;
    }
    // Asked before the applier is locked: `status` reads it meanwhile.
    let occupancy = server
        .as_ref()
        .map(|server| read_occupancy(state, server.addr, now));
    let mut applier = lock(&shared.applier);
    applier.load(state);
    let (Some(server), Some(occupancy)) = (server, occupancy) else {
        applier.occupancy = None;
        applier.reasons.clear();
        if let Some(drain) = applier.record.drain.take() {
            finished(&mut applier, drain, now, false);
            applier.save(state);
        }
        return;
    };
    applier.occupancy = Some((now, occupancy.clone()));
    applier.reasons.clone_from(&server.reasons);
    let participants = occupancy.as_ref().ok().map(|o| o.participants);
    exchange(shared, &mut applier, &settings, &server, participants);
    if settings.media_owner == MediaOwner::Daemon {
        let step = if applier.fleet.coordinated && routed(state) || applier.fleet.leased {
            roll
        } else {
            apply
        };
        step(
            shared,
            &mut applier,
            &settings.changes,
            &server,
            participants,
            now,
        );
    }
    drop(applier);
    keys::keys(shared, &server, participants, now);
}

/// A drain an earlier control plane began on server `pid` (`run/changes.json`) is taken over
/// before anything judges the server: its exit is expected, not a crash, and it is never taken
/// for hung ([`crate::heal`]) while it drains.
fn resume_drain(shared: &Shared, pid: u32) {
    let mut applier = lock(&shared.applier);
    applier.load(&shared.config.state);
    if applier.record.drain.as_ref().is_some_and(|d| d.pid == pid) {
        let mut media = lock(&shared.media);
        if !media.draining(LIVEKIT_SERVER) {
            media.resume_drain(LIVEKIT_SERVER);
        }
    }
}

/// livekit-server as the keeper sees it now: pid, the address to ask, what waits for a
/// restart. `None` when it does not run.
pub(super) fn server_now(
    shared: &Shared,
    settings: &livekit_provision::Settings,
) -> Option<Server> {
    let mut media = lock(&shared.media);
    let (pid, healthy, reasons) = media.pending(LIVEKIT_SERVER)?;
    Some(Server {
        pid,
        healthy,
        addr: probe_address(&settings.bind_addresses, settings.port),
        reasons,
    })
}

/// Step 2 and 3 of the module documentation.
pub(super) fn apply(
    shared: &Shared,
    applier: &mut Applier,
    policy: &ChangePolicy,
    server: &Server,
    participants: Option<u32>,
    now: SystemTime,
) {
    let state = &shared.config.state;
    if let Some(drain) = applier.record.drain.clone() {
        if drain.pid != server.pid {
            // It drained and left; the server running now is the next one.
            applier.record.drain = None;
            finished(applier, drain, now, false);
            applier.save(state);
        } else if now >= drain.until {
            tracing::warn!(pid = drain.pid, participants = ?participants, "the drain reached its end; ending livekit-server (SIGKILL: the participants rejoin the next one)");
            let ended = lock(&shared.media).end_drain(LIVEKIT_SERVER);
            match ended {
                Ok(_) => {
                    applier.record.drain = None;
                    finished(applier, drain, now, true);
                    applier.save(state);
                    let _ = shared.events.send(Event::RunBy(Instant::now()));
                }
                // Kept: tried again next tick (never a second SIGTERM).
                Err(e) => tracing::warn!(error = %e.message, "could not end the drain"),
            }
        }
        return;
    }
    if server.reasons.is_empty() {
        if applier.record.pending_since.take().is_some() {
            applier.save(state);
        }
        return;
    }
    let since = if let Some(since) = applier.record.pending_since {
        since
    } else {
        tracing::info!(reasons = ?server.reasons, policy = %policy.apply, "a change waits for livekit-server to restart; it is applied by the policy of provision.yaml (changes:)");
        applier.record.pending_since = Some(now);
        applier.save(state);
        now
    };
    // An unknown occupancy is never taken for idle: only the deadline applies then.
    let Some(forced) = policy.decide(now, since, participants.unwrap_or(u32::MAX)) else {
        return;
    };
    if let Err(e) = begin_drain(
        shared,
        applier,
        server.pid,
        server.reasons.clone(),
        policy.drain.0,
        forced,
        participants.unwrap_or(0),
        now,
    ) {
        tracing::warn!(error = %e.message, "could not apply: livekit-server did not take the drain signal");
    }
}

/// Begin a drain of livekit-server `pid` that applies `reasons`: one SIGTERM, ended with
/// SIGKILL after `drain` if it is still running then.
#[expect(clippy::too_many_arguments, reason = "one drain, described in full")]
pub(super) fn begin_drain(
    shared: &Shared,
    applier: &mut Applier,
    pid: u32,
    reasons: Vec<String>,
    drain: Duration,
    forced: bool,
    participants: u32,
    now: SystemTime,
) -> Result<Drain, crate::keeper::MediaFailure> {
    if let Some(current) = &applier.record.drain {
        return Ok(current.clone());
    }
    lock(&shared.media).begin_drain(LIVEKIT_SERVER)?;
    let record = Drain {
        pid,
        since: now,
        until: now + drain,
        forced,
        participants,
        reasons,
    };
    if forced {
        tracing::warn!(pid, participants, until = %livekit_provision::clock::rfc3339(record.until), reasons = ?record.reasons, "applying anyway: livekit-server drains (no new rooms; the calls in progress go on) and restarts when they end");
    } else {
        tracing::info!(pid, reasons = ?record.reasons, "the node is idle: applying (livekit-server restarts)");
    }
    applier.record.drain = Some(record.clone());
    applier.save(&shared.config.state);
    Ok(record)
}

/// A drain is over: livekit-server left (or was ended, `killed`).
pub(super) fn finished(applier: &mut Applier, drain: Drain, now: SystemTime, killed: bool) {
    tracing::info!(pid = drain.pid, reasons = ?drain.reasons, killed, "applied");
    applier.record.pending_since = None;
    applier.record.last_applied = Some(Applied {
        at: now,
        reasons: drain.reasons,
        participants: drain.participants,
        ended_by_kill: killed,
    });
}

/// What `status` says of the node's rooms, its pending changes and the key epoch.
pub(super) fn report(
    shared: &Shared,
    livekit_running: bool,
    now: SystemTime,
) -> (
    Option<OccupancyReport>,
    Option<ChangesReport>,
    Option<Epoch>,
) {
    let settings = OperatorConfig::load(&shared.config.state)
        .map(|c| c.settings)
        .unwrap_or_default();
    let policy = settings.changes.clone();
    // Before the first tick asked: ask now (the same shape as every later status).
    let fresh = (livekit_running && lock(&shared.applier).occupancy.is_none()).then(|| {
        let addr = probe_address(&settings.bind_addresses, settings.port);
        (now, read_occupancy(&shared.config.state, addr, now))
    });
    let mut applier = lock(&shared.applier);
    if applier.occupancy.is_none() {
        applier.occupancy = fresh;
    }
    if applier.epoch.is_none() {
        // Before the first tick read it: from the store now (a status never fails for it).
        if let Some(epoch) = shared
            .config
            .store
            .open()
            .ok()
            .and_then(|store| rotate::epoch(store.as_ref(), now).ok())
        {
            applier.epoch = Some((Instant::now(), epoch));
        }
    }
    let occupancy = applier.occupancy.as_ref().map(occupancy_report);
    let changes = changes_report(&policy, &applier, true, now);
    (occupancy, Some(changes), applier.epoch().cloned())
}
