//! One daemon per state directory, stale sockets, signals.

use std::os::unix::fs::PermissionsExt;

use nix::sys::signal::Signal;
use serde_json::json;

use crate::support::{Node, call, poll, provisioning};

#[test]
fn sigterm_exits_zero_and_removes_the_socket() {
    let node = Node::new();
    let daemon = node.start(&[]);
    let mode = std::fs::metadata(node.socket())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    daemon.signal(Signal::SIGTERM);
    let (status, stderr) = daemon.wait_exit();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!node.socket().exists());
}

#[test]
fn a_stale_socket_is_replaced() {
    let node = Node::new();
    std::fs::create_dir_all(node.state.run_dir()).unwrap();
    // What a SIGKILLed daemon leaves: a socket file nobody accepts on.
    drop(std::os::unix::net::UnixListener::bind(node.socket()).unwrap());
    let daemon = node.start(&[]);
    call(&node.socket(), "status", &json!({})).unwrap();
    drop(daemon);
}

#[test]
fn a_second_daemon_is_refused_and_names_the_first() {
    let node = Node::new();
    let first = node.start(&[]);
    let second = node.spawn(&[]);
    let (status, stderr) = second.wait_exit();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: "), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", first.pid())), "{stderr}");
    assert!(stderr.contains("hint: "), "{stderr}");
    // The first one is untouched.
    call(&node.socket(), "status", &json!({})).unwrap();
    drop(first);
}

#[test]
fn sighup_runs_ensure_again() {
    let node = Node::new();
    node.settings("port: 17001\n");
    let daemon = node.start(&[]);
    let runtime = node
        .state
        .managed(livekit_provision::ManagedFile::RuntimeJson);
    let port = || -> Option<u64> {
        let text = std::fs::read_to_string(&runtime).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()?["port"].as_u64()
    };
    poll("runtime.json with port 17001", || {
        (port() == Some(17001)).then_some(())
    });
    let first = poll("the first run to finish", || {
        let p = provisioning(&node.socket());
        (p["state"] == "disabled").then_some(p)
    });
    // The daemon binary provisions without a version (control plane only), and says so.
    let reason = first["disabled_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("control plane only"), "{first}");
    assert!(reason.contains("LIVEKIT_VERSION"), "{first}");
    node.settings("port: 17002\n");
    daemon.signal(Signal::SIGHUP);
    poll("runtime.json with port 17002", || {
        (port() == Some(17002)).then_some(())
    });
    drop(daemon);
}

/// A usage error exits 64 (`EX_USAGE`), as in the CLI; nothing is started or created.
#[test]
fn a_usage_error_exits_64() {
    let node = Node::new();
    let out = std::process::Command::new(crate::support::DAEMON)
        .env_clear()
        .arg("--state-dir")
        .arg(node.state.root())
        .arg("--no-such-option")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("--no-such-option"), "{stderr}");
    assert!(!node.socket().exists());
}
