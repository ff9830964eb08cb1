//! `exec:PROGRAM`: a secret store backed by a credential-helper program (see [`ExecStore`]).

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use zeroize::Zeroizing;

use super::{Added, SecretName, SecretStore, StoreError, StoreOp, check_storable, value_problem};
use crate::secret::{MAX_SECRET_LEN, Secret};

/// Exit code of `get` when the name is absent.
pub const EXIT_ABSENT: i32 = 3;
/// Exit code of `add` when a value is already present.
pub const EXIT_PRESENT: i32 = 4;

/// Most stdout we keep: a value, its newline, and one byte to notice longer output.
const STDOUT_LIMIT: usize = MAX_SECRET_LEN + 3;
/// Most stderr we keep for the error excerpt.
const STDERR_LIMIT: usize = 16 * 1024;
/// Lines and characters of stderr an error quotes.
const EXCERPT_LINES: usize = 3;
const EXCERPT_CHARS: usize = 300;
/// How long we wait for a killed helper to be reaped.
const REAP_GRACE: Duration = Duration::from_secs(5);

/// The `exec:PROGRAM` store: a helper program in the style of git's credential helpers, so any
/// external store (hero_proc, Vault, a password manager) plugs in.
///
/// The protocol (docs/DESIGN.md "Secret stores"):
/// - `PROGRAM get NAME` prints the value on stdout (one trailing newline is stripped) and exits 0,
///   or exits 3 when the name is absent.
/// - `PROGRAM add NAME` reads the value on stdin and stores it only if absent: exit 0 stored,
///   exit 4 already present (we then `get` the value that won).
/// - `PROGRAM set NAME` reads the value on stdin and overwrites.
/// - Any other exit, or death by a signal, is an error carrying the code and the first lines of
///   stderr (any value we sent masked).
///
/// The value travels on stdin, followed by one newline — never on the command line, where `ps`
/// would show it. `PROGRAM` is a single program (a path, or a name looked up on `PATH`), without
/// arguments: wrap a command line in a script. The helper inherits our environment and working
/// directory (it may need `HOME`, a socket path or a token from them), runs in its own process
/// group, and is killed with that whole group if it does not finish within the timeout
/// ([`ExecStore::DEFAULT_TIMEOUT`] unless set with [`ExecStore::with_timeout`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecStore {
    program: PathBuf,
    timeout: Duration,
}

