//! SMI traffic routing end to end: the operator against the real API server, kwok pods and a TrafficSplit CRD
//! serving v1alpha1, v1alpha2 and v1alpha3 (no mesh; only the objects matter). The Rollout creates its
//! TrafficSplit, owned by it, and every weight the TrafficSplit shows is watched against the canary's
//! available pods.

use std::time::Duration;

use anyhow::anyhow;
use kube::{
    Api, ResourceExt,
    api::{ApiResource, DynamicObject, GroupVersionKind},
};
use serde_json::{Value, json};
use sluice_crds::rollout::Rollout;
use sluice_e2e::{
    cluster::wait_for,
    harness::{Operator, TestNamespace, install_crds},
    rollouts::{canary_rollout_yaml, healthy, patch_status, phase, promote, set_image, step, wait_rollout},
    weight_watch::{Watched, WeightWatch},
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");

/// A namespace with the CRDs and an operator writing TrafficSplits in `version` (`None`: the default).
async fn setup(test: &str, version: Option<&str>) -> (TestNamespace, Operator) {
    let mut ns = TestNamespace::new(SUPERVISOR, test).await.expect("namespace");
    ns.dump_kinds.push("trafficsplits".into());
    install_crds(&ns.info, &ns.client).await.expect("CRDs");
    let env: Vec<(&str, &str)> = version
        .map(|v| ("SLUICE_TRAFFIC_SPLIT_API_VERSION", v))
        .into_iter()
        .collect();
    let op = Operator::start_with_env(&ns, &env).expect("operator starts");
    (ns, op)
}

fn resource(version: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk("split.smi-spec.io", version, "TrafficSplit");
    ApiResource::from_gvk_with_plural(&gvk, "trafficsplits")
}

fn traffic_splits(ns: &TestNamespace, version: &str) -> Api<DynamicObject> {
    Api::namespaced_with(ns.client.clone(), &ns.name, &resource(version))
}

/// A weight as written: an integer, or a quantity string of a whole number ("10").
fn number(weight: &Value) -> Option<i64> {
    weight
        .as_i64()
        .or_else(|| weight.as_str().and_then(|s| s.parse().ok()))
}

/// The weight of the canary backend (the Service named `*-canary`).
fn canary_weight(ts: &DynamicObject) -> Option<i64> {
    ts.data["spec"]["backends"]
        .as_array()?
        .iter()
        .find(|b| b["service"].as_str().is_some_and(|s| s.ends_with("-canary")))
        .and_then(|b| number(&b["weight"]))
}

/// (Service, weight as written) of every backend.
fn backends(ts: &DynamicObject) -> Vec<(String, Value)> {
    ts.data["spec"]["backends"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            (
                b["service"].as_str().unwrap_or("").to_string(),
                b["weight"].clone(),
            )
        })
        .collect()
}

/// The stable, canary and root Services of `name`, each selecting every pod of the app.
fn services(name: &str) -> String {
    ["stable", "canary", "root"]
        .map(|role| {
            let svc = if role == "root" {
                name.to_string()
            } else {
                format!("{name}-{role}")
            };
            format!(
                "apiVersion: v1
kind: Service
metadata: {{name: {svc}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080}}]
"
            )
        })
        .join("---\n")
}

/// A canary strategy routed through SMI (`smi` is the indented body of `trafficRouting.smi`).
fn smi_strategy(name: &str, smi: &str, steps: &str) -> String {
    format!(
        "      canaryService: {name}-canary
      stableService: {name}-stable
      trafficRouting:
        smi: {smi}
      steps:
{steps}"
    )
}

fn watch(ns: &TestNamespace, version: &str, split: &str, rollout: &str, replicas: i32) -> WeightWatch {
    WeightWatch::start(
        ns,
        Watched {
            resource: resource(version),
            name: split.into(),
            weight: canary_weight,
            rollout: rollout.into(),
            replicas,
            total: 100,
        },
    )
}

