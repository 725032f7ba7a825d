//! The Argo CD kinds (`argoproj.io/v1alpha1`): Application (short names `app`, `apps`) and AppProject
//! (short names `appproj`, `appprojs`).
//!
//! Both root types are written by hand instead of by `#[derive(CustomResource)]`: an Application carries a
//! top-level `operation` next to `spec` and `status`, and neither upstream CRD has a status subresource (the
//! Argo CD controller and API server write the whole object). The roots implement [`kube::Resource`] and
//! [`kube::CustomResourceExt`] themselves, and their CRD schemas are generated from the root types with the
//! same schemars settings kube-derive uses.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::{
    apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
        CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceValidation,
        JSONSchemaProps,
    },
    apimachinery::pkg::{
        apis::meta::v1::{ObjectMeta, Time},
        util::intstr::IntOrString,
    },
};
use kube::core::{
    ApiResource, NamespaceResourceScope,
    object::{HasSpec, HasStatus},
};
use kube::{CustomResourceExt, Resource};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize, Serializer, ser::SerializeStruct};

use crate::schema::{open_object, string_map};

// ---------------------------------------------------------------------------------------------------------
// Application
// ---------------------------------------------------------------------------------------------------------

/// An Argo CD Application: where manifests come from, where they go, how they are synced, and what was seen.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// Standard object metadata.
    #[schemars(skip)]
    pub metadata: ObjectMeta,
    /// The desired state: sources, destination, project and sync policy.
    pub spec: ApplicationSpec,
    /// The observed state, written by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ApplicationStatus>,
    /// A requested operation (a manual sync); the controller clears it once the operation has finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
}

impl Application {
    /// An Application with the given name and spec, without status or operation.
    pub fn new(name: &str, spec: ApplicationSpec) -> Self {
        Self {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
            operation: None,
        }
    }
}

impl Serialize for Application {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let fields = 4 + usize::from(self.status.is_some()) + usize::from(self.operation.is_some());
        let mut obj = ser.serialize_struct("Application", fields)?;
        obj.serialize_field("apiVersion", &Self::api_version(&()))?;
        obj.serialize_field("kind", &Self::kind(&()))?;
        obj.serialize_field("metadata", &self.metadata)?;
        obj.serialize_field("spec", &self.spec)?;
        if let Some(status) = &self.status {
            obj.serialize_field("status", status)?;
        }
        if let Some(operation) = &self.operation {
            obj.serialize_field("operation", operation)?;
        }
        obj.end()
    }
}

/// `kube::Resource`, `HasSpec` and `HasStatus` for a hand-written root type with `metadata`, `spec` and
/// `status` fields in this API group.
macro_rules! argo_root {
    ($kind:ident, $plural:literal, $spec:ty, $status:ty) => {
        impl Resource for $kind {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;

            fn kind(_: &()) -> Cow<'_, str> {
                stringify!($kind).into()
            }

            fn group(_: &()) -> Cow<'_, str> {
                crate::GROUP.into()
            }

            fn version(_: &()) -> Cow<'_, str> {
                crate::VERSION.into()
            }

            fn plural(_: &()) -> Cow<'_, str> {
                $plural.into()
            }

            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }

        impl HasSpec for $kind {
            type Spec = $spec;

            fn spec(&self) -> &$spec {
                &self.spec
            }

            fn spec_mut(&mut self) -> &mut $spec {
                &mut self.spec
            }
        }

        impl HasStatus for $kind {
            type Status = $status;

            fn status(&self) -> Option<&$status> {
                self.status.as_ref()
            }

            fn status_mut(&mut self) -> &mut Option<$status> {
                &mut self.status
            }
        }
    };
}

argo_root!(Application, "applications", ApplicationSpec, ApplicationStatus);

impl CustomResourceExt for Application {
    fn crd() -> CustomResourceDefinition {
        namespaced_crd::<Self>(Some(vec![
            column(
                "Sync Status",
                "string",
                ".status.sync.status",
                "Sync status against the target revision",
                None,
            ),
            column(
                "Health Status",
                "string",
                ".status.health.status",
                "Aggregated health of the resources",
                None,
            ),
            column(
                "Revision",
                "string",
                ".status.sync.revision",
                "Revision last compared against",
                Some(10),
            ),
            column(
                "Project",
                "string",
                ".spec.project",
                "The AppProject of this application",
                Some(10),
            ),
            column(
                "Age",
                "date",
                ".metadata.creationTimestamp",
                "Time since resource was created",
                None,
            ),
        ]))
    }

