//! Sluice's hashes held to Argo Rollouts' own, computed by Go (`gohash oracle`, e2e/gohash): the generated
//! tables are those of the pinned Go types; every field of a pod template, and generated templates and step
//! lists, encode to the bytes Go writes and hash to the hash Argo Rollouts computes, both from the raw JSON and
//! after Sluice's typed decoding (k8s-openapi and sluice-crds), which is what the controller hashes.

use std::collections::BTreeMap;

use anyhow::Result;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::{Value, json};
use sluice_crds::rollout::CanaryStep;
use sluice_e2e::gohash::{Answer, Build, Oracle};
use sluice_gojson::arbitrary::{self, Rng, Shape};
use sluice_gojson::{self as gojson, Field, Ty};

/// What the two sides disagreed on, kept short enough to read.
#[derive(Default)]
struct Report {
    cases: usize,
    typed: usize,
    mismatches: Vec<String>,
    refused_by_types: BTreeMap<String, usize>,
}

impl Report {
    fn fail(&mut self, what: String) {
        if self.mismatches.len() < 10 {
            self.mismatches.push(what);
        } else {
            self.mismatches.truncate(10);
            self.mismatches.push("…".into());
        }
    }

    fn assert_clean(&self, name: &str) {
        eprintln!(
            "{name}: {} cases, {} through the typed decoding; refused by the Rust types: {:?}",
            self.cases, self.typed, self.refused_by_types
        );
        assert!(
            self.mismatches.is_empty(),
            "{name}:\n{}",
            self.mismatches.join("\n")
        );
    }
}

/// The value encoded by Sluice, as the controller does: decoded into its Rust type, then written as Go would.
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> Result<Value, String> {
    let t: T = serde_json::from_value(v.clone()).map_err(|e| first_words(&e.to_string()))?;
    serde_json::to_value(&t).map_err(|e| e.to_string())
}

fn first_words(s: &str) -> String {
    s.split(" at line").next().unwrap_or(s).chars().take(60).collect()
}

/// Compares Sluice with Go on one value of `ty`: the raw encoding, and the typed one when the types take it.
fn compare(report: &mut Report, go: &Answer, ty: usize, v: &Value, typed: Result<Value, String>) {
    report.cases += 1;
    let collision = None;
    let raw = gojson::marshal(ty, v);
    match (&raw, go.error.is_empty()) {
        (Ok(bytes), true) => {
            let ours = String::from_utf8_lossy(bytes);
            if ours != go.json {
                report.fail(format!("input {v}\n  go   {}\n  ours {ours}", go.json));
            } else if !go.hash.is_empty() && gojson::argo_hash(bytes, collision) != go.hash {
                report.fail(format!("input {v}: same JSON, hash differs"));
            }
        }
        (Err(_), false) => {}
        (Ok(_), false) => report.fail(format!(
            "input {v}: Go refused it ({}), Sluice encoded it",
            go.error
        )),
        (Err(e), true) => report.fail(format!(
            "input {v}: Sluice refused it ({e}), Go wrote {}",
            go.json
        )),
    }
    match typed {
        Err(e) => *report.refused_by_types.entry(e).or_default() += 1,
        Ok(tv) if go.error.is_empty() => {
            let ours = gojson::marshal(ty, &tv).map(|b| String::from_utf8_lossy(&b).into_owned());
            if ours.as_deref() == Ok(go.json.as_str()) {
                report.typed += 1;
            } else if adds_fields(v, &tv) {
                // A field the Rust type requires was absent and is filled in; the API server refuses such an
                // object, so no Rollout holds it.
                *report
                    .refused_by_types
                    .entry("required field absent".into())
                    .or_default() += 1;
            } else {
                report.fail(format!(
                    "typed input {v}\n  as   {tv}\n  go   {}\n  ours {ours:?}",
                    go.json
                ));
            }
        }
        Ok(_) => {}
    }
}

/// A template as a runnable Rollout holds it: with a containers list when it has a spec. (k8s-openapi's PodSpec
/// has no absent containers: it decodes an absent list as an empty one, which Go writes `[]` instead of `null`;
/// a template without containers runs no pod and is refused as a ReplicaSet's template.)
fn runnable(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        spec.entry("containers").or_insert(json!([]));
    }
    v
}

