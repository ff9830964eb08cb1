//! `livekit.yaml`, read by livekit-server: rendering and parsing.
//!
//! Only keys every livekit-server from 1.7 on accepts are written (it refuses unknown keys, and
//! then exits 0), except settings a later release added, which
//! `settings::production::require_version` refuses for an older pinned version before anything
//! is rendered. Keys, secrets, the node IP and Redis strings are always double-quoted: a secret
//! that YAML reads as a number or boolean would be dropped or mangled. The production sections
//! (`node_sections.rs`) go through the emitter, which writes a string plain only when every YAML
//! reader reads it back as that string; the `turn:` block is `turn.rs`'s.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

use serde_yaml::{Mapping, Value};

use super::node_sections;
use super::yaml_emit::{double_quoted, write_mapping};
use super::{ParseError, YamlSyntaxError, turn};
use crate::config_model::kind_of;
use crate::inputs::{Credentials, RedisRouting, RenderInputs, RoutingNodes};
use crate::node_ip::NodeIp;
use crate::paths::ManagedFile;
use crate::secret::{ApiKey, Secret};
use crate::settings::{LogLevel, Settings, TurnSettings};
use crate::validate::TokenLimits;

const FILE: ManagedFile = ManagedFile::LivekitYaml;

const HEADER: &str = "\
# Managed by livekit-provision: do not edit, this file is rewritten.
# Put additions in extra.yaml (merged in here); ports and log level belong in
# provision.yaml, keys and the node IP in the secret store.
";

/// What a `livekit.yaml` says, managed values typed, everything else kept in [`Self::extra`].
///
/// Values the file does not set take livekit-server's defaults (`port` 7880, `rtc.tcp_port`
/// 7881, UDP range 50000–60000, `use_external_ip` false) or `None`.
#[derive(Clone, PartialEq)]
pub struct LivekitYaml {
    /// `port`.
    pub port: u16,
    /// `rtc.tcp_port`.
    pub rtc_tcp_port: u16,
    /// `rtc.port_range_start`.
    pub rtc_port_range_start: u16,
    /// `rtc.port_range_end`.
    pub rtc_port_range_end: u16,
    /// `rtc.udp_port`, when it is one port (a `start-end` string stays in [`Self::extra`]).
    /// livekit-server uses it only when no port range is written; the range fields above then
    /// show livekit-server's defaults, unused.
    pub rtc_udp_port: Option<u16>,
    /// `rtc.enable_loopback_candidate`.
    pub enable_loopback_candidate: bool,
    /// `rtc.use_external_ip`.
    pub use_external_ip: bool,
    /// `rtc.node_ip` (the primary address of a dual-stack pair).
    pub node_ip: Option<IpAddr>,
    /// The IPv6 address of a dual-stack `rtc.node_ip` (`"<ipv4>,<ipv6>"`).
    pub node_ip6: Option<Ipv6Addr>,
    /// `keys`, in file order.
    pub keys: Vec<Credentials>,
    /// `logging.level`.
    pub log_level: Option<LogLevel>,
    /// `redis`, when it names an `address`.
    pub redis: Option<RedisRouting>,
    /// `key_file`: when set, livekit-server replaces `keys` with that file's contents, so the
    /// keys above are not the ones it uses (a finding for `check`).
    pub key_file: Option<PathBuf>,
    /// The managed keys of `turn` (defaults unless `turn.enabled` is true).
    pub turn: TurnSettings,
    /// Everything not listed above, as written (unmanaged keys of `rtc`, `logging`, `redis` and `turn`
    /// stay in their sections; sections left empty are dropped).
    pub extra: Mapping,
}

