//! A fleet's rolling changes: each node publishes a report of itself and reads the others'
//! (the store's `Coordinator`), and with LiveKit's routing through Redis a change is applied one
//! node at a time, under a lease.

use std::time::{Duration, SystemTime};

use livekit_provision::settings::ChangePolicy;
use livekit_provision::{DiskTriple, StateDir};

use super::state::Applier;
use super::{Server, apply, begin_drain};
use crate::protocol::NodeReport;
use crate::shared::Shared;

/// The lease a node holds while it drains and restarts, so that a fleet changes one node at a
/// time.
pub(super) const ROLLING_LEASE: &str = "restart";

/// How long a report or the lease lives unless refreshed (refreshed every tick).
pub(super) const FLEET_TTL: Duration = Duration::from_secs(15);

/// The store, opened once and kept (reopened after an error).
pub(super) fn store(
    shared: &Shared,
    applier: &mut Applier,
) -> Option<std::sync::Arc<dyn livekit_provision::SecretStore>> {
    if applier.store.is_none() {
        applier.store = shared.config.store.open().ok();
    }
    applier.store.clone()
}

/// Whether livekit-server routes rooms through Redis (`redis:` in livekit.yaml): then a
/// draining node's new rooms go to the other nodes.
pub(super) fn routed(state: &StateDir) -> bool {
    DiskTriple::read(state)
        .livekit_yaml
        .valid()
        .is_some_and(|y| y.redis.is_some())
}

/// Publish this node's report to its fleet and read the others' (a store with coordination).
pub(super) fn exchange(
    shared: &Shared,
    applier: &mut Applier,
    settings: &livekit_provision::Settings,
    server: &Server,
    participants: Option<u32>,
) {
    let Some(store) = store(shared, applier) else {
        return;
    };
    let Some(coordinator) = store.coordinator() else {
        applier.fleet.coordinated = false;
        return;
    };
    applier.fleet.coordinated = true;
    if applier.fleet.node.is_empty() {
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "node".to_owned());
        applier.fleet.node = format!("{host}:{}", settings.port);
    }
    let report = NodeReport {
        serving: server.healthy && applier.drain().is_none(),
        draining: applier.drain().is_some(),
        participants,
        version: crate::status::installed_version(&shared.config.state),
        next_loaded: applier.next_loaded.clone(),
        pending: !server.reasons.is_empty(),
    };
    let node = applier.fleet.node.clone();
    let published = serde_json::to_string(&report)
        .map_err(|e| e.to_string())
        .and_then(|json| {
            coordinator
                .report(&node, &json, FLEET_TTL)
                .map_err(|e| livekit_provision::one_line(&e))
        });
    let read = coordinator
        .reports()
        .map_err(|e| livekit_provision::one_line(&e));
    match (published, read) {
        (Ok(()), Ok(reports)) => {
            applier.fleet.others = reports
                .into_iter()
                .filter(|(name, _)| *name != node)
                .filter_map(|(name, json)| Some((name, serde_json::from_str(&json).ok()?)))
                .collect();
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "cannot reach the fleet's store; changes wait");
            applier.store = None;
            applier.fleet.others.clear();
        }
    }
}

/// A fleet's rolling change: one node at a time (the lease), each draining — its calls go on,
/// new rooms go to the other nodes — and restarting when they end (or at the drain's end).
pub(super) fn roll(
    shared: &Shared,
    applier: &mut Applier,
    policy: &ChangePolicy,
    server: &Server,
    participants: Option<u32>,
    now: SystemTime,
) {
    let state = &shared.config.state;
    let Some(store) = store(shared, applier) else {
        return;
    };
    let Some(coordinator) = store.coordinator() else {
        return;
    };
    let node = applier.fleet.node.clone();
    if applier.fleet.leased {
        let done = applier.drain().is_none() && server.reasons.is_empty() && server.healthy;
        if done {
            // Serving again on the new config: the next node may go.
            if let Err(e) = coordinator.release(ROLLING_LEASE, &node) {
                tracing::warn!(error = %livekit_provision::one_line(&e), "could not release the rolling lease (it expires by itself)");
            }
            applier.fleet.leased = false;
            tracing::info!(node = %node, "serving on the new config; the next node of the fleet may go");
            return;
        }
        match coordinator.lease(ROLLING_LEASE, &node, FLEET_TTL) {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(node = %node, "the rolling lease was lost; waiting to take it again");
                applier.fleet.leased = false;
            }
            Err(e) => {
                tracing::warn!(error = %livekit_provision::one_line(&e), "could not renew the rolling lease");
            }
        }
    }
    if applier.drain().is_some() {
        // Ended as on a single node: the server left, or the drain reached its end.
        apply(shared, applier, policy, server, participants, now);
        return;
    }
    if server.reasons.is_empty() {
        if applier.record.pending_since.take().is_some() {
            applier.save(state);
        }
        return;
    }
    let since = *applier.record.pending_since.get_or_insert(now);
    applier.save(state);
    // The policy's time (a window, manual) holds for a fleet too. Being idle is not needed
    // while another node serves: the calls go on through the drain and the other nodes take the
    // new rooms. With no other node serving, this node waits for idle like a node alone.
    let others_serving = applier.fleet.others.iter().any(|(_, r)| r.serving);
    let busy = if others_serving {
        0
    } else {
        participants.unwrap_or(u32::MAX)
    };
    if policy.decide(now, since, busy).is_none() {
        return;
    }
    match coordinator.lease(ROLLING_LEASE, &node, FLEET_TTL) {
        Ok(true) => {
            applier.fleet.leased = true;
            if let Err(e) = begin_drain(
                shared,
                applier,
                server.pid,
                server.reasons.clone(),
                policy.drain.0,
                false,
                participants.unwrap_or(0),
                now,
            ) {
                tracing::warn!(error = %e.message, "could not drain for the rolling change");
            }
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %livekit_provision::one_line(&e), "could not take the rolling lease");
        }
    }
}
