//! Pure rendering of the three managed files, and their parsers.
//!
//! [`render`] is a pure function of [`RenderInputs`]: no I/O, no clock, no randomness; the same
//! inputs give the same bytes. Each file has a parser that is its inverse and tolerates
//! formatting it did not write (comments, key order, CRLF line ends, `export ` prefixes), but is
//! strict about values; [`expected`] projects the inputs onto what the parsers must return, so
//! `parse(render(x)) == expected(x)` is testable and the consistency checker can compare files.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::inputs::RenderInputs;
use crate::paths::ManagedFile;
use crate::secret::InvalidValue;

mod backend_env;
mod extra;
mod livekit_yaml;
mod node_sections;
mod runtime_json;
mod turn;
mod yaml_emit;

pub use backend_env::BackendEnv;
pub use extra::ExtraError;
pub use livekit_yaml::LivekitYaml;
pub use runtime_json::RuntimeJson;

/// Render the three managed files. Pure and deterministic.
///
/// `inputs.next` (a staged key) and `inputs.previous` (a declared rotation grace), when set, are
/// listed in `livekit.yaml`'s `keys:` beside the current pair, every pair sorted by key; one
/// whose key equals the current key is left out, since a YAML mapping cannot hold one key twice
/// and the current pair wins. `backend.env` and `runtime.json` hold the current pair only.
pub fn render(inputs: &RenderInputs) -> Rendered {
    Rendered {
        livekit_yaml: livekit_yaml::render(inputs),
        backend_env: backend_env::render(inputs),
        runtime_json: runtime_json::render(inputs),
    }
}

/// The URL clients and lk-backend use to reach livekit-server: `ws://<node_ip>:<port>`, with an
/// IPv6 address in brackets.
pub fn livekit_url(node_ip: IpAddr, port: u16) -> String {
    format!("ws://{}", SocketAddr::new(node_ip, port))
}

/// The three files, parsed: the round-trip oracle of the tests, benches and fuzz targets.
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFiles {
    /// `livekit.yaml`
    pub livekit_yaml: LivekitYaml,
    /// `backend.env`
    pub backend_env: BackendEnv,
    /// `runtime.json`
    pub runtime_json: RuntimeJson,
}

#[cfg(any(test, feature = "testing"))]
impl ParsedFiles {
    /// Parse each of a rendered set.
    pub fn parse(rendered: &Rendered) -> Result<Self, ParseError> {
        Ok(Self {
            livekit_yaml: LivekitYaml::parse(&rendered.livekit_yaml)?,
            backend_env: BackendEnv::parse(&rendered.backend_env)?,
            runtime_json: RuntimeJson::parse(&rendered.runtime_json)?,
        })
    }
}

/// What parsing `render(inputs)` gives back: the projection of the inputs onto each file.
#[cfg(any(test, feature = "testing"))]
pub fn expected(inputs: &RenderInputs) -> ParsedFiles {
    ParsedFiles {
        livekit_yaml: livekit_yaml::expected(inputs),
        backend_env: backend_env::expected(inputs),
        runtime_json: runtime_json::expected(inputs),
    }
}

/// A YAML parser's complaint with every quoted fragment of the input removed.
///
/// `serde_yaml` quotes offending input in its messages (``invalid type: integer `1234…` ``), and
/// that input can be a secret written unquoted — the very mistake livekit-server trips over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlSyntaxError {
    message: String,
    /// 1-based line of the problem, when known.
    pub line: Option<usize>,
    /// 1-based column of the problem, when known.
    pub column: Option<usize>,
}

impl YamlSyntaxError {
    pub(crate) fn new(error: &serde_yaml::Error) -> Self {
        let mut message = String::new();
        let mut quote: Option<char> = None;
        for c in error.to_string().chars() {
            match quote {
                Some(open) if c == open => {
                    message.push('…');
                    message.push(c);
                    quote = None;
                }
                Some(_) => {}
                None => {
                    message.push(c);
                    if c == '`' || c == '"' {
                        quote = Some(c);
                    }
                }
            }
        }
        if let Some(open) = quote {
            message.push('…');
            message.push(open);
        }
        let location = error.location();
        Self {
            message,
            line: location.as_ref().map(serde_yaml::Location::line),
            column: location.as_ref().map(serde_yaml::Location::column),
        }
    }
}

