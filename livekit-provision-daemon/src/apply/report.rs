//! What `status` says of the node's calls and its pending changes, with and without a daemon.

use std::time::SystemTime;

use livekit_provision::StateDir;
use livekit_provision::clock::rfc3339;
use livekit_provision::settings::ChangePolicy;

use super::state::Applier;
use crate::occupancy::read_occupancy;
use crate::protocol::{AppliedReport, ChangesReport, DrainReport, FleetMember, OccupancyReport};
use crate::rooms::Occupancy;
use crate::supervise::probe_address;

pub(super) fn occupancy_report(
    (at, reading): &(SystemTime, Result<Occupancy, String>),
) -> OccupancyReport {
    match reading {
        Ok(o) => OccupancyReport {
            checked_at: rfc3339(*at),
            participants: Some(o.participants),
            rooms: o.rooms.clone(),
            error: None,
        },
        Err(e) => OccupancyReport {
            checked_at: rfc3339(*at),
            participants: None,
            rooms: Vec::new(),
            error: Some(e.clone()),
        },
    }
}

pub(super) fn changes_report(
    policy: &ChangePolicy,
    applier: &Applier,
    daemon: bool,
    now: SystemTime,
) -> ChangesReport {
    let pending = !applier.reasons.is_empty();
    let since = applier.pending_since().filter(|_| pending);
    let draining = applier.drain().map(|d| DrainReport {
        since: rfc3339(d.since),
        until: rfc3339(d.until),
        forced: d.forced,
        reasons: d.reasons.clone(),
    });
    let deadline_at = since.and_then(|s| policy.deadline.map(|d| s + d.0));
    let next_chance = since.and_then(|s| policy.next_chance(now, s));
    let in_words = pending.then(|| {
        if daemon {
            applies_in_words(policy, applier, deadline_at, now)
        } else {
            "only by `livekit-provision restart` while no daemon runs (a daemon applies it by itself by the policy of provision.yaml, changes:)".to_owned()
        }
    });
    let fleet = applier.fleet.coordinated.then(|| {
        let mut members: Vec<FleetMember> = applier
            .fleet
            .others
            .iter()
            .map(|(node, report)| FleetMember {
                node: node.clone(),
                this_node: false,
                report: report.clone(),
            })
            .collect();
        members.sort_by(|a, b| a.node.cmp(&b.node));
        members
    });
    ChangesReport {
        fleet,
        rolling_lease: applier.fleet.coordinated.then_some(applier.fleet.leased),
        policy: policy.clone(),
        pending,
        reasons: applier.reasons.clone(),
        pending_since: since.map(rfc3339),
        applies: in_words,
        next_chance: next_chance.filter(|_| daemon).map(rfc3339),
        deadline_at: deadline_at.filter(|_| daemon).map(rfc3339),
        draining,
        last_applied: applier.last_applied().map(|a| AppliedReport {
            at: rfc3339(a.at),
            reasons: a.reasons.clone(),
            participants: a.participants,
            ended_by_kill: a.ended_by_kill,
        }),
    }
}

pub(super) fn applies_in_words(
    policy: &ChangePolicy,
    applier: &Applier,
    deadline_at: Option<SystemTime>,
    now: SystemTime,
) -> String {
    use livekit_provision::settings::ApplyMode;
    if let Some(d) = applier.drain() {
        return format!(
            "now: livekit-server drains (no new rooms) and restarts when its calls end, at the latest {} (then its participants reconnect)",
            rfc3339(d.until)
        );
    }
    let people = match &applier.occupancy {
        Some((_, Ok(o))) if o.participants == 0 => "the node is idle now".to_owned(),
        Some((_, Ok(o))) => format!(
            "{} participant{} in {} room{} now",
            o.participants,
            if o.participants == 1 { "" } else { "s" },
            o.rooms.len(),
            if o.rooms.len() == 1 { "" } else { "s" }
        ),
        _ => "who is connected is unknown now".to_owned(),
    };
    let mode = match (policy.apply, policy.window) {
        (ApplyMode::Idle, _) => format!("when the node is idle ({people})"),
        (ApplyMode::Window, Some(w)) => {
            let open = if w.contains(now) {
                "open now"
            } else {
                "closed now"
            };
            format!("when the node is idle inside the window {w} UTC ({open}; {people})")
        }
        (ApplyMode::Window, None) => format!("never by itself ({people})"),
        (ApplyMode::Manual, _) => {
            format!("only by `livekit-provision restart` (changes.apply: manual; {people})")
        }
    };
    match deadline_at {
        Some(at) => format!(
            "{mode}; at {} anyway, after a drain of at most {}",
            rfc3339(at),
            humantime::format_duration(policy.drain.0)
        ),
        None => mode,
    }
}

/// The same without a daemon (the CLI's `status`): the record a daemon left in the state
/// directory, `reasons` as the CLI found them, the rooms asked of the server when it runs.
pub(crate) fn report_without_daemon(
    state: &StateDir,
    settings: &livekit_provision::Settings,
    reasons: Vec<String>,
    running: bool,
    now: SystemTime,
) -> (Option<OccupancyReport>, Option<ChangesReport>) {
    let mut applier = Applier::default();
    applier.load(state);
    applier.reasons = reasons;
    if running {
        let addr = probe_address(&settings.bind_addresses, settings.port);
        applier.occupancy = Some((now, read_occupancy(state, addr, now)));
    }
    let occupancy = applier.occupancy.as_ref().map(occupancy_report);
    (
        occupancy,
        Some(changes_report(&settings.changes, &applier, false, now)),
    )
}
