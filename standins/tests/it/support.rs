//! Shared helpers: state directories with a stand-in config, free loopback ports, and a guard
//! that kills (by pid, identity-checked) every process a test started.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use livekit_provision::StateDir;
use livekit_provision_daemon::supervise::ProcessSpec;
use livekit_provision_daemon::supervise::health::probe_address;
use livekit_provision_daemon::supervise::identity::{Liveness, ProcessIdentity, proc_stat};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub const API_KEY: &str = "APItestkey1234";
pub const API_SECRET: &str = "s3cretS3cretS3cretS3cretS3cretS3cret12";

pub fn livekit_standin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_livekit-server-standin"))
}

pub fn backend_standin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lk-backend-standin"))
}

pub fn launcher_standin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_daemon-launcher-standin"))
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

/// A temporary state directory holding a `livekit.yaml` for the stand-in.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub state: StateDir,
    pub port: u16,
}

impl Node {
    pub fn new() -> Self {
        Self::with_config(|port| {
            format!("port: {port}\nrtc:\n  tcp_port: 7881\nkeys:\n  {API_KEY}: \"{API_SECRET}\"\n")
        })
    }

    pub fn with_config(config: impl FnOnce(u16) -> String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let port = free_port();
        std::fs::write(dir.path().join("livekit.yaml"), config(port)).unwrap();
        Self { dir, state, port }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn livekit_spec(&self) -> ProcessSpec {
        let mut spec = ProcessSpec::livekit_server(
            &self.state,
            livekit_standin(),
            probe_address(&[], self.port),
        );
        spec.start_timeout = Duration::from_secs(60);
        spec
    }
}

/// Stand-in only (`POST /standin/participants`): `identities` in `room` of the stand-in at
/// `addr` (`None`: the room ends). A participant keeps a drain going, as on livekit-server.
pub fn standin_participants(addr: SocketAddr, room: &str, identities: Option<&[&str]>) {
    let body = match identities {
        Some(ids) => serde_json::json!({"room": room, "identities": ids}),
        None => serde_json::json!({"room": room}),
    };
    let answer = livekit_provision_daemon::supervise::health::post(
        addr,
        "/standin/participants",
        &[("Content-Type", "application/json")],
        body.to_string().as_bytes(),
        Duration::from_secs(30),
        1024,
    )
    .unwrap();
    assert_eq!(answer.status, 200);
}

/// The test process's environment plus `extra`.
pub fn env_with(extra: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    env.extend(
        extra
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
    );
    env
}

/// Kills every registered process on drop, by pid, only while its identity still matches.
#[derive(Default)]
pub struct Reaper(Vec<ProcessIdentity>);

impl Reaper {
    pub fn watch(&mut self, pid: u32) {
        if let Some(id) =
            ProcessIdentity::of_live_process(pid, "test", std::time::SystemTime::UNIX_EPOCH)
                .unwrap()
        {
            self.0.push(id);
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for id in &self.0 {
            if id.liveness().ok() == Some(Liveness::Alive) {
                let _ = kill(
                    Pid::from_raw(i32::try_from(id.pid).unwrap()),
                    Signal::SIGKILL,
                );
            }
        }
    }
}

/// Is `pid` running (not gone, not a zombie)?
pub fn running(pid: u32) -> bool {
    proc_stat(pid).unwrap().is_some_and(|s| !s.is_dead())
}

/// Poll `condition` until it holds or `within` passes.
pub fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
