//! DestinationRule subsets: pointing the canary and stable subsets at their ReplicaSets' pod-template hashes.

use json_patch::{Patch, PatchOperation};
use serde_json::{Map, Value, json};

use super::error::IstioError;
use super::ops::{add, identity, malformed, name_of, ptr, remove, replace, spec_list, test};
use super::{MANAGED_BY_ANNOTATION, POD_TEMPLATE_HASH_LABEL};

const DR_KIND: &str = "DestinationRule";

fn subset_index(dr: &Value, subsets: &[Value], subset: &str) -> Result<usize, IstioError> {
    subsets
        .iter()
        .position(|s| name_of(s) == Some(subset))
        .ok_or_else(|| IstioError::SubsetNotFound {
            dr: identity(dr, DR_KIND).1,
            subset: subset.to_string(),
        })
}

fn subset_labels<'a>(
    dr: &Value,
    subset: &'a Value,
    index: usize,
) -> Result<Option<&'a Map<String, Value>>, IstioError> {
    match subset.get("labels") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(labels)) => Ok(Some(labels)),
        Some(_) => Err(malformed(
            dr,
            DR_KIND,
            format!("spec.subsets[{index}].labels"),
            "is not a map",
        )),
    }
}

/// JSON patch setting `labels.rollouts-pod-template-hash` of the canary and stable subsets to their hashes (an
/// empty hash removes the label, as upstream does); other subsets and fields are untouched, and the patch is
/// empty when both labels already hold the wanted values.
pub fn subset_patch(
    dr: &Value,
    canary_subset: &str,
    stable_subset: &str,
    canary_hash: &str,
    stable_hash: &str,
) -> Result<Patch, IstioError> {
    if canary_subset == stable_subset {
        return Err(IstioError::SameSubset(canary_subset.to_string()));
    }
    let subsets = spec_list(dr, "subsets", DR_KIND)?;
    let mut ops: Vec<PatchOperation> = Vec::new();
    for (name, hash) in [(canary_subset, canary_hash), (stable_subset, stable_hash)] {
        let index = subset_index(dr, subsets, name)?;
        let labels = subset_labels(dr, &subsets[index], index)?;
        let current = labels.and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL));
        let idx = index.to_string();
        let label_path = ptr(&["spec", "subsets", &idx, "labels", POD_TEMPLATE_HASH_LABEL]);
        let op = match (labels, current, hash.is_empty()) {
            (_, Some(value), false) if value.as_str() == Some(hash) => None,
            (_, None, true) => None,
            (_, Some(_), true) => Some(remove(label_path)),
            (_, Some(_), false) => Some(replace(label_path, json!(hash))),
            (Some(_), None, false) => Some(add(label_path, json!(hash))),
            (None, None, false) => Some(add(
                ptr(&["spec", "subsets", &idx, "labels"]),
                json!({ POD_TEMPLATE_HASH_LABEL: hash }),
            )),
        };
        if let Some(op) = op {
            ops.push(test(ptr(&["spec", "subsets", &idx, "name"]), json!(name)));
            ops.push(op);
        }
    }
    Ok(Patch(ops))
}

/// The `rollouts-pod-template-hash` labels currently on the canary and stable subsets.
pub fn observed_subset_hashes(
    dr: &Value,
    canary_subset: &str,
    stable_subset: &str,
) -> Result<(Option<String>, Option<String>), IstioError> {
    let subsets = spec_list(dr, "subsets", DR_KIND)?;
    let hash_of = |name: &str| -> Result<Option<String>, IstioError> {
        let index = subset_index(dr, subsets, name)?;
        Ok(subset_labels(dr, &subsets[index], index)?
            .and_then(|labels| labels.get(POD_TEMPLATE_HASH_LABEL))
            .and_then(Value::as_str)
            .map(str::to_string))
    };
    Ok((hash_of(canary_subset)?, hash_of(stable_subset)?))
}

/// JSON patch setting the `argo-rollouts.argoproj.io/managed-by-rollouts` annotation (upstream marks the
/// DestinationRule it drives this way); empty when already set to `rollout_name`.
pub fn managed_by_patch(obj: &Value, rollout_name: &str) -> Result<Patch, IstioError> {
    let op = match obj.pointer("/metadata/annotations") {
        None | Some(Value::Null) => add(
            ptr(&["metadata", "annotations"]),
            json!({ MANAGED_BY_ANNOTATION: rollout_name }),
        ),
        Some(Value::Object(annotations)) => match annotations.get(MANAGED_BY_ANNOTATION) {
            Some(value) if value.as_str() == Some(rollout_name) => return Ok(Patch(Vec::new())),
            Some(_) => replace(
                ptr(&["metadata", "annotations", MANAGED_BY_ANNOTATION]),
                json!(rollout_name),
            ),
            None => add(
                ptr(&["metadata", "annotations", MANAGED_BY_ANNOTATION]),
                json!(rollout_name),
            ),
        },
        Some(_) => {
            return Err(malformed(
                obj,
                DR_KIND,
                "metadata.annotations".to_string(),
                "is not a map",
            ));
        }
    };
    Ok(Patch(vec![op]))
}

/// JSON patch releasing a DestinationRule a Rollout no longer routes through: the `rollouts-pod-template-hash`
/// label of every subset and the managed-by annotation go; everything else stays. Empty when there is nothing.
pub fn release_patch(dr: &Value) -> Result<Patch, IstioError> {
    let subsets = spec_list(dr, "subsets", DR_KIND)?;
    let mut ops: Vec<PatchOperation> = Vec::new();
    for (index, subset) in subsets.iter().enumerate() {
        let labelled =
            subset_labels(dr, subset, index)?.is_some_and(|l| l.contains_key(POD_TEMPLATE_HASH_LABEL));
        if labelled {
            let idx = index.to_string();
            if let Some(name) = name_of(subset) {
                ops.push(test(ptr(&["spec", "subsets", &idx, "name"]), json!(name)));
            }
            ops.push(remove(ptr(&[
                "spec",
                "subsets",
                &idx,
                "labels",
                POD_TEMPLATE_HASH_LABEL,
            ])));
        }
    }
    if dr
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(MANAGED_BY_ANNOTATION))
        .is_some()
    {
        ops.push(remove(ptr(&["metadata", "annotations", MANAGED_BY_ANNOTATION])));
    }
    Ok(Patch(ops))
}