/// `extra` may hold foreign secrets (TURN credentials, Redis sentinel passwords): print its keys.
impl fmt::Debug for LivekitYaml {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LivekitYaml")
            .field("port", &self.port)
            .field("rtc_tcp_port", &self.rtc_tcp_port)
            .field("rtc_port_range_start", &self.rtc_port_range_start)
            .field("rtc_port_range_end", &self.rtc_port_range_end)
            .field("rtc_udp_port", &self.rtc_udp_port)
            .field("enable_loopback_candidate", &self.enable_loopback_candidate)
            .field("use_external_ip", &self.use_external_ip)
            .field("node_ip", &self.node_ip)
            .field("node_ip6", &self.node_ip6)
            .field("keys", &self.keys)
            .field("log_level", &self.log_level)
            .field("redis", &self.redis)
            .field("key_file", &self.key_file)
            .field("turn", &self.turn)
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl LivekitYaml {
    /// Parse the text of a `livekit.yaml`.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut doc = parse_document(text)?;
        let defaults = Settings::default();

        let port = take_port(&mut doc, "", "port")?.unwrap_or(defaults.port);
        let key_file = take_string(&mut doc, "", "key_file")?.map(PathBuf::from);
        let keys = match doc.shift_remove("keys") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Mapping(keys)) => parse_keys(&keys)?,
            Some(other) => {
                return Err(ParseError::field(
                    FILE,
                    "keys",
                    format!("is {}, not a mapping of `key: secret`", kind_of(&other)),
                    None,
                ));
            }
        };

        let mut rtc = take_section(&mut doc, "rtc")?;
        let rtc_tcp_port = take_port(&mut rtc, "rtc", "tcp_port")?.unwrap_or(defaults.rtc_tcp_port);
        let rtc_port_range_start = take_port(&mut rtc, "rtc", "port_range_start")?
            .unwrap_or(defaults.rtc_port_range_start);
        let rtc_port_range_end =
            take_port(&mut rtc, "rtc", "port_range_end")?.unwrap_or(defaults.rtc_port_range_end);
        let rtc_udp_port = match rtc.get("udp_port") {
            Some(Value::String(_)) => None,
            _ => take_port(&mut rtc, "rtc", "udp_port")?,
        };
        let enable_loopback_candidate =
            take_bool(&mut rtc, "rtc", "enable_loopback_candidate")?.unwrap_or(false);
        let use_external_ip = take_bool(&mut rtc, "rtc", "use_external_ip")?.unwrap_or(false);
        let node_ip = take_string(&mut rtc, "rtc", "node_ip")?
            .map(|text| {
                crate::validate::node_ip(&text).map_err(|reason| ParseError::Field {
                    file: FILE,
                    field: "rtc.node_ip".to_owned(),
                    reason,
                })
            })
            .transpose()?;
        put_back(&mut doc, "rtc", rtc);

        let mut logging = take_section(&mut doc, "logging")?;
        let log_level = take_string(&mut logging, "logging", "level")?
            .map(|text| {
                LogLevel::parse(&text).ok_or_else(|| {
                    ParseError::field(
                        FILE,
                        "logging.level",
                        "is not a log level (debug, info, warn, error)",
                        Some(text),
                    )
                })
            })
            .transpose()?;
        put_back(&mut doc, "logging", logging);

        let mut redis_section = take_section(&mut doc, "redis")?;
        let redis = take_redis(&mut redis_section)?;
        put_back(&mut doc, "redis", redis_section);

        let mut turn_section = take_section(&mut doc, "turn")?;
        let turn = turn::take_from(&mut turn_section).map_err(|e| {
            ParseError::field(
                FILE,
                format!("turn.{}", e.key),
                format!("is not {}", e.expected),
                Some(shown(&e.value)),
            )
        })?;
        put_back(&mut doc, "turn", turn_section);

        Ok(Self {
            port,
            rtc_tcp_port,
            rtc_port_range_start,
            rtc_port_range_end,
            rtc_udp_port,
            enable_loopback_candidate,
            use_external_ip,
            node_ip: node_ip.map(|ip| ip.primary),
            node_ip6: node_ip.and_then(|ip| ip.ipv6),
            keys,
            log_level,
            redis,
            key_file,
            turn,
            extra: doc,
        })
    }

    /// The limits this file sets for the claims of a token: its `limit:` section's two keys
    /// where present and positive, else livekit-server's defaults.
    pub fn token_limits(&self) -> TokenLimits {
        TokenLimits::from_limit_section(self.extra.get("limit"))
    }

    /// Every key pair of `keys:`, in file order.
    #[cfg(any(test, feature = "testing"))]
    pub fn credentials(&self) -> &[Credentials] {
        &self.keys
    }
}

