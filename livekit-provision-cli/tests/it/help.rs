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

/// The text of `--help` under the heading `Global options:` and the text before it.
fn split_help(out: &str) -> (&str, &str) {
    out.split_once("\nGlobal options:\n")
        .unwrap_or_else(|| panic!("no `Global options:` heading in\n{out}"))
}

/// Every command lists the options that are not its own under their own heading, and the
/// release options only where they apply (issue 25, item 6).
#[test]
fn global_options_have_their_own_heading_and_appear_only_where_they_apply() {
    let node = Node::new();
    // The commands that install or run livekit-server take --release-url and --livekit-bin.
    let release: &[&[&str]] = &[
        &["ensure"],
        &["install"],
        &["check"],
        &["start"],
        &["restart"],
        &["exec"],
        &["secrets", "rotate"],
    ];
    let others: &[&[&str]] = &[
        &["token"],
        &["render"],
        &["rollback"],
        &["stop"],
        &["status"],
        &["logs"],
        &["units"],
        &["secrets", "list"],
        &["secrets", "set"],
        &["completions"],
        &["man"],
    ];
    let commands = release
        .iter()
        .map(|c| (c, true))
        .chain(others.iter().map(|c| (c, false)));
    for (command, release) in commands {
        let mut args = command.to_vec();
        args.push("--help");
        let out = node.run(&args).ok().stdout;
        let (own, global) = split_help(&out);
        for option in [
            "--state-dir",
            "--secrets",
            "--json",
            "--quiet",
            "--verbose",
            "--color",
        ] {
            assert!(
                global.contains(option),
                "{args:?}: {option} not global\n{out}"
            );
            assert!(
                !own.contains(option),
                "{args:?}: {option} among its own\n{out}"
            );
        }
        for option in ["--release-url", "--livekit-bin"] {
            assert_eq!(
                global.contains(option),
                release,
                "{args:?}: {option}\n{out}"
            );
            assert!(
                !own.contains(option),
                "{args:?}: {option} among its own\n{out}"
            );
        }
    }
    // Given before the command, they still count (scripts wrote it that way).
    let mirror = node.tmp.path().join("no-mirror");
    let out = node
        .run(&[
            "--release-url",
            &format!("file://{}", mirror.display()),
            "install",
            "--version",
            "1.7.2",
        ])
        .expect_code(1);
    assert!(out.stderr.contains(&mirror.display().to_string()), "{out}");
}

/// `--color`: the tool's own labels and clap's usage errors follow one choice; `NO_COLOR` and
/// `CLICOLOR_FORCE` are honoured under `auto` (tests run without a terminal).
#[test]
fn one_colour_choice_for_our_lines_and_clap_s() {
    let node = Node::new();
    let red_error = "\u{1b}[1m\u{1b}[31merror:\u{1b}[0m";
    let cyan_hint = "\u{1b}[1m\u{1b}[36mhint:\u{1b}[0m";
    // Our own error (a token needs a room) and clap's (an unknown command), each way.
    let ours: &[&str] = &["token", "--identity", "x"];
    let clap: &[&str] = &["bogus"];
    let run = |args: &[&str], env: &[(&str, &str)], flag: Option<&str>| {
        let mut all: Vec<&str> = flag.map(|f| vec!["--color", f]).unwrap_or_default();
        all.extend_from_slice(args);
        let mut cmd = node.cmd(&all);
        let out = cmd.envs(env.iter().copied()).output().unwrap();
        crate::support::Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    };
    for args in [ours, clap] {
        let coloured = [
            run(args, &[], Some("always")),
            run(args, &[("CLICOLOR_FORCE", "1")], None),
        ];
        for out in &coloured {
            assert!(out.stderr.starts_with(red_error), "{args:?}\n{out}");
        }
        let plain = [
            run(args, &[], None),
            run(args, &[], Some("never")),
            run(args, &[("NO_COLOR", "1")], None),
            run(args, &[("CLICOLOR_FORCE", "1")], Some("never")),
        ];
        for out in &plain {
            assert!(out.stderr.starts_with("error:"), "{args:?}\n{out}");
            assert!(!out.stderr.contains('\u{1b}'), "{args:?}\n{out}");
        }
    }
    assert!(run(ours, &[], Some("always")).stderr.contains(cyan_hint));
    // A bad value is a usage error like any other.
    let out = run(&["status"], &[], Some("sometimes")).expect_code(64);
    assert!(out.stderr.contains("sometimes"), "{out}");
}
