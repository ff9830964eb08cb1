//! Bad input: exit 1, an `error:` line naming the input and a `hint:` line, nothing changed.

use std::os::unix::fs::PermissionsExt;

use insta::assert_snapshot;

use crate::support::{Node, Out};

/// Run `args` on a converged node; expect exit 1, an error and a hint, and an unchanged disk.
#[track_caller]
fn refused(node: &Node, args: &[&str]) -> Out {
    let before = node.listing();
    let out = node.run(args).expect_code(1);
    assert!(out.stderr.starts_with("error: "), "{out}");
    assert!(out.stderr.contains("\nhint: "), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert_eq!(
        node.listing(),
        before,
        "a refused command changed the disk\n{out}"
    );
    out
}

#[test]
fn secrets_set_validates_the_value_by_its_name() {
    let node = Node::converged();
    let out = refused(
        &node,
        &["secrets", "set", "LIVEKIT_VERSION", "1.7.2; rm -rf /"],
    );
    assert_snapshot!(out.stderr, @r#"
    error: LIVEKIT_VERSION: "1.7.2; rm -rf /" is not a version: only digits, letters, '.' and '-' may appear (e.g. v1.7.2)
    hint: nothing was stored; fix the value of LIVEKIT_VERSION
    "#);
    let out = refused(&node, &["secrets", "set", "LIVEKIT_NODE_IP", "nope"]);
    assert_snapshot!(out.stderr, @r#"
    error: LIVEKIT_NODE_IP: "nope" is not an IP address
    hint: nothing was stored; fix the value of LIVEKIT_NODE_IP
    "#);
}

#[test]
fn a_short_api_secret_is_refused_without_echoing_it() {
    let node = Node::converged();
    let value = "shortS3cr";
    let out = refused(&node, &["secrets", "set", "LIVEKIT_API_SECRET", value]);
    assert!(out.stderr.contains("LIVEKIT_API_SECRET"), "{out}");
    assert!(
        !out.stderr.contains(value),
        "the refused secret was echoed\n{out}"
    );
    // Also when read from stdin.
    let before = node.listing();
    let out = node
        .run_stdin(
            &["secrets", "set", "LIVEKIT_API_SECRET", "-"],
            &format!("{value}\n"),
        )
        .expect_code(1);
    assert!(!out.stderr.contains(value), "{out}");
    assert_eq!(node.listing(), before);
}

#[test]
fn a_state_dir_that_is_a_file_is_named() {
    let node = Node::new();
    std::fs::write(&node.state, "not a directory").unwrap();
    let out = node.run(&["ensure"]).expect_code(1);
    node.settings().bind(|| {
        assert_snapshot!(out.stderr, @r"
        error: [TMP]/state is not a directory
        hint: move [TMP]/state aside, or pass --state-dir naming a directory
        ");
    });
    assert_eq!(
        std::fs::read_to_string(&node.state).unwrap(),
        "not a directory"
    );
}

#[test]
fn a_state_dir_under_a_file_names_the_file() {
    let mut node = Node::new();
    std::fs::write(&node.state, "not a directory").unwrap();
    let file = std::mem::replace(&mut node.state, node.tmp.path().join("state/sub"));
    let out = node.run(&["ensure"]).expect_code(1);
    node.settings().bind(|| {
        assert_snapshot!(out.stderr, @r"
        error: [TMP]/state is not a directory
        hint: move [TMP]/state aside, or pass --state-dir naming a directory
        ");
    });
    assert_eq!(std::fs::read_to_string(file).unwrap(), "not a directory");
}

#[test]
fn an_unknown_kind_of_store_is_refused() {
    let node = Node::converged();
    let out = refused(&node, &["--secrets", "bogus:x", "ensure"]);
    assert_snapshot!(out.stderr, @r#"
    error: invalid secret store "bogus:x": unknown kind of store
    hint: use file:PATH, exec:PROGRAM or redis://[user:pass@]host:port[/db][?prefix=NAME&timeout=2s] (rediss:// for TLS)
    "#);
}

#[test]
fn a_missing_exec_helper_is_named() {
    let node = Node::converged();
    let out = refused(&node, &["--secrets", "exec:/nonexistent/helper", "ensure"]);
    assert!(out.stderr.contains("/nonexistent/helper"), "{out}");
}

#[test]
fn an_exec_helper_printing_garbage_is_an_error_not_a_value() {
    let node = Node::converged();
    let helper = node.tmp.path().join("garbage-helper");
    std::fs::write(&helper, "#!/bin/sh\necho 'garbage \x01 !!'\n").unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let spec = format!("exec:{}", helper.display());
    let out = refused(&node, &["--secrets", &spec, "ensure"]);
    assert!(out.stderr.contains(&helper.display().to_string()), "{out}");
}

#[test]
fn an_unknown_key_in_provision_yaml_is_named() {
    let node = Node::converged();
    std::fs::write(node.path("provision.yaml"), "prot: 7880\n").unwrap();
    let out = refused(&node, &["ensure"]);
    let first = out.stderr.lines().next().unwrap();
    assert!(
        first.contains("provision.yaml") && first.contains("`prot`"),
        "{out}"
    );
}

#[test]
fn extra_yaml_may_not_override_a_managed_key() {
    let node = Node::converged();
    std::fs::write(node.path("extra.yaml"), "port: 9999\n").unwrap();
    let out = refused(&node, &["ensure"]);
    let first = out.stderr.lines().next().unwrap();
    assert!(
        first.contains("extra.yaml") && first.contains("`port`"),
        "{out}"
    );
    assert!(
        out.stderr.contains("hint: set `port` in provision.yaml"),
        "{out}"
    );
}

#[test]
fn an_unreadable_store_is_an_error_not_absent() {
    // Converged, then the store is damaged: nothing is minted, nothing rewritten.
    let node = Node::converged();
    let (key, secret) = node.triple().consistent();
    std::fs::write(node.path("secrets.json"), "{not json").unwrap();
    for args in [
        &["ensure"][..],
        &["ensure", "--dry-run"],
        &["secrets", "list"],
        &["render"],
    ] {
        let out = refused(&node, args);
        assert!(out.stderr.contains("secrets.json is corrupt"), "{out}");
    }
    assert_eq!(node.read("secrets.json"), "{not json");
    assert_eq!(node.triple().consistent(), (key, secret));

    // Fresh: no secret minted, no file written.
    let node = Node::new();
    std::fs::create_dir(&node.state).unwrap();
    std::fs::write(node.path("secrets.json"), "{not json").unwrap();
    let out = node.run(&["ensure"]).expect_code(1);
    assert!(out.stderr.contains("hint: "), "{out}");
    assert_eq!(node.read("secrets.json"), "{not json");
    for file in [
        "livekit.yaml",
        "backend.env",
        "runtime.json",
        "generations/0000000001",
    ] {
        assert!(
            node.path(file).symlink_metadata().is_err(),
            "{file} was written"
        );
    }
}

#[test]
fn secrets_set_refuses_a_name_livekit_provision_does_not_read() {
    let node = Node::converged();
    let out = refused(&node, &["secrets", "set", "LIVEKIT_NODEIP", "10.0.0.5"]);
    let mut lines = out.stderr.lines();
    assert_eq!(
        lines.next().unwrap(),
        "error: LIVEKIT_NODEIP is not a setting livekit-provision reads; nothing was stored"
    );
    assert!(lines.next().unwrap().contains("LIVEKIT_NODE_IP"), "{out}");
    let out = refused(&node, &["secrets", "set", "livekit_version", "1.7.2"]);
    assert!(
        out.stderr.contains("hint: known names: LIVEKIT_VERSION"),
        "{out}"
    );
}

#[test]
fn a_state_dir_without_write_permission_is_named() {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    // A parent directory the caller may not write to. As root (CI), the command runs as
    // `nobody`, for whom root's 0555 directory is read-only; otherwise the mode alone does it.
    let node = Node::new();
    let tmp = node.tmp.path();
    std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    let parent = tmp.join("read-only");
    std::fs::create_dir(&parent).unwrap();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o555)).unwrap();
    // `nobody` may not be able to reach the build directory: run a copy from the temp dir.
    let bin = tmp.join("livekit-provision");
    std::fs::copy(crate::support::BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = parent.join("state");

    let mut cmd = Command::new(&bin);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .arg("--state-dir")
        .arg(&state)
        .arg("ensure")
        .stdin(Stdio::null());
    if nix::unistd::geteuid().is_root() {
        cmd.uid(65534).gid(65534);
    }
    let out = crate::support::output_of_fresh_binary(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains(&*state.to_string_lossy()) || stderr.contains(&*parent.to_string_lossy()),
        "{stderr}"
    );
    assert!(stderr.contains("\nhint: "), "{stderr}");
    assert!(!state.exists(), "nothing may be created");
}
