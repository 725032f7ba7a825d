//! The Experiment planner, pure: from the Experiment, its ReplicaSets, Services and AnalysisRuns and the time,
//! the actions to take, the events to tell, the next status and when to look again. Upstream's
//! `experiments/experiment.go` semantics: templates become ReplicaSets, each template is Progressing → Running
//! → Successful (or Failed past its progress deadline), analyses start once every template is available, and
//! the phase rolls the templates and analyses up.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    api::{apps::v1::ReplicaSet, core::v1::Service},
    apimachinery::pkg::apis::meta::v1::Time,
    jiff::Timestamp,
};
use kube::ResourceExt;
use sluice_analysis::Phase;
use sluice_crds::{
    analysis::AnalysisRun,
    experiment::{
        Experiment, ExperimentAnalysisRunStatus, ExperimentCondition, ExperimentStatus, TemplateSpec,
        TemplateStatus,
    },
};

use super::{DEFAULT_PROGRESS_DEADLINE_SECONDS, DEFAULT_SCALE_DOWN_DELAY_SECONDS, build};
use crate::rollout::analysis::Templates;

/// A template's ReplicaSet, as the planner needs it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RsInfo {
    /// Name.
    pub name: String,
    /// Its `rollouts-pod-template-hash` label.
    pub hash: String,
    /// `spec.replicas`.
    pub spec_replicas: i32,
    /// `status.replicas`.
    pub replicas: i32,
    /// `status.readyReplicas`.
    pub ready: i32,
    /// `status.availableReplicas`.
    pub available: i32,
    /// Its `scale-down-deadline` annotation, as written.
    pub scale_down_deadline: Option<String>,
}

/// A template's Service as found under the name it should have.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceSeen {
    /// Name.
    pub name: String,
    /// Made by this Experiment for this template (controller reference and claim annotations).
    pub owned: bool,
}

/// An AnalysisRun of the Experiment, as the planner needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunState {
    /// Phase (Pending when none yet).
    pub phase: Phase,
    /// Status message.
    pub message: Option<String>,
    /// `spec.terminate` is set.
    pub terminating: bool,
}

/// What the planner reads.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// The Experiment.
    pub experiment: &'a Experiment,
    /// Its ReplicaSets by template name.
    pub replica_sets: BTreeMap<String, RsInfo>,
    /// The Services found under each template's Service name, by template name.
    pub services: BTreeMap<String, ServiceSeen>,
    /// Its AnalysisRuns by name.
    pub runs: BTreeMap<String, RunState>,
    /// The analysis templates of its namespace and the cluster.
    pub templates: &'a Templates,
}

/// One change to make, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create a template's ReplicaSet.
    CreateReplicaSet {
        /// The template.
        template: String,
        /// The ReplicaSet.
        replica_set: Box<ReplicaSet>,
    },
    /// Set a ReplicaSet's `spec.replicas`.
    ScaleReplicaSet {
        /// Name.
        name: String,
        /// Current replicas.
        from: i32,
        /// Wanted replicas.
        to: i32,
    },
    /// Annotate a ReplicaSet with when it is scaled down (RFC 3339).
    SetScaleDownDeadline {
        /// Name.
        name: String,
        /// The deadline.
        deadline: String,
    },
    /// Remove a ReplicaSet's scale-down deadline (scaleDownDelaySeconds is 0).
    RemoveScaleDownDeadline {
        /// Name.
        name: String,
    },
    /// Create a template's Service.
    CreateService {
        /// The template.
        template: String,
        /// The Service.
        service: Box<Service>,
    },
    /// Delete a template's Service.
    DeleteService {
        /// Name.
        name: String,
    },
    /// Create an analysis' AnalysisRun.
    CreateAnalysisRun(Box<AnalysisRun>),
    /// Set an AnalysisRun's `spec.terminate`.
    TerminateAnalysisRun {
        /// Name.
        name: String,
    },
}

/// An event on the Experiment.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Warning rather than Normal.
    pub warning: bool,
    /// One-word reason.
    pub reason: String,
    /// Message.
    pub message: String,
}

/// The planner's answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// The changes, in order.
    pub actions: Vec<Action>,
    /// The events, in order.
    pub events: Vec<Event>,
    /// The next status.
    pub status: ExperimentStatus,
    /// When to look again at the latest (duration end, progress deadline, scale-down deadline).
    pub requeue_after: Option<Duration>,
}

