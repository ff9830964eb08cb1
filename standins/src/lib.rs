//! **Test stand-ins** for livekit-server and lk-backend, used by the supervision tests because the
//! real livekit-server cannot be fetched on the build machines. They are not the real programs:
//! they reproduce only the behaviour supervision depends on (see docs/DESIGN.md, "Facts about
//! livekit-server we rely on"): strict config parsing that prints its error and exits 0, `GET /` health,
//! token validation, the RoomService's `ListRooms`/`ListParticipants`, drain on the first SIGTERM.
//!
//! This library holds the tiny HTTP/1.1 server both binaries share: it reads a request's head and
//! its body (by `Content-Length`), and answers with a status, a content type and a body.

use std::future::Future;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The largest request head a stand-in reads.
const MAX_HEAD: usize = 16 * 1024;

/// The largest request body a stand-in reads.
const MAX_BODY: usize = 1024 * 1024;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, without `?`.
    pub query: String,
    /// Header names (lower-cased) and values.
    pub headers: Vec<(String, String)>,
    /// The body (lossy UTF-8; empty without a `Content-Length`).
    pub body: String,
}

/// An answer: status, `Content-Type`, body. A `(status, body)` pair is plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Reply {
    /// A JSON answer (`application/json`, as Twirp writes it).
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: body.into(),
        }
    }
}

impl From<(u16, String)> for Reply {
    fn from((status, body): (u16, String)) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
        }
    }
}

impl Request {
    /// The first header called `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first query parameter called `name` (no percent-decoding: tokens need none).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// Parse a request head (`METHOD target HTTP/1.1`, headers).
pub fn parse_head(head: &str) -> Option<Request> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(Request {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body: String::new(),
    })
}

/// Accept connections forever, answering each request with `handler`'s [`Reply`] (or plain
/// `(status, body)`).
pub async fn serve<H, F, R>(listener: TcpListener, handler: H)
where
    H: Fn(Request) -> F + Clone + Send + 'static,
    F: Future<Output = R> + Send,
    R: Into<Reply>,
{
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let _ = answer(conn, handler).await;
        });
    }
}

async fn answer<H, F, R>(mut conn: TcpStream, handler: H) -> std::io::Result<()>
where
    H: Fn(Request) -> F,
    F: Future<Output = R>,
    R: Into<Reply>,
{
    let mut raw = Vec::new();
    let mut buf = [0u8; 2048];
    let end = loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if raw.len() >= MAX_HEAD {
            return Ok(());
        }
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let text = String::from_utf8_lossy(&raw[..end]).into_owned();
    let reply: Reply = match parse_head(&text) {
        Some(mut request) => {
            let length = request
                .header("content-length")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(0)
                .min(MAX_BODY);
            let mut body = raw.split_off(end + 4);
            while body.len() < length {
                let n = conn.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&buf[..n]);
            }
            body.truncate(length);
            request.body = String::from_utf8_lossy(&body).into_owned();
            handler(request).await.into()
        }
        None => (400, "bad request".to_owned()).into(),
    };
    let Reply {
        status,
        content_type,
        body,
    } = reply;
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        406 => "Not Acceptable",
        _ => "Status",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(response.as_bytes()).await?;
    conn.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_request_head() {
        let r = parse_head(
            "GET /rtc/validate?a=1&access_token=xyz HTTP/1.1\r\nAuthorization: Bearer t\r\nHost: h",
        )
        .unwrap();
        assert_eq!(r.path, "/rtc/validate");
        assert_eq!(r.query_param("access_token"), Some("xyz"));
        assert_eq!(r.header("authorization"), Some("Bearer t"));
        assert!(parse_head("").is_none());
    }
}
