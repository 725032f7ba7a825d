//! The canary `experiment` step end to end, under Istio and the Gateway API: the Rollout creates an Experiment
//! of the canary and stable templates whose analysis measures the real Prometheus server; a passing analysis
//! completes the step and the rollout is promoted, a failing one aborts it with all traffic back on the
//! stable. A weighted template's Service shows its weight in the VirtualService (or the HTTPRoute) while the
//! step runs and is gone after, and the canary weight never exceeds what the available canary pods can take.

use std::time::Duration;

use kube::{
    Api,
    api::{ApiResource, DynamicObject, GroupVersionKind},
};
use serde_json::Value;
use sluice_crds::experiment::Experiment;
use sluice_e2e::{
    harness::{Operator, TestNamespace, install_crds},
    prometheus::{Prometheus, SUCCESS_RATE_TEMPLATE_QUERY, TrafficCounters, success_rate_query},
    rollouts::{healthy, istio_strategy, phase, services_and_vs, set_image, step, wait_rollout},
    weight_watch::{Watched, WeightWatch},
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");

const KINDS: &[&str] = &[
    "rollouts",
    "experiments",
    "analysisruns",
    "analysistemplates",
    "replicasets",
];

/// A namespace with Prometheus scraping a good and a bad service, and the operator reading that Prometheus.
async fn setup(test: &str) -> (TestNamespace, Operator, Prometheus, TrafficCounters) {
    let mut ns = TestNamespace::new(SUPERVISOR, test).await.expect("namespace");
    ns.dump_kinds.extend(KINDS.iter().map(|k| k.to_string()));
    install_crds(&ns.info, &ns.client).await.expect("CRDs");
    let traffic = TrafficCounters::start().await.expect("traffic");
    traffic.set_service("good", 100.0, 0.99);
    traffic.set_service("bad", 100.0, 0.5);
    let dir = std::env::temp_dir().join(format!("sluice-prom-{}", ns.name));
    let prom = Prometheus::start(&dir, &[traffic.address().to_string()])
        .await
        .expect("prometheus");
    for service in ["good", "bad"] {
        prom.wait_until(&success_rate_query(service), Duration::from_secs(60), |v| {
            v.is_finite()
        })
        .await
        .expect("the success rate is in Prometheus");
    }
    let op =
        Operator::start_with_env(&ns, &[("ARGO_ROLLOUTS_PROMETHEUS_ADDRESS", &prom.url)]).expect("operator");
    ns.apply(&format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: success-rate}}
spec:
  args:
  - name: service-name
  metrics:
  - name: success-rate
    interval: 2s
    count: 4
    successCondition: result[0] >= 0.95
    provider:
      prometheus:
        query: '{SUCCESS_RATE_TEMPLATE_QUERY}'
"#
    ))
    .expect("template");
    (ns, op, prom, traffic)
}

/// setWeight 20, then an experiment of the canary (weight 10, through its own Service) and stable templates
/// whose required analysis measures `service`, then setWeight 50.
fn steps(service: &str) -> String {
    format!(
        "      - setWeight: 20
      - experiment:
          templates:
          - name: exp-canary
            specRef: canary
            weight: 10
          - name: exp-stable
            specRef: stable
          analyses:
          - name: success
            templateName: success-rate
            requiredForCompletion: true
            args:
            - {{name: service-name, value: {service}}}
      - setWeight: 50
"
    )
}

/// The Rollout `web` of 4 pods running `web:v1`, with a container port (an experiment template's Service is
/// made from the pod's ports); `canary` is the indented body of `strategy.canary`.
fn rollout_yaml(canary: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: web
spec:
  replicas: 4
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: app
        image: web:v1
        ports: [{{name: http, containerPort: 8080}}]
  strategy:
    canary:
{canary}"
    )
}

fn vs_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1alpha3", "VirtualService");
    ApiResource::from_gvk_with_plural(&gvk, "virtualservices")
}

