//! Table tests of the Experiment planner: each case is the Experiment, what exists and the time, and what the
//! plan does and says.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use sluice_analysis::Phase;
use sluice_crds::{analysis::AnalysisTemplateSpec, experiment::Experiment};

use super::plan::{Action, Observed, Plan, RsInfo, RunState, ServiceSeen, plan};
use crate::rollout::analysis::Templates;

const T0: i64 = 1_800_000_000;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(T0 + secs).unwrap()
}

fn time(secs: i64) -> String {
    at(secs).strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn template(name: &str) -> Value {
    json!({
        "name": name,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"containers": [{"name": "c", "image": "i",
                              "ports": [{"containerPort": 80}]}]}}
    })
}

/// An Experiment with two templates and `extra` merged into its spec, in `status`.
fn experiment(extra: Value, status: Value) -> Experiment {
    let mut spec = json!({"templates": [template("baseline"), template("canary")]});
    json_patch::merge(&mut spec, &extra);
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": "exp", "namespace": "ns", "uid": "u1", "resourceVersion": "5"},
        "spec": spec,
        "status": status,
    }))
    .unwrap()
}

fn rs(template: &str, spec: i32, available: i32) -> (String, RsInfo) {
    (
        template.to_string(),
        RsInfo {
            name: format!("exp-{template}"),
            hash: format!("h-{template}"),
            spec_replicas: spec,
            replicas: spec,
            ready: available,
            available,
            scale_down_deadline: None,
        },
    )
}

fn template_status(name: &str, status: &str, available: i32, ltt: i64) -> Value {
    json!({"name": name, "replicas": available, "updatedReplicas": available, "readyReplicas": available,
           "availableReplicas": available, "status": status, "lastTransitionTime": time(ltt)})
}

fn running_status(extra: Value) -> Value {
    let mut s = json!({
        "phase": "Running",
        "availableAt": time(0),
        "templateStatuses": [template_status("baseline", "Running", 1, 0), template_status("canary", "Running", 1, 0)],
    });
    json_patch::merge(&mut s, &extra);
    s
}

fn rate_templates() -> Templates {
    let mut t = Templates::default();
    t.namespaced.insert(
        "rate".into(),
        serde_json::from_value::<AnalysisTemplateSpec>(json!({"metrics": [{"name": "m",
            "provider": {"prometheus": {"query": "q"}}}]}))
        .unwrap(),
    );
    t
}

