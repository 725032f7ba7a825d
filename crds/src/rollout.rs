//! The Rollout kind (`argoproj.io/v1alpha1`, short name `ro`) with its canary and blue-green strategies.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::PodTemplateSpec,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, Time},
        util::intstr::IntOrString,
    },
};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::analysis::{AnalysisRunMetadata, DryRun, MeasurementRetention};
use crate::schema::{any_value, immutable_label_selector, open_object};

/// The desired state of a Rollout: a Deployment-like workload with a progressive delivery strategy.
// Several printer columns share `type_ = "integer"`, which clippy mistakes for a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "Rollout",
    namespaced,
    shortname = "ro",
    status = "RolloutStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Rollout is a Deployment-like workload that moves to a new version step by step (canary or blue-green).",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.HPAReplicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Number of desired pods"
    ),
    printcolumn(
        name = "Current",
        type_ = "integer",
        json_path = ".status.replicas",
        description = "Total number of non-terminated pods targeted by this rollout"
    ),
    printcolumn(
        name = "Up-to-date",
        type_ = "integer",
        json_path = ".status.updatedReplicas",
        description = "Total number of non-terminated pods targeted by this rollout that have the desired template spec"
    ),
    printcolumn(
        name = "Available",
        type_ = "integer",
        json_path = ".status.availableReplicas",
        description = "Total number of available pods (ready for at least minReadySeconds) targeted by this rollout"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp",
        description = "Time since resource was created"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Number of desired pods (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Label selector for pods; must match the template's labels. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "immutable_label_selector")]
    pub selector: Option<LabelSelector>,
    /// The pod template; optional when `workloadRef` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<PodTemplateSpec>,
    /// A Deployment, ReplicaSet or PodTemplate whose pod template this Rollout uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ref: Option<ObjectRef>,
    /// Seconds a new pod must be ready without crashing to count as available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// The deployment strategy: exactly one of canary or blueGreen.
    #[serde(default)]
    pub strategy: RolloutStrategy,
    /// Number of old ReplicaSets kept for rollback (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    /// A user pause: halts scaling and service switches while true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Seconds without progress before the rollout counts as failed (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
    /// Abort the update when the progress deadline is exceeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_abort: Option<bool>,
    /// Pods created before this time are restarted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_at: Option<Time>,
    /// How many AnalysisRuns and Experiments are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisRunStrategy>,
    /// Rollbacks to a revision within this window skip the steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_window: Option<RollbackWindowSpec>,
}

/// A reference to the workload whose pod template a Rollout uses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// API version of the referent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the referent (Deployment, ReplicaSet or PodTemplate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the referent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When to scale the referenced Deployment down: never, onsuccess or progressively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<String>,
}

/// History limits of the AnalysisRuns and Experiments a Rollout creates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunStrategy {
    /// Successful runs kept (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_run_history_limit: Option<i32>,
    /// Unsuccessful runs kept (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsuccessful_run_history_limit: Option<i32>,
}

/// The window of revisions a rollback to which is fast-tracked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackWindowSpec {
    /// Number of revisions older than the stable one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisions: Option<i32>,
}

/// The deployment strategy: exactly one of its fields is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStrategy {
    /// Blue-green: a preview ReplicaSet behind a preview service, switched to active at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
    /// Canary: the new version takes a growing share of the replicas or of the traffic, step by step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
}

impl RolloutStrategy {
    /// The antiAffinity of whichever strategy is set (the canary's first).
    pub fn anti_affinity(&self) -> Option<&AntiAffinity> {
        self.canary
            .as_ref()
            .and_then(|c| c.anti_affinity.as_ref())
            .or_else(|| self.blue_green.as_ref().and_then(|b| b.anti_affinity.as_ref()))
    }
}

