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
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        match exit {
            Exit::Success => Self::SUCCESS,
            Exit::Failure => Self::from(1),
            Exit::ChangesPending => Self::from(2),
            Exit::Refused => Self::from(livekit_provision::units::EXIT_REFUSED),
        }
    }
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
