//! The NGINX router: observe, apply (create, then patch only what the rollout owns), verify and reset, for
//! one and several stable Ingresses.

mod common;

use common::{apply, ops, yaml};
use serde_json::{Value, json};
use sluice_traffic::nginx::{
    CanaryIngressSpec, DEFAULT_ANNOTATION_PREFIX, NginxRouter, Owner, canary_ingress, ingress_target,
};
use sluice_traffic::{Additional, Desired, Objects, Router, RouterError, Write};

fn stable(name: &str, host: &str) -> Value {
    yaml(&format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: shop
  annotations: {{kubernetes.io/ingress.class: nginx}}
spec:
  ingressClassName: nginx
  rules:
  - host: {host}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web-stable, port: {{number: 80}}}}}}}}
"#
    ))
}

fn router(stables: &[&str]) -> NginxRouter {
    NginxRouter {
        namespace: "shop".into(),
        stable_ingresses: stables.iter().map(|s| s.to_string()).collect(),
        spec: CanaryIngressSpec {
            owner: Owner {
                name: "web".into(),
                uid: "uid-1".into(),
            },
            canary_service: "web-canary".into(),
            stable_service: "web-stable".into(),
            annotation_prefix: DEFAULT_ANNOTATION_PREFIX.into(),
            ..Default::default()
        },
    }
}

/// The objects a router reads: the named stable Ingresses, and no canary Ingress yet.
fn objects(r: &NginxRouter) -> Objects {
    let mut out = Objects::new();
    for t in r.targets() {
        let found = r
            .stable_ingresses
            .iter()
            .position(|s| *s == t.name)
            .map(|i| stable(&t.name, &format!("h{i}.example.com")));
        out.insert(t, found);
    }
    out
}

/// Performs the writes on `objects` as the API server would.
fn perform(objects: &mut Objects, writes: &[Write]) {
    for w in writes {
        match w {
            Write::Create { target, object } => {
                assert!(objects[target].is_none(), "create of an existing {target:?}");
                objects.insert(target.clone(), Some(object.clone()));
            }
            Write::Patch { target, patch } => {
                let doc = objects[target].as_ref().expect("patch of a missing object");
                let patched = apply(doc, patch);
                objects.insert(target.clone(), Some(patched));
            }
            Write::Delete { target } => {
                objects.insert(target.clone(), None);
            }
        }
    }
}

/// Applies weight `w` and performs the writes.
fn put(r: &NginxRouter, objects: &mut Objects, w: i32) {
    let writes = r.apply(objects, &Desired::canary(w)).unwrap();
    perform(objects, &writes);
}

fn canary_target(name: &str) -> sluice_traffic::Target {
    ingress_target("shop", name)
}

#[test]
fn targets_are_each_stable_ingress_and_its_canary_ingress() {
    let names: Vec<String> = router(&["web", "internal"])
        .targets()
        .into_iter()
        .map(|t| format!("{}/{}/{} {}", t.group, t.version, t.plural, t.name))
        .collect();
    assert_eq!(
        names,
        [
            "networking.k8s.io/v1/ingresses web",
            "networking.k8s.io/v1/ingresses web-web-canary",
            "networking.k8s.io/v1/ingresses internal",
            "networking.k8s.io/v1/ingresses web-internal-canary",
        ]
    );
}

#[test]
fn a_missing_canary_ingress_is_weight_zero_and_is_created_at_the_first_weight() {
    let r = router(&["web"]);
    let mut objs = objects(&r);
    assert_eq!(r.observe(&objs).unwrap().weights, [0]);
    assert!(r.verify(&objs, &Desired::canary(0)).unwrap());
    assert!(!r.verify(&objs, &Desired::canary(20)).unwrap());

    let writes = r.apply(&objs, &Desired::canary(20)).unwrap();
    let expected = canary_ingress(&r.spec, &stable("web", "h0.example.com"), 20).unwrap();
    assert_eq!(
        writes,
        [Write::Create {
            target: canary_target("web-web-canary"),
            object: expected
        }]
    );
    perform(&mut objs, &writes);
    assert_eq!(r.observe(&objs).unwrap().weights, [20]);
    assert!(r.verify(&objs, &Desired::canary(20)).unwrap());
}

