//! The three managed files as they are on disk, read once and parsed, and what they say about
//! the credentials and the token limits: the one reader `ensure`, `check` and linked services
//! share.

use std::io;

use crate::inputs::Credentials;
use crate::paths::{ManagedFile, StateDir};
use crate::publish::{CurrentState, FixedPath, read_current};
use crate::render::{BackendEnv, LivekitYaml, ParseError, RuntimeJson};
use crate::validate::TokenLimits;

/// One managed file, read and parsed.
#[derive(Debug)]
pub enum Parsed<T> {
    /// Nothing at the fixed path.
    Missing,
    /// Something is there but could not be read (a directory, a dangling link, an I/O error).
    Unreadable(String),
    /// Read, but not a valid file of its kind.
    Invalid(ParseError),
    /// Read and valid.
    Valid(T),
}

impl<T> Parsed<T> {
    /// The parsed value, when valid.
    pub fn valid(&self) -> Option<&T> {
        match self {
            Self::Valid(v) => Some(v),
            _ => None,
        }
    }

    /// True when nothing is at the fixed path.
    pub fn is_missing(&self) -> bool {
        matches!(self, Self::Missing)
    }
}

/// A file on disk that holds other credentials than the store's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disagreement {
    /// The API key that file holds; `None` when it holds no usable key.
    pub disk_key: Option<String>,
}

/// What the state directory holds now, read without a lock (the three files of our layout come
/// from one generation even while a publish switches it).
#[derive(Debug)]
pub struct DiskTriple {
    /// What is at each fixed path, with the raw bytes.
    pub(crate) current: CurrentState,
    /// `livekit.yaml`, parsed.
    pub livekit_yaml: Parsed<LivekitYaml>,
    /// `backend.env`, parsed.
    pub backend_env: Parsed<BackendEnv>,
    /// `runtime.json`, parsed.
    pub runtime_json: Parsed<RuntimeJson>,
}

impl DiskTriple {
    /// Read and parse the three files of `state`.
    pub fn read(state: &StateDir) -> Self {
        let current = read_current(state);
        let livekit_yaml = parse(&current, ManagedFile::LivekitYaml, LivekitYaml::parse);
        let backend_env = parse(&current, ManagedFile::BackendEnv, BackendEnv::parse);
        let runtime_json = parse(&current, ManagedFile::RuntimeJson, RuntimeJson::parse);
        Self {
            current,
            livekit_yaml,
            backend_env,
            runtime_json,
        }
    }

    /// The credentials all three files agree on: `runtime.json`'s pair, equal to
    /// `backend.env`'s and present in `livekit.yaml`'s `keys:`. `None` when any file is missing,
    /// invalid, or disagrees (the 401 bug of the field reports).
    pub fn consistent_credentials(&self) -> Option<Credentials> {
        let runtime = self.runtime_json.valid()?.credentials();
        let backend = self.backend_env.valid()?.credentials()?;
        let livekit = self.livekit_yaml.valid()?;
        (backend == runtime && livekit.keys.contains(&runtime) && livekit.key_file.is_none())
            .then_some(runtime)
    }

    /// Credentials that are live on disk and may be adopted when the store is empty, with the
    /// file they came from: a consistent triple's; else the single key of `livekit.yaml` (the
    /// one livekit-server validates tokens with); else, when `livekit.yaml` is missing or
    /// unreadable, the pair `runtime.json` or `backend.env` still hands to token signers.
    /// `None` when no file holds a usable pair (or `livekit.yaml` holds several keys or a
    /// `key_file`, so which one is live cannot be told).
    pub fn live_credentials(&self) -> Option<(Credentials, ManagedFile)> {
        if let Some(creds) = self.consistent_credentials() {
            return Some((creds, ManagedFile::RuntimeJson));
        }
        if let Some(livekit) = self.livekit_yaml.valid() {
            return match (livekit.keys.as_slice(), &livekit.key_file) {
                ([only], None) => Some((only.clone(), ManagedFile::LivekitYaml)),
                _ => None,
            };
        }
        if let Some(runtime) = self.runtime_json.valid() {
            return Some((runtime.credentials(), ManagedFile::RuntimeJson));
        }
        self.backend_env
            .valid()
            .and_then(BackendEnv::credentials)
            .map(|creds| (creds, ManagedFile::BackendEnv))
    }

