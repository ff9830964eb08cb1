//! Everything rendering needs, already parsed and validated: [`RenderInputs`] (the
//! `provision.yaml` [`Settings`], the credentials, the node IP, Redis routing, the checked
//! `extra.yaml` overlay) and its parts. The overlay is parsed and checked by `render/extra.rs`.

use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

use crate::secret::{ApiKey, Secret};
use crate::settings::Settings;
use crate::version::LivekitVersion;

/// An API key and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The key (token `iss`).
    pub key: ApiKey,
    /// The secret tokens are signed with.
    pub secret: Secret,
}

/// Redis for LiveKit's own multi-node routing (`redis:` in `livekit.yaml`), in any of the
/// layouts livekit-server's `RedisConfig` takes (the same keys from 1.7 to 1.13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisRouting {
    /// One server, a master found through Sentinel, or a Cluster.
    pub nodes: RoutingNodes,
    /// Optional user name.
    pub username: Option<String>,
    /// Optional password (the `LIVEKIT_REDIS_PASSWORD` secret).
    pub password: Option<Secret>,
    /// Database number.
    pub db: Option<u32>,
    /// Connect with TLS.
    pub tls: bool,
    /// The CA and client certificate files for TLS (`redis.tls.ca_cert_file`,
    /// `client_cert_file`, `client_key_file`).
    pub tls_files: crate::store::TlsFiles,
}

/// Where LiveKit's Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutingNodes {
    /// `redis.address`: `host:port` of one server.
    Address(String),
    /// `redis.sentinel_*`: the master the sentinels name.
    Sentinel {
        /// `sentinel_master_name`.
        master_name: String,
        /// `sentinel_addresses`: `host:port` of each sentinel.
        addresses: Vec<String>,
        /// `sentinel_username`.
        username: Option<String>,
        /// `sentinel_password` (the `LIVEKIT_REDIS_SENTINEL_PASSWORD` secret).
        password: Option<Secret>,
    },
    /// `redis.cluster_addresses`: `host:port` of the cluster's seed nodes.
    Cluster(Vec<String>),
}

impl RoutingNodes {
    /// The addresses, comma-separated (for messages and `runtime.json`'s `redis_address`).
    pub fn shown(&self) -> String {
        match self {
            Self::Address(address) => address.clone(),
            Self::Sentinel { addresses, .. } | Self::Cluster(addresses) => addresses.join(","),
        }
    }
}

/// The operator's `extra.yaml`, already checked: only keys livekit-server knows, none that we
/// manage. Merged into `livekit.yaml` by the renderer.
#[derive(Clone, PartialEq, Default)]
pub struct ExtraOverlay {
    pub(crate) mapping: serde_yaml::Mapping,
}

/// The overlay may hold secrets of its own (TURN credentials, webhook keys): `Debug` prints
/// only its top-level key names.
impl std::fmt::Debug for ExtraOverlay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self
            .mapping
            .keys()
            .filter_map(serde_yaml::Value::as_str)
            .collect();
        f.debug_struct("ExtraOverlay").field("keys", &keys).finish()
    }
}

impl ExtraOverlay {
    /// The overlay's top-level mapping.
    pub fn mapping(&self) -> &serde_yaml::Mapping {
        &self.mapping
    }

    /// True when the overlay adds nothing.
    pub fn is_empty(&self) -> bool {
        self.mapping.is_empty()
    }
}

/// The complete, validated input of rendering (`render::render`).
#[derive(Debug, Clone, PartialEq)]
pub struct RenderInputs {
    /// The live key/secret pair: every signer uses it.
    pub credentials: Credentials,
    /// A previous pair kept in `keys:` during a declared rotation grace period.
    pub previous: Option<Credentials>,
    /// A staged pair (`LIVEKIT_API_KEY_NEXT`): listed in `keys:` so livekit-server loads it
    /// before anything signs with it; in no other file.
    pub next: Option<Credentials>,
    /// The address this node advertises (`rtc.node_ip`), used in URLs; with a dual-stack
    /// `LIVEKIT_NODE_IP`, its IPv4 half.
    pub node_ip: IpAddr,
    /// The IPv6 half of a dual-stack `LIVEKIT_NODE_IP` (rendered only when `node_ip` is IPv4).
    pub node_ip6: Option<Ipv6Addr>,
    /// The pinned livekit-server version; `None` means control plane only.
    pub version: Option<LivekitVersion>,
    /// Non-secret settings from `provision.yaml`.
    pub settings: Settings,
    /// Redis for multi-node routing, when configured.
    pub redis: Option<RedisRouting>,
    /// The operator overlay from `extra.yaml`.
    pub extra: ExtraOverlay,
    /// The basic-auth password of the metrics endpoint (`LIVEKIT_PROMETHEUS_PASSWORD`), when
    /// provision.yaml sets `prometheus:`.
    pub prometheus_password: Option<Secret>,
    /// lk-backend's database (`SQLITE_PATH`).
    pub sqlite_path: PathBuf,
    /// The SHA-256 of the TURN/TLS certificate livekit-server loads (hex), when it loads one:
    /// written into `livekit.yaml` as a comment, so that a renewed certificate is a changed
    /// file, applied like every change that needs livekit-server restarted (it reads the
    /// certificate only at start).
    pub turn_certificate: Option<String>,
}

impl RenderInputs {
    /// The key `webhook.api_key` names: the previous key during a grace, else the current one.
    /// So a promotion (staged → grace) leaves `livekit.yaml` byte for byte as it was, and the
    /// key it names is always one of `keys:`.
    pub fn webhook_key(&self) -> &ApiKey {
        match &self.previous {
            Some(previous) => &previous.key,
            None => &self.credentials.key,
        }
    }

    /// Every secret these inputs hold: the API secret, the previous and the staged one during a
    /// rotation, the Redis password, the Sentinel password and the metrics password.
    fn secrets(&self) -> Vec<&Secret> {
        let mut secrets = vec![&self.credentials.secret];
        secrets.extend(self.previous.as_ref().map(|p| &p.secret));
        secrets.extend(self.next.as_ref().map(|p| &p.secret));
        if let Some(redis) = &self.redis {
            secrets.extend(redis.password.as_ref());
            if let RoutingNodes::Sentinel { password, .. } = &redis.nodes {
                secrets.extend(password.as_ref());
            }
        }
        secrets.extend(self.prometheus_password.as_ref());
        secrets
    }

    /// `text` (a rendered file) with every secret of these inputs replaced by `****`: what
    /// `render` shows.
    pub fn redact(&self, text: &str) -> String {
        let text = self.secrets().iter().fold(text.to_owned(), |acc, s| {
            acc.replace(s.expose(), crate::redact::MASK)
        });
        // URLs that may carry credentials (`https://user:pw@…`, a token in the query), shown by
        // the one rule of `redact`. They are validated to hold no character the YAML emitter
        // escapes, so the rendered text holds each one verbatim.
        self.settings
            .webhook
            .iter()
            .flat_map(|w| &w.urls)
            .fold(text, |acc, url| acc.replace(url.as_str(), &crate::redact::text(url)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_an_overlay_shows_keys_not_values() {
        let overlay =
            ExtraOverlay::parse("rtc:\n  use_ice_lite: true\nregion: hunter2-region\n").unwrap();
        let shown = format!("{overlay:?}");
        assert!(shown.contains("rtc") && shown.contains("region"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
