//! The methods an admin UI drives besides the media: the settings in the secret store
//! (`secrets.list`, `secrets.set`, `secrets.rotate`), the binary (`install`, `rollback`), the
//! files `ensure` would write (`render`) and the media logs (`logs.tail`). Each runs on the
//! blocking pool, like the CLI command of the same name, and writes under the state lock.

use std::collections::BTreeMap;

use super::protocol::{
    InstallParams, InstallResult, InstallVerdict, LogsTailParams, LogsTailResult, MAX_LOG_LINES,
    Operation, RenderResult, RollbackResult, RotateParams, RotateResult, RpcError,
    SecretsListResult, SecretsSetParams, SecretsSetResult,
};
use super::shared::{Event, Shared};
use super::status::rfc3339;
use crate::config::OperatorConfig;
use crate::fetch::{InstallOutcome, Sha256Digest};
use crate::paths::ManagedFile;
use crate::publish::{self, StateLock};
use crate::resolve::{ResolveContext, resolve};
use crate::secret::Secret;
use crate::store::{KNOWN, SecretName, SecretStore, known_names_hint};
use crate::supervise::{LIVEKIT_SERVER, LK_BACKEND};
use crate::triple::DiskTriple;
use crate::version::LivekitVersion;

/// How many lines `logs.tail` returns when the call does not say.
const DEFAULT_LOG_LINES: usize = 100;

fn store(shared: &Shared) -> Result<std::sync::Arc<dyn SecretStore>, RpcError> {
    shared
        .config
        .store
        .open()
        .map_err(|e| RpcError::from_error(&e))
}

fn failed(e: &impl crate::Hint) -> RpcError {
    RpcError::from_error(e)
}

/// Take the state lock (the default file store lives in the state directory).
fn state_lock(shared: &Shared) -> Result<StateLock, RpcError> {
    let state = &shared.config.state;
    publish::prepare(state).map_err(|e| failed(&e))?;
    StateLock::acquire(state, |pid| {
        tracing::info!(?pid, "waiting for another writer of the state directory");
    })
    .map_err(|e| failed(&e))
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
    let known = |name: &SecretName| KNOWN.iter().any(|k| k.name == *name);
    let name = SecretName::new(&params.name)
        .ok()
        .filter(known)
        .ok_or_else(|| {
            RpcError::invalid_params(format!(
                "name {:?} is not a setting livekit-provision reads; nothing was stored",
                params.name
            ))
            .with_hint(Some(known_names_hint()))
        })?;
    // The rule `ensure` applies when it reads the value back: one validator for every door.
    crate::validate::secret_value(&name, &params.value).map_err(|e| {
        let shown = if name.is_secret() {
            e.reason.clone()
        } else {
            e.to_string()
        };
        RpcError::invalid_params(format!("value of {name}: {shown}"))
            .with_hint(Some(format!("nothing was stored; fix the value of {name}")))
    })?;
    let store = store(shared)?;
    let lock = state_lock(shared)?;
    store
        .set(&name, &Secret::new(params.value.clone()))
        .map_err(|e| failed(&e))?;
    drop(lock);
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
    let outcome = crate::rotate::rotate(
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
    let store = store(shared)?;
    let version = if let Some(text) = &params.version {
        LivekitVersion::parse(text).map_err(|e| RpcError::invalid_params(format!("version {e}")))?
    } else {
        let pinned = store
            .get(&SecretName::LIVEKIT_VERSION)
            .map_err(|e| failed(&e))?
            .ok_or_else(|| {
                RpcError::invalid_params("no version given and LIVEKIT_VERSION is not set")
                    .with_hint(Some(
                        "pass a version, or set LIVEKIT_VERSION with secrets.set".to_owned(),
                    ))
            })?;
        LivekitVersion::parse(pinned.expose().trim())
            .map_err(|e| RpcError::server(format!("secret LIVEKIT_VERSION {e}"), None))?
    };
    let digest = |hex: &str| {
        crate::validate::sha256_hex(hex)
            .ok()
            .and_then(|hex| Sha256Digest::from_hex(&hex))
    };
    let sha256 =
        match &params.sha256 {
            Some(hex) => Some(digest(hex).ok_or_else(|| {
                RpcError::invalid_params("sha256 must be a SHA-256: 64 hex digits")
            })?),
            // As `ensure` and the CLI: a digest pinned in the store.
            None => match store
                .get(&SecretName::LIVEKIT_SHA256)
                .map_err(|e| failed(&e))?
            {
                Some(pinned) => Some(digest(pinned.expose()).ok_or_else(|| {
                    RpcError::server(
                        "secret LIVEKIT_SHA256 is not a SHA-256 (64 hex digits)",
                        None,
                    )
                })?),
                None => None,
            },
        };
    let settings = OperatorConfig::load(&config.state)
        .map_err(|e| failed(&e))?
        .settings;
    let mut request = crate::binary::install_request(version.clone(), &settings, &config.binary)
        .map_err(|e| failed(&e))?;
    request.pinned_sha256 = sha256;
    request.force = params.force.unwrap_or(false);
    request.events = Some(shared.progress.fetch_sink(Operation::Install));
    let lock = state_lock(shared)?;
    shared
        .progress
        .phase(Operation::Install, super::protocol::Phase::Downloading);
    let outcome =
        tokio::runtime::Handle::current().block_on(crate::fetch::install(&config.state, &request));
    shared.progress.clear();
    drop(lock);
    let (outcome, sha256) = match outcome.map_err(|e| failed(&e))? {
        InstallOutcome::Installed { sha256, .. } => (InstallVerdict::Installed, Some(sha256)),
        InstallOutcome::Reactivated { sha256, .. } => (InstallVerdict::Reactivated, Some(sha256)),
        _ => (InstallVerdict::AlreadyInstalled, None),
    };
    Ok(InstallResult {
        outcome,
        version: version.to_string(),
        sha256: sha256.map(|s| s.to_hex()),
        path: config.state.livekit_bin(),
    })
}

pub(super) fn rollback(shared: &Shared) -> Result<RollbackResult, RpcError> {
    let store = store(shared)?;
    let lock = state_lock(shared)?;
    let outcome = crate::fetch::rollback(&shared.config.state).map_err(|e| failed(&e))?;
    // Pin what is now active, or the next run would upgrade straight back.
    store
        .set(&SecretName::LIVEKIT_VERSION, &Secret::new(outcome.to.tag()))
        .map_err(|e| failed(&e))?;
    drop(lock);
    Ok(RollbackResult {
        from: outcome.from.to_string(),
        to: outcome.to.to_string(),
    })
}

pub(super) fn render(shared: &Shared) -> Result<RenderResult, RpcError> {
    let config = &shared.config;
    let store = store(shared)?;
    let operator = OperatorConfig::load(&config.state).map_err(|e| failed(&e))?;
    let disk = DiskTriple::read(&config.state);
    let local = (config.local_addresses)();
    let resolution = resolve(
        store.as_ref(),
        &ResolveContext {
            state: &config.state,
            settings: &operator.settings,
            extra: &operator.extra,
            disk: &disk,
            local_addresses: &local,
            now: (config.clock)(),
            dry_run: true,
        },
    )
    .map_err(|e| failed(&e))?;
    let rendered = crate::render(&resolution.inputs);
    let files: BTreeMap<String, String> = ManagedFile::ALL
        .iter()
        .map(|f| {
            (
                f.file_name().to_owned(),
                resolution.inputs.redact(rendered.get(*f)),
            )
        })
        .collect();
    Ok(RenderResult {
        credentials: resolution.credentials_source,
        files,
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
