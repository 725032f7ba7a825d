//! DestinationRule subset patches: only the two rollout subsets' hash labels change.

mod common;

use common::{apply, ops, yaml};
use serde_json::json;
use sluice_traffic::istio::{managed_by_patch, observed_subset_hashes, subset_patch};

const DR: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: web, namespace: shop, labels: {team: shop}}
spec:
  host: web.shop.svc.cluster.local
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 100}}
    outlierDetection: {consecutive5xxErrors: 5, interval: 30s}
  subsets:
  - name: legacy
    labels: {version: v0}
  - name: canary
    labels: {app: web, rollouts-pod-template-hash: aaa111}
    trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
  - name: stable
    labels: {app: web, rollouts-pod-template-hash: aaa111}
"#;

#[test]
fn sets_both_hashes_and_keeps_other_subsets_and_fields() {
    let dr = yaml(DR);
    let patch = subset_patch(&dr, "canary", "stable", "bbb222", "aaa111").expect("patch");
    assert_eq!(
        ops(&patch),
        json!([
            {"op": "test", "path": "/spec/subsets/1/name", "value": "canary"},
            {"op": "replace", "path": "/spec/subsets/1/labels/rollouts-pod-template-hash", "value": "bbb222"},
        ]),
        "the stable subset already has its hash"
    );
    let after = apply(&dr, &patch);
    let mut expected = dr.clone();
    expected["spec"]["subsets"][1]["labels"]["rollouts-pod-template-hash"] = json!("bbb222");
    assert_eq!(
        after, expected,
        "nothing else changed: legacy subset, trafficPolicy, metadata"
    );
    assert_eq!(
        observed_subset_hashes(&after, "canary", "stable").expect("observe"),
        (Some("bbb222".to_string()), Some("aaa111".to_string()))
    );
}

struct SubsetCase {
    name: &'static str,
    dr: &'static str,
    canary_hash: &'static str,
    stable_hash: &'static str,
    /// Hash labels observed after the patch.
    after: (Option<&'static str>, Option<&'static str>),
    op_count: usize,
}

#[test]
fn subset_patch_cases() {
    let cases = [
        SubsetCase {
            name: "already equal: empty patch",
            dr: DR,
            canary_hash: "aaa111",
            stable_hash: "aaa111",
            after: (Some("aaa111"), Some("aaa111")),
            op_count: 0,
        },
        SubsetCase {
            name: "both change",
            dr: DR,
            canary_hash: "ccc333",
            stable_hash: "bbb222",
            after: (Some("ccc333"), Some("bbb222")),
            op_count: 4,
        },
        SubsetCase {
            name: "empty hash removes the label, as upstream",
            dr: DR,
            canary_hash: "",
            stable_hash: "aaa111",
            after: (None, Some("aaa111")),
            op_count: 2,
        },
        SubsetCase {
            name: "labels map missing is added, empty map gets the key",
            dr: "metadata: {name: web}\nspec:\n  subsets:\n  - {name: stable}\n  - {name: canary, labels: {}}",
            canary_hash: "c1",
            stable_hash: "s1",
            after: (Some("c1"), Some("s1")),
            op_count: 4,
        },
    ];
    for case in cases {
        let dr = yaml(case.dr);
        let patch =
            subset_patch(&dr, "canary", "stable", case.canary_hash, case.stable_hash).expect(case.name);
        assert_eq!(patch.0.len(), case.op_count, "{}: {}", case.name, ops(&patch));
        let after = apply(&dr, &patch);
        let observed = observed_subset_hashes(&after, "canary", "stable").expect(case.name);
        let expected = (case.after.0.map(str::to_string), case.after.1.map(str::to_string));
        assert_eq!(observed, expected, "{}", case.name);
        let mut untouched = after.clone();
        let mut original = dr.clone();
        for doc in [&mut untouched, &mut original] {
            for subset in doc["spec"]["subsets"].as_array_mut().expect("subsets") {
                if let Some(labels) = subset
                    .get_mut("labels")
                    .and_then(serde_json::Value::as_object_mut)
                {
                    labels.remove("rollouts-pod-template-hash");
                    if labels.is_empty() {
                        subset.as_object_mut().expect("subset").remove("labels");
                    }
                }
            }
        }
        assert_eq!(untouched, original, "{}: only the hash labels change", case.name);
        let again =
            subset_patch(&after, "canary", "stable", case.canary_hash, case.stable_hash).expect(case.name);
        assert!(again.0.is_empty(), "{}: idempotent", case.name);
    }
    let dr = yaml("metadata: {name: web}\nspec:\n  subsets:\n  - {name: stable}\n  - {name: canary}");
    assert_eq!(
        ops(&subset_patch(&dr, "canary", "stable", "c1", "").expect("patch")),
        json!([
            {"op": "test", "path": "/spec/subsets/1/name", "value": "canary"},
            {"op": "add", "path": "/spec/subsets/1/labels", "value": {"rollouts-pod-template-hash": "c1"}},
        ])
    );
}

