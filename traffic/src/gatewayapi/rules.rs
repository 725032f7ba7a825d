//! Reading a route: its rules, their backends and weights, and the state annotations the rollout keeps on it.

use std::collections::{BTreeMap, BTreeSet};

use json_patch::PatchOperation;
use serde_json::{Value, json};

use super::model::Services;
use super::{EXPERIMENT_BACKENDS_ANNOTATION, MANAGED_ROUTES_ANNOTATION};
use crate::istio::ops::{add, ptr, remove, test};
use crate::router::RouterError;

/// `Kind "name"` of a route, for messages.
pub(crate) fn who(doc: &Value) -> String {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("route");
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    format!("{kind} \"{name}\"")
}

/// A `Malformed` error about `path` of `doc`.
pub(crate) fn malformed(doc: &Value, path: &str, problem: &str) -> RouterError {
    RouterError::Malformed(format!("{}: {path} {problem}", who(doc)))
}

/// `spec.rules`; absent reads as empty, anything but a list is an error.
pub(crate) fn rules(doc: &Value) -> Result<&[Value], RouterError> {
    match doc.pointer("/spec/rules") {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(malformed(doc, "spec.rules", "is not a list")),
    }
}

/// `spec.rules[i].backendRefs`; absent reads as empty, anything but a list of objects is an error.
pub(crate) fn backend_refs<'a>(doc: &Value, rule: &'a Value, i: usize) -> Result<&'a [Value], RouterError> {
    let refs = match rule.get("backendRefs") {
        None | Some(Value::Null) => return Ok(&[]),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(malformed(
                doc,
                &format!("spec.rules[{i}].backendRefs"),
                "is not a list",
            ));
        }
    };
    if let Some(j) = refs.iter().position(|r| !r.is_object()) {
        return Err(malformed(
            doc,
            &format!("spec.rules[{i}].backendRefs[{j}]"),
            "is not an object",
        ));
    }
    Ok(refs)
}

/// A backend's `name`.
pub(crate) fn ref_name(backend: &Value) -> Option<&str> {
    backend.get("name").and_then(Value::as_str)
}

/// A backend's weight: absent means 1 (the Gateway API default); anything but a whole number is an error.
pub(crate) fn weight_of(doc: &Value, backend: &Value, path: &str) -> Result<i64, RouterError> {
    match backend.get("weight") {
        None | Some(Value::Null) => Ok(1),
        Some(w) => w
            .as_i64()
            .ok_or_else(|| malformed(doc, &format!("{path}.weight"), "is not a whole number")),
    }
}

/// The rules the rollout added (`setHeaderRoute`), by route name → index, from the route's annotation; entries
/// whose index is past the end of `spec.rules` (the rule was removed by someone else) are dropped.
pub fn managed_rules(doc: &Value) -> Result<BTreeMap<String, usize>, RouterError> {
    let Some(raw) = annotation(doc, MANAGED_ROUTES_ANNOTATION) else {
        return Ok(BTreeMap::new());
    };
    let map: BTreeMap<String, usize> = serde_json::from_str(raw).map_err(|e| {
        malformed(
            doc,
            &format!("annotation {MANAGED_ROUTES_ANNOTATION}"),
            &format!("is not a JSON object of rule indexes: {e}"),
        )
    })?;
    let len = rules(doc)?.len();
    Ok(map.into_iter().filter(|(_, i)| *i < len).collect())
}

/// The experiment Services the rollout added as backends, from the route's annotation.
pub(crate) fn experiment_backends(doc: &Value) -> Result<BTreeSet<String>, RouterError> {
    let Some(raw) = annotation(doc, EXPERIMENT_BACKENDS_ANNOTATION) else {
        return Ok(BTreeSet::new());
    };
    serde_json::from_str(raw).map_err(|e| {
        malformed(
            doc,
            &format!("annotation {EXPERIMENT_BACKENDS_ANNOTATION}"),
            &format!("is not a JSON list of names: {e}"),
        )
    })
}

fn annotation<'a>(doc: &'a Value, key: &str) -> Option<&'a str> {
    doc.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// The ops that set annotation `key` to `value` (`None`: remove it), pinned on its current value; none when it
/// already holds it.
pub(crate) fn annotation_ops(doc: &Value, key: &str, value: Option<String>) -> Vec<PatchOperation> {
    let current = annotation(doc, key);
    if current == value.as_deref() {
        return Vec::new();
    }
    let path = ptr(&["metadata", "annotations", key]);
    let mut ops: Vec<PatchOperation> = current
        .map(|c| test(path.clone(), json!(c)))
        .into_iter()
        .collect();
    let annotations = doc.pointer("/metadata/annotations").and_then(Value::as_object);
    match value {
        // The last annotation goes with its map, so that a route the rollout is done with reads as before.
        None if annotations.is_some_and(|a| a.len() == 1) => {
            ops.push(remove(ptr(&["metadata", "annotations"])))
        }
        None => ops.push(remove(path)),
        Some(v) if annotations.is_some() => {
            ops.push(add(path, json!(v)));
        }
        Some(v) => ops.push(add(ptr(&["metadata", "annotations"]), json!({ key: v }))),
    }
    ops
}

/// The indexes of the rules that carry the split: every rule the rollout did not add that holds both the
/// canary and the stable Service. None is an error (the plugin's "backendRef was not found").
pub(crate) fn split_rules(doc: &Value, services: &Services) -> Result<Vec<usize>, RouterError> {
    let managed: BTreeSet<usize> = managed_rules(doc)?.into_values().collect();
    let mut found = Vec::new();
    for (i, rule) in rules(doc)?.iter().enumerate() {
        let refs = backend_refs(doc, rule, i)?;
        let has = |name: &str| refs.iter().any(|r| ref_name(r) == Some(name));
        if !managed.contains(&i) && has(&services.canary) && has(&services.stable) {
            found.push(i);
        }
    }
    if found.is_empty() {
        return Err(RouterError::Malformed(format!(
            "{}: no rule has both backendRefs \"{}\" (canaryService) and \"{}\" (stableService)",
            who(doc),
            services.canary,
            services.stable
        )));
    }
    Ok(found)
}

/// The canary weight of every rule that carries the split, in rule order.
pub fn observed_weights(doc: &Value, services: &Services) -> Result<Vec<i32>, RouterError> {
    let mut weights = Vec::new();
    for i in split_rules(doc, services)? {
        let rule = &rules(doc)?[i];
        let refs = backend_refs(doc, rule, i)?;
        let j = refs
            .iter()
            .position(|r| ref_name(r) == Some(services.canary.as_str()))
            .unwrap_or_default();
        let w = weight_of(doc, &refs[j], &format!("spec.rules[{i}].backendRefs[{j}]"))?;
        weights.push(i32::try_from(w).map_err(|_| {
            malformed(
                doc,
                &format!("spec.rules[{i}].backendRefs[{j}].weight"),
                "is out of range",
            )
        })?);
    }
    Ok(weights)
}
