//! The control plane of livekit-provision (docs/DESIGN.md "Daemon", invariants 5 and 6): serve a
//! JSON-RPC socket at once, provision in the background forever, start the media when they are
//! down, never disturb them when they are up. Over the pure core (`livekit-provision`: secrets,
//! settings, rendering, publish, check, fetch, tokens) it adds what a host embeds: media
//! supervision ([`supervise`], [`media`]), the control loop and the RPC methods ([`protocol`]).
//!
//! # Shape
//! The binary takes the instance lock ([`lock_instance`]), binds the socket ([`bind`]), wires
//! signals and calls [`run`]; everything else is here. [`run`] is one loop that `select!`s over
//! the shutdown future, a closed [`Command`] channel (SIGHUP → [`Command::Reload`]), new
//! connections, internal events (a provisioning run finished, a media process exited, an
//! `ensure` call) and the provisioning timer. Blocking work (`ensure`, `check`, the supervisor)
//! runs on tokio's blocking pool, so **the socket answers while provisioning is stalled**.
//!
//! # Embedding in a host with its own RPC server (Hero)
//! A host such as hero_livekit_server has its own runtime, its own OpenRPC server on its own
//! socket and its own secret store. It runs the control plane without our socket: a
//! [`ControlPlane`] (a cloneable handle) and its [`ControlLoop`] (spawned on the host's
//! runtime; it holds the instance lock until it returns). The host mounts our methods under a
//! prefix of its own: it strips the prefix and hands the rest to [`ControlPlane::call`], which
//! answers through the socket's own dispatcher (same names, results and errors), and answers
//! `<prefix>rpc.discover` with [`ControlPlane::discover`]. `examples/hero_host.rs` is such a
//! host, tested.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use livekit_provision::StateDir;
//! use livekit_provision::store::SecretStore;
//! use livekit_provision_daemon::protocol::METHOD_NOT_FOUND;
//! use livekit_provision_daemon::{ControlPlane, DaemonConfig, RpcError};
//! use serde_json::Value;
//!
//! # async fn host(store: Arc<dyn SecretStore>) -> Result<(), Box<dyn std::error::Error>> {
//! let state = StateDir::hero_location(|k| std::env::var_os(k)).ok_or("HOME is not set")?;
//! let config = DaemonConfig::new(state, store) // the gate: nothing until LIVEKIT_VERSION is set
//!     .with_media_env(std::env::vars_os()); // what the media see: the host decides
//! let (plane, control) = ControlPlane::new(config)?;
//! tokio::spawn(control.run(async { /* the host's shutdown signal */ }));
//! // In the host's RPC handler, for every method it receives:
//! async fn route(plane: &ControlPlane, method: &str, params: Value) -> Result<Value, RpcError> {
//!     match method.strip_prefix("livekit.") {
//!         Some("rpc.discover") => serde_json::to_value(plane.discover("livekit."))
//!             .map_err(|e| RpcError::server(e.to_string(), None)),
//!         Some(ours) => plane.call(ours, params).await,
//!         // … the host's own methods, then:
//!         None => Err(RpcError::new(METHOD_NOT_FOUND, format!("no method {method}"))),
//!     }
//! }
//! # let _ = route(&plane, "livekit.status", Value::Null).await?;
//! # Ok(())
//! # }
//! ```
//!
//! What a host gets from [`DaemonConfig::new`], and how it changes it:
//! - **The seed's gate** ([`Provision::WhenVersionPinned`]): until the store holds
//!   `LIVEKIT_VERSION`, a run mints nothing, writes nothing (the instance lock
//!   `run/daemon.lock` aside), downloads and starts nothing; `status` says `disabled` with a
//!   `disabled_reason` naming `LIVEKIT_VERSION`, and `ensure` answers `-32001`. Asking is one
//!   `get` of the store: a store that cannot be read fails the run (retried), it is never
//!   taken for "unset". `secrets.set LIVEKIT_VERSION …` opens the gate at once.
//!   [`Provision::Always`] is the daemon binary's behaviour (the control-plane files rendered
//!   without a version).
//! - **The media environment**: `PATH` = [`DEFAULT_MEDIA_PATH`] and nothing else; the host
//!   passes what the media should see with [`DaemonConfig::with_media_env`]. The variables that
//!   override livekit's config are removed whatever is passed.
//! - **A durable `stop`**: `run/media.stopped` holds the media down across restarts of the
//!   host (or the daemon) until `start` or `restart`; `status.media.stopped_on_purpose` and
//!   `stopped_since` say so.
//! - **The Hero layout**: [`StateDir::hero_location`](livekit_provision::StateDir::hero_location)
//!   is `~/hero/var/hero_livekit`, where the three files have always been.
//!
//! # Embedding with our socket
//! A host service can also run the loop with our socket in its own runtime: it builds a
//! [`DaemonConfig`] from its own store ([`StoreSource::Shared`], any `Arc<dyn SecretStore>`;
//! the binary's `--secrets` spec is [`StoreSource::Spec`]), takes the lock, binds, and passes
//! its own shutdown future to [`run`]. `examples/embed.rs` is such a host (`cargo run -p
//! livekit-provision-daemon --example embed`).
//!
//! [`run`] takes the socket (bind it first: the control plane answers before it provisions), a
//! [`DaemonConfig`] built from the host's store (an `Arc<dyn SecretStore>`, or a `StoreSpec`), a
//! command channel and the host's shutdown future. It returns when the future completes; the
//! media it started keep running.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use livekit_provision::StateDir;
//! use livekit_provision::store::{FileStore, SecretStore};
//! use livekit_provision_daemon::{self as daemon, DaemonConfig};
//!
//! # async fn host() -> Result<(), Box<dyn std::error::Error>> {
//! let state = StateDir::new("/var/lib/livekit-provision");
//! // The host's own store: any `SecretStore` implementation (examples/embed.rs has one).
//! let store: Arc<dyn SecretStore> = Arc::new(FileStore::new("/etc/host/secrets.json"));
//! let _instance = daemon::lock_instance(&state)?; // one daemon per state directory
//! let listener = daemon::bind(&state)?;
//! let (commands, receiver) = daemon::command_channel(); // `Command::Reload` provisions now
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let config = DaemonConfig::new(state, store);
//! let serving = tokio::spawn(daemon::run(listener, config, receiver, async {
//!     let _ = stopped.await;
//! }));
//! // … the host runs; at its shutdown:
//! let _ = stop.send(());
//! serving.await??;
//! # drop(commands);
//! # Ok(())
//! # }
//! ```
//!
//! # Methods (JSON-RPC 2.0, one object per line)
//! Every method's parameters and result are serde types in [`protocol`], which the server
//! (`connection.rs`), the client ([`client::request`]) and the CLI share; `rpc.rs` is the framing.
//! The CLI's `--json` of the same operation prints the same type, built by the same function
//! when it acts without a daemon (e.g. [`TokenCreateResult::mint`](protocol::TokenCreateResult::mint)).
//! - `status` → [`StatusResult`]: `{daemon, state_dir, pid, now, provisioning: {state, runs,
//!   consecutive_failures, last_error, hint, last_run_at, last_success_at, next_run,
//!   next_retry, next_retry_in_ms}, version: {pinned, installed}, media: {busy, processes:
//!   [{name, pid, running, healthy, restart_pending, failed, error}]}}`; `state` is `idle`,
//!   `running`, `ready`, `failed` or `disabled` (no `LIVEKIT_VERSION`: with the daemon binary,
//!   control plane only, files still rendered; with a host's default gate, nothing provisioned;
//!   `provisioning.disabled_reason` says which). `media.stopped_on_purpose` and
//!   `media.stopped_since` say the media were stopped by `stop` and stay down. The CLI's
//!   `status` prints the same shape without a daemon
//!   ([`status_without_daemon`]: `daemon: false`, state `no_daemon`).
//! - `ensure` → runs provisioning now (after the run in flight, if any) and returns the
//!   [`EnsureReport`](livekit_provision::EnsureReport).
//! - `check` → the [`CheckReport`](livekit_provision::CheckReport).
//! - `health` → `{config, in_memory, on_disk, in_sync}`: SHA-256 of the `livekit.yaml` bytes
//!   the daemon last published or started the media with, and of the bytes at the fixed path now.
//! - `start` → `{processes}`; `stop {grace_secs?}`, `restart {grace_secs?}` → `{stopped: {name:
//!   outcome}, processes}`: drive the supervisor. `stop` keeps the media down (runs no longer
//!   start them) until `start` or `restart`, across restarts of the control plane
//!   (`run/media.stopped`).
//! - `token.create {identity, room?, ttl?, name?, metadata?, grants?, admin?}` → `{token,
//!   api_key, identity, expires_at}`; `ttl` is a humantime string (`"6h"`) or seconds; signed
//!   with the credentials the three files agree on.
//! - `secrets.list`, `secrets.set {name, value}`, `secrets.rotate {grace?}`, `install {version?,
//!   force?, sha256?}`, `rollback`, `render`, `logs.tail {name, lines?}`: what an admin UI needs
//!   (`methods/`); secret values are never echoed.
//!
//! After a provisioning run, the media step starts from the run's
//! [`NodeSnapshot`](livekit_provision::NodeSnapshot) (settings, files, binary), read once.
//! - `rpc.discover` → the OpenRPC document of all of these ([`openrpc`]).
//!
//! While a run (or `install`) is in flight, `status.provisioning.progress` says its phase and,
//! during a download, the bytes received.
//!
//! Errors are `{code, message, data: {hint}}` ([`RpcError`]); `message` is the error and its
//! causes on one line ([`ErrorReport`](livekit_provision::ErrorReport)).
//!
//! # Background provisioning and its cadence
//! A run is `ensure` (which installs the pinned binary when `LIVEKIT_VERSION` is set), then,
//! with a version pinned or `livekit_bin` set, `ensure_running` of the media. A run fails when
//! `ensure` fails (store unreachable, bad config…), when the binary could not be installed
//! (offline, GitHub down, rate limited, bad checksum), or when a media process does not come up.
//! The daemon then keeps serving, logs a warning with the reason, and retries after
//! **5 s, 10 s, 20 s, 40 s … capped at 5 min, each ±20 % jitter** ([`RetryPolicy`]); `status`
//! shows the reason and `next_retry`. A converged node re-checks every **5 min** (a no-op
//! `ensure`). SIGHUP (or `ensure`) runs at once. A media crash is restarted with the supervisor's
//! own backoff (1 s, 2 s, … 60 s) and marked failed after 5 crashes in 10 min; `start` clears it.
//!
//! # Never disturb the media
//! A run starts a process only if it is down. When a newer binary is installed while the media
//! runs the old one (its `/proc/<pid>/exe` is not the installed file), `status` shows
//! `restart_pending` instead of restarting. SIGTERM/SIGINT end [`run`] and leave the media
//! running (they are detached: own session, not our descendants); a restarted daemon adopts them
//! from their pid files. Only `stop` and `restart` stop them.
//!
//! # systemd
//! `contrib/systemd/livekit-provision-daemon.service` runs the daemon with `Restart=always` and
//! **`KillMode=process`**: the media live in the daemon's cgroup (double fork does not leave a
//! cgroup), and the default `KillMode=control-group` would kill every call whenever the daemon is
//! restarted or stopped. With `process`, systemd signals only the daemon.

