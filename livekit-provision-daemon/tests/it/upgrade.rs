//! Invariant 6 across an upgrade (issues 4 and 5): a new pinned livekit-server version is
//! installed while the media run, the running process is left alone and reported
//! `restart_pending`, and only an explicit `restart` drains it and starts the new binary. The CLI's
//! `ensure` says "restart pending" in the same situation.
//!
//! The releases are served by a `file://` mirror built here; the `livekit-server` inside them is a
//! copy of the livekit-server STAND-IN (not the real program, which cannot be fetched here). Both
//! versions hold the same binary bytes: what makes them two binaries is the versioned file each is
//! installed as (`bin/livekit-server-<ver>`), which is what `/proc/<pid>/exe` names.

use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{
    Daemon, Node, alive, call, cli, free_port, livekit_standin, poll, provisioning,
};

const OLD: &str = "1.7.2";
pub const NEW: &str = "1.7.3";

/// The release asset arch of this machine, as livekit names it.
fn asset_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "amd64",
    }
}

/// Publish `version` under `root`: `v<ver>/livekit_<ver>_linux_<arch>.tar.gz` (the stand-in as
/// `livekit-server`, and a `LICENSE` naming the version, so the two archives differ) and
/// `v<ver>/checksums.txt` in `sha256sum` format.
fn publish(root: &Path, version: &str) {
    let binary = std::fs::read(livekit_standin()).unwrap();
    let license = format!("Apache License 2.0 (test copy, release {version})\n");
    // Stored, not compressed: a real gzip stream, without spending seconds deflating 15 MB in
    // an unoptimised test build.
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::none());
    let mut builder = tar::Builder::new(gz);
    for (name, data, mode) in [
        ("livekit-server", binary.as_slice(), 0o755),
        ("LICENSE", license.as_bytes(), 0o644),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        builder.append_data(&mut header, name, data).unwrap();
    }
    let tarball = builder.into_inner().unwrap().finish().unwrap();
    let digest = format!("{:x}", Sha256::digest(&tarball));
    let dir = root.join(format!("v{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    let name = format!("livekit_{version}_linux_{}.tar.gz", asset_arch());
    std::fs::write(dir.join(&name), &tarball).unwrap();
    let mut sums = std::fs::File::create(dir.join("checksums.txt")).unwrap();
    writeln!(sums, "{digest}  {name}").unwrap();
    writeln!(
        sums,
        "{}  livekit_{version}_darwin_all.tar.gz",
        "0".repeat(64)
    )
    .unwrap();
}

/// Pin `version` in the file store, keeping every other secret (the minted credentials).
fn pin(node: &Node, version: &str) {
    let path = node.state.secrets_file();
    let mut secrets: Value = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
        Err(_) => json!({}),
    };
    secrets["LIVEKIT_VERSION"] = json!(version);
    node.secrets(&secrets);
}

/// A node with OLD pinned and its daemon, releases OLD and NEW served by a `file://` mirror
/// (kept while the returned directory lives) at the returned URL.
pub fn mirrored_node() -> (tempfile::TempDir, String, Node, Daemon) {
    // The explicit `restart` applies a new version here, not the daemon at idle.
    mirrored_node_with("changes:\n  apply: manual\n")
}

/// [`mirrored_node`] with `settings` added to its `provision.yaml`.
pub fn mirrored_node_with(settings: &str) -> (tempfile::TempDir, String, Node, Daemon) {
    let mirror = tempfile::tempdir().unwrap();
    publish(mirror.path(), OLD);
    publish(mirror.path(), NEW);
    let url = format!("file://{}", mirror.path().display());
    let node = Node::new();
    node.settings(&format!(
        "port: {}\nrtc_tcp_port: {}\n{settings}",
        free_port(),
        free_port()
    ));
    pin(&node, OLD);
    let daemon = node.start(&["--release-url", &url]);
    (mirror, url, node, daemon)
}

