//! Supervision of the media processes (livekit-server and, when configured, lk-backend) without
//! ever dropping a call (docs/DESIGN.md invariant 6).
//!
//! - `spawn.rs`: detached start. The media process leads its own session and process group and is
//!   **not a descendant of the caller**, so a supervisor that kills the daemon's process tree or
//!   group leaves it, and every call, running. Its environment is cleaned of the variables that
//!   override livekit's config; secrets travel only in the environment, never in arguments.
//! - `identity.rs`: `run/<name>.pid` records the identity, pid and kernel start time (and, for
//!   information only, the executable, which a wrapper script's `exec` changes); a restarted
//!   daemon adopts its media, and a recycled pid is **never signalled**.
//! - `watch.rs`: exit notification through a pidfd (the media are not our children, so `waitpid`
//!   cannot see them).
//! - `health.rs`: readiness is an HTTP probe of `GET /`, **never an exit code** (livekit-server
//!   exits 0 when it rejects its config).
//! - `condition.rs`: the health model `status` reports: serving, unhealthy (answers, not 200:
//!   never restarted for it), unresponsive (answers nothing: replaced after
//!   `healing.hung_after`), draining, restarting, crash-looping, stopped.
//! - `signal.rs`: the stop sequence, SIGTERM, a second SIGTERM, SIGKILL, always identity-checked.
//! - `policy.rs`: crash restarts with exponential backoff, and a crash loop retried at the
//!   longest backoff, as a pure state machine.
//! - `supervisor.rs`: [`Supervisor`], what the daemon drives: **it starts a process only if it is
//!   down and never kills or restarts a healthy one.**
//!
//! # How the detached start works, and why
//! The start is a classic double fork, written against `libc` in one small module (`sys.rs`,
//! the only `unsafe` code here, each block with its `SAFETY:` argument): the intermediate child
//! forks the media process, writes its pid into a pipe and exits at once, so the media process is
//! reparented to init (or the nearest subreaper); the media process calls `setsid`, redirects its
//! stdio, enters the state directory, resets its signal mask and dispositions, marks every
//! inherited descriptor close-on-exec and `execve`s a program, argument vector and environment all
//! prepared before the first fork (only async-signal-safe calls run between fork and exec). A
//! failure of any of those steps comes back as `(step, errno)` through a close-on-exec pipe, so
//! "binary not found" or "not executable" is an error, not a silent nothing.
//!
//! Alternatives considered: `std::process::Command` with `process_group(0)` keeps the media a
//! child (killed with our tree); `setsid --fork` from util-linux detaches but cannot report the
//! pid or an exec failure; a `/bin/sh -c '… & echo $!'` helper depends on shell quoting and also
//! loses exec failures. `nix::unistd::execve` allocates after the fork, so raw `libc` is used.

internal! {
    pub(crate) mod condition;
    pub(crate) mod health;
    pub(crate) mod identity;
    pub(crate) mod policy;
    pub(crate) mod port_owner;
    pub(crate) mod signal;
    pub(crate) mod spawn;
    pub(crate) mod spec;
    pub(crate) mod started;
    pub(crate) mod supervisor;
    pub(crate) mod watch;
}
mod sys;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

// What an outside supervisor or a host needs: the supervisor and its answers, a process's
// description, the log follower and the restart policy.
pub use condition::{Condition, Healed};
pub use health::{HealthProbe, LogFollow, Probe};
pub use identity::MediaProcess;
pub use policy::{RestartDecision, RestartPolicy};
pub use port_owner::PortOwner;
pub use signal::{Ending, StopOutcome};
pub use spec::{EnvValue, LIVEKIT_SERVER, LK_BACKEND, MEDIA, ProcessSpec, TLS_FRONT};
pub use supervisor::{Ensured, ProcessStatus, Supervisor};
pub use watch::ExitWatch;

// The mechanisms, for the rest of the crate.
pub(crate) use health::{log_tail, probe_address};
pub(crate) use identity::{PidFileState, adopt, inspect, runs_another_binary};
pub(crate) use port_owner::{foreign_listener, listening_on};
pub(crate) use started::StartedWith;

/// How many log lines an error about a failed start carries.
pub(crate) const LOG_TAIL_LINES: usize = 20;

/// The log of a process that failed to start: where it is and how it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartLog {
    /// `logs/<name>.log`.
    pub path: PathBuf,
    /// Its last lines (20).
    pub tail: Vec<String>,
}

