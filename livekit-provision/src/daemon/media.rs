//! The daemon's side of supervision: which media to run, a pass of `ensure_running` over them,
//! exit watches, and their status. Everything here blocks; it runs on tokio's blocking pool,
//! behind one mutex.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;

use super::protocol::MediaProcess;
use crate::binary::{BinarySource, LivekitBinary};
use crate::ensure::{BinaryOptions, BinaryState};
use crate::error_chain::ErrorReport;
use crate::paths::StateDir;
use crate::settings::Settings;
use crate::supervise::spawn::{LIVEKIT_SERVER, LK_BACKEND};
use crate::supervise::{Ensured, ProcessSpec, StopOutcome, Supervisor, runs_another_binary};
use crate::triple::DiskTriple;

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

/// The supervisor with what the daemon adds: the operator's wish, start errors, exit watches.
pub(super) struct Media {
    supervisor: Supervisor,
    /// False after a `stop` call: background runs leave the media down.
    pub wants_running: bool,
    errors: BTreeMap<String, String>,
    watched: BTreeSet<u32>,
    on_exit: Arc<OnExit>,
    runtime: Handle,
    /// The config text each process was started with (for an adopted one: the text on disk when
    /// this daemon first saw it, as it cannot know better).
    started_with: BTreeMap<String, String>,
    /// Why a restart is pending, per process (empty: none).
    restart_reasons: BTreeMap<String, Vec<String>>,
}

/// The text of the `--config` file a spec starts with, if it has one.
fn config_text(spec: &ProcessSpec) -> Option<String> {
    let at = spec.args.iter().position(|a| a == "--config")?;
    std::fs::read_to_string(spec.args.get(at + 1)?).ok()
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media")
            .field("supervisor", &self.supervisor)
            .field("wants_running", &self.wants_running)
            .field("errors", &self.errors)
            .field("watched", &self.watched)
            .finish_non_exhaustive()
    }
}

