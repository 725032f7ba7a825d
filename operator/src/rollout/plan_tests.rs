//! Table tests of the canary planner: one reconcile at a time, from a described cluster state.

use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use sluice_crds::rollout::{PauseCondition, Rollout, RolloutStatus};

use super::*;

const T0: &str = "2026-03-01T10:00:00Z";

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn secs_after(base: &str, secs: i64) -> Timestamp {
    Timestamp::from_second(at(base).as_second() + secs).unwrap()
}

/// A Rollout of `replicas` with the given canary strategy (JSON) and status.
fn rollout(replicas: i32, canary: serde_json::Value, status: Option<RolloutStatus>) -> Rollout {
    let mut ro: Rollout = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "default", "generation": 3, "uid": "u1",
                     "annotations": {"rollout.argoproj.io/revision": "2"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "v2"}]}},
            "strategy": {"canary": canary},
        }
    }))
    .unwrap();
    ro.status = status;
    ro
}

fn istio_canary(steps: serde_json::Value) -> serde_json::Value {
    json!({
        "canaryService": "web-canary",
        "stableService": "web-stable",
        "trafficRouting": {"istio": {"virtualService": {"name": "web-vs", "routes": ["primary"]}}},
        "steps": steps,
    })
}

fn rs(hash: &str, revision: i64, spec: i32, available: i32) -> RsInfo {
    RsInfo {
        name: format!("web-{hash}"),
        hash: hash.into(),
        revision,
        spec_replicas: spec,
        replicas: spec.max(available),
        ready: available,
        available,
        scale_down_deadline: None,
        ephemeral: None,
    }
}

/// Mid-update status at a pause {} step `index`, paused by the controller since T0.
fn paused_at(index: i32) -> RolloutStatus {
    RolloutStatus {
        pause_conditions: Some(vec![PauseCondition {
            reason: "CanaryPauseStep".into(),
            start_time: Time(at(T0)),
        }]),
        controller_pause: Some(true),
        ..updating(index)
    }
}

/// Mid-update status: stable "old", current "new", at `index`.
fn updating(index: i32) -> RolloutStatus {
    RolloutStatus {
        current_pod_hash: Some("new".into()),
        stable_rs: Some("old".into()),
        current_step_index: Some(index),
        current_step_hash: None,
        observed_generation: Some("3".into()),
        ..Default::default()
    }
}

fn observed(
    ro: Rollout,
    rss: Vec<RsInfo>,
    stable_svc: Option<&str>,
    canary_svc: Option<&str>,
    weight: Option<i32>,
) -> Observed {
    let routed = ro
        .spec
        .strategy
        .canary
        .as_ref()
        .unwrap()
        .traffic_routing
        .is_some();
    let mut o = Observed {
        rollout: ro,
        desired_hash: "new".into(),
        replica_sets: rss,
        stable_service: Some(ServiceState::Selecting(stable_svc.map(String::from))),
        canary_service: Some(ServiceState::Selecting(canary_svc.map(String::from))),
        traffic: weight.map(TrafficState::Weight),
        subsets: None,
        pods_to_restart: Vec::new(),
        managed_routes_present: Vec::new(),
        analysis_runs: Vec::new(),
        templates: Default::default(),
        workload: None,
        orphans: Vec::new(),
        experiments: Vec::new(),
        rs_templates: Vec::new(),
    };
    if !routed {
        o.stable_service = None;
        o.canary_service = None;
        o.traffic = None;
    }
    // Keep the steps hash stable so tests see only what they set up.
    let steps = o.rollout.spec.strategy.canary.as_ref().unwrap().steps.clone();
    if let Some(st) = o.rollout.status.as_mut() {
        st.current_step_hash = Some(steps_hash(&steps));
    }
    o
}

fn reasons(p: &Plan) -> Vec<&'static str> {
    p.events.iter().map(|e| e.reason).collect()
}

fn weight_action(p: &Plan) -> Option<i32> {
    p.actions.iter().find_map(|a| match a {
        Action::SetCanaryWeight { weight, .. } => Some(*weight),
        _ => None,
    })
}

fn scale_of(p: &Plan, name: &str) -> Option<i32> {
    p.actions.iter().find_map(|a| match a {
        Action::ScaleReplicaSet { name: n, to, .. } if n == name => Some(*to),
        _ => None,
    })
}

#[test]
fn first_deploy_creates_the_replica_set_at_full_size_and_skips_the_steps() {
    let ro = rollout(5, istio_canary(json!([{"setWeight": 20}, {"pause": {}}])), None);
    let p = plan(&observed(ro, vec![], None, None, Some(0)), at(T0));
    assert_eq!(
        p.actions
            .iter()
            .find(|a| matches!(a, Action::CreateReplicaSet { .. })),
        Some(&Action::CreateReplicaSet {
            hash: "new".into(),
            replicas: 5,
            revision: 1
        })
    );
    assert_eq!(p.status.stable_rs.as_deref(), Some("new"));
    assert_eq!(p.status.current_step_index, Some(2));
    // Upstream's order: the new ReplicaSet is scaled up from 0 before the deploy completes.
    assert_eq!(
        reasons(&p),
        [
            "RolloutUpdated",
            "NewReplicaSetCreated",
            "ScalingReplicaSet",
            "RolloutCompleted"
        ]
    );
    assert_eq!(
        p.events[2].message,
        "Scaled up ReplicaSet web-new (revision 1) from 0 to 5"
    );
    assert!(
        p.events[3].message.ends_with("Initial deploy"),
        "{}",
        p.events[3].message
    );
    assert_eq!(p.status.observed_generation.as_deref(), Some("3"));
}

#[test]
fn first_deploy_becomes_healthy_once_available_and_points_both_services() {
    let st = RolloutStatus {
        current_pod_hash: Some("new".into()),
        stable_rs: Some("new".into()),
        current_step_index: Some(2),
        ..Default::default()
    };
    let ro = rollout(
        5,
        istio_canary(json!([{"setWeight": 20}, {"pause": {}}])),
        Some(st),
    );
    let p = plan(
        &observed(ro, vec![rs("new", 1, 5, 5)], None, None, Some(0)),
        at(T0),
    );
    let switches: Vec<_> = p
        .actions
        .iter()
        .filter(|a| matches!(a, Action::SwitchService { .. }))
        .collect();
    assert_eq!(switches.len(), 2, "{:?}", p.actions);
    assert_eq!(p.status.phase.as_deref(), Some("Healthy"));
    assert_eq!(
        weight_action(&p),
        None,
        "weight stays 0 when both services select the same pods"
    );
    let healthy = p
        .status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.r#type == "Healthy")
        .unwrap();
    assert_eq!(healthy.status, "True");
}

#[test]
fn template_change_starts_an_update_at_step_zero_with_a_new_replica_set_at_zero() {
    let st = RolloutStatus {
        current_pod_hash: Some("old".into()),
        stable_rs: Some("old".into()),
        current_step_index: Some(2),
        ..Default::default()
    };
    let ro = rollout(
        10,
        istio_canary(json!([{"setWeight": 20}, {"pause": {}}])),
        Some(st),
    );
    let p = plan(
        &observed(ro, vec![rs("old", 1, 10, 10)], Some("old"), Some("old"), Some(0)),
        at(T0),
    );
    assert!(p.actions.contains(&Action::CreateReplicaSet {
        hash: "new".into(),
        replicas: 0,
        revision: 2
    }));
    assert_eq!(
        reasons(&p),
        ["RolloutUpdated", "NewReplicaSetCreated", "RolloutNotCompleted"]
    );
    assert_eq!(p.status.current_step_index, Some(0));
    assert_eq!(p.status.current_pod_hash.as_deref(), Some("new"));
}

#[test]
fn set_weight_scales_the_canary_first_and_sends_no_traffic_before_its_pods_are_available() {
    let ro = rollout(
        10,
        istio_canary(json!([{"setWeight": 20}, {"pause": {}}])),
        Some(updating(0)),
    );
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 0, 0)],
            Some("old"),
            Some("old"),
            Some(0),
        ),
        at(T0),
    );
    assert_eq!(scale_of(&p, "web-new"), Some(2), "ceil(20% of 10)");
    assert_eq!(
        scale_of(&p, "web-old"),
        None,
        "stable stays whole with a traffic router"
    );
    assert_eq!(weight_action(&p), None, "no canary pod available yet");
    assert_eq!(p.status.current_step_index, Some(0));
}

#[test]
fn a_router_out_of_step_at_the_wanted_weight_gets_the_weight_again_without_an_event() {
    let steps = json!([{"setWeight": 20}, {"pause": {}}]);
    let ro = rollout(10, istio_canary(steps), Some(updating(0)));
    let mut o = observed(
        ro,
        vec![rs("old", 1, 10, 10), rs("new", 2, 2, 2)],
        Some("old"),
        Some("new"),
        Some(20),
    );
    o.traffic = Some(TrafficState::OutOfStep(20));
    let p = plan(&o, at(T0));
    assert_eq!(weight_action(&p), Some(20));
    assert!(
        !reasons(&p).contains(&"TrafficWeightUpdated"),
        "{:?}",
        reasons(&p)
    );
    // Out of step at another weight than wanted: the wanted weight, told as a change.
    o.traffic = Some(TrafficState::OutOfStep(0));
    let p = plan(&o, at(T0));
    assert_eq!(weight_action(&p), Some(20));
    assert!(reasons(&p).contains(&"TrafficWeightUpdated"));
}

