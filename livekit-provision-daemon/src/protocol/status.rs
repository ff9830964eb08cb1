//! `status` and `health`: where provisioning stands, the versions, the media.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use livekit_provision::settings::MediaOwner;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Phase;
use crate::supervise::{PortOwner, ProcessStatus};

/// Where background provisioning stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProvisionState {
    /// No run has started yet.
    Idle,
    /// A run is in progress.
    Running,
    /// The last run converged: files, binary and media are in place.
    Ready,
    /// The last run failed; a retry is scheduled (`next_retry`).
    Failed,
    /// No `LIVEKIT_VERSION`: with the daemon binary, control plane only (the files are
    /// rendered, no media start); with a host's default gate, nothing at all is provisioned.
    /// `disabled_reason` says which, and `hint` how to turn it on.
    Disabled,
    /// No daemon serves the state directory (the CLI's `status` says so): nothing provisions
    /// in the background; `livekit-provision ensure` does it by hand.
    NoDaemon,
}

impl fmt::Display for ProvisionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Idle => "idle",
            Self::Running => "running",
            Self::Ready => "ready",
            Self::Failed => "failed",
            Self::Disabled => "disabled",
            Self::NoDaemon => "no daemon",
        })
    }
}

/// The result of `status`, and the `--json` output of `livekit-provision status` whether or
/// not a daemon runs (one shape: without a daemon, `daemon` is false, `pid` is `null` and the
/// provisioning state is `no_daemon`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StatusResult {
    /// Whether a daemon answered.
    pub daemon: bool,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The daemon's pid; `null` without a daemon.
    pub pid: Option<u32>,
    /// When this status was taken (RFC 3339).
    pub now: String,
    /// Background provisioning.
    pub provisioning: ProvisioningReport,
    /// The pinned and the installed livekit-server version.
    pub version: VersionReport,
    /// The media processes.
    pub media: MediaReport,
    /// Who is in a call on this node: its rooms and participants, asked of livekit-server
    /// (RoomService, also without a daemon); `null` when livekit-server does not run.
    pub occupancy: Option<OccupancyReport>,
    /// Changes waiting for livekit-server to restart, and when they apply (`changes:` of
    /// `provision.yaml`; without a daemon: what waits, and that only `restart` applies it).
    pub changes: Option<ChangesReport>,
    /// Where a key rotation stands (`null` when the store could not be read yet).
    pub keys: Option<livekit_provision::rotate::Epoch>,
    /// Whether the secret store answers, and since when it does not. While it does not, the
    /// media keep running on the last published files; nothing is minted, rotated or
    /// published, and everything converges by itself once it answers again.
    #[serde(default)]
    pub store: Option<StoreReport>,
    /// The certificate of `wss://` (`tls:` of `provision.yaml`); `null` without a `tls:`
    /// section.
    #[serde(default)]
    pub tls: Option<TlsReport>,
}

/// The certificate the TLS front serves, and where ACME stands (`status.tls`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TlsReport {
    /// `tls.domain`: the name of `wss://`.
    pub domain: String,
    /// `acme` or `files` (the operator's `cert_file`/`key_file`).
    pub source: String,
    /// The certificate file served.
    pub cert_file: PathBuf,
    /// The names the certificate covers; empty when there is none.
    pub names: Vec<String>,
    /// Its issuer (RFC 4514).
    pub issuer: Option<String>,
    /// Its serial number (hex).
    pub serial: Option<String>,
    /// When it expires (RFC 3339).
    pub not_after: Option<String>,
    /// When it is renewed (RFC 3339; ACME).
    pub renew_at: Option<String>,
    /// What is wrong with it, if anything (missing, names, expired).
    pub problem: Option<String>,
    /// The last ACME attempt began (RFC 3339).
    pub last_attempt: Option<String>,
    /// Why the last ACME attempt failed; `null` after a success.
    pub last_error: Option<String>,
    /// No new attempt before this while the certificate in place serves (RFC 3339).
    pub next_attempt: Option<String>,
    /// Certificates obtained by ACME in this state directory, the first one included.
    pub issued: u32,
}

/// Whether the secret store answers (`status.store`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StoreReport {
    /// Whether its last read succeeded.
    pub reachable: bool,
    /// Since when it has not answered (RFC 3339), while it does not; `null` without a daemon.
    pub unreachable_since: Option<String>,
    /// Why its last read failed, while it fails (no secret: store errors never carry one).
    pub error: Option<String>,
    /// When a read last succeeded (RFC 3339); `null` without a daemon.
    pub last_ok: Option<String>,
}

