//! Media supervision through the daemon. The media process is the livekit-server STAND-IN (not
//! the real program, which cannot be fetched here): it serves `GET /` on the configured port and,
//! like livekit-server, exits 0 when it refuses its config.

use std::os::unix::fs::PermissionsExt;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::json;

use crate::support::{Daemon, Node, alive, call, descendants, livekit_standin, poll, provisioning};

/// A node whose media is the stand-in, with a version pinned and fast restarts.
fn pid(p: u32) -> Pid {
    Pid::from_raw(p.cast_signed())
}

#[derive(Debug, Clone, Copy)]
enum Kill {
    Term,
    Pid,
    Group,
    Tree,
}

fn kill_daemon(daemon: Daemon, how: Kill) {
    let d = daemon.pid();
    match how {
        Kill::Term => daemon.signal(Signal::SIGTERM),
        Kill::Pid => daemon.signal(Signal::SIGKILL),
        // The daemon leads its own process group (see support::Node::spawn).
        Kill::Group => killpg(pid(d), Signal::SIGKILL).unwrap(),
        // As hero_proc does: walk the tree from the daemon and kill every process in it.
        Kill::Tree => {
            let tree = descendants(d);
            kill(pid(d), Signal::SIGKILL).unwrap();
            for p in tree {
                let _ = kill(pid(p), Signal::SIGKILL);
            }
        }
    }
    let (status, stderr) = daemon.wait_exit();
    if matches!(how, Kill::Term) {
        assert_eq!(status.code(), Some(0), "{stderr}");
    }
}

#[test]
fn media_survive_every_way_of_killing_the_daemon_and_are_adopted() {
    let mut node = Node::with_media(&livekit_standin());
    let mut daemon = node.start(&[]);
    let media = node.wait_media_healthy();
    let ways = [Kill::Term, Kill::Pid, Kill::Group, Kill::Tree];
    for round in 0..10 {
        let how = ways[round % ways.len()];
        assert!(
            !descendants(daemon.pid()).contains(&media),
            "the media must not be a descendant of the daemon"
        );
        kill_daemon(daemon, how);
        assert!(alive(media), "round {round}: {how:?} killed the media");
        daemon = node.start(&[]);
        assert_eq!(
            node.wait_media_healthy(),
            media,
            "round {round}: the restarted daemon adopts the same process"
        );
        poll("the run after adoption", || {
            (provisioning(&node.socket())["state"] == "ready").then_some(())
        });
        assert_eq!(node.livekit_status()["pid"], json!(media));
    }
    drop(daemon);
}

#[test]
fn a_killed_media_process_is_restarted() {
    let mut node = Node::with_media(&livekit_standin());
    let daemon = node.start(&[]);
    let first = node.wait_media_healthy();
    kill(pid(first), Signal::SIGKILL).unwrap();
    let second = poll("a new livekit-server", || {
        let s = node.livekit_status();
        let p = u32::try_from(s["pid"].as_u64()?).ok()?;
        (p != first && s["healthy"] == true).then_some(p)
    });
    node.media_pids.push(second);
    assert!(!alive(first));
    drop(daemon);
}

#[test]
fn a_crash_loop_is_reported_retried_with_a_bound_and_the_daemon_stays_up() {
    let mut node = Node::with_media(&livekit_standin());
    node.env
        .push(("STANDIN_CRASH_AFTER_MS".to_owned(), "150".to_owned()));
    let daemon = node.start(&[]);
    // Polled without `livekit_status()`, which panics while the daemon has not listed the
    // process yet (right after start): that made this test flaky.
    let livekit = || {
        let status = call(&node.socket(), "status", &json!({})).ok()?;
        status["media"]["processes"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == "livekit-server")
            .cloned()
    };
    let looping = poll("livekit-server crash-looping", || {
        livekit().filter(|p| p["condition"] == "crash-looping")
    });
    let failed = looping["failed"].as_str().unwrap_or_default();
    assert!(failed.contains("crashed"), "{looping}");
    assert!(looping["since"].is_string(), "{looping}");
    // Bounded, not given up on: it is started again after the longest backoff (200 ms here).
    let mut pids = std::collections::BTreeSet::new();
    poll("more starts after the crash loop began", || {
        if let Some(pid) = livekit().and_then(|p| p["pid"].as_u64()) {
            pids.insert(pid);
        }
        (pids.len() >= 2).then_some(())
    });
    // The daemon is fine and says so.
    let p = poll("provisioning failed", || {
        let p = provisioning(&node.socket());
        (p["state"] == "failed").then_some(p)
    });
    assert!(p["last_error"].is_string());
    call(&node.socket(), "health", &json!({})).unwrap();
    drop(daemon);
}

