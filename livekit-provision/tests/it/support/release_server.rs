//! A loopback HTTP/1.1 server (127.0.0.1, port 0, one thread per connection, `Connection: close`)
//! serving real-shaped livekit releases that the tests generate, misbehaving on demand.
//!
//! The `livekit-server` inside these releases is a stand-in shell script that prints
//! `livekit-server version X` for `--version`; no real livekit-server is ever fetched.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// One answer to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// 200 with the body; a `Range: bytes=N-` request gets 206 unless `ignore_range`.
    Body { bytes: Vec<u8>, ignore_range: bool },
    /// Any status with extra headers and a body.
    Status {
        code: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// 200 announcing the full length, then only `send` bytes, then the connection closes.
    CutAfter { bytes: Vec<u8>, send: usize },
    /// 200 announcing the full length, then `send` bytes, then silence until the client leaves.
    StallAfter { bytes: Vec<u8>, send: usize },
}

impl Reply {
    /// A plain 200 that honours ranges.
    pub fn ok(bytes: &[u8]) -> Self {
        Self::Body {
            bytes: bytes.to_vec(),
            ignore_range: false,
        }
    }
    /// A status with headers and an empty body.
    pub fn status(code: u16, headers: &[(&str, &str)]) -> Self {
        Self::Status {
            code,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: Vec::new(),
        }
    }
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    /// Header names lowercased.
    pub headers: HashMap<String, String>,
}

#[derive(Default)]
struct Routes {
    /// Per path, replies in order; the last one repeats.
    replies: HashMap<String, Vec<Reply>>,
    served: HashMap<String, usize>,
    seen: Vec<Seen>,
}

/// The running server. Stops (and joins its accept thread) on drop.
pub struct ReleaseServer {
    addr: SocketAddr,
    routes: Arc<Mutex<Routes>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl ReleaseServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let routes = Arc::new(Mutex::new(Routes::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let routes = Arc::clone(&routes);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    // Drop wakes this loop with a connection of its own after setting `stop`.
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let routes = Arc::clone(&routes);
                    let stop = Arc::clone(&stop);
                    std::thread::spawn(move || serve(stream, &routes, &stop));
                }
            })
        };
        Self {
            addr,
            routes,
            stop,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT` + `prefix`.
    pub fn base_url(&self, prefix: &str) -> String {
        format!("http://{}{prefix}", self.addr)
    }

    /// Answer `path` with `replies` in turn (the last one repeats).
    pub fn route(&self, path: &str, replies: Vec<Reply>) {
        self.routes
            .lock()
            .unwrap()
            .replies
            .insert(path.to_owned(), replies);
    }

    /// Serve `release` under `prefix` (e.g. `/dl`), for amd64.
    pub fn publish(&self, prefix: &str, release: &Release) {
        self.route(
            &format!("{prefix}/v{}/{}", release.version, release.asset_name()),
            vec![Reply::ok(&release.tarball)],
        );
        self.route(
            &format!("{prefix}/v{}/checksums.txt", release.version),
            vec![Reply::ok(release.checksums.as_bytes())],
        );
    }

    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.routes.lock().unwrap().seen.clone()
    }

    /// How many requests hit `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.seen().iter().filter(|s| s.path == path).count()
    }
}

impl Drop for ReleaseServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn serve(mut stream: TcpStream, routes: &Mutex<Routes>, stop: &AtomicBool) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let reply = {
        let mut r = routes.lock().unwrap();
        r.seen.push(Seen {
            path: path.clone(),
            headers: headers.clone(),
        });
        let n = *r.served.get(&path).unwrap_or(&0);
        r.served.insert(path.clone(), n + 1);
        r.replies
            .get(&path)
            .map(|list| list[n.min(list.len() - 1)].clone())
    };
    let range_from: Option<usize> = headers
        .get("range")
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.strip_suffix('-'))
        .and_then(|v| v.parse().ok());
    let reply = reply.unwrap_or_else(|| Reply::Status {
        code: 404,
        headers: vec![],
        body: b"Not Found".to_vec(),
    });
    let _ = match reply {
        Reply::Body {
            bytes,
            ignore_range,
        } => match range_from {
            Some(from) if !ignore_range && from < bytes.len() => {
                let extra = format!(
                    "Content-Range: bytes {from}-{}/{}\r\n",
                    bytes.len() - 1,
                    bytes.len()
                );
                respond(&mut stream, 206, &extra, bytes.len() - from, &bytes[from..])
            }
            _ => respond(&mut stream, 200, "", bytes.len(), &bytes),
        },
        Reply::Status {
            code,
            headers,
            body,
        } => {
            let extra: String = headers
                .iter()
                .fold(String::new(), |acc, (k, v)| acc + k + ": " + v + "\r\n");
            respond(&mut stream, code, &extra, body.len(), &body)
        }
        Reply::CutAfter { bytes, send } => {
            respond(&mut stream, 200, "", bytes.len(), &bytes[..send])
        }
        Reply::StallAfter { bytes, send } => {
            let _ = respond(&mut stream, 200, "", bytes.len(), &bytes[..send]);
            // Hold the connection open, sending nothing, until the client gives up (EOF) or the
            // test ends; bounded so a broken test cannot hang forever.
            let deadline = Instant::now() + Duration::from_secs(10);
            stream
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            let mut sink = [0u8; 64];
            while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
                match stream.read(&mut sink) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            Ok(())
        }
    };
}

