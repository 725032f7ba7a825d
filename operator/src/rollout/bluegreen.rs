//! The blue-green strategy: the new ReplicaSet comes up beside the active one (at previewReplicaCount until
//! promoted), the preview Service selects it once it is fully available, the rollout pauses for promotion
//! when asked to (autoPromotionEnabled false, autoPromotionSeconds), the active Service switches once the new
//! ReplicaSet is saturated and the pre-promotion analysis passed, and the new ReplicaSet becomes stable once
//! the post-promotion analysis passed. The previous active ReplicaSet is scaled down after scaleDownDelaySeconds.

use std::time::Duration;

use sluice_crds::rollout::{BlueGreenStrategy, PauseCondition, RolloutStatus};

use super::{
    lifecycle,
    plan::{
        BLUE_GREEN_PAUSE, DEFAULT_ABORT_SCALE_DOWN_DELAY, DEFAULT_SCALE_DOWN_DELAY, Draft, Facts,
        INCONCLUSIVE_ANALYSIS, Mode, Observed, RsInfo, ServiceState, add_secs, seconds_since, until,
    },
    runs::AnalysisOutcome,
};

fn strategy<'a>(f: &Facts<'a>) -> &'a BlueGreenStrategy {
    f.ro.spec
        .strategy
        .blue_green
        .as_ref()
        .expect("validated: blue-green strategy")
}

fn selector(state: &Option<ServiceState>) -> Option<String> {
    match state {
        Some(ServiceState::Selecting(h)) => h.clone(),
        _ => None,
    }
}

/// The hash the active Service selects now.
pub(super) fn active_selector(obs: &Observed) -> Option<String> {
    selector(&obs.stable_service)
}

/// The size the new ReplicaSet should have now (upstream `NewRSNewReplicas`): previewReplicaCount until the
/// rollout is promoted (or the preview was scaled up), the full size otherwise.
pub(super) fn desired_new_replicas(obs: &Observed, f: &Facts, st: &RolloutStatus) -> i32 {
    let Some(preview) = strategy(f).preview_replica_count else {
        return f.replicas;
    };
    let active = active_selector(obs);
    let active_rs = active
        .as_deref()
        .and_then(|h| obs.replica_sets.iter().find(|rs| rs.hash == h));
    if active_rs.is_none_or(|rs| rs.hash == f.new_hash) || st.promote_full == Some(true) {
        return f.replicas;
    }
    let paused = f.user_paused || st.pause_conditions.as_ref().is_some_and(|p| !p.is_empty());
    let checkpoint = st
        .blue_green
        .as_ref()
        .and_then(|b| b.scale_up_preview_check_point)
        == Some(true);
    if !paused && checkpoint {
        f.replicas
    } else {
        preview
    }
}

/// The new ReplicaSet runs its desired size and every pod of it is available.
pub(super) fn ready_for_pause(obs: &Observed, f: &Facts, st: &RolloutStatus) -> bool {
    let want = desired_new_replicas(obs, f, st);
    want > 0 && f.new_rs.spec_replicas == want && f.new_rs.available >= want
}

/// The new ReplicaSet runs the Rollout's full size, all available.
pub(super) fn saturated(f: &Facts) -> bool {
    f.replicas > 0 && f.new_rs.spec_replicas == f.replicas && f.new_rs.available >= f.replicas
}

/// The update skips the pause and the analysis: a full promotion, a rollback to a ReplicaSet still within its
/// scale-down delay, a first cutover (the active Service selects no hash yet), or one already done.
fn fast_tracked(obs: &Observed, f: &Facts, st: &RolloutStatus) -> bool {
    let active = active_selector(obs);
    f.fully_promoted
        || st.promote_full == Some(true)
        || f.new_rs.scale_down_deadline.is_some()
        || active.as_deref().is_none_or(|a| a == f.new_hash)
}

/// The blue-green part of a reconcile.
pub(super) fn plan(obs: &Observed, f: &Facts, mode: &Mode, analysis: &AnalysisOutcome, d: &mut Draft) {
    let bg = strategy(f);
    // Blue-green now: nothing canary to report.
    d.st.canary = None;
    if !f.user_paused {
        scale(obs, f, mode, bg, d);
    }
    let preview = preview_service(obs, f, bg, d);
    let pause_done = pause(obs, f, mode, bg, analysis, d);
    let active = active_service(obs, f, mode, bg, pause_done && analysis.pre_promotion_done, d);
    let bst = d.st.blue_green.get_or_insert_with(Default::default);
    bst.active_selector = active.clone();
    bst.preview_selector = preview;
    if active.as_deref() == Some(f.new_hash.as_str())
        && !mode.aborted
        && !f.fully_promoted
        && (analysis.post_promotion_done || d.st.promote_full == Some(true))
    {
        promote(f, d);
    } else if f.fully_promoted {
        d.st.blue_green
            .get_or_insert_with(Default::default)
            .scale_up_preview_check_point = None;
    } else {
        let checkpoint = scale_up_checkpoint(obs, f, mode, pause_done && analysis.pre_promotion_done);
        d.st.blue_green
            .get_or_insert_with(Default::default)
            .scale_up_preview_check_point = checkpoint.then_some(true);
    }
}

