//! The revision and ReplicaSet lifecycle both strategies share: a new template starts an update (or is a fast
//! rollback), the desired ReplicaSet is created, ReplicaSets that lost their role are scaled down after their
//! deadline, and those beyond the revision history limit are deleted.

use std::time::Duration;

use kube::ResourceExt;

use super::{
    hash::steps_hash,
    plan::{
        Action, DEFAULT_REVISION_HISTORY_LIMIT, Draft, Facts, Observed, RsInfo, Strategy, add_secs, until,
    },
    status::{NEW_REPLICA_SET_CREATED, REPLICA_SET_CREATE_ERROR, cond},
};

/// What the start of a reconcile learned about the desired template.
pub(super) struct Update {
    /// Hash of the desired template.
    pub new_hash: String,
    /// Its revision: the existing ReplicaSet's, or the next one.
    pub revision: i64,
    /// The template changed since the last reconcile.
    pub template_changed: bool,
    /// The RolloutNotCompleted message, recorded after the new ReplicaSet's creation as upstream does.
    pub not_completed: Option<String>,
}

/// The strategy of a validated Rollout.
pub(super) fn strategy(obs: &Observed) -> Strategy {
    if obs.rollout.spec.strategy.blue_green.is_some() {
        Strategy::BlueGreen
    } else {
        Strategy::Canary
    }
}

fn steps(obs: &Observed) -> &[sluice_crds::rollout::CanaryStep] {
    obs.rollout
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.steps.as_deref())
        .unwrap_or_default()
}

