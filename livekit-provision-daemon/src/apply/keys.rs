//! The key epochs a daemon drives: promote a staged key once the running server (and, in a
//! fleet, every node's) accepts it; keep the previous key accepted while the node has
//! participants near the end of its grace.

use std::time::{Duration, Instant, SystemTime};

use livekit_provision::DiskTriple;
use livekit_provision::rotate::{self, Epoch, GraceExtension};

use super::Server;
use super::fleet::store;
use crate::rooms;
use crate::shared::{Event, Shared, lock};

/// How long before its end a grace is extended while the node has participants, and by how
/// much.
pub(super) const GRACE_MARGIN: Duration = Duration::from_secs(60);

/// How often the key epoch is read from the store when nothing is staged (the store may be
/// remote): every tick while a rotation is under way.
pub(super) const EPOCH_EVERY: Duration = Duration::from_secs(10);

/// Step 4 of the module documentation: promote a staged key the server has loaded; extend a
/// grace while the node has participants.
pub(super) fn keys(shared: &Shared, server: &Server, participants: Option<u32>, now: SystemTime) {
    let due = {
        let applier = lock(&shared.applier);
        match &applier.epoch {
            None | Some((_, Epoch::Staged { .. } | Epoch::Grace { .. })) => true,
            Some((at, _)) => at.elapsed() >= EPOCH_EVERY,
        }
    };
    if !due {
        return;
    }
    let Some(store) = store(shared, &mut lock(&shared.applier)) else {
        lock(&shared.store_health).failed(now, "the secret store cannot be opened".to_owned());
        return epoch_failed(shared, "the secret store cannot be opened");
    };
    let epoch = match rotate::epoch(store.as_ref(), now) {
        Ok(epoch) => epoch,
        Err(e) => {
            crate::shared::probe_store(shared, now);
            return epoch_failed(shared, &livekit_provision::ErrorReport::of(&e).to_string());
        }
    };
    if lock(&shared.store_health).ok(now) {
        // Back: provision now rather than at the next retry of a run that failed meanwhile.
        let _ = shared.events.send(Event::RunBy(Instant::now()));
    }
    lock(&shared.applier).epoch = Some((Instant::now(), epoch.clone()));
    match epoch {
        Epoch::Staged { next_key, .. } => {
            promote_if_loaded(shared, store.as_ref(), server, &next_key, now);
        }
        Epoch::Grace {
            until,
            previous_key,
            ..
        } => {
            let occupied = participants != Some(0);
            let far = until
                .duration_since(now)
                .is_ok_and(|left| left > GRACE_MARGIN);
            if occupied && !far {
                extend(shared, store.as_ref(), &previous_key, participants, now);
            }
        }
        _ => {}
    }
}

pub(super) fn lock_wait(pid: Option<u32>) {
    tracing::info!(?pid, "waiting for another writer of the state directory");
}

/// Promote `next_key` once the running server (and, in a fleet, every node's) accepts it.
pub(super) fn promote_if_loaded(
    shared: &Shared,
    store: &dyn livekit_provision::SecretStore,
    server: &Server,
    next_key: &str,
    now: SystemTime,
) {
    let config = &shared.config;
    let disk = DiskTriple::read(&config.state);
    let Some(next) = disk
        .livekit_yaml
        .valid()
        .and_then(|y| y.keys.iter().find(|k| k.key.as_str() == next_key).cloned())
    else {
        return; // not rendered yet: the next run lists it
    };
    match rooms::key_accepted(server.addr, &next, now) {
        Ok(true) => {}
        // Not loaded yet (a restart at idle loads it), or restarting: asked again next tick.
        Ok(false) | Err(rooms::RoomsError::Unreachable { .. }) => return,
        Err(e) => {
            return epoch_failed(shared, &livekit_provision::ErrorReport::of(&e).to_string());
        }
    }
    {
        let mut applier = lock(&shared.applier);
        // Reported to the fleet: this node's server accepts the staged key.
        applier.next_loaded = Some(next_key.to_owned());
        // Every node of the fleet must have loaded it before anything signs with it.
        let waiting: Vec<&str> = applier
            .fleet
            .others
            .iter()
            .filter(|(_, r)| r.next_loaded.as_deref() != Some(next_key))
            .map(|(name, _)| name.as_str())
            .collect();
        if !waiting.is_empty() {
            tracing::debug!(
                ?waiting,
                "the staged key waits for the other nodes to load it"
            );
            return;
        }
    }
    match rotate::promote(&config.state, store, now, lock_wait) {
        Ok(_) => {
            let mut applier = lock(&shared.applier);
            applier.next_loaded = None;
            applier.epoch = None;
            drop(applier);
            tracing::info!(key = %next_key, "livekit-server accepts the staged key: promoted; the signers switch to it");
            let _ = shared.events.send(Event::Ensure(None));
        }
        Err(e) => epoch_failed(shared, &livekit_provision::ErrorReport::of(&e).to_string()),
    }
}

/// The node has participants near the end of a grace: keep the previous key accepted longer.
pub(super) fn extend(
    shared: &Shared,
    store: &dyn livekit_provision::SecretStore,
    previous_key: &str,
    participants: Option<u32>,
    now: SystemTime,
) {
    match rotate::extend_grace(
        &shared.config.state,
        store,
        now + 2 * GRACE_MARGIN,
        now,
        lock_wait,
    ) {
        Ok(GraceExtension::Extended { until, at_deadline }) => {
            tracing::info!(key = %previous_key, until = %livekit_provision::clock::rfc3339(until), at_deadline, participants = ?participants, "the node has participants: the previous key stays accepted longer");
            lock(&shared.applier).epoch = None;
        }
        Ok(_) => {}
        Err(e) => epoch_failed(shared, &livekit_provision::ErrorReport::of(&e).to_string()),
    }
}

pub(super) fn epoch_failed(shared: &Shared, message: &str) {
    let mut applier = lock(&shared.applier);
    if applier.epoch_error.as_deref() != Some(message) {
        tracing::warn!(error = %message, "key epoch step failed; tried again next tick");
        applier.epoch_error = Some(message.to_owned());
    }
}
