//! **Test stand-in for livekit-server** (not the real program). It behaves as docs/DESIGN.md
//! ("Facts about livekit-server we rely on") describes where supervision depends on it:
//! - `--version` prints `livekit-server version <X>` (X from `STANDIN_VERSION`, default 1.7.2);
//! - `--config FILE` is parsed strictly: an unknown key at the top level or in `room` or `rtc`
//!   prints livekit's `could not parse config: yaml: unmarshal errors:` message (`line N: field X
//!   not found in type config.RoomConfig`) on stdout and **exits 0**, as does a config without
//!   keys (`one of key-file or keys must be provided`) and an unreadable file (`open FILE: …`,
//!   no prefix, as livekit-server 1.13.5 prints it);
//! - `LIVEKIT_CONFIG` (livekit's `--config-body`), when set, is the config and `--config` is not
//!   read;
//! - `--config FILE ports` (the global flag before the subcommand, as livekit-server takes it)
//!   parses the config the same way without checking keys, prints `TCP Ports` and the ports on
//!   stdout (or the parse error) and exits 0, without serving — as measured on 1.13.5;
//! - `GET /` on `<host>:<port>` (host: the first of `bind_addresses`, else 127.0.0.1) answers
//!   200 `OK` (406 `Not Ready` with `STANDIN_NOT_READY=1`), other paths 404; `GET /rtc/validate`
//!   checks HS256 tokens against the configured keys;
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

/// Fields of livekit-server 1.7.2's `config.RoomConfig` (also accepted by 1.13.5).
const ROOM_KEYS: &[&str] = &[
    "auto_create",
    "enabled_codecs",
    "max_participants",
    "empty_timeout",
    "departure_timeout",
    "enable_remote_unmute",
    "playout_delay",
    "sync_streams",
    "max_metadata_size",
    "max_room_name_length",
    "max_participant_identity_length",
    "room_configurations",
];

/// Fields of livekit-server's `config.RTCConfig` (its own and the inlined rtcconfig ones).
const RTC_KEYS: &[&str] = &[
    "udp_port",
    "tcp_port",
    "port_range_start",
    "port_range_end",
    "use_stun_port_as_ice",
    "node_ip",
    "stun_servers",
    "use_external_ip",
    "skip_external_ip_validation",
    "use_ice_lite",
    "interfaces",
    "ips",
    "enable_loopback_candidate",
    "use_mdns",
    "external_ip_only",
    "batch_io",
    "turn_servers",
    "strict_acks",
    "packet_buffer_size",
    "packet_buffer_size_video",
    "packet_buffer_size_audio",
    "pli_throttle",
    "congestion_control",
    "allow_tcp_fallback",
    "reconnect_on_publication_error",
    "reconnect_on_subscription_error",
    "reconnect_on_data_channel_error",
    "data_channel_max_buffered_amount",
    "forward_stats",
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
    // `--config-body` / `LIVEKIT_CONFIG` wins over `--config`, as in livekit-server.
    let body = std::env::var("LIVEKIT_CONFIG")
        .ok()
        .filter(|b| !b.is_empty());
    let text = match &config_path {
        _ if body.is_some() => body.unwrap_or_default(),
        Some(path) => {
            let Ok(text) = std::fs::read_to_string(path) else {
                println!("open {path}: no such file or directory");
                return ExitCode::SUCCESS;
            };
            text
        }
        None => String::new(),
    };
    if args.iter().any(|a| a == "ports") {
        match parse_ports(&text) {
            Ok(ports) => print!("{ports}"),
            Err(message) => println!("{message}"),
        }
        return ExitCode::SUCCESS;
    }
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

/// Strict parse of the parts livekit-server's `ports` reads: unknown keys (top level, `room`,
/// `rtc`) are refused with livekit's message and line number; keys are not required.
fn parse_strict(text: &str) -> Result<serde_yaml::Value, String> {
    let mut unknown: Vec<String> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with([' ', '\t', '#', '-']) && !l.trim().is_empty())
        .filter_map(|(i, l)| l.split_once(':').map(|(k, _)| (i + 1, k.trim().to_owned())))
        .filter(|(_, key)| !KNOWN_KEYS.contains(&key.as_str()))
        .map(|(line, key)| format!("  line {line}: field {key} not found in type config.Config"))
        .collect();
    let value: serde_yaml::Value = if text.trim().is_empty() {
        serde_yaml::Value::Null
    } else {
        serde_yaml::from_str(text).map_err(|e| format!("could not parse config: yaml: {e}"))?
    };
    for (section, known, type_name) in [
        ("room", ROOM_KEYS, "config.RoomConfig"),
        ("rtc", RTC_KEYS, "config.RTCConfig"),
    ] {
        let Some(serde_yaml::Value::Mapping(fields)) = value.get(section) else {
            continue;
        };
        for key in fields.keys().filter_map(serde_yaml::Value::as_str) {
            if !known.contains(&key) {
                let line = line_of(text, section, key);
                unknown.push(format!(
                    "  line {line}: field {key} not found in type {type_name}"
                ));
            }
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "could not parse config: yaml: unmarshal errors:\n{}",
            unknown.join("\n")
        ));
    }
    Ok(value)
}

