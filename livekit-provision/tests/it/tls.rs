//! The certificate step of `ensure` and the `tls-*` findings of `check` (docs/DESIGN.md 4.12),
//! without a CA: a dry run plans the order; an unreachable directory with no certificate fails
//! `ensure` and says why; with a usable certificate in place it is a warning, the certificate
//! is untouched, and the next attempt is paced. Issuance itself is proven against Pebble, a
//! real ACME server, in the e2e suite (`e2e/tests/test_tls.py`).

use std::path::Path;
use std::time::{Duration, SystemTime};

use livekit_provision::check::{CheckOptions, Code};
use livekit_provision::ensure::{Action, EnsureError, EnsureOptions};
use livekit_provision::store::MemoryStore;
use livekit_provision::{StateDir, check, ensure, tls};

use crate::support::provision::{chain, fresh_state, offline};

/// A directory nothing answers at: a loopback port just released.
fn dead_directory() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("https://127.0.0.1:{port}/dir")
}

fn settings(state: &StateDir, extra: &str) {
    let yaml = format!(
        "tls:\n  domain: lk.example.com\n  turn_domain: turn.example.com\n  port: 18443\n  http_port: 18080\n  acme_directory: {}\n{extra}turn:\n  enabled: true\n  tls_port: 15349\n",
        dead_directory()
    );
    std::fs::create_dir_all(state.root()).unwrap();
    std::fs::write(state.settings_file(), yaml).unwrap();
}

/// A certificate for both names valid `days` from now, made live where ACME keeps its own.
fn live_certificate(state: &StateDir, days: u32) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![
        "lk.example.com".to_owned(),
        "turn.example.com".to_owned(),
    ])
    .unwrap();
    let day = |t| {
        let (y, m, d) = ymd(t);
        rcgen::date_time_ymd(y, m, d)
    };
    params.not_before = day(SystemTime::now() - Duration::from_secs(86_400));
    params.not_after = day(SystemTime::now() + Duration::from_secs(u64::from(days) * 86_400));
    let cert = params.self_signed(&key).unwrap();
    let dir = state.root().join("tls/certs/1-test");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(dir.join("key.pem"))
            .unwrap()
            .permissions(),
        0o600,
    );
    std::os::unix::fs::symlink("certs/1-test", state.root().join("tls/live")).unwrap();
    cert.pem()
}

