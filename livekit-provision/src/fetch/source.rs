//! Where a release comes from: the base URL, the asset and checksum URLs built from the pinned
//! version and the platform, and which hosts may see a GitHub token. URLs are shown through
//! `redact`.

use std::fmt;
use std::path::PathBuf;

use reqwest::Url;

use crate::redact;
use crate::version::LivekitVersion;

use super::error::FetchError;
use super::platform::Platform;

/// Where livekit publishes releases.
pub const GITHUB_RELEASES: &str = "https://github.com/livekit/livekit/releases/download";

pub use super::origin::CHECKSUMS_FILE;
use super::origin::ReleaseSource;

/// A validated release base URL: `https://`, `http://` or `file://`, holding `v<ver>/<asset>`.
#[derive(Clone, PartialEq, Eq)]
pub struct ReleaseBase {
    /// Without a trailing slash.
    url: String,
}

impl ReleaseBase {
    /// GitHub's release downloads for livekit/livekit.
    pub fn github() -> Self {
        Self {
            url: GITHUB_RELEASES.to_owned(),
        }
    }

    /// Validate a base URL.
    pub fn parse(text: &str) -> Result<Self, FetchError> {
        let refuse = |reason: &str| FetchError::InvalidBaseUrl {
            url: redact::text(text),
            reason: reason.to_owned(),
        };
        if let Some(problem) = crate::validate::url_text_problem(text) {
            return Err(refuse(problem));
        }
        let url = Url::parse(text).map_err(|e| refuse(&format!("is not a URL ({e})")))?;
        match url.scheme() {
            "https" | "http" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(refuse("has no host"));
                }
            }
            "file" => {
                if url.to_file_path().is_err() {
                    return Err(refuse("is not a local directory (use file:///abs/dir)"));
                }
            }
            _ => return Err(refuse("must start with https://, http:// or file://")),
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(refuse("may not have a query or fragment"));
        }
        Ok(Self {
            url: text.trim_end_matches('/').to_owned(),
        })
    }

    /// The URL of `file` inside the release directory of `version`.
    fn file_url(&self, version: &LivekitVersion, file: &str) -> Result<Url, FetchError> {
        // The version and file names are [0-9A-Za-z._-] only, so plain concatenation is safe and
        // keeps the base's last path segment (which `Url::join` would drop).
        let text = format!("{}/{}/{file}", self.url, version.tag());
        Url::parse(&text).map_err(|e| FetchError::InvalidBaseUrl {
            url: redact::text(&self.url),
            reason: format!("cannot hold the path of {file} ({e})"),
        })
    }

    /// Where `asset` of `version` is looked for under this base: the context of a failed
    /// download's hint.
    pub(crate) fn source_of(
        &self,
        version: &LivekitVersion,
        asset: &ReleaseAsset,
    ) -> ReleaseSource {
        ReleaseSource::new(redact::text(&self.url), version.clone(), asset.name.clone())
    }

    /// Whether this base is a local directory.
    pub fn is_file(&self) -> bool {
        self.url.starts_with("file:")
    }
}

impl Default for ReleaseBase {
    fn default() -> Self {
        Self::github()
    }
}

impl fmt::Display for ReleaseBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact::text(&self.url))
    }
}

impl fmt::Debug for ReleaseBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReleaseBase({self})")
    }
}

/// The two files of one release for one platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseAsset {
    /// `livekit_<ver>_linux_<arch>.tar.gz`.
    pub name: String,
    /// The tarball.
    pub url: Url,
    /// The release's `checksums.txt`.
    pub checksums_url: Url,
}

impl ReleaseAsset {
    /// The asset for `version` on `platform` under `base`.
    pub fn new(
        base: &ReleaseBase,
        version: &LivekitVersion,
        platform: &Platform,
    ) -> Result<Self, FetchError> {
        let arch = platform
            .asset_arch()
            .ok_or_else(|| FetchError::UnsupportedPlatform {
                os: platform.os().to_owned(),
                arch: platform.arch().to_owned(),
            })?;
        let name = format!("livekit_{version}_linux_{arch}.tar.gz");
        Ok(Self {
            url: base.file_url(version, &name)?,
            checksums_url: base.file_url(version, CHECKSUMS_FILE)?,
            name,
        })
    }
}

/// A local path for a `file://` URL.
pub(crate) fn local_path(url: &Url) -> Option<PathBuf> {
    (url.scheme() == "file")
        .then(|| url.to_file_path().ok())
        .flatten()
}

