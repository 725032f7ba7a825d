//! Table tests of the blue-green planner: one reconcile at a time, from a described cluster state.

use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use sluice_analysis::Phase;
use sluice_crds::rollout::{BlueGreenStatus, PauseCondition, Rollout, RolloutStatus};

use super::super::plan::*;

const T0: &str = "2026-03-01T10:00:00Z";

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn secs_after(secs: i64) -> Timestamp {
    Timestamp::from_second(at(T0).as_second() + secs).unwrap()
}

/// A blue-green Rollout of `replicas` with the given strategy fields (JSON) and status.
fn rollout(replicas: i32, strategy: serde_json::Value, status: Option<RolloutStatus>) -> Rollout {
    let mut bg = json!({"activeService": "web-active", "previewService": "web-preview"});
    for (k, v) in strategy.as_object().unwrap() {
        bg[k] = v.clone();
    }
    let mut ro: Rollout = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "default", "generation": 3, "uid": "u1",
                     "annotations": {"rollout.argoproj.io/revision": "2"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "v2"}]}},
            "strategy": {"blueGreen": bg},
        }
    }))
    .unwrap();
    ro.status = status;
    ro
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

/// Mid-update status: stable "old", current "new", active on "old".
fn updating() -> RolloutStatus {
    RolloutStatus {
        current_pod_hash: Some("new".into()),
        stable_rs: Some("old".into()),
        observed_generation: Some("3".into()),
        blue_green: Some(BlueGreenStatus {
            active_selector: Some("old".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn observed(ro: Rollout, rss: Vec<RsInfo>, active: Option<&str>, preview: Option<&str>) -> Observed {
    Observed {
        rollout: ro,
        desired_hash: "new".into(),
        replica_sets: rss,
        stable_service: Some(ServiceState::Selecting(active.map(String::from))),
        canary_service: Some(ServiceState::Selecting(preview.map(String::from))),
        traffic: None,
        subsets: None,
        pods_to_restart: Vec::new(),
        managed_routes_present: Vec::new(),
        analysis_runs: Vec::new(),
        templates: Default::default(),
        workload: None,
        orphans: Vec::new(),
        experiments: Vec::new(),
        rs_templates: Vec::new(),
    }
}

fn reasons(p: &Plan) -> Vec<&'static str> {
    p.events.iter().map(|e| e.reason).collect()
}

fn scale_of(p: &Plan, name: &str) -> Option<i32> {
    p.actions.iter().find_map(|a| match a {
        Action::ScaleReplicaSet { name: n, to, .. } if n == name => Some(*to),
        _ => None,
    })
}

fn switch_of(p: &Plan, service: &str) -> Option<String> {
    p.actions.iter().find_map(|a| match a {
        Action::SwitchService { service: s, to, .. } if s == service => Some(to.clone()),
        _ => None,
    })
}

fn message_of<'a>(p: &'a Plan, reason: &str) -> &'a str {
    p.events
        .iter()
        .find(|e| e.reason == reason)
        .map(|e| e.message.as_str())
        .unwrap_or_default()
}

fn bg_status(p: &Plan) -> BlueGreenStatus {
    p.status.blue_green.clone().unwrap_or_default()
}

fn pause_reasons(p: &Plan) -> Vec<String> {
    p.status
        .pause_conditions
        .iter()
        .flatten()
        .map(|c| c.reason.clone())
        .collect()
}

fn templates() -> Templates {
    let mut t = Templates::default();
    t.namespaced.insert(
        "smoke".into(),
        serde_json::from_value(
            json!({"metrics": [{"name": "ok", "provider": {"web": {"url": "http://x"}}}]}),
        )
        .unwrap(),
    );
    t
}

fn run(name: &str, phase: Phase) -> RunInfo {
    RunInfo {
        name: name.into(),
        phase,
        message: Some("Metric \"ok\" assessed Failed".into()),
        terminating: false,
        created: 1,
    }
}

#[test]
fn first_deploy_switches_the_active_service_only_once_the_replica_set_is_fully_available() {
    let ro = rollout(3, json!({}), None);
    let p = plan(&observed(ro, vec![], None, None), at(T0));
    assert!(p.actions.contains(&Action::CreateReplicaSet {
        hash: "new".into(),
        replicas: 3,
        revision: 1
    }));
    assert_eq!(switch_of(&p, "web-active"), None, "no pods yet");
    let st = RolloutStatus {
        current_pod_hash: Some("new".into()),
        stable_rs: Some("new".into()),
        ..Default::default()
    };
    let ro = rollout(3, json!({}), Some(st.clone()));
    let p = plan(&observed(ro, vec![rs("new", 1, 3, 2)], None, None), at(T0));
    assert_eq!(switch_of(&p, "web-active"), None, "2 of 3 available: not yet");
    assert_eq!(p.status.phase.as_deref(), Some("Progressing"));
    let ro = rollout(3, json!({}), Some(st));
    let p = plan(&observed(ro, vec![rs("new", 1, 3, 3)], None, None), at(T0));
    assert_eq!(switch_of(&p, "web-active").as_deref(), Some("new"));
    assert_eq!(switch_of(&p, "web-preview").as_deref(), Some("new"));
    assert_eq!(
        message_of(&p, "SwitchService"),
        "Switched selector for service 'web-preview' from '' to 'new'"
    );
    assert_eq!(bg_status(&p).active_selector.as_deref(), Some("new"));
    assert_eq!(p.status.phase.as_deref(), Some("Healthy"));
    assert_eq!(
        p.status.selector.as_deref(),
        Some("app=web,rollouts-pod-template-hash=new")
    );
}

#[test]
fn an_update_scales_the_new_replica_set_to_full_size_beside_the_active_one() {
    let ro = rollout(3, json!({}), Some(updating()));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 3, 3), rs("new", 2, 0, 0)],
            Some("old"),
            Some("old"),
        ),
        at(T0),
    );
    assert_eq!(scale_of(&p, "web-new"), Some(3));
    assert_eq!(scale_of(&p, "web-old"), None, "the active stays whole");
    assert_eq!(
        switch_of(&p, "web-preview"),
        None,
        "preview waits for available pods"
    );
    assert_eq!(
        message_of(&p, "ScalingReplicaSet"),
        "Scaled up ReplicaSet web-new (revision 2) from 0 to 3"
    );
    assert_eq!(
        p.status.message.as_deref(),
        Some("more replicas need to be updated")
    );
}