struct World {
    ex: Experiment,
    replica_sets: Vec<(String, RsInfo)>,
    services: Vec<(&'static str, ServiceSeen)>,
    runs: Vec<(&'static str, RunState)>,
    templates: Templates,
}

impl World {
    fn new(ex: Experiment) -> Self {
        World {
            ex,
            replica_sets: vec![],
            services: vec![],
            runs: vec![],
            templates: rate_templates(),
        }
    }
    fn plan(&self, now: i64) -> Plan {
        let obs = Observed {
            experiment: &self.ex,
            replica_sets: self.replica_sets.iter().cloned().collect(),
            services: self
                .services
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            runs: self
                .runs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            templates: &self.templates,
        };
        plan(&obs, at(now))
    }
}

fn template_states(p: &Plan) -> Vec<(String, Option<String>)> {
    p.status
        .template_statuses
        .iter()
        .flatten()
        .map(|t| (t.name.clone(), t.status.clone()))
        .collect()
}

fn phase(p: &Plan) -> &str {
    p.status.phase.as_deref().unwrap_or_default()
}

fn reasons(p: &Plan) -> Vec<&str> {
    p.events.iter().map(|e| e.reason.as_str()).collect()
}

fn scales(p: &Plan) -> Vec<(String, i32, i32)> {
    p.actions
        .iter()
        .filter_map(|a| match a {
            Action::ScaleReplicaSet { name, from, to } => Some((name.clone(), *from, *to)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_new_experiment_creates_empty_replica_sets_and_is_pending() {
    let p = World::new(experiment(json!({}), json!(null))).plan(0);
    let created: Vec<(String, Option<i32>)> = p
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::CreateReplicaSet { replica_set, .. } => Some((
                replica_set.metadata.name.clone().unwrap(),
                replica_set.spec.as_ref().and_then(|s| s.replicas),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        created,
        vec![("exp-baseline".into(), Some(0)), ("exp-canary".into(), Some(0))]
    );
    assert_eq!(phase(&p), "Pending");
    assert_eq!(
        template_states(&p),
        vec![
            ("baseline".into(), Some("Progressing".into())),
            ("canary".into(), Some("Progressing".into()))
        ]
    );
    assert_eq!(reasons(&p), vec!["TemplateProgressing", "TemplateProgressing"]);
    assert_eq!(
        p.events[0].message,
        "Template 'baseline' transitioned from  -> Progressing"
    );
    let cond = &p.status.conditions.as_ref().unwrap()[0];
    assert_eq!(
        (cond.r#type.as_str(), cond.reason.as_str()),
        ("Progressing", "ReplicaSetUpdated")
    );
    assert_eq!(cond.message, "Experiment \"exp\" is progressing.");
}

#[test]
fn replica_sets_are_scaled_up_to_the_template_replicas() {
    let ex = experiment(
        json!({"templates": [template("baseline"), json!({"replicas": 3}).as_object().map(|r| {
            let mut t = template("canary"); json_patch::merge(&mut t, &Value::Object(r.clone())); t }).unwrap()]}),
        json!({"phase": "Pending", "templateStatuses": [template_status("baseline", "Progressing", 0, 0),
                                                        template_status("canary", "Progressing", 0, 0)]}),
    );
    let mut w = World::new(ex);
    w.replica_sets = vec![rs("baseline", 0, 0), rs("canary", 0, 0)];
    let p = w.plan(1);
    assert_eq!(
        scales(&p),
        vec![("exp-baseline".into(), 0, 1), ("exp-canary".into(), 0, 3)]
    );
    assert_eq!(
        p.events[0].message,
        "Scaled up ReplicaSet exp-baseline from 0 to 1"
    );
    assert_eq!(phase(&p), "Pending");
}

#[test]
fn all_templates_available_makes_it_running_and_sets_available_at() {
    let ex = experiment(
        json!({"duration": "60s"}),
        json!({"phase": "Pending", "templateStatuses": [template_status("baseline", "Progressing", 0, 0),
                                                        template_status("canary", "Progressing", 0, 0)]}),
    );
    let mut w = World::new(ex);
    w.replica_sets = vec![rs("baseline", 1, 1), rs("canary", 1, 1)];
    let p = w.plan(5);
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(phase(&p), "Running");
    assert_eq!(p.status.available_at.as_ref().map(|t| t.0), Some(at(5)));
    assert_eq!(
        template_states(&p),
        vec![
            ("baseline".into(), Some("Running".into())),
            ("canary".into(), Some("Running".into()))
        ]
    );
    assert_eq!(
        p.requeue_after,
        Some(std::time::Duration::from_secs(60)),
        "at the end of the duration"
    );
}

#[test]
fn a_running_experiment_with_nothing_new_keeps_its_status() {
    let mut status = running_status(json!({}));
    status["conditions"] = json!([{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
        "message": "Experiment \"exp\" is running.", "lastUpdateTime": time(0), "lastTransitionTime": time(0)}]);
    let mut w = World::new(experiment(json!({"duration": "1m"}), status));
    w.replica_sets = vec![rs("baseline", 1, 1), rs("canary", 1, 1)];
    let p = w.plan(30);
    assert!(p.actions.is_empty() && p.events.is_empty(), "{p:?}");
    assert_eq!(Some(p.status), w.ex.status);
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(30)));
}

#[test]
fn past_the_duration_templates_succeed_and_the_experiment_is_successful() {
    let mut w = World::new(experiment(json!({"duration": "1m"}), running_status(json!({}))));
    w.replica_sets = vec![rs("baseline", 1, 1), rs("canary", 1, 1)];
    let p = w.plan(61);
    assert_eq!(phase(&p), "Successful");
    assert_eq!(reasons(&p), vec!["TemplateSuccessful", "TemplateSuccessful"]);
    let cond = p
        .status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.r#type == "Progressing")
        .unwrap();
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("False", "ExperimentCompleted")
    );
    assert_eq!(
        cond.message,
        "Experiment \"exp\" has successfully ran and completed."
    );
}

#[test]
fn a_finished_experiment_scales_down_after_the_scale_down_delay() {
    let status = running_status(json!({"phase": "Successful"}));
    let mut w = World::new(experiment(
        json!({"duration": "1m", "scaleDownDelaySeconds": 10}),
        status,
    ));
    w.replica_sets = vec![rs("baseline", 1, 1), rs("canary", 1, 1)];
    let p = w.plan(70);
    let deadlines: Vec<&Action> = p
        .actions
        .iter()
        .filter(|a| matches!(a, Action::SetScaleDownDeadline { .. }))
        .collect();
    assert_eq!(
        deadlines[0],
        &Action::SetScaleDownDeadline {
            name: "exp-baseline".into(),
            deadline: time(80)
        }
    );
    assert!(scales(&p).is_empty(), "kept up during the delay");
    assert_eq!(p.requeue_after, Some(std::time::Duration::from_secs(10)));
    for r in &mut w.replica_sets {
        r.1.scale_down_deadline = Some(time(80));
    }
    assert!(scales(&w.plan(75)).is_empty());
    let p = w.plan(80);
    assert_eq!(
        scales(&p),
        vec![("exp-baseline".into(), 1, 0), ("exp-canary".into(), 1, 0)]
    );
    assert_eq!(phase(&p), "Successful", "a final phase stays");
    let mut zero = World::new(experiment(
        json!({"scaleDownDelaySeconds": 0}),
        running_status(json!({"phase": "Failed"})),
    ));
    zero.replica_sets = vec![rs("baseline", 1, 1), rs("canary", 1, 1)];
    assert_eq!(scales(&zero.plan(1)).len(), 2, "no delay: scaled down at once");
}

#[test]
fn a_template_not_available_within_the_progress_deadline_fails_the_experiment() {
    let ex = experiment(
        json!({"progressDeadlineSeconds": 30}),
        json!({"phase": "Pending", "templateStatuses": [template_status("baseline", "Progressing", 0, 0),
                                                        template_status("canary", "Running", 1, 0)]}),
    );
    let mut w = World::new(ex);
    w.replica_sets = vec![rs("baseline", 1, 0), rs("canary", 1, 1)];
    w.replica_sets[0].1.replicas = 0;
    let p = w.plan(20);
    assert_eq!(phase(&p), "Pending");
    assert_eq!(
        p.requeue_after,
        Some(std::time::Duration::from_secs(11)),
        "just past the deadline"
    );
    let p = w.plan(31);
    assert_eq!(phase(&p), "Failed");
    assert_eq!(
        p.status.message.as_deref(),
        Some("Template 'baseline' exceeded its progressDeadlineSeconds (30)")
    );
    assert!(p.events[0].warning);
    assert_eq!(p.events[0].reason, "TemplateFailed");
}

#[test]
fn analyses_start_once_available_with_the_experiment_variables() {
    let analyses = json!({"analyses": [{"name": "check", "templateName": "rate",
        "args": [{"name": "h", "value": "{{templates.canary.podTemplateHash}}"}]}]});
    let mut w = World::new(experiment(analyses.clone(), json!({"phase": "Pending"})));
    w.replica_sets = vec![rs("baseline", 1, 0), rs("canary", 1, 0)];
    let p = w.plan(0);
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::CreateAnalysisRun(_))),
        "not before available"
    );
    let mut w = World::new(experiment(analyses, running_status(json!({}))));
    w.replica_sets = vec![rs("baseline", 1, 1), rs("canary", 1, 1)];
    let p = w.plan(1);
    let Some(Action::CreateAnalysisRun(run)) = p.actions.first() else {
        panic!("{:?}", p.actions)
    };
    assert_eq!(run.metadata.name.as_deref(), Some("exp-check"));
    assert_eq!(
        run.spec.args.as_ref().unwrap()[0].value.as_deref(),
        Some("h-canary")
    );
    let runs = p.status.analysis_runs.unwrap();
    assert_eq!(
        (runs[0].analysis_run.as_str(), runs[0].phase.as_str()),
        ("exp-check", "Pending")
    );
    assert_eq!(p.status.phase.as_deref(), Some("Running"));
}

fn with_run(required: bool, run_phase: Phase, duration: &str) -> World {
    let spec = json!({"duration": duration, "analyses": [{"name": "check", "templateName": "rate",
        "requiredForCompletion": required}]});
    let status = running_status(
        json!({"analysisRuns": [{"name": "check", "analysisRun": "exp-check",
        "phase": "Running"}]}),
    );
    let mut w = World::new(experiment(spec, status));
    w.replica_sets = vec![rs("baseline", 1, 1), rs("canary", 1, 1)];
    w.runs = vec![(
        "exp-check",
        RunState {
            phase: run_phase,
            message: Some("why".into()),
            terminating: false,
        },
    )];
    w
}

#[test]
fn the_analyses_roll_up_into_the_phase() {
    let cases = [
        // (required, run phase, duration, now, experiment phase, message)
        (
            true,
            Phase::Successful,
            "",
            10,
            "Successful",
            Some("Required AnalysisRuns completed"),
        ),
        (false, Phase::Successful, "", 10, "Running", None),
        (false, Phase::Failed, "", 10, "Failed", Some("why")),
        (false, Phase::Error, "1m", 10, "Error", Some("why")),
        (false, Phase::Inconclusive, "1m", 10, "Inconclusive", Some("why")),
        (false, Phase::Running, "1m", 61, "Successful", None),
        (true, Phase::Running, "1m", 61, "Running", Some("why")),
        (false, Phase::Successful, "1m", 61, "Successful", None),
        (true, Phase::Failed, "1m", 61, "Failed", Some("why")),
    ];
    for (required, run_phase, duration, now, want, message) in cases {
        let p = with_run(required, run_phase, duration).plan(now);
        assert_eq!(
            (phase(&p), p.status.message.as_deref()),
            (want, message),
            "required {required}, run {run_phase}, duration {duration:?}, at {now}"
        );
    }
}

#[test]
fn a_failed_analysis_tells_its_transition_as_a_warning() {
    let p = with_run(false, Phase::Failed, "").plan(10);
    let ev = p.events.iter().find(|e| e.reason == "AnalysisRunFailed").unwrap();
    assert!(ev.warning);
    assert_eq!(
        ev.message,
        "AnalysisRun 'check' transitioned from Running -> Failed: why"
    );
}

#[test]
fn terminate_succeeds_the_templates_and_terminates_running_analyses() {
    let mut w = with_run(false, Phase::Running, "");
    w.ex.spec.terminate = Some(true);
    let p = w.plan(10);
    assert!(
        p.actions.contains(&Action::TerminateAnalysisRun {
            name: "exp-check".into()
        }),
        "{:?}",
        p.actions
    );
    assert!(reasons(&p).contains(&"AnalysisRunTerminating"));
    assert_eq!(
        template_states(&p),
        vec![
            ("baseline".into(), Some("Successful".into())),
            ("canary".into(), Some("Successful".into()))
        ]
    );
    // As upstream: the templates' success decides, a run that is not required is not awaited.
    assert_eq!(phase(&p), "Successful");
    w.ex.status = Some(p.status);
    w.runs[0].1.terminating = true;
    let p = w.plan(11);
    assert!(
        !p.actions
            .iter()
            .any(|a| matches!(a, Action::TerminateAnalysisRun { .. })),
        "terminated once"
    );
}

#[test]
fn terminating_without_analyses_ends_successful() {
    let mut w = World::new(experiment(json!({"terminate": true}), running_status(json!({}))));
    w.replica_sets = vec![rs("baseline", 1, 1), rs("canary", 1, 1)];
    assert_eq!(phase(&w.plan(5)), "Successful");
}

#[test]
fn a_missing_analysis_template_is_an_error_before_any_run() {
    let spec = json!({"analyses": [{"name": "check", "templateName": "nope"}]});
    let mut w = World::new(experiment(spec, json!({"phase": "Pending"})));
    w.replica_sets = vec![rs("baseline", 1, 0), rs("canary", 1, 0)];
    let p = w.plan(1);
    assert_eq!(phase(&p), "Error");
    assert_eq!(
        p.status.message.as_deref(),
        Some(
            "AnalysisTemplate verification failed for analysis 'check': AnalysisTemplate \"nope\" not found"
        )
    );
}

#[test]
fn a_template_service_is_made_and_removed_when_the_experiment_ends() {
    let spec = json!({"templates": [json!({"service": {}}).as_object().map(|s| {
        let mut t = template("canary"); json_patch::merge(&mut t, &Value::Object(s.clone())); t }).unwrap()],
        "scaleDownDelaySeconds": 0});
    let status = json!({"phase": "Running", "availableAt": time(0),
        "templateStatuses": [template_status("canary", "Running", 1, 0)]});
    let mut w = World::new(experiment(spec, status));
    w.replica_sets = vec![rs("canary", 1, 1)];
    let p = w.plan(1);
    let Some(Action::CreateService { service, .. }) = p.actions.first() else {
        panic!("{:?}", p.actions)
    };
    assert_eq!(service.metadata.name.as_deref(), Some("exp-canary"));
    let ts = &p.status.template_statuses.as_ref().unwrap()[0];
    assert_eq!(
        (ts.service_name.as_deref(), ts.pod_template_hash.as_deref()),
        (Some("exp-canary"), Some("h-canary"))
    );
    w.services = vec![(
        "canary",
        ServiceSeen {
            name: "exp-canary".into(),
            owned: true,
        },
    )];
    let mut ex = w.ex.clone();
    ex.status = Some(p.status.clone());
    w.ex = ex;
    assert!(w.plan(2).actions.is_empty(), "an existing Service is kept");
    w.ex.status.as_mut().unwrap().phase = Some("Successful".into());
    let p = w.plan(3);
    assert!(
        p.actions.contains(&Action::DeleteService {
            name: "exp-canary".into()
        }),
        "{:?}",
        p.actions
    );
    assert_eq!(scales(&p), vec![("exp-canary".into(), 1, 0)]);
    assert_eq!(p.status.template_statuses.as_ref().unwrap()[0].service_name, None);
    w.services = vec![(
        "canary",
        ServiceSeen {
            name: "exp-canary".into(),
            owned: false,
        },
    )];
    w.ex.status.as_mut().unwrap().phase = Some("Running".into());
    let p = w.plan(3);
    assert_eq!(
        p.status.template_statuses.as_ref().unwrap()[0].status.as_deref(),
        Some("Error"),
        "someone else's"
    );
}

#[test]
fn an_invalid_spec_is_told_in_a_condition_and_nothing_is_done() {
    let spec = json!({"templates": [template("a"), template("a")]});
    let p = World::new(experiment(spec, json!(null))).plan(0);
    assert!(p.actions.is_empty());
    let c = &p.status.conditions.as_ref().unwrap()[0];
    assert_eq!(
        (c.r#type.as_str(), c.reason.as_str()),
        ("InvalidSpec", "InvalidSpec")
    );
    assert_eq!(
        c.message,
        "Experiment exp has repeated template name 'a' in templates"
    );
    let p = World::new(experiment(json!({"duration": "soon"}), json!(null))).plan(0);
    assert_eq!(
        p.status.conditions.as_ref().unwrap()[0].message,
        "spec.duration \"soon\" is not a duration such as 30s, 5m or 1h"
    );
    let _ = BTreeMap::<String, String>::new();
}