#![deny(missing_docs)]
// Every type the API hands out can be named by its user (checked without the `testing` feature).
#![warn(unnameable_types)]

/// Declares internal modules: `mod m;` (or `pub(crate) mod m;`) as written, or `pub mod m;`
/// hidden from the docs with the `testing` feature, for this workspace's integration tests,
/// benches and stand-ins, which drive the mechanisms directly. A host never needs them.
macro_rules! internal {
    ($($(#[$attr:meta])* $vis:vis mod $name:ident;)*) => {$(
        $(#[$attr])*
        #[cfg(feature = "testing")]
        #[doc(hidden)]
        pub mod $name;
        $(#[$attr])*
        #[cfg(not(feature = "testing"))]
        $vis mod $name;
    )*};
}

mod apply;
pub mod client;
mod connection;
mod controller;
pub mod front;
mod gate;
mod heal;
mod keeper;
pub mod media;
mod methods;
mod occupancy;
pub mod openrpc;
mod plane;
pub mod protocol;
mod retry;
pub mod rooms;
mod rpc;
mod shared;
mod socket;
mod status;
mod stop_record;
pub mod supervise;

use std::ffi::OsString;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::sync::mpsc;

pub use client::{ClientError, call, call_with_timeout, request};
pub use gate::Provision;
use livekit_provision::backoff::unit_random;
pub use plane::{ControlLoop, ControlPlane};
pub use protocol::{ProvisionState, RpcError, StatusResult};
pub use retry::RetryPolicy;
pub use socket::{InstanceLock, bind, lock_instance};
pub use status::{media_processes, status_without_daemon};
pub use supervise::{
    Ensured, MediaProcess, ProcessSpec, ProcessStatus, SuperviseError, Supervisor,
};

use crate::supervise::RestartPolicy;
use livekit_provision::BinaryOptions;
use livekit_provision::StateDir;
use livekit_provision::store::{SecretStore, StoreError, StoreSpec};

/// Where the daemon's secrets live: a store the host built, or a spec the daemon opens.
///
/// An embedding service passes its own store (`Arc<dyn SecretStore>`, any implementation of
/// [`SecretStore`]); the daemon binary passes the `--secrets` spec. Both convert with `into()`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StoreSource {
    /// A store the host owns and shares with the daemon (e.g. one backed by its process
    /// manager). Used as is by every run and method.
    Shared(Arc<dyn SecretStore>),
    /// A store spec (`file:…`, `exec:…`, `redis://…`), opened afresh by every run and method
    /// (so a store that was down is retried with a new connection).
    Spec(Box<StoreSpec>),
}

impl StoreSource {
    /// The store to use now.
    pub fn open(&self) -> Result<Arc<dyn SecretStore>, StoreError> {
        match self {
            Self::Shared(store) => Ok(Arc::clone(store)),
            Self::Spec(spec) => spec.open().map(Arc::from),
        }
    }

    /// What the store is, for messages (credentials redacted).
    pub fn describe(&self) -> String {
        match self {
            Self::Shared(store) => store.describe(),
            Self::Spec(spec) => spec.to_string(),
        }
    }
}

impl From<StoreSpec> for StoreSource {
    fn from(spec: StoreSpec) -> Self {
        Self::Spec(Box::new(spec))
    }
}

impl From<Arc<dyn SecretStore>> for StoreSource {
    fn from(store: Arc<dyn SecretStore>) -> Self {
        Self::Shared(store)
    }
}

/// The `PATH` the media get when the host passes no environment of its own: systemd's default
/// for services. [`DaemonConfig::new`] gives the media this variable and nothing else.
pub const DEFAULT_MEDIA_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the daemon needs. Build it with [`DaemonConfig::new`] and adjust the fields.
///
/// Its `Debug` shows the media environment by variable names only.
#[derive(Clone)]
pub struct DaemonConfig {
    /// The state directory.
    pub state: StateDir,
    /// The secret store: the host's own, or a spec opened by every run.
    pub store: StoreSource,
    /// When runs provision: [`Provision::WhenVersionPinned`] from [`DaemonConfig::new`] (the
    /// seed's gate: nothing until the store holds `LIVEKIT_VERSION`); the daemon binary sets
    /// [`Provision::Always`].
    pub provision: Provision,
    /// Release URL and `livekit_bin` overrides, `GITHUB_TOKEN`, platform.
    pub binary: BinaryOptions,
    /// The environment the media start from: from [`DaemonConfig::new`], `PATH` =
    /// [`DEFAULT_MEDIA_PATH`] and nothing else; set it with
    /// [`with_media_env`](DaemonConfig::with_media_env) (the daemon binary passes its own
    /// environment). Variables that override livekit's config (`LIVEKIT_*`, `NODE_IP`,
    /// `UDP_PORT`, `REDIS_*`) are removed by the supervisor whatever is given.
    pub media_env: Vec<(OsString, OsString)>,
    /// Background provisioning cadence.
    pub retry: RetryPolicy,
    /// Media crash restarts.
    pub restart: RestartPolicy,
    /// The grace of `stop`/`restart` when the call gives none.
    pub stop_grace: Duration,
    /// The wall clock (tokens, rotation grace, reported times, pid files).
    pub clock: livekit_provision::clock::Clock,
    /// A random draw in `0.0..1.0` for the retry jitter.
    pub random: fn() -> f64,
    /// This machine's interface addresses (for ensure's NAT warning).
    pub local_addresses: fn() -> Vec<IpAddr>,
}

impl DaemonConfig {
    /// Defaults for `state` and `store` (an `Arc<dyn SecretStore>` or a [`StoreSpec`]): what a
    /// host gets. The seed's gate ([`Provision::WhenVersionPinned`]: nothing is minted, written,
    /// downloaded or started until the store holds `LIVEKIT_VERSION`), a media environment of
    /// `PATH` = [`DEFAULT_MEDIA_PATH`] only (no variable of this process reaches the media
    /// unless passed with [`with_media_env`](DaemonConfig::with_media_env)), the documented
    /// cadence, the real clock.
    pub fn new(state: StateDir, store: impl Into<StoreSource>) -> Self {
        Self {
            state,
            store: store.into(),
            provision: Provision::WhenVersionPinned,
            binary: BinaryOptions::default(),
            media_env: vec![(OsString::from("PATH"), OsString::from(DEFAULT_MEDIA_PATH))],
            retry: RetryPolicy::default(),
            restart: RestartPolicy::default(),
            stop_grace: Duration::from_secs(30),
            clock: livekit_provision::clock::system,
            random: unit_random,
            local_addresses: livekit_provision::local_addresses,
        }
    }

    /// The media start from `env` (e.g. `std::env::vars_os()`, or the few variables the host
    /// chooses), with `PATH` = [`DEFAULT_MEDIA_PATH`] added when `env` has none (a program
    /// named without `/`, such as `backend_command: lk-backend`, is looked up in it). Variables
    /// that override livekit's config are removed by the supervisor.
    #[must_use]
    pub fn with_media_env(mut self, env: impl IntoIterator<Item = (OsString, OsString)>) -> Self {
        self.media_env = env.into_iter().collect();
        if !self.media_env.iter().any(|(name, _)| name == "PATH") {
            self.media_env
                .push((OsString::from("PATH"), OsString::from(DEFAULT_MEDIA_PATH)));
        }
        self
    }
}

impl std::fmt::Debug for DaemonConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonConfig")
            .field("state", &self.state)
            .field("store", &self.store)
            .field("provision", &self.provision)
            .field("binary", &self.binary)
            .field("media_env", &supervise::spawn::env_names(&self.media_env))
            .field("retry", &self.retry)
            .field("restart", &self.restart)
            .field("stop_grace", &self.stop_grace)
            .finish_non_exhaustive()
    }
}

