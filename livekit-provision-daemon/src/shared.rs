//! The daemon's shared state: what the loop ([`super::controller`]), the connections
//! ([`super::connection`]) and the blocking runs all hold, and the events they send the loop.
//! It depends on [`super::keeper`] and [`super::status`] only, so the modules that use it do not
//! import each other.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::DaemonConfig;
use super::gate::Disabled;
use super::keeper::{Media, MediaFailure};
use super::protocol::{MediaProcess, MediaReport, Operation, Phase, Progress, RpcError};
use super::status::ProvisionStatus;
use livekit_provision::ManagedFile;
use livekit_provision::OperatorConfig;
use livekit_provision::ensure::EnsureReport;
use livekit_provision::fetch::{EventSink, FetchEvent};

/// A reply to an `ensure` call.
pub(super) type EnsureReply = oneshot::Sender<Result<EnsureReport, RpcError>>;

/// What reaches the loop from its tasks.
#[derive(Debug)]
pub(super) enum Event {
    /// Run provisioning now (an `ensure` call, with its reply, or a reload).
    Ensure(Option<EnsureReply>),
    /// A run finished.
    RunDone(Box<RunOutcome>),
    /// A watched media process exited.
    MediaExited { name: String, pid: u32 },
    /// Run no later than this (a media restart is due).
    RunBy(Instant),
}

/// What a run found.
#[derive(Debug)]
pub(super) struct RunOutcome {
    /// `ensure`'s own result.
    pub ensure: Result<EnsureReport, RpcError>,
    /// Why the run as a whole failed (ensure, install, or media).
    pub failure: Option<MediaFailure>,
    /// Why no media were provisioned: no version pinned (and no `livekit_bin`), or the gate.
    pub disabled: Option<Disabled>,
    /// The next run must start by then: a media restart falls due, or a rotation grace ends.
    pub run_by: Option<Instant>,
}

/// State shared by the loop, the connections and the blocking runs.
#[derive(Debug)]
pub(super) struct Shared {
    pub config: DaemonConfig,
    pub status: Mutex<ProvisionStatus>,
    pub media: Mutex<Media>,
    /// The media statuses last read, for a `status` call while the supervisor is busy.
    pub media_cache: Mutex<Vec<MediaProcess>>,
    /// SHA-256 of the `livekit.yaml` bytes last published (or started with).
    pub published: Mutex<Option<String>>,
    pub events: mpsc::UnboundedSender<Event>,
    /// What the run or `install` in flight is doing (`status.provisioning.progress`).
    pub progress: ProgressCell,
    /// Pending changes, the node's rooms, drains and key epochs ([`super::apply`]).
    pub applier: Mutex<super::apply::state::Applier>,
    /// What self-healing remembers between ticks ([`super::heal`]).
    pub heal: Mutex<super::heal::state::HealState>,
    /// Whether the secret store answers ([`StoreHealth`]).
    pub store_health: Mutex<StoreHealth>,
}

/// Whether the secret store answers: every provisioning run and every read of the key epoch
/// (every 10 s, every second while a rotation is under way) says. While it does not, the media
/// run on the last published files and nothing is minted, rotated or published.
#[derive(Debug, Default, Clone)]
pub(super) struct StoreHealth {
    unreachable_since: Option<std::time::SystemTime>,
    error: Option<String>,
    last_ok: Option<std::time::SystemTime>,
}

impl StoreHealth {
    /// A read succeeded at `now`. `true` when the store was unreachable until then.
    pub fn ok(&mut self, now: std::time::SystemTime) -> bool {
        self.error = None;
        self.last_ok = Some(now);
        let back = self.unreachable_since.take();
        if let Some(since) = back {
            tracing::info!(since = %livekit_provision::clock::rfc3339(since), "the secret store answers again");
        }
        back.is_some()
    }

    /// A read failed at `now` with `error` (one line; store errors never carry a secret).
    pub fn failed(&mut self, now: std::time::SystemTime, error: String) {
        if self.unreachable_since.is_none() {
            tracing::warn!(error = %error, "the secret store does not answer: the media keep running on the last published files; nothing is minted, rotated or published until it does");
            self.unreachable_since = Some(now);
        }
        self.error = Some(error);
    }

    /// What `status.store` says.
    pub fn report(&self) -> super::protocol::StoreReport {
        use livekit_provision::clock::rfc3339;
        super::protocol::StoreReport {
            reachable: self.error.is_none(),
            unreachable_since: self.unreachable_since.map(rfc3339),
            error: self.error.clone(),
            last_ok: self.last_ok.map(rfc3339),
        }
    }
}

