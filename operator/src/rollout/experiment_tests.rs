//! Table tests of the experiment step: the Experiment built, read and retired, one reconcile at a time.

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use serde_json::json;
use sluice_analysis::Phase;
use sluice_crds::rollout::{Rollout, RolloutStatus, TrafficWeights, WeightDestination};

use super::super::{
    hash::steps_hash,
    plan::{
        Action, ExperimentInfo, Observed, Plan, RsInfo, RsTemplate, ServiceState, TemplateInfo, TrafficState,
        plan,
    },
};

const T0: &str = "2026-03-01T10:00:00Z";

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// setWeight 20, then an experiment with a weighted canary template, a stable template and an analysis.
fn steps() -> serde_json::Value {
    json!([
        {"setWeight": 20},
        {"experiment": {
            "duration": "5m",
            "scaleDownDelaySeconds": 10,
            "dryRun": [{"metricName": "latency"}],
            "analysisRunMetadata": {"labels": {"team": "shop"}},
            "templates": [
                {"name": "exp-canary", "specRef": "canary", "replicas": 1, "weight": 5,
                 "metadata": {"labels": {"variant": "canary"}}},
                {"name": "exp-stable", "specRef": "stable", "service": {"name": "web-exp-stable"}}
            ],
            "analyses": [{"name": "compare", "templateName": "success-rate",
                          "args": [{"name": "hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
                                   {"name": "service", "value": "web"}]}]
        }},
        {"setWeight": 50}
    ])
}

fn rollout(routed: bool, status: RolloutStatus) -> Rollout {
    let mut canary = json!({"steps": steps()});
    if !routed {
        // A template weight needs a traffic router.
        let templates = &mut canary["steps"][1]["experiment"]["templates"][0];
        templates.as_object_mut().unwrap().remove("weight");
        templates["service"] = json!({});
    }
    if routed {
        canary["canaryService"] = json!("web-canary");
        canary["stableService"] = json!("web-stable");
        canary["trafficRouting"] = json!({"istio": {"virtualService": {"name": "web-vs"}}});
    }
    let mut ro: Rollout = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "shop", "generation": 3, "uid": "u1",
                     "labels": {"app": "web"},
                     "annotations": {"rollout.argoproj.io/revision": "2"}},
        "spec": {
            "replicas": 10,
            "progressDeadlineSeconds": 120,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "v2"}]}},
            "strategy": {"canary": canary},
        }
    }))
    .unwrap();
    ro.status = Some(status);
    ro
}

fn rs(hash: &str, revision: i64, spec: i32, available: i32) -> RsInfo {
    RsInfo {
        name: format!("web-{hash}"),
        hash: hash.into(),
        revision,
        spec_replicas: spec,
        replicas: spec,
        ready: available,
        available,
        ..Default::default()
    }
}

fn rs_template(hash: &str, image: &str) -> RsTemplate {
    RsTemplate {
        hash: hash.into(),
        template: serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web", "rollouts-pod-template-hash": hash}},
            "spec": {"containers": [{"name": "web", "image": image}]}
        }))
        .unwrap(),
        selector: serde_json::from_value(
            json!({"matchLabels": {"app": "web", "rollouts-pod-template-hash": hash}}),
        )
        .unwrap(),
        min_ready_seconds: Some(3),
    }
}

/// Mid-update status at `index` (stable "old", canary "new"), with the canary weight recorded.
fn status(index: i32, current: Option<&str>) -> RolloutStatus {
    let mut st = RolloutStatus {
        current_pod_hash: Some("new".into()),
        stable_rs: Some("old".into()),
        current_step_index: Some(index),
        observed_generation: Some("3".into()),
        ..Default::default()
    };
    st.canary = Some(sluice_crds::rollout::CanaryStatus {
        current_experiment: current.map(String::from),
        ..Default::default()
    });
    st
}

