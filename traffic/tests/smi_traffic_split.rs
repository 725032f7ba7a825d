//! The SMI router: the TrafficSplit it creates in each API version, the weight patches of an existing one,
//! idempotence, observation, reset, and its errors.

use serde_json::{Value, json};
use sluice_traffic::smi::{Owner, SmiRouter, SmiVersion, traffic_split_target};
use sluice_traffic::{
    Additional, Desired, HeaderRoute, MirrorRoute, Objects, Router, RouterError, Seen, Target, Write,
};

const UID: &str = "7f3c1e2a-0000-4000-8000-000000000001";

fn router(version: SmiVersion) -> SmiRouter {
    SmiRouter {
        version,
        namespace: "shop".into(),
        traffic_split: "web-split".into(),
        root_service: "web".into(),
        canary_service: "web-canary".into(),
        stable_service: "web-stable".into(),
        owner: Owner {
            name: "web".into(),
            uid: UID.into(),
        },
    }
}

fn target(version: SmiVersion) -> Target {
    traffic_split_target(version, "shop", "web-split")
}

fn objects(version: SmiVersion, doc: Option<Value>) -> Objects {
    Objects::from([(target(version), doc)])
}

fn owner_ref(uid: &str, controller: bool) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web", "uid": uid,
           "controller": controller, "blockOwnerDeletion": true})
}

/// A TrafficSplit owned by the Rollout with the given backends.
fn split(version: SmiVersion, backends: Value) -> Value {
    json!({
        "apiVersion": format!("split.smi-spec.io/{version}"),
        "kind": "TrafficSplit",
        "metadata": {"name": "web-split", "namespace": "shop", "ownerReferences": [owner_ref(UID, true)]},
        "spec": {"service": "web", "backends": backends},
    })
}

/// The object of the single Create write.
fn created(writes: &[Write]) -> &Value {
    match writes {
        [Write::Create { object, .. }] => object,
        other => panic!("one Create: {other:?}"),
    }
}

/// The ops of the single Patch write, as JSON.
fn patch_ops(writes: &[Write]) -> Value {
    match writes {
        [Write::Patch { patch, .. }] => serde_json::to_value(patch).unwrap(),
        other => panic!("one Patch: {other:?}"),
    }
}

/// The document after the writes (a Create replaces it, a Patch applies, a Delete removes it).
fn after(doc: Option<Value>, writes: &[Write]) -> Option<Value> {
    let mut doc = doc;
    for w in writes {
        match w {
            Write::Create { object, .. } => doc = Some(object.clone()),
            Write::Patch { patch, .. } => {
                json_patch::patch(doc.as_mut().expect("patched object exists"), patch).expect("patch applies")
            }
            Write::Delete { .. } => doc = None,
        }
    }
    doc
}

#[test]
fn a_missing_traffic_split_is_created_in_each_api_version_with_its_weight_format() {
    let cases = [
        (SmiVersion::V1alpha1, json!("10"), json!("90")),
        (SmiVersion::V1alpha2, json!(10), json!(90)),
        (SmiVersion::V1alpha3, json!(10), json!(90)),
    ];
    for (version, canary, stable) in cases {
        let r = router(version);
        let writes = r.apply(&objects(version, None), &Desired::canary(10)).unwrap();
        let Write::Create { target: t, .. } = &writes[0] else {
            panic!("{version}: {writes:?}")
        };
        assert_eq!(t, &target(version), "{version}");
        assert_eq!(
            created(&writes),
            &json!({
                "apiVersion": format!("split.smi-spec.io/{version}"),
                "kind": "TrafficSplit",
                "metadata": {"name": "web-split", "namespace": "shop", "ownerReferences": [owner_ref(UID, true)]},
                "spec": {"service": "web", "backends": [
                    {"service": "web-canary", "weight": canary},
                    {"service": "web-stable", "weight": stable},
                ]},
            }),
            "{version}"
        );
    }
}

#[test]
fn the_weight_of_every_step_is_written_as_upstream_writes_it() {
    for (weight, canary, stable) in [
        (0, "0", "100"),
        (1, "1", "99"),
        (55, "55", "45"),
        (100, "100", "0"),
    ] {
        let writes = router(SmiVersion::V1alpha1)
            .apply(&objects(SmiVersion::V1alpha1, None), &Desired::canary(weight))
            .unwrap();
        let backends = &created(&writes)["spec"]["backends"];
        assert_eq!(backends[0]["weight"], canary, "{weight}");
        assert_eq!(backends[1]["weight"], stable, "{weight}");
    }
}

