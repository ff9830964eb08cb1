//! What a PEM certificate chain is: names, issuer, serial, validity, fingerprint, and whether
//! the chain is linked. Parsed by `rustls-pki-types` (PEM) and `x509-cert` (DER), never by hand.

use std::io;
use std::path::Path;
use std::time::SystemTime;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use sha2::{Digest as _, Sha256};
use x509_cert::der::{Decode as _, Encode as _};

/// A certificate as the front and TURN/TLS will serve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The leaf's DNS names (subjectAltName).
    pub names: Vec<String>,
    /// The leaf's issuer (RFC 4514).
    pub issuer: String,
    /// The leaf's serial number, hex.
    pub serial: String,
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
    /// SHA-256 of the leaf (DER), hex: what changes when it is renewed.
    pub sha256: String,
    /// Certificates in the file, leaf first.
    pub chain_len: usize,
    /// A chain whose certificates do not follow each other (each one's issuer the next one's
    /// subject): clients that lack the intermediate refuse it.
    pub chain_problem: Option<String>,
}

/// Why a certificate file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertReadError {
    /// `NotFound` when there is no file.
    pub kind: io::ErrorKind,
    /// What went wrong, naming the file.
    pub message: String,
}

impl CertificateInfo {
    /// True when the leaf covers `name` (exactly, or by a wildcard of one leftmost label).
    pub fn covers(&self, name: &str) -> bool {
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        self.names.iter().any(|n| {
            let n = n.to_ascii_lowercase();
            n == name
                || n.strip_prefix("*.")
                    .is_some_and(|base| name.split_once('.').is_some_and(|(_, rest)| rest == base))
        })
    }
}

/// A signing key for the PEM chain and key: `Err` says why it is not the chain's own key (or
/// not a usable key). What the front serves, and how `check` and TURN/TLS judge a key.
pub fn certified_key(
    chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<std::sync::Arc<rustls::sign::CertifiedKey>, String> {
    use rustls::pki_types::PrivateKeyDer;
    let chain = CertificateDer::pem_slice_iter(chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the certificate is not PEM: {e}"))?;
    if chain.is_empty() {
        return Err("the certificate file holds no PEM certificate".to_owned());
    }
    let der = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| format!("the key file holds no PEM private key: {e}"))?;
    let signing_key = rustls::crypto::aws_lc_rs::sign::any_supported_type(&der)
        .map_err(|e| format!("the key file is not a usable private key: {e}"))?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing_key);
    certified
        .keys_match()
        .map_err(|_| "the key file is not the private key of the certificate".to_owned())?;
    Ok(std::sync::Arc::new(certified))
}

/// Read the chain at `path`.
pub fn read_certificate(path: &Path) -> Result<CertificateInfo, CertReadError> {
    let bytes = crate::fsio::read_regular(path).map_err(|e| CertReadError {
        kind: e.kind(),
        message: format!("{}: {e}", path.display()),
    })?;
    parse_chain(&bytes).map_err(|reason| CertReadError {
        kind: io::ErrorKind::InvalidData,
        message: format!("{}: {reason}", path.display()),
    })
}

/// Parse a PEM chain, leaf first.
pub(crate) fn parse_chain(pem: &[u8]) -> Result<CertificateInfo, String> {
    let ders = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("is not PEM: {e}"))?;
    let certs = ders
        .iter()
        .map(|d| x509_cert::Certificate::from_der(d.as_ref()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("holds a certificate that cannot be read: {e}"))?;
    let Some(leaf) = certs.first() else {
        return Err("holds no PEM certificate".to_owned());
    };
    let tbs = leaf.tbs_certificate();
    let validity = tbs.validity();
    let chain_problem = certs.windows(2).enumerate().find_map(|(i, pair)| {
        let issuer = pair[0].tbs_certificate().issuer().to_der().ok();
        let subject = pair[1].tbs_certificate().subject().to_der().ok();
        (issuer != subject).then(|| {
            format!(
                "certificate {} was issued by {}, but the next one in the file is {}",
                i + 1,
                pair[0].tbs_certificate().issuer(),
                pair[1].tbs_certificate().subject()
            )
        })
    });
    Ok(CertificateInfo {
        names: san_names(leaf),
        issuer: tbs.issuer().to_string(),
        serial: crate::hex::encode(tbs.serial_number().as_bytes()),
        not_before: SystemTime::UNIX_EPOCH + validity.not_before.to_unix_duration(),
        not_after: SystemTime::UNIX_EPOCH + validity.not_after.to_unix_duration(),
        sha256: crate::hex::encode(&Sha256::digest(ders[0].as_ref())),
        chain_len: certs.len(),
        chain_problem,
    })
}

fn san_names(leaf: &x509_cert::Certificate) -> Vec<String> {
    use x509_cert::ext::pkix::SubjectAltName;
    use x509_cert::ext::pkix::name::GeneralName;
    match leaf.tbs_certificate().get_extension::<SubjectAltName>() {
        Ok(Some((_, san))) => san
            .0
            .iter()
            .filter_map(|name| match name {
                GeneralName::DnsName(dns) => Some(dns.as_str().to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf_and_root(root_name: &str) -> (String, String) {
        let root_key = rcgen::KeyPair::generate().unwrap();
        let mut root_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        root_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        root_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, root_name);
        let root = root_params.self_signed(&root_key).unwrap();
        let issuer = rcgen::Issuer::new(root_params, root_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![
            "lk.example.com".to_owned(),
            "*.t.example.com".to_owned(),
        ])
        .unwrap();
        let leaf = params.signed_by(&key, &issuer).unwrap();
        (leaf.pem(), root.pem())
    }

    #[test]
    fn a_linked_chain_is_read_with_names_issuer_and_dates() {
        let (leaf, root) = leaf_and_root("Test Root");
        let info = parse_chain(format!("{leaf}{root}").as_bytes()).unwrap();
        assert_eq!(info.names, ["lk.example.com", "*.t.example.com"]);
        assert!(info.issuer.contains("Test Root"), "{}", info.issuer);
        assert_eq!(info.chain_len, 2);
        assert_eq!(info.chain_problem, None);
        assert!(info.not_after > info.not_before);
        assert_eq!(info.sha256.len(), 64);
        assert!(info.covers("LK.example.com."));
        assert!(info.covers("turn.t.example.com"));
        assert!(!info.covers("a.b.t.example.com"));
        assert!(!info.covers("example.com"));
    }

    #[test]
    fn a_chain_out_of_order_is_named() {
        let (leaf, _) = leaf_and_root("Test Root");
        let (_, other_root) = leaf_and_root("Other Root");
        let info = parse_chain(format!("{leaf}{other_root}").as_bytes()).unwrap();
        assert!(info.chain_problem.unwrap().contains("was issued by"));
    }

    #[test]
    fn not_a_certificate_is_an_error() {
        assert!(
            parse_chain(b"hello")
                .unwrap_err()
                .contains("no PEM certificate")
        );
        assert!(
            read_certificate(Path::new("/nonexistent/cert.pem"))
                .is_err_and(|e| e.kind == io::ErrorKind::NotFound)
        );
    }
}
