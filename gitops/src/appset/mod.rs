//! The parameter generators of Argo CD's ApplicationSet controller (`AC:applicationset/generators/*.go`): each
//! generator yields parameter sets, and the selector of a generator keeps only the sets whose flattened
//! parameters match. In the default (fasttemplate) mode a parameter set has flat string keys (`path.basename`,
//! `metadata.labels.env`, `path[0]`); with `goTemplate: true` it is nested (`path: {basename, segments}`).
//!
//! Pure but for reading checked-out repositories: the caller checks out what [`git_sources`] lists and passes
//! the directories in [`Inputs`]; templating is the caller's too ([`Interpolate`]), used for a matrix's second
//! child and for the `values` of the clusters and git generators. [`generate`] and [`generate_with`] give the
//! parameter sets; [`generate_sets`] gives each with its generator's template override merged in.

mod clusters;
mod combine;
mod git;
mod list;
mod params;
mod pattern;
mod selector;
mod template;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;
use sluice_crds::applicationset::{
    ApplicationSetGenerator, ApplicationSetNestedGenerator, NestedMatrixGenerator, NestedMergeGenerator,
};

use crate::clusters::KnownCluster;

pub use params::{flatten, go_value_string, sanitize_name};
pub use pattern::{go_path_match, pathspec_match};
pub use selector::{matches_selector, validate_selector};
pub use template::{GeneratedSet, generate_sets};

/// One parameter set of a generator.
pub type Params = serde_json::Map<String, Value>;

/// A generator at the top level of an ApplicationSet.
pub type Generator = ApplicationSetGenerator;

/// Renders a JSON value (every string in it) with a parameter set: fasttemplate `{{key}}` or, with
/// `go_template`, Go `text/template`.
pub trait Interpolate {
    /// `value` with every string rendered with `params`.
    fn interpolate(&self, value: &Value, params: &Params, go_template: bool) -> Result<Value, String>;
}

/// An [`Interpolate`] that leaves every value as written (for tests, and for sets without templates).
#[derive(Clone, Copy, Debug, Default)]
pub struct Verbatim;

impl Interpolate for Verbatim {
    fn interpolate(&self, value: &Value, _: &Params, _: bool) -> Result<Value, String> {
        Ok(value.clone())
    }
}

/// What the generators read besides their own spec.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// Every cluster Argo CD knows (`clusters::known_clusters`), the implicit in-cluster included.
    pub clusters: Vec<KnownCluster>,
    /// The checkout of each `(repoURL, revision)` the git generators read, as [`git_sources`] names them.
    pub checkouts: BTreeMap<(String, String), PathBuf>,
}

/// How the parameters are generated (the ApplicationSet spec's switches).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `spec.goTemplate`: nested parameters and Go templates.
    pub go_template: bool,
    /// `spec.applyNestedSelectors`: keep the selectors of generators inside a nested matrix or merge.
    pub apply_nested_selectors: bool,
}

/// The parameter sets of every generator, in order, as upstream's `GenerateApplications` collects them
/// (with `applyNestedSelectors` off, its default).
pub fn generate(
    generators: &[Generator],
    inputs: &Inputs,
    interp: &dyn Interpolate,
    go_template: bool,
) -> Result<Vec<Params>, String> {
    let options = Options {
        go_template,
        apply_nested_selectors: false,
    };
    generate_with(generators, inputs, interp, options)
}

/// [`generate`] with every switch of the spec.
pub fn generate_with(
    generators: &[Generator],
    inputs: &Inputs,
    interp: &dyn Interpolate,
    options: Options,
) -> Result<Vec<Params>, String> {
    let ctx = Context {
        inputs,
        interp,
        options,
    };
    let mut out = Vec::new();
    for generator in generators {
        for sets in ctx.transform(generator, &Params::new())? {
            out.extend(sets);
        }
    }
    Ok(out)
}

/// Every repository the generators read, nested ones included: `(repoURL, revision)` with the revision as
/// written (`""` means HEAD), each once, in order of appearance.
pub fn git_sources(generators: &[Generator]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for generator in generators {
        collect_sources(generator, &mut out);
    }
    out
}

fn collect_sources(generator: &Generator, out: &mut Vec<(String, String)>) {
    if let Some(git) = &generator.git {
        let source = (git.repo_url.clone(), git.revision.clone());
        if !out.contains(&source) {
            out.push(source);
        }
    }
    let children = generator
        .matrix
        .iter()
        .flat_map(|m| &m.generators)
        .chain(generator.merge.iter().flat_map(|m| &m.generators));
    for child in children {
        // A nested generator that cannot be read fails at generation, with its message.
        if let Ok(child) = to_generator(child) {
            collect_sources(&child, out);
        }
    }
}

