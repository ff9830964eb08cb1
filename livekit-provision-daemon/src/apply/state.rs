//! What the daemon keeps of its node's changes between ticks: the record in
//! `run/changes.json` (since when a change is pending, a drain in progress, what was last
//! applied), the last reading of the rooms, the key epoch, the fleet.

use std::time::{Instant, SystemTime};

use livekit_provision::rotate::Epoch;
use livekit_provision::{StateDir, fsio};
use serde::{Deserialize, Serialize};

use crate::protocol::NodeReport;
use crate::rooms::Occupancy;

/// A drain in progress: since when, until when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Drain {
    /// The draining livekit-server.
    pub pid: u32,
    /// When the SIGTERM was sent.
    #[serde(with = "livekit_provision::clock::rfc3339_serde")]
    pub since: SystemTime,
    /// When it is ended with SIGKILL if it is still running.
    #[serde(with = "livekit_provision::clock::rfc3339_serde")]
    pub until: SystemTime,
    /// Applied anyway (the deadline passed, or `restart --force`) with participants connected.
    pub forced: bool,
    /// Participants connected when it began.
    pub participants: u32,
    /// What it applies.
    pub reasons: Vec<String>,
}

/// What was last applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Applied {
    /// When livekit-server stopped for it.
    #[serde(with = "livekit_provision::clock::rfc3339_serde")]
    pub at: SystemTime,
    /// What it applied.
    pub reasons: Vec<String>,
    /// Participants connected when its drain began.
    pub participants: u32,
    /// Whether the drain had to be ended (SIGKILL): participants then reconnected.
    pub ended_by_kill: bool,
}

/// What is kept in `run/changes.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Record {
    #[serde(default, with = "livekit_provision::clock::optional_rfc3339")]
    pub(super) pending_since: Option<SystemTime>,
    #[serde(default)]
    pub(super) drain: Option<Drain>,
    #[serde(default)]
    pub(super) last_applied: Option<Applied>,
}

/// The applier's state, behind a mutex in [`Shared`].
#[derive(Debug, Default)]
pub(crate) struct Applier {
    pub(super) record: Record,
    pub(super) loaded: bool,
    /// The last reading of the node's rooms, and when; or why it failed.
    pub(super) occupancy: Option<(SystemTime, Result<Occupancy, String>)>,
    /// The restart reasons of livekit-server at the last tick.
    pub reasons: Vec<String>,
    /// The key epoch last read, and when.
    pub(super) epoch: Option<(Instant, Epoch)>,
    /// The last key-epoch step that failed, said once.
    pub(super) epoch_error: Option<String>,
    /// The store, opened once (a fleet's Redis: its coordination too); reopened after an error.
    pub(super) store: Option<std::sync::Arc<dyn livekit_provision::SecretStore>>,
    /// This node in its fleet, and the fleet as last read.
    pub(super) fleet: Fleet,
    /// The staged key the running server accepts (asked of it), for the fleet's report.
    pub(super) next_loaded: Option<String>,
}

/// This node's place in a fleet that shares a store with coordination (Redis).
#[derive(Debug, Default)]
pub(super) struct Fleet {
    /// This node's name in the fleet (`<hostname>:<port>`).
    pub node: String,
    /// The other nodes' reports, as last read.
    pub others: Vec<(String, NodeReport)>,
    /// Whether this node holds the rolling-restart lease.
    pub leased: bool,
    /// Whether the store coordinates a fleet at all.
    pub coordinated: bool,
}

impl Applier {
    /// Since when a change is pending.
    pub fn pending_since(&self) -> Option<SystemTime> {
        self.record.pending_since
    }

    /// The drain in progress.
    pub fn drain(&self) -> Option<&Drain> {
        self.record.drain.as_ref()
    }

    /// What was last applied.
    pub fn last_applied(&self) -> Option<&Applied> {
        self.record.last_applied.as_ref()
    }

    /// Read the key epoch again at the next tick (a run published, a rotation was staged).
    pub fn invalidate_epoch(&mut self) {
        self.epoch = None;
    }

    /// The key epoch last read.
    pub fn epoch(&self) -> Option<&Epoch> {
        self.epoch.as_ref().map(|(_, e)| e)
    }

    pub(super) fn load(&mut self, state: &StateDir) {
        if self.loaded {
            return;
        }
        self.loaded = true;
        let path = record_path(state);
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(record) => self.record = record,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable changes record");
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the changes record");
            }
        }
    }

    pub(super) fn save(&self, state: &StateDir) {
        let path = record_path(state);
        let bytes = match serde_json::to_vec_pretty(&self.record) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode the changes record");
                return;
            }
        };
        if let Err(e) = fsio::create_private_dir(&state.run_dir(), true)
            .and_then(|()| fsio::write_file(&path, &bytes, 0o600))
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the changes record");
        }
    }
}

pub(super) fn record_path(state: &StateDir) -> std::path::PathBuf {
    state.run_dir().join("changes.json")
}
