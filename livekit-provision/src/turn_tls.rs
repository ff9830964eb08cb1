//! The TURN/TLS certificate and key that `provision.yaml`'s `turn:` names, inspected the way
//! livekit-server will load them (`tls.LoadX509KeyPair`): readable, a PEM chain and a PEM key
//! that belong together, a leaf that covers `turn.domain` and is valid now. `ensure` refuses on
//! an error before anything is written; `check` reports each issue under its code.
//!
//! Nothing is parsed by hand: PEM through `rustls-pki-types`, the key through rustls' aws-lc-rs
//! provider, the key/certificate match through `CertifiedKey::keys_match` (SubjectPublicKeyInfo
//! comparison), the name through webpki (`verify_server_name`: SANs only, a wildcard covers
//! exactly one leftmost label), the validity dates through `x509-cert`.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use x509_cert::der::Decode as _;
use zeroize::Zeroizing;

use crate::settings::TurnSettings;

/// A certificate that expires within this long is reported (a warning, not a refusal).
pub(crate) const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

const DAY: u64 = 24 * 3600;

/// A certificate that starts within this long is taken as valid now: a CA that does not
/// backdate (Pebble) issues one valid from the second it signs, and clocks differ a little.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Something wrong with the TURN certificate or key. Every variant names the file; only
/// [`TlsIssue::ExpiresSoon`] and [`TlsIssue::KeyOwner`] are warnings, the rest make `ensure`
/// refuse before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsIssue {
    /// The file does not exist or cannot be read by this user (the one livekit-server runs as).
    #[error("turn.{key} {} cannot be read: {reason}", path.display())]
    Unreadable {
        /// `cert_file` or `key_file`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The file holds no usable PEM certificate or key.
    #[error("turn.{key} {}: {reason}", path.display())]
    Invalid {
        /// `cert_file` or `key_file`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The private key is readable (or writable) by every user.
    #[error("turn.key_file {} has mode {mode:04o}: the private key is open to every user", path.display())]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The private key belongs to another user than this one and root (a warning).
    #[error("turn.key_file {} belongs to uid {owner}, neither this user ({uid}) nor root", path.display())]
    KeyOwner {
        /// The key file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// The user livekit-server runs as.
        uid: u32,
    },
    /// The key is not the key of the certificate.
    #[error("turn.key_file {} is not the private key of the certificate in {}", key_path.display(), cert_path.display())]
    KeyMismatch {
        /// The key file.
        key_path: PathBuf,
        /// The certificate file.
        cert_path: PathBuf,
    },
    /// The certificate does not cover `turn.domain`.
    #[error("turn.cert_file {} does not cover turn.domain {domain}: its names are {}", path.display(), names.join(", "))]
    WrongDomain {
        /// The certificate file.
        path: PathBuf,
        /// The configured domain.
        domain: String,
        /// The DNS names the certificate holds (subjectAltName).
        names: Vec<String>,
    },
    /// The certificate has expired.
    #[error("turn.cert_file {} expired {days} days ago", path.display())]
    Expired {
        /// The certificate file.
        path: PathBuf,
        /// Whole days since it expired.
        days: u64,
    },
    /// The certificate is not valid yet.
    #[error("turn.cert_file {} is not valid for another {days} days", path.display())]
    NotYetValid {
        /// The certificate file.
        path: PathBuf,
        /// Whole days until it becomes valid.
        days: u64,
    },
    /// The certificate expires within 30 days (`EXPIRY_WARNING`; a warning).
    #[error("turn.cert_file {} expires in {days} days", path.display())]
    ExpiresSoon {
        /// The certificate file.
        path: PathBuf,
        /// Whole days left.
        days: u64,
    },
}

impl TlsIssue {
    /// True for a problem that stops livekit-server (or makes TURN/TLS fail for every client);
    /// false for a warning.
    pub fn is_error(&self) -> bool {
        !matches!(self, Self::ExpiresSoon { .. } | Self::KeyOwner { .. })
    }

    /// The file the issue is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Unreadable { path, .. }
            | Self::Invalid { path, .. }
            | Self::KeyPermissions { path, .. }
            | Self::KeyOwner { path, .. }
            | Self::WrongDomain { path, .. }
            | Self::Expired { path, .. }
            | Self::NotYetValid { path, .. }
            | Self::ExpiresSoon { path, .. } => path,
            Self::KeyMismatch { key_path, .. } => key_path,
        }
    }

    /// How to fix it.
    pub fn hint(&self) -> String {
        match self {
            Self::Unreadable { key, .. } => format!(
                "fix turn.{key} in provision.yaml, or make the file readable by the user livekit-server runs as (this one)"
            ),
            Self::Invalid { key: "cert_file", .. } => {
                "turn.cert_file must be the PEM certificate chain (-----BEGIN CERTIFICATE-----), leaf first".to_owned()
            }
            Self::Invalid { .. } => {
                "turn.key_file must be the PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC) of the certificate".to_owned()
            }
            Self::KeyPermissions { path, .. } => {
                format!("chmod o-rwx {}", crate::shell::quote(path))
            }
            Self::KeyOwner { path, .. } => format!(
                "chown the key to the user livekit-server runs as (or root), e.g. chown \"$(id -u)\" {}",
                crate::shell::quote(path)
            ),
            Self::KeyMismatch { .. } => {
                "point turn.key_file and turn.cert_file at a key and the certificate issued for it".to_owned()
            }
            Self::WrongDomain { .. } => {
                "set turn.domain to a name the certificate covers, or get a certificate for turn.domain".to_owned()
            }
            Self::Expired { .. } | Self::ExpiresSoon { .. } => {
                "renew the certificate (e.g. certbot renew) and run `livekit-provision ensure`; a running livekit-server reads it only at start".to_owned()
            }
            Self::NotYetValid { .. } => {
                "check the clock of this machine, or use a certificate valid now".to_owned()
            }
        }
    }
}

