//! The daemon's side of supervision: which media to run, a pass of `ensure_running` over them,
//! exit watches, and their status. Everything here blocks; it runs on tokio's blocking pool,
//! behind one mutex.
//!
//! - `media_owner: external` (from `provision.yaml` as the caller read it: a run's snapshot, a
//!   call's own reading; an exit reads it then): a pass only observes
//!   (adopts the pid files `livekit-provision exec` writes, compares them with the disk);
//!   `start` and `stop` are refused; an exit is forgotten, never counted or restarted.
//! - A process we did not start listening on a media port is never started over: the pass
//!   reports it (a failure with a hint, not a crash) and `status` names it (`listener`).
//! - Restart pending: each running process's `run/<name>.started.json` compared with the disk
//!   now, at every pass and every `status`; a new set of reasons is logged once.
//! - The operator's stop is kept on disk (`run/media.stopped`, [`crate::stop_record`]): `stop`
//!   writes it before signalling anything, `start` removes it before starting anything, and a
//!   pass leaves the media down while it exists, after a restart of the control plane too.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::runtime::Handle;

use super::protocol::MediaProcess;
use crate::stop_record;
use crate::supervise::{
    Ensured, PortOwner, ProcessSpec, ProcessStatus, StopOutcome, Supervisor, health, listening_on,
    runs_another_binary, started,
};
use crate::supervise::{LIVEKIT_SERVER, MEDIA};
use livekit_provision::ErrorReport;
use livekit_provision::OperatorConfig;
use livekit_provision::StateDir;
use livekit_provision::ensure::BinaryState;
use livekit_provision::settings::MediaOwner;
use livekit_provision::{BinarySource, LivekitBinary, NodeSnapshot};

/// Why a media process is not up, for `status` and the provisioning state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MediaFailure {
    pub message: String,
    pub hint: Option<String>,
}

impl From<ErrorReport> for MediaFailure {
    fn from(report: ErrorReport) -> Self {
        Self {
            message: report.to_string(),
            hint: report.hint,
        }
    }
}

/// Called with the name and pid of a watched media process when it exits.
pub(super) type OnExit = Box<dyn Fn(String, u32) + Send + Sync>;

/// The result of a pass.
#[derive(Debug, Default)]
pub(super) struct Pass {
    /// Processes that are not up, and why.
    pub failures: Vec<MediaFailure>,
    /// The earliest time a crashed process may be started again.
    pub retry_at: Option<Instant>,
}

/// The supervisor with what the daemon adds: start errors, exit watches (the operator's stop
/// is on disk: [`crate::stop_record`]).
pub(super) struct Media {
    supervisor: Supervisor,
    errors: BTreeMap<String, String>,
    watched: BTreeSet<u32>,
    on_exit: Arc<OnExit>,
    runtime: Handle,
    /// The specs of the last pass: what `status` compares the running processes with.
    specs: Vec<ProcessSpec>,
    /// Why a restart is pending, per process (empty: none).
    restart_reasons: BTreeMap<String, Vec<String>>,
    /// Processes we did not start found on a media port, per name.
    foreign: BTreeMap<String, PortOwner>,
}

/// Refuse `start`, `stop` and `restart` when an outside supervisor owns the media.
fn refuse_if_external(owner: MediaOwner) -> Result<(), MediaFailure> {
    match owner {
        MediaOwner::External => Err(externally_owned()),
        MediaOwner::Daemon => Ok(()),
    }
}

/// The refusal of `start`, `stop` and `restart` when an outside supervisor owns the media.
fn externally_owned() -> MediaFailure {
    MediaFailure {
        message: "the media are owned by an outside supervisor (media_owner: external in provision.yaml): the daemon never starts, stops or signals them".to_owned(),
        hint: Some("use the supervisor (`systemctl start|stop|restart livekit-server`, units from `livekit-provision units`), or set media_owner: daemon in provision.yaml".to_owned()),
    }
}

/// A process we did not start holds `name`'s port: why `name` is not started.
fn foreign_failure(name: &str, owner: &PortOwner) -> MediaFailure {
    let (message, hint) = owner.refusal(name);
    MediaFailure {
        message,
        hint: Some(hint),
    }
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media")
            .field("supervisor", &self.supervisor)
            .field("errors", &self.errors)
            .field("watched", &self.watched)
            .finish_non_exhaustive()
    }
}

