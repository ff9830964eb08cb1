//! One validator per kind of input, used by every entrance that lets a value in.
//!
//! A value can reach the product through `secrets set`, a secret store written by someone else,
//! `provision.yaml`, `extra.yaml`, a CLI flag or a daemon RPC parameter. Each kind of value has
//! one function here, and every entrance calls it, so what one door accepts another never
//! refuses later (an entrance that stores or signs something invalid is a bug):
//! - secret values by name: `secret_value` (behind `admin::validate_setting`; the CLI's
//!   `secrets set`, the daemon's `secrets.set` and `ensure`'s resolution
//!   both go through it, and parse with the same typed parsers below);
//!   (within the crate, the typed parsers behind it: `host_port`, `node_ip` (`NodeIp::parse`),
//!   `version`, `sha256_hex`, `unix_timestamp`, `grace_seconds`, …);
//! - token claims against LiveKit's limits: [`TokenLimits`] (room name and identity length in
//!   *bytes*, as livekit-server counts them, honouring an overlay's `limit:` section).

use crate::node_ip::NodeIp;
use crate::secret::{ApiKey, InvalidValue, Secret, validate_secret_text};
use crate::store::SecretName;
use crate::version::LivekitVersion;

/// The longest grace, and the furthest deadline, a key rotation accepts: 30 days (re-exported
/// as `rotate::MAX_GRACE`, where rotations are scheduled).
pub const MAX_GRACE: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

internal_item! {
/// Check `value` as the value of the secret `name`, by the rule `ensure` applies when it reads
/// it back, and return it as it is stored: normalized the way every reader reads it (surrounding
/// whitespace dropped where the reader trims it, a digest lower-cased). Names outside the
/// contract are free text (the store is the operator's), stored as given.
///
/// Every door calls it: `secrets set` (CLI and RPC, through `admin::validate_setting`), and the
/// readers of the store (`resolve`, the keyring) before their typed parse, so a value refused
/// at one door is refused at all, for the same reason.
///
/// Never echoes a secret value: the refusal of a secret name carries no value, and a shown value
/// is clipped ([`InvalidValue::new`]).
fn secret_value(name: &SecretName, value: &str) -> Result<String, InvalidValue> {
    // What every store can hold (one line, not empty, bounded), whatever the name.
    if let Some(reason) = crate::store::value_problem(value.as_bytes()) {
        return Err(InvalidValue::new(reason, None));
    }
    let trimmed = || value.trim().to_owned();
    match name.as_str() {
        "LIVEKIT_VERSION" => version(value).map(|_| trimmed()),
        "LIVEKIT_NODE_IP" => node_ip(value).map(|_| trimmed()),
        "LIVEKIT_API_KEY" | "LIVEKIT_API_KEY_PREVIOUS" | "LIVEKIT_API_KEY_NEXT" => {
            ApiKey::new(value).map(|k| k.as_str().to_owned())
        }
        "LIVEKIT_API_SECRET" | "LIVEKIT_API_SECRET_PREVIOUS" | "LIVEKIT_API_SECRET_NEXT" => {
            Secret::api_secret(value).map(|_| value.to_owned())
        }
        "LIVEKIT_REDIS_ADDRESS" => redis_address(value),
        "LIVEKIT_REDIS_PASSWORD" | "LIVEKIT_REDIS_SENTINEL_PASSWORD" => {
            redis_password(value).map(|()| value.to_owned())
        }
        "LIVEKIT_PROMETHEUS_PASSWORD" => prometheus_password(value).map(|()| value.to_owned()),
        "LIVEKIT_SHA256" => sha256_hex(value),
        "LIVEKIT_ROTATION_GRACE_UNTIL" | "LIVEKIT_ROTATION_DEADLINE" => {
            unix_timestamp(value).map(|secs| secs.to_string())
        }
        "LIVEKIT_ROTATION_GRACE" => grace_seconds(value).map(|secs| secs.to_string()),
        _ => Ok(value.to_owned()),
    }
}
}

