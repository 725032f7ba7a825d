//! The NGINX router of a Rollout: its stable Ingresses, and how their canary Ingresses are made.

use kube::ResourceExt;
use sluice_crds::rollout::{NginxTrafficRouting, Rollout};
use sluice_traffic::nginx::{CanaryIngressSpec, DEFAULT_ANNOTATION_PREFIX, NginxRouter, Owner};

/// The NGINX router for `ro`'s `trafficRouting.nginx`.
pub fn router(ro: &Rollout, nginx: &NginxTrafficRouting) -> NginxRouter {
    let canary = ro.spec.strategy.canary.clone().unwrap_or_default();
    let stable_ingresses = nginx
        .stable_ingress
        .iter()
        .filter(|s| !s.is_empty())
        .chain(nginx.stable_ingresses.iter().flatten())
        .cloned()
        .collect();
    let annotation_prefix = nginx
        .annotation_prefix
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| DEFAULT_ANNOTATION_PREFIX.to_string());
    NginxRouter {
        namespace: ro.namespace().unwrap_or_default(),
        stable_ingresses,
        spec: CanaryIngressSpec {
            owner: Owner {
                name: ro.name_any(),
                uid: ro.uid().unwrap_or_default(),
            },
            canary_service: canary.canary_service.unwrap_or_default(),
            stable_service: canary.stable_service.unwrap_or_default(),
            annotation_prefix,
            additional_ingress_annotations: nginx.additional_ingress_annotations.clone().unwrap_or_default(),
            canary_ingress_annotations: nginx.canary_ingress_annotations.clone().unwrap_or_default(),
            max_traffic_weight: canary.traffic_routing.and_then(|t| t.max_traffic_weight),
        },
    }
}
