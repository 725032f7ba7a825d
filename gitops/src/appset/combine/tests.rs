use serde_json::json;

use super::*;
use crate::appset::tests::{Braces, cluster, generators, set};
use crate::appset::{Inputs, Options, generate_with};

fn run(spec: serde_json::Value, go: bool) -> Result<Vec<Params>, String> {
    run_with(spec, go, false)
}

fn run_with(spec: serde_json::Value, go: bool, nested_selectors: bool) -> Result<Vec<Params>, String> {
    let inputs = Inputs {
        clusters: vec![
            cluster("a", "https://a", &[("env", "prod")]),
            cluster("b", "https://b", &[("env", "dev")]),
        ],
        ..Inputs::default()
    };
    let options = Options {
        go_template: go,
        apply_nested_selectors: nested_selectors,
    };
    generate_with(&generators(json!([spec])), &inputs, &Braces, options)
}

#[test]
fn a_matrix_is_the_cartesian_product_and_the_second_child_sees_the_first() {
    let spec = json!({"matrix": {"generators": [
        {"clusters": {}},
        {"list": {"elements": [{"app": "web-{{name}}"}, {"app": "db"}]}}
    ]}});
    let got = run(spec, false).unwrap();
    let apps: Vec<(&str, &str)> = got
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["app"].as_str().unwrap()))
        .collect();
    assert_eq!(apps, [("a", "web-a"), ("a", "db"), ("b", "web-b"), ("b", "db")]);
}

#[test]
fn a_go_template_matrix_merges_deeply_and_the_first_child_wins() {
    let spec = json!({"matrix": {"generators": [
        {"list": {"elements": [{"meta": {"a": 1, "shared": "first"}, "k": "x"}]}},
        {"list": {"elements": [{"meta": {"b": 2, "shared": "second"}, "k": "y", "only": "{{.k}}"}]}}
    ]}});
    assert_eq!(
        run(spec, true).unwrap(),
        [set(
            json!({"meta": {"a": 1, "b": 2, "shared": "first"}, "k": "x", "only": "x"})
        )]
    );
}

#[test]
fn matrix_errors_are_upstreams() {
    let cases = [
        (
            json!({"matrix": {"generators": [{"list": {"elements": []}}]}}),
            "found less than two generators, Matrix support only two",
        ),
        (
            json!({"matrix": {"generators": [{"clusters": {}}, {"clusters": {}}, {"clusters": {}}]}}),
            "found more than two generators, Matrix support only two",
        ),
        (
            json!({"matrix": {"generators": [{"list": {"elements": [{"k": "1"}]}}, {"list": {"elements": [{"k": "2"}]}}]}}),
            "failed to combine string maps with merging params for the matrix generator: found duplicate key k with different value, a: 1 ,b: 2",
        ),
        (
            json!({"matrix": {"generators": [{}, {"clusters": {}}]}}),
            "error failed to get params for first generator in matrix generator: child generator generated no parameters",
        ),
        (
            json!({"matrix": {"generators": [{"clusters": {}}, {"list": {"elements": []}, "clusters": {}}]}}),
            "failed to get params for second generator in the matrix generator: found more than one generator in matrix.Generators",
        ),
        (
            json!({"matrix": {"generators": [{"clusters": {}}, {"pullRequest": {}}]}}),
            "child generator returned an error on parameter generation: the pullRequest generator is not supported",
        ),
        (
            json!({"matrix": {"generators": [{"matrix": {"generators": 3}}, {"clusters": {}}]}}),
            "invalid nested matrix generator",
        ),
        (
            json!({"matrix": {"generators": [{"merge": {"mergeKeys": 3}}, {"clusters": {}}]}}),
            "error retrieving merge generator: invalid nested merge generator",
        ),
    ];
    for (spec, want) in cases {
        let err = run(spec.clone(), false).unwrap_err();
        assert!(err.contains(want), "{spec}: {err}");
    }
}

