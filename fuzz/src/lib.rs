//! Shared helpers of the fuzz targets: typical render inputs, and render inputs built from
//! arbitrary bytes through the library's validating constructors.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use arbitrary::Arbitrary;
use livekit_provision::inputs::RenderInputs;
use livekit_provision::{
    ApiKey, Credentials, ExtraOverlay, LivekitVersion, LogLevel, RedisRouting, RoutingNodes,
    Secret, Settings,
};

/// A node as most operators run it: default ports, a pinned version, no Redis, a small overlay.
pub fn typical_inputs() -> RenderInputs {
    RenderInputs {
        credentials: Credentials {
            key: ApiKey::new("APIfakeKey12345").expect("valid key"),
            secret: Secret::api_secret("fakeSecretForFuzzingOnly0123456789abcdef")
                .expect("valid secret"),
        },
        previous: None,
        next: None,
        node_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
        node_ip6: None,
        version: Some(LivekitVersion::parse("v1.7.2").expect("valid version")),
        settings: Settings::default(),
        redis: None,
        extra: ExtraOverlay::default(),
        sqlite_path: "/var/lib/livekit-provision/backend.sqlite".into(),
        turn_certificate: None,
        prometheus_password: None,
    }
}

/// Characters `Secret::api_secret` accepts: printable ASCII minus `'` `"` `\` `$` `` ` ``.
const SECRET_ALPHABET: &[u8] =
    b"!#%&()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_abcdefghijklmnopqrstuvwxyz{|}~";
const KEY_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/// A value given as is, or as bytes mapped onto the characters its validator accepts (so the
/// fuzzer reaches valid values quickly). Either way it goes through the validator.
#[derive(Debug, Arbitrary)]
pub enum Text {
    /// Used as is.
    Raw(String),
    /// Each byte picks a character of the accepted alphabet.
    Mapped(Vec<u8>),
}

impl Text {
    fn build(self, alphabet: &[u8], min_len: usize, pad: char) -> String {
        match self {
            Self::Raw(s) => s,
            Self::Mapped(bytes) => {
                let mut s: String = bytes
                    .iter()
                    .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
                    .collect();
                while s.len() < min_len {
                    s.push(pad);
                }
                s
            }
        }
    }

    fn key(self) -> Option<ApiKey> {
        ApiKey::new(self.build(KEY_ALPHABET, 1, 'K')).ok()
    }

    fn api_secret(self) -> Option<Secret> {
        Secret::api_secret(self.build(SECRET_ALPHABET, 32, 's')).ok()
    }
}

/// An IP address.
#[derive(Debug, Arbitrary)]
pub enum Ip {
    /// IPv4.
    V4([u8; 4]),
    /// IPv6.
    V6([u8; 16]),
}

/// A version: semver parts with an optional pre-release, or raw text.
#[derive(Debug, Arbitrary)]
pub enum Version {
    /// `major.minor.patch[-pre]`, with or without `v`.
    Parts(bool, u64, u64, u64, Option<String>),
    /// Raw text.
    Raw(String),
}

/// Redis routing as `resolve` builds it.
#[derive(Debug, Arbitrary)]
pub struct Redis {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    db: Option<u32>,
    tls: bool,
}

/// Render inputs from arbitrary bytes; [`FuzzInputs::build`] keeps only valid ones.
#[derive(Debug, Arbitrary)]
pub struct FuzzInputs {
    key: Text,
    secret: Text,
    previous: Option<(Text, Text)>,
    next: Option<(Text, Text)>,
    node_ip: Ip,
    version: Option<Version>,
    ports: [u16; 5],
    log_level: u8,
    redis: Option<Redis>,
    extra: String,
    sqlite_path: String,
}

/// What `resolve` requires of a Redis password (it calls `validate_secret_text(p, 1)`, which is
/// crate-private): 1 to 4096 characters of printable ASCII without `'` `"` `\` `$` `` ` ``.
fn valid_redis_password(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= livekit_provision::secret::MAX_SECRET_LEN
        && p.bytes().all(|b| SECRET_ALPHABET.contains(&b))
}

impl FuzzInputs {
    /// The inputs, when every part is valid; `None` otherwise.
    pub fn build(self) -> Option<RenderInputs> {
        let credentials = Credentials {
            key: self.key.key()?,
            secret: self.secret.api_secret()?,
        };
        let pair = |pair: Option<(Text, Text)>| match pair {
            Some((key, secret)) => Some(Some(Credentials {
                key: key.key()?,
                secret: secret.api_secret()?,
            })),
            None => Some(None),
        };
        let previous = pair(self.previous)?;
        let next = pair(self.next)?;
        let node_ip = match self.node_ip {
            Ip::V4(b) => IpAddr::V4(Ipv4Addr::from(b)),
            Ip::V6(b) => IpAddr::V6(Ipv6Addr::from(b)),
        };
        let version = match self.version {
            None => None,
            Some(Version::Parts(v, major, minor, patch, pre)) => {
                let v = if v { "v" } else { "" };
                let pre = pre.map(|p| format!("-{p}")).unwrap_or_default();
                Some(LivekitVersion::parse(&format!("{v}{major}.{minor}.{patch}{pre}")).ok()?)
            }
            Some(Version::Raw(text)) => Some(LivekitVersion::parse(&text).ok()?),
        };
        let [port, rtc_tcp_port, start, end, backend_port] = self.ports;
        let log_level = match self.log_level % 4 {
            0 => LogLevel::Debug,
            1 => LogLevel::Info,
            2 => LogLevel::Warn,
            _ => LogLevel::Error,
        };
        let mut settings = Settings {
            port,
            rtc_tcp_port,
            rtc_port_range_start: start,
            rtc_port_range_end: end,
            backend_port,
            log_level,
            ..Settings::default()
        };
        let redis = match self.redis {
            None => None,
            Some(r) => {
                if let Some(p) = &r.password
                    && !valid_redis_password(p)
                {
                    return None;
                }
                let address = format!("{}:{}", r.host, r.port);
                settings.redis_address = Some(address.clone());
                settings.redis_username.clone_from(&r.username);
                settings.redis_db = r.db;
                Some(RedisRouting {
                    nodes: RoutingNodes::Address(address),
                    username: r.username,
                    password: r.password.map(Secret::new),
                    db: r.db,
                    tls: r.tls,
                    tls_files: livekit_provision::store::TlsFiles::default(),
                })
            }
        };
        settings.validate().ok()?;
        let extra = ExtraOverlay::parse(&self.extra).ok()?;
        // `.nan` is valid YAML but never equal to itself: no round trip can compare it.
        if extra != extra.clone() {
            return None;
        }
        if self.sqlite_path.is_empty() {
            return None;
        }
        Some(RenderInputs {
            credentials,
            previous,
            next,
            node_ip,
            node_ip6: None,
            version,
            settings,
            redis,
            extra,
            sqlite_path: PathBuf::from(self.sqlite_path),
            prometheus_password: None,
            turn_certificate: None,
        })
    }
}
