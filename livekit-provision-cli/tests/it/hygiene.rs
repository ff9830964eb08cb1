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

    // Rotation, each step: neither the old nor the new secret is traced.
    let staged = traced(&node, &["secrets", "rotate", "--grace", "1h", "--yes"]).ok();
    let promoted = traced(&node, &["secrets", "rotate", "--promote", "--yes"]).ok();
    let forced = traced(&node, &["secrets", "rotate", "--force", "--yes"]).ok();
    let new = node.store()["LIVEKIT_API_SECRET_PREVIOUS"].clone();
    let newest = node.secret();
    assert_ne!(new, secret);
    for out in [&staged, &promoted, &forced] {
        for s in [&secret, &new, &newest] {
            assert!(
                !out.stderr.contains(s.as_str()) && !out.stdout.contains(s.as_str()),
                "{out}"
            );
        }
    }
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// One result per operation: the CLI prints the typed results the library and the RPC return,
/// never a JSON value shaped by hand (two hand-shaped copies drift: `install` once said
/// "switched back to" here and `reactivated` in the daemon).
#[test]
fn the_cli_builds_no_json_by_hand() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // The scan sees the commands that print JSON.
    assert!(
        files.iter().any(|f| f.ends_with("commands/token.rs")),
        "{files:?}"
    );
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if ["json!", "serde_json::Map", "serde_json::Value"]
                .iter()
                .any(|needle| code.contains(needle))
            {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "JSON built by hand in the CLI (print the operation's result type instead):\n{}",
        found.join("\n")
    );
}