#[test]
fn an_existing_traffic_split_gets_only_its_weights_replaced_each_pinned_by_its_service() {
    let cases = [
        (
            SmiVersion::V1alpha1,
            json!("0"),
            json!("100"),
            json!("30"),
            json!("70"),
        ),
        (SmiVersion::V1alpha2, json!(0), json!(100), json!(30), json!(70)),
        (SmiVersion::V1alpha3, json!(0), json!(100), json!(30), json!(70)),
    ];
    for (version, c0, s0, c1, s1) in cases {
        let doc = split(
            version,
            json!([{"service": "web-canary", "weight": c0}, {"service": "web-stable", "weight": s0}]),
        );
        let mut doc = doc;
        doc["metadata"]["labels"] = json!({"team": "shop"});
        let r = router(version);
        let writes = r
            .apply(&objects(version, Some(doc.clone())), &Desired::canary(30))
            .unwrap();
        assert_eq!(
            patch_ops(&writes),
            json!([
                {"op": "test", "path": "/spec/backends/0/service", "value": "web-canary"},
                {"op": "replace", "path": "/spec/backends/0/weight", "value": c1},
                {"op": "test", "path": "/spec/backends/1/service", "value": "web-stable"},
                {"op": "replace", "path": "/spec/backends/1/weight", "value": s1},
            ]),
            "{version}"
        );
        let now = after(Some(doc), &writes).unwrap();
        assert_eq!(
            now["metadata"]["labels"]["team"], "shop",
            "{version}: other fields kept"
        );
        let again = objects(version, Some(now));
        assert_eq!(
            r.apply(&again, &Desired::canary(30)).unwrap(),
            vec![],
            "{version}: idempotent"
        );
        assert!(r.verify(&again, &Desired::canary(30)).unwrap(), "{version}");
        assert!(!r.verify(&again, &Desired::canary(40)).unwrap(), "{version}");
        assert_eq!(r.observe(&again).unwrap().weights, vec![30], "{version}");
    }
}

#[test]
fn backends_in_another_order_keep_their_places() {
    let version = SmiVersion::V1alpha2;
    let doc = split(
        version,
        json!([{"service": "web-stable", "weight": 80}, {"service": "web-canary", "weight": 20}]),
    );
    let writes = router(version)
        .apply(&objects(version, Some(doc)), &Desired::canary(50))
        .unwrap();
    assert_eq!(
        patch_ops(&writes),
        json!([
            {"op": "test", "path": "/spec/backends/0/service", "value": "web-stable"},
            {"op": "replace", "path": "/spec/backends/0/weight", "value": 50},
            {"op": "test", "path": "/spec/backends/1/service", "value": "web-canary"},
            {"op": "replace", "path": "/spec/backends/1/weight", "value": 50},
        ])
    );
}

#[test]
fn a_weight_equal_in_value_is_not_rewritten_in_another_format() {
    // Written as v1alpha1 quantities, read through v1alpha3 (no conversion between versions): same values.
    let version = SmiVersion::V1alpha3;
    let doc = split(
        version,
        json!([{"service": "web-canary", "weight": "20"}, {"service": "web-stable", "weight": "80"}]),
    );
    let r = router(version);
    assert_eq!(
        r.apply(&objects(version, Some(doc.clone())), &Desired::canary(20))
            .unwrap(),
        vec![]
    );
    let writes = r
        .apply(&objects(version, Some(doc)), &Desired::canary(0))
        .unwrap();
    let ops = patch_ops(&writes);
    assert_eq!(
        ops[1],
        json!({"op": "replace", "path": "/spec/backends/0/weight", "value": 0})
    );
    assert_eq!(
        ops[3],
        json!({"op": "replace", "path": "/spec/backends/1/weight", "value": 100})
    );
}

#[test]
fn experiment_services_are_backends_and_the_stable_gets_the_rest() {
    let version = SmiVersion::V1alpha1;
    let desired = Desired {
        canary: 10,
        additional: vec![Additional {
            service: "web-exp-a".into(),
            pod_template_hash: "abc".into(),
            weight: 20,
        }],
    };
    let r = router(version);
    let writes = r.apply(&objects(version, None), &desired).unwrap();
    assert_eq!(
        created(&writes)["spec"]["backends"],
        json!([
            {"service": "web-canary", "weight": "10"},
            {"service": "web-exp-a", "weight": "20"},
            {"service": "web-stable", "weight": "70"},
        ])
    );
    // Existing split without the experiment's backend: it is appended.
    let doc = split(
        version,
        json!([{"service": "web-canary", "weight": "10"}, {"service": "web-stable", "weight": "90"}]),
    );
    let writes = r.apply(&objects(version, Some(doc.clone())), &desired).unwrap();
    assert_eq!(
        patch_ops(&writes),
        json!([
            {"op": "test", "path": "/spec/backends/1/service", "value": "web-stable"},
            {"op": "replace", "path": "/spec/backends/1/weight", "value": "70"},
            {"op": "add", "path": "/spec/backends/-", "value": {"service": "web-exp-a", "weight": "20"}},
        ])
    );
    let now = after(Some(doc), &writes).unwrap();
    assert!(r.verify(&objects(version, Some(now.clone())), &desired).unwrap());
    assert_eq!(
        r.observe(&objects(version, Some(now.clone()))).unwrap().weights,
        vec![10]
    );
    // The experiment is over: its backend gets 0 and stays (only weights are touched).
    let writes = r
        .apply(&objects(version, Some(now.clone())), &Desired::canary(10))
        .unwrap();
    assert_eq!(
        patch_ops(&writes),
        json!([
            {"op": "test", "path": "/spec/backends/1/service", "value": "web-stable"},
            {"op": "replace", "path": "/spec/backends/1/weight", "value": "90"},
            {"op": "test", "path": "/spec/backends/2/service", "value": "web-exp-a"},
            {"op": "replace", "path": "/spec/backends/2/weight", "value": "0"},
        ])
    );
    let done = after(Some(now), &writes).unwrap();
    assert!(
        r.verify(&objects(version, Some(done)), &Desired::canary(10))
            .unwrap()
    );
}