#[test]
fn the_preview_switches_only_when_the_new_replica_set_is_fully_available() {
    let ro = rollout(3, json!({}), Some(updating()));
    let p = plan(
        &observed(
            ro.clone(),
            vec![rs("old", 1, 3, 3), rs("new", 2, 3, 2)],
            Some("old"),
            Some("old"),
        ),
        at(T0),
    );
    assert_eq!(switch_of(&p, "web-preview"), None);
    assert_eq!(switch_of(&p, "web-active"), None);
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 3, 3), rs("new", 2, 3, 3)],
            Some("old"),
            Some("old"),
        ),
        at(T0),
    );
    assert_eq!(switch_of(&p, "web-preview").as_deref(), Some("new"));
}

#[test]
fn auto_promotion_switches_the_active_service_and_promotes_in_one_reconcile() {
    let ro = rollout(3, json!({}), Some(updating()));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 3, 3), rs("new", 2, 3, 3)],
            Some("old"),
            Some("new"),
        ),
        at(T0),
    );
    assert_eq!(switch_of(&p, "web-active").as_deref(), Some("new"));
    assert_eq!(p.status.stable_rs.as_deref(), Some("new"));
    assert_eq!(reasons(&p), ["SwitchService", "RolloutCompleted"]);
    assert_eq!(
        message_of(&p, "RolloutCompleted"),
        "Rollout completed update to revision 2 (new): Completed blue-green update"
    );
    assert_eq!(p.status.phase.as_deref(), Some("Healthy"));
}

#[test]
fn the_previous_active_is_scaled_down_after_the_scale_down_delay() {
    let st = RolloutStatus {
        stable_rs: Some("new".into()),
        blue_green: Some(BlueGreenStatus {
            active_selector: Some("new".into()),
            preview_selector: Some("new".into()),
            ..Default::default()
        }),
        ..updating()
    };
    let ro = rollout(3, json!({"scaleDownDelaySeconds": 10}), Some(st.clone()));
    let rss = vec![rs("old", 1, 3, 3), rs("new", 2, 3, 3)];
    let p = plan(
        &observed(ro.clone(), rss.clone(), Some("new"), Some("new")),
        at(T0),
    );
    assert!(p.actions.contains(&Action::SetScaleDownDeadline {
        name: "web-old".into(),
        deadline: Some(secs_after(10)),
    }));
    assert_eq!(scale_of(&p, "web-old"), None, "kept during the delay");
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(10)));
    let mut old = rs("old", 1, 3, 3);
    old.scale_down_deadline = Some(secs_after(10));
    let p = plan(
        &observed(ro, vec![old, rs("new", 2, 3, 3)], Some("new"), Some("new")),
        secs_after(11),
    );
    assert_eq!(scale_of(&p, "web-old"), Some(0));
}

