//! Fleet mode: many nodes, one secret store (usually `redis://`). [`fleet_check`] compares this
//! node's live credentials with the store's, for `check --fleet`.

use serde::{Deserialize, Serialize};

use crate::paths::StateDir;
use crate::secret::{ApiKey, Secret};
use crate::store::{SecretName, SecretStore};
use crate::triple::DiskTriple;

pub use crate::store::RedisError;

/// One way this node and the fleet's store differ. Serialized with a `kind` tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum FleetDifference {
    /// The store could not be read: nothing can be compared.
    StoreUnreadable {
        /// The error, credentials redacted.
        reason: String,
    },
    /// The store holds neither an API key nor a secret.
    StoreEmpty,
    /// The store holds only one half of the pair.
    StoreIncomplete {
        /// The name that is absent.
        missing: SecretName,
    },
    /// A value in the store is not a valid API key or secret.
    StoreInvalid {
        /// The name of the invalid value.
        name: SecretName,
    },
    /// This node has no managed files yet.
    NodeNotProvisioned,
    /// This node's three files do not agree with each other.
    NodeInconsistent,
    /// This node's key is not the store's.
    KeyDiffers {
        /// The key this node serves.
        node: String,
        /// The key in the store.
        store: String,
    },
    /// This node's secret is not the store's (the values are never shown).
    SecretDiffers,
}

impl FleetDifference {
    /// One line for a human.
    pub fn message(&self) -> String {
        match self {
            Self::StoreUnreadable { reason } => {
                format!("the secret store could not be read: {reason}")
            }
            Self::StoreEmpty => "the secret store holds no API key or secret".to_owned(),
            Self::StoreIncomplete { missing } => format!("the secret store has no {missing}"),
            Self::StoreInvalid { name } => format!("the secret store's {name} is not valid"),
            Self::NodeNotProvisioned => {
                "this node has no livekit.yaml, backend.env or runtime.json".to_owned()
            }
            Self::NodeInconsistent => {
                "this node's livekit.yaml, backend.env and runtime.json do not agree".to_owned()
            }
            Self::KeyDiffers { node, store } => {
                format!("this node serves key {node}, the secret store holds {store}")
            }
            Self::SecretDiffers => {
                "this node's API secret differs from the secret store's".to_owned()
            }
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            Self::StoreUnreadable { .. } => {
                "fix the store (is Redis up, is the password right?) and run again"
            }
            Self::StoreEmpty | Self::StoreIncomplete { .. } => {
                "run `livekit-provision ensure` on one node: it stores this node's credentials (or mints a pair) for the whole fleet"
            }
            Self::StoreInvalid { .. } => "fix it with `livekit-provision secrets set NAME <value>`",
            Self::NodeNotProvisioned
            | Self::NodeInconsistent
            | Self::KeyDiffers { .. }
            | Self::SecretDiffers => {
                "run `livekit-provision ensure` on this node to rewrite its files from the store (tokens signed with this node's old secret stop working)"
            }
        }
    }
}

/// A difference with its message and hint, as serialized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FleetFinding {
    /// The typed difference.
    #[serde(flatten)]
    pub difference: FleetDifference,
    /// One line for a human.
    pub message: String,
    /// What to do.
    pub hint: String,
}

impl From<FleetDifference> for FleetFinding {
    fn from(difference: FleetDifference) -> Self {
        Self {
            message: difference.message(),
            hint: difference.hint().to_owned(),
            difference,
        }
    }
}

/// The result of [`fleet_check`]: the `fleet` of `check --fleet`'s report
/// ([`CheckReport::with_fleet`](crate::check::CheckReport::with_fleet)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FleetReport {
    /// The store compared with, credentials redacted.
    pub store: String,
    /// The key this node serves, when its files name one.
    pub node_key: Option<String>,
    /// The key the store holds, when it holds a valid one.
    pub store_key: Option<String>,
    /// True when this node serves exactly the store's key and secret.
    pub in_sync: bool,
    /// Everything that differs; empty when in sync.
    pub differences: Vec<FleetFinding>,
}

