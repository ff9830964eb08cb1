//! The install layout in `bin/`: versioned binaries `livekit-server-<ver>` with a manifest each
//! (`livekit-server-<ver>.manifest.json`), and `livekit-server`, a symlink switched atomically to
//! the active one. Old versions are kept (the newest [`KEEP_VERSIONS`]) for rollback.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::fsio;
use crate::paths::StateDir;
use crate::version::LivekitVersion;

use super::checksums::Sha256Digest;
use super::error::FetchError;
use super::extract::hash_reader;

/// How many installed versions are kept (the active one included).
pub const KEEP_VERSIONS: usize = 3;

const BINARY_PREFIX: &str = "livekit-server-";
const MANIFEST_SUFFIX: &str = ".manifest.json";

/// What we recorded when a binary was installed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallManifest {
    /// The livekit-server version (`1.7.2`).
    pub version: String,
    /// SHA-256 of the installed binary.
    pub sha256: Sha256Digest,
    /// Size of the installed binary in bytes.
    pub size: u64,
    /// Where the archive came from (credentials redacted).
    pub source_url: String,
    /// SHA-256 of the archive, as verified against the release's checksums.
    pub archive_sha256: Sha256Digest,
    /// When it was installed (RFC 3339, UTC).
    pub installed_at: String,
}

/// An installed, manifest-backed binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledBinary {
    /// Its version.
    pub version: LivekitVersion,
    /// The versioned file (`bin/livekit-server-<ver>`).
    pub path: PathBuf,
    /// Its manifest.
    pub manifest: InstallManifest,
    /// Whether `bin/livekit-server` points at it.
    pub active: bool,
}

/// A re-hash of an installed binary against its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityReport {
    /// The binary checked.
    pub binary: InstalledBinary,
    /// Its size now.
    pub actual_size: u64,
    /// Its SHA-256 now.
    pub actual_sha256: Sha256Digest,
    /// Whether it is executable by its owner.
    pub executable: bool,
}

impl IntegrityReport {
    /// Size, digest and mode all as installed.
    pub fn is_intact(&self) -> bool {
        self.actual_size == self.binary.manifest.size
            && self.actual_sha256 == self.binary.manifest.sha256
            && self.executable
    }
}

/// Whether `ensure` must install, cheaply (reads the symlink and the manifest; no hashing).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InstallNeed {
    /// Nothing (of ours) is installed.
    Missing,
    /// Another version is active.
    VersionDiffers {
        /// The active version.
        installed: LivekitVersion,
        /// The pinned one.
        pinned: LivekitVersion,
    },
    /// The active binary or its manifest is unusable (missing, wrong size, not ours).
    Damaged {
        /// What is wrong.
        reason: String,
    },
    /// The pinned version is active.
    UpToDate,
}

/// The result of a rollback ([`admin::rollback`](crate::admin::rollback)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackOutcome {
    /// The version that was active.
    pub from: LivekitVersion,
    /// The version now active.
    pub to: LivekitVersion,
}

/// `bin/livekit-server-<ver>`.
pub fn versioned_path(state: &StateDir, version: &LivekitVersion) -> PathBuf {
    state.bin_dir().join(format!("{BINARY_PREFIX}{version}"))
}

/// `bin/livekit-server-<ver>.manifest.json`.
pub fn manifest_path(state: &StateDir, version: &LivekitVersion) -> PathBuf {
    state
        .bin_dir()
        .join(format!("{BINARY_PREFIX}{version}{MANIFEST_SUFFIX}"))
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FetchError {
    let path = path.to_path_buf();
    move |source| FetchError::Io {
        action,
        path,
        source,
    }
}

/// The version `bin/livekit-server` points at, `None` when it does not exist.
fn active_version(state: &StateDir) -> Result<Option<LivekitVersion>, FetchError> {
    let link = state.livekit_bin();
    let meta = match std::fs::symlink_metadata(&link) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("inspect", &link)(e)),
    };
    if !meta.file_type().is_symlink() {
        return Err(FetchError::NotManaged { path: link });
    }
    let target = std::fs::read_link(&link).map_err(io_error("read", &link))?;
    let version = target
        .to_str()
        .filter(|t| !t.contains('/'))
        .and_then(|t| t.strip_prefix(BINARY_PREFIX))
        .and_then(|v| LivekitVersion::parse(v).ok());
    version
        .map(Some)
        .ok_or(FetchError::NotManaged { path: link })
}

