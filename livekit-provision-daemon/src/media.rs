//! What the media processes are for a state directory: livekit-server always (once provisioned),
//! lk-backend when `backend_command` is set. Shared by the CLI and the daemon so both start the
//! same processes with the same environment.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use crate::supervise::spawn::exec_in_place;
use crate::supervise::{
    Ensured, EnvValue, LIVEKIT_SERVER, LK_BACKEND, PidFileState, PortOwner, ProcessSpec,
    SuperviseError, Supervisor, adopt, foreign_listener, inspect, listening_on,
    runs_another_binary,
};
use livekit_provision::BackendEnv;
use livekit_provision::BinarySource;
use livekit_provision::ConfigError;
use livekit_provision::LivekitVersion;
use livekit_provision::NodeSnapshot;
use livekit_provision::StateDir;
use livekit_provision::secret::Secret;
use livekit_provision::settings::{MediaOwner, Settings};

/// Why the media cannot be started (yet), or were not touched.
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
        /// Why that path: `--livekit-bin`, `livekit_bin` of `provision.yaml`, or the install.
        chosen_by: BinarySource,
        /// The version `runtime.json` pins (`None`: none pinned, or no valid `runtime.json`).
        pinned: Option<LivekitVersion>,
    },
    /// `media_owner: external`: only the outside supervisor starts, stops or restarts them.
    #[error(
        "the media are owned by an outside supervisor (media_owner: external in provision.yaml)"
    )]
    ExternallyOwned,
    /// `exec` while `media_owner` is `daemon`: the daemon would start it a second time.
    #[error("{name} is owned by the daemon (media_owner: {owner}), not by an outside supervisor")]
    DaemonOwned {
        /// The process asked for.
        name: String,
        /// The owner `provision.yaml` names.
        owner: MediaOwner,
        /// `provision.yaml`.
        settings_file: PathBuf,
    },
    /// lk-backend asked for while `backend_command` is not set.
    #[error("{name} is not configured: provision.yaml sets no backend_command")]
    NotConfigured {
        /// The process asked for.
        name: String,
    },
    /// `exec` of a process that already runs (its pid file names a live process).
    #[error("{name} is already running (pid {pid})")]
    AlreadyRunning {
        /// The process.
        name: String,
        /// Its pid.
        pid: u32,
    },
    /// `exec` while another process listens on the health port.
    #[error("port {} is already in use by {} (pid {})", owner.port, owner.name, owner.pid)]
    PortInUse {
        /// Who listens there.
        owner: PortOwner,
    },
    /// `start` while a process we did not start listens on the port: it is not touched.
    #[error("{}", owner.refusal(name).0)]
    ForeignListener {
        /// The process that was not started.
        name: String,
        /// Who listens there.
        owner: PortOwner,
    },
    /// The record of the operator's stop (`run/media.stopped`) could not be written or
    /// removed: nothing was stopped or started.
    #[error("could not update {}", path.display())]
    StopRecord {
        /// The record.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A control plane holds the state directory's instance lock but serves no socket: it is
    /// embedded in a host service, which serves its methods. Acting beside it would race it.
    #[error("a control plane (pid {pid}) supervises {} without a socket: it is embedded in a host service", state.display())]
    Hosted {
        /// The state directory.
        state: PathBuf,
        /// The host's pid.
        pid: u32,
    },
    /// Participants are in a call: a restart or a stop now would cut them.
    #[error("{} in a call on this node: {}", people(*participants), if *restart { "a restart now would cut them" } else { "stopping livekit-server would end their calls" })]
    Occupied {
        /// How many.
        participants: u32,
        /// A restart (else a stop).
        restart: bool,
    },
    /// livekit-server could not say who is in a call, so a restart or stop might cut calls.
    #[error("could not ask livekit-server who is in a call, so a {} might cut calls: {error}", if *restart { "restart" } else { "stop" })]
    OccupancyUnknown {
        /// Why.
        error: String,
        /// A restart (else a stop).
        restart: bool,
    },
    /// `provision.yaml` or `extra.yaml` could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Starting, inspecting or becoming the process failed.
    #[error(transparent)]
    Supervise(#[from] SuperviseError),
}

impl livekit_provision::Hint for MediaError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            Self::NotProvisioned { .. } => "run `livekit-provision ensure` first".to_owned(),
            Self::BinaryMissing {
                chosen_by, pinned, ..
            } => binary_missing_hint(*chosen_by, pinned.as_ref()),
            Self::ExternallyOwned => "use the supervisor (`systemctl start|stop|restart livekit-server`), or set media_owner: daemon".to_owned(),
            Self::DaemonOwned { settings_file, .. } => format!(
                "set `media_owner: external` in {} (the daemon then never starts or signals the media)",
                settings_file.display()
            ),
            Self::NotConfigured { .. } => {
                "set backend_command in provision.yaml, or do not run lk-backend".to_owned()
            }
            Self::AlreadyRunning { pid, .. } => {
                format!("stop it first (`kill {pid}`); only one supervisor may own it")
            }
            Self::PortInUse { owner } => format!(
                "stop it first (`kill {}`), then start this unit again",
                owner.pid
            ),
            Self::ForeignListener { name, owner } => owner.refusal(name).1,
            Self::StopRecord { .. } => {
                "check that the state directory is writable by this user".to_owned()
            }
            Self::Hosted { .. } => "ask the host through its own RPC (hero_livekit_server: its `livekit.start`, `livekit.stop`, `livekit.status` methods)".to_owned(),
            Self::Occupied { restart: true, .. } => "changes that need a restart apply by themselves when the node is idle (`livekit-provision status` says what waits and when); `restart --force` drains livekit-server first (no new rooms; the calls go on) and restarts it when they end, at the latest after the grace (they then reconnect)".to_owned(),
            Self::Occupied { restart: false, .. } => "wait until the node is idle (`livekit-provision status` lists the rooms), or `stop --force`".to_owned(),
            Self::OccupancyUnknown { restart, .. } => format!(
                "fix what the error says, or `{} --force` to go ahead anyway",
                if *restart { "restart" } else { "stop" }
            ),
            Self::Config(e) => return e.hint(),
            Self::Supervise(e) => return e.hint(),
        })
    }
}

