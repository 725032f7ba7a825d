//! The engine of the Application controller, as Argo CD defines it: Git sources (`source`: the git CLI, one
//! shared mirror per repository), rendering (`render`: tool detection, dispatch and the render cache;
//! `kustomize` and `helm` for the real binaries, `directory` for plain directories), the diff of desired
//! and live objects (`diff`), the sync tasks of a sync and the pure steps of its state machine (`tasks`),
//! sync options, retries and the automated-sync decision (`policy`), Git webhooks (`webhook`), repository
//! Secrets (`repo`), Argo CD's tracking id (`tracking`) and the health of live objects (`health`). No
//! Kubernetes client here: the Application controller (`operator/src/application`) wires these pieces.

pub mod appset;
pub mod appset_render;
pub mod clusters;
pub mod diff;
pub mod directory;
pub mod glob;
pub mod health;
pub mod helm;
pub mod kustomize;
pub mod policy;
pub mod project;
pub mod render;
pub mod repo;
pub mod secrets;
pub mod sops;
pub mod source;
pub mod tasks;
pub mod tracking;
pub mod webhook;
pub mod windows;

/// The kind of a JSON value as an error message names it ("a string", "an array").
pub(crate) fn json_type(value: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
