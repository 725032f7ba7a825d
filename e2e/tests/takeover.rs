//! Taking over from Argo Rollouts: a Rollout whose ReplicaSets, Services, VirtualService and status Argo
//! Rollouts wrote is continued by Sluice where Argo left it (the same ReplicaSets, the same step, the same
//! traffic), and a later template change is an ordinary new revision. Every hash is Argo's own, computed by Go
//! (the `gohash` oracle) from the objects as the API server returns them; none is computed or written here.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Debug,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::anyhow;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::{Api, Resource, ResourceExt, api::DynamicObject, runtime::watcher};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sluice_crds::rollout::Rollout;
use sluice_e2e::{
    argo_state::{
        HASH, Hashes, Kubectl, REVISION, argo_paused_blue_green, argo_paused_canary, argo_replica_set,
        condition, create_replica_set, get_json, now, steps_hash, template_hash,
    },
    cluster::wait_for,
    gohash::{Build, Oracle},
    harness::{Operator, TestNamespace, install_crds},
    rollouts::{canary_rollout_yaml, phase, promote, step, wait_rollout},
    watch::Watch,
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");

/// A namespace with the CRDs and no operator yet (Argo Rollouts is the one that was running), and the oracle.
async fn before_sluice(test: &str) -> (TestNamespace, Oracle) {
    let ns = TestNamespace::new(SUPERVISOR, test).await.expect("namespace");
    install_crds(&ns.info, &ns.client).await.expect("CRDs");
    (ns, Oracle::start(Build::ControlPlane).expect("the hash oracle"))
}

/// Every distinct consecutive view of the objects of one kind in the namespace, from a watch that is
/// established before the test writes anything: a change that comes and goes is recorded too.
struct Seen<T> {
    views: Arc<Mutex<Vec<T>>>,
    task: tokio::task::JoinHandle<()>,
}

impl<T: Clone + PartialEq + Send + 'static> Seen<T> {
    async fn start<K>(api: Api<K>, view: fn(K) -> T) -> Self
    where
        K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
    {
        let views = Arc::new(Mutex::new(Vec::new()));
        let ready = Arc::new(AtomicBool::new(false));
        let (views2, ready2) = (views.clone(), ready.clone());
        let task = tokio::spawn(async move {
            let stream = watcher(api, watcher::Config::default());
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::InitDone) => ready2.store(true, Ordering::SeqCst),
                    Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => {
                        let v = view(obj);
                        let mut seen = views2.lock().unwrap();
                        if seen.last() != Some(&v) {
                            seen.push(v);
                        }
                    }
                    _ => {}
                }
            }
        });
        wait_for("the watch to start", Duration::from_secs(10), || async {
            if ready.load(Ordering::SeqCst) {
                Ok(())
            } else {
                Err(anyhow!("not yet"))
            }
        })
        .await
        .unwrap();
        Self { views, task }
    }

    fn all(&self) -> Vec<T> {
        self.views.lock().unwrap().clone()
    }
}

impl<T> Drop for Seen<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// (name, uid, revision annotation) of a ReplicaSet.
type RsId = (String, String, String);

fn rs_id(rs: ReplicaSet) -> RsId {
    let revision = rs.annotations().get(REVISION).cloned().unwrap_or_default();
    (rs.name_any(), rs.uid().unwrap_or_default(), revision)
}

/// Watches every ReplicaSet of the namespace, by name, uid and revision.
async fn watch_replica_sets(ns: &TestNamespace) -> Seen<RsId> {
    Seen::start(ns.api::<ReplicaSet>(), rs_id).await
}

/// Each (name, uid, revision) of a ReplicaSet ever seen.
fn ever(rss: &Seen<RsId>) -> BTreeSet<RsId> {
    rss.all().into_iter().collect()
}

/// The ReplicaSets the watch has seen once it has seen `n` of them (the watch runs on this test's thread, so it
/// catches up only while the test awaits).
async fn seen(rss: &Seen<RsId>, n: usize) -> BTreeSet<RsId> {
    wait_for(
        "the watch to see Argo's ReplicaSets",
        Duration::from_secs(10),
        || async {
            let all = ever(rss);
            if all.len() == n {
                Ok(())
            } else {
                Err(anyhow!("{all:?}"))
            }
        },
    )
    .await
    .unwrap();
    ever(rss)
}

/// spec.replicas of each ReplicaSet of the namespace, by name.
async fn replica_counts(ns: &TestNamespace) -> BTreeMap<String, i32> {
    let api: Api<ReplicaSet> = ns.api();
    let rss = api.list(&Default::default()).await.unwrap().items;
    rss.into_iter()
        .map(|rs| (rs.name_any(), rs.spec.and_then(|s| s.replicas).unwrap_or(0)))
        .collect()
}