fn read_manifest(
    state: &StateDir,
    version: &LivekitVersion,
) -> Result<InstallManifest, FetchError> {
    let path = manifest_path(state, version);
    let text = crate::fsio::read_regular(&path).map_err(io_error("read", &path))?;
    serde_json::from_slice(&text).map_err(|source| FetchError::Manifest { path, source })
}

fn load(
    state: &StateDir,
    version: &LivekitVersion,
    active: bool,
) -> Result<InstalledBinary, FetchError> {
    Ok(InstalledBinary {
        version: version.clone(),
        path: versioned_path(state, version),
        manifest: read_manifest(state, version)?,
        active,
    })
}

/// The active binary and its manifest, `None` when nothing is installed.
pub fn installed(state: &StateDir) -> Result<Option<InstalledBinary>, FetchError> {
    match active_version(state)? {
        None => Ok(None),
        Some(v) => load(state, &v, true).map(Some),
    }
}

/// Every installed version with a readable manifest, newest install first.
pub fn list_installed(state: &StateDir) -> Result<Vec<InstalledBinary>, FetchError> {
    let dir = state.bin_dir();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("list", &dir)(e)),
    };
    let active = active_version(state).ok().flatten();
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error("list", &dir))?;
        let name = entry.file_name();
        let Some(version) = name
            .to_str()
            .and_then(|n| n.strip_prefix(BINARY_PREFIX))
            .and_then(|n| n.strip_suffix(MANIFEST_SUFFIX))
            .and_then(|v| LivekitVersion::parse(v).ok())
        else {
            continue;
        };
        // A manifest without its binary, or an unreadable one, is not a usable install.
        if versioned_path(state, &version).is_file()
            && let Ok(binary) = load(state, &version, active.as_ref() == Some(&version))
        {
            out.push(binary);
        }
    }
    out.sort_by(|a, b| {
        (&b.manifest.installed_at, &b.version).cmp(&(&a.manifest.installed_at, &a.version))
    });
    Ok(out)
}

/// Re-hash the active binary and compare it with its manifest.
pub fn verify_installed(state: &StateDir) -> Result<IntegrityReport, FetchError> {
    let binary = installed(state)?.ok_or_else(|| FetchError::NotInstalled {
        path: state.livekit_bin(),
    })?;
    verify(binary)
}

pub(crate) fn verify(binary: InstalledBinary) -> Result<IntegrityReport, FetchError> {
    let file = std::fs::File::open(&binary.path).map_err(io_error("read", &binary.path))?;
    let executable = file
        .metadata()
        .map_err(io_error("inspect", &binary.path))?
        .permissions()
        .mode()
        & 0o100
        != 0;
    let (actual_sha256, actual_size) =
        hash_reader(io::BufReader::new(file)).map_err(io_error("read", &binary.path))?;
    Ok(IntegrityReport {
        binary,
        actual_size,
        actual_sha256,
        executable,
    })
}

