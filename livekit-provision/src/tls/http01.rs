//! The plain-HTTP side of a TLS node: ACME HTTP-01 answers (`GET
//! /.well-known/acme-challenge/<token>`, from `run/acme-challenge/<token>`), and a redirect to
//! `https://` for everything else. Served by the TLS front on `tls.http_port`, and by an ACME run
//! itself while no front holds the port (the first certificate, before the first start).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// The path prefix of HTTP-01 answers (RFC 8555 §8.3).
pub const PREFIX: &str = "/.well-known/acme-challenge/";

/// The largest request head read.
const MAX_HEAD: usize = 8 * 1024;

/// Where an answer is redirected: `https://<domain>[:<port>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// The configured signaling name (never the request's `Host`: no open redirect).
    pub domain: String,
    /// The front's TLS port.
    pub port: u16,
}

/// A token as ACME servers issue them: base64url, at least 16 and at most 256 characters.
fn valid_token(token: &str) -> bool {
    (16..=256).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn response(status: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The answer to one request head (`GET /path HTTP/1.1 …`).
pub fn answer(head: &[u8], challenges: &Path, redirect: Option<&Redirect>) -> Vec<u8> {
    let line = head
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split(' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return response("400 Bad Request", "", b"bad request\n");
    };
    if let Some(token) = target.strip_prefix(PREFIX) {
        if method != "GET" && method != "HEAD" {
            return response("405 Method Not Allowed", "Allow: GET, HEAD\r\n", b"");
        }
        if !valid_token(token) {
            return response("404 Not Found", "", b"no such challenge\n");
        }
        return match crate::fsio::read_regular(&challenges.join(token)) {
            Ok(body) => {
                let body: &[u8] = if method == "HEAD" { b"" } else { &body };
                response("200 OK", "Content-Type: application/octet-stream\r\n", body)
            }
            Err(_) => response("404 Not Found", "", b"no such challenge\n"),
        };
    }
    match redirect {
        Some(r) if target.starts_with('/') => {
            let port = if r.port == 443 {
                String::new()
            } else {
                format!(":{}", r.port)
            };
            let location = format!("Location: https://{}{port}{target}\r\n", r.domain);
            response("308 Permanent Redirect", &location, b"")
        }
        _ => response("404 Not Found", "", b"not found\n"),
    }
}

/// Read one request head from `stream` and answer it.
pub async fn serve_connection(
    mut stream: TcpStream,
    challenges: &Path,
    redirect: Option<&Redirect>,
) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    })
    .await;
    if read != Ok(true) {
        return;
    }
    let out = answer(&head, challenges, redirect);
    let _ = stream.write_all(&out).await;
    let _ = stream.shutdown().await;
}

/// Answer every connection of `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, challenges: PathBuf, redirect: Option<Redirect>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let challenges = challenges.clone();
        let redirect = redirect.clone();
        tokio::spawn(async move {
            serve_connection(stream, &challenges, redirect.as_ref()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    #[test]
    fn a_challenge_is_answered_from_its_file_and_the_rest_redirected() {
        let dir = tempfile::tempdir().unwrap();
        let token = "abcdefghijklmnop_-0123";
        crate::fsio::write_file(&dir.path().join(token), b"abc.thumb", 0o644).unwrap();
        let head = format!("GET {PREFIX}{token} HTTP/1.1\r\nHost: x\r\n\r\n");
        let out = text(&answer(head.as_bytes(), dir.path(), None));
        assert!(
            out.starts_with("HTTP/1.1 200 OK") && out.ends_with("\r\n\r\nabc.thumb"),
            "{out}"
        );

        let missing = format!("GET {PREFIX}zzzzzzzzzzzzzzzzzzzz HTTP/1.1\r\n\r\n");
        assert!(text(&answer(missing.as_bytes(), dir.path(), None)).starts_with("HTTP/1.1 404"));
        let escape = format!("GET {PREFIX}../../../../etc/passwd HTTP/1.1\r\n\r\n");
        assert!(text(&answer(escape.as_bytes(), dir.path(), None)).starts_with("HTTP/1.1 404"));

        let r = Redirect {
            domain: "lk.example.com".to_owned(),
            port: 8443,
        };
        let out = text(&answer(
            b"GET /rtc?x=1 HTTP/1.1\r\nHost: evil\r\n\r\n",
            dir.path(),
            Some(&r),
        ));
        assert!(out.starts_with("HTTP/1.1 308"), "{out}");
        assert!(
            out.contains("Location: https://lk.example.com:8443/rtc?x=1\r\n"),
            "{out}"
        );
        let r = Redirect {
            domain: "lk.example.com".to_owned(),
            port: 443,
        };
        let out = text(&answer(b"GET / HTTP/1.1\r\n\r\n", dir.path(), Some(&r)));
        assert!(
            out.contains("Location: https://lk.example.com/\r\n"),
            "{out}"
        );
        assert!(text(&answer(b"\r\n\r\n", dir.path(), Some(&r))).starts_with("HTTP/1.1 400"));
    }

    #[tokio::test]
    async fn a_listener_answers_over_a_real_socket() {
        let dir = tempfile::tempdir().unwrap();
        let token = "tokentokentokentoken";
        crate::fsio::write_file(&dir.path().join(token), b"key-authz", 0o644).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(serve(listener, dir.path().to_owned(), None));
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET {PREFIX}{token} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        assert!(text(&out).ends_with("key-authz"), "{}", text(&out));
        task.abort();
    }
}
