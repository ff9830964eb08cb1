//! The certificate of a browser-grade node (`tls:` in `provision.yaml`): where it lives, what it
//! is, when it is due, and obtaining it by ACME.
//!
//! - **Where.** An ACME certificate is kept in the state directory: `tls/certs/<id>/cert.pem`
//!   (the chain, leaf first) and `key.pem` (0600), one directory per issuance, and `tls/live`, a
//!   symlink switched in one rename to the newest. The TLS front and livekit-server's TURN/TLS
//!   read `tls/live/cert.pem` and `tls/live/key.pem`. An operator's own files
//!   (`tls.cert_file`/`tls.key_file`) are read where they are. `tls/account.json` (0600) holds
//!   the ACME account key; `run/acme.json` records the attempts; `run/acme-challenge/<token>`
//!   holds the HTTP-01 answers while an order is open.
//! - **When.** [`assess`] says whether the certificate is missing, does not cover the names, has
//!   expired, or reached its renewal time (`renew_before`, or a third of its lifetime left).
//! - **Obtaining.** `obtain` (run by `ensure`) runs one ACME order (HTTP-01) with `instant-acme`. A failure
//!   never touches the certificate in place: the last good one keeps serving, and
//!   `run/acme.json` says what failed and when the next attempt is.

mod acme;
pub mod http01;
mod info;
mod provision;
mod record;
mod store;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use acme::AcmeError;
pub(crate) use acme::obtain;
pub use info::{CertReadError, CertificateInfo, certified_key, read_certificate};
pub use provision::CertificateError;
pub(crate) use provision::rfc3339 as provision_rfc3339;
pub(crate) use provision::{Outcome, provision};
pub use record::{AcmeRecord, read_record};

use crate::paths::StateDir;
use crate::settings::{Settings, TlsSettings};

/// Where the certificate and key the front and TURN/TLS load are: the operator's files, or the
/// live ACME issuance of the state directory.
pub fn certificate_paths(state: &StateDir, tls: &TlsSettings) -> (PathBuf, PathBuf) {
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        _ => (store::live_cert(state), store::live_key(state)),
    }
}

/// True when `file` is the certificate or key ACME keeps for `settings.tls` (obtained and
/// renewed by the certificate step, reported by the `tls-*` findings, not as a file to renew).
fn renewed_by_acme(state: &StateDir, settings: &Settings, file: &Path) -> bool {
    settings.tls.as_ref().is_some_and(|tls| {
        let (cert, key) = certificate_paths(state, tls);
        tls.uses_acme() && (cert == file || key == file)
    })
}

/// `turn_tls::inspect` of the `turn:` section, without the issues of the certificate ACME
/// keeps for `tls:` (judged by the certificate step and the `tls-*` findings, said once).
pub(crate) fn turn_issues(
    state: &StateDir,
    settings: &Settings,
    now: SystemTime,
    uid: u32,
) -> Vec<crate::turn_tls::TlsIssue> {
    crate::turn_tls::inspect(&settings.turn, now, uid)
        .into_iter()
        .filter(|issue| !renewed_by_acme(state, settings, issue.path()))
        .collect()
}

/// The directory of the HTTP-01 answers (`run/acme-challenge`), served by the front and, while
/// no front runs, by the ACME run itself.
pub fn challenge_dir(state: &StateDir) -> PathBuf {
    state.run_dir().join("acme-challenge")
}

/// Why a certificate is (or would be) obtained now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Due {
    /// There is none yet.
    Missing,
    /// It cannot be read as a certificate.
    Unreadable(String),
    /// It does not cover these names.
    Names(Vec<String>),
    /// It has expired.
    Expired,
    /// Its renewal time has come.
    Renewal,
}

impl std::fmt::Display for Due {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => f.write_str("there is no certificate yet"),
            Self::Unreadable(e) => write!(f, "the certificate cannot be read: {e}"),
            Self::Names(names) => write!(f, "the certificate does not cover {}", names.join(", ")),
            Self::Expired => f.write_str("the certificate has expired"),
            Self::Renewal => f.write_str("the certificate reached its renewal time"),
        }
    }
}

/// The certificate of a `tls:` section as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// The certificate file.
    pub cert_path: PathBuf,
    /// What it is, when it can be read.
    pub info: Option<CertificateInfo>,
    /// When it is renewed (ACME only).
    pub renew_at: Option<SystemTime>,
    /// Why it must be obtained now (ACME), or is unusable (operator's files); `None`: fine.
    pub due: Option<Due>,
    /// It can serve now: readable, covering every name, not expired.
    pub usable: bool,
}

/// Look at the certificate `tls` names, at `now`.
pub fn assess(
    state: &StateDir,
    settings: &Settings,
    tls: &TlsSettings,
    now: SystemTime,
) -> Assessment {
    let (cert_path, _) = certificate_paths(state, tls);
    let info = match read_certificate(&cert_path) {
        Ok(info) => info,
        Err(e) => {
            let due = if e.kind == std::io::ErrorKind::NotFound {
                Due::Missing
            } else {
                Due::Unreadable(e.message)
            };
            return Assessment {
                cert_path,
                info: None,
                renew_at: None,
                due: Some(due),
                usable: false,
            };
        }
    };
    let missing: Vec<String> = tls
        .names(settings)
        .into_iter()
        .filter(|n| !info.covers(n))
        .collect();
    let renew_at = tls
        .uses_acme()
        .then(|| tls.renew_at(info.not_before, info.not_after));
    let expired = now >= info.not_after;
    let due = if !missing.is_empty() {
        Some(Due::Names(missing))
    } else if expired {
        Some(Due::Expired)
    } else if renew_at.is_some_and(|at| now >= at) {
        Some(Due::Renewal)
    } else {
        None
    };
    let usable = matches!(due, None | Some(Due::Renewal));
    Assessment {
        cert_path,
        info: Some(info),
        renew_at,
        due,
        usable,
    }
}

/// The state directory's `tls/` (0700).
pub(crate) fn tls_dir(state: &StateDir) -> PathBuf {
    state.root().join("tls")
}

pub(crate) fn io_context(action: &str, path: &Path, e: &std::io::Error) -> String {
    format!("{action} {}: {e}", path.display())
}

/// When the certificate step of `ensure` next has something to do (the renewal time, or the
/// end of a failed attempt's retry delay), for a control plane that runs `ensure` by then.
/// `None` without an ACME `tls:` section.
pub fn next_action(state: &StateDir, settings: &Settings, now: SystemTime) -> Option<SystemTime> {
    let tls = settings.tls.as_ref().filter(|t| t.uses_acme())?;
    let assessment = assess(state, settings, tls, now);
    let record = read_record(state);
    let retry = record
        .next_attempt
        .map(|at| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(at));
    match (&assessment.due, retry) {
        (Some(_), Some(at)) if assessment.usable && at > now => Some(at),
        (Some(_), _) => Some(now),
        (None, _) => assessment.renew_at,
    }
}