#[test]
fn scale_down_delay_zero_scales_the_previous_active_down_at_once() {
    let st = RolloutStatus {
        stable_rs: Some("new".into()),
        blue_green: Some(BlueGreenStatus {
            active_selector: Some("new".into()),
            ..Default::default()
        }),
        ..updating()
    };
    let ro = rollout(3, json!({"scaleDownDelaySeconds": 0}), Some(st));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 3, 3), rs("new", 2, 3, 3)],
            Some("new"),
            Some("new"),
        ),
        at(T0),
    );
    assert_eq!(
        scale_of(&p, "web-old"),
        Some(0),
        "upstream #1992 leaves it running"
    );
}

#[test]
fn scale_down_delay_revision_limit_scales_extra_old_replica_sets_at_once() {
    let st = RolloutStatus {
        stable_rs: Some("new".into()),
        blue_green: Some(BlueGreenStatus {
            active_selector: Some("new".into()),
            ..Default::default()
        }),
        ..updating()
    };
    let ro = rollout(
        3,
        json!({"scaleDownDelaySeconds": 30, "scaleDownDelayRevisionLimit": 1}),
        Some(st),
    );
    let mut mid = rs("mid", 2, 3, 3);
    mid.scale_down_deadline = Some(secs_after(20));
    let p = plan(
        &observed(
            ro,
            vec![rs("first", 1, 3, 3), mid, rs("new", 3, 3, 3)],
            Some("new"),
            Some("new"),
        ),
        at(T0),
    );
    assert_eq!(scale_of(&p, "web-first"), Some(0), "beyond the revision limit");
    assert_eq!(
        scale_of(&p, "web-mid"),
        None,
        "the newest old one waits for its deadline"
    );
}

#[test]
fn manual_promotion_pauses_with_the_preview_at_its_preview_size() {
    let strategy = json!({"autoPromotionEnabled": false, "previewReplicaCount": 1});
    let ro = rollout(3, strategy.clone(), Some(updating()));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 3, 3), rs("new", 2, 0, 0)],
            Some("old"),
            Some("old"),
        ),
        at(T0),
    );
    assert_eq!(scale_of(&p, "web-new"), Some(1));
    let ro = rollout(3, strategy.clone(), Some(updating()));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 3, 3), rs("new", 2, 1, 1)],
            Some("old"),
            Some("old"),
        ),
        at(T0),
    );
    assert_eq!(switch_of(&p, "web-preview").as_deref(), Some("new"));
    assert_eq!(switch_of(&p, "web-active"), None);
    assert_eq!(pause_reasons(&p), ["BlueGreenPause"]);
    assert_eq!(p.status.controller_pause, Some(true));
    assert_eq!(
        message_of(&p, "RolloutPaused"),
        "Rollout is paused (BlueGreenPause)"
    );
    assert_eq!(
        (p.status.phase.as_deref(), p.status.message.as_deref()),
        (Some("Paused"), Some("BlueGreenPause"))
    );
    // Still paused on the next reconcile: nothing moves, no second event.
    let ro = rollout(3, strategy, Some(p.status.clone()));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 3, 3), rs("new", 2, 1, 1)],
            Some("old"),
            Some("new"),
        ),
        at(T0),
    );
    assert_eq!(pause_reasons(&p), ["BlueGreenPause"]);
    assert!(
        p.actions
            .iter()
            .all(|a| !matches!(a, Action::SwitchService { .. }))
    );
    assert!(reasons(&p).is_empty(), "{:?}", reasons(&p));
}