/// The livekit-server program to run, if any, of the binary `chosen` ([`LivekitBinary::choose`],
/// in a [`NodeSnapshot`]). After a run, `ensure`'s [`BinaryState`] says whether it is there:
/// `None` when no version is pinned and no `livekit_bin` is set (control plane only) or the
/// pinned one is not installed. Without a run (a `start` call): the operator's binary, else the
/// installed one when it exists.
pub(super) fn livekit_program(
    chosen: &LivekitBinary,
    after_ensure: Option<&BinaryState>,
) -> Option<PathBuf> {
    let chosen = chosen.clone();
    match after_ensure {
        Some(BinaryState::External { .. } | BinaryState::Installed { .. }) => Some(chosen.path),
        Some(BinaryState::NotPinned) => chosen.external(),
        Some(_) => None,
        None => match chosen.source {
            BinarySource::Installed => chosen.path.exists().then_some(chosen.path),
            _ => Some(chosen.path),
        },
    }
}

/// The processes to supervise, from `node`'s settings and `backend.env`, with `program` as
/// livekit-server: see [`crate::media::process_specs`].
pub(super) fn specs(state: &StateDir, node: &NodeSnapshot, program: PathBuf) -> Vec<ProcessSpec> {
    crate::media::process_specs(
        state,
        &node.config.settings,
        program,
        node.disk.backend_env.valid(),
    )
}

impl Media {
    pub fn new(supervisor: Supervisor, on_exit: OnExit, runtime: Handle) -> Self {
        Self {
            supervisor,
            errors: BTreeMap::new(),
            watched: BTreeSet::new(),
            on_exit: Arc::new(on_exit),
            runtime,
            specs: Vec::new(),
            restart_reasons: BTreeMap::new(),
            foreign: BTreeMap::new(),
        }
    }

    /// Who owns the media, from `provision.yaml` now (for an exit, which comes with no reading
    /// of its own).
    fn owner(&self) -> Result<MediaOwner, MediaFailure> {
        OperatorConfig::load(self.supervisor.state())
            .map(|c| c.settings.media_owner)
            .map_err(|e| MediaFailure::from(ErrorReport::of(&e)))
    }

    /// Why `spec`'s running process `pid` should be restarted: another binary installed, or
    /// what it started with (`run/<name>.started.json`) differs from what is on disk now.
    /// Recorded in the supervisor's `restart_pending`; a new set of reasons is logged once.
    fn update_reasons(&mut self, spec: &ProcessSpec, pid: u32) -> Vec<String> {
        let mut reasons = Vec::new();
        if runs_another_binary(pid, &spec.program) {
            reasons.push(format!(
                "a new binary is installed at {}",
                spec.program.display()
            ));
        }
        for reason in started::restart_reasons(self.supervisor.state(), spec, pid) {
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
        }
        // Name the release a new binary is, when it is the installed one.
        if let Some(version) = livekit_provision::fetch::installed(self.supervisor.state())
            .ok()
            .flatten()
            .filter(|b| b.active && spec.program == self.supervisor.state().livekit_bin())
            .map(|b| b.version)
        {
            for reason in &mut reasons {
                if reason.starts_with("a new binary is installed at") && !reason.ends_with(')') {
                    let _ = write!(reason, " (livekit-server {version})");
                }
            }
        }
        let name = spec.name.as_str();
        if !reasons.is_empty() && self.restart_reasons.get(name) != Some(&reasons) {
            tracing::warn!(
                name,
                pid,
                ?reasons,
                "restart pending: applied by the changes: policy of provision.yaml (idle by default), or by `restart`"
            );
        }
        self.supervisor
            .set_restart_pending(name, !reasons.is_empty());
        self.restart_reasons
            .insert(name.to_owned(), reasons.clone());
        reasons
    }

    /// A process we did not start listening on `spec`'s port while none of ours runs.
    fn foreign_listener(&self, spec: &ProcessSpec) -> Option<PortOwner> {
        if self
            .supervisor
            .process(&spec.name)
            .is_some_and(crate::supervise::MediaProcess::is_alive)
        {
            return None;
        }
        crate::supervise::foreign_listener(self.supervisor.state(), spec)
    }

