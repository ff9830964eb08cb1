//! What a media process is: its program, arguments, environment and how to tell it is up.
//! A leaf: the start (`spawn.rs`), the start record (`started.rs`) and the supervisor read it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use livekit_provision::secret::Secret;
use livekit_provision::settings::HealthProbe;
use livekit_provision::{ManagedFile, StateDir};

/// The supervised name of livekit-server (its pid file is `run/livekit-server.pid`).
pub const LIVEKIT_SERVER: &str = "livekit-server";

/// The supervised name of lk-backend.
pub const LK_BACKEND: &str = "lk-backend";

/// The supervised name of the TLS front (`tls:` in provision.yaml; see `crate::front`).
pub const TLS_FRONT: &str = "tls-front";

/// Every media process, in stop order (the front, then lk-backend, then livekit-server).
pub const MEDIA: [&str; 3] = [TLS_FRONT, LK_BACKEND, LIVEKIT_SERVER];

/// How long a fresh start may take to answer its health probe.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(20);

/// The value of an environment variable given to a media process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// Not secret.
    Plain(String),
    /// Secret: only ever placed in the environment, never in arguments or messages.
    Secret(Secret),
}

impl EnvValue {
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Self::Plain(s) => s.as_bytes(),
            Self::Secret(s) => s.expose().as_bytes(),
        }
    }
}

/// What to run, and how to tell that it is up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// Supervised name: pid file `run/<name>.pid`, log `logs/<name>.log`.
    pub name: String,
    /// The executable. A name without `/` is looked up in the `PATH` of the environment given.
    pub program: PathBuf,
    /// Arguments after `argv[0]`. Never secrets.
    pub args: Vec<OsString>,
    /// Variables added to the cleaned environment (they win over the base environment).
    pub env: BTreeMap<String, EnvValue>,
    /// Where `GET /` answers 200 once it is ready; `None` means "running is ready".
    pub health: Option<SocketAddr>,
    /// How `health` is probed (default: `GET /` answers 200).
    pub probe: HealthProbe,
    /// How long a start may take to become ready.
    pub start_timeout: Duration,
}

impl ProcessSpec {
    /// livekit-server: `<program> --config <state>/livekit.yaml`, probed on `health` (see
    /// `health::probe_address`).
    pub fn livekit_server(state: &StateDir, program: PathBuf, health: SocketAddr) -> Self {
        Self {
            name: LIVEKIT_SERVER.to_owned(),
            program,
            args: vec![
                OsString::from("--config"),
                state.managed(ManagedFile::LivekitYaml).into_os_string(),
            ],
            env: BTreeMap::new(),
            health: Some(health),
            probe: HealthProbe::default(),
            start_timeout: DEFAULT_START_TIMEOUT,
        }
    }

    /// lk-backend: `<program>` with `backend.env`'s variables in its environment, probed on
    /// `127.0.0.1:<port>` as `probe` says.
    pub fn lk_backend(
        program: PathBuf,
        env: BTreeMap<String, EnvValue>,
        port: u16,
        probe: HealthProbe,
    ) -> Self {
        Self {
            name: LK_BACKEND.to_owned(),
            program,
            args: Vec::new(),
            env,
            health: Some(SocketAddr::from(([127, 0, 0, 1], port))),
            probe,
            start_timeout: DEFAULT_START_TIMEOUT,
        }
    }

    /// The TLS front: `program` (a binary with `crate::front::main_if_requested` first in its
    /// `main`) re-executed with `crate::front::args`, ready once `tls.port` accepts.
    pub fn tls_front(state: &StateDir, program: PathBuf, port: u16) -> Self {
        Self {
            name: TLS_FRONT.to_owned(),
            program,
            args: crate::front::args(state),
            env: BTreeMap::new(),
            health: Some(SocketAddr::from(([127, 0, 0, 1], port))),
            probe: HealthProbe::Tcp,
            start_timeout: DEFAULT_START_TIMEOUT,
        }
    }
}
