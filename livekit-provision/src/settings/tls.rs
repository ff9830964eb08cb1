//! The `tls:` section of `provision.yaml`: a browser-grade node. Signaling is served as
//! `wss://<domain>` by the TLS front (a media process of ours, `tls-front`) on `port`, with a
//! certificate obtained and renewed by ACME (HTTP-01 on `http_port`), or from files the operator
//! keeps. When TURN/TLS is on, the same certificate also covers `turn_domain`, and the front
//! hands connections for that name, unopened, to livekit-server's TURN/TLS port (SNI routing):
//! clients are always sent `turns:<turn.domain>:443`, so both share 443.
//!
//! ```yaml
//! tls:
//!   domain: lk.example.com          # wss://lk.example.com
//!   turn_domain: turn.example.com   # with turn.tls_port: TURN/TLS through the same port
//!   acme_email: ops@example.com
//!   # port: 443  http_port: 80  acme_directory: <Let's Encrypt>  renew_before: <a third>
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Settings;
use super::changes::Span;
use super::turn::is_valid_domain;

/// Let's Encrypt's production ACME directory, the default `acme_directory`.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The longest `renew_before` accepted (Let's Encrypt certificates live 90 days).
pub const MAX_RENEW_BEFORE: Duration = Duration::from_secs(60 * 24 * 3600);

/// `tls.renew_before`: how long before expiry the certificate is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
#[schemars(with = "String")]
pub struct RenewBefore(pub Duration);

impl TryFrom<String> for RenewBefore {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        humantime::parse_duration(text.trim())
            .map(Self)
            .map_err(|e| format!("renew_before {text:?} is not a duration such as `30d`: {e}"))
    }
}

impl From<RenewBefore> for String {
    fn from(r: RenewBefore) -> Self {
        String::from(Span(r.0))
    }
}

/// The `tls:` section. Present means: serve `wss://domain` through the TLS front.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// The name browsers reach signaling at (`wss://<domain>`); the certificate covers it.
    pub domain: String,
    /// The name of TURN/TLS (`turn.domain`), when `turn.tls_port` is set: also covered by the
    /// certificate, and routed by the front to livekit-server's TURN/TLS port.
    pub turn_domain: Option<String>,
    /// The front's TLS port. Default 443.
    pub port: u16,
    /// The front's plain HTTP port: ACME HTTP-01 answers, everything else redirected to
    /// `https://`. Default 80 (HTTP-01 is always validated on 80 by public CAs).
    pub http_port: u16,
    /// The ACME directory (RFC 8555). Default Let's Encrypt.
    pub acme_directory: String,
    /// The contact address of the ACME account (expiry notices).
    pub acme_email: Option<String>,
    /// A PEM file of the root(s) to trust for `acme_directory` instead of the system's (a
    /// private ACME server, Pebble).
    pub acme_ca_root: Option<PathBuf>,
    /// Renew this long before expiry. Default: when a third of the lifetime is left.
    pub renew_before: Option<RenewBefore>,
    /// The operator's own PEM certificate chain instead of ACME (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// The private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            domain: String::new(),
            turn_domain: None,
            port: 443,
            http_port: 80,
            acme_directory: LETS_ENCRYPT.to_owned(),
            acme_email: None,
            acme_ca_root: None,
            renew_before: None,
            cert_file: None,
            key_file: None,
        }
    }
}

/// Why the `tls:` section was refused: the key, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tls.{key}: {problem}")]
pub struct TlsSettingsError {
    /// The key below `tls:`.
    pub key: &'static str,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub hint: String,
}

impl TlsSettings {
    /// True when the certificate comes from ACME (no `cert_file`).
    pub fn uses_acme(&self) -> bool {
        self.cert_file.is_none()
    }

