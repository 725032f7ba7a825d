//! One step of a running sync operation: the tasks of the revision being synced with their stored results,
//! the first call's dry run, then what gitops-engine's state machine decides (run a wave, wait, succeed or
//! fail), executed against the cluster. Each reconcile advances the operation by one step, so a restart
//! continues from the results stored in `status.operationState`.

use std::collections::HashMap;

use serde_json::Value;
use sluice_crds::application::{Application, OperationState};
use sluice_gitops::{
    health,
    policy::SyncOptions,
    tasks::{self, Step, StepOptions, SyncTask, TaskOptions, TaskResult, TaskState, WaveRun},
};

use super::{
    cluster::{ApplyOptions, Cluster, ClusterError, ObjectKey},
    operation::{self, phase},
};

/// What a step concluded.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The tasks with their results after this step.
    pub tasks: Vec<TaskState>,
    /// `Running` (with a message), `Succeeded` or `Failed`.
    pub phase: &'static str,
    /// The operation message.
    pub message: String,
    /// Whether a wave was applied this step (the next waits the wave delay).
    pub applied: bool,
}

/// The inputs of one step.
pub struct StepInput<'a> {
    /// The app.
    pub app: &'a Application,
    /// Its operation state.
    pub state: &'a OperationState,
    /// The manifests of the revision being synced (placed and tracked).
    pub targets: &'a [Value],
    /// The live managed objects (those of targets, and extraneous ones).
    pub lives: &'a [Value],
    /// The revision being synced.
    pub revision: &'a str,
    /// Which (group, kind) are namespaced.
    pub namespaced: &'a (dyn Fn(&str, &str) -> bool + Sync),
    /// For ApplyOutOfSyncOnly: which keys the comparison found in sync.
    pub in_sync: &'a (dyn Fn(&ObjectKey) -> bool + Sync),
}

fn selected(app: &Application, obj: &Value) -> bool {
    let Some(resources) = app
        .operation
        .as_ref()
        .or(app
            .status
            .as_ref()
            .and_then(|s| s.operation_state.as_ref())
            .map(|s| &s.operation))
        .and_then(|o| o.sync.as_ref())
        .and_then(|s| s.resources.as_ref())
        .filter(|r| !r.is_empty())
    else {
        return true;
    };
    let key = ObjectKey::of(obj);
    resources.iter().any(|r| {
        r.kind == key.kind
            && r.name == key.name
            && r.group.as_deref().unwrap_or("") == key.group
            && r.namespace
                .as_deref()
                .is_none_or(|n| n.is_empty() || n == key.namespace)
    })
}

/// Marks every task whose target lies outside the app's project as failed with the reason `violation`
/// gives (gitops-engine's permission validator); true when there is one, and then nothing may be applied.
pub fn refuse_outside_project(tasks: &mut [TaskState], violation: &dyn Fn(&Value) -> Option<String>) -> bool {
    let mut refused = false;
    for t in tasks.iter_mut() {
        if let Some(message) = t.task.target.as_ref().and_then(violation) {
            t.result = TaskResult::apply_failed(message);
            refused = true;
        }
    }
    refused
}

/// The tasks of this step with their stored results, health and diff, in `sync_tasks` order.
pub fn task_states(input: &StepInput<'_>) -> Result<Vec<TaskState>, String> {
    let op = &input.state.operation;
    let sync = op.sync.clone().unwrap_or_default();
    let mut options: Vec<String> = input
        .app
        .spec
        .sync_policy
        .as_ref()
        .and_then(|p| p.sync_options.clone())
        .unwrap_or_default();
    options.extend(sync.sync_options.clone().unwrap_or_default());
    let apply_strategy = sync.sync_strategy.as_ref().is_some_and(|s| s.apply.is_some());
    let targets: Vec<Value> = input
        .targets
        .iter()
        .filter(|t| selected(input.app, t))
        .cloned()
        .collect();
    let lives: Vec<Value> = input
        .lives
        .iter()
        .filter(|l| selected(input.app, l))
        .cloned()
        .collect();
    let task_options = TaskOptions {
        namespace: input.app.spec.destination.namespace.as_deref().unwrap_or(""),
        namespaced: input.namespaced,
        revision: input.revision,
        started_at_unix: input.state.started_at.0.as_second(),
        prune: sync.prune.unwrap_or(false),
        skip_hooks: apply_strategy || operation::is_selective(op),
        sync_options: &options,
    };
    let planned = tasks::sync_tasks(&targets, &lives, &task_options).map_err(|e| e.to_string())?;
    let stored = operation::stored_results(input.state);
    Ok(planned
        .into_iter()
        .map(|task| with_state(task, &stored, input.in_sync))
        .collect())
}

