//! What an operator does to a node besides [`ensure`](crate::ensure()) and
//! [`check`](crate::check()): store a setting, install or roll back livekit-server, preview the
//! files `ensure` would write.
//!
//! The CLI's commands and the daemon's methods of the same name (`secrets set` /
//! `secrets.set`, `install`, `rollback`, `render`) are thin doors onto these functions, so every
//! door validates with the same rules, falls back to the same pinned values and writes under the
//! same state lock. An embedding service calls them directly.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::binary::BinaryOptions;
use crate::binary::install_request;
use crate::config::{ConfigError, OperatorConfig};
use crate::fetch::{EventSink, FetchError, InstallOutcome, RollbackOutcome, Sha256Digest};
use crate::paths::{ManagedFile, StateDir};
use crate::publish::{self, PublishError, StateLock};
use crate::resolve::{CredentialSource, ResolveContext, ResolveError, resolve};
use crate::secret::Secret;
use crate::store::{KNOWN, SecretName, SecretStore, StoreError, known_names_hint};
use crate::triple::DiskTriple;
use crate::version::LivekitVersion;

/// Why an admin operation did nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// A setting name livekit-provision does not read: storing it would be a silent typo.
    #[error("{name} is not a setting livekit-provision reads; nothing was stored")]
    UnknownName {
        /// The name as given (no secret: names are not values).
        name: String,
    },
    /// A value its name's validator refuses (the rule `ensure` applies when it reads it back).
    #[error("{name}: {reason}")]
    InvalidValue {
        /// The setting.
        name: SecretName,
        /// Why; a secret's value is never part of it.
        reason: String,
    },
    /// `secrets set` of the live API key or secret (the store holds another value) without
    /// [`WhenLive::Replace`]: every token in use would fail at once. `secrets rotate` changes the
    /// pair safely (stage, promote, retire after a grace).
    #[error(
        "{name} is live on this node: replacing it at once makes every token in use fail; nothing was stored"
    )]
    LiveCredential {
        /// `LIVEKIT_API_KEY` or `LIVEKIT_API_SECRET`.
        name: SecretName,
    },
    /// `install` without a version while `LIVEKIT_VERSION` is not set.
    #[error("no version to install: LIVEKIT_VERSION is not set")]
    NoVersion,
    /// A stored value (`LIVEKIT_VERSION`, `LIVEKIT_SHA256`) that does not parse.
    #[error("secret {name} {reason}")]
    InvalidStored {
        /// The setting.
        name: SecretName,
        /// Why.
        reason: String,
    },
    /// `provision.yaml` or `extra.yaml` could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The secret store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The state directory could not be prepared or locked.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The download, verification, install or rollback failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The secrets could not be resolved for the preview.
    #[error(transparent)]
    Resolve(#[from] ResolveError),
}

impl AdminError {
    /// Whether the caller gave bad input (the daemon answers "invalid params"), rather than the
    /// node or its store failing.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Self::UnknownName { .. }
                | Self::InvalidValue { .. }
                | Self::LiveCredential { .. }
                | Self::NoVersion
        )
    }
}

impl crate::error_chain::Hint for AdminError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::UnknownName { .. } => Some(known_names_hint()),
            Self::InvalidValue { name, .. } => {
                Some(format!("nothing was stored; fix the value of {name}"))
            }
            Self::LiveCredential { name } => Some(format!(
                "change the pair with `livekit-provision secrets rotate` (the new key is staged, \
                 promoted once livekit-server has loaded it, and the old one stays accepted for \
                 a grace); or replace {name} at once with `secrets set --force` (RPC: \
                 `\"force\": true`)"
            )),
            Self::NoVersion => Some(
                "pass a version (e.g. v1.7.2), or pin one with `livekit-provision secrets set LIVEKIT_VERSION v1.7.2`"
                    .to_owned(),
            ),
            Self::InvalidStored { name, .. } => Some(format!(
                "fix it with `livekit-provision secrets set {name} <value>`"
            )),
            Self::Config(e) => e.hint(),
            Self::Store(e) => e.hint(),
            Self::Publish(e) => e.hint(),
            Self::Fetch(e) => e.hint(),
            Self::Resolve(e) => e.hint(),
        }
    }
}

