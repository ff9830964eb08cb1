//! A production node's settings end to end: the webhook key follows a rotation (and stays put
//! across its promotion), the metrics
//! password is minted once and kept, NAT discovery and dual-stack node IPs render, the health
//! probe follows `bind_addresses`, and every bad setting is refused by name, with a hint, before
//! anything is written.

use livekit_provision::Hint;
use std::time::Duration;

use livekit_provision::check::{CheckOptions, Code, Severity, check};
use livekit_provision::ensure::Action;
use livekit_provision::render::LivekitYaml;
use livekit_provision::rotate::{RotateAction, Schedule, promote, stage};
use livekit_provision::store::MemoryStore;
use livekit_provision::triple::DiskTriple;
use livekit_provision::{
    EnsureError, EnsureOptions, ManagedFile, ResolveError, SecretName, StateDir, Warning, ensure,
};

use crate::support::provision::{chain, fresh_state, get, listing, offline, put};

const HOOK: &str = "https://hooks.example.com/livekit";

/// A state directory whose provision.yaml (and extra.yaml, when given) say `settings`.
fn node_with(settings: &str, extra: Option<&str>) -> (tempfile::TempDir, StateDir) {
    let (tmp, state) = fresh_state();
    std::fs::create_dir_all(state.root()).unwrap();
    std::fs::write(state.settings_file(), settings).unwrap();
    if let Some(extra) = extra {
        std::fs::write(state.extra_file(), extra).unwrap();
    }
    (tmp, state)
}

fn livekit_yaml(state: &StateDir) -> LivekitYaml {
    DiskTriple::read(state)
        .livekit_yaml
        .valid()
        .unwrap()
        .clone()
}

fn webhook_key(file: &LivekitYaml) -> String {
    file.extra["webhook"]["api_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn keys(file: &LivekitYaml) -> Vec<String> {
    file.keys.iter().map(|c| c.key.to_string()).collect()
}

#[test]
fn the_webhook_key_follows_a_rotation_through_its_grace() {
    let (_tmp, state) = node_with(&format!("webhook:\n  urls: [\"{HOOK}\"]\n"), None);
    let store = MemoryStore::new();
    ensure(&state, &store, &offline()).unwrap();
    let file = livekit_yaml(&state);
    let first = get(&store, "LIVEKIT_API_KEY").unwrap();
    assert_eq!(webhook_key(&file), first);
    assert_eq!(file.extra["webhook"]["urls"][0].as_str(), Some(HOOK));

    let now = livekit_provision::clock::system();
    let opts = EnsureOptions { now, ..offline() };
    let schedule = Schedule::new(Some(Duration::from_secs(3600)), None).unwrap();
    stage(&state, &store, &schedule, now, |_| {}).unwrap();
    ensure(&state, &store, &opts).unwrap();
    let staged = std::fs::read(state.managed(ManagedFile::LivekitYaml)).unwrap();
    let next = get(&store, "LIVEKIT_API_KEY_NEXT").unwrap();
    let file = livekit_yaml(&state);
    assert_eq!(webhook_key(&file), first, "staged: the current key");
    let mut both = vec![first.clone(), next.clone()];
    both.sort();
    assert_eq!(keys(&file), both, "sorted by key");

    let outcome = promote(&state, &store, now, |_| {}).unwrap();
    assert_eq!(outcome.action, RotateAction::Promoted);
    ensure(&state, &store, &opts).unwrap();
    let file = livekit_yaml(&state);
    let current = get(&store, "LIVEKIT_API_KEY").unwrap();
    assert_eq!(current, next);
    assert_eq!(
        webhook_key(&file),
        first,
        "during the grace: the previous key, so the promotion changes no byte"
    );
    assert_eq!(
        std::fs::read(state.managed(ManagedFile::LivekitYaml)).unwrap(),
        staged
    );
    assert_eq!(keys(&file), both);
    let report = check(
        &state,
        Some(&store),
        &CheckOptions {
            now,
            ..CheckOptions::default()
        },
    );
    assert_eq!(report.with_code(Code::WebhookKey).count(), 0, "{report:?}");

    // After the grace the previous key leaves `keys:`; the webhook never named it.
    let later = now + Duration::from_secs(7200);
    ensure(
        &state,
        &store,
        &EnsureOptions {
            now: later,
            ..offline()
        },
    )
    .unwrap();
    let file = livekit_yaml(&state);
    assert_eq!(keys(&file), std::slice::from_ref(&current));
    assert_eq!(webhook_key(&file), current);
}

#[test]
fn check_flags_a_webhook_key_livekit_server_would_refuse() {
    let (_tmp, state) = node_with(&format!("webhook:\n  urls: [\"{HOOK}\"]\n"), None);
    let store = MemoryStore::new();
    ensure(&state, &store, &offline()).unwrap();
    let key = get(&store, "LIVEKIT_API_KEY").unwrap();
    let path = state.managed(ManagedFile::LivekitYaml);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        text.replace(&format!("api_key: {key}"), "api_key: APIgone"),
    )
    .unwrap();
    let report = check(&state, Some(&store), &CheckOptions::default());
    let finding = report.with_code(Code::WebhookKey).next().unwrap();
    assert_eq!(finding.severity, Severity::Error);
    assert!(finding.message.contains("APIgone"), "{}", finding.message);
    assert!(finding.hint.as_deref().unwrap().contains("provision.yaml"));
    assert!(!report.healthy);
}

