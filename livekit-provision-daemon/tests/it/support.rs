//! Helpers: a daemon process in a temporary state directory, calls over its socket, polling with
//! deadlines, and the stand-in media binaries. Every process started here is stopped by pid.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use livekit_provision::StateDir;
use livekit_provision_daemon::{ClientError, call_with_timeout};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

pub const DAEMON: &str = env!("CARGO_BIN_EXE_livekit-provision-daemon");

/// How long any wait in these tests may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Poll `f` until it returns `Some`, or panic after [`DEADLINE`] with `what`.
pub fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port nobody listens on: bound (with `SO_REUSEADDR`, as servers bind), never
/// listening, then released. Not a dropped listener: a process forked meanwhile by another test
/// keeps a copy of a listening socket until its exec, and for that moment the port stays taken
/// (a server started on it fails with "address in use") and accepts connections; a copy of a
/// socket that never listened does neither.
pub fn free_port() -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .unwrap();
    socket.local_addr().unwrap().port()
}

/// A temporary state directory with its secrets file and settings.
pub struct Node {
    /// The temporary directory: the state directory and the daemons' stderr files.
    pub dir: tempfile::TempDir,
    pub state: StateDir,
    /// Extra environment of every daemon started on this node.
    pub env: Vec<(String, String)>,
    /// Media pids seen; killed at drop.
    pub media_pids: Vec<u32>,
    /// Daemons started, to name their stderr files.
    daemons: std::cell::Cell<u32>,
}

impl Node {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        std::fs::create_dir_all(state.root()).unwrap();
        Self {
            dir,
            state,
            env: vec![(
                "LIVEKIT_PROVISION_DAEMON_BACKOFF_MS".to_owned(),
                "50".to_owned(),
            )],
            media_pids: Vec::new(),
            daemons: std::cell::Cell::new(0),
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.state.rpc_socket()
    }

    /// Write `secrets.json` (mode 0600).
    pub fn secrets(&self, values: &Value) {
        let path = self.state.secrets_file();
        std::fs::write(&path, values.to_string()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// Write `provision.yaml`.
    pub fn settings(&self, yaml: &str) {
        std::fs::write(self.state.settings_file(), yaml).unwrap();
    }

    /// Add `yaml` (whole lines) to `provision.yaml`.
    pub fn add_settings(&self, yaml: &str) {
        let mut text = std::fs::read_to_string(self.state.settings_file()).unwrap_or_default();
        text.push_str(yaml);
        self.settings(&text);
    }

    /// Changes wait for an explicit `restart` (`changes: {apply: manual}`): for the tests of
    /// what is pending; the daemon would otherwise apply them at once on an idle stand-in.
    pub fn manual_changes(&self) {
        self.add_settings("changes:\n  apply: manual\n");
    }

    /// A node whose media are `program` (`livekit_bin`) on free ports, with a version pinned
    /// and fast media restarts.
    pub fn with_media(program: &Path) -> Self {
        let mut node = Self::new();
        node.secrets(&json!({ "LIVEKIT_VERSION": "1.7.2" }));
        node.settings(&format!(
            "port: {}\nrtc_tcp_port: {}\nlivekit_bin: {}\n",
            free_port(),
            free_port(),
            program.display()
        ));
        node.env.push((
            "LIVEKIT_PROVISION_DAEMON_RESTART_BACKOFF_MS".to_owned(),
            "50".to_owned(),
        ));
        node
    }

    /// Start a daemon on this node with `args` (after `--state-dir`).
    pub fn spawn(&self, args: &[&str]) -> Daemon {
        self.daemons.set(self.daemons.get() + 1);
        let log = self
            .dir
            .path()
            .join(format!("daemon-{}.stderr", self.daemons.get()));
        let stderr = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(DAEMON);
        cmd.arg("--state-dir")
            .arg(self.state.root())
            .args(args)
            .env_remove("LIVEKIT_PROVISION_SECRETS")
            .env_remove("LIVEKIT_PROVISION_RELEASE_URL")
            .env(
                "RUST_LOG",
                std::env::var("TEST_DAEMON_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // A file, not a pipe: nobody reads a pipe while the test runs, and a daemon that
            // logs much would block once it is full.
            .stderr(Stdio::from(stderr.try_clone().unwrap()))
            // Its own process group, so a test can kill the group without killing itself.
            .process_group(0);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        Daemon {
            child: cmd.spawn().unwrap(),
            socket: self.socket(),
            log,
        }
    }

    /// Start a daemon and wait until its socket answers `status`.
    pub fn start(&self, args: &[&str]) -> Daemon {
        let daemon = self.spawn(args);
        daemon.wait_serving();
        daemon
    }

    /// The `livekit-server` entry of `status`. A daemon whose supervisor is busy answers from
    /// its last reading, which is empty until a first reading was made: then ask again.
    pub fn livekit_status(&self) -> Value {
        poll("a status that lists livekit-server", || {
            let status = call(&self.socket(), "status", &json!({})).unwrap();
            status["media"]["processes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == "livekit-server")
                .cloned()
        })
    }

    /// Wait until livekit-server runs and is healthy; its pid (remembered for cleanup).
    pub fn wait_media_healthy(&mut self) -> u32 {
        let socket = self.socket();
        let pid = poll("livekit-server running and healthy", || {
            let status = call(&socket, "status", &json!({})).ok()?;
            let p = status["media"]["processes"]
                .as_array()?
                .iter()
                .find(|p| p["name"] == "livekit-server")?
                .clone();
            (p["running"] == true && p["healthy"] == true)
                .then(|| u32::try_from(p["pid"].as_u64()?).ok())
                .flatten()
        });
        if !self.media_pids.contains(&pid) {
            self.media_pids.push(pid);
        }
        pid
    }
}

impl Node {
    /// The media processes this node's pid files name that still run in its state directory
    /// (their working directory): started by a daemon or host here, whether or not the test
    /// got to record them (a test that fails early has not).
    fn recorded_media(&self) -> Vec<u32> {
        ["livekit-server", "lk-backend"]
            .iter()
            .filter_map(|name| {
                let bytes = std::fs::read(self.state.pid_file(name)).ok()?;
                let pid = serde_json::from_slice::<Value>(&bytes).ok()?["pid"].as_u64()?;
                let pid = u32::try_from(pid).ok()?;
                let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
                (cwd == self.state.root()).then_some(pid)
            })
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let recorded = self.recorded_media();
        for &pid in self.media_pids.iter().chain(&recorded) {
            let _ = kill(Pid::from_raw(pid.cast_signed()), Signal::SIGKILL);
        }
    }
}

/// A daemon process, killed (by pid) at drop if still running.
/// Its stderr goes to a file, printed when the test fails.
pub struct Daemon {
    pub child: Child,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid().cast_signed()), signal).unwrap();
    }

    pub fn wait_serving(&self) {
        poll("the daemon to answer status", || {
            call(&self.socket, "status", &json!({})).ok()
        });
    }

    /// Wait for the exit (with the deadline); its status and stderr.
    pub fn wait_exit(mut self) -> (ExitStatus, String) {
        let status = poll("the daemon to exit", || self.child.try_wait().unwrap());
        (status, self.stderr())
    }

    /// What it wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- stderr of daemon pid {} ---\n{}--- end ---",
                self.pid(),
                self.stderr()
            );
        }
    }
}

