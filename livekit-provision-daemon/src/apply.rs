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
//! What it must remember across a restart of the control plane — since when a change is
//! pending (the deadline counts from it) and a drain in progress (its end) — is in
//! `run/changes.json`. Nothing here runs with `media_owner: external`: the outside supervisor
//! owns every restart; `status` still says what is pending.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::protocol::{
    AppliedReport, ChangesReport, DrainReport, FleetMember, NodeReport, OccupancyReport,
};
use crate::rooms::{self, Occupancy};
use crate::shared::{Event, Shared, lock};
use crate::supervise::{LIVEKIT_SERVER, probe_address};
use livekit_provision::clock::rfc3339;
use livekit_provision::rotate::{self, Epoch, GraceExtension};
use livekit_provision::settings::{ChangePolicy, MediaOwner};
use livekit_provision::{Credentials, DiskTriple, OperatorConfig, StateDir, fsio};

/// How often the daemon looks.
pub(super) const TICK: Duration = Duration::from_secs(1);

/// How long before its end a grace is extended while the node has participants, and by how
/// much.
const GRACE_MARGIN: Duration = Duration::from_secs(60);

/// How often the key epoch is read from the store when nothing is staged (the store may be
/// remote): every tick while a rotation is under way.
const EPOCH_EVERY: Duration = Duration::from_secs(10);

/// A drain in progress: since when, until when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Drain {
    /// The draining livekit-server.
    pub pid: u32,
    /// When the SIGTERM was sent.
    #[serde(with = "livekit_provision::clock::rfc3339_serde")]
    pub since: SystemTime,
    /// When it is ended with SIGKILL if it is still running.
    #[serde(with = "livekit_provision::clock::rfc3339_serde")]
    pub until: SystemTime,
    /// Applied anyway (the deadline passed, or `restart --force`) with participants connected.
    pub forced: bool,
    /// Participants connected when it began.
    pub participants: u32,
    /// What it applies.
    pub reasons: Vec<String>,
}

/// What was last applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Applied {
    /// When livekit-server stopped for it.
    #[serde(with = "livekit_provision::clock::rfc3339_serde")]
    pub at: SystemTime,
    /// What it applied.
    pub reasons: Vec<String>,
    /// Participants connected when its drain began.
    pub participants: u32,
    /// Whether the drain had to be ended (SIGKILL): participants then reconnected.
    pub ended_by_kill: bool,
}

/// What is kept in `run/changes.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    #[serde(default, with = "livekit_provision::clock::optional_rfc3339")]
    pending_since: Option<SystemTime>,
    #[serde(default)]
    drain: Option<Drain>,
    #[serde(default)]
    last_applied: Option<Applied>,
}

/// The applier's state, behind a mutex in [`Shared`].
#[derive(Debug, Default)]
pub(super) struct Applier {
    record: Record,
    loaded: bool,
    /// The last reading of the node's rooms, and when; or why it failed.
    pub occupancy: Option<(SystemTime, Result<Occupancy, String>)>,
    /// The restart reasons of livekit-server at the last tick.
    pub reasons: Vec<String>,
    /// The key epoch last read, and when.
    epoch: Option<(Instant, Epoch)>,
    /// The last key-epoch step that failed, said once.
    epoch_error: Option<String>,
    /// The store, opened once (a fleet's Redis: its coordination too); reopened after an error.
    store: Option<std::sync::Arc<dyn livekit_provision::SecretStore>>,
    /// This node in its fleet, and the fleet as last read.
    pub fleet: Fleet,
    /// The staged key the running server accepts (asked of it), for the fleet's report.
    next_loaded: Option<String>,
}

/// This node's place in a fleet that shares a store with coordination (Redis).
#[derive(Debug, Default)]
pub(super) struct Fleet {
    /// This node's name in the fleet (`<hostname>:<port>`).
    pub node: String,
    /// The other nodes' reports, as last read.
    pub others: Vec<(String, NodeReport)>,
    /// Whether this node holds the rolling-restart lease.
    pub leased: bool,
    /// Whether the store coordinates a fleet at all.
    pub coordinated: bool,
}

