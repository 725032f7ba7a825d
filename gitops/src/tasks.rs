//! The sync plan of an Application as gitops-engine computes it (reference §2; `GE:pkg/sync/sync_tasks.go`,
//! `sync_task.go`, `sync_phase.go`, `hook/*.go`, `syncwaves/waves.go`, `sync_context.go`). Pure: no client.
//!
//! Two halves:
//! - [`sync_tasks`] turns the rendered targets and the live managed objects into sorted [`SyncTask`]s: hooks,
//!   phases, waves, prune tasks, delete policies, then `syncTasks.Less` and `adjustDeps`.
//! - The `Sync()` state machine as pure decisions. On every reconcile of a running operation the controller
//!   1. calls [`sync_tasks`] again with fresh live objects and attaches each task's stored [`TaskResult`] by
//!      [`SyncTask::result_key`], plus the health it computes for the task's live object;
//!   2. on the first call only (no stored results), validates [`dry_run_tasks`] with a client-side dry run;
//!   3. stores [`observe`]'s results (health turned into task phases, vanished objects marked missing);
//!   4. does what [`next_step`] says. After running a [`WaveRun`] it records each task's result (the
//!      [`TaskResult`] constructors follow upstream's mapping) and does what [`after_wave`] says.
//!
//! Where upstream lets an invalid `sync-wave` fall back silently, [`sync_tasks`] refuses it with an error.

use std::{cmp::Ordering, collections::HashMap, fmt};

use serde_json::Value;

/// Hook types, comma-separated (`common.AnnotationKeyHook`).
pub const ANNOTATION_HOOK: &str = "argocd.argoproj.io/hook";
/// Hook delete policies, comma-separated.
pub const ANNOTATION_HOOK_DELETE_POLICY: &str = "argocd.argoproj.io/hook-delete-policy";
/// The wave of a resource or hook (an integer).
pub const ANNOTATION_SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";
/// Per-resource sync options, comma-separated (`Prune=false`, `PruneLast=true`, ...).
pub const ANNOTATION_SYNC_OPTIONS: &str = "argocd.argoproj.io/sync-options";
/// Helm's hook annotation, mapped when no Argo CD hook type is given.
pub const HELM_HOOK: &str = "helm.sh/hook";
/// Helm's hook weight, the wave when `sync-wave` is absent.
pub const HELM_HOOK_WEIGHT: &str = "helm.sh/hook-weight";
/// Helm's hook delete policies, mapped and added to Argo CD's.
pub const HELM_HOOK_DELETE_POLICY: &str = "helm.sh/hook-delete-policy";
/// Added to every hook so its final state can be observed; removed when the hook completes.
pub const HOOK_FINALIZER: &str = "argocd.argoproj.io/hook-finalizer";

/// Operation message when nothing is left to run.
pub const MSG_NO_MORE_TASKS: &str = "successfully synced (no more tasks)";
/// Operation message when the last wave, without hooks, was applied.
pub const MSG_ALL_TASKS_RUN: &str = "successfully synced (all tasks run)";
/// Operation message when a task completed unsuccessfully.
pub const MSG_TASKS_UNSUCCESSFUL: &str = "one or more synchronization tasks completed unsuccessfully";
/// Operation message when an apply or prune of the current wave failed.
pub const MSG_FAILED_TO_APPLY: &str = "one or more objects failed to apply";
/// Operation message when the first call's dry run failed.
pub const MSG_DRY_RUN_FAILED: &str = "one or more objects failed to apply (dry run)";
/// Added to the failure message when a SyncFail hook failed to apply.
pub const MSG_SYNC_FAIL_HOOKS_FAILED: &str = "one or more SyncFail hooks failed";
/// Operation message after [`terminate`].
pub const MSG_TERMINATED: &str = "Operation terminated";
/// Prune result message when the operation does not prune.
pub const MSG_PRUNE_DISABLED: &str = "ignored (requires pruning)";
/// Prune result message for `Prune=false`.
pub const MSG_NO_PRUNE: &str = "ignored (no prune)";

/// Helm's kind order (`kindOrder`): earlier kinds are applied first within a wave; other kinds come last.
pub const KIND_ORDER: [&str; 35] = [
    "Namespace",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "PodSecurityPolicy",
    "PodDisruptionBudget",
    "ServiceAccount",
    "Secret",
    "SecretList",
    "ConfigMap",
    "StorageClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleList",
    "ClusterRoleBinding",
    "ClusterRoleBindingList",
    "Role",
    "RoleList",
    "RoleBinding",
    "RoleBindingList",
    "Service",
    "DaemonSet",
    "Pod",
    "ReplicationController",
    "ReplicaSet",
    "Deployment",
    "HorizontalPodAutoscaler",
    "StatefulSet",
    "Job",
    "CronJob",
    "IngressClass",
    "Ingress",
    "APIService",
];

/// A sync phase, in upstream's order (`syncPhaseOrder`: PreSync -1, Sync 0, PostSync 1, SyncFail 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SyncPhase {
    /// Before the resources.
    PreSync,
    /// With the resources.
    Sync,
    /// After every resource is healthy.
    PostSync,
    /// Only after a failure.
    SyncFail,
}

impl SyncPhase {
    /// The name Argo CD writes (`syncPhase` of a resource result).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreSync => "PreSync",
            Self::Sync => "Sync",
            Self::PostSync => "PostSync",
            Self::SyncFail => "SyncFail",
        }
    }

    /// Upstream's sort value.
    pub fn order(self) -> i32 {
        match self {
            Self::PreSync => -1,
            Self::Sync => 0,
            Self::PostSync => 1,
            Self::SyncFail => 2,
        }
    }
}

impl fmt::Display for SyncPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value of the `argocd.argoproj.io/hook` annotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HookType {
    /// Runs in the PreSync phase.
    PreSync,
    /// Runs in the Sync phase.
    Sync,
    /// Runs in the PostSync phase.
    PostSync,
    /// Runs in the SyncFail phase.
    SyncFail,
    /// Alone: the object is neither applied nor pruned.
    Skip,
    /// Runs before the Application is deleted (not part of a sync).
    PreDelete,
    /// Runs after the Application is deleted (not part of a sync).
    PostDelete,
}

impl HookType {
    /// Parses one Argo CD hook type (exact, case-sensitive).
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "PreSync" => Self::PreSync,
            "Sync" => Self::Sync,
            "PostSync" => Self::PostSync,
            "SyncFail" => Self::SyncFail,
            "Skip" => Self::Skip,
            "PreDelete" => Self::PreDelete,
            "PostDelete" => Self::PostDelete,
            _ => return None,
        })
    }

    /// Maps one Helm hook (`hook/helm/type.go`); other Helm hooks (tests, rollbacks, `crd-install`) map to none.
    pub fn from_helm(text: &str) -> Option<Self> {
        match text {
            "pre-install" | "pre-upgrade" => Some(Self::PreSync),
            "post-install" | "post-upgrade" => Some(Self::PostSync),
            _ => None,
        }
    }

    /// The sync phase this hook type runs in, if any.
    pub fn sync_phase(self) -> Option<SyncPhase> {
        match self {
            Self::PreSync => Some(SyncPhase::PreSync),
            Self::Sync => Some(SyncPhase::Sync),
            Self::PostSync => Some(SyncPhase::PostSync),
            Self::SyncFail => Some(SyncPhase::SyncFail),
            Self::Skip | Self::PreDelete | Self::PostDelete => None,
        }
    }
}

/// When a hook object is deleted (`hook/delete_policy.go`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeletePolicy {
    /// An existing hook object is deleted before the new one is created (the default).
    BeforeHookCreation,
    /// Deleted when the whole operation succeeds.
    HookSucceeded,
    /// Deleted when the operation fails.
    HookFailed,
}

impl DeletePolicy {
    /// Parses one Argo CD policy.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "BeforeHookCreation" => Some(Self::BeforeHookCreation),
            "HookSucceeded" => Some(Self::HookSucceeded),
            "HookFailed" => Some(Self::HookFailed),
            _ => None,
        }
    }

    /// Maps one Helm policy (`before-hook-creation`, `hook-succeeded`, `hook-failed`).
    pub fn from_helm(text: &str) -> Option<Self> {
        match text {
            "before-hook-creation" => Some(Self::BeforeHookCreation),
            "hook-succeeded" => Some(Self::HookSucceeded),
            "hook-failed" => Some(Self::HookFailed),
            _ => None,
        }
    }
}

/// What a prune task does to its live object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PruneMode {
    /// Delete it.
    Delete,
    /// `Prune=confirm`: wait for the Application's `deletion-approved` annotation, then delete.
    RequiresConfirmation,
    /// Leave it; the result is `PruneSkipped`/`Succeeded` with this message ([`MSG_PRUNE_DISABLED`] or
    /// [`MSG_NO_PRUNE`]).
    Skipped(&'static str),
}

/// One step of a sync: apply `target` (when set) or prune `live`, in one phase and wave.
#[derive(Clone, Debug, PartialEq)]
pub struct SyncTask {
    /// The phase.
    pub phase: SyncPhase,
    /// The wave, after prune-wave mirroring, PruneLast and dependency adjustment.
    pub wave: i64,
    /// API group, empty for core kinds.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace: the target's, or the destination namespace; empty for cluster-scoped kinds.
    pub namespace: String,
    /// Name; generated for hooks that only have `generateName`.
    pub name: String,
    /// The object to apply (namespace filled in, hooks named and carrying [`HOOK_FINALIZER`]); `None` prunes.
    pub target: Option<Value>,
    /// The live object, if any.
    pub live: Option<Value>,
    /// Whether this is a hook.
    pub is_hook: bool,
    /// The hook's delete policies (empty for non-hooks).
    pub delete_policies: Vec<DeletePolicy>,
    /// `Some` for a prune task (`target` is `None`): what the prune does.
    pub prune: Option<PruneMode>,
}

impl SyncTask {
    /// Whether the task prunes its live object.
    pub fn is_prune(&self) -> bool {
        self.target.is_none()
    }

    /// The hook type recorded in results: the phase, for hooks.
    pub fn hook_type(&self) -> Option<HookType> {
        let hook_type = match self.phase {
            SyncPhase::PreSync => HookType::PreSync,
            SyncPhase::Sync => HookType::Sync,
            SyncPhase::PostSync => HookType::PostSync,
            SyncPhase::SyncFail => HookType::SyncFail,
        };
        self.is_hook.then_some(hook_type)
    }

    /// Whether the task is a hook with `policy`.
    pub fn has_delete_policy(&self, policy: DeletePolicy) -> bool {
        self.is_hook && self.delete_policies.contains(&policy)
    }

    /// The key results are stored under (`resourceResultKey`): `<group>/<kind>/<namespace>/<name>:<phase>`.
    pub fn result_key(&self) -> String {
        format!(
            "{}/{}/{}/{}:{}",
            self.group, self.kind, self.namespace, self.name, self.phase
        )
    }

    /// `<group>/<kind>/<name>`, as operation messages name a task.
    pub fn reference(&self) -> String {
        format!("{}/{}/{}", self.group, self.kind, self.name)
    }

    /// Whether the live object has a `deletionTimestamp`.
    pub fn live_deleting(&self) -> bool {
        self.live
            .as_ref()
            .and_then(|l| l.pointer("/metadata/deletionTimestamp"))
            .is_some_and(|t| !t.is_null())
    }
}

/// What [`sync_tasks`] needs besides the objects.
#[derive(Clone, Copy)]
pub struct TaskOptions<'a> {
    /// The Application's destination namespace.
    pub namespace: &'a str,
    /// Whether `(group, kind)` is namespaced; answer `true` for unknown kinds (`IsNamespacedOrUnknown`).
    pub namespaced: &'a dyn Fn(&str, &str) -> bool,
    /// The revision being synced; generated hook names use its first 7 characters.
    pub revision: &'a str,
    /// The operation's `startedAt` in Unix seconds; generated hook names use it.
    pub started_at_unix: i64,
    /// The operation's prune flag; without it prune tasks are skipped with [`MSG_PRUNE_DISABLED`].
    pub prune: bool,
    /// No hook tasks (apply strategy, or a selective sync).
    pub skip_hooks: bool,
    /// The Application's sync options: `PruneLast=true`, `Prune=false`, `Prune=confirm` are read here.
    pub sync_options: &'a [String],
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    /// A wave annotation that is not an integer.
    #[error("{object}: invalid {annotation} {value:?}: not an integer")]
    InvalidWave {
        /// The object, `<group>/<kind> <namespace>/<name>`.
        object: String,
        /// The annotation read.
        annotation: &'static str,
        /// Its value.
        value: String,
    },
    /// An object without `kind`.
    #[error("{side} object #{index} has no kind")]
    MissingKind {
        /// `target` or `live`.
        side: &'static str,
        /// Its index in the input.
        index: usize,
    },
    /// A non-hook object without `metadata.name`.
    #[error("{object} has no metadata.name")]
    MissingName {
        /// The object, `<group>/<kind> <namespace>/<name>`.
        object: String,
    },
}

// ---------------------------------------------------------------------------------------------------------
// Reading objects

fn str_at<'a>(obj: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(obj, |v, k| v.get(k))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.pointer("/metadata/annotations").and_then(|a| a.get(key))
}

/// An annotation's comma-separated values, trimmed, without empties and duplicates (`GetAnnotationCSVs`).
fn csv(obj: &Value, key: &str) -> Vec<String> {
    let text = annotation(obj, key).and_then(Value::as_str).unwrap_or("");
    let mut values: Vec<String> = Vec::new();
    for v in text.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        if !values.iter().any(|seen| seen == v) {
            values.push(v.to_string());
        }
    }
    values
}

