//! Helpers shared by the Istio tests: YAML fixtures, patch application and "only weights changed" checks.
#![allow(dead_code)]

use json_patch::Patch;
use serde_json::Value;
use sluice_traffic::istio::{HostSplit, RouteSelector, Split, SubsetSplit};

/// Parses a YAML literal into a JSON value.
pub fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).expect("fixture is valid YAML")
}

/// Applies `patch` to a copy of `doc` and returns the result.
pub fn apply(doc: &Value, patch: &Patch) -> Value {
    let mut out = doc.clone();
    json_patch::patch(&mut out, patch).expect("patch applies to the document it was computed from");
    out
}

/// The ops of a patch as JSON, for exact comparisons.
pub fn ops(patch: &Patch) -> Value {
    serde_json::to_value(patch).expect("patch serialises")
}

/// Counts the ops of the given kind (`test`, `add`, `replace`, ...).
pub fn count_ops(patch: &Patch, op: &str) -> usize {
    ops(patch)
        .as_array()
        .map_or(0, |all| all.iter().filter(|o| o["op"] == op).count())
}

/// Copy of a VirtualService with every `spec.{http,tls,tcp}[].route[].weight` removed.
pub fn without_weights(vs: &Value) -> Value {
    let mut out = vs.clone();
    for kind in ["http", "tls", "tcp"] {
        let Some(routes) = out
            .pointer_mut(&format!("/spec/{kind}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for route in routes {
            let Some(dests) = route.get_mut("route").and_then(Value::as_array_mut) else {
                continue;
            };
            for dest in dests {
                if let Some(dest) = dest.as_object_mut() {
                    dest.remove("weight");
                }
            }
        }
    }
    out
}

/// Host split between `web-canary` and `web-stable`.
pub fn host_split() -> Split {
    Split::Host(HostSplit {
        canary_service: "web-canary".into(),
        stable_service: "web-stable".into(),
    })
}

/// Subset split `canary` / `stable` of host `web`.
pub fn subset_split() -> Split {
    Split::Subset(SubsetSplit {
        host: Some("web".into()),
        canary_subset: "canary".into(),
        stable_subset: "stable".into(),
    })
}

/// Selector with no names: the single http route.
pub fn single_route() -> RouteSelector {
    RouteSelector::default()
}

/// Selector naming http routes.
pub fn named(names: &[&str]) -> RouteSelector {
    RouteSelector {
        http: Some(names.iter().map(|n| n.to_string()).collect()),
        ..RouteSelector::default()
    }
}