/// status.blueGreen.scaleUpPreviewCheckPoint: once the preview was promoted (pause done, pre-promotion analysis
/// passed) at its preview size, it stays scaled up until the update ends.
fn scale_up_checkpoint(obs: &Observed, f: &Facts, mode: &Mode, promoted: bool) -> bool {
    let Some(preview) = strategy(f).preview_replica_count else {
        return false;
    };
    let previous = obs
        .rollout
        .status
        .as_ref()
        .and_then(|s| s.blue_green.as_ref())
        .and_then(|b| b.scale_up_preview_check_point)
        == Some(true);
    if previous && !f.template_changed {
        return true;
    }
    promoted && !mode.aborted && f.new_rs.available >= preview
}

/// The ReplicaSets: the stable (active) one whole, the new one at its desired size (kept for
/// abortScaleDownDelaySeconds after an abort), and the others scaled down after scaleDownDelaySeconds,
/// beyond scaleDownDelayRevisionLimit at once.
fn scale(obs: &Observed, f: &Facts, mode: &Mode, bg: &BlueGreenStrategy, d: &mut Draft) {
    let active = active_selector(obs);
    if let Some(stable) = f.stable_rs.filter(|_| !f.fully_promoted) {
        if stable.scale_down_deadline.is_some() {
            lifecycle::clear_scale_down_deadline(stable, d);
        }
        d.out.scale(stable, f.replicas);
    }
    let want = if mode.aborted {
        let delay = bg.abort_scale_down_delay_seconds;
        lifecycle::aborted_target(f, delay, DEFAULT_ABORT_SCALE_DOWN_DELAY, d)
    } else {
        if f.new_rs.scale_down_deadline.is_some() {
            lifecycle::clear_scale_down_deadline(f.new_rs, d);
        }
        desired_new_replicas(obs, f, &d.st)
    };
    d.out.scale(f.new_rs, want);
    // Older ReplicaSets not selected by a Service, newest first.
    let preview = selector(&obs.canary_service);
    let stale: Vec<&RsInfo> = f
        .others
        .iter()
        .copied()
        .filter(|rs| rs.hash != f.stable_hash)
        .filter(|rs| {
            active.as_deref() != Some(rs.hash.as_str()) && preview.as_deref() != Some(rs.hash.as_str())
        })
        .filter(|rs| rs.spec_replicas > 0)
        .collect();
    // An inconclusive analysis may still be promoted: the previous version stays up meanwhile.
    let inconclusive =
        d.st.pause_conditions
            .iter()
            .flatten()
            .any(|c| c.reason == INCONCLUSIVE_ANALYSIS);
    if inconclusive {
        return;
    }
    let delay = bg
        .scale_down_delay_seconds
        .map_or(DEFAULT_SCALE_DOWN_DELAY, i64::from);
    lifecycle::scale_down_old(stale, delay, bg.scale_down_delay_revision_limit, d);
}

/// The preview Service selects the new pods once the new ReplicaSet is fully available at its desired size.
/// Returns the hash it selects after this reconcile.
fn preview_service(obs: &Observed, f: &Facts, bg: &BlueGreenStrategy, d: &mut Draft) -> Option<String> {
    let name = bg.preview_service.as_ref()?;
    let current = match &obs.canary_service {
        Some(ServiceState::Selecting(h)) => h.clone(),
        _ => {
            d.out
                .warn("ServiceNotFound", format!("Service \"{name}\" not found"));
            return None;
        }
    };
    if f.user_paused || current.as_deref() == Some(f.new_hash.as_str()) || !ready_for_pause(obs, f, &d.st) {
        return current;
    }
    d.out.switch(name, current, &f.new_hash);
    Some(f.new_hash.clone())
}

