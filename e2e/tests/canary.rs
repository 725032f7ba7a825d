//! Canary rollouts end to end: the operator against the real API server, kwok pods and Istio's CRDs, driven
//! the way the upstream kubectl plugin and Argo CD drive Argo Rollouts (status and spec patches).

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::anyhow;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::{
    Api, ResourceExt,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::Value;
use sluice_crds::rollout::Rollout;
use sluice_e2e::{
    cluster::wait_for,
    harness::{Operator, TestNamespace, install_crds, namespace_with_operator},
    rollouts::{
        canary_rollout_yaml, healthy, istio_strategy, patch_status, phase, promote, selector_hash,
        services_and_vs, set_image, step, wait_rollout,
    },
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");
const HASH: &str = "rollouts-pod-template-hash";

async fn setup(test: &str) -> (TestNamespace, Operator) {
    namespace_with_operator(SUPERVISOR, test, &[]).await
}

async fn replica_sets(ns: &TestNamespace, app: &str) -> BTreeMap<String, (i32, i32)> {
    let rss: Api<ReplicaSet> = ns.api();
    rss.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|rs| {
            let hash = rs.labels().get(HASH).cloned().unwrap_or_default();
            let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            let avail = rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
            (hash, (spec, avail))
        })
        .collect()
}

/// (stable, canary) weights of the first http route.
fn weights(vs: &DynamicObject) -> (i64, i64) {
    let route = &vs.data["spec"]["http"][0]["route"];
    (
        route[0]["weight"].as_i64().unwrap_or(-1),
        route[1]["weight"].as_i64().unwrap_or(-1),
    )
}

/// Records every canary weight the VirtualService shows, and checks at each change that the canary
/// ReplicaSet has the available pods that weight needs.
struct WeightWatch {
    seen: Arc<Mutex<Vec<i64>>>,
    violations: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl WeightWatch {
    fn start(ns: &TestNamespace, vs: &str, rollout: &str, replicas: i32) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let api = ns.virtual_services();
        let rollouts: Api<Rollout> = ns.api();
        let rss: Api<ReplicaSet> = ns.api();
        let (seen2, violations2, vs, rollout) = (
            seen.clone(),
            violations.clone(),
            vs.to_string(),
            rollout.to_string(),
        );
        let task = tokio::spawn(async move {
            let stream = watcher(
                api,
                watcher::Config::default().fields(&format!("metadata.name={vs}")),
            )
            .applied_objects();
            futures::pin_mut!(stream);
            while let Some(Ok(obj)) = stream.next().await {
                let (_, canary) = weights(&obj);
                {
                    let mut s = seen2.lock().unwrap();
                    if s.last() != Some(&canary) {
                        s.push(canary);
                    } else {
                        continue;
                    }
                }
                if canary <= 0 {
                    continue;
                }
                // The canary Service selects the current pod hash: its ReplicaSet must have the pods.
                let Ok(ro) = rollouts.get(&rollout).await else {
                    continue;
                };
                let Some(hash) = ro.status.and_then(|s| s.current_pod_hash) else {
                    continue;
                };
                let need = (canary * i64::from(replicas) + 99) / 100;
                let avail = rss
                    .get(&format!("{rollout}-{hash}"))
                    .await
                    .ok()
                    .and_then(|rs| rs.status)
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0);
                if i64::from(avail) < need {
                    violations2.lock().unwrap().push(format!(
                        "weight {canary} with {avail} available canary pods (need {need})"
                    ));
                }
            }
        });
        Self {
            seen,
            violations,
            task,
        }
    }

    fn seen(&self) -> Vec<i64> {
        self.seen.lock().unwrap().clone()
    }

    fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }
}

impl Drop for WeightWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn basic_canary_of_ten_replicas_walks_its_steps_and_is_promoted() {
    let (ns, _op) = setup("basic").await;
    let steps = "      steps:
      - setWeight: 20
      - pause: {duration: 2s}
      - setWeight: 50
      - pause: {}
";
    ns.apply(&canary_rollout_yaml("basic", 10, "app:v1", steps))
        .unwrap();
    let ro = wait_rollout(&ns, "basic", "first deploy Healthy", 60, healthy).await;
    let v1 = ro.status.unwrap().stable_rs.unwrap();
    assert_eq!(replica_sets(&ns, "basic").await.get(&v1), Some(&(10, 10)));

    set_image(&ns, "basic", "app:v2");
    let ro = wait_rollout(&ns, "basic", "the pause {} step", 90, |r| {
        step(r) == 3 && phase(r).0 == "Paused"
    })
    .await;
    assert_eq!(phase(&ro).1, "CanaryPauseStep");
    let v2 = ro.status.clone().unwrap().current_pod_hash.unwrap();
    assert_ne!(v1, v2);
    let rss = replica_sets(&ns, "basic").await;
    assert_eq!(rss[&v2], (5, 5), "50% of 10 replicas on the canary: {rss:?}");
    assert_eq!(rss[&v1], (5, 5), "{rss:?}");
    assert_eq!(
        ro.status.as_ref().unwrap().stable_rs.as_deref(),
        Some(v1.as_str())
    );