/// The lease a node holds while it drains and restarts, so that a fleet changes one node at a
/// time.
const ROLLING_LEASE: &str = "restart";
/// How long a report or the lease lives unless refreshed (refreshed every tick).
const FLEET_TTL: Duration = Duration::from_secs(15);

impl Applier {
    /// Since when a change is pending.
    pub fn pending_since(&self) -> Option<SystemTime> {
        self.record.pending_since
    }

    /// The drain in progress.
    pub fn drain(&self) -> Option<&Drain> {
        self.record.drain.as_ref()
    }

    /// What was last applied.
    pub fn last_applied(&self) -> Option<&Applied> {
        self.record.last_applied.as_ref()
    }

    /// Read the key epoch again at the next tick (a run published, a rotation was staged).
    pub fn invalidate_epoch(&mut self) {
        self.epoch = None;
    }

    /// The key epoch last read.
    pub fn epoch(&self) -> Option<&Epoch> {
        self.epoch.as_ref().map(|(_, e)| e)
    }

    fn load(&mut self, state: &StateDir) {
        if self.loaded {
            return;
        }
        self.loaded = true;
        let path = record_path(state);
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(record) => self.record = record,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable changes record");
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the changes record");
            }
        }
    }

    fn save(&self, state: &StateDir) {
        let path = record_path(state);
        let bytes = match serde_json::to_vec_pretty(&self.record) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode the changes record");
                return;
            }
        };
        if let Err(e) = fsio::create_private_dir(&state.run_dir(), true)
            .and_then(|()| fsio::write_file(&path, &bytes, 0o600))
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the changes record");
        }
    }
}

fn record_path(state: &StateDir) -> std::path::PathBuf {
    state.run_dir().join("changes.json")
}

/// What the node's livekit-server is now, for a tick.
struct Server {
    pid: u32,
    healthy: bool,
    addr: SocketAddr,
    reasons: Vec<String>,
}

/// The keys a running server may hold, the signing key first: those of `livekit.yaml` on disk.
pub(super) fn candidate_keys(disk: &DiskTriple) -> Vec<Credentials> {
    let mut keys: Vec<Credentials> = disk
        .livekit_yaml
        .valid()
        .map(|y| y.keys.clone())
        .unwrap_or_default();
    if let Some(signing) = disk
        .runtime_json
        .valid()
        .map(livekit_provision::RuntimeJson::credentials)
        && let Some(at) = keys.iter().position(|k| k.key == signing.key)
    {
        let first = keys.remove(at);
        keys.insert(0, first);
    }
    keys
}

/// Who is in a call on the node whose server answers at `addr`, asked with the keys on disk.
pub(super) fn read_occupancy(
    state: &StateDir,
    addr: SocketAddr,
    now: SystemTime,
) -> Result<Occupancy, String> {
    let disk = DiskTriple::read(state);
    let keys = candidate_keys(&disk);
    rooms::occupancy(addr, &keys, now)
        .map(|(occupancy, _)| occupancy)
        .map_err(|e| livekit_provision::ErrorReport::of(&e).to_string())
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
        if applier.fleet.coordinated && routed(state) || applier.fleet.leased {
            roll(
                shared,
                &mut applier,
                &settings.changes,
                &server,
                participants,
                now,
            );
        } else {
            apply(
                shared,
                &mut applier,
                &settings.changes,
                &server,
                participants,
                now,
            );
        }
    }
    drop(applier);
    keys(shared, &server, participants, now);
}

/// The store, opened once and kept (reopened after an error).
fn store(
    shared: &Shared,
    applier: &mut Applier,
) -> Option<std::sync::Arc<dyn livekit_provision::SecretStore>> {
    if applier.store.is_none() {
        applier.store = shared.config.store.open().ok();
    }
    applier.store.clone()
}

