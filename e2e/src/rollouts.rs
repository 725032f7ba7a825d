//! What end-to-end tests ask of a Rollout: wait for a state, read its phase, change its image or status as the
//! upstream plugin does.

use std::time::{Duration, Instant};

use kube::Api;
use sluice_crds::rollout::Rollout;

use crate::harness::TestNamespace;

/// Polls the Rollout until `check` holds; panics after `secs` with the last status it saw.
pub async fn wait_rollout(
    ns: &TestNamespace,
    name: &str,
    what: &str,
    secs: u64,
    check: impl Fn(&Rollout) -> bool,
) -> Rollout {
    let api: Api<Rollout> = ns.api();
    let mut last = None;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if let Ok(ro) = api.get(name).await {
            if check(&ro) {
                return ro;
            }
            last = Some(ro);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let st = last
        .and_then(|r| r.status)
        .map(|s| serde_json::to_string_pretty(&s).unwrap_or_default());
    panic!(
        "rollout {name}: timed out after {secs}s waiting for {what}; status: {}",
        st.unwrap_or_default()
    );
}

/// (phase, message) of the status.
pub fn phase(ro: &Rollout) -> (String, String) {
    let st = ro.status.clone().unwrap_or_default();
    (st.phase.unwrap_or_default(), st.message.unwrap_or_default())
}

/// Healthy on its current template, with the status of its current generation.
pub fn healthy(ro: &Rollout) -> bool {
    let st = ro.status.as_ref();
    phase(ro).0 == "Healthy"
        && st.is_some_and(|s| s.stable_rs.is_some() && s.stable_rs == s.current_pod_hash)
        && st.and_then(|s| s.observed_generation.clone()) == ro.metadata.generation.map(|g| g.to_string())
}

/// The current step index, -1 when none.
pub fn step(ro: &Rollout) -> i32 {
    ro.status
        .as_ref()
        .and_then(|s| s.current_step_index)
        .unwrap_or(-1)
}

/// `kubectl patch rollout --subresource=status`, as the upstream plugin writes promote/abort/retry.
pub fn patch_status(ns: &TestNamespace, name: &str, patch: &str) {
    ns.kubectl(
        &[
            "patch",
            "rollout",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            patch,
        ],
        None,
    )
    .unwrap_or_else(|e| panic!("status patch {patch}: {e:#}"));
}

/// `kubectl argo rollouts promote`: clears the pause conditions.
pub fn promote(ns: &TestNamespace, name: &str) {
    patch_status(ns, name, r#"{"status":{"pauseConditions":null}}"#);
}

/// `kubectl argo rollouts set image` of the first container.
pub fn set_image(ns: &TestNamespace, name: &str, image: &str) {
    let patch =
        format!(r#"[{{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"{image}"}}]"#);
    ns.kubectl(&["patch", "rollout", name, "--type=json", "-p", &patch], None)
        .expect("set image");
}

/// The stable and canary Services of `name` and its VirtualService `<name>-vs` (route `primary`, all traffic on
/// stable), with fields another owner would set (gateways, retries, timeout) that Sluice must keep.
pub fn services_and_vs(name: &str) -> String {
    format!(
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
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {{name: {name}-vs}}
spec:
  hosts: [{name}.example.com]
  gateways: [mesh]
  http:
  - name: primary
    retries: {{attempts: 3, perTryTimeout: 2s, retryOn: 5xx}}
    timeout: 10s
    route:
    - destination: {{host: {name}-stable}}
      weight: 100
    - destination: {{host: {name}-canary}}
      weight: 0
"
    )
}

/// The pod-template hash a Service's selector carries, if the Service exists and has one.
pub async fn selector_hash(ns: &TestNamespace, svc: &str) -> Option<String> {
    let api: Api<k8s_openapi::api::core::v1::Service> = ns.api();
    api.get(svc)
        .await
        .ok()?
        .spec?
        .selector?
        .get("rollouts-pod-template-hash")
        .cloned()
}

/// Polls until the Service selects `hash`; panics after `secs`.
pub async fn wait_selector(ns: &TestNamespace, svc: &str, hash: &str, secs: u64) {
    crate::cluster::wait_for(
        &format!("service {svc} to select {hash}"),
        Duration::from_secs(secs),
        || async {
            let got = selector_hash(ns, svc).await;
            if got.as_deref() == Some(hash) {
                Ok(())
            } else {
                Err(anyhow::anyhow!("it selects {got:?}"))
            }
        },
    )
    .await
    .unwrap();
}

/// A canary Rollout of `replicas` running `image`, with the given canary strategy (YAML indented by six).
pub fn canary_rollout_yaml(name: &str, replicas: i32, image: &str, canary: &str) -> String {
    rollout_with_strategy(name, replicas, image, "canary", canary)
}

/// A blue-green Rollout of `replicas` pods labelled `app: <name>`; `blue_green` is the indented body of
/// `strategy.blueGreen`.
pub fn blue_green_rollout_yaml(name: &str, replicas: i32, image: &str, blue_green: &str) -> String {
    rollout_with_strategy(name, replicas, image, "blueGreen", blue_green)
}

/// The Services `<name>-active` and `<name>-preview`, both selecting every pod of the app.
pub fn blue_green_services(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata: {{name: {name}-active}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {name}-preview}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080}}]
"
    )
}

