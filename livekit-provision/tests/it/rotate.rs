//! Key epochs (`rotate.rs`, `keyring.rs`): stage → promote → grace → retire, each step safe for
//! calls and each surviving a kill between any two of its store writes. A kill is a failure of
//! the store at its nth `set` (everything before it written, nothing after): the store must
//! then read as before the step or as after it — `livekit.yaml` unchanged by a promotion, the
//! signers on the old pair or the new one, never on a pair livekit-server does not know — and a
//! rerun finishes the step.

use std::time::{Duration, SystemTime};

use livekit_provision::ensure::Action;
use livekit_provision::rotate::{
    self, Epoch, GraceExtension, RotateAction, RotateError, Schedule, extend_grace, promote,
    rotate_now, stage,
};
use livekit_provision::store::{MemoryStore, StoreOp};
use livekit_provision::triple::DiskTriple;
use livekit_provision::{ManagedFile, SecretStore, StateDir, ensure};

use crate::support::provision::{FlakyStore, fresh_state, get, offline, put};

const HOUR: Duration = Duration::from_secs(3600);

type Pair = (String, String);

fn now() -> SystemTime {
    livekit_provision::clock::system()
}

fn hour_grace() -> Schedule {
    Schedule::new(Some(HOUR), None).unwrap()
}

/// A provisioned node with a pair staged and published: what a promotion starts from.
fn staged_node() -> (tempfile::TempDir, StateDir, MemoryStore) {
    staged_node_after(0)
}

/// [`staged_node`], after `earlier` complete rotations whose graces are over (so the store
/// holds a stale previous pair and a grace end in the past).
fn staged_node_after(earlier: u32) -> (tempfile::TempDir, StateDir, MemoryStore) {
    let (tmp, state) = fresh_state();
    let store = MemoryStore::new();
    ensure(&state, &store, &offline()).unwrap();
    for _ in 0..earlier {
        let long_ago = now() - 3 * HOUR;
        stage(&state, &store, &hour_grace(), long_ago, |_| {}).unwrap();
        ensure(&state, &store, &offline()).unwrap();
        promote(&state, &store, long_ago, |_| {}).unwrap();
        ensure(&state, &store, &offline()).unwrap();
    }
    let outcome = stage(&state, &store, &hour_grace(), now(), |_| {}).unwrap();
    assert_eq!(outcome.action, RotateAction::Staged);
    ensure(&state, &store, &offline()).unwrap();
    (tmp, state, store)
}

fn pair(store: &dyn SecretStore, key: &str, secret: &str) -> Pair {
    (get(store, key).unwrap(), get(store, secret).unwrap())
}

