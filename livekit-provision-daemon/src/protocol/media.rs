//! `start`, `stop` and `restart`: their parameters and results.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{MediaProcess, RpcError};
use crate::supervise::StopOutcome;

/// The longest grace a `stop` or `restart` accepts, in seconds.
pub const MAX_GRACE_SECS: f64 = 3600.0;

/// The parameters of `stop` and `restart`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopParams {
    /// How long livekit-server may drain participants before the second SIGTERM, in seconds
    /// (0 to 3600); the daemon's default (30 s) when absent.
    #[serde(default)]
    pub grace_secs: Option<f64>,
    /// Go ahead although participants are connected: `restart` then drains livekit-server
    /// (no new rooms; the calls in progress go on) for the grace, or `changes.drain`, and
    /// restarts it when they end or at the end of the grace (they reconnect to the next
    /// server); `stop` stops it for good. Without it both are refused while anyone is
    /// connected.
    #[serde(default)]
    pub force: Option<bool>,
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

/// The result of `start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StartResult {
    /// Each media process after the start.
    pub processes: Vec<MediaProcess>,
}

/// The result of `stop` and `restart`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StopResult {
    /// How each process stopped, by name (`NotRunning`, `Terminated`,
    /// `TerminatedOnSecondSignal`, `Killed`).
    pub stopped: BTreeMap<String, StopOutcome>,
    /// Each media process afterwards (for `restart`: after the new start).
    pub processes: Vec<MediaProcess>,
    /// A forced `restart` with participants connected: the drain it began (livekit-server
    /// restarts when its calls end, at the latest at `until`); `null` otherwise.
    #[serde(default)]
    pub draining: Option<super::DrainReport>,
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
