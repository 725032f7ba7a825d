//! What users ask through the spec and status, as upstream's clients write it: abort and retry
//! (`status.abort`), full promotion (`status.promoteFull`), the answer to a controller pause (pause conditions
//! cleared), and restarts (`spec.restartAt`).

use std::time::Duration;

use super::{
    plan::{Action, Draft, Facts, Mode, Observed, Strategy, restart_pending},
    replicas,
    status::cond,
};

/// Abort, retry, full promotion and the answer to a controller pause; `analysis_abort` is the reason a failed
/// AnalysisRun gives for aborting in this reconcile.
pub(super) fn actions(f: &Facts, analysis_abort: Option<&str>, d: &mut Draft) -> Mode {
    let steps = f.steps;
    let was_aborted = d
        .get_condition(cond::PROGRESSING)
        .is_some_and(|c| c.reason == "RolloutAborted");
    // A full promotion of an aborted update promotes it: that is all Argo CD's promote-full action sends.
    if d.st.promote_full == Some(true) && !f.fully_promoted {
        d.st.abort = None;
    }
    let aborted = d.st.abort == Some(true) && !f.fully_promoted;
    if was_aborted && !aborted && !f.fully_promoted {
        d.condition(
            cond::PROGRESSING,
            "Unknown",
            "RolloutRetry",
            "Retrying Rollout after abort",
        );
        d.st.aborted_at = None;
    }
    // Full promotion skips what is left.
    if d.st.promote_full == Some(true) && !f.fully_promoted && !aborted {
        d.st.current_step_index = (!steps.is_empty()).then_some(steps.len() as i32);
        d.st.pause_conditions = None;
        d.st.controller_pause = None;
    }
    let mut index = (d.st.current_step_index.unwrap_or(0).max(0) as usize).min(steps.len());
    if aborted {
        abort(f, analysis_abort, d);
        index = 0;
    }
    // The user's answer to a controller pause: conditions cleared while controllerPause is set.
    let resumed = d.st.controller_pause == Some(true)
        && d.st.pause_conditions.as_ref().is_none_or(Vec::is_empty)
        && !aborted;
    if resumed {
        d.st.controller_pause = None;
        d.st.pause_conditions = None;
        d.out.event("RolloutResumed", "Rollout is resumed".into());
    }
    Mode {
        aborted,
        index,
        resumed,
    }
}

/// The aborted state: Degraded with the reason (an analysis' reason is kept on later reconciles), pauses
/// cleared, the steps back at 0, and one RolloutAborted event when the abort starts.
fn abort(f: &Facts, analysis_abort: Option<&str>, d: &mut Draft) {
    let base = format!("Rollout aborted update to revision {}", f.revision);
    let message = match analysis_abort {
        Some(why) => format!("{base}: {why}"),
        None => d
            .get_condition(cond::PROGRESSING)
            .filter(|c| c.reason == "RolloutAborted" && c.message.starts_with(&base))
            .map_or(base.clone(), |c| c.message.clone()),
    };
    if d.st.aborted_at.is_none() {
        d.st.aborted_at = Some(d.time());
        d.out.warn("RolloutAborted", message.clone());
    }
    d.st.pause_conditions = None;
    d.st.controller_pause = None;
    d.st.current_step_index = (!f.steps.is_empty()).then_some(0);
    d.condition(cond::PROGRESSING, "False", "RolloutAborted", &message);
}

/// Restart: evict pods created before spec.restartAt, stable first, then the desired ReplicaSet's, then older
/// ones, never more unavailable at once than maxUnavailable allows (at least one).
pub(super) fn restart(obs: &Observed, f: &Facts, mode: &Mode, d: &mut Draft) {
    let ro = f.ro;
    if !restart_pending(ro) || f.user_paused || mode.aborted {
        return;
    }
    if obs.pods_to_restart.is_empty() {
        d.st.restarted_at = ro.spec.restart_at.clone();
        d.out.event(
            "RolloutRestarted",
            "Rollout restart completed: every pod was created after restartAt".into(),
        );
        return;
    }
    let strategy = &ro.spec.strategy;
    let max_unavailable = match f.strategy {
        Strategy::Canary => strategy.canary.as_ref().and_then(|c| c.max_unavailable.as_ref()),
        Strategy::BlueGreen => strategy
            .blue_green
            .as_ref()
            .and_then(|b| b.max_unavailable.as_ref()),
    };
    let max_surge = strategy.canary.as_ref().and_then(|c| c.max_surge.as_ref());
    let budgets = replicas::resolve_fenceposts(max_surge, max_unavailable, f.replicas);
    let wanted: i32 = obs.replica_sets.iter().map(|rs| rs.spec_replicas).sum();
    let available: i32 = obs.replica_sets.iter().map(|rs| rs.available).sum();
    let budget = (budgets.max_unavailable.max(1) - (wanted - available)).max(0) as usize;
    let order = |hash: &str| {
        if hash == f.stable_hash {
            0
        } else if hash == f.new_hash {
            1
        } else {
            2
        }
    };
    let mut pods = obs.pods_to_restart.clone();
    pods.sort_by_key(|(name, hash)| (order(hash), name.clone()));
    for (name, _) in pods.into_iter().take(budget) {
        d.out.actions.push(Action::EvictPod { name });
    }
    d.out.requeue(Duration::from_secs(1));
}
