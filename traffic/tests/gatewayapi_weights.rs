//! Gateway API weights: every rule holding both Services is shifted, everything else is left as it was.

mod common;

use common::{apply, count_ops, ops, yaml};
use serde_json::{Value, json};
use sluice_traffic::gatewayapi::{EXPERIMENT_BACKENDS_ANNOTATION, Services, observed_weights, weight_patch};
use sluice_traffic::{Additional, Desired};

const ROUTE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  parentRefs: [{name: gw}]
  hostnames: [web.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {add: [{name: x-from, value: gw}]}
    backendRefs:
    - {name: web-stable, port: 8080, weight: 100}
    - {name: web-canary, port: 8080, weight: 0}
  - matches: [{path: {type: PathPrefix, value: /static}}]
    backendRefs:
    - {name: cdn, port: 80}
  - matches: [{path: {type: PathPrefix, value: /}}]
    backendRefs:
    - {name: web-canary, port: 8080, weight: 0}
    - {name: mirror-sink, port: 9000, weight: 5}
    - {name: web-stable, port: 8080, weight: 100}
"#;

fn services() -> Services {
    Services {
        canary: "web-canary".into(),
        stable: "web-stable".into(),
    }
}

/// The route with every weight of the two Services removed.
fn without_split_weights(doc: &Value) -> Value {
    let mut out = doc.clone();
    out["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("annotations");
    for rule in out["spec"]["rules"].as_array_mut().expect("rules") {
        for backend in rule["backendRefs"].as_array_mut().into_iter().flatten() {
            if backend["name"] == "web-canary" || backend["name"] == "web-stable" {
                backend.as_object_mut().expect("backend").remove("weight");
            }
        }
    }
    out
}

fn weights_of(doc: &Value, rule: usize) -> Vec<(String, Value)> {
    doc["spec"]["rules"][rule]["backendRefs"]
        .as_array()
        .expect("backendRefs")
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap_or_default().to_string(),
                b["weight"].clone(),
            )
        })
        .collect()
}

#[test]
fn weights_of_every_split_rule_are_observed() {
    let doc = yaml(ROUTE);
    assert_eq!(observed_weights(&doc, &services()).expect("weights"), vec![0, 0]);
}

#[test]
fn table_of_weights_on_a_multi_rule_route() {
    for canary in [0, 1, 10, 33, 50, 99, 100] {
        let doc = yaml(ROUTE);
        let patch = weight_patch(&doc, &services(), &Desired::canary(canary)).expect("patch");
        let after = apply(&doc, &patch);
        assert_eq!(
            observed_weights(&after, &services()).expect("weights"),
            vec![canary, canary]
        );
        let stable = json!(100 - canary);
        assert_eq!(
            weights_of(&after, 0),
            vec![
                ("web-stable".into(), stable.clone()),
                ("web-canary".into(), json!(canary))
            ]
        );
        assert_eq!(
            weights_of(&after, 2),
            vec![
                ("web-canary".into(), json!(canary)),
                ("mirror-sink".into(), json!(5)),
                ("web-stable".into(), stable)
            ]
        );
        assert_eq!(
            without_split_weights(&after),
            without_split_weights(&doc),
            "only the two backends' weights change (weight {canary})"
        );
        assert_eq!(
            after["spec"]["rules"][1], doc["spec"]["rules"][1],
            "the cdn rule is untouched"
        );
        assert!(
            weight_patch(&after, &services(), &Desired::canary(canary))
                .expect("patch")
                .0
                .is_empty(),
            "a route already at weight {canary} gets no write"
        );
    }
}

#[test]
fn every_write_is_pinned_by_a_test_of_the_backend_name() {
    let doc = yaml(ROUTE);
    let patch = weight_patch(&doc, &services(), &Desired::canary(20)).expect("patch");
    assert_eq!(count_ops(&patch, "add"), 4, "{}", ops(&patch));
    assert_eq!(count_ops(&patch, "test"), 4, "{}", ops(&patch));
    assert_eq!(
        ops(&patch)[0],
        json!({"op": "test", "path": "/spec/rules/0/backendRefs/0/name", "value": "web-stable"})
    );
    // A concurrent reorder of the backends makes the patch fail instead of writing the wrong backend.
    let mut moved = doc.clone();
    moved["spec"]["rules"][0]["backendRefs"]
        .as_array_mut()
        .expect("backendRefs")
        .reverse();
    assert!(json_patch::patch(&mut moved, &patch).is_err());
}

#[test]
fn missing_weights_read_as_the_gateway_api_default() {
    let doc = yaml(
        r#"
kind: HTTPRoute
metadata: {name: web}
spec:
  rules:
  - backendRefs: [{name: web-stable, port: 80}, {name: web-canary, port: 80}]
"#,
    );
    assert_eq!(observed_weights(&doc, &services()).expect("weights"), vec![1]);
    let after = apply(
        &doc,
        &weight_patch(&doc, &services(), &Desired::canary(0)).expect("patch"),
    );
    assert_eq!(
        weights_of(&after, 0),
        vec![("web-stable".into(), json!(100)), ("web-canary".into(), json!(0))]
    );
}

