//! `backend.env`, read by lk-backend: rendering and parsing.
//!
//! The format is the subset of shell that POSIX `sh` (`. backend.env`), systemd's
//! `EnvironmentFile=` and dotenv readers agree on: `NAME=value` lines, `#` comments. A value is
//! written bare when it holds only `[A-Za-z0-9_./:@+=,-]`, in single quotes when it holds no `'`
//! and no line break, and otherwise in double quotes with `\` `"` `$` `` ` `` escaped and line
//! breaks written as `\n`/`\r` (API secrets never need this: `Secret::api_secret` refuses quotes
//! and whitespace; a path might). A path that is not UTF-8 is written lossily (`U+FFFD`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::{ParseError, livekit_url};
use crate::inputs::{Credentials, RenderInputs};
use crate::paths::ManagedFile;
use crate::secret::{ApiKey, InvalidValue, Secret};

const FILE: ManagedFile = ManagedFile::BackendEnv;

const HEADER: &str = "\
# Managed by livekit-provision: do not edit, this file is rewritten.
# Read by lk-backend. Ports come from provision.yaml, credentials from the secret store.
";

/// What a `backend.env` says. Every managed variable is optional here; the consistency checker
/// decides what a missing one means.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct BackendEnv {
    /// `LIVEKIT_API_KEY`.
    pub api_key: Option<ApiKey>,
    /// `LIVEKIT_API_SECRET`.
    pub api_secret: Option<Secret>,
    /// `LIVEKIT_URL`.
    pub livekit_url: Option<String>,
    /// `PORT`: lk-backend's port.
    pub port: Option<u16>,
    /// `SQLITE_PATH`.
    pub sqlite_path: Option<PathBuf>,
    /// Every other variable, by name. Values may be secret: `Debug` prints only the names.
    pub other: BTreeMap<String, String>,
}

impl fmt::Debug for BackendEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendEnv")
            .field("api_key", &self.api_key)
            .field("api_secret", &self.api_secret)
            .field("livekit_url", &self.livekit_url)
            .field("port", &self.port)
            .field("sqlite_path", &self.sqlite_path)
            .field("other", &self.other.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl BackendEnv {
    /// Parse the text of a `backend.env`. Blank lines, `#` comments, `export ` prefixes, CRLF line
    /// ends and single- or double-quoted values are accepted; when a name appears twice the last
    /// one wins, as in every reader of the file.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut env = Self::default();
        for (index, raw) in text.split('\n').enumerate() {
            let line_error = |problem: &str| ParseError::Line {
                file: FILE,
                line: index + 1,
                problem: problem.to_owned(),
            };
            let line = raw.strip_suffix('\r').unwrap_or(raw).trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line
                .strip_prefix("export")
                .filter(|rest| rest.starts_with([' ', '\t']))
                .map_or(line, str::trim_start);
            // The line may hold a secret: errors describe it, never quote it.
            let Some((name, value)) = line.split_once('=') else {
                return Err(line_error("is not NAME=value"));
            };
            let name = name.trim_end();
            if !is_variable_name(name) {
                return Err(line_error("does not start with a variable name"));
            }
            let value = parse_value(value).map_err(line_error)?;
            env.set(name, value)?;
        }
        Ok(env)
    }

    fn set(&mut self, name: &str, value: String) -> Result<(), ParseError> {
        let field_error = |reason: InvalidValue| ParseError::Field {
            file: FILE,
            field: name.to_owned(),
            reason,
        };
        match name {
            "LIVEKIT_API_KEY" => self.api_key = Some(ApiKey::new(value).map_err(field_error)?),
            "LIVEKIT_API_SECRET" => {
                if value.is_empty() {
                    return Err(field_error(InvalidValue::new("is empty", None)));
                }
                self.api_secret = Some(Secret::new(value));
            }
            "LIVEKIT_URL" => {
                if !["ws://", "wss://", "http://", "https://"]
                    .iter()
                    .any(|scheme| value.starts_with(scheme))
                {
                    return Err(field_error(InvalidValue::new(
                        "is not a ws://, wss://, http:// or https:// URL",
                        Some(value),
                    )));
                }
                self.livekit_url = Some(value);
            }
            "PORT" => match value.parse::<u16>() {
                Ok(port) if port != 0 => self.port = Some(port),
                _ => {
                    return Err(field_error(InvalidValue::new(
                        "is not a port number (1-65535)",
                        Some(value),
                    )));
                }
            },
            "SQLITE_PATH" => {
                if value.is_empty() {
                    return Err(field_error(InvalidValue::new("is empty", None)));
                }
                self.sqlite_path = Some(PathBuf::from(value));
            }
            _ => {
                self.other.insert(name.to_owned(), value);
            }
        }
        Ok(())
    }

    /// `LIVEKIT_API_KEY` and `LIVEKIT_API_SECRET`, when both are set.
    pub fn credentials(&self) -> Option<Credentials> {
        Some(Credentials {
            key: self.api_key.clone()?,
            secret: self.api_secret.clone()?,
        })
    }
}

