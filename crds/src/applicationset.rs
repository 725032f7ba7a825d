//! The Argo CD ApplicationSet kind (`argoproj.io/v1alpha1`, short names `appset`, `appsets`, with a status
//! subresource), as upstream's `applicationset_types.go` defines it: generators produce parameter sets, and
//! each set renders the template into one Application.
//!
//! CRD schemas cannot be recursive, so a `matrix` or `merge` nested inside another combination generator is kept
//! as an open object, as upstream does (`apiextensionsv1.JSON`), and is read on use as a
//! [`NestedMatrixGenerator`] or [`NestedMergeGenerator`] whose children are [`ApplicationSetTerminalGenerator`]s.
//! Generators Sluice does not implement (scmProvider, pullRequest, clusterDecisionResource, plugin), per-generator
//! template overrides, the rollout strategy and `ignoreApplicationDifferences` are kept as written.

use std::collections::BTreeMap;

use k8s_openapi::{
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::{LabelSelector, Time},
};
use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use crate::application::{ApplicationSpec, ResourceStatus};
use crate::schema::{open_object, string_map};

/// Condition type: the last reconcile failed.
pub const CONDITION_ERROR_OCCURRED: &str = "ErrorOccurred";
/// Condition type: the generators produced their parameters.
pub const CONDITION_PARAMETERS_GENERATED: &str = "ParametersGenerated";
/// Condition type: the generated Applications match the template.
pub const CONDITION_RESOURCES_UP_TO_DATE: &str = "ResourcesUpToDate";
/// Condition type: a progressive (RollingSync) rollout is under way.
pub const CONDITION_ROLLOUT_PROGRESSING: &str = "RolloutProgressing";

/// Condition reason: an error occurred.
pub const REASON_ERROR_OCCURRED: &str = "ErrorOccurred";
/// Condition reason: every Application is up to date.
pub const REASON_APPLICATION_SET_UP_TO_DATE: &str = "ApplicationSetUpToDate";
/// Condition reason: parameters were generated.
pub const REASON_PARAMETERS_GENERATED: &str = "ParametersGenerated";
/// Condition reason: generating Applications from the parameters failed.
pub const REASON_APPLICATION_PARAMS_GENERATION_ERROR: &str = "ApplicationGenerationFromParamsError";
/// Condition reason: rendering the template with the parameters failed.
pub const REASON_RENDER_TEMPLATE_PARAMS_ERROR: &str = "RenderTemplateParamsError";
/// Condition reason: creating an Application failed.
pub const REASON_CREATE_APPLICATION_ERROR: &str = "CreateApplicationError";
/// Condition reason: updating an Application failed.
pub const REASON_UPDATE_APPLICATION_ERROR: &str = "UpdateApplicationError";
/// Condition reason: deleting an Application failed.
pub const REASON_DELETE_APPLICATION_ERROR: &str = "DeleteApplicationError";
/// Condition reason: a generated Application is not valid.
pub const REASON_APPLICATION_VALIDATION_ERROR: &str = "ApplicationValidationError";

/// The desired state of an ApplicationSet: the generators and the Application template they fill in.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "ApplicationSet",
    namespaced,
    shortname = "appset",
    shortname = "appsets",
    status = "ApplicationSetStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "ApplicationSet generates Argo CD Applications from a template and the parameter sets of its generators."
)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetSpec {
    /// Render the template with Go `text/template` (`{{.path.basename}}`) instead of fasttemplate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_template: Option<bool>,
    /// The generators; each parameter set of each generator becomes one Application.
    pub generators: Vec<ApplicationSetGenerator>,
    /// The Application every parameter set is rendered into.
    pub template: ApplicationSetTemplate,
    /// How generated Applications are created, updated and deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<ApplicationSetSyncPolicy>,
    /// How changes roll out over the generated Applications (AllAtOnce or RollingSync), kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub strategy: Option<serde_json::Value>,
    /// Annotations and labels of generated Applications that the controller leaves as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserved_fields: Option<ApplicationPreservedFields>,
    /// Options of the Go template engine, e.g. `missingkey=error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go_template_options: Option<Vec<String>>,
    /// Apply the selectors of generators nested two levels deep in matrix or merge generators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_nested_selectors: Option<bool>,
    /// Fields of generated Applications whose live differences are kept (name, jsonPointers,
    /// jqPathExpressions), kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object_list")]
    pub ignore_application_differences: Option<Vec<serde_json::Value>>,
    /// A templated YAML or JSON patch applied to each rendered Application, for structured fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_patch: Option<String>,
}

/// The Application a parameter set is rendered into.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetTemplate {
    /// Name, namespace, labels, annotations and finalizers of the Application.
    pub metadata: ApplicationSetTemplateMeta,
    /// The Application's spec.
    pub spec: ApplicationSpec,
}

/// The metadata fields a generated Application takes from the template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetTemplateMeta {
    /// Name of the Application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace of the Application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels of the Application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "string_map")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations of the Application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "string_map")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Finalizers of the Application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizers: Option<Vec<String>>,
}

