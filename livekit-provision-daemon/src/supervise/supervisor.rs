//! The supervisor the daemon drives: start a media process only if it is down, adopt what is
//! already running, never kill or restart a healthy process, restart crashes with backoff, and
//! replace a process that answers nothing ([`Supervisor::replace_hung`], the daemon decides when).
//!
//! Blocking: `ensure_running` waits up to the spec's start timeout for readiness, and `stop` for
//! the stop sequence. An async caller runs them on a blocking thread and awaits exits with
//! [`ExitWatch::exited`](super::ExitWatch::exited), reporting each one with
//! [`Supervisor::record_exit`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::condition::{Condition, Healed, Held};
use super::health::{self, HealthProbe, PROBE_TIMEOUT, Probe};
use super::identity::{MediaProcess, adopt, remove_pid_file};
use super::policy::{CrashTracker, RestartDecision, RestartPolicy};
use super::signal::{self, StopOutcome, StopTimings};
use super::spawn::start_detached;
use super::spec::ProcessSpec;
use super::{LOG_TAIL_LINES, StartLog, SuperviseError};
use livekit_provision::clock::Clock;
use livekit_provision::StateDir;

/// The pause between two readiness probes of a fresh start (spent waiting on its exit).
const READY_POLL: Duration = Duration::from_millis(100);

/// How long a hung process may take to be gone after SIGKILL (a process in uninterruptible
/// sleep dies only when its I/O returns).
const HUNG_KILL_WAIT: Duration = Duration::from_secs(5);

/// What [`Supervisor::ensure_running`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// It was down; it has been started and answered its health probe.
    Started {
        /// The new process.
        pid: u32,
    },
    /// It was running (ours or adopted from its pid file) and was left alone.
    AlreadyRunning {
        /// The running process.
        pid: u32,
        /// Whether its health probe answered 200.
        healthy: bool,
    },
    /// It is down after a crash, and the restart backoff has not elapsed.
    BackingOff {
        /// When a start is allowed again.
        until: Instant,
    },
    /// It crashes too often: it is started again at `retry_at` (the longest backoff), or at
    /// once after [`Supervisor::reset`].
    CrashLooping {
        /// Why, with the last lines of its log.
        reason: String,
        /// When a start is allowed again.
        retry_at: Instant,
    },
}

/// The state of one media process, as `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ProcessStatus {
    /// Supervised name.
    pub name: String,
    /// Its pid, when running.
    pub pid: Option<u32>,
    /// Whether it is running.
    pub running: bool,
    /// Whether its health probe answers 200.
    pub healthy: bool,
    /// Set by the caller when a new binary version waits for a restart.
    pub restart_pending: bool,
    /// While it is crash-looping: how often it crashed, with the last lines of its log.
    pub failed: Option<String>,
    /// What it is doing: `serving`, `unhealthy` (answers, not 200: never restarted for it),
    /// `unresponsive` (answers nothing: replaced after `healing.hung_after`), `draining`,
    /// `restarting`, `crash-looping` or `stopped`.
    #[serde(default)]
    pub condition: Condition,
    /// Since when `condition` holds (RFC 3339, UTC), as far as this control plane has seen.
    #[serde(default)]
    pub since: Option<String>,
    /// The last thing the supervisor did by itself to heal it (a hung process replaced, a
    /// crash loop), when it did.
    #[serde(default)]
    pub healed: Option<Healed>,
    /// Something wrong that no restart can heal, with what to do (the address it advertises
    /// is on no interface of this machine any more); `null` when nothing is.
    #[serde(default)]
    pub alert: Option<String>,
}

#[derive(Debug, Default)]
struct Entry {
    process: Option<MediaProcess>,
    health: Option<SocketAddr>,
    probe: HealthProbe,
    tracker: CrashTracker,
    restart_pending: bool,
    failed: Option<String>,
    /// Since when it drains before a restart ([`Supervisor::begin_drain`]): its exit is then
    /// expected, not a crash.
    draining: Option<Instant>,
    /// Down after a crash (or a hung process replaced): a start is due.
    awaiting_restart: bool,
    /// Its condition and since when, as last read by [`Supervisor::status`].
    held: Option<Held>,
    /// The last healing action.
    healed: Option<Healed>,
    /// What no restart heals ([`Supervisor::set_alert`]).
    alert: Option<String>,
}

/// Supervises the media processes of one state directory.
pub struct Supervisor {
    state: StateDir,
    base_env: Vec<(OsString, OsString)>,
    policy: RestartPolicy,
    entries: BTreeMap<String, Entry>,
    clock: Clock,
}

