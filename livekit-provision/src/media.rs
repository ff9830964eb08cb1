//! What the media processes are for a state directory: livekit-server always (once provisioned),
//! lk-backend when `backend_command` is set. Shared by the CLI and the daemon so both start the
//! same processes with the same environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::paths::StateDir;
use crate::settings::Settings;
use crate::supervise::{EnvValue, ProcessSpec};
use crate::triple::DiskTriple;

/// Why the media cannot be started (yet).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The three files are missing or disagree: livekit-server would reject tokens or not start.
    #[error("{} is not provisioned: the config files are missing or disagree", state.display())]
    NotProvisioned {
        /// The state directory.
        state: PathBuf,
    },
    /// No livekit-server binary at the expected path.
    #[error("livekit-server is not installed at {}", path.display())]
    BinaryMissing {
        /// Where it was looked for.
        path: PathBuf,
    },
}

impl MediaError {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Self::NotProvisioned { .. } => "run `livekit-provision ensure` first".to_owned(),
            Self::BinaryMissing { .. } => "pin a version (`livekit-provision secrets set LIVEKIT_VERSION v1.7.2`) and run `livekit-provision ensure`, or set livekit_bin in provision.yaml".to_owned(),
        })
    }
}

/// The livekit-server executable for `state`: `override_bin`, else `livekit_bin` of
/// `provision.yaml`, else the installed `bin/livekit-server`.
pub fn livekit_program(
    state: &StateDir,
    settings: &Settings,
    override_bin: Option<&Path>,
) -> PathBuf {
    override_bin
        .map(Path::to_path_buf)
        .or_else(|| settings.livekit_bin.clone())
        .unwrap_or_else(|| state.livekit_bin())
}

/// The media processes of `state`, in start order (livekit-server first: lk-backend needs it).
/// Fails unless the config files exist and agree — lk-backend is only started after them.
pub fn media_specs(
    state: &StateDir,
    settings: &Settings,
    override_bin: Option<&Path>,
    disk: &DiskTriple,
) -> Result<Vec<ProcessSpec>, MediaError> {
    if disk.consistent_credentials().is_none() {
        return Err(MediaError::NotProvisioned {
            state: state.root().to_owned(),
        });
    }
    let program = livekit_program(state, settings, override_bin);
    if !program.exists() {
        return Err(MediaError::BinaryMissing { path: program });
    }
    let mut specs = vec![ProcessSpec::livekit_server(state, program, settings.port)];
    if let (Some(command), Some(env)) = (&settings.backend_command, disk.backend_env.valid()) {
        let mut vars = BTreeMap::new();
        // Every variable of backend.env, secret ones as secrets; unknown ones are treated as secret.
        for (name, value) in &env.other {
            vars.insert(
                name.clone(),
                EnvValue::Secret(crate::Secret::new(value.clone())),
            );
        }
        if let Some(key) = &env.api_key {
            vars.insert(
                "LIVEKIT_API_KEY".to_owned(),
                EnvValue::Plain(key.to_string()),
            );
        }
        if let Some(secret) = &env.api_secret {
            vars.insert(
                "LIVEKIT_API_SECRET".to_owned(),
                EnvValue::Secret(secret.clone()),
            );
        }
        if let Some(url) = &env.livekit_url {
            vars.insert("LIVEKIT_URL".to_owned(), EnvValue::Plain(url.clone()));
        }
        if let Some(port) = env.port {
            vars.insert("PORT".to_owned(), EnvValue::Plain(port.to_string()));
        }
        if let Some(path) = &env.sqlite_path {
            vars.insert(
                "SQLITE_PATH".to_owned(),
                EnvValue::Plain(path.display().to_string()),
            );
        }
        specs.push(ProcessSpec::lk_backend(
            command.clone(),
            vars,
            settings.backend_port,
        ));
    }
    Ok(specs)
}
