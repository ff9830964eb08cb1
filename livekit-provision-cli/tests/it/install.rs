//! Installing livekit-server from a `file://` mirror (a stand-in shell script, never the real
//! server: these machines cannot download it).

use std::os::unix::fs::PermissionsExt;

use livekit_provision_daemon::protocol::{InstallResult, InstallVerdict, RollbackResult};

use crate::support::{Mirror, Node};

/// A converged node pinned to v1.7.2, and a mirror serving 1.7.2 and 1.7.3.
fn pinned_node() -> (Node, Mirror) {
    let node = Node::new();
    let mirror = Mirror::new(node.tmp.path().join("mirror"));
    mirror.publish("1.7.2").publish("1.7.3");
    node.run(&["secrets", "set", "LIVEKIT_VERSION", "v1.7.2"])
        .ok();
    (node, mirror)
}

/// The version file `bin/livekit-server` points at, checked to be an executable file.
#[track_caller]
fn active_binary(node: &Node) -> String {
    let link = node.path("bin/livekit-server");
    let meta = link.symlink_metadata().unwrap();
    assert!(meta.is_symlink(), "bin/livekit-server is not a symlink");
    let target = std::fs::canonicalize(&link).unwrap();
    let meta = target.metadata().unwrap();
    assert!(meta.is_file());
    assert_ne!(meta.permissions().mode() & 0o111, 0, "not executable");
    std::fs::read_to_string(&target).unwrap()
}

#[test]
fn ensure_installs_the_pinned_version_then_has_nothing_to_do() {
    let (node, mirror) = pinned_node();
    let url = mirror.url();
    let out = node.run(&["ensure", "--release-url", &url]).ok();
    assert!(
        out.stdout.contains("installed livekit-server 1.7.2"),
        "{out}"
    );
    assert!(!out.stderr.contains("LIVEKIT_VERSION is not set"), "{out}");
    assert!(active_binary(&node).contains("livekit-server version 1.7.2"));
    let runtime: serde_json::Value = serde_json::from_str(&node.read("runtime.json")).unwrap();
    assert_eq!(runtime["version"], "1.7.2", "{runtime}");

    let before = node.listing();
    let out = node.run(&["ensure", "--release-url", &url]).ok();
    assert!(
        out.stdout.starts_with("nothing to do:") && out.stdout.contains("1.7.2 installed"),
        "{out}"
    );
    assert_eq!(node.listing(), before);
    node.run(&["check"]).ok();
}

#[test]
fn install_upgrades_and_rollback_returns_and_pins() {
    let (node, mirror) = pinned_node();
    let url = mirror.url();
    node.run(&["ensure", "--release-url", &url]).ok();

    let out = node
        .run(&["install", "--version", "1.7.3", "--release-url", &url])
        .ok();
    assert!(
        out.stdout
            .starts_with("installed livekit-server 1.7.3 (sha256 "),
        "{out}"
    );
    assert!(active_binary(&node).contains("version 1.7.3"));

    let out = node.run(&["rollback"]).ok();
    assert_eq!(
        out.stdout, "rolled back livekit-server 1.7.3 -> 1.7.2\n",
        "{out}"
    );
    assert!(active_binary(&node).contains("version 1.7.2"));
    assert_eq!(node.store()["LIVEKIT_VERSION"], "v1.7.2");
    // Pinned: ensure keeps 1.7.2 and has nothing to do with the binary.
    let out = node.run(&["ensure", "--release-url", &url]).ok();
    assert!(out.stdout.contains("1.7.2 installed"), "{out}");
}

