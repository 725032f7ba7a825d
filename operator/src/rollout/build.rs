//! The objects a Rollout owns, built as upstream writes them: its ReplicaSets and its AnalysisRuns. Pure: the
//! executor only sends what these return.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::ReplicaSet,
        core::v1::{PodAffinityTerm, PodTemplateSpec, WeightedPodAffinityTerm},
    },
    apimachinery::pkg::apis::meta::v1::{
        LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference,
    },
};
use kube::{Resource, ResourceExt};
use serde_json::json;
use sluice_crds::{
    analysis::{AnalysisRun, AnalysisRunSpec},
    rollout::{PodTemplateMetadata, Rollout},
};

use super::{
    DESIRED_REPLICAS_ANNOTATION, HASH_LABEL, REVISION_ANNOTATION,
    ephemeral::{self, EPHEMERAL_METADATA_ANNOTATION, Role},
};

/// The pod anti-affinity a strategy's antiAffinity asks for between new pods and the stable ones.
enum AntiAffinityRule {
    /// preferredDuringSchedulingIgnoredDuringExecution with its weight.
    Preferred(WeightedPodAffinityTerm),
    /// requiredDuringSchedulingIgnoredDuringExecution.
    Required(PodAffinityTerm),
}

/// Upstream's injected rule: keep new pods off the nodes (kubernetes.io/hostname) of the stable pods.
fn anti_affinity(ro: &Rollout, stable_hash: &str) -> Option<AntiAffinityRule> {
    let spec = ro.spec.strategy.anti_affinity()?;
    let term = PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: HASH_LABEL.into(),
                operator: "In".into(),
                values: Some(vec![stable_hash.to_string()]),
            }]),
            ..Default::default()
        }),
        topology_key: "kubernetes.io/hostname".into(),
        ..Default::default()
    };
    if let Some(preferred) = &spec.preferred_during_scheduling_ignored_during_execution {
        return Some(AntiAffinityRule::Preferred(WeightedPodAffinityTerm {
            weight: preferred.weight,
            pod_affinity_term: term,
        }));
    }
    spec.required_during_scheduling_ignored_during_execution
        .as_ref()
        .map(|_| AntiAffinityRule::Required(term))
}

/// The controller owner reference a Rollout puts on what it creates.
fn owner(ro: &Rollout) -> OwnerReference {
    OwnerReference {
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Rollout".into(),
        name: ro.name_any(),
        uid: ro.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The pod template of the ReplicaSet `hash`: the Rollout's, with the hash label, the ephemeral metadata of its
/// role (stable on a first deploy, canary or preview otherwise) and, for new pods beside stable ones, the
/// strategy's anti-affinity against the stable pods.
fn pod_template(ro: &Rollout, hash: &str) -> (PodTemplateSpec, Option<PodTemplateMetadata>) {
    let mut template = ro.spec.template.clone().unwrap_or_default();
    let stable_hash = ro.status.as_ref().and_then(|s| s.stable_rs.as_deref());
    let stable = stable_hash.is_none_or(|s| s == hash);
    if let Some(stable_hash) = stable_hash.filter(|_| !stable)
        && let Some(rule) = anti_affinity(ro, stable_hash)
    {
        let spec = template.spec.get_or_insert_with(Default::default);
        let affinity = spec.affinity.get_or_insert_with(Default::default);
        let pod_anti = affinity.pod_anti_affinity.get_or_insert_with(Default::default);
        match rule {
            AntiAffinityRule::Preferred(term) => pod_anti
                .preferred_during_scheduling_ignored_during_execution
                .get_or_insert_with(Vec::new)
                .push(term),
            AntiAffinityRule::Required(term) => pod_anti
                .required_during_scheduling_ignored_during_execution
                .get_or_insert_with(Vec::new)
                .push(term),
        }
    }
    let meta = template.metadata.get_or_insert_with(Default::default);
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(HASH_LABEL.into(), hash.into());
    let injected = ephemeral::for_role(ro, if stable { Role::Stable } else { Role::Canary });
    for (k, v) in injected.iter().flat_map(|m| m.labels.iter().flatten()) {
        labels.insert(k.clone(), v.clone());
    }
    for (k, v) in injected.iter().flat_map(|m| m.annotations.iter().flatten()) {
        meta.annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(k.clone(), v.clone());
    }
    (template, injected)
}

/// The ReplicaSet `<rollout>-<hash>` of the Rollout's template: the hash label on its labels, selector and
/// pod template, the revision and desired-replicas annotations, minReadySeconds and the owner reference.
pub fn replica_set(ro: &Rollout, hash: &str, initial: i32, revision: i64) -> ReplicaSet {
    let (template, injected) = pod_template(ro, hash);
    let mut selector = ro.spec.selector.clone().unwrap_or_default();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.into());
    let labels = template.metadata.as_ref().and_then(|m| m.labels.clone());
    let replicas = ro.spec.replicas.unwrap_or(1);
    let mut annotations = serde_json::Map::new();
    annotations.insert(REVISION_ANNOTATION.into(), revision.to_string().into());
    annotations.insert(DESIRED_REPLICAS_ANNOTATION.into(), replicas.to_string().into());
    if let Some(m) = &injected {
        annotations.insert(
            EPHEMERAL_METADATA_ANNOTATION.into(),
            serde_json::to_string(m).unwrap_or_default().into(),
        );
    }
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{}-{hash}", ro.name_any()),
            "namespace": ro.namespace(),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner(ro)],
        },
        "spec": {
            "replicas": initial,
            "minReadySeconds": ro.spec.min_ready_seconds.unwrap_or(0),
            "selector": selector,
            "template": template,
        }
    }))
    .unwrap_or_default()
}

