//! VirtualService weight patches: selection of routes, destination matching, minimal ops, errors, verification.

mod common;

use common::{apply, count_ops, host_split, named, ops, single_route, subset_split, without_weights, yaml};
use serde_json::{Value, json};
use sluice_traffic::istio::{
    HostSplit, IstioError, RouteKind, RouteSelector, Split, TcpMatch, TlsMatch, observed_weights,
    observed_weights_with_managed, verify, verify_with_managed, weight_patch, weight_patch_with_managed,
};

const SINGLE_HTTP: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - route:
    - destination: {host: web-stable}
      weight: 100
    - destination: {host: web-canary}
      weight: 0
"#;

const NAMED_HTTP: &str = r#"
kind: VirtualService
metadata: {name: web}
spec:
  http:
  - name: api
    match: [{uri: {prefix: /api}}]
    route:
    - destination: {host: web-stable}
      weight: 100
    - destination: {host: web-canary}
      weight: 0
  - name: primary
    route:
    - destination: {host: web-stable}
      weight: 100
    - destination: {host: web-canary}
      weight: 0
  - name: static
    route:
    - destination: {host: cdn}
"#;

const TLS_TCP: &str = r#"
kind: VirtualService
metadata: {name: web}
spec:
  tls:
  - match: [{port: 3000, sniHosts: [a.example.com]}]
    route:
    - destination: {host: web-stable}
      weight: 100
    - destination: {host: web-canary}
      weight: 0
  - match: [{port: 443, sniHosts: [b.example.com, c.example.com]}]
    route:
    - destination: {host: web-stable}
      weight: 100
    - destination: {host: web-canary}
      weight: 0
  tcp:
  - match: [{port: 5432}]
    route:
    - destination: {host: web-stable}
      weight: 100
    - destination: {host: web-canary}
      weight: 0
  - match: [{port: 6379}]
    route:
    - destination: {host: web-stable}
      weight: 100
    - destination: {host: web-canary}
      weight: 0
"#;

const FQDN_HOSTS: &str = r#"
kind: VirtualService
metadata: {name: web}
spec:
  http:
  - route:
    - destination: {host: web-stable.shop.svc.cluster.local, port: {number: 8080}}
      weight: 100
    - destination: {host: web-canary.shop, port: {number: 8080}}
      weight: 0
"#;

const SUBSETS: &str = r#"
kind: VirtualService
metadata: {name: web}
spec:
  http:
  - name: primary
    route:
    - destination: {host: web.shop.svc.cluster.local, subset: stable}
      weight: 100
    - destination: {host: web.shop.svc.cluster.local, subset: canary}
      weight: 0
"#;

const NO_WEIGHTS: &str = r#"
kind: VirtualService
metadata: {name: web}
spec:
  http:
  - route:
    - destination: {host: web-stable}
    - destination: {host: web-canary}
"#;

const FLOAT_WEIGHTS: &str = r#"
kind: VirtualService
metadata: {name: web}
spec:
  http:
  - route:
    - destination: {host: web-stable}
      weight: 100.0
    - destination: {host: web-canary}
      weight: 0.0
"#;

fn tls(port: i64, sni: &[&str]) -> TlsMatch {
    TlsMatch {
        port: Some(port),
        sni_hosts: sni.iter().map(|s| s.to_string()).collect(),
    }
}

/// (route kind, index, canary, stable) for every targeted route of `observed_weights`.
fn weights(vs: &Value, split: &Split, routes: &RouteSelector) -> Vec<(RouteKind, usize, i32, i32)> {
    observed_weights(vs, split, routes)
        .expect("observable")
        .into_iter()
        .map(|w| (w.route.kind, w.route.index, w.canary, w.stable))
        .collect()
}

struct Case {
    name: &'static str,
    vs: &'static str,
    split: Split,
    routes: RouteSelector,
    weight: i32,
    /// Expected (kind, index, canary, stable) of the targeted routes after the patch.
    after: Vec<(RouteKind, usize, i32, i32)>,
    replaces: usize,
    adds: usize,
}

