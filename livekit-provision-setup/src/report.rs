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

impl Exit {
    /// The process exit code: 0, 1, 2 and 78 (`EX_CONFIG` of sysexits.h, which the systemd
    /// units name in `RestartPreventExitStatus=`).
    pub const fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failure => 1,
            Self::ChangesPending => 2,
            Self::Refused => 78,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        Self::from(exit.code())
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
