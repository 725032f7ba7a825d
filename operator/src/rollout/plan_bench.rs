//! `sluice bench-planner`: the Rollout planner's throughput with no API server. N observed Rollouts are built in
//! memory (a mix of the states a fleet is in: steady, mid-canary with and without a traffic router, paused, at
//! an analysis step, blue-green awaiting promotion) and planned round after round; prints plans per second and
//! heap allocations per plan (counted by the binary's allocator).

use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use sluice_crds::rollout::Rollout;

use super::{
    analysis::RunInfo,
    plan::{self, Observed, RsInfo, ServiceState, TrafficState},
};

/// What the benchmark measured.
#[derive(Debug)]
pub struct Report {
    /// Observed Rollouts held in memory.
    pub rollouts: usize,
    /// Plans made.
    pub plans: u64,
    /// Wall time of the planning.
    pub elapsed: Duration,
    /// Heap allocations made while planning.
    pub allocations: u64,
    /// Actions the plans asked for (so that the work is not optimized away, and as a sanity figure).
    pub actions: u64,
}

impl Report {
    /// Plans per second.
    pub fn plans_per_second(&self) -> f64 {
        self.plans as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Heap allocations per plan.
    pub fn allocations_per_plan(&self) -> f64 {
        self.allocations as f64 / self.plans.max(1) as f64
    }
}

/// The kinds of state the fleet is made of, one after the other.
const SHAPES: usize = 6;

fn rollout(i: usize, strategy: serde_json::Value, status: serde_json::Value) -> Rollout {
    let name = format!("ro-{i:05}");
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": format!("ns-{}", i % 50), "generation": 2,
                     "uid": format!("uid-{i}"), "resourceVersion": "10",
                     "annotations": {"rollout.argoproj.io/revision": "2"}},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": "app:v2",
                                                  "resources": {"requests": {"cpu": "100m"}}}]}},
            "strategy": strategy
        },
        "status": status
    }))
    .expect("a valid Rollout")
}

fn rs(hash: &str, revision: i64, replicas: i32) -> RsInfo {
    RsInfo {
        name: format!("app-{hash}"),
        hash: hash.into(),
        revision,
        spec_replicas: replicas,
        replicas,
        ready: replicas,
        available: replicas,
        scale_down_deadline: None,
        ephemeral: None,
    }
}

fn canary(routed: bool) -> serde_json::Value {
    let steps = json!([{"setWeight": 20}, {"pause": {}}, {"analysis": {"templates": [{"templateName": "ok"}]}},
                       {"setWeight": 60}, {"pause": {"duration": "30s"}}]);
    if routed {
        json!({"canary": {"stableService": "stable", "canaryService": "canary", "steps": steps,
                          "trafficRouting": {"istio": {"virtualService": {"name": "vs", "routes": ["primary"]}}}}})
    } else {
        json!({"canary": {"steps": steps}})
    }
}

fn status(index: i32, paused: bool) -> serde_json::Value {
    let mut st = json!({
        "currentPodHash": "new", "stableRS": "old", "currentStepIndex": index, "observedGeneration": "2",
        "replicas": 5, "updatedReplicas": 1, "readyReplicas": 5, "availableReplicas": 5, "phase": "Progressing",
        "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                        "message": "progressing", "lastUpdateTime": "2026-03-01T10:00:00Z",
                        "lastTransitionTime": "2026-03-01T10:00:00Z"}]
    });
    if paused {
        st["pauseConditions"] = json!([{"reason": "CanaryPauseStep", "startTime": "2026-03-01T10:00:00Z"}]);
        st["controllerPause"] = json!(true);
    }
    st
}

