//! Gateway API header routes: a rule appended per setHeaderRoute, updated in place, removed at the end; and the
//! router as the reconciler drives it (HTTP, gRPC and TCP routes together).

mod common;

use common::{apply, ops, yaml};
use serde_json::{Value, json};
use sluice_traffic::gatewayapi::{
    GatewayRoute, GatewayRouter, MANAGED_ROUTES_ANNOTATION, RouteKind, Services, header_route_patch,
    managed_rules, remove_managed_routes_patch,
};
use sluice_traffic::{
    Desired, HeaderMatch, HeaderRoute, MirrorRoute, Objects, Router, RouterError, StringMatch, Write,
};

const HTTP: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /api}
      method: GET
      headers: [{name: x-env, value: prod}]
    - path: {type: Exact, value: /health}
    filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: x-served-by, value: web}]}
    backendRefs:
    - {name: web-stable, port: 8080, weight: 90}
    - {name: web-canary, port: 8080, weight: 10}
"#;

const GRPC: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: web-grpc, namespace: shop}
spec:
  rules:
  - matches: [{method: {service: shop.Cart, method: Get}}]
    backendRefs:
    - {name: web-canary, port: 9090, weight: 10}
    - {name: web-stable, port: 9090, weight: 90}
"#;

const TCP: &str = r#"
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: {name: web-tcp, namespace: shop}
spec:
  rules:
  - backendRefs:
    - {name: web-stable, port: 5432, weight: 90}
    - {name: web-canary, port: 5432, weight: 10}
"#;

fn services() -> Services {
    Services {
        canary: "web-canary".into(),
        stable: "web-stable".into(),
    }
}

fn header(name: &str, value: StringMatch) -> HeaderMatch {
    HeaderMatch {
        header_name: name.into(),
        value,
    }
}

fn http_patch(doc: &Value, name: &str, matches: &[HeaderMatch]) -> Value {
    let patch = header_route_patch(doc, RouteKind::Http, &services(), name, matches).expect("patch");
    apply(doc, &patch)
}