/// What the controller may do to the Applications it generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ApplicationsSyncPolicy {
    /// Create Applications; never update or delete them.
    #[serde(rename = "create-only")]
    CreateOnly,
    /// Create and update Applications; never delete them.
    #[serde(rename = "create-update")]
    CreateUpdate,
    /// Create and delete Applications; never update them.
    #[serde(rename = "create-delete")]
    CreateDelete,
    /// Create, update and delete Applications (the default).
    #[serde(rename = "sync")]
    Sync,
}

impl ApplicationsSyncPolicy {
    /// Whether generated Applications are updated when the template or parameters change.
    pub fn allow_update(self) -> bool {
        matches!(self, Self::CreateUpdate | Self::Sync)
    }

    /// Whether generated Applications are deleted when no parameter set produces them any more.
    pub fn allow_delete(self) -> bool {
        matches!(self, Self::CreateDelete | Self::Sync)
    }
}

/// How generated Applications relate to their ApplicationSet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetSyncPolicy {
    /// Keep the Applications' resources when the ApplicationSet is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserve_resources_on_deletion: Option<bool>,
    /// Which changes to generated Applications the controller makes; `sync` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applications_sync: Option<ApplicationsSyncPolicy>,
}

/// Annotation and label keys of generated Applications that the controller does not overwrite.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationPreservedFields {
    /// Annotation keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Vec<String>>,
    /// Label keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
}

/// A generator at the top level of an ApplicationSet: exactly one kind is set, plus an optional selector.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetGenerator {
    /// A fixed list of parameter sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListGenerator>,
    /// One parameter set per cluster Argo CD knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<ClusterGenerator>,
    /// Parameter sets from the directories or files of a Git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitGenerator>,
    /// Repositories of an SCM provider, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub scm_provider: Option<serde_json::Value>,
    /// Clusters from a duck-typed resource, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub cluster_decision_resource: Option<serde_json::Value>,
    /// Open pull requests, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub pull_request: Option<serde_json::Value>,
    /// The cartesian product of two child generators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<MatrixGenerator>,
    /// The parameter sets of a base generator overridden by later ones on matching keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<MergeGenerator>,
    /// Keeps only the parameter sets whose (flattened) parameters match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Parameter sets from a plugin service, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub plugin: Option<serde_json::Value>,
}

/// A generator inside a matrix or merge generator; a matrix or merge here is an open object read on use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetNestedGenerator {
    /// A fixed list of parameter sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListGenerator>,
    /// One parameter set per cluster Argo CD knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<ClusterGenerator>,
    /// Parameter sets from the directories or files of a Git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitGenerator>,
    /// Repositories of an SCM provider, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub scm_provider: Option<serde_json::Value>,
    /// Clusters from a duck-typed resource, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub cluster_decision_resource: Option<serde_json::Value>,
    /// Open pull requests, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub pull_request: Option<serde_json::Value>,
    /// A nested matrix generator ([`NestedMatrixGenerator`]), kept as an open object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub matrix: Option<serde_json::Value>,
    /// A nested merge generator ([`NestedMergeGenerator`]), kept as an open object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub merge: Option<serde_json::Value>,
    /// Keeps only the parameter sets whose (flattened) parameters match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Parameter sets from a plugin service, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub plugin: Option<serde_json::Value>,
}

/// A generator two levels deep (inside a nested matrix or merge): it cannot combine generators itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetTerminalGenerator {
    /// A fixed list of parameter sets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListGenerator>,
    /// One parameter set per cluster Argo CD knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<ClusterGenerator>,
    /// Parameter sets from the directories or files of a Git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitGenerator>,
    /// Repositories of an SCM provider, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scm_provider: Option<serde_json::Value>,
    /// Clusters from a duck-typed resource, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_decision_resource: Option<serde_json::Value>,
    /// Open pull requests, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<serde_json::Value>,
    /// Parameter sets from a plugin service, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<serde_json::Value>,
    /// Keeps only the parameter sets whose (flattened) parameters match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

impl From<ApplicationSetTerminalGenerator> for ApplicationSetNestedGenerator {
    fn from(g: ApplicationSetTerminalGenerator) -> Self {
        Self {
            list: g.list,
            clusters: g.clusters,
            git: g.git,
            scm_provider: g.scm_provider,
            cluster_decision_resource: g.cluster_decision_resource,
            pull_request: g.pull_request,
            matrix: None,
            merge: None,
            selector: g.selector,
            plugin: g.plugin,
        }
    }
}

/// A fixed list of parameter sets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListGenerator {
    /// The parameter sets, as JSON objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_value_list")]
    pub elements: Option<Vec<serde_json::Value>>,
    /// More parameter sets, as a YAML list of objects (usually templated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elements_yaml: Option<String>,
    /// A template override merged over the ApplicationSet's template, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub template: Option<serde_json::Value>,
}

/// One parameter set per cluster Argo CD knows, selected by the labels of the cluster Secrets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterGenerator {
    /// Selects cluster Secrets by their labels; the implicit in-cluster matches only an empty selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// A template override merged over the ApplicationSet's template, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub template: Option<serde_json::Value>,
    /// Extra parameters `values.<key>`, templated with the cluster's parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "string_map")]
    pub values: Option<BTreeMap<String, String>>,
    /// Produce one parameter set `{clusters: [...]}` holding every cluster's parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flat_list: Option<bool>,
}

