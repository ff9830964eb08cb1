//! What changed between the `livekit.yaml` a running livekit-server was started with and the one
//! published now: the reasons a restart is pending, for `status`. livekit-server reads its config
//! once, at start, so a published change only takes effect on `restart`.
//!
//! Values are named, never secrets: a changed key pair is reported by its key names.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::render::LivekitYaml;

/// The field holding a digest of the key secrets (never the secrets themselves).
const SECRETS_FIELD: &str = "keys.secrets";
/// The field holding a digest of the `extra.yaml` overlay.
const EXTRA_FIELD: &str = "extra";
/// The field holding a digest of the managed `turn:` keys.
const TURN_FIELD: &str = "turn";
/// The field holding the SHA-256 of the TURN/TLS certificate (the comment `render` writes).
const TURN_CERT_FIELD: &str = "turn.certificate";
/// Fields a record written before they existed lacks: compared only when both sides have them
/// (an upgrade of the control plane alone never makes a restart pending).
const LATER_FIELDS: &[&str] = &[TURN_FIELD, TURN_CERT_FIELD];

/// The changes from `running` (the text the server started with) to `published`, one line each
/// (`rtc.node_ip: 127.0.0.1 -> 127.0.0.2`). Empty when they are the same. Text that does not
/// parse is compared as bytes. (The daemon compares the recorded named values directly; this
/// text-to-text form is what the tests drive the comparison with.)
#[cfg(test)]
pub fn config_changes(running: &str, published: &str) -> Vec<String> {
    if running == published {
        return Vec::new();
    }
    match (named_values(running), named_values(published)) {
        (Some(old), Some(new)) => value_changes(&old, &new),
        _ => vec!["livekit.yaml changed".to_owned()],
    }
}