/// The canary strategy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStrategy {
    /// Service whose selector is switched to the canary pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_service: Option<String>,
    /// Service whose selector is switched to the stable pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_service: Option<String>,
    /// The steps of the canary, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<CanaryStep>>,
    /// How traffic is split between the stable and canary pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<RolloutTrafficRouting>,
    /// Pods that may be unavailable during the update (number or percent, default 25%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Pods that may be created above the desired count (number or percent, default 25%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    /// Background analysis, run from `startingStep` until the rollout is fully promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysisBackground>,
    /// Pod anti-affinity between the canary and the stable pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_affinity: Option<AntiAffinity>,
    /// Labels and annotations put on canary pods while they are canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_metadata: Option<PodTemplateMetadata>,
    /// Labels and annotations put on stable pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_metadata: Option<PodTemplateMetadata>,
    /// Seconds the old stable ReplicaSet is kept up after the switch (traffic routing only, default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i32>,
    /// Old ReplicaSets kept up while their scale-down delay runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_revision_limit: Option<i32>,
    /// Seconds the canary ReplicaSet is kept up after an abort (traffic routing only, default 30; 0 keeps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_scale_down_delay_seconds: Option<i32>,
    /// Scale the stable ReplicaSet down as the canary weight grows (traffic routing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_stable_scale: Option<bool>,
    /// Ping-pong services used instead of stable/canary services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_pong: Option<PingPongSpec>,
    /// Minimum pods of a non-empty stable or canary ReplicaSet (traffic routing only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_pods_per_replica_set: Option<i32>,
    /// Lets a step advance before the canary is fully available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_progress_threshold: Option<ReplicaProgressThreshold>,
}

/// One step of a canary: exactly one field is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStep {
    /// Percentage of traffic (or of replicas without a traffic router) sent to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_weight: Option<i32>,
    /// Pause for a duration, or until promoted when no duration is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<RolloutPause>,
    /// Run an Experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<RolloutExperimentStep>,
    /// Run an AnalysisRun; the step completes when it succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysis>,
    /// Scale the canary independently of its traffic weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_canary_scale: Option<SetCanaryScale>,
    /// Route requests matching headers to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_header_route: Option<SetHeaderRoute>,
    /// Mirror a share of matching requests to the canary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_mirror_route: Option<SetMirrorRoute>,
    /// A step implemented by a plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginStep>,
}

/// A pause step. Without a duration the rollout waits for a promote.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPause {
    /// An integer (seconds) or a string: `"30"` (seconds), `"30s"`, `"5m"`, `"1h"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<IntOrString>,
}

/// Scales the canary independently of its traffic weight: one of weight, replicas or matchTrafficWeight.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetCanaryScale {
    /// Canary replicas as a percentage of spec.replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Canary replicas as a count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Go back to scaling the canary with its traffic weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_traffic_weight: Option<bool>,
}

/// Routes requests whose headers match to the canary, through a managed route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetHeaderRoute {
    /// Name of the route; must be listed in trafficRouting.managedRoutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Header matches; none removes the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#match: Option<Vec<HeaderRoutingMatch>>,
}

/// One header match of a header route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderRoutingMatch {
    /// The header's name.
    pub header_name: String,
    /// The value to match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_value: Option<StringMatch>,
}

/// A string match: exactly one of exact, prefix or regex.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StringMatch {
    /// Exact value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// Prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Regular expression (RE2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// Mirrors a share of matching requests to the canary, through a managed route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetMirrorRoute {
    /// Name of the route; must be listed in trafficRouting.managedRoutes.
    pub name: String,
    /// Request matches; none removes the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#match: Option<Vec<RouteMatch>>,
    /// Percentage of matching requests mirrored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<i32>,
}

/// A request match of a mirror route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteMatch {
    /// HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// URI path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<StringMatch>,
    /// Headers by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, StringMatch>>,
}

/// A step implemented by a plugin.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginStep {
    /// Name of the plugin.
    pub name: String,
    /// The plugin's configuration, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value")]
    pub config: Option<serde_json::Value>,
}

/// An Experiment run as a canary step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutExperimentStep {
    /// The ReplicaSets of the experiment.
    pub templates: Vec<RolloutExperimentTemplate>,
    /// How long the experiment runs (a duration string such as "5m"); until analyses end when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// The analyses of the experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyses: Option<Vec<RolloutExperimentStepAnalysisTemplateRef>>,
    /// Metrics run in dry-run mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<Vec<DryRun>>,
    /// Measurements kept per metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement_retention: Option<Vec<MeasurementRetention>>,
    /// Labels and annotations of the experiment's AnalysisRuns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run_metadata: Option<AnalysisRunMetadata>,
    /// Seconds the experiment's ReplicaSets stay up after it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i32>,
}

/// A ReplicaSet of an experiment step, made from the canary or the stable template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutExperimentTemplate {
    /// Name of the template.
    pub name: String,
    /// `canary` or `stable`: which pod template to use.
    pub spec_ref: String,
    /// Number of replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Extra labels and annotations of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<PodTemplateMetadata>,
    /// Selector of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Traffic weight sent to this template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// A Service created for this template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<TemplateService>,
}

