//! TURN and its TLS material end to end: certificates generated here (rcgen) at fixed dates, the
//! clock injected. A good certificate renders the `turn:` block; every bad one (wrong key,
//! expired, wrong domain, open key, missing file) and every clashing port is refused by `ensure`
//! naming the file or key with a hint, with nothing written (the state listing and the store are
//! compared before and after), and reported by `check` under a stable code.

use livekit_provision::Hint;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use livekit_provision::render::LivekitYaml;
use livekit_provision::settings::SettingsError;
use livekit_provision::store::MemoryStore;
use livekit_provision::{
    CheckOptions, Code, ConfigError, EnsureError, EnsureOptions, Settings, Severity, StateDir,
    TlsIssue, TurnSettings, TurnSettingsError, Warning, check, ensure,
};
use rcgen::{CertificateParams, KeyPair, date_time_ymd};

use crate::support::provision::{fresh_state, listing, offline};

const DOMAIN: &str = "turn.example.com";

/// The injected "now": 2030-06-01.
fn now() -> SystemTime {
    let seconds = u64::try_from(date_time_ymd(2030, 6, 1).unix_timestamp()).unwrap();
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

fn at_now() -> EnsureOptions<'static> {
    EnsureOptions {
        now: now(),
        ..offline()
    }
}

fn check_at_now(state: &StateDir) -> livekit_provision::CheckReport {
    check(
        state,
        None,
        &CheckOptions {
            now: now(),
            local_addresses: Vec::new(),
            verify_binary: false,
            ..CheckOptions::default()
        },
    )
}

/// Certificate parameters for `names`, valid from `from` to `until` (year, month, day).
fn params(names: &[&str], from: (i32, u8, u8), until: (i32, u8, u8)) -> CertificateParams {
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    params.not_before = date_time_ymd(from.0, from.1, from.2);
    params.not_after = date_time_ymd(until.0, until.1, until.2);
    params
}

/// A self-signed certificate for `names`, valid from `from` to `until`, with its (P-256) key.
fn certificate(names: &[&str], from: (i32, u8, u8), until: (i32, u8, u8)) -> (String, KeyPair) {
    let key = KeyPair::generate().unwrap();
    (
        params(names, from, until).self_signed(&key).unwrap().pem(),
        key,
    )
}

/// A certificate for `DOMAIN`, valid 2029-01-01 to 2031-01-01.
fn good_certificate() -> (String, KeyPair) {
    certificate(&[DOMAIN], (2029, 1, 1), (2031, 1, 1))
}

/// `cert.pem` and `key.pem` (0600) in `dir`.
fn write_pair(dir: &Path, cert: &str, key: &KeyPair) -> (PathBuf, PathBuf) {
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    (cert_path, key_path)
}

fn tls_turn(cert: &Path, key: &Path) -> TurnSettings {
    TurnSettings {
        enabled: true,
        domain: Some(DOMAIN.to_owned()),
        tls_port: Some(5349),
        udp_port: Some(3478),
        cert_file: Some(cert.to_owned()),
        key_file: Some(key.to_owned()),
        ..TurnSettings::default()
    }
}

fn write_settings(state: &StateDir, turn: &TurnSettings) {
    let settings = Settings {
        turn: turn.clone(),
        ..Settings::default()
    };
    std::fs::write(
        state.settings_file(),
        serde_yaml::to_string(&settings).unwrap(),
    )
    .unwrap();
}

/// A node provisioned without TURN, then given `turn` in provision.yaml.
fn provisioned_with(turn: &TurnSettings) -> (tempfile::TempDir, StateDir, MemoryStore) {
    let (tmp, state) = fresh_state();
    let store = MemoryStore::new();
    ensure(&state, &store, &at_now()).unwrap();
    write_settings(&state, turn);
    (tmp, state, store)
}

/// A provisioned node whose provision.yaml enables TURN/TLS with `cert` and `key`.
struct Node {
    certs: tempfile::TempDir,
    cert_path: PathBuf,
    key_path: PathBuf,
    turn: TurnSettings,
    _tmp: tempfile::TempDir,
    state: StateDir,
    store: MemoryStore,
}

impl Node {
    fn new((cert, key): (String, KeyPair)) -> Self {
        let certs = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = write_pair(certs.path(), &cert, &key);
        let turn = tls_turn(&cert_path, &key_path);
        let (tmp, state, store) = provisioned_with(&turn);
        Self {
            certs,
            cert_path,
            key_path,
            turn,
            _tmp: tmp,
            state,
            store,
        }
    }

