//! The daemon's loop: accept connections, take commands, schedule provisioning runs, react to
//! media exits. Blocking work is handed to the blocking pool; the loop itself never waits on it.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::net::UnixListener;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::gate::{self, Disabled};
use super::keeper::{self, Media, MediaFailure};
use super::protocol::{Operation, Phase};
use super::protocol::{ProvisionState, RpcError};
use super::shared::{
    EnsureReply, Event, ProgressCell, RunOutcome, Shared, livekit_yaml_digest, lock,
};
use super::status::ProvisionStatus;
use super::{Command, DaemonConfig, DaemonError, connection};
use crate::supervise::Supervisor;
use livekit_provision::ErrorReport;
use livekit_provision::ensure::{EnsureOptions, EnsureReport, Reconciled, reconcile};

/// The pause after a failed `accept` (out of descriptors, …) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

struct Schedule {
    in_flight: bool,
    run_now: bool,
    next_run: Instant,
    /// The earliest run asked for while a run was in flight (a media restart came due); the
    /// time chosen when that run finishes may not be later.
    run_by: Option<Instant>,
    /// Replies owed when the run in flight finishes.
    current: Vec<EnsureReply>,
    /// Replies owed by the next run.
    queued: Vec<EnsureReply>,
}

impl Schedule {
    /// Run no later than `at`.
    fn run_by(&mut self, at: Instant) {
        self.next_run = self.next_run.min(at);
        if self.in_flight {
            self.run_by = Some(self.run_by.map_or(at, |t| t.min(at)));
        }
    }

    /// The run in flight finished and proposes the next one at `next`; a run asked for
    /// meanwhile comes first. The time chosen.
    fn finished(&mut self, next: Instant) -> Instant {
        self.in_flight = false;
        self.next_run = self.run_by.take().map_or(next, |at| next.min(at));
        self.next_run
    }
}

/// The state a loop shares with its connections and handles, and the receiver of its events.
/// Within a tokio runtime (exit watches are spawned on it).
pub(super) fn prepare(config: DaemonConfig) -> (Arc<Shared>, mpsc::UnboundedReceiver<Event>) {
    let (events_tx, events) = mpsc::unbounded_channel();
    let supervisor = Supervisor::new(
        config.state.clone(),
        config.media_env.clone(),
        config.restart,
    )
    .with_clock(config.clock);
    let shared = Arc::new(Shared {
        media: Mutex::new(Media::new(
            supervisor,
            exit_sender(&events_tx),
            Handle::current(),
        )),
        media_cache: Mutex::new(Vec::new()),
        config,
        status: Mutex::new(ProvisionStatus::default()),
        published: Mutex::new(None),
        events: events_tx,
        progress: ProgressCell::default(),
        applier: Mutex::new(super::apply::state::Applier::default()),
        heal: Mutex::new(super::heal::state::HealState::default()),
        store_health: Mutex::new(super::shared::StoreHealth::default()),
    });
    (shared, events)
}

/// The next connection on `listener`; never, without one (a host serves the methods).
async fn accept(
    listener: Option<&UnixListener>,
) -> std::io::Result<(tokio::net::UnixStream, tokio::net::unix::SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// The next command; never, without a channel.
async fn next_command(commands: Option<&mut mpsc::Receiver<Command>>) -> Option<Command> {
    match commands {
        Some(commands) => commands.recv().await,
        None => std::future::pending().await,
    }
}

/// The loop: serve `listener` (when there is one), take `commands` (when there are), run
/// provisioning, until `shutdown` completes or [`Command::Shutdown`] arrives.
pub(super) async fn run(
    shared: Arc<Shared>,
    mut events: mpsc::UnboundedReceiver<Event>,
    listener: Option<UnixListener>,
    mut commands: Option<mpsc::Receiver<Command>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let socket = listener.as_ref().map(|_| shared.config.state.rpc_socket());
    if let Some(socket) = &socket {
        tracing::info!(socket = %socket.display(), "serving");
    } else {
        tracing::info!(
            state = %shared.config.state.root().display(),
            "control plane running; its methods are served by the host"
        );
    }
    let mut schedule = Schedule {
        in_flight: false,
        run_now: true,
        next_run: Instant::now(),
        run_by: None,
        current: Vec::new(),
        queued: Vec::new(),
    };
    let ticker = tokio::spawn(tick_forever(Arc::clone(&shared)));
    tokio::pin!(shutdown);
    loop {
        if schedule.run_now && !schedule.in_flight {
            start_run(&shared, &mut schedule);
        }
        let timer = tokio::time::sleep_until(schedule.next_run.into());
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            command = next_command(commands.as_mut()), if commands.is_some() => match command {
                Some(Command::Reload) => {
                    tracing::info!("reload: provisioning again");
                    schedule.run_now = true;
                }
                Some(Command::Shutdown) => break,
                None => commands = None,
            },
            accepted = accept(listener.as_ref()), if listener.is_some() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection::serve(stream, Arc::clone(&shared)));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(event) = events.recv() => handle(&shared, &mut schedule, event),
            () = timer, if !schedule.in_flight => schedule.run_now = true,
        }
    }
    ticker.abort();
    tracing::info!("shutting down; the media keep running");
    if let Some(socket) = socket {
        let _ = livekit_provision::fsio::remove_file(&socket);
    }
    Ok(())
}

