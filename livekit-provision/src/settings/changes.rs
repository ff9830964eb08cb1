//! When a change that needs livekit-server restarted is applied: the `changes:` section of
//! `provision.yaml`.
//!
//! livekit-server has no hot reload: a new release, a config change, a key-epoch step or a new
//! TURN certificate takes effect only when it restarts, and a restart cuts every call on the
//! node. So the control plane applies such a change by itself at the first moment the node has
//! no participant (`apply: idle`, the default), only inside a daily window (`apply: window`), or
//! never by itself (`apply: manual`: the operator's `restart` applies it). An optional
//! `deadline` bounds how long a change may wait: past it the change is applied anyway, after
//! livekit-server drained for `drain` (no new rooms; the calls in progress go on), accepting
//! that participants still connected then must reconnect.
//!
//! ```yaml
//! changes:
//!   apply: window          # idle (default) | window | manual
//!   window: 02:00-04:00    # with apply: window; UTC, daily, may wrap midnight (23:00-01:00)
//!   deadline: 24h          # optional; from when the change became pending
//!   drain: 10m             # optional; how long a forced apply lets calls finish (default 10m)
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The longest `deadline` accepted: a change that waits longer is not being applied.
pub const MAX_DEADLINE: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest `drain` accepted.
pub const MAX_DRAIN: Duration = Duration::from_secs(24 * 3600);
/// The `drain` when none is set.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10 * 60);

const DAY_MINUTES: u16 = 24 * 60;

/// How a pending change is applied (`changes.apply`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ApplyMode {
    /// At the first moment the node has no participant (the default).
    #[default]
    Idle,
    /// At the first moment the node has no participant inside the daily `window`.
    Window,
    /// Never by itself: `livekit-provision restart` applies it.
    Manual,
}

impl fmt::Display for ApplyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Idle => "idle",
            Self::Window => "window",
            Self::Manual => "manual",
        })
    }
}

/// A daily window of UTC time, `HH:MM-HH:MM`; it may wrap midnight. Start inclusive, end
/// exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct Window {
    /// Minutes after 00:00 UTC at which it opens.
    start: u16,
    /// Minutes after 00:00 UTC at which it closes.
    end: u16,
}

impl Window {
    /// Parse `HH:MM-HH:MM`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let refuse = || {
            format!(
                "changes.window {text:?} is not a daily UTC window `HH:MM-HH:MM` (e.g. `02:00-04:00`)"
            )
        };
        let (start, end) = text.trim().split_once('-').ok_or_else(refuse)?;
        let minutes = |part: &str| -> Option<u16> {
            let (h, m) = part.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60 && part.trim().len() == 5).then_some(h * 60 + m)
        };
        let (start, end) = (
            minutes(start).ok_or_else(refuse)?,
            minutes(end).ok_or_else(refuse)?,
        );
        if start == end {
            return Err(format!(
                "changes.window {text:?} opens and closes at the same minute; give a window such as `02:00-04:00`"
            ));
        }
        Ok(Self { start, end })
    }

    /// Whether `at` falls inside the window.
    pub fn contains(&self, at: SystemTime) -> bool {
        let now = minute_of_day(at);
        if self.start < self.end {
            (self.start..self.end).contains(&now)
        } else {
            now >= self.start || now < self.end
        }
    }

    /// The next time the window opens at or after `at` (`at` itself when it is open).
    pub fn next_open(&self, at: SystemTime) -> SystemTime {
        if self.contains(at) {
            return at;
        }
        let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let day_start = secs - secs % 86_400;
        let open = day_start + u64::from(self.start) * 60;
        let open = if open > secs { open } else { open + 86_400 };
        UNIX_EPOCH + Duration::from_secs(open)
    }
}

fn minute_of_day(at: SystemTime) -> u16 {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    u16::try_from((secs % 86_400) / 60).unwrap_or(0) % DAY_MINUTES
}

impl TryFrom<String> for Window {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

impl From<Window> for String {
    fn from(w: Window) -> Self {
        w.to_string()
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60
        )
    }
}

