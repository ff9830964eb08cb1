//! Who owns the media, and honesty about what runs (issue 12, sections 2 and 4), through the
//! daemon: lk-backend supervised like livekit-server, `media_owner: external` with the media
//! run by `livekit-provision exec` under a supervisor (this test), a livekit-server we did not
//! start found on the port, and restart pending after a node IP change or a staged key.
//! The media are the STAND-INS (not the real programs).

use std::process::{Child, Command, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::support::{
    Daemon, Node, alive, backend_standin, call, cli, free_port, livekit_standin, poll, provisioning,
};

/// The `status` entry of media process `name`, once the daemon lists it.
fn entry(node: &Node, name: &str) -> Option<Value> {
    let status = call(&node.socket(), "status", &json!({})).ok()?;
    status["media"]["processes"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
}

/// The pid of `name` once it runs and is healthy (not `except`).
fn healthy_pid(node: &Node, name: &str, except: Option<u32>) -> u32 {
    poll(&format!("{name} running and healthy"), || {
        let e = entry(node, name)?;
        let pid = u32::try_from(e["pid"].as_u64()?).ok()?;
        (e["running"] == true && e["healthy"] == true && Some(pid) != except).then_some(pid)
    })
}

/// A daemon restart: SIGTERM (it exits 0, leaving the media), then a new one serving.
fn restart_daemon(node: &Node, daemon: Daemon) -> Daemon {
    daemon.signal(Signal::SIGTERM);
    let (status, stderr) = daemon.wait_exit();
    assert_eq!(status.code(), Some(0), "{stderr}");
    node.start(&[])
}

/// The CLI on `node`, with `args` after `--state-dir`.
fn cli_command(node: &Node, args: &[&str]) -> Command {
    let mut cmd = Command::new(cli());
    cmd.arg("--state-dir")
        .arg(node.state.root())
        .args(args)
        .env_remove("LIVEKIT_PROVISION_SECRETS")
        .env_remove("LIVEKIT_PROVISION_RELEASE_URL")
        .env_remove("LIVEKIT_PROVISION_STATE_DIR");
    cmd
}

fn sigkill(pid: u32) {
    let _ = kill(Pid::from_raw(pid.cast_signed()), Signal::SIGKILL);
}

/// A supervised child (the stand-in supervisor's process), killed by pid and reaped at drop.
struct Supervised(Child);

impl Drop for Supervised {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn lk_backend_is_started_probed_restarted_and_adopted_through_the_daemon() {
    let mut node = Node::with_media(&livekit_standin());
    let backend_port = free_port();
    let settings = std::fs::read_to_string(node.state.settings_file()).unwrap();
    node.settings(&format!(
        "{settings}backend_command: {}\nbackend_port: {backend_port}\nbackend_probe: tcp\n",
        backend_standin().display()
    ));
    let daemon = node.start(&[]);
    node.wait_media_healthy();
    let first = healthy_pid(&node, "lk-backend", None);
    node.media_pids.push(first);
    // Started after the config: it got its credentials from backend.env (it exits without).
    let record = node.state.run_dir().join("lk-backend.started.json");
    let started: Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    assert_eq!(started["pid"], json!(first), "{started}");
    assert!(
        started["api_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("API"))
    );

    // A crash is restarted.
    sigkill(first);
    let second = healthy_pid(&node, "lk-backend", Some(first));
    node.media_pids.push(second);
    assert!(!alive(first));

    // A restarted daemon adopts it: the same process, left alone.
    let daemon = restart_daemon(&node, daemon);
    poll("the run after the daemon restart", || {
        (provisioning(&node.socket())["state"] == "ready").then_some(())
    });
    assert_eq!(healthy_pid(&node, "lk-backend", None), second);
    drop(daemon);
}

#[test]
fn external_media_run_by_exec_are_reported_and_never_signalled() {
    let mut node = Node::with_media(&livekit_standin());
    let settings = std::fs::read_to_string(node.state.settings_file()).unwrap();
    node.settings(&format!("{settings}media_owner: external\n"));
    let daemon = node.start(&[]);
    let p = poll("the first run to finish", || {
        let p = provisioning(&node.socket());
        (p["state"] == "ready").then_some(p)
    });
    // The daemon started nothing.
    assert!(!node.state.pid_file("livekit-server").exists(), "{p}");
    let status = call(&node.socket(), "status", &json!({})).unwrap();
    assert_eq!(status["media"]["owner"], json!("external"), "{status}");

    // This test is the outside supervisor: `exec` becomes livekit-server in its child, with
    // the environment cleaned as the daemon cleans it.
    let child = cli_command(&node, &["exec", "livekit-server"])
        .env("LIVEKIT_KEYS", "injected: value")
        .env("NODE_IP", "10.9.9.9")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let supervised = Supervised(child);
    let server = supervised.0.id();
    node.media_pids.push(server);
    assert_eq!(
        healthy_pid(&node, "livekit-server", None),
        server,
        "the supervisor's pid is the server's"
    );
    let exe = std::fs::read_link(format!("/proc/{server}/exe")).unwrap();
    assert_eq!(exe, livekit_standin());
    let environ = std::fs::read(format!("/proc/{server}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(!environ.contains("LIVEKIT_KEYS="), "not cleaned: {environ}");
    assert!(!environ.contains("\0NODE_IP="), "not cleaned: {environ}");

    // start, stop and restart are refused, with a hint; the process is untouched.
    for method in ["stop", "restart", "start"] {
        let err = call(&node.socket(), method, &json!({}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("media_owner: external"), "{method}: {err}");
    }
    let out = cli_command(&node, &["stop"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint:"));
    assert!(alive(server));

    // A daemon restart does not touch it; it is still reported, healthy.
    let daemon = restart_daemon(&node, daemon);
    assert_eq!(healthy_pid(&node, "livekit-server", None), server);
    assert!(alive(server));
    call(&node.socket(), "ensure", &json!({})).unwrap();
    assert_eq!(healthy_pid(&node, "livekit-server", None), server);
    let health = call(&node.socket(), "health", &json!({})).unwrap();
    assert_eq!(health["restart_pending"], json!(false), "{health}");

    // When it exits, the daemon does not restart it: that is the supervisor's call.
    drop(supervised);
    node.media_pids.retain(|&p| p != server);
    assert!(!alive(server));
    call(&node.socket(), "ensure", &json!({})).unwrap();
    let e = poll("livekit-server reported down, its pid file gone", || {
        entry(&node, "livekit-server")
            .filter(|e| e["running"] == false && !node.state.pid_file("livekit-server").exists())
    });
    assert_eq!(e["pid"], json!(null), "{e}");
    assert_eq!(e["failed"], json!(null), "not counted as a crash: {e}");
    call(&node.socket(), "ensure", &json!({})).unwrap();
    assert_eq!(
        entry(&node, "livekit-server").unwrap()["running"],
        json!(false)
    );

    // A supervisor that runs the server without `exec` (no pid file): found on the port.
    let bare = Supervised(
        Command::new(livekit_standin())
            .arg("--config")
            .arg(node.state.root().join("livekit.yaml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let found = healthy_pid(&node, "livekit-server", None);
    assert_eq!(found, bare.0.id());
    let e = entry(&node, "livekit-server").unwrap();
    assert_eq!(e["listener"]["pid"], json!(found), "{e}");
    assert_eq!(e["error"], json!(null), "{e}");
    drop(bare);
    drop(daemon);
}

#[test]
fn exec_refuses_with_exit_78_when_the_state_is_not_ready() {
    let node = Node::with_media(&livekit_standin());
    let settings = std::fs::read_to_string(node.state.settings_file()).unwrap();
    // The daemon owns the media (the default): refused, with the setting to change.
    let out = cli_command(&node, &["exec", "livekit-server"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("media_owner: external"), "{stderr}");
    // External, but nothing provisioned yet.
    node.settings(&format!("{settings}media_owner: external\n"));
    let out = cli_command(&node, &["exec", "livekit-server"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("not provisioned"), "{stderr}");
    assert!(
        stderr.contains("hint: run `livekit-provision ensure`"),
        "{stderr}"
    );
    // lk-backend without a backend_command.
    let ensured = cli_command(&node, &["ensure"]).output().unwrap();
    assert!(ensured.status.success(), "{ensured:?}");
    let out = cli_command(&node, &["exec", "lk-backend"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("backend_command"), "{stderr}");
}

#[test]
fn a_livekit_server_we_did_not_start_is_reported_never_started_over() {
    let mut node = Node::with_media(&livekit_standin());
    let settings = std::fs::read_to_string(node.state.settings_file()).unwrap();
    let port: u16 = settings
        .lines()
        .find_map(|l| l.strip_prefix("port: "))
        .unwrap()
        .parse()
        .unwrap();
    // An older deployment: a livekit-server (stand-in) on the configured port, no pid file.
    let old_config = node.dir.path().join("old-livekit.yaml");
    std::fs::write(
        &old_config,
        format!("port: {port}\nkeys:\n  APIold: oldsecretoldsecretoldsecretoldsecret\n"),
    )
    .unwrap();
    let foreign = Supervised(
        Command::new(livekit_standin())
            .arg("--config")
            .arg(&old_config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let old = foreign.0.id();
    poll("the old server to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });

    // Without a daemon, `start` refuses the same way.
    let ensured = cli_command(&node, &["ensure"]).output().unwrap();
    assert!(ensured.status.success(), "{ensured:?}");
    let out = cli_command(&node, &["start"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("(pid {old}), which we did not start")),
        "{stderr}"
    );
    assert!(stderr.contains("hint: to take it over"), "{stderr}");
    assert!(!node.state.pid_file("livekit-server").exists());

    let daemon = node.start(&[]);
    let p = poll("provisioning to report the old server", || {
        let p = provisioning(&node.socket());
        (p["state"] == "failed").then_some(p)
    });
    let reason = p["last_error"].as_str().unwrap();
    assert!(reason.contains(&format!("(pid {old})")), "{p}");
    assert!(reason.contains("we did not start"), "{p}");
    assert!(p["hint"].as_str().unwrap().contains("take it over"), "{p}");
    // More runs: still not started over it, never counted as crashes.
    call(&node.socket(), "ensure", &json!({})).unwrap();
    call(&node.socket(), "ensure", &json!({})).unwrap();
    let e = entry(&node, "livekit-server").unwrap();
    assert_eq!(e["running"], json!(false), "never a false started: {e}");
    assert_eq!(e["failed"], json!(null), "no crash loop: {e}");
    assert_eq!(e["listener"]["pid"], json!(old), "{e}");
    assert!(
        e["listener"]["name"]
            .as_str()
            .unwrap()
            .starts_with("livekit-server"),
        "{e}"
    );
    assert!(!node.state.pid_file("livekit-server").exists());
    assert!(alive(old));

    // Taken over: once the old one is gone, the daemon starts its own.
    drop(foreign);
    call(&node.socket(), "start", &json!({})).unwrap();
    let ours = node.wait_media_healthy();
    assert_ne!(ours, old);
    assert_eq!(
        entry(&node, "livekit-server").unwrap()["listener"],
        json!(null)
    );
    drop(daemon);
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one story: three changes, two daemons, the CLI"
)]
fn node_ip_and_key_changes_are_restart_pending_across_daemon_restarts_until_restart() {
    let mut node = Node::with_media(&livekit_standin());
    node.manual_changes();
    node.secrets(&json!({ "LIVEKIT_VERSION": "1.7.2", "LIVEKIT_NODE_IP": "127.0.0.1" }));
    let daemon = node.start(&[]);
    let first = node.wait_media_healthy();
    let e = entry(&node, "livekit-server").unwrap();
    assert_eq!(e["restart_reasons"], json!([]), "{e}");

    // A node IP that is on no interface: republished, the running server keeps the old one.
    let mut secrets: Value =
        serde_json::from_slice(&std::fs::read(node.state.secrets_file()).unwrap()).unwrap();
    secrets["LIVEKIT_NODE_IP"] = json!("192.0.2.7");
    node.secrets(&secrets);
    call(&node.socket(), "ensure", &json!({})).unwrap();
    call(&node.socket(), "ensure", &json!({})).unwrap();
    let reason = json!(["livekit.yaml changed: rtc.node_ip: 127.0.0.1 -> 192.0.2.7"]);
    let e = entry(&node, "livekit-server").unwrap();
    assert_eq!(e["pid"], json!(first), "{e}");
    assert_eq!(e["restart_pending"], json!(true), "{e}");
    assert_eq!(e["restart_reasons"], reason, "{e}");
    let health = call(&node.socket(), "health", &json!({})).unwrap();
    assert_eq!(health["restart_pending"], json!(true), "{health}");
    assert_eq!(
        health["restart_reasons"]["livekit-server"], reason,
        "{health}"
    );
    // Ensure's warning: in status, and logged once although two runs raised it.
    let warnings = provisioning(&node.socket())["warnings"].clone();
    assert!(
        warnings
            .to_string()
            .contains("192.0.2.7 is not on any local interface"),
        "{warnings}"
    );
    let log = daemon.stderr();
    assert_eq!(
        log.matches("is not on any local interface").count(),
        1,
        "{log}"
    );

    // The record is on disk: a restarted daemon still knows what the process started with.
    let daemon = restart_daemon(&node, daemon);
    let e = poll("the adopted process compared with the disk", || {
        entry(&node, "livekit-server").filter(|e| e["pid"] == json!(first))
    });
    assert_eq!(e["restart_reasons"], reason, "{e}");

    call(&node.socket(), "restart", &json!({ "grace_secs": 0.2 })).unwrap();
    node.media_pids.retain(|&p| p != first);
    let second = node.wait_media_healthy();
    assert_ne!(second, first);
    let e = entry(&node, "livekit-server").unwrap();
    assert_eq!(e["restart_pending"], json!(false), "{e}");
    assert_eq!(e["restart_reasons"], json!([]), "{e}");

    // A staged key: rotate republishes livekit.yaml with it; status compares it with the record.
    let store_secret = |name: &str| {
        let secrets = std::fs::read_to_string(node.state.secrets_file()).unwrap();
        let secrets: Value = serde_json::from_str(&secrets).unwrap();
        secrets[name].as_str().unwrap().to_owned()
    };
    let old_secret = store_secret("LIVEKIT_API_SECRET");
    let rotated = cli_command(&node, &["secrets", "rotate", "--yes"])
        .output()
        .unwrap();
    assert!(rotated.status.success(), "{rotated:?}");
    let e = poll("the rotation to be restart pending", || {
        entry(&node, "livekit-server").filter(|e| e["restart_pending"] == true)
    });
    let reasons = e["restart_reasons"].to_string();
    assert!(
        reasons.contains("livekit.yaml changed: keys: "),
        "{reasons}"
    );
    let new_secret = store_secret("LIVEKIT_API_SECRET_NEXT");
    assert_ne!(new_secret, old_secret);
    for secret in [&old_secret, &new_secret] {
        assert!(
            !reasons.contains(secret.as_str()),
            "a restart reason holds a secret"
        );
    }
    call(&node.socket(), "restart", &json!({ "grace_secs": 0.2 })).unwrap();
    node.media_pids.retain(|&p| p != second);
    let third = node.wait_media_healthy();
    assert_ne!(third, second);
    let e = entry(&node, "livekit-server").unwrap();
    assert_eq!(e["restart_reasons"], json!([]), "{e}");

    // Without a daemon, the CLI's `status` compares the same record.
    daemon.signal(Signal::SIGTERM);
    let (code, stderr) = daemon.wait_exit();
    assert_eq!(code.code(), Some(0), "{stderr}");
    let set = cli_command(&node, &["secrets", "set", "LIVEKIT_NODE_IP", "192.0.2.8"])
        .output()
        .unwrap();
    assert!(set.status.success(), "{set:?}");
    let ensured = cli_command(&node, &["ensure"]).output().unwrap();
    assert!(ensured.status.success(), "{ensured:?}");
    let out = cli_command(&node, &["--json", "status"]).output().unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["daemon"], json!(false), "{status}");
    let e = &status["media"]["processes"][0];
    assert_eq!(e["pid"], json!(third), "{status}");
    assert_eq!(e["restart_pending"], json!(true), "{status}");
    assert_eq!(
        e["restart_reasons"],
        json!(["livekit.yaml changed: rtc.node_ip: 192.0.2.7 -> 192.0.2.8"]),
        "{status}"
    );
}

/// `systemd-analyze`, when this machine has it.
fn systemd_analyze() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("systemd-analyze"))
            .find(|p| p.is_file())
    })
}

#[test]
fn the_generated_units_verify_and_say_what_they_must() {
    let node = Node::new();
    node.settings(&format!(
        "media_owner: external\nbackend_command: {}\n",
        backend_standin().display()
    ));
    let out_dir = node.dir.path().join("units");
    std::fs::create_dir(&out_dir).unwrap();
    let out = cli_command(&node, &["units", "--user", "root", "--out-dir"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let read = |name: &str| std::fs::read_to_string(out_dir.join(name)).unwrap();
    let server = read("livekit-server.service");
    let backend = read("lk-backend.service");
    let daemon = read("livekit-provision-daemon.service");
    let cli = cli().display().to_string();
    assert!(
        server.contains(&format!("\nExecStart={cli} exec livekit-server\n")),
        "{server}"
    );
    assert!(
        server.contains("\nRestart=always\n") && server.contains("\nRestartPreventExitStatus=78\n")
    );
    assert!(server.contains("\nKillSignal=SIGTERM\n") && server.contains("\nTimeoutStopSec=1h\n"));
    let state = format!("\nReadWritePaths={}\n", node.state.root().display());
    for unit in [&server, &backend, &daemon] {
        assert!(unit.contains(&state), "{unit}");
        assert!(unit.contains("\nNoNewPrivileges=yes\n"), "{unit}");
        assert!(unit.contains("\nProtectSystem=strict\n"), "{unit}");
    }
    assert!(
        backend.contains("\nAfter=livekit-server.service\n"),
        "{backend}"
    );
    assert!(
        backend.contains("\nRequires=livekit-server.service\n"),
        "{backend}"
    );
    assert!(
        backend.contains(&format!("\nExecStart={cli} exec lk-backend\n")),
        "{backend}"
    );
    assert!(daemon.contains("\nKillMode=process\n"), "{daemon}");

    let Some(analyze) = systemd_analyze() else {
        eprintln!("systemd-analyze is not installed: the units were checked by structure only");
        return;
    };
    let verify = Command::new(analyze)
        .arg("verify")
        .args(
            [
                "livekit-server.service",
                "lk-backend.service",
                "livekit-provision-daemon.service",
            ]
            .map(|n| out_dir.join(n)),
        )
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success(),
        "systemd-analyze verify refused: {said}"
    );
    assert!(
        said.trim().is_empty(),
        "systemd-analyze verify warned: {said}"
    );
}