/// Inspect the certificate and key of `turn` as the user `uid` (the one livekit-server runs as)
/// at `now`. Empty when TURN/TLS loads no certificate (disabled, no `tls_port`, `external_tls`)
/// or when everything is fine. Read-only.
pub fn inspect(turn: &TurnSettings, now: SystemTime, uid: u32) -> Vec<TlsIssue> {
    let (Some(cert_path), Some(key_path)) = (&turn.cert_file, &turn.key_file) else {
        return Vec::new();
    };
    if !turn.loads_certificate() {
        return Vec::new();
    }
    let mut issues = Vec::new();
    let cert = read(cert_path, "cert_file", &mut issues);
    let key = read(key_path, "key_file", &mut issues);
    key_file_mode(key_path, uid, &mut issues);
    let (Some(cert), Some(key)) = (cert, key) else {
        return issues;
    };
    let chain = match CertificateDer::pem_slice_iter(&cert).collect::<Result<Vec<_>, _>>() {
        Ok(chain) => chain,
        Err(e) => {
            issues.push(invalid("cert_file", cert_path, format!("is not PEM: {e}")));
            return issues;
        }
    };
    let Some(leaf) = chain.first() else {
        issues.push(invalid(
            "cert_file",
            cert_path,
            "holds no PEM certificate".to_owned(),
        ));
        return issues;
    };
    let parsed = match rustls::server::ParsedCertificate::try_from(leaf) {
        Ok(parsed) => parsed,
        Err(e) => {
            let reason = format!("its first certificate cannot be read: {e}");
            issues.push(invalid("cert_file", cert_path, reason));
            return issues;
        }
    };
    issues.extend(key_matches(&chain, &key, cert_path, key_path));
    if let Some(domain) = &turn.domain {
        let name = domain
            .strip_suffix('.')
            .unwrap_or(domain)
            .to_ascii_lowercase();
        let covered = ServerName::try_from(name)
            .is_ok_and(|name| rustls::client::verify_server_name(&parsed, &name).is_ok());
        if !covered {
            issues.push(TlsIssue::WrongDomain {
                path: cert_path.clone(),
                domain: domain.clone(),
                names: dns_names(leaf),
            });
        }
    }
    issues.extend(validity(leaf, cert_path, now));
    issues
}

