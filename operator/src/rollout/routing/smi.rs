//! The SMI router of a Rollout: its TrafficSplit, named and rooted as upstream defaults them.

use kube::ResourceExt;
use sluice_crds::rollout::{Rollout, SmiTrafficRouting};
use sluice_traffic::smi::{Owner, SmiRouter, SmiVersion};

/// The SMI router for `ro`'s `trafficRouting.smi`: the TrafficSplit is the Rollout's name unless named, and
/// its root Service the stable Service unless given.
pub fn router(ro: &Rollout, smi: &SmiTrafficRouting, version: SmiVersion) -> SmiRouter {
    let canary = ro.spec.strategy.canary.clone().unwrap_or_default();
    let stable_service = canary.stable_service.unwrap_or_default();
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    SmiRouter {
        version,
        namespace: ro.namespace().unwrap_or_default(),
        traffic_split: non_empty(&smi.traffic_split_name).unwrap_or_else(|| ro.name_any()),
        root_service: non_empty(&smi.root_service).unwrap_or_else(|| stable_service.clone()),
        canary_service: canary.canary_service.unwrap_or_default(),
        stable_service,
        owner: Owner {
            name: ro.name_any(),
            uid: ro.uid().unwrap_or_default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(smi: serde_json::Value) -> Rollout {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-1"},
            "spec": {"strategy": {"canary": {
                "canaryService": "web-canary", "stableService": "web-stable",
                "trafficRouting": {"smi": smi},
            }}}
        }))
        .unwrap()
    }

    fn built(smi: serde_json::Value, version: SmiVersion) -> SmiRouter {
        let ro = rollout(smi);
        let config = crate::rollout::routing::RouterConfig {
            istio_version: "v1alpha3".into(),
            smi_version: version,
        };
        let routers = crate::rollout::routing::routers(&ro, &config);
        assert_eq!(routers.len(), 1);
        assert_eq!(routers[0].name(), "smi");
        let spec = ro.spec.strategy.canary.as_ref().unwrap();
        router(
            &ro,
            spec.traffic_routing.as_ref().unwrap().smi.as_ref().unwrap(),
            version,
        )
    }

    #[test]
    fn names_default_to_the_rollout_and_the_stable_service_as_upstream() {
        let r = built(serde_json::json!({}), SmiVersion::V1alpha1);
        assert_eq!(
            r,
            SmiRouter {
                version: SmiVersion::V1alpha1,
                namespace: "shop".into(),
                traffic_split: "web".into(),
                root_service: "web-stable".into(),
                canary_service: "web-canary".into(),
                stable_service: "web-stable".into(),
                owner: Owner {
                    name: "web".into(),
                    uid: "u-1".into()
                },
            }
        );
        let empty = built(
            serde_json::json!({"rootService": "", "trafficSplitName": ""}),
            SmiVersion::V1alpha1,
        );
        assert_eq!(
            (empty.traffic_split.as_str(), empty.root_service.as_str()),
            ("web", "web-stable")
        );
    }

    #[test]
    fn the_spec_names_the_split_and_root_service_and_the_flag_its_version() {
        let r = built(
            serde_json::json!({"rootService": "web", "trafficSplitName": "web-split"}),
            SmiVersion::V1alpha3,
        );
        assert_eq!(
            (r.traffic_split.as_str(), r.root_service.as_str(), r.version),
            ("web-split", "web", SmiVersion::V1alpha3)
        );
    }
}
