//! The Experiment controller: observe → plan (pure, in `plan`) → execute → status. An Experiment runs one
//! ReplicaSet per template (and a Service when asked) for a while, with AnalysisRuns over them, and ends
//! Successful, Failed, Error or Inconclusive as upstream computes it.

pub mod build;
pub mod controller;
pub mod plan;
#[cfg(test)]
mod plan_tests;

/// Annotation on an experiment's ReplicaSets and Services naming the Experiment.
pub const EXPERIMENT_NAME_ANNOTATION: &str = "experiment.argoproj.io/name";
/// Annotation on an experiment's ReplicaSets and Services naming the template.
pub const TEMPLATE_NAME_ANNOTATION: &str = "experiment.argoproj.io/template-name";
/// Seconds a template may take to become available unless the spec says otherwise.
pub const DEFAULT_PROGRESS_DEADLINE_SECONDS: i32 = 600;
/// Seconds the ReplicaSets stay up after the experiment ends unless the spec says otherwise.
pub const DEFAULT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;
