//! Security with a daemon at TRACE level supervising the livekit-server STAND-IN (not the real
//! program): every secret-bearing file and `rpc.sock` is private to the owner, another uid can
//! neither read them nor connect, and a known secret appears in no log, RPC answer or error, no
//! command line of any process, and not in livekit-server's environment.

use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nix::sys::signal::Signal;
use serde_json::json;

use crate::support::{DAEMON, Daemon, Node, call, free_port, livekit_standin};

const KEY: &str = "APIrelTest0001";
const SECRET: &str = "RelSecretKnown4Hygiene0123456789abcdefghijk";
const NOBODY: u32 = 65534;

/// Start the daemon at TRACE level, its stderr into `log` (a pipe could fill and stall it).
fn start_traced(node: &Node, log: &Path) -> Daemon {
    let mut cmd = Command::new(DAEMON);
    cmd.arg("--state-dir")
        .arg(node.state.root())
        .arg("-vv")
        .env_remove("LIVEKIT_PROVISION_SECRETS")
        .env_remove("LIVEKIT_PROVISION_RELEASE_URL")
        .env("RUST_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log).unwrap())
        .process_group(0);
    for (k, v) in &node.env {
        cmd.env(k, v);
    }
    let daemon = Daemon {
        child: cmd.spawn().unwrap(),
        socket: node.socket(),
        log: log.to_path_buf(),
    };
    daemon.wait_serving();
    daemon
}

fn run_as(uid: u32, program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .uid(uid)
        .gid(uid)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .output()
        .unwrap()
}

/// Connect to a unix socket from a separate process of `uid` (perl is in every Debian base).
fn connect_as(uid: u32, socket: &Path) -> Output {
    let probe = r#"use Socket; socket(S, PF_UNIX, SOCK_STREAM, 0) or die "socket: $!\n"; connect(S, pack_sockaddr_un($ARGV[0])) or die "connect: $!\n"; print "connected\n";"#;
    run_as(uid, "perl", &["-e", probe, socket.to_str().unwrap()])
}

/// Every regular file and socket under `dir`, with its mode; `bin/` (the installed binary and
/// its manifest hold no secret) and the operator's own `provision.yaml` left out.
fn private_files(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, u32)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let rel = path.strip_prefix(root).unwrap();
        if rel == Path::new("bin") || rel == Path::new("provision.yaml") {
            continue;
        }
        if meta.is_dir() {
            private_files(root, &path, out);
        } else if meta.is_file() || meta.file_type().is_socket() {
            out.push((rel.to_owned(), meta.mode() & 0o777));
        }
    }
}

#[test]
fn secrets_stay_private_and_out_of_logs_at_trace_level() {
    assert_eq!(SECRET.len(), 43);
    let mut node = Node::new();
    node.secrets(&json!({
        "LIVEKIT_VERSION": "1.7.2",
        "LIVEKIT_API_KEY": KEY,
        "LIVEKIT_API_SECRET": SECRET,
    }));
    node.settings(&format!(
        "port: {}\nrtc_tcp_port: {}\nlivekit_bin: {}\n",
        free_port(),
        free_port(),
        livekit_standin().display()
    ));
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("daemon.log");
    let daemon = start_traced(&node, &log);
    let media = node.wait_media_healthy();
    let root = node.state.root().to_owned();
    no_secret_in_rpc_answers(&node);
    no_secret_in_process_arguments(daemon.pid(), media);
    files_and_socket_are_0600(&root);
    another_uid_is_shut_out(&node, &root);

    // Logs: the media's and the daemon's own (TRACE), after a clean stop.
    daemon.signal(Signal::SIGTERM);
    let (status, _) = daemon.wait_exit();
    assert_eq!(status.code(), Some(0));
    let trace = std::fs::read_to_string(&log).unwrap();
    assert!(
        trace.contains("TRACE") || trace.contains("DEBUG"),
        "not traced:\n{trace}"
    );
    assert!(!trace.contains("panicked"), "{trace}");
    assert!(!trace.contains(SECRET), "the daemon logged the secret");
    for entry in std::fs::read_dir(root.join("logs")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains(SECRET),
            "{} holds the secret",
            path.display()
        );
    }
}

