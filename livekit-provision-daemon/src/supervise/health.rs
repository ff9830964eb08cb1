//! Readiness of a media process, judged by probing it over HTTP, never by its exit code
//! (livekit-server exits 0 when it rejects its config).
//!
//! `GET /` on an address the server binds ([`probe_address`]: loopback unless `bind_addresses`
//! leaves it out): livekit-server answers 200 `OK` when ready and 406 `Not Ready`
//! when up but not ready. A minimal HTTP/1.1 client over `std::net::TcpStream` is enough for a
//! loopback probe; every step has a short timeout. The same client makes the RoomService's POSTs
//! ([`post`], for `rooms.rs`): one home for talking HTTP to the node on loopback.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use livekit_provision::settings::HealthProbe;

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

/// Where to probe a server listening on `port` at `bind_addresses` (livekit.yaml's; empty means
/// every address): loopback when it is bound or covered by an unspecified address (`0.0.0.0`
/// → `127.0.0.1`, `::` → `::1`), else the first bound address.
pub fn probe_address(bind_addresses: &[IpAddr], port: u16) -> SocketAddr {
    let loopback = |ip: &IpAddr| match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    let ip = bind_addresses
        .iter()
        .find(|ip| ip.is_loopback())
        .copied()
        .or_else(|| {
            bind_addresses
                .iter()
                .find(|ip| ip.is_unspecified())
                .map(loopback)
        })
        .or_else(|| bind_addresses.first().copied())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    SocketAddr::new(ip, port)
}

/// Probe `addr` the way `how` says, with `timeout` per step.
pub fn check(addr: SocketAddr, how: &HealthProbe, timeout: Duration) -> Probe {
    match how {
        HealthProbe::Http { path } => match get(addr, path, timeout) {
            Ok((200, _)) => Probe::Ready,
            Ok((status, body)) => Probe::NotReady {
                status,
                body: body.lines().next().unwrap_or_default().to_owned(),
            },
            Err(e) => Probe::Down(e.to_string()),
        },
        HealthProbe::Tcp => match TcpStream::connect_timeout(&addr, timeout) {
            Ok(_) => Probe::Ready,
            Err(e) => Probe::Down(e.to_string()),
        },
    }
}

/// `GET /` on `addr`, with [`PROBE_TIMEOUT`] per step (the tests' probe).
#[cfg(any(test, feature = "testing"))]
pub fn probe(addr: SocketAddr) -> Probe {
    check(addr, &HealthProbe::default(), PROBE_TIMEOUT)
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

/// An answer to [`post`]: its status, header fields (names lower-cased) and body (de-chunked,
/// cut to its `Content-Length`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// Header names (lower-cased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The first header called `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A bare HTTP/1.1 POST of `body` to `path` with `headers` (`Content-Length`, `Host` and
/// `Connection: close` are added). The whole exchange, connect to last byte, takes at most
/// `timeout`; an answer longer than `max_answer` bytes, shorter than its `Content-Length`, or not
/// HTTP is an `InvalidData` error (a stall or a refused connection keeps its own kind). Header
/// values are never echoed in an error: one may be a bearer token.
pub fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
    max_answer: usize,
) -> io::Result<Answer> {
    let deadline = Instant::now() + timeout;
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: livekit-provision\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        if [name, value].iter().any(|t| t.contains(['\r', '\n'])) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("the value of header {name:?} holds a line break"),
            ));
        }
        for part in [*name, ": ", *value, "\r\n"] {
            head.push_str(part);
        }
    }
    head.push_str("\r\n");
    // A socket timeout surfaces as `WouldBlock` ("Resource temporarily unavailable"): say it.
    let stalled = |e: io::Error| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {}", humantime::format_duration(timeout)),
        ),
        _ => e,
    };
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(stalled)?;
    stream.set_write_timeout(Some(remaining(deadline)?))?;
    // Head and body in one write, so that they arrive together. A server that answers from the
    // head alone (livekit's auth middleware refusing a token) and closes its socket while the
    // body is still on its way resets the connection, and the reset discards the answer we
    // had received (1 call in 400 on livekit-server 1.13.5 when written in two).
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request).map_err(stalled)?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        stream.set_read_timeout(Some(remaining(deadline).map_err(stalled)?))?;
        let n = stream.read(&mut buf).map_err(stalled)?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if raw.len() > max_answer.saturating_add(MAX_RESPONSE_HEAD) {
            return Err(invalid(format!("answer larger than {max_answer} bytes")));
        }
    }
    let answer = parse_answer(&raw)?;
    if answer.body.len() > max_answer {
        return Err(invalid(format!("answer larger than {max_answer} bytes")));
    }
    Ok(answer)
}

