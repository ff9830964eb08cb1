//! Detached start, adoption, identity checks, health, stop sequence and crash detection, with
//! real processes and signals (the media processes here are stand-ins).

use livekit_provision::Hint;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use livekit_provision::Secret;
use livekit_provision_daemon::supervise::health::{self, probe_address};
use livekit_provision_daemon::supervise::identity::{
    PidFileState, ProcessIdentity, adopt, inspect, proc_stat,
};
use livekit_provision_daemon::supervise::spawn::is_overriding_variable;
use livekit_provision_daemon::supervise::{
    Ensured, EnvValue, LIVEKIT_SERVER, Probe, ProcessSpec, RestartDecision, RestartPolicy,
    StopOutcome, SuperviseError, Supervisor,
};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::support::{
    API_KEY, API_SECRET, Node, Reaper, backend_standin, env_with, eventually, free_port,
    launcher_standin, running, standin_participants,
};

const GRACE: Duration = Duration::from_millis(300);

/// The grace of the stop whose outcome is checked: the stand-in must have handled the first
/// SIGTERM before the second is sent (two pending SIGTERMs reach it as one, and it would then
/// wait for SIGKILL), however loaded the machine. Generous: the test waits all of it.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

fn started_pid(ensured: &Ensured) -> u32 {
    match ensured {
        Ensured::Started { pid } => *pid,
        other => panic!("expected a start, got {other:?}"),
    }
}

#[test]
fn detached_start_is_healthy_in_its_own_session_and_not_our_descendant() {
    let node = Node::new();
    let mut reaper = Reaper::default();
    let mut sup = Supervisor::new(node.state.clone(), env_with(&[]), RestartPolicy::default());
    let pid = started_pid(
        &sup.ensure_running(&node.livekit_spec(), Instant::now())
            .unwrap(),
    );
    reaper.watch(pid);

    assert_eq!(health::probe(node.addr()), Probe::Ready);
    let me = proc_stat(std::process::id()).unwrap().unwrap();
    let it = proc_stat(pid).unwrap().unwrap();
    assert_ne!(
        it.ppid,
        std::process::id(),
        "the media process is our child"
    );
    assert_eq!(
        (it.sid, it.pgid),
        (pid, pid),
        "not its own session and group leader"
    );
    assert_ne!(it.sid, me.sid);
    assert_ne!(it.pgid, me.pgid);

    // The pid file records the identity, privately; the log is private too.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let pid_file = node.state.pid_file(LIVEKIT_SERVER);
    let recorded: ProcessIdentity =
        serde_json::from_slice(&std::fs::read(&pid_file).unwrap()).unwrap();
    assert_eq!(recorded.pid, pid);
    assert_eq!(recorded.start_time, it.start_time);
    assert_eq!(
        recorded.exe,
        std::fs::canonicalize(crate::support::livekit_standin()).unwrap()
    );
    assert_eq!(mode(&pid_file), 0o600);
    assert_eq!(mode(&node.state.log_file(LIVEKIT_SERVER)), 0o600);
    assert_eq!(mode(&node.state.logs_dir()), 0o700);
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    assert_eq!(cwd, std::fs::canonicalize(node.state.root()).unwrap());

    // A second ensure leaves the healthy process alone.
    let again = sup
        .ensure_running(&node.livekit_spec(), Instant::now())
        .unwrap();
    assert_eq!(again, Ensured::AlreadyRunning { pid, healthy: true });
    let status = sup.status(LIVEKIT_SERVER).unwrap();
    assert!(status.running && status.healthy && status.failed.is_none());
    assert_eq!(status.pid, Some(pid));

    // The stand-in drains on the first SIGTERM, like livekit-server: with someone in a call it
    // keeps serving, and the second SIGTERM stops it.
    standin_participants(node.addr(), "call", Some(&["alice"]));
    let outcome = sup.stop(LIVEKIT_SERVER, DRAIN_GRACE).unwrap();
    let log = std::fs::read_to_string(node.state.log_file(LIVEKIT_SERVER)).unwrap();
    assert_eq!(outcome, StopOutcome::TerminatedOnSecondSignal, "{log}");
    assert!(!running(pid));
    assert!(!pid_file.exists());
    assert!(!sup.status(LIVEKIT_SERVER).unwrap().running);
    assert!(log.contains("draining"), "{log}");
}

