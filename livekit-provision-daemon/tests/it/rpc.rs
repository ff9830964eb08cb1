//! The JSON-RPC surface: malformed input gets errors, never a crash; many clients at once.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use livekit_provision_daemon::ClientError;
use serde_json::{Value, json};

use livekit_provision::ManagedFile;

use crate::support::{Node, call, poll};

fn exchange(stream: &UnixStream, line: &[u8]) -> Value {
    (&*stream).write_all(line).unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    serde_json::from_str(&answer).unwrap()
}

fn rpc_code(result: Result<Value, ClientError>) -> i64 {
    match result {
        Err(ClientError::Rpc { code, .. }) => code,
        other => panic!("expected an RPC error, got {other:?}"),
    }
}

#[test]
fn malformed_requests_get_errors_and_the_connection_survives() {
    let node = Node::new();
    let daemon = node.start(&[]);
    let stream = UnixStream::connect(node.socket()).unwrap();
    let parse = exchange(&stream, b"{\"jsonrpc\": \"2.0\", \"id\": 1, \n");
    assert_eq!(parse["error"]["code"], json!(-32700));
    assert_eq!(parse["id"], Value::Null);
    let invalid = exchange(&stream, b"{\"id\": 2, \"method\": \"status\"}\n");
    assert_eq!(invalid["error"]["code"], json!(-32600));
    let batch = exchange(&stream, b"[]\n");
    assert_eq!(batch["error"]["code"], json!(-32600));
    let unknown = exchange(
        &stream,
        b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"reboot\"}\n",
    );
    assert_eq!(unknown["error"]["code"], json!(-32601));
    assert_eq!(unknown["id"], json!(3));
    // The same connection still answers a valid request.
    let ok = exchange(
        &stream,
        b"{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"status\"}\n",
    );
    assert_eq!(ok["id"], json!("x"));
    assert!(ok["result"]["provisioning"]["state"].is_string());

    let socket = node.socket();
    assert_eq!(
        rpc_code(call(&socket, "status", &json!({"verbose": true}))),
        -32602
    );
    assert_eq!(
        rpc_code(call(&socket, "token.create", &json!({"room": "r"}))),
        -32602
    );
    assert_eq!(
        rpc_code(call(
            &socket,
            "token.create",
            &json!({"identity": "a", "room": "r", "ttl": "soon"})
        )),
        -32602
    );
    assert_eq!(
        rpc_code(call(&socket, "stop", &json!({"grace_secs": "long"}))),
        -32602
    );
    drop(daemon);
}

#[test]
fn an_oversized_line_is_refused_and_closed() {
    let node = Node::new();
    let daemon = node.start(&[]);
    let stream = UnixStream::connect(node.socket()).unwrap();
    let writer = stream.try_clone().unwrap();
    // The daemon may close before reading everything: write from another thread, ignore EPIPE.
    let sender = std::thread::spawn(move || {
        let _ = (&writer).write_all(&vec![b'a'; 70 * 1024]);
    });
    let mut reader = BufReader::new(&stream);
    let mut answer = String::new();
    reader.read_line(&mut answer).unwrap();
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["error"]["code"], json!(-32600));
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("65536")
    );
    let mut rest = String::new();
    assert_eq!(
        reader.read_line(&mut rest).unwrap(),
        0,
        "the connection is closed"
    );
    sender.join().unwrap();
    // The daemon is fine.
    call(&node.socket(), "status", &json!({})).unwrap();
    drop(daemon);
}

#[test]
fn fifty_clients_at_once() {
    let node = Node::new();
    let daemon = node.start(&[]);
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let socket = node.socket();
            std::thread::spawn(move || {
                let method = if i % 2 == 0 { "status" } else { "health" };
                call(&socket, method, &json!({})).unwrap()
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap().is_object());
    }
    drop(daemon);
}

