//! `check`: every finding code, each produced by damaging a state directory that `ensure` made,
//! with its severity and the health verdict; and `check` itself never writes anything.

use std::net::IpAddr;
use std::path::Path;

use livekit_provision::check::{CheckOptions, CheckReport, Code, Severity, check};
use livekit_provision::store::{MemoryStore, StoreOp};
use livekit_provision::{ManagedFile, SecretStore, StateDir, ensure};

use crate::support::provision::{
    creds, fresh_state, from_mirror, listing, offline, put, rendered_for,
};
use crate::support::release_server::Release;

const OTHER_SECRET: &str = "OtherOtherOtherOtherOtherOtherOtherOther";

/// A state directory `ensure` provisioned from a memory store.
struct Node {
    tmp: tempfile::TempDir,
    state: StateDir,
    store: MemoryStore,
}

fn provisioned() -> Node {
    let (tmp, state) = fresh_state();
    let store = MemoryStore::new();
    ensure(&state, &store, &offline()).unwrap();
    Node { tmp, state, store }
}

impl Node {
    fn path(&self, file: ManagedFile) -> std::path::PathBuf {
        self.state.managed(file)
    }

    fn read(&self, file: ManagedFile) -> String {
        std::fs::read_to_string(self.path(file)).unwrap()
    }

    /// Rewrite a managed file in place (through the link, into the live generation).
    fn edit(&self, file: ManagedFile, change: impl FnOnce(String) -> String) {
        let text = change(self.read(file));
        std::fs::write(self.path(file), text).unwrap();
    }

    fn check(&self) -> CheckReport {
        self.check_with(&CheckOptions::default())
    }

    fn check_with(&self, opts: &CheckOptions) -> CheckReport {
        checked(&self.state, Some(&self.store), opts)
    }
}

/// Run `check` and prove it wrote nothing: not one entry of the state directory (including
/// `run/lock`) changed, and the store saw no write.
fn checked(state: &StateDir, store: Option<&MemoryStore>, opts: &CheckOptions) -> CheckReport {
    let before = full_listing(state.root());
    let writes = store.map(MemoryStore::writes);
    let report = check(state, store.map(|s| s as &dyn SecretStore), opts);
    assert_eq!(
        full_listing(state.root()),
        before,
        "check wrote to the state dir"
    );
    assert_eq!(
        store.map(MemoryStore::writes),
        writes,
        "check wrote to the store"
    );
    // The report never carries a secret value.
    if let Some(store) = store {
        let json = serde_json::to_string(&report).unwrap();
        for (name, value) in store.snapshot() {
            assert!(
                !name.is_secret() || !json.contains(value.expose()),
                "{json}"
            );
        }
    }
    report
}

fn full_listing(root: &Path) -> Vec<(std::path::PathBuf, crate::support::provision::Stamp)> {
    listing(root).into_iter().collect()
}

/// The one finding with `code`, asserting its severity and the verdict that follows.
fn expect(report: &CheckReport, code: Code, severity: Severity) {
    let found: Vec<_> = report.with_code(code).collect();
    assert!(!found.is_empty(), "no {code:?} in {:#?}", report.findings);
    for f in &found {
        assert_eq!(f.severity, severity, "{f:#?}");
        assert!(!f.message.is_empty());
    }
    if severity == Severity::Error {
        assert!(!report.healthy, "{:#?}", report.findings);
    }
    // Errors are listed first.
    let first_warning = report
        .findings
        .iter()
        .position(|f| f.severity == Severity::Warning)
        .unwrap_or(report.findings.len());
    assert!(
        report.findings[first_warning..]
            .iter()
            .all(|f| f.severity == Severity::Warning)
    );
}

fn codes(report: &CheckReport) -> Vec<Code> {
    report.findings.iter().map(|f| f.code).collect()
}

