//! The canary planner: a pure function from what exists to what to do and what the status becomes.
//!
//! It has no client and no clock: `now` is passed in, and everything the cluster holds arrives in
//! [`Observed`]. Each call moves the rollout at most one step; the status write (or the watched objects'
//! changes) brings the next reconcile.

use std::time::Duration;

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use kube::ResourceExt;
use sluice_crds::rollout::{
    CanaryStep, CanaryStrategy, PauseCondition, Rollout, RolloutStatus, TrafficWeights, WeightDestination,
};

use std::collections::BTreeMap;

use sluice_analysis::{Phase, duration::parse_pause_duration};
use sluice_crds::{analysis::AnalysisRunSpec, rollout::RolloutAnalysisRunStatus};

use super::analysis::{self as ra, RunInfo, Templates};

use super::{
    hash::steps_hash,
    replicas::{self, BasicCanaryInput, RoutedCanaryInput, RsCount},
    status::{self, cond, set_condition},
    validate,
};

/// Default seconds an old stable ReplicaSet stays up after the switch (traffic routing).
pub const DEFAULT_SCALE_DOWN_DELAY: i64 = 30;
/// Default seconds a canary ReplicaSet stays up after an abort (traffic routing).
pub const DEFAULT_ABORT_SCALE_DOWN_DELAY: i64 = 30;
/// Default revision history limit.
pub const DEFAULT_REVISION_HISTORY_LIMIT: i32 = 10;
/// Pause condition reason of a canary pause step.
pub const CANARY_PAUSE_STEP: &str = "CanaryPauseStep";

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
    /// The stable Service, when one is configured.
    pub stable_service: Option<ServiceState>,
    /// The canary Service, when one is configured.
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
    },
    /// Point the DestinationRule's canary and stable subsets at these hashes.
    SetSubsets {
        /// Hash for the canary subset.
        canary: String,
        /// Hash for the stable subset.
        stable: String,
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
    fn event(&mut self, reason: &'static str, message: String) {
        self.events.push(Event {
            warning: false,
            reason,
            message,
        });
    }
    fn warn(&mut self, reason: &'static str, message: String) {
        self.events.push(Event {
            warning: true,
            reason,
            message,
        });
    }
    fn requeue(&mut self, after: Duration) {
        self.requeue_after = Some(self.requeue_after.map_or(after, |d| d.min(after)));
    }
    fn scale(&mut self, rs: &RsInfo, to: i32) {
        if rs.spec_replicas != to {
            self.actions.push(Action::ScaleReplicaSet {
                name: rs.name.clone(),
                from: rs.spec_replicas,
                to,
                revision: rs.revision,
            });
        }
    }
}

