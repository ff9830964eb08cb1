//! [`MemoryStore`]: an in-process store for tests, with fault injection.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{Added, SecretName, SecretStore, StoreError, StoreOp, check_storable};
use crate::secret::Secret;

/// A store held in memory, for tests of everything built on [`SecretStore`].
///
/// Faults can be injected: [`MemoryStore::fail_next`] makes the next call of an operation fail
/// with [`StoreError::Unavailable`], as an unreachable Redis or a crashed helper would, so tests
/// can check that "could not check" never leads to minting.
///
/// ```
/// use livekit_provision::store::{MemoryStore, SecretName, SecretStore, StoreOp};
/// use livekit_provision::Secret;
///
/// let store = MemoryStore::new();
/// store.fail_next(StoreOp::Get);
/// assert!(store.get(&SecretName::LIVEKIT_API_KEY).is_err());
/// assert_eq!(store.get(&SecretName::LIVEKIT_API_KEY).unwrap(), None);
/// store.add_if_absent(&SecretName::LIVEKIT_API_KEY, &Secret::new("APIkey")).unwrap();
/// assert_eq!(store.writes(), 1);
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    values: BTreeMap<SecretName, Secret>,
    /// One-shot faults, consumed in order by the first call of their operation.
    faults: VecDeque<StoreOp>,
    /// Operations that fail until cleared.
    broken: Vec<StoreOp>,
    writes: usize,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `values`.
    pub fn with_values(values: impl IntoIterator<Item = (SecretName, Secret)>) -> Self {
        let store = Self::new();
        store.lock().values.extend(values);
        store
    }

    /// Make the next call of `op` fail with [`StoreError::Unavailable`]. Calls queue up: two
    /// `fail_next(Get)` make the next two `get`s fail.
    pub fn fail_next(&self, op: StoreOp) {
        self.lock().faults.push_back(op);
    }

    /// Make every call of `op` fail (`true`) or succeed again (`false`).
    pub fn set_broken(&self, op: StoreOp, broken: bool) {
        let mut state = self.lock();
        state.broken.retain(|b| *b != op);
        if broken {
            state.broken.push(op);
        }
    }

    /// Everything stored, for assertions.
    pub fn snapshot(&self) -> BTreeMap<SecretName, Secret> {
        self.lock().values.clone()
    }

    /// How many calls changed the stored values (inserts and overwrites with a new value).
    pub fn writes(&self) -> usize {
        self.lock().writes
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves consistent data: every change
        // below is a single map operation.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state, or the injected fault for `op`.
    fn enter(&self, name: &SecretName, op: StoreOp) -> Result<MutexGuard<'_, State>, StoreError> {
        let mut state = self.lock();
        let queued = state.faults.iter().position(|f| *f == op);
        let fails = if let Some(i) = queued {
            state.faults.remove(i);
            true
        } else {
            state.broken.contains(&op)
        };
        if fails {
            return Err(StoreError::Unavailable {
                store: self.describe(),
                name: name.clone(),
                op,
                source: Box::new(io::Error::other("injected fault")),
            });
        }
        Ok(state)
    }
}

impl SecretStore for MemoryStore {
    fn describe(&self) -> String {
        "memory".to_owned()
    }

    fn get(&self, name: &SecretName) -> Result<Option<Secret>, StoreError> {
        Ok(self.enter(name, StoreOp::Get)?.values.get(name).cloned())
    }

    fn add_if_absent(&self, name: &SecretName, value: &Secret) -> Result<Added, StoreError> {
        check_storable(&self.describe(), name, StoreOp::Add, value)?;
        let mut state = self.enter(name, StoreOp::Add)?;
        if let Some(existing) = state.values.get(name) {
            return Ok(Added {
                value: existing.clone(),
                inserted: false,
            });
        }
        state.values.insert(name.clone(), value.clone());
        state.writes += 1;
        Ok(Added {
            value: value.clone(),
            inserted: true,
        })
    }

    fn set(&self, name: &SecretName, value: &Secret) -> Result<(), StoreError> {
        check_storable(&self.describe(), name, StoreOp::Set, value)?;
        let mut state = self.enter(name, StoreOp::Set)?;
        if state.values.get(name) != Some(value) {
            state.values.insert(name.clone(), value.clone());
            state.writes += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_fail_only_their_operation() {
        let name = SecretName::LIVEKIT_API_SECRET;
        let store = MemoryStore::with_values([(name.clone(), Secret::new("v1"))]);
        store.fail_next(StoreOp::Add);
        assert_eq!(store.get(&name).unwrap().unwrap().expose(), "v1");
        let err = store.add_if_absent(&name, &Secret::new("v2")).unwrap_err();
        assert!(matches!(
            err,
            StoreError::Unavailable {
                op: StoreOp::Add,
                ..
            }
        ));
        assert!(err.to_string().contains("LIVEKIT_API_SECRET"));
        let added = store.add_if_absent(&name, &Secret::new("v2")).unwrap();
        assert_eq!((added.value.expose(), added.inserted), ("v1", false));

        store.set_broken(StoreOp::Get, true);
        assert!(store.get(&name).is_err());
        assert!(store.get(&name).is_err());
        store.set_broken(StoreOp::Get, false);
        assert!(store.get(&name).is_ok());
        assert_eq!(store.writes(), 0);
    }

    #[test]
    fn concurrent_adds_agree() {
        let store = MemoryStore::new();
        let name = SecretName::LIVEKIT_API_KEY;
        let results: Vec<Added> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (store, name) = (&store, &name);
                    s.spawn(move || store.add_if_absent(name, &Secret::new(format!("v{i}"))))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        assert_eq!(results.iter().filter(|a| a.inserted).count(), 1);
        assert!(results.iter().all(|a| a.value == results[0].value));
        assert_eq!(store.writes(), 1);
    }
}
