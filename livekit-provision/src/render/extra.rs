//! The operator overlay `extra.yaml`: parsed, checked and normalized before anything is written.
//!
//! Every key, at every level, must be one livekit-server knows ([`crate::config_model`]) with a
//! value of the shape it expects, and none that livekit-provision manages itself: keys, ports,
//! the node IP, Redis routing, the log level, and what provision.yaml's production settings
//! render (bind addresses, the webhook key and URLs, metrics). Whether the pinned release knows each key is
//! checked once the version is known ([`ExtraOverlay::check_release`]).

use serde_yaml::{Mapping, Value};

use super::YamlSyntaxError;
use crate::config_model::{self, ModelError, Release, kind_of, scalar_name};
use crate::inputs::ExtraOverlay;

/// Top-level sections merged key by key into the sections livekit-provision writes.
const MERGED_SECTIONS: &[&str] = &["rtc", "logging", "webhook", "turn"];

/// Keys (dotted paths) the overlay may not set, each with how to set it instead.
const MANAGED: &[(&str, &str)] = &[
    ("port", "set `port` in provision.yaml instead"),
    (
        "keys",
        "API keys come from the secret store: change them with `livekit-provision secrets rotate` (or seed a new node with `secrets set LIVEKIT_API_KEY` / `LIVEKIT_API_SECRET` before its first ensure)",
    ),
    (
        "key_file",
        "API keys come from the secret store: change them with `livekit-provision secrets rotate` (or seed a new node with `secrets set LIVEKIT_API_KEY` / `LIVEKIT_API_SECRET` before its first ensure)",
    ),
    (
        "redis",
        "set `redis_address` (or `redis_sentinel_master_name` and `redis_sentinel_addresses`, or `redis_cluster_addresses`), `redis_username`, `redis_db`, `redis_tls` and `redis_tls_*_file` in provision.yaml and the passwords with `livekit-provision secrets set LIVEKIT_REDIS_PASSWORD` (`LIVEKIT_REDIS_SENTINEL_PASSWORD`)",
    ),
    (
        "development",
        "development mode swaps in placeholder keys and a single UDP port; remove it (a provisioned node always runs with real keys)",
    ),
    (
        "rtc.node_ip",
        "set the node IP with `livekit-provision secrets set LIVEKIT_NODE_IP <address>`",
    ),
    (
        "rtc.tcp_port",
        "set `rtc_tcp_port` in provision.yaml instead",
    ),
    (
        "rtc.port_range_start",
        "set `rtc_port_range_start` in provision.yaml instead",
    ),
    (
        "rtc.port_range_end",
        "set `rtc_port_range_end` in provision.yaml instead",
    ),
    (
        "rtc.udp_port",
        "set `rtc_udp_port` in provision.yaml instead (it replaces the UDP port range)",
    ),
    (
        "rtc.enable_loopback_candidate",
        "set `rtc_enable_loopback_candidate` in provision.yaml instead",
    ),
    (
        "rtc.use_external_ip",
        "set `use_external_ip: true` in provision.yaml (STUN discovery), or the node IP with `livekit-provision secrets set LIVEKIT_NODE_IP <public address>`",
    ),
    (
        "bind_addresses",
        "set `bind_addresses` in provision.yaml instead (the health probe follows it)",
    ),
    (
        "webhook.api_key",
        "webhooks are signed with the current managed API key, rendered automatically: set `webhook: {urls: [...]}` in provision.yaml",
    ),
    (
        "webhook.urls",
        "set `webhook: {urls: [...]}` in provision.yaml (the current managed API key signs them)",
    ),
    (
        "prometheus",
        "set `prometheus: {port: N}` in provision.yaml; its basic-auth password is minted into the secret store as LIVEKIT_PROMETHEUS_PASSWORD",
    ),
    (
        "prometheus_port",
        "set `prometheus: {port: N}` in provision.yaml (prometheus_port is deprecated and would override it); its basic-auth password is minted into the secret store",
    ),
    ("logging.level", "set `log_level` in provision.yaml instead"),
    (
        "turn.enabled",
        "set `enabled` in the `turn:` section of provision.yaml instead (it is checked there)",
    ),
    (
        "turn.domain",
        "set `domain` in the `turn:` section of provision.yaml instead (it is checked there)",
    ),
    (
        "turn.tls_port",
        "set `tls_port` in the `turn:` section of provision.yaml instead (it is checked there)",
    ),
    (
        "turn.udp_port",
        "set `udp_port` in the `turn:` section of provision.yaml instead (it is checked there)",
    ),
    (
        "turn.relay_range_start",
        "set `relay_range_start` in the `turn:` section of provision.yaml instead (it is checked there)",
    ),
    (
        "turn.relay_range_end",
        "set `relay_range_end` in the `turn:` section of provision.yaml instead (it is checked there)",
    ),
    (
        "turn.cert_file",
        "set `cert_file` in the `turn:` section of provision.yaml instead (it is checked there)",
    ),
    (
        "turn.key_file",
        "set `key_file` in the `turn:` section of provision.yaml instead (it is checked there)",
    ),
    (
        "turn.external_tls",
        "set `external_tls` in the `turn:` section of provision.yaml instead (it is checked there)",
    ),
    (
        "log_level",
        "set `log_level` in provision.yaml instead (livekit-server copies this deprecated key into `logging.level`)",
    ),
];