#[test]
fn promote_scales_the_preview_up_then_switches_the_active_service() {
    let strategy = json!({"autoPromotionEnabled": false, "previewReplicaCount": 1});
    let paused = RolloutStatus {
        pause_conditions: None,
        controller_pause: Some(true),
        blue_green: Some(BlueGreenStatus {
            active_selector: Some("old".into()),
            preview_selector: Some("new".into()),
            ..Default::default()
        }),
        ..updating()
    };
    // The user cleared the pause conditions.
    let ro = rollout(3, strategy.clone(), Some(paused));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 3, 3), rs("new", 2, 1, 1)],
            Some("old"),
            Some("new"),
        ),
        at(T0),
    );
    assert_eq!(reasons(&p)[0], "RolloutResumed");
    assert_eq!(bg_status(&p).scale_up_preview_check_point, Some(true));
    assert_eq!(p.status.controller_pause, None);
    assert_eq!(
        switch_of(&p, "web-active"),
        None,
        "the preview is not full size yet"
    );
    // Next reconcile: the checkpoint scales the preview up.
    let ro = rollout(3, strategy.clone(), Some(p.status.clone()));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 3, 3), rs("new", 2, 1, 1)],
            Some("old"),
            Some("new"),
        ),
        at(T0),
    );
    assert_eq!(scale_of(&p, "web-new"), Some(3));
    assert!(pause_reasons(&p).is_empty(), "no second pause");
    // Full and available: the active Service switches and the update completes.
    let ro = rollout(3, strategy, Some(p.status.clone()));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 3, 3), rs("new", 2, 3, 3)],
            Some("old"),
            Some("new"),
        ),
        at(T0),
    );
    assert_eq!(switch_of(&p, "web-active").as_deref(), Some("new"));
    assert_eq!(p.status.stable_rs.as_deref(), Some("new"));
    assert_eq!(bg_status(&p).scale_up_preview_check_point, None);
    // Promoted: the checkpoint stays cleared.
    let ro = rollout(
        3,
        json!({"autoPromotionEnabled": false, "previewReplicaCount": 1}),
        Some(p.status.clone()),
    );
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 3, 3), rs("new", 2, 3, 3)],
            Some("new"),
            Some("new"),
        ),
        at(T0),
    );
    assert_eq!(bg_status(&p).scale_up_preview_check_point, None);
    assert_eq!(p.status.phase.as_deref(), Some("Healthy"));
}

#[test]
fn auto_promotion_seconds_pause_then_promote_by_themselves() {
    let strategy = json!({"autoPromotionSeconds": 5});
    let ro = rollout(3, strategy.clone(), Some(updating()));
    let rss = vec![rs("old", 1, 3, 3), rs("new", 2, 3, 3)];
    let p = plan(&observed(ro, rss.clone(), Some("old"), Some("new")), at(T0));
    assert_eq!(pause_reasons(&p), ["BlueGreenPause"]);
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(5)));
    let ro = rollout(3, strategy.clone(), Some(p.status.clone()));
    let p = plan(
        &observed(ro, rss.clone(), Some("old"), Some("new")),
        secs_after(3),
    );
    assert_eq!(switch_of(&p, "web-active"), None);
    let ro = rollout(3, strategy, Some(p.status.clone()));
    let p = plan(&observed(ro, rss, Some("old"), Some("new")), secs_after(5));
    assert_eq!(switch_of(&p, "web-active").as_deref(), Some("new"));
    assert!(pause_reasons(&p).is_empty());
    assert_eq!(p.status.stable_rs.as_deref(), Some("new"));
}

