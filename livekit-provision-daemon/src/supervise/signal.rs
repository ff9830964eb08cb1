//! Signalling media processes, only ever when their identity still matches, and the stop
//! sequence: SIGTERM (livekit-server drains: no new rooms, the calls in progress go on, with no
//! time limit), then after a grace period an ending chosen by what follows the stop
//! ([`Ending`]), then SIGKILL.
//!
//! Measured on livekit-server 1.13.5 with six LiveKit Python SDK participants (e2e
//! `test_drain_endings`): a second SIGTERM makes the server send every participant a leave
//! (SERVER_SHUTDOWN) — 5 of 6 never came back to the next server; SIGKILL tells them nothing —
//! 6 of 6 reconnected to the next server, 1.3 s after the kill. So a stop that is followed by a
//! start (a restart, a change applied) ends with SIGKILL, and a stop for good with the second
//! SIGTERM.

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

/// How a stop sequence ends a drain that outlasted its grace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A second SIGTERM: livekit-server tells every participant to leave. For a stop for good:
    /// the clients learn the server is gone.
    Leave,
    /// SIGKILL: livekit-server says nothing, and the SDKs reconnect to the server started next
    /// (their refreshed tokens stay valid). For a restart.
    Rejoin,
}

/// The waits of a stop sequence, and its ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopTimings {
    /// After the first SIGTERM: time to drain.
    pub grace: Duration,
    /// After the second SIGTERM, before SIGKILL ([`Ending::Leave`] only).
    pub force_after: Duration,
    /// What ends a drain that outlasted `grace`.
    pub ending: Ending,
}

impl StopTimings {
    /// `grace`, then a second SIGTERM and [`FORCE_KILL_AFTER`]: a stop for good.
    pub fn with_grace(grace: Duration) -> Self {
        Self {
            grace,
            force_after: FORCE_KILL_AFTER,
            ending: Ending::Leave,
        }
    }

    /// `grace`, then SIGKILL: a stop followed by a start, which the participants rejoin.
    pub fn for_restart(grace: Duration) -> Self {
        Self {
            ending: Ending::Rejoin,
            ..Self::with_grace(grace)
        }
    }
}

/// How a stop ended. Serialized as its variant name (`"TerminatedOnSecondSignal"`): the
/// daemon's `stop` answer carries it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
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

/// Send `signal` once to the process and to its process group, if it is still the recorded
/// process.
///
/// Returns `false` (and signals nothing) when it has exited or its pid was recycled. While the
/// process is alive and leads its group, the group is signalled (the process and its helpers,
/// each once); otherwise the process alone, through its pidfd when there is one, so that it
/// cannot be confused with a later holder of its pid. Never both: a process signalled directly
/// and then through its group receives the signal twice, and livekit-server takes a second
/// SIGTERM as "stop now", dropping the calls the first one lets drain.
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
    let leads_group = proc_stat(process.pid())
        .ok()
        .flatten()
        .is_some_and(|s| s.pgid == process.pid() && !s.is_dead());
    // Checked after reading the group: while this very process lives, its pid (and so the group
    // id read) cannot belong to anyone else.
    if leads_group && process.is_alive() {
        return match killpg(Pid::from_raw(pid), signal) {
            Ok(()) => Ok(true),
            Err(nix::errno::Errno::ESRCH) => Ok(false),
            Err(e) => Err(error(e.into())),
        };
    }
    match process.pidfd() {
        Some(fd) => match sys::pidfd_send_signal(fd.as_fd(), signal) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(nix::libc::ESRCH) => Ok(false),
            Err(e) => Err(error(e)),
        },
        None => match nix::sys::signal::kill(Pid::from_raw(pid), signal) {
            Ok(()) => Ok(true),
            Err(nix::errno::Errno::ESRCH) => Ok(false),
            Err(e) => Err(error(e.into())),
        },
    }
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
    if timings.ending == Ending::Leave
        && (!send(process, Signal::SIGTERM)? || wait(timings.force_after)?)
    {
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

/// End a drain already under way (its SIGTERM was sent): SIGKILL at once, never a second
/// SIGTERM ([`Ending::Rejoin`]). Blocks until the process is gone.
pub fn kill_draining(process: &MediaProcess) -> Result<StopOutcome, SuperviseError> {
    let exited = |timeout: Duration| {
        process
            .wait_exit(timeout)
            .map_err(|source| SuperviseError::Inspect {
                name: process.name().to_owned(),
                pid: process.pid(),
                source,
            })
    };
    if !send(process, Signal::SIGKILL)? {
        return Ok(StopOutcome::NotRunning);
    }
    if exited(KILL_WAIT)? {
        return Ok(StopOutcome::Killed);
    }
    Err(SuperviseError::Unkillable {
        name: process.name().to_owned(),
        pid: process.pid(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::ffi::OsString;
    use std::time::Instant;

    use super::*;
    use livekit_provision::StateDir;
    use crate::supervise::spawn::start_detached;
    use crate::supervise::spec::ProcessSpec;

    /// The deadline of a wait that only bounds a failure.
    const DEADLINE: Duration = Duration::from_secs(60);

    fn gone(pid: u32) -> bool {
        proc_stat(pid).unwrap().is_none_or(|s| s.is_dead())
    }

    #[test]
    fn a_stop_reaches_the_helpers_in_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let spec = ProcessSpec {
            name: "leader".to_owned(),
            program: "/bin/sh".into(),
            args: ["-c", "sleep 600 & echo \"helper $!\"; wait"]
                .map(OsString::from)
                .to_vec(),
            env: BTreeMap::new(),
            health: None,
            probe: crate::supervise::HealthProbe::default(),
            start_timeout: DEADLINE,
        };
        let env = [(OsString::from("PATH"), OsString::from("/usr/bin:/bin"))];
        let leader = start_detached(&state, &spec, env, livekit_provision::clock::system()).unwrap();
        let deadline = Instant::now() + DEADLINE;
        let helper = loop {
            let log = std::fs::read_to_string(state.log_file("leader")).unwrap_or_default();
            if let Some(pid) = log.trim().strip_prefix("helper ") {
                break pid.parse::<u32>().unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "no helper pid in the log: {log:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(proc_stat(helper).unwrap().unwrap().pgid, leader.pid());
        // A shell without a trap ends on the first SIGTERM; its helper goes with the group.
        assert_eq!(stop_with(&leader, StopTimings::with_grace(DEADLINE)).unwrap(), StopOutcome::Terminated);
        let deadline = Instant::now() + DEADLINE;
        while !gone(helper) {
            assert!(Instant::now() < deadline, "the helper {helper} survived");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