/// At the experiment step (index 1) with the canary at 20% and its pods up.
fn observed(routed: bool, st: RolloutStatus, experiments: Vec<ExperimentInfo>) -> Observed {
    let mut ro = rollout(routed, st);
    let steps = ro.spec.strategy.canary.as_ref().unwrap().steps.clone();
    ro.status.as_mut().unwrap().current_step_hash = Some(steps_hash(&steps));
    Observed {
        rollout: ro,
        desired_hash: "new".into(),
        replica_sets: vec![rs("new", 2, 2, 2), rs("old", 1, 10, 10)],
        stable_service: routed.then(|| ServiceState::Selecting(Some("old".into()))),
        canary_service: routed.then(|| ServiceState::Selecting(Some("new".into()))),
        traffic: routed.then_some(TrafficState::Weight(20)),
        subsets: None,
        pods_to_restart: Vec::new(),
        managed_routes_present: Vec::new(),
        analysis_runs: Vec::new(),
        templates: Default::default(),
        workload: None,
        orphans: Vec::new(),
        experiments,
        rs_templates: vec![rs_template("new", "v2"), rs_template("old", "v1")],
    }
}

fn experiment(name: &str, phase: Phase, message: Option<&str>) -> ExperimentInfo {
    ExperimentInfo {
        name: name.into(),
        phase,
        message: message.map(String::from),
        terminating: false,
        created: 1,
        hash: Some("new".into()),
        templates: vec![
            TemplateInfo {
                name: "exp-canary".into(),
                service: Some("web-2-1-exp-canary".into()),
                pod_template_hash: Some("c1".into()),
            },
            TemplateInfo {
                name: "exp-stable".into(),
                service: Some("web-exp-stable".into()),
                pod_template_hash: Some("s1".into()),
            },
        ],
    }
}

fn reasons(p: &Plan) -> Vec<&'static str> {
    p.events.iter().map(|e| e.reason).collect()
}

fn current(p: &Plan) -> Option<&str> {
    p.status
        .canary
        .as_ref()
        .and_then(|c| c.current_experiment.as_deref())
}

fn terminated(p: &Plan) -> Vec<&str> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::TerminateExperiment { name } => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

fn deleted(p: &Plan) -> Vec<&str> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::DeleteExperiment { name } => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

fn weights(p: &Plan) -> Option<(i32, Vec<(String, i32)>)> {
    p.actions.iter().find_map(|a| match a {
        Action::SetCanaryWeight { weight, additional } => Some((
            *weight,
            additional.iter().map(|a| (a.service.clone(), a.weight)).collect(),
        )),
        _ => None,
    })
}

