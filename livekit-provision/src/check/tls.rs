//! `check`'s findings about the certificate of `tls:`: missing, unreadable, not covering the
//! names, expired, past its renewal time, a broken chain, a key that is not its key or is open
//! to others, the last ACME attempt failing. Read-only.

use std::os::unix::fs::MetadataExt as _;
use std::time::{Duration, SystemTime};

use super::Finding;
use super::code::{Code, Severity};
use crate::paths::StateDir;
use crate::settings::Settings;
use crate::tls::{self, Due};

const DAY: u64 = 86_400;

fn finding(
    code: Code,
    severity: Severity,
    file: &std::path::Path,
    message: String,
    hint: String,
) -> Finding {
    Finding {
        code,
        severity,
        files: vec![file.to_owned()],
        message,
        hint: Some(hint),
    }
}

/// The findings for `settings.tls` at `now` (none without a `tls:` section).
pub(super) fn findings(state: &StateDir, settings: &Settings, now: SystemTime) -> Vec<Finding> {
    use Severity::{Error, Warning};
    let Some(tls) = &settings.tls else {
        return Vec::new();
    };
    let a = tls::assess(state, settings, tls, now);
    let path = &a.cert_path;
    let mut out = Vec::new();
    let obtain = if tls.uses_acme() {
        format!(
            "run `livekit-provision ensure` (the daemon does it by itself): it obtains one from {}; the CA must reach http://{}:{}/.well-known/acme-challenge/ on this node",
            tls.acme_directory, tls.domain, tls.http_port
        )
    } else {
        "fix tls.cert_file and tls.key_file in provision.yaml".to_owned()
    };
    let record = tls::read_record(state);
    let Some(info) = &a.info else {
        let (code, message) = match &a.due {
            Some(Due::Unreadable(e)) => (
                Code::TlsInvalid,
                format!("the TLS certificate cannot be read: {e}"),
            ),
            _ => (
                Code::TlsMissing,
                format!(
                    "there is no TLS certificate for {} yet: nothing serves wss://",
                    tls.domain
                ),
            ),
        };
        out.push(finding(
            code,
            Error,
            path,
            with_last_error(message, &record),
            obtain,
        ));
        return out;
    };
    let left = info.not_after.duration_since(now).unwrap_or(Duration::ZERO);
    let summary = format!(
        "{} (issuer {}, expires {}, {} days left)",
        path.display(),
        info.issuer,
        crate::clock::rfc3339(info.not_after),
        left.as_secs() / DAY
    );
    match &a.due {
        Some(Due::Names(missing)) => out.push(finding(
            Code::TlsNames,
            Error,
            path,
            format!("{summary} does not cover {}: its names are {}", missing.join(", "), info.names.join(", ")),
            obtain.clone(),
        )),
        Some(Due::Expired) => out.push(finding(
            Code::TlsExpired,
            Error,
            path,
            format!("{summary} has expired: browsers refuse wss://"),
            obtain.clone(),
        )),
        Some(Due::Renewal) => out.push(finding(
            Code::TlsExpiring,
            Warning,
            path,
            format!("{summary} is past its renewal time ({})", tls::provision_rfc3339(a.renew_at)),
            "the daemon renews it; `livekit-provision ensure` renews it now".to_owned(),
        )),
        _ if !tls.uses_acme() && left < crate::turn_tls::EXPIRY_WARNING => out.push(finding(
            Code::TlsExpiring,
            Warning,
            path,
            format!("{summary} expires within 30 days"),
            "renew it and run `livekit-provision ensure`: the front takes the new one without cutting a connection".to_owned(),
        )),
        _ => {}
    }
    if let Some(problem) = &info.chain_problem {
        out.push(finding(
            Code::TlsChain,
            Error,
            path,
            format!("{}: {problem}", path.display()),
            "put the chain in order: the leaf first, then each issuer (the file the CA gave as fullchain)".to_owned(),
        ));
    }
    out.extend(key_findings(state, tls, path));
    out.extend(renewal_failing(tls, &record, path));
    out
}

fn renewal_failing(
    tls: &crate::settings::TlsSettings,
    record: &tls::AcmeRecord,
    path: &std::path::Path,
) -> Option<Finding> {
    let error = record.last_error.as_ref().filter(|_| tls.uses_acme())?;
    Some(finding(
        Code::TlsRenewalFailing,
        Severity::Warning,
        path,
        format!(
            "the last ACME attempt failed ({} in a row): {error}; the certificate in place serves on",
            record.failures
        ),
        "see the hint of `livekit-provision ensure`; the next attempt is paced (`livekit-provision status`)".to_owned(),
    ))
}

fn with_last_error(message: String, record: &tls::AcmeRecord) -> String {
    match &record.last_error {
        Some(e) => format!("{message}; the last ACME attempt failed: {e}"),
        None => message,
    }
}

/// The key: not open to others, and the certificate's own.
fn key_findings(
    state: &StateDir,
    tls: &crate::settings::TlsSettings,
    cert: &std::path::Path,
) -> Vec<Finding> {
    let (_, key) = tls::certificate_paths(state, tls);
    let mut out = Vec::new();
    if let Ok(meta) = std::fs::metadata(&key)
        && meta.mode() & 0o077 != 0
    {
        out.push(finding(
            Code::TlsKeyPermissions,
            Severity::Error,
            &key,
            format!(
                "{} has mode {:04o}: the private key is open to others",
                key.display(),
                meta.mode() & 0o7777
            ),
            format!("chmod 600 {}", key.display()),
        ));
    }
    let pair = (
        crate::fsio::read_regular(cert),
        crate::fsio::read_regular(&key),
    );
    let problem = match pair {
        (Ok(c), Ok(k)) => tls::certified_key(&c, &k).err(),
        (_, Err(e)) => Some(format!("the key file cannot be read: {e}")),
        (Err(_), _) => None,
    };
    if let Some(problem) = problem {
        out.push(finding(
            Code::TlsInvalid,
            Severity::Error,
            &key,
            format!("{}: {problem}", key.display()),
            if tls.uses_acme() {
                "run `livekit-provision ensure` to obtain a new certificate and key".to_owned()
            } else {
                "give tls.key_file the key the certificate in tls.cert_file was issued for"
                    .to_owned()
            },
        ));
    }
    out
}
