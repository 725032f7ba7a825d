//! What to do with the generated Applications and the ones an ApplicationSet owns, as upstream's
//! `createOrUpdateInCluster`, `createInCluster` and `deleteInCluster` decide it under `applicationsSync`.
//!
//! An update takes the generated spec, annotations, labels and finalizers over the live Application, keeps
//! the live values of the preserved annotations and labels (the ApplicationSet's `preservedFields`, the
//! controller's global ones, and always `notified.notifications.argoproj.io`, `argocd.argoproj.io/refresh`
//! and `argocd.argoproj.io/hydrate`) and of the pre-/post-delete hook finalizers, and keeps the rest of the
//! live metadata. It is planned only when the result differs from the live Application after both specs are
//! normalized as upstream does (project `default`, an empty sync policy or tool block is absent), so a steady
//! state writes nothing. The generated Applications get the resources finalizer unless
//! `preserveResourcesOnDeletion` is set or the template names finalizers of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;
use sluice_crds::application::{Application, ApplicationSource, ApplicationSpec, SyncPolicy};

/// Argo CD's cascading-deletion finalizer (with `/foreground` or `/background` variants).
pub const RESOURCES_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";
/// The finalizer of PreDelete hooks (with `/...` stage suffixes); kept on update.
pub const PRE_DELETE_FINALIZER: &str = "pre-delete-finalizer.argocd.argoproj.io";
/// The finalizer of PostDelete hooks (with `/...` stage suffixes); kept on update.
pub const POST_DELETE_FINALIZER: &str = "post-delete-finalizer.argocd.argoproj.io";
/// The notifications controller's record of what it sent; kept on update.
pub const ANNOTATION_NOTIFIED: &str = "notified.notifications.argoproj.io";
/// A requested refresh of the Application; kept on update.
pub const ANNOTATION_REFRESH: &str = "argocd.argoproj.io/refresh";
/// A requested hydration of the Application; kept on update.
pub const ANNOTATION_HYDRATE: &str = "argocd.argoproj.io/hydrate";

const DEFAULT_PRESERVED_ANNOTATIONS: [&str; 3] =
    [ANNOTATION_NOTIFIED, ANNOTATION_REFRESH, ANNOTATION_HYDRATE];
const PRESERVED_FINALIZERS: [&str; 2] = [PRE_DELETE_FINALIZER, POST_DELETE_FINALIZER];

/// `spec.syncPolicy.applicationsSync`: which of create, update and delete the ApplicationSet may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ApplicationsSync {
    /// Create missing Applications only.
    CreateOnly,
    /// Create and update, never delete.
    CreateUpdate,
    /// Create and delete, never update.
    CreateDelete,
    /// Create, update and delete (the default).
    #[default]
    Sync,
}

impl ApplicationsSync {
    /// The policy named as in the ApplicationSet; an empty name is the default, `sync`.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "create-only" => Ok(Self::CreateOnly),
            "create-update" => Ok(Self::CreateUpdate),
            "create-delete" => Ok(Self::CreateDelete),
            "sync" | "" => Ok(Self::Sync),
            other => Err(format!(
                "applicationsSync policy {other:?} is not supported (create-only, create-update, create-delete or sync)"
            )),
        }
    }

    /// The name as the ApplicationSet writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreateOnly => "create-only",
            Self::CreateUpdate => "create-update",
            Self::CreateDelete => "create-delete",
            Self::Sync => "sync",
        }
    }

    /// Whether existing Applications are updated.
    pub fn allows_update(self) -> bool {
        matches!(self, Self::Sync | Self::CreateUpdate)
    }

    /// Whether Applications that are no longer generated are deleted.
    pub fn allows_delete(self) -> bool {
        matches!(self, Self::Sync | Self::CreateDelete)
    }
}

impl FromStr for ApplicationsSync {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::parse(name)
    }
}

/// The ApplicationSet's settings that shape the plan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    /// The ApplicationSet's name, for messages.
    pub application_set: String,
    /// The effective `applicationsSync` policy.
    pub sync: ApplicationsSync,
    /// `syncPolicy.preserveResourcesOnDeletion`: deleting an Application leaves its resources.
    pub preserve_resources_on_deletion: bool,
    /// Annotations whose live values survive updates (`preservedFields` plus the controller's global list).
    pub preserved_annotations: Vec<String>,
    /// Labels whose live values survive updates.
    pub preserved_labels: Vec<String>,
}

