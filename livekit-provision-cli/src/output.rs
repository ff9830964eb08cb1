//! Everything the CLI prints: data on stdout, messages on stderr. Errors (`error:` /
//! `caused by:` / `hint:` lines) and the exit codes come from `livekit-provision-setup`, shared
//! with the daemon.

use std::io::{self, IsTerminal, Write};

use livekit_provision::{ErrorReport, Hint};
pub use livekit_provision_setup::Exit;
use serde::Serialize;

/// An error as the CLI reports it: the message, its causes and a hint
/// ([`livekit_provision_setup::print_error`] prints it, as the daemon prints its own).
#[derive(Debug)]
pub struct CliError(ErrorReport);

impl CliError {
    /// An error with no library error behind it.
    pub fn msg(message: impl Into<String>, hint: Option<String>) -> Self {
        Self(ErrorReport::message(message, hint))
    }

    /// An error already walked into a report.
    pub fn from_report(report: ErrorReport) -> Self {
        Self(report)
    }

    /// The one-line form (message and causes).
    pub fn line(&self) -> String {
        self.0.to_string()
    }

    /// Print to stderr.
    pub fn report(&self) {
        livekit_provision_setup::print_error(&self.0);
    }
}

/// Every library error that knows its fix converts with `?`, its cause chain and hint kept.
impl<E: Hint> From<E> for CliError {
    fn from(e: E) -> Self {
        Self(ErrorReport::of(&e))
    }
}

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

/// `n` and the noun that agrees with it: `1 problem`, `2 problems`, `0 problems`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_agrees_with_its_noun() {
        assert_eq!(count(0, "problem", "problems"), "0 problems");
        assert_eq!(count(1, "problem", "problems"), "1 problem");
        assert_eq!(count(2, "warning", "warnings"), "2 warnings");
        assert_eq!(
            count(1, "leftover temp file", "leftover temp files"),
            "1 leftover temp file"
        );
    }
}