/// (stable, canary) weights of the first http route.
fn weights(vs: DynamicObject) -> (i64, i64) {
    let route = &vs.data["spec"]["http"][0]["route"];
    (
        route[0]["weight"].as_i64().unwrap_or(-1),
        route[1]["weight"].as_i64().unwrap_or(-1),
    )
}

/// The value of a metric without labels in the operator's `/metrics`, 0 when absent.
async fn metric(op: &Operator, name: &str) -> anyhow::Result<u64> {
    let text = op.metrics().await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0))
}

/// Waits until Sluice has finished its first reconcile of the Rollout (the one that records
/// RolloutAddedToInformer: no two reconciles of one Rollout run at once), lets it run a couple of seconds more
/// for whatever that reconcile set off, and checks that no reconcile failed.
async fn sluice_has_looked(ns: &TestNamespace, op: &Operator, rollout: &str) {
    let selector = format!("--field-selector=involvedObject.name={rollout}");
    wait_for("Sluice's first reconcile", Duration::from_secs(30), || async {
        let events = ns.kubectl(&["get", "events", &selector, "-o", "json"], None)?;
        let reconciles = metric(op, "rollout_reconcile_count").await?;
        if events.contains("RolloutAddedToInformer") && reconciles >= 1 {
            Ok(())
        } else {
            Err(anyhow!("{reconciles} reconciles"))
        }
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(metric(op, "rollout_reconcile_error_total").await.unwrap(), 0);
}

// ---- 1. A canary paused at a middle step ----------------------------------------------------------------

/// (step index, step hash, phase, revision) of a Rollout.
type StepView = (i32, String, String, String);

fn step_view(ro: Rollout) -> StepView {
    let hash = ro
        .status
        .as_ref()
        .and_then(|s| s.current_step_hash.clone())
        .unwrap_or_default();
    let revision = ro.annotations().get(REVISION).cloned().unwrap_or_default();
    (step(&ro), hash, phase(&ro).0, revision)
}

#[tokio::test]
async fn a_canary_paused_at_a_middle_step_is_taken_over_without_a_step_lost() {
    let (ns, mut oracle) = before_sluice("takeover-canary").await;
    let rss = watch_replica_sets(&ns).await;
    let vs = Seen::start(ns.virtual_services(), weights).await;
    let Hashes {
        stable,
        new: canary,
        steps,
    } = argo_paused_canary(&ns, &mut oracle, "mid").await.unwrap();
    let argo_rss = seen(&rss, 2).await;
    let stable_svc = Watch::selector(&ns, "mid-stable").await;
    let canary_svc = Watch::selector(&ns, "mid-canary").await;
    let rollout = Watch::start::<Rollout>(&ns, "mid", step_view).await;
    let paused: StepView = (3, steps.clone(), "Paused".into(), "2".into());
    assert_eq!(rollout.seen(), vec![paused.clone()]);

    let op = Operator::start(&ns).unwrap();
    sluice_has_looked(&ns, &op, "mid").await;
    assert_eq!(
        rollout.seen(),
        vec![paused.clone()],
        "Sluice keeps the step and its hash"
    );
    let ro: Rollout = ns.api().get("mid").await.unwrap();
    let st = ro.status.clone().unwrap();
    assert_eq!(st.current_pod_hash.as_deref(), Some(canary.as_str()));
    assert_eq!(st.stable_rs.as_deref(), Some(stable.as_str()));
    assert_eq!(st.controller_pause, Some(true));
    let reasons: Vec<String> = st
        .pause_conditions
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.reason)
        .collect();
    assert_eq!(reasons, ["CanaryPauseStep"]);
    assert_eq!(phase(&ro), ("Paused".into(), "CanaryPauseStep".into()));
    let progressing = st
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.r#type == "Progressing")
        .map(|c| (c.status, c.reason, c.message));
    let argo_wrote = (
        "Unknown".into(),
        "RolloutPaused".into(),
        "Rollout is paused".into(),
    );
    assert_eq!(
        progressing,
        Some(argo_wrote),
        "the Progressing condition Argo wrote stands"
    );
    assert_eq!(vs.all(), [(60, 40)], "the router is left at 60/40");
    assert_eq!(stable_svc.seen(), [Some(stable.clone())]);
    assert_eq!(canary_svc.seen(), [Some(canary.clone())]);
    let counts = BTreeMap::from([(format!("mid-{stable}"), 5), (format!("mid-{canary}"), 2)]);
    assert_eq!(replica_counts(&ns).await, counts, "nothing rescaled");
    assert_eq!(
        ever(&rss),
        argo_rss,
        "no ReplicaSet made, none renamed or re-revisioned"
    );

    promote(&ns, "mid");
    wait_rollout(&ns, "mid", "the next pause", 60, |r| {
        step(r) == 5 && phase(r).0 == "Paused"
    })
    .await;
    let views = rollout.seen();
    assert!(
        views.iter().any(|v| v.0 == 4),
        "the step after the pause is setWeight 60: {views:?}"
    );
    assert!(views.iter().all(|v| v.1 == steps && v.3 == "2"), "{views:?}");
    wait_for("the router at 40/60", Duration::from_secs(30), || async {
        let seen = vs.all();
        if seen.last() == Some(&(40, 60)) {
            Ok(())
        } else {
            Err(anyhow!("{seen:?}"))
        }
    })
    .await
    .unwrap();
    assert_eq!(vs.all(), [(60, 40), (40, 60)]);
    assert_eq!(stable_svc.seen(), [Some(stable)]);
    assert_eq!(canary_svc.seen(), [Some(canary)]);
    assert_eq!(ever(&rss), argo_rss, "still Argo's two ReplicaSets");
}

// ---- 2. A blue-green paused before promotion ------------------------------------------------------------

/// (phase, currentPodHash, stableRS, activeSelector, previewSelector, revision) of a blue-green Rollout.
type BlueGreenView = (String, String, String, String, String, String);

fn blue_green_view(ro: Rollout) -> BlueGreenView {
    let st = ro.status.clone().unwrap_or_default();
    let bg = st.blue_green.clone().unwrap_or_default();
    let revision = ro.annotations().get(REVISION).cloned().unwrap_or_default();
    (
        phase(&ro).0,
        st.current_pod_hash.unwrap_or_default(),
        st.stable_rs.unwrap_or_default(),
        bg.active_selector.unwrap_or_default(),
        bg.preview_selector.unwrap_or_default(),
        revision,
    )
}

#[tokio::test]
async fn a_blue_green_paused_before_promotion_is_taken_over() {
    let (ns, mut oracle) = before_sluice("takeover-bg").await;
    let rss = watch_replica_sets(&ns).await;
    let Hashes { stable: old, new, .. } = argo_paused_blue_green(&ns, &mut oracle, "bg").await.unwrap();
    let argo_rss = seen(&rss, 2).await;
    let active = Watch::selector(&ns, "bg-active").await;
    let preview = Watch::selector(&ns, "bg-preview").await;
    let rollout = Watch::start::<Rollout>(&ns, "bg", blue_green_view).await;
    let paused: BlueGreenView = (
        "Paused".into(),
        new.clone(),
        old.clone(),
        old.clone(),
        new.clone(),
        "2".into(),
    );
    assert_eq!(rollout.seen(), vec![paused.clone()]);

    let op = Operator::start(&ns).unwrap();
    sluice_has_looked(&ns, &op, "bg").await;
    assert_eq!(rollout.seen(), [paused], "still paused before promotion");
    let ro: Rollout = ns.api().get("bg").await.unwrap();
    let st = ro.status.clone().unwrap();
    assert_eq!(st.controller_pause, Some(true));
    let reasons: Vec<String> = st
        .pause_conditions
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.reason)
        .collect();
    assert_eq!(reasons, ["BlueGreenPause"]);
    assert_eq!(
        active.seen(),
        [Some(old.clone())],
        "the active Service stays on the old"
    );
    assert_eq!(preview.seen(), [Some(new.clone())]);
    let counts = BTreeMap::from([(format!("bg-{old}"), 3), (format!("bg-{new}"), 3)]);
    assert_eq!(replica_counts(&ns).await, counts, "nothing rescaled");
    assert_eq!(
        ever(&rss),
        argo_rss,
        "no ReplicaSet made, none renamed or re-revisioned"
    );

    promote(&ns, "bg");
    active.wait_seen(&[&old, &new]).await;
    wait_rollout(&ns, "bg", "Healthy on the new", 60, |r| {
        phase(r).0 == "Healthy"
            && r.status.as_ref().and_then(|s| s.stable_rs.as_deref()) == Some(new.as_str())
    })
    .await;
    assert_eq!(preview.seen(), [Some(new.clone())]);
    assert_eq!(ever(&rss), argo_rss, "still Argo's two ReplicaSets");
}

