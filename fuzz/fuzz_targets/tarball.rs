//! The install path's tarball pass on arbitrary bytes (`fetch::extract_to_scratch`).
//!
//! The first byte picks the mode: even, the rest is a tar stream that is gzip-compressed here
//! first (so the fuzzer works on the tar layer, past the gzip CRC); odd, the rest is fed as is.
//! Never panics; on success the digest and size cover every byte of the archive, the binary's
//! digest and size are those of the bytes written, and the staged file is gone afterwards.
#![no_main]

use std::io::Write;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use livekit_provision::fetch::{SizeLimits, extract_to_scratch};
use sha2::{Digest, Sha256};

const LIMITS: SizeLimits = SizeLimits {
    max_download: 1 << 20,
    max_binary: 1 << 20,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let archive = if mode % 2 == 0 {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(rest).expect("write to memory");
        gz.finish().expect("write to memory")
    } else {
        rest.to_vec()
    };
    // One scratch directory for the whole run: creating one per input costs more than the pass.
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"));
    let out = extract_to_scratch(&archive[..], dir.path(), LIMITS);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read temp dir")
        .collect();
    assert!(left.is_empty(), "the pass left files behind: {left:?}");
    let Ok(out) = out else {
        return;
    };
    assert_eq!(out.archive_size, archive.len() as u64);
    assert_eq!(
        out.archive_sha256.0,
        <[u8; 32]>::from(Sha256::digest(&archive))
    );
    assert_eq!(out.binary_size, out.binary.len() as u64);
    assert_eq!(
        out.binary_sha256.0,
        <[u8; 32]>::from(Sha256::digest(&out.binary))
    );
    assert!(out.binary_size <= LIMITS.max_binary);
});
