//! `secrets list|get|set|rotate`.

use std::time::{Duration, SystemTime};

use insta::assert_snapshot;
use livekit_provision_daemon::protocol::{RotateResult, SecretsSetResult};

use crate::support::Node;

#[test]
fn list_redacts_secrets_and_shows_the_rest() {
    let node = Node::converged();
    node.run(&["secrets", "set", "LIVEKIT_NODE_IP", "10.0.0.5"])
        .ok();
    let out = node.run(&["secrets", "list"]).ok();
    node.settings().bind(|| {
        assert_snapshot!(out.stdout, @r"
        LIVEKIT_VERSION                  (not set)
        LIVEKIT_NODE_IP                  10.0.0.5
        LIVEKIT_API_KEY                  [KEY]
        LIVEKIT_API_SECRET               ****
        LIVEKIT_REDIS_ADDRESS            (not set)
        LIVEKIT_REDIS_PASSWORD           (not set)
        LIVEKIT_REDIS_SENTINEL_PASSWORD  (not set)
        LIVEKIT_PROMETHEUS_PASSWORD      (not set)
        LIVEKIT_SHA256                   (not set)
        LIVEKIT_API_KEY_PREVIOUS         (not set)
        LIVEKIT_API_SECRET_PREVIOUS      (not set)
        LIVEKIT_ROTATION_GRACE_UNTIL     (not set)
        ");
        assert_snapshot!(out.stderr, @"store: file:[TMP]/state/secrets.json");
    });
    let json: serde_json::Value =
        serde_json::from_str(&node.run(&["secrets", "list", "--json"]).ok().stdout).unwrap();
    let secret = json["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "LIVEKIT_API_SECRET")
        .unwrap();
    assert_eq!(secret["value"], "****");
    assert_eq!(secret["set"], true);
}

#[test]
fn get_prints_exactly_the_stored_value() {
    let node = Node::converged();
    let out = node.run(&["secrets", "get", "LIVEKIT_API_SECRET"]).ok();
    assert_eq!(out.stdout, format!("{}\n", node.secret()));
    assert_eq!(out.stderr, "");
    let out = node
        .run(&["secrets", "get", "LIVEKIT_VERSION"])
        .expect_code(1);
    assert!(out.stderr.contains("LIVEKIT_VERSION is not set"), "{out}");
    assert!(out.stderr.contains("hint: "), "{out}");
}

#[test]
fn set_dash_reads_the_value_from_stdin() {
    let node = Node::converged();
    node.run_stdin(&["secrets", "set", "LIVEKIT_NODE_IP", "-"], "10.1.2.3\n")
        .ok();
    assert_eq!(node.store()["LIVEKIT_NODE_IP"], "10.1.2.3");
    // Applied by the next ensure.
    node.run(&["ensure"]).ok();
    assert!(node.read("livekit.yaml").contains("node_ip: \"10.1.2.3\""));
    assert!(
        node.read("backend.env")
            .contains("LIVEKIT_URL=ws://10.1.2.3:7880")
    );
}

#[test]
fn rotate_mints_a_new_pair_and_rerenders() {
    let node = Node::converged();
    let (old_key, old_secret) = node.triple().consistent();
    let out = node.run(&["secrets", "rotate", "--yes"]).ok();
    let (key, secret) = node.triple().consistent();
    assert_ne!(key, old_key);
    assert_ne!(secret, old_secret);
    assert_eq!((key.clone(), secret), (node.key(), node.secret()));
    assert_eq!(
        out.stdout,
        format!("rotated: new API key {key} (was {old_key})\n")
    );
    assert!(!node.read("livekit.yaml").contains(&old_secret));
    assert!(!node.read("livekit.yaml").contains(&old_key));
    node.run(&["check"]).ok();
}

#[test]
fn rotate_with_grace_keeps_the_old_key_accepted() {
    let node = Node::converged();
    let (old_key, old_secret) = node.triple().consistent();
    node.run(&["secrets", "rotate", "--grace", "1h", "--yes"])
        .ok();
    let keys = node.yaml_keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[&old_key], old_secret);
    assert_eq!(keys[&node.key()], node.secret());
    let triple = node.triple();
    assert_eq!(triple.runtime, (node.key(), node.secret()));
    assert_eq!(triple.backend, (node.key(), node.secret()));

    let out = node.run(&["check", "--json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["healthy"], true, "{out}");
    let codes: Vec<_> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect();
    assert!(!codes.iter().any(|c| c == "multiple-keys"), "{codes:?}");
    // A rerun within the grace keeps both keys and writes nothing.
    let before = node.listing();
    node.run(&["ensure"]).ok();
    assert_eq!(node.listing(), before);

    // Once the grace has ended, ensure drops the old key.
    node.run(&["secrets", "set", "LIVEKIT_ROTATION_GRACE_UNTIL", "1"])
        .ok();
    let out = node.run(&["ensure"]).ok();
    assert!(out.stdout.contains("wrote livekit.yaml (changed)"), "{out}");
    assert_eq!(node.triple().consistent(), (node.key(), node.secret()));
    assert!(!node.read("livekit.yaml").contains(&old_secret));
    node.run(&["check"]).ok();
}

#[test]
fn rotate_without_yes_and_without_a_terminal_refuses() {
    let node = Node::converged();
    let before = node.listing();
    let out = node.run(&["secrets", "rotate"]).expect_code(1);
    assert_snapshot!(out.stderr, @r"
    error: refusing to rotate the API credentials without confirmation
    hint: pass --yes (tokens signed with the old secret stop working unless --grace is given)
    ");
    assert_eq!(node.listing(), before);
}

#[test]
fn rotate_and_set_json_are_the_rpc_results() {
    let node = Node::converged();
    let old_key = node.key();
    let out = node
        .run(&["--json", "secrets", "rotate", "--grace", "1h", "--yes"])
        .ok();
    let value: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let result: RotateResult = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(serde_json::to_value(&result).unwrap(), value, "{out}");
    assert_eq!(result.new_key, node.key());
    assert_eq!(result.old_key.as_deref(), Some(old_key.as_str()));
    // No daemon ran; the CLI's own run published the new key and says so.
    assert!(!result.provisioning_scheduled, "{out}");
    let report = result.ensure.as_ref().expect("the CLI's run");
    assert_eq!(report.api_key, node.key());
    // The grace's end: RFC 3339 in both places, the store's second.
    let until = result.grace_until.as_deref().unwrap();
    let stored: u64 = node.store()["LIVEKIT_ROTATION_GRACE_UNTIL"]
        .parse()
        .unwrap();
    assert_eq!(
        humantime::parse_rfc3339(until).unwrap(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(stored),
        "{out}"
    );
    assert_eq!(value["ensure"]["grace_until"], until, "{out}");

    let out = node
        .run(&["--json", "secrets", "set", "LIVEKIT_NODE_IP", "10.0.0.7"])
        .ok();
    let value: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let result: SecretsSetResult = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(serde_json::to_value(&result).unwrap(), value, "{out}");
    assert_eq!(result.name, "LIVEKIT_NODE_IP");
    assert!(!result.provisioning_scheduled);
}
