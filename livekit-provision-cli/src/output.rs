//! Everything the CLI prints: data on stdout, messages on stderr. Errors (`error:` /
//! `caused by:` / `hint:` lines), their colours and the exit codes come from
//! `livekit-provision-setup`, shared with the daemon.

use std::io::{self, IsTerminal, Write};

use livekit_provision::{ErrorReport, Hint};
pub use livekit_provision_setup::Exit;
use serde::Serialize;

/// An error as the CLI reports it: the message, its causes and a hint
/// ([`livekit_provision_setup::print_error`] prints it, as the daemon prints its own), and with
/// `--json` also as an `error` object on stdout ([`ErrorObject`]).
#[derive(Debug)]
pub struct CliError {
    report: ErrorReport,
    /// The JSON document the command printed already carries it (`ensure`'s report).
    in_document: bool,
}

/// An error in `--json` output: `{"error": {"message", "causes", "hint"}}` — `message` is the
/// `error:` line (what failed and its innermost cause), `causes` every cause, outermost first.
#[derive(Debug, Serialize)]
pub struct ErrorObject {
    pub message: String,
    pub causes: Vec<String>,
    pub hint: Option<String>,
}

impl ErrorObject {
    pub fn of(report: &ErrorReport) -> Self {
        Self {
            message: report.headline(),
            causes: report.causes.clone(),
            hint: report.hint.clone(),
        }
    }
}

/// A document that is only an error.
#[derive(Serialize)]
struct ErrorDocument {
    error: ErrorObject,
}

impl CliError {
    /// An error with no library error behind it.
    pub fn msg(message: impl Into<String>, hint: Option<String>) -> Self {
        Self::from_report(ErrorReport::message(message, hint))
    }

    /// An error already walked into a report.
    pub fn from_report(report: ErrorReport) -> Self {
        Self {
            report,
            in_document: false,
        }
    }

    /// This error, which the JSON document the command printed carries already.
    #[must_use]
    pub fn in_document(mut self) -> Self {
        self.in_document = true;
        self
    }

    /// The one-line form (message and causes).
    pub fn line(&self) -> String {
        self.report.to_string()
    }

    /// Print it: the `error:` and `hint:` lines on stderr (every cause with `-v`),
    /// and with `--json` the `error` object on stdout unless the command's document had it.
    pub fn report(&self, printer: Printer) {
        if printer.json && !self.in_document {
            printer.json(&ErrorDocument {
                error: ErrorObject::of(&self.report),
            });
        }
        livekit_provision_setup::print_error(&self.report, printer.detail);
    }
}

/// Every library error that knows its fix converts with `?`, its cause chain and hint kept.
impl<E: Hint> From<E> for CliError {
    fn from(e: E) -> Self {
        Self::from_report(ErrorReport::of(&e))
    }
}

/// Where output goes, per `--json` and `-q`.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    /// `--json`: only JSON on stdout, no human messages.
    pub json: bool,
    /// `-q`: errors only.
    pub quiet: bool,
    /// `-v`: an error with every cause, not only the innermost.
    pub detail: bool,
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
            livekit_provision_setup::print_warning(line.as_ref());
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