/// The promotion pause (BlueGreenPause): added once the preview is ready and the pre-promotion analysis passed
/// when autoPromotionEnabled is false (until the user promotes) or autoPromotionSeconds is set (until they
/// pass). Returns whether the pause is done (or not needed).
fn pause(
    obs: &Observed,
    f: &Facts,
    mode: &Mode,
    bg: &BlueGreenStrategy,
    analysis: &AnalysisOutcome,
    d: &mut Draft,
) -> bool {
    let needs_pause =
        bg.auto_promotion_enabled == Some(false) || bg.auto_promotion_seconds.is_some_and(|s| s > 0);
    let checkpoint =
        d.st.blue_green
            .as_ref()
            .and_then(|b| b.scale_up_preview_check_point)
            == Some(true);
    if fast_tracked(obs, f, &d.st) || checkpoint || !needs_pause || mode.resumed {
        remove_pause(d);
        return true;
    }
    if mode.aborted || f.user_paused || !ready_for_pause(obs, f, &d.st) || !analysis.pre_promotion_done {
        return false;
    }
    let existing =
        d.st.pause_conditions
            .iter()
            .flatten()
            .find(|c| c.reason == BLUE_GREEN_PAUSE)
            .cloned();
    let Some(condition) = existing else {
        let start_time = d.time();
        d.st.pause_conditions
            .get_or_insert_with(Vec::new)
            .push(PauseCondition {
                reason: BLUE_GREEN_PAUSE.into(),
                start_time,
            });
        d.st.controller_pause = Some(true);
        d.out
            .event("RolloutPaused", format!("Rollout is paused ({BLUE_GREEN_PAUSE})"));
        if let Some(secs) = bg
            .auto_promotion_seconds
            .filter(|s| *s > 0 && bg.auto_promotion_enabled != Some(false))
        {
            d.out.requeue(Duration::from_secs(secs as u64));
        }
        return false;
    };
    match bg
        .auto_promotion_seconds
        .filter(|s| *s > 0 && bg.auto_promotion_enabled != Some(false))
    {
        Some(secs) if seconds_since(&condition.start_time, d.now) >= f64::from(secs) => {
            remove_pause(d);
            true
        }
        Some(secs) => {
            d.out
                .requeue(until(add_secs(condition.start_time.0, i64::from(secs)), d.now));
            false
        }
        None => false,
    }
}

fn remove_pause(d: &mut Draft) {
    if let Some(conditions) = d.st.pause_conditions.as_mut() {
        conditions.retain(|c| c.reason != BLUE_GREEN_PAUSE);
        if conditions.is_empty() {
            d.st.pause_conditions = None;
            d.st.controller_pause = None;
        }
    }
}

/// The active Service: to the new pods once they are saturated and promoted (or fast-tracked), back to the
/// stable pods on an abort once they are all available. Returns the hash it selects after this reconcile.
fn active_service(
    obs: &Observed,
    f: &Facts,
    mode: &Mode,
    bg: &BlueGreenStrategy,
    promoted: bool,
    d: &mut Draft,
) -> Option<String> {
    let current = match &obs.stable_service {
        Some(ServiceState::Selecting(h)) => h.clone(),
        _ => {
            d.out.warn(
                "ServiceNotFound",
                format!("Service \"{}\" not found", bg.active_service),
            );
            return None;
        }
    };
    if f.user_paused {
        return current;
    }
    let target = if mode.aborted {
        f.stable_rs
            .filter(|rs| rs.available >= f.replicas)
            .map(|_| f.stable_hash.clone())
    } else if saturated(f) && (fast_tracked(obs, f, &d.st) || promoted) {
        Some(f.new_hash.clone())
    } else {
        None
    };
    match target {
        Some(target) if current.as_deref() != Some(target.as_str()) => {
            d.out.switch(&bg.active_service, current, &target);
            Some(target)
        }
        _ => current,
    }
}

/// The new ReplicaSet becomes stable: pauses and the full-promotion request end with the update.
fn promote(f: &Facts, d: &mut Draft) {
    let how = if d.st.promote_full == Some(true) {
        "Full promotion requested"
    } else {
        "Completed blue-green update"
    };
    d.st.stable_rs = Some(f.new_hash.clone());
    d.st.promote_full = None;
    d.st.pause_conditions = None;
    d.st.controller_pause = None;
    d.st.blue_green
        .get_or_insert_with(Default::default)
        .scale_up_preview_check_point = None;
    d.out.event(
        "RolloutCompleted",
        format!(
            "Rollout completed update to revision {} ({}): {how}",
            f.revision, f.new_hash
        ),
    );
}

#[cfg(test)]
#[path = "bluegreen_tests.rs"]
mod tests;
