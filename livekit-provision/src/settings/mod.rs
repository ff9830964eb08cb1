//! Operator-owned, non-secret settings from `<state>/provision.yaml`, every section of it in one
//! home: [`Settings`] here (ports, Redis routing, release source, log level, who owns the media,
//! the backend probe) with its cross-checks; the production sections (`webhook:`, `prometheus:`,
//! `use_external_ip`, `bind_addresses`) and what each needs of the pinned livekit-server in
//! `production.rs`; the `turn:` section and its checks in `turn.rs`.
//!
//! Every key is optional; absent keys take the defaults below, unknown keys are refused by name.
//! The CLI and the daemon both read this one file, so they always render the same thing.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod changes;
mod healing;
pub(crate) mod production;
mod tls;
mod turn;

pub use changes::{ApplyMode, ChangePolicy, DEFAULT_DRAIN, Span, Window};
pub use healing::{DEFAULT_HUNG_AFTER, Healing, HungAfter};

pub use production::{
    DEFAULT_PROMETHEUS_USERNAME, NeedsNewerServer, PrometheusSettings, WebhookSettings,
};
pub use tls::{LETS_ENCRYPT, RenewBefore, TlsSettings, TlsSettingsError};
pub use turn::{DEFAULT_RELAY_RANGE, TurnSettings, TurnSettingsError};

/// livekit-server's log levels, as `logging.level` accepts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// `debug`
    Debug,
    /// `info` (the default)
    #[default]
    Info,
    /// `warn`
    Warn,
    /// `error`
    Error,
}

impl LogLevel {
    /// The level as livekit-server spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }

    /// Parse a level as livekit-server spells it.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "debug" => Some(Self::Debug),
            "info" => Some(Self::Info),
            "warn" => Some(Self::Warn),
            "error" => Some(Self::Error),
            _ => None,
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who starts, stops and restarts the media processes (`media_owner`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum MediaOwner {
    /// The daemon: detached start, adoption after its own restart, crash restarts (the default).
    #[default]
    Daemon,
    /// An outside supervisor (systemd, hero_proc) runs `livekit-provision exec <name>`. The
    /// daemon provisions, reports and answers health; it never starts or signals the media.
    External,
}

impl fmt::Display for MediaOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Daemon => "daemon",
            Self::External => "external",
        })
    }
}