/// A Service created for an experiment template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateService {
    /// Name of the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An analysis of an experiment step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutExperimentStepAnalysisTemplateRef {
    /// Name of the analysis within the experiment.
    pub name: String,
    /// The AnalysisTemplate (or ClusterAnalysisTemplate) to run.
    pub template_name: String,
    /// Use a ClusterAnalysisTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_scope: Option<bool>,
    /// Arguments of the analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<AnalysisRunArgument>>,
    /// The experiment lasts at least until this analysis completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_for_completion: Option<bool>,
}

/// The analysis a Rollout runs: templates and the arguments given to them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysis {
    /// Templates merged into the AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<Vec<AnalysisTemplateRef>>,
    /// Arguments given to the templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<AnalysisRunArgument>>,
    /// Metrics run in dry-run mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<Vec<DryRun>>,
    /// Measurements kept per metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement_retention: Option<Vec<MeasurementRetention>>,
    /// Labels and annotations of the AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run_metadata: Option<AnalysisRunMetadata>,
}

/// Background analysis of a canary: runs from `startingStep` until the rollout is fully promoted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysisBackground {
    /// The analysis.
    #[serde(flatten)]
    pub analysis: RolloutAnalysis,
    /// Index of the step from which the analysis runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_step: Option<i32>,
}

/// A reference to an AnalysisTemplate or ClusterAnalysisTemplate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateRef {
    /// Name of the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_name: Option<String>,
    /// The template is a ClusterAnalysisTemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_scope: Option<bool>,
}

/// An argument given to an AnalysisRun by a Rollout or Experiment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunArgument {
    /// Name of the argument.
    pub name: String,
    /// A literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// A value taken from the Rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ArgumentValueFrom>,
}

/// Where an argument's value comes from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArgumentValueFrom {
    /// `Stable` or `Latest`: the pod-template hash of that ReplicaSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template_hash_value: Option<String>,
    /// A field of the Rollout, e.g. `metadata.labels['app']`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldRef>,
}

/// A path to a field of an object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    /// The path, e.g. `metadata.name` or `metadata.labels['app']`.
    pub field_path: String,
}

/// Pod anti-affinity between canary and stable pods: one of its fields is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AntiAffinity {
    /// A preferred anti-affinity with a weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_during_scheduling_ignored_during_execution:
        Option<PreferredDuringSchedulingIgnoredDuringExecution>,
    /// A required anti-affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_during_scheduling_ignored_during_execution:
        Option<RequiredDuringSchedulingIgnoredDuringExecution>,
}

/// Preferred anti-affinity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreferredDuringSchedulingIgnoredDuringExecution {
    /// Weight from 1 to 100.
    pub weight: i32,
}

/// Required anti-affinity (no fields).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequiredDuringSchedulingIgnoredDuringExecution {}

/// Labels and annotations injected into pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateMetadata {
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Ping-pong services.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PingPongSpec {
    /// The ping service.
    pub ping_service: String,
    /// The pong service.
    pub pong_service: String,
}

/// Lets a step advance before the canary is fully available.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaProgressThreshold {
    /// `Percent` or `Pods`.
    pub r#type: String,
    /// The threshold.
    pub value: i32,
}

/// How traffic is split between the stable and canary pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutTrafficRouting {
    /// Istio VirtualService / DestinationRule routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio: Option<IstioTrafficRouting>,
    /// NGINX Ingress routing: a canary Ingress made from the stable one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx: Option<NginxTrafficRouting>,
    /// AWS ALB routing (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub alb: Option<serde_json::Value>,
    /// SMI TrafficSplit routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smi: Option<SmiTrafficRouting>,
    /// Ambassador routing (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub ambassador: Option<serde_json::Value>,
    /// AWS App Mesh routing (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub app_mesh: Option<serde_json::Value>,
    /// Traefik routing (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub traefik: Option<serde_json::Value>,
    /// Apache APISIX routing (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub apisix: Option<serde_json::Value>,
    /// Traffic router plugins by name (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub plugins: Option<serde_json::Value>,
    /// Routes the rollout manages (header and mirror routes), in order of precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_routes: Option<Vec<MangedRoutes>>,
    /// The weight that means all traffic (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_traffic_weight: Option<i32>,
}