/// Whether the secret store answers now, recorded in `shared`: one read of
/// `LIVEKIT_VERSION`. Asked after a run or a key-epoch read failed, whose errors do not say
/// whether the store or something else failed.
pub(super) fn probe_store(shared: &Shared, now: std::time::SystemTime) -> bool {
    let read = shared
        .config
        .store
        .open()
        .and_then(|store| store.get(&livekit_provision::SecretName::LIVEKIT_VERSION));
    let mut health = lock(&shared.store_health);
    match read {
        Ok(_) => {
            health.ok(now);
            true
        }
        Err(e) => {
            health.failed(now, livekit_provision::one_line(&e));
            false
        }
    }
}

/// The progress of the long operation in flight, shared with download callbacks.
#[derive(Debug, Clone, Default)]
pub(super) struct ProgressCell(Arc<Mutex<Option<Progress>>>);

impl ProgressCell {
    /// `operation` entered `phase`.
    pub fn phase(&self, operation: Operation, phase: Phase) {
        *lock(&self.0) = Some(Progress {
            operation,
            phase,
            bytes_done: None,
            bytes_total: None,
        });
    }

    /// Nothing is in flight any more.
    pub fn clear(&self) {
        *lock(&self.0) = None;
    }

    /// What is in flight.
    pub fn get(&self) -> Option<Progress> {
        lock(&self.0).clone()
    }

    /// A download sink that records the bytes received as phase `downloading` of `operation`.
    pub fn fetch_sink(&self, operation: Operation) -> EventSink {
        let cell = self.clone();
        Arc::new(move |event: &FetchEvent| {
            let (bytes_done, bytes_total) = match event {
                FetchEvent::Started => (None, None),
                FetchEvent::Progress { done, total } => (Some(*done), *total),
                _ => return,
            };
            *lock(&cell.0) = Some(Progress {
                operation,
                phase: Phase::Downloading,
                bytes_done,
                bytes_total,
            });
        })
    }
}

/// Lock `m`, ignoring poisoning (a panicked holder left consistent data: every update is one
/// assignment).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The media part of `status` (and `health`'s restart pending): read from the supervisor, or,
/// while it is busy (a start or stop in progress), the last reading.
pub(super) fn media_report(shared: &Shared) -> MediaReport {
    let owner = OperatorConfig::load(&shared.config.state)
        .map(|c| c.settings.media_owner)
        .unwrap_or_default();
    let (busy, processes) = match shared.media.try_lock() {
        Ok(mut media) => {
            let processes = media.statuses(owner);
            drop(media);
            lock(&shared.media_cache).clone_from(&processes);
            (false, processes)
        }
        Err(TryLockError::Poisoned(p)) => (false, p.into_inner().statuses(owner)),
        Err(TryLockError::WouldBlock) => (true, lock(&shared.media_cache).clone()),
    };
    let stopped = crate::stop_record::read(&shared.config.state);
    MediaReport {
        owner,
        busy,
        processes,
        stopped_on_purpose: stopped.is_some(),
        stopped_since: stopped.and_then(crate::stop_record::Stopped::since_rfc3339),
        held: livekit_provision::hold::held(&shared.config.state),
    }
}

/// SHA-256 of the `livekit.yaml` at the fixed path now, hex; `None` when it cannot be read.
pub(super) fn livekit_yaml_digest(shared: &Shared) -> Option<String> {
    let bytes = livekit_provision::fsio::read_regular(
        &shared.config.state.managed(ManagedFile::LivekitYaml),
    )
    .ok()?;
    Some(livekit_provision::hex::encode(&Sha256::digest(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_follows_phases_and_download_bytes() {
        let cell = ProgressCell::default();
        assert_eq!(cell.get(), None);
        cell.phase(Operation::Provision, Phase::Resolving);
        assert_eq!(cell.get().map(|p| p.phase), Some(Phase::Resolving));
        let sink = cell.fetch_sink(Operation::Install);
        sink(&FetchEvent::Progress {
            done: 512,
            total: Some(2048),
        });
        assert_eq!(
            cell.get(),
            Some(Progress {
                operation: Operation::Install,
                phase: Phase::Downloading,
                bytes_done: Some(512),
                bytes_total: Some(2048),
            })
        );
        // Other events leave the count alone.
        sink(&FetchEvent::Restarted);
        assert_eq!(cell.get().and_then(|p| p.bytes_done), Some(512));
        cell.clear();
        assert_eq!(cell.get(), None);
    }
}