/// What the embedding program can tell a running daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Run provisioning now (SIGHUP).
    Reload,
    /// Stop serving and return; the media keep running.
    Shutdown,
}

/// A sender of [`Command`]s and the receiver [`run`] takes.
pub fn command_channel() -> (mpsc::Sender<Command>, mpsc::Receiver<Command>) {
    mpsc::channel(8)
}

/// Why the daemon could not start or serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// Another daemon holds the instance lock of this state directory.
    #[error("another livekit-provision-daemon{} holds {}", pid_suffix(*pid), lock.display())]
    AlreadyRunning {
        /// The lock file.
        lock: PathBuf,
        /// The holder's pid, when recorded.
        pid: Option<u32>,
    },
    /// Something answers on the socket: another daemon serves this state directory.
    #[error("another livekit-provision-daemon{} is serving {}", pid_suffix(*pid), socket.display())]
    SocketInUse {
        /// The socket.
        socket: PathBuf,
        /// The pid holding the instance lock, when recorded.
        pid: Option<u32>,
    },
    /// `run/` or the lock file could not be prepared.
    #[error("could not prepare {}", path.display())]
    Prepare {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The socket could not be bound.
    #[error("could not bind the RPC socket {}", socket.display())]
    Bind {
        /// The socket.
        socket: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn pid_suffix(pid: Option<u32>) -> String {
    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

impl livekit_provision::Hint for DaemonError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::AlreadyRunning { pid, .. } | Self::SocketInUse { pid, .. } => Some(match pid {
                Some(pid) => format!(
                    "talk to it with `livekit-provision status`, or stop it (`kill {pid}`) first"
                ),
                None => "talk to it with `livekit-provision status`, or stop it first".to_owned(),
            }),
            Self::Prepare { .. } | Self::Bind { .. } => {
                Some("check that the state directory is writable by this user".to_owned())
            }
        }
    }
}

