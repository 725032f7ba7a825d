//! The AnalysisRuns of a Rollout, planned: the runs that are due are created, the current ones are read
//! (Successful completes what waits on them, Failed/Error aborts, Inconclusive pauses until promoted), runs
//! that are no longer current are terminated, and completed runs beyond the history limits are deleted.

use sluice_analysis::Phase;
use sluice_crds::rollout::{PauseCondition, RolloutAnalysis, RolloutAnalysisRunStatus};

use super::{
    analysis::{self as ra, RunInfo, RunKind},
    plan::{Action, Draft, Facts, INCONCLUSIVE_ANALYSIS, Observed},
    status::cond,
};

/// What the analysis stage decided.
#[derive(Default)]
pub(super) struct AnalysisOutcome {
    /// The current canary step's analysis is done (Successful, or Inconclusive and promoted).
    pub step_done: bool,
    /// A run failed or errored: the rollout aborts with this reason.
    pub abort_message: Option<String>,
    /// Blue-green: the pre-promotion analysis passed (or there is none).
    pub pre_promotion_done: bool,
    /// Blue-green: the post-promotion analysis passed (or there is none).
    pub post_promotion_done: bool,
}

/// The controller instance a Rollout is labelled for, which its runs carry too.
pub(super) fn instance_id(ro: &sluice_crds::rollout::Rollout) -> Option<&str> {
    ro.metadata
        .labels
        .as_ref()?
        .get(crate::scope::INSTANCE_ID_LABEL)
        .map(String::as_str)
}

