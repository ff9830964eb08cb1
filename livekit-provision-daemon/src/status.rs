//! What the daemon knows about its provisioning, as `status` reports it.

use std::time::{Duration, SystemTime};

use super::protocol::{
    MediaProcess, MediaReport, ProvisionState, ProvisioningReport, StatusResult, VersionReport,
};
use crate::gate::Disabled;
use crate::supervise::{StartedWith, Supervisor, started};
use livekit_provision::ErrorReport;
use livekit_provision::NodeSnapshot;
use livekit_provision::StateDir;
use livekit_provision::clock::rfc3339;

/// What the daemon knows about its provisioning runs.
#[derive(Debug, Clone)]
pub struct ProvisionStatus {
    /// The current state.
    pub state: ProvisionState,
    /// Runs started since the daemon started.
    pub runs: u64,
    /// Failed runs in a row (0 after a success).
    pub consecutive_failures: u32,
    /// Why the last run failed.
    pub last_error: Option<String>,
    /// How to fix it, when known.
    pub last_hint: Option<String>,
    /// Why the last run provisioned no media (state `disabled`).
    pub disabled: Option<Disabled>,
    /// When the last run started.
    pub last_run_at: Option<SystemTime>,
    /// When a run last succeeded.
    pub last_success_at: Option<SystemTime>,
    /// When the next run is scheduled.
    pub next_run: Option<SystemTime>,
    /// The pinned version, as of the last run.
    pub pinned_version: Option<String>,
    /// The warnings of the last `ensure`.
    pub warnings: Vec<String>,
}

impl Default for ProvisionStatus {
    fn default() -> Self {
        Self {
            state: ProvisionState::Idle,
            runs: 0,
            consecutive_failures: 0,
            last_error: None,
            last_hint: None,
            disabled: None,
            last_run_at: None,
            last_success_at: None,
            next_run: None,
            pinned_version: None,
            warnings: Vec::new(),
        }
    }
}

impl ProvisionStatus {
    /// `status.provisioning`, with times as RFC 3339 and relative to `now` (the daemon adds
    /// `progress`).
    pub fn report(&self, now: SystemTime) -> ProvisioningReport {
        let next_retry = (self.state == ProvisionState::Failed)
            .then_some(self.next_run)
            .flatten();
        ProvisioningReport {
            state: self.state,
            runs: self.runs,
            consecutive_failures: self.consecutive_failures,
            last_error: self.last_error.clone(),
            hint: self
                .last_hint
                .clone()
                .or_else(|| self.disabled.map(|d| d.hint().to_owned())),
            disabled_reason: self.disabled.map(|d| d.reason().to_owned()),
            last_run_at: self.last_run_at.map(rfc3339),
            last_success_at: self.last_success_at.map(rfc3339),
            next_run: self.next_run.map(rfc3339),
            next_retry: next_retry.map(rfc3339),
            next_retry_in_ms: next_retry.map(|t| millis(t.duration_since(now).unwrap_or_default())),
            warnings: self.warnings.clone(),
            progress: None,
        }
    }
}

/// `status` when no daemon serves `state` (the CLI's direct path), in the daemon's shape: the
/// media processes `node` configures as `supervisor` sees them, provisioning
/// [`ProvisionState::NoDaemon`].
///
/// It also asks a running livekit-server who is in a call, says what waits for a restart (from
/// the processes' `restart_reasons`, and the record a daemon left), and takes `keys`, the key
/// epoch the caller read from its store (or why it could not: `store` says it), and `pinned`,
/// the `LIVEKIT_VERSION` it read there (`version.pinned`).
pub fn status_without_daemon(
    state: &StateDir,
    supervisor: &mut Supervisor,
    node: &NodeSnapshot,
    keys: Result<livekit_provision::rotate::Epoch, String>,
    pinned: Option<String>,
    now: SystemTime,
) -> StatusResult {
    let store = crate::protocol::StoreReport {
        reachable: keys.is_ok(),
        unreachable_since: None,
        error: keys.as_ref().err().cloned(),
        last_ok: None,
    };
    let processes = media_processes(supervisor, node);
    let stopped = crate::stop_record::read(state);
    let server = processes
        .iter()
        .find(|p| p.status.name == crate::supervise::LIVEKIT_SERVER);
    let (occupancy, changes) = crate::apply::report::report_without_daemon(
        state,
        &node.config.settings,
        server
            .map(|p| p.restart_reasons.clone())
            .unwrap_or_default(),
        server.is_some_and(|p| p.status.running),
        now,
    );
    StatusResult {
        daemon: false,
        state_dir: state.root().to_owned(),
        pid: None,
        now: rfc3339(now),
        provisioning: ProvisioningReport::no_daemon(),
        version: VersionReport {
            pinned,
            installed: installed_version(state),
        },
        media: MediaReport {
            owner: node.config.settings.media_owner,
            busy: false,
            processes,
            stopped_on_purpose: stopped.is_some(),
            stopped_since: stopped.and_then(crate::stop_record::Stopped::since_rfc3339),
            held: livekit_provision::hold::held(state),
        },
        occupancy,
        changes,
        keys: keys.ok(),
        store: Some(store),
        tls: tls_report(state, &node.config.settings, now),
    }
}