    /// The names the certificate must cover: `domain`, then `turn_domain` when TURN/TLS uses
    /// it. Lower case, without a trailing dot.
    pub fn names(&self, settings: &Settings) -> Vec<String> {
        let mut names = vec![normal(&self.domain)];
        if let Some(turn) = self.turn_name(settings) {
            names.push(turn);
        }
        names
    }

    /// The TURN/TLS name the front routes to livekit-server, when TURN/TLS is on.
    pub fn turn_name(&self, settings: &Settings) -> Option<String> {
        if settings.turn.enabled && settings.turn.tls_port.is_some() && !settings.turn.external_tls
        {
            self.turn_domain.as_deref().map(normal)
        } else {
            None
        }
    }

    /// Cross-check the section against itself and the other managed ports of `settings`.
    pub fn validate(&self, settings: &Settings) -> Result<(), TlsSettingsError> {
        let invalid = |key, problem: String, hint: &str| TlsSettingsError {
            key,
            problem,
            hint: hint.to_owned(),
        };
        if !is_valid_domain(&self.domain) || self.domain.contains('*') {
            return Err(invalid(
                "domain",
                format!("{:?} is not a DNS name", self.domain),
                "set tls.domain to the name browsers connect to, e.g. lk.example.com (its DNS must point at this node)",
            ));
        }
        self.validate_turn(settings)?;
        self.validate_ports(settings)?;
        self.validate_source()
    }

    fn validate_turn(&self, settings: &Settings) -> Result<(), TlsSettingsError> {
        let turn_tls = settings.turn.enabled && settings.turn.tls_port.is_some();
        match &self.turn_domain {
            Some(name) if !is_valid_domain(name) || name.contains('*') => Err(TlsSettingsError {
                key: "turn_domain",
                problem: format!("{name:?} is not a DNS name"),
                hint: "set tls.turn_domain to the name TURN clients use, e.g. turn.example.com"
                    .to_owned(),
            }),
            Some(name) if normal(name) == normal(&self.domain) => Err(TlsSettingsError {
                key: "turn_domain",
                problem: format!("is tls.domain ({name}): the front tells TURN from signaling by the name alone"),
                hint: "give TURN a name of its own pointing at this node, e.g. turn.<domain>".to_owned(),
            }),
            Some(_) if !turn_tls => Err(TlsSettingsError {
                key: "turn_domain",
                problem: "is set but TURN/TLS is off (turn.enabled with turn.tls_port)".to_owned(),
                hint: "set turn.enabled: true and turn.tls_port (e.g. 5349), or remove tls.turn_domain".to_owned(),
            }),
            None if turn_tls && !settings.turn.external_tls && settings.turn.cert_file.is_none() => {
                Err(TlsSettingsError {
                    key: "turn_domain",
                    problem: "is required with turn.tls_port: clients are sent turns:<name>:443, which the front shares with wss:// by name".to_owned(),
                    hint: "set tls.turn_domain, e.g. turn.<domain>, and point its DNS at this node".to_owned(),
                })
            }
            _ => Ok(()),
        }
    }

    fn validate_ports(&self, settings: &Settings) -> Result<(), TlsSettingsError> {
        let mut taken = vec![
            ("port", settings.port),
            ("rtc_tcp_port", settings.rtc_tcp_port),
            ("backend_port", settings.backend_port),
        ];
        if let Some(p) = settings.turn.tls_port.filter(|_| settings.turn.enabled) {
            taken.push(("turn.tls_port", p));
        }
        if let Some(prometheus) = &settings.prometheus {
            taken.push(("prometheus.port", prometheus.port));
        }
        for (key, port) in [("port", self.port), ("http_port", self.http_port)] {
            if port == 0 {
                return Err(TlsSettingsError {
                    key,
                    problem: "must not be 0".to_owned(),
                    hint: format!(
                        "leave tls.{key} out for its default, or give a port from 1 to 65535"
                    ),
                });
            }
            if let Some((other, _)) = taken.iter().find(|(_, p)| *p == port) {
                return Err(TlsSettingsError {
                    key,
                    problem: format!("({port}) is {other}'s port too"),
                    hint: format!("give tls.{key} a TCP port of its own"),
                });
            }
            taken.push((
                if key == "port" {
                    "tls.port"
                } else {
                    "tls.http_port"
                },
                port,
            ));
        }
        Ok(())
    }