/// A stop before a start ends a drain that outlasted its grace with SIGKILL, never a second
/// SIGTERM: livekit-server answers a second signal by telling every participant to leave, and
/// after SIGKILL they rejoin the next server (measured: e2e `test_drain_endings`).
#[test]
fn a_stop_for_restart_ends_the_drain_with_sigkill_not_a_second_sigterm() {
    let node = Node::new();
    let mut reaper = Reaper::default();
    let mut sup = Supervisor::new(node.state.clone(), env_with(&[]), RestartPolicy::default());
    let pid = started_pid(
        &sup.ensure_running(&node.livekit_spec(), Instant::now())
            .unwrap(),
    );
    reaper.watch(pid);
    standin_participants(node.addr(), "call", Some(&["alice"]));
    let outcome = sup.stop_for_restart(LIVEKIT_SERVER, DRAIN_GRACE).unwrap();
    let log = std::fs::read_to_string(node.state.log_file(LIVEKIT_SERVER)).unwrap();
    assert_eq!(outcome, StopOutcome::Killed, "{log}");
    assert!(!running(pid));
    assert!(
        log.contains("draining"),
        "the first SIGTERM must start a drain: {log}"
    );
    assert!(
        !log.contains("forcing stop"),
        "a restart must not send the second SIGTERM: {log}"
    );
}

#[test]
fn a_process_that_exits_on_the_first_sigterm_stops_at_once() {
    let node = Node::new();
    let mut reaper = Reaper::default();
    let env = env_with(&[("STANDIN_EXIT_ON_FIRST_TERM", "1")]);
    let mut sup = Supervisor::new(node.state.clone(), env, RestartPolicy::default());
    let pid = started_pid(
        &sup.ensure_running(&node.livekit_spec(), Instant::now())
            .unwrap(),
    );
    reaper.watch(pid);
    let outcome = sup.stop(LIVEKIT_SERVER, Duration::from_secs(60)).unwrap();
    assert_eq!(outcome, StopOutcome::Terminated);
    assert_eq!(
        sup.stop(LIVEKIT_SERVER, GRACE).unwrap(),
        StopOutcome::NotRunning
    );
}