#[test]
fn a_changed_root_service_or_a_missing_backend_is_put_back() {
    let version = SmiVersion::V1alpha2;
    let mut doc = split(version, json!([{"service": "web-stable", "weight": 100}]));
    doc["spec"]["service"] = json!("old-root");
    let r = router(version);
    let writes = r
        .apply(&objects(version, Some(doc.clone())), &Desired::canary(0))
        .unwrap();
    assert_eq!(
        patch_ops(&writes),
        json!([
            {"op": "test", "path": "/spec/service", "value": "old-root"},
            {"op": "replace", "path": "/spec/service", "value": "web"},
            {"op": "add", "path": "/spec/backends/-", "value": {"service": "web-canary", "weight": 0}},
        ])
    );
    let now = after(Some(doc), &writes).unwrap();
    assert!(
        r.verify(&objects(version, Some(now)), &Desired::canary(0))
            .unwrap()
    );
    // No spec at all, or no backends: written whole.
    let mut bare = split(version, json!(null));
    bare.as_object_mut().unwrap().remove("spec");
    let writes = r
        .apply(&objects(version, Some(bare.clone())), &Desired::canary(5))
        .unwrap();
    let now = after(Some(bare), &writes).unwrap();
    assert_eq!(
        now["spec"],
        json!({"service": "web", "backends": [
            {"service": "web-canary", "weight": 5}, {"service": "web-stable", "weight": 95}]})
    );
    let no_backends = split(version, json!(null));
    let writes = r
        .apply(&objects(version, Some(no_backends.clone())), &Desired::canary(5))
        .unwrap();
    assert_eq!(after(Some(no_backends), &writes).unwrap()["spec"], now["spec"]);
}

#[test]
fn observe_reads_a_missing_split_as_zero_and_weights_as_shares_of_their_total() {
    let r1 = router(SmiVersion::V1alpha1);
    assert_eq!(
        r1.observe(&objects(SmiVersion::V1alpha1, None)).unwrap(),
        Seen {
            weights: vec![0],
            ..Seen::default()
        }
    );
    let cases = [
        (
            json!([{"service": "web-canary", "weight": "25"}, {"service": "web-stable", "weight": "75"}]),
            25,
        ),
        (
            json!([{"service": "web-canary", "weight": "500m"}, {"service": "web-stable", "weight": "500m"}]),
            50,
        ),
        (
            json!([{"service": "web-canary", "weight": 1}, {"service": "web-stable", "weight": 2}]),
            34,
        ),
        (
            json!([{"service": "web-canary", "weight": "0"}, {"service": "web-stable", "weight": "0"}]),
            0,
        ),
        (json!([{"service": "web-stable", "weight": "100"}]), 0),
        (
            json!([{"service": "web-canary"}, {"service": "web-stable", "weight": 100}]),
            0,
        ),
        (
            json!([{"service": "web-canary", "weight": "1e2"}, {"service": "web-stable", "weight": "0"}]),
            100,
        ),
    ];
    for (backends, canary) in cases {
        let doc = split(SmiVersion::V1alpha1, backends.clone());
        assert_eq!(
            r1.observe(&objects(SmiVersion::V1alpha1, Some(doc)))
                .unwrap()
                .weights,
            vec![canary],
            "{backends}"
        );
    }
}

