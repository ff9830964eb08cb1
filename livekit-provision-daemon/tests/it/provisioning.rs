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
        reason.contains("livekit-server was not installed"),
        "{reason}"
    );
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
