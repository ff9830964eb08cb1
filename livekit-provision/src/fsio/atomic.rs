//! Crash-safe single-file writes: temp file beside the destination, write, `sync_all`, set the
//! mode *before* the rename, rename, fsync the directory (the sequence the ALICE paper shows
//! every step of is needed).

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Prefix of every temporary file we create. A file with this prefix left in the state directory
/// is debris from a killed writer; `check` reports it and the next write sweeps it.
pub const TEMP_PREFIX: &str = ".lkp-tmp-";

/// Atomically replace `path` with `bytes`, readable per `mode` (e.g. `0o600`).
///
/// A reader of `path` sees the old contents or the new ones, never a mix, whenever the writer
/// dies. The parent directory must exist. If `path` is a symlink, the symlink itself is replaced,
/// never written through.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent_of(path)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    fsync_dir(dir)
}

/// Rename `from` over `to` (a directory or a socket we just made), after giving it `mode` when
/// one is given, and fsync the directory of `to`.
pub fn rename_into_place(from: &Path, to: &Path, mode: Option<u32>) -> io::Result<()> {
    if let Some(mode) = mode {
        std::fs::set_permissions(from, std::fs::Permissions::from_mode(mode))?;
    }
    std::fs::rename(from, to)?;
    fsync_dir(parent_of(to)?)
}

/// fsync a directory, so that a rename or creation inside it survives a power loss.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn parent_of(path: &Path) -> io::Result<&Path> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Ok(Path::new(".")),
        Some(p) => Ok(p),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no parent directory", path.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writes_with_mode_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_file(&path, b"one", 0o600).unwrap();
        write_file(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
    }

    #[test]
    fn replaces_a_symlink_instead_of_writing_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        let victim = outside.join("victim");
        write_file(&victim, b"keep", 0o644).unwrap();
        let inside = dir.path().join("inside");
        std::fs::create_dir(&inside).unwrap();
        let link = inside.join("f");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        write_file(&link, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(
            !std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
}