#[test]
fn shifts_exactly_the_targeted_destinations() {
    use RouteKind::{Http, Tcp, Tls};
    let cases = vec![
        Case {
            name: "host split, one unnamed http route",
            vs: SINGLE_HTTP,
            split: host_split(),
            routes: single_route(),
            weight: 10,
            after: vec![(Http, 0, 10, 90)],
            replaces: 2,
            adds: 0,
        },
        Case {
            name: "named route among several: only it changes",
            vs: NAMED_HTTP,
            split: host_split(),
            routes: named(&["primary"]),
            weight: 30,
            after: vec![(Http, 1, 30, 70)],
            replaces: 2,
            adds: 0,
        },
        Case {
            name: "two named routes",
            vs: NAMED_HTTP,
            split: host_split(),
            routes: named(&["primary", "api"]),
            weight: 50,
            after: vec![(Http, 1, 50, 50), (Http, 0, 50, 50)],
            replaces: 4,
            adds: 0,
        },
        Case {
            name: "tls by port + sniHosts (as a set) and tcp by port",
            vs: TLS_TCP,
            split: host_split(),
            routes: RouteSelector {
                tls: vec![tls(443, &["c.example.com", "b.example.com"])],
                tcp: vec![TcpMatch { port: Some(6379) }],
                ..RouteSelector::default()
            },
            weight: 20,
            after: vec![(Tls, 1, 20, 80), (Tcp, 1, 20, 80)],
            replaces: 4,
            adds: 0,
        },
        Case {
            name: "host short names: svc.ns and svc.ns.svc.cluster.local",
            vs: FQDN_HOSTS,
            split: host_split(),
            routes: single_route(),
            weight: 5,
            after: vec![(Http, 0, 5, 95)],
            replaces: 2,
            adds: 0,
        },
        Case {
            name: "subset split",
            vs: SUBSETS,
            split: subset_split(),
            routes: named(&["primary"]),
            weight: 25,
            after: vec![(Http, 0, 25, 75)],
            replaces: 2,
            adds: 0,
        },
        Case {
            name: "missing weight fields are added",
            vs: NO_WEIGHTS,
            split: host_split(),
            routes: single_route(),
            weight: 40,
            after: vec![(Http, 0, 40, 60)],
            replaces: 0,
            adds: 2,
        },
        Case {
            name: "integral float weights are read as integers",
            vs: FLOAT_WEIGHTS,
            split: host_split(),
            routes: single_route(),
            weight: 0,
            after: vec![(Http, 0, 0, 100)],
            replaces: 0,
            adds: 0,
        },
    ];
    for case in cases {
        let vs = yaml(case.vs);
        let patch = weight_patch(&vs, &case.split, &case.routes, case.weight)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(
            count_ops(&patch, "replace"),
            case.replaces,
            "{}: replace ops",
            case.name
        );
        assert_eq!(count_ops(&patch, "add"), case.adds, "{}: add ops", case.name);
        assert_eq!(
            count_ops(&patch, "remove") + count_ops(&patch, "move") + count_ops(&patch, "copy"),
            0,
            "{}",
            case.name
        );
        let after = apply(&vs, &patch);
        assert_eq!(
            without_weights(&after),
            without_weights(&vs),
            "{}: only weights change",
            case.name
        );
        assert_eq!(
            weights(&after, &case.split, &case.routes),
            case.after,
            "{}",
            case.name
        );
        assert!(
            verify(&after, &case.split, &case.routes, case.weight).expect("verifiable"),
            "{}",
            case.name
        );
        let again = weight_patch(&after, &case.split, &case.routes, case.weight).expect("still valid");
        assert!(
            again.0.is_empty(),
            "{}: second patch must be empty, got {}",
            case.name,
            ops(&again)
        );
    }
}

