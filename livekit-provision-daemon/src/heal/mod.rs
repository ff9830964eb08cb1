//! Self-healing (issue 22, docs/DESIGN.md §4.11): what each tick does, before anything else,
//! about a livekit-server that stopped serving. The health model is in
//! [`crate::supervise::Condition`]; the mechanisms are the supervisor's (a hung process replaced)
//! and the core's [`livekit_provision::hold`] (a crash-looping set taken back).
//!
//! - **Hung** (answers nothing: no TCP accept, or no HTTP answer within 2 s) for
//!   `healing.hung_after` (5 s by default): SIGKILL, so that the participants rejoin the next
//!   server, and a start after the crash backoff. While it answers nothing the tick asks it
//!   nothing more (every question would only wait). An outside supervisor's server is only
//!   reported.
//! - **Answering but not ready** (livekit-server's 406: its Redis away, its stats stale): left
//!   alone, whatever it lasts. A restart cannot bring Redis back, and would cut every call.
//! - **Serving** on the live generation with nothing pending: that generation is recorded as
//!   served ([`livekit_provision::hold::record_served`], written only when it changes).
//! - **Crash-looping** on a generation other than the one it last served on: that generation's
//!   files are published again and the bad set held back
//!   ([`livekit_provision::hold::take_back`]), once per bad generation; the crash history is
//!   forgotten and the server started on the files that served.
//! - **Its address gone**: the address it advertises (`rtc.node_ip`, as it started with it) was
//!   on an interface of this machine and is not any more (an address removed, an interface
//!   down, a DHCP lease lost): clients can no longer reach its media. Looked for every 2 s; a
//!   loud error and `alert` in `status` with what to do — no restart heals it. An address that
//!   was never local (a cloud VM's public address behind 1:1 NAT) is never alerted on.

use std::time::{Duration, Instant, SystemTime};

use livekit_provision::hold;
use livekit_provision::settings::MediaOwner;
use livekit_provision::{ErrorReport, Settings};

use crate::shared::{Event, Shared, lock};
use crate::supervise::{LIVEKIT_SERVER, started};

pub(crate) mod state;

use state::AddressWatch;

/// How often the advertised address is looked for on this machine's interfaces.
const ADDRESS_EVERY: Duration = Duration::from_secs(2);

/// Heal livekit-server (module documentation). `true` when it answers nothing: the rest of
/// the tick is skipped.
/// `server`: the running livekit-server's pid, and whether it serves what is on disk now
/// (healthy, nothing pending); `None` when it does not run.
pub(crate) fn heal(
    shared: &Shared,
    settings: &Settings,
    server: Option<(u32, bool)>,
    now: SystemTime,
) -> bool {
    let Some((pid, serves_the_disk)) = server else {
        crash_loop(shared, settings, now);
        return false;
    };
    let mut media = lock(&shared.media);
    if let Some(at) = media.heal(
        LIVEKIT_SERVER,
        settings.healing.hung_after.0,
        settings.media_owner,
    ) {
        let _ = shared.events.send(Event::RunBy(at));
        return true;
    }
    if media.unresponsive(LIVEKIT_SERVER) {
        return true;
    }
    drop(media);
    if serves_the_disk {
        served(shared, pid, now);
    }
    if !settings.use_external_ip {
        address(shared, pid, now);
    }
    false
}