/// The day of `t` (UTC): year, month, day, as rcgen takes validity dates.
fn ymd(t: SystemTime) -> (i32, u8, u8) {
    let text = humantime::format_rfc3339_seconds(t).to_string();
    let part = |range: std::ops::Range<usize>| text[range].parse::<i32>().unwrap();
    let small = |v: i32| u8::try_from(v).unwrap();
    (part(0..4), small(part(5..7)), small(part(8..10)))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn a_dry_run_plans_the_order_and_writes_nothing() {
    let (_tmp, state) = fresh_state();
    settings(&state, "");
    let opts = EnsureOptions {
        dry_run: true,
        ..offline()
    };
    let report = ensure(&state, &MemoryStore::new(), &opts).unwrap();
    let order = report.actions.iter().find_map(|a| match a {
        Action::ObtainCertificate { names, reason, .. } => Some((names.clone(), reason.clone())),
        _ => None,
    });
    assert_eq!(
        order,
        Some((
            vec!["lk.example.com".to_owned(), "turn.example.com".to_owned()],
            "there is no certificate yet".to_owned()
        ))
    );
    assert!(
        !state.root().join("tls").exists(),
        "a dry run writes nothing"
    );
    assert!(!state.run_dir().join("acme.json").exists());
}

#[test]
fn no_certificate_and_no_ca_fails_ensure_with_the_cause_and_writes_no_files() {
    let (_tmp, state) = fresh_state();
    settings(&state, "");
    let err = ensure(&state, &MemoryStore::new(), &offline()).unwrap_err();
    assert!(matches!(err, EnsureError::Certificate(_)), "{err:?}");
    let text = chain(&err);
    assert!(
        text.contains("no TLS certificate for lk.example.com, turn.example.com"),
        "{text}"
    );
    assert!(
        text.contains("Connection refused"),
        "one line, with the innermost cause: {text}"
    );
    let hint = livekit_provision::ErrorReport::of(&err)
        .hint
        .unwrap_or_default();
    assert!(hint.contains("tls.acme_directory"), "{hint}");
    assert!(
        !state
            .managed(livekit_provision::ManagedFile::LivekitYaml)
            .exists()
    );
    let record = tls::read_record(&state);
    assert_eq!((record.failures, record.issued), (1, 0));
    assert!(record.last_error.is_some());
    let report = check(&state, None, &CheckOptions::default());
    assert!(
        report.with_code(Code::TlsMissing).next().is_some(),
        "{report:?}"
    );
}

#[test]
fn a_failing_ca_keeps_the_certificate_in_place_warns_and_paces_the_next_attempt() {
    let (_tmp, state) = fresh_state();
    // Valid 10 days, renewed 30 days ahead: due now.
    settings(&state, "  renew_before: 30d\n");
    let pem = live_certificate(&state, 10);
    let store = MemoryStore::new();
    let first = ensure(&state, &store, &offline()).unwrap();
    let warned = first
        .warnings
        .iter()
        .any(|w| w.message.contains("renewal failed") && w.message.contains("serves until"));
    assert!(warned, "{:?}", first.warnings);
    assert_eq!(
        read(&state.root().join("tls/live/cert.pem")),
        pem,
        "untouched"
    );
    let yaml = read(&state.managed(livekit_provision::ManagedFile::LivekitYaml));
    assert!(
        yaml.contains("cert_file: \""),
        "TURN/TLS loads the ACME certificate:\n{yaml}"
    );
    assert!(yaml.contains("# cert_file sha256 "), "{yaml}");
    let attempts = tls::read_record(&state);
    assert_eq!(attempts.failures, 1);

    // Right after: paced, no new attempt, the same warning.
    let again = ensure(&state, &store, &offline()).unwrap();
    assert!(
        again
            .warnings
            .iter()
            .any(|w| w.message.contains("renewal failed"))
    );
    assert_eq!(
        tls::read_record(&state),
        attempts,
        "no attempt while the retry delay runs"
    );
    let when = tls::next_action(&state, &config(&state), SystemTime::now()).unwrap();
    assert!(
        when > SystemTime::now(),
        "the daemon is told when to try again"
    );

    let report = check(&state, None, &CheckOptions::default());
    for code in [Code::TlsExpiring, Code::TlsRenewalFailing] {
        assert!(
            report.with_code(code).next().is_some(),
            "{code:?}: {report:?}"
        );
    }
    assert!(
        report.with_code(Code::TurnCertExpiring).next().is_none(),
        "said once, as tls-*"
    );
}

#[test]
fn check_names_a_certificate_that_does_not_cover_the_domain_or_has_expired() {
    let (_tmp, state) = fresh_state();
    settings(&state, "");
    live_certificate(&state, 30);
    std::fs::write(
        state.settings_file(),
        read(&state.settings_file()).replace("lk.example.com", "other.example.com"),
    )
    .unwrap();
    let report = check(&state, None, &CheckOptions::default());
    let names = report.with_code(Code::TlsNames).next().unwrap();
    assert!(
        names.message.contains("does not cover other.example.com"),
        "{}",
        names.message
    );
    let later = CheckOptions {
        now: SystemTime::now() + Duration::from_secs(40 * 86_400),
        ..CheckOptions::default()
    };
    settings_back(&state);
    let report = check(&state, None, &later);
    assert!(
        report.with_code(Code::TlsExpired).next().is_some(),
        "{report:?}"
    );
}

fn settings_back(state: &StateDir) {
    std::fs::write(
        state.settings_file(),
        read(&state.settings_file()).replace("other.example.com", "lk.example.com"),
    )
    .unwrap();
}

fn config(state: &StateDir) -> livekit_provision::settings::Settings {
    livekit_provision::OperatorConfig::load(state)
        .unwrap()
        .settings
}
