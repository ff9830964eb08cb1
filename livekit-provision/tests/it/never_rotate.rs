//! Invariant 1, "secrets never rotate by accident", as properties: from arbitrary starting
//! states and through arbitrary sequences of runs and operator events, the key/secret fixed by
//! the first successful run never changes, and every successful run leaves a consistent set of
//! files equal to the store. Then crash safety: a run stopped at each publish step or by a
//! failure of each store call is followed by a clean run that keeps what was stored or live.
//! Last, `render` of resolved inputs always parses back consistent.

use std::cell::Cell;
use std::io;
use std::time::{Duration, UNIX_EPOCH};

use livekit_provision::publish::{
    FixedPath, PublishOptions, StateLock, prepare, publish, read_current,
};
use livekit_provision::render::{Rendered, render};
use livekit_provision::resolve::{ResolveContext, resolve};
use livekit_provision::store::{MemoryStore, StoreOp};
use livekit_provision::triple::DiskTriple;
use livekit_provision::{
    Credentials, EnsureOptions, ExtraOverlay, ManagedFile, SecretStore, Settings, StateDir, ensure,
};
use proptest::prelude::*;

use crate::support::provision::{
    FlakyStore, creds, disk_pair, fresh_state, get, offline, put, rendered_for, store_pair,
    write_plain,
};

type Pair = (String, String);

/// Two distinct valid pairs: what the store starts with, and what the files start with.
fn pair(which: u8) -> Credentials {
    match which {
        0 => creds("APIstoreA", "AaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAaAa"),
        _ => creds("APIdiskB", "BbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBbBb"),
    }
}

fn plain(c: &Credentials) -> Pair {
    (c.key.to_string(), c.secret.expose().to_owned())
}

#[derive(Debug, Clone, Copy)]
enum StoreStart {
    Empty,
    Pair,
    KeyOnly,
    SecretOnly,
}

#[derive(Debug, Clone, Copy)]
enum DiskStart {
    Nothing,
    /// Published by us, consistent.
    Consistent,
    /// Plain files of an older tool, consistent.
    LegacyConsistent,
    /// `livekit.yaml` holds the disk pair, the other two another one (the field bug).
    Inconsistent,
    /// A consistent set with one file missing.
    Partial(ManagedFile),
    /// Plain files of garbage at every fixed path.
    Garbage,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Ensure,
    SetPort(u16),
    Delete(ManagedFile),
    Corrupt(ManagedFile),
    /// Wipe the store, but only when the files on disk are consistent (else it would be a
    /// legitimate loss of every copy).
    WipeStoreIfConsistent,
}

fn managed_file() -> impl Strategy<Value = ManagedFile> {
    prop::sample::select(ManagedFile::ALL.to_vec())
}

fn store_start() -> impl Strategy<Value = StoreStart> {
    prop_oneof![
        Just(StoreStart::Empty),
        Just(StoreStart::Pair),
        Just(StoreStart::KeyOnly),
        Just(StoreStart::SecretOnly),
    ]
}

fn disk_start() -> impl Strategy<Value = DiskStart> {
    prop_oneof![
        Just(DiskStart::Nothing),
        Just(DiskStart::Consistent),
        Just(DiskStart::LegacyConsistent),
        Just(DiskStart::Inconsistent),
        managed_file().prop_map(DiskStart::Partial),
        Just(DiskStart::Garbage),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => Just(Event::Ensure),
        1 => (7000u16..7800).prop_map(Event::SetPort),
        1 => managed_file().prop_map(Event::Delete),
        1 => managed_file().prop_map(Event::Corrupt),
        1 => Just(Event::WipeStoreIfConsistent),
    ]
}

fn set_up(state: &StateDir, store: &MemoryStore, s: StoreStart, d: DiskStart, same: bool) {
    let a = pair(0);
    let b = if same { pair(0) } else { pair(1) };
    match s {
        StoreStart::Empty => {}
        StoreStart::Pair => {
            put(store, "LIVEKIT_API_KEY", a.key.as_str());
            put(store, "LIVEKIT_API_SECRET", a.secret.expose());
        }
        StoreStart::KeyOnly => put(store, "LIVEKIT_API_KEY", a.key.as_str()),
        StoreStart::SecretOnly => put(store, "LIVEKIT_API_SECRET", a.secret.expose()),
    }
    let files = rendered_for(state, &b);
    match d {
        DiskStart::Nothing => {}
        DiskStart::Consistent => plant(state, &files),
        DiskStart::LegacyConsistent => write_plain(state, &files),
        DiskStart::Inconsistent => {
            let other = rendered_for(state, &creds("APIthird", &"C".repeat(40)));
            plant(
                state,
                &Rendered {
                    livekit_yaml: files.livekit_yaml.clone(),
                    ..other
                },
            );
        }
        DiskStart::Partial(missing) => {
            plant(state, &files);
            std::fs::remove_file(state.managed(missing)).unwrap();
        }
        DiskStart::Garbage => write_plain(
            state,
            &Rendered {
                livekit_yaml: "keys: [".to_owned(),
                backend_env: "=\n".to_owned(),
                runtime_json: "{".to_owned(),
            },
        ),
    }
}