/// Why `extra.yaml` was refused. Every variant names the offending key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtraError {
    /// Not YAML at all.
    #[error("extra.yaml is not valid YAML")]
    Syntax {
        /// The YAML parser's complaint, with quoted input removed.
        #[source]
        source: YamlSyntaxError,
    },
    /// The document is a list or a scalar rather than a mapping.
    #[error("extra.yaml must be a mapping of livekit.yaml keys, but it is {found}")]
    NotAMapping {
        /// What the document is instead (`a list`, `a string`, …).
        found: &'static str,
    },
    /// A key livekit-provision manages.
    #[error("extra.yaml sets `{key}`, which livekit-provision manages: {fix}")]
    Managed {
        /// The dotted path of the key (`port`, `rtc.node_ip`).
        key: String,
        /// How to set it instead.
        fix: &'static str,
    },
    /// A key livekit-server does not know there, a key the pinned release lacks, or a value of
    /// the wrong shape; the error names the dotted path.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A YAML feature livekit.yaml never needs: a YAML tag, or a key that is not a string.
    #[error("extra.yaml: `{path}` uses {what}, which livekit.yaml does not accept")]
    Unsupported {
        /// Where (dotted path).
        path: String,
        /// The feature (`a YAML tag`, `a non-string key`).
        what: &'static str,
    },
}

impl crate::error_chain::Hint for ExtraError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::Syntax { .. } => Some("fix the YAML syntax of extra.yaml".to_owned()),
            Self::NotAMapping { .. } => {
                Some("write extra.yaml as `key: value` lines, e.g. `room:`".to_owned())
            }
            Self::Managed { fix, .. } => Some((*fix).to_owned()),
            Self::Model(source) => Some(source.hint()),
            Self::Unsupported { .. } => Some("use plain strings as keys and no `!tag`s".to_owned()),
        }
    }
}

impl ExtraOverlay {
    /// Parse and check the text of `extra.yaml`. An empty file (or one holding only comments) is
    /// an empty overlay.
    ///
    /// ```
    /// use livekit_provision::ExtraOverlay;
    ///
    /// let overlay = ExtraOverlay::parse("room:\n  empty_timeout: 600\n")?;
    /// assert!(!overlay.is_empty());
    /// let refused = ExtraOverlay::parse("port: 9000\n").unwrap_err();
    /// assert!(refused.to_string().contains("set `port` in provision.yaml instead"));
    /// # Ok::<(), livekit_provision::ExtraError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Self, ExtraError> {
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_yaml::from_str(text).map_err(|e| ExtraError::Syntax {
                source: YamlSyntaxError::new(&e),
            })?
        };
        match value {
            Value::Null => Ok(Self::default()),
            Value::Mapping(mapping) => Self::from_mapping(mapping),
            other => Err(ExtraError::NotAMapping {
                found: kind_of(&other),
            }),
        }
    }

    /// Check an overlay given as a mapping, as [`ExtraOverlay::parse`] does: against every
    /// modelled release (the pinned one is checked by [`ExtraOverlay::check_release`]). Empty
    /// `rtc:` and `logging:` sections are dropped (they add nothing to the sections we write).
    pub fn from_mapping(mut mapping: Mapping) -> Result<Self, ExtraError> {
        for (key, value) in &mapping {
            let Value::String(key) = key else {
                return Err(ExtraError::Unsupported {
                    path: scalar_name(key),
                    what: "a non-string key",
                });
            };
            check_plain(value, key)?;
        }
        if let Some((key, fix)) = MANAGED.iter().find(|(path, _)| sets(&mapping, path)) {
            return Err(ExtraError::Managed {
                key: (*key).to_owned(),
                fix,
            });
        }
        config_model::check(&mapping, None)?;
        for section in MERGED_SECTIONS {
            let empty = match mapping.get(*section) {
                Some(Value::Null) => true,
                Some(Value::Mapping(m)) => m.is_empty(),
                _ => false,
            };
            if empty {
                mapping.shift_remove(*section);
            }
        }
        Ok(Self { mapping })
    }

    /// Check that livekit-server `release` knows every key of the overlay (a key a newer release
    /// added makes an older binary refuse its config and exit).
    pub fn check_release(&self, release: Release) -> Result<(), ExtraError> {
        Ok(config_model::check(&self.mapping, Some(release))?)
    }
}

