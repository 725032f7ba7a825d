//! A Rollout's phase and message as clients read it (upstream's `GetRolloutPhase`): the controller's
//! `status.phase`/`status.message` when it wrote them, else the same computation done client-side.

use sluice_crds::rollout::{Rollout, RolloutStatus};

use crate::info::Icon;

/// Phase words.
const HEALTHY: &str = "Healthy";
const PROGRESSING: &str = "Progressing";
const PAUSED: &str = "Paused";
const DEGRADED: &str = "Degraded";

/// The phase and message of a Rollout.
pub fn rollout_phase(ro: &Rollout) -> (String, String) {
    let status = ro.status.clone().unwrap_or_default();
    if !generation_observed(
        ro.metadata.generation.unwrap_or(0),
        status.observed_generation.as_deref(),
    ) {
        return progressing("waiting for rollout spec update to be observed");
    }
    if status.controller_pause == Some(true)
        && status.pause_conditions.as_deref().unwrap_or_default().is_empty()
    {
        return progressing("waiting for rollout to unpause");
    }
    if let Some(phase) = status.phase.as_deref().filter(|p| !p.is_empty()) {
        return (phase.to_string(), status.message.clone().unwrap_or_default());
    }
    calculated_phase(ro, &status)
}

/// The icon of a phase word.
pub fn rollout_icon(phase: &str) -> Icon {
    match phase {
        PROGRESSING => Icon::Progressing,
        "Error" | "InvalidSpec" => Icon::Warning,
        PAUSED => Icon::Paused,
        HEALTHY => Icon::Ok,
        DEGRADED => Icon::Bad,
        "Unknown" => Icon::Unknown,
        // Upstream prints a blank for a word it does not know (a run not yet picked up, an Evicted pod).
        _ => Icon::Blank,
    }
}

/// Whether `status.observedGeneration` has caught up with `metadata.generation`. A non-numeric value is a
/// pre-0.10 pod-template hash and counts as observed, as does a number above the generation.
fn generation_observed(generation: i64, observed: Option<&str>) -> bool {
    match observed.and_then(parse_go_int) {
        Some(observed) => observed >= generation,
        None => true,
    }
}

/// Go's `strconv.Atoi`: an optional sign and decimal digits, nothing else.
fn parse_go_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn progressing(message: &str) -> (String, String) {
    (PROGRESSING.to_string(), message.to_string())
}

/// Upstream's `CalculateRolloutPhase`: first match wins.
fn calculated_phase(ro: &Rollout, status: &RolloutStatus) -> (String, String) {
    for cond in status.conditions.as_deref().unwrap_or_default() {
        if cond.r#type == "InvalidSpec" {
            return (DEGRADED.to_string(), format!("InvalidSpec: {}", cond.message));
        }
        if cond.reason == "RolloutAborted" || cond.reason == "ProgressDeadlineExceeded" {
            return (DEGRADED.to_string(), format!("{}: {}", cond.reason, cond.message));
        }
    }
    if ro.spec.paused == Some(true) {
        return (PAUSED.to_string(), "manually paused".to_string());
    }
    if let Some(first) = status.pause_conditions.as_deref().unwrap_or_default().first() {
        return (PAUSED.to_string(), first.reason.clone());
    }
    if let Some(restart_at) = &ro.spec.restart_at
        && status.restarted_at.as_ref().map(|t| t.0) != Some(restart_at.0)
    {
        return progressing("rollout is restarting");
    }
    let updated = status.updated_replicas.unwrap_or(0);
    if updated < ro.spec.replicas.unwrap_or(1) {
        return progressing("more replicas need to be updated");
    }
    if status.available_replicas.unwrap_or(0) < updated {
        return progressing("updated replicas are still becoming available");
    }
    strategy_phase(ro, status).unwrap_or_else(|| (HEALTHY.to_string(), String::new()))
}

/// The strategy-specific reasons a rollout whose replicas are all updated is still progressing.
fn strategy_phase(ro: &Rollout, status: &RolloutStatus) -> Option<(String, String)> {
    let current = status.current_pod_hash.as_deref().unwrap_or("");
    let stable = status.stable_rs.as_deref().unwrap_or("");
    let fully_promoted = !stable.is_empty() && stable == current;
    if let Some(bg) = &ro.spec.strategy.blue_green {
        let bg_status = status.blue_green.clone().unwrap_or_default();
        let active = bg_status.active_selector.as_deref().unwrap_or("");
        if active.is_empty() || active != current {
            return Some(progressing("active service cutover pending"));
        }
        if !fully_promoted {
            let post_analysis_pending = bg.post_promotion_analysis.is_some()
                && !bg_status
                    .post_promotion_analysis_run_status
                    .as_ref()
                    .is_some_and(|run| analysis_completed(&run.status));
            return Some(progressing(if post_analysis_pending {
                "waiting for analysis to complete"
            } else {
                "waiting for post-promotion verification to complete"
            }));
        }
    } else if let Some(canary) = &ro.spec.strategy.canary {
        let replicas = status.replicas.unwrap_or(0);
        if canary.traffic_routing.is_none() && replicas > status.updated_replicas.unwrap_or(0) {
            return Some(progressing("old replicas are pending termination"));
        }
        if !fully_promoted {
            return Some(progressing("waiting for all steps to complete"));
        }
    }
    None
}