#[test]
fn header_route_is_appended_with_the_split_rule_matches_and_filters() {
    let doc = yaml(HTTP);
    let after = http_patch(
        &doc,
        "canary-header",
        &[
            header("x-canary", StringMatch::Exact("yes".into())),
            header("x-tenant", StringMatch::Prefix("beta.".into())),
            header("user-agent", StringMatch::Regex(".*Android.*".into())),
        ],
    );
    let rules = after["spec"]["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0], doc["spec"]["rules"][0], "the split rule is untouched");
    let added = [
        json!({"name": "x-canary", "type": "Exact", "value": "yes"}),
        json!({"name": "x-tenant", "type": "RegularExpression", "value": "beta\\..*"}),
        json!({"name": "user-agent", "type": "RegularExpression", "value": ".*Android.*"}),
    ];
    assert_eq!(
        rules[1],
        json!({
            "matches": [
                {"path": {"type": "PathPrefix", "value": "/api"}, "method": "GET",
                 "headers": [{"name": "x-env", "value": "prod"}, added[0], added[1], added[2]]},
                {"path": {"type": "Exact", "value": "/health"}, "headers": added},
            ],
            "filters": doc["spec"]["rules"][0]["filters"],
            "backendRefs": [{"group": "", "kind": "Service", "name": "web-canary", "port": 8080}],
        })
    );
    assert_eq!(after["metadata"]["labels"], doc["metadata"]["labels"]);
    assert_eq!(
        after["metadata"]["annotations"][MANAGED_ROUTES_ANNOTATION],
        json!(r#"{"canary-header":1}"#)
    );
    assert_eq!(managed_rules(&after).expect("state").len(), 1);
}

#[test]
fn header_route_is_updated_in_place_and_is_idempotent() {
    let doc = yaml(HTTP);
    let first = http_patch(&doc, "h", &[header("x-canary", StringMatch::Exact("yes".into()))]);
    let again = header_route_patch(
        &first,
        RouteKind::Http,
        &services(),
        "h",
        &[header("x-canary", StringMatch::Exact("yes".into()))],
    )
    .expect("patch");
    assert!(again.0.is_empty(), "already present: {}", ops(&again));

    let patch = header_route_patch(
        &first,
        RouteKind::Http,
        &services(),
        "h",
        &[header("x-canary", StringMatch::Exact("always".into()))],
    )
    .expect("patch");
    assert_eq!(
        ops(&patch)[0]["op"],
        "test",
        "the old rule is pinned: {}",
        ops(&patch)
    );
    assert_eq!(ops(&patch)[1]["op"], "replace");
    let updated = apply(&first, &patch);
    assert_eq!(updated["spec"]["rules"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        updated["spec"]["rules"][1]["matches"][1]["headers"][0]["value"],
        "always"
    );
}

#[test]
fn header_routes_are_removed_and_the_others_keep_their_place() {
    let doc = yaml(HTTP);
    let one = http_patch(&doc, "a", &[header("x-a", StringMatch::Exact("1".into()))]);
    let two = http_patch(&one, "b", &[header("x-b", StringMatch::Exact("1".into()))]);
    assert_eq!(two["spec"]["rules"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        two["metadata"]["annotations"][MANAGED_ROUTES_ANNOTATION],
        json!(r#"{"a":1,"b":2}"#)
    );

    let without_a = apply(
        &two,
        &remove_managed_routes_patch(&two, &["a".into()]).expect("patch"),
    );
    assert_eq!(without_a["spec"]["rules"].as_array().map(Vec::len), Some(2));
    assert_eq!(without_a["spec"]["rules"][1], two["spec"]["rules"][2]);
    assert_eq!(
        without_a["metadata"]["annotations"][MANAGED_ROUTES_ANNOTATION],
        json!(r#"{"b":1}"#)
    );

    // setHeaderRoute without matches removes the route, as upstream does.
    let empty = header_route_patch(&without_a, RouteKind::Http, &services(), "b", &[]).expect("patch");
    let back = apply(&without_a, &empty);
    assert_eq!(back, doc, "the route reads as before the steps");
    assert!(
        remove_managed_routes_patch(&back, &["a".into(), "b".into()])
            .expect("patch")
            .0
            .is_empty()
    );
}

#[test]
fn a_managed_rule_changed_by_someone_else_fails_the_removal() {
    let doc = yaml(HTTP);
    let with = http_patch(&doc, "a", &[header("x-a", StringMatch::Exact("1".into()))]);
    let patch = remove_managed_routes_patch(&with, &["a".into()]).expect("patch");
    let mut changed = with.clone();
    changed["spec"]["rules"][1]["filters"] = json!([]);
    assert!(json_patch::patch(&mut changed, &patch).is_err());
}

#[test]
fn grpc_header_route_keeps_the_method() {
    let doc = yaml(GRPC);
    let patch = header_route_patch(
        &doc,
        RouteKind::Grpc,
        &services(),
        "h",
        &[header("x-canary", StringMatch::Exact("yes".into()))],
    )
    .expect("patch");
    let after = apply(&doc, &patch);
    assert_eq!(
        after["spec"]["rules"][1],
        json!({
            "matches": [{"method": {"service": "shop.Cart", "method": "Get"},
                         "headers": [{"name": "x-canary", "type": "Exact", "value": "yes"}]}],
            "backendRefs": [{"group": "", "kind": "Service", "name": "web-canary", "port": 9090}],
        })
    );
}

fn router() -> GatewayRouter {
    GatewayRouter {
        routes: vec![
            GatewayRoute::new(RouteKind::Http, "shop", "web", true),
            GatewayRoute::new(RouteKind::Http, "shop", "web-internal", false),
            GatewayRoute::new(RouteKind::Grpc, "shop", "web-grpc", true),
            GatewayRoute::new(RouteKind::Tcp, "shop", "web-tcp", true),
        ],
        services: services(),
    }
}

fn objects() -> Objects {
    let mut internal = yaml(HTTP);
    internal["metadata"]["name"] = json!("web-internal");
    let r = router();
    [yaml(HTTP), internal, yaml(GRPC), yaml(TCP)]
        .into_iter()
        .zip(r.targets())
        .map(|(doc, target)| (target, Some(doc)))
        .collect()
}

/// `objects` with every write applied.
fn written(objects: &Objects, writes: &[Write]) -> Objects {
    let mut out = objects.clone();
    for write in writes {
        let Write::Patch { target, patch } = write else {
            panic!("only patches: {write:?}")
        };
        let doc = out.get_mut(target).and_then(Option::as_mut).expect("target read");
        json_patch::patch(doc, patch).expect("patch applies");
    }
    out
}

#[test]
fn router_walks_weights_over_every_kind() {
    let r = router();
    let objects = objects();
    assert_eq!(r.name(), "argoproj-labs/gatewayAPI");
    assert_eq!(r.observe(&objects).expect("seen").weights, vec![10, 10, 10, 10]);
    assert!(
        r.apply(&objects, &Desired::canary(10))
            .expect("writes")
            .is_empty()
    );
    assert!(r.verify(&objects, &Desired::canary(10)).expect("verify"));
    let writes = r.apply(&objects, &Desired::canary(40)).expect("writes");
    assert_eq!(writes.len(), 4);
    assert!(!r.verify(&objects, &Desired::canary(40)).expect("verify"));
    let after = written(&objects, &writes);
    assert_eq!(r.observe(&after).expect("seen").weights, vec![40, 40, 40, 40]);
    assert!(r.verify(&after, &Desired::canary(40)).expect("verify"));
}

#[test]
fn router_header_routes_only_where_asked_and_reset_takes_them_back() {
    let r = router();
    let objects = objects();
    let route = HeaderRoute {
        name: "h".into(),
        matches: vec![header("x-canary", StringMatch::Exact("yes".into()))],
    };
    let writes = r.set_header_route(&objects, &route).expect("writes");
    let names: Vec<&str> = writes
        .iter()
        .map(|w| match w {
            Write::Patch { target, .. } => target.name.as_str(),
            _ => "",
        })
        .collect();
    assert_eq!(
        names,
        vec!["web", "web-grpc"],
        "useHeaderRoutes routes with headers"
    );
    let after = written(&objects, &writes);
    let seen = r.observe(&after).expect("seen");
    assert_eq!(seen.managed_routes, vec!["h".to_string()]);
    assert_eq!(
        seen.weights,
        vec![10, 10, 10, 10],
        "the header rule carries no split"
    );
    assert!(r.set_header_route(&after, &route).expect("writes").is_empty());
    let at_weight = written(&after, &r.apply(&after, &Desired::canary(50)).expect("writes"));
    assert_eq!(
        at_weight[&r.targets()[0]].as_ref().expect("web")["spec"]["rules"][1],
        after[&r.targets()[0]].as_ref().expect("web")["spec"]["rules"][1],
        "weights leave the header rule alone"
    );
    let reset = written(&at_weight, &r.reset(&at_weight).expect("writes"));
    assert!(r.observe(&reset).expect("seen").managed_routes.is_empty());
    assert_eq!(
        reset,
        written(
            &objects,
            &r.apply(&objects, &Desired::canary(50)).expect("writes")
        )
    );
    assert!(
        r.remove_managed_routes(&reset, &["h".into()])
            .expect("writes")
            .is_empty()
    );
}

#[test]
fn router_errors_are_clear() {
    let r = router();
    let mut objects = objects();
    objects.insert(r.targets()[3].clone(), None);
    assert_eq!(
        r.observe(&objects).expect_err("missing"),
        RouterError::NotFound("TCPRoute \"web-tcp\" in namespace \"shop\"".into())
    );
    let mirror = MirrorRoute {
        name: "m".into(),
        matches: Vec::new(),
        percentage: None,
    };
    let err = r
        .set_mirror_route(&objects, &mirror)
        .expect_err("mirror")
        .to_string();
    assert!(err.contains("does not support setMirrorRoute"), "{err}");
}
