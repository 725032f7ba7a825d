//! Helpers every generator shares: Go's `%v` of a JSON value, jeremywohl/flatten's dot-style flattening,
//! `utils.SanitizeName`, Go's `path.Base`/`path.Dir`, the templated `values`, and YAML read as
//! sigs.k8s.io/yaml reads it (through JSON, so numbers are float64).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Context, Params};

/// Go's `fmt.Sprintf("%v", v)` of a value decoded from JSON: numbers are float64 (`3`, `1.5`, `1e+06`),
/// `null` is `<nil>`; objects and lists are written as Go prints them (`map[a:b]`, `[x y]`).
pub fn go_value_string(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_float(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(go_value_string).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(map) => {
            // Go prints a map's keys sorted, whatever order the JSON object keeps.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let items: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_value_string(v)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

/// Go's `%v` of a float64 (`%g` with the shortest digits): `%e` form (`1.5e+06`) when the decimal exponent is
/// below -4 or at least 6, plain digits otherwise.
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-tripping digits, as Go's shortest formatting does.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let fraction = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{fraction}e{exp_sign}{:02}", exp.abs());
    }
    let point = exp + 1; // digits before the decimal point
    if point <= 0 {
        let zeros = "0".repeat(usize::try_from(-point).unwrap_or(0));
        return format!("{sign}0.{zeros}{digits}");
    }
    let point = usize::try_from(point).unwrap_or(0);
    if digits.len() <= point {
        format!("{sign}{digits}{}", "0".repeat(point - digits.len()))
    } else {
        format!("{sign}{}.{}", &digits[..point], &digits[point..])
    }
}

/// A parameter set flattened as upstream's selectors and fasttemplate see it: nested keys joined with `.`
/// (list indices too: `path.segments.0`), leaves written with Go's `%v`; empty objects and lists vanish.
pub fn flatten(params: &Params) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, value) in params {
        flatten_into(key, value, &mut out);
    }
    out
}

fn flatten_into(key: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten_into(&format!("{key}.{k}"), v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten_into(&format!("{key}.{i}"), v, out);
            }
        }
        leaf => {
            out.insert(key.to_string(), go_value_string(leaf));
        }
    }
}

/// `utils.SanitizeName`: lower case, every character but `a-z0-9-.` replaced by `-`, at most 253 bytes,
/// without leading or trailing `-` and `.`.
pub fn sanitize_name(name: &str) -> String {
    let replaced: String = name
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '.' => c,
            _ => '-',
        })
        .collect();
    let truncated = &replaced[..replaced.len().min(253)];
    truncated.trim_matches(|c| c == '-' || c == '.').to_string()
}

/// Go's `path.Base`: the last element of a `/`-separated path (`.` for an empty one, `/` for the root).
pub(crate) fn go_base(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".into();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_string()
}

/// Go's `path.Dir` of a clean relative path: everything before the last `/`, or `.`.
pub(crate) fn go_dir(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) => "/".into(),
        Some((dir, _)) => dir.to_string(),
        None => ".".into(),
    }
}

/// Upstream's `appendTemplatedValues`: each value rendered with the parameters so far, then added as
/// `values.<key>` (fasttemplate) or as the object `values` (goTemplate).
pub(crate) fn append_values(
    values: Option<&BTreeMap<String, String>>,
    params: &mut Params,
    ctx: &Context<'_>,
) -> Result<(), String> {
    let Some(values) = values.filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    let mut rendered = Params::new();
    for (key, text) in values {
        rendered.insert(key.clone(), Value::String(ctx.render_string(text, params)?));
    }
    if ctx.options.go_template {
        params.insert("values".into(), Value::Object(rendered));
    } else {
        for (key, value) in rendered {
            params.insert(format!("values.{key}"), value);
        }
    }
    Ok(())
}

/// The first document of a YAML (or JSON) text as JSON, as sigs.k8s.io/yaml converts it: scalar keys become
/// strings; an empty text is `null`.
pub(crate) fn yaml_to_json(text: &str) -> Result<Value, String> {
    use serde::Deserialize;
    let Some(doc) = serde_yaml::Deserializer::from_str(text).next() else {
        return Ok(Value::Null);
    };
    let yaml = serde_yaml::Value::deserialize(doc).map_err(|e| e.to_string())?;
    convert_yaml(yaml)
}

fn convert_yaml(yaml: serde_yaml::Value) -> Result<Value, String> {
    use serde_yaml::Value as Y;
    Ok(match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => match n.as_i64() {
            Some(i) => Value::from(i),
            None => n
                .as_f64()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("the number {n} cannot be written as JSON"))?,
        },
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(convert_yaml).collect::<Result<_, _>>()?),
        Y::Mapping(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                out.insert(yaml_key(k)?, convert_yaml(v)?);
            }
            Value::Object(out)
        }
        Y::Tagged(tagged) => convert_yaml(tagged.value)?,
    })
}

fn yaml_key(key: serde_yaml::Value) -> Result<String, String> {
    use serde_yaml::Value as Y;
    match key {
        Y::String(s) => Ok(s),
        Y::Bool(b) => Ok(b.to_string()),
        Y::Number(n) => Ok(n.to_string()),
        Y::Null => Ok("null".into()),
        Y::Tagged(t) => yaml_key(t.value),
        Y::Sequence(_) | Y::Mapping(_) => Err("a mapping key is a list or a mapping, not a scalar".into()),
    }
}

#[cfg(test)]
mod tests;
