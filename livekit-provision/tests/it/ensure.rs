//! `ensure` end to end on real state directories: first provisioning, quiet reruns (invariant
//! 3), adoption instead of rotation (invariant 1), repair of disagreeing files (invariant 2),
//! backups of what was there (invariant 4), refusal of invalid inputs before anything is written,
//! and the binary from a `file://` mirror (the "livekit-server" there is a stand-in script).

use livekit_provision::Hint;
use livekit_provision::ensure::{Action, BinaryState, WriteReason};
use livekit_provision::publish::{PublishOptions, StateLock, generations, prepare, publish};
use livekit_provision::render::Rendered;
use livekit_provision::store::{FileStore, MemoryStore, StoreOp};
use livekit_provision::{
    CredentialSource, EnsureError, EnsureReport, ManagedFile, SecretStore, StateDir, Warning,
    ensure,
};

use crate::support::provision::{
    FlakyStore, chain, creds, disk_pair, fresh_state, from_mirror, get, listing, names, offline,
    put, rendered_for, store_pair, store_with, write_plain,
};
use crate::support::release_server::Release;

const S1: &str = "S1S1S1S1S1S1S1S1S1S1S1S1S1S1S1S1S1S1S1S1S1S1";
const S2: &str = "S2S2S2S2S2S2S2S2S2S2S2S2S2S2S2S2S2S2S2S2S2S2";

fn run(state: &StateDir, store: &dyn SecretStore) -> EnsureReport {
    ensure(state, store, &offline()).unwrap_or_else(|e| panic!("ensure: {}", chain(&e)))
}

fn dry_run(state: &StateDir, store: &dyn SecretStore) -> EnsureReport {
    let mut opts = offline();
    opts.dry_run = true;
    ensure(state, store, &opts).unwrap_or_else(|e| panic!("ensure --dry-run: {}", chain(&e)))
}

fn writes(report: &EnsureReport) -> Vec<(ManagedFile, WriteReason)> {
    report
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::WriteFile { file, reason } => Some((*file, *reason)),
            _ => None,
        })
        .collect()
}

fn all_written(reason: WriteReason) -> Vec<(ManagedFile, WriteReason)> {
    ManagedFile::ALL.iter().map(|f| (*f, reason)).collect()
}

fn warnings(report: &EnsureReport) -> Vec<Warning> {
    report.warnings.iter().map(|w| w.warning.clone()).collect()
}

fn generation_count(state: &StateDir) -> usize {
    generations(state).unwrap().len()
}

/// Publish `rendered` through the real publisher (as a crashed or older run would have left it).
fn plant(state: &StateDir, rendered: &Rendered) {
    prepare(state).unwrap();
    let lock = StateLock::acquire(state, |_| {}).unwrap();
    publish(state, &lock, rendered, &PublishOptions::default()).unwrap();
}

#[test]
fn first_run_mints_stores_and_writes_a_consistent_set() {
    let (_tmp, state) = fresh_state();
    let store = MemoryStore::new();
    let report = run(&state, &store);

    let (key, secret) = store_pair(&store).expect("the store holds the minted pair");
    assert!(key.starts_with("API") && key.len() == 15, "{key}");
    assert_eq!(secret.len(), 43);
    assert!(matches!(&report.actions[0], Action::MintCredentials { key: Some(k) } if *k == key));
    assert_eq!(writes(&report), all_written(WriteReason::Missing));
    assert_eq!(report.actions.len(), 4, "{:?}", report.actions);
    assert_eq!(report.credentials, CredentialSource::Minted);
    assert_eq!(report.api_key.as_deref(), Some(key.as_str()));
    assert_eq!(report.binary, BinaryState::NotPinned);
    assert!(!report.is_noop() && !report.is_incomplete());
    let w = warnings(&report);
    assert!(w.contains(&Warning::NodeIpDefaulted), "{w:?}");
    assert!(w.contains(&Warning::ControlPlaneOnly), "{w:?}");
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(disk_pair(&state), Some((key, secret)));
    assert_eq!(store.writes(), 2);
    assert_eq!(generation_count(&state), 1);
}

