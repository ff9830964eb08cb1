//! Validated secret names and the names of the external contract (docs/DESIGN.md "Secret names").

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use crate::secret::InvalidValue;

/// The longest secret name we accept.
pub const MAX_NAME_LEN: usize = 128;

/// The name of a value in a secret store: 1 to [`MAX_NAME_LEN`] characters of `[A-Z0-9_]`.
///
/// Names are not secret: they appear in errors, logs and helper command lines.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretName(Cow<'static, str>);

impl SecretName {
    /// The pinned livekit-server version; unset means "control plane only, no download".
    pub const LIVEKIT_VERSION: Self = Self::known("LIVEKIT_VERSION");
    /// The address this node advertises (`rtc.node_ip`).
    pub const LIVEKIT_NODE_IP: Self = Self::known("LIVEKIT_NODE_IP");
    /// The API key (minted when absent).
    pub const LIVEKIT_API_KEY: Self = Self::known("LIVEKIT_API_KEY");
    /// The API secret (minted when absent).
    pub const LIVEKIT_API_SECRET: Self = Self::known("LIVEKIT_API_SECRET");
    /// `host:port` of the Redis LiveKit uses for multi-node routing, for a whole fleet.
    pub const LIVEKIT_REDIS_ADDRESS: Self = Self::known("LIVEKIT_REDIS_ADDRESS");
    /// The password of that Redis.
    pub const LIVEKIT_REDIS_PASSWORD: Self = Self::known("LIVEKIT_REDIS_PASSWORD");
    /// The basic-auth password of the Prometheus metrics endpoint (minted when absent and
    /// provision.yaml sets `prometheus:`).
    pub const LIVEKIT_PROMETHEUS_PASSWORD: Self = Self::known("LIVEKIT_PROMETHEUS_PASSWORD");
    /// The password of the sentinels of that Redis (with `redis_sentinel_*` in provision.yaml).
    pub const LIVEKIT_REDIS_SENTINEL_PASSWORD: Self =
        Self::known("LIVEKIT_REDIS_SENTINEL_PASSWORD");
    /// A pinned SHA-256 of the livekit-server release archive.
    pub const LIVEKIT_SHA256: Self = Self::known("LIVEKIT_SHA256");
    /// The API key being rotated out, kept during the grace period.
    pub const LIVEKIT_API_KEY_PREVIOUS: Self = Self::known("LIVEKIT_API_KEY_PREVIOUS");
    /// The API secret being rotated out, kept during the grace period.
    pub const LIVEKIT_API_SECRET_PREVIOUS: Self = Self::known("LIVEKIT_API_SECRET_PREVIOUS");
    /// When the rotation grace period ends, in seconds since the Unix epoch (the previous key is
    /// then dropped; in the past or `0`: no grace).
    pub const LIVEKIT_ROTATION_GRACE_UNTIL: Self = Self::known("LIVEKIT_ROTATION_GRACE_UNTIL");
    /// The API key staged by `secrets rotate`: listed in `livekit.yaml`, not signed with until
    /// it is promoted. Equal to `LIVEKIT_API_KEY` (or absent): nothing is staged.
    pub const LIVEKIT_API_KEY_NEXT: Self = Self::known("LIVEKIT_API_KEY_NEXT");
    /// The API secret of the staged key.
    pub const LIVEKIT_API_SECRET_NEXT: Self = Self::known("LIVEKIT_API_SECRET_NEXT");
    /// The grace of the staged rotation, in seconds: at promotion, the grace ends that long after.
    pub const LIVEKIT_ROTATION_GRACE: Self = Self::known("LIVEKIT_ROTATION_GRACE");
    /// The operator's deadline for retiring the previous key (seconds since the Unix epoch; `0`:
    /// none): the grace is never extended past it.
    pub const LIVEKIT_ROTATION_DEADLINE: Self = Self::known("LIVEKIT_ROTATION_DEADLINE");

    /// Validate a name.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidValue> {
        let name = name.into();
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(InvalidValue::new(
                format!("is not a secret name: it must be 1 to {MAX_NAME_LEN} characters long"),
                Some(name),
            ));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_'))
        {
            return Err(InvalidValue::new(
                format!(
                    "is not a secret name: it contains {bad:?}; only A-Z, 0-9 and '_' are allowed"
                ),
                Some(name),
            ));
        }
        Ok(Self(Cow::Owned(name)))
    }

    const fn known(name: &'static str) -> Self {
        Self(Cow::Borrowed(name))
    }

    /// The name's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether values under this name are secret (never shown by `secrets list`). Names outside
    /// [`KNOWN`] are treated as secret.
    pub fn is_secret(&self) -> bool {
        KNOWN
            .iter()
            .find(|k| k.name == *self)
            .is_none_or(|k| k.is_secret)
    }
}

impl fmt::Debug for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretName({})", self.0)
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SecretName {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl serde::Serialize for SecretName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl schemars::JsonSchema for SecretName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SecretName".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A secret name: 1 to 128 characters of A-Z, 0-9 and '_'",
            "type": "string",
            "pattern": "^[A-Z0-9_]{1,128}$"
        })
    }
}

impl<'de> serde::Deserialize<'de> for SecretName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::new(text).map_err(serde::de::Error::custom)
    }
}

/// A name of the external contract and whether its value is secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownSecret {
    /// The name.
    pub name: SecretName,
    /// True when the value must never be shown (API secret, Redis password).
    pub is_secret: bool,
    /// One line saying what the value is.
    pub description: &'static str,
}