    fn crd_name() -> &'static str {
        "applications.argoproj.io"
    }

    fn api_resource() -> ApiResource {
        ApiResource::erase::<Self>(&())
    }

    fn shortnames() -> &'static [&'static str] {
        &["app", "apps"]
    }
}

/// The desired state of an Application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    /// The single source of the manifests; ignored when `sources` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    /// Several sources whose manifests are combined (the last source wins on duplicates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<ApplicationSource>>,
    /// The cluster and namespace the manifests are deployed to.
    pub destination: ApplicationDestination,
    /// The AppProject this application belongs to; empty means `default`.
    pub project: String,
    /// When and how syncs happen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<SyncPolicy>,
    /// Fields of live resources that are ignored when comparing with the desired state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_differences: Option<Vec<ResourceIgnoreDifferences>>,
    /// Informational name/value items (URLs, e-mail addresses, text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Vec<Info>>,
    /// Number of entries kept in `status.history` (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i64>,
    /// Source hydrator settings (dry source, sync source, hydrateTo), kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub source_hydrator: Option<serde_json::Value>,
}

/// Where an application's manifests come from: a Git repository, a Helm repository or an OCI registry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSource {
    /// URL of the Git or Helm repository.
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// Branch, tag or commit (Git) or chart version (Helm); empty means HEAD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_revision: Option<String>,
    /// Directory inside the Git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Helm chart name, for sources that are Helm repositories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    /// Name under which other sources reference this one as `$<ref>` (multi-source only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#ref: Option<String>,
    /// Display name of the source in multi-source applications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Prefix of the Git tags that semver target revisions are resolved against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_prefix: Option<String>,
    /// Options for a plain directory of manifests or Jsonnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<ApplicationSourceDirectory>,
    /// Options for a Kustomize source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<ApplicationSourceKustomize>,
    /// Options for a Helm source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<ApplicationSourceHelm>,
    /// Options for a config management plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<ApplicationSourcePlugin>,
}

/// Options for a source that is a directory of YAML, JSON or Jsonnet files.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSourceDirectory {
    /// Read subdirectories too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurse: Option<bool>,
    /// Glob of the files to read, e.g. `{*.yml,*.yaml}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
    /// Glob of the files to skip; wins over `include`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<String>,
    /// Read every file, not only .yaml, .yml, .json and .jsonnet files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_extension_filter: Option<bool>,
    /// Jsonnet options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsonnet: Option<ApplicationSourceJsonnet>,
}

/// Options passed to Jsonnet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSourceJsonnet {
    /// External variables (`--ext-str` / `--ext-code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_vars: Option<Vec<JsonnetVar>>,
    /// Top-level arguments (`--tla-str` / `--tla-code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlas: Option<Vec<JsonnetVar>>,
    /// Additional library search directories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libs: Option<Vec<String>>,
}

/// A Jsonnet variable.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JsonnetVar {
    /// Name of the variable.
    pub name: String,
    /// Value of the variable.
    pub value: String,
    /// The value is Jsonnet code rather than a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<bool>,
}

/// Options for a Kustomize source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSourceKustomize {
    /// Prefix added to resource names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
    /// Suffix added to resource names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_suffix: Option<String>,
    /// Image overrides, `[old=]name[:tag|@digest]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<String>>,
    /// Labels added to every rendered resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "string_map")]
    pub common_labels: Option<BTreeMap<String, String>>,
    /// Annotations added to every rendered resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "string_map")]
    pub common_annotations: Option<BTreeMap<String, String>>,
    /// Substitute environment variables in the values of `commonAnnotations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_annotations_envsubst: Option<bool>,
    /// Overwrite labels the resources already have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_common_labels: Option<bool>,
    /// Overwrite annotations the resources already have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_common_annotations: Option<bool>,
    /// Namespace set on every namespaced resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Replica count overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<Vec<KustomizeReplica>>,
    /// Kustomize patches (path, patch, target, options), kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object_list")]
    pub patches: Option<Vec<serde_json::Value>>,
    /// Kustomize components added to the kustomization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<String>>,
    /// Skip components that do not exist instead of failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_missing_components: Option<bool>,
    /// Apply `commonLabels` without adding them to selectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_without_selector: Option<bool>,
    /// Also apply `commonLabels` to pod templates when `labelWithoutSelector` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_include_templates: Option<bool>,
    /// Version of Kustomize to render with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Kubernetes version passed to Helm charts inflated by Kustomize.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_version: Option<String>,
    /// API versions (`[group/]version/kind`) passed to Helm charts inflated by Kustomize.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_versions: Option<Vec<String>>,
}