#[test]
fn weight_is_applied_only_when_the_canary_has_its_pods_and_the_canary_service_selects_them() {
    let steps = json!([{"setWeight": 20}, {"pause": {}}]);
    // Pods available but the canary Service still selects the stable pods: switch it first.
    let ro = rollout(10, istio_canary(steps.clone()), Some(updating(0)));
    let p = plan(
        &observed(
            ro.clone(),
            vec![rs("old", 1, 10, 10), rs("new", 2, 2, 2)],
            Some("old"),
            Some("old"),
            Some(0),
        ),
        at(T0),
    );
    assert!(p.actions.iter().any(
        |a| matches!(a, Action::SwitchService { service, to, .. } if service == "web-canary" && to == "new")
    ));
    assert_eq!(weight_action(&p), None);
    // Service switched: now the weight.
    let p = plan(
        &observed(
            ro.clone(),
            vec![rs("old", 1, 10, 10), rs("new", 2, 2, 2)],
            Some("old"),
            Some("new"),
            Some(0),
        ),
        at(T0),
    );
    assert_eq!(weight_action(&p), Some(20));
    assert_eq!(
        p.status.current_step_index,
        Some(0),
        "not done until the router shows the weight"
    );
    // Only one of two pods available: hold at 0.
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 2, 1)],
            Some("old"),
            Some("new"),
            Some(0),
        ),
        at(T0),
    );
    assert_eq!(weight_action(&p), None);
}

#[test]
fn step_completes_when_the_router_shows_the_weight() {
    let ro = rollout(
        10,
        istio_canary(json!([{"setWeight": 20}, {"pause": {}}])),
        Some(updating(0)),
    );
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 2, 2)],
            Some("old"),
            Some("new"),
            Some(20),
        ),
        at(T0),
    );
    assert_eq!(weight_action(&p), None);
    assert_eq!(p.status.current_step_index, Some(1));
    assert_eq!(reasons(&p), ["RolloutStepCompleted"]);
    assert_eq!(p.events[0].message, "Rollout step 1/2 completed (setWeight: 20)");
    let w = p.status.canary.as_ref().unwrap().weights.as_ref().unwrap();
    assert_eq!(
        (w.canary.weight, w.stable.weight, w.verified),
        (20, 80, Some(true))
    );
}

#[test]
fn weight_drops_when_canary_pods_are_lost() {
    let ro = rollout(
        10,
        istio_canary(json!([{"setWeight": 50}, {"pause": {}}])),
        Some(updating(1)),
    );
    // 50% needs 5 pods; only 3 are available now: 30% is what they can take.
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 5, 3)],
            Some("old"),
            Some("new"),
            Some(50),
        ),
        at(T0),
    );
    assert_eq!(weight_action(&p), Some(30));
}

#[test]
fn timed_pause_adds_a_condition_requeues_at_expiry_and_then_completes() {
    let steps = json!([{"setWeight": 20}, {"pause": {"duration": "2s"}}, {"setWeight": 50}]);
    let ro = rollout(10, istio_canary(steps.clone()), Some(updating(1)));
    let rss = vec![rs("old", 1, 10, 10), rs("new", 2, 2, 2)];
    let p = plan(
        &observed(ro, rss.clone(), Some("old"), Some("new"), Some(20)),
        at(T0),
    );
    assert_eq!(
        p.status.pause_conditions.as_ref().unwrap()[0].reason,
        "CanaryPauseStep"
    );
    assert_eq!(p.status.controller_pause, Some(true));
    assert_eq!(p.requeue_after, Some(Duration::from_secs(2)));
    assert_eq!(p.status.phase.as_deref(), Some("Paused"));
    assert_eq!(p.status.message.as_deref(), Some("CanaryPauseStep"));
    assert_eq!(reasons(&p), ["RolloutPaused"]);

    let mut st = p.status.clone();
    st.current_step_hash = None;
    let ro = rollout(10, istio_canary(steps.clone()), Some(st.clone()));
    let p1 = plan(
        &observed(ro.clone(), rss.clone(), Some("old"), Some("new"), Some(20)),
        secs_after(T0, 1),
    );
    assert_eq!(
        p1.status.current_step_index,
        Some(1),
        "one second in: still paused"
    );
    assert!(p1.requeue_after.unwrap() <= Duration::from_secs(1));
    let p2 = plan(
        &observed(ro, rss, Some("old"), Some("new"), Some(20)),
        secs_after(T0, 2),
    );
    assert_eq!(p2.status.current_step_index, Some(2));
    assert_eq!(p2.status.pause_conditions, None);
    // As upstream records it: the step completes, then leaving the pause is recorded.
    assert_eq!(reasons(&p2), ["RolloutStepCompleted", "RolloutResumed"]);
    assert_eq!(p2.events[0].message, "Rollout step 2/3 completed (pause: 2s)");
}

#[test]
fn indefinite_pause_waits_for_promote_which_clears_the_conditions() {
    let steps = json!([{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}]);
    let mut st = paused_at(1);
    let rss = vec![rs("old", 1, 10, 10), rs("new", 2, 2, 2)];
    let ro = rollout(10, istio_canary(steps.clone()), Some(st.clone()));
    let p = plan(
        &observed(ro, rss.clone(), Some("old"), Some("new"), Some(20)),
        secs_after(T0, 3600),
    );
    assert_eq!(
        p.status.current_step_index,
        Some(1),
        "an hour later: still paused"
    );
    assert_eq!(p.requeue_after, None, "nothing to wait for but the user");
    // promote: the plugin sets pauseConditions to null.
    st.pause_conditions = None;
    let ro = rollout(10, istio_canary(steps), Some(st));
    let p = plan(
        &observed(ro, rss, Some("old"), Some("new"), Some(20)),
        secs_after(T0, 3600),
    );
    assert_eq!(p.status.current_step_index, Some(2));
    assert_eq!(p.status.controller_pause, None);
    assert_eq!(reasons(&p), ["RolloutResumed", "RolloutStepCompleted"]);
}

#[test]
fn end_of_steps_goes_to_full_weight_then_promotes_then_returns_weight_to_zero() {
    let steps = json!([{"setWeight": 50}]);
    // After the last step: the canary grows to full size.
    let ro = rollout(10, istio_canary(steps.clone()), Some(updating(1)));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 5, 5)],
            Some("old"),
            Some("new"),
            Some(50),
        ),
        at(T0),
    );
    assert_eq!(scale_of(&p, "web-new"), Some(10));
    assert_eq!(weight_action(&p), None, "50% held until 10 pods are available");
    // Whole: weight 100.
    let ro = rollout(10, istio_canary(steps.clone()), Some(updating(1)));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 10, 10)],
            Some("old"),
            Some("new"),
            Some(50),
        ),
        at(T0),
    );
    assert_eq!(weight_action(&p), Some(100));
    assert_eq!(p.status.stable_rs.as_deref(), Some("old"));
    // Router at 100: promote.
    let ro = rollout(10, istio_canary(steps.clone()), Some(updating(1)));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 10, 10)],
            Some("old"),
            Some("new"),
            Some(100),
        ),
        at(T0),
    );
    assert_eq!(p.status.stable_rs.as_deref(), Some("new"));
    assert_eq!(reasons(&p), ["RolloutCompleted"]);
    assert!(
        p.events[0].message.ends_with("Completed all 1 canary steps"),
        "{}",
        p.events[0].message
    );
    // Promoted: stable Service to the new pods, weight kept until it has switched, old RS given a deadline.
    let mut st = p.status.clone();
    st.current_step_hash = None;
    let ro = rollout(10, istio_canary(steps.clone()), Some(st.clone()));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 10, 10)],
            Some("old"),
            Some("new"),
            Some(100),
        ),
        at(T0),
    );
    assert!(p.actions.iter().any(
        |a| matches!(a, Action::SwitchService { service, to, .. } if service == "web-stable" && to == "new")
    ));
    assert_eq!(weight_action(&p), None);
    assert!(
        p.actions.iter().any(
            |a| matches!(a, Action::SetScaleDownDeadline { name, deadline: Some(_) } if name == "web-old")
        )
    );
    let ro = rollout(10, istio_canary(steps), Some(st));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 10, 10)],
            Some("new"),
            Some("new"),
            Some(100),
        ),
        at(T0),
    );
    assert_eq!(weight_action(&p), Some(0));
}

#[test]
fn old_stable_is_scaled_down_after_its_deadline() {
    let st = RolloutStatus {
        current_pod_hash: Some("new".into()),
        stable_rs: Some("new".into()),
        current_step_index: Some(1),
        ..Default::default()
    };
    let ro = rollout(4, istio_canary(json!([{"setWeight": 50}])), Some(st));
    let mut old = rs("old", 1, 4, 4);
    old.scale_down_deadline = Some(secs_after(T0, 30));
    let p = plan(
        &observed(
            ro.clone(),
            vec![old.clone(), rs("new", 2, 4, 4)],
            Some("new"),
            Some("new"),
            Some(0),
        ),
        secs_after(T0, 10),
    );
    assert_eq!(scale_of(&p, "web-old"), None);
    assert!(p.requeue_after.unwrap() <= Duration::from_secs(21));
    let p = plan(
        &observed(
            ro,
            vec![old, rs("new", 2, 4, 4)],
            Some("new"),
            Some("new"),
            Some(0),
        ),
        secs_after(T0, 31),
    );
    assert_eq!(scale_of(&p, "web-old"), Some(0));
}

#[test]
fn abort_sends_all_traffic_back_at_once_and_degrades_with_upstreams_message() {
    let mut st = updating(1);
    st.abort = Some(true);
    let ro = rollout(
        10,
        istio_canary(json!([{"setWeight": 50}, {"pause": {}}])),
        Some(st),
    );
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 5, 5)],
            Some("old"),
            Some("new"),
            Some(50),
        ),
        at(T0),
    );
    assert_eq!(weight_action(&p), Some(0));
    assert!(p.actions.iter().any(
        |a| matches!(a, Action::SwitchService { service, to, .. } if service == "web-canary" && to == "old")
    ));
    assert_eq!(
        scale_of(&p, "web-new"),
        None,
        "canary kept for abortScaleDownDelaySeconds"
    );
    assert!(
        p.actions.iter().any(
            |a| matches!(a, Action::SetScaleDownDeadline { name, deadline: Some(_) } if name == "web-new")
        )
    );
    assert_eq!(p.status.phase.as_deref(), Some("Degraded"));
    assert_eq!(
        p.status.message.as_deref(),
        Some("RolloutAborted: Rollout aborted update to revision 2")
    );
    assert_eq!(p.status.current_step_index, Some(0));
    assert!(p.status.aborted_at.is_some());
    assert!(reasons(&p).contains(&"RolloutAborted"));
}

