//! `livekit-provision secrets list|get|set|rotate`: `list`, `set` and `rotate` print the
//! daemon's results of the same names (`--json`) or render them. `rotate` stages a new key,
//! `--promote` promotes it, `--force` does both at once (`livekit_provision::rotate`).

use std::io::{self, BufRead, IsTerminal, Write};
use std::time::SystemTime;

use livekit_provision::admin::WhenLive;
use livekit_provision::rotate::{self, Epoch, RotateAction, Schedule, ScheduleParam};
use livekit_provision::store::{KNOWN, known_names_hint};
use livekit_provision::{EnsureOptions, SecretName, local_addresses};
use livekit_provision_daemon::protocol::{
    self, NoParams, RotateResult, SecretsListResult, SecretsSetResult,
};

use super::{Ctx, DAEMON_TIMEOUT};
use crate::cli::{RotateArgs, SecretsCommand};
use crate::output::{CliError, Exit};

pub fn run(ctx: &Ctx, cmd: SecretsCommand) -> Result<Exit, CliError> {
    match cmd {
        SecretsCommand::List => list(ctx),
        SecretsCommand::Get { name } => get(ctx, &name),
        SecretsCommand::Set { name, value, force } => {
            let when_live = if force {
                WhenLive::Replace
            } else {
                WhenLive::Refuse
            };
            set(ctx, &name, &value, when_live)
        }
        SecretsCommand::Rotate(args) => rotate(ctx, &args),
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
            let value = shown_value(&row.name, row.value.as_deref());
            p.data(format!("{:<32} {value}", row.name));
        }
    }
    Ok(Exit::Success)
}

/// A value as `secrets list` shows it to a person: the grace end (stored as Unix seconds) as
/// RFC 3339 with the stored number beside it; `--json` and `secrets get` keep the stored value.
fn shown_value(name: &str, value: Option<&str>) -> String {
    let Some(value) = value else {
        return "(not set)".to_owned();
    };
    match value.parse::<u64>() {
        Ok(secs) if name == SecretName::LIVEKIT_ROTATION_GRACE_UNTIL.as_str() => format!(
            "{} ({value})",
            livekit_provision::clock::rfc3339(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)
            )
        ),
        _ => value.to_owned(),
    }
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
            Some(unset_hint(&name)),
        )),
    }
}

/// The hint of `secrets get` for a name that is not set: `secrets set` only for a name it
/// accepts (a known one); for any other, that livekit-provision does not read it.
fn unset_hint(name: &SecretName) -> String {
    if KNOWN.iter().any(|k| &k.name == name) {
        format!("set it with `livekit-provision secrets set {name} <value>`")
    } else {
        format!(
            "{name} is not a setting livekit-provision reads or stores; {}",
            known_names_hint()
        )
    }
}