/// Condition type of the Experiment's progress.
pub const PROGRESSING: &str = "Progressing";
/// Condition type of a spec the controller cannot run.
pub const INVALID_SPEC: &str = "InvalidSpec";
/// Message of the phase once the required analyses succeeded.
pub const REQUIRED_ANALYSIS_COMPLETED: &str = "Required AnalysisRuns completed";

/// Template statuses, spelled as upstream writes them.
const PROGRESSING_STATUS: &str = "Progressing";
const RUNNING: &str = "Running";
const SUCCESSFUL: &str = "Successful";
const FAILED: &str = "Failed";
const ERROR: &str = "Error";

fn template_completed(status: Option<&str>) -> bool {
    matches!(status, Some(SUCCESSFUL | FAILED | ERROR))
}

/// Rank of a template status, best first (upstream's templateStatusOrder); an unknown one ranks as Successful.
fn template_rank(status: Option<&str>) -> u8 {
    match status {
        Some(RUNNING) => 1,
        Some(PROGRESSING_STATUS) => 2,
        Some(ERROR) => 3,
        Some(FAILED) => 4,
        _ => 0,
    }
}

/// Whether the experiment's phase is final.
pub fn finished(ex: &Experiment) -> bool {
    phase_of(ex.status.as_ref()).is_some_and(Phase::completed)
}

fn phase_of(status: Option<&ExperimentStatus>) -> Option<Phase> {
    status
        .and_then(|s| s.phase.as_deref())
        .filter(|p| !p.is_empty())
        .map(Phase::parse)
}

fn has_required(ex: &Experiment) -> bool {
    ex.spec
        .analyses
        .iter()
        .flatten()
        .any(|a| a.required_for_completion == Some(true))
}

/// Every analysis required for completion is Successful (and there is at least one).
fn required_successful(ex: &Experiment, status: &ExperimentStatus) -> bool {
    let runs = status.analysis_runs.as_deref().unwrap_or_default();
    has_required(ex)
        && ex
            .spec
            .analyses
            .iter()
            .flatten()
            .filter(|a| a.required_for_completion == Some(true))
            .all(|a| {
                runs.iter()
                    .any(|r| r.name == a.name && r.phase == Phase::Successful.as_str())
            })
}

/// Whether the experiment is winding down: told to terminate, finished, a template Failed or Errored, an
/// analysis Failed, Errored or was Inconclusive, or every required analysis Successful.
pub fn terminating(ex: &Experiment) -> bool {
    let status = ex.status.clone().unwrap_or_default();
    ex.spec.terminate == Some(true)
        || finished(ex)
        || status
            .template_statuses
            .iter()
            .flatten()
            .any(|t| matches!(t.status.as_deref(), Some(FAILED | ERROR)))
        || status.analysis_runs.iter().flatten().any(|r| {
            matches!(
                Phase::parse(&r.phase),
                Phase::Failed | Phase::Error | Phase::Inconclusive
            ) && !r.phase.is_empty()
        })
        || required_successful(ex, &status)
}

/// The spec's duration; None without one. A malformed one is caught by [`invalid_spec`].
fn duration(ex: &Experiment) -> Option<Duration> {
    ex.spec
        .duration
        .as_deref()
        .filter(|d| !d.is_empty())
        .and_then(sluice_crds::duration::parse_go_duration)
}

fn progress_deadline(ex: &Experiment) -> i64 {
    i64::from(
        ex.spec
            .progress_deadline_seconds
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE_SECONDS),
    )
}

fn plus(t: Timestamp, secs: i64) -> Timestamp {
    Timestamp::from_second(t.as_second().saturating_add(secs)).unwrap_or(t)
}

/// Time left of the duration since availableAt (in the Experiment's current status): None without a
/// duration or before available, zero once passed.
fn duration_left(ex: &Experiment, now: Timestamp) -> Option<i64> {
    let d = duration(ex)?;
    let at = ex.status.as_ref()?.available_at.as_ref()?.0;
    Some((plus(at, d.as_secs() as i64).as_second() - now.as_second()).max(0))
}

fn passed_duration(ex: &Experiment, now: Timestamp) -> bool {
    duration_left(ex, now) == Some(0)
}