/// Look at the node once a second ([`super::apply::tick`]): its rooms, pending changes applied
/// by the policy, key epochs. One tick at a time, on the blocking pool.
async fn tick_forever(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(super::apply::TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let shared = Arc::clone(&shared);
        if let Err(e) = tokio::task::spawn_blocking(move || super::apply::tick(&shared)).await {
            tracing::warn!(error = %e, "a tick failed");
        }
    }
}

/// What the media's exit watches call: an [`Event::MediaExited`] for the loop.
fn exit_sender(events: &mpsc::UnboundedSender<Event>) -> keeper::OnExit {
    let events = events.clone();
    Box::new(move |name, pid| {
        let _ = events.send(Event::MediaExited { name, pid });
    })
}

fn handle(shared: &Arc<Shared>, schedule: &mut Schedule, event: Event) {
    match event {
        Event::Ensure(reply) => {
            schedule.queued.extend(reply);
            schedule.run_now = true;
        }
        Event::RunBy(at) => schedule.run_by(at),
        Event::MediaExited { name, pid } => {
            let shared = Arc::clone(shared);
            tokio::task::spawn_blocking(move || {
                if let Some(at) = lock(&shared.media).exited(&name, pid) {
                    let _ = shared.events.send(Event::RunBy(at));
                }
            });
        }
        Event::RunDone(outcome) => finish_run(shared, schedule, &outcome),
    }
}

fn start_run(shared: &Arc<Shared>, schedule: &mut Schedule) {
    schedule.in_flight = true;
    schedule.run_now = false;
    schedule.current = std::mem::take(&mut schedule.queued);
    {
        let mut status = lock(&shared.status);
        status.state = ProvisionState::Running;
        status.runs += 1;
        status.last_run_at = Some((shared.config.clock)());
    }
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let worker = Arc::clone(&shared);
        let outcome = match tokio::task::spawn_blocking(move || {
            let outcome = provision(&worker);
            worker.progress.clear();
            outcome
        })
        .await
        {
            Ok(outcome) => outcome,
            Err(e) => {
                let message = format!("the provisioning run panicked: {e}");
                RunOutcome {
                    ensure: Err(RpcError::server(message.clone(), None)),
                    failure: Some(MediaFailure {
                        message,
                        hint: None,
                    }),
                    disabled: None,
                    run_by: None,
                }
            }
        };
        let _ = shared.events.send(Event::RunDone(Box::new(outcome)));
    });
}