impl ExecStore {
    /// How long a helper may run before it is killed, unless changed.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// A store backed by `program` (a path, or a name looked up on `PATH`).
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// The same store with another time limit per helper run.
    #[must_use]
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// The helper program.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// The time limit per helper run.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Run `PROGRAM <verb> NAME`, feeding `input` on stdin, and collect its exit and output.
    fn run(
        &self,
        op: StoreOp,
        name: &SecretName,
        input: Option<&Secret>,
    ) -> Result<Finished, StoreError> {
        let helper = self.program.display();
        tracing::debug!(%helper, verb = op.verb(), %name, "running secret helper");
        let deadline = Instant::now() + self.timeout;
        let mut command = Command::new(&self.program);
        command
            .arg(op.verb())
            .arg(name.as_str())
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = spawn(&mut command).map_err(|source| StoreError::HelperNotRunnable {
            store: self.describe(),
            name: name.clone(),
            op,
            program: self.program.clone(),
            source,
        })?;
        let group = i32::try_from(child.id())
            .ok()
            .filter(|pid| *pid > 0)
            .map(Pid::from_raw);

        let (tx, rx) = mpsc::channel();
        if let (Some(stdin), Some(value)) = (child.stdin.take(), input) {
            let line = Zeroizing::new(format!("{}\n", value.expose()));
            std::thread::spawn(move || feed(stdin, line.as_bytes()));
        }
        if let Some(stdout) = child.stdout.take() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = tx.send(Event::Stdout(read_bounded(stdout, STDOUT_LIMIT)));
            });
        }
        if let Some(stderr) = child.stderr.take() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = tx.send(Event::Stderr(read_bounded(stderr, STDERR_LIMIT)));
            });
        }
        std::thread::spawn(move || {
            let _ = tx.send(Event::Exited(child.wait()));
        });

        let mut finished = Collector::default();
        while !finished.complete() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(event) => finished.take(event),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.kill(group, &rx, finished.status.is_some());
                    return Err(StoreError::HelperTimedOut {
                        store: self.describe(),
                        name: name.clone(),
                        op,
                        timeout: self.timeout,
                    });
                }
                // Every thread has sent its event or died; what we have is all there is.
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        finished.finish().map_err(|source| StoreError::Io {
            store: self.describe(),
            name: name.clone(),
            op,
            path: self.program.clone(),
            source,
        })
    }

    /// Kill the helper's process group and wait (briefly) until the helper is reaped.
    fn kill(&self, group: Option<Pid>, rx: &mpsc::Receiver<Event>, reaped: bool) {
        if let Some(group) = group
            && let Err(errno) = killpg(group, Signal::SIGKILL)
        {
            let helper = self.program.display();
            tracing::debug!(%helper, %errno, "could not kill the helper's process group");
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
        let helper = self.program.display();
        tracing::warn!(%helper, "killed secret helper was not reaped in time");
    }

    fn failed(
        &self,
        op: StoreOp,
        name: &SecretName,
        out: &Finished,
        sent: Option<&Secret>,
    ) -> StoreError {
        let mut masks: Vec<&[u8]> = Vec::new();
        if let Some(sent) = sent {
            masks.push(sent.expose().as_bytes());
        }
        // The helper may have printed a value before failing; keep it out of the message too.
        masks.extend(out.stdout.split(|b| *b == b'\n').filter(|l| l.len() >= 4));
        StoreError::HelperFailed {
            store: self.describe(),
            name: name.clone(),
            op,
            code: out.status.code(),
            stderr: excerpt(&out.stderr, &masks),
        }
    }

    fn garbage(&self, op: StoreOp, name: &SecretName, reason: String) -> StoreError {
        StoreError::HelperGarbage {
            store: self.describe(),
            name: name.clone(),
            op,
            reason,
        }
    }
}

impl SecretStore for ExecStore {
    fn describe(&self) -> String {
        format!("exec:{}", self.program.display())
    }

    fn get(&self, name: &SecretName) -> Result<Option<Secret>, StoreError> {
        let out = self.run(StoreOp::Get, name, None)?;
        match out.status.code() {
            Some(0) => self.parse_value(name, &out).map(Some),
            Some(EXIT_ABSENT) => Ok(None),
            _ => Err(self.failed(StoreOp::Get, name, &out, None)),
        }
    }

    fn add_if_absent(&self, name: &SecretName, value: &Secret) -> Result<Added, StoreError> {
        check_storable(&self.describe(), name, StoreOp::Add, value)?;
        let out = self.run(StoreOp::Add, name, Some(value))?;
        match out.status.code() {
            Some(0) => Ok(Added {
                value: value.clone(),
                inserted: true,
            }),
            Some(EXIT_PRESENT) => match self.get(name)? {
                Some(existing) => Ok(Added {
                    value: existing,
                    inserted: false,
                }),
                None => Err(self.garbage(
                    StoreOp::Add,
                    name,
                    format!(
                        "`add` exited {EXIT_PRESENT} (already present) but `get` then exited \
                         {EXIT_ABSENT} (absent)"
                    ),
                )),
            },
            _ => Err(self.failed(StoreOp::Add, name, &out, Some(value))),
        }
    }

    fn set(&self, name: &SecretName, value: &Secret) -> Result<(), StoreError> {
        check_storable(&self.describe(), name, StoreOp::Set, value)?;
        let out = self.run(StoreOp::Set, name, Some(value))?;
        match out.status.code() {
            Some(0) => Ok(()),
            _ => Err(self.failed(StoreOp::Set, name, &out, Some(value))),
        }
    }
}

