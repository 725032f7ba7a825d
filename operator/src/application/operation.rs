//! The `operation` handshake as Argo CD's controller performs it, pure: an operation is picked up into
//! `status.operationState` (Running), each task's result is kept in `syncResult.resources` (so a restarted
//! controller continues where it stopped), and a finished operation gets its phase, message and `finishedAt`
//! while `operation` is set to null in the same write. A successful, non-dry-run, non-selective sync is
//! appended to `status.history`, truncated to `revisionHistoryLimit`.

use std::collections::HashMap;

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use sluice_crds::application::{
    Application, Operation, OperationState, ResourceResult, RevisionHistory, SyncOperationResult,
};
use sluice_gitops::tasks::{OperationPhase, ResultCode, TaskResult, TaskState};

/// Phases of a whole operation.
pub mod phase {
    /// In progress.
    pub const RUNNING: &str = "Running";
    /// Being terminated by a user.
    pub const TERMINATING: &str = "Terminating";
    /// Done.
    pub const SUCCEEDED: &str = "Succeeded";
    /// A task failed.
    pub const FAILED: &str = "Failed";
    /// The operation could not be carried out.
    pub const ERROR: &str = "Error";
}

/// Default `revisionHistoryLimit`.
pub const DEFAULT_HISTORY_LIMIT: i64 = 10;

/// Whether an operation state is finished (Succeeded, Failed or Error).
pub fn is_completed(state: &OperationState) -> bool {
    matches!(
        state.phase.as_str(),
        phase::SUCCEEDED | phase::FAILED | phase::ERROR
    )
}

/// Whether the app has an operation in progress: Running or Terminating.
pub fn in_progress(app: &Application) -> bool {
    app.status
        .as_ref()
        .and_then(|s| s.operation_state.as_ref())
        .is_some_and(|s| matches!(s.phase.as_str(), phase::RUNNING | phase::TERMINATING))
}

/// The state of a newly picked-up operation.
pub fn begin(operation: &Operation, now: Timestamp) -> OperationState {
    OperationState {
        operation: operation.clone(),
        phase: phase::RUNNING.into(),
        message: None,
        started_at: Time(now),
        finished_at: None,
        retry_count: None,
        sync_result: None,
    }
}

/// `state` finished with `phase` and `message` at `now`.
pub fn conclude(state: &OperationState, phase: &str, message: &str, now: Timestamp) -> OperationState {
    OperationState {
        phase: phase.into(),
        message: Some(message.into()),
        finished_at: Some(Time(now)),
        ..state.clone()
    }
}

fn code_str(code: ResultCode) -> &'static str {
    match code {
        ResultCode::Synced => "Synced",
        ResultCode::SyncFailed => "SyncFailed",
        ResultCode::Pruned => "Pruned",
        ResultCode::PruneSkipped => "PruneSkipped",
    }
}

fn parse_code(text: &str) -> Option<ResultCode> {
    Some(match text {
        "Synced" => ResultCode::Synced,
        "SyncFailed" => ResultCode::SyncFailed,
        "Pruned" => ResultCode::Pruned,
        "PruneSkipped" => ResultCode::PruneSkipped,
        _ => return None,
    })
}

fn phase_str(p: OperationPhase) -> &'static str {
    match p {
        OperationPhase::Running => phase::RUNNING,
        OperationPhase::Succeeded => phase::SUCCEEDED,
        OperationPhase::Failed => phase::FAILED,
        OperationPhase::Error => phase::ERROR,
    }
}

fn parse_phase(text: &str) -> Option<OperationPhase> {
    Some(match text {
        phase::RUNNING | phase::TERMINATING => OperationPhase::Running,
        phase::SUCCEEDED => OperationPhase::Succeeded,
        phase::FAILED => OperationPhase::Failed,
        phase::ERROR => OperationPhase::Error,
        _ => return None,
    })
}

fn result_key(r: &ResourceResult) -> String {
    format!(
        "{}/{}/{}/{}:{}",
        r.group,
        r.kind,
        r.namespace,
        r.name,
        r.sync_phase.as_deref().unwrap_or("Sync")
    )
}

/// The task results recorded in an operation state, by [`sluice_gitops::tasks::SyncTask::result_key`].
pub fn stored_results(state: &OperationState) -> HashMap<String, TaskResult> {
    let results = state.sync_result.as_ref().and_then(|r| r.resources.as_ref());
    results
        .into_iter()
        .flatten()
        .map(|r| {
            let result = TaskResult {
                status: r.status.as_deref().and_then(parse_code),
                phase: r.hook_phase.as_deref().and_then(parse_phase),
                message: r.message.clone().unwrap_or_default(),
            };
            (result_key(r), result)
        })
        .collect()
}

