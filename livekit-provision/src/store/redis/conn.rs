//! A minimal synchronous Redis client: RESP2 over a TCP (or TLS) stream, with every connect,
//! read and write bounded by a timeout. It speaks the few commands the store and the routing
//! probe need (`AUTH`, `SELECT`, `PING`, `GET`, `SET [NX]`, `TYPE`); replies are read in full and
//! checked, and any failure drops the connection, so a half-read reply is never mistaken for the
//! next one.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use zeroize::Zeroizing;

use super::RedisError;
use crate::secret::{MAX_SECRET_LEN, Secret};

/// Longest status or error line we read; longer is a protocol error.
const MAX_LINE: u64 = 4096;
/// Longest bulk string we read: enough to notice a value over [`MAX_SECRET_LEN`].
const MAX_BULK: usize = 64 * 1024;

/// Where and how to connect.
#[derive(Clone)]
pub(crate) struct Target<'a> {
    pub host: &'a str,
    pub port: u16,
    pub tls: bool,
    pub username: Option<&'a str>,
    pub password: Option<&'a Secret>,
    pub db: Option<u32>,
    pub timeout: Duration,
}

impl Target<'_> {
    pub(crate) fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One reply.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+OK`
    Status(String),
    /// `-ERR …`
    Error(String),
    /// `:1`
    Integer(i64),
    /// `$…`; `None` is the nil bulk string (absent). Zeroed on drop: it may be a secret.
    Bulk(Option<Zeroizing<Vec<u8>>>),
    /// `*…`; only its length is kept (we never need the elements).
    Array(Option<usize>),
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.flush(),
            Self::Tls(s) => s.flush(),
        }
    }
}

/// An open, authenticated connection with the database selected.
pub(crate) struct Connection {
    stream: BufReader<Stream>,
    address: String,
    timeout: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connection({})", self.address)
    }
}

impl Connection {
    /// Connect, authenticate and select the database.
    pub(crate) fn open(target: &Target<'_>) -> Result<Self, RedisError> {
        let address = target.address();
        let tcp = connect_tcp(target.host, target.port, target.timeout, &address)?;
        let stream = if target.tls {
            Stream::Tls(Box::new(tls_session(tcp, target.host, &address)?))
        } else {
            Stream::Plain(tcp)
        };
        let mut conn = Self {
            stream: BufReader::new(stream),
            address,
            timeout: target.timeout,
        };
        if let Some(password) = target.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = target.username {
                args.push(user.as_bytes());
            }
            args.push(password.expose().as_bytes());
            conn.expect_ok("AUTH", &args)?;
        } else if let Some(user) = target.username {
            // A user without a password: valid for ACL users marked `nopass`, which accept any.
            conn.expect_ok("AUTH", &[b"AUTH", user.as_bytes(), b""])?;
        }
        if let Some(db) = target.db {
            let db_text = db.to_string();
            match conn.call("SELECT", &[b"SELECT", db_text.as_bytes()])? {
                Reply::Status(_) => {}
                Reply::Error(message) => {
                    return Err(RedisError::Database {
                        address: conn.address.clone(),
                        db,
                        message,
                    });
                }
                other => return Err(conn.unexpected("SELECT", &other)),
            }
        }
        Ok(conn)
    }

    /// The `host:port` this connection talks to.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// Send one command and read its reply. Auth errors (`NOAUTH`, `WRONGPASS`) become
    /// [`RedisError::Auth`] whatever the command; other error replies are returned as
    /// [`Reply::Error`] for the caller to judge.
    pub(crate) fn call(
        &mut self,
        command: &'static str,
        args: &[&[u8]],
    ) -> Result<Reply, RedisError> {
        let mut frame = Zeroizing::new(Vec::with_capacity(64));
        frame.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            frame.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            frame.extend_from_slice(arg);
            frame.extend_from_slice(b"\r\n");
        }
        let sent = self
            .stream
            .get_mut()
            .write_all(&frame)
            .and_then(|()| self.stream.get_mut().flush());
        sent.map_err(|e| self.io_error(e))?;
        let reply = self.read_reply(command)?;
        if let Reply::Error(message) = &reply
            && is_auth_error(message)
        {
            return Err(RedisError::Auth {
                address: self.address.clone(),
                message: message.clone(),
            });
        }
        Ok(reply)
    }

    /// Send a command whose only good answer is a status line.
    pub(crate) fn expect_ok(
        &mut self,
        command: &'static str,
        args: &[&[u8]],
    ) -> Result<(), RedisError> {
        match self.call(command, args)? {
            Reply::Status(_) => Ok(()),
            Reply::Error(message) => Err(self.refused(command, message)),
            other => Err(self.unexpected(command, &other)),
        }
    }

    /// `PING`.
    pub(crate) fn ping(&mut self) -> Result<(), RedisError> {
        self.expect_ok("PING", &[b"PING"])
    }

    /// The error for an error reply to `command`.
    pub(crate) fn refused(&self, command: &'static str, message: String) -> RedisError {
        if command == "AUTH" {
            return RedisError::Auth {
                address: self.address.clone(),
                message,
            };
        }
        RedisError::Command {
            address: self.address.clone(),
            command,
            message,
        }
    }

    /// The error for a reply of the wrong kind to `command` (naming the kind, not the contents).
    pub(crate) fn unexpected(&self, command: &'static str, reply: &Reply) -> RedisError {
        let kind = match reply {
            Reply::Status(_) => "a status line",
            Reply::Error(_) => "an error",
            Reply::Integer(_) => "an integer",
            Reply::Bulk(Some(_)) => "a string",
            Reply::Bulk(None) => "nil",
            Reply::Array(_) => "an array",
        };
        self.protocol(command, format!("got {kind}"))
    }

    fn protocol(&self, command: &'static str, reason: String) -> RedisError {
        RedisError::Protocol {
            address: self.address.clone(),
            command,
            reason,
        }
    }

    fn io_error(&self, e: io::Error) -> RedisError {
        timeout_or(e, &self.address, self.timeout, |source| RedisError::Io {
            address: self.address.clone(),
            source,
        })
    }

    fn read_reply(&mut self, command: &'static str) -> Result<Reply, RedisError> {
        let line = self.read_line(command)?;
        let kind = line.as_bytes().first().copied().unwrap_or(b' ');
        // The kind byte is ASCII when it is one we know, so `[1..]` is on a char boundary.
        let rest = if b"+-:$*".contains(&kind) {
            &line[1..]
        } else {
            ""
        };
        match kind {
            b'+' => Ok(Reply::Status(rest.to_owned())),
            b'-' => Ok(Reply::Error(rest.to_owned())),
            b':' => rest
                .parse()
                .map(Reply::Integer)
                .map_err(|_| self.protocol(command, "an integer reply is not a number".to_owned())),
            b'$' => {
                let Some(len) = self.length(command, rest)? else {
                    return Ok(Reply::Bulk(None));
                };
                if len > MAX_BULK {
                    return Err(self.protocol(
                        command,
                        format!("a string of {len} bytes; at most {MAX_SECRET_LEN} are expected"),
                    ));
                }
                let mut data = Zeroizing::new(vec![0; len + 2]);
                let read = self.stream.read_exact(&mut data);
                read.map_err(|e| self.io_error(e))?;
                if !data.ends_with(b"\r\n") {
                    return Err(self.protocol(command, "a string not ended by CRLF".to_owned()));
                }
                data.truncate(len);
                Ok(Reply::Bulk(Some(data)))
            }
            b'*' => {
                let len = self.length(command, rest)?;
                for _ in 0..len.unwrap_or(0) {
                    self.read_reply(command)?;
                }
                Ok(Reply::Array(len))
            }
            _ => Err(self.protocol(
                command,
                "not a RESP reply (is this a Redis server?)".to_owned(),
            )),
        }
    }

    /// A bulk or array length; `-1` is nil.
    fn length(&self, command: &'static str, text: &str) -> Result<Option<usize>, RedisError> {
        if text == "-1" {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|_| self.protocol(command, "a length that is not a number".to_owned()))
    }

    /// One CRLF-terminated line, without the CRLF; never empty.
    fn read_line(&mut self, command: &'static str) -> Result<String, RedisError> {
        let mut line = Vec::new();
        let read = (&mut self.stream)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line);
        let n = read.map_err(|e| self.io_error(e))?;
        if n == 0 {
            return Err(self.io_error(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            )));
        }
        if !line.ends_with(b"\r\n") || line.len() < 3 {
            return Err(self.protocol(command, "a reply line not ended by CRLF".to_owned()));
        }
        line.truncate(line.len() - 2);
        String::from_utf8(line)
            .map_err(|_| self.protocol(command, "a reply line that is not UTF-8".to_owned()))
    }
}

fn is_auth_error(message: &str) -> bool {
    ["NOAUTH", "WRONGPASS", "NOPERM"]
        .iter()
        .any(|code| message.starts_with(code))
        || message.starts_with("ERR AUTH")
        || message.contains("invalid password")
        || message.contains("invalid username-password")
}

fn timeout_or(
    e: io::Error,
    address: &str,
    timeout: Duration,
    other: impl FnOnce(io::Error) -> RedisError,
) -> RedisError {
    if matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        RedisError::TimedOut {
            address: address.to_owned(),
            timeout,
        }
    } else {
        other(e)
    }
}

fn connect_tcp(
    host: &str,
    port: u16,
    timeout: Duration,
    address: &str,
) -> Result<TcpStream, RedisError> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|source| RedisError::Resolve {
            address: address.to_owned(),
            source,
        })?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no addresses");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                let setup = stream
                    .set_read_timeout(Some(timeout))
                    .and_then(|()| stream.set_write_timeout(Some(timeout)))
                    .and_then(|()| stream.set_nodelay(true));
                setup.map_err(|source| RedisError::Io {
                    address: address.to_owned(),
                    source,
                })?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(timeout_or(last, address, timeout, |source| {
        RedisError::Connect {
            address: address.to_owned(),
            source,
        }
    }))
}

/// A TLS client session over `tcp`, checking the server's certificate for `host` against the
/// platform's trust store (which honours `SSL_CERT_FILE`). The handshake happens on first use.
fn tls_session(
    tcp: TcpStream,
    host: &str,
    address: &str,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, RedisError> {
    use rustls_platform_verifier::BuilderVerifierExt;

    let tls_error = |reason: String| RedisError::Tls {
        address: address.to_owned(),
        reason,
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(BuilderVerifierExt::with_platform_verifier)
        .map_err(|e| tls_error(e.to_string()))?
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| tls_error(format!("{host} is not a valid server name: {e}")))?;
    let session = rustls::ClientConnection::new(Arc::new(config), name)
        .map_err(|e| tls_error(e.to_string()))?;
    Ok(rustls::StreamOwned::new(session, tcp))
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::thread;

    use super::*;

    /// A one-connection fake server that answers each command with the next canned reply, and
    /// hands back everything it received.
    fn fake(replies: &'static [&'static [u8]]) -> (u16, thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = thread::spawn(move || {
            let (mut sock, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            for reply in replies {
                let mut buf = [0u8; 1024];
                let n = sock.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
                sock.write_all(reply).unwrap();
            }
            got
        });
        (port, handle)
    }

    fn target(port: u16, password: Option<&Secret>) -> Target<'_> {
        Target {
            host: "127.0.0.1",
            port,
            tls: false,
            username: None,
            password,
            db: Some(2),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn speaks_resp_and_reads_every_reply_kind() {
        let (port, server) = fake(&[
            b"+OK\r\n",
            b"+OK\r\n",
            b"$5\r\nhel\r\n\r\n",
            b"$-1\r\n",
            b":7\r\n",
            b"*2\r\n$1\r\na\r\n:1\r\n",
        ]);
        let password = Secret::new("pw");
        let mut conn = Connection::open(&target(port, Some(&password))).unwrap();
        let Reply::Bulk(Some(value)) = conn.call("GET", &[b"GET", b"k"]).unwrap() else {
            panic!()
        };
        assert_eq!(value.as_slice(), b"hel\r\n");
        assert_eq!(
            conn.call("GET", &[b"GET", b"k"]).unwrap(),
            Reply::Bulk(None)
        );
        assert_eq!(conn.call("X", &[b"X"]).unwrap(), Reply::Integer(7));
        assert_eq!(conn.call("X", &[b"X"]).unwrap(), Reply::Array(Some(2)));
        let sent = server.join().unwrap();
        assert!(
            sent.starts_with(b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n")
        );
    }

    #[test]
    fn auth_and_protocol_errors_are_classified() {
        let (port, _server) = fake(&[b"-WRONGPASS invalid username-password pair\r\n"]);
        let password = Secret::new("hunter2");
        let err = Connection::open(&target(port, Some(&password))).unwrap_err();
        assert!(matches!(err, RedisError::Auth { .. }), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("hunter2"));

        let (port, _server) = fake(&[b"-ERR DB index is out of range\r\n"]);
        let err = Connection::open(&target(port, None)).unwrap_err();
        assert!(matches!(err, RedisError::Database { db: 2, .. }), "{err:?}");

        let (port, _server) = fake(&[b"HTTP/1.1 400 Bad Request\r\n"]);
        let err = Connection::open(&target(port, None)).unwrap_err();
        assert!(matches!(err, RedisError::Protocol { .. }), "{err:?}");

        let (port, _server) = fake(&[b"+OK\r\n", b"$99999999\r\n"]);
        let mut conn = Connection::open(&target(port, None)).unwrap();
        let err = conn.call("GET", &[b"GET", b"k"]).unwrap_err();
        assert!(matches!(err, RedisError::Protocol { .. }), "{err:?}");
    }

    #[test]
    fn a_silent_server_times_out_and_a_closed_port_is_unreachable() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut t = target(port, None);
        t.timeout = Duration::from_millis(200);
        let err = Connection::open(&t).unwrap_err();
        assert!(matches!(err, RedisError::TimedOut { .. }), "{err:?}");
        assert!(err.is_unreachable());
        drop(listener);
        // A closed port: bound, never listening, held until the end. Not the dropped listener:
        // a process forked meanwhile by another test holds a copy of it until its exec, and a
        // connection made then is queued, then reset.
        let closed = tokio::net::TcpSocket::new_v4().unwrap();
        closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = closed.local_addr().unwrap().port();
        let t = target(port, None);
        let err = Connection::open(&t).unwrap_err();
        assert!(matches!(err, RedisError::Connect { .. }), "{err:?}");
        assert!(err.to_string().contains(&format!("127.0.0.1:{port}")));
    }
}
