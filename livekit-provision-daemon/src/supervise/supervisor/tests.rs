//! Crash accounting with real (tiny) processes. The policy has no backoff before the crash
//! loop and 5 minutes after it, so nothing waits on time; each process is either gone by
//! itself or killed here by pid.

use std::collections::BTreeMap;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::*;

/// The deadline of a wait that only bounds a failure.
const DEADLINE: Duration = Duration::from_secs(60);

fn supervisor(dir: &tempfile::TempDir) -> Supervisor {
    let policy = RestartPolicy {
        initial_backoff: Duration::ZERO,
        // Shorter than the window (600 s): a crash after the longest backoff still counts.
        max_backoff: Duration::from_secs(300),
        ..RestartPolicy::default()
    };
    let env = [(OsString::from("PATH"), OsString::from("/usr/bin:/bin"))];
    Supervisor::new(StateDir::new(dir.path()), env, policy)
}

fn spec(program: &str, args: &[&str], health: Option<SocketAddr>) -> ProcessSpec {
    ProcessSpec {
        name: "crasher".to_owned(),
        program: program.into(),
        args: args.iter().map(OsString::from).collect(),
        env: BTreeMap::new(),
        health,
        probe: super::health::HealthProbe::default(),
        start_timeout: DEADLINE,
    }
}

/// A loopback address that refuses connections: bound, never listening, then released (a
/// dropped listener could live on for a moment in a process another test forks).
fn refusing_addr() -> SocketAddr {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    socket.local_addr().unwrap()
}

/// Start a long sleeper (ready at once: no health probe), kill it, wait for its exit.
fn start_and_crash(sup: &mut Supervisor, spec: &ProcessSpec) -> u32 {
    let ensured = sup.ensure_running(spec, Instant::now()).unwrap();
    let Ensured::Started { pid } = ensured else {
        panic!("expected a start, got {ensured:?}");
    };
    kill(Pid::from_raw(pid.cast_signed()), Signal::SIGKILL).unwrap();
    assert!(sup.process("crasher").unwrap().wait_exit(DEADLINE).unwrap());
    pid
}

#[test]
fn a_crash_seen_first_by_a_status_read_is_still_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut sup = supervisor(&dir);
    let spec = spec("/bin/sleep", &["600"], None);
    for n in 1..=5 {
        let pid = start_and_crash(&mut sup, &spec);
        // `status` runs before the exit is reported (as a `status` call can in the daemon).
        let status = sup.status("crasher").unwrap();
        assert!(!status.running, "{status:?}");
        assert_eq!(status.pid, None);
        let decision = sup.record_exit("crasher", pid, Instant::now());
        if n < 5 {
            assert!(matches!(decision, Some(RestartDecision::RestartAt(_))));
            assert_eq!(sup.status("crasher").unwrap().condition, Condition::Restarting);
        } else {
            assert!(
                matches!(decision, Some(RestartDecision::CrashLoop { crashes: 5, .. })),
                "{decision:?}"
            );
        }
    }
    let status = sup.status("crasher").unwrap();
    assert_eq!(status.condition, Condition::CrashLooping);
    let failed = status.failed.unwrap();
    assert!(failed.contains("crasher crashed 5 times"), "{failed}");
    let ensured = sup.ensure_running(&spec, Instant::now()).unwrap();
    assert!(
        matches!(&ensured, Ensured::CrashLooping { reason, .. } if *reason == failed),
        "{ensured:?}"
    );
    // Bounded: after the longest backoff it is started again, and serving ends the loop.
    let later = Instant::now() + Duration::from_secs(300);
    let Ensured::Started { pid } = sup.ensure_running(&spec, later).unwrap() else {
        panic!("expected a start after the longest backoff");
    };
    let status = sup.status("crasher").unwrap();
    assert_eq!((status.condition, status.failed), (Condition::Serving, None));
    kill(Pid::from_raw(pid.cast_signed()), Signal::SIGKILL).unwrap();
    assert!(sup.process("crasher").unwrap().wait_exit(DEADLINE).unwrap());
    // Its crashes are still counted: the next one loops again at once.
    let decision = sup.record_exit("crasher", pid, later);
    assert!(
        matches!(decision, Some(RestartDecision::CrashLoop { crashes: 6, .. })),
        "{decision:?}"
    );
}

