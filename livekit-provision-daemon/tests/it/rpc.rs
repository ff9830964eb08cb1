//! The JSON-RPC surface: malformed input gets errors, never a crash; many clients at once.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use livekit_provision::daemon::ClientError;
use serde_json::{Value, json};

use crate::support::{Node, call};

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