/// A replica count override for a Deployment or StatefulSet.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KustomizeReplica {
    /// Name of the Deployment or StatefulSet.
    pub name: String,
    /// Number of replicas (an integer or a numeric string).
    pub count: IntOrString,
}

/// Options for a Helm source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSourceHelm {
    /// Values files, relative to the chart or `$ref/...` from another source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_files: Option<Vec<String>>,
    /// Values as a YAML string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<String>,
    /// Values as an object; wins over `values`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub values_object: Option<serde_json::Value>,
    /// `--set` parameters; win over every values source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<HelmParameter>>,
    /// `--set-file` parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_parameters: Option<Vec<HelmFileParameter>>,
    /// Release name; defaults to the application name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_name: Option<String>,
    /// Namespace to template with; defaults to the destination namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Do not render the chart's CRDs (`--skip-crds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_crds: Option<bool>,
    /// Do not render test manifests (`--skip-tests`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_tests: Option<bool>,
    /// Skip JSON schema validation of values (`--skip-schema-validation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_schema_validation: Option<bool>,
    /// Leave out values files that do not exist instead of failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_missing_value_files: Option<bool>,
    /// Pass repository credentials to every domain (`--pass-credentials`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_credentials: Option<bool>,
    /// Kubernetes version passed to `helm template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_version: Option<String>,
    /// API versions (`[group/]version/kind`) passed to `helm template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_versions: Option<Vec<String>>,
    /// Helm major version to render with (`"3"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A Helm `--set` parameter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmParameter {
    /// Name of the value, e.g. `image.tag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Keep the value a string (`--set-string`) even if it looks like a number or boolean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_string: Option<bool>,
}

/// A Helm `--set-file` parameter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmFileParameter {
    /// Name of the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Path of the file holding the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Options for a config management plugin source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSourcePlugin {
    /// Name of the plugin; empty means discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Environment variables passed to the plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvEntry>>,
    /// Plugin parameters (name plus string, map or array), kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object_list")]
    pub parameters: Option<Vec<serde_json::Value>>,
}

/// An environment variable passed to a plugin.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvEntry {
    /// Name of the variable.
    pub name: String,
    /// Value of the variable.
    pub value: String,
}

/// The cluster and namespace an application deploys to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationDestination {
    /// URL of the cluster's API server; set this or `name`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Name of the cluster; set this or `server`, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace given to namespaced resources that do not set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// When and how an application is synced.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncPolicy {
    /// Sync automatically when the desired state changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automated: Option<SyncPolicyAutomated>,
    /// Sync options such as `CreateNamespace=true` or `ServerSideApply=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_options: Option<Vec<String>>,
    /// Retries of failed syncs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryStrategy>,
    /// Labels and annotations of the namespace created by `CreateNamespace=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_namespace_metadata: Option<ManagedNamespaceMetadata>,
}

/// Automated sync settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncPolicyAutomated {
    /// Delete resources that are no longer in the sources (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<bool>,
    /// Revert changes made to live resources (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_heal: Option<bool>,
    /// Allow a sync that leaves the application without resources (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_empty: Option<bool>,
    /// Turns automated sync on or off; unset means on when this block is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// How failed syncs are retried.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    /// Maximum number of retries; 0 means none, a negative number means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// Delay between retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// Retry with the latest revision instead of the one that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<bool>,
}

/// Exponential backoff between sync retries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// First delay, a duration such as `5s` or a number of seconds as a string (default `5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Factor the delay is multiplied by after each retry (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<i64>,
    /// Longest delay (default `3m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
}

