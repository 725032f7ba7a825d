//! The Rollout planner: a pure function from what exists to what to do and what the status becomes.
//!
//! It has no client and no clock: `now` is passed in, and everything the cluster holds arrives in
//! [`Observed`]. Each call moves the rollout at most one step; the status write (or the watched objects'
//! changes) brings the next reconcile. [`plan`] runs small stages in order: validation, the revision and
//! ReplicaSet lifecycle both strategies share (`lifecycle`), analysis runs (`runs`), a canary's experiment
//! step (`experiments`), user actions (`user`),
//! the strategy itself (`canary`, `bluegreen`), then progress and status (`progress`).

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use sluice_crds::{
    analysis::AnalysisRunSpec,
    rollout::{CanaryStep, Rollout, RolloutCondition, RolloutStatus},
};

pub use super::analysis::{RunInfo, Templates};
pub use super::experiment::{ExperimentInfo, RsTemplate, TemplateInfo};
#[cfg(test)]
use super::hash::steps_hash;
use super::{
    bluegreen, canary, ephemeral, experiments, lifecycle, progress, runs,
    status::{self, cond, set_condition},
    user, validate,
};
#[cfg(test)]
use sluice_analysis::Phase;
#[cfg(test)]
use sluice_crds::rollout::RolloutAnalysisRunStatus;

/// Default seconds an old stable ReplicaSet stays up after the switch (traffic routing, blue-green).
pub const DEFAULT_SCALE_DOWN_DELAY: i64 = 30;
/// Default seconds a canary (or preview) ReplicaSet stays up after an abort.
pub const DEFAULT_ABORT_SCALE_DOWN_DELAY: i64 = 30;
/// Default revision history limit.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
/// Pause condition reason of a canary pause step.
pub const CANARY_PAUSE_STEP: &str = "CanaryPauseStep";
/// Pause condition reason of a blue-green rollout waiting for promotion.
pub const BLUE_GREEN_PAUSE: &str = "BlueGreenPause";
/// Pause condition reason of a rollout paused by an inconclusive AnalysisRun.
pub const INCONCLUSIVE_ANALYSIS: &str = "InconclusiveAnalysisRun";

/// A ReplicaSet of the rollout, as the planner sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RsInfo {
    /// Name.
    pub name: String,
    /// Its `rollouts-pod-template-hash`.
    pub hash: String,
    /// Its `rollout.argoproj.io/revision`.
    pub revision: i64,
    /// spec.replicas.
    pub spec_replicas: i32,
    /// status.replicas (pods that exist).
    pub replicas: i32,
    /// status.readyReplicas.
    pub ready: i32,
    /// status.availableReplicas.
    pub available: i32,
    /// Its `scale-down-deadline` annotation.
    pub scale_down_deadline: Option<Timestamp>,
    /// The ephemeral metadata injected into its pods (its `rollout.argoproj.io/ephemeral-metadata`).
    pub ephemeral: Option<sluice_crds::rollout::PodTemplateMetadata>,
}

/// The selector hash a Service has, if the Service exists.
#[derive(Clone, Debug, PartialEq)]
pub enum ServiceState {
    /// The Service does not exist.
    Missing,
    /// The Service exists; its `rollouts-pod-template-hash` selector, if any.
    Selecting(Option<String>),
}

/// The canary weight found on the traffic router.
#[derive(Clone, Debug, PartialEq)]
pub enum TrafficState {
    /// Every targeted route sends this percentage to the canary.
    Weight(i32),
    /// The routes disagree (a previous change was interrupted): the next write decides.
    Mixed,
    /// Every route sends this percentage, but an object the router keeps is out of step (a canary Ingress
    /// whose stable Ingress changed): the weight is put in place again, which brings it in step.
    OutOfStep(i32),
    /// The router's object cannot be used (missing VirtualService, route without the services...).
    Error(String),
}

/// The DestinationRule's (canary, stable) subset hashes, or why they cannot be read.
pub type SubsetState = Result<(Option<String>, Option<String>), String>;