#[test]
fn equal_values_under_one_key_combine_in_a_matrix() {
    let spec = json!({"matrix": {"generators": [
        {"list": {"elements": [{"k": "1", "a": "x"}]}},
        {"list": {"elements": [{"k": "1", "b": "y"}]}}
    ]}});
    assert_eq!(
        run(spec, false).unwrap(),
        [set(json!({"k": "1", "a": "x", "b": "y"}))]
    );
}

#[test]
fn merge_overrides_base_sets_on_matching_keys() {
    let spec = json!({"merge": {"mergeKeys": ["server"], "generators": [
        {"clusters": {"values": {"kafka": "true", "redis": "false"}}},
        {"clusters": {"selector": {"matchLabels": {"env": "dev"}}, "values": {"kafka": "false"}}},
        {"list": {"elements": [{"server": "https://a", "values.redis": "true"}, {"server": "https://zzz", "extra": "dropped"}]}}
    ]}});
    let got = run(spec, false).unwrap();
    let view: Vec<(&str, &str, &str)> = got
        .iter()
        .map(|p| {
            (
                p["server"].as_str().unwrap(),
                p["values.kafka"].as_str().unwrap(),
                p["values.redis"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        view,
        [("https://a", "true", "true"), ("https://b", "false", "false")]
    );
    assert!(got.iter().all(|p| !p.contains_key("extra")));
}

#[test]
fn a_go_template_merge_merges_deeply_and_later_generators_win() {
    let spec = json!({"merge": {"mergeKeys": ["id"], "generators": [
        {"list": {"elements": [{"id": 1, "m": {"a": 1, "b": 1}}, {"id": 2}]}},
        {"list": {"elements": [{"id": 1, "m": {"b": 2}}]}}
    ]}});
    assert_eq!(
        run(spec, true).unwrap(),
        [
            set(json!({"id": 1, "m": {"a": 1, "b": 2}})),
            set(json!({"id": 2}))
        ]
    );
}

#[test]
fn merge_errors_are_upstreams() {
    let cases = [
        (
            json!({"merge": {"mergeKeys": ["a"], "generators": [{"clusters": {}}]}}),
            "found less than two generators, Merge requires two or more",
        ),
        (
            json!({"merge": {"mergeKeys": [], "generators": [{"clusters": {}}, {"clusters": {}}]}}),
            "error getting param sets by merge key: no merge keys were specified, Merge requires at least one",
        ),
        (
            json!({"merge": {"mergeKeys": ["env"], "generators": [{"list": {"elements": [{"env": "x"}, {"env": "x"}]}}, {"clusters": {}}]}}),
            "the parameters from a generator were not unique by the given mergeKeys, Merge requires all param sets to be unique. Duplicate key was {\"env\":\"x\"}",
        ),
        (
            json!({"merge": {"mergeKeys": ["a"], "generators": [{"clusters": {}}, {"scmProvider": {}}]}}),
            "error getting param sets from generators: error getting params from generator 2 of 2: child generator returned an error",
        ),
    ];
    for (spec, want) in cases {
        let err = run(spec.clone(), false).unwrap_err();
        assert!(err.contains(want), "{spec}: {err}");
    }
}

#[test]
fn nested_combinations_are_read_from_open_objects_and_their_selectors_need_the_switch() {
    let spec = json!({"matrix": {"generators": [
        {"matrix": {"generators": [
            {"clusters": {}, "selector": {"matchLabels": {"name": "a"}}},
            {"list": {"elements": [{"env": "one"}]}}
        ]}},
        {"list": {"elements": [{"x": "1"}]}}
    ]}});
    let names = |sets: Vec<Params>| -> Vec<String> {
        sets.iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(run_with(spec.clone(), false, false).unwrap()),
        ["a", "b"],
        "ignored without applyNestedSelectors"
    );
    assert_eq!(names(run_with(spec, false, true).unwrap()), ["a"]);
    let deeper = json!({"matrix": {"generators": [
        {"matrix": {"generators": [{"matrix": {"generators": []}}, {"clusters": {}}]}},
        {"clusters": {}}
    ]}});
    let err = run(deeper, false).unwrap_err();
    assert!(
        err.contains("child generator generated no parameters"),
        "a third level is not a generator: {err}"
    );
}
