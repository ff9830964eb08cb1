//! Fleet mode against a real `redis-server` started by the tests on a loopback port: many nodes
//! agree on one key/secret, nothing rotates across Redis restarts, and every way Redis can fail
//! is an error (never "absent"), with files left untouched.

#![cfg(test)]

use livekit_provision::Hint;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use livekit_provision::ensure::EnsureError;
use livekit_provision::fleet::fleet_check;
use livekit_provision::store::{SecretName, SecretStore, StoreSpec};
use livekit_provision::triple::DiskTriple;
use livekit_provision::{
    Code, CredentialSource, EnsureOptions, EnsureReport, StateDir, check, ensure,
};

use crate::support::redis_server::{RedisConfig, RedisServer, free_port};

const NODES: usize = 16;
/// Env vars that turn [`node_process`] into one node of the fleet.
const NODE_STATE_ENV: &str = "LKP_TEST_FLEET_STATE";
const NODE_URL_ENV: &str = "LKP_TEST_FLEET_URL";
const NODE_GO_ENV: &str = "LKP_TEST_FLEET_GO";
const PASSWORD: &str = "Pw-of-the-fleet-redis-never-printed";

fn open(url: &str) -> Box<dyn SecretStore> {
    StoreSpec::parse(url).unwrap().open().unwrap()
}

fn run_ensure(state: &Path, url: &str) -> Result<EnsureReport, EnsureError> {
    ensure(
        &StateDir::new(state),
        &*open(url),
        &EnsureOptions::default(),
    )
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Every file under `dir` except `run/` (the lock), with its bytes or symlink target.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(dir).unwrap().to_owned();
            if rel.starts_with("run") {
                continue;
            }
            if meta.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                out.insert(rel, target.into_os_string().into_encoded_bytes());
            } else if meta.is_dir() {
                todo.push(path);
            } else {
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// The error, its causes and its hint on one string.
fn shown(e: &EnsureError) -> String {
    let mut text = format!("{e} {e:?}");
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let _ = write!(text, " | {cause}");
        source = cause.source();
    }
    format!("{text} | hint: {}", e.hint().unwrap_or_default())
}

// ---------------------------------------------------------------------------------------------
// 16 nodes, 16 processes, one empty Redis.

/// Child entry point of [`sixteen_nodes_agree_on_one_pair`]: the parent re-executes this test
/// binary running only this test, with [`NODE_STATE_ENV`] set. Without it there is nothing to do.
#[test]
fn node_process() {
    let (Ok(state), Ok(url), Ok(go)) = (
        std::env::var(NODE_STATE_ENV),
        std::env::var(NODE_URL_ENV),
        std::env::var(NODE_GO_ENV),
    ) else {
        return;
    };
    wait_until("the fleet to start", || Path::new(&go).exists());
    let report = run_ensure(Path::new(&state), &url).unwrap();
    println!("FLEET-NODE {}", serde_json::to_string(&report).unwrap());
}

