//! `livekit-provision exec livekit-server|lk-backend` and `livekit-provision units`: the media
//! under an outside supervisor (`media_owner: external`).
//!
//! `exec` refuses, with exit code 78 (`EX_CONFIG`), when the state is not ready: settings that
//! do not load, `media_owner` not `external`, files missing or disagreeing, no binary, no
//! `backend_command` for lk-backend, the process already running. Otherwise it becomes the
//! program (`media::exec`: the same cleaned environment as the daemon's detached start, the
//! same pid file and started record), so the unit's pid is the program's.

use std::path::Path;
use std::time::SystemTime;

use crate::units::{UnitOptions, render};
use livekit_provision::OperatorConfig;
use livekit_provision::settings::MediaOwner;

use super::Ctx;
use crate::cli::{ExecArgs, UnitsArgs};
use crate::output::{CliError, Exit};

/// Become the media process `args.name`; returns (exit 78) only when that was refused or
/// failed, after printing why.
pub fn exec(ctx: &Ctx, args: &ExecArgs) -> Exit {
    let error = livekit_provision_daemon::media::exec(
        &ctx.state,
        &args.name,
        ctx.livekit_bin.as_deref(),
        std::env::vars_os(),
        SystemTime::now(),
    );
    CliError::from(error).report(ctx.printer);
    Exit::Refused
}

/// The warning of `units` when the media are not set to be run by systemd, naming
/// `settings_file` as it is: to edit when it `exists`, to create when not.
fn media_owner_warning(owner: MediaOwner, settings_file: &Path, exists: bool) -> Option<String> {
    if owner == MediaOwner::External {
        return None;
    }
    let file = settings_file.display();
    Some(if exists {
        format!(
            "media_owner is {owner} in {file}: set `media_owner: external` there before enabling the media units"
        )
    } else {
        format!(
            "media_owner is {owner} (the default: {file} does not exist): create it with `media_owner: external` before enabling the media units"
        )
    })
}

pub fn units(ctx: &Ctx, args: &UnitsArgs) -> Result<Exit, CliError> {
    let config = OperatorConfig::load(&ctx.state)?;
    let settings_file = ctx.state.settings_file();
    if let Some(warning) = media_owner_warning(
        config.settings.media_owner,
        &settings_file,
        settings_file.exists(),
    ) {
        ctx.printer.warn(warning);
    }
    let cli = std::env::current_exe().map_err(|e| {
        CliError::msg(
            format!("cannot tell where livekit-provision is installed: {e}"),
            None,
        )
    })?;
    let units = render(&UnitOptions {
        daemon: cli.with_file_name("livekit-provision-daemon"),
        cli,
        state: ctx.state.root().to_owned(),
        user: args.user.clone(),
        backend: config.settings.backend_command.is_some(),
        tls_front: config.settings.tls.is_some(),
    })
    .map_err(|e| {
        CliError::msg(
            e.to_string(),
            Some(
                "nothing was written; pass --user a plain user name (or leave it out to run as \
                 root), and use a state directory and install paths without control characters, \
                 quotes or backslashes"
                    .to_owned(),
            ),
        )
    })?;
    match &args.out_dir {
        Some(dir) => {
            for unit in &units {
                let path = dir.join(&unit.name);
                livekit_provision::write_atomically(&path, unit.text.as_bytes(), 0o644).map_err(
                    |e| CliError::msg(format!("cannot write {}: {e}", path.display()), None),
                )?;
                ctx.printer.status(format!("wrote {}", path.display()));
            }
        }
        None => {
            for unit in &units {
                ctx.printer.data(format!("# ==> {} <==", unit.name));
                ctx.printer.data(&unit.text);
            }
        }
    }
    Ok(Exit::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The warning names provision.yaml as it is: edit it when it exists, create it when not
    /// (issue 25: it cited a file that did not exist); none when the media are external.
    #[test]
    fn the_media_owner_warning_follows_the_settings_file() {
        let file = Path::new("/s/provision.yaml");
        let table: [(MediaOwner, bool, Option<&str>); 3] = [
            (
                MediaOwner::Daemon,
                true,
                Some(
                    "media_owner is daemon in /s/provision.yaml: set `media_owner: external` there",
                ),
            ),
            (
                MediaOwner::Daemon,
                false,
                Some(
                    "media_owner is daemon (the default: /s/provision.yaml does not exist): create it with `media_owner: external`",
                ),
            ),
            (MediaOwner::External, false, None),
        ];
        for (owner, exists, says) in table {
            let warning = media_owner_warning(owner, file, exists);
            match says {
                Some(says) => {
                    let warning = warning.unwrap();
                    assert!(warning.starts_with(says), "{owner} {exists}: {warning}");
                }
                None => assert_eq!(warning, None),
            }
        }
    }
}