#[test]
fn a_converged_node_is_healthy() {
    let node = provisioned();
    let report = node.check();
    assert!(report.healthy, "{:#?}", report.findings);
    assert!(
        report
            .findings
            .iter()
            .all(|f| f.severity == Severity::Warning)
    );
    // The 127.0.0.1 default is the one thing to say.
    assert_eq!(codes(&report), [Code::NodeIpDefault]);

    put(&node.store, "LIVEKIT_NODE_IP", "127.0.0.1");
    ensure(&node.state, &node.store, &offline()).unwrap();
    let report = node.check_with(&CheckOptions {
        local_addresses: vec!["127.0.0.1".parse().unwrap()],
        ..CheckOptions::default()
    });
    assert!(
        report.healthy && report.findings.is_empty(),
        "{:#?}",
        report.findings
    );
    // Without a store only the files are judged.
    let report = checked(&node.state, None, &CheckOptions::default());
    assert!(
        report.healthy && report.findings.is_empty(),
        "{:#?}",
        report.findings
    );
}

#[test]
fn not_provisioned() {
    let (_tmp, state) = fresh_state();
    let report = checked(&state, Some(&MemoryStore::new()), &CheckOptions::default());
    expect(&report, Code::NotProvisioned, Severity::Error);
    assert!(!state.root().exists());

    let node = provisioned();
    for file in ManagedFile::ALL {
        std::fs::remove_file(node.path(file)).unwrap();
    }
    let report = node.check();
    expect(&report, Code::NotProvisioned, Severity::Error);
    assert!(report.with_code(Code::PartialTriple).next().is_none());
}

#[test]
fn partial_triple() {
    let node = provisioned();
    std::fs::remove_file(node.path(ManagedFile::BackendEnv)).unwrap();
    let report = node.check();
    expect(&report, Code::PartialTriple, Severity::Error);
    let f = report.with_code(Code::PartialTriple).next().unwrap();
    assert_eq!(f.files, [node.path(ManagedFile::BackendEnv)]);
    assert!(f.hint.is_some());
}

#[test]
fn unparsable() {
    let node = provisioned();
    node.edit(ManagedFile::LivekitYaml, |_| "keys: [\n".to_owned());
    let report = node.check();
    expect(&report, Code::Unparsable, Severity::Error);
    let f = report.with_code(Code::Unparsable).next().unwrap();
    assert_eq!(f.files, [node.path(ManagedFile::LivekitYaml)]);
}

#[test]
fn keys_disagree() {
    let node = provisioned();
    let other = rendered_for(&node.state, &creds("APIother", OTHER_SECRET));
    node.edit(ManagedFile::RuntimeJson, |_| other.runtime_json.clone());
    let report = node.check();
    expect(&report, Code::KeysDisagree, Severity::Error);
    assert!(
        report
            .with_code(Code::KeysDisagree)
            .next()
            .unwrap()
            .message
            .contains("401")
    );
    // Without a store too: it is a property of the files alone.
    let report = checked(&node.state, None, &CheckOptions::default());
    expect(&report, Code::KeysDisagree, Severity::Error);
}

#[test]
fn store_disagrees() {
    let node = provisioned();
    put(&node.store, "LIVEKIT_API_KEY", "APIrotated");
    put(&node.store, "LIVEKIT_API_SECRET", OTHER_SECRET);
    let report = node.check();
    expect(&report, Code::StoreDisagrees, Severity::Error);
    assert!(report.with_code(Code::KeysDisagree).next().is_none());
}

#[test]
fn drift() {
    let node = provisioned();
    std::fs::write(node.state.settings_file(), "log_level: debug\n").unwrap();
    let report = node.check();
    expect(&report, Code::Drift, Severity::Warning);
    let drifted: Vec<_> = report
        .with_code(Code::Drift)
        .flat_map(|f| f.files.clone())
        .collect();
    assert_eq!(drifted, [node.path(ManagedFile::LivekitYaml)]);
    assert!(report.healthy);
}

#[test]
fn permissions() {
    use std::os::unix::fs::PermissionsExt;
    let node = provisioned();
    let path = node.path(ManagedFile::RuntimeJson);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let report = node.check();
    expect(&report, Code::Permissions, Severity::Error);
    let f = report.with_code(Code::Permissions).next().unwrap();
    assert_eq!(f.files, std::slice::from_ref(&path));
    assert!(f.message.contains("0644"), "{}", f.message);
    assert_eq!(
        f.hint.as_deref(),
        Some(format!("chmod 600 {}", path.display()).as_str())
    );
}

