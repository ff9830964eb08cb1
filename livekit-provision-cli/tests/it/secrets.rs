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
        LIVEKIT_API_KEY_NEXT             (not set)
        LIVEKIT_API_SECRET_NEXT          (not set)
        LIVEKIT_ROTATION_GRACE           (not set)
        LIVEKIT_ROTATION_DEADLINE        (not set)
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
    assert!(
        out.stderr
            .contains("hint: set it with `livekit-provision secrets set LIVEKIT_VERSION <value>`"),
        "{out}"
    );

    // An unknown name: no hint to `secrets set` it, which would be refused.
    let out = node.run(&["secrets", "get", "FOO"]).expect_code(1);
    assert!(out.stderr.contains("FOO is not set"), "{out}");
    assert!(
        out.stderr
            .contains("hint: FOO is not a setting livekit-provision reads or stores"),
        "{out}"
    );
    assert!(!out.stderr.contains("secrets set"), "{out}");
    node.run(&["secrets", "set", "FOO", "x"]).expect_code(1);
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
fn rotate_stages_and_promote_switches_the_signers() {
    let node = Node::converged();
    let (old_key, old_secret) = node.triple().consistent();
    let out = node.run(&["secrets", "rotate", "--yes"]).ok();
    let store = node.store();
    let (next_key, next_secret) = (
        store["LIVEKIT_API_KEY_NEXT"].clone(),
        store["LIVEKIT_API_SECRET_NEXT"].clone(),
    );
    assert_ne!(next_key, old_key);
    assert_eq!(
        out.stdout,
        format!("staged: API key {next_key}; {old_key} keeps signing until it is promoted\n")
    );
    assert!(out.stderr.contains("secrets rotate --promote"), "{out}");
    // Staged: livekit.yaml lists both keys; every signer keeps the current one.
    let triple = node.triple();
    assert_eq!(triple.runtime, (old_key.clone(), old_secret.clone()));
    assert_eq!(triple.backend, (old_key.clone(), old_secret.clone()));
    assert_eq!(triple.yaml_keys.len(), 2, "{:?}", triple.yaml_keys.keys());
    assert_eq!(triple.yaml_keys[&next_key], next_secret);
    assert_eq!(
        (node.key(), node.secret()),
        (old_key.clone(), old_secret.clone())
    );
    node.run(&["check"]).ok();

    // A rerun stages nothing new.
    let out = node.run(&["secrets", "rotate", "--yes"]).ok();
    assert!(out.stdout.starts_with("already staged"), "{out}");
    assert_eq!(node.store(), store);

    // Promoted (no grace): the signers switch; the previous key leaves livekit.yaml.
    let out = node.run(&["secrets", "rotate", "--promote", "--yes"]).ok();
    assert_eq!(
        out.stdout,
        format!("promoted: API key {next_key} signs from now on\n")
    );
    assert_eq!(node.triple().consistent(), (next_key.clone(), next_secret));
    assert_eq!((node.key(), node.secret()), node.triple().consistent());
    assert!(!node.read("livekit.yaml").contains(&old_secret));
    assert!(!node.read("livekit.yaml").contains(&old_key));
    node.run(&["check"]).ok();
    // Nothing is staged any more: promoting again is refused, and changes nothing.
    let before = node.listing();
    let out = node
        .run(&["secrets", "rotate", "--promote", "--yes"])
        .expect_code(1);
    assert!(out.stderr.contains("no key is staged"), "{out}");
    assert_eq!(node.listing(), before);
}