/// Serve `listener` and provision `config.state` until `shutdown` completes or a
/// [`Command::Shutdown`] arrives. Returns `Ok(())` on shutdown; the media keep running.
///
/// The caller holds the instance lock ([`lock_instance`]) for as long as this runs. A host that
/// serves the methods on its own RPC server uses [`ControlPlane`] instead: the same loop and
/// the same methods, without this socket.
pub async fn run(
    listener: UnixListener,
    config: DaemonConfig,
    commands: mpsc::Receiver<Command>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let (shared, events) = controller::prepare(config);
    controller::run(shared, events, Some(listener), Some(commands), shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DaemonConfig {
        DaemonConfig::new(
            StateDir::new("/nonexistent"),
            StoreSpec::File("/nonexistent/secrets.json".into()),
        )
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    #[test]
    fn a_host_gets_the_gate_and_a_path_only_media_environment() {
        let config = config();
        assert_eq!(config.provision, Provision::WhenVersionPinned);
        assert_eq!(config.media_env, env(&[("PATH", DEFAULT_MEDIA_PATH)]));
        let config = config.with_media_env(env(&[("LANG", "C.UTF-8")]));
        assert_eq!(
            config.media_env,
            env(&[("LANG", "C.UTF-8"), ("PATH", DEFAULT_MEDIA_PATH)]),
            "PATH is added when the host gives none"
        );
        let config = config.with_media_env(env(&[("PATH", "/opt/bin")]));
        assert_eq!(config.media_env, env(&[("PATH", "/opt/bin")]));
    }

    #[test]
    fn the_media_environment_is_debugged_by_names_only() {
        let config = config().with_media_env(env(&[("GITHUB_TOKEN", "ghp_do_not_show")]));
        let shown = format!("{config:?}");
        assert!(shown.contains("GITHUB_TOKEN"), "{shown}");
        assert!(!shown.contains("ghp_do_not_show"), "{shown}");
        let supervisor = Supervisor::new(
            config.state.clone(),
            config.media_env.clone(),
            RestartPolicy::default(),
        );
        let shown = format!("{supervisor:?}");
        assert!(shown.contains("GITHUB_TOKEN"), "{shown}");
        assert!(!shown.contains("ghp_do_not_show"), "{shown}");
    }
}
