//! `completions SHELL` and `man`: generated from the clap definition, no state needed.
//! (The unit tests in `commands/generate.rs` check every subcommand is named.)

use crate::support::Node;

#[test]
fn completions_and_man_page_print_without_touching_state() {
    let node = Node::new();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef livekit-provision"),
        ("fish", "complete -c livekit-provision"),
    ] {
        let out = node.run(&["completions", shell]).ok();
        assert!(out.stdout.contains(marker), "{shell}\n{out}");
        for command in ["ensure", "secrets", "logs", "completions", "man"] {
            assert!(out.stdout.contains(command), "{shell}: no {command}\n{out}");
        }
    }
    let out = node.run(&["man"]).ok();
    assert!(out.stdout.contains(".TH livekit-provision"), "{out}");
    assert!(out.stdout.contains("logs"), "{out}");
    let out = node.run(&["completions", "tcsh"]).expect_code(64);
    assert!(out.stderr.contains("bash"), "names the choices\n{out}");
    assert!(
        node.state.symlink_metadata().is_err(),
        "completions/man touched the state dir"
    );
}