    /// When a valid file on disk holds other credentials than `creds`: which key it holds.
    /// `Some` means tokens signed with the disk's secret stop working once the files are
    /// rewritten.
    pub fn disagreement(&self, creds: &Credentials) -> Option<Disagreement> {
        let disagrees = |disk_key: Option<String>| Some(Disagreement { disk_key });
        if let Some(runtime) = self.runtime_json.valid()
            && runtime.credentials() != *creds
        {
            return disagrees(Some(runtime.api_key.to_string()));
        }
        if let Some(backend) = self.backend_env.valid()
            && backend.credentials().as_ref() != Some(creds)
        {
            return disagrees(backend.api_key.as_ref().map(ToString::to_string));
        }
        if let Some(livekit) = self.livekit_yaml.valid()
            && !livekit.keys.is_empty()
            && !livekit.keys.contains(creds)
        {
            return disagrees(livekit.keys.first().map(|c| c.key.to_string()));
        }
        None
    }

    /// True when no managed file exists at all (a fresh state directory).
    pub fn is_empty(&self) -> bool {
        self.livekit_yaml.is_missing()
            && self.backend_env.is_missing()
            && self.runtime_json.is_missing()
    }
}

impl TokenLimits {
    /// The limits of the `livekit.yaml` published in `state` (what the server runs with), or
    /// the defaults when none is published.
    pub fn provisioned(state: &StateDir) -> Self {
        DiskTriple::read(state)
            .livekit_yaml
            .valid()
            .map(LivekitYaml::token_limits)
            .unwrap_or_default()
    }
}

fn parse<T>(
    current: &CurrentState,
    file: ManagedFile,
    parse: impl FnOnce(&str) -> Result<T, ParseError>,
) -> Parsed<T> {
    let at = current.file(file);
    match at {
        FixedPath::Missing => Parsed::Missing,
        FixedPath::Unreadable(e) => Parsed::Unreadable(e.to_string()),
        FixedPath::NotAFile => Parsed::Unreadable("not a regular file".to_owned()),
        FixedPath::OursDangling => {
            Parsed::Unreadable("the current generation is missing".to_owned())
        }
        FixedPath::ForeignSymlink { target, .. } => Parsed::Unreadable(format!(
            "a symlink to {} that livekit-provision did not make",
            target.display()
        )),
        FixedPath::Ours { contents, .. } | FixedPath::Legacy { contents, .. } => {
            match contents.as_str() {
                Some(text) => match parse(text) {
                    Ok(v) => Parsed::Valid(v),
                    Err(e) => Parsed::Invalid(e),
                },
                None => Parsed::Unreadable(
                    io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text").to_string(),
                ),
            }
        }
    }
}

/// Why [`provisioned_credentials`] found no usable credentials.
#[derive(Debug, thiserror::Error)]
#[error("{} holds no consistent credentials: livekit.yaml, backend.env and runtime.json are missing or disagree", state.display())]
pub struct NotProvisioned {
    /// The state directory.
    pub state: std::path::PathBuf,
}

impl crate::error_chain::Hint for NotProvisioned {
    fn hint(&self) -> Option<String> {
        Some(
            "run `livekit-provision ensure` (or `livekit-provision check` to see what is wrong)"
                .to_owned(),
        )
    }
}

/// The provisioned credentials, read from the published files and checked for consistency: the
/// reader linked services use, so they never parse the files themselves.
pub fn provisioned_credentials(state: &StateDir) -> Result<Credentials, NotProvisioned> {
    DiskTriple::read(state)
        .consistent_credentials()
        .ok_or_else(|| NotProvisioned {
            state: state.root().to_owned(),
        })
}