/// Why the spec cannot run, as upstream's InvalidSpec condition says it (plus a malformed duration).
pub fn invalid_spec(ex: &Experiment) -> Option<String> {
    let mut names = std::collections::BTreeSet::new();
    for (i, t) in ex.spec.templates.iter().enumerate() {
        if t.selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && t.selector.match_expressions.as_ref().is_none_or(|m| m.is_empty())
        {
            return Some(format!(
                "This experiment is selecting all pods at index {i}. A non-empty selector is required."
            ));
        }
        if i64::from(t.min_ready_seconds.unwrap_or(0)) > progress_deadline(ex) {
            return Some(format!(
                "MinReadySeconds cannot be longer than ProgressDeadlineSeconds. Check template index {i}"
            ));
        }
        if t.name.is_empty() {
            return Some(format!(
                "Experiment {} has empty template name at index {i}",
                ex.name_any()
            ));
        }
        if !names.insert(t.name.as_str()) {
            return Some(format!(
                "Experiment {} has repeated template name '{}' in templates",
                ex.name_any(),
                t.name
            ));
        }
    }
    if let Some(d) = ex.spec.duration.as_deref().filter(|d| !d.is_empty())
        && sluice_crds::duration::parse_go_duration(d).is_none()
    {
        return Some(format!(
            "spec.duration {d:?} is not a duration such as 30s, 5m or 1h"
        ));
    }
    None
}

