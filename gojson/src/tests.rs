//! The encoder against Go's own output: each expected string below is what `gohash oracle` (e2e/gohash), that
//! is Go's `json.Marshal`, wrote for the input. e2e/tests/gohash.rs compares the two over generated values.

use serde_json::json;

use super::*;

fn template(v: serde_json::Value) -> String {
    String::from_utf8(marshal(POD_TEMPLATE_SPEC, &v).unwrap()).unwrap()
}

#[test]
fn an_empty_template_has_its_struct_fields_and_a_null_slice() {
    assert_eq!(
        template(json!({})),
        r#"{"metadata":{},"spec":{"containers":null}}"#
    );
}

#[test]
fn fields_in_declaration_order_map_keys_sorted_and_a_null_time_left_out() {
    assert_eq!(
        template(
            json!({"metadata": {"name": "n", "labels": {"b": "2", "a": "1"}, "creationTimestamp": null},
                        "spec": {"containers": []}})
        ),
        r#"{"metadata":{"name":"n","labels":{"a":"1","b":"2"}},"spec":{"containers":[]}}"#
    );
}

#[test]
fn omitempty_quantities_int_or_string_html_and_control_characters() {
    let input = json!({
        "metadata": {"annotations": {"x": "<a href=\"u\">&amp;</a>\u{2028}é\u{1}\u{8}\u{c}"}},
        "spec": {
            "containers": [{
                "name": "c", "ports": [], "env": [{"name": "A", "value": ""}],
                "resources": {"limits": {"memory": "1024Mi", "cpu": "0.5"}, "requests": {"cpu": "1000m"}},
                "livenessProbe": {"httpGet": {"path": "/", "port": "http"}, "initialDelaySeconds": 0},
                "readinessProbe": {"tcpSocket": {"port": 8080}},
                "securityContext": {}
            }],
            "volumes": [{"name": "v", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "w", "configMap": {"name": "cm", "items": [{"key": "k", "path": "p"}]}}],
            "terminationGracePeriodSeconds": 0,
            "nodeSelector": {}
        }
    });
    let expected = concat!(
        r#"{"metadata":{"annotations":{"x":"\u003ca href=\"u\"\u003e\u0026amp;\u003c/a\u003e\u2028é\u0001\b\f"}},"#,
        r#""spec":{"volumes":[{"name":"v","emptyDir":{"sizeLimit":"1Gi"}},"#,
        r#"{"name":"w","configMap":{"name":"cm","items":[{"key":"k","path":"p"}]}}],"#,
        r#""containers":[{"name":"c","env":[{"name":"A"}],"#,
        r#""resources":{"limits":{"cpu":"500m","memory":"1Gi"},"requests":{"cpu":"1"}},"#,
        r#""livenessProbe":{"httpGet":{"path":"/","port":"http"}},"readinessProbe":{"tcpSocket":{"port":8080}},"#,
        r#""securityContext":{}}],"terminationGracePeriodSeconds":0}}"#
    );
    assert_eq!(template(input), expected);
}

#[test]
fn times_in_utc_to_the_second_and_non_pointer_structs_written_when_absent() {
    assert_eq!(
        template(
            json!({"metadata": {"creationTimestamp": "2024-01-02T03:04:05.9+02:00"},
                        "spec": {"containers": null, "initContainers": [{"name": "i"}], "restartPolicy": ""}})
        ),
        r#"{"metadata":{"creationTimestamp":"2024-01-02T01:04:05Z"},"spec":{"initContainers":[{"name":"i","resources":{}}],"containers":null}}"#
    );
}

#[test]
fn canary_steps_as_argo_rollouts_types_write_them() {
    let steps = json!([
        {"setWeight": 0}, {"pause": {"duration": 30}},
        {"analysis": {"templates": [{"templateName": "t"}],
                      "args": [{"name": "a", "valueFrom": {"podTemplateHashValue": "Stable"}}]}},
        {"setCanaryScale": {"matchTrafficWeight": false}},
        {"setHeaderRoute": {"name": "h", "match": [{"headerName": "x", "headerValue": {"exact": "<y>"}}]}},
        {"experiment": {"templates": [{"name": "b", "specRef": "stable"}]}}
    ]);
    let expected = concat!(
        r#"[{"setWeight":0},{"pause":{"duration":30}},"#,
        r#"{"analysis":{"templates":[{"templateName":"t"}],"args":[{"name":"a","valueFrom":{"podTemplateHashValue":"Stable"}}]}},"#,
        r#"{"setCanaryScale":{}},"#,
        r#"{"setHeaderRoute":{"name":"h","match":[{"headerName":"x","headerValue":{"exact":"\u003cy\u003e"}}]}},"#,
        r#"{"experiment":{"templates":[{"name":"b","specRef":"stable","metadata":{}}],"analysisRunMetadata":{}}}]"#
    );
    assert_eq!(
        String::from_utf8(marshal(CANARY_STEPS, &steps).unwrap()).unwrap(),
        expected
    );
    assert_eq!(marshal(CANARY_STEPS, &json!(null)).unwrap(), b"null");
}

#[test]
fn values_go_cannot_decode_are_refused() {
    for bad in [
        json!({"spec": {"containers": {"name": "x"}}}),
        json!({"spec": {"terminationGracePeriodSeconds": 1.5}}),
        json!({"spec": {"hostNetwork": "yes"}}),
        json!({"metadata": {"creationTimestamp": "yesterday"}}),
        json!([]),
    ] {
        assert!(marshal(POD_TEMPLATE_SPEC, &bad).is_err(), "{bad}");
    }
}

#[test]
fn argo_hash_is_fnv32a_safe_encoded_with_the_collision_count() {
    // FNV-32a("") = 2166136261, FNV-32a("a") = 3826002220; the digit d maps to SAFE_ALPHABET[(48 + d) % 27].
    assert_eq!(argo_hash(b"", None), safe_encode("2166136261"));
    assert_eq!(argo_hash(b"a", None), safe_encode("3826002220"));
    assert_eq!(safe_encode("0123456789"), "456789bcdf");
    assert_ne!(argo_hash(b"a", Some(0)), argo_hash(b"a", None));
}

/// The Argo Rollouts release hashes with older Kubernetes modules. Over every template it can decode (only
/// the fields its modules know), the control plane's table writes the same bytes as the release's own table,
/// so the hashes are the release's.
#[test]
fn the_control_plane_table_writes_what_argo_rollouts_own_modules_write() {
    let mut rng = arbitrary::Rng::new(16);
    for case in 0..3000 {
        for (argo_ty, ty) in [
            (ARGO_POD_TEMPLATE_SPEC, POD_TEMPLATE_SPEC),
            (ARGO_CANARY_STEPS, CANARY_STEPS),
        ] {
            let v = arbitrary::value(ARGO_TYPES, argo_ty, &mut rng, arbitrary::Shape::default());
            let theirs = marshal_with(ARGO_TYPES, argo_ty, &v);
            let ours = marshal(ty, &v);
            assert_eq!(ours, theirs, "case {case}: {v}");
        }
    }
}