#[test]
fn sixteen_nodes_agree_on_one_pair() {
    let dir = tempfile::tempdir().unwrap();
    let server = RedisServer::start(&dir.path().join("redis"), &RedisConfig::default());
    let url = server.url("", "");
    let go = dir.path().join("go");
    let exe = std::env::current_exe().unwrap();
    let states: Vec<PathBuf> = (0..NODES)
        .map(|i| dir.path().join(format!("node{i}")))
        .collect();
    let children: Vec<_> = states
        .iter()
        .map(|state| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "fleet::node_process",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(NODE_STATE_ENV, state)
                .env(NODE_URL_ENV, &url)
                .env(NODE_GO_ENV, &go)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::fs::write(&go, b"").unwrap();

    let mut minted = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "node failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = stdout
            .lines()
            .find_map(|l| l.split_once("FLEET-NODE ").map(|(_, r)| r))
            .map_or_else(
                || panic!("no report in {stdout}"),
                |json| serde_json::from_str(json).unwrap(),
            );
        minted += usize::from(report["credentials"]["kind"] == "minted");
    }
    // Key and secret are two SET NX races; two nodes may each win one, then none reports "minted".
    assert!(minted <= 1, "{minted} nodes minted");

    let keys = server.cli(&["--raw", "KEYS", "*"]);
    let mut keys: Vec<&str> = keys.lines().collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "livekit-provision:LIVEKIT_API_KEY",
            "livekit-provision:LIVEKIT_API_SECRET"
        ]
    );
    let store = open(&url);
    let key = store.get(&SecretName::LIVEKIT_API_KEY).unwrap().unwrap();
    let secret = store.get(&SecretName::LIVEKIT_API_SECRET).unwrap().unwrap();
    for state in &states {
        let creds = DiskTriple::read(&StateDir::new(state))
            .consistent_credentials()
            .unwrap_or_else(|| panic!("{} is not consistent", state.display()));
        assert_eq!(creds.key.as_str(), key.expose());
        assert_eq!(creds.secret, secret);
        let report = fleet_check(&StateDir::new(state), &*store);
        assert!(report.in_sync, "{report:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Restart and outage.

#[test]
fn redis_restart_rotates_nothing_and_redis_down_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = RedisServer::start(
        &dir.path().join("redis"),
        &RedisConfig {
            password: Some(PASSWORD.to_owned()),
            appendonly: true,
            ..RedisConfig::default()
        },
    );
    let node = dir.path().join("node");
    let first = run_ensure(&node, &server.url(&format!(":{PASSWORD}@"), "")).unwrap();
    assert_eq!(first.credentials, CredentialSource::Minted);

    server.restart();
    let url = server.url(&format!(":{PASSWORD}@"), "");
    let again = run_ensure(&node, &url).unwrap();
    assert!(again.is_noop(), "{:?}", again.actions);
    assert_eq!(again.api_key, first.api_key);
    let newcomer = run_ensure(&dir.path().join("newcomer"), &url).unwrap();
    assert_eq!(newcomer.credentials, CredentialSource::Store);
    assert_eq!(newcomer.api_key, first.api_key);

    server.stop();
    let before = snapshot(&node);
    let err = run_ensure(&node, &url).unwrap_err();
    let text = shown(&err);
    assert!(
        text.contains(&format!("127.0.0.1:{}", server.port)),
        "{text}"
    );
    assert!(text.contains("cannot connect"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(text.contains("nothing was minted or changed"), "{text}");
    assert_eq!(snapshot(&node), before);

    // A fresh node does not mint either: "could not check" is never "absent".
    let fresh = dir.path().join("fresh");
    run_ensure(&fresh, &url).unwrap_err();
    assert!(DiskTriple::read(&StateDir::new(&fresh)).is_empty());
}

#[test]
fn a_server_that_never_answers_times_out_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    // Accepts connections (the kernel's backlog) but never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let err = run_ensure(
        &dir.path().join("node"),
        &format!("redis://127.0.0.1:{port}?timeout=300ms"),
    )
    .unwrap_err();
    let text = shown(&err);
    assert!(text.contains("did not answer within 300ms"), "{text}");
    assert!(text.contains("?timeout="), "{text}");
    drop(silent);
}

// ---------------------------------------------------------------------------------------------
// Refusals and garbage.

#[test]
fn auth_db_and_garbage_values_are_errors_and_nothing_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let server = RedisServer::start(
        &dir.path().join("redis"),
        &RedisConfig {
            password: Some(PASSWORD.to_owned()),
            ..RedisConfig::default()
        },
    );
    let good = server.url(&format!("default:{PASSWORD}@"), "/3?prefix=t:");
    let node = dir.path().join("node");
    let first = run_ensure(&node, &good).unwrap();
    let before = snapshot(&node);
    let stored_secret = server.cli(&["-n", "3", "--raw", "GET", "t:LIVEKIT_API_SECRET"]);

    let bad_urls = [
        (
            server.url(":wrong-password-xyz@", "/3?prefix=t:"),
            "refused authentication",
        ),
        (server.url("", "/3?prefix=t:"), "refused authentication"),
        (
            server.url(&format!(":{PASSWORD}@"), "/99?prefix=t:"),
            "refused database 99",
        ),
    ];
    for (url, needle) in &bad_urls {
        let err = run_ensure(&node, url).unwrap_err();
        let text = shown(&err);
        assert!(text.contains(needle), "{url}: {text}");
        assert!(
            !text.contains(PASSWORD) && !text.contains("wrong-password-xyz"),
            "{text}"
        );
        assert_eq!(snapshot(&node), before, "{url}");
    }

    // Something else wrote our key: a hash, then an empty string.
    server.cli(&["-n", "3", "DEL", "t:LIVEKIT_API_KEY"]);
    server.cli(&["-n", "3", "HSET", "t:LIVEKIT_API_KEY", "field", "value"]);
    let text = shown(&run_ensure(&node, &good).unwrap_err());
    assert!(
        text.contains("\"t:LIVEKIT_API_KEY\"") && text.contains("holds a hash"),
        "{text}"
    );
    assert!(text.contains("redis-cli TYPE t:LIVEKIT_API_KEY"), "{text}");
    assert_eq!(
        server.cli(&["-n", "3", "TYPE", "t:LIVEKIT_API_KEY"]).trim(),
        "hash"
    );

    server.cli(&["-n", "3", "DEL", "t:LIVEKIT_API_KEY"]);
    server.cli(&["-n", "3", "SET", "t:LIVEKIT_API_KEY", ""]);
    let text = shown(&run_ensure(&node, &good).unwrap_err());
    assert!(
        text.contains("unusable value: the value is empty"),
        "{text}"
    );

    assert_eq!(snapshot(&node), before);
    assert_eq!(
        server.cli(&["-n", "3", "--raw", "GET", "t:LIVEKIT_API_SECRET"]),
        stored_secret
    );
    assert_eq!(
        server
            .cli(&["-n", "3", "--raw", "GET", "t:LIVEKIT_API_KEY"])
            .trim(),
        ""
    );

    // Put the key back: the node converges to the same pair, nothing rotated.
    server.cli(&[
        "-n",
        "3",
        "SET",
        "t:LIVEKIT_API_KEY",
        first.api_key.as_deref().unwrap(),
    ]);
    let healed = run_ensure(&node, &good).unwrap();
    assert!(healed.is_noop(), "{:?}", healed.actions);
}