fn plant(state: &StateDir, rendered: &Rendered) {
    prepare(state).unwrap();
    let lock = StateLock::acquire(state, |_| {}).unwrap();
    publish(state, &lock, rendered, &PublishOptions::default()).unwrap();
}

/// What the first run must settle on, when it is determined by the starting state.
fn expected_first(s: StoreStart, d: DiskStart, same: bool) -> Option<Pair> {
    let a = plain(&pair(0));
    let b = plain(&if same { pair(0) } else { pair(1) });
    let disk_live = matches!(
        d,
        DiskStart::Consistent
            | DiskStart::LegacyConsistent
            | DiskStart::Inconsistent
            | DiskStart::Partial(ManagedFile::BackendEnv | ManagedFile::RuntimeJson)
    );
    match s {
        StoreStart::Pair => Some(a),
        StoreStart::Empty if disk_live => Some(b),
        // A half in the store is kept; the other half is adopted only from a matching disk pair.
        StoreStart::KeyOnly | StoreStart::SecretOnly if disk_live && same => Some(a),
        _ => None,
    }
}

fn apply(state: &StateDir, event: Event) {
    match event {
        // A run is the caller's; the wipe replaces the store, which the caller owns.
        Event::Ensure | Event::WipeStoreIfConsistent => {}
        Event::SetPort(port) => {
            std::fs::write(state.settings_file(), format!("port: {port}\n")).unwrap();
        }
        Event::Delete(file) => {
            let _ = std::fs::remove_file(state.managed(file));
        }
        Event::Corrupt(file) => {
            // Through the link when there is one: the live generation's file is damaged.
            if state.managed(file).exists() {
                std::fs::write(state.managed(file), "\u{0}garbage: [").unwrap();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_first_settled_pair_never_changes(
        s in store_start(),
        d in disk_start(),
        same in any::<bool>(),
        events in prop::collection::vec(event(), 1..6),
    ) {
        let (_tmp, state) = fresh_state();
        let mut store = MemoryStore::new();
        set_up(&state, &store, s, d, same);
        let mut settled: Option<Pair> = None;
        // Events stack up between runs; every sequence starts and ends with a run.
        let runs = std::iter::once(Event::Ensure).chain(events).chain(std::iter::once(Event::Ensure));
        let mut since_last_run = Vec::new();
        for event in runs {
            match event {
                Event::Ensure => {}
                Event::WipeStoreIfConsistent => {
                    if disk_pair(&state).is_some() {
                        store = MemoryStore::with_values(store.snapshot().into_iter().filter(
                            |(n, _)| !matches!(n.as_str(), "LIVEKIT_API_KEY" | "LIVEKIT_API_SECRET"),
                        ));
                    }
                    since_last_run.push(event);
                    continue;
                }
                other => {
                    apply(&state, other);
                    since_last_run.push(other);
                    continue;
                }
            }
            let event = std::mem::take(&mut since_last_run);
            // Every copy destroyed (store wiped, then each file deleted or corrupted): a new
            // pair is the only way on, and not an accident.
            if store_pair(&store).is_none() && !any_credentials_on_disk(&state) {
                settled = None;
            }
            let report = ensure(&state, &store, &offline())
                .map_err(|e| TestCaseError::fail(format!("{event:?}: ensure failed: {e}")))?;
            let stored = store_pair(&store);
            prop_assert!(stored.is_some(), "{event:?}: the store holds no pair");
            prop_assert_eq!(&disk_pair(&state), &stored, "{:?}: files disagree with the store", event);
            match &settled {
                None => {
                    if let Some(want) = expected_first(s, d, same) {
                        prop_assert_eq!(&stored, &Some(want), "first run");
                    }
                    settled = stored;
                }
                Some(pair) => prop_assert_eq!(
                    &stored, &Some(pair.clone()), "{:?} rotated the pair ({:?})", event, report.actions
                ),
            }
        }
    }
}

/// Whether any file at a fixed path still parses with a key and secret.
fn any_credentials_on_disk(state: &StateDir) -> bool {
    let disk = DiskTriple::read(state);
    disk.livekit_yaml
        .valid()
        .is_some_and(|l| !l.keys.is_empty())
        || disk.runtime_json.valid().is_some()
        || disk
            .backend_env
            .valid()
            .and_then(livekit_provision::render::BackendEnv::credentials)
            .is_some()
}

/// Run `ensure` with a publish hook that fails at its `nth` checkpoint. Returns whether the hook
/// fired (false: the run got past all its checkpoints).
fn ensure_crashing_at(state: &StateDir, store: &dyn SecretStore, nth: usize) -> bool {
    let seen = Cell::new(0usize);
    let fired = Cell::new(false);
    let hook = |_| {
        let n = seen.get();
        seen.set(n + 1);
        if n == nth {
            fired.set(true);
            Err(io::Error::other("simulated crash"))
        } else {
            Ok(())
        }
    };
    let opts = EnsureOptions {
        publish: PublishOptions {
            checkpoint: Some(&hook),
            ..PublishOptions::default()
        },
        ..offline()
    };
    let result = ensure(state, store, &opts);
    assert_eq!(result.is_err(), fired.get(), "{:?}", result.err());
    fired.get()
}

/// What is live on disk now: nothing, or a consistent pair. Never a mix.
fn live_or_nothing(state: &StateDir) -> Option<Pair> {
    let disk = DiskTriple::read(state);
    let current = read_current(state);
    // On first provisioning a link placed before `current` exists dangles: still "nothing".
    let nothing = ManagedFile::ALL.iter().all(|f| {
        matches!(
            current.file(*f),
            FixedPath::Missing | FixedPath::OursDangling
        )
    });
    if nothing {
        return None;
    }
    let pair = disk_pair(state);
    assert!(pair.is_some(), "a crash left a mixed or torn set: {disk:?}");
    pair
}

/// After a crash, a clean run must keep what was stored, else what was live, else anything.
fn recover_and_check(
    state: &StateDir,
    store: &MemoryStore,
    stored: Option<String>,
    live: Option<Pair>,
) {
    let report = ensure(state, store, &offline()).unwrap();
    let after = store_pair(store).expect("a pair after the clean run");
    assert_eq!(disk_pair(state), Some(after.clone()));
    if let Some(secret) = stored {
        assert_eq!(
            after.1, secret,
            "the stored secret changed: {:?}",
            report.actions
        );
    } else if let Some(live) = live {
        assert_eq!(
            after, live,
            "the live pair was not kept: {:?}",
            report.actions
        );
    }
    assert!(ensure(state, store, &offline()).unwrap().is_noop());
}

/// Scenarios to crash: first provisioning, a re-render, and the one-time import of legacy files.
fn scenario(kind: u8) -> (tempfile::TempDir, StateDir, MemoryStore) {
    let (tmp, state) = fresh_state();
    let store = MemoryStore::new();
    match kind {
        0 => {}
        1 => {
            ensure(&state, &store, &offline()).unwrap();
            std::fs::write(state.settings_file(), "port: 7990\n").unwrap();
        }
        _ => write_plain(&state, &rendered_for(&state, &pair(1))),
    }
    (tmp, state, store)
}

#[test]
fn a_crash_at_any_publish_step_never_rotates() {
    for kind in 0..3 {
        let mut fired_any = 0;
        for nth in 0.. {
            let (_tmp, state, store) = scenario(kind);
            // A legacy import is the documented exception to "never a mix" (the links are
            // placed one by one): there, what was live is the plain set from before.
            let before = disk_pair(&state);
            if !ensure_crashing_at(&state, &store, nth) {
                break;
            }
            fired_any += 1;
            let stored = get(&store, "LIVEKIT_API_SECRET");
            // Store before use: whatever the crashed run rendered was stored first.
            assert!(
                stored.is_some(),
                "kind {kind}, step {nth}: files may use an unstored secret"
            );
            let live = if kind == 2 {
                before
            } else {
                live_or_nothing(&state)
            };
            if let Some(live) = &live {
                assert_eq!(Some(&live.1), stored.as_ref(), "kind {kind}, step {nth}");
            }
            recover_and_check(&state, &store, stored, live);
        }
        assert!(fired_any >= 8, "kind {kind}: only {fired_any} checkpoints");
    }
}

#[test]
fn a_store_failure_at_any_call_never_rotates() {
    for op in [StoreOp::Get, StoreOp::Add] {
        for kind in 0..4u8 {
            let mut fired_any = 0;
            for nth in 0.. {
                let (_tmp, state, seed) = scenario(kind.min(2));
                if kind == 3 {
                    // A wiped store beside a consistent set: adoption, interrupted.
                    ensure(&state, &seed, &offline()).unwrap();
                }
                let values = if kind == 3 {
                    Vec::new()
                } else {
                    seed.snapshot().into_iter().collect()
                };
                let live = disk_pair(&state);
                let flaky = FlakyStore::new(values, op, nth);
                let result = ensure(&state, &flaky, &offline());
                if !flaky.failed() {
                    result.unwrap();
                    break;
                }
                fired_any += 1;
                assert!(result.is_err(), "{op:?} {nth} failed but ensure succeeded");
                // Nothing was published on a failed store call.
                assert_eq!(disk_pair(&state), live, "{op:?} {nth}: files changed");
                let stored = get(&flaky.inner, "LIVEKIT_API_SECRET");
                recover_and_check(&state, &flaky.inner, stored, live);
            }
            // A re-render with a full store only reads it.
            let adds = !(op == StoreOp::Add && kind == 1);
            assert_eq!(
                fired_any >= 1,
                adds,
                "{op:?} kind {kind}: {fired_any} failures"
            );
        }
    }
}

/// Render inputs from a store holding arbitrary valid values.
fn resolved_store() -> impl Strategy<Value = (MemoryStore, Settings)> {
    let key = "[A-Za-z0-9_-]{1,40}";
    let secret = "[!#%&()*+,./0-9:;<=>?@A-Z^_a-z{|}~-]{32,60}";
    (
        key,
        secret,
        (
            prop::option::of((key, secret)),
            prop::option::of((key, secret)),
        ),
        prop::option::of((any::<bool>(), 0u32..20, 0u32..20, 0u32..40).prop_map(
            |(v, major, minor, patch)| {
                format!("{}{major}.{minor}.{patch}", if v { "v" } else { "" })
            },
        )),
        prop::option::of(prop_oneof![
            any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string()),
            any::<[u16; 8]>().prop_map(|s| std::net::Ipv6Addr::from(s).to_string()),
        ]),
        (1024u16..7000, 0u16..100),
    )
        .prop_map(
            |(key, secret, (previous, next), version, node_ip, (port, offset))| {
                let store = MemoryStore::new();
                put(&store, "LIVEKIT_API_KEY", &key);
                put(&store, "LIVEKIT_API_SECRET", &secret);
                if let Some((pkey, psecret)) = previous {
                    put(&store, "LIVEKIT_API_KEY_PREVIOUS", &pkey);
                    put(&store, "LIVEKIT_API_SECRET_PREVIOUS", &psecret);
                    put(
                        &store,
                        "LIVEKIT_ROTATION_GRACE_UNTIL",
                        &u64::MAX.to_string(),
                    );
                }
                if let Some((nkey, nsecret)) = next {
                    put(&store, "LIVEKIT_API_KEY_NEXT", &nkey);
                    put(&store, "LIVEKIT_API_SECRET_NEXT", &nsecret);
                }
                if let Some(v) = version {
                    put(&store, "LIVEKIT_VERSION", &v);
                }
                if let Some(ip) = node_ip {
                    put(&store, "LIVEKIT_NODE_IP", &ip);
                }
                let settings = Settings {
                    port,
                    rtc_tcp_port: port + 100 + offset,
                    backend_port: port + 300 + offset,
                    ..Settings::default()
                };
                (store, settings)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn rendered_resolutions_parse_back_consistent((store, settings) in resolved_store()) {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path());
        let empty = DiskTriple::read(&state);
        let resolution = resolve(
            &store,
            &ResolveContext {
                state: &state,
                settings: &settings,
                extra: &ExtraOverlay::default(),
                disk: &empty,
                local_addresses: &[],
                now: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
                dry_run: false,
            },
        )
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(
            resolution.inputs.credentials.key.as_str(),
            get(&store, "LIVEKIT_API_KEY").unwrap()
        );
        write_plain(&state, &render(&resolution.inputs));
        let disk = DiskTriple::read(&state);
        prop_assert_eq!(disk.consistent_credentials(), Some(resolution.inputs.credentials.clone()));
        prop_assert_eq!(disk.live_credentials().map(|(c, _)| c), Some(resolution.inputs.credentials.clone()));
        prop_assert_eq!(disk.disagreement(&resolution.inputs.credentials), None);
        let inputs = &resolution.inputs;
        // A key is listed once (the staged pair wins over a previous one of the same key).
        let previous = inputs.previous.as_ref().filter(|p| inputs.next.as_ref().is_none_or(|n| n.key != p.key));
        for other in [previous, inputs.next.as_ref()].into_iter().flatten() {
            prop_assert!(disk.livekit_yaml.valid().unwrap().keys.contains(other));
            prop_assert!(other.key != inputs.credentials.key);
        }
    }
}
