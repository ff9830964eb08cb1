//! Who a media process is: its pid *and* the kernel's start time, recorded in `run/<name>.pid`,
//! so that a restarted daemon adopts its own media and never signals an unrelated process that
//! happens to have been given a recycled pid.
//!
//! The pair is the whole identity: a recycled pid always comes with another start time. The
//! executable is recorded too, but only as information: it legitimately changes at the same pid
//! and start time when a wrapper script `exec`s the server (`exec /opt/livekit-server "$@"`), and
//! reads ` (deleted)` once the binary was replaced in place. It never decides liveness, adoption
//! or signalling.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{SuperviseError, sys};
use livekit_provision::fsio;
use livekit_provision::StateDir;

/// The contents of `run/<name>.pid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    /// The process id.
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot.
    /// Together with the pid it names one process for the whole uptime of the machine.
    pub start_time: u64,
    /// `readlink /proc/<pid>/exe` when it was started. Informational only: a wrapper script that
    /// `exec`s the server changes it later, at the same pid and start time; it is not part of
    /// the identity.
    pub exe: PathBuf,
    /// The `argv[0]` it was started with.
    pub argv0: String,
    /// When it was started (RFC 3339, UTC).
    pub started_at: String,
}

impl ProcessIdentity {
    /// Read the identity of the live process `pid` from `/proc`, recording `now` as when it was
    /// started. `None` when it does not exist or is a zombie.
    pub fn of_live_process(pid: u32, argv0: &str, now: SystemTime) -> io::Result<Option<Self>> {
        let Some(stat) = proc_stat(pid)? else {
            return Ok(None);
        };
        if stat.is_dead() {
            return Ok(None);
        }
        let Some(exe) = proc_exe(pid)? else {
            return Ok(None);
        };
        Ok(Some(Self {
            pid,
            start_time: stat.start_time,
            exe,
            argv0: argv0.to_owned(),
            started_at: livekit_provision::clock::rfc3339(now),
        }))
    }

    /// Is `pid` still this process? Reads `/proc`; never signals anything.
    ///
    /// Decided by pid and start time alone (a recycled pid has another start time); the
    /// recorded executable is not compared, since an `exec` keeps both.
    pub fn liveness(&self) -> io::Result<Liveness> {
        let Some(stat) = proc_stat(self.pid)? else {
            return Ok(Liveness::Dead);
        };
        if stat.start_time != self.start_time {
            return Ok(Liveness::Recycled(format!(
                "pid {} now belongs to a process started at tick {}, not {}",
                self.pid, stat.start_time, self.start_time
            )));
        }
        if stat.is_dead() {
            return Ok(Liveness::Dead);
        }
        Ok(Liveness::Alive)
    }
}

/// What became of a recorded process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// The same process is still running.
    Alive,
    /// It has exited (or is a zombie waiting to be reaped).
    Dead,
    /// The pid now belongs to another process; the text says how we know.
    Recycled(String),
}

/// The fields of `/proc/<pid>/stat` that supervision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    pub state: char,
    /// Field 4: the parent's pid.
    pub ppid: u32,
    /// Field 5: the process group.
    pub pgid: u32,
    /// Field 6: the session.
    pub sid: u32,
    /// Field 22: start time in clock ticks since boot.
    pub start_time: u64,
}

impl ProcStat {
    /// A zombie or dead task: it has exited and only waits to be reaped.
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Read `/proc/<pid>/stat`. `None` when there is no such process.
pub fn proc_stat(pid: u32) -> io::Result<Option<ProcStat>> {
    let path = format!("/proc/{pid}/stat");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if is_gone(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    parse_stat(&text)
        .map(Some)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("cannot parse {path}")))
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    // The command name (field 2) is in parentheses and may itself hold ')' or spaces.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `fields[0]` is field 3.
    let field = |n: usize| fields.get(n - 3).copied();
    Some(ProcStat {
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        pgid: field(5)?.parse().ok()?,
        sid: field(6)?.parse().ok()?,
        start_time: field(22)?.parse().ok()?,
    })
}