impl ExecStore {
    /// The value a successful `get` printed: one line, one trailing newline stripped.
    fn parse_value(&self, name: &SecretName, out: &Finished) -> Result<Secret, StoreError> {
        let mut bytes: &[u8] = &out.stdout;
        if out.stdout_truncated {
            return Err(self.garbage(
                StoreOp::Get,
                name,
                format!("the output is longer than {MAX_SECRET_LEN} bytes"),
            ));
        }
        if let Some(rest) = bytes.strip_suffix(b"\n") {
            bytes = rest.strip_suffix(b"\r").unwrap_or(rest);
        }
        if let Some(reason) = value_problem(bytes) {
            return Err(self.garbage(StoreOp::Get, name, reason));
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(Secret::new(text)),
            Err(_) => Err(self.garbage(StoreOp::Get, name, "the value is not UTF-8".to_owned())),
        }
    }
}

/// What a helper thread reports.
enum Event {
    Stdout(io::Result<Bounded>),
    Stderr(io::Result<Bounded>),
    Exited(io::Result<ExitStatus>),
}

/// Up to a limit of a stream's bytes, zeroed on drop (stdout carries values).
struct Bounded {
    bytes: Zeroizing<Vec<u8>>,
    truncated: bool,
}

/// A helper run that ended.
struct Finished {
    status: ExitStatus,
    stdout: Zeroizing<Vec<u8>>,
    stdout_truncated: bool,
    stderr: Vec<u8>,
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
        let missing = || io::Error::other("a helper I/O thread ended without reporting");
        let status = self.status.ok_or_else(missing)??;
        let stdout = self.stdout.ok_or_else(missing)??;
        // Stderr only feeds an error excerpt: losing it must not hide the exit status.
        let stderr = match self.stderr {
            Some(Ok(b)) => b.bytes.to_vec(),
            _ => Vec::new(),
        };
        Ok(Finished {
            status,
            stdout: stdout.bytes,
            stdout_truncated: stdout.truncated,
            stderr,
        })
    }
}

/// Spawn, retrying briefly on `ETXTBSY`: a helper that was just written (by an installer, or by
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

/// Write the value line to the helper's stdin. A helper that exits without reading it is judged
/// by its exit code, so a broken pipe is not an error here.
fn feed(mut stdin: ChildStdin, line: &[u8]) {
    if let Err(e) = stdin.write_all(line)
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        tracing::debug!(error = %e, "could not write to secret helper's stdin");
    }
}

/// Read a stream to its end, keeping at most `limit` bytes (the rest is drained and dropped, so
/// the helper never blocks on a full pipe).
fn read_bounded(mut stream: impl Read, limit: usize) -> io::Result<Bounded> {
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

/// The first lines of `stderr`, bounded, control characters blanked, every mask replaced by
/// `****`.
fn excerpt(stderr: &[u8], masks: &[&[u8]]) -> String {
    let mut bytes = stderr.to_vec();
    for mask in masks.iter().filter(|m| !m.is_empty()) {
        bytes = replace_all(&bytes, mask, b"****");
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            l.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect::<String>()
                .trim()
                .to_owned()
        })
        .filter(|l| !l.is_empty())
        .take(EXCERPT_LINES)
        .collect();
    let joined = lines.join(" / ");
    if joined.chars().count() > EXCERPT_CHARS {
        let cut: String = joined.chars().take(EXCERPT_CHARS).collect();
        format!("{cut}…")
    } else {
        joined
    }
}

fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_masks_bounds_and_cleans() {
        let stderr =
            b"\n  error: cannot store s3cr3t-v\x1balue\nline two s3cr3t-v\x1balue\nthree\nfour\n";
        let out = excerpt(stderr, &[b"s3cr3t-v\x1balue"]);
        assert_eq!(out, "error: cannot store **** / line two **** / three");
        let long = "x".repeat(1000);
        assert_eq!(
            excerpt(long.as_bytes(), &[]).chars().count(),
            EXCERPT_CHARS + 1
        );
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
}
