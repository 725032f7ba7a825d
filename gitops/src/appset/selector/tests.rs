use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

use super::*;

fn req(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.into(),
        operator: op.into(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
    }
}

fn selector(labels: &[(&str, &str)], exprs: Vec<LabelSelectorRequirement>) -> LabelSelector {
    LabelSelector {
        match_labels: (!labels.is_empty()).then(|| {
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        }),
        match_expressions: (!exprs.is_empty()).then_some(exprs),
    }
}

#[test]
fn requirements_hold_as_apimachinery_defines_them() {
    let labels: BTreeMap<String, String> = [("env", "prod"), ("url", "https://a:6443/x")]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let cases = [
        (selector(&[], vec![]), true),
        (selector(&[("env", "prod")], vec![]), true),
        (selector(&[("env", "dev")], vec![]), false),
        (selector(&[("url", "https://a:6443/x")], vec![]), true),
        (selector(&[], vec![req("env", "In", &["dev", "prod"])]), true),
        (selector(&[], vec![req("env", "In", &["dev"])]), false),
        (selector(&[], vec![req("env", "NotIn", &["dev"])]), true),
        (selector(&[], vec![req("missing", "NotIn", &["dev"])]), true),
        (selector(&[], vec![req("env", "Exists", &[])]), true),
        (selector(&[], vec![req("missing", "Exists", &[])]), false),
        (selector(&[], vec![req("missing", "DoesNotExist", &[])]), true),
        (
            selector(&[("env", "prod")], vec![req("env", "DoesNotExist", &[])]),
            false,
        ),
        (selector(&[], vec![req("env", "Gt", &["1"])]), false),
    ];
    for (i, (sel, want)) in cases.iter().enumerate() {
        assert_eq!(matches_selector(sel, &labels), *want, "case {i}: {sel:?}");
    }
}

#[test]
fn invalid_requirements_are_named() {
    let cases = [
        (
            req("a", "In", &[]),
            "key a: for 'in', 'notin' operators, values set can't be empty",
        ),
        (
            req("a", "Exists", &["x"]),
            "key a: values set must be empty for exists and does not exist",
        ),
        (
            req("a", "Lt", &["1"]),
            "\"Lt\" is not a valid label selector operator",
        ),
    ];
    for (r, want) in cases {
        assert_eq!(validate_selector(&selector(&[], vec![r])).unwrap_err(), want);
    }
    assert!(is_empty(None) && is_empty(Some(&selector(&[], vec![]))));
    assert!(!is_empty(Some(&selector(&[("a", "b")], vec![]))));
}
