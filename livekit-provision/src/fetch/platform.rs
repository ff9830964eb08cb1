//! Which release asset fits this machine. Detection is a value ([`Platform`]) so tests can ask
//! for any platform.

use std::fmt;

/// An operating system and CPU architecture, as `std::env::consts` names them (`linux`,
/// `x86_64`), except that 32-bit ARM with ARMv7 is `armv7` (plain `arm` means older ARM).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Platform {
    os: String,
    arch: String,
}

impl Platform {
    /// A platform by name, e.g. `Platform::new("linux", "aarch64")`.
    pub fn new(os: impl Into<String>, arch: impl Into<String>) -> Self {
        Self {
            os: os.into(),
            arch: arch.into(),
        }
    }

    /// The platform this program was compiled for.
    pub fn current() -> Self {
        let arch = if cfg!(all(target_arch = "arm", target_feature = "v7")) {
            "armv7"
        } else {
            std::env::consts::ARCH
        };
        Self::new(std::env::consts::OS, arch)
    }

    /// The operating system name.
    pub fn os(&self) -> &str {
        &self.os
    }

    /// The architecture name.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// The architecture as livekit's release assets name it (`amd64`, `arm64`, `armv7`), or
    /// `None` when livekit publishes no Linux tarball for this platform.
    pub fn asset_arch(&self) -> Option<&'static str> {
        if self.os != "linux" {
            return None;
        }
        match self.arch.as_str() {
            "x86_64" => Some("amd64"),
            "aarch64" => Some("arm64"),
            "armv7" => Some("armv7"),
            _ => None,
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_linux_architectures_and_refuses_the_rest() {
        assert_eq!(Platform::new("linux", "x86_64").asset_arch(), Some("amd64"));
        assert_eq!(
            Platform::new("linux", "aarch64").asset_arch(),
            Some("arm64")
        );
        assert_eq!(Platform::new("linux", "armv7").asset_arch(), Some("armv7"));
        for (os, arch) in [
            ("linux", "arm"),
            ("linux", "riscv64"),
            ("macos", "aarch64"),
            ("macos", "x86_64"),
            ("windows", "x86_64"),
            ("freebsd", "x86_64"),
        ] {
            assert_eq!(Platform::new(os, arch).asset_arch(), None, "{os}/{arch}");
        }
    }

    #[test]
    fn current_is_linux_x86_64_or_aarch64_here() {
        let here = Platform::current();
        assert_eq!(here.os(), std::env::consts::OS);
        assert!(!here.arch().is_empty());
    }
}
