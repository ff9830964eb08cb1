//! The `livekit.yaml` sections of a production node, from provision.yaml
//! (`settings/production.rs`): `bind_addresses`, `webhook` (signed with a managed key that
//! `keys:` lists — the previous one during a rotation's grace, else the current one — so a
//! rotation never leaves it naming a key that is gone, and a promotion changes no byte) and
//! `prometheus` (basic auth from the secret store).
//!
//! Built once as a mapping: the renderer writes it, [`super::expected`] merges it into `extra`.

use serde_yaml::{Mapping, Value};

use crate::inputs::RenderInputs;

/// The sections, in the order they are written. An overlay's other `webhook` keys (its
/// `api_key` and `urls` are refused) are merged into the rendered `webhook`.
pub(super) fn sections(inputs: &RenderInputs) -> Mapping {
    let settings = &inputs.settings;
    let mut out = Mapping::new();
    if !settings.bind_addresses.is_empty() {
        let addresses = settings
            .bind_addresses
            .iter()
            .map(|ip| Value::from(ip.to_string()))
            .collect();
        out.insert("bind_addresses".into(), Value::Sequence(addresses));
    }
    if let Some(webhook) = &settings.webhook {
        let mut section = Mapping::new();
        section.insert("api_key".into(), inputs.webhook_key().as_str().into());
        let urls = webhook
            .urls
            .iter()
            .map(|u| Value::from(u.as_str()))
            .collect();
        section.insert("urls".into(), Value::Sequence(urls));
        if let Some(Value::Mapping(overlay)) = inputs.extra.mapping().get("webhook") {
            for (key, value) in overlay {
                section.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        out.insert("webhook".into(), Value::Mapping(section));
    }
    if let Some(prometheus) = &settings.prometheus {
        let mut section = Mapping::new();
        section.insert("port".into(), prometheus.port.into());
        // livekit-server turns basic auth on only when both are set.
        if let Some(password) = &inputs.prometheus_password {
            section.insert("username".into(), prometheus.username.as_str().into());
            section.insert("password".into(), password.expose().into());
        }
        out.insert("prometheus".into(), Value::Mapping(section));
    }
    out
}
