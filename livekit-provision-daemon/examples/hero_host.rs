//! A host like hero_livekit_server: its own tokio runtime, its own JSON-RPC server on its own
//! Unix socket, its own secret store (hero_proc's, in Hero; a `HashMap` here) — and the
//! livekit-provision control plane inside it, its methods mounted under the host's prefix
//! `livekit.` on the host's socket. There is no second socket: `run/rpc.sock` is never bound.
//!
//! ```text
//! cargo run -p livekit-provision-daemon --example hero_host -- [SOCKET [STATE_DIR]]
//! echo '{"jsonrpc":"2.0","id":1,"method":"livekit.status"}' | socat - UNIX-CONNECT:SOCKET
//! ```
//!
//! Without arguments the socket and the state directory are in a temporary directory; Hero's
//! layout is `STATE_DIR` = `~/hero/var/hero_livekit` (`StateDir::hero_location`). The store
//! starts empty, so the seed's gate holds: nothing is provisioned (`livekit.status` says
//! `disabled`, naming `LIVEKIT_VERSION`) until `livekit.secrets.set` stores a version.
//! Ctrl-C stops the host; the media it started keep running, and the next host adopts them.
//!
//! What a host needs is [`serve`] (its loop) and [`answer`] (the routing: strip the prefix,
//! hand the rest to [`ControlPlane::call`]); `main` is the demonstration. The daemon's
//! integration tests run [`serve`] and talk to its socket.

use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use livekit_provision::StateDir;
use livekit_provision::store::SecretStore;
use livekit_provision_daemon::protocol::{INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR};
use livekit_provision_daemon::{ControlPlane, DaemonConfig, RpcError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

#[path = "support/hash_map_store.rs"]
mod hash_map_store;
pub use hash_map_store::HashMapStore;

/// Where the host mounts the control plane's methods.
pub const PREFIX: &str = "livekit.";

/// The longest request line the host reads.
const MAX_LINE: u64 = 64 * 1024;

/// What the host is given.
#[derive(Debug)]
pub struct HostConfig {
    /// The host's own socket.
    pub socket: PathBuf,
    /// The control plane's state directory.
    pub state: StateDir,
    /// The host's secret store.
    pub store: Arc<dyn SecretStore>,
    /// The environment the media start from: the host chooses it.
    pub media_env: Vec<(OsString, OsString)>,
}

/// Any error of the host.
pub type HostError = Box<dyn std::error::Error + Send + Sync>;

/// Run the host until `shutdown` completes: the control plane's loop on this runtime, the
/// host's socket, each connection answered by [`answer`]. Then stop the loop and remove the
/// socket; the media keep running.
pub async fn serve(host: HostConfig, shutdown: impl Future<Output = ()>) -> Result<(), HostError> {
    let config = DaemonConfig::new(host.state, host.store).with_media_env(host.media_env);
    // The control plane: a handle for the request handlers, and its loop (which holds the
    // state directory's instance lock until it returns).
    let (plane, control) = ControlPlane::new(config)?;
    let (stop_control, control_stopped) = tokio::sync::oneshot::channel::<()>();
    let control = tokio::spawn(control.run(async {
        let _ = control_stopped.await;
    }));

    let listener = bind(&host.socket)?;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection(stream, plane.clone()));
                }
                Err(e) => eprintln!("hero_host: accept failed: {e}"),
            },
        }
    }
    let _ = std::fs::remove_file(&host.socket);
    let _ = stop_control.send(());
    control.await??;
    Ok(())
}

/// The host's socket, mode 0600 (it hands out tokens); a stale one is replaced.
fn bind(socket: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_file(socket) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(socket)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// A request on the host's socket: JSON-RPC 2.0, one object per line.
#[derive(Debug, Deserialize)]
struct Request {
    jsonrpc: String,
    #[serde(default)]
    id: Option<Value>,
    method: String,
    #[serde(default)]
    params: Value,
}

/// A response line.
#[derive(Debug, Serialize)]
struct Response {
    jsonrpc: &'static str,
    id: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<RpcError>,
}

/// Answer each request line of one connection, in order.
async fn connection(stream: UnixStream, plane: ControlPlane) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = Vec::new();
        match (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (id, result) = match serde_json::from_slice::<Request>(&line) {
            Ok(request) if request.jsonrpc == "2.0" => {
                let result = answer(&plane, &request.method, request.params).await;
                match request.id {
                    Some(id) => (id, result),
                    None => continue, // a notification
                }
            }
            Ok(_) => (
                Value::Null,
                Err(RpcError::new(
                    INVALID_REQUEST,
                    "\"jsonrpc\" must be \"2.0\"",
                )),
            ),
            Err(e) => (
                Value::Null,
                Err(RpcError::new(PARSE_ERROR, format!("parse error: {e}"))),
            ),
        };
        let (result, error) = match result {
            Ok(value) => (Some(value), None),
            Err(error) => (None, Some(error)),
        };
        let response = Response {
            jsonrpc: "2.0",
            id,
            result,
            error,
        };
        let Ok(mut bytes) = serde_json::to_vec(&response) else {
            return;
        };
        bytes.push(b'\n');
        if write.write_all(&bytes).await.is_err() {
            return;
        }
    }
}

/// The host's routing: its own methods, and ours under [`PREFIX`] — the prefix stripped and the
/// rest handed to the control plane, whose answer (result or error) goes back as it is.
/// `livekit.rpc.discover` answers our document with the names as this host serves them.
pub async fn answer(plane: &ControlPlane, method: &str, params: Value) -> Result<Value, RpcError> {
    if let Some(ours) = method.strip_prefix(PREFIX) {
        if ours == "rpc.discover" {
            return serde_json::to_value(plane.discover(PREFIX))
                .map_err(|e| RpcError::server(e.to_string(), None));
        }
        return plane.call(ours, params).await;
    }
    match method {
        // The host's own methods live beside ours.
        "host.ping" => Ok(Value::String("pong".to_owned())),
        _ => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("no method {method:?}: this host serves host.ping and {PREFIX}*"),
        )),
    }
}

fn main() -> ExitCode {
    let temp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot create a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut args = std::env::args_os().skip(1);
    let socket = args
        .next()
        .map_or_else(|| temp.path().join("hero_livekit.sock"), PathBuf::from);
    let state = args
        .next()
        .map_or_else(|| StateDir::new(temp.path().join("state")), StateDir::new);
    // The host decides what the media see: here its PATH, HOME, LANG and TZ, nothing else.
    let media_env = ["PATH", "HOME", "LANG", "TZ"]
        .into_iter()
        .filter_map(|name| Some((OsString::from(name), std::env::var_os(name)?)))
        .collect();
    let host = HostConfig {
        socket: socket.clone(),
        state,
        store: Arc::new(HashMapStore::default()),
        media_env,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "serving host.ping and {PREFIX}* on {} (Ctrl-C stops)",
        socket.display()
    );
    let result = runtime.block_on(serve(host, async {
        let _ = tokio::signal::ctrl_c().await;
    }));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
