//! Hints derived from the state, per command (issue 25, items 1, 4, 5, 8): a table of a state,
//! a command, and what its `hint:` must and must not say. Every case also holds the one failure
//! rule: one `error:` line (no `caused by:` layers unless `-v`), the same `error:` and `hint:`
//! lines under `-q`, and the same hint in `--json`'s `error` object.

use crate::support::{Node, Out};

/// A loopback URL nothing listens on: a release server that refuses (never the internet).
pub fn refusing_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/")
}

struct Case {
    what: &'static str,
    /// Brings the node to the state (runs commands, writes files).
    setup: fn(&Node) -> Vec<String>,
    must: &'static [&'static str],
    must_not: &'static [&'static str],
}

fn pinned(node: &Node) {
    node.run(&["secrets", "set", "LIVEKIT_VERSION", "1.7.2"])
        .ok();
}

/// The args of a case, with `{url}` and `{mirror}` filled in.
fn offline_ensure(node: &Node) -> Vec<String> {
    pinned(node);
    vec!["ensure".into(), "--release-url".into(), refusing_url()]
}

fn offline_install(node: &Node) -> Vec<String> {
    pinned(node);
    vec!["install".into(), "--release-url".into(), refusing_url()]
}

fn missing_mirror(node: &Node) -> Vec<String> {
    pinned(node);
    let mirror = node.tmp.path().join("mirror");
    vec![
        "ensure".into(),
        "--release-url".into(),
        format!("file://{}", mirror.display()),
    ]
}

fn never_provisioned(_: &Node) -> Vec<String> {
    vec!["status".into()]
}

fn start_pinned_not_installed(node: &Node) -> Vec<String> {
    let mirror = node.tmp.path().join("mirror");
    pinned(node);
    node.run(&[
        "ensure",
        "--release-url",
        &format!("file://{}", mirror.display()),
    ])
    .expect_code(1);
    vec!["start".into()]
}

fn start_nothing_pinned(node: &Node) -> Vec<String> {
    node.run(&["ensure"]).ok();
    vec!["start".into()]
}

fn get_unknown_name(node: &Node) -> Vec<String> {
    node.run(&["ensure"]).ok();
    vec!["secrets".into(), "get".into(), "FOO".into()]
}

const CASES: &[Case] = &[
    Case {
        what: "ensure, the release server refuses",
        setup: offline_ensure,
        must: &[
            "could not be reached",
            "--release-url file:///DIR",
            "DIR/v1.7.2/livekit_1.7.2_linux_",
            "DIR/v1.7.2/checksums.txt",
            "--livekit-bin PATH",
        ],
        must_not: &["see the warning", "above"],
    },
    Case {
        what: "install, the release server refuses",
        setup: offline_install,
        must: &[
            "could not be reached",
            "--release-url file:///DIR",
            "--livekit-bin PATH",
        ],
        must_not: &["above"],
    },
    Case {
        what: "ensure, the file:// mirror is missing",
        setup: missing_mirror,
        must: &[
            "/mirror/v1.7.2/checksums.txt",
            "/mirror/v1.7.2/livekit_1.7.2_linux_",
            "--livekit-bin PATH",
        ],
        must_not: &["reachable", "network", "above"],
    },
    Case {
        what: "status, never provisioned",
        setup: never_provisioned,
        must: &["livekit-provision ensure"],
        must_not: &[],
    },
    Case {
        what: "start, pinned but not installed",
        setup: start_pinned_not_installed,
        must: &[
            "1.7.2 is pinned but not installed",
            "livekit-provision ensure",
            "--livekit-bin",
        ],
        must_not: &["pin a version"],
    },
    Case {
        what: "start, nothing pinned",
        setup: start_nothing_pinned,
        must: &["secrets set LIVEKIT_VERSION"],
        must_not: &["is pinned"],
    },
    Case {
        what: "secrets get of a name livekit-provision does not read",
        setup: get_unknown_name,
        must: &["LIVEKIT_VERSION"],
        must_not: &["secrets set FOO"],
    },
];

/// The `hint:` line of a run (there is exactly one).
fn hint_line(out: &Out) -> String {
    let hints: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("hint: "))
        .collect();
    assert_eq!(hints.len(), 1, "one hint line\n{out}");
    hints[0].trim_start_matches("hint: ").to_owned()
}

/// The `error:` and `hint:` lines.
fn failure_lines(out: &Out) -> Vec<&str> {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("error: ") || l.starts_with("hint: "))
        .collect()
}

#[test]
fn each_command_s_hint_follows_the_state() {
    for case in CASES {
        let node = Node::new();
        let args = (case.setup)(&node);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = node.run(&args).expect_code(1);
        let hint = hint_line(&out);
        for text in case.must {
            assert!(
                hint.contains(text),
                "{}: {text:?} not in the hint\n{out}",
                case.what
            );
        }
        for text in case.must_not {
            assert!(
                !hint.contains(text),
                "{}: {text:?} in the hint\n{out}",
                case.what
            );
        }
        // One error line, no layers.
        assert_eq!(
            out.stderr
                .lines()
                .filter(|l| l.starts_with("error: "))
                .count(),
            1,
            "{}\n{out}",
            case.what
        );
        assert!(!out.stderr.contains("caused by:"), "{}\n{out}", case.what);

        // -q: the same error and hint, nothing else about it.
        let quiet: Vec<&str> = ["-q"].iter().copied().chain(args.iter().copied()).collect();
        let q = node.run(&quiet).expect_code(1);
        assert_eq!(
            failure_lines(&q),
            failure_lines(&out),
            "{}: -q\n{q}",
            case.what
        );

        // --json: the same hint in the `error` object.
        let json: Vec<&str> = ["--json"]
            .iter()
            .copied()
            .chain(args.iter().copied())
            .collect();
        let j = node.run(&json).expect_code(1);
        let doc: serde_json::Value = serde_json::from_str(&j.stdout)
            .unwrap_or_else(|e| panic!("{}: --json is not JSON ({e})\n{j}", case.what));
        assert_eq!(
            doc["error"]["hint"],
            hint.as_str(),
            "{}: --json\n{j}",
            case.what
        );
    }
}

/// `-v` shows every cause of a download failure; without it only the innermost one.
#[test]
fn the_layers_of_a_download_failure_only_with_verbose() {
    let node = Node::new();
    let url = refusing_url();
    let out = node
        .run(&["install", "--version", "1.7.2", "--release-url", &url])
        .expect_code(1);
    let error = out.stderr.lines().next().unwrap();
    assert!(
        error.ends_with("Connection refused (os error 111)"),
        "{out}"
    );
    assert!(!out.stderr.contains("caused by:"), "{out}");
    let out = node
        .run(&["-v", "install", "--version", "1.7.2", "--release-url", &url])
        .expect_code(1);
    assert!(out.stderr.matches("caused by:").count() >= 2, "{out}");
}
