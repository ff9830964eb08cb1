//! The `rpc.discover` document: OpenRPC 1.3 (<https://spec.open-rpc.org>), generated from the
//! [`protocol`](super::protocol) types alone, so it cannot drift from what the server parses and
//! answers.
//!
//! Every method is `paramStructure: "by-name"`: each field of its params type is one content
//! descriptor (with its JSON Schema, description and whether it is required); its result is the
//! result type's schema. Schemas are JSON Schema draft 7 (what the OpenRPC meta-schema expects);
//! named types are `$ref`s into `components.schemas`.

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::protocol::{Method, MethodVisitor, OpenRpcDocument, visit_methods};

/// The OpenRPC version of the document.
pub const OPENRPC_VERSION: &str = "1.3.2";

/// What the document says the protocol is.
const DESCRIPTION: &str = "The control plane of a LiveKit media node: JSON-RPC 2.0 over a Unix socket (run/rpc.sock in the state directory), one request object per line.";

/// The document as a host serves it, every method named `prefix` + its name (`livekit.status`
/// for the prefix `livekit.`); the schemas are unchanged. An empty prefix gives [`document`].
pub(crate) fn document_with_prefix(prefix: &str) -> OpenRpcDocument {
    let mut doc = document().clone();
    if prefix.is_empty() {
        return doc;
    }
    if let Some(methods) = doc.0["methods"].as_array_mut() {
        for method in methods {
            if let Some(name) = method["name"].as_str() {
                method["name"] = Value::String(format!("{prefix}{name}"));
            }
        }
    }
    doc.0["info"]["description"] = Value::String(format!(
        "The control plane of a LiveKit media node, its methods served by this host under the prefix {prefix:?} (JSON-RPC 2.0)."
    ));
    doc
}

/// Where the named schemas live in the document.
const COMPONENTS: &str = "/components/schemas";

/// The document (built once).
pub fn document() -> &'static OpenRpcDocument {
    static DOC: OnceLock<OpenRpcDocument> = OnceLock::new();
    DOC.get_or_init(build)
}

fn build() -> OpenRpcDocument {
    let settings = SchemaSettings::draft07().with(|s| {
        s.definitions_path = COMPONENTS.into();
        s.meta_schema = None;
    });
    let mut describer = Describer {
        generator: SchemaGenerator::new(settings),
        methods: Vec::new(),
    };
    visit_methods(&mut describer);
    let schemas = describer.generator.take_definitions(true);
    OpenRpcDocument(json!({
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "livekit-provision-daemon",
            "version": env!("CARGO_PKG_VERSION"),
            "description": DESCRIPTION,
            "license": {"name": "Apache-2.0"},
        },
        "methods": describer.methods,
        "components": {"schemas": schemas},
    }))
}

struct Describer {
    generator: SchemaGenerator,
    methods: Vec<Value>,
}

impl MethodVisitor for Describer {
    fn method<M: Method>(&mut self, summary: &'static str) {
        let params = params(&mut self.generator, <M::Params as JsonSchema>::json_schema);
        let result = self.generator.subschema_for::<M::Result>();
        self.methods.push(json!({
            "name": M::NAME,
            "summary": summary,
            "paramStructure": "by-name",
            "params": params,
            "result": {
                "name": <M::Result as JsonSchema>::schema_name(),
                "schema": result,
            },
        }));
    }
}

/// The content descriptors of a params object: one per property, in declaration order.
fn params(
    generator: &mut SchemaGenerator,
    schema_of: fn(&mut SchemaGenerator) -> schemars::Schema,
) -> Vec<Value> {
    let schema = schema_of(generator);
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, property)| {
            let mut descriptor = Map::new();
            descriptor.insert("name".into(), name.clone().into());
            if let Some(description) = property.get("description") {
                descriptor.insert("description".into(), description.clone());
            }
            descriptor.insert("required".into(), required.contains(&name.as_str()).into());
            descriptor.insert("schema".into(), property.clone());
            Value::Object(descriptor)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::METHODS;

    #[test]
    fn every_method_is_described_with_its_params() {
        let doc = &document().0;
        let methods = doc["methods"].as_array().unwrap();
        let names: Vec<&str> = methods.iter().filter_map(|m| m["name"].as_str()).collect();
        assert_eq!(names, METHODS);
        let token = methods
            .iter()
            .find(|m| m["name"] == "token.create")
            .unwrap();
        let identity = token["params"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "identity")
            .unwrap();
        assert_eq!(identity["required"], true);
        assert_eq!(identity["schema"]["type"], "string");
        let status = methods.iter().find(|m| m["name"] == "status").unwrap();
        assert_eq!(status["params"], json!([]));
        assert_eq!(
            status["result"]["schema"]["$ref"],
            "#/components/schemas/StatusResult"
        );
        assert!(doc["components"]["schemas"]["EnsureReport"].is_object());
    }

    #[test]
    fn a_prefix_renames_every_method_and_nothing_else() {
        let plain = &document().0;
        let mounted = document_with_prefix("livekit.").0;
        let names: Vec<&str> = mounted["methods"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["name"].as_str())
            .collect();
        let expected: Vec<String> = METHODS.iter().map(|m| format!("livekit.{m}")).collect();
        assert_eq!(names, expected);
        assert_eq!(mounted["components"], plain["components"]);
        assert_eq!(
            mounted["methods"][0]["result"],
            plain["methods"][0]["result"]
        );
        assert_eq!(&document_with_prefix("").0, plain);
    }
}