    fn validate_source(&self) -> Result<(), TlsSettingsError> {
        let invalid = |key, problem: &str, hint: &str| TlsSettingsError {
            key,
            problem: problem.to_owned(),
            hint: hint.to_owned(),
        };
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) | (None, Some(_)) => {
                return Err(invalid(
                    if self.cert_file.is_none() {
                        "cert_file"
                    } else {
                        "key_file"
                    },
                    "is missing: the operator's certificate needs both cert_file and key_file",
                    "set both tls.cert_file and tls.key_file, or neither to obtain one by ACME",
                ));
            }
            _ => {}
        }
        for (key, path) in [
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
            ("acme_ca_root", &self.acme_ca_root),
        ] {
            if path.as_ref().is_some_and(|p| !p.is_absolute()) {
                return Err(invalid(
                    key,
                    "is not an absolute path",
                    "give the absolute path",
                ));
            }
        }
        if !self.uses_acme() && (self.acme_email.is_some() || self.acme_ca_root.is_some()) {
            return Err(invalid(
                "cert_file",
                "is set, so the acme_* keys would be ignored",
                "remove tls.cert_file and tls.key_file to use ACME, or remove the acme_* keys",
            ));
        }
        let url_ok = self.acme_directory.starts_with("https://")
            && self.acme_directory.len() > "https://".len()
            && !self.acme_directory.contains(char::is_whitespace);
        if !url_ok {
            return Err(invalid(
                "acme_directory",
                "is not an https:// URL (RFC 8555 requires HTTPS)",
                "leave it out for Let's Encrypt, or give the https:// URL of an ACME directory",
            ));
        }
        if let Some(email) = &self.acme_email {
            let ok = email.split_once('@').is_some_and(|(user, host)| {
                !user.is_empty() && host.contains('.') && !host.starts_with('.')
            }) && !email.contains(|c: char| c.is_whitespace() || c == ',' || c == ':');
            if !ok {
                return Err(invalid(
                    "acme_email",
                    "is not an e-mail address",
                    "give one address, e.g. ops@example.com (the CA sends expiry notices there)",
                ));
            }
        }
        match self.renew_before {
            Some(RenewBefore(d)) if d.is_zero() || d > MAX_RENEW_BEFORE => Err(invalid(
                "renew_before",
                "must be above 0 and at most 60d",
                "leave it out to renew when a third of the lifetime is left (30 days for Let's Encrypt)",
            )),
            _ => Ok(()),
        }
    }

    /// When to renew a certificate valid from `not_before` to `not_after`: `renew_before`
    /// ahead of the end, or when a third of the lifetime is left.
    pub fn renew_at(
        &self,
        not_before: std::time::SystemTime,
        not_after: std::time::SystemTime,
    ) -> std::time::SystemTime {
        let lifetime = not_after
            .duration_since(not_before)
            .unwrap_or(Duration::ZERO);
        let ahead = self
            .renew_before
            .map_or(lifetime / 3, |r| r.0.min(lifetime));
        not_after.checked_sub(ahead).unwrap_or(not_before)
    }
}