#[test]
fn untargeted_routes_keep_their_weights() {
    let vs = yaml(NAMED_HTTP);
    let after = apply(
        &vs,
        &weight_patch(&vs, &host_split(), &named(&["primary"]), 30).expect("patch"),
    );
    assert_eq!(
        after["spec"]["http"][0], vs["spec"]["http"][0],
        "route api is not targeted"
    );
    assert_eq!(
        after["spec"]["http"][2], vs["spec"]["http"][2],
        "route static is not targeted"
    );

    let vs = yaml(TLS_TCP);
    let routes = RouteSelector {
        tls: vec![tls(3000, &["a.example.com"])],
        ..RouteSelector::default()
    };
    let after = apply(
        &vs,
        &weight_patch(&vs, &host_split(), &routes, 60).expect("patch"),
    );
    assert_eq!(after["spec"]["tls"][0]["route"][1]["weight"], json!(60));
    assert_eq!(after["spec"]["tls"][1], vs["spec"]["tls"][1]);
    assert_eq!(
        after["spec"]["tcp"], vs["spec"]["tcp"],
        "tcp routes are not targeted by a tls selector"
    );
}

#[test]
fn patch_pins_destinations_with_test_ops() {
    let vs = yaml(SINGLE_HTTP);
    let patch = weight_patch(&vs, &host_split(), &single_route(), 10).expect("patch");
    assert_eq!(
        ops(&patch),
        json!([
            {"op": "test", "path": "/spec/http/0/route/1/destination/host", "value": "web-canary"},
            {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 10},
            {"op": "test", "path": "/spec/http/0/route/0/destination/host", "value": "web-stable"},
            {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 90},
        ])
    );

    let vs = yaml(SUBSETS);
    let patch = weight_patch(&vs, &subset_split(), &named(&["primary"]), 25).expect("patch");
    assert_eq!(
        ops(&patch),
        json!([
            {"op": "test", "path": "/spec/http/0/name", "value": "primary"},
            {"op": "test", "path": "/spec/http/0/route/1/destination/subset", "value": "canary"},
            {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 25},
            {"op": "test", "path": "/spec/http/0/route/0/destination/subset", "value": "stable"},
            {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 75},
        ])
    );
}

#[test]
fn concurrent_reorder_makes_the_patch_fail_instead_of_shifting_the_wrong_destination() {
    let vs = yaml(SINGLE_HTTP);
    let patch = weight_patch(&vs, &host_split(), &single_route(), 10).expect("patch");
    let mut reordered = vs.clone();
    reordered["spec"]["http"][0]["route"]
        .as_array_mut()
        .expect("list")
        .swap(0, 1);
    let before = reordered.clone();
    assert!(json_patch::patch(&mut reordered, &patch).is_err());
    assert_eq!(reordered, before, "a failed patch leaves the document untouched");

    let vs = yaml(NAMED_HTTP);
    let patch = weight_patch(&vs, &host_split(), &named(&["primary"]), 10).expect("patch");
    let mut reordered = vs.clone();
    reordered["spec"]["http"].as_array_mut().expect("list").swap(0, 1);
    assert!(
        json_patch::patch(&mut reordered, &patch).is_err(),
        "route moved: name test fails"
    );
}

#[test]
fn missing_weight_field_gets_add() {
    let vs = yaml(
        r#"
metadata: {name: web}
spec:
  http:
  - route:
    - destination: {host: web-stable}
      weight: 100
    - destination: {host: web-canary}
"#,
    );
    let patch = weight_patch(&vs, &host_split(), &single_route(), 10).expect("patch");
    assert_eq!(
        ops(&patch),
        json!([
            {"op": "test", "path": "/spec/http/0/route/1/destination/host", "value": "web-canary"},
            {"op": "add", "path": "/spec/http/0/route/1/weight", "value": 10},
            {"op": "test", "path": "/spec/http/0/route/0/destination/host", "value": "web-stable"},
            {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 90},
        ])
    );
    assert_eq!(
        apply(&vs, &patch)["spec"]["http"][0]["route"][1],
        json!({"destination": {"host": "web-canary"}, "weight": 10})
    );
}