// ---- 3. A template change after takeover that only removes a field -------------------------------------

/// A fully promoted canary of 3 replicas at v1 whose container has an environment variable, revision 1.
fn env_canary_yaml(name: &str) -> String {
    let steps = "      steps:\n      - setWeight: 50\n      - pause: {}\n";
    canary_rollout_yaml(name, 3, &format!("{name}:v1"), steps)
        .replace(
            &format!("        image: {name}:v1\n"),
            &format!("        image: {name}:v1\n        env: [{{name: EXTRA, value: \"1\"}}]\n"),
        )
        .replace(
            &format!("metadata:\n  name: {name}\n"),
            &format!("metadata:\n  name: {name}\n  annotations: {{{REVISION}: \"1\"}}\n"),
        )
}

/// The status Argo writes for a canary that finished all its steps on `hash`.
fn canary_healthy_status(ro: &Value, hash: &str, steps: &str, at: &str) -> Value {
    let name = ro["metadata"]["name"].as_str().unwrap();
    let progressed = format!("ReplicaSet \"{name}-{hash}\" has successfully progressed.");
    json!({"status": {
        "HPAReplicas": 3, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
        "selector": format!("app={name}"),
        "currentPodHash": hash,
        "stableRS": hash,
        "currentStepIndex": 2,
        "currentStepHash": steps,
        "canary": {},
        "blueGreen": {},
        "observedGeneration": ro["metadata"]["generation"].to_string(),
        "phase": "Healthy",
        "conditions": [
            condition("Progressing", "True", "NewReplicaSetAvailable", &progressed, at),
            condition("Available", "True", "AvailableReason", "Rollout has minimum availability", at),
            condition("Healthy", "True", "RolloutHealthy", "Rollout is healthy", at),
            condition("Completed", "True", "RolloutCompleted", "RolloutCompleted", at),
        ],
    }})
}