/// An AnalysisRun of the Rollout, in its namespace and owned by it.
pub fn analysis_run(
    ro: &Rollout,
    name: &str,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    spec: &AnalysisRunSpec,
) -> AnalysisRun {
    AnalysisRun {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: ro.namespace(),
            labels: Some(labels.clone()),
            annotations: Some(annotations.clone()),
            owner_references: ro.controller_owner_ref(&()).map(|mut o| {
                o.block_owner_deletion = Some(true);
                vec![o]
            }),
            ..Default::default()
        },
        spec: spec.clone(),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout() -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
            "spec": {
                "replicas": 4,
                "minReadySeconds": 7,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "web", "image": "v2"}]}},
                "strategy": {"canary": {}},
            }
        }))
        .unwrap()
    }

    #[test]
    fn replica_set_is_named_labelled_annotated_and_owned_as_upstream() {
        let rs = replica_set(&rollout(), "abc", 0, 3);
        assert_eq!(rs.name_any(), "web-abc");
        assert_eq!(rs.namespace().as_deref(), Some("shop"));
        assert_eq!(rs.labels()[HASH_LABEL], "abc");
        assert_eq!(rs.labels()["app"], "web");
        let a = rs.annotations();
        assert_eq!(a[REVISION_ANNOTATION], "3");
        assert_eq!(a[DESIRED_REPLICAS_ANNOTATION], "4");
        assert!(
            !a.keys().any(|k| k.starts_with("sluice.dev/")),
            "annotated as upstream does: {a:?}"
        );
        let spec = rs.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(0));
        assert_eq!(spec.min_ready_seconds, Some(7));
        let sel = spec.selector.match_labels.as_ref().unwrap();
        assert_eq!((sel["app"].as_str(), sel[HASH_LABEL].as_str()), ("web", "abc"));
        let tpl_labels = spec
            .template
            .as_ref()
            .unwrap()
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert_eq!(tpl_labels[HASH_LABEL], "abc");
        let o = &rs.owner_references()[0];
        assert_eq!(
            (
                o.kind.as_str(),
                o.name.as_str(),
                o.uid.as_str(),
                o.controller,
                o.block_owner_deletion
            ),
            ("Rollout", "web", "u1", Some(true), Some(true))
        );
    }

    #[test]
    fn replica_set_does_not_change_the_rollout_template() {
        let ro = rollout();
        let _ = replica_set(&ro, "abc", 1, 1);
        let labels = ro.spec.template.unwrap().metadata.unwrap().labels.unwrap();
        assert!(!labels.contains_key(HASH_LABEL));
    }

    #[test]
    fn replica_set_pods_are_born_with_the_metadata_of_their_role() {
        let mut ro = rollout();
        ro.spec.strategy.canary.as_mut().unwrap().canary_metadata =
            serde_json::from_value(json!({"labels": {"role": "canary"}})).ok();
        ro.spec.strategy.canary.as_mut().unwrap().stable_metadata =
            serde_json::from_value(json!({"labels": {"role": "stable"}})).ok();
        let labels = |rs: &ReplicaSet| {
            rs.spec
                .as_ref()
                .unwrap()
                .template
                .as_ref()
                .unwrap()
                .metadata
                .as_ref()
                .unwrap()
                .labels
                .clone()
                .unwrap()
        };
        let first = replica_set(&ro, "abc", 4, 1);
        assert_eq!(labels(&first)["role"], "stable", "a first deploy is stable");
        ro.status = Some(sluice_crds::rollout::RolloutStatus {
            stable_rs: Some("abc".into()),
            ..Default::default()
        });
        let next = replica_set(&ro, "def", 0, 2);
        assert_eq!(labels(&next)["role"], "canary");
        assert_eq!(
            next.annotations()[EPHEMERAL_METADATA_ANNOTATION],
            r#"{"labels":{"role":"canary"}}"#
        );
        assert_eq!(labels(&next)[HASH_LABEL], "def");
    }

    #[test]
    fn new_pods_beside_stable_ones_get_the_anti_affinity_against_the_stable_hash() {
        let mut ro = rollout();
        ro.spec.strategy.canary.as_mut().unwrap().anti_affinity = serde_json::from_value(
            json!({"preferredDuringSchedulingIgnoredDuringExecution": {"weight": 40}}),
        )
        .ok();
        let affinity = |rs: &ReplicaSet| {
            let spec = rs
                .spec
                .as_ref()
                .unwrap()
                .template
                .as_ref()
                .unwrap()
                .spec
                .as_ref()
                .unwrap();
            spec.affinity.as_ref().and_then(|a| a.pod_anti_affinity.clone())
        };
        assert_eq!(
            affinity(&replica_set(&ro, "abc", 4, 1)),
            None,
            "no stable pods to avoid"
        );
        ro.status = Some(sluice_crds::rollout::RolloutStatus {
            stable_rs: Some("abc".into()),
            ..Default::default()
        });
        let anti = affinity(&replica_set(&ro, "def", 0, 2)).unwrap();
        let preferred = &anti.preferred_during_scheduling_ignored_during_execution.unwrap()[0];
        assert_eq!(preferred.weight, 40);
        assert_eq!(preferred.pod_affinity_term.topology_key, "kubernetes.io/hostname");
        let expr = &preferred
            .pod_affinity_term
            .label_selector
            .as_ref()
            .unwrap()
            .match_expressions
            .as_ref()
            .unwrap()[0];
        assert_eq!(
            (expr.key.as_str(), expr.operator.as_str(), expr.values.clone()),
            (HASH_LABEL, "In", Some(vec!["abc".to_string()]))
        );
        ro.spec.strategy.canary.as_mut().unwrap().anti_affinity =
            serde_json::from_value(json!({"requiredDuringSchedulingIgnoredDuringExecution": {}})).ok();
        let anti = affinity(&replica_set(&ro, "def", 0, 2)).unwrap();
        assert_eq!(
            anti.required_during_scheduling_ignored_during_execution
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn analysis_run_is_owned_by_the_rollout_in_its_namespace() {
        let labels = BTreeMap::from([("rollout-type".to_string(), "Step".to_string())]);
        let annotations = BTreeMap::from([(REVISION_ANNOTATION.to_string(), "2".to_string())]);
        let run = analysis_run(
            &rollout(),
            "web-abc-2-0",
            &labels,
            &annotations,
            &AnalysisRunSpec::default(),
        );
        assert_eq!(run.name_any(), "web-abc-2-0");
        assert_eq!(run.namespace().as_deref(), Some("shop"));
        assert_eq!(run.labels()["rollout-type"], "Step");
        assert_eq!(run.annotations()[REVISION_ANNOTATION], "2");
        let o = &run.owner_references()[0];
        assert_eq!(
            (o.kind.as_str(), o.controller, o.block_owner_deletion),
            ("Rollout", Some(true), Some(true))
        );
        assert!(run.status.is_none());
    }
}