/// SMI traffic routing: a TrafficSplit (`split.smi-spec.io`) the rollout creates and whose backend weights it sets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmiTrafficRouting {
    /// The Service clients address (the TrafficSplit's `spec.service`); the stable Service when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_service: Option<String>,
    /// Name of the TrafficSplit; the Rollout's name when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_split_name: Option<String>,
}

/// NGINX Ingress routing: the rollout keeps a canary Ingress beside each stable Ingress, with the canary
/// annotations of the NGINX Ingress controller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NginxTrafficRouting {
    /// The prefix the NGINX Ingress controller reads annotations under (default `nginx.ingress.kubernetes.io`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_prefix: Option<String>,
    /// The stable Ingress, in the Rollout's namespace (this or stableIngresses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_ingress: Option<String>,
    /// More annotations for the canary Ingress, each put under the annotation prefix (e.g. `canary-by-header`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_ingress_annotations: Option<BTreeMap<String, String>>,
    /// Annotations for the canary Ingress, with their keys as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_ingress_annotations: Option<BTreeMap<String, String>>,
    /// Several stable Ingresses, each with a canary Ingress of its own (this or stableIngress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_ingresses: Option<Vec<String>>,
}

/// A route managed by the rollout (upstream spells the type `MangedRoutes`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MangedRoutes {
    /// Name of the route.
    pub name: String,
}

/// Istio traffic routing: host-level split through VirtualServices, or subset-level through a DestinationRule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioTrafficRouting {
    /// One VirtualService.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_service: Option<IstioVirtualService>,
    /// Several VirtualServices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_services: Option<Vec<IstioVirtualService>>,
    /// The DestinationRule whose subsets follow the stable and canary hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_rule: Option<IstioDestinationRule>,
}

/// A VirtualService and the routes in it whose weights the rollout sets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioVirtualService {
    /// Name of the VirtualService, `name` or `name.namespace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Names of the HTTP routes; the only HTTP route when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Vec<String>>,
    /// TLS routes, selected by port and SNI hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_routes: Option<Vec<TlsRoute>>,
    /// TCP routes, selected by port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_routes: Option<Vec<TcpRoute>>,
}

/// A TLS route of a VirtualService.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsRoute {
    /// Port of the route's match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    /// SNI hosts of the route's match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni_hosts: Option<Vec<String>>,
}

/// A TCP route of a VirtualService.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TcpRoute {
    /// Port of the route's match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

/// A DestinationRule whose stable and canary subsets the rollout points at its ReplicaSets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioDestinationRule {
    /// Name of the DestinationRule.
    pub name: String,
    /// The subset that selects the canary pods.
    pub canary_subset_name: String,
    /// The subset that selects the stable pods.
    pub stable_subset_name: String,
    /// Other subsets the rollout leaves alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_subset_names: Option<Vec<String>>,
}

/// The blue-green strategy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStrategy {
    /// Service that serves production traffic; switched to the new pods at promotion.
    pub active_service: String,
    /// Service that points at the new pods before promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_service: Option<String>,
    /// Size of the preview ReplicaSet before promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_replica_count: Option<i32>,
    /// Promote as soon as the preview is available (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_enabled: Option<bool>,
    /// Seconds to wait before promoting automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_seconds: Option<i32>,
    /// Pods that may be unavailable during a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Seconds the old active ReplicaSet is kept up after the switch (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i32>,
    /// Old ReplicaSets kept up while their scale-down delay runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_revision_limit: Option<i32>,
    /// Analysis run before the active service is switched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<RolloutAnalysis>,
    /// Analysis run after the active service is switched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<RolloutAnalysis>,
    /// Pod anti-affinity between preview and active pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_affinity: Option<AntiAffinity>,
    /// Labels and annotations put on preview pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_metadata: Option<PodTemplateMetadata>,
    /// Labels and annotations put on active pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_metadata: Option<PodTemplateMetadata>,
    /// Seconds the preview ReplicaSet is kept up after an abort (default 30; 0 keeps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_scale_down_delay_seconds: Option<i32>,
}