/// Whether livekit-server routes rooms through Redis (`redis:` in livekit.yaml): then a
/// draining node's new rooms go to the other nodes.
fn routed(state: &StateDir) -> bool {
    DiskTriple::read(state)
        .livekit_yaml
        .valid()
        .is_some_and(|y| y.redis.is_some())
}

/// Publish this node's report to its fleet and read the others' (a store with coordination).
fn exchange(
    shared: &Shared,
    applier: &mut Applier,
    settings: &livekit_provision::Settings,
    server: &Server,
    participants: Option<u32>,
) {
    let Some(store) = store(shared, applier) else {
        return;
    };
    let Some(coordinator) = store.coordinator() else {
        applier.fleet.coordinated = false;
        return;
    };
    applier.fleet.coordinated = true;
    if applier.fleet.node.is_empty() {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "node".to_owned());
        applier.fleet.node = format!("{host}:{}", settings.port);
    }
    let report = NodeReport {
        serving: server.healthy && applier.drain().is_none(),
        draining: applier.drain().is_some(),
        participants,
        version: crate::status::installed_version(&shared.config.state),
        next_loaded: applier.next_loaded.clone(),
        pending: !server.reasons.is_empty(),
    };
    let node = applier.fleet.node.clone();
    let published = serde_json::to_string(&report)
        .map_err(|e| e.to_string())
        .and_then(|json| {
            coordinator
                .report(&node, &json, FLEET_TTL)
                .map_err(|e| livekit_provision::one_line(&e))
        });
    let read = coordinator
        .reports()
        .map_err(|e| livekit_provision::one_line(&e));
    match (published, read) {
        (Ok(()), Ok(reports)) => {
            applier.fleet.others = reports
                .into_iter()
                .filter(|(name, _)| *name != node)
                .filter_map(|(name, json)| Some((name, serde_json::from_str(&json).ok()?)))
                .collect();
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "cannot reach the fleet's store; changes wait");
            applier.store = None;
            applier.fleet.others.clear();
        }
    }
}

/// A fleet's rolling change: one node at a time (the lease), each draining — its calls go on,
/// new rooms go to the other nodes — and restarting when they end (or at the drain's end).
fn roll(
    shared: &Shared,
    applier: &mut Applier,
    policy: &ChangePolicy,
    server: &Server,
    participants: Option<u32>,
    now: SystemTime,
) {
    let state = &shared.config.state;
    let Some(store) = store(shared, applier) else {
        return;
    };
    let Some(coordinator) = store.coordinator() else {
        return;
    };
    let node = applier.fleet.node.clone();
    if applier.fleet.leased {
        let done = applier.drain().is_none() && server.reasons.is_empty() && server.healthy;
        if done {
            // Serving again on the new config: the next node may go.
            if let Err(e) = coordinator.release(ROLLING_LEASE, &node) {
                tracing::warn!(error = %livekit_provision::one_line(&e), "could not release the rolling lease (it expires by itself)");
            }
            applier.fleet.leased = false;
            tracing::info!(node = %node, "serving on the new config; the next node of the fleet may go");
            return;
        }
        match coordinator.lease(ROLLING_LEASE, &node, FLEET_TTL) {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(node = %node, "the rolling lease was lost; waiting to take it again");
                applier.fleet.leased = false;
            }
            Err(e) => {
                tracing::warn!(error = %livekit_provision::one_line(&e), "could not renew the rolling lease");
            }
        }
    }
    if applier.drain().is_some() {
        // Ended as on a single node: the server left, or the drain reached its end.
        apply(shared, applier, policy, server, participants, now);
        return;
    }
    if server.reasons.is_empty() {
        if applier.record.pending_since.take().is_some() {
            applier.save(state);
        }
        return;
    }
    let since = *applier.record.pending_since.get_or_insert(now);
    applier.save(state);
    // The policy's time (a window, manual) holds for a fleet too. Being idle is not needed
    // while another node serves: the calls go on through the drain and the other nodes take the
    // new rooms. With no other node serving, this node waits for idle like a node alone.
    let others_serving = applier.fleet.others.iter().any(|(_, r)| r.serving);
    let busy = if others_serving {
        0
    } else {
        participants.unwrap_or(u32::MAX)
    };
    if policy.decide(now, since, busy).is_none() {
        return;
    }
    match coordinator.lease(ROLLING_LEASE, &node, FLEET_TTL) {
        Ok(true) => {
            applier.fleet.leased = true;
            if let Err(e) = begin_drain(
                shared,
                applier,
                server.pid,
                server.reasons.clone(),
                policy.drain.0,
                false,
                participants.unwrap_or(0),
                now,
            ) {
                tracing::warn!(error = %e.message, "could not drain for the rolling change");
            }
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %livekit_provision::one_line(&e), "could not take the rolling lease");
        }
    }
}

