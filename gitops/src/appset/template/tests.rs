use serde_json::json;

use super::*;
use crate::appset::Verbatim;
use crate::appset::tests::generators;

fn base() -> Value {
    json!({
        "metadata": {"name": "{{name}}", "labels": {"team": "a"}},
        "spec": {"project": "default", "destination": {"server": "{{server}}", "namespace": "apps"},
                 "syncPolicy": {"automated": {"prune": true}}}
    })
}

#[test]
fn a_generator_template_is_filled_in_from_the_applicationset_template() {
    let cases = [
        (None, base()),
        (
            Some(json!({"metadata": {}, "spec": {"project": "", "destination": {"namespace": "override"}}})),
            json!({
                "metadata": {"name": "{{name}}", "labels": {"team": "a"}},
                "spec": {"project": "default", "destination": {"server": "{{server}}", "namespace": "override"},
                         "syncPolicy": {"automated": {"prune": true}}}
            }),
        ),
        (
            Some(
                json!({"metadata": {"labels": {"extra": "x"}}, "spec": {"project": "p",
                        "syncPolicy": {"automated": {"prune": false}}}}),
            ),
            json!({
                "metadata": {"name": "{{name}}", "labels": {"team": "a", "extra": "x"}},
                "spec": {"project": "p", "destination": {"server": "{{server}}", "namespace": "apps"},
                         "syncPolicy": {"automated": {"prune": true}}}
            }),
        ),
    ];
    for (own, want) in cases {
        assert_eq!(merged_template(own.as_ref(), &base()), want, "{own:?}");
    }
}

#[test]
fn every_set_carries_the_template_of_its_generator() {
    let gens = generators(json!([
        {"list": {"elements": [{"name": "one"}],
                  "template": {"metadata": {}, "spec": {"project": "listed", "destination": {}}}}},
        {"list": {"elements": [{"name": "two"}, {"name": "three"}]}}
    ]));
    let sets = generate_sets(&gens, &Inputs::default(), &Verbatim, Options::default(), &base()).unwrap();
    let view: Vec<(&str, &str)> = sets
        .iter()
        .map(|s| {
            (
                s.params["name"].as_str().unwrap(),
                s.template["spec"]["project"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        view,
        [("one", "listed"), ("two", "default"), ("three", "default")]
    );
}
