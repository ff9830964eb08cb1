//! No change cuts a call: what needs livekit-server restarted waits for the node to be idle
//! (`changes:` of provision.yaml), `restart` refuses while anyone is connected unless forced, a
//! forced drain ends with SIGKILL, and a staged key is loaded at idle, verified and promoted.
//! The media are the livekit-server STAND-IN (not the real program): like livekit-server 1.13.5
//! (measured) it drains on SIGTERM — exits at once with nobody connected, else when the last
//! participant left — and answers RoomService; its stand-in-only endpoint puts participants in
//! rooms without WebRTC. The same scenarios run on the real server in e2e/tests/test_changes.py.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use livekit_provision::Credentials;
use livekit_provision::rotate::Epoch;
use livekit_provision_daemon::rooms;
use livekit_provision_daemon::supervise::health;
use serde_json::{Value, json};

use crate::support::{Node, alive, call, livekit_standin, poll};

/// A node with stand-in media that drain-poll quickly, on a known port.
fn node_with(settings: &str) -> (Node, u16) {
    let node = Node::with_media(&livekit_standin());
    let port = port_of(&node);
    node.add_settings(settings);
    (node, port)
}

fn port_of(node: &Node) -> u16 {
    let text = std::fs::read_to_string(node.state.settings_file()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("port: ")?.trim().parse().ok())
        .unwrap()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Stand-in only: `identities` in `room` (`None`: the room ends).
fn participants(port: u16, room: &str, identities: Option<&[&str]>) {
    let body = match identities {
        Some(ids) => json!({"room": room, "identities": ids}),
        None => json!({"room": room}),
    };
    let answer = health::post(
        addr(port),
        "/standin/participants",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
        Duration::from_secs(30),
        1024,
    )
    .unwrap();
    assert_eq!(answer.status, 200);
}

fn status(node: &Node) -> Value {
    call(&node.socket(), "status", &json!({})).unwrap()
}

fn server(status: &Value) -> Value {
    status["media"]["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "livekit-server")
        .cloned()
        .unwrap()
}

fn set_node_ip(node: &Node, ip: &str) {
    let mut secrets: Value =
        serde_json::from_slice(&std::fs::read(node.state.secrets_file()).unwrap()).unwrap();
    secrets["LIVEKIT_NODE_IP"] = json!(ip);
    node.secrets(&secrets);
    call(&node.socket(), "ensure", &json!({})).unwrap();
}

#[test]
fn a_pending_change_waits_for_the_room_to_empty_and_then_applies_by_itself() {
    let (mut node, port) = node_with("");
    node.env
        .push(("STANDIN_DRAIN_POLL_MS".to_owned(), "100".to_owned()));
    let _daemon = node.start(&[]);
    let first = node.wait_media_healthy();
    participants(port, "standup", Some(&["alice", "bob"]));
    set_node_ip(&node, "127.0.0.2");

    // Pending, and left alone while two people are in a call.
    let pending = poll("the change pending, with the call seen", || {
        let s = status(&node);
        (s["changes"]["pending"] == true && s["occupancy"]["participants"] == 2).then_some(s)
    });
    let applies = pending["changes"]["applies"].as_str().unwrap().to_owned();
    assert!(
        applies.contains("when the node is idle") && applies.contains("2 participants in 1 room"),
        "{applies}"
    );
    assert_eq!(
        pending["occupancy"]["rooms"][0]["identities"],
        json!(["alice", "bob"])
    );
    std::thread::sleep(Duration::from_secs(3));
    let still = status(&node);
    assert_eq!(server(&still)["pid"], json!(first), "{still}");
    assert!(alive(first));

    // The room empties: applied within seconds, by itself.
    participants(port, "standup", Some(&[]));
    let emptied = Instant::now();
    let second = poll("a new livekit-server on the new config", || {
        let s = status(&node);
        let p = server(&s);
        (p["pid"] != json!(first) && p["running"] == true && p["restart_reasons"] == json!([]))
            .then(|| p["pid"].as_u64())
            .flatten()
    });
    let took = emptied.elapsed();
    node.media_pids.push(u32::try_from(second).unwrap());
    println!("FIGURE apply-at-idle (stand-in): room emptied -> change applied in {took:.2?}");
    assert!(!alive(first));
    let after = poll("the change recorded as applied", || {
        let s = status(&node);
        (s["changes"]["pending"] == false && s["changes"]["last_applied"].is_object()).then_some(s)
    });
    let last = &after["changes"]["last_applied"];
    assert_eq!(last["participants"], json!(0), "{after}");
    assert_eq!(last["ended_by_kill"], json!(false), "{after}");
    assert!(
        last["reasons"]
            .to_string()
            .contains("rtc.node_ip: 127.0.0.1 -> 127.0.0.2"),
        "{after}"
    );
    // The exit was expected: no crash counted, the provisioning state is not failed.
    assert_ne!(after["provisioning"]["state"], json!("failed"), "{after}");
}

#[test]
fn manual_changes_wait_for_restart_which_refuses_while_anyone_is_connected() {
    let (mut node, port) = node_with("changes:\n  apply: manual\n  drain: 1s\n");
    node.env
        .push(("STANDIN_DRAIN_POLL_MS".to_owned(), "100".to_owned()));
    let _daemon = node.start(&[]);
    let first = node.wait_media_healthy();
    set_node_ip(&node, "127.0.0.2");
    poll("pending", || {
        (status(&node)["changes"]["pending"] == true).then_some(())
    });
    // Idle, but manual: never applied by itself.
    std::thread::sleep(Duration::from_secs(3));
    let s = status(&node);
    assert_eq!(server(&s)["pid"], json!(first), "{s}");
    assert!(
        s["changes"]["applies"]
            .as_str()
            .unwrap()
            .contains("only by `livekit-provision restart`"),
        "{s}"
    );

    // `restart` refuses while participants are connected, and says how many.
    participants(port, "standup", Some(&["alice", "bob", "carol"]));
    let refused = call(&node.socket(), "restart", &json!({})).unwrap_err();
    let message = refused.to_string();
    assert!(
        message.contains("3 participants are in a call"),
        "{message}"
    );
    let hint = livekit_provision::Hint::hint(&refused).unwrap_or_default();
    assert!(
        hint.contains("--force") && hint.contains("apply by themselves when the node is idle"),
        "{hint}"
    );
    assert!(alive(first));

    // Forced: livekit-server drains (the call goes on), then it is ended with SIGKILL at the
    // end of the drain (1 s), and a new one starts on the new config.
    let forced = call(&node.socket(), "restart", &json!({"force": true})).unwrap();
    assert!(forced["draining"]["until"].is_string(), "{forced}");
    assert_eq!(forced["draining"]["forced"], json!(true), "{forced}");
    assert!(alive(first), "the call goes on while it drains");
    let second = poll("a new livekit-server after the drain", || {
        let p = server(&status(&node));
        (p["pid"] != json!(first) && p["running"] == true)
            .then(|| p["pid"].as_u64())
            .flatten()
    });
    node.media_pids.push(u32::try_from(second).unwrap());
    let after = status(&node);
    let applied = &after["changes"]["last_applied"];
    assert_eq!(applied["ended_by_kill"], json!(true), "{after}");
    assert_eq!(applied["participants"], json!(3), "{after}");
    let log = std::fs::read_to_string(node.state.log_file("livekit-server")).unwrap();
    assert!(log.contains("draining"), "{log}");
    assert!(
        !log.contains("forcing stop"),
        "a second SIGTERM would tell the participants to leave: {log}"
    );
}

#[test]
fn a_staged_key_is_loaded_at_idle_verified_then_signs_and_the_grace_waits_for_the_call() {
    let (mut node, port) = node_with("");
    node.env
        .push(("STANDIN_DRAIN_POLL_MS".to_owned(), "100".to_owned()));
    let _daemon = node.start(&[]);
    let first = node.wait_media_healthy();
    let before = livekit_provision::provisioned_credentials(&node.state).unwrap();

    let rotated = call(&node.socket(), "secrets.rotate", &json!({"grace": "2s"})).unwrap();
    let next_key = rotated["staged_key"].as_str().unwrap().to_owned();
    // The idle node restarts to load it, the daemon asks the server whether it accepts it,
    // then promotes it: the signers switch.
    let now_signing = poll("the staged key promoted and signing", || {
        let creds = livekit_provision::provisioned_credentials(&node.state).ok()?;
        (creds.key.as_str() == next_key).then_some(creds)
    });
    let second = u32::try_from(server(&status(&node))["pid"].as_u64().unwrap()).unwrap();
    node.media_pids.push(second);
    assert_ne!(second, first, "the key was loaded by a restart");
    let accepted =
        |c: &Credentials| rooms::key_accepted(addr(port), c, std::time::SystemTime::now()).unwrap();
    assert!(
        accepted(&now_signing),
        "the running server accepts the key that signs"
    );
    assert!(
        accepted(&before),
        "the previous key is still accepted in its grace"
    );

    // A call in progress when the grace would end: the grace is extended (never shortened).
    participants(port, "standup", Some(&["alice"]));
    let extended = poll("the grace extended while someone is in a call", || {
        match serde_json::from_value::<Epoch>(status(&node)["keys"].clone()).ok()? {
            Epoch::Grace { until, .. }
                if until > std::time::SystemTime::now() + Duration::from_secs(30) =>
            {
                Some(until)
            }
            _ => None,
        }
    });
    assert!(accepted(&before), "not retired while the call goes on");
    println!(
        "FIGURE grace extended to {} while a participant was connected",
        livekit_provision::clock::rfc3339(extended)
    );
}

/// A fleet of two nodes sharing one real redis-server (the store, and LiveKit's routing): a
/// change pending on both is applied one node at a time — the rolling lease — each draining
/// while its call goes on, and the next one only once the first serves again.
#[test]
fn a_fleet_changes_one_node_at_a_time() {
    use crate::redis_server::{RedisConfig, RedisServer};
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(&dir.path().join("redis"), &RedisConfig::default());
    let url = redis.url("", "/0?prefix=roll:");
    let address = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut nodes: Vec<(Node, u16)> = (0..2)
        .map(|_| {
            let (mut node, port) = node_with(&format!("redis_address: {address}\n"));
            node.env
                .push(("STANDIN_DRAIN_POLL_MS".to_owned(), "100".to_owned()));
            (node, port)
        })
        .collect();
    let daemons: Vec<_> = nodes
        .iter()
        .map(|(node, _)| node.start(&["--secrets", &url]))
        .collect();
    for (node, _) in &nodes {
        call(
            &node.socket(),
            "secrets.set",
            &json!({"name": "LIVEKIT_VERSION", "value": "1.7.2"}),
        )
        .unwrap();
    }
    let first: Vec<u32> = nodes
        .iter_mut()
        .map(|(n, _)| n.wait_media_healthy())
        .collect();
    for (i, (_, port)) in nodes.iter().enumerate() {
        participants(*port, &format!("call{i}"), Some(&["alice", "bob"]));
    }
    // One change for the whole fleet: the node IP in the shared store.
    call(
        &nodes[0].0.socket(),
        "secrets.set",
        &json!({"name": "LIVEKIT_NODE_IP", "value": "127.0.0.2"}),
    )
    .unwrap();
    for (node, _) in &nodes {
        call(&node.socket(), "ensure", &json!({})).unwrap();
    }
    let draining = |node: &Node| status(node)["changes"]["draining"].is_object();
    // One node drains (its call goes on), the other waits for the lease.
    let (a, b) = poll("one node draining", || {
        match (draining(&nodes[0].0), draining(&nodes[1].0)) {
            (true, false) => Some((0, 1)),
            (false, true) => Some((1, 0)),
            (true, true) => panic!("both nodes drain at once"),
            (false, false) => None,
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !draining(&nodes[b].0),
        "the second node waits for the lease"
    );
    assert!(alive(first[a]), "the draining node's call goes on");
    assert_eq!(status(&nodes[a].0)["changes"]["rolling_lease"], json!(true));
    let fleet = status(&nodes[b].0)["changes"]["fleet"].clone();
    assert_eq!(fleet.as_array().map(Vec::len), Some(1), "{fleet}");
    assert_eq!(fleet[0]["draining"], json!(true), "{fleet}");

    // Its call ends: it restarts, serves, and hands over; then the second node goes.
    participants(nodes[a].1, &format!("call{a}"), Some(&[]));
    poll(
        "the second node draining after the first serves again",
        || {
            let s = status(&nodes[b].0);
            s["changes"]["draining"].is_object().then_some(())
        },
    );
    // (A status may answer from its last reading while the supervisor is busy: poll.)
    poll("the first node restarted on the new config", || {
        let p = server(&status(&nodes[a].0));
        (p["pid"] != json!(first[a]) && p["restart_reasons"] == json!([])).then_some(())
    });
    assert!(!draining(&nodes[a].0));
    participants(nodes[b].1, &format!("call{b}"), Some(&[]));
    for (i, (node, _)) in nodes.iter_mut().enumerate() {
        let pid = poll("every node on the new config", || {
            let p = server(&status(node));
            (p["pid"] != json!(first[i])
                && p["running"] == true
                && p["restart_reasons"] == json!([]))
            .then(|| p["pid"].as_u64())
            .flatten()
        });
        node.media_pids.push(u32::try_from(pid).unwrap());
    }
    drop(daemons);
}
