//! One streaming pass over a release tarball: hash every byte as it arrives, take the single
//! `livekit-server` entry into a staged file, and read the rest to the end so the digest covers
//! the whole archive. Memory stays bounded by the decoder buffers, whatever the archive's size.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read, Write};

use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};

use crate::fsio::StagedFile;

use super::checksums::Sha256Digest;

/// The entry we install, as the release tarball names it.
pub const BINARY_ENTRY: &str = "livekit-server";

/// Size bounds on what one install may read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimits {
    /// Largest archive download, in bytes.
    pub max_download: u64,
    /// Largest uncompressed `livekit-server` entry, in bytes.
    pub max_binary: u64,
}

impl Default for SizeLimits {
    fn default() -> Self {
        Self {
            max_download: 512 << 20,
            max_binary: 1 << 30,
        }
    }
}

/// Why a tarball was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveProblem {
    /// An entry path is absolute or climbs out with `..`.
    UnsafePath(String),
    /// `livekit-server` is a symlink or a hard link.
    LinkNamedBinary(String),
    /// `livekit-server` is not a regular file (a directory, say).
    BinaryNotRegular(String),
    /// A device or FIFO entry.
    SpecialFile(String),
    /// `livekit-server` appears more than once.
    DuplicateBinary,
    /// No `livekit-server` entry.
    MissingBinary,
    /// The tar or gzip stream is damaged.
    Corrupt(String),
}

impl fmt::Display for ArchiveProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsafePath(p) => {
                write!(f, "entry {p:?} is absolute or leaves the archive with `..`")
            }
            Self::LinkNamedBinary(p) => {
                write!(f, "entry {p:?} is a link, not the livekit-server binary")
            }
            Self::BinaryNotRegular(p) => write!(f, "entry {p:?} is not a regular file"),
            Self::SpecialFile(p) => write!(f, "entry {p:?} is a device or FIFO"),
            Self::DuplicateBinary => write!(f, "the archive holds more than one {BINARY_ENTRY}"),
            Self::MissingBinary => {
                write!(f, "the archive holds no {BINARY_ENTRY} at its top level")
            }
            Self::Corrupt(why) => write!(f, "the archive is damaged ({why})"),
        }
    }
}

/// Why the byte source stopped feeding the pipeline. Set by the readers below the decoders, so
/// the outer code knows the cause whatever error the decoders wrap it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceStop {
    /// The server answered 200 to a range request: start again from byte 0.
    Restart,
    /// The download failed; its error is the producer's to report.
    Failed,
    /// More than [`SizeLimits::max_download`] bytes.
    TooLarge,
}

/// What the pass produced: the archive's digest and size and the staged binary's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extracted {
    pub archive_sha256: Sha256Digest,
    pub archive_size: u64,
    pub binary_sha256: Sha256Digest,
    pub binary_size: u64,
}

/// How the pass failed.
#[derive(Debug)]
pub(crate) enum ExtractError {
    /// See [`SourceStop`].
    Source(SourceStop),
    /// The stream is not gzip at all.
    NotGzip(io::Error),
    /// A refusal.
    Problem(ArchiveProblem),
    /// The binary entry is larger than [`SizeLimits::max_binary`].
    BinaryTooLarge,
    /// Writing the staged file failed.
    Write(io::Error),
}

/// Hashes and counts every byte read through it; refuses to read past `limit`.
struct HashingReader<'a, R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    limit: u64,
    stop: &'a Cell<Option<SourceStop>>,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            self.stop.set(Some(SourceStop::TooLarge));
            return Err(io::Error::other("download exceeds the size limit"));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Run the pass over `source`, writing the binary into `staged` (which must be empty). `stop` is