fn current(store: &dyn SecretStore) -> Pair {
    pair(store, "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
}

fn next(store: &dyn SecretStore) -> Pair {
    pair(store, "LIVEKIT_API_KEY_NEXT", "LIVEKIT_API_SECRET_NEXT")
}

/// What the signers' files hold (`backend.env`, equal to `runtime.json` when consistent).
fn signers(state: &StateDir) -> Pair {
    let creds = DiskTriple::read(state)
        .consistent_credentials()
        .expect("the three files agree");
    (creds.key.to_string(), creds.secret.expose().to_owned())
}

fn livekit_yaml(state: &StateDir) -> Vec<u8> {
    std::fs::read(state.managed(ManagedFile::LivekitYaml)).unwrap()
}

#[test]
fn a_rotation_goes_stable_staged_grace_stable_and_signers_switch_only_at_promotion() {
    let (_tmp, state) = fresh_state();
    let store = MemoryStore::new();
    let t0 = now();
    ensure(&state, &store, &offline()).unwrap();
    let first = current(&store);
    assert!(matches!(
        rotate::epoch(&store, t0).unwrap(),
        Epoch::Stable { current_key: Some(ref k) } if *k == first.0
    ));

    let schedule = Schedule::new(Some(HOUR), Some(3 * HOUR)).unwrap();
    let staged = stage(&state, &store, &schedule, t0, |_| {}).unwrap();
    let second = next(&store);
    let Epoch::Staged {
        current_key,
        next_key,
        grace_secs,
        deadline,
    } = &staged.epoch
    else {
        panic!("{staged:?}");
    };
    assert_eq!((current_key, next_key), (&first.0, &second.0));
    assert_eq!(*grace_secs, 3600);
    assert!(deadline.is_some());
    // The current pair is untouched; ensure lists both keys; every signer keeps the first.
    assert_eq!(current(&store), first);
    ensure(&state, &store, &offline()).unwrap();
    assert_eq!(signers(&state), first);
    let keys = DiskTriple::read(&state)
        .livekit_yaml
        .valid()
        .unwrap()
        .keys
        .clone();
    assert_eq!(keys.len(), 2);
    let staged_yaml = livekit_yaml(&state);

    // A rerun stages nothing new: nothing is minted twice.
    let again = stage(&state, &store, &hour_grace(), t0, |_| {}).unwrap();
    assert_eq!(again.action, RotateAction::AlreadyStaged);
    assert_eq!(next(&store), second);

    let promoted = promote(&state, &store, t0, |_| {}).unwrap();
    assert_eq!(promoted.action, RotateAction::Promoted);
    let Epoch::Grace {
        previous_key,
        until,
        ..
    } = &promoted.epoch
    else {
        panic!("{promoted:?}");
    };
    assert_eq!(previous_key, &first.0);
    assert_eq!(
        humantime::format_rfc3339_seconds(*until).to_string(),
        humantime::format_rfc3339_seconds(t0 + HOUR).to_string()
    );
    assert_eq!(current(&store), second);
    // Nothing staged any more: the next pair equals the current one.
    assert_eq!(next(&store), second);
    let report = ensure(&state, &store, &offline()).unwrap();
    assert_eq!(signers(&state), second);
    assert_eq!(
        livekit_yaml(&state),
        staged_yaml,
        "a promotion changes no byte"
    );
    assert!(
        !report.actions.iter().any(|a| matches!(
            a,
            Action::WriteFile {
                file: ManagedFile::LivekitYaml,
                ..
            }
        )),
        "{report:?}"
    );
    // Promoting again does nothing.
    let rerun = promote(&state, &store, t0, |_| {}).unwrap();
    assert_eq!(rerun.action, RotateAction::NothingStaged);

    // Retired when the grace is over: the first key leaves livekit.yaml.
    let later = t0 + 2 * HOUR;
    assert!(matches!(
        rotate::epoch(&store, later).unwrap(),
        Epoch::Stable { .. }
    ));
    ensure(
        &state,
        &store,
        &livekit_provision::EnsureOptions {
            now: later,
            ..offline()
        },
    )
    .unwrap();
    let keys = DiskTriple::read(&state)
        .livekit_yaml
        .valid()
        .unwrap()
        .keys
        .clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].key.as_str(), second.0);
}

#[test]
fn a_kill_at_every_write_of_a_promotion_reads_as_before_or_after() {
    // A first rotation (five writes), and one after an earlier rotation (six: its stale grace
    // end is cleared first).
    for (earlier, writes) in [(0, 5), (1, 6)] {
        let (kills, after) = kill_every_promotion_write(earlier, writes);
        eprintln!(
            "promotion after {earlier} earlier rotation(s): {kills} kills landed, {after} after the commit point"
        );
    }
}

/// Kill a promotion at each of its writes in turn; the kills that landed, and how many of them
/// after the commit point.
fn kill_every_promotion_write(earlier: u32, writes: usize) -> (usize, usize) {
    let mut kills = 0;
    let mut after = 0;
    for nth in 0.. {
        let (_tmp, state, seed) = staged_node_after(earlier);
        let before = current(&seed);
        let promoted = next(&seed);
        let staged_yaml = livekit_yaml(&state);
        let flaky = FlakyStore::new(seed.snapshot(), StoreOp::Set, nth);
        let result = promote(&state, &flaky, now(), |_| {});
        if !flaky.failed() {
            assert_eq!(result.unwrap().action, RotateAction::Promoted);
            assert_eq!(nth, writes, "the promotion's writes");
            break;
        }
        kills += 1;
        assert!(result.is_err(), "write {nth} failed but promote succeeded");
        let store = &flaky.inner;
        // The store reads as one of the two states, and ensure publishes one of them.
        let epoch = rotate::epoch(store, now()).unwrap();
        ensure(&state, store, &offline()).unwrap();
        assert_eq!(
            livekit_yaml(&state),
            staged_yaml,
            "write {nth}: livekit.yaml changed"
        );
        match epoch {
            Epoch::Staged { .. } => assert_eq!(signers(&state), before, "write {nth}"),
            Epoch::Grace { .. } => {
                after += 1;
                assert_eq!(signers(&state), promoted, "write {nth}");
            }
            other => panic!("write {nth}: {other:?}"),
        }
        // A rerun finishes it: the store then holds exactly the promoted pair.
        let rerun = promote(&state, store, now(), |_| {}).unwrap();
        assert_eq!(rerun.action, RotateAction::Promoted, "write {nth}");
        assert_eq!(current(store), promoted, "write {nth}");
        ensure(&state, store, &offline()).unwrap();
        assert_eq!(signers(&state), promoted);
        assert_eq!(livekit_yaml(&state), staged_yaml);
        assert!(ensure(&state, store, &offline()).unwrap().is_noop());
    }
    assert_eq!(kills, writes, "a kill must land at every write");
    assert_eq!(after, 1, "exactly one write lies after the commit point");
    (kills, after)
}

