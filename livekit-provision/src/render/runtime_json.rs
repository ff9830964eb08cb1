//! `runtime.json`, read by other services: rendering and parsing.
//!
//! Written by hand as pretty JSON with a fixed key order (each value through `serde_json`'s
//! escaping, which cannot fail), so the bytes are deterministic and rendering is infallible.

use std::fmt::Write as _;
use std::net::IpAddr;

use serde_json::{Map, Value};

use super::{ParseError, livekit_url};
use crate::inputs::{Credentials, RenderInputs};
use crate::paths::ManagedFile;
use crate::secret::{ApiKey, Secret};
use crate::version::LivekitVersion;

const FILE: ManagedFile = ManagedFile::RuntimeJson;

/// What a `runtime.json` says. Fields other services do not need (`rtc_*`, `redis_address`) are
/// optional on reading; unknown fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeJson {
    /// `api_key`.
    pub api_key: ApiKey,
    /// `api_secret`.
    pub api_secret: Secret,
    /// `node_ip`.
    pub node_ip: IpAddr,
    /// `livekit_url`: `ws://<node_ip>:<port>`.
    pub livekit_url: String,
    /// `version` (without `v`), or `null` when no version is pinned.
    pub version: Option<LivekitVersion>,
    /// `port`: livekit-server's HTTP/WebSocket port.
    pub port: u16,
    /// `backend_port`: lk-backend's port.
    pub backend_port: u16,
    /// `rtc_tcp_port`.
    pub rtc_tcp_port: Option<u16>,
    /// `rtc_port_range_start`.
    pub rtc_port_range_start: Option<u16>,
    /// `rtc_port_range_end`.
    pub rtc_port_range_end: Option<u16>,
    /// `redis_address`: Redis for LiveKit's routing, `null` when single-node.
    pub redis_address: Option<String>,
}

impl RuntimeJson {
    /// Parse the text of a `runtime.json`.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let value: Value =
            serde_json::from_str(text).map_err(|source| ParseError::Json { file: FILE, source })?;
        let Value::Object(mut object) = value else {
            return Err(ParseError::field(
                FILE,
                "(document)",
                "is not a JSON object",
                None,
            ));
        };
        let api_key = ApiKey::new(required_string(&mut object, "api_key")?).map_err(|reason| {
            ParseError::Field {
                file: FILE,
                field: "api_key".to_owned(),
                reason,
            }
        })?;
        let api_secret = match object.remove("api_secret") {
            None | Some(Value::Null) => return Err(missing("api_secret")),
            Some(Value::String(secret)) if !secret.is_empty() => Secret::new(secret),
            Some(Value::String(_)) => {
                return Err(ParseError::field(FILE, "api_secret", "is empty", None));
            }
            Some(_) => {
                return Err(ParseError::field(
                    FILE,
                    "api_secret",
                    "is not a string",
                    None,
                ));
            }
        };
        let node_ip_text = required_string(&mut object, "node_ip")?;
        let node_ip = node_ip_text.parse().map_err(|_| {
            ParseError::field(FILE, "node_ip", "is not an IP address", Some(node_ip_text))
        })?;
        let livekit_url = required_string(&mut object, "livekit_url")?;
        let version = optional_string(&mut object, "version")?
            .map(|text| {
                LivekitVersion::parse(&text).map_err(|reason| ParseError::Field {
                    file: FILE,
                    field: "version".to_owned(),
                    reason,
                })
            })
            .transpose()?;
        Ok(Self {
            api_key,
            api_secret,
            node_ip,
            livekit_url,
            version,
            port: optional_port(&mut object, "port")?.ok_or_else(|| missing("port"))?,
            backend_port: optional_port(&mut object, "backend_port")?
                .ok_or_else(|| missing("backend_port"))?,
            rtc_tcp_port: optional_port(&mut object, "rtc_tcp_port")?,
            rtc_port_range_start: optional_port(&mut object, "rtc_port_range_start")?,
            rtc_port_range_end: optional_port(&mut object, "rtc_port_range_end")?,
            redis_address: optional_string(&mut object, "redis_address")?,
        })
    }

    /// `api_key` and `api_secret`.
    pub fn credentials(&self) -> Credentials {
        Credentials {
            key: self.api_key.clone(),
            secret: self.api_secret.clone(),
        }
    }
}

pub(crate) fn render(inputs: &RenderInputs) -> String {
    let settings = &inputs.settings;
    let fields: [(&str, Value); 11] = [
        ("api_key", Value::from(inputs.credentials.key.as_str())),
        (
            "api_secret",
            Value::from(inputs.credentials.secret.expose()),
        ),
        ("node_ip", Value::from(inputs.node_ip.to_string())),
        (
            "livekit_url",
            Value::from(livekit_url(inputs.node_ip, settings.port)),
        ),
        (
            "version",
            inputs
                .version
                .as_ref()
                .map_or(Value::Null, |v| Value::from(v.to_string())),
        ),
        ("port", Value::from(settings.port)),
        ("backend_port", Value::from(settings.backend_port)),
        ("rtc_tcp_port", Value::from(settings.rtc_tcp_port)),
        (
            "rtc_port_range_start",
            Value::from(settings.rtc_port_range_start),
        ),
        (
            "rtc_port_range_end",
            Value::from(settings.rtc_port_range_end),
        ),
        (
            "redis_address",
            inputs
                .redis
                .as_ref()
                .map_or(Value::Null, |r| Value::from(r.nodes.shown())),
        ),
    ];
    let mut out = String::from("{\n");
    for (i, (name, value)) in fields.iter().enumerate() {
        let comma = if i + 1 < fields.len() { "," } else { "" };
        // Writing into a `String` cannot fail.
        let _ = writeln!(out, "  \"{name}\": {value}{comma}");
    }
    out.push_str("}\n");
    out
}

