//! Exclusive advisory locks over a lock file (`flock`), released when the holder exits or drops
//! the guard — so a killed process never leaves a stale lock behind.
//!
//! Nothing is written to the lock file: who holds it is read from the kernel's table of locks
//! (`/proc/locks`), so taking the lock on a run that changes nothing writes nothing.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};

/// The kernel's table of held file locks.
const PROC_LOCKS: &str = "/proc/locks";

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
        Ok(Self::held(path, flock))
    }

    /// Take the lock if it is free; `None` if another process holds it.
    pub fn try_acquire(path: &Path) -> io::Result<Option<Self>> {
        let file = open_lock_file(path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(flock) => Ok(Some(Self::held(path, flock))),
            Err((_, Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, errno)) => Err(io::Error::from(errno)),
        }
    }

    /// The pid of the live process holding the lock at `path`, if any: the locker `/proc/locks`
    /// lists for the file. When that process has exited (the lock lives on in a process that
    /// shares its open file, as with `flock(1)` on a shell's descriptor) or the table cannot be
    /// read, the pid a holder recorded in the file (older versions did), if that process is
    /// alive. `None` when the table lists no lock on the file (free, or held from another pid
    /// namespace).
    pub fn holder(path: &Path) -> Option<u32> {
        let meta = std::fs::metadata(path).ok()?;
        let listed = std::fs::read_to_string(PROC_LOCKS)
            .ok()
            .map(|table| flock_holder_in(&table, meta.dev(), meta.ino()));
        match listed {
            Some(None) => None,
            Some(Some(pid)) if is_alive(pid) => Some(pid),
            _ => recorded_pid(path).filter(|pid| is_alive(*pid)),
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn held(path: &Path, flock: Flock<File>) -> Self {
        Self {
            path: path.to_owned(),
            _flock: flock,
        }
    }
}

/// The pid of the granted `FLOCK` entry of `/proc/locks` (`table`) on the file with device `dev`
/// and inode `ino`. Lines read `1: FLOCK  ADVISORY  WRITE 4242 fe:01:131 0 EOF` (device major
/// and minor in hex); a blocked waiter's line has `->` after the ordinal and is skipped.
///
/// Some filesystems (btrfs subvolumes) report another device to `stat` than the table shows;
/// then the one granted entry with that inode number is taken, if there is exactly one.
fn flock_holder_in(table: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    let mut same_inode = Vec::new();
    for line in table.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, "FLOCK", _, _, pid, id, ..] = fields.as_slice() else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let mut parts = id.split(':');
        let (Some(maj), Some(min), Some(inode), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if inode.parse::<u64>().ok() != Some(ino) || pid == 0 {
            continue;
        }
        let hex = |s: &str| u64::from_str_radix(s, 16).ok();
        if hex(maj) == Some(major) && hex(min) == Some(minor) {
            return Some(pid);
        }
        same_inode.push(pid);
    }
    match same_inode.as_slice() {
        [pid] => Some(*pid),
        _ => None,
    }
}

/// The pid written in the lock file, if it holds one.
fn recorded_pid(path: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().parse().ok()
}

/// Whether a process with this pid exists (it may belong to another user).
fn is_alive(pid: u32) -> bool {
    let Some(raw) = i32::try_from(pid).ok().filter(|p| *p > 0) else {
        return false;
    };
    matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None),
        Ok(()) | Err(Errno::EPERM)
    )
}

