//! Rollout status as upstream computes it: conditions that keep their transition times, and the phase/message
//! algorithm (`CalculateRolloutPhase`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_crds::rollout::{RolloutCondition, RolloutStatus};

/// Condition types.
pub mod cond {
    /// Whether the rollout is making progress (also the progress-deadline clock).
    pub const PROGRESSING: &str = "Progressing";
    /// Whether enough pods are available.
    pub const AVAILABLE: &str = "Available";
    /// Whether the rollout is paused.
    pub const PAUSED: &str = "Paused";
    /// Whether the rollout is healthy.
    pub const HEALTHY: &str = "Healthy";
    /// Whether the stable ReplicaSet is the desired one.
    pub const COMPLETED: &str = "Completed";
    /// Whether the spec is invalid.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The spec uses a feature Sluice does not run; the rollout is left as it is.
    pub const UNSUPPORTED: &str = "UnsupportedFeature";
}

/// Progressing reason when the API server refuses the new ReplicaSet.
pub const REPLICA_SET_CREATE_ERROR: &str = "ReplicaSetCreateError";
/// Progressing reason when the new ReplicaSet was just created.
pub const NEW_REPLICA_SET_CREATED: &str = "NewReplicaSetCreated";
/// Progressing reason while the new ReplicaSet moves to its size.
pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";

/// The Progressing messages [`phase_of`] reads off the pod counters.
const MORE_TO_UPDATE: &str = "more replicas need to be updated";
const BECOMING_AVAILABLE: &str = "updated replicas are still becoming available";
const OLD_PENDING: &str = "old replicas are pending termination";

/// Sets a condition. The transition time is kept when the status does not change; nothing changes when
/// status, reason and message are all the same (so a reconcile that learns nothing writes nothing).
pub fn set_condition(
    conditions: &mut Vec<RolloutCondition>,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: &Time,
) {
    if let Some(c) = conditions.iter_mut().find(|c| c.r#type == kind) {
        if c.status == status && c.reason == reason && c.message == message {
            return;
        }
        if c.status != status {
            c.last_transition_time = Some(now.clone());
        }
        c.status = status.to_string();
        c.reason = reason.to_string();
        c.message = message.to_string();
        c.last_update_time = Some(now.clone());
        return;
    }
    conditions.push(RolloutCondition {
        r#type: kind.to_string(),
        status: status.to_string(),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
        reason: reason.to_string(),
        message: message.to_string(),
    });
}

/// Removes a condition.
pub fn remove_condition(conditions: &mut Vec<RolloutCondition>, kind: &str) {
    conditions.retain(|c| c.r#type != kind);
}

/// A condition by type.
pub fn condition<'a>(conditions: &'a [RolloutCondition], kind: &str) -> Option<&'a RolloutCondition> {
    conditions.iter().find(|c| c.r#type == kind)
}

/// What the phase algorithm reads besides the status.
pub struct PhaseInputs {
    /// spec.replicas.
    pub replicas: i32,
    /// spec.paused.
    pub spec_paused: bool,
    /// spec.restartAt differs from status.restartedAt.
    pub restarting: bool,
    /// The canary uses a traffic router.
    pub traffic_routed: bool,
}

/// Phase and message of a canary, first match wins (reference §2.1).
pub fn phase(status: &RolloutStatus, inp: &PhaseInputs) -> (&'static str, String) {
    phase_of(status, inp, None)
}

/// What the phase of a blue-green rollout reads besides the status.
pub struct BlueGreenPhase {
    /// spec.strategy.blueGreen.postPromotionAnalysis is set.
    pub post_promotion_analysis: bool,
}