#[test]
fn a_rerun_on_a_converged_node_writes_nothing() {
    let (_tmp, state) = fresh_state();
    let store = FileStore::new(state.secrets_file());
    let first = run(&state, &store);
    let before = listing(state.root());
    let secrets_before = std::fs::metadata(state.secrets_file())
        .unwrap()
        .modified()
        .unwrap();

    let again = run(&state, &store);
    assert!(again.is_noop(), "{:?}", again.actions);
    assert_eq!(again.credentials, CredentialSource::Store);
    assert_eq!(again.api_key, first.api_key);
    assert_eq!(again.generation, first.generation);
    assert_eq!(listing(state.root()), before);
    assert_eq!(
        std::fs::metadata(state.secrets_file())
            .unwrap()
            .modified()
            .unwrap(),
        secrets_before
    );
    assert_eq!(generation_count(&state), 1);

    // Same with a memory store: not a single store write either.
    let (_tmp, state) = fresh_state();
    let store = MemoryStore::new();
    run(&state, &store);
    let (writes_before, before) = (store.writes(), listing(state.root()));
    for _ in 0..3 {
        assert!(run(&state, &store).is_noop());
    }
    assert_eq!(store.writes(), writes_before);
    assert_eq!(listing(state.root()), before);
}

#[test]
fn dry_run_on_a_fresh_dir_creates_nothing_and_lists_the_plan() {
    let (tmp, state) = fresh_state();
    let store = FileStore::new(state.secrets_file());
    let report = dry_run(&state, &store);
    assert!(report.dry_run && !report.is_noop());
    // No made-up key (the real run mints its own).
    assert_eq!(report.actions[0], Action::MintCredentials { key: None });
    assert_eq!(report.api_key, None);
    assert_eq!(writes(&report), all_written(WriteReason::Missing));
    assert!(!state.root().exists(), "the state dir was created");
    assert_eq!(names(tmp.path()), ["state"; 0]);
    assert_eq!(report.generation, None);

    // Pinned and offline: the install is listed too, and nothing is fetched.
    let store = MemoryStore::new();
    put(&store, "LIVEKIT_VERSION", "v1.7.2");
    let report = dry_run(&state, &store);
    assert!(report.actions.contains(&Action::Install {
        version: "1.7.2".to_owned(),
        replaces: None
    }));
    assert_eq!(store.writes(), 1, "only the test's own write");
    assert!(!state.root().exists());
}

#[test]
fn dry_run_on_a_converged_dir_is_a_noop() {
    let (_tmp, state) = fresh_state();
    let store = MemoryStore::new();
    run(&state, &store);
    let before = listing(state.root());
    let report = dry_run(&state, &store);
    assert!(report.is_noop(), "{:?}", report.actions);
    assert_eq!(listing(state.root()), before);

    // A pending change is reported but not applied.
    std::fs::write(state.settings_file(), "port: 7990\n").unwrap();
    let before = listing(state.root());
    let report = dry_run(&state, &store);
    assert_eq!(writes(&report), all_written(WriteReason::Changed));
    assert_eq!(listing(state.root()), before);
}

#[test]
fn a_wiped_store_adopts_the_live_files_instead_of_rotating() {
    let (_tmp, state) = fresh_state();
    let store = MemoryStore::new();
    run(&state, &store);
    let live = store_pair(&store).unwrap();
    let before = listing(state.root());

    let wiped = MemoryStore::new();
    let report = run(&state, &wiped);
    assert_eq!(
        report.actions,
        [Action::AdoptCredentials {
            key: live.0.clone(),
            from: ManagedFile::RuntimeJson
        }]
    );
    assert_eq!(store_pair(&wiped), Some(live.clone()));
    assert_eq!(disk_pair(&state), Some(live));
    assert_eq!(
        listing(state.root()),
        before,
        "the files were not rewritten"
    );
}

#[test]
fn files_are_rewritten_from_the_store_when_they_disagree() {
    let (_tmp, state) = fresh_state();
    let k1 = creds("APIk1", S1);
    plant(&state, &rendered_for(&state, &k1));
    let store = store_with(&creds("APIk2", S2));
    let report = run(&state, &store);
    assert_eq!(writes(&report), all_written(WriteReason::Changed));
    assert!(
        warnings(&report).contains(&Warning::FilesDisagreeWithStore {
            disk_key: Some("APIk1".to_owned()),
            store_key: "APIk2".to_owned()
        })
    );
    assert_eq!(report.credentials, CredentialSource::Store);
    assert_eq!(disk_pair(&state), Some(("APIk2".to_owned(), S2.to_owned())));
    assert_eq!(
        store_pair(&store),
        Some(("APIk2".to_owned(), S2.to_owned()))
    );
}

