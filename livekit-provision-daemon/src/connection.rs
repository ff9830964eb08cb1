//! One client connection: read request lines (at most [`MAX_LINE`] bytes each) and answer each
//! in order. Framing only: the methods are `methods/`.

use std::sync::Arc;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::methods;
use super::protocol::{INVALID_REQUEST, RpcError};
use super::rpc::{self, MAX_LINE};
use super::shared::Shared;

/// Serve one connection until the client closes it, sends an oversized line, or fails.
pub(super) async fn serve(stream: UnixStream, shared: Arc<Shared>) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let limit = u64::try_from(MAX_LINE).unwrap_or(u64::MAX) + 1;
    loop {
        let mut line = Vec::new();
        match (&mut reader).take(limit).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let complete = line.last() == Some(&b'\n');
        if complete {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        if line.len() > MAX_LINE {
            let error = RpcError::new(
                INVALID_REQUEST,
                format!("request line longer than {MAX_LINE} bytes; closing the connection"),
            );
            let _ = write
                .write_all(&rpc::response_line(&Value::Null, Err(error)))
                .await;
            let _ = write.shutdown().await;
            return;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            if complete {
                continue;
            }
            return;
        }
        let answer = match rpc::parse_request(&line) {
            Ok(request) => {
                let result = methods::dispatch(&shared, &request.method, request.params).await;
                request.id.map(|id| rpc::response_line(&id, result))
            }
            Err((id, error)) => Some(rpc::response_line(&id, Err(error))),
        };
        if let Some(answer) = answer
            && write.write_all(&answer).await.is_err()
        {
            return;
        }
        if !complete {
            return;
        }
    }
}