/// the cell the source sets before failing a read.
pub(crate) fn extract_binary<R: Read>(
    source: R,
    stop: &Cell<Option<SourceStop>>,
    staged: &mut StagedFile,
    limits: SizeLimits,
) -> Result<Extracted, ExtractError> {
    let hashing = HashingReader {
        inner: source,
        hasher: Sha256::new(),
        count: 0,
        limit: limits.max_download,
        stop,
    };
    let mut seen_entry = false;
    let classify = |e: io::Error, seen_entry: bool| match stop.get() {
        Some(s) => ExtractError::Source(s),
        None if !seen_entry => ExtractError::NotGzip(e),
        None => ExtractError::Problem(ArchiveProblem::Corrupt(e.to_string())),
    };
    let mut archive = tar::Archive::new(GzDecoder::new(hashing));
    let mut binary = None;
    for entry in archive.entries().map_err(|e| classify(e, false))? {
        let mut entry = entry.map_err(|e| classify(e, seen_entry))?;
        seen_entry = true;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if name.starts_with('/') || name.split('/').any(|c| c == "..") {
            return Err(ExtractError::Problem(ArchiveProblem::UnsafePath(name)));
        }
        if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            return Err(ExtractError::Problem(ArchiveProblem::SpecialFile(name)));
        }
        if name != BINARY_ENTRY && name != "./livekit-server" {
            continue; // never written anywhere; tar skips its data
        }
        if kind.is_symlink() || kind.is_hard_link() {
            return Err(ExtractError::Problem(ArchiveProblem::LinkNamedBinary(name)));
        }
        if !kind.is_file() {
            return Err(ExtractError::Problem(ArchiveProblem::BinaryNotRegular(
                name,
            )));
        }
        if binary.is_some() {
            return Err(ExtractError::Problem(ArchiveProblem::DuplicateBinary));
        }
        if entry.header().size().unwrap_or(u64::MAX) > limits.max_binary {
            return Err(ExtractError::BinaryTooLarge);
        }
        binary = Some(copy_entry(&mut entry, staged, limits.max_binary, |e| {
            classify(e, true)
        })?);
    }
    let (binary_sha256, binary_size) =
        binary.ok_or(ExtractError::Problem(ArchiveProblem::MissingBinary))?;
    // The checksum covers the whole tarball: finish the gzip stream (its CRC is checked at the
    // end), then hash whatever follows it.
    let mut gz = archive.into_inner();
    io::copy(&mut gz, &mut io::sink()).map_err(|e| classify(e, true))?;
    let mut hashing = gz.into_inner();
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| classify(e, true))?;
    Ok(Extracted {
        archive_sha256: Sha256Digest(hashing.hasher.finalize().into()),
        archive_size: hashing.count,
        binary_sha256,
        binary_size,
    })
}

/// What [`extract_to_scratch`] found: the digests and sizes the install path checks, and the bytes
/// it wrote for the binary.
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScratchExtraction {
    /// SHA-256 of every byte read from the source.
    pub archive_sha256: Sha256Digest,
    /// Number of bytes read from the source.
    pub archive_size: u64,
    /// SHA-256 of the `livekit-server` entry, as the pass computed it.
    pub binary_sha256: Sha256Digest,
    /// Size of the `livekit-server` entry, as the pass counted it.
    pub binary_size: u64,
    /// What was written to the staged file.
    pub binary: Vec<u8>,
}

/// Run the install path's extraction pass over `source` with a staged file in `dir` (which must
/// exist), read back what it wrote, and drop the staged file. Errors come back as their `Debug`
/// text. A seam for the fuzz targets (`fuzz/fuzz_targets/tarball.rs`), not part of the API.
#[cfg(any(test, feature = "testing"))]
pub fn extract_to_scratch(
    source: impl Read,
    dir: &std::path::Path,
    limits: SizeLimits,
) -> Result<ScratchExtraction, String> {
    let mut staged = StagedFile::new_in(dir).map_err(|e| e.to_string())?;
    let stop = Cell::new(None);
    let out = extract_binary(source, &stop, &mut staged, limits).map_err(|e| format!("{e:?}"))?;
    staged.flush().map_err(|e| e.to_string())?;
    let binary = fs_err::read(staged.path()).map_err(|e| e.to_string())?;
    Ok(ScratchExtraction {
        archive_sha256: out.archive_sha256,
        archive_size: out.archive_size,
        binary_sha256: out.binary_sha256,
        binary_size: out.binary_size,
        binary,
    })
}

fn copy_entry(
    entry: &mut impl Read,
    staged: &mut StagedFile,
    limit: u64,
    classify: impl Fn(io::Error) -> ExtractError,
) -> Result<(Sha256Digest, u64), ExtractError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(classify(e)),
        };
        size += n as u64;
        if size > limit {
            return Err(ExtractError::BinaryTooLarge);
        }
        hasher.update(&buf[..n]);
        staged.write_all(&buf[..n]).map_err(ExtractError::Write)?;
    }
    Ok((Sha256Digest(hasher.finalize().into()), size))
}

