//! Property tests of rendering: for arbitrary valid inputs, each file parses back to the
//! projection of the inputs, the three files agree on the credentials, and rendering is
//! deterministic.

#![allow(
    clippy::unwrap_used,
    reason = "strategies build values that are valid by construction; a panic is a test failure"
)]

use std::net::IpAddr;
use std::path::PathBuf;

use livekit_provision::render::ParsedFiles;
use livekit_provision::store::TlsFiles;
use livekit_provision::{
    ApiKey, Credentials, ExtraOverlay, LivekitVersion, LogLevel, RedisRouting, RenderInputs,
    RoutingNodes, Secret, Settings, expected, render,
};
use proptest::prelude::*;
use serde_yaml::{Mapping, Value};

/// Characters `Secret::api_secret` allows: printable ASCII minus `'` `"` `\` `$` `` ` ``.
const SECRET_CHARS: &str = "[!#%&()*+,\\-./0-9:;<=>?@A-Z\\[\\]^_a-z{|}~]";

fn api_key() -> impl Strategy<Value = ApiKey> {
    "[A-Za-z0-9_-]{1,40}".prop_map(|k| ApiKey::new(k).unwrap())
}

/// Valid API secrets, including ones YAML would read as numbers or booleans unquoted, and ones
/// starting with `#`, `:` or `-`.
fn api_secret() -> impl Strategy<Value = Secret> {
    let prefix = prop_oneof![
        Just(String::new()),
        Just("12345678901234567890123456789012345".to_owned()),
        Just("true".to_owned()),
        Just("0x1f".to_owned()),
        Just("1e5".to_owned()),
        Just("#:".to_owned()),
        Just("-".to_owned()),
        "[0-9]{1,40}".boxed(),
    ];
    (
        prefix,
        prop::string::string_regex(&format!("{SECRET_CHARS}{{32,64}}")).unwrap(),
    )
        .prop_map(|(prefix, rest)| Secret::api_secret(format!("{prefix}{rest}")).unwrap())
}

fn credentials() -> impl Strategy<Value = Credentials> {
    (api_key(), api_secret()).prop_map(|(key, secret)| Credentials { key, secret })
}

fn port() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

fn settings() -> impl Strategy<Value = Settings> {
    let level = prop_oneof![
        Just(LogLevel::Debug),
        Just(LogLevel::Info),
        Just(LogLevel::Warn),
        Just(LogLevel::Error),
    ];
    (port(), port(), port(), port(), port(), level).prop_map(
        |(port, rtc_tcp_port, start, end, backend_port, log_level)| Settings {
            port,
            rtc_tcp_port,
            rtc_port_range_start: start.min(end),
            rtc_port_range_end: start.max(end),
            backend_port,
            log_level,
            ..Settings::default()
        },
    )
}

fn version() -> impl Strategy<Value = Option<LivekitVersion>> {
    prop::option::of((0u32..20, 0u32..20, 0u32..30, any::<bool>()).prop_map(
        |(major, minor, patch, v)| {
            let prefix = if v { "v" } else { "" };
            LivekitVersion::parse(&format!("{prefix}{major}.{minor}.{patch}")).unwrap()
        },
    ))
}

fn redis() -> impl Strategy<Value = Option<RedisRouting>> {
    let address = || "[a-z][a-z0-9.-]{0,15}:[1-9][0-9]{0,4}";
    let nodes = prop_oneof![
        address().prop_map(RoutingNodes::Address),
        (
            any::<String>(),
            prop::collection::vec(address(), 1..4),
            prop::option::of(any::<String>()),
            prop::option::of(any::<String>().prop_map(Secret::new)),
        )
            .prop_map(|(master_name, addresses, username, password)| {
                RoutingNodes::Sentinel {
                    master_name,
                    addresses,
                    username,
                    password,
                }
            }),
        prop::collection::vec(address(), 1..4).prop_map(RoutingNodes::Cluster),
    ];
    let file = || prop::option::of("/[a-z0-9/ ._-]{1,30}".prop_map(std::path::PathBuf::from));
    prop::option::of(
        (
            nodes,
            prop::option::of(any::<String>()),
            prop::option::of(any::<String>().prop_map(Secret::new)),
            prop::option::of(any::<u32>()),
            any::<bool>(),
            (file(), file(), file()),
        )
            .prop_map(|(nodes, username, password, db, tls, (ca, cert, key))| {
                RedisRouting {
                    nodes,
                    username,
                    password,
                    db,
                    tls,
                    // The files are rendered under `tls:`, which only TLS writes.
                    tls_files: if tls {
                        TlsFiles { ca, cert, key }
                    } else {
                        TlsFiles::default()
                    },
                }
            }),
    )
}

