//! The combination generators (`AC:applicationset/generators/matrix.go`, `merge.go`).
//!
//! matrix: exactly two children; the second is interpolated with each parameter set of the first before it
//! generates, and every pair is combined (goTemplate: a deep merge where the first child's values win;
//! fasttemplate: a union in which a key with two different values is an error).
//! merge: the first child's sets, each overridden (later generators win) by the sets of later children that
//! have the same values for every merge key; sets of later children without a base are dropped.

use std::collections::BTreeMap;

use serde_json::Value;
use sluice_crds::applicationset::{ApplicationSetNestedGenerator, MatrixGenerator, MergeGenerator};

use super::params::go_value_string;
use super::{Context, Params, to_generator};

/// The parameter sets of a matrix generator.
pub(crate) fn matrix(matrix: &MatrixGenerator, ctx: &Context<'_>) -> Result<Vec<Params>, String> {
    match matrix.generators.len() {
        n if n < 2 => return Err("found less than two generators, Matrix support only two".into()),
        n if n > 2 => return Err("found more than two generators, Matrix support only two".into()),
        _ => {}
    }
    let first = child_params(&matrix.generators[0], ctx, &Params::new())
        .map_err(|e| format!("error failed to get params for first generator in matrix generator: {e}"))?;
    let mut out = Vec::new();
    for a in &first {
        let second = child_params(&matrix.generators[1], ctx, a)
            .map_err(|e| format!("failed to get params for second generator in the matrix generator: {e}"))?;
        for b in &second {
            out.push(if ctx.options.go_template {
                let mut combined = b.clone();
                deep_merge(&mut combined, a);
                combined
            } else {
                combine_strict(a, b).map_err(|e| {
                    format!("failed to combine string maps with merging params for the matrix generator: {e}")
                })?
            });
        }
    }
    Ok(out)
}

/// The parameter sets of a merge generator, in the order of the base generator's sets.
pub(crate) fn merge(merge: &MergeGenerator, ctx: &Context<'_>) -> Result<Vec<Params>, String> {
    let n = merge.generators.len();
    if n < 2 {
        return Err("found less than two generators, Merge requires two or more".into());
    }
    let mut all = Vec::new();
    for (i, child) in merge.generators.iter().enumerate() {
        let sets = child_params(child, ctx, &Params::new()).map_err(|e| {
            format!("error getting param sets from generators: error getting params from generator {} of {n}: {e}", i + 1)
        })?;
        all.push(sets);
    }
    let by_key = |sets: &[Params]| {
        by_merge_key(&merge.merge_keys, sets)
            .map_err(|e| format!("error getting param sets by merge key: {e}"))
    };
    let mut base = by_key(&all[0])?;
    for sets in &all[1..] {
        let overrides: BTreeMap<String, Params> = by_key(sets)?.into_iter().collect();
        for (key, set) in base.iter_mut() {
            let Some(over) = overrides.get(key) else { continue };
            if ctx.options.go_template {
                deep_merge(set, over);
            } else {
                *set = stringify(set);
                set.extend(stringify(over));
            }
        }
    }
    Ok(base.into_iter().map(|(_, set)| set).collect())
}

/// Upstream's `getParamSetsByMergeKey`: each set keyed by the JSON of its merge-key values (missing ones
/// `null`), in order; two sets with one key are an error.
fn by_merge_key(keys: &[String], sets: &[Params]) -> Result<Vec<(String, Params)>, String> {
    if keys.is_empty() {
        return Err("no merge keys were specified, Merge requires at least one".into());
    }
    let mut out: Vec<(String, Params)> = Vec::new();
    for set in sets {
        let identity: BTreeMap<&str, &Value> = keys
            .iter()
            .map(|k| (k.as_str(), set.get(k).unwrap_or(&Value::Null)))
            .collect();
        let key = serde_json::to_string(&identity).unwrap_or_default();
        if out.iter().any(|(k, _)| *k == key) {
            return Err(format!(
                "the parameters from a generator were not unique by the given mergeKeys, Merge requires all param \
                 sets to be unique. Duplicate key was {key}"
            ));
        }
        out.push((key, set.clone()));
    }
    Ok(out)
}

/// Upstream's `getParams` of a combination's child: the nested generator read as a top-level one (nested
/// selectors dropped unless `applyNestedSelectors`), transformed with `parent`, and exactly one kind set.
fn child_params(
    child: &ApplicationSetNestedGenerator,
    ctx: &Context<'_>,
    parent: &Params,
) -> Result<Vec<Params>, String> {
    let mut generator = to_generator(child)?;
    if !ctx.options.apply_nested_selectors {
        let nested = generator.matrix.iter_mut().flat_map(|m| m.generators.iter_mut());
        let nested = nested.chain(generator.merge.iter_mut().flat_map(|m| m.generators.iter_mut()));
        for g in nested {
            g.selector = None;
        }
    }
    let mut results = ctx
        .transform(&generator, parent)
        .map_err(|e| format!("child generator returned an error on parameter generation: {e}"))?;
    match results.len() {
        0 => Err("child generator generated no parameters".into()),
        1 => Ok(results.remove(0)),
        _ => Err("found more than one generator in matrix.Generators".into()),
    }
}

/// Upstream's `CombineStringMaps`: the union of two sets written as strings; one key with two values is an
/// error.
fn combine_strict(a: &Params, b: &Params) -> Result<Params, String> {
    let mut out = stringify(a);
    for (k, v) in stringify(b) {
        match out.get(&k) {
            Some(current) if *current != v => {
                return Err(format!(
                    "found duplicate key {k} with different value, a: {} ,b: {}",
                    go_value_string(current),
                    go_value_string(&v)
                ));
            }
            _ => {
                out.insert(k, v);
            }
        }
    }
    Ok(out)
}

/// Every value written as a string with Go's `%v` (`ConvertToMapStringString`).
fn stringify(set: &Params) -> Params {
    set.iter()
        .map(|(k, v)| (k.clone(), Value::String(go_value_string(v))))
        .collect()
}

/// mergo's `Merge(dst, src, WithOverride)` on parameter maps: objects merge key by key, anything else in
/// `src` replaces what `dst` has.
fn deep_merge(dst: &mut Params, src: &Params) {
    for (k, v) in src {
        match (dst.get_mut(k), v) {
            (Some(Value::Object(d)), Value::Object(s)) => deep_merge(d, s),
            _ => {
                dst.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests;