/// The `i`th observed Rollout of the fleet.
pub fn observed(i: usize) -> Observed {
    let (ro, replica_sets, traffic, services, runs) = match i % SHAPES {
        // Steady: one ReplicaSet, the update done long ago.
        0 => {
            let mut st = status(5, false);
            st["stableRS"] = json!("new");
            st["phase"] = json!("Healthy");
            (
                rollout(i, canary(false), st),
                vec![rs("new", 2, 5)],
                None,
                false,
                vec![],
            )
        }
        // A basic canary's first step, its canary ReplicaSet about to be scaled up.
        1 => (
            rollout(i, canary(false), status(0, false)),
            vec![rs("new", 2, 0), rs("old", 1, 5)],
            None,
            false,
            vec![],
        ),
        // Istio canary at its first step, the weight in place.
        2 => (
            rollout(i, canary(true), status(0, false)),
            vec![rs("new", 2, 1), rs("old", 1, 5)],
            Some(TrafficState::Weight(20)),
            true,
            vec![],
        ),
        // Paused indefinitely, awaiting promotion.
        3 => (
            rollout(i, canary(true), status(1, true)),
            vec![rs("new", 2, 1), rs("old", 1, 5)],
            Some(TrafficState::Weight(20)),
            true,
            vec![],
        ),
        // At the analysis step, its run running.
        4 => (
            rollout(i, canary(true), status(2, false)),
            vec![rs("new", 2, 1), rs("old", 1, 5)],
            Some(TrafficState::Weight(20)),
            true,
            vec![RunInfo {
                name: format!("ro-{i:05}-new-2"),
                phase: sluice_analysis::Phase::Running,
                message: None,
                terminating: false,
                created: 1_772_359_200,
            }],
        ),
        // Blue-green with its preview up, awaiting promotion.
        _ => {
            let bg = json!({"blueGreen": {"activeService": "active", "previewService": "preview",
                                          "autoPromotionEnabled": false}});
            let mut st = status(0, true);
            st["blueGreen"] = json!({"activeSelector": "old", "previewSelector": "new"});
            st["pauseConditions"] =
                json!([{"reason": "BlueGreenPause", "startTime": "2026-03-01T10:00:00Z"}]);
            st.as_object_mut().expect("object").remove("currentStepIndex");
            (
                rollout(i, bg, st),
                vec![rs("new", 2, 5), rs("old", 1, 5)],
                None,
                true,
                vec![],
            )
        }
    };
    let selecting = |h: &str| Some(ServiceState::Selecting(Some(h.into())));
    let template = json!({"metrics": [{"name": "ok", "successCondition": "result[0] >= 0.95",
        "provider": {"prometheus": {"address": "http://prometheus:9090", "query": "vector(1)"}}}]});
    let templates = super::analysis::Templates {
        namespaced: [(
            "ok".to_string(),
            serde_json::from_value(template).expect("a valid template"),
        )]
        .into(),
        ..Default::default()
    };
    Observed {
        rollout: ro,
        desired_hash: "new".into(),
        replica_sets,
        stable_service: if services { selecting("old") } else { None },
        canary_service: if services { selecting("new") } else { None },
        traffic,
        subsets: None,
        pods_to_restart: Vec::new(),
        managed_routes_present: Vec::new(),
        analysis_runs: runs,
        templates,
        workload: None,
        orphans: Vec::new(),
        experiments: Vec::new(),
        rs_templates: Vec::new(),
    }
}

/// Plans every one of `rollouts` observed Rollouts `rounds` times; `allocations` reads the allocation counter.
pub fn run(rollouts: usize, rounds: usize, allocations: impl Fn() -> u64) -> Report {
    let fleet: Vec<Observed> = (0..rollouts).map(observed).collect();
    let now = Timestamp::from_second(1_772_359_260).expect("a valid time");
    let (mut plans, mut actions) = (0u64, 0u64);
    // One round to warm up (lazily built statics, the first allocations of each size).
    for o in &fleet {
        std::hint::black_box(plan::plan(o, now));
    }
    let before = allocations();
    let started = Instant::now();
    for _ in 0..rounds {
        for o in &fleet {
            let p = plan::plan(std::hint::black_box(o), now);
            actions += p.actions.len() as u64;
            plans += 1;
        }
    }
    let elapsed = started.elapsed();
    Report {
        rollouts,
        plans,
        elapsed,
        allocations: allocations() - before,
        actions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_of_the_fleet_plans_without_an_invalid_spec() {
        let now = Timestamp::from_second(1_772_359_260).unwrap();
        for i in 0..SHAPES {
            let p = plan::plan(&observed(i), now);
            let invalid = p
                .status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.r#type == "InvalidSpec");
            assert!(!invalid, "shape {i}: {:?}", p.status.conditions);
        }
    }

    #[test]
    fn the_benchmark_counts_its_plans() {
        let r = run(SHAPES * 2, 3, || 0);
        assert_eq!(r.plans, (SHAPES * 2 * 3) as u64);
        assert!(r.plans_per_second() > 0.0);
    }
}
