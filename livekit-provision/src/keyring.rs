//! The API key pairs a secret store holds — current, next (staged), previous (in its grace) —
//! read together, and the one rule that reads a promotion stopped between two writes.
//!
//! A rotation is a sequence of epochs (docs/DESIGN.md, "Key epochs"), each kept only in the
//! store, so that a fleet sharing it agrees and a kill at any point loses nothing:
//! - **stable**: `LIVEKIT_API_KEY`/`LIVEKIT_API_SECRET` sign everything; `livekit.yaml` lists
//!   that one key.
//! - **staged**: `LIVEKIT_API_KEY_NEXT`/`LIVEKIT_API_SECRET_NEXT` hold a pair that
//!   `livekit.yaml` lists beside the current one; nothing signs with it yet.
//! - **grace**: the staged pair became current; the one it replaced is
//!   `LIVEKIT_API_KEY_PREVIOUS`/`LIVEKIT_API_SECRET_PREVIOUS`, listed until
//!   `LIVEKIT_ROTATION_GRACE_UNTIL`.
//!
//! The store has no delete, so "nothing staged" is the next pair's key equal to the current
//! key (which a promotion leaves behind by itself) or absent, and "no grace" is a
//! `LIVEKIT_ROTATION_GRACE_UNTIL` in the past (or absent).
//!
//! **The recovery rule.** A promotion writes, in this order: `LIVEKIT_ROTATION_GRACE_UNTIL`
//! `0` (ending any earlier grace), `LIVEKIT_API_SECRET_PREVIOUS` and `LIVEKIT_API_KEY_PREVIOUS`
//! (the current pair), `LIVEKIT_ROTATION_GRACE_UNTIL` (the end of the new grace),
//! `LIVEKIT_API_SECRET` (the next secret), `LIVEKIT_API_KEY` (the next key). Stopped before the
//! secret, the store still reads as staged: the previous pair is stale (its grace over) or equal
//! to the current one. Stopped between the secret and the key, the store holds the current key
//! with the next secret — a pair no server knows. That state, and only that one, is recognised:
//! **when `LIVEKIT_API_KEY` equals `LIVEKIT_API_KEY_PREVIOUS` and `LIVEKIT_API_SECRET` equals
//! `LIVEKIT_API_SECRET_NEXT` (and differs from `LIVEKIT_API_SECRET_PREVIOUS`, and the next key
//! differs from the current one), the promotion was interrupted and is read as complete**: the
//! current pair is the next pair. Every reader goes through [`Keyring::current`], so a kill
//! between any two writes leaves the store reading as before the promotion or as after it; the
//! next rotation command writes the missing key.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::inputs::Credentials;
use crate::secret::{ApiKey, InvalidValue, Secret};
use crate::store::{SecretName, SecretStore, StoreError};
use crate::validate;

/// The names that decide what the files hold: the three pairs and the end of the grace
/// (`resolve` reads these; the schedule, `LIVEKIT_ROTATION_GRACE` and
/// `LIVEKIT_ROTATION_DEADLINE`, matters only to the rotation commands).
pub(crate) const PAIR_NAMES: [SecretName; 7] = [
    SecretName::LIVEKIT_API_KEY,
    SecretName::LIVEKIT_API_SECRET,
    SecretName::LIVEKIT_API_KEY_NEXT,
    SecretName::LIVEKIT_API_SECRET_NEXT,
    SecretName::LIVEKIT_API_KEY_PREVIOUS,
    SecretName::LIVEKIT_API_SECRET_PREVIOUS,
    SecretName::LIVEKIT_ROTATION_GRACE_UNTIL,
];

/// Every name of the rotation, in the order [`Keyring::load`] reads them.
pub(crate) const NAMES: [SecretName; 9] = [
    SecretName::LIVEKIT_API_KEY,
    SecretName::LIVEKIT_API_SECRET,
    SecretName::LIVEKIT_API_KEY_NEXT,
    SecretName::LIVEKIT_API_SECRET_NEXT,
    SecretName::LIVEKIT_API_KEY_PREVIOUS,
    SecretName::LIVEKIT_API_SECRET_PREVIOUS,
    SecretName::LIVEKIT_ROTATION_GRACE_UNTIL,
    SecretName::LIVEKIT_ROTATION_GRACE,
    SecretName::LIVEKIT_ROTATION_DEADLINE,
];