fn with_state(
    task: SyncTask,
    stored: &HashMap<String, TaskResult>,
    in_sync: &dyn Fn(&ObjectKey) -> bool,
) -> TaskState {
    let health = task
        .live
        .as_ref()
        .and_then(health::health)
        .map(|h| (h.status.to_string(), h.message));
    let modified = task.target.as_ref().map(|t| !in_sync(&ObjectKey::of(t)));
    TaskState {
        result: stored.get(&task.result_key()).cloned().unwrap_or_default(),
        task,
        health,
        modified,
    }
}

fn step_options(app: &Application) -> StepOptions {
    StepOptions {
        prune_confirmed: app
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("argocd.argoproj.io/deletion-approved")),
        apply_out_of_sync_only: SyncOptions::of_app(app).apply_out_of_sync_only(),
    }
}

/// `kind.group/name` as kubectl names an object in its messages.
fn object_name(task: &SyncTask) -> String {
    let kind = task.kind.to_lowercase();
    match task.group.as_str() {
        "" => format!("{kind}/{}", task.name),
        g => format!("{kind}.{g}/{}", task.name),
    }
}

fn apply_options(app: &Application, obj: &Value, dry_run: bool) -> ApplyOptions {
    let options = SyncOptions::of_app(app).for_object(obj);
    ApplyOptions {
        dry_run,
        no_validate: !options.validate(),
        replace: options.replace(),
    }
}

/// Runs one step of the operation. `terminating`: the user asked to stop it.
pub async fn step(
    cluster: &impl Cluster,
    app: &Application,
    op: &sluice_crds::application::Operation,
    mut tasks: Vec<TaskState>,
    terminating: bool,
) -> Outcome {
    let options = step_options(app);
    if terminating {
        let step = tasks::terminate(&tasks);
        return finish(cluster, app, tasks, step, false).await;
    }
    release_finalizers(cluster, &mut tasks).await;
    if let Some(dry) = tasks::dry_run_tasks(&tasks, &options) {
        let dry_run_only = operation::is_dry_run(op);
        let failed = dry_run(cluster, app, &mut tasks, &dry, dry_run_only).await;
        if failed || dry_run_only {
            let (phase, message) = if failed {
                (phase::FAILED, tasks::MSG_DRY_RUN_FAILED)
            } else {
                (phase::SUCCEEDED, "successfully synced (dry run)")
            };
            return Outcome {
                tasks,
                phase,
                message: message.into(),
                applied: false,
            };
        }
    }
    let observed = tasks::observe(&tasks);
    for (state, result) in tasks.iter_mut().zip(observed) {
        state.result = result;
    }
    let next = tasks::next_step(&tasks, &options);
    let mut applied = false;
    let next = match next {
        Step::RunWave(run) => {
            run_wave(cluster, app, &mut tasks, &run).await;
            applied = true;
            tasks::after_wave(&tasks, &run, &options)
        }
        other => other,
    };
    finish(cluster, app, tasks, next, applied).await
}

async fn finish(
    cluster: &impl Cluster,
    app: &Application,
    mut tasks: Vec<TaskState>,
    step: Step,
    applied: bool,
) -> Outcome {
    let (phase, message) = match step {
        Step::Wait { message } => (phase::RUNNING, message),
        Step::Succeeded {
            message,
            delete_hooks,
        } => {
            delete_hooks_of(cluster, &tasks, &delete_hooks).await;
            (phase::SUCCEEDED, message)
        }
        Step::Failed {
            message,
            delete_hooks,
        } => {
            delete_hooks_of(cluster, &tasks, &delete_hooks).await;
            (phase::FAILED, message)
        }
        Step::RunSyncFail {
            run,
            message,
            delete_hooks,
        } => {
            delete_hooks_of(cluster, &tasks, &delete_hooks).await;
            run_wave(cluster, app, &mut tasks, &run).await;
            (phase::RUNNING, message)
        }
        Step::RunWave(_) => (phase::RUNNING, "one or more tasks are running".to_string()),
    };
    Outcome {
        tasks,
        phase,
        message,
        applied,
    }
}