#[test]
fn the_field_bug_adopts_livekit_yaml_and_rewrites_the_other_two() {
    let (_tmp, state) = fresh_state();
    let k1 = rendered_for(&state, &creds("APIk1", S1));
    let k2 = rendered_for(&state, &creds("APIk2", S2));
    plant(
        &state,
        &Rendered {
            livekit_yaml: k1.livekit_yaml.clone(),
            ..k2
        },
    );
    let store = MemoryStore::new();
    let report = run(&state, &store);
    assert_eq!(
        report.actions[0],
        Action::AdoptCredentials {
            key: "APIk1".to_owned(),
            from: ManagedFile::LivekitYaml
        }
    );
    assert_eq!(
        writes(&report),
        [
            (ManagedFile::BackendEnv, WriteReason::Changed),
            (ManagedFile::RuntimeJson, WriteReason::Changed)
        ]
    );
    let pair = ("APIk1".to_owned(), S1.to_owned());
    assert_eq!(store_pair(&store), Some(pair.clone()));
    assert_eq!(disk_pair(&state), Some(pair));
    assert!(run(&state, &store).is_noop());
}

#[test]
fn legacy_plain_files_are_backed_up_and_replaced() {
    let (_tmp, state) = fresh_state();
    let pair = creds("APIlegacy", S1);
    let old = rendered_for(&state, &pair);
    write_plain(&state, &old);
    let store = MemoryStore::new();
    let report = run(&state, &store);
    assert_eq!(
        report.actions[0],
        Action::AdoptCredentials {
            key: "APIlegacy".to_owned(),
            from: ManagedFile::RuntimeJson
        }
    );
    assert_eq!(writes(&report), all_written(WriteReason::LegacyImport));
    let backups: Vec<_> = report
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::BackupFile { path, to } => Some((path.clone(), to.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(backups.len(), 3, "{:?}", report.actions);
    for (path, to) in backups {
        assert!(to.starts_with(state.backups_dir()), "{}", to.display());
        let file = ManagedFile::ALL
            .into_iter()
            .find(|f| state.managed(*f) == path)
            .unwrap();
        assert_eq!(std::fs::read_to_string(&to).unwrap(), old.get(file));
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
    assert_eq!(
        disk_pair(&state),
        Some(("APIlegacy".to_owned(), S1.to_owned()))
    );
    assert!(run(&state, &store).is_noop());
}

#[test]
fn garbage_at_a_managed_path_is_backed_up_and_replaced() {
    let (_tmp, state) = fresh_state();
    let store = MemoryStore::new();
    run(&state, &store);
    let live = store_pair(&store).unwrap();
    // An operator replaces the link by a file of garbage.
    let path = state.managed(ManagedFile::RuntimeJson);
    std::fs::remove_file(&path).unwrap();
    livekit_provision::fsio::write_file(&path, b"{ not json", 0o600).unwrap();

    let report = run(&state, &store);
    assert_eq!(
        writes(&report),
        [(ManagedFile::RuntimeJson, WriteReason::LegacyImport)]
    );
    let saved: Vec<_> = names(&state.backups_dir());
    assert_eq!(saved.len(), 1, "{saved:?}");
    assert_eq!(
        std::fs::read(state.backups_dir().join(&saved[0])).unwrap(),
        b"{ not json"
    );
    assert_eq!(disk_pair(&state), Some(live.clone()));
    assert_eq!(store_pair(&store), Some(live));

    // Garbage written *through* the link (into the live generation) is replaced too.
    std::fs::write(state.managed(ManagedFile::BackendEnv), "LIVEKIT_API_KEY\n").unwrap();
    let report = run(&state, &store);
    assert_eq!(
        writes(&report),
        [(ManagedFile::BackendEnv, WriteReason::Unparsable)]
    );
    assert!(disk_pair(&state).is_some());
    // ...after a copy went to backups/: old generations are pruned, backups are not.
    let kept: Vec<_> = report
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::BackupFile { to, .. } => Some(to.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(kept.len(), 1, "{:?}", report.actions);
    assert!(kept[0].starts_with(state.backups_dir()));
    assert_eq!(std::fs::read(&kept[0]).unwrap(), b"LIVEKIT_API_KEY\n");
    assert_eq!(names(&state.backups_dir()).len(), 2);
}

#[test]
fn a_settings_change_publishes_a_new_generation_with_the_same_secret() {
    let (_tmp, state) = fresh_state();
    let store = MemoryStore::new();
    let first = run(&state, &store);
    let live = store_pair(&store).unwrap();
    let writes_before = store.writes();

    std::fs::write(state.settings_file(), "port: 7990\n").unwrap();
    let report = run(&state, &store);
    assert_ne!(report.generation, first.generation);
    assert_eq!(generation_count(&state), 2);
    assert!(!report.actions.iter().any(|a| matches!(
        a,
        Action::MintCredentials { .. } | Action::AdoptCredentials { .. }
    )));
    assert!(!writes(&report).is_empty());
    assert_eq!(store.writes(), writes_before);
    assert_eq!(disk_pair(&state), Some(live));
    let yaml = std::fs::read_to_string(state.managed(ManagedFile::LivekitYaml)).unwrap();
    assert!(yaml.contains("port: 7990"), "{yaml}");
    let runtime = std::fs::read_to_string(state.managed(ManagedFile::RuntimeJson)).unwrap();
    assert!(runtime.contains("7990"), "{runtime}");
    assert!(run(&state, &store).is_noop());
}

#[test]
fn extra_yaml_with_a_managed_key_is_refused_before_anything_is_written() {
    let (_tmp, state) = fresh_state();
    std::fs::create_dir_all(state.root()).unwrap();
    std::fs::write(state.extra_file(), "rtc:\n  node_ip: 10.0.0.1\n").unwrap();
    let store = MemoryStore::new();
    let err = ensure(&state, &store, &offline()).unwrap_err();
    assert!(matches!(err, EnsureError::Config(_)), "{err:?}");
    let text = chain(&err);
    assert!(text.contains("rtc.node_ip"), "{text}");
    assert!(text.contains("extra.yaml"), "{text}");
    assert!(err.hint().is_some());
    assert_eq!(store.writes(), 0);
    assert!(store.snapshot().is_empty());
    assert_eq!(generation_count(&state), 0);
    for file in ManagedFile::ALL {
        assert!(!state.managed(file).exists());
    }

    // On a provisioned node: the live set is left exactly as it was.
    let (_tmp, state) = fresh_state();
    run(&state, &store);
    let before = listing(state.root());
    std::fs::write(state.extra_file(), "port: 1234\n").unwrap();
    let err = ensure(&state, &store, &offline()).unwrap_err();
    assert!(chain(&err).contains("`port`"), "{}", chain(&err));
    let mut after = listing(state.root());
    after.remove(std::path::Path::new("extra.yaml"));
    assert_eq!(after, before);
}

#[test]
fn extra_yaml_checked_against_the_config_model_is_refused_and_nothing_changes() {
    let (_tmp, state) = fresh_state();
    let store = MemoryStore::new();
    run(&state, &store);
    put(&store, "LIVEKIT_VERSION", "v1.7.2");
    let before = listing(state.root());
    let snapshot = store.snapshot();
    let writes = store.writes();

    // A nested typo: refused by its full path, with the key it probably meant.
    std::fs::write(state.extra_file(), "room:\n  empty_timeout_typo: 600\n").unwrap();
    let err = ensure(&state, &store, &offline()).unwrap_err();
    assert!(matches!(err, EnsureError::Config(_)), "{err:?}");
    let text = chain(&err);
    assert!(text.contains("`room.empty_timeout_typo`"), "{text}");
    assert!(text.contains("did you mean `room.empty_timeout`"), "{text}");

    // A key the pinned release lacks (`api` first appears in 1.10): both versions are named.
    std::fs::write(state.extra_file(), "api:\n  execution_timeout: 2s\n").unwrap();
    let err = ensure(&state, &store, &offline()).unwrap_err();
    let text = chain(&err);
    assert!(
        text.contains("`api`") && text.contains("livekit-server 1.7") && text.contains("1.10"),
        "{text}"
    );
    assert!(
        err.hint().is_some_and(|h| h.contains("v1.10.1")),
        "{:?}",
        err.hint()
    );

    let mut after = listing(state.root());
    after.remove(std::path::Path::new("extra.yaml"));
    assert_eq!(after, before);
    assert_eq!(store.writes(), writes);
    assert_eq!(store.snapshot(), snapshot);
}

#[test]
fn invalid_stored_values_are_named_and_nothing_is_written_or_rotated() {
    let cases = [
        ("LIVEKIT_VERSION", "1.7.2; rm -rf", true),
        ("LIVEKIT_NODE_IP", "nope", true),
        ("LIVEKIT_API_SECRET", "tooshort10", false),
    ];
    for (bad_name, bad_value, value_shown) in cases {
        // Fresh: nothing at all is written.
        let (_tmp, state) = fresh_state();
        let store = MemoryStore::new();
        put(&store, bad_name, bad_value);
        let snapshot = store.snapshot();
        let err = ensure(&state, &store, &offline()).unwrap_err();
        let text = chain(&err);
        assert!(matches!(err, EnsureError::Resolve(_)), "{err:?}");
        assert!(text.contains(bad_name), "{text}");
        assert_eq!(text.contains(bad_value), value_shown, "{text}");
        assert!(err.hint().unwrap().contains(bad_name));
        assert_eq!(store.snapshot(), snapshot, "{bad_name}: the store changed");
        assert_eq!(generation_count(&state), 0);

        // Provisioned: the live set and the stored pair are kept.
        let (_tmp, state) = fresh_state();
        let store = MemoryStore::new();
        run(&state, &store);
        let live = store_pair(&store).unwrap();
        let before = listing(state.root());
        let previous = get(&store, bad_name);
        put(&store, bad_name, bad_value);
        let err = ensure(&state, &store, &offline()).unwrap_err();
        assert!(chain(&err).contains(bad_name));
        assert_eq!(listing(state.root()), before, "{bad_name}: files changed");
        if bad_name == "LIVEKIT_API_SECRET" {
            put(&store, bad_name, &previous.unwrap());
        }
        assert_eq!(store_pair(&store), Some(live.clone()));
        assert_eq!(disk_pair(&state), Some(live));
    }
}

#[test]
fn an_unreadable_store_is_an_error_and_never_mints() {
    for broken in [true, false] {
        let (_tmp, state) = fresh_state();
        let store = MemoryStore::new();
        if broken {
            store.set_broken(StoreOp::Get, true);
        } else {
            store.fail_next(StoreOp::Get);
        }
        let err = ensure(&state, &store, &offline()).unwrap_err();
        assert!(matches!(err, EnsureError::Resolve(_)), "{err:?}");
        assert!(chain(&err).contains("memory"), "{}", chain(&err));
        assert_eq!(store.writes(), 0);
        assert_eq!(generation_count(&state), 0);
        for file in ManagedFile::ALL {
            assert!(!state.managed(file).exists());
        }
    }

    // Whichever read fails, nothing is minted, stored or written.
    let (_tmp, state) = fresh_state();
    let store = MemoryStore::new();
    run(&state, &store);
    let live = store_pair(&store).unwrap();
    let failed = fail_each_read(&state, &store, |report, inner| {
        assert!(report.is_noop());
        assert_eq!(store_pair(inner), Some(live.clone()));
    });
    assert!(failed >= 2, "only {failed} reads");

    // The same when a secret is about to be minted: `prometheus:` is turned on, its password
    // is not in the store yet. Until every read succeeds, nothing is minted or written.
    std::fs::write(state.settings_file(), "prometheus:\n  port: 9100\n").unwrap();
    let failed = fail_each_read(&state, &store, |_, inner| {
        assert!(get(inner, "LIVEKIT_PROMETHEUS_PASSWORD").is_some());
    });
    assert!(failed >= 2, "only {failed} reads");
}

/// Run `ensure` on `state` over a copy of `store` once per read, the nth read failing: each
/// such run fails, writing nothing to the store or the state directory. The run in which no
/// read failed is handed to `succeeded`. Returns how many reads failed.
fn fail_each_read(
    state: &StateDir,
    store: &MemoryStore,
    succeeded: impl Fn(EnsureReport, &MemoryStore),
) -> usize {
    let before = listing(state.root());
    for nth in 0.. {
        let flaky = FlakyStore::new(store.snapshot(), StoreOp::Get, nth);
        let result = ensure(state, &flaky, &offline());
        if !flaky.failed() {
            succeeded(result.unwrap(), &flaky.inner);
            return nth;
        }
        assert!(result.is_err(), "read {nth} failed but ensure succeeded");
        assert_eq!(
            flaky.inner.writes(),
            0,
            "read {nth} failed, yet the store was written"
        );
        assert_eq!(
            listing(state.root()),
            before,
            "read {nth} failed, yet files changed"
        );
    }
    unreachable!("a run without a failed read ends the loop")
}

#[test]
fn a_state_dir_that_is_a_file_or_under_a_file_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, "x").unwrap();
    for root in [file.clone(), file.join("state")] {
        let state = StateDir::new(&root);
        let store = MemoryStore::new();
        let err = ensure(&state, &store, &offline()).unwrap_err();
        assert!(matches!(err, EnsureError::State(_)), "{err:?}");
        assert!(
            err.to_string().contains(&root.display().to_string())
                || err.to_string().contains(&file.display().to_string()),
            "{err}"
        );
        assert!(err.to_string().contains("not a directory"), "{err}");
        assert!(err.hint().is_some());
        assert_eq!(store.writes(), 0);

        let mut opts = offline();
        opts.dry_run = true;
        let err = ensure(&state, &store, &opts).unwrap_err();
        assert!(matches!(err, EnsureError::State(_)), "dry run: {err:?}");
        assert!(err.to_string().contains("not a directory"), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}

#[test]
fn the_pinned_binary_is_installed_from_a_mirror_then_left_alone() {
    let (tmp, state) = fresh_state();
    let mirror = tmp.path().join("mirror");
    Release::new("1.7.0").write_mirror(&mirror);
    Release::new("1.7.2").write_mirror(&mirror);
    let store = MemoryStore::new();
    put(&store, "LIVEKIT_VERSION", "v1.7.0");
    let opts = from_mirror(&mirror);

    let report = ensure(&state, &store, &opts).unwrap();
    assert!(report.actions.contains(&Action::Install {
        version: "1.7.0".to_owned(),
        replaces: None
    }));
    assert_eq!(
        report.binary,
        BinaryState::Installed {
            version: "1.7.0".to_owned()
        }
    );
    assert!(!warnings(&report).contains(&Warning::ControlPlaneOnly));
    assert!(!report.is_incomplete());
    assert!(state.livekit_bin().exists());

    let before = listing(state.root());
    let again = ensure(&state, &store, &opts).unwrap();
    assert!(again.is_noop(), "{:?}", again.actions);
    assert_eq!(listing(state.root()), before);

    put(&store, "LIVEKIT_VERSION", "1.7.2");
    let upgrade = ensure(&state, &store, &opts).unwrap();
    assert!(
        upgrade.actions.contains(&Action::Install {
            version: "1.7.2".to_owned(),
            replaces: Some("1.7.0".to_owned())
        }),
        "{:?}",
        upgrade.actions
    );
    // The version is rendered into runtime.json: the files change with it, the secret does not.
    assert!(disk_pair(&state).is_some());
    assert!(ensure(&state, &store, &opts).unwrap().is_noop());
}

#[test]
fn a_missing_mirror_still_provisions_the_files_and_says_incomplete() {
    let (tmp, state) = fresh_state();
    let store = MemoryStore::new();
    put(&store, "LIVEKIT_VERSION", "1.7.2");
    let opts = from_mirror(&tmp.path().join("no-such-mirror"));
    let report = ensure(&state, &store, &opts).unwrap();
    assert!(report.is_incomplete());
    assert_eq!(
        report.binary,
        BinaryState::Pending {
            version: "1.7.2".to_owned()
        }
    );
    let failed: Vec<_> = warnings(&report)
        .into_iter()
        .filter(|w| matches!(w, Warning::InstallFailed { .. }))
        .collect();
    assert_eq!(failed.len(), 1, "{:?}", report.warnings);
    assert_eq!(writes(&report), all_written(WriteReason::Missing));
    assert_eq!(disk_pair(&state), store_pair(&store));
    assert!(!state.livekit_bin().exists());
}

#[test]
fn a_loosened_mode_is_repaired_and_reported() {
    let (_tmp, state) = fresh_state();
    let store = MemoryStore::new();
    let first = run(&state, &store);
    let path = state.managed(ManagedFile::BackendEnv);
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let report = run(&state, &store);
    assert_ne!(report.generation, first.generation, "not republished");
    assert!(
        !report.is_noop(),
        "a write was made but the report says nothing was done"
    );
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert!(run(&state, &store).is_noop());
}

#[test]
fn live_files_with_an_invalid_secret_never_poison_the_store() {
    // An older tool wrote a 10-character secret. Adopting it would store a value every later
    // run refuses; minting over it would rotate live credentials: it is an error that names
    // the file and writes nothing, until the operator stores a valid value.
    let (_tmp, state) = fresh_state();
    let good = rendered_for(&state, &creds("APIold", S1));
    let short = Rendered {
        livekit_yaml: good.livekit_yaml.replace(S1, "tooshort10"),
        backend_env: good.backend_env.replace(S1, "tooshort10"),
        runtime_json: good.runtime_json.replace(S1, "tooshort10"),
    };
    write_plain(&state, &short);
    let store = MemoryStore::new();
    let before = listing(state.root());
    for _ in 0..2 {
        let err = ensure(&state, &store, &offline()).unwrap_err();
        let text = chain(&err);
        assert!(
            text.contains("LIVEKIT_API_SECRET") && text.contains("runtime.json"),
            "{text}"
        );
        assert!(!text.contains("tooshort10"), "{text}");
        assert!(
            err.hint()
                .unwrap()
                .contains("secrets set LIVEKIT_API_SECRET")
        );
        assert_eq!(store.writes(), 0, "an invalid or rotated value was stored");
        let mut after = listing(state.root());
        after.retain(|p, _| before.contains_key(p));
        assert_eq!(after, before);
    }
    // The operator stores a valid secret: the files are rewritten from the store.
    put(&store, "LIVEKIT_API_SECRET", S2);
    run(&state, &store);
    assert_eq!(disk_pair(&state), store_pair(&store));
    assert_eq!(get(&store, "LIVEKIT_API_SECRET").as_deref(), Some(S2));
}

#[test]
fn a_wiped_store_and_a_lost_livekit_yaml_still_adopt_what_the_backend_uses() {
    for lost in [
        vec![ManagedFile::LivekitYaml],
        vec![ManagedFile::LivekitYaml, ManagedFile::RuntimeJson],
    ] {
        let (_tmp, state) = fresh_state();
        let store = MemoryStore::new();
        run(&state, &store);
        let live = store_pair(&store).unwrap();
        for file in &lost {
            std::fs::remove_file(state.managed(*file)).unwrap();
        }
        let wiped = MemoryStore::new();
        let report = run(&state, &wiped);
        assert!(
            matches!(report.credentials, CredentialSource::Adopted { .. }),
            "{:?}",
            report.actions
        );
        assert_eq!(store_pair(&wiped), Some(live.clone()));
        assert_eq!(disk_pair(&state), Some(live));
    }
}

#[test]
fn concurrent_first_runs_agree_on_one_pair() {
    // Threads on one state directory (serialized by the state lock), and nodes of a fleet with
    // their own state directories sharing one store (agreeing through add-if-absent).
    let tmp = tempfile::tempdir().unwrap();
    let store = MemoryStore::new();
    let states: Vec<StateDir> = (0..6)
        .map(|i| StateDir::new(tmp.path().join(format!("node{}", i % 3))))
        .collect();
    let reports: Vec<EnsureReport> = std::thread::scope(|s| {
        let handles: Vec<_> = states
            .iter()
            .map(|state| s.spawn(|| run(state, &store)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let pair = store_pair(&store).unwrap();
    assert_eq!(store.writes(), 2, "more than one pair was stored");
    assert!(reports.iter().all(|r| r.api_key == Some(pair.0.clone())));
    let minted = reports
        .iter()
        .filter(|r| r.credentials == CredentialSource::Minted)
        .count();
    assert!(minted <= 1, "{minted} runs claim to have minted the pair");
    for state in &states {
        assert_eq!(disk_pair(state), Some(pair.clone()));
        assert!(run(state, &store).is_noop());
    }
}

/// A run reports its phases in order (the daemon's `status.provisioning.progress`); a converged
/// rerun publishes nothing but still passes through them.
#[test]
fn a_run_reports_its_phases_in_order() {
    use std::sync::Mutex;

    use livekit_provision::ensure::Phase;

    let (_tmp, state) = fresh_state();
    let store = MemoryStore::new();
    let seen = Mutex::new(Vec::new());
    let on_phase = |p: Phase| seen.lock().unwrap().push(p);
    let mut opts = offline();
    opts.on_phase = &on_phase;
    ensure(&state, &store, &opts).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [Phase::Resolving, Phase::Rendering, Phase::Publishing]
    );
    let mut dry = offline();
    dry.dry_run = true;
    dry.on_phase = &on_phase;
    seen.lock().unwrap().clear();
    ensure(&state, &store, &dry).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [Phase::Resolving, Phase::Rendering],
        "a dry run publishes nothing"
    );
}
