//! `start`, `stop` and `restart`: the supervisor driven by hand.

use livekit_provision::NodeSnapshot;

use super::media_error;
use crate::keeper;
use crate::protocol::{NOT_PROVISIONED, RpcError, StartResult, StopParams, StopResult};
use crate::shared::{Shared, livekit_yaml_digest, lock};
use crate::supervise::LIVEKIT_SERVER;

pub(super) fn start(shared: &Shared) -> Result<StartResult, RpcError> {
    let config = &shared.config;
    // Read once: the settings (who owns the media, lk-backend), the files and the binary.
    let node = NodeSnapshot::read(&config.state, config.binary.livekit_bin.as_deref())
        .map_err(|e| RpcError::from_error(&e))?;
    let program = keeper::livekit_program(&node.binary, None).ok_or_else(not_installed)?;
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
    let program = keeper::livekit_program(&node.binary, None).ok_or_else(not_installed)?;
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

fn not_installed() -> RpcError {
    RpcError::new(NOT_PROVISIONED, "livekit-server is not installed").with_hint(Some(
        "set LIVEKIT_VERSION (or livekit_bin in provision.yaml) and wait for `status` to say ready"
            .to_owned(),
    ))
}