/// Parameter sets from the directories or files of a Git repository at a revision.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitGenerator {
    /// URL of the repository.
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// Directory globs (`path.Match`); each matching directory is one parameter set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directories: Option<Vec<GitDirectoryGeneratorItem>>,
    /// File globs; each object in each matching JSON or YAML file is one parameter set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<GitFileGeneratorItem>>,
    /// Branch, tag or commit; `HEAD` or empty for the default branch.
    pub revision: String,
    /// Seconds between polls of the repository (default 180).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requeue_after_seconds: Option<i64>,
    /// A template override merged over the ApplicationSet's template, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub template: Option<serde_json::Value>,
    /// Prefix of the `path` parameters (`<prefix>.path...`), to tell two git generators apart in a matrix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_param_prefix: Option<String>,
    /// Extra parameters `values.<key>`, templated with the generated parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "string_map")]
    pub values: Option<BTreeMap<String, String>>,
}

/// A directory glob of a git generator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitDirectoryGeneratorItem {
    /// The glob, relative to the repository root.
    pub path: String,
    /// Directories matching this glob are left out, whatever else matches them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<bool>,
}

/// A file glob of a git generator.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitFileGeneratorItem {
    /// The glob, relative to the repository root.
    pub path: String,
    /// Files matching this glob are left out, whatever else matches them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<bool>,
}

/// The cartesian product of the parameter sets of exactly two child generators.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatrixGenerator {
    /// The two child generators; the second may use the first's parameters.
    pub generators: Vec<ApplicationSetNestedGenerator>,
    /// A template override merged over the ApplicationSet's template, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub template: Option<serde_json::Value>,
}

/// The parameter sets of the first child generator, each overridden by the later children's sets that have
/// the same values for every merge key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MergeGenerator {
    /// The child generators; the first is the base.
    pub generators: Vec<ApplicationSetNestedGenerator>,
    /// The parameters whose values identify a parameter set.
    pub merge_keys: Vec<String>,
    /// A template override merged over the ApplicationSet's template, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub template: Option<serde_json::Value>,
}

/// A matrix generator inside another matrix or merge generator (read from its open object).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NestedMatrixGenerator {
    /// The two child generators.
    #[serde(default)]
    pub generators: Vec<ApplicationSetTerminalGenerator>,
}

/// A merge generator inside another matrix or merge generator (read from its open object).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NestedMergeGenerator {
    /// The child generators; the first is the base.
    #[serde(default)]
    pub generators: Vec<ApplicationSetTerminalGenerator>,
    /// The parameters whose values identify a parameter set.
    #[serde(default)]
    pub merge_keys: Vec<String>,
}

impl NestedMatrixGenerator {
    /// Reads the open object of a nested `matrix`.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, String> {
        serde_json::from_value(value.clone()).map_err(|e| format!("invalid nested matrix generator: {e}"))
    }

    /// The equivalent matrix generator (without a template override).
    pub fn into_matrix(self) -> MatrixGenerator {
        MatrixGenerator {
            generators: self.generators.into_iter().map(Into::into).collect(),
            template: None,
        }
    }
}

impl NestedMergeGenerator {
    /// Reads the open object of a nested `merge`.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, String> {
        serde_json::from_value(value.clone()).map_err(|e| format!("invalid nested merge generator: {e}"))
    }

    /// The equivalent merge generator (without a template override).
    pub fn into_merge(self) -> MergeGenerator {
        MergeGenerator {
            generators: self.generators.into_iter().map(Into::into).collect(),
            merge_keys: self.merge_keys,
            template: None,
        }
    }
}

/// The observed state of an ApplicationSet, written by the controller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetStatus {
    /// Errors, warnings and progress of the last reconcile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<ApplicationSetCondition>>,
    /// Per-Application progress of a RollingSync (application, status, step, message, targetRevisions),
    /// kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object_list")]
    pub application_status: Option<Vec<serde_json::Value>>,
    /// The Applications this ApplicationSet manages, with their sync and health status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<ResourceStatus>>,
}

/// A condition of an ApplicationSet (usually an error or a warning).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetCondition {
    /// ErrorOccurred, ParametersGenerated, ResourcesUpToDate or RolloutProgressing.
    #[serde(rename = "type")]
    pub type_: String,
    /// Human-readable detail.
    #[serde(default)]
    pub message: String,
    /// When the condition last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// True, False or Unknown.
    #[serde(default)]
    pub status: String,
    /// One CamelCase word, e.g. ErrorOccurred.
    #[serde(default)]
    pub reason: String,
}

/// A list of objects whose fields the API server keeps as written.
fn open_object_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
    })
}

/// A list of JSON values kept as written (list elements may be of any shape).
fn any_value_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "x-kubernetes-preserve-unknown-fields": true }
    })
}

/// The CRDs of this module with their file names.
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    use kube::CustomResourceExt;
    vec![("applicationsets.yaml", ApplicationSet::crd())]
}
