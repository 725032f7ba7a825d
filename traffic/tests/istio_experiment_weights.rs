//! Experiment destinations on a VirtualService: a weighted experiment template's Service gets its share while
//! the step runs (appended when missing) and is removed afterwards; the stable gets the rest.

mod common;

use common::{apply, count_ops, host_split, single_route, subset_split, yaml};
use serde_json::{Value, json};
use sluice_traffic::{
    Additional, Desired, Objects, Router,
    istio::{
        IstioRouter, VirtualServiceRef, verify_with_additional, virtual_service_target,
        weight_patch_with_additional,
    },
};

const SINGLE_HTTP: &str = r#"
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  http:
  - route:
    - destination: {host: web-stable}
      weight: 90
    - destination: {host: web-canary}
      weight: 10
"#;

fn exp(service: &str, weight: i32) -> Additional {
    Additional {
        service: service.into(),
        pod_template_hash: "h1".into(),
        weight,
    }
}

fn route(doc: &Value) -> Vec<(String, i64)> {
    doc["spec"]["http"][0]["route"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["destination"]["host"].as_str().unwrap().to_string(),
                d["weight"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    list.iter().map(|(h, w)| (h.to_string(), *w)).collect()
}

/// (canary weight, experiment destinations, the route's destinations after).
type Case = (i32, Vec<Additional>, Vec<(&'static str, i64)>);

#[test]
fn experiment_services_get_their_weight_and_the_stable_the_rest() {
    let vs = yaml(SINGLE_HTTP);
    let cases: Vec<Case> = vec![
        (
            10,
            vec![exp("web-exp-canary", 5)],
            vec![("web-stable", 85), ("web-canary", 10), ("web-exp-canary", 5)],
        ),
        (
            10,
            vec![exp("web-exp-canary", 5), exp("web-exp-baseline", 5)],
            vec![
                ("web-stable", 80),
                ("web-canary", 10),
                ("web-exp-canary", 5),
                ("web-exp-baseline", 5),
            ],
        ),
        (
            0,
            vec![exp("web-exp-canary", 20)],
            vec![("web-stable", 80), ("web-canary", 0), ("web-exp-canary", 20)],
        ),
        // A destination without a host is never written (upstream #4890).
        (10, vec![exp("", 5)], vec![("web-stable", 90), ("web-canary", 10)]),
    ];
    for (canary, additional, want) in cases {
        let patch =
            weight_patch_with_additional(&vs, &host_split(), &single_route(), &[], canary, &additional)
                .unwrap();
        let after = apply(&vs, &patch);
        assert_eq!(route(&after), pairs(&want), "{canary} {additional:?}");
        assert!(
            verify_with_additional(&after, &host_split(), &single_route(), &[], canary, &additional).unwrap(),
            "{canary} {additional:?}"
        );
        let again =
            weight_patch_with_additional(&after, &host_split(), &single_route(), &[], canary, &additional)
                .unwrap();
        assert!(again.0.is_empty(), "already in place: {again:?}");
    }
}

#[test]
fn an_experiment_destination_is_updated_in_place_and_removed_with_weight_zero() {
    let vs = yaml(SINGLE_HTTP);
    let running = vec![exp("web-exp-canary", 5), exp("web-exp-baseline", 5)];
    let during = apply(
        &vs,
        &weight_patch_with_additional(&vs, &host_split(), &single_route(), &[], 10, &running).unwrap(),
    );
    // A new weight for one of them: replaced where it is, nothing appended.
    let changed = vec![exp("web-exp-canary", 10), exp("web-exp-baseline", 5)];
    let patch =
        weight_patch_with_additional(&during, &host_split(), &single_route(), &[], 10, &changed).unwrap();
    assert_eq!(count_ops(&patch, "add"), 0);
    assert_eq!(
        route(&apply(&during, &patch)),
        pairs(&[
            ("web-stable", 75),
            ("web-canary", 10),
            ("web-exp-canary", 10),
            ("web-exp-baseline", 5)
        ])
    );
    // The step ends: both go, whatever their order, and the stable has the canary's rest.
    let ended = vec![exp("web-exp-canary", 0), exp("web-exp-baseline", 0)];
    let patch =
        weight_patch_with_additional(&during, &host_split(), &single_route(), &[], 10, &ended).unwrap();
    assert_eq!(count_ops(&patch, "remove"), 2);
    let after = apply(&during, &patch);
    assert_eq!(route(&after), pairs(&[("web-stable", 90), ("web-canary", 10)]));
    assert!(verify_with_additional(&after, &host_split(), &single_route(), &[], 10, &ended).unwrap());
    assert!(!verify_with_additional(&during, &host_split(), &single_route(), &[], 10, &ended).unwrap());
    // Removing what is not there changes nothing.
    let again =
        weight_patch_with_additional(&after, &host_split(), &single_route(), &[], 10, &ended).unwrap();
    assert!(again.0.is_empty());
}

#[test]
fn removals_are_pinned_by_host_and_fail_on_a_reordered_route() {
    let vs = yaml(SINGLE_HTTP);
    let during = apply(
        &vs,
        &weight_patch_with_additional(&vs, &host_split(), &single_route(), &[], 10, &[exp("web-exp", 5)])
            .unwrap(),
    );
    let patch = weight_patch_with_additional(
        &during,
        &host_split(),
        &single_route(),
        &[],
        10,
        &[exp("web-exp", 0)],
    )
    .unwrap();
    let ops = serde_json::to_value(&patch).unwrap();
    assert!(
        ops.as_array().unwrap().iter().any(|o| o["op"] == "test"
            && o["path"] == "/spec/http/0/route/2/destination/host"
            && o["value"] == "web-exp"),
        "{ops}"
    );
    let mut moved = during.clone();
    moved["spec"]["http"][0]["route"]
        .as_array_mut()
        .unwrap()
        .swap(1, 2);
    let mut target = moved.clone();
    assert!(
        json_patch::patch(&mut target, &patch).is_err(),
        "a reordered route is not written blindly"
    );
}

#[test]
fn weights_beyond_one_hundred_and_foreign_destinations_are_refused() {
    let vs = yaml(SINGLE_HTTP);
    let too_much =
        weight_patch_with_additional(&vs, &host_split(), &single_route(), &[], 60, &[exp("e", 50)]);
    assert!(too_much.is_err());
    let mut foreign = vs.clone();
    foreign["spec"]["http"][0]["route"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": {"host": "legacy"}, "weight": 5}));
    let err = weight_patch_with_additional(&foreign, &host_split(), &single_route(), &[], 10, &[exp("e", 5)]);
    assert!(
        err.is_err(),
        "a weighted destination that is no experiment's is not ours to change"
    );
}

#[test]
fn a_subset_split_appends_experiment_services_by_host() {
    let vs = yaml(
        r#"
kind: VirtualService
metadata: {name: web}
spec:
  http:
  - route:
    - destination: {host: web, subset: stable}
      weight: 100
    - destination: {host: web, subset: canary}
      weight: 0
"#,
    );
    let patch = weight_patch_with_additional(
        &vs,
        &subset_split(),
        &single_route(),
        &[],
        20,
        &[exp("web-exp", 10)],
    )
    .unwrap();
    let after = apply(&vs, &patch);
    let dests = after["spec"]["http"][0]["route"].as_array().unwrap();
    assert_eq!(dests.len(), 3);
    assert_eq!(dests[0]["weight"], 70);
    assert_eq!(dests[1]["weight"], 20);
    assert_eq!(
        dests[2],
        json!({"destination": {"host": "web-exp"}, "weight": 10})
    );
}

#[test]
fn the_istio_router_applies_and_verifies_experiment_destinations() {
    let target = virtual_service_target("v1beta1", "shop", "web");
    let router = IstioRouter {
        virtual_services: vec![VirtualServiceRef {
            target: target.clone(),
            split: host_split(),
            routes: single_route(),
        }],
        managed_routes: Vec::new(),
    };
    let mut objects = Objects::new();
    objects.insert(target.clone(), Some(yaml(SINGLE_HTTP)));
    let desired = Desired {
        canary: 10,
        additional: vec![exp("web-exp", 5)],
    };
    let writes = router.apply(&objects, &desired).unwrap();
    assert_eq!(writes.len(), 1);
    let sluice_traffic::Write::Patch { patch, .. } = &writes[0] else {
        panic!("a patch: {writes:?}")
    };
    let after = apply(&yaml(SINGLE_HTTP), patch);
    let mut read_back = Objects::new();
    read_back.insert(target, Some(after));
    assert!(router.verify(&read_back, &desired).unwrap());
    assert_eq!(router.observe(&read_back).unwrap().weights, vec![10]);
}