/// One write of the plan.
#[derive(Clone, Debug, PartialEq)]
pub enum AppAction {
    /// Create a generated Application that does not exist.
    Create(Application),
    /// Replace an existing Application with `app`, the live object with the generated fields merged in.
    Update {
        /// The Application's name.
        name: String,
        /// The whole object to write.
        app: Application,
    },
    /// Delete an owned Application that is no longer generated; with `keep_resources`, first remove the
    /// resources finalizer (see [`is_resources_finalizer`]) so that its resources stay.
    Delete {
        /// The Application's name.
        name: String,
        /// Remove the resources finalizer before deleting.
        keep_resources: bool,
    },
}

/// Whether `finalizer` is the resources finalizer or one of its `/...` variants.
pub fn is_resources_finalizer(finalizer: &str) -> bool {
    finalizer
        .strip_prefix(RESOURCES_FINALIZER)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The creates, updates and deletes that bring the owned Applications (`existing`) to the generated ones
/// (`desired`), in the order of `desired` and then of `existing`. Duplicate generated names are an error.
pub fn plan(
    desired: &[Application],
    existing: &[Application],
    policy: Policy,
) -> Result<Vec<AppAction>, String> {
    check_unique(desired, &policy.application_set)?;
    let live: BTreeMap<&str, &Application> = existing.iter().map(|app| (name(app), app)).collect();
    let mut actions = Vec::new();
    for generated in desired {
        let generated = prepare(generated, &policy);
        match live.get(name(&generated)) {
            None => actions.push(AppAction::Create(generated)),
            Some(found) if policy.sync.allows_update() => {
                let merged = merge(found, &generated, &policy);
                if differs(found, &merged) {
                    let name = name(&merged).to_string();
                    actions.push(AppAction::Update { name, app: merged });
                }
            }
            Some(_) => {}
        }
    }
    if policy.sync.allows_delete() {
        let wanted: BTreeSet<&str> = desired.iter().map(name).collect();
        for found in existing.iter().filter(|app| !wanted.contains(name(app))) {
            actions.push(AppAction::Delete {
                name: name(found).to_string(),
                keep_resources: policy.preserve_resources_on_deletion,
            });
        }
    }
    Ok(actions)
}

fn name(app: &Application) -> &str {
    app.metadata.name.as_deref().unwrap_or_default()
}

/// Upstream's validation message for the first duplicate name, with the count of further ones.
fn check_unique(desired: &[Application], application_set: &str) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    let duplicates: Vec<&str> = desired.iter().map(name).filter(|n| !seen.insert(*n)).collect();
    let Some(first) = duplicates.first() else {
        return Ok(());
    };
    let mut message =
        format!("ApplicationSet {application_set} contains applications with duplicate name: {first}");
    if duplicates.len() > 1 {
        message.push_str(&format!(" (and {} more)", duplicates.len() - 1));
    }
    Err(message)
}

/// The generated Application as it is written: the template's metadata fields only, the spec normalized,
/// the resources finalizer added when the template has no finalizers and resources are not preserved.
fn prepare(generated: &Application, policy: &Policy) -> Application {
    let meta = &generated.metadata;
    let mut finalizers = meta.finalizers.clone().unwrap_or_default();
    if finalizers.is_empty() && !policy.preserve_resources_on_deletion {
        finalizers.push(RESOURCES_FINALIZER.to_string());
    }
    Application {
        metadata: ObjectMeta {
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            labels: non_empty_map(meta.labels.clone()),
            annotations: non_empty_map(meta.annotations.clone()),
            finalizers: (!finalizers.is_empty()).then_some(finalizers),
            ..ObjectMeta::default()
        },
        spec: normalize_spec(&generated.spec),
        status: None,
        operation: generated.operation.clone(),
    }
}

