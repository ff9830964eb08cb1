//! What a node is made of at one moment: the operator's settings, the three managed files and the
//! livekit-server chosen to run them, read together so that whoever acts on the node next (the
//! daemon's media step after `ensure`, the CLI's `start`, `status` and `exec`) reads them once.

use std::path::Path;

use crate::binary::LivekitBinary;
use crate::config::{ConfigError, OperatorConfig};
use crate::paths::StateDir;
use crate::triple::DiskTriple;

/// The settings, the files on disk and the binary of a node, read once.
///
/// [`crate::ensure::reconcile`] returns the one its run ended with (the files as published,
/// read back under the state lock); [`NodeSnapshot::read`] reads one now. Never serialized: the
/// files hold the credentials. Its `Debug` shows no secret (the parsed files print `****`, raw
/// bytes only their length).
#[derive(Debug)]
pub struct NodeSnapshot {
    /// `provision.yaml` and `extra.yaml`.
    pub config: OperatorConfig,
    /// `livekit.yaml`, `backend.env` and `runtime.json`, parsed.
    pub disk: DiskTriple,
    /// The livekit-server to run ([`LivekitBinary::choose`] with these settings).
    pub binary: LivekitBinary,
}

impl NodeSnapshot {
    /// Read `state` now: its settings (an error when they do not load), its three files, and
    /// the binary chosen with `livekit_bin` (`--livekit-bin`) first.
    pub fn read(state: &StateDir, livekit_bin: Option<&Path>) -> Result<Self, ConfigError> {
        let config = OperatorConfig::load(state)?;
        let disk = DiskTriple::read(state);
        let binary = LivekitBinary::choose(state, &config.settings, livekit_bin);
        Ok(Self {
            config,
            disk,
            binary,
        })
    }
}