#[cfg(any(test, feature = "testing"))]
pub(crate) fn expected(inputs: &RenderInputs) -> RuntimeJson {
    let settings = &inputs.settings;
    RuntimeJson {
        api_key: inputs.credentials.key.clone(),
        api_secret: inputs.credentials.secret.clone(),
        node_ip: inputs.node_ip,
        livekit_url: livekit_url(inputs.node_ip, settings.port),
        version: inputs.version.clone(),
        port: settings.port,
        backend_port: settings.backend_port,
        rtc_tcp_port: Some(settings.rtc_tcp_port),
        rtc_port_range_start: Some(settings.rtc_port_range_start),
        rtc_port_range_end: Some(settings.rtc_port_range_end),
        redis_address: inputs.redis.as_ref().map(|r| r.nodes.shown()),
    }
}

fn missing(field: &str) -> ParseError {
    ParseError::Missing {
        file: FILE,
        field: field.to_owned(),
    }
}

/// A non-secret value as written, for error messages.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn optional_string(
    object: &mut Map<String, Value>,
    field: &str,
) -> Result<Option<String>, ParseError> {
    match object.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ParseError::field(
            FILE,
            field,
            "is not a string",
            Some(shown(&other)),
        )),
    }
}

fn required_string(object: &mut Map<String, Value>, field: &str) -> Result<String, ParseError> {
    optional_string(object, field)?.ok_or_else(|| missing(field))
}

fn optional_port(object: &mut Map<String, Value>, field: &str) -> Result<Option<u16>, ParseError> {
    match object.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|port| *port != 0)
            .map(Some)
            .ok_or_else(|| {
                ParseError::field(
                    FILE,
                    field,
                    "is not a port number (1-65535)",
                    Some(shown(&value)),
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "fake0secret0for0tests0only0000000000000000";

    #[test]
    fn tolerates_reordering_unknown_fields_crlf_and_minimal_files() {
        let text = format!(
            "{{\r\n\"port\": 7880, \"backend_port\": 8081,\r\n  \"version\": \"v1.7.2\", \"note\": {{\"x\": 1}},\r\n\"livekit_url\": \"ws://[::1]:7880\", \"node_ip\": \"::1\",\r\n\"api_secret\": \"{SECRET}\", \"api_key\": \"APIa\"}}"
        );
        let parsed = RuntimeJson::parse(&text).unwrap();
        assert_eq!(parsed.version.clone().unwrap().to_string(), "1.7.2");
        assert_eq!(parsed.node_ip, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(parsed.credentials().secret.expose(), SECRET);
        assert_eq!(parsed.rtc_tcp_port, None);
        assert_eq!(parsed.redis_address, None);
        assert!(!format!("{parsed:?}").contains(SECRET));
    }

    #[test]
    fn strict_about_values_naming_field_and_non_secret_value() {
        let base = format!(
            r#""api_key": "APIa", "api_secret": "{SECRET}", "node_ip": "10.0.0.1", "livekit_url": "ws://10.0.0.1:7880", "version": null, "port": 7880, "backend_port": 8081"#
        );
        for (replace, with, field, shown) in [
            ("\"port\": 7880", "\"port\": \"7880\"", "port", Some("7880")),
            ("\"port\": 7880", "\"port\": 0", "port", Some("0")),
            ("\"port\": 7880", "\"x\": 0", "port", None),
            (
                "\"node_ip\": \"10.0.0.1\"",
                "\"node_ip\": \"host\"",
                "node_ip",
                Some("host"),
            ),
            (
                "\"version\": null",
                "\"version\": \"latest\"",
                "version",
                Some("latest"),
            ),
            (
                "\"api_key\": \"APIa\"",
                "\"api_key\": \"a:b\"",
                "api_key",
                Some("a:b"),
            ),
            (
                "\"backend_port\": 8081",
                "\"backend_port\": 8081.5",
                "backend_port",
                Some("8081.5"),
            ),
        ] {
            let text = format!("{{{}}}", base.replace(replace, with));
            let err = RuntimeJson::parse(&text).unwrap_err();
            let message = err.to_string();
            assert!(message.starts_with("runtime.json: "), "{message}");
            assert!(message.contains(&format!("`{field}`")), "{message}");
            if let Some(shown) = shown {
                assert!(message.contains(&format!("{shown:?}")), "{message}");
            }
        }
        for (secret, problem) in [("12345", "is not a string"), ("\"\"", "is empty")] {
            let text = format!("{{{}}}", base.replace(&format!("\"{SECRET}\""), secret));
            let message = RuntimeJson::parse(&text).unwrap_err().to_string();
            assert!(
                message.contains("`api_secret`") && message.contains(problem),
                "{message}"
            );
            assert!(!message.contains("12345"), "{message}");
        }
        assert!(matches!(
            RuntimeJson::parse("{\"api_key\": "),
            Err(ParseError::Json { .. })
        ));
        assert!(
            RuntimeJson::parse("[]")
                .unwrap_err()
                .to_string()
                .contains("object")
        );
    }
}