/// The value of option `name` (`Name=value`) in a list of sync options.
fn option_value<'a>(options: impl IntoIterator<Item = &'a String>, name: &str) -> Option<&'a str> {
    options
        .into_iter()
        .find_map(|o| o.strip_prefix(name)?.strip_prefix('='))
}

fn group_of(obj: &Value) -> &str {
    str_at(obj, &["apiVersion"])
        .rsplit_once('/')
        .map_or("", |(g, _)| g)
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    group: String,
    kind: String,
    namespace: String,
    name: String,
}

impl Key {
    fn of(obj: &Value, side: &'static str, index: usize) -> Result<Self, TaskError> {
        let kind = str_at(obj, &["kind"]);
        if kind.is_empty() {
            return Err(TaskError::MissingKind { side, index });
        }
        Ok(Self {
            group: group_of(obj).to_string(),
            kind: kind.to_string(),
            namespace: str_at(obj, &["metadata", "namespace"]).to_string(),
            name: str_at(obj, &["metadata", "name"]).to_string(),
        })
    }

    fn describe(&self) -> String {
        format!("{}/{} {}/{}", self.group, self.kind, self.namespace, self.name)
    }

    fn require_name(&self) -> Result<(), TaskError> {
        match self.name.is_empty() {
            true => Err(TaskError::MissingName {
                object: self.describe(),
            }),
            false => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Hook annotations (`hook/hook.go`, `hook/helm/*.go`, `ignore/ignore.go`)

/// The hook types of an object: the valid Argo CD types, or when there are none the mapped Helm ones.
pub fn hook_types(obj: &Value) -> Vec<HookType> {
    let argo: Vec<HookType> = csv(obj, ANNOTATION_HOOK)
        .iter()
        .filter_map(|t| HookType::parse(t))
        .collect();
    if !argo.is_empty() {
        return argo;
    }
    csv(obj, HELM_HOOK)
        .iter()
        .filter_map(|t| HookType::from_helm(t))
        .collect()
}

/// `Skip` is the only hook type: the object is neither applied nor pruned.
pub fn is_skip(obj: &Value) -> bool {
    hook_types(obj) == [HookType::Skip]
}

/// Whether the object is a hook: it has the Argo CD annotation (and is not Skip-only), or a Helm hook
/// annotation other than `crd-install`.
pub fn is_hook(obj: &Value) -> bool {
    if annotation(obj, ANNOTATION_HOOK).is_some() {
        return !is_skip(obj);
    }
    annotation(obj, HELM_HOOK).is_some_and(|v| v.as_str() != Some("crd-install"))
}

/// A hook with no usable type (a Helm test hook, a misspelt type): dropped from the sync and from the
/// sync status (`ignore.Ignore`).
pub fn is_ignored(obj: &Value) -> bool {
    is_hook(obj) && hook_types(obj).is_empty()
}

/// The sync phases of a hook, in phase order, without duplicates.
fn hook_phases(obj: &Value) -> Vec<SyncPhase> {
    let mut phases: Vec<SyncPhase> = hook_types(obj)
        .into_iter()
        .filter_map(HookType::sync_phase)
        .collect();
    phases.sort();
    phases.dedup();
    phases
}

/// The delete policies of a hook: Argo CD's and Helm's together, BeforeHookCreation when none is valid.
pub fn delete_policies(obj: &Value) -> Vec<DeletePolicy> {
    let argo = csv(obj, ANNOTATION_HOOK_DELETE_POLICY)
        .into_iter()
        .filter_map(|p| DeletePolicy::parse(&p));
    let helm = csv(obj, HELM_HOOK_DELETE_POLICY)
        .into_iter()
        .filter_map(|p| DeletePolicy::from_helm(&p));
    let mut policies: Vec<DeletePolicy> = Vec::new();
    for p in argo.chain(helm) {
        if !policies.contains(&p) {
            policies.push(p);
        }
    }
    if policies.is_empty() {
        policies.push(DeletePolicy::BeforeHookCreation);
    }
    policies
}

/// The wave: `sync-wave`, else `helm.sh/hook-weight`, else 0. A value that is not an integer is an error.
fn wave_of(obj: &Value, key: &Key) -> Result<i64, TaskError> {
    for name in [ANNOTATION_SYNC_WAVE, HELM_HOOK_WEIGHT] {
        if let Some(raw) = annotation(obj, name) {
            let parsed = raw.as_str().and_then(|s| s.parse::<i64>().ok());
            return parsed.ok_or_else(|| TaskError::InvalidWave {
                object: key.describe(),
                annotation: name,
                value: raw.as_str().map_or_else(|| raw.to_string(), str::to_string),
            });
        }
    }
    Ok(0)
}

// ---------------------------------------------------------------------------------------------------------
// Task generation (`getSyncTasks`, `Reconcile`)

/// The sorted sync tasks of `targets` (rendered manifests) and `lives` (the Application's live managed
/// objects): one Sync task per non-hook target (matched with its live object by group, kind, namespace and
/// name), one task per phase per hook target, a prune task per unmatched live object that is neither a hook
/// nor Skip. Ignored hooks and Skip objects produce no task.
pub fn sync_tasks(
    targets: &[Value],
    lives: &[Value],
    options: &TaskOptions<'_>,
) -> Result<Vec<SyncTask>, TaskError> {
    let lives = lives
        .iter()
        .enumerate()
        .map(|(i, live)| Ok((Key::of(live, "live", i)?, live)))
        .collect::<Result<Vec<_>, TaskError>>()?;
    let mut consumed = vec![false; lives.len()];
    let mut tasks = Vec::new();
    let mut hooks = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        if is_ignored(target) {
            continue;
        }
        let (key, target) = place_target(target, index, options)?;
        if is_hook(&target) {
            hooks.push((key, target));
            continue;
        }
        let live = take_live(&lives, &mut consumed, &key);
        tasks.extend(resource_task(key, target, live)?);
    }
    for ((key, live), _) in lives.iter().zip(&consumed).filter(|(_, used)| !**used) {
        tasks.extend(prune_task(key, live, options)?);
    }
    if !options.skip_hooks {
        for (key, target) in hooks {
            tasks.extend(hook_tasks(key, target, &lives, options)?);
        }
    }
    mirror_prune_waves(&mut tasks);
    move_prune_last(&mut tasks, options);
    sort_tasks(&mut tasks);
    Ok(tasks)
}

/// A target's key and object: namespaced kinds without a namespace get the destination namespace (in the
/// object too); cluster-scoped kinds are keyed without one.
fn place_target(target: &Value, index: usize, options: &TaskOptions<'_>) -> Result<(Key, Value), TaskError> {
    let mut key = Key::of(target, "target", index)?;
    let mut target = target.clone();
    if !(options.namespaced)(&key.group, &key.kind) {
        key.namespace.clear();
    } else if key.namespace.is_empty() && !options.namespace.is_empty() {
        key.namespace = options.namespace.to_string();
        if let Some(meta) = target.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), Value::String(key.namespace.clone()));
        }
    }
    Ok((key, target))
}

fn take_live(lives: &[(Key, &Value)], consumed: &mut [bool], key: &Key) -> Option<Value> {
    let i = lives
        .iter()
        .zip(consumed.iter())
        .position(|((k, _), used)| !used && k == key)?;
    consumed[i] = true;
    Some(lives[i].1.clone())
}

/// The live object of a hook: same group, kind and name, in its namespace (or cluster-scoped).
fn find_live(lives: &[(Key, &Value)], key: &Key) -> Option<Value> {
    lives
        .iter()
        .find(|(k, _)| {
            k.group == key.group
                && k.kind == key.kind
                && k.name == key.name
                && (k.namespace.is_empty() || k.namespace == key.namespace)
        })
        .map(|(_, live)| (*live).clone())
}

fn resource_task(key: Key, target: Value, live: Option<Value>) -> Result<Option<SyncTask>, TaskError> {
    key.require_name()?;
    if is_skip(&target) {
        return Ok(None);
    }
    let wave = wave_of(&target, &key)?;
    Ok(Some(new_task(key, SyncPhase::Sync, wave, Some(target), live)))
}

fn prune_task(key: &Key, live: &Value, options: &TaskOptions<'_>) -> Result<Option<SyncTask>, TaskError> {
    if is_hook(live) || is_skip(live) {
        return Ok(None);
    }
    key.require_name()?;
    let wave = wave_of(live, key)?;
    let mut task = new_task(key.clone(), SyncPhase::Sync, wave, None, Some(live.clone()));
    task.prune = Some(prune_mode(live, options));
    Ok(Some(task))
}

/// The prune flag first, then the object's `Prune=` option, then the Application's.
fn prune_mode(live: &Value, options: &TaskOptions<'_>) -> PruneMode {
    if !options.prune {
        return PruneMode::Skipped(MSG_PRUNE_DISABLED);
    }
    let own = csv(live, ANNOTATION_SYNC_OPTIONS);
    match option_value(&own, "Prune").or_else(|| option_value(options.sync_options, "Prune")) {
        Some("false") => PruneMode::Skipped(MSG_NO_PRUNE),
        Some("confirm") => PruneMode::RequiresConfirmation,
        _ => PruneMode::Delete,
    }
}

fn hook_tasks(
    key: Key,
    target: Value,
    lives: &[(Key, &Value)],
    options: &TaskOptions<'_>,
) -> Result<Vec<SyncTask>, TaskError> {
    let wave = wave_of(&target, &key)?;
    let policies = delete_policies(&target);
    let mut tasks = Vec::new();
    for phase in hook_phases(&target) {
        let mut obj = target.clone();
        let mut key = key.clone();
        if key.name.is_empty() {
            key.name = generated_hook_name(&obj, phase, options);
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("name".into(), Value::String(key.name.clone()));
            }
        }
        add_hook_finalizer(&mut obj);
        let live = find_live(lives, &key);
        let mut task = new_task(key, phase, wave, Some(obj), live);
        task.is_hook = true;
        task.delete_policies = policies.clone();
        tasks.push(task);
    }
    Ok(tasks)
}

/// `<generateName>` + lower(`<rev[0:7]>-<phase>-<startedAtUnix>`); a revision shorter than 8 is used whole.
pub fn generated_hook_name(obj: &Value, phase: SyncPhase, options: &TaskOptions<'_>) -> String {
    let revision: String = match options.revision.chars().count() {
        n if n >= 8 => options.revision.chars().take(7).collect(),
        _ => options.revision.to_string(),
    };
    let postfix = format!("{revision}-{phase}-{}", options.started_at_unix).to_lowercase();
    format!("{}{postfix}", str_at(obj, &["metadata", "generateName"]))
}

fn add_hook_finalizer(obj: &mut Value) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let finalizers = meta
        .entry("finalizers")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Some(list) = finalizers.as_array_mut()
        && !list.iter().any(|f| f.as_str() == Some(HOOK_FINALIZER))
    {
        list.push(Value::String(HOOK_FINALIZER.into()));
    }
}

fn new_task(key: Key, phase: SyncPhase, wave: i64, target: Option<Value>, live: Option<Value>) -> SyncTask {
    SyncTask {
        phase,
        wave,
        group: key.group,
        kind: key.kind,
        namespace: key.namespace,
        name: key.name,
        target,
        live,
        is_hook: false,
        delete_policies: Vec::new(),
        prune: None,
    }
}

/// The distinct prune waves, sorted, are swapped symmetrically so that later creation waves are pruned first.
fn mirror_prune_waves(tasks: &mut [SyncTask]) {
    let mut waves: Vec<i64> = tasks.iter().filter(|t| t.is_prune()).map(|t| t.wave).collect();
    waves.sort_unstable();
    waves.dedup();
    let last = waves.len().saturating_sub(1);
    for task in tasks.iter_mut().filter(|t| t.is_prune()) {
        if let Ok(i) = waves.binary_search(&task.wave) {
            task.wave = waves[last - i];
        }
    }
}

