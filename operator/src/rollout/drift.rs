//! The objects a Rollout steers besides its ReplicaSets: its Services, its traffic routers' objects and its Istio
//! DestinationRule. They are watched, so that when another client resets a weight, a subset or a selector, the
//! Rollouts naming the object are reconciled at once and put it back. Services are cached, trimmed to their
//! selector and annotations, and so are the routers' objects and DestinationRules, managed fields and
//! last-applied copies dropped ([`RoutedCaches`]): a reconcile reads what it observes from the caches.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::{
    api::core::v1::Service, apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, ResourceExt,
    api::{ApiResource, DynamicObject, GroupVersionKind},
    runtime::{WatchStreamExt, reflector, reflector::ObjectRef, reflector::Store, watcher},
};
use sluice_crds::rollout::Rollout;

use super::routing::{self, RouterConfig};
use crate::packed::Packed;

/// A kind of steered object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A core Service.
    Service,
    /// An Istio DestinationRule.
    DestinationRule,
    /// An object a traffic router reads and writes: (API group, plural).
    Routed(String, String),
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

/// Every (kind, namespace, name) the Rollout steers: its Services, its routers' objects and its
/// DestinationRule.
pub fn steered(ro: &Rollout, config: &RouterConfig) -> Vec<(Kind, String, String)> {
    let ns = ro.namespace().unwrap_or_default();
    let (stable, canary) = services(ro);
    let mut out: Vec<_> = [stable, canary]
        .into_iter()
        .flatten()
        .map(|s| (Kind::Service, ns.clone(), s))
        .collect();
    for router in routing::routers(ro, config) {
        out.extend(
            router
                .targets()
                .into_iter()
                .map(|t| (Kind::Routed(t.group, t.plural), t.namespace, t.name)),
        );
    }
    let dr = ro
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref())
        .and_then(|t| t.istio.as_ref())
        .and_then(|i| i.destination_rule.as_ref());
    if let Some(dr) = dr {
        let (name, dr_ns) = istio_ref(&dr.name, &ns);
        out.push((Kind::DestinationRule, dr_ns, name));
    }
    out
}

/// The Rollouts in `store` that steer the object. Only those whose strategy may name it are decoded.
pub fn rollouts_steering(
    store: &Store<Packed<Rollout>>,
    config: &RouterConfig,
    (kind, ns, name): (&Kind, &str, &str),
) -> Vec<ObjectRef<Packed<Rollout>>> {
    store
        .state()
        .into_iter()
        .filter(|ro| ro.may_name(name))
        .filter(|ro| {
            ro.unpack().is_ok_and(|ro| {
                steered(&ro, config)
                    .iter()
                    .any(|(k, n, o)| k == kind && n == ns && o == name)
            })
        })
        .map(|ro| ObjectRef::from_obj(&*ro))
        .collect()
}

/// The caches of the routers' kinds and of DestinationRules, by (API group, plural), each added when its watch
/// starts (a custom kind once its CRD is established).
#[derive(Clone, Default)]
pub struct RoutedCaches(Arc<Mutex<ByKind>>);

/// (API group, plural) → the kind's resource, the namespace watched (all when `None`) and the cache.
type ByKind = HashMap<(String, String), (ApiResource, Option<String>, Store<DynamicObject>)>;

