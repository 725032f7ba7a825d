//! Schema fragments that Rust types cannot express on their own: int-or-string values and open objects.

use schemars::{Schema, SchemaGenerator, json_schema};

/// An integer or a string (`x-kubernetes-int-or-string`), e.g. a pause duration `30` or `"30s"`.
pub fn int_or_string(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-int-or-string": true })
}

/// An object whose fields the API server keeps as written (provider blocks Sluice does not model).
pub fn open_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "x-kubernetes-preserve-unknown-fields": true })
}

/// Any JSON value (string, number, object, list) kept as written.
pub fn any_value(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// A map of string to string (labels, annotations, free-form settings).
pub fn string_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object", "additionalProperties": { "type": "string" } })
}

/// A label selector that cannot change once set (`self == oldSelf`), as upstream's Rollout selector.
pub fn immutable_label_selector(generator: &mut SchemaGenerator) -> Schema {
    let mut schema =
        <k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as schemars::JsonSchema>::json_schema(
            generator,
        );
    schema.insert(
        "x-kubernetes-validations".into(),
        serde_json::json!([{ "rule": "self == oldSelf", "message": "Value is immutable" }]),
    );
    schema
}