#[test]
fn rotate_with_grace_keeps_the_old_key_accepted() {
    let node = Node::converged();
    let (old_key, old_secret) = node.triple().consistent();
    node.run(&["secrets", "rotate", "--grace", "1h", "--yes"])
        .ok();
    let staged_yaml = node.read("livekit.yaml");
    node.run(&["secrets", "rotate", "--promote", "--yes"]).ok();
    // The promotion changed no byte of livekit.yaml: no restart is needed for it.
    assert_eq!(node.read("livekit.yaml"), staged_yaml);
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
fn promote_refuses_a_key_livekit_yaml_does_not_list() {
    let node = Node::converged();
    // Staged in the store by hand, never published.
    node.run(&["secrets", "set", "LIVEKIT_API_SECRET_NEXT", &"N".repeat(43)])
        .ok();
    node.run(&["secrets", "set", "LIVEKIT_API_KEY_NEXT", "APInextUnlisted"])
        .ok();
    let store = node.store();
    let out = node
        .run(&["secrets", "rotate", "--promote", "--yes"])
        .expect_code(1);
    assert!(
        out.stderr
            .contains("the staged key APInextUnlisted is not in"),
        "{out}"
    );
    assert!(
        out.stderr.contains("hint: run `livekit-provision ensure`"),
        "{out}"
    );
    assert_eq!(node.store(), store);
    // `check` says the same.
    let out = node.run(&["check", "--json"]).ok();
    assert!(out.stdout.contains("next-key-not-listed"), "{out}");
}

#[test]
fn rotate_force_replaces_the_key_at_once() {
    let node = Node::converged();
    let (old_key, old_secret) = node.triple().consistent();
    let out = node
        .run(&["secrets", "rotate", "--force", "--grace", "1h", "--yes"])
        .ok();
    // Both keys listed (the grace); the signers on the new one at once.
    let triple = node.triple();
    assert_eq!(triple.backend, triple.runtime);
    let (key, secret) = triple.runtime;
    assert_ne!(key, old_key);
    assert_eq!((key.clone(), secret), (node.key(), node.secret()));
    assert_eq!(
        out.stdout,
        format!("promoted: API key {key} signs from now on (was {old_key})\n")
    );
    // No livekit-server runs: nothing to restart, so no restart is asked for.
    assert!(!out.stderr.contains("restart"), "{out}");
    assert_eq!(node.yaml_keys()[&old_key], old_secret);

    // `secrets list` shows the grace end as a time, the stored Unix seconds beside it.
    let until = node.store()["LIVEKIT_ROTATION_GRACE_UNTIL"].clone();
    let out = node.run(&["secrets", "list"]).ok();
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("LIVEKIT_ROTATION_GRACE_UNTIL "))
        .unwrap();
    assert!(line.ends_with(&format!("Z ({until})")), "{line}");
    assert!(line.contains('T'), "{line}");
}

