//! A real `redis-server` (the Debian package) on a free loopback port, in a temp dir, stopped by
//! pid when dropped.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// What a fleet test says when `redis-server` is not on PATH: which command fixes it.
const NOT_INSTALLED: &str = "redis-server is not installed; the fleet tests start a real one on a \
loopback port.\n  Run `scripts/test.sh`: it installs what the tests need (Debian packages, with \
apt-get) and runs the whole suite.\n  Or install it yourself: `sudo apt-get install redis-server`.";

/// Fail the test with [`NOT_INSTALLED`] only: no panic location, no backtrace (even with
/// `RUST_BACKTRACE` set), since neither says anything about a missing package.
fn not_installed() -> ! {
    eprintln!("{NOT_INSTALLED}");
    std::panic::resume_unwind(Box::new(NOT_INSTALLED))
}

/// How a server is configured.
#[derive(Debug, Clone, Default)]
pub struct RedisConfig {
    /// `requirepass`.
    pub password: Option<String>,
    /// Persist with an append-only file (for restart tests); otherwise no persistence at all.
    pub appendonly: bool,
    /// Extra lines of `redis.conf`.
    pub extra: Vec<String>,
    /// A Cluster node (`cluster-enabled yes`): ready once it answers, slots or not.
    pub cluster: bool,
}

/// A running `redis-server`. Killed by pid on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    /// The loopback port it listens on.
    pub port: u16,
    dir: PathBuf,
    config: RedisConfig,
}

impl RedisServer {
    /// Start a server whose data lives in `dir`, on a free port (retrying on a port collision).
    pub fn start(dir: &Path, config: &RedisConfig) -> Self {
        for _ in 0..10 {
            if let Some(server) = Self::start_on(dir, config, free_port()) {
                return server;
            }
        }
        panic!(
            "redis-server did not start (see {})",
            dir.join("redis.log").display()
        );
    }

    /// Start on `port`; `None` when the server exits at once (the port was taken meanwhile).
    pub fn start_on(dir: &Path, config: &RedisConfig, port: u16) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let mut conf = format!(
            "bind 127.0.0.1\nport {port}\ndir {}\ndaemonize no\nlogfile {}\n",
            dir.display(),
            dir.join("redis.log").display()
        );
        if config.appendonly {
            conf.push_str("appendonly yes\nappendfsync always\nsave \"\"\n");
        } else {
            conf.push_str("appendonly no\nsave \"\"\n");
        }
        if let Some(password) = &config.password {
            let _ = writeln!(conf, "requirepass {password}");
        }
        if config.cluster {
            conf.push_str(
                "cluster-enabled yes\ncluster-config-file nodes.conf\ncluster-node-timeout 5000\n",
            );
        }
        for line in &config.extra {
            conf.push_str(line);
            conf.push('\n');
        }
        // The password goes into a file, not onto the command line.
        let conf_path = dir.join("redis.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut child = Command::new("redis-server")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => not_installed(),
                _ => panic!("cannot run redis-server: {e}"),
            });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if child.try_wait().unwrap().is_some() {
                return None;
            }
            if serves_reads(port, config.password.as_deref(), config.cluster) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} never answered"
            );
            std::thread::yield_now();
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(Self {
            child: Some(child),
            port,
            dir: dir.to_owned(),
            config: config.clone(),
        })
    }

    /// Stop the server gracefully (SIGTERM by pid, so it flushes its append-only file) and wait.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
            let _ = kill(pid, Signal::SIGTERM);
            child.wait().unwrap();
        }
    }

    /// Start again with the same data directory and configuration, on this port if it is still
    /// free, else another.
    pub fn restart(&mut self) {
        self.stop();
        let again = Self::start_on(&self.dir, &self.config, self.port)
            .unwrap_or_else(|| Self::start(&self.dir, &self.config));
        *self = again;
    }

    /// `redis://{userinfo}127.0.0.1:{port}{tail}`.
    pub fn url(&self, userinfo: &str, tail: &str) -> String {
        format!("redis://{userinfo}127.0.0.1:{}{tail}", self.port)
    }

    /// Run `redis-cli` against this server (authenticating through the environment) and return
    /// its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(password) = &self.config.password {
            command.env("REDISCLI_AUTH", password);
        }
        let out = command.args(args).output().unwrap();
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
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

/// True when the server on `port` serves data: it answers a read (`EXISTS`) with an integer,
/// after `AUTH` when a password is set. Not `PING`: a restarted server answers `PING` (and
/// `-NOAUTH`) while it is still loading its append-only file, and refuses reads with
/// `-LOADING` until it is done. A cluster node without slots answers `-CLUSTERDOWN`: ready too.
fn serves_reads(port: u16, password: Option<&str>, cluster: bool) -> bool {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let command = |args: &[&str]| {
        args.iter().fold(format!("*{}\r\n", args.len()), |acc, a| {
            acc + &format!("${}\r\n{a}\r\n", a.len())
        })
    };
    let mut request = String::new();
    if let Some(password) = password {
        request.push_str(&command(&["AUTH", password]));
    }
    request.push_str(&command(&["EXISTS", "livekit-provision-test-ready"]));
    if (&stream).write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    if password.is_some() && (reader.read_line(&mut line).is_err() || !line.starts_with("+OK")) {
        return false;
    }
    line.clear();
    reader.read_line(&mut line).is_ok()
        && (line.starts_with(':') || (cluster && line.starts_with("-CLUSTERDOWN")))
}

/// A `redis-sentinel` on a free loopback port watching `master` as `mymaster` (quorum 1), in
/// `dir`, killed by pid on drop.
#[derive(Debug)]
pub struct Sentinel {
    child: Child,
    /// The loopback port it listens on.
    pub port: u16,
}

impl Sentinel {
    /// The name the sentinel watches the master under.
    pub const MASTER: &'static str = "mymaster";

    /// Start a sentinel watching the master on `master_port`, and wait until it knows at least
    /// `replicas` replicas of it.
    pub fn start(dir: &Path, master_port: u16, replicas: usize) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let conf = format!(
            "bind 127.0.0.1\nport {port}\ndir {dir}\ndaemonize no\nlogfile {dir}/sentinel.log\n\
             sentinel monitor {m} 127.0.0.1 {master_port} 1\n\
             sentinel down-after-milliseconds {m} 1000\n\
             sentinel failover-timeout {m} 10000\n",
            dir = dir.display(),
            m = Self::MASTER,
        );
        let conf_path = dir.join("sentinel.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("redis-sentinel")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-sentinel ({e}): run scripts/test.sh, which installs it, \
                     or `sudo apt-get install redis-sentinel`"
                )
            });
        let sentinel = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let known = sentinel.try_cli(&["SENTINEL", "replicas", Self::MASTER]);
            if known.is_some_and(|out| out.matches("flags").count() >= replicas) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "sentinel on port {port} never saw {replicas} replicas (see {})",
                dir.join("sentinel.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sentinel
    }

    /// The port of the master the sentinel names now.
    pub fn master_port(&self) -> u16 {
        let out = self.cli(&["SENTINEL", "get-master-addr-by-name", Self::MASTER]);
        out.lines().nth(1).unwrap().trim().parse().unwrap()
    }

    /// Run `redis-cli` against the sentinel and return its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} against the sentinel failed"))
    }

    /// Like [`cli`](Self::cli), `None` when it fails or answers an error.
    pub fn try_cli(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "--raw"])
            .args(args)
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        (out.status.success() && !text.starts_with("ERR") && !text.starts_with("NOGOOD"))
            .then_some(text)
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