/// Why a managed file could not be read back. Never carries a secret value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// `livekit.yaml` is not YAML.
    #[error("{file} is not valid YAML")]
    Yaml {
        /// The file.
        file: ManagedFile,
        /// The parser's complaint, with quoted input removed.
        #[source]
        source: YamlSyntaxError,
    },
    /// `runtime.json` is not JSON.
    #[error("{file} is not valid JSON")]
    Json {
        /// The file.
        file: ManagedFile,
        /// The parser's complaint (positions, not values).
        #[source]
        source: serde_json::Error,
    },
    /// A line of `backend.env` that is not `NAME=value`.
    #[error("{file} line {line}: {problem}")]
    Line {
        /// The file.
        file: ManagedFile,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// A field holds a value of the wrong type or an invalid value. The value is shown only when
    /// it is not secret.
    #[error("{file}: `{field}`: {reason}")]
    Field {
        /// The file.
        file: ManagedFile,
        /// The field (dotted path or variable name).
        field: String,
        /// What is wrong, with the value when it may be shown.
        reason: InvalidValue,
    },
    /// A required field is absent.
    #[error("{file}: `{field}` is missing")]
    Missing {
        /// The file.
        file: ManagedFile,
        /// The field.
        field: String,
    },
}

impl ParseError {
    /// The file that failed to parse.
    pub fn file(&self) -> ManagedFile {
        match self {
            Self::Yaml { file, .. }
            | Self::Json { file, .. }
            | Self::Line { file, .. }
            | Self::Field { file, .. }
            | Self::Missing { file, .. } => *file,
        }
    }



    pub(crate) fn field(
        file: ManagedFile,
        field: impl Into<String>,
        reason: impl Into<String>,
        value: Option<String>,
    ) -> Self {
        Self::Field {
            file,
            field: field.into(),
            reason: InvalidValue::new(reason, value),
        }
    }
}

impl crate::error_chain::Hint for ParseError {
    fn hint(&self) -> Option<String> {
        Some(format!(
            "{} is managed by livekit-provision: `livekit-provision ensure` moves it to backups/ and writes a fresh one",
            self.file()
        ))
    }
}

/// The bytes of the three managed files, as one consistent set.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered {
    /// `livekit.yaml`
    pub livekit_yaml: String,
    /// `backend.env`
    pub backend_env: String,
    /// `runtime.json`
    pub runtime_json: String,
}

impl Rendered {
    /// The text of one file.
    pub fn get(&self, file: ManagedFile) -> &str {
        match file {
            ManagedFile::LivekitYaml => &self.livekit_yaml,
            ManagedFile::BackendEnv => &self.backend_env,
            ManagedFile::RuntimeJson => &self.runtime_json,
        }
    }
}