/// Compare this node's live key and secret (from its files) with the ones in `store`. Read-only:
/// neither the files nor the store are written. Secrets are compared, never shown.
pub fn fleet_check(state: &StateDir, store: &dyn SecretStore) -> FleetReport {
    let mut differences = Vec::new();
    let disk = DiskTriple::read(state);
    let node = disk
        .consistent_credentials()
        .or_else(|| disk.live_credentials().map(|(creds, _)| creds));
    if disk.is_empty() {
        differences.push(FleetDifference::NodeNotProvisioned);
    } else if disk.consistent_credentials().is_none() {
        differences.push(FleetDifference::NodeInconsistent);
    }

    let key = read(store, &SecretName::LIVEKIT_API_KEY, |v| {
        ApiKey::new(v.expose()).ok()
    });
    let secret = read(store, &SecretName::LIVEKIT_API_SECRET, |v| {
        Secret::api_secret(v.expose()).ok()
    });
    // A promotion stopped between its writes reads as done, as `ensure` reads it (the recovery
    // rule of `keyring.rs`).
    let finished = crate::keyring::Keyring::load(store)
        .ok()
        .filter(crate::keyring::Keyring::promotion_interrupted)
        .and_then(|ring| ring.current());
    let (key, secret) = match finished {
        Some(c) => (Ok(Stored::Valid(c.key)), Ok(Stored::Valid(c.secret))),
        None => (key, secret),
    };
    let mut store_key = None;
    match (key, secret) {
        (Err(reason), _) | (_, Err(reason)) => {
            differences.push(FleetDifference::StoreUnreadable { reason });
        }
        (Ok(key), Ok(secret)) => {
            match (&key, &secret) {
                (Stored::Absent, Stored::Absent) => differences.push(FleetDifference::StoreEmpty),
                (Stored::Absent, _) => differences.push(FleetDifference::StoreIncomplete {
                    missing: SecretName::LIVEKIT_API_KEY,
                }),
                (_, Stored::Absent) => differences.push(FleetDifference::StoreIncomplete {
                    missing: SecretName::LIVEKIT_API_SECRET,
                }),
                _ => {}
            }
            for (stored, name) in [
                (matches!(key, Stored::Invalid), SecretName::LIVEKIT_API_KEY),
                (
                    matches!(secret, Stored::Invalid),
                    SecretName::LIVEKIT_API_SECRET,
                ),
            ] {
                if stored {
                    differences.push(FleetDifference::StoreInvalid { name });
                }
            }
            if let (Some(node), Stored::Valid(key)) = (&node, &key)
                && node.key != *key
            {
                differences.push(FleetDifference::KeyDiffers {
                    node: node.key.to_string(),
                    store: key.to_string(),
                });
            }
            if let (Some(node), Stored::Valid(secret)) = (&node, &secret)
                && node.secret != *secret
            {
                differences.push(FleetDifference::SecretDiffers);
            }
            if let Stored::Valid(key) = key {
                store_key = Some(key.to_string());
            }
        }
    }
    FleetReport {
        store: store.describe(),
        node_key: node.map(|c| c.key.to_string()),
        store_key,
        in_sync: differences.is_empty(),
        differences: differences.into_iter().map(FleetFinding::from).collect(),
    }
}

enum Stored<T> {
    Absent,
    Invalid,
    Valid(T),
}

fn read<T>(
    store: &dyn SecretStore,
    name: &SecretName,
    parse: impl FnOnce(&Secret) -> Option<T>,
) -> Result<Stored<T>, String> {
    match store.get(name) {
        Ok(None) => Ok(Stored::Absent),
        Ok(Some(value)) => Ok(parse(&value).map_or(Stored::Invalid, Stored::Valid)),
        Err(e) => Err(crate::error_chain::one_line(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ensure::{EnsureOptions, ensure};
    use crate::store::MemoryStore;

    fn kinds(report: &FleetReport) -> Vec<String> {
        report
            .differences
            .iter()
            .map(|f| {
                serde_json::to_value(f).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    #[test]
    fn reports_empty_store_and_unprovisioned_node() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let report = fleet_check(&state, &MemoryStore::new());
        assert!(!report.in_sync);
        assert_eq!(kinds(&report), ["node_not_provisioned", "store_empty"]);
    }

    #[test]
    fn in_sync_after_ensure_then_differs_without_showing_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let store = MemoryStore::new();
        ensure(&state, &store, &EnsureOptions::default()).unwrap();
        let report = fleet_check(&state, &store);
        assert!(report.in_sync, "{report:?}");
        assert_eq!(report.node_key, report.store_key);

        let other = Secret::mint_api_secret().unwrap();
        store.set(&SecretName::LIVEKIT_API_SECRET, &other).unwrap();
        let report = fleet_check(&state, &store);
        assert_eq!(kinds(&report), ["secret_differs"]);
        let json = serde_json::to_string(&report).unwrap();
        assert!(!json.contains(other.expose()), "{json}");

        store
            .set(&SecretName::LIVEKIT_API_KEY, &Secret::new("APIother"))
            .unwrap();
        let report = fleet_check(&state, &store);
        assert_eq!(kinds(&report), ["key_differs", "secret_differs"]);
        assert_eq!(report.store_key.as_deref(), Some("APIother"));
    }
}
