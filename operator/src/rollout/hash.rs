//! The hashes Argo Rollouts computes, reproduced exactly: the pod-template hash that names a ReplicaSet, and
//! the hash of the canary steps. Both are FNV-32a over Go's `json.Marshal` (see `sluice_gojson`), so a Rollout
//! Argo Rollouts made is taken over with the same ReplicaSet names and without restarting its steps.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::Serialize;

use sluice_gojson as gojson;

/// Go's JSON of `value` as the Go type `ty`. A value Go would refuse to decode (Argo Rollouts could not read
/// such a Rollout at all) is hashed by its own JSON instead, so that it still has a stable hash.
fn go_json<T: Serialize>(ty: usize, value: &T) -> Vec<u8> {
    let value = serde_json::to_value(value).unwrap_or_default();
    gojson::marshal(ty, &value).unwrap_or_else(|_| serde_json::to_vec(&value).unwrap_or_default())
}

/// The `rollouts-pod-template-hash` of a Rollout's template: FNV-32a of Go's JSON of the template followed by
/// the collision count (as a 32-bit little-endian number in 8 bytes), written in decimal and safe-encoded.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    gojson::argo_hash(&go_json(gojson::POD_TEMPLATE_SPEC, template), collision_count)
}

/// `status.currentStepHash`: the hash of the canary steps; when it changes the steps restart.
pub fn steps_hash<T: Serialize>(steps: &T) -> String {
    gojson::argo_hash(&go_json(gojson::CANARY_STEPS, steps), None)
}

/// A ReplicaSet the Rollout owns, as the choice of the one running the desired template sees it.
#[derive(Debug, Clone, Copy)]
pub struct OwnedTemplate<'a> {
    /// Its `rollouts-pod-template-hash` label.
    pub hash: &'a str,
    /// Its pod template as stored.
    pub template: Option<&'a PodTemplateSpec>,
}

/// The hash of the ReplicaSet that runs `template`, whose exact hash is `exact`:
/// 1. the ReplicaSet named by the exact hash;
/// 2. else the ReplicaSet named by `recorded`, the `status.currentPodHash` of a status that still describes this
///    template (its observed generation is the Rollout's), when it runs the template: another controller's hash
///    of the same template, such as an Argo Rollouts built on Kubernetes modules older than 0.34, which wrote
///    `creationTimestamp: null` into the JSON it hashed;
/// 3. else a ReplicaSet whose stored template is the template, hash label aside: what an undo writes back;
/// 4. else the exact hash: a new revision.
///
/// A template that only lost a field is contained in the old ReplicaSet's template but is a new revision: the
/// generation moved on, so the second rule no longer applies, and the third needs equality.
pub fn current_hash(
    exact: String,
    template: &PodTemplateSpec,
    recorded: Option<&str>,
    owned: &[OwnedTemplate],
) -> String {
    if owned.iter().any(|rs| rs.hash == exact) {
        return exact;
    }
    let runs = |rs: &&OwnedTemplate, test: fn(&PodTemplateSpec, &PodTemplateSpec) -> bool| {
        rs.template.is_some_and(|t| test(template, t))
    };
    let recorded_rs = recorded.and_then(|h| owned.iter().find(|rs| rs.hash == h && runs(rs, adoptable)));
    let undone = || owned.iter().find(|rs| runs(rs, same_template));
    match recorded_rs.or_else(undone) {
        Some(rs) => rs.hash.to_string(),
        None => exact,
    }
}

/// Whether `a` is contained in `b`: every field of `a` is in `b` with a contained value; lists have the same
/// length and contained elements. The API server only adds defaults to a stored pod template, so a template
/// written by a user is contained in the stored copy of the same template.
fn contained(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => a.iter().all(|(k, v)| match b.get(k) {
            Some(bv) => contained(v, bv),
            None => v.is_null() || v.as_object().is_some_and(|o| o.is_empty()),
        }),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| contained(x, y))
        }
        _ => a == b,
    }
}

/// Whether a ReplicaSet made by another controller (Argo Rollouts, on migration) runs the Rollout's template
/// and can be adopted instead of starting a new revision. Its own hash label and the defaults the API server
/// added are ignored.
pub fn adoptable(template: &PodTemplateSpec, rs_template: &PodTemplateSpec) -> bool {
    contained(&without_hash_label(template), &without_hash_label(rs_template))
}

/// Whether a ReplicaSet's template is the Rollout's template, its hash label aside: what `kubectl argo rollouts
/// undo` writes back (the stored template, with the API server's defaults) names that ReplicaSet again.
pub fn same_template(template: &PodTemplateSpec, rs_template: &PodTemplateSpec) -> bool {
    without_hash_label(template) == without_hash_label(rs_template)
}

