//! `start`, `stop` and `restart`: the supervisor driven by hand.

use livekit_provision::NodeSnapshot;

use super::media_error;
use crate::keeper;
use crate::protocol::{
    NOT_PROVISIONED, ProvisionState, RpcError, StartResult, StopParams, StopResult,
};
use crate::shared::{Shared, livekit_yaml_digest, lock};
use crate::status::ProvisionStatus;
use crate::supervise::LIVEKIT_SERVER;
use livekit_provision::clock::rfc3339;

pub(super) fn start(shared: &Shared) -> Result<StartResult, RpcError> {
    let config = &shared.config;
    // Read once: the settings (who owns the media, lk-backend), the files and the binary.
    let node = NodeSnapshot::read(&config.state, config.binary.livekit_bin.as_deref())
        .map_err(|e| RpcError::from_error(&e))?;
    let program =
        keeper::livekit_program(&node.binary, None).ok_or_else(|| not_installed(shared, &node))?;
    let owner = node.config.settings.media_owner;
    let specs = keeper::specs(&config.state, &node, program);
    let mut media = lock(&shared.media);
    let pass = media.start(&specs, owner);
    if let Some(first) = pass.failures.into_iter().next() {
        return Err(media_error(first));
    }
    let processes = media.statuses(owner);
    drop(media);
    *lock(&shared.published) = livekit_yaml_digest(shared);
    Ok(StartResult { processes })
}

pub(super) fn stop(
    shared: &Shared,
    params: &StopParams,
    restart: bool,
) -> Result<StopResult, RpcError> {
    let config = &shared.config;
    let grace = params.grace()?;
    let force = params.force.unwrap_or(false);
    let node = NodeSnapshot::read(&config.state, config.binary.livekit_bin.as_deref())
        .map_err(|e| RpcError::from_error(&e))?;
    let owner = node.config.settings.media_owner;
    let now = (config.clock)();
    // Who is in a call now, asked of the server itself (never a stale reading).
    let server = lock(&shared.media).pending(LIVEKIT_SERVER);
    let occupied = match &server {
        None => Ok(0),
        Some(_) => crate::media::participants(&config.state, &node.config.settings, now),
    };
    crate::media::refuse_if_occupied(&occupied, restart, force)
        .map_err(|e| RpcError::from_error(&e))?;
    if !restart {
        let grace = grace.unwrap_or(config.stop_grace);
        let stopped = lock(&shared.media)
            .stop(grace, owner, now)
            .map_err(media_error)?;
        let processes = lock(&shared.media).statuses(owner);
        return Ok(StopResult {
            stopped,
            processes,
            draining: None,
        });
    }
    if let (Some((pid, _, reasons)), Ok(n @ 1..)) = (server, &occupied) {
        // Forced, with people in calls: drain, and restart when they are done (or at the end).
        let drain = grace.unwrap_or(node.config.settings.changes.drain.0);
        let mut applier = lock(&shared.applier);
        let mut reasons = reasons;
        reasons.push("restart --force".to_owned());
        let record =
            crate::apply::begin_drain(shared, &mut applier, pid, reasons, drain, true, *n, now)
                .map_err(media_error)?;
        drop(applier);
        return Ok(StopResult {
            stopped: std::collections::BTreeMap::new(),
            processes: lock(&shared.media).statuses(owner),
            draining: Some(crate::protocol::DrainReport {
                since: livekit_provision::clock::rfc3339(record.since),
                until: livekit_provision::clock::rfc3339(record.until),
                forced: true,
                reasons: record.reasons,
            }),
        });
    }
    let program =
        keeper::livekit_program(&node.binary, None).ok_or_else(|| not_installed(shared, &node))?;
    let specs = keeper::specs(&config.state, &node, program);
    let grace = grace.unwrap_or(config.stop_grace);
    let mut media = lock(&shared.media);
    let (stopped, pass) = media.restart(&specs, grace, owner).map_err(media_error)?;
    if let Some(first) = pass.failures.into_iter().next() {
        return Err(media_error(first));
    }
    let processes = media.statuses(owner);
    drop(media);
    *lock(&shared.published) = livekit_yaml_digest(shared);
    Ok(StopResult {
        stopped,
        processes,
        draining: None,
    })
}