    fn ensure(&self) -> livekit_provision::EnsureReport {
        ensure(&self.state, &self.store, &at_now()).unwrap()
    }

    /// `ensure` refuses with a TLS issue whose hint mentions `hint`, writing nothing; `check`
    /// reports `code` for `path` as an error.
    fn refused_as(&self, code: Code, path: &Path, hint: &str) -> TlsIssue {
        let issue = match refused(&self.state, &self.store) {
            EnsureError::TurnTls(issue) => issue,
            other => panic!("expected a TURN/TLS refusal, got {other}"),
        };
        assert_eq!(issue.path(), path, "{issue}");
        assert!(issue.hint().contains(hint), "{}", issue.hint());
        assert_eq!(finding(&self.state, code, path), Severity::Error);
        issue
    }
}

/// `ensure` refuses, and neither the state directory nor the store changes (nor with
/// `--dry-run`).
fn refused(state: &StateDir, store: &MemoryStore) -> EnsureError {
    let (before, writes) = (listing(state.root()), store.writes());
    let err = ensure(state, store, &at_now()).unwrap_err();
    assert_eq!(listing(state.root()), before, "{err}");
    assert_eq!(store.writes(), writes, "{err}");
    let mut dry = at_now();
    dry.dry_run = true;
    assert!(ensure(state, store, &dry).is_err());
    err
}

/// The finding of `check` with `code`, naming `path`: its severity.
fn finding(state: &StateDir, code: Code, path: &Path) -> Severity {
    let report = check_at_now(state);
    let found: Vec<_> = report.with_code(code).collect();
    assert_eq!(found.len(), 1, "{code:?}: {:?}", report.findings);
    assert_eq!(found[0].files, vec![path.to_owned()]);
    assert!(found[0].hint.as_deref().is_some_and(|h| !h.is_empty()));
    found[0].severity
}

fn livekit_yaml(state: &StateDir) -> String {
    std::fs::read_to_string(state.managed(livekit_provision::ManagedFile::LivekitYaml)).unwrap()
}

#[test]
fn a_good_certificate_renders_the_turn_block() {
    let node = Node::new(good_certificate());
    let report = node.ensure();
    assert!(!report.is_noop());
    assert!(
        !report
            .warnings
            .iter()
            .any(|w| matches!(w.warning, Warning::TurnTls { .. })),
        "{:?}",
        report.warnings
    );
    let text = livekit_yaml(&node.state);
    let block = format!(
        "turn:\n  enabled: true\n  domain: \"{DOMAIN}\"\n  tls_port: 5349\n  udp_port: 3478\n  cert_file: \"{}\"\n  key_file: \"{}\"\n",
        node.cert_path.display(),
        node.key_path.display()
    );
    assert!(text.contains(&block), "{text}");
    assert_eq!(LivekitYaml::parse(&text).unwrap().turn, node.turn);
    assert!(node.ensure().is_noop());

    let report = check_at_now(&node.state);
    assert!(report.healthy, "{:?}", report.findings);
    assert!(
        !report
            .findings
            .iter()
            .any(|f| format!("{:?}", f.code).starts_with("Turn")),
        "{:?}",
        report.findings
    );
}

#[test]
fn a_chain_leaf_first_and_rsa_and_ed25519_keys_are_accepted() {
    let node = Node::new(good_certificate());
    // A leaf signed by a CA, the chain written leaf first as certbot's fullchain.pem is.
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_pem = params(&[DOMAIN], (2029, 1, 1), (2031, 1, 1))
        .signed_by(&leaf_key, &issuer)
        .unwrap()
        .pem();
    write_pair(node.certs.path(), &format!("{leaf_pem}{ca_pem}"), &leaf_key);
    node.ensure();
    // CA first: livekit-server (Go's LoadX509KeyPair) takes the first certificate as the leaf.
    write_pair(node.certs.path(), &format!("{ca_pem}{leaf_pem}"), &leaf_key);
    node.refused_as(Code::TurnKeyMismatch, &node.key_path, "turn.key_file");

    for key in [
        KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048).unwrap(),
        KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
    ] {
        let pem = params(&[DOMAIN], (2029, 1, 1), (2031, 1, 1))
            .self_signed(&key)
            .unwrap()
            .pem();
        write_pair(node.certs.path(), &pem, &key);
        node.ensure();
        assert!(check_at_now(&node.state).healthy);
    }
}

