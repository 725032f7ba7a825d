//! A sync driven step by step against an in-memory cluster.

use std::{collections::BTreeMap, sync::Mutex};

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use sluice_crds::application::{Application, Operation, OperationState, SyncOperation};

use super::*;
use crate::application::cluster::{ApplyOptions, Cluster, ClusterError, ObjectKey};

#[derive(Default)]
struct FakeCluster {
    objects: Mutex<BTreeMap<(String, String, String, String), Value>>,
    refuse: Vec<String>,
    log: Mutex<Vec<String>>,
}

fn id(key: &ObjectKey) -> (String, String, String, String) {
    key.identity()
}

impl FakeCluster {
    fn put(&self, obj: Value) {
        self.objects.lock().unwrap().insert(id(&ObjectKey::of(&obj)), obj);
    }

    fn object(&self, kind: &str, name: &str) -> Option<Value> {
        let objects = self.objects.lock().unwrap();
        objects
            .iter()
            .find(|(k, _)| k.1 == kind && k.3 == name)
            .map(|(_, v)| v.clone())
    }

    fn calls(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    fn lives(&self) -> Vec<Value> {
        self.objects.lock().unwrap().values().cloned().collect()
    }
}

impl Cluster for FakeCluster {
    async fn namespaced(&self, _: &str, kind: &str) -> Result<Option<bool>, ClusterError> {
        Ok(Some(kind != "Namespace"))
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<Value>, ClusterError> {
        Ok(self.objects.lock().unwrap().get(&id(key)).cloned())
    }

    async fn apply(&self, obj: &Value, options: ApplyOptions) -> Result<Value, ClusterError> {
        let key = ObjectKey::of(obj);
        if self.refuse.contains(&key.name) {
            return Err(ClusterError::Refused {
                code: 422,
                message: format!("{} \"{}\" is invalid: spec: Required value", key.kind, key.name),
            });
        }
        let verb = if options.dry_run { "dry-run" } else { "apply" };
        self.log.lock().unwrap().push(format!("{verb} {}", key.name));
        if !options.dry_run {
            self.put(obj.clone());
        }
        Ok(obj.clone())
    }

    async fn delete(&self, key: &ObjectKey, _: &str) -> Result<(), ClusterError> {
        self.log.lock().unwrap().push(format!("delete {}", key.name));
        self.objects.lock().unwrap().remove(&id(key));
        Ok(())
    }

    async fn remove_finalizer(&self, key: &ObjectKey, finalizer: &str) -> Result<(), ClusterError> {
        if let Some(obj) = self.objects.lock().unwrap().get_mut(&id(key))
            && let Some(f) = obj
                .pointer_mut("/metadata/finalizers")
                .and_then(Value::as_array_mut)
        {
            f.retain(|v| v.as_str() != Some(finalizer));
        }
        Ok(())
    }
}

fn app(options: &[&str]) -> Application {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "shop", "namespace": "argocd"},
        "spec": {"source": {"repoURL": "git://127.0.0.1/r.git", "path": "."},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"},
                 "project": "default", "syncPolicy": {"syncOptions": options}}
    }))
    .unwrap()
}

fn config_map(name: &str, wave: i64) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "shop", "annotations": {"argocd.argoproj.io/sync-wave": wave.to_string()}},
           "data": {"k": "v"}})
}

fn job(name: &str, hook: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job",
           "metadata": {"name": name, "namespace": "shop", "annotations": {"argocd.argoproj.io/hook": hook}},
           "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "m", "image": "m:1"}]}}}})
}

fn state(prune: bool, dry_run: bool) -> OperationState {
    let op = Operation {
        sync: Some(SyncOperation {
            prune: Some(prune),
            dry_run: Some(dry_run),
            ..Default::default()
        }),
        ..Default::default()
    };
    operation::begin(&op, "2026-12-02T10:00:00Z".parse::<Timestamp>().unwrap())
}

/// The tasks of one reconcile: from the targets and the fake's objects, with the stored results.
fn states(
    cluster: &FakeCluster,
    app: &Application,
    st: &OperationState,
    targets: &[Value],
) -> Vec<TaskState> {
    let lives = cluster.lives();
    let namespaced = |_: &str, kind: &str| kind != "Namespace";
    let in_sync = |_: &ObjectKey| false;
    let input = StepInput {
        app,
        state: st,
        targets,
        lives: &lives,
        revision: "0123456789abcdef",
        namespaced: &namespaced,
        in_sync: &in_sync,
    };
    task_states(&input).unwrap()
}