#[test]
fn already_at_weight_gives_an_empty_patch() {
    let cases: Vec<(&str, Split, RouteSelector, i32)> = vec![
        (SINGLE_HTTP, host_split(), single_route(), 0),
        (NAMED_HTTP, host_split(), named(&["api", "primary"]), 0),
        (SUBSETS, subset_split(), named(&["primary"]), 0),
        (FQDN_HOSTS, host_split(), single_route(), 0),
        (FLOAT_WEIGHTS, host_split(), single_route(), 0),
    ];
    for (fixture, split, routes, weight) in cases {
        let patch = weight_patch(&yaml(fixture), &split, &routes, weight).expect("patch");
        assert!(patch.0.is_empty(), "{fixture}: got {}", ops(&patch));
    }
    // Only the side that differs gets ops.
    let vs = yaml(SINGLE_HTTP);
    let half = apply(
        &vs,
        &json_patch::Patch(
            serde_json::from_value(json!([
                {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 90}
            ]))
            .expect("ops"),
        ),
    );
    let patch = weight_patch(&half, &host_split(), &single_route(), 10).expect("patch");
    assert_eq!(count_ops(&patch, "replace"), 1);
    assert_eq!(ops(&patch)[1]["path"], json!("/spec/http/0/route/1/weight"));
}

#[test]
fn keeps_retries_and_timeout_unlike_upstream_full_rewrite_2266() {
    let vs = yaml(
        r#"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: web
  namespace: shop
  annotations: {argocd.argoproj.io/tracking-id: "shop:networking.istio.io/VirtualService:shop/web"}
spec:
  hosts: [web.example.com]
  gateways: [shop/public-gateway, mesh]
  http:
  - name: primary
    match: [{uri: {prefix: /}}]
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "gateway-error,connect-failure,refused-stream"}
    timeout: 10s
    headers:
      request: {set: {x-env: prod}}
      response: {remove: [x-internal]}
    corsPolicy:
      allowOrigins: [{exact: "https://shop.example.com"}]
      allowMethods: [GET, POST]
      maxAge: 24h
    fault: {delay: {percentage: {value: 0.1}, fixedDelay: 5s}}
    route:
    - destination: {host: web-stable, port: {number: 80}}
      weight: 100
      headers: {response: {add: {x-version: stable}}}
    - destination: {host: web-canary, port: {number: 80}}
      weight: 0
      headers: {response: {add: {x-version: canary}}}
  - name: admin
    match: [{uri: {prefix: /admin}}]
    retries: {attempts: 1}
    route:
    - destination: {host: admin, port: {number: 9000}}
"#,
    );
    let patch = weight_patch(&vs, &host_split(), &named(&["primary"]), 15).expect("patch");
    let after = apply(&vs, &patch);

    let text = |v: &Value| serde_json::to_string(v).expect("serialise");
    for pointer in [
        "/metadata",
        "/spec/hosts",
        "/spec/gateways",
        "/spec/http/0/match",
        "/spec/http/0/retries",
        "/spec/http/0/timeout",
        "/spec/http/0/headers",
        "/spec/http/0/corsPolicy",
        "/spec/http/0/fault",
        "/spec/http/0/route/0/destination",
        "/spec/http/0/route/0/headers",
        "/spec/http/0/route/1/destination",
        "/spec/http/0/route/1/headers",
        "/spec/http/1",
    ] {
        let (before, now) = (vs.pointer(pointer), after.pointer(pointer));
        assert!(before.is_some(), "fixture has {pointer}");
        assert_eq!(
            before.map(text),
            now.map(text),
            "{pointer} must survive byte-for-byte"
        );
    }
    assert_eq!(after["spec"]["http"][0]["route"][0]["weight"], json!(85));
    assert_eq!(after["spec"]["http"][0]["route"][1]["weight"], json!(15));
    assert_eq!(
        without_weights(&after),
        without_weights(&vs),
        "nothing but weights changed"
    );
    assert!(
        ops(&patch).as_array().expect("ops").iter().all(|op| op["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/weight")
                || p.ends_with("/destination/host")
                || p.ends_with("/name")))
    );
}

