//! A published set taken back because livekit-server crash-looped on it (issue 22,
//! docs/DESIGN.md §4.11).
//!
//! A config can pass every check — ours, and livekit-server's own parse (`server_check`) — and
//! still make the server exit at every start: an `rtc_tcp_port` that a foreign process holds
//! (measured on 1.13.5: `listen tcp :PORT: bind: address already in use`, exit 0 within
//! 0.25 s). When the control plane sees livekit-server crash-loop on files it published, it
//! [`take_back`]s: the files of the last generation the server **served** on (recorded by
//! [`record_served`]) are published again as a new generation, and the bad set is **held**:
//!
//! - `run/held.json` records which generation was taken back, the digest of its three files,
//!   the generation republished in its place, since when and why (the server's last words);
//! - [`crate::ensure()`] never publishes the held set again (a warning says why): a rerun, a
//!   restart of the control plane or the operator's `ensure` cannot bring the loop back;
//! - the hold ends by itself when the files as rendered now differ from the held ones — the
//!   operator changed an input — and those are published as usual;
//! - the bad generation stays in `generations/` for inspection (pruning keeps the newest five).
//!
//! Never across a key change: when the two generations' `keys:` differ, taking back would
//! un-publish a key tokens may be signed with (or re-publish a retired one), so nothing is
//! taken back and the server stays crash-looping, reported.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fsio;
use crate::paths::{ManagedFile, StateDir};
use crate::publish::{self, GenerationId, PublishOptions, PublishOutcome, StateLock, read_current};
use crate::render::Rendered;

/// A set taken back (`run/held.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Held {
    /// The generation livekit-server crash-looped on.
    pub generation: String,
    /// SHA-256 (hex) of its three files: rendering these exact files again is refused.
    pub digest: String,
    /// The generation it served on before, whose files were published again.
    pub served: String,
    /// The new generation holding them.
    pub republished: String,
    /// When (RFC 3339, UTC).
    pub since: String,
    /// Why, in one line: the server's last words.
    pub reason: String,
}

/// The generation livekit-server last served on (`run/served.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Served {
    generation: String,
    at: String,
}

/// Why a set could not be taken back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HoldError {
    /// The live files are the ones served on: nothing to take back to (the cause is not in
    /// them: a foreign process on a port, a missing library…).
    #[error(
        "livekit-server crash-loops on the files it last served on (generation {0}): the cause is not in them"
    )]
    SameGeneration(String),
    /// No generation is known to have served.
    #[error("no generation is known to have served, so there is nothing to go back to")]
    NeverServed,
    /// The two generations hold different keys.
    #[error(
        "generation {served} holds other API keys than {current}: going back would un-publish a key tokens may be signed with"
    )]
    KeysDiffer {
        /// The live generation.
        current: String,
        /// The one served on.
        served: String,
    },
    /// A file could not be read or written.
    #[error("could not {op} {}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Publishing the served files failed.
    #[error(transparent)]
    Publish(#[from] crate::publish::PublishError),
}

impl crate::error_chain::Hint for HoldError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::SameGeneration(_) | Self::NeverServed => Some(
                "read the last lines of logs/livekit-server.log: a port held by another process (`ss -ltnp`), a full disk or a missing file are the usual causes".to_owned(),
            ),
            Self::KeysDiffer { .. } => Some(
                "fix the setting that makes livekit-server exit (logs/livekit-server.log says which), then `livekit-provision ensure`".to_owned(),
            ),
            _ => None,
        }
    }
}

fn held_path(state: &StateDir) -> PathBuf {
    state.run_dir().join("held.json")
}

fn served_path(state: &StateDir) -> PathBuf {
    state.run_dir().join("served.json")
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = fsio::read_regular(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), HoldError> {
    let io = |op| {
        move |source| HoldError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    };
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| io("encode")(e.into()))?;
    if let Some(dir) = path.parent() {
        fsio::create_private_dir(dir, true).map_err(io("create"))?;
    }
    fsio::write_file(path, &bytes, 0o600).map_err(io("write"))
}

/// The set held back, if one is.
pub fn held(state: &StateDir) -> Option<Held> {
    read_json(&held_path(state))
}

/// SHA-256 (hex) of a set's three files, in [`ManagedFile::ALL`] order, each length-prefixed.
pub(crate) fn digest(rendered: &Rendered) -> String {
    let mut hash = Sha256::new();
    for file in ManagedFile::ALL {
        let text = rendered.get(file).as_bytes();
        hash.update((text.len() as u64).to_be_bytes());
        hash.update(text);
    }
    crate::hex::encode(&hash.finalize())
}