/// The base environment by names only: its values may hold secrets.
impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("state", &self.state)
            .field("base_env", &super::spawn::env_names(&self.base_env))
            .field("policy", &self.policy)
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// A supervisor for `state`. `base_env` is the environment children start from (the binary
    /// passes `std::env::vars_os()`); variables that override livekit's config are removed.
    pub fn new(
        state: StateDir,
        base_env: impl IntoIterator<Item = (OsString, OsString)>,
        policy: RestartPolicy,
    ) -> Self {
        Self {
            state,
            base_env: base_env.into_iter().collect(),
            policy,
            entries: BTreeMap::new(),
            clock: livekit_provision::clock::system,
        }
    }

    /// Read the wall clock (the start times recorded in pid files) from `clock`.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// Make sure `spec` runs. Starts it only if neither a process of ours nor one recorded in its
    /// pid file is alive; a running process is never signalled, whatever its health.
    ///
    /// A fresh start waits for the health probe: if the process exits first (livekit-server does
    /// so, with status 0, when it rejects its config) that is a crash, counted by the restart
    /// policy, and the error carries the last lines of its log. If it stays up but never becomes
    /// ready, it is left running and [`SuperviseError::NotReady`] says so.
    pub fn ensure_running(
        &mut self,
        spec: &ProcessSpec,
        now: Instant,
    ) -> Result<Ensured, SuperviseError> {
        // A process of ours that died unnoticed (its exit not yet reported) is a crash too.
        let dead = self
            .entries
            .get(&spec.name)
            .and_then(|e| e.process.as_ref())
            .filter(|p| !p.is_alive())
            .map(MediaProcess::pid);
        if let Some(pid) = dead {
            self.record_exit(&spec.name, pid, now);
        }
        let entry = self.entries.entry(spec.name.clone()).or_default();
        entry.health = spec.health;
        entry.probe = spec.probe.clone();
        if let Some(pid) = entry
            .process
            .as_ref()
            .filter(|p| p.is_alive())
            .map(MediaProcess::pid)
        {
            return Ok(Ensured::AlreadyRunning {
                pid,
                healthy: is_healthy(spec.health, &spec.probe),
            });
        }
        entry.process = adopt(&self.state, &spec.name)?;
        if let Some(process) = &entry.process {
            return Ok(Ensured::AlreadyRunning {
                pid: process.pid(),
                healthy: is_healthy(spec.health, &spec.probe),
            });
        }
        if let Some(until) = entry
            .tracker
            .next_start()
            .filter(|_| !entry.tracker.may_start(now))
        {
            return Ok(match &entry.failed {
                Some(reason) => Ensured::CrashLooping {
                    reason: reason.clone(),
                    retry_at: until,
                },
                None => Ensured::BackingOff { until },
            });
        }
        let process = start_detached(
            &self.state,
            spec,
            self.base_env.iter().cloned(),
            (self.clock)(),
        );
        let result = process.and_then(|p| match wait_ready(&self.state, &p, spec) {
            Ok(()) => Ok(p),
            Err(e @ SuperviseError::NotReady { .. }) => {
                entry.process = Some(p);
                Err(e)
            }
            Err(e) => Err(e),
        });
        match result {
            Ok(process) => {
                let pid = process.pid();
                entry.process = Some(process);
                entry.awaiting_restart = false;
                // It answered its probe: no longer crash-looping (its crashes stay counted, so
                // the next one within the window loops again at once).
                entry.failed = None;
                Ok(Ensured::Started { pid })
            }
            Err(e @ SuperviseError::ExitedDuringStart { .. }) => {
                remove_pid_file(&self.state, &spec.name)?;
                entry.awaiting_restart = true;
                if let RestartDecision::CrashLoop { crashes, .. } =
                    entry.tracker.record_crash(&self.policy, now)
                {
                    entry.failed = Some(give_up_reason(
                        &self.state,
                        &self.policy,
                        &spec.name,
                        crashes,
                        " (the last time during startup)",
                    ));
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Report that the process `name` with `pid` exited (its `ExitWatch`
    /// fired). A crash of the current process is counted and answered with a restart time or a
    /// give-up; `None` when `pid` is not the current process (a deliberate stop, a replaced one).
    pub fn record_exit(&mut self, name: &str, pid: u32, now: Instant) -> Option<RestartDecision> {
        let entry = self.entries.get_mut(name)?;
        if entry.process.as_ref().map(MediaProcess::pid) != Some(pid) {
            return None;
        }
        entry.process = None;
        if let Err(e) = remove_pid_file(&self.state, name) {
            tracing::warn!(name, error = %e, "could not remove the pid file of an exited process");
        }
        if entry.draining.take().is_some() {
            // It drained and left, as asked before a restart: start it again now, no crash.
            return Some(RestartDecision::RestartAt(now));
        }
        entry.awaiting_restart = true;
        let decision = entry.tracker.record_crash(&self.policy, now);
        if let RestartDecision::CrashLoop { crashes, .. } = decision {
            entry.failed = Some(give_up_reason(&self.state, &self.policy, name, crashes, ""));
        }
        Some(decision)
    }

    /// How long `name` has answered nothing, as [`status`](Self::status) last saw it; `None`
    /// unless it is running and unresponsive.
    pub fn unresponsive_for(&self, name: &str, now: Instant) -> Option<Duration> {
        let held = self.entries.get(name)?.held?;
        (held.condition == Condition::Unresponsive)
            .then(|| now.saturating_duration_since(held.since_instant))
    }

    /// Replace `name`'s hung process: SIGKILL (identity-checked: a recycled pid is never
    /// signalled; SIGKILL so that its participants rejoin the next server), wait for its exit,
    /// count it as a crash and answer when to start it again. `None` when it is not running.
    pub fn replace_hung(
        &mut self,
        name: &str,
        silent_for: Duration,
        now: Instant,
    ) -> Result<Option<RestartDecision>, SuperviseError> {
        let Some(entry) = self.entries.get_mut(name) else {
            return Ok(None);
        };
        let Some(process) = entry.process.take() else {
            return Ok(None);
        };
        let pid = process.pid();
        if signal::send(&process, nix::sys::signal::Signal::SIGKILL)? {
            let gone = process
                .wait_exit(HUNG_KILL_WAIT)
                .map_err(|source| SuperviseError::Inspect {
                    name: name.to_owned(),
                    pid,
                    source,
                });
            if !gone? {
                // Not gone yet (stuck in the kernel): kept, and tried again next time.
                entry.process = Some(process);
                return Ok(None);
            }
        }
        remove_pid_file(&self.state, name)?;
        entry.awaiting_restart = true;
        entry.held = None;
        let decision = entry.tracker.record_crash(&self.policy, now);
        let again = match decision {
            RestartDecision::RestartAt(at) => format!(
                "started again in {}",
                humantime::format_duration(Duration::from_secs(
                    at.saturating_duration_since(now).as_secs()
                ))
            ),
            RestartDecision::CrashLoop { crashes, .. } => {
                entry.failed = Some(give_up_reason(
                    &self.state,
                    &self.policy,
                    name,
                    crashes,
                    " (the last time hung)",
                ));
                format!(
                    "crash-looping: started again every {}",
                    humantime::format_duration(self.policy.max_backoff)
                )
            }
        };
        entry.healed = Some(Healed {
            at: livekit_provision::clock::rfc3339((self.clock)()),
            action: format!(
                "replaced a hung {name} (pid {pid} answered nothing for {}; SIGKILL); {again}",
                humantime::format_duration(Duration::from_secs(silent_for.as_secs()))
            ),
        });
        Ok(Some(decision))
    }

    /// Probe `spec`'s process the way `spec` says without ever starting it (a process an
    /// outside supervisor runs).
    pub fn configure(&mut self, spec: &ProcessSpec) {
        let entry = self.entries.entry(spec.name.clone()).or_default();
        entry.health = spec.health;
        entry.probe = spec.probe.clone();
    }

    /// Forget that `name`'s process `pid` exited without counting it as a crash (an outside
    /// supervisor owns it). Its pid file is removed when it is still the one recorded.
    pub fn forget(&mut self, name: &str, pid: u32) {
        let Some(entry) = self.entries.get_mut(name) else {
            return;
        };
        if entry.process.as_ref().map(MediaProcess::pid) == Some(pid) {
            entry.process = None;
            if let Err(e) = adopt(&self.state, name) {
                tracing::warn!(name, error = %e, "could not check the pid file of an exited process");
            }
        }
    }

    /// Start draining `name` before a restart: one SIGTERM (livekit-server refuses new rooms,
    /// lets the calls in progress go on, and exits by itself when its last participant has
    /// left). Its exit is then expected: [`record_exit`](Self::record_exit) asks for a start at
    /// once and counts no crash. `Ok(false)` when it is not running (nothing to drain).
    pub fn begin_drain(&mut self, name: &str, now: Instant) -> Result<bool, SuperviseError> {
        let entry = self.entries.entry(name.to_owned()).or_default();
        if entry.process.is_none() {
            entry.process = adopt(&self.state, name)?;
        }
        let Some(process) = entry.process.as_ref() else {
            return Ok(false);
        };
        if !signal::send(process, nix::sys::signal::Signal::SIGTERM)? {
            return Ok(false);
        }
        entry.draining.get_or_insert(now);
        Ok(true)
    }

    /// Since when `name` drains ([`begin_drain`](Self::begin_drain)), while it does.
    pub fn draining(&self, name: &str) -> Option<Instant> {
        self.entries.get(name)?.draining
    }

    /// Mark `name`'s adopted process as draining since `since` (a restarted control plane
    /// takes over a drain its predecessor began).
    pub fn resume_drain(&mut self, name: &str, since: Instant) {
        self.entries.entry(name.to_owned()).or_default().draining = Some(since);
    }

    /// End `name`'s drain now: SIGKILL, so that its participants rejoin the server started next
    /// (a second SIGTERM would tell them to leave). Its pid file is removed; a start follows.
    pub fn end_drain(&mut self, name: &str) -> Result<StopOutcome, SuperviseError> {
        let entry = self.entries.entry(name.to_owned()).or_default();
        entry.draining = None;
        entry.awaiting_restart = false;
        let process = match entry.process.take() {
            Some(p) => Some(p),
            None => adopt(&self.state, name)?,
        };
        let Some(process) = process else {
            return Ok(StopOutcome::NotRunning);
        };
        let outcome = signal::kill_draining(&process)?;
        remove_pid_file(&self.state, name)?;
        Ok(outcome)
    }

    /// Stop `name` (ours or adopted) for good with the stop sequence (a drain that outlasts
    /// `grace` ends with a second SIGTERM: the participants are told to leave), and remove its
    /// pid file.
    pub fn stop(&mut self, name: &str, grace: Duration) -> Result<StopOutcome, SuperviseError> {
        self.stop_with(name, StopTimings::with_grace(grace))
    }

    /// Stop `name` before a start: a drain that outlasts `grace` ends with SIGKILL, so that the
    /// participants reconnect to the server started next ([`Ending::Rejoin`](signal::Ending::Rejoin)).
    pub fn stop_for_restart(
        &mut self,
        name: &str,
        grace: Duration,
    ) -> Result<StopOutcome, SuperviseError> {
        self.stop_with(name, StopTimings::for_restart(grace))
    }

    fn stop_with(&mut self, name: &str, timings: StopTimings) -> Result<StopOutcome, SuperviseError> {
        let entry = self.entries.entry(name.to_owned()).or_default();
        entry.awaiting_restart = false;
        let process = match entry.process.take() {
            Some(p) => Some(p),
            None => adopt(&self.state, name)?,
        };
        let Some(process) = process else {
            return Ok(StopOutcome::NotRunning);
        };
        let outcome = signal::stop_with(&process, timings)?;
        remove_pid_file(&self.state, name)?;
        Ok(outcome)
    }

    /// Say (or, with `None`, stop saying) what is wrong with `name` that no restart heals.
    pub fn set_alert(&mut self, name: &str, alert: Option<String>) {
        self.entries.entry(name.to_owned()).or_default().alert = alert;
    }

    /// When `name` may be started again after a crash, while it waits for that.
    pub fn next_start(&self, name: &str) -> Option<Instant> {
        let entry = self.entries.get(name)?;
        entry
            .tracker
            .next_start()
            .filter(|_| entry.awaiting_restart && entry.process.is_none())
    }

    /// Record what was done by itself to heal `name` (`status` shows it as `healed`).
    pub fn record_healed(&mut self, name: &str, action: String) {
        self.entries.entry(name.to_owned()).or_default().healed = Some(Healed {
            at: livekit_provision::clock::rfc3339((self.clock)()),
            action,
        });
    }

    /// Forget the crash history and the failed mark of `name`: an operator asked for a start.
    pub fn reset(&mut self, name: &str) {
        let entry = self.entries.entry(name.to_owned()).or_default();
        entry.tracker.reset();
        entry.failed = None;
        entry.awaiting_restart = false;
    }

    /// Mark that `name` should be restarted (for instance: a new binary is installed). Only
    /// reported; the supervisor never restarts a healthy process by itself.
    pub fn set_restart_pending(&mut self, name: &str, pending: bool) {
        self.entries
            .entry(name.to_owned())
            .or_default()
            .restart_pending = pending;
    }

    /// The process currently held for `name`, for an `ExitWatch`.
    pub fn process(&self, name: &str) -> Option<&MediaProcess> {
        self.entries.get(name)?.process.as_ref()
    }

    /// The status of `name`: adopts a process recorded in its pid file, probes its health.
    ///
    /// A process of ours that has died is reported down but kept until its exit is counted (by
    /// [`record_exit`](Self::record_exit) or the next [`ensure_running`](Self::ensure_running)):
    /// a status read must never make a crash go uncounted.
    pub fn status(&mut self, name: &str) -> Result<ProcessStatus, SuperviseError> {
        let entry = self.entries.entry(name.to_owned()).or_default();
        if entry.process.is_none() {
            entry.process = adopt(&self.state, name)?;
        }
        let pid = entry
            .process
            .as_ref()
            .filter(|p| p.is_alive())
            .map(MediaProcess::pid);
        let now = ((self.clock)(), Instant::now());
        let probe = pid.and(entry.health).map(|a| health::check(a, &entry.probe, PROBE_TIMEOUT));
        let condition = match pid {
            Some(_) => Condition::of_running(probe.as_ref(), entry.draining.is_some()),
            None if entry.failed.is_some() => Condition::CrashLooping,
            None if entry.awaiting_restart => Condition::Restarting,
            None => Condition::Stopped,
        };
        // `since` is when the probe began: a hung process was silent at least that long.
        let held = Held::update(entry.held, condition, now);
        entry.held = Some(held);
        Ok(ProcessStatus {
            name: name.to_owned(),
            pid,
            running: pid.is_some(),
            healthy: pid.is_some() && probe.as_ref().is_none_or(Probe::is_ready),
            restart_pending: entry.restart_pending,
            failed: entry.failed.clone(),
            condition,
            since: Some(livekit_provision::clock::rfc3339(held.since)),
            healed: entry.healed.clone(),
            alert: pid.and(entry.alert.clone()),
        })
    }

    /// The status of every process this supervisor has been asked about.
    pub fn statuses(&mut self) -> Result<Vec<ProcessStatus>, SuperviseError> {
        let names: Vec<String> = self.entries.keys().cloned().collect();
        names.iter().map(|n| self.status(n)).collect()
    }
}

/// Why `name` was given up on after `crashes` crashes, with the last lines of its log. It reads
/// the same whether the last crash came after readiness or during startup (`when` tells which).
fn give_up_reason(
    state: &StateDir,
    policy: &RestartPolicy,
    name: &str,
    crashes: usize,
    when: &str,
) -> String {
    let log = state.log_file(name);
    let tail = health::log_tail(&log, LOG_TAIL_LINES).unwrap_or_default();
    format!(
        "{name} crashed {crashes} times within {}{when}; last lines of {}:\n{}",
        humantime::format_duration(policy.window),
        log.display(),
        tail.join("\n")
    )
}

fn is_healthy(addr: Option<SocketAddr>, how: &HealthProbe) -> bool {
    addr.is_none_or(|a| health::check(a, how, PROBE_TIMEOUT).is_ready())
}

/// Probe a fresh start until it answers 200, exits, or `spec.start_timeout` passes.
fn wait_ready(
    state: &StateDir,
    process: &MediaProcess,
    spec: &ProcessSpec,
) -> Result<(), SuperviseError> {
    let log = || StartLog::read(state.log_file(&spec.name));
    let inspect = |source| SuperviseError::Inspect {
        name: spec.name.clone(),
        pid: process.pid(),
        source,
    };
    let exited = || SuperviseError::ExitedDuringStart {
        name: spec.name.clone(),
        pid: process.pid(),
        log: log(),
    };
    let Some(addr) = spec.health else {
        return Ok(());
    };
    let deadline = Instant::now() + spec.start_timeout;
    loop {
        if process.wait_exit(Duration::ZERO).map_err(inspect)? {
            return Err(exited());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let last = health::check(addr, &spec.probe, PROBE_TIMEOUT.min(left.max(READY_POLL)));
        if last == Probe::Ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(SuperviseError::NotReady {
                name: spec.name.clone(),
                pid: process.pid(),
                addr,
                timeout: spec.start_timeout,
                last: Box::new(last),
                log: log(),
            });
        }
        let pause = READY_POLL.min(deadline.saturating_duration_since(Instant::now()));
        if process.wait_exit(pause).map_err(inspect)? {
            return Err(exited());
        }
    }
}

#[cfg(test)]
mod tests;
