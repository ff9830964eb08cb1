//! `checksums.txt` in `sha256sum` format, and SHA-256 digests as values.

use std::fmt;
use std::str::FromStr;

/// A SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    /// Parse 64 hex digits (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        crate::hex::decode(text).map(Self)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        crate::hex::encode(&self.0)
    }
}

impl FromStr for Sha256Digest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s.trim()).ok_or_else(|| format!("{s:?} is not 64 hex digits"))
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({})", self.to_hex())
    }
}

impl serde::Serialize for Sha256Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why `checksums.txt` does not give one digest for an asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChecksumLookup {
    /// No line names the asset.
    Missing,
    /// More than one line names it.
    Repeated(usize),
    /// A line naming it is not `<64 hex>  <name>`.
    Malformed(usize),
}

impl fmt::Display for ChecksumLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("has no line"),
            Self::Repeated(n) => write!(f, "has {n} lines"),
            Self::Malformed(line) => write!(f, "has a malformed line {line}"),
        }
    }
}

/// The digest listed for `asset` in sha256sum-format text (`<hex>  <name>` or `<hex> *<name>`;
/// CRLF and blank lines tolerated). The asset must be listed exactly once.
pub fn digest_for(text: &str, asset: &str) -> Result<Sha256Digest, ChecksumLookup> {
    let mut found = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let Some((hex, rest)) = line.split_once(' ') else {
            continue;
        };
        // `<hex>  <name>` (text mode) or `<hex> *<name>` (binary mode).
        let name = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix('*'))
            .unwrap_or(rest);
        if name != asset {
            continue;
        }
        let digest = Sha256Digest::from_hex(hex).ok_or(ChecksumLookup::Malformed(index + 1))?;
        found.push(digest);
    }
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(ChecksumLookup::Missing),
        many => Err(ChecksumLookup::Repeated(many.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    #[test]
    fn finds_the_asset_in_goreleaser_format_with_crlf_and_star() {
        let text = format!(
            "{B}  livekit_1.7.2_linux_arm64.tar.gz\r\n{A}  livekit_1.7.2_linux_amd64.tar.gz\r\n\r\n"
        );
        let d = digest_for(&text, "livekit_1.7.2_linux_amd64.tar.gz").unwrap();
        assert_eq!(d.to_hex(), A);
        let star = format!("{B} *x.tar.gz\n");
        assert_eq!(
            digest_for(&star, "x.tar.gz").unwrap().to_hex(),
            B.to_lowercase()
        );
    }

    #[test]
    fn the_asset_must_be_listed_exactly_once_and_well_formed() {
        assert_eq!(
            digest_for(&format!("{A}  other\n"), "x"),
            Err(ChecksumLookup::Missing)
        );
        assert_eq!(
            digest_for(&format!("{A}  x\n{B}  x\n"), "x"),
            Err(ChecksumLookup::Repeated(2))
        );
        assert_eq!(
            digest_for("zz  x\n", "x"),
            Err(ChecksumLookup::Malformed(1))
        );
        assert_eq!(
            digest_for(&format!("{A}  x.tar.gz.sig\n"), "x.tar.gz"),
            Err(ChecksumLookup::Missing)
        );
        assert_eq!(
            digest_for("<html>not found</html>", "x"),
            Err(ChecksumLookup::Missing)
        );
    }

    #[test]
    fn hex_round_trips() {
        let d = Sha256Digest::from_hex(B).unwrap();
        assert_eq!(d.to_hex(), B.to_lowercase());
        assert!(Sha256Digest::from_hex(&A[1..]).is_none());
        assert!(Sha256Digest::from_hex(&format!("g{}", &A[1..])).is_none());
    }
}
