//! How a failure is printed, and the exit codes (one table, one place).

use std::io::{self, Write};
use std::process::ExitCode;

use livekit_provision::ErrorReport;

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
/// [`Exit::Usage`] (64), on `--help`/`--version` print them and exit 0.
pub fn parse_args<P: clap::Parser>() -> P {
    P::try_parse().unwrap_or_else(|e| {
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

/// Write `report` as an `error:` line, a `  caused by:` line per cause and a `hint:` line.
pub fn write_error(out: &mut impl Write, report: &ErrorReport) -> io::Result<()> {
    writeln!(out, "error: {}", report.message)?;
    for cause in &report.causes {
        writeln!(out, "  caused by: {cause}")?;
    }
    if let Some(hint) = &report.hint {
        writeln!(out, "hint: {hint}")?;
    }
    Ok(())
}

/// [`write_error`] on stderr (a closed stderr is not worth a panic).
pub fn print_error(report: &ErrorReport) {
    let _ = write_error(&mut io::stderr().lock(), report);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_causes_hint() {
        let report = ErrorReport {
            message: "could not read /x".into(),
            causes: vec!["permission denied".into()],
            hint: Some("check the mode".into()),
        };
        let mut out = Vec::new();
        write_error(&mut out, &report).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "error: could not read /x\n  caused by: permission denied\nhint: check the mode\n"
        );
    }

    #[test]
    fn exit_codes() {
        assert_eq!(ExitCode::from(Exit::Success), ExitCode::SUCCESS);
        assert_eq!(ExitCode::from(Exit::ChangesPending), ExitCode::from(2));
        assert_eq!(ExitCode::from(Exit::Failure), ExitCode::from(1));
    }
}
