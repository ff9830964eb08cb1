//! Background provisioning: the socket answers while it stalls, failures are retried and
//! reported, and what it provisions is served (`token.create`, `health`).

use std::net::TcpListener;
use std::time::SystemTime;

use livekit_provision::triple::DiskTriple;
use livekit_provision::{ManagedFile, token};
use nix::sys::signal::Signal;
use serde_json::json;

use crate::support::{Node, call, free_port, poll, provisioning};

#[test]
fn status_answers_while_provisioning_is_stalled() {
    // A release server that accepts and never answers.
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", server.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        let mut conns = Vec::new();
        while let Ok((conn, _)) = server.accept() {
            conns.push(conn);
        }
    });
    let node = Node::new();
    node.secrets(&json!({ "LIVEKIT_VERSION": "1.7.2" }));
    let daemon = node.start(&["--release-url", &url]);
    // The answer arrives while the (stalled) download is still in progress.
    let p = poll("status while provisioning is running", || {
        let p = provisioning(&node.socket());
        (p["state"] == "running").then_some(p)
    });
    assert_eq!(p["runs"], json!(1));
    // And it keeps answering: a second call, and health, while still running.
    call(&node.socket(), "health", &json!({})).unwrap();
    assert_eq!(provisioning(&node.socket())["state"], json!("running"));
    // SIGTERM does not wait for the stalled download.
    daemon.signal(Signal::SIGTERM);
    let (status, stderr) = daemon.wait_exit();
    assert_eq!(status.code(), Some(0), "{stderr}");
    drop(held);
}

#[test]
fn a_failed_download_is_reported_and_retried() {
    let node = Node::new();
    node.secrets(&json!({ "LIVEKIT_VERSION": "1.7.2" }));
    let url = format!("http://127.0.0.1:{}/", free_port());
    let daemon = node.start(&["--release-url", &url]);
    let failed = poll("status failed", || {
        let p = provisioning(&node.socket());
        (p["state"] == "failed").then_some(p)
    });
    let reason = failed["last_error"].as_str().unwrap();
    assert!(
        reason.contains("livekit-server 1.7.2 was not installed")
            && reason.ends_with("Connection refused (os error 111)"),
        "{reason}"
    );
    // The CLI's hint, from where the release was looked for: the host that failed, the
    // layout of a file:// mirror, --livekit-bin.
    let hint = failed["hint"].as_str().unwrap();
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    for text in [
        &format!("{host} could not be reached"),
        "--release-url file:///DIR",
        "DIR/v1.7.2/checksums.txt",
        "--livekit-bin PATH",
        "retried with backoff",
    ] {
        assert!(hint.contains(text), "{text:?} not in {hint}");
    }
    assert!(failed["next_retry"].is_string(), "{failed}");
    assert!(failed["consecutive_failures"].as_u64().unwrap() >= 1);
    // Retried: the count of failures in a row goes up while the daemon keeps serving.
    poll("a retry", || {
        let p = provisioning(&node.socket());
        (p["consecutive_failures"].as_u64()? >= 2 && p["runs"].as_u64()? >= 2).then_some(())
    });
    // The files were still provisioned (control plane works offline).
    assert!(
        DiskTriple::read(&node.state)
            .consistent_credentials()
            .is_some()
    );
    drop(daemon);
}

#[test]
fn token_create_signs_with_the_provisioned_credentials() {
    let node = Node::new();
    let daemon = node.start(&[]);
    poll("disabled (control plane only)", || {
        (provisioning(&node.socket())["state"] == "disabled").then_some(())
    });
    let answer = call(
        &node.socket(),
        "token.create",
        &json!({ "identity": "alice", "room": "standup", "ttl": "10m" }),
    )
    .unwrap();
    let creds = DiskTriple::read(&node.state)
        .consistent_credentials()
        .unwrap();
    assert_eq!(answer["api_key"], json!(creds.key.as_str()));
    let jwt = answer["token"].as_str().unwrap();
    let claims = token::verify(
        jwt,
        |k| (k == creds.key.as_str()).then(|| creds.secret.clone()),
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.video.unwrap().room.as_deref(), Some("standup"));
    let seconds = call(
        &node.socket(),
        "token.create",
        &json!({ "identity": "ops", "admin": true, "ttl": 60 }),
    )
    .unwrap();
    assert!(seconds["token"].is_string());
    drop(daemon);
}

#[test]
fn health_compares_the_config_in_memory_with_the_disk() {
    let node = Node::new();
    let daemon = node.start(&[]);
    poll("disabled (control plane only)", || {
        (provisioning(&node.socket())["state"] == "disabled").then_some(())
    });
    let health = call(&node.socket(), "health", &json!({})).unwrap();
    assert_eq!(health["in_sync"], json!(true), "{health}");
    assert_eq!(health["in_memory"], health["on_disk"]);
    // An operator edits livekit.yaml by hand.
    let path = node.state.managed(ManagedFile::LivekitYaml);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("# edited\n");
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, text).unwrap();
    let health = call(&node.socket(), "health", &json!({})).unwrap();
    assert_eq!(health["in_sync"], json!(false), "{health}");
    assert_ne!(health["in_memory"], health["on_disk"]);
    // `ensure` puts it back, and they agree again.
    call(&node.socket(), "ensure", &json!({})).unwrap();
    let health = call(&node.socket(), "health", &json!({})).unwrap();
    assert_eq!(health["in_sync"], json!(true), "{health}");
    drop(daemon);
}