#[test]
fn retry_after_abort_restarts_from_the_first_step() {
    let mut st = updating(0);
    st.abort = Some(false);
    st.aborted_at = Some(Time(at(T0)));
    let mut conditions = Vec::new();
    status::set_condition(
        &mut conditions,
        "Progressing",
        "False",
        "RolloutAborted",
        "Rollout aborted update to revision 2",
        &Time(at(T0)),
    );
    st.conditions = Some(conditions);
    let ro = rollout(
        10,
        istio_canary(json!([{"setWeight": 50}, {"pause": {}}])),
        Some(st),
    );
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 5, 5)],
            Some("old"),
            Some("old"),
            Some(0),
        ),
        at(T0),
    );
    let progressing = p
        .status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.r#type == "Progressing")
        .unwrap();
    assert_eq!(progressing.reason, "RolloutRetry");
    assert_eq!(p.status.phase.as_deref(), Some("Progressing"));
    assert_eq!(p.status.aborted_at, None);
}

#[test]
fn promote_full_skips_the_remaining_steps() {
    let mut st = updating(0);
    st.promote_full = Some(true);
    let ro = rollout(
        10,
        istio_canary(json!([{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}])),
        Some(st),
    );
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 2, 2)],
            Some("old"),
            Some("new"),
            Some(20),
        ),
        at(T0),
    );
    assert_eq!(p.status.current_step_index, Some(3));
    assert_eq!(scale_of(&p, "web-new"), Some(10));
}

#[test]
fn undo_to_the_stable_template_is_a_fast_rollback() {
    let st = RolloutStatus {
        current_pod_hash: Some("bad".into()),
        stable_rs: Some("new".into()),
        current_step_index: Some(1),
        ..Default::default()
    };
    let ro = rollout(
        10,
        istio_canary(json!([{"setWeight": 20}, {"pause": {}}])),
        Some(st),
    );
    let p = plan(
        &observed(
            ro,
            vec![rs("new", 1, 10, 10), rs("bad", 2, 2, 2)],
            Some("new"),
            Some("bad"),
            Some(20),
        ),
        at(T0),
    );
    assert_eq!(
        reasons(&p)[..3],
        ["RolloutUpdated", "RolloutCompleted", "SkipSteps"]
    );
    assert_eq!(p.status.current_step_index, Some(2));
    assert_eq!(
        weight_action(&p),
        Some(0),
        "the stable Service already selects the stable pods: all traffic back at once"
    );
    assert!(p.actions.iter().any(
        |a| matches!(a, Action::SwitchService { service, to, .. } if service == "web-canary" && to == "new")
    ));
}

#[test]
fn invalid_spec_gets_the_condition_and_no_action() {
    let cases = [
        (
            json!({"steps": [{"setWeight": 120}]}),
            "SetWeight needs to be between 0 and 100",
        ),
        (
            json!({"steps": [{"setWeight": 10, "pause": {}}]}),
            "Step must have one of the following set: experiment, setWeight, setCanaryScale, plugin or pause",
        ),
        (
            json!({"steps": [{"pause": {"duration": "soon"}}]}),
            "Duration needs to be greater than 0",
        ),
        (
            json!({"steps": [{"setCanaryScale": {"replicas": 1}}]}),
            "SetCanaryScale requires TrafficRouting to be set",
        ),
        (
            json!({"maxSurge": 0, "maxUnavailable": 0}),
            "MaxSurge and MaxUnavailable both can not be zero",
        ),
        (
            json!({"canaryService": "a", "stableService": "a"}),
            "This rollout uses the same service for the stable and canary services, but two different services are required.",
        ),
        (
            json!({"trafficRouting": {"istio": {"virtualService": {"name": "vs"}}}}),
            "Canary service and Stable service must to be set to use Traffic Routing",
        ),
        (
            json!({"scaleDownDelaySeconds": 5}),
            "Canary scaleDownDelaySeconds can only be used with traffic routing",
        ),
        (
            json!({"canaryService": "c", "stableService": "s",
                   "trafficRouting": {"nginx": {"stableIngress": "web"}, "managedRoutes": [{"name": "h"}]},
                   "steps": [{"setHeaderRoute": {"name": "h", "match": [{"headerName": "x", "headerValue": {"exact": "y"}}]}}]}),
            "SetHeaderRoute requires TrafficRouting, supports Istio only",
        ),
        (
            json!({"canaryService": "c", "stableService": "s",
                   "trafficRouting": {"nginx": {"stableIngress": "web"}, "managedRoutes": [{"name": "m"}]},
                   "steps": [{"setMirrorRoute": {"name": "m", "match": [{"method": {"exact": "GET"}}]}}]}),
            "SetMirrorRoute requires TrafficRouting, supports Istio only",
        ),
        (
            json!({"canaryService": "c", "stableService": "s", "trafficRouting": {"nginx": {}}}),
            "Either StableIngress or StableIngresses must be configured. Neither are configured.",
        ),
        (
            json!({"canaryService": "c", "stableService": "s",
                   "trafficRouting": {"nginx": {"stableIngress": "a", "stableIngresses": ["b"]}}}),
            "Either StableIngress or StableIngresses must be configured. Both are configured.",
        ),
    ];
    for (canary, message) in cases {
        let ro = rollout(3, canary.clone(), Some(updating(0)));
        let p = plan(&observed(ro, vec![rs("old", 1, 3, 3)], None, None, None), at(T0));
        assert!(p.actions.is_empty(), "{canary}: {:?}", p.actions);
        assert_eq!(p.status.phase.as_deref(), Some("Degraded"), "{canary}");
        assert_eq!(
            p.status.message.as_deref(),
            Some(format!("InvalidSpec: {message}").as_str()),
            "{canary}"
        );
        assert_eq!(reasons(&p), ["InvalidSpec"]);
    }
}

#[test]
fn a_fixed_spec_loses_the_invalid_spec_condition() {
    let mut st = updating(0);
    let mut conditions = Vec::new();
    status::set_condition(
        &mut conditions,
        "InvalidSpec",
        "True",
        "InvalidSpec",
        "bad",
        &Time(at(T0)),
    );
    st.conditions = Some(conditions);
    let ro = rollout(10, istio_canary(json!([{"setWeight": 20}])), Some(st));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 0, 0)],
            Some("old"),
            Some("old"),
            Some(0),
        ),
        at(T0),
    );
    assert!(
        p.status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .all(|c| c.r#type != "InvalidSpec")
    );
    assert_ne!(p.status.phase.as_deref(), Some("Degraded"));
}

#[test]
fn basic_canary_splits_replicas_by_weight_one_group_per_reconcile() {
    // 10 replicas, setWeight 20, default 25% surge (3) / unavailable (2): stable goes first, then canary.
    let canary = json!({"steps": [{"setWeight": 20}, {"pause": {"duration": 2}}]});
    let ro = rollout(10, canary.clone(), Some(updating(0)));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 0, 0)],
            None,
            None,
            None,
        ),
        at(T0),
    );
    let moves: Vec<_> = p
        .actions
        .iter()
        .filter(|a| matches!(a, Action::ScaleReplicaSet { .. }))
        .collect();
    assert_eq!(moves.len(), 1, "{moves:?}");
    let ro = rollout(10, canary.clone(), Some(updating(0)));
    let p = plan(
        &observed(ro, vec![rs("old", 1, 8, 8), rs("new", 2, 0, 0)], None, None, None),
        at(T0),
    );
    assert_eq!(scale_of(&p, "web-new"), Some(2));
    let ro = rollout(10, canary, Some(updating(0)));
    let p = plan(
        &observed(ro, vec![rs("old", 1, 8, 8), rs("new", 2, 2, 2)], None, None, None),
        at(T0),
    );
    assert_eq!(p.status.current_step_index, Some(1), "8 stable + 2 canary is 20%");
    assert!(
        p.status.canary.as_ref().is_none_or(|c| c.weights.is_none()),
        "no router, no weights"
    );
}

#[test]
fn user_pause_holds_scaling_and_says_manually_paused() {
    let mut ro = rollout(10, istio_canary(json!([{"setWeight": 20}])), Some(updating(0)));
    ro.spec.paused = Some(true);
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 0, 0)],
            Some("old"),
            Some("old"),
            Some(0),
        ),
        at(T0),
    );
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::ScaleReplicaSet { .. }))
    );
    assert_eq!(p.status.phase.as_deref(), Some("Paused"));
    assert_eq!(p.status.message.as_deref(), Some("manually paused"));
}

#[test]
fn an_unchanged_cluster_plans_nothing_and_writes_no_new_status() {
    let ro = rollout(
        10,
        istio_canary(json!([{"setWeight": 20}, {"pause": {}}])),
        Some(updating(0)),
    );
    let rss = vec![rs("old", 1, 10, 10), rs("new", 2, 2, 2)];
    let first = plan(
        &observed(ro, rss.clone(), Some("old"), Some("new"), Some(20)),
        at(T0),
    );
    let mut st = first.status.clone();
    st.current_step_hash = None;
    let ro = rollout(
        10,
        istio_canary(json!([{"setWeight": 20}, {"pause": {}}])),
        Some(st),
    );
    // The pause step just started; the same cluster a second later.
    let second = plan(
        &observed(ro.clone(), rss.clone(), Some("old"), Some("new"), Some(20)),
        secs_after(T0, 1),
    );
    let mut st2 = second.status.clone();
    st2.current_step_hash = None;
    let ro2 = rollout(
        10,
        istio_canary(json!([{"setWeight": 20}, {"pause": {}}])),
        Some(st2),
    );
    let third = plan(
        &observed(ro2.clone(), rss, Some("old"), Some("new"), Some(20)),
        secs_after(T0, 2),
    );
    assert!(third.actions.is_empty(), "{:?}", third.actions);
    assert!(third.events.is_empty(), "{:?}", third.events);
    let mut expected = ro2.status.clone().unwrap();
    expected.current_step_hash = third.status.current_step_hash.clone();
    assert_eq!(third.status, expected, "a status write would change nothing");
}