/// The pairs `keys:` lists — the current one, the staged one and the previous one during a
/// grace — sorted by key, so the file does not depend on which of them is current (a promotion
/// changes no byte). A key is listed once: the current pair wins, then the staged one (a YAML
/// mapping cannot hold one key twice).
fn key_entries(inputs: &RenderInputs) -> Vec<&Credentials> {
    let mut entries = vec![&inputs.credentials];
    for other in [inputs.next.as_ref(), inputs.previous.as_ref()]
        .into_iter()
        .flatten()
    {
        if entries.iter().all(|e| e.key != other.key) {
            entries.push(other);
        }
    }
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    entries
}

pub(crate) fn render(inputs: &RenderInputs) -> String {
    let mut out = String::from(HEADER);
    // Writing into a `String` cannot fail.
    let _ = write_body(&mut out, inputs);
    out
}

fn write_body(out: &mut String, inputs: &RenderInputs) -> fmt::Result {
    let settings = &inputs.settings;
    let extra = inputs.extra.mapping();
    let section = |name: &str| match extra.get(name) {
        Some(Value::Mapping(m)) => Some(m),
        _ => None,
    };
    writeln!(out, "port: {}", settings.port)?;
    writeln!(out, "rtc:")?;
    writeln!(out, "  tcp_port: {}", settings.rtc_tcp_port)?;
    // livekit-server prefers a port range over `udp_port`: write one or the other.
    if let Some(udp) = settings.rtc_udp_port {
        writeln!(out, "  udp_port: {udp}")?;
    } else {
        writeln!(out, "  port_range_start: {}", settings.rtc_port_range_start)?;
        writeln!(out, "  port_range_end: {}", settings.rtc_port_range_end)?;
    }
    if settings.rtc_enable_loopback_candidate {
        writeln!(out, "  enable_loopback_candidate: true")?;
    }
    writeln!(out, "  use_external_ip: {}", settings.use_external_ip)?;
    let node_ip = double_quoted(&node_ip(inputs).to_string());
    writeln!(out, "  node_ip: {node_ip}")?;
    if let Some(rtc) = section("rtc") {
        write_mapping(out, rtc, 2);
    }
    writeln!(out, "keys:")?;
    for pair in key_entries(inputs) {
        let key = double_quoted(pair.key.as_str());
        let secret = double_quoted(pair.secret.expose());
        writeln!(out, "  {key}: {secret}")?;
    }
    writeln!(out, "logging:")?;
    writeln!(out, "  level: {}", settings.log_level)?;
    if let Some(logging) = section("logging") {
        write_mapping(out, logging, 2);
    }
    if let Some(redis) = &inputs.redis {
        write_redis(out, redis)?;
    }
    let certificate = inputs.turn_certificate.as_deref();
    turn::write_yaml(out, &settings.turn, certificate, section("turn"));
    let managed = node_sections::sections(inputs);
    write_mapping(out, &managed, 0);
    let rest: Mapping = extra
        .iter()
        .filter(|(key, _)| !matches!(key.as_str(), Some("rtc" | "logging" | "turn")))
        .filter(|(key, _)| !managed.contains_key(*key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    write_mapping(out, &rest, 0);
    Ok(())
}

/// The node IP as rendered: the IPv6 half of a pair only beside an IPv4 primary.
fn node_ip(inputs: &RenderInputs) -> NodeIp {
    NodeIp {
        primary: inputs.node_ip,
        ipv6: inputs.node_ip6.filter(|_| inputs.node_ip.is_ipv4()),
    }
}

/// The `redis:` section: the keys of livekit-server's `RedisConfig` (1.7 to 1.13 alike).
fn write_redis(out: &mut String, redis: &RedisRouting) -> fmt::Result {
    let list = |out: &mut String, key: &str, items: &[String]| -> fmt::Result {
        writeln!(out, "  {key}:")?;
        for item in items {
            writeln!(out, "    - {}", double_quoted(item))?;
        }
        Ok(())
    };
    let optional = |out: &mut String, key: &str, value: Option<&str>| -> fmt::Result {
        match value {
            Some(value) => writeln!(out, "  {key}: {}", double_quoted(value)),
            None => Ok(()),
        }
    };
    writeln!(out, "redis:")?;
    match &redis.nodes {
        RoutingNodes::Address(address) => optional(out, "address", Some(address))?,
        RoutingNodes::Sentinel {
            master_name,
            addresses,
            username,
            password,
        } => {
            optional(out, "sentinel_master_name", Some(master_name))?;
            list(out, "sentinel_addresses", addresses)?;
            optional(out, "sentinel_username", username.as_deref())?;
            optional(
                out,
                "sentinel_password",
                password.as_ref().map(Secret::expose),
            )?;
        }
        RoutingNodes::Cluster(addresses) => list(out, "cluster_addresses", addresses)?,
    }
    optional(out, "username", redis.username.as_deref())?;
    optional(out, "password", redis.password.as_ref().map(Secret::expose))?;
    if let Some(db) = redis.db {
        writeln!(out, "  db: {db}")?;
    }
    if redis.tls {
        writeln!(out, "  tls:\n    enabled: true")?;
        let files = &redis.tls_files;
        for (key, path) in [
            ("ca_cert_file", &files.ca),
            ("client_cert_file", &files.cert),
            ("client_key_file", &files.key),
        ] {
            if let Some(path) = path {
                let path = path.to_string_lossy();
                writeln!(out, "    {key}: {}", double_quoted(&path))?;
            }
        }
    }
    Ok(())
}

#[cfg(any(test, feature = "testing"))]
pub(crate) fn expected(inputs: &RenderInputs) -> LivekitYaml {
    let settings = &inputs.settings;
    // With a single UDP port no range is written, so parsing shows livekit-server's defaults.
    let range = if settings.rtc_udp_port.is_some() {
        &Settings::default()
    } else {
        settings
    };
    let mut extra = inputs.extra.mapping().clone();
    for (key, value) in node_sections::sections(inputs) {
        extra.insert(key, value);
    }
    LivekitYaml {
        port: settings.port,
        rtc_tcp_port: settings.rtc_tcp_port,
        rtc_port_range_start: range.rtc_port_range_start,
        rtc_port_range_end: range.rtc_port_range_end,
        rtc_udp_port: settings.rtc_udp_port,
        enable_loopback_candidate: settings.rtc_enable_loopback_candidate,
        use_external_ip: settings.use_external_ip,
        node_ip: Some(inputs.node_ip),
        node_ip6: node_ip(inputs).ipv6,
        keys: key_entries(inputs).into_iter().cloned().collect(),
        log_level: Some(settings.log_level),
        redis: inputs.redis.clone(),
        key_file: None,
        turn: turn::expected(&settings.turn),
        extra,
    }
}

fn parse_document(text: &str) -> Result<Mapping, ParseError> {
    if text.trim().is_empty() {
        return Ok(Mapping::new());
    }
    match serde_yaml::from_str(text).map_err(|e| ParseError::Yaml {
        file: FILE,
        source: YamlSyntaxError::new(&e),
    })? {
        Value::Null => Ok(Mapping::new()),
        Value::Mapping(doc) => Ok(doc),
        other => Err(ParseError::field(
            FILE,
            "(document)",
            format!("is {}, not a mapping", kind_of(&other)),
            None,
        )),
    }
}

fn parse_keys(keys: &Mapping) -> Result<Vec<Credentials>, ParseError> {
    keys.iter()
        .map(|(key, secret)| {
            let Value::String(key) = key else {
                return Err(ParseError::field(
                    FILE,
                    "keys",
                    format!("has a key that is {}, not a string", kind_of(key)),
                    Some(shown(key)),
                ));
            };
            let key = ApiKey::new(key.as_str()).map_err(|reason| ParseError::Field {
                file: FILE,
                field: "keys".to_owned(),
                reason,
            })?;
            let Value::String(secret) = secret else {
                return Err(ParseError::field(
                    FILE,
                    format!("keys.{key}"),
                    format!(
                        "secret is {}, not a string (livekit-server would drop it; quote it)",
                        kind_of(secret)
                    ),
                    None,
                ));
            };
            if secret.is_empty() {
                return Err(ParseError::field(
                    FILE,
                    format!("keys.{key}"),
                    "secret is empty",
                    None,
                ));
            }
            Ok(Credentials {
                key,
                secret: Secret::new(secret.as_str()),
            })
        })
        .collect()
}

/// Take the `redis` settings we manage out of `section`, when it names an address, sentinels
/// or cluster nodes.
fn take_redis(section: &mut Mapping) -> Result<Option<RedisRouting>, ParseError> {
    let managed = ["address", "sentinel_addresses", "cluster_addresses"];
    if !managed.iter().any(|key| section.contains_key(*key)) {
        return Ok(None);
    }
    let address = take_string(section, "redis", "address")?;
    let master_name = take_string(section, "redis", "sentinel_master_name")?;
    let sentinels = take_strings(section, "redis", "sentinel_addresses")?;
    let sentinel_username = take_string(section, "redis", "sentinel_username")?;
    let sentinel_password = take_secret(section, "redis", "sentinel_password")?;
    let cluster = take_strings(section, "redis", "cluster_addresses")?;
    let nodes = match (address, sentinels.is_empty(), cluster.is_empty()) {
        (Some(address), true, true) => RoutingNodes::Address(address),
        (None, false, true) => RoutingNodes::Sentinel {
            master_name: master_name.ok_or_else(|| {
                ParseError::field(
                    FILE,
                    "redis.sentinel_master_name",
                    "is missing; sentinel_addresses need it",
                    None,
                )
            })?,
            addresses: sentinels,
            username: sentinel_username,
            password: sentinel_password,
        },
        (None, true, false) => RoutingNodes::Cluster(cluster),
        (None, true, true) => return Ok(None),
        _ => {
            return Err(ParseError::field(
                FILE,
                "redis",
                "names more than one of address, sentinel_addresses and cluster_addresses",
                None,
            ));
        }
    };
    let username = take_string(section, "redis", "username")?;
    let password = take_secret(section, "redis", "password")?;
    let db = match section.shift_remove("db") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    ParseError::field(
                        FILE,
                        "redis.db",
                        "is not a database number",
                        Some(shown(&value)),
                    )
                })?,
        ),
    };
    let use_tls = take_bool(section, "redis", "use_tls")?.unwrap_or(false);
    let mut tls_section = take_section(section, "redis.tls")?;
    let tls_enabled = take_bool(&mut tls_section, "redis.tls", "enabled")?.unwrap_or(false);
    let mut file = |key: &str| {
        take_string(&mut tls_section, "redis.tls", key).map(|p| p.map(std::path::PathBuf::from))
    };
    let tls_files = crate::store::TlsFiles {
        ca: file("ca_cert_file")?,
        cert: file("client_cert_file")?,
        key: file("client_key_file")?,
    };
    put_back(section, "tls", tls_section);
    Ok(Some(RedisRouting {
        nodes,
        username,
        password,
        db,
        tls: use_tls || tls_enabled,
        tls_files,
    }))
}

