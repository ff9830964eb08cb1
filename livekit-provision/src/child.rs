//! Run a child process to its end with a deadline: the one mechanism behind the real-binary
//! pre-check (`server_check.rs`) and the credential-helper store (`store/exec.rs`).
//!
//! The child leads its own process group, so at the deadline the whole group is killed (a
//! wrapper script's own children too, which would otherwise keep the pipes open and outlive the
//! run). Its stdin is fed from a buffer (or is `/dev/null`); stdout and stderr are read to their
//! end on threads of their own, each kept up to a limit and the rest drained, so the child never
//! blocks on a full pipe and no output can grow without bound. Kept bytes are zeroed on drop:
//! a helper's stdout carries secrets.

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt as _;
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use zeroize::Zeroizing;

/// How long a killed child may take to be reaped before the run gives up waiting for it.
const REAP_GRACE: Duration = Duration::from_secs(5);

/// Up to a limit of a stream's bytes, zeroed on drop. `Debug` shows the length only.
pub(crate) struct Bounded {
    /// The kept bytes.
    pub bytes: Zeroizing<Vec<u8>>,
    /// More was written than kept.
    pub truncated: bool,
}

impl std::fmt::Debug for Bounded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bounded")
            .field("len", &self.bytes.len())
            .field("truncated", &self.truncated)
            .finish()
    }
}

/// A child that ran to its end: its exit status and its bounded output.
#[derive(Debug)]
pub(crate) struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// Its standard output, bounded.
    pub stdout: Bounded,
    /// Its standard error, bounded (empty when it could not be read: it only ever feeds an
    /// excerpt, and losing it must not hide the exit status).
    pub stderr: Bounded,
}

/// Why a run gave no [`Finished`].
#[derive(Debug)]
pub(crate) enum RunError {
    /// The program could not be started.
    Spawn(io::Error),
    /// It did not finish in time; its process group was killed.
    TimedOut,
    /// Waiting for it or reading its stdout failed.
    Io(io::Error),
}

/// How much of each output stream is kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Bytes of stdout kept.
    pub stdout: usize,
    /// Bytes of stderr kept.
    pub stderr: usize,
}

/// What a reader or waiter thread reports.
enum Event {
    Stdout(io::Result<Bounded>),
    Stderr(io::Result<Bounded>),
    Exited(io::Result<ExitStatus>),
}

/// Run `command` (its arguments, environment and directory as the caller set them) in a process
/// group of its own, feed it `input` (then close its stdin), and wait at most `timeout` until it
/// has exited and both output pipes are closed. At the deadline the group is killed.
pub(crate) fn run(
    command: &mut Command,
    input: Option<Zeroizing<Vec<u8>>>,
    timeout: Duration,
    limits: Limits,
) -> Result<Finished, RunError> {
    let deadline = Instant::now() + timeout;
    command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = spawn(command).map_err(RunError::Spawn)?;
    // The group is ours (`process_group(0)`), and it is not empty while a pipe is open or the
    // leader is unreaped, so its id cannot have been reused when it is killed below.
    let group = i32::try_from(child.id())
        .ok()
        .filter(|pid| *pid > 0)
        .map(Pid::from_raw);

    let (tx, rx) = mpsc::channel();
    if let (Some(stdin), Some(input)) = (child.stdin.take(), input) {
        std::thread::spawn(move || feed(stdin, &input));
    }
    if let Some(stdout) = child.stdout.take() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send(Event::Stdout(read_bounded(stdout, limits.stdout)));
        });
    }
    if let Some(stderr) = child.stderr.take() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send(Event::Stderr(read_bounded(stderr, limits.stderr)));
        });
    }
    std::thread::spawn(move || {
        let _ = tx.send(Event::Exited(child.wait()));
    });

    let mut collected = Collector::default();
    while !collected.complete() {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(event) => collected.take(event),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                kill(group, &rx, collected.status.is_some());
                return Err(RunError::TimedOut);
            }
            // Every thread has sent its event or died; what we have is all there is.
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    collected.finish().map_err(RunError::Io)
}

/// Kill the child's process group and wait (briefly) until the child is reaped.
fn kill(group: Option<Pid>, rx: &mpsc::Receiver<Event>, reaped: bool) {
    if let Some(group) = group
        && let Err(errno) = killpg(group, Signal::SIGKILL)
    {
        tracing::debug!(%errno, "could not kill a timed-out child's process group");
    }
    if reaped {
        return;
    }
    let deadline = Instant::now() + REAP_GRACE;
    while let Ok(event) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if matches!(event, Event::Exited(_)) {
            return;
        }
    }
    tracing::warn!("a killed child was not reaped in time");
}

#[derive(Default)]
struct Collector {
    stdout: Option<io::Result<Bounded>>,
    stderr: Option<io::Result<Bounded>>,
    status: Option<io::Result<ExitStatus>>,
}

