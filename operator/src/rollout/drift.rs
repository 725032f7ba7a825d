//! The objects a Rollout steers besides its ReplicaSets: its Services, Istio VirtualServices and
//! DestinationRule, and NGINX's stable and canary Ingresses. They are watched metadata-only (nothing is
//! cached), so that when another client resets a weight, a subset or a selector, or changes a stable
//! Ingress, the Rollouts naming the object are reconciled at once and put it back (or follow).

use futures::{Stream, StreamExt};
use k8s_openapi::{
    api::{core::v1::Service, networking::v1::Ingress},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DynamicObject, GroupVersionKind, PartialObjectMeta},
    runtime::{WatchStreamExt, reflector::ObjectRef, reflector::Store, watcher},
};
use sluice_crds::rollout::Rollout;

/// A kind of steered object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A core Service.
    Service,
    /// An Istio VirtualService.
    VirtualService,
    /// An Istio DestinationRule.
    DestinationRule,
    /// An Ingress: a stable one the canary Ingress follows, or the canary Ingress itself.
    Ingress,
}

/// The (stable, canary) Services: a blue-green's active Service plays the stable one's part, its preview
/// Service the canary one's.
pub fn services(ro: &Rollout) -> (Option<String>, Option<String>) {
    match (
        ro.spec.strategy.canary.as_ref(),
        ro.spec.strategy.blue_green.as_ref(),
    ) {
        (Some(c), _) => (c.stable_service.clone(), c.canary_service.clone()),
        (None, Some(bg)) => (Some(bg.active_service.clone()), bg.preview_service.clone()),
        (None, None) => (None, None),
    }
}

/// Splits an Istio reference `name` or `name.namespace`; a bare name lives in the Rollout's namespace.
pub fn istio_ref(reference: &str, rollout_namespace: &str) -> (String, String) {
    match reference.split_once('.') {
        Some((name, ns)) => (name.to_string(), ns.to_string()),
        None => (reference.to_string(), rollout_namespace.to_string()),
    }
}

/// Every (kind, namespace, name) the Rollout steers.
pub fn steered(ro: &Rollout) -> Vec<(Kind, String, String)> {
    let ns = ro.namespace().unwrap_or_default();
    let (stable, canary) = services(ro);
    let mut out: Vec<_> = [stable, canary]
        .into_iter()
        .flatten()
        .map(|s| (Kind::Service, ns.clone(), s))
        .collect();
    let routing = ro
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref());
    if let Some(nginx) = routing.and_then(|t| t.nginx.as_ref()) {
        let stables = nginx
            .stable_ingress
            .iter()
            .chain(nginx.stable_ingresses.iter().flatten());
        for stable in stables.filter(|s| !s.is_empty()) {
            let canary = sluice_traffic::nginx::canary_ingress_name(&ro.name_any(), stable);
            out.push((Kind::Ingress, ns.clone(), stable.clone()));
            out.push((Kind::Ingress, ns.clone(), canary));
        }
    }
    let istio = routing.and_then(|t| t.istio.as_ref());
    if let Some(istio) = istio {
        for vs in istio
            .virtual_service
            .iter()
            .chain(istio.virtual_services.iter().flatten())
        {
            let (name, vs_ns) = istio_ref(vs.name.as_deref().unwrap_or_default(), &ns);
            out.push((Kind::VirtualService, vs_ns, name));
        }
        if let Some(dr) = &istio.destination_rule {
            let (name, dr_ns) = istio_ref(&dr.name, &ns);
            out.push((Kind::DestinationRule, dr_ns, name));
        }
    }
    out
}

/// The Rollouts in `store` that steer the object.
pub fn rollouts_steering(
    store: &Store<Rollout>,
    kind: Kind,
    ns: &str,
    name: &str,
) -> Vec<ObjectRef<Rollout>> {
    store
        .state()
        .into_iter()
        .filter(|ro| {
            steered(ro)
                .iter()
                .any(|(k, n, o)| *k == kind && n == ns && o == name)
        })
        .map(|ro| ObjectRef::from_obj(&*ro))
        .collect()
}

/// Reconcile triggers for the Rollouts whose steered objects changed. Istio's kinds are watched once their
/// CRDs are established, so a cluster without Istio costs nothing.
pub fn triggers(
    client: Client,
    scope: &crate::scope::Scope,
    istio_version: String,
    rollouts: Store<Rollout>,
) -> impl Stream<Item = ObjectRef<Rollout>> + Send + 'static {
    let services: Api<PartialObjectMeta<Service>> = scope.api(&client);
    let service_events = watcher(services, watcher::Config::default())
        .default_backoff()
        .touched_objects()
        .filter_map(|r| async move { r.ok().map(|m| (Kind::Service, m.namespace(), m.name_any())) })
        .boxed();
    // Ingress is a built-in kind: watched from the start, like Services.
    let ingresses: Api<PartialObjectMeta<Ingress>> = scope.api(&client);
    let ingress_events = watcher(ingresses, watcher::Config::default())
        .default_backoff()
        .touched_objects()
        .filter_map(|r| async move { r.ok().map(|m| (Kind::Ingress, m.namespace(), m.name_any())) })
        .boxed();
    let istio = [
        (Kind::VirtualService, "VirtualService", "virtualservices"),
        (Kind::DestinationRule, "DestinationRule", "destinationrules"),
    ]
    .map(|(kind, name, plural)| {
        let gvk = GroupVersionKind::gvk("networking.istio.io", &istio_version, name);
        let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
        istio_events(client.clone(), scope.clone(), kind, resource)
    });
    let [vs, dr] = istio;
    futures::stream::select_all([service_events, ingress_events, vs, dr]).flat_map(move |(kind, ns, name)| {
        let ns = ns.unwrap_or_default();
        futures::stream::iter(rollouts_steering(&rollouts, kind, &ns, &name))
    })
}

