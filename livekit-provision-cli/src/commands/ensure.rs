//! `livekit-provision ensure [--dry-run] [--start]`.

use std::time::SystemTime;

use livekit_provision::ensure::{Action, BinaryState, WriteReason};
use livekit_provision::{
    EnsureOptions, EnsureReport, ErrorReport, Reconciled, Warning, local_addresses,
};
use serde::Serialize;

use super::Ctx;
use crate::cli::EnsureArgs;
use crate::output::{CliError, ErrorObject, Exit, count};
use crate::progress::Progress;

pub fn run(ctx: &Ctx, args: &EnsureArgs) -> Result<Exit, CliError> {
    let store = ctx.open_store()?;
    let waiter = ctx.lock_waiter();
    let progress = ctx.progress();
    let opts = EnsureOptions {
        dry_run: args.dry_run,
        now: SystemTime::now(),
        local_addresses: local_addresses(),
        binary: ctx.binary_options(),
        on_lock_wait: &waiter,
        fetch_events: progress.as_ref().map(Progress::sink),
        ..EnsureOptions::default()
    };
    let run = livekit_provision::reconcile(&ctx.state, store.as_ref(), &opts);
    drop(progress);
    let Reconciled { report, snapshot } = run?;
    // The one failure rule: a failed install is the error itself (what failed, its innermost
    // cause, a hint from where the release was looked for), said the same on stderr, under
    // `-q` and in the JSON document — never a warning to look back at.
    let failure = report.failure();
    print_report(ctx, &report, failure.as_ref());

    if args.dry_run {
        return Ok(if report.is_noop() {
            Exit::Success
        } else {
            Exit::ChangesPending
        });
    }
    if let Some(failure) = failure {
        let error = CliError::from_report(failure);
        return Err(if ctx.printer.json {
            error.in_document()
        } else {
            error
        });
    }
    restart_pending_notice(ctx, &report);
    if args.start {
        // The node this run left (settings, files, binary): not read again.
        return super::media::start(ctx, Some(snapshot));
    }
    Ok(Exit::Success)
}

/// A new binary never restarts running media (that would drop calls): say that one is pending,
/// when the running livekit-server is not the binary now installed (switching back to the
/// version it runs leaves nothing pending).
fn restart_pending_notice(ctx: &Ctx, report: &EnsureReport) {
    let upgraded = report
        .actions
        .iter()
        .any(|a| matches!(a, Action::Install { .. } | Action::Reactivate { .. }));
    if !upgraded {
        return;
    }
    if let Some(pid) = livekit_provision_daemon::media::restart_pending(&ctx.state) {
        ctx.printer.warn(format!(
            "restart pending: livekit-server (pid {pid}) still runs the previous binary; `livekit-provision restart` drains its calls and starts the new one"
        ));
    }
}

/// `ensure --json` when the run failed: the report with the `error` object beside its fields.
#[derive(Serialize)]
struct FailedReport<'a> {
    #[serde(flatten)]
    report: &'a EnsureReport,
    error: ErrorObject,
}

fn print_report(ctx: &Ctx, report: &EnsureReport, failure: Option<&ErrorReport>) {
    let p = &ctx.printer;
    if p.json {
        match failure {
            Some(failure) => p.json(&FailedReport {
                report,
                error: ErrorObject::of(failure),
            }),
            None => p.json(report),
        }
        return;
    }
    for w in &report.warnings {
        // Said once, as the error.
        if !matches!(w.warning, Warning::InstallFailed { .. }) {
            p.warn(&w.message);
        }
    }
    for action in &report.actions {
        p.data(action_line(ctx, report.dry_run, action));
    }
    print_summary(ctx, report);
}

/// One action, as done (or, in a dry run, as it would be done).
fn action_line(ctx: &Ctx, dry_run: bool, action: &Action) -> String {
    let verb = |done: &'static str, planned: &'static str| if dry_run { planned } else { done };
    match action {
        // A dry run draws no key: the real run mints its own.
        Action::MintCredentials { key: Some(key) } => format!(
            "minted and stored API key {key} and its secret in {}",
            ctx.spec
        ),
        Action::MintCredentials { key: None } => format!(
            "{} a new API key and its secret in {}",
            verb("minted and stored", "would mint and store"),
            ctx.spec
        ),
        Action::AdoptCredentials { key, from } => format!(
            "{} API key {key} from {from} into {}",
            verb("adopted", "would adopt"),
            ctx.spec
        ),
        Action::StoreSecret { name } => {
            format!("{} {name} in {}", verb("stored", "would store"), ctx.spec)
        }
        Action::WriteFile { file, reason } => format!(
            "{} {file} ({})",
            verb("wrote", "would write"),
            match reason {
                WriteReason::Missing => "missing",
                WriteReason::Changed => "changed",
                WriteReason::LegacyImport => "imported from an older layout",
                WriteReason::ForeignSymlink => "replaced a foreign symlink",
                WriteReason::Unparsable => "replaced an unreadable file",
            }
        ),
        Action::BackupFile { path, to } => {
            format!("backed up {} to {}", path.display(), to.display())
        }
        Action::SweepDebris { paths } => {
            format!(
                "removed {} of a killed writer",
                count(paths.len(), "leftover temp file", "leftover temp files")
            )
        }
        Action::Install { version, replaces } => match replaces {
            Some(old) => format!(
                "{} livekit-server {old} -> {version}",
                verb("upgraded", "would upgrade")
            ),
            None => format!(
                "{} livekit-server {version}",
                verb("installed", "would install")
            ),
        },
        Action::Reactivate { version } => {
            format!(
                "{} kept livekit-server {version}",
                verb("switched back to", "would switch back to")
            )
        }
        Action::ObtainCertificate {
            names,
            directory,
            reason,
        } => certificate_line(verb("obtained", "would obtain"), names, directory, reason),
        other => format!("{other:?}"),
    }
}

/// The last line: nothing to do, the binary still missing, or the dry run's verdict.
fn print_summary(ctx: &Ctx, report: &EnsureReport) {
    let p = &ctx.printer;
    if report.is_noop() && report.is_incomplete() {
        // Not "nothing to do": the binary is still to be installed, and the run fails.
        let version = match &report.binary {
            BinaryState::Pending { version } => format!(" {version}"),
            _ => String::new(),
        };
        p.data(format!(
            "the files in {} are up to date; livekit-server{version} is not installed",
            ctx.state.root().display()
        ));
    } else if report.is_noop() {
        let binary = match &report.binary {
            BinaryState::Installed { version } => format!(", livekit-server {version} installed"),
            BinaryState::External { path } => format!(", livekit-server at {}", path.display()),
            _ => String::new(),
        };
        p.data(format!(
            "nothing to do: {} is up to date{binary}",
            ctx.state.root().display()
        ));
    } else if report.dry_run {
        p.status("dry run: nothing was changed (exit code 2: changes pending)");
    }
}

fn certificate_line(verb: &str, names: &[String], directory: &str, reason: &str) -> String {
    format!(
        "{verb} a TLS certificate for {} from {directory} ({reason})",
        names.join(", ")
    )
}