/// Labels and annotations of a namespace the application creates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManagedNamespaceMetadata {
    /// Labels of the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "string_map")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations of the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "string_map")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Resources, and fields of them, that are ignored when comparing desired and live state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceIgnoreDifferences {
    /// API group of the resources; empty for the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind of the resources.
    pub kind: String,
    /// Name of the resource; unset matches every name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace of the resource; unset matches every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// JSON pointers (RFC 6901) of the ignored fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_pointers: Option<Vec<String>>,
    /// jq path expressions of the ignored fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jq_path_expressions: Option<Vec<String>>,
    /// Field managers whose changes are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_fields_managers: Option<Vec<String>>,
}

/// A name/value pair of information.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    /// Title of the item.
    pub name: String,
    /// Content of the item.
    pub value: String,
}

/// The observed state of an Application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    /// Every resource the application manages, with its sync and health status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<ResourceStatus>>,
    /// Result of the last comparison of desired and live state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncStatus>,
    /// Aggregated health of the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStatus>,
    /// Successful syncs, oldest first, at most `revisionHistoryLimit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<RevisionHistory>>,
    /// Errors and warnings currently observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<ApplicationCondition>>,
    /// When the state was last compared against the latest revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_at: Option<Time>,
    /// State of the running or last operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_state: Option<OperationState>,
    /// When the state was last observed without asking Git (deprecated, no longer written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<Time>,
    /// Type of the source: Helm, Kustomize, Directory or Plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
    /// Type of each source of a multi-source application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_types: Option<Vec<String>>,
    /// External URLs and images of the application's resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<ApplicationSummary>,
    /// Namespace of the controller that manages the application.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_namespace: Option<String>,
    /// Where resource health is kept: empty for inline here, `appTree` for outside the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_health_source: Option<String>,
    /// State of source hydration, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub source_hydrator: Option<serde_json::Value>,
}

/// Sync and health status of one managed resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// API group; empty for the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace; empty for cluster-scoped resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Sync status: Synced, OutOfSync or Unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Health of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStatus>,
    /// The resource is a sync hook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<bool>,
    /// The resource is no longer in the sources and would be pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_pruning: Option<bool>,
    /// Sync wave of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_wave: Option<i64>,
    /// Deleting or pruning the resource waits for a confirmation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_deletion_confirmation: Option<bool>,
}

/// Result of comparing desired and live state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// Synced, OutOfSync or Unknown.
    pub status: String,
    /// Revision the comparison was made against (single source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Revision of each source the comparison was made against (multi-source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisions: Option<Vec<String>>,
    /// The spec the comparison was made with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compared_to: Option<ComparedTo>,
}

/// The parts of the spec a comparison was made with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComparedTo {
    /// The source (single source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    /// The sources (multi-source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<ApplicationSource>>,
    /// The destination.
    pub destination: ApplicationDestination,
    /// The ignored differences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_differences: Option<Vec<ResourceIgnoreDifferences>>,
}

/// Health of an application or of one resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthStatus {
    /// Healthy, Suspended, Progressing, Missing, Degraded or Unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// One successful sync in the application's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionHistory {
    /// Increasing identifier of the entry.
    pub id: i64,
    /// Revision that was synced (single source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Revision of each source that was synced (multi-source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisions: Option<Vec<String>>,
    /// The source that was synced (single source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    /// The sources that were synced (multi-source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<ApplicationSource>>,
    /// When the sync finished.
    pub deployed_at: Time,
    /// When the sync started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_started_at: Option<Time>,
    /// Who started the sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiated_by: Option<OperationInitiator>,
}

/// An error or warning about an application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationCondition {
    /// Type, e.g. ComparisonError, InvalidSpecError or SharedResourceWarning.
    #[serde(rename = "type")]
    pub type_: String,
    /// Human-readable detail.
    pub message: String,
    /// When the condition was last observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// External URLs and images used by an application.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSummary {
    /// External URLs of the application's resources (Ingress hosts, link annotations).
    #[serde(default, rename = "externalURLs", skip_serializing_if = "Option::is_none")]
    pub external_urls: Option<Vec<String>>,
    /// Container images of the application's resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<String>>,
}