#[test]
fn a_key_of_another_certificate_is_refused() {
    let (cert, _) = good_certificate();
    let node = Node::new((cert, KeyPair::generate().unwrap()));
    let issue = node.refused_as(Code::TurnKeyMismatch, &node.key_path, "turn.key_file");
    assert!(matches!(issue, TlsIssue::KeyMismatch { .. }), "{issue:?}");
    let message = issue.to_string();
    assert!(
        message.contains(&node.key_path.display().to_string())
            && message.contains(&node.cert_path.display().to_string()),
        "{message}"
    );
}

#[test]
fn an_expired_certificate_is_refused() {
    let node = Node::new(certificate(&[DOMAIN], (2029, 1, 1), (2030, 5, 1)));
    let issue = node.refused_as(Code::TurnCertExpired, &node.cert_path, "renew");
    assert!(
        matches!(issue, TlsIssue::Expired { days: 31, .. }),
        "{issue:?}"
    );
    assert!(issue.to_string().contains("expired 31 days ago"), "{issue}");

    let (cert, key) = certificate(&[DOMAIN], (2030, 7, 1), (2031, 7, 1));
    write_pair(node.certs.path(), &cert, &key);
    let issue = node.refused_as(Code::TurnCertNotYetValid, &node.cert_path, "clock");
    assert!(
        matches!(issue, TlsIssue::NotYetValid { days: 30, .. }),
        "{issue:?}"
    );
}

#[test]
fn a_certificate_expiring_in_ten_days_is_a_warning() {
    let node = Node::new(certificate(&[DOMAIN], (2029, 1, 1), (2030, 6, 11)));
    let report = node.ensure();
    let warned: Vec<_> = report
        .warnings
        .iter()
        .filter(|w| matches!(&w.warning, Warning::TurnTls { file, .. } if *file == node.cert_path))
        .collect();
    assert_eq!(warned.len(), 1, "{:?}", report.warnings);
    assert!(
        warned[0].message.contains("expires in 10 days"),
        "{}",
        warned[0].message
    );
    assert_eq!(
        finding(&node.state, Code::TurnCertExpiring, &node.cert_path),
        Severity::Warning
    );
    assert!(check_at_now(&node.state).healthy);
}

#[test]
fn a_certificate_for_another_domain_is_refused() {
    let node = Node::new(certificate(
        &["meet.example.com"],
        (2029, 1, 1),
        (2031, 1, 1),
    ));
    let issue = node.refused_as(Code::TurnCertDomain, &node.cert_path, "turn.domain");
    let message = issue.to_string();
    assert!(
        message.contains(DOMAIN) && message.contains("meet.example.com"),
        "{message}"
    );
}

#[test]
fn a_wildcard_covers_exactly_one_label() {
    let node = Node::new(certificate(&["*.example.com"], (2029, 1, 1), (2031, 1, 1)));
    node.ensure();
    assert!(check_at_now(&node.state).healthy);

    for domain in ["a.turn.example.com", "example.com"] {
        let turn = TurnSettings {
            domain: Some(domain.to_owned()),
            ..node.turn.clone()
        };
        write_settings(&node.state, &turn);
        let issue = node.refused_as(Code::TurnCertDomain, &node.cert_path, "turn.domain");
        assert!(
            matches!(&issue, TlsIssue::WrongDomain { domain: d, .. } if d == domain),
            "{domain}: {issue:?}"
        );
        assert!(issue.to_string().contains("*.example.com"), "{issue}");
    }
}

