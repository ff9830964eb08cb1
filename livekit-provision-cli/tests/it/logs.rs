//! `livekit-provision logs`: the tail of the media logs, a missing log, and `--follow`.

use std::io::{BufRead, BufReader, Write};
use std::sync::mpsc;
use std::time::Duration;

use livekit_provision_daemon::protocol::LogsTailResult;

use crate::support::{Node, Reaped};

/// Write `<state>/logs/<name>.log`.
fn write_log(node: &Node, name: &str, text: &str) {
    std::fs::create_dir_all(node.path("logs")).unwrap();
    std::fs::write(node.path(&format!("logs/{name}.log")), text).unwrap();
}

fn numbered(from: u32, to: u32) -> String {
    let lines: Vec<String> = (from..=to).map(|i| format!("line {i}\n")).collect();
    lines.concat()
}

#[test]
fn prints_the_last_n_lines() {
    let node = Node::new();
    write_log(&node, "livekit-server", &numbered(1, 50));
    let out = node.run(&["logs", "-n", "3"]).ok();
    assert_eq!(out.stdout, "line 48\nline 49\nline 50\n", "{out}");
    let out = node.run(&["logs", "livekit-server"]).ok();
    assert_eq!(out.stdout, numbered(41, 50), "default is 10 lines\n{out}");
}

#[test]
fn several_logs_are_prefixed_with_their_name() {
    let node = Node::new();
    write_log(&node, "livekit-server", &numbered(1, 5));
    write_log(&node, "lk-backend", "backend up\n");
    let out = node.run(&["logs", "-n", "1"]).ok();
    assert_eq!(
        out.stdout, "livekit-server | line 5\nlk-backend | backend up\n",
        "{out}"
    );
    // `--json`: each log's tail is a `logs.tail` result, one compact object per line.
    let out = node.run(&["--json", "logs", "-n", "2"]).ok();
    let results: Vec<LogsTailResult> = out
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(results.len(), 2, "{out}");
    assert_eq!(results[0].name, "livekit-server", "{out}");
    assert_eq!(results[0].lines, ["line 4", "line 5"], "{out}");
    assert_eq!(results[1].name, "lk-backend", "{out}");
    assert_eq!(results[1].lines, ["backend up"], "{out}");
    assert_eq!(results[1].path, node.path("logs/lk-backend.log"), "{out}");
    // Exactly that type's keys, nothing added by hand.
    let object: serde_json::Value =
        serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(object, serde_json::to_value(&results[0]).unwrap(), "{out}");
}

#[test]
fn a_missing_log_is_an_error_with_a_hint() {
    let node = Node::new();
    let out = node.run(&["logs"]).expect_code(1);
    assert!(
        out.stderr.contains("error: no log of livekit-server"),
        "{out}"
    );
    assert!(out.stderr.contains("livekit-provision start"), "{out}");
    assert!(out.stdout.is_empty(), "{out}");

    write_log(&node, "livekit-server", "up\n");
    let out = node.run(&["logs", "lk-backend"]).expect_code(1);
    assert!(out.stderr.contains("error: no log of lk-backend"), "{out}");
    assert!(out.stderr.contains("hint:"), "{out}");
    let out = node.run(&["logs", "nginx"]).expect_code(64);
    assert!(
        out.stderr.contains("livekit-server"),
        "names the choices\n{out}"
    );
}

#[test]
fn follow_prints_appended_lines() {
    let node = Node::new();
    write_log(&node, "livekit-server", &numbered(1, 3));
    let mut child = node.cmd(&["logs", "-f", "-n", "2"]).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Reaped(child); // killed by pid and reaped however the test ends
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    // A hang guard, not a timing assertion: the lines come as soon as the CLI reads them.
    let next = || rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(next(), "line 2");
    assert_eq!(next(), "line 3");
    // The tail is printed before following starts: an append now is a new line.
    // One append (O_APPEND, one write), as the media process writes its log.
    std::fs::OpenOptions::new()
        .append(true)
        .open(node.path("logs/livekit-server.log"))
        .unwrap()
        .write_all(b"appended while following\n")
        .unwrap();
    assert_eq!(next(), "appended while following");
    drop(child);
}
