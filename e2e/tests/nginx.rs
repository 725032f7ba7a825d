//! NGINX Ingress traffic routing end to end: the operator against the real API server and kwok pods, with
//! plain networking.k8s.io/v1 Ingresses (a built-in kind; no NGINX controller runs, the canary annotations
//! are what it would read). The canary Ingress is created from the stable one and follows its changes, its
//! weight walks the steps and never runs ahead of the available canary pods, promotion and abort send the
//! traffic back.

use std::time::Duration;

use anyhow::anyhow;
use k8s_openapi::api::networking::v1::Ingress;
use kube::{
    Api,
    api::{ApiResource, DynamicObject},
};
use serde_json::{Value, json};
use sluice_e2e::{
    cluster::wait_for,
    harness::{Operator, TestNamespace, namespace_with_operator},
    rollouts::{
        canary_rollout_yaml, healthy, ingress_yaml, nginx_strategy, patch_status, phase, promote,
        selector_hash, services_and_ingress, set_image, step, wait_rollout, wait_selector,
    },
    weight_watch::{Watched, WeightWatch},
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");
const WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";

async fn setup(test: &str) -> (TestNamespace, Operator) {
    namespace_with_operator(SUPERVISOR, test, &["ingresses"]).await
}

/// The canary weight an Ingress's annotation shows.
fn canary_weight(obj: &DynamicObject) -> Option<i64> {
    obj.metadata.annotations.as_ref()?.get(WEIGHT)?.parse().ok()
}

fn watch(ns: &TestNamespace, canary_ingress: &str, rollout: &str, replicas: i32) -> WeightWatch {
    WeightWatch::start(
        ns,
        Watched {
            resource: ApiResource::erase::<Ingress>(&()),
            name: canary_ingress.to_string(),
            weight: canary_weight,
            rollout: rollout.to_string(),
            replicas,
            total: 100,
        },
    )
}

async fn ingress(ns: &TestNamespace, name: &str) -> anyhow::Result<Value> {
    let api: Api<Ingress> = ns.api();
    Ok(serde_json::to_value(api.get(name).await?)?)
}

/// Polls until the Ingress's canary weight annotation reads `want`.
async fn wait_weight(ns: &TestNamespace, name: &str, want: &str, secs: u64) {
    wait_for(
        &format!("{name} at weight {want}"),
        Duration::from_secs(secs),
        || async {
            let ing = ingress(ns, name).await?;
            let got = ing["metadata"]["annotations"][WEIGHT].clone();
            if got == want {
                Ok(())
            } else {
                Err(anyhow!("it shows {got}"))
            }
        },
    )
    .await
    .unwrap();
}

/// The stable Ingress's fields that the rollout must never touch.
fn untouched(ing: &Value) -> Value {
    json!({
        "labels": ing["metadata"]["labels"],
        "annotations": ing["metadata"]["annotations"],
        "spec": ing["spec"],
        "resourceVersion": ing["metadata"]["resourceVersion"],
    })
}

#[tokio::test]
async fn nginx_canary_ingress_walks_the_steps_only_as_pods_are_ready_and_promotion_returns_traffic() {
    let (ns, _op) = setup("nginx-walk").await;
    ns.apply(&services_and_ingress("web", "web", "web.example.com"))
        .unwrap();
    let steps = "      - setWeight: 20
      - pause: {duration: 1}
      - setWeight: 50
      - pause: {}
";
    ns.apply(&canary_rollout_yaml(
        "web",
        10,
        "web:v1",
        &nginx_strategy("web", "          stableIngress: web", steps),
    ))
    .unwrap();
    let ro = wait_rollout(&ns, "web", "first deploy Healthy", 60, healthy).await;
    let v1 = ro.status.clone().unwrap().stable_rs.unwrap();
    let uid = ro.metadata.uid.clone().unwrap();
    assert_eq!(
        selector_hash(&ns, "web-stable").await.as_deref(),
        Some(v1.as_str())
    );

    let watch = watch(&ns, "web-web-canary", "web", 10);
    tokio::time::sleep(Duration::from_millis(500)).await;
    set_image(&ns, "web", "web:v2");
    let ro = wait_rollout(&ns, "web", "the pause {} step", 90, |r| {
        step(r) == 3 && phase(r).0 == "Paused"
    })
    .await;
    let v2 = ro.status.clone().unwrap().current_pod_hash.unwrap();
    assert_ne!(v1, v2);
    let weights = ro.status.unwrap().canary.unwrap().weights.unwrap();
    assert_eq!((weights.canary.weight, weights.verified), (50, Some(true)));
    assert_eq!(
        selector_hash(&ns, "web-canary").await.as_deref(),
        Some(v2.as_str())
    );

    // The canary Ingress: the rule of the stable Service's host, its backend turned to the canary Service,
    // the other path of that rule kept, TLS and class copied, the canary annotations, owned by the Rollout.
    let canary = ingress(&ns, "web-web-canary").await.unwrap();
    assert_eq!(
        canary["spec"],
        json!({
            "ingressClassName": "nginx",
            "tls": [{"hosts": ["web.example.com"], "secretName": "web-tls"}],
            "rules": [{
                "host": "web.example.com",
                "http": {"paths": [
                    {"path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": "web-canary", "port": {"number": 80}}}},
                    {"path": "/static", "pathType": "Prefix",
                     "backend": {"service": {"name": "cdn", "port": {"name": "http"}}}},
                ]},
            }],
        })
    );
    assert_eq!(
        canary["metadata"]["annotations"],
        json!({
            "nginx.ingress.kubernetes.io/canary": "true",
            "nginx.ingress.kubernetes.io/canary-weight": "50",
            "nginx.ingress.kubernetes.io/canary-weight-total": "100",
            "nginx.ingress.kubernetes.io/canary-by-header": "X-Canary",
            "nginx.ingress.kubernetes.io/canary-by-header-value": "yes",
            "example.com/release-train": "blue",
        })
    );
    assert!(canary["metadata"].get("labels").is_none());
    assert_eq!(
        canary["metadata"]["ownerReferences"],
        json!([{
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "name": "web",
            "uid": uid,
            "controller": true,
            "blockOwnerDeletion": true,
        }])
    );

    // The stable Ingress gets a new path to the stable Service: the canary Ingress follows, at the same
    // weight.
    let path = r#"[{"op":"add","path":"/spec/rules/0/http/paths/-","value":{"path":"/v2","pathType":"Prefix","backend":{"service":{"name":"web-stable","port":{"number":81}}}}}]"#;
    ns.kubectl(&["patch", "ingress", "web", "--type=json", "-p", path], None)
        .unwrap();
    let stable_before = untouched(&ingress(&ns, "web").await.unwrap());
    wait_for(
        "the canary Ingress to follow the new path",
        Duration::from_secs(20),
        || async {
            let canary = ingress(&ns, "web-web-canary").await?;
            let paths = &canary["spec"]["rules"][0]["http"]["paths"];
            let want = json!({"path": "/v2", "pathType": "Prefix",
                              "backend": {"service": {"name": "web-canary", "port": {"number": 81}}}});
            if paths[2] == want && canary["metadata"]["annotations"][WEIGHT] == "50" {
                Ok(())
            } else {
                Err(anyhow!("paths {paths}"))
            }
        },
    )
    .await
    .unwrap();

    promote(&ns, "web");
    let ro = wait_rollout(&ns, "web", "Healthy after promote", 90, healthy).await;
    assert_eq!(ro.status.unwrap().stable_rs.as_deref(), Some(v2.as_str()));
    wait_weight(&ns, "web-web-canary", "0", 30).await;
    wait_selector(&ns, "web-stable", &v2, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        watch.seen(),
        [20, 50, 100, 0],
        "canary weights as the canary Ingress showed them"
    );
    assert_eq!(watch.violations(), Vec::<String>::new());

    assert_eq!(
        untouched(&ingress(&ns, "web").await.unwrap()),
        stable_before,
        "the stable Ingress is never written"
    );
}

