//! How a failure is printed, and the exit codes (one table, one place).

use std::io::{self, Write};
use std::process::ExitCode;

use livekit_provision::ErrorReport;

use crate::style::{ColorWhen, Label, stderr};

/// The exit codes of both binaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; for `ensure --dry-run`: nothing to do; for `check`: healthy; for the daemon: shut
    /// down by SIGTERM/SIGINT.
    Success,
    /// An error; for `check`: problems found; for `ensure`: the binary could not be installed.
    Failure,
    /// `ensure --dry-run`: changes are pending (Terraform's `-detailed-exitcode`).
    ChangesPending,
    /// `exec` refused to start: not provisioned, inconsistent, or not configured for an
    /// outside supervisor (78, `EX_CONFIG`; systemd's `RestartPreventExitStatus=78` keeps a
    /// unit from restarting into the same refusal).
    Refused,
    /// The command line is wrong: an unknown option, a bad value, a missing argument (64,
    /// `EX_USAGE`; clap's own 2 would read as `ensure --dry-run`'s "changes pending").
    Usage,
}

impl Exit {
    /// The process exit code: 0, 1, 2, 64 (`EX_USAGE` of sysexits.h) and 78 (`EX_CONFIG`,
    /// which the systemd units name in `RestartPreventExitStatus=`).
    pub const fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failure => 1,
            Self::ChangesPending => 2,
            Self::Usage => 64,
            Self::Refused => 78,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        Self::from(exit.code())
    }
}

/// Parse the command line into `P`; on a usage error print clap's message and exit with
/// [`Exit::Usage`] (64), on `--help`/`--version` print them and exit 0. `--color` is applied
/// first, so clap's own messages follow it too.
pub fn parse_args<P: clap::Parser>() -> P {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    ColorWhen::in_args(&args).apply();
    P::try_parse_from(args).unwrap_or_else(|e| {
        let exit = if e.use_stderr() {
            Exit::Usage
        } else {
            Exit::Success
        };
        // Nothing is lost if it cannot be printed: the exit code still tells.
        let _ = e.print();
        std::process::exit(exit.code().into())
    })
}

/// Write `report`: the one failure rule. By default an `error:` line saying what failed and its
/// innermost cause ([`ErrorReport::headline`]) and a `hint:` line; with `detail` (`-v`) the
/// message alone, then a `  caused by:` line per cause, outermost first. Labels carry their
/// colour's escape codes: write to [`stderr`] (or strip them) for a reader.
pub fn write_error(out: &mut impl Write, report: &ErrorReport, detail: bool) -> io::Result<()> {
    let label = Label::Error.painted();
    if detail {
        writeln!(out, "{label} {}", report.message)?;
        for cause in &report.causes {
            writeln!(out, "  caused by: {cause}")?;
        }
    } else {
        writeln!(out, "{label} {}", report.headline())?;
    }
    if let Some(hint) = &report.hint {
        writeln!(out, "{} {hint}", Label::Hint.painted())?;
    }
    Ok(())
}

/// [`write_error`] on stderr, coloured as chosen (a closed stderr is not worth a panic).
pub fn print_error(report: &ErrorReport, detail: bool) {
    let _ = write_error(&mut stderr(), report, detail);
}

/// A `warning:` line on stderr, coloured as chosen.
pub fn print_warning(text: &str) {
    let _ = writeln!(stderr(), "{} {text}", Label::Warning.painted());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(report: &ErrorReport, detail: bool) -> String {
        let mut out = anstream::StripStream::new(Vec::new());
        write_error(&mut out, report, detail).unwrap();
        String::from_utf8(out.into_inner()).unwrap()
    }

    #[test]
    fn one_line_with_the_innermost_cause_and_every_cause_with_detail() {
        let report = ErrorReport {
            message: "downloading http://127.0.0.1:9/x failed".into(),
            causes: vec![
                "error sending request".into(),
                "Connection refused (os error 111)".into(),
            ],
            hint: Some("check the network".into()),
        };
        assert_eq!(
            plain(&report, false),
            "error: downloading http://127.0.0.1:9/x failed: Connection refused (os error 111)\nhint: check the network\n"
        );
        assert_eq!(
            plain(&report, true),
            "error: downloading http://127.0.0.1:9/x failed\n  caused by: error sending request\n  caused by: Connection refused (os error 111)\nhint: check the network\n"
        );
    }

    #[test]
    fn labels_are_coloured_in_the_raw_text() {
        let mut out = Vec::new();
        write_error(
            &mut out,
            &ErrorReport::message("x", Some("y".into())),
            false,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(&Label::Error.painted()), "{text:?}");
        assert!(text.contains(&Label::Hint.painted()), "{text:?}");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(ExitCode::from(Exit::Success), ExitCode::SUCCESS);
        assert_eq!(ExitCode::from(Exit::ChangesPending), ExitCode::from(2));
        assert_eq!(ExitCode::from(Exit::Failure), ExitCode::from(1));
    }
}
