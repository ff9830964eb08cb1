//! What the daemon knows about its provisioning, as `status` reports it.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{Value, json};

/// Where background provisioning stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
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
}

/// The provisioning part of `status`.
#[derive(Debug, Clone)]
pub struct ProvisionStatus {
    /// The current state.
    pub state: ProvisionState,
    /// Runs started since the daemon started.
    pub runs: u64,
    /// Failed runs in a row (0 after a success).
    pub consecutive_failures: u32,
    /// Why the last run failed.
    pub last_error: Option<String>,
    /// How to fix it, when known.
    pub last_hint: Option<String>,
    /// When the last run started.
    pub last_run_at: Option<SystemTime>,
    /// When a run last succeeded.
    pub last_success_at: Option<SystemTime>,
    /// When the next run is scheduled.
    pub next_run: Option<SystemTime>,
    /// The pinned version, as of the last run.
    pub pinned_version: Option<String>,
}

impl Default for ProvisionStatus {
    fn default() -> Self {
        Self {
            state: ProvisionState::Idle,
            runs: 0,
            consecutive_failures: 0,
            last_error: None,
            last_hint: None,
            last_run_at: None,
            last_success_at: None,
            next_run: None,
            pinned_version: None,
        }
    }
}

impl ProvisionStatus {
    /// The JSON of `status.provisioning`, with times as RFC 3339 and relative to `now`.
    pub fn to_json(&self, now: SystemTime) -> Value {
        let next_retry = (self.state == ProvisionState::Failed)
            .then_some(self.next_run)
            .flatten();
        json!({
            "state": self.state,
            "runs": self.runs,
            "consecutive_failures": self.consecutive_failures,
            "last_error": self.last_error,
            "hint": self.last_hint,
            "last_run_at": self.last_run_at.map(rfc3339),
            "last_success_at": self.last_success_at.map(rfc3339),
            "next_run": self.next_run.map(rfc3339),
            "next_retry": next_retry.map(rfc3339),
            "next_retry_in_ms": next_retry.map(|t| millis(t.duration_since(now).unwrap_or_default())),
        })
    }
}

/// A time as RFC 3339 (UTC, seconds).
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_retry_only_when_failed() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut s = ProvisionStatus {
            state: ProvisionState::Ready,
            next_run: Some(now + Duration::from_secs(300)),
            ..ProvisionStatus::default()
        };
        assert_eq!(s.to_json(now)["next_retry"], Value::Null);
        s.state = ProvisionState::Failed;
        s.last_error = Some("offline".into());
        let j = s.to_json(now);
        assert_eq!(j["state"], json!("failed"));
        assert_eq!(j["next_retry"], json!("1970-01-12T13:51:40Z"));
        assert_eq!(j["next_retry_in_ms"], json!(300_000));
    }
}
