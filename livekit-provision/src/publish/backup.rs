//! Keeping a copy of something in `backups/` before it is replaced: nothing is ever lost.
//!
//! A regular file is copied (bytes, mode 0600) and a symlink is re-created with the same target —
//! never written through. The original stays in place, so the caller can replace it atomically
//! and a reader never finds the path missing. Names are `<file>.<UTC timestamp>[.<n>]`, created
//! without ever clobbering an earlier backup.

use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::PublishError;
use super::layout::ensure_dir;
use crate::fsio::{TEMP_PREFIX, fsync_dir, write_file};
use crate::paths::StateDir;

/// Mode of a backed-up regular file: it may hold secrets.
const BACKUP_MODE: u32 = 0o600;

/// Makes staging names unique between threads of one process (the pid does between processes).
static STAGING_SEQ: AtomicU64 = AtomicU64::new(0);

/// How many `.<n>` suffixes to try for backups made within one second.
const MAX_SUFFIX: u32 = 1000;

/// One thing kept in `backups/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// Where it was.
    pub original: PathBuf,
    /// Where its copy now is, in `backups/`.
    pub saved: PathBuf,
}

/// Keep a copy of `path` (a regular file or a symlink) in `<state>/backups/`, creating that
/// directory (0700) if needed. `path` itself is left in place for the caller to replace.
///
/// Anything else (a directory, a socket) is refused with [`PublishError::NotAFile`].
pub fn backup(state: &StateDir, path: &Path) -> Result<Backup, PublishError> {
    backup_at(state, path, SystemTime::now())
}

pub(crate) fn backup_at(
    state: &StateDir,
    path: &Path,
    now: SystemTime,
) -> Result<Backup, PublishError> {
    let dir = state.backups_dir();
    ensure_dir(&dir, false)?;
    let meta = std::fs::symlink_metadata(path).map_err(PublishError::io("inspect", path))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| PublishError::NotAFile {
            path: path.to_owned(),
        })?
        .to_string_lossy()
        .into_owned();
    let stem = format!("{file_name}.{}", utc_stamp(now));
    let saved = if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).map_err(PublishError::io("read link", path))?;
        place_unique(&dir, &stem, |candidate| symlink(&target, candidate))?
    } else if meta.is_file() {
        let bytes = std::fs::read(path).map_err(PublishError::io("read", path))?;
        // Write under a temporary name, then hard-link it to the first free name: a link never
        // replaces an existing file, so no earlier backup can be clobbered.
        let staging = dir.join(format!(
            "{TEMP_PREFIX}backup-{}-{}",
            std::process::id(),
            STAGING_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        write_file(&staging, &bytes, BACKUP_MODE).map_err(PublishError::io("write", &staging))?;
        let placed = place_unique(&dir, &stem, |candidate| {
            std::fs::hard_link(&staging, candidate)
        });
        std::fs::remove_file(&staging).map_err(PublishError::io("remove", &staging))?;
        placed?
    } else {
        return Err(PublishError::NotAFile {
            path: path.to_owned(),
        });
    };
    fsync_dir(&dir).map_err(PublishError::io("fsync", &dir))?;
    Ok(Backup {
        original: path.to_owned(),
        saved,
    })
}

/// Create `dir/<stem>`, else `dir/<stem>.1`, `.2`, … with `create`, which must fail with
/// `AlreadyExists` when the name is taken.
fn place_unique(
    dir: &Path,
    stem: &str,
    mut create: impl FnMut(&Path) -> io::Result<()>,
) -> Result<PathBuf, PublishError> {
    let mut candidate = dir.join(stem);
    for n in 1..=MAX_SUFFIX {
        match create(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                candidate = dir.join(format!("{stem}.{n}"));
            }
            Err(e) => return Err(PublishError::io("create backup", candidate)(e)),
        }
    }
    Err(PublishError::io("create backup", candidate)(
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{MAX_SUFFIX} backups of the same name in one second"),
        ),
    ))
}

/// `20250102T030405Z`: sortable, and free of `:` so it is safe to copy to any filesystem.
fn utc_stamp(now: SystemTime) -> String {
    humantime::format_rfc3339_seconds(now)
        .to_string()
        .replace(['-', ':'], "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn stamps_are_compact_utc() {
        let t = UNIX_EPOCH + Duration::from_secs(1_735_787_045);
        assert_eq!(utc_stamp(t), "20250102T030405Z");
    }

    #[test]
    fn a_file_is_copied_0600_and_names_never_clobber() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path());
        let path = tmp.path().join("secrets.json");
        write_file(&path, b"one", 0o644).unwrap();
        let t = UNIX_EPOCH + Duration::from_secs(1_735_787_045);
        let first = backup_at(&state, &path, t).unwrap();
        write_file(&path, b"two", 0o644).unwrap();
        let second = backup_at(&state, &path, t).unwrap();
        let dir = state.backups_dir();
        assert_eq!(first.saved, dir.join("secrets.json.20250102T030405Z"));
        assert_eq!(second.saved, dir.join("secrets.json.20250102T030405Z.1"));
        assert_eq!(std::fs::read(&first.saved).unwrap(), b"one");
        assert_eq!(std::fs::read(&second.saved).unwrap(), b"two");
        let mode = std::fs::metadata(&second.saved)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // The original is untouched, and no staging file is left behind.
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    }

    #[test]
    fn a_symlink_is_kept_as_a_link_and_its_target_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path().join("state"));
        std::fs::create_dir(state.root()).unwrap();
        let target = tmp.path().join("elsewhere.yaml");
        write_file(&target, b"theirs", 0o644).unwrap();
        let link = state.root().join("livekit.yaml");
        symlink(&target, &link).unwrap();
        let kept = backup(&state, &link).unwrap();
        assert_eq!(std::fs::read_link(&kept.saved).unwrap(), target);
        assert_eq!(std::fs::read(&target).unwrap(), b"theirs");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn a_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path());
        let dir = tmp.path().join("livekit.yaml");
        std::fs::create_dir(&dir).unwrap();
        let err = backup(&state, &dir).unwrap_err();
        assert!(matches!(&err, PublishError::NotAFile { path } if *path == dir));
        assert!(err.hint().is_some());
    }
}