/// State of the running or last operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationState {
    /// The operation as requested.
    pub operation: Operation,
    /// Running, Terminating, Failed, Error or Succeeded.
    pub phase: String,
    /// Detail, usually an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the operation started.
    pub started_at: Time,
    /// When the operation finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Number of retries made so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<i64>,
    /// Result of a sync operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_result: Option<SyncOperationResult>,
}

/// Result of a sync operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncOperationResult {
    /// Revision that was synced (single source).
    pub revision: String,
    /// Revision of each source that was synced (multi-source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisions: Option<Vec<String>>,
    /// The source that was synced (single source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    /// The sources that were synced (multi-source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<ApplicationSource>>,
    /// Result of each resource and hook, per sync phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<ResourceResult>>,
    /// Metadata applied to the managed namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_namespace_metadata: Option<ManagedNamespaceMetadata>,
}

/// Result of syncing one resource or hook in one sync phase.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceResult {
    /// API group; empty for the core group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace; empty for cluster-scoped resources.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Synced, SyncFailed, Pruned or PruneSkipped; empty for hooks and resources not yet applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Detail of the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Hook type (PreSync, Sync, PostSync, SyncFail, Skip); empty for plain resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_type: Option<String>,
    /// Phase of the hook or resource: Running, Succeeded, Failed, Error or Terminating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_phase: Option<String>,
    /// Sync phase the result belongs to: PreSync, Sync, PostSync or SyncFail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_phase: Option<String>,
    /// Container images of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<Vec<String>>,
}

/// A requested operation; only sync exists.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// A sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncOperation>,
    /// Who requested the operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiated_by: Option<OperationInitiator>,
    /// Informational name/value items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Vec<Info>>,
    /// Retries of the operation if it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryStrategy>,
}

/// Parameters of a sync operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncOperation {
    /// Revision to sync to (single source); empty means the spec's target revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Revision of each source to sync to (multi-source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisions: Option<Vec<String>>,
    /// Delete resources that are no longer in the sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<bool>,
    /// Apply with dry-run only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// Apply only, or apply with hooks (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_strategy: Option<SyncStrategy>,
    /// Sync only these resources (a selective sync; hooks are skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<SyncOperationResource>>,
    /// Sync options for this sync only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_options: Option<Vec<String>>,
    /// A source replacing the spec's (set by rollbacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    /// Sources replacing the spec's (set by rollbacks of multi-source applications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<ApplicationSource>>,
    /// Local manifests to sync instead of the sources (development only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Vec<String>>,
    /// Number of self-heal attempts made so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_heal_attempts_count: Option<i64>,
}

/// How a sync applies resources: exactly one of its fields is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncStrategy {
    /// Apply every resource, ignoring hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<SyncStrategyApply>,
    /// Run hooks and apply resources in phases and waves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<SyncStrategyHook>,
}

/// The apply sync strategy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncStrategyApply {
    /// Delete and recreate resources whose patch keeps conflicting (`kubectl apply --force`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

/// The hook sync strategy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncStrategyHook {
    /// Delete and recreate resources whose patch keeps conflicting (`kubectl apply --force`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force: Option<bool>,
}

/// A resource selected for a selective sync.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncOperationResource {
    /// API group; empty for the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Namespace; unset matches any namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Who started an operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationInitiator {
    /// Name of the user who started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The controller started it (automated sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automated: Option<bool>,
}

// ---------------------------------------------------------------------------------------------------------
// AppProject
// ---------------------------------------------------------------------------------------------------------

/// An Argo CD AppProject: which sources, destinations and resource kinds its applications may use.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppProject {
    /// Standard object metadata.
    #[schemars(skip)]
    pub metadata: ObjectMeta,
    /// The project's restrictions, roles and sync windows.
    pub spec: AppProjectSpec,
    /// Tokens issued for the project's roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AppProjectStatus>,
}

impl AppProject {
    /// An AppProject with the given name and spec, without status.
    pub fn new(name: &str, spec: AppProjectSpec) -> Self {
        Self {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            spec,
            status: None,
        }
    }
}

