//! Download, verify and install the pinned livekit-server binary.
//!
//! `install` builds the asset URL from the pinned version and the [`Platform`] (no GitHub API
//! call), reads the release's `checksums.txt` (or takes a pinned SHA-256), then streams the
//! tarball once: every byte is hashed as it arrives and the `livekit-server` entry is written to
//! a temporary file in `bin/`. **Only when the whole archive's digest matches is the binary made
//! executable, published as `bin/livekit-server-<ver>` and `bin/livekit-server` switched to it**;
//! otherwise the temporary file is removed and the active binary is untouched
//! (docs/DESIGN.md invariant 7). Sources may be `https://`, `http://` or `file://` directories.
//!
//! The caller holds the state-directory lock around `install` and `rollback`: both are
//! internal, and [`admin::install`](crate::admin::install) and
//! [`admin::rollback`](crate::admin::rollback) are the API (they take the lock, and `rollback`
//! pins what it switched to). What is public here is what those answer and read-only queries
//! ([`installed`], [`verify_installed`], [`list_installed`], [`needs_install`]).

mod checksums;
mod download;
mod error;
mod extract;
mod http;
mod install;
mod origin;
mod platform;
mod source;

use std::path::PathBuf;

pub use checksums::Sha256Digest;
pub use error::FetchError;
pub use extract::ArchiveProblem;
pub use http::{EventSink, FetchEvent};
pub use install::{
    InstallManifest, InstallNeed, InstalledBinary, IntegrityReport, RollbackOutcome, installed,
    list_installed, needs_install, verify_installed,
};
// The parts of `InstallRequest`, which only `admin::install` and `ensure` build.
#[cfg(feature = "testing")]
pub use extract::SizeLimits;
#[cfg(not(feature = "testing"))]
use extract::SizeLimits;
#[cfg(feature = "testing")]
pub use http::{ProxyMode, RetryPolicy, Timeouts};
#[cfg(not(feature = "testing"))]
use http::{ProxyMode, RetryPolicy, Timeouts};
// Unlocked and not pinning: `admin::rollback` is the API.
#[cfg(feature = "testing")]
pub use install::rollback;
#[cfg(not(feature = "testing"))]
pub(crate) use install::rollback;
pub use origin::ReleaseSource;
pub use platform::Platform;
pub use source::ReleaseBase;

use install::versioned_path;
use source::ReleaseAsset;

// The fuzz targets drive the parsers and the extraction directly.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub use checksums::{ChecksumLookup, digest_for};
#[cfg(feature = "testing")]
#[doc(hidden)]
pub use extract::{ScratchExtraction, extract_to_scratch};

use crate::clock::Clock;
use crate::fsio::StagedFile;
use crate::paths::StateDir;
use crate::secret::Secret;
use crate::version::LivekitVersion;

/// Largest `checksums.txt` we read.
const MAX_CHECKSUMS_BYTES: u64 = 1 << 20;

internal_item! {
/// What to install and how to fetch it.
#[derive(Clone)]
struct InstallRequest {
    /// The pinned version.
    pub version: LivekitVersion,
    /// The platform whose asset to fetch ([`Platform::current`] outside tests).
    pub platform: Platform,
    /// Where releases live ([`ReleaseBase::github`] by default).
    pub base_url: ReleaseBase,
    /// The archive's SHA-256, when pinned; then `checksums.txt` is not fetched.
    pub pinned_sha256: Option<Sha256Digest>,
    /// `GITHUB_TOKEN`, sent only to GitHub hosts over https.
    pub github_token: Option<Secret>,
    /// Size bounds.
    pub limits: SizeLimits,
    /// Connect and read-idle timeouts.
    pub timeouts: Timeouts,
    /// Retries.
    pub retry: RetryPolicy,
    /// Proxies from the environment, or none.
    pub proxy: ProxyMode,
    /// Reinstall even when the same version is installed and intact.
    pub force: bool,
    /// Progress and retry events.
    pub events: Option<EventSink>,
    /// The wall clock (the manifest's install time, backup names, `Retry-After` dates).
    pub clock: Clock,
}
}

impl InstallRequest {
    /// A request with the defaults: GitHub, current limits, timeouts and retries, proxies from
    /// the environment, no token, no pin.
    pub fn new(version: LivekitVersion, platform: Platform) -> Self {
        Self {
            version,
            platform,
            base_url: ReleaseBase::github(),
            pinned_sha256: None,
            github_token: None,
            limits: SizeLimits::default(),
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
            proxy: ProxyMode::default(),
            force: false,
            events: None,
            clock: crate::clock::system,
        }
    }
}

impl std::fmt::Debug for InstallRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallRequest")
            .field("version", &self.version)
            .field("platform", &self.platform)
            .field("base_url", &self.base_url)
            .field("pinned_sha256", &self.pinned_sha256)
            .field("github_token", &self.github_token)
            .field("limits", &self.limits)
            .field("timeouts", &self.timeouts)
            .field("retry", &self.retry)
            .field("proxy", &self.proxy)
            .field("force", &self.force)
            .field("events", &self.events.as_ref().map(|_| "callback"))
            .field("clock", &"fn")
            .finish()
    }
}

/// What an install did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstallOutcome {
    /// Downloaded, verified and activated.
    Installed {
        /// The version now active.
        version: LivekitVersion,
        /// SHA-256 of the installed binary.
        sha256: Sha256Digest,
        /// The versioned file.
        path: PathBuf,
    },
    /// The version was already kept in `bin/` and intact; only the symlink was switched.
    Reactivated {
        /// The version now active.
        version: LivekitVersion,
        /// SHA-256 of the binary.
        sha256: Sha256Digest,
        /// The versioned file.
        path: PathBuf,
    },
    /// The version was already active and intact: nothing was downloaded or written.
    AlreadyInstalled {
        /// The active version.
        version: LivekitVersion,
    },
}