/// A duration written as humantime (`24h`, `10m`, `90s`) in `provision.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct Span(pub Duration);

impl TryFrom<String> for Span {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        humantime::parse_duration(text.trim())
            .map(Span)
            .map_err(|e| format!("{text:?} is not a duration such as `10m` or `24h`: {e}"))
    }
}

impl From<Span> for String {
    fn from(s: Span) -> Self {
        humantime::format_duration(s.0).to_string()
    }
}

/// The `changes:` section: when changes that need livekit-server restarted are applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ChangePolicy {
    /// `idle` (default), `window` or `manual`.
    pub apply: ApplyMode,
    /// The daily UTC window of `apply: window`.
    pub window: Option<Window>,
    /// Apply anyway (draining first) this long after the change became pending.
    pub deadline: Option<Span>,
    /// How long a forced apply lets calls finish before livekit-server is ended.
    pub drain: Span,
}

impl Default for ChangePolicy {
    fn default() -> Self {
        Self {
            apply: ApplyMode::Idle,
            window: None,
            deadline: None,
            drain: Span(DEFAULT_DRAIN),
        }
    }
}

impl ChangePolicy {
    /// The keys of the section, for messages.
    pub const KEYS: [&'static str; 4] = ["apply", "window", "deadline", "drain"];

    /// The cross-checks serde cannot make: a window exactly with `apply: window`, bounded
    /// durations. The message names the key.
    pub fn validate(&self) -> Result<(), String> {
        match (self.apply, self.window) {
            (ApplyMode::Window, None) => {
                return Err(
                    "changes.apply is `window` but changes.window is not set; add e.g. `window: 02:00-04:00` (UTC)"
                        .to_owned(),
                );
            }
            (ApplyMode::Idle | ApplyMode::Manual, Some(_)) => {
                return Err(format!(
                    "changes.window is used only with `apply: window` (changes.apply is `{}`); remove it or set `apply: window`",
                    self.apply
                ));
            }
            _ => {}
        }
        if let Some(Span(deadline)) = self.deadline
            && (deadline < Duration::from_secs(60) || deadline > MAX_DEADLINE)
        {
            return Err(format!(
                "changes.deadline {} must be from 1m to 30 days",
                humantime::format_duration(deadline)
            ));
        }
        let Span(drain) = self.drain;
        if drain < Duration::from_secs(1) || drain > MAX_DRAIN {
            return Err(format!(
                "changes.drain {} must be from 1s to 24h",
                humantime::format_duration(drain)
            ));
        }
        Ok(())
    }

    /// Whether the policy lets a change be applied by itself at `now` on a node with
    /// `participants` connected, for a change pending since `since`: `Some(false)` when it may
    /// be applied without cutting anyone (idle, in the window), `Some(true)` when it must be
    /// applied anyway (the deadline passed), `None` when not now.
    pub fn decide(&self, now: SystemTime, since: SystemTime, participants: u32) -> Option<bool> {
        if let Some(Span(deadline)) = self.deadline
            && now
                .duration_since(since)
                .is_ok_and(|waited| waited >= deadline)
        {
            return Some(participants > 0);
        }
        let open = match self.apply {
            ApplyMode::Idle => true,
            ApplyMode::Window => self.window.is_some_and(|w| w.contains(now)),
            ApplyMode::Manual => false,
        };
        (open && participants == 0).then_some(false)
    }

    /// When a change pending since `since` may next be applied by itself if the node is idle
    /// then (for `status`): now for `idle`, the next opening for `window`, the deadline for
    /// `manual` (or never).
    pub fn next_chance(&self, now: SystemTime, since: SystemTime) -> Option<SystemTime> {
        let by_deadline = self.deadline.map(|Span(d)| since + d);
        let by_mode = match self.apply {
            ApplyMode::Idle => Some(now),
            ApplyMode::Window => self.window.map(|w| w.next_open(now)),
            ApplyMode::Manual => None,
        };
        match (by_mode, by_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hh: u64, mm: u64) -> SystemTime {
        // A day well after the epoch, at hh:mm UTC.
        UNIX_EPOCH + Duration::from_secs(20_000 * 86_400 + hh * 3600 + mm * 60)
    }

    fn policy(yaml: &str) -> Result<ChangePolicy, String> {
        let p: ChangePolicy = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
        p.validate().map(|()| p)
    }

    #[test]
    fn windows_parse_wrap_and_open() {
        let w = Window::parse("02:00-04:00").unwrap();
        assert!(w.contains(at(2, 0)) && w.contains(at(3, 59)));
        assert!(!w.contains(at(4, 0)) && !w.contains(at(1, 59)));
        assert_eq!(
            w.next_open(at(5, 0)),
            at(2, 0) + Duration::from_secs(86_400)
        );
        assert_eq!(w.next_open(at(1, 0)), at(2, 0));
        assert_eq!(w.next_open(at(3, 0)), at(3, 0));
        let night = Window::parse("23:30-00:30").unwrap();
        assert!(night.contains(at(23, 45)) && night.contains(at(0, 10)));
        assert!(!night.contains(at(12, 0)));
        assert_eq!(night.to_string(), "23:30-00:30");
        for bad in [
            "2-4",
            "02:00",
            "24:00-01:00",
            "02:60-03:00",
            "02:00-02:00",
            "2:00-04:00",
            "",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_policies_are_refused_by_key() {
        assert_eq!(policy("{}").unwrap(), ChangePolicy::default());
        let e = policy("apply: idel").unwrap_err();
        assert!(e.contains("idel") && e.contains("idle"), "{e}");
        let e = policy("apply: window").unwrap_err();
        assert!(e.contains("changes.window is not set"), "{e}");
        let e = policy("window: 02:00-04:00").unwrap_err();
        assert!(e.contains("only with `apply: window`"), "{e}");
        let e = policy("apply: window\nwindow: 2am-4am").unwrap_err();
        assert!(e.contains("HH:MM-HH:MM"), "{e}");
        let e = policy("deadline: -5m").unwrap_err();
        assert!(e.contains("-5m"), "{e}");
        let e = policy("deadline: 1000y").unwrap_err();
        assert!(e.contains("changes.deadline"), "{e}");
        let e = policy("deadline: 10s").unwrap_err();
        assert!(e.contains("from 1m"), "{e}");
        let e = policy("drain: 0s").unwrap_err();
        assert!(e.contains("changes.drain"), "{e}");
        let e = policy("drian: 5m").unwrap_err();
        assert!(e.contains("drian"), "{e}");
        let ok = policy("apply: window\nwindow: 02:00-04:00\ndeadline: 24h\ndrain: 5m").unwrap();
        assert_eq!(ok.deadline, Some(Span(Duration::from_secs(86_400))));
        assert_eq!(ok.drain, Span(Duration::from_secs(300)));
    }

    #[test]
    fn decisions() {
        let since = at(10, 0);
        let idle = ChangePolicy::default();
        assert_eq!(idle.decide(at(10, 1), since, 0), Some(false));
        assert_eq!(idle.decide(at(10, 1), since, 3), None);
        let manual = policy("apply: manual").unwrap();
        assert_eq!(manual.decide(at(10, 1), since, 0), None);
        assert_eq!(manual.next_chance(at(10, 1), since), None);
        let window = policy("apply: window\nwindow: 02:00-04:00").unwrap();
        assert_eq!(window.decide(at(10, 1), since, 0), None);
        assert_eq!(window.decide(at(2, 30), since, 0), Some(false));
        assert_eq!(window.decide(at(2, 30), since, 1), None);
        assert_eq!(
            window.next_chance(at(10, 1), since),
            Some(at(2, 0) + Duration::from_secs(86_400))
        );
        let deadline = policy("apply: manual\ndeadline: 1h").unwrap();
        assert_eq!(deadline.decide(at(10, 59), since, 2), None);
        assert_eq!(deadline.decide(at(11, 0), since, 2), Some(true));
        assert_eq!(deadline.decide(at(11, 0), since, 0), Some(false));
        assert_eq!(deadline.next_chance(at(10, 1), since), Some(at(11, 0)));
    }
}
