//! When provisioning runs again: capped exponential backoff with jitter after a failure, a slow
//! periodic re-check after a success (the numbers; the arithmetic is [`livekit_provision::backoff`]). Pure:
//! every decision takes its random draw as a parameter.

use std::time::Duration;

use livekit_provision::backoff;

/// The retry cadence of background provisioning.
///
/// After the `n`th consecutive failure the next attempt waits `initial × 2^(n-1)`, capped at
/// `max`, then scaled by a random factor in `1 ± jitter` (so a fleet that failed together does
/// not retry together). With the defaults: 5 s, 10 s, 20 s, 40 s, … capped at 5 min, ±20 %.
/// A converged node re-checks every `recheck` (default 5 min): a cheap no-op `ensure`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// The wait after the first failure.
    pub initial: Duration,
    /// The longest wait between attempts (before jitter).
    pub max: Duration,
    /// The relative spread of the jitter, `0.0..=1.0` (0.2 = ±20 %).
    pub jitter: f64,
    /// The wait between two runs on a converged node.
    pub recheck: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(5),
            max: Duration::from_secs(300),
            jitter: 0.2,
            recheck: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `failures`th consecutive failure (1-based), for a random draw
    /// `unit` in `0.0..1.0`.
    pub fn retry_delay(&self, failures: u32, unit: f64) -> Duration {
        backoff::spread(
            backoff::exponential(self.initial, self.max, failures),
            self.jitter,
            unit,
        )
    }

    /// The wait before re-checking a converged node, for a random draw `unit` in `0.0..1.0`.
    pub fn recheck_delay(&self, unit: f64) -> Duration {
        backoff::spread(self.recheck, self.jitter, unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_five_seconds_and_caps_at_five_minutes() {
        let p = RetryPolicy::default();
        let secs: Vec<u64> = (1..=9).map(|n| p.retry_delay(n, 0.5).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(p.retry_delay(u32::MAX, 0.5), Duration::from_secs(300));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let p = RetryPolicy::default();
        assert_eq!(p.retry_delay(1, 0.0), Duration::from_secs(4));
        assert_eq!(p.retry_delay(1, 1.0), Duration::from_secs(6));
        assert_eq!(p.recheck_delay(0.0), Duration::from_secs(240));
        for _ in 0..100 {
            let d = p.retry_delay(3, backoff::unit_random());
            assert!(
                d >= Duration::from_secs(16) && d <= Duration::from_secs(24),
                "{d:?}"
            );
        }
    }
}