#[test]
fn rotate_without_yes_and_without_a_terminal_refuses() {
    let node = Node::converged();
    let before = node.listing();
    let out = node.run(&["secrets", "rotate"]).expect_code(1);
    assert_snapshot!(out.stderr, @r"
    error: refusing to rotate the API credentials without confirmation
    hint: pass --yes
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
    assert_eq!(value["action"], "staged", "{out}");
    assert_eq!(result.current_key.as_deref(), Some(old_key.as_str()));
    let staged = node.store()["LIVEKIT_API_KEY_NEXT"].clone();
    assert_eq!(result.staged_key.as_deref(), Some(staged.as_str()));
    assert_eq!(value["epoch"]["phase"], "staged", "{out}");
    assert_eq!(value["epoch"]["grace_secs"], 3600, "{out}");
    // No daemon ran; the CLI's own run published the staged key and says so.
    assert!(!result.provisioning_scheduled, "{out}");
    let report = result.ensure.as_ref().expect("the CLI's run");
    assert_eq!(report.api_key, Some(old_key.clone()));

    let out = node
        .run(&["--json", "secrets", "rotate", "--promote", "--yes"])
        .ok();
    let value: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let result: RotateResult = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(value["action"], "promoted", "{out}");
    assert_eq!(result.current_key.as_deref(), Some(staged.as_str()));
    assert_eq!(result.staged_key, None);
    assert_eq!(value["epoch"]["phase"], "grace", "{out}");
    assert_eq!(value["epoch"]["previous_key"], old_key.as_str(), "{out}");
    // The grace's end: RFC 3339 in both places, the store's second.
    let until = value["epoch"]["until"].as_str().unwrap();
    let stored: u64 = node.store()["LIVEKIT_ROTATION_GRACE_UNTIL"]
        .parse()
        .unwrap();
    assert_eq!(
        humantime::parse_rfc3339(until).unwrap(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(stored),
        "{out}"
    );
    assert_eq!(value["ensure"]["grace_until"], until, "{out}");
    assert_eq!(value["ensure"]["api_key"], staged.as_str(), "{out}");

    let out = node
        .run(&["--json", "secrets", "set", "LIVEKIT_NODE_IP", "10.0.0.7"])
        .ok();
    let value: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let result: SecretsSetResult = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(serde_json::to_value(&result).unwrap(), value, "{out}");
    assert_eq!(result.name, "LIVEKIT_NODE_IP");
    assert!(!result.provisioning_scheduled);
}

/// Issue 24, item 9: a value is stored as every reader reads it (one validator, normalizing).
#[test]
fn set_stores_the_value_as_it_is_read() {
    let node = Node::converged();
    node.run(&["secrets", "set", "LIVEKIT_VERSION", "1.7.2 "])
        .ok();
    assert_eq!(node.store()["LIVEKIT_VERSION"], "1.7.2");
    node.run(&["secrets", "set", "LIVEKIT_NODE_IP", " 10.0.0.5"])
        .ok();
    assert_eq!(node.store()["LIVEKIT_NODE_IP"], "10.0.0.5");
}

/// Issue 24, item 10: the live secret is not replaced by `secrets set` (every token in use would
/// fail) unless forced; seeding an empty store, and repairing an invalid value, are allowed.
#[test]
fn set_of_the_live_secret_is_refused_unless_forced() {
    let node = Node::converged();
    let live = node.secret();
    let new = "ReplacementSecretReplacementSecret0123456";
    let out = node
        .run(&["secrets", "set", "LIVEKIT_API_SECRET", new])
        .expect_code(1);
    assert!(out.stderr.contains("secrets rotate"), "{out}");
    assert!(
        !out.stderr.contains(new) && !out.stderr.contains(&live),
        "{out}"
    );
    assert_eq!(node.secret(), live);
    node.run(&["secrets", "set", "LIVEKIT_API_SECRET", &live])
        .ok();
    node.run(&["secrets", "set", "--force", "LIVEKIT_API_SECRET", new])
        .ok();
    assert_eq!(node.secret(), new);
    // A fresh node: nothing is live yet, the value seeds it.
    let fresh = Node::new();
    fresh
        .run(&["secrets", "set", "LIVEKIT_API_KEY", "APIseeded"])
        .ok();
    fresh.run(&["ensure"]).ok();
    assert_eq!(fresh.key(), "APIseeded");
}

/// Issue 24: the CLI door agrees with the others. For every name of the contract and every
/// sample value, `secrets set --force` accepts exactly what `admin::validate_setting` accepts
/// (the rule the RPC and the store readers apply, `tests/it/doors.rs` of the core and the
/// daemon's `rpc.rs`), and stores what `validate::secret_value` returns.
#[test]
fn secrets_set_agrees_with_the_rpc_and_the_store_for_every_name() {
    use livekit_provision::store::KNOWN;
    use livekit_provision::validate;

    let node = Node::new();
    let mut checked = 0;
    for known in KNOWN {
        let name = known.name.as_str();
        for value in validate::door_samples() {
            let out = node.run(&["secrets", "set", "--force", name, &value]);
            let accepts = livekit_provision::admin::validate_setting(name, &value).is_ok();
            assert_eq!(out.code == 0, accepts, "{name} = {value:?}: {out}");
            if accepts {
                assert_eq!(
                    node.store()[name],
                    validate::secret_value(&known.name, &value).unwrap(),
                    "{name} = {value:?}"
                );
            } else {
                assert!(out.stderr.contains(name), "{out}");
                if known.is_secret {
                    assert!(value.len() < 8 || !out.stderr.contains(&value), "{out}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= KNOWN.len() * 30, "{checked} pairs checked");
}