/// The named values of a `livekit.yaml` text that a restart would change, as strings; the key
/// secrets and the overlay only as SHA-256 digests. `None` when the text does not parse. This is
/// what a started process's record keeps (`run/<name>.started.json`).
pub fn named_values(text: &str) -> Option<BTreeMap<String, String>> {
    let y = LivekitYaml::parse(text).ok()?;
    let show = |v: Option<String>| v.unwrap_or_else(|| "(unset)".to_owned());
    let digest = |bytes: &[u8]| crate::hex::encode(&Sha256::digest(bytes));
    // The key set, whatever the order the file lists it in (livekit-server reads a map).
    let mut keys: Vec<&crate::inputs::Credentials> = y.keys.iter().collect();
    keys.sort_by(|a, b| a.key.cmp(&b.key));
    let mut secrets = Vec::new();
    for c in &keys {
        secrets.extend_from_slice(c.key.as_str().as_bytes());
        secrets.push(0);
        secrets.extend_from_slice(c.secret.expose().as_bytes());
        secrets.push(0);
    }
    let extra = serde_yaml::to_string(&y.extra).unwrap_or_default();
    let fields = [
        ("port", y.port.to_string()),
        ("rtc.node_ip", show(y.node_ip.map(|ip| ip.to_string()))),
        ("rtc.tcp_port", y.rtc_tcp_port.to_string()),
        ("rtc.udp_port", show(y.rtc_udp_port.map(|p| p.to_string()))),
        (
            "rtc.port_range",
            format!("{}-{}", y.rtc_port_range_start, y.rtc_port_range_end),
        ),
        (
            "rtc.enable_loopback_candidate",
            y.enable_loopback_candidate.to_string(),
        ),
        ("rtc.use_external_ip", y.use_external_ip.to_string()),
        (
            "keys",
            keys.iter()
                .map(|c| c.key.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ),
        (SECRETS_FIELD, digest(&secrets)),
        ("logging.level", show(y.log_level.map(|l| l.to_string()))),
        (
            "redis.address",
            show(y.redis.as_ref().map(|r| r.nodes.shown())),
        ),
        (EXTRA_FIELD, digest(extra.as_bytes())),
        (
            TURN_FIELD,
            digest(
                serde_yaml::to_string(&y.turn)
                    .unwrap_or_default()
                    .as_bytes(),
            ),
        ),
        (TURN_CERT_FIELD, show(turn_certificate(text))),
    ];
    Some(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
}

/// The SHA-256 of the TURN/TLS certificate, from the comment the renderer writes beside it.
fn turn_certificate(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix("# cert_file sha256 ")?;
        Some(rest.split(':').next()?.to_owned())
    })
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// The changes between two sets of [`named_values`], one line each; a changed secret or overlay
/// is named, never shown. At least one line when the sets differ.
pub fn value_changes(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<String> {
    let comparable = |name: &str| !LATER_FIELDS.contains(&name) || old.contains_key(name);
    if old == new
        || old
            .iter()
            .chain(new.iter())
            .all(|(k, _)| !comparable(k) || old.get(k) == new.get(k))
    {
        return Vec::new();
    }
    let get = |m: &BTreeMap<String, String>, k: &str| {
        m.get(k).cloned().unwrap_or_else(|| "(unset)".to_owned())
    };
    let names: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut out = Vec::new();
    let mut secret_changed = false;
    let mut extra_changed = false;
    for name in names {
        let (a, b) = (get(old, name), get(new, name));
        if a == b || !comparable(name) {
            continue;
        }
        match name.as_str() {
            SECRETS_FIELD => secret_changed = true,
            EXTRA_FIELD => extra_changed = true,
            TURN_FIELD => out.push("turn: section changed".to_owned()),
            TURN_CERT_FIELD => out.push(format!(
                "turn.cert_file: the certificate changed ({} -> {}); livekit-server loads it at start only",
                short(&a),
                short(&b)
            )),
            _ => out.push(format!("{name}: {a} -> {b}")),
        }
    }
    // Renamed keys already say that the pair changed.
    if secret_changed && get(old, "keys") == get(new, "keys") {
        out.push("keys: a secret changed".to_owned());
    }
    if extra_changed {
        out.push("extra.yaml overlay changed".to_owned());
    }
    if out.is_empty() {
        out.push("livekit.yaml changed".to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "port: 7880\nrtc:\n  node_ip: \"127.0.0.1\"\nkeys:\n  \"APIa\": \"secretsecretsecretsecretsecretsecret1\"\n";

    #[test]
    fn the_same_text_needs_no_restart() {
        assert!(config_changes(BASE, BASE).is_empty());
    }

    #[test]
    fn a_node_ip_change_is_named_with_both_values() {
        let new = BASE.replace("127.0.0.1", "127.0.0.2");
        assert_eq!(
            config_changes(BASE, &new),
            ["rtc.node_ip: 127.0.0.1 -> 127.0.0.2"]
        );
    }

    #[test]
    fn the_order_of_keys_is_no_change() {
        let (a, b) = ("a".repeat(40), "b".repeat(40));
        let listed = format!("keys:\n  \"APIa\": \"{a}\"\n  \"APIb\": \"{b}\"\n");
        let swapped = format!("keys:\n  \"APIb\": \"{b}\"\n  \"APIa\": \"{a}\"\n");
        assert_eq!(config_changes(&listed, &swapped), Vec::<String>::new());
    }

    #[test]
    fn key_changes_name_keys_never_secrets() {
        let rotated = BASE.replace("secretsecret", "othersecrets");
        let changes = config_changes(BASE, &rotated);
        assert_eq!(changes, ["keys: a secret changed"]);
        let renamed = BASE.replace("APIa", "APIb");
        let changes = config_changes(BASE, &renamed).join("\n");
        assert!(changes.contains("keys: APIa -> APIb"), "{changes}");
        assert!(!changes.contains("secretsecret"), "{changes}");
    }

    #[test]
    fn overlay_and_unparsable_changes_are_still_reported() {
        let overlay = format!("{BASE}room:\n  empty_timeout: 5\n");
        assert_eq!(
            config_changes(BASE, &overlay),
            ["extra.yaml overlay changed"]
        );
        assert_eq!(config_changes(BASE, "port: [x"), ["livekit.yaml changed"]);
    }

    #[test]
    fn a_renewed_turn_certificate_and_a_turn_change_need_a_restart() {
        let turn = |sha: &str| {
            format!(
                "{BASE}turn:\n  enabled: true\n  domain: \"t.example.com\"\n  tls_port: 5349\n  # cert_file sha256 {sha}: livekit-server reads it at start only\n  cert_file: \"/c.pem\"\n  key_file: \"/k.pem\"\n"
            )
        };
        let (a, b) = (turn(&"a".repeat(64)), turn(&"b".repeat(64)));
        let changes = config_changes(&a, &b);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert!(
            changes[0].starts_with(
                "turn.cert_file: the certificate changed (aaaaaaaaaaaa -> bbbbbbbbbbbb)"
            ),
            "{changes:?}"
        );
        let moved = a.replace("tls_port: 5349", "tls_port: 5350");
        assert_eq!(config_changes(&a, &moved), ["turn: section changed"]);
    }

    #[test]
    fn a_record_from_before_the_turn_fields_makes_no_restart_pending() {
        let mut old = named_values(BASE).unwrap();
        old.retain(|k, _| !LATER_FIELDS.contains(&k.as_str()));
        let new = named_values(BASE).unwrap();
        assert!(value_changes(&old, &new).is_empty());
    }
}
