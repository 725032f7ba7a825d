//! The Argo Rollouts and Argo CD API (`argoproj.io/v1alpha1`) as Rust types, and the CRDs generated from them.
//!
//! Group, versions, kinds, short names, field names and JSON casing follow upstream exactly, so that manifests
//! written for Argo Rollouts and Argo CD apply unchanged. Every field is typed; provider blocks Sluice does not
//! implement are kept as open objects so that nothing a user writes is lost.

pub mod analysis;
pub mod application;
pub mod applicationset;
pub mod duration;
pub mod experiment;
pub mod rollout;
pub mod schema;
pub mod validate;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

/// The API group of every kind in this crate.
pub const GROUP: &str = "argoproj.io";
/// The API version of every kind in this crate.
pub const VERSION: &str = "v1alpha1";

/// Every CRD Sluice installs, each with the file name it has under `crds/yaml/`.
pub fn all() -> Vec<(&'static str, CustomResourceDefinition)> {
    let mut crds = Vec::new();
    crds.extend(rollout::crds());
    crds.extend(analysis::crds());
    crds.extend(experiment::crds());
    crds.extend(application::crds());
    crds.extend(applicationset::crds());
    crds
}

/// One CRD as YAML, the way it is committed under `crds/yaml/`.
pub fn to_yaml(crd: &CustomResourceDefinition) -> String {
    // serde_yaml cannot fail on a value that serde_json already accepts; the fallback keeps this total.
    let value = serde_json::to_value(crd).unwrap_or_default();
    serde_yaml::to_string(&value).unwrap_or_default()
}

/// All CRDs as one multi-document YAML stream (what `sluice crd` prints).
pub fn all_yaml() -> String {
    all()
        .iter()
        .map(|(_, crd)| to_yaml(crd))
        .collect::<Vec<_>>()
        .join("---\n")
}