/// Where a rotation stands: what `status` shows and what the daemon drives. Key names only,
/// never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "phase")]
#[non_exhaustive]
pub enum Epoch {
    /// One key: nothing staged, no grace in force.
    Stable {
        /// The key everything signs with; `null` before the first `ensure`.
        current_key: Option<String>,
    },
    /// A next key is staged: `livekit.yaml` lists it beside the current one; nothing signs with
    /// it until it is promoted, once the running livekit-server has loaded it.
    Staged {
        /// The key everything signs with.
        current_key: String,
        /// The staged key.
        next_key: String,
        /// The grace the previous key will get at promotion, in seconds.
        grace_secs: u64,
        /// The operator's deadline for retiring the previous key (RFC 3339), when one was set.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "crate::clock::optional_rfc3339"
        )]
        #[schemars(with = "Option<String>")]
        deadline: Option<SystemTime>,
    },
    /// The staged key was promoted; the one it replaced stays in `livekit.yaml` until the grace
    /// ends.
    Grace {
        /// The key everything signs with.
        current_key: String,
        /// The key being retired.
        previous_key: String,
        /// When the grace ends (RFC 3339): the first `ensure` after it drops the previous key.
        #[serde(with = "crate::clock::rfc3339_serde")]
        #[schemars(with = "String")]
        until: SystemTime,
        /// The operator's deadline (RFC 3339): the grace is never extended past it.
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            with = "crate::clock::optional_rfc3339"
        )]
        #[schemars(with = "Option<String>")]
        deadline: Option<SystemTime>,
    },
}

impl Epoch {
    /// The key everything signs with, when the store holds one.
    pub fn current_key(&self) -> Option<&str> {
        match self {
            Self::Stable { current_key } => current_key.as_deref(),
            Self::Staged { current_key, .. } | Self::Grace { current_key, .. } => Some(current_key),
        }
    }

    /// The staged key, when one is staged.
    pub fn next_key(&self) -> Option<&str> {
        match self {
            Self::Staged { next_key, .. } => Some(next_key),
            _ => None,
        }
    }

    /// The phase's name: `stable`, `staged` or `grace` (as serialized).
    pub fn phase(&self) -> &'static str {
        match self {
            Self::Stable { .. } => "stable",
            Self::Staged { .. } => "staged",
            Self::Grace { .. } => "grace",
        }
    }
}

/// Why the rotation's names could not be read.
#[derive(Debug)]
pub(crate) enum KeyringError {
    /// The store could not be read.
    Store(StoreError),
    /// A value is not valid for its name.
    Invalid {
        name: SecretName,
        source: InvalidValue,
    },
}

impl From<StoreError> for KeyringError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// The rotation's names as the store holds them, each validated; the pairs they form come from
/// the methods, which apply the recovery rule.
#[derive(Debug, Clone, Default)]
pub(crate) struct Keyring {
    /// `LIVEKIT_API_KEY`, as stored.
    pub key: Option<ApiKey>,
    /// `LIVEKIT_API_SECRET`, as stored.
    pub secret: Option<Secret>,
    next_key: Option<ApiKey>,
    next_secret: Option<Secret>,
    previous_key: Option<ApiKey>,
    previous_secret: Option<Secret>,
    /// `LIVEKIT_ROTATION_GRACE_UNTIL`.
    pub grace_until: Option<u64>,
    /// `LIVEKIT_ROTATION_GRACE`.
    pub grace: Option<u64>,
    /// `LIVEKIT_ROTATION_DEADLINE` (`0` read as none).
    pub deadline: Option<u64>,
}

impl Keyring {
    /// Read every name of [`NAMES`] in one batch (one Redis round trip).
    pub fn load(store: &dyn SecretStore) -> Result<Self, KeyringError> {
        Self::load_names(store, &NAMES)
    }

    /// Read `names` (some of [`NAMES`]) in one batch; the others read as absent.
    pub fn load_names(store: &dyn SecretStore, names: &[SecretName]) -> Result<Self, KeyringError> {
        let values = store.get_many(names)?;
        Self::from_values(names.iter().cloned().zip(values))
    }

