//! The canary Ingress built from a stable Ingress: rules, backends, TLS, class, annotations, owner, name.

mod common;

use std::collections::BTreeMap;

use common::yaml;
use serde_json::{Value, json};
use sluice_traffic::RouterError;
use sluice_traffic::nginx::{
    CanaryIngressSpec, DEFAULT_ANNOTATION_PREFIX, Owner, canary_ingress, canary_ingress_name,
};

const STABLE: &str = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  labels: {team: payments}
  annotations:
    kubernetes.io/ingress.class: nginx
    nginx.ingress.kubernetes.io/rewrite-target: /
    argocd.argoproj.io/tracking-id: shop:networking.k8s.io/Ingress:shop/web
spec:
  ingressClassName: nginx
  defaultBackend:
    service: {name: fallback, port: {number: 80}}
  tls:
  - hosts: [web.example.com]
    secretName: web-tls
  rules:
  - host: web.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {name: web-stable, port: {number: 80}}
      - path: /static
        pathType: Prefix
        backend:
          service: {name: cdn, port: {name: http}}
  - host: admin.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {name: admin, port: {number: 80}}
  - host: api.example.com
    http:
      paths:
      - path: /v1
        pathType: Exact
        backend:
          service: {name: web-stable, port: {name: http}}
"#;