/// A template an analysis references that does not resolve, as an InvalidSpec message.
pub(super) fn refs_invalid(obs: &Observed) -> Option<String> {
    let ro = &obs.rollout;
    let mut refs: Vec<(String, &RolloutAnalysis)> = Vec::new();
    if let Some(canary) = ro.spec.strategy.canary.as_ref() {
        if let Some(bg) = &canary.analysis {
            refs.push(("spec.strategy.canary.analysis".into(), &bg.analysis));
        }
        for (i, step) in canary.steps.iter().flatten().enumerate() {
            if let Some(a) = &step.analysis {
                refs.push((format!("spec.strategy.canary.steps[{i}].analysis"), a));
            }
        }
    }
    if let Some(bg) = ro.spec.strategy.blue_green.as_ref() {
        if let Some(a) = &bg.pre_promotion_analysis {
            refs.push(("spec.strategy.blueGreen.prePromotionAnalysis".into(), a));
        }
        if let Some(a) = &bg.post_promotion_analysis {
            refs.push(("spec.strategy.blueGreen.postPromotionAnalysis".into(), a));
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

/// Creates and reads the runs of one reconcile; remembers the ones it created so that names do not collide.
struct Tracker<'a> {
    obs: &'a Observed,
    f: &'a Facts<'a>,
    created: Vec<RunInfo>,
}

impl Tracker<'_> {
    /// Looks at the run a status field names (when it belongs to this revision and kind), or creates one;
    /// returns its phase and message.
    fn track(
        &mut self,
        slot: &mut Option<RolloutAnalysisRunStatus>,
        kind: RunKind,
        analysis: &RolloutAnalysis,
        d: &mut Draft,
    ) -> Option<(Phase, Option<String>)> {
        let (obs, f) = (self.obs, self.f);
        let rollout = obs.rollout.metadata.name.clone().unwrap_or_default();
        let base = ra::run_base_name(&rollout, &f.new_hash, f.revision, kind);
        let named = slot
            .as_ref()
            .map(|s| s.name.clone())
            .filter(|n| *n == base || n.strip_prefix(&base).is_some_and(|rest| rest.starts_with('.')));
        let Some(run_name) = named else {
            let spec = ra::run_spec(
                analysis,
                &obs.rollout,
                &f.stable_hash,
                &f.new_hash,
                &obs.templates,
            )
            .ok()?;
            let mut taken = obs.analysis_runs.clone();
            taken.extend(self.created.iter().cloned());
            let run_name = ra::run_name(&rollout, &f.new_hash, f.revision, kind, &taken);
            d.out.actions.push(Action::CreateAnalysisRun {
                name: run_name.clone(),
                labels: ra::run_labels(analysis, &f.new_hash, kind, instance_id(&obs.rollout)),
                annotations: ra::run_annotations(analysis, f.revision),
                spec: Box::new(spec),
            });
            d.out.event(
                "AnalysisRunPending",
                format!(
                    "{} Analysis Run '{run_name}' Status New: 'Pending' Previous: ''",
                    kind.label()
                ),
            );
            self.created.push(RunInfo {
                name: run_name.clone(),
                phase: Phase::Pending,
                message: None,
                terminating: false,
                created: 0,
            });
            *slot = Some(run_status(None, &run_name));
            return Some((Phase::Pending, None));
        };
        let run = obs.analysis_runs.iter().find(|r| r.name == run_name);
        let next = run_status(run, &run_name);
        let previous = slot.as_ref().map(|s| s.status.clone()).unwrap_or_default();
        if run.is_some() && previous != next.status {
            let phase = Phase::parse(&next.status);
            let message = format!(
                "{} Analysis Run '{run_name}' Status New: '{}' Previous: '{previous}'",
                kind.label(),
                next.status
            );
            if matches!(phase, Phase::Failed | Phase::Error) {
                d.out.warn(analysis_reason(phase), message);
            } else {
                d.out.event(analysis_reason(phase), message);
            }
        }
        *slot = Some(next);
        run.map(|r| (r.phase, r.message.clone()))
    }
}

/// How one tracked run bears on the rollout.
enum Verdict {
    /// Still running (or just created).
    Waiting,
    /// Successful, or inconclusive and promoted by the user.
    Passed,
    /// Failed or errored: abort with this reason.
    Abort(String),
    /// Inconclusive: pause until promoted.
    Pause,
}

fn verdict(result: Option<(Phase, Option<String>)>, answered: bool, fallback: &str) -> Verdict {
    match result {
        Some((Phase::Successful, _)) => Verdict::Passed,
        Some((Phase::Failed | Phase::Error, message)) => {
            Verdict::Abort(message.unwrap_or_else(|| fallback.to_string()))
        }
        Some((Phase::Inconclusive, _)) if answered => Verdict::Passed,
        Some((Phase::Inconclusive, _)) => Verdict::Pause,
        _ => Verdict::Waiting,
    }
}

/// The user answered a controller pause: the pause conditions were cleared while controllerPause is set.
pub(super) fn answered(d: &Draft) -> bool {
    d.st.controller_pause == Some(true) && d.st.pause_conditions.as_ref().is_none_or(Vec::is_empty)
}

/// Retrying after an abort: the user set abort back to false.
fn retrying(d: &Draft) -> bool {
    let was_aborted = d
        .get_condition(cond::PROGRESSING)
        .is_some_and(|c| c.reason == "RolloutAborted");
    was_aborted && d.st.abort != Some(true)
}

/// Step and background analysis of a canary.
pub(super) fn canary(obs: &Observed, f: &Facts, d: &mut Draft) -> AnalysisOutcome {
    let mut out = AnalysisOutcome::default();
    let mut cst = d.st.canary.clone().unwrap_or_default();
    if retrying(d) {
        cst.current_step_analysis_run_status = None;
        cst.current_background_analysis_run_status = None;
    }
    let answered = answered(d);
    let index = (d.st.current_step_index.unwrap_or(0).max(0) as usize).min(f.steps.len());
    // A full promotion skips what is left, analysis included.
    let promoting_full = d.st.promote_full == Some(true);
    let active = d.st.abort != Some(true) && !promoting_full && !f.fully_promoted;
    let mut tracker = Tracker {
        obs,
        f,
        created: Vec::new(),
    };
    let mut pause = false;

    let step_analysis = f.steps.get(index).and_then(|s| s.analysis.as_ref());
    match step_analysis.filter(|_| active) {
        Some(a) => {
            let result = tracker.track(
                &mut cst.current_step_analysis_run_status,
                RunKind::Step(index),
                a,
                d,
            );
            match verdict(result, answered, "Step-based analysis phase error/failed") {
                Verdict::Passed => out.step_done = true,
                Verdict::Abort(why) => out.abort_message = Some(why),
                Verdict::Pause => pause = true,
                Verdict::Waiting => {}
            }
        }
        None if active || f.fully_promoted || promoting_full => cst.current_step_analysis_run_status = None,
        None => {}
    }
    let background = obs
        .rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.analysis.as_ref());
    let starting = background.and_then(|b| b.starting_step).unwrap_or(0).max(0) as usize;
    match background.filter(|_| active && index >= starting && out.abort_message.is_none()) {
        Some(b) => {
            let result = tracker.track(
                &mut cst.current_background_analysis_run_status,
                RunKind::Background,
                &b.analysis,
                d,
            );
            let inconclusive = matches!(result, Some((Phase::Inconclusive, _)));
            match verdict(result, answered, "Background analysis phase error/failed") {
                Verdict::Abort(why) => out.abort_message = Some(why),
                // Promoted past an inconclusive background run: a new run starts next time.
                Verdict::Passed if inconclusive => cst.current_background_analysis_run_status = None,
                Verdict::Pause => pause = true,
                _ => {}
            }
        }
        None if active || f.fully_promoted || promoting_full => {
            cst.current_background_analysis_run_status = None
        }
        None => {}
    }
    settle(&out, pause, answered, d);
    let current: Vec<String> = [
        &cst.current_step_analysis_run_status,
        &cst.current_background_analysis_run_status,
    ]
    .into_iter()
    .flatten()
    .map(|s| s.name.clone())
    .collect();
    retire(obs, &current, d);
    if cst != d.st.canary.clone().unwrap_or_default() {
        d.st.canary = Some(cst);
    }
    out
}

