//! What the media processes are for a state directory: livekit-server always (once provisioned),
//! lk-backend when `backend_command` is set. Shared by the CLI and the daemon so both start the
//! same processes with the same environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::binary::LivekitBinary;
use crate::paths::StateDir;
use crate::render::BackendEnv;
use crate::secret::Secret;
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
    let program = LivekitBinary::choose(state, settings, override_bin).path;
    if !program.exists() {
        return Err(MediaError::BinaryMissing { path: program });
    }
    Ok(process_specs(
        state,
        settings,
        program,
        disk.backend_env.valid(),
    ))
}

/// The media processes to run with `program` as livekit-server: livekit-server, and lk-backend
/// when `backend_command` is set, with `backend.env`'s variables in its environment.
pub fn process_specs(
    state: &StateDir,
    settings: &Settings,
    program: PathBuf,
    backend_env: Option<&BackendEnv>,
) -> Vec<ProcessSpec> {
    let health = crate::supervise::probe_address(&settings.bind_addresses, settings.port);
    let mut specs = vec![ProcessSpec::livekit_server(state, program, health)];
    if let Some(command) = &settings.backend_command {
        let env = backend_env.map(backend_environment).unwrap_or_default();
        specs.push(ProcessSpec::lk_backend(
            command.clone(),
            env,
            settings.backend_port,
            settings.backend_probe.clone(),
        ));
    }
    specs
}

/// lk-backend's environment: every variable of `backend.env`. Only the key, URL, port and
/// database path are plain; the secret and any variable we do not know stay [`EnvValue::Secret`].
pub fn backend_environment(file: &BackendEnv) -> BTreeMap<String, EnvValue> {
    let mut vars: BTreeMap<String, EnvValue> = file
        .other
        .iter()
        .map(|(name, value)| (name.clone(), EnvValue::Secret(Secret::new(value.clone()))))
        .collect();
    if let Some(key) = &file.api_key {
        vars.insert(
            "LIVEKIT_API_KEY".to_owned(),
            EnvValue::Plain(key.to_string()),
        );
    }
    if let Some(secret) = &file.api_secret {
        vars.insert(
            "LIVEKIT_API_SECRET".to_owned(),
            EnvValue::Secret(secret.clone()),
        );
    }
    if let Some(url) = &file.livekit_url {
        vars.insert("LIVEKIT_URL".to_owned(), EnvValue::Plain(url.clone()));
    }
    if let Some(port) = file.port {
        vars.insert("PORT".to_owned(), EnvValue::Plain(port.to_string()));
    }
    if let Some(path) = &file.sqlite_path {
        vars.insert(
            "SQLITE_PATH".to_owned(),
            EnvValue::Plain(path.display().to_string()),
        );
    }
    vars
}
