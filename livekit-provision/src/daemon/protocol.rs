//! The daemon's protocol: every JSON-RPC method's name, parameters and result, and the error
//! object, as serde types that the server (`daemon/connection.rs`), the client ([`super::client`])
//! and the CLI all use. Nothing on either side reads a reply by string index.
//!
//! Each method is a unit type implementing [`Method`] (its name and its `Params`/`Result`
//! types), so a document describing the protocol (OpenRPC's `rpc.discover`) can be generated
//! from these types alone. Fields are plain serde data with documented meaning; times are
//! RFC 3339 strings (UTC, seconds); optional fields are always present, `null` when unset.
//!
//! | method | params | result |
//! |---|---|---|
//! | `status` | [`NoParams`] | [`StatusResult`] |
//! | `ensure` | [`NoParams`] | [`EnsureReport`] |
//! | `check` | [`NoParams`] | [`CheckReport`] |
//! | `health` | [`NoParams`] | [`HealthResult`] |
//! | `start` | [`NoParams`] | [`StartResult`] |
//! | `stop`, `restart` | [`StopParams`] | [`StopResult`] |
//! | `token.create` | [`TokenCreateParams`] | [`TokenCreateResult`] |
//!
//! Errors are [`RpcError`]s; their `data.hint`, when present, says what to do.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::check::CheckReport;
use crate::ensure::EnsureReport;
use crate::settings::MediaOwner;
use crate::supervise::{PortOwner, ProcessStatus, StopOutcome};
use crate::token::{self, TokenRequest, VideoGrants};

/// One method of the protocol: its name and the types of its parameters and result.
pub trait Method {
    /// The JSON-RPC method name.
    const NAME: &'static str;
    /// The `params` object.
    type Params: Serialize + DeserializeOwned;
    /// The `result` of a successful call.
    type Result: Serialize + DeserializeOwned;
}

macro_rules! methods {
    ($($(#[$doc:meta])* $ty:ident = $name:literal ($params:ty) -> $result:ty;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $ty;

            impl Method for $ty {
                const NAME: &'static str = $name;
                type Params = $params;
                type Result = $result;
            }
        )*
        /// Every method name, in the order of the documentation.
        pub const METHODS: &[&str] = &[$($name),*];
    };
}

methods! {
    /// The daemon, its provisioning and the media.
    Status = "status" (NoParams) -> StatusResult;
    /// Provision now (after the run in flight, if any); the run's report.
    Ensure = "ensure" (NoParams) -> EnsureReport;
    /// The read-only diagnosis.
    Check = "check" (NoParams) -> CheckReport;
    /// The `livekit.yaml` the media were started with vs the file on disk.
    Health = "health" (NoParams) -> HealthResult;
    /// Start the media that are down; forget crash history.
    Start = "start" (NoParams) -> StartResult;
    /// Stop the media and keep them down (until `start`, `restart` or a daemon restart).
    Stop = "stop" (StopParams) -> StopResult;
    /// Stop the media, then start them.
    Restart = "restart" (StopParams) -> StopResult;
    /// A LiveKit access token signed with the credentials the three files agree on.
    TokenCreate = "token.create" (TokenCreateParams) -> TokenCreateResult;
}

/// The parameters of a method that takes none: `{}` (or absent, or `null`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// The longest grace a `stop` or `restart` accepts, in seconds.
pub const MAX_GRACE_SECS: f64 = 3600.0;

/// The parameters of `stop` and `restart`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopParams {
    /// How long livekit-server may drain participants before the second SIGTERM, in seconds
    /// (0 to 3600); the daemon's default (30 s) when absent.
    #[serde(default)]
    pub grace_secs: Option<f64>,
}

impl StopParams {
    /// The grace asked for, validated; `None` for the daemon's default.
    pub fn grace(&self) -> Result<Option<Duration>, RpcError> {
        match self.grace_secs {
            None => Ok(None),
            Some(s) if s.is_finite() && (0.0..=MAX_GRACE_SECS).contains(&s) => {
                Ok(Some(Duration::from_secs_f64(s)))
            }
            Some(_) => Err(RpcError::invalid_params(
                "grace_secs must be a number of seconds from 0 to 3600",
            )),
        }
    }
}

/// A token's validity: a humantime duration (`"6h"`) or whole seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Ttl {
    /// Whole seconds.
    Seconds(u64),
    /// A duration such as `"6h"` or `"30m"`.
    Text(String),
}

