//! provision.yaml's settings for a production node: the `webhook:` and `prometheus:` sections
//! and the networking keys (`use_external_ip`, `bind_addresses`), their checks, and what each
//! needs of the pinned livekit-server (an older one refuses its config and exits 0).
//!
//! The sections are rendered into `livekit.yaml` by `render/node_sections.rs`.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Settings, SettingsError};
use crate::node_ip::NodeIp;
use crate::version::LivekitVersion;

/// The basic-auth user name of the metrics endpoint when `prometheus.username` is not set.
pub const DEFAULT_PROMETHEUS_USERNAME: &str = "livekit";

/// `webhook:`: where livekit-server posts room events. They are signed with the current managed
/// API key, rendered as `webhook.api_key` (never set by hand, so a rotation cannot break it).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// `http://` or `https://` URLs (`webhook.urls`).
    pub urls: Vec<String>,
}

/// URLs may carry credentials: shown through `redact`.
impl fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| crate::redact::text(u)).collect();
        f.debug_struct("WebhookSettings")
            .field("urls", &urls)
            .finish()
    }
}

/// `prometheus:`: the metrics endpoint, behind basic auth whose password is minted into the
/// secret store (`LIVEKIT_PROMETHEUS_PASSWORD`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusSettings {
    /// `prometheus.port` (TCP, on every bind address).
    pub port: u16,
    /// `prometheus.username`. Default [`DEFAULT_PROMETHEUS_USERNAME`].
    #[serde(default = "default_username")]
    pub username: String,
}

fn default_username() -> String {
    DEFAULT_PROMETHEUS_USERNAME.to_owned()
}

/// Check the production settings of `settings` (called by [`Settings::validate`]).
pub(crate) fn validate(settings: &Settings) -> Result<(), SettingsError> {
    let invalid = |message: String| Err(SettingsError::Invalid(message));
    if let Some(webhook) = &settings.webhook {
        if webhook.urls.is_empty() {
            return invalid(
                "webhook.urls is empty: list at least one URL, or remove `webhook:`".to_owned(),
            );
        }
        for url in &webhook.urls {
            if let Some(problem) = webhook_url_problem(url) {
                return invalid(format!(
                    "webhook.urls: {:?} {problem}",
                    crate::redact::text(url)
                ));
            }
        }
    }
    if let Some(prometheus) = &settings.prometheus {
        let port = prometheus.port;
        if port == 0 {
            return invalid("prometheus.port must not be 0".to_owned());
        }
        for (name, other) in [
            ("port", settings.port),
            ("rtc_tcp_port", settings.rtc_tcp_port),
            ("backend_port", settings.backend_port),
        ] {
            if port == other {
                return invalid(format!(
                    "prometheus.port and {name} are both {port}; each needs its own TCP port"
                ));
            }
        }
        let username = &prometheus.username;
        if username.is_empty()
            || username.len() > 64
            || !username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return invalid(format!(
                "prometheus.username {username:?} must be 1 to 64 characters of A-Z, a-z, 0-9, '_', '-', '.'"
            ));
        }
    }
    let mut seen = BTreeSet::new();
    if let Some(twice) = settings.bind_addresses.iter().find(|ip| !seen.insert(**ip)) {
        return invalid(format!("bind_addresses lists {twice} twice"));
    }
    Ok(())
}

/// Why `url` is not a webhook URL livekit-server can post to, if it is not.
fn webhook_url_problem(url: &str) -> Option<&'static str> {
    if let Some(problem) = crate::validate::url_text_problem(url) {
        return Some(problem);
    }
    match reqwest::Url::parse(url) {
        Err(_) => Some("is not a URL"),
        Ok(parsed) if !matches!(parsed.scheme(), "http" | "https") => {
            Some("must start with http:// or https://")
        }
        Ok(parsed) if parsed.host_str().is_none_or(str::is_empty) => Some("names no host"),
        Ok(_) => None,
    }
}

/// A setting the pinned livekit-server does not know: it would refuse its config and exit 0.
#[derive(Debug, thiserror::Error)]
#[error(
    "{what} needs livekit-server {since} or later, but LIVEKIT_VERSION pins {}",
    version.tag()
)]
pub struct NeedsNewerServer {
    /// The setting (named as the operator writes it).
    pub what: &'static str,
    /// The first release that accepts it.
    pub since: &'static str,
    /// The pinned version.
    pub version: LivekitVersion,
    /// What to do instead, short of upgrading.
    pub instead: &'static str,
}

impl NeedsNewerServer {
    /// Upgrade, or do without.
    pub fn hint(&self) -> String {
        format!(
            "pin a newer release with `livekit-provision secrets set LIVEKIT_VERSION {}`, or {}",
            self.since, self.instead
        )
    }
}