/// The daemon's door: bad parameters of every method get a JSON-RPC error naming the parameter,
/// and nothing is signed, stored or published.
#[test]
#[expect(clippy::too_many_lines, reason = "one table of cases")]
fn bad_params_are_refused_by_name_and_change_nothing() {
    let node = Node::new();
    let daemon = node.start(&[]);
    let socket = node.socket();
    poll("provisioned", || {
        node.state
            .managed(ManagedFile::RuntimeJson)
            .exists()
            .then_some(())
    });
    let long = "r".repeat(300);
    let cases: Vec<(&str, Value, &str)> = vec![
        ("status", json!({"verbose": true}), "verbose"),
        ("check", json!({"fleet": "yes"}), "fleet"),
        ("health", json!({"x": 1}), "x"),
        ("ensure", json!({"dry_run": 1}), "dry_run"),
        ("token.create", json!({"room": "r"}), "identity"),
        (
            "token.create",
            json!({"identity": 5, "room": "r"}),
            "identity",
        ),
        (
            "token.create",
            json!({"identity": "", "room": "r"}),
            "identity",
        ),
        (
            "token.create",
            json!({"identity": long, "room": "r"}),
            "identity",
        ),
        (
            "token.create",
            json!({"identity": "a", "room": long}),
            "room",
        ),
        ("token.create", json!({"identity": "a", "room": ""}), "room"),
        (
            "token.create",
            json!({"identity": "a", "room": "r", "ttl": "soon"}),
            "ttl",
        ),
        (
            "token.create",
            json!({"identity": "a", "room": "r", "ttl": 0}),
            "lifetime",
        ),
        (
            "token.create",
            json!({"identity": "a", "room": "r", "ttl": -5}),
            "ttl",
        ),
        (
            "token.create",
            json!({"identity": "a", "room": "r", "ttl": "400d"}),
            "lifetime",
        ),
        (
            "token.create",
            json!({"identity": "a", "room": "r", "admin": "yes"}),
            "admin",
        ),
        ("token.create", json!({"identity": "a"}), "room"),
        (
            "token.create",
            json!({"identity": "a", "grants": 7}),
            "grants",
        ),
        ("stop", json!({"grace_secs": "long"}), "grace_secs"),
        ("stop", json!({"grace_secs": -1}), "grace_secs"),
        ("restart", json!({"grace_secs": [1]}), "grace_secs"),
        ("start", json!({"now": true}), "`now`"),
        ("secrets.list", json!({"all": true}), "`all`"),
        (
            "secrets.set",
            json!({"name": "NOT_A_SETTING", "value": "x"}),
            "NOT_A_SETTING",
        ),
        (
            "secrets.set",
            json!({"name": "LIVEKIT_NODE_IP", "value": "not-an-ip"}),
            "LIVEKIT_NODE_IP",
        ),
        (
            "secrets.set",
            json!({"name": "LIVEKIT_API_SECRET", "value": "hunter2"}),
            "LIVEKIT_API_SECRET",
        ),
        (
            "secrets.set",
            json!({"name": "LIVEKIT_API_SECRET", "value": "hunter2\nhunter2"}),
            "LIVEKIT_API_SECRET",
        ),
        ("secrets.set", json!({"name": "LIVEKIT_NODE_IP"}), "value"),
        ("secrets.set", json!({"name": 5, "value": "x"}), "name"),
        (
            "secrets.set",
            json!({"name": "LIVEKIT_API_SECRET", "value": 3_141_592_653_589_793_u64}),
            "value",
        ),
        ("secrets.rotate", json!({"grace": "soon"}), "grace"),
        ("secrets.rotate", json!({"grace": -1}), "grace"),
        ("secrets.rotate", json!({"grace": "31d"}), "grace"),
        (
            "secrets.rotate",
            json!({"retire_by": 2_678_400}),
            "retire_by",
        ),
        (
            "secrets.rotate",
            json!({"grace": "2h", "retire_by": "1h"}),
            "retire_by",
        ),
        ("install", json!({"version": "latest"}), "version"),
        (
            "install",
            json!({"version": "1.7.2", "sha256": "xyz"}),
            "sha256",
        ),
        ("install", json!({"force": "yes"}), "force"),
        ("rollback", json!({"to": "1.7.2"}), "`to`"),
        ("render", json!({"show_secrets": true}), "show_secrets"),
        ("logs.tail", json!({}), "name"),
        ("logs.tail", json!({"name": "sshd"}), "name"),
        (
            "logs.tail",
            json!({"name": "livekit-server", "lines": 0}),
            "lines",
        ),
        (
            "logs.tail",
            json!({"name": "livekit-server", "lines": "all"}),
            "lines",
        ),
        ("rpc.discover", json!({"x": 1}), "`x`"),
        // Round 3 (issue 24).
        (
            "token.create",
            json!({"identity": "a", "grants": {"roomJoin": true, "roomjoin": true, "room": "r"}}),
            "roomjoin",
        ),
        (
            "secrets.set",
            json!({"name": "LIVEKIT_API_SECRET", "value": "hunter2hunter2hunter2hunter2hunter2hunter2"}),
            "is live",
        ),
        (
            "secrets.set",
            json!({"name": "LIVEKIT_API_KEY", "value": "APIhunter2"}),
            "is live",
        ),
        (
            "secrets.set",
            json!({"name": "LIVEKIT_NODE_IP", "value": "1".repeat(5000)}),
            "LIVEKIT_NODE_IP",
        ),
        (
            "secrets.set",
            json!({"name": "LIVEKIT_NODE_IP", "value": "10.0.0.1\nExecStartPre=/bin/id"}),
            "LIVEKIT_NODE_IP",
        ),
        (
            "secrets.set",
            json!({"name": "LIVEKIT_ROTATION_GRACE_UNTIL", "value": "2026-01-01T00:00:00Z"}),
            "LIVEKIT_ROTATION_GRACE_UNTIL",
        ),
        (
            "secrets.set",
            json!({"name": "LIVEKIT_VERSION", "value": "1.7.2", "forse": true}),
            "forse",
        ),
        (
            "secrets.set",
            json!({"name": "LIVEKIT_VERSION", "value": "1.7.2", "force": "yes"}),
            "force",
        ),
        ("secrets.rotate", json!({"grace": "1000000000y"}), "grace"),
        (
            "secrets.rotate",
            json!({"grace": 100_000_000_000_u64}),
            "grace",
        ),
    ];
    let watched = [
        node.state.managed(ManagedFile::LivekitYaml),
        node.state.managed(ManagedFile::BackendEnv),
        node.state.managed(ManagedFile::RuntimeJson),
        node.state.secrets_file(),
        node.state.current_link(),
    ];
    let snapshot = || {
        watched
            .iter()
            .map(|p| (std::fs::read(p).ok(), std::fs::read_link(p).ok()))
            .collect::<Vec<_>>()
    };
    let before = snapshot();
    let mut failures = Vec::new();
    for (method, params, names) in &cases {
        match call(&socket, method, params) {
            Err(ClientError::Rpc {
                code: -32602,
                message,
                ..
            }) => {
                if !message.contains(names) {
                    failures.push(format!(
                        "{method} {params}: {message:?} does not name {names}"
                    ));
                }
                if message.contains("hunter2") || message.contains("3141592653589793") {
                    failures.push(format!("{method}: {message:?} echoes the value"));
                }
                if message.len() > 1024 {
                    failures.push(format!("{method}: a {}-byte message", message.len()));
                }
            }
            other => failures.push(format!("{method} {params}: expected -32602, got {other:?}")),
        }
    }
    assert_eq!(snapshot(), before, "a refused call changed the state");
    println!("daemon bad params: {} kinds", cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    drop(daemon);
}

/// Issue 24: the RPC door agrees with the others. For every name of the contract and every
/// sample value, `secrets.set` (with `force`, so the live pair is not refused as live) accepts
/// exactly what `admin::validate_setting` — the CLI's `secrets set` — accepts, and stores what
/// `validate::secret_value` returns (what `ensure` reads back). The node runs no media and has no
/// release source, so the runs the daemon schedules after each `set` touch no network.
#[test]
fn secrets_set_over_rpc_agrees_with_the_cli_and_the_store() {
    use livekit_provision::store::KNOWN;
    use livekit_provision::validate;

    let node = Node::new();
    node.settings("media_owner: external\nlivekit_bin: /nonexistent/livekit-server\n");
    let daemon = node.start(&[]);
    let socket = node.socket();
    let mut checked = 0;
    for known in KNOWN {
        let name = known.name.as_str();
        for value in validate::door_samples() {
            let params = json!({"name": name, "value": value, "force": true});
            let cli = livekit_provision::admin::validate_setting(name, &value).is_ok();
            match call(&socket, "secrets.set", &params) {
                Ok(_) => {
                    assert!(cli, "{name} = {value:?}: RPC accepts, the CLI refuses");
                    let stored: Value =
                        serde_json::from_slice(&std::fs::read(node.state.secrets_file()).unwrap())
                            .unwrap();
                    assert_eq!(
                        stored[name].as_str(),
                        Some(
                            validate::secret_value(&known.name, &value)
                                .unwrap()
                                .as_str()
                        ),
                        "{name} = {value:?}: stored otherwise than the store reads it"
                    );
                }
                Err(ClientError::Rpc { code: -32602, .. }) => {
                    assert!(!cli, "{name} = {value:?}: RPC refuses, the CLI accepts");
                }
                Err(other) => panic!("{name} = {value:?}: {other:?}"),
            }
            checked += 1;
        }
    }
    assert!(checked >= KNOWN.len() * 30, "{checked} pairs checked");
    drop(daemon);
}