impl RoutedCaches {
    /// The cached object: `None` when no synced cache of the kind holds that namespace (read it from the API
    /// server: a Rollout may name a VirtualService of another namespace than the one watched), else whether
    /// it exists.
    pub fn get(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Option<Arc<DynamicObject>>> {
        let kind = (group.to_string(), plural.to_string());
        let (resource, watched, store) = self.0.lock().ok()?.get(&kind)?.clone();
        if watched.is_some_and(|w| w != namespace) {
            return None;
        }
        store.wait_until_ready().now_or_never()?.ok()?;
        let key = ObjectRef::new_with(name, resource).within(namespace);
        Some(store.get(&key))
    }

    fn insert(&self, resource: &ApiResource, namespace: Option<String>, store: Store<DynamicObject>) {
        if let Ok(mut caches) = self.0.lock() {
            let key = (resource.group.clone(), resource.plural.clone());
            caches.insert(key, (resource.clone(), namespace, store));
        }
    }
}

/// The name of the Service cache in readiness reports.
pub const SERVICES_CACHE: &str = "services";

/// What a reconcile reads of a Service: its name, annotations (managed-by) and selector.
fn trim_service(svc: &mut Service) {
    crate::ready::lean(svc);
    svc.spec = svc
        .spec
        .take()
        .map(|spec| k8s_openapi::api::core::v1::ServiceSpec {
            selector: spec.selector,
            ..Default::default()
        });
    svc.status = None;
}

/// The Services' cache (trimmed by [`trim_service`]) and the Services that changed.
fn services_cache(
    client: &Client,
    scope: &crate::scope::Scope,
    gate: &crate::ready::Gate,
) -> (Store<Service>, futures::stream::BoxStream<'static, Touched>) {
    let (store, writer) = reflector::store();
    let events = watcher(scope.api::<Service>(client), watcher::Config::default())
        .default_backoff()
        .modify(trim_service)
        .reflect(writer);
    let touched = gate
        .track(SERVICES_CACHE, events)
        .touched_objects()
        .filter_map(|r| async move { r.ok().map(|m| (Kind::Service, m.namespace(), m.name_any())) })
        .boxed();
    (store, touched)
}

/// Reconcile triggers for the Rollouts whose steered objects changed, and the cache of Services. The routers'
/// custom kinds (and Istio's DestinationRule) are watched once their CRDs are established, so a cluster
/// without them costs nothing.
pub fn triggers(
    client: Client,
    scope: &crate::scope::Scope,
    config: RouterConfig,
    rollouts: Store<Packed<Rollout>>,
    (gate, caches): (&crate::ready::Gate, &RoutedCaches),
) -> (
    Store<Service>,
    impl Stream<Item = ObjectRef<Packed<Rollout>>> + Send + 'static,
) {
    let (services, service_events) = services_cache(&client, scope, gate);
    let dr_gvk = GroupVersionKind::gvk("networking.istio.io", &config.istio_version, "DestinationRule");
    let dr = custom_events(
        client.clone(),
        scope.clone(),
        Kind::DestinationRule,
        ApiResource::from_gvk_with_plural(&dr_gvk, "destinationrules"),
        caches.clone(),
    );
    let mut streams = vec![service_events, dr];
    for watched in routing::watched_kinds(&config) {
        let kind = Kind::Routed(watched.resource.group.clone(), watched.resource.plural.clone());
        streams.push(if watched.custom {
            custom_events(
                client.clone(),
                scope.clone(),
                kind,
                watched.resource,
                caches.clone(),
            )
        } else {
            events(
                client.clone(),
                scope.namespace.clone(),
                kind,
                watched.resource,
                caches,
            )
        });
    }
    let steered = futures::stream::select_all(streams).flat_map(move |(kind, ns, name)| {
        let ns = ns.unwrap_or_default();
        futures::stream::iter(rollouts_steering(&rollouts, &config, (&kind, &ns, &name)))
    });
    (services, steered)
}

type Touched = (Kind, Option<String>, String);

/// How often namespaced mode asks whether a custom kind is served yet.
const PROBE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// The changes of a custom kind, from when its CRD is established (or, in namespaced mode, served).
fn custom_events(
    client: Client,
    scope: crate::scope::Scope,
    kind: Kind,
    resource: ApiResource,
    caches: RoutedCaches,
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
                            tracing::warn!(error = %e, kind = %resource.kind, namespace = %ns, "cannot list the kind in the namespace; asking again every 10 s");
                        }
                        Err(_) => {}
                    }
                    tokio::time::sleep(PROBE_INTERVAL).await;
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
            events(client, namespace, kind.clone(), resource, &caches)
        })
        .boxed()
}