/// Plans one reconcile at `now`.
pub fn plan(obs: &Observed, now: Timestamp) -> Plan {
    // Status times are whole seconds on the wire; planning in whole seconds keeps a written time equal to
    // the one read back.
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let ex = obs.experiment;
    let current = ex.status.clone().unwrap_or_default();
    let mut plan = Plan {
        status: current.clone(),
        ..Plan::default()
    };
    if let Some(message) = invalid_spec(ex) {
        set_invalid_spec(&mut plan.status, &message, now);
        return plan;
    }
    if let Some(conds) = plan.status.conditions.as_mut() {
        conds.retain(|c| c.r#type != INVALID_SPEC);
    }
    let terminating = terminating(ex);
    let statuses: Vec<TemplateStatus> = ex
        .spec
        .templates
        .iter()
        .map(|t| reconcile_template(obs, t, terminating, now, &mut plan))
        .collect();
    plan.status.template_statuses = Some(statuses);
    let runs: Vec<ExperimentAnalysisRunStatus> = ex
        .spec
        .analyses
        .iter()
        .flatten()
        .map(|a| reconcile_analysis(obs, a, terminating, &mut plan))
        .collect();
    plan.status.analysis_runs = (!runs.is_empty() || current.analysis_runs.is_some()).then_some(runs);
    roll_up(ex, &mut plan.status, now);
    set_conditions(ex, &mut plan.status, now);
    if !terminating {
        plan.requeue_after = earliest(plan.requeue_after, deadlines(ex, &plan.status, now));
    }
    plan
}

fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// When the duration ends or a template that is not yet available reaches its progress deadline.
fn deadlines(ex: &Experiment, status: &ExperimentStatus, now: Timestamp) -> Option<Duration> {
    let mut next = None;
    if status.available_at.is_some() {
        let mut with_new = ex.clone();
        with_new.status = Some(status.clone());
        if let Some(left) = duration_left(&with_new, now).filter(|l| *l > 0) {
            next = Some(Duration::from_secs(left as u64));
        }
    }
    for t in &ex.spec.templates {
        let Some(ts) = status
            .template_statuses
            .iter()
            .flatten()
            .find(|s| s.name == t.name)
        else {
            continue;
        };
        if !matches!(ts.status.as_deref(), Some(PROGRESSING_STATUS | RUNNING)) {
            continue;
        }
        if let Some(ltt) = &ts.last_transition_time
            && ts.available_replicas != t.replicas.unwrap_or(1)
        {
            let left = (plus(ltt.0, progress_deadline(ex)).as_second() - now.as_second()).max(0);
            // One second past the deadline: the deadline is exceeded only after it.
            next = earliest(next, Some(Duration::from_secs(left as u64 + 1)));
        }
    }
    next
}

fn set_invalid_spec(status: &mut ExperimentStatus, message: &str, now: Timestamp) {
    let conds = status.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = conds.iter_mut().find(|c| c.r#type == INVALID_SPEC) {
        if c.message != message {
            *c = invalid_spec_condition(message, now);
        }
        return;
    }
    conds.push(invalid_spec_condition(message, now));
}

fn invalid_spec_condition(message: &str, now: Timestamp) -> ExperimentCondition {
    ExperimentCondition {
        r#type: INVALID_SPEC.into(),
        status: "True".into(),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
        reason: INVALID_SPEC.into(),
        message: message.into(),
    }
}

/// The ReplicaSet (and Service) actions of one template and its next status.
fn reconcile_template(
    obs: &Observed,
    t: &TemplateSpec,
    terminating: bool,
    now: Timestamp,
    plan: &mut Plan,
) -> TemplateStatus {
    let ex = obs.experiment;
    let prev = ex
        .status
        .iter()
        .flat_map(|s| s.template_statuses.iter().flatten())
        .find(|s| s.name == t.name)
        .cloned()
        .unwrap_or_else(|| TemplateStatus {
            name: t.name.clone(),
            ..Default::default()
        });
    let mut ts = prev.clone();
    let replicas = t.replicas.unwrap_or(1);
    let desired = if finished(ex) { 0 } else { replicas };
    let rs = obs.replica_sets.get(&t.name);
    match rs {
        None if !finished(ex) => {
            // Created empty and scaled up on the next pass, as upstream does.
            plan.actions.push(Action::CreateReplicaSet {
                template: t.name.clone(),
                replica_set: Box::new(build::replica_set(ex, t, 0)),
            });
            ts.last_transition_time = Some(Time(now));
        }
        None => {}
        Some(rs) => reconcile_replica_set(obs, t, rs, desired, replicas, now, plan, &mut ts),
    }
    let counts = rs.map_or((0, 0, 0), |rs| (rs.replicas, rs.ready, rs.available));
    (
        ts.replicas,
        ts.updated_replicas,
        ts.ready_replicas,
        ts.available_replicas,
    ) = (counts.0, counts.0, counts.1, counts.2);
    if (
        prev.replicas,
        prev.updated_replicas,
        prev.ready_replicas,
        prev.available_replicas,
    ) != (
        ts.replicas,
        ts.updated_replicas,
        ts.ready_replicas,
        ts.available_replicas,
    ) {
        ts.last_transition_time = Some(Time(now));
    }
    if !template_completed(ts.status.as_deref()) {
        let next = if desired == ts.available_replicas {
            if passed_duration(ex, now) || terminating {
                SUCCESSFUL
            } else {
                RUNNING
            }
        } else {
            let from = ts.last_transition_time.as_ref().map_or(now, |t| t.0);
            if now.as_second() > plus(from, progress_deadline(ex)).as_second() {
                ts.message = Some(format!(
                    "Template '{}' exceeded its progressDeadlineSeconds ({})",
                    t.name,
                    progress_deadline(ex)
                ));
                FAILED
            } else if terminating {
                SUCCESSFUL
            } else {
                PROGRESSING_STATUS
            }
        };
        ts.status = Some(next.into());
    }
    if prev.status != ts.status {
        let mut message = format!(
            "Template '{}' transitioned from {} -> {}",
            t.name,
            prev.status.as_deref().unwrap_or_default(),
            ts.status.as_deref().unwrap_or_default()
        );
        if let Some(m) = ts.message.as_deref().filter(|m| !m.is_empty()) {
            message = format!("{message}: {m}");
        }
        plan.events.push(Event {
            warning: matches!(ts.status.as_deref(), Some(FAILED | ERROR)),
            reason: format!("Template{}", ts.status.as_deref().unwrap_or_default()),
            message,
        });
    }
    ts
}

/// Service, scale-down deadline and scale of an existing template ReplicaSet.
#[allow(clippy::too_many_arguments)]
fn reconcile_replica_set(
    obs: &Observed,
    t: &TemplateSpec,
    rs: &RsInfo,
    desired: i32,
    replicas: i32,
    now: Timestamp,
    plan: &mut Plan,
    ts: &mut TemplateStatus,
) {
    let ex = obs.experiment;
    let seen = obs.services.get(&t.name);
    let mut target = desired;
    let mut deadline = rs.scale_down_deadline.clone();
    if desired == 0 {
        let delay = i64::from(
            ex.spec
                .scale_down_delay_seconds
                .unwrap_or(DEFAULT_SCALE_DOWN_DELAY_SECONDS),
        );
        if delay <= 0 {
            if deadline.take().is_some() {
                plan.actions.push(Action::RemoveScaleDownDeadline {
                    name: rs.name.clone(),
                });
            }
        } else if deadline.is_none() && rs.spec_replicas > 0 {
            let at = plus(now, delay).strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            plan.actions.push(Action::SetScaleDownDeadline {
                name: rs.name.clone(),
                deadline: at.clone(),
            });
            deadline = Some(at);
        }
        // Kept up until the deadline; an unreadable deadline does not hold the scale-down.
        if rs.spec_replicas != 0
            && let Some(at) = deadline.as_deref().and_then(|d| d.parse::<Timestamp>().ok())
            && at.as_second() > now.as_second()
        {
            let left = Duration::from_secs((at.as_second() - now.as_second()) as u64);
            plan.requeue_after = earliest(plan.requeue_after, Some(left));
            target = replicas.max(rs.spec_replicas);
        }
    }
    if rs.spec_replicas != target {
        let up = target > rs.spec_replicas;
        plan.actions.push(Action::ScaleReplicaSet {
            name: rs.name.clone(),
            from: rs.spec_replicas,
            to: target,
        });
        plan.events.push(Event {
            warning: false,
            reason: "ScalingReplicaSet".into(),
            message: format!(
                "Scaled {} ReplicaSet {} from {} to {}",
                if up { "up" } else { "down" },
                rs.name,
                rs.spec_replicas,
                target
            ),
        });
        ts.last_transition_time = Some(Time(now));
    }
    let scaled_down = desired == 0 && target == 0;
    match (&t.service, seen) {
        // The Service goes once the experiment's ReplicaSet is scaled down (or when the template has none).
        (None, Some(s)) if s.owned => delete_service(plan, ts, &s.name),
        (Some(_), Some(s)) if scaled_down && s.owned => delete_service(plan, ts, &s.name),
        (Some(_), _) if scaled_down => {}
        (Some(_), Some(s)) if s.owned => {
            ts.service_name = Some(s.name.clone());
            ts.pod_template_hash = Some(rs.hash.clone());
        }
        (Some(_), Some(s)) => {
            ts.status = Some(ERROR.into());
            ts.message = Some(format!(
                "Failed to create Service {} for template '{}': service {} already exists and is not owned by experiment template {}",
                s.name, t.name, s.name, t.name
            ));
        }
        (Some(_), None) if desired != 0 => {
            if let Some(service) = build::service(ex, t) {
                ts.service_name = Some(service.name_any());
                ts.pod_template_hash = Some(rs.hash.clone());
                plan.actions.push(Action::CreateService {
                    template: t.name.clone(),
                    service: Box::new(service),
                });
            }
        }
        _ => {}
    }
}

fn delete_service(plan: &mut Plan, ts: &mut TemplateStatus, name: &str) {
    plan.actions.push(Action::DeleteService { name: name.into() });
    ts.service_name = None;
    ts.pod_template_hash = None;
}

/// The AnalysisRun actions of one analysis and its next status.
fn reconcile_analysis(
    obs: &Observed,
    a: &sluice_crds::experiment::ExperimentAnalysisTemplateRef,
    terminating: bool,
    plan: &mut Plan,
) -> ExperimentAnalysisRunStatus {
    let ex = obs.experiment;
    let prev = ex
        .status
        .iter()
        .flat_map(|s| s.analysis_runs.iter().flatten())
        .find(|r| r.name == a.name)
        .cloned()
        .unwrap_or_else(|| ExperimentAnalysisRunStatus {
            name: a.name.clone(),
            ..Default::default()
        });
    let mut next = prev.clone();
    let available = ex.status.as_ref().and_then(|s| s.available_at.as_ref()).is_some();
    let rss: BTreeMap<String, (String, String)> = obs
        .replica_sets
        .iter()
        .map(|(t, rs)| (t.clone(), (rs.name.clone(), rs.hash.clone())))
        .collect();
    if !available {
        // Runs start once every template is available; until then the template is only looked for.
        let cluster = a.cluster_scope == Some(true);
        if let Err(e) = crate::rollout::analysis::merged_template(&a.template_name, cluster, obs.templates) {
            let kind = if cluster {
                "ClusterAnalysisTemplate"
            } else {
                "AnalysisTemplate"
            };
            next.phase = Phase::Error.as_str().into();
            next.message = Some(format!(
                "{kind} verification failed for analysis '{}': {e}",
                a.name
            ));
        }
    } else if prev.analysis_run.is_empty() {
        if !terminating {
            let vars = build::variables(ex, &rss);
            match build::run_spec(ex, a, obs.templates, &vars) {
                Ok(spec) => {
                    let run = build::analysis_run(ex, a, spec);
                    next.analysis_run = run.name_any();
                    next.phase = Phase::Pending.as_str().into();
                    plan.actions.push(Action::CreateAnalysisRun(Box::new(run)));
                }
                Err(e) => {
                    next.phase = Phase::Error.as_str().into();
                    next.message = Some(format!(
                        "Failed to create AnalysisRun for analysis '{}': {e}",
                        a.name
                    ));
                }
            }
        }
    } else if !Phase::parse(&prev.phase).completed() || prev.phase.is_empty() {
        match obs.runs.get(&prev.analysis_run) {
            None => {
                next.phase = Phase::Error.as_str().into();
                next.message = Some(format!(
                    "analysisrun.argoproj.io \"{}\" not found",
                    prev.analysis_run
                ));
            }
            Some(run) if terminating => {
                if !run.phase.completed() && !run.terminating {
                    plan.actions.push(Action::TerminateAnalysisRun {
                        name: prev.analysis_run.clone(),
                    });
                    plan.events.push(Event {
                        warning: false,
                        reason: "AnalysisRunTerminating".into(),
                        message: format!("Terminating {} ({})", a.name, prev.analysis_run),
                    });
                }
            }
            Some(run) => {
                next.phase = run.phase.as_str().into();
                next.message = run.message.clone().filter(|m| !m.is_empty());
            }
        }
    }
    if prev.phase != next.phase && !next.phase.is_empty() {
        let mut message = format!(
            "AnalysisRun '{}' transitioned from {} -> {}",
            a.name, prev.phase, next.phase
        );
        if let Some(m) = next.message.as_deref() {
            message = format!("{message}: {m}");
        }
        let phase = Phase::parse(&next.phase);
        plan.events.push(Event {
            warning: matches!(phase, Phase::Failed | Phase::Error | Phase::Inconclusive),
            reason: format!("AnalysisRun{}", next.phase),
            message,
        });
    }
    next
}

/// The worst template status as an experiment phase, with its message.
fn assess_templates(ex: &Experiment, status: &ExperimentStatus) -> (Phase, Option<String>) {
    let mut worst: Option<&str> = Some(SUCCESSFUL);
    let mut message = None;
    for t in &ex.spec.templates {
        match status
            .template_statuses
            .iter()
            .flatten()
            .find(|s| s.name == t.name)
        {
            None => {
                if template_rank(Some(PROGRESSING_STATUS)) > template_rank(worst) {
                    worst = Some(PROGRESSING_STATUS);
                }
            }
            Some(ts) => {
                if template_rank(ts.status.as_deref()) > template_rank(worst) {
                    worst = ts.status.as_deref();
                    message = ts.message.clone();
                }
            }
        }
    }
    let phase = match worst {
        Some(PROGRESSING_STATUS) => Phase::Pending,
        Some(FAILED) => Phase::Failed,
        Some(ERROR) => Phase::Error,
        Some(RUNNING) => Phase::Running,
        _ => Phase::Successful,
    };
    (phase, message)
}

/// The worst analysis phase (Successful without analyses; Running rather than Pending), with its message.
fn assess_analyses(ex: &Experiment, status: &ExperimentStatus) -> (Phase, Option<String>) {
    let mut worst = Phase::Successful;
    let mut message = None;
    for a in ex.spec.analyses.iter().flatten() {
        let Some(r) = status.analysis_runs.iter().flatten().find(|r| r.name == a.name) else {
            continue;
        };
        let phase = Phase::parse(&r.phase);
        if phase.severity() > worst.severity() {
            worst = phase;
            message = r.message.clone();
        }
    }
    if required_successful(ex, status) && Phase::Running.severity() > worst.severity() {
        return (Phase::Successful, Some(REQUIRED_ANALYSIS_COMPLETED.into()));
    }
    if worst == Phase::Pending {
        worst = Phase::Running;
    }
    (worst, message)
}

/// The experiment's phase and message from its templates and analyses (upstream's calculateStatus).
fn roll_up(ex: &Experiment, status: &mut ExperimentStatus, now: Timestamp) {
    let Some(phase) = phase_of(ex.status.as_ref()) else {
        status.phase = Some(Phase::Pending.as_str().into());
        return;
    };
    if phase.completed() {
        return;
    }
    let (templates, template_message) = assess_templates(ex, status);
    let (analyses, analyses_message) = assess_analyses(ex, status);
    if templates == Phase::Running && status.available_at.is_none() {
        status.available_at = Some(Time(now));
    }
    let (phase, message) = if templates.completed() {
        if templates == Phase::Successful && (analyses.completed() || has_required(ex)) {
            (analyses, analyses_message)
        } else {
            (templates, template_message)
        }
    } else if (analyses.completed() && analyses != Phase::Successful) || required_successful(ex, status) {
        (analyses, analyses_message)
    } else {
        (templates, template_message)
    };
    status.phase = Some(phase.as_str().into());
    status.message = message.filter(|m| !m.is_empty());
}

/// The Progressing condition (upstream's calculateExperimentConditions).
fn set_conditions(ex: &Experiment, status: &mut ExperimentStatus, now: Timestamp) {
    let name = ex.name_any();
    let current = ex
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().flatten().find(|c| c.r#type == PROGRESSING));
    let (cond_status, reason, message) = if phase_of(Some(status)).is_some_and(Phase::completed) {
        (
            "False",
            "ExperimentCompleted",
            format!("Experiment \"{name}\" has successfully ran and completed."),
        )
    } else if progressed(ex, status) {
        let mut c = condition(
            "True",
            "ReplicaSetUpdated",
            format!("Experiment \"{name}\" is progressing."),
            now,
        );
        if let Some(cur) = current.filter(|c| c.status == "True") {
            c.last_transition_time = cur.last_transition_time.clone();
        }
        replace_condition(status, c);
        return;
    } else if ex.status.as_ref().is_some_and(|s| s.available_at.is_some()) && !passed_duration(ex, now) {
        (
            "True",
            "NewReplicaSetAvailable",
            format!("Experiment \"{name}\" is running."),
        )
    } else {
        return;
    };
    let mut c = condition(cond_status, reason, message, now);
    if let Some(cur) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.r#type == PROGRESSING)
    {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    replace_condition(status, c);
}

fn condition(status: &str, reason: &str, message: String, now: Timestamp) -> ExperimentCondition {
    ExperimentCondition {
        r#type: PROGRESSING.into(),
        status: status.into(),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
        reason: reason.into(),
        message,
    }
}

fn replace_condition(status: &mut ExperimentStatus, c: ExperimentCondition) {
    let conds = status.conditions.get_or_insert_with(Vec::new);
    conds.retain(|x| x.r#type != c.r#type);
    conds.push(c);
}

/// Whether a template appeared or its replica counts changed since the current status.
fn progressed(ex: &Experiment, status: &ExperimentStatus) -> bool {
    let old = ex
        .status
        .iter()
        .flat_map(|s| s.template_statuses.iter().flatten());
    let new = status.template_statuses.as_deref().unwrap_or_default();
    if old.clone().count() < new.len() {
        return true;
    }
    old.into_iter().any(|o| {
        new.iter().any(|n| {
            n.name == o.name
                && (
                    o.replicas,
                    o.updated_replicas,
                    o.ready_replicas,
                    o.available_replicas,
                ) != (
                    n.replicas,
                    n.updated_replicas,
                    n.ready_replicas,
                    n.available_replicas,
                )
        })
    })
}

/// The status after a template's ReplicaSet or Service could not be created: the template is in Error with
/// why (upstream's message), which ends the experiment.
pub fn creation_refused(status: &mut ExperimentStatus, template: &str, what: &str, error: &str) {
    for ts in status
        .template_statuses
        .iter_mut()
        .flatten()
        .filter(|t| t.name == template)
    {
        ts.status = Some(ERROR.into());
        ts.message = Some(format!(
            "Failed to create {what} for template '{template}': {error}"
        ));
    }
}
