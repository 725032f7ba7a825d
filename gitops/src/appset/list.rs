//! The list generator (`AC:applicationset/generators/list.go`): `elements` and then `elementsYaml`, each
//! element one parameter set. With goTemplate an element is used as written; in fasttemplate mode its values
//! must be scalars (written with Go's `%v`, `null` as empty), and a `values` object becomes `values.<key>`.

use serde_json::Value;
use sluice_crds::applicationset::ListGenerator;

use super::Params;
use super::params::{go_value_string, yaml_to_json};
use crate::json_type;

/// The parameter sets of a list generator.
pub(crate) fn params(list: &ListGenerator, go_template: bool) -> Result<Vec<Params>, String> {
    let mut out = Vec::new();
    for element in list.elements.iter().flatten() {
        let Value::Object(element) = element else {
            return Err(format!(
                "error unmarshling list element: an element is {}, not an object",
                json_type(element)
            ));
        };
        out.push(process_element(element, go_template)?);
    }
    if let Some(text) = list.elements_yaml.as_deref().filter(|t| !t.is_empty()) {
        for element in yaml_elements(text)? {
            out.push(process_element(&element, go_template)?);
        }
    }
    Ok(out)
}

/// The objects of `elementsYaml` (a YAML list of objects; `null` entries are empty objects).
fn yaml_elements(text: &str) -> Result<Vec<Params>, String> {
    let fail = |why: String| format!("error unmarshling decoded ElementsYaml {why}");
    match yaml_to_json(text).map_err(fail)? {
        Value::Null => Ok(vec![]),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(map) => Ok(map),
                Value::Null => Ok(Params::new()),
                other => Err(fail(format!(
                    "an element is {}, not an object",
                    json_type(&other)
                ))),
            })
            .collect(),
        other => Err(fail(format!("the text holds {}, not a list", json_type(&other)))),
    }
}

/// Upstream's `processElement`.
fn process_element(element: &Params, go_template: bool) -> Result<Params, String> {
    if go_template {
        return Ok(element.clone());
    }
    let mut params = Params::new();
    for (key, value) in element {
        if key == "values" {
            let Value::Object(values) = value else {
                return Err("error parsing values map".into());
            };
            for (k, v) in values {
                params.insert(format!("values.{k}"), Value::String(scalar(v, k)?));
            }
        } else {
            params.insert(key.clone(), Value::String(scalar(value, key)?));
        }
    }
    Ok(params)
}

/// Upstream's `getParamValue`.
fn scalar(value: &Value, key: &str) -> Result<String, String> {
    match value {
        Value::Null => Ok(String::new()),
        Value::Object(_) | Value::Array(_) => Err(format!(
            "unsupported value type {} for key {key:?}: nested objects and arrays are not supported in \
             non-GoTemplate mode",
            if value.is_object() {
                "map[string]interface {}"
            } else {
                "[]interface {}"
            }
        )),
        scalar => Ok(go_value_string(scalar)),
    }
}

#[cfg(test)]
mod tests;
