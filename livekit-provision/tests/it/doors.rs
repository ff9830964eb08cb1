//! Every door applies the same rule: what `secrets set` accepts is exactly what `ensure` accepts
//! when it reads the value back, for every secret name of the contract; and every token the
//! product mints fits the limits of the livekit.yaml it rendered.

use std::fmt::Write as _;

use livekit_provision::store::{KNOWN, MemoryStore};
use livekit_provision::token::{TokenRequest, VideoGrants, mint};
use livekit_provision::validate::{self, TokenLimits};
use livekit_provision::{
    EnsureError, ResolveError, Secret, SecretName, SecretStore, StateDir, ensure,
    provisioned_credentials,
};
use proptest::prelude::*;

use crate::support::provision::{fresh_state, offline, put};

const KEY: &str = "APIdoorsKey1";
const SECRET: &str = "doorsSecretdoorsSecretdoorsSecretdoorsSecret";

/// Values of every shape the names take, near misses, and free text.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("v1.7.2".to_owned()),
        Just(" 1.13.5 ".to_owned()),
        Just("1.7".to_owned()),
        Just("203.0.113.7".to_owned()),
        Just("::1".to_owned()),
        Just("203.0.113.7,2001:db8::7".to_owned()),
        Just(" 2001:db8::7 , 203.0.113.7 ".to_owned()),
        Just("203.0.113.7,198.51.100.1".to_owned()),
        Just("2001:db8::7,::1".to_owned()),
        Just("203.0.113.7,::ffff:1.2.3.4".to_owned()),
        Just("203.0.113.7,2001:db8::7,::1".to_owned()),
        Just("203.0.113.7,".to_owned()),
        Just("999.1.1.1".to_owned()),
        Just("10.0.0.5:6379".to_owned()),
        Just("[::1]:6379".to_owned()),
        Just("not a host".to_owned()),
        Just("h:99999".to_owned()),
        Just("h:0".to_owned()),
        Just("4102444800".to_owned()),
        Just("-1".to_owned()),
        Just("a".repeat(64)),
        Just("g".repeat(64)),
        Just(KEY.to_owned()),
        Just(SECRET.to_owned()),
        Just(format!("{SECRET}'")),
        Just("short".to_owned()),
        Just(String::new()),
        "[ -~]{0,80}",
        "[A-Za-z0-9:._\\[\\]-]{1,70}",
        any::<String>(),
    ]
}

/// The other values `name` needs in the store before `ensure` reads it at all.
fn context(name: &SecretName) -> Vec<(&'static str, String)> {
    let previous = || {
        vec![
            ("LIVEKIT_ROTATION_GRACE_UNTIL", "4102444800".to_owned()),
            ("LIVEKIT_API_KEY_PREVIOUS", "APIpreviousKey".to_owned()),
            ("LIVEKIT_API_SECRET_PREVIOUS", SECRET.to_owned()),
        ]
    };
    let mut out = vec![
        ("LIVEKIT_API_KEY", KEY.to_owned()),
        ("LIVEKIT_API_SECRET", SECRET.to_owned()),
    ];
    match name.as_str() {
        "LIVEKIT_API_KEY_PREVIOUS" | "LIVEKIT_API_SECRET_PREVIOUS" => out.extend(previous()),
        "LIVEKIT_REDIS_PASSWORD" => {
            out.push(("LIVEKIT_REDIS_ADDRESS", "127.0.0.1:6379".to_owned()));
        }
        "LIVEKIT_SHA256" => out.push(("LIVEKIT_VERSION", "1.7.2".to_owned())),
        _ => {}
    }
    out
}