#[test]
fn subset_split_points_the_canary_subset_at_available_pods_before_any_weight() {
    let canary = json!({
        "trafficRouting": {"istio": {
            "virtualService": {"name": "web-vs"},
            "destinationRule": {"name": "web-dr", "canarySubsetName": "canary", "stableSubsetName": "stable"}
        }},
        "steps": [{"setWeight": 20}, {"pause": {}}],
    });
    let with_subsets = |ro: Rollout, rss: Vec<RsInfo>, subsets: (&str, &str), weight: i32| {
        let mut o = observed(ro, rss, None, None, Some(weight));
        o.stable_service = None;
        o.canary_service = None;
        o.traffic = Some(TrafficState::Weight(weight));
        o.subsets = Some(Ok((Some(subsets.0.into()), Some(subsets.1.into()))));
        o
    };
    // Canary pods not available yet: subsets unchanged, no weight.
    let ro = rollout(10, canary.clone(), Some(updating(0)));
    let p = plan(
        &with_subsets(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 2, 0)],
            ("old", "old"),
            0,
        ),
        at(T0),
    );
    assert!(
        !p.actions.iter().any(|a| matches!(a, Action::SetSubsets { .. })),
        "{:?}",
        p.actions
    );
    assert_eq!(weight_action(&p), None);
    // Available: the canary subset moves first.
    let ro = rollout(10, canary.clone(), Some(updating(0)));
    let p = plan(
        &with_subsets(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 2, 2)],
            ("old", "old"),
            0,
        ),
        at(T0),
    );
    assert!(p.actions.contains(&Action::SetSubsets {
        canary: "new".into(),
        stable: "old".into()
    }));
    assert_eq!(weight_action(&p), None, "weight waits for the subset");
    // Subset on the canary pods: the weight follows.
    let ro = rollout(10, canary.clone(), Some(updating(0)));
    let p = plan(
        &with_subsets(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 2, 2)],
            ("new", "old"),
            0,
        ),
        at(T0),
    );
    assert_eq!(weight_action(&p), Some(20));
    // Abort: both subsets back on the stable pods.
    let mut st = updating(1);
    st.abort = Some(true);
    let ro = rollout(10, canary, Some(st));
    let p = plan(
        &with_subsets(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 2, 2)],
            ("new", "old"),
            20,
        ),
        at(T0),
    );
    assert!(p.actions.contains(&Action::SetSubsets {
        canary: "old".into(),
        stable: "old".into()
    }));
    assert_eq!(weight_action(&p), Some(0));
}

#[test]
fn a_canary_that_makes_no_progress_exceeds_its_deadline_and_can_abort() {
    let steps = json!([{"setWeight": 20}, {"pause": {}}]);
    let mut st = updating(0);
    st.updated_replicas = Some(2);
    st.available_replicas = Some(10);
    let mut conditions = Vec::new();
    status::set_condition(
        &mut conditions,
        "Progressing",
        "True",
        "ReplicaSetUpdated",
        "ReplicaSet \"web-new\" is progressing.",
        &Time(at(T0)),
    );
    st.conditions = Some(conditions);
    let rss = vec![rs("old", 1, 10, 10), rs("new", 2, 2, 0)];
    // Before the deadline: a requeue at it.
    let mut ro = rollout(10, istio_canary(steps.clone()), Some(st.clone()));
    ro.spec.progress_deadline_seconds = Some(60);
    let p = plan(
        &observed(ro.clone(), rss.clone(), Some("old"), Some("old"), Some(0)),
        secs_after(T0, 30),
    );
    assert_eq!(p.status.phase.as_deref(), Some("Progressing"));
    assert!(
        p.requeue_after.unwrap() <= Duration::from_secs(31),
        "{:?}",
        p.requeue_after
    );
    // Past it: Degraded with upstream's message.
    let p = plan(
        &observed(ro.clone(), rss.clone(), Some("old"), Some("old"), Some(0)),
        secs_after(T0, 61),
    );
    assert_eq!(p.status.phase.as_deref(), Some("Degraded"));
    assert_eq!(
        p.status.message.as_deref(),
        Some("ProgressDeadlineExceeded: ReplicaSet \"web-new\" has timed out progressing.")
    );
    assert_eq!(p.status.abort, None);
    assert_eq!(reasons(&p), ["ProgressDeadlineExceeded"]);
    // With progressDeadlineAbort the update is aborted.
    ro.spec.progress_deadline_abort = Some(true);
    let p = plan(
        &observed(ro, rss, Some("old"), Some("old"), Some(0)),
        secs_after(T0, 61),
    );
    assert_eq!(p.status.abort, Some(true));
}

#[test]
fn a_pause_step_never_exceeds_the_progress_deadline() {
    let steps = json!([{"setWeight": 20}, {"pause": {}}]);
    let mut st = updating(1);
    st.updated_replicas = Some(2);
    st.available_replicas = Some(12);
    st.pause_conditions = Some(vec![PauseCondition {
        reason: "CanaryPauseStep".into(),
        start_time: Time(at(T0)),
    }]);
    st.controller_pause = Some(true);
    let mut conditions = Vec::new();
    status::set_condition(
        &mut conditions,
        "Progressing",
        "True",
        "ReplicaSetUpdated",
        "ReplicaSet \"web-new\" is progressing.",
        &Time(at(T0)),
    );
    st.conditions = Some(conditions);
    let mut ro = rollout(10, istio_canary(steps), Some(st));
    ro.spec.progress_deadline_seconds = Some(60);
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 2, 2)],
            Some("old"),
            Some("new"),
            Some(20),
        ),
        secs_after(T0, 3600),
    );
    assert_eq!(p.status.phase.as_deref(), Some("Paused"));
}

#[test]
fn restart_evicts_old_pods_within_the_unavailability_budget_then_records_it() {
    let st = RolloutStatus {
        current_pod_hash: Some("new".into()),
        stable_rs: Some("new".into()),
        current_step_index: Some(1),
        ..Default::default()
    };
    let mut ro = rollout(4, istio_canary(json!([{"setWeight": 50}])), Some(st));
    ro.spec.restart_at = Some(Time(at(T0)));
    let mut o = observed(
        ro.clone(),
        vec![rs("new", 1, 4, 4)],
        Some("new"),
        Some("new"),
        Some(0),
    );
    o.pods_to_restart = (0..4)
        .map(|i| (format!("web-new-{i}"), "new".to_string()))
        .collect();
    let p = plan(&o, secs_after(T0, 1));
    let evictions: Vec<_> = p
        .actions
        .iter()
        .filter(|a| matches!(a, Action::EvictPod { .. }))
        .collect();
    assert_eq!(
        evictions.len(),
        1,
        "25% of 4 rounds down to 1 unavailable: {evictions:?}"
    );
    assert_eq!(p.status.phase.as_deref(), Some("Progressing"));
    assert_eq!(p.status.message.as_deref(), Some("rollout is restarting"));
    // One pod being replaced: no budget left.
    let mut o2 = observed(
        ro.clone(),
        vec![rs("new", 1, 4, 3)],
        Some("new"),
        Some("new"),
        Some(0),
    );
    o2.pods_to_restart = (1..4)
        .map(|i| (format!("web-new-{i}"), "new".to_string()))
        .collect();
    assert!(
        !plan(&o2, secs_after(T0, 2))
            .actions
            .iter()
            .any(|a| matches!(a, Action::EvictPod { .. }))
    );
    // Every pod is new: done.
    let o3 = observed(ro, vec![rs("new", 1, 4, 4)], Some("new"), Some("new"), Some(0));
    let p = plan(&o3, secs_after(T0, 9));
    assert_eq!(p.status.restarted_at, Some(Time(at(T0))));
    assert_eq!(reasons(&p), ["RolloutRestarted"]);
}

#[test]
fn dynamic_stable_scale_shrinks_the_stable_and_an_abort_steps_traffic_back_as_stable_pods_return() {
    let mut canary = istio_canary(json!([{"setWeight": 50}, {"pause": {}}]));
    canary["dynamicStableScale"] = json!(true);
    // Weight 50 applied: the stable shrinks to half.
    let mut st = updating(1);
    st.canary = Some(sluice_crds::rollout::CanaryStatus {
        weights: Some(sluice_crds::rollout::TrafficWeights {
            canary: sluice_crds::rollout::WeightDestination {
                weight: 50,
                ..Default::default()
            },
            stable: sluice_crds::rollout::WeightDestination {
                weight: 50,
                ..Default::default()
            },
            ..Default::default()
        }),
        ..Default::default()
    });
    let ro = rollout(4, canary.clone(), Some(st.clone()));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 4, 4), rs("new", 2, 2, 2)],
            Some("old"),
            Some("new"),
            Some(50),
        ),
        at(T0),
    );
    assert_eq!(scale_of(&p, "web-old"), Some(2), "{:?}", p.actions);
    // Abort with only 2 of 4 stable pods: half the traffic stays on the canary until the stable grows back.
    st.abort = Some(true);
    let ro = rollout(4, canary.clone(), Some(st.clone()));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 2, 2), rs("new", 2, 2, 2)],
            Some("old"),
            Some("new"),
            Some(50),
        ),
        at(T0),
    );
    assert_eq!(weight_action(&p), None, "weight held at 50");
    assert_eq!(scale_of(&p, "web-old"), Some(4));
    let ro = rollout(4, canary.clone(), Some(st.clone()));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 4, 3), rs("new", 2, 2, 2)],
            Some("old"),
            Some("new"),
            Some(50),
        ),
        at(T0),
    );
    assert_eq!(weight_action(&p), Some(25), "3 of 4 stable pods take 75%");
    let ro = rollout(4, canary, Some(st));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 4, 4), rs("new", 2, 2, 2)],
            Some("old"),
            Some("new"),
            Some(25),
        ),
        at(T0),
    );
    assert_eq!(weight_action(&p), Some(0));
}