#[test]
fn the_experiment_is_built_as_upstream_from_the_canary_and_stable_replica_sets() {
    let p = plan(&observed(false, status(1, None), Vec::new()), at(T0));
    let created: Vec<_> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateExperiment { experiment } => Some(experiment),
            _ => None,
        })
        .collect();
    assert_eq!(
        created.len(),
        1,
        "{:?} {:?} {:?}",
        p.actions,
        p.events,
        p.status.conditions
    );
    let e = serde_json::to_value(created[0].as_ref()).unwrap();
    assert_eq!(
        e["metadata"]["name"], "web-new-2-1",
        "<rollout>-<podHash>-<revision>-<stepIndex>"
    );
    assert_eq!(e["metadata"]["namespace"], "shop");
    assert_eq!(
        e["metadata"]["labels"],
        json!({"app": "web", "rollouts-pod-template-hash": "new"})
    );
    assert_eq!(
        e["metadata"]["annotations"],
        json!({"rollout.argoproj.io/revision": "2"})
    );
    let owner = &e["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["uid"].as_str()),
        (Some("Rollout"), Some("u1"))
    );
    assert_eq!(owner["controller"], true);
    let spec = &e["spec"];
    assert_eq!(spec["duration"], "5m");
    assert_eq!(spec["progressDeadlineSeconds"], 120);
    assert_eq!(spec["scaleDownDelaySeconds"], 10);
    assert_eq!(spec["dryRun"], json!([{"metricName": "latency"}]));
    assert_eq!(spec["analysisRunMetadata"], json!({"labels": {"team": "shop"}}));
    let canary = &spec["templates"][0];
    assert_eq!(canary["name"], "exp-canary");
    assert_eq!(canary["replicas"], 1);
    assert_eq!(canary["minReadySeconds"], 3);
    assert_eq!(canary["template"]["spec"]["containers"][0]["image"], "v2");
    assert_eq!(
        canary["template"]["metadata"]["labels"],
        json!({"app": "web", "rollouts-pod-template-hash": "new", "variant": "canary"}),
        "the ReplicaSet's labels, hash included, plus the step's"
    );
    assert_eq!(
        canary["selector"]["matchLabels"],
        json!({"app": "web", "rollouts-pod-template-hash": "new", "variant": "canary"})
    );
    assert_eq!(
        canary["service"],
        json!({}),
        "a weighted template gets a Service named by the Experiment"
    );
    let stable = &spec["templates"][1];
    assert_eq!(stable["template"]["spec"]["containers"][0]["image"], "v1");
    assert_eq!(
        stable["selector"]["matchLabels"]["rollouts-pod-template-hash"],
        "old"
    );
    assert_eq!(stable["service"], json!({"name": "web-exp-stable"}));
    assert_eq!(
        spec["analyses"],
        json!([{"name": "compare", "templateName": "success-rate",
                "args": [{"name": "hash", "value": "new"}, {"name": "service", "value": "web"}]}])
    );
    assert_eq!(current(&p), Some("web-new-2-1"));
    assert_eq!(
        p.events
            .iter()
            .find(|e| e.reason == "ExperimentCreated")
            .unwrap()
            .message,
        "Created Experiment 'web-new-2-1'"
    );
    assert_eq!(
        p.status.current_step_index,
        Some(1),
        "the step waits for the Experiment"
    );
}

#[test]
fn creation_waits_for_both_replica_sets_and_names_around_taken_ones() {
    let mut o = observed(false, status(1, None), Vec::new());
    o.rs_templates.retain(|t| t.hash != "old");
    let p = plan(&o, at(T0));
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::CreateExperiment { .. }))
    );
    assert_eq!(current(&p), None);
    // A completed Experiment of an earlier attempt holds the name: the next one gets a suffix.
    let o = observed(
        false,
        status(1, None),
        vec![experiment("web-new-2-1", Phase::Failed, None)],
    );
    let p = plan(&o, at(T0));
    assert_eq!(current(&p), Some("web-new-2-1-1"));
    // A running one of this step without a record is adopted, not created again.
    let o = observed(
        false,
        status(1, None),
        vec![experiment("web-new-2-1", Phase::Running, None)],
    );
    let p = plan(&o, at(T0));
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::CreateExperiment { .. }))
    );
    assert_eq!(current(&p), Some("web-new-2-1"));
}

#[test]
fn a_bad_spec_ref_or_a_weight_without_a_router_is_an_invalid_spec() {
    let cases = [
        (
            false,
            "preview",
            None,
            "Experiment template 'exp-canary': specRef must be canary or stable, got \"preview\"",
        ),
        (
            false,
            "canary",
            Some(5),
            "Experiment template weight cannot be set unless TrafficRouting is enabled",
        ),
    ];
    for (routed, spec_ref, weight, message) in cases {
        let mut o = observed(routed, status(1, None), Vec::new());
        let canary = o.rollout.spec.strategy.canary.as_mut().unwrap();
        let step = canary.steps.as_mut().unwrap()[1].experiment.as_mut().unwrap();
        step.templates[0].spec_ref = spec_ref.into();
        step.templates[0].weight = weight;
        let p = plan(&o, at(T0));
        assert!(
            !p.actions
                .iter()
                .any(|a| matches!(a, Action::CreateExperiment { .. }))
        );
        let c = p
            .status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.r#type == "InvalidSpec")
            .unwrap_or_else(|| panic!("{:?}", p.status.conditions));
        assert!(c.message.ends_with(message), "{}", c.message);
    }
}

