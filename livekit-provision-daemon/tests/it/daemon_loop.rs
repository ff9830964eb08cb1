//! The daemon library in-process: `run` over a socket the test binds, commands, shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_provision::store::{MemoryStore, SecretName, SecretStore};
use livekit_provision::{Platform, Secret, StateDir, StoreSpec};
use livekit_provision_daemon::{self as daemon, Command, DaemonConfig, call_with_timeout};
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

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(!socket.exists(), "the socket is removed on shutdown");
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