    promote(&ns, "basic");
    let ro = wait_rollout(&ns, "basic", "Healthy after promote", 90, healthy).await;
    assert_eq!(
        ro.status.as_ref().unwrap().stable_rs.as_deref(),
        Some(v2.as_str())
    );
    assert_eq!(step(&ro), 4);
    wait_for("old ReplicaSet scaled down", Duration::from_secs(30), || async {
        let rss = replica_sets(&ns, "basic").await;
        if rss[&v1].0 == 0 && rss[&v2] == (10, 10) {
            Ok(())
        } else {
            Err(anyhow!("{rss:?}"))
        }
    })
    .await
    .unwrap();
    let events = ns
        .kubectl(
            &[
                "get",
                "events",
                "--field-selector=involvedObject.name=basic",
                "-o",
                "json",
            ],
            None,
        )
        .unwrap();
    let events: Value = serde_json::from_str(&events).unwrap();
    let completed = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "RolloutStepCompleted")
        .count();
    assert!(completed >= 4, "one RolloutStepCompleted per step: {completed}");
}

#[tokio::test]
async fn istio_host_split_moves_weights_only_when_canary_pods_are_ready_and_keeps_other_fields() {
    let (ns, _op) = setup("istio-host").await;
    ns.apply(&services_and_vs("web")).unwrap();
    let steps = "      - setWeight: 20
      - pause: {duration: 1}
      - setWeight: 50
      - pause: {}
";
    ns.apply(&canary_rollout_yaml(
        "web",
        10,
        "web:v1",
        &istio_strategy("web", steps),
    ))
    .unwrap();
    let ro = wait_rollout(&ns, "web", "first deploy Healthy", 60, healthy).await;
    let v1 = ro.status.unwrap().stable_rs.unwrap();
    assert_eq!(
        selector_hash(&ns, "web-stable").await.as_deref(),
        Some(v1.as_str())
    );
    assert_eq!(
        selector_hash(&ns, "web-canary").await.as_deref(),
        Some(v1.as_str())
    );

    let watch = WeightWatch::start(&ns, "web-vs", "web", 10);
    tokio::time::sleep(Duration::from_millis(500)).await;
    set_image(&ns, "web", "web:v2");
    let ro = wait_rollout(&ns, "web", "the pause {} step", 90, |r| step(r) == 3).await;
    let v2 = ro.status.clone().unwrap().current_pod_hash.unwrap();
    let vs = ns.virtual_services().get("web-vs").await.unwrap();
    assert_eq!(weights(&vs), (50, 50));
    assert_eq!(
        selector_hash(&ns, "web-canary").await.as_deref(),
        Some(v2.as_str())
    );
    assert_eq!(
        selector_hash(&ns, "web-stable").await.as_deref(),
        Some(v1.as_str())
    );
    let rss = replica_sets(&ns, "web").await;
    assert_eq!(
        rss[&v1],
        (10, 10),
        "the stable stays whole with a traffic router: {rss:?}"
    );
    assert_eq!(rss[&v2], (5, 5), "{rss:?}");
    let weights_status = ro.status.unwrap().canary.unwrap().weights.unwrap();
    assert_eq!(
        (weights_status.canary.weight, weights_status.verified),
        (50, Some(true))
    );

    promote(&ns, "web");
    let ro = wait_rollout(&ns, "web", "Healthy after promote", 90, healthy).await;
    wait_for("weight back to 0", Duration::from_secs(30), || async {
        let vs = ns.virtual_services().get("web-vs").await?;
        if weights(&vs) == (100, 0) {
            Ok(())
        } else {
            Err(anyhow!("{:?}", weights(&vs)))
        }
    })
    .await
    .unwrap();
    assert_eq!(ro.status.unwrap().stable_rs.as_deref(), Some(v2.as_str()));
    assert_eq!(
        selector_hash(&ns, "web-stable").await.as_deref(),
        Some(v2.as_str())
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        watch.seen(),
        [0, 20, 50, 100, 0],
        "canary weights as the VirtualService showed them"
    );
    assert_eq!(watch.violations(), Vec::<String>::new());

    let vs = ns.virtual_services().get("web-vs").await.unwrap();
    let http = &vs.data["spec"]["http"][0];
    assert_eq!(http["retries"]["attempts"], 3, "retries survive (upstream #2266)");
    assert_eq!(http["timeout"], "10s");
    assert_eq!(vs.data["spec"]["gateways"][0], "mesh");
    // The old stable waits out scaleDownDelaySeconds (30 s) before going to 0.
    assert_eq!(replica_sets(&ns, "web").await[&v1].0, 10);
}