#[test]
fn a_kill_at_every_write_of_a_staging_stages_nothing_or_the_pair() {
    let mut kills = 0;
    for nth in 0.. {
        let (_tmp, state) = fresh_state();
        let seed = MemoryStore::new();
        ensure(&state, &seed, &offline()).unwrap();
        let first = current(&seed);
        let flaky = FlakyStore::new(seed.snapshot(), StoreOp::Set, nth);
        let result = stage(&state, &flaky, &hour_grace(), now(), |_| {});
        if !flaky.failed() {
            assert_eq!(result.unwrap().action, RotateAction::Staged);
            assert!(nth >= 4, "a staging is four writes, saw {nth}");
            break;
        }
        kills += 1;
        let store = &flaky.inner;
        // Killed before the key: nothing is staged; the signers never move.
        assert!(matches!(
            rotate::epoch(store, now()).unwrap(),
            Epoch::Stable { .. }
        ));
        ensure(&state, store, &offline()).unwrap();
        assert_eq!(signers(&state), first);
        assert_eq!(
            DiskTriple::read(&state)
                .livekit_yaml
                .valid()
                .unwrap()
                .keys
                .len(),
            1
        );
        let rerun = stage(&state, store, &hour_grace(), now(), |_| {}).unwrap();
        assert_eq!(rerun.action, RotateAction::Staged);
        assert_eq!(current(store), first);
    }
    assert_eq!(kills, 4, "a kill must land at every write");
    eprintln!("staging: {kills} kills landed");
}

#[test]
fn a_kill_at_every_write_of_a_forced_rotation_reads_as_before_or_after() {
    let mut kills = 0;
    for nth in 0.. {
        let (_tmp, state) = fresh_state();
        let seed = MemoryStore::new();
        ensure(&state, &seed, &offline()).unwrap();
        let first = current(&seed);
        let flaky = FlakyStore::new(seed.snapshot(), StoreOp::Set, nth);
        let result = rotate_now(&state, &flaky, &hour_grace(), now(), |_| {});
        if !flaky.failed() {
            assert_eq!(result.unwrap().action, RotateAction::Promoted);
            break;
        }
        kills += 1;
        let store = &flaky.inner;
        ensure(&state, store, &offline()).unwrap();
        let signing = signers(&state);
        let listed = DiskTriple::read(&state)
            .livekit_yaml
            .valid()
            .unwrap()
            .keys
            .clone();
        // Whatever signs is a pair livekit.yaml lists, and it is the first pair or the new one.
        assert!(
            listed
                .iter()
                .any(|c| (c.key.to_string(), c.secret.expose().to_owned()) == signing),
            "write {nth}"
        );
        if signing != first {
            assert_eq!(
                Some(signing.clone()),
                get(store, "LIVEKIT_API_KEY_NEXT").zip(get(store, "LIVEKIT_API_SECRET_NEXT"))
            );
        }
        let rerun = rotate_now(&state, store, &hour_grace(), now(), |_| {}).unwrap();
        assert_eq!(rerun.action, RotateAction::Promoted);
        ensure(&state, store, &offline()).unwrap();
        assert_ne!(
            signers(&state),
            first,
            "write {nth}: the rerun did not rotate"
        );
    }
    assert_eq!(kills, 9, "a kill must land at every write");
    eprintln!("forced rotation: {kills} kills landed");
}