/// PruneLast (app option or the live object's): the prune moves to (last Sync-phase wave, at least 0) + 1.
fn move_prune_last(tasks: &mut [SyncTask], options: &TaskOptions<'_>) {
    let app_wide = options.sync_options.iter().any(|o| o == "PruneLast=true");
    let last = tasks
        .iter()
        .filter(|t| t.phase == SyncPhase::Sync)
        .map(|t| t.wave)
        .fold(0, i64::max);
    for task in tasks.iter_mut().filter(|t| t.is_prune()) {
        let own = task.live.as_ref().is_some_and(|l| {
            csv(l, ANNOTATION_SYNC_OPTIONS)
                .iter()
                .any(|o| o == "PruneLast=true")
        });
        if app_wide || own {
            task.wave = last.saturating_add(1);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Ordering (`syncTasks.Less`, `Sort`, `adjustDeps`)

/// A kind's rank: listed kinds are negative in list order, every other kind is 0 (last).
pub fn kind_order(kind: &str) -> i64 {
    let len = KIND_ORDER.len() as i64;
    KIND_ORDER
        .iter()
        .position(|k| *k == kind)
        .map_or(0, |i| i as i64 - len)
}

/// `syncTasks.Less`: phase, wave, kind order, name.
pub fn compare_tasks(a: &SyncTask, b: &SyncTask) -> Ordering {
    a.phase
        .order()
        .cmp(&b.phase.order())
        .then(a.wave.cmp(&b.wave))
        .then(kind_order(&a.kind).cmp(&kind_order(&b.kind)))
        .then_with(|| a.name.cmp(&b.name))
}

/// Sorts (stable, so equal tasks keep their input order), then pulls each Namespace in front of the first
/// task in it and each CRD in front of the first object of its group/kind.
pub fn sort_tasks(tasks: &mut Vec<SyncTask>) {
    tasks.sort_by(compare_tasks);
    adjust_deps(tasks, namespace_dependency, namespace_reference);
    adjust_deps(tasks, crd_dependency, crd_reference);
}

/// `adjustDeps`: a dependency found after the first task referring to it moves in front of that task and
/// takes its phase and wave. Prune tasks neither move nor refer.
fn adjust_deps(
    tasks: &mut Vec<SyncTask>,
    is_dependency: fn(&SyncTask) -> Option<String>,
    refers_to: fn(&SyncTask) -> Option<String>,
) {
    let mut first_use: HashMap<String, usize> = HashMap::new();
    for i in 0..tasks.len() {
        if tasks[i].is_prune() {
            continue;
        }
        if let Some(dependency) = is_dependency(&tasks[i]) {
            let Some(&at) = first_use.get(&dependency) else {
                continue;
            };
            let mut task = tasks.remove(i);
            task.phase = tasks[at].phase;
            task.wave = tasks[at].wave;
            tasks.insert(at, task);
            first_use
                .values_mut()
                .filter(|index| **index >= at)
                .for_each(|index| *index += 1);
        } else if let Some(reference) = refers_to(&tasks[i]) {
            first_use.entry(reference).or_insert(i);
        }
    }
}

fn namespace_dependency(task: &SyncTask) -> Option<String> {
    (task.kind == "Namespace" && task.group.is_empty()).then(|| task.name.clone())
}

fn namespace_reference(task: &SyncTask) -> Option<String> {
    (!task.namespace.is_empty()).then(|| task.namespace.clone())
}

fn crd_dependency(task: &SyncTask) -> Option<String> {
    if task.kind != "CustomResourceDefinition" || task.group != "apiextensions.k8s.io" {
        return None;
    }
    let spec = task.target.as_ref()?.get("spec")?;
    let group = spec.get("group")?.as_str()?;
    let kind = spec.pointer("/names/kind")?.as_str()?;
    Some(format!("{group}/{kind}"))
}

fn crd_reference(task: &SyncTask) -> Option<String> {
    Some(format!("{}/{}", task.group, task.kind))
}

// ---------------------------------------------------------------------------------------------------------
// Results

/// A resource result's code (`common.ResultCode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultCode {
    /// Applied.
    Synced,
    /// The apply, prune or a later check failed.
    SyncFailed,
    /// Deleted.
    Pruned,
    /// Left in place.
    PruneSkipped,
}

/// A task's phase (`common.OperationPhase` without the operation-only `Terminating`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationPhase {
    /// Applied, waiting for completion or health.
    Running,
    /// Done.
    Succeeded,
    /// Failed.
    Failed,
    /// Could not be run or observed.
    Error,
}

/// A task's result so far. `phase: None` means not started (upstream's empty phase, `pending()`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TaskResult {
    /// The result code, once there is one.
    pub status: Option<ResultCode>,
    /// The task's phase; `None` while not started.
    pub phase: Option<OperationPhase>,
    /// The latest non-empty message.
    pub message: String,
}

impl TaskResult {
    /// An apply that succeeded: `Synced`/`Running`.
    pub fn applied(message: impl Into<String>) -> Self {
        Self::with(Some(ResultCode::Synced), OperationPhase::Running, message)
    }

    /// An apply that failed: `SyncFailed`/`Failed`.
    pub fn apply_failed(message: impl Into<String>) -> Self {
        Self::with(Some(ResultCode::SyncFailed), OperationPhase::Failed, message)
    }

    /// A prune that deleted: `Pruned`/`Succeeded` "pruned".
    pub fn pruned() -> Self {
        Self::with(Some(ResultCode::Pruned), OperationPhase::Succeeded, "pruned")
    }

    /// A prune that was skipped ([`PruneMode::Skipped`]'s message): `PruneSkipped`/`Succeeded`.
    pub fn prune_skipped(message: impl Into<String>) -> Self {
        Self::with(Some(ResultCode::PruneSkipped), OperationPhase::Succeeded, message)
    }

    /// A prune whose delete failed: `SyncFailed`/`Failed`.
    pub fn prune_failed(message: impl Into<String>) -> Self {
        Self::apply_failed(message)
    }

    /// A BeforeHookCreation delete (or a hook finalizer removal) that failed: `Error`, status kept.
    pub fn delete_failed(previous: &TaskResult, message: impl Into<String>) -> Self {
        Self::with(previous.status, OperationPhase::Error, message)
    }

    fn with(status: Option<ResultCode>, phase: OperationPhase, message: impl Into<String>) -> Self {
        Self {
            status,
            phase: Some(phase),
            message: message.into(),
        }
    }

    /// A copy with a new phase; the message is replaced only by a non-empty one (`setResourceResult`).
    fn updated(&self, status: Option<ResultCode>, phase: OperationPhase, message: &str) -> Self {
        Self {
            status,
            phase: Some(phase),
            message: if message.is_empty() {
                self.message.clone()
            } else {
                message.to_string()
            },
        }
    }

    /// Not started yet.
    pub fn is_pending(&self) -> bool {
        self.phase.is_none()
    }

    /// Running.
    pub fn is_running(&self) -> bool {
        self.phase == Some(OperationPhase::Running)
    }

    /// Succeeded, Failed or Error.
    pub fn is_completed(&self) -> bool {
        matches!(
            self.phase,
            Some(OperationPhase::Succeeded | OperationPhase::Failed | OperationPhase::Error)
        )
    }

    /// Succeeded.
    pub fn is_successful(&self) -> bool {
        self.phase == Some(OperationPhase::Succeeded)
    }
}

/// A task with its result so far and the health of its live object as the caller computed it
/// (`None`: no health check, or no live object).
#[derive(Clone, Debug, PartialEq)]
pub struct TaskState {
    /// The task, from this reconcile's [`sync_tasks`] (so `task.live` is fresh).
    pub task: SyncTask,
    /// Its stored result.
    pub result: TaskResult,
    /// `(status, message)` of the live object: `Healthy`, `Progressing`, `Suspended`, `Degraded`, `Missing`,
    /// `Unknown`.
    pub health: Option<(String, String)>,
    /// For ApplyOutOfSyncOnly: whether the diff found the object modified (`None`: unknown).
    pub modified: Option<bool>,
}

impl TaskState {
    /// A task with no result, health or diff yet.
    pub fn new(task: SyncTask) -> Self {
        Self {
            task,
            result: TaskResult::default(),
            health: None,
            modified: None,
        }
    }
}

/// Operation-wide inputs of the decisions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepOptions {
    /// The Application carries a `deletion-approved` annotation newer than the operation.
    pub prune_confirmed: bool,
    /// `ApplyOutOfSyncOnly=true`: unmodified non-hook objects are not applied.
    pub apply_out_of_sync_only: bool,
}

// ---------------------------------------------------------------------------------------------------------
// Decisions

/// The tasks of one phase and wave (or the pending SyncFail hooks), in execution order:
/// 1. `release_finalizers`: hooks left by an earlier sync lose [`HOOK_FINALIZER`];
/// 2. `prune`, in parallel; if one fails, stop (the run failed);
/// 3. `delete_before_creation`, in parallel; when there are any, nothing is applied this round (the run
///    is pending until the old hooks are gone);
/// 4. `apply`: each group (consecutive tasks of one kind) in parallel, the groups in order, all of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaveRun {
    /// The phase run.
    pub phase: SyncPhase,
    /// The wave run.
    pub wave: i64,
    /// Step 1.
    pub release_finalizers: Vec<usize>,
    /// Step 2.
    pub prune: Vec<usize>,
    /// Step 3.
    pub delete_before_creation: Vec<usize>,
    /// Step 4.
    pub apply: Vec<Vec<usize>>,
    /// The last (phase, wave) of the sync (the `SyncWaveHook`'s `final` argument).
    pub final_wave: bool,
    /// No pending task follows and this wave has no hook: if the run succeeds, so does the operation,
    /// even if the objects later degrade.
    pub completes: bool,
}

impl WaveRun {
    /// The tasks this run touches, in execution order: prunes, deletions, applies (a failed deletion gets
    /// an `Error` result).
    pub fn tasks(&self) -> Vec<usize> {
        self.prune
            .iter()
            .chain(&self.delete_before_creation)
            .chain(self.apply.iter().flatten())
            .copied()
            .collect()
    }
}

/// What the controller does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Run these tasks (the operation stays Running with "one or more tasks are running"), record the
    /// results, then ask [`after_wave`].
    RunWave(WaveRun),
    /// The operation stays Running with this message; nothing to do until something changes.
    Wait {
        /// The operation message.
        message: String,
    },
    /// Delete these hooks (HookSucceeded), then the operation Succeeded.
    Succeeded {
        /// The operation message.
        message: String,
        /// Hooks to delete.
        delete_hooks: Vec<usize>,
    },
    /// Delete these hooks (HookFailed, or running hooks on terminate), then the operation Failed.
    Failed {
        /// The operation message.
        message: String,
        /// Hooks to delete.
        delete_hooks: Vec<usize>,
    },
    /// The sync failed and has SyncFail hooks to start: delete `delete_hooks`, run `run` (no
    /// [`after_wave`]), and keep the operation Running with `message` until they complete.
    RunSyncFail {
        /// The SyncFail hooks to start.
        run: WaveRun,
        /// The operation message.
        message: String,
        /// Hooks to delete now.
        delete_hooks: Vec<usize>,
    },
}

/// A hook's phase from its live object's health (`getOperationPhase`): Healthy ⇒ Succeeded,
/// Degraded/Unknown ⇒ Failed, Progressing/Suspended ⇒ Running, no health (or any other status) ⇒
/// Succeeded "`<name> created`".
pub fn hook_phase(health: Option<&(String, String)>, name: &str) -> (OperationPhase, String) {
    let created = format!("{name} created");
    match health.map(|(s, m)| (s.as_str(), m)) {
        Some(("Healthy", m)) => (OperationPhase::Succeeded, m.clone()),
        Some(("Degraded" | "Unknown", m)) => (OperationPhase::Failed, m.clone()),
        Some(("Progressing" | "Suspended", m)) => (OperationPhase::Running, m.clone()),
        _ => (OperationPhase::Succeeded, created),
    }
}

/// A running non-hook's result from health: Healthy ⇒ Succeeded, Degraded ⇒ Failed, no health ⇒
/// Succeeded (message kept), anything else ⇒ unchanged.
fn resource_result(result: &TaskResult, health: Option<&(String, String)>) -> TaskResult {
    match health.map(|(s, m)| (s.as_str(), m.as_str())) {
        None => result.updated(result.status, OperationPhase::Succeeded, ""),
        Some(("Healthy", m)) => result.updated(result.status, OperationPhase::Succeeded, m),
        Some(("Degraded", m)) => result.updated(result.status, OperationPhase::Failed, m),
        Some(_) => result.clone(),
    }
}

/// Step 2 of `Sync()`: running tasks with a live object take their phase from its health.
fn refresh_health(tasks: &[TaskState]) -> Vec<TaskResult> {
    tasks
        .iter()
        .map(|s| match (s.result.is_running(), &s.task.live) {
            (true, Some(_)) if s.task.is_hook => {
                let (phase, message) = hook_phase(s.health.as_ref(), &s.task.name);
                s.result.updated(s.result.status, phase, &message)
            }
            (true, Some(_)) => resource_result(&s.result, s.health.as_ref()),
            _ => s.result.clone(),
        })
        .collect()
}

/// The results to store this reconcile: health applied to running tasks, and a task that is waited for
/// (see [`next_step`]) but whose live object is gone marked `SyncFailed`/`Error` "`Resource
/// <group>/<kind>/<name> is missing, it might have been deleted`". The caller must pass fresh live objects
/// (a GET for a running task without one), as upstream re-reads the object before declaring it missing.
pub fn observe(tasks: &[TaskState]) -> Vec<TaskResult> {
    let mut results = refresh_health(tasks);
    let view = View {
        tasks,
        results: results.clone(),
    };
    for i in waited_for(&view) {
        if tasks[i].task.live.is_none() {
            let message = format!(
                "Resource {} is missing, it might have been deleted",
                tasks[i].task.reference()
            );
            results[i] = results[i].updated(Some(ResultCode::SyncFailed), OperationPhase::Error, &message);
        }
    }
    results
}

/// The tasks to validate with a client-side dry run before anything runs (step 1 of `Sync()`), or `None`
/// once the operation has started (a task has a result). Any dry-run failure fails the operation with
/// [`MSG_DRY_RUN_FAILED`]; prune tasks are no-ops in a dry run.
pub fn dry_run_tasks(tasks: &[TaskState], options: &StepOptions) -> Option<Vec<usize>> {
    if tasks.iter().any(|s| s.result != TaskResult::default()) {
        return None;
    }
    Some(
        (0..tasks.len())
            .filter(|&i| applies_out_of_sync(&tasks[i], options))
            .collect(),
    )
}

/// The next step of a running operation (`Sync()` after the dry run), from the tasks in [`sync_tasks`]
/// order with their stored results. In order: wait for running tasks, wait for pruned objects still being
/// deleted, fail (maybe through SyncFail hooks) when a task completed unsuccessfully, succeed when nothing
/// is pending, else run the first pending (phase, wave).
pub fn next_step(tasks: &[TaskState], options: &StepOptions) -> Step {
    let view = View {
        tasks,
        results: refresh_health(tasks),
    };
    wait_for_running(&view, options)
        .or_else(|| wait_for_pruned_deletion(&view, options))
        .or_else(|| fail_on_unsuccessful(&view, options))
        .unwrap_or_else(|| run_first_pending_wave(&view, options))
}

