//! What the plugin shows of a Rollout: a pure view model built from the Rollout and the objects it owns
//! (ReplicaSets, pods, AnalysisRuns, Experiments, Jobs), the way upstream's `info` package builds it. The tree
//! and list renderers and the dashboard all read this model; none of them reads the raw objects.

use serde::Serialize;

pub mod build;

/// The objects a Rollout's view is built from, as read from the cluster (or from fixture files in tests).
#[derive(Debug, Clone, Default)]
pub struct Owned {
    /// ReplicaSets of the namespace (those not owned by the Rollout are ignored).
    pub replica_sets: Vec<k8s_openapi::api::apps::v1::ReplicaSet>,
    /// Pods of the namespace (those not owned by one of the Rollout's ReplicaSets are ignored).
    pub pods: Vec<k8s_openapi::api::core::v1::Pod>,
    /// AnalysisRuns of the namespace.
    pub analysis_runs: Vec<sluice_crds::analysis::AnalysisRun>,
    /// Experiments of the namespace.
    pub experiments: Vec<sluice_crds::experiment::Experiment>,
    /// Jobs of the namespace (job metrics of AnalysisRuns).
    pub jobs: Vec<k8s_openapi::api::batch::v1::Job>,
}

/// A status icon of upstream's plugin, with the colour it is drawn in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Icon {
    /// ✔ (green)
    Ok,
    /// ◌ (orange)
    Progressing,
    /// ॥ (grey)
    Paused,
    /// ✖ (red)
    Bad,
    /// ◷ (orange)
    Waiting,
    /// ⚠ (red)
    Warning,
    /// • (grey)
    Neutral,
    /// ? (grey)
    Unknown,
    /// A blank: upstream's icon for a word it does not know (an Evicted pod, a run with no phase yet).
    Blank,
}

impl Icon {
    /// The glyph upstream prints.
    pub fn glyph(self) -> &'static str {
        match self {
            Icon::Ok => "✔",
            Icon::Progressing => "◌",
            Icon::Paused => "॥",
            Icon::Bad => "✖",
            Icon::Waiting => "◷",
            Icon::Warning => "⚠",
            Icon::Neutral => "•",
            Icon::Unknown => "?",
            Icon::Blank => " ",
        }
    }
}

/// One Rollout, ready to draw.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutInfo {
    /// metadata.name
    pub name: String,
    /// metadata.namespace
    pub namespace: String,
    /// Upstream's phase word: Healthy, Progressing, Paused, Degraded, Error (and its icon).
    pub status: String,
    /// Icon of the status.
    pub icon: Icon,
    /// status.message (shown as "Message:" when not empty).
    pub message: String,
    /// "Canary" or "BlueGreen".
    pub strategy: String,
    /// "i/n" for a canary with steps, else empty.
    pub step: String,
    /// The canary weight set by the current step ("-" for blue-green), as upstream prints it.
    pub set_weight: String,
    /// The weight actually served to the canary ("-" for blue-green).
    pub actual_weight: String,
    /// Images of every revision with their tags (stable, canary, active, preview).
    pub images: Vec<ImageInfo>,
    /// spec.replicas (desired).
    pub desired: i32,
    /// status.replicas (current).
    pub current: i32,
    /// status.updatedReplicas.
    pub updated: i32,
    /// status.readyReplicas.
    pub ready: i32,
    /// status.availableReplicas.
    pub available: i32,
    /// creationTimestamp (for ages).
    pub created: Option<jiff::Timestamp>,
    /// The revisions, newest first.
    pub revisions: Vec<RevisionInfo>,
}

/// An image and the tags of the ReplicaSets that run it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageInfo {
    /// The image reference.
    pub image: String,
    /// "stable", "canary", "active", "preview" (in that order, only those that apply).
    pub tags: Vec<String>,
}

/// One `# revision:N` of the tree: the ReplicaSets, AnalysisRuns and Experiments of that revision.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionInfo {
    /// The revision number (rollout.argoproj.io/revision).
    pub revision: i64,
    /// ReplicaSets of this revision.
    pub replica_sets: Vec<ReplicaSetInfo>,
    /// Experiments of this revision.
    pub experiments: Vec<ExperimentInfo>,
    /// AnalysisRuns of this revision.
    pub analysis_runs: Vec<AnalysisRunInfo>,
}

/// One ReplicaSet (`⧉`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetInfo {
    /// metadata.name
    pub name: String,
    /// Healthy, Progressing, ScaledDown, Degraded (upstream's words).
    pub status: String,
    /// Icon of the status.
    pub icon: Icon,
    /// The revision number.
    pub revision: i64,
    /// "stable", "canary", "active", "preview", "delay:30s", "ping"/"pong" (in upstream's order).
    pub info: Vec<String>,
    /// Images of its template.
    pub images: Vec<String>,
    /// status.replicas / spec.replicas / available, for the dashboard.
    pub replicas: i32,
    /// status.availableReplicas.
    pub available: i32,
    /// creationTimestamp.
    pub created: Option<jiff::Timestamp>,
    /// Its pods.
    pub pods: Vec<PodInfo>,
}

/// One pod (`□`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodInfo {
    /// metadata.name
    pub name: String,
    /// kubectl's STATUS word (Running, Pending, ContainerCreating, Terminating, Error, ...).
    pub status: String,
    /// Icon of the status.
    pub icon: Icon,
    /// "ready:1/1" and ",restarts:N" when N > 0.
    pub info: String,
    /// creationTimestamp.
    pub created: Option<jiff::Timestamp>,
}

/// One AnalysisRun (`α`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunInfo {
    /// metadata.name
    pub name: String,
    /// status.phase (Pending, Running, Successful, Failed, Error, Inconclusive).
    pub status: String,
    /// Icon of the phase.
    pub icon: Icon,
    /// The revision number.
    pub revision: i64,
    /// Measurements that succeeded, failed, were inconclusive, errored.
    pub successful: i32,
    /// Failed measurements.
    pub failed: i32,
    /// Inconclusive measurements.
    pub inconclusive: i32,
    /// Errored measurements.
    pub error: i32,
    /// "✔ 2,✖ 1" as upstream prints it (empty when all counts are zero).
    pub info: String,
    /// status.message.
    pub message: String,
    /// Per metric: name, phase and the last measured value, for the dashboard.
    pub metrics: Vec<MetricInfo>,
    /// Jobs of job metrics (`⊞`).
    pub jobs: Vec<JobInfo>,
    /// creationTimestamp.
    pub created: Option<jiff::Timestamp>,
}

/// A metric of an AnalysisRun, for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricInfo {
    /// The metric's name.
    pub name: String,
    /// Its phase.
    pub phase: String,
    /// The last measurement's value (empty when none).
    pub last_value: String,
    /// successCondition of the metric.
    pub success_condition: String,
}

/// A Job of a job metric (`⊞`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    /// metadata.name
    pub name: String,
    /// Successful, Failed, Running, Pending.
    pub status: String,
    /// Icon of the status.
    pub icon: Icon,
    /// creationTimestamp.
    pub created: Option<jiff::Timestamp>,
}

/// One Experiment (`Σ`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentInfo {
    /// metadata.name
    pub name: String,
    /// status.phase.
    pub status: String,
    /// Icon of the phase.
    pub icon: Icon,
    /// The revision number.
    pub revision: i64,
    /// status.message.
    pub message: String,
    /// ReplicaSets of its templates.
    pub replica_sets: Vec<ReplicaSetInfo>,
    /// Its AnalysisRuns.
    pub analysis_runs: Vec<AnalysisRunInfo>,
    /// creationTimestamp.
    pub created: Option<jiff::Timestamp>,
}
