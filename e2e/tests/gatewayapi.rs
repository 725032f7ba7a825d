//! Gateway API traffic routing end to end: Rollouts written for the `argoproj-labs/gatewayAPI` plugin, run by
//! Sluice against the real API server with kwok pods and the Gateway API route CRDs.

use std::time::Duration;

use anyhow::anyhow;
use kube::{
    Api,
    api::{ApiResource, DynamicObject, GroupVersionKind},
};
use serde_json::Value;
use sluice_e2e::{
    cluster::wait_for,
    harness::{Operator, TestNamespace, namespace_with_operator},
    rollouts::{
        canary_rollout_yaml, healthy, patch_status, phase, promote, selector_hash, set_image, step,
        wait_rollout,
    },
    weight_watch::{Watched, WeightWatch},
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");

async fn setup(test: &str) -> (TestNamespace, Operator) {
    namespace_with_operator(SUPERVISOR, test, &[]).await
}

fn resource(version: &str, kind: &str, plural: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", version, kind);
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

fn http_routes() -> ApiResource {
    resource("v1", "HTTPRoute", "httproutes")
}

fn routes(ns: &TestNamespace, r: &ApiResource) -> Api<DynamicObject> {
    Api::namespaced_with(ns.client.clone(), &ns.name, r)
}

/// The (stable, canary) weights of the first rule (the one that carries the split).
fn weights(route: &DynamicObject) -> (i64, i64) {
    let refs = route.data["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let of = |suffix: &str| {
        refs.iter()
            .find(|r| r["name"].as_str().is_some_and(|n| n.ends_with(suffix)))
            .and_then(|r| r["weight"].as_i64())
            .unwrap_or(-1)
    };
    (of("-stable"), of("-canary"))
}

fn canary_weight(route: &DynamicObject) -> Option<i64> {
    Some(weights(route).1).filter(|w| *w >= 0)
}

fn watch(ns: &TestNamespace, route: &str, rollout: &str, replicas: i32) -> WeightWatch {
    WeightWatch::start(
        ns,
        Watched {
            resource: http_routes(),
            name: route.into(),
            weight: canary_weight,
            rollout: rollout.into(),
            replicas,
            total: 100,
        },
    )
}

async fn wait_weights(ns: &TestNamespace, r: &ApiResource, name: &str, want: (i64, i64), secs: u64) {
    wait_for(
        &format!("{name} at {want:?}"),
        Duration::from_secs(secs),
        || async {
            let w = weights(&routes(ns, r).get(name).await?);
            if w == want { Ok(()) } else { Err(anyhow!("{w:?}")) }
        },
    )
    .await
    .unwrap();
}

/// The stable and canary Services of `name`, its HTTPRoute `<name>-route` (a split rule with matches and
/// filters, a second rule to another backend) and, with `more`, a GRPCRoute and a TCPRoute on the same
/// Services: all traffic on stable.
fn services_and_routes(name: &str, more: bool) -> String {
    let mut out = format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}-stable}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {name}-canary}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}-route, labels: {{team: shop}}}}
spec:
  parentRefs: [{{name: gw, namespace: infra}}]
  hostnames: [{name}.example.com]
  rules:
  - matches: [{{path: {{type: PathPrefix, value: /}}}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {{add: [{{name: x-via, value: gw}}]}}
    timeouts: {{request: 10s}}
    backendRefs:
    - {{name: {name}-stable, port: 80, weight: 100}}
    - {{name: {name}-canary, port: 80, weight: 0}}
  - matches: [{{path: {{type: PathPrefix, value: /static}}}}]
    backendRefs:
    - {{name: cdn, port: 80}}
"
    );
    if more {
        out.push_str(&format!(
            "---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {{name: {name}-grpc}}
spec:
  rules:
  - matches: [{{method: {{service: shop.Cart}}}}]
    backendRefs:
    - {{name: {name}-stable, port: 80, weight: 100}}
    - {{name: {name}-canary, port: 80, weight: 0}}
---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {{name: {name}-tcp}}
spec:
  rules:
  - backendRefs:
    - {{name: {name}-stable, port: 80, weight: 100}}
    - {{name: {name}-canary, port: 80, weight: 0}}
"
        ));
    }
    out
}