fn set(ctx: &Ctx, name: &str, value: &str, when_live: WhenLive) -> Result<Exit, CliError> {
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
        when_live,
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

fn rotate(ctx: &Ctx, args: &RotateArgs) -> Result<Exit, CliError> {
    // Checked before anything is asked or opened: nothing is touched on bad flags.
    let schedule = Schedule::new(args.grace, args.retire_by).map_err(|e| {
        let flag = match e.param() {
            ScheduleParam::Grace => "--grace",
            _ => "--retire-by",
        };
        CliError::msg(format!("{flag}: {e}"), None)
    })?;
    confirm_rotation(ctx, args)?;
    let store = ctx.open_store()?;
    let now = SystemTime::now();
    let outcome = if args.promote {
        rotate::promote(&ctx.state, store.as_ref(), now, ctx.lock_waiter())?
    } else if args.force {
        rotate::rotate_now(
            &ctx.state,
            store.as_ref(),
            &schedule,
            now,
            ctx.lock_waiter(),
        )?
    } else {
        rotate::stage(
            &ctx.state,
            store.as_ref(),
            &schedule,
            now,
            ctx.lock_waiter(),
        )?
    };
    if outcome.action == RotateAction::NothingStaged {
        return Err(CliError::msg(
            format!(
                "no key is staged, nothing was promoted (current key {})",
                outcome.epoch.current_key().unwrap_or("none")
            ),
            Some("stage one with `livekit-provision secrets rotate`".to_owned()),
        ));
    }
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
    // A running daemon runs too: it publishes the same files, learns of the grace and drops
    // the previous key when it ends (and its `status` shows the restart now pending). It waits
    // for its lock, which this run no longer holds. Best effort: the files are provisioned
    // either way.
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
    let server = livekit_provision_daemon::media::livekit_server_pid(&ctx.state);
    print_rotation(ctx, &result, args.force, server);
    Ok(Exit::Success)
}

fn confirm_rotation(ctx: &Ctx, args: &RotateArgs) -> Result<(), CliError> {
    if args.yes {
        return Ok(());
    }
    if !io::stdin().is_terminal() {
        return Err(CliError::msg(
            "refusing to rotate the API credentials without confirmation",
            Some("pass --yes".to_owned()),
        ));
    }
    let root = ctx.state.root().display();
    if args.promote {
        eprint!(
            "Promote the staged API key of {root}? Every signer switches to it: livekit-server must have loaded it (restarted since it was staged). [y/N] "
        );
    } else if args.force {
        eprint!(
            "Replace the API key of {root} at once? Tokens signed with the new key are refused until livekit-server restarts. [y/N] "
        );
    } else {
        eprint!(
            "Stage a new API key for {root}? livekit.yaml lists it beside the current key; nothing signs with it until it is promoted. [y/N] "
        );
    }
    let _ = io::stderr().flush();
    let mut answer = String::new();
    let _ = io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(CliError::msg("rotation cancelled", None))
    }
}

/// What a livekit-server must do about a new key, from whether one runs (`server`: its pid):
/// a running one loads it only when restarted; one that does not run loads it when it starts.
fn staged_next_step(server: Option<u32>) -> String {
    match server {
        Some(pid) => format!(
            "next (no daemon runs): livekit-server (pid {pid}) must load the new key before \
             anything signs with it: `livekit-provision restart` when no call is in progress \
             (it refuses otherwise), then `livekit-provision secrets rotate --promote`"
        ),
        None => "next (no daemon runs): livekit-server is not running, so nothing needs a \
                 restart: it loads the new key when it starts; then `livekit-provision secrets \
                 rotate --promote`"
            .to_owned(),
    }
}

/// What a key replaced at once (`--force`, or a promotion without grace) means for the
/// livekit-server that runs, if one does.
fn replaced_key_note(server: Option<u32>) -> Option<String> {
    server.map(|pid| {
        format!(
            "tokens signed with the new key are refused until livekit-server (pid {pid}) \
             restarts: `livekit-provision restart`"
        )
    })
}

