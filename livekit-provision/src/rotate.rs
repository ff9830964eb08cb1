//! Explicit rotation of the API credentials: the only way a secret changes (invariant 1).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::inputs::Credentials;
use crate::paths::StateDir;
use crate::publish::{self, PublishError, StateLock};
use crate::secret::{ApiKey, InvalidValue, Secret};
use crate::store::{KNOWN, SecretName, SecretStore, StoreError};
use crate::validate;

/// What a rotation did. (Its wire form, with the time as RFC 3339, is the daemon protocol's
/// `RotateResult`, which the CLI prints too.)
#[derive(Debug, Clone)]
pub struct RotateOutcome {
    /// The new key.
    pub new_key: String,
    /// The key it replaced, when there was one.
    pub old_key: Option<String>,
    /// Until when the old key stays accepted, when a grace was asked for (whole seconds: the
    /// store holds `LIVEKIT_ROTATION_GRACE_UNTIL` as seconds since the Unix epoch).
    pub grace_until: Option<SystemTime>,
}

/// Why a rotation failed. The store is unchanged unless it failed between two writes; a rerun
/// of `rotate` then completes it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotateError {
    /// The state directory could not be locked.
    #[error(transparent)]
    State(#[from] PublishError),
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The OS random number generator failed.
    #[error("could not mint new credentials: {0}")]
    Random(#[from] getrandom::Error),
    /// A value in the store is one `ensure` would refuse: rotating now would leave the store
    /// rotated and the files not, so nothing was changed.
    #[error("secret {name} in {store}: {source}; nothing was rotated")]
    InvalidStored {
        /// The name.
        name: SecretName,
        /// The store (redacted description).
        store: String,
        /// Why it was refused.
        source: InvalidValue,
    },
}

impl crate::error_chain::Hint for RotateError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::State(e) => e.hint(),
            Self::Store(e) => e.hint(),
            Self::Random(_) => None,
            Self::InvalidStored { name, .. } => Some(format!(
                "fix it with `livekit-provision secrets set {name} <value>`, then rotate"
            )),
        }
    }
}

/// Mint a new key/secret pair and store it (overwriting). With `grace`, the old pair is kept
/// as `LIVEKIT_API_KEY_PREVIOUS`/`LIVEKIT_API_SECRET_PREVIOUS` until `now + grace`, so
/// `livekit.yaml` keeps accepting tokens already issued. Call `ensure` afterwards to re-render.
pub fn rotate(
    state: &StateDir,
    store: &dyn SecretStore,
    grace: Option<Duration>,
    now: SystemTime,
    on_lock_wait: impl FnOnce(Option<u32>),
) -> Result<RotateOutcome, RotateError> {
    publish::prepare(state)?;
    let _lock = StateLock::acquire(state, on_lock_wait)?;
    // The `ensure` that follows must be able to publish the new pair: refuse before any write
    // if a stored value is one it would refuse.
    // Every stored value in one batch (one Redis round trip, one read of secrets.json).
    let names: Vec<SecretName> = KNOWN.iter().map(|k| k.name.clone()).collect();
    let values = store.get_many(&names)?;
    let mut old_key = None;
    let mut old_secret = None;
    for (name, value) in names.into_iter().zip(values) {
        let Some(value) = value else { continue };
        validate::secret_value(&name, value.expose()).map_err(|source| {
            RotateError::InvalidStored {
                name: name.clone(),
                store: store.describe(),
                source,
            }
        })?;
        if name == SecretName::LIVEKIT_API_KEY {
            old_key = Some(value);
        } else if name == SecretName::LIVEKIT_API_SECRET {
            old_secret = Some(value);
        }
    }
    let new = Credentials {
        key: ApiKey::mint()?,
        secret: Secret::mint_api_secret()?,
    };
    let mut grace_until = None;
    match (grace, &old_key, &old_secret) {
        (Some(grace), Some(key), Some(secret)) => {
            let until = now
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .saturating_add(grace.as_secs());
            store.set(&SecretName::LIVEKIT_API_KEY_PREVIOUS, key)?;
            store.set(&SecretName::LIVEKIT_API_SECRET_PREVIOUS, secret)?;
            store.set(
                &SecretName::LIVEKIT_ROTATION_GRACE_UNTIL,
                &Secret::new(until.to_string()),
            )?;
            grace_until = Some(crate::clock::from_unix_secs(until));
        }
        _ => {
            // End any earlier grace: the old pair must stop working now.
            if store
                .get(&SecretName::LIVEKIT_ROTATION_GRACE_UNTIL)?
                .is_some()
            {
                store.set(&SecretName::LIVEKIT_ROTATION_GRACE_UNTIL, &Secret::new("0"))?;
            }
        }
    }
    // The secret first: a crash between the two writes leaves the old key with the new secret,
    // which `ensure` publishes consistently (both halves come from the store).
    store.set(&SecretName::LIVEKIT_API_SECRET, &new.secret)?;
    store.set(&SecretName::LIVEKIT_API_KEY, &Secret::new(new.key.as_str()))?;
    Ok(RotateOutcome {
        new_key: new.key.to_string(),
        old_key: old_key.map(|k| k.expose().to_owned()),
        grace_until,
    })
}
