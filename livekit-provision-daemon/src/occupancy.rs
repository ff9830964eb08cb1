//! Who is in a call on this node, asked of its livekit-server with the keys of `livekit.yaml`
//! (the signing key first): what the once-a-second look ([`crate::apply`]) and the refusal of a
//! `restart` under a call ([`crate::media::participants`]) read.

use std::net::SocketAddr;
use std::time::SystemTime;

use livekit_provision::{Credentials, DiskTriple, StateDir};

use crate::rooms::{self, Occupancy};

/// The keys a running server may hold, the signing key first: those of `livekit.yaml` on disk.
pub(crate) fn candidate_keys(disk: &DiskTriple) -> Vec<Credentials> {
    let mut keys: Vec<Credentials> = disk
        .livekit_yaml
        .valid()
        .map(|y| y.keys.clone())
        .unwrap_or_default();
    if let Some(signing) = disk
        .runtime_json
        .valid()
        .map(livekit_provision::RuntimeJson::credentials)
        && let Some(at) = keys.iter().position(|k| k.key == signing.key)
    {
        let first = keys.remove(at);
        keys.insert(0, first);
    }
    keys
}

/// Who is in a call on the node whose server answers at `addr`, asked with the keys on disk.
pub(crate) fn read_occupancy(
    state: &StateDir,
    addr: SocketAddr,
    now: SystemTime,
) -> Result<Occupancy, String> {
    let disk = DiskTriple::read(state);
    let keys = candidate_keys(&disk);
    rooms::occupancy(addr, &keys, now)
        .map(|(occupancy, _)| occupancy)
        .map_err(|e| livekit_provision::ErrorReport::of(&e).to_string())
}
