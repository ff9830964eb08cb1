//! The daemon library in-process: `run` over a socket the test binds, commands, shutdown; and
//! `ControlPlane`, the same loop without a socket, answering as the socket does.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_provision::store::{MemoryStore, SecretName, SecretStore, StoreOp};
use livekit_provision::{ManagedFile, Platform, Secret, StateDir, StoreSpec};
use livekit_provision_daemon::protocol::{NOT_PROVISIONED, NoParams, Status};
use livekit_provision_daemon::{
    self as daemon, ClientError, Command, ControlPlane, DaemonConfig, DaemonError, ProvisionState,
    StatusResult, call_with_timeout,
};
use serde_json::{Value, json};

use crate::release_server::{Release, ReleaseServer, Reply};

fn call(socket: &std::path::Path, method: &str) -> Value {
    call_with_timeout(socket, method, &json!({}), Duration::from_secs(60)).unwrap()
}

/// Poll (on a blocking thread) until `f` holds, or fail after a minute.
async fn wait_for(what: &'static str, f: impl Fn() -> bool + Send + 'static) {
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_reloads_and_returns_on_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path().join("state"));
    let _lock = daemon::lock_instance(&state).unwrap();
    let listener = daemon::bind(&state).unwrap();
    let mut config = DaemonConfig::new(state.clone(), StoreSpec::default_for(&state));
    config.local_addresses = Vec::new;
    let (commands, receiver) = daemon::command_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(daemon::run(listener, config, receiver, async {
        let _ = stopped.await;
    }));

    let socket = state.rpc_socket();
    let s = socket.clone();
    wait_for("disabled", move || {
        call(&s, "status")["provisioning"]["state"] == "disabled"
    })
    .await;
    // Reload runs provisioning again.
    commands.send(Command::Reload).await.unwrap();
    let s = socket.clone();
    wait_for("a second run", move || {
        call(&s, "status")["provisioning"]["runs"].as_u64() >= Some(2)
    })
    .await;

    // A host's default gate over a file store: asking for LIVEKIT_VERSION created nothing.
    let status = call(&socket, "status");
    let reason = status["provisioning"]["disabled_reason"].as_str().unwrap();
    assert!(reason.contains("LIVEKIT_VERSION"), "{reason}");
    assert!(!state.secrets_file().exists());
    assert!(!state.managed(ManagedFile::LivekitYaml).exists());

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(!socket.exists(), "the socket is removed on shutdown");
}

