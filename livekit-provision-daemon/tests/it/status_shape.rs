//! One `status` shape: `livekit-provision status --json` prints the same JSON shape whether a
//! daemon answers it or the CLI builds it itself. The media process is the livekit-server
//! STAND-IN (not the real program), started by the daemon and left running when it stops.

use std::process::Command;

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::support::{Node, cli, livekit_standin};

/// `livekit-provision --state-dir … ARGS --json`, parsed.
pub fn cli_json(node: &Node, args: &[&str]) -> Value {
    let out = Command::new(cli())
        .arg("--state-dir")
        .arg(node.state.root())
        .args(args)
        .arg("--json")
        .env_remove("LIVEKIT_PROVISION_SECRETS")
        .env_remove("LIVEKIT_PROVISION_STATE_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Where the shapes of `a` and `b` differ: objects must have the same keys, arrays elements of
/// one shape, scalars the same type; `null` stands for an optional scalar (an unset value).
pub fn shape_differences(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let keys_a: Vec<_> = a.keys().collect();
            let keys_b: Vec<_> = b.keys().collect();
            if keys_a != keys_b {
                out.push(format!("{path}: keys {keys_a:?} vs {keys_b:?}"));
            }
            for (key, value) in a {
                if let Some(other) = b.get(key) {
                    shape_differences(&format!("{path}.{key}"), value, other, out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if let Some(first) = a.first().or(b.first()) {
                for (i, item) in a.iter().chain(b).enumerate() {
                    shape_differences(&format!("{path}[{i}]"), first, item, out);
                }
            }
        }
        (Value::Null, Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null)
        | (Value::String(_) | Value::Number(_) | Value::Bool(_), Value::Null)
        | (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_)) => {}
        _ => out.push(format!("{path}: {a} vs {b}")),
    }
}

#[test]
fn the_shape_comparison_catches_a_difference() {
    let mut found = Vec::new();
    shape_differences(
        "$",
        &json!({"a": 1, "b": {"c": [{"d": true}]}}),
        &json!({"a": null, "b": {"c": [{"d": "x"}], "e": 1}}),
        &mut found,
    );
    assert_eq!(found.len(), 2, "{found:?}");
    found.clear();
    shape_differences("$", &json!({"a": {}}), &json!({"a": null}), &mut found);
    assert_eq!(
        found.len(),
        1,
        "an object is not an optional scalar: {found:?}"
    );
}

#[test]
fn status_json_has_one_shape_with_and_without_a_daemon() {
    let mut node = Node::with_media(&livekit_standin());
    let daemon = node.start(&[]);
    node.wait_media_healthy();
    let with_daemon = cli_json(&node, &["status"]);
    daemon.signal(Signal::SIGTERM);
    let (exit, stderr) = daemon.wait_exit();
    assert_eq!(exit.code(), Some(0), "{stderr}");
    let without_daemon = cli_json(&node, &["status"]);

    assert_eq!(with_daemon["daemon"], json!(true), "{with_daemon}");
    assert_eq!(without_daemon["daemon"], json!(false), "{without_daemon}");
    assert_eq!(without_daemon["provisioning"]["state"], json!("no_daemon"));
    // The media outlived the daemon, and the CLI found them itself.
    assert_eq!(
        without_daemon["media"]["processes"][0]["pid"],
        with_daemon["media"]["processes"][0]["pid"]
    );
    let mut differences = Vec::new();
    shape_differences("$", &with_daemon, &without_daemon, &mut differences);
    assert!(
        differences.is_empty(),
        "{differences:#?}\nwith a daemon: {with_daemon:#}\nwithout: {without_daemon:#}"
    );
}

#[test]
fn restart_and_stop_json_have_one_shape_with_and_without_a_daemon() {
    let mut node = Node::with_media(&livekit_standin());
    let daemon = node.start(&[]);
    node.wait_media_healthy();
    let restart = ["restart", "--grace", "1s"];
    let with_daemon = cli_json(&node, &restart);
    daemon.signal(Signal::SIGTERM);
    let (exit, stderr) = daemon.wait_exit();
    assert_eq!(exit.code(), Some(0), "{stderr}");
    let without_daemon = cli_json(&node, &restart);
    // Stop what the CLI started (the node stops only the pids it saw).
    let stopped = cli_json(&node, &["stop", "--grace", "1s"]);

    assert!(
        with_daemon["stopped"]["livekit-server"].is_string(),
        "{with_daemon}"
    );
    assert_eq!(
        stopped["processes"][0]["running"],
        json!(false),
        "{stopped}"
    );
    for (what, other) in [("restart", &without_daemon), ("stop", &stopped)] {
        let mut differences = Vec::new();
        shape_differences("$", &with_daemon, other, &mut differences);
        assert!(
            differences.is_empty(),
            "{what}: {differences:#?}\nwith a daemon: {with_daemon:#}\nwithout: {other:#}"
        );
    }
}
