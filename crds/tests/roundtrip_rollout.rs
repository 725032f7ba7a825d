//! Round trips of Rollout fixtures: every field survives deserialization and serialization.

mod common;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sluice_crds::rollout::Rollout;

#[test]
fn canary_rollout_with_every_field_and_step_kind() {
    let docs = common::documents("rollout-canary.yaml");
    let ro: Rollout = common::assert_roundtrip(&docs[0]);
    let canary = ro.spec.strategy.canary.as_ref().expect("canary");
    let steps = canary.steps.as_ref().expect("steps");
    assert_eq!(steps[0].set_weight, Some(10));
    assert_eq!(
        steps[1].pause.as_ref().unwrap().duration,
        Some(IntOrString::Int(30))
    );
    assert_eq!(
        steps[6].pause.as_ref().unwrap().duration,
        Some(IntOrString::String("1h".into()))
    );
    assert_eq!(
        steps[7].pause.as_ref().unwrap().duration,
        Some(IntOrString::String("45".into()))
    );
    assert_eq!(
        steps[13].pause.as_ref().unwrap().duration,
        None,
        "pause {{}} waits for promote"
    );
    assert_eq!(steps[2].set_canary_scale.as_ref().unwrap().replicas, Some(3));
    assert_eq!(steps[5].set_mirror_route.as_ref().unwrap().percentage, Some(35));
    assert!(steps[9].experiment.is_some() && steps[10].plugin.is_some() && steps[8].analysis.is_some());
    let istio = canary.traffic_routing.as_ref().unwrap().istio.as_ref().unwrap();
    assert_eq!(
        istio.virtual_services.as_ref().unwrap()[0]
            .tls_routes
            .as_ref()
            .unwrap()[0]
            .port,
        Some(443)
    );
    assert_eq!(
        istio.destination_rule.as_ref().unwrap().canary_subset_name,
        "canary"
    );
    assert_eq!(canary.max_surge, Some(IntOrString::String("25%".into())));
    assert_eq!(canary.max_unavailable, Some(IntOrString::Int(0)));
    assert_eq!(canary.analysis.as_ref().unwrap().starting_step, Some(2));
    let status = ro.status.as_ref().expect("status");
    assert_eq!(
        status.observed_generation.as_deref(),
        Some("7"),
        "observedGeneration is a string"
    );
    assert_eq!(status.hpa_replicas, Some(11));
    assert_eq!(status.stable_rs.as_deref(), Some("7d9c8b6f4"));
    assert_eq!(
        status
            .canary
            .as_ref()
            .unwrap()
            .weights
            .as_ref()
            .unwrap()
            .canary
            .weight,
        10
    );
}

#[test]
fn bluegreen_and_workload_ref_rollouts() {
    let docs = common::documents("rollout-bluegreen.yaml");
    let bg: Rollout = common::assert_roundtrip(&docs[0]);
    let strategy = bg.spec.strategy.blue_green.as_ref().expect("blueGreen");
    assert_eq!(strategy.active_service, "storefront-active");
    assert_eq!(strategy.auto_promotion_enabled, Some(false));
    assert!(strategy.pre_promotion_analysis.is_some() && strategy.post_promotion_analysis.is_some());
    assert_eq!(
        bg.status.unwrap().blue_green.unwrap().active_selector.as_deref(),
        Some("5d6f7c8b9")
    );
    let wr: Rollout = common::assert_roundtrip(&docs[1]);
    assert_eq!(
        wr.spec.workload_ref.unwrap().scale_down.as_deref(),
        Some("progressively")
    );
    assert!(wr.spec.template.is_none());
}

#[test]
fn status_uses_upstream_json_names() {
    let docs = common::documents("rollout-canary.yaml");
    let keys = common::key_paths(&docs[0]);
    for k in [
        "status.HPAReplicas",
        "status.stableRS",
        "status.observedGeneration",
        "status.canary.weights.verified",
    ] {
        assert!(keys.contains(k), "fixture lacks {k}");
    }
    let ro: Rollout = serde_json::from_value(docs[0].clone()).unwrap();
    let json = serde_json::to_value(&ro).unwrap();
    assert!(json["status"]["HPAReplicas"].is_number());
    assert!(json["status"]["observedGeneration"].is_string());
}