/// Who is in a call on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OccupancyReport {
    /// When it was asked (RFC 3339).
    pub checked_at: String,
    /// Participants in all rooms; `null` when the server could not be asked.
    pub participants: Option<u32>,
    /// The live rooms.
    pub rooms: Vec<crate::rooms::RoomOccupancy>,
    /// Why the server could not be asked.
    pub error: Option<String>,
}

/// Changes waiting for livekit-server to restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChangesReport {
    /// The policy (`changes:` of `provision.yaml`).
    pub policy: livekit_provision::settings::ChangePolicy,
    /// Whether a change waits.
    pub pending: bool,
    /// What waits (as `restart_reasons` says).
    pub reasons: Vec<String>,
    /// Since when (RFC 3339); the deadline counts from it.
    pub pending_since: Option<String>,
    /// When it applies, in words (`when the node is idle: 3 participants in 1 room now`).
    pub applies: Option<String>,
    /// The earliest it may apply by itself (RFC 3339): now for `apply: idle`, the next window
    /// opening, the deadline; `null` for `apply: manual` without a deadline.
    pub next_chance: Option<String>,
    /// When it applies anyway, draining first (RFC 3339), when a deadline is set.
    pub deadline_at: Option<String>,
    /// A drain in progress: livekit-server refuses new rooms and restarts when its calls end.
    pub draining: Option<DrainReport>,
    /// What was last applied.
    pub last_applied: Option<AppliedReport>,
    /// The other nodes of the fleet sharing this node's store (Redis), as they last reported;
    /// `null` for a node alone.
    pub fleet: Option<Vec<FleetMember>>,
    /// Whether this node holds the fleet's rolling-restart lease (one node changes at a time);
    /// `null` for a node alone.
    pub rolling_lease: Option<bool>,
}

/// What a node publishes to its fleet (no secrets: key names, versions, counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeReport {
    /// Its livekit-server answers its health probe and is not draining.
    pub serving: bool,
    /// It drains before a restart.
    pub draining: bool,
    /// Participants in calls on it.
    pub participants: Option<u32>,
    /// The installed livekit-server release.
    pub version: Option<String>,
    /// The staged key its running server accepts (asked of it), if any.
    pub next_loaded: Option<String>,
    /// A change waits for its livekit-server to restart.
    pub pending: bool,
}

/// Another node of the fleet, as it last reported itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FleetMember {
    /// Its name (`<hostname>:<port>`).
    pub node: String,
    /// Whether it is this node (always `false`: the others are listed).
    pub this_node: bool,
    /// What it reported.
    #[serde(flatten)]
    pub report: NodeReport,
}

/// A drain in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DrainReport {
    /// Since when (RFC 3339).
    pub since: String,
    /// When livekit-server is ended if calls remain (SIGKILL: they rejoin the next one).
    pub until: String,
    /// Applied anyway, with participants connected (a deadline or `restart --force`).
    pub forced: bool,
    /// What it applies.
    pub reasons: Vec<String>,
}

/// What was last applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AppliedReport {
    /// When livekit-server stopped for it (RFC 3339).
    pub at: String,
    /// What it applied.
    pub reasons: Vec<String>,
    /// Participants connected when its drain began (0: nobody was cut).
    pub participants: u32,
    /// Whether the drain had to be ended: its participants then reconnected to the next server.
    pub ended_by_kill: bool,
}

/// The provisioning part of `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProvisioningReport {
    /// Where provisioning stands.
    pub state: ProvisionState,
    /// Runs started since the daemon started.
    pub runs: u64,
    /// Failed runs in a row (0 after a success).
    pub consecutive_failures: u32,
    /// Why the last run failed: the error and its causes on one line.
    pub last_error: Option<String>,
    /// How to fix it, when known; in state `disabled`, how to turn provisioning on.
    pub hint: Option<String>,
    /// In state `disabled`: what is off and why (it names `LIVEKIT_VERSION`); `null` otherwise.
    #[serde(default)]
    pub disabled_reason: Option<String>,
    /// When the last run started.
    pub last_run_at: Option<String>,
    /// When a run last succeeded.
    pub last_success_at: Option<String>,
    /// When the next run is scheduled.
    pub next_run: Option<String>,
    /// When the failed run is retried (only in state `failed`).
    pub next_retry: Option<String>,
    /// Milliseconds until `next_retry`.
    pub next_retry_in_ms: Option<u64>,
    /// The warnings of the last `ensure` (node IP defaulted, not on an interface, …).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// What a run (or an `install` call) in flight is doing now; `null` when none is.
    #[serde(default)]
    pub progress: Option<Progress>,
}

