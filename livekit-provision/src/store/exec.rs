//! `exec:PROGRAM`: a secret store backed by a credential-helper program (see [`ExecStore`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use zeroize::Zeroizing;

use super::{Added, SecretName, SecretStore, StoreError, StoreOp, check_storable, value_problem};
use crate::child::{self, Finished, Limits, RunError};
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
        let mut command = Command::new(&self.program);
        command.arg(op.verb()).arg(name.as_str());
        let input = input.map(|value| Zeroizing::new(format!("{}\n", value.expose()).into_bytes()));
        let limits = Limits {
            stdout: STDOUT_LIMIT,
            stderr: STDERR_LIMIT,
        };
        child::run(&mut command, input, self.timeout, limits).map_err(|e| match e {
            RunError::Spawn(source) => StoreError::HelperNotRunnable {
                store: self.describe(),
                name: name.clone(),
                op,
                program: self.program.clone(),
                source,
            },
            RunError::TimedOut => StoreError::HelperTimedOut {
                store: self.describe(),
                name: name.clone(),
                op,
                timeout: self.timeout,
            },
            RunError::Io(source) => StoreError::Io {
                store: self.describe(),
                name: name.clone(),
                op,
                path: self.program.clone(),
                source,
            },
        })
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
        masks.extend(
            out.stdout
                .bytes
                .split(|b| *b == b'\n')
                .filter(|l| l.len() >= 4),
        );
        StoreError::HelperFailed {
            store: self.describe(),
            name: name.clone(),
            op,
            code: out.status.code(),
            stderr: excerpt(&out.stderr.bytes, &masks),
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
        let mut bytes: &[u8] = &out.stdout.bytes;
        if out.stdout.truncated {
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
}