fn finish_run(shared: &Shared, schedule: &mut Schedule, outcome: &RunOutcome) {
    let retry = &shared.config.retry;
    let random = (shared.config.random)();
    let mut status = lock(&shared.status);
    let delay = match &outcome.failure {
        None => {
            if let Some(disabled) = outcome.disabled
                && status.disabled != Some(disabled)
            {
                tracing::info!(reason = disabled.reason(), "provisioning disabled");
            }
            status.state = if outcome.disabled.is_some() {
                ProvisionState::Disabled
            } else {
                ProvisionState::Ready
            };
            status.disabled = outcome.disabled;
            status.consecutive_failures = 0;
            status.last_error = None;
            status.last_hint = None;
            status.last_success_at = status.last_run_at;
            retry.recheck_delay(random)
        }
        Some(failure) => {
            status.state = ProvisionState::Failed;
            status.disabled = None;
            status.consecutive_failures = status.consecutive_failures.saturating_add(1);
            status.last_error = Some(failure.message.clone());
            status.last_hint.clone_from(&failure.hint);
            let delay = retry.retry_delay(status.consecutive_failures, random);
            tracing::warn!(
                reason = %failure.message,
                retry_in = %humantime::format_duration(Duration::from_millis(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))),
                "provisioning failed; still serving, will retry"
            );
            delay
        }
    };
    let mut next = Instant::now() + delay;
    if let Some(at) = outcome.run_by {
        next = next.min(at);
    }
    let next = schedule.finished(next);
    status.next_run =
        Some((shared.config.clock)() + next.saturating_duration_since(Instant::now()));
    if let Ok(report) = &outcome.ensure {
        status.pinned_version.clone_from(&report.version);
    } else if outcome.disabled == Some(Disabled::Gated) {
        // Nothing ran: no version, and no warnings of a run.
        status.pinned_version = None;
        status.warnings.clear();
    }
    drop(status);
    // A run may have published a staged or retired key: the next tick reads the epoch again.
    lock(&shared.applier).invalidate_epoch();
    for reply in schedule.current.drain(..) {
        let _ = reply.send(outcome.ensure.clone());
    }
}

/// Keep `report`'s warnings for `status`, logging each at WARN when it is new (once per
/// change, not every run).
fn note_warnings(shared: &Shared, report: &EnsureReport) {
    let messages: Vec<String> = report.warnings.iter().map(|w| w.message.clone()).collect();
    let mut status = lock(&shared.status);
    for message in messages.iter().filter(|m| !status.warnings.contains(m)) {
        tracing::warn!(warning = %message, "provisioning warning");
    }
    status.warnings = messages;
}

