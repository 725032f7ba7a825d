//! The Experiments of a canary, planned: at an `experiment` step its Experiment is created and read (Successful
//! completes the step, Failed/Error aborts the rollout, Inconclusive pauses it until promoted), a running one
//! gives its weighted templates their share of traffic, Experiments that are no longer current are terminated,
//! and old ones go by the AnalysisRun history limits.

use sluice_analysis::Phase;
use sluice_crds::rollout::PauseCondition;
use sluice_traffic::Additional;

use super::{
    analysis::DEFAULT_RUN_HISTORY,
    experiment::{self as ex, ExperimentInfo, RsTemplate},
    plan::{Action, Draft, Facts, Observed},
    runs,
};

/// Pause condition reason of a rollout paused by an inconclusive Experiment.
pub const INCONCLUSIVE_EXPERIMENT: &str = "InconclusiveExperiment";

/// What the experiment stage decided.
#[derive(Debug, Default, PartialEq)]
pub(super) struct ExperimentOutcome {
    /// The current step's Experiment is done (Successful, or Inconclusive and promoted).
    pub step_done: bool,
    /// The Experiment failed: the rollout aborts, with its message when it has one.
    pub abort: Option<Option<String>>,
    /// Weights of the running Experiment's weighted templates.
    pub additional: Vec<Additional>,
}

/// The Experiment of the current step (created when missing) and the fate of the others.
pub(super) fn canary(obs: &Observed, f: &Facts, d: &mut Draft) -> ExperimentOutcome {
    let mut out = ExperimentOutcome::default();
    let index = (d.st.current_step_index.unwrap_or(0).max(0) as usize).min(f.steps.len());
    let active = d.st.abort != Some(true) && d.st.promote_full != Some(true) && !f.fully_promoted;
    let step = f.steps.get(index).and_then(|s| s.experiment.as_ref());
    let mut current = None;
    if let Some(step) = step.filter(|_| active) {
        let rollout = obs.rollout.metadata.name.clone().unwrap_or_default();
        let base = ex::base_name(&rollout, &f.new_hash, f.revision, index);
        let recorded = d.st.canary.as_ref().and_then(|c| c.current_experiment.clone());
        // A recorded name of this step is ours even when the cache does not show it yet; a running
        // Experiment of this step found without a record is adopted (the status write was lost).
        let name = recorded.filter(|n| ex::belongs(n, &base)).or_else(|| {
            obs.experiments
                .iter()
                .find(|e| ex::belongs(&e.name, &base) && !e.phase.completed() && !e.terminating)
                .map(|e| e.name.clone())
        });
        let name = match name {
            Some(name) => Some(name),
            None => create(obs, f, step, &base, d),
        };
        if let Some(name) = name {
            current = read(obs, f, step, &name, &mut out, d);
        }
    }
    let recorded = d.st.canary.as_ref().and_then(|c| c.current_experiment.clone());
    if recorded != current {
        d.st.canary
            .get_or_insert_with(Default::default)
            .current_experiment = current.clone();
    }
    retire(obs, current.as_deref(), d);
    out
}

/// Creates the step's Experiment from the canary and stable ReplicaSets (once both exist); returns its name.
fn create(
    obs: &Observed,
    f: &Facts,
    step: &sluice_crds::rollout::RolloutExperimentStep,
    base: &str,
    d: &mut Draft,
) -> Option<String> {
    let template_of = |hash: &str| obs.rs_templates.iter().find(|t| t.hash == hash);
    // Like upstream, nothing is created before the stable ReplicaSet exists.
    let stable: &RsTemplate = template_of(f.stable_rs?.hash.as_str())?;
    let canary: &RsTemplate = template_of(&f.new_hash)?;
    let name = ex::free_name(base, &obs.experiments);
    let built = ex::build(&ex::Sources {
        rollout: &obs.rollout,
        step,
        name: &name,
        revision: f.revision,
        canary,
        stable,
        instance_id: runs::instance_id(&obs.rollout),
    });
    match built {
        Ok(experiment) => {
            d.out.actions.push(Action::CreateExperiment {
                experiment: Box::new(experiment),
            });
            d.out
                .event("ExperimentCreated", format!("Created Experiment '{name}'"));
            Some(name)
        }
        Err(e) => {
            d.out.warn(
                "ExperimentError",
                format!("Experiment '{name}' cannot be built: {e}"),
            );
            None
        }
    }
}