/// Values of every shape the contract's names take, their near misses, whitespace around them,
/// injections and sizes, for the tests that prove every door (CLI, RPC, store) agrees: each door
/// is fed each `(name, value)` of `KNOWN` × these, and must accept exactly what
/// [`secret_value`] accepts, storing what it returns.
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub fn door_samples() -> Vec<String> {
    let mut out: Vec<String> = [
        "v1.7.2",
        "1.7.2 ",
        " 1.13.5",
        "1.7",
        "203.0.113.7",
        " 203.0.113.7 ",
        "203.0.113.7,2001:db8::7",
        "203.0.113.7,198.51.100.1",
        "999.1.1.1",
        "10.0.0.1\nExecStartPre=/bin/id",
        "10.0.0.5:6379",
        "10.0.0.5:6379 ",
        "h:99999",
        "4102444800",
        " 4102444800",
        "2026-01-01T00:00:00Z",
        "3600",
        "99999999",
        "-1",
        "APIdoorsKey1",
        "API doors",
        "doorsSecretdoorsSecretdoorsSecretdoorsSecret",
        "doorsSecretdoorsSecretdoorsSecretdoorsSecret'",
        "-doorsSecretdoorsSecretdoorsSecretdoorsSecret",
        "short",
        "pw with spaces",
        "",
        " ",
        "tab\there",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    out.push("a".repeat(64));
    out.push("A".repeat(64));
    out.push("g".repeat(64));
    out.push("1".repeat(OVERSIZED_SAMPLE));
    out
}

/// A value just over what every store holds (4096 bytes).
#[cfg(any(test, feature = "testing"))]
const OVERSIZED_SAMPLE: usize = crate::secret::MAX_SECRET_LEN + 1;

/// `LIVEKIT_VERSION`: `v1.7.2` or `1.7.2` (surrounding whitespace ignored).
pub(crate) fn version(value: &str) -> Result<LivekitVersion, InvalidValue> {
    LivekitVersion::parse(value.trim())
}

/// `LIVEKIT_NODE_IP`: one address or a dual-stack pair ([`NodeIp::parse`]).
pub(crate) fn node_ip(value: &str) -> Result<NodeIp, InvalidValue> {
    NodeIp::parse(value)
}

/// `LIVEKIT_REDIS_ADDRESS`: `host:port` (surrounding whitespace ignored); the trimmed text.
pub(crate) fn redis_address(value: &str) -> Result<String, InvalidValue> {
    let trimmed = value.trim();
    host_port(trimmed)?;
    Ok(trimmed.to_owned())
}

/// `LIVEKIT_REDIS_PASSWORD`, `LIVEKIT_REDIS_SENTINEL_PASSWORD`: secret text that survives YAML
/// quoting; never echoed.
pub(crate) fn redis_password(value: &str) -> Result<(), InvalidValue> {
    validate_secret_text(value, 1)
}

/// `LIVEKIT_PROMETHEUS_PASSWORD`: secret text that survives YAML quoting and HTTP basic auth;
/// never echoed.
pub(crate) fn prometheus_password(value: &str) -> Result<(), InvalidValue> {
    validate_secret_text(value, 1)
}

/// `LIVEKIT_ROTATION_GRACE_UNTIL`: seconds since the Unix epoch.
pub(crate) fn unix_timestamp(value: &str) -> Result<u64, InvalidValue> {
    value
        .trim()
        .parse::<u64>()
        .map_err(|_| InvalidValue::new("is not a unix timestamp", Some(value.to_owned())))
}

/// `LIVEKIT_ROTATION_GRACE`: whole seconds, at most [`MAX_GRACE`].
pub(crate) fn grace_seconds(value: &str) -> Result<u64, InvalidValue> {
    let max = MAX_GRACE.as_secs();
    match value.trim().parse::<u64>() {
        Ok(secs) if secs <= max => Ok(secs),
        Ok(_) => Err(InvalidValue::new(
            format!("is longer than the longest grace, {max} seconds (30 days)"),
            Some(value.to_owned()),
        )),
        Err(_) => Err(InvalidValue::new(
            "is not a number of seconds",
            Some(value.to_owned()),
        )),
    }
}

/// `LIVEKIT_SHA256`: 64 hex digits (surrounding whitespace ignored), lower-cased.
pub(crate) fn sha256_hex(value: &str) -> Result<String, InvalidValue> {
    let trimmed = value.trim();
    if trimmed.len() != 64 || !trimmed.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(InvalidValue::new(
            "is not a SHA-256 (64 hex digits)",
            Some(value.to_owned()),
        ));
    }
    Ok(trimmed.to_ascii_lowercase())
}