    /// `media_owner: external`: adopt what the outside supervisor runs (from the pid files
    /// `livekit-provision exec` writes) and compare it with the disk; start nothing.
    fn observe(&mut self, specs: &[ProcessSpec]) {
        for spec in specs {
            self.supervisor.configure(spec);
            match self.supervisor.status(&spec.name) {
                Ok(ProcessStatus { pid: Some(pid), .. }) => {
                    self.errors.remove(&spec.name);
                    self.update_reasons(spec, pid);
                }
                Ok(_) => {
                    self.errors.remove(&spec.name);
                    self.restart_reasons.remove(&spec.name);
                }
                Err(e) => {
                    let failure = MediaFailure::from(ErrorReport::of(&e));
                    self.errors.insert(spec.name.clone(), failure.message);
                }
            }
        }
    }

    /// Start what is down (never touching what runs), unless the operator stopped the media
    /// (`run/media.stopped`) or an outside supervisor owns them (`owner`: then only observe).
    pub fn pass(&mut self, specs: &[ProcessSpec], owner: MediaOwner) -> Pass {
        let mut pass = Pass::default();
        self.specs = specs.to_vec();
        if owner == MediaOwner::External {
            self.observe(specs);
            self.arm_watches();
            return pass;
        }
        if stop_record::read(self.supervisor.state()).is_some() {
            return pass;
        }
        for spec in specs {
            let name = spec.name.as_str();
            if let Some(owner) = self.foreign_listener(spec) {
                let failure = foreign_failure(name, &owner);
                if self.foreign.get(name) != Some(&owner) {
                    tracing::warn!(name, pid = owner.pid, process = %owner.name, port = owner.port, "a process we did not start holds the port; not starting");
                }
                self.foreign.insert(name.to_owned(), owner);
                self.errors.insert(name.to_owned(), failure.message.clone());
                pass.failures.push(failure);
                continue;
            }
            self.foreign.remove(name);
            match self.supervisor.ensure_running(spec, Instant::now()) {
                Ok(Ensured::Started { pid }) => {
                    tracing::info!(name, pid, "started");
                    self.errors.remove(name);
                    self.supervisor.set_restart_pending(name, false);
                    self.restart_reasons.remove(name);
                    started::record_now(self.supervisor.state(), spec, pid);
                }
                Ok(Ensured::AlreadyRunning { pid, healthy }) => {
                    tracing::debug!(name, pid, healthy, "already running; left alone");
                    self.errors.remove(name);
                    self.update_reasons(spec, pid);
                }
                Ok(Ensured::BackingOff { until }) => {
                    let wait = until.saturating_duration_since(Instant::now());
                    let message = self.errors.get(name).cloned().unwrap_or_else(|| {
                        format!("{name} exited; it is started again in {}", seconds(wait))
                    });
                    pass.failures.push(MediaFailure {
                        message,
                        hint: None,
                    });
                    pass.retry_at = Some(pass.retry_at.map_or(until, |t| t.min(until)));
                }
                Ok(Ensured::CrashLooping { reason, retry_at }) => {
                    pass.failures.push(MediaFailure {
                        message: reason,
                        hint: Some(format!(
                            "it is started again in {} by itself; fix the cause, then `livekit-provision start` to try {name} again at once",
                            seconds(retry_at.saturating_duration_since(Instant::now()))
                        )),
                    });
                    pass.retry_at = Some(pass.retry_at.map_or(retry_at, |t| t.min(retry_at)));
                }
                Err(e) => {
                    let failure = MediaFailure::from(ErrorReport::of(&e));
                    tracing::warn!(name, error = %failure.message, "could not start");
                    self.errors.insert(name.to_owned(), failure.message.clone());
                    pass.failures.push(failure);
                    // An exit during startup is a crash: the next start follows its backoff,
                    // not the provisioning retries.
                    if let Some(at) = self.supervisor.next_start(name) {
                        pass.retry_at = Some(pass.retry_at.map_or(at, |t| t.min(at)));
                    }
                }
            }
        }
        self.arm_watches();
        pass
    }