/// `readlink /proc/<pid>/exe`, without the ` (deleted)` the kernel appends once the file was
/// replaced (as an upgrade does). `None` when the process is gone or has no executable.
pub fn proc_exe(pid: u32) -> io::Result<Option<PathBuf>> {
    match std::fs::read_link(format!("/proc/{pid}/exe")) {
        Ok(p) => {
            let text = p.to_string_lossy();
            Ok(Some(match text.strip_suffix(" (deleted)") {
                Some(stripped) => PathBuf::from(stripped),
                None => p,
            }))
        }
        Err(e) if is_gone(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Does `pid` run another file than `program` resolves to now (a newer binary was installed and
/// `program`, the `bin/livekit-server` symlink, switched to it)? Compares `/proc/<pid>/exe` with
/// the canonical path of `program`. `false` when either cannot be read.
pub fn runs_another_binary(pid: u32, program: &Path) -> bool {
    let Ok(Some(exe)) = proc_exe(pid) else {
        return false;
    };
    match std::fs::canonicalize(program) {
        Ok(current) => exe != current,
        Err(_) => false,
    }
}

fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ESRCH)
}

/// A running media process that we started or adopted, verified by identity.
///
/// It holds a pidfd when the kernel supports them (Linux 5.3+): signals then go to exactly this
/// process, and exit can be awaited without polling.
#[derive(Debug)]
pub struct MediaProcess {
    name: String,
    identity: ProcessIdentity,
    pidfd: Option<OwnedFd>,
}

impl MediaProcess {
    /// Verify `identity` against `/proc` and take hold of the process. `Ok(Err(liveness))` when it
    /// is not (or no longer) that process.
    pub(crate) fn verify(name: &str, identity: ProcessIdentity) -> io::Result<Result<Self, Liveness>> {
        let before = identity.liveness()?;
        if before != Liveness::Alive {
            return Ok(Err(before));
        }
        let pidfd = sys::pidfd_open(identity.pid).ok();
        // Checked again *after* the pidfd exists: if it still matches, the pidfd refers to this
        // very process and not to a later holder of the pid.
        let after = identity.liveness()?;
        if after != Liveness::Alive {
            return Ok(Err(after));
        }
        Ok(Ok(Self {
            name: name.to_owned(),
            identity,
            pidfd,
        }))
    }

    /// The supervised name (`livekit-server`, `lk-backend`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.identity.pid
    }

    /// The recorded identity.
    pub(crate) fn identity(&self) -> &ProcessIdentity {
        &self.identity
    }

    pub(super) fn pidfd(&self) -> Option<&OwnedFd> {
        self.pidfd.as_ref()
    }

    /// Is this very process still running (not exited, not a zombie)?
    pub fn is_alive(&self) -> bool {
        match self.exit_watch() {
            Ok(watch) => !watch.has_exited().unwrap_or(false),
            Err(_) => matches!(self.identity.liveness(), Ok(Liveness::Alive)),
        }
    }
}

/// What `run/<name>.pid` says, checked against the live system.
#[derive(Debug)]
pub enum PidFileState {
    /// No pid file.
    Missing,
    /// The recorded process is running: adopted.
    Live(MediaProcess),
    /// The pid file names a process that is gone, or a pid now used by another process, or it
    /// cannot be parsed. Nothing was signalled.
    Stale {
        /// Why it is stale.
        reason: String,
    },
}

/// Read and check `run/<name>.pid` without changing anything.
pub fn inspect(state: &StateDir, name: &str) -> Result<PidFileState, SuperviseError> {
    let path = state.pid_file(name);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(PidFileState::Missing),
        Err(source) => return Err(pid_file_error(name, &path, source)),
    };
    let identity: ProcessIdentity = match serde_json::from_slice(&bytes) {
        Ok(i) => i,
        Err(e) => {
            return Ok(PidFileState::Stale {
                reason: format!("{} is not a pid file we wrote: {e}", path.display()),
            });
        }
    };
    let verified =
        MediaProcess::verify(name, identity.clone()).map_err(|source| SuperviseError::Inspect {
            name: name.to_owned(),
            pid: identity.pid,
            source,
        })?;
    Ok(match verified {
        Ok(process) => PidFileState::Live(process),
        Err(Liveness::Dead | Liveness::Alive) => PidFileState::Stale {
            reason: format!("pid {} has exited", identity.pid),
        },
        Err(Liveness::Recycled(reason)) => PidFileState::Stale { reason },
    })
}