/// The line (1-based) of `key` inside top-level `section`: on the section's own line (a flow
/// mapping) or on a later one.
fn line_of(text: &str, section: &str, key: &str) -> usize {
    let start = text
        .lines()
        .position(|l| l.starts_with(&format!("{section}:")))
        .unwrap_or(0);
    text.lines()
        .enumerate()
        .skip(start)
        .find(|(_, l)| {
            l.contains(&format!("{key}:"))
                && (l.starts_with([' ', '\t']) || l.starts_with(&format!("{section}:")))
        })
        .map_or(start + 1, |(i, _)| i + 1)
}

/// What `livekit-server --config FILE ports` prints (livekit-server 1.13.5's layout; a single
/// UDP port is shown as that version prints it, a formatting bug included).
fn parse_ports(text: &str) -> Result<String, String> {
    let value = parse_strict(text)?;
    let number = |v: Option<&serde_yaml::Value>, default: u64| {
        v.and_then(serde_yaml::Value::as_u64).unwrap_or(default)
    };
    let rtc = value.get("rtc");
    let field = |name: &str| rtc.and_then(|r| r.get(name));
    let port = number(value.get("port"), 7880);
    let tcp = number(field("tcp_port"), 7881);
    let udp = match (field("port_range_start"), field("udp_port")) {
        (None, Some(single)) => format!("%!s(int={}) - ICE/UDP", number(Some(single), 0)),
        _ => format!(
            "{}-{} - ICE/UDP range",
            number(field("port_range_start"), 50000),
            number(field("port_range_end"), 60000)
        ),
    };
    Ok(format!(
        "TCP Ports\n{port} - HTTP service\n{tcp} - ICE/TCP\nUDP Ports\n{udp}\n"
    ))
}

/// Strict parse for a start: as [`parse_strict`], and keys are required. Returns the port, the
/// keys and the address to listen on (the first of `bind_addresses`; the real server listens on
/// each, and on every address when none is given).
fn parse_config(text: &str) -> Result<(u16, BTreeMap<String, String>, String), String> {
    let value = parse_strict(text)?;
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
    fn nested_unknown_keys_are_refused_as_livekit_names_them() {
        let err = parse_config("keys:\n  k: s\nroom:\n  empty_timeout_typo: 5\n").unwrap_err();
        assert!(
            err.ends_with("  line 4: field empty_timeout_typo not found in type config.RoomConfig"),
            "{err}"
        );
        let err = parse_ports("room: {empty_timeout_typo: 5}\n").unwrap_err();
        assert!(err.contains("line 1: field empty_timeout_typo"), "{err}");
        let err = parse_ports("rtc:\n  udp_prot: 1\n").unwrap_err();
        assert!(
            err.contains("line 2: field udp_prot not found in type config.RTCConfig"),
            "{err}"
        );
    }

    #[test]
    fn ports_lists_what_livekit_1_13_5_lists_without_requiring_keys() {
        assert_eq!(
            parse_ports("port: 7880\n").unwrap(),
            "TCP Ports\n7880 - HTTP service\n7881 - ICE/TCP\nUDP Ports\n50000-60000 - ICE/UDP range\n"
        );
        assert!(
            parse_ports("rtc:\n  udp_port: 7882\n")
                .unwrap()
                .ends_with("UDP Ports\n%!s(int=7882) - ICE/UDP\n")
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