/// Everything the planner reads.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The Rollout.
    pub rollout: Rollout,
    /// Hash of the Rollout's current template.
    pub desired_hash: String,
    /// The Rollout's ReplicaSets.
    pub replica_sets: Vec<RsInfo>,
    /// The stable Service (canary) or the active Service (blue-green), when one is configured.
    pub stable_service: Option<ServiceState>,
    /// The canary Service (canary) or the preview Service (blue-green), when one is configured.
    pub canary_service: Option<ServiceState>,
    /// The traffic router's state, when the canary uses one.
    pub traffic: Option<TrafficState>,
    /// The DestinationRule's (canary, stable) subset hashes, when the canary splits by subset.
    pub subsets: Option<SubsetState>,
    /// Pods created before spec.restartAt, while a restart is pending: (name, hash of their ReplicaSet).
    pub pods_to_restart: Vec<(String, String)>,
    /// Managed routes (trafficRouting.managedRoutes) present in the VirtualServices now.
    pub managed_routes_present: Vec<String>,
    /// The AnalysisRuns the Rollout owns.
    pub analysis_runs: Vec<RunInfo>,
    /// The analysis templates it may reference.
    pub templates: Templates,
    /// The Deployment spec.workloadRef names, when it is set (its template is already the Rollout's).
    pub workload: Option<WorkloadState>,
    /// Objects marked as managed by this Rollout that its spec no longer names (looked for after a spec change).
    pub orphans: Vec<Orphan>,
    /// The Experiments the Rollout owns.
    pub experiments: Vec<ExperimentInfo>,
    /// The pod templates of the canary and stable ReplicaSets, read while the current step is an experiment.
    pub rs_templates: Vec<RsTemplate>,
}

/// An object Sluice marked as managed by a Rollout whose spec no longer names it.
#[derive(Clone, Debug, PartialEq)]
pub enum Orphan {
    /// A Service (its selector still carries a pod-template hash).
    Service(String),
    /// A DestinationRule of the Rollout's namespace (its subsets still carry pod-template hashes).
    DestinationRule(String),
}

/// The Deployment a Rollout's workloadRef names, as the planner needs it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkloadState {
    /// Its name.
    pub name: String,
    /// Why it cannot be used (not found, another kind, a template in the Rollout too), if it cannot.
    pub error: Option<String>,
    /// Its metadata.generation.
    pub generation: i64,
    /// Its spec.replicas.
    pub replicas: i32,
}

/// Whether spec.restartAt asks for pods to be restarted that have not been yet.
pub fn restart_pending(ro: &Rollout) -> bool {
    ro.spec.restart_at.as_ref().is_some_and(|r| {
        ro.status
            .as_ref()
            .and_then(|s| s.restarted_at.as_ref())
            .is_none_or(|done| done.0 < r.0)
    })
}

