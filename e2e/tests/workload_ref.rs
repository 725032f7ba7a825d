//! Rollouts that reference a Deployment (spec.workloadRef) end to end: the Rollout has a selector and no
//! template, runs the Deployment's template through its strategy, reports the Deployment's generation it has
//! seen and scales the Deployment down as workloadRef.scaleDown says. The Deployment's own pods are real
//! (kube-controller-manager) and made Ready by kwok.

use std::{collections::BTreeMap, time::Duration};

use anyhow::anyhow;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::{Api, ResourceExt, api::ListParams};
use sluice_crds::rollout::Rollout;
use sluice_e2e::{
    cluster::wait_for,
    harness::{Operator, TestNamespace, namespace_with_operator},
    rollouts::{healthy, phase, promote, step, wait_rollout, wait_selector},
    watch::Watch,
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");
const HASH: &str = "rollouts-pod-template-hash";

async fn setup(test: &str) -> (TestNamespace, Operator) {
    namespace_with_operator(SUPERVISOR, test, &["deployments"]).await
}

/// The Deployment `deployment` whose pods carry `app: <app>`, the labels the Rollout selects.
fn deployment_yaml(deployment: &str, app: &str, replicas: i32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {deployment}}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {app}}}
  template:
    metadata:
      labels: {{app: {app}}}
    spec:
      containers:
      - name: app
        image: {image}
"
    )
}

/// A Rollout of `replicas` selecting `app: <name>` with no template, referencing `deployment` (`scale_down`
/// empty for the default, never).
fn rollout_yaml(name: &str, replicas: i32, deployment: &str, scale_down: &str, strategy: &str) -> String {
    let scale_down = if scale_down.is_empty() {
        String::new()
    } else {
        format!(", scaleDown: {scale_down}")
    };
    format!(
        "apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: {name}
spec:
  replicas: {replicas}
  revisionHistoryLimit: 3
  selector:
    matchLabels: {{app: {name}}}
  workloadRef: {{apiVersion: apps/v1, kind: Deployment, name: {deployment}{scale_down}}}
  strategy:
{strategy}"
    )
}

const CANARY: &str = "    canary:\n      steps:\n      - setWeight: 50\n      - pause: {}\n";

