//! Streaming writes: a temporary file beside its destination that is filled piece by piece and
//! published by one rename only when the caller says so, and atomic symlink switches (in one
//! call, or in two steps when the caller has something to do in between).

use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::atomic::{TEMP_PREFIX, fsync_dir};

/// A temporary file in the destination's directory. Dropped without [`StagedFile::publish`], it
/// is removed, so an abandoned download never leaves bytes at the destination.
#[derive(Debug)]
pub struct StagedFile {
    tmp: tempfile::NamedTempFile,
}

impl StagedFile {
    /// Create an empty temporary file in `dir` (which must exist).
    pub fn new_in(dir: &Path) -> io::Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)?;
        Ok(Self { tmp })
    }

    /// The temporary path (for messages; it disappears on publish or drop).
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Throw away what was written so far and start again from an empty file.
    pub fn truncate(&mut self) -> io::Result<()> {
        use std::io::Seek;
        self.tmp.as_file().set_len(0)?;
        self.tmp.as_file_mut().rewind()?;
        Ok(())
    }

    /// Set `mode`, `sync_all`, rename onto `dest` (replacing it atomically), fsync the directory.
    pub fn publish(self, dest: &Path, mode: u32) -> io::Result<()> {
        self.tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
        self.tmp.as_file().sync_all()?;
        let dir = dest.parent().map(Path::to_path_buf).unwrap_or_default();
        self.tmp.persist(dest).map_err(|e| e.error)?;
        fsync_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &dir
        })
    }
}

impl Write for StagedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

/// A symlink created under a temporary name beside the link it is to replace; [`switch`] renames
/// it over that link in one step. Between the two, the temporary link is debris a crash may
/// leave (it has the [`TEMP_PREFIX`], so `check` reports it and the next publish sweeps it).
///
/// [`switch`]: StagedLink::switch
#[derive(Debug)]
pub struct StagedLink {
    temp: PathBuf,
    link: PathBuf,
}

impl StagedLink {
    /// Create a fresh temporary symlink to `target` in the directory of `link`.
    pub fn new(target: &Path, link: &Path) -> io::Result<Self> {
        let dir = parent_dir(link)?;
        let mut last_err = None;
        for _ in 0..16 {
            let temp = temp_link_path(dir)?;
            match std::os::unix::fs::symlink(target, &temp) {
                Ok(()) => {
                    return Ok(Self {
                        temp,
                        link: link.to_owned(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("could not create a temporary symlink")))
    }

    /// Rename the temporary link over the link: a reader sees the old target or the new one.
    /// Not yet durable: fsync the directory afterwards (as [`switch_symlink`] does).
    pub fn switch(self) -> io::Result<()> {
        std::fs::rename(&self.temp, &self.link).inspect_err(|_| {
            let _ = std::fs::remove_file(&self.temp);
        })
    }
}

/// Atomically make `link` a symlink to `target`: create a temporary symlink beside it and rename
/// it over `link`, then fsync the directory. A reader of `link` sees the old target or the new one.
pub fn switch_symlink(target: &Path, link: &Path) -> io::Result<()> {
    StagedLink::new(target, link)?.switch()?;
    fsync_dir(parent_dir(link)?)
}

fn parent_dir(link: &Path) -> io::Result<&Path> {
    link.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has no parent directory", link.display()),
            )
        })
}

/// Remove a file we own (an old version, a stale temporary file) and fsync its directory.
pub fn remove_file(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => fsync_dir(dir),
        _ => Ok(()),
    }
}

/// Remove `path` without following it: a directory with everything in it, else the file or
/// link. Not fsynced: the caller fsyncs each directory once after removing several things.
pub fn remove_unsynced(path: &Path) -> io::Result<()> {
    if std::fs::symlink_metadata(path)?.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

fn temp_link_path(dir: &Path) -> io::Result<PathBuf> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    let suffix = u64::from_le_bytes(bytes);
    Ok(dir.join(format!("{TEMP_PREFIX}link-{suffix:016x}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn staged_file_publishes_with_mode_or_vanishes() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("bin");
        let mut staged = StagedFile::new_in(dir.path()).unwrap();
        staged.write_all(b"garbage").unwrap();
        staged.truncate().unwrap();
        staged.write_all(b"#!/bin/sh\n").unwrap();
        staged.publish(&dest, 0o755).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"#!/bin/sh\n");
        assert_eq!(std::fs::metadata(&dest).unwrap().mode() & 0o777, 0o755);

        let abandoned = StagedFile::new_in(dir.path()).unwrap();
        let tmp = abandoned.path().to_path_buf();
        drop(abandoned);
        assert!(!tmp.exists());
    }

    #[test]
    fn switch_symlink_replaces_the_link_only() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("current");
        switch_symlink(Path::new("a"), &link).unwrap();
        switch_symlink(Path::new("b"), &link).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("b"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