/// Prepare the state directory and take its lock (the default file store lives in it, and the
/// binary's switch is one of its writes).
fn lock_state(
    state: &StateDir,
    on_lock_wait: impl FnOnce(Option<u32>),
) -> Result<StateLock, PublishError> {
    publish::prepare(state)?;
    StateLock::acquire(state, on_lock_wait)
}

/// Check `name` and `value` as `ensure` will when it reads them back: the name must be one
/// livekit-provision reads, the value must pass its name's validator. Nothing is stored.
pub fn validate_setting(name: &str, value: &str) -> Result<SecretName, AdminError> {
    let name = SecretName::new(name)
        .ok()
        .filter(|n| KNOWN.iter().any(|k| k.name == *n))
        .ok_or_else(|| AdminError::UnknownName {
            name: name.to_owned(),
        })?;
    crate::validate::secret_value(&name, value).map_err(|e| AdminError::InvalidValue {
        // A secret's refused value is never shown, not even in part.
        reason: if name.is_secret() {
            e.reason.clone()
        } else {
            e.to_string()
        },
        name: name.clone(),
    })?;
    Ok(name)
}

/// What `secrets set` does when it is asked to change the live API key or secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenLive {
    /// Refuse ([`AdminError::LiveCredential`]): `secrets rotate` is the safe way.
    #[default]
    Refuse,
    /// Replace it at once (`--force`): every token signed with the old pair fails.
    Replace,
}

/// The names `secrets set` does not replace while they are live ([`WhenLive`]).
const LIVE_PAIR: [SecretName; 2] = [SecretName::LIVEKIT_API_KEY, SecretName::LIVEKIT_API_SECRET];

/// Store setting `name` = `value` after [`validate_setting`], under the state lock, as every
/// reader reads it (normalized: `LIVEKIT_VERSION '1.7.2 '` is stored as `1.7.2`). It takes
/// effect at the next provisioning run. The live API key or secret is replaced only with
/// [`WhenLive::Replace`]; setting it on a store that has none (seeding a node), or over an
/// invalid one (a repair), is not a change.
pub fn set_setting(
    state: &StateDir,
    store: &dyn SecretStore,
    name: &str,
    value: &str,
    when_live: WhenLive,
    on_lock_wait: impl FnOnce(Option<u32>),
) -> Result<SecretName, AdminError> {
    let name = validate_setting(name, value)?;
    let stored =
        crate::validate::secret_value(&name, value).map_err(|e| AdminError::InvalidValue {
            reason: e.reason,
            name: name.clone(),
        })?;
    let stored = Secret::new(stored);
    let _lock = lock_state(state, on_lock_wait)?;
    if when_live == WhenLive::Refuse
        && LIVE_PAIR.contains(&name)
        && store.get(&name)?.is_some_and(|live| {
            // An invalid stored value signs nothing: replacing it is a repair, not a change.
            live != stored && crate::validate::secret_value(&name, live.expose()).is_ok()
        })
    {
        return Err(AdminError::LiveCredential { name });
    }
    store.set(&name, &stored)?;
    Ok(name)
}

/// The version pinned in the store (`LIVEKIT_VERSION`), if any.
fn pinned_version(store: &dyn SecretStore) -> Result<Option<LivekitVersion>, AdminError> {
    let Some(text) = store.get(&SecretName::LIVEKIT_VERSION)? else {
        return Ok(None);
    };
    LivekitVersion::parse(text.expose().trim())
        .map(Some)
        .map_err(|e| AdminError::InvalidStored {
            name: SecretName::LIVEKIT_VERSION,
            reason: e.to_string(),
        })
}

/// The release digest pinned in the store (`LIVEKIT_SHA256`), if any: what `ensure`, `install`
/// and the daemon's `install` verify the download against.
pub(crate) fn pinned_sha256(store: &dyn SecretStore) -> Result<Option<Sha256Digest>, AdminError> {
    let Some(text) = store.get(&SecretName::LIVEKIT_SHA256)? else {
        return Ok(None);
    };
    text.expose()
        .parse()
        .map(Some)
        .map_err(|_| AdminError::InvalidStored {
            name: SecretName::LIVEKIT_SHA256,
            reason: "is not a SHA-256 (64 hex digits)".to_owned(),
        })
}