/// (phase, step index, currentPodHash, stableRS, revision) of a canary Rollout.
type PromotedView = (String, i32, String, String, String);

fn promoted_view(ro: Rollout) -> PromotedView {
    let st = ro.status.clone().unwrap_or_default();
    let revision = ro.annotations().get(REVISION).cloned().unwrap_or_default();
    (
        phase(&ro).0,
        step(&ro),
        st.current_pod_hash.unwrap_or_default(),
        st.stable_rs.unwrap_or_default(),
        revision,
    )
}

#[tokio::test]
async fn a_template_change_after_takeover_that_only_removes_a_field_starts_a_new_revision() {
    let (ns, mut oracle) = before_sluice("takeover-remove").await;
    let rss = watch_replica_sets(&ns).await;
    ns.apply(&env_canary_yaml("env")).unwrap();
    let ro = get_json(&ns, "rollout", "env").unwrap();
    let v1 = template_hash(&mut oracle, &ro["spec"]["template"]).unwrap();
    let steps = steps_hash(&mut oracle, &ro).unwrap();
    let rs = argo_replica_set(&ro, &ro["spec"]["template"], &v1, "1", 3);
    create_replica_set(&ns, &rs).await.unwrap();
    Kubectl::patch_status(&ns, "env", &canary_healthy_status(&ro, &v1, &steps, &now())).unwrap();
    let argo_rss = seen(&rss, 1).await;
    let rollout = Watch::start::<Rollout>(&ns, "env", promoted_view).await;
    let promoted: PromotedView = ("Healthy".into(), 2, v1.clone(), v1.clone(), "1".into());
    assert_eq!(rollout.seen(), vec![promoted.clone()]);

    let op = Operator::start(&ns).unwrap();
    sluice_has_looked(&ns, &op, "env").await;
    assert_eq!(
        rollout.seen(),
        [promoted],
        "Sluice takes over the promoted rollout as it is"
    );
    assert_eq!(ever(&rss), argo_rss, "no new revision on takeover");

    let remove = r#"[{"op":"remove","path":"/spec/template/spec/containers/0/env"}]"#;
    ns.kubectl(&["patch", "rollout", "env", "--type=json", "-p", remove], None)
        .unwrap();
    let ro = get_json(&ns, "rollout", "env").unwrap();
    assert!(
        ro["spec"]["template"]["spec"]["containers"][0]
            .get("env")
            .is_none()
    );
    let v2 = template_hash(&mut oracle, &ro["spec"]["template"]).unwrap();
    assert_ne!(v1, v2);
    let ro = wait_rollout(&ns, "env", "the new revision", 30, |r| {
        r.status.as_ref().and_then(|s| s.current_pod_hash.as_deref()) == Some(v2.as_str())
    })
    .await;
    assert_eq!(ro.annotations().get(REVISION).map(String::as_str), Some("2"));
    let api: Api<ReplicaSet> = ns.api();
    let rs = api
        .get(&format!("env-{v2}"))
        .await
        .expect("the new ReplicaSet, named by Argo's hash");
    assert_eq!(rs.annotations().get(REVISION).map(String::as_str), Some("2"));
    assert_eq!(rs.labels().get(HASH), Some(&v2));
    let names: BTreeSet<String> = ever(&rss).into_iter().map(|(name, _, _)| name).collect();
    assert_eq!(names, BTreeSet::from([format!("env-{v1}"), format!("env-{v2}")]));
}