    /// The rotation's names among `values` (read by the caller; other names are ignored), each
    /// validated.
    pub fn from_values(
        values: impl IntoIterator<Item = (SecretName, Option<Secret>)>,
    ) -> Result<Self, KeyringError> {
        let mut ring = Self::default();
        for (name, value) in values {
            let Some(value) = value else { continue };
            let text = value.expose();
            let invalid = |source| KeyringError::Invalid {
                name: name.clone(),
                source,
            };
            // The rule of every door (`secrets set` applies the same), then the typed value.
            validate::secret_value(&name, text).map_err(invalid)?;
            match name.as_str() {
                "LIVEKIT_API_KEY" => ring.key = Some(ApiKey::new(text).map_err(invalid)?),
                "LIVEKIT_API_SECRET" => {
                    ring.secret = Some(Secret::api_secret(text).map_err(invalid)?);
                }
                "LIVEKIT_API_KEY_NEXT" => {
                    ring.next_key = Some(ApiKey::new(text).map_err(invalid)?);
                }
                "LIVEKIT_API_SECRET_NEXT" => {
                    ring.next_secret = Some(Secret::api_secret(text).map_err(invalid)?);
                }
                "LIVEKIT_API_KEY_PREVIOUS" => {
                    ring.previous_key = Some(ApiKey::new(text).map_err(invalid)?);
                }
                "LIVEKIT_API_SECRET_PREVIOUS" => {
                    ring.previous_secret = Some(Secret::api_secret(text).map_err(invalid)?);
                }
                "LIVEKIT_ROTATION_GRACE_UNTIL" => {
                    ring.grace_until = Some(validate::unix_timestamp(text).map_err(invalid)?);
                }
                "LIVEKIT_ROTATION_GRACE" => {
                    ring.grace = Some(validate::grace_seconds(text).map_err(invalid)?);
                }
                "LIVEKIT_ROTATION_DEADLINE" => {
                    let deadline = validate::unix_timestamp(text).map_err(invalid)?;
                    ring.deadline = (deadline != 0).then_some(deadline);
                }
                _ => {}
            }
        }
        Ok(ring)
    }

    fn pair(key: Option<&ApiKey>, secret: Option<&Secret>) -> Option<Credentials> {
        Some(Credentials {
            key: key?.clone(),
            secret: secret?.clone(),
        })
    }

    /// `LIVEKIT_API_KEY` and `LIVEKIT_API_SECRET` as stored, when both are.
    pub fn stored_current(&self) -> Option<Credentials> {
        Self::pair(self.key.as_ref(), self.secret.as_ref())
    }

    /// The next pair as stored, when both halves are.
    pub fn stored_next(&self) -> Option<Credentials> {
        Self::pair(self.next_key.as_ref(), self.next_secret.as_ref())
    }

    /// The previous pair as stored, when both halves are.
    pub fn stored_previous(&self) -> Option<Credentials> {
        Self::pair(self.previous_key.as_ref(), self.previous_secret.as_ref())
    }

    /// True when a promotion stopped between writing the secret and the key (the recovery rule
    /// of the module documentation).
    pub fn promotion_interrupted(&self) -> bool {
        let (Some(current), Some(next), Some(previous)) = (
            self.stored_current(),
            self.stored_next(),
            self.stored_previous(),
        ) else {
            return false;
        };
        current.key == previous.key
            && current.secret == next.secret
            && current.secret != previous.secret
            && next.key != current.key
    }

    /// The pair everything signs with: the stored one, or the next pair when a promotion was
    /// interrupted. `None` when the store lacks a half.
    pub fn current(&self) -> Option<Credentials> {
        if self.promotion_interrupted() {
            self.stored_next()
        } else {
            self.stored_current()
        }
    }

    /// The staged pair, when one is staged beside `current`.
    pub fn next_for(&self, current: &Credentials) -> Option<Credentials> {
        self.stored_next().filter(|next| next.key != current.key)
    }

    /// The previous pair and the end of its grace, while the grace is in force at `now` and
    /// that pair is not `current`'s key.
    pub fn previous_in_grace(
        &self,
        current: &Credentials,
        now: SystemTime,
    ) -> Option<(Credentials, u64)> {
        let until = self.grace_until?;
        if unix_secs(now) >= until {
            return None;
        }
        self.stored_previous()
            .filter(|previous| previous.key != current.key)
            .map(|previous| (previous, until))
    }

    /// The previous key whose grace is over at `now` (retired: `livekit.yaml` must not list it),
    /// when there is one distinct from `current`.
    pub fn retired_key(&self, current: &Credentials, now: SystemTime) -> Option<ApiKey> {
        let previous = self.previous_key.as_ref()?;
        let over = self.grace_until.is_none_or(|until| unix_secs(now) >= until);
        (over && *previous != current.key).then(|| previous.clone())
    }