/// The `livekit-server` entry of `status`, `None` until the daemon lists it.
fn livekit_entry(node: &Node) -> Option<Value> {
    let status = call(&node.socket(), "status", &json!({})).ok()?;
    status["media"]["processes"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == "livekit-server")
        .cloned()
}

/// Field 22 of `/proc/<pid>/stat`: when the process started (clock ticks since boot).
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

/// `readlink /proc/<pid>/exe`.
fn exe(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/exe")).unwrap()
}

/// `bin/livekit-server-<ver>`, resolved as the kernel names it in `/proc/<pid>/exe`.
fn versioned(node: &Node, version: &str) -> PathBuf {
    std::fs::canonicalize(
        node.state
            .bin_dir()
            .join(format!("livekit-server-{version}")),
    )
    .unwrap()
}

/// The media's log: the stand-in prints "draining" there when it gets a SIGTERM.
fn media_log(node: &Node) -> String {
    std::fs::read_to_string(node.state.log_file("livekit-server")).unwrap_or_default()
}

/// `livekit-provision --state-dir … --release-url URL ensure`: its stderr, after a success.
fn cli_ensure(node: &Node, url: &str) -> String {
    let out = Command::new(cli())
        .arg("--state-dir")
        .arg(node.state.root())
        .args(["--release-url", url, "ensure"])
        .env_remove("LIVEKIT_PROVISION_SECRETS")
        .env_remove("LIVEKIT_PROVISION_RELEASE_URL")
        .env_remove("LIVEKIT_PROVISION_STATE_DIR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "ensure failed: {}\nstdout:\n{}stderr:\n{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

#[test]
fn a_new_version_is_restart_pending_until_restart_starts_it() {
    let (_mirror, url, mut node, daemon) = mirrored_node();
    let first = node.wait_media_healthy();
    let first_started = start_time(first);
    assert_eq!(exe(first), versioned(&node, OLD));
    assert_eq!(
        livekit_entry(&node).unwrap()["restart_pending"],
        json!(false)
    );

    // A new version is pinned while the media run: installed, never restarted.
    pin(&node, NEW);
    daemon.signal(Signal::SIGHUP);
    let entry = poll("1.7.3 installed and livekit-server restart pending", || {
        let status = call(&node.socket(), "status", &json!({})).ok()?;
        let entry = livekit_entry(&node)?;
        (status["version"]["installed"] == NEW && entry["restart_pending"] == true).then_some(entry)
    });
    assert_eq!(entry["pid"], json!(first), "{entry}");
    assert_eq!(entry["running"], json!(true), "{entry}");
    assert_eq!(entry["healthy"], json!(true), "{entry}");
    assert!(alive(first));
    assert_eq!(start_time(first), first_started, "the same process");
    assert_eq!(exe(first), versioned(&node, OLD), "still the old binary");
    assert!(!media_log(&node).contains("draining"), "it was signalled");
    // Two installed files, not one file under two names: the comparison is meaningful.
    let (old, new) = (versioned(&node, OLD), versioned(&node, NEW));
    assert_ne!(
        std::fs::metadata(&old).unwrap().ino(),
        std::fs::metadata(&new).unwrap().ino()
    );
    assert_eq!(
        std::fs::canonicalize(node.state.livekit_bin()).unwrap(),
        new
    );
    poll("the run to finish ready", || {
        (provisioning(&node.socket())["state"] == "ready").then_some(())
    });
    // Another run (converged) changes nothing: still pending, still the same process.
    call(&node.socket(), "ensure", &json!({})).unwrap();
    let entry = livekit_entry(&node).unwrap();
    assert_eq!(entry["pid"], json!(first), "{entry}");
    assert_eq!(entry["restart_pending"], json!(true), "{entry}");
    assert_eq!(start_time(first), first_started);

    // `restart` drains the old process (nobody is in a call: it exits on the first SIGTERM, as
    // livekit-server does) and starts the new one.
    let restarted = call(&node.socket(), "restart", &json!({ "grace_secs": 0.2 })).unwrap();
    assert_eq!(
        restarted["stopped"]["livekit-server"],
        json!("Terminated"),
        "{restarted}"
    );
    assert!(!alive(first));
    // Gone: not to be signalled again at drop (its pid may be reused).
    node.media_pids.retain(|&p| p != first);
    assert!(media_log(&node).contains("draining"), "it was drained");
    let second = node.wait_media_healthy();
    assert_ne!(second, first);
    assert_eq!(exe(second), new, "the new binary runs");
    let entry = livekit_entry(&node).unwrap();
    assert_eq!(entry["restart_pending"], json!(false), "{entry}");

    // The CLI, with the daemon stopped (the media keep running): going back to 1.7.2 switches
    // the binary and says a restart is pending, without restarting.
    daemon.signal(Signal::SIGTERM);
    let (status, stderr) = daemon.wait_exit();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(alive(second));
    let second_started = start_time(second);
    pin(&node, OLD);
    let said = cli_ensure(&node, &url);
    assert!(said.contains("restart pending"), "{said}");
    assert!(said.contains(&second.to_string()), "{said}");
    assert_eq!(
        std::fs::canonicalize(node.state.livekit_bin()).unwrap(),
        old
    );
    assert!(alive(second));
    assert_eq!(start_time(second), second_started, "the same process");
    assert_eq!(exe(second), new);

    // Pinning the version it runs again: the binary switches back, and nothing is pending.
    pin(&node, NEW);
    let said = cli_ensure(&node, &url);
    assert!(!said.contains("restart pending"), "{said}");
    assert_eq!(
        std::fs::canonicalize(node.state.livekit_bin()).unwrap(),
        new
    );
    assert_eq!(start_time(second), second_started, "the same process");

    kill(Pid::from_raw(second.cast_signed()), Signal::SIGKILL).unwrap();
    poll("the media to exit", || (!alive(second)).then_some(()));
    node.media_pids.retain(|&p| p != second);
}

/// A published config change (here the node IP) while livekit-server runs: the process is left
/// alone, `status` says restart pending and why, and `restart` clears it. (Stand-in server; the
/// e2e suite runs the same scenario on the real one.)
#[test]
fn a_config_change_is_restart_pending_with_its_reason() {
    let mut node = Node::new();
    node.settings(&format!(
        "port: {}\nrtc_tcp_port: {}\nlivekit_bin: {}\n",
        free_port(),
        free_port(),
        livekit_standin().display()
    ));
    node.secrets(&json!({ "LIVEKIT_NODE_IP": "127.0.0.1" }));
    let _daemon = node.start(&[]);
    let first = node.wait_media_healthy();
    let entry = livekit_entry(&node).unwrap();
    assert_eq!(entry["restart_pending"], json!(false), "{entry}");
    assert_eq!(entry["restart_reasons"], json!([]), "{entry}");

    let mut secrets: Value =
        serde_json::from_slice(&std::fs::read(node.state.secrets_file()).unwrap()).unwrap();
    secrets["LIVEKIT_NODE_IP"] = json!("127.0.0.2");
    node.secrets(&secrets);
    call(&node.socket(), "ensure", &json!({})).unwrap();
    let entry = livekit_entry(&node).unwrap();
    assert_eq!(entry["pid"], json!(first), "{entry}");
    assert_eq!(entry["restart_pending"], json!(true), "{entry}");
    assert_eq!(
        entry["restart_reasons"],
        json!(["livekit.yaml changed: rtc.node_ip: 127.0.0.1 -> 127.0.0.2"]),
        "{entry}"
    );

    call(&node.socket(), "restart", &json!({ "grace_secs": 0.2 })).unwrap();
    node.media_pids.retain(|&p| p != first);
    let second = node.wait_media_healthy();
    assert_ne!(second, first);
    let entry = livekit_entry(&node).unwrap();
    assert_eq!(entry["restart_pending"], json!(false), "{entry}");
    assert_eq!(entry["restart_reasons"], json!([]), "{entry}");
}
