//! Keeping what we are about to replace: names in `backups/` are `<file>.<UTC stamp>[.<n>]`
//! (`livekit.yaml.20250102T030405Z`, then `.1`, `.2`, … within one second), and no name is ever
//! taken twice, so an earlier backup is never clobbered.

use std::io;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use super::atomic::{TEMP_PREFIX, fsync_dir, write_file};
use super::dir::create_private_dir;

/// How many names (`<stem>`, `<stem>.1`, … `<stem>.999`) are tried for backups of one second.
const MAX_NAMES: u32 = 1000;

/// Makes staging names unique between threads of one process (the pid does between processes).
static STAGING_SEQ: AtomicU64 = AtomicU64::new(0);

/// `20250102T030405Z`: sortable, and free of `:` so it is safe to copy to any filesystem.
fn backup_stamp(now: SystemTime) -> String {
    humantime::format_rfc3339_seconds(now)
        .to_string()
        .replace(['-', ':'], "")
}

/// Copy `path` into `dir` (created 0700 if missing) under its backup name, leaving `path` in
/// place for the caller to replace atomically (a reader never finds it missing).
///
/// A regular file is copied (bytes, `mode`); a symlink is re-created with the same target, never
/// written through. Anything else is refused with `InvalidInput`.
pub fn copy_aside(path: &Path, dir: &Path, now: SystemTime, mode: u32) -> io::Result<PathBuf> {
    create_private_dir(dir, true)?;
    let stem = backup_stem(path, now)?;
    let meta = std::fs::symlink_metadata(path)?;
    let saved = if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path)?;
        place_unique(dir, &stem, |candidate| symlink(&target, candidate))?
    } else if meta.is_file() {
        let bytes = std::fs::read(path)?;
        // Written under a temporary name, then hard-linked to the first free name: a link never
        // replaces an existing file.
        let staging = dir.join(format!(
            "{TEMP_PREFIX}backup-{}-{}",
            std::process::id(),
            STAGING_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        write_file(&staging, &bytes, mode)?;
        let placed = place_unique(dir, &stem, |candidate| {
            std::fs::hard_link(&staging, candidate)
        });
        std::fs::remove_file(&staging)?;
        placed?
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file or a symlink", path.display()),
        ));
    };
    fsync_dir(dir)?;
    Ok(saved)
}

/// Move `path` into `dir` (same filesystem; created 0700 if missing) under its backup name.
pub fn move_aside(path: &Path, dir: &Path, now: SystemTime) -> io::Result<PathBuf> {
    create_private_dir(dir, true)?;
    let stem = backup_stem(path, now)?;
    let moved = place_unique(dir, &stem, |candidate| {
        if std::fs::symlink_metadata(candidate).is_ok() {
            return Err(io::ErrorKind::AlreadyExists.into());
        }
        std::fs::rename(path, candidate)
    })?;
    fsync_dir(dir)?;
    Ok(moved)
}

fn backup_stem(path: &Path, now: SystemTime) -> io::Result<String> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    Ok(format!("{}.{}", name.to_string_lossy(), backup_stamp(now)))
}

/// Create `dir/<stem>`, else `dir/<stem>.1`, `.2`, … with `create`, which must fail with
/// `AlreadyExists` when the name is taken.
fn place_unique(
    dir: &Path,
    stem: &str,
    mut create: impl FnMut(&Path) -> io::Result<()>,
) -> io::Result<PathBuf> {
    for n in 0..MAX_NAMES {
        let candidate = match n {
            0 => dir.join(stem),
            n => dir.join(format!("{stem}.{n}")),
        };
        match create(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{MAX_NAMES} backups named {stem} in one second"),
    ))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    const T: Duration = Duration::from_secs(1_735_787_045);

    #[test]
    fn stamps_are_compact_utc() {
        assert_eq!(backup_stamp(UNIX_EPOCH + T), "20250102T030405Z");
    }

    #[test]
    fn copies_and_moves_share_names_and_never_clobber() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("backups");
        let path = tmp.path().join("f");
        write_file(&path, b"one", 0o644).unwrap();
        let first = copy_aside(&path, &dir, UNIX_EPOCH + T, 0o600).unwrap();
        let second = move_aside(&path, &dir, UNIX_EPOCH + T).unwrap();
        assert_eq!(first, dir.join("f.20250102T030405Z"));
        assert_eq!(second, dir.join("f.20250102T030405Z.1"));
        assert!(!path.exists());
        assert_eq!(std::fs::read(&second).unwrap(), b"one");
        let mode = std::fs::metadata(&first).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
    }
}
