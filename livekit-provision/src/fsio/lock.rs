//! Exclusive advisory locks over a lock file (`flock`), released when the holder exits or drops
//! the guard — so a killed process never leaves a stale lock behind.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};

/// A held exclusive lock. Dropping it releases the lock.
#[derive(Debug)]
pub struct FileLock {
    path: PathBuf,
    _flock: Flock<File>,
}

impl FileLock {
    /// Take the lock at `path` (created 0600 if missing), waiting for the holder if there is one.
    /// `on_wait` is called once, with the holder's pid when known, before waiting, so the caller
    /// can say what it waits for.
    pub fn acquire(path: &Path, on_wait: impl FnOnce(Option<u32>)) -> io::Result<Self> {
        if let Some(lock) = Self::try_acquire(path)? {
            return Ok(lock);
        }
        on_wait(Self::holder(path));
        let file = open_lock_file(path)?;
        let flock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| io::Error::from(errno))?;
        Ok(Self::record(path, flock))
    }

    /// Take the lock if it is free; `None` if another process holds it.
    pub fn try_acquire(path: &Path) -> io::Result<Option<Self>> {
        let file = open_lock_file(path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(flock) => Ok(Some(Self::record(path, flock))),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(io::Error::from(errno)),
        }
    }

    /// The pid recorded by the current holder of the lock at `path`, if any. A recorded pid
    /// whose process is gone is not the holder (a tool such as `flock(1)` took the lock without
    /// recording itself), so it is not reported.
    pub fn holder(path: &Path) -> Option<u32> {
        let mut text = String::new();
        File::open(path).ok()?.read_to_string(&mut text).ok()?;
        let pid: u32 = text.trim().parse().ok()?;
        let raw = i32::try_from(pid).ok().filter(|p| *p > 0)?;
        match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
            Ok(()) | Err(Errno::EPERM) => Some(pid),
            Err(_) => None,
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn record(path: &Path, mut flock: Flock<File>) -> Self {
        // Best effort: the pid is only used to tell a waiter who holds the lock. Overwrite in
        // place, then cut what is left of a longer old pid: truncating to zero first would make
        // ext4 (auto_da_alloc) flush the file to disk when it is closed, a few milliseconds on
        // every run, even a no-op one.
        let line = format!("{}\n", std::process::id());
        let _ = flock.rewind();
        let _ = flock.write_all(line.as_bytes());
        let _ = flock.set_len(line.len() as u64);
        Self {
            path: path.to_owned(),
            _flock: flock,
        }
    }
}

/// Open (creating 0600) the lock file. A symlink at `path` is refused (`ELOOP`), never
/// followed: the holder truncates the file to record its pid, and a link planted there must not
/// make it truncate a file elsewhere.
fn open_lock_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_taker_waits_and_learns_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = FileLock::acquire(&path, |_| panic!("free lock must not wait")).unwrap();
        assert!(FileLock::try_acquire(&path).unwrap().is_none());
        assert_eq!(FileLock::holder(&path), Some(std::process::id()));
        drop(held);
        assert!(FileLock::try_acquire(&path).unwrap().is_some());
    }

    #[test]
    fn a_symlink_in_place_of_the_lock_file_is_refused_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let path = dir.path().join("lock");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let err = FileLock::acquire(&path, |_| {}).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(nix::libc::ELOOP), "{err}");
        assert!(FileLock::try_acquire(&path).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn a_recorded_pid_of_a_dead_process_is_not_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(&path, format!("{dead}\n")).unwrap();
        assert_eq!(FileLock::holder(&path), None);
        std::fs::write(&path, format!("{}\n", std::process::id())).unwrap();
        assert_eq!(FileLock::holder(&path), Some(std::process::id()));
    }

    #[test]
    fn a_longer_old_pid_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        crate::fsio::write_file(&path, b"99999999999999999999\n", 0o600).unwrap();
        let _held = FileLock::acquire(&path, |_| panic!("free lock must not wait")).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
    }
}
