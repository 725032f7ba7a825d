//! The comparison of an Application's rendered targets with the live objects, as Argo CD's `CompareAppState`
//! reports it: each resource's sync status and health, the app's sync status and aggregated health, and the
//! images it runs. Pure: the caller reads the live objects and computes each pair's drift.

use serde_json::Value;
use sluice_crds::application::{HealthStatus as CrdHealth, ResourceStatus};
use sluice_gitops::{
    health::{self, Health, HealthStatus, ResourceHealth},
    tasks,
};

use super::cluster::ObjectKey;

/// Annotation holding per-resource compare options (`IgnoreExtraneous`).
pub const ANNOTATION_COMPARE_OPTIONS: &str = "argocd.argoproj.io/compare-options";

/// How a live object differs from its target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Drift {
    /// Equal, once server defaults and ignored fields are set aside.
    Synced,
    /// Different at these paths.
    Modified(Vec<String>),
    /// There is a target and no live object.
    Missing,
    /// There is a live object the app manages and no target: it requires pruning.
    Extraneous,
}

/// One managed resource: its target, its live object and how they differ.
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    /// The address (from the target when there is one).
    pub key: ObjectKey,
    /// The rendered object, tracking annotation set.
    pub target: Option<Value>,
    /// The live object.
    pub live: Option<Value>,
    /// The drift computed by the caller.
    pub drift: Drift,
}

/// The result of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// `status.resources`, sorted by group, kind, namespace, name.
    pub resources: Vec<ResourceStatus>,
    /// `Synced` or `OutOfSync`.
    pub sync: &'static str,
    /// The aggregated health.
    pub health: Health,
    /// `status.summary.images`: the container images of the live objects, sorted, without duplicates.
    pub images: Vec<String>,
}

/// Whether a pair counts towards the app's sync status and health: hooks and ignored objects do not.
pub fn counts(pair: &Pair) -> bool {
    let obj = pair.target.as_ref().or(pair.live.as_ref());
    obj.is_some_and(|o| !tasks::is_hook(o) && !tasks::is_ignored(o) && !tasks::is_skip(o))
}

fn ignores_extraneous(live: &Value) -> bool {
    live.pointer(&format!(
        "/metadata/annotations/{}",
        ANNOTATION_COMPARE_OPTIONS.replace('/', "~1")
    ))
    .and_then(Value::as_str)
    .is_some_and(|v| v.split(',').any(|o| o.trim() == "IgnoreExtraneous"))
}

fn resource_sync(pair: &Pair) -> &'static str {
    match &pair.drift {
        Drift::Synced => "Synced",
        Drift::Extraneous if pair.live.as_ref().is_some_and(ignores_extraneous) => "Synced",
        _ => "OutOfSync",
    }
}

fn crd_health(h: &Health) -> CrdHealth {
    CrdHealth {
        status: Some(h.status.to_string()),
        message: (!h.message.is_empty()).then(|| h.message.clone()),
        last_transition_time: None,
    }
}

fn wave(obj: Option<&Value>) -> Option<i64> {
    let text = obj?
        .pointer(&format!(
            "/metadata/annotations/{}",
            tasks::ANNOTATION_SYNC_WAVE.replace('/', "~1")
        ))?
        .as_str()?;
    text.trim().parse().ok().filter(|w| *w != 0)
}

fn resource_status(pair: &Pair, health: Option<&Health>) -> ResourceStatus {
    let missing = Health::new(HealthStatus::Missing, "");
    let health = match &pair.live {
        None => Some(&missing),
        Some(_) => health,
    };
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    ResourceStatus {
        group: non_empty(&pair.key.group),
        version: non_empty(&pair.key.version),
        kind: non_empty(&pair.key.kind),
        namespace: non_empty(&pair.key.namespace),
        name: non_empty(&pair.key.name),
        status: Some(resource_sync(pair).into()),
        health: health.map(crd_health),
        hook: None,
        requires_pruning: (pair.drift == Drift::Extraneous).then_some(true),
        sync_wave: wave(pair.target.as_ref()),
        requires_deletion_confirmation: None,
    }
}

