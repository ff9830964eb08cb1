//! What can go wrong while fetching, verifying and installing livekit-server.

use std::path::PathBuf;

use crate::version::LivekitVersion;

use super::extract::ArchiveProblem;

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
            _ => None,
        }
    }
}