/// One call with a short timeout.
pub fn call(socket: &Path, method: &str, params: &Value) -> Result<Value, ClientError> {
    call_with_timeout(socket, method, params, Duration::from_secs(60))
}

/// The provisioning part of `status`.
pub fn provisioning(socket: &Path) -> Value {
    call(socket, "status", &json!({})).unwrap()["provisioning"].clone()
}

/// The stand-in for livekit-server (NOT the real program: see the standins crate), built on
/// demand when this crate's tests run alone.
pub fn livekit_standin() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| standin("livekit-server-standin"))
        .clone()
}

/// The stand-in for lk-backend (NOT the real program).
pub fn backend_standin() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| standin("lk-backend-standin")).clone()
}

/// The stand-in binary `name`, next to the daemon's; built when missing.
fn standin(name: &str) -> PathBuf {
    // Built once per test run, even when present: a stale stand-in would test old behaviour.
    static BUILT: OnceLock<()> = OnceLock::new();
    let path = Path::new(DAEMON).with_file_name(name);
    BUILT.get_or_init(|| cargo_build(&["-p", "livekit-provision-standins", "--bins"]));
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// `cargo build ARGS` in this workspace; panics when it fails.
fn cargo_build(args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .arg("build")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(status.success(), "cargo build {args:?} failed");
}

/// Is `pid` alive (and not a zombie)?
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z"),
        Err(_) => false,
    }
}

/// The pids of every descendant of `root` (from `/proc/*/stat`), deepest last.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(parent) = parent {
            parents.push((child, parent));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// The CLI binary, next to the daemon's; built on demand when this crate's tests run alone, or
/// when it is older than the daemon (`cargo test -p livekit-provision-daemon` relinks only the
/// daemon after a library change, and a stale CLI would be tested).
pub fn cli() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = Path::new(DAEMON).with_file_name("livekit-provision");
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if modified(&path) < modified(Path::new(DAEMON)) {
            cargo_build(&["-p", "livekit-provision-cli"]);
        }
        assert!(path.exists(), "{} is missing", path.display());
        path
    })
    .clone()
}
