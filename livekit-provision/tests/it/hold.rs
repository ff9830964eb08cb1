//! The crash-loop take-back (`hold.rs`, docs/DESIGN.md 4.11): the files livekit-server served on
//! are published again, the bad set is held — `ensure` never republishes it, `check` says why —
//! until an input changes; and never across a change of keys, which could lock participants
//! out.

use std::time::{Duration, SystemTime};

use livekit_provision::check::{CheckOptions, Code};
use livekit_provision::hold::{self, HoldError};
use livekit_provision::resolve::Warning;
use livekit_provision::rotate::{Schedule, stage};
use livekit_provision::store::MemoryStore;
use livekit_provision::{StateDir, check, ensure};

use crate::support::provision::{fresh_state, offline};

fn now() -> SystemTime {
    livekit_provision::clock::system()
}

fn live(state: &StateDir) -> String {
    hold::live_generation(state).unwrap()
}

fn set_port(state: &StateDir, port: u16) {
    std::fs::write(state.settings_file(), format!("port: {port}\n")).unwrap();
}

/// A node whose generation 1 served, then generation 2 published with another port.
fn served_then_changed() -> (tempfile::TempDir, StateDir, MemoryStore) {
    let (tmp, state) = fresh_state();
    let store = MemoryStore::new();
    ensure(&state, &store, &offline()).unwrap();
    hold::record_served(&state, &live(&state), now()).unwrap();
    set_port(&state, 17_001);
    ensure(&state, &store, &offline()).unwrap();
    (tmp, state, store)
}

#[test]
fn a_crash_looping_set_is_taken_back_and_held_until_an_input_changes() {
    let (_tmp, state, store) = served_then_changed();
    let (served, _) = hold::served(&state).unwrap();
    let bad = live(&state);
    assert_ne!(bad, served);
    let livekit_yaml = state.managed(livekit_provision::ManagedFile::LivekitYaml);
    let bad_text = std::fs::read_to_string(&livekit_yaml).unwrap();
    assert!(bad_text.contains("port: 17001"), "{bad_text}");

    let held = hold::take_back(
        &state,
        "listen tcp :7881: bind: in use\nmore",
        now(),
        |_| {},
    )
    .unwrap();
    assert_eq!(
        (held.generation.as_str(), held.served.as_str()),
        (bad.as_str(), served.as_str())
    );
    assert_eq!(held.reason, "listen tcp :7881: bind: in use");
    assert_eq!(live(&state), held.republished);
    assert!(
        !std::fs::read_to_string(&livekit_yaml)
            .unwrap()
            .contains("port: 17001")
    );
    assert_eq!(hold::held(&state), Some(held.clone()));
    // The bad generation is kept for inspection.
    let kept = state.generations_dir().join(&bad).join("livekit.yaml");
    assert_eq!(std::fs::read_to_string(kept).unwrap(), bad_text);

    // `check` says why the files differ from the inputs, instead of asking for an `ensure`.
    let report = check(&state, Some(&store), &CheckOptions::default());
    assert_eq!(report.with_code(Code::HeldBack).count(), 1, "{report:?}");
    assert_eq!(report.with_code(Code::Drift).count(), 0, "{report:?}");

    // A rerun publishes nothing and says why.
    let rerun = ensure(&state, &store, &offline()).unwrap();
    assert!(rerun.is_noop(), "{:?}", rerun.actions);
    assert!(
        rerun.warnings.iter().any(
            |w| matches!(&w.warning, Warning::HeldBack { generation, .. } if *generation == bad)
        ),
        "{:?}",
        rerun.warnings
    );
    assert_eq!(live(&state), held.republished);

    // An input changes: published as usual, and the hold ends.
    set_port(&state, 17_002);
    let fixed = ensure(&state, &store, &offline()).unwrap();
    assert!(!fixed.is_noop());
    assert_eq!(hold::held(&state), None);
    assert!(
        std::fs::read_to_string(&livekit_yaml)
            .unwrap()
            .contains("port: 17002")
    );
}

#[test]
fn nothing_is_taken_back_across_a_change_of_keys() {
    let (_tmp, state) = fresh_state();
    let store = MemoryStore::new();
    ensure(&state, &store, &offline()).unwrap();
    hold::record_served(&state, &live(&state), now()).unwrap();
    // A staged key: generation 2's `keys:` lists one more pair than generation 1's.
    let grace = Schedule::new(Some(Duration::from_secs(3600)), None).unwrap();
    stage(&state, &store, &grace, now(), |_| {}).unwrap();
    ensure(&state, &store, &offline()).unwrap();
    let current = live(&state);
    match hold::take_back(&state, "exited", now(), |_| {}) {
        Err(HoldError::KeysDiffer { current: c, .. }) => assert_eq!(c, current),
        other => panic!("expected a refusal across a key change, got {other:?}"),
    }
    assert_eq!(live(&state), current, "something was published");
    assert_eq!(hold::held(&state), None);
}

#[test]
fn nothing_is_taken_back_from_the_generation_that_served() {
    let (_tmp, state) = fresh_state();
    let store = MemoryStore::new();
    ensure(&state, &store, &offline()).unwrap();
    let served = live(&state);
    hold::record_served(&state, &served, now()).unwrap();
    match hold::take_back(&state, "exited", now(), |_| {}) {
        Err(HoldError::SameGeneration(g)) => assert_eq!(g, served),
        other => panic!("expected nothing to take back, got {other:?}"),
    }
    assert_eq!(hold::held(&state), None);
}
