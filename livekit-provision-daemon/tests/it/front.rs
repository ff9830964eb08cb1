//! The TLS front over real sockets: `wss://` terminated and spliced to the signaling port, a
//! renewed certificate taken by new handshakes while an open connection carries on, the TURN
//! name handed on unopened (SNI routing), HTTP-01 answers and the redirect. An echo server
//! stands in for livekit-server's port here (the e2e suite runs the real one behind it).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livekit_provision::StateDir;
use livekit_provision_daemon::front;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

fn ca() -> Ca {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "front test root");
    let cert = params.self_signed(&key).unwrap();
    Ca {
        issuer: rcgen::Issuer::new(params, key),
        pem: cert.pem(),
    }
}

/// Write a leaf for `names` signed by `ca` to `cert`/`key` (renamed into place, key 0600).
fn issue(ca: &Ca, names: &[&str], cert: &Path, key: &Path) -> String {
    let pair = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .unwrap();
    let leaf = params.signed_by(&pair, &ca.issuer).unwrap();
    livekit_provision::fsio::write_file(key, pair.serialize_pem().as_bytes(), 0o600).unwrap();
    livekit_provision::fsio::write_file(cert, leaf.pem().as_bytes(), 0o644).unwrap();
    leaf.pem()
}

async fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Echo every byte back, on each connection.
async fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn connector(ca_pem: &str) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn connect(
    ca_pem: &str,
    port: u16,
    name: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    connector(ca_pem)
        .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
        .await
}

fn serial_of(stream: &tokio_rustls::client::TlsStream<TcpStream>) -> Vec<u8> {
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

async fn round_trip(stream: &mut tokio_rustls::client::TlsStream<TcpStream>, text: &[u8]) {
    stream.write_all(text).await.unwrap();
    let mut got = vec![0u8; text.len()];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut got))
        .await
        .unwrap_or_else(|_| panic!("no echo through the front"))
        .unwrap();
    assert_eq!(got, text);
}

async fn http(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// A front serving `lk.test` (and `turn.lk.test` for TURN/TLS) from the operator's files.
struct Front {
    _dir: tempfile::TempDir,
    state: StateDir,
    ca: Ca,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    first: String,
    turn: TcpListener,
    tls_port: u16,
    http_port: u16,
    yaml: String,
    running: tokio::task::JoinHandle<Result<(), String>>,
}

async fn start_front() -> Front {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path().join("s"));
    std::fs::create_dir_all(state.run_dir().join("acme-challenge")).unwrap();
    let ca = ca();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let first = issue(&ca, &["lk.test", "turn.lk.test"], &cert, &key);
    let signaling = echo_server().await;
    // TURN/TLS stands in as a listener that records what it is handed.
    let turn = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let turn_port = turn.local_addr().unwrap().port();
    let (tls_port, http_port) = (free_port().await, free_port().await);
    let yaml = format!(
        "port: {signaling}\nturn:\n  enabled: true\n  tls_port: {turn_port}\ntls:\n  domain: lk.test\n  turn_domain: turn.lk.test\n  port: {tls_port}\n  http_port: {http_port}\n  cert_file: {}\n  key_file: {}\n",
        cert.display(),
        key.display()
    );
    livekit_provision::fsio::write_file(&state.settings_file(), yaml.as_bytes(), 0o644).unwrap();
    let running = tokio::spawn(front::run(state.clone()));
    Front {
        _dir: dir,
        state,
        ca,
        cert,
        key,
        first,
        turn,
        tls_port,
        http_port,
        yaml,
        running,
    }
}

/// The first TLS connection the front accepts for `name`.
async fn first_connection(f: &Front, name: &str) -> tokio_rustls::client::TlsStream<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match connect(&f.ca.pem, f.tls_port, name).await {
            Ok(s) => return s,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the front never served: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_terminates_wss_and_takes_a_renewal_without_a_cut() {
    let f = start_front().await;
    let mut open = first_connection(&f, "lk.test").await;
    let first_leaf = serial_of(&open);
    assert_eq!(
        first_leaf,
        CertificateDer::from_pem_slice(f.first.as_bytes())
            .unwrap()
            .to_vec()
    );
    round_trip(&mut open, b"before the renewal").await;

    // A renewal: new handshakes get the new certificate; the open connection carries on.
    issue(&f.ca, &["lk.test", "turn.lk.test"], &f.cert, &f.key);
    let deadline = Instant::now() + front::RELOAD_EVERY * 5;
    loop {
        let fresh = connect(&f.ca.pem, f.tls_port, "lk.test").await.unwrap();
        if serial_of(&fresh) != first_leaf {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    round_trip(&mut open, b"after the renewal, same connection").await;

    // HTTP: an ACME answer from run/acme-challenge, a redirect for the rest.
    let token = "a-token-of-twenty-chars";
    livekit_provision::fsio::write_file(
        &f.state.run_dir().join("acme-challenge").join(token),
        b"a-token-of-twenty-chars.thumbprint",
        0o644,
    )
    .unwrap();
    let request =
        format!("GET /.well-known/acme-challenge/{token} HTTP/1.1\r\nHost: lk.test\r\n\r\n");
    let answer = http(f.http_port, &request).await;
    assert!(
        answer.ends_with("a-token-of-twenty-chars.thumbprint"),
        "{answer}"
    );
    let redirect = http(f.http_port, "GET /rtc HTTP/1.1\r\nHost: lk.test\r\n\r\n").await;
    let location = format!("Location: https://lk.test:{}/rtc", f.tls_port);
    assert!(redirect.contains(&location), "{redirect}");
    f.running.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_turn_name_is_handed_on_unopened_and_a_change_of_tls_ends_the_front() {
    let f = start_front().await;
    drop(first_connection(&f, "lk.test").await);
    let client = tokio::spawn({
        let (ca_pem, port) = (f.ca.pem.clone(), f.tls_port);
        async move {
            let _ = tokio::time::timeout(
                Duration::from_secs(3),
                connect(&ca_pem, port, "turn.lk.test"),
            )
            .await;
        }
    });
    let (mut handed, _) = tokio::time::timeout(Duration::from_secs(5), f.turn.accept())
        .await
        .unwrap_or_else(|_| panic!("the TURN name was not routed to turn.tls_port"))
        .unwrap();
    let mut hello = vec![0u8; 2048];
    let n = handed.read(&mut hello).await.unwrap();
    assert_eq!(
        hello[0], 0x16,
        "a TLS handshake record, not decrypted bytes"
    );
    assert!(
        hello[..n].windows(12).any(|w| w == b"turn.lk.test"),
        "the ClientHello carries the TURN name"
    );
    drop(handed);
    client.abort();

    // A change of the tls: section ends the front (its supervisor starts it with the change).
    let changed = f.yaml.replace("domain: lk.test\n", "domain: lk2.test\n");
    livekit_provision::fsio::write_file(&f.state.settings_file(), changed.as_bytes(), 0o644)
        .unwrap();
    let ended = tokio::time::timeout(front::RELOAD_EVERY * 5, f.running)
        .await
        .unwrap_or_else(|_| panic!("the front did not end on a change of tls:"));
    assert_eq!(ended.unwrap(), Ok(()));
}
