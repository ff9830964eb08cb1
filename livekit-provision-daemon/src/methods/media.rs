//! `start`, `stop` and `restart`: the supervisor driven by hand.

use livekit_provision::OperatorConfig;

use super::media_error;
use crate::keeper;
use crate::protocol::{NOT_PROVISIONED, RpcError, StartResult, StopParams, StopResult};
use crate::shared::{Shared, livekit_yaml_digest, lock};

pub(super) fn start(shared: &Shared) -> Result<StartResult, RpcError> {
    let config = &shared.config;
    let settings = OperatorConfig::load(&config.state)
        .map_err(|e| RpcError::from_error(&e))?
        .settings;
    let program = keeper::livekit_program(&config.state, &settings, &config.binary, None)
        .ok_or_else(|| {
            RpcError::new(NOT_PROVISIONED, "livekit-server is not installed").with_hint(Some(
                "set LIVEKIT_VERSION (or livekit_bin in provision.yaml) and wait for `status` to say ready"
                    .to_owned(),
            ))
        })?;
    let specs = keeper::specs(&config.state, &settings, program);
    let mut media = lock(&shared.media);
    let pass = media.start(&specs);
    if let Some(first) = pass.failures.into_iter().next() {
        return Err(media_error(first));
    }
    let processes = media.statuses();
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
    let stopped = lock(&shared.media).stop(grace).map_err(media_error)?;
    let processes = if restart {
        start(shared)?.processes
    } else {
        lock(&shared.media).statuses()
    };
    Ok(StopResult { stopped, processes })
}
