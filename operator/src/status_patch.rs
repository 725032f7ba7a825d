//! Status writes as merge patches of only what changed, so that fields other clients own (the plugin's
//! `abort`, `pauseConditions`, ...) are never overwritten with a stale copy.

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

/// Patches the status subresource from `current` to `next` (only the difference) and returns the object.
pub async fn write<K, S>(api: &Api<K>, name: &str, current: &S, next: &S) -> kube::Result<K>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = merge_diff(
        &serde_json::to_value(current).unwrap_or_default(),
        &serde_json::to_value(next).unwrap_or_default(),
    );
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": patch })),
    )
    .await
}