#[test]
fn the_metrics_password_is_minted_once_and_survives_a_wiped_store() {
    let (_tmp, state) = node_with("prometheus:\n  port: 6789\n", None);
    let store = MemoryStore::new();
    let stored = Action::StoreSecret {
        name: SecretName::LIVEKIT_PROMETHEUS_PASSWORD,
    };
    let plan = ensure(
        &state,
        &store,
        &EnsureOptions {
            dry_run: true,
            ..offline()
        },
    )
    .unwrap();
    assert!(plan.actions.contains(&stored), "{plan:?}");
    assert!(store.snapshot().is_empty(), "a dry run stored something");
    let report = ensure(&state, &store, &offline()).unwrap();
    assert!(report.actions.contains(&stored), "{report:?}");
    let password = get(&store, "LIVEKIT_PROMETHEUS_PASSWORD").unwrap();
    assert!(password.len() >= 32);
    let file = livekit_yaml(&state);
    let section = &file.extra["prometheus"];
    assert_eq!(section["port"].as_u64(), Some(6789));
    assert_eq!(section["username"].as_str(), Some("livekit"));
    assert_eq!(section["password"].as_str(), Some(password.as_str()));
    assert!(!format!("{file:?}").contains(&password));

    // A rerun changes nothing.
    let before = listing(state.root());
    let report = ensure(&state, &store, &offline()).unwrap();
    assert!(report.is_noop(), "{report:?}");
    assert_eq!(listing(state.root()), before);

    // A wiped store adopts the live password instead of minting another.
    let wiped = MemoryStore::new();
    put(
        &wiped,
        "LIVEKIT_API_KEY",
        &get(&store, "LIVEKIT_API_KEY").unwrap(),
    );
    put(
        &wiped,
        "LIVEKIT_API_SECRET",
        &get(&store, "LIVEKIT_API_SECRET").unwrap(),
    );
    let report = ensure(&state, &wiped, &offline()).unwrap();
    assert_eq!(report.actions, [stored], "stored, and no file changed");
    assert_eq!(get(&wiped, "LIVEKIT_PROMETHEUS_PASSWORD"), Some(password));
}

#[test]
fn use_external_ip_renders_and_warns_instead_of_the_default_node_ip() {
    let (_tmp, state) = node_with("use_external_ip: true\n", None);
    let store = MemoryStore::new();
    let report = ensure(&state, &store, &offline()).unwrap();
    let warnings: Vec<Warning> = report.warnings.iter().map(|w| w.warning.clone()).collect();
    assert!(
        warnings.contains(&Warning::ExternalIpDiscovery),
        "{warnings:?}"
    );
    assert!(
        !warnings.contains(&Warning::NodeIpDefaulted),
        "{warnings:?}"
    );
    assert!(
        Warning::ExternalIpDiscovery
            .message()
            .contains("outbound UDP")
    );
    assert!(livekit_yaml(&state).use_external_ip);
    let report = check(&state, Some(&store), &CheckOptions::default());
    assert_eq!(report.with_code(Code::ExternalIp).count(), 1, "{report:?}");
    assert_eq!(report.with_code(Code::Drift).count(), 0, "{report:?}");
}