#[test]
fn other_destinations_are_kept_when_they_carry_no_traffic() {
    let vs = yaml(
        r#"
metadata: {name: web}
spec:
  http:
  - route:
    - destination: {host: web-stable}
      weight: 100
    - destination: {host: web-canary}
      weight: 0
    - destination: {host: web-preview}
      weight: 0
    - destination: {host: web-legacy}
"#,
    );
    let after = apply(
        &vs,
        &weight_patch(&vs, &host_split(), &single_route(), 10).expect("patch"),
    );
    let dests = after["spec"]["http"][0]["route"].as_array().expect("list");
    assert_eq!(
        dests.len(),
        4,
        "upstream deletes unknown destinations; we keep them"
    );
    assert_eq!(dests[2], vs["spec"]["http"][0]["route"][2]);
    assert_eq!(dests[3], vs["spec"]["http"][0]["route"][3]);
}

#[test]
fn each_error_names_the_virtual_service_and_route() {
    let split = host_split();
    let cases: Vec<(&str, &str, Split, RouteSelector, i32, &str)> = vec![
        (
            "negative weight",
            SINGLE_HTTP,
            split.clone(),
            single_route(),
            -1,
            "canary weight -1 is outside 0..=100",
        ),
        (
            "weight above 100",
            SINGLE_HTTP,
            split.clone(),
            single_route(),
            101,
            "canary weight 101 is outside 0..=100",
        ),
        (
            "named route not found",
            NAMED_HTTP,
            split.clone(),
            named(&["primary", "checkout"]),
            10,
            r#"VirtualService "web" has no http route named "checkout""#,
        ),
        (
            "no canary destination",
            NAMED_HTTP,
            Split::Host(HostSplit {
                canary_service: "web-next".into(),
                stable_service: "web-stable".into(),
            }),
            named(&["primary"]),
            10,
            r#"http route "primary" (spec.http[1]) of VirtualService "web" has no destination for the canary service "web-next""#,
        ),
        (
            "no stable destination",
            NAMED_HTTP,
            Split::Host(HostSplit {
                canary_service: "web-canary".into(),
                stable_service: "web-old".into(),
            }),
            named(&["api"]),
            10,
            r#"http route "api" (spec.http[0]) of VirtualService "web" has no destination for the stable service "web-old""#,
        ),
        (
            "no stable subset",
            SUBSETS,
            Split::Subset(sluice_traffic::istio::SubsetSplit {
                host: None,
                canary_subset: "canary".into(),
                stable_subset: "v1".into(),
            }),
            named(&["primary"]),
            10,
            r#"http route "primary" (spec.http[0]) of VirtualService "web" has no destination for the stable subset "v1""#,
        ),
        (
            "subset of another host",
            SUBSETS,
            Split::Subset(sluice_traffic::istio::SubsetSplit {
                host: Some("shop".into()),
                canary_subset: "canary".into(),
                stable_subset: "stable".into(),
            }),
            named(&["primary"]),
            10,
            r#"http route "primary" (spec.http[0]) of VirtualService "web" has no destination for the canary subset "canary""#,
        ),
        (
            "no http routes",
            "metadata: {name: web}\nspec: {hosts: [web]}",
            split.clone(),
            single_route(),
            10,
            r#"VirtualService "web" has no http routes"#,
        ),
        (
            "several http routes and none named",
            NAMED_HTTP,
            split.clone(),
            single_route(),
            10,
            r#"VirtualService "web" has 3 http routes; it must have exactly one when the Rollout names no routes (set trafficRouting.istio.virtualService.routes)"#,
        ),
        (
            "tls route not found",
            TLS_TCP,
            split.clone(),
            RouteSelector {
                tls: vec![tls(443, &["b.example.com"])],
                ..RouteSelector::default()
            },
            10,
            r#"VirtualService "web" has no tls route with port Some(443) and sniHosts ["b.example.com"]"#,
        ),
        (
            "tcp route not found",
            TLS_TCP,
            split.clone(),
            RouteSelector {
                tcp: vec![TcpMatch { port: Some(80) }],
                ..RouteSelector::default()
            },
            10,
            r#"VirtualService "web" has no tcp route with port Some(80)"#,
        ),
        (
            "foreign destination with traffic",
            "metadata: {name: web}\nspec:\n  http:\n  - route:\n    - {destination: {host: web-stable}, weight: 80}\n    - {destination: {host: web-canary}, weight: 0}\n    - {destination: {host: legacy, subset: v0}, weight: 20}",
            split.clone(),
            single_route(),
            10,
            r#"http route spec.http[0] of VirtualService "web" gives weight 20 to host "legacy" subset "v0", which is neither canary nor stable; canary and stable weights would not total 100"#,
        ),
        (
            "two canary destinations",
            "metadata: {name: web}\nspec:\n  http:\n  - route:\n    - {destination: {host: web-stable}, weight: 100}\n    - {destination: {host: web-canary, port: {number: 80}}, weight: 0}\n    - {destination: {host: web-canary.shop, port: {number: 81}}, weight: 0}",
            split.clone(),
            single_route(),
            10,
            r#"http route spec.http[0] of VirtualService "web" has more than one destination for the canary service "web-canary""#,
        ),
        (
            "route list is not a list",
            "metadata: {name: web}\nspec:\n  http:\n  - route: {destination: {host: web-stable}}",
            split.clone(),
            single_route(),
            10,
            r#"VirtualService "web": spec.http[0].route is not a list"#,
        ),
        (
            "weight is not a number",
            "metadata: {name: web}\nspec:\n  http:\n  - route:\n    - {destination: {host: web-stable}, weight: \"100\"}\n    - {destination: {host: web-canary}}",
            split.clone(),
            single_route(),
            10,
            r#"VirtualService "web": spec.http[0].route[0].weight is not a number"#,
        ),
    ];
    let cases = cases.into_iter().chain([(
        "weight does not fit Istio's int32",
        "metadata: {name: web}\nspec:\n  http:\n  - route:\n    - {destination: {host: web-stable}, weight: 5000000000}\n    - {destination: {host: web-canary}}",
        split.clone(),
        single_route(),
        10,
        r#"VirtualService "web": spec.http[0].route[0].weight is not a 32-bit integer"#,
    )]);
    for (name, fixture, split, routes, weight, message) in cases {
        let err = weight_patch(&yaml(fixture), &split, &routes, weight).expect_err(name);
        assert_eq!(err.to_string(), message, "{name}");
    }
    assert!(matches!(
        verify(&yaml(SINGLE_HTTP), &host_split(), &single_route(), 101),
        Err(IstioError::WeightOutOfRange(101))
    ));
}