/// A canary strategy routed by the Gateway API plugin config `plugin` (YAML indented by ten), with the steps
/// given as YAML list items.
fn gateway_strategy(name: &str, plugin: &str, managed: &str, steps: &str) -> String {
    format!(
        "      canaryService: {name}-canary
      stableService: {name}-stable
      trafficRouting:
{managed}        plugins:
          argoproj-labs/gatewayAPI:
{plugin}      steps:
{steps}"
    )
}

#[tokio::test]
async fn canary_walks_its_weights_on_http_grpc_and_tcp_routes_and_keeps_other_fields() {
    let (ns, _op) = setup("gw-walk").await;
    ns.apply(&services_and_routes("web", true)).unwrap();
    let plugin = "            httpRoute: web-route
            grpcRoutes: [{name: web-grpc}]
            tcpRoute: web-tcp
";
    let steps = "      - setWeight: 20
      - pause: {duration: 1}
      - setWeight: 50
      - pause: {}
";
    ns.apply(&canary_rollout_yaml(
        "web",
        10,
        "web:v1",
        &gateway_strategy("web", plugin, "", steps),
    ))
    .unwrap();
    let ro = wait_rollout(&ns, "web", "first deploy Healthy", 60, healthy).await;
    let v1 = ro.status.unwrap().stable_rs.unwrap();
    let before = routes(&ns, &http_routes()).get("web-route").await.unwrap();

    let watch = watch(&ns, "web-route", "web", 10);
    tokio::time::sleep(Duration::from_millis(500)).await;
    set_image(&ns, "web", "web:v2");
    let ro = wait_rollout(&ns, "web", "the pause {} step", 90, |r| step(r) == 3).await;
    let v2 = ro.status.clone().unwrap().current_pod_hash.unwrap();
    assert_eq!(
        weights(&routes(&ns, &http_routes()).get("web-route").await.unwrap()),
        (50, 50)
    );
    let grpc = resource("v1", "GRPCRoute", "grpcroutes");
    let tcp = resource("v1alpha2", "TCPRoute", "tcproutes");
    assert_eq!(
        weights(&routes(&ns, &grpc).get("web-grpc").await.unwrap()),
        (50, 50)
    );
    assert_eq!(
        weights(&routes(&ns, &tcp).get("web-tcp").await.unwrap()),
        (50, 50)
    );
    assert_eq!(
        selector_hash(&ns, "web-canary").await.as_deref(),
        Some(v2.as_str())
    );
    let status = ro.status.unwrap().canary.unwrap().weights.unwrap();
    assert_eq!((status.canary.weight, status.verified), (50, Some(true)));

    promote(&ns, "web");
    let ro = wait_rollout(&ns, "web", "Healthy after promote", 90, healthy).await;
    wait_weights(&ns, &http_routes(), "web-route", (100, 0), 30).await;
    wait_weights(&ns, &grpc, "web-grpc", (100, 0), 30).await;
    wait_weights(&ns, &tcp, "web-tcp", (100, 0), 30).await;
    assert_eq!(ro.status.unwrap().stable_rs.as_deref(), Some(v2.as_str()));
    assert_ne!(v1, v2);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        watch.seen(),
        [0, 20, 50, 100, 0],
        "canary weights as the HTTPRoute showed them"
    );
    assert_eq!(watch.violations(), Vec::<String>::new());

    // Everything but the two weights is as the owner wrote it.
    let after = routes(&ns, &http_routes()).get("web-route").await.unwrap();
    let strip = |route: &DynamicObject| -> Value {
        let mut spec = route.data["spec"].clone();
        for backend in spec["rules"][0]["backendRefs"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            backend.as_object_mut().map(|b| b.remove("weight"));
        }
        spec
    };
    assert_eq!(strip(&after), strip(&before));
    assert_eq!(after.metadata.labels, before.metadata.labels);
    assert_eq!(after.data["spec"]["rules"][0]["timeouts"]["request"], "10s");
}