/// A failed run aborts the rollout; an inconclusive one pauses it (once) until the user promotes.
fn settle(out: &AnalysisOutcome, pause: bool, answered: bool, d: &mut Draft) {
    if let Some(why) = &out.abort_message {
        d.st.abort = Some(true);
        tracing::debug!(reason = %why, "analysis aborts the rollout");
    } else if pause && !answered {
        let start_time = d.time();
        let conditions = d.st.pause_conditions.get_or_insert_with(Vec::new);
        if !conditions.iter().any(|c| c.reason == INCONCLUSIVE_ANALYSIS) {
            conditions.push(PauseCondition {
                reason: INCONCLUSIVE_ANALYSIS.into(),
                start_time,
            });
            d.st.controller_pause = Some(true);
            d.out.event(
                "RolloutPaused",
                format!("Rollout is paused ({INCONCLUSIVE_ANALYSIS})"),
            );
        }
    }
}

/// Runs that are not current any more (or all of them, when aborting) stop; completed ones beyond the history
/// limits go.
fn retire(obs: &Observed, current: &[String], d: &mut Draft) {
    let aborting = d.st.abort == Some(true);
    let current: Vec<&str> = current.iter().map(String::as_str).collect();
    let runs = &obs.analysis_runs;
    for r in runs {
        let keep = !aborting && current.contains(&r.name.as_str());
        if !keep && !r.phase.completed() && !r.terminating {
            d.out
                .actions
                .push(Action::TerminateAnalysisRun { name: r.name.clone() });
        }
    }
    let limits = obs.rollout.spec.analysis.as_ref();
    let ok = limits
        .and_then(|l| l.successful_run_history_limit)
        .unwrap_or(ra::DEFAULT_RUN_HISTORY);
    let bad = limits
        .and_then(|l| l.unsuccessful_run_history_limit)
        .unwrap_or(ra::DEFAULT_RUN_HISTORY);
    for name in ra::runs_to_delete(runs, &current, ok, bad) {
        d.out.actions.push(Action::DeleteAnalysisRun { name });
    }
}