/// (spec.replicas, status.availableReplicas, first container's image) of the ReplicaSets the Rollout owns, by
/// hash (the Deployment's own ReplicaSets carry no rollouts-pod-template-hash).
async fn replica_sets(ns: &TestNamespace, app: &str) -> BTreeMap<String, (i32, i32, String)> {
    let rss: Api<ReplicaSet> = ns.api();
    rss.list(&ListParams::default().labels(&format!("app={app},{HASH}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|rs| {
            let owner = rs.owner_references().iter().find(|o| o.controller == Some(true));
            assert_eq!(
                owner.map(|o| (o.kind.as_str(), o.name.as_str())),
                Some(("Rollout", app)),
                "{} is owned by the Rollout",
                rs.name_any()
            );
            let hash = rs.labels().get(HASH).cloned().unwrap_or_default();
            let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            let avail = rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
            let image = rs
                .spec
                .and_then(|s| s.template)
                .and_then(|t| t.spec)
                .and_then(|s| s.containers.into_iter().next())
                .and_then(|c| c.image)
                .unwrap_or_default();
            (hash, (spec, avail, image))
        })
        .collect()
}

async fn deployment(ns: &TestNamespace, name: &str) -> Deployment {
    ns.api::<Deployment>().get(name).await.unwrap()
}

/// (metadata.generation, spec.replicas) of a Deployment.
async fn generation_and_replicas(ns: &TestNamespace, name: &str) -> (i64, i32) {
    let d = deployment(ns, name).await;
    (
        d.metadata.generation.unwrap_or(0),
        d.spec.and_then(|s| s.replicas).unwrap_or(1),
    )
}

fn workload_generation(ro: &Rollout) -> Option<String> {
    ro.status
        .as_ref()
        .and_then(|s| s.workload_observed_generation.clone())
}

fn stable(ro: &Rollout) -> Option<String> {
    ro.status.as_ref().and_then(|s| s.stable_rs.clone())
}

fn set_deployment_image(ns: &TestNamespace, deployment: &str, image: &str) {
    ns.kubectl(
        &[
            "set",
            "image",
            &format!("deployment/{deployment}"),
            &format!("app={image}"),
        ],
        None,
    )
    .expect("set image");
}

/// Every distinct consecutive spec.replicas of a Deployment, from a watch of it.
async fn replicas_watch(ns: &TestNamespace, name: &str) -> Watch<i32> {
    Watch::start::<Deployment>(ns, name, |d| d.spec.and_then(|s| s.replicas).unwrap_or(1)).await
}

#[tokio::test]
async fn a_workload_ref_rollout_runs_the_deployments_template_through_a_canary() {
    let (ns, _op) = setup("wref-canary").await;
    ns.apply(&deployment_yaml("web-deploy", "web", 2, "web:v1"))
        .unwrap();
    ns.apply(&rollout_yaml("web", 3, "web-deploy", "", CANARY))
        .unwrap();
    let ro = wait_rollout(&ns, "web", "first deploy Healthy", 60, healthy).await;
    let v1 = stable(&ro).unwrap();
    let rss = replica_sets(&ns, "web").await;
    assert_eq!(rss.len(), 1, "{rss:?}");
    assert_eq!(rss[&v1], (3, 3, "web:v1".into()), "the Deployment's template");
    let (generation, replicas) = generation_and_replicas(&ns, "web-deploy").await;
    assert_eq!(workload_generation(&ro), Some(generation.to_string()));
    assert_eq!(replicas, 2, "scaleDown never leaves the Deployment alone");

    set_deployment_image(&ns, "web-deploy", "web:v2");
    let (generation2, _) = generation_and_replicas(&ns, "web-deploy").await;
    assert!(generation2 > generation);
    let ro = wait_rollout(&ns, "web", "the pause step on the new template", 60, |r| {
        step(r) == 1 && phase(r).0 == "Paused"
    })
    .await;
    assert_eq!(phase(&ro).1, "CanaryPauseStep");
    assert_eq!(workload_generation(&ro), Some(generation2.to_string()));
    let v2 = ro.status.as_ref().unwrap().current_pod_hash.clone().unwrap();
    assert_ne!(v1, v2);
    let rss = replica_sets(&ns, "web").await;
    assert_eq!(rss.len(), 2, "{rss:?}");
    assert_eq!(rss[&v2].2, "web:v2", "{rss:?}");
    assert_eq!(rss[&v1].2, "web:v1", "{rss:?}");
    assert_eq!(stable(&ro).as_deref(), Some(v1.as_str()));

    promote(&ns, "web");
    let ro = wait_rollout(&ns, "web", "Healthy on v2 after promote", 60, |r| {
        healthy(r) && stable(r).as_deref() == Some(v2.as_str())
    })
    .await;
    assert_eq!(workload_generation(&ro), Some(generation2.to_string()));
    wait_for("every Rollout pod on v2", Duration::from_secs(30), || async {
        let rss = replica_sets(&ns, "web").await;
        if rss.get(&v2) == Some(&(3, 3, "web:v2".into())) {
            Ok(())
        } else {
            Err(anyhow!("{rss:?}"))
        }
    })
    .await
    .unwrap();
    assert_eq!(generation_and_replicas(&ns, "web-deploy").await.1, 2);
}

#[tokio::test]
async fn a_workload_ref_blue_green_rollout_switches_services() {
    let (ns, _op) = setup("wref-bg").await;
    ns.apply(
        "apiVersion: v1
kind: Service
metadata: {name: bg-active}
spec:
  selector: {app: bg}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: bg-preview}
spec:
  selector: {app: bg}
  ports: [{port: 80, targetPort: 8080}]
",
    )
    .unwrap();
    ns.apply(&deployment_yaml("bg-deploy", "bg", 2, "bg:v1")).unwrap();
    let strategy = "    blueGreen:\n      activeService: bg-active\n      previewService: bg-preview\n";
    ns.apply(&rollout_yaml("bg", 3, "bg-deploy", "", strategy))
        .unwrap();
    let ro = wait_rollout(&ns, "bg", "first deploy Healthy", 60, healthy).await;
    let v1 = stable(&ro).unwrap();
    wait_selector(&ns, "bg-active", &v1, 30).await;
    assert_eq!(replica_sets(&ns, "bg").await[&v1], (3, 3, "bg:v1".into()));

    set_deployment_image(&ns, "bg-deploy", "bg:v2");
    let (generation2, _) = generation_and_replicas(&ns, "bg-deploy").await;
    let ro = wait_rollout(&ns, "bg", "promoted automatically to v2", 60, |r| {
        healthy(r) && stable(r).is_some_and(|s| s != v1)
    })
    .await;
    let v2 = stable(&ro).unwrap();
    assert_eq!(workload_generation(&ro), Some(generation2.to_string()));
    wait_selector(&ns, "bg-active", &v2, 30).await;
    let rss = replica_sets(&ns, "bg").await;
    assert_eq!(rss[&v2], (3, 3, "bg:v2".into()), "{rss:?}");
}