/// The `syncResult.resources` of the tasks that have started, in task order.
pub fn resource_results(tasks: &[TaskState]) -> Vec<ResourceResult> {
    tasks
        .iter()
        .filter(|s| !s.result.is_pending())
        .map(|s| {
            let t = &s.task;
            let version = t
                .target
                .as_ref()
                .or(t.live.as_ref())
                .and_then(|o| o.get("apiVersion"))
                .and_then(|v| v.as_str())
                .map(|v| v.rsplit('/').next().unwrap_or(v).to_string())
                .unwrap_or_default();
            let images = t
                .target
                .as_ref()
                .map(super::compare::images_of)
                .filter(|i| !i.is_empty());
            ResourceResult {
                group: t.group.clone(),
                version,
                kind: t.kind.clone(),
                namespace: t.namespace.clone(),
                name: t.name.clone(),
                status: s.result.status.map(|c| code_str(c).to_string()),
                message: (!s.result.message.is_empty()).then(|| s.result.message.clone()),
                hook_type: t.hook_type().map(|h| format!("{h:?}")),
                hook_phase: s.result.phase.map(|p| phase_str(p).to_string()),
                sync_phase: Some(t.phase.as_str().to_string()),
                images,
            }
        })
        .collect()
}

/// The sync result of `state` with `revision` and the task results of `tasks`.
pub fn with_results(
    state: &OperationState,
    revision: &str,
    app: &Application,
    tasks: &[TaskState],
) -> OperationState {
    let mut next = state.clone();
    let resources = resource_results(tasks);
    next.sync_result = Some(SyncOperationResult {
        revision: revision.into(),
        revisions: None,
        source: app.spec.source.clone(),
        sources: None,
        resources: (!resources.is_empty()).then_some(resources),
        managed_namespace_metadata: app
            .spec
            .sync_policy
            .as_ref()
            .and_then(|p| p.managed_namespace_metadata.clone()),
    });
    next
}

/// Whether an operation syncs only some resources (its hooks do not run, and it leaves no history).
pub fn is_selective(operation: &Operation) -> bool {
    operation
        .sync
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .is_some_and(|r| !r.is_empty())
}

/// Whether an operation only asks what a sync would do.
pub fn is_dry_run(operation: &Operation) -> bool {
    operation.sync.as_ref().and_then(|s| s.dry_run).unwrap_or(false)
}