#[test]
fn a_traffic_split_this_rollout_does_not_control_is_an_error_and_is_never_deleted() {
    let version = SmiVersion::V1alpha3;
    let backends = json!([{"service": "web-canary", "weight": 0}, {"service": "web-stable", "weight": 100}]);
    let mut no_owner = split(version, backends.clone());
    no_owner["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("ownerReferences");
    let mut other_uid = split(version, backends.clone());
    other_uid["metadata"]["ownerReferences"] = json!([owner_ref("another-uid", true)]);
    let mut not_controller = split(version, backends.clone());
    not_controller["metadata"]["ownerReferences"] = json!([owner_ref(UID, false)]);
    let r = router(version);
    let error = RouterError::Malformed("Rollout does not own TrafficSplit `web-split`".into());
    for doc in [no_owner, other_uid, not_controller] {
        let objs = objects(version, Some(doc));
        assert_eq!(r.apply(&objs, &Desired::canary(10)), Err(error.clone()));
        assert_eq!(r.observe(&objs), Err(error.clone()));
        assert_eq!(r.verify(&objs, &Desired::canary(0)), Err(error.clone()));
        assert_eq!(r.reset(&objs), Ok(vec![]));
    }
}

#[test]
fn reset_deletes_the_split_the_rollout_created_and_nothing_else() {
    let version = SmiVersion::V1alpha2;
    let r = router(version);
    let doc = split(version, json!([]));
    assert_eq!(
        r.reset(&objects(version, Some(doc))).unwrap(),
        vec![Write::Delete {
            target: target(version)
        }]
    );
    assert_eq!(r.reset(&objects(version, None)).unwrap(), vec![]);
}

#[test]
fn bad_weights_and_malformed_splits_are_clear_errors() {
    let version = SmiVersion::V1alpha2;
    let r = router(version);
    let missing = objects(version, None);
    let cases: Vec<(Desired, &str)> = vec![
        (Desired::canary(101), "canary weight 101 is not between 0 and 100"),
        (Desired::canary(-1), "canary weight -1 is not between 0 and 100"),
        (
            Desired {
                canary: 60,
                additional: vec![Additional {
                    service: "exp".into(),
                    pod_template_hash: "h".into(),
                    weight: 50,
                }],
            },
            "the weights of the canary and experiment Services add up to 110, more than 100",
        ),
    ];
    for (desired, message) in cases {
        assert_eq!(
            r.apply(&missing, &desired),
            Err(RouterError::Malformed(message.into())),
            "{desired:?}"
        );
    }
    let shapes = [
        (
            json!({"service": "web", "backends": {"a": 1}}),
            "TrafficSplit \"web-split\": spec.backends is not a list",
        ),
        (
            json!({"service": "web", "backends": [{"weight": 1}]}),
            "TrafficSplit \"web-split\": spec.backends[0] has no service",
        ),
        (
            json!({"service": "web", "backends": [{"service": "web-canary", "weight": "ten"}]}),
            "TrafficSplit \"web-split\": spec.backends[0].weight \"ten\" is not a number or quantity",
        ),
        (json!("web"), "TrafficSplit \"web-split\": spec is not an object"),
    ];
    for (spec, message) in shapes {
        let mut doc = split(version, json!([]));
        doc["spec"] = spec.clone();
        let objs = objects(version, Some(doc));
        assert_eq!(
            r.apply(&objs, &Desired::canary(10)),
            Err(RouterError::Malformed(message.into())),
            "{spec}"
        );
    }
}

#[test]
fn header_and_mirror_routes_are_not_supported() {
    let r = router(SmiVersion::V1alpha1);
    let objs = objects(SmiVersion::V1alpha1, None);
    let header = HeaderRoute {
        name: "h".into(),
        matches: vec![],
    };
    let mirror = MirrorRoute {
        name: "m".into(),
        matches: vec![],
        percentage: None,
    };
    assert_eq!(
        r.set_header_route(&objs, &header).unwrap_err().to_string(),
        "smi does not support setHeaderRoute"
    );
    assert_eq!(
        r.set_mirror_route(&objs, &mirror).unwrap_err().to_string(),
        "smi does not support setMirrorRoute"
    );
    assert_eq!(r.remove_managed_routes(&objs, &["h".into()]).unwrap(), vec![]);
}

#[test]
fn api_versions_parse_as_upstream_names_them() {
    for (text, version) in [
        ("v1alpha1", SmiVersion::V1alpha1),
        ("v1alpha2", SmiVersion::V1alpha2),
        ("v1alpha3", SmiVersion::V1alpha3),
    ] {
        assert_eq!(text.parse::<SmiVersion>(), Ok(version));
        assert_eq!(version.to_string(), text);
    }
    assert_eq!(SmiVersion::default(), SmiVersion::V1alpha1, "upstream's default");
    assert_eq!(
        "v1beta1".parse::<SmiVersion>(),
        Err("Unsupported TrafficSplit API version `v1beta1` (v1alpha1, v1alpha2 or v1alpha3)".into())
    );
    assert_eq!(
        target(SmiVersion::V1alpha3),
        Target::new(
            ("split.smi-spec.io", "v1alpha3"),
            ("TrafficSplit", "trafficsplits"),
            "shop",
            "web-split"
        )
    );
}