/// The settings of `provision.yaml`, with defaults filled in and cross-checked. `Debug` shows
/// `release_url` through `redact`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// livekit-server's HTTP/WebSocket port (`port`). Default 7880.
    pub port: u16,
    /// ICE/TCP port (`rtc.tcp_port`). Default 7881.
    pub rtc_tcp_port: u16,
    /// First UDP port for media (`rtc.port_range_start`). Default 50000.
    pub rtc_port_range_start: u16,
    /// Last UDP port for media (`rtc.port_range_end`). Default 60000.
    pub rtc_port_range_end: u16,
    /// One UDP port for all media (`rtc.udp_port`, livekit-server's UDP mux). When set it
    /// replaces the port range, which is then not written (livekit-server prefers a range).
    pub rtc_udp_port: Option<u16>,
    /// Also gather loopback ICE candidates (`rtc.enable_loopback_candidate`): for clients on the
    /// same machine, or a public address mapped onto the loopback interface. Default false.
    pub rtc_enable_loopback_candidate: bool,
    /// lk-backend's one port (`PORT` in `backend.env`). Default 8081.
    pub backend_port: u16,
    /// Path to lk-backend; when set, the control plane supervises it.
    pub backend_command: Option<PathBuf>,
    /// Redis for LiveKit's multi-node routing (`host:port`).
    pub redis_address: Option<String>,
    /// Redis user name for LiveKit's routing.
    pub redis_username: Option<String>,
    /// Redis database number for LiveKit's routing.
    pub redis_db: Option<u32>,
    /// Connect to LiveKit's routing Redis with TLS (`redis.tls.enabled` in `livekit.yaml`).
    pub redis_tls: bool,
    /// LiveKit's Redis through Sentinel: the master's name (`redis.sentinel_master_name`),
    /// with [`redis_sentinel_addresses`](Self::redis_sentinel_addresses).
    pub redis_sentinel_master_name: Option<String>,
    /// The sentinels, `host:port` each (`redis.sentinel_addresses`).
    pub redis_sentinel_addresses: Vec<String>,
    /// The sentinels' user name (`redis.sentinel_username`); their password is the
    /// `LIVEKIT_REDIS_SENTINEL_PASSWORD` secret.
    pub redis_sentinel_username: Option<String>,
    /// LiveKit's Redis is a Cluster: its seed nodes, `host:port` each
    /// (`redis.cluster_addresses`).
    pub redis_cluster_addresses: Vec<String>,
    /// A CA bundle for LiveKit's Redis TLS (`redis.tls.ca_cert_file`).
    pub redis_tls_ca_cert_file: Option<PathBuf>,
    /// A client certificate for it (`redis.tls.client_cert_file`), with its key.
    pub redis_tls_client_cert_file: Option<PathBuf>,
    /// The client certificate's key (`redis.tls.client_key_file`).
    pub redis_tls_client_key_file: Option<PathBuf>,
    /// Base URL of release downloads (`https://…`, `http://…` or `file://…`).
    pub release_url: Option<String>,
    /// Use this livekit-server binary and never download one.
    pub livekit_bin: Option<PathBuf>,
    /// livekit-server's `logging.level`. Default `info`.
    pub log_level: LogLevel,
    /// `webhook:`: URLs livekit-server posts events to, signed with the current API key.
    pub webhook: Option<WebhookSettings>,
    /// `prometheus:`: the metrics port, with basic auth.
    pub prometheus: Option<PrometheusSettings>,
    /// `rtc.use_external_ip`: discover the public address by STUN at start (NAT'd hosts).
    pub use_external_ip: bool,
    /// `bind_addresses`: the addresses livekit-server listens on (empty: all); the health
    /// probe follows them.
    pub bind_addresses: Vec<IpAddr>,
    /// The embedded TURN server (`turn:` in `livekit.yaml`); off by default.
    pub turn: TurnSettings,
    /// Who owns the media processes: `daemon` (default) or `external`.
    pub media_owner: MediaOwner,
    /// How lk-backend's health is probed: `http:/path` (a GET answering 200) or `tcp` (a
    /// connect). Default `http:/`.
    pub backend_probe: HealthProbe,
    /// When changes that need livekit-server restarted are applied (`changes:`): at the first
    /// moment the node has no participant by default.
    pub changes: ChangePolicy,
    /// How a media process that stopped serving is healed (`healing:`): a livekit-server that
    /// answers nothing for `hung_after` (5 s by default) is replaced.
    pub healing: Healing,
    /// `tls:`: serve `wss://` through the TLS front, with a certificate from ACME or files.
    pub tls: Option<TlsSettings>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            port: 7880,
            rtc_tcp_port: 7881,
            rtc_port_range_start: 50000,
            rtc_port_range_end: 60000,
            rtc_udp_port: None,
            rtc_enable_loopback_candidate: false,
            backend_port: 8081,
            backend_command: None,
            redis_address: None,
            redis_username: None,
            redis_db: None,
            redis_tls: false,
            redis_sentinel_master_name: None,
            redis_sentinel_addresses: Vec::new(),
            redis_sentinel_username: None,
            redis_cluster_addresses: Vec::new(),
            redis_tls_ca_cert_file: None,
            redis_tls_client_cert_file: None,
            redis_tls_client_key_file: None,
            release_url: None,
            livekit_bin: None,
            log_level: LogLevel::Info,
            webhook: None,
            prometheus: None,
            use_external_ip: false,
            bind_addresses: Vec::new(),
            turn: TurnSettings::default(),
            media_owner: MediaOwner::Daemon,
            backend_probe: HealthProbe::default(),
            changes: ChangePolicy::default(),
            healing: Healing::default(),
            tls: None,
        }
    }
}