#[test]
fn media_survives_the_death_of_the_process_tree_that_started_it() {
    let node = Node::new();
    let mut reaper = Reaper::default();
    let mut launcher = Command::new(launcher_standin())
        .arg(node.state.root())
        .arg(crate::support::livekit_standin())
        .arg(node.port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let launcher_pid = launcher.id();
    let mut line = String::new();
    BufReader::new(launcher.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: u32 = line.trim().strip_prefix("pid ").unwrap().parse().unwrap();
    reaper.watch(pid);
    assert!(eventually(Duration::from_secs(60), || health::probe(
        node.addr()
    )
    .is_ready()));
    assert_ne!(proc_stat(pid).unwrap().unwrap().ppid, launcher_pid);

    // What a supervisor does to a service: SIGKILL its whole process group.
    killpg(
        Pid::from_raw(i32::try_from(launcher_pid).unwrap()),
        Signal::SIGKILL,
    )
    .unwrap();
    launcher.wait().unwrap();
    assert!(running(pid));
    assert_eq!(health::probe(node.addr()), Probe::Ready);

    // A new daemon adopts it from the pid file.
    let mut sup = Supervisor::new(node.state.clone(), env_with(&[]), RestartPolicy::default());
    assert_eq!(
        sup.ensure_running(&node.livekit_spec(), Instant::now())
            .unwrap(),
        Ensured::AlreadyRunning { pid, healthy: true }
    );
    sup.stop(LIVEKIT_SERVER, GRACE).unwrap();
}

#[test]
fn a_new_supervisor_adopts_the_running_process() {
    let node = Node::new();
    let mut reaper = Reaper::default();
    let spec = node.livekit_spec();
    let pid = {
        let mut first =
            Supervisor::new(node.state.clone(), env_with(&[]), RestartPolicy::default());
        started_pid(&first.ensure_running(&spec, Instant::now()).unwrap())
    };
    reaper.watch(pid);
    assert_eq!(
        adopt(&node.state, LIVEKIT_SERVER).unwrap().map(|p| p.pid()),
        Some(pid)
    );
    let mut second = Supervisor::new(node.state.clone(), env_with(&[]), RestartPolicy::default());
    assert_eq!(
        second.ensure_running(&spec, Instant::now()).unwrap(),
        Ensured::AlreadyRunning { pid, healthy: true }
    );
    assert_eq!(second.status(LIVEKIT_SERVER).unwrap().pid, Some(pid));
    second.stop(LIVEKIT_SERVER, GRACE).unwrap();
    assert!(!running(pid));
}

#[test]
fn a_recycled_pid_is_neither_adopted_nor_signalled() {
    let node = Node::new();
    let mut sleeper = Command::new("sleep").arg("300").spawn().unwrap();
    let real =
        ProcessIdentity::of_live_process(sleeper.id(), "sleep", std::time::SystemTime::UNIX_EPOCH)
            .unwrap()
            .unwrap();
    std::fs::create_dir_all(node.state.run_dir()).unwrap();
    let pid_file = node.state.pid_file(LIVEKIT_SERVER);

    // Same pid, another start time: the pid was recycled.
    let recycled = ProcessIdentity {
        start_time: real.start_time + 1,
        ..real.clone()
    };
    std::fs::write(&pid_file, serde_json::to_vec(&recycled).unwrap()).unwrap();
    assert!(matches!(
        inspect(&node.state, LIVEKIT_SERVER).unwrap(),
        PidFileState::Stale { .. }
    ));
    let mut sup = Supervisor::new(node.state.clone(), env_with(&[]), RestartPolicy::default());
    assert_eq!(
        sup.stop(LIVEKIT_SERVER, GRACE).unwrap(),
        StopOutcome::NotRunning
    );
    assert!(!pid_file.exists(), "the stale pid file is removed");

    // Same pid, an earlier start time and another executable (what a pid file left by a
    // livekit-server that died, before the pid went to this sleeper, reads like): not ours.
    let earlier = ProcessIdentity {
        start_time: real.start_time - 1,
        exe: crate::support::livekit_standin(),
        ..real
    };
    std::fs::write(&pid_file, serde_json::to_vec(&earlier).unwrap()).unwrap();
    assert!(adopt(&node.state, LIVEKIT_SERVER).unwrap().is_none());
    assert!(!pid_file.exists(), "the stale pid file is removed");
    std::fs::write(&pid_file, serde_json::to_vec(&earlier).unwrap()).unwrap();
    assert!(!sup.status(LIVEKIT_SERVER).unwrap().running);
    assert_eq!(
        sup.stop(LIVEKIT_SERVER, GRACE).unwrap(),
        StopOutcome::NotRunning
    );

    assert!(
        sleeper.try_wait().unwrap().is_none(),
        "the unrelated process was signalled"
    );
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

/// A `livekit_bin` that is a wrapper script ending in `exec <server> "$@"` keeps its pid and
/// start time but changes its executable after the supervisor recorded it: still the same
/// process, started, adopted and stopped like any other.
#[test]
fn a_wrapper_script_that_execs_the_server_is_started_adopted_and_stopped() {
    let node = Node::new();
    let mut reaper = Reaper::default();
    let pid_file = node.state.pid_file(LIVEKIT_SERVER);
    let wrapper = node.dir.path().join("livekit-server-wrapper");
    // The wrapper waits (boundedly) for its pid file before its `exec`, so that the executable
    // recorded is always the shell's: otherwise which one is recorded depends on scheduling.
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ni=0\nwhile [ ! -e '{}' ] && [ $i -lt 6000 ]; do sleep 0.01; i=$((i+1)); done\nexec '{}' \"$@\"\n",
            pid_file.display(),
            crate::support::livekit_standin().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut spec = node.livekit_spec();
    spec.program = wrapper;

    let pid = {
        let mut first =
            Supervisor::new(node.state.clone(), env_with(&[]), RestartPolicy::default());
        let ensured = first.ensure_running(&spec, Instant::now());
        if let Ok(Ensured::Started { pid }) = &ensured {
            reaper.watch(*pid);
        }
        let log = std::fs::read_to_string(node.state.log_file(LIVEKIT_SERVER)).unwrap_or_default();
        match ensured {
            Ok(Ensured::Started { pid }) => pid,
            other => panic!("expected a start, got {other:?}; log: {log}"),
        }
    };
    assert_eq!(health::probe(node.addr()), Probe::Ready);
    let standin = std::fs::canonicalize(crate::support::livekit_standin()).unwrap();
    let recorded: ProcessIdentity =
        serde_json::from_slice(&std::fs::read(&pid_file).unwrap()).unwrap();
    assert_eq!(recorded.pid, pid);
    assert_ne!(recorded.exe, standin, "the shell's executable is recorded");
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        standin,
        "the wrapper has exec'd the server"
    );

    // A new daemon adopts it from its pid file, and stops it.
    let mut second = Supervisor::new(node.state.clone(), env_with(&[]), RestartPolicy::default());
    assert_eq!(
        second.ensure_running(&spec, Instant::now()).unwrap(),
        Ensured::AlreadyRunning { pid, healthy: true }
    );
    assert_eq!(second.status(LIVEKIT_SERVER).unwrap().pid, Some(pid));
    let outcome = second.stop(LIVEKIT_SERVER, GRACE).unwrap();
    assert_ne!(outcome, StopOutcome::NotRunning);
    assert!(!running(pid), "the server survived its stop");
    assert!(!pid_file.exists());
}

#[test]
fn the_probe_follows_bind_addresses_that_leave_out_127_0_0_1() {
    let node = Node::with_config(|port| {
        format!(
            "port: {port}\nbind_addresses:\n  - \"127.0.0.2\"\nkeys:\n  {API_KEY}: \"{API_SECRET}\"\n"
        )
    });
    let bound = ["127.0.0.2".parse().unwrap()];
    let mut spec = node.livekit_spec();
    spec.health = Some(probe_address(&bound, node.port));
    let mut reaper = Reaper::default();
    let mut sup = Supervisor::new(node.state.clone(), env_with(&[]), RestartPolicy::default());
    let pid = started_pid(&sup.ensure_running(&spec, Instant::now()).unwrap());
    reaper.watch(pid);
    assert_eq!(
        spec.health.unwrap().to_string(),
        format!("127.0.0.2:{}", node.port)
    );
    assert_eq!(health::probe(spec.health.unwrap()), Probe::Ready);
    // The old probe, always 127.0.0.1, would never have seen it ready.
    assert!(matches!(health::probe(node.addr()), Probe::Down(_)));
    sup.stop(LIVEKIT_SERVER, DRAIN_GRACE).unwrap();
    assert!(!running(pid));
}

#[test]
fn a_rejected_config_fails_the_start_with_the_log_tail() {
    let node = Node::with_config(|port| {
        format!("port: {port}\nkeys:\n  {API_KEY}: \"{API_SECRET}\"\nturn_servers: []\n")
    });
    let mut sup = Supervisor::new(node.state.clone(), env_with(&[]), RestartPolicy::default());
    let err = sup
        .ensure_running(&node.livekit_spec(), Instant::now())
        .unwrap_err();
    assert!(
        matches!(err, SuperviseError::ExitedDuringStart { .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("line 4: field turn_servers not found in type config.Config"),
        "{message}"
    );
    assert!(err.hint().is_some());
    let status = sup.status(LIVEKIT_SERVER).unwrap();
    assert!(!status.running && !status.healthy);
    assert!(!node.state.pid_file(LIVEKIT_SERVER).exists());
}

#[test]
fn a_process_that_never_becomes_ready_is_reported_and_left_running() {
    let node = Node::new();
    let mut reaper = Reaper::default();
    let mut sup = Supervisor::new(
        node.state.clone(),
        env_with(&[("STANDIN_NOT_READY", "1")]),
        RestartPolicy::default(),
    );
    let mut spec = node.livekit_spec();
    spec.start_timeout = Duration::from_secs(1);
    let err = sup.ensure_running(&spec, Instant::now()).unwrap_err();
    assert!(err.to_string().contains("not ready"), "{err}");
    let SuperviseError::NotReady { pid, last, .. } = &err else {
        panic!("expected NotReady, got {err}");
    };
    let pid = *pid;
    reaper.watch(pid);
    assert!(!last.is_ready(), "{last}");
    assert!(eventually(Duration::from_secs(60), || matches!(
        health::probe(node.addr()),
        Probe::NotReady { status: 406, .. }
    )));
    let status = sup.status(LIVEKIT_SERVER).unwrap();
    assert!(status.running && !status.healthy);
    // Ensuring again never restarts it.
    assert_eq!(
        sup.ensure_running(&spec, Instant::now()).unwrap(),
        Ensured::AlreadyRunning {
            pid,
            healthy: false
        }
    );
    sup.stop(LIVEKIT_SERVER, GRACE).unwrap();
}

#[test]
fn a_crash_is_noticed_through_the_exit_watch_and_backs_off() {
    let node = Node::new();
    let mut reaper = Reaper::default();
    let mut sup = Supervisor::new(
        node.state.clone(),
        env_with(&[("STANDIN_CRASH_ENDPOINT", "1")]),
        RestartPolicy::default(),
    );
    let spec = node.livekit_spec();
    let pid = started_pid(&sup.ensure_running(&spec, Instant::now()).unwrap());
    reaper.watch(pid);
    let watch = sup.process(LIVEKIT_SERVER).unwrap().exit_watch().unwrap();
    assert!(!watch.has_exited().unwrap());
    // The request dies with the process: no answer is expected.
    let _ = health::get(node.addr(), "/standin/crash", Duration::from_secs(5));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(60), watch.exited()).await })
        .expect("no exit notification")
        .unwrap();
    assert!(!running(pid));

    let now = Instant::now();
    assert_eq!(
        sup.record_exit(LIVEKIT_SERVER, pid, now),
        Some(RestartDecision::RestartAt(now + Duration::from_secs(1)))
    );
    assert_eq!(
        sup.record_exit(LIVEKIT_SERVER, pid, now),
        None,
        "counted once"
    );
    assert_eq!(
        sup.ensure_running(&spec, now).unwrap(),
        Ensured::BackingOff {
            until: now + Duration::from_secs(1)
        }
    );
    let again = started_pid(
        &sup.ensure_running(&spec, now + Duration::from_secs(1))
            .unwrap(),
    );
    reaper.watch(again);
    assert_ne!(again, pid);
    sup.stop(LIVEKIT_SERVER, GRACE).unwrap();
}

#[test]
fn the_child_environment_is_cleaned_and_secrets_stay_out_of_argv() {
    let node = Node::new();
    let mut reaper = Reaper::default();
    let polluted = env_with(&[
        ("LIVEKIT_KEYS", "evil: key"),
        ("LIVEKIT_CONFIG", "port: 1"),
        ("NODE_IP", "10.9.9.9"),
        ("UDP_PORT", "9"),
        ("REDIS_HOST", "elsewhere:6379"),
        ("REDIS_PASSWORD", "nope"),
        ("KEEP_ME", "yes"),
        ("LIVEKIT_RTC_TCP_PORT", "1"),
        ("LIVEKIT_CPU_REQUEST", "2"),
    ]);
    let mut sup = Supervisor::new(node.state.clone(), polluted, RestartPolicy::default());
    let pid = started_pid(
        &sup.ensure_running(&node.livekit_spec(), Instant::now())
            .unwrap(),
    );
    reaper.watch(pid);
    let names = environ_names(pid);
    assert!(names.iter().any(|n| n == "KEEP_ME"));
    assert!(names.iter().any(|n| n == "LIVEKIT_CPU_REQUEST"));
    assert!(!names.iter().any(|n| n == "LIVEKIT_RTC_TCP_PORT"));
    for name in &names {
        assert!(
            !is_overriding_variable(std::ffi::OsStr::new(name)),
            "{name} reached livekit-server"
        );
    }

    // lk-backend gets backend.env's variables in its environment, never in argv.
    let backend_port = free_port();
    let mut env = BTreeMap::new();
    env.insert(
        "LIVEKIT_API_KEY".to_owned(),
        EnvValue::Plain(API_KEY.to_owned()),
    );
    env.insert(
        "LIVEKIT_API_SECRET".to_owned(),
        EnvValue::Secret(Secret::new(API_SECRET)),
    );
    env.insert(
        "LIVEKIT_URL".to_owned(),
        EnvValue::Plain(format!("ws://127.0.0.1:{}", node.port)),
    );
    env.insert("PORT".to_owned(), EnvValue::Plain(backend_port.to_string()));
    let mut spec = ProcessSpec::lk_backend(
        backend_standin(),
        env,
        backend_port,
        livekit_provision_daemon::supervise::HealthProbe::default(),
    );
    spec.start_timeout = Duration::from_secs(60);
    assert!(!format!("{spec:?}").contains(API_SECRET));
    let backend = started_pid(&sup.ensure_running(&spec, Instant::now()).unwrap());
    reaper.watch(backend);
    let environ = std::fs::read(format!("/proc/{backend}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.contains(&format!("LIVEKIT_API_SECRET={API_SECRET}\0")));
    assert!(!environ.contains("LIVEKIT_KEYS"));
    for p in [pid, backend] {
        let cmdline = std::fs::read(format!("/proc/{p}/cmdline")).unwrap();
        assert!(!String::from_utf8_lossy(&cmdline).contains(API_SECRET));
    }
    sup.stop("lk-backend", GRACE).unwrap();
    sup.stop(LIVEKIT_SERVER, GRACE).unwrap();
}

#[test]
fn a_backend_without_its_variables_fails_loudly() {
    let node = Node::new();
    let port = free_port();
    let mut spec = ProcessSpec::lk_backend(
        backend_standin(),
        BTreeMap::new(),
        port,
        livekit_provision_daemon::supervise::HealthProbe::default(),
    );
    spec.start_timeout = Duration::from_secs(60);
    let mut sup = Supervisor::new(node.state.clone(), env_with(&[]), RestartPolicy::default());
    let err = sup.ensure_running(&spec, Instant::now()).unwrap_err();
    assert!(
        err.to_string()
            .contains("missing environment variable(s): LIVEKIT_API_KEY"),
        "{err}"
    );
}

#[test]
fn a_missing_or_unexecutable_binary_is_an_error() {
    let node = Node::new();
    let mut sup = Supervisor::new(node.state.clone(), env_with(&[]), RestartPolicy::default());
    let mut spec = node.livekit_spec();
    spec.program = node.dir.path().join("bin/livekit-server");
    let err = sup.ensure_running(&spec, Instant::now()).unwrap_err();
    assert!(
        matches!(
            err,
            SuperviseError::Exec {
                not_found: true,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("install"));

    let not_executable = node.dir.path().join("not-executable");
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    spec.program = not_executable;
    let err = sup.ensure_running(&spec, Instant::now()).unwrap_err();
    assert!(matches!(err, SuperviseError::Exec { .. }), "{err}");
    assert!(err.hint().unwrap().contains("chmod"), "{err:?}");
    assert!(!node.state.pid_file(LIVEKIT_SERVER).exists());
}

#[test]
fn the_standin_validates_tokens_with_its_configured_keys() {
    let node = Node::new();
    let mut reaper = Reaper::default();
    let mut sup = Supervisor::new(node.state.clone(), env_with(&[]), RestartPolicy::default());
    let pid = started_pid(
        &sup.ensure_running(&node.livekit_spec(), Instant::now())
            .unwrap(),
    );
    reaper.watch(pid);
    let token = |key: &str, secret: &str| {
        let exp = jsonwebtoken::get_current_timestamp() + 600;
        let claims = serde_json::json!({"iss": key, "sub": "alice", "exp": exp, "video": {"roomJoin": true, "room": "r"}});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let validate = |t: &str| {
        health::get(
            node.addr(),
            &format!("/rtc/validate?access_token={t}"),
            Duration::from_secs(60),
        )
        .unwrap()
    };
    assert_eq!(
        validate(&token(API_KEY, API_SECRET)),
        (200, "success".to_owned())
    );
    assert_eq!(validate(&token("APIother", API_SECRET)).0, 401);
    // livekit-server 1.13.5's words (measured).
    assert_eq!(
        validate(&token("APIother", API_SECRET)).1,
        "invalid API key: APIother"
    );
    let wrong = validate(&token(API_KEY, "another-secret-another-secret-xx"));
    assert_eq!(wrong.0, 401);
    assert!(
        wrong.1.starts_with("invalid token: ")
            && wrong
                .1
                .ends_with(", error: token signature is invalid: signature is invalid"),
        "{}",
        wrong.1
    );
    assert_eq!(
        health::get(node.addr(), "/nope", Duration::from_secs(60))
            .unwrap()
            .0,
        404
    );
    sup.stop(LIVEKIT_SERVER, GRACE).unwrap();
}

fn environ_names(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap()
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let text = String::from_utf8_lossy(e);
            text.split_once('=')
                .map_or(text.to_string(), |(k, _)| k.to_owned())
        })
        .collect()
}

#[test]
fn repeated_start_failures_crash_loop_until_the_longest_backoff_or_a_reset() {
    let node = Node::with_config(|port| format!("port: {port}\n"));
    let policy = RestartPolicy {
        max_crashes: 2,
        ..RestartPolicy::default()
    };
    let mut sup = Supervisor::new(node.state.clone(), env_with(&[]), policy);
    let spec = node.livekit_spec();
    let t0 = Instant::now();
    let first = sup.ensure_running(&spec, t0).unwrap_err();
    assert!(
        first
            .to_string()
            .contains("one of key-file or keys must be provided"),
        "{first}"
    );
    assert!(matches!(
        sup.ensure_running(&spec, t0).unwrap(),
        Ensured::BackingOff { .. }
    ));
    let later = t0 + Duration::from_secs(1);
    sup.ensure_running(&spec, later).unwrap_err();
    let Ensured::CrashLooping { reason, retry_at } = sup.ensure_running(&spec, later).unwrap()
    else {
        panic!("expected CrashLooping");
    };
    assert!(reason.contains("one of key-file or keys"), "{reason}");
    assert_eq!(retry_at, later + policy.max_backoff);
    let status = sup.status(LIVEKIT_SERVER).unwrap();
    assert!(!status.running && status.failed.is_some());
    assert_eq!(
        status.condition,
        livekit_provision_daemon::supervise::Condition::CrashLooping
    );
    sup.set_restart_pending(LIVEKIT_SERVER, true);
    assert!(sup.status(LIVEKIT_SERVER).unwrap().restart_pending);

    // Bounded: tried again after the longest backoff.
    assert!(matches!(
        sup.ensure_running(&spec, retry_at).unwrap_err(),
        SuperviseError::ExitedDuringStart { .. }
    ));
    sup.reset(LIVEKIT_SERVER);
    assert!(matches!(
        sup.ensure_running(&spec, later).unwrap_err(),
        SuperviseError::ExitedDuringStart { .. }
    ));
}

#[test]
fn a_death_nobody_reported_counts_as_a_crash() {
    let node = Node::new();
    let mut reaper = Reaper::default();
    let mut sup = Supervisor::new(node.state.clone(), env_with(&[]), RestartPolicy::default());
    let spec = node.livekit_spec();
    let pid = started_pid(&sup.ensure_running(&spec, Instant::now()).unwrap());
    reaper.watch(pid);
    nix::sys::signal::kill(Pid::from_raw(i32::try_from(pid).unwrap()), Signal::SIGKILL).unwrap();
    assert!(
        sup.process(LIVEKIT_SERVER)
            .unwrap()
            .wait_exit(Duration::from_secs(60))
            .unwrap()
    );
    let now = Instant::now();
    assert_eq!(
        sup.ensure_running(&spec, now).unwrap(),
        Ensured::BackingOff {
            until: now + Duration::from_secs(1)
        }
    );
    assert!(!sup.status(LIVEKIT_SERVER).unwrap().running);
}