#[tokio::test]
async fn scale_down_onsuccess_scales_the_deployment_to_zero_once_healthy() {
    let (ns, _op) = setup("wref-onsuccess").await;
    ns.apply(&deployment_yaml("ok-deploy", "ok", 3, "ok:v1")).unwrap();
    let watch = replicas_watch(&ns, "ok-deploy").await;
    ns.apply(&rollout_yaml(
        "ok",
        3,
        "ok-deploy",
        "onsuccess",
        "    canary:\n      steps:\n      - setWeight: 50\n",
    ))
    .unwrap();
    let ro = wait_rollout(&ns, "ok", "Healthy", 60, healthy).await;
    let v1 = stable(&ro).unwrap();
    watch.wait_last(&0, 30).await;
    assert_eq!(watch.seen(), [3, 0], "straight to 0 once the Rollout is whole");
    assert_eq!(replica_sets(&ns, "ok").await[&v1], (3, 3, "ok:v1".into()));
    assert_eq!(generation_and_replicas(&ns, "ok-deploy").await.1, 0);
}

#[tokio::test]
async fn scale_down_progressively_scales_the_deployment_down_as_rollout_pods_become_available() {
    let (ns, _op) = setup("wref-progressive").await;
    ns.apply(&deployment_yaml("step-deploy", "step", 3, "step:v1"))
        .unwrap();
    let watch = replicas_watch(&ns, "step-deploy").await;
    ns.apply(&rollout_yaml(
        "step",
        3,
        "step-deploy",
        "progressively",
        "    canary:\n      steps:\n      - setWeight: 50\n",
    ))
    .unwrap();
    wait_rollout(&ns, "step", "Healthy", 60, healthy).await;
    watch.wait_last(&0, 30).await;
    let seen = watch.seen();
    eprintln!("the Deployment's spec.replicas: {seen:?}");
    assert_eq!(seen.first(), Some(&3), "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[1] < w[0]),
        "spec.replicas never goes up: {seen:?}"
    );
    assert_eq!(generation_and_replicas(&ns, "step-deploy").await.1, 0);
}

#[tokio::test]
async fn a_workload_ref_with_a_template_too_is_invalid_spec() {
    let (ns, _op) = setup("wref-invalid").await;
    ns.apply(&deployment_yaml("both-deploy", "both", 1, "both:v1"))
        .unwrap();
    let both = rollout_yaml("both", 2, "both-deploy", "", CANARY).replace(
        "  strategy:\n",
        "  template:
    metadata:
      labels: {app: both}
    spec:
      containers:
      - name: app
        image: both:v1
  strategy:\n",
    );
    ns.apply(&both).unwrap();
    ns.apply(&rollout_yaml("orphan", 2, "missing", "", CANARY))
        .unwrap();

    let ro = wait_rollout(&ns, "both", "InvalidSpec", 30, |r| phase(r).0 == "Degraded").await;
    assert_eq!(
        phase(&ro).1,
        "InvalidSpec: template must be empty for workload reference rollout"
    );
    let ro = wait_rollout(&ns, "orphan", "InvalidSpec", 30, |r| phase(r).0 == "Degraded").await;
    assert_eq!(
        phase(&ro).1,
        "InvalidSpec: deployments.apps \"missing\" not found"
    );
    assert!(replica_sets(&ns, "both").await.is_empty());
    assert!(replica_sets(&ns, "orphan").await.is_empty());

    ns.apply(&deployment_yaml("missing", "orphan", 1, "orphan:v1"))
        .unwrap();
    let ro = wait_rollout(&ns, "orphan", "Healthy once the Deployment exists", 60, healthy).await;
    let v1 = stable(&ro).unwrap();
    assert_eq!(replica_sets(&ns, "orphan").await[&v1], (2, 2, "orphan:v1".into()));
    let ro: Rollout = ns.api().get("both").await.unwrap();
    assert_eq!(phase(&ro).0, "Degraded", "still invalid");
}