type Touched = (Kind, Option<String>, String);

/// How often namespaced mode asks whether an Istio kind is served yet.
const ISTIO_PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

fn istio_events(
    client: Client,
    scope: crate::scope::Scope,
    kind: Kind,
    resource: ApiResource,
) -> futures::stream::BoxStream<'static, Touched> {
    let crd = format!("{}.{}", resource.plural, resource.group);
    let namespace = scope.namespace.clone();
    let established = async move {
        match (&scope.namespace, scope.namespaced) {
            // May not read CRDs: asks the namespace until the kind answers there.
            (Some(ns), true) => {
                let mut warned = false;
                loop {
                    match crate::scope::served_in(&client, ns, &resource).await {
                        Ok(true) => break,
                        Ok(false) => {}
                        Err(e) if !warned => {
                            warned = true;
                            tracing::warn!(error = %e, kind = %resource.kind, namespace = %ns, "cannot list Istio objects in the namespace; asking again every 10 s");
                        }
                        Err(_) => {}
                    }
                    tokio::time::sleep(ISTIO_PROBE_INTERVAL).await;
                }
            }
            _ => {
                let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
                let cond = kube::runtime::wait::conditions::is_crd_established();
                kube::runtime::wait::await_condition(crds, &crd, cond)
                    .await
                    .ok()?;
            }
        }
        Some((client, namespace, resource))
    };
    futures::stream::once(established)
        .filter_map(|ready| async move { ready })
        .flat_map(move |(client, namespace, resource)| {
            let api: Api<PartialObjectMeta<DynamicObject>> = match &namespace {
                Some(ns) => Api::namespaced_with(client, ns, &resource),
                None => Api::all_with(client, &resource),
            };
            watcher(api, watcher::Config::default())
                .default_backoff()
                .touched_objects()
                .filter_map(move |r| async move { r.ok().map(|m| (kind, m.namespace(), m.name_any())) })
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(strategy: serde_json::Value) -> Rollout {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "app", "namespace": "shop"},
            "spec": {"strategy": strategy}
        }))
        .unwrap()
    }

    #[test]
    fn a_canary_steers_its_services_virtual_services_and_destination_rule() {
        let ro = rollout(serde_json::json!({"canary": {
            "stableService": "app-stable", "canaryService": "app-canary",
            "trafficRouting": {"istio": {
                "virtualService": {"name": "app-vs"},
                "virtualServices": [{"name": "edge.gateways"}],
                "destinationRule": {"name": "app-dr", "canarySubsetName": "c", "stableSubsetName": "s"}
            }}
        }}));
        let s = |k, n: &str, o: &str| (k, n.to_string(), o.to_string());
        assert_eq!(
            steered(&ro),
            vec![
                s(Kind::Service, "shop", "app-stable"),
                s(Kind::Service, "shop", "app-canary"),
                s(Kind::VirtualService, "shop", "app-vs"),
                s(Kind::VirtualService, "gateways", "edge"),
                s(Kind::DestinationRule, "shop", "app-dr"),
            ]
        );
    }

    #[test]
    fn an_nginx_canary_steers_its_stable_ingresses_and_their_canary_ingresses() {
        let ro = rollout(serde_json::json!({"canary": {
            "stableService": "app-stable", "canaryService": "app-canary",
            "trafficRouting": {"nginx": {"stableIngresses": ["public", "internal"]}}
        }}));
        let names: Vec<String> = steered(&ro)
            .into_iter()
            .filter(|(k, _, _)| *k == Kind::Ingress)
            .map(|(_, ns, name)| format!("{ns}/{name}"))
            .collect();
        assert_eq!(
            names,
            [
                "shop/public",
                "shop/app-public-canary",
                "shop/internal",
                "shop/app-internal-canary"
            ]
        );
    }

    #[test]
    fn a_blue_green_steers_its_active_and_preview_services() {
        let ro = rollout(serde_json::json!({"blueGreen": {"activeService": "a", "previewService": "p"}}));
        assert_eq!(services(&ro), (Some("a".into()), Some("p".into())));
        assert_eq!(steered(&ro).len(), 2);
        let basic = rollout(serde_json::json!({"canary": {"steps": [{"setWeight": 20}]}}));
        assert!(steered(&basic).is_empty());
    }
}
