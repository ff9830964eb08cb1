//! `run/acme.json`: what the ACME runs did, for `status`, `check` and the retry pacing. Written
//! atomically; a missing or unreadable record means "nothing known".

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::StateDir;

/// The record of the ACME attempts of a state directory. Times are Unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct AcmeRecord {
    /// The directory the attempts went to.
    pub directory: Option<String>,
    /// The last attempt began.
    pub last_attempt: Option<u64>,
    /// The last certificate was obtained.
    pub last_success: Option<u64>,
    /// Why the last attempt failed; `None` after a success.
    pub last_error: Option<String>,
    /// Failures since the last success.
    pub failures: u32,
    /// No new attempt before this, while a usable certificate serves.
    pub next_attempt: Option<u64>,
    /// Certificates obtained in this state directory, the first one included.
    pub issued: u32,
}

fn path(state: &StateDir) -> std::path::PathBuf {
    state.run_dir().join("acme.json")
}

/// The record, or an empty one.
pub fn read_record(state: &StateDir) -> AcmeRecord {
    crate::fsio::read_text(&path(state))
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

fn write(state: &StateDir, record: &AcmeRecord) {
    if let Ok(bytes) = serde_json::to_vec_pretty(record) {
        // A record that cannot be written costs only its pacing and reporting.
        if let Err(e) = crate::fsio::write_file(&path(state), &bytes, 0o644) {
            tracing::warn!("cannot write {}: {e}", path(state).display());
        }
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How long after a failure the next attempt waits while a usable certificate serves: a
/// thirtieth of the certificate's lifetime (5 s to 1 h), doubled per failure, at most 1 h.
pub(crate) fn retry_delay(lifetime: Duration, failures: u32) -> Duration {
    let first = (lifetime / 30).clamp(Duration::from_secs(5), Duration::from_secs(3600));
    first
        .saturating_mul(1 << failures.saturating_sub(1).min(10))
        .min(Duration::from_secs(3600).max(first))
}

pub(crate) fn begin(state: &StateDir, directory: &str, now: SystemTime) -> AcmeRecord {
    let mut record = read_record(state);
    record.directory = Some(directory.to_owned());
    record.last_attempt = Some(secs(now));
    write(state, &record);
    record
}

pub(crate) fn success(state: &StateDir, mut record: AcmeRecord, now: SystemTime) {
    record.last_success = Some(secs(now));
    record.last_error = None;
    record.failures = 0;
    record.next_attempt = None;
    record.issued += 1;
    write(state, &record);
}

pub(crate) fn failure(
    state: &StateDir,
    mut record: AcmeRecord,
    error: &str,
    lifetime: Duration,
    now: SystemTime,
) {
    record.failures += 1;
    record.last_error = Some(error.to_owned());
    record.next_attempt = Some(secs(now + retry_delay(lifetime, record.failures)));
    write(state, &record);
}

impl AcmeRecord {
    /// True while a failed attempt's retry delay runs.
    pub fn waiting(&self, now: SystemTime) -> bool {
        self.next_attempt.is_some_and(|at| secs(now) < at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_paced_by_the_lifetime_and_capped() {
        let day = Duration::from_secs(86_400);
        assert_eq!(retry_delay(90 * day, 1), Duration::from_secs(3600));
        assert_eq!(retry_delay(90 * day, 9), Duration::from_secs(3600));
        assert_eq!(
            retry_delay(Duration::from_secs(60), 1),
            Duration::from_secs(5)
        );
        assert_eq!(
            retry_delay(Duration::from_secs(600), 2),
            Duration::from_secs(40)
        );
    }

    #[test]
    fn a_failure_then_a_success_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        std::fs::create_dir_all(state.run_dir()).unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let r = begin(&state, "https://ca/dir", now);
        failure(&state, r, "refused", Duration::from_secs(600), now);
        let r = read_record(&state);
        assert_eq!((r.failures, r.last_error.as_deref()), (1, Some("refused")));
        assert!(r.waiting(now) && !r.waiting(now + Duration::from_secs(20)));
        success(&state, r, now);
        let r = read_record(&state);
        assert_eq!((r.failures, r.issued, r.last_error), (0, 1, None));
    }
}