#[test]
fn a_crash_never_reported_is_counted_by_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut sup = supervisor(&dir);
    let spec = spec("/bin/sleep", &["600"], None);
    let mut pids = Vec::new();
    for _ in 0..5 {
        pids.push(start_and_crash(&mut sup, &spec));
    }
    let ensured = sup.ensure_running(&spec, Instant::now()).unwrap();
    let Ensured::CrashLooping { reason, .. } = ensured else {
        panic!("expected crash-looping, got {ensured:?}");
    };
    assert!(reason.contains("crasher crashed 5 times"), "{reason}");
    // A late report of an exit already counted changes nothing.
    assert_eq!(sup.record_exit("crasher", pids[4], Instant::now()), None);
}

#[test]
fn exits_during_startup_are_failed_with_the_same_words() {
    let dir = tempfile::tempdir().unwrap();
    let mut sup = supervisor(&dir);
    let spec = spec(
        "/bin/sh",
        &["-c", "echo refusing the config; exit 0"],
        Some(refusing_addr()),
    );
    for _ in 0..5 {
        match sup.ensure_running(&spec, Instant::now()) {
            Err(SuperviseError::ExitedDuringStart { .. }) => {}
            other => panic!("expected an exit during startup, got {other:?}"),
        }
    }
    let ensured = sup.ensure_running(&spec, Instant::now()).unwrap();
    let Ensured::CrashLooping { reason, .. } = ensured else {
        panic!("expected crash-looping, got {ensured:?}");
    };
    assert!(reason.contains("crasher crashed 5 times"), "{reason}");
    assert!(reason.contains("during startup"), "{reason}");
    assert!(reason.contains("refusing the config"), "{reason}");
    assert_eq!(sup.status("crasher").unwrap().failed, Some(reason));
}

#[test]
fn a_process_that_answers_nothing_is_replaced_and_one_that_answers_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut sup = supervisor(&dir);
    // A listener that never accepts: the kernel completes the TCP handshake into its
    // backlog, and no HTTP answer ever comes (a stopped or deadlocked server).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut spec = spec("/bin/sleep", &["600"], Some(silent.local_addr().unwrap()));
    spec.start_timeout = Duration::ZERO;
    let pid = match sup.ensure_running(&spec, Instant::now()) {
        Err(SuperviseError::NotReady { pid, .. }) => pid,
        other => panic!("expected a start that never answers, got {other:?}"),
    };
    let status = sup.status("crasher").unwrap();
    assert_eq!(status.condition, Condition::Unresponsive, "{status:?}");
    assert!(status.running && !status.healthy);
    let later = Instant::now() + Duration::from_secs(30);
    assert!(sup.unresponsive_for("crasher", later).unwrap() >= Duration::from_secs(30));
    let decision = sup
        .replace_hung("crasher", Duration::from_secs(30), later)
        .unwrap();
    assert_eq!(decision, Some(RestartDecision::RestartAt(later)));
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists() || {
        // A zombie until init reaps it: not running any more either way.
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"))
    });
    let status = sup.status("crasher").unwrap();
    assert_eq!(status.condition, Condition::Restarting, "{status:?}");
    let healed = status.healed.unwrap();
    assert!(
        healed.action.contains(&format!("pid {pid} answered nothing for 30s")),
        "{healed:?}"
    );

    // One that answers, even "not ready", is never unresponsive.
    let answering = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = answering.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in answering.incoming().flatten() {
            let mut stream = stream;
            // The request first: closing with it unread would reset the connection.
            let mut request = [0u8; 1024];
            let _ = std::io::Read::read(&mut stream, &mut request);
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.1 406 Not Acceptable\r\nContent-Length: 9\r\n\r\nNot Ready",
            );
        }
    });
    let spec = ProcessSpec {
        name: "answering".to_owned(),
        health: Some(addr),
        ..spec
    };
    let pid = match sup.ensure_running(&spec, Instant::now()) {
        Err(SuperviseError::NotReady { pid, .. }) => pid,
        other => panic!("expected a start that is not ready, got {other:?}"),
    };
    let status = sup.status("answering").unwrap();
    assert_eq!(status.condition, Condition::Unhealthy, "{status:?}");
    assert_eq!(sup.unresponsive_for("answering", later), None);
    sup.stop("answering", Duration::from_secs(5)).unwrap();
    assert!(!std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
        || std::fs::read(format!("/proc/{pid}/cmdline")).unwrap().is_empty());
}