/// RPC answers and errors, valid and not.
fn no_secret_in_rpc_answers(node: &Node) {
    let mut answers = Vec::new();
    for (method, params) in [
        ("status", json!({})),
        ("health", json!({})),
        ("check", json!({})),
        ("ensure", json!({})),
        ("start", json!({})),
        ("token.create", json!({ "identity": "alice", "room": "r" })),
        ("token.create", json!({ "identity": 5 })),
        (
            "token.create",
            json!({ "identity": "a", "bogus": SECRET.len() }),
        ),
        ("no.such.method", json!({})),
    ] {
        answers.push(format!(
            "{method}: {:?}",
            call(&node.socket(), method, &params)
        ));
    }
    for answer in &answers {
        assert!(
            !answer.contains(SECRET),
            "an RPC answer holds the secret: {answer}"
        );
    }
    assert!(answers[5].contains("token"), "{}", answers[5]);
}

/// Command lines of the daemon and the media; livekit-server's environment.
fn no_secret_in_process_arguments(daemon: u32, media: u32) {
    for pid in [daemon, media] {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(SECRET),
            "the command line of pid {pid} holds the secret"
        );
    }
    let environ = std::fs::read(format!("/proc/{media}/environ")).unwrap();
    assert!(
        !String::from_utf8_lossy(&environ).contains(SECRET),
        "livekit-server's environment holds the secret"
    );
    assert!(
        !String::from_utf8_lossy(&environ).contains("LIVEKIT_"),
        "livekit-server's environment holds LIVEKIT_* variables"
    );
}

/// Every file under the state directory (secret-bearing or not) and the socket are 0600.
fn files_and_socket_are_0600(root: &Path) {
    let mut files = Vec::new();
    private_files(root, root, &mut files);
    let names: Vec<_> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    for must in ["secrets.json", "run/rpc.sock", "logs/livekit-server.log"] {
        assert!(names.iter().any(|n| n == must), "{must} missing: {names:?}");
    }
    for (path, mode) in &files {
        assert_eq!(*mode, 0o600, "{} has mode {mode:o}", path.display());
    }
    for name in ["livekit.yaml", "backend.env", "runtime.json"] {
        let mode = std::fs::metadata(root.join(name)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
    }
}

/// Another uid: with every directory on the way opened (0755), the file and socket modes alone
/// must keep it out. Needs root to switch uid; as a normal user the modes (checked by
/// [`files_and_socket_are_0600`]) are what keeps other users out.
fn another_uid_is_shut_out(node: &Node, root: &Path) {
    if nix::unistd::geteuid().is_root() {
        let generation = std::fs::canonicalize(root.join("current")).unwrap();
        for dir in [
            root.to_owned(),
            root.join("run"),
            root.join("logs"),
            root.join("generations"),
            generation,
        ] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        // Controls: the probes work, and the other uid does reach the directory.
        assert!(
            connect_as(0, &node.socket()).status.success(),
            "the connect probe fails as root"
        );
        assert!(
            run_as(NOBODY, "ls", &[root.to_str().unwrap()])
                .status
                .success()
        );
        let denied = connect_as(NOBODY, &node.socket());
        assert!(
            !denied.status.success(),
            "uid {NOBODY} connected to rpc.sock"
        );
        assert!(
            String::from_utf8_lossy(&denied.stderr).contains("Permission denied"),
            "{denied:?}"
        );
        for name in [
            "secrets.json",
            "livekit.yaml",
            "backend.env",
            "runtime.json",
            "logs/livekit-server.log",
        ] {
            let path = root.join(name);
            let out = run_as(NOBODY, "cat", &[path.to_str().unwrap()]);
            assert!(!out.status.success(), "uid {NOBODY} read {name}");
            assert!(out.stdout.is_empty(), "uid {NOBODY} read {name}");
        }
    }
}