#[test]
fn weights_walk_as_test_and_replace_of_the_weight_annotation_only() {
    let r = router(&["web"]);
    let mut objs = objects(&r);
    put(&r, &mut objs, 10);
    assert!(!r.observe(&objs).unwrap().out_of_step);
    // (from, to, ops)
    let walk = [(10, 50), (50, 100), (100, 0), (0, 0)];
    for (from, to) in walk {
        assert_eq!(r.observe(&objs).unwrap().weights, [from]);
        let writes = r.apply(&objs, &Desired::canary(to)).unwrap();
        if from == to {
            assert!(writes.is_empty(), "no write when in place: {writes:?}");
            continue;
        }
        let [Write::Patch { target, patch }] = &writes[..] else {
            panic!("one patch: {writes:?}")
        };
        assert_eq!(target.name, "web-web-canary");
        assert_eq!(
            ops(patch),
            json!([
                {"op": "test", "path": "/metadata/annotations/nginx.ingress.kubernetes.io~1canary-weight", "value": from.to_string()},
                {"op": "replace", "path": "/metadata/annotations/nginx.ingress.kubernetes.io~1canary-weight", "value": to.to_string()},
            ])
        );
        perform(&mut objs, &writes);
        assert!(r.verify(&objs, &Desired::canary(to)).unwrap());
    }
}

#[test]
fn applying_twice_writes_nothing_the_second_time() {
    for (case, spec_change) in [
        ("plain", CanaryIngressSpec::default()),
        (
            "every option",
            CanaryIngressSpec {
                max_traffic_weight: Some(100),
                additional_ingress_annotations: [("canary-by-header".to_string(), "X-Canary".to_string())]
                    .into(),
                canary_ingress_annotations: [("example.com/a".to_string(), "b".to_string())].into(),
                ..Default::default()
            },
        ),
    ] {
        let mut r = router(&["web", "internal"]);
        r.spec.max_traffic_weight = spec_change.max_traffic_weight;
        r.spec.additional_ingress_annotations = spec_change.additional_ingress_annotations;
        r.spec.canary_ingress_annotations = spec_change.canary_ingress_annotations;
        let mut objs = objects(&r);
        let first = r.apply(&objs, &Desired::canary(30)).unwrap();
        assert_eq!(first.len(), 2, "{case}: one create per stable Ingress");
        perform(&mut objs, &first);
        assert_eq!(r.apply(&objs, &Desired::canary(30)).unwrap(), [], "{case}");
    }
}

