//! Embedding the control plane in a host service, with the host's own secret store and its own
//! shutdown signal (what hero_livekit_server does with hero_proc's store).
//!
//! `cargo run --example embed [STATE_DIR]` provisions `STATE_DIR` (a temporary directory when
//! absent) from an in-process [`HashMapStore`], serves the daemon's JSON-RPC socket inside this
//! program's tokio runtime, asks it for its `status` and a token over the socket like any client,
//! then shuts it down with its own signal and prints what it saw. This host opts in to
//! provisioning without a version ([`Provision::Always`], as the daemon binary does): with no
//! `LIVEKIT_VERSION` set, no media start, but credentials are minted into its store, the files
//! are rendered and the control plane serves ("disabled"). Without that opt-in
//! ([`DaemonConfig::new`]'s gate) nothing would be provisioned until `LIVEKIT_VERSION` is set.
//!
//! The pieces a host needs are [`HashMapStore`] (any [`SecretStore`]) and [`serve`]; `main` is
//! the demonstration. The daemon's integration tests run [`demo`] too. A host with an RPC server
//! of its own serves the methods there instead, with no second socket: `hero_host.rs`.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_provision::StateDir;
use livekit_provision::store::{SecretName, SecretStore};
use livekit_provision_daemon::protocol::{
    NoParams, Status, StatusResult, TokenCreate, TokenCreateParams, TokenCreateResult,
};
use livekit_provision_daemon::{
    self, ClientError, DaemonConfig, DaemonError, Provision, ProvisionState, request,
};

#[path = "support/hash_map_store.rs"]
mod hash_map_store;
pub use hash_map_store::HashMapStore;

/// Run the control plane for `state` with the host's `store` until `shutdown` completes: take
/// the instance lock, bind the socket, run the loop. The media keep running afterwards.
pub async fn serve(
    state: StateDir,
    store: Arc<dyn SecretStore>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let _instance = livekit_provision_daemon::lock_instance(&state)?;
    let listener = livekit_provision_daemon::bind(&state)?;
    let mut config = DaemonConfig::new(state, store);
    // Provision without a version too (control plane only); the default waits for one.
    config.provision = Provision::Always;
    // Commands (reload, shutdown) the host could send; this host only uses `shutdown`.
    let (_commands, receiver) = livekit_provision_daemon::command_channel();
    livekit_provision_daemon::run(listener, config, receiver, shutdown).await
}

/// What [`demo`] saw over the socket.
#[derive(Debug)]
pub struct Seen {
    /// The `status` once provisioning settled.
    pub status: StatusResult,
    /// A token for `demo-user` in room `demo`.
    pub token: TokenCreateResult,
}

/// Serve `state` from `store` on this runtime, wait for provisioning to settle, ask for a status
/// and a token over the socket, shut down with our own signal and wait for the loop to return.
pub async fn demo(state: StateDir, store: Arc<dyn SecretStore>) -> Result<Seen, String> {
    let socket = state.rpc_socket();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(state, store, async {
        let _ = stopped.await;
    }));
    // The client is synchronous: keep it off the runtime's worker threads.
    let seen = tokio::task::spawn_blocking(move || ask(&socket))
        .await
        .map_err(|e| e.to_string())?;
    let _ = stop.send(());
    server
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| livekit_provision::ErrorReport::of(&e).to_string())?;
    seen
}

/// Poll `status` until provisioning settled (ready, or disabled without a version), then ask
/// for a token.
fn ask(socket: &Path) -> Result<Seen, String> {
    let timeout = Duration::from_secs(30);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        match request::<Status>(socket, &NoParams {}, timeout) {
            Ok(s)
                if matches!(
                    s.provisioning.state,
                    ProvisionState::Ready | ProvisionState::Disabled
                ) =>
            {
                break s;
            }
            Ok(s) if s.provisioning.state == ProvisionState::Failed => {
                return Err(format!(
                    "provisioning failed: {}",
                    s.provisioning.last_error.unwrap_or_default()
                ));
            }
            Ok(_) | Err(ClientError::NotRunning { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(s) => {
                return Err(format!(
                    "provisioning did not settle: {}",
                    s.provisioning.state
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    };
    let params = TokenCreateParams {
        identity: "demo-user".to_owned(),
        room: Some("demo".to_owned()),
        ttl: None,
        name: None,
        metadata: None,
        grants: None,
        admin: None,
    };
    let token = request::<TokenCreate>(socket, &params, timeout).map_err(|e| e.to_string())?;
    Ok(Seen { status, token })
}

fn main() -> ExitCode {
    let temp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot create a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let state = std::env::args_os()
        .nth(1)
        .map_or_else(|| StateDir::new(temp.path().join("state")), StateDir::new);
    let store = Arc::new(HashMapStore::default());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(demo(state.clone(), store.clone())) {
        Ok(seen) => {
            let stored = store
                .get(&SecretName::LIVEKIT_API_KEY)
                .ok()
                .flatten()
                .map(|k| k.expose().to_owned());
            println!("state directory: {}", state.root().display());
            println!("provisioning:    {}", seen.status.provisioning.state);
            println!(
                "API key minted into the host's store: {}",
                stored.unwrap_or_default()
            );
            println!(
                "token for {} signed with {}, expires {}",
                seen.token.identity, seen.token.api_key, seen.token.expires_at
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
