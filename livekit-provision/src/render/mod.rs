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
mod runtime_json;
mod yaml_emit;

pub use backend_env::BackendEnv;
pub use extra::{EXTRA_TOP_LEVEL_KEYS, ExtraError};
pub use livekit_yaml::LivekitYaml;
pub use runtime_json::RuntimeJson;

/// Render the three managed files. Pure and deterministic.
///
/// `inputs.previous`, when set, is listed in `livekit.yaml`'s `keys:` after the current pair (a
/// declared rotation grace); it is left out when its key equals the current key, since a YAML
/// mapping cannot hold one key twice and the current pair wins.
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

/// The three files, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFiles {
    /// `livekit.yaml`
    pub livekit_yaml: LivekitYaml,
    /// `backend.env`
    pub backend_env: BackendEnv,
    /// `runtime.json`
    pub runtime_json: RuntimeJson,
}

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
pub fn expected(inputs: &RenderInputs) -> ParsedFiles {
    ParsedFiles {
        livekit_yaml: livekit_yaml::expected(inputs),
        backend_env: backend_env::expected(inputs),
        runtime_json: runtime_json::expected(inputs),
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
        /// The parser's complaint (positions, not values).
        #[source]
        source: serde_yaml::Error,
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

    /// How to fix it.
    pub fn hint(&self) -> Option<String> {
        Some(format!(
            "{} is managed by livekit-provision: `livekit-provision ensure` moves it to backups/ and writes a fresh one",
            self.file()
        ))
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
