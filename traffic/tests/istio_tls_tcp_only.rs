//! VirtualServices with tls/tcp routes but no http route: route names apply to the kinds that have them, and
//! without tls/tcp selectors the single tls route and the single tcp route carry the weights.

mod common;

use common::{apply, host_split, named, ops, single_route, without_weights, yaml};
use serde_json::Value;
use sluice_traffic::istio::{
    IstioError, RouteKind, RouteSelector, TcpMatch, TlsMatch, canary_destination, observed_weights,
    observed_weights_with_managed, verify, weight_patch, weight_patch_with_managed,
};

const TLS_ONLY: &str = r#"
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web.example.com]
  tls:
  - match: [{port: 443, sniHosts: [web.example.com]}]
    route:
    - destination: {host: web-stable}
      weight: 100
    - destination: {host: web-canary}
      weight: 0
"#;

const TCP_ONLY: &str = r#"
kind: VirtualService
metadata: {name: db}
spec:
  hosts: [db]
  tcp:
  - match: [{port: 5432}]
    route:
    - destination: {host: web-stable}
      weight: 100
    - destination: {host: web-canary}
      weight: 0
"#;

const ONE_TLS_ONE_TCP: &str = r#"
kind: VirtualService
metadata: {name: edge}
spec:
  tls:
  - match: [{port: 443, sniHosts: [web.example.com]}]
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
"#;

const TWO_TLS: &str = r#"
kind: VirtualService
metadata: {name: web}
spec:
  tls:
  - match: [{port: 443, sniHosts: [a.example.com]}]
    route:
    - destination: {host: web-stable}
      weight: 100
    - destination: {host: web-canary}
      weight: 0
  - match: [{port: 443, sniHosts: [b.example.com]}]
    route:
    - destination: {host: web-stable}
      weight: 100
    - destination: {host: web-canary}
      weight: 0
"#;

const TWO_TCP: &str = r#"
kind: VirtualService
metadata: {name: db}
spec:
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

const HTTP_AND_TLS: &str = r#"
kind: VirtualService
metadata: {name: web}
spec:
  http:
  - name: primary
    route:
    - destination: {host: web-stable}
      weight: 100
    - destination: {host: web-canary}
      weight: 0
  tls:
  - match: [{port: 443, sniHosts: [web.example.com]}]
    route:
    - destination: {host: web-stable}
      weight: 100
    - destination: {host: web-canary}
      weight: 0
"#;

/// (route kind, index, canary, stable) for every targeted route of `observed_weights`.
fn weights(vs: &Value, routes: &RouteSelector) -> Vec<(RouteKind, usize, i32, i32)> {
    observed_weights(vs, &host_split(), routes)
        .expect("observable")
        .into_iter()
        .map(|w| (w.route.kind, w.route.index, w.canary, w.stable))
        .collect()
}

/// Patches `fixture` to `weight`, checks only weights changed, the result verifies and a second patch is empty,
/// and returns the observed weights after the patch.
fn shift(fixture: &str, routes: &RouteSelector, weight: i32) -> Vec<(RouteKind, usize, i32, i32)> {
    let vs = yaml(fixture);
    let patch = weight_patch(&vs, &host_split(), routes, weight).expect("patch");
    let after = apply(&vs, &patch);
    assert_eq!(
        without_weights(&after),
        without_weights(&vs),
        "only weights change"
    );
    assert!(verify(&after, &host_split(), routes, weight).expect("verifiable"));
    let again = weight_patch(&after, &host_split(), routes, weight).expect("still valid");
    assert!(
        again.0.is_empty(),
        "second patch must be empty, got {}",
        ops(&again)
    );
    weights(&after, routes)
}

#[test]
fn a_tls_only_virtual_service_with_a_route_name_list_shifts_its_tls_route() {
    assert_eq!(
        shift(TLS_ONLY, &named(&["primary"]), 10),
        vec![(RouteKind::Tls, 0, 10, 90)]
    );
}

#[test]
fn a_tls_only_virtual_service_without_selectors_uses_its_single_tls_route() {
    assert_eq!(
        shift(TLS_ONLY, &single_route(), 30),
        vec![(RouteKind::Tls, 0, 30, 70)]
    );
    let empty_names = RouteSelector {
        http: Some(Vec::new()),
        ..RouteSelector::default()
    };
    assert_eq!(
        shift(TLS_ONLY, &empty_names, 30),
        vec![(RouteKind::Tls, 0, 30, 70)]
    );
}

#[test]
fn a_tcp_only_virtual_service_without_selectors_uses_its_single_tcp_route() {
    assert_eq!(
        shift(TCP_ONLY, &single_route(), 25),
        vec![(RouteKind::Tcp, 0, 25, 75)]
    );
}

#[test]
fn a_tcp_only_virtual_service_with_a_route_name_list_shifts_its_tcp_route() {
    assert_eq!(
        shift(TCP_ONLY, &named(&["primary", "api"]), 50),
        vec![(RouteKind::Tcp, 0, 50, 50)]
    );
}

#[test]
fn one_tls_and_one_tcp_route_without_selectors_are_both_shifted() {
    let expected = vec![(RouteKind::Tls, 0, 40, 60), (RouteKind::Tcp, 0, 40, 60)];
    assert_eq!(shift(ONE_TLS_ONE_TCP, &single_route(), 40), expected);
    assert_eq!(shift(ONE_TLS_ONE_TCP, &named(&["primary"]), 40), expected);
}