/// Whether the typed round trip wrote a field the input did not have.
fn adds_fields(input: &Value, typed: &Value) -> bool {
    match (input, typed) {
        (Value::Object(a), Value::Object(b)) => b.iter().any(|(k, bv)| match a.get(k) {
            None | Some(Value::Null) => !bv.is_null(),
            Some(av) => adds_fields(av, bv),
        }),
        (Value::Array(a), Value::Array(b)) => a.iter().zip(b).any(|(x, y)| adds_fields(x, y)),
        (Value::Null, b) => !b.is_null(),
        _ => false,
    }
}

fn check_template(oracle: &mut Oracle, report: &mut Report, v: &Value) -> Result<()> {
    let v = &runnable(v);
    let go = oracle.template(v, None)?;
    compare(
        report,
        &go,
        gojson::POD_TEMPLATE_SPEC,
        v,
        typed::<PodTemplateSpec>(v),
    );
    Ok(())
}

fn check_steps(oracle: &mut Oracle, report: &mut Report, v: &Value) -> Result<()> {
    let go = oracle.steps(v)?;
    compare(
        report,
        &go,
        gojson::CANARY_STEPS,
        v,
        typed::<Option<Vec<CanaryStep>>>(v),
    );
    Ok(())
}

#[test]
fn the_tables_are_those_of_the_pinned_go_types() -> Result<()> {
    let dir = sluice_e2e::build_gohash()?;
    let root = sluice_e2e::repo_dir();
    for (binary, file) in [("gohash", "table.rs"), ("gohash-argo", "table_argo.rs")] {
        let out = std::process::Command::new(dir.join(binary))
            .arg("table")
            .output()?;
        assert!(
            out.status.success(),
            "{binary} table: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let committed = std::fs::read_to_string(root.join("gojson/src").join(file))?;
        assert!(
            String::from_utf8(out.stdout)? == committed,
            "gojson/src/{file} is not what {binary} generates: run bash e2e/scripts/build-gohash.sh --write-tables"
        );
    }
    // The table follows the control plane's Kubernetes version.
    let pin = |path: &str| -> Result<String> {
        let text = std::fs::read_to_string(root.join(path))?;
        Ok(text
            .lines()
            .find(|l| l.starts_with("replace k8s.io/api =>"))
            .unwrap_or_default()
            .to_string())
    };
    assert_eq!(pin("e2e/gohash/go.mod")?, pin("e2e/k8sbins/go.mod")?);
    Ok(())
}

/// Every field reachable from the root type, each set alone (to a generated value, to its empty value and to
/// null), as a value of the root type: the paths through the struct fields, each struct type entered once a
/// path so that recursive types end.
fn single_fields(types: &'static [Ty], root: usize, rng: &mut Rng) -> Vec<Value> {
    fn walk(
        types: &'static [Ty],
        ty: usize,
        seen: &mut Vec<usize>,
        rng: &mut Rng,
        out: &mut Vec<Value>,
        wrap: &dyn Fn(Value) -> Value,
    ) {
        match &types[ty] {
            Ty::Ptr(inner) => walk(types, *inner, seen, rng, out, wrap),
            Ty::Slice(inner) => walk(types, *inner, seen, rng, out, &|v| wrap(json!([v]))),
            Ty::Map(inner) => walk(types, *inner, seen, rng, out, &|v| wrap(json!({"k<&>": v}))),
            Ty::Struct(fields) if !seen.contains(&ty) => {
                seen.push(ty);
                for Field(name, fty, _) in fields.iter() {
                    let name = name.to_string();
                    let shape = Shape {
                        max_depth: 2,
                        field_chance: 0.7,
                    };
                    for v in [
                        arbitrary::value(types, *fty, rng, shape),
                        empty(&types[*fty]),
                        Value::Null,
                    ] {
                        out.push(wrap(json!({ name.clone(): v })));
                    }
                    let inner_wrap = |v: Value| wrap(json!({ name.clone(): v }));
                    walk(types, *fty, seen, rng, out, &inner_wrap);
                }
                seen.pop();
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(types, root, &mut Vec::new(), rng, &mut out, &|v| v);
    out
}

fn empty(ty: &Ty) -> Value {
    match ty {
        Ty::Struct(_) | Ty::Map(_) => json!({}),
        Ty::Slice(_) => json!([]),
        Ty::String | Ty::Quantity | Ty::Time => json!(""),
        Ty::Bool => json!(false),
        Ty::Int | Ty::IntOrString => json!(0),
        Ty::Ptr(_) | Ty::RawJson => Value::Null,
    }
}

#[test]
fn every_field_of_a_pod_template_and_of_the_steps_encodes_as_go_does() -> Result<()> {
    let mut oracle = Oracle::start(Build::ControlPlane)?;
    let mut rng = Rng::new(9);
    let mut report = Report::default();
    for v in single_fields(gojson::TYPES, gojson::POD_TEMPLATE_SPEC, &mut rng) {
        check_template(&mut oracle, &mut report, &v)?;
    }
    report.assert_clean("pod template fields");
    let mut report = Report::default();
    for v in single_fields(gojson::TYPES, gojson::CANARY_STEPS, &mut rng) {
        check_steps(&mut oracle, &mut report, &v)?;
    }
    report.assert_clean("step fields");
    Ok(())
}

#[test]
fn generated_templates_and_steps_hash_as_argo_rollouts() -> Result<()> {
    let mut oracle = Oracle::start(Build::ControlPlane)?;
    let mut rng = Rng::new(2026);
    let mut report = Report::default();
    for _ in 0..4000 {
        let v = arbitrary::value(
            gojson::TYPES,
            gojson::POD_TEMPLATE_SPEC,
            &mut rng,
            Shape::default(),
        );
        check_template(&mut oracle, &mut report, &v)?;
    }
    report.assert_clean("generated templates");
    let mut report = Report::default();
    for _ in 0..4000 {
        let v = arbitrary::value(gojson::TYPES, gojson::CANARY_STEPS, &mut rng, Shape::default());
        check_steps(&mut oracle, &mut report, &v)?;
    }
    report.assert_clean("generated steps");
    Ok(())
}

/// The Argo Rollouts release is built with older Kubernetes modules than the control plane; over templates
/// it can decode, its own build gives Sluice's hash.
#[test]
fn argo_rollouts_own_build_gives_the_same_hashes() -> Result<()> {
    let mut oracle = Oracle::start(Build::ArgoRollouts)?;
    let mut rng = Rng::new(110);
    let mut report = Report::default();
    for i in 0..3000 {
        let (ty, argo_ty) = if i % 2 == 0 {
            (gojson::POD_TEMPLATE_SPEC, gojson::ARGO_POD_TEMPLATE_SPEC)
        } else {
            (gojson::CANARY_STEPS, gojson::ARGO_CANARY_STEPS)
        };
        let v = arbitrary::value(gojson::ARGO_TYPES, argo_ty, &mut rng, Shape::default());
        let go = if ty == gojson::CANARY_STEPS {
            oracle.steps(&v)?
        } else {
            oracle.template(&v, Some(i))?
        };
        report.cases += 1;
        let ours = gojson::marshal(ty, &v)
            .ok()
            .map(|b| gojson::argo_hash(&b, (ty != gojson::CANARY_STEPS).then_some(i)));
        if go.error.is_empty() && ours.as_deref() != Some(go.hash.as_str()) {
            report.fail(format!("input {v}: Argo Rollouts {} ours {ours:?}", go.hash));
        }
    }
    report.assert_clean("Argo Rollouts' build");
    Ok(())
}

#[test]
fn quantities_are_written_in_go_canonical_form() -> Result<()> {
    let mut oracle = Oracle::start(Build::ControlPlane)?;
    let mut rng = Rng::new(7);
    let mut report = Report::default();
    let parts = [
        "",
        "+",
        "-",
        "0",
        "00",
        "1",
        "9",
        "12",
        "999",
        "1000",
        "123456789012345678901234",
        ".",
        ".5",
        ".000000001",
        ".1234567890123",
    ];
    let suffixes = [
        "", "m", "u", "n", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "e3", "E-3",
        "e+2", "e", "i", "x",
    ];
    for _ in 0..20000 {
        let s: String = (0..1 + rng.below(3))
            .map(|_| parts[rng.below(parts.len())])
            .collect::<String>()
            + suffixes[rng.below(suffixes.len())];
        let go = oracle.quantity(&s)?;
        report.cases += 1;
        let ours = gojson::quantity::canonical(&s);
        let go_text = go.json.trim_matches('"');
        match (&ours, go.error.is_empty()) {
            (Ok(q), true) if q == go_text => {}
            (Err(_), false) => {}
            _ => report.fail(format!("{s:?}: go {} {} ours {ours:?}", go.json, go.error)),
        }
    }
    report.assert_clean("quantities");
    Ok(())
}