fn invalid(key: &'static str, path: &Path, reason: String) -> TlsIssue {
    TlsIssue::Invalid {
        key,
        path: path.to_owned(),
        reason,
    }
}

/// The key file's mode (nothing for others) and owner (this user or root).
fn key_file_mode(path: &Path, uid: u32, issues: &mut Vec<TlsIssue>) {
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.mode() & 0o7777;
    if mode & 0o007 != 0 {
        issues.push(TlsIssue::KeyPermissions {
            path: path.to_owned(),
            mode,
        });
    }
    if meta.uid() != uid && meta.uid() != 0 {
        issues.push(TlsIssue::KeyOwner {
            path: path.to_owned(),
            owner: meta.uid(),
            uid,
        });
    }
}

/// The PEM key loads with the aws-lc-rs provider and its public key is the leaf's.
fn key_matches(
    chain: &[CertificateDer<'static>],
    key: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Option<TlsIssue> {
    let der = match PrivateKeyDer::from_pem_slice(key) {
        Ok(der) => der,
        Err(e) => {
            let reason = format!("holds no PEM private key: {e}");
            return Some(invalid("key_file", key_path, reason));
        }
    };
    let signing_key = match rustls::crypto::aws_lc_rs::sign::any_supported_type(&der) {
        Ok(signing_key) => signing_key,
        Err(e) => {
            let reason = format!("is not a usable private key: {e}");
            return Some(invalid("key_file", key_path, reason));
        }
    };
    let certified = rustls::sign::CertifiedKey::new(chain.to_vec(), signing_key);
    certified.keys_match().err().map(|_| TlsIssue::KeyMismatch {
        key_path: key_path.to_owned(),
        cert_path: cert_path.to_owned(),
    })
}

/// Expired, not yet valid, or expiring within [`EXPIRY_WARNING`] at `now`.
fn validity(leaf: &CertificateDer<'_>, path: &Path, now: SystemTime) -> Option<TlsIssue> {
    let x509 = match x509_cert::Certificate::from_der(leaf.as_ref()) {
        Ok(x509) => x509,
        Err(e) => {
            let reason = format!("its validity dates cannot be read: {e}");
            return Some(invalid("cert_file", path, reason));
        }
    };
    let dates = x509.tbs_certificate().validity();
    let not_before = SystemTime::UNIX_EPOCH + dates.not_before.to_unix_duration();
    let not_after = SystemTime::UNIX_EPOCH + dates.not_after.to_unix_duration();
    let days = |d: Duration| d.as_secs() / DAY;
    let path = path.to_owned();
    if let Ok(ago) = now.duration_since(not_after) {
        Some(TlsIssue::Expired {
            path,
            days: days(ago),
        })
    } else if let Ok(ahead) = not_before.duration_since(now)
        && ahead > CLOCK_SKEW
    {
        Some(TlsIssue::NotYetValid {
            path,
            days: days(ahead),
        })
    } else {
        match not_after.duration_since(now) {
            Ok(left) if left < EXPIRY_WARNING => Some(TlsIssue::ExpiresSoon {
                path,
                days: days(left),
            }),
            _ => None,
        }
    }
}

/// The bytes of `path` (zeroized when dropped: one of the two is a private key).
fn read(path: &Path, key: &'static str, issues: &mut Vec<TlsIssue>) -> Option<Zeroizing<Vec<u8>>> {
    match crate::fsio::read_regular(path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            issues.push(TlsIssue::Unreadable {
                key,
                path: path.to_owned(),
                reason: e.to_string(),
            });
            None
        }
    }
}

/// The DNS names of a certificate's subjectAltName, for the message of [`TlsIssue::WrongDomain`].
fn dns_names(leaf: &CertificateDer<'_>) -> Vec<String> {
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    let Ok(x509) = x509_cert::Certificate::from_der(leaf.as_ref()) else {
        return Vec::new();
    };
    let names: Vec<String> = match x509.tbs_certificate().get_extension::<SubjectAltName>() {
        Ok(Some((_, san))) => san
            .0
            .iter()
            .filter_map(|name| match name {
                GeneralName::DnsName(dns) => Some(dns.as_str().to_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        vec!["(no DNS names)".to_owned()]
    } else {
        names
    }
}
