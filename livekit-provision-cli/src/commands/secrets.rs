//! `livekit-provision secrets list|get|set|rotate`: `list`, `set` and `rotate` print the
//! daemon's results of the same names (`--json`) or render them.

use std::io::{self, BufRead, IsTerminal, Write};
use std::time::SystemTime;

use livekit_provision::store::{KNOWN, known_names_hint};
use livekit_provision::{EnsureOptions, SecretName, local_addresses};
use livekit_provision_daemon::protocol::{
    self, NoParams, RotateResult, SecretsListResult, SecretsSetResult,
};

use super::{Ctx, DAEMON_TIMEOUT};
use crate::cli::SecretsCommand;
use crate::output::{CliError, Exit};

pub fn run(ctx: &Ctx, cmd: SecretsCommand) -> Result<Exit, CliError> {
    match cmd {
        SecretsCommand::List => list(ctx),
        SecretsCommand::Get { name } => get(ctx, &name),
        SecretsCommand::Set { name, value } => set(ctx, &name, &value),
        SecretsCommand::Rotate { grace, yes } => rotate(ctx, grace, yes),
    }
}

fn parse_name(name: &str) -> Result<SecretName, CliError> {
    SecretName::new(name)
        .map_err(|e| CliError::msg(format!("secret name {e}"), Some(known_names_hint())))
}

/// A name livekit-provision reads: storing any other is a typo that would be silently ignored.
fn parse_known_name(name: &str) -> Result<SecretName, CliError> {
    let name = parse_name(name)?;
    if KNOWN.iter().any(|k| k.name == name) {
        Ok(name)
    } else {
        Err(CliError::msg(
            format!("{name} is not a setting livekit-provision reads; nothing was stored"),
            Some(known_names_hint()),
        ))
    }
}

fn list(ctx: &Ctx) -> Result<Exit, CliError> {
    let store = ctx.open_store()?;
    // The daemon's `secrets.list` shape; the store shown as the spec given.
    let mut list = SecretsListResult::of(store.as_ref())?;
    list.store = ctx.spec.to_string();
    let p = &ctx.printer;
    if p.json {
        p.json(&list);
    } else {
        p.status(format!("store: {}", list.store));
        for row in &list.secrets {
            let value = row.value.as_deref().unwrap_or("(not set)");
            p.data(format!("{:<32} {value}", row.name));
        }
    }
    Ok(Exit::Success)
}

fn get(ctx: &Ctx, name: &str) -> Result<Exit, CliError> {
    let name = parse_name(name)?;
    let store = ctx.open_store()?;
    match store.get(&name)? {
        Some(value) => {
            // The one place a secret is shown, on purpose: for scripts.
            ctx.printer.data(value.expose());
            Ok(Exit::Success)
        }
        None => Err(CliError::msg(
            format!("{name} is not set in {}", ctx.spec),
            Some(format!(
                "set it with `livekit-provision secrets set {name} <value>`"
            )),
        )),
    }
}

fn set(ctx: &Ctx, name: &str, value: &str) -> Result<Exit, CliError> {
    let name = parse_known_name(name)?;
    let value = if value == "-" {
        let mut line = String::new();
        io::stdin().lock().read_line(&mut line).map_err(|e| {
            CliError::msg(
                format!("cannot read the value of {name} from stdin: {e}"),
                None,
            )
        })?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        value.to_owned()
    };
    // Refused before the store is opened: nothing is touched.
    livekit_provision::admin::validate_setting(name.as_str(), &value)?;
    let store = ctx.open_store()?;
    let name = livekit_provision::admin::set_setting(
        &ctx.state,
        store.as_ref(),
        name.as_str(),
        &value,
        ctx.lock_waiter(),
    )?;
    let result = SecretsSetResult {
        name: name.to_string(),
        store: ctx.spec.to_string(),
        provisioning_scheduled: false,
    };
    let p = &ctx.printer;
    if p.json {
        p.json(&result);
    } else {
        p.status(format!("stored {} in {}", result.name, result.store));
        p.status("apply it with `livekit-provision ensure`");
    }
    Ok(Exit::Success)
}

fn rotate(ctx: &Ctx, grace: Option<std::time::Duration>, yes: bool) -> Result<Exit, CliError> {
    if !yes {
        if !io::stdin().is_terminal() {
            return Err(CliError::msg(
                "refusing to rotate the API credentials without confirmation",
                Some("pass --yes (tokens signed with the old secret stop working unless --grace is given)".to_owned()),
            ));
        }
        eprint!(
            "Rotate the API key and secret of {}? Tokens signed with the old secret {}. [y/N] ",
            ctx.state.root().display(),
            grace.map_or_else(
                || "stop working at once".to_owned(),
                |g| format!("keep working for {}", humantime::format_duration(g))
            )
        );
        let _ = io::stderr().flush();
        let mut answer = String::new();
        let _ = io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(CliError::msg("rotation cancelled", None));
        }
    }
    let store = ctx.open_store()?;
    let now = SystemTime::now();
    let outcome = livekit_provision::rotate::rotate(
        &ctx.state,
        store.as_ref(),
        grace,
        now,
        ctx.lock_waiter(),
    )?;
    let waiter = ctx.lock_waiter();
    let report = livekit_provision::ensure(
        &ctx.state,
        store.as_ref(),
        &EnsureOptions {
            now,
            local_addresses: local_addresses(),
            on_lock_wait: &waiter,
            binary: livekit_provision::BinaryOptions {
                offline: true,
                ..ctx.binary_options()
            },
            ..EnsureOptions::default()
        },
    )?;
    // A running daemon runs too: it learns of the grace and drops the old key when it ends (and
    // its `status` shows the restart now pending). It waits for its lock, which this run no
    // longer holds. Best effort: the files are provisioned either way.
    let daemon_ran = match ctx.via_daemon::<protocol::Ensure>(&NoParams {}, DAEMON_TIMEOUT) {
        Ok(answer) => answer.is_some(),
        Err(e) => {
            ctx.printer.warn(format!(
                "the daemon did not take the rotation in: {}; it will at its next run (or `livekit-provision ensure`)",
                e.line()
            ));
            false
        }
    };
    let mut result = RotateResult::new(outcome, daemon_ran);
    result.ensure = Some(report);
    let p = &ctx.printer;
    if p.json {
        p.json(&result);
    } else {
        p.data(format!(
            "rotated: new API key {}{}",
            result.new_key,
            result
                .old_key
                .as_ref()
                .map(|k| format!(" (was {k})"))
                .unwrap_or_default()
        ));
        if let Some(until) = &result.grace_until {
            p.status(format!(
                "the old key stays in livekit.yaml until the grace ends ({until}); {}",
                if result.provisioning_scheduled {
                    "the daemon removes it then"
                } else {
                    "with no daemon running, run `livekit-provision ensure` after that to remove it"
                }
            ));
        }
        p.status("restart livekit-server to load the new keys: `livekit-provision restart`");
    }
    Ok(Exit::Success)
}
