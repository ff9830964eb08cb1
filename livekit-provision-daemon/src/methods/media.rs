//! `start`, `stop` and `restart`: the supervisor driven by hand.

use livekit_provision::settings::MediaOwner;
use livekit_provision::{NodeSnapshot, OperatorConfig};

use super::media_error;
use crate::keeper;
use crate::protocol::{NOT_PROVISIONED, RpcError, StartResult, StopParams, StopResult};
use crate::shared::{Shared, livekit_yaml_digest, lock};

pub(super) fn start(shared: &Shared) -> Result<StartResult, RpcError> {
    let config = &shared.config;
    // Read once: the settings (who owns the media, lk-backend), the files and the binary.
    let node = NodeSnapshot::read(&config.state, config.binary.livekit_bin.as_deref())
        .map_err(|e| RpcError::from_error(&e))?;
    let program = keeper::livekit_program(&node.binary, None).ok_or_else(|| {
        RpcError::new(NOT_PROVISIONED, "livekit-server is not installed").with_hint(Some(
            "set LIVEKIT_VERSION (or livekit_bin in provision.yaml) and wait for `status` to say ready"
                .to_owned(),
        ))
    })?;
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
    let grace = params.grace()?.unwrap_or(shared.config.stop_grace);
    let owner = media_owner(shared)?;
    let stopped = lock(&shared.media)
        .stop(grace, owner, (shared.config.clock)())
        .map_err(media_error)?;
    let processes = if restart {
        start(shared)?.processes
    } else {
        lock(&shared.media).statuses(owner)
    };
    Ok(StopResult { stopped, processes })
}

/// Who owns the media, from `provision.yaml` now (an error when it does not load: then nothing
/// is stopped).
fn media_owner(shared: &Shared) -> Result<MediaOwner, RpcError> {
    OperatorConfig::load(&shared.config.state)
        .map(|c| c.settings.media_owner)
        .map_err(|e| RpcError::from_error(&e))
}
