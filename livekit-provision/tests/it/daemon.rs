//! The daemon library in-process: `run` over a socket the test binds, commands, shutdown.

use std::time::{Duration, Instant};

use livekit_provision::daemon::{self, Command, DaemonConfig, call_with_timeout};
use livekit_provision::{StateDir, StoreSpec};
use serde_json::{Value, json};

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
