//! The state lock (`run/lock`): every publish happens while holding it, so two writers never
//! interleave their steps. It is an `flock`, so a killed holder never leaves it stale.

use std::path::Path;

use super::PublishError;
use crate::fsio::FileLock;
use crate::paths::StateDir;

/// The held lock of one state directory. Dropping it releases the lock.
///
/// [`publish`](super::publish) takes `&StateLock` as proof that the caller holds it.
#[derive(Debug)]
pub struct StateLock {
    lock: FileLock,
}

impl StateLock {
    /// Take the lock of `state` (its `run/` must exist: see [`prepare`](super::prepare)),
    /// waiting for the holder if there is one. `on_wait` is called once before waiting, with
    /// the holder's pid when known, so the caller can say "waiting for pid N holding PATH".
    pub fn acquire(
        state: &StateDir,
        on_wait: impl FnOnce(Option<u32>),
    ) -> Result<Self, PublishError> {
        let path = state.lock_file();
        FileLock::acquire(&path, on_wait)
            .map(|lock| Self { lock })
            .map_err(|source| PublishError::Lock { path, source })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        self.lock.path()
    }

    /// Fail unless this is the lock of `state`.
    pub(crate) fn check_guards(&self, state: &StateDir) -> Result<(), PublishError> {
        let needed = state.lock_file();
        if self.path() == needed {
            Ok(())
        } else {
            Err(PublishError::WrongLock {
                held: self.path().to_owned(),
                needed,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::error_chain::Hint;
    use super::*;

    #[test]
    fn a_second_taker_learns_the_holder_pid() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path());
        super::super::prepare(&state).unwrap();
        let held = StateLock::acquire(&state, |_| panic!("free lock must not wait")).unwrap();
        assert!(FileLock::try_acquire(&state.lock_file()).unwrap().is_none());
        assert_eq!(
            FileLock::holder(&state.lock_file()),
            Some(std::process::id())
        );
        drop(held);
        assert!(FileLock::try_acquire(&state.lock_file()).unwrap().is_some());
    }

    #[test]
    fn a_lock_of_another_state_dir_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let a = StateDir::new(tmp.path().join("a"));
        let b = StateDir::new(tmp.path().join("b"));
        super::super::prepare(&a).unwrap();
        let lock = StateLock::acquire(&a, |_| {}).unwrap();
        assert!(lock.check_guards(&a).is_ok());
        assert!(matches!(
            lock.check_guards(&b),
            Err(PublishError::WrongLock { .. })
        ));
    }

    #[test]
    fn a_missing_run_dir_is_a_lock_error_naming_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path().join("nope"));
        let err = StateLock::acquire(&state, |_| {}).unwrap_err();
        assert!(err.to_string().contains("run/lock"), "{err}");
        assert!(err.hint().unwrap().contains("ensure"));
    }
}