/// (phase, message, step index after, current experiment after, events).
type PhaseCase = (
    Phase,
    Option<&'static str>,
    i32,
    Option<&'static str>,
    &'static [&'static str],
);

#[test]
fn the_experiment_phase_decides_the_step() {
    let name = "web-new-2-1";
    let cases: [PhaseCase; 5] = [
        (Phase::Pending, None, 1, Some(name), &[]),
        (Phase::Running, None, 1, Some(name), &[]),
        (Phase::Successful, None, 2, None, &["RolloutStepCompleted"]),
        (Phase::Inconclusive, None, 1, Some(name), &["RolloutPaused"]),
        (
            Phase::Failed,
            Some("Metric \"compare\" assessed Failed"),
            0,
            None,
            &["RolloutAborted"],
        ),
    ];
    for (phase, message, index, after, events) in cases {
        let o = observed(
            false,
            status(1, Some(name)),
            vec![experiment(name, phase, message)],
        );
        let p = plan(&o, at(T0));
        assert_eq!(p.status.current_step_index, Some(index), "{phase:?}");
        assert_eq!(current(&p), after, "{phase:?}");
        let got: Vec<_> = reasons(&p)
            .into_iter()
            .filter(|r| !r.starts_with("Scaling"))
            .collect();
        assert_eq!(got, events, "{phase:?}: {:?}", p.events);
        assert!(
            terminated(&p).is_empty(),
            "{phase:?}: the current one runs on or is done"
        );
    }
}

#[test]
fn a_successful_experiment_completes_the_step_with_upstreams_event() {
    let name = "web-new-2-1";
    let o = observed(
        false,
        status(1, Some(name)),
        vec![experiment(name, Phase::Successful, None)],
    );
    let p = plan(&o, at(T0));
    let e = p
        .events
        .iter()
        .find(|e| e.reason == "RolloutStepCompleted")
        .unwrap();
    assert_eq!(e.message, "Rollout step 2/3 completed (experiment)");
}

#[test]
fn a_failed_experiment_aborts_with_its_message() {
    let name = "web-new-2-1";
    let o = observed(
        true,
        status(1, Some(name)),
        vec![experiment(
            name,
            Phase::Failed,
            Some("Metric \"compare\" assessed Failed"),
        )],
    );
    let p = plan(&o, at(T0));
    assert_eq!(p.status.abort, Some(true));
    assert_eq!(p.status.phase.as_deref(), Some("Degraded"));
    let progressing = p
        .status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.r#type == "Progressing")
        .unwrap();
    assert_eq!(progressing.reason, "RolloutAborted");
    assert_eq!(
        progressing.message,
        "Rollout aborted update to revision 2: Metric \"compare\" assessed Failed"
    );
    assert_eq!(weights(&p), Some((0, vec![])), "traffic back to the stable");
    // Error without a message: upstream's plain abort message.
    let o = observed(
        false,
        status(1, Some(name)),
        vec![experiment(name, Phase::Error, None)],
    );
    let p = plan(&o, at(T0));
    let progressing = p
        .status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.r#type == "Progressing")
        .unwrap();
    assert_eq!(progressing.message, "Rollout aborted update to revision 2");
}

