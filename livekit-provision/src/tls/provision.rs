//! The certificate step of `ensure`: obtain the certificate when it is due, keep the one in
//! place when the CA fails and it can still serve, and fail (nothing else can serve `wss://`)
//! when there is none.

use std::path::PathBuf;
use std::time::SystemTime;

use super::{AcmeError, Due};
use crate::paths::StateDir;
use crate::settings::Settings;

/// An ACME order made (or, in a dry run, to be made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Order {
    /// The names ordered.
    pub names: Vec<String>,
    /// The ACME directory.
    pub directory: String,
    /// Why now.
    pub reason: String,
}

/// What the certificate step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// No `tls:` section, or the certificate is fine.
    Fresh,
    /// A certificate was obtained and made live, or (dry run) would be.
    Obtained(Order),
    /// The certificate is due but none was obtained; the one in place serves on (or, for an
    /// operator's files, they have a problem the operator must fix).
    Kept {
        /// The certificate file.
        cert: PathBuf,
        /// What failed, or what is wrong.
        reason: String,
        /// How to fix it.
        hint: String,
    },
}

/// Why `ensure` stops: no certificate can serve, and none could be obtained.
#[derive(Debug, thiserror::Error)]
#[error("no TLS certificate for {names}: {cause}")]
pub struct CertificateError {
    /// The names.
    pub names: String,
    /// The ACME failure (in the message: one line, what failed and its innermost cause).
    pub cause: AcmeError,
    /// How to fix it.
    pub hint: String,
}

/// Run the step for `settings.tls` at `now`.
pub(crate) fn provision(
    state: &StateDir,
    settings: &Settings,
    dry_run: bool,
    now: SystemTime,
) -> Result<Outcome, CertificateError> {
    let Some(tls) = &settings.tls else {
        return Ok(Outcome::Fresh);
    };
    let assessment = super::assess(state, settings, tls, now);
    let Some(due) = assessment.due.clone() else {
        return Ok(Outcome::Fresh);
    };
    if !tls.uses_acme() {
        return Ok(Outcome::Kept {
            cert: assessment.cert_path,
            reason: format!("tls.cert_file: {due}"),
            hint: files_hint(&due),
        });
    }
    let order = Order {
        names: tls.names(settings),
        directory: tls.acme_directory.clone(),
        reason: due.to_string(),
    };
    if dry_run {
        return Ok(Outcome::Obtained(order));
    }
    let record = super::read_record(state);
    if assessment.usable && record.waiting(now) {
        return Ok(Outcome::Kept {
            cert: assessment.cert_path,
            reason: format!(
                "renewal failed ({}); the certificate in place serves until {}",
                record.last_error.as_deref().unwrap_or("unknown error"),
                rfc3339(assessment.info.as_ref().map(|i| i.not_after)),
            ),
            hint: "the next attempt is paced (`livekit-provision status` shows when); `livekit-provision check` explains the failure".to_owned(),
        });
    }
    match super::obtain(state, settings, tls, now) {
        Ok(_) => Ok(Outcome::Obtained(order)),
        Err(e) if assessment.usable => Ok(Outcome::Kept {
            cert: assessment.cert_path,
            reason: format!(
                "renewal failed ({e}); the certificate in place serves until {}",
                rfc3339(assessment.info.as_ref().map(|i| i.not_after)),
            ),
            hint: e.hint(tls),
        }),
        Err(cause) => Err(CertificateError {
            names: order.names.join(", "),
            hint: cause.hint(tls),
            cause,
        }),
    }
}

fn files_hint(due: &Due) -> String {
    match due {
        Due::Missing | Due::Unreadable(_) => {
            "fix tls.cert_file and tls.key_file in provision.yaml (readable PEM files), or remove both to obtain a certificate by ACME".to_owned()
        }
        Due::Names(_) => {
            "get a certificate covering tls.domain (and tls.turn_domain), or remove cert_file and key_file to obtain one by ACME".to_owned()
        }
        Due::Expired | Due::Renewal => {
            "renew the certificate in tls.cert_file and run `livekit-provision ensure` (the front takes the new one without cutting a connection)".to_owned()
        }
    }
}

/// A time as RFC 3339 (`clock::rfc3339`), or `?`.
pub(crate) fn rfc3339(t: Option<SystemTime>) -> String {
    t.map_or_else(|| "?".to_owned(), crate::clock::rfc3339)
}
