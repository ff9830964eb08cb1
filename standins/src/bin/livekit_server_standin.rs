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
//! - every request's token (`Authorization: Bearer`, else `access_token`) goes through livekit's
//!   auth middleware as 1.13.5 answers it: 401 in plain text, `invalid API key: <key>`,
//!   `invalid token: <jwt>, error: token signature is invalid: signature is invalid` (or
//!   `token has invalid claims: token is expired` / `… is not valid yet`, a minute of leeway);
//! - the RoomService's `ListRooms` and `ListParticipants` (`POST /twirp/livekit.RoomService/…`,
//!   JSON bodies only; no protobuf) answer with 1.13.5's JSON shapes (every field written,
//!   64-bit integers as strings), check the grants as livekit does (`roomList`; `roomAdmin` and
//!   `room` naming the room, else 401 `{"code":"unauthenticated","msg":"permissions denied"}`)
//!   and answer Twirp's `bad_route` (404) and `malformed` (400) errors as measured;
//! - **stand-in only:** `POST /standin/participants` with `{"room": R, "identities": [..]}`
//!   makes room R hold those participants (no WebRTC needed; `[]` leaves the room listed and
//!   empty, as livekit keeps an emptied room for its `departure_timeout`), and `{"room": R}`
//!   ends the room;
//! - the first SIGTERM starts a drain, as livekit-server 1.13.5 does (measured): with no
//!   participant it exits at once (6–18 ms on the real one); with participants it keeps serving
//!   and looks again every 5 s (`STANDIN_DRAIN_POLL_MS` shortens it for tests), exiting when the
//!   last one has left; the second SIGTERM exits at once ("forcing stop").
//!   `STANDIN_EXIT_ON_FIRST_TERM=1` exits on the first SIGTERM whoever is connected;
//! - `STANDIN_CRASH_AFTER_MS=N` makes it exit with status 2 after N ms, and
//!   `STANDIN_CRASH_ENDPOINT=1` makes `GET /standin/crash` exit it with status 2 at once;
//! - `STANDIN_BIND_RTC_TCP=1` makes it hold `rtc.tcp_port` as the real server does, and fail to
//!   start as 1.13.5 does when another process holds it (measured: it prints
//!   `listen tcp :PORT: bind: address already in use` and exits 0 within 0.25 s). Off by
//!   default, so that tests on the default 7881 do not collide.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use livekit_provision_standins::{Reply, Request, serve};
use serde_json::{Value, json};
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
    drain_poll: Duration,
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
    if std::env::var_os("STANDIN_BIND_RTC_TCP").is_some_and(|v| v == "1") {
        let tcp = rtc_tcp_port(&text);
        match std::net::TcpListener::bind(("0.0.0.0", tcp)) {
            // Held for the life of the process, as the real server holds it.
            Ok(listener) => std::mem::forget(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                println!("listen tcp :{tcp}: bind: address already in use");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                println!("listen tcp :{tcp}: {e}");
                return ExitCode::SUCCESS;
            }
        }
    }
    let knobs = Knobs {
        not_ready: std::env::var_os("STANDIN_NOT_READY").is_some_and(|v| v == "1"),
        crash_endpoint: std::env::var_os("STANDIN_CRASH_ENDPOINT").is_some_and(|v| v == "1"),
        exit_on_first_term: std::env::var_os("STANDIN_EXIT_ON_FIRST_TERM")
            .is_some_and(|v| v == "1"),
        crash_after: std::env::var("STANDIN_CRASH_AFTER_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis),
        drain_poll: std::env::var("STANDIN_DRAIN_POLL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(Duration::from_secs(5), Duration::from_millis),
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

/// `rtc.tcp_port` of a config (default 7881).
fn rtc_tcp_port(text: &str) -> u16 {
    serde_yaml::from_str::<serde_yaml::Value>(text)
        .ok()
        .and_then(|v| v.get("rtc")?.get("tcp_port")?.as_u64())
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(7881)
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
    let node = Arc::new(Node {
        keys,
        rooms: Mutex::new(BTreeMap::new()),
        not_ready: knobs.not_ready,
    });
    let crash_endpoint = knobs.crash_endpoint;
    let serving = Arc::clone(&node);
    tokio::spawn(serve(listener, move |request| {
        let node = Arc::clone(&serving);
        async move {
            if crash_endpoint && request.path == "/standin/crash" {
                println!("stand-in crashing as asked (GET /standin/crash)");
                std::process::exit(2);
            }
            node.route(&request)
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
    // livekit-server's Stop(false): no wait when nobody is connected, else a look every 5 s.
    let mut poll = tokio::time::interval(knobs.drain_poll);
    poll.tick().await;
    while node.participants() > 0 {
        tokio::select! {
            _ = terms.recv() => {
                println!("exit requested, forcing stop");
                return ExitCode::SUCCESS;
            }
            _ = poll.tick() => println!("waiting for participants to exit"),
        }
    }
    println!("drained: no participant left; exiting");
    ExitCode::SUCCESS
}

/// What the serving stand-in knows: its keys, its rooms, its readiness.
struct Node {
    keys: BTreeMap<String, String>,
    rooms: Mutex<BTreeMap<String, Room>>,
    not_ready: bool,
}

/// A room and who is in it (set through `POST /standin/participants`).
struct Room {
    sid: String,
    created_ms: u64,
    identities: Vec<String>,
}

impl Node {
    fn route(&self, request: &Request) -> Reply {
        match request.path.as_str() {
            "/" if self.not_ready => (
                406,
                "Not Ready\nNode Updated At 0001-01-01 (stand-in)".to_owned(),
            )
                .into(),
            "/" => (200, "OK".to_owned()).into(),
            "/standin/participants" => self.set_participants(request),
            // livekit's auth middleware runs before every handler below.
            path => match authenticate(request, &self.keys) {
                Err(refusal) => refusal,
                Ok(claims) if path == "/rtc/validate" || path == "/rtc/v1/validate" => {
                    validate(claims.as_ref())
                }
                Ok(claims) if path.starts_with("/twirp/") => self.twirp(request, claims.as_ref()),
                Ok(_) => (404, "404 page not found".to_owned()).into(),
            },
        }
    }

    /// Everyone in every room.
    fn participants(&self) -> usize {
        self.rooms().values().map(|r| r.identities.len()).sum()
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Room>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stand-in only: `{"room": R, "identities": [..]}` sets who is in R (creating it);
    /// `{"room": R}` ends R.
    fn set_participants(&self, request: &Request) -> Reply {
        let Ok(body) = serde_json::from_str::<Value>(&request.body) else {
            return (400, "stand-in: the body is not JSON".to_owned()).into();
        };
        let Some(name) = body.get("room").and_then(Value::as_str) else {
            return (400, "stand-in: no \"room\"".to_owned()).into();
        };
        let mut rooms = self.rooms();
        match body.get("identities").and_then(Value::as_array) {
            None => {
                rooms.remove(name);
            }
            Some(identities) => {
                let identities = identities
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect();
                let count = rooms.len();
                rooms
                    .entry(name.to_owned())
                    .or_insert_with(|| Room {
                        sid: format!("RM_standin{count:05}"),
                        created_ms: now_ms(),
                        identities: Vec::new(),
                    })
                    .identities = identities;
            }
        }
        Reply::json(200, "{}")
    }

    /// livekit's RoomService over Twirp, JSON only: routing errors, then the body, then the
    /// grants, as livekit-server 1.13.5 answers them.
    fn twirp(&self, request: &Request, claims: Option<&Value>) -> Reply {
        let route = format!("{} {}", request.method, request.path);
        let bad_route = |msg: String| {
            let body =
                json!({"code": "bad_route", "msg": msg, "meta": {"twirp_invalid_route": route}});
            Reply::json(404, body.to_string())
        };
        if request.method != "POST" {
            return bad_route(format!(
                "unsupported method {:?} (only POST is allowed)",
                request.method
            ));
        }
        let Some(method @ ("ListRooms" | "ListParticipants")) =
            request.path.strip_prefix("/twirp/livekit.RoomService/")
        else {
            return bad_route(format!("no handler for path {:?}", request.path));
        };
        let content_type = request.header("content-type").unwrap_or_default();
        if !content_type.starts_with("application/json") {
            return bad_route(format!("unexpected Content-Type: {content_type:?}"));
        }
        let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&request.body) else {
            return Reply::json(
                400,
                json!({"code": "malformed", "msg": "the json request could not be decoded"})
                    .to_string(),
            );
        };
        let video = claims.and_then(|c| c.get("video"));
        let grant = |name: &str| {
            video
                .and_then(|v| v.get(name))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let denied = || {
            Reply::json(
                401,
                json!({"code": "unauthenticated", "msg": "permissions denied"}).to_string(),
            )
        };
        let rooms = self.rooms();
        if method == "ListRooms" {
            if !grant("roomList") {
                return denied();
            }
            let names: Vec<&str> = body
                .get("names")
                .and_then(Value::as_array)
                .map(|n| n.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let listed: Vec<Value> = rooms
                .iter()
                .filter(|(name, _)| names.is_empty() || names.contains(&name.as_str()))
                .map(|(name, room)| room_json(name, room))
                .collect();
            return Reply::json(200, json!({ "rooms": listed }).to_string());
        }
        let room = body.get("room").and_then(Value::as_str).unwrap_or_default();
        let granted_room = video
            .and_then(|v| v.get("room"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !grant("roomAdmin") || granted_room != room {
            return denied();
        }
        let participants: Vec<Value> = rooms
            .get(room)
            .map(|r| {
                r.identities
                    .iter()
                    .enumerate()
                    .map(|(i, identity)| participant_json(i, identity, r.created_ms))
                    .collect()
            })
            .unwrap_or_default();
        Reply::json(200, json!({ "participants": participants }).to_string())
    }
}

/// livekit-server 1.13.5's `livekit.Room` in JSON: every field, 64-bit integers as strings, and
/// `num_participants` the count of participants.
fn room_json(name: &str, room: &Room) -> Value {
    json!({
        "sid": room.sid,
        "name": name,
        "empty_timeout": 300,
        "departure_timeout": 20,
        "max_participants": 0,
        "creation_time": (room.created_ms / 1000).to_string(),
        "creation_time_ms": room.created_ms.to_string(),
        "turn_password": "stand-in",
        "enabled_codecs": [{"mime": "audio/opus", "fmtp_line": ""}, {"mime": "video/VP8", "fmtp_line": ""}],
        "metadata": "",
        "num_participants": room.identities.len(),
        "num_publishers": 0,
        "active_recording": false,
        "version": null,
    })
}

/// livekit-server 1.13.5's `livekit.ParticipantInfo` in JSON (a subscriber that publishes
/// nothing).
fn participant_json(index: usize, identity: &str, joined_ms: u64) -> Value {
    json!({
        "sid": format!("PA_standin{index:05}"),
        "identity": identity,
        "state": "ACTIVE",
        "tracks": [],
        "metadata": "",
        "joined_at": (joined_ms / 1000).to_string(),
        "joined_at_ms": joined_ms.to_string(),
        "name": "",
        "version": 2,
        "permission": {
            "can_subscribe": true, "can_publish": true, "can_publish_data": true,
            "can_publish_sources": [], "hidden": false, "recorder": false,
            "can_update_metadata": false, "agent": false, "can_subscribe_metrics": false,
            "can_manage_agent_session": false,
        },
        "region": "",
        "is_publisher": false,
        "kind": "STANDARD",
        "attributes": {},
        "disconnect_reason": "UNKNOWN_REASON",
        "kind_details": [],
        "data_tracks": [],
        "client_protocol": 2,
        "capabilities": [],
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// livekit's auth middleware (pkg/service/auth.go) as 1.13.5 answers: the token from
/// `Authorization: Bearer`, else `access_token`; none → no claims (the handler decides); a
/// refusal is a plain-text 401.
fn authenticate(
    request: &Request,
    keys: &BTreeMap<String, String>,
) -> Result<Option<Value>, Reply> {
    let refuse = |words: String| -> Reply { (401, words).into() };
    let token = match request.header("authorization") {
        Some(h) => match h.strip_prefix("Bearer ") {
            Some(t) => t.to_owned(),
            None => {
                return Err(refuse(
                    "invalid authorization header. Must start with Bearer ".to_owned(),
                ));
            }
        },
        None => match request.query_param("access_token") {
            Some(t) => t.to_owned(),
            None => return Ok(None),
        },
    };
    let Ok(unverified) = jsonwebtoken::dangerous::insecure_decode::<Value>(token.as_bytes()) else {
        return Err(refuse("invalid authorization token".to_owned()));
    };
    let issuer = unverified
        .claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(secret) = keys.get(issuer) else {
        return Err(refuse(format!("invalid API key: {issuer}")));
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    validation.validate_nbf = true;
    validation.leeway = 60;
    // 1.13.5 accepts a token without `exp` (livekit/protocol requires it only from 2026-08).
    validation.set_required_spec_claims::<&str>(&[]);
    validation.set_issuer(&[issuer]);
    let key = jsonwebtoken::DecodingKey::from_secret(secret.as_bytes());
    match jsonwebtoken::decode::<Value>(token.as_bytes(), &key, &validation) {
        Ok(data) => Ok(Some(data.claims)),
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::InvalidSignature => {
                    "token signature is invalid: signature is invalid".to_owned()
                }
                ErrorKind::ExpiredSignature => {
                    "token has invalid claims: token is expired".to_owned()
                }
                ErrorKind::ImmatureSignature => {
                    "token has invalid claims: token is not valid yet".to_owned()
                }
                _ => e.to_string(),
            };
            Err(refuse(format!("invalid token: {token}, error: {why}")))
        }
    }
}

/// `/rtc/validate`: a token with a video grant is valid.
fn validate(claims: Option<&Value>) -> Reply {
    match claims {
        None => (401, "no permissions to access the room".to_owned()).into(),
        Some(c) if c.get("video").is_some_and(Value::is_object) => {
            (200, "success".to_owned()).into()
        }
        Some(_) => (401, "permissions denied".to_owned()).into(),
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