#[test]
fn two_tls_routes_and_no_selector_is_an_error_naming_the_virtual_service() {
    for routes in [single_route(), named(&["primary"])] {
        let err = weight_patch(&yaml(TWO_TLS), &host_split(), &routes, 10).expect_err("ambiguous");
        assert_eq!(
            err,
            IstioError::AmbiguousTlsRoutes {
                vs: "web".into(),
                count: 2
            }
        );
        assert_eq!(
            err.to_string(),
            r#"VirtualService "web" has no http routes and 2 tls routes; it must have exactly one when the Rollout selects none (set trafficRouting.istio.virtualService.tlsRoutes)"#
        );
        assert!(matches!(
            observed_weights(&yaml(TWO_TLS), &host_split(), &routes),
            Err(IstioError::AmbiguousTlsRoutes { count: 2, .. })
        ));
    }
}

#[test]
fn two_tcp_routes_and_no_selector_is_an_error_naming_the_virtual_service() {
    for routes in [single_route(), named(&["primary"])] {
        let err = verify(&yaml(TWO_TCP), &host_split(), &routes, 10).expect_err("ambiguous");
        assert_eq!(
            err,
            IstioError::AmbiguousTcpRoutes {
                vs: "db".into(),
                count: 2
            }
        );
        assert_eq!(
            err.to_string(),
            r#"VirtualService "db" has no http routes and 2 tcp routes; it must have exactly one when the Rollout selects none (set trafficRouting.istio.virtualService.tcpRoutes)"#
        );
    }
}

#[test]
fn tls_and_tcp_selectors_with_a_route_name_list_select_as_before() {
    let tls_selector = RouteSelector {
        http: Some(vec!["primary".into()]),
        tls: vec![TlsMatch {
            port: Some(443),
            sni_hosts: vec!["b.example.com".into()],
        }],
        ..RouteSelector::default()
    };
    assert_eq!(
        shift(TWO_TLS, &tls_selector, 20),
        vec![(RouteKind::Tls, 1, 20, 80)]
    );
    let tcp_selector = RouteSelector {
        http: Some(vec!["primary".into()]),
        tcp: vec![TcpMatch { port: Some(6379) }],
        ..RouteSelector::default()
    };
    assert_eq!(
        shift(TWO_TCP, &tcp_selector, 20),
        vec![(RouteKind::Tcp, 1, 20, 80)]
    );
    // A tcp selector alone leaves the tls route alone, even when it is the only one.
    let tcp_only = RouteSelector {
        tcp: vec![TcpMatch { port: Some(5432) }],
        ..RouteSelector::default()
    };
    assert_eq!(
        shift(ONE_TLS_ONE_TCP, &tcp_only, 20),
        vec![(RouteKind::Tcp, 0, 20, 80)]
    );
}

#[test]
fn a_selector_that_matches_nothing_reports_the_selector_not_the_route_names() {
    let missing = RouteSelector {
        http: Some(vec!["primary".into()]),
        tls: vec![TlsMatch {
            port: Some(8443),
            sni_hosts: vec!["web.example.com".into()],
        }],
        ..RouteSelector::default()
    };
    assert!(matches!(
        weight_patch(&yaml(TLS_ONLY), &host_split(), &missing, 10),
        Err(IstioError::TlsRouteNotFound { port: Some(8443), .. })
    ));
}

#[test]
fn a_missing_route_name_is_still_an_error_when_the_virtual_service_has_http_routes() {
    let err =
        weight_patch(&yaml(HTTP_AND_TLS), &host_split(), &named(&["checkout"]), 10).expect_err("missing");
    assert_eq!(
        err,
        IstioError::HttpRouteNotFound {
            vs: "web".into(),
            name: "checkout".into()
        }
    );
    // With http routes present and no selectors, only the single http route is targeted (as before).
    assert_eq!(
        shift(HTTP_AND_TLS, &single_route(), 10),
        vec![(RouteKind::Http, 0, 10, 90)]
    );
}

#[test]
fn a_virtual_service_without_any_route_reports_its_missing_http_routes() {
    let empty = yaml("metadata: {name: web}\nspec: {hosts: [web]}");
    for routes in [single_route(), named(&["primary"])] {
        assert_eq!(
            weight_patch(&empty, &host_split(), &routes, 10),
            Err(IstioError::NoHttpRoutes { vs: "web".into() })
        );
    }
}

#[test]
fn managed_route_names_do_not_matter_on_a_tls_only_virtual_service() {
    let vs = yaml(TLS_ONLY);
    let managed = vec!["header-route".to_string()];
    let patch =
        weight_patch_with_managed(&vs, &host_split(), &named(&["primary"]), &managed, 60).expect("patch");
    let after = apply(&vs, &patch);
    let observed = observed_weights_with_managed(&after, &host_split(), &named(&["primary"]), &managed)
        .expect("observable");
    assert_eq!(observed.len(), 1);
    assert_eq!(
        (observed[0].route.kind, observed[0].canary, observed[0].stable),
        (RouteKind::Tls, 60, 40)
    );
    // Header and mirror routes are http routes: their canary destination still needs an http route.
    assert_eq!(
        canary_destination(&vs, &host_split(), &named(&["primary"]), &managed),
        Err(IstioError::NoHttpRoutes { vs: "web".into() })
    );
}
