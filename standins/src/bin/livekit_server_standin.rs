//! **Test stand-in for livekit-server** (not the real program). It behaves as docs/DESIGN.md
//! ("Facts about livekit-server we rely on") describes where supervision depends on it:
//! - `--version` prints `livekit-server version <X>` (X from `STANDIN_VERSION`, default 1.7.2);
//! - `--config FILE` is parsed strictly: an unknown top-level key prints livekit's
//!   `could not parse config: yaml: unmarshal errors:` message on stdout and **exits 0**, as does
//!   a config without keys (`one of key-file or keys must be provided`);
//! - `GET /` on `<host>:<port>` (host: the first of `bind_addresses`, else 127.0.0.1) answers
//!   200 `OK` (406 `Not Ready` with `STANDIN_NOT_READY=1`), other paths 404; `GET /rtc/validate` checks HS256 tokens against the configured keys;
//! - the first SIGTERM starts a drain and the process keeps running (unless
//!   `STANDIN_EXIT_ON_FIRST_TERM=1`); the second SIGTERM exits;
//! - `STANDIN_CRASH_AFTER_MS=N` makes it exit with status 2 after N ms, and
//!   `STANDIN_CRASH_ENDPOINT=1` makes `GET /standin/crash` exit it with status 2 at once.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use livekit_provision_standins::{Request, serve};
use tokio::signal::unix::{SignalKind, signal};

const DEFAULT_VERSION: &str = "1.7.2";

/// Top-level keys of livekit-server 1.7.2's `config.Config`.
const KNOWN_KEYS: &[&str] = &[
    "port",
    "bind_addresses",
    "prometheus_port",
    "prometheus",
    "rtc",
    "redis",
    "audio",
    "video",
    "room",
    "turn",
    "ingress",
    "sip",
    "webhook",
    "node_selector",
    "key_file",
    "keys",
    "region",
    "signal_relay",
    "psrpc",
    "log_level",
    "logging",
    "limit",
    "development",
];

struct Knobs {
    not_ready: bool,
    crash_endpoint: bool,
    exit_on_first_term: bool,
    crash_after: Option<Duration>,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--version" || a == "-v") {
        let version = std::env::var("STANDIN_VERSION").unwrap_or_else(|_| DEFAULT_VERSION.into());
        println!("livekit-server version {version}");
        return ExitCode::SUCCESS;
    }
    let config_path = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--config=").map(str::to_owned).or_else(|| {
            (a == "--config")
                .then(|| args.get(i + 1).cloned())
                .flatten()
        })
    });
    let text = match &config_path {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                println!("could not parse config: open {path}: {e}");
                return ExitCode::SUCCESS;
            }
        },
        None => String::new(),
    };
    // livekit-server prints its startup errors on stdout and exits 0.
    let (port, keys, host) = match parse_config(&text) {
        Ok(parsed) => parsed,
        Err(message) => {
            println!("{message}");
            return ExitCode::SUCCESS;
        }
    };
    let knobs = Knobs {
        not_ready: std::env::var_os("STANDIN_NOT_READY").is_some_and(|v| v == "1"),
        crash_endpoint: std::env::var_os("STANDIN_CRASH_ENDPOINT").is_some_and(|v| v == "1"),
        exit_on_first_term: std::env::var_os("STANDIN_EXIT_ON_FIRST_TERM")
            .is_some_and(|v| v == "1"),
        crash_after: std::env::var("STANDIN_CRASH_AFTER_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis),
    };
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(run(&host, port, keys, knobs)),
        Err(e) => {
            println!("could not start server: {e}");
            ExitCode::SUCCESS
        }
    }
}

/// Strict parse: unknown top-level keys are refused with livekit's message and line number.
/// Returns the port, the keys and the address to listen on (the first of `bind_addresses`; the
/// real server listens on each, and on every address when none is given).
fn parse_config(text: &str) -> Result<(u16, BTreeMap<String, String>, String), String> {
    let unknown: Vec<String> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with([' ', '\t', '#', '-']) && !l.trim().is_empty())
        .filter_map(|(i, l)| l.split_once(':').map(|(k, _)| (i + 1, k.trim().to_owned())))
        .filter(|(_, key)| !KNOWN_KEYS.contains(&key.as_str()))
        .map(|(line, key)| format!("  line {line}: field {key} not found in type config.Config"))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "could not parse config: yaml: unmarshal errors:\n{}",
            unknown.join("\n")
        ));
    }
    let value: serde_yaml::Value = if text.trim().is_empty() {
        serde_yaml::Value::Null
    } else {
        serde_yaml::from_str(text).map_err(|e| format!("could not parse config: yaml: {e}"))?
    };
    let port = match value.get("port") {
        None => 7880,
        Some(p) => p
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or("could not parse config: port is not a port number")?,
    };
    let keys: BTreeMap<String, String> = match value.get("keys") {
        None | Some(serde_yaml::Value::Null) => BTreeMap::new(),
        Some(k) => serde_yaml::from_value(k.clone())
            .map_err(|e| format!("could not parse config: keys: {e}"))?,
    };
    if keys.is_empty() {
        return Err("one of key-file or keys must be provided".into());
    }
    let host = value
        .get("bind_addresses")
        .and_then(|b| b.get(0))
        .and_then(serde_yaml::Value::as_str)
        .unwrap_or("127.0.0.1")
        .to_owned();
    Ok((port, keys, host))
}