/// Pre- and post-promotion analysis of a blue-green rollout. The pre-promotion run starts once the preview
/// is fully available at its preview size and gates the active switch; the post-promotion run starts once the
/// active Service selects the new pods and gates the stable promotion. Neither runs while aborted, on a full
/// promotion, on the first deploy or on a rollback to a ReplicaSet still within its scale-down delay.
pub(super) fn blue_green(obs: &Observed, f: &Facts, d: &mut Draft) -> AnalysisOutcome {
    let bg =
        f.ro.spec
            .strategy
            .blue_green
            .as_ref()
            .expect("validated: blue-green strategy");
    let mut out = AnalysisOutcome::default();
    let mut bst = d.st.blue_green.clone().unwrap_or_default();
    if retrying(d) {
        bst.pre_promotion_analysis_run_status = None;
        bst.post_promotion_analysis_run_status = None;
    }
    let answered = answered(d);
    let active = super::bluegreen::active_selector(obs);
    let skip_all = d.st.abort == Some(true)
        || d.st.promote_full == Some(true)
        || f.new_rs.scale_down_deadline.is_some()
        || obs
            .rollout
            .status
            .as_ref()
            .and_then(|s| s.stable_rs.as_ref())
            .is_none();
    let mut tracker = Tracker {
        obs,
        f,
        created: Vec::new(),
    };
    let mut pause = false;
    let mut current = Vec::new();
    let passed = |slot: &Option<RolloutAnalysisRunStatus>| {
        slot.as_ref()
            .is_some_and(|s| Phase::parse(&s.status) == Phase::Successful)
    };

    let skip_pre = skip_all
        || f.fully_promoted
        || active.as_deref().is_none_or(|a| a == f.new_hash)
        || !super::bluegreen::ready_for_pause(obs, f, &d.st);
    out.pre_promotion_done = bg.pre_promotion_analysis.is_none()
        || passed(&bst.pre_promotion_analysis_run_status)
        || active.as_deref() == Some(f.new_hash.as_str());
    if let Some(a) = bg.pre_promotion_analysis.as_ref().filter(|_| !skip_pre) {
        let result = tracker.track(
            &mut bst.pre_promotion_analysis_run_status,
            RunKind::PrePromotion,
            a,
            d,
        );
        match verdict(result, answered, "Pre-promotion analysis phase error/failed") {
            Verdict::Passed => out.pre_promotion_done = true,
            Verdict::Abort(why) => out.abort_message = Some(why),
            Verdict::Pause => pause = true,
            Verdict::Waiting => {}
        }
        current.extend(
            bst.pre_promotion_analysis_run_status
                .iter()
                .map(|s| s.name.clone()),
        );
    }

    let skip_post = skip_all
        || f.fully_promoted
        || active.as_deref() != Some(f.new_hash.as_str())
        || !super::bluegreen::saturated(f);
    out.post_promotion_done =
        bg.post_promotion_analysis.is_none() || passed(&bst.post_promotion_analysis_run_status);
    if let Some(a) = bg.post_promotion_analysis.as_ref().filter(|_| !skip_post) {
        let result = tracker.track(
            &mut bst.post_promotion_analysis_run_status,
            RunKind::PostPromotion,
            a,
            d,
        );
        match verdict(result, answered, "Post-promotion analysis phase error/failed") {
            Verdict::Passed => out.post_promotion_done = true,
            Verdict::Abort(why) => out.abort_message = Some(why),
            Verdict::Pause => pause = true,
            Verdict::Waiting => {}
        }
        current.extend(
            bst.post_promotion_analysis_run_status
                .iter()
                .map(|s| s.name.clone()),
        );
    }
    settle(&out, pause, answered, d);
    retire(obs, &current, d);
    if bst != d.st.blue_green.clone().unwrap_or_default() {
        d.st.blue_green = Some(bst);
    }
    out
}