#[test]
fn prefixes_isolate_clusters_sharing_one_redis() {
    let dir = tempfile::tempdir().unwrap();
    let server = RedisServer::start(&dir.path().join("redis"), &RedisConfig::default());
    let eu = run_ensure(&dir.path().join("eu"), &server.url("", "?prefix=eu:")).unwrap();
    let us = run_ensure(&dir.path().join("us"), &server.url("", "?prefix=us:")).unwrap();
    assert_ne!(eu.api_key, us.api_key);
    let eu2 = run_ensure(&dir.path().join("eu2"), &server.url("", "?prefix=eu:")).unwrap();
    assert_eq!(eu2.api_key, eu.api_key);
    let keys = server.cli(&["--raw", "KEYS", "*"]);
    assert_eq!(keys.lines().count(), 4, "{keys}");

    // fleet_check sees a node of the other cluster as out of sync, without showing secrets.
    let report = fleet_check(
        &StateDir::new(dir.path().join("us")),
        &*open(&server.url("", "?prefix=eu:")),
    );
    assert!(!report.in_sync);
    let json = serde_json::to_string(&report).unwrap();
    assert!(
        json.contains("\"kind\":\"key_differs\"") && json.contains("secret_differs"),
        "{json}"
    );
}

// ---------------------------------------------------------------------------------------------
// LiveKit's own routing Redis, shared through the store.