#[test]
fn a_bad_checksum_installs_nothing() {
    let node = Node::new();
    let mirror = Mirror::new(node.tmp.path().join("mirror"));
    mirror.publish("1.7.2").publish_bad_checksum("1.7.3");
    let url = mirror.url();

    // ensure on a version whose checksum is wrong: files provisioned, exit 1 with the failure
    // as the error itself (said once: no warning to look back at).
    node.run(&["secrets", "set", "LIVEKIT_VERSION", "1.7.3"])
        .ok();
    let out = node.run(&["ensure", "--release-url", &url]).expect_code(1);
    assert!(
        out.stderr
            .contains("error: livekit-server 1.7.3 was not installed: SHA-256 of file://"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains(&format!("expected {}", "ab".repeat(32))),
        "{out}"
    );
    assert!(!out.stderr.contains("warning: livekit-server"), "{out}");
    assert!(
        out.stderr
            .contains("hint: the download is not the published release"),
        "{out}"
    );
    node.triple().consistent();
    assert!(node.path("bin/livekit-server").symlink_metadata().is_err());

    // install over a good binary: refused, naming the mismatch; the old binary stays.
    node.run(&["secrets", "set", "LIVEKIT_VERSION", "1.7.2"])
        .ok();
    node.run(&["ensure", "--release-url", &url]).ok();
    let good = active_binary(&node);
    let before = node.listing();
    let out = node
        .run(&["install", "--version", "1.7.3", "--release-url", &url])
        .expect_code(1);
    let first = out.stderr.lines().next().unwrap();
    assert!(first.starts_with("error: SHA-256 of file://"), "{out}");
    assert!(first.contains("livekit_1.7.3_linux_"), "{out}");
    assert!(
        first.contains(&format!("expected {}", "ab".repeat(32))),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("\nhint: the download is not the published release"),
        "{out}"
    );
    assert_eq!(active_binary(&node), good);
    // The download was staged in bin/ and removed: only bin/'s own mtime may change.
    let without_bin_dir = |rows: Vec<String>| -> Vec<String> {
        rows.into_iter()
            .filter(|r| !r.starts_with("bin dir "))
            .collect()
    };
    assert_eq!(
        without_bin_dir(node.listing()),
        without_bin_dir(before),
        "a refused download changed the state dir"
    );
}

/// A rerun with the files converged and the binary still missing fails: it must not say
/// "nothing to do" before exiting 1 (issue 25, item 2).
#[test]
fn a_failed_install_is_not_reported_as_nothing_to_do() {
    let node = Node::new();
    let mirror = Mirror::new(node.tmp.path().join("mirror"));
    mirror.publish_bad_checksum("1.7.3");
    let url = mirror.url();
    node.run(&["secrets", "set", "LIVEKIT_VERSION", "1.7.3"])
        .ok();
    node.run(&["ensure", "--release-url", &url]).expect_code(1);

    // The second run has no file to write: only the binary is missing.
    let out = node.run(&["ensure", "--release-url", &url]).expect_code(1);
    assert!(!out.stdout.contains("nothing to do"), "{out}");
    assert!(
        out.stdout
            .contains("are up to date; livekit-server 1.7.3 is not installed"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("error: livekit-server 1.7.3 was not installed"),
        "{out}"
    );

    // `start` then: the version is pinned, so the hint is to install it, not to pin one.
    let out = node.run(&["start"]).expect_code(1);
    assert!(
        out.stderr
            .contains("error: livekit-server is not installed"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("hint: livekit-server 1.7.3 is pinned but not installed"),
        "{out}"
    );
    assert!(!out.stderr.contains("pin a version"), "{out}");
}

/// `start` on a node with no version pinned: the hint is to pin one.
#[test]
fn start_unpinned_hints_to_pin_a_version() {
    let node = Node::converged();
    let out = node.run(&["start"]).expect_code(1);
    assert!(out.stderr.contains("hint: pin a version"), "{out}");
}

#[test]
fn start_reports_a_server_that_exits_during_startup() {
    // The stand-in answers `--version` and exits at once otherwise: nothing is left running.
    let (node, mirror) = pinned_node();
    node.run(&["ensure", "--release-url", &mirror.url()]).ok();
    let out = node.run(&["start"]).expect_code(1);
    let mut settings = node.settings();
    settings.add_filter(r"pid \d+", "pid [PID]");
    settings.bind(|| {
        insta::assert_snapshot!(
            out.stderr,
            @r"
        error: livekit-server (pid [PID]) exited during startup; its log [TMP]/state/logs/livekit-server.log is empty
        hint: see [TMP]/state/logs/livekit-server.log and run `livekit-provision check`
        "
        );
    });
    let status = node.run(&["status"]).ok();
    assert!(
        status.stdout.contains("\nlivekit-server  stopped\n"),
        "{status}"
    );
}

/// `value` is exactly a `T` (the daemon's result type of the same operation): read as `T` and
/// written back, the same document.
#[track_caller]
fn exactly<T: serde::Serialize + serde::de::DeserializeOwned>(value: &serde_json::Value) -> T {
    let typed: T = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(&serde_json::to_value(&typed).unwrap(), value);
    typed
}

#[test]
fn install_and_rollback_json_are_the_rpc_results() {
    let (node, mirror) = pinned_node();
    let url = mirror.url();
    node.run(&["ensure", "--release-url", &url]).ok();
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["--json", "--release-url", url.as_str()];
        all.extend_from_slice(args);
        serde_json::from_str(&node.run(&all).ok().stdout).unwrap()
    };

    let installed = json(&["install", "--version", "1.7.3"]);
    let result: InstallResult = exactly(&installed);
    assert_eq!(result.outcome, InstallVerdict::Installed, "{installed}");
    assert_eq!(result.version, "1.7.3");
    assert_eq!(result.path, node.path("bin/livekit-server"));
    assert_eq!(result.sha256.as_deref().map(str::len), Some(64));
    // Back to the kept version (no download), then nothing to do: the RPC's words.
    let back = json(&["install", "--version", "1.7.2"]);
    assert_eq!(back["outcome"], "reactivated", "{back}");
    assert!(back["sha256"].is_string(), "{back}");
    exactly::<InstallResult>(&back);
    let again = json(&["install", "--version", "1.7.2"]);
    assert_eq!(again["outcome"], "already_installed", "{again}");
    assert_eq!(again["sha256"], serde_json::Value::Null, "{again}");
    exactly::<InstallResult>(&again);

    let rolled: RollbackResult = exactly(&json(&["rollback"]));
    assert_eq!(
        (rolled.from.as_str(), rolled.to.as_str()),
        ("1.7.2", "1.7.3")
    );
}
