//! `reconcile`: `ensure`'s report and the node the run left (settings, the files as published,
//! the binary chosen), which the media step reuses instead of reading again; and the report's
//! times on the wire (RFC 3339).

use std::time::Duration;

use livekit_provision::store::MemoryStore;
use livekit_provision::{
    BinarySource, EnsureReport, LivekitBinary, NodeSnapshot, OperatorConfig, Reconciled,
    SecretStore, StateDir, reconcile,
};

use crate::support::provision::{chain, fresh_state, offline, store_pair};

fn run(state: &StateDir, store: &dyn SecretStore, dry_run: bool) -> Reconciled {
    let mut opts = offline();
    opts.dry_run = dry_run;
    reconcile(state, store, &opts).unwrap_or_else(|e| panic!("reconcile: {}", chain(&e)))
}

/// The snapshot is what reading the node now gives: the same settings, binary and credentials.
#[track_caller]
fn is_the_node_now(state: &StateDir, snapshot: &NodeSnapshot) {
    let now = NodeSnapshot::read(state, None).unwrap();
    assert_eq!(snapshot.config, now.config);
    assert_eq!(snapshot.binary, now.binary);
    assert_eq!(
        snapshot.disk.consistent_credentials(),
        now.disk.consistent_credentials()
    );
    assert_eq!(
        snapshot.disk.livekit_yaml.valid().map(|y| y.port),
        now.disk.livekit_yaml.valid().map(|y| y.port)
    );
}

#[test]
fn the_run_returns_the_node_it_left() {
    let (_tmp, state) = fresh_state();
    std::fs::create_dir_all(state.root()).unwrap();
    std::fs::write(
        state.settings_file(),
        "livekit_bin: /opt/livekit-server\nbackend_command: /opt/lk-backend\n",
    )
    .unwrap();
    let store = MemoryStore::new();

    // A dry run writes nothing: its snapshot is the empty directory it planned from.
    let planned = run(&state, &store, true);
    assert!(planned.snapshot.disk.is_empty());

    let Reconciled { report, snapshot } = run(&state, &store, false);
    let (key, secret) = store_pair(&store).unwrap();
    assert_eq!(report.api_key.as_deref(), Some(key.as_str()));
    // The files as published, read back: they agree on the store's pair.
    let creds = snapshot.disk.consistent_credentials().unwrap();
    assert_eq!(
        (creds.key.to_string(), creds.secret.expose().to_owned()),
        (key, secret.clone())
    );
    assert!(snapshot.disk.backend_env.valid().is_some());
    // The settings the run used, and the binary it chose from them.
    assert_eq!(snapshot.config, OperatorConfig::load(&state).unwrap());
    assert_eq!(
        snapshot.binary,
        LivekitBinary::choose(&state, &snapshot.config.settings, None)
    );
    assert_eq!(snapshot.binary.source, BinarySource::Settings);
    is_the_node_now(&state, &snapshot);
    // Never a secret in `Debug`.
    let shown = format!("{report:?} {snapshot:?}");
    assert!(!shown.contains(&secret), "{shown}");

    // A converged rerun publishes nothing and hands back the reading it verified.
    let again = run(&state, &store, false);
    assert!(again.report.is_noop(), "{:?}", again.report.actions);
    is_the_node_now(&state, &again.snapshot);

    // A change is published: the snapshot holds the new files, not the ones planned from.
    std::fs::write(
        state.settings_file(),
        "livekit_bin: /opt/livekit-server\nport: 7990\n",
    )
    .unwrap();
    let changed = run(&state, &store, false);
    assert!(!changed.report.is_noop());
    assert_eq!(
        changed.snapshot.disk.livekit_yaml.valid().map(|y| y.port),
        Some(7990)
    );
    assert_eq!(changed.snapshot.config.settings.backend_command, None);
    is_the_node_now(&state, &changed.snapshot);
}

#[test]
fn the_grace_end_is_rfc3339_on_the_wire() {
    let (_tmp, state) = fresh_state();
    let store = MemoryStore::new();
    run(&state, &store, false);
    let now = std::time::SystemTime::now();
    let schedule =
        livekit_provision::rotate::Schedule::new(Some(Duration::from_secs(3600)), None).unwrap();
    livekit_provision::rotate::stage(&state, &store, &schedule, now, |_| {}).unwrap();
    run(&state, &store, false);
    let rotated = livekit_provision::rotate::promote(&state, &store, now, |_| {}).unwrap();
    let livekit_provision::rotate::Epoch::Grace { until, .. } = rotated.epoch else {
        panic!("{rotated:?}");
    };
    let report = run(&state, &store, false).report;
    assert_eq!(report.grace_until, Some(until));
    let json = serde_json::to_value(&report).unwrap();
    let text = json["grace_until"].as_str().unwrap();
    assert_eq!(
        humantime::parse_rfc3339(text).unwrap(),
        report.grace_until.unwrap()
    );
    // The report reads back (the RPC client parses it).
    let back: EnsureReport = serde_json::from_value(json).unwrap();
    assert_eq!(back.grace_until, report.grace_until);
}