#[tokio::test]
async fn nginx_abort_sends_every_canary_ingress_back_to_zero_at_once() {
    let (ns, _op) = setup("nginx-abort").await;
    ns.apply(&services_and_ingress("shop", "public", "shop.example.com"))
        .unwrap();
    ns.apply(&ingress_yaml("shop", "internal", "shop.internal"))
        .unwrap();
    let steps = "      - setWeight: 30
      - pause: {}
      - setWeight: 60
      - pause: {}
";
    ns.apply(&canary_rollout_yaml(
        "shop",
        5,
        "shop:v1",
        &nginx_strategy("shop", "          stableIngresses: [public, internal]", steps),
    ))
    .unwrap();
    let ro = wait_rollout(&ns, "shop", "first deploy Healthy", 60, healthy).await;
    let v1 = ro.status.unwrap().stable_rs.unwrap();
    let watch = watch(&ns, "shop-public-canary", "shop", 5);
    tokio::time::sleep(Duration::from_millis(500)).await;

    set_image(&ns, "shop", "shop:v2");
    wait_rollout(&ns, "shop", "the first pause", 60, |r| {
        step(r) == 1 && phase(r).0 == "Paused"
    })
    .await;
    for canary in ["shop-public-canary", "shop-internal-canary"] {
        let ing = ingress(&ns, canary).await.unwrap();
        assert_eq!(ing["metadata"]["annotations"][WEIGHT], "30", "{canary}");
    }
    let internal = ingress(&ns, "shop-internal-canary").await.unwrap();
    assert_eq!(internal["spec"]["rules"][0]["host"], "shop.internal");
    assert_eq!(
        internal["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "shop-canary"
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
    for canary in ["shop-public-canary", "shop-internal-canary"] {
        wait_weight(&ns, canary, "0", 10).await;
    }
    wait_selector(&ns, "shop-canary", &v1, 10).await;
    assert_eq!(watch.seen(), [30, 0]);
    assert_eq!(watch.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_stable_ingress_without_the_stable_service_is_reported_and_no_canary_ingress_is_made() {
    let (ns, _op) = setup("nginx-bad").await;
    let manifests =
        services_and_ingress("bad", "bad", "bad.example.com").replace("bad-stable, port", "elsewhere, port");
    ns.apply(&manifests).unwrap();
    let steps = "      - setWeight: 50
      - pause: {}
";
    ns.apply(&canary_rollout_yaml(
        "bad",
        2,
        "bad:v1",
        &nginx_strategy("bad", "          stableIngress: bad", steps),
    ))
    .unwrap();
    wait_rollout(&ns, "bad", "first deploy Healthy", 60, healthy).await;
    set_image(&ns, "bad", "bad:v2");
    wait_for(
        "a TrafficRoutingError event naming the Ingress",
        Duration::from_secs(60),
        || async {
            let events = ns.kubectl(
                &[
                    "get",
                    "events",
                    "--field-selector=involvedObject.name=bad,reason=TrafficRoutingError",
                    "-o",
                    "jsonpath={.items[*].message}",
                ],
                None,
            )?;
            if events.contains("ingress `bad` has no rules using service bad-stable backend") {
                Ok(())
            } else {
                Err(anyhow!("events: {events:?}"))
            }
        },
    )
    .await
    .unwrap();
    let api: Api<Ingress> = ns.api();
    assert!(api.get_opt("bad-bad-canary").await.unwrap().is_none());
}
