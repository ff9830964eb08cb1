//! `secrets.list`, `secrets.set` and `secrets.rotate`: the settings in the secret store, each
//! written under the state lock and followed by a provisioning run.

use super::{admin_failed, failed, lock_wait, schedule_run, store};
use crate::protocol::{
    RotateParams, RotateResult, RpcError, SecretsListResult, SecretsSetParams, SecretsSetResult,
};
use crate::shared::Shared;

pub(super) fn list(shared: &Shared) -> Result<SecretsListResult, RpcError> {
    let store = store(shared)?;
    SecretsListResult::of(store.as_ref()).map_err(|e| failed(&e))
}

pub(super) fn set(
    shared: &Shared,
    params: &SecretsSetParams,
) -> Result<SecretsSetResult, RpcError> {
    // Validate before opening the store: a bad value is refused with nothing touched.
    livekit_provision::admin::validate_setting(&params.name, &params.value)
        .map_err(|e| admin_failed(&e))?;
    let store = store(shared)?;
    let name = livekit_provision::admin::set_setting(
        &shared.config.state,
        store.as_ref(),
        &params.name,
        &params.value,
        if params.force {
            livekit_provision::admin::WhenLive::Replace
        } else {
            livekit_provision::admin::WhenLive::Refuse
        },
        lock_wait,
    )
    .map_err(|e| admin_failed(&e))?;
    tracing::info!(%name, "stored by secrets.set");
    Ok(SecretsSetResult {
        name: name.to_string(),
        store: shared.config.store.describe(),
        provisioning_scheduled: schedule_run(shared),
    })
}

/// Stage a new pair (the daemon's own driving promotes it once livekit-server has loaded it).
pub(super) fn rotate(shared: &Shared, params: &RotateParams) -> Result<RotateResult, RpcError> {
    let schedule = params.schedule()?;
    let store = store(shared)?;
    let outcome = livekit_provision::rotate::stage(
        &shared.config.state,
        store.as_ref(),
        &schedule,
        (shared.config.clock)(),
        lock_wait,
    )
    .map_err(|e| failed(&e))?;
    tracing::info!(
        action = ?outcome.action,
        staged_key = outcome.epoch.next_key(),
        "secrets.rotate"
    );
    Ok(RotateResult::new(outcome, schedule_run(shared)))
}