/// The files hold secrets: print only their sizes.
impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rendered")
            .field(
                "livekit_yaml",
                &format_args!("<{} bytes>", self.livekit_yaml.len()),
            )
            .field(
                "backend_env",
                &format_args!("<{} bytes>", self.backend_env.len()),
            )
            .field(
                "runtime_json",
                &format_args!("<{} bytes>", self.runtime_json.len()),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;
    use crate::inputs::{Credentials, ExtraOverlay, RedisRouting, RoutingNodes};
    use crate::secret::{ApiKey, Secret};
    use crate::settings::Settings;
    use crate::version::LivekitVersion;

    const FAKE_SECRET: &str = "fakeSecretForSnapshotsOnly0123456789abcdef";

    fn credentials(key: &str, secret: &str) -> Credentials {
        Credentials {
            key: ApiKey::new(key).unwrap(),
            secret: Secret::api_secret(secret).unwrap(),
        }
    }

    fn typical() -> RenderInputs {
        RenderInputs {
            credentials: credentials("APIfakeKey12345", FAKE_SECRET),
            previous: None,
            next: None,
            node_ip: "192.0.2.10".parse().unwrap(),
            node_ip6: None,
            version: Some(LivekitVersion::parse("v1.7.2").unwrap()),
            settings: Settings::default(),
            redis: None,
            extra: ExtraOverlay::parse(
                "room:\n  empty_timeout: 600\n  enabled_codecs:\n    - mime: audio/opus\n    - mime: video/VP8\nrtc:\n  use_ice_lite: true\n",
            )
            .unwrap(),
            sqlite_path: "/var/lib/livekit-provision/backend.sqlite".into(),
            turn_certificate: None,
            prometheus_password: None,
        }
    }

    #[test]
    fn typical_livekit_yaml() {
        insta::assert_snapshot!(render(&typical()).livekit_yaml, @r#"
        # Managed by livekit-provision: do not edit, this file is rewritten.
        # Put additions in extra.yaml (merged in here); ports and log level belong in
        # provision.yaml, keys and the node IP in the secret store.
        port: 7880
        rtc:
          tcp_port: 7881
          port_range_start: 50000
          port_range_end: 60000
          use_external_ip: false
          node_ip: "192.0.2.10"
          use_ice_lite: true
        keys:
          "APIfakeKey12345": "fakeSecretForSnapshotsOnly0123456789abcdef"
        logging:
          level: info
        room:
          empty_timeout: 600
          enabled_codecs:
            - mime: audio/opus
            - mime: video/VP8
        "#);
    }

    #[test]
    fn typical_backend_env() {
        insta::assert_snapshot!(render(&typical()).backend_env, @r#"
        # Managed by livekit-provision: do not edit, this file is rewritten.
        # Read by lk-backend. Ports come from provision.yaml, credentials from the secret store.
        LIVEKIT_API_KEY=APIfakeKey12345
        LIVEKIT_API_SECRET=fakeSecretForSnapshotsOnly0123456789abcdef
        LIVEKIT_URL=ws://192.0.2.10:7880
        PORT=8081
        SQLITE_PATH=/var/lib/livekit-provision/backend.sqlite
        "#);
    }

    #[test]
    fn typical_runtime_json() {
        insta::assert_snapshot!(render(&typical()).runtime_json, @r#"
        {
          "api_key": "APIfakeKey12345",
          "api_secret": "fakeSecretForSnapshotsOnly0123456789abcdef",
          "node_ip": "192.0.2.10",
          "livekit_url": "ws://192.0.2.10:7880",
          "version": "1.7.2",
          "port": 7880,
          "backend_port": 8081,
          "rtc_tcp_port": 7881,
          "rtc_port_range_start": 50000,
          "rtc_port_range_end": 60000,
          "redis_address": null
        }
        "#);
    }

    #[test]
    fn fleet_node_with_redis_ipv6_and_rotation_grace() {
        let mut inputs = typical();
        inputs.node_ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
        inputs.previous = Some(credentials("APIoldKey", &"0".repeat(40)));
        inputs.version = None;
        inputs.extra = ExtraOverlay::default();
        inputs.redis = Some(RedisRouting {
            nodes: RoutingNodes::Address("redis.internal:6379".to_owned()),
            username: Some("livekit".to_owned()),
            password: Some(Secret::new("12345")),
            db: Some(2),
            tls: true,
            tls_files: crate::store::TlsFiles::default(),
        });
        let rendered = render(&inputs);
        insta::assert_snapshot!(rendered.livekit_yaml, @r#"
        # Managed by livekit-provision: do not edit, this file is rewritten.
        # Put additions in extra.yaml (merged in here); ports and log level belong in
        # provision.yaml, keys and the node IP in the secret store.
        port: 7880
        rtc:
          tcp_port: 7881
          port_range_start: 50000
          port_range_end: 60000
          use_external_ip: false
          node_ip: "::1"
        keys:
          "APIfakeKey12345": "fakeSecretForSnapshotsOnly0123456789abcdef"
          "APIoldKey": "0000000000000000000000000000000000000000"
        logging:
          level: info
        redis:
          address: "redis.internal:6379"
          username: "livekit"
          password: "12345"
          db: 2
          tls:
            enabled: true
        "#);
        assert!(
            rendered
                .backend_env
                .contains("LIVEKIT_URL='ws://[::1]:7880'\n")
        );
        assert!(rendered.runtime_json.contains("\"version\": null,"));
        assert_eq!(ParsedFiles::parse(&rendered).unwrap(), expected(&inputs));
    }

    #[test]
    fn turn_block_with_the_overlay_turn_keys_merged_in() {
        let mut inputs = typical();
        inputs.settings.turn = crate::settings::TurnSettings {
            enabled: true,
            domain: Some("turn.example.com".to_owned()),
            tls_port: Some(443),
            udp_port: Some(3478),
            relay_range_start: Some(30000),
            relay_range_end: Some(31000),
            cert_file: Some("/etc/livekit/turn.crt".into()),
            key_file: Some("/etc/livekit/turn.key".into()),
            external_tls: false,
        };
        inputs.extra = ExtraOverlay::parse("turn:\n  ttl_seconds: 600\n").unwrap();
        let rendered = render(&inputs);
        let turn = &rendered.livekit_yaml[rendered.livekit_yaml.find("turn:").unwrap()..];
        insta::assert_snapshot!(turn, @r#"
        turn:
          enabled: true
          domain: "turn.example.com"
          tls_port: 443
          udp_port: 3478
          relay_range_start: 30000
          relay_range_end: 31000
          cert_file: "/etc/livekit/turn.crt"
          key_file: "/etc/livekit/turn.key"
          ttl_seconds: 600
        "#);
        assert_eq!(ParsedFiles::parse(&rendered).unwrap(), expected(&inputs));
        // Disabled: nothing managed is written, the overlay's keys still are.
        inputs.settings.turn.enabled = false;
        let rendered = render(&inputs);
        assert!(
            rendered
                .livekit_yaml
                .ends_with("turn:\n  ttl_seconds: 600\n"),
            "{}",
            rendered.livekit_yaml
        );
        assert_eq!(ParsedFiles::parse(&rendered).unwrap(), expected(&inputs));
    }

    #[test]
    fn sentinel_and_tls_files_render_as_livekit_reads_them() {
        let mut inputs = typical();
        inputs.extra = ExtraOverlay::default();
        inputs.redis = Some(RedisRouting {
            nodes: RoutingNodes::Sentinel {
                master_name: "lk".to_owned(),
                addresses: vec!["s1:26379".to_owned(), "[::1]:26380".to_owned()],
                username: Some("watcher".to_owned()),
                password: Some(Secret::new("sentinel-pw")),
            },
            username: None,
            password: Some(Secret::new("master-pw")),
            db: None,
            tls: true,
            tls_files: crate::store::TlsFiles {
                ca: Some("/etc/lk/ca.pem".into()),
                cert: Some("/etc/lk/node.pem".into()),
                key: Some("/etc/lk/node.key".into()),
            },
        });
        let rendered = render(&inputs);
        let redis = &rendered.livekit_yaml[rendered.livekit_yaml.find("redis:").unwrap()..];
        insta::assert_snapshot!(redis, @r#"
        redis:
          sentinel_master_name: "lk"
          sentinel_addresses:
            - "s1:26379"
            - "[::1]:26380"
          sentinel_username: "watcher"
          sentinel_password: "sentinel-pw"
          password: "master-pw"
          tls:
            enabled: true
            ca_cert_file: "/etc/lk/ca.pem"
            client_cert_file: "/etc/lk/node.pem"
            client_key_file: "/etc/lk/node.key"
        "#);
        assert_eq!(ParsedFiles::parse(&rendered).unwrap(), expected(&inputs));

        inputs.redis.as_mut().unwrap().nodes =
            RoutingNodes::Cluster(vec!["c1:7000".to_owned(), "c2:7000".to_owned()]);
        let rendered = render(&inputs);
        assert!(
            rendered
                .livekit_yaml
                .contains("cluster_addresses:\n    - \"c1:7000\"\n    - \"c2:7000\"\n"),
            "{}",
            rendered.livekit_yaml
        );
        assert_eq!(ParsedFiles::parse(&rendered).unwrap(), expected(&inputs));
    }

    #[test]
    fn previous_pair_with_the_current_key_is_left_out() {
        let mut inputs = typical();
        inputs.previous = Some(credentials("APIfakeKey12345", &"x".repeat(40)));
        let parsed = LivekitYaml::parse(&render(&inputs).livekit_yaml).unwrap();
        assert_eq!(parsed.keys, vec![inputs.credentials.clone()]);
    }

    #[test]
    fn secrets_that_look_like_numbers_or_booleans_stay_strings() {
        for secret in [
            "12345678901234567890123456789012345",
            "true0000000000000000000000000000000",
            "1e500000000000000000000000000000000",
            "0x1234567890abcdef0123456789abcdef00",
            "#not:a-comment:0123456789012345678901",
        ] {
            let mut inputs = typical();
            inputs.credentials = credentials("12345", secret);
            let rendered = render(&inputs);
            assert!(
                rendered
                    .livekit_yaml
                    .contains(&format!("  \"12345\": \"{secret}\"\n")),
                "{}",
                rendered.livekit_yaml
            );
            let parsed = ParsedFiles::parse(&rendered).unwrap();
            assert_eq!(parsed, expected(&inputs), "{secret}");
            assert_eq!(parsed.livekit_yaml.keys[0].secret.expose(), secret);
            assert_eq!(
                parsed.backend_env.credentials().unwrap().secret.expose(),
                secret
            );
        }
    }

    #[test]
    fn rendering_is_deterministic() {
        assert_eq!(render(&typical()), render(&typical()));
    }

    #[test]
    fn debug_of_rendered_hides_contents() {
        assert!(!format!("{:?}", render(&typical())).contains(FAKE_SECRET));
        let parsed = ParsedFiles::parse(&render(&typical())).unwrap();
        assert!(!format!("{parsed:?}").contains(FAKE_SECRET));
    }
}
