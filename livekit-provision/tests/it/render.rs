//! Property tests of rendering: for arbitrary valid inputs, each file parses back to the
//! projection of the inputs, the three files agree on the credentials, and rendering is
//! deterministic.

#![allow(
    clippy::unwrap_used,
    reason = "strategies build values that are valid by construction; a panic is a test failure"
)]

use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

use livekit_provision::config_model::{self, Key, Kind, ModelError, Release};
use livekit_provision::inputs::RenderInputs;
use livekit_provision::render::ParsedFiles;
use livekit_provision::render::{expected, render};
use livekit_provision::settings::{PrometheusSettings, WebhookSettings};
use livekit_provision::store::TlsFiles;
use livekit_provision::{
    ApiKey, Credentials, ExtraOverlay, LivekitVersion, LogLevel, ManagedFile, RedisRouting,
    RoutingNodes, Secret, Settings, TurnSettings,
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

fn webhook() -> impl Strategy<Value = Option<WebhookSettings>> {
    let url = "https?://[a-z]{1,10}(\\.[a-z]{2,5})?(:[1-9][0-9]{0,3})?/[a-z0-9/_#-]{0,12}(\\?[a-z]=[0-9]&[a-z]=[a-z: ]{0,4})?";
    prop::option::of(prop::collection::vec(url, 1..4).prop_map(|urls| WebhookSettings { urls }))
}

fn prometheus() -> impl Strategy<Value = Option<PrometheusSettings>> {
    prop::option::of(
        (port(), "[A-Za-z0-9_.-]{1,20}")
            .prop_map(|(port, username)| PrometheusSettings { port, username }),
    )
}

/// The networking and production keys: external IP discovery, bind addresses, webhook, metrics.
fn production() -> impl Strategy<
    Value = (
        bool,
        Vec<IpAddr>,
        Option<WebhookSettings>,
        Option<PrometheusSettings>,
    ),
> {
    (
        any::<bool>(),
        prop::collection::vec(any::<IpAddr>(), 0..3),
        webhook(),
        prometheus(),
    )
}

fn settings() -> impl Strategy<Value = Settings> {
    let level = prop_oneof![
        Just(LogLevel::Debug),
        Just(LogLevel::Info),
        Just(LogLevel::Warn),
        Just(LogLevel::Error),
    ];
    let local = (prop::option::of(port()), any::<bool>());
    (
        port(),
        port(),
        port(),
        port(),
        port(),
        level,
        (production(), local, turn()),
    )
        .prop_map(
            |(
                port,
                rtc_tcp_port,
                start,
                end,
                backend_port,
                log_level,
                (production, local, turn),
            )| {
                let (use_external_ip, bind_addresses, webhook, prometheus) = production;
                let (udp, loopback) = local;
                Settings {
                    port,
                    rtc_tcp_port,
                    rtc_port_range_start: start.min(end),
                    rtc_port_range_end: start.max(end),
                    rtc_udp_port: udp,
                    rtc_enable_loopback_candidate: loopback,
                    backend_port,
                    log_level,
                    use_external_ip,
                    bind_addresses,
                    webhook,
                    prometheus,
                    turn,
                    ..Settings::default()
                }
            },
        )
}

/// The IPv6 half of a dual-stack node IP (livekit-server reads an IPv4-mapped one as IPv4).
fn node_ip6() -> impl Strategy<Value = Option<Ipv6Addr>> {
    prop::option::of(
        any::<Ipv6Addr>().prop_filter("IPv4-mapped", |ip| ip.to_ipv4_mapped().is_none()),
    )
}

/// The `turn:` section, enabled or not (a disabled one renders nothing managed), with any
/// domain and paths: rendering quotes them.
fn turn() -> impl Strategy<Value = TurnSettings> {
    let path = || prop::option::of(any::<String>().prop_map(PathBuf::from));
    (
        any::<bool>(),
        prop::option::of(prop_oneof![
            "[a-z0-9-]{1,10}(\\.[a-z0-9-]{1,10}){1,3}".boxed(),
            any::<String>().boxed(),
        ]),
        (
            prop::option::of(port()),
            prop::option::of(port()),
            prop::option::of(port()),
            prop::option::of(port()),
        ),
        (path(), path()),
        any::<bool>(),
    )
        .prop_map(
            |(enabled, domain, ports, files, external_tls)| TurnSettings {
                enabled,
                domain,
                tls_port: ports.0,
                udp_port: ports.1,
                relay_range_start: ports.2,
                relay_range_end: ports.3,
                cert_file: files.0,
                key_file: files.1,
                external_tls,
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

/// A value of the shape livekit-server expects for `kind`; sections get up to three of their
/// keys, recursively.
fn value_of(kind: Kind, depth: u32) -> BoxedStrategy<Value> {
    match kind {
        Kind::Scalar => yaml_value()
            .prop_filter("a scalar", |v| {
                !matches!(v, Value::Sequence(_) | Value::Mapping(_))
            })
            .boxed(),
        Kind::List => prop::collection::vec(yaml_value(), 0..3)
            .prop_map(Value::Sequence)
            .boxed(),
        Kind::Map => prop::collection::vec((mapping_key(), yaml_value()), 0..3)
            .prop_map(|entries| {
                Value::Mapping(
                    entries
                        .into_iter()
                        .map(|(k, v)| (Value::from(k), v))
                        .collect(),
                )
            })
            .boxed(),
        Kind::Any => yaml_value().boxed(),
        Kind::Section(_) if depth == 0 => Just(Value::Mapping(Mapping::new())).boxed(),
        Kind::Section(children) => model_mapping(children, depth - 1)
            .prop_map(Value::Mapping)
            .boxed(),
    }
}

/// Mappings of up to three of `keys` (as any release knows them), with values of their shape.
fn model_mapping(keys: &'static [Key], depth: u32) -> BoxedStrategy<Mapping> {
    if keys.is_empty() {
        return Just(Mapping::new()).boxed();
    }
    prop::collection::vec(prop::sample::select(keys.to_vec()), 0..4)
        .prop_flat_map(move |picked| {
            picked
                .into_iter()
                .map(|key| value_of(key.kind, depth).prop_map(move |v| (Value::from(key.name), v)))
                .collect::<Vec<_>>()
        })
        .prop_map(|entries| entries.into_iter().collect())
        .boxed()
}

/// Small overlays drawn from the config model; the few that set a managed key are refused by
/// `from_mapping` and dropped here.
fn extra() -> impl Strategy<Value = ExtraOverlay> {
    model_mapping(config_model::root(), 2)
        .prop_filter_map("overlay sets a managed key", |mapping| {
            ExtraOverlay::from_mapping(mapping).ok()
        })
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
        (
            node_ip6(),
            prop::option::of(api_secret()),
            prop::option::of(credentials()),
        ),
    )
        .prop_map(
            |(credentials, previous, node_ip, version, settings, redis, extra, sqlite, more)| {
                let (node_ip6, prometheus_password, next) = more;
                RenderInputs {
                    credentials,
                    previous,
                    next,
                    node_ip,
                    node_ip6,
                    version,
                    settings,
                    redis,
                    extra,
                    sqlite_path: PathBuf::from(sqlite),
                    turn_certificate: None,
                    prometheus_password,
                }
            },
        )
}

/// The dotted path of every key of `mapping`, into the sections the model describes.
fn key_paths(mapping: &Mapping, prefix: &str, out: &mut Vec<String>) {
    for (key, value) in mapping {
        let Some(key) = key.as_str() else { continue };
        let path = if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        };
        if let (Some(model), Value::Mapping(inner)) = (config_model::lookup(&path), value)
            && matches!(model.kind, Kind::Section(_))
        {
            key_paths(inner, &path, out);
        }
        out.push(path);
    }
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
        // The overlay and the rendered sections compare as a whole above; also check the
        // production sections one by one.
        let extra = &got.livekit_yaml.extra;
        if let Some(webhook) = &inputs.settings.webhook {
            prop_assert_eq!(
                extra["webhook"]["api_key"].as_str(),
                Some(inputs.webhook_key().as_str())
            );
            prop_assert!(got.livekit_yaml.keys.iter().any(|c| c.key == *inputs.webhook_key()));
            prop_assert_eq!(extra["webhook"]["urls"].as_sequence().map(Vec::len), Some(webhook.urls.len()));
        }
        if let (Some(_), Some(password)) = (&inputs.settings.prometheus, &inputs.prometheus_password) {
            prop_assert_eq!(extra["prometheus"]["password"].as_str(), Some(password.expose()));
        }
        prop_assert_eq!(
            extra.get("bind_addresses").is_some(),
            !inputs.settings.bind_addresses.is_empty()
        );
        prop_assert_eq!(got.livekit_yaml.use_external_ip, inputs.settings.use_external_ip);
    }

    #[test]
    fn the_redacted_files_show_no_secret(inputs in inputs()) {
        // Every secret the inputs hold, listed here independently of `redact`.
        let mut secrets = vec![inputs.credentials.secret.expose().to_owned()];
        secrets.extend(inputs.previous.as_ref().map(|p| p.secret.expose().to_owned()));
        secrets.extend(inputs.next.as_ref().map(|p| p.secret.expose().to_owned()));
        if let Some(redis) = &inputs.redis {
            secrets.extend(redis.password.as_ref().map(|p| p.expose().to_owned()));
            if let RoutingNodes::Sentinel { password: Some(p), .. } = &redis.nodes {
                secrets.push(p.expose().to_owned());
            }
        }
        secrets.extend(inputs.prometheus_password.as_ref().map(|p| p.expose().to_owned()));
        let rendered = render(&inputs);
        for file in ManagedFile::ALL {
            let text = rendered.get(file);
            let shown = inputs.redact(text);
            // Short generated values also occur by chance in other text; real secrets are long.
            for secret in secrets.iter().filter(|s| s.len() >= 8 && text.contains(s.as_str())) {
                prop_assert!(!shown.contains(secret.as_str()), "{file}: a secret is shown");
            }
        }
    }

    #[test]
    fn the_three_files_agree_on_the_credentials(inputs in inputs()) {
        let parsed = ParsedFiles::parse(&render(&inputs)).unwrap();
        prop_assert!(parsed.livekit_yaml.credentials().contains(&inputs.credentials));
        prop_assert_eq!(parsed.backend_env.credentials(), Some(inputs.credentials.clone()));
        prop_assert_eq!(&parsed.runtime_json.credentials(), &inputs.credentials);
    }

    #[test]
    fn keys_lists_current_staged_and_previous_once_each_sorted(inputs in inputs()) {
        let parsed = ParsedFiles::parse(&render(&inputs)).unwrap();
        let keys: Vec<&str> = parsed.livekit_yaml.credentials().iter().map(|c| c.key.as_str()).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        sorted.dedup();
        prop_assert_eq!(&keys, &sorted, "not sorted, or a key twice");
        for pair in [inputs.next.as_ref(), inputs.previous.as_ref()].into_iter().flatten() {
            prop_assert!(keys.contains(&pair.key.as_str()));
        }
        let want = 1 + [inputs.next.as_ref(), inputs.previous.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| p.key.as_str())
            .filter(|k| *k != inputs.credentials.key.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        prop_assert_eq!(keys.len(), want);
    }

    #[test]
    fn rendering_is_deterministic(inputs in inputs()) {
        prop_assert_eq!(render(&inputs), render(&inputs.clone()));
    }

    #[test]
    fn every_key_the_renderer_writes_is_known_to_every_release(inputs in inputs()) {
        let inputs = RenderInputs { extra: ExtraOverlay::default(), ..inputs };
        let rendered: Mapping = serde_yaml::from_str(&render(&inputs).livekit_yaml).unwrap();
        for release in Release::all() {
            let fits = config_model::check(&rendered, Some(release));
            prop_assert!(fits.is_ok(), "{release}: {:?}", fits);
        }
    }

    #[test]
    fn an_overlay_of_a_release_passes_that_release_and_is_refused_by_older_ones(
        overlay in extra(),
        release in prop::sample::select(Release::all().collect::<Vec<_>>()),
    ) {
        match overlay.check_release(release) {
            Ok(()) => {
                let mut paths = Vec::new();
                key_paths(overlay.mapping(), "", &mut paths);
                for path in paths {
                    if let Some(key) = config_model::lookup(&path) {
                        prop_assert!(key.in_release(release), "{path} passed {release}");
                    }
                }
            }
            Err(livekit_provision::ExtraError::Model(ModelError::NotInRelease { path, first, last, .. })) => {
                let key = config_model::lookup(&path).unwrap();
                prop_assert!(!key.in_release(release));
                prop_assert_eq!((first, last), (key.first_release(), key.last_release()));
            }
            Err(other) => prop_assert!(false, "{other:?}"),
        }
    }

    #[test]
    fn a_misspelt_key_is_refused_by_its_path(overlay in extra(), suffix in "[a-z]{1,3}") {
        let top = overlay.mapping().keys().next().and_then(Value::as_str).map(str::to_owned);
        prop_assume!(top.is_some(), "an empty overlay has no key to misspell");
        let top = top.unwrap();
        let mut mapping = overlay.mapping().clone();
        let misspelt = format!("{top}_{suffix}x");
        let value = mapping.shift_remove(top.as_str()).unwrap();
        mapping.insert(Value::from(misspelt.clone()), value);
        match ExtraOverlay::from_mapping(mapping) {
            Err(livekit_provision::ExtraError::Model(ModelError::Unknown { path, .. })) => prop_assert_eq!(path, misspelt),
            other => prop_assert!(false, "{other:?}"),
        }
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_text(text in any::<String>()) {
        let _ = livekit_provision::render::LivekitYaml::parse(&text);
        let _ = livekit_provision::render::BackendEnv::parse(&text);
        let _ = livekit_provision::render::RuntimeJson::parse(&text);
        let _ = ExtraOverlay::parse(&text);
    }
}