/// Adopt the process recorded in `run/<name>.pid`, if it is still that process.
///
/// A stale pid file (process gone, pid recycled by an unrelated process, unparseable) is removed
/// and reported with a warning; the process it points at is never signalled.
pub fn adopt(state: &StateDir, name: &str) -> Result<Option<MediaProcess>, SuperviseError> {
    match inspect(state, name)? {
        PidFileState::Missing => Ok(None),
        PidFileState::Live(process) => Ok(Some(process)),
        PidFileState::Stale { reason, .. } => {
            tracing::warn!(name, %reason, "removing stale pid file");
            remove_pid_file(state, name)?;
            Ok(None)
        }
    }
}

/// Record `identity` in `run/<name>.pid` (mode 0600, atomically).
pub fn write_pid_file(
    state: &StateDir,
    name: &str,
    identity: &ProcessIdentity,
) -> Result<(), SuperviseError> {
    let path = state.pid_file(name);
    let mut bytes = serde_json::to_vec_pretty(identity)
        .map_err(|e| pid_file_error(name, &path, io::Error::other(e)))?;
    bytes.push(b'\n');
    fsio::create_private_dir(&state.run_dir(), true)
        .and_then(|()| fsio::write_file(&path, &bytes, 0o600))
        .map_err(|source| pid_file_error(name, &path, source))
}

/// Remove `run/<name>.pid`; a missing file is fine.
pub fn remove_pid_file(state: &StateDir, name: &str) -> Result<(), SuperviseError> {
    let path = state.pid_file(name);
    match fsio::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(pid_file_error(name, &path, source)),
    }
}

fn pid_file_error(name: &str, path: &Path, source: io::Error) -> SuperviseError {
    SuperviseError::PidFile {
        name: name.to_owned(),
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let text = "4242 (we ird) (x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let stat = parse_stat(text).unwrap();
        assert_eq!(
            stat,
            ProcStat {
                state: 'S',
                ppid: 1,
                pgid: 4242,
                sid: 4242,
                start_time: 987_654
            }
        );
        assert!(!stat.is_dead());
        assert!(parse_stat("1 (x) Z 0").is_none());
    }

    #[test]
    fn own_process_is_alive_and_a_wrong_start_time_is_recycled() {
        let me = std::process::id();
        let id = ProcessIdentity::of_live_process(me, "test", SystemTime::UNIX_EPOCH)
            .unwrap()
            .unwrap();
        assert_eq!(id.liveness().unwrap(), Liveness::Alive);
        let wrong = ProcessIdentity {
            start_time: id.start_time + 1,
            ..id.clone()
        };
        assert!(matches!(wrong.liveness().unwrap(), Liveness::Recycled(_)));
        // Even with the recorded executable matching, another start time is another process.
        assert_eq!(wrong.exe, proc_exe(me).unwrap().unwrap());
        let earlier = ProcessIdentity {
            start_time: id.start_time.saturating_sub(1),
            ..id
        };
        assert!(matches!(earlier.liveness().unwrap(), Liveness::Recycled(_)));
    }

    #[test]
    fn another_executable_at_the_same_pid_and_start_time_is_still_the_process() {
        // What a wrapper script that `exec`s the server looks like once it has: the recorded
        // executable (the shell) is not the one running now.
        let me = std::process::id();
        let id = ProcessIdentity {
            exe: PathBuf::from("/nonexistent/wrapper-shell"),
            ..ProcessIdentity::of_live_process(me, "test", SystemTime::UNIX_EPOCH)
                .unwrap()
                .unwrap()
        };
        assert_eq!(id.liveness().unwrap(), Liveness::Alive);

        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        write_pid_file(&state, "x", &id).unwrap();
        match inspect(&state, "x").unwrap() {
            PidFileState::Live(process) => {
                assert_eq!(process.pid(), me);
                assert!(process.is_alive());
            }
            other => panic!("expected the process to be adopted, got {other:?}"),
        }
        assert_eq!(adopt(&state, "x").unwrap().map(|p| p.pid()), Some(me));
        assert!(state.pid_file("x").exists(), "a live pid file is kept");
    }

    #[test]
    fn unparseable_pid_file_is_stale_and_removed_by_adopt() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        assert!(matches!(
            inspect(&state, "x").unwrap(),
            PidFileState::Missing
        ));
        std::fs::create_dir(state.run_dir()).unwrap();
        std::fs::write(state.pid_file("x"), "12345\n").unwrap();
        assert!(matches!(
            inspect(&state, "x").unwrap(),
            PidFileState::Stale { reason } if reason.contains("is not a pid file we wrote")
        ));
        assert!(adopt(&state, "x").unwrap().is_none());
        assert!(!state.pid_file("x").exists());
    }
}