#[test]
fn symlink_outside() {
    let node = provisioned();
    let outside = node.tmp.path().join("elsewhere.json");
    std::fs::write(&outside, node.read(ManagedFile::RuntimeJson)).unwrap();
    let link = node.path(ManagedFile::RuntimeJson);
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let report = node.check();
    expect(&report, Code::SymlinkOutside, Severity::Error);
}

#[test]
fn legacy_layout() {
    let node = provisioned();
    for file in ManagedFile::ALL {
        let text = node.read(file);
        std::fs::remove_file(node.path(file)).unwrap();
        livekit_provision::fsio::write_file(&node.path(file), text.as_bytes(), 0o600).unwrap();
    }
    let report = node.check();
    expect(&report, Code::LegacyLayout, Severity::Warning);
    assert_eq!(report.with_code(Code::LegacyLayout).count(), 3);
    assert!(report.healthy, "{:#?}", report.findings);
}

#[test]
fn multiple_keys() {
    let node = provisioned();
    node.edit(ManagedFile::LivekitYaml, |t| {
        t.replace(
            "keys:\n",
            &format!("keys:\n  APIextra: \"{OTHER_SECRET}\"\n"),
        )
    });
    let report = node.check();
    expect(&report, Code::MultipleKeys, Severity::Warning);
    assert!(report.with_code(Code::KeysDisagree).next().is_none());
}

#[test]
fn a_staged_key_not_in_livekit_yaml_and_a_retired_key_still_in_it() {
    use livekit_provision::rotate::{Schedule, promote, stage};
    use std::time::Duration;

    let node = provisioned();
    let now = std::time::SystemTime::now();
    let schedule = Schedule::new(Some(Duration::from_secs(60)), None).unwrap();
    stage(&node.state, &node.store, &schedule, now, |_| {}).unwrap();
    // Staged, not published yet.
    let report = node.check();
    expect(&report, Code::NextKeyNotListed, Severity::Warning);
    assert!(report.healthy);
    let hint = report
        .with_code(Code::NextKeyNotListed)
        .next()
        .unwrap()
        .hint
        .clone();
    assert!(hint.unwrap().contains("secrets rotate --promote"));
    ensure(&node.state, &node.store, &offline()).unwrap();
    assert!(
        node.check()
            .with_code(Code::NextKeyNotListed)
            .next()
            .is_none()
    );
    promote(&node.state, &node.store, now, |_| {}).unwrap();
    ensure(&node.state, &node.store, &offline()).unwrap();
    let report = node.check();
    assert_eq!(codes(&report), [Code::NodeIpDefault]);
    // The grace is over, but nothing has published since: the previous key is still listed.
    let later = node.check_with(&CheckOptions {
        now: now + Duration::from_secs(120),
        ..CheckOptions::default()
    });
    expect(&later, Code::RetiredKeyListed, Severity::Warning);
    assert!(later.with_code(Code::MultipleKeys).next().is_none());
}

#[test]
fn key_file() {
    let node = provisioned();
    node.edit(ManagedFile::LivekitYaml, |t| {
        t + "key_file: /etc/livekit-keys.yaml\n"
    });
    let report = node.check();
    expect(&report, Code::KeyFile, Severity::Error);
}

#[test]
fn short_secret() {
    let node = provisioned();
    node.edit(ManagedFile::LivekitYaml, |t| {
        t.replace("keys:\n", "keys:\n  APIshort: \"tooshort10\"\n")
    });
    let report = node.check();
    expect(&report, Code::ShortSecret, Severity::Warning);
    let f = report.with_code(Code::ShortSecret).next().unwrap();
    assert!(
        f.message.contains("APIshort") && f.message.contains("10"),
        "{}",
        f.message
    );
    assert!(!f.message.contains("tooshort10"));
}

#[test]
fn external_ip() {
    let node = provisioned();
    node.edit(ManagedFile::LivekitYaml, |t| {
        assert!(t.contains("use_external_ip: false"));
        t.replace("use_external_ip: false", "use_external_ip: true")
    });
    let report = node.check();
    expect(&report, Code::ExternalIp, Severity::Warning);
}

