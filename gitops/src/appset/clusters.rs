//! The clusters generator (`AC:applicationset/generators/cluster.go`): one parameter set per cluster Secret
//! whose labels match the selector, plus the implicit in-cluster (which has no Secret, so no labels) only when
//! the selector is empty. Params `name`, `nameNormalized`, `server`, `project`, the Secret's labels and
//! annotations (`metadata.labels.<k>` flat, `metadata: {labels, annotations}` with goTemplate) and the
//! templated `values`. `flatList` folds every set into one `{clusters: [...]}`.

use std::collections::BTreeMap;

use serde_json::Value;
use sluice_crds::applicationset::ClusterGenerator;

use super::params::{append_values, sanitize_name};
use super::selector::{is_empty, matches_selector};
use super::{Context, Params};
use crate::clusters::KnownCluster;

/// The parameter sets of a clusters generator over `clusters`.
pub(crate) fn params(
    generator: &ClusterGenerator,
    clusters: &[KnownCluster],
    ctx: &Context<'_>,
) -> Result<Vec<Params>, String> {
    let selector = generator.selector.as_ref();
    let ignore_local = !is_empty(selector);
    let mut out = Vec::new();
    for cluster in clusters {
        let selected = match (cluster.declared, selector) {
            (false, _) => !ignore_local,
            (true, None) => true,
            (true, Some(s)) => matches_selector(s, &cluster.labels),
        };
        if !selected {
            continue;
        }
        let mut params = cluster_params(cluster, ctx.options.go_template);
        append_values(generator.values.as_ref(), &mut params, ctx).map_err(|e| {
            let which = if cluster.declared {
                "cluster"
            } else {
                "local cluster"
            };
            format!("error appending templated values for {which}: {e}")
        })?;
        out.push(params);
    }
    if generator.flat_list == Some(true) {
        let all = out.into_iter().map(Value::Object).collect();
        return Ok(vec![Params::from_iter([(
            "clusters".to_string(),
            Value::Array(all),
        )])]);
    }
    Ok(out)
}

/// `getClusterParameters` (and the in-cluster's fixed parameters when it has no Secret).
fn cluster_params(cluster: &KnownCluster, go_template: bool) -> Params {
    let mut params = Params::new();
    params.insert("name".into(), cluster.name.clone().into());
    let normalized = if cluster.declared {
        sanitize_name(&cluster.name)
    } else {
        cluster.name.clone()
    };
    params.insert("nameNormalized".into(), normalized.into());
    params.insert("server".into(), cluster.server.clone().into());
    params.insert("project".into(), cluster.project.clone().into());
    if !cluster.declared {
        return params;
    }
    if go_template {
        let mut meta = Params::new();
        for (key, map) in [("annotations", &cluster.annotations), ("labels", &cluster.labels)] {
            if !map.is_empty() {
                meta.insert(key.into(), string_map(map));
            }
        }
        params.insert("metadata".into(), Value::Object(meta));
    } else {
        for (prefix, map) in [("annotations", &cluster.annotations), ("labels", &cluster.labels)] {
            for (k, v) in map {
                params.insert(format!("metadata.{prefix}.{k}"), v.clone().into());
            }
        }
    }
    params
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

#[cfg(test)]
mod tests;