/// Whether `ensure` accepts `value` stored under `name`: it may fail for other reasons (an
/// unreachable mirror is only a warning), but not by refusing that value. (The two names only
/// the rotation commands read are read back by `rotate::epoch`.)
fn ensure_accepts(name: &SecretName, value: &str) -> bool {
    let (tmp, state) = fresh_state();
    let store = MemoryStore::new();
    for (n, v) in context(name) {
        put(&store, n, &v);
    }
    if *name == SecretName::LIVEKIT_PROMETHEUS_PASSWORD {
        // Read only when provision.yaml asks for metrics.
        std::fs::create_dir_all(state.root()).unwrap();
        std::fs::write(state.settings_file(), "prometheus:\n  port: 9100\n").unwrap();
    }
    if store.set(name, &Secret::new(value)).is_err() {
        return false; // no store holds it, so ensure never reads it
    }
    if *name == SecretName::LIVEKIT_REDIS_SENTINEL_PASSWORD {
        // Read only when provision.yaml routes LiveKit through Sentinel.
        std::fs::create_dir_all(state.root()).unwrap();
        std::fs::write(
            state.root().join("provision.yaml"),
            "redis_sentinel_master_name: lk\nredis_sentinel_addresses: [\"127.0.0.1:26379\"]\n",
        )
        .unwrap();
    }
    if matches!(
        name.as_str(),
        "LIVEKIT_ROTATION_GRACE" | "LIVEKIT_ROTATION_DEADLINE"
    ) {
        // A rotation's schedule is read back by the rotation commands, not by `ensure`.
        return match livekit_provision::rotate::epoch(&store, std::time::SystemTime::now()) {
            Ok(_) => true,
            Err(livekit_provision::rotate::RotateError::InvalidStored {
                name: refused, ..
            }) => {
                assert_eq!(&refused, name, "another value than the one under test");
                false
            }
            Err(other) => panic!("epoch failed for another reason: {other}"),
        };
    }
    let mut opts = offline();
    if *name == SecretName::LIVEKIT_SHA256 {
        // The pinned digest is read only when an install is attempted: from a mirror that
        // does not exist, so the attempt fails later, with a warning.
        opts.binary.offline = false;
        opts.binary.release_url = Some(format!("file://{}/no-mirror", tmp.path().display()));
    }
    match ensure(&state, &store, &opts) {
        Ok(_) => true,
        Err(EnsureError::Resolve(ResolveError::InvalidStored { name: refused, .. })) => {
            assert_eq!(
                &refused, name,
                "ensure refused another value than the one under test"
            );
            false
        }
        Err(EnsureError::InvalidPinnedDigest) => false,
        Err(other) => panic!("ensure failed for another reason: {other}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn secrets_set_accepts_exactly_what_ensure_accepts(
        which in 0..KNOWN.len(),
        value in value(),
    ) {
        let name = &KNOWN[which].name;
        // The CLI's `secrets set` (and any other entrance) calls this validator.
        let set_accepts = validate::secret_value(name, &value).is_ok();
        prop_assert_eq!(set_accepts, ensure_accepts(name, &value), "{} = {:?}", name, value);
    }

    #[test]
    fn minted_tokens_fit_the_limits_of_the_rendered_file(
        room_limit in prop::option::of(1usize..40),
        identity_limit in prop::option::of(1usize..40),
        room in "[a-zé-]{0,50}",
        identity in "[a-zé-]{0,50}",
    ) {
        let (_tmp, state) = fresh_state();
        write_limits(&state, room_limit, identity_limit);
        let store = MemoryStore::new();
        ensure(&state, &store, &offline()).unwrap();
        let creds = provisioned_credentials(&state).unwrap();
        let mut request = TokenRequest::new(identity.clone(), VideoGrants::join(room.clone()));
        request.limits = TokenLimits::provisioned(&state);
        let minted = mint(&creds, &request, std::time::SystemTime::now()).is_ok();
        let fits = |text: &str, limit: Option<usize>| {
            !text.is_empty() && text.len() <= limit.unwrap_or(validate::DEFAULT_NAME_LIMIT)
        };
        prop_assert_eq!(minted, fits(&room, room_limit) && fits(&identity, identity_limit));
    }
}

fn write_limits(state: &StateDir, room: Option<usize>, identity: Option<usize>) {
    std::fs::create_dir_all(state.root()).unwrap();
    let mut text = String::new();
    if room.is_some() || identity.is_some() {
        text.push_str("limit:\n");
        if let Some(n) = room {
            let _ = writeln!(text, "  max_room_name_length: {n}");
        }
        if let Some(n) = identity {
            let _ = writeln!(text, "  max_participant_identity_length: {n}");
        }
    }
    std::fs::write(state.extra_file(), text).unwrap();
}

#[test]
fn the_store_is_read_by_the_same_rule_the_cli_writes_with() {
    // The field report: a Redis address `secrets set` used to store, that `ensure` then refused.
    for bad in ["not a host", "h:99999"] {
        assert!(validate::secret_value(&SecretName::LIVEKIT_REDIS_ADDRESS, bad).is_err());
        assert!(!ensure_accepts(&SecretName::LIVEKIT_REDIS_ADDRESS, bad));
    }
    assert!(ensure_accepts(
        &SecretName::LIVEKIT_REDIS_ADDRESS,
        "127.0.0.1:6379"
    ));
    let store: &dyn SecretStore = &MemoryStore::new();
    assert!(
        store
            .get(&SecretName::LIVEKIT_REDIS_ADDRESS)
            .unwrap()
            .is_none()
    );
}

/// Issue 24: no door refuses what another accepts, and each stores what the others read. For
/// every name of the contract and every sample value: `admin::validate_setting` (what the CLI's
/// `secrets set` and the daemon's `secrets.set` call) accepts it exactly when `ensure` (or the
/// rotation, for its schedule) accepts it stored as given; and what `set_setting` stores is read
/// back by `ensure` too, and stored again unchanged (normalizing is idempotent).
#[test]
fn every_door_agrees_on_every_name_and_sample() {
    let mut checked = 0;
    for known in KNOWN {
        let name = &known.name;
        for value in validate::door_samples() {
            let set = livekit_provision::admin::validate_setting(name.as_str(), &value).is_ok();
            let stored_raw = ensure_accepts(name, &value);
            assert_eq!(
                set, stored_raw,
                "{name} = {value:?}: set {set}, store {stored_raw}"
            );
            if set {
                let (_tmp, state) = fresh_state();
                let store = MemoryStore::new();
                livekit_provision::admin::set_setting(
                    &state,
                    &store,
                    name.as_str(),
                    &value,
                    livekit_provision::admin::WhenLive::Replace,
                    |_| {},
                )
                .unwrap();
                let stored = store.get(name).unwrap().unwrap().expose().to_owned();
                assert!(ensure_accepts(name, &stored), "{name}: stored {stored:?}");
                assert_eq!(
                    validate::secret_value(name, &stored).unwrap(),
                    stored,
                    "{name}: normalizing {value:?} twice differs"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= KNOWN.len() * 30, "{checked} pairs checked");
}
