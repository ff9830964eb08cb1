//! How the control plane heals a media process that stopped serving: the `healing:` section of
//! `provision.yaml`.
//!
//! A livekit-server that **answers nothing** — no TCP accept, or no HTTP answer to `GET /` within
//! the probe's 2 s — for `hung_after` is hung (a deadlock, a stuck disk, a stopped process): the
//! daemon kills it (SIGKILL, so that its participants rejoin the next server) and starts it
//! again, with the crash backoff. A server that answers but not with 200 is **never** replaced
//! for it: livekit-server answers 406 when its Redis is away or its node stats are stale, and
//! restarting every node of a fleet because their Redis went away turns a Redis outage into a
//! fleet outage (livekit/livekit#4663).
//!
//! ```yaml
//! healing:
//!   hung_after: 5s    # 3s–10m; `off` never replaces a hung server (status still says it)
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::changes::Span;

/// The `hung_after` when none is set.
pub const DEFAULT_HUNG_AFTER: Duration = Duration::from_secs(5);
/// The shortest `hung_after` accepted: shorter would replace a server for one slow probe.
pub const MIN_HUNG_AFTER: Duration = Duration::from_secs(3);
/// The longest `hung_after` accepted.
pub const MAX_HUNG_AFTER: Duration = Duration::from_secs(600);

/// `healing.hung_after`: a duration, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct HungAfter(pub Option<Duration>);

impl TryFrom<String> for HungAfter {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if text.trim() == "off" {
            return Ok(Self(None));
        }
        humantime::parse_duration(text.trim())
            .map(|d| Self(Some(d)))
            .map_err(|e| {
                format!(
                    "hung_after {text:?} is not a duration such as `5s` or `1m`, nor `off`: {e}"
                )
            })
    }
}

impl From<HungAfter> for String {
    fn from(h: HungAfter) -> Self {
        h.0.map_or_else(|| "off".to_owned(), |d| String::from(Span(d)))
    }
}

/// The `healing:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Healing {
    /// How long livekit-server may answer nothing before it is killed and started again.
    pub hung_after: HungAfter,
}

impl Default for Healing {
    fn default() -> Self {
        Self {
            hung_after: HungAfter(Some(DEFAULT_HUNG_AFTER)),
        }
    }
}

impl Healing {
    /// Refuse a `hung_after` outside 3s–10m, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        match self.hung_after.0 {
            Some(d) if !(MIN_HUNG_AFTER..=MAX_HUNG_AFTER).contains(&d) => Err(format!(
                "healing.hung_after {} is outside {}–{} (or `off`): shorter replaces a server for one slow answer, longer leaves calls frozen",
                String::from(Span(d)),
                String::from(Span(MIN_HUNG_AFTER)),
                String::from(Span(MAX_HUNG_AFTER)),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Settings;

    #[test]
    fn hung_after_parses_defaults_and_switches_off() {
        assert_eq!(
            Settings::default().healing.hung_after.0,
            Some(DEFAULT_HUNG_AFTER)
        );
        let s = Settings::from_yaml("healing:\n  hung_after: 20s\n").unwrap();
        assert_eq!(s.healing.hung_after.0, Some(Duration::from_secs(20)));
        let s = Settings::from_yaml("healing:\n  hung_after: off\n").unwrap();
        assert_eq!(s.healing.hung_after.0, None);
    }

    #[test]
    fn bad_hung_after_is_refused_by_key() {
        for yaml in [
            "healing:\n  hung_after: 1s\n",
            "healing:\n  hung_after: 1h\n",
            "healing:\n  hung_after: soon\n",
            "healing:\n  hung_afterr: 5s\n",
        ] {
            let e = Settings::from_yaml(yaml).unwrap_err().to_string();
            assert!(e.contains("hung_after"), "{yaml:?}: {e}");
        }
    }
}
