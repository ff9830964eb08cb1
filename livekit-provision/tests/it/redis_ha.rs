//! Redis as LiveKit runs it, with real servers started by the tests on loopback ports: a master
//! found through Sentinel (with a failover in the middle of fleet provisioning), a 3-master
//! Cluster, and the number of round trips of a no-op `ensure`.

#![cfg(test)]

use livekit_provision::Hint;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use livekit_provision::store::{RedisStore, SecretName, SecretStore, StoreSpec};
use livekit_provision::triple::DiskTriple;
use livekit_provision::{CheckOptions, Code, EnsureOptions, StateDir, check, ensure};

use crate::support::redis_server::{RedisConfig, RedisServer, Sentinel};

const NODES: usize = 8;

fn open(url: &str) -> Box<dyn SecretStore> {
    StoreSpec::parse(url).unwrap().open().unwrap()
}

/// `ensure` on `state` until it succeeds (as the daemon retries), within a minute; returns the
/// number of failed attempts.
fn ensure_until_ok(state: &Path, url: &str) -> usize {
    let store = open(url);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut failures = 0;
    loop {
        match ensure(&StateDir::new(state), &*store, &EnsureOptions::default()) {
            Ok(_) => return failures,
            Err(e) => {
                assert!(Instant::now() < deadline, "{}: {e}", state.display());
                failures += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Run [`ensure_until_ok`] on `NODES` fresh state directories at once, calling `meanwhile` as
/// they start; returns the states.
fn fleet(dir: &Path, url: &str, meanwhile: impl FnOnce()) -> Vec<PathBuf> {
    let states: Vec<PathBuf> = (0..NODES).map(|i| dir.join(format!("node{i}"))).collect();
    let start = Arc::new(Barrier::new(NODES + 1));
    let handles: Vec<_> = states
        .iter()
        .map(|state| {
            let (state, url, start) = (state.clone(), url.to_owned(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                ensure_until_ok(&state, &url)
            })
        })
        .collect();
    start.wait();
    meanwhile();
    for handle in handles {
        handle.join().unwrap();
    }
    states
}

/// `ensure` of a fresh `node` at `url` fails and writes nothing; its message, causes (` | `)
/// and hint (`hint: `) on one line.
fn refused(node: &Path, url: &str) -> String {
    let err = ensure(&StateDir::new(node), &*open(url), &EnsureOptions::default()).unwrap_err();
    let mut text = format!("{err} {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text = format!("{text} | {cause}");
        source = cause.source();
    }
    assert!(DiskTriple::read(&StateDir::new(node)).is_empty(), "{text}");
    let hint = err.hint().unwrap_or_else(|| panic!("no hint: {text}"));
    format!("{text} | hint: {hint}")
}

/// Every node's files hold the pair `store` holds.
fn assert_all_agree(states: &[PathBuf], store: &dyn SecretStore) {
    let key = store.get(&SecretName::LIVEKIT_API_KEY).unwrap().unwrap();
    let secret = store.get(&SecretName::LIVEKIT_API_SECRET).unwrap().unwrap();
    for state in states {
        let creds = DiskTriple::read(&StateDir::new(state))
            .consistent_credentials()
            .unwrap_or_else(|| panic!("{} is not consistent", state.display()));
        assert_eq!(creds.key.as_str(), key.expose(), "{}", state.display());
        assert_eq!(creds.secret, secret, "{}", state.display());
    }
}

#[test]
fn sentinel_failover_during_fleet_provisioning_keeps_one_pair() {
    let dir = tempfile::tempdir().unwrap();
    let master = RedisServer::start(&dir.path().join("master"), &RedisConfig::default());
    let replica = RedisServer::start(
        &dir.path().join("replica"),
        &RedisConfig {
            extra: vec![format!("replicaof 127.0.0.1 {}", master.port)],
            ..RedisConfig::default()
        },
    );
    let sentinel = Sentinel::start(&dir.path().join("sentinel"), master.port, 1);
    assert_eq!(sentinel.master_port(), master.port);
    let url = format!(
        "redis+sentinel://127.0.0.1:{}/{}?timeout=1s",
        sentinel.port,
        Sentinel::MASTER
    );

    let mut answer = String::new();
    let states = fleet(dir.path(), &url, || {
        // Refused (NOGOODSLAVE) while the sentinel still checks its replica: ask again.
        let deadline = Instant::now() + Duration::from_secs(30);
        while answer.trim() != "OK" && Instant::now() < deadline {
            answer = sentinel
                .try_cli(&["SENTINEL", "FAILOVER", Sentinel::MASTER])
                .unwrap_or_default();
        }
    });

    // The failover happened: the sentinel now names the former replica.
    let deadline = Instant::now() + Duration::from_secs(60);
    while sentinel.master_port() != replica.port {
        assert!(
            Instant::now() < deadline,
            "the failover never completed: {answer} {}",
            std::fs::read_to_string(dir.path().join("sentinel/sentinel.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let store = open(&url);
    assert_all_agree(&states, &*store);
    // The pair is on the new master, and a node that comes later adopts it.
    let key = replica.cli(&["--raw", "GET", "livekit-provision:LIVEKIT_API_KEY"]);
    assert_eq!(
        key.trim(),
        store
            .get(&SecretName::LIVEKIT_API_KEY)
            .unwrap()
            .unwrap()
            .expose()
    );
    let late = dir.path().join("late");
    ensure_until_ok(&late, &url);
    assert_all_agree(std::slice::from_ref(&late), &*store);

    livekit_routes_through_the_sentinel(&sentinel, &late, &url, &*store);
}

/// LiveKit's own Redis through `sentinel` (provision.yaml): rendered on `node`, and probed by
/// `check`, which names the master name when the sentinel does not know it.
fn livekit_routes_through_the_sentinel(
    sentinel: &Sentinel,
    node: &Path,
    url: &str,
    store: &dyn SecretStore,
) {
    // LiveKit's own Redis through the same sentinel: rendered, and probed by `check`.
    std::fs::write(
        node.join("provision.yaml"),
        format!(
            "redis_sentinel_master_name: {}\nredis_sentinel_addresses: [\"127.0.0.1:{}\"]\n",
            Sentinel::MASTER,
            sentinel.port
        ),
    )
    .unwrap();
    ensure_until_ok(node, url);
    let yaml = std::fs::read_to_string(node.join("livekit.yaml")).unwrap();
    assert!(
        yaml.contains(&format!(
            "sentinel_master_name: \"{}\"\n  sentinel_addresses:\n    - \"127.0.0.1:{}\"\n",
            Sentinel::MASTER,
            sentinel.port
        )),
        "{yaml}"
    );
    let report = check(&StateDir::new(node), Some(store), &CheckOptions::default());
    assert_eq!(
        report.with_code(Code::RedisUnreachable).count(),
        0,
        "{report:?}"
    );
    std::fs::write(
        node.join("provision.yaml"),
        format!(
            "redis_sentinel_master_name: other\nredis_sentinel_addresses: [\"127.0.0.1:{}\"]\n",
            sentinel.port
        ),
    )
    .unwrap();
    ensure_until_ok(node, url);
    let report = check(&StateDir::new(node), Some(store), &CheckOptions::default());
    let finding = report.with_code(Code::RedisUnreachable).next().unwrap();
    assert!(finding.message.contains("\"other\""), "{finding:?}");
    assert!(
        finding
            .hint
            .as_deref()
            .unwrap()
            .contains("redis_sentinel_master_name"),
        "{finding:?}"
    );
}

#[test]
fn a_sentinel_that_does_not_know_the_master_is_an_error_not_absent() {
    let dir = tempfile::tempdir().unwrap();
    let master = RedisServer::start(&dir.path().join("master"), &RedisConfig::default());
    let sentinel = Sentinel::start(&dir.path().join("sentinel"), master.port, 0);
    let url = format!(
        "redis+sentinel://:pw-of-the-master-xyz@127.0.0.1:{}/nosuchmaster",
        sentinel.port
    );
    let text = refused(&dir.path().join("node"), &url);
    assert!(text.contains("nosuchmaster"), "{text}");
    assert!(text.contains("SENTINEL MASTERS"), "{text}");
    assert!(!text.contains("pw-of-the-master-xyz"), "{text}");
}

#[test]
fn a_master_without_the_replicas_asked_for_is_neither_read_nor_written() {
    let dir = tempfile::tempdir().unwrap();
    let server = RedisServer::start(&dir.path().join("redis"), &RedisConfig::default());
    let url = server.url("", "?replicas=1&timeout=400ms");
    let text = refused(&dir.path().join("node"), &url);
    assert!(text.contains("0 of the 1 replicas"), "{text}");
    assert!(
        text.contains("hint: start the replicas (or lower ?replicas=)"),
        "{text}"
    );
    // Nothing was minted either: the read was refused before any SET NX.
    assert_eq!(server.cli(&["DBSIZE"]).trim(), "0");
}

#[test]
fn a_three_master_cluster_serves_a_fleet_across_slots() {
    let dir = tempfile::tempdir().unwrap();
    let config = RedisConfig {
        cluster: true,
        ..RedisConfig::default()
    };
    let nodes: Vec<RedisServer> = (0..3)
        .map(|i| RedisServer::start(&dir.path().join(format!("n{i}")), &config))
        .collect();
    let addresses: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let mut create = vec!["--cluster", "create"];
    create.extend(addresses.iter().map(String::as_str));
    create.extend(["--cluster-replicas", "0", "--cluster-yes"]);
    nodes[0].cli(&create);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !nodes
        .iter()
        .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
    {
        assert!(Instant::now() < deadline, "the cluster never became ok");
        std::thread::sleep(Duration::from_millis(50));
    }

    // One seed is enough: the client learns the slots (and follows MOVED).
    let url = format!("redis+cluster://{}", addresses[1]);
    let states = fleet(dir.path(), &url, || {});
    let store = open(&url);
    assert_all_agree(&states, &*store);

    // More names, so the keys spread over the masters; every one reads back through one seed.
    for name in ["LIVEKIT_VERSION", "LIVEKIT_NODE_IP", "LIVEKIT_SHA256"] {
        let name = SecretName::new(name).unwrap();
        store
            .set(&name, &livekit_provision::Secret::new("v1.7.2"))
            .unwrap();
    }
    let holding: Vec<usize> = nodes
        .iter()
        .map(|n| n.cli(&["--raw", "KEYS", "*"]).lines().count())
        .collect();
    assert_eq!(holding.iter().sum::<usize>(), 5, "{holding:?}");
    assert!(
        holding.iter().filter(|n| **n > 0).count() >= 2,
        "the keys are all on one master: {holding:?}"
    );
    let names: Vec<SecretName> = ["LIVEKIT_API_KEY", "LIVEKIT_VERSION", "LIVEKIT_SHA256"]
        .into_iter()
        .map(|n| SecretName::new(n).unwrap())
        .collect();
    let values = store.get_many(&names).unwrap();
    assert!(values.iter().all(Option::is_some), "{values:?}");
    // Move the API key's slot to another master under the connected store: its next read is
    // answered MOVED by the old owner, and the client follows.
    let key = "livekit-provision:LIVEKIT_API_KEY";
    let before = store.get(&SecretName::LIVEKIT_API_KEY).unwrap().unwrap();
    let slot = nodes[0].cli(&["CLUSTER", "KEYSLOT", key]).trim().to_owned();
    let has_key = |n: &RedisServer| n.cli(&["--raw", "KEYS", "*"]).lines().any(|l| l == key);
    let from = nodes.iter().position(has_key).unwrap();
    let to = (from + 1) % nodes.len();
    let id = |n: &RedisServer| n.cli(&["CLUSTER", "MYID"]).trim().to_owned();
    let (from_id, to_id) = (id(&nodes[from]), id(&nodes[to]));
    nodes[to].cli(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]);
    nodes[from].cli(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]);
    let to_port = nodes[to].port.to_string();
    nodes[from].cli(&[
        "MIGRATE",
        "127.0.0.1",
        &to_port,
        "",
        "0",
        "5000",
        "KEYS",
        key,
    ]);
    for node in &nodes {
        node.cli(&["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
    }
    assert!(has_key(&nodes[to]) && !has_key(&nodes[from]));
    let after = store.get(&SecretName::LIVEKIT_API_KEY).unwrap().unwrap();
    assert_eq!(after.expose(), before.expose());

    // A key of another type on some master is an error, never "absent".
    nodes[0].cli(&["-c", "DEL", "livekit-provision:LIVEKIT_NODE_IP"]);
    nodes[0].cli(&["-c", "HSET", "livekit-provision:LIVEKIT_NODE_IP", "f", "v"]);
    let err = store
        .get_many(&[SecretName::LIVEKIT_NODE_IP, SecretName::LIVEKIT_VERSION])
        .unwrap_err();
    assert!(err.to_string().contains("LIVEKIT_NODE_IP"), "{err}");
}

/// Run `openssl` in `dir`; the test fails with its stderr when it does.
fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA, a server certificate for 127.0.0.1 and a client certificate, all made here.
fn make_certificates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=lkp-test-ca",
    ]);
    openssl(dir, &ca);
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        let subject = format!("/CN=lkp-test-{name}");
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", &subject]);
        openssl(dir, &req);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
}

#[test]
fn rediss_with_a_private_ca_and_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    make_certificates(&certs);
    let tls_port = crate::support::redis_server::free_port();
    let c = |name: &str| certs.join(name).display().to_string();
    let server = RedisServer::start(
        &dir.path().join("redis"),
        &RedisConfig {
            extra: vec![
                format!("tls-port {tls_port}"),
                format!("tls-cert-file {}", c("server.pem")),
                format!("tls-key-file {}", c("server.key")),
                format!("tls-ca-cert-file {}", c("ca.pem")),
                "tls-auth-clients yes".to_owned(),
            ],
            ..RedisConfig::default()
        },
    );
    let base = format!("rediss://127.0.0.1:{tls_port}");
    let good = format!(
        "{base}?ca={}&cert={}&key={}",
        c("ca.pem"),
        c("client.pem"),
        c("client.key")
    );
    let node = dir.path().join("node");
    let report = ensure(
        &StateDir::new(&node),
        &*open(&good),
        &EnsureOptions::default(),
    )
    .unwrap();
    let stored = server.cli(&["--raw", "GET", "livekit-provision:LIVEKIT_API_KEY"]);
    assert_eq!(Some(stored.trim()), report.api_key.as_deref());

    let cases = [
        // The system's trust store does not know the test CA.
        (base.clone(), "certificate"),
        (format!("{base}?ca={}", c("nosuch.pem")), "cannot read"),
        // The server wants a client certificate: its alert, and the hint that names the fix.
        (format!("{base}?ca={}", c("ca.pem")), "CertificateRequired"),
        (format!("{base}?ca={}", c("ca.pem")), "?cert=PATH&key=PATH"),
    ];
    for (url, needle) in cases {
        let text = refused(&dir.path().join("fresh"), &url);
        assert!(text.contains(needle), "{url}: {text}");
    }
}

#[test]
fn a_noop_ensure_makes_at_most_two_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let server = RedisServer::start(
        &dir.path().join("redis"),
        &RedisConfig {
            password: Some("pw-round-trips".to_owned()),
            ..RedisConfig::default()
        },
    );
    let url = server.url(":pw-round-trips@", "/2");
    let node = dir.path().join("node");
    let opts = EnsureOptions::default();
    ensure(&StateDir::new(&node), &*open(&url), &opts).unwrap();

    server.cli(&["CONFIG", "RESETSTAT"]);
    let StoreSpec::Redis(spec) = StoreSpec::parse(&url).unwrap() else {
        panic!()
    };
    let store = RedisStore::new(spec);
    let report = ensure(&StateDir::new(&node), &store, &opts).unwrap();
    assert!(report.is_noop(), "{:?}", report.actions);
    let traffic = store.traffic();
    // The handshake (AUTH and SELECT, pipelined) and one pipeline of reads.
    assert_eq!((traffic.connects, traffic.requests), (1, 1), "{traffic:?}");
    let stats = server.cli(&["INFO", "commandstats"]);
    let calls = |command: &str| {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .map_or(0, |rest| {
                rest.split(',').next().unwrap().parse::<u32>().unwrap()
            })
    };
    // LIVEKIT_VERSION, LIVEKIT_NODE_IP, the three pairs of a rotation and the end of its grace
    // (read together: the recovery rule of keyring.rs), LIVEKIT_REDIS_ADDRESS.
    assert_eq!(calls("get"), 10, "{stats}");
    // AUTH: ours, and redis-cli's for this INFO.
    assert_eq!(
        (calls("set"), calls("auth"), calls("select")),
        (0, 2, 1),
        "{stats}"
    );
}
