//! `digest_for` on arbitrary `checksums.txt` text. The first line of the input names the asset,
//! the rest is the file. Never panics; a digest it returns is listed in the text; a well-formed
//! line for the asset is always found; `Sha256Digest` hex round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livekit_provision::fetch::{ChecksumLookup, Sha256Digest, digest_for};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (asset, text) = input.split_once('\n').unwrap_or((input, ""));

    match digest_for(text, asset) {
        Ok(digest) => {
            let hex = digest.to_hex();
            assert!(
                text.to_ascii_lowercase().contains(&hex),
                "{hex} is not in the text"
            );
        }
        Err(ChecksumLookup::Malformed(line)) => assert!(line >= 1, "line numbers are 1-based"),
        Err(ChecksumLookup::Repeated(count)) => assert!(count >= 2, "repeated {count} times"),
        Err(ChecksumLookup::Missing) => {}
    }

    // Any 64-hex-digit prefix of a line parses and prints back in lowercase.
    for line in text.lines() {
        if let Some(d) = line.get(..64).and_then(Sha256Digest::from_hex) {
            assert_eq!(d.to_hex(), line[..64].to_ascii_lowercase());
            assert_eq!(Sha256Digest::from_hex(&d.to_hex()), Some(d));
        }
    }

    // A sha256sum line for the asset (either mode) is found, whatever the asset's name, as long
    // as the name fits on one line.
    if !asset.contains(['\n', '\r']) {
        let digest = Sha256Digest(sha2_of(text.as_bytes()));
        for sep in ["  ", " *"] {
            let file = format!("{}{sep}{asset}\n", digest.to_hex());
            assert_eq!(digest_for(&file, asset), Ok(digest), "{file:?}");
        }
    }
});

fn sha2_of(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}