    /// `start`: forget the operator's stop, crash history and failed marks, then a pass.
    /// Refused when an outside supervisor owns the media.
    pub fn start(&mut self, specs: &[ProcessSpec], owner: MediaOwner) -> Pass {
        let refused = |failure| Pass {
            failures: vec![failure],
            retry_at: None,
        };
        if let Err(failure) = refuse_if_external(owner) {
            return refused(failure);
        }
        if let Err(e) = crate::media::clear_stop(self.supervisor.state()) {
            return refused(MediaFailure::from(ErrorReport::of(&e)));
        }
        for spec in specs {
            self.supervisor.reset(&spec.name);
        }
        self.pass(specs, owner)
    }

    /// `stop`: record the operator's stop at `now` (nothing is signalled when it cannot be),
    /// then stop every media process (ours or adopted); they stay down until `start`. Refused
    /// when an outside supervisor owns the media.
    pub fn stop(
        &mut self,
        grace: Duration,
        owner: MediaOwner,
        now: SystemTime,
    ) -> Result<BTreeMap<String, StopOutcome>, MediaFailure> {
        refuse_if_external(owner)?;
        crate::media::record_stop(self.supervisor.state(), now)
            .map_err(|e| MediaFailure::from(ErrorReport::of(&e)))?;
        let mut outcomes = BTreeMap::new();
        for name in MEDIA {
            let outcome = self
                .supervisor
                .stop(name, grace)
                .map_err(|e| MediaFailure::from(ErrorReport::of(&e)))?;
            self.supervisor.set_restart_pending(name, false);
            self.errors.remove(name);
            self.restart_reasons.remove(name);
            outcomes.insert(name.to_owned(), outcome);
        }
        Ok(outcomes)
    }

    /// `name`'s running process, whether it answers its health probe, and why a restart is
    /// pending for it (empty: none); `None` when it does not run or no pass has described it.
    pub fn pending(&mut self, name: &str) -> Option<(u32, bool, Vec<String>)> {
        let spec = self.specs.iter().find(|s| s.name == name)?.clone();
        let status = self.supervisor.status(name).ok()?;
        let pid = status.pid?;
        let reasons = self.update_reasons(&spec, pid);
        Some((pid, status.healthy, reasons))
    }

    /// Begin draining `name` before a restart (one SIGTERM; its exit then starts it again).
    pub fn begin_drain(&mut self, name: &str) -> Result<(), MediaFailure> {
        match self.supervisor.begin_drain(name, Instant::now()) {
            Ok(true) => Ok(()),
            Ok(false) => Err(MediaFailure {
                message: format!("{name} is not running"),
                hint: None,
            }),
            Err(e) => Err(MediaFailure::from(ErrorReport::of(&e))),
        }
    }

    /// Whether `name` drains.
    pub fn draining(&self, name: &str) -> bool {
        self.supervisor.draining(name).is_some()
    }

    /// Take over the drain of `name`'s running process that an earlier control plane began.
    pub fn resume_drain(&mut self, name: &str) {
        self.supervisor.resume_drain(name, Instant::now());
    }

    /// End `name`'s drain now (SIGKILL: its participants rejoin the next start).
    pub fn end_drain(&mut self, name: &str) -> Result<StopOutcome, MediaFailure> {
        let outcome = self
            .supervisor
            .end_drain(name)
            .map_err(|e| MediaFailure::from(ErrorReport::of(&e)))?;
        self.supervisor.set_restart_pending(name, false);
        self.restart_reasons.remove(name);
        Ok(outcome)
    }

    /// `restart`: stop every media process before a start (a drain that outlasts `grace` ends
    /// with SIGKILL, so that its participants rejoin), forget the operator's stop and the crash
    /// history, then a pass. Refused when an outside supervisor owns the media.
    pub fn restart(
        &mut self,
        specs: &[ProcessSpec],
        grace: Duration,
        owner: MediaOwner,
    ) -> Result<(BTreeMap<String, StopOutcome>, Pass), MediaFailure> {
        refuse_if_external(owner)?;
        crate::media::clear_stop(self.supervisor.state())
            .map_err(|e| MediaFailure::from(ErrorReport::of(&e)))?;
        let mut outcomes = BTreeMap::new();
        for name in MEDIA {
            let outcome = self
                .supervisor
                .stop_for_restart(name, grace)
                .map_err(|e| MediaFailure::from(ErrorReport::of(&e)))?;
            self.supervisor.set_restart_pending(name, false);
            self.errors.remove(name);
            self.restart_reasons.remove(name);
            outcomes.insert(name.to_owned(), outcome);
        }
        for spec in specs {
            self.supervisor.reset(&spec.name);
        }
        Ok((outcomes, self.pass(specs, owner)))
    }

