//! Keeping a copy of something in `backups/` before it is replaced: nothing is ever lost.
//!
//! A regular file is copied (bytes, mode 0600) and a symlink is re-created with the same target —
//! never written through. The original stays in place, so the caller can replace it atomically
//! and a reader never finds the path missing. The copy and its name (`<file>.<UTC timestamp>[.<n>]`,
//! never clobbering an earlier backup) are [`fsio::copy_aside`]'s.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::PublishError;
use super::layout::ensure_dir;
use crate::fsio;
use crate::paths::StateDir;

/// Mode of a backed-up regular file: it may hold secrets.
const BACKUP_MODE: u32 = 0o600;

/// One thing kept in `backups/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// Where it was.
    pub original: PathBuf,
    /// Where its copy now is, in `backups/`.
    pub saved: PathBuf,
}

/// Keep a copy of `path` (a regular file or a symlink) in `<state>/backups/`, creating that
/// directory (0700) if needed, named for `now`. `path` itself is left in place for the caller
/// to replace.
///
/// Anything else (a directory, a socket) is refused with [`PublishError::NotAFile`].
pub fn backup(state: &StateDir, path: &Path, now: SystemTime) -> Result<Backup, PublishError> {
    let dir = state.backups_dir();
    ensure_dir(&dir, false)?;
    let meta = std::fs::symlink_metadata(path).map_err(PublishError::io("inspect", path))?;
    if path.file_name().is_none() || !(meta.is_file() || meta.file_type().is_symlink()) {
        return Err(PublishError::NotAFile {
            path: path.to_owned(),
        });
    }
    let saved = fsio::copy_aside(path, &dir, now, BACKUP_MODE)
        .map_err(PublishError::io("back up", path))?;
    Ok(Backup {
        original: path.to_owned(),
        saved,
    })
}

#[cfg(test)]
mod tests {
    use crate::error_chain::Hint;
    use super::*;
    use crate::fsio::write_file;
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn a_file_is_copied_0600_and_names_never_clobber() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path());
        let path = tmp.path().join("secrets.json");
        write_file(&path, b"one", 0o644).unwrap();
        let t = UNIX_EPOCH + Duration::from_secs(1_735_787_045);
        let first = backup(&state, &path, t).unwrap();
        write_file(&path, b"two", 0o644).unwrap();
        let second = backup(&state, &path, t).unwrap();
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
        let kept = backup(&state, &link, SystemTime::UNIX_EPOCH).unwrap();
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
        let err = backup(&state, &dir, SystemTime::UNIX_EPOCH).unwrap_err();
        assert!(matches!(&err, PublishError::NotAFile { path } if *path == dir));
        assert!(err.hint().is_some());
    }
}
