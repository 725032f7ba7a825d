//! Ephemeral metadata on live pods, revision bookkeeping and what Sluice gives back when a Rollout stops
//! routing traffic, end to end against the real API server with kwok pods.

use std::time::Duration;

use k8s_openapi::api::{
    apps::v1::ReplicaSet,
    core::v1::{Pod, Service},
};
use kube::{Api, ResourceExt, api::ListParams};
use sluice_e2e::{
    cluster::wait_for,
    harness::{Operator, TestNamespace, namespace_with_operator},
    rollouts::{healthy, promote, services_and_vs, set_image, wait_rollout},
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");
const HASH: &str = "rollouts-pod-template-hash";

async fn setup(test: &str) -> (TestNamespace, Operator) {
    namespace_with_operator(SUPERVISOR, test, &[]).await
}

/// The `role` label of each running pod of `app`, by pod-template hash.
async fn roles(ns: &TestNamespace, app: &str) -> Vec<(String, Option<String>)> {
    let pods: Api<Pod> = ns.api();
    let mut out: Vec<(String, Option<String>)> = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let labels = p.labels();
            (
                labels.get(HASH).cloned().unwrap_or_default(),
                labels.get("role").cloned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn canary_with_metadata(name: &str, image: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: {name}
spec:
  replicas: 3
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: {image}
  strategy:
    canary:
      canaryService: {name}-canary
      stableService: {name}-stable
      canaryMetadata:
        labels: {{role: canary}}
      stableMetadata:
        labels: {{role: stable}}
      trafficRouting:
        istio:
          virtualService:
            name: {name}-vs
            routes: [primary]
      steps:
      - setWeight: 34
      - pause: {{}}
"
    )
}

#[tokio::test]
async fn canary_metadata_is_on_the_canary_pods_during_the_canary_and_gone_after_promotion() {
    let (ns, _op) = setup("metadata").await;
    ns.apply(&services_and_vs("shop")).expect("services");
    ns.apply(&canary_with_metadata("shop", "shop:1"))
        .expect("rollout");
    let ro = wait_rollout(&ns, "shop", "Healthy", 60, healthy).await;
    let v1 = ro.status.unwrap().stable_rs.unwrap();
    wait_for(
        "stable pods labelled role=stable",
        Duration::from_secs(20),
        || async {
            let r = roles(&ns, "shop").await;
            (r.len() == 3 && r.iter().all(|(_, role)| role.as_deref() == Some("stable")))
                .then_some(())
                .ok_or_else(|| anyhow::anyhow!("{r:?}"))
        },
    )
    .await
    .expect("stable metadata on the first pods");

    set_image(&ns, "shop", "shop:2");
    let ro = wait_rollout(&ns, "shop", "paused at the canary", 60, |ro| {
        ro.status
            .as_ref()
            .is_some_and(|s| s.pause_conditions.as_ref().is_some_and(|p| !p.is_empty()))
    })
    .await;
    let v2 = ro.status.unwrap().current_pod_hash.unwrap();
    wait_for(
        "canary pods labelled role=canary",
        Duration::from_secs(20),
        || async {
            let r = roles(&ns, "shop").await;
            let canary: Vec<_> = r.iter().filter(|(h, _)| *h == v2).collect();
            let stable: Vec<_> = r.iter().filter(|(h, _)| *h == v1).collect();
            (!canary.is_empty()
                && canary.iter().all(|(_, role)| role.as_deref() == Some("canary"))
                && stable.len() == 3
                && stable.iter().all(|(_, role)| role.as_deref() == Some("stable")))
            .then_some(())
            .ok_or_else(|| anyhow::anyhow!("{r:?}"))
        },
    )
    .await
    .expect("canary pods carry the canary metadata, stable pods the stable one");
    // The canary Service selects the pods an analysis of role=canary would measure.
    let services: Api<Service> = ns.api();
    let canary_svc = services.get("shop-canary").await.unwrap();
    assert_eq!(canary_svc.spec.unwrap().selector.unwrap().get(HASH), Some(&v2));

    promote(&ns, "shop");
    wait_rollout(&ns, "shop", "Healthy on v2", 60, healthy).await;
    wait_for(
        "promoted pods relabelled role=stable",
        Duration::from_secs(20),
        || async {
            let r = roles(&ns, "shop").await;
            let promoted: Vec<_> = r.iter().filter(|(h, _)| *h == v2).collect();
            (promoted.len() == 3 && promoted.iter().all(|(_, role)| role.as_deref() == Some("stable")))
                .then_some(())
                .ok_or_else(|| anyhow::anyhow!("{r:?}"))
        },
    )
    .await
    .expect("the canary metadata is gone once promoted, replaced by the stable one");
    let rss: Api<ReplicaSet> = ns.api();
    let rs = rss.get(&format!("shop-{v2}")).await.unwrap();
    assert_eq!(
        rs.annotations()
            .get("rollout.argoproj.io/ephemeral-metadata")
            .map(String::as_str),
        Some(r#"{"labels":{"role":"stable"}}"#)
    );
}

#[tokio::test]
async fn a_template_that_returns_reuses_its_replica_set_with_the_next_revision() {
    let (ns, _op) = setup("revisions").await;
    ns.apply(&services_and_vs("cart")).expect("services");
    let manifest = canary_with_metadata("cart", "cart:1").replace("      - pause: {}\n", "");
    ns.apply(&manifest).expect("rollout");
    let v1 = wait_rollout(&ns, "cart", "Healthy", 60, healthy)
        .await
        .status
        .unwrap()
        .stable_rs
        .unwrap();
    set_image(&ns, "cart", "cart:2");
    wait_rollout(&ns, "cart", "Healthy on v2", 60, |ro| {
        healthy(ro) && ro.status.as_ref().and_then(|s| s.stable_rs.as_deref()) != Some(v1.as_str())
    })
    .await;
    set_image(&ns, "cart", "cart:1");
    let ro = wait_rollout(&ns, "cart", "Healthy on v1 again", 60, |ro| {
        healthy(ro) && ro.status.as_ref().and_then(|s| s.stable_rs.as_deref()) == Some(v1.as_str())
    })
    .await;
    let rss: Api<ReplicaSet> = ns.api();
    let all = rss
        .list(&ListParams::default().labels("app=cart"))
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), 2, "the first ReplicaSet was reused, no third one");
    let revision = |rs: &ReplicaSet| rs.annotations().get("rollout.argoproj.io/revision").cloned();
    let first = all.iter().find(|rs| rs.labels().get(HASH) == Some(&v1)).unwrap();
    assert_eq!(revision(first).as_deref(), Some("3"));
    assert_eq!(
        ro.annotations()
            .get("rollout.argoproj.io/revision")
            .map(String::as_str),
        Some("3")
    );
}

#[tokio::test]
async fn removing_traffic_routing_gives_back_the_services_selectors_and_annotations() {
    let (ns, _op) = setup("release").await;
    ns.apply(&services_and_vs("web")).expect("services");
    let manifest = canary_with_metadata("web", "web:1").replace("      - pause: {}\n", "");
    ns.apply(&manifest).expect("rollout");
    wait_rollout(&ns, "web", "Healthy", 60, healthy).await;
    let services: Api<Service> = ns.api();
    let managed = |svc: &Service| {
        (
            svc.annotations()
                .get("argo-rollouts.argoproj.io/managed-by-rollouts")
                .cloned(),
            svc.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .and_then(|s| s.get(HASH).cloned()),
        )
    };
    wait_for("services managed", Duration::from_secs(20), || async {
        let svc = services.get("web-canary").await?;
        (managed(&svc).0.as_deref() == Some("web"))
            .then_some(())
            .ok_or_else(|| anyhow::anyhow!("not yet"))
    })
    .await
    .expect("the canary Service is managed");
    // A plain rolling canary now: no router, no canary or stable Service.
    ns.kubectl(
        &[
            "patch",
            "rollout",
            "web",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/spec/strategy/canary/trafficRouting"},{"op":"remove","path":"/spec/strategy/canary/canaryService"},{"op":"remove","path":"/spec/strategy/canary/stableService"}]"#,
        ],
        None,
    )
    .expect("remove traffic routing");
    wait_for("services released", Duration::from_secs(30), || async {
        let canary = managed(&services.get("web-canary").await?);
        let stable = managed(&services.get("web-stable").await?);
        (canary == (None, None) && stable == (None, None))
            .then_some(())
            .ok_or_else(|| anyhow::anyhow!("canary {canary:?}, stable {stable:?}"))
    })
    .await
    .expect("selectors and annotations taken back");
    let svc = services.get("web-canary").await.unwrap();
    assert_eq!(
        svc.spec.unwrap().selector.unwrap().get("app").map(String::as_str),
        Some("web"),
        "the user's selector stays"
    );
    wait_rollout(&ns, "web", "Healthy without a router", 60, healthy).await;
}

#[tokio::test]
async fn removing_traffic_routing_gives_back_the_destination_rule_subsets() {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let (ns, _op) = setup("release-dr").await;
    ns.apply(
        "apiVersion: v1
kind: Service
metadata: {name: sub}
spec:
  selector: {app: sub}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1alpha3
kind: DestinationRule
metadata: {name: sub-dr}
spec:
  host: sub
  subsets:
  - name: canary
    labels: {app: sub}
  - name: stable
    labels: {app: sub}
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: sub-vs}
spec:
  hosts: [sub]
  http:
  - route:
    - destination: {host: sub, subset: stable}
      weight: 100
    - destination: {host: sub, subset: canary}
      weight: 0
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: sub}
spec:
  replicas: 2
  selector:
    matchLabels: {app: sub}
  template:
    metadata:
      labels: {app: sub}
    spec:
      containers: [{name: app, image: sub:1}]
  strategy:
    canary:
      trafficRouting:
        istio:
          virtualService: {name: sub-vs}
          destinationRule: {name: sub-dr, canarySubsetName: canary, stableSubsetName: stable}
      steps: [{setWeight: 50}]
",
    )
    .expect("manifests");
    wait_rollout(&ns, "sub", "Healthy", 60, healthy).await;
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1alpha3", "DestinationRule");
    let drs = Api::<DynamicObject>::namespaced_with(
        ns.client.clone(),
        &ns.name,
        &ApiResource::from_gvk_with_plural(&gvk, "destinationrules"),
    );
    let marks = |dr: &DynamicObject| {
        let hashes: Vec<Option<String>> = (0..2)
            .map(|i| {
                dr.data["spec"]["subsets"][i]["labels"][HASH]
                    .as_str()
                    .map(String::from)
            })
            .collect();
        let managed = dr
            .annotations()
            .get("argo-rollouts.argoproj.io/managed-by-rollouts")
            .cloned();
        (hashes, managed)
    };
    wait_for("subsets marked", Duration::from_secs(20), || async {
        let (hashes, managed) = marks(&drs.get("sub-dr").await?);
        (hashes.iter().all(Option::is_some) && managed.as_deref() == Some("sub"))
            .then_some(())
            .ok_or_else(|| anyhow::anyhow!("{hashes:?} {managed:?}"))
    })
    .await
    .expect("the DestinationRule is managed");
    ns.kubectl(
        &[
            "patch",
            "rollout",
            "sub",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/spec/strategy/canary/trafficRouting"}]"#,
        ],
        None,
    )
    .expect("remove traffic routing");
    wait_for("subsets released", Duration::from_secs(30), || async {
        let (hashes, managed) = marks(&drs.get("sub-dr").await?);
        (hashes.iter().all(Option::is_none) && managed.is_none())
            .then_some(())
            .ok_or_else(|| anyhow::anyhow!("{hashes:?} {managed:?}"))
    })
    .await
    .expect("the subsets' hash labels and the annotation are taken back");
    let dr = drs.get("sub-dr").await.unwrap();
    assert_eq!(
        dr.data["spec"]["subsets"][0]["labels"]["app"], "sub",
        "the user's labels stay"
    );
}