#[test]
fn tls_and_tcp_selection_follows_upstream_matching() {
    let vs = yaml(
        r#"
metadata: {name: web}
spec:
  tls:
  - match: [{port: 443, sniHosts: [a.example.com]}, {port: 8443, sniHosts: [a.example.com]}]
    route:
    - {destination: {host: web-stable}, weight: 100}
    - {destination: {host: web-canary}, weight: 0}
  - match: [{sniHosts: [a.example.com]}, {sniHosts: [b.example.com]}]
    route:
    - {destination: {host: web-stable}, weight: 100}
    - {destination: {host: web-canary}, weight: 0}
  tcp:
  - match: [{port: 5432}, {port: 5432, sourceLabels: {app: worker}}]
    route:
    - {destination: {host: web-stable}, weight: 100}
    - {destination: {host: web-canary}, weight: 0}
"#,
    );
    // A route whose match entries name two ports is never selected.
    let multi_port = RouteSelector {
        tls: vec![tls(443, &["a.example.com"])],
        ..RouteSelector::default()
    };
    assert!(matches!(
        weight_patch(&vs, &host_split(), &multi_port, 10),
        Err(IstioError::TlsRouteNotFound { .. })
    ));
    // No port on either side matches, and SNI hosts are the union of the match entries.
    let portless = RouteSelector {
        tls: vec![TlsMatch {
            port: None,
            sni_hosts: vec!["b.example.com".into(), "a.example.com".into()],
        }],
        tcp: vec![TcpMatch { port: Some(5432) }],
        ..RouteSelector::default()
    };
    let after = apply(
        &vs,
        &weight_patch(&vs, &host_split(), &portless, 10).expect("patch"),
    );
    assert_eq!(
        weights(&after, &host_split(), &portless),
        vec![(RouteKind::Tls, 1, 10, 90), (RouteKind::Tcp, 0, 10, 90)]
    );
    assert_eq!(after["spec"]["tls"][0], vs["spec"]["tls"][0]);
}

