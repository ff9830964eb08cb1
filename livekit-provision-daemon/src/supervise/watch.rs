//! Exit notification for processes that are not our children (so `waitpid` cannot see them).
//!
//! A pidfd becomes readable when its process exits (zombies included): `poll(2)` on it for a
//! blocking wait, tokio's `AsyncFd` for an async one. Without pidfd support (Linux < 5.3) the
//! watch falls back to re-reading `/proc/<pid>/stat` every [`FALLBACK_POLL_INTERVAL`].

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::identity::{Liveness, MediaProcess, ProcessIdentity};

/// How often the `/proc` fallback looks, when the kernel has no pidfd.
pub const FALLBACK_POLL_INTERVAL: Duration = Duration::from_millis(250);

/// A handle that reports when one media process has exited. Independent of the
/// [`MediaProcess`] it came from (it owns a duplicate of the pidfd), so a task can own it.
#[derive(Debug)]
pub struct ExitWatch {
    identity: ProcessIdentity,
    pidfd: Option<OwnedFd>,
}

impl MediaProcess {
    /// A watch on this process's exit.
    pub fn exit_watch(&self) -> io::Result<ExitWatch> {
        let pidfd = match self.pidfd() {
            Some(fd) => Some(fd.try_clone()?),
            None => None,
        };
        Ok(ExitWatch {
            identity: self.identity().clone(),
            pidfd,
        })
    }

    /// Block until the process exits or `timeout` passes; `true` when it has exited.
    pub fn wait_exit(&self, timeout: Duration) -> io::Result<bool> {
        self.exit_watch()?.wait_timeout(timeout)
    }
}

impl ExitWatch {
    /// The watched pid.
    pub fn pid(&self) -> u32 {
        self.identity.pid
    }

    /// Has the process exited? Never blocks.
    pub fn has_exited(&self) -> io::Result<bool> {
        match &self.pidfd {
            Some(fd) => poll_readable(fd, PollTimeout::ZERO),
            None => self.proc_says_exited(),
        }
    }

    /// Block until the process exits or `timeout` passes; `true` when it has exited.
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<bool> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let exited = match &self.pidfd {
                Some(fd) => {
                    // Capped so that a very long timeout still fits poll's i32 milliseconds.
                    let slice = left.min(Duration::from_secs(3600));
                    let ms = i32::try_from(slice.as_millis()).unwrap_or(i32::MAX);
                    poll_readable(fd, PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX))?
                }
                None => {
                    if self.proc_says_exited()? {
                        true
                    } else {
                        std::thread::sleep(left.min(FALLBACK_POLL_INTERVAL));
                        self.proc_says_exited()?
                    }
                }
            };
            if exited {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
        }
    }

    /// Wait, without blocking a thread, until the process exits.
    ///
    /// Must be called within a tokio runtime with I/O enabled.
    pub async fn exited(self) -> io::Result<()> {
        match self.pidfd {
            Some(fd) => {
                let async_fd = super::sys::register_pidfd(fd)?;
                let _guard = async_fd.readable().await?;
                Ok(())
            }
            None => loop {
                if self.proc_says_exited()? {
                    return Ok(());
                }
                tokio::time::sleep(FALLBACK_POLL_INTERVAL).await;
            },
        }
    }

    fn proc_says_exited(&self) -> io::Result<bool> {
        Ok(self.identity.liveness()? != Liveness::Alive)
    }
}

fn poll_readable(fd: &OwnedFd, timeout: PollTimeout) -> io::Result<bool> {
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(n) => return Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