/// `history` with the successful sync of `state` appended (ids increase by one), oldest first, truncated to
/// the app's `revisionHistoryLimit`; unchanged for dry runs, selective syncs and unsuccessful operations.
pub fn with_history(app: &Application, state: &OperationState, now: Timestamp) -> Vec<RevisionHistory> {
    let mut history = app
        .status
        .as_ref()
        .and_then(|s| s.history.clone())
        .unwrap_or_default();
    let op = &state.operation;
    if state.phase != phase::SUCCEEDED || is_dry_run(op) || is_selective(op) {
        return history;
    }
    let next_id = history.iter().map(|h| h.id).max().map_or(0, |id| id + 1);
    history.push(RevisionHistory {
        id: next_id,
        revision: state.sync_result.as_ref().map(|r| r.revision.clone()),
        revisions: None,
        source: app.spec.source.clone(),
        sources: None,
        deployed_at: Time(now),
        deploy_started_at: Some(state.started_at.clone()),
        initiated_by: op.initiated_by.clone(),
    });
    let limit = app
        .spec
        .revision_history_limit
        .unwrap_or(DEFAULT_HISTORY_LIMIT)
        .max(0) as usize;
    if history.len() > limit {
        history.drain(..history.len() - limit);
    }
    history
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_crds::application::{OperationInitiator, SyncOperation, SyncOperationResource};
    use sluice_gitops::tasks::{SyncPhase, SyncTask};

    fn now() -> Timestamp {
        "2026-12-02T10:00:00Z".parse().unwrap()
    }

    fn app(limit: Option<i64>, history: usize) -> Application {
        let mut app: Application = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "shop", "namespace": "argocd"},
            "spec": {"source": {"repoURL": "git://x/r.git", "path": "."},
                     "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"},
                     "project": "default"}
        }))
        .unwrap();
        app.spec.revision_history_limit = limit;
        let entries = (0..history)
            .map(|i| RevisionHistory {
                id: i as i64,
                revision: Some(format!("rev{i}")),
                revisions: None,
                source: None,
                sources: None,
                deployed_at: Time(now()),
                deploy_started_at: None,
                initiated_by: None,
            })
            .collect();
        app.status = Some(sluice_crds::application::ApplicationStatus {
            history: Some(entries),
            ..Default::default()
        });
        app
    }

    fn sync_op() -> Operation {
        Operation {
            sync: Some(SyncOperation::default()),
            initiated_by: Some(OperationInitiator {
                username: Some("me".into()),
                automated: None,
            }),
            ..Default::default()
        }
    }

    fn task(kind: &str, name: &str, phase: SyncPhase, hook: bool) -> SyncTask {
        SyncTask {
            phase,
            wave: 0,
            group: if kind == "Job" {
                "batch".into()
            } else {
                String::new()
            },
            kind: kind.into(),
            namespace: "shop".into(),
            name: name.into(),
            target: Some(
                json!({"apiVersion": if kind == "Job" {"batch/v1"} else {"v1"}, "kind": kind,
                "metadata": {"name": name}, "spec": {"template": {"spec": {"containers": [{"image": "m:1"}]}}}}),
            ),
            live: None,
            is_hook: hook,
            delete_policies: vec![],
            prune: None,
        }
    }

    #[test]
    fn begin_and_conclude() {
        let s = begin(&sync_op(), now());
        assert_eq!(s.phase, "Running");
        assert!(s.finished_at.is_none());
        let done = conclude(&s, phase::SUCCEEDED, "successfully synced (all tasks run)", now());
        assert!(is_completed(&done));
        assert!(!is_completed(&s));
        assert_eq!(done.finished_at, Some(Time(now())));
        assert_eq!(
            done.message.as_deref(),
            Some("successfully synced (all tasks run)")
        );
    }

    #[test]
    fn results_round_trip_through_the_status() {
        let mut hook = TaskState::new(task("Job", "migrate", SyncPhase::PreSync, true));
        hook.result = TaskResult::applied("job.batch/migrate created");
        let mut cm = TaskState::new(task("ConfigMap", "cfg", SyncPhase::Sync, false));
        cm.result = TaskResult::apply_failed("admission webhook refused");
        let pending = TaskState::new(task("ConfigMap", "later", SyncPhase::Sync, false));
        let tasks = vec![hook.clone(), cm.clone(), pending];
        let state = with_results(&begin(&sync_op(), now()), "abc", &app(None, 0), &tasks);
        let rr = state.sync_result.as_ref().unwrap().resources.as_ref().unwrap();
        assert_eq!(rr.len(), 2);
        assert_eq!(rr[0].hook_type.as_deref(), Some("PreSync"));
        assert_eq!(rr[0].hook_phase.as_deref(), Some("Running"));
        assert_eq!(rr[0].sync_phase.as_deref(), Some("PreSync"));
        assert_eq!(rr[0].version, "v1");
        assert_eq!(rr[0].images, Some(vec!["m:1".to_string()]));
        assert_eq!(rr[1].status.as_deref(), Some("SyncFailed"));
        assert_eq!(rr[1].hook_type, None);
        let stored = stored_results(&state);
        assert_eq!(stored[&hook.task.result_key()], hook.result);
        assert_eq!(stored[&cm.task.result_key()], cm.result);
        assert_eq!(stored.len(), 2);
    }

    #[test]
    fn history_appends_successful_full_syncs_only() {
        let a = app(Some(3), 3);
        let ok = conclude(&begin(&sync_op(), now()), phase::SUCCEEDED, "ok", now());
        let ok = with_results(&ok, "new", &a, &[]);
        let h = with_history(&a, &ok, now());
        assert_eq!(h.len(), 3);
        assert_eq!(h.last().unwrap().revision.as_deref(), Some("new"));
        assert_eq!(h.last().unwrap().id, 3);
        assert_eq!(h[0].id, 1);
        let failed = conclude(&ok, phase::FAILED, "no", now());
        assert_eq!(with_history(&a, &failed, now()).len(), 3);
        assert_eq!(with_history(&a, &failed, now())[2].id, 2);
        let mut selective = sync_op();
        selective.sync.as_mut().unwrap().resources = Some(vec![SyncOperationResource {
            group: None,
            kind: "ConfigMap".into(),
            name: "cfg".into(),
            namespace: None,
        }]);
        let sel = conclude(&begin(&selective, now()), phase::SUCCEEDED, "ok", now());
        assert_eq!(with_history(&a, &sel, now())[2].id, 2);
        let mut dry = sync_op();
        dry.sync.as_mut().unwrap().dry_run = Some(true);
        let dry = conclude(&begin(&dry, now()), phase::SUCCEEDED, "ok", now());
        assert_eq!(with_history(&a, &dry, now())[2].id, 2);
        let fresh = app(None, 0);
        assert_eq!(with_history(&fresh, &ok, now())[0].id, 0);
    }
}