/// `status.tls`: the certificate of `settings.tls` and the ACME record; `None` without `tls:`.
pub(crate) fn tls_report(
    state: &StateDir,
    settings: &livekit_provision::settings::Settings,
    now: SystemTime,
) -> Option<crate::protocol::TlsReport> {
    use livekit_provision::tls;
    let config = settings.tls.as_ref()?;
    let a = tls::assess(state, settings, config, now);
    let record = tls::read_record(state);
    let at = |secs: Option<u64>| {
        secs.map(|s| rfc3339(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s)))
    };
    let info = a.info.as_ref();
    Some(crate::protocol::TlsReport {
        domain: config.domain.clone(),
        source: if config.uses_acme() { "acme" } else { "files" }.to_owned(),
        cert_file: a.cert_path.clone(),
        names: info.map(|i| i.names.clone()).unwrap_or_default(),
        issuer: info.map(|i| i.issuer.clone()),
        serial: info.map(|i| i.serial.clone()),
        not_after: info.map(|i| rfc3339(i.not_after)),
        renew_at: a.renew_at.map(rfc3339),
        problem: a
            .due
            .as_ref()
            .filter(|d| !matches!(d, tls::Due::Renewal))
            .map(ToString::to_string),
        last_attempt: at(record.last_attempt),
        last_error: record.last_error.clone(),
        next_attempt: at(record.next_attempt).filter(|_| record.waiting(now)),
        issued: record.issued,
    })
}

/// The media processes `node` configures ([`crate::media::names`]) as `supervisor` sees them
/// (adopting them from their pid files); one that cannot be read is listed with its error. A
/// running process is compared with what it started with (`run/<name>.started.json`, read
/// only) and `node`'s files, as the daemon compares it.
pub fn media_processes(supervisor: &mut Supervisor, node: &NodeSnapshot) -> Vec<MediaProcess> {
    let state = supervisor.state().clone();
    let specs = crate::media::process_specs(
        &state,
        &node.config.settings,
        node.binary.path.clone(),
        node.disk.backend_env.valid(),
    );
    crate::media::names(&node.config.settings)
        .iter()
        .map(|name| match supervisor.status(name) {
            Ok(mut status) => {
                let spec = specs.iter().find(|s| s.name == *name);
                // The binary is judged at the path it started from: this side does not know a
                // `--livekit-bin` the daemon or another command was given.
                let recorded = status
                    .pid
                    .zip(spec)
                    .and_then(|(pid, spec)| {
                        let started = started::read(&state, name, pid)?;
                        let mut spec = spec.clone();
                        spec.program.clone_from(&started.binary.path);
                        Some(started.changes(&StartedWith::now(&spec, pid)))
                    })
                    .unwrap_or_default();
                // Without a record, the one reason that can be seen is the binary
                // (restart_pending compares it).
                let mut restart_reasons = recorded;
                if status.restart_pending && restart_reasons.is_empty() {
                    restart_reasons.push("a new binary is installed".to_owned());
                }
                status.restart_pending = !restart_reasons.is_empty();
                MediaProcess {
                    restart_reasons,
                    status,
                    error: None,
                    listener: None,
                }
            }
            Err(e) => MediaProcess::unreadable(name, ErrorReport::of(&e).to_string()),
        })
        .collect()
}

/// The version at `bin/livekit-server`, when one is installed.
pub(super) fn installed_version(state: &StateDir) -> Option<String> {
    livekit_provision::fetch::installed(state)
        .ok()
        .flatten()
        .map(|b| b.version.to_string())
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_retry_only_when_failed() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut s = ProvisionStatus {
            state: ProvisionState::Ready,
            next_run: Some(now + Duration::from_secs(300)),
            ..ProvisionStatus::default()
        };
        assert_eq!(s.report(now).next_retry, None);
        s.state = ProvisionState::Failed;
        s.last_error = Some("offline".into());
        let r = s.report(now);
        assert_eq!(r.state, ProvisionState::Failed);
        assert_eq!(r.next_retry.as_deref(), Some("1970-01-12T13:51:40Z"));
        assert_eq!(r.next_retry_in_ms, Some(300_000));
    }
}
