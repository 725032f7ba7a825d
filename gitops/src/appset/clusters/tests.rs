use serde_json::json;

use super::*;
use crate::appset::tests::{Braces, cluster, set};
use crate::appset::{Inputs, Options};

fn implicit_in_cluster() -> KnownCluster {
    KnownCluster {
        name: "in-cluster".into(),
        server: "https://kubernetes.default.svc".into(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        project: String::new(),
        declared: false,
    }
}

fn run(generator: serde_json::Value, go: bool) -> Result<Vec<Params>, String> {
    let inputs = Inputs::default();
    let ctx = Context {
        inputs: &inputs,
        interp: &Braces,
        options: Options {
            go_template: go,
            apply_nested_selectors: false,
        },
    };
    let mut prod = cluster("Prod_EU", "https://prod:6443", &[("env", "prod"), ("tier", "1")]);
    prod.project = "team".into();
    let clusters = vec![
        implicit_in_cluster(),
        prod,
        cluster("dev", "https://dev", &[("env", "dev")]),
    ];
    params(&serde_json::from_value(generator).unwrap(), &clusters, &ctx)
}

fn names(sets: &[Params]) -> Vec<&str> {
    sets.iter().map(|s| s["name"].as_str().unwrap()).collect()
}

#[test]
fn the_selector_picks_cluster_secrets_and_only_an_empty_one_the_implicit_in_cluster() {
    let cases = [
        (json!({}), vec!["in-cluster", "Prod_EU", "dev"]),
        (json!({"selector": {}}), vec!["in-cluster", "Prod_EU", "dev"]),
        (
            json!({"selector": {"matchLabels": {"env": "prod"}}}),
            vec!["Prod_EU"],
        ),
        (
            json!({"selector": {"matchExpressions": [{"key": "env", "operator": "Exists"}]}}),
            vec!["Prod_EU", "dev"],
        ),
        (
            json!({"selector": {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}}),
            vec!["dev"],
        ),
        (
            json!({"selector": {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}}),
            vec!["dev"],
        ),
        (
            json!({"selector": {"matchExpressions": [{"key": "env", "operator": "In", "values": ["qa"]}]}}),
            vec![],
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(names(&run(spec.clone(), false).unwrap()), want, "{spec}");
    }
}

#[test]
fn cluster_parameters_are_flat_or_nested() {
    let spec = json!({"selector": {"matchLabels": {"env": "prod"}}, "values": {"region": "eu-{{metadata.labels.tier}}"}});
    let flat = run(spec, false).unwrap();
    assert_eq!(
        flat,
        [set(json!({
            "name": "Prod_EU", "nameNormalized": "prod-eu", "server": "https://prod:6443", "project": "team",
            "metadata.labels.env": "prod", "metadata.labels.tier": "1", "metadata.annotations.owner": "team-a",
            "values.region": "eu-1"
        }))]
    );
    let spec = json!({"selector": {"matchLabels": {"env": "prod"}}, "values": {"region": "eu-{{.metadata.labels.tier}}"}});
    let nested = run(spec, true).unwrap();
    assert_eq!(
        nested,
        [set(json!({
            "name": "Prod_EU", "nameNormalized": "prod-eu", "server": "https://prod:6443", "project": "team",
            "metadata": {"labels": {"env": "prod", "tier": "1"}, "annotations": {"owner": "team-a"}},
            "values": {"region": "eu-1"}
        }))]
    );
}

#[test]
fn the_implicit_in_cluster_has_fixed_parameters() {
    let got = run(json!({"values": {"s": "{{server}}"}}), false).unwrap();
    assert_eq!(
        got[0],
        set(json!({
            "name": "in-cluster", "nameNormalized": "in-cluster", "server": "https://kubernetes.default.svc",
            "project": "", "values.s": "https://kubernetes.default.svc"
        }))
    );
}

#[test]
fn a_flat_list_is_one_set_of_every_cluster() {
    let got = run(
        json!({"flatList": true, "selector": {"matchLabels": {"env": "dev"}}}),
        true,
    )
    .unwrap();
    assert_eq!(got.len(), 1);
    let clusters = got[0]["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 1);
    assert_eq!(clusters[0]["server"], "https://dev");
}

#[test]
fn a_failing_value_template_names_the_cluster_kind() {
    let err = run(json!({"values": {"x": "{{.nope}}"}}), true).unwrap_err();
    assert!(
        err.starts_with(
            "error appending templated values for local cluster: failed to replace templated string"
        ),
        "{err}"
    );
}