async fn wait_canary_weight(ns: &TestNamespace, version: &str, split: &str, want: i64, secs: u64) {
    wait_for(
        &format!("TrafficSplit {split} canary weight {want}"),
        Duration::from_secs(secs),
        || async {
            let ts = traffic_splits(ns, version).get(split).await?;
            match canary_weight(&ts) {
                Some(w) if w == want => Ok(()),
                other => Err(anyhow!("{other:?}: {:?}", backends(&ts))),
            }
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_canary_creates_its_traffic_split_owned_by_the_rollout_and_walks_v1alpha1_weights_to_promotion() {
    let (ns, _op) = setup("smi-walk", None).await;
    ns.apply(&services("web")).unwrap();
    let steps = "      - setWeight: 20
      - pause: {duration: 1}
      - setWeight: 50
      - pause: {}
";
    let strategy = smi_strategy("web", "{rootService: web, trafficSplitName: web-split}", steps);
    ns.apply(&canary_rollout_yaml("web", 10, "web:v1", &strategy))
        .unwrap();
    let ro = wait_rollout(&ns, "web", "first deploy Healthy", 60, healthy).await;
    let v1 = ro.status.clone().unwrap().stable_rs.unwrap();
    assert!(
        traffic_splits(&ns, "v1alpha1")
            .get_opt("web-split")
            .await
            .unwrap()
            .is_none(),
        "no TrafficSplit before the first weight"
    );

    let watch = watch(&ns, "v1alpha1", "web-split", "web", 10);
    tokio::time::sleep(Duration::from_millis(500)).await;
    set_image(&ns, "web", "web:v2");
    let ro = wait_rollout(&ns, "web", "the pause {} step", 90, |r| {
        step(r) == 3 && phase(r).0 == "Paused"
    })
    .await;
    let ts = traffic_splits(&ns, "v1alpha1").get("web-split").await.unwrap();
    assert_eq!(ts.data["spec"]["service"], "web", "the root service");
    assert_eq!(
        backends(&ts),
        [
            ("web-canary".to_string(), json!("50")),
            ("web-stable".to_string(), json!("50")),
        ],
        "v1alpha1 weights are quantities, canary first as upstream writes them"
    );
    let owners = serde_json::to_value(ts.owner_references()).unwrap();
    assert_eq!(
        owners,
        json!([{
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web",
            "uid": ro.uid().unwrap(), "controller": true, "blockOwnerDeletion": true,
        }])
    );
    let weights = ro.status.clone().unwrap().canary.unwrap().weights.unwrap();
    assert_eq!((weights.canary.weight, weights.verified), (50, Some(true)));

    promote(&ns, "web");
    let ro = wait_rollout(&ns, "web", "Healthy after promote", 90, healthy).await;
    assert_ne!(ro.status.unwrap().stable_rs.as_deref(), Some(v1.as_str()));
    wait_canary_weight(&ns, "v1alpha1", "web-split", 0, 30).await;
    let ts = traffic_splits(&ns, "v1alpha1").get("web-split").await.unwrap();
    assert_eq!(
        backends(&ts),
        [
            ("web-canary".to_string(), json!("0")),
            ("web-stable".to_string(), json!("100")),
        ],
        "all on stable"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        watch.seen(),
        [20, 50, 100, 0],
        "canary weights as the TrafficSplit showed them"
    );
    assert_eq!(watch.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn abort_under_v1alpha3_sends_everything_back_to_stable_at_once_in_the_default_split() {
    let (ns, _op) = setup("smi-abort", Some("v1alpha3")).await;
    ns.apply(&services("shop")).unwrap();
    let steps = "      - setWeight: 30
      - pause: {}
      - setWeight: 60
      - pause: {}
";
    ns.apply(&canary_rollout_yaml(
        "shop",
        5,
        "shop:v1",
        &smi_strategy("shop", "{}", steps),
    ))
    .unwrap();
    wait_rollout(&ns, "shop", "first deploy Healthy", 60, healthy).await;
    let watch = watch(&ns, "v1alpha3", "shop", "shop", 5);
    tokio::time::sleep(Duration::from_millis(500)).await;
    set_image(&ns, "shop", "shop:v2");
    wait_rollout(&ns, "shop", "the first pause", 60, |r| {
        step(r) == 1 && phase(r).0 == "Paused"
    })
    .await;
    // Named after the Rollout, rooted at the stable Service, integer weights.
    let ts = traffic_splits(&ns, "v1alpha3").get("shop").await.unwrap();
    assert_eq!(ts.data["spec"]["service"], "shop-stable");
    assert_eq!(
        backends(&ts),
        [
            ("shop-canary".to_string(), json!(30)),
            ("shop-stable".to_string(), json!(70)),
        ]
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
    wait_canary_weight(&ns, "v1alpha3", "shop", 0, 10).await;
    let ts = traffic_splits(&ns, "v1alpha3").get("shop").await.unwrap();
    assert_eq!(
        backends(&ts),
        [
            ("shop-canary".to_string(), json!(0)),
            ("shop-stable".to_string(), json!(100)),
        ]
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(watch.seen(), [30, 0], "straight back to 0, no step between");
    assert_eq!(watch.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_traffic_split_the_rollout_does_not_own_is_left_alone_and_named_in_a_warning_event() {
    let (ns, _op) = setup("smi-foreign", Some("v1alpha2")).await;
    ns.apply(&services("api")).unwrap();
    ns.apply(
        "apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: api}
spec:
  service: api
  backends:
  - {service: api-stable, weight: 100}
",
    )
    .unwrap();
    let steps = "      - setWeight: 40
      - pause: {}
";
    ns.apply(&canary_rollout_yaml(
        "api",
        2,
        "api:v1",
        &smi_strategy("api", "{}", steps),
    ))
    .unwrap();
    wait_rollout(&ns, "api", "first deploy Healthy", 60, healthy).await;
    set_image(&ns, "api", "api:v2");
    wait_for(
        "a TrafficRoutingError event naming the TrafficSplit",
        Duration::from_secs(60),
        || async {
            let events = ns.kubectl(
                &[
                    "get",
                    "events",
                    "--field-selector=involvedObject.name=api",
                    "-o",
                    "json",
                ],
                None,
            )?;
            let events: Value = serde_json::from_str(&events)?;
            let found = events["items"].as_array().into_iter().flatten().any(|e| {
                e["reason"] == "TrafficRoutingError"
                    && e["type"] == "Warning"
                    && e["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("Rollout does not own TrafficSplit `api`"))
            });
            if found { Ok(()) } else { Err(anyhow!("not yet")) }
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ts = traffic_splits(&ns, "v1alpha2").get("api").await.unwrap();
    assert_eq!(
        backends(&ts),
        [("api-stable".to_string(), json!(100))],
        "untouched"
    );
    let rollouts: Api<Rollout> = ns.api();
    let ro = rollouts.get("api").await.unwrap();
    let weight = ro.status.and_then(|s| s.canary).and_then(|c| c.weights);
    assert!(
        weight.as_ref().is_none_or(|w| w.canary.weight == 0),
        "no weight recorded for the canary: {weight:?}"
    );
}