#[test]
fn pre_promotion_analysis_starts_when_the_preview_is_ready_and_gates_the_switch() {
    let strategy = json!({"prePromotionAnalysis": {"templates": [{"templateName": "smoke"}]}});
    let ro = rollout(3, strategy.clone(), Some(updating()));
    let mut o = observed(
        ro,
        vec![rs("old", 1, 3, 2), rs("new", 2, 3, 2)],
        Some("old"),
        Some("old"),
    );
    o.templates = templates();
    let p = plan(&o, at(T0));
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::CreateAnalysisRun { .. })),
        "the preview is not ready"
    );
    let ro = rollout(3, strategy.clone(), Some(updating()));
    let mut o = observed(
        ro,
        vec![rs("old", 1, 3, 3), rs("new", 2, 3, 3)],
        Some("old"),
        Some("new"),
    );
    o.templates = templates();
    let p = plan(&o, at(T0));
    let created = p.actions.iter().find_map(|a| match a {
        Action::CreateAnalysisRun { name, labels, .. } => Some((name.clone(), labels.clone())),
        _ => None,
    });
    let (name, labels) = created.expect("pre-promotion run");
    assert_eq!(name, "web-new-2-pre");
    assert_eq!(labels["rollout-type"], "PrePromotion");
    assert_eq!(switch_of(&p, "web-active"), None, "waits for the analysis");
    assert_eq!(
        message_of(&p, "AnalysisRunPending"),
        "PrePromotion Analysis Run 'web-new-2-pre' Status New: 'Pending' Previous: ''"
    );
    // Successful: the active Service switches.
    let ro = rollout(3, strategy, Some(p.status.clone()));
    let mut o = observed(
        ro,
        vec![rs("old", 1, 3, 3), rs("new", 2, 3, 3)],
        Some("old"),
        Some("new"),
    );
    o.templates = templates();
    o.analysis_runs = vec![run("web-new-2-pre", Phase::Successful)];
    let p = plan(&o, at(T0));
    assert_eq!(switch_of(&p, "web-active").as_deref(), Some("new"));
    assert_eq!(
        bg_status(&p).pre_promotion_analysis_run_status.map(|s| s.status),
        Some("Successful".into())
    );
}

#[test]
fn a_failed_pre_promotion_run_aborts_and_keeps_the_active_service_on_stable() {
    let strategy = json!({"prePromotionAnalysis": {"templates": [{"templateName": "smoke"}]}});
    let mut st = updating();
    st.blue_green.as_mut().unwrap().pre_promotion_analysis_run_status =
        Some(sluice_crds::rollout::RolloutAnalysisRunStatus {
            name: "web-new-2-pre".into(),
            status: "Running".into(),
            message: None,
        });
    let ro = rollout(3, strategy, Some(st));
    let mut o = observed(
        ro,
        vec![rs("old", 1, 3, 3), rs("new", 2, 3, 3)],
        Some("old"),
        Some("new"),
    );
    o.templates = templates();
    o.analysis_runs = vec![run("web-new-2-pre", Phase::Failed)];
    let p = plan(&o, at(T0));
    assert_eq!(p.status.abort, Some(true));
    assert_eq!(switch_of(&p, "web-active"), None);
    assert_eq!(p.status.phase.as_deref(), Some("Degraded"));
    assert!(
        p.status
            .message
            .as_deref()
            .unwrap()
            .starts_with("RolloutAborted: Rollout aborted update to revision 2: Metric \"ok\""),
        "{:?}",
        p.status.message
    );
    assert!(reasons(&p).contains(&"AnalysisRunFailed"));
    assert!(reasons(&p).contains(&"RolloutAborted"));
}

#[test]
fn post_promotion_analysis_runs_after_the_switch_and_a_failure_switches_the_active_back() {
    let strategy = json!({"postPromotionAnalysis": {"templates": [{"templateName": "smoke"}]}});
    // Switch first; the update is not complete before the post-promotion run passes.
    let ro = rollout(3, strategy.clone(), Some(updating()));
    let mut o = observed(
        ro,
        vec![rs("old", 1, 3, 3), rs("new", 2, 3, 3)],
        Some("old"),
        Some("new"),
    );
    o.templates = templates();
    let p = plan(&o, at(T0));
    assert_eq!(switch_of(&p, "web-active").as_deref(), Some("new"));
    assert_eq!(p.status.stable_rs.as_deref(), Some("old"));
    assert_eq!(
        p.status.message.as_deref(),
        Some("waiting for analysis to complete")
    );
    // Next reconcile: the active Service selects the new pods; the post-promotion run starts.
    let ro = rollout(3, strategy.clone(), Some(p.status.clone()));
    let mut o = observed(
        ro,
        vec![rs("old", 1, 3, 3), rs("new", 2, 3, 3)],
        Some("new"),
        Some("new"),
    );
    o.templates = templates();
    let p = plan(&o, at(T0));
    let name = p.actions.iter().find_map(|a| match a {
        Action::CreateAnalysisRun { name, labels, .. } => {
            Some((name.clone(), labels["rollout-type"].clone()))
        }
        _ => None,
    });
    assert_eq!(name, Some(("web-new-2-post".into(), "PostPromotion".into())));
    assert_eq!(scale_of(&p, "web-old"), None, "the previous version stays whole");
    // It fails: abort, the active Service goes back to the stable pods.
    let ro = rollout(3, strategy, Some(p.status.clone()));
    let mut o = observed(
        ro,
        vec![rs("old", 1, 3, 3), rs("new", 2, 3, 3)],
        Some("new"),
        Some("new"),
    );
    o.templates = templates();
    o.analysis_runs = vec![run("web-new-2-post", Phase::Failed)];
    let p = plan(&o, at(T0));
    assert_eq!(p.status.abort, Some(true));
    assert_eq!(switch_of(&p, "web-active").as_deref(), Some("old"));
    assert_eq!(p.status.stable_rs.as_deref(), Some("old"));
    assert_eq!(p.status.phase.as_deref(), Some("Degraded"));
}