impl Serialize for AppProject {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut obj = ser.serialize_struct("AppProject", 4 + usize::from(self.status.is_some()))?;
        obj.serialize_field("apiVersion", &Self::api_version(&()))?;
        obj.serialize_field("kind", &Self::kind(&()))?;
        obj.serialize_field("metadata", &self.metadata)?;
        obj.serialize_field("spec", &self.spec)?;
        if let Some(status) = &self.status {
            obj.serialize_field("status", status)?;
        }
        obj.end()
    }
}

argo_root!(AppProject, "appprojects", AppProjectSpec, AppProjectStatus);

impl CustomResourceExt for AppProject {
    fn crd() -> CustomResourceDefinition {
        // Like upstream, no printer columns: kubectl then shows the default Name and Age.
        namespaced_crd::<Self>(None)
    }

    fn crd_name() -> &'static str {
        "appprojects.argoproj.io"
    }

    fn api_resource() -> ApiResource {
        ApiResource::erase::<Self>(&())
    }

    fn shortnames() -> &'static [&'static str] {
        &["appproj", "appprojs"]
    }
}

/// The restrictions, roles and sync windows of an AppProject.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppProjectSpec {
    /// Description of the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Repository URLs applications may use (globs; a leading `!` denies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_repos: Option<Vec<String>>,
    /// Destinations applications may deploy to (globs; a leading `!` denies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destinations: Option<Vec<ApplicationDestination>>,
    /// Namespaces in which Applications of this project may live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespaces: Option<Vec<String>>,
    /// Cluster-scoped resources that may be deployed; an empty list denies all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_resource_whitelist: Option<Vec<ClusterResourceRestrictionItem>>,
    /// Cluster-scoped resources that may not be deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_resource_blacklist: Option<Vec<ClusterResourceRestrictionItem>>,
    /// Namespaced resources that may be deployed; unset allows all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_resource_whitelist: Option<Vec<GroupKind>>,
    /// Namespaced resources that may not be deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_resource_blacklist: Option<Vec<GroupKind>>,
    /// RBAC roles of the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<ProjectRole>>,
    /// Time windows in which syncs are allowed or denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_windows: Option<Vec<SyncWindow>>,
    /// Monitoring of resources in destination namespaces that no application manages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphaned_resources: Option<OrphanedResourcesMonitorSettings>,
    /// GnuPG keys one of which must have signed a commit for it to be synced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_keys: Option<Vec<SignatureKey>>,
    /// Service accounts impersonated when syncing to each destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_service_accounts: Option<Vec<ApplicationDestinationServiceAccount>>,
    /// Destinations may only name clusters that belong to this project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permit_only_project_scoped_clusters: Option<bool>,
    /// Source integrity checks (signature verification policies), kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub source_integrity: Option<serde_json::Value>,
}

/// A cluster-scoped resource kind, optionally narrowed to names, in a whitelist or blacklist.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterResourceRestrictionItem {
    /// API group (glob); empty for the core group.
    pub group: String,
    /// Kind (glob).
    pub kind: String,
    /// Name (glob); unset matches every name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A namespaced resource kind in a whitelist or blacklist.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupKind {
    /// API group (glob); empty for the core group.
    pub group: String,
    /// Kind (glob).
    pub kind: String,
}

/// An RBAC role of a project.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRole {
    /// Name of the role.
    pub name: String,
    /// Description of the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Casbin policy lines, e.g. `p, proj:team:ci, applications, sync, team/*, allow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<String>>,
    /// OIDC groups bound to the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// JWT tokens issued for the role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_tokens: Option<Vec<JwtToken>>,
}

/// A JWT token issued for a project role.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtToken {
    /// Issued-at time, in seconds since the epoch.
    pub iat: i64,
    /// Expiry time, in seconds since the epoch; unset never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Identifier of the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// A time window in which syncs are allowed or denied.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncWindow {
    /// `allow` or `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Cron schedule at which the window opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// How long the window stays open, e.g. `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Applications the window applies to (globs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applications: Option<Vec<String>>,
    /// Destination namespaces the window applies to (globs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
    /// Destination clusters the window applies to (globs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<Vec<String>>,
    /// Manual syncs are allowed while the window denies syncs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_sync: Option<bool>,
    /// Time zone of the schedule (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Match applications, namespaces and clusters with AND instead of OR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub and_operator: Option<bool>,
    /// A sync that started inside the window may go on after it closes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_overrun: Option<bool>,
    /// Free-form description, e.g. a change ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Monitoring of orphaned resources.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrphanedResourcesMonitorSettings {
    /// Raise an OrphanedResourceWarning condition on applications that have orphaned resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn: Option<bool>,
    /// Resources never reported as orphaned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<Vec<OrphanedResourceKey>>,
}

