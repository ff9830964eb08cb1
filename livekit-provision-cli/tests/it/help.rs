//! `--help` for every command.

use crate::support::Node;

#[test]
fn every_command_has_help() {
    let node = Node::new();
    let commands: &[&[&str]] = &[
        &[],
        &["ensure"],
        &["check"],
        &["render"],
        &["install"],
        &["rollback"],
        &["secrets"],
        &["secrets", "list"],
        &["secrets", "get"],
        &["secrets", "set"],
        &["secrets", "rotate"],
        &["token"],
        &["start"],
        &["stop"],
        &["restart"],
        &["status"],
        &["logs"],
        &["completions"],
        &["man"],
    ];
    for command in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let out = node.run(&args).ok();
        assert!(
            out.stdout.contains("Usage: livekit-provision"),
            "{args:?}\n{out}"
        );
        assert!(out.stdout.contains("--state-dir"), "{args:?}\n{out}");
    }
    assert!(
        node.state.symlink_metadata().is_err(),
        "--help touched the state dir"
    );
    let out = node.run(&["--version"]).ok();
    assert!(out.stdout.starts_with("livekit-provision "), "{out}");
}

/// A usage error exits 64 (`EX_USAGE`), never 2: a script reading `ensure --dry-run`'s 2 as
/// "changes pending" must not take a typo for one (issue 25, item 7).
#[test]
fn usage_errors_exit_64_and_changes_pending_stays_2() {
    let node = Node::new();
    let typos: &[&[&str]] = &[
        &["ensure", "--dry-rnu"],
        &["ensure", "--dry-run", "--bogus"],
        &["ensur"],
        &["token"],
        &["logs", "-n", "many"],
        &[],
    ];
    for args in typos {
        let out = node.run(args).expect_code(64);
        assert!(
            out.stderr.contains("Usage:") || out.stderr.contains("try '--help'"),
            "{args:?}\n{out}"
        );
        assert!(out.stdout.is_empty(), "{args:?}\n{out}");
    }
    // `--help` and `--version` are not errors.
    node.run(&["--version"]).ok();
    node.run(&["ensure", "--help"]).ok();
    assert!(
        node.state.symlink_metadata().is_err(),
        "a usage error touched the state dir"
    );
    // Changes pending on a fresh node: still 2.
    node.run(&["ensure", "--dry-run"]).expect_code(2);
}