    /// Where the rotation stands at `now`. A grace in force comes first: whatever is staged
    /// waits until the previous key is retired.
    pub fn epoch(&self, now: SystemTime) -> Epoch {
        let Some(current) = self.current() else {
            return Epoch::Stable {
                current_key: self.key.as_ref().map(ToString::to_string),
            };
        };
        let deadline = self.deadline.map(crate::clock::from_unix_secs);
        if let Some((previous, until)) = self.previous_in_grace(&current, now) {
            return Epoch::Grace {
                current_key: current.key.to_string(),
                previous_key: previous.key.to_string(),
                until: crate::clock::from_unix_secs(until),
                deadline,
            };
        }
        if let Some(next) = self.next_for(&current) {
            return Epoch::Staged {
                current_key: current.key.to_string(),
                next_key: next.key.to_string(),
                grace_secs: self.grace.unwrap_or(0),
                deadline,
            };
        }
        Epoch::Stable {
            current_key: Some(current.key.to_string()),
        }
    }
}

/// Seconds since the Unix epoch (0 before it).
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn ring(values: &[(&SecretName, &str)]) -> Keyring {
        let store = MemoryStore::with_values(
            values
                .iter()
                .map(|(name, value)| ((*name).clone(), Secret::new(*value))),
        );
        Keyring::load(&store).unwrap()
    }

    const S1: &str = "S1s1S1s1S1s1S1s1S1s1S1s1S1s1S1s1S1s1S1s1S1s";
    const S2: &str = "S2s2S2s2S2s2S2s2S2s2S2s2S2s2S2s2S2s2S2s2S2s";

    #[test]
    fn the_recovery_rule_reads_only_the_interrupted_promotion_as_done() {
        let interrupted = ring(&[
            (&SecretName::LIVEKIT_API_KEY, "APIone"),
            (&SecretName::LIVEKIT_API_SECRET, S2),
            (&SecretName::LIVEKIT_API_KEY_NEXT, "APItwo"),
            (&SecretName::LIVEKIT_API_SECRET_NEXT, S2),
            (&SecretName::LIVEKIT_API_KEY_PREVIOUS, "APIone"),
            (&SecretName::LIVEKIT_API_SECRET_PREVIOUS, S1),
        ]);
        assert!(interrupted.promotion_interrupted());
        let current = interrupted.current().map(|c| c.key.to_string());
        assert_eq!(current.as_deref(), Some("APItwo"));
        // The same store after the last write: nothing interrupted, nothing staged.
        let done = ring(&[
            (&SecretName::LIVEKIT_API_KEY, "APItwo"),
            (&SecretName::LIVEKIT_API_SECRET, S2),
            (&SecretName::LIVEKIT_API_KEY_NEXT, "APItwo"),
            (&SecretName::LIVEKIT_API_SECRET_NEXT, S2),
            (&SecretName::LIVEKIT_API_KEY_PREVIOUS, "APIone"),
            (&SecretName::LIVEKIT_API_SECRET_PREVIOUS, S1),
        ]);
        assert!(!done.promotion_interrupted());
        let current = done.current().unwrap();
        assert_eq!(done.next_for(&current), None);
        // Staged, with the previous pair written over the current one: still staged.
        let staged = ring(&[
            (&SecretName::LIVEKIT_API_KEY, "APIone"),
            (&SecretName::LIVEKIT_API_SECRET, S1),
            (&SecretName::LIVEKIT_API_KEY_NEXT, "APItwo"),
            (&SecretName::LIVEKIT_API_SECRET_NEXT, S2),
            (&SecretName::LIVEKIT_API_KEY_PREVIOUS, "APIone"),
            (&SecretName::LIVEKIT_API_SECRET_PREVIOUS, S1),
            (&SecretName::LIVEKIT_ROTATION_GRACE_UNTIL, "4102444800"),
        ]);
        assert!(!staged.promotion_interrupted());
        assert!(matches!(
            staged.epoch(UNIX_EPOCH),
            Epoch::Staged { ref next_key, .. } if next_key == "APItwo"
        ));
    }

    #[test]
    fn a_deadline_of_zero_is_none_and_an_invalid_value_is_named() {
        let r = ring(&[(&SecretName::LIVEKIT_ROTATION_DEADLINE, "0")]);
        assert_eq!(r.deadline, None);
        let store = MemoryStore::with_values([(
            SecretName::LIVEKIT_ROTATION_GRACE,
            Secret::new("forever"),
        )]);
        assert!(matches!(
            Keyring::load(&store),
            Err(KeyringError::Invalid { ref name, .. }) if *name == SecretName::LIVEKIT_ROTATION_GRACE
        ));
    }
}