#[test]
fn a_world_readable_key_is_refused() {
    let node = Node::new(good_certificate());
    std::fs::set_permissions(&node.key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let issue = node.refused_as(Code::TurnKeyPermissions, &node.key_path, "chmod o-rwx");
    assert!(
        matches!(issue, TlsIssue::KeyPermissions { mode: 0o644, .. }),
        "{issue:?}"
    );
    assert_eq!(
        issue.hint(),
        format!("chmod o-rwx {}", node.key_path.display())
    );
    // Group-readable (a `ssl-cert` group) is fine, as it is for livekit-server's own key file.
    std::fs::set_permissions(&node.key_path, std::fs::Permissions::from_mode(0o640)).unwrap();
    node.ensure();
}

#[test]
fn a_key_of_another_user_is_a_warning() {
    use std::os::unix::fs::MetadataExt as _;
    let node = Node::new(good_certificate());
    // The key must belong to neither the inspecting user nor root: as root, give it to nobody;
    // otherwise inspect as another uid than the owner.
    let mut owner = std::fs::metadata(&node.key_path).unwrap().uid();
    if owner == 0 {
        std::os::unix::fs::chown(&node.key_path, Some(65534), None).unwrap();
        owner = 65534;
    }
    let uid = if owner == 65534 { 0 } else { owner + 1 };
    let issues = livekit_provision::turn_tls::inspect(&node.turn, now(), uid);
    assert_eq!(
        issues,
        vec![TlsIssue::KeyOwner {
            path: node.key_path.clone(),
            owner,
            uid
        }]
    );
    assert!(!issues[0].is_error());
    assert!(
        issues[0].hint().starts_with("chown"),
        "{}",
        issues[0].hint()
    );
}

#[test]
fn missing_or_unusable_files_are_refused_by_name() {
    let node = Node::new(good_certificate());
    let missing = node.certs.path().join("missing.pem");
    write_settings(&node.state, &tls_turn(&missing, &node.key_path));
    let issue = node.refused_as(Code::TurnTlsUnreadable, &missing, "turn.cert_file");
    assert!(
        matches!(
            &issue,
            TlsIssue::Unreadable {
                key: "cert_file",
                ..
            }
        ),
        "{issue:?}"
    );
    assert!(issue.to_string().contains("missing.pem"), "{issue}");

    // The key where the certificate belongs, and the other way round (the certificate made
    // private first, or its mode would be the first complaint).
    std::fs::set_permissions(&node.cert_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    for (file, key_name) in [(&node.key_path, "cert_file"), (&node.cert_path, "key_file")] {
        write_settings(&node.state, &tls_turn(file, file));
        let issue = node.refused_as(Code::TurnTlsInvalid, file, &format!("turn.{key_name}"));
        assert!(
            matches!(&issue, TlsIssue::Invalid { key, .. } if *key == key_name),
            "{issue:?}"
        );
    }
}

#[test]
fn clashing_ports_are_refused_by_name() {
    let node = Node::new(good_certificate());
    let good = node.turn.clone();
    for (turn, key, other) in [
        (
            TurnSettings {
                tls_port: Some(7881),
                ..good.clone()
            },
            "tls_port",
            "rtc_tcp_port",
        ),
        (
            TurnSettings {
                udp_port: Some(50000),
                ..good.clone()
            },
            "udp_port",
            "rtc_port_range_start-rtc_port_range_end",
        ),
        (
            TurnSettings {
                relay_range_start: Some(3000),
                relay_range_end: Some(4000),
                ..good.clone()
            },
            "udp_port",
            "relay_range_start-relay_range_end",
        ),
    ] {
        write_settings(&node.state, &turn);
        let err = refused(&node.state, &node.store);
        let EnsureError::Config(ConfigError::Settings { path, source }) = &err else {
            panic!("expected a provision.yaml refusal, got {err}");
        };
        assert_eq!(*path, node.state.settings_file());
        assert!(
            matches!(
                source,
                SettingsError::Turn(TurnSettingsError::PortClash { .. })
            ),
            "{source:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&format!("turn.{key}")) && message.contains(other),
            "{message}"
        );
        let hint = err.hint().unwrap();
        assert!(
            hint.contains(&format!("turn.{key}")) && hint.contains("provision.yaml"),
            "{hint}"
        );
        let report = check_at_now(&node.state);
        assert_eq!(
            report.with_code(Code::ConfigInvalid).count(),
            1,
            "{:?}",
            report.findings
        );
    }

    // A TCP port and a UDP port may share a number.
    write_settings(
        &node.state,
        &TurnSettings {
            tls_port: Some(3478),
            udp_port: Some(7881),
            ..good
        },
    );
    node.ensure();
}

#[test]
fn external_tls_needs_no_certificate() {
    let turn = TurnSettings {
        enabled: true,
        domain: Some(DOMAIN.to_owned()),
        tls_port: Some(443),
        external_tls: true,
        ..TurnSettings::default()
    };
    let (_tmp, state, store) = provisioned_with(&turn);
    ensure(&state, &store, &at_now()).unwrap();
    assert!(
        livekit_yaml(&state).contains(&format!(
            "turn:\n  enabled: true\n  domain: \"{DOMAIN}\"\n  tls_port: 443\n  external_tls: true\n"
        )),
        "{}",
        livekit_yaml(&state)
    );
}