fn without_hash_label(t: &PodTemplateSpec) -> serde_json::Value {
    let mut t = t.clone();
    if let Some(meta) = t.metadata.as_mut() {
        if let Some(labels) = meta.labels.as_mut() {
            labels.remove(crate::rollout::HASH_LABEL);
        }
        if meta.labels.as_ref().is_some_and(|l| l.is_empty()) {
            meta.labels = None;
        }
    }
    serde_json::to_value(t).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": image}]}
        }))
        .unwrap()
    }

    // The expected hashes are Argo Rollouts' own, from `gohash oracle` (e2e/gohash), which calls
    // hash.ComputePodTemplateHash and conditions.ComputeStepHash; e2e/tests/gohash.rs holds the encoder to it
    // over generated templates.
    #[test]
    fn pod_template_hash_is_argo_rollouts_hash() {
        assert_eq!(pod_template_hash(&template("nginx:1"), None), "5b4b8c567c");
        assert_eq!(pod_template_hash(&template("nginx:2"), None), "8559df8df6");
        assert_eq!(pod_template_hash(&template("nginx:1"), Some(1)), "7667fbb848");
        assert_eq!(pod_template_hash(&template("nginx:1"), Some(-1)), "6b6dd4765");
    }

    #[test]
    fn steps_hash_is_argo_rollouts_hash() {
        let steps: Option<Vec<sluice_crds::rollout::CanaryStep>> =
            serde_json::from_value(serde_json::json!([
                {"setWeight": 20}, {"pause": {}}, {"setWeight": 40}, {"pause": {"duration": "10s"}}
            ]))
            .unwrap();
        assert_eq!(steps_hash(&steps), "5489486cff");
        assert_eq!(
            steps_hash(&Some(Vec::<sluice_crds::rollout::CanaryStep>::new())),
            "5f8cb5778f"
        );
        assert_eq!(
            steps_hash(&None::<Vec<sluice_crds::rollout::CanaryStep>>),
            "5ffbfbbd64",
            "no steps: null"
        );
    }

    fn owned<'a>(hash: &'a str, template: &'a PodTemplateSpec) -> OwnedTemplate<'a> {
        OwnedTemplate {
            hash,
            template: Some(template),
        }
    }

    fn stored(image: &str, extra: serde_json::Value) -> PodTemplateSpec {
        let mut v = serde_json::json!({
            "metadata": {"labels": {"app": "web", "rollouts-pod-template-hash": "x"}},
            "spec": {"containers": [{"name": "web", "image": image, "imagePullPolicy": "IfNotPresent"}],
                     "dnsPolicy": "ClusterFirst"}
        });
        json_patch::merge(&mut v, &extra);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_replica_set_of_the_exact_hash_comes_first() {
        let t = template("nginx:1");
        let rs_a = stored("nginx:1", serde_json::json!({}));
        let rss = [owned("old-argo", &rs_a), owned("exact", &rs_a)];
        assert_eq!(current_hash("exact".into(), &t, Some("old-argo"), &rss), "exact");
    }

    #[test]
    fn a_status_describing_this_template_names_the_replica_set_another_hash_made() {
        let t = template("nginx:1");
        let rs = stored("nginx:1", serde_json::json!({}));
        let rss = [owned("h-old", &rs)];
        assert_eq!(current_hash("exact".into(), &t, Some("h-old"), &rss), "h-old");
        // Not when the recorded ReplicaSet runs another template, nor without a status for this generation.
        let other = stored("nginx:0", serde_json::json!({}));
        assert_eq!(
            current_hash("exact".into(), &t, Some("h-old"), &[owned("h-old", &other)]),
            "exact"
        );
        assert_eq!(current_hash("exact".into(), &t, None, &rss), "exact");
    }

    #[test]
    fn a_template_that_only_lost_a_field_is_a_new_revision() {
        // The ReplicaSet ran the template with a nodeSelector; the user removed it (a new generation, so the
        // status no longer describes the template).
        let rs = stored(
            "nginx:1",
            serde_json::json!({"spec": {"nodeSelector": {"disk": "ssd"}}}),
        );
        let fewer = template("nginx:1");
        assert!(
            adoptable(&fewer, &rs),
            "containment alone would have kept the old ReplicaSet"
        );
        assert_eq!(
            current_hash("exact".into(), &fewer, None, &[owned("h1", &rs)]),
            "exact"
        );
    }

    #[test]
    fn an_undo_names_the_replica_set_whose_template_it_wrote_back() {
        let rs = stored("nginx:1", serde_json::json!({}));
        let mut undone = rs.clone();
        undone
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .remove(crate::rollout::HASH_LABEL);
        assert_eq!(
            current_hash("exact".into(), &undone, None, &[owned("h1", &rs)]),
            "h1"
        );
    }
}

#[cfg(test)]
mod adoption_tests {
    use super::*;

    fn template(v: serde_json::Value) -> PodTemplateSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_replica_set_made_elsewhere_with_the_same_template_is_adoptable() {
        let desired = template(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1"}]}
        }));
        // As the API server stores it: defaults added, the other controller's hash label.
        let stored = template(serde_json::json!({
            "metadata": {"labels": {"app": "web", "rollouts-pod-template-hash": "6b9f7d7c5"}},
            "spec": {
                "containers": [{"name": "web", "image": "nginx:1", "imagePullPolicy": "IfNotPresent",
                                "terminationMessagePath": "/dev/termination-log", "resources": {}}],
                "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
                "securityContext": {}, "terminationGracePeriodSeconds": 30
            }
        }));
        assert!(adoptable(&desired, &stored));
        let changed = template(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:2"}]}
        }));
        assert!(!adoptable(&changed, &stored), "another image is another template");
        let more = template(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1"}, {"name": "sidecar", "image": "envoy"}]}
        }));
        assert!(!adoptable(&more, &stored));
    }

    #[test]
    fn undo_names_the_replica_set_whose_template_it_copied() {
        let stored = template(serde_json::json!({
            "metadata": {"labels": {"app": "web", "rollouts-pod-template-hash": "abc"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1", "imagePullPolicy": "IfNotPresent"}],
                     "dnsPolicy": "ClusterFirst"}
        }));
        // What undo writes into the Rollout: the stored template without its hash label.
        let undone = template(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1", "imagePullPolicy": "IfNotPresent"}],
                     "dnsPolicy": "ClusterFirst"}
        }));
        assert!(same_template(&undone, &stored));
        // A template that only lost a field is another template, even though the stored one contains it.
        let fewer = template(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1", "imagePullPolicy": "IfNotPresent"}]}
        }));
        assert!(!same_template(&fewer, &stored));
        assert!(adoptable(&fewer, &stored), "containment would have taken it");
    }
}