#[test]
fn every_rotation_command_finishes_a_promotion_stopped_half_way() {
    // The store as a promotion killed between the secret and the key leaves it.
    let (_tmp, state, store) = staged_node();
    let (k1, s1) = current(&store);
    let (k2, s2) = next(&store);
    put(&store, "LIVEKIT_API_SECRET_PREVIOUS", &s1);
    put(&store, "LIVEKIT_API_KEY_PREVIOUS", &k1);
    let until = livekit_provision::clock::system() + HOUR;
    let until_secs = until
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    put(
        &store,
        "LIVEKIT_ROTATION_GRACE_UNTIL",
        &until_secs.to_string(),
    );
    put(&store, "LIVEKIT_API_SECRET", &s2);
    // Read as done, by resolution and by `epoch`: no signer gets (k1, s2).
    assert!(matches!(
        rotate::epoch(&store, now()).unwrap(),
        Epoch::Grace { ref current_key, .. } if *current_key == k2
    ));
    ensure(&state, &store, &offline()).unwrap();
    assert_eq!(signers(&state), (k2.clone(), s2.clone()));
    assert_eq!(
        get(&store, "LIVEKIT_API_KEY").unwrap(),
        k1,
        "reading wrote nothing"
    );
    // `check --fleet` compares against the pair as it reads.
    let fleet = livekit_provision::fleet_check(&state, &store);
    assert!(fleet.in_sync, "{fleet:?}");
    // The daemon's next call (here: extend_grace) writes the missing key.
    let extended = extend_grace(&state, &store, until, now(), |_| {}).unwrap();
    assert!(
        matches!(extended, GraceExtension::Unchanged { .. }),
        "{extended:?}"
    );
    assert_eq!(current(&store), (k2, s2));
}

#[test]
fn the_grace_is_only_extended_never_shortened_never_past_the_deadline_never_revived() {
    let (_tmp, state) = fresh_state();
    let store = MemoryStore::new();
    let t0 = now();
    ensure(&state, &store, &offline()).unwrap();
    // Nothing in grace: nothing to extend.
    assert_eq!(
        extend_grace(&state, &store, t0 + HOUR, t0, |_| {}).unwrap(),
        GraceExtension::NotInGrace
    );
    let schedule = Schedule::new(Some(HOUR), Some(3 * HOUR)).unwrap();
    stage(&state, &store, &schedule, t0, |_| {}).unwrap();
    ensure(&state, &store, &offline()).unwrap();
    promote(&state, &store, t0, |_| {}).unwrap();
    let stored = || -> u64 {
        get(&store, "LIVEKIT_ROTATION_GRACE_UNTIL")
            .unwrap()
            .parse()
            .unwrap()
    };
    let end = stored();
    // Earlier than the end: unchanged, nothing written.
    let writes = store.writes();
    assert!(matches!(
        extend_grace(&state, &store, t0, t0, |_| {}).unwrap(),
        GraceExtension::Unchanged {
            at_deadline: false,
            ..
        }
    ));
    assert_eq!(store.writes(), writes);
    assert_eq!(stored(), end);
    // Later: extended.
    let extended = extend_grace(&state, &store, t0 + 2 * HOUR, t0, |_| {}).unwrap();
    assert!(matches!(
        extended,
        GraceExtension::Extended {
            at_deadline: false,
            ..
        }
    ));
    assert_eq!(stored(), end + 3600);
    // Past the deadline: capped at it.
    let capped = extend_grace(&state, &store, t0 + 10 * HOUR, t0, |_| {}).unwrap();
    assert!(matches!(
        capped,
        GraceExtension::Extended {
            at_deadline: true,
            ..
        }
    ));
    let deadline: u64 = get(&store, "LIVEKIT_ROTATION_DEADLINE")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(stored(), deadline);
    assert!(matches!(
        extend_grace(&state, &store, t0 + 10 * HOUR, t0, |_| {}).unwrap(),
        GraceExtension::Unchanged {
            at_deadline: true,
            ..
        }
    ));
    // Once over, a grace is never revived: the retired key stays retired.
    let over = t0 + 4 * HOUR;
    assert_eq!(
        extend_grace(&state, &store, over + HOUR, over, |_| {}).unwrap(),
        GraceExtension::NotInGrace
    );
    assert_eq!(stored(), deadline);
}