fn people(n: u32) -> String {
    if n == 1 {
        "1 participant is".to_owned()
    } else {
        format!("{n} participants are")
    }
}

/// Refuse a `restart` (or a `stop`) of livekit-server while anyone is in a call on the node,
/// unless `force`: `participants` is what the server said (`Err`: it could not be asked).
pub fn refuse_if_occupied(
    participants: &Result<u32, String>,
    restart: bool,
    force: bool,
) -> Result<(), MediaError> {
    match (participants, force) {
        (Ok(0), _) | (_, true) => Ok(()),
        (Ok(n), false) => Err(MediaError::Occupied {
            participants: *n,
            restart,
        }),
        (Err(error), false) => Err(MediaError::OccupancyUnknown {
            error: error.clone(),
            restart,
        }),
    }
}

/// How many participants are in a call on the node of `state` (asked of its livekit-server,
/// RoomService, at the address `settings` make it answer on, with the keys of `livekit.yaml`).
pub fn participants(
    state: &StateDir,
    settings: &Settings,
    now: std::time::SystemTime,
) -> Result<u32, String> {
    let addr = crate::supervise::probe_address(&settings.bind_addresses, settings.port);
    crate::occupancy::read_occupancy(state, addr, now).map(|o| o.participants)
}

/// The media processes of `state` as `node` has it (its settings, its files, its binary: read
/// now with the CLI's `--livekit-bin` honoured, or left by `ensure`), in start order
/// (livekit-server first: lk-backend needs it): the one list `start` and `exec` work from.
/// Fails unless the config files exist and agree and the binary is there.
pub fn specs(state: &StateDir, node: &NodeSnapshot) -> Result<Vec<ProcessSpec>, MediaError> {
    if node.disk.consistent_credentials().is_none() {
        return Err(MediaError::NotProvisioned {
            state: state.root().to_owned(),
        });
    }
    let program = node.binary.path.clone();
    if !program.exists() {
        return Err(MediaError::BinaryMissing {
            path: program,
            chosen_by: node.binary.source,
            pinned: node
                .disk
                .runtime_json
                .valid()
                .and_then(|r| r.version.clone()),
        });
    }
    Ok(process_specs(
        state,
        &node.config.settings,
        program,
        node.disk.backend_env.valid(),
    ))
}