/// One thing to do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create the ReplicaSet of the current template.
    CreateReplicaSet {
        /// Pod-template hash.
        hash: String,
        /// Initial replicas.
        replicas: i32,
        /// Revision number.
        revision: i64,
    },
    /// Scale a ReplicaSet.
    ScaleReplicaSet {
        /// Name.
        name: String,
        /// Current spec.replicas.
        from: i32,
        /// Wanted spec.replicas.
        to: i32,
        /// Its revision (for the event message).
        revision: i64,
    },
    /// Set or remove a ReplicaSet's `scale-down-deadline`.
    SetScaleDownDeadline {
        /// Name.
        name: String,
        /// The deadline, or None to remove it.
        deadline: Option<Timestamp>,
    },
    /// Point a Service's selector at a hash.
    SwitchService {
        /// Service name.
        service: String,
        /// Hash it selects now, if any.
        from: Option<String>,
        /// Hash to select.
        to: String,
    },
    /// Set the canary's traffic weight on the router (and read it back).
    SetCanaryWeight {
        /// Percentage.
        weight: i32,
        /// Weights of experiment templates; a weight of 0 takes its destination out of the routes.
        additional: Vec<sluice_traffic::Additional>,
    },
    /// Point the DestinationRule's canary and stable subsets at these hashes.
    SetSubsets {
        /// Hash for the canary subset.
        canary: String,
        /// Hash for the stable subset.
        stable: String,
    },
    /// Put the ephemeral metadata of its role on a ReplicaSet's pod template and its live pods.
    SetEphemeralMetadata {
        /// ReplicaSet name.
        name: String,
        /// Its pod-template hash (selects its pods).
        hash: String,
        /// What was injected so far (removed where no longer wanted).
        recorded: Option<sluice_crds::rollout::PodTemplateMetadata>,
        /// What its role asks for now.
        wanted: Option<sluice_crds::rollout::PodTemplateMetadata>,
    },
    /// Take back what Sluice put on an object the Rollout no longer names: the hash from a Service's selector
    /// or a DestinationRule's subsets, and the managed-by annotation.
    Release {
        /// The object.
        orphan: Orphan,
    },
    /// Scale the Deployment a workloadRef names (workloadRef.scaleDown).
    ScaleWorkload {
        /// Deployment name.
        name: String,
        /// Wanted spec.replicas.
        replicas: i32,
    },
    /// Give a ReplicaSet that runs the desired template again the next revision number.
    SetReplicaSetRevision {
        /// Name.
        name: String,
        /// Its new revision.
        revision: i64,
    },
    /// Delete a ReplicaSet beyond the revision history limit.
    DeleteReplicaSet {
        /// Name.
        name: String,
    },
    /// Set the Rollout's `rollout.argoproj.io/revision` annotation.
    AnnotateRevision {
        /// Revision.
        revision: i64,
    },
    /// Add or replace a managed header route sending matching requests to the canary.
    SetHeaderRoute {
        /// Route name (listed in managedRoutes).
        name: String,
        /// Header matches.
        matches: Vec<sluice_crds::rollout::HeaderRoutingMatch>,
    },
    /// Add or replace a managed mirror route copying matching requests to the canary.
    SetMirrorRoute {
        /// Route name (listed in managedRoutes).
        name: String,
        /// Request matches.
        matches: Vec<sluice_crds::rollout::RouteMatch>,
        /// Percentage mirrored.
        percentage: Option<i32>,
    },
    /// Remove managed routes.
    RemoveManagedRoutes {
        /// Route names.
        names: Vec<String>,
    },
    /// Create an AnalysisRun owned by the Rollout.
    CreateAnalysisRun {
        /// Name.
        name: String,
        /// Labels.
        labels: BTreeMap<String, String>,
        /// Annotations.
        annotations: BTreeMap<String, String>,
        /// Spec.
        spec: Box<AnalysisRunSpec>,
    },
    /// Stop a run that is no longer current (`spec.terminate`).
    TerminateAnalysisRun {
        /// Name.
        name: String,
    },
    /// Delete a completed run beyond the history limits.
    DeleteAnalysisRun {
        /// Name.
        name: String,
    },
    /// Create an Experiment owned by the Rollout (an experiment step's).
    CreateExperiment {
        /// The Experiment.
        experiment: Box<sluice_crds::experiment::Experiment>,
    },
    /// Stop an Experiment that is no longer current (`spec.terminate`).
    TerminateExperiment {
        /// Name.
        name: String,
    },
    /// Delete an Experiment beyond the history limits (or of a ReplicaSet that is gone).
    DeleteExperiment {
        /// Name.
        name: String,
    },
    /// Evict a pod through the eviction API (PodDisruptionBudgets apply).
    EvictPod {
        /// Pod name.
        name: String,
    },
}

/// An event to record on the Rollout.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Warning instead of Normal.
    pub warning: bool,
    /// Upstream's reason.
    pub reason: &'static str,
    /// Message.
    pub message: String,
}

/// The planner's answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Actions, in order.
    pub actions: Vec<Action>,
    /// The status to write (written only when it differs from the observed one).
    pub status: RolloutStatus,
    /// Events, in order.
    pub events: Vec<Event>,
    /// When to look again if nothing else happens (pause expiry, scale-down deadline).
    pub requeue_after: Option<Duration>,
}

impl Plan {
    pub(super) fn event(&mut self, reason: &'static str, message: String) {
        self.events.push(Event {
            warning: false,
            reason,
            message,
        });
    }
    pub(super) fn warn(&mut self, reason: &'static str, message: String) {
        self.events.push(Event {
            warning: true,
            reason,
            message,
        });
    }
    pub(super) fn requeue(&mut self, after: Duration) {
        self.requeue_after = Some(self.requeue_after.map_or(after, |d| d.min(after)));
    }
    /// Scales a ReplicaSet (nothing when it already has that size), with upstream's ScalingReplicaSet event.
    pub(super) fn scale(&mut self, rs: &RsInfo, to: i32) {
        if rs.spec_replicas == to {
            return;
        }
        self.actions.push(Action::ScaleReplicaSet {
            name: rs.name.clone(),
            from: rs.spec_replicas,
            to,
            revision: rs.revision,
        });
        let direction = if to > rs.spec_replicas { "up" } else { "down" };
        self.event(
            "ScalingReplicaSet",
            format!(
                "Scaled {direction} ReplicaSet {} (revision {}) from {} to {to}",
                rs.name, rs.revision, rs.spec_replicas
            ),
        );
    }
    /// Points a Service's selector at a hash, with upstream's SwitchService event.
    pub(super) fn switch(&mut self, service: &str, from: Option<String>, to: &str) {
        self.event(
            "SwitchService",
            format!(
                "Switched selector for service '{service}' from '{}' to '{to}'",
                from.as_deref().unwrap_or_default()
            ),
        );
        self.actions.push(Action::SwitchService {
            service: service.to_string(),
            from,
            to: to.to_string(),
        });
    }
}