#[test]
fn node_ip_not_local() {
    let node = provisioned();
    put(&node.store, "LIVEKIT_NODE_IP", "203.0.113.7");
    ensure(&node.state, &node.store, &offline()).unwrap();
    let local: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap()];
    let report = node.check_with(&CheckOptions {
        local_addresses: local,
        ..CheckOptions::default()
    });
    expect(&report, Code::NodeIpNotLocal, Severity::Warning);
    assert!(report.with_code(Code::NodeIpDefault).next().is_none());
    assert!(report.healthy);
    // With the address on an interface, nothing to say.
    let report = node.check_with(&CheckOptions {
        local_addresses: vec!["203.0.113.7".parse().unwrap()],
        ..CheckOptions::default()
    });
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
}

#[test]
fn node_ip_default() {
    let node = provisioned();
    let report = node.check();
    expect(&report, Code::NodeIpDefault, Severity::Warning);
    assert!(report.healthy);
}

#[test]
fn debris() {
    let node = provisioned();
    std::fs::write(node.state.root().join(".lkp-tmp-x"), "half").unwrap();
    let report = node.check();
    expect(&report, Code::Debris, Severity::Warning);
    assert!(report.healthy);
    // The next ensure sweeps it.
    ensure(&node.state, &node.store, &offline()).unwrap();
    assert!(node.check().with_code(Code::Debris).next().is_none());
}

#[test]
fn store_unreadable() {
    let node = provisioned();
    node.store.set_broken(StoreOp::Get, true);
    let report = node.check();
    expect(&report, Code::StoreUnreadable, Severity::Error);
    let f = report.with_code(Code::StoreUnreadable).next().unwrap();
    assert!(f.message.contains("memory"), "{}", f.message);
    node.store.set_broken(StoreOp::Get, false);
}

#[test]
fn config_invalid() {
    let node = provisioned();
    std::fs::write(node.state.settings_file(), "bogus: 1\n").unwrap();
    let report = node.check();
    expect(&report, Code::ConfigInvalid, Severity::Error);
    let f = report.with_code(Code::ConfigInvalid).next().unwrap();
    assert!(f.message.contains("bogus"), "{}", f.message);
    assert!(f.hint.is_some());
}

#[test]
fn extra_not_in_release() {
    let node = provisioned();
    put(&node.store, "LIVEKIT_VERSION", "1.8.4");
    std::fs::write(node.state.extra_file(), "api:\n  execution_timeout: 2s\n").unwrap();
    let before = listing(node.state.root());
    let report = node.check();
    expect(&report, Code::ExtraNotInRelease, Severity::Error);
    let f = report.with_code(Code::ExtraNotInRelease).next().unwrap();
    assert!(
        f.message.contains("`api`") && f.message.contains("1.8"),
        "{}",
        f.message
    );
    assert!(
        f.hint.as_ref().is_some_and(|h| h.contains("v1.10.1")),
        "{:?}",
        f.hint
    );
    assert_eq!(f.files, vec![node.state.extra_file()]);
    assert_eq!(listing(node.state.root()), before);
    // Once the pinned release has it, the finding is gone.
    put(&node.store, "LIVEKIT_VERSION", "1.13.0");
    assert!(
        node.check()
            .with_code(Code::ExtraNotInRelease)
            .next()
            .is_none()
    );
}

#[test]
fn config_invalid_names_a_nested_unknown_key() {
    let node = provisioned();
    std::fs::write(node.state.extra_file(), "turn:\n  tls_prot: 5349\n").unwrap();
    let report = node.check();
    expect(&report, Code::ConfigInvalid, Severity::Error);
    let f = report.with_code(Code::ConfigInvalid).next().unwrap();
    assert!(f.message.contains("`turn.tls_prot`"), "{}", f.message);
    assert!(
        f.hint.as_ref().is_some_and(|h| h.contains("turn.tls_port")),
        "{:?}",
        f.hint
    );
}

#[test]
fn binary_missing() {
    let node = provisioned();
    put(&node.store, "LIVEKIT_VERSION", "1.7.2");
    let report = node.check();
    expect(&report, Code::BinaryMissing, Severity::Error);
}

