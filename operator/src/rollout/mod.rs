//! The Rollout controller: observe → plan (pure, in `plan`) → execute → status.

pub mod analysis;
mod bluegreen;
pub mod build;
mod canary;
pub mod controller;
mod drift;
pub mod ephemeral;
pub mod experiment;
mod experiments;
pub mod hash;
mod lifecycle;
mod pacing;
pub mod plan;
pub mod plan_bench;
mod progress;
pub mod replicas;
mod routing;
mod runs;
pub mod status;
mod user;
pub use routing::RouterConfig;
pub use sluice_crds::validate;

/// Label (and selector key) naming the pod template a pod or ReplicaSet belongs to.
pub const HASH_LABEL: &str = "rollouts-pod-template-hash";
/// Revision annotation on the Rollout and its ReplicaSets.
pub const REVISION_ANNOTATION: &str = "rollout.argoproj.io/revision";
/// spec.replicas of the Rollout when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "rollout.argoproj.io/desired-replicas";
/// When a ReplicaSet kept up after losing its role is scaled down (RFC 3339, UTC).
pub const SCALE_DOWN_DEADLINE_ANNOTATION: &str = "scale-down-deadline";
/// Annotation naming the Rollout that manages a Service or DestinationRule.
pub const MANAGED_BY_ANNOTATION: &str = "argo-rollouts.argoproj.io/managed-by-rollouts";