/// One reconcile's step: the tasks, the step, and its results stored in the operation state.
async fn run(
    cluster: &FakeCluster,
    app: &Application,
    st: &mut OperationState,
    targets: &[Value],
) -> Outcome {
    let tasks = states(cluster, app, st, targets);
    let op = st.operation.clone();
    let outcome = step(cluster, app, &op, tasks, false).await;
    *st = operation::with_results(st, "0123456789abcdef", app, &outcome.tasks);
    outcome
}

#[tokio::test]
async fn one_wave_is_dry_run_then_applied_and_succeeds_at_once() {
    let cluster = FakeCluster::default();
    let app = app(&[]);
    let mut st = state(false, false);
    let targets = vec![config_map("a", 0), config_map("b", 0)];
    let out = run(&cluster, &app, &mut st, &targets).await;
    assert_eq!(out.phase, "Succeeded");
    assert_eq!(out.message, "successfully synced (all tasks run)");
    assert_eq!(
        cluster.calls(),
        vec!["dry-run a", "dry-run b", "apply a", "apply b"]
    );
    let results = st.sync_result.unwrap().resources.unwrap();
    assert!(results.iter().all(|r| r.status.as_deref() == Some("Synced")));
    assert_eq!(results[0].message.as_deref(), Some("configmap/a created"));
}

#[tokio::test]
async fn waves_run_in_order_with_hooks_around_them() {
    let cluster = FakeCluster::default();
    let app = app(&[]);
    let mut st = state(false, false);
    let targets = vec![
        config_map("late", 1),
        config_map("early", 0),
        job("migrate", "PreSync"),
        job("smoke", "PostSync"),
    ];
    let out = run(&cluster, &app, &mut st, &targets).await;
    assert_eq!(out.phase, "Running");
    assert!(cluster.object("Job", "migrate").is_some());
    assert!(cluster.object("ConfigMap", "early").is_none());
    // The hook is still running: nothing else starts.
    let out = run(&cluster, &app, &mut st, &targets).await;
    assert_eq!(out.phase, "Running");
    assert!(
        out.message
            .contains("waiting for completion of hook batch/Job/migrate"),
        "{}",
        out.message
    );
    let mut done = cluster.object("Job", "migrate").unwrap();
    done["status"] = json!({"conditions": [{"type": "Complete", "status": "True"}]});
    cluster.put(done);
    run(&cluster, &app, &mut st, &targets).await;
    assert!(cluster.object("ConfigMap", "early").is_some());
    assert!(
        cluster.object("ConfigMap", "late").is_none(),
        "wave 1 waits for wave 0"
    );
    run(&cluster, &app, &mut st, &targets).await;
    assert!(cluster.object("ConfigMap", "late").is_some());
    let out = run(&cluster, &app, &mut st, &targets).await;
    assert!(cluster.object("Job", "smoke").is_some(), "{out:?}");
    let mut done = cluster.object("Job", "smoke").unwrap();
    done["status"] = json!({"conditions": [{"type": "Complete", "status": "True"}]});
    cluster.put(done);
    let out = run(&cluster, &app, &mut st, &targets).await;
    assert_eq!(out.phase, "Succeeded", "{out:?}");
    let applied: Vec<String> = cluster
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("apply"))
        .collect();
    assert_eq!(
        applied,
        vec!["apply migrate", "apply early", "apply late", "apply smoke"]
    );
}

#[tokio::test]
async fn a_refused_object_fails_the_dry_run_and_nothing_is_applied() {
    let cluster = FakeCluster {
        refuse: vec!["bad".into()],
        ..Default::default()
    };
    let app = app(&[]);
    let mut st = state(false, false);
    let out = run(
        &cluster,
        &app,
        &mut st,
        &[config_map("good", 0), config_map("bad", 0)],
    )
    .await;
    assert_eq!(out.phase, "Failed");
    assert_eq!(out.message, "one or more objects failed to apply (dry run)");
    assert!(cluster.lives().is_empty());
    let results = st.sync_result.unwrap().resources.unwrap();
    let bad = results.iter().find(|r| r.name == "bad").unwrap();
    assert_eq!(bad.status.as_deref(), Some("SyncFailed"));
    assert!(bad.message.as_deref().unwrap().contains("Required value"));
}

