//! Directories and append-only files: the state directory holds secrets, so every directory we
//! create is private (0700), and a log is opened without following a planted symlink.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::OFlag;

/// Mode of every directory we create.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Create `dir` with mode 0700. With `parents`, missing parents are created too (also 0700) and
/// a directory already there is fine; without, `dir` must not exist yet (`AlreadyExists`).
/// Existing directories keep their mode: they are the operator's.
pub fn create_private_dir(dir: &Path, parents: bool) -> io::Result<()> {
    DirBuilder::new()
        .recursive(parents)
        .mode(PRIVATE_DIR_MODE)
        .create(dir)
}

/// Open `path` for appending, creating it with `mode`. A symlink at `path` is refused (`ELOOP`),
/// never followed: a link planted beside our files must not make a write land elsewhere.
pub fn open_append(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(mode)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(path)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_dirs_are_0700_and_parents_only_when_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("a/b");
        assert!(create_private_dir(&deep, false).is_err());
        create_private_dir(&deep, true).unwrap();
        create_private_dir(&deep, true).unwrap();
        assert_eq!((mode(&deep), mode(&tmp.path().join("a"))), (0o700, 0o700));
        let err = create_private_dir(&deep, false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn append_creates_with_mode_and_refuses_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("x.log");
        open_append(&log, 0o600)
            .unwrap()
            .write_all(b"one\n")
            .unwrap();
        open_append(&log, 0o600)
            .unwrap()
            .write_all(b"two\n")
            .unwrap();
        assert_eq!(std::fs::read(&log).unwrap(), b"one\ntwo\n");
        assert_eq!(mode(&log), 0o600);
        let link = tmp.path().join("planted.log");
        std::os::unix::fs::symlink(&log, &link).unwrap();
        assert!(open_append(&link, 0o600).is_err());
        assert_eq!(std::fs::read(&log).unwrap(), b"one\ntwo\n");
    }
}