/// Room for the status line and header fields beyond a POST's body limit.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// What is left until `deadline`, or a `TimedOut` error when nothing is.
fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
    }
    Ok(left)
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// A whole answer read to the end of the connection: status line, header fields, and the body
/// as its framing says (chunked, `Content-Length`, or up to the end).
fn parse_answer(raw: &[u8]) -> io::Result<Answer> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("incomplete HTTP response".to_owned()))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let mut status_line = lines.next().unwrap_or_default().split_whitespace();
    let status = match (status_line.next(), status_line.next()) {
        (Some(version), Some(code)) if version.starts_with("HTTP/1.") => code
            .parse()
            .map_err(|_| invalid("bad HTTP status code".to_owned()))?,
        _ => return Err(invalid("not an HTTP response".to_owned())),
    };
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut answer = Answer {
        status,
        headers,
        body: Vec::new(),
    };
    if answer
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        answer.body = dechunk(rest)?;
    } else if let Some(length) = answer.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| invalid("bad Content-Length".to_owned()))?;
        if rest.len() < length {
            return Err(invalid(format!(
                "truncated answer: {} of {length} bytes",
                rest.len()
            )));
        }
        answer.body = rest[..length].to_vec();
    } else {
        answer.body = rest.to_vec();
    }
    Ok(answer)
}