/// A step as a short description, as upstream's step-completed event prints it.
fn describe(step: &CanaryStep) -> String {
    if let Some(w) = step.set_weight {
        return format!("setWeight: {w}");
    }
    if let Some(p) = &step.pause {
        return match &p.duration {
            Some(d) => format!(
                "pause: {}",
                serde_json::to_string(d).unwrap_or_default().trim_matches('"')
            ),
            None => "pause".into(),
        };
    }
    if step.set_canary_scale.is_some() {
        return "setCanaryScale".into();
    }
    if step.analysis.is_some() {
        return "analysis".into();
    }
    "step".into()
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

/// The setCanaryScale in force at `index`, as the replica split reads it.
fn canary_scale(steps: &[CanaryStep], index: usize) -> Option<replicas::CanaryScale> {
    if index >= steps.len() {
        return None;
    }
    let scale = steps[..=index]
        .iter()
        .rev()
        .find_map(|s| s.set_canary_scale.as_ref())?;
    if scale.match_traffic_weight == Some(true) {
        return Some(replicas::CanaryScale::MatchTrafficWeight);
    }
    scale
        .replicas
        .map(replicas::CanaryScale::Replicas)
        .or(scale.weight.map(replicas::CanaryScale::Weight))
}

fn seconds_since(since: &Time, now: Timestamp) -> f64 {
    (now.as_millisecond() - since.0.as_millisecond()) as f64 / 1000.0
}

fn add_secs(now: Timestamp, secs: i64) -> Timestamp {
    Timestamp::from_second(now.as_second().saturating_add(secs)).unwrap_or(now)
}

fn until(deadline: Timestamp, now: Timestamp) -> Duration {
    Duration::from_millis((deadline.as_millisecond() - now.as_millisecond()).max(0) as u64 + 1)
}

/// Plans one reconcile of a canary Rollout.
pub fn plan(obs: &Observed, now: Timestamp) -> Plan {
    let ro = &obs.rollout;
    let now_t = Time(now);
    let observed = ro.status.clone().unwrap_or_default();
    let mut st = observed.clone();
    let mut plan = Plan::default();
    st.observed_generation = ro.metadata.generation.map(|g| g.to_string());
    let mut conditions = st.conditions.take().unwrap_or_default();

    if let Some(message) = validate::invalid_spec(ro).or_else(|| analysis_refs_invalid(obs)) {
        if status::condition(&conditions, cond::INVALID_SPEC).is_none_or(|c| c.message != message) {
            plan.warn("InvalidSpec", message.clone());
        }
        set_condition(
            &mut conditions,
            cond::INVALID_SPEC,
            "True",
            "InvalidSpec",
            &message,
            &now_t,
        );
        st.conditions = Some(conditions);
        let (p, m) = status::phase(&st, &phase_inputs(ro));
        st.phase = Some(p.into());
        st.message = Some(m);
        plan.status = st;
        return plan;
    }
    status::remove_condition(&mut conditions, cond::INVALID_SPEC);

    let spec = &ro.spec;
    let canary: &CanaryStrategy = spec.strategy.canary.as_ref().expect("validated: canary strategy");
    let steps: &[CanaryStep] = canary.steps.as_deref().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let routed = canary.traffic_routing.is_some();
    let new_hash = obs.desired_hash.clone();
    let new_rs = obs.replica_sets.iter().find(|rs| rs.hash == new_hash);
    let max_revision = obs.replica_sets.iter().map(|rs| rs.revision).max().unwrap_or(0);
    let revision = new_rs.map_or(max_revision + 1, |rs| rs.revision);

    // A new template starts a new update; going back to the stable template is a fast rollback.
    let template_changed = st.current_pod_hash.as_deref() != Some(new_hash.as_str());
    // Upstream records it after the new ReplicaSet's creation.
    let mut not_completed = None;
    if template_changed {
        let rollback = st.stable_rs.as_deref() == Some(new_hash.as_str());
        let was_completed = st.current_pod_hash.is_some() && st.stable_rs == st.current_pod_hash;
        plan.event(
            "RolloutUpdated",
            format!("Rollout updated to revision {revision}"),
        );
        if was_completed && !rollback {
            not_completed = Some(format!(
                "Rollout not completed, started update to revision {revision} ({new_hash})"
            ));
        }
        if rollback {
            plan.event(
                "RolloutCompleted",
                format!("Rollout completed update to revision {revision} ({new_hash}): Fast rollback"),
            );
        }
        st.current_pod_hash = Some(new_hash.clone());
        st.abort = None;
        st.aborted_at = None;
        st.pause_conditions = None;
        st.controller_pause = None;
        st.promote_full = None;
        if rollback {
            plan.event("SkipSteps", "Rollback to stable ReplicaSets".into());
            st.current_step_index = Some(steps.len() as i32);
        } else {
            st.current_step_index = (!steps.is_empty()).then_some(0);
        }
    }
    let step_hash = steps_hash(&canary.steps);
    if st.current_step_hash.as_deref() != Some(step_hash.as_str()) {
        if st.current_step_hash.is_some()
            && !template_changed
            && st.stable_rs.as_deref() != Some(new_hash.as_str())
        {
            st.current_step_index = (!steps.is_empty()).then_some(0);
        }
        st.current_step_hash = Some(step_hash);
    }
    let annotated = ro
        .annotations()
        .get(super::REVISION_ANNOTATION)
        .and_then(|r| r.parse::<i64>().ok());
    if annotated != Some(revision) {
        plan.actions.push(Action::AnnotateRevision { revision });
    }

    let others: Vec<&RsInfo> = obs.replica_sets.iter().filter(|rs| rs.hash != new_hash).collect();
    let Some(new_rs) = new_rs else {
        // First deploy: the whole size at once, no steps. Later updates start the canary at 0.
        let initial = st.stable_rs.is_none() && others.is_empty();
        plan.actions.push(Action::CreateReplicaSet {
            hash: new_hash.clone(),
            replicas: if initial { replicas } else { 0 },
            revision,
        });
        plan.event(
            "NewReplicaSetCreated",
            format!(
                "Created ReplicaSet {}-{new_hash} (revision {revision})",
                ro.name_any()
            ),
        );
        if let Some(message) = not_completed.take() {
            plan.event("RolloutNotCompleted", message);
        }
        set_condition(
            &mut conditions,
            cond::PROGRESSING,
            "True",
            "NewReplicaSetCreated",
            &format!("Created new replica set \"{}-{new_hash}\"", ro.name_any()),
            &now_t,
        );
        if initial {
            plan.event(
                "RolloutCompleted",
                format!("Rollout completed update to revision {revision} ({new_hash}): Initial deploy"),
            );
            st.stable_rs = Some(new_hash.clone());
            st.current_step_index = (!steps.is_empty()).then_some(steps.len() as i32);
        }
        finish(ro, obs, &mut st, conditions, &mut plan, now_t);
        return plan;
    };
    if let Some(message) = not_completed.take() {
        plan.event("RolloutNotCompleted", message);
    }
    if st.stable_rs.is_none() && others.is_empty() {
        st.stable_rs = Some(new_hash.clone());
        st.current_step_index = (!steps.is_empty()).then_some(steps.len() as i32);
    }

    let stable_hash = st.stable_rs.clone().unwrap_or_else(|| new_hash.clone());
    let stable_rs = obs.replica_sets.iter().find(|rs| rs.hash == stable_hash);
    let fully_promoted = stable_hash == new_hash;
    let user_paused = spec.paused == Some(true);

    // Retry after an abort: the user set abort back to false.
    let was_aborted =
        status::condition(&conditions, cond::PROGRESSING).is_some_and(|c| c.reason == "RolloutAborted");

    // Analysis decides before anything moves: a failed run aborts this very reconcile.
    let retrying = was_aborted && st.abort != Some(true);
    let analysis = analysis_step(
        obs,
        &mut st,
        &mut plan,
        &AnalysisInputs {
            steps,
            new_hash: &new_hash,
            stable_hash: &stable_hash,
            revision,
            fully_promoted,
            retrying,
            now: &now_t,
        },
    );
    let aborted = st.abort == Some(true) && !fully_promoted;
    if was_aborted && !aborted && !fully_promoted {
        set_condition(
            &mut conditions,
            cond::PROGRESSING,
            "Unknown",
            "RolloutRetry",
            "Retrying Rollout after abort",
            &now_t,
        );
        st.aborted_at = None;
    }

    // Full promotion skips what is left.
    if st.promote_full == Some(true) && !fully_promoted && !aborted {
        st.current_step_index = (!steps.is_empty()).then_some(steps.len() as i32);
        st.pause_conditions = None;
        st.controller_pause = None;
    }

    let mut index = st.current_step_index.unwrap_or(0).max(0) as usize;
    index = index.min(steps.len());

    if aborted {
        let base = format!("Rollout aborted update to revision {revision}");
        let message = match &analysis.abort_message {
            Some(why) => format!("{base}: {why}"),
            None => status::condition(&conditions, cond::PROGRESSING)
                .filter(|c| c.reason == "RolloutAborted" && c.message.starts_with(&base))
                .map_or(base.clone(), |c| c.message.clone()),
        };
        if st.aborted_at.is_none() {
            st.aborted_at = Some(now_t.clone());
            plan.warn("RolloutAborted", message.clone());
        }
        st.pause_conditions = None;
        st.controller_pause = None;
        st.current_step_index = (!steps.is_empty()).then_some(0);
        index = 0;
        set_condition(
            &mut conditions,
            cond::PROGRESSING,
            "False",
            "RolloutAborted",
            &message,
            &now_t,
        );
    }

    // The user's answer to a controller pause: conditions cleared while controllerPause is set.
    let mut step_done = false;
    if st.controller_pause == Some(true) && st.pause_conditions.as_ref().is_none_or(Vec::is_empty) && !aborted
    {
        st.controller_pause = None;
        st.pause_conditions = None;
        if index < steps.len() && steps[index].pause.is_some() {
            step_done = true;
        }
        plan.event("RolloutResumed", "Rollout is resumed".into());
    }

    // Replica targets.
    let weight_for_scale = if aborted {
        0
    } else if fully_promoted {
        100
    } else {
        step_weight(steps, index)
    };
    let canary_avail = new_rs.available;
    let (mut canary_target, mut stable_target);
    // Basic canary: what this reconcile scales the canary and stable to (a stage towards the targets).
    let mut basic_next: Option<(i32, i32)> = None;
    // Older ReplicaSets (neither new nor stable), newest first as the split spends its budget.
    let mut older: Vec<&RsInfo> = others
        .iter()
        .copied()
        .filter(|rs| rs.hash != stable_hash)
        .collect();
    older.sort_by_key(|rs| std::cmp::Reverse(rs.revision));
    if fully_promoted {
        canary_target = replicas;
        stable_target = replicas;
    } else if routed {
        let split = replicas::routed_canary(&RoutedCanaryInput {
            replicas,
            weight: weight_for_scale,
            set_canary_scale: if aborted { None } else { canary_scale(steps, index) },
            min_pods_per_replica_set: canary.min_pods_per_replica_set,
            dynamic_stable_scale: canary.dynamic_stable_scale == Some(true),
            current_stable_weight: observed
                .canary
                .as_ref()
                .and_then(|c| c.weights.as_ref())
                .map(|w| w.stable.weight),
            aborted,
        });
        canary_target = split.canary;
        stable_target = split.stable;
    } else {
        let budgets = replicas::resolve_fenceposts(
            canary.max_surge.as_ref(),
            canary.max_unavailable.as_ref(),
            replicas,
        );
        let input = BasicCanaryInput {
            replicas,
            weight: weight_for_scale,
            max_surge: budgets.max_surge,
            max_unavailable: budgets.max_unavailable,
            canary: RsCount {
                spec: new_rs.spec_replicas,
                available: new_rs.available,
            },
            stable: stable_rs.map(|rs| RsCount {
                spec: rs.spec_replicas,
                available: rs.available,
            }),
            others: older
                .iter()
                .map(|rs| RsCount {
                    spec: rs.spec_replicas,
                    available: rs.available,
                })
                .collect(),
        };
        // The targets decide when a step is done; like upstream, one group moves per reconcile (stable, then
        // canary, then older ReplicaSets) so that the surge and availability budgets hold at every moment.
        let target = replicas::basic_canary(&input);
        let next = target.next_stage(&input);
        canary_target = target.canary;
        stable_target = target.stable;
        basic_next = Some((next.canary, next.stable));
        if !user_paused {
            for (rs, to) in older.iter().zip(next.others.iter()) {
                plan.scale(rs, *to);
            }
        }
    }

    // Abort keeps the canary (traffic routing) for abortScaleDownDelaySeconds once the stable is whole.
    if aborted && routed {
        let delay = canary
            .abort_scale_down_delay_seconds
            .map_or(DEFAULT_ABORT_SCALE_DOWN_DELAY, i64::from);
        let stable_whole = stable_rs.is_some_and(|rs| rs.available >= replicas);
        canary_target = new_rs.spec_replicas;
        if delay > 0 && stable_whole {
            match new_rs.scale_down_deadline {
                None => {
                    plan.actions.push(Action::SetScaleDownDeadline {
                        name: new_rs.name.clone(),
                        deadline: Some(add_secs(now, delay)),
                    });
                    plan.requeue(Duration::from_secs(delay as u64));
                }
                Some(d) if d <= now => canary_target = 0,
                Some(d) => plan.requeue(until(d, now)),
            }
        } else if delay == 0 {
            canary_target = new_rs.spec_replicas;
        }
        if canary.abort_scale_down_delay_seconds.is_some_and(|d| d < 0) {
            canary_target = 0;
        }
        stable_target = replicas;
    } else if new_rs.scale_down_deadline.is_some() {
        // Desired again (retry, fast rollback): no longer due for scale-down.
        plan.actions.push(Action::SetScaleDownDeadline {
            name: new_rs.name.clone(),
            deadline: None,
        });
    }

    if !user_paused {
        let (canary_now, stable_now) = basic_next.unwrap_or((canary_target, stable_target));
        if let Some(stable_rs) = stable_rs.filter(|_| !fully_promoted) {
            plan.scale(stable_rs, stable_now);
        }
        plan.scale(new_rs, canary_now);
    }

    // Older ReplicaSets (traffic routing, or the previous stable after promotion) go after their deadline.
    let scale_down_delay = canary
        .scale_down_delay_seconds
        .map_or(DEFAULT_SCALE_DOWN_DELAY, i64::from);
    for rs in others
        .iter()
        .filter(|rs| (routed || fully_promoted) && rs.hash != stable_hash)
    {
        if rs.spec_replicas == 0 || user_paused {
            continue;
        }
        if !routed || scale_down_delay <= 0 {
            plan.scale(rs, 0);
            continue;
        }
        match rs.scale_down_deadline {
            None => {
                plan.actions.push(Action::SetScaleDownDeadline {
                    name: rs.name.clone(),
                    deadline: Some(add_secs(now, scale_down_delay)),
                });
                plan.requeue(Duration::from_secs(scale_down_delay as u64));
            }
            Some(d) if d <= now => plan.scale(rs, 0),
            Some(d) => plan.requeue(until(d, now)),
        }
    }

    // Services: the canary Service follows the new pods once one is available (the stable ones when aborted);
    // the stable Service follows the stable pods.
    let canary_svc_hash = match &obs.canary_service {
        Some(ServiceState::Selecting(h)) => h.clone(),
        _ => None,
    };
    let stable_svc_hash = match &obs.stable_service {
        Some(ServiceState::Selecting(h)) => h.clone(),
        _ => None,
    };
    if let (Some(name), Some(ServiceState::Selecting(current))) =
        (&canary.stable_service, &obs.stable_service)
        && current.as_deref() != Some(stable_hash.as_str())
        && stable_rs.is_some_and(|rs| rs.available > 0)
    {
        plan.actions.push(Action::SwitchService {
            service: name.clone(),
            from: current.clone(),
            to: stable_hash.clone(),
        });
    }
    let canary_svc_target = if aborted {
        stable_hash.clone()
    } else {
        new_hash.clone()
    };
    let canary_target_ready = if aborted {
        stable_rs.is_some_and(|rs| rs.available > 0)
    } else {
        canary_avail > 0
    };
    if let (Some(name), Some(ServiceState::Selecting(current))) =
        (&canary.canary_service, &obs.canary_service)
        && current.as_deref() != Some(canary_svc_target.as_str())
        && canary_target_ready
    {
        plan.actions.push(Action::SwitchService {
            service: name.clone(),
            from: current.clone(),
            to: canary_svc_target.clone(),
        });
    }
    for (configured, state) in [
        (&canary.stable_service, &obs.stable_service),
        (&canary.canary_service, &obs.canary_service),
    ] {
        if let (Some(name), Some(ServiceState::Missing)) = (configured, state) {
            plan.warn("ServiceNotFound", format!("Service \"{name}\" not found"));
        }
    }

    // Subset split: the DestinationRule's subsets follow the hashes like the Services do.
    let mut canary_subset_hash = None;
    if let Some(subsets) = &obs.subsets {
        match subsets {
            Ok((canary_now, stable_now)) => {
                canary_subset_hash = canary_now.clone();
                let want_canary = if aborted {
                    stable_hash.clone()
                } else if canary_avail > 0 {
                    new_hash.clone()
                } else {
                    canary_now.clone().unwrap_or_else(|| stable_hash.clone())
                };
                if canary_now.as_deref() != Some(want_canary.as_str())
                    || stable_now.as_deref() != Some(stable_hash.as_str())
                {
                    plan.actions.push(Action::SetSubsets {
                        canary: want_canary,
                        stable: stable_hash.clone(),
                    });
                    plan.event(
                        "UpdatedDestinationRule",
                        "DestinationRule subsets updated".to_string(),
                    );
                }
            }
            Err(e) => plan.warn("TrafficRoutingError", e.clone()),
        }
    }

    // Traffic: never more to the canary than its available pods can take, and only through a canary Service
    // (or subset) that already selects them.
    let mut observed_weight = None;
    if routed {
        match &obs.traffic {
            Some(TrafficState::Weight(w)) => observed_weight = Some(*w),
            Some(TrafficState::Error(e)) => plan.warn("TrafficRoutingError", e.clone()),
            _ => {}
        }
        let wanted = if aborted {
            0
        } else if fully_promoted {
            // Both sides select the same pods once the stable Service (or subset) has switched.
            let stable_switched = match &obs.subsets {
                Some(Ok((_, stable_now))) => stable_now.as_deref() == Some(new_hash.as_str()),
                Some(Err(_)) => false,
                None => stable_svc_hash.as_deref() == Some(new_hash.as_str()),
            };
            if stable_switched {
                0
            } else {
                observed_weight.unwrap_or(0)
            }
        } else {
            step_weight(steps, index)
        };
        let canary_selects_new = match &obs.subsets {
            Some(_) => canary_subset_hash.as_deref() == Some(new_hash.as_str()),
            None => canary_svc_hash.as_deref() == Some(new_hash.as_str()),
        };
        let supported = |w: i32| -> bool {
            w == 0
                || (!aborted && canary_selects_new && canary_avail >= replicas::weight_replicas(w, replicas))
        };
        let weight = if fully_promoted || supported(wanted) {
            wanted
        } else {
            // Hold the current weight if the pods can still take it, else lower it to what they can.
            let held = observed_weight.unwrap_or(0);
            if supported(held) {
                held
            } else if canary_selects_new && replicas > 0 {
                (0..=held).rev().find(|w| supported(*w)).unwrap_or(0)
            } else {
                0
            }
        };
        // The stable side must be able to take the rest. With dynamicStableScale the stable ReplicaSet shrinks as
        // the canary grows, so going back (abort, a lower step) waits for stable pods, lowering the canary's
        // share step by step instead of sending everything to too few stable pods.
        let weight = match stable_rs.filter(|_| !fully_promoted && replicas > 0) {
            Some(stable) => {
                let min_canary = (100 - stable.available * 100 / replicas).max(0);
                if weight < min_canary {
                    weight.max(min_canary.min(observed_weight.unwrap_or(min_canary)))
                } else {
                    weight
                }
            }
            None => weight,
        };
        if !matches!(obs.traffic, Some(TrafficState::Error(_))) && observed_weight != Some(weight) {
            plan.actions.push(Action::SetCanaryWeight { weight });
            plan.event(
                "TrafficWeightUpdated",
                format!(
                    "Traffic weight updated from {} to {weight}",
                    observed_weight.unwrap_or(0)
                ),
            );
        }
    }

    // Step progress.
    let traffic_at = |w: i32| !routed || observed_weight == Some(w);
    if !aborted && !user_paused && !fully_promoted && index < steps.len() {
        let step = &steps[index];
        let canary_ready = new_rs.spec_replicas == canary_target && new_rs.available >= canary_target;
        if let Some(w) = step.set_weight {
            let stable_ready = routed || stable_rs.is_none_or(|rs| rs.spec_replicas == stable_target);
            if canary_ready && stable_ready && traffic_at(w) {
                step_done = true;
            }
        } else if step.set_canary_scale.is_some() {
            step_done |= canary_ready;
        } else if step.analysis.is_some() {
            step_done |= analysis.step_done;
        } else if let Some(route) = &step.set_header_route {
            let name = route.name.clone().unwrap_or_default();
            let present = obs.managed_routes_present.contains(&name);
            // Applied by the action in this reconcile (the executor reads the route back): the step is done.
            match route.r#match.as_ref().filter(|m| !m.is_empty()) {
                Some(matches) => plan.actions.push(Action::SetHeaderRoute {
                    name,
                    matches: matches.clone(),
                }),
                None if present => plan
                    .actions
                    .push(Action::RemoveManagedRoutes { names: vec![name] }),
                None => {}
            }
            step_done = true;
        } else if let Some(route) = &step.set_mirror_route {
            let present = obs.managed_routes_present.contains(&route.name);
            match route.r#match.as_ref().filter(|m| !m.is_empty()) {
                Some(matches) => plan.actions.push(Action::SetMirrorRoute {
                    name: route.name.clone(),
                    matches: matches.clone(),
                    percentage: route.percentage,
                }),
                None if present => plan.actions.push(Action::RemoveManagedRoutes {
                    names: vec![route.name.clone()],
                }),
                None => {}
            }
            step_done = true;
        } else if let Some(pause) = &step.pause {
            let existing = st
                .pause_conditions
                .as_ref()
                .and_then(|p| p.iter().find(|c| c.reason == CANARY_PAUSE_STEP));
            match (existing, pause.duration.as_ref().and_then(parse_pause_duration)) {
                _ if step_done => {}
                (Some(c), Some(d)) => {
                    let elapsed = seconds_since(&c.start_time, now);
                    if elapsed >= d.as_secs_f64() {
                        step_done = true;
                        st.pause_conditions = None;
                        st.controller_pause = None;
                    } else {
                        plan.requeue(Duration::from_secs_f64(d.as_secs_f64() - elapsed));
                    }
                }
                (Some(_), None) => {}
                (None, Some(d)) if d.is_zero() => step_done = true,
                (None, duration) => {
                    st.pause_conditions = Some(vec![PauseCondition {
                        reason: CANARY_PAUSE_STEP.into(),
                        start_time: now_t.clone(),
                    }]);
                    st.controller_pause = Some(true);
                    plan.event(
                        "RolloutPaused",
                        format!("Rollout is paused ({CANARY_PAUSE_STEP})"),
                    );
                    if let Some(d) = duration {
                        plan.requeue(d);
                    }
                }
            }
        }
        if step_done {
            plan.event(
                "RolloutStepCompleted",
                format!(
                    "Rollout step {}/{} completed ({})",
                    index + 1,
                    steps.len(),
                    describe(step)
                ),
            );
            index += 1;
            st.current_step_index = Some(index as i32);
        }
    }

    // Promotion: every step done, the new ReplicaSet whole and (with a router) all traffic on it.
    if !aborted && !fully_promoted && index >= steps.len() && !user_paused {
        let whole = new_rs.spec_replicas == replicas && new_rs.available >= replicas;
        if whole && traffic_at(100) {
            let how = if st.promote_full == Some(true) {
                "Full promotion requested".to_string()
            } else {
                format!("Completed all {} canary steps", steps.len())
            };
            st.stable_rs = Some(new_hash.clone());
            st.promote_full = None;
            st.current_step_index = (!steps.is_empty()).then_some(steps.len() as i32);
            plan.event(
                "RolloutCompleted",
                format!("Rollout completed update to revision {revision} ({new_hash}): {how}"),
            );
        }
    }

    // Managed routes last only for the update: removed when it is aborted or promoted.
    if (aborted || st.stable_rs.as_deref() == Some(new_hash.as_str()))
        && !obs.managed_routes_present.is_empty()
    {
        plan.actions.push(Action::RemoveManagedRoutes {
            names: obs.managed_routes_present.clone(),
        });
    }

    // Restart: evict pods created before spec.restartAt, stable first, then canary, then older ones, never
    // more unavailable at once than maxUnavailable allows (at least one).
    if restart_pending(ro) && !user_paused && !aborted {
        if obs.pods_to_restart.is_empty() {
            st.restarted_at = spec.restart_at.clone();
            plan.event(
                "RolloutRestarted",
                "Rollout restart completed: every pod was created after restartAt".into(),
            );
        } else {
            let budgets = replicas::resolve_fenceposts(
                canary.max_surge.as_ref(),
                canary.max_unavailable.as_ref(),
                replicas,
            );
            let wanted: i32 = obs.replica_sets.iter().map(|rs| rs.spec_replicas).sum();
            let available: i32 = obs.replica_sets.iter().map(|rs| rs.available).sum();
            let budget = (budgets.max_unavailable.max(1) - (wanted - available)).max(0) as usize;
            let order = |hash: &str| {
                if hash == stable_hash {
                    0
                } else if hash == new_hash {
                    1
                } else {
                    2
                }
            };
            let mut pods = obs.pods_to_restart.clone();
            pods.sort_by_key(|(name, hash)| (order(hash), name.clone()));
            for (name, _) in pods.into_iter().take(budget) {
                plan.actions.push(Action::EvictPod { name });
            }
            plan.requeue(Duration::from_secs(1));
        }
    }

    // ReplicaSets beyond the history limit, oldest first, once scaled down.
    let limit = spec
        .revision_history_limit
        .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)
        .max(0) as usize;
    let mut old: Vec<&&RsInfo> = others
        .iter()
        .filter(|rs| rs.hash != stable_hash && rs.spec_replicas == 0 && rs.replicas == 0)
        .collect();
    old.sort_by_key(|rs| rs.revision);
    let excess = old.len().saturating_sub(limit);
    for rs in old.into_iter().take(excess) {
        plan.actions.push(Action::DeleteReplicaSet {
            name: rs.name.clone(),
        });
    }

    // Traffic weights as the router has them.
    if routed {
        let w = observed_weight.unwrap_or(0);
        let wanted_now = plan.actions.iter().find_map(|a| match a {
            Action::SetCanaryWeight { weight } => Some(*weight),
            _ => None,
        });
        st.canary.get_or_insert_with(Default::default).weights = Some(TrafficWeights {
            canary: WeightDestination {
                weight: w,
                service_name: canary.canary_service.clone(),
                pod_template_hash: Some(new_hash.clone()),
            },
            stable: WeightDestination {
                weight: 100 - w,
                service_name: canary.stable_service.clone(),
                pod_template_hash: Some(stable_hash.clone()),
            },
            additional: None,
            verified: Some(wanted_now.is_none() && observed_weight.is_some()),
        });
    }

    if !aborted {
        let progressing =
            if st.stable_rs.as_deref() == Some(new_hash.as_str()) && new_rs.available >= replicas {
                (
                    "NewReplicaSetAvailable",
                    format!("ReplicaSet \"{}\" has successfully progressed.", new_rs.name),
                )
            } else {
                (
                    "ReplicaSetUpdated",
                    format!("ReplicaSet \"{}\" is progressing.", new_rs.name),
                )
            };
        let previous = status::condition(&conditions, cond::PROGRESSING).cloned();
        let whole = progressing.0 == "NewReplicaSetAvailable";
        // Progress: the new pods, the available pods or the step moved since the last status.
        let available_now: i32 = obs.replica_sets.iter().map(|rs| rs.available).sum();
        let progressed = template_changed
            || observed.updated_replicas != Some(new_rs.replicas)
            || observed.available_replicas != Some(available_now)
            || observed.current_step_index != st.current_step_index;
        // Waiting on a person or a clock is not a lack of progress.
        let waiting = user_paused
            || st.pause_conditions.as_ref().is_some_and(|p| !p.is_empty())
            || (index < steps.len() && (steps[index].pause.is_some() || steps[index].analysis.is_some()));
        let deadline = i64::from(spec.progress_deadline_seconds.unwrap_or(600));
        let since = previous
            .as_ref()
            .and_then(|c| c.last_update_time.as_ref())
            .map(|t| t.0);
        let timed_out =
            !whole && !waiting && !progressed && since.is_some_and(|t| add_secs(t, deadline) <= now);
        let was_timed_out = previous
            .as_ref()
            .is_some_and(|c| c.reason == "ProgressDeadlineExceeded");
        if timed_out || (was_timed_out && !progressed && !whole) {
            if !was_timed_out {
                plan.warn(
                    "ProgressDeadlineExceeded",
                    format!("Rollout revision {revision} has timed out progressing"),
                );
            }
            let message = format!("ReplicaSet \"{}\" has timed out progressing.", new_rs.name);
            set_condition(
                &mut conditions,
                cond::PROGRESSING,
                "False",
                "ProgressDeadlineExceeded",
                &message,
                &now_t,
            );
            if spec.progress_deadline_abort == Some(true) && !fully_promoted {
                st.abort = Some(true);
            }
        } else {
            let keep_retry = previous.as_ref().is_some_and(|c| c.reason == "RolloutRetry") && !whole;
            if !keep_retry {
                set_condition(
                    &mut conditions,
                    cond::PROGRESSING,
                    "True",
                    progressing.0,
                    &progressing.1,
                    &now_t,
                );
            }
            if progressed && let Some(c) = conditions.iter_mut().find(|c| c.r#type == cond::PROGRESSING) {
                c.last_update_time = Some(now_t.clone());
            }
            if !whole && !waiting {
                let from = if progressed { now } else { since.unwrap_or(now) };
                plan.requeue(until(add_secs(from, deadline), now));
            }
        }
    }
    finish(ro, obs, &mut st, conditions, &mut plan, now_t);
    plan
}

