//! The Rollout controller's timing bookkeeping, per Rollout and in memory only.
//!
//! [`StepClock`]: the time from a canary step completing to the next weight applied
//! (`sluice_rollout_step_transition_seconds`), when the next step sets a weight (or the last step completed and
//! full promotion follows). The clock starts at the change that completed the step: the last change of one of
//! the Rollout's ReplicaSets seen by the watch (a pod became available) when it came at most
//! [`TRIGGER_WINDOW`] before the reconcile that found the step complete, else the start of that reconcile (a
//! pause that ran out). It stops when a ReplicaSet is scaled or the router's weight set for the next step: in
//! the same reconcile (`plan::plan_steps`) or, when the weight waits for something, in a later one. The time in
//! the controller's queue, the reconcile and its writes are so counted; not the watch event's own delay.
//!
//! [`StatusWrites`]: pod counts in transit (a status that differs only in `replicas`, `readyReplicas`, ...,
//! while a ReplicaSet is still moving to its size or this reconcile scales one) are written with the next
//! change of anything else, or once the ReplicaSets have settled, and at the latest [`COUNTS_WINDOW`] after the
//! first of them waited: a step's replica moves cost one status write instead of one per pod.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use sluice_crds::rollout::CanaryStep;

use sluice_crds::rollout::RolloutStatus;

use super::plan::Action;

/// How long pod counts in transit may wait after a status write.
pub const COUNTS_WINDOW: Duration = Duration::from_secs(10);

/// Whether pod counts are in transit: a ReplicaSet is not yet at its size, ready and available, or the plan
/// scales one.
pub fn in_transit(replica_sets: &[super::plan::RsInfo], actions: &[Action]) -> bool {
    replica_sets
        .iter()
        .any(|rs| rs.spec_replicas != rs.replicas || rs.ready != rs.replicas || rs.available != rs.ready)
        || actions.iter().any(applies_weight)
}

/// Per Rollout (namespace, name) whose pod counts wait to be written: since when they wait.
#[derive(Debug, Default)]
pub struct StatusWrites(Mutex<HashMap<(String, String), Instant>>);

impl StatusWrites {
    /// How long to hold the write of `next` over `current`: only pod counts changed, they are `in_transit`
    /// and they have waited less than [`COUNTS_WINDOW`] (the wait starts with the first change held). `None`:
    /// write now.
    pub fn hold(
        &self,
        key: &(String, String),
        (current, next): (&RolloutStatus, &RolloutStatus),
        in_transit: bool,
        now: Instant,
    ) -> Option<Duration> {
        let mut waiting = self.0.lock().ok()?;
        if !in_transit || !super::status::counters_only(current, next) {
            waiting.remove(key);
            return None;
        }
        let since = *waiting.entry(key.clone()).or_insert(now);
        let left = COUNTS_WINDOW
            .checked_sub(now.saturating_duration_since(since))
            .filter(|d| !d.is_zero());
        if left.is_none() {
            waiting.remove(key);
        }
        left
    }

    /// The Rollout's status was written: nothing of it waits.
    pub fn wrote(&self, key: &(String, String)) {
        self.forget(key);
    }

    /// The Rollout is gone.
    pub fn forget(&self, key: &(String, String)) {
        if let Ok(mut waiting) = self.0.lock() {
            waiting.remove(key);
        }
    }
}

/// How recent a ReplicaSet change must be to count as the one that completed a step.
pub const TRIGGER_WINDOW: Duration = Duration::from_secs(5);

/// Per Rollout (namespace, name): when a change of one of its ReplicaSets was last seen.
#[derive(Debug, Default)]
pub struct ReplicaSetChanges(Mutex<HashMap<(String, String), Instant>>);

impl ReplicaSetChanges {
    /// A ReplicaSet of the Rollout changed at `at`.
    pub fn changed(&self, key: (String, String), at: Instant) {
        if let Ok(mut seen) = self.0.lock() {
            seen.insert(key, at);
        }
    }

    /// When the step that a reconcile started at `started` found complete was completed: the last change of
    /// the Rollout's ReplicaSets before `started`, if it is recent enough, else `started`.
    pub fn trigger(&self, key: &(String, String), started: Instant) -> Instant {
        let seen = self.0.lock().ok().and_then(|s| s.get(key).copied());
        match seen {
            Some(at) if at <= started && started.duration_since(at) <= TRIGGER_WINDOW => at,
            _ => started,
        }
    }