// ---- analysis ----

fn analysis_canary(background: Option<serde_json::Value>) -> serde_json::Value {
    let mut c = istio_canary(json!([
        {"setWeight": 20},
        {"analysis": {"templates": [{"templateName": "success-rate"}], "args": [{"name": "service", "value": "web-canary"}]}},
        {"setWeight": 50},
    ]));
    if let Some(bg) = background {
        c["analysis"] = bg;
    }
    c
}

fn with_templates(mut o: Observed) -> Observed {
    let spec: sluice_crds::analysis::AnalysisTemplateSpec = serde_json::from_value(json!({
        "args": [{"name": "service"}],
        "metrics": [{"name": "success-rate", "successCondition": "result[0] >= 0.95",
                     "provider": {"prometheus": {"address": "http://prom:9090", "query": "rate{svc='{{args.service}}'}"}}}]
    }))
    .unwrap();
    o.templates.namespaced.insert("success-rate".into(), spec);
    o
}

fn run(name: &str, phase: Phase, message: Option<&str>) -> RunInfo {
    RunInfo {
        name: name.into(),
        phase,
        message: message.map(String::from),
        terminating: false,
        created: 1,
    }
}

/// At the analysis step (index 1) with the canary at 20% and its pods up.
fn at_analysis_step(st: RolloutStatus, runs: Vec<RunInfo>) -> Observed {
    let ro = rollout(10, analysis_canary(None), Some(st));
    let mut o = with_templates(observed(
        ro,
        vec![rs("new", 2, 2, 2), rs("old", 1, 10, 10)],
        Some("old"),
        Some("new"),
        Some(20),
    ));
    o.analysis_runs = runs;
    o
}

fn step_run_status(name: &str, phase: &str) -> RolloutStatus {
    let mut st = updating(1);
    st.canary = Some(sluice_crds::rollout::CanaryStatus {
        current_step_analysis_run_status: Some(RolloutAnalysisRunStatus {
            name: name.into(),
            status: phase.into(),
            message: None,
        }),
        ..Default::default()
    });
    st
}

#[test]
fn an_analysis_step_creates_its_run_named_and_labelled_as_upstream() {
    let p = plan(&at_analysis_step(updating(1), vec![]), at(T0));
    let created = p.actions.iter().find_map(|a| match a {
        Action::CreateAnalysisRun {
            name,
            labels,
            annotations,
            spec,
        } => Some((name, labels, annotations, spec)),
        _ => None,
    });
    let (name, labels, annotations, spec) = created.expect("a run is created");
    assert_eq!(name, "web-new-2-1");
    assert_eq!(labels["rollout-type"], "Step");
    assert_eq!(labels["step-index"], "1");
    assert_eq!(labels["rollouts-pod-template-hash"], "new");
    assert_eq!(annotations["rollout.argoproj.io/revision"], "2");
    assert_eq!(spec.metrics[0].name, "success-rate");
    assert_eq!(
        spec.args.as_ref().unwrap()[0].value.as_deref(),
        Some("web-canary")
    );
    let cs = p
        .status
        .canary
        .as_ref()
        .unwrap()
        .current_step_analysis_run_status
        .as_ref()
        .unwrap();
    assert_eq!((cs.name.as_str(), cs.status.as_str()), ("web-new-2-1", "Pending"));
    assert_eq!(p.status.current_step_index, Some(1), "the step waits for its run");
    // Created once: the next reconcile finds it through the status.
    let next = plan(
        &at_analysis_step(p.status.clone(), vec![run("web-new-2-1", Phase::Running, None)]),
        at(T0),
    );
    assert!(
        !next
            .actions
            .iter()
            .any(|a| matches!(a, Action::CreateAnalysisRun { .. }))
    );
    assert_eq!(next.status.current_step_index, Some(1));
    assert_eq!(reasons(&next), ["AnalysisRunRunning"]);
}

#[test]
fn the_run_of_a_rollout_labelled_for_an_instance_carries_the_label_and_an_unlabelled_ones_does_not() {
    let key = "argo-rollouts.argoproj.io/controller-instance-id";
    let created_labels = |o: &Observed| {
        plan(o, at(T0))
            .actions
            .into_iter()
            .find_map(|a| match a {
                Action::CreateAnalysisRun { labels, .. } => Some(labels),
                _ => None,
            })
            .expect("a run is created")
    };
    let mut labelled = at_analysis_step(updating(1), vec![]);
    labelled
        .rollout
        .metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(key.into(), "a".into());
    assert_eq!(created_labels(&labelled)[key], "a");
    let unlabelled = at_analysis_step(updating(1), vec![]);
    assert!(!created_labels(&unlabelled).contains_key(key));
}

#[test]
fn in_namespaced_mode_a_cluster_template_reference_is_an_invalid_spec_that_says_why() {
    let canary = istio_canary(json!([
        {"setWeight": 20},
        {"analysis": {"templates": [{"templateName": "global", "clusterScope": true}]}},
    ]));
    let ro = rollout(10, canary, Some(updating(1)));
    let mut o = observed(
        ro,
        vec![rs("new", 2, 2, 2), rs("old", 1, 10, 10)],
        Some("old"),
        Some("new"),
        Some(20),
    );
    o.templates.cluster_not_watched = true;
    let p = plan(&o, at(T0));
    let invalid = p
        .status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.r#type == "InvalidSpec")
        .expect("InvalidSpec");
    assert!(
        invalid
            .message
            .contains("ClusterAnalysisTemplate \"global\" cannot be read")
            && invalid.message.contains("namespaced mode"),
        "{}",
        invalid.message
    );
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::CreateAnalysisRun { .. }))
    );
}

#[test]
fn a_successful_run_completes_the_step() {
    let p = plan(
        &at_analysis_step(
            step_run_status("web-new-2-1", "Running"),
            vec![run("web-new-2-1", Phase::Successful, None)],
        ),
        at(T0),
    );
    assert_eq!(p.status.current_step_index, Some(2));
    assert!(reasons(&p).contains(&"AnalysisRunSuccessful"));
    assert!(reasons(&p).contains(&"RolloutStepCompleted"));
}

#[test]
fn a_failed_run_aborts_at_once_with_the_metric_in_the_message() {
    let why = "Metric \"success-rate\" assessed Failed due to failed (1) > failureLimit (0): last measured value [0.8]";
    let obs = at_analysis_step(
        step_run_status("web-new-2-1", "Running"),
        vec![run("web-new-2-1", Phase::Failed, Some(why))],
    );
    let p = plan(&obs, at(T0));
    assert_eq!(p.status.abort, Some(true));
    assert_eq!(
        weight_action(&p),
        Some(0),
        "traffic back to stable in the same reconcile"
    );
    assert_eq!(p.status.phase.as_deref(), Some("Degraded"));
    let message = p.status.message.clone().unwrap();
    assert_eq!(
        message,
        format!("RolloutAborted: Rollout aborted update to revision 2: {why}")
    );
    let aborted = p.events.iter().find(|e| e.reason == "RolloutAborted").unwrap();
    assert!(aborted.warning && aborted.message.contains("[0.8]"));
    assert!(reasons(&p).contains(&"AnalysisRunFailed"));
    // Later reconciles keep the reason even though the run is no longer current.
    let mut ro = obs.rollout.clone();
    ro.status = Some(p.status.clone());
    let mut again = obs.clone();
    again.rollout = ro;
    let p2 = plan(&again, at(T0));
    assert_eq!(p2.status.message.as_deref(), Some(message.as_str()));
}

#[test]
fn an_error_run_aborts_too() {
    let obs = at_analysis_step(
        step_run_status("web-new-2-1", "Running"),
        vec![run(
            "web-new-2-1",
            Phase::Error,
            Some("Metric \"m\" assessed Error due to consecutiveErrors (5) > consecutiveErrorLimit (4)"),
        )],
    );
    let p = plan(&obs, at(T0));
    assert_eq!(p.status.abort, Some(true));
    assert!(p.status.message.unwrap().contains("consecutiveErrors (5)"));
}

#[test]
fn an_inconclusive_run_pauses_and_a_promote_continues() {
    let obs = at_analysis_step(
        step_run_status("web-new-2-1", "Running"),
        vec![run("web-new-2-1", Phase::Inconclusive, None)],
    );
    let p = plan(&obs, at(T0));
    let reasons_now: Vec<_> = p
        .status
        .pause_conditions
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.reason.as_str())
        .collect();
    assert_eq!(reasons_now, ["InconclusiveAnalysisRun"]);
    assert_eq!(p.status.controller_pause, Some(true));
    assert_eq!(p.status.phase.as_deref(), Some("Paused"));
    assert_eq!(p.status.current_step_index, Some(1));
    // Still paused next time.
    let mut st = p.status.clone();
    let p2 = plan(&at_analysis_step(st.clone(), obs.analysis_runs.clone()), at(T0));
    assert_eq!(p2.status.current_step_index, Some(1));
    assert!(p2.status.pause_conditions.is_some());
    // promote: the plugin clears the pause conditions.
    st.pause_conditions = None;
    let p3 = plan(&at_analysis_step(st, obs.analysis_runs.clone()), at(T0));
    assert_eq!(
        p3.status.current_step_index,
        Some(2),
        "promote moves past the inconclusive analysis"
    );
    assert_eq!(p3.status.controller_pause, None);
    assert!(reasons(&p3).contains(&"RolloutResumed"));
}

