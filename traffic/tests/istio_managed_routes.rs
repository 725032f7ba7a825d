//! Managed header and mirror routes: insertion at the top in managedRoutes order, in-place replacement,
//! reordering and removal.

mod common;

use common::{apply, host_split, ops, single_route, yaml};
use serde_json::{Value, json};
use sluice_traffic::istio::{
    HeaderMatch, MirrorMatch, RouteSelector, StringMatch, canary_destination, header_route_patch,
    mirror_route_patch, remove_managed_routes_patch, verify, verify_with_managed, weight_patch,
    weight_patch_with_managed,
};

const VS: &str = r#"
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - name: primary
    retries: {attempts: 3}
    route:
    - destination: {host: web-stable.shop.svc.cluster.local, port: {number: 8080}}
      weight: 90
    - destination: {host: web-canary.shop.svc.cluster.local, port: {number: 8080}}
      weight: 10
"#;

fn managed(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn selector() -> RouteSelector {
    RouteSelector {
        http: Some(vec!["primary".into()]),
        ..RouteSelector::default()
    }
}

fn header(name: &str, value: StringMatch) -> HeaderMatch {
    HeaderMatch {
        header_name: name.into(),
        value,
    }
}

fn names(vs: &Value) -> Vec<Option<String>> {
    vs["spec"]["http"]
        .as_array()
        .expect("http list")
        .iter()
        .map(|r| r.get("name").and_then(Value::as_str).map(str::to_string))
        .collect()
}

fn canary(vs: &Value) -> Value {
    canary_destination(vs, &host_split(), &selector(), &[]).expect("canary destination")
}

#[test]
fn canary_destination_is_copied_from_the_weighted_route() {
    let vs = yaml(VS);
    assert_eq!(
        canary(&vs),
        json!({"host": "web-canary.shop.svc.cluster.local", "port": {"number": 8080}})
    );
}

#[test]
fn header_route_is_inserted_at_the_top() {
    let vs = yaml(VS);
    let order = managed(&["header-canary"]);
    let matches = [
        header("x-canary", StringMatch::Exact("yes".into())),
        header("user-agent", StringMatch::Regex(".*Android.*".into())),
        header("x-tenant", StringMatch::Prefix("beta-".into())),
    ];
    let patch = header_route_patch(&vs, "header-canary", &matches, &canary(&vs), &order).expect("patch");
    assert_eq!(patch.0.len(), 1, "a single add: {}", ops(&patch));
    let after = apply(&vs, &patch);
    assert_eq!(
        after["spec"]["http"][0],
        json!({
            "name": "header-canary",
            "match": [
                {"headers": {"x-canary": {"exact": "yes"}}},
                {"headers": {"user-agent": {"regex": ".*Android.*"}}},
                {"headers": {"x-tenant": {"prefix": "beta-"}}},
            ],
            "route": [{
                "destination": {"host": "web-canary.shop.svc.cluster.local", "port": {"number": 8080}},
                "weight": 100,
            }],
        })
    );
    assert_eq!(
        after["spec"]["http"][1], vs["spec"]["http"][0],
        "weighted route untouched"
    );
    let again = header_route_patch(&after, "header-canary", &matches, &canary(&vs), &order).expect("patch");
    assert!(again.0.is_empty(), "already in place: {}", ops(&again));

    let changed = [header("x-canary", StringMatch::Exact("always".into()))];
    let patch = header_route_patch(&after, "header-canary", &changed, &canary(&vs), &order).expect("patch");
    assert_eq!(
        ops(&patch)[0],
        json!({"op": "test", "path": "/spec/http/0/name", "value": "header-canary"})
    );
    assert_eq!(ops(&patch)[1]["op"], json!("replace"));
    let replaced = apply(&after, &patch);
    assert_eq!(
        replaced["spec"]["http"][0]["match"],
        json!([{"headers": {"x-canary": {"exact": "always"}}}])
    );
    assert_eq!(
        names(&replaced),
        vec![Some("header-canary".into()), Some("primary".into())]
    );
}

#[test]
fn mirror_route_copies_the_weighted_route_and_mirrors_to_canary() {
    let vs = yaml(VS);
    let matches = [
        MirrorMatch {
            method: Some(StringMatch::Exact("POST".into())),
            path: Some(StringMatch::Prefix("/orders".into())),
            headers: vec![header("x-debug", StringMatch::Exact("1".into()))],
        },
        MirrorMatch {
            method: Some(StringMatch::Exact("GET".into())),
            ..MirrorMatch::default()
        },
    ];
    let order = managed(&["mirror-orders"]);
    let patch = mirror_route_patch(
        &vs,
        "mirror-orders",
        &matches,
        Some(35),
        &canary(&vs),
        &selector(),
        &order,
    )
    .expect("patch");
    let after = apply(&vs, &patch);
    assert_eq!(
        after["spec"]["http"][0],
        json!({
            "name": "mirror-orders",
            "match": [
                {"method": {"exact": "POST"}, "uri": {"prefix": "/orders"}, "headers": {"x-debug": {"exact": "1"}}},
                {"method": {"exact": "GET"}},
            ],
            "route": vs["spec"]["http"][0]["route"],
            "mirror": {"host": "web-canary.shop.svc.cluster.local", "port": {"number": 8080}},
            "mirrorPercentage": {"value": 35},
        })
    );
    let default_percentage = mirror_route_patch(
        &vs,
        "mirror-orders",
        &matches,
        None,
        &canary(&vs),
        &selector(),
        &order,
    )
    .expect("patch");
    assert_eq!(
        apply(&vs, &default_percentage)["spec"]["http"][0]["mirrorPercentage"],
        json!({"value": 100})
    );

    // Later weight steps shift the mirror route's copy of the split too, and verify covers it.
    let shifted = apply(
        &after,
        &weight_patch_with_managed(&after, &host_split(), &selector(), &order, 40).expect("patch"),
    );
    assert_eq!(shifted["spec"]["http"][0]["route"][1]["weight"], json!(40));
    assert_eq!(shifted["spec"]["http"][1]["route"][1]["weight"], json!(40));
    assert!(verify_with_managed(&shifted, &host_split(), &selector(), &order, 40).expect("verify"));
    // Without the managed names only the weighted route is shifted and checked; the mirror copy stays behind.
    let plain = apply(
        &after,
        &weight_patch(&after, &host_split(), &selector(), 40).expect("patch"),
    );
    assert_eq!(plain["spec"]["http"][0]["route"][1]["weight"], json!(10));
    assert!(verify(&plain, &host_split(), &selector(), 40).expect("verify"));
    assert!(!verify_with_managed(&plain, &host_split(), &selector(), &order, 40).expect("verify"));
    assert_eq!(
        shifted["spec"]["http"][0]["mirror"],
        after["spec"]["http"][0]["mirror"]
    );
}

#[test]
fn managed_routes_follow_the_managed_routes_order() {
    let vs = yaml(VS);
    let order = managed(&["mirror-orders", "header-canary"]);
    let routes = single_route();
    let header_matches = [header("x-canary", StringMatch::Exact("yes".into()))];
    let mirror_matches = [MirrorMatch {
        method: Some(StringMatch::Exact("POST".into())),
        ..MirrorMatch::default()
    }];

    // Header first, then the mirror which the order puts above it.
    let step1 = apply(
        &vs,
        &header_route_patch(&vs, "header-canary", &header_matches, &canary(&vs), &order).expect("p"),
    );
    assert_eq!(
        names(&step1),
        vec![Some("header-canary".into()), Some("primary".into())]
    );
    let patch = mirror_route_patch(
        &step1,
        "mirror-orders",
        &mirror_matches,
        Some(50),
        &canary(&vs),
        &routes,
        &order,
    )
    .expect("patch");
    assert_eq!(
        ops(&patch).as_array().expect("ops").len(),
        1,
        "inserted straight at index 0: {}",
        ops(&patch)
    );
    let step2 = apply(&step1, &patch);
    assert_eq!(
        names(&step2),
        vec![
            Some("mirror-orders".into()),
            Some("header-canary".into()),
            Some("primary".into())
        ]
    );

    // The other order: the header route is inserted above the existing mirror route.
    let reversed = managed(&["header-canary", "mirror-orders"]);
    let m = apply(
        &vs,
        &mirror_route_patch(
            &vs,
            "mirror-orders",
            &mirror_matches,
            None,
            &canary(&vs),
            &routes,
            &reversed,
        )
        .expect("p"),
    );
    let both = apply(
        &m,
        &header_route_patch(&m, "header-canary", &header_matches, &canary(&vs), &reversed).expect("p"),
    );
    assert_eq!(
        names(&both),
        vec![
            Some("header-canary".into()),
            Some("mirror-orders".into()),
            Some("primary".into())
        ]
    );

    // Managed routes found below other routes (e.g. written by hand) are moved to the top, in order; the
    // other routes keep their relative order.
    let scattered = yaml(
        r#"
metadata: {name: web}
spec:
  http:
  - name: primary
    route: [{destination: {host: web-stable}, weight: 100}, {destination: {host: web-canary}, weight: 0}]
  - name: header-canary
    match: [{headers: {x-canary: {exact: "yes"}}}]
    route: [{destination: {host: web-canary}, weight: 100}]
  - name: static
    route: [{destination: {host: cdn}}]
  - name: mirror-orders
    match: [{method: {exact: POST}}]
    route: [{destination: {host: web-stable}, weight: 100}, {destination: {host: web-canary}, weight: 0}]
    mirror: {host: web-canary}
    mirrorPercentage: {value: 100}
"#,
    );
    let dest = json!({"host": "web-canary"});
    let patch =
        header_route_patch(&scattered, "header-canary", &header_matches, &dest, &order).expect("patch");
    assert_eq!(
        ops(&patch),
        json!([
            {"op": "test", "path": "/spec/http/3/name", "value": "mirror-orders"},
            {"op": "move", "from": "/spec/http/3", "path": "/spec/http/0"},
            {"op": "test", "path": "/spec/http/2/name", "value": "header-canary"},
            {"op": "move", "from": "/spec/http/2", "path": "/spec/http/1"},
        ])
    );
    let sorted = apply(&scattered, &patch);
    assert_eq!(
        names(&sorted),
        vec![
            Some("mirror-orders".into()),
            Some("header-canary".into()),
            Some("primary".into()),
            Some("static".into())
        ]
    );
    assert_eq!(
        sorted["spec"]["http"][0], scattered["spec"]["http"][3],
        "moved, not rewritten"
    );
}

#[test]
fn removing_managed_routes_uses_descending_indices() {
    let vs = yaml(
        r#"
metadata: {name: web}
spec:
  http:
  - name: mirror-orders
    route: [{destination: {host: web-stable}}]
    mirror: {host: web-canary}
  - name: header-canary
    route: [{destination: {host: web-canary}, weight: 100}]
  - name: primary
    retries: {attempts: 3}
    route: [{destination: {host: web-stable}, weight: 100}, {destination: {host: web-canary}, weight: 0}]
"#,
    );
    let patch = remove_managed_routes_patch(&vs, &managed(&["header-canary", "mirror-orders", "absent"]))
        .expect("patch");
    assert_eq!(
        ops(&patch),
        json!([
            {"op": "test", "path": "/spec/http/1/name", "value": "header-canary"},
            {"op": "remove", "path": "/spec/http/1"},
            {"op": "test", "path": "/spec/http/0/name", "value": "mirror-orders"},
            {"op": "remove", "path": "/spec/http/0"},
        ])
    );
    let after = apply(&vs, &patch);
    assert_eq!(after["spec"]["http"], json!([vs["spec"]["http"][2]]));
    assert!(
        remove_managed_routes_patch(&after, &managed(&["header-canary"]))
            .expect("patch")
            .0
            .is_empty()
    );
    assert!(
        remove_managed_routes_patch(&yaml("metadata: {name: web}\nspec: {}"), &managed(&["x"]))
            .expect("p")
            .0
            .is_empty()
    );
}

#[test]
fn managed_route_errors() {
    let vs = yaml(VS);
    let dest = canary(&vs);
    let m = [header("x-canary", StringMatch::Exact("yes".into()))];
    let cases: Vec<(&str, String)> = vec![
        (
            r#"route "header-canary" is not listed in trafficRouting.managedRoutes"#,
            header_route_patch(&vs, "header-canary", &m, &dest, &managed(&["other"]))
                .expect_err("x")
                .to_string(),
        ),
        (
            r#"managed route "header-canary" has no match; refusing to send all traffic to it"#,
            header_route_patch(&vs, "header-canary", &[], &dest, &managed(&["header-canary"]))
                .expect_err("x")
                .to_string(),
        ),
        (
            r#"managed route "mirror" has no match; refusing to send all traffic to it"#,
            mirror_route_patch(
                &vs,
                "mirror",
                &[],
                None,
                &dest,
                &selector(),
                &managed(&["mirror"]),
            )
            .expect_err("x")
            .to_string(),
        ),
        (
            "mirror percentage 101 is outside 0..=100",
            mirror_route_patch(
                &vs,
                "mirror",
                &[MirrorMatch::default()],
                Some(101),
                &dest,
                &selector(),
                &managed(&["mirror"]),
            )
            .expect_err("x")
            .to_string(),
        ),
        (
            r#"VirtualService "web" has no http routes"#,
            header_route_patch(
                &yaml("metadata: {name: web}\nspec: {}"),
                "h",
                &m,
                &dest,
                &managed(&["h"]),
            )
            .expect_err("x")
            .to_string(),
        ),
        (
            r#"VirtualService "web" has no http route named "main""#,
            mirror_route_patch(
                &vs,
                "mirror",
                &[MirrorMatch::default()],
                None,
                &dest,
                &RouteSelector {
                    http: Some(vec!["main".into()]),
                    ..RouteSelector::default()
                },
                &managed(&["mirror"]),
            )
            .expect_err("x")
            .to_string(),
        ),
    ];
    for (expected, got) in cases {
        assert_eq!(got, expected);
    }
}