/// What to do about a missing livekit-server, from where it was looked for and what is pinned.
fn binary_missing_hint(source: BinarySource, pinned: Option<&LivekitVersion>) -> String {
    match (source, pinned) {
        (BinarySource::Flag, _) => {
            "pass `--livekit-bin` the path of a livekit-server executable".to_owned()
        }
        (BinarySource::Settings, _) => {
            "fix livekit_bin in provision.yaml: it must name a livekit-server executable".to_owned()
        }
        (BinarySource::Installed, Some(version)) => format!(
            "livekit-server {version} is pinned but not installed: run `livekit-provision ensure` to install it, or pass `--livekit-bin` a livekit-server you have"
        ),
        (BinarySource::Installed, None) => "pin a version (`livekit-provision secrets set LIVEKIT_VERSION v1.7.2`) and run `livekit-provision ensure`, or set livekit_bin in provision.yaml".to_owned(),
    }
}

/// The names of the media processes `settings` configure: livekit-server, and lk-backend when
/// `backend_command` is set.
pub fn names(settings: &Settings) -> Vec<&'static str> {
    let mut names = vec![LIVEKIT_SERVER];
    if settings.backend_command.is_some() {
        names.push(LK_BACKEND);
    }
    if settings.tls.is_some() {
        names.push(crate::supervise::TLS_FRONT);
    }
    names
}

/// `start`, `stop` and `restart` never act on media an outside supervisor owns.
pub fn refuse_if_external(settings: &Settings) -> Result<(), MediaError> {
    if settings.media_owner == MediaOwner::External {
        return Err(MediaError::ExternallyOwned);
    }
    Ok(())
}

/// Record that the operator stopped the media at `now` (`run/media.stopped`), before anything
/// is signalled: until [`clear_stop`], a control plane (started now or later) leaves them down,
/// and `status` says they were stopped on purpose. The daemon's `stop` and the CLI's both do.
pub fn record_stop(state: &StateDir, now: SystemTime) -> Result<(), MediaError> {
    crate::stop_record::write(state, now).map_err(|source| MediaError::StopRecord {
        path: crate::stop_record::path(state),
        source,
    })
}

/// Forget the operator's stop, before a start (`start`, `restart`, `ensure --start`).
pub fn clear_stop(state: &StateDir) -> Result<(), MediaError> {
    crate::stop_record::clear(state).map_err(|source| MediaError::StopRecord {
        path: crate::stop_record::path(state),
        source,
    })
}

/// Refuse to start or stop the media without a daemon while a control plane embedded in a host
/// supervises `state` (it holds `run/daemon.lock`; no socket answered, so it serves none).
pub fn refuse_if_hosted(state: &StateDir) -> Result<(), MediaError> {
    match livekit_provision::fsio::FileLock::holder(&state.daemon_lock_file()) {
        Some(pid) if pid != std::process::id() => Err(MediaError::Hosted {
            state: state.root().to_owned(),
            pid,
        }),
        _ => Ok(()),
    }
}

/// Start those of `specs` that are down, in order, without a daemon; `on_each` hears what
/// happened to each. Refused, with nothing started from then on, when a process we did not
/// start listens on one's port (it is never touched).
pub fn start_missing(
    state: &StateDir,
    supervisor: &mut Supervisor,
    specs: &[ProcessSpec],
    mut on_each: impl FnMut(&ProcessSpec, &Ensured),
) -> Result<(), MediaError> {
    for spec in specs {
        if let Some(owner) = foreign_listener(state, spec) {
            return Err(MediaError::ForeignListener {
                name: spec.name.clone(),
                owner,
            });
        }
        let outcome = supervisor.ensure_running(spec, Instant::now())?;
        on_each(spec, &outcome);
    }
    Ok(())
}

/// Become media process `name` of `state` for an outside supervisor (`livekit-provision exec`):
/// refused unless `media_owner` is `external`, the files agree, the binary is there, the
/// process is not running and its port is free; then [`exec_in_place`](crate::supervise). Returns
/// only when it was refused or failed.
pub fn exec(
    state: &StateDir,
    name: &str,
    override_bin: Option<&Path>,
    base_env: impl IntoIterator<Item = (OsString, OsString)>,
    now: SystemTime,
) -> MediaError {
    match ready_for_exec(state, name, override_bin) {
        Ok(spec) => exec_in_place(state, &spec, base_env, now).into(),
        Err(refusal) => refusal,
    }
}