/// Does `mapping` set the dotted `path` (`rtc.node_ip`)?
fn sets(mapping: &Mapping, path: &str) -> bool {
    match path.split_once('.') {
        None => mapping.contains_key(path),
        Some((section, rest)) => match mapping.get(section) {
            Some(Value::Mapping(inner)) => sets(inner, rest),
            _ => false,
        },
    }
}

/// Refuse YAML tags and non-string keys anywhere below `path`.
fn check_plain(value: &Value, path: &str) -> Result<(), ExtraError> {
    match value {
        Value::Tagged(_) => Err(ExtraError::Unsupported {
            path: path.to_owned(),
            what: "a YAML tag",
        }),
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| check_plain(item, &format!("{path}[{i}]"))),
        Value::Mapping(map) => map.iter().try_for_each(|(key, item)| {
            let Value::String(key) = key else {
                return Err(ExtraError::Unsupported {
                    path: format!("{path}.{}", scalar_name(key)),
                    what: "a non-string key",
                });
            };
            check_plain(item, &format!("{path}.{key}"))
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::error_chain::Hint;
    use super::*;

    #[test]
    fn empty_and_comment_only_files_are_empty_overlays() {
        for text in ["", "\n", "# nothing yet\n", "---\n"] {
            assert!(ExtraOverlay::parse(text).unwrap().is_empty(), "{text:?}");
        }
    }

    #[test]
    fn accepts_safe_core_keys_and_drops_empty_merged_sections() {
        let overlay = ExtraOverlay::parse(
            "room:\n  empty_timeout: 600\nrtc:\n  use_ice_lite: true\nlogging: {}\nturn: {}\nwebhook: {}\nregion: eu\n",
        )
        .unwrap();
        let keys: Vec<_> = overlay.mapping().keys().cloned().collect();
        assert_eq!(
            keys,
            vec![
                Value::from("room"),
                Value::from("rtc"),
                Value::from("region")
            ]
        );
    }

    #[test]
    fn managed_keys_are_refused_by_name_with_a_fix() {
        for (text, key, fix) in [
            ("port: 1234", "port", "provision.yaml"),
            ("keys:\n  a: b", "keys", "secrets"),
            ("key_file: /x", "key_file", "secret"),
            ("redis:\n  address: x:1", "redis", "redis_address"),
            ("development: true", "development", "placeholder keys"),
            ("rtc:\n  node_ip: 1.2.3.4", "rtc.node_ip", "LIVEKIT_NODE_IP"),
            ("rtc:\n  tcp_port: 1", "rtc.tcp_port", "rtc_tcp_port"),
            (
                "rtc:\n  port_range_start: 1",
                "rtc.port_range_start",
                "provision.yaml",
            ),
            (
                "rtc:\n  port_range_end: 1",
                "rtc.port_range_end",
                "provision.yaml",
            ),
            ("rtc:\n  udp_port: 7882", "rtc.udp_port", "rtc_udp_port"),
            (
                "rtc:\n  enable_loopback_candidate: true",
                "rtc.enable_loopback_candidate",
                "rtc_enable_loopback_candidate",
            ),
            (
                "rtc:\n  use_external_ip: true",
                "rtc.use_external_ip",
                "use_external_ip: true",
            ),
            (
                "bind_addresses: [\"::1\"]",
                "bind_addresses",
                "provision.yaml",
            ),
            (
                "webhook:\n  api_key: APIx",
                "webhook.api_key",
                "provision.yaml",
            ),
            (
                "webhook:\n  urls: [\"https://h\"]",
                "webhook.urls",
                "provision.yaml",
            ),
            (
                "prometheus:\n  port: 9100",
                "prometheus",
                "LIVEKIT_PROMETHEUS_PASSWORD",
            ),
            ("prometheus_port: 9100", "prometheus_port", "provision.yaml"),
            ("logging:\n  level: debug", "logging.level", "log_level"),
            ("turn:\n  enabled: true", "turn.enabled", "provision.yaml"),
            (
                "turn:\n  cert_file: /x",
                "turn.cert_file",
                "`turn:` section",
            ),
        ] {
            let err = ExtraOverlay::parse(text).unwrap_err();
            let message = err.to_string();
            assert!(
                matches!(&err, ExtraError::Managed { key: k, .. } if k == key),
                "{err:?}"
            );
            assert!(message.contains(&format!("`{key}`")), "{message}");
            assert!(message.contains(fix), "{message}");
            assert!(err.hint().unwrap().contains(fix));
        }
    }

    #[test]
    fn unknown_keys_are_refused_at_every_depth_by_path() {
        for (text, path, suggestion) in [
            ("prometeus: {}\n", "prometeus", Some("prometheus")),
            ("Port: 1\n", "Port", Some("port")),
            (
                "room:\n  empty_timeout_typo: 600\n",
                "room.empty_timeout_typo",
                Some("room.empty_timeout"),
            ),
            (
                "rtc:\n  use_ice_lit: true\n",
                "rtc.use_ice_lit",
                Some("rtc.use_ice_lite"),
            ),
            (
                "room:\n  playout_delay:\n    enabeld: true\n",
                "room.playout_delay.enabeld",
                Some("room.playout_delay.enabled"),
            ),
            ("turn:\n  secretName: x\n", "turn.secretName", None),
        ] {
            let err = ExtraOverlay::parse(text).unwrap_err();
            let ExtraError::Model(ModelError::Unknown {
                path: p,
                suggestion: s,
            }) = &err
            else {
                panic!("{text}: {err:?}");
            };
            assert_eq!(p, path, "{text}");
            assert_eq!(s.as_deref(), suggestion, "{text}");
            assert!(err.to_string().contains(&format!("`{path}`")), "{err}");
            assert!(err.hint().is_some());
        }
    }

    #[test]
    fn keys_of_newer_releases_parse_but_are_refused_for_an_older_pin() {
        let overlay = ExtraOverlay::parse("agents:\n  enable_user_data_recording: true\n").unwrap();
        assert!(overlay.check_release(Release::LATEST).is_ok());
        let err = overlay.check_release(Release::OLDEST).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("`agents`") && message.contains("1.7"),
            "{message}"
        );
        assert!(matches!(
            err,
            ExtraError::Model(ModelError::NotInRelease { first, .. }) if first.minor() == 9
        ));
    }

    #[test]
    fn malformed_overlays_are_refused() {
        assert!(matches!(
            ExtraOverlay::parse("- a\n- b\n"),
            Err(ExtraError::NotAMapping { found: "a list" })
        ));
        assert!(matches!(
            ExtraOverlay::parse("room: [unclosed\n"),
            Err(ExtraError::Syntax { .. })
        ));
        let err = ExtraOverlay::parse("rtc: 5\n").unwrap_err();
        assert!(err.to_string().contains("`rtc`"), "{err}");
        let err = ExtraOverlay::parse("room:\n  x: !secret y\n").unwrap_err();
        assert!(err.to_string().contains("`room.x`"), "{err}");
        let err = ExtraOverlay::parse("room:\n  1: y\n").unwrap_err();
        assert!(err.to_string().contains("`room.1`"), "{err}");
        let err = ExtraOverlay::parse("7: y\n").unwrap_err();
        assert!(err.to_string().contains("`7`"), "{err}");
    }
}