/// Strings that YAML readers take for something else when written plain.
fn ambiguous_word() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "true", "False", "null", "Null", "~", "", "no", "off", "y", "1.5", "0x10", "1e5", ".inf",
        "-", "? x", "a: b", "#c", "*alias", "&anchor", "!tag", "{}", "[]", "|", ">", "'", "\"",
    ])
}

fn mapping_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z_]{1,8}",
        1 => ambiguous_word().prop_map(String::from),
    ]
}

/// YAML values as an operator might write them (no tags; string keys only).
fn yaml_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |f| !f.is_nan())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        "[a-z_]{1,8}".prop_map(Value::from),
        ambiguous_word().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Sequence),
            prop::collection::vec((mapping_key(), inner), 0..4).prop_map(|entries| {
                Value::Mapping(
                    entries
                        .into_iter()
                        .map(|(k, v)| (Value::from(k), v))
                        .collect(),
                )
            }),
        ]
    })
}

fn section() -> impl Strategy<Value = Value> {
    prop::collection::vec(("[a-z_]{1,12}", yaml_value()), 0..4).prop_map(|entries| {
        Value::Mapping(
            entries
                .into_iter()
                .map(|(k, v)| (Value::from(k), v))
                .collect(),
        )
    })
}

/// Small overlays over the accepted top-level keys; the few that pick a managed `rtc` key are
/// refused by `from_mapping` and dropped here.
fn extra() -> impl Strategy<Value = ExtraOverlay> {
    let key = prop::sample::select(livekit_provision::render::EXTRA_TOP_LEVEL_KEYS.to_vec());
    prop::collection::vec((key, prop_oneof![section(), yaml_value()]), 0..4).prop_filter_map(
        "overlay sets a managed key",
        |entries| {
            let mapping: Mapping = entries
                .into_iter()
                .map(|(k, v)| (Value::from(k), v))
                .collect();
            ExtraOverlay::from_mapping(mapping).ok()
        },
    )
}

fn inputs() -> impl Strategy<Value = RenderInputs> {
    (
        credentials(),
        prop::option::of(credentials()),
        any::<IpAddr>(),
        version(),
        settings(),
        redis(),
        extra(),
        prop::collection::vec(any::<char>(), 1..30).prop_map(|c| c.into_iter().collect::<String>()),
    )
        .prop_map(
            |(credentials, previous, node_ip, version, settings, redis, extra, sqlite)| {
                RenderInputs {
                    credentials,
                    previous,
                    node_ip,
                    version,
                    settings,
                    redis,
                    extra,
                    sqlite_path: PathBuf::from(sqlite),
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn each_file_parses_back_to_the_projection_of_its_inputs(inputs in inputs()) {
        let rendered = render(&inputs);
        let want = expected(&inputs);
        let got = ParsedFiles::parse(&rendered);
        prop_assert!(got.is_ok(), "{:?}\n{}", got.err(), rendered.livekit_yaml);
        let got = got.unwrap();
        prop_assert_eq!(&got.livekit_yaml, &want.livekit_yaml, "{}", rendered.livekit_yaml);
        prop_assert_eq!(&got.backend_env, &want.backend_env, "{}", rendered.backend_env);
        prop_assert_eq!(&got.runtime_json, &want.runtime_json, "{}", rendered.runtime_json);
        // The overlay compares as a whole above; also check it key by key, order-insensitively.
        prop_assert_eq!(got.livekit_yaml.extra.len(), inputs.extra.mapping().len());
    }

    #[test]
    fn the_three_files_agree_on_the_credentials(inputs in inputs()) {
        let parsed = ParsedFiles::parse(&render(&inputs)).unwrap();
        let from_yaml = parsed.livekit_yaml.credentials().first().cloned();
        prop_assert_eq!(from_yaml.as_ref(), Some(&inputs.credentials));
        prop_assert_eq!(parsed.backend_env.credentials(), Some(inputs.credentials.clone()));
        prop_assert_eq!(&parsed.runtime_json.credentials(), &inputs.credentials);
    }

    #[test]
    fn rendering_is_deterministic(inputs in inputs()) {
        prop_assert_eq!(render(&inputs), render(&inputs.clone()));
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_text(text in any::<String>()) {
        let _ = livekit_provision::LivekitYaml::parse(&text);
        let _ = livekit_provision::BackendEnv::parse(&text);
        let _ = livekit_provision::RuntimeJson::parse(&text);
        let _ = ExtraOverlay::parse(&text);
    }
}
