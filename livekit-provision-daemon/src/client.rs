//! A small synchronous client of the daemon's socket, for the CLI's `status`, `start`, `stop` and
//! `restart` (and for tests and benchmarks). [`request`] speaks the typed [`protocol`]
//! (parameters and results as their serde types); [`call`] sends any JSON, for tests that
//! probe the server with what a well-behaved client would never send.
//!
//! [`protocol`]: super::protocol

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::protocol::Method;
use super::rpc::{self, Response};

/// How long [`call`] waits for an answer. `ensure` may download a release, so this is generous;
/// use [`call_with_timeout`] for a quick probe.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No daemon listens on the socket (missing, or a stale socket of a killed daemon).
    #[error("no daemon is listening on {}", socket.display())]
    NotRunning {
        /// The socket.
        socket: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The connection failed or timed out while sending or waiting.
    #[error("talking to the daemon on {} failed", socket.display())]
    Io {
        /// The socket.
        socket: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The answer was not a JSON-RPC response.
    #[error("the daemon on {} sent an invalid response: {reason}", socket.display())]
    BadResponse {
        /// The socket.
        socket: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The daemon answered with an error.
    #[error("the daemon refused {method}: {message}")]
    Rpc {
        /// The method called.
        method: String,
        /// The JSON-RPC error code.
        code: i64,
        /// Its message.
        message: String,
        /// Its hint, when it gave one.
        hint: Option<String>,
    },
}

impl livekit_provision::Hint for ClientError {
    fn hint(&self) -> Option<String> {
        match self {
            Self::NotRunning { .. } => {
                Some("start it with `livekit-provision-daemon` (or its systemd unit)".to_owned())
            }
            Self::Rpc { hint, .. } => hint.clone(),
            _ => None,
        }
    }
}

/// Call method `M` with `params` on the daemon at `socket`, waiting at most `timeout` for the
/// connection, the send and the answer each; its typed result.
pub fn request<M: Method>(
    socket: &Path,
    params: &M::Params,
    timeout: Duration,
) -> Result<M::Result, ClientError> {
    let result = exchange(socket, M::NAME, params, timeout)?;
    serde_json::from_value(result).map_err(|e| ClientError::BadResponse {
        socket: socket.to_owned(),
        reason: format!("the result of {} does not fit its type: {e}", M::NAME),
    })
}

/// Call `method` with `params` (an object, or `null`) on the daemon at `socket`; the `result`.
pub fn call(socket: &Path, method: &str, params: &Value) -> Result<Value, ClientError> {
    call_with_timeout(socket, method, params, DEFAULT_CALL_TIMEOUT)
}

/// [`call`], waiting at most `timeout` for the connection, the send and the answer each.
pub fn call_with_timeout(
    socket: &Path,
    method: &str,
    params: &Value,
    timeout: Duration,
) -> Result<Value, ClientError> {
    exchange(socket, method, params, timeout)
}

/// The id of the one request a connection carries.
const REQUEST_ID: u64 = 1;

/// One request, one response line: the `result`, or the `error` as [`ClientError::Rpc`].
fn exchange(
    socket: &Path,
    method: &str,
    params: &impl Serialize,
    timeout: Duration,
) -> Result<Value, ClientError> {
    let io_err = |source| ClientError::Io {
        socket: socket.to_owned(),
        source,
    };
    let stream = UnixStream::connect(socket).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ClientError::NotRunning {
            socket: socket.to_owned(),
            source,
        },
        _ => io_err(source),
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(io_err)?;
    stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
    (&stream)
        .write_all(&rpc::request_line(REQUEST_ID, method, params))
        .map_err(io_err)?;
    let mut line = Vec::new();
    BufReader::new(&stream)
        .read_until(b'\n', &mut line)
        .map_err(io_err)?;
    let bad = |reason: String| ClientError::BadResponse {
        socket: socket.to_owned(),
        reason,
    };
    if line.is_empty() {
        return Err(bad("the connection closed without an answer".to_owned()));
    }
    let response: Response =
        serde_json::from_slice(&line).map_err(|e| bad(format!("not a JSON-RPC response: {e}")))?;
    // An error about a request the server could not read carries id null (JSON-RPC 2.0 §5).
    let ours = response.id == REQUEST_ID || (response.id.is_null() && response.error.is_some());
    if !ours {
        return Err(bad(format!(
            "the answer is for request id {}, not {REQUEST_ID}",
            response.id
        )));
    }
    if let Some(error) = response.error {
        return Err(ClientError::Rpc {
            method: method.to_owned(),
            hint: error.hint().map(str::to_owned),
            code: error.code,
            message: error.message,
        });
    }
    response
        .result
        .ok_or_else(|| bad("neither result nor error".to_owned()))
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;

    use serde_json::json;

    use super::*;

    /// Serve one connection on a fresh socket: read the request line, answer `answer`.
    fn answering(
        answer: &'static str,
    ) -> (tempfile::TempDir, PathBuf, std::thread::JoinHandle<()>) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("rpc.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = String::new();
            BufReader::new(&stream).read_line(&mut request).unwrap();
            stream.write_all(answer.as_bytes()).unwrap();
        });
        (dir, socket, server)
    }

    #[test]
    fn an_answer_to_another_request_is_refused() {
        let (_dir, socket, server) = answering("{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n");
        let err = call(&socket, "status", &json!({})).unwrap_err();
        server.join().unwrap();
        assert!(
            matches!(&err, ClientError::BadResponse { reason, .. } if reason.contains("request id 2")),
            "{err}"
        );
    }

    #[test]
    fn our_answer_and_an_unreadable_request_error_are_taken() {
        let (_dir, socket, server) =
            answering("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"ok\":true}}\n");
        assert_eq!(
            call(&socket, "status", &json!({})).unwrap(),
            json!({"ok": true})
        );
        server.join().unwrap();

        let (_dir, socket, server) = answering(
            "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"parse error\"}}\n",
        );
        let err = call(&socket, "status", &json!({})).unwrap_err();
        server.join().unwrap();
        assert!(
            matches!(&err, ClientError::Rpc { code: -32700, .. }),
            "{err}"
        );
    }
}
