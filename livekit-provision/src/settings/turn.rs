//! livekit-server's embedded TURN server as `provision.yaml` sets it: the typed `turn:` section
//! (the `turn` field of [`Settings`]) and its cross-checks (required keys, the domain, absolute
//! certificate paths, clashes with the other managed ports). The `turn:` block of `livekit.yaml`
//! is rendered and parsed by `render/turn.rs`; the certificate and key are inspected by
//! `turn_tls.rs`.
//!
//! The keys are livekit-server's `TURNConfig` (pkg/config/config.go), identical from 1.7.2 to
//! 1.13.5: `enabled`, `domain`, `cert_file`, `key_file`, `tls_port`, `udp_port`,
//! `relay_range_start`, `relay_range_end`, `external_tls`. Later keys (`bind_addresses` 1.11,
//! `ttl_seconds` 1.12, …) are not managed: 1.7 refuses them.

use std::ops::RangeInclusive;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Settings;

/// The relay range livekit-server uses when `relay_range_start`/`relay_range_end` are unset
/// (pkg/config/config.go `NewConfig`, outside development mode).
pub const DEFAULT_RELAY_RANGE: RangeInclusive<u16> = 30000..=40000;

/// The `turn:` section of `provision.yaml`. Nothing is rendered, and no file is checked, unless
/// `enabled` is true.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TurnSettings {
    /// Run livekit-server's TURN server (`turn.enabled`).
    pub enabled: bool,
    /// The name clients reach TURN/TLS at (`turn.domain`); the certificate must cover it.
    pub domain: Option<String>,
    /// TURN over TLS, a TCP port (`turn.tls_port`); clients are told port 443, so this is 443
    /// or a load balancer forwards 443 to it.
    pub tls_port: Option<u16>,
    /// TURN over UDP, a UDP port (`turn.udp_port`), usually 3478.
    pub udp_port: Option<u16>,
    /// First UDP port of the relay range (`turn.relay_range_start`); default 30000.
    pub relay_range_start: Option<u16>,
    /// Last UDP port of the relay range (`turn.relay_range_end`); default 40000.
    pub relay_range_end: Option<u16>,
    /// The PEM certificate chain, leaf first (`turn.cert_file`).
    pub cert_file: Option<PathBuf>,
    /// The PEM private key of the certificate (`turn.key_file`).
    pub key_file: Option<PathBuf>,
    /// TLS is terminated in front of livekit-server (a load balancer): `tls_port` takes plain
    /// TCP and no certificate is loaded (`turn.external_tls`).
    pub external_tls: bool,
}

/// Why the `turn:` section of `provision.yaml` was refused. Every variant names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TurnSettingsError {
    /// A value that is wrong on its own, or missing when another needs it.
    #[error("turn.{key}: {problem}")]
    Invalid {
        /// The key below `turn:`.
        key: &'static str,
        /// What is wrong.
        problem: String,
        /// How to fix it.
        hint: &'static str,
    },
    /// A TURN port that another managed listener of the same protocol already uses.
    #[error("turn.{key} ({proto} {ports}) clashes with {other} ({proto} {other_ports})")]
    PortClash {
        /// The TURN key.
        key: &'static str,
        /// `TCP` or `UDP`.
        proto: &'static str,
        /// The TURN port or range.
        ports: String,
        /// The other setting (`port`, `rtc_port_range_start-rtc_port_range_end`, …).
        other: &'static str,
        /// Its port or range.
        other_ports: String,
    },
}

impl TurnSettingsError {
    /// How to fix it.
    pub fn hint(&self) -> String {
        match self {
            Self::Invalid { hint, .. } => (*hint).to_owned(),
            Self::PortClash { key, .. } => format!(
                "give turn.{key} a port of its own in provision.yaml: a TCP port may not be used twice, a UDP port may not be used twice (a TCP and a UDP port may share a number)"
            ),
        }
    }
}

/// A port or an inclusive port range of one protocol, named for messages.
struct Listener {
    name: &'static str,
    tcp: bool,
    ports: RangeInclusive<u16>,
}

fn show(ports: &RangeInclusive<u16>) -> String {
    if ports.start() == ports.end() {
        ports.start().to_string()
    } else {
        format!("{}-{}", ports.start(), ports.end())
    }
}

impl TurnSettings {
    /// The relay range livekit-server will use: the one configured or its default.
    pub fn relay_range(&self) -> RangeInclusive<u16> {
        match (self.relay_range_start, self.relay_range_end) {
            (Some(start), Some(end)) => start..=end,
            _ => DEFAULT_RELAY_RANGE,
        }
    }