#[tokio::test]
async fn preview_and_active_metadata_follow_the_blue_green_promotion() {
    let (ns, _op) = setup("bg-metadata").await;
    let manifest = "apiVersion: v1
kind: Service
metadata: {name: bgm-active}
spec:
  selector: {app: bgm}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: bgm-preview}
spec:
  selector: {app: bgm}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: bgm}
spec:
  replicas: 2
  selector:
    matchLabels: {app: bgm}
  template:
    metadata:
      labels: {app: bgm}
    spec:
      containers: [{name: app, image: bgm:1}]
  strategy:
    blueGreen:
      activeService: bgm-active
      previewService: bgm-preview
      autoPromotionEnabled: false
      previewMetadata:
        labels: {role: preview}
      activeMetadata:
        labels: {role: active}
";
    ns.apply(manifest).expect("manifests");
    let v1 = wait_rollout(&ns, "bgm", "Healthy", 60, healthy)
        .await
        .status
        .unwrap()
        .stable_rs
        .unwrap();
    set_image(&ns, "bgm", "bgm:2");
    let ro = wait_rollout(&ns, "bgm", "paused for promotion", 60, |ro| {
        ro.status
            .as_ref()
            .is_some_and(|s| s.pause_conditions.as_ref().is_some_and(|p| !p.is_empty()))
    })
    .await;
    let v2 = ro.status.unwrap().current_pod_hash.unwrap();
    let expect = |want: Vec<(String, Option<String>)>| {
        let ns = &ns;
        async move {
            wait_for("pod roles", Duration::from_secs(20), || async {
                let got = roles(ns, "bgm").await;
                (got == want)
                    .then_some(())
                    .ok_or_else(|| anyhow::anyhow!("{got:?}"))
            })
            .await
        }
    };
    let role = |hash: &str, r: &str| (hash.to_string(), Some(r.to_string()));
    let mut want = vec![
        role(&v1, "active"),
        role(&v1, "active"),
        role(&v2, "preview"),
        role(&v2, "preview"),
    ];
    want.sort();
    expect(want).await.expect("preview pods beside active ones");
    promote(&ns, "bgm");
    wait_rollout(&ns, "bgm", "Healthy on v2", 60, |ro| {
        healthy(ro) && ro.status.as_ref().and_then(|s| s.stable_rs.as_deref()) == Some(v2.as_str())
    })
    .await;
    let promoted: Vec<_> = {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let r: Vec<_> = roles(&ns, "bgm")
                .await
                .into_iter()
                .filter(|(h, _)| *h == v2)
                .collect();
            if r.len() == 2 && r.iter().all(|(_, role)| role.as_deref() == Some("active")) {
                break r;
            }
            assert!(std::time::Instant::now() < deadline, "promoted pods: {r:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    assert_eq!(
        promoted.len(),
        2,
        "the preview metadata is gone, the active one is on the promoted pods"
    );
}