/// The changes of a kind the API server serves, its objects kept in a cache of `caches`.
fn events(
    client: Client,
    namespace: Option<String>,
    kind: Kind,
    resource: ApiResource,
    caches: &RoutedCaches,
) -> futures::stream::BoxStream<'static, Touched> {
    let api: Api<DynamicObject> = match &namespace {
        Some(ns) => Api::namespaced_with(client, ns, &resource),
        None => Api::all_with(client, &resource),
    };
    let writer = reflector::store::Writer::new(resource.clone());
    caches.insert(&resource, namespace.clone(), writer.as_reader());
    watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(crate::ready::lean)
        .reflect(writer)
        .touched_objects()
        .filter_map(move |r| {
            let kind = kind.clone();
            async move { r.ok().map(|m| (kind, m.namespace(), m.name_any())) }
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_routed_object_is_read_from_a_synced_cache_of_its_namespace_and_otherwise_from_the_server() {
        let gvk = GroupVersionKind::gvk("networking.istio.io", "v1beta1", "VirtualService");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "virtualservices");
        let caches = RoutedCaches::default();
        let get = |ns: &str, name: &str| {
            caches
                .get("networking.istio.io", "virtualservices", ns, name)
                .map(|o| o.is_some())
        };
        assert_eq!(get("shop", "web"), None, "no cache of the kind");
        let mut writer = reflector::store::Writer::new(resource.clone());
        caches.insert(&resource, Some("shop".into()), writer.as_reader());
        assert_eq!(get("shop", "web"), None, "not synced yet");
        let mut vs = DynamicObject::new("web", &resource).within("shop");
        vs.metadata.resource_version = Some("1".into());
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitApply(vs));
        writer.apply_watcher_event(&watcher::Event::InitDone);
        assert_eq!(get("shop", "web"), Some(true));
        assert_eq!(get("shop", "gone"), Some(false));
        assert_eq!(
            get("mesh", "edge"),
            None,
            "another namespace than the one watched"
        );
    }

    #[test]
    fn a_cached_service_keeps_its_selector_and_annotations_only() {
        let mut svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "shop",
                         "annotations": {"argo-rollouts.argoproj.io/managed-by-rollouts": "web",
                                         "kubectl.kubernetes.io/last-applied-configuration": "{}"},
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"selector": {"app": "web", "rollouts-pod-template-hash": "abc"},
                     "ports": [{"port": 80}], "clusterIP": "10.0.0.1"},
            "status": {"loadBalancer": {}}
        }))
        .unwrap();
        trim_service(&mut svc);
        let v = serde_json::to_value(&svc).unwrap();
        assert_eq!(
            v["metadata"]["annotations"],
            serde_json::json!({"argo-rollouts.argoproj.io/managed-by-rollouts": "web"})
        );
        assert!(
            v["metadata"]["managedFields"]
                .as_array()
                .is_none_or(|m| m.is_empty())
        );
        assert_eq!(
            v["spec"],
            serde_json::json!({"selector": {"app": "web", "rollouts-pod-template-hash": "abc"}})
        );
        assert!(v.get("status").is_none());
    }

    fn config() -> RouterConfig {
        RouterConfig {
            istio_version: "v1beta1".into(),
            smi_version: Default::default(),
        }
    }

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
        let vs = || Kind::Routed("networking.istio.io".into(), "virtualservices".into());
        assert_eq!(
            steered(&ro, &config()),
            vec![
                s(Kind::Service, "shop", "app-stable"),
                s(Kind::Service, "shop", "app-canary"),
                s(vs(), "shop", "app-vs"),
                s(vs(), "gateways", "edge"),
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
        let ingress = Kind::Routed("networking.k8s.io".into(), "ingresses".into());
        let names: Vec<String> = steered(&ro, &config())
            .into_iter()
            .filter(|(k, _, _)| *k == ingress)
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
        assert_eq!(steered(&ro, &config()).len(), 2);
        let basic = rollout(serde_json::json!({"canary": {"steps": [{"setWeight": 20}]}}));
        assert!(steered(&basic, &config()).is_empty());
    }
}
