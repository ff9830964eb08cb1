//! `install` and `rollback`: the livekit-server binary (the running media keep theirs).

use livekit_provision::LivekitVersion;
use livekit_provision::admin::InstallChoice;
use livekit_provision::fetch::Sha256Digest;

use super::{admin_failed, lock_wait, store};
use crate::protocol::{InstallParams, InstallResult, Operation, RollbackResult, RpcError};
use crate::shared::Shared;

pub(super) fn install(shared: &Shared, params: &InstallParams) -> Result<InstallResult, RpcError> {
    let config = &shared.config;
    let version = params
        .version
        .as_deref()
        .map(LivekitVersion::parse)
        .transpose()
        .map_err(|e| RpcError::invalid_params(format!("version {e}")))?;
    let sha256 = params
        .sha256
        .as_deref()
        .map(str::parse::<Sha256Digest>)
        .transpose()
        .map_err(|_| RpcError::invalid_params("sha256 must be a SHA-256: 64 hex digits"))?;
    let store = store(shared)?;
    let choice = InstallChoice {
        version,
        sha256,
        force: params.force.unwrap_or(false),
        events: Some(shared.progress.fetch_sink(Operation::Install)),
    };
    // The phase becomes `downloading` when the download starts (`FetchEvent::Started`), under
    // the state lock: not while waiting for it, nor when the version is already there.
    let installed = tokio::runtime::Handle::current().block_on(livekit_provision::admin::install(
        &config.state,
        store.as_ref(),
        choice,
        &config.binary,
        lock_wait,
    ));
    shared.progress.clear();
    installed
        .map(InstallResult::from)
        .map_err(|e| admin_failed(&e))
}

pub(super) fn rollback(shared: &Shared) -> Result<RollbackResult, RpcError> {
    let store = store(shared)?;
    livekit_provision::admin::rollback(&shared.config.state, store.as_ref(), lock_wait)
        .map(RollbackResult::from)
        .map_err(|e| admin_failed(&e))
}
