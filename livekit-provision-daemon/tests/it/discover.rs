//! `rpc.discover`: the OpenRPC document is valid against the OpenRPC meta-schema (vendored in
//! `tests/fixtures/`), and every method, called for real on a daemon with stand-in media and a
//! `file://` release mirror, answers with a result its schema accepts, to params their schema
//! accepts.

use std::collections::BTreeSet;

use livekit_provision_daemon::protocol::METHODS;
use serde_json::{Value, json};

use crate::support::{Node, call};
use crate::upgrade::{NEW, mirrored_node};

/// The vendored meta-schema, its references to meta.json-schema.tools (a copy of draft 7's
/// meta-schema, online) pointed at the draft 7 meta-schema the validator knows offline.
fn meta_schema() -> Value {
    let text = include_str!("../fixtures/openrpc-meta-schema.json")
        .replace(
            "https://meta.json-schema.tools/#/definitions/JSONSchemaObject",
            "http://json-schema.org/draft-07/schema#",
        )
        .replace(
            "\"https://meta.json-schema.tools\"",
            "\"http://json-schema.org/draft-07/schema#\"",
        );
    let mut schema: Value = serde_json::from_str(&text).unwrap();
    schema.as_object_mut().unwrap().remove("$schema");
    assert!(!schema.to_string().contains("json-schema.tools"));
    schema
}

/// The validation errors of `instance` against `schema`, `$ref`s resolved in `components`.
fn errors(schema: &Value, components: &Value, instance: &Value) -> Vec<String> {
    let root = json!({ "allOf": [schema], "components": components });
    let validator = jsonschema::draft7::new(&root).unwrap();
    validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect()
}

/// The params schema of a method: an object of its content descriptors.
fn params_schema(method: &Value) -> Value {
    let mut properties = serde_json::Map::new();
    let mut required = Vec::new();
    for p in method["params"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap().to_owned();
        if p["required"] == true {
            required.push(json!(name));
        }
        properties.insert(name, p["schema"].clone());
    }
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

/// No answer holds a secret: neither the one `render` saw (still the current one: the rotation
/// that came after it only staged a pair) nor the staged one.
fn assert_no_secret_in(node: &Node, results: &std::collections::BTreeMap<&str, Value>) {
    let store: Value =
        serde_json::from_slice(&std::fs::read(node.state.secrets_file()).unwrap()).unwrap();
    let yaml = results["render"]["files"]["livekit.yaml"].as_str().unwrap();
    assert!(yaml.contains("****"), "{yaml}");
    let answers = serde_json::to_string(results).unwrap();
    for name in ["LIVEKIT_API_SECRET", "LIVEKIT_API_SECRET_NEXT"] {
        let secret = store[name].as_str().unwrap_or_default();
        assert!(secret.len() >= 32, "{name} is not in the store");
        assert!(!answers.contains(secret), "an answer holds {name}");
    }
}

#[test]
fn the_document_is_valid_openrpc_and_every_answer_fits_its_schema() {
    let (_mirror, _url, mut node, daemon) = mirrored_node();
    node.wait_media_healthy();
    let socket = node.socket();

    let doc = call(&socket, "rpc.discover", &json!({})).unwrap();
    let validator = jsonschema::draft7::new(&meta_schema()).unwrap();
    let problems: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(problems.is_empty(), "not valid OpenRPC: {problems:#?}");
    // The checks can fail: a method without params is not OpenRPC, a wrong status is refused.
    let mut broken = doc.clone();
    broken["methods"][0]
        .as_object_mut()
        .unwrap()
        .remove("params");
    assert!(!validator.is_valid(&broken));
    let components = doc["components"].clone();
    let methods = doc["methods"].as_array().unwrap();
    let described: Vec<&str> = methods
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(described, METHODS, "the document lists every method once");

    // Every method, with valid params, in an order that works on one node.
    let calls: Vec<(&str, Value)> = vec![
        ("status", json!({})),
        ("health", json!({})),
        ("check", json!({})),
        ("ensure", json!({})),
        (
            "token.create",
            json!({"identity": "alice", "room": "r", "ttl": "1h"}),
        ),
        ("secrets.list", json!({})),
        (
            "secrets.set",
            json!({"name": "LIVEKIT_NODE_IP", "value": "127.0.0.1"}),
        ),
        ("render", json!({})),
        ("logs.tail", json!({"name": "livekit-server", "lines": 5})),
        ("install", json!({"version": NEW})),
        ("rollback", json!({})),
        ("stop", json!({"grace_secs": 0.2})),
        ("start", json!({})),
        ("restart", json!({"grace_secs": 0.2})),
        ("secrets.rotate", json!({"grace": "1h"})),
        ("rpc.discover", json!({})),
    ];
    let mut answered = BTreeSet::new();
    let mut failures = Vec::new();
    let mut results = std::collections::BTreeMap::new();
    for (name, params) in &calls {
        let method = methods.iter().find(|m| m["name"] == *name).unwrap();
        for e in errors(&params_schema(method), &components, params) {
            failures.push(format!("{name}: params {params}: {e}"));
        }
        let result = match call(&socket, name, params) {
            Ok(result) => result,
            Err(e) => {
                failures.push(format!("{name} {params}: {e}"));
                continue;
            }
        };
        for e in errors(&method["result"]["schema"], &components, &result) {
            failures.push(format!("{name}: result {result}: {e}"));
        }
        answered.insert(*name);
        results.insert(*name, result);
    }
    let pids: Vec<u32> = ["start", "restart"]
        .iter()
        .filter_map(|m| results.get(m))
        .flat_map(|r| r["processes"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["pid"].as_u64().and_then(|p| u32::try_from(p).ok()))
        .collect();
    node.media_pids.extend(pids);
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(
        answered,
        METHODS.iter().copied().collect(),
        "every method was called"
    );

    // What an admin UI relies on beyond the shapes.
    let list = &results["secrets.list"]["secrets"];
    let secret = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "LIVEKIT_API_SECRET")
        .unwrap();
    assert_eq!(secret["value"], "****");
    // The rendered files show `****`, and no answer holds a secret.
    assert_no_secret_in(&node, &results);
    assert_eq!(results["install"]["outcome"], "installed");
    assert_eq!(results["rollback"]["to"], "1.7.2");
    assert!(
        !results["logs.tail"]["lines"].as_array().unwrap().is_empty(),
        "livekit-server has logged"
    );
    let progress = &results["status"]["provisioning"]["progress"];
    assert!(progress.is_null(), "nothing in flight: {progress}");
    drop(daemon);
}
