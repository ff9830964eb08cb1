//! The provisioning gate (the seed's "Provision gate": `LIVEKIT_VERSION` being set is the single
//! opt-in signal): whether a run provisions at all, and what `status` says when it does not.
//!
//! The gate is asked before anything else a run does, with one `get` of `LIVEKIT_VERSION` from
//! the store: it never mints, never writes, and a store that could not be read is an error (the
//! run fails and is retried), never "unset".

use livekit_provision::store::{SecretName, SecretStore, StoreError};

use crate::protocol::{NOT_PROVISIONED, RpcError};

/// When the control plane's runs provision: [`DaemonConfig::provision`](crate::DaemonConfig).
///
/// Runs are the background runs, a reload (SIGHUP, [`Command::Reload`](crate::Command),
/// [`ControlPlane::reload`](crate::ControlPlane::reload)), the `ensure` method and the run that
/// `secrets.set` and `secrets.rotate` schedule. The other methods do what they say whatever
/// the gate (`install` installs, `secrets.rotate` rotates, `start` starts what is there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Provision {
    /// Provision on every run. Without `LIVEKIT_VERSION` (and without `livekit_bin`) the node
    /// is control plane only: credentials are minted into the store when absent and the three
    /// files are rendered, but no livekit-server is installed or started (state `disabled`).
    /// What the daemon binary and the CLI do.
    Always,
    /// Provision only once the store holds `LIVEKIT_VERSION`. Until then a run mints nothing,
    /// writes nothing, downloads nothing and starts nothing; `status` says `disabled`, naming
    /// `LIVEKIT_VERSION`, and `ensure` answers `-32001`. What
    /// [`DaemonConfig::new`](crate::DaemonConfig::new) gives a host: a box that did not opt in
    /// is left alone.
    WhenVersionPinned,
}

/// Why a run provisioned no media: the state `disabled`, with its reason and how to turn it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disabled {
    /// [`Provision::Always`] and no version pinned: the files are rendered, no media run.
    NotPinned,
    /// [`Provision::WhenVersionPinned`] and no version pinned: nothing was done.
    Gated,
}

impl Disabled {
    /// What is off and why (`status.provisioning.disabled_reason`).
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::NotPinned => {
                "LIVEKIT_VERSION is not set: control plane only (the config files are rendered; no livekit-server is installed or started)"
            }
            Self::Gated => {
                "LIVEKIT_VERSION is not set in the secret store: provisioning is off (nothing is minted, written, downloaded or started)"
            }
        }
    }

    /// How to turn it on (`status.provisioning.hint`).
    pub(crate) fn hint(self) -> &'static str {
        match self {
            Self::NotPinned => {
                "set LIVEKIT_VERSION (e.g. v1.7.2: the `secrets.set` method, or `livekit-provision secrets set LIVEKIT_VERSION v1.7.2`) to install and run livekit-server, or livekit_bin in provision.yaml"
            }
            Self::Gated => {
                "set LIVEKIT_VERSION in the secret store (e.g. v1.7.2, with the `secrets.set` method) to provision this node"
            }
        }
    }

    /// The answer of an `ensure` call that the gate stopped.
    pub(crate) fn ensure_error(self) -> RpcError {
        RpcError::new(NOT_PROVISIONED, self.reason()).with_hint(Some(self.hint().to_owned()))
    }
}

/// Whether a run may provision under `provision`: `Ok(true)` when it may, `Ok(false)` when the
/// gate is closed (no `LIVEKIT_VERSION` in `store`). Reads one name; never writes.
pub(crate) fn open(provision: Provision, store: &dyn SecretStore) -> Result<bool, StoreError> {
    match provision {
        Provision::Always => Ok(true),
        Provision::WhenVersionPinned => Ok(store.get(&SecretName::LIVEKIT_VERSION)?.is_some()),
    }
}

#[cfg(test)]
mod tests {
    use livekit_provision::Secret;
    use livekit_provision::store::{MemoryStore, StoreOp};

    use super::*;

    #[test]
    fn the_gate_opens_only_on_a_pinned_version_and_never_writes() {
        let store = MemoryStore::new();
        assert!(open(Provision::Always, &store).unwrap());
        assert!(!open(Provision::WhenVersionPinned, &store).unwrap());
        assert_eq!(store.writes(), 0, "asking minted nothing");
        store
            .set(&SecretName::LIVEKIT_VERSION, &Secret::new("1.7.2"))
            .unwrap();
        assert!(open(Provision::WhenVersionPinned, &store).unwrap());
    }

    #[test]
    fn a_store_that_cannot_be_read_is_an_error_not_unset() {
        let store = MemoryStore::new();
        store.fail_next(StoreOp::Get);
        assert!(open(Provision::WhenVersionPinned, &store).is_err());
        assert_eq!(store.writes(), 0);
        // The daemon binary's gate does not read the store at all.
        assert!(open(Provision::Always, &store).unwrap());
    }

    #[test]
    fn the_messages_name_livekit_version() {
        for d in [Disabled::NotPinned, Disabled::Gated] {
            assert!(d.reason().contains("LIVEKIT_VERSION"));
            assert!(d.hint().contains("LIVEKIT_VERSION"));
        }
        let e = Disabled::Gated.ensure_error();
        assert_eq!(e.code, NOT_PROVISIONED);
        assert!(e.hint().is_some_and(|h| h.contains("secrets.set")));
    }
}
