//! What changed between the `livekit.yaml` a running livekit-server was started with and the one
//! published now: the reasons a restart is pending, for `status`. livekit-server reads its config
//! once, at start, so a published change only takes effect on `restart`.
//!
//! Values are named, never secrets: a changed key pair is reported by its key names.

use crate::render::LivekitYaml;

/// The changes from `running` (the text the server started with) to `published`, one line each
/// (`rtc.node_ip: 127.0.0.1 -> 127.0.0.2`). Empty when they are the same. Text that does not
/// parse is compared as bytes.
pub fn config_changes(running: &str, published: &str) -> Vec<String> {
    if running == published {
        return Vec::new();
    }
    let (Ok(old), Ok(new)) = (LivekitYaml::parse(running), LivekitYaml::parse(published)) else {
        return vec!["livekit.yaml changed".to_owned()];
    };
    let mut fields: Vec<(&str, String, String)> = Vec::new();
    let mut field = |name, a, b| fields.push((name, a, b));
    let show = |v: Option<String>| v.unwrap_or_else(|| "(unset)".to_owned());
    field("port", old.port.to_string(), new.port.to_string());
    field(
        "rtc.node_ip",
        show(old.node_ip.map(|ip| ip.to_string())),
        show(new.node_ip.map(|ip| ip.to_string())),
    );
    field(
        "rtc.tcp_port",
        old.rtc_tcp_port.to_string(),
        new.rtc_tcp_port.to_string(),
    );
    field(
        "rtc.udp_port",
        show(old.rtc_udp_port.map(|p| p.to_string())),
        show(new.rtc_udp_port.map(|p| p.to_string())),
    );
    field(
        "rtc.port_range",
        format!("{}-{}", old.rtc_port_range_start, old.rtc_port_range_end),
        format!("{}-{}", new.rtc_port_range_start, new.rtc_port_range_end),
    );
    field(
        "rtc.enable_loopback_candidate",
        old.enable_loopback_candidate.to_string(),
        new.enable_loopback_candidate.to_string(),
    );
    field(
        "rtc.use_external_ip",
        old.use_external_ip.to_string(),
        new.use_external_ip.to_string(),
    );
    let key_names = |y: &LivekitYaml| {
        y.keys
            .iter()
            .map(|c| c.key.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    field("keys", key_names(&old), key_names(&new));
    field(
        "logging.level",
        show(old.log_level.map(|l| l.to_string())),
        show(new.log_level.map(|l| l.to_string())),
    );
    field(
        "redis.address",
        show(old.redis.as_ref().map(|r| r.address.clone())),
        show(new.redis.as_ref().map(|r| r.address.clone())),
    );
    let mut out: Vec<String> = fields
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(name, a, b)| format!("{name}: {a} -> {b}"))
        .collect();
    if old.keys.len() == new.keys.len()
        && old
            .keys
            .iter()
            .zip(&new.keys)
            .any(|(a, b)| a.key == b.key && a.secret.expose() != b.secret.expose())
    {
        out.push("keys: a secret changed".to_owned());
    }
    if old.extra != new.extra {
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
}