#[test]
fn a_missing_template_is_invalid_spec_and_nothing_moves() {
    let mut obs = at_analysis_step(updating(1), vec![]);
    obs.templates = Default::default();
    let p = plan(&obs, at(T0));
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    let invalid = p
        .status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.r#type == "InvalidSpec")
        .unwrap();
    assert_eq!(
        invalid.message,
        "spec.strategy.canary.steps[1].analysis: AnalysisTemplate \"success-rate\" not found"
    );
}

#[test]
fn background_analysis_starts_at_its_step_and_is_terminated_at_promotion() {
    let bg = json!({"templates": [{"templateName": "success-rate"}], "args": [{"name": "service", "value": "c"}], "startingStep": 1});
    let ro = rollout(10, analysis_canary(Some(bg.clone())), Some(updating(0)));
    let obs = with_templates(observed(
        ro,
        vec![rs("new", 2, 2, 2), rs("old", 1, 10, 10)],
        Some("old"),
        Some("new"),
        Some(20),
    ));
    let p = plan(&obs, at(T0));
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::CreateAnalysisRun { .. })),
        "before startingStep"
    );
    let p = plan(&at_analysis_step_with(bg.clone(), updating(1)), at(T0));
    let names: Vec<_> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateAnalysisRun { name, labels, .. } => {
                Some((name.clone(), labels["rollout-type"].clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        names,
        [
            ("web-new-2-1".to_string(), "Step".to_string()),
            ("web-new-2".to_string(), "Background".to_string())
        ]
    );
    // Fully promoted: the background run still running is terminated and the status forgets it.
    let mut st = step_run_status("web-new-2-1", "Successful");
    st.stable_rs = Some("new".into());
    st.current_step_index = Some(3);
    st.canary.as_mut().unwrap().current_background_analysis_run_status = Some(RolloutAnalysisRunStatus {
        name: "web-new-2".into(),
        status: "Running".into(),
        message: None,
    });
    let ro = rollout(10, analysis_canary(Some(bg)), Some(st));
    let mut obs = with_templates(observed(
        ro,
        vec![rs("new", 2, 10, 10)],
        Some("new"),
        Some("new"),
        Some(0),
    ));
    obs.analysis_runs = vec![
        run("web-new-2", Phase::Running, None),
        run("web-new-2-1", Phase::Successful, None),
    ];
    let p = plan(&obs, at(T0));
    assert!(
        p.actions.contains(&Action::TerminateAnalysisRun {
            name: "web-new-2".into()
        }),
        "{:?}",
        p.actions
    );
    assert!(!p.actions.contains(&Action::TerminateAnalysisRun {
        name: "web-new-2-1".into()
    }));
    assert_eq!(
        p.status
            .canary
            .as_ref()
            .and_then(|c| c.current_background_analysis_run_status.clone()),
        None
    );
}

fn at_analysis_step_with(bg: serde_json::Value, st: RolloutStatus) -> Observed {
    let ro = rollout(10, analysis_canary(Some(bg)), Some(st));
    with_templates(observed(
        ro,
        vec![rs("new", 2, 2, 2), rs("old", 1, 10, 10)],
        Some("old"),
        Some("new"),
        Some(20),
    ))
}

#[test]
fn a_failed_background_run_aborts() {
    let bg =
        json!({"templates": [{"templateName": "success-rate"}], "args": [{"name": "service", "value": "c"}]});
    let mut st = updating(0);
    st.canary = Some(sluice_crds::rollout::CanaryStatus {
        current_background_analysis_run_status: Some(RolloutAnalysisRunStatus {
            name: "web-new-2".into(),
            status: "Running".into(),
            message: None,
        }),
        ..Default::default()
    });
    let mut obs = at_analysis_step_with(bg, st);
    obs.analysis_runs = vec![run(
        "web-new-2",
        Phase::Failed,
        Some("Metric \"x\" assessed Failed"),
    )];
    let p = plan(&obs, at(T0));
    assert_eq!(p.status.abort, Some(true));
    assert!(
        p.status
            .message
            .unwrap()
            .ends_with("Metric \"x\" assessed Failed")
    );
}

#[test]
fn runs_that_are_not_current_are_terminated_and_old_ones_deleted() {
    let mut runs = vec![
        run("web-old-1-1", Phase::Running, None),
        run("web-new-2-1", Phase::Running, None),
    ];
    for i in 0..7 {
        runs.push(RunInfo {
            created: i,
            ..run(&format!("done-{i}"), Phase::Successful, None)
        });
    }
    let p = plan(
        &at_analysis_step(step_run_status("web-new-2-1", "Running"), runs),
        at(T0),
    );
    assert!(p.actions.contains(&Action::TerminateAnalysisRun {
        name: "web-old-1-1".into()
    }));
    assert!(!p.actions.contains(&Action::TerminateAnalysisRun {
        name: "web-new-2-1".into()
    }));
    let deleted: Vec<_> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::DeleteAnalysisRun { name } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, ["done-1", "done-0"], "five successful runs are kept");
}

#[test]
fn retry_after_an_analysis_abort_starts_a_new_run() {
    let mut st = step_run_status("web-new-2-1", "Failed");
    st.conditions = Some(vec![sluice_crds::rollout::RolloutCondition {
        r#type: "Progressing".into(),
        status: "False".into(),
        reason: "RolloutAborted".into(),
        message: "Rollout aborted update to revision 2: Metric failed".into(),
        last_update_time: None,
        last_transition_time: None,
    }]);
    st.current_step_index = Some(0);
    st.abort = None;
    let ro = rollout(10, analysis_canary(None), Some(st));
    let mut obs = with_templates(observed(
        ro,
        vec![rs("new", 2, 2, 2), rs("old", 1, 10, 10)],
        Some("old"),
        Some("new"),
        Some(20),
    ));
    obs.analysis_runs = vec![run("web-new-2-1", Phase::Failed, Some("Metric failed"))];
    let p = plan(&obs, at(T0));
    assert_ne!(
        p.status.abort,
        Some(true),
        "the old failed run does not abort the retry"
    );
    assert_eq!(
        p.status
            .canary
            .as_ref()
            .and_then(|c| c.current_step_analysis_run_status.clone()),
        None
    );
    // At the analysis step again, the new run gets the collision suffix.
    let mut st = p.status.clone();
    st.current_step_index = Some(1);
    let p = plan(
        &at_analysis_step(st, vec![run("web-new-2-1", Phase::Failed, Some("Metric failed"))]),
        at(T0),
    );
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::CreateAnalysisRun { name, .. } if name == "web-new-2-1.1")),
        "{:?}",
        p.actions
    );
}

#[test]
fn promote_full_on_an_aborted_rollout_promotes_it() {
    let mut st = updating(0);
    st.abort = Some(true);
    st.promote_full = Some(true);
    let ro = rollout(
        10,
        istio_canary(json!([{"setWeight": 20}, {"pause": {}}])),
        Some(st),
    );
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 10, 10), rs("new", 2, 2, 2)],
            Some("old"),
            Some("new"),
            Some(0),
        ),
        at(T0),
    );
    assert_eq!(p.status.abort, None);
    assert_eq!(p.status.current_step_index, Some(2));
    assert_eq!(scale_of(&p, "web-new"), Some(10));
    assert_ne!(p.status.phase.as_deref(), Some("Degraded"));
}

#[test]
fn promote_full_skips_the_analysis_and_stops_its_runs() {
    let mut st = updating(0);
    st.promote_full = Some(true);
    st.canary = Some(sluice_crds::rollout::CanaryStatus {
        current_step_analysis_run_status: Some(RolloutAnalysisRunStatus {
            name: "web-new-2-0".into(),
            status: "Running".into(),
            message: None,
        }),
        ..Default::default()
    });
    let canary = json!({
        "canaryService": "web-canary",
        "stableService": "web-stable",
        "trafficRouting": {"istio": {"virtualService": {"name": "web-vs", "routes": ["primary"]}}},
        "steps": [{"analysis": {"templates": [{"templateName": "t"}]}}],
        "analysis": {"templates": [{"templateName": "t"}]},
    });
    let ro = rollout(4, canary, Some(st));
    let mut o = observed(
        ro,
        vec![rs("old", 1, 4, 4), rs("new", 2, 1, 1)],
        Some("old"),
        Some("new"),
        Some(0),
    );
    o.templates.namespaced.insert(
        "t".into(),
        serde_json::from_value(json!({"metrics": [{"name": "m", "provider": {"web": {"url": "http://x"}}}]}))
            .unwrap(),
    );
    o.analysis_runs = vec![RunInfo {
        name: "web-new-2-0".into(),
        phase: Phase::Running,
        message: None,
        terminating: false,
        created: 1,
    }];
    let p = plan(&o, at(T0));
    assert!(p.actions.contains(&Action::TerminateAnalysisRun {
        name: "web-new-2-0".into()
    }));
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::CreateAnalysisRun { .. }))
    );
}

