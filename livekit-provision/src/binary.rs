//! Which livekit-server runs, decided in one place: `--livekit-bin` (the embedding program's
//! override), else `livekit_bin` of `provision.yaml`, else the installed `bin/livekit-server`.
//! An operator's own binary is used as is and never downloaded; only the installed one is
//! fetched, from the release URL [`install_request`] chooses.
//!
//! `ensure` (what to install), `check` (what to inspect), the media specs of the CLI and the
//! daemon (what to start) and the CLI's `install` all ask [`LivekitBinary::choose`].

use std::path::{Path, PathBuf};

use crate::fetch::{FetchError, InstallRequest, Platform, ReleaseBase};
use crate::paths::StateDir;
use crate::secret::Secret;
use crate::settings::Settings;
use crate::version::LivekitVersion;

/// Where the chosen livekit-server comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinarySource {
    /// `--livekit-bin` (or the embedding program's override).
    Flag,
    /// `livekit_bin` of `provision.yaml`.
    Settings,
    /// The installed `bin/livekit-server` of the state directory (downloaded for the pinned
    /// `LIVEKIT_VERSION`).
    Installed,
}

/// The livekit-server executable to run, and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivekitBinary {
    /// The executable.
    pub path: PathBuf,
    /// Why this one.
    pub source: BinarySource,
}

impl LivekitBinary {
    /// The binary for `state`: `flag` (`--livekit-bin`), else `settings.livekit_bin`, else the
    /// installed `bin/livekit-server` (which may not exist yet).
    pub fn choose(state: &StateDir, settings: &Settings, flag: Option<&Path>) -> Self {
        if let Some(path) = flag {
            return Self {
                path: path.to_owned(),
                source: BinarySource::Flag,
            };
        }
        if let Some(path) = &settings.livekit_bin {
            return Self {
                path: path.clone(),
                source: BinarySource::Settings,
            };
        }
        Self {
            path: state.livekit_bin(),
            source: BinarySource::Installed,
        }
    }

    /// What stops an operator's own binary (`--livekit-bin`, `livekit_bin`) from running: it
    /// does not exist, is not a regular file (a directory, a device), or is not executable. The
    /// installed one is judged by its manifest instead (`fetch::needs_install`): `None` for it.
    pub fn problem(&self) -> Option<String> {
        use std::os::unix::fs::PermissionsExt;
        if self.source == BinarySource::Installed {
            return None;
        }
        let shown = self.path.display();
        match std::fs::metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Some(format!("livekit-server {shown} does not exist"))
            }
            Err(e) => Some(format!("livekit-server {shown} cannot be inspected: {e}")),
            Ok(meta) if meta.is_dir() => Some(format!(
                "livekit-server {shown} is a directory, not an executable file"
            )),
            Ok(meta) if !meta.is_file() => {
                Some(format!("livekit-server {shown} is not a regular file"))
            }
            Ok(meta) if meta.permissions().mode() & 0o111 == 0 => Some(format!(
                "livekit-server {shown} is not executable (mode {:04o})",
                meta.permissions().mode() & 0o7777
            )),
            Ok(_) => None,
        }
    }

    /// The operator's own binary (never downloaded), or `None` when it is the installed one.
    pub fn external(self) -> Option<PathBuf> {
        (self.source != BinarySource::Installed).then_some(self.path)
    }
}

/// The download of `version` for `state`'s installed binary: from `--release-url`, else
/// `release_url` of `provision.yaml`, else GitHub; with `GITHUB_TOKEN` and the platform of
/// `options`. The caller adds a pinned digest, `force` and progress events.
pub fn install_request(
    version: LivekitVersion,
    settings: &Settings,
    options: &BinaryOptions,
) -> Result<InstallRequest, FetchError> {
    let mut request = InstallRequest::new(version, options.platform.clone());
    if let Some(url) = options
        .release_url
        .as_ref()
        .or(settings.release_url.as_ref())
    {
        request.base_url = ReleaseBase::parse(url)?;
    }
    request.github_token.clone_from(&options.github_token);
    Ok(request)
}

/// How the binary is chosen and obtained (`ensure`, `install`, the media specs). `Debug` shows `release_url` through `redact`.
#[derive(Clone)]
pub struct BinaryOptions {
    /// Overrides `release_url` of `provision.yaml` (`--release-url`, `LIVEKIT_PROVISION_RELEASE_URL`).
    pub release_url: Option<String>,
    /// Overrides `livekit_bin` of `provision.yaml` (`--livekit-bin`): never download.
    pub livekit_bin: Option<PathBuf>,
    /// `GITHUB_TOKEN`, sent only to GitHub hosts.
    pub github_token: Option<Secret>,
    /// The platform whose release asset to fetch.
    pub platform: Platform,
    /// Do not download at all (report the need instead).
    pub offline: bool,
}

impl std::fmt::Debug for BinaryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinaryOptions")
            .field(
                "release_url",
                &self.release_url.as_deref().map(crate::redact::text),
            )
            .field("livekit_bin", &self.livekit_bin)
            .field("github_token", &self.github_token)
            .field("platform", &self.platform)
            .field("offline", &self.offline)
            .finish()
    }
}

impl Default for BinaryOptions {
    fn default() -> Self {
        Self {
            release_url: None,
            livekit_bin: None,
            github_token: None,
            platform: Platform::current(),
            offline: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> StateDir {
        StateDir::new("/srv/lk")
    }

    fn settings(livekit_bin: Option<&str>) -> Settings {
        Settings {
            livekit_bin: livekit_bin.map(PathBuf::from),
            ..Settings::default()
        }
    }

    #[test]
    fn the_flag_comes_first() {
        let b = LivekitBinary::choose(
            &state(),
            &settings(Some("/opt/yaml")),
            Some(Path::new("/opt/flag")),
        );
        assert_eq!(b.path, Path::new("/opt/flag"));
        assert_eq!(b.source, BinarySource::Flag);
        assert_eq!(b.external(), Some(PathBuf::from("/opt/flag")));
    }

    #[test]
    fn then_provision_yaml() {
        let b = LivekitBinary::choose(&state(), &settings(Some("/opt/yaml")), None);
        assert_eq!(b.path, Path::new("/opt/yaml"));
        assert_eq!(b.source, BinarySource::Settings);
    }

    #[test]
    fn then_the_installed_binary() {
        let b = LivekitBinary::choose(&state(), &settings(None), None);
        assert_eq!(b.path, state().livekit_bin());
        assert_eq!(b.source, BinarySource::Installed);
        assert_eq!(b.external(), None);
    }

    #[test]
    fn the_release_url_flag_beats_provision_yaml() {
        let version = LivekitVersion::parse("1.7.2").unwrap();
        let mut s = settings(None);
        s.release_url = Some("file:///srv/yaml".to_owned());
        let mut options = BinaryOptions::default();
        let from_yaml = install_request(version.clone(), &s, &options).unwrap();
        options.release_url = Some("file:///srv/flag".to_owned());
        let from_flag = install_request(version.clone(), &s, &options).unwrap();
        assert_eq!(
            from_yaml.base_url,
            ReleaseBase::parse("file:///srv/yaml").unwrap()
        );
        assert_eq!(
            from_flag.base_url,
            ReleaseBase::parse("file:///srv/flag").unwrap()
        );
        let github = install_request(version, &settings(None), &BinaryOptions::default()).unwrap();
        assert_eq!(github.base_url, ReleaseBase::github());
    }
}
