//! The one reader of a file the product is given (`provision.yaml`, `extra.yaml`,
//! `secrets.json`, the published files, PEM files, manifests and records): regular files only,
//! size-capped, and never blocking.
//!
//! The file is opened with `O_NONBLOCK`, so a FIFO in its place cannot hang the opener (an open
//! of a FIFO for reading otherwise waits for a writer), and the kind is judged on the opened
//! descriptor (`fstat`), so a swap between a check and the open cannot slip a FIFO or a device
//! past it. At most [`MAX_FILE`] bytes are read: a link to `/dev/zero` (a character device) is
//! refused, and a regular file that grows past the cap while read is refused too.

use std::fmt;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use zeroize::Zeroizing;

/// The largest file the product reads: 4 MiB, far above any settings file, secret store,
/// certificate bundle or published file it handles.
pub const MAX_FILE: u64 = 4 << 20;

/// Why a file was not read: it is not a regular file, or it is larger than [`MAX_FILE`]. Carried
/// as the inner error of an [`io::Error`] of kind `InvalidInput`; the errors of the files it
/// refuses carry a hint saying what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadRefusal {
    /// A directory, FIFO, socket or device stands where a file was expected.
    NotRegular {
        /// What it is ("a FIFO (named pipe)", "a directory", …).
        kind: &'static str,
    },
    /// The file is larger than the cap.
    TooLarge {
        /// The cap, in bytes.
        limit: u64,
    },
}

impl fmt::Display for ReadRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRegular { kind } => write!(f, "it is {kind}, not a regular file"),
            Self::TooLarge { limit } => {
                write!(
                    f,
                    "it is larger than {limit} bytes, the most livekit-provision reads"
                )
            }
        }
    }
}

impl std::error::Error for ReadRefusal {}

/// Read `path` whole: a regular file (symlinks followed) of at most [`MAX_FILE`] bytes. The
/// buffer is zeroed on drop (the file may hold secrets). A refusal is an [`io::Error`] of kind
/// `InvalidInput` wrapping a [`ReadRefusal`]; a missing file is `NotFound`, as from `std::fs`.
pub fn read_regular(path: &Path) -> io::Result<Zeroizing<Vec<u8>>> {
    read_capped(path, MAX_FILE).map(|(bytes, _)| bytes)
}

/// [`read_regular`], with the metadata of the descriptor read (its mode, for a caller that
/// reports permissions).
pub(crate) fn read_with_metadata(
    path: &Path,
) -> io::Result<(Zeroizing<Vec<u8>>, std::fs::Metadata)> {
    read_capped(path, MAX_FILE)
}

/// [`read_regular`] as UTF-8 text (invalid UTF-8 is an `InvalidData` error).
pub fn read_text(path: &Path) -> io::Result<Zeroizing<String>> {
    let bytes = read_regular(path)?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
    }
}

fn read_capped(path: &Path, limit: u64) -> io::Result<(Zeroizing<Vec<u8>>, std::fs::Metadata)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let kind = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else {
            "not a file"
        };
        return Err(refused(ReadRefusal::NotRegular { kind }));
    }
    if meta.len() > limit {
        return Err(refused(ReadRefusal::TooLarge { limit }));
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(
        usize::try_from(meta.len()).unwrap_or(0).saturating_add(1),
    ));
    // One byte past the cap tells a file that grew while read (or a `/proc` file, which says 0).
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(refused(ReadRefusal::TooLarge { limit }));
    }
    Ok((bytes, meta))
}

fn refused(why: ReadRefusal) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

/// The refusal inside `e`, when [`read_regular`] refused the file.
pub fn refusal(e: &io::Error) -> Option<&ReadRefusal> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<ReadRefusal>())
}

/// What to do about a refused `path`, when `e` is a refusal of [`read_regular`].
pub fn hint(e: &io::Error, path: &Path) -> Option<String> {
    refusal(e).map(|why| match why {
        ReadRefusal::NotRegular { .. } => format!(
            "replace {} with a regular file (livekit-provision reads no FIFO, device, socket or \
             directory, so it can neither hang nor read without end)",
            crate::shell::quote(path)
        ),
        ReadRefusal::TooLarge { limit } => format!(
            "{} must hold at most {limit} bytes; check that it is the file you meant",
            crate::shell::quote(path)
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("secrets.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = read_regular(&fifo).unwrap_err();
        assert_eq!(
            refusal(&err),
            Some(&ReadRefusal::NotRegular {
                kind: "a FIFO (named pipe)"
            })
        );
        assert!(hint(&err, &fifo).unwrap().contains("regular file"));
    }

    #[test]
    fn devices_directories_and_oversized_files_are_refused() {
        let err = read_regular(Path::new("/dev/zero")).unwrap_err();
        assert!(
            matches!(refusal(&err), Some(ReadRefusal::NotRegular { .. })),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let err = read_regular(dir.path()).unwrap_err();
        assert!(err.to_string().contains("a directory"), "{err}");
        let big = dir.path().join("big");
        std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(&big)
            .unwrap()
            .set_len(MAX_FILE + 1)
            .unwrap();
        let err = read_regular(&big).unwrap_err();
        assert!(
            matches!(refusal(&err), Some(ReadRefusal::TooLarge { .. })),
            "{err}"
        );
        // A /proc file reports size 0 and is read to its end.
        assert!(
            !read_regular(Path::new("/proc/self/status"))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            read_regular(&dir.path().join("absent")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn a_capped_read_refuses_what_grew_past_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        crate::fsio::write_file(&path, b"0123456789", 0o600).unwrap();
        assert_eq!(&*read_capped(&path, 10).unwrap().0, b"0123456789");
        assert!(read_capped(&path, 9).is_err());
    }
}
