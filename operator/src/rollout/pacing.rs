//! The Rollout controller's timing bookkeeping, per Rollout and in memory only.
//!
//! [`StepClock`]: the time from a canary step completing to the next weight applied
//! (`sluice_rollout_step_transition_seconds`). A step completes in the reconcile that writes the next `currentStepIndex`; when that next step sets a weight
//! (or it was the last step, and full promotion follows), the clock runs from the start of that reconcile until
//! a later one scales a ReplicaSet or sets the router's weight while the Rollout is at that index. What is
//! measured is the controller's own round trip: the status write, its watch event, the queue, the next reconcile
//! and its writes.
//!
//! [`StatusWrites`]: pod counts in transit (a status that differs only in `replicas`, `readyReplicas`, ...)
//! are not written within [`COUNTS_WINDOW`] of the Rollout's last status write, but with the next change or
//! once the window has passed; a step's replica moves so cost one status write instead of one per pod.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use sluice_crds::rollout::CanaryStep;

use sluice_crds::rollout::RolloutStatus;

use super::plan::Action;

/// How long pod counts in transit wait after a status write.
pub const COUNTS_WINDOW: Duration = Duration::from_secs(1);

/// Per Rollout (namespace, name): when its status was last written.
#[derive(Debug, Default)]
pub struct StatusWrites(Mutex<HashMap<(String, String), Instant>>);

impl StatusWrites {
    /// How long to hold the write of `next` over `current`: only pod counts changed and the last write is
    /// less than [`COUNTS_WINDOW`] old. `None`: write now.
    pub fn hold(
        &self,
        key: &(String, String),
        current: &RolloutStatus,
        next: &RolloutStatus,
        now: Instant,
    ) -> Option<Duration> {
        if !super::status::counters_only(current, next) {
            return None;
        }
        let last = *self.0.lock().ok()?.get(key)?;
        COUNTS_WINDOW
            .checked_sub(now.saturating_duration_since(last))
            .filter(|d| !d.is_zero())
    }

    /// The Rollout's status was written at `at`.
    pub fn wrote(&self, key: &(String, String), at: Instant) {
        if let Ok(mut last) = self.0.lock() {
            last.insert(key.clone(), at);
        }
    }

    /// The Rollout is gone.
    pub fn forget(&self, key: &(String, String)) {
        if let Ok(mut last) = self.0.lock() {
            last.remove(key);
        }
    }
}

/// Per Rollout (namespace, name): the index whose weight is awaited and when its previous step completed.
#[derive(Debug, Default)]
pub struct StepClock(Mutex<HashMap<(String, String), (i32, Instant)>>);

/// Whether moving to `index` changes the weight: a setWeight step, or the end of the steps (full promotion).
fn sets_weight(steps: &[CanaryStep], index: i32) -> bool {
    match usize::try_from(index) {
        Ok(i) if i == steps.len() => true,
        Ok(i) => steps.get(i).is_some_and(|s| s.set_weight.is_some()),
        Err(_) => false,
    }
}

/// Whether an action applies a weight: the canary's router weight or a ReplicaSet's replicas.
fn applies_weight(action: &Action) -> bool {
    matches!(
        action,
        Action::SetCanaryWeight { .. } | Action::ScaleReplicaSet { .. }
    )
}

impl StepClock {
    /// A status write moved the Rollout from step `before` to `after` in a reconcile that started at `at`.
    pub fn completed(
        &self,
        key: &(String, String),
        steps: &[CanaryStep],
        before: Option<i32>,
        after: Option<i32>,
        at: Instant,
    ) {
        let (Some(after), Ok(mut started)) = (after, self.0.lock()) else {
            return;
        };
        if after > before.unwrap_or(0) && sets_weight(steps, after) {
            started.insert(key.clone(), (after, at));
        } else if before != Some(after) {
            started.remove(key);
        }
    }

    /// A reconcile of the Rollout at step `index` executed `actions`: the time since the previous step
    /// completed, when these actions apply the weight awaited at that index.
    pub fn applied(
        &self,
        key: &(String, String),
        index: Option<i32>,
        actions: &[Action],
        now: Instant,
    ) -> Option<Duration> {
        let mut started = self.0.lock().ok()?;
        let &(awaited, at) = started.get(key)?;
        if Some(awaited) != index {
            // Moved on (aborted, skipped, restarted) without the weight being applied: nothing to measure.
            started.remove(key);
            return None;
        }
        if !actions.iter().any(applies_weight) {
            return None;
        }
        started.remove(key);
        Some(now.saturating_duration_since(at))
    }

