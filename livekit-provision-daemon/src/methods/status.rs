//! `status`, `health` and `check`: what the daemon, its provisioning and the media are doing.

use std::collections::BTreeMap;

use livekit_provision::ManagedFile;
use livekit_provision::check::{CheckOptions, CheckReport, check};

use crate::protocol::{HealthResult, StatusResult, VersionReport};
use crate::shared::{Shared, livekit_yaml_digest, lock, media_report};
use crate::status::installed_version;
use livekit_provision::clock::rfc3339;

pub(super) fn status(shared: &Shared) -> StatusResult {
    let now = (shared.config.clock)();
    let provisioning = lock(&shared.status).clone();
    let media = media_report(shared);
    let mut report = provisioning.report(now);
    report.progress = shared.progress.get();
    let livekit_running = media
        .processes
        .iter()
        .any(|p| p.status.name == crate::supervise::LIVEKIT_SERVER && p.status.running);
    let (occupancy, changes, keys) = crate::apply::report(shared, livekit_running, now);
    StatusResult {
        daemon: true,
        state_dir: shared.config.state.root().to_owned(),
        pid: Some(std::process::id()),
        now: rfc3339(now),
        provisioning: report,
        version: VersionReport {
            pinned: provisioning.pinned_version,
            installed: installed_version(&shared.config.state),
        },
        media,
        occupancy,
        changes,
        keys,
        store: Some(lock(&shared.store_health).report()),
        tls: livekit_provision::OperatorConfig::load(&shared.config.state)
            .ok()
            .and_then(|c| crate::status::tls_report(&shared.config.state, &c.settings, now)),
    }
}

pub(super) fn check_now(shared: &Shared) -> CheckReport {
    let config = &shared.config;
    let store = config.store.open();
    if let Err(e) = &store {
        tracing::warn!(error = %livekit_provision::one_line(e), "check without the secret store");
    }
    check(
        &config.state,
        store.as_ref().ok().map(AsRef::as_ref),
        &CheckOptions {
            now: (config.clock)(),
            local_addresses: (config.local_addresses)(),
            verify_binary: true,
            livekit_bin: config.binary.livekit_bin.clone(),
        },
    )
}

pub(super) fn health(shared: &Shared) -> HealthResult {
    let in_memory = lock(&shared.published).clone();
    let on_disk = livekit_yaml_digest(shared);
    let restart_reasons: BTreeMap<String, Vec<String>> = media_report(shared)
        .processes
        .into_iter()
        .filter(|p| !p.restart_reasons.is_empty())
        .map(|p| (p.status.name, p.restart_reasons))
        .collect();
    HealthResult {
        config: shared.config.state.managed(ManagedFile::LivekitYaml),
        in_sync: in_memory.is_some() && in_memory == on_disk,
        in_memory,
        on_disk,
        restart_pending: !restart_reasons.is_empty(),
        restart_reasons,
    }
}
