//! The Istio router of a Rollout: its VirtualServices, each with the split and routes the spec gives.

use kube::ResourceExt;
use sluice_crds::rollout::{IstioTrafficRouting, IstioVirtualService, Rollout};
use sluice_traffic::istio::{
    HostSplit, IstioRouter, RouteSelector, Split, SubsetSplit, TcpMatch, TlsMatch, VirtualServiceRef,
    virtual_service_target,
};

/// The Istio router for `ro`'s `trafficRouting.istio`.
pub fn router(ro: &Rollout, istio: &IstioTrafficRouting, version: &str) -> IstioRouter {
    let ns = ro.namespace().unwrap_or_default();
    let split = split(ro, istio);
    let virtual_services = istio
        .virtual_service
        .iter()
        .chain(istio.virtual_services.iter().flatten())
        .map(|vs| {
            let (name, vs_ns) = super::super::drift::istio_ref(vs.name.as_deref().unwrap_or_default(), &ns);
            VirtualServiceRef {
                target: virtual_service_target(version, &vs_ns, &name),
                split: split.clone(),
                routes: routes(vs),
            }
        })
        .collect();
    IstioRouter {
        virtual_services,
        managed_routes: super::managed_names(ro),
    }
}

/// Subsets of the DestinationRule when one is named, else the canary and stable Services.
fn split(ro: &Rollout, istio: &IstioTrafficRouting) -> Split {
    let canary = ro.spec.strategy.canary.clone().unwrap_or_default();
    match istio.destination_rule.clone() {
        Some(dr) => Split::Subset(SubsetSplit {
            host: None,
            canary_subset: dr.canary_subset_name,
            stable_subset: dr.stable_subset_name,
        }),
        None => Split::Host(HostSplit {
            canary_service: canary.canary_service.unwrap_or_default(),
            stable_service: canary.stable_service.unwrap_or_default(),
        }),
    }
}

fn routes(vs: &IstioVirtualService) -> RouteSelector {
    RouteSelector {
        http: vs.routes.clone(),
        tls: vs
            .tls_routes
            .iter()
            .flatten()
            .map(|t| TlsMatch {
                port: t.port,
                sni_hosts: t.sni_hosts.clone().unwrap_or_default(),
            })
            .collect(),
        tcp: vs
            .tcp_routes
            .iter()
            .flatten()
            .map(|t| TcpMatch { port: t.port })
            .collect(),
    }
}