/// A chunked body, joined (trailers ignored); a missing last chunk is an error.
fn dechunk(mut rest: &[u8]) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| invalid("truncated chunked answer".to_owned()))?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| invalid("bad chunk size".to_owned()))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 {
            return Err(invalid("truncated chunked answer".to_owned()));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
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

/// The last `n` lines of a log file. A missing file has none.
pub fn log_tail(path: &Path, n: usize) -> io::Result<Vec<String>> {
    match LogFollow::open(path, n) {
        Ok((_, lines)) => Ok(lines),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// A media log being followed, as `tail -F` does: its last lines first, then each line appended
/// after them, across rotation (a new file at the path: the old one is read to its end first)
/// and truncation (read again from the start).
#[derive(Debug)]
pub struct LogFollow {
    path: PathBuf,
    file: File,
    /// Where the next read starts.
    offset: u64,
    /// The start of a line whose end has not been written yet.
    partial: Vec<u8>,
}

impl LogFollow {
    /// Open `path`, and return the follower with the file's last `n` lines (up to its current
    /// end; [`LogFollow::poll`] continues from there). A missing file is a `NotFound` error.
    pub fn open(path: &Path, n: usize) -> io::Result<(Self, Vec<String>)> {
        let mut file = File::open(path)?;
        let end = file.metadata()?.len();
        let lines = last_lines(&mut file, end, n)?;
        let follow = Self {
            path: path.to_owned(),
            file,
            offset: end,
            partial: Vec::new(),
        };
        Ok((follow, lines))
    }

    /// The complete lines appended since the last call (none when nothing was).
    pub fn poll(&mut self) -> io::Result<Vec<String>> {
        let mut lines = Vec::new();
        if self.file.metadata()?.len() < self.offset {
            // Truncated in place (copytruncate): what is there now is new.
            self.offset = 0;
            self.partial.clear();
        }
        self.read_new(&mut lines)?;
        if let Some(replacement) = self.replaced()? {
            // Rotated: the old file is read to its end (above); its unfinished line is done.
            if !self.partial.is_empty() {
                lines.push(String::from_utf8_lossy(&self.partial).into_owned());
                self.partial.clear();
            }
            self.file = replacement;
            self.offset = 0;
            self.read_new(&mut lines)?;
        }
        Ok(lines)
    }

    /// Read from the offset to the end, keeping an unfinished last line for later.
    fn read_new(&mut self, lines: &mut Vec<String>) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(self.offset))?;
        let mut bytes = std::mem::take(&mut self.partial);
        let read = self.file.read_to_end(&mut bytes)?;
        self.offset += read as u64;
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        self.partial = bytes.split_off(complete);
        lines.extend(String::from_utf8_lossy(&bytes).lines().map(str::to_owned));
        Ok(())
    }

    /// The file now at the path, when it is another one than ours (rotation); `None` when it is
    /// ours, or nothing is there yet (moved away, not yet recreated).
    fn replaced(&self) -> io::Result<Option<File>> {
        let ours = self.file.metadata()?;
        match std::fs::metadata(&self.path) {
            Ok(now) if (now.dev(), now.ino()) != (ours.dev(), ours.ino()) => {
                match File::open(&self.path) {
                    Ok(file) => Ok(Some(file)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e),
                }
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The last `n` lines of `file` before `end`: read backwards a window at a time until the
/// window holds `n` whole lines or the whole file.
fn last_lines(file: &mut File, end: u64, n: usize) -> io::Result<Vec<String>> {
    const WINDOW: u64 = 64 * 1024;
    let mut start = end;
    let mut bytes = Vec::new();
    let mut newlines = 0;
    // One newline more than `n` marks where the first of the `n` lines starts.
    while start > 0 && newlines <= n {
        let from = start.saturating_sub(WINDOW);
        let mut chunk = vec![0; usize::try_from(start - from).unwrap_or(0)];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut chunk)?;
        #[expect(
            clippy::naive_bytecount,
            reason = "a 64 KiB window at a time: not worth the bytecount crate"
        )]
        let found = chunk.iter().filter(|b| **b == b'\n').count();
        newlines += found;
        chunk.extend_from_slice(&bytes);
        bytes = chunk;
        start = from;
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        lines.remove(0); // cut in the middle
    }
    let skip = lines.len().saturating_sub(n);
    Ok(lines[skip..].iter().map(|l| (*l).to_owned()).collect())
}

/// A loopback server for tests: it reads one request (head and `Content-Length` body), sends it
/// back on the channel, then writes `response` (`None`: answers nothing and holds the connection
/// until the test's client gives up).
#[cfg(test)]
pub(crate) fn answer_one(
    response: Option<Vec<u8>>,
) -> (SocketAddr, std::sync::mpsc::Receiver<Vec<u8>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |l| l.trim().parse().unwrap());
                if request.len() >= end + 4 + length {
                    break;
                }
            }
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        let _ = tx.send(request);
        match response {
            // The client may have given up (an answer too large): not this thread's failure.
            Some(response) => {
                let _ = conn.write_all(&response);
            }
            // Hold the connection open, unanswered, until the client closes it.
            None => while conn.read(&mut buf).is_ok_and(|n| n > 0) {},
        }
    });
    (addr, rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post_to(addr: SocketAddr, max: usize) -> io::Result<Answer> {
        post(
            addr,
            "/twirp/x",
            &[("Content-Type", "application/json"), ("Authorization", "Bearer t0k")],
            b"{\"room\":\"r\"}",
            Duration::from_secs(5),
            max,
        )
    }

    #[test]
    fn post_sends_its_headers_and_body_and_reads_the_answer_by_its_length() {
        let (addr, request) = answer_one(Some(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}junk".to_vec(),
        ));
        let answer = post_to(addr, 1024).unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert_eq!(answer.body, b"{}");
        let request = String::from_utf8(request.recv().unwrap()).unwrap();
        assert!(request.starts_with("POST /twirp/x HTTP/1.1\r\n"), "{request}");
        assert!(request.contains("\r\nContent-Length: 12\r\n"), "{request}");
        assert!(request.contains("\r\nAuthorization: Bearer t0k\r\n"), "{request}");
        assert!(request.ends_with("\r\n\r\n{\"room\":\"r\"}"), "{request}");
    }

    #[test]
    fn post_reads_chunked_and_unframed_answers() {
        let (addr, _) = answer_one(Some(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n".to_vec(),
        ));
        assert_eq!(post_to(addr, 1024).unwrap().body, b"hello world");
        let (addr, _) = answer_one(Some(b"HTTP/1.0 401 Unauthorized\r\n\r\nto the end".to_vec()));
        let answer = post_to(addr, 1024).unwrap();
        assert_eq!((answer.status, answer.body.as_slice()), (401, &b"to the end"[..]));
    }

    #[test]
    fn post_refuses_truncated_oversized_and_non_http_answers() {
        for (response, max, why) in [
            (&b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"[..], 1024, "truncated answer: 3 of 10 bytes"),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", 1024, "truncated chunked answer"),
            (b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world", 10, "answer larger than 10 bytes"),
            (b"SSH-2.0-OpenSSH\r\n\r\n", 1024, "not an HTTP response"),
            (b"HTTP/1.1 200 OK\r\nContent-Le", 1024, "incomplete HTTP response"),
        ] {
            let (addr, _) = answer_one(Some(response.to_vec()));
            let err = post_to(addr, max).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{why}: {err}");
            assert_eq!(err.to_string(), why);
        }
        // Far more than the limit: refused while reading, not after.
        let mut huge = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        huge.resize(200 * 1024, b'x');
        let (addr, _) = answer_one(Some(huge));
        assert_eq!(post_to(addr, 10).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_post_without_an_answer_times_out_and_says_so() {
        let (addr, _) = answer_one(None);
        let err = post(addr, "/", &[], b"", Duration::from_millis(300), 1024).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(err.to_string(), "no answer within 300ms");
    }

    #[test]
    fn a_header_value_cannot_add_lines() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let err = post(addr, "/", &[("X", "a\r\nEvil: 1")], b"", PROBE_TIMEOUT, 1).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(!err.to_string().contains("Evil"), "{err}");
    }

    #[test]
    fn the_probe_follows_the_bind_addresses() {
        let at = |addresses: &[&str]| {
            let ips: Vec<IpAddr> = addresses.iter().map(|a| a.parse().unwrap()).collect();
            probe_address(&ips, 7880).to_string()
        };
        assert_eq!(at(&[]), "127.0.0.1:7880", "unset: every address");
        assert_eq!(at(&["0.0.0.0"]), "127.0.0.1:7880");
        assert_eq!(at(&["::"]), "[::1]:7880");
        assert_eq!(at(&["10.0.0.5", "127.0.0.1"]), "127.0.0.1:7880");
        assert_eq!(at(&["10.0.0.5", "::1"]), "[::1]:7880");
        assert_eq!(at(&["127.0.0.2"]), "127.0.0.2:7880");
        assert_eq!(at(&["10.0.0.5", "0.0.0.0"]), "127.0.0.1:7880");
        assert_eq!(at(&["10.0.0.5", "2001:db8::5"]), "10.0.0.5:7880");
        assert_eq!(at(&["2001:db8::5"]), "[2001:db8::5]:7880");
    }
    use std::net::TcpListener;

    fn serve_once(response: &'static str) -> SocketAddr {
        serve_recording(response).0
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

    /// Answer one request with `response`; the request line it got comes back on the channel.
    fn serve_recording(response: &'static str) -> (SocketAddr, std::sync::mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.ends_with(b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "client closed early");
                request.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8_lossy(&request).into_owned();
            let _ = tx.send(text.lines().next().unwrap_or_default().to_owned());
            conn.write_all(response.as_bytes()).unwrap();
        });
        (addr, rx)
    }

    #[test]
    fn a_probe_gets_its_path_or_only_connects() {
        let (addr, request) = serve_recording("HTTP/1.1 200 OK\r\n\r\nOK");
        let healthz = HealthProbe::try_from("http:/healthz".to_owned()).unwrap();
        assert_eq!(check(addr, &healthz, PROBE_TIMEOUT), Probe::Ready);
        assert_eq!(request.recv().unwrap(), "GET /healthz HTTP/1.1");
        // A server that never answers HTTP (a raw listener) is healthy for `tcp` only.
        let raw = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = raw.local_addr().unwrap();
        assert_eq!(check(addr, &HealthProbe::Tcp, PROBE_TIMEOUT), Probe::Ready);
        let slash = HealthProbe::default();
        assert_eq!(slash.to_string(), "http:/");
        assert!(!check(addr, &slash, Duration::from_millis(200)).is_ready());
        assert!(HealthProbe::try_from("http:/a b".to_owned()).is_err());
    }

    /// Add `text` at the end of the file at `path`, keeping the file (its inode).
    fn append(path: &Path, text: &str) {
        let mut bytes = std::fs::read(path).unwrap();
        bytes.extend_from_slice(text.as_bytes());
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn log_tail_reads_back_past_one_window() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        // 3000 lines of ~100 bytes: about 300 KiB, several 64 KiB windows.
        let lines: Vec<String> = (1..=3000).map(|i| format!("{i:>99}\n")).collect();
        let text = lines.concat();
        std::fs::write(&path, &text).unwrap();
        let tail = log_tail(&path, 2000).unwrap();
        assert_eq!(tail.len(), 2000);
        assert_eq!(tail[0].trim(), "1001");
        assert_eq!(tail[1999].trim(), "3000");
        assert_eq!(log_tail(&path, 5000).unwrap().len(), 3000);
        assert!(log_tail(&path, 0).unwrap().is_empty());
    }

    #[test]
    fn follow_sees_appends_partial_lines_truncation_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        assert_eq!(
            LogFollow::open(&path, 3).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        let (mut follow, tail) = LogFollow::open(&path, 2).unwrap();
        assert_eq!(tail, ["b", "c"]);
        assert!(follow.poll().unwrap().is_empty());

        append(&path, "d\ne");
        assert_eq!(follow.poll().unwrap(), ["d"]);
        append(&path, "nd\n");
        assert_eq!(follow.poll().unwrap(), ["end"]);

        // copytruncate: the file is emptied in place, then written again.
        std::fs::write(&path, "t\n").unwrap();
        assert_eq!(follow.poll().unwrap(), ["t"]);

        // Rotation: the old file gets a last line and moves away; a new one takes the path.
        append(&path, "last of old\nunfinished");
        std::fs::rename(&path, dir.path().join("x.log.1")).unwrap();
        assert_eq!(follow.poll().unwrap(), ["last of old"]);
        std::fs::write(&path, "first of new\n").unwrap();
        assert_eq!(follow.poll().unwrap(), ["unfinished", "first of new"]);
        append(&path, "more\n");
        assert_eq!(follow.poll().unwrap(), ["more"]);
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
