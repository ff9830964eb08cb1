//! The TLS front (`tls-front`): a media process of ours that serves signaling as `wss://` for
//! `provision.yaml`'s `tls:` section. It is started, adopted and healed like livekit-server
//! (its own session; the control plane may die and come back), by re-executing the binary that
//! supervises it with [`ARG`] (see [`main_if_requested`]).
//!
//! - **TLS port** (`tls.port`, 443): the ClientHello is peeked (never consumed). The name of
//!   TURN/TLS (`tls.turn_domain`, when TURN/TLS is on) is handed, unopened, to livekit-server's
//!   `turn.tls_port` (livekit-server terminates TURN/TLS with the same certificate); every
//!   other connection is terminated here (rustls, ALPN `http/1.1`) and spliced to
//!   livekit-server's `port`. Nothing above TCP is parsed: WebSocket and Twirp pass through.
//! - **HTTP port** (`tls.http_port`, 80): ACME HTTP-01 answers from `run/acme-challenge/`, a
//!   redirect to `https://<domain>` for the rest.
//! - **Certificates** are read from the state directory every [`RELOAD_EVERY`] and swapped in
//!   when they change: a renewal is taken by new handshakes, no connection is cut. A pair that
//!   does not match (read in the middle of a switch) is skipped until the next look.
//! - A change of the `tls:` section ends the process (exit 0); its supervisor starts it again
//!   with the new listeners.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use livekit_provision::settings::{Settings, TlsSettings};
use livekit_provision::tls::{self, http01};
use livekit_provision::{OperatorConfig, StateDir};
use rustls::server::{Acceptor, ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};

/// The first argument that makes either binary the TLS front: `<exe> __tls-front <state dir>`.
pub const ARG: &str = "__tls-front";

/// How often the certificate files (and the `tls:` section) are looked at.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// The longest a client may take to send its ClientHello, and then to finish the handshake.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest ClientHello peeked at.
const MAX_HELLO: usize = 16 * 1024;

/// Run the TLS front when the process was started as one (`argv[1]` is [`ARG`]); `None`
/// otherwise. Call it first in `main` of every binary that supervises media.
pub fn main_if_requested() -> Option<std::process::ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(std::ffi::OsStr::new(ARG)) {
        return None;
    }
    let state = StateDir::new(PathBuf::from(args.next()?));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(run(state)),
        Err(e) => Err(format!("cannot start an async runtime: {e}")),
    };
    Some(match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: tls-front: {e}");
            std::process::ExitCode::FAILURE
        }
    })
}

/// The arguments that start the front of `state` (after the program).
pub fn args(state: &StateDir) -> Vec<std::ffi::OsString> {
    vec![ARG.into(), state.root().as_os_str().to_owned()]
}

/// The certificate served now; swapped by the reloader.
#[derive(Debug, Default)]
struct Live {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl ResolvesServerCert for Live {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().and_then(|c| c.clone())
    }
}

/// Where the front sends what it accepts.
#[derive(Debug, Clone)]
struct Routes {
    signaling: SocketAddr,
    turn: Option<(String, SocketAddr)>,
}

/// Serve until a change of the `tls:` section (Ok) or a listener fails (Err).
pub async fn run(state: StateDir) -> Result<(), String> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = OperatorConfig::load(&state).map_err(|e| e.to_string())?;
    let settings = config.settings;
    let tls = settings
        .tls
        .clone()
        .ok_or("provision.yaml has no tls: section")?;
    let live = Arc::new(Live::default());
    let mut seen = None;
    reload(&state, &tls, &live, &mut seen);
    let mut server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(live.clone());
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let routes = routes(&settings, &tls);

    let https = bind(tls.port, "tls.port").await?;
    let http = bind(tls.http_port, "tls.http_port").await?;
    tracing::info!(port = tls.port, http_port = tls.http_port, domain = %tls.domain, "tls-front serving");
    eprintln!(
        "tls-front: serving wss://{}:{} (http {})",
        tls.domain, tls.port, tls.http_port
    );
    let redirect = http01::Redirect {
        domain: tls.domain.clone(),
        port: tls.port,
    };
    tokio::spawn(http01::serve(
        http,
        tls::challenge_dir(&state),
        Some(redirect),
    ));
    tokio::spawn(accept_loop(https, acceptor, routes));

    let mut tick = tokio::time::interval(RELOAD_EVERY);
    loop {
        tick.tick().await;
        reload(&state, &tls, &live, &mut seen);
        match OperatorConfig::load(&state) {
            Ok(now) if now.settings.tls.as_ref() != Some(&tls) => {
                eprintln!("tls-front: the tls: section changed; exiting to be started with it");
                return Ok(());
            }
            _ => {}
        }
    }
}