#[test]
fn a_config_the_server_rejects_is_reported_with_its_message() {
    // A server that does not know a key of the config it is given (as an older livekit-server
    // would refuse a newer key): the stand-in behind a wrapper that appends one. (A wrapper
    // that `exec`s the server is covered by the stand-in tests of the supervisor.)
    let scratch = tempfile::tempdir().unwrap();
    let wrapper = scratch.path().join("livekit-server");
    let bad = scratch.path().join("bad.yaml");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n{{ cat \"$2\"; echo 'bogus_key: 1'; }} > '{}'\n'{}' --config '{}'\n",
            bad.display(),
            livekit_standin().display(),
            bad.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let node = Node::with_media(&wrapper);
    let daemon = node.start(&[]);
    // Between two failed runs a retry is "running", still showing the last error: wait for a
    // failed state, then check its reason.
    let p = poll("provisioning failed", || {
        let p = provisioning(&node.socket());
        (p["state"] == "failed").then_some(p)
    });
    let reason = p["last_error"].as_str().unwrap_or_default();
    assert!(reason.contains("field bogus_key not found"), "{p}");
    assert_eq!(node.livekit_status()["running"], json!(false));
    // Exiting during every start is a crash loop too: given up on, in the same words as a
    // crash after readiness, with the server's message.
    let failed = poll("livekit-server marked failed", || {
        node.livekit_status()["failed"].as_str().map(str::to_owned)
    });
    assert!(failed.contains("crashed"), "{failed}");
    assert!(failed.contains("field bogus_key not found"), "{failed}");
    drop(daemon);
}

#[test]
fn stop_start_and_restart_calls_drive_the_media() {
    let mut node = Node::with_media(&livekit_standin());
    let daemon = node.start(&[]);
    let first = node.wait_media_healthy();
    let stopped = call(&node.socket(), "stop", &json!({ "grace_secs": 1 })).unwrap();
    assert_eq!(
        stopped["processes"][0]["running"],
        json!(false),
        "{stopped}"
    );
    assert!(!alive(first));
    // A background run leaves stopped media down.
    call(&node.socket(), "ensure", &json!({})).unwrap();
    assert_eq!(node.livekit_status()["running"], json!(false));
    call(&node.socket(), "start", &json!({})).unwrap();
    let second = node.wait_media_healthy();
    assert_ne!(second, first);
    call(&node.socket(), "restart", &json!({ "grace_secs": 1 })).unwrap();
    let third = node.wait_media_healthy();
    assert_ne!(third, second);
    assert!(!alive(second));
    drop(daemon);
}

/// The media part of `status`.
fn media_status(node: &Node) -> serde_json::Value {
    call(&node.socket(), "status", &json!({})).unwrap()["media"].clone()
}

/// Wait for the first run of a daemon just started to finish.
fn wait_ready(node: &Node) {
    poll("the first run", || {
        (provisioning(&node.socket())["state"] == "ready").then_some(())
    });
}

#[test]
fn a_stop_is_kept_across_a_daemon_restart_until_start() {
    let mut node = Node::with_media(&livekit_standin());
    let daemon = node.start(&[]);
    let first = node.wait_media_healthy();
    call(&node.socket(), "stop", &json!({ "grace_secs": 1 })).unwrap();
    assert!(!alive(first));
    let media = media_status(&node);
    assert_eq!(media["stopped_on_purpose"], true, "{media}");
    let since = media["stopped_since"].as_str().unwrap().to_owned();
    kill_daemon(daemon, Kill::Term);

    // The next daemon's runs leave them down, and its status says why and since when.
    let daemon = node.start(&[]);
    wait_ready(&node);
    call(&node.socket(), "ensure", &json!({})).unwrap();
    assert_eq!(node.livekit_status()["running"], json!(false));
    let media = media_status(&node);
    assert_eq!(media["stopped_on_purpose"], true, "{media}");
    assert_eq!(media["stopped_since"], json!(since));

    // `start` ends the hold, for this daemon and the next.
    call(&node.socket(), "start", &json!({})).unwrap();
    let second = node.wait_media_healthy();
    assert_eq!(media_status(&node)["stopped_on_purpose"], false);
    kill_daemon(daemon, Kill::Term);
    let daemon = node.start(&[]);
    wait_ready(&node);
    assert_eq!(node.wait_media_healthy(), second, "adopted, not stopped");
    drop(daemon);
}

#[test]
fn a_stop_by_the_cli_without_a_daemon_holds_the_next_daemon() {
    let mut node = Node::with_media(&livekit_standin());
    let daemon = node.start(&[]);
    let pid = node.wait_media_healthy();
    kill_daemon(daemon, Kill::Term);
    assert!(alive(pid));

    let cli = |args: &[&str]| {
        let out = std::process::Command::new(crate::support::cli())
            .arg("--state-dir")
            .arg(node.state.root())
            .args(args)
            .env_remove("LIVEKIT_PROVISION_SECRETS")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    cli(&["stop", "--grace", "1s"]);
    assert!(!alive(pid));
    let shown = cli(&["status"]);
    assert!(shown.contains("media stopped on purpose since"), "{shown}");

    let daemon = node.start(&[]);
    wait_ready(&node);
    assert_eq!(node.livekit_status()["running"], json!(false));
    assert_eq!(media_status(&node)["stopped_on_purpose"], true);
    drop(daemon);
}
