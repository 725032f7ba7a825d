//! The traffic routers of a Rollout, built from its spec, and the thin I/O that reads their objects and sends
//! their writes. Each router is a pure [`Router`] (in the `sluice-traffic` crate); this module only names
//! which ones a Rollout uses and drives them: observe → apply → read back → verify.

mod io;
mod istio;
mod nginx;

use sluice_crds::rollout::Rollout;
use sluice_traffic::Router;

pub use io::{ClusterObjects, apply_weight, change_managed_routes, observe};

/// What building a router needs beyond the Rollout.
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// API version of Istio objects (`--istio-api-version`).
    pub istio_version: String,
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
    if let Some(nginx) = &routing.nginx {
        routers.push(Box::new(nginx::router(ro, nginx)));
    }
    routers
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
