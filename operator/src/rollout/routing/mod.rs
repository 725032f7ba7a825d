//! The traffic routers of a Rollout, built from its spec, and the thin I/O that reads their objects and sends
//! their writes. Each router is a pure [`Router`] (in the `sluice-traffic` crate); this module only names
//! which ones a Rollout uses and drives them: observe → apply → read back → verify.

mod gateway;
mod io;
mod istio;
mod nginx;
mod smi;

use sluice_crds::rollout::Rollout;
use sluice_traffic::{Desired, Objects, Router, RouterError, Seen, Target, Write};

pub use io::{CachedObjects, ClusterObjects, apply_weight, change_managed_routes, observe};

/// What building a router needs beyond the Rollout.
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// API version of Istio objects (`--istio-api-version`).
    pub istio_version: String,
    /// API version of SMI TrafficSplits (`--traffic-split-api-version`).
    pub smi_version: sluice_traffic::smi::SmiVersion,
}

/// The routers a Rollout's `trafficRouting` names, in a fixed order.
pub fn routers(ro: &Rollout, config: &RouterConfig) -> Vec<Box<dyn Router>> {
    let Some(routing) = ro
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref())
    else {
        return Vec::new();
    };
    let mut routers: Vec<Box<dyn Router>> = Vec::new();
    if let Some(istio) = &routing.istio {
        routers.push(Box::new(istio::router(ro, istio, &config.istio_version)));
    }
    match gateway::config(ro).map(|c| c.and_then(|c| gateway::router(ro, &c))) {
        Some(Ok(router)) => routers.push(Box::new(router)),
        Some(Err(message)) => routers.push(Box::new(Misconfigured { message })),
        None => {}
    }
    if let Some(smi) = &routing.smi {
        routers.push(Box::new(smi::router(ro, smi, config.smi_version)));
    }
    if let Some(nginx) = &routing.nginx {
        routers.push(Box::new(nginx::router(ro, nginx)));
    }
    routers
}

/// A kind some router reads and writes, watched so that a change by someone else brings its Rollouts back.
pub struct WatchedKind {
    /// The kind.
    pub resource: kube::api::ApiResource,
    /// Whether a CRD defines it (watched once the CRD is established) rather than the API server itself.
    pub custom: bool,
}

/// Every kind the routers use.
pub fn watched_kinds(config: &RouterConfig) -> Vec<WatchedKind> {
    let custom = |(group, version): (&str, &str), (kind, plural): (&str, &str)| {
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        WatchedKind {
            resource: kube::api::ApiResource::from_gvk_with_plural(&gvk, plural),
            custom: true,
        }
    };
    let gateway = "gateway.networking.k8s.io";
    vec![
        custom(
            ("networking.istio.io", &config.istio_version),
            ("VirtualService", "virtualservices"),
        ),
        custom((gateway, "v1"), ("HTTPRoute", "httproutes")),
        custom((gateway, "v1"), ("GRPCRoute", "grpcroutes")),
        custom((gateway, "v1alpha2"), ("TCPRoute", "tcproutes")),
        custom(
            ("split.smi-spec.io", config.smi_version.as_str()),
            ("TrafficSplit", "trafficsplits"),
        ),
        // Served by every API server: watched from the start, like Services.
        WatchedKind {
            custom: false,
            ..custom(("networking.k8s.io", "v1"), ("Ingress", "ingresses"))
        },
    ]
}

/// A router whose config cannot be read: every call fails with the reason, which ends up in the Rollout's
/// status (a typo in the config must stop the rollout, not route nothing).
struct Misconfigured {
    message: String,
}

impl Misconfigured {
    fn error(&self) -> RouterError {
        RouterError::Malformed(self.message.clone())
    }
}

impl Router for Misconfigured {
    fn name(&self) -> &'static str {
        sluice_crds::validate::GATEWAY_API_PLUGIN
    }

    fn targets(&self) -> Vec<Target> {
        Vec::new()
    }

    fn observe(&self, _: &Objects) -> Result<Seen, RouterError> {
        Err(self.error())
    }

    fn apply(&self, _: &Objects, _: &Desired) -> Result<Vec<Write>, RouterError> {
        Err(self.error())
    }

    fn verify(&self, _: &Objects, _: &Desired) -> Result<bool, RouterError> {
        Err(self.error())
    }

    fn reset(&self, _: &Objects) -> Result<Vec<Write>, RouterError> {
        Ok(Vec::new())
    }
}

/// trafficRouting.managedRoutes, in order.
pub fn managed_names(ro: &Rollout) -> Vec<String> {
    ro.spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref())
        .and_then(|t| t.managed_routes.as_ref())
        .map(|m| m.iter().map(|r| r.name.clone()).collect())
        .unwrap_or_default()
}

/// The router's form of a Rollout's string match (exact, then prefix, then regex).
fn string_match(m: &sluice_crds::rollout::StringMatch) -> Option<sluice_traffic::StringMatch> {
    if let Some(v) = &m.exact {
        return Some(sluice_traffic::StringMatch::Exact(v.clone()));
    }
    if let Some(v) = &m.prefix {
        return Some(sluice_traffic::StringMatch::Prefix(v.clone()));
    }
    m.regex.clone().map(sluice_traffic::StringMatch::Regex)
}

/// The router's form of a setHeaderRoute match; one without a value matches nothing and is dropped.
fn header_match(m: &sluice_crds::rollout::HeaderRoutingMatch) -> Option<sluice_traffic::HeaderMatch> {
    let value = string_match(m.header_value.as_ref()?)?;
    Some(sluice_traffic::HeaderMatch {
        header_name: m.header_name.clone(),
        value,
    })
}

/// The router's form of a setMirrorRoute match.
fn mirror_match(m: &sluice_crds::rollout::RouteMatch) -> sluice_traffic::MirrorMatch {
    sluice_traffic::MirrorMatch {
        method: m.method.as_ref().and_then(string_match),
        path: m.path.as_ref().and_then(string_match),
        headers: m
            .headers
            .iter()
            .flatten()
            .filter_map(|(h, v)| {
                string_match(v).map(|value| sluice_traffic::HeaderMatch {
                    header_name: h.clone(),
                    value,
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod io_tests;