#[test]
fn routing_redis_from_the_store_is_rendered_and_probed_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let store_server = RedisServer::start(&dir.path().join("store"), &RedisConfig::default());
    let routing = RedisServer::start(
        &dir.path().join("routing"),
        &RedisConfig {
            password: Some(PASSWORD.to_owned()),
            ..RedisConfig::default()
        },
    );
    let url = store_server.url("", "");
    let store = open(&url);
    let address = format!("127.0.0.1:{}", routing.port);
    store
        .set(
            &SecretName::LIVEKIT_REDIS_ADDRESS,
            &livekit_provision::Secret::new(address.as_str()),
        )
        .unwrap();
    store
        .set(
            &SecretName::LIVEKIT_REDIS_PASSWORD,
            &livekit_provision::Secret::new(PASSWORD),
        )
        .unwrap();

    let node = dir.path().join("node");
    std::fs::create_dir_all(&node).unwrap();
    std::fs::write(
        node.join("provision.yaml"),
        "redis_tls: false\nredis_db: 1\n",
    )
    .unwrap();
    run_ensure(&node, &url).unwrap();
    let yaml = std::fs::read_to_string(node.join("livekit.yaml")).unwrap();
    assert!(yaml.contains(&format!("address: \"{address}\"")), "{yaml}");
    assert!(yaml.contains("db: 1"), "{yaml}");

    let state = StateDir::new(&node);
    let report = check(
        &state,
        Some(&*store),
        &livekit_provision::CheckOptions::default(),
    );
    assert_eq!(
        report.with_code(Code::RedisUnreachable).count(),
        0,
        "{report:?}"
    );

    store
        .set(
            &SecretName::LIVEKIT_REDIS_PASSWORD,
            &livekit_provision::Secret::new("not-it-at-all"),
        )
        .unwrap();
    let report = check(
        &state,
        Some(&*store),
        &livekit_provision::CheckOptions::default(),
    );
    let finding = report.with_code(Code::RedisUnreachable).next().unwrap();
    assert!(
        finding.message.contains("refused authentication"),
        "{finding:?}"
    );
    assert!(
        finding
            .hint
            .as_deref()
            .unwrap()
            .contains("LIVEKIT_REDIS_PASSWORD")
    );

    let closed = free_port();
    store
        .set(
            &SecretName::LIVEKIT_REDIS_ADDRESS,
            &livekit_provision::Secret::new(format!("127.0.0.1:{closed}")),
        )
        .unwrap();
    let report = check(
        &state,
        Some(&*store),
        &livekit_provision::CheckOptions::default(),
    );
    let finding = report.with_code(Code::RedisUnreachable).next().unwrap();
    assert!(
        finding.message.contains(&format!("127.0.0.1:{closed}")),
        "{finding:?}"
    );
    assert!(!report.healthy);
    assert!(!format!("{report:?}").contains(PASSWORD));

    // TLS is rendered when asked.
    std::fs::write(node.join("provision.yaml"), "redis_tls: true\n").unwrap();
    run_ensure(&node, &url).unwrap();
    let yaml = std::fs::read_to_string(node.join("livekit.yaml")).unwrap();
    assert!(yaml.contains("tls:\n    enabled: true"), "{yaml}");
}

/// The fleet's coordination on a real redis-server: reports expire unless refreshed, a lease
/// has one holder at a time, is renewed by it, and is free once released or expired.
#[test]
fn reports_expire_and_a_lease_has_one_holder() {
    let dir = tempfile::tempdir().unwrap();
    let server = RedisServer::start(dir.path(), &RedisConfig::default());
    let url = server.url("", "/0?prefix=coord:");
    let a = open(&url);
    let b = open(&url);
    let (ca, cb) = (a.coordinator().unwrap(), b.coordinator().unwrap());

    ca.report("node-a", r#"{"serving":true}"#, Duration::from_secs(30))
        .unwrap();
    cb.report("node-b", r#"{"serving":false}"#, Duration::from_millis(300))
        .unwrap();
    let mut seen = ca.reports().unwrap();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("node-a".to_owned(), r#"{"serving":true}"#.to_owned()),
            ("node-b".to_owned(), r#"{"serving":false}"#.to_owned())
        ]
    );
    std::thread::sleep(Duration::from_millis(600));
    let names: Vec<String> = ca.reports().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["node-a"], "an expired report is gone");

    assert!(
        ca.lease("restart", "node-a", Duration::from_secs(30))
            .unwrap()
    );
    assert!(
        !cb.lease("restart", "node-b", Duration::from_secs(30))
            .unwrap()
    );
    assert!(
        ca.lease("restart", "node-a", Duration::from_secs(30))
            .unwrap(),
        "renewed"
    );
    assert_eq!(cb.holder("restart").unwrap().as_deref(), Some("node-a"));
    cb.release("restart", "node-b").unwrap();
    assert_eq!(
        cb.holder("restart").unwrap().as_deref(),
        Some("node-a"),
        "not b's to release"
    );
    ca.release("restart", "node-a").unwrap();
    assert!(
        cb.lease("restart", "node-b", Duration::from_millis(300))
            .unwrap()
    );
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        ca.lease("restart", "node-a", Duration::from_secs(30))
            .unwrap(),
        "expired: free"
    );
    // A store of one node has no coordinator.
    let file = StoreSpec::parse(&format!("file:{}", dir.path().join("s.json").display()))
        .unwrap()
        .open()
        .unwrap();
    assert!(file.coordinator().is_none());
}
