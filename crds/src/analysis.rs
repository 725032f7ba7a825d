//! AnalysisTemplate, ClusterAnalysisTemplate and AnalysisRun (`argoproj.io/v1alpha1`).

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A metric excluded from the run's phase: its failures are reported but never fail the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    /// Name of the metric, or `*` for every metric.
    pub metric_name: String,
}

/// How many measurements of a metric an AnalysisRun keeps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementRetention {
    /// Name of the metric, or `*` for every metric.
    pub metric_name: String,
    /// Number of measurements to keep.
    pub limit: i32,
}

/// Labels and annotations put on the AnalysisRuns a Rollout or Experiment creates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunMetadata {
    /// Labels added to the AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations added to the AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The CRDs of this module with their file names.
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    Vec::new()
}
