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