#[test]
fn a_pod_template_the_api_server_refuses_gives_replica_set_create_error_and_stays_a_first_deploy() {
    let ro = rollout(3, istio_canary(json!([{"setWeight": 20}])), None);
    let st = super::super::progress::replica_set_create_error(
        &ro,
        "new",
        "ReplicaSet.apps \"web-new\" is invalid: memory: Invalid value: \"invalid\"",
        at(T0),
    );
    let progressing = st
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.r#type == "Progressing")
        .unwrap();
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("False", "ReplicaSetCreateError")
    );
    assert!(
        progressing
            .message
            .starts_with("Failed to create new replica set \"web-new\": ReplicaSet.apps")
    );
    assert_eq!(st.phase.as_deref(), Some("Degraded"));
    assert!(
        st.message
            .as_deref()
            .unwrap()
            .starts_with("ReplicaSetCreateError: Failed to create")
    );
    assert_eq!(st.stable_rs, None, "nothing was deployed");
    // The next reconcile tries again at full size, keeps the condition and adds no RolloutUpdated.
    let ro = rollout(3, istio_canary(json!([{"setWeight": 20}])), Some(st.clone()));
    let p = plan(&observed(ro, vec![], None, None, Some(0)), at(T0));
    assert!(p.actions.contains(&Action::CreateReplicaSet {
        hash: "new".into(),
        replicas: 3,
        revision: 1
    }));
    assert!(!reasons(&p).contains(&"RolloutUpdated"));
    let progressing = p
        .status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.r#type == "Progressing")
        .unwrap();
    assert_eq!(progressing.reason, "ReplicaSetCreateError");
}

#[test]
fn an_unsupported_feature_leaves_a_healthy_rollout_alone_with_a_condition_naming_it() {
    let st = RolloutStatus {
        current_pod_hash: Some("new".into()),
        stable_rs: Some("new".into()),
        current_step_index: Some(2),
        ..Default::default()
    };
    let steps = json!([{"setWeight": 20}, {"plugin": {"name": "x"}}]);
    let ro = rollout(5, istio_canary(steps), Some(st));
    let p = plan(
        &observed(ro, vec![rs("new", 1, 5, 5)], Some("new"), Some("new"), Some(0)),
        at(T0),
    );
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.status.phase.as_deref(), Some("Healthy"));
    let c = p
        .status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.r#type == "UnsupportedFeature")
        .unwrap();
    assert!(
        c.message.contains("spec.strategy.canary.steps[1].plugin"),
        "{}",
        c.message
    );
    assert_eq!(reasons(&p), ["UnsupportedFeature"]);
    assert!(p.events[0].warning);
    // Told once.
    let ro = rollout(
        5,
        istio_canary(json!([{"setWeight": 20}, {"plugin": {"name": "x"}}])),
        Some(p.status.clone()),
    );
    let p = plan(
        &observed(ro, vec![rs("new", 1, 5, 5)], Some("new"), Some("new"), Some(0)),
        at(T0),
    );
    assert!(reasons(&p).is_empty());
}

#[test]
fn an_unsupported_traffic_router_is_named_and_nothing_is_torn_down() {
    let canary = json!({
        "canaryService": "web-canary",
        "stableService": "web-stable",
        "trafficRouting": {"alb": {"ingress": "web", "servicePort": 80}},
        "steps": [{"setWeight": 20}],
    });
    let ro = rollout(4, canary, Some(updating(0)));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 4, 4), rs("new", 2, 1, 1)],
            Some("old"),
            Some("new"),
            None,
        ),
        at(T0),
    );
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_ne!(p.status.phase.as_deref(), Some("Degraded"));
    assert!(
        p.events[0]
            .message
            .starts_with("traffic router alb (spec.strategy.canary.trafficRouting.alb)")
    );
}

#[test]
fn a_max_traffic_weight_other_than_100_is_named_as_unsupported() {
    let canary = json!({
        "canaryService": "web-canary",
        "stableService": "web-stable",
        "trafficRouting": {"nginx": {"stableIngress": "web"}, "maxTrafficWeight": 1000},
        "steps": [{"setWeight": 20}],
    });
    let ro = rollout(4, canary, Some(updating(0)));
    let p = plan(
        &observed(ro, vec![rs("old", 1, 4, 4)], Some("old"), Some("old"), Some(0)),
        at(T0),
    );
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert!(
        p.events[0].message.starts_with(
            "trafficRouting.maxTrafficWeight 1000 (spec.strategy.canary.trafficRouting.maxTrafficWeight)"
        ),
        "{:?}",
        p.events
    );
}

#[test]
fn a_traffic_router_plugin_other_than_gateway_api_is_named_as_unsupported() {
    let cases = [
        (
            json!({"argoproj-labs/contour": {"httpProxies": ["web"]}}),
            Some("traffic router plugin argoproj-labs/contour (spec.strategy.canary.trafficRouting.plugins)"),
        ),
        (
            json!({"argoproj-labs/gatewayAPI": {"tlsRoute": "web"}}),
            Some(
                "tlsRoute (spec.strategy.canary.trafficRouting.plugins[\"argoproj-labs/gatewayAPI\"].tlsRoute)",
            ),
        ),
        (json!({"argoproj-labs/gatewayAPI": {"httpRoute": "web"}}), None),
    ];
    for (plugins, message) in cases {
        let canary = json!({
            "canaryService": "web-canary",
            "stableService": "web-stable",
            "trafficRouting": {"plugins": plugins},
            "steps": [{"setWeight": 20}],
        });
        let ro = rollout(4, canary, Some(updating(0)));
        let p = plan(
            &observed(
                ro,
                vec![rs("old", 1, 4, 4), rs("new", 2, 1, 1)],
                Some("old"),
                Some("new"),
                None,
            ),
            at(T0),
        );
        let told = p.events.iter().find(|e| e.reason == "UnsupportedFeature");
        match message {
            Some(m) => {
                assert!(p.actions.is_empty(), "{:?}", p.actions);
                assert!(
                    told.is_some_and(|e| e.message.starts_with(m)),
                    "{plugins}: {:?}",
                    p.events
                );
            }
            None => assert!(told.is_none(), "{plugins}: {:?}", p.events),
        }
    }
}

#[test]
fn an_smi_rollout_is_supported_and_its_weight_is_set_like_any_router() {
    let canary = json!({
        "canaryService": "web-canary",
        "stableService": "web-stable",
        "trafficRouting": {"smi": {"rootService": "web", "trafficSplitName": "web"}},
        "steps": [{"setWeight": 20}],
    });
    let ro = rollout(4, canary, Some(updating(0)));
    assert_eq!(sluice_crds::validate::unsupported(&ro), None);
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 4, 4), rs("new", 2, 1, 1)],
            Some("old"),
            Some("new"),
            Some(0),
        ),
        at(T0),
    );
    assert!(
        p.actions.contains(&Action::SetCanaryWeight {
            weight: 20,
            additional: Vec::new()
        }),
        "{:?}",
        p.actions
    );
}

#[test]
fn a_replica_set_that_runs_the_template_again_gets_the_next_revision() {
    // v1 (revision 1) is stable and v2 (revision 2) was promoted; the template goes back to v1.
    let st = RolloutStatus {
        current_pod_hash: Some("old".into()),
        stable_rs: Some("old".into()),
        current_step_index: Some(1),
        ..Default::default()
    };
    let ro = rollout(4, istio_canary(json!([{"setWeight": 50}])), Some(st));
    let p = plan(
        &observed(
            ro,
            vec![rs("new", 1, 0, 0), rs("old", 2, 4, 4)],
            Some("old"),
            Some("old"),
            Some(0),
        ),
        at(T0),
    );
    assert!(p.actions.contains(&Action::SetReplicaSetRevision {
        name: "web-new".into(),
        revision: 3
    }));
    assert!(p.actions.contains(&Action::AnnotateRevision { revision: 3 }));
    assert_eq!(p.events[0].message, "Rollout updated to revision 3");
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::CreateReplicaSet { .. }))
    );
}

#[test]
fn scale_down_delay_revision_limit_scales_extra_old_canaries_at_once() {
    let st = RolloutStatus {
        current_pod_hash: Some("new".into()),
        stable_rs: Some("new".into()),
        current_step_index: Some(1),
        ..Default::default()
    };
    let mut canary = istio_canary(json!([{"setWeight": 50}]));
    canary["scaleDownDelayRevisionLimit"] = json!(1);
    let ro = rollout(4, canary, Some(st));
    let p = plan(
        &observed(
            ro,
            vec![rs("first", 1, 4, 4), rs("second", 2, 4, 4), rs("new", 3, 4, 4)],
            Some("new"),
            Some("new"),
            Some(0),
        ),
        at(T0),
    );
    assert_eq!(scale_of(&p, "web-first"), Some(0), "beyond the limit: at once");
    assert_eq!(
        scale_of(&p, "web-second"),
        None,
        "within the limit: after its delay"
    );
    assert!(p.actions.iter().any(
        |a| matches!(a, Action::SetScaleDownDeadline { name, deadline: Some(_) } if name == "web-second")
    ));
}

fn with_workload(mut o: Observed, scale_down: Option<&str>, replicas: i32) -> Observed {
    o.rollout.spec.workload_ref = Some(sluice_crds::rollout::ObjectRef {
        api_version: Some("apps/v1".into()),
        kind: Some("Deployment".into()),
        name: Some("web-deploy".into()),
        scale_down: scale_down.map(String::from),
    });
    o.workload = Some(WorkloadState {
        name: "web-deploy".into(),
        error: None,
        generation: 4,
        replicas,
    });
    o
}

fn workload_scale(p: &Plan) -> Option<i32> {
    p.actions.iter().find_map(|a| match a {
        Action::ScaleWorkload { replicas, .. } => Some(*replicas),
        _ => None,
    })
}

#[test]
fn a_workload_ref_rollout_reports_the_deployment_generation_and_honours_scale_down() {
    let healthy = RolloutStatus {
        current_pod_hash: Some("new".into()),
        stable_rs: Some("new".into()),
        current_step_index: Some(1),
        ..Default::default()
    };
    let steps = json!([{"setWeight": 50}]);
    let obs = |status: RolloutStatus, available: i32, mode: Option<&str>| {
        let ro = rollout(4, istio_canary(steps.clone()), Some(status));
        with_workload(
            observed(
                ro,
                vec![rs("new", 1, 4, available)],
                Some("new"),
                Some("new"),
                Some(0),
            ),
            mode,
            4,
        )
    };
    let p = plan(&obs(healthy.clone(), 4, None), at(T0));
    assert_eq!(p.status.workload_observed_generation.as_deref(), Some("4"));
    assert_eq!(workload_scale(&p), None, "never is the default");
    let p = plan(&obs(healthy.clone(), 4, Some("never")), at(T0));
    assert_eq!(workload_scale(&p), None);
    let p = plan(&obs(healthy.clone(), 4, Some("onsuccess")), at(T0));
    assert_eq!(workload_scale(&p), Some(0), "fully promoted and whole");
    let p = plan(&obs(healthy.clone(), 3, Some("onsuccess")), at(T0));
    assert_eq!(workload_scale(&p), None, "not whole yet");
    let p = plan(&obs(healthy, 3, Some("progressively")), at(T0));
    assert_eq!(
        workload_scale(&p),
        Some(1),
        "as many fewer as the Rollout has available"
    );
}

