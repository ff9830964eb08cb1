//! Preparing the state directory: the root and its fixed subdirectories, each 0700.
//!
//! The root itself may be a symlink (an operator moving state to another disk is common); it is
//! followed, and everything inside is addressed through it. Only a root that resolves to a
//! non-directory is refused.

use std::io;
use std::path::{Path, PathBuf};

use nix::unistd::{AccessFlags, access};

use super::PublishError;
use crate::fsio::{create_private_dir, fsync_dir};
use crate::paths::StateDir;

/// The subdirectories `prepare` creates.
fn subdirs(state: &StateDir) -> [PathBuf; 6] {
    [
        state.run_dir(),
        state.logs_dir(),
        state.backups_dir(),
        state.generations_dir(),
        state.bin_dir(),
        // `data/`: lk-backend's database lives here.
        state.root().join("data"),
    ]
}

/// Create the state directory (0700, with missing parents) and `run/`, `logs/`, `backups/`,
/// `generations/`, `bin/`, `data/` in it, as needed. Writes nothing when all exist.
///
/// Fails with [`PublishError::NotADirectory`] when the root or one of these is something else,
/// and [`PublishError::NotWritable`] when the root is not writable by this process. Existing
/// directories keep their mode: they are the operator's.
pub fn prepare(state: &StateDir) -> Result<(), PublishError> {
    let root = state.root();
    let created_root = ensure_dir(root, true)?;
    if created_root && let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
        fsync_dir(parent).map_err(PublishError::io("fsync", parent))?;
    }
    access(root, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|errno| {
        PublishError::NotWritable {
            path: root.to_owned(),
            source: io::Error::from(errno),
        }
    })?;
    let mut created_any = false;
    for dir in subdirs(state) {
        created_any |= ensure_dir(&dir, false)?;
    }
    if created_any {
        fsync_dir(root).map_err(PublishError::io("fsync", root))?;
    }
    Ok(())
}

/// Make `dir` exist as a directory. `Ok(true)` when it was created.
pub(crate) fn ensure_dir(dir: &Path, with_parents: bool) -> Result<bool, PublishError> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => return Ok(false),
        Ok(_) => {
            return Err(PublishError::NotADirectory {
                path: dir.to_owned(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            return Err(PublishError::NotADirectory {
                path: non_directory_component(dir),
            });
        }
        Err(e) => return Err(PublishError::io("inspect", dir)(e)),
    }
    match create_private_dir(dir, with_parents) {
        Ok(()) => Ok(true),
        // Another process made it between our look and our mkdir.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => Err(PublishError::NotADirectory {
            path: non_directory_component(dir),
        }),
        Err(e) => Err(PublishError::io("create directory", dir)(e)),
    }
}

/// The path to name when `dir` cannot be made a directory because a component of it is not
/// one: the first ancestor that exists and is not a directory (a state directory *under* a file
/// names that file, which is what the operator must move), else `dir` itself.
fn non_directory_component(dir: &Path) -> PathBuf {
    let ancestors: Vec<&Path> = dir.ancestors().collect();
    ancestors
        .into_iter()
        .rev()
        .find(|p| std::fs::metadata(p).is_ok_and(|m| !m.is_dir()))
        .map_or_else(|| dir.to_owned(), Path::to_owned)
}

#[cfg(test)]
mod tests {
    use crate::error_chain::Hint;
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_the_layout_0700_and_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path().join("a/b/state"));
        prepare(&state).unwrap();
        for dir in std::iter::once(state.root().to_owned()).chain(subdirs(&state)) {
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
        }
        prepare(&state).unwrap();
    }

    #[test]
    fn a_file_as_state_dir_is_not_a_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        crate::fsio::write_file(&file, b"x", 0o600).unwrap();
        let err = prepare(&StateDir::new(&file)).unwrap_err();
        assert!(matches!(&err, PublishError::NotADirectory { path } if path == &file));
        assert!(err.to_string().contains("is not a directory"), "{err}");
        assert!(err.hint().unwrap().contains("--state-dir"));
        // A path *under* a file: the same diagnosis, naming the file to move.
        let err = prepare(&StateDir::new(file.join("x/y"))).unwrap_err();
        assert!(
            matches!(&err, PublishError::NotADirectory { path } if path == &file),
            "{err:?}"
        );
    }

    #[test]
    fn a_subdirectory_that_is_a_file_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path());
        crate::fsio::write_file(&state.run_dir(), b"x", 0o600).unwrap();
        let err = prepare(&state).unwrap_err();
        assert!(matches!(&err, PublishError::NotADirectory { path } if *path == state.run_dir()));
    }

    /// As root, permission bits do not stop writes, so the unwritable case is only meaningful
    /// for other users; as root the path-under-a-file case above stands in for it.
    #[test]
    fn an_unwritable_state_dir_is_named_with_a_hint() {
        if nix::unistd::geteuid().is_root() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("ro");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o500)).unwrap();
        let err = prepare(&StateDir::new(&root)).unwrap_err();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(matches!(&err, PublishError::NotWritable { path, .. } if *path == root));
        assert!(err.hint().unwrap().contains("--state-dir"));
    }
}
