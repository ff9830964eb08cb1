//! The pinned livekit-server version.

use std::fmt;
use std::str::FromStr;

use crate::secret::InvalidValue;

/// A livekit-server release version, accepted as `v1.7.2` or `1.7.2` and validated as semver.
///
/// Anything else (paths, spaces, `..`, shell metacharacters, build metadata) is refused, so a
/// version can be put into a URL or a file name without further escaping.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LivekitVersion(semver::Version);

impl LivekitVersion {
    /// Parse `v1.7.2` or `1.7.2`.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let refuse = |why: &str| InvalidValue::new(why.to_owned(), Some(text.to_owned()));
        let bare = text.strip_prefix('v').unwrap_or(text);
        if bare.is_empty() {
            return Err(refuse("is not a version; expected e.g. v1.7.2"));
        }
        // semver allows `+build` metadata and pre-release identifiers; release tags only ever use
        // [0-9A-Za-z.-], which keeps the value safe inside URLs and paths.
        if !bare
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return Err(refuse(
                "is not a version: only digits, letters, '.' and '-' may appear (e.g. v1.7.2)",
            ));
        }
        semver::Version::parse(bare).map(Self).map_err(|e| {
            refuse(&format!(
                "is not a semantic version ({e}); expected e.g. v1.7.2"
            ))
        })
    }

    /// The semver value.
    pub fn semver(&self) -> &semver::Version {
        &self.0
    }

    /// The release tag, with its `v`: `v1.7.2`.
    pub fn tag(&self) -> String {
        format!("v{}", self.0)
    }
}

impl FromStr for LivekitVersion {
    type Err = InvalidValue;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Prints without the `v`, as release asset names and `livekit-server --version` do: `1.7.2`.
impl fmt::Display for LivekitVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for LivekitVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LivekitVersion({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_with_and_without_v() {
        assert_eq!(
            LivekitVersion::parse("v1.7.2").unwrap().to_string(),
            "1.7.2"
        );
        assert_eq!(LivekitVersion::parse("1.7.2").unwrap().tag(), "v1.7.2");
        assert_eq!(
            LivekitVersion::parse("1.8.0-rc.1").unwrap().to_string(),
            "1.8.0-rc.1"
        );
    }

    #[test]
    fn refuses_everything_else_naming_the_value() {
        for bad in [
            "",
            "v",
            "1.7",
            "latest",
            "1.7.2/../x",
            "../1.7.2",
            "1.7.2 ",
            " 1.7.2",
            "1.7.2;rm -rf",
            "1.7.2$(id)",
            "1.7.2+build",
            "vv1.7.2",
            "1..7.2",
            "01.7.2",
        ] {
            let err = LivekitVersion::parse(bad).unwrap_err();
            assert_eq!(err.value.as_deref(), Some(bad), "{bad}");
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }
}