/// Open (creating 0600) the lock file. A symlink at `path` is refused (`ELOOP`), never
/// followed: a link planted there must not make us create or lock a file elsewhere.
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
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    #[test]
    fn second_taker_waits_and_learns_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = FileLock::acquire(&path, |_| panic!("free lock must not wait")).unwrap();
        assert!(FileLock::try_acquire(&path).unwrap().is_none());
        assert_eq!(FileLock::holder(&path), Some(std::process::id()));
        drop(held);
        assert_eq!(FileLock::holder(&path), None);
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
    fn taking_and_releasing_the_lock_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        drop(FileLock::acquire(&path, |_| {}).unwrap());
        let before = std::fs::metadata(&path).unwrap();
        drop(FileLock::acquire(&path, |_| {}).unwrap());
        drop(FileLock::try_acquire(&path).unwrap());
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(after.len(), 0);
        assert_eq!(
            (
                after.mtime(),
                after.mtime_nsec(),
                after.ctime(),
                after.ctime_nsec()
            ),
            (
                before.mtime(),
                before.mtime_nsec(),
                before.ctime(),
                before.ctime_nsec()
            )
        );
    }

    /// Poll `holder` until it returns `want` (a lock taken by another process shows up in
    /// `/proc/locks` once that process has run).
    fn wait_for_holder(path: &Path, want: Option<u32>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = FileLock::holder(path);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "holder is {got:?}, want {want:?}"
            );
            std::thread::yield_now();
        }
    }

    #[test]
    fn the_holder_is_the_locking_process_not_a_pid_in_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        // A live pid in the file of a free lock is not a holder.
        std::fs::write(&path, format!("{}\n", std::process::id())).unwrap();
        assert_eq!(FileLock::holder(&path), None);

        // flock(1) takes the lock itself and stays alive while `cat` runs (until stdin closes).
        let mut child = Command::new("flock")
            .arg(&path)
            .arg("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_holder(&path, Some(child.id()));
        assert!(FileLock::try_acquire(&path).unwrap().is_none());
        drop(child.stdin.take());
        child.wait().unwrap();
        wait_for_holder(&path, None);
        assert!(FileLock::try_acquire(&path).unwrap().is_some());
    }

    /// `flock 9` in a shell: the listed locker (flock(1)) exits at once and the shell holds the
    /// lock; it is named only when it recorded its pid in the file.
    fn shell_holding(path: &Path, record: bool) -> std::process::Child {
        let script = if record {
            r#"exec 9>>"$1"; flock 9; echo $$ >"$1"; echo locked; exec cat"#
        } else {
            r#"exec 9>>"$1"; flock 9; echo locked; exec cat"#
        };
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "locked\n");
        child
    }

    #[test]
    fn a_lock_left_by_an_exited_locker_names_the_recorded_pid_if_alive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let mut child = shell_holding(&path, true);
        assert_eq!(FileLock::holder(&path), Some(child.id()));
        drop(child.stdin.take());
        child.wait().unwrap();

        // The file still names the shell, which has exited; the new holder recorded nothing.
        let mut child = shell_holding(&path, false);
        assert_eq!(FileLock::holder(&path), None);
        drop(child.stdin.take());
        child.wait().unwrap();
    }

    #[test]
    fn the_table_is_matched_on_device_and_inode_skipping_waiters() {
        let dev = nix::sys::stat::makedev(0xfe, 0x01);
        let table = "\
1: POSIX  ADVISORY  WRITE 7 fe:01:131 0 EOF
2: FLOCK  ADVISORY  WRITE 11 08:01:131 0 EOF
3: FLOCK  ADVISORY  WRITE 12 fe:01:131 0 EOF
3: -> FLOCK  ADVISORY  WRITE 13 fe:01:131 0 EOF
4: FLOCK  ADVISORY  WRITE 14 fe:01:1310 0 EOF
";
        assert_eq!(flock_holder_in(table, dev, 131), Some(12));
        assert_eq!(flock_holder_in(table, dev, 1310), Some(14));
        assert_eq!(flock_holder_in(table, dev, 99), None);
        // Another device reported by stat: the single entry with that inode.
        let other = nix::sys::stat::makedev(0, 0x2d);
        assert_eq!(flock_holder_in(table, other, 1310), Some(14));
        // ... but not when two entries share the inode number.
        assert_eq!(flock_holder_in(table, other, 131), None);
        assert_eq!(flock_holder_in("", dev, 131), None);
    }
}
