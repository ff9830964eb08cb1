//! The quick start: `ensure` on a fresh node, then again, with and without `--dry-run`.

use insta::assert_snapshot;

use crate::support::Node;

#[test]
fn ensure_on_a_fresh_node_mints_and_writes_the_three_files() {
    let node = Node::new();
    let out = node.run(&["ensure"]).ok();
    node.settings().bind(|| {
        assert_snapshot!(out.stdout, @r"
        minted and stored API key [KEY] and its secret in file:[TMP]/state/secrets.json
        wrote livekit.yaml (missing)
        wrote backend.env (missing)
        wrote runtime.json (missing)
        ");
        assert_snapshot!(out.stderr, @r"
        warning: LIVEKIT_VERSION is not set: control plane only, livekit-server is not installed (set it with `livekit-provision secrets set LIVEKIT_VERSION v1.7.2`)
        warning: LIVEKIT_NODE_IP is not set: advertising 127.0.0.1, which only works for local development; on a real server run `livekit-provision secrets set LIVEKIT_NODE_IP <public-ip>`
        ");
    });
    let (key, secret) = node.triple().consistent();
    assert_eq!((key, secret), (node.key(), node.secret()));
}

#[test]
fn a_rerun_says_nothing_to_do_and_writes_nothing() {
    let node = Node::converged();
    let before = node.listing();
    let out = node.run(&["ensure"]).ok();
    node.settings().bind(|| {
        assert_snapshot!(out.stdout, @"nothing to do: [TMP]/state is up to date");
    });
    assert_eq!(
        node.listing(),
        before,
        "a rerun on a converged node wrote something"
    );
}

#[test]
fn dry_run_on_a_fresh_node_exits_2_and_creates_nothing() {
    let node = Node::new();
    let out = node.run(&["ensure", "--dry-run"]).expect_code(2);
    // The key a dry run plans with is not the one the real run mints: it is not shown.
    assert!(
        out.stdout
            .contains("would mint and store a new API key and its secret in "),
        "{out}"
    );
    assert!(
        !out.stdout
            .split_whitespace()
            .any(|word| word.starts_with("API") && word.len() > 3),
        "{out}"
    );
    assert!(
        out.stdout.contains("would write livekit.yaml (missing)"),
        "{out}"
    );
    assert!(out.stderr.contains("dry run: nothing was changed"), "{out}");
    assert!(
        node.state.symlink_metadata().is_err(),
        "--dry-run created the state directory"
    );
}

#[test]
fn dry_run_on_a_converged_node_exits_0_and_writes_nothing() {
    let node = Node::converged();
    let before = node.listing();
    let out = node.run(&["ensure", "--dry-run"]).ok();
    assert!(out.stdout.starts_with("nothing to do:"), "{out}");
    assert_eq!(node.listing(), before);
}

#[test]
fn json_output_has_the_documented_fields() {
    let node = Node::new();
    let out = node.run(&["ensure", "--json"]).ok();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    for field in [
        "dry_run",
        "actions",
        "warnings",
        "api_key",
        "credentials",
        "version",
        "binary",
        "generation",
    ] {
        assert!(doc.get(field).is_some(), "--json lacks {field}: {doc:#}");
    }
    assert_eq!(doc["dry_run"], false);
    assert_eq!(doc["api_key"], node.key().as_str());
    assert_eq!(doc["actions"].as_array().unwrap().len(), 4, "{doc:#}");
    let kinds: Vec<&str> = doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["control_plane_only", "node_ip_defaulted"]);
    // Warnings are in the document, not on stderr.
    assert_eq!(out.stderr, "", "{out}");
    assert!(
        !out.stdout.contains(&node.secret()),
        "--json printed the secret"
    );

    let again: serde_json::Value =
        serde_json::from_str(&node.run(&["ensure", "--json"]).ok().stdout).unwrap();
    assert_eq!(again["actions"], serde_json::json!([]));
    assert_eq!(again["generation"], doc["generation"]);
}

#[test]
fn json_dry_run_on_a_fresh_node_plans_and_exits_2() {
    let node = Node::new();
    let out = node.run(&["ensure", "--dry-run", "--json"]).expect_code(2);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["actions"].as_array().unwrap().len(), 4, "{doc:#}");
    assert_eq!(doc["generation"], serde_json::Value::Null);
    assert_eq!(out.stderr, "", "{out}");
    assert!(node.state.symlink_metadata().is_err());
}

#[test]
fn quiet_ensure_prints_nothing_on_stderr() {
    let node = Node::new();
    let out = node.run(&["-q", "ensure"]).ok();
    assert_eq!(out.stderr, "", "{out}");
    let out = node.run(&["ensure", "-q"]).ok();
    assert_eq!(out.stderr, "", "{out}");
}

#[test]
fn read_only_commands_leave_a_missing_state_dir_missing() {
    let node = Node::new();
    let out = node.run(&["check", "--json"]).expect_code(1);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["healthy"], false);
    assert_eq!(
        report["findings"][0]["code"], "not-provisioned",
        "{report:#}"
    );
    for args in [&["render"][..], &["secrets", "list"]] {
        node.run(args).ok();
    }
    // status has nothing to report on: an error that says so, with the command that provisions
    // (issue 25, item 4), the same in --json.
    let out = node.run(&["status"]).expect_code(1);
    assert!(
        out.stderr.contains("is not provisioned: it does not exist")
            && out.stderr.contains("hint: run `livekit-provision ensure`"),
        "{out}"
    );
    let out = node.run(&["status", "--json"]).expect_code(1);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        doc["error"]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("livekit-provision ensure")),
        "{out}"
    );
    node.run(&["ensure", "--dry-run"]).expect_code(2);
    assert!(
        node.state.symlink_metadata().is_err(),
        "a read-only command created the state directory"
    );
}

#[test]
fn the_state_dir_comes_from_the_environment_or_xdg() {
    let node = Node::new();
    // LIVEKIT_PROVISION_STATE_DIR, without --state-dir.
    let mut cmd = std::process::Command::new(crate::support::BIN);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", node.tmp.path().join("home"))
        .env("LIVEKIT_PROVISION_STATE_DIR", &node.state)
        .args(["-q", "ensure"]);
    assert!(cmd.output().unwrap().status.success());
    node.triple().consistent();
    // XDG_STATE_HOME, then HOME.
    let xdg = node.tmp.path().join("xdg");
    let mut cmd = std::process::Command::new(crate::support::BIN);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", node.tmp.path().join("home"))
        .env("XDG_STATE_HOME", &xdg)
        .args(["-q", "ensure"]);
    assert!(cmd.output().unwrap().status.success());
    assert!(xdg.join("livekit-provision/runtime.json").exists());
    let mut cmd = std::process::Command::new(crate::support::BIN);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", node.tmp.path().join("home"))
        .args(["-q", "ensure"]);
    assert!(cmd.output().unwrap().status.success());
    assert!(
        node.tmp
            .path()
            .join("home/.local/state/livekit-provision/runtime.json")
            .exists()
    );
}