/// The human form of a rotation's result: what happened, then the next step (`server`: the
/// pid of the livekit-server that runs, if one does).
fn print_rotation(ctx: &Ctx, result: &RotateResult, forced: bool, server: Option<u32>) {
    let p = &ctx.printer;
    if p.json {
        p.json(result);
        return;
    }
    let current = result.current_key.as_deref().unwrap_or("none");
    match (&result.action, &result.epoch) {
        (RotateAction::Staged | RotateAction::AlreadyStaged, Epoch::Staged { next_key, .. }) => {
            let done = if result.action == RotateAction::Staged {
                "staged"
            } else {
                "already staged (nothing minted)"
            };
            p.data(format!(
                "{done}: API key {next_key}; {current} keeps signing until it is promoted"
            ));
            if result.provisioning_scheduled {
                p.status(
                    "next: the daemon restarts livekit-server to load the new key at the first \
                     moment no call is in progress, asks it whether it accepts the key, then \
                     promotes it (`livekit-provision status` shows each step)",
                );
            } else {
                p.status(staged_next_step(server));
            }
        }
        (
            _,
            Epoch::Grace {
                previous_key,
                until,
                ..
            },
        ) => {
            p.data(format!(
                "promoted: API key {current} signs from now on (was {previous_key})"
            ));
            p.status(format!(
                "the previous key stays in livekit.yaml until the grace ends ({}); {}",
                livekit_provision::clock::rfc3339(*until),
                if result.provisioning_scheduled {
                    "the daemon removes it then"
                } else {
                    "with no daemon running, run `livekit-provision ensure` after that to remove it"
                }
            ));
        }
        _ => {
            p.data(format!("promoted: API key {current} signs from now on"));
            if server.is_some() {
                p.status(
                    "the previous key has left livekit.yaml (no grace); livekit-server accepts it until it restarts",
                );
            } else {
                p.status("the previous key has left livekit.yaml (no grace)");
            }
        }
    }
    if let Some(note) = replaced_key_note(server).filter(|_| forced) {
        p.status(note);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `secrets get` of an unset name suggests `secrets set` only for a name `set` accepts
    /// (issue 25: it suggested `secrets set FOO`, which is refused).
    #[test]
    fn an_unset_name_hints_set_only_when_set_accepts_it() {
        let table: [(&str, &str, &str); 3] = [
            (
                "LIVEKIT_VERSION",
                "set it with `livekit-provision secrets set LIVEKIT_VERSION <value>`",
                "not a setting",
            ),
            (
                "LIVEKIT_REDIS_PASSWORD",
                "secrets set LIVEKIT_REDIS_PASSWORD",
                "not a setting",
            ),
            (
                "FOO",
                "FOO is not a setting livekit-provision reads or stores; known names: LIVEKIT_",
                "secrets set",
            ),
        ];
        for (name, says, never) in table {
            let hint = unset_hint(&parse_name(name).unwrap());
            assert!(hint.contains(says), "{name}: {hint}");
            assert!(!hint.contains(never), "{name}: {hint}");
        }
    }

    #[test]
    fn the_grace_end_is_listed_as_a_time() {
        let table: [(&str, Option<&str>, &str); 5] = [
            (
                "LIVEKIT_ROTATION_GRACE_UNTIL",
                Some("1796681117"),
                "2026-12-07T22:05:17Z (1796681117)",
            ),
            ("LIVEKIT_ROTATION_GRACE_UNTIL", Some("soon"), "soon"),
            ("LIVEKIT_ROTATION_GRACE_UNTIL", None, "(not set)"),
            ("LIVEKIT_ROTATION_GRACE", Some("3600"), "3600"),
            ("LIVEKIT_VERSION", Some("1.7.2"), "1.7.2"),
        ];
        for (name, value, shown) in table {
            assert_eq!(shown_value(name, value), shown, "{name} {value:?}");
        }
    }

    /// The next step after a rotation follows the state: "restart livekit-server" only when
    /// one runs (issue 25: it was said with nothing installed).
    #[test]
    fn rotation_hints_follow_whether_livekit_server_runs() {
        let table: [(Option<u32>, &str, &str); 2] = [
            (Some(42), "`livekit-provision restart`", "not running"),
            (
                None,
                "is not running, so nothing needs a restart",
                "`livekit-provision restart`",
            ),
        ];
        for (server, says, never) in table {
            let next = staged_next_step(server);
            assert!(next.contains(says), "{server:?}: {next}");
            assert!(!next.contains(never), "{server:?}: {next}");
            assert!(
                next.contains("secrets rotate --promote"),
                "{server:?}: {next}"
            );
        }
        let note = replaced_key_note(Some(42)).unwrap();
        assert!(
            note.contains("(pid 42) restarts: `livekit-provision restart`"),
            "{note}"
        );
        assert_eq!(replaced_key_note(None), None);
    }
}
