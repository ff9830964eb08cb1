//! Backoff with jitter: the one mechanism behind every retry cadence (background provisioning in
//! `daemon`, download retries in `fetch`, crash restarts in `supervise`). Each caller keeps its
//! own numbers in its policy type; the arithmetic lives here. Pure: the random draw is a
//! parameter, so every delay is tested exactly.

use std::time::Duration;

/// `initial × 2^(n-1)` for the `n`th consecutive failure (1-based; 0 counts as 1), capped at
/// `max`. The exponent stops growing after 31 doublings; nothing overflows.
pub fn exponential(initial: Duration, max: Duration, n: u32) -> Duration {
    let doublings = n.saturating_sub(1).min(31);
    initial.saturating_mul(1u32 << doublings).min(max)
}

/// `base` scaled by a factor in `1 ± spread` (`spread` in `0.0..=1.0`, 0.2 = ±20 %), the point
/// picked by `unit` in `0.0..=1.0`: a fleet that failed together does not retry together.
pub fn spread(base: Duration, spread: f64, unit: f64) -> Duration {
    let spread = spread.clamp(0.0, 1.0);
    base.mul_f64(1.0 - spread + 2.0 * spread * unit.clamp(0.0, 1.0))
}

/// A point in `[base/2, base]` picked by `unit` in `0.0..=1.0` ("equal jitter": never less than
/// half the backoff, never more than all of it).
pub fn equal_jitter(base: Duration, unit: f64) -> Duration {
    let half = base / 2;
    half + half.mul_f64(unit.clamp(0.0, 1.0))
}

/// A random draw in `0.0..1.0` from the OS RNG (0.5, no jitter, if it cannot be read: jitter is
/// not security).
pub fn unit_random() -> f64 {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_from_initial_and_caps() {
        let secs: Vec<u64> = (0..=9)
            .map(|n| exponential(S, 60 * S, n).as_secs())
            .collect();
        assert_eq!(secs, [1, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(exponential(S, Duration::MAX, u32::MAX), S * (1 << 31));
    }

    #[test]
    fn jitter_stays_in_its_band() {
        assert_eq!(spread(10 * S, 0.2, 0.0), 8 * S);
        assert_eq!(spread(10 * S, 0.2, 1.0), 12 * S);
        assert_eq!(spread(10 * S, 0.2, 0.5), 10 * S);
        assert_eq!(spread(10 * S, 5.0, 1.0), 20 * S);
        assert_eq!(equal_jitter(10 * S, 0.0), 5 * S);
        assert_eq!(equal_jitter(10 * S, 1.0), 10 * S);
        assert_eq!(equal_jitter(10 * S, -3.0), 5 * S);
        for _ in 0..100 {
            let u = unit_random();
            assert!((0.0..1.0).contains(&u), "{u}");
        }
    }
}