    /// The crash-loop report of `name` (with the last lines of its log), while it crash-loops.
    pub fn crash_looping(&mut self, name: &str) -> Option<String> {
        let status = self.supervisor.status(name).ok()?;
        (status.condition == crate::supervise::Condition::CrashLooping)
            .then_some(status.failed)
            .flatten()
    }

    /// Say what is wrong with `name` that no restart heals (`status` shows it as `alert`).
    pub fn set_alert(&mut self, name: &str, alert: Option<String>) {
        self.supervisor.set_alert(name, alert);
    }

    /// Record what healing did to `name` (`status` shows it as `healed`).
    pub fn healed(&mut self, name: &str, action: String) {
        self.supervisor.record_healed(name, action);
    }

    /// Forget `name`'s crash history (its cause was taken away): a start may follow at once.
    pub fn reset(&mut self, name: &str) {
        self.supervisor.reset(name);
        self.errors.remove(name);
    }

    /// Whether `name` answered nothing at its last probe.
    pub fn unresponsive(&self, name: &str) -> bool {
        self.supervisor
            .unresponsive_for(name, Instant::now())
            .is_some()
    }

    /// Heal `name` when it has answered nothing for `hung_after` (`None`: never): SIGKILL and a
    /// start after the crash backoff, or only a warning when an outside supervisor owns it (or
    /// it drains: the drain has its own end). When to run the next pass, when one is due.
    pub fn heal(
        &mut self,
        name: &str,
        hung_after: Option<Duration>,
        owner: MediaOwner,
    ) -> Option<Instant> {
        let now = Instant::now();
        let silent = self.supervisor.unresponsive_for(name, now)?;
        let after = hung_after?;
        if silent < after {
            return None;
        }
        if owner == MediaOwner::External {
            if !self.errors.contains_key(name) {
                tracing::warn!(name, silent = %seconds(silent), "answers nothing; left to its supervisor (media_owner: external)");
            }
            self.errors.insert(
                name.to_owned(),
                format!("{name} has answered nothing for {}; its supervisor owns it (media_owner: external)", seconds(silent)),
            );
            return None;
        }
        let pid = self
            .supervisor
            .process(name)
            .map(crate::supervise::MediaProcess::pid);
        match self.supervisor.replace_hung(name, silent, now) {
            Ok(Some(decision)) => {
                tracing::warn!(name, pid, silent = %seconds(silent), "hung: answered nothing to its health probe; killed (SIGKILL, so that its participants rejoin the next one) to start it again");
                self.restart_reasons.remove(name);
                self.supervisor.set_restart_pending(name, false);
                match decision {
                    crate::supervise::RestartDecision::RestartAt(at) => Some(at),
                    crate::supervise::RestartDecision::CrashLoop { .. } => Some(now),
                }
            }
            Ok(None) => None,
            Err(e) => {
                let failure = MediaFailure::from(ErrorReport::of(&e));
                tracing::warn!(name, error = %failure.message, "could not replace a hung process");
                self.errors.insert(name.to_owned(), failure.message);
                None
            }
        }
    }