#[test]
fn a_deadline_caps_the_grace_given_at_promotion() {
    let (_tmp, state) = fresh_state();
    let store = MemoryStore::new();
    let t0 = now();
    ensure(&state, &store, &offline()).unwrap();
    let schedule = Schedule::new(Some(HOUR), Some(HOUR)).unwrap();
    stage(&state, &store, &schedule, t0, |_| {}).unwrap();
    ensure(&state, &store, &offline()).unwrap();
    // Promoted half an hour later: the grace ends at the deadline, not an hour after.
    let promoted = promote(&state, &store, t0 + HOUR / 2, |_| {}).unwrap();
    let Epoch::Grace {
        until, deadline, ..
    } = promoted.epoch
    else {
        panic!("{promoted:?}");
    };
    assert_eq!(Some(until), deadline);
}

#[test]
fn stage_and_promote_refuse_what_would_lock_anyone_out() {
    // Nothing to rotate before the first ensure.
    let (_tmp, state) = fresh_state();
    let empty = MemoryStore::new();
    let err = stage(&state, &empty, &hour_grace(), now(), |_| {}).unwrap_err();
    assert!(matches!(err, RotateError::NotProvisioned { .. }), "{err}");
    assert_eq!(empty.writes(), 0);

    // Staged but not in livekit.yaml: livekit-server cannot have loaded it.
    let (_tmp, state) = fresh_state();
    let store = MemoryStore::new();
    ensure(&state, &store, &offline()).unwrap();
    stage(&state, &store, &hour_grace(), now(), |_| {}).unwrap();
    let writes = store.writes();
    let err = promote(&state, &store, now(), |_| {}).unwrap_err();
    assert!(matches!(err, RotateError::NextNotListed { .. }), "{err}");
    assert_eq!(store.writes(), writes);

    // During a grace, staging another key would retire the previous one early.
    ensure(&state, &store, &offline()).unwrap();
    promote(&state, &store, now(), |_| {}).unwrap();
    let writes = store.writes();
    let err = stage(&state, &store, &hour_grace(), now(), |_| {}).unwrap_err();
    assert!(matches!(err, RotateError::GraceInForce { .. }), "{err}");
    let hint = livekit_provision::Hint::hint(&err).unwrap();
    assert!(hint.contains("--force"), "{hint}");
    assert_eq!(store.writes(), writes);
    // Forced: the earlier grace ends now, the key is replaced at once.
    let before = current(&store);
    let forced = rotate_now(&state, &store, &hour_grace(), now(), |_| {}).unwrap();
    assert_eq!(forced.action, RotateAction::Promoted);
    assert_ne!(current(&store), before);
    assert_eq!(
        get(&store, "LIVEKIT_API_KEY_PREVIOUS").as_deref(),
        Some(before.0.as_str())
    );
}

#[test]
fn concurrent_stagings_agree_on_one_pair() {
    let (_tmp, state) = fresh_state();
    let store = MemoryStore::new();
    ensure(&state, &store, &offline()).unwrap();
    let outcomes: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| stage(&state, &store, &hour_grace(), now(), |_| {}).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let staged = outcomes
        .iter()
        .filter(|o| o.action == RotateAction::Staged)
        .count();
    assert_eq!(staged, 1, "{outcomes:?}");
    let keys: Vec<_> = outcomes
        .iter()
        .map(|o| o.epoch.next_key().unwrap().to_owned())
        .collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    assert_eq!(get(&store, "LIVEKIT_API_KEY_NEXT").unwrap(), keys[0]);
}

#[test]
fn the_epoch_names_keys_never_secrets() {
    let (_tmp, state, store) = staged_node();
    let (_, s1) = current(&store);
    let (_, s2) = next(&store);
    for at in [now(), now() + 2 * HOUR] {
        let shown = serde_json::to_string(&rotate::epoch(&store, at).unwrap()).unwrap();
        let debug = format!("{:?}", rotate::epoch(&store, at).unwrap());
        for secret in [&s1, &s2] {
            assert!(!shown.contains(secret.as_str()) && !debug.contains(secret.as_str()));
        }
    }
    promote(&state, &store, now(), |_| {}).unwrap();
    let shown = serde_json::to_value(rotate::epoch(&store, now()).unwrap()).unwrap();
    assert_eq!(shown["phase"], "grace");
    assert!(!shown.to_string().contains(s1.as_str()));
}
