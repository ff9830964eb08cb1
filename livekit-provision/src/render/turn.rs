//! The `turn:` block of `livekit.yaml`, rendered and parsed in one place: the managed keys of
//! [`TurnSettings`] (`provision.yaml`'s `turn:`) when TURN is enabled, then the overlay's other
//! `turn` keys. Parsing takes the managed keys back out and leaves the rest in the section.

use std::fmt::{self, Write as _};

use serde_yaml::{Mapping, Value};

use super::yaml_emit::{double_quoted, write_mapping};
use crate::settings::TurnSettings;

/// Write the `turn:` block of `livekit.yaml`: the managed keys when TURN is enabled, then the
/// overlay's other `turn` keys (`extra`, already checked to hold no managed key).
/// `certificate`: the SHA-256 of the certificate TURN/TLS loads, written as a comment.
pub(super) fn write_yaml(
    out: &mut String,
    turn: &TurnSettings,
    certificate: Option<&str>,
    extra: Option<&Mapping>,
) {
    let extra = extra.filter(|m| !m.is_empty());
    if !turn.enabled && extra.is_none() {
        return;
    }
    out.push_str("turn:\n");
    if turn.enabled {
        // Writing into a `String` cannot fail.
        let _ = write_managed(out, turn);
        if let Some(sha256) = certificate.filter(|_| turn.loads_certificate()) {
            let _ = writeln!(
                out,
                "  # cert_file sha256 {sha256}: livekit-server reads it at start only"
            );
        }
    }
    if let Some(extra) = extra {
        write_mapping(out, extra, 2);
    }
}

fn write_managed(out: &mut String, turn: &TurnSettings) -> fmt::Result {
    let quoted = double_quoted;
    writeln!(out, "  enabled: true")?;
    if let Some(domain) = &turn.domain {
        writeln!(out, "  domain: {}", quoted(domain))?;
    }
    if let Some(port) = turn.tls_port {
        writeln!(out, "  tls_port: {port}")?;
    }
    if let Some(port) = turn.udp_port {
        writeln!(out, "  udp_port: {port}")?;
    }
    if let Some(port) = turn.relay_range_start {
        writeln!(out, "  relay_range_start: {port}")?;
    }
    if let Some(port) = turn.relay_range_end {
        writeln!(out, "  relay_range_end: {port}")?;
    }
    for (key, path) in [("cert_file", &turn.cert_file), ("key_file", &turn.key_file)] {
        if let Some(path) = path {
            writeln!(out, "  {key}: {}", quoted(&path.to_string_lossy()))?;
        }
    }
    if turn.external_tls {
        writeln!(out, "  external_tls: true")?;
    }
    Ok(())
}

/// What parsing the rendered `turn:` block gives back for `turn`.
pub(super) fn expected(turn: &TurnSettings) -> TurnSettings {
    if turn.enabled {
        turn.clone()
    } else {
        TurnSettings::default()
    }
}

/// The keys of `TURNConfig` that [`TurnSettings`] holds, as written in `livekit.yaml`.
const MANAGED_KEYS: &[&str] = &[
    "enabled",
    "domain",
    "tls_port",
    "udp_port",
    "relay_range_start",
    "relay_range_end",
    "cert_file",
    "key_file",
    "external_tls",
];

/// A value of the `turn:` section that is not what livekit-server expects there.
#[derive(Debug)]
pub(super) struct FieldError {
    /// The key below `turn`.
    pub key: &'static str,
    /// What it should be.
    pub expected: &'static str,
    /// The value, when it may be shown (none here is secret).
    pub value: Value,
}

/// Take the managed keys out of a parsed `turn:` section; what is left stays in `section`.
/// `enabled: false` (or absent) gives the default settings, whatever else is written.
pub(super) fn take_from(section: &mut Mapping) -> Result<TurnSettings, FieldError> {
    let mut turn = TurnSettings::default();
    for key in MANAGED_KEYS {
        let Some(value) = section.shift_remove(*key) else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        let wrong = |expected| FieldError {
            key,
            expected,
            value: value.clone(),
        };
        let port = || {
            value
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|p| *p != 0)
                .ok_or_else(|| wrong("a port number (1-65535)"))
        };
        let text = || {
            value
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| wrong("a string"))
        };
        let flag = || value.as_bool().ok_or_else(|| wrong("true or false"));
        match *key {
            "enabled" => turn.enabled = flag()?,
            "domain" => turn.domain = Some(text()?),
            "tls_port" => turn.tls_port = Some(port()?),
            "udp_port" => turn.udp_port = Some(port()?),
            "relay_range_start" => turn.relay_range_start = Some(port()?),
            "relay_range_end" => turn.relay_range_end = Some(port()?),
            "cert_file" => turn.cert_file = Some(text()?.into()),
            "key_file" => turn.key_file = Some(text()?.into()),
            _ => turn.external_tls = flag()?,
        }
    }
    Ok(expected(&turn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_back_keeps_unmanaged_keys_and_refuses_wrong_types() {
        let mut section: Mapping =
            serde_yaml::from_str("enabled: true\nudp_port: 3478\nttl_seconds: 600\n").unwrap();
        let turn = take_from(&mut section).unwrap();
        assert!(turn.enabled && turn.udp_port == Some(3478));
        assert_eq!(section.len(), 1);
        for text in ["enabled: yes please", "tls_port: 70000", "domain: [a]"] {
            let mut section: Mapping = serde_yaml::from_str(text).unwrap();
            assert!(take_from(&mut section).is_err(), "{text}");
        }
    }
}