/// Decides after the caller ran `run` and recorded its results in `tasks` (the rest of `Sync()`): a failed
/// run fails the operation (through SyncFail hooks, and only once the wave's running tasks are done); a
/// pending one waits for the deletions; a successful one succeeds when it [`WaveRun::completes`], else
/// waits for the wave.
pub fn after_wave(tasks: &[TaskState], run: &WaveRun, options: &StepOptions) -> Step {
    let view = View {
        tasks,
        results: tasks.iter().map(|s| s.result.clone()).collect(),
    };
    let mut ran = run.tasks();
    ran.sort_unstable();
    if ran
        .iter()
        .any(|&i| view.result(i).is_completed() && !view.result(i).is_successful())
    {
        return after_failed_wave(&view, &ran, options);
    }
    if !run.delete_before_creation.is_empty() {
        let deleting: Vec<usize> = run.delete_before_creation.clone();
        return Step::Wait {
            message: running_message(&view, &deleting, true, options),
        };
    }
    if run.completes {
        let delete_hooks = view.hooks_to_delete(DeletePolicy::HookSucceeded);
        return Step::Succeeded {
            message: MSG_ALL_TASKS_RUN.into(),
            delete_hooks,
        };
    }
    Step::Wait {
        message: running_message(&view, &ran, false, options),
    }
}

/// Terminates the operation: running hooks that are still running by their health, or that have the
/// HookFailed policy, are deleted (after losing their finalizer); the operation Failed "Operation terminated".
pub fn terminate(tasks: &[TaskState]) -> Step {
    let delete_hooks = (0..tasks.len())
        .filter(|&i| {
            let s = &tasks[i];
            let still_running = hook_phase(s.health.as_ref(), &s.task.name).0 == OperationPhase::Running;
            s.task.is_hook
                && s.result.is_running()
                && s.task.live.is_some()
                && (still_running || s.task.has_delete_policy(DeletePolicy::HookFailed))
        })
        .collect();
    Step::Failed {
        message: MSG_TERMINATED.into(),
        delete_hooks,
    }
}

/// Completed hooks whose live object still carries [`HOOK_FINALIZER`]: the caller removes it.
pub fn hooks_to_release(tasks: &[TaskState]) -> Vec<usize> {
    let results = observe(tasks);
    (0..tasks.len())
        .filter(|&i| {
            let live = tasks[i].task.live.as_ref();
            let finalized = live
                .and_then(|l| l.pointer("/metadata/finalizers"))
                .and_then(Value::as_array)
                .is_some_and(|f| f.iter().any(|f| f.as_str() == Some(HOOK_FINALIZER)));
            tasks[i].task.is_hook && results[i].is_completed() && finalized
        })
        .collect()
}

struct View<'a> {
    tasks: &'a [TaskState],
    results: Vec<TaskResult>,
}

impl View<'_> {
    fn task(&self, i: usize) -> &SyncTask {
        &self.tasks[i].task
    }

    fn result(&self, i: usize) -> &TaskResult {
        &self.results[i]
    }

    fn indices(&self, keep: impl Fn(usize) -> bool) -> Vec<usize> {
        (0..self.tasks.len()).filter(|&i| keep(i)).collect()
    }

    /// A pending hook with a live object and BeforeHookCreation (`deleteBeforeCreation`).
    fn deletes_before_creation(&self, i: usize) -> bool {
        let t = self.task(i);
        t.live.is_some()
            && self.result(i).is_pending()
            && t.has_delete_policy(DeletePolicy::BeforeHookCreation)
    }

    /// Hooks with a live object, not running, with `policy` (`hooksPendingDeletion*`).
    fn hooks_to_delete(&self, policy: DeletePolicy) -> Vec<usize> {
        self.indices(|i| {
            let t = self.task(i);
            t.is_hook && t.live.is_some() && !self.result(i).is_running() && t.has_delete_policy(policy)
        })
    }

    /// More than one phase or wave across all tasks (`multiStep`, SyncFail hooks included).
    fn multi_step(&self) -> bool {
        match (self.tasks.first(), self.tasks.last()) {
            (Some(a), Some(b)) => a.task.phase != b.task.phase || a.task.wave != b.task.wave,
            _ => false,
        }
    }
}

/// Running tasks that are waited for: all of them in a multi-step sync, only hooks otherwise.
fn waited_for(view: &View<'_>) -> Vec<usize> {
    let multi_step = view.multi_step();
    view.indices(|i| (multi_step || view.task(i).is_hook) && view.result(i).is_running())
}

/// Step 3: wait while a waited-for task runs.
fn wait_for_running(view: &View<'_>, options: &StepOptions) -> Option<Step> {
    let running = waited_for(view);
    (!running.is_empty()).then(|| Step::Wait {
        message: running_message(view, &running, false, options),
    })
}

/// Step 4: wait while a pruned object still has a deletionTimestamp.
fn wait_for_pruned_deletion(view: &View<'_>, options: &StepOptions) -> Option<Step> {
    let deleting =
        view.indices(|i| view.result(i).status == Some(ResultCode::Pruned) && view.task(i).live_deleting());
    (!deleting.is_empty()).then(|| Step::Wait {
        message: running_message(view, &deleting, true, options),
    })
}

/// Step 5: a completed unsuccessful task (SyncFail hooks aside) fails the sync; HookFailed hooks go.
fn fail_on_unsuccessful(view: &View<'_>, options: &StepOptions) -> Option<Step> {
    let regular = view.indices(|i| view.task(i).phase != SyncPhase::SyncFail);
    if !regular
        .iter()
        .any(|&i| view.result(i).is_completed() && !view.result(i).is_successful())
    {
        return None;
    }
    let sync_failed: Vec<usize> = regular
        .into_iter()
        .filter(|&i| view.result(i).status == Some(ResultCode::SyncFailed))
        .collect();
    let delete_hooks = view.hooks_to_delete(DeletePolicy::HookFailed);
    Some(sync_fail_phase(
        view,
        &sync_failed,
        MSG_TASKS_UNSUCCESSFUL,
        delete_hooks,
        options,
    ))
}

/// `executeSyncFailPhase`: with no SyncFail hooks, or all of them completed, the operation Failed (the
/// message extended if a SyncFail hook failed to apply); otherwise the pending ones start.
fn sync_fail_phase(
    view: &View<'_>,
    sync_failed: &[usize],
    message: &str,
    delete_hooks: Vec<usize>,
    options: &StepOptions,
) -> Step {
    let mut error = with_reasons(view, message, sync_failed);
    let sync_fail = view.indices(|i| view.task(i).phase == SyncPhase::SyncFail);
    if sync_fail.iter().all(|&i| view.result(i).is_completed()) {
        let hooks_failed: Vec<usize> = sync_fail
            .into_iter()
            .filter(|&i| view.result(i).status == Some(ResultCode::SyncFailed))
            .collect();
        if !hooks_failed.is_empty() {
            error = format!(
                "{error}\n{}",
                with_reasons(view, MSG_SYNC_FAIL_HOOKS_FAILED, &hooks_failed)
            );
        }
        return Step::Failed {
            message: error,
            delete_hooks,
        };
    }
    let pending: Vec<usize> = sync_fail
        .into_iter()
        .filter(|&i| view.result(i).is_pending())
        .collect();
    if pending.is_empty() {
        let unfinished =
            view.indices(|i| view.task(i).phase == SyncPhase::SyncFail && view.result(i).is_running());
        return Step::Wait {
            message: running_message(view, &unfinished, false, options),
        };
    }
    let run = plan_run(view, &pending, false, false);
    Step::RunSyncFail {
        run,
        message: running_message(view, &pending, false, options),
        delete_hooks,
    }
}

/// `<message>, reason: <distinct task messages joined by ",">` when there are failed tasks.
fn with_reasons(view: &View<'_>, message: &str, failed: &[usize]) -> String {
    let mut reasons: Vec<&str> = Vec::new();
    for &i in failed {
        let m = view.result(i).message.as_str();
        if !reasons.contains(&m) {
            reasons.push(m);
        }
    }
    match reasons.is_empty() {
        true => message.to_string(),
        false => format!("{message}, reason: {}", reasons.join(",")),
    }
}

/// ApplyOutOfSyncOnly keeps hooks and every object the diff did not find unmodified.
fn applies_out_of_sync(state: &TaskState, options: &StepOptions) -> bool {
    let t = &state.task;
    !options.apply_out_of_sync_only
        || t.is_hook
        || !(t.target.is_some() && t.live.is_some() && state.modified == Some(false))
}

/// Steps 6-8: succeed when nothing is pending, else run the first pending (phase, wave).
fn run_first_pending_wave(view: &View<'_>, options: &StepOptions) -> Step {
    let pending = view.indices(|i| {
        view.task(i).phase != SyncPhase::SyncFail
            && view.result(i).is_pending()
            && applies_out_of_sync(&view.tasks[i], options)
    });
    let (Some(&first), Some(&last)) = (pending.first(), pending.last()) else {
        let delete_hooks = view.hooks_to_delete(DeletePolicy::HookSucceeded);
        return Step::Succeeded {
            message: MSG_NO_MORE_TASKS.into(),
            delete_hooks,
        };
    };
    let (phase, wave) = (view.task(first).phase, view.task(first).wave);
    let in_wave = |i: usize| view.task(i).phase == phase && view.task(i).wave == wave;
    let (current, remaining): (Vec<usize>, Vec<usize>) = pending.iter().partition(|&&i| in_wave(i));
    if needs_prune_confirmation(view, &current, options) {
        let waiting: Vec<usize> = current
            .iter()
            .copied()
            .filter(|&i| view.deletes_before_creation(i) || view.task(i).is_prune())
            .collect();
        return Step::Wait {
            message: running_message(view, &waiting, true, options),
        };
    }
    let completes = remaining.is_empty() && !current.iter().any(|&i| view.task(i).is_hook);
    Step::RunWave(plan_run(view, &current, in_wave(last), completes))
}

/// A prune in the wave waits for the `deletion-approved` annotation.
fn needs_prune_confirmation(view: &View<'_>, wave: &[usize], options: &StepOptions) -> bool {
    !options.prune_confirmed
        && wave
            .iter()
            .any(|&i| view.task(i).prune == Some(PruneMode::RequiresConfirmation))
}

/// `runTasks` as a plan: finalizers of old hooks, prunes, BeforeHookCreation deletions, then the applies
/// grouped by consecutive kind (none while deletions are pending).
fn plan_run(view: &View<'_>, tasks: &[usize], final_wave: bool, completes: bool) -> WaveRun {
    let first = view.task(tasks[0]);
    let (prune, creates): (Vec<usize>, Vec<usize>) = tasks.iter().partition(|&&i| view.task(i).is_prune());
    let delete_before_creation: Vec<usize> = creates
        .iter()
        .copied()
        .filter(|&i| view.deletes_before_creation(i))
        .collect();
    let mut apply: Vec<Vec<usize>> = Vec::new();
    if delete_before_creation.is_empty() {
        for i in creates.iter().copied() {
            match apply.last_mut() {
                Some(group) if view.task(group[0]).kind == view.task(i).kind => group.push(i),
                _ => apply.push(vec![i]),
            }
        }
    }
    WaveRun {
        phase: first.phase,
        wave: first.wave,
        release_finalizers: creates
            .iter()
            .copied()
            .filter(|&i| view.task(i).is_hook && view.task(i).live.is_some() && view.result(i).is_pending())
            .collect(),
        prune,
        delete_before_creation,
        apply,
        final_wave,
        completes,
    }
}

/// After a failed run: with tasks of the wave still running, start the SyncFail hooks (if any) and wait;
/// otherwise fail now (HookFailed hooks deleted only once nothing more runs).
fn after_failed_wave(view: &View<'_>, ran: &[usize], options: &StepOptions) -> Step {
    let sync_failed: Vec<usize> = ran
        .iter()
        .copied()
        .filter(|&i| view.result(i).status == Some(ResultCode::SyncFailed))
        .collect();
    let running: Vec<usize> = ran
        .iter()
        .copied()
        .filter(|&i| view.result(i).is_running())
        .collect();
    if running.is_empty() {
        let delete_hooks = view.hooks_to_delete(DeletePolicy::HookFailed);
        return match sync_fail_phase(view, &sync_failed, MSG_FAILED_TO_APPLY, delete_hooks, options) {
            Step::RunSyncFail { run, message, .. } => Step::RunSyncFail {
                run,
                message,
                delete_hooks: Vec::new(),
            },
            step => step,
        };
    }
    let sync_fail = view.indices(|i| view.task(i).phase == SyncPhase::SyncFail);
    let mut waiting = running;
    if sync_fail.iter().any(|&i| !view.result(i).is_completed()) {
        waiting.extend(&sync_fail);
        if let Step::RunSyncFail { run, .. } =
            sync_fail_phase(view, &sync_failed, MSG_FAILED_TO_APPLY, Vec::new(), options)
        {
            let message = running_message(view, &waiting, false, options);
            return Step::RunSyncFail {
                run,
                message,
                delete_hooks: Vec::new(),
            };
        }
    }
    Step::Wait {
        message: running_message(view, &waiting, false, options),
    }
}