internal_item! {
/// Install `request.version` into `state`'s `bin/` (see the module docs for the guarantees).
async fn install(
    state: &StateDir,
    request: &InstallRequest,
) -> Result<InstallOutcome, FetchError> {
    let version = &request.version;
    let asset = ReleaseAsset::new(&request.base_url, version, &request.platform)?;
    if !request.force
        && let Some(outcome) = reuse_kept(state, request)?
    {
        return Ok(outcome);
    }
    if let Some(sink) = &request.events {
        sink(&FetchEvent::Started);
    }
    let bin_dir = state.bin_dir();
    crate::fsio::create_private_dir(&bin_dir, true).map_err(|source| FetchError::Io {
        action: "create",
        path: bin_dir.clone(),
        source,
    })?;
    let http = http::Http::new(
        request.timeouts,
        request.proxy,
        request.retry,
        request.github_token.clone(),
        request.events.clone(),
        request.clock,
    )?;
    let from = request.base_url.source_of(version, &asset);
    let expected = match request.pinned_sha256 {
        Some(pinned) => pinned,
        None => expected_digest(&http, &asset, version)
            .await
            .map_err(|e| e.looked_for_at(&from))?,
    };
    let staged = StagedFile::new_in(&bin_dir).map_err(|source| FetchError::Io {
        action: "create a temporary file in",
        path: bin_dir.clone(),
        source,
    })?;
    let (extracted, staged) =
        download::fetch_archive(&http, &asset.url, version, request.limits, staged)
            .await
            .map_err(|e| e.looked_for_at(&from))?;
    if extracted.archive_sha256 != expected {
        // `staged` is dropped here, removing the temporary file; nothing else was touched.
        return Err(FetchError::ChecksumMismatch {
            url: crate::redact::url(&asset.url),
            version: version.clone(),
            expected: expected.to_hex(),
            actual: extracted.archive_sha256.to_hex(),
        });
    }
    let path = versioned_path(state, version);
    staged
        .publish(&path, 0o755)
        .map_err(|source| FetchError::Io {
            action: "publish",
            path: path.clone(),
            source,
        })?;
    let manifest = InstallManifest {
        version: version.to_string(),
        sha256: extracted.binary_sha256,
        size: extracted.binary_size,
        source_url: crate::redact::url(&asset.url),
        archive_sha256: extracted.archive_sha256,
        installed_at: install::rfc3339_micros((request.clock)()),
    };
    install::write_manifest(state, version, &manifest)?;
    install::activate(state, version, (request.clock)())?;
    install::prune(state)?;
    tracing::info!(%version, sha256 = %extracted.binary_sha256, "installed livekit-server");
    Ok(InstallOutcome::Installed {
        version: version.clone(),
        sha256: extracted.binary_sha256,
        path,
    })
}
}

/// The already-active or kept copy of the requested version, if intact (and, with a pinned
/// archive digest, installed from that very archive).
fn reuse_kept(
    state: &StateDir,
    request: &InstallRequest,
) -> Result<Option<InstallOutcome>, FetchError> {
    let version = &request.version;
    let Some(kept) = list_installed(state)?
        .into_iter()
        .find(|b| &b.version == version)
    else {
        return Ok(None);
    };
    if request
        .pinned_sha256
        .is_some_and(|pin| pin != kept.manifest.archive_sha256)
    {
        return Ok(None);
    }
    let active = kept.active;
    let report = install::verify(kept)?;
    if !report.is_intact() {
        tracing::warn!(path = %report.binary.path.display(), "kept livekit-server does not match its manifest; downloading again");
        return Ok(None);
    }
    if active {
        return Ok(Some(InstallOutcome::AlreadyInstalled {
            version: version.clone(),
        }));
    }
    install::activate(state, version, (request.clock)())?;
    Ok(Some(InstallOutcome::Reactivated {
        version: version.clone(),
        sha256: report.binary.manifest.sha256,
        path: report.binary.path,
    }))
}

/// The archive's digest as the release's `checksums.txt` lists it.
async fn expected_digest(
    http: &http::Http,
    asset: &ReleaseAsset,
    version: &LivekitVersion,
) -> Result<Sha256Digest, FetchError> {
    let body = match source::local_path(&asset.checksums_url) {
        Some(path) => download::read_local_small(&path, version, MAX_CHECKSUMS_BYTES)?,
        None => {
            http.get_small(&asset.checksums_url, version, MAX_CHECKSUMS_BYTES)
                .await?
        }
    };
    let text = String::from_utf8_lossy(&body);
    checksums::digest_for(&text, &asset.name).map_err(|problem| FetchError::ChecksumList {
        url: crate::redact::url(&asset.checksums_url),
        asset: asset.name.clone(),
        problem: problem.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn install_can_run_on_a_multi_threaded_runtime_and_never_prints_the_token() {
        let state = StateDir::new("/nonexistent");
        let mut request = InstallRequest::new(
            LivekitVersion::parse("1.7.2").unwrap(),
            Platform::new("linux", "x86_64"),
        );
        request.github_token = Some(Secret::new("ghp_do_not_print"));
        let future = install(&state, &request);
        assert_send(&future);
        drop(future);
        assert!(!format!("{request:?}").contains("ghp_do_not_print"));
    }
}
