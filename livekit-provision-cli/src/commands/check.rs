//! `livekit-provision check [--fleet]`: read-only diagnosis; exit 0 healthy, 1 problems.

use livekit_provision::{CheckOptions, Severity, local_addresses};

use super::Ctx;
use crate::cli::CheckArgs;
use crate::output::{CliError, Exit};

pub fn run(ctx: &Ctx, args: &CheckArgs) -> Result<Exit, CliError> {
    let store = ctx.open_store()?;
    let opts = CheckOptions {
        local_addresses: local_addresses(),
        livekit_bin: ctx.livekit_bin.clone(),
        ..CheckOptions::default()
    };
    let report = livekit_provision::check(&ctx.state, Some(store.as_ref()), &opts);
    let fleet = args
        .fleet
        .then(|| livekit_provision::fleet_check(&ctx.state, store.as_ref()));
    let healthy = report.healthy && fleet.as_ref().is_none_or(|f| f.in_sync);
    let p = &ctx.printer;
    if p.json {
        match &fleet {
            Some(fleet) => p.json(&serde_json::json!({
                "state_dir": report.state_dir,
                "healthy": healthy,
                "findings": report.findings,
                "fleet": fleet,
            })),
            None => p.json(&report),
        }
    } else {
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
        let errors = report
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        let warnings = report.findings.len() - errors;
        if report.healthy {
            p.data(format!(
                "healthy: {} ({warnings} warning(s))",
                ctx.state.root().display()
            ));
        } else {
            p.data(format!(
                "{errors} problem(s), {warnings} warning(s) in {}",
                ctx.state.root().display()
            ));
        }
    }
    Ok(if report.healthy {
        Exit::Success
    } else {
        Exit::Failure
    })
}
