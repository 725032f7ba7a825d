//! Progress and status: the Progressing condition and the progress deadline, the replica counts, the
//! Available, Paused, Completed and Healthy conditions, and the phase and message as upstream computes them.

use k8s_openapi::jiff::Timestamp;
use sluice_crds::rollout::{Rollout, RolloutStatus};

use super::{
    lifecycle::Update,
    plan::{Draft, Facts, Mode, Observed, Plan, RsInfo, add_secs, restart_pending, selector_string, until},
    status::{self, REPLICA_SET_CREATE_ERROR, cond},
};

/// A feature Sluice does not run: the UnsupportedFeature condition and a warning event (once per message),
/// no action, so nothing already running is touched, and the phase the status already implies.
pub(super) fn unsupported(obs: &Observed, mut d: Draft, feature: String) -> Plan {
    if d.get_condition(cond::UNSUPPORTED)
        .is_none_or(|c| c.message != feature)
    {
        tracing::warn!(rollout = %obs.rollout.metadata.name.as_deref().unwrap_or_default(), "{feature}");
        d.out.warn(cond::UNSUPPORTED, feature.clone());
    }
    d.condition(cond::UNSUPPORTED, "True", cond::UNSUPPORTED, &feature);
    finish(obs, d)
}

/// Upstream's message when the API server refuses the new ReplicaSet.
pub fn replica_set_create_message(ro: &Rollout, hash: &str, error: &str) -> String {
    format!(
        "Failed to create new replica set \"{}-{hash}\": {error}",
        ro.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The status after the API server refused the new ReplicaSet: the observed status with the desired hash,
/// Progressing False ReplicaSetCreateError and the phase that follows. Nothing else moves, so a first deploy
/// stays a first deploy.
pub fn replica_set_create_error(ro: &Rollout, hash: &str, error: &str, now: Timestamp) -> RolloutStatus {
    let mut d = Draft::for_rollout(ro, now);
    d.st.current_pod_hash = Some(hash.to_string());
    let message = replica_set_create_message(ro, hash, error);
    d.condition(cond::PROGRESSING, "False", REPLICA_SET_CREATE_ERROR, &message);
    d.st.conditions = Some(std::mem::take(&mut d.conditions));
    let (p, m) = status::phase(&d.st, &phase_inputs(ro));
    d.st.phase = Some(p.into());
    d.st.message = Some(m);
    d.st
}

/// The InvalidSpec condition (and a warning event when its message is new), and no other action.
pub(super) fn invalid_spec(ro: &Rollout, mut d: Draft, message: String) -> Plan {
    if d.get_condition(cond::INVALID_SPEC)
        .is_none_or(|c| c.message != message)
    {
        d.out.warn("InvalidSpec", message.clone());
    }
    d.condition(cond::INVALID_SPEC, "True", "InvalidSpec", &message);
    d.st.conditions = Some(std::mem::take(&mut d.conditions));
    let (p, m) = status::phase(&d.st, &phase_inputs(ro));
    d.st.phase = Some(p.into());
    d.st.message = Some(m);
    d.out.status = d.st;
    d.out
}

/// The Progressing condition: progressing, successfully progressed, or timed out (progressDeadlineSeconds),
/// which aborts the update with progressDeadlineAbort. Waiting on a person or a clock is not a lack of progress.
pub(super) fn progressing(obs: &Observed, f: &Facts, mode: &Mode, update: &Update, d: &mut Draft) {
    if mode.aborted {
        return;
    }
    let spec = &f.ro.spec;
    let new_rs = f.new_rs;
    let whole = d.st.stable_rs.as_deref() == Some(f.new_hash.as_str()) && new_rs.available >= f.replicas;
    let (reason, message) = if whole {
        (
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{}\" has successfully progressed.", new_rs.name),
        )
    } else {
        (
            status::REPLICA_SET_UPDATED,
            format!("ReplicaSet \"{}\" is progressing.", new_rs.name),
        )
    };
    let previous = d.get_condition(cond::PROGRESSING).cloned();
    // A paused rollout is neither progressing nor late: Unknown, as upstream's checkPausedConditions writes it.
    if spec.paused == Some(true) || d.st.pause_conditions.as_ref().is_some_and(|p| !p.is_empty()) {
        if previous.as_ref().is_none_or(|c| c.reason != "RolloutAborted") {
            d.condition(cond::PROGRESSING, "Unknown", "RolloutPaused", "Rollout is paused");
        }
        return;
    }
    // Progress: the new pods, the available pods or the step moved since the last status.
    let observed = obs.rollout.status.clone().unwrap_or_default();
    let available_now: i32 = obs.replica_sets.iter().map(|rs| rs.available).sum();
    let progressed = update.template_changed
        || observed.updated_replicas != Some(new_rs.replicas)
        || observed.available_replicas != Some(available_now)
        || observed.current_step_index != d.st.current_step_index;
    let index = (d.st.current_step_index.unwrap_or(0).max(0) as usize).min(f.steps.len());
    let waiting = f.user_paused
        || d.st.pause_conditions.as_ref().is_some_and(|p| !p.is_empty())
        || f.steps
            .get(index)
            .is_some_and(|s| s.pause.is_some() || s.analysis.is_some() || s.experiment.is_some());
    let deadline = i64::from(spec.progress_deadline_seconds.unwrap_or(600));
    let since = previous
        .as_ref()
        .and_then(|c| c.last_update_time.as_ref())
        .map(|t| t.0);
    let now = d.now;
    let timed_out = !whole && !waiting && !progressed && since.is_some_and(|t| add_secs(t, deadline) <= now);
    let was_timed_out = previous
        .as_ref()
        .is_some_and(|c| c.reason == "ProgressDeadlineExceeded");
    if timed_out || (was_timed_out && !progressed && !whole) {
        if !was_timed_out {
            d.out.warn(
                "ProgressDeadlineExceeded",
                format!("Rollout revision {} has timed out progressing", f.revision),
            );
        }
        let message = format!("ReplicaSet \"{}\" has timed out progressing.", new_rs.name);
        d.condition(cond::PROGRESSING, "False", "ProgressDeadlineExceeded", &message);
        if spec.progress_deadline_abort == Some(true) && !f.fully_promoted {
            d.st.abort = Some(true);
        }
        return;
    }
    // Unknown while the rollout waits on a retry or a resume, until it progresses again.
    let reason_was = |r: &str| previous.as_ref().is_some_and(|c| c.reason == r);
    let keep_unknown = !whole && (reason_was("RolloutRetry") || reason_was("RolloutResumed") && !progressed);
    let resumed = reason_was("RolloutPaused") && !whole && !progressed;
    if resumed {
        d.condition(
            cond::PROGRESSING,
            "Unknown",
            "RolloutResumed",
            "Rollout is resumed",
        );
    } else if !keep_unknown {
        d.condition(cond::PROGRESSING, "True", reason, &message);
    }
    let time = d.time();
    if progressed && let Some(c) = d.conditions.iter_mut().find(|c| c.r#type == cond::PROGRESSING) {
        c.last_update_time = Some(time);
    }
    if !whole && !waiting {
        let from = if progressed { now } else { since.unwrap_or(now) };
        d.out.requeue(until(add_secs(from, deadline), now));
    }
}

/// Blue-green counts: ready, available, HPA replicas and selector are the active ReplicaSet's (all
/// ReplicaSets' before there is one). Returns whether the active ReplicaSet is saturated.
fn blue_green_counts(obs: &Observed, st: &mut sluice_crds::rollout::RolloutStatus, replicas: i32) -> bool {
    let active = st.blue_green.as_ref().and_then(|b| b.active_selector.clone());
    let Some(rs) = active.and_then(|h| obs.replica_sets.iter().find(|rs| rs.hash == h)) else {
        return false;
    };
    st.hpa_replicas = Some(rs.replicas);
    st.available_replicas = Some(rs.available);
    st.ready_replicas = Some(rs.ready);
    let mut selector = obs.rollout.spec.selector.clone().unwrap_or_default();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(super::HASH_LABEL.into(), rs.hash.clone());
    st.selector = Some(selector_string(&selector));
    rs.spec_replicas == replicas && rs.available >= replicas
}

fn phase_inputs(ro: &Rollout) -> status::PhaseInputs {
    status::PhaseInputs {
        replicas: ro.spec.replicas.unwrap_or(1),
        spec_paused: ro.spec.paused == Some(true),
        restarting: restart_pending(ro),
        traffic_routed: ro
            .spec
            .strategy
            .canary
            .as_ref()
            .is_some_and(|c| c.traffic_routing.is_some()),
    }
}

/// Counts, the remaining conditions, phase and message; the plan with its status.
pub(super) fn finish(obs: &Observed, mut d: Draft) -> Plan {
    let ro = &obs.rollout;
    let replicas = ro.spec.replicas.unwrap_or(1);
    let sum = |f: fn(&RsInfo) -> i32| obs.replica_sets.iter().map(f).sum::<i32>();
    let new_rs = obs.replica_sets.iter().find(|rs| rs.hash == obs.desired_hash);
    let st = &mut d.st;
    st.replicas = Some(sum(|rs| rs.replicas));
    st.updated_replicas = Some(new_rs.map_or(0, |rs| rs.replicas));
    st.ready_replicas = Some(sum(|rs| rs.ready));
    st.available_replicas = Some(sum(|rs| rs.available));
    st.hpa_replicas = st.replicas;
    st.selector = ro.spec.selector.as_ref().map(selector_string);
    let mut available_ok = st.available_replicas.unwrap_or(0) >= replicas;
    if ro.spec.strategy.blue_green.is_some() {
        available_ok = blue_green_counts(obs, st, replicas);
    }
    let (s, m) = if available_ok {
        ("True", "Rollout has minimum availability")
    } else {
        ("False", "Rollout does not have minimum availability")
    };
    d.condition(cond::AVAILABLE, s, "AvailableReason", m);
    let paused =
        ro.spec.paused == Some(true) || d.st.pause_conditions.as_ref().is_some_and(|p| !p.is_empty());
    // Leaving a pause (the user's spec.paused, a timed pause step, a promotion) is recorded as upstream does.
    let was_paused = d.get_condition(cond::PAUSED).is_some_and(|c| c.status == "True");
    let resumed_now = d.out.events.iter().any(|e| e.reason == "RolloutResumed");
    if was_paused && !paused && !resumed_now && d.st.aborted_at.is_none() {
        d.out.event("RolloutResumed", "Rollout is resumed".into());
    }
    if paused || d.get_condition(cond::PAUSED).is_some() {
        d.condition(
            cond::PAUSED,
            if paused { "True" } else { "False" },
            "RolloutPaused",
            "Rollout is paused",
        );
    }
    let completed = d.st.stable_rs.is_some() && d.st.stable_rs == d.st.current_pod_hash;
    d.condition(
        cond::COMPLETED,
        if completed { "True" } else { "False" },
        "RolloutCompleted",
        "RolloutCompleted",
    );
    d.st.conditions = Some(std::mem::take(&mut d.conditions));
    let blue_green = ro
        .spec
        .strategy
        .blue_green
        .as_ref()
        .map(|bg| status::BlueGreenPhase {
            post_promotion_analysis: bg.post_promotion_analysis.is_some(),
        });
    let (p, m) = status::phase_of(&d.st, &phase_inputs(ro), blue_green.as_ref());
    // A blue-green rollout is healthy once the preview Service, too, selects the current pods.
    let preview_current = ro.spec.strategy.blue_green.as_ref().is_none_or(|bg| {
        bg.preview_service.is_none()
            || d.st.blue_green.as_ref().and_then(|b| b.preview_selector.as_ref())
                == d.st.current_pod_hash.as_ref()
    });
    let healthy = p == "Healthy" && preview_current;
    d.conditions = d.st.conditions.take().unwrap_or_default();
    d.condition(
        cond::HEALTHY,
        if healthy { "True" } else { "False" },
        "RolloutHealthy",
        if healthy {
            "Rollout is healthy"
        } else {
            "Rollout is not healthy"
        },
    );
    d.st.conditions = Some(d.conditions);
    d.st.phase = Some(p.into());
    d.st.message = Some(m);
    d.out.status = d.st;
    d.out
}
