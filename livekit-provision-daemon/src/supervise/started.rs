//! What a media process started with, recorded next to its pid file in
//! `run/<name>.started.json` (0600, through `fsio`): the config digest and its named values
//! (secrets only as digests), the binary's identity, the node IP and the API key id — never a
//! secret. Whoever starts the process writes it (the daemon's supervisor, or
//! `livekit-provision exec` before its `execve`), so a restarted daemon still knows what an
//! adopted process runs with. [`StartedWith::changes`] compares it with what is on disk now:
//! the reasons a restart is pending.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::spec::{EnvValue, ProcessSpec};
use livekit_provision::fsio;
use livekit_provision::StateDir;

/// The identity of a binary file: its path and what changes when another file is put there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryIdentity {
    /// The program as configured.
    pub path: PathBuf,
    /// The file it resolves to (symlinks followed), when it exists.
    pub resolved: Option<PathBuf>,
    /// Device and inode of that file.
    pub dev_inode: Option<(u64, u64)>,
    /// Its size in bytes.
    pub size: Option<u64>,
    /// Its modification time, nanoseconds since the epoch.
    pub mtime_ns: Option<i128>,
}

impl BinaryIdentity {
    /// The identity of `program` now (fields `None` when it cannot be read).
    pub fn of(program: &Path) -> Self {
        let resolved = std::fs::canonicalize(program).ok();
        let meta = resolved.as_ref().and_then(|p| std::fs::metadata(p).ok());
        Self {
            path: program.to_owned(),
            dev_inode: meta.as_ref().map(|m| (m.dev(), m.ino())),
            size: meta.as_ref().map(MetadataExt::size),
            mtime_ns: meta
                .as_ref()
                .map(|m| i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())),
            resolved,
        }
    }
}

/// The config file a process reads (`--config`), as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecord {
    /// Its path.
    pub path: PathBuf,
    /// SHA-256 (hex) of its bytes; `None` when it could not be read.
    pub sha256: Option<String>,
    /// Its named values (`config_diff::named_values`), secrets only as digests.
    pub values: Option<BTreeMap<String, String>>,
}

/// What a media process started with (`run/<name>.started.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartedWith {
    /// The process this record is about (a record of another pid is stale).
    pub pid: u32,
    /// The binary.
    pub binary: BinaryIdentity,
    /// livekit-server's `livekit.yaml`; `None` for a process without `--config`.
    pub config: Option<ConfigRecord>,
    /// The node IP it advertises (`rtc.node_ip`), when it has one.
    pub node_ip: Option<String>,
    /// The API key id it accepts or uses (never the secret).
    pub api_key: Option<String>,
    /// SHA-256 (hex) of the variables the spec adds to its environment (lk-backend's
    /// `backend.env`), names and values.
    pub env_sha256: String,
}

impl StartedWith {
    /// What `spec` would start with now, for process `pid`: reads its config file and binary.
    pub fn now(spec: &ProcessSpec, pid: u32) -> Self {
        let config = config_path(spec).map(|path| {
            let bytes = std::fs::read(&path).ok();
            ConfigRecord {
                sha256: bytes
                    .as_ref()
                    .map(|b| livekit_provision::hex::encode(&Sha256::digest(b))),
                values: bytes
                    .as_ref()
                    .and_then(|b| livekit_provision::config_diff::named_values(&String::from_utf8_lossy(b))),
                path,
            }
        });
        let value = |name: &str| {
            config
                .as_ref()
                .and_then(|c| c.values.as_ref())
                .and_then(|v| v.get(name))
                .filter(|v| *v != "(unset)")
                .cloned()
        };
        let node_ip = value("rtc.node_ip");
        let api_key = value("keys")
            .and_then(|keys| keys.split(',').next().map(str::to_owned))
            .or_else(|| match spec.env.get("LIVEKIT_API_KEY") {
                Some(EnvValue::Plain(key)) => Some(key.clone()),
                _ => None,
            });
        let mut env = Sha256::new();
        for (name, value) in &spec.env {
            env.update(name.as_bytes());
            env.update([0]);
            env.update(match value {
                EnvValue::Plain(v) => v.as_bytes(),
                EnvValue::Secret(s) => s.expose().as_bytes(),
            });
            env.update([0]);
        }
        Self {
            pid,
            binary: BinaryIdentity::of(&spec.program),
            config,
            node_ip,
            api_key,
            env_sha256: livekit_provision::hex::encode(&env.finalize()),
        }
    }