#[test]
fn abort_keeps_the_preview_for_the_abort_delay_then_scales_it_down() {
    let st = RolloutStatus {
        abort: Some(true),
        ..updating()
    };
    let ro = rollout(3, json!({"abortScaleDownDelaySeconds": 5}), Some(st));
    let p = plan(
        &observed(
            ro.clone(),
            vec![rs("old", 1, 3, 3), rs("new", 2, 3, 3)],
            Some("old"),
            Some("new"),
        ),
        at(T0),
    );
    assert!(p.actions.contains(&Action::SetScaleDownDeadline {
        name: "web-new".into(),
        deadline: Some(secs_after(5)),
    }));
    assert_eq!(scale_of(&p, "web-new"), None);
    assert_eq!(switch_of(&p, "web-active"), None, "active stays on stable");
    assert_eq!(p.status.phase.as_deref(), Some("Degraded"));
    let mut new = rs("new", 2, 3, 3);
    new.scale_down_deadline = Some(secs_after(5));
    let ro = rollout(
        3,
        json!({"abortScaleDownDelaySeconds": 5}),
        Some(p.status.clone()),
    );
    let p = plan(
        &observed(ro, vec![rs("old", 1, 3, 3), new], Some("old"), Some("new")),
        secs_after(6),
    );
    assert_eq!(scale_of(&p, "web-new"), Some(0));
}

#[test]
fn retry_after_an_abort_brings_the_new_replica_set_back() {
    let mut st = updating();
    st.conditions = Some(vec![sluice_crds::rollout::RolloutCondition {
        r#type: "Progressing".into(),
        status: "False".into(),
        reason: "RolloutAborted".into(),
        message: "Rollout aborted update to revision 2".into(),
        last_update_time: None,
        last_transition_time: None,
    }]);
    st.abort = Some(false);
    let mut new = rs("new", 2, 0, 0);
    new.scale_down_deadline = Some(at(T0));
    let ro = rollout(3, json!({}), Some(st));
    let p = plan(
        &observed(ro, vec![rs("old", 1, 3, 3), new], Some("old"), Some("new")),
        at(T0),
    );
    assert_eq!(scale_of(&p, "web-new"), Some(3));
    assert!(p.actions.contains(&Action::SetScaleDownDeadline {
        name: "web-new".into(),
        deadline: None,
    }));
    let progressing = p
        .status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.r#type == "Progressing")
        .unwrap();
    assert_eq!(progressing.reason, "RolloutRetry");
}

#[test]
fn promote_full_skips_the_pause_and_the_preview_size() {
    let st = RolloutStatus {
        promote_full: Some(true),
        pause_conditions: Some(vec![PauseCondition {
            reason: "BlueGreenPause".into(),
            start_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(T0)),
        }]),
        controller_pause: Some(true),
        ..updating()
    };
    let strategy = json!({"autoPromotionEnabled": false, "previewReplicaCount": 1});
    let ro = rollout(3, strategy.clone(), Some(st));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 3, 3), rs("new", 2, 1, 1)],
            Some("old"),
            Some("new"),
        ),
        at(T0),
    );
    assert_eq!(scale_of(&p, "web-new"), Some(3));
    assert!(pause_reasons(&p).is_empty());
    let ro = rollout(3, strategy, Some(p.status.clone()));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 3, 3), rs("new", 2, 3, 3)],
            Some("old"),
            Some("new"),
        ),
        at(T0),
    );
    assert_eq!(switch_of(&p, "web-active").as_deref(), Some("new"));
    assert!(message_of(&p, "RolloutCompleted").ends_with("Full promotion requested"));
    assert_eq!(p.status.promote_full, None);
}