fn spec() -> CanaryIngressSpec {
    CanaryIngressSpec {
        owner: Owner {
            name: "web".into(),
            uid: "0b7c-uid".into(),
        },
        canary_service: "web-canary".into(),
        stable_service: "web-stable".into(),
        annotation_prefix: DEFAULT_ANNOTATION_PREFIX.into(),
        ..Default::default()
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_canary_ingress_copies_the_rules_that_use_the_stable_service_with_the_canary_backend() {
    let canary = canary_ingress(&spec(), &yaml(STABLE), 20).unwrap();
    let expected = yaml(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web-web-canary
  namespace: shop
  annotations:
    kubernetes.io/ingress.class: nginx
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/canary-weight: "20"
  ownerReferences:
  - apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    name: web
    uid: 0b7c-uid
    controller: true
    blockOwnerDeletion: true
spec:
  ingressClassName: nginx
  tls:
  - hosts: [web.example.com]
    secretName: web-tls
  rules:
  - host: web.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {name: web-canary, port: {number: 80}}
      - path: /static
        pathType: Prefix
        backend:
          service: {name: cdn, port: {name: http}}
  - host: api.example.com
    http:
      paths:
      - path: /v1
        pathType: Exact
        backend:
          service: {name: web-canary, port: {name: http}}
"#,
    );
    assert_eq!(canary, expected);
}

#[test]
fn annotations_follow_the_prefix_the_extra_maps_and_max_traffic_weight() {
    // (case, spec change, weight, expected annotations besides the class)
    let cases: Vec<(&str, CanaryIngressSpec, i32, Value)> = vec![
        (
            "weight 0 still marks the Ingress as a canary",
            spec(),
            0,
            json!({"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "0"}),
        ),
        (
            "additional annotations go under the prefix, unless already there",
            CanaryIngressSpec {
                additional_ingress_annotations: map(&[
                    ("canary-by-header", "X-Canary"),
                    ("nginx.ingress.kubernetes.io/canary-by-header-value", "yes"),
                ]),
                ..spec()
            },
            50,
            json!({
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": "50",
                "nginx.ingress.kubernetes.io/canary-by-header": "X-Canary",
                "nginx.ingress.kubernetes.io/canary-by-header-value": "yes",
            }),
        ),
        (
            "a custom prefix is used for every canary annotation",
            CanaryIngressSpec {
                annotation_prefix: "custom.nginx.io".into(),
                additional_ingress_annotations: map(&[("canary-by-cookie", "beta")]),
                ..spec()
            },
            30,
            json!({
                "custom.nginx.io/canary": "true",
                "custom.nginx.io/canary-weight": "30",
                "custom.nginx.io/canary-by-cookie": "beta",
            }),
        ),
        (
            "canaryIngressAnnotations keep their keys",
            CanaryIngressSpec {
                canary_ingress_annotations: map(&[("example.com/owner", "team-a")]),
                ..spec()
            },
            10,
            json!({
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": "10",
                "example.com/owner": "team-a",
            }),
        ),
        (
            "maxTrafficWeight is the canary-weight-total",
            CanaryIngressSpec {
                max_traffic_weight: Some(100),
                ..spec()
            },
            40,
            json!({
                "nginx.ingress.kubernetes.io/canary": "true",
                "nginx.ingress.kubernetes.io/canary-weight": "40",
                "nginx.ingress.kubernetes.io/canary-weight-total": "100",
            }),
        ),
        (
            "no extra annotation can override the weight the rollout sets",
            CanaryIngressSpec {
                additional_ingress_annotations: map(&[("canary-weight", "99"), ("canary", "false")]),
                canary_ingress_annotations: map(&[("nginx.ingress.kubernetes.io/canary-weight", "98")]),
                ..spec()
            },
            5,
            json!({"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "5"}),
        ),
    ];
    for (case, spec, weight, expected) in cases {
        let canary = canary_ingress(&spec, &yaml(STABLE), weight).unwrap();
        let mut annotations = canary["metadata"]["annotations"].clone();
        assert_eq!(
            annotations["kubernetes.io/ingress.class"], "nginx",
            "{case}: the class is kept"
        );
        annotations
            .as_object_mut()
            .unwrap()
            .remove("kubernetes.io/ingress.class");
        assert_eq!(annotations, expected, "{case}");
    }
}

#[test]
fn only_the_class_annotation_of_the_stable_ingress_is_copied_and_no_labels() {
    let canary = canary_ingress(&spec(), &yaml(STABLE), 20).unwrap();
    let annotations = canary["metadata"]["annotations"].as_object().unwrap();
    assert!(!annotations.contains_key("nginx.ingress.kubernetes.io/rewrite-target"));
    assert!(!annotations.contains_key("argocd.argoproj.io/tracking-id"));
    assert!(canary["metadata"].get("labels").is_none());
    assert!(canary["spec"].get("defaultBackend").is_none());
}

#[test]
fn an_ingress_without_class_or_tls_makes_a_canary_without_them() {
    let stable = yaml(
        r#"
metadata: {name: plain}
spec:
  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web-stable, port: {number: 8080}}}}
"#,
    );
    let canary = canary_ingress(&spec(), &stable, 0).unwrap();
    assert_eq!(canary["metadata"]["name"], "web-plain-canary");
    assert!(canary["metadata"].get("namespace").is_none());
    assert_eq!(
        canary["spec"],
        yaml(
            r#"
rules:
- http:
    paths:
    - {path: /, pathType: Prefix, backend: {service: {name: web-canary, port: {number: 8080}}}}
"#
        )
    );
    assert!(
        !canary["metadata"]["annotations"]
            .as_object()
            .unwrap()
            .contains_key("kubernetes.io/ingress.class")
    );
}

#[test]
fn an_ingress_with_no_backend_naming_the_stable_service_is_an_error() {
    let cases = [
        (
            "other services only",
            r#"
metadata: {name: web}
spec:
  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: other, port: {number: 80}}}}
"#,
        ),
        ("no rules", "metadata: {name: web}\nspec: {}\n"),
        (
            "a resource backend and a rule without http",
            r#"
metadata: {name: web}
spec:
  rules:
  - host: a.example.com
  - http:
      paths:
      - {path: /, pathType: Prefix, backend: {resource: {apiGroup: k8s.example.com, kind: Bucket, name: b}}}
"#,
        ),
        (
            "only the default backend",
            "metadata: {name: web}\nspec: {defaultBackend: {service: {name: web-stable, port: {number: 80}}}}\n",
        ),
    ];
    for (case, doc) in cases {
        assert_eq!(
            canary_ingress(&spec(), &yaml(doc), 10),
            Err(RouterError::Malformed(
                "ingress `web` has no rules using service web-stable backend".into()
            )),
            "{case}"
        );
    }
}

#[test]
fn the_canary_ingress_name_is_cut_to_a_valid_object_name() {
    assert_eq!(canary_ingress_name("web", "public"), "web-public-canary");
    let long = "r".repeat(200);
    let name = canary_ingress_name(&long, &"i".repeat(100));
    assert_eq!(name.len(), 253);
    assert!(name.ends_with("i-canary"));
    assert!(name.starts_with(&long));
}
