use serde_json::json;

use super::*;
use crate::appset::tests::set;

fn list(value: serde_json::Value) -> ListGenerator {
    serde_json::from_value(value).unwrap()
}

#[test]
fn elements_become_parameter_sets() {
    let spec = list(json!({
        "elements": [
            {"cluster": "dev", "url": "https://1.2.3.4", "values": {"replicas": "2", "n": 3}},
            {"cluster": "prod", "replicas": 3, "big": 1234567, "on": true, "none": null}
        ],
        "elementsYaml": "- cluster: qa\n  url: https://9.9.9.9\n- ~\n"
    }));
    let cases = [
        (
            false,
            vec![
                set(
                    json!({"cluster": "dev", "url": "https://1.2.3.4", "values.replicas": "2", "values.n": "3"}),
                ),
                set(
                    json!({"cluster": "prod", "replicas": "3", "big": "1.234567e+06", "on": "true", "none": ""}),
                ),
                set(json!({"cluster": "qa", "url": "https://9.9.9.9"})),
                set(json!({})),
            ],
        ),
        (
            true,
            vec![
                set(json!({"cluster": "dev", "url": "https://1.2.3.4", "values": {"replicas": "2", "n": 3}})),
                set(json!({"cluster": "prod", "replicas": 3, "big": 1234567, "on": true, "none": null})),
                set(json!({"cluster": "qa", "url": "https://9.9.9.9"})),
                set(json!({})),
            ],
        ),
    ];
    for (go, want) in cases {
        assert_eq!(params(&spec, go).unwrap(), want, "goTemplate {go}");
    }
}

#[test]
fn nested_values_need_go_template() {
    let cases = [
        (
            json!({"elements": [{"a": {"b": "c"}}]}),
            "unsupported value type map[string]interface {} for key \"a\": nested objects and arrays are not supported in non-GoTemplate mode",
        ),
        (
            json!({"elements": [{"a": ["x"]}]}),
            "unsupported value type []interface {} for key \"a\"",
        ),
        (json!({"elements": [{"values": "x"}]}), "error parsing values map"),
        (
            json!({"elements": ["x"]}),
            "error unmarshling list element: an element is a string, not an object",
        ),
        (
            json!({"elementsYaml": "a: b"}),
            "error unmarshling decoded ElementsYaml the text holds an object, not a list",
        ),
        (
            json!({"elementsYaml": "- [x]"}),
            "error unmarshling decoded ElementsYaml an element is an array, not an object",
        ),
        (
            json!({"elementsYaml": "- {"}),
            "error unmarshling decoded ElementsYaml",
        ),
    ];
    for (spec, want) in cases {
        let err = params(&list(spec.clone()), false).unwrap_err();
        assert!(err.starts_with(want), "{spec}: {err}");
    }
    assert_eq!(
        params(&list(json!({"elements": [{"a": {"b": "c"}}]})), true)
            .unwrap()
            .len(),
        1
    );
}