#[test]
fn a_rollback_to_a_replica_set_within_its_scale_down_delay_is_fast_tracked() {
    let strategy = json!({"autoPromotionEnabled": false});
    let mut back = rs("new", 1, 3, 3);
    back.scale_down_deadline = Some(secs_after(20));
    let st = RolloutStatus {
        current_pod_hash: Some("new".into()),
        stable_rs: Some("old".into()),
        blue_green: Some(BlueGreenStatus {
            active_selector: Some("old".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let ro = rollout(3, strategy, Some(st));
    let p = plan(
        &observed(ro, vec![rs("old", 2, 3, 3), back], Some("old"), Some("old")),
        at(T0),
    );
    assert_eq!(switch_of(&p, "web-active").as_deref(), Some("new"), "no pause");
    assert!(pause_reasons(&p).is_empty());
    assert_eq!(p.status.stable_rs.as_deref(), Some("new"));
}

#[test]
fn a_user_pause_halts_scaling_and_switches() {
    let mut ro = rollout(3, json!({}), Some(updating()));
    ro.spec.paused = Some(true);
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 3, 3), rs("new", 2, 0, 0)],
            Some("old"),
            Some("old"),
        ),
        at(T0),
    );
    assert_eq!(scale_of(&p, "web-new"), None);
    assert_eq!(p.status.phase.as_deref(), Some("Paused"));
}

#[test]
fn invalid_blue_green_specs_get_upstream_messages() {
    let cases = [
        (
            json!({"previewService": "web-active"}),
            "InvalidSpec: This rollout uses the same service for the active and preview services, but two different services are required.",
        ),
        (
            json!({"antiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": {"weight": 0}}}),
            "InvalidSpec: AntiAffinity weight must be between 1-100",
        ),
        (
            json!({"antiAffinity": {}}),
            "InvalidSpec: AntiAffinity must have exactly one strategy listed",
        ),
        (
            json!({"scaleDownDelayRevisionLimit": 11}),
            "InvalidSpec: This rollout's revision history limit can not be smaller than the rollout's scale down limit",
        ),
    ];
    for (strategy, want) in cases {
        let ro = rollout(3, strategy, None);
        let p = plan(&observed(ro, vec![], None, None), at(T0));
        assert_eq!(p.status.message.as_deref(), Some(want));
        assert!(p.actions.is_empty());
    }
}

#[test]
fn status_counts_come_from_the_active_replica_set() {
    let ro = rollout(3, json!({"autoPromotionEnabled": false}), Some(updating()));
    let p = plan(
        &observed(
            ro,
            vec![rs("old", 1, 3, 3), rs("new", 2, 3, 2)],
            Some("old"),
            Some("old"),
        ),
        at(T0),
    );
    assert_eq!(p.status.available_replicas, Some(3));
    assert_eq!(p.status.hpa_replicas, Some(3));
    assert_eq!(p.status.replicas, Some(6));
    assert_eq!(
        p.status.selector.as_deref(),
        Some("app=web,rollouts-pod-template-hash=old")
    );
    let available = p
        .status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.r#type == "Available")
        .unwrap();
    assert_eq!(available.status, "True");
}

#[test]
fn a_restart_evicts_within_the_blue_green_max_unavailable_stable_pods_first() {
    let st = RolloutStatus {
        current_pod_hash: Some("new".into()),
        stable_rs: Some("new".into()),
        blue_green: Some(BlueGreenStatus {
            active_selector: Some("new".into()),
            preview_selector: Some("new".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut ro = rollout(4, json!({"maxUnavailable": 2}), Some(st));
    ro.spec.restart_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(T0)));
    let mut o = observed(ro, vec![rs("new", 1, 4, 4)], Some("new"), Some("new"));
    o.pods_to_restart = (0..4)
        .map(|i| (format!("web-new-{i}"), "new".to_string()))
        .collect();
    let p = plan(&o, secs_after(1));
    let evicted: Vec<_> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::EvictPod { name } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(evicted, ["web-new-0", "web-new-1"], "maxUnavailable 2 at a time");
    assert_eq!(p.status.message.as_deref(), Some("rollout is restarting"));
}