/// The spec of `name` when the state is ready for it to start under an outside supervisor.
fn ready_for_exec(
    state: &StateDir,
    name: &str,
    override_bin: Option<&Path>,
) -> Result<ProcessSpec, MediaError> {
    let node = NodeSnapshot::read(state, override_bin)?;
    let owner = node.config.settings.media_owner;
    if owner != MediaOwner::External {
        return Err(MediaError::DaemonOwned {
            name: name.to_owned(),
            owner,
            settings_file: state.settings_file(),
        });
    }
    let spec = specs(state, &node)?
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| MediaError::NotConfigured {
            name: name.to_owned(),
        })?;
    if let PidFileState::Live(process) = inspect(state, name)? {
        return Err(MediaError::AlreadyRunning {
            name: name.to_owned(),
            pid: process.pid(),
        });
    }
    if let Some(owner) = spec.health.and_then(|a| listening_on(a.port())) {
        return Err(MediaError::PortInUse { owner });
    }
    Ok(spec)
}

/// The pid of the livekit-server of `state` when one runs (its pid file names a live
/// process of that name).
pub fn livekit_server_pid(state: &StateDir) -> Option<u32> {
    adopt(state, LIVEKIT_SERVER)
        .ok()
        .flatten()
        .map(|process| process.pid())
}

/// The pid of the livekit-server of `state` when it runs another binary than the one now
/// installed (an upgrade left a restart pending); `None` when it runs the current one or none.
pub fn restart_pending(state: &StateDir) -> Option<u32> {
    let process = adopt(state, LIVEKIT_SERVER).ok().flatten()?;
    runs_another_binary(process.pid(), &state.livekit_bin()).then(|| process.pid())
}

/// The media processes to run with `program` as livekit-server: livekit-server, and lk-backend
/// when `backend_command` is set, with `backend.env`'s variables in its environment.
pub(crate) fn process_specs(
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
    if let Some(tls) = &settings.tls {
        // This very binary serves the front (`front::main_if_requested`).
        let program = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        specs.push(ProcessSpec::tls_front(state, program, tls.port));
    }
    specs
}

/// lk-backend's environment: every variable of `backend.env`. Only the key, URL, port and
/// database path are plain; the secret and any variable we do not know stay [`EnvValue::Secret`].
pub(crate) fn backend_environment(file: &BackendEnv) -> BTreeMap<String, EnvValue> {
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    /// The hint of a missing livekit-server follows the state: where it was looked for, and
    /// whether a version is pinned (never "pin a version" when one is).
    #[test]
    fn a_missing_binary_hint_follows_the_state() {
        let v: LivekitVersion = "1.7.2".parse().unwrap();
        let table: [(BinarySource, Option<&LivekitVersion>, &str, &str); 4] = [
            (BinarySource::Installed, None, "pin a version", "is pinned"),
            (
                BinarySource::Installed,
                Some(&v),
                "livekit-server 1.7.2 is pinned but not installed: run `livekit-provision ensure`",
                "pin a version",
            ),
            (
                BinarySource::Flag,
                Some(&v),
                "--livekit-bin",
                "pin a version",
            ),
            (
                BinarySource::Settings,
                None,
                "fix livekit_bin",
                "pin a version",
            ),
        ];
        for (source, pinned, says, never) in table {
            let hint = binary_missing_hint(source, pinned);
            assert!(hint.contains(says), "{source:?} {pinned:?}: {hint}");
            assert!(!hint.contains(never), "{source:?} {pinned:?}: {hint}");
        }
    }

    #[test]
    fn the_health_probe_follows_bind_addresses() {
        let probe = |yaml: &str| {
            let settings = Settings::from_yaml(yaml).unwrap();
            let program = PathBuf::from("/opt/livekit-server");
            let specs = process_specs(&StateDir::new("/s"), &settings, program, None);
            specs[0].health.unwrap()
        };
        let at = |text: &str| text.parse::<SocketAddr>().unwrap();
        assert_eq!(probe(""), at("127.0.0.1:7880"));
        assert_eq!(
            probe("bind_addresses: [\"10.1.2.3\"]\n"),
            at("10.1.2.3:7880")
        );
        assert_eq!(
            probe("port: 9000\nbind_addresses: [\"10.1.2.3\", \"::\"]\n"),
            at("[::1]:9000")
        );
    }
}