/// The status being built, the conditions taken out of it, and the plan's output so far.
pub(super) struct Draft {
    /// The status to write (its conditions live in `conditions` until [`progress::finish`]).
    pub st: RolloutStatus,
    /// The status conditions.
    pub conditions: Vec<RolloutCondition>,
    /// Actions, events and requeue time so far.
    pub out: Plan,
    /// The time of this reconcile.
    pub now: Timestamp,
}

impl Draft {
    /// The draft of a reconcile at `now`: the observed status with the current generation.
    pub fn for_rollout(ro: &Rollout, now: Timestamp) -> Self {
        let mut st = ro.status.clone().unwrap_or_default();
        st.observed_generation = ro.metadata.generation.map(|g| g.to_string());
        let conditions = st.conditions.take().unwrap_or_default();
        Draft {
            st,
            conditions,
            out: Plan::default(),
            now,
        }
    }
    /// `now` as a Kubernetes time.
    pub fn time(&self) -> Time {
        Time(self.now)
    }
    /// Sets a condition at `now`.
    pub fn condition(&mut self, kind: &str, status: &str, reason: &str, message: &str) {
        set_condition(
            &mut self.conditions,
            kind,
            status,
            reason,
            message,
            &Time(self.now),
        );
    }
    /// The condition of a type, if any.
    pub fn get_condition(&self, kind: &str) -> Option<&RolloutCondition> {
        status::condition(&self.conditions, kind)
    }
}

/// The strategy a Rollout runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Strategy {
    /// spec.strategy.canary.
    Canary,
    /// spec.strategy.blueGreen.
    BlueGreen,
}

/// What the revision stage established, read by every later stage.
pub(super) struct Facts<'a> {
    /// The Rollout.
    pub ro: &'a Rollout,
    /// Its strategy.
    pub strategy: Strategy,
    /// spec.replicas (default 1).
    pub replicas: i32,
    /// The canary steps (none for blue-green).
    pub steps: &'a [CanaryStep],
    /// Hash of the desired template.
    pub new_hash: String,
    /// Revision of the desired template.
    pub revision: i64,
    /// The desired ReplicaSet.
    pub new_rs: &'a RsInfo,
    /// Hash of the stable ReplicaSet (the new one when there is no other).
    pub stable_hash: String,
    /// The stable ReplicaSet, if it exists.
    pub stable_rs: Option<&'a RsInfo>,
    /// Every ReplicaSet but the desired one.
    pub others: Vec<&'a RsInfo>,
    /// The stable ReplicaSet is the desired one.
    pub fully_promoted: bool,
    /// spec.paused.
    pub user_paused: bool,
    /// The template changed in this reconcile.
    pub template_changed: bool,
}

/// What the user-action stage decided.
pub(super) struct Mode {
    /// The update is aborted (by the user, an analysis or the progress deadline).
    pub aborted: bool,
    /// The current step index (0 while aborted; the number of steps past the last).
    pub index: usize,
    /// The user answered a controller pause in this reconcile (cleared its pause conditions).
    pub resumed: bool,
}

/// Plans one reconcile of a Rollout.
/// Canary steps completed in one reconcile at most (the steps that complete at once: pauses of 0 s, header
/// routes, steps whose state is already in place).
const STEPS_AT_ONCE: usize = 8;

