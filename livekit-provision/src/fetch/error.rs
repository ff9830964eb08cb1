//! What can go wrong while fetching, verifying and installing livekit-server.

use std::path::PathBuf;

use crate::version::LivekitVersion;

use super::extract::ArchiveProblem;
use super::origin::ReleaseSource;

/// A fetch, verify or install failure. URLs in it are redacted of credentials; no variant ever
/// holds a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// livekit publishes no Linux tarball for this platform.
    #[error("livekit publishes no livekit-server release for {os}/{arch}")]
    UnsupportedPlatform {
        /// Operating system name.
        os: String,
        /// Architecture name.
        arch: String,
    },

    /// The release base URL is not usable.
    #[error("release URL {url:?} {reason}")]
    InvalidBaseUrl {
        /// The URL (redacted).
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The server answered 404 (or the mirror has no such file).
    #[error("{url} does not exist (livekit-server {version})")]
    NotFound {
        /// The URL (redacted).
        url: String,
        /// The version asked for.
        version: LivekitVersion,
    },

    /// GitHub's rate limit stayed exhausted through every attempt.
    #[error("rate limited by {url} (livekit-server {version}) after {attempts} attempts")]
    RateLimited {
        /// The URL (redacted).
        url: String,
        /// The version asked for.
        version: LivekitVersion,
        /// Attempts made.
        attempts: u32,
    },

    /// Any other HTTP status that is not a success.
    #[error("{url} answered HTTP {status} (livekit-server {version}) after {attempts} attempts")]
    HttpStatus {
        /// The URL (redacted).
        url: String,
        /// The version asked for.
        version: LivekitVersion,
        /// The last status code.
        status: u16,
        /// Attempts made.
        attempts: u32,
    },

    /// Connecting, or reading the body, failed through every attempt.
    #[error("downloading {url} (livekit-server {version}) failed after {attempts} attempts")]
    Network {
        /// The URL (redacted).
        url: String,
        /// The version asked for.
        version: LivekitVersion,
        /// Attempts made.
        attempts: u32,
        /// The last failure (its URL stripped).
        #[source]
        source: reqwest::Error,
    },

    /// The body stopped before its announced length, through every attempt.
    #[error(
        "{url} (livekit-server {version}) ended early after {received} bytes, {attempts} attempts"
    )]
    Truncated {
        /// The URL (redacted).
        url: String,
        /// The version asked for.
        version: LivekitVersion,
        /// Bytes received in the last attempt.
        received: u64,
        /// Attempts made.
        attempts: u32,
    },

    /// Reading a `file://` mirror failed.
    #[error("cannot read {path} (livekit-server {version})")]
    ReadMirror {
        /// The local path.
        path: PathBuf,
        /// The version asked for.
        version: LivekitVersion,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A download or the extracted binary is larger than the configured limit.
    #[error("{what} from {url} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The URL (redacted).
        url: String,
        /// `"download"` or `"livekit-server entry"`.
        what: &'static str,
        /// The limit in bytes.
        limit: u64,
    },

    /// `checksums.txt` does not list the asset exactly once, or cannot be read as sha256sum lines.
    #[error("{url} {problem} for {asset}; nothing was installed")]
    ChecksumList {
        /// The checksum file's URL (redacted).
        url: String,
        /// The asset looked for.
        asset: String,
        /// What is wrong ("has no line", "has 2 lines", "is not in sha256sum format").
        problem: String,
    },

    /// The tarball's SHA-256 differs from the expected one.
    #[error(
        "SHA-256 of {url} is {actual}, expected {expected} (livekit-server {version}); nothing was installed"
    )]
    ChecksumMismatch {
        /// The URL (redacted).
        url: String,
        /// The version asked for.
        version: LivekitVersion,
        /// Expected hex digest.
        expected: String,
        /// Actual hex digest.
        actual: String,
    },

    /// The body is not a gzip tarball (an HTML error page, say).
    #[error("{url} (livekit-server {version}) is not a gzip tarball; nothing was installed")]
    NotAnArchive {
        /// The URL (redacted).
        url: String,
        /// The version asked for.
        version: LivekitVersion,
        /// The decoder's complaint.
        #[source]
        source: std::io::Error,
    },

    /// The tarball is shaped in a way we refuse to install from.
    #[error("refusing {url} (livekit-server {version}): {problem}")]
    UnsafeArchive {
        /// The URL (redacted).
        url: String,
        /// The version asked for.
        version: LivekitVersion,
        /// What is wrong with it.
        problem: ArchiveProblem,
    },

    /// A local file operation in the install directory failed.
    #[error("cannot {action} {path}")]
    Io {
        /// What we were doing ("write", "rename", "read").
        action: &'static str,
        /// The path acted on.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// An install manifest cannot be read.
    #[error("install manifest {path} is unreadable")]
    Manifest {
        /// The manifest path.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// No livekit-server has been installed here.
    #[error("no livekit-server is installed at {path}")]
    NotInstalled {
        /// `bin/livekit-server`.
        path: PathBuf,
    },

    /// `bin/livekit-server` is not a symlink to one of our versioned files.
    #[error("{path} is not managed by livekit-provision")]
    NotManaged {
        /// `bin/livekit-server`.
        path: PathBuf,
    },

    /// Rollback found no other installed version.
    #[error("no previous livekit-server version is kept in {dir}")]
    NoPreviousVersion {
        /// `bin/`.
        dir: PathBuf,
    },

    /// A kept binary no longer matches its manifest, so we will not switch to it.
    #[error("{path} does not match its install manifest (size or SHA-256 differs)")]
    Tampered {
        /// The versioned binary.
        path: PathBuf,
    },

    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client")]
    Client {
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },

    /// The download task ended abnormally (a panic or a cancelled runtime).
    #[error("the download of {url} was interrupted")]
    Interrupted {
        /// The URL (redacted).
        url: String,
    },

    /// The release could not be had from its source: `error` says how (the network, an HTTP
    /// status, a rate limit, a file missing from or unreadable in a mirror), `from` where it was
    /// looked for — so the hint can name the host that failed and what a `file://` mirror must
    /// hold. Shown exactly as `error`.
    #[error("{error}")]
    Unavailable {
        /// What failed (one of `NotFound`, `RateLimited`, `HttpStatus`, `Network`,
        /// `Truncated`, `ReadMirror`).
        #[source]
        error: Box<FetchError>,
        /// Where the release was looked for, and the asset it needs.
        from: ReleaseSource,
    },
}

impl FetchError {
    /// The failure itself: the error an [`Unavailable`](Self::Unavailable) wraps, else `self`.
    pub fn at_source(&self) -> &Self {
        match self {
            Self::Unavailable { error, .. } => error,
            other => other,
        }
    }

    /// `self` with where the release was looked for, when it is a failure of the source (the
    /// network, the server, the mirror); any other error is returned as it is.
    pub(crate) fn looked_for_at(self, from: &ReleaseSource) -> Self {
        match self {
            Self::NotFound { .. }
            | Self::RateLimited { .. }
            | Self::HttpStatus { .. }
            | Self::Network { .. }
            | Self::Truncated { .. }
            | Self::ReadMirror { .. } => Self::Unavailable {
                error: Box::new(self),
                from: from.clone(),
            },
            other => other,
        }
    }
}

/// What to do when the release source failed, from what failed and where it was looked for:
/// the host (or mirror directory), the exact layout a `file://` mirror needs, `--livekit-bin`.
fn unavailable_hint(error: &FetchError, from: &ReleaseSource) -> String {
    let without = format!(
        "To install without it: pass `--release-url file:///DIR` (or `release_url:` in \
         provision.yaml) where DIR holds {} (both from {}), or `--livekit-bin PATH` of a \
         livekit-server you have",
        from.layout("DIR"),
        from.release_page()
    );
    match (from.mirror_dir(), error) {
        (Some(dir), FetchError::ReadMirror { path, .. }) => format!(
            "{} cannot be read by this user: fix its permissions (the mirror must hold {}), or \
             pass `--livekit-bin PATH` of a livekit-server you have",
            path.display(),
            from.layout(&dir.display().to_string())
        ),
        (Some(dir), _) => format!(
            "the mirror {} must hold {} (both from {}), or pass `--livekit-bin PATH` of a \
             livekit-server you have",
            dir.display(),
            from.layout(&dir.display().to_string()),
            from.release_page()
        ),
        (None, FetchError::RateLimited { .. }) => format!(
            "GitHub's anonymous rate limit is exhausted: wait, or set GITHUB_TOKEN. {without}"
        ),
        (None, FetchError::NotFound { .. }) => format!(
            "{} has no livekit-server {} for this platform: check the version, or the mirror. \
             {without}",
            from.host(),
            from.version(),
        ),
        (None, _) => format!(
            "{} could not be reached (check the network; HTTPS_PROXY/NO_PROXY are honoured). \
             {without}",
            from.host(),
        ),
    }
}

impl crate::error_chain::Hint for FetchError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::UnsupportedPlatform { .. } => Some(
                "install livekit-server another way (on macOS: `brew install livekit`) and set \
                 `livekit_bin: /path/to/livekit-server` in provision.yaml (or pass --livekit-bin PATH)"
                    .to_owned(),
            ),
            Self::InvalidBaseUrl { .. } => Some(
                "use https://…, http://… or file:///dir (a directory holding v<ver>/<asset>)"
                    .to_owned(),
            ),
            Self::NotFound { version, .. } => Some(format!(
                "check that livekit-server {version} exists for this platform \
                 (https://github.com/livekit/livekit/releases/tag/{}) or that the mirror holds it",
                version.tag()
            )),
            Self::RateLimited { .. } => Some(
                "GitHub's anonymous rate limit is exhausted: wait, or set GITHUB_TOKEN".to_owned(),
            ),
            Self::Network { .. } | Self::Truncated { .. } | Self::HttpStatus { .. } => Some(
                "check network access to the release URL (proxy variables HTTPS_PROXY/NO_PROXY \
                 are honoured), or use a mirror with --release-url"
                    .to_owned(),
            ),
            Self::TooLarge { .. } => {
                Some("raise the size limit if this release really is that large".to_owned())
            }
            Self::ChecksumList { .. } | Self::ChecksumMismatch { .. } | Self::NotAnArchive { .. } => {
                Some(
                    "the download is not the published release: check the release URL or mirror \
                     (a proxy or captive portal may have answered instead)"
                        .to_owned(),
                )
            }
            Self::Tampered { .. } => Some(
                "reinstall it with `livekit-provision install --force`".to_owned(),
            ),
            Self::NotInstalled { .. } => {
                Some("run `livekit-provision install` (or `ensure`)".to_owned())
            }
            Self::NotManaged { .. } => Some(
                "set `livekit_bin` in provision.yaml to use your own binary, or run \
                 `livekit-provision install` to replace it (it is moved to backups/ first)"
                    .to_owned(),
            ),
            Self::NoPreviousVersion { .. } => Some(
                "only one version is installed; install another with `livekit-provision install --version V`"
                    .to_owned(),
            ),
            Self::Unavailable { error, from } => Some(unavailable_hint(error, from)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_chain::Hint;

    fn from(base: &str) -> ReleaseSource {
        ReleaseSource::new(
            base.to_owned(),
            LivekitVersion::parse("v1.7.2").unwrap(),
            "livekit_1.7.2_linux_amd64.tar.gz".to_owned(),
        )
    }

    fn version() -> LivekitVersion {
        LivekitVersion::parse("1.7.2").unwrap()
    }

    /// The state a download failed in → what its hint must say, and must not.
    #[test]
    fn the_hint_of_a_failed_download_is_built_from_where_it_was_looked_for() {
        let layout = "DIR/v1.7.2/livekit_1.7.2_linux_amd64.tar.gz and DIR/v1.7.2/checksums.txt";
        let not_found = || FetchError::NotFound {
            url: "u".into(),
            version: version(),
        };
        let cases: Vec<(&str, FetchError, Vec<&str>, Vec<&str>)> = vec![
            (
                "http://127.0.0.1:9/",
                FetchError::HttpStatus {
                    url: "u".into(),
                    version: version(),
                    status: 503,
                    attempts: 4,
                },
                vec![
                    "127.0.0.1:9 could not be reached",
                    layout,
                    "--release-url file:///DIR",
                    "--livekit-bin PATH",
                ],
                vec![],
            ),
            (
                "https://github.com/livekit/livekit/releases/download",
                FetchError::RateLimited {
                    url: "u".into(),
                    version: version(),
                    attempts: 3,
                },
                vec!["GITHUB_TOKEN", layout, "--livekit-bin PATH"],
                vec![],
            ),
            (
                "https://****:****@mirror.example:8443/rel",
                not_found(),
                vec!["mirror.example:8443 has no livekit-server 1.7.2", layout],
                vec!["****"],
            ),
            (
                "file:///srv/mirror",
                not_found(),
                vec![
                    "the mirror /srv/mirror must hold /srv/mirror/v1.7.2/livekit_1.7.2_linux_amd64.tar.gz and /srv/mirror/v1.7.2/checksums.txt",
                    "releases/tag/v1.7.2",
                    "--livekit-bin PATH",
                ],
                vec!["reachable", "network"],
            ),
            (
                "file:///srv/mirror",
                FetchError::ReadMirror {
                    path: "/srv/mirror/v1.7.2/checksums.txt".into(),
                    version: version(),
                    source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                },
                vec![
                    "/srv/mirror/v1.7.2/checksums.txt cannot be read",
                    "permissions",
                    "--livekit-bin PATH",
                ],
                vec!["reachable"],
            ),
        ];
        for (base, error, must, must_not) in cases {
            let shown = error.to_string();
            let wrapped = error.looked_for_at(&from(base));
            assert!(matches!(wrapped, FetchError::Unavailable { .. }), "{base}");
            assert_eq!(wrapped.to_string(), shown, "shown exactly as the failure");
            let hint = wrapped.hint().unwrap();
            for text in must {
                assert!(hint.contains(text), "{base}: {text:?} not in {hint}");
            }
            for text in must_not {
                assert!(!hint.contains(text), "{base}: {text:?} in {hint}");
            }
        }
    }

    #[test]
    fn only_failures_of_the_source_are_wrapped() {
        let mismatch = FetchError::ChecksumMismatch {
            url: "u".into(),
            version: version(),
            expected: "a".into(),
            actual: "b".into(),
        };
        let same = mismatch.looked_for_at(&from("file:///srv/mirror"));
        assert!(matches!(same, FetchError::ChecksumMismatch { .. }));
        assert!(matches!(
            same.at_source(),
            FetchError::ChecksumMismatch { .. }
        ));
    }
}
