//! Concurrent `ensure` processes on one state directory.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{Node, Reaped, finish, wait_until};

#[test]
fn concurrent_ensures_on_a_fresh_node_agree_on_one_secret() {
    let node = Node::new();
    let children: Vec<_> = (0..10)
        .map(|_| node.cmd(&["ensure"]).spawn().unwrap())
        .collect();
    for child in children {
        finish(child).ok();
    }
    let store = node.store();
    let secrets: Vec<_> = store.keys().filter(|k| k.contains("SECRET")).collect();
    assert_eq!(secrets, ["LIVEKIT_API_SECRET"], "{store:?}");
    let pair = node.triple().consistent();
    assert_eq!(pair, (node.key(), node.secret()));
    // And the node is converged.
    let before = node.listing();
    node.run(&["ensure", "--dry-run"]).ok();
    assert_eq!(node.listing(), before);
}

/// Hold `run/lock` from a shell (flock(1) on fd 9, so the locker listed in `/proc/locks` is the
/// exited flock(1)), recording the shell's pid in it like older versions of livekit-provision
/// did when `record` is set. Returns once the lock is held.
fn hold_lock(node: &Node, record: bool) -> Reaped {
    let script = if record {
        r#"exec 9>>"$1"; flock 9; echo $$ >"$1"; echo locked; exec sleep 60"#
    } else {
        r#"exec 9>>"$1"; flock 9; echo locked; exec sleep 60"#
    };
    let mut holder = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(node.path("run/lock"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "locked\n");
    Reaped(holder)
}

/// Run `ensure` while `holder` holds the lock; return its "waiting for" line once printed,
/// then release the lock and check that the ensure finishes.
fn waiting_message(node: &Node, holder: Reaped) -> String {
    let mut waiter = node.cmd(&["ensure"]).spawn().unwrap();
    let stderr = waiter.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    wait_until(
        "the waiter to say it waits",
        Duration::from_secs(60),
        || {
            seen.extend(rx.try_iter());
            seen.iter().any(|l| l.contains("waiting for"))
        },
    );
    // Still waiting while the lock is held.
    assert!(waiter.try_wait().unwrap().is_none(), "{seen:?}");
    drop(holder);
    let status = waiter.wait().unwrap();
    assert!(status.success(), "{seen:?}");
    seen.into_iter()
        .find(|l| l.contains("waiting for"))
        .unwrap()
}

#[test]
fn a_waiting_ensure_names_the_lock_and_its_holder() {
    let node = Node::converged();
    let holder = hold_lock(&node, true);
    let pid = holder.0.id();
    let message = waiting_message(&node, holder);
    assert_eq!(
        message,
        format!(
            "waiting for pid {pid}, which holds {}",
            node.path("run/lock").display()
        )
    );
}

#[test]
fn a_holder_that_did_not_record_itself_is_not_named_by_a_stale_pid() {
    // run/lock still names the (exited) process of the last ensure.
    let node = Node::converged();
    let message = waiting_message(&node, hold_lock(&node, false));
    assert_eq!(
        message,
        format!(
            "waiting for another process, which holds {}",
            node.path("run/lock").display()
        )
    );
}

#[test]
fn concurrent_ensures_mint_once_and_install_once() {
    let node = Node::new();
    let mirror = crate::support::Mirror::new(node.tmp.path().join("mirror"));
    mirror.publish("1.7.2");
    let url = mirror.url();
    node.run(&["secrets", "set", "LIVEKIT_VERSION", "1.7.2"])
        .ok();
    let children: Vec<_> = (0..8)
        .map(|_| {
            node.cmd(&["ensure", "--release-url", &url])
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = children.into_iter().map(|c| finish(c).ok()).collect();
    let count = |prefix: &str| {
        outs.iter()
            .flat_map(|o| o.stdout.lines())
            .filter(|l| l.starts_with(prefix))
            .count()
    };
    assert_eq!(count("minted and stored"), 1, "{outs:#?}");
    assert_eq!(count("installed livekit-server 1.7.2"), 1, "{outs:#?}");
    assert_eq!(count("wrote livekit.yaml"), 1, "{outs:#?}");
    node.triple().consistent();
    node.run(&["check"]).ok();
}
