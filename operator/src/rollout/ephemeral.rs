//! Ephemeral metadata: the labels and annotations a Rollout puts on the pods of a ReplicaSet for the role it
//! plays now (canaryMetadata / stableMetadata, previewMetadata / activeMetadata), swapped at promotion. What was
//! injected is recorded on the ReplicaSet (`rollout.argoproj.io/ephemeral-metadata`), so only those keys are
//! ever removed; labels the template or others set stay.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sluice_crds::rollout::{PodTemplateMetadata, Rollout};

use super::plan::{Action, Draft, Facts};

/// Annotation on a ReplicaSet recording the metadata injected into its pods (JSON).
pub const EPHEMERAL_METADATA_ANNOTATION: &str = "rollout.argoproj.io/ephemeral-metadata";

/// The role a ReplicaSet plays for its pods' metadata.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Role {
    /// The new pods before promotion: canary (canary strategy) or preview (blue-green).
    Canary,
    /// The stable (active) pods.
    Stable,
}

/// The metadata the Rollout's strategy asks for a role, None when it asks for none.
pub fn for_role(ro: &Rollout, role: Role) -> Option<PodTemplateMetadata> {
    let strategy = &ro.spec.strategy;
    let metadata = match (role, &strategy.canary, &strategy.blue_green) {
        (Role::Canary, Some(c), _) => c.canary_metadata.clone(),
        (Role::Stable, Some(c), _) => c.stable_metadata.clone(),
        (Role::Canary, None, Some(b)) => b.preview_metadata.clone(),
        (Role::Stable, None, Some(b)) => b.active_metadata.clone(),
        _ => None,
    };
    metadata.filter(|m| !is_empty(m))
}

fn is_empty(m: &PodTemplateMetadata) -> bool {
    m.labels.as_ref().is_none_or(BTreeMap::is_empty) && m.annotations.as_ref().is_none_or(BTreeMap::is_empty)
}

/// The metadata recorded on a ReplicaSet's annotation, if any.
pub fn recorded(annotation: Option<&String>) -> Option<PodTemplateMetadata> {
    annotation
        .and_then(|a| serde_json::from_str::<PodTemplateMetadata>(a).ok())
        .filter(|m| !is_empty(m))
}

/// A merge patch of an object's metadata (a pod's, or a pod template's) from the recorded metadata to the
/// wanted one: wanted keys set, recorded keys no longer wanted removed, nothing else touched.
pub fn metadata_patch(recorded: Option<&PodTemplateMetadata>, wanted: Option<&PodTemplateMetadata>) -> Value {
    let section = |get: fn(&PodTemplateMetadata) -> Option<&BTreeMap<String, String>>| {
        let mut out = Map::new();
        for key in recorded.and_then(get).into_iter().flat_map(|m| m.keys()) {
            out.insert(key.clone(), Value::Null);
        }
        for (k, v) in wanted.and_then(get).into_iter().flatten() {
            out.insert(k.clone(), Value::String(v.clone()));
        }
        Value::Object(out)
    };
    serde_json::json!({
        "labels": section(|m| m.labels.as_ref()),
        "annotations": section(|m| m.annotations.as_ref()),
    })
}

/// The desired ReplicaSet carries the canary (preview) metadata until promoted, the stable (active) one after;
/// the stable ReplicaSet carries the stable metadata.
pub(super) fn plan(f: &Facts, d: &mut Draft) {
    let new_role = if f.fully_promoted {
        Role::Stable
    } else {
        Role::Canary
    };
    let mut targets = vec![(f.new_rs, new_role)];
    if let Some(stable) = f.stable_rs.filter(|_| !f.fully_promoted) {
        targets.push((stable, Role::Stable));
    }
    for (rs, role) in targets {
        let wanted = for_role(f.ro, role);
        if wanted != rs.ephemeral {
            d.out.actions.push(Action::SetEphemeralMetadata {
                name: rs.name.clone(),
                hash: rs.hash.clone(),
                recorded: rs.ephemeral.clone(),
                wanted,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metadata(labels: &[(&str, &str)]) -> PodTemplateMetadata {
        PodTemplateMetadata {
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            annotations: None,
        }
    }

    #[test]
    fn the_patch_sets_wanted_keys_and_removes_only_recorded_ones() {
        let canary = metadata(&[("role", "canary"), ("track", "new")]);
        let stable = metadata(&[("role", "stable")]);
        assert_eq!(
            metadata_patch(Some(&canary), Some(&stable)),
            json!({"labels": {"role": "stable", "track": null}, "annotations": {}})
        );
        assert_eq!(
            metadata_patch(None, Some(&canary)),
            json!({"labels": {"role": "canary", "track": "new"}, "annotations": {}})
        );
        assert_eq!(
            metadata_patch(Some(&stable), None),
            json!({"labels": {"role": null}, "annotations": {}})
        );
    }

    #[test]
    fn roles_read_the_strategy_fields_of_both_strategies() {
        let ro: Rollout = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "web"},
            "spec": {"strategy": {"blueGreen": {
                "activeService": "a",
                "previewMetadata": {"labels": {"role": "preview"}},
                "activeMetadata": {"annotations": {"tier": "live"}, "labels": {}},
            }}}
        }))
        .unwrap();
        assert_eq!(
            for_role(&ro, Role::Canary),
            Some(metadata(&[("role", "preview")]))
        );
        assert_eq!(
            for_role(&ro, Role::Stable).and_then(|m| m.annotations),
            Some(BTreeMap::from([("tier".to_string(), "live".to_string())]))
        );
        assert_eq!(
            recorded(Some(&"{\"labels\":{}}".to_string())),
            None,
            "empty is none"
        );
        assert_eq!(
            recorded(Some(&"{\"labels\":{\"role\":\"preview\"}}".to_string())),
            Some(metadata(&[("role", "preview")]))
        );
    }
}
