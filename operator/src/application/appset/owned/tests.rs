use std::time::Duration;

use serde_json::json;
use sluice_crds::{application::Application, applicationset::ApplicationSet};

use super::*;

fn appset(extra: serde_json::Value) -> ApplicationSet {
    let mut v = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "ApplicationSet",
        "metadata": {"name": "guestbook", "namespace": "argocd", "uid": "u-1"},
        "spec": {"generators": [], "template": {"metadata": {}, "spec": {"destination": {}, "project": "default"}}}
    });
    if let (Some(spec), Some(extra)) = (v["spec"].as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(v).unwrap()
}

fn app(name: &str, meta: serde_json::Value) -> Application {
    let mut m = json!({"name": name});
    m.as_object_mut()
        .unwrap()
        .extend(meta.as_object().cloned().unwrap_or_default());
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": m,
        "spec": {"destination": {}, "project": "default"}
    }))
    .unwrap()
}

#[test]
fn generated_apps_are_controlled_by_the_set() {
    let set = appset(json!({}));
    let out = with_owner(app("a", json!({})), &set);
    let owner = &out.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
        ("ApplicationSet", "guestbook", "u-1")
    );
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, Some(true));
    assert!(owned_by(&out, "u-1"));
    assert!(!owned_by(&out, "u-2"));
    assert_eq!(owner_name(&out), Some("guestbook"));
    assert_eq!(owner_name(&app("b", json!({}))), None);
}

#[test]
fn preserving_resources_is_read_from_the_sync_policy() {
    assert!(!preserves_resources(&appset(json!({}))));
    let set = appset(json!({"syncPolicy": {"preserveResourcesOnDeletion": true}}));
    assert!(preserves_resources(&set));
}

#[test]
fn status_lists_each_app_with_its_sync_and_health() {
    let mut b: Application = app("b", json!({"namespace": "argocd"}));
    b.status = serde_json::from_value(json!({"sync": {"status": "Synced"}, "health": {"status": "Healthy"}}))
        .unwrap();
    let a = app("a", json!({"namespace": "argocd"}));
    let listed = resources(&[&b, &a]);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].name.as_deref(), Some("a"));
    assert_eq!(listed[0].status, None);
    assert_eq!(listed[1].status.as_deref(), Some("Synced"));
    assert_eq!(
        listed[1].health.as_ref().and_then(|h| h.status.as_deref()),
        Some("Healthy")
    );
    assert_eq!(listed[1].kind.as_deref(), Some("Application"));
}

#[test]
fn git_generators_are_asked_again_list_and_clusters_are_not() {
    let of = |gens: serde_json::Value| requeue_after(&serde_json::from_value::<Vec<_>>(gens).unwrap());
    assert_eq!(of(json!([{"list": {"elements": []}}])), None);
    assert_eq!(of(json!([{"clusters": {}}])), None);
    assert_eq!(
        of(json!([{"git": {"repoURL": "r", "revision": "HEAD", "directories": [{"path": "*"}]}}])),
        Some(DEFAULT_GIT_REQUEUE)
    );
    let nested = json!([{"matrix": {"generators": [
        {"clusters": {}},
        {"git": {"repoURL": "r", "revision": "HEAD", "requeueAfterSeconds": 5, "files": [{"path": "*.json"}]}}
    ]}}]);
    assert_eq!(of(nested), Some(Duration::from_secs(5)));
}