/// Whether the pinned version must be installed. Cheap: no hashing.
pub fn needs_install(state: &StateDir, pinned: &LivekitVersion) -> InstallNeed {
    let current = match installed(state) {
        Ok(None) => return InstallNeed::Missing,
        Ok(Some(b)) => b,
        Err(e) => {
            return InstallNeed::Damaged {
                reason: e.to_string(),
            };
        }
    };
    match std::fs::metadata(&current.path) {
        Ok(m) if m.len() == current.manifest.size => {}
        Ok(m) => {
            return InstallNeed::Damaged {
                reason: format!(
                    "{} is {} bytes, its manifest says {}",
                    current.path.display(),
                    m.len(),
                    current.manifest.size
                ),
            };
        }
        Err(e) => {
            return InstallNeed::Damaged {
                reason: format!("{}: {e}", current.path.display()),
            };
        }
    }
    if &current.version == pinned {
        InstallNeed::UpToDate
    } else {
        InstallNeed::VersionDiffers {
            installed: current.version,
            pinned: pinned.clone(),
        }
    }
}

/// Point `bin/livekit-server` at `version` (atomically). Anything found there that is not ours
/// (a regular file, a symlink elsewhere) is moved to `backups/` first (named for `now`), never
/// deleted.
pub(crate) fn activate(
    state: &StateDir,
    version: &LivekitVersion,
    now: SystemTime,
) -> Result<(), FetchError> {
    let link = state.livekit_bin();
    if matches!(active_version(state), Err(FetchError::NotManaged { .. })) {
        let moved = fsio::move_aside(&link, &state.backups_dir(), now)
            .map_err(io_error("move aside", &link))?;
        tracing::warn!(from = %link.display(), to = %moved.display(), "moved an unmanaged livekit-server to backups");
    }
    switch_active(state, version)
}

/// Point our own `bin/livekit-server` link at `version` (atomically).
fn switch_active(state: &StateDir, version: &LivekitVersion) -> Result<(), FetchError> {
    let link = state.livekit_bin();
    let target = PathBuf::from(format!("{BINARY_PREFIX}{version}"));
    fsio::switch_symlink(&target, &link).map_err(io_error("switch", &link))
}

/// Switch back to the most recently installed version other than the active one, after checking
/// that it still matches its manifest.
pub fn rollback(state: &StateDir) -> Result<RollbackOutcome, FetchError> {
    let from = active_version(state)?.ok_or_else(|| FetchError::NotInstalled {
        path: state.livekit_bin(),
    })?;
    let previous = list_installed(state)?
        .into_iter()
        .find(|b| b.version != from)
        .ok_or_else(|| FetchError::NoPreviousVersion {
            dir: state.bin_dir(),
        })?;
    let to = previous.version.clone();
    let path = previous.path.clone();
    if !verify(previous)?.is_intact() {
        return Err(FetchError::Tampered { path });
    }
    // The link is ours (`active_version` said so above): nothing to move aside.
    switch_active(state, &to)?;
    Ok(RollbackOutcome { from, to })
}

/// Remove all but the newest [`KEEP_VERSIONS`] installs, never the active one.
pub(crate) fn prune(state: &StateDir) -> Result<(), FetchError> {
    let all = list_installed(state)?;
    let mut kept = 0;
    for binary in all {
        if binary.active || kept < KEEP_VERSIONS.saturating_sub(1) {
            kept += usize::from(!binary.active);
            continue;
        }
        for path in [binary.path.clone(), manifest_path(state, &binary.version)] {
            fsio::staged::remove_file(&path).map_err(io_error("remove", &path))?;
        }
    }
    Ok(())
}

/// Write the manifest of a freshly published binary.
pub(crate) fn write_manifest(
    state: &StateDir,
    version: &LivekitVersion,
    manifest: &InstallManifest,
) -> Result<(), FetchError> {
    let path = manifest_path(state, version);
    let mut text = serde_json::to_vec_pretty(manifest).map_err(|source| FetchError::Manifest {
        path: path.clone(),
        source,
    })?;
    text.push(b'\n');
    fsio::write_file(&path, &text, 0o644).map_err(io_error("write", &path))
}

/// `now` as RFC 3339 UTC with microseconds (so installs in one second still order).
pub(crate) fn rfc3339_micros(now: SystemTime) -> String {
    humantime::format_rfc3339_micros(now).to_string()
}