/// A resource (glob match) excluded from orphaned resource monitoring.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrphanedResourceKey {
    /// API group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A GnuPG key that may sign commits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignatureKey {
    /// Key ID in hexadecimal.
    #[serde(rename = "keyID")]
    pub key_id: String,
}

/// The service account impersonated when syncing to a destination.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationDestinationServiceAccount {
    /// Destination cluster URL (glob).
    pub server: String,
    /// Destination namespace (glob).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Service account to impersonate, `name` or `namespace:name`.
    pub default_service_account: String,
}

/// The observed state of an AppProject.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppProjectStatus {
    /// JWT tokens issued per role (`{role: {items: [{iat, exp, id}]}}`), kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "open_object")]
    pub jwt_tokens_by_role: Option<serde_json::Value>,
}

// ---------------------------------------------------------------------------------------------------------
// CRD construction
// ---------------------------------------------------------------------------------------------------------

/// A list of objects whose fields the API server keeps as written.
fn open_object_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true }
    })
}

/// One printer column of a CRD.
fn column(
    name: &str,
    type_: &str,
    json_path: &str,
    description: &str,
    priority: Option<i32>,
) -> CustomResourceColumnDefinition {
    CustomResourceColumnDefinition {
        name: name.into(),
        type_: type_.into(),
        json_path: json_path.into(),
        description: Some(description.into()),
        priority,
        format: None,
    }
}

/// The structural OpenAPI schema of a root type, generated with the settings kube-derive uses.
fn openapi_schema<K: JsonSchema>() -> JSONSchemaProps {
    use kube::core::schema::{OptionalEnum, OptionalIntOrString, StructuralSchemaRewriter};
    use schemars::{generate::SchemaSettings, transform::AddNullable};

    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(AddNullable::default())
        .with_transform(StructuralSchemaRewriter)
        .with_transform(OptionalEnum)
        .with_transform(OptionalIntOrString)
        .into_generator();
    serde_json::to_value(generator.into_root_schema_for::<K>())
        .and_then(serde_json::from_value)
        .expect("valid JSONSchemaProps from schemars schema")
}

/// The CRD of a namespaced root type with a single served and stored version and no subresources.
fn namespaced_crd<K>(printer_columns: Option<Vec<CustomResourceColumnDefinition>>) -> CustomResourceDefinition
where
    K: Resource<DynamicType = ()> + CustomResourceExt + JsonSchema,
{
    let kind = K::kind(&()).into_owned();
    CustomResourceDefinition {
        metadata: ObjectMeta {
            name: Some(K::crd_name().into()),
            ..ObjectMeta::default()
        },
        spec: CustomResourceDefinitionSpec {
            group: K::group(&()).into_owned(),
            names: CustomResourceDefinitionNames {
                singular: Some(kind.to_ascii_lowercase()),
                plural: K::plural(&()).into_owned(),
                short_names: Some(K::shortnames().iter().map(|s| s.to_string()).collect()),
                kind,
                ..CustomResourceDefinitionNames::default()
            },
            scope: "Namespaced".into(),
            versions: vec![CustomResourceDefinitionVersion {
                name: K::version(&()).into_owned(),
                served: true,
                storage: true,
                schema: Some(CustomResourceValidation {
                    open_api_v3_schema: Some(openapi_schema::<K>()),
                }),
                additional_printer_columns: printer_columns,
                subresources: None,
                ..CustomResourceDefinitionVersion::default()
            }],
            ..CustomResourceDefinitionSpec::default()
        },
        ..CustomResourceDefinition::default()
    }
}

/// The CRDs of this module with their file names.
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("applications.yaml", Application::crd()),
        ("appprojects.yaml", AppProject::crd()),
    ]
}