#[test]
fn malformed_routes_give_clear_errors() {
    let cases = [
        (
            "kind: HTTPRoute\nmetadata: {name: web}\nspec: {rules: {a: 1}}",
            "HTTPRoute \"web\": spec.rules is not a list",
        ),
        (
            "kind: HTTPRoute\nmetadata: {name: web}\nspec: {rules: [{backendRefs: 3}]}",
            "HTTPRoute \"web\": spec.rules[0].backendRefs is not a list",
        ),
        (
            "kind: HTTPRoute\nmetadata: {name: web}\nspec: {rules: [{backendRefs: [web-canary]}]}",
            "HTTPRoute \"web\": spec.rules[0].backendRefs[0] is not an object",
        ),
        (
            "kind: HTTPRoute\nmetadata: {name: web}\nspec: {rules: [{backendRefs: [{name: web-canary, weight: ten}, {name: web-stable}]}]}",
            "HTTPRoute \"web\": spec.rules[0].backendRefs[0].weight is not a whole number",
        ),
        (
            "kind: HTTPRoute\nmetadata: {name: web}\nspec: {rules: [{backendRefs: [{name: web-canary}]}, {backendRefs: [{name: web-stable}]}]}",
            "HTTPRoute \"web\": no rule has both backendRefs \"web-canary\" (canaryService) and \"web-stable\" (stableService)",
        ),
        (
            "kind: TCPRoute\nmetadata: {name: db}\nspec: {}",
            "TCPRoute \"db\": no rule has both backendRefs \"web-canary\" (canaryService) and \"web-stable\" (stableService)",
        ),
        (
            "kind: HTTPRoute\nmetadata: {name: web, annotations: {sluice.dev/managed-routes: 'nope'}}\nspec: {rules: []}",
            "HTTPRoute \"web\": annotation sluice.dev/managed-routes is not a JSON object of rule indexes",
        ),
    ];
    for (text, message) in cases {
        let doc = yaml(text);
        let err = observed_weights(&doc, &services()).expect_err(text).to_string();
        assert!(err.starts_with(message), "{err:?} should start with {message:?}");
        let err = weight_patch(&doc, &services(), &Desired::canary(10))
            .expect_err(text)
            .to_string();
        assert!(err.starts_with(message), "{err:?} should start with {message:?}");
    }
}

fn experiment(weight_a: i32, weight_b: i32) -> Desired {
    Desired {
        canary: 10,
        additional: vec![
            Additional {
                service: "web-exp-a".into(),
                pod_template_hash: "aaa".into(),
                weight: weight_a,
            },
            Additional {
                service: "web-exp-b".into(),
                pod_template_hash: "bbb".into(),
                weight: weight_b,
            },
        ],
    }
}

#[test]
fn experiment_services_are_added_weighted_and_removed() {
    let doc = yaml(ROUTE);
    let with = apply(
        &doc,
        &weight_patch(&doc, &services(), &experiment(5, 15)).expect("patch"),
    );
    assert_eq!(
        weights_of(&with, 0),
        vec![
            ("web-stable".into(), json!(70)),
            ("web-canary".into(), json!(10)),
            ("web-exp-a".into(), json!(5)),
            ("web-exp-b".into(), json!(15)),
        ]
    );
    assert_eq!(
        with["spec"]["rules"][0]["backendRefs"][2],
        json!({"group": "", "kind": "Service", "name": "web-exp-a", "port": 8080, "weight": 5})
    );
    assert_eq!(weights_of(&with, 2)[1], ("mirror-sink".into(), json!(5)));
    assert_eq!(
        with["metadata"]["annotations"][EXPERIMENT_BACKENDS_ANNOTATION],
        json!(r#"["web-exp-a","web-exp-b"]"#)
    );
    assert!(
        weight_patch(&with, &services(), &experiment(5, 15))
            .expect("patch")
            .0
            .is_empty()
    );

    let reweighted = apply(
        &with,
        &weight_patch(&with, &services(), &experiment(20, 0)).expect("patch"),
    );
    assert_eq!(weights_of(&reweighted, 0)[0], ("web-stable".into(), json!(70)));
    assert_eq!(weights_of(&reweighted, 0)[2], ("web-exp-a".into(), json!(20)));
    assert_eq!(
        weights_of(&reweighted, 0).len(),
        3,
        "an experiment destination sent with weight 0 is taken out"
    );

    let done = apply(
        &reweighted,
        &weight_patch(&reweighted, &services(), &Desired::canary(0)).expect("patch"),
    );
    assert_eq!(
        done,
        apply(
            &doc,
            &weight_patch(&doc, &services(), &Desired::canary(0)).expect("patch")
        )
    );
    assert!(
        done["metadata"].get("annotations").is_none(),
        "the record goes with the backends"
    );
}

#[test]
fn a_backend_of_the_same_name_the_route_already_had_is_weighted_but_kept() {
    let doc = yaml(
        r#"
kind: HTTPRoute
metadata: {name: web, annotations: {owner: team}}
spec:
  rules:
  - backendRefs: [{name: web-stable, port: 80}, {name: web-canary, port: 80}, {name: web-exp-a, port: 81}]
"#,
    );
    let desired = Desired {
        canary: 0,
        additional: vec![Additional {
            service: "web-exp-a".into(),
            pod_template_hash: "aaa".into(),
            weight: 30,
        }],
    };
    let with = apply(&doc, &weight_patch(&doc, &services(), &desired).expect("patch"));
    assert_eq!(
        with["spec"]["rules"][0]["backendRefs"][2],
        json!({"name": "web-exp-a", "port": 81, "weight": 30})
    );
    assert_eq!(with["metadata"]["annotations"], json!({"owner": "team"}));
    let done = apply(
        &with,
        &weight_patch(&with, &services(), &Desired::canary(0)).expect("patch"),
    );
    assert_eq!(
        done["spec"]["rules"][0]["backendRefs"].as_array().map(Vec::len),
        Some(3)
    );
}