/// Text meant as a URL (a webhook URL, a release base URL): why it cannot be taken as written,
/// if it cannot. The URL parser silently *drops* tabs and newlines (WHATWG), so
/// `https://h/x\nExecStart=…` parses as `https://h/xExecStart=…` while the text kept and
/// rendered still holds the newline: whitespace and control characters are refused before
/// parsing, and so are `"` and `\` (a URL carries them percent-encoded), so the text is
/// rendered, masked and matched exactly as written.
pub(crate) fn url_text_problem(text: &str) -> Option<&'static str> {
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("contains whitespace or a control character (a newline, a tab…)");
    }
    if text.contains(['"', '\\']) {
        return Some("contains '\"' or '\\' (percent-encode them)");
    }
    None
}

/// A `host:port` address: a host name or IP (IPv6 in brackets) and a port 1-65535.
pub(crate) fn host_port(address: &str) -> Result<(), InvalidValue> {
    let refuse = |why: &str| InvalidValue::new(why.to_owned(), Some(address.to_owned()));
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| refuse("is not host:port"))?;
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':'))
    {
        return Err(refuse("has an invalid host part"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(refuse("has an invalid port (1-65535)")),
    }
}

/// livekit-server's default `limit.max_room_name_length` and
/// `limit.max_participant_identity_length`, in bytes.
pub const DEFAULT_NAME_LIMIT: usize = 256;

/// The limits livekit-server applies to the claims of a token at join time (`limit:` in
/// livekit.yaml). A token that breaks them is refused by the server with HTTP 400, far from the
/// cause; the product refuses to mint it instead. A parsed `livekit.yaml` gives its limits
/// (`LivekitYaml::token_limits`), the published one [`TokenLimits::provisioned`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLimits {
    /// `limit.max_room_name_length`, in bytes.
    pub max_room_name_length: usize,
    /// `limit.max_participant_identity_length`, in bytes.
    pub max_participant_identity_length: usize,
}

impl Default for TokenLimits {
    fn default() -> Self {
        Self {
            max_room_name_length: DEFAULT_NAME_LIMIT,
            max_participant_identity_length: DEFAULT_NAME_LIMIT,
        }
    }
}