#[test]
fn an_inconclusive_experiment_pauses_until_promoted() {
    let name = "web-new-2-1";
    let o = observed(
        false,
        status(1, Some(name)),
        vec![experiment(name, Phase::Inconclusive, None)],
    );
    let p = plan(&o, at(T0));
    let reasons_now: Vec<_> = p
        .status
        .pause_conditions
        .iter()
        .flatten()
        .map(|c| c.reason.as_str())
        .collect();
    assert_eq!(reasons_now, ["InconclusiveExperiment"]);
    assert_eq!(p.status.controller_pause, Some(true));
    assert_eq!(p.status.phase.as_deref(), Some("Paused"));
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::CreateExperiment { .. }))
    );
    // The user promotes (pause conditions cleared): the step is done.
    let mut st = status(1, Some(name));
    st.controller_pause = Some(true);
    let o = observed(false, st, vec![experiment(name, Phase::Inconclusive, None)]);
    let p = plan(&o, at(T0));
    assert_eq!(p.status.current_step_index, Some(2));
    assert_eq!(current(&p), None);
    assert!(p.status.pause_conditions.is_none());
}

#[test]
fn abort_promote_full_a_new_revision_and_leaving_the_step_terminate_the_running_experiment() {
    let name = "web-new-2-1";
    let running = || vec![experiment(name, Phase::Running, None)];
    let mut aborted = status(1, Some(name));
    aborted.abort = Some(true);
    let mut full = status(1, Some(name));
    full.promote_full = Some(true);
    let mut past = status(2, Some(name));
    past.canary.as_mut().unwrap().current_experiment = Some(name.into());
    let cases = [("abort", aborted), ("promote full", full), ("next step", past)];
    for (what, st) in cases {
        let p = plan(&observed(false, st, running()), at(T0));
        assert_eq!(terminated(&p), [name], "{what}");
        assert_eq!(current(&p), None, "{what}");
    }
    // An Experiment of an earlier revision (another hash) is not this step's: it stops, a new one starts.
    let mut old = experiment("web-older-1-1", Phase::Running, None);
    old.hash = Some("old".into());
    let p = plan(
        &observed(false, status(1, Some("web-older-1-1")), vec![old]),
        at(T0),
    );
    assert_eq!(terminated(&p), ["web-older-1-1"]);
    assert_eq!(current(&p), Some("web-new-2-1"));
    // Already terminating or done: nothing more is sent.
    let mut stopping = experiment(name, Phase::Running, None);
    stopping.terminating = true;
    let mut aborted = status(1, Some(name));
    aborted.abort = Some(true);
    let p = plan(&observed(false, aborted, vec![stopping]), at(T0));
    assert!(terminated(&p).is_empty());
}

#[test]
fn experiments_are_kept_by_the_analysis_run_history_limits() {
    let mut exps: Vec<ExperimentInfo> = (0..4)
        .map(|i| ExperimentInfo {
            created: i,
            ..experiment(&format!("ok-{i}"), Phase::Successful, None)
        })
        .collect();
    exps.extend((0..3).map(|i| ExperimentInfo {
        created: i,
        ..experiment(&format!("bad-{i}"), Phase::Inconclusive, None)
    }));
    let mut gone_rs = experiment("orphan", Phase::Failed, None);
    gone_rs.hash = Some("gone".into());
    exps.push(gone_rs);
    let mut o = observed(false, status(2, None), exps);
    o.rollout.spec.analysis = Some(
        serde_json::from_value(json!({"successfulRunHistoryLimit": 2, "unsuccessfulRunHistoryLimit": 1}))
            .unwrap(),
    );
    let p = plan(&o, at(T0));
    assert_eq!(
        deleted(&p),
        ["bad-0", "ok-0", "bad-1", "ok-1", "orphan"],
        "oldest beyond two successful and one unsuccessful, and the one whose ReplicaSet is gone"
    );
}