/// (host, weight) of every destination of the `primary` route.
fn destinations(vs: &DynamicObject) -> Vec<(String, i64)> {
    vs.data["spec"]["http"][0]["route"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            (
                d["destination"]["host"].as_str().unwrap_or_default().to_string(),
                d["weight"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

fn canary_weight(vs: &DynamicObject) -> Option<i64> {
    destinations(vs)
        .into_iter()
        .find(|(h, _)| h == "web-canary")
        .map(|(_, w)| w)
}

/// Deploys v1 of `web` (4 replicas), starts the weight watch and updates to v2.
async fn start_update(ns: &TestNamespace, service: &str) -> WeightWatch {
    ns.apply(&services_and_vs("web")).expect("services");
    ns.apply(&rollout_yaml(&istio_strategy("web", &steps(service))))
        .expect("rollout");
    wait_rollout(ns, "web", "first deploy Healthy", 90, healthy).await;
    let watch = WeightWatch::start(
        ns,
        Watched {
            resource: vs_resource(),
            name: "web-vs".into(),
            weight: canary_weight,
            rollout: "web".into(),
            replicas: 4,
            total: 100,
        },
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    set_image(ns, "web", "web:v2");
    watch
}

async fn vs(ns: &TestNamespace) -> DynamicObject {
    ns.virtual_services()
        .get("web-vs")
        .await
        .expect("virtual service")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_experiment_completes_its_step_with_the_weighted_template_routed_and_the_rollout_is_promoted()
 {
    let (ns, _op, _prom, _traffic) = setup("expstep-pass").await;
    let watch = start_update(&ns, "good").await;
    // The experiment runs: its weighted template's Service has 10%, the stable the rest of the canary's 20%.
    let ro = wait_rollout(&ns, "web", "the experiment's weight in place", 120, |r| {
        r.status
            .as_ref()
            .and_then(|s| s.canary.as_ref())
            .and_then(|c| c.weights.as_ref())
            .is_some_and(|w| w.additional.as_ref().is_some_and(|a| !a.is_empty()))
    })
    .await;
    let status = ro.status.clone().unwrap();
    let canary = status.canary.clone().unwrap();
    let experiment_name = canary.current_experiment.clone().expect("currentExperiment");
    let hash = status.current_pod_hash.clone().unwrap();
    assert_eq!(experiment_name, format!("web-{hash}-2-1"));
    let weights = canary.weights.unwrap();
    let extra = &weights.additional.unwrap()[0];
    let service = extra.service_name.clone().expect("the experiment Service");
    assert_eq!(
        (extra.weight, weights.canary.weight, weights.stable.weight),
        (10, 20, 70)
    );
    let during = destinations(&vs(&ns).await);
    assert!(during.contains(&(service.clone(), 10)), "{during:?}");
    assert!(during.contains(&("web-stable".into(), 70)), "{during:?}");
    let ex: Experiment = ns
        .api::<Experiment>()
        .get(&experiment_name)
        .await
        .expect("experiment");
    let owner = &ex.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Rollout", "web"));
    assert_eq!(
        ex.metadata.labels.as_ref().unwrap()["rollouts-pod-template-hash"],
        hash
    );
    let images: Vec<Value> = ex
        .spec
        .templates
        .iter()
        .map(|t| serde_json::to_value(&t.template).unwrap()["spec"]["containers"][0]["image"].clone())
        .collect();
    assert_eq!(images, ["web:v2", "web:v1"], "canary and stable templates");

    // The analysis passes: the step completes, the experiment's destination goes, the rollout goes on.
    let ro = wait_rollout(&ns, "web", "promoted", 180, healthy).await;
    assert_eq!(step(&ro), 3);
    let after = destinations(&vs(&ns).await);
    assert!(!after.iter().any(|(h, _)| *h == service), "{after:?}");
    let ex: Experiment = ns
        .api::<Experiment>()
        .get(&experiment_name)
        .await
        .expect("experiment");
    assert_eq!(ex.status.and_then(|s| s.phase).as_deref(), Some("Successful"));
    assert!(
        watch.seen().contains(&20) && watch.seen().contains(&50),
        "{:?}",
        watch.seen()
    );
    assert!(watch.violations().is_empty(), "{:?}", watch.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_experiment_aborts_the_rollout_and_traffic_goes_back_to_the_stable() {
    let (ns, _op, _prom, _traffic) = setup("expstep-fail").await;
    let watch = start_update(&ns, "bad").await;
    let ro = wait_rollout(&ns, "web", "Degraded", 180, |r| phase(r).0 == "Degraded").await;
    let st = ro.status.clone().unwrap();
    assert_eq!(st.abort, Some(true));
    let (_, message) = phase(&ro);
    assert!(
        message.starts_with("RolloutAborted: Rollout aborted update to revision 2"),
        "{message}"
    );
    // All traffic back on the stable, the experiment destination gone.
    let api: Api<Experiment> = ns.api();
    sluice_e2e::cluster::wait_for("traffic back on the stable", Duration::from_secs(60), || async {
        let d = destinations(&vs(&ns).await);
        if d == [("web-stable".to_string(), 100), ("web-canary".to_string(), 0)] {
            Ok(())
        } else {
            Err(anyhow::anyhow!("{d:?}"))
        }
    })
    .await
    .unwrap();
    let exps = api.list(&Default::default()).await.unwrap().items;
    assert_eq!(exps.len(), 1);
    let phase = exps[0].status.as_ref().and_then(|s| s.phase.clone());
    assert_eq!(phase.as_deref(), Some("Failed"));
    assert!(watch.violations().is_empty(), "{:?}", watch.violations());
}

/// The Services of `web` and its HTTPRoute `web-route` (one rule, stable 100 / canary 0, a timeout of its own).
fn services_and_route() -> String {
    let services = ["stable", "canary"]
        .map(|role| {
            format!(
                "apiVersion: v1
kind: Service
metadata: {{name: web-{role}}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
"
            )
        })
        .concat();
    format!(
        "{services}apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: web-route}}
spec:
  parentRefs: [{{name: edge}}]
  rules:
  - timeouts: {{request: 10s}}
    backendRefs:
    - {{name: web-stable, port: 80, weight: 100}}
    - {{name: web-canary, port: 80, weight: 0}}
"
    )
}

/// (name, weight) of every backend of the route's rule.
fn backends(route: &DynamicObject) -> Vec<(String, i64)> {
    route.data["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            (
                b["name"].as_str().unwrap_or_default().to_string(),
                b["weight"].as_i64().unwrap_or(1),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weighted_experiment_under_the_gateway_api_has_its_backend_on_the_route_while_it_runs() {
    let (ns, _op, _prom, _traffic) = setup("expstep-gateway").await;
    ns.apply(&services_and_route()).expect("services and route");
    let strategy = format!(
        "      canaryService: web-canary
      stableService: web-stable
      trafficRouting:
        plugins:
          argoproj-labs/gatewayAPI:
            httpRoute: web-route
      steps:
{}",
        steps("good")
    );
    ns.apply(&rollout_yaml(&strategy)).expect("rollout");
    wait_rollout(&ns, "web", "first deploy Healthy", 90, healthy).await;
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "httproutes");
    let routes: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &resource);
    let watch = WeightWatch::start(
        &ns,
        Watched {
            resource,
            name: "web-route".into(),
            weight: |r| {
                backends(r)
                    .into_iter()
                    .find(|(n, _)| n == "web-canary")
                    .map(|(_, w)| w)
            },
            rollout: "web".into(),
            replicas: 4,
            total: 100,
        },
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    set_image(&ns, "web", "web:v2");
    let ro = wait_rollout(&ns, "web", "the experiment's weight in place", 120, |r| {
        r.status
            .as_ref()
            .and_then(|s| s.canary.as_ref())
            .and_then(|c| c.weights.as_ref())
            .is_some_and(|w| w.additional.as_ref().is_some_and(|a| !a.is_empty()))
    })
    .await;
    let weights = ro.status.unwrap().canary.unwrap().weights.unwrap();
    let service = weights.additional.unwrap()[0].service_name.clone().unwrap();
    let during = backends(&routes.get("web-route").await.unwrap());
    assert_eq!(
        during,
        [
            ("web-stable".to_string(), 70),
            ("web-canary".to_string(), 20),
            (service.clone(), 10)
        ]
    );

    let ro = wait_rollout(&ns, "web", "promoted", 180, healthy).await;
    assert_eq!(step(&ro), 3);
    // Once the stable Service selects the new pods, the weight goes back to the stable side.
    let wanted = [("web-stable".to_string(), 100), ("web-canary".to_string(), 0)];
    sluice_e2e::cluster::wait_for(
        "the route back on the stable",
        Duration::from_secs(60),
        || async {
            let now = backends(&routes.get("web-route").await?);
            if now == wanted {
                Ok(())
            } else {
                Err(anyhow::anyhow!("{now:?}"))
            }
        },
    )
    .await
    .expect("the experiment's backend is taken off the route");
    let route = routes.get("web-route").await.unwrap();
    assert_eq!(route.data["spec"]["rules"][0]["timeouts"]["request"], "10s");
    assert!(
        watch.seen().contains(&20) && watch.seen().contains(&50),
        "{:?}",
        watch.seen()
    );
    assert!(watch.violations().is_empty(), "{:?}", watch.violations());
}
