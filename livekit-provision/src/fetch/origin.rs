//! Where a release was looked for: what the hint of a failed download is built from. A leaf of
//! `fetch/`: it imports nothing of its siblings (`source.rs` builds it, `error.rs` shows it).

use std::path::PathBuf;

use reqwest::Url;

use crate::version::LivekitVersion;

/// The name of the checksum file in every release.
pub const CHECKSUMS_FILE: &str = "checksums.txt";

/// Where a release was looked for and the asset it needs: the host that failed, the exact
/// layout of a `file://` mirror. No credential: the base is kept redacted (a host never has
/// one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseSource {
    /// The base URL, credentials redacted.
    base: String,
    version: LivekitVersion,
    asset: String,
}

impl ReleaseSource {
    /// `asset` of `version`, looked for under `base` (already redacted).
    pub(crate) fn new(base: String, version: LivekitVersion, asset: String) -> Self {
        Self {
            base,
            version,
            asset,
        }
    }

    /// The version looked for.
    pub fn version(&self) -> &LivekitVersion {
        &self.version
    }

    /// The tarball's name, `livekit_<ver>_linux_<arch>.tar.gz`.
    pub fn asset(&self) -> &str {
        &self.asset
    }

    /// The base URL, credentials redacted.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The mirror's directory, when the base is `file://`.
    pub fn mirror_dir(&self) -> Option<PathBuf> {
        Url::parse(&self.base)
            .ok()
            .filter(|url| url.scheme() == "file")
            .and_then(|url| url.to_file_path().ok())
    }

    /// The host (and port, when one is given) of an `http(s)://` base, e.g. `github.com` or
    /// `127.0.0.1:9`; the base itself otherwise.
    pub fn host(&self) -> String {
        Url::parse(&self.base)
            .ok()
            .and_then(|url| {
                let host = url.host_str()?.to_owned();
                Some(match url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                })
            })
            .unwrap_or_else(|| self.base.clone())
    }

    /// The two files a mirror rooted at `dir` must hold for this release.
    pub fn layout(&self, dir: &str) -> String {
        let tag = self.version.tag();
        format!(
            "{dir}/{tag}/{} and {dir}/{tag}/{CHECKSUMS_FILE}",
            self.asset
        )
    }

    /// The release's page on GitHub, where both files are published.
    pub fn release_page(&self) -> String {
        format!(
            "https://github.com/livekit/livekit/releases/tag/{}",
            self.version.tag()
        )
    }
}
