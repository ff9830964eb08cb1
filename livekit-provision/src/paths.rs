//! The state directory layout (docs/DESIGN.md "State directory"). Only path arithmetic here: no I/O.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Name of the state directory under `$XDG_STATE_HOME` or `~/.local/state`.
pub const STATE_DIR_NAME: &str = "livekit-provision";

/// Where Hero keeps hero_livekit's state, under the home directory (`~/hero/var/hero_livekit`).
const HERO_STATE_DIR: &str = "hero/var/hero_livekit";

/// The three rendered files, each published at a fixed path in the state directory.
/// Serialized as its file name (`"livekit.yaml"`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
pub enum ManagedFile {
    /// `livekit.yaml`, read by livekit-server.
    #[serde(rename = "livekit.yaml")]
    LivekitYaml,
    /// `backend.env`, read by lk-backend.
    #[serde(rename = "backend.env")]
    BackendEnv,
    /// `runtime.json`, read by other services.
    #[serde(rename = "runtime.json")]
    RuntimeJson,
}

impl ManagedFile {
    /// All three, in a fixed order.
    pub const ALL: [Self; 3] = [Self::LivekitYaml, Self::BackendEnv, Self::RuntimeJson];

    /// The file name at the root of the state directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::LivekitYaml => "livekit.yaml",
            Self::BackendEnv => "backend.env",
            Self::RuntimeJson => "runtime.json",
        }
    }
}

impl std::fmt::Display for ManagedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.file_name())
    }
}

/// A state directory and the fixed places inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// A state directory rooted at `root` (not created or checked here).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The default location: `$XDG_STATE_HOME/livekit-provision`, else
    /// `$HOME/.local/state/livekit-provision`. `env` is the process environment seam (the library
    /// never reads `std::env` itself). `None` when neither variable is set to an absolute path.
    pub fn default_location(env: impl Fn(&str) -> Option<OsString>) -> Option<Self> {
        let absolute = |name: &str| env(name).map(PathBuf::from).filter(|p| p.is_absolute());
        if let Some(xdg) = absolute("XDG_STATE_HOME") {
            return Some(Self::new(xdg.join(STATE_DIR_NAME)));
        }
        absolute("HOME").map(|home| Self::new(home.join(".local/state").join(STATE_DIR_NAME)))
    }

    /// The Hero layout: `$HOME/hero/var/hero_livekit`, where hero_livekit has always kept
    /// `livekit.yaml`, `backend.env` and `runtime.json` (so a host embedding the control plane,
    /// and `livekit-provision --state-dir ~/hero/var/hero_livekit`, find the files there).
    /// `env` is the process environment seam. `None` when `HOME` is not an absolute path.
    pub fn hero_location(env: impl Fn(&str) -> Option<OsString>) -> Option<Self> {
        env("HOME")
            .map(PathBuf::from)
            .filter(|home| home.is_absolute())
            .map(|home| Self::new(home.join(HERO_STATE_DIR)))
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The fixed path of a managed file (a symlink into the current generation).
    pub fn managed(&self, file: ManagedFile) -> PathBuf {
        self.root.join(file.file_name())
    }

    /// `provision.yaml`: operator-owned settings.
    pub fn settings_file(&self) -> PathBuf {
        self.root.join("provision.yaml")
    }

    /// `extra.yaml`: operator overlay merged into `livekit.yaml`.
    pub fn extra_file(&self) -> PathBuf {
        self.root.join("extra.yaml")
    }

    /// `secrets.json`: the default file secret store.
    pub fn secrets_file(&self) -> PathBuf {
        self.root.join("secrets.json")
    }

    /// `bin/`: installed binaries and their manifests.
    pub fn bin_dir(&self) -> PathBuf {
        self.root.join("bin")
    }

    /// `bin/livekit-server`: the installed binary (a symlink to a versioned file).
    pub fn livekit_bin(&self) -> PathBuf {
        self.bin_dir().join("livekit-server")
    }

    /// `run/`: pid files, the RPC socket, the lock.
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    /// `run/rpc.sock`: the daemon's JSON-RPC socket.
    pub fn rpc_socket(&self) -> PathBuf {
        self.run_dir().join("rpc.sock")
    }

    /// `run/lock`: the state-directory lock that serializes writers.
    pub fn lock_file(&self) -> PathBuf {
        self.run_dir().join("lock")
    }

    /// `run/daemon.lock`: held by the one daemon supervising this state directory.
    pub fn daemon_lock_file(&self) -> PathBuf {
        self.run_dir().join("daemon.lock")
    }

    /// `run/<name>.pid`: identity of a supervised media process.
    pub fn pid_file(&self, name: &str) -> PathBuf {
        self.run_dir().join(format!("{name}.pid"))
    }

    /// `logs/`: media process output.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// `logs/<name>.log`.
    pub fn log_file(&self, name: &str) -> PathBuf {
        self.logs_dir().join(format!("{name}.log"))
    }

    /// `backups/`: files moved aside instead of deleted.
    pub fn backups_dir(&self) -> PathBuf {
        self.root.join("backups")
    }

    /// `generations/`: published sets of the three files; the fixed paths resolve through
    /// the `current` symlink.
    pub fn generations_dir(&self) -> PathBuf {
        self.root.join("generations")
    }

    /// `current`: the symlink naming the live generation (`generations/<id>`).
    pub fn current_link(&self) -> PathBuf {
        self.root.join("current")
    }

    /// lk-backend's SQLite database (the `SQLITE_PATH` of `backend.env`).
    pub fn backend_sqlite(&self) -> PathBuf {
        self.root.join("data").join("lk-backend.sqlite")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_location_prefers_xdg_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let both = StateDir::default_location(env(&[("XDG_STATE_HOME", "/x"), ("HOME", "/h")]));
        assert_eq!(both.unwrap().root(), Path::new("/x/livekit-provision"));
        let home = StateDir::default_location(env(&[("HOME", "/h")]));
        assert_eq!(
            home.unwrap().root(),
            Path::new("/h/.local/state/livekit-provision")
        );
        let relative =
            StateDir::default_location(env(&[("XDG_STATE_HOME", "rel"), ("HOME", "/h")]));
        assert_eq!(
            relative.unwrap().root(),
            Path::new("/h/.local/state/livekit-provision")
        );
        assert!(StateDir::default_location(env(&[])).is_none());
    }

    #[test]
    fn the_hero_layout_is_under_home() {
        let env = |home: &'static str| move |k: &str| (k == "HOME").then(|| OsString::from(home));
        let hero = StateDir::hero_location(env("/home/ops")).unwrap();
        assert_eq!(hero.root(), Path::new("/home/ops/hero/var/hero_livekit"));
        assert_eq!(
            hero.managed(ManagedFile::LivekitYaml),
            Path::new("/home/ops/hero/var/hero_livekit/livekit.yaml")
        );
        assert!(StateDir::hero_location(env("relative")).is_none());
        assert!(StateDir::hero_location(|_| None).is_none());
    }
}