impl StartLog {
    /// Read the tail of `path` (an unreadable log has no lines).
    pub fn read(path: PathBuf) -> Box<Self> {
        let tail = health::log_tail(&path, LOG_TAIL_LINES).unwrap_or_default();
        Box::new(Self { path, tail })
    }
}

impl std::fmt::Display for StartLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.tail.is_empty() {
            return write!(f, "its log {} is empty", self.path.display());
        }
        write!(f, "last lines of {}:", self.path.display())?;
        for line in &self.tail {
            write!(f, "\n  {line}")?;
        }
        Ok(())
    }
}

/// Errors of process supervision.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SuperviseError {
    /// A directory or file the start needs could not be prepared.
    #[error("could not prepare the {what} {} for {name}", path.display())]
    Prepare {
        /// Supervised name.
        name: String,
        /// What it is ("log file", "run directory", …).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A program path, argument or environment variable holds a NUL byte (the value is never
    /// shown: it may be a secret).
    #[error("cannot start {name}: the {what} contains a NUL byte or '=' in its name")]
    NulByte {
        /// Supervised name.
        name: String,
        /// Which one ("environment variable LIVEKIT_API_SECRET", "argument 2").
        what: String,
    },
    /// The process could not be forked.
    #[error("could not start {name} as a detached process")]
    Spawn {
        /// Supervised name.
        name: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The new process failed before running the program (typically: not found, not executable).
    #[error("could not start {name}: {} failed while {step}", program.display())]
    Exec {
        /// Supervised name.
        name: String,
        /// The program.
        program: PathBuf,
        /// The step that failed.
        step: &'static str,
        /// The program does not exist.
        not_found: bool,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The process exited before it became ready. Its exit status cannot be known (it is not our
    /// child) and would say nothing anyway: livekit-server exits 0 on a bad config.
    #[error("{name} (pid {pid}) exited during startup; {log}")]
    ExitedDuringStart {
        /// Supervised name.
        name: String,
        /// Its pid.
        pid: u32,
        /// Its log file and last lines.
        log: Box<StartLog>,
    },
    /// The process is running but did not answer its health probe in time. It is left running.
    #[error(
        "{name} (pid {pid}) is running but not ready on {addr} after {}: {last}; {log}",
        humantime::format_duration(*timeout)
    )]
    NotReady {
        /// Supervised name.
        name: String,
        /// Its pid.
        pid: u32,
        /// The probed address.
        addr: SocketAddr,
        /// The start timeout.
        timeout: Duration,
        /// The last probe's result.
        last: Box<Probe>,
        /// Its log file and last lines.
        log: Box<StartLog>,
    },
    /// `run/<name>.pid` could not be read, written or removed.
    #[error("pid file {} of {name}", path.display())]
    PidFile {
        /// Supervised name.
        name: String,
        /// The pid file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `/proc/<pid>` could not be read or watched.
    #[error("could not inspect {name} (pid {pid})")]
    Inspect {
        /// Supervised name.
        name: String,
        /// The pid.
        pid: u32,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A signal could not be sent.
    #[error("could not send {signal} to {name} (pid {pid})")]
    Signal {
        /// Supervised name.
        name: String,
        /// The pid.
        pid: u32,
        /// The signal.
        signal: nix::sys::signal::Signal,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The process survived SIGKILL (stuck in the kernel, uninterruptible sleep).
    #[error("{name} (pid {pid}) is still running after SIGKILL")]
    Unkillable {
        /// Supervised name.
        name: String,
        /// The pid.
        pid: u32,
    },
}

impl SuperviseError {
    /// The last lines of the process's log, for errors about a failed start.
    pub fn log_tail(&self) -> Option<&[String]> {
        match self {
            Self::ExitedDuringStart { log, .. } | Self::NotReady { log, .. } => Some(&log.tail),
            _ => None,
        }
    }
}

impl livekit_provision::Hint for SuperviseError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::Exec {
                program,
                not_found: true,
                ..
            } => Some(format!(
                "{} does not exist: run `livekit-provision install`, or set `livekit_bin` / `backend_command` in provision.yaml",
                program.display()
            )),
            Self::Exec {
                program, source, ..
            } if source.kind() == io::ErrorKind::PermissionDenied => {
                Some(format!("make {} executable (chmod +x)", program.display()))
            }
            Self::ExitedDuringStart { log, .. } | Self::NotReady { log, .. } => Some(format!(
                "see {} and run `livekit-provision check`",
                log.path.display()
            )),
            Self::Unkillable { pid, .. } => {
                Some(format!("inspect it with `cat /proc/{pid}/stack` or reboot"))
            }
            _ => None,
        }
    }
}