/// Compares: per-resource sync and health, the app's sync status (OutOfSync when any counted resource is),
/// the worst health of the live objects (Missing when none of the expected ones exists) and the images.
pub fn compare(pairs: &[Pair]) -> Comparison {
    let counted: Vec<&Pair> = pairs.iter().filter(|p| counts(p)).collect();
    let healths: Vec<Option<Health>> = counted
        .iter()
        .map(|p| p.live.as_ref().and_then(health::health))
        .collect();
    let mut resources: Vec<ResourceStatus> = counted
        .iter()
        .zip(&healths)
        .map(|(p, h)| resource_status(p, h.as_ref()))
        .collect();
    resources.sort_by(|a, b| {
        let key = |r: &ResourceStatus| {
            (
                r.group.clone(),
                r.kind.clone(),
                r.namespace.clone(),
                r.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    let sync = if counted.iter().any(|p| resource_sync(p) == "OutOfSync") {
        "OutOfSync"
    } else {
        "Synced"
    };
    let health = health::aggregate(counted.iter().zip(&healths).map(|(p, h)| match &p.live {
        Some(live) => ResourceHealth::live(live, h.as_ref()),
        None => ResourceHealth::missing(),
    }));
    let mut images: Vec<String> = counted
        .iter()
        .filter_map(|p| p.live.as_ref())
        .flat_map(images_of)
        .collect();
    images.sort();
    images.dedup();
    Comparison {
        resources,
        sync,
        health,
        images,
    }
}

/// The container images of an object's pod spec: a Pod's own, or the pod template of a workload (Deployment,
/// StatefulSet, DaemonSet, ReplicaSet, Job, Rollout) or a CronJob's job template.
pub fn images_of(obj: &Value) -> Vec<String> {
    let specs = [
        "/spec",
        "/spec/template/spec",
        "/spec/jobTemplate/spec/template/spec",
    ];
    let mut out = Vec::new();
    for spec in specs {
        let Some(spec) = obj.pointer(spec) else { continue };
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            let containers = spec.get(list).and_then(Value::as_array);
            for c in containers.into_iter().flatten() {
                if let Some(image) = c.get("image").and_then(Value::as_str) {
                    out.push(image.to_string());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(name: &str, image: &str, ready: bool) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "shop", "generation": 1},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                       "availableReplicas": if ready { 1 } else { 0 }}
        })
    }

    fn pair(obj: &Value, target: bool, live: Option<Value>, drift: Drift) -> Pair {
        Pair {
            key: ObjectKey::of(obj),
            target: target.then(|| obj.clone()),
            live,
            drift,
        }
    }

    #[test]
    fn synced_and_healthy() {
        let d = deployment("web", "web:1", true);
        let c = compare(&[pair(&d, true, Some(d.clone()), Drift::Synced)]);
        assert_eq!(c.sync, "Synced");
        assert_eq!(c.health.status, HealthStatus::Healthy);
        assert_eq!(c.images, vec!["web:1"]);
        assert_eq!(c.resources[0].status.as_deref(), Some("Synced"));
        assert_eq!(c.resources[0].kind.as_deref(), Some("Deployment"));
        assert_eq!(c.resources[0].group.as_deref(), Some("apps"));
        assert_eq!(
            c.resources[0].health.as_ref().and_then(|h| h.status.as_deref()),
            Some("Healthy")
        );
    }

    #[test]
    fn modified_missing_and_extraneous_are_out_of_sync() {
        let d = deployment("web", "web:1", false);
        let cases = [
            (
                pair(&d, true, Some(d.clone()), Drift::Modified(vec!["/spec".into()])),
                "Progressing",
            ),
            (pair(&d, true, None, Drift::Missing), "Missing"),
            (pair(&d, false, Some(d.clone()), Drift::Extraneous), "Progressing"),
        ];
        for (p, health) in cases {
            let c = compare(std::slice::from_ref(&p));
            assert_eq!(c.sync, "OutOfSync", "{:?}", p.drift);
            assert_eq!(c.health.status.to_string(), health, "{:?}", p.drift);
            assert_eq!(c.resources[0].status.as_deref(), Some("OutOfSync"));
            assert_eq!(
                c.resources[0].requires_pruning,
                (p.drift == Drift::Extraneous).then_some(true)
            );
        }
    }

    #[test]
    fn ignore_extraneous_keeps_the_app_synced() {
        let mut d = deployment("web", "web:1", true);
        d["metadata"]["annotations"] = json!({ANNOTATION_COMPARE_OPTIONS: "IgnoreExtraneous"});
        let c = compare(&[pair(&d, false, Some(d.clone()), Drift::Extraneous)]);
        assert_eq!(c.sync, "Synced");
    }

    #[test]
    fn hooks_do_not_count() {
        let job = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "migrate", "namespace": "shop", "annotations": {"argocd.argoproj.io/hook": "PreSync"}},
            "status": {"conditions": [{"type": "Failed", "status": "True"}]}
        });
        let d = deployment("web", "web:1", true);
        let c = compare(&[
            pair(&job, true, Some(job.clone()), Drift::Modified(vec![])),
            pair(&d, true, Some(d.clone()), Drift::Synced),
        ]);
        assert_eq!(c.sync, "Synced");
        assert_eq!(c.health.status, HealthStatus::Healthy);
        assert_eq!(c.resources.len(), 1);
    }

    #[test]
    fn worst_health_wins_and_resources_sorted() {
        let a = deployment("b-web", "web:2", true);
        let b = deployment("a-api", "api:1", false);
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
                         "spec": {"type": "ClusterIP"}});
        let c = compare(&[
            pair(&a, true, Some(a.clone()), Drift::Synced),
            pair(&b, true, Some(b.clone()), Drift::Synced),
            pair(&svc, true, Some(svc.clone()), Drift::Synced),
        ]);
        assert_eq!(c.health.status, HealthStatus::Progressing);
        let names: Vec<_> = c.resources.iter().map(|r| r.name.clone().unwrap()).collect();
        assert_eq!(names, vec!["web", "a-api", "b-web"]);
        assert_eq!(c.images, vec!["api:1", "web:2"]);
    }

    #[test]
    fn waves_are_reported() {
        let mut d = deployment("web", "web:1", true);
        d["metadata"]["annotations"] = json!({"argocd.argoproj.io/sync-wave": "2"});
        let c = compare(&[pair(&d, true, Some(d.clone()), Drift::Synced)]);
        assert_eq!(c.resources[0].sync_wave, Some(2));
    }

    #[test]
    fn images_from_every_pod_spec() {
        let cron = json!({"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "initContainers": [{"image": "init:1"}], "containers": [{"image": "job:1"}]}}}}}});
        assert_eq!(images_of(&cron), vec!["init:1", "job:1"]);
        let pod = json!({"kind": "Pod", "spec": {"containers": [{"image": "p:1"}]}});
        assert_eq!(images_of(&pod), vec!["p:1"]);
        assert!(images_of(&json!({"kind": "ConfigMap"})).is_empty());
    }
}