/// `setRunningPhase`: "waiting for completion of hook X", "waiting for healthy state of X", "waiting for
/// deletion of [hook] X" or "waiting for pruning confirmation of X", then " and N more hooks|resources".
fn running_message(
    view: &View<'_>,
    tasks: &[usize],
    pending_deletion: bool,
    options: &StepOptions,
) -> String {
    let (hooks, resources): (Vec<usize>, Vec<usize>) = tasks.iter().partition(|&&i| view.task(i).is_hook);
    let Some(&first) = hooks.first().or(resources.first()) else {
        return String::new();
    };
    let (mut reason, what) = match (hooks.is_empty(), resources.is_empty()) {
        (true, _) => ("healthy state of", "resources"),
        (false, true) => ("completion of hook", "hooks"),
        (false, false) => ("completion of hook", "resources"),
    };
    if pending_deletion {
        reason = if hooks.is_empty() {
            "deletion of"
        } else {
            "deletion of hook"
        };
    }
    let (mut first, mut more) = (first, tasks.len() - 1);
    let confirm: Vec<usize> = match options.prune_confirmed {
        true => Vec::new(),
        false => tasks
            .iter()
            .copied()
            .filter(|&i| view.task(i).prune == Some(PruneMode::RequiresConfirmation))
            .collect(),
    };
    if let Some(&c) = confirm.first() {
        (reason, first, more) = ("pruning confirmation of", c, confirm.len() - 1);
    }
    let message = format!("waiting for {reason} {}", view.task(first).reference());
    match more {
        0 => message,
        n => format!("{message} and {n} more {what}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const CLUSTER_KINDS: [&str; 4] = [
        "Namespace",
        "ClusterRole",
        "CustomResourceDefinition",
        "PersistentVolume",
    ];

    fn namespaced(_group: &str, kind: &str) -> bool {
        !CLUSTER_KINDS.contains(&kind)
    }

    fn options(sync_options: &[String]) -> TaskOptions<'_> {
        TaskOptions {
            namespace: "app-ns",
            namespaced: &namespaced,
            revision: "0123456789abcdef",
            started_at_unix: 1_700_000_000,
            prune: true,
            skip_hooks: false,
            sync_options,
        }
    }

    fn obj(api_version: &str, kind: &str, name: &str) -> Value {
        json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}})
    }

    fn annotate(mut o: Value, pairs: &[(&str, &str)]) -> Value {
        for (k, v) in pairs {
            o["metadata"]["annotations"][*k] = json!(v);
        }
        o
    }

    fn in_ns(mut o: Value, ns: &str) -> Value {
        o["metadata"]["namespace"] = json!(ns);
        o
    }

    fn deploy(name: &str) -> Value {
        obj("apps/v1", "Deployment", name)
    }

    fn cm(name: &str) -> Value {
        obj("v1", "ConfigMap", name)
    }

    fn job(name: &str, hook: &str) -> Value {
        annotate(obj("batch/v1", "Job", name), &[(ANNOTATION_HOOK, hook)])
    }

    fn plan(targets: &[Value], lives: &[Value]) -> Vec<SyncTask> {
        sync_tasks(targets, lives, &options(&[])).expect("plan")
    }

    /// `<phase>/<wave> <kind>/<name>` per task, plus `prune` for prune tasks.
    fn summary(tasks: &[SyncTask]) -> Vec<String> {
        tasks
            .iter()
            .map(|t| {
                let prune = if t.is_prune() { " prune" } else { "" };
                format!("{}/{} {}/{}{prune}", t.phase, t.wave, t.kind, t.name)
            })
            .collect()
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    // ---- hooks ------------------------------------------------------------------------------------------

    #[test]
    fn hook_annotation_gives_one_task_per_listed_phase() {
        let cases: [(&str, &[&str]); 9] = [
            ("PreSync", &["PreSync/0 Job/j"]),
            ("PreSync,PostSync", &["PreSync/0 Job/j", "PostSync/0 Job/j"]),
            (" PostSync , PreSync ", &["PreSync/0 Job/j", "PostSync/0 Job/j"]),
            ("Sync", &["Sync/0 Job/j"]),
            ("SyncFail", &["SyncFail/0 Job/j"]),
            ("PreSync,PreSync", &["PreSync/0 Job/j"]),
            ("Skip,PreSync", &["PreSync/0 Job/j"]),
            ("PostDelete", &[]),
            ("Bogus", &[]),
        ];
        for (value, want) in cases {
            let tasks = plan(&[job("j", value)], &[]);
            assert_eq!(summary(&tasks), strings(want), "{value}");
            assert!(tasks.iter().all(|t| t.is_hook), "{value}");
        }
    }

    #[test]
    fn helm_hooks_are_mapped_and_crd_install_is_not_a_hook() {
        let cases: [(&str, &[&str], bool); 7] = [
            ("pre-install", &["PreSync/0 Job/j"], true),
            ("pre-upgrade", &["PreSync/0 Job/j"], true),
            ("post-install", &["PostSync/0 Job/j"], true),
            ("post-upgrade", &["PostSync/0 Job/j"], true),
            (
                "pre-install,post-install",
                &["PreSync/0 Job/j", "PostSync/0 Job/j"],
                true,
            ),
            ("test", &[], true),
            ("crd-install", &["Sync/0 Job/j"], false),
        ];
        for (value, want, hook) in cases {
            let o = annotate(obj("batch/v1", "Job", "j"), &[(HELM_HOOK, value)]);
            assert_eq!(is_hook(&o), hook, "{value}");
            let tasks = plan(&[o], &[]);
            assert_eq!(summary(&tasks), strings(want), "{value}");
        }
    }

    #[test]
    fn argo_hook_annotation_overrides_helm() {
        let both = annotate(
            obj("batch/v1", "Job", "j"),
            &[(ANNOTATION_HOOK, "PostSync"), (HELM_HOOK, "pre-install")],
        );
        assert_eq!(summary(&plan(&[both], &[])), strings(&["PostSync/0 Job/j"]));
        // Upstream falls back to Helm only when no Argo CD type is valid.
        let bogus = annotate(
            obj("batch/v1", "Job", "j"),
            &[(ANNOTATION_HOOK, "Bogus"), (HELM_HOOK, "pre-install")],
        );
        assert_eq!(summary(&plan(&[bogus], &[])), strings(&["PreSync/0 Job/j"]));
    }

    #[test]
    fn skip_alone_is_neither_applied_nor_pruned() {
        let skipped = annotate(in_ns(cm("c"), "app-ns"), &[(ANNOTATION_HOOK, "Skip")]);
        assert!(is_skip(&skipped) && !is_hook(&skipped));
        assert!(
            plan(std::slice::from_ref(&skipped), std::slice::from_ref(&skipped)).is_empty(),
            "target Skip"
        );
        assert!(plan(&[], &[skipped]).is_empty(), "live-only Skip is not pruned");
        let live_hook = in_ns(job("old", "PreSync"), "app-ns");
        assert!(plan(&[], &[live_hook]).is_empty(), "a live hook is not pruned");
    }

    #[test]
    fn generate_name_hooks_are_named_from_revision_phase_and_start() {
        let generated = |rev: &str, hook: &str, o: Value| {
            let opts = TaskOptions {
                revision: rev,
                ..options(&[])
            };
            let tasks = sync_tasks(&[o], &[], &opts).unwrap();
            tasks.iter().map(|t| t.name.clone()).collect::<Vec<_>>().join(" ") + &format!(" ({hook})")
        };
        let gen_job = |hook: &str| {
            annotate(
                json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"generateName": "migrate-"}}),
                &[(ANNOTATION_HOOK, hook)],
            )
        };
        let cases = [
            (
                "long revision cut to 7",
                "0123456789abcdef",
                "PreSync",
                gen_job("PreSync"),
                "migrate-0123456-presync-1700000000",
            ),
            (
                "short revision whole",
                "abc",
                "PreSync",
                gen_job("PreSync"),
                "migrate-abc-presync-1700000000",
            ),
            (
                "7 characters whole",
                "abcdefg",
                "PreSync",
                gen_job("PreSync"),
                "migrate-abcdefg-presync-1700000000",
            ),
            (
                "8 characters cut",
                "abcdefgh",
                "PreSync",
                gen_job("PreSync"),
                "migrate-abcdefg-presync-1700000000",
            ),
            (
                "lower-cased",
                "ABCDEF12",
                "PostSync",
                gen_job("PostSync"),
                "migrate-abcdef1-postsync-1700000000",
            ),
            (
                "one name per phase",
                "abc",
                "PreSync,SyncFail",
                gen_job("PreSync,SyncFail"),
                "migrate-abc-presync-1700000000 migrate-abc-syncfail-1700000000",
            ),
            (
                "a set name is kept",
                "abc",
                "PreSync",
                job("fixed", "PreSync"),
                "fixed",
            ),
            (
                "no name nor generateName",
                "abc",
                "Sync",
                annotate(
                    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {}}),
                    &[(ANNOTATION_HOOK, "Sync")],
                ),
                "abc-sync-1700000000",
            ),
        ];
        for (case, rev, hook, o, want) in cases {
            assert_eq!(generated(rev, hook, o), format!("{want} ({hook})"), "{case}");
        }
        let t = &sync_tasks(&[gen_job("PreSync")], &[], &options(&[])).unwrap()[0];
        assert_eq!(
            t.target.as_ref().unwrap()["metadata"]["name"],
            json!(t.name),
            "the object is named too"
        );
    }

    #[test]
    fn hooks_get_the_hook_finalizer_once() {
        let mut with = job("j", "PreSync");
        with["metadata"]["finalizers"] = json!(["other", HOOK_FINALIZER]);
        for o in [job("j", "PreSync"), with] {
            let t = &plan(&[o], &[])[0];
            let finalizers = t.target.as_ref().unwrap()["metadata"]["finalizers"]
                .as_array()
                .unwrap()
                .clone();
            assert_eq!(finalizers.iter().filter(|f| *f == HOOK_FINALIZER).count(), 1);
        }
        assert!(
            plan(&[deploy("d")], &[])[0].target.as_ref().unwrap()["metadata"]
                .get("finalizers")
                .is_none()
        );
    }

    #[test]
    fn skip_hooks_option_drops_hook_tasks_only() {
        let opts = TaskOptions {
            skip_hooks: true,
            ..options(&[])
        };
        let tasks = sync_tasks(&[job("j", "PreSync"), deploy("d")], &[], &opts).unwrap();
        assert_eq!(summary(&tasks), strings(&["Sync/0 Deployment/d"]));
    }

    #[test]
    fn hook_task_finds_its_live_object() {
        let live = in_ns(job("j", "PreSync"), "app-ns");
        let tasks = plan(&[job("j", "PreSync")], std::slice::from_ref(&live));
        assert_eq!(
            summary(&tasks),
            strings(&["PreSync/0 Job/j"]),
            "the live hook is not pruned"
        );
        assert_eq!(tasks[0].live.as_ref(), Some(&live));
    }

    // ---- namespaces, matching, pruning ------------------------------------------------------------------

    #[test]
    fn targets_without_namespace_get_the_destination_namespace_if_namespaced() {
        let cases = [
            ("namespaced, none", cm("c"), "app-ns", Some("app-ns")),
            ("namespaced, own", in_ns(cm("c"), "other"), "other", Some("other")),
            (
                "cluster-scoped, none",
                obj("rbac.authorization.k8s.io/v1", "ClusterRole", "r"),
                "",
                None,
            ),
            (
                "cluster-scoped, set",
                in_ns(obj("v1", "Namespace", "n"), "x"),
                "",
                Some("x"),
            ),
        ];
        for (case, o, want_key, want_obj) in cases {
            let t = &plan(&[o], &[])[0];
            assert_eq!(t.namespace, want_key, "{case}");
            let ns = t.target.as_ref().unwrap()["metadata"]
                .get("namespace")
                .and_then(Value::as_str);
            assert_eq!(ns, want_obj, "{case}");
        }
    }

    #[test]
    fn targets_match_lives_by_group_kind_namespace_name() {
        let cases = [
            (
                "same key",
                in_ns(deploy("d"), "app-ns"),
                in_ns(deploy("d"), "app-ns"),
                vec!["Sync/0 Deployment/d"],
            ),
            (
                "defaulted namespace",
                deploy("d"),
                in_ns(deploy("d"), "app-ns"),
                vec!["Sync/0 Deployment/d"],
            ),
            (
                "other namespace",
                deploy("d"),
                in_ns(deploy("d"), "x"),
                vec!["Sync/0 Deployment/d", "Sync/0 Deployment/d prune"],
            ),
            (
                "other group",
                deploy("d"),
                in_ns(obj("extensions/v1beta1", "Deployment", "d"), "app-ns"),
                vec!["Sync/0 Deployment/d", "Sync/0 Deployment/d prune"],
            ),
            (
                "cluster-scoped",
                obj("rbac.authorization.k8s.io/v1", "ClusterRole", "r"),
                obj("rbac.authorization.k8s.io/v1", "ClusterRole", "r"),
                vec!["Sync/0 ClusterRole/r"],
            ),
        ];
        for (case, target, live, want) in cases {
            let tasks = plan(&[target], &[live]);
            assert_eq!(summary(&tasks), strings(&want), "{case}");
            assert!(tasks[0].live.is_some() == (want.len() == 1), "{case}");
        }
    }

    #[test]
    fn live_only_objects_become_prune_tasks_with_their_prune_mode() {
        let opt = |s: &str| annotate(in_ns(cm("old"), "app-ns"), &[(ANNOTATION_SYNC_OPTIONS, s)]);
        let cases = [
            (
                "default deletes",
                in_ns(cm("old"), "app-ns"),
                true,
                vec![],
                PruneMode::Delete,
            ),
            (
                "prune flag off",
                in_ns(cm("old"), "app-ns"),
                false,
                vec![],
                PruneMode::Skipped(MSG_PRUNE_DISABLED),
            ),
            (
                "Prune=false",
                opt("Prune=false"),
                true,
                vec![],
                PruneMode::Skipped(MSG_NO_PRUNE),
            ),
            (
                "Prune=confirm",
                opt("Validate=false, Prune=confirm"),
                true,
                vec![],
                PruneMode::RequiresConfirmation,
            ),
            (
                "app Prune=false",
                in_ns(cm("old"), "app-ns"),
                true,
                vec!["Prune=false"],
                PruneMode::Skipped(MSG_NO_PRUNE),
            ),
            (
                "app Prune=confirm",
                in_ns(cm("old"), "app-ns"),
                true,
                vec!["Prune=confirm"],
                PruneMode::RequiresConfirmation,
            ),
            (
                "object overrides app",
                opt("Prune=true"),
                true,
                vec!["Prune=false"],
                PruneMode::Delete,
            ),
            (
                "flag off beats confirm",
                opt("Prune=confirm"),
                false,
                vec![],
                PruneMode::Skipped(MSG_PRUNE_DISABLED),
            ),
        ];
        for (case, live, prune, app, want) in cases {
            let app = strings(&app);
            let opts = TaskOptions {
                prune,
                ..options(&app)
            };
            let tasks = sync_tasks(&[], &[live], &opts).unwrap();
            assert_eq!(
                summary(&tasks),
                strings(&["Sync/0 ConfigMap/old prune"]),
                "{case}"
            );
            assert_eq!(tasks[0].prune, Some(want), "{case}");
            assert!(tasks[0].target.is_none() && tasks[0].live.is_some(), "{case}");
        }
    }

    #[test]
    fn objects_without_kind_or_name_are_refused() {
        let no_kind = json!({"apiVersion": "v1", "metadata": {"name": "x"}});
        assert_eq!(
            sync_tasks(std::slice::from_ref(&no_kind), &[], &options(&[])),
            Err(TaskError::MissingKind {
                side: "target",
                index: 0
            })
        );
        assert_eq!(
            sync_tasks(&[], &[cm("a"), no_kind], &options(&[])),
            Err(TaskError::MissingKind {
                side: "live",
                index: 1
            })
        );
        let err = sync_tasks(
            &[json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})],
            &[],
            &options(&[]),
        );
        assert_eq!(
            err,
            Err(TaskError::MissingName {
                object: "/ConfigMap app-ns/".into()
            })
        );
    }

    // ---- waves ------------------------------------------------------------------------------------------

    #[test]
    fn wave_is_sync_wave_else_helm_weight_else_zero() {
        let cases: [(&[(&str, &str)], i64); 6] = [
            (&[(ANNOTATION_SYNC_WAVE, "5")], 5),
            (&[(ANNOTATION_SYNC_WAVE, "-2")], -2),
            (&[(ANNOTATION_SYNC_WAVE, "+4")], 4),
            (&[(HELM_HOOK_WEIGHT, "3")], 3),
            (&[(ANNOTATION_SYNC_WAVE, "1"), (HELM_HOOK_WEIGHT, "9")], 1),
            (&[], 0),
        ];
        for (annotations, want) in cases {
            let tasks = plan(&[annotate(deploy("d"), annotations)], &[]);
            assert_eq!(tasks[0].wave, want, "{annotations:?}");
        }
    }

    #[test]
    fn bad_wave_is_an_error_naming_the_object() {
        let cases = [
            (ANNOTATION_SYNC_WAVE, json!("abc")),
            (ANNOTATION_SYNC_WAVE, json!("1.5")),
            (ANNOTATION_SYNC_WAVE, json!(" 1")),
            (ANNOTATION_SYNC_WAVE, json!(1)),
            (HELM_HOOK_WEIGHT, json!("heavy")),
        ];
        for (annotation, value) in cases {
            let mut o = deploy("web");
            o["metadata"]["annotations"][annotation] = value.clone();
            let err = sync_tasks(&[o], &[], &options(&[])).expect_err(annotation);
            let TaskError::InvalidWave {
                object,
                annotation: a,
                ..
            } = &err
            else {
                panic!("{err:?}")
            };
            assert_eq!(
                (object.as_str(), *a),
                ("apps/Deployment app-ns/web", annotation),
                "{value}"
            );
            assert!(err.to_string().contains("apps/Deployment app-ns/web"), "{err}");
        }
    }

    #[test]
    fn prune_waves_are_mirrored() {
        let cases: [(&[&str], &[i64]); 4] = [
            (&["1", "2", "3"], &[3, 2, 1]),
            (&["0", "5"], &[5, 0]),
            (&["4"], &[4]),
            (&["1", "1", "2"], &[2, 2, 1]),
        ];
        for (waves, want) in cases {
            let lives: Vec<Value> = waves
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    annotate(
                        in_ns(cm(&format!("c{i}")), "app-ns"),
                        &[(ANNOTATION_SYNC_WAVE, w)],
                    )
                })
                .collect();
            let mut tasks = plan(&[], &lives);
            tasks.sort_by(|a, b| a.name.cmp(&b.name));
            assert_eq!(
                tasks.iter().map(|t| t.wave).collect::<Vec<_>>(),
                want.to_vec(),
                "{waves:?}"
            );
        }
    }

    #[test]
    fn prune_last_moves_prunes_after_the_last_sync_wave() {
        let target = |w: &str| annotate(deploy(&format!("d{w}")), &[(ANNOTATION_SYNC_WAVE, w)]);
        let live = annotate(in_ns(cm("old"), "app-ns"), &[(ANNOTATION_SYNC_WAVE, "1")]);
        let live_last = annotate(live.clone(), &[(ANNOTATION_SYNC_OPTIONS, "PruneLast=true")]);
        let negative_last = annotate(live_last.clone(), &[(ANNOTATION_SYNC_WAVE, "-5")]);
        let cases = [
            (
                "app option",
                vec![target("3"), target("1")],
                live.clone(),
                vec!["PruneLast=true"],
                4,
            ),
            ("object option", vec![target("3")], live_last.clone(), vec![], 4),
            ("prune waves count too", vec![target("-3")], live_last, vec![], 2),
            (
                "negative waves count from 0",
                vec![target("-3")],
                negative_last,
                vec![],
                1,
            ),
            ("without PruneLast", vec![target("3")], live, vec![], 1),
        ];
        for (case, targets, live, app, want) in cases {
            let app = strings(&app);
            let tasks = sync_tasks(&targets, &[live], &options(&app)).unwrap();
            let prune = tasks.iter().find(|t| t.is_prune()).unwrap();
            assert_eq!(prune.wave, want, "{case}");
        }
    }

    // ---- delete policies --------------------------------------------------------------------------------

    #[test]
    fn delete_policies_default_to_before_hook_creation_and_map_helm() {
        use DeletePolicy::*;
        type Case = (&'static [(&'static str, &'static str)], &'static [DeletePolicy]);
        let cases: [Case; 7] = [
            (&[], &[BeforeHookCreation]),
            (
                &[(ANNOTATION_HOOK_DELETE_POLICY, "HookSucceeded")],
                &[HookSucceeded],
            ),
            (
                &[(ANNOTATION_HOOK_DELETE_POLICY, "HookSucceeded, HookFailed")],
                &[HookSucceeded, HookFailed],
            ),
            (&[(HELM_HOOK_DELETE_POLICY, "hook-succeeded")], &[HookSucceeded]),
            (
                &[(HELM_HOOK_DELETE_POLICY, "before-hook-creation,hook-failed")],
                &[BeforeHookCreation, HookFailed],
            ),
            (
                &[
                    (ANNOTATION_HOOK_DELETE_POLICY, "HookFailed"),
                    (HELM_HOOK_DELETE_POLICY, "hook-succeeded"),
                ],
                &[HookFailed, HookSucceeded],
            ),
            (&[(ANNOTATION_HOOK_DELETE_POLICY, "Bogus")], &[BeforeHookCreation]),
        ];
        for (annotations, want) in cases {
            let t = &plan(&[annotate(job("j", "PreSync"), annotations)], &[])[0];
            assert_eq!(t.delete_policies, want.to_vec(), "{annotations:?}");
        }
        let resource = &plan(
            &[annotate(
                deploy("d"),
                &[(ANNOTATION_HOOK_DELETE_POLICY, "HookFailed")],
            )],
            &[],
        )[0];
        assert!(
            resource.delete_policies.is_empty() && !resource.has_delete_policy(HookFailed),
            "non-hooks have none"
        );
    }

    // ---- ordering ---------------------------------------------------------------------------------------

    #[test]
    fn sort_by_phase_wave_kind_order_then_name() {
        let wave = |o: Value, w: &str| annotate(o, &[(ANNOTATION_SYNC_WAVE, w)]);
        let cases: [(&str, Vec<Value>, &[&str]); 6] = [
            (
                "phase order",
                vec![
                    job("post", "PostSync"),
                    deploy("d"),
                    job("fail", "SyncFail"),
                    job("pre", "PreSync"),
                ],
                &[
                    "PreSync/0 Job/pre",
                    "Sync/0 Deployment/d",
                    "PostSync/0 Job/post",
                    "SyncFail/0 Job/fail",
                ],
            ),
            (
                "wave within a phase",
                vec![wave(deploy("a"), "2"), wave(deploy("b"), "-1"), deploy("c")],
                &[
                    "Sync/-1 Deployment/b",
                    "Sync/0 Deployment/c",
                    "Sync/2 Deployment/a",
                ],
            ),
            (
                "kind order within a wave",
                vec![
                    deploy("x"),
                    obj("v1", "Service", "x"),
                    cm("x"),
                    obj("v1", "ServiceAccount", "x"),
                    obj("v1", "Secret", "x"),
                ],
                &[
                    "Sync/0 ServiceAccount/x",
                    "Sync/0 Secret/x",
                    "Sync/0 ConfigMap/x",
                    "Sync/0 Service/x",
                    "Sync/0 Deployment/x",
                ],
            ),
            (
                "unlisted kinds last",
                vec![obj("example.com/v1", "Widget", "a"), deploy("z")],
                &["Sync/0 Deployment/z", "Sync/0 Widget/a"],
            ),
            (
                "name last",
                vec![cm("b"), cm("a"), cm("c")],
                &["Sync/0 ConfigMap/a", "Sync/0 ConfigMap/b", "Sync/0 ConfigMap/c"],
            ),
            (
                "IngressClass, Ingress, APIService",
                vec![
                    obj("apiregistration.k8s.io/v1", "APIService", "a"),
                    obj("networking.k8s.io/v1", "Ingress", "a"),
                    obj("networking.k8s.io/v1", "IngressClass", "a"),
                ],
                &["Sync/0 IngressClass/a", "Sync/0 Ingress/a", "Sync/0 APIService/a"],
            ),
        ];
        for (case, targets, want) in cases {
            assert_eq!(summary(&plan(&targets, &[])), strings(want), "{case}");
        }
    }

    #[test]
    fn kind_order_ranks_listed_kinds_negative_and_others_zero() {
        assert_eq!(kind_order("Namespace"), -35);
        assert_eq!(kind_order("APIService"), -1);
        assert_eq!(kind_order("Widget"), 0);
        assert!(kind_order("CustomResourceDefinition") < kind_order("ClusterRole"));
    }

    #[test]
    fn adjust_deps_pulls_namespaces_and_crds_in_front_of_their_first_user() {
        let wave = |o: Value, w: &str| annotate(o, &[(ANNOTATION_SYNC_WAVE, w)]);
        let crd = |names: bool| {
            let mut c = obj(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "widgets.example.com",
            );
            c["spec"] = json!({"group": "example.com"});
            if names {
                c["spec"]["names"] = json!({"kind": "Widget"});
            }
            wave(c, "3")
        };
        type Case = (&'static str, Vec<Value>, Vec<Value>, &'static [&'static str]);
        let cases: [Case; 6] = [
            (
                "namespace takes the wave of its first user",
                vec![
                    wave(obj("v1", "Namespace", "team"), "5"),
                    in_ns(deploy("d"), "team"),
                ],
                vec![],
                &["Sync/0 Namespace/team", "Sync/0 Deployment/d"],
            ),
            (
                "namespace takes the phase of a hook in it",
                vec![
                    obj("v1", "Namespace", "team"),
                    in_ns(job("migrate", "PreSync"), "team"),
                ],
                vec![],
                &["PreSync/0 Namespace/team", "PreSync/0 Job/migrate"],
            ),
            (
                "namespace already first stays",
                vec![in_ns(deploy("d"), "team"), obj("v1", "Namespace", "team")],
                vec![],
                &["Sync/0 Namespace/team", "Sync/0 Deployment/d"],
            ),
            (
                "CRD before its first custom resource",
                vec![crd(true), wave(obj("example.com/v1", "Widget", "w"), "1")],
                vec![],
                &[
                    "Sync/1 CustomResourceDefinition/widgets.example.com",
                    "Sync/1 Widget/w",
                ],
            ),
            (
                "CRD without names.kind does not move",
                vec![crd(false), wave(obj("example.com/v1", "Widget", "w"), "1")],
                vec![],
                &[
                    "Sync/1 Widget/w",
                    "Sync/3 CustomResourceDefinition/widgets.example.com",
                ],
            ),
            (
                "prune tasks neither move nor pull",
                vec![in_ns(deploy("d"), "team")],
                vec![wave(obj("v1", "Namespace", "team"), "7")],
                &["Sync/0 Deployment/d", "Sync/7 Namespace/team prune"],
            ),
        ];
        for (case, targets, lives, want) in cases {
            assert_eq!(summary(&plan(&targets, &lives)), strings(want), "{case}");
        }
    }

    // ---- state machine helpers --------------------------------------------------------------------------

    fn task(phase: SyncPhase, wave: i64, kind: &str, name: &str) -> SyncTask {
        let (group, api) = match kind {
            "Job" => ("batch", "batch/v1"),
            "Deployment" => ("apps", "apps/v1"),
            _ => ("", "v1"),
        };
        let o = json!({"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "ns"}});
        SyncTask {
            phase,
            wave,
            group: group.into(),
            kind: kind.into(),
            namespace: "ns".into(),
            name: name.into(),
            target: Some(o.clone()),
            live: Some(o),
            is_hook: false,
            delete_policies: Vec::new(),
            prune: None,
        }
    }

    fn res(wave: i64, name: &str) -> TaskState {
        TaskState::new(task(SyncPhase::Sync, wave, "Deployment", name))
    }

    fn hook(phase: SyncPhase, wave: i64, name: &str, policies: &[DeletePolicy]) -> TaskState {
        let mut t = task(phase, wave, "Job", name);
        t.is_hook = true;
        t.live = None;
        t.delete_policies = policies.to_vec();
        TaskState::new(t)
    }

    fn prune(wave: i64, name: &str, mode: PruneMode) -> TaskState {
        let mut t = task(SyncPhase::Sync, wave, "ConfigMap", name);
        t.target = None;
        t.prune = Some(mode);
        TaskState::new(t)
    }

    trait Build {
        fn result(self, result: TaskResult) -> Self;
        fn running(self) -> Self;
        fn health(self, status: &str) -> Self;
        fn live(self, live: bool) -> Self;
    }

    impl Build for TaskState {
        fn result(mut self, result: TaskResult) -> Self {
            self.result = result;
            self
        }
        fn running(self) -> Self {
            self.result(TaskResult::applied("applied"))
        }
        fn health(mut self, status: &str) -> Self {
            self.health = Some((status.into(), format!("{status} message")));
            self
        }
        fn live(mut self, live: bool) -> Self {
            self.task.live = live.then(|| {
                self.task
                    .target
                    .clone()
                    .unwrap_or_else(|| json!({"metadata": {}}))
            });
            self
        }
    }

    fn succeeded() -> TaskResult {
        TaskResult {
            status: Some(ResultCode::Synced),
            phase: Some(OperationPhase::Succeeded),
            message: "ok".into(),
        }
    }

    fn failed(message: &str) -> TaskResult {
        TaskResult {
            status: Some(ResultCode::Synced),
            phase: Some(OperationPhase::Failed),
            message: message.into(),
        }
    }

    fn wait(message: &str) -> Step {
        Step::Wait {
            message: message.into(),
        }
    }

    fn opts() -> StepOptions {
        StepOptions::default()
    }

    fn run_of(step: Step) -> WaveRun {
        match step {
            Step::RunWave(run) => run,
            other => panic!("not a wave: {other:?}"),
        }
    }

    // ---- health rules -----------------------------------------------------------------------------------

    #[test]
    fn hook_operation_phase_from_health() {
        use OperationPhase::*;
        let cases = [
            (Some("Healthy"), Succeeded, "Healthy message"),
            (Some("Degraded"), Failed, "Degraded message"),
            (Some("Unknown"), Failed, "Unknown message"),
            (Some("Progressing"), Running, "Progressing message"),
            (Some("Suspended"), Running, "Suspended message"),
            (Some("Missing"), Succeeded, "j created"),
            (None, Succeeded, "j created"),
        ];
        for (status, phase, message) in cases {
            let health = status.map(|s| (s.to_string(), format!("{s} message")));
            assert_eq!(
                hook_phase(health.as_ref(), "j"),
                (phase, message.to_string()),
                "{status:?}"
            );
            let mut state = hook(SyncPhase::PreSync, 0, "j", &[]).live(true).running();
            state.health = health;
            assert_eq!(observe(&[state])[0].phase, Some(phase), "observe {status:?}");
        }
    }

    #[test]
    fn non_hooks_succeed_only_on_healthy_and_fail_on_degraded() {
        use OperationPhase::*;
        let cases = [
            (Some("Healthy"), Succeeded, "Healthy message"),
            (Some("Degraded"), Failed, "Degraded message"),
            (Some("Progressing"), Running, "applied"),
            (Some("Suspended"), Running, "applied"),
            (Some("Unknown"), Running, "applied"),
            (None, Succeeded, "applied"),
        ];
        for (status, phase, message) in cases {
            let mut state = res(0, "web").running();
            state.health = status.map(|s| (s.to_string(), format!("{s} message")));
            let result = &observe(&[state])[0];
            assert_eq!(
                (result.phase, result.message.as_str()),
                (Some(phase), message),
                "{status:?}"
            );
            assert_eq!(result.status, Some(ResultCode::Synced), "status kept");
        }
    }

    #[test]
    fn observe_leaves_pending_and_completed_tasks_alone() {
        let states = [
            res(0, "a").health("Degraded"),
            res(0, "b").result(succeeded()).health("Degraded"),
        ];
        assert_eq!(observe(&states), vec![TaskResult::default(), succeeded()]);
    }

    // ---- waiting ----------------------------------------------------------------------------------------

    #[test]
    fn wait_for_running_tasks_messages() {
        let h = |name: &str| {
            hook(SyncPhase::PreSync, 0, name, &[])
                .live(true)
                .running()
                .health("Progressing")
        };
        let r = |name: &str| res(0, name).running().health("Progressing");
        let later = || res(1, "later");
        let cases = [
            (
                "multi-step resource",
                vec![r("web"), later()],
                "waiting for healthy state of apps/Deployment/web",
            ),
            (
                "hook",
                vec![h("migrate")],
                "waiting for completion of hook batch/Job/migrate",
            ),
            (
                "two hooks",
                vec![h("a"), h("b")],
                "waiting for completion of hook batch/Job/a and 1 more hooks",
            ),
            (
                "hook and resources",
                vec![r("web"), h("migrate"), later()],
                "waiting for completion of hook batch/Job/migrate and 1 more resources",
            ),
            (
                "three resources",
                vec![r("a"), r("b"), r("c"), later()],
                "waiting for healthy state of apps/Deployment/a and 2 more resources",
            ),
        ];
        for (case, states, want) in cases {
            assert_eq!(next_step(&states, &opts()), wait(want), "{case}");
        }
    }

    #[test]
    fn single_step_sync_without_hooks_does_not_wait_for_health() {
        let states = [
            res(0, "a").running().health("Progressing"),
            res(0, "b").running().health("Degraded"),
        ];
        // b turned Degraded: that is a failure, not a wait; without it the sync is done.
        assert!(matches!(next_step(&states, &opts()), Step::Failed { .. }));
        let states = [res(0, "a").running().health("Progressing")];
        assert_eq!(
            next_step(&states, &opts()),
            Step::Succeeded {
                message: MSG_NO_MORE_TASKS.into(),
                delete_hooks: vec![]
            }
        );
    }

    #[test]
    fn running_task_whose_live_object_vanished_is_an_error() {
        let states = vec![res(0, "web").running().live(false), res(1, "later")];
        let results = observe(&states);
        assert_eq!(results[0].status, Some(ResultCode::SyncFailed));
        assert_eq!(results[0].phase, Some(OperationPhase::Error));
        assert_eq!(
            results[0].message,
            "Resource apps/Deployment/web is missing, it might have been deleted"
        );
        assert_eq!(
            next_step(&states, &opts()),
            wait("waiting for healthy state of apps/Deployment/web"),
            "this round"
        );
        let stored: Vec<TaskState> = states
            .into_iter()
            .zip(results)
            .map(|(s, r)| s.result(r))
            .collect();
        assert_eq!(
            next_step(&stored, &opts()),
            Step::Failed {
                message: format!(
                    "{MSG_TASKS_UNSUCCESSFUL}, reason: Resource apps/Deployment/web is missing, it might have been deleted"
                ),
                delete_hooks: vec![],
            }
        );
        // Not waited for (single step, not a hook): not checked.
        assert_eq!(
            observe(&[res(0, "web").running().live(false)])[0],
            TaskResult::applied("applied")
        );
    }

    #[test]
    fn wait_while_pruned_objects_are_being_deleted() {
        let mut p = prune(0, "old", PruneMode::Delete)
            .live(true)
            .result(TaskResult::pruned());
        p.task.live = Some(json!({"metadata": {"name": "old", "deletionTimestamp": "2026-01-01T00:00:00Z"}}));
        assert_eq!(
            next_step(&[p.clone()], &opts()),
            wait("waiting for deletion of /ConfigMap/old")
        );
        p.task.live = Some(json!({"metadata": {"name": "old"}}));
        assert!(
            matches!(next_step(&[p], &opts()), Step::Succeeded { .. }),
            "gone or not deleting"
        );
    }

    // ---- failure and SyncFail ---------------------------------------------------------------------------

    #[test]
    fn completed_failure_fails_and_deletes_hook_failed_hooks() {
        let states = [
            hook(SyncPhase::PreSync, 0, "a", &[DeletePolicy::HookFailed])
                .live(true)
                .result(succeeded()),
            hook(SyncPhase::PreSync, 0, "b", &[DeletePolicy::HookSucceeded])
                .live(true)
                .result(succeeded()),
            res(0, "web").result(TaskResult::apply_failed("boom")),
            res(1, "never"),
        ];
        assert_eq!(
            next_step(&states, &opts()),
            Step::Failed {
                message: format!("{MSG_TASKS_UNSUCCESSFUL}, reason: boom"),
                delete_hooks: vec![0]
            }
        );
        let health_failure = [res(0, "web").result(failed("Degraded message")), res(1, "never")];
        assert_eq!(
            next_step(&health_failure, &opts()),
            Step::Failed {
                message: MSG_TASKS_UNSUCCESSFUL.into(),
                delete_hooks: vec![]
            },
            "only SyncFailed tasks give reasons"
        );
    }

    #[test]
    fn failure_starts_pending_sync_fail_hooks() {
        let states = [
            res(0, "web").result(TaskResult::apply_failed("boom")),
            hook(SyncPhase::SyncFail, 0, "cleanup", &[]),
            hook(SyncPhase::SyncFail, 0, "notify", &[]),
        ];
        let Step::RunSyncFail {
            run,
            message,
            delete_hooks,
        } = next_step(&states, &opts())
        else {
            panic!()
        };
        assert_eq!((run.phase, run.apply), (SyncPhase::SyncFail, vec![vec![1, 2]]));
        assert_eq!(
            message,
            "waiting for completion of hook batch/Job/cleanup and 1 more hooks"
        );
        assert!(delete_hooks.is_empty());
    }

    #[test]
    fn sync_fail_hooks_never_turn_failure_into_success() {
        let base = || res(0, "web").result(TaskResult::apply_failed("boom"));
        let fail_hook = || hook(SyncPhase::SyncFail, 0, "cleanup", &[]).live(true);
        let cases = [
            (
                "SyncFail hook succeeded",
                fail_hook().result(succeeded()),
                Step::Failed {
                    message: format!("{MSG_TASKS_UNSUCCESSFUL}, reason: boom"),
                    delete_hooks: vec![],
                },
            ),
            (
                "SyncFail hook failed to apply",
                fail_hook().result(TaskResult::apply_failed("no quota")),
                Step::Failed {
                    message: format!(
                        "{MSG_TASKS_UNSUCCESSFUL}, reason: boom\n{MSG_SYNC_FAIL_HOOKS_FAILED}, reason: no quota"
                    ),
                    delete_hooks: vec![],
                },
            ),
            (
                "SyncFail hook running",
                fail_hook().running().health("Progressing"),
                wait("waiting for completion of hook batch/Job/cleanup"),
            ),
        ];
        for (case, sync_fail, want) in cases {
            assert_eq!(next_step(&[base(), sync_fail], &opts()), want, "{case}");
        }
    }

    #[test]
    fn sync_fail_hook_makes_a_sync_multi_step() {
        let states = [
            res(0, "web").running().health("Progressing"),
            hook(SyncPhase::SyncFail, 0, "cleanup", &[]),
        ];
        assert_eq!(
            next_step(&states, &opts()),
            wait("waiting for healthy state of apps/Deployment/web")
        );
    }

    // ---- success ----------------------------------------------------------------------------------------

    #[test]
    fn nothing_pending_succeeds_and_deletes_hook_succeeded_hooks() {
        let states = [
            hook(SyncPhase::PreSync, 0, "a", &[DeletePolicy::HookSucceeded])
                .live(true)
                .result(succeeded()),
            hook(SyncPhase::PreSync, 0, "b", &[DeletePolicy::HookSucceeded]).result(succeeded()),
            hook(SyncPhase::PostSync, 0, "c", &[DeletePolicy::BeforeHookCreation])
                .live(true)
                .result(succeeded()),
            res(0, "web").result(succeeded()),
        ];
        assert_eq!(
            next_step(&states, &opts()),
            Step::Succeeded {
                message: MSG_NO_MORE_TASKS.into(),
                delete_hooks: vec![0]
            },
            "b has no live object any more"
        );
        assert_eq!(
            next_step(&[], &opts()),
            Step::Succeeded {
                message: MSG_NO_MORE_TASKS.into(),
                delete_hooks: vec![]
            }
        );
    }

    // ---- running a wave ---------------------------------------------------------------------------------

    #[test]
    fn the_first_pending_phase_and_wave_runs() {
        let cases = [
            (
                "PreSync first",
                vec![hook(SyncPhase::PreSync, 0, "pre", &[]), res(0, "web")],
                (SyncPhase::PreSync, 0, vec![0]),
            ),
            (
                "done tasks are skipped",
                vec![
                    hook(SyncPhase::PreSync, 0, "pre", &[]).result(succeeded()),
                    res(0, "a"),
                    res(0, "b"),
                    res(1, "c"),
                ],
                (SyncPhase::Sync, 0, vec![1, 2]),
            ),
            (
                "SyncFail tasks never run normally",
                vec![
                    res(0, "a").result(succeeded()),
                    hook(SyncPhase::SyncFail, 0, "f", &[]),
                ],
                (SyncPhase::Sync, 0, vec![]),
            ),
        ];
        for (case, states, (phase, wave, tasks)) in cases {
            match next_step(&states, &opts()) {
                Step::RunWave(run) => {
                    assert_eq!((run.phase, run.wave, run.tasks()), (phase, wave, tasks), "{case}")
                }
                Step::Succeeded { .. } => assert!(tasks.is_empty(), "{case}"),
                other => panic!("{case}: {other:?}"),
            }
        }
    }

    #[test]
    fn wave_runs_prunes_then_before_hook_creation_deletions_then_applies() {
        let old_hook = hook(SyncPhase::Sync, 0, "migrate", &[DeletePolicy::BeforeHookCreation]).live(true);
        let states = [
            prune(0, "old", PruneMode::Delete).live(true),
            old_hook,
            res(0, "web"),
        ];
        let run = run_of(next_step(&states, &opts()));
        assert_eq!(run.prune, vec![0]);
        assert_eq!(run.delete_before_creation, vec![1]);
        assert!(
            run.apply.is_empty(),
            "nothing is applied while old hooks are deleted"
        );
        assert_eq!(run.release_finalizers, vec![1]);
        let fresh_hook = hook(SyncPhase::Sync, 0, "migrate", &[DeletePolicy::BeforeHookCreation]);
        let states = [
            prune(0, "old", PruneMode::Delete).live(true),
            fresh_hook,
            res(0, "web"),
        ];
        let run = run_of(next_step(&states, &opts()));
        assert_eq!(
            (run.prune, run.delete_before_creation, run.apply),
            (vec![0], vec![], vec![vec![1], vec![2]])
        );
        let kept_hook = hook(SyncPhase::Sync, 0, "migrate", &[DeletePolicy::HookSucceeded]).live(true);
        let run = run_of(next_step(&[kept_hook], &opts()));
        assert_eq!(
            (run.delete_before_creation, run.apply, run.release_finalizers),
            (vec![], vec![vec![0]], vec![0])
        );
    }

    #[test]
    fn applies_are_grouped_by_consecutive_kind() {
        let c = |name: &str| TaskState::new(task(SyncPhase::Sync, 0, "ConfigMap", name));
        let states = [c("a"), c("b"), res(0, "web"), c("z")];
        assert_eq!(
            run_of(next_step(&states, &opts())).apply,
            vec![vec![0, 1], vec![2], vec![3]]
        );
    }

    #[test]
    fn last_wave_without_hooks_completes_the_operation() {
        let cases = [
            (
                "single wave, no hooks",
                vec![res(0, "a"), res(0, "b")],
                true,
                true,
            ),
            ("more waves follow", vec![res(0, "a"), res(1, "b")], false, false),
            (
                "hook in the wave",
                vec![hook(SyncPhase::Sync, 0, "h", &[]), res(0, "a")],
                true,
                false,
            ),
            (
                "last wave after done ones",
                vec![res(0, "a").result(succeeded()), res(1, "b")],
                true,
                true,
            ),
            (
                "PostSync follows",
                vec![res(0, "a"), hook(SyncPhase::PostSync, 0, "p", &[])],
                false,
                false,
            ),
        ];
        for (case, states, final_wave, completes) in cases {
            let run = run_of(next_step(&states, &opts()));
            assert_eq!((run.final_wave, run.completes), (final_wave, completes), "{case}");
        }
    }

    #[test]
    fn prune_confirmation_holds_the_wave() {
        let states = [
            prune(0, "old", PruneMode::RequiresConfirmation).live(true),
            res(0, "web"),
        ];
        assert_eq!(
            next_step(&states, &opts()),
            wait("waiting for pruning confirmation of /ConfigMap/old")
        );
        let confirmed = StepOptions {
            prune_confirmed: true,
            ..opts()
        };
        assert_eq!(run_of(next_step(&states, &confirmed)).prune, vec![0]);
        let states = [prune(0, "old", PruneMode::Delete).live(true), res(0, "web")];
        assert_eq!(run_of(next_step(&states, &opts())).prune, vec![0]);
    }

    #[test]
    fn apply_out_of_sync_only_skips_unmodified_objects() {
        let modified = |mut s: TaskState, m: Option<bool>| {
            s.modified = m;
            s
        };
        let states = [
            modified(res(0, "same"), Some(false)),
            modified(res(0, "changed"), Some(true)),
            modified(res(0, "unknown"), None),
            modified(hook(SyncPhase::Sync, 0, "h", &[]).live(true), Some(false)),
        ];
        let only = StepOptions {
            apply_out_of_sync_only: true,
            ..opts()
        };
        assert_eq!(run_of(next_step(&states, &only)).tasks(), vec![1, 2, 3]);
        assert_eq!(run_of(next_step(&states, &opts())).tasks(), vec![0, 1, 2, 3]);
        assert_eq!(dry_run_tasks(&states, &only), Some(vec![1, 2, 3]));
    }

    #[test]
    fn dry_run_only_before_the_operation_started() {
        let fresh = [res(0, "a"), prune(0, "old", PruneMode::Delete).live(true)];
        assert_eq!(dry_run_tasks(&fresh, &opts()), Some(vec![0, 1]));
        let started = [res(0, "a").running(), res(0, "b")];
        assert_eq!(dry_run_tasks(&started, &opts()), None);
    }

    // ---- after a wave -----------------------------------------------------------------------------------

    #[test]
    fn after_wave_decisions() {
        let done_hook = || {
            hook(
                SyncPhase::PreSync,
                0,
                "pre",
                &[DeletePolicy::HookSucceeded, DeletePolicy::HookFailed],
            )
        };
        let run = |apply: Vec<Vec<usize>>, delete: Vec<usize>, completes: bool| WaveRun {
            phase: SyncPhase::Sync,
            wave: 0,
            release_finalizers: vec![],
            prune: vec![],
            delete_before_creation: delete,
            apply,
            final_wave: completes,
            completes,
        };
        let cases = [
            (
                "success completes",
                vec![
                    done_hook().live(true).result(succeeded()),
                    res(0, "web").running(),
                ],
                run(vec![vec![1]], vec![], true),
                Step::Succeeded {
                    message: MSG_ALL_TASKS_RUN.into(),
                    delete_hooks: vec![0],
                },
            ),
            (
                "success, more to come",
                vec![res(0, "web").running(), res(1, "next")],
                run(vec![vec![0]], vec![], false),
                wait("waiting for healthy state of apps/Deployment/web"),
            ),
            (
                "old hook being deleted",
                vec![hook(SyncPhase::Sync, 0, "migrate", &[DeletePolicy::BeforeHookCreation]).live(true)],
                run(vec![], vec![0], false),
                wait("waiting for deletion of hook batch/Job/migrate"),
            ),
            (
                "apply failed, nothing running",
                vec![
                    done_hook().live(true).result(succeeded()),
                    res(0, "web").result(TaskResult::apply_failed("boom")),
                ],
                run(vec![vec![1]], vec![], true),
                Step::Failed {
                    message: format!("{MSG_FAILED_TO_APPLY}, reason: boom"),
                    delete_hooks: vec![0],
                },
            ),
            (
                "apply failed, others running",
                vec![
                    res(0, "a").running(),
                    res(0, "b").result(TaskResult::apply_failed("boom")),
                ],
                run(vec![vec![0, 1]], vec![], true),
                wait("waiting for healthy state of apps/Deployment/a"),
            ),
        ];
        for (case, states, run, want) in cases {
            assert_eq!(after_wave(&states, &run, &opts()), want, "{case}");
        }
    }

    #[test]
    fn failed_before_hook_creation_deletion_fails_the_wave() {
        let old = hook(SyncPhase::Sync, 0, "migrate", &[DeletePolicy::BeforeHookCreation]).live(true);
        let run = run_of(next_step(std::slice::from_ref(&old), &opts()));
        assert_eq!(run.tasks(), vec![0]);
        let failed = old
            .clone()
            .result(TaskResult::delete_failed(&old.result, "forbidden"));
        assert_eq!(failed.result.phase, Some(OperationPhase::Error));
        assert_eq!(
            after_wave(&[failed], &run, &opts()),
            Step::Failed {
                message: MSG_FAILED_TO_APPLY.into(),
                delete_hooks: vec![]
            },
            "an Error without SyncFailed gives no reason, as upstream"
        );
    }

    #[test]
    fn failed_apply_starts_sync_fail_and_keeps_waiting_for_running_tasks() {
        let run = WaveRun {
            phase: SyncPhase::Sync,
            wave: 0,
            release_finalizers: vec![],
            prune: vec![],
            delete_before_creation: vec![],
            apply: vec![vec![0, 1]],
            final_wave: false,
            completes: false,
        };
        let with_running = [
            res(0, "a").running(),
            res(0, "b").result(TaskResult::apply_failed("boom")),
            hook(SyncPhase::SyncFail, 0, "cleanup", &[DeletePolicy::HookFailed]),
        ];
        let Step::RunSyncFail {
            run: sync_fail,
            message,
            delete_hooks,
        } = after_wave(&with_running, &run, &opts())
        else {
            panic!()
        };
        assert_eq!(sync_fail.apply, vec![vec![2]]);
        assert_eq!(
            message,
            "waiting for completion of hook batch/Job/cleanup and 1 more resources"
        );
        assert!(delete_hooks.is_empty());
        let nothing_running = [
            res(0, "a").result(TaskResult::apply_failed("x")),
            res(0, "b").result(TaskResult::apply_failed("boom")),
            hook(SyncPhase::SyncFail, 0, "cleanup", &[DeletePolicy::HookFailed]),
        ];
        let step = after_wave(&nothing_running, &run, &opts());
        assert!(
            matches!(&step, Step::RunSyncFail { delete_hooks, .. } if delete_hooks.is_empty()),
            "{step:?}"
        );
    }

    // ---- terminate, finalizers --------------------------------------------------------------------------

    #[test]
    fn terminate_deletes_running_hooks_and_fails() {
        let states = [
            hook(SyncPhase::PreSync, 0, "running", &[])
                .live(true)
                .running()
                .health("Progressing"),
            hook(SyncPhase::PreSync, 0, "finished", &[])
                .live(true)
                .running()
                .health("Healthy"),
            hook(
                SyncPhase::PreSync,
                0,
                "finished-hookfailed",
                &[DeletePolicy::HookFailed],
            )
            .live(true)
            .running(),
            hook(SyncPhase::PreSync, 0, "not-started", &[]).live(true),
            res(0, "web").running().health("Progressing"),
        ];
        assert_eq!(
            terminate(&states),
            Step::Failed {
                message: MSG_TERMINATED.into(),
                delete_hooks: vec![0, 2]
            }
        );
    }

    #[test]
    fn completed_hooks_release_their_finalizer() {
        let finalized = |s: TaskState| {
            let mut s = s.live(true);
            s.task.live.as_mut().unwrap()["metadata"]["finalizers"] = json!([HOOK_FINALIZER]);
            s
        };
        let states = [
            finalized(hook(SyncPhase::PreSync, 0, "done", &[]))
                .running()
                .health("Healthy"),
            finalized(hook(SyncPhase::PreSync, 0, "busy", &[]))
                .running()
                .health("Progressing"),
            hook(SyncPhase::PreSync, 0, "bare", &[])
                .live(true)
                .result(succeeded()),
        ];
        assert_eq!(hooks_to_release(&states), vec![0]);
    }

    // ---- a whole operation ------------------------------------------------------------------------------

    /// Runs the state machine over a plan, applying every task successfully and reporting the health
    /// `health(name)` for live objects. Returns the operation messages in order.
    fn simulate(tasks: Vec<SyncTask>, health: impl Fn(&str, usize) -> Option<&'static str>) -> Vec<String> {
        let mut states: Vec<TaskState> = tasks.into_iter().map(TaskState::new).collect();
        let mut observed = vec![0; states.len()];
        let mut messages = Vec::new();
        for _ in 0..20 {
            for (s, seen) in states.iter_mut().zip(observed.iter_mut()) {
                if !s.result.is_pending() && s.task.live.is_none() {
                    s.task.live = s.task.target.clone();
                }
                s.health = health(&s.task.name, *seen).map(|h| (h.to_string(), String::new()));
                *seen += usize::from(s.result.is_running());
            }
            let results = observe(&states);
            states.iter_mut().zip(results).for_each(|(s, r)| s.result = r);
            match next_step(&states, &StepOptions::default()) {
                Step::RunWave(run) => {
                    for &i in &run.prune {
                        states[i].result = TaskResult::pruned();
                    }
                    for &i in run.apply.iter().flatten() {
                        states[i].result = TaskResult::applied(format!("{} created", states[i].task.name));
                    }
                    let label = format!("run {}/{}", run.phase, run.wave);
                    match after_wave(&states, &run, &StepOptions::default()) {
                        Step::Wait { message } => messages.push(format!("{label}: {message}")),
                        Step::Succeeded { message, .. } => {
                            return [messages, vec![format!("{label}: {message}")]].concat();
                        }
                        other => panic!("{other:?}"),
                    }
                }
                Step::Wait { message } => messages.push(message),
                Step::Succeeded { message, .. } | Step::Failed { message, .. } => {
                    messages.push(message);
                    return messages;
                }
                other => panic!("{other:?}"),
            }
        }
        panic!("no end: {messages:?}")
    }

    #[test]
    fn whole_operation_pre_sync_hook_then_resources_then_post_sync() {
        let targets = [job("migrate", "PreSync"), deploy("web"), job("smoke", "PostSync")];
        let tasks = plan(&targets, &[in_ns(cm("old"), "app-ns")]);
        let messages = simulate(tasks, |name, seen| match (name, seen) {
            ("web", 0) => Some("Progressing"),
            ("web", _) => Some("Healthy"),
            _ => None,
        });
        assert_eq!(
            messages,
            strings(&[
                "run PreSync/0: waiting for completion of hook batch/Job/migrate",
                "run Sync/0: waiting for healthy state of /ConfigMap/old and 1 more resources",
                "waiting for healthy state of apps/Deployment/web",
                "run PostSync/0: waiting for completion of hook batch/Job/smoke",
                MSG_NO_MORE_TASKS,
            ])
        );
    }

    #[test]
    fn whole_operation_plain_single_wave_succeeds_right_after_apply() {
        let tasks = plan(&[deploy("web"), cm("settings")], &[]);
        let messages = simulate(tasks, |_, _| Some("Progressing"));
        assert_eq!(messages, strings(&[&format!("run Sync/0: {MSG_ALL_TASKS_RUN}")]));
    }
}