/// livekit-server as the keeper sees it now: pid, the address to ask, what waits for a
/// restart. `None` when it does not run.
fn server_now(shared: &Shared, settings: &livekit_provision::Settings) -> Option<Server> {
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
fn apply(
    shared: &Shared,
    applier: &mut Applier,
    policy: &ChangePolicy,
    server: &Server,
    participants: Option<u32>,
    now: SystemTime,
) {
    let state = &shared.config.state;
    if let Some(drain) = applier.record.drain.clone() {
        if drain.pid == server.pid {
            let mut media = lock(&shared.media);
            if !media.draining(LIVEKIT_SERVER) {
                // A drain an earlier control plane began: its exit is expected, not a crash.
                media.resume_drain(LIVEKIT_SERVER);
            }
        }
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
fn finished(applier: &mut Applier, drain: Drain, now: SystemTime, killed: bool) {
    tracing::info!(pid = drain.pid, reasons = ?drain.reasons, killed, "applied");
    applier.record.pending_since = None;
    applier.record.last_applied = Some(Applied {
        at: now,
        reasons: drain.reasons,
        participants: drain.participants,
        ended_by_kill: killed,
    });
}

/// Step 4 of the module documentation: promote a staged key the server has loaded; extend a
/// grace while the node has participants.
fn keys(shared: &Shared, server: &Server, participants: Option<u32>, now: SystemTime) {
    let due = {
        let applier = lock(&shared.applier);
        match &applier.epoch {
            None | Some((_, Epoch::Staged { .. } | Epoch::Grace { .. })) => true,
            Some((at, _)) => at.elapsed() >= EPOCH_EVERY,
        }
    };
    if !due {
        return;
    }
    let Some(store) = store(shared, &mut lock(&shared.applier)) else {
        return epoch_failed(shared, "the secret store cannot be opened");
    };
    let epoch = match rotate::epoch(store.as_ref(), now) {
        Ok(epoch) => epoch,
        Err(e) => return epoch_failed(shared, &livekit_provision::ErrorReport::of(&e).to_string()),
    };
    lock(&shared.applier).epoch = Some((Instant::now(), epoch.clone()));
    match epoch {
        Epoch::Staged { next_key, .. } => {
            promote_if_loaded(shared, store.as_ref(), server, &next_key, now);
        }
        Epoch::Grace {
            until,
            previous_key,
            ..
        } => {
            let occupied = participants != Some(0);
            let far = until
                .duration_since(now)
                .is_ok_and(|left| left > GRACE_MARGIN);
            if occupied && !far {
                extend(shared, store.as_ref(), &previous_key, participants, now);
            }
        }
        _ => {}
    }
}

fn lock_wait(pid: Option<u32>) {
    tracing::info!(?pid, "waiting for another writer of the state directory");
}

/// Promote `next_key` once the running server (and, in a fleet, every node's) accepts it.
fn promote_if_loaded(
    shared: &Shared,
    store: &dyn livekit_provision::SecretStore,
    server: &Server,
    next_key: &str,
    now: SystemTime,
) {
    let config = &shared.config;
    let disk = DiskTriple::read(&config.state);
    let Some(next) = disk
        .livekit_yaml
        .valid()
        .and_then(|y| y.keys.iter().find(|k| k.key.as_str() == next_key).cloned())
    else {
        return; // not rendered yet: the next run lists it
    };
    match rooms::key_accepted(server.addr, &next, now) {
        Ok(true) => {}
        // Not loaded yet (a restart at idle loads it), or restarting: asked again next tick.
        Ok(false) | Err(rooms::RoomsError::Unreachable { .. }) => return,
        Err(e) => {
            return epoch_failed(shared, &livekit_provision::ErrorReport::of(&e).to_string());
        }
    }
    {
        let mut applier = lock(&shared.applier);
        // Reported to the fleet: this node's server accepts the staged key.
        applier.next_loaded = Some(next_key.to_owned());
        // Every node of the fleet must have loaded it before anything signs with it.
        let waiting: Vec<&str> = applier
            .fleet
            .others
            .iter()
            .filter(|(_, r)| r.next_loaded.as_deref() != Some(next_key))
            .map(|(name, _)| name.as_str())
            .collect();
        if !waiting.is_empty() {
            tracing::debug!(
                ?waiting,
                "the staged key waits for the other nodes to load it"
            );
            return;
        }
    }
    match rotate::promote(&config.state, store, now, lock_wait) {
        Ok(_) => {
            let mut applier = lock(&shared.applier);
            applier.next_loaded = None;
            applier.epoch = None;
            drop(applier);
            tracing::info!(key = %next_key, "livekit-server accepts the staged key: promoted; the signers switch to it");
            let _ = shared.events.send(Event::Ensure(None));
        }
        Err(e) => epoch_failed(shared, &livekit_provision::ErrorReport::of(&e).to_string()),
    }
}

/// The node has participants near the end of a grace: keep the previous key accepted longer.
fn extend(
    shared: &Shared,
    store: &dyn livekit_provision::SecretStore,
    previous_key: &str,
    participants: Option<u32>,
    now: SystemTime,
) {
    match rotate::extend_grace(
        &shared.config.state,
        store,
        now + 2 * GRACE_MARGIN,
        now,
        lock_wait,
    ) {
        Ok(GraceExtension::Extended { until, at_deadline }) => {
            tracing::info!(key = %previous_key, until = %livekit_provision::clock::rfc3339(until), at_deadline, participants = ?participants, "the node has participants: the previous key stays accepted longer");
            lock(&shared.applier).epoch = None;
        }
        Ok(_) => {}
        Err(e) => epoch_failed(shared, &livekit_provision::ErrorReport::of(&e).to_string()),
    }
}

fn epoch_failed(shared: &Shared, message: &str) {
    let mut applier = lock(&shared.applier);
    if applier.epoch_error.as_deref() != Some(message) {
        tracing::warn!(error = %message, "key epoch step failed; tried again next tick");
        applier.epoch_error = Some(message.to_owned());
    }
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

/// The same without a daemon (the CLI's `status`): the record a daemon left in the state
/// directory, `reasons` as the CLI found them, the rooms asked of the server when it runs.
pub(crate) fn report_without_daemon(
    state: &StateDir,
    settings: &livekit_provision::Settings,
    reasons: Vec<String>,
    running: bool,
    now: SystemTime,
) -> (Option<OccupancyReport>, Option<ChangesReport>) {
    let mut applier = Applier::default();
    applier.load(state);
    applier.reasons = reasons;
    if running {
        let addr = probe_address(&settings.bind_addresses, settings.port);
        applier.occupancy = Some((now, read_occupancy(state, addr, now)));
    }
    let occupancy = applier.occupancy.as_ref().map(occupancy_report);
    (
        occupancy,
        Some(changes_report(&settings.changes, &applier, false, now)),
    )
}

fn occupancy_report((at, reading): &(SystemTime, Result<Occupancy, String>)) -> OccupancyReport {
    match reading {
        Ok(o) => OccupancyReport {
            checked_at: rfc3339(*at),
            participants: Some(o.participants),
            rooms: o.rooms.clone(),
            error: None,
        },
        Err(e) => OccupancyReport {
            checked_at: rfc3339(*at),
            participants: None,
            rooms: Vec::new(),
            error: Some(e.clone()),
        },
    }
}

fn changes_report(
    policy: &ChangePolicy,
    applier: &Applier,
    daemon: bool,
    now: SystemTime,
) -> ChangesReport {
    let pending = !applier.reasons.is_empty();
    let since = applier.pending_since().filter(|_| pending);
    let draining = applier.drain().map(|d| DrainReport {
        since: rfc3339(d.since),
        until: rfc3339(d.until),
        forced: d.forced,
        reasons: d.reasons.clone(),
    });
    let deadline_at = since.and_then(|s| policy.deadline.map(|d| s + d.0));
    let next_chance = since.and_then(|s| policy.next_chance(now, s));
    let in_words = pending.then(|| {
        if daemon {
            applies_in_words(policy, applier, deadline_at, now)
        } else {
            "only by `livekit-provision restart` while no daemon runs (a daemon applies it by itself by the policy of provision.yaml, changes:)".to_owned()
        }
    });
    let fleet = applier.fleet.coordinated.then(|| {
        let mut members: Vec<FleetMember> = applier
            .fleet
            .others
            .iter()
            .map(|(node, report)| FleetMember {
                node: node.clone(),
                this_node: false,
                report: report.clone(),
            })
            .collect();
        members.sort_by(|a, b| a.node.cmp(&b.node));
        members
    });
    ChangesReport {
        fleet,
        rolling_lease: applier.fleet.coordinated.then_some(applier.fleet.leased),
        policy: policy.clone(),
        pending,
        reasons: applier.reasons.clone(),
        pending_since: since.map(rfc3339),
        applies: in_words,
        next_chance: next_chance.filter(|_| daemon).map(rfc3339),
        deadline_at: deadline_at.filter(|_| daemon).map(rfc3339),
        draining,
        last_applied: applier.last_applied().map(|a| AppliedReport {
            at: rfc3339(a.at),
            reasons: a.reasons.clone(),
            participants: a.participants,
            ended_by_kill: a.ended_by_kill,
        }),
    }
}

fn applies_in_words(
    policy: &ChangePolicy,
    applier: &Applier,
    deadline_at: Option<SystemTime>,
    now: SystemTime,
) -> String {
    use livekit_provision::settings::ApplyMode;
    if let Some(d) = applier.drain() {
        return format!(
            "now: livekit-server drains (no new rooms) and restarts when its calls end, at the latest {} (then its participants reconnect)",
            rfc3339(d.until)
        );
    }
    let people = match &applier.occupancy {
        Some((_, Ok(o))) if o.participants == 0 => "the node is idle now".to_owned(),
        Some((_, Ok(o))) => format!(
            "{} participant{} in {} room{} now",
            o.participants,
            if o.participants == 1 { "" } else { "s" },
            o.rooms.len(),
            if o.rooms.len() == 1 { "" } else { "s" }
        ),
        _ => "who is connected is unknown now".to_owned(),
    };
    let mode = match (policy.apply, policy.window) {
        (ApplyMode::Idle, _) => format!("when the node is idle ({people})"),
        (ApplyMode::Window, Some(w)) => {
            let open = if w.contains(now) {
                "open now"
            } else {
                "closed now"
            };
            format!("when the node is idle inside the window {w} UTC ({open}; {people})")
        }
        (ApplyMode::Window, None) => format!("never by itself ({people})"),
        (ApplyMode::Manual, _) => {
            format!("only by `livekit-provision restart` (changes.apply: manual; {people})")
        }
    };
    match deadline_at {
        Some(at) => format!(
            "{mode}; at {} anyway, after a drain of at most {}",
            rfc3339(at),
            humantime::format_duration(policy.drain.0)
        ),
        None => mode,
    }
}
