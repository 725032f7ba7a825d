//! Status writes as merge patches of only what changed, so that fields other clients own (the plugin's
//! `abort`, `pauseConditions`, ...) are never overwritten with a stale copy; with the resourceVersion the
//! change was planned from as a precondition, so that a status planned before a user's action cannot land
//! after it (the server answers 409 Conflict and the object is planned again).

use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

/// RFC 7386 merge patch that turns `from` into `to` (null removes a field).
pub fn merge_diff(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(f), Value::Object(t)) => {
            let mut out = serde_json::Map::new();
            for (k, tv) in t {
                match f.get(k) {
                    Some(fv) if fv == tv => {}
                    Some(fv) if fv.is_object() && tv.is_object() => {
                        out.insert(k.clone(), merge_diff(fv, tv));
                    }
                    _ => {
                        out.insert(k.clone(), tv.clone());
                    }
                }
            }
            for k in f.keys().filter(|k| !t.contains_key(*k)) {
                out.insert(k.clone(), Value::Null);
            }
            Value::Object(out)
        }
        _ => to.clone(),
    }
}

/// The status patch from `current` to `next`, conditional on `resource_version` when given.
pub fn status_patch<S: Serialize>(resource_version: Option<&str>, current: &S, next: &S) -> Value {
    let diff = merge_diff(
        &serde_json::to_value(current).unwrap_or_default(),
        &serde_json::to_value(next).unwrap_or_default(),
    );
    match resource_version {
        Some(rv) => json!({"metadata": {"resourceVersion": rv}, "status": diff}),
        None => json!({ "status": diff }),
    }
}

/// Patches the status subresource from `current` to `next` (only the difference), conditional on the object
/// still being at `resource_version` when given, and returns the object.
pub async fn write_at<K, S>(
    api: &Api<K>,
    name: &str,
    resource_version: Option<&str>,
    current: &S,
    next: &S,
) -> kube::Result<K>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = status_patch(resource_version, current, next);
    tracing::debug!(object = name, %patch, "status patch");
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
}

/// Whether the server refused a write because the object changed since it was read.
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_are_sent_with_the_planned_version() {
        let current =
            json!({"phase": "Paused", "abort": false, "pauseConditions": [{"reason": "CanaryPauseStep"}]});
        let next = json!({"phase": "Progressing", "abort": false});
        assert_eq!(
            status_patch(Some("42"), &current, &next),
            json!({"metadata": {"resourceVersion": "42"}, "status": {"phase": "Progressing", "pauseConditions": null}})
        );
        assert_eq!(status_patch(None, &current, &current), json!({"status": {}}));
    }
}