/// The parameters of `token.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenCreateParams {
    /// The participant identity (`sub`).
    pub identity: String,
    /// The room to join; with neither `grants` nor `admin`, the token joins this room.
    #[serde(default)]
    pub room: Option<String>,
    /// Validity; 6 hours when absent.
    #[serde(default)]
    pub ttl: Option<Ttl>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Participant metadata.
    #[serde(default)]
    pub metadata: Option<String>,
    /// Explicit video grants (livekit's `video` claim); override `room` and `admin`.
    #[serde(default)]
    pub grants: Option<VideoGrants>,
    /// Grant room administration (create, list, admin, record).
    #[serde(default)]
    pub admin: Option<bool>,
}

impl TokenCreateParams {
    /// The token request these parameters describe, validated.
    pub fn request(&self) -> Result<TokenRequest, RpcError> {
        let ttl = match &self.ttl {
            None => token::DEFAULT_TTL,
            Some(Ttl::Seconds(s)) => Duration::from_secs(*s),
            Some(Ttl::Text(text)) => humantime::parse_duration(text).map_err(|e| {
                RpcError::invalid_params(format!("ttl {text:?} is not a duration: {e}"))
            })?,
        };
        let grants = match (&self.grants, self.admin.unwrap_or(false), &self.room) {
            (Some(grants), _, _) => grants.clone(),
            (None, true, _) => VideoGrants::admin(),
            (None, false, Some(room)) => VideoGrants::join(room.clone()),
            (None, false, None) => {
                return Err(RpcError::invalid_params(
                    "give a room to join, grants, or admin: true",
                ));
            }
        };
        let mut request = TokenRequest::new(self.identity.clone(), grants);
        request.room.clone_from(&self.room);
        request.name.clone_from(&self.name);
        request.metadata.clone_from(&self.metadata);
        request.ttl = ttl;
        Ok(request)
    }
}

/// Where background provisioning stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// `LIVEKIT_VERSION` is unset: control plane only. The files are rendered, no media start.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// The provisioning part of `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvisioningReport {
    /// Where provisioning stands.
    pub state: ProvisionState,
    /// Runs started since the daemon started.
    pub runs: u64,
    /// Failed runs in a row (0 after a success).
    pub consecutive_failures: u32,
    /// Why the last run failed: the error and its causes on one line.
    pub last_error: Option<String>,
    /// How to fix it, when known.
    pub hint: Option<String>,
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
            last_run_at: None,
            last_success_at: None,
            next_run: None,
            next_retry: None,
            next_retry_in_ms: None,
            warnings: Vec::new(),
        }
    }
}

/// The livekit-server versions of `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionReport {
    /// `LIVEKIT_VERSION` as of the daemon's last run; `null` when unset or without a daemon.
    pub pinned: Option<String>,
    /// The version at `bin/livekit-server`, when one is installed.
    pub installed: Option<String>,
}

/// The media part of `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaReport {
    /// Who owns the media (`media_owner` of `provision.yaml`): `daemon` or `external`.
    #[serde(default)]
    pub owner: MediaOwner,
    /// The supervisor was busy (a start or stop in progress): `processes` is the last list read.
    pub busy: bool,
    /// Each media process.
    pub processes: Vec<MediaProcess>,
}

/// One media process, as `status`, `start`, `stop` and `restart` report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
            },
            error: Some(error),
            restart_reasons: Vec::new(),
            listener: None,
        }
    }
}

/// The result of `health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// The result of `start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartResult {
    /// Each media process after the start.
    pub processes: Vec<MediaProcess>,
}

/// The result of `stop` and `restart`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopResult {
    /// How each process stopped, by name (`NotRunning`, `Terminated`,
    /// `TerminatedOnSecondSignal`, `Killed`).
    pub stopped: BTreeMap<String, StopOutcome>,
    /// Each media process afterwards (for `restart`: after the new start).
    pub processes: Vec<MediaProcess>,
}

/// How the CLI and the daemon's log say it.
impl fmt::Display for StopOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotRunning => "not running",
            Self::Terminated => "stopped",
            Self::TerminatedOnSecondSignal => "stopped after a second SIGTERM",
            Self::Killed => "killed after the grace",
        })
    }
}

/// The result of `token.create`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreateResult {
    /// The signed JWT (a credential: never logged).
    pub token: String,
    /// The API key it is signed for.
    pub api_key: String,
    /// The identity it was issued to.
    pub identity: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
}

/// The token is a credential: `Debug` shows `****`.
impl fmt::Debug for TokenCreateResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCreateResult")
            .field("token", &"****")
            .field("api_key", &self.api_key)
            .field("identity", &self.identity)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// Not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// No such method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// The daemon could not produce an answer (it could not serialize one).