impl TokenLimits {
    /// The limits of a `limit:` section: its two keys where present and positive (livekit-server
    /// treats 0 as "use the default"), else the defaults.
    pub fn from_limit_section(limit: Option<&serde_yaml::Value>) -> Self {
        let read = |key: &str| {
            limit
                .and_then(|l| l.get(key))
                .and_then(serde_yaml::Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .filter(|n| *n > 0)
                .unwrap_or(DEFAULT_NAME_LIMIT)
        };
        Self {
            max_room_name_length: read("max_room_name_length"),
            max_participant_identity_length: read("max_participant_identity_length"),
        }
    }

    /// Check a participant identity: 1 to `max_participant_identity_length` bytes.
    pub fn identity(&self, identity: &str) -> Result<(), InvalidValue> {
        bounded(
            "identity",
            identity,
            self.max_participant_identity_length,
            "limit.max_participant_identity_length",
        )
    }

    /// Check a room name: 1 to `max_room_name_length` bytes.
    pub fn room(&self, room: &str) -> Result<(), InvalidValue> {
        bounded(
            "room name",
            room,
            self.max_room_name_length,
            "limit.max_room_name_length",
        )
    }
}

fn bounded(what: &str, value: &str, max: usize, key: &str) -> Result<(), InvalidValue> {
    let shown = || {
        let head: String = value.chars().take(40).collect();
        Some(if head.len() < value.len() {
            format!("{head}…")
        } else {
            head
        })
    };
    if value.is_empty() {
        return Err(InvalidValue::new(
            format!("is not a {what}: it is empty"),
            shown(),
        ));
    }
    if value.len() > max {
        return Err(InvalidValue::new(
            format!(
                "is not a valid {what}: it is {} bytes long and livekit-server accepts at most {max} \
                 ({key}); shorten it, or raise {key} in extra.yaml",
                value.len()
            ),
            shown(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KNOWN;

    #[test]
    fn the_two_reported_defects_are_refused() {
        for bad in ["not a host", "h:99999", "h:0", ":80", "host"] {
            let err = secret_value(&SecretName::LIVEKIT_REDIS_ADDRESS, bad).unwrap_err();
            assert_eq!(err.value.as_deref(), Some(bad), "{err}");
        }
        assert!(secret_value(&SecretName::LIVEKIT_REDIS_ADDRESS, "10.0.0.5:6379").is_ok());
        let limits = TokenLimits::default();
        let err = limits.room(&"r".repeat(300)).unwrap_err().to_string();
        assert!(
            err.contains("300 bytes") && err.contains("max_room_name_length"),
            "{err}"
        );
        assert!(limits.room(&"r".repeat(256)).is_ok());
    }

    #[test]
    fn lengths_are_bytes_not_characters() {
        let limits = TokenLimits::default();
        // 128 characters of 2 bytes each: 256 bytes, accepted; one more is over.
        assert!(limits.identity(&"é".repeat(128)).is_ok());
        assert!(limits.identity(&"é".repeat(129)).is_err());
        assert!(limits.identity("").is_err());
    }

    #[test]
    fn overlay_limits_are_honoured() {
        let section: serde_yaml::Value =
            serde_yaml::from_str("max_room_name_length: 10\nmax_participant_identity_length: 0\n")
                .unwrap();
        let limits = TokenLimits::from_limit_section(Some(&section));
        assert_eq!(limits.max_room_name_length, 10);
        assert_eq!(limits.max_participant_identity_length, DEFAULT_NAME_LIMIT);
        assert!(limits.room("eleven-char").is_err());
        assert_eq!(
            TokenLimits::from_limit_section(None),
            TokenLimits::default()
        );
    }

    #[test]
    fn secret_values_are_never_echoed() {
        for name in [
            SecretName::LIVEKIT_API_SECRET,
            SecretName::LIVEKIT_API_SECRET_PREVIOUS,
            SecretName::LIVEKIT_REDIS_PASSWORD,
        ] {
            let err = secret_value(&name, "bad value with spaces 'and quotes'").unwrap_err();
            assert!(err.value.is_none(), "{name}: {err}");
            assert!(!err.to_string().contains("spaces"), "{name}: {err}");
        }
    }

    #[test]
    fn values_are_stored_as_every_reader_reads_them() {
        let stored = |name: &SecretName, value: &str| secret_value(name, value).unwrap();
        assert_eq!(stored(&SecretName::LIVEKIT_VERSION, "1.7.2 "), "1.7.2");
        assert_eq!(
            stored(&SecretName::LIVEKIT_NODE_IP, " 10.0.0.1 "),
            "10.0.0.1"
        );
        assert_eq!(
            stored(&SecretName::LIVEKIT_SHA256, &"AB".repeat(32)),
            "ab".repeat(32)
        );
        assert_eq!(stored(&SecretName::LIVEKIT_ROTATION_GRACE, " 0060"), "60");
        assert_eq!(
            stored(&SecretName::LIVEKIT_REDIS_ADDRESS, "h:6379 "),
            "h:6379"
        );
        // The typed readers read the stored text as they read the given one.
        for (name, given) in [
            (SecretName::LIVEKIT_VERSION, " v1.7.2"),
            (SecretName::LIVEKIT_NODE_IP, "10.0.0.1,2001:db8::1 "),
        ] {
            let once = stored(&name, given);
            assert_eq!(stored(&name, &once), once, "{name} is not idempotent");
        }
    }

    #[test]
    fn a_huge_value_is_refused_without_being_echoed() {
        let huge = "1".repeat(10 << 20);
        for name in KNOWN.iter().map(|k| &k.name) {
            let err = secret_value(name, &huge).unwrap_err().to_string();
            assert!(err.len() < 300, "{name}: {} bytes", err.len());
        }
        // Under the store's 4096-byte bound the typed parser speaks, clipped.
        let long = "1".repeat(4000);
        let err = secret_value(&SecretName::LIVEKIT_NODE_IP, &long).unwrap_err();
        assert!(err.to_string().len() < 300, "{err}");
    }

    #[test]
    fn the_descriptions_say_the_unit_the_validator_wants() {
        for k in KNOWN {
            let unix = secret_value(&k.name, "1767225600").is_ok();
            let rfc3339 = secret_value(&k.name, "2026-01-01T00:00:00Z").is_ok();
            if unix && !rfc3339 && k.name.as_str().starts_with("LIVEKIT_ROTATION_") {
                assert!(
                    k.description.contains("seconds") && !k.description.contains("RFC 3339"),
                    "{}: {}",
                    k.name,
                    k.description
                );
            }
        }
    }

    #[test]
    fn every_contract_name_has_a_rule() {
        // A value no name accepts: each known name must refuse it (none falls through to
        // "free text").
        for k in KNOWN {
            assert!(
                secret_value(&k.name, "\u{1}").is_err(),
                "{} accepts anything",
                k.name
            );
        }
    }
}