fn respond(
    stream: &mut TcpStream,
    code: u16,
    extra: &str,
    length: usize,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {code} X\r\nContent-Length: {length}\r\nConnection: close\r\n{extra}\r\n"
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

/// One entry of a generated tarball, possibly hostile.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: &'static str,
    pub kind: tar::EntryType,
    pub data: Vec<u8>,
}

impl Entry {
    pub fn file(name: &'static str, data: &[u8]) -> Self {
        Self {
            name,
            kind: tar::EntryType::Regular,
            data: data.to_vec(),
        }
    }
    pub fn special(name: &'static str, kind: tar::EntryType) -> Self {
        Self {
            name,
            kind,
            data: Vec::new(),
        }
    }
}

/// A gzip tarball of `entries`, names written raw (as an attacker could).
pub fn tarball(entries: &[Entry]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(entry.kind);
        header.set_size(entry.data.len() as u64);
        header.set_mode(0o755);
        header.as_old_mut().name[..entry.name.len()].copy_from_slice(entry.name.as_bytes());
        if entry.kind.is_symlink() || entry.kind.is_hard_link() {
            header.set_link_name("/bin/sh").unwrap();
        }
        header.set_cksum();
        builder.append(&header, entry.data.as_slice()).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// The stand-in binary's text for `version`.
pub fn stand_in_script(version: &str) -> Vec<u8> {
    format!(
        "#!/bin/sh\n# stand-in for livekit-server (tests only)\nif [ \"$1\" = \"--version\" ]; then echo \"livekit-server version {version}\"; fi\n# `ports` (the config pre-check) answers as livekit-server does for a config it accepts.\nif [ \"$1\" = \"ports\" ]; then echo \"TCP Ports\"; fi\n"
    )
    .into_bytes()
}

/// A release for linux/amd64: tarball + checksums.txt.
#[derive(Debug, Clone)]
pub struct Release {
    pub version: String,
    pub tarball: Vec<u8>,
    pub checksums: String,
}

impl Release {
    /// The normal shape: `livekit-server` (the stand-in) and `LICENSE`.
    pub fn new(version: &str) -> Self {
        Self::with_entries(
            version,
            &[
                Entry::file("livekit-server", &stand_in_script(version)),
                Entry::file("LICENSE", b"Apache License 2.0 (test copy)\n"),
            ],
        )
    }

    /// A release whose tarball holds `entries`, correctly listed in checksums.txt.
    pub fn with_entries(version: &str, entries: &[Entry]) -> Self {
        Self::with_tarball(version, tarball(entries))
    }

    /// A release around an arbitrary body, correctly listed in checksums.txt.
    pub fn with_tarball(version: &str, tarball: Vec<u8>) -> Self {
        let mut release = Self {
            version: version.to_owned(),
            tarball,
            checksums: String::new(),
        };
        let digest = hex(&Sha256::digest(&release.tarball));
        release.checksums = format!(
            "{}  livekit_{version}_linux_arm64.tar.gz\n{digest}  {}\n",
            "0".repeat(64),
            release.asset_name()
        );
        release
    }

    pub fn asset_name(&self) -> String {
        format!("livekit_{}_linux_amd64.tar.gz", self.version)
    }

    /// Write the release into a `file://` mirror directory.
    pub fn write_mirror(&self, root: &std::path::Path) {
        let dir = root.join(format!("v{}", self.version));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(self.asset_name()), &self.tarball).unwrap();
        std::fs::write(dir.join("checksums.txt"), &self.checksums).unwrap();
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::new(), |acc, b| acc + &format!("{b:02x}"))
}