impl Collector {
    fn take(&mut self, event: Event) {
        match event {
            Event::Stdout(r) => self.stdout = Some(r),
            Event::Stderr(r) => self.stderr = Some(r),
            Event::Exited(r) => self.status = Some(r),
        }
    }

    fn complete(&self) -> bool {
        self.stdout.is_some() && self.stderr.is_some() && self.status.is_some()
    }

    fn finish(self) -> io::Result<Finished> {
        let missing = || io::Error::other("a child I/O thread ended without reporting");
        let status = self.status.ok_or_else(missing)??;
        let stdout = self.stdout.ok_or_else(missing)??;
        let stderr = match self.stderr {
            Some(Ok(b)) => b,
            _ => Bounded {
                bytes: Zeroizing::new(Vec::new()),
                truncated: false,
            },
        };
        Ok(Finished {
            status,
            stdout,
            stderr,
        })
    }
}

/// Spawn, retrying briefly on `ETXTBSY`: a program that was just written (by an installer, or by
/// another thread of ours whose fork inherited the open file for a moment) cannot be executed
/// until every writable descriptor of it is closed.
fn spawn(command: &mut Command) -> io::Result<std::process::Child> {
    let mut attempt = 0;
    loop {
        match command.spawn() {
            Err(e)
                if e.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32) && attempt < 5 =>
            {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(20 * attempt));
            }
            result => return result,
        }
    }
}

/// Write `input` to the child's stdin and close it. A child that exits without reading it is
/// judged by its exit code, so a broken pipe is not an error here.
fn feed(mut stdin: ChildStdin, input: &[u8]) {
    if let Err(e) = stdin.write_all(input)
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        tracing::debug!(error = %e, "could not write to a child's stdin");
    }
}

/// Read a stream to its end, keeping at most `limit` bytes (the rest is drained and dropped, so
/// the writer never blocks on a full pipe).
pub(crate) fn read_bounded(mut stream: impl Read, limit: usize) -> io::Result<Bounded> {
    let mut bytes = Zeroizing::new(Vec::new());
    let mut chunk = Zeroizing::new([0u8; 4096]);
    let mut truncated = false;
    loop {
        let n = match stream.read(&mut chunk[..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let room = limit.saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..n.min(room)]);
        truncated |= n > room;
    }
    Ok(Bounded { bytes, truncated })
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;

    use super::*;

    const SMALL: Limits = Limits {
        stdout: 8,
        stderr: 4,
    };

    fn sh(script: &str) -> Command {
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(script);
        command
    }

    #[test]
    fn read_bounded_drains_everything_but_keeps_the_limit() {
        let data = vec![b'a'; 10_000];
        let got = read_bounded(&data[..], 100).unwrap();
        assert_eq!(got.bytes.len(), 100);
        assert!(got.truncated);
        let got = read_bounded(&data[..100], 100).unwrap();
        assert!(!got.truncated);
    }

    #[test]
    fn output_is_bounded_and_the_rest_drained() {
        // 1 MiB on each stream: more than a pipe holds, so an undrained pipe would block it.
        let script = "head -c 1048576 /dev/zero; head -c 1048576 /dev/zero >&2; exit 7";
        let done = run(&mut sh(script), None, Duration::from_secs(30), SMALL).unwrap();
        assert_eq!(done.status.code(), Some(7));
        assert_eq!((done.stdout.bytes.len(), done.stdout.truncated), (8, true));
        assert_eq!((done.stderr.bytes.len(), done.stderr.truncated), (4, true));
    }

    #[test]
    fn input_reaches_stdin() {
        let input = Zeroizing::new(b"value\n".to_vec());
        let done = run(&mut sh("cat"), Some(input), Duration::from_secs(30), SMALL).unwrap();
        assert_eq!(&done.stdout.bytes[..], b"value\n");
        assert!(!done.stdout.truncated);
        assert!(done.status.success());
    }

    #[test]
    fn a_child_past_its_deadline_is_killed_with_its_group() {
        // The wrapper's own child (not exec'd) holds the pipes: it must die too.
        let started = Instant::now();
        let result = run(
            &mut sh("sleep 30 & sleep 30; wait"),
            None,
            Duration::from_millis(200),
            SMALL,
        );
        assert!(matches!(result, Err(RunError::TimedOut)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_signal_is_an_exit_status_and_a_missing_program_a_spawn_error() {
        let done = run(&mut sh("kill -9 $$"), None, Duration::from_secs(30), SMALL).unwrap();
        assert_eq!(done.status.signal(), Some(9));
        let missing = run(
            &mut Command::new("/nonexistent/program"),
            None,
            Duration::from_secs(1),
            SMALL,
        );
        assert!(matches!(missing, Err(RunError::Spawn(_))));
    }
}