/// The livekit-server program to run, if any ([`LivekitBinary::choose`]). After a run,
/// `ensure`'s [`BinaryState`] says whether it is there: `None` when no version is pinned and no
/// `livekit_bin` is set (control plane only) or the pinned one is not installed. Without a run
/// (a `start` call): the operator's binary, else the installed one when it exists.
pub(super) fn livekit_program(
    state: &StateDir,
    settings: &Settings,
    binary: &BinaryOptions,
    after_ensure: Option<&BinaryState>,
) -> Option<PathBuf> {
    let chosen = LivekitBinary::choose(state, settings, binary.livekit_bin.as_deref());
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

/// The processes to supervise: see [`crate::media::process_specs`].
pub(super) fn specs(state: &StateDir, settings: &Settings, program: PathBuf) -> Vec<ProcessSpec> {
    let disk = DiskTriple::read(state);
    crate::media::process_specs(state, settings, program, disk.backend_env.valid())
}

impl Media {
    pub fn new(supervisor: Supervisor, on_exit: OnExit, runtime: Handle) -> Self {
        Self {
            supervisor,
            wants_running: true,
            errors: BTreeMap::new(),
            watched: BTreeSet::new(),
            on_exit: Arc::new(on_exit),
            runtime,
            started_with: BTreeMap::new(),
            restart_reasons: BTreeMap::new(),
        }
    }

    /// Why `spec`'s running process should be restarted: another binary installed, or a
    /// published config that differs from the one it started with.
    fn restart_reasons(&mut self, spec: &ProcessSpec, pid: u32) -> Vec<String> {
        let mut reasons = Vec::new();
        if runs_another_binary(pid, &spec.program) {
            reasons.push(format!(
                "a new binary is installed at {}",
                spec.program.display()
            ));
        }
        if let Some(now) = config_text(spec) {
            match self.started_with.get(&spec.name) {
                Some(started) => reasons.extend(
                    crate::config_diff::config_changes(started, &now)
                        .into_iter()
                        .map(|change| format!("livekit.yaml changed: {change}")),
                ),
                None => {
                    self.started_with.insert(spec.name.clone(), now);
                }
            }
        }
        reasons
    }

    /// Start what is down (never touching what runs), unless the operator stopped the media.
    pub fn pass(&mut self, specs: &[ProcessSpec]) -> Pass {
        let mut pass = Pass::default();
        if !self.wants_running {
            return pass;
        }
        for spec in specs {
            let name = spec.name.as_str();
            match self.supervisor.ensure_running(spec, Instant::now()) {
                Ok(Ensured::Started { pid }) => {
                    tracing::info!(name, pid, "started");
                    self.errors.remove(name);
                    self.supervisor.set_restart_pending(name, false);
                    self.restart_reasons.remove(name);
                    match config_text(spec) {
                        Some(text) => self.started_with.insert(name.to_owned(), text),
                        None => self.started_with.remove(name),
                    };
                }
                Ok(Ensured::AlreadyRunning { pid, healthy }) => {
                    tracing::debug!(name, pid, healthy, "already running; left alone");
                    self.errors.remove(name);
                    let reasons = self.restart_reasons(spec, pid);
                    if !reasons.is_empty() {
                        tracing::warn!(
                            name,
                            pid,
                            ?reasons,
                            "restart pending: `restart` applies it"
                        );
                    }
                    self.supervisor
                        .set_restart_pending(name, !reasons.is_empty());
                    self.restart_reasons.insert(name.to_owned(), reasons);
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
                Ok(Ensured::Failed { reason }) => pass.failures.push(MediaFailure {
                    message: reason,
                    hint: Some(format!(
                        "fix the cause, then `livekit-provision start` to try {name} again"
                    )),
                }),
                Err(e) => {
                    let failure = MediaFailure::from(ErrorReport::of(&e));
                    tracing::warn!(name, error = %failure.message, "could not start");
                    self.errors.insert(name.to_owned(), failure.message.clone());
                    pass.failures.push(failure);
                }
            }
        }
        self.arm_watches();
        pass
    }

    /// `start`: forget crash history and failed marks, then a pass.
    pub fn start(&mut self, specs: &[ProcessSpec]) -> Pass {
        self.wants_running = true;
        for spec in specs {
            self.supervisor.reset(&spec.name);
        }
        self.pass(specs)
    }

    /// `stop`: stop every media process (ours or adopted) and keep them down.
    pub fn stop(&mut self, grace: Duration) -> Result<BTreeMap<String, StopOutcome>, MediaFailure> {
        self.wants_running = false;
        let mut outcomes = BTreeMap::new();
        for name in [LK_BACKEND, LIVEKIT_SERVER] {
            let outcome = self
                .supervisor
                .stop(name, grace)
                .map_err(|e| MediaFailure::from(ErrorReport::of(&e)))?;
            self.supervisor.set_restart_pending(name, false);
            self.errors.remove(name);
            self.restart_reasons.remove(name);
            self.started_with.remove(name);
            outcomes.insert(name.to_owned(), outcome);
        }
        Ok(outcomes)
    }

    /// Record the exit of `pid`; when it was a crash, when to run next (the restart backoff, or
    /// at once after a give-up, so that the failure is reported).
    pub fn exited(&mut self, name: &str, pid: u32) -> Option<Instant> {
        self.watched.remove(&pid);
        match self.supervisor.record_exit(name, pid, Instant::now())? {
            crate::supervise::RestartDecision::RestartAt(at) => {
                tracing::warn!(name, pid, restart_in = %seconds(at.saturating_duration_since(Instant::now())), "exited; restarting with backoff");
                Some(at)
            }
            crate::supervise::RestartDecision::GiveUp { crashes } => {
                tracing::error!(name, pid, crashes, "crashed too often; marked failed");
                // A run now reports it (the provisioning state turns `failed`).
                Some(Instant::now())
            }
        }
    }

    /// The status of each media process, for `status`.
    pub fn statuses(&mut self) -> Vec<MediaProcess> {
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
            out.push(match status {
                Ok(status) => MediaProcess {
                    error: self.errors.get(&name).cloned(),
                    restart_reasons: self.restart_reasons.get(&name).cloned().unwrap_or_default(),
                    status,
                },
                Err(e) => MediaProcess::unreadable(&name, ErrorReport::of(&e).to_string()),
            });
        }
        self.arm_watches();
        out
    }

    /// Watch the exit of every held process not yet watched.
    fn arm_watches(&mut self) {
        for name in [LIVEKIT_SERVER, LK_BACKEND] {
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
