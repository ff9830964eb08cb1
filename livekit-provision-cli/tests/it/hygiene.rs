//! The stored secret never reaches logs, even at `-vvv` with `RUST_LOG=trace`.

use crate::support::{Mirror, Node, Out, finish};

fn traced(node: &Node, args: &[&str]) -> Out {
    let mut cmd = node.cmd(&["-vvv"]);
    cmd.args(args).env("RUST_LOG", "trace");
    finish(cmd.spawn().unwrap())
}

#[test]
fn no_secret_in_traces() {
    let node = Node::new();
    let mirror = Mirror::new(node.tmp.path().join("mirror"));
    mirror.publish("1.7.2");
    let url = mirror.url();
    node.run(&["secrets", "set", "LIVEKIT_VERSION", "1.7.2"])
        .ok();
    let first = traced(&node, &["ensure", "--release-url", &url]).ok();
    let secret = node.secret();
    assert!(!first.stderr.contains(&secret), "ensure traced the secret");
    assert!(!first.stdout.contains(&secret), "ensure printed the secret");
    assert!(first.stderr.contains(" INFO "), "-vvv should log\n{first}");

    for args in [
        &["ensure", "--release-url", url.as_str()][..],
        &["check"],
        &["check", "--json"],
        &["render"],
        &["render", "--json"],
        &["secrets", "list"],
        &["secrets", "list", "--json"],
        &["status"],
    ] {
        let out = traced(&node, args);
        assert!(
            !out.stderr.contains(&secret),
            "{args:?} traced the secret\n{out}"
        );
        assert!(
            !out.stdout.contains(&secret),
            "{args:?} printed the secret\n{out}"
        );
    }
    // These print the secret (or a token signed with it) on stdout on purpose; never on stderr.
    for args in [
        &["token", "--identity", "alice", "--room", "r1"][..],
        &["secrets", "get", "LIVEKIT_API_SECRET"],
        &["render", "--show-secrets"],
    ] {
        let out = traced(&node, args).ok();
        assert!(
            !out.stderr.contains(&secret),
            "{args:?} traced the secret\n{out}"
        );
    }

    // Rotation: neither the old nor the new secret is traced.
    let out = traced(&node, &["secrets", "rotate", "--grace", "1h", "--yes"]).ok();
    let new = node.secret();
    assert_ne!(new, secret);
    for s in [&secret, &new] {
        assert!(
            !out.stderr.contains(s.as_str()) && !out.stdout.contains(s.as_str()),
            "{out}"
        );
    }
}