    /// Why a process that started with `self` should be restarted to run with `now`, one
    /// reason each (node IP, API key, binary, livekit.yaml fields, environment). Empty when
    /// nothing changed. Never shows a secret.
    pub fn changes(&self, now: &Self) -> Vec<String> {
        let mut reasons = Vec::new();
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".to_owned());
        // With a config file, its field changes name the node IP and the key id.
        if self.config.is_none() && self.node_ip != now.node_ip {
            reasons.push(format!(
                "node IP changed: {} -> {}",
                show(&self.node_ip),
                show(&now.node_ip)
            ));
        }
        if self.config.is_none() && self.api_key != now.api_key {
            reasons.push(format!(
                "API key changed: {} -> {}",
                show(&self.api_key),
                show(&now.api_key)
            ));
        }
        if self.binary.path != now.binary.path {
            reasons.push(format!(
                "binary changed: {} -> {}",
                self.binary.path.display(),
                now.binary.path.display()
            ));
        } else if self.binary != now.binary {
            reasons.push(format!(
                "a new binary is installed at {}",
                now.binary.path.display()
            ));
        }
        if let (Some(old), Some(new)) = (&self.config, &now.config)
            && old.sha256 != new.sha256
        {
            let changes = match (&old.values, &new.values) {
                (Some(a), Some(b)) => livekit_provision::config_diff::value_changes(a, b),
                _ => vec!["livekit.yaml changed".to_owned()],
            };
            reasons.extend(changes.into_iter().map(|c| {
                if c.starts_with("livekit.yaml") {
                    c
                } else {
                    format!("livekit.yaml changed: {c}")
                }
            }));
        }
        if self.env_sha256 != now.env_sha256 && self.api_key == now.api_key {
            reasons.push("its environment (backend.env) changed".to_owned());
        }
        reasons
    }
}

/// The `--config` file of `spec`, if it has one.
fn config_path(spec: &ProcessSpec) -> Option<PathBuf> {
    let at = spec.args.iter().position(|a| a == "--config")?;
    spec.args.get(at + 1).map(PathBuf::from)
}

/// `run/<name>.started.json`.
pub fn record_path(state: &StateDir, name: &str) -> PathBuf {
    state.run_dir().join(format!("{name}.started.json"))
}

/// Record `record` for `name` (0600, atomically).
pub fn write(state: &StateDir, name: &str, record: &StartedWith) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
    bytes.push(b'\n');
    fsio::create_private_dir(&state.run_dir(), true)?;
    fsio::write_file(&record_path(state, name), &bytes, 0o600)
}

/// The record of `name` when it is about process `pid`; `None` when there is none, it is
/// about another process, or it cannot be parsed.
pub fn read(state: &StateDir, name: &str, pid: u32) -> Option<StartedWith> {
    let bytes = std::fs::read(record_path(state, name)).ok()?;
    serde_json::from_slice::<StartedWith>(&bytes)
        .ok()
        .filter(|r| r.pid == pid)
}

/// Record what `spec` starts with now for process `pid`; a failure is logged (the record
/// only serves reporting).
pub fn record_now(state: &StateDir, spec: &ProcessSpec, pid: u32) -> StartedWith {
    let record = StartedWith::now(spec, pid);
    if let Err(e) = write(state, &spec.name, &record) {
        tracing::warn!(name = %spec.name, error = %e, path = %record_path(state, &spec.name).display(), "could not record what the process started with");
    }
    record
}

/// The reasons `spec`'s running process `pid` should be restarted: its record compared with
/// now; `None` when it has no record. Reads only.
pub fn changes_since_start(state: &StateDir, spec: &ProcessSpec, pid: u32) -> Option<Vec<String>> {
    read(state, &spec.name, pid).map(|started| started.changes(&StartedWith::now(spec, pid)))
}