#[test]
fn the_livekit_bin_flag_is_the_binary_checked() {
    let node = provisioned();
    put(&node.store, "LIVEKIT_VERSION", "1.7.2");
    // Nothing installed, but the operator's own binary exists: nothing is missing.
    let own = node.state.root().join("my-livekit-server");
    std::fs::write(&own, "#!/bin/sh\n").unwrap();
    // Not executable yet: it cannot run (issue 24: it was called healthy, as a directory was).
    let check_own = |path: &std::path::Path| {
        node.check_with(&CheckOptions {
            livekit_bin: Some(path.to_owned()),
            ..CheckOptions::default()
        })
    };
    let report = check_own(&own);
    let f = report.with_code(Code::BinaryMissing).next().unwrap();
    assert!(f.message.contains("not executable"), "{}", f.message);
    let report = check_own(node.state.root());
    let f = report.with_code(Code::BinaryMissing).next().unwrap();
    assert!(f.message.contains("is a directory"), "{}", f.message);
    std::fs::set_permissions(&own, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let report = check_own(&own);
    assert!(
        report.with_code(Code::BinaryMissing).next().is_none(),
        "{:#?}",
        report.findings
    );
    // A flag naming nothing is reported with its path.
    let gone = node.state.root().join("gone");
    let report = node.check_with(&CheckOptions {
        livekit_bin: Some(gone.clone()),
        ..CheckOptions::default()
    });
    expect(&report, Code::BinaryMissing, Severity::Error);
    let f = report.with_code(Code::BinaryMissing).next().unwrap();
    assert_eq!(f.files, [gone]);
}

/// A node with 1.7.0 installed from a `file://` mirror (stand-in binary).
fn installed_node() -> Node {
    let node = provisioned();
    let mirror = node.tmp.path().join("mirror");
    Release::new("1.7.0").write_mirror(&mirror);
    put(&node.store, "LIVEKIT_VERSION", "1.7.0");
    let report = ensure(&node.state, &node.store, &from_mirror(&mirror)).unwrap();
    assert!(!report.is_incomplete(), "{:?}", report.warnings);
    let report = node.check();
    assert!(report.healthy, "{:#?}", report.findings);
    node
}

#[test]
fn binary_version() {
    let node = installed_node();
    put(&node.store, "LIVEKIT_VERSION", "1.7.2");
    let report = node.check();
    expect(&report, Code::BinaryVersion, Severity::Warning);
}

#[test]
fn binary_tampered() {
    use std::io::Write;
    let node = installed_node();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(node.state.livekit_bin())
        .unwrap();
    f.write_all(b"x").unwrap();
    drop(f);
    let report = node.check();
    expect(&report, Code::BinaryTampered, Severity::Error);
}

#[test]
fn binary_tampered_same_size_needs_the_hash() {
    let node = installed_node();
    let path = std::fs::canonicalize(node.state.livekit_bin()).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let report = node.check();
    expect(&report, Code::BinaryTampered, Severity::Error);
    let report = node.check_with(&CheckOptions {
        verify_binary: false,
        ..CheckOptions::default()
    });
    assert!(report.with_code(Code::BinaryTampered).next().is_none());
}

#[test]
fn check_with_the_fleet_is_one_report_healthy_only_in_sync() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path());
    let store = MemoryStore::new();
    ensure(&state, &store, &livekit_provision::EnsureOptions::default()).unwrap();
    let check = || {
        livekit_provision::check(
            &state,
            Some(&store),
            &livekit_provision::CheckOptions::default(),
        )
    };
    let plain = check();
    assert!(plain.healthy, "{plain:?}");
    // Without --fleet the JSON has no `fleet` key (the RPC's `check` shape).
    assert!(serde_json::to_value(&plain).unwrap().get("fleet").is_none());

    let in_sync = livekit_provision::fleet_check(&state, &store);
    assert!(check().with_fleet(in_sync.clone()).healthy);
    // A healthy node whose secret is not the fleet's is not healthy.
    let mut differs = in_sync;
    differs.in_sync = false;
    differs
        .differences
        .push(livekit_provision::FleetDifference::SecretDiffers.into());
    let out_of_sync = check().with_fleet(differs);
    assert!(!out_of_sync.healthy, "a node out of sync is not healthy");
    let json = serde_json::to_value(&out_of_sync).unwrap();
    assert_eq!(json["healthy"], false, "{json}");
    assert_eq!(
        json["fleet"]["differences"][0]["kind"], "secret_differs",
        "{json}"
    );
    // The one type reads back what it wrote.
    let back: CheckReport = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(serde_json::to_value(&back).unwrap(), json);
}