async fn run(host: &str, port: u16, keys: BTreeMap<String, String>, knobs: Knobs) -> ExitCode {
    // Handlers first, so that a SIGTERM that arrives as soon as we are ready is not fatal.
    let Ok(mut terms) = signal(SignalKind::terminate()) else {
        println!("could not start server: cannot handle SIGTERM");
        return ExitCode::SUCCESS;
    };
    let listener = match tokio::net::TcpListener::bind((host, port)).await {
        Ok(l) => l,
        Err(e) => {
            println!("could not start server: listen tcp {host}:{port}: {e}");
            return ExitCode::SUCCESS;
        }
    };
    println!("starting LiveKit server (STAND-IN) portHttp={port}");
    let keys = Arc::new(keys);
    let (not_ready, crash_endpoint) = (knobs.not_ready, knobs.crash_endpoint);
    tokio::spawn(serve(listener, move |request| {
        let keys = Arc::clone(&keys);
        async move {
            if crash_endpoint && request.path == "/standin/crash" {
                println!("stand-in crashing as asked (GET /standin/crash)");
                std::process::exit(2);
            }
            route(&request, &keys, not_ready)
        }
    }));
    if let Some(after) = knobs.crash_after {
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            println!("stand-in crashing as asked (STANDIN_CRASH_AFTER_MS)");
            std::process::exit(2);
        });
    }
    terms.recv().await;
    if knobs.exit_on_first_term {
        println!("exit requested");
        return ExitCode::SUCCESS;
    }
    println!("draining: waiting for participants to leave (send SIGTERM again to force)");
    terms.recv().await;
    println!("exit requested, forcing stop");
    ExitCode::SUCCESS
}

fn route(request: &Request, keys: &BTreeMap<String, String>, not_ready: bool) -> (u16, String) {
    match request.path.as_str() {
        "/" if not_ready => (
            406,
            "Not Ready\nNode Updated At 0001-01-01 (stand-in)".into(),
        ),
        "/" => (200, "OK".into()),
        "/rtc/validate" | "/rtc/v1/validate" => validate(request, keys),
        _ => (404, "404 page not found".into()),
    }
}

fn validate(request: &Request, keys: &BTreeMap<String, String>) -> (u16, String) {
    let token = match request.header("authorization") {
        Some(h) => match h.strip_prefix("Bearer ") {
            Some(t) => t.to_owned(),
            None => {
                return (
                    401,
                    "invalid authorization header. Must start with Bearer ".into(),
                );
            }
        },
        None => match request.query_param("access_token") {
            Some(t) => t.to_owned(),
            None => return (401, "permissions denied".into()),
        },
    };
    let Ok(unverified) =
        jsonwebtoken::dangerous::insecure_decode::<serde_json::Value>(token.as_bytes())
    else {
        return (401, "invalid authorization token".into());
    };
    let issuer = unverified
        .claims
        .get("iss")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let Some(secret) = keys.get(issuer) else {
        return (401, "invalid API key".into());
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    validation.set_issuer(&[issuer]);
    let key = jsonwebtoken::DecodingKey::from_secret(secret.as_bytes());
    match jsonwebtoken::decode::<serde_json::Value>(token.as_bytes(), &key, &validation) {
        Ok(data)
            if data
                .claims
                .get("video")
                .is_some_and(serde_json::Value::is_object) =>
        {
            (200, "success".into())
        }
        Ok(_) => (401, "permissions denied".into()),
        Err(e) => (401, format!("invalid authorization token: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_with_livekits_message() {
        let err = parse_config("port: 7880\nkeys:\n  k: s\nturn_servers: []\n").unwrap_err();
        assert_eq!(
            err,
            "could not parse config: yaml: unmarshal errors:\n  line 4: field turn_servers not found in type config.Config"
        );
    }

    #[test]
    fn keys_are_required_and_port_defaults() {
        assert_eq!(
            parse_config("port: 1234\n").unwrap_err(),
            "one of key-file or keys must be provided"
        );
        let (port, keys, host) = parse_config("keys:\n  APIx: \"secret\"\n").unwrap();
        assert_eq!(port, 7880);
        assert_eq!(keys.get("APIx").map(String::as_str), Some("secret"));
        assert_eq!(host, "127.0.0.1");
        let text = "keys:\n  APIx: \"secret\"\nbind_addresses:\n  - \"127.0.0.2\"\n  - \"::1\"\n";
        assert_eq!(parse_config(text).unwrap().2, "127.0.0.2");
    }
}