#[tokio::test]
async fn abort_sends_traffic_back_to_stable_at_once() {
    let (ns, _op) = setup("gw-abort").await;
    ns.apply(&services_and_routes("shop", false)).unwrap();
    let plugin = "            httpRoutes: [{name: shop-route}]\n";
    let steps = "      - setWeight: 30
      - pause: {}
";
    ns.apply(&canary_rollout_yaml(
        "shop",
        5,
        "shop:v1",
        &gateway_strategy("shop", plugin, "", steps),
    ))
    .unwrap();
    let ro = wait_rollout(&ns, "shop", "first deploy Healthy", 60, healthy).await;
    let v1 = ro.status.unwrap().stable_rs.unwrap();
    let watch = watch(&ns, "shop-route", "shop", 5);
    tokio::time::sleep(Duration::from_millis(500)).await;
    set_image(&ns, "shop", "shop:v2");
    wait_rollout(&ns, "shop", "the pause", 60, |r| {
        step(r) == 1 && phase(r).0 == "Paused"
    })
    .await;
    assert_eq!(
        weights(&routes(&ns, &http_routes()).get("shop-route").await.unwrap()),
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
    wait_weights(&ns, &http_routes(), "shop-route", (100, 0), 10).await;
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
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(watch.seen(), [0, 30, 0]);
    assert_eq!(watch.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_header_route_is_a_rule_to_the_canary_during_its_step_and_removed_at_promotion() {
    let (ns, _op) = setup("gw-header").await;
    ns.apply(&services_and_routes("hdr", false)).unwrap();
    let before = routes(&ns, &http_routes()).get("hdr-route").await.unwrap();
    let plugin = "            httpRoutes: [{name: hdr-route, useHeaderRoutes: true}]\n";
    let managed = "        managedRoutes:\n        - name: header-route\n";
    let steps = "      - setWeight: 20
      - setHeaderRoute:
          name: header-route
          match:
          - headerName: x-canary
            headerValue: {exact: \"yes\"}
      - pause: {}
";
    ns.apply(&canary_rollout_yaml(
        "hdr",
        5,
        "hdr:v1",
        &gateway_strategy("hdr", plugin, managed, steps),
    ))
    .unwrap();
    wait_rollout(&ns, "hdr", "first deploy Healthy", 60, healthy).await;
    let watch = watch(&ns, "hdr-route", "hdr", 5);
    tokio::time::sleep(Duration::from_millis(500)).await;
    set_image(&ns, "hdr", "hdr:v2");
    wait_rollout(&ns, "hdr", "the pause step", 60, |r| {
        step(r) == 2 && phase(r).0 == "Paused"
    })
    .await;
    let route = routes(&ns, &http_routes()).get("hdr-route").await.unwrap();
    let rules = route.data["spec"]["rules"].as_array().unwrap().clone();
    assert_eq!(rules.len(), 3, "the header rule is appended: {rules:?}");
    assert_eq!(rules[2]["matches"][0]["path"]["value"], "/");
    assert_eq!(
        rules[2]["matches"][0]["headers"][0],
        serde_json::json!({"name": "x-canary", "type": "Exact", "value": "yes"})
    );
    assert_eq!(rules[2]["backendRefs"].as_array().map(Vec::len), Some(1));
    assert_eq!(rules[2]["backendRefs"][0]["name"], "hdr-canary");
    assert_eq!(rules[2]["filters"], rules[0]["filters"]);
    assert_eq!(weights(&route), (80, 20));
    assert_eq!(rules[1], before.data["spec"]["rules"][1]);

    promote(&ns, "hdr");
    wait_rollout(&ns, "hdr", "Healthy", 60, healthy).await;
    wait_for(
        "header rule removed and weight back to 0",
        Duration::from_secs(30),
        || async {
            let route = routes(&ns, &http_routes()).get("hdr-route").await?;
            let n = route.data["spec"]["rules"].as_array().map_or(0, Vec::len);
            if n == 2 && weights(&route) == (100, 0) {
                Ok(())
            } else {
                Err(anyhow!("{n} rules, {:?}", weights(&route)))
            }
        },
    )
    .await
    .unwrap();
    let after = routes(&ns, &http_routes()).get("hdr-route").await.unwrap();
    assert_eq!(
        after.data["spec"], before.data["spec"],
        "the route reads as the owner wrote it"
    );
    assert_eq!(after.metadata.annotations, before.metadata.annotations);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(watch.seen(), [0, 20, 100, 0]);
    assert_eq!(watch.violations(), Vec::<String>::new());
}