pub(crate) fn render(inputs: &RenderInputs) -> String {
    let mut out = String::from(HEADER);
    let mut line = |name: &str, value: &str| {
        out.push_str(name);
        out.push('=');
        out.push_str(&quote(value));
        out.push('\n');
    };
    line("LIVEKIT_API_KEY", inputs.credentials.key.as_str());
    line("LIVEKIT_API_SECRET", inputs.credentials.secret.expose());
    line(
        "LIVEKIT_URL",
        &livekit_url(inputs.node_ip, inputs.settings.port),
    );
    line("PORT", &inputs.settings.backend_port.to_string());
    line("SQLITE_PATH", &inputs.sqlite_path.to_string_lossy());
    out
}

#[cfg(any(test, feature = "testing"))]
pub(crate) fn expected(inputs: &RenderInputs) -> BackendEnv {
    BackendEnv {
        api_key: Some(inputs.credentials.key.clone()),
        api_secret: Some(inputs.credentials.secret.clone()),
        livekit_url: Some(livekit_url(inputs.node_ip, inputs.settings.port)),
        port: Some(inputs.settings.backend_port),
        sqlite_path: Some(PathBuf::from(
            inputs.sqlite_path.to_string_lossy().into_owned(),
        )),
        other: BTreeMap::new(),
    }
}

fn is_bare_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | ':' | '@' | '+' | '=' | ',' | '-')
}

/// A value as it is written after `NAME=`.
fn quote(value: &str) -> String {
    if !value.is_empty() && value.chars().all(is_bare_safe) {
        return value.to_owned();
    }
    if !value.contains(['\'', '\n', '\r']) {
        return format!("'{value}'");
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' | '"' | '$' | '`' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The value after `=`: bare (up to a ` #` comment), `'single'` or `"double"` quoted.
fn parse_value(text: &str) -> Result<String, &'static str> {
    let text = text.trim_start_matches([' ', '\t']);
    let (value, rest) = if let Some(inner) = text.strip_prefix('\'') {
        let end = inner
            .find('\'')
            .ok_or("has a single quote that is never closed")?;
        (inner[..end].to_owned(), &inner[end + 1..])
    } else if let Some(inner) = text.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = inner.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    end = Some(i);
                    break;
                }
                '\\' => match chars.next() {
                    Some((_, e @ ('\\' | '"' | '$' | '`'))) => value.push(e),
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 'r')) => value.push('\r'),
                    Some((_, other)) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => value.push('\\'),
                },
                c => value.push(c),
            }
        }
        let end = end.ok_or("has a double quote that is never closed")?;
        (value, &inner[end + 1..])
    } else {
        let cut = text
            .char_indices()
            .find(|&(i, c)| c == '#' && text[..i].ends_with([' ', '\t']))
            .map_or(text.len(), |(i, _)| i);
        return Ok(text[..cut].trim_end_matches([' ', '\t']).to_owned());
    };
    let rest = rest.trim_start_matches([' ', '\t']);
    if rest.is_empty() || rest.starts_with('#') {
        Ok(value)
    } else {
        Err("has text after the closing quote")
    }
}