/// A new template starts an update; going back to the stable template is a fast rollback. Changed steps
/// restart the steps. The Rollout's revision annotation follows the desired revision.
pub(super) fn begin_update(obs: &Observed, d: &mut Draft) -> Update {
    let ro = &obs.rollout;
    let steps = steps(obs);
    let new_hash = obs.desired_hash.clone();
    let max_revision = obs.replica_sets.iter().map(|rs| rs.revision).max().unwrap_or(0);
    // A ReplicaSet that runs the desired template again (an undo, a revert in Git) gets the next revision.
    let existing = obs.replica_sets.iter().find(|rs| rs.hash == new_hash);
    let revision = match existing {
        Some(rs) if rs.revision >= max_revision => rs.revision,
        _ => max_revision + 1,
    };
    if let Some(rs) = existing.filter(|rs| rs.revision != revision) {
        d.out.actions.push(Action::SetReplicaSetRevision {
            name: rs.name.clone(),
            revision,
        });
    }
    let st = &mut d.st;
    let template_changed = st.current_pod_hash.as_deref() != Some(new_hash.as_str());
    let mut not_completed = None;
    if template_changed {
        let rollback = st.stable_rs.as_deref() == Some(new_hash.as_str());
        let was_completed = st.current_pod_hash.is_some() && st.stable_rs == st.current_pod_hash;
        d.out.event(
            "RolloutUpdated",
            format!("Rollout updated to revision {revision}"),
        );
        if was_completed && !rollback {
            not_completed = Some(format!(
                "Rollout not completed, started update to revision {revision} ({new_hash})"
            ));
        }
        if rollback {
            d.out.event(
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
        if let Some(bg) = st.blue_green.as_mut() {
            bg.scale_up_preview_check_point = None;
            bg.pre_promotion_analysis_run_status = None;
            bg.post_promotion_analysis_run_status = None;
        }
        if rollback {
            d.out.event("SkipSteps", "Rollback to stable ReplicaSets".into());
            st.current_step_index = (!steps.is_empty()).then_some(steps.len() as i32);
        } else {
            st.current_step_index = (!steps.is_empty()).then_some(0);
        }
    }
    if let Some(canary) = ro.spec.strategy.canary.as_ref() {
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
    }
    let annotated = ro
        .annotations()
        .get(super::REVISION_ANNOTATION)
        .and_then(|r| r.parse::<i64>().ok());
    if annotated != Some(revision) {
        d.out.actions.push(Action::AnnotateRevision { revision });
    }
    Update {
        new_hash,
        revision,
        template_changed,
        not_completed,
    }
}

/// No ReplicaSet runs the desired template yet: create it. The first deploy gets the whole size at once and
/// skips the steps; a later update starts at 0.
pub(super) fn create_new_replica_set(obs: &Observed, update: &Update, d: &mut Draft) {
    let ro = &obs.rollout;
    let steps = steps(obs);
    let new_hash = &update.new_hash;
    let revision = update.revision;
    let initial = d.st.stable_rs.is_none() && obs.replica_sets.is_empty();
    let replicas = ro.spec.replicas.unwrap_or(1);
    d.out.actions.push(Action::CreateReplicaSet {
        hash: new_hash.clone(),
        replicas: if initial { replicas } else { 0 },
        revision,
    });
    d.out.event(
        "NewReplicaSetCreated",
        format!(
            "Created ReplicaSet {}-{new_hash} (revision {revision})",
            ro.name_any()
        ),
    );
    if initial && replicas > 0 {
        // Upstream creates the ReplicaSet empty and scales it at once; the event says so.
        d.out.event(
            "ScalingReplicaSet",
            format!(
                "Scaled up ReplicaSet {}-{new_hash} (revision {revision}) from 0 to {replicas}",
                ro.name_any()
            ),
        );
    }
    if let Some(message) = update.not_completed.clone() {
        d.out.event("RolloutNotCompleted", message);
    }
    // A template the API server refused keeps its condition while the creation is tried again.
    let rs_name = format!("\"{}-{new_hash}\"", ro.name_any());
    let refused = d
        .get_condition(cond::PROGRESSING)
        .is_some_and(|c| c.reason == REPLICA_SET_CREATE_ERROR && c.message.contains(&rs_name));
    if !refused {
        d.condition(
            cond::PROGRESSING,
            "True",
            NEW_REPLICA_SET_CREATED,
            &format!("Created new replica set {rs_name}"),
        );
    }
    if initial {
        d.out.event(
            "RolloutCompleted",
            format!("Rollout completed update to revision {revision} ({new_hash}): Initial deploy"),
        );
        d.st.stable_rs = Some(new_hash.clone());
        d.st.current_step_index = (!steps.is_empty()).then_some(steps.len() as i32);
    }
}

/// The facts every later stage reads, once the desired ReplicaSet exists (None until then). A Rollout with no
/// other ReplicaSet and no stable one yet has the desired one as its stable.
pub(super) fn facts<'a>(obs: &'a Observed, update: &Update, d: &mut Draft) -> Option<Facts<'a>> {
    let ro = &obs.rollout;
    let new_hash = update.new_hash.clone();
    let new_rs = obs.replica_sets.iter().find(|rs| rs.hash == new_hash)?;
    if let Some(message) = update.not_completed.clone() {
        d.out.event("RolloutNotCompleted", message);
    }
    let steps = steps(obs);
    let others: Vec<&RsInfo> = obs.replica_sets.iter().filter(|rs| rs.hash != new_hash).collect();
    if d.st.stable_rs.is_none() && others.is_empty() {
        d.st.stable_rs = Some(new_hash.clone());
        d.st.current_step_index = (!steps.is_empty()).then_some(steps.len() as i32);
    }
    let stable_hash = d.st.stable_rs.clone().unwrap_or_else(|| new_hash.clone());
    let stable_rs = obs.replica_sets.iter().find(|rs| rs.hash == stable_hash);
    Some(Facts {
        ro,
        strategy: strategy(obs),
        replicas: ro.spec.replicas.unwrap_or(1),
        steps,
        fully_promoted: stable_hash == new_hash,
        new_hash,
        revision: update.revision,
        new_rs,
        stable_hash,
        stable_rs,
        others,
        user_paused: ro.spec.paused == Some(true),
        template_changed: update.template_changed,
    })
}

/// ReplicaSets that lost their role (`stale`), scaled down after `delay` seconds; beyond `revision_limit`
/// (scaleDownDelayRevisionLimit, newest first) at once.
pub(super) fn scale_down_old(
    mut stale: Vec<&RsInfo>,
    delay: i64,
    revision_limit: Option<i32>,
    d: &mut Draft,
) {
    stale.retain(|rs| rs.spec_replicas > 0);
    stale.sort_by_key(|rs| std::cmp::Reverse(rs.revision));
    let limit = revision_limit.map_or(usize::MAX, |l| l.max(0) as usize);
    let (kept, extra) = stale.split_at(stale.len().min(limit));
    for rs in extra {
        d.out.scale(rs, 0);
    }
    scale_down_after_delay(kept, delay, d);
}

