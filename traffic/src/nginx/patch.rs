//! The JSON patch that brings an existing canary Ingress to the one the builder makes, touching only what the
//! rollout derives.

use json_patch::{Patch, PatchOperation};
use serde_json::{Map, Value};

use crate::istio::ops::{add, ptr, remove, replace, test};

/// The fields of the canary Ingress's spec the rollout copies from the stable Ingress.
const SPEC_FIELDS: [&str; 3] = ["ingressClassName", "rules", "tls"];

/// The ops that turn `current`'s value at `path` (`None`: absent) into `wanted`'s, each change pinned by a
/// `test` of the value it replaces.
fn converge(ops: &mut Vec<PatchOperation>, path: &[&str], current: Option<&Value>, wanted: Option<&Value>) {
    let current = current.filter(|v| !v.is_null());
    match (current, wanted) {
        (Some(c), Some(w)) if c == w => {}
        (Some(c), Some(w)) => {
            ops.push(test(ptr(path), c.clone()));
            ops.push(replace(ptr(path), w.clone()));
        }
        (None, Some(w)) => ops.push(add(ptr(path), w.clone())),
        (Some(c), None) => {
            ops.push(test(ptr(path), c.clone()));
            ops.push(remove(ptr(path)));
        }
        (None, None) => {}
    }
}

/// The patch from the canary Ingress `current` to `desired` (both whole objects): every annotation of
/// `desired` set, annotations under `prefix/` that `desired` no longer has removed (others' annotations
/// stay), and the spec's rules, TLS and class made equal to `desired`'s. Empty when `current` is already as
/// wanted.
pub fn sync_patch(current: &Value, desired: &Value, prefix: &str) -> Patch {
    let mut ops = Vec::new();
    let empty = Map::new();
    let wanted = desired["metadata"]["annotations"].as_object().unwrap_or(&empty);
    match current["metadata"]["annotations"].as_object() {
        None => {
            if !wanted.is_empty() {
                ops.push(add(
                    ptr(&["metadata", "annotations"]),
                    Value::Object(wanted.clone()),
                ));
            }
        }
        Some(have) => {
            for (k, v) in wanted {
                converge(&mut ops, &["metadata", "annotations", k], have.get(k), Some(v));
            }
            let owned = format!("{prefix}/");
            for (k, v) in have {
                if k.starts_with(&owned) && !wanted.contains_key(k) {
                    converge(&mut ops, &["metadata", "annotations", k], Some(v), None);
                }
            }
        }
    }
    if current["spec"].is_object() {
        for field in SPEC_FIELDS {
            converge(
                &mut ops,
                &["spec", field],
                current["spec"].get(field),
                desired["spec"].get(field),
            );
        }
    } else {
        ops.push(add(ptr(&["spec"]), desired["spec"].clone()));
    }
    Patch(ops)
}