#[test]
fn a_dual_stack_node_ip_renders_with_the_ipv4_half_in_urls() {
    let (_tmp, state) = node_with("", None);
    let store = MemoryStore::new();
    put(&store, "LIVEKIT_NODE_IP", " 2001:db8::7 , 203.0.113.7 ");
    put(&store, "LIVEKIT_VERSION", "v1.10.0");
    ensure(&state, &store, &offline()).unwrap();
    let text = std::fs::read_to_string(state.managed(ManagedFile::LivekitYaml)).unwrap();
    assert!(
        text.contains("node_ip: \"203.0.113.7,2001:db8::7\""),
        "{text}"
    );
    let disk = DiskTriple::read(&state);
    let file = disk.livekit_yaml.valid().unwrap();
    assert_eq!(file.node_ip, Some("203.0.113.7".parse().unwrap()));
    assert_eq!(file.node_ip6, Some("2001:db8::7".parse().unwrap()));
    let runtime = disk.runtime_json.valid().unwrap();
    assert_eq!(runtime.livekit_url, "ws://203.0.113.7:7880");
}

#[test]
fn bad_production_settings_are_refused_by_name_and_nothing_is_written() {
    for (settings, extra, names, hint) in [
        (
            "prometheus:\n  port: 7880\n",
            None,
            &["prometheus.port", "port"][..],
            "provision.yaml",
        ),
        (
            "webhook:\n  urls: [\"ftp://hooks.example.com/x\"]\n",
            None,
            &["webhook.urls", "ftp://hooks.example.com/x"][..],
            "provision.yaml",
        ),
        (
            "bind_addresses: [\"10.0.0.1\", \"10.0.0.1\"]\n",
            None,
            &["bind_addresses", "10.0.0.1"][..],
            "provision.yaml",
        ),
        (
            "",
            Some("webhook:\n  api_key: APIhandSet\n"),
            &["webhook.api_key", "extra.yaml"][..],
            "webhook: {urls: [...]}",
        ),
        (
            "",
            Some("prometheus_port: 9100\n"),
            &["prometheus_port"][..],
            "prometheus: {port: N}",
        ),
    ] {
        let (_tmp, state) = node_with(settings, extra);
        let store = MemoryStore::new();
        let err = ensure(&state, &store, &offline()).unwrap_err();
        let text = chain(&err);
        assert!(matches!(err, EnsureError::Config(_)), "{text}");
        for name in names {
            assert!(text.contains(name), "{name}: {text}");
        }
        let shown_hint = err.hint().unwrap_or_default();
        assert!(shown_hint.contains(hint), "{shown_hint}");
        assert_eq!(store.writes(), 0);
        for file in ManagedFile::ALL {
            assert!(!state.managed(file).exists(), "{settings}: {file} written");
        }
    }
}

#[test]
fn settings_an_older_server_refuses_are_refused_naming_the_version() {
    for (settings, node_ip, version, since) in [
        ("", "203.0.113.7,2001:db8::7", "v1.9.12", "v1.10.0"),
        (
            "prometheus:\n  port: 9100\n",
            "203.0.113.7",
            "1.7.0",
            "v1.7.1",
        ),
    ] {
        let (_tmp, state) = node_with(settings, None);
        let store = MemoryStore::new();
        put(&store, "LIVEKIT_NODE_IP", node_ip);
        put(&store, "LIVEKIT_VERSION", version);
        let snapshot = store.snapshot();
        let err = ensure(&state, &store, &offline()).unwrap_err();
        assert!(
            matches!(err, EnsureError::Resolve(ResolveError::NeedsNewerServer(_))),
            "{err:?}"
        );
        let text = chain(&err);
        assert!(text.contains(since), "{text}");
        assert!(text.contains(version.trim_start_matches('v')), "{text}");
        let hint = err.hint().unwrap();
        assert!(hint.contains(&format!("LIVEKIT_VERSION {since}")), "{hint}");
        assert_eq!(store.snapshot(), snapshot, "the store changed");
        for file in ManagedFile::ALL {
            assert!(!state.managed(file).exists(), "{file} written");
        }
    }
}

#[test]
fn bind_addresses_are_rendered() {
    let (_tmp, state) = node_with("bind_addresses: [\"127.0.0.1\", \"::1\"]\n", None);
    ensure(&state, &MemoryStore::new(), &offline()).unwrap();
    let text = std::fs::read_to_string(state.managed(ManagedFile::LivekitYaml)).unwrap();
    assert!(
        text.contains("bind_addresses:\n  - \"127.0.0.1\"\n  - \"::1\"\n"),
        "{text}"
    );
}