/// Why `provision.yaml` was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// Not YAML, or a key we do not know, or a value of the wrong type.
    #[error("{0}")]
    Parse(String),
    /// Values that parse but do not make sense together.
    #[error("{0}")]
    Invalid(String),
    /// The `turn:` section is refused.
    #[error(transparent)]
    Turn(#[from] TurnSettingsError),
    /// The `changes:` or `healing:` section is refused (the message names the key).
    #[error("{0}")]
    Changes(String),
    /// The `tls:` section is refused.
    #[error(transparent)]
    Tls(#[from] TlsSettingsError),
}

impl Settings {
    /// The keys `provision.yaml` accepts, alphabetically: the struct's serialized fields (so
    /// the list cannot fall behind the struct, as a hand-kept one in the hint once did).
    pub(crate) fn keys() -> Vec<String> {
        match serde_json::to_value(Self::default()) {
            Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }
}

impl Settings {
    /// Parse and validate the text of `provision.yaml`. An empty file means all defaults.
    pub fn from_yaml(text: &str) -> Result<Self, SettingsError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let settings: Self =
            serde_yaml::from_str(text).map_err(|e| SettingsError::Parse(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Cross-check the values: non-zero ports, an ordered UDP range, no TCP port used twice. A
    /// TCP port inside the UDP media range is fine: TCP and UDP ports never clash.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let named = [
            ("port", self.port),
            ("rtc_tcp_port", self.rtc_tcp_port),
            ("rtc_port_range_start", self.rtc_port_range_start),
            ("rtc_port_range_end", self.rtc_port_range_end),
            ("backend_port", self.backend_port),
        ];
        let udp = self.rtc_udp_port.map(|p| ("rtc_udp_port", p));
        if let Some((name, _)) = named.iter().chain(&udp).find(|(_, p)| *p == 0) {
            return Err(SettingsError::Invalid(format!("{name} must not be 0")));
        }
        if self.rtc_port_range_start > self.rtc_port_range_end {
            return Err(SettingsError::Invalid(format!(
                "rtc_port_range_start ({}) is above rtc_port_range_end ({})",
                self.rtc_port_range_start, self.rtc_port_range_end
            )));
        }
        let singles = [
            ("port", self.port),
            ("rtc_tcp_port", self.rtc_tcp_port),
            ("backend_port", self.backend_port),
        ];
        for (i, (a, pa)) in singles.iter().enumerate() {
            for (b, pb) in &singles[i + 1..] {
                if pa == pb {
                    return Err(SettingsError::Invalid(format!(
                        "{a} and {b} are both {pa}; each needs its own port"
                    )));
                }
            }
        }
        if let Some(address) = &self.redis_address {
            crate::validate::host_port(address)
                .map_err(|e| SettingsError::Invalid(format!("redis_address {e}")))?;
        }
        self.validate_redis()?;
        // The rule `--release-url` and LIVEKIT_PROVISION_RELEASE_URL meet at install.
        if let Some(url) = &self.release_url
            && let Err(crate::fetch::FetchError::InvalidBaseUrl { url, reason }) =
                crate::fetch::ReleaseBase::parse(url)
        {
            return Err(SettingsError::Invalid(format!(
                "release_url {url:?} {reason}"
            )));
        }
        self.turn.validate(self)?;
        self.changes.validate().map_err(SettingsError::Changes)?;
        self.healing.validate().map_err(SettingsError::Changes)?;
        if let Some(tls) = &self.tls {
            tls.validate(self)?;
        }
        production::validate(self)
    }
}

impl Settings {
    /// The Redis layout keys: one layout at most, each complete, TLS files only with TLS.
    fn validate_redis(&self) -> Result<(), SettingsError> {
        let invalid = |m: String| Err(SettingsError::Invalid(m));
        for (key, list) in [
            ("redis_sentinel_addresses", &self.redis_sentinel_addresses),
            ("redis_cluster_addresses", &self.redis_cluster_addresses),
        ] {
            for address in list {
                crate::validate::host_port(address)
                    .map_err(|e| SettingsError::Invalid(format!("{key}: {e}")))?;
            }
        }
        let sentinel =
            self.redis_sentinel_master_name.is_some() || !self.redis_sentinel_addresses.is_empty();
        if sentinel
            && (self.redis_sentinel_master_name.is_none()
                || self.redis_sentinel_addresses.is_empty())
        {
            return invalid(
                "redis_sentinel_master_name and redis_sentinel_addresses go together".to_owned(),
            );
        }
        let layouts = [
            ("redis_address", self.redis_address.is_some()),
            ("redis_sentinel_addresses", sentinel),
            (
                "redis_cluster_addresses",
                !self.redis_cluster_addresses.is_empty(),
            ),
        ];
        let set: Vec<&str> = layouts
            .iter()
            .filter(|(_, on)| *on)
            .map(|(k, _)| *k)
            .collect();
        if set.len() > 1 {
            return invalid(format!(
                "{} each name LiveKit's Redis; keep one",
                set.join(" and ")
            ));
        }
        if !self.redis_cluster_addresses.is_empty() && self.redis_db.is_some_and(|db| db != 0) {
            return invalid("redis_db: a Redis Cluster has only database 0".to_owned());
        }
        let files = [
            self.redis_tls_ca_cert_file.is_some(),
            self.redis_tls_client_cert_file.is_some(),
            self.redis_tls_client_key_file.is_some(),
        ];
        if files.iter().any(|f| *f) && !self.redis_tls {
            return invalid("redis_tls_* files need redis_tls: true".to_owned());
        }
        if files[1] != files[2] {
            return invalid(
                "redis_tls_client_cert_file and redis_tls_client_key_file go together".to_owned(),
            );
        }
        Ok(())
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("port", &self.port)
            .field("rtc_tcp_port", &self.rtc_tcp_port)
            .field("rtc_port_range_start", &self.rtc_port_range_start)
            .field("rtc_port_range_end", &self.rtc_port_range_end)
            .field("rtc_udp_port", &self.rtc_udp_port)
            .field(
                "rtc_enable_loopback_candidate",
                &self.rtc_enable_loopback_candidate,
            )
            .field("backend_port", &self.backend_port)
            .field("backend_command", &self.backend_command)
            .field("redis_address", &self.redis_address)
            .field("redis_username", &self.redis_username)
            .field("redis_db", &self.redis_db)
            .field("redis_tls", &self.redis_tls)
            .field(
                "redis_sentinel_master_name",
                &self.redis_sentinel_master_name,
            )
            .field("redis_sentinel_addresses", &self.redis_sentinel_addresses)
            .field("redis_sentinel_username", &self.redis_sentinel_username)
            .field("redis_cluster_addresses", &self.redis_cluster_addresses)
            .field("redis_tls_ca_cert_file", &self.redis_tls_ca_cert_file)
            .field(
                "redis_tls_client_cert_file",
                &self.redis_tls_client_cert_file,
            )
            .field("redis_tls_client_key_file", &self.redis_tls_client_key_file)
            .field(
                "release_url",
                &self.release_url.as_deref().map(crate::redact::text),
            )
            .field("livekit_bin", &self.livekit_bin)
            .field("log_level", &self.log_level)
            .field("webhook", &self.webhook)
            .field("prometheus", &self.prometheus)
            .field("use_external_ip", &self.use_external_ip)
            .field("bind_addresses", &self.bind_addresses)
            .field("turn", &self.turn)
            .field("media_owner", &self.media_owner)
            .field("backend_probe", &self.backend_probe)
            .field("changes", &self.changes)
            .field("healing", &self.healing)
            .field("tls", &self.tls)
            .finish()
    }
}

/// How a process's readiness is probed: an HTTP GET of a path that must answer 200, or a TCP
/// connect (for a backend that serves no `GET /`). Written `http:/path` or `tcp` in
/// `provision.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum HealthProbe {
    /// `GET <path>` answers 200.
    Http {
        /// The path, starting with `/`.
        path: String,
    },
    /// A TCP connect succeeds.
    Tcp,
}

impl Default for HealthProbe {
    fn default() -> Self {
        Self::Http {
            path: "/".to_owned(),
        }
    }
}

impl TryFrom<String> for HealthProbe {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        if text == "tcp" {
            return Ok(Self::Tcp);
        }
        match text.strip_prefix("http:") {
            Some(path)
                if path.starts_with('/')
                    && !path.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                Ok(Self::Http {
                    path: path.to_owned(),
                })
            }
            _ => Err(format!(
                "backend_probe {text:?} must be `tcp` or `http:/path` (e.g. `http:/healthz`)"
            )),
        }
    }
}