/// [`changes_since_start`]; a process without a record (adopted from an older version) is
/// recorded as it is now (the best that can be known) and has none.
pub fn restart_reasons(state: &StateDir, spec: &ProcessSpec, pid: u32) -> Vec<String> {
    if let Some(reasons) = changes_since_start(state, spec, pid) {
        return reasons;
    }
    record_now(state, spec, pid);
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use livekit_provision::secret::Secret;

    const YAML: &str = "port: 7880\nrtc:\n  node_ip: \"127.0.0.1\"\nkeys:\n  \"APIa\": \"secretsecretsecretsecretsecretsecret1\"\n";

    fn spec(dir: &Path, yaml: &str) -> ProcessSpec {
        let state = StateDir::new(dir);
        std::fs::write(dir.join("livekit.yaml"), yaml).unwrap();
        ProcessSpec::livekit_server(
            &state,
            PathBuf::from("/bin/sh"),
            ([127, 0, 0, 1], 7880).into(),
        )
    }

    #[test]
    fn node_ip_key_and_secret_changes_are_named_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let started = record_now(&state, &spec(dir.path(), YAML), 42);
        assert_eq!(started.node_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(started.api_key.as_deref(), Some("APIa"));
        assert_eq!(read(&state, LIVEKIT, 42), Some(started.clone()));
        assert_eq!(
            read(&state, LIVEKIT, 43),
            None,
            "another pid's record is stale"
        );
        let mode = std::fs::metadata(record_path(&state, LIVEKIT))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(record_path(&state, LIVEKIT)).unwrap();
        assert!(!text.contains("secretsecret"), "{text}");

        let same = spec(dir.path(), YAML);
        assert!(restart_reasons(&state, &same, 42).is_empty());
        let moved = spec(dir.path(), &YAML.replace("127.0.0.1", "10.0.0.9"));
        assert_eq!(
            restart_reasons(&state, &moved, 42),
            ["livekit.yaml changed: rtc.node_ip: 127.0.0.1 -> 10.0.0.9"]
        );
        let rotated = spec(
            dir.path(),
            &YAML
                .replace("APIa", "APIb")
                .replace("secretsecret", "othersecrets"),
        );
        assert_eq!(
            restart_reasons(&state, &rotated, 42),
            ["livekit.yaml changed: keys: APIa -> APIb"]
        );
        let resecret = spec(dir.path(), &YAML.replace("secretsecret", "othersecrets"));
        let reasons = restart_reasons(&state, &resecret, 42);
        assert_eq!(reasons, ["livekit.yaml changed: keys: a secret changed"]);
    }

    #[test]
    fn another_file_at_the_binary_path_is_a_new_binary() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("server");
        std::fs::write(&bin, "one").unwrap();
        let mut backend = ProcessSpec::lk_backend(
            bin.clone(),
            BTreeMap::from([(
                "LIVEKIT_API_SECRET".to_owned(),
                EnvValue::Secret(Secret::new("s1".to_owned())),
            )]),
            8081,
            super::super::HealthProbe::Tcp,
        );
        let before = StartedWith::now(&backend, 7);
        assert!(before.changes(&StartedWith::now(&backend, 7)).is_empty());
        // Replaced by a rename, as an install does: a new inode at the same path.
        let staged = dir.path().join("server.new");
        std::fs::write(&staged, "two!").unwrap();
        std::fs::rename(&staged, &bin).unwrap();
        let after = StartedWith::now(&backend, 7);
        assert_eq!(
            before.changes(&after),
            [format!("a new binary is installed at {}", bin.display())]
        );
        backend.env.insert(
            "LIVEKIT_API_SECRET".to_owned(),
            EnvValue::Secret(Secret::new("s2".to_owned())),
        );
        let reasons = after.changes(&StartedWith::now(&backend, 7));
        assert_eq!(reasons, ["its environment (backend.env) changed"]);
    }

    const LIVEKIT: &str = super::super::spec::LIVEKIT_SERVER;
}