#[cfg(test)]
mod tests {
    use crate::error_chain::Hint;
    use super::*;

    const SECRET: &str = "fake0secret0for0tests0only0000000000000000";

    #[test]
    fn quoting_round_trips() {
        for value in [
            "",
            "plain",
            "ws://[::1]:7880",
            "a b",
            "it's",
            "$HOME `x` \\ \"q\"",
            "line\nbreak\r",
            "#hash",
            "tab\there",
        ] {
            let parsed = parse_value(&quote(value)).unwrap();
            assert_eq!(parsed, value, "{value:?} written as {}", quote(value));
        }
        assert_eq!(quote("/var/lib/lk.db"), "/var/lib/lk.db");
        assert_eq!(quote("a#b"), "'a#b'");
    }

    #[test]
    fn tolerates_formatting_it_did_not_write() {
        let text = format!(
            "\u{feff}# hand written\r\n\r\nexport PORT=9000\r\n  LIVEKIT_API_KEY = \"APIkey\" # the key\r\nLIVEKIT_API_SECRET={SECRET}#kept\r\nSQLITE_PATH='/srv/db file.sqlite'\r\nLIVEKIT_URL=ws://10.0.0.1:7880 # comment\r\nEXTRA=1\r\nPORT=9001"
        );
        let env = BackendEnv::parse(&text).unwrap();
        assert_eq!(env.port, Some(9001), "last one wins");
        assert_eq!(env.api_key.as_ref().unwrap().as_str(), "APIkey");
        assert_eq!(
            env.api_secret.as_ref().unwrap().expose(),
            format!("{SECRET}#kept")
        );
        assert_eq!(env.sqlite_path, Some(PathBuf::from("/srv/db file.sqlite")));
        assert_eq!(env.livekit_url.as_deref(), Some("ws://10.0.0.1:7880"));
        assert_eq!(env.other.get("EXTRA").map(String::as_str), Some("1"));
        assert!(env.credentials().is_some());
        assert!(!format!("{env:?}").contains(SECRET));
    }

    #[test]
    fn strict_about_values_naming_field_and_non_secret_value() {
        for (text, field, shown) in [
            ("PORT=http", "PORT", Some("http")),
            ("PORT=0", "PORT", Some("0")),
            ("LIVEKIT_API_KEY=a:b", "LIVEKIT_API_KEY", Some("a:b")),
            (
                "LIVEKIT_URL=10.0.0.1:7880",
                "LIVEKIT_URL",
                Some("10.0.0.1:7880"),
            ),
            ("LIVEKIT_API_SECRET=", "LIVEKIT_API_SECRET", None),
            ("SQLITE_PATH=''", "SQLITE_PATH", None),
        ] {
            let err = BackendEnv::parse(text).unwrap_err();
            let message = err.to_string();
            assert!(message.starts_with("backend.env: "), "{message}");
            assert!(message.contains(&format!("`{field}`")), "{message}");
            if let Some(shown) = shown {
                assert!(message.contains(&format!("{shown:?}")), "{message}");
            }
            assert!(err.hint().is_some());
        }
    }

    #[test]
    fn malformed_lines_are_named_without_their_content() {
        for (text, line) in [
            (format!("PORT=1\n{SECRET}\n"), 2),
            (format!("LIVEKIT_API_SECRET='{SECRET}\n"), 1),
            (format!("LIVEKIT_API_SECRET=\"{SECRET}\n"), 1),
            (format!("LIVEKIT_API_SECRET='{SECRET}'x\n"), 1),
            (format!("1X={SECRET}\n"), 1),
        ] {
            let err = BackendEnv::parse(&text).unwrap_err();
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("backend.env line {line}: ")),
                "{message}"
            );
            assert!(!message.contains(SECRET), "{message}");
        }
    }
}