#[test]
fn check_and_ensure_answer_with_their_reports() {
    let node = Node::new();
    let daemon = node.start(&[]);
    let report = call(&node.socket(), "ensure", &json!({})).unwrap();
    assert_eq!(report["binary"]["state"], json!("not_pinned"));
    assert!(report["api_key"].as_str().unwrap().starts_with("API"));
    let check = call(&node.socket(), "check", &json!({})).unwrap();
    assert!(check["findings"].is_array(), "{check}");
    drop(daemon);
}

/// The Unix time of the rotation grace the store holds.
fn grace_until(node: &Node) -> u64 {
    let store: serde_json::Value =
        serde_json::from_slice(&std::fs::read(node.state.secrets_file()).unwrap()).unwrap();
    let until = store["LIVEKIT_ROTATION_GRACE_UNTIL"].as_str();
    assert!(
        until.is_some(),
        "no LIVEKIT_ROTATION_GRACE_UNTIL in the store"
    );
    until.unwrap_or_default().parse().unwrap()
}

/// With no call and no other trigger (the daemon's recheck is 5 minutes away), the daemon runs
/// when the grace ends and drops `old_key`; not before.
fn the_daemon_drops_at_the_grace_end(node: &Node, old_key: &str, new_key: &str) {
    let livekit_yaml =
        || std::fs::read_to_string(node.state.managed(ManagedFile::LivekitYaml)).unwrap();
    let until = grace_until(node);
    let text = livekit_yaml();
    assert!(text.contains(old_key) && text.contains(new_key), "{text}");
    poll("the previous key removed from livekit.yaml", || {
        (!livekit_yaml().contains(old_key)).then_some(())
    });
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        now >= until,
        "removed at {now}, before the grace ended at {until}"
    );
    assert!(livekit_yaml().contains(new_key));
}

/// `livekit-provision secrets ARGS --yes` against `node`'s state directory; its stderr.
fn cli_rotate(node: &Node, args: &[&str]) -> String {
    let out = std::process::Command::new(crate::support::cli())
        .arg("--state-dir")
        .arg(node.state.root())
        .arg("secrets")
        .args(args)
        .arg("--yes")
        .env_remove("LIVEKIT_PROVISION_SECRETS")
        .env_remove("LIVEKIT_PROVISION_STATE_DIR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

#[test]
fn the_previous_key_leaves_livekit_yaml_when_the_grace_ends() {
    let node = Node::new();
    let daemon = node.start(&[]);
    let first = call(&node.socket(), "ensure", &json!({})).unwrap();
    let old_key = first["api_key"].as_str().unwrap().to_owned();
    let rotated = call(&node.socket(), "secrets.rotate", &json!({ "grace": 8 })).unwrap();
    assert_eq!(rotated["action"], json!("staged"), "{rotated}");
    assert_eq!(rotated["current_key"], json!(old_key), "{rotated}");
    assert_eq!(rotated["epoch"]["grace_secs"], json!(8), "{rotated}");
    let new_key = rotated["staged_key"].as_str().unwrap().to_owned();
    // The run the staging scheduled lists the staged key; nothing signs with it yet.
    let report = call(&node.socket(), "ensure", &json!({})).unwrap();
    assert_eq!(report["api_key"], json!(old_key), "{report}");
    let text = std::fs::read_to_string(node.state.managed(ManagedFile::LivekitYaml)).unwrap();
    assert!(text.contains(&new_key), "{text}");
    // Promoted by hand (the CLI asks the running daemon for a run): the grace starts.
    cli_rotate(&node, &["rotate", "--promote"]);
    let report = call(&node.socket(), "ensure", &json!({})).unwrap();
    assert_eq!(report["api_key"], json!(new_key), "{report}");
    let until = grace_until(&node);
    assert_eq!(
        report["grace_until"].as_str(),
        Some(
            livekit_provision::clock::rfc3339(livekit_provision::clock::from_unix_secs(until))
                .as_str()
        ),
        "{report}"
    );
    the_daemon_drops_at_the_grace_end(&node, &old_key, &new_key);
    let report = call(&node.socket(), "ensure", &json!({})).unwrap();
    assert!(report.get("grace_until").is_none(), "{report}");
    drop(daemon);
}

#[test]
fn a_rotation_by_the_cli_reaches_the_running_daemon() {
    let node = Node::new();
    let daemon = node.start(&[]);
    let first = call(&node.socket(), "ensure", &json!({})).unwrap();
    let old_key = first["api_key"].as_str().unwrap().to_owned();
    // The CLI stages, promotes and provisions in its own process, then asks the daemon for a
    // run: the daemon must learn of the grace from it, not at its recheck.
    let stderr = cli_rotate(&node, &["rotate", "--grace", "5s"]);
    assert!(
        stderr.contains("the daemon restarts livekit-server to load the new key"),
        "{stderr}"
    );
    let stderr = cli_rotate(&node, &["rotate", "--promote"]);
    assert!(stderr.contains("the daemon removes it then"), "{stderr}");
    let store: serde_json::Value =
        serde_json::from_slice(&std::fs::read(node.state.secrets_file()).unwrap()).unwrap();
    let new_key = store["LIVEKIT_API_KEY"].as_str().unwrap().to_owned();
    assert_ne!(new_key, old_key);
    the_daemon_drops_at_the_grace_end(&node, &old_key, &new_key);
    drop(daemon);
}
