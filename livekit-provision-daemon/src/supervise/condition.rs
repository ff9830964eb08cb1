//! The health model of a media process, as `status` reports it (docs/DESIGN.md §4.11): what it
//! is doing, since when, and the last thing the supervisor did about it.
//!
//! Three different troubles, three different answers:
//! - **hung** ([`Condition::Unresponsive`]): alive, but no TCP accept or no HTTP answer to its
//!   probe. Nothing it serves works. Replaced once that lasted `healing.hung_after`.
//! - **unhealthy** ([`Condition::Unhealthy`]): it answers, but not 200. livekit-server answers
//!   406 while its node stats are stale, and when its Redis is away: a dependency's outage.
//!   Never restarted for it (a restart would not bring Redis back, and would cut every call).
//! - **crash-looping** ([`Condition::CrashLooping`]): it keeps exiting. Started again with a
//!   bounded backoff, and reported with the last lines of its log.

use std::time::{Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::health::Probe;

/// What a media process is doing.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default,
)]
#[serde(rename_all = "kebab-case")]
pub enum Condition {
    /// Running, and its probe answers 200.
    Serving,
    /// Running and answering, but not 200 (livekit-server: 406 while its node stats are stale
    /// or its Redis is away). Never restarted for it.
    Unhealthy,
    /// Running, and answering nothing (no TCP accept, or no HTTP answer within 2 s). Replaced
    /// once that lasted `healing.hung_after`.
    Unresponsive,
    /// Draining before a restart (no new rooms; the calls in progress go on).
    Draining,
    /// Down after an exit; started again when its backoff ends.
    Restarting,
    /// It exited too often within the window; started again after the longest backoff, each
    /// time. `failed` holds the last lines of its log.
    CrashLooping,
    /// Not running, and not expected to (never started, or stopped).
    #[default]
    Stopped,
}

impl Condition {
    /// The condition of a running process whose probe found `probe` (`None`: nothing to
    /// probe).
    pub(crate) fn of_running(probe: Option<&Probe>, draining: bool) -> Self {
        match probe {
            _ if draining => Self::Draining,
            None | Some(Probe::Ready) => Self::Serving,
            Some(Probe::NotReady { .. }) => Self::Unhealthy,
            Some(Probe::Down(_)) => Self::Unresponsive,
        }
    }
}

/// The last thing the supervisor did by itself to heal a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Healed {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// What it did and why, in one line.
    pub action: String,
}

/// A condition and since when it holds, kept per process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Held {
    pub condition: Condition,
    pub since: SystemTime,
    /// On the monotonic clock, for `hung_after`.
    pub since_instant: Instant,
}

impl Held {
    /// `held` moved on to `condition` at `now`: kept when unchanged (its `since` stays).
    pub fn update(held: Option<Self>, condition: Condition, now: (SystemTime, Instant)) -> Self {
        match held {
            Some(h) if h.condition == condition => h,
            _ => Self {
                condition,
                since: now.0,
                since_instant: now.1,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answering_is_never_taken_for_hung() {
        let not_ready = Probe::NotReady {
            status: 406,
            body: "Not Ready".to_owned(),
        };
        assert_eq!(
            Condition::of_running(Some(&not_ready), false),
            Condition::Unhealthy
        );
        assert_eq!(
            Condition::of_running(Some(&Probe::Down("timed out".to_owned())), false),
            Condition::Unresponsive
        );
        assert_eq!(
            Condition::of_running(Some(&Probe::Ready), false),
            Condition::Serving
        );
        assert_eq!(Condition::of_running(None, false), Condition::Serving);
        // A drain has its own end: never judged hung meanwhile.
        assert_eq!(
            Condition::of_running(Some(&Probe::Down("refused".to_owned())), true),
            Condition::Draining
        );
    }

    #[test]
    fn since_moves_only_with_the_condition() {
        let t0 = (SystemTime::UNIX_EPOCH, Instant::now());
        let t1 = (t0.0 + std::time::Duration::from_secs(5), t0.1);
        let held = Held::update(None, Condition::Unresponsive, t0);
        let same = Held::update(Some(held), Condition::Unresponsive, t1);
        assert_eq!(same.since, t0.0);
        let moved = Held::update(Some(same), Condition::Serving, t1);
        assert_eq!(moved.since, t1.0);
    }
}