/// A nested generator as a top-level one: a nested matrix or merge is read from its open object.
pub(crate) fn to_generator(nested: &ApplicationSetNestedGenerator) -> Result<Generator, String> {
    let matrix = nested
        .matrix
        .as_ref()
        .map(|raw| NestedMatrixGenerator::from_value(raw).map(NestedMatrixGenerator::into_matrix))
        .transpose()?;
    let merge = nested
        .merge
        .as_ref()
        .map(|raw| NestedMergeGenerator::from_value(raw).map(NestedMergeGenerator::into_merge))
        .transpose()
        .map_err(|e| format!("error retrieving merge generator: {e}"))?;
    Ok(Generator {
        list: nested.list.clone(),
        clusters: nested.clusters.clone(),
        git: nested.git.clone(),
        scm_provider: nested.scm_provider.clone(),
        cluster_decision_resource: nested.cluster_decision_resource.clone(),
        pull_request: nested.pull_request.clone(),
        matrix,
        merge,
        selector: nested.selector.clone(),
        plugin: nested.plugin.clone(),
    })
}

/// The kinds of generator set in one generator entry, in upstream's field order.
fn kinds(generator: &Generator) -> Vec<&'static str> {
    [
        ("list", generator.list.is_some()),
        ("clusters", generator.clusters.is_some()),
        ("git", generator.git.is_some()),
        ("scmProvider", generator.scm_provider.is_some()),
        (
            "clusterDecisionResource",
            generator.cluster_decision_resource.is_some(),
        ),
        ("pullRequest", generator.pull_request.is_some()),
        ("matrix", generator.matrix.is_some()),
        ("merge", generator.merge.is_some()),
        ("plugin", generator.plugin.is_some()),
    ]
    .into_iter()
    .filter_map(|(kind, set)| set.then_some(kind))
    .collect()
}

/// What every generator of one generation shares.
pub(crate) struct Context<'a> {
    pub(crate) inputs: &'a Inputs,
    pub(crate) interp: &'a dyn Interpolate,
    pub(crate) options: Options,
}

impl Context<'_> {
    /// Upstream's `Transform`: the parameter sets of each kind set in `generator` (interpolated with
    /// `parent` first when it is not empty), filtered by the generator's selector.
    pub(crate) fn transform(
        &self,
        generator: &Generator,
        parent: &Params,
    ) -> Result<Vec<Vec<Params>>, String> {
        if let Some(selector) = &generator.selector {
            validate_selector(selector).map_err(|e| format!("error parsing label selector: {e}"))?;
        }
        let generator = if parent.is_empty() {
            generator.clone()
        } else {
            self.interpolate_generator(generator, parent)?
        };
        let mut out = Vec::new();
        for kind in kinds(&generator) {
            let sets = self.generate_kind(kind, &generator)?;
            let kept = match &generator.selector {
                None => sets,
                Some(selector) => sets
                    .into_iter()
                    .filter(|set| matches_selector(selector, &flatten(set)))
                    .collect(),
            };
            out.push(kept);
        }
        Ok(out)
    }

    fn generate_kind(&self, kind: &str, generator: &Generator) -> Result<Vec<Params>, String> {
        let go = self.options.go_template;
        match kind {
            "list" => generator
                .list
                .as_ref()
                .map_or(Ok(vec![]), |g| list::params(g, go)),
            "clusters" => generator
                .clusters
                .as_ref()
                .map_or(Ok(vec![]), |g| clusters::params(g, &self.inputs.clusters, self)),
            "git" => generator
                .git
                .as_ref()
                .map_or(Ok(vec![]), |g| git::params(g, self))
                .map_err(|e| format!("error generating params from git: {e}")),
            "matrix" => generator
                .matrix
                .as_ref()
                .map_or(Ok(vec![]), |g| combine::matrix(g, self)),
            "merge" => generator
                .merge
                .as_ref()
                .map_or(Ok(vec![]), |g| combine::merge(g, self)),
            other => Err(format!("the {other} generator is not supported by Sluice")),
        }
    }

    /// Upstream's `InterpolateGenerator`: every string of the generator rendered with `params`.
    fn interpolate_generator(&self, generator: &Generator, params: &Params) -> Result<Generator, String> {
        let value =
            serde_json::to_value(generator).map_err(|e| format!("error interpolating generator: {e}"))?;
        let rendered = self
            .interp
            .interpolate(&value, params, self.options.go_template)?;
        serde_json::from_value(rendered)
            .map_err(|e| format!("error interpolating generator: the rendered generator is not valid: {e}"))
    }

    /// Renders one string with `params` (the `values` of the clusters and git generators).
    pub(crate) fn render_string(&self, text: &str, params: &Params) -> Result<String, String> {
        let rendered = self
            .interp
            .interpolate(&Value::String(text.to_string()), params, self.options.go_template)
            .map_err(|e| format!("failed to replace templated string: {e}"))?;
        match rendered {
            Value::String(s) => Ok(s),
            other => Ok(go_value_string(&other)),
        }
    }
}

#[cfg(test)]
mod tests;
