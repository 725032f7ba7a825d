//! Reading object metadata the way upstream's `info` package does: names, creation times, owner UIDs and the
//! revision annotation.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The annotation holding a ReplicaSet's (or run's, or experiment's) revision number.
pub const REVISION: &str = "rollout.argoproj.io/revision";
/// The annotation naming the experiment template a ReplicaSet was made from.
pub const EXPERIMENT_TEMPLATE: &str = "experiment.argoproj.io/template-name";
/// The annotation holding the time an old ReplicaSet is scaled down (RFC 3339).
pub const SCALE_DOWN_DEADLINE: &str = "scale-down-deadline";
/// The label holding a ReplicaSet's pod-template hash.
pub const POD_TEMPLATE_HASH: &str = "rollouts-pod-template-hash";

/// metadata.name, empty when unset.
pub fn name(m: &ObjectMeta) -> String {
    m.name.clone().unwrap_or_default()
}

/// metadata.uid, empty when unset.
pub fn uid(m: &ObjectMeta) -> &str {
    m.uid.as_deref().unwrap_or("")
}

/// metadata.creationTimestamp.
pub fn created(m: &ObjectMeta) -> Option<Timestamp> {
    m.creation_timestamp.as_ref().map(|t| t.0)
}

/// An annotation, empty when absent.
pub fn annotation<'a>(m: &'a ObjectMeta, key: &str) -> &'a str {
    m.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map_or("", String::as_str)
}

/// A label, empty when absent.
pub fn label<'a>(m: &'a ObjectMeta, key: &str) -> &'a str {
    m.labels
        .as_ref()
        .and_then(|a| a.get(key))
        .map_or("", String::as_str)
}

/// The revision annotation as a number (0 when absent or not a number).
pub fn revision(m: &ObjectMeta) -> i64 {
    annotation(m, REVISION).parse().unwrap_or(0)
}

/// The UID of the first owner reference that names one of `owners`.
pub fn owner<'a>(m: &ObjectMeta, owners: &[&'a str]) -> Option<&'a str> {
    let refs = m.owner_references.as_deref().unwrap_or_default();
    refs.iter().find_map(|r| {
        owners
            .iter()
            .copied()
            .find(|uid| !uid.is_empty() && r.uid == *uid)
    })
}

/// Whether `m` is owned by the object with `uid`.
pub fn owned_by(m: &ObjectMeta, uid: &str) -> bool {
    owner(m, &[uid]).is_some()
}