#[test]
fn unnamed_rule_ignores_managed_routes_and_shifts_managed_mirrors_too() {
    let vs = yaml(
        r#"
metadata: {name: web}
spec:
  http:
  - name: header-canary
    match: [{headers: {x-canary: {exact: "yes"}}}]
    route:
    - {destination: {host: web-canary}, weight: 100}
  - name: mirror-posts
    match: [{method: {exact: POST}}]
    route:
    - {destination: {host: web-stable}, weight: 90}
    - {destination: {host: web-canary}, weight: 10}
    mirror: {host: web-canary}
    mirrorPercentage: {value: 50}
  - route:
    - {destination: {host: web-stable}, weight: 90}
    - {destination: {host: web-canary}, weight: 10}
"#,
    );
    let managed = vec!["header-canary".to_string(), "mirror-posts".to_string()];
    let routes = single_route();
    assert!(matches!(
        weight_patch(&vs, &host_split(), &routes, 20),
        Err(IstioError::AmbiguousHttpRoutes { count: 3, .. })
    ));
    let after = apply(
        &vs,
        &weight_patch_with_managed(&vs, &host_split(), &routes, &managed, 20).expect("patch"),
    );
    assert!(verify_with_managed(&after, &host_split(), &routes, &managed, 20).expect("verify"));
    let observed: Vec<_> = observed_weights_with_managed(&after, &host_split(), &routes, &managed)
        .expect("observe")
        .into_iter()
        .map(|w| (w.route.kind, w.route.index, w.canary, w.stable))
        .collect();
    assert_eq!(
        observed,
        vec![(RouteKind::Http, 2, 20, 80), (RouteKind::Http, 1, 20, 80)],
        "weighted route first, then the managed mirror route"
    );
    assert_eq!(
        after["spec"]["http"][0], vs["spec"]["http"][0],
        "header route keeps weight 100 to canary"
    );
    assert_eq!(
        after["spec"]["http"][1]["mirror"],
        vs["spec"]["http"][1]["mirror"]
    );
}

#[test]
fn observed_weights_read_like_istio() {
    let cases: Vec<(&str, &str, i32, i32)> = vec![
        (
            "single stable destination without weight gets everything",
            "- {destination: {host: web-stable}}",
            0,
            100,
        ),
        (
            "single canary destination without weight gets everything",
            "- {destination: {host: web-canary}}",
            100,
            0,
        ),
        (
            "missing weight among several counts as 0",
            "- {destination: {host: web-stable}, weight: 100}\n    - {destination: {host: web-canary}}",
            0,
            100,
        ),
        (
            "explicit weights",
            "- {destination: {host: web-stable}, weight: 70}\n    - {destination: {host: web-canary}, weight: 30}",
            30,
            70,
        ),
        (
            "single foreign destination",
            "- {destination: {host: other}}",
            0,
            0,
        ),
    ];
    for (name, route, canary, stable) in cases {
        let vs = yaml(&format!(
            "metadata: {{name: web}}\nspec:\n  http:\n  - route:\n    {route}\n"
        ));
        let observed = observed_weights(&vs, &host_split(), &single_route()).expect(name);
        assert_eq!(
            (observed[0].canary, observed[0].stable),
            (canary, stable),
            "{name}"
        );
        assert_eq!(observed[0].route.to_string(), "http route spec.http[0]");
    }
}

