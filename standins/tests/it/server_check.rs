//! The real-binary config pre-check of `ensure` and `check`, against the **stand-in** for
//! livekit-server (its `ports` subcommand and config errors copy what livekit-server 1.13.5 was
//! measured to print; the e2e suite runs the same cases on the real binary).

use std::path::Path;

use livekit_provision::BinaryOptions;
use livekit_provision::store::MemoryStore;
use livekit_provision::{Code, EnsureOptions, ManagedFile, StateDir, Warning, check, ensure};

use crate::support::livekit_standin;

fn opts() -> EnsureOptions<'static> {
    EnsureOptions {
        binary: BinaryOptions {
            offline: true,
            ..BinaryOptions::default()
        },
        ..EnsureOptions::default()
    }
}

fn provisioned(provision_yaml: &str) -> (tempfile::TempDir, StateDir, MemoryStore) {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path());
    let settings = format!(
        "livekit_bin: {}\n{provision_yaml}",
        livekit_standin().display()
    );
    std::fs::write(state.settings_file(), settings).unwrap();
    let store = MemoryStore::new();
    ensure(&state, &store, &opts()).unwrap();
    (dir, state, store)
}

/// An executable `wrapper.sh` in `dir` running `body`.
fn script(dir: &Path, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("wrapper.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Every regular file and symlink under `root` with its bytes (or link target).
fn snapshot(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            if meta.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.push((name, target.display().to_string().into_bytes()));
            } else if meta.is_dir() {
                stack.push(path);
            } else if path.extension().is_none_or(|ext| ext != "lock") && name != "extra.yaml" {
                out.push((name, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_nested_typo_in_extra_yaml_is_refused_by_path_and_by_the_binary_and_nothing_is_published() {
    let (_dir, state, store) = provisioned("");
    let before = snapshot(state.root());
    assert!(before.iter().any(|(name, _)| name == "livekit.yaml"));
    std::fs::write(state.extra_file(), "room: {empty_timeout_typo: 5}\n").unwrap();

    // The config model refuses it first, by its path, before anything is resolved or written.
    let err = ensure(&state, &store, &opts()).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("room.empty_timeout_typo"), "{message}");
    assert_eq!(
        snapshot(state.root()),
        before,
        "the published set was touched"
    );
    let report = check(
        &state,
        Some(&store),
        &livekit_provision::CheckOptions::default(),
    );
    assert!(!report.healthy);
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.message.contains("room.empty_timeout_typo")),
        "{report:?}"
    );

    // The binary's own verdict on such a file, the second line of defence (for what a model of
    // the keys cannot know): refused, naming the key, as livekit-server 1.13.5 prints it.
    let published = std::fs::read_to_string(state.managed(ManagedFile::LivekitYaml)).unwrap();
    let candidate = format!("{published}room:\n  empty_timeout_typo: 5\n");
    let refusal = livekit_provision::server_check::check_config(
        &livekit_standin(),
        &candidate,
        livekit_provision::server_check::CHECK_TIMEOUT,
    )
    .unwrap_err();
    assert!(refusal.is_refusal(), "{refusal}");
    assert_eq!(refusal.key(), Some("room.empty_timeout_typo"));
    assert!(
        refusal.to_string().contains("config.RoomConfig"),
        "{refusal}"
    );

    // Fixed, the same overlay key is accepted and published.
    std::fs::write(state.extra_file(), "room: {empty_timeout: 5}\n").unwrap();
    ensure(&state, &store, &opts()).unwrap();
    let published = std::fs::read_to_string(state.managed(ManagedFile::LivekitYaml)).unwrap();
    assert!(published.contains("empty_timeout: 5"), "{published}");
    let report = check(
        &state,
        Some(&store),
        &livekit_provision::CheckOptions::default(),
    );
    assert_eq!(
        report.with_code(Code::ConfigRefused).count(),
        0,
        "{report:?}"
    );
}

#[test]
fn a_single_udp_port_and_loopback_candidates_render_and_the_binary_accepts_them() {
    let (_dir, state, store) =
        provisioned("rtc_udp_port: 7882\nrtc_enable_loopback_candidate: true\n");
    let published = std::fs::read_to_string(state.managed(ManagedFile::LivekitYaml)).unwrap();
    assert!(published.contains("  udp_port: 7882\n"), "{published}");
    assert!(
        published.contains("  enable_loopback_candidate: true\n"),
        "{published}"
    );
    assert!(!published.contains("port_range_start"), "{published}");
    let ports = std::process::Command::new(livekit_standin())
        .arg("--config")
        .arg(state.managed(ManagedFile::LivekitYaml))
        .arg("ports")
        .output()
        .unwrap();
    let ports = String::from_utf8(ports.stdout).unwrap();
    assert!(ports.starts_with("TCP Ports\n"), "{ports}");
    assert!(ports.contains("%!s(int=7882) - ICE/UDP"), "{ports}");
    let report = check(
        &state,
        Some(&store),
        &livekit_provision::CheckOptions::default(),
    );
    assert_eq!(
        report.with_code(Code::ConfigRefused).count(),
        0,
        "{report:?}"
    );
}

#[test]
fn a_binary_that_gives_no_verdict_is_a_warning_and_the_files_are_published() {
    // A `livekit_bin` wrapper that does not pass its arguments on: not livekit's answer.
    let (dir, state, store) = provisioned("");
    let wrapper = script(dir.path(), "echo 'wrapper: nothing to say'");
    let settings = format!("livekit_bin: {}\n", wrapper.display());
    std::fs::write(state.settings_file(), settings).unwrap();
    std::fs::write(state.extra_file(), "room: {empty_timeout: 7}\n").unwrap();

    let report = ensure(&state, &store, &opts()).unwrap();
    let unchecked: Vec<_> = report
        .warnings
        .iter()
        .filter(|w| matches!(w.warning, Warning::ConfigUnchecked { .. }))
        .collect();
    assert_eq!(unchecked.len(), 1, "{:?}", report.warnings);
    assert!(
        unchecked[0].message.contains("no verdict"),
        "{}",
        unchecked[0].message
    );
    let published = std::fs::read_to_string(state.managed(ManagedFile::LivekitYaml)).unwrap();
    assert!(published.contains("empty_timeout: 7"), "{published}");
    let report = check(
        &state,
        Some(&store),
        &livekit_provision::CheckOptions::default(),
    );
    assert_eq!(
        report.with_code(Code::ConfigUnchecked).count(),
        1,
        "{report:?}"
    );
    assert_eq!(
        report.with_code(Code::ConfigRefused).count(),
        0,
        "{report:?}"
    );
}

#[test]
fn a_check_that_times_out_kills_the_wrappers_children_too() {
    use std::time::{Duration, Instant};
    // A wrapper that starts the server as its child (no `exec`): on `ports` it serves instead
    // of answering. The check gives up, and must not leave that child serving.
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("child.pid");
    let body = format!(
        "'{}' & echo $! > '{}'\nwait",
        livekit_standin().display(),
        pid_file.display()
    );
    let wrapper = script(dir.path(), &body);
    let port = crate::support::free_port();
    let candidate = format!("port: {port}\nkeys:\n  APIk: \"secretsecretsecretsecretsecret12\"\n");

    let err = livekit_provision::server_check::check_config(
        &wrapper,
        &candidate,
        Duration::from_millis(1500),
    )
    .unwrap_err();
    assert!(!err.is_refusal(), "{err}");
    assert!(err.to_string().contains("did not finish"), "{err}");
    let child: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SIGKILL is delivered asynchronously: wait (bounded) for the child to be gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    let gone = || {
        std::fs::read_to_string(format!("/proc/{child}/stat")).map_or(true, |stat| {
            stat.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
    };
    while !gone() && Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert!(gone(), "the wrapper's child {child} outlived the check");
}
