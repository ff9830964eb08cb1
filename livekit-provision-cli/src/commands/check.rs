//! `livekit-provision check [--fleet]`: read-only diagnosis; exit 0 healthy, 1 problems. The
//! daemon's `check` result ([`CheckReport`]; with `--fleet`, its `fleet` part too), printed as
//! JSON with `--json` and rendered otherwise.

use livekit_provision::{CheckOptions, CheckReport, Severity, local_addresses};

use super::Ctx;
use crate::cli::CheckArgs;
use crate::output::{CliError, Exit, count};

pub fn run(ctx: &Ctx, args: &CheckArgs) -> Result<Exit, CliError> {
    let store = ctx.open_store()?;
    let opts = CheckOptions {
        local_addresses: local_addresses(),
        livekit_bin: ctx.livekit_bin.clone(),
        ..CheckOptions::default()
    };
    let mut report = livekit_provision::check(&ctx.state, Some(store.as_ref()), &opts);
    if args.fleet {
        report = report.with_fleet(livekit_provision::fleet_check(&ctx.state, store.as_ref()));
    }
    if ctx.printer.json {
        ctx.printer.json(&report);
    } else {
        print_report(ctx, &report);
    }
    Ok(if report.healthy {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn print_report(ctx: &Ctx, report: &CheckReport) {
    let p = &ctx.printer;
    for f in &report.findings {
        let severity = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let code = serde_json::to_value(f.code)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        p.data(format!("{severity}[{code}]: {}", f.message));
        for file in &f.files {
            p.data(format!("  file: {}", file.display()));
        }
        if let Some(hint) = &f.hint {
            p.data(format!("  hint: {hint}"));
        }
    }
    if let Some(fleet) = &report.fleet {
        for d in &fleet.differences {
            p.data(format!("error[fleet]: {}", d.message));
            p.data(format!("  hint: {}", d.hint));
        }
        if fleet.in_sync {
            p.data(format!(
                "fleet: in sync with {} (key {})",
                fleet.store,
                fleet.node_key.as_deref().unwrap_or("-")
            ));
        }
    }
    let errors = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count()
        + report.fleet.as_ref().map_or(0, |f| f.differences.len());
    let warnings = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Warning)
        .count();
    let warnings = count(warnings, "warning", "warnings");
    if report.healthy {
        p.data(format!(
            "healthy: {} ({warnings})",
            ctx.state.root().display()
        ));
    } else {
        p.data(format!(
            "{}, {warnings} in {}",
            count(errors, "problem", "problems"),
            ctx.state.root().display()
        ));
    }
}