fn rollout_with_strategy(name: &str, replicas: i32, image: &str, kind: &str, body: &str) -> String {
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
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: {image}
  strategy:
    {kind}:
{body}"
    )
}

/// The Istio VirtualServices of a namespace, as dynamic objects (the Istio CRDs the harness installs).
pub fn virtual_services(client: &kube::Client, namespace: &str) -> kube::Api<kube::api::DynamicObject> {
    let gvk = kube::api::GroupVersionKind::gvk("networking.istio.io", "v1alpha3", "VirtualService");
    let resource = kube::api::ApiResource::from_gvk_with_plural(&gvk, "virtualservices");
    kube::Api::namespaced_with(client.clone(), namespace, &resource)
}

impl TestNamespace {
    /// The VirtualServices of this namespace.
    pub fn virtual_services(&self) -> kube::Api<kube::api::DynamicObject> {
        virtual_services(&self.client, &self.name)
    }
}

/// A canary strategy routed by Istio through `<name>-vs` (route `primary`) between `<name>-stable` and
/// `<name>-canary`, with the steps given as YAML list items.
pub fn istio_strategy(name: &str, steps: &str) -> String {
    format!(
        "      canaryService: {name}-canary
      stableService: {name}-stable
      trafficRouting:
        istio:
          virtualService:
            name: {name}-vs
            routes: [primary]
      steps:
{steps}"
    )
}

/// The stable and canary Services of `name`, and a stable Ingress `ingress` sending `host` to the stable
/// Service, with fields other owners set (labels, annotations, TLS, a default backend, a path to another
/// Service, a rule of another host) that the canary Ingress copies or leaves out as upstream does.
pub fn services_and_ingress(name: &str, ingress: &str, host: &str) -> String {
    format!(
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
{}",
        ingress_yaml(name, ingress, host)
    )
}

/// The stable Ingress `ingress` of `name` alone (see [`services_and_ingress`]).
pub fn ingress_yaml(name: &str, ingress: &str, host: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {ingress}
  labels: {{team: payments}}
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /
spec:
  ingressClassName: nginx
  defaultBackend:
    service: {{name: fallback, port: {{number: 80}}}}
  tls:
  - hosts: [{host}]
    secretName: {ingress}-tls
  rules:
  - host: {host}
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {{name: {name}-stable, port: {{number: 80}}}}
      - path: /static
        pathType: Prefix
        backend:
          service: {{name: cdn, port: {{name: http}}}}
  - host: admin.{host}
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {{name: admin, port: {{number: 80}}}}
"
    )
}

/// A canary strategy routed by NGINX through `ingresses` (the indented `stableIngress(es)` line) between
/// `<name>-stable` and `<name>-canary`, with extra canary annotations of both kinds and maxTrafficWeight 100.
pub fn nginx_strategy(name: &str, ingresses: &str, steps: &str) -> String {
    format!(
        "      canaryService: {name}-canary
      stableService: {name}-stable
      trafficRouting:
        maxTrafficWeight: 100
        nginx:
{ingresses}
          additionalIngressAnnotations:
            canary-by-header: X-Canary
            canary-by-header-value: \"yes\"
          canaryIngressAnnotations:
            example.com/release-train: blue
      steps:
{steps}"
    )
}