fn phase_inputs(ro: &Rollout) -> status::PhaseInputs {
    let restarting = ro.spec.restart_at.as_ref().is_some_and(|r| {
        ro.status
            .as_ref()
            .and_then(|s| s.restarted_at.as_ref())
            .is_none_or(|done| done.0 < r.0)
    });
    status::PhaseInputs {
        replicas: ro.spec.replicas.unwrap_or(1),
        spec_paused: ro.spec.paused == Some(true),
        restarting,
        traffic_routed: ro
            .spec
            .strategy
            .canary
            .as_ref()
            .is_some_and(|c| c.traffic_routing.is_some()),
    }
}

/// Counts, the remaining conditions, phase and message.
fn finish(
    ro: &Rollout,
    obs: &Observed,
    st: &mut RolloutStatus,
    mut conditions: Vec<sluice_crds::rollout::RolloutCondition>,
    plan: &mut Plan,
    now: Time,
) {
    let replicas = ro.spec.replicas.unwrap_or(1);
    let sum = |f: fn(&RsInfo) -> i32| obs.replica_sets.iter().map(f).sum::<i32>();
    let new_rs = obs.replica_sets.iter().find(|rs| rs.hash == obs.desired_hash);
    st.replicas = Some(sum(|rs| rs.replicas));
    st.updated_replicas = Some(new_rs.map_or(0, |rs| rs.replicas));
    st.ready_replicas = Some(sum(|rs| rs.ready));
    st.available_replicas = Some(sum(|rs| rs.available));
    st.hpa_replicas = st.replicas;
    st.selector = ro.spec.selector.as_ref().map(selector_string);
    let available = st.available_replicas.unwrap_or(0);
    let (s, m) = if available >= replicas {
        ("True", "Rollout has minimum availability")
    } else {
        ("False", "Rollout does not have minimum availability")
    };
    set_condition(&mut conditions, cond::AVAILABLE, s, "AvailableReason", m, &now);
    let paused = ro.spec.paused == Some(true) || st.pause_conditions.as_ref().is_some_and(|p| !p.is_empty());
    if paused || status::condition(&conditions, cond::PAUSED).is_some() {
        set_condition(
            &mut conditions,
            cond::PAUSED,
            if paused { "True" } else { "False" },
            "RolloutPaused",
            "Rollout is paused",
            &now,
        );
    }
    let completed = st.stable_rs.is_some() && st.stable_rs == st.current_pod_hash;
    set_condition(
        &mut conditions,
        cond::COMPLETED,
        if completed { "True" } else { "False" },
        "RolloutCompleted",
        "RolloutCompleted",
        &now,
    );
    st.conditions = Some(conditions);
    let (p, m) = status::phase(st, &phase_inputs(ro));
    let healthy = p == "Healthy";
    let mut conditions = st.conditions.take().unwrap_or_default();
    set_condition(
        &mut conditions,
        cond::HEALTHY,
        if healthy { "True" } else { "False" },
        "RolloutHealthy",
        if healthy {
            "Rollout is healthy"
        } else {
            "Rollout is not healthy"
        },
        &now,
    );
    st.conditions = Some(conditions);
    st.phase = Some(p.into());
    st.message = Some(m);
    plan.status = st.clone();
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

/// Pause condition reason of a rollout paused by an inconclusive AnalysisRun.
pub const INCONCLUSIVE_ANALYSIS: &str = "InconclusiveAnalysisRun";

/// What the analysis part of a plan needs besides the observation.
struct AnalysisInputs<'a> {
    steps: &'a [CanaryStep],
    new_hash: &'a str,
    stable_hash: &'a str,
    revision: i64,
    fully_promoted: bool,
    retrying: bool,
    now: &'a Time,
}

