//! Round-trip helper shared by the fixture tests.

use std::path::{Path, PathBuf};

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// Path of a fixture under `crds/tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Every YAML document of a fixture file, as JSON values.
pub fn documents(name: &str) -> Vec<Value> {
    let path = fixture(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            <Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Deserializes `doc` as `T`, serializes it back, and asserts that no field was lost, added or changed.
pub fn assert_roundtrip<T: Serialize + DeserializeOwned>(doc: &Value) -> T {
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{} does not deserialize: {e}", describe(doc)));
    let back = serde_json::to_value(&typed).expect("serializes");
    if &back != doc {
        let mut lost = Vec::new();
        diff("", doc, &back, &mut lost);
        panic!("{} changed in a round trip:\n{}", describe(doc), lost.join("\n"));
    }
    typed
}

fn describe(doc: &Value) -> String {
    format!(
        "{} {}",
        doc["kind"].as_str().unwrap_or("?"),
        doc["metadata"]["name"].as_str().unwrap_or("?")
    )
}

fn diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                let p = format!("{path}.{k}");
                match g.get(k) {
                    Some(gv) => diff(&p, wv, gv, out),
                    None => out.push(format!("  lost {p}")),
                }
            }
            for k in g.keys().filter(|k| !w.contains_key(*k)) {
                out.push(format!("  added {path}.{k}"));
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                diff(&format!("{path}[{i}]"), wv, gv, out);
            }
        }
        _ if want != got => out.push(format!("  changed {path}: {want} -> {got}")),
        _ => {}
    }
}

/// Every key path present in `doc`, e.g. `spec.strategy.canary.steps[].setWeight`; used to prove a fixture
/// covers the fields it claims to.
pub fn key_paths(doc: &Value) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    walk("", doc, &mut out);
    out
}

fn walk(path: &str, v: &Value, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                out.insert(p.clone());
                walk(&p, v, out);
            }
        }
        Value::Array(a) => {
            for v in a {
                walk(&format!("{path}[]"), v, out);
            }
        }
        _ => {}
    }
}