fn normal(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(yaml: &str) -> String {
        Settings::from_yaml(yaml).unwrap_err().to_string()
    }

    #[test]
    fn a_domain_alone_is_a_whole_section() {
        let s = Settings::from_yaml("tls:\n  domain: lk.example.com\n").unwrap();
        let tls = s.tls.as_ref().unwrap();
        assert_eq!((tls.port, tls.http_port), (443, 80));
        assert_eq!(tls.acme_directory, LETS_ENCRYPT);
        assert!(tls.uses_acme());
        assert_eq!(tls.names(&s), ["lk.example.com"]);
    }

    #[test]
    fn turn_tls_shares_the_certificate_under_its_own_name() {
        let yaml = "tls:\n  domain: LK.example.com.\n  turn_domain: turn.example.com\nturn:\n  enabled: true\n  tls_port: 5349\n";
        let s = Settings::from_yaml(yaml).unwrap();
        let tls = s.tls.as_ref().unwrap();
        assert_eq!(tls.names(&s), ["lk.example.com", "turn.example.com"]);
        assert_eq!(tls.turn_name(&s).as_deref(), Some("turn.example.com"));
    }

    #[test]
    fn bad_sections_are_refused_by_key() {
        for (yaml, key) in [
            ("tls:\n  port: 443\n", "tls.domain"),
            ("tls:\n  domain: bad_name\n", "tls.domain"),
            ("tls:\n  domain: '*.example.com'\n", "tls.domain"),
            ("tls:\n  domain: a.example.com\n  port: 7880\n", "tls.port"),
            (
                "tls:\n  domain: a.example.com\n  http_port: 0\n",
                "tls.http_port",
            ),
            (
                "tls:\n  domain: a.example.com\n  port: 8443\n  http_port: 8443\n",
                "tls.http_port",
            ),
            (
                "tls:\n  domain: a.example.com\n  acme_directory: http://ca/dir\n",
                "tls.acme_directory",
            ),
            (
                "tls:\n  domain: a.example.com\n  acme_email: nobody\n",
                "tls.acme_email",
            ),
            (
                "tls:\n  domain: a.example.com\n  acme_ca_root: root.pem\n",
                "tls.acme_ca_root",
            ),
            (
                "tls:\n  domain: a.example.com\n  cert_file: /c.pem\n",
                "tls.key_file",
            ),
            (
                "tls:\n  domain: a.example.com\n  cert_file: /c.pem\n  key_file: /k.pem\n  acme_email: a@b.co\n",
                "tls.cert_file",
            ),
            (
                "tls:\n  domain: a.example.com\n  renew_before: 0s\n",
                "tls.renew_before",
            ),
            (
                "tls:\n  domain: a.example.com\n  renew_before: 90d\n",
                "tls.renew_before",
            ),
            (
                "tls:\n  domain: a.example.com\n  renew_before: soon\n",
                "renew_before",
            ),
            (
                "tls:\n  domain: a.example.com\n  turn_domain: t.example.com\n",
                "tls.turn_domain",
            ),
            (
                "tls:\n  domain: a.example.com\nturn:\n  enabled: true\n  tls_port: 5349\n",
                "tls.turn_domain",
            ),
            (
                "tls:\n  domain: a.example.com\n  turn_domain: A.example.com\nturn:\n  enabled: true\n  tls_port: 5349\n",
                "tls.turn_domain",
            ),
            (
                "tls:\n  domain: a.example.com\n  port: 5349\n  turn_domain: t.example.com\nturn:\n  enabled: true\n  tls_port: 5349\n",
                "tls.port",
            ),
            ("tls:\n  domain: a.example.com\n  domian: x\n", "domian"),
        ] {
            let e = refused(yaml);
            assert!(e.contains(key), "{yaml:?}: {e}");
        }
    }

    #[test]
    fn renewal_is_a_third_of_the_lifetime_ahead_unless_set() {
        let start = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let end = start + Duration::from_secs(90 * 24 * 3600);
        let tls = TlsSettings::default();
        assert_eq!(
            tls.renew_at(start, end),
            end - Duration::from_secs(30 * 24 * 3600)
        );
        let tls = TlsSettings {
            renew_before: Some(RenewBefore(Duration::from_secs(3600))),
            ..TlsSettings::default()
        };
        assert_eq!(tls.renew_at(start, end), end - Duration::from_secs(3600));
    }
}