/// The observed state of a Rollout, as Argo Rollouts writes it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// The update is aborted (set by a user or by a failed analysis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<bool>,
    /// Why the controller paused the rollout; a user clears them to resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_conditions: Option<Vec<PauseCondition>>,
    /// The controller paused the rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_pause: Option<bool>,
    /// When the update was aborted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted_at: Option<Time>,
    /// Hash of the desired ("new") ReplicaSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_pod_hash: Option<String>,
    /// Hash of the canary steps; a change restarts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_hash: Option<String>,
    /// Pods targeted by the rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Pods with the desired template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    /// Ready pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Available pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    /// Index of the current canary step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,
    /// Count of hash collisions of the pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
    /// The generation last acted upon, as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<String>,
    /// The rollout's conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<RolloutCondition>>,
    /// Canary state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,
    /// Blue-green state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStatus>,
    /// Pods counted by the scale subresource.
    #[serde(default, rename = "HPAReplicas", skip_serializing_if = "Option::is_none")]
    pub hpa_replicas: Option<i32>,
    /// Label selector of the scale subresource, as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Hash of the stable ReplicaSet.
    #[serde(default, rename = "stableRS", skip_serializing_if = "Option::is_none")]
    pub stable_rs: Option<String>,
    /// When the last restart completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<Time>,
    /// A user asked for a full promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote_full: Option<bool>,
    /// Healthy, Progressing, Paused or Degraded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why the rollout is in its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The workloadRef generation last observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_observed_generation: Option<String>,
    /// AWS ALB state (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub alb: Option<serde_json::Value>,
    /// AWS ALB states (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value")]
    pub albs: Option<serde_json::Value>,
    /// Timing of the update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<RolloutDuration>,
}

/// Why and since when the controller paused the rollout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseCondition {
    /// `CanaryPauseStep`, `BlueGreenPause`, `InconclusiveAnalysisRun` or `InconclusiveExperiment`.
    pub reason: String,
    /// When the pause started.
    pub start_time: Time,
}

/// A condition of a Rollout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutCondition {
    /// Progressing, Available, Paused, Healthy, Completed, InvalidSpec or ReplicaFailure.
    pub r#type: String,
    /// True, False or Unknown.
    pub status: String,
    /// When the condition was last updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// One-word reason.
    #[serde(default)]
    pub reason: String,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
}

/// Canary state of a Rollout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The AnalysisRun of the current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_analysis_run_status: Option<RolloutAnalysisRunStatus>,
    /// The background AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_background_analysis_run_status: Option<RolloutAnalysisRunStatus>,
    /// The Experiment of the current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_experiment: Option<String>,
    /// The weights last set on the traffic router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<TrafficWeights>,
    /// `ping` or `pong`: which service is stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_ping_pong: Option<String>,
    /// State of plugin steps (kept as written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value")]
    pub step_plugin_statuses: Option<serde_json::Value>,
}

/// Name, phase and message of an AnalysisRun, mirrored on the Rollout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysisRunStatus {
    /// Name of the AnalysisRun.
    pub name: String,
    /// Its phase.
    pub status: String,
    /// Its message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The weights of the canary, the stable and any additional destinations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficWeights {
    /// The canary destination.
    pub canary: WeightDestination,
    /// The stable destination.
    pub stable: WeightDestination,
    /// Experiment destinations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional: Option<Vec<WeightDestination>>,
    /// The weights were read back from the router and match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
}

/// One destination's weight.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeightDestination {
    /// Percentage of traffic.
    pub weight: i32,
    /// Service of the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Pod-template hash of the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template_hash: Option<String>,
}

/// Blue-green state of a Rollout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStatus {
    /// Hash in the preview Service's selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_selector: Option<String>,
    /// Hash in the active Service's selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_selector: Option<String>,
    /// The preview was scaled to full size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up_preview_check_point: Option<bool>,
    /// The pre-promotion AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis_run_status: Option<RolloutAnalysisRunStatus>,
    /// The post-promotion AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis_run_status: Option<RolloutAnalysisRunStatus>,
}

/// Timing of an update.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutDuration {
    /// When the update started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_started_at: Option<Time>,
    /// When the current manual pause started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_pause_started_at: Option<Time>,
    /// Seconds spent in manual pauses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_manual_pause_duration_seconds: Option<i64>,
    /// When the update finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// How it finished: Promoted, FastPromoted, Aborted, Superseded, RolledBack or FastRolledBack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_status: Option<String>,
}

/// The CRDs of this module with their file names.
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    use kube::CustomResourceExt;
    vec![("rollouts.yaml", Rollout::crd())]
}