/// Phase and message, first match wins (reference §2.1); `blue_green` for a blue-green rollout.
pub fn phase_of(
    status: &RolloutStatus,
    inp: &PhaseInputs,
    blue_green: Option<&BlueGreenPhase>,
) -> (&'static str, String) {
    let conditions = status.conditions.as_deref().unwrap_or_default();
    if let Some(c) = condition(conditions, cond::INVALID_SPEC) {
        return ("Degraded", format!("InvalidSpec: {}", c.message));
    }
    for c in conditions {
        // A template the API server refuses never progresses: Degraded too, with the reason (unlike upstream,
        // which keeps retrying as Progressing).
        if c.reason == "RolloutAborted"
            || c.reason == "ProgressDeadlineExceeded"
            || c.reason == REPLICA_SET_CREATE_ERROR
        {
            return ("Degraded", format!("{}: {}", c.reason, c.message));
        }
    }
    if inp.spec_paused {
        return ("Paused", "manually paused".into());
    }
    if let Some(first) = status.pause_conditions.as_ref().and_then(|p| p.first()) {
        return ("Paused", first.reason.clone());
    }
    if inp.restarting {
        return ("Progressing", "rollout is restarting".into());
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < inp.replicas {
        return ("Progressing", MORE_TO_UPDATE.into());
    }
    if available < updated {
        return ("Progressing", BECOMING_AVAILABLE.into());
    }
    let stable = status.stable_rs.as_deref().unwrap_or_default();
    if let Some(bg) = blue_green {
        let current = status.current_pod_hash.as_deref();
        let active = status
            .blue_green
            .as_ref()
            .and_then(|b| b.active_selector.as_deref());
        if active.is_none_or(str::is_empty) || active != current {
            return ("Progressing", "active service cutover pending".into());
        }
        if stable.is_empty() || Some(stable) != current {
            let post = status
                .blue_green
                .as_ref()
                .and_then(|b| b.post_promotion_analysis_run_status.as_ref());
            let running = post.is_none_or(|p| !sluice_analysis::Phase::parse(&p.status).completed());
            return if bg.post_promotion_analysis && running {
                ("Progressing", "waiting for analysis to complete".into())
            } else {
                (
                    "Progressing",
                    "waiting for post-promotion verification to complete".into(),
                )
            };
        }
        return ("Healthy", String::new());
    }
    if !inp.traffic_routed && status.replicas.unwrap_or(0) > updated {
        return ("Progressing", OLD_PENDING.into());
    }
    if stable.is_empty() || Some(stable) != status.current_pod_hash.as_deref() {
        return ("Progressing", "waiting for all steps to complete".into());
    }
    ("Healthy", String::new())
}

/// Whether `next` differs from `current` only in what follows the pods as they start and stop: the pod counters
/// (`replicas`, `updatedReplicas`, `readyReplicas`, `availableReplicas`, `HPAReplicas`), a Progressing `message`
/// that is read off those counters ([`COUNT_MESSAGES`]), Progressing moving from `NewReplicaSetCreated` to
/// `ReplicaSetUpdated`, and the `lastUpdateTime` of conditions that otherwise stay as they are. Such a change may
/// wait a moment to be written together with what follows.
pub fn counters_only(current: &RolloutStatus, next: &RolloutStatus) -> bool {
    next != current && in_transit_view(current) == in_transit_view(next)
}

/// The Progressing messages [`phase_of`] reads off the pod counters.
const COUNT_MESSAGES: [&str; 3] = [MORE_TO_UPDATE, BECOMING_AVAILABLE, OLD_PENDING];

/// The Progressing condition's reasons while a ReplicaSet moves to its size.
const MOVING_REASONS: [&str; 2] = [NEW_REPLICA_SET_CREATED, REPLICA_SET_UPDATED];

/// The status as written, less what [`counters_only`] lets wait.
fn in_transit_view(s: &RolloutStatus) -> serde_json::Value {
    const COUNTERS: [&str; 5] = [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "HPAReplicas",
    ];
    let mut v = serde_json::to_value(s).unwrap_or_default();
    let Some(o) = v.as_object_mut() else {
        return v;
    };
    COUNTERS.iter().for_each(|k| {
        o.remove(*k);
    });
    let progressing = s.phase.as_deref() == Some("Progressing");
    if progressing && COUNT_MESSAGES.contains(&s.message.as_deref().unwrap_or_default()) {
        o.remove("message");
    }
    let conditions = o.get_mut("conditions").and_then(|c| c.as_array_mut());
    for c in conditions.into_iter().flatten().filter_map(|c| c.as_object_mut()) {
        c.remove("lastUpdateTime");
        let moving = c.get("type").and_then(|t| t.as_str()) == Some(cond::PROGRESSING)
            && c.get("reason")
                .and_then(|r| r.as_str())
                .is_some_and(|r| MOVING_REASONS.contains(&r));
        if moving {
            c.remove("reason");
            c.remove("message");
        }
    }
    v
}

#[cfg(test)]
mod counter_tests {
    use super::*;

    #[test]
    fn only_a_change_of_the_pod_counters_alone_is_counters_only() {
        let current = RolloutStatus {
            replicas: Some(3),
            ready_replicas: Some(3),
            current_step_index: Some(1),
            ..Default::default()
        };
        let counts = RolloutStatus {
            replicas: Some(4),
            updated_replicas: Some(1),
            hpa_replicas: Some(4),
            ..current.clone()
        };
        assert!(counters_only(&current, &counts));
        let step = RolloutStatus {
            current_step_index: Some(2),
            ..counts.clone()
        };
        assert!(!counters_only(&current, &step));
        assert!(
            !counters_only(&current, &current.clone()),
            "no change at all is not a change of counters"
        );
    }

    fn progressing(reason: &str, message: &str) -> RolloutCondition {
        RolloutCondition {
            r#type: cond::PROGRESSING.into(),
            status: "True".into(),
            reason: reason.into(),
            message: message.into(),
            ..Default::default()
        }
    }

    #[test]
    fn messages_read_off_the_counters_and_progress_of_the_new_replica_set_move_with_the_counters() {
        let created = RolloutStatus {
            phase: Some("Progressing".into()),
            message: Some("more replicas need to be updated".into()),
            conditions: Some(vec![progressing(
                "NewReplicaSetCreated",
                "Created new replica set \"a-1\"",
            )]),
            ..Default::default()
        };
        let moving = RolloutStatus {
            updated_replicas: Some(3),
            message: Some("old replicas are pending termination".into()),
            conditions: Some(vec![progressing(
                "ReplicaSetUpdated",
                "ReplicaSet \"a-1\" is progressing.",
            )]),
            ..created.clone()
        };
        assert!(counters_only(&created, &moving));
        let healthy = RolloutStatus {
            phase: Some("Healthy".into()),
            message: Some(String::new()),
            ..moving.clone()
        };
        assert!(!counters_only(&moving, &healthy), "a new phase is written now");
        let steps = RolloutStatus {
            message: Some("waiting for all steps to complete".into()),
            ..moving.clone()
        };
        assert!(
            !counters_only(&moving, &steps),
            "a message read off the steps is written now"
        );
        let available = RolloutStatus {
            conditions: Some(vec![progressing("NewReplicaSetAvailable", "done")]),
            ..moving.clone()
        };
        assert!(
            !counters_only(&moving, &available),
            "progress reaching its end is written now"
        );
        let stalled = RolloutStatus {
            conditions: Some(vec![RolloutCondition {
                status: "False".into(),
                ..progressing("ReplicaSetUpdated", "")
            }]),
            ..moving.clone()
        };
        assert!(!counters_only(&moving, &stalled));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_crds::rollout::PauseCondition;

    fn now() -> Time {
        Time("2026-01-01T00:00:00Z".parse().unwrap())
    }
    fn later() -> Time {
        Time("2026-01-01T00:01:00Z".parse().unwrap())
    }

    #[test]
    fn condition_keeps_transition_time_and_is_a_no_op_when_unchanged() {
        let mut cs = Vec::new();
        set_condition(
            &mut cs,
            "Available",
            "True",
            "AvailableReason",
            "Rollout has minimum availability",
            &now(),
        );
        let before = cs.clone();
        set_condition(
            &mut cs,
            "Available",
            "True",
            "AvailableReason",
            "Rollout has minimum availability",
            &later(),
        );
        assert_eq!(cs, before, "same status, reason and message: nothing changes");
        set_condition(&mut cs, "Available", "True", "AvailableReason", "other", &later());
        assert_eq!(
            cs[0].last_transition_time,
            Some(now()),
            "status unchanged: transition time kept"
        );
        assert_eq!(cs[0].last_update_time, Some(later()));
        set_condition(&mut cs, "Available", "False", "AvailableReason", "x", &later());
        assert_eq!(cs[0].last_transition_time, Some(later()));
    }

    #[test]
    fn phase_algorithm_first_match_wins() {
        let base = || RolloutStatus {
            replicas: Some(5),
            updated_replicas: Some(5),
            available_replicas: Some(5),
            current_pod_hash: Some("a".into()),
            stable_rs: Some("a".into()),
            ..Default::default()
        };
        let inp = |paused| PhaseInputs {
            replicas: 5,
            spec_paused: paused,
            restarting: false,
            traffic_routed: true,
        };
        let with_cond = |kind: &str, reason: &str, msg: &str| {
            let mut s = base();
            let mut cs = Vec::new();
            set_condition(&mut cs, kind, "False", reason, msg, &now());
            s.conditions = Some(cs);
            s
        };
        let paused = {
            let mut s = base();
            s.pause_conditions = Some(vec![PauseCondition {
                reason: "CanaryPauseStep".into(),
                start_time: now(),
            }]);
            s
        };
        let cases: Vec<(&str, RolloutStatus, PhaseInputs, (&str, &str))> = vec![
            ("healthy", base(), inp(false), ("Healthy", "")),
            (
                "invalid spec first",
                with_cond("InvalidSpec", "InvalidSpec", "bad"),
                inp(true),
                ("Degraded", "InvalidSpec: bad"),
            ),
            (
                "aborted",
                with_cond(
                    "Progressing",
                    "RolloutAborted",
                    "Rollout aborted update to revision 2",
                ),
                inp(false),
                ("Degraded", "RolloutAborted: Rollout aborted update to revision 2"),
            ),
            ("user pause", base(), inp(true), ("Paused", "manually paused")),
            (
                "controller pause",
                paused,
                inp(false),
                ("Paused", "CanaryPauseStep"),
            ),
            (
                "more to update",
                RolloutStatus {
                    updated_replicas: Some(2),
                    ..base()
                },
                inp(false),
                ("Progressing", "more replicas need to be updated"),
            ),
            (
                "becoming available",
                RolloutStatus {
                    available_replicas: Some(3),
                    ..base()
                },
                inp(false),
                ("Progressing", "updated replicas are still becoming available"),
            ),
            (
                "steps pending",
                RolloutStatus {
                    stable_rs: Some("b".into()),
                    ..base()
                },
                inp(false),
                ("Progressing", "waiting for all steps to complete"),
            ),
        ];
        for (name, status, inputs, (want_phase, want_msg)) in cases {
            let (p, m) = phase(&status, &inputs);
            assert_eq!((p, m.as_str()), (want_phase, want_msg), "{name}");
        }
        let basic = PhaseInputs {
            replicas: 5,
            spec_paused: false,
            restarting: false,
            traffic_routed: false,
        };
        let (p, m) = phase(
            &RolloutStatus {
                replicas: Some(7),
                ..base()
            },
            &basic,
        );
        assert_eq!(
            (p, m.as_str()),
            ("Progressing", "old replicas are pending termination")
        );
    }
}