/// What to install: each field falls back to the store's pin when `None`.
#[derive(Default, Clone)]
pub struct InstallChoice {
    /// The version; else `LIVEKIT_VERSION`.
    pub version: Option<LivekitVersion>,
    /// The digest the release tarball must have; else `LIVEKIT_SHA256`, else `checksums.txt`.
    pub sha256: Option<Sha256Digest>,
    /// Download again even when this version is installed and verifies.
    pub force: bool,
    /// Download progress.
    pub events: Option<EventSink>,
}

impl std::fmt::Debug for InstallChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallChoice")
            .field("version", &self.version)
            .field("sha256", &self.sha256)
            .field("force", &self.force)
            .finish_non_exhaustive()
    }
}

/// What [`install`] did.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The version now active.
    pub version: LivekitVersion,
    /// Installed, switched back to, or already there.
    pub outcome: InstallOutcome,
    /// The active binary (`bin/livekit-server`).
    pub path: PathBuf,
}

/// Install livekit-server `choice.version` (else the pinned `LIVEKIT_VERSION`) from the release
/// source of `provision.yaml` / `binary`, verified against `choice.sha256` (else the pinned
/// `LIVEKIT_SHA256`, else `checksums.txt`), and switch to it under the state lock. Running media
/// keep the binary they started with.
pub async fn install(
    state: &StateDir,
    store: &dyn SecretStore,
    choice: InstallChoice,
    binary: &BinaryOptions,
    on_lock_wait: impl FnOnce(Option<u32>),
) -> Result<Installed, AdminError> {
    let version = match choice.version {
        Some(version) => version,
        None => pinned_version(store)?.ok_or(AdminError::NoVersion)?,
    };
    let pinned_sha256 = match choice.sha256 {
        Some(digest) => Some(digest),
        None => pinned_sha256(store)?,
    };
    let settings = OperatorConfig::load(state)?.settings;
    let mut request = install_request(version.clone(), &settings, binary)?;
    request.pinned_sha256 = pinned_sha256;
    request.force = choice.force;
    request.events = choice.events;
    let _lock = lock_state(state, on_lock_wait)?;
    let outcome = crate::fetch::install(state, &request).await?;
    Ok(Installed {
        version,
        outcome,
        path: state.livekit_bin(),
    })
}

/// Switch back to the previously active livekit-server and pin it as `LIVEKIT_VERSION`, or the
/// next provisioning run would upgrade straight back.
pub fn rollback(
    state: &StateDir,
    store: &dyn SecretStore,
    on_lock_wait: impl FnOnce(Option<u32>),
) -> Result<RollbackOutcome, AdminError> {
    let _lock = lock_state(state, on_lock_wait)?;
    let outcome = crate::fetch::rollback(state)?;
    store.set(&SecretName::LIVEKIT_VERSION, &Secret::new(outcome.to.tag()))?;
    Ok(outcome)
}

/// The files `ensure` would write now, and where their credentials come from.
#[derive(Clone)]
pub struct Preview {
    /// The store's credentials, credentials `ensure` would adopt, or a sample it would mint.
    pub credentials: CredentialSource,
    /// Each managed file's text: secrets replaced by `****` unless asked for.
    pub files: BTreeMap<ManagedFile, String>,
}

impl std::fmt::Debug for Preview {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The texts may hold secrets (`show_secrets`): only their names.
        f.debug_struct("Preview")
            .field("credentials", &self.credentials)
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Render the files `ensure` would write, from the store, the settings and the files on disk,
/// without writing or minting anything. Secrets are redacted unless `show_secrets`.
pub fn preview(
    state: &StateDir,
    store: &dyn SecretStore,
    local_addresses: &[IpAddr],
    now: SystemTime,
    show_secrets: bool,
) -> Result<Preview, AdminError> {
    let config = OperatorConfig::load(state)?;
    let disk = DiskTriple::read(state);
    let resolution = resolve(
        store,
        &ResolveContext::new(state, &config, &disk, local_addresses, now),
    )?;
    let rendered = crate::render::render(&resolution.inputs);
    let files = ManagedFile::ALL
        .iter()
        .map(|&file| {
            let text = rendered.get(file);
            let shown = if show_secrets {
                text.to_owned()
            } else {
                resolution.inputs.redact(text)
            };
            (file, shown)
        })
        .collect();
    Ok(Preview {
        credentials: resolution.credentials_source,
        files,
    })
}