#[test]
fn verify_is_true_only_when_every_targeted_route_is_at_the_weight() {
    let vs = yaml(NAMED_HTTP);
    let both = named(&["api", "primary"]);
    let cases: Vec<(Value, i32, bool)> = vec![
        (vs.clone(), 0, true),
        (vs.clone(), 10, false),
        (
            apply(
                &vs,
                &weight_patch(&vs, &host_split(), &named(&["primary"]), 10).expect("patch"),
            ),
            10,
            false,
        ),
        (
            apply(&vs, &weight_patch(&vs, &host_split(), &both, 10).expect("patch")),
            10,
            true,
        ),
        (
            apply(&vs, &weight_patch(&vs, &host_split(), &both, 10).expect("patch")),
            0,
            false,
        ),
    ];
    for (i, (doc, weight, expected)) in cases.into_iter().enumerate() {
        assert_eq!(
            verify(&doc, &host_split(), &both, weight).expect("verifiable"),
            expected,
            "case {i}"
        );
    }
    // Weights that do not total 100 are never "done".
    let skewed = yaml(
        "metadata: {name: web}\nspec:\n  http:\n  - route:\n    - {destination: {host: web-stable}, weight: 100}\n    - {destination: {host: web-canary}, weight: 10}",
    );
    assert!(!verify(&skewed, &host_split(), &single_route(), 10).expect("verifiable"));
    assert!(!verify(&skewed, &host_split(), &single_route(), 0).expect("verifiable"));
}

#[test]
fn patch_then_verify_holds_for_every_weight() {
    let fixtures: Vec<(&str, Split, RouteSelector)> = vec![
        (SINGLE_HTTP, host_split(), single_route()),
        (NAMED_HTTP, host_split(), named(&["primary", "api"])),
        (SUBSETS, subset_split(), named(&["primary"])),
        (FQDN_HOSTS, host_split(), single_route()),
        (NO_WEIGHTS, host_split(), single_route()),
        (
            TLS_TCP,
            host_split(),
            RouteSelector {
                tls: vec![
                    tls(3000, &["a.example.com"]),
                    tls(443, &["b.example.com", "c.example.com"]),
                ],
                tcp: vec![TcpMatch { port: Some(5432) }, TcpMatch { port: Some(6379) }],
                ..RouteSelector::default()
            },
        ),
    ];
    for (fixture, split, routes) in fixtures {
        let original = yaml(fixture);
        let mut stepped = original.clone();
        for weight in 0..=100 {
            // From the original object and from the previous step, as the reconciler would see them.
            for start in [&original, &stepped.clone()] {
                let patch = weight_patch(start, &split, &routes, weight).expect("patch");
                let after = apply(start, &patch);
                assert!(
                    verify(&after, &split, &routes, weight).expect("verify"),
                    "{fixture} at {weight}"
                );
                if weight > 0 {
                    assert!(!verify(&after, &split, &routes, weight - 1).expect("verify"));
                }
                assert_eq!(without_weights(&after), without_weights(&original));
                assert!(
                    weight_patch(&after, &split, &routes, weight)
                        .expect("patch")
                        .0
                        .is_empty()
                );
                stepped = after;
            }
        }
        for w in weights(&stepped, &split, &routes) {
            assert_eq!((w.2, w.3), (100, 0));
        }
    }
}
