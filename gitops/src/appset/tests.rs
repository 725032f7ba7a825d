//! The entry points over several generators, and what the generator tests share: a small interpolator that
//! replaces `{{key}}` (fasttemplate) or `{{.a.b}}` (goTemplate) in strings, and cluster and context builders.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;

/// Replaces `{{key}}` with a flat parameter, or `{{.a.b}}` with a nested one, in every string of a value.
pub(crate) struct Braces;

impl Interpolate for Braces {
    fn interpolate(&self, value: &Value, params: &Params, go_template: bool) -> Result<Value, String> {
        Ok(match value {
            Value::String(s) => Value::String(replace(s, params, go_template)?),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|v| self.interpolate(v, params, go_template))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), self.interpolate(v, params, go_template)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => other.clone(),
        })
    }
}

fn replace(text: &str, params: &Params, go: bool) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let end = rest[start..].find("}}").ok_or("unclosed {{")? + start;
        out.push_str(&rest[..start]);
        let key = rest[start + 2..end].trim();
        let value = if go {
            let mut cur = Value::Object(params.clone());
            for part in key.trim_start_matches('.').split('.') {
                cur = cur
                    .get(part)
                    .cloned()
                    .ok_or_else(|| format!("map has no entry for key {part:?}"))?;
            }
            cur
        } else {
            params
                .get(key)
                .cloned()
                .unwrap_or_else(|| Value::String(format!("{{{{{key}}}}}")))
        };
        out.push_str(&go_value_string(&value));
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A cluster declared by a Secret.
pub(crate) fn cluster(name: &str, server: &str, labels: &[(&str, &str)]) -> KnownCluster {
    KnownCluster {
        name: name.into(),
        server: server.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        annotations: BTreeMap::from([("owner".to_string(), "team-a".to_string())]),
        project: String::new(),
        declared: true,
    }
}

/// Generators from their JSON.
pub(crate) fn generators(value: Value) -> Vec<Generator> {
    serde_json::from_value(value).expect("valid generators")
}

/// A parameter set from its JSON.
pub(crate) fn set(value: Value) -> Params {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

#[test]
fn selectors_post_filter_the_sets_of_their_generator_only() {
    let gens = generators(json!([
        {"list": {"elements": [{"env": "dev"}, {"env": "prod"}, {"env": "qa"}]},
         "selector": {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["qa"]}]}},
        {"list": {"elements": [{"env": "qa"}]}}
    ]));
    let got = generate(&gens, &Inputs::default(), &Verbatim, false).unwrap();
    assert_eq!(
        got,
        [
            set(json!({"env": "dev"})),
            set(json!({"env": "prod"})),
            set(json!({"env": "qa"}))
        ]
    );
}

#[test]
fn a_go_template_selector_sees_flattened_nested_parameters() {
    let gens = generators(json!([{
        "list": {"elements": [{"app": {"tier": "web", "n": 3}}, {"app": {"tier": "db", "n": 1}}]},
        "selector": {"matchLabels": {"app.tier": "web", "app.n": "3"}}
    }]));
    let got = generate(&gens, &Inputs::default(), &Verbatim, true).unwrap();
    assert_eq!(got, [set(json!({"app": {"tier": "web", "n": 3}}))]);
}

#[test]
fn generation_errors_name_what_is_wrong() {
    let cases = [
        (
            json!([{"scmProvider": {"github": {"organization": "o"}}}]),
            "the scmProvider generator is not supported",
        ),
        (
            json!([{"list": {"elements": []}, "selector": {"matchExpressions": [{"key": "a", "operator": "Gt"}]}}]),
            "error parsing label selector: \"Gt\" is not a valid label selector operator",
        ),
        (
            json!([{"git": {"repoURL": "https://example.com/r.git", "revision": "main", "directories": [{"path": "*"}]}}]),
            "error generating params from git: no checkout of https://example.com/r.git at revision \"main\"",
        ),
        (
            json!([{"git": {"repoURL": "https://example.com/r.git", "revision": ""}}]),
            "ApplicationSet is empty",
        ),
    ];
    let mut inputs = Inputs::default();
    inputs.checkouts.insert(
        ("https://example.com/r.git".into(), String::new()),
        PathBuf::from("/nonexistent"),
    );
    for (gens, want) in cases {
        let err = generate(&generators(gens.clone()), &inputs, &Verbatim, false).unwrap_err();
        assert!(err.contains(want), "{gens}: {err}");
    }
}

#[test]
fn an_entry_without_a_generator_yields_nothing_and_one_with_two_kinds_yields_both() {
    let gens = generators(json!([
        {},
        {"list": {"elements": [{"a": "1"}]}, "clusters": {}}
    ]));
    let inputs = Inputs {
        clusters: vec![cluster("c1", "https://c1", &[])],
        ..Inputs::default()
    };
    let got = generate(&gens, &inputs, &Verbatim, false).unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], set(json!({"a": "1"})));
    assert_eq!(got[1]["name"], "c1");
}

#[test]
fn git_sources_lists_every_repository_once_nested_ones_included() {
    let gens = generators(json!([
        {"git": {"repoURL": "https://a", "revision": "", "directories": [{"path": "*"}]}},
        {"matrix": {"generators": [
            {"git": {"repoURL": "https://a", "revision": "", "files": [{"path": "x.json"}]}},
            {"merge": {"mergeKeys": ["k"], "generators": [
                {"git": {"repoURL": "https://b", "revision": "v1", "files": [{"path": "y.json"}]}},
                {"list": {"elements": []}}
            ]}}
        ]}},
        {"merge": {"mergeKeys": ["k"], "generators": [
            {"git": {"repoURL": "https://a", "revision": "main", "directories": [{"path": "*"}]}},
            {"matrix": "not an object"}
        ]}}
    ]));
    assert_eq!(
        git_sources(&gens),
        [
            ("https://a".to_string(), String::new()),
            ("https://b".to_string(), "v1".to_string()),
            ("https://a".to_string(), "main".to_string()),
        ]
    );
}

#[test]
fn the_test_interpolator_renders_both_modes() {
    let params = set(json!({"a": "x", "n": {"m": 2}}));
    assert_eq!(
        Braces.interpolate(&json!("{{a}}-{{b}}"), &params, false).unwrap(),
        json!("x-{{b}}")
    );
    assert_eq!(
        Braces.interpolate(&json!(["{{ .n.m }}"]), &params, true).unwrap(),
        json!(["2"])
    );
    assert!(Braces.interpolate(&json!("{{.zz}}"), &params, true).is_err());
}

#[test]
fn a_go_template_selector_matches_nested_cluster_labels_where_upstream_prints_the_whole_map() {
    // Upstream flattens map[string]string leaves as "map[env:prod]", so this selector never matches there.
    let gens = generators(json!([{
        "clusters": {},
        "selector": {"matchLabels": {"metadata.labels.env": "prod"}}
    }]));
    let inputs = Inputs {
        clusters: vec![
            cluster("p", "https://p", &[("env", "prod")]),
            cluster("d", "https://d", &[("env", "dev")]),
        ],
        ..Inputs::default()
    };
    let got = generate(&gens, &inputs, &Verbatim, true).unwrap();
    let names: Vec<&str> = got.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["p"]);
}