/// The instant a rotation grace ending at `until` (by the daemon's clock) is over: the run then
/// drops the previous key (a little after, so its clock has passed `until`). `None` when that is
/// beyond the recheck anyway (the value comes from the store: it may be far away).
fn grace_end(config: &DaemonConfig, until: SystemTime) -> Option<Instant> {
    const AFTER: Duration = Duration::from_millis(100);
    let left = until
        .duration_since((config.clock)())
        .unwrap_or(Duration::ZERO)
        .saturating_add(AFTER);
    (left < config.retry.recheck).then(|| Instant::now() + left)
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One run, on a blocking thread: ensure, then the media.
fn provision(shared: &Shared) -> RunOutcome {
    let config = &shared.config;
    let state = &config.state;
    // A failed run asks whether the store answers (its errors do not always say).
    let failed = |report: ErrorReport| {
        super::shared::probe_store(shared, (config.clock)());
        RunOutcome {
            ensure: Err(RpcError::from_report(&report)),
            failure: Some(MediaFailure::from(report)),
            disabled: None,
            run_by: None,
        }
    };
    let store = match config.store.open() {
        Ok(store) => store,
        Err(e) => return failed(ErrorReport::of(&e)),
    };
    // The gate first: one read of LIVEKIT_VERSION; nothing is minted or written before it.
    match gate::open(config.provision, store.as_ref()) {
        Ok(true) => {}
        Ok(false) => {
            return RunOutcome {
                ensure: Err(Disabled::Gated.ensure_error()),
                failure: None,
                disabled: Some(Disabled::Gated),
                run_by: None,
            };
        }
        Err(e) => return failed(ErrorReport::of(&e)),
    }
    let on_lock_wait = |pid: Option<u32>| {
        tracing::info!(?pid, "waiting for another writer of the state directory");
    };
    let on_phase = |phase| shared.progress.phase(Operation::Provision, phase);
    let opts = EnsureOptions {
        now: (config.clock)(),
        local_addresses: (config.local_addresses)(),
        binary: config.binary.clone(),
        on_lock_wait: &on_lock_wait,
        on_phase: &on_phase,
        fetch_events: Some(shared.progress.fetch_sink(Operation::Provision)),
        ..EnsureOptions::default()
    };
    // The run's snapshot (settings, the files as published, the binary) is what the media step
    // below starts from: nothing is loaded or read again.
    let Reconciled { report, snapshot } = match reconcile(state, store.as_ref(), &opts) {
        Ok(run) => run,
        Err(e) => return failed(ErrorReport::of(&e)),
    };
    lock(&shared.store_health).ok((config.clock)());
    drop(store);
    note_warnings(shared, &report);
    if !report.is_noop() {
        tracing::info!(actions = report.actions.len(), generation = ?report.generation, "provisioned");
    }
    *lock(&shared.published) = livekit_yaml_digest(shared);
    let mut outcome = RunOutcome {
        ensure: Ok(report.clone()),
        failure: None,
        disabled: None,
        run_by: earliest(
            report
                .grace_until
                .and_then(|until| grace_end(config, until)),
            livekit_provision::tls::next_action(state, &snapshot.config.settings, opts.now)
                .and_then(|at| grace_end(config, at)),
        ),
    };
    if let Some(failure) = report.failure() {
        // The CLI's `ensure` says the same, word for word (`EnsureReport::failure`).
        let hint = failure.hint.map_or_else(
            || "it is retried with backoff; `status` shows when".to_owned(),
            |hint| format!("{hint} (until then it is retried with backoff; `status` shows when)"),
        );
        outcome.failure = Some(MediaFailure {
            message: failure.message,
            hint: Some(hint),
        });
        return outcome;
    }
    let Some(program) = keeper::livekit_program(&snapshot.binary, Some(&report.binary)) else {
        outcome.disabled = Some(Disabled::NotPinned);
        return outcome;
    };
    let specs = keeper::specs(state, &snapshot, program);
    shared.progress.phase(Operation::Provision, Phase::Starting);
    let pass = lock(&shared.media).pass(&specs, snapshot.config.settings.media_owner);
    outcome.run_by = earliest(outcome.run_by, pass.retry_at);
    if !pass.failures.is_empty() {
        let hint = pass.failures.iter().find_map(|f| f.hint.clone());
        let message = pass
            .failures
            .into_iter()
            .map(|f| f.message)
            .collect::<Vec<_>>()
            .join("; ");
        outcome.failure = Some(MediaFailure { message, hint });
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grace_end_is_scheduled_only_within_the_recheck_and_never_overflows() {
        fn at_1000_s() -> std::time::SystemTime {
            std::time::UNIX_EPOCH + Duration::from_secs(1000)
        }
        let mut config = DaemonConfig::new(
            livekit_provision::StateDir::new("/nonexistent"),
            livekit_provision::store::StoreSpec::File("/nonexistent/secrets.json".into()),
        );
        config.clock = at_1000_s;
        let now = Instant::now();
        let at = livekit_provision::clock::from_unix_secs;
        let soon = grace_end(&config, at(1010)).expect("10 s away, within the 5 min recheck");
        let left = soon.saturating_duration_since(now);
        assert!(left >= Duration::from_secs(10), "{left:?}");
        assert!(left < Duration::from_secs(11), "{left:?}");
        // Already over: at once (plus the margin).
        let over = grace_end(&config, at(900)).unwrap();
        assert!(over.saturating_duration_since(now) < Duration::from_secs(1));
        // Beyond the recheck: that run looks again.
        assert!(grace_end(&config, at(1000 + 3600)).is_none());
        // A value from the store beyond what RFC 3339 can show.
        assert!(grace_end(&config, at(u64::MAX)).is_none());
    }

    fn schedule(in_flight: bool, next_run: Instant) -> Schedule {
        Schedule {
            in_flight,
            run_now: false,
            next_run,
            run_by: None,
            current: Vec::new(),
            queued: Vec::new(),
        }
    }

    #[test]
    fn a_restart_due_during_a_run_is_kept_when_the_run_finishes() {
        let t0 = Instant::now();
        let restart = t0 + Duration::from_millis(50);
        let recheck = t0 + Duration::from_secs(300);
        // A media process exits, and its restart comes due, before the run that started it
        // has reported back: the run's own choice (a re-check in 5 minutes) must not win.
        let mut s = schedule(true, t0);
        s.run_by(restart);
        assert_eq!(s.finished(recheck), restart);
        assert_eq!(s.next_run, restart);
        assert!(!s.in_flight);
        // Used once: the next run's own choice stands.
        s.in_flight = true;
        assert_eq!(s.finished(recheck), recheck);
        // Asked for while idle: it moves the next run at once, nothing is kept.
        s.run_by(restart);
        assert_eq!(s.next_run, restart);
        assert_eq!(s.run_by, None);
    }
}