/// The live Application with the generated fields taken over (upstream's mutate function).
fn merge(found: &Application, generated: &Application, policy: &Policy) -> Application {
    let mut merged = found.clone();
    merged.spec = generated.spec.clone();
    if generated.operation.is_some() {
        merged.operation = generated.operation.clone();
    }
    let annotation_keys = policy
        .preserved_annotations
        .iter()
        .map(String::as_str)
        .chain(DEFAULT_PRESERVED_ANNOTATIONS);
    let annotations = preserve(
        &generated.metadata.annotations,
        &found.metadata.annotations,
        annotation_keys,
    );
    let label_keys = policy.preserved_labels.iter().map(String::as_str);
    let labels = preserve(&generated.metadata.labels, &found.metadata.labels, label_keys);
    let mut finalizers = generated.metadata.finalizers.clone().unwrap_or_default();
    for finalizer in found.metadata.finalizers.iter().flatten() {
        let hook = PRESERVED_FINALIZERS.iter().any(|p| finalizer.starts_with(p));
        if hook && !finalizers.contains(finalizer) {
            finalizers.push(finalizer.clone());
        }
    }
    merged.metadata.annotations = non_empty_map(Some(annotations));
    merged.metadata.labels = non_empty_map(Some(labels));
    merged.metadata.finalizers = (!finalizers.is_empty()).then_some(finalizers);
    merged
}

/// The generated map with the live values of `keys` that the live object has.
fn preserve<'k>(
    generated: &Option<BTreeMap<String, String>>,
    live: &Option<BTreeMap<String, String>>,
    keys: impl Iterator<Item = &'k str>,
) -> BTreeMap<String, String> {
    let mut out = generated.clone().unwrap_or_default();
    for key in keys {
        if let Some(value) = live.as_ref().and_then(|m| m.get(key)) {
            out.insert(key.to_string(), value.clone());
        }
    }
    out
}

fn non_empty_map(map: Option<BTreeMap<String, String>>) -> Option<BTreeMap<String, String>> {
    map.filter(|m| !m.is_empty())
}

/// Whether the merged Application changes anything the ApplicationSet controls on the live one.
fn differs(found: &Application, merged: &Application) -> bool {
    let (a, b) = (&found.metadata, &merged.metadata);
    normalize_spec(&found.spec) != merged.spec
        || found.operation != merged.operation
        || non_empty_map(a.annotations.clone()) != b.annotations
        || non_empty_map(a.labels.clone()) != b.labels
        || a.finalizers.clone().filter(|f| !f.is_empty()) != b.finalizers
}

/// Upstream's `NormalizeApplicationSpec`: project `default` when empty; a sync policy with no field set, an
/// empty source list and a tool block (`helm`, `kustomize`, `directory`) whose fields are all zero are absent.
fn normalize_spec(spec: &ApplicationSpec) -> ApplicationSpec {
    let mut spec = spec.clone();
    if spec.project.is_empty() {
        spec.project = "default".to_string();
    }
    let empty_policy = |p: &SyncPolicy| {
        p.automated.is_none()
            && p.sync_options.as_ref().is_none_or(Vec::is_empty)
            && p.retry.is_none()
            && p.managed_namespace_metadata.is_none()
    };
    if spec.sync_policy.as_ref().is_some_and(empty_policy) {
        spec.sync_policy = None;
    }
    if spec.sources.as_ref().is_some_and(Vec::is_empty) {
        spec.sources = None;
    }
    spec.source
        .iter_mut()
        .chain(spec.sources.iter_mut().flatten())
        .for_each(normalize_source);
    spec
}

fn normalize_source(source: &mut ApplicationSource) {
    if source.helm.as_ref().is_some_and(is_zero) {
        source.helm = None;
    }
    if source.kustomize.as_ref().is_some_and(is_zero) {
        source.kustomize = None;
    }
    if source.directory.as_ref().is_some_and(is_zero) {
        source.directory = None;
    }
}

/// Whether every field of `value` is Go's zero value (absent, false, 0, "", or empty).
fn is_zero<T: Serialize>(value: &T) -> bool {
    serde_json::to_value(value).is_ok_and(|v| zero_json(&v))
}

fn zero_json(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(entries) => entries.values().all(zero_json),
    }
}