#[tokio::test]
async fn abort_sends_traffic_back_at_once_retry_restarts_and_promote_full_finishes() {
    let (ns, _op) = setup("abort").await;
    ns.apply(&services_and_vs("shop")).unwrap();
    let steps = "      - setWeight: 30
      - pause: {}
      - setWeight: 60
      - pause: {}
";
    ns.apply(&canary_rollout_yaml(
        "shop",
        5,
        "shop:v1",
        &istio_strategy("shop", steps),
    ))
    .unwrap();
    let ro = wait_rollout(&ns, "shop", "first deploy Healthy", 60, healthy).await;
    let v1 = ro.status.unwrap().stable_rs.unwrap();
    set_image(&ns, "shop", "shop:v2");
    wait_rollout(&ns, "shop", "the first pause", 60, |r| {
        step(r) == 1 && phase(r).0 == "Paused"
    })
    .await;
    assert_eq!(
        weights(&ns.virtual_services().get("shop-vs").await.unwrap()),
        (70, 30)
    );

    patch_status(&ns, "shop", r#"{"status":{"abort":true}}"#);
    let ro = wait_rollout(&ns, "shop", "Degraded after abort", 30, |r| {
        phase(r).0 == "Degraded"
    })
    .await;
    assert_eq!(
        phase(&ro).1,
        "RolloutAborted: Rollout aborted update to revision 2"
    );
    wait_for("weight 0 after abort", Duration::from_secs(10), || async {
        let w = weights(&ns.virtual_services().get("shop-vs").await?);
        if w == (100, 0) {
            Ok(())
        } else {
            Err(anyhow!("{w:?}"))
        }
    })
    .await
    .unwrap();
    wait_for(
        "canary service back on stable",
        Duration::from_secs(10),
        || async {
            let h = selector_hash(&ns, "shop-canary").await;
            if h.as_deref() == Some(v1.as_str()) {
                Ok(())
            } else {
                Err(anyhow!("{h:?}"))
            }
        },
    )
    .await
    .unwrap();

    patch_status(&ns, "shop", r#"{"status":{"abort":false}}"#);
    let ro = wait_rollout(&ns, "shop", "the first pause again after retry", 60, |r| {
        step(r) == 1 && phase(r).0 == "Paused"
    })
    .await;
    assert_ne!(ro.status.unwrap().abort, Some(true));
    assert_eq!(
        weights(&ns.virtual_services().get("shop-vs").await.unwrap()),
        (70, 30)
    );

    patch_status(&ns, "shop", r#"{"status":{"promoteFull":true}}"#);
    let ro = wait_rollout(&ns, "shop", "Healthy after promote full", 90, healthy).await;
    assert_eq!(
        ro.status.as_ref().unwrap().promote_full,
        None,
        "cleared once promoted"
    );
    assert_ne!(ro.status.unwrap().stable_rs.as_deref(), Some(v1.as_str()));
}

#[tokio::test]
async fn undo_to_the_stable_template_is_a_fast_rollback_and_pause_resume_holds_scaling() {
    let (ns, _op) = setup("undo").await;
    ns.apply(&services_and_vs("cart")).unwrap();
    let steps = "      - setWeight: 40
      - pause: {}
";
    ns.apply(&canary_rollout_yaml(
        "cart",
        5,
        "cart:v1",
        &istio_strategy("cart", steps),
    ))
    .unwrap();
    let ro = wait_rollout(&ns, "cart", "first deploy Healthy", 60, healthy).await;
    let v1 = ro.status.unwrap().stable_rs.unwrap();

    // User pause before the update: nothing scales.
    ns.kubectl(
        &[
            "patch",
            "rollout",
            "cart",
            "--type=merge",
            "-p",
            r#"{"spec":{"paused":true}}"#,
        ],
        None,
    )
    .unwrap();
    set_image(&ns, "cart", "cart:v2");
    let ro = wait_rollout(&ns, "cart", "manually paused on the new template", 30, |r| {
        phase(r) == ("Paused".into(), "manually paused".into())
            && r.status.as_ref().and_then(|s| s.current_pod_hash.as_deref()) != Some(v1.as_str())
    })
    .await;
    let v2 = ro.status.unwrap().current_pod_hash.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        replica_sets(&ns, "cart").await.get(&v2).map(|x| x.0).unwrap_or(0),
        0,
        "no canary pods while paused"
    );
    ns.kubectl(
        &[
            "patch",
            "rollout",
            "cart",
            "--type=merge",
            "-p",
            r#"{"spec":{"paused":false}}"#,
        ],
        None,
    )
    .unwrap();
    wait_rollout(&ns, "cart", "the pause step", 60, |r| {
        step(r) == 1 && phase(r).0 == "Paused"
    })
    .await;
    assert_eq!(
        weights(&ns.virtual_services().get("cart-vs").await.unwrap()),
        (60, 40)
    );

    // Undo: the template goes back to the stable one.
    set_image(&ns, "cart", "cart:v1");
    let ro = wait_rollout(&ns, "cart", "Healthy after undo", 60, healthy).await;
    assert_eq!(ro.status.unwrap().stable_rs.as_deref(), Some(v1.as_str()));
    wait_for("weight 0 after undo", Duration::from_secs(10), || async {
        let w = weights(&ns.virtual_services().get("cart-vs").await?);
        if w == (100, 0) {
            Ok(())
        } else {
            Err(anyhow!("{w:?}"))
        }
    })
    .await
    .unwrap();
    let events = ns
        .kubectl(
            &[
                "get",
                "events",
                "--field-selector=involvedObject.name=cart",
                "-o",
                "json",
            ],
            None,
        )
        .unwrap();
    assert!(events.contains("SkipSteps"), "fast rollback skips the steps");
}

#[tokio::test]
async fn operator_killed_mid_step_resumes_the_same_step_without_touching_weights() {
    let (ns, mut op) = setup("restart").await;
    ns.apply(&services_and_vs("pay")).unwrap();
    let steps = "      - setWeight: 20
      - pause: {}
      - setWeight: 60
      - pause: {duration: 1}
";
    ns.apply(&canary_rollout_yaml(
        "pay",
        5,
        "pay:v1",
        &istio_strategy("pay", steps),
    ))
    .unwrap();
    wait_rollout(&ns, "pay", "first deploy Healthy", 60, healthy).await;
    set_image(&ns, "pay", "pay:v2");
    wait_rollout(&ns, "pay", "the first pause", 60, |r| {
        step(r) == 1 && phase(r).0 == "Paused"
    })
    .await;

    op.kill().unwrap();
    let before = weights(&ns.virtual_services().get("pay-vs").await.unwrap());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        weights(&ns.virtual_services().get("pay-vs").await.unwrap()),
        before,
        "no weight change while down"
    );
    op.restart().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ro: Rollout = ns.api().get("pay").await.unwrap();
    assert_eq!(step(&ro), 1, "same step after the restart");
    assert_eq!(
        weights(&ns.virtual_services().get("pay-vs").await.unwrap()),
        before
    );

    promote(&ns, "pay");
    wait_rollout(&ns, "pay", "Healthy", 90, healthy).await;
    let events = ns
        .kubectl(
            &[
                "get",
                "events",
                "--field-selector=involvedObject.name=pay",
                "-o",
                "json",
            ],
            None,
        )
        .unwrap();
    let events: Value = serde_json::from_str(&events).unwrap();
    let mut completed: Vec<String> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reason"] == "RolloutStepCompleted")
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect();
    completed.sort();
    completed.dedup();
    assert_eq!(completed.len(), 4, "each step completed once: {completed:?}");
    assert!(op.log().contains("\"level\":\"INFO\""));
}

#[tokio::test]
async fn invalid_specs_get_their_message_and_do_not_block_other_rollouts() {
    let (ns, _op) = setup("invalid").await;
    let invalid = [
        (
            "bad-weight",
            "      steps:\n      - setWeight: 150\n",
            "SetWeight needs to be between 0 and 100",
        ),
        (
            "bad-step",
            "      steps:\n      - setWeight: 10\n        pause: {}\n",
            "Step must have one of the following set: experiment, setWeight, setCanaryScale, plugin or pause",
        ),
        (
            "bad-pause",
            "      steps:\n      - pause: {duration: soon}\n",
            "Duration needs to be greater than 0",
        ),
        (
            "bad-services",
            "      canaryService: same\n      stableService: same\n",
            "This rollout uses the same service for the stable and canary services, but two different services are required.",
        ),
    ];
    for (name, canary, _) in &invalid {
        ns.apply(&canary_rollout_yaml(name, 2, "x:v1", canary)).unwrap();
    }
    ns.apply(&canary_rollout_yaml(
        "good",
        3,
        "good:v1",
        "      steps:\n      - setWeight: 50\n      - pause: {duration: 1}\n",
    ))
    .unwrap();
    for (name, _, message) in &invalid {
        let ro = wait_rollout(&ns, name, "InvalidSpec", 30, |r| phase(r).0 == "Degraded").await;
        assert_eq!(phase(&ro).1, format!("InvalidSpec: {message}"));
        let cond = ro
            .status
            .unwrap()
            .conditions
            .unwrap()
            .into_iter()
            .find(|c| c.r#type == "InvalidSpec")
            .unwrap();
        assert_eq!((cond.status.as_str(), cond.message.as_str()), ("True", *message));
        assert!(
            replica_sets(&ns, name).await.is_empty(),
            "{name}: no ReplicaSet for an invalid spec"
        );
    }
    let ro = wait_rollout(&ns, "good", "Healthy", 60, healthy).await;
    let v1 = ro.status.unwrap().stable_rs;
    set_image(&ns, "good", "good:v2");
    wait_rollout(&ns, "good", "Healthy on v2", 60, |r| {
        healthy(r) && r.status.as_ref().is_some_and(|s| s.stable_rs != v1) && step(r) == 2
    })
    .await;
}

#[tokio::test]
async fn istio_subset_split_moves_destination_rule_subsets_with_the_hashes() {
    let (ns, _op) = setup("istio-subset").await;
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
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
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
  - timeout: 5s
    route:
    - destination: {host: sub, subset: stable}
      weight: 100
    - destination: {host: sub, subset: canary}
      weight: 0
",
    )
    .unwrap();
    let strategy = "      trafficRouting:
        istio:
          virtualService: {name: sub-vs}
          destinationRule: {name: sub-dr, canarySubsetName: canary, stableSubsetName: stable}
      steps:
      - setWeight: 25
      - pause: {}
";
    ns.apply(&canary_rollout_yaml("sub", 4, "sub:v1", strategy))
        .unwrap();
    let ro = wait_rollout(&ns, "sub", "first deploy Healthy", 60, healthy).await;
    let v1 = ro.status.unwrap().stable_rs.unwrap();
    let dr_api = {
        let gvk = GroupVersionKind::gvk("networking.istio.io", "v1alpha3", "DestinationRule");
        Api::<DynamicObject>::namespaced_with(
            ns.client.clone(),
            &ns.name,
            &ApiResource::from_gvk_with_plural(&gvk, "destinationrules"),
        )
    };
    let subsets = |dr: &DynamicObject| -> (String, String) {
        let s = &dr.data["spec"]["subsets"];
        let h = |i: usize| s[i]["labels"][HASH].as_str().unwrap_or_default().to_string();
        (h(0), h(1))
    };
    wait_for("subsets on the first hash", Duration::from_secs(20), || async {
        let got = subsets(&dr_api.get("sub-dr").await?);
        if got == (v1.clone(), v1.clone()) {
            Ok(())
        } else {
            Err(anyhow!("{got:?}"))
        }
    })
    .await
    .unwrap();

    let watch = WeightWatch::start(&ns, "sub-vs", "sub", 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    set_image(&ns, "sub", "sub:v2");
    let ro = wait_rollout(&ns, "sub", "the pause step", 60, |r| step(r) == 1).await;
    let v2 = ro.status.unwrap().current_pod_hash.unwrap();
    let dr = dr_api.get("sub-dr").await.unwrap();
    assert_eq!(
        subsets(&dr),
        (v2.clone(), v1.clone()),
        "canary subset on the new pods, stable on the old"
    );
    assert_eq!(
        dr.data["spec"]["trafficPolicy"]["loadBalancer"]["simple"],
        "ROUND_ROBIN"
    );
    assert_eq!(
        dr.metadata
            .annotations
            .unwrap_or_default()
            .get("argo-rollouts.argoproj.io/managed-by-rollouts")
            .map(String::as_str),
        Some("sub")
    );
    assert_eq!(
        weights(&ns.virtual_services().get("sub-vs").await.unwrap()),
        (75, 25)
    );

    promote(&ns, "sub");
    wait_rollout(&ns, "sub", "Healthy", 60, healthy).await;
    wait_for(
        "weight back to 0 and both subsets on the new pods",
        Duration::from_secs(30),
        || async {
            let w = weights(&ns.virtual_services().get("sub-vs").await?);
            let got = subsets(&dr_api.get("sub-dr").await?);
            if w == (100, 0) && got == (v2.clone(), v2.clone()) {
                Ok(())
            } else {
                Err(anyhow!("{w:?} {got:?}"))
            }
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(watch.seen(), [0, 25, 100, 0]);
    assert_eq!(watch.violations(), Vec::<String>::new());
    assert_eq!(
        ns.virtual_services().get("sub-vs").await.unwrap().data["spec"]["http"][0]["timeout"],
        "5s"
    );
}

#[tokio::test]
async fn restart_replaces_every_pod_through_the_eviction_api_with_a_disruption_budget_in_place() {
    let (ns, op) = setup("restart-pods").await;
    ns.apply(
        "apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: api}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: api}}
",
    )
    .unwrap();
    ns.apply(&canary_rollout_yaml(
        "api",
        3,
        "api:v1",
        "      steps:\n      - setWeight: 50\n",
    ))
    .unwrap();
    wait_rollout(&ns, "api", "Healthy", 60, healthy).await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = ns.api();
    let before: Vec<String> = pods
        .list(&ListParams::default().labels("app=api"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|p| p.name_any())
        .collect();
    assert_eq!(before.len(), 3);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let restart_at = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    ns.kubectl(
        &[
            "patch",
            "rollout",
            "api",
            "--type=merge",
            "-p",
            &format!(r#"{{"spec":{{"restartAt":"{restart_at}"}}}}"#),
        ],
        None,
    )
    .unwrap();
    let ro = wait_rollout(&ns, "api", "restartedAt recorded", 90, |r| {
        r.status
            .as_ref()
            .and_then(|s| s.restarted_at.as_ref())
            .is_some_and(|t| t.0.to_string() >= restart_at)
    })
    .await;
    assert!(ro.status.as_ref().unwrap().restarted_at.is_some());
    // The last replacement pod may still be starting when the restart is recorded.
    wait_rollout(&ns, "api", "Healthy after the restart", 30, healthy).await;
    wait_for("three new ready pods", Duration::from_secs(30), || async {
        let list = pods.list(&ListParams::default().labels("app=api")).await?;
        let names: Vec<String> = list
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| p.name_any())
            .collect();
        if names.len() == 3 && names.iter().all(|n| !before.contains(n)) {
            Ok(())
        } else {
            Err(anyhow!("{names:?}"))
        }
    })
    .await
    .unwrap();
    let log = op.log();
    assert!(
        log.contains("evicted for restart"),
        "pods go through the eviction API"
    );
}

#[tokio::test]
async fn header_and_mirror_routes_are_managed_on_top_and_removed_at_promotion() {
    let (ns, _op) = setup("routes").await;
    ns.apply(&services_and_vs("hdr")).unwrap();
    let strategy = "      canaryService: hdr-canary
      stableService: hdr-stable
      trafficRouting:
        managedRoutes:
        - name: header-route
        - name: mirror-route
        istio:
          virtualService:
            name: hdr-vs
            routes: [primary]
      steps:
      - setWeight: 20
      - setHeaderRoute:
          name: header-route
          match:
          - headerName: x-canary
            headerValue: {exact: \"yes\"}
      - setMirrorRoute:
          name: mirror-route
          percentage: 35
          match:
          - method: {exact: GET}
      - pause: {}
";
    ns.apply(&canary_rollout_yaml("hdr", 5, "hdr:v1", strategy))
        .unwrap();
    wait_rollout(&ns, "hdr", "first deploy Healthy", 60, healthy).await;
    set_image(&ns, "hdr", "hdr:v2");
    wait_rollout(&ns, "hdr", "the pause step", 60, |r| {
        step(r) == 3 && phase(r).0 == "Paused"
    })
    .await;
    let vs = ns.virtual_services().get("hdr-vs").await.unwrap();
    let http = vs.data["spec"]["http"].as_array().unwrap().clone();
    let names: Vec<&str> = http
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        names,
        ["header-route", "mirror-route", "primary"],
        "managed routes on top, in managedRoutes order"
    );
    assert_eq!(http[0]["match"][0]["headers"]["x-canary"]["exact"], "yes");
    assert_eq!(http[0]["route"][0]["destination"]["host"], "hdr-canary");
    assert_eq!(http[1]["mirror"]["host"], "hdr-canary");
    assert_eq!(http[1]["mirrorPercentage"]["value"].as_f64(), Some(35.0));
    assert_eq!(http[2]["route"][0]["weight"], 80);
    assert_eq!(http[2]["route"][1]["weight"], 20);
    assert_eq!(http[2]["retries"]["attempts"], 3);

    promote(&ns, "hdr");
    wait_rollout(&ns, "hdr", "Healthy", 60, healthy).await;
    wait_for(
        "managed routes removed and weight back to 0",
        Duration::from_secs(30),
        || async {
            let vs = ns.virtual_services().get("hdr-vs").await?;
            let names: Vec<String> = vs.data["spec"]["http"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r["name"].as_str().unwrap_or_default().to_string())
                .collect();
            if names == ["primary"] && weights(&vs) == (100, 0) {
                Ok(())
            } else {
                Err(anyhow!("{names:?} {:?}", weights(&vs)))
            }
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn several_virtual_services_tls_and_tcp_routes_and_one_in_another_namespace_move_together() {
    let (ns, _op) = setup("multi-vs").await;
    let other = format!("{}-mesh", ns.name);
    ns.kubectl(&["create", "namespace", &other], None).unwrap();
    ns.apply(&services_and_vs("multi")).unwrap();
    let tls_tcp = "apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: multi-edge}
spec:
  hosts: [multi.example.com]
  tls:
  - match: [{port: 443, sniHosts: [multi.example.com]}]
    route:
    - destination: {host: multi-stable.NS.svc.cluster.local, port: {number: 443}}
      weight: 100
    - destination: {host: multi-canary.NS.svc.cluster.local, port: {number: 443}}
      weight: 0
  tcp:
  - match: [{port: 9000}]
    route:
    - destination: {host: multi-stable.NS.svc.cluster.local}
      weight: 100
    - destination: {host: multi-canary.NS.svc.cluster.local}
      weight: 0
"
    .replace("NS", &ns.name);
    ns.kubectl(&["apply", "-n", &other, "-f", "-"], Some(&tls_tcp))
        .unwrap();
    let strategy = format!(
        "      canaryService: multi-canary
      stableService: multi-stable
      trafficRouting:
        istio:
          virtualServices:
          - name: multi-vs
            routes: [primary]
          - name: multi-edge.{other}
            tlsRoutes: [{{port: 443, sniHosts: [multi.example.com]}}]
            tcpRoutes: [{{port: 9000}}]
      steps:
      - setWeight: 40
      - pause: {{}}
"
    );
    ns.apply(&canary_rollout_yaml("multi", 5, "multi:v1", &strategy))
        .unwrap();
    wait_rollout(&ns, "multi", "first deploy Healthy", 60, healthy).await;
    set_image(&ns, "multi", "multi:v2");
    wait_rollout(&ns, "multi", "the pause step", 60, |r| {
        step(r) == 1 && phase(r).0 == "Paused"
    })
    .await;
    assert_eq!(
        weights(&ns.virtual_services().get("multi-vs").await.unwrap()),
        (60, 40)
    );
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1alpha3", "VirtualService");
    let edge_api: Api<DynamicObject> = Api::namespaced_with(
        ns.client.clone(),
        &other,
        &ApiResource::from_gvk_with_plural(&gvk, "virtualservices"),
    );
    let edge = edge_api.get("multi-edge").await.unwrap();
    for kind in ["tls", "tcp"] {
        let route = &edge.data["spec"][kind][0]["route"];
        assert_eq!(
            (route[0]["weight"].as_i64(), route[1]["weight"].as_i64()),
            (Some(60), Some(40)),
            "{kind}"
        );
    }
    assert_eq!(
        edge.data["spec"]["tls"][0]["route"][0]["destination"]["port"]["number"],
        443
    );
    promote(&ns, "multi");
    wait_rollout(&ns, "multi", "Healthy", 60, healthy).await;
    wait_for("every route back to 0", Duration::from_secs(30), || async {
        let edge = edge_api.get("multi-edge").await?;
        let w = (
            weights(&ns.virtual_services().get("multi-vs").await?),
            edge.data["spec"]["tcp"][0]["route"][1]["weight"].as_i64(),
        );
        if w == ((100, 0), Some(0)) {
            Ok(())
        } else {
            Err(anyhow!("{w:?}"))
        }
    })
    .await
    .unwrap();
    ns.kubectl(&["delete", "namespace", &other, "--wait=false"], None)
        .ok();
}

#[tokio::test]
async fn dynamic_stable_scale_shrinks_the_stable_and_abort_returns_traffic_as_it_grows_back() {
    let (ns, _op) = setup("dynamic").await;
    ns.apply(&services_and_vs("dyn")).unwrap();
    let strategy = istio_strategy("dyn", "      - setWeight: 50\n      - pause: {}\n").replace(
        "      steps:\n",
        "      dynamicStableScale: true\n      abortScaleDownDelaySeconds: 0\n      steps:\n",
    );
    ns.apply(&canary_rollout_yaml("dyn", 4, "dyn:v1", &strategy))
        .unwrap();
    let ro = wait_rollout(&ns, "dyn", "first deploy Healthy", 60, healthy).await;
    let v1 = ro.status.unwrap().stable_rs.unwrap();
    let watch = WeightWatch::start(&ns, "dyn-vs", "dyn", 4);
    set_image(&ns, "dyn", "dyn:v2");
    wait_rollout(&ns, "dyn", "the pause step", 60, |r| {
        step(r) == 1 && phase(r).0 == "Paused"
    })
    .await;
    wait_for("the stable scaled to half", Duration::from_secs(30), || async {
        let rss = replica_sets(&ns, "dyn").await;
        if rss[&v1] == (2, 2) {
            Ok(())
        } else {
            Err(anyhow!("{rss:?}"))
        }
    })
    .await
    .unwrap();
    assert_eq!(
        weights(&ns.virtual_services().get("dyn-vs").await.unwrap()),
        (50, 50)
    );

    patch_status(&ns, "dyn", r#"{"status":{"abort":true}}"#);
    wait_for(
        "all traffic back on a whole stable",
        Duration::from_secs(30),
        || async {
            let w = weights(&ns.virtual_services().get("dyn-vs").await?);
            let rss = replica_sets(&ns, "dyn").await;
            if w == (100, 0) && rss[&v1] == (4, 4) {
                Ok(())
            } else {
                Err(anyhow!("{w:?} {rss:?}"))
            }
        },
    )
    .await
    .unwrap();
    let ro: Rollout = ns.api().get("dyn").await.unwrap();
    assert_eq!(phase(&ro).0, "Degraded");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = watch.seen();
    assert_eq!(seen.first(), Some(&0));
    assert_eq!(seen.last(), Some(&0));
    assert!(seen.contains(&50), "{seen:?}");
    assert_eq!(watch.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn replica_sets_made_by_argo_rollouts_are_adopted_on_migration() {
    let ns = TestNamespace::new(SUPERVISOR, "migrate").await.unwrap();
    install_crds(&ns.info, &ns.client).await.unwrap();
    // The state Argo Rollouts leaves: a Healthy rollout, its ReplicaSet named with Argo's hash.
    ns.apply(&canary_rollout_yaml(
        "legacy",
        3,
        "legacy:v1",
        "      steps:\n      - setWeight: 50\n      - pause: {}\n",
    ))
    .unwrap();
    let ro: Rollout = ns.api().get("legacy").await.unwrap();
    let argo_hash = "5d8f9c7b6d";
    patch_status(
        &ns,
        "legacy",
        &format!(
            r#"{{"status":{{"currentPodHash":"{argo_hash}","stableRS":"{argo_hash}","currentStepIndex":2,"observedGeneration":"1","phase":"Healthy"}}}}"#
        ),
    );
    let rs = format!(
        "apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: legacy-{argo_hash}
  labels: {{app: legacy, {HASH}: {argo_hash}}}
  annotations: {{rollout.argoproj.io/revision: \"1\", rollout.argoproj.io/desired-replicas: \"3\"}}
  ownerReferences:
  - {{apiVersion: argoproj.io/v1alpha1, kind: Rollout, name: legacy, uid: {uid}, controller: true, blockOwnerDeletion: true}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: legacy, {HASH}: {argo_hash}}}}}
  template:
    metadata: {{labels: {{app: legacy, {HASH}: {argo_hash}}}}}
    spec:
      containers: [{{name: app, image: legacy:v1}}]
",
        uid = ro.metadata.uid.clone().unwrap()
    );
    ns.apply(&rs).unwrap();
    wait_for("the legacy pods", Duration::from_secs(30), || async {
        let rss = replica_sets(&ns, "legacy").await;
        if rss.get(argo_hash) == Some(&(3, 3)) {
            Ok(())
        } else {
            Err(anyhow!("{rss:?}"))
        }
    })
    .await
    .unwrap();

    let _op = Operator::start(&ns).unwrap();
    // Conditions are written by Sluice only (the status above is Argo's).
    let ro = wait_rollout(&ns, "legacy", "Healthy under Sluice", 30, |r| {
        healthy(r)
            && r.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.r#type == "Healthy" && c.status == "True"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = replica_sets(&ns, "legacy").await;
    assert_eq!(rss.len(), 1, "no new revision on migration: {rss:?}");
    assert_eq!(ro.status.unwrap().current_pod_hash.as_deref(), Some(argo_hash));

    // The next release is an ordinary canary from the adopted stable.
    set_image(&ns, "legacy", "legacy:v2");
    let ro = wait_rollout(&ns, "legacy", "the pause step", 60, |r| {
        step(r) == 1 && phase(r).0 == "Paused"
    })
    .await;
    assert_eq!(ro.status.as_ref().unwrap().stable_rs.as_deref(), Some(argo_hash));
    let rss = replica_sets(&ns, "legacy").await;
    assert_eq!(rss.len(), 2, "{rss:?}");
}

#[tokio::test]
async fn a_canary_whose_pods_never_start_exceeds_its_progress_deadline_and_aborts() {
    let (ns, _op) = setup("deadline").await;
    ns.apply(&services_and_vs("slow")).unwrap();
    let strategy = istio_strategy("slow", "      - setWeight: 40\n      - pause: {}\n");
    let manifest = canary_rollout_yaml("slow", 3, "slow:v1", &strategy).replace(
        "  revisionHistoryLimit: 3\n",
        "  revisionHistoryLimit: 3\n  progressDeadlineSeconds: 3\n  progressDeadlineAbort: true\n",
    );
    ns.apply(&manifest).unwrap();
    wait_rollout(&ns, "slow", "first deploy Healthy", 60, healthy).await;
    // v2 cannot be scheduled anywhere: its pods stay Pending.
    let patch = r#"[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"slow:v2"},
                    {"op":"add","path":"/spec/template/spec/nodeSelector","value":{"no-such-node":"true"}}]"#;
    ns.kubectl(&["patch", "rollout", "slow", "--type=json", "-p", patch], None)
        .unwrap();
    // The status that sets abort still shows the deadline; the next one shows the abort.
    let ro = wait_rollout(&ns, "slow", "aborted after the deadline", 60, |r| {
        r.status.as_ref().is_some_and(|s| s.abort == Some(true)) && phase(r).1.starts_with("RolloutAborted")
    })
    .await;
    assert!(
        phase(&ro)
            .1
            .starts_with("RolloutAborted: Rollout aborted update to revision 2"),
        "{:?}",
        phase(&ro)
    );
    let events = ns
        .kubectl(
            &[
                "get",
                "events",
                "--field-selector=involvedObject.name=slow",
                "-o",
                "json",
            ],
            None,
        )
        .unwrap();
    assert!(
        events.contains("ProgressDeadlineExceeded"),
        "the deadline is recorded as an event"
    );
    assert_eq!(
        weights(&ns.virtual_services().get("slow-vs").await.unwrap()),
        (100, 0),
        "no traffic ever went to the canary"
    );
}