    /// The Rollout is gone.
    pub fn forget(&self, key: &(String, String)) {
        if let Ok(mut started) = self.0.lock() {
            started.remove(key);
        }
    }

    /// Rollouts awaiting a weight.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().map(|s| s.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps() -> Vec<CanaryStep> {
        serde_json::from_value(serde_json::json!([
            {"setWeight": 34}, {"pause": {"duration": 0}}, {"setWeight": 67}
        ]))
        .unwrap()
    }

    fn key() -> (String, String) {
        ("bench".into(), "ro".into())
    }

    fn scale() -> Action {
        Action::ScaleReplicaSet {
            name: "ro-abc".into(),
            from: 1,
            to: 2,
            revision: 2,
        }
    }

    #[test]
    fn pod_counts_wait_for_the_window_after_a_write_and_everything_else_is_written_at_once() {
        let writes = StatusWrites::default();
        let t0 = Instant::now();
        let current = RolloutStatus {
            replicas: Some(3),
            ..Default::default()
        };
        let counts = RolloutStatus {
            replicas: Some(4),
            ..Default::default()
        };
        let step = RolloutStatus {
            current_step_index: Some(1),
            ..counts.clone()
        };
        // Never written by this process: written now.
        assert_eq!(writes.hold(&key(), &current, &counts, t0), None);
        writes.wrote(&key(), t0);
        let soon = t0 + Duration::from_millis(300);
        assert_eq!(
            writes.hold(&key(), &current, &counts, soon),
            Some(Duration::from_millis(700))
        );
        assert_eq!(writes.hold(&key(), &current, &step, soon), None);
        assert_eq!(writes.hold(&key(), &current, &counts, t0 + COUNTS_WINDOW), None);
        writes.forget(&key());
        assert_eq!(writes.hold(&key(), &current, &counts, soon), None);
    }

    #[test]
    fn the_clock_runs_from_a_completed_step_to_the_next_weight() {
        let clock = StepClock::default();
        let t0 = Instant::now();
        // The pause (index 1) completes: the next step sets a weight.
        clock.completed(&key(), &steps(), Some(1), Some(2), t0);
        // A reconcile at index 2 that writes nothing yet (e.g. its own write not in the cache) measures nothing.
        assert_eq!(clock.applied(&key(), Some(2), &[], t0), None);
        let later = t0 + Duration::from_millis(40);
        assert_eq!(
            clock.applied(&key(), Some(2), &[scale()], later),
            Some(Duration::from_millis(40))
        );
        // Measured once.
        assert_eq!(clock.applied(&key(), Some(2), &[scale()], later), None);
    }

    #[test]
    fn a_step_followed_by_a_pause_starts_no_clock_and_the_last_step_does() {
        let clock = StepClock::default();
        let t0 = Instant::now();
        clock.completed(&key(), &steps(), Some(0), Some(1), t0);
        assert_eq!(clock.len(), 0);
        clock.completed(&key(), &steps(), Some(2), Some(3), t0);
        let weight = Action::SetCanaryWeight {
            weight: 100,
            additional: Vec::new(),
        };
        assert!(clock.applied(&key(), Some(3), &[weight], t0).is_some());
    }

    #[test]
    fn a_rollout_that_moved_elsewhere_or_is_gone_is_not_measured_and_not_kept() {
        let clock = StepClock::default();
        let t0 = Instant::now();
        clock.completed(&key(), &steps(), Some(1), Some(2), t0);
        // Restarted to step 0 before the weight was applied.
        assert_eq!(clock.applied(&key(), Some(0), &[scale()], t0), None);
        assert_eq!(clock.len(), 0);
        clock.completed(&key(), &steps(), Some(1), Some(2), t0);
        clock.forget(&key());
        assert_eq!(clock.len(), 0);
        // An abort resets the index: the awaited weight is dropped.
        clock.completed(&key(), &steps(), Some(1), Some(2), t0);
        clock.completed(&key(), &steps(), Some(2), Some(0), t0);
        assert_eq!(clock.len(), 0);
    }
}