/// Whether a GitHub token may be sent to `url`: only over https, and only to `github.com`,
/// `*.github.com` and `*.githubusercontent.com`.
pub fn may_send_github_token(url: &Url) -> bool {
    if url.scheme() != "https" {
        return false;
    }
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "github.com"
        || host.ends_with(".github.com")
        || host.ends_with(".githubusercontent.com")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_chain::Hint;

    fn v(s: &str) -> LivekitVersion {
        LivekitVersion::parse(s).unwrap()
    }

    #[test]
    fn builds_github_asset_and_checksum_urls() {
        let asset = ReleaseAsset::new(
            &ReleaseBase::github(),
            &v("v1.7.2"),
            &Platform::new("linux", "x86_64"),
        )
        .unwrap();
        assert_eq!(asset.name, "livekit_1.7.2_linux_amd64.tar.gz");
        assert_eq!(
            asset.url.as_str(),
            "https://github.com/livekit/livekit/releases/download/v1.7.2/livekit_1.7.2_linux_amd64.tar.gz"
        );
        assert_eq!(
            asset.checksums_url.as_str(),
            "https://github.com/livekit/livekit/releases/download/v1.7.2/checksums.txt"
        );
    }

    #[test]
    fn mirrors_keep_their_path_with_or_without_slash() {
        for base in ["file:///mirror", "file:///mirror/", "http://127.0.0.1:9/m/"] {
            let asset = ReleaseAsset::new(
                &ReleaseBase::parse(base).unwrap(),
                &v("1.8.0"),
                &Platform::new("linux", "aarch64"),
            )
            .unwrap();
            let expect = format!(
                "{}/v1.8.0/livekit_1.8.0_linux_arm64.tar.gz",
                base.trim_end_matches('/')
            );
            assert_eq!(asset.url.as_str(), expect);
        }
        let local = ReleaseAsset::new(
            &ReleaseBase::parse("file:///mirror").unwrap(),
            &v("1.7.2"),
            &Platform::new("linux", "armv7"),
        )
        .unwrap();
        assert_eq!(
            local_path(&local.url).unwrap(),
            PathBuf::from("/mirror/v1.7.2/livekit_1.7.2_linux_armv7.tar.gz")
        );
    }

    #[test]
    fn where_a_release_is_looked_for_keeps_no_credential() {
        let base = ReleaseBase::parse("https://u:hunter2@mirror.example:8443/rel").unwrap();
        let asset =
            ReleaseAsset::new(&base, &v("1.7.2"), &Platform::new("linux", "x86_64")).unwrap();
        let from = base.source_of(&v("1.7.2"), &asset);
        assert!(!format!("{from:?}").contains("hunter2"), "{from:?}");
        assert_eq!(from.host(), "mirror.example:8443");
        assert_eq!(from.mirror_dir(), None);
        let local = ReleaseBase::parse("file:///srv/mirror").unwrap();
        let from = local.source_of(&v("1.7.2"), &asset);
        assert_eq!(from.mirror_dir(), Some(PathBuf::from("/srv/mirror")));
        assert_eq!(
            from.layout("/srv/mirror"),
            "/srv/mirror/v1.7.2/livekit_1.7.2_linux_amd64.tar.gz and /srv/mirror/v1.7.2/checksums.txt"
        );
    }

    #[test]
    fn unsupported_platform_says_how_to_get_on() {
        let err = ReleaseAsset::new(
            &ReleaseBase::github(),
            &v("1.7.2"),
            &Platform::new("macos", "aarch64"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("macos/aarch64"), "{err}");
        let hint = err.hint().unwrap();
        assert!(
            hint.contains("livekit_bin") && hint.contains("--livekit-bin"),
            "{hint}"
        );
    }

    #[test]
    fn refuses_bad_bases_without_echoing_credentials() {
        for bad in [
            "ftp://x/y",
            "github.com/x",
            "https://u:hunter2@h/x?t=1",
            "file://relative",
        ] {
            let err = ReleaseBase::parse(bad).unwrap_err();
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        assert!(ReleaseBase::parse("https://u:hunter2@mirror.example/rel").is_ok());
        let shown = ReleaseBase::parse("https://u:hunter2@mirror.example/rel")
            .unwrap()
            .to_string();
        assert_eq!(shown, "https://****:****@mirror.example/rel");
        let err = ReleaseBase::parse("https://u:pa/ss@host/").unwrap_err();
        assert!(!err.to_string().contains("pa/ss"), "{err}");
    }

    #[test]
    fn github_token_goes_only_to_github_over_https() {
        let yes = [
            "https://github.com/livekit/livekit/releases/download/v1/x",
            "https://api.github.com/x",
            "https://objects.githubusercontent.com/x",
            "https://release-assets.githubusercontent.com/x",
            "https://GitHub.com./x",
        ];
        let no = [
            "http://github.com/x",
            "https://127.0.0.1/x",
            "https://github.com.evil.example/x",
            "https://evilgithub.com/x",
            "https://githubusercontent.com.evil/x",
            "https://mirror.example/github.com/x",
            "file:///github.com/x",
        ];
        for u in yes {
            assert!(may_send_github_token(&Url::parse(u).unwrap()), "{u}");
        }
        for u in no {
            assert!(!may_send_github_token(&Url::parse(u).unwrap()), "{u}");
        }
    }
}