/// `start` or `restart` with no livekit-server to run, and what to do about it from what the
/// daemon knows: whether a version is pinned, and how its provisioning runs went.
fn not_installed(shared: &Shared, node: &NodeSnapshot) -> RpcError {
    let status = lock(&shared.status).clone();
    let pinned = status.pinned_version.clone().or_else(|| {
        node.disk
            .runtime_json
            .valid()
            .and_then(|r| r.version.as_ref().map(ToString::to_string))
    });
    let (message, hint) = not_installed_hint(pinned.as_deref(), &status);
    RpcError::new(NOT_PROVISIONED, message).with_hint(Some(hint))
}

/// The message and hint of [`not_installed`], from the pinned version and the provisioning
/// status (a pure function of both: tested as a table).
fn not_installed_hint(pinned: Option<&str>, status: &ProvisionStatus) -> (String, String) {
    let Some(version) = pinned else {
        return (
            "livekit-server is not installed: no version is pinned".to_owned(),
            "pin one (`secrets.set` LIVEKIT_VERSION, e.g. v1.7.2, or `livekit-provision secrets \
             set LIVEKIT_VERSION v1.7.2`): the daemon installs it and starts it; or set \
             livekit_bin in provision.yaml"
                .to_owned(),
        );
    };
    let message = format!("livekit-server {version} is pinned but not installed");
    let hint = match (status.state, &status.last_error) {
        (ProvisionState::Running, _) => {
            "it is being installed now: `status` shows the progress, and the daemon starts it \
             when it is in place"
                .to_owned()
        }
        (ProvisionState::Failed, Some(error)) => {
            let mut hint = format!("its install failed: {error}");
            if let Some(at) = status.next_run {
                hint.push_str("; it is retried at ");
                hint.push_str(&rfc3339(at));
            }
            if let Some(fix) = &status.last_hint {
                hint.push_str(". ");
                hint.push_str(fix);
            }
            hint
        }
        _ => {
            "the next provisioning run installs it and starts it (`ensure` runs one now)".to_owned()
        }
    };
    (message, hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pinned version, the provisioning status, what must and must not be said.
    type Case<'a> = (
        Option<&'a str>,
        &'a ProvisionStatus,
        &'a [&'a str],
        &'a [&'a str],
    );

    /// The daemon's state → what `start` says (issue 25, item 7).
    #[test]
    fn start_without_a_binary_says_what_the_daemon_knows() {
        let failed = ProvisionStatus {
            state: ProvisionState::Failed,
            last_error: Some("livekit-server 1.7.2 was not installed: connection refused".into()),
            last_hint: Some("pass `--release-url file:///DIR`".into()),
            next_run: Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(60)),
            ..ProvisionStatus::default()
        };
        let running = ProvisionStatus {
            state: ProvisionState::Running,
            ..ProvisionStatus::default()
        };
        let cases: [Case<'_>; 4] = [
            (
                None,
                &failed,
                &["no version is pinned", "LIVEKIT_VERSION", "livekit_bin"],
                &["is pinned but"],
            ),
            (
                Some("1.7.2"),
                &failed,
                &[
                    "1.7.2 is pinned",
                    "connection refused",
                    "1970-01-01T00:01:00Z",
                    "file:///DIR",
                ],
                &["pin one", "wait for"],
            ),
            (
                Some("1.7.2"),
                &running,
                &["being installed now"],
                &["pin one", "failed"],
            ),
            (
                Some("1.7.2"),
                &ProvisionStatus::default(),
                &["next provisioning run installs it"],
                &["pin one", "failed"],
            ),
        ];
        for (pinned, status, must, must_not) in cases {
            let (message, hint) = not_installed_hint(pinned, status);
            let both = format!("{message} / {hint}");
            for text in must {
                assert!(both.contains(text), "{text:?} not in {both}");
            }
            for text in must_not {
                assert!(!both.contains(text), "{text:?} in {both}");
            }
        }
    }
}