    /// The Rollout is gone.
    pub fn forget(&self, key: &(String, String)) {
        if let Ok(mut seen) = self.0.lock() {
            seen.remove(key);
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
    /// A status write moved the Rollout from step `before` to `after` in a reconcile that started at `at`,
    /// having executed `actions`. When those already applied the weight of `after` (the steps completed in
    /// the same reconcile), the time it took is returned; otherwise the clock runs until a later reconcile
    /// applies it.
    pub fn completed(
        &self,
        key: &(String, String),
        steps: &[CanaryStep],
        (before, after): (Option<i32>, Option<i32>),
        actions: &[Action],
        (at, now): (Instant, Instant),
    ) -> Option<Duration> {
        let (Some(after), Ok(mut started)) = (after, self.0.lock()) else {
            return None;
        };
        if after > before.unwrap_or(0) && sets_weight(steps, after) {
            if actions.iter().any(applies_weight) {
                started.remove(key);
                return Some(now.saturating_duration_since(at));
            }
            started.insert(key.clone(), (after, at));
        } else if before != Some(after) {
            started.remove(key);
        }
        None
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
    fn pod_counts_wait_for_the_window_from_their_first_change_and_everything_else_is_written_at_once() {
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
        // The first change of counts waits the whole window, the next ones what is left of it.
        assert_eq!(
            writes.hold(&key(), (&current, &counts), true, t0),
            Some(COUNTS_WINDOW)
        );
        let soon = t0 + Duration::from_millis(300);
        assert_eq!(
            writes.hold(&key(), (&current, &counts), true, soon),
            Some(COUNTS_WINDOW - Duration::from_millis(300))
        );
        assert_eq!(
            writes.hold(&key(), (&current, &counts), true, t0 + COUNTS_WINDOW),
            None,
            "waited long enough: written now"
        );
        // Settled counts, or anything else changed: written now, and the wait starts again after.
        assert_eq!(writes.hold(&key(), (&current, &counts), false, soon), None);
        assert_eq!(writes.hold(&key(), (&current, &step), true, soon), None);
        assert_eq!(
            writes.hold(&key(), (&current, &counts), true, soon),
            Some(COUNTS_WINDOW)
        );
        // Written: the next change waits anew.
        writes.wrote(&key());
        let later = soon + Duration::from_secs(4);
        assert_eq!(
            writes.hold(&key(), (&current, &counts), true, later),
            Some(COUNTS_WINDOW)
        );
        writes.forget(&key());
        assert!(writes.0.lock().unwrap().is_empty());
    }

    #[test]
    fn a_recent_replica_set_change_starts_the_clock_and_an_old_one_does_not() {
        let changes = ReplicaSetChanges::default();
        let t0 = Instant::now();
        assert_eq!(changes.trigger(&key(), t0), t0);
        changes.changed(key(), t0);
        let soon = t0 + Duration::from_millis(80);
        assert_eq!(changes.trigger(&key(), soon), t0);
        let late = t0 + TRIGGER_WINDOW + Duration::from_millis(1);
        assert_eq!(changes.trigger(&key(), late), late);
        // A change after the reconcile started is not what it found.
        changes.changed(key(), soon);
        assert_eq!(changes.trigger(&key(), t0), t0);
        changes.forget(&key());
        assert_eq!(changes.trigger(&key(), soon), soon);
    }

    #[test]
    fn counts_are_in_transit_while_a_replica_set_moves_or_the_plan_scales_one() {
        let settled = [super::super::plan::RsInfo {
            spec_replicas: 2,
            replicas: 2,
            ready: 2,
            available: 2,
            ..Default::default()
        }];
        assert!(!in_transit(&settled, &[]));
        assert!(in_transit(&settled, &[scale()]));
        let starting = [super::super::plan::RsInfo {
            ready: 1,
            available: 1,
            ..settled[0].clone()
        }];
        assert!(in_transit(&starting, &[]));
    }

    #[test]
    fn the_clock_runs_from_a_completed_step_to_the_next_weight() {
        let clock = StepClock::default();
        let t0 = Instant::now();
        // The pause (index 1) completes: the next step sets a weight.
        assert_eq!(
            clock.completed(&key(), &steps(), (Some(1), Some(2)), &[], (t0, t0)),
            None
        );
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
        clock.completed(&key(), &steps(), (Some(0), Some(1)), &[], (t0, t0));
        assert_eq!(clock.len(), 0);
        clock.completed(&key(), &steps(), (Some(2), Some(3)), &[], (t0, t0));
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
        let moved = |from, to| (Some(from), Some(to));
        clock.completed(&key(), &steps(), moved(1, 2), &[], (t0, t0));
        // Restarted to step 0 before the weight was applied.
        assert_eq!(clock.applied(&key(), Some(0), &[scale()], t0), None);
        assert_eq!(clock.len(), 0);
        clock.completed(&key(), &steps(), moved(1, 2), &[], (t0, t0));
        clock.forget(&key());
        assert_eq!(clock.len(), 0);
        // An abort resets the index: the awaited weight is dropped.
        clock.completed(&key(), &steps(), moved(1, 2), &[], (t0, t0));
        clock.completed(&key(), &steps(), moved(2, 0), &[], (t0, t0));
        assert_eq!(clock.len(), 0);
    }

    #[test]
    fn steps_completed_and_the_next_weight_applied_in_one_reconcile_are_measured_at_once() {
        let clock = StepClock::default();
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(12);
        let took = clock.completed(&key(), &steps(), (Some(0), Some(2)), &[scale()], (t0, later));
        assert_eq!(took, Some(Duration::from_millis(12)));
        assert_eq!(clock.len(), 0);
    }
}
