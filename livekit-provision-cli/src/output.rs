//! Everything the CLI prints: data on stdout, messages on stderr, errors as `error:` /
//! `caused by:` / `hint:` lines, and the one table of exit codes.

use std::error::Error;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use serde::Serialize;

/// The exit codes of `livekit-provision` (one table, one place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; for `ensure --dry-run`: nothing to do; for `check`: healthy.
    Success,
    /// An error; for `check`: problems found; for `ensure`: the binary could not be installed.
    Failure,
    /// `ensure --dry-run`: changes are pending (Terraform's `-detailed-exitcode`).
    ChangesPending,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        match exit {
            Exit::Success => Self::SUCCESS,
            Exit::Failure => Self::from(1),
            Exit::ChangesPending => Self::from(2),
        }
    }
}

/// An error as the CLI reports it: the message, its causes, and a hint.
#[derive(Debug)]
pub struct CliError {
    message: String,
    causes: Vec<String>,
    hint: Option<String>,
}

impl CliError {
    /// An error with no library error behind it.
    pub fn msg(message: impl Into<String>, hint: Option<String>) -> Self {
        Self {
            message: message.into(),
            causes: Vec::new(),
            hint,
        }
    }

    /// From a library error and its hint, walking its `source()` chain.
    pub fn from_error(err: &(dyn Error + 'static), hint: Option<String>) -> Self {
        let mut causes = Vec::new();
        let mut source = err.source();
        let message = err.to_string();
        while let Some(cause) = source {
            let text = cause.to_string();
            // `#[error(transparent)]` and "{source}" messages repeat their cause: skip repeats.
            if !message.contains(&text) && causes.last() != Some(&text) {
                causes.push(text);
            }
            source = cause.source();
        }
        Self {
            message,
            causes,
            hint,
        }
    }

    /// Print to stderr.
    pub fn report(&self) {
        let mut err = io::stderr().lock();
        let _ = writeln!(err, "error: {}", self.message);
        for cause in &self.causes {
            let _ = writeln!(err, "  caused by: {cause}");
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(err, "hint: {hint}");
        }
    }
}

/// Library errors carry their own hint; this turns each into a [`CliError`].
macro_rules! from_lib_error {
    ($($ty:ty),* $(,)?) => {$(
        impl From<$ty> for CliError {
            fn from(e: $ty) -> Self {
                let hint = e.hint();
                Self::from_error(&e, hint)
            }
        }
    )*};
}

from_lib_error!(
    livekit_provision::EnsureError,
    livekit_provision::StoreError,
    livekit_provision::FetchError,
    livekit_provision::PublishError,
    livekit_provision::ConfigError,
    livekit_provision::ResolveError,
    livekit_provision::TokenError,
    livekit_provision::NotProvisioned,
    livekit_provision::SuperviseError,
    livekit_provision::media::MediaError,
    livekit_provision::rotate::RotateError,
    livekit_provision::daemon::ClientError,
);

/// Where output goes, per `--json` and `-q`.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// `--json`: only JSON on stdout, no human messages.
    pub json: bool,
    /// `-q`: errors only.
    pub quiet: bool,
}

impl Printer {
    /// A line of data on stdout (a broken pipe is not an error: the reader has what it wanted).
    #[expect(clippy::unused_self, reason = "all output goes through the printer")]
    pub fn data(self, line: impl AsRef<str>) {
        let _ = writeln!(io::stdout().lock(), "{}", line.as_ref());
    }

    /// The JSON document of a command, on stdout.
    #[expect(clippy::unused_self, reason = "all output goes through the printer")]
    pub fn json(self, value: &impl Serialize) {
        let text = serde_json::to_string_pretty(value)
            .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialize output: {e}\"}}"));
        let _ = writeln!(io::stdout().lock(), "{text}");
    }

    /// A human status line on stderr (not in `--json` or `-q`).
    pub fn status(self, line: impl AsRef<str>) {
        if !self.json && !self.quiet {
            let _ = writeln!(io::stderr().lock(), "{}", line.as_ref());
        }
    }

    /// A warning on stderr (not in `-q`; in `--json` mode warnings are part of the document).
    pub fn warn(self, line: impl AsRef<str>) {
        if !self.quiet && !self.json {
            let _ = writeln!(io::stderr().lock(), "warning: {}", line.as_ref());
        }
    }

    /// Whether a progress display may be drawn: stderr is a terminal, not quiet, not JSON.
    pub fn progress_allowed(self) -> bool {
        !self.json && !self.quiet && io::stderr().is_terminal()
    }
}

/// Set up logging on stderr: `-q` errors only, default warnings, `-v` info, `-vv` debug,
/// `-vvv` trace; `RUST_LOG` overrides. `NO_COLOR` turns colour off.
pub fn init_logging(quiet: u8, verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let level = match (quiet, verbose) {
        (q, _) if q > 0 => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let color = std::env::var_os("NO_COLOR").is_none() && io::stderr().is_terminal();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(color)
        .with_target(false)
        .without_time()
        .try_init();
}
