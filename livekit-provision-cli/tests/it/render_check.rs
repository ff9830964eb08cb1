//! `render`, `check` and `units`.

use std::os::unix::fs::PermissionsExt;

use insta::assert_snapshot;

use crate::support::Node;

fn codes(report: &serde_json::Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn render_redacts_the_secret_unless_asked() {
    let node = Node::converged();
    let secret = node.secret();
    let before = node.listing();
    let out = node.run(&["render"]).ok();
    assert!(!out.stdout.contains(&secret), "{out}");
    node.settings().bind(|| {
        assert_snapshot!(out.stdout, @r#"
        ==> [TMP]/state/livekit.yaml <==
        # Managed by livekit-provision: do not edit, this file is rewritten.
        # Put additions in extra.yaml (merged in here); ports and log level belong in
        # provision.yaml, keys and the node IP in the secret store.
        port: 7880
        rtc:
          tcp_port: 7881
          port_range_start: 50000
          port_range_end: 60000
          use_external_ip: false
          node_ip: "127.0.0.1"
        keys:
          "[KEY]": "****"
        logging:
          level: info
        ==> [TMP]/state/backend.env <==
        # Managed by livekit-provision: do not edit, this file is rewritten.
        # Read by lk-backend. Ports come from provision.yaml, credentials from the secret store.
        LIVEKIT_API_KEY=[KEY]
        LIVEKIT_API_SECRET=****
        LIVEKIT_URL=ws://127.0.0.1:7880
        PORT=8081
        SQLITE_PATH=[TMP]/state/data/lk-backend.sqlite
        ==> [TMP]/state/runtime.json <==
        {
          "api_key": "[KEY]",
          "api_secret": "****",
          "node_ip": "127.0.0.1",
          "livekit_url": "ws://127.0.0.1:7880",
          "version": null,
          "port": 7880,
          "backend_port": 8081,
          "rtc_tcp_port": 7881,
          "rtc_port_range_start": 50000,
          "rtc_port_range_end": 60000,
          "redis_address": null
        }
        "#);
    });
    let json = node.run(&["render", "--json"]).ok();
    assert!(!json.stdout.contains(&secret), "{json}");

    let shown = node.run(&["render", "--show-secrets"]).ok();
    assert!(shown.stdout.contains(&secret));
    // What render shows is what ensure wrote.
    for file in ["livekit.yaml", "backend.env", "runtime.json"] {
        assert!(shown.stdout.contains(node.read(file).trim_end()), "{file}");
    }
    assert_eq!(node.listing(), before, "render wrote something");
}

#[test]
fn check_on_a_converged_node_is_healthy() {
    let node = Node::converged();
    let before = node.listing();
    let out = node.run(&["check"]).ok();
    node.settings().bind(|| {
        assert_snapshot!(out.stdout, @r"
        warning[node-ip-default]: LIVEKIT_NODE_IP is not set: advertising 127.0.0.1, which only works for local development; on a real server run `livekit-provision secrets set LIVEKIT_NODE_IP <public-ip>`
        healthy: [TMP]/state (1 warning)
        ");
    });
    assert_eq!(node.listing(), before, "check wrote something");
}

#[test]
fn check_finds_disagreeing_keys() {
    let node = Node::converged();
    let secret = node.secret();
    let env = node.read("backend.env");
    let other = "Z".repeat(secret.len());
    std::fs::write(node.path("backend.env"), env.replace(&secret, &other)).unwrap();
    let out = node.run(&["check"]).expect_code(1);
    assert!(out.stdout.contains("error[keys-disagree]"), "{out}");
    assert!(
        !out.stdout.contains(&secret) && !out.stdout.contains(&other),
        "{out}"
    );
    let out = node.run(&["check", "--json"]).expect_code(1);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["healthy"], false);
    assert!(
        codes(&report).contains(&"keys-disagree".to_owned()),
        "{report:#}"
    );

    // A dry run sees the repair pending and changes nothing.
    let before = node.listing();
    let out = node.run(&["ensure", "--dry-run"]).expect_code(2);
    assert!(
        out.stdout.contains("would write backend.env (changed)"),
        "{out}"
    );
    assert_eq!(node.listing(), before);

    // ensure repairs it from the store, keeping the stored secret.
    node.run(&["ensure"]).ok();
    assert_eq!(node.triple().consistent().1, secret);
    node.run(&["check"]).ok();
}

#[test]
fn check_finds_a_world_readable_secret_file() {
    let node = Node::converged();
    let target = std::fs::canonicalize(node.path("runtime.json")).unwrap();
    assert_ne!(
        target,
        node.path("runtime.json"),
        "runtime.json is a symlink"
    );
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = node.run(&["check", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        codes(&report).contains(&"permissions".to_owned()),
        "{report:#}"
    );
    assert_eq!(out.code, 1, "{out}");
}

/// Issue 24, item 3: a webhook URL's credentials are masked by `render` and `--json render` as
/// every other secret is (the one rule of `redact`), and written in clear only to the file.
#[test]
fn render_masks_the_credentials_of_a_webhook_url() {
    let node = Node::converged();
    std::fs::write(
        node.path("provision.yaml"),
        "webhook:\n  urls: [\"https://hookuser:Hunter2Pass@hooks.example/lk?token=QueryToken9\"]\n",
    )
    .unwrap();
    for args in [&["render"][..], &["--json", "render"]] {
        let out = node.run(args).ok();
        let shown = format!("{}{}", out.stdout, out.stderr);
        for secret in ["Hunter2Pass", "hookuser", "QueryToken9"] {
            assert!(!shown.contains(secret), "{args:?} shows {secret}: {shown}");
        }
        assert!(shown.contains("hooks.example/lk"), "{args:?}: {shown}");
    }
    node.run(&["ensure"]).ok();
    assert!(node.read("livekit.yaml").contains("Hunter2Pass"));
}

/// Issue 24, items 2 and 11: what `check` finds about the node's own files `ensure` reports as
/// warnings (it still succeeds): a secrets.json open to others, a `livekit_bin` that is a
/// directory, a missing Redis TLS CA file.
#[test]
fn ensure_warns_of_what_check_finds() {
    let node = Node::converged();
    std::fs::set_permissions(
        node.path("secrets.json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::write(
        node.path("provision.yaml"),
        "livekit_bin: /\nredis_address: 127.0.0.1:1\nredis_tls: true\nredis_tls_ca_cert_file: /nonexistent/ca.pem\n",
    )
    .unwrap();
    let check: serde_json::Value =
        serde_json::from_str(&node.run(&["--json", "check"]).expect_code(1).stdout).unwrap();
    let found = codes(&check);
    for code in ["permissions", "binary-missing", "redis-tls-unreadable"] {
        assert!(
            found.iter().any(|c| c == code),
            "check lacks {code}: {found:?}"
        );
    }
    let out = node.run(&["--json", "ensure"]).ok();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let warned: Vec<&str> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == "check")
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    for code in ["permissions", "binary-missing", "redis-tls-unreadable"] {
        assert!(
            warned.contains(&code),
            "ensure did not warn of {code}: {warned:?}"
        );
    }
    let human = node.run(&["ensure"]).ok();
    assert!(human.stderr.contains("is a directory"), "{human}");
    assert!(human.stderr.contains("chmod 600"), "{human}");
}

/// `units` names provision.yaml as it is: to create when it does not exist, to edit when it
/// does (issue 25, item 5).
#[test]
fn units_warns_about_provision_yaml_as_it_is() {
    let node = Node::converged();
    let file = node.path("provision.yaml");
    assert!(!file.exists());
    let out = node.run(&["units"]).ok();
    assert!(
        out.stderr.contains(&format!(
            "warning: media_owner is daemon (the default: {} does not exist): create it with `media_owner: external`",
            file.display()
        )),
        "{out}"
    );
    std::fs::write(&file, "media_owner: daemon\n").unwrap();
    let out = node.run(&["units"]).ok();
    assert!(
        out.stderr.contains(&format!(
            "warning: media_owner is daemon in {}: set `media_owner: external` there",
            file.display()
        )),
        "{out}"
    );
    std::fs::write(&file, "media_owner: external\n").unwrap();
    let out = node.run(&["units"]).ok();
    assert!(!out.stderr.contains("warning"), "{out}");
}