/// Refuse a setting the pinned `version` does not accept (read in livekit/livekit's
/// `pkg/config/config.go` and mediatransportutil's `rtcconfig.NodeIP` at each tag):
/// `prometheus:` since v1.7.1, a dual-stack `rtc.node_ip` since v1.10.0 (before, `node_ip` is
/// one address). `bind_addresses`, `webhook` and `rtc.use_external_ip` are in every release
/// from 1.7 on. No pinned version (control plane only) runs no server: nothing to refuse.
pub(crate) fn require_version(
    settings: &Settings,
    node_ip: Option<&NodeIp>,
    version: Option<&LivekitVersion>,
) -> Result<(), NeedsNewerServer> {
    let Some(version) = version else {
        return Ok(());
    };
    let below = |major, minor, patch| *version.semver() < semver::Version::new(major, minor, patch);
    if settings.prometheus.is_some() && below(1, 7, 1) {
        return Err(NeedsNewerServer {
            what: "the `prometheus:` section of provision.yaml",
            since: "v1.7.1",
            version: version.clone(),
            instead: "remove `prometheus:` from provision.yaml",
        });
    }
    if node_ip.is_some_and(NodeIp::is_dual_stack) && below(1, 10, 0) {
        return Err(NeedsNewerServer {
            what: "a dual-stack LIVEKIT_NODE_IP (`<ipv4>,<ipv6>`)",
            since: "v1.10.0",
            version: version.clone(),
            instead: "advertise one address with `livekit-provision secrets set LIVEKIT_NODE_IP <address>`",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        Settings::from_yaml(text).unwrap_err().to_string()
    }

    #[test]
    fn sections_parse_with_defaults() {
        let s = Settings::from_yaml(
            "webhook:\n  urls: [\"https://hooks.example/lk\", \"http://10.0.0.2:8080/x\"]\nprometheus:\n  port: 6789\nuse_external_ip: true\nbind_addresses: [\"10.0.0.5\", \"::1\"]\n",
        )
        .unwrap();
        assert_eq!(s.webhook.unwrap().urls.len(), 2);
        let prometheus = s.prometheus.unwrap();
        assert_eq!(prometheus.port, 6789);
        assert_eq!(prometheus.username, DEFAULT_PROMETHEUS_USERNAME);
        assert!(s.use_external_ip);
        assert_eq!(s.bind_addresses.len(), 2);
        let plain = Settings::default();
        assert!(plain.webhook.is_none() && plain.prometheus.is_none());
        assert!(!plain.use_external_ip && plain.bind_addresses.is_empty());
    }

    #[test]
    fn bad_sections_are_refused_by_name() {
        for (text, needle) in [
            ("webhook:\n  urls: []", "webhook.urls is empty"),
            ("webhook:\n  urls: [\"ftp://h/x\"]", "http:// or https://"),
            ("webhook:\n  urls: [\"not a url\"]", "whitespace"),
            (
                "webhook:\n  urls: [\"https://h/x\\nExecStart=/bin/sh\"]",
                "control character",
            ),
            (
                "webhook:\n  urls: [\"https://h/x\\ty\"]",
                "control character",
            ),
            ("webhook:\n  urls: [\"noscheme\"]", "is not a URL"),
            ("webhook:\n  url: [\"https://h\"]", "url"),
            (
                "webhook:\n  urls: [\"https://h\"]\n  api_key: APIx",
                "api_key",
            ),
            ("prometheus:\n  port: 0", "prometheus.port must not be 0"),
            ("prometheus:\n  port: 7880", "prometheus.port and port"),
            ("prometheus:\n  port: 7881", "rtc_tcp_port"),
            ("prometheus:\n  port: 8081", "backend_port"),
            (
                "prometheus:\n  port: 9100\n  username: \"a:b\"",
                "prometheus.username",
            ),
            ("prometheus:\n  port: 9100\n  password: x", "password"),
            ("prometheus: {}", "port"),
            ("bind_addresses: [\"10.0.0.1\", \"10.0.0.1\"]", "twice"),
            ("bind_addresses: [\"eth0\"]", "bind_addresses"),
            ("use_external_ip: maybe", "use_external_ip"),
        ] {
            let err = refused(text);
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn a_webhook_url_password_is_never_shown() {
        let err = refused("webhook:\n  urls: [\"ftp://u:pa55word@h/x\"]");
        assert!(!err.contains("pa55word"), "{err}");
        let s = Settings::from_yaml("webhook:\n  urls: [\"https://u:pa55word@h/x\"]").unwrap();
        assert!(!format!("{s:?}").contains("pa55word"));
    }

    #[test]
    fn a_prometheus_port_may_sit_in_the_udp_range() {
        // TCP and UDP ports cannot clash.
        let s = Settings::from_yaml("prometheus:\n  port: 55000\n").unwrap();
        assert_eq!(s.prometheus.unwrap().port, 55000);
    }

    #[test]
    fn older_servers_are_refused_naming_the_version() {
        let v = |text: &str| LivekitVersion::parse(text).unwrap();
        let dual = NodeIp {
            primary: "203.0.113.7".parse().unwrap(),
            ipv6: Some("2001:db8::7".parse().unwrap()),
        };
        let single = NodeIp {
            primary: dual.primary,
            ipv6: None,
        };
        let plain = Settings::default();
        let err = require_version(&plain, Some(&dual), Some(&v("1.9.12"))).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("v1.10.0") && message.contains("v1.9.12"),
            "{message}"
        );
        assert!(err.hint().contains("LIVEKIT_NODE_IP <address>"));
        require_version(&plain, Some(&dual), Some(&v("1.10.0"))).unwrap();
        require_version(&plain, Some(&single), Some(&v("1.7.0"))).unwrap();
        require_version(&plain, Some(&dual), None).unwrap();

        let metrics = Settings::from_yaml("prometheus:\n  port: 9100\n").unwrap();
        let err = require_version(&metrics, None, Some(&v("1.7.0"))).unwrap_err();
        assert!(err.to_string().contains("prometheus"), "{err}");
        assert!(err.hint().contains("v1.7.1"));
        require_version(&metrics, None, Some(&v("1.7.2"))).unwrap();
    }
}