    /// True when the TLS certificate and key are loaded by livekit-server (a TLS port, TLS not
    /// terminated in front of it).
    pub fn loads_certificate(&self) -> bool {
        self.enabled && self.tls_port.is_some() && !self.external_tls
    }

    /// Cross-check the section against itself and the other managed ports of `settings`.
    /// A disabled section is not checked.
    pub fn validate(&self, settings: &Settings) -> Result<(), TurnSettingsError> {
        if !self.enabled {
            return Ok(());
        }
        let invalid = |key, problem: &str, hint| TurnSettingsError::Invalid {
            key,
            problem: problem.to_owned(),
            hint,
        };
        for (key, port) in [
            ("tls_port", self.tls_port),
            ("udp_port", self.udp_port),
            ("relay_range_start", self.relay_range_start),
            ("relay_range_end", self.relay_range_end),
        ] {
            if port == Some(0) {
                return Err(invalid(
                    key,
                    "must not be 0",
                    "leave the key out, or give a port from 1 to 65535",
                ));
            }
        }
        if self.tls_port.is_none() && self.udp_port.is_none() {
            return Err(invalid(
                "enabled",
                "is true but neither tls_port nor udp_port is set (livekit-server then refuses to start: invalid TURN ports)",
                "set turn.tls_port (TURN/TLS, e.g. 443 or 5349) and/or turn.udp_port (e.g. 3478)",
            ));
        }
        match (self.relay_range_start, self.relay_range_end) {
            (Some(start), Some(end)) if start > end => {
                return Err(invalid(
                    "relay_range_start",
                    &format!("({start}) is above turn.relay_range_end ({end})"),
                    "swap them, or leave both out for livekit-server's 30000-40000",
                ));
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(invalid(
                    if self.relay_range_start.is_none() {
                        "relay_range_start"
                    } else {
                        "relay_range_end"
                    },
                    "is missing: livekit-server ignores a relay range given by one end only",
                    "set both turn.relay_range_start and turn.relay_range_end, or neither (30000-40000)",
                ));
            }
            _ => {}
        }
        if self.tls_port.is_some() {
            self.validate_tls(settings.tls.is_some())?;
        } else if self.cert_file.is_some() || self.key_file.is_some() || self.external_tls {
            return Err(invalid(
                "tls_port",
                "is not set, so cert_file, key_file and external_tls would be ignored",
                "set turn.tls_port, or remove cert_file, key_file and external_tls",
            ));
        }
        self.check_ports(settings)
    }