    /// Record the exit of `pid`; when it was a crash, when to run next (the restart backoff, or
    /// at once after a give-up, so that the failure is reported).
    pub fn exited(&mut self, name: &str, pid: u32) -> Option<Instant> {
        self.watched.remove(&pid);
        if self.owner().is_ok_and(|o| o == MediaOwner::External) {
            // The outside supervisor restarts it (or not): never counted, never restarted here.
            tracing::info!(
                name,
                pid,
                "exited; left to its supervisor (media_owner: external)"
            );
            self.supervisor.forget(name, pid);
            return None;
        }
        if self.supervisor.draining(name).is_some() {
            tracing::info!(
                name,
                pid,
                "drained and exited, as asked: starting it again now"
            );
        }
        match self.supervisor.record_exit(name, pid, Instant::now())? {
            crate::supervise::RestartDecision::RestartAt(at) if at <= Instant::now() => Some(at),
            crate::supervise::RestartDecision::RestartAt(at) => {
                tracing::warn!(name, pid, restart_in = %seconds(at.saturating_duration_since(Instant::now())), "exited; restarting with backoff");
                Some(at)
            }
            crate::supervise::RestartDecision::CrashLoop { crashes, retry_at } => {
                tracing::error!(name, pid, crashes, retry_in = %seconds(retry_at.saturating_duration_since(Instant::now())), "crash-looping: started again after the longest backoff, each time");
                // A run now reports it (the provisioning state turns `failed`) and schedules
                // the next start.
                Some(Instant::now())
            }
        }
    }

    /// The status of each media process, for `status`: each running one compared with what is
    /// on disk now (restart pending and why); for one that is not running, a process we did not
    /// start listening on its port (unless an outside supervisor is the `owner`).
    pub fn statuses(&mut self, owner: MediaOwner) -> Vec<MediaProcess> {
        let external = owner == MediaOwner::External;
        let mut names = vec![LIVEKIT_SERVER.to_owned()];
        let list = match self.supervisor.statuses() {
            Ok(list) => list,
            Err(e) => {
                let report = ErrorReport::of(&e);
                return vec![MediaProcess::unreadable(LIVEKIT_SERVER, report.to_string())];
            }
        };
        names.extend(list.iter().map(|s| s.name.clone()));
        names.dedup();
        let mut out = Vec::new();
        for name in names {
            let status = match list.iter().find(|s| s.name == name) {
                Some(s) => Ok(s.clone()),
                None => self.supervisor.status(&name),
            };
            let mut status = match status {
                Ok(status) => status,
                Err(e) => {
                    out.push(MediaProcess::unreadable(
                        &name,
                        ErrorReport::of(&e).to_string(),
                    ));
                    continue;
                }
            };
            let spec = self.specs.iter().find(|s| s.name == name).cloned();
            let mut listener = None;
            match (status.pid, &spec) {
                (Some(pid), Some(spec)) => {
                    status.restart_pending = !self.update_reasons(spec, pid).is_empty();
                }
                (None, Some(spec)) => {
                    self.restart_reasons.remove(&name);
                    listener = spec.health.and_then(|a| listening_on(a.port()));
                    if let (true, Some(owner)) = (external, &listener) {
                        // The supervisor's process, started without `exec` (no pid file).
                        status.pid = Some(owner.pid);
                        status.running = true;
                        status.healthy = spec.health.is_some_and(|a| {
                            health::check(a, &spec.probe, health::PROBE_TIMEOUT).is_ready()
                        });
                    }
                }
                _ => {}
            }
            let error = match (&listener, external) {
                (Some(owner), false) => Some(foreign_failure(&name, owner).message),
                _ => self.errors.get(&name).cloned(),
            };
            out.push(MediaProcess {
                error,
                restart_reasons: self.restart_reasons.get(&name).cloned().unwrap_or_default(),
                status,
                listener,
            });
        }
        self.arm_watches();
        out
    }

    /// Watch the exit of every held process not yet watched.
    fn arm_watches(&mut self) {
        for name in MEDIA.iter().rev().copied() {
            let Some(process) = self.supervisor.process(name) else {
                continue;
            };
            let pid = process.pid();
            if self.watched.contains(&pid) {
                continue;
            }
            let watch = match process.exit_watch() {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(name, pid, error = %e, "cannot watch the exit");
                    continue;
                }
            };
            self.watched.insert(pid);
            let on_exit = Arc::clone(&self.on_exit);
            let name = name.to_owned();
            self.runtime.spawn(async move {
                match watch.exited().await {
                    Ok(()) => on_exit(name, pid),
                    Err(e) => tracing::warn!(name, pid, error = %e, "exit watch failed"),
                }
            });
        }
    }
}

fn seconds(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs().max(1))).to_string()
}