/// What [`crate::ensure()`] does with `rendered` given the hold: `Some(held)` when `rendered` is
/// the held set (not to be published); `None` otherwise, after ending a hold whose inputs
/// changed (unless `dry_run`: then nothing is written).
pub(crate) fn holds_back(state: &StateDir, rendered: &Rendered, dry_run: bool) -> Option<Held> {
    let held = held(state)?;
    if held.digest == digest(rendered) {
        return Some(held);
    }
    if !dry_run {
        match fsio::remove_file(&held_path(state)) {
            Ok(()) => {
                tracing::info!(generation = %held.generation, "the inputs changed: the held set is no longer held back");
            }
            Err(e) => tracing::warn!(error = %e, "could not end the hold"),
        }
    }
    None
}

/// The live generation, from the `current` link alone (one `readlink`, no file read).
pub fn live_generation(state: &StateDir) -> Option<String> {
    let target = std::fs::read_link(state.current_link()).ok()?;
    let name = target.file_name()?.to_str()?;
    GenerationId::parse(name).map(|g| g.to_string())
}

/// Record that livekit-server serves on generation `generation` (written only when it changed).
pub fn record_served(state: &StateDir, generation: &str, now: SystemTime) -> Result<(), HoldError> {
    if read_json::<Served>(&served_path(state)).is_some_and(|s| s.generation == generation) {
        return Ok(());
    }
    write_json(
        &served_path(state),
        &Served {
            generation: generation.to_owned(),
            at: crate::clock::rfc3339(now),
        },
    )
}

/// The generation livekit-server last served on, and when that was recorded.
pub fn served(state: &StateDir) -> Option<(String, String)> {
    read_json::<Served>(&served_path(state)).map(|s| (s.generation, s.at))
}

/// Take the live set back: publish the files of the generation livekit-server last served on
/// as a new generation, and hold the live one (module documentation). `reason` is why (the
/// server's last words, one line). Under the state lock.
pub fn take_back(
    state: &StateDir,
    reason: &str,
    now: SystemTime,
    on_lock_wait: impl FnOnce(Option<u32>),
) -> Result<Held, HoldError> {
    let lock = StateLock::acquire(state, on_lock_wait)?;
    let live = read_current(state);
    let current = live.generation().ok_or(HoldError::NeverServed)?;
    let (served, _) = served(state).ok_or(HoldError::NeverServed)?;
    let served_id = GenerationId::parse(&served).ok_or(HoldError::NeverServed)?;
    if served_id == current {
        return Err(HoldError::SameGeneration(served));
    }
    let bad = read_generation(state, current)?;
    let good = read_generation(state, served_id)?;
    if keys(&bad.livekit_yaml) != keys(&good.livekit_yaml) {
        return Err(HoldError::KeysDiffer {
            current: current.to_string(),
            served,
        });
    }
    let outcome = publish::publish(
        state,
        &lock,
        &good,
        &PublishOptions {
            now,
            ..PublishOptions::default()
        },
    )?;
    let republished = match outcome {
        PublishOutcome::Published { generation, .. } => generation.to_string(),
        _ => current.to_string(),
    };
    let held = Held {
        generation: current.to_string(),
        digest: digest(&bad),
        served,
        republished,
        since: crate::clock::rfc3339(now),
        reason: reason.lines().next().unwrap_or_default().trim().to_owned(),
    };
    write_json(&held_path(state), &held)?;
    Ok(held)
}

/// The three files of generation `id`.
fn read_generation(state: &StateDir, id: GenerationId) -> Result<Rendered, HoldError> {
    let dir = state.generations_dir().join(id.to_string());
    let read = |file: ManagedFile| {
        let path = dir.join(file.file_name());
        fsio::read_text(&path)
            .map(|text| text.to_string())
            .map_err(|source| HoldError::Io {
                op: "read",
                path,
                source,
            })
    };
    Ok(Rendered {
        livekit_yaml: read(ManagedFile::LivekitYaml)?,
        backend_env: read(ManagedFile::BackendEnv)?,
        runtime_json: read(ManagedFile::RuntimeJson)?,
    })
}

/// The `keys:` of a livekit.yaml, as YAML (an unparsable file has none).
fn keys(livekit_yaml: &str) -> Option<serde_yaml::Value> {
    let doc: serde_yaml::Value = serde_yaml::from_str(livekit_yaml).ok()?;
    doc.get("keys").cloned()
}