#[test]
fn several_stable_ingresses_each_get_a_canary_ingress_and_disagreement_is_seen() {
    let r = router(&["web", "internal"]);
    let mut objs = objects(&r);
    put(&r, &mut objs, 25);
    assert_eq!(r.observe(&objs).unwrap().weights, [25, 25]);
    let internal = objs[&canary_target("web-internal-canary")].clone().unwrap();
    assert_eq!(internal["spec"]["rules"][0]["host"], "h1.example.com");
    assert_eq!(
        internal["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "web-canary"
    );

    // One canary Ingress deleted by hand: it reads 0, and the next apply creates only it.
    objs.insert(canary_target("web-internal-canary"), None);
    assert_eq!(r.observe(&objs).unwrap().weights, [25, 0]);
    assert!(!r.verify(&objs, &Desired::canary(25)).unwrap());
    let writes = r.apply(&objs, &Desired::canary(25)).unwrap();
    assert!(
        matches!(&writes[..], [Write::Create { target, .. }] if target.name == "web-internal-canary"),
        "{writes:?}"
    );
}

#[test]
fn max_traffic_weight_is_written_as_the_weight_total_and_removed_when_dropped() {
    let mut r = router(&["web"]);
    r.spec.max_traffic_weight = Some(100);
    let mut objs = objects(&r);
    put(&r, &mut objs, 40);
    let canary = objs[&canary_target("web-web-canary")].clone().unwrap();
    assert_eq!(
        canary["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight-total"],
        "100"
    );
    r.spec.max_traffic_weight = None;
    let writes = r.apply(&objs, &Desired::canary(40)).unwrap();
    let [Write::Patch { patch, .. }] = &writes[..] else {
        panic!("{writes:?}")
    };
    assert_eq!(
        ops(patch),
        json!([
            {"op": "test", "path": "/metadata/annotations/nginx.ingress.kubernetes.io~1canary-weight-total", "value": "100"},
            {"op": "remove", "path": "/metadata/annotations/nginx.ingress.kubernetes.io~1canary-weight-total"},
        ])
    );
}

#[test]
fn a_change_to_the_stable_rules_is_followed_and_others_annotations_stay() {
    let r = router(&["web"]);
    let mut objs = objects(&r);
    put(&r, &mut objs, 20);
    let canary = canary_target("web-web-canary");
    // Someone else annotates the canary Ingress; a stale canary annotation is left under the prefix.
    let mut c = objs[&canary].clone().unwrap();
    c["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] = json!("x");
    c["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-by-cookie"] = json!("old");
    objs.insert(canary.clone(), Some(c));
    // The stable Ingress gets a second path and TLS.
    let mut s = stable("web", "h0.example.com");
    s["spec"]["rules"][0]["http"]["paths"]
        .as_array_mut()
        .unwrap()
        .push(json!({"path": "/v2", "pathType": "Prefix", "backend": {"service": {"name": "web-stable", "port": {"number": 81}}}}));
    s["spec"]["tls"] = json!([{"hosts": ["h0.example.com"], "secretName": "tls"}]);
    objs.insert(ingress_target("shop", "web"), Some(s.clone()));

    let seen = r.observe(&objs).unwrap();
    assert_eq!(
        (seen.weights, seen.out_of_step),
        (vec![20], true),
        "same weight, but the canary Ingress no longer follows"
    );
    let writes = r.apply(&objs, &Desired::canary(20)).unwrap();
    let [Write::Patch { patch, .. }] = &writes[..] else {
        panic!("{writes:?}")
    };
    let old_rules = objs[&canary].as_ref().unwrap()["spec"]["rules"].clone();
    let want = canary_ingress(&r.spec, &s, 20).unwrap();
    assert_eq!(
        ops(patch),
        json!([
            {"op": "test", "path": "/metadata/annotations/nginx.ingress.kubernetes.io~1canary-by-cookie", "value": "old"},
            {"op": "remove", "path": "/metadata/annotations/nginx.ingress.kubernetes.io~1canary-by-cookie"},
            {"op": "test", "path": "/spec/rules", "value": old_rules},
            {"op": "replace", "path": "/spec/rules", "value": want["spec"]["rules"]},
            {"op": "add", "path": "/spec/tls", "value": want["spec"]["tls"]},
        ])
    );
    perform(&mut objs, &writes);
    let after = objs[&canary].clone().unwrap();
    assert_eq!(
        after["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"],
        "x"
    );
    assert_eq!(after["spec"], want["spec"]);
    assert_eq!(r.apply(&objs, &Desired::canary(20)).unwrap(), []);
    assert!(!r.observe(&objs).unwrap().out_of_step);
}

#[test]
fn errors_name_the_object_and_the_problem() {
    let r = router(&["web"]);
    // (case, objects change, expected error)
    let missing_stable = {
        let mut o = objects(&r);
        o.insert(ingress_target("shop", "web"), None);
        o
    };
    let no_stable_backend = {
        let mut o = objects(&r);
        let mut s = stable("web", "h0.example.com");
        s["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = json!("other");
        o.insert(ingress_target("shop", "web"), Some(s));
        o
    };
    let foreign_canary = {
        let mut o = objects(&r);
        let mut c = canary_ingress(&r.spec, &stable("web", "h0.example.com"), 0).unwrap();
        c["metadata"]["ownerReferences"][0]["uid"] = json!("someone-else");
        o.insert(canary_target("web-web-canary"), Some(c));
        o
    };
    let bad_weight = {
        let mut o = objects(&r);
        let mut c = canary_ingress(&r.spec, &stable("web", "h0.example.com"), 0).unwrap();
        c["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"] = json!("half");
        o.insert(canary_target("web-web-canary"), Some(c));
        o
    };
    let cases = [
        (
            "stable Ingress missing",
            missing_stable,
            RouterError::NotFound("Ingress \"web\" in namespace \"shop\"".into()),
        ),
        (
            "no backend names the stable Service",
            no_stable_backend,
            RouterError::Malformed("ingress `web` has no rules using service web-stable backend".into()),
        ),
        (
            "canary Ingress of another owner",
            foreign_canary,
            RouterError::Malformed("canary ingress `web-web-canary` controlled by different object".into()),
        ),
    ];
    for (case, objs, err) in cases {
        assert_eq!(r.observe(&objs), Err(err.clone()), "{case}: observe");
        assert_eq!(
            r.apply(&objs, &Desired::canary(10)),
            Err(err.clone()),
            "{case}: apply"
        );
        assert_eq!(r.verify(&objs, &Desired::canary(10)), Err(err), "{case}: verify");
    }
    assert_eq!(
        r.observe(&bad_weight),
        Err(RouterError::Malformed(
            "Ingress \"web-web-canary\": annotation nginx.ingress.kubernetes.io/canary-weight is \"half\", not a whole number"
                .into()
        ))
    );
    let with_template = Desired {
        canary: 10,
        additional: vec![Additional {
            service: "exp".into(),
            pod_template_hash: "abc".into(),
            weight: 5,
        }],
    };
    assert!(matches!(
        r.apply(&objects(&r), &with_template),
        Err(RouterError::Unsupported { router: "nginx", .. })
    ));
}

#[test]
fn a_canary_ingress_not_marked_canary_sends_nothing_and_apply_marks_it() {
    let r = router(&["web"]);
    let mut objs = objects(&r);
    let mut c = canary_ingress(&r.spec, &stable("web", "h0.example.com"), 30).unwrap();
    c["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary"] = json!("false");
    objs.insert(canary_target("web-web-canary"), Some(c));
    assert_eq!(r.observe(&objs).unwrap().weights, [0]);
    let writes = r.apply(&objs, &Desired::canary(30)).unwrap();
    perform(&mut objs, &writes);
    assert_eq!(r.observe(&objs).unwrap().weights, [30]);
}

#[test]
fn header_and_mirror_routes_are_refused_not_ignored() {
    let r = router(&["web"]);
    let objs = objects(&r);
    let header = sluice_traffic::HeaderRoute {
        name: "canary-header".into(),
        matches: vec![],
    };
    assert_eq!(
        r.set_header_route(&objs, &header).unwrap_err().to_string(),
        "nginx does not support setHeaderRoute"
    );
    let mirror = sluice_traffic::MirrorRoute {
        name: "mirror".into(),
        matches: vec![],
        percentage: None,
    };
    assert_eq!(
        r.set_mirror_route(&objs, &mirror).unwrap_err().to_string(),
        "nginx does not support setMirrorRoute"
    );
    assert!(r.observe(&objs).unwrap().managed_routes.is_empty());
}

#[test]
fn reset_deletes_only_the_canary_ingresses_the_rollout_controls() {
    let r = router(&["web", "internal"]);
    let mut objs = objects(&r);
    assert_eq!(r.reset(&objs).unwrap(), [], "nothing to delete yet");
    put(&r, &mut objs, 10);
    let mut foreign = objs[&canary_target("web-internal-canary")].clone().unwrap();
    foreign["metadata"]["ownerReferences"] = json!([]);
    objs.insert(canary_target("web-internal-canary"), Some(foreign));
    assert_eq!(
        r.reset(&objs).unwrap(),
        [Write::Delete {
            target: canary_target("web-web-canary")
        }]
    );
}