#[test]
fn subset_errors_name_the_destination_rule_and_subset() {
    let dr = yaml(DR);
    let cases: Vec<(&str, &str, &str)> = vec![
        (
            "v2",
            "stable",
            r#"DestinationRule "web" has no subset named "v2""#,
        ),
        (
            "canary",
            "v1",
            r#"DestinationRule "web" has no subset named "v1""#,
        ),
        (
            "canary",
            "canary",
            r#"canary and stable subsets are both "canary""#,
        ),
    ];
    for (canary, stable, message) in cases {
        assert_eq!(
            subset_patch(&dr, canary, stable, "a", "b")
                .expect_err(message)
                .to_string(),
            message
        );
    }
    assert_eq!(
        observed_subset_hashes(&dr, "v2", "stable")
            .expect_err("missing")
            .to_string(),
        r#"DestinationRule "web" has no subset named "v2""#
    );
    let bad = yaml(
        "kind: DestinationRule\nmetadata: {name: web}\nspec:\n  subsets:\n  - {name: canary, labels: [x]}\n  - {name: stable}",
    );
    assert_eq!(
        subset_patch(&bad, "canary", "stable", "a", "b")
            .expect_err("malformed")
            .to_string(),
        r#"DestinationRule "web": spec.subsets[0].labels is not a map"#
    );
}

#[test]
fn a_concurrent_subset_reorder_fails_the_patch() {
    let dr = yaml(DR);
    let patch = subset_patch(&dr, "canary", "stable", "bbb222", "aaa111").expect("patch");
    let mut reordered = dr.clone();
    reordered["spec"]["subsets"]
        .as_array_mut()
        .expect("list")
        .swap(1, 2);
    assert!(json_patch::patch(&mut reordered, &patch).is_err());
}

#[test]
fn managed_by_annotation_is_added_once() {
    let dr = yaml(DR);
    let after = apply(&dr, &managed_by_patch(&dr, "web").expect("patch"));
    assert_eq!(
        after["metadata"]["annotations"],
        json!({"argo-rollouts.argoproj.io/managed-by-rollouts": "web"})
    );
    assert!(managed_by_patch(&after, "web").expect("patch").0.is_empty());
    let taken = apply(&after, &managed_by_patch(&after, "api").expect("patch"));
    assert_eq!(
        taken["metadata"]["annotations"]["argo-rollouts.argoproj.io/managed-by-rollouts"],
        json!("api")
    );
    let annotated = yaml("metadata: {name: web, annotations: {owner: platform}}");
    let after = apply(&annotated, &managed_by_patch(&annotated, "web").expect("patch"));
    assert_eq!(after["metadata"]["annotations"]["owner"], json!("platform"));
}

#[test]
fn release_removes_only_the_hash_labels_and_the_managed_by_annotation() {
    let dr: serde_json::Value = serde_yaml::from_str(
        r#"
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata:
  name: web
  annotations: {argo-rollouts.argoproj.io/managed-by-rollouts: web, team: shop}
spec:
  host: web
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
  subsets:
  - name: canary
    labels: {app: web, rollouts-pod-template-hash: abc}
  - name: stable
    labels: {app: web, rollouts-pod-template-hash: def}
  - name: legacy
    labels: {app: web-legacy}
"#,
    )
    .unwrap();
    let patch = sluice_traffic::istio::release_patch(&dr).unwrap();
    let mut after = dr.clone();
    json_patch::patch(&mut after, &patch).unwrap();
    assert_eq!(
        after["spec"]["subsets"][0]["labels"],
        serde_json::json!({"app": "web"})
    );
    assert_eq!(
        after["spec"]["subsets"][1]["labels"],
        serde_json::json!({"app": "web"})
    );
    assert_eq!(after["spec"]["subsets"][2], dr["spec"]["subsets"][2]);
    assert_eq!(after["spec"]["trafficPolicy"], dr["spec"]["trafficPolicy"]);
    assert_eq!(
        after["metadata"]["annotations"],
        serde_json::json!({"team": "shop"})
    );
    assert!(
        sluice_traffic::istio::release_patch(&after).unwrap().0.is_empty(),
        "nothing left to release"
    );
}