/// What the analysis decided.
#[derive(Default)]
struct AnalysisOutcome {
    /// The current step's analysis is done (Successful, or Inconclusive and promoted).
    step_done: bool,
    /// A run failed or errored: the rollout aborts with this reason.
    abort_message: Option<String>,
}

/// A template a step or the background analysis references that does not resolve, as an InvalidSpec message.
fn analysis_refs_invalid(obs: &Observed) -> Option<String> {
    let ro = &obs.rollout;
    let canary = ro.spec.strategy.canary.as_ref()?;
    let mut refs: Vec<(String, &sluice_crds::rollout::RolloutAnalysis)> = Vec::new();
    if let Some(bg) = &canary.analysis {
        refs.push(("spec.strategy.canary.analysis".into(), &bg.analysis));
    }
    for (i, step) in canary.steps.iter().flatten().enumerate() {
        if let Some(a) = &step.analysis {
            refs.push((format!("spec.strategy.canary.steps[{i}].analysis"), a));
        }
    }
    refs.into_iter().find_map(|(path, a)| {
        ra::run_spec(a, ro, "", "", &obs.templates)
            .err()
            .map(|e| format!("{path}: {e}"))
    })
}

fn run_status(run: Option<&RunInfo>, name: &str) -> RolloutAnalysisRunStatus {
    RolloutAnalysisRunStatus {
        name: name.to_string(),
        status: run.map_or(Phase::Pending, |r| r.phase).to_string(),
        message: run.and_then(|r| r.message.clone()),
    }
}