/// A secret string value (never shown in the error).
fn take_secret(map: &mut Mapping, section: &str, key: &str) -> Result<Option<Secret>, ParseError> {
    match map.shift_remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(Secret::new(value))),
        Some(other) => Err(ParseError::field(
            FILE,
            dotted(section, key),
            format!("is {}, not a string; quote it", kind_of(&other)),
            None,
        )),
    }
}

/// A list of non-secret strings; absent is empty.
fn take_strings(map: &mut Mapping, section: &str, key: &str) -> Result<Vec<String>, ParseError> {
    let not_list = |other: &Value| {
        ParseError::field(
            FILE,
            dotted(section, key),
            format!("is {}, not a list of strings", kind_of(other)),
            Some(shown(other)),
        )
    };
    match map.shift_remove(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Sequence(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(s) => Ok(s),
                other => Err(not_list(&other)),
            })
            .collect(),
        Some(other) => Err(not_list(&other)),
    }
}

/// A non-secret value as it might be written, for error messages.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        other => kind_of(other).to_owned(),
    }
}

fn dotted(section: &str, key: &str) -> String {
    if section.is_empty() {
        key.to_owned()
    } else {
        format!("{section}.{key}")
    }
}

/// Remove section `name` (a dotted path for messages; its last part is the key) from `map`; an
/// absent or null section is empty.
fn take_section(map: &mut Mapping, name: &str) -> Result<Mapping, ParseError> {
    let key = name.rsplit('.').next().unwrap_or(name);
    match map.shift_remove(key) {
        None | Some(Value::Null) => Ok(Mapping::new()),
        Some(Value::Mapping(section)) => Ok(section),
        Some(other) => Err(ParseError::field(
            FILE,
            name,
            format!("is {}, not a mapping", kind_of(&other)),
            None,
        )),
    }
}

