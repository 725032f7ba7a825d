//! Pure pieces of the ApplicationSet controller: the owner reference a generated Application carries, which Applications an ApplicationSet owns, what its status lists, and
//! how long until its generators should be asked again.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use sluice_crds::{
    application::{Application, ResourceStatus},
    applicationset::{ApplicationSet, ApplicationSetGenerator},
};

/// How often Argo CD's ApplicationSet controller asks Git generators again when they do not say.
pub const DEFAULT_GIT_REQUEUE: Duration = Duration::from_secs(180);

/// The controller reference a generated Application carries, so that deleting the ApplicationSet
/// garbage-collects it.
pub fn owner_reference(appset: &ApplicationSet) -> OwnerReference {
    OwnerReference {
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "ApplicationSet".into(),
        name: appset.name_any(),
        uid: appset.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Whether `app` is controlled by the ApplicationSet with this uid.
pub fn owned_by(app: &Application, uid: &str) -> bool {
    app.metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|o| o.kind == "ApplicationSet" && o.uid == uid && o.controller == Some(true))
}

/// The ApplicationSet (by name) controlling `app`, if any.
pub fn owner_name(app: &Application) -> Option<&str> {
    app.metadata
        .owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|o| o.kind == "ApplicationSet" && o.controller == Some(true))
        .map(|o| o.name.as_str())
}

/// `app` controlled by the ApplicationSet (the owner reference is all a create adds to the planned app).
pub fn with_owner(mut app: Application, appset: &ApplicationSet) -> Application {
    app.metadata.owner_references = Some(vec![owner_reference(appset)]);
    app
}

/// `spec.syncPolicy.preserveResourcesOnDeletion`.
pub fn preserves_resources(appset: &ApplicationSet) -> bool {
    appset
        .spec
        .sync_policy
        .as_ref()
        .and_then(|p| p.preserve_resources_on_deletion)
        .unwrap_or(false)
}

/// What the ApplicationSet's status lists for its Applications: each one's sync and health status.
pub fn resources(owned: &[&Application]) -> Vec<ResourceStatus> {
    let mut out: Vec<ResourceStatus> = owned
        .iter()
        .map(|app| {
            let status = app.status.as_ref();
            ResourceStatus {
                group: Some("argoproj.io".into()),
                version: Some("v1alpha1".into()),
                kind: Some("Application".into()),
                namespace: app.metadata.namespace.clone(),
                name: app.metadata.name.clone(),
                status: status
                    .and_then(|s| s.sync.as_ref())
                    .map(|s| s.status.clone())
                    .filter(|s| !s.is_empty()),
                health: status.and_then(|s| s.health.clone()),
                ..ResourceStatus::default()
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// How long until the generators are asked again: the shortest `requeueAfterSeconds` of a Git generator
/// (anywhere in a matrix or merge), the default for a Git generator that names none, and never for
/// generators that only change with objects that are watched (list, clusters).
pub fn requeue_after(generators: &[ApplicationSetGenerator]) -> Option<Duration> {
    let json = serde_json::to_value(generators).unwrap_or_default();
    let mut found = Vec::new();
    git_requeues(&json, &mut found);
    found.into_iter().min()
}

fn git_requeues(value: &serde_json::Value, out: &mut Vec<Duration>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if k == "git" && v.is_object() {
                    out.push(
                        v.get("requeueAfterSeconds")
                            .and_then(serde_json::Value::as_u64)
                            .map_or(DEFAULT_GIT_REQUEUE, |s| Duration::from_secs(s.max(1))),
                    );
                } else {
                    git_requeues(v, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| git_requeues(i, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
