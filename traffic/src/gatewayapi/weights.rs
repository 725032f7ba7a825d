//! The weight patch: the canary and stable backends of every rule that carries the split, and the backends of
//! experiment templates (`Desired.additional`).

use std::collections::BTreeSet;

use json_patch::{Patch, PatchOperation};
use serde_json::{Value, json};

use super::EXPERIMENT_BACKENDS_ANNOTATION;
use super::model::Services;
use super::rules::{
    annotation_ops, backend_refs, experiment_backends, ref_name, rules, split_rules, weight_of,
};
use crate::istio::ops::{add, ptr, remove, test};
use crate::router::{Desired, RouterError};

/// The weight each backend of a split rule should have, by name (`None`: not the rollout's backend).
fn wanted(services: &Services, desired: &Desired, name: &str) -> Option<i32> {
    if name == services.canary {
        return Some(desired.canary);
    }
    if name == services.stable {
        let others: i32 = desired.additional.iter().map(|a| a.weight).sum();
        return Some((100 - desired.canary - others).max(0));
    }
    desired
        .additional
        .iter()
        .find(|a| a.service == name)
        .map(|a| a.weight)
}

/// The patch that puts `desired` on the route: in every rule holding both Services the canary backend gets
/// `desired.canary`, each experiment Service its weight (appended as a backend, with the canary's port, when
/// the rule lacks it) and the stable backend the rest; experiment backends the rollout added earlier and no
/// longer wants (absent, or sent with weight 0) are removed. Empty when the route already shows `desired`.
pub fn weight_patch(doc: &Value, services: &Services, desired: &Desired) -> Result<Patch, RouterError> {
    let tracked = experiment_backends(doc)?;
    // An experiment destination sent with weight 0 is one the rollout no longer routes to: taken out.
    let desired_names: BTreeSet<&str> = desired
        .additional
        .iter()
        .filter(|a| a.weight > 0)
        .map(|a| a.service.as_str())
        .filter(|s| *s != services.canary && *s != services.stable)
        .collect();
    let mut ops: Vec<PatchOperation> = Vec::new();
    let mut appended: BTreeSet<String> = BTreeSet::new();
    for i in split_rules(doc, services)? {
        let refs = backend_refs(doc, &rules(doc)?[i], i)?;
        let at = |j: usize| ptr(&["spec", "rules", &i.to_string(), "backendRefs", &j.to_string()]);
        let mut removed = Vec::new();
        for (j, backend) in refs.iter().enumerate() {
            let Some(name) = ref_name(backend) else { continue };
            if tracked.contains(name) && !desired_names.contains(name) {
                removed.push((j, name));
                continue;
            }
            let Some(w) = wanted(services, desired, name) else {
                continue;
            };
            weight_of(doc, backend, &format!("spec.rules[{i}].backendRefs[{j}]"))?;
            if backend.get("weight") != Some(&json!(w)) {
                ops.push(test(at(j).concat(&ptr(&["name"])), json!(name)));
                ops.push(add(at(j).concat(&ptr(&["weight"])), json!(w)));
            }
        }
        // Highest index first, after the weight ops, so that every index is valid when its op runs.
        for (j, name) in removed.into_iter().rev() {
            ops.push(test(at(j).concat(&ptr(&["name"])), json!(name)));
            ops.push(remove(at(j)));
        }
        let canary_port = refs
            .iter()
            .find(|r| ref_name(r) == Some(services.canary.as_str()))
            .and_then(|r| r.get("port"));
        for a in desired
            .additional
            .iter()
            .filter(|a| desired_names.contains(a.service.as_str()))
        {
            if refs.iter().any(|r| ref_name(r) == Some(a.service.as_str())) {
                continue;
            }
            let mut backend = json!({"group": "", "kind": "Service", "name": a.service, "weight": a.weight});
            if let Some(port) = canary_port {
                backend["port"] = port.clone();
            }
            ops.push(add(
                ptr(&["spec", "rules", &i.to_string(), "backendRefs", "-"]),
                backend,
            ));
            appended.insert(a.service.clone());
        }
    }
    let keep: BTreeSet<String> = tracked
        .iter()
        .filter(|t| desired_names.contains(t.as_str()))
        .cloned()
        .chain(appended)
        .collect();
    let value = (!keep.is_empty()).then(|| json!(keep).to_string());
    ops.extend(annotation_ops(doc, EXPERIMENT_BACKENDS_ANNOTATION, value));
    Ok(Patch(ops))
}
