//! Crash restart policy as a pure state machine: every decision takes `now` as a parameter, so it
//! is tested without sleeping. Restarts back off exponentially (1 s, 2 s, 4 s, … capped at 60 s);
//! after too many crashes within a window the process is **crash-looping**: reported so (with
//! the last lines of its log), and still started again every `max_backoff`, so that a node whose
//! cause went away (a foreign process that held the port, a Redis back) heals by itself. Only an
//! operator's `stop` keeps it down.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use livekit_provision::backoff;

/// When to restart a crashed process, and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// The wait before the first restart.
    pub initial_backoff: Duration,
    /// The longest wait between restarts.
    pub max_backoff: Duration,
    /// This many crashes within `window` make the process crash-looping.
    pub max_crashes: usize,
    /// The window over which crashes are counted; older ones are forgotten.
    pub window: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_crashes: 5,
            window: Duration::from_secs(600),
        }
    }
}

impl RestartPolicy {
    /// The wait before restarting after the `nth` crash in the window (1-based).
    pub fn backoff(&self, nth: usize) -> Duration {
        let nth = u32::try_from(nth).unwrap_or(u32::MAX);
        backoff::exponential(self.initial_backoff, self.max_backoff, nth)
    }
}

/// What to do after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartDecision {
    /// Start it again at this instant (not before).
    RestartAt(Instant),
    /// Too many crashes: report it crash-looping, and start it again at `retry_at` (after the
    /// longest backoff).
    CrashLoop {
        /// Crashes counted within the window.
        crashes: usize,
        /// When to try again.
        retry_at: Instant,
    },
}

/// The crash history of one process.
#[derive(Debug, Clone, Default)]
pub struct CrashTracker {
    crashes: VecDeque<Instant>,
    next_start: Option<Instant>,
    looping: bool,
}

impl CrashTracker {
    /// A tracker with no history.
    #[cfg(test)]
    fn new() -> Self {
        Self::default()
    }

    /// Record a crash at `now` and decide what follows.
    pub fn record_crash(&mut self, policy: &RestartPolicy, now: Instant) -> RestartDecision {
        self.forget_old(policy, now);
        self.crashes.push_back(now);
        let count = self.crashes.len();
        self.looping = count >= policy.max_crashes;
        if self.looping {
            let retry_at = now + policy.max_backoff;
            self.next_start = Some(retry_at);
            return RestartDecision::CrashLoop {
                crashes: count,
                retry_at,
            };
        }
        let at = now + policy.backoff(count);
        self.next_start = Some(at);
        RestartDecision::RestartAt(at)
    }

    /// May a start happen at `now`? `false` while backing off.
    pub fn may_start(&self, now: Instant) -> bool {
        self.next_start.is_none_or(|at| now >= at)
    }

    /// When the next start is allowed, if a backoff is in force.
    pub fn next_start(&self) -> Option<Instant> {
        self.next_start
    }

    /// Has the policy given up?
    /// Whether the last crash made it crash-looping.
    #[cfg(test)]
    fn is_looping(&self) -> bool {
        self.looping
    }

    /// Crashes counted within the window ending at `now`.
    #[cfg(test)]
    fn recent_crashes(&self, policy: &RestartPolicy, now: Instant) -> usize {
        self.crashes
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < policy.window)
            .count()
    }

    /// Forget everything: an operator asked for a start.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    fn forget_old(&mut self, policy: &RestartPolicy, now: Instant) {
        while self
            .crashes
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= policy.window)
        {
            self.crashes.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RestartPolicy::default();
        let waits: Vec<u64> = (1..=9).map(|n| p.backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(p.backoff(usize::MAX), Duration::from_secs(60));
    }

    #[test]
    fn crashes_back_off_then_loop_at_the_longest_backoff() {
        let p = RestartPolicy::default();
        let t0 = Instant::now();
        let mut t = CrashTracker::new();
        assert!(t.may_start(t0));
        assert_eq!(t.record_crash(&p, t0), RestartDecision::RestartAt(t0 + S));
        assert!(!t.may_start(t0));
        assert!(t.may_start(t0 + S));
        let t1 = t0 + 2 * S;
        assert_eq!(
            t.record_crash(&p, t1),
            RestartDecision::RestartAt(t1 + 2 * S)
        );
        for k in 3..5 {
            assert!(matches!(
                t.record_crash(&p, t0 + k * 10 * S),
                RestartDecision::RestartAt(_)
            ));
        }
        let t5 = t0 + 50 * S;
        assert_eq!(
            t.record_crash(&p, t5),
            RestartDecision::CrashLoop {
                crashes: 5,
                retry_at: t5 + 60 * S
            }
        );
        assert!(t.is_looping());
        // Bounded: tried again after the longest backoff, never left down for good.
        assert!(!t.may_start(t5 + 59 * S));
        assert!(t.may_start(t5 + 60 * S));
        t.reset();
        assert!(!t.is_looping());
        assert!(t.may_start(t5));
    }

    #[test]
    fn crashes_outside_the_window_are_forgotten() {
        let p = RestartPolicy {
            window: 100 * S,
            ..RestartPolicy::default()
        };
        let t0 = Instant::now();
        let mut t = CrashTracker::new();
        // One crash every 200 s never accumulates: always the first backoff, never looping.
        for k in 0..20 {
            let now = t0 + k * 200 * S;
            assert_eq!(t.record_crash(&p, now), RestartDecision::RestartAt(now + S));
            assert_eq!(t.recent_crashes(&p, now), 1);
        }
        assert!(!t.is_looping());
    }
}