/// Plans the reconcile; when a plan only completes a step (the index moves on and nothing is to be done), the
/// next step is planned at once from that status, so that a completed step and the next step's weight land in
/// one reconcile instead of one status write, its watch event and another reconcile later. The events of
/// every step are kept, in order; the status is the last plan's.
pub fn plan_steps(obs: &Observed, now: Timestamp) -> Plan {
    let mut out = plan(obs, now);
    let index = |o: &Observed| o.rollout.status.as_ref().and_then(|s| s.current_step_index);
    let mut planned_from = index(obs);
    let mut next: Option<Observed> = None;
    for _ in 0..STEPS_AT_ONCE {
        let moved_on =
            out.status.current_step_index.is_some() && out.status.current_step_index > planned_from;
        if !moved_on || !out.actions.is_empty() {
            break;
        }
        let mut from = next.take().unwrap_or_else(|| obs.clone());
        from.rollout.status = Some(out.status.clone());
        planned_from = index(&from);
        let more = plan(&from, now);
        out.events.extend(more.events);
        out.actions = more.actions;
        out.status = more.status;
        out.requeue_after = more.requeue_after;
        next = Some(from);
    }
    out
}

/// Plans one reconcile.
pub fn plan(obs: &Observed, now: Timestamp) -> Plan {
    let ro = &obs.rollout;
    let mut d = Draft::for_rollout(ro, now);
    let workload_error = obs.workload.as_ref().and_then(|w| w.error.clone());
    if let Some(message) = workload_error
        .or_else(|| validate::invalid_spec(ro))
        .or_else(|| runs::refs_invalid(obs))
    {
        return progress::invalid_spec(ro, d, message);
    }
    status::remove_condition(&mut d.conditions, cond::INVALID_SPEC);
    if let Some(feature) = validate::unsupported(ro) {
        return progress::unsupported(obs, d, feature);
    }
    status::remove_condition(&mut d.conditions, cond::UNSUPPORTED);
    if let Some(w) = &obs.workload {
        d.st.workload_observed_generation = Some(w.generation.to_string());
    }
    for orphan in &obs.orphans {
        d.out.actions.push(Action::Release {
            orphan: orphan.clone(),
        });
    }
    let update = lifecycle::begin_update(obs, &mut d);
    let Some(facts) = lifecycle::facts(obs, &update, &mut d) else {
        lifecycle::create_new_replica_set(obs, &update, &mut d);
        return progress::finish(obs, d);
    };
    let analysis = match facts.strategy {
        Strategy::Canary => runs::canary(obs, &facts, &mut d),
        Strategy::BlueGreen => runs::blue_green(obs, &facts, &mut d),
    };
    let experiment = match facts.strategy {
        Strategy::Canary => experiments::canary(obs, &facts, &mut d),
        Strategy::BlueGreen => Default::default(),
    };
    let abort_message = analysis
        .abort_message
        .as_deref()
        .or(experiment.abort.as_ref().and_then(|m| m.as_deref()));
    let mode = user::actions(&facts, abort_message, &mut d);
    match facts.strategy {
        Strategy::Canary => canary::plan(obs, &facts, &mode, &experiment, analysis.step_done, &mut d),
        Strategy::BlueGreen => bluegreen::plan(obs, &facts, &mode, &analysis, &mut d),
    }
    ephemeral::plan(&facts, &mut d);
    user::restart(obs, &facts, &mode, &mut d);
    lifecycle::scale_down_workload(obs, &facts, &mut d);
    lifecycle::history_limit(&facts, &mut d);
    progress::progressing(obs, &facts, &mode, &update, &mut d);
    progress::finish(obs, d)
}

/// The setWeight in force at `index`: the last one at or before it (0 when none); 100 past the last step.
pub fn step_weight(steps: &[CanaryStep], index: usize) -> i32 {
    if index >= steps.len() {
        return 100;
    }
    steps[..=index]
        .iter()
        .rev()
        .find_map(|s| s.set_weight)
        .unwrap_or(0)
}

/// Seconds from `since` to `now`.
pub(super) fn seconds_since(since: &Time, now: Timestamp) -> f64 {
    (now.as_millisecond() - since.0.as_millisecond()) as f64 / 1000.0
}

/// `now` plus `secs` seconds.
pub(super) fn add_secs(now: Timestamp, secs: i64) -> Timestamp {
    Timestamp::from_second(now.as_second().saturating_add(secs)).unwrap_or(now)
}

/// The wait from `now` until `deadline` (at least 1 ms).
pub(super) fn until(deadline: Timestamp, now: Timestamp) -> Duration {
    Duration::from_millis((deadline.as_millisecond() - now.as_millisecond()).max(0) as u64 + 1)
}

/// A label selector as a string, `a=b,c in (d,e)`, as the scale subresource wants it.
pub fn selector_string(sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