#[test]
fn a_weighted_template_gets_its_share_while_the_experiment_runs_and_gives_it_back_after() {
    let name = "web-new-2-1";
    let o = observed(
        true,
        status(1, Some(name)),
        vec![experiment(name, Phase::Running, None)],
    );
    let p = plan(&o, at(T0));
    assert_eq!(
        weights(&p),
        Some((20, vec![("web-2-1-exp-canary".into(), 5)])),
        "only the weighted template, through the Service the Experiment created"
    );
    let w = p.status.canary.as_ref().unwrap().weights.clone().unwrap();
    assert_eq!((w.canary.weight, w.stable.weight), (20, 75));
    assert_eq!(
        w.additional,
        Some(vec![WeightDestination {
            weight: 5,
            service_name: Some("web-2-1-exp-canary".into()),
            pod_template_hash: Some("c1".into()),
        }])
    );
    assert!(reasons(&p).contains(&"TrafficWeightUpdated"));
    // Recorded and unchanged: nothing is sent again.
    let mut st = status(1, Some(name));
    st.canary.as_mut().unwrap().weights = Some(w.clone());
    let p = plan(
        &observed(true, st, vec![experiment(name, Phase::Running, None)]),
        at(T0),
    );
    assert_eq!(weights(&p), None, "{:?}", p.actions);
    // Pending (pods not available yet): no share.
    let p = plan(
        &observed(
            true,
            status(1, Some(name)),
            vec![experiment(name, Phase::Pending, None)],
        ),
        at(T0),
    );
    assert_eq!(weights(&p), None);
    // The Experiment succeeds: the step ends and the destination is taken out (weight 0).
    let mut st = status(1, Some(name));
    st.canary.as_mut().unwrap().weights = Some(w.clone());
    let p = plan(
        &observed(true, st, vec![experiment(name, Phase::Successful, None)]),
        at(T0),
    );
    assert_eq!(weights(&p), Some((20, vec![("web-2-1-exp-canary".into(), 0)])));
    let after: TrafficWeights = p.status.canary.as_ref().unwrap().weights.clone().unwrap();
    assert_eq!((after.stable.weight, after.additional), (80, None));
    // An abort takes it out too, with the canary's share.
    let mut st = status(1, Some(name));
    st.abort = Some(true);
    st.canary.as_mut().unwrap().weights = Some(w);
    let p = plan(
        &observed(true, st, vec![experiment(name, Phase::Running, None)]),
        at(T0),
    );
    assert_eq!(weights(&p), Some((0, vec![("web-2-1-exp-canary".into(), 0)])));
}

#[test]
fn a_template_whose_service_is_not_known_yet_gets_no_destination() {
    let name = "web-new-2-1";
    let mut e = experiment(name, Phase::Running, None);
    e.templates[0].service = None;
    let p = plan(&observed(true, status(1, Some(name)), vec![e]), at(T0));
    assert_eq!(weights(&p), None, "never a destination without a host");
}

#[test]
fn an_experiment_without_duration_runs_until_it_says_so_and_the_deadline_waits() {
    let name = "web-new-2-1";
    let mut o = observed(
        false,
        status(1, Some(name)),
        vec![experiment(name, Phase::Running, None)],
    );
    let canary = o.rollout.spec.strategy.canary.as_mut().unwrap();
    canary.steps.as_mut().unwrap()[1]
        .experiment
        .as_mut()
        .unwrap()
        .duration = None;
    let steps = canary.steps.clone();
    let st = o.rollout.status.as_mut().unwrap();
    st.current_step_hash = Some(steps_hash(&steps));
    // Progressing last updated long ago: an experiment step is not a stuck rollout.
    st.conditions = Some(vec![sluice_crds::rollout::RolloutCondition {
        r#type: "Progressing".into(),
        status: "True".into(),
        reason: "ReplicaSetUpdated".into(),
        message: "".into(),
        last_update_time: Some(Time(at("2026-03-01T08:00:00Z"))),
        last_transition_time: Some(Time(at("2026-03-01T08:00:00Z"))),
    }]);
    let p = plan(&o, at(T0));
    assert_eq!(p.status.current_step_index, Some(1));
    let progressing = p
        .status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.r#type == "Progressing")
        .unwrap();
    assert_ne!(progressing.reason, "ProgressDeadlineExceeded");
}
