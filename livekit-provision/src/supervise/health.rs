//! Readiness of a media process, judged by probing it over HTTP, never by its exit code
//! (livekit-server exits 0 when it rejects its config).
//!
//! `GET /` on the loopback port: livekit-server answers 200 `OK` when ready and 406 `Not Ready`
//! when up but not ready. A minimal HTTP/1.1 client over `std::net::TcpStream` is enough for a
//! loopback probe; every step has a short timeout.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// Timeout of one probe's connect, write and read.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The most of a response a probe reads.
const MAX_RESPONSE: u64 = 16 * 1024;

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// 200: serving.
    Ready,
    /// It answered, but not with 200 (livekit-server: 406 until its node stats are fresh).
    NotReady {
        /// The HTTP status.
        status: u16,
        /// The first line of the body.
        body: String,
    },
    /// Nothing answered properly: connection refused, timed out, or not HTTP.
    Down(String),
}

impl Probe {
    /// True for [`Probe::Ready`].
    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Ready)
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready => f.write_str("ready"),
            Self::NotReady { status, body } => write!(f, "not ready (HTTP {status} {body:?})"),
            Self::Down(why) => write!(f, "down ({why})"),
        }
    }
}

/// `GET /` on `addr`, with [`PROBE_TIMEOUT`] per step.
pub fn probe(addr: SocketAddr) -> Probe {
    probe_with_timeout(addr, PROBE_TIMEOUT)
}

/// `GET /` on `addr`, with `timeout` per step.
pub fn probe_with_timeout(addr: SocketAddr, timeout: Duration) -> Probe {
    match get(addr, "/", timeout) {
        Ok((200, _)) => Probe::Ready,
        Ok((status, body)) => Probe::NotReady {
            status,
            body: body.lines().next().unwrap_or_default().to_owned(),
        },
        Err(e) => Probe::Down(e.to_string()),
    }
}

/// A bare HTTP/1.1 GET: returns the status and the body (lossy UTF-8, at most 16 KiB).
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: livekit-provision\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.take(MAX_RESPONSE).read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> io::Result<(u16, String)> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("incomplete HTTP response"))?;
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") => {
            let status = code.parse().map_err(|_| bad("bad HTTP status code"))?;
            Ok((status, body.to_owned()))
        }
        _ => Err(bad("not an HTTP response")),
    }
}

/// The last `n` lines of a log file (at most its last 64 KiB are read). A missing file has none.
pub fn log_tail(path: &Path, n: usize) -> io::Result<Vec<String>> {
    const WINDOW: u64 = 64 * 1024;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let start = len.saturating_sub(WINDOW);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // probably cut in the middle
    }
    let skip = lines.len().saturating_sub(n);
    Ok(lines[skip..].iter().map(|l| (*l).to_owned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn serve_once(response: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "client closed early");
                request.extend_from_slice(&buf[..n]);
            }
            conn.write_all(response.as_bytes()).unwrap();
        });
        addr
    }

    #[test]
    fn ready_not_ready_and_down() {
        let ok = serve_once("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK");
        assert_eq!(probe(ok), Probe::Ready);
        let not = serve_once("HTTP/1.1 406 Not Acceptable\r\n\r\nNot Ready\nNode Updated At x");
        assert_eq!(
            probe(not),
            Probe::NotReady {
                status: 406,
                body: "Not Ready".into()
            }
        );
        let garbage = serve_once("SSH-2.0-OpenSSH\r\n\r\n");
        assert!(matches!(probe(garbage), Probe::Down(_)));
        // Bound and never listening, held: a dropped listener could live on for a moment in a
        // process another test forks, and accept.
        let closed_socket = tokio::net::TcpSocket::new_v4().unwrap();
        closed_socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .unwrap();
        let closed = closed_socket.local_addr().unwrap();
        assert!(matches!(probe(closed), Probe::Down(_)));
    }

    #[test]
    fn log_tail_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        assert!(log_tail(&path, 3).unwrap().is_empty());
        let text: String = (1..=100)
            .map(|i| format!("line {i}"))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&path, text).unwrap();
        assert_eq!(
            log_tail(&path, 2).unwrap(),
            vec!["line 99".to_owned(), "line 100".to_owned()]
        );
    }
}
