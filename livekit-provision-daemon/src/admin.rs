//! The methods an admin UI drives besides the media: the settings in the secret store
//! (`secrets.list`, `secrets.set`, `secrets.rotate`), the binary (`install`, `rollback`), the
//! files `ensure` would write (`render`) and the media logs (`logs.tail`). Each runs on the
//! blocking pool, like the CLI command of the same name, and writes under the state lock.

use super::protocol::{
    InstallParams, InstallResult, InstallVerdict, LogsTailParams, LogsTailResult, MAX_LOG_LINES,
    Operation, RenderResult, RollbackResult, RotateParams, RotateResult, RpcError,
    SecretsListResult, SecretsSetParams, SecretsSetResult,
};
use super::shared::{Event, Shared};
use super::status::rfc3339;
use crate::supervise::{LIVEKIT_SERVER, LK_BACKEND};
use livekit_provision::Hint;
use livekit_provision::LivekitVersion;
use livekit_provision::admin::{AdminError, InstallChoice};
use livekit_provision::fetch::{InstallOutcome, Sha256Digest};
use livekit_provision::store::SecretStore;

/// How many lines `logs.tail` returns when the call does not say.
const DEFAULT_LOG_LINES: usize = 100;

fn store(shared: &Shared) -> Result<std::sync::Arc<dyn SecretStore>, RpcError> {
    shared
        .config
        .store
        .open()
        .map_err(|e| RpcError::from_error(&e))
}

fn failed(e: &impl livekit_provision::Hint) -> RpcError {
    RpcError::from_error(e)
}

/// The daemon waits for another writer of the state directory; it says so in its log.
fn lock_wait(pid: Option<u32>) {
    tracing::info!(?pid, "waiting for another writer of the state directory");
}

/// Bad input is "invalid params"; a failure of the node or its store is a server error.
fn admin_failed(e: &AdminError) -> RpcError {
    if e.is_bad_input() {
        RpcError::invalid_params(e.to_string()).with_hint(e.hint())
    } else {
        RpcError::from_error(e)
    }
}

/// Ask the loop for a provisioning run (it applies what was just stored).
fn schedule_run(shared: &Shared) -> bool {
    shared.events.send(Event::Ensure(None)).is_ok()
}

pub(super) fn secrets_list(shared: &Shared) -> Result<SecretsListResult, RpcError> {
    let store = store(shared)?;
    SecretsListResult::of(store.as_ref()).map_err(|e| failed(&e))
}

pub(super) fn secrets_set(
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

pub(super) fn secrets_rotate(
    shared: &Shared,
    params: &RotateParams,
) -> Result<RotateResult, RpcError> {
    let grace = params
        .grace
        .as_ref()
        .map(|g| g.duration("grace"))
        .transpose()?;
    let store = store(shared)?;
    let outcome = livekit_provision::rotate::rotate(
        &shared.config.state,
        store.as_ref(),
        grace,
        (shared.config.clock)(),
        |_| {},
    )
    .map_err(|e| failed(&e))?;
    tracing::info!(new_key = %outcome.new_key, "rotated by secrets.rotate");
    Ok(RotateResult {
        grace_until: outcome
            .grace_until
            .map(|s| rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s))),
        new_key: outcome.new_key,
        old_key: outcome.old_key,
        provisioning_scheduled: schedule_run(shared),
    })
}

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
    let installed = installed.map_err(|e| admin_failed(&e))?;
    let (outcome, sha256) = match installed.outcome {
        InstallOutcome::Installed { sha256, .. } => (InstallVerdict::Installed, Some(sha256)),
        InstallOutcome::Reactivated { sha256, .. } => (InstallVerdict::Reactivated, Some(sha256)),
        _ => (InstallVerdict::AlreadyInstalled, None),
    };
    Ok(InstallResult {
        outcome,
        version: installed.version.to_string(),
        sha256: sha256.map(|s| s.to_hex()),
        path: installed.path,
    })
}

pub(super) fn rollback(shared: &Shared) -> Result<RollbackResult, RpcError> {
    let store = store(shared)?;
    let outcome =
        livekit_provision::admin::rollback(&shared.config.state, store.as_ref(), lock_wait)
            .map_err(|e| admin_failed(&e))?;
    Ok(RollbackResult {
        from: outcome.from.to_string(),
        to: outcome.to.to_string(),
    })
}

pub(super) fn render(shared: &Shared) -> Result<RenderResult, RpcError> {
    let config = &shared.config;
    let store = store(shared)?;
    let preview = livekit_provision::admin::preview(
        &config.state,
        store.as_ref(),
        &(config.local_addresses)(),
        (config.clock)(),
        false,
    )
    .map_err(|e| admin_failed(&e))?;
    Ok(RenderResult {
        credentials: preview.credentials,
        files: preview
            .files
            .into_iter()
            .map(|(file, text)| (file.file_name().to_owned(), text))
            .collect(),
    })
}

pub(super) fn logs_tail(
    shared: &Shared,
    params: &LogsTailParams,
) -> Result<LogsTailResult, RpcError> {
    if ![LIVEKIT_SERVER, LK_BACKEND].contains(&params.name.as_str()) {
        return Err(RpcError::invalid_params(format!(
            "name {:?} is not a media process ({LIVEKIT_SERVER}, {LK_BACKEND})",
            params.name
        )));
    }
    let lines = params.lines.unwrap_or(DEFAULT_LOG_LINES);
    if !(1..=MAX_LOG_LINES).contains(&lines) {
        return Err(RpcError::invalid_params(format!(
            "lines must be from 1 to {MAX_LOG_LINES}"
        )));
    }
    let path = shared.config.state.log_file(&params.name);
    let lines = match crate::supervise::log_tail(&path, lines) {
        Ok(lines) => lines,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(RpcError::server(
                format!("cannot read {}: {e}", path.display()),
                None,
            ));
        }
    };
    Ok(LogsTailResult {
        name: params.name.clone(),
        path,
        lines,
    })
}
