//! The TrafficSplit object: its API versions, the object a Rollout creates, and the patch of its weights.

use std::{fmt, str::FromStr};

use json_patch::{Patch, PatchOperation};
use serde_json::{Value, json};

use super::quantity::parse_weight;
use crate::istio::ops::{add, ptr, replace, test};
use crate::router::{RouterError, Target};

/// API group of the TrafficSplit.
pub const SMI_GROUP: &str = "split.smi-spec.io";
/// Kind of the TrafficSplit.
pub const TRAFFIC_SPLIT_KIND: &str = "TrafficSplit";
/// Plural resource name of the TrafficSplit.
pub const TRAFFIC_SPLIT_PLURAL: &str = "trafficsplits";

/// An API version of the TrafficSplit; they differ in how a backend weight is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SmiVersion {
    /// `v1alpha1`: weights are Kubernetes quantities (`"10"`); upstream's default.
    #[default]
    V1alpha1,
    /// `v1alpha2`: integer weights.
    V1alpha2,
    /// `v1alpha3`: integer weights.
    V1alpha3,
}

impl SmiVersion {
    /// The version as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1alpha1 => "v1alpha1",
            Self::V1alpha2 => "v1alpha2",
            Self::V1alpha3 => "v1alpha3",
        }
    }

    /// A backend weight as this version writes it: a quantity string in v1alpha1 (as upstream's
    /// `resource.NewQuantity(w, DecimalExponent)` serialises), an integer after.
    pub fn weight(self, weight: i32) -> Value {
        match self {
            Self::V1alpha1 => json!(weight.to_string()),
            Self::V1alpha2 | Self::V1alpha3 => json!(weight),
        }
    }
}

impl fmt::Display for SmiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SmiVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "v1alpha1" => Ok(Self::V1alpha1),
            "v1alpha2" => Ok(Self::V1alpha2),
            "v1alpha3" => Ok(Self::V1alpha3),
            _ => Err(format!(
                "Unsupported TrafficSplit API version `{s}` (v1alpha1, v1alpha2 or v1alpha3)"
            )),
        }
    }
}

/// The TrafficSplit target `name` in `namespace` for API version `version`.
pub fn traffic_split_target(version: SmiVersion, namespace: &str, name: &str) -> Target {
    Target::new(
        (SMI_GROUP, version.as_str()),
        (TRAFFIC_SPLIT_KIND, TRAFFIC_SPLIT_PLURAL),
        namespace,
        name,
    )
}

/// One backend as the Rollout wants it: a Service and its weight.
pub(crate) type Backend = (String, i32);

/// The backends of `spec.backends` in upstream's order, as `{service, weight}` objects of `version`.
pub(crate) fn backends_json(version: SmiVersion, backends: &[Backend]) -> Value {
    Value::Array(
        backends
            .iter()
            .map(|(service, weight)| json!({"service": service, "weight": version.weight(*weight)}))
            .collect(),
    )
}

fn malformed(name: &str, problem: String) -> RouterError {
    RouterError::Malformed(format!("TrafficSplit \"{name}\": {problem}"))
}

/// The backends listed in `spec.backends` as (Service, weight); a missing weight reads as 0.
pub(crate) fn observed_backends(doc: &Value, name: &str) -> Result<Vec<(String, f64)>, RouterError> {
    let list = match doc.pointer("/spec/backends") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(malformed(name, "spec.backends is not a list".into())),
    };
    list.iter()
        .enumerate()
        .map(|(i, backend)| {
            let service = backend
                .get("service")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed(name, format!("spec.backends[{i}] has no service")))?;
            let weight = match backend.get("weight") {
                None | Some(Value::Null) => 0.0,
                Some(w) => parse_weight(w).ok_or_else(|| {
                    malformed(
                        name,
                        format!("spec.backends[{i}].weight {w} is not a number or quantity"),
                    )
                })?,
            };
            Ok((service.to_string(), weight))
        })
        .collect()
}

/// The JSON patch that gives the TrafficSplit `root` as its Service and exactly `wanted` as backend weights:
/// a listed backend keeps its place and gets its weight replaced (after a `test` of its Service), a missing one
/// is appended, and any other backend (an experiment's that is over) is set to 0. Empty when nothing differs;
/// a weight equal in value but written otherwise (`10` against `"10"`) is left as it is.
pub(crate) fn weight_patch(
    doc: &Value,
    name: &str,
    version: SmiVersion,
    root: &str,
    wanted: &[Backend],
) -> Result<Patch, RouterError> {
    let mut ops: Vec<PatchOperation> = Vec::new();
    match doc.get("spec") {
        None | Some(Value::Null) => {
            ops.push(add(
                ptr(&["spec"]),
                json!({"service": root, "backends": backends_json(version, wanted)}),
            ));
            return Ok(Patch(ops));
        }
        Some(Value::Object(_)) => {}
        Some(_) => return Err(malformed(name, "spec is not an object".into())),
    }
    match doc.pointer("/spec/service") {
        Some(Value::String(s)) if s == root => {}
        Some(old @ Value::String(_)) => {
            ops.push(test(ptr(&["spec", "service"]), old.clone()));
            ops.push(replace(ptr(&["spec", "service"]), json!(root)));
        }
        _ => ops.push(add(ptr(&["spec", "service"]), json!(root))),
    }
    if matches!(doc.pointer("/spec/backends"), None | Some(Value::Null)) {
        ops.push(add(ptr(&["spec", "backends"]), backends_json(version, wanted)));
        return Ok(Patch(ops));
    }
    let observed = observed_backends(doc, name)?;
    let mut placed = vec![false; wanted.len()];
    for (i, (service, weight)) in observed.iter().enumerate() {
        // The first backend of a wanted Service carries its weight; any later one of the same Service gets 0.
        let want = match wanted.iter().position(|(s, _)| s == service) {
            Some(w) if !placed[w] => {
                placed[w] = true;
                wanted[w].1
            }
            _ => 0,
        };
        let has_weight = doc["spec"]["backends"][i]
            .get("weight")
            .is_some_and(|w| !w.is_null());
        if has_weight && *weight == f64::from(want) {
            continue;
        }
        let is_wanted = wanted.iter().any(|(s, _)| s == service);
        if !has_weight && !is_wanted {
            // An unweighted backend of another Service already gets nothing.
            continue;
        }
        let index = i.to_string();
        ops.push(test(
            ptr(&["spec", "backends", &index, "service"]),
            json!(service),
        ));
        let path = ptr(&["spec", "backends", &index, "weight"]);
        ops.push(if has_weight {
            replace(path, version.weight(want))
        } else {
            add(path, version.weight(want))
        });
    }
    for (backend, _) in wanted.iter().zip(&placed).filter(|(_, placed)| !**placed) {
        ops.push(add(
            ptr(&["spec", "backends", "-"]),
            json!({"service": backend.0, "weight": version.weight(backend.1)}),
        ));
    }
    Ok(Patch(ops))
}