    /// `managed`: a `tls:` section provides the certificate (and the domain) when `cert_file`
    /// and `domain` are left out.
    fn validate_tls(&self, managed: bool) -> Result<(), TurnSettingsError> {
        let invalid =
            |key, problem: String, hint| TurnSettingsError::Invalid { key, problem, hint };
        if managed && self.cert_file.is_none() && self.key_file.is_none() && !self.external_tls {
            return match &self.domain {
                Some(domain) if !is_valid_domain(domain) => Err(invalid(
                    "domain",
                    format!("{domain:?} is not a DNS name livekit-server accepts"),
                    "leave turn.domain out: tls.turn_domain names TURN/TLS",
                )),
                _ => Ok(()),
            };
        }
        let Some(domain) = &self.domain else {
            return Err(invalid(
                "domain",
                "is required with tls_port (clients are sent turns:<domain>:443)".to_owned(),
                "set turn.domain to the DNS name the certificate is issued for, e.g. turn.example.com",
            ));
        };
        if !is_valid_domain(domain) {
            return Err(invalid(
                "domain",
                format!("{domain:?} is not a DNS name livekit-server accepts"),
                "use letters, digits and hyphens in at least two dot-separated labels, e.g. turn.example.com",
            ));
        }
        if self.external_tls {
            if self.cert_file.is_some() || self.key_file.is_some() {
                return Err(invalid(
                    "external_tls",
                    "is true, so livekit-server never loads cert_file and key_file".to_owned(),
                    "remove turn.cert_file and turn.key_file, or set external_tls: false",
                ));
            }
            return Ok(());
        }
        for (key, file) in [("cert_file", &self.cert_file), ("key_file", &self.key_file)] {
            match file {
                None => {
                    return Err(invalid(
                        key,
                        "is required with tls_port unless external_tls is true".to_owned(),
                        "set turn.cert_file and turn.key_file to the PEM certificate chain and key, or external_tls: true when a load balancer terminates TLS",
                    ));
                }
                Some(path) if !path.is_absolute() => {
                    return Err(invalid(
                        key,
                        format!("{} is not an absolute path", path.display()),
                        "give the absolute path: livekit-server resolves a relative one against its own working directory",
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Same-protocol clashes with the other managed listeners. TURN/TLS is TCP; TURN/UDP and
    /// the relay range are UDP.
    fn check_ports(&self, settings: &Settings) -> Result<(), TurnSettingsError> {
        let single = |name, tcp, port: u16| Listener {
            name,
            tcp,
            ports: port..=port,
        };
        let mut managed = vec![
            single("port", true, settings.port),
            single("rtc_tcp_port", true, settings.rtc_tcp_port),
            single("backend_port", true, settings.backend_port),
        ];
        // The RTC media: one UDP mux port, or the range.
        managed.push(match settings.rtc_udp_port {
            Some(port) => single("rtc_udp_port", false, port),
            None => Listener {
                name: "rtc_port_range_start-rtc_port_range_end",
                tcp: false,
                ports: settings.rtc_port_range_start..=settings.rtc_port_range_end,
            },
        });
        if let Some(prometheus) = &settings.prometheus {
            managed.push(single("prometheus.port", true, prometheus.port));
        }
        let relay_name = if self.relay_range_start.is_some() {
            "relay_range_start-relay_range_end"
        } else {
            "relay range (default 30000-40000)"
        };
        let mut ours = Vec::new();
        if let Some(port) = self.tls_port {
            ours.push(single("tls_port", true, port));
        }
        if let Some(port) = self.udp_port {
            ours.push(single("udp_port", false, port));
        }
        ours.push(Listener {
            name: relay_name,
            tcp: false,
            ports: self.relay_range(),
        });
        for (i, mine) in ours.iter().enumerate() {
            let others = managed.iter().chain(&ours[i + 1..]);
            for other in others {
                if mine.tcp == other.tcp
                    && mine.ports.start() <= other.ports.end()
                    && other.ports.start() <= mine.ports.end()
                {
                    return Err(TurnSettingsError::PortClash {
                        key: mine.name,
                        proto: if mine.tcp { "TCP" } else { "UDP" },
                        ports: show(&mine.ports),
                        other: other.name,
                        other_ports: show(&other.ports),
                    });
                }
            }
        }
        Ok(())
    }
}

/// livekit-server's `IsValidDomain` (pkg/service/utils.go): `^(?i)[a-z0-9-]+(\.[a-z0-9-]+)+\.?$`.
pub(crate) fn is_valid_domain(domain: &str) -> bool {
    let name = domain.strip_suffix('.').unwrap_or(domain);
    let labels: Vec<&str> = name.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_turn() -> TurnSettings {
        TurnSettings {
            enabled: true,
            domain: Some("turn.example.com".to_owned()),
            tls_port: Some(5349),
            udp_port: Some(3478),
            relay_range_start: None,
            relay_range_end: None,
            cert_file: Some("/etc/livekit/turn.crt".into()),
            key_file: Some("/etc/livekit/turn.key".into()),
            external_tls: false,
        }
    }

    fn refused(turn: &TurnSettings, settings: &Settings) -> TurnSettingsError {
        turn.validate(settings).unwrap_err()
    }

    #[test]
    fn disabled_is_never_checked_and_a_good_section_passes() {
        let disabled = TurnSettings {
            tls_port: Some(0),
            ..TurnSettings::default()
        };
        assert_eq!(disabled.validate(&Settings::default()), Ok(()));
        assert_eq!(tls_turn().validate(&Settings::default()), Ok(()));
        let external = TurnSettings {
            cert_file: None,
            key_file: None,
            external_tls: true,
            ..tls_turn()
        };
        assert_eq!(external.validate(&Settings::default()), Ok(()));
    }

    #[test]
    fn incomplete_or_contradictory_sections_are_refused_by_key() {
        let settings = Settings::default();
        for (turn, key) in [
            (
                TurnSettings {
                    tls_port: None,
                    udp_port: None,
                    ..tls_turn()
                },
                "enabled",
            ),
            (
                TurnSettings {
                    domain: None,
                    ..tls_turn()
                },
                "domain",
            ),
            (
                TurnSettings {
                    domain: Some("localhost".to_owned()),
                    ..tls_turn()
                },
                "domain",
            ),
            (
                TurnSettings {
                    key_file: None,
                    ..tls_turn()
                },
                "key_file",
            ),
            (
                TurnSettings {
                    cert_file: Some("turn.crt".into()),
                    ..tls_turn()
                },
                "cert_file",
            ),
            (
                TurnSettings {
                    external_tls: true,
                    ..tls_turn()
                },
                "external_tls",
            ),
            (
                TurnSettings {
                    tls_port: None,
                    ..tls_turn()
                },
                "tls_port",
            ),
            (
                TurnSettings {
                    relay_range_start: Some(40000),
                    relay_range_end: Some(30000),
                    ..tls_turn()
                },
                "relay_range_start",
            ),
            (
                TurnSettings {
                    relay_range_end: Some(30000),
                    ..tls_turn()
                },
                "relay_range_start",
            ),
            (
                TurnSettings {
                    udp_port: Some(0),
                    ..tls_turn()
                },
                "udp_port",
            ),
        ] {
            let err = refused(&turn, &settings);
            assert!(
                matches!(&err, TurnSettingsError::Invalid { key: k, .. } if *k == key),
                "{key}: {err:?}"
            );
            assert!(err.to_string().starts_with(&format!("turn.{key}")), "{err}");
            assert!(!err.hint().is_empty());
        }
    }

    #[test]
    fn only_same_protocol_ports_clash() {
        let settings = Settings::default();
        for (turn, key, other) in [
            (
                TurnSettings {
                    tls_port: Some(7880),
                    ..tls_turn()
                },
                "tls_port",
                "port",
            ),
            (
                TurnSettings {
                    tls_port: Some(8081),
                    ..tls_turn()
                },
                "tls_port",
                "backend_port",
            ),
            (
                TurnSettings {
                    udp_port: Some(55000),
                    ..tls_turn()
                },
                "udp_port",
                "rtc_port_range_start-rtc_port_range_end",
            ),
            (
                TurnSettings {
                    udp_port: Some(35000),
                    ..tls_turn()
                },
                "udp_port",
                "relay range (default 30000-40000)",
            ),
            (
                TurnSettings {
                    relay_range_start: Some(45000),
                    relay_range_end: Some(50000),
                    ..tls_turn()
                },
                "relay_range_start-relay_range_end",
                "rtc_port_range_start-rtc_port_range_end",
            ),
        ] {
            let err = refused(&turn, &settings);
            assert!(
                matches!(&err, TurnSettingsError::PortClash { key: k, other: o, .. } if *k == key && *o == other),
                "{err:?}"
            );
            assert!(
                err.hint().contains(&format!("turn.{key}")),
                "{}",
                err.hint()
            );
        }
        // A TCP and a UDP port may share a number: TURN/TLS on the RTC UDP range or on the
        // TURN/UDP port, TURN/UDP on the signal port.
        for turn in [
            TurnSettings {
                tls_port: Some(55000),
                ..tls_turn()
            },
            TurnSettings {
                tls_port: Some(3478),
                ..tls_turn()
            },
            TurnSettings {
                udp_port: Some(7880),
                ..tls_turn()
            },
            TurnSettings {
                tls_port: Some(443),
                relay_range_start: Some(20000),
                relay_range_end: Some(20100),
                ..tls_turn()
            },
        ] {
            assert_eq!(turn.validate(&settings), Ok(()), "{turn:?}");
        }
    }

    #[test]
    fn the_udp_mux_port_and_the_metrics_port_are_managed_ports_too() {
        let mux = Settings {
            rtc_udp_port: Some(3478),
            ..Settings::default()
        };
        let turn = TurnSettings {
            udp_port: Some(3478),
            ..tls_turn()
        };
        let err = refused(&turn, &mux);
        assert!(
            matches!(
                &err,
                TurnSettingsError::PortClash {
                    other: "rtc_udp_port",
                    ..
                }
            ),
            "{err:?}"
        );
        // With the mux port set, the RTC range is not used: TURN/UDP may sit in it.
        let in_range = TurnSettings {
            udp_port: Some(55000),
            ..tls_turn()
        };
        assert_eq!(in_range.validate(&mux), Ok(()));
        let metrics = Settings {
            prometheus: Some(crate::settings::PrometheusSettings {
                port: 5349,
                username: "livekit".to_owned(),
            }),
            ..Settings::default()
        };
        let tls = TurnSettings {
            tls_port: Some(5349),
            ..tls_turn()
        };
        let err = refused(&tls, &metrics);
        assert!(
            matches!(
                &err,
                TurnSettingsError::PortClash {
                    other: "prometheus.port",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn domains_as_livekit_accepts_them() {
        for good in ["turn.example.com", "a-b.c", "TURN.Example.COM.", "1.2"] {
            assert!(is_valid_domain(good), "{good}");
        }
        for bad in [
            "localhost",
            "",
            ".",
            "a..b",
            "*.example.com",
            "a_b.c",
            "é.fr",
        ] {
            assert!(!is_valid_domain(bad), "{bad}");
        }
    }
}