#[tokio::test]
async fn prune_deletes_extraneous_objects_only_when_asked() {
    for prune in [false, true] {
        let cluster = FakeCluster::default();
        let mut old = config_map("old", 0);
        old["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"] = json!("shop:/ConfigMap:shop/old");
        cluster.put(old);
        let app = app(&[]);
        let mut st = state(prune, false);
        let out = run(&cluster, &app, &mut st, &[config_map("new", 0)]).await;
        assert_eq!(out.phase, "Succeeded");
        assert_eq!(cluster.object("ConfigMap", "old").is_none(), prune);
        let results = st.sync_result.unwrap().resources.unwrap();
        let old = results.iter().find(|r| r.name == "old").unwrap();
        let expected = if prune { "Pruned" } else { "PruneSkipped" };
        assert_eq!(old.status.as_deref(), Some(expected));
    }
}

#[tokio::test]
async fn a_dry_run_operation_changes_nothing() {
    let cluster = FakeCluster::default();
    let app = app(&[]);
    let mut st = state(false, true);
    let out = run(&cluster, &app, &mut st, &[config_map("a", 0)]).await;
    assert_eq!(out.phase, "Succeeded");
    assert!(cluster.lives().is_empty());
    assert_eq!(cluster.calls(), vec!["dry-run a"]);
    let results = st.sync_result.unwrap().resources.unwrap();
    assert_eq!(
        results[0].message.as_deref(),
        Some("configmap/a created (dry run)")
    );
}

#[tokio::test]
async fn a_failed_wave_runs_the_sync_fail_hooks() {
    let cluster = FakeCluster::default();
    let app = app(&[]);
    let mut st = state(false, false);
    let targets = vec![
        job("migrate", "PreSync"),
        config_map("a", 0),
        job("cleanup", "SyncFail"),
    ];
    run(&cluster, &app, &mut st, &targets).await;
    let mut failed = cluster.object("Job", "migrate").unwrap();
    failed["status"] =
        json!({"conditions": [{"type": "Failed", "status": "True", "message": "BackoffLimitExceeded"}]});
    cluster.put(failed);
    let out = run(&cluster, &app, &mut st, &targets).await;
    assert_eq!(out.phase, "Running", "{out:?}");
    assert!(
        cluster.object("Job", "cleanup").is_some(),
        "the SyncFail hook starts"
    );
    assert!(cluster.object("ConfigMap", "a").is_none());
    let mut done = cluster.object("Job", "cleanup").unwrap();
    done["status"] = json!({"conditions": [{"type": "Complete", "status": "True"}]});
    cluster.put(done);
    let out = run(&cluster, &app, &mut st, &targets).await;
    assert_eq!(out.phase, "Failed", "{out:?}");
}

#[tokio::test]
async fn terminating_deletes_running_hooks_and_fails_the_operation() {
    let cluster = FakeCluster::default();
    let app = app(&[]);
    let mut st = state(false, false);
    let targets = vec![job("migrate", "PreSync"), config_map("a", 0)];
    let out = run(&cluster, &app, &mut st, &targets).await;
    assert_eq!(out.phase, "Running");
    assert!(cluster.object("Job", "migrate").is_some());
    let tasks = states(&cluster, &app, &st, &targets);
    let op = st.operation.clone();
    let out = step(&cluster, &app, &op, tasks, true).await;
    assert_eq!(out.phase, "Failed");
    assert_eq!(out.message, "Operation terminated");
    assert!(
        cluster.object("Job", "migrate").is_none(),
        "the running hook is deleted"
    );
    assert!(
        cluster.object("ConfigMap", "a").is_none(),
        "nothing else is applied"
    );
}

#[test]
fn a_target_outside_the_project_fails_its_task_and_refuses_the_step() {
    let cluster = FakeCluster::default();
    let app = app(&[]);
    let st = state(false, false);
    let targets = [config_map("fine", 0), config_map("forbidden", 0)];
    let mut tasks = states(&cluster, &app, &st, &targets);
    let violation = |obj: &Value| {
        (obj["metadata"]["name"] == "forbidden")
            .then(|| "namespace kube-system is not permitted in project 'team'".to_string())
    };
    assert!(refuse_outside_project(&mut tasks, &violation));
    let failed: Vec<_> = tasks
        .iter()
        .filter(|t| t.result.phase.is_some())
        .map(|t| (t.task.result_key(), t.result.message.clone()))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].0.contains("forbidden"));
    assert_eq!(
        failed[0].1,
        "namespace kube-system is not permitted in project 'team'"
    );
    let mut inside = states(&cluster, &app, &st, &targets[..1]);
    assert!(!refuse_outside_project(&mut inside, &violation));
    assert!(cluster.calls().is_empty(), "nothing is applied");
}
