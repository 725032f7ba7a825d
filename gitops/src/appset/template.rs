//! Per-generator template overrides (`mergeGeneratorTemplate`): a generator's own `template` is filled in from
//! the ApplicationSet's with mergo's `Merge` (no override), so every field the generator's template leaves
//! empty (absent, `""`, `false`, `0`, `[]`, `{}`) comes from the ApplicationSet's template.

use serde_json::Value;

use super::{Context, Generator, Inputs, Interpolate, Options, Params, kinds};

/// One parameter set with the template (`{metadata, spec}`) it is rendered into.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedSet {
    /// The parameters.
    pub params: Params,
    /// The ApplicationSet's template, with the generator's override merged in when it has one.
    pub template: Value,
}

/// The parameter sets of every generator, each with its template: `template` is the ApplicationSet's
/// `spec.template` as JSON.
pub fn generate_sets(
    generators: &[Generator],
    inputs: &Inputs,
    interp: &dyn Interpolate,
    options: Options,
    template: &Value,
) -> Result<Vec<GeneratedSet>, String> {
    let ctx = Context {
        inputs,
        interp,
        options,
    };
    let mut out = Vec::new();
    for generator in generators {
        let results = ctx.transform(generator, &Params::new())?;
        for (kind, sets) in kinds(generator).into_iter().zip(results) {
            let merged = merged_template(own_template(generator, kind), template);
            out.extend(sets.into_iter().map(|params| GeneratedSet {
                params,
                template: merged.clone(),
            }));
        }
    }
    Ok(out)
}

/// The `template` of the generator of `kind` in `generator`, when it has one.
fn own_template<'a>(generator: &'a Generator, kind: &str) -> Option<&'a Value> {
    match kind {
        "list" => generator.list.as_ref()?.template.as_ref(),
        "clusters" => generator.clusters.as_ref()?.template.as_ref(),
        "git" => generator.git.as_ref()?.template.as_ref(),
        "matrix" => generator.matrix.as_ref()?.template.as_ref(),
        "merge" => generator.merge.as_ref()?.template.as_ref(),
        _ => None,
    }
}

/// `own` filled in from `base`; `base` itself when there is no override.
pub(crate) fn merged_template(own: Option<&Value>, base: &Value) -> Value {
    match own {
        None => base.clone(),
        Some(own) => {
            let mut merged = own.clone();
            fill_empty(&mut merged, base);
            merged
        }
    }
}

/// mergo without override: empty values of `dst` take `src`'s; objects are filled key by key.
fn fill_empty(dst: &mut Value, src: &Value) {
    match (dst, src) {
        (Value::Object(d), Value::Object(s)) => {
            for (k, sv) in s {
                match d.get_mut(k) {
                    Some(dv) if dv.is_object() && sv.is_object() => fill_empty(dv, sv),
                    Some(dv) if !is_empty(dv) => {}
                    _ => {
                        d.insert(k.clone(), sv.clone());
                    }
                }
            }
        }
        (dst, src) if is_empty(dst) => *dst = src.clone(),
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

#[cfg(test)]
mod tests;