/// A SHA-256 and size of everything `reader` yields (to verify an installed binary).
pub(crate) fn hash_reader(mut reader: impl Read) -> io::Result<(Sha256Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((Sha256Digest(hasher.finalize().into()), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tarball(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        for (name, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o755);
            // set_path refuses `..` and absolute paths; write the raw name as an attacker would.
            let raw = &mut header.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            if kind.is_symlink() || kind.is_hard_link() {
                header.set_link_name("/etc/passwd").unwrap();
            }
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    fn run(bytes: &[u8], limits: SizeLimits) -> (Result<Extracted, ExtractError>, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let mut staged = StagedFile::new_in(dir.path()).unwrap();
        let stop = Cell::new(None);
        let out = extract_binary(bytes, &stop, &mut staged, limits);
        let written = std::fs::read(staged.path()).unwrap();
        (out, written)
    }

    #[test]
    fn takes_the_binary_and_hashes_the_whole_archive() {
        let bytes = tarball(&[
            ("LICENSE", tar::EntryType::Regular, b"license"),
            (
                "./livekit-server",
                tar::EntryType::Regular,
                b"#!/bin/sh\necho hi\n",
            ),
        ]);
        let (out, written) = run(&bytes, SizeLimits::default());
        let out = out.unwrap();
        assert_eq!(written, b"#!/bin/sh\necho hi\n");
        assert_eq!(out.archive_size, bytes.len() as u64);
        assert_eq!(
            out.archive_sha256,
            Sha256Digest(Sha256::digest(&bytes).into())
        );
        assert_eq!(
            out.binary_sha256,
            Sha256Digest(Sha256::digest(&written).into())
        );
    }

    #[test]
    fn refuses_hostile_or_wrong_shapes() {
        use tar::EntryType as T;
        type Case<'a> = (Vec<(&'a str, T, &'a [u8])>, ArchiveProblem);
        let cases: Vec<Case> = vec![
            (
                vec![("../livekit-server", T::Regular, b"x")],
                ArchiveProblem::UnsafePath("../livekit-server".into()),
            ),
            (
                vec![("/livekit-server", T::Regular, b"x")],
                ArchiveProblem::UnsafePath("/livekit-server".into()),
            ),
            (
                vec![("livekit-server", T::Symlink, b"")],
                ArchiveProblem::LinkNamedBinary("livekit-server".into()),
            ),
            (
                vec![("livekit-server", T::Link, b"")],
                ArchiveProblem::LinkNamedBinary("livekit-server".into()),
            ),
            (
                vec![("livekit-server", T::Fifo, b"")],
                ArchiveProblem::SpecialFile("livekit-server".into()),
            ),
            (
                vec![("null", T::Char, b"")],
                ArchiveProblem::SpecialFile("null".into()),
            ),
            (
                vec![("livekit-server", T::Directory, b"")],
                ArchiveProblem::BinaryNotRegular("livekit-server".into()),
            ),
            (
                vec![
                    ("livekit-server", T::Regular, b"a"),
                    ("./livekit-server", T::Regular, b"b"),
                ],
                ArchiveProblem::DuplicateBinary,
            ),
            (
                vec![
                    ("LICENSE", T::Regular, b"x"),
                    ("bin/livekit-server", T::Regular, b"x"),
                ],
                ArchiveProblem::MissingBinary,
            ),
        ];
        for (entries, want) in cases {
            let (out, _) = run(&tarball(&entries), SizeLimits::default());
            match out {
                Err(ExtractError::Problem(got)) => assert_eq!(got, want),
                other => panic!("{want:?}: got {other:?}"),
            }
        }
    }

    #[test]
    fn scratch_extraction_returns_the_entry_and_leaves_nothing_behind() {
        let bytes = tarball(&[("livekit-server", tar::EntryType::Regular, b"bin")]);
        let dir = tempfile::tempdir().unwrap();
        let out = extract_to_scratch(&bytes[..], dir.path(), SizeLimits::default()).unwrap();
        assert_eq!(out.binary, b"bin");
        assert_eq!(out.binary_size, 3);
        assert_eq!(out.archive_size, bytes.len() as u64);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let err = extract_to_scratch(&b"nope"[..], dir.path(), SizeLimits::default()).unwrap_err();
        assert!(err.starts_with("NotGzip"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn html_is_not_gzip_and_limits_hold() {
        let (out, _) = run(
            b"<html><body>Not Found</body></html>",
            SizeLimits::default(),
        );
        assert!(matches!(out, Err(ExtractError::NotGzip(_))), "{out:?}");

        let bytes = tarball(&[("livekit-server", tar::EntryType::Regular, &[7u8; 4096])]);
        let small = SizeLimits {
            max_download: 100,
            max_binary: 1 << 20,
        };
        let (out, _) = run(&bytes, small);
        assert!(
            matches!(out, Err(ExtractError::Source(SourceStop::TooLarge))),
            "{out:?}"
        );
        let tight = SizeLimits {
            max_download: 1 << 20,
            max_binary: 1000,
        };
        let (out, _) = run(&bytes, tight);
        assert!(matches!(out, Err(ExtractError::BinaryTooLarge)), "{out:?}");
    }
}