/// Put what is left of a section back, unless nothing is.
fn put_back(map: &mut Mapping, key: &str, section: Mapping) {
    if !section.is_empty() {
        map.insert(Value::from(key), Value::Mapping(section));
    }
}

fn take_port(map: &mut Mapping, section: &str, key: &str) -> Result<Option<u16>, ParseError> {
    match map.shift_remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|port| *port != 0)
            .map(Some)
            .ok_or_else(|| {
                ParseError::field(
                    FILE,
                    dotted(section, key),
                    "is not a port number (1-65535)",
                    Some(shown(&value)),
                )
            }),
    }
}

fn take_bool(map: &mut Mapping, section: &str, key: &str) -> Result<Option<bool>, ParseError> {
    match map.shift_remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(other) => Err(ParseError::field(
            FILE,
            dotted(section, key),
            "is not true or false",
            Some(shown(&other)),
        )),
    }
}

/// A non-secret string value.
fn take_string(map: &mut Mapping, section: &str, key: &str) -> Result<Option<String>, ParseError> {
    match map.shift_remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ParseError::field(
            FILE,
            dotted(section, key),
            format!("is {}, not a string", kind_of(&other)),
            Some(shown(&other)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "fake0secret0for0tests0only0000000000000000";

    #[test]
    fn tolerates_formatting_it_did_not_write() {
        let text = format!(
            "# written by hand\r\nlogging:\r\n  json: true   # keep\r\n  level: debug\r\nkeys:\r\n  APIa: '{SECRET}'\r\n  APIb: \"{SECRET}\"\r\nrtc: {{node_ip: 10.1.2.3, udp_port: 7882, use_external_ip: true, udp_port_typo: 1}}\r\nroom:\r\n  auto_create: false\r\nport: 7990"
        );
        let parsed = LivekitYaml::parse(&text).unwrap();
        assert_eq!(parsed.port, 7990);
        assert_eq!(parsed.rtc_tcp_port, 7881, "livekit-server's default");
        assert_eq!(
            (parsed.rtc_port_range_start, parsed.rtc_port_range_end),
            (50000, 60000)
        );
        assert!(parsed.use_external_ip);
        assert_eq!(parsed.rtc_udp_port, Some(7882));
        assert!(!parsed.enable_loopback_candidate);
        assert_eq!(parsed.node_ip, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(parsed.log_level, Some(LogLevel::Debug));
        let keys: Vec<_> = parsed.keys.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["APIa", "APIb"]);
        assert!(parsed.keys.iter().all(|c| c.secret.expose() == SECRET));
        let extra: Mapping = serde_yaml::from_str(
            "room: {auto_create: false}\nrtc: {udp_port_typo: 1}\nlogging: {json: true}\n",
        )
        .unwrap();
        assert_eq!(parsed.extra, extra);
        assert!(parsed.redis.is_none() && parsed.key_file.is_none());
        assert!(!format!("{parsed:?}").contains(SECRET));
    }

    #[test]
    fn an_empty_file_means_livekit_defaults() {
        for text in ["", "# nothing\n", "---\n"] {
            let parsed = LivekitYaml::parse(text).unwrap();
            assert_eq!(parsed.port, 7880);
            assert!(parsed.keys.is_empty() && parsed.node_ip.is_none() && parsed.extra.is_empty());
        }
    }

    #[test]
    fn key_file_and_foreign_redis_settings_are_kept() {
        let parsed = LivekitYaml::parse(
            "key_file: /etc/livekit/keys.yaml\nredis:\n  address: r:6379\n  use_tls: true\n  pool_size: 5\n  tls: {enabled: false, insecure: true}\n",
        )
        .unwrap();
        assert_eq!(
            parsed.key_file,
            Some(PathBuf::from("/etc/livekit/keys.yaml"))
        );
        let redis = parsed.redis.unwrap();
        assert_eq!(redis.nodes, RoutingNodes::Address("r:6379".to_owned()));
        assert!(redis.tls);
        let extra: Mapping =
            serde_yaml::from_str("redis: {pool_size: 5, tls: {insecure: true}}").unwrap();
        assert_eq!(parsed.extra, extra);
        let err = LivekitYaml::parse("redis:\n  sentinel_addresses: [a:1]\n").unwrap_err();
        assert!(err.to_string().contains("sentinel_master_name"), "{err}");
        let both = LivekitYaml::parse("redis:\n  address: r:1\n  cluster_addresses: [c:1]\n");
        assert!(both.is_err());
        let foreign = LivekitYaml::parse("redis:\n  pool_size: 3\n").unwrap();
        assert!(foreign.redis.is_none() && foreign.extra.contains_key("redis"));
    }

    #[test]
    fn strict_about_values_naming_field_and_non_secret_value() {
        for (text, field, shown) in [
            ("port: http", "port", Some("http")),
            ("port: 70000", "port", Some("70000")),
            ("port: \"7880\"", "port", Some("7880")),
            ("rtc:\n  tcp_port: -1", "rtc.tcp_port", Some("-1")),
            (
                "rtc:\n  port_range_end: 1.5",
                "rtc.port_range_end",
                Some("1.5"),
            ),
            (
                "rtc:\n  node_ip: 10.0.0.300",
                "rtc.node_ip",
                Some("10.0.0.300"),
            ),
            (
                "rtc:\n  node_ip: 1.2.3.4,5.6.7.8",
                "rtc.node_ip",
                Some("1.2.3.4,5.6.7.8"),
            ),
            (
                "rtc:\n  use_external_ip: maybe",
                "rtc.use_external_ip",
                Some("maybe"),
            ),
            ("rtc: [1]", "rtc", None),
            ("logging:\n  level: loud", "logging.level", Some("loud")),
            ("keys:\n  \"a b\": x", "keys", Some("a b")),
            ("keys: [a]", "keys", None),
            ("redis:\n  address: r:1\n  db: x", "redis.db", Some("x")),
            ("- 1", "(document)", None),
        ] {
            let err = LivekitYaml::parse(text).unwrap_err();
            let message = err.to_string();
            assert!(message.starts_with("livekit.yaml: "), "{message}");
            assert!(message.contains(&format!("`{field}`")), "{message}");
            if let Some(shown) = shown {
                assert!(message.contains(&format!("{shown:?}")), "{message}");
            }
        }
    }

    #[test]
    fn secrets_of_the_wrong_type_are_refused_without_their_value() {
        for (text, field) in [
            (
                "keys:\n  APIa: 123456789012345678901234567890123",
                "keys.APIa",
            ),
            ("keys:\n  APIa: true", "`keys.APIa`"),
            ("keys:\n  APIa:", "`keys.APIa`"),
            ("keys:\n  APIa: ''", "`keys.APIa`"),
            (
                "keys:\n  APIa: 12345678901234567890123456789012345",
                "(line 2)",
            ),
            (
                "redis:\n  address: r:1\n  password: 123456789",
                "redis.password",
            ),
        ] {
            let err = LivekitYaml::parse(text).unwrap_err();
            let message = match &err {
                ParseError::Yaml { source, .. } => {
                    assert_eq!(source.line, Some(2));
                    format!("{err}: {source} (line 2)")
                }
                _ => err.to_string(),
            };
            assert!(message.contains(field), "{message}");
            assert!(!message.contains("123456789"), "{message}");
        }
        assert!(matches!(
            LivekitYaml::parse("port: [unclosed"),
            Err(ParseError::Yaml { .. })
        ));
    }
}