/// The progress of a long operation, in `status.provisioning.progress`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Progress {
    /// Which operation: a provisioning run, or an `install` call.
    pub operation: Operation,
    /// Its current phase.
    pub phase: Phase,
    /// During `downloading`: bytes of the release archive received so far.
    pub bytes_done: Option<u64>,
    /// During `downloading`: the archive's size, when the server said.
    pub bytes_total: Option<u64>,
}

/// A long operation the daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Operation {
    /// Background provisioning (or an `ensure`, `secrets.set`, `secrets.rotate` call).
    Provision,
    /// An `install` call.
    Install,
}

impl ProvisioningReport {
    /// The report when no daemon runs.
    pub fn no_daemon() -> Self {
        Self {
            state: ProvisionState::NoDaemon,
            runs: 0,
            consecutive_failures: 0,
            last_error: None,
            hint: None,
            disabled_reason: None,
            last_run_at: None,
            last_success_at: None,
            next_run: None,
            next_retry: None,
            next_retry_in_ms: None,
            warnings: Vec::new(),
            progress: None,
        }
    }
}

/// The livekit-server versions of `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct VersionReport {
    /// `LIVEKIT_VERSION`: as of the daemon's last run, or, without a daemon, as the store holds
    /// it now; `null` when unset.
    pub pinned: Option<String>,
    /// The version at `bin/livekit-server`, when one is installed.
    pub installed: Option<String>,
}

/// The media part of `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MediaReport {
    /// Who owns the media (`media_owner` of `provision.yaml`): `daemon` or `external`.
    #[serde(default)]
    pub owner: MediaOwner,
    /// The supervisor was busy (a start or stop in progress): `processes` is the last list read.
    pub busy: bool,
    /// The media were stopped on purpose (`stop`): runs leave them down, across restarts of
    /// the control plane, until `start` or `restart` (the record is `run/media.stopped`).
    #[serde(default)]
    pub stopped_on_purpose: bool,
    /// When they were stopped on purpose (RFC 3339); `null` when they were not (or the record
    /// holds no readable time).
    #[serde(default)]
    pub stopped_since: Option<String>,
    /// Each media process.
    pub processes: Vec<MediaProcess>,
    /// A published set livekit-server crash-looped on, taken back (`run/held.json`): the node
    /// serves the files of the generation it served on before, and the held set is not
    /// published again until an input changes. `null` when none is held.
    #[serde(default)]
    pub held: Option<livekit_provision::hold::Held>,
}

/// One media process, as `status`, `start`, `stop` and `restart` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MediaProcess {
    /// What the supervisor knows (`name`, `pid`, `running`, `healthy`, `restart_pending`,
    /// `failed`).
    #[serde(flatten)]
    pub status: ProcessStatus,
    /// Why the last start failed, or why it could not be inspected; `null` when it did not.
    pub error: Option<String>,
    /// Why a restart is pending (a new binary, which livekit.yaml keys changed since it
    /// started); empty when none is.
    #[serde(default)]
    pub restart_reasons: Vec<String>,
    /// A process we did not start that listens on this one's port (name and pid), when no
    /// process of ours runs: an older deployment to take over, or (`media_owner: external`)
    /// the supervisor's process without a pid file.
    #[serde(default)]
    pub listener: Option<PortOwner>,
}

impl MediaProcess {
    /// A process whose state could not be read.
    pub fn unreadable(name: &str, error: String) -> Self {
        Self {
            status: ProcessStatus {
                name: name.to_owned(),
                pid: None,
                running: false,
                healthy: false,
                restart_pending: false,
                failed: None,
                condition: crate::supervise::Condition::Stopped,
                since: None,
                healed: None,
                alert: None,
            },
            error: Some(error),
            restart_reasons: Vec::new(),
            listener: None,
        }
    }
}

/// The result of `health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HealthResult {
    /// The fixed path of `livekit.yaml`.
    pub config: PathBuf,
    /// SHA-256 (hex) of the `livekit.yaml` bytes the daemon last published or started the media
    /// with.
    pub in_memory: Option<String>,
    /// SHA-256 (hex) of the bytes at the fixed path now.
    pub on_disk: Option<String>,
    /// Both are known and equal.
    pub in_sync: bool,
    /// A running media process started with something else than what is on disk now.
    #[serde(default)]
    pub restart_pending: bool,
    /// Why, per process (only those with reasons).
    #[serde(default)]
    pub restart_reasons: BTreeMap<String, Vec<String>>,
}
