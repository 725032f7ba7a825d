//! The engine of the Application controller, as Argo CD defines it: Git sources (`source`: the git CLI, one
//! shared mirror per repository), rendering of a plain directory (`directory`), the sync tasks of a sync and
//! the pure steps of its state machine (`tasks`: phases, waves, hooks, ordering), Argo CD's tracking id
//! (`tracking`) and the health of live objects (`health`). No Kubernetes client here: the Application
//! controller wires these pieces (not yet: the controller itself is still to be written).

pub mod diff;
pub mod directory;
pub mod health;
pub mod policy;
pub mod render;
pub mod repo;
pub mod source;
pub mod tasks;
pub mod tracking;
pub mod webhook;

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