/// Step and background analysis: creates the runs that are due, reads the current ones (Successful → step done,
/// Failed/Error → abort, Inconclusive → pause until promoted), terminates runs that are no longer current and
/// deletes completed runs beyond the history limits.
fn analysis_step(
    obs: &Observed,
    st: &mut RolloutStatus,
    plan: &mut Plan,
    i: &AnalysisInputs,
) -> AnalysisOutcome {
    let ro = &obs.rollout;
    let name = ro.name_any();
    let runs = &obs.analysis_runs;
    let canary = ro.spec.strategy.canary.as_ref();
    let mut out = AnalysisOutcome::default();
    let mut cst = st.canary.clone().unwrap_or_default();
    if i.retrying {
        cst.current_step_analysis_run_status = None;
        cst.current_background_analysis_run_status = None;
    }
    let answered =
        st.controller_pause == Some(true) && st.pause_conditions.as_ref().is_none_or(Vec::is_empty);
    let index = (st.current_step_index.unwrap_or(0).max(0) as usize).min(i.steps.len());
    let active = st.abort != Some(true) && !i.fully_promoted;
    let mut created: Vec<RunInfo> = Vec::new();
    let mut pause = false;

    // Looks at the run a status field names (when it belongs to `base`), or creates one; returns its phase.
    let mut track = |slot: &mut Option<RolloutAnalysisRunStatus>,
                     base: String,
                     kind: &str,
                     analysis: &sluice_crds::rollout::RolloutAnalysis,
                     step: Option<usize>,
                     plan: &mut Plan|
     -> Option<(Phase, Option<String>)> {
        let named = slot
            .as_ref()
            .map(|s| s.name.clone())
            .filter(|n| *n == base || n.strip_prefix(&base).is_some_and(|rest| rest.starts_with('.')));
        let Some(run_name) = named else {
            let spec = ra::run_spec(analysis, ro, i.stable_hash, i.new_hash, &obs.templates).ok()?;
            let mut taken = runs.clone();
            taken.extend(created.iter().cloned());
            let run_name = ra::run_name(&name, i.new_hash, i.revision, step, &taken);
            plan.actions.push(Action::CreateAnalysisRun {
                name: run_name.clone(),
                labels: ra::run_labels(analysis, i.new_hash, step),
                annotations: ra::run_annotations(analysis, i.revision),
                spec: Box::new(spec),
            });
            plan.event(
                "AnalysisRunPending",
                format!("{kind} Analysis Run '{run_name}' Status New: 'Pending' Previous: ''"),
            );
            created.push(RunInfo {
                name: run_name.clone(),
                phase: Phase::Pending,
                message: None,
                terminating: false,
                created: 0,
            });
            *slot = Some(run_status(None, &run_name));
            return Some((Phase::Pending, None));
        };
        let run = runs.iter().find(|r| r.name == run_name);
        let next = run_status(run, &run_name);
        let previous = slot.as_ref().map(|s| s.status.clone()).unwrap_or_default();
        if run.is_some() && previous != next.status {
            let phase = Phase::parse(&next.status);
            let message = format!(
                "{kind} Analysis Run '{run_name}' Status New: '{}' Previous: '{previous}'",
                next.status
            );
            if matches!(phase, Phase::Failed | Phase::Error) {
                plan.warn(analysis_reason(phase), message);
            } else {
                plan.event(analysis_reason(phase), message);
            }
        }
        *slot = Some(next);
        run.map(|r| (r.phase, r.message.clone()))
    };

    let step_analysis = i.steps.get(index).and_then(|s| s.analysis.as_ref());
    match step_analysis.filter(|_| active) {
        Some(a) => {
            let base = format!("{name}-{}-{}-{index}", i.new_hash, i.revision);
            match track(
                &mut cst.current_step_analysis_run_status,
                base,
                "Step",
                a,
                Some(index),
                plan,
            ) {
                Some((Phase::Successful, _)) => out.step_done = true,
                Some((Phase::Failed | Phase::Error, message)) => {
                    out.abort_message =
                        Some(message.unwrap_or_else(|| "Step-based analysis phase error/failed".into()));
                }
                Some((Phase::Inconclusive, _)) if answered => out.step_done = true,
                Some((Phase::Inconclusive, _)) => pause = true,
                _ => {}
            }
        }
        None if active || i.fully_promoted => cst.current_step_analysis_run_status = None,
        None => {}
    }
    let background = canary.and_then(|c| c.analysis.as_ref());
    let starting = background.and_then(|b| b.starting_step).unwrap_or(0).max(0) as usize;
    match background.filter(|_| active && index >= starting && out.abort_message.is_none()) {
        Some(b) => {
            let base = format!("{name}-{}-{}", i.new_hash, i.revision);
            match track(
                &mut cst.current_background_analysis_run_status,
                base,
                "Background",
                &b.analysis,
                None,
                plan,
            ) {
                Some((Phase::Failed | Phase::Error, message)) => {
                    out.abort_message =
                        Some(message.unwrap_or_else(|| "Background analysis phase error/failed".into()));
                }
                // Promoted past an inconclusive background run: a new run starts next time.
                Some((Phase::Inconclusive, _)) if answered => {
                    cst.current_background_analysis_run_status = None
                }
                Some((Phase::Inconclusive, _)) => pause = true,
                _ => {}
            }
        }
        None if active || i.fully_promoted => cst.current_background_analysis_run_status = None,
        None => {}
    }

    if let Some(why) = &out.abort_message {
        st.abort = Some(true);
        tracing::debug!(rollout = %name, reason = %why, "analysis aborts the rollout");
    } else if pause && !answered {
        let conditions = st.pause_conditions.get_or_insert_with(Vec::new);
        if !conditions.iter().any(|c| c.reason == INCONCLUSIVE_ANALYSIS) {
            conditions.push(PauseCondition {
                reason: INCONCLUSIVE_ANALYSIS.into(),
                start_time: i.now.clone(),
            });
            st.controller_pause = Some(true);
            plan.event(
                "RolloutPaused",
                format!("Rollout is paused ({INCONCLUSIVE_ANALYSIS})"),
            );
        }
    }

    // Runs that are not current any more stop; completed ones beyond the history limits go.
    let aborting = st.abort == Some(true);
    let current: Vec<&str> = [
        &cst.current_step_analysis_run_status,
        &cst.current_background_analysis_run_status,
    ]
    .into_iter()
    .flatten()
    .map(|s| s.name.as_str())
    .collect();
    for r in runs {
        let keep = !aborting && current.contains(&r.name.as_str());
        if !keep && !r.phase.completed() && !r.terminating {
            plan.actions
                .push(Action::TerminateAnalysisRun { name: r.name.clone() });
        }
    }
    let limits = ro.spec.analysis.as_ref();
    let ok = limits
        .and_then(|l| l.successful_run_history_limit)
        .unwrap_or(ra::DEFAULT_RUN_HISTORY);
    let bad = limits
        .and_then(|l| l.unsuccessful_run_history_limit)
        .unwrap_or(ra::DEFAULT_RUN_HISTORY);
    for name in ra::runs_to_delete(runs, &current, ok, bad) {
        plan.actions.push(Action::DeleteAnalysisRun { name });
    }
    if cst != st.canary.clone().unwrap_or_default() {
        st.canary = Some(cst);
    }
    out
}

fn analysis_reason(phase: Phase) -> &'static str {
    match phase {
        Phase::Pending => "AnalysisRunPending",
        Phase::Running => "AnalysisRunRunning",
        Phase::Successful => "AnalysisRunSuccessful",
        Phase::Failed => "AnalysisRunFailed",
        Phase::Error => "AnalysisRunError",
        Phase::Inconclusive => "AnalysisRunInconclusive",
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