/// "known names: LIVEKIT_VERSION, …": the hint of a refused name.
pub fn known_names_hint() -> String {
    format!(
        "known names: {}",
        KNOWN
            .iter()
            .map(|k| k.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Every name of the external contract, in the order `secrets list` shows them.
pub const KNOWN: &[KnownSecret] = &[
    KnownSecret {
        name: SecretName::LIVEKIT_VERSION,
        is_secret: false,
        description: "livekit-server version to install (unset: control plane only)",
    },
    KnownSecret {
        name: SecretName::LIVEKIT_NODE_IP,
        is_secret: false,
        description: "IP address this node advertises, or `<ipv4>,<ipv6>` (unset: 127.0.0.1)",
    },
    KnownSecret {
        name: SecretName::LIVEKIT_API_KEY,
        is_secret: false,
        description: "API key (minted when absent)",
    },
    KnownSecret {
        name: SecretName::LIVEKIT_API_SECRET,
        is_secret: true,
        description: "API secret (minted when absent)",
    },
    KnownSecret {
        name: SecretName::LIVEKIT_REDIS_ADDRESS,
        is_secret: false,
        description: "host:port of the Redis for LiveKit multi-node routing",
    },
    KnownSecret {
        name: SecretName::LIVEKIT_REDIS_PASSWORD,
        is_secret: true,
        description: "password of the Redis for LiveKit multi-node routing",
    },
    KnownSecret {
        name: SecretName::LIVEKIT_REDIS_SENTINEL_PASSWORD,
        is_secret: true,
        description: "password of the sentinels of that Redis (redis_sentinel_* in provision.yaml)",
    },
    KnownSecret {
        name: SecretName::LIVEKIT_PROMETHEUS_PASSWORD,
        is_secret: true,
        description: "basic-auth password of the Prometheus metrics endpoint (minted when absent and provision.yaml sets prometheus:)",
    },
    KnownSecret {
        name: SecretName::LIVEKIT_SHA256,
        is_secret: false,
        description: "pinned SHA-256 of the livekit-server release archive",
    },
    KnownSecret {
        name: SecretName::LIVEKIT_API_KEY_PREVIOUS,
        is_secret: false,
        description: "API key being rotated out (kept during the grace period)",
    },
    KnownSecret {
        name: SecretName::LIVEKIT_API_SECRET_PREVIOUS,
        is_secret: true,
        description: "API secret being rotated out (kept during the grace period)",
    },
    KnownSecret {
        name: SecretName::LIVEKIT_ROTATION_GRACE_UNTIL,
        is_secret: false,
        description: "end of the rotation grace period (seconds since the Unix epoch)",
    },
    KnownSecret {
        name: SecretName::LIVEKIT_API_KEY_NEXT,
        is_secret: false,
        description: "API key staged by `secrets rotate`: in livekit.yaml, signed with once promoted (equal to LIVEKIT_API_KEY: nothing staged)",
    },
    KnownSecret {
        name: SecretName::LIVEKIT_API_SECRET_NEXT,
        is_secret: true,
        description: "API secret of the staged key",
    },
    KnownSecret {
        name: SecretName::LIVEKIT_ROTATION_GRACE,
        is_secret: false,
        description: "grace of the staged rotation in seconds, applied at promotion",
    },
    KnownSecret {
        name: SecretName::LIVEKIT_ROTATION_DEADLINE,
        is_secret: false,
        description: "latest retirement of the previous key, accepting that participants must rejoin (seconds since the Unix epoch; 0: none)",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_are_valid_and_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for k in KNOWN {
            assert_eq!(SecretName::new(k.name.as_str()).unwrap(), k.name);
            assert!(seen.insert(k.name.clone()), "{} twice", k.name);
        }
        assert_eq!(KNOWN.len(), 16);
    }

    #[test]
    fn secrecy_of_contract_names() {
        assert!(!SecretName::LIVEKIT_API_KEY.is_secret());
        assert!(!SecretName::LIVEKIT_VERSION.is_secret());
        assert!(SecretName::LIVEKIT_API_SECRET.is_secret());
        assert!(SecretName::LIVEKIT_REDIS_PASSWORD.is_secret());
        assert!(SecretName::LIVEKIT_PROMETHEUS_PASSWORD.is_secret());
        assert!(SecretName::LIVEKIT_REDIS_SENTINEL_PASSWORD.is_secret());
        assert!(SecretName::LIVEKIT_API_SECRET_PREVIOUS.is_secret());
        assert!(SecretName::LIVEKIT_API_SECRET_NEXT.is_secret());
        assert!(!SecretName::LIVEKIT_API_KEY_NEXT.is_secret());
        assert!(!SecretName::LIVEKIT_ROTATION_GRACE.is_secret());
        assert!(!SecretName::LIVEKIT_ROTATION_DEADLINE.is_secret());
        assert!(SecretName::new("SOMETHING_ELSE").unwrap().is_secret());
    }

    #[test]
    fn validation() {
        assert!("A_1".parse::<SecretName>().is_ok());
        for bad in ["", "a", "A-B", "A B", "É", &"A".repeat(129)] {
            assert!(SecretName::new(bad).is_err(), "{bad:?}");
        }
        assert!(SecretName::new("A".repeat(128)).is_ok());
    }

    #[test]
    fn serde_round_trip_validates() {
        let json = serde_json::to_string(&SecretName::LIVEKIT_API_KEY).unwrap();
        assert_eq!(json, "\"LIVEKIT_API_KEY\"");
        let back: SecretName = serde_json::from_str(&json).unwrap();
        assert_eq!(back, SecretName::LIVEKIT_API_KEY);
        assert!(serde_json::from_str::<SecretName>("\"lower\"").is_err());
    }
}