pub const INTERNAL_ERROR: i64 = -32603;
/// The method ran and failed (provisioning, supervision, token errors).
pub const SERVER_ERROR: i64 = -32000;
/// The node is not provisioned yet (no consistent credentials on disk).
pub const NOT_PROVISIONED: i64 = -32001;

/// A JSON-RPC error object: `{code, message, data?: {hint?}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcError {
    /// The error code.
    pub code: i64,
    /// One line for a human: the error and its causes.
    pub message: String,
    /// Details; absent when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<ErrorData>,
}

/// The `data` of an [`RpcError`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorData {
    /// What to do about it.
    #[serde(default)]
    pub hint: Option<String>,
}

impl RpcError {
    /// An error with `code` and `message`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// `-32602` with `message`.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }

    /// A method failure with its hint, when there is one.
    pub fn server(message: impl Into<String>, hint: Option<String>) -> Self {
        Self::new(SERVER_ERROR, message).with_hint(hint)
    }

    /// A method failure from an error that knows its fix: its causes on one line, its hint.
    pub fn from_error<E: crate::Hint>(error: &E) -> Self {
        Self::from_report(&crate::ErrorReport::of(error))
    }

    /// A method failure from an [`ErrorReport`](crate::ErrorReport).
    pub fn from_report(report: &crate::ErrorReport) -> Self {
        Self::server(report.to_string(), report.hint.clone())
    }

    /// Attach `hint` as `data.hint`.
    #[must_use]
    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        if let Some(hint) = hint {
            self.data = Some(ErrorData { hint: Some(hint) });
        }
        self
    }

    /// The hint, when there is one.
    pub fn hint(&self) -> Option<&str> {
        self.data.as_ref()?.hint.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn params_refuse_unknown_keys_and_bad_values() {
        assert!(serde_json::from_value::<NoParams>(json!({})).is_ok());
        assert!(serde_json::from_value::<NoParams>(json!({"x": 1})).is_err());
        assert!(serde_json::from_value::<StopParams>(json!({"grace_secs": "long"})).is_err());
        let p: StopParams = serde_json::from_value(json!({"grace_secs": 1.5})).unwrap();
        assert_eq!(p.grace().unwrap(), Some(Duration::from_millis(1500)));
        let p: StopParams = serde_json::from_value(json!({"grace_secs": 4000})).unwrap();
        assert_eq!(p.grace().unwrap_err().code, INVALID_PARAMS);
        assert_eq!(StopParams::default().grace().unwrap(), None);
    }

    #[test]
    fn token_params_become_requests() {
        let p: TokenCreateParams =
            serde_json::from_value(json!({"identity": "a", "room": "r", "ttl": 60})).unwrap();
        let r = p.request().unwrap();
        assert_eq!(r.ttl, Duration::from_secs(60));
        assert_eq!(r.room.as_deref(), Some("r"));
        let p: TokenCreateParams =
            serde_json::from_value(json!({"identity": "a", "admin": true, "ttl": "1h"})).unwrap();
        assert_eq!(p.request().unwrap().ttl, Duration::from_secs(3600));
        let p: TokenCreateParams = serde_json::from_value(json!({"identity": "a"})).unwrap();
        assert_eq!(p.request().unwrap_err().code, INVALID_PARAMS);
        let p: TokenCreateParams =
            serde_json::from_value(json!({"identity": "a", "room": "r", "ttl": "soon"})).unwrap();
        assert_eq!(p.request().unwrap_err().code, INVALID_PARAMS);
        assert!(serde_json::from_value::<TokenCreateParams>(json!({"room": "r"})).is_err());
    }

    #[test]
    fn the_error_object_keeps_its_wire_shape() {
        let e = RpcError::server("boom", Some("fix".into()));
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"code": -32000, "message": "boom", "data": {"hint": "fix"}})
        );
        let bare = serde_json::to_value(RpcError::new(METHOD_NOT_FOUND, "no")).unwrap();
        assert_eq!(bare, json!({"code": -32601, "message": "no"}));
        let back: RpcError = serde_json::from_value(json!({"code": 1, "message": "m"})).unwrap();
        assert_eq!(back.hint(), None);
    }

    #[test]
    fn the_token_stays_out_of_debug() {
        let r = TokenCreateResult {
            token: "eyJsecret".into(),
            api_key: "APIx".into(),
            identity: "a".into(),
            expires_at: "1970-01-01T00:00:00Z".into(),
        };
        assert!(!format!("{r:?}").contains("eyJsecret"));
    }

    #[test]
    fn every_method_is_listed_once() {
        let mut names = METHODS.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 8);
        assert!(METHODS.contains(&TokenCreate::NAME));
    }
}
