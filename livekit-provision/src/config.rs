//! Loading the operator's files: `provision.yaml` (settings) and `extra.yaml` (overlay).

use std::io;
use std::path::{Path, PathBuf};

use crate::inputs::ExtraOverlay;
use crate::paths::StateDir;
use crate::render::ExtraError;
use crate::settings::{Settings, SettingsError};

/// Why an operator file could not be used. Nothing is written when this is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("could not read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// `provision.yaml` is invalid.
    #[error("{} is invalid: {source}", path.display())]
    Settings {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: SettingsError,
    },
    /// `extra.yaml` is refused.
    #[error("{} is refused: {source}", path.display())]
    Extra {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: ExtraError,
    },
}

impl crate::error_chain::Hint for ConfigError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::Read { path, source } => crate::fsio::read_hint(source, path)
                .or_else(|| Some(format!("check the permissions of {}", path.display()))),
            Self::Settings {
                path,
                source: SettingsError::Turn(e),
            } => Some(format!("{} (in {})", e.hint(), path.display())),
            Self::Settings {
                path,
                source: SettingsError::Tls(e),
            } => Some(format!("{} (in {})", e.hint, path.display())),
            Self::Settings {
                path,
                source: SettingsError::Changes(_),
            } => Some(format!(
                "edit the `changes:` section of {}: `apply: idle|window|manual`, `window: HH:MM-HH:MM` (UTC, with apply: window), `deadline:` from 1m to 30d, `drain:` from 1s to 24h (README: \"Changes and live calls\")",
                path.display()
            )),
            Self::Settings { path, .. } => Some(format!(
                "edit {}: accepted keys are {}",
                path.display(),
                Settings::keys().join(", ")
            )),
            Self::Extra { source, .. } => source.hint(),
        }
    }
}

/// The operator's files of a state directory.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorConfig {
    /// `provision.yaml`, defaults when absent.
    pub settings: Settings,
    /// `extra.yaml`, empty when absent.
    pub extra: ExtraOverlay,
}

impl OperatorConfig {
    /// Read `provision.yaml` and `extra.yaml` of `state`; absent files mean defaults.
    pub fn load(state: &StateDir) -> Result<Self, ConfigError> {
        let settings_path = state.settings_file();
        let mut settings = match read_optional(&settings_path)? {
            Some(text) => Settings::from_yaml(&text).map_err(|source| ConfigError::Settings {
                path: settings_path,
                source,
            })?,
            None => Settings::default(),
        };
        settings.turn = managed_turn(state, &settings);
        let extra_path = state.extra_file();
        let extra = match read_optional(&extra_path)? {
            Some(text) => ExtraOverlay::parse(&text).map_err(|source| ConfigError::Extra {
                path: extra_path,
                source,
            })?,
            None => ExtraOverlay::default(),
        };
        Ok(Self { settings, extra })
    }
}

/// The `turn:` section with what a `tls:` section provides: the certificate and key (when
/// TURN/TLS loads one and `turn:` names none) and `tls.turn_domain` as `turn.domain`.
fn managed_turn(state: &StateDir, settings: &Settings) -> crate::settings::TurnSettings {
    let mut turn = settings.turn.clone();
    if let Some(tls) = &settings.tls
        && turn.loads_certificate()
        && turn.cert_file.is_none()
        && turn.key_file.is_none()
    {
        let (cert, key) = crate::tls::certificate_paths(state, tls);
        turn.cert_file = Some(cert);
        turn.key_file = Some(key);
        if turn.domain.is_none() {
            turn.domain.clone_from(&tls.turn_domain);
        }
    }
    turn
}

fn read_optional(path: &Path) -> Result<Option<String>, ConfigError> {
    match crate::fsio::read_text(path) {
        Ok(text) => Ok(Some(text.to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}