/// Whether an analysis phase is final.
pub fn analysis_completed(phase: &str) -> bool {
    matches!(phase, "Successful" | "Failed" | "Error" | "Inconclusive")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_crds::rollout::{CanaryStrategy, PauseCondition, RolloutCondition, RolloutSpec};

    fn canary(status: RolloutStatus) -> Rollout {
        let mut ro = Rollout::new("demo", RolloutSpec::default());
        ro.spec.replicas = Some(3);
        ro.spec.strategy.canary = Some(CanaryStrategy::default());
        ro.status = Some(status);
        ro
    }

    fn healthy_status() -> RolloutStatus {
        RolloutStatus {
            replicas: Some(3),
            updated_replicas: Some(3),
            available_replicas: Some(3),
            current_pod_hash: Some("abc".into()),
            stable_rs: Some("abc".into()),
            ..RolloutStatus::default()
        }
    }

    fn phase(ro: &Rollout) -> (String, String) {
        rollout_phase(ro)
    }

    #[test]
    fn the_controllers_phase_wins_once_the_generation_is_observed() {
        let mut ro = canary(RolloutStatus {
            phase: Some("Paused".into()),
            message: Some("CanaryPauseStep".into()),
            observed_generation: Some("2".into()),
            ..healthy_status()
        });
        assert_eq!(phase(&ro), ("Paused".into(), "CanaryPauseStep".into()));
        ro.metadata.generation = Some(3);
        assert_eq!(phase(&ro).1, "waiting for rollout spec update to be observed");
        ro.metadata.generation = Some(1);
        assert_eq!(
            phase(&ro).0,
            "Paused",
            "an observed generation above the spec's counts as observed"
        );
    }

    #[test]
    fn a_hash_as_observed_generation_counts_as_observed() {
        let mut ro = canary(RolloutStatus {
            observed_generation: Some("5c76fd9f86".into()),
            ..healthy_status()
        });
        ro.metadata.generation = Some(429);
        assert_eq!(phase(&ro), ("Healthy".into(), String::new()));
    }

    #[test]
    fn cleared_pause_conditions_under_a_controller_pause_are_unpausing() {
        let ro = canary(RolloutStatus {
            controller_pause: Some(true),
            ..healthy_status()
        });
        assert_eq!(phase(&ro).1, "waiting for rollout to unpause");
    }

    #[test]
    fn client_side_phase_follows_upstreams_order() {
        let cond = |type_: &str, reason: &str| RolloutCondition {
            r#type: type_.into(),
            status: "False".into(),
            reason: reason.into(),
            message: "msg".into(),
            ..RolloutCondition::default()
        };
        let pause = PauseCondition {
            reason: "CanaryPauseStep".into(),
            start_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        };
        let cases: Vec<(RolloutStatus, &str, &str)> = vec![
            (
                RolloutStatus {
                    conditions: Some(vec![cond("InvalidSpec", "InvalidSpec")]),
                    ..healthy_status()
                },
                "Degraded",
                "InvalidSpec: msg",
            ),
            (
                RolloutStatus {
                    conditions: Some(vec![cond("Progressing", "RolloutAborted")]),
                    ..healthy_status()
                },
                "Degraded",
                "RolloutAborted: msg",
            ),
            (
                RolloutStatus {
                    pause_conditions: Some(vec![pause]),
                    ..healthy_status()
                },
                "Paused",
                "CanaryPauseStep",
            ),
            (
                RolloutStatus {
                    updated_replicas: Some(1),
                    ..healthy_status()
                },
                "Progressing",
                "more replicas need to be updated",
            ),
            (
                RolloutStatus {
                    available_replicas: Some(2),
                    ..healthy_status()
                },
                "Progressing",
                "updated replicas are still becoming available",
            ),
            (
                RolloutStatus {
                    replicas: Some(4),
                    ..healthy_status()
                },
                "Progressing",
                "old replicas are pending termination",
            ),
            (
                RolloutStatus {
                    stable_rs: Some("old".into()),
                    ..healthy_status()
                },
                "Progressing",
                "waiting for all steps to complete",
            ),
            (healthy_status(), "Healthy", ""),
        ];
        for (status, want_phase, want_message) in cases {
            assert_eq!(
                phase(&canary(status)),
                (want_phase.to_string(), want_message.to_string())
            );
        }
    }

    #[test]
    fn a_manual_pause_is_paused() {
        let mut ro = canary(healthy_status());
        ro.spec.paused = Some(true);
        assert_eq!(phase(&ro), ("Paused".into(), "manually paused".into()));
    }
}
