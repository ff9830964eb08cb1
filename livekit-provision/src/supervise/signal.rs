//! Signalling media processes, only ever when their identity still matches, and the stop
//! sequence: SIGTERM, then after a grace period a second SIGTERM (livekit-server drains its
//! participants with no time limit on the first one; the second forces the stop), then SIGKILL.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::identity::{Liveness, MediaProcess, proc_stat};
use super::{SuperviseError, sys};

/// How long after the second SIGTERM the stop sequence waits before SIGKILL.
pub const FORCE_KILL_AFTER: Duration = Duration::from_secs(5);

/// How long to wait for the kernel to finish a SIGKILLed process.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// The waits of a stop sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopTimings {
    /// After the first SIGTERM: time to drain.
    pub grace: Duration,
    /// After the second SIGTERM, before SIGKILL.
    pub force_after: Duration,
}

impl StopTimings {
    /// `grace`, then [`FORCE_KILL_AFTER`].
    pub fn with_grace(grace: Duration) -> Self {
        Self {
            grace,
            force_after: FORCE_KILL_AFTER,
        }
    }
}

/// How a stop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// It was not running (already exited) when we came to stop it.
    NotRunning,
    /// It exited after the first SIGTERM.
    Terminated,
    /// It needed the second SIGTERM.
    TerminatedOnSecondSignal,
    /// It needed SIGKILL.
    Killed,
}

/// Send `signal` to the process and to its process group, if it is still the recorded process.
///
/// Returns `false` (and signals nothing) when it has exited or its pid was recycled. With a
/// pidfd the process itself cannot be confused with a later holder of its pid. The group is
/// signalled only while the process is alive and still leads it (its helpers go too).
pub fn send(process: &MediaProcess, signal: Signal) -> Result<bool, SuperviseError> {
    let error = |source: io::Error| SuperviseError::Signal {
        name: process.name().to_owned(),
        pid: process.pid(),
        signal,
        source,
    };
    let liveness = process.identity().liveness().map_err(error)?;
    if liveness != Liveness::Alive {
        return Ok(false);
    }
    let pid = i32::try_from(process.pid()).map_err(|e| error(io::Error::other(e)))?;
    match process.pidfd() {
        Some(fd) => match sys::pidfd_send_signal(fd.as_fd(), signal) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => return Ok(false),
            Err(e) => return Err(error(e)),
        },
        None => match nix::sys::signal::kill(Pid::from_raw(pid), signal) {
            Ok(()) => {}
            Err(nix::errno::Errno::ESRCH) => return Ok(false),
            Err(e) => return Err(error(e.into())),
        },
    }
    let leads_group = proc_stat(process.pid())
        .ok()
        .flatten()
        .is_some_and(|s| s.pgid == process.pid() && !s.is_dead());
    if leads_group {
        match killpg(Pid::from_raw(pid), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => return Err(error(e.into())),
        }
    }
    Ok(true)
}

/// Stop with `grace` before the second SIGTERM and [`FORCE_KILL_AFTER`] before SIGKILL.
pub fn stop(process: &MediaProcess, grace: Duration) -> Result<StopOutcome, SuperviseError> {
    stop_with(process, StopTimings::with_grace(grace))
}

/// The stop sequence with explicit timings. Blocks until the process is gone.
pub fn stop_with(
    process: &MediaProcess,
    timings: StopTimings,
) -> Result<StopOutcome, SuperviseError> {
    let wait = |timeout: Duration| {
        process
            .wait_exit(timeout)
            .map_err(|source| SuperviseError::Inspect {
                name: process.name().to_owned(),
                pid: process.pid(),
                source,
            })
    };
    if !send(process, Signal::SIGTERM)? {
        return Ok(StopOutcome::NotRunning);
    }
    if wait(timings.grace)? {
        return Ok(StopOutcome::Terminated);
    }
    if !send(process, Signal::SIGTERM)? || wait(timings.force_after)? {
        return Ok(StopOutcome::TerminatedOnSecondSignal);
    }
    if !send(process, Signal::SIGKILL)? || wait(KILL_WAIT)? {
        return Ok(StopOutcome::Killed);
    }
    Err(SuperviseError::Unkillable {
        name: process.name().to_owned(),
        pid: process.pid(),
    })
}