async fn bind(port: u16, key: &str) -> Result<TcpListener, String> {
    TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(|e| format!("cannot listen on {key} {port}: {e}"))
}

fn routes(settings: &Settings, tls: &TlsSettings) -> Routes {
    let signaling = crate::supervise::probe_address(&settings.bind_addresses, settings.port);
    let turn = tls.turn_name(settings).and_then(|name| {
        let port = settings.turn.tls_port?;
        Some((name, SocketAddr::new(signaling.ip(), port)))
    });
    Routes { signaling, turn }
}

/// Load the pair when the certificate file changed; keep the current one when the new pair
/// cannot be used (yet).
fn reload(state: &StateDir, tls: &TlsSettings, live: &Live, seen: &mut Option<Vec<u8>>) {
    let (cert_path, key_path) = tls::certificate_paths(state, tls);
    let Ok(cert) = livekit_provision::fsio::read_regular(&cert_path) else {
        return;
    };
    if seen.as_deref() == Some(&cert[..]) {
        return;
    }
    let Ok(key) = livekit_provision::fsio::read_regular(&key_path) else {
        return;
    };
    match tls::certified_key(&cert, &key) {
        Ok(certified) => {
            if let Ok(mut current) = live.current.write() {
                *current = Some(certified);
            }
            let serial = tls::read_certificate(&cert_path)
                .map(|i| i.serial)
                .unwrap_or_default();
            eprintln!("tls-front: serving the certificate with serial {serial}");
            *seen = Some(cert.to_vec());
        }
        Err(e) => eprintln!("tls-front: keeping the certificate served: {e}"),
    }
}

async fn accept_loop(listener: TcpListener, acceptor: tokio_rustls::TlsAcceptor, routes: Routes) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let acceptor = acceptor.clone();
        let routes = routes.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, acceptor, &routes).await {
                tracing::debug!("tls-front connection: {e}");
            }
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    routes: &Routes,
) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let name = tokio::time::timeout(HELLO_TIMEOUT, server_name(&stream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no ClientHello"))??;
    if let Some((turn_name, turn)) = &routes.turn
        && name.as_deref() == Some(turn_name.as_str())
    {
        let mut upstream = TcpStream::connect(turn).await?;
        let _ = upstream.set_nodelay(true);
        tokio::io::copy_bidirectional(&mut stream, &mut upstream).await?;
        return Ok(());
    }
    // A client that stalls in the handshake holds nothing for long.
    let mut tls = tokio::time::timeout(HELLO_TIMEOUT, acceptor.accept(stream))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake"))??;
    let mut upstream = TcpStream::connect(routes.signaling).await?;
    let _ = upstream.set_nodelay(true);
    tokio::io::copy_bidirectional(&mut tls, &mut upstream).await?;
    Ok(())
}

/// The SNI of the ClientHello waiting on `stream`, read with `peek` (the bytes stay for
/// whoever handles the connection) and parsed by rustls.
async fn server_name(stream: &TcpStream) -> std::io::Result<Option<String>> {
    let mut buf = vec![0u8; MAX_HELLO];
    let mut last = 0;
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let mut acceptor = Acceptor::default();
        let mut bytes = &buf[..n];
        let _ = acceptor.read_tls(&mut bytes);
        match acceptor.accept() {
            Ok(Some(accepted)) => {
                return Ok(accepted
                    .client_hello()
                    .server_name()
                    .map(str::to_ascii_lowercase));
            }
            Ok(None) if n < MAX_HELLO => {}
            _ => return Ok(None),
        }
        if n == last {
            // Nothing new yet: wait for more of the hello.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        last = n;
    }
}
