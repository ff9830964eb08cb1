//! A secret store kept in a `HashMap`, for the example hosts (`embed.rs`, `hero_host.rs`): the
//! smallest correct [`SecretStore`]. A real host puts its own store here (hero_livekit_server:
//! hero_proc's secrets).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use livekit_provision::Secret;
use livekit_provision::store::{Added, SecretName, SecretStore, StoreError};

/// A secret store kept in a `HashMap`: the smallest correct [`SecretStore`].
///
/// The contract every store keeps (see `livekit_provision::store`):
/// - `get` answers `Ok(None)` only when it *knows* the name is absent; when it cannot check, it
///   returns an error (the library mints a new secret only on `Ok(None)`).
/// - `add_if_absent` is atomic: one lock covers the look-up and the insert.
/// - values never appear in `Debug` (hence the hand-written impl) or in errors.
/// - values are one non-empty line; the library validates what it writes (and the daemon's
///   `secrets.set` what it is given) before a store sees it, so this store keeps what it gets.
#[derive(Default)]
pub struct HashMapStore {
    values: Mutex<HashMap<SecretName, Secret>>,
}

impl std::fmt::Debug for HashMapStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = self.lock().len();
        f.debug_struct("HashMapStore")
            .field("values", &names)
            .finish()
    }
}

impl HashMapStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SecretName, Secret>> {
        self.values.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SecretStore for HashMapStore {
    fn describe(&self) -> String {
        "memory:example-host".to_owned()
    }

    fn get(&self, name: &SecretName) -> Result<Option<Secret>, StoreError> {
        Ok(self.lock().get(name).cloned())
    }

    fn add_if_absent(&self, name: &SecretName, value: &Secret) -> Result<Added, StoreError> {
        let mut values = self.lock();
        if let Some(stored) = values.get(name) {
            return Ok(Added {
                value: stored.clone(),
                inserted: false,
            });
        }
        values.insert(name.clone(), value.clone());
        Ok(Added {
            value: value.clone(),
            inserted: true,
        })
    }

    fn set(&self, name: &SecretName, value: &Secret) -> Result<(), StoreError> {
        self.lock().insert(name.clone(), value.clone());
        Ok(())
    }
}
