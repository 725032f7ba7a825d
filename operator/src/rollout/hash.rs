//! Deterministic hashes: the pod-template hash that names a ReplicaSet, and the hash of the canary steps.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde::Serialize;

/// The alphabet of `rand.SafeEncodeString` upstream: no vowels (no words), no look-alike characters.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a, 32 bits.
fn fnv32a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// Maps each character of `s` into the safe alphabet, as upstream encodes the decimal hash.
fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()] as char)
        .collect()
}

/// The `rollouts-pod-template-hash` of a template: FNV-32a of its JSON followed by the collision count, written
/// in decimal and safe-encoded. The template is hashed without its own hash label so that the hash of a
/// ReplicaSet's template equals the hash of the Rollout template it came from.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut template = template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(crate::rollout::HASH_LABEL);
    }
    let mut bytes = serde_json::to_vec(&template).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&(c as u64).to_le_bytes());
    }
    safe_encode(&fnv32a(&bytes).to_string())
}

/// `status.currentStepHash`: the hash of the canary steps; when it changes the steps restart.
pub fn steps_hash<T: Serialize>(steps: &T) -> String {
    safe_encode(&fnv32a(&serde_json::to_vec(steps).unwrap_or_default()).to_string())
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

    #[test]
    fn fnv32a_matches_the_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9cf968);
    }

    #[test]
    fn hash_is_deterministic_safe_and_changes_with_the_template() {
        let a = pod_template_hash(&template("nginx:1"), None);
        assert_eq!(a, pod_template_hash(&template("nginx:1"), None));
        assert_ne!(a, pod_template_hash(&template("nginx:2"), None));
        assert_ne!(
            a,
            pod_template_hash(&template("nginx:1"), Some(1)),
            "collision count changes the hash"
        );
        assert!(a.bytes().all(|b| SAFE_ALPHABET.contains(&b)), "{a}");
        assert!(!a.is_empty() && a.len() <= 10);
    }

    #[test]
    fn hash_ignores_its_own_label() {
        let mut labelled = template("nginx:1");
        labelled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(crate::rollout::HASH_LABEL.into(), "x".into());
        assert_eq!(
            pod_template_hash(&labelled, None),
            pod_template_hash(&template("nginx:1"), None)
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