async fn dry_run(
    cluster: &impl Cluster,
    app: &Application,
    tasks: &mut [TaskState],
    indexes: &[usize],
    record_success: bool,
) -> bool {
    let crds_in_sync: Vec<String> = tasks
        .iter()
        .filter(|s| s.task.kind == "CustomResourceDefinition")
        .filter_map(|s| s.task.target.as_ref())
        .filter_map(|t| {
            let group = t.pointer("/spec/group")?.as_str()?;
            let kind = t.pointer("/spec/names/kind")?.as_str()?;
            Some(format!("{group}/{kind}"))
        })
        .collect();
    let mut failed = false;
    for &i in indexes {
        let task = &tasks[i].task;
        let Some(target) = task.target.clone() else {
            continue;
        };
        // A hook that is deleted before it is created again is checked when it is created.
        if task.is_hook
            && task.live.is_some()
            && task.has_delete_policy(tasks::DeletePolicy::BeforeHookCreation)
        {
            continue;
        }
        let skip_missing = SyncOptions::of_app(app)
            .for_object(&target)
            .skip_dry_run_on_missing_resource();
        let result = cluster.apply(&target, apply_options(app, &target, true)).await;
        let message = match result {
            Ok(_) => format!(
                "{} {} (dry run)",
                object_name(task),
                if task.live.is_some() {
                    "configured"
                } else {
                    "created"
                }
            ),
            Err(ClusterError::UnknownKind(_))
                if skip_missing || crds_in_sync.contains(&format!("{}/{}", task.group, task.kind)) =>
            {
                continue;
            }
            Err(e) => {
                failed = true;
                tasks[i].result = TaskResult::apply_failed(e.to_string());
                continue;
            }
        };
        if record_success {
            tasks[i].result = TaskResult {
                status: Some(tasks::ResultCode::Synced),
                phase: Some(tasks::OperationPhase::Succeeded),
                message,
            };
        }
    }
    failed
}

async fn release_finalizers(cluster: &impl Cluster, tasks: &mut [TaskState]) {
    for i in tasks::hooks_to_release(tasks) {
        let key = task_key(&tasks[i].task);
        if let Err(e) = cluster.remove_finalizer(&key, tasks::HOOK_FINALIZER).await {
            tasks[i].result = TaskResult::delete_failed(&tasks[i].result, e.to_string());
        }
    }
}

fn task_key(task: &SyncTask) -> ObjectKey {
    let obj = task.live.as_ref().or(task.target.as_ref());
    let version = obj
        .and_then(|o| o.get("apiVersion"))
        .and_then(Value::as_str)
        .map(|v| v.rsplit('/').next().unwrap_or(v).to_string())
        .unwrap_or_default();
    ObjectKey {
        group: task.group.clone(),
        version,
        kind: task.kind.clone(),
        namespace: task.namespace.clone(),
        name: task.name.clone(),
    }
}

async fn delete_hooks_of(cluster: &impl Cluster, tasks: &[TaskState], indexes: &[usize]) {
    for &i in indexes {
        let key = task_key(&tasks[i].task);
        let _ = cluster.remove_finalizer(&key, tasks::HOOK_FINALIZER).await;
        if let Err(e) = cluster.delete(&key, "background").await {
            tracing::warn!(object = %key, error = %e, "deleting a hook failed");
        }
    }
}

/// Runs one wave in upstream's order: release stale hook finalizers, prune, delete hooks that are to be
/// recreated, then apply each kind group in order. Results are recorded on the tasks.
async fn run_wave(cluster: &impl Cluster, app: &Application, tasks: &mut [TaskState], run: &WaveRun) {
    for &i in &run.release_finalizers {
        let key = task_key(&tasks[i].task);
        let _ = cluster.remove_finalizer(&key, tasks::HOOK_FINALIZER).await;
    }
    let propagation = SyncOptions::of_app(app).prune_propagation_policy();
    let mut prune_failed = false;
    for &i in &run.prune {
        let result = prune(cluster, &tasks[i].task, propagation.as_str()).await;
        prune_failed |= result.phase == Some(tasks::OperationPhase::Failed);
        tasks[i].result = result;
    }
    if prune_failed {
        return;
    }
    for &i in &run.delete_before_creation {
        let key = task_key(&tasks[i].task);
        let _ = cluster.remove_finalizer(&key, tasks::HOOK_FINALIZER).await;
        if let Err(e) = cluster.delete(&key, "background").await {
            tasks[i].result = TaskResult::delete_failed(&tasks[i].result, e.to_string());
        }
    }
    if !run.delete_before_creation.is_empty() {
        return;
    }
    for group in &run.apply {
        for &i in group {
            tasks[i].result = apply(cluster, app, &tasks[i].task).await;
        }
    }
}

async fn prune(cluster: &impl Cluster, task: &SyncTask, propagation: &str) -> TaskResult {
    match task.prune {
        Some(tasks::PruneMode::Skipped(message)) => TaskResult::prune_skipped(message),
        Some(tasks::PruneMode::RequiresConfirmation) => TaskResult::default(),
        _ => match cluster.delete(&task_key(task), propagation).await {
            Ok(()) => TaskResult::pruned(),
            Err(e) => TaskResult::prune_failed(e.to_string()),
        },
    }
}

async fn apply(cluster: &impl Cluster, app: &Application, task: &SyncTask) -> TaskResult {
    let Some(target) = &task.target else {
        return TaskResult::default();
    };
    match cluster.apply(target, apply_options(app, target, false)).await {
        Ok(_) => {
            let verb = if task.live.is_some() {
                "configured"
            } else {
                "created"
            };
            TaskResult::applied(format!("{} {verb}", object_name(task)))
        }
        Err(e) => TaskResult::apply_failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests;