/// Look for the address server `pid` advertises on this machine's interfaces (every 2 s).
fn address(shared: &Shared, pid: u32, now: SystemTime) {
    let mut heal = lock(&shared.heal);
    if heal.address.as_ref().map(|a| a.pid) != Some(pid) {
        let ip = started::read(&shared.config.state, LIVEKIT_SERVER, pid)
            .and_then(|s| s.node_ip)
            .and_then(|ip| ip.parse().ok());
        heal.address = Some(AddressWatch {
            pid,
            ip,
            checked: None,
            was_local: false,
            gone_since: None,
        });
    }
    let Some(watch) = heal.address.as_mut() else {
        return;
    };
    if watch.checked.is_some_and(|t| t.elapsed() < ADDRESS_EVERY) {
        return;
    }
    watch.checked = Some(Instant::now());
    let Some(ip) = watch
        .ip
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
    else {
        return;
    };
    let alert = if (shared.config.local_addresses)().contains(&ip) {
        watch.was_local = true;
        if watch.gone_since.take().is_some() {
            tracing::info!(%ip, "the advertised address is on an interface of this machine again");
        }
        None
    } else if watch.was_local {
        let since = *watch.gone_since.get_or_insert_with(|| {
            tracing::error!(%ip, pid, "the address livekit-server advertises (rtc.node_ip) is on no interface of this machine any more: clients cannot reach its media; set LIVEKIT_NODE_IP to an address of this machine");
            now
        });
        Some(format!(
            "it advertises {ip} (rtc.node_ip), which is on no interface of this machine since {}: clients cannot reach its media. Bring the address back, or set LIVEKIT_NODE_IP to an address of this machine (`livekit-provision secrets set LIVEKIT_NODE_IP <ip>`): the change applies at the first idle moment",
            livekit_provision::clock::rfc3339(since)
        ))
    } else {
        None
    };
    drop(heal);
    lock(&shared.media).set_alert(LIVEKIT_SERVER, alert);
}

/// Record the live generation as served by `pid`, once per server and generation.
fn served(shared: &Shared, pid: u32, now: SystemTime) {
    let state = &shared.config.state;
    let Some(generation) = hold::live_generation(state) else {
        return;
    };
    let mut heal = lock(&shared.heal);
    if heal
        .served
        .as_ref()
        .is_some_and(|(p, g)| *p == pid && *g == generation)
    {
        return;
    }
    // Tried again every tick until it is recorded (a full disk frees up), said once.
    let attempt = Some((pid, generation.clone()));
    match hold::record_served(state, &generation, now) {
        Ok(()) => heal.served = attempt,
        Err(e) if heal.served_unrecorded != attempt => {
            tracing::warn!(error = %livekit_provision::one_line(&e), "could not record the generation livekit-server serves on; tried again every second");
            heal.served_unrecorded = attempt;
        }
        Err(_) => {}
    }
}

/// A crash loop on a generation it never served on: take the set back, once per generation.
fn crash_loop(shared: &Shared, settings: &Settings, now: SystemTime) {
    if settings.media_owner == MediaOwner::External {
        return;
    }
    let Some(failed) = lock(&shared.media).crash_looping(LIVEKIT_SERVER) else {
        return;
    };
    let state = &shared.config.state;
    let live = hold::live_generation(state);
    {
        let mut heal = lock(&shared.heal);
        if heal.tried == live {
            return;
        }
        heal.tried.clone_from(&live);
    }
    let words = last_words(&failed);
    match hold::take_back(state, &words, now, |pid| {
        tracing::info!(holder = ?pid, "waiting for the state lock to take a crash-looping set back");
    }) {
        Ok(held) => {
            let action = format!(
                "livekit-server crash-looped on generation {} ({}): published the files of generation {} again, on which it served, as generation {}; generation {} is kept for inspection and not published again until an input changes",
                held.generation, held.reason, held.served, held.republished, held.generation
            );
            tracing::warn!(generation = %held.generation, served = %held.served, republished = %held.republished, reason = %held.reason, "crash loop: took the set back");
            let mut media = lock(&shared.media);
            media.healed(LIVEKIT_SERVER, action);
            media.reset(LIVEKIT_SERVER);
            drop(media);
            let _ = shared.events.send(Event::RunBy(Instant::now()));
        }
        Err(e) => {
            let report = ErrorReport::of(&e);
            tracing::warn!(error = %report, hint = ?report.hint, "crash loop: nothing to take back");
        }
    }
}

/// The server's last words: the last non-empty line of the log tail in a crash-loop report
/// (the first line when there is no tail).
fn last_words(failed: &str) -> String {
    let mut lines = failed.lines();
    let first = lines.next().unwrap_or_default();
    lines
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or(first)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_words_are_the_last_line_of_the_tail() {
        let failed = "livekit-server crashed 5 times within 10m (the last time during startup); last lines of /s/logs/livekit-server.log:\nINFO starting\nlisten tcp :7881: bind: address already in use\n\n";
        assert_eq!(
            last_words(failed),
            "listen tcp :7881: bind: address already in use"
        );
        assert_eq!(last_words("crashed 5 times"), "crashed 5 times");
    }
}
