//! The wall clock, read in one place.
//!
//! The library takes the time as a value where one instant is enough (`now` in
//! [`EnsureOptions`](crate::EnsureOptions), `PublishOptions`, rotation,
//! tokens) and as a [`Clock`] where it reads the time as it goes (the daemon, downloads, the
//! supervisor). Their defaults are [`system`], the only reading of the real clock in the library;
//! tests pass a fixed one. (A test in `fsio` fails on any other `SystemTime::now` in the library.)
//!
//! Times are shown in one form, [`rfc3339`], by the library and the control plane alike.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the wall-clock time.
pub type Clock = fn() -> SystemTime;

/// The real wall clock.
pub fn system() -> SystemTime {
    SystemTime::now()
}

/// The latest moment RFC 3339 (a four-digit year) can show: 9999-12-31T23:59:59Z.
const LATEST_SECS: u64 = 253_402_300_799;

/// The moment `secs` seconds after the Unix epoch (a value stored as text, such as
/// `LIVEKIT_ROTATION_GRACE_UNTIL`); one beyond 9999-12-31T23:59:59Z is taken as that moment, so
/// every value can be held and shown.
pub fn from_unix_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs.min(LATEST_SECS))
}

/// `t` as RFC 3339, UTC, whole seconds (`2026-05-01T12:00:00Z`): how every time is shown in
/// JSON. Never fails: a time before the epoch shows as the epoch, one after year 9999 as its
/// last second.
pub fn rfc3339(t: SystemTime) -> String {
    let latest = UNIX_EPOCH + Duration::from_secs(LATEST_SECS);
    humantime::format_rfc3339_seconds(t.clamp(UNIX_EPOCH, latest)).to_string()
}

/// An optional time as an RFC 3339 string in serde (`#[serde(with = …)]`): what [`rfc3339`]
/// prints, read back by any RFC 3339 parser.
pub mod optional_rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize `t` as [`rfc3339`](super::rfc3339) text, or `null`.
    #[allow(
        clippy::ref_option,
        reason = "the signature serde's `with` calls (clippy flags it only while the module is private)"
    )]
    pub fn serialize<S: Serializer>(
        t: &Option<SystemTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => serializer.serialize_some(&super::rfc3339(*t)),
            None => serializer.serialize_none(),
        }
    }

    /// Read RFC 3339 text, or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// A time as an RFC 3339 string in serde (`#[serde(with = …)]`), like [`optional_rfc3339`].
pub mod rfc3339_serde {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize `t` as [`rfc3339`](super::rfc3339) text.
    pub fn serialize<S: Serializer>(t: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::rfc3339(*t))
    }

    /// Read RFC 3339 text.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_time_has_an_rfc3339_form() {
        assert_eq!(rfc3339(from_unix_secs(1_000_000)), "1970-01-12T13:46:40Z");
        assert_eq!(rfc3339(from_unix_secs(u64::MAX)), "9999-12-31T23:59:59Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00Z"
        );
        let t = from_unix_secs(1_700_000_000);
        assert_eq!(humantime::parse_rfc3339(&rfc3339(t)).unwrap(), t);
    }
}