/// Poll `plane`'s `status` until `f` holds, or fail after a minute.
async fn plane_status(
    plane: &ControlPlane,
    what: &str,
    f: impl Fn(&StatusResult) -> bool,
) -> StatusResult {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = plane.request::<Status>(&NoParams {}).await.unwrap();
        if f(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The names in `dir`.
fn names(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_never_mints_and_a_store_it_cannot_read_is_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path().join("state"));
    let store = Arc::new(MemoryStore::new());
    store.set_broken(StoreOp::Get, true);
    let shared: Arc<dyn SecretStore> = store.clone();
    let mut config = DaemonConfig::new(state.clone(), shared);
    config.local_addresses = Vec::new;
    config.retry.initial = Duration::from_millis(50);
    config.retry.max = Duration::from_millis(200);
    let (plane, control) = ControlPlane::new(config).unwrap();
    assert!(
        matches!(
            daemon::lock_instance(&state),
            Err(DaemonError::AlreadyRunning { .. })
        ),
        "one control plane per state directory"
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(control.run(async {
        let _ = stopped.await;
    }));

    // "Could not check" is a failure, retried: never "unset", never "disabled".
    let failed = plane_status(&plane, "a failed run", |s| {
        s.provisioning.state == ProvisionState::Failed
    })
    .await;
    assert!(failed.provisioning.last_error.is_some(), "{failed:?}");
    assert_eq!(failed.provisioning.disabled_reason, None);

    // Readable and without a version: disabled, and nothing minted or written.
    store.set_broken(StoreOp::Get, false);
    assert!(plane.reload());
    let disabled = plane_status(&plane, "disabled", |s| {
        s.provisioning.state == ProvisionState::Disabled
    })
    .await;
    let reason = disabled.provisioning.disabled_reason.unwrap_or_default();
    assert!(reason.contains("LIVEKIT_VERSION"), "{reason}");
    assert_eq!(disabled.version.pinned, None);
    assert_eq!(store.writes(), 0, "nothing minted");
    assert_eq!(names(state.root()), BTreeSet::from(["run".to_owned()]));
    assert_eq!(
        names(&state.run_dir()),
        BTreeSet::from(["daemon.lock".to_owned()])
    );
    let refused = plane.call("ensure", Value::Null).await.unwrap_err();
    assert_eq!(refused.code, NOT_PROVISIONED, "{refused:?}");

    // Once the loop returned, the handle says so and the lock is free.
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    let after = plane.call("status", json!({})).await.unwrap_err();
    assert!(after.message.contains("not running"), "{after:?}");
    assert!(!plane.reload());
    drop(daemon::lock_instance(&state).unwrap());
}

#[test]
fn a_control_plane_answers_exactly_as_the_socket_does() {
    let node = crate::support::Node::new();
    let daemon = node.start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path().join("state"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let config = DaemonConfig::new(state.clone(), StoreSpec::default_for(&state));
    let (plane, control) = runtime
        .block_on(async { ControlPlane::new(config) })
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = runtime.spawn(control.run(async {
        let _ = stopped.await;
    }));

    let cases = [
        ("no.such", json!({})),
        ("status", json!([1])),
        ("status", json!({"verbose": true})),
        ("ensure", json!({"now": true})),
        ("token.create", json!({})),
        ("token.create", json!({"identity": 5})),
        ("stop", json!({"grace_secs": 4000})),
        ("logs.tail", json!({"name": "redis"})),
        (
            "secrets.set",
            json!({"name": "NOT_A_SETTING", "value": "x"}),
        ),
    ];
    for (method, params) in cases {
        let (code, message, hint) =
            match call_with_timeout(&node.socket(), method, &params, Duration::from_secs(60)) {
                Err(ClientError::Rpc {
                    code,
                    message,
                    hint,
                    ..
                }) => (code, message, hint),
                other => panic!("{method} {params}: expected an error, got {other:?}"),
            };
        let hosted = runtime
            .block_on(plane.call(method, params.clone()))
            .unwrap_err();
        assert_eq!(
            (hosted.code, hosted.message.as_str(), hosted.hint()),
            (code, message.as_str(), hint.as_deref()),
            "{method} {params}"
        );
    }
    let discovered = runtime
        .block_on(plane.call("rpc.discover", Value::Null))
        .unwrap();
    assert_eq!(discovered, call(&node.socket(), "rpc.discover"));
    let status = runtime
        .block_on(plane.request::<Status>(&NoParams {}))
        .unwrap();
    assert_eq!(status.state_dir, state.root());
    assert!(status.daemon);

    stop.send(()).unwrap();
    runtime.block_on(running).unwrap().unwrap();
    drop(daemon);
}

/// A download in flight shows in `status.provisioning.progress`: phase `downloading`, the bytes
/// received and the announced total. The release server stalls after half the archive (until the
/// client's read-idle timeout, then serves it whole), so the test sees the half for certain.
#[test]
fn a_download_in_flight_shows_its_bytes_in_status() {
    let server = ReleaseServer::start();
    let release = Release::new("1.7.2");
    server.publish("/dl", &release);
    let half = release.tarball.len() / 2;
    server.route(
        &format!("/dl/v1.7.2/{}", release.asset_name()),
        vec![
            Reply::StallAfter {
                bytes: release.tarball.clone(),
                send: half,
            },
            Reply::ok(&release.tarball),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path().join("state"));
    let store: Arc<dyn SecretStore> = Arc::new(MemoryStore::with_values([(
        SecretName::LIVEKIT_VERSION,
        Secret::new("1.7.2"),
    )]));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _lock = daemon::lock_instance(&state).unwrap();
    let listener = runtime.block_on(async { daemon::bind(&state) }).unwrap();
    let mut config = DaemonConfig::new(state.clone(), store);
    config.local_addresses = Vec::new;
    config.binary.release_url = Some(server.base_url("/dl"));
    config.binary.platform = Platform::new("linux", "x86_64");
    let (_commands, receiver) = daemon::command_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = runtime.spawn(daemon::run(listener, config, receiver, async {
        let _ = stopped.await;
    }));

    let socket = state.rpc_socket();
    let poll = |what: &str, f: &dyn Fn(&Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(status) =
                call_with_timeout(&socket, "status", &json!({}), Duration::from_secs(60))
                && f(&status)
            {
                return status;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let total = u64::try_from(release.tarball.len()).unwrap();
    let seen = poll("half the archive downloaded", &|s| {
        s["provisioning"]["progress"]["bytes_done"].as_u64() == Some(u64::try_from(half).unwrap())
    });
    let progress = &seen["provisioning"]["progress"];
    assert_eq!(progress["operation"], "provision", "{progress}");
    assert_eq!(progress["phase"], "downloading", "{progress}");
    assert_eq!(progress["bytes_total"], json!(total), "{progress}");
    // After the stall the download resumes and completes; nothing is in flight any more.
    let done = poll("the run to finish", &|s| {
        s["version"]["installed"] == "1.7.2" && s["provisioning"]["state"] != "running"
    });
    assert!(done["provisioning"]["progress"].is_null(), "{done}");

    stop.send(()).unwrap();
    runtime.block_on(serving).unwrap().unwrap();
}