/// Reads the step's Experiment into the outcome; returns the name to keep as current.
fn read(
    obs: &Observed,
    f: &Facts,
    step: &sluice_crds::rollout::RolloutExperimentStep,
    name: &str,
    out: &mut ExperimentOutcome,
    d: &mut Draft,
) -> Option<String> {
    let found = obs.experiments.iter().find(|e| e.name == name);
    match found.map_or(Phase::Pending, |e| e.phase) {
        Phase::Successful => {
            out.step_done = true;
            None
        }
        Phase::Failed | Phase::Error => {
            d.st.abort = Some(true);
            out.abort = Some(found.and_then(|e| e.message.clone()).filter(|m| !m.is_empty()));
            None
        }
        Phase::Inconclusive if runs::answered(d) => {
            out.step_done = true;
            None
        }
        Phase::Inconclusive => {
            pause(d);
            Some(name.to_string())
        }
        Phase::Running => {
            if let Some(e) = found.filter(|_| routed(f)) {
                out.additional = additional(step, e);
            }
            Some(name.to_string())
        }
        Phase::Pending => Some(name.to_string()),
    }
}

fn routed(f: &Facts) -> bool {
    f.ro.spec
        .strategy
        .canary
        .as_ref()
        .is_some_and(|c| c.traffic_routing.is_some())
}

/// The weights of a running Experiment's weighted templates, through the Services it created for them. A
/// template whose Service is not known yet gets nothing: a destination is never written without a host.
pub(super) fn additional(
    step: &sluice_crds::rollout::RolloutExperimentStep,
    e: &ExperimentInfo,
) -> Vec<Additional> {
    step.templates
        .iter()
        .filter_map(|t| {
            let weight = t.weight.filter(|w| *w > 0)?;
            let status = e.templates.iter().find(|s| s.name == t.name)?;
            let service = status.service.clone().filter(|s| !s.is_empty())?;
            Some(Additional {
                service,
                pod_template_hash: status.pod_template_hash.clone().unwrap_or_default(),
                weight,
            })
        })
        .collect()
}

/// An inconclusive Experiment pauses the rollout (once) until the user promotes it.
fn pause(d: &mut Draft) {
    let start_time = d.time();
    let conditions = d.st.pause_conditions.get_or_insert_with(Vec::new);
    if conditions.iter().any(|c| c.reason == INCONCLUSIVE_EXPERIMENT) {
        return;
    }
    conditions.push(PauseCondition {
        reason: INCONCLUSIVE_EXPERIMENT.into(),
        start_time,
    });
    d.st.controller_pause = Some(true);
    d.out.event(
        "RolloutPaused",
        format!("Rollout is paused ({INCONCLUSIVE_EXPERIMENT})"),
    );
}

/// Experiments that are not current stop; old ones go by the AnalysisRun history limits.
fn retire(obs: &Observed, current: Option<&str>, d: &mut Draft) {
    for e in &obs.experiments {
        if Some(e.name.as_str()) != current && !e.phase.completed() && !e.terminating {
            d.out
                .actions
                .push(Action::TerminateExperiment { name: e.name.clone() });
        }
    }
    let limits = obs.rollout.spec.analysis.as_ref();
    let ok = limits
        .and_then(|l| l.successful_run_history_limit)
        .unwrap_or(DEFAULT_RUN_HISTORY);
    let bad = limits
        .and_then(|l| l.unsuccessful_run_history_limit)
        .unwrap_or(DEFAULT_RUN_HISTORY);
    let hashes: Vec<&str> = obs.replica_sets.iter().map(|rs| rs.hash.as_str()).collect();
    for name in ex::to_delete(&obs.experiments, current, &hashes, ok, bad) {
        d.out.actions.push(Action::DeleteExperiment { name });
    }
}

#[cfg(test)]
#[path = "experiment_tests.rs"]
mod tests;