impl From<HealthProbe> for String {
    fn from(probe: HealthProbe) -> Self {
        probe.to_string()
    }
}

impl fmt::Display for HealthProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http { path } => write!(f, "http:{path}"),
            Self::Tcp => f.write_str("tcp"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accepted_keys_are_every_field() {
        let keys = Settings::keys();
        for key in [
            "port",
            "redis_tls",
            "redis_sentinel_master_name",
            "redis_tls_client_key_file",
            "turn",
            "media_owner",
            "backend_probe",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
        }
        // Each one is a key provision.yaml takes: set alone to its default, it is accepted.
        let defaults = serde_json::to_value(Settings::default()).unwrap();
        for key in &keys {
            let one = serde_json::json!({ key.as_str(): defaults[key.as_str()] });
            let yaml = serde_yaml::to_string(&one).unwrap();
            assert!(Settings::from_yaml(&yaml).is_ok(), "{yaml}");
        }
    }

    #[test]
    fn empty_means_defaults() {
        assert_eq!(Settings::from_yaml("").unwrap(), Settings::default());
        assert_eq!(
            Settings::from_yaml("# nothing\n").unwrap(),
            Settings::default()
        );
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let s = Settings::from_yaml("port: 9000\nlog_level: debug\n").unwrap();
        assert_eq!(s.port, 9000);
        assert_eq!(s.rtc_tcp_port, 7881);
        assert_eq!(s.log_level, LogLevel::Debug);
        assert!(!s.redis_tls);
        assert!(Settings::from_yaml("redis_tls: true\n").unwrap().redis_tls);
        let local =
            Settings::from_yaml("rtc_udp_port: 7882\nrtc_enable_loopback_candidate: true\n")
                .unwrap();
        assert_eq!(local.rtc_udp_port, Some(7882));
        assert!(local.rtc_enable_loopback_candidate);
        assert_eq!(Settings::default().rtc_udp_port, None);
        assert!(!Settings::default().rtc_enable_loopback_candidate);
    }

    #[test]
    fn a_single_udp_port_replaces_the_range_in_the_clash_checks() {
        // Inside the (unused) range is fine once a single UDP port is set.
        let s = Settings::from_yaml("port: 55000\nrtc_udp_port: 7882\n").unwrap();
        assert_eq!(s.port, 55000);
    }

    #[test]
    fn media_owner_and_backend_probe_parse() {
        let s = Settings::from_yaml("media_owner: external\nbackend_probe: tcp\n").unwrap();
        assert_eq!(s.media_owner, MediaOwner::External);
        assert_eq!(s.backend_probe, HealthProbe::Tcp);
        let s = Settings::from_yaml("backend_probe: http:/healthz\n").unwrap();
        assert_eq!(
            s.backend_probe,
            HealthProbe::Http {
                path: "/healthz".to_owned()
            }
        );
        assert_eq!(Settings::default().media_owner, MediaOwner::Daemon);
        for (text, needle) in [
            ("media_owner: systemd", "media_owner"),
            ("backend_probe: udp", "backend_probe"),
            ("backend_probe: http:healthz", "backend_probe"),
        ] {
            let err = Settings::from_yaml(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = Settings::from_yaml("port: 1\nprot: 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn bad_combinations_are_refused() {
        for (text, needle) in [
            ("port: 0", "port must not be 0"),
            (
                "rtc_port_range_start: 6000\nrtc_port_range_end: 5000",
                "above",
            ),
            ("backend_port: 7880", "both 7880"),
            ("redis_address: nohost", "redis_address"),
            ("redis_sentinel_master_name: m", "go together"),
            (
                "redis_sentinel_master_name: m\nredis_sentinel_addresses: [s:1]\nredis_address: r:1",
                "keep one",
            ),
            (
                "redis_cluster_addresses: [c:1, nohost]",
                "redis_cluster_addresses",
            ),
            (
                "redis_cluster_addresses: [c:1]\nredis_db: 2",
                "only database 0",
            ),
            ("redis_tls_ca_cert_file: /ca.pem", "need redis_tls"),
            (
                "redis_tls: true\nredis_tls_client_cert_file: /c.pem",
                "go together",
            ),
            ("release_url: ftp://x", "release_url"),
            ("log_level: loud", "log_level"),
            ("rtc_udp_port: 0", "rtc_udp_port must not be 0"),
            ("rtc_udp_port: 70000", "rtc_udp_port"),
            (
                "rtc_enable_loopback_candidate: maybe",
                "rtc_enable_loopback_candidate",
            ),
        ] {
            let err = Settings::from_yaml(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn a_udp_mux_port_may_share_a_number_with_a_tcp_port() {
        // UDP 7881 and TCP 7881 are two different sockets: livekit's own dev setup does this.
        let settings = Settings::from_yaml(
            "rtc_udp_port: 7881
",
        )
        .unwrap();
        assert_eq!(settings.rtc_udp_port, Some(7881));
        assert!(
            Settings::from_yaml(
                "rtc_udp_port: 8081
"
            )
            .is_ok()
        );
    }

    #[test]
    fn tcp_ports_inside_the_udp_media_range_do_not_clash() {
        let settings = Settings::from_yaml(
            "port: 55000\nrtc_tcp_port: 50000\nbackend_port: 60000\nrtc_port_range_start: 50000\nrtc_port_range_end: 60000\n",
        )
        .unwrap();
        assert_eq!(
            (settings.port, settings.rtc_tcp_port, settings.backend_port),
            (55000, 50000, 60000)
        );
        // TCP against TCP still clashes inside the range too.
        let err = Settings::from_yaml("port: 55000\nbackend_port: 55000\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("both 55000"), "{err}");
    }

    #[test]
    fn a_release_url_password_is_never_shown() {
        let err = Settings::from_yaml("release_url: ftp://u:pa/ss@h/x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pa/ss") && err.contains("@h/x"), "{err}");
        // An unencoded `/` in the password: the parser reads another host and port, and the
        // flag's rule (which this setting now shares) refuses it — without showing it.
        let err = Settings::from_yaml("release_url: https://u:pa/ss@h/x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pa/ss") && err.contains("@h/x"), "{err}");
        let settings = Settings::from_yaml("release_url: https://u:pa55word@h/x").unwrap();
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("pa55word") && shown.contains("@h/x"),
            "{shown}"
        );
        let binary = crate::binary::BinaryOptions {
            release_url: settings.release_url,
            ..crate::binary::BinaryOptions::default()
        };
        assert!(!format!("{binary:?}").contains("pa55word"));
    }
}