#[test]
fn a_workload_ref_that_cannot_be_used_is_invalid_spec_with_upstreams_message() {
    let ro = rollout(4, istio_canary(json!([{"setWeight": 50}])), None);
    let mut o = with_workload(observed(ro, vec![], None, None, Some(0)), None, 4);
    o.workload.as_mut().unwrap().error = Some("template must be empty for workload reference rollout".into());
    let p = plan(&o, at(T0));
    assert_eq!(
        p.status.message.as_deref(),
        Some("InvalidSpec: template must be empty for workload reference rollout")
    );
    assert!(p.actions.is_empty());
}

fn ephemeral_of(p: &Plan, name: &str) -> Option<Option<sluice_crds::rollout::PodTemplateMetadata>> {
    p.actions.iter().find_map(|a| match a {
        Action::SetEphemeralMetadata { name: n, wanted, .. } if n == name => Some(wanted.clone()),
        _ => None,
    })
}

#[test]
fn canary_metadata_is_on_the_canary_until_promotion_then_the_stable_metadata() {
    let mut canary = istio_canary(json!([{"setWeight": 20}, {"pause": {}}]));
    canary["canaryMetadata"] = json!({"labels": {"role": "canary"}});
    canary["stableMetadata"] = json!({"labels": {"role": "stable"}});
    let ro = rollout(4, canary.clone(), Some(updating(1)));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 4, 4), rs("new", 2, 1, 1)],
            Some("old"),
            Some("new"),
            Some(20),
        ),
        at(T0),
    );
    let label = |m: Option<Option<sluice_crds::rollout::PodTemplateMetadata>>| {
        m.flatten().and_then(|m| m.labels).map(|l| l["role"].clone())
    };
    assert_eq!(label(ephemeral_of(&p, "web-new")).as_deref(), Some("canary"));
    assert_eq!(label(ephemeral_of(&p, "web-old")).as_deref(), Some("stable"));
    // Once recorded, nothing more to do.
    let ro = rollout(4, canary.clone(), Some(updating(1)));
    let mut new = rs("new", 2, 1, 1);
    new.ephemeral = serde_json::from_value(json!({"labels": {"role": "canary"}})).ok();
    let mut old = rs("old", 1, 4, 4);
    old.ephemeral = serde_json::from_value(json!({"labels": {"role": "stable"}})).ok();
    let p = plan(
        &observed(ro, vec![old, new.clone()], Some("old"), Some("new"), Some(20)),
        at(T0),
    );
    assert_eq!(ephemeral_of(&p, "web-new"), None);
    assert_eq!(ephemeral_of(&p, "web-old"), None);
    // Promoted: the new pods get the stable metadata.
    let st = RolloutStatus {
        stable_rs: Some("new".into()),
        ..updating(2)
    };
    let ro = rollout(4, canary, Some(st));
    let mut whole = rs("new", 2, 4, 4);
    whole.ephemeral = new.ephemeral.clone();
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 4, 4), whole],
            Some("new"),
            Some("new"),
            Some(0),
        ),
        at(T0),
    );
    assert_eq!(label(ephemeral_of(&p, "web-new")).as_deref(), Some("stable"));
}

#[test]
fn objects_the_rollout_no_longer_names_are_released() {
    let st = RolloutStatus {
        current_pod_hash: Some("new".into()),
        stable_rs: Some("new".into()),
        current_step_index: Some(1),
        ..Default::default()
    };
    let canary = json!({"steps": [{"setWeight": 50}]});
    let ro = rollout(4, canary, Some(st));
    let mut o = observed(ro, vec![rs("new", 1, 4, 4)], None, None, None);
    o.orphans = vec![
        Orphan::Service("web-canary".into()),
        Orphan::DestinationRule("web-dr".into()),
    ];
    let p = plan(&o, at(T0));
    assert!(p.actions.contains(&Action::Release {
        orphan: Orphan::Service("web-canary".into())
    }));
    assert!(p.actions.contains(&Action::Release {
        orphan: Orphan::DestinationRule("web-dr".into())
    }));
    assert!(p.status.canary.as_ref().is_none_or(|c| c.weights.is_none()));
}

#[test]
fn a_workload_ref_to_another_kind_is_an_unsupported_feature_and_one_without_a_kind_is_invalid() {
    let ro = rollout(4, istio_canary(json!([{"setWeight": 50}])), None);
    let mut o = with_workload(observed(ro, vec![], None, None, Some(0)), None, 4);
    o.workload = None;
    o.rollout.spec.template = None;
    o.rollout.spec.workload_ref.as_mut().unwrap().kind = Some("PodTemplate".into());
    let p = plan(&o, at(T0));
    assert!(p.actions.is_empty());
    assert!(
        p.events[0]
            .message
            .starts_with("workloadRef kind PodTemplate (spec.workloadRef.kind) is not supported"),
        "{}",
        p.events[0].message
    );
    o.rollout.spec.workload_ref.as_mut().unwrap().kind = None;
    let p = plan(&o, at(T0));
    assert_eq!(
        p.status.message.as_deref(),
        Some("InvalidSpec: Rollout has missing field '.spec.workloadRef.kind'")
    );
}

fn progressing_of(p: &Plan) -> (String, String, String) {
    let c = p
        .status
        .conditions
        .as_ref()
        .and_then(|cs| cs.iter().find(|c| c.r#type == "Progressing"))
        .unwrap();
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

#[test]
fn a_paused_rollout_is_progressing_unknown_until_it_progresses_again() {
    let steps = json!([{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}]);
    let st = paused_at(1);
    let rss = vec![rs("old", 1, 10, 10), rs("new", 2, 2, 2)];
    let ro = rollout(10, istio_canary(steps.clone()), Some(st.clone()));
    // Long past the progress deadline: a pause is not late.
    let p = plan(
        &observed(ro, rss.clone(), Some("old"), Some("new"), Some(20)),
        secs_after(T0, 7200),
    );
    let paused = (
        "Unknown".into(),
        "RolloutPaused".into(),
        "Rollout is paused".into(),
    );
    assert_eq!(progressing_of(&p), paused);
    // Promoted: the step moves on, which is progress.
    let mut st = p.status.clone();
    st.pause_conditions = None;
    let ro = rollout(10, istio_canary(steps.clone()), Some(st));
    let p = plan(
        &observed(ro, rss.clone(), Some("old"), Some("new"), Some(20)),
        secs_after(T0, 7200),
    );
    assert_eq!(p.status.current_step_index, Some(2));
    assert_eq!(progressing_of(&p).1, "ReplicaSetUpdated");
    // A user's pause lifted where nothing moves yet (the canary's pods for 50% are not there): resumed.
    let mut st = p.status.clone();
    let ro = {
        let mut ro = rollout(10, istio_canary(steps.clone()), Some(st.clone()));
        ro.spec.paused = Some(true);
        ro
    };
    let p = plan(
        &observed(ro, rss.clone(), Some("old"), Some("new"), Some(20)),
        secs_after(T0, 7201),
    );
    assert_eq!(progressing_of(&p), paused);
    st.conditions = p.status.conditions.clone();
    let ro = rollout(10, istio_canary(steps), Some(st));
    let p = plan(
        &observed(ro, rss, Some("old"), Some("new"), Some(20)),
        secs_after(T0, 7202),
    );
    assert_eq!(
        progressing_of(&p),
        (
            "Unknown".into(),
            "RolloutResumed".into(),
            "Rollout is resumed".into()
        )
    );
}

#[test]
fn steps_that_complete_at_once_and_the_next_weight_are_planned_in_one_reconcile() {
    // setWeight 20 is in place (8 + 2), the pause of 0 s ends as it starts: one reconcile moves on to
    // setWeight 50 and scales for it, telling both completed steps.
    let canary = json!({"steps": [{"setWeight": 20}, {"pause": {"duration": 0}}, {"setWeight": 50}]});
    let ro = rollout(10, canary.clone(), Some(updating(0)));
    let obs = observed(ro, vec![rs("old", 1, 8, 8), rs("new", 2, 2, 2)], None, None, None);
    let p = plan_steps(&obs, at(T0));
    assert_eq!(p.status.current_step_index, Some(2));
    let completed = reasons(&p)
        .iter()
        .filter(|r| **r == "RolloutStepCompleted")
        .count();
    assert_eq!(completed, 2, "{:?}", reasons(&p));
    assert!(
        p.actions
            .iter()
            .any(|a| matches!(a, Action::ScaleReplicaSet { .. })),
        "{:?}",
        p.actions
    );
    // One plan alone stops at the first completed step.
    assert_eq!(plan(&obs, at(T0)).status.current_step_index, Some(1));
    // A step not yet complete plans as one plan does.
    let ro = rollout(10, canary, Some(updating(0)));
    let obs = observed(
        ro,
        vec![rs("old", 1, 10, 10), rs("new", 2, 0, 0)],
        None,
        None,
        None,
    );
    let (once, steps) = (plan(&obs, at(T0)), plan_steps(&obs, at(T0)));
    assert_eq!(steps.actions, once.actions);
    assert_eq!(steps.status, once.status);
}