/// ReplicaSets that lost their role (`stale`), scaled down once their `scale-down-deadline` passes; the
/// deadline is set `delay` seconds from now the first time. A delay of 0 or less scales them down at once.
fn scale_down_after_delay(stale: &[&RsInfo], delay: i64, d: &mut Draft) {
    for rs in stale {
        if rs.spec_replicas == 0 {
            continue;
        }
        if delay <= 0 {
            d.out.scale(rs, 0);
            continue;
        }
        match rs.scale_down_deadline {
            None => {
                d.out.actions.push(Action::SetScaleDownDeadline {
                    name: rs.name.clone(),
                    deadline: Some(add_secs(d.now, delay)),
                });
                d.out.requeue(Duration::from_secs(delay as u64));
            }
            Some(deadline) if deadline <= d.now => d.out.scale(rs, 0),
            Some(deadline) => d.out.requeue(until(deadline, d.now)),
        }
    }
}

/// ReplicaSets beyond the revision history limit, oldest first, once scaled down.
pub(super) fn history_limit(f: &Facts, d: &mut Draft) {
    let limit =
        f.ro.spec
            .revision_history_limit
            .unwrap_or(DEFAULT_REVISION_HISTORY_LIMIT)
            .max(0) as usize;
    let mut old: Vec<&&RsInfo> = f
        .others
        .iter()
        .filter(|rs| rs.hash != f.stable_hash && rs.spec_replicas == 0 && rs.replicas == 0)
        .collect();
    old.sort_by_key(|rs| rs.revision);
    let excess = old.len().saturating_sub(limit);
    for rs in old.into_iter().take(excess) {
        d.out.actions.push(Action::DeleteReplicaSet {
            name: rs.name.clone(),
        });
    }
}

/// A ReplicaSet that is desired again (retry, rollback) is no longer due for scale-down.
pub(super) fn clear_scale_down_deadline(rs: &RsInfo, d: &mut Draft) {
    d.out.actions.push(Action::SetScaleDownDeadline {
        name: rs.name.clone(),
        deadline: None,
    });
}

/// The size of an aborted update's ReplicaSet: kept as it is for the abort delay (`setting` seconds, `default`
/// when unset, 0 keeps it up) counted from the moment the stable ReplicaSet is whole, then 0; a negative
/// setting scales it down at once.
pub(super) fn aborted_target(f: &Facts, setting: Option<i32>, default: i64, d: &mut Draft) -> i32 {
    let new_rs = f.new_rs;
    let delay = setting.map_or(default, i64::from);
    let stable_whole = f.stable_rs.is_some_and(|rs| rs.available >= f.replicas);
    let mut target = new_rs.spec_replicas;
    if delay > 0 && stable_whole {
        match new_rs.scale_down_deadline {
            None => {
                d.out.actions.push(Action::SetScaleDownDeadline {
                    name: new_rs.name.clone(),
                    deadline: Some(add_secs(d.now, delay)),
                });
                d.out.requeue(Duration::from_secs(delay as u64));
            }
            Some(deadline) if deadline <= d.now => target = 0,
            Some(deadline) => d.out.requeue(until(deadline, d.now)),
        }
    }
    if setting.is_some_and(|s| s < 0) {
        target = 0;
    }
    target
}

/// workloadRef.scaleDown: `onsuccess` scales the Deployment to 0 once the Rollout is fully promoted and whole,
/// `progressively` by as many pods as the Rollout has available, `never` (the default) leaves it alone.
pub(super) fn scale_down_workload(obs: &Observed, f: &Facts, d: &mut Draft) {
    let Some(workload) = obs.workload.as_ref() else {
        return;
    };
    let mode =
        f.ro.spec
            .workload_ref
            .as_ref()
            .and_then(|w| w.scale_down.as_deref());
    let promoted = d.st.stable_rs.as_deref() == Some(f.new_hash.as_str());
    let whole = promoted && f.new_rs.available >= f.replicas;
    let want = match mode {
        Some("onsuccess") if whole => 0,
        Some("progressively") => {
            let available: i32 = obs.replica_sets.iter().map(|rs| rs.available).sum();
            // What the Rollout cannot serve yet, never more than the Deployment runs now.
            (f.replicas - available).clamp(0, workload.replicas)
        }
        _ => return,
    };
    if want < workload.replicas {
        d.out.actions.push(Action::ScaleWorkload {
            name: workload.name.clone(),
            replicas: want,
        });
        d.out.event(
            "WorkloadScaledDown",
            format!(
                "Scaled down Deployment {} from {} to {want} (workloadRef.scaleDown: {})",
                workload.name,
                workload.replicas,
                mode.unwrap_or_default()
            ),
        );
    }
}
