//! The canary strategy: replica split, Services, DestinationRule subsets, traffic weight, step progress and
//! promotion, each a stage of its own over the facts the shared stages established.

use std::time::Duration;

use sluice_crds::rollout::{CanaryStep, CanaryStrategy, PauseCondition, TrafficWeights, WeightDestination};

use sluice_analysis::duration::parse_pause_duration;

use super::{
    experiments::ExperimentOutcome,
    lifecycle,
    plan::{
        Action, CANARY_PAUSE_STEP, DEFAULT_ABORT_SCALE_DOWN_DELAY, DEFAULT_SCALE_DOWN_DELAY, Draft, Facts,
        Mode, Observed, RsInfo, ServiceState, TrafficState, seconds_since, step_weight,
    },
    replicas::{self, BasicCanaryInput, RoutedCanaryInput, RsCount},
};
use sluice_traffic::Additional;

/// The canary part of a reconcile; `analysis_done` says the current step's analysis passed, `experiment` what
/// the current step's Experiment decided.
pub(super) fn plan(
    obs: &Observed,
    f: &Facts,
    mode: &Mode,
    experiment: &ExperimentOutcome,
    analysis_done: bool,
    d: &mut Draft,
) {
    let canary =
        f.ro.spec
            .strategy
            .canary
            .as_ref()
            .expect("validated: canary strategy");
    let routed = canary.traffic_routing.is_some();
    let targets = targets(obs, f, mode, canary, d);
    let targets = keep_aborted_canary(f, mode, canary, targets, d);
    if !f.user_paused {
        let (canary_now, stable_now) = targets.next.unwrap_or((targets.canary, targets.stable));
        if let Some(stable_rs) = f.stable_rs.filter(|_| !f.fully_promoted) {
            d.out.scale(stable_rs, stable_now);
        }
        d.out.scale(f.new_rs, canary_now);
        // Older ReplicaSets (traffic routing, or the previous stable after promotion) go after their deadline.
        let stale: Vec<&RsInfo> = f
            .others
            .iter()
            .copied()
            .filter(|rs| (routed || f.fully_promoted) && rs.hash != f.stable_hash)
            .collect();
        let delay = if routed {
            canary
                .scale_down_delay_seconds
                .map_or(DEFAULT_SCALE_DOWN_DELAY, i64::from)
        } else {
            0
        };
        lifecycle::scale_down_old(stale, delay, canary.scale_down_delay_revision_limit, d);
    }
    services(obs, f, mode, canary, d);
    let canary_subset = subsets(obs, f, mode, d);
    let additional = if mode.aborted || f.user_paused {
        Vec::new()
    } else {
        experiment.additional.clone()
    };
    let observed_weight = if routed {
        traffic(obs, f, mode, canary_subset.as_deref(), &additional, d)
    } else {
        None
    };
    let step_done = mode.resumed && f.steps.get(mode.index).is_some_and(|s| s.pause.is_some());
    let index = steps(
        obs,
        f,
        mode,
        &targets,
        observed_weight,
        step_done || analysis_done || experiment.step_done,
        d,
    );
    promote(f, mode, index, routed, observed_weight, d);
    // Managed routes last only for the update: removed when it is aborted or promoted.
    if (mode.aborted || d.st.stable_rs.as_deref() == Some(f.new_hash.as_str()))
        && !obs.managed_routes_present.is_empty()
    {
        d.out.actions.push(Action::RemoveManagedRoutes {
            names: obs.managed_routes_present.clone(),
        });
    }
    if routed {
        record_weights(f, canary, observed_weight, &additional, d);
    } else if let Some(c) = d.st.canary.as_mut() {
        // No router (any more): no weights to report.
        c.weights = None;
    }
    // A canary now: nothing blue-green to report.
    d.st.blue_green = None;
}

/// The replica targets of the canary and stable ReplicaSets, and for a basic canary the stage this reconcile
/// moves to.
struct Targets {
    canary: i32,
    stable: i32,
    /// Basic canary: (canary, stable) to scale to now, a stage towards the targets.
    next: Option<(i32, i32)>,
}

/// The setCanaryScale in force at `index`, as the replica split reads it.
fn canary_scale(steps: &[CanaryStep], index: usize) -> Option<replicas::CanaryScale> {
    if index >= steps.len() {
        return None;
    }
    let scale = steps[..=index]
        .iter()
        .rev()
        .find_map(|s| s.set_canary_scale.as_ref())?;
    if scale.match_traffic_weight == Some(true) {
        return Some(replicas::CanaryScale::MatchTrafficWeight);
    }
    scale
        .replicas
        .map(replicas::CanaryScale::Replicas)
        .or(scale.weight.map(replicas::CanaryScale::Weight))
}

fn targets(obs: &Observed, f: &Facts, mode: &Mode, canary: &CanaryStrategy, d: &mut Draft) -> Targets {
    let replicas = f.replicas;
    if f.fully_promoted {
        return Targets {
            canary: replicas,
            stable: replicas,
            next: None,
        };
    }
    let weight = if mode.aborted {
        0
    } else {
        step_weight(f.steps, mode.index)
    };
    if canary.traffic_routing.is_some() {
        let split = replicas::routed_canary(&RoutedCanaryInput {
            replicas,
            weight,
            set_canary_scale: if mode.aborted {
                None
            } else {
                canary_scale(f.steps, mode.index)
            },
            min_pods_per_replica_set: canary.min_pods_per_replica_set,
            dynamic_stable_scale: canary.dynamic_stable_scale == Some(true),
            current_stable_weight: obs
                .rollout
                .status
                .as_ref()
                .and_then(|s| s.canary.as_ref())
                .and_then(|c| c.weights.as_ref())
                .map(|w| w.stable.weight),
            aborted: mode.aborted,
        });
        return Targets {
            canary: split.canary,
            stable: split.stable,
            next: None,
        };
    }
    // Older ReplicaSets (neither new nor stable), newest first as the split spends its budget.
    let mut older: Vec<&RsInfo> = f
        .others
        .iter()
        .copied()
        .filter(|rs| rs.hash != f.stable_hash)
        .collect();
    older.sort_by_key(|rs| std::cmp::Reverse(rs.revision));
    let budgets = replicas::resolve_fenceposts(
        canary.max_surge.as_ref(),
        canary.max_unavailable.as_ref(),
        replicas,
    );
    let count = |rs: &RsInfo| RsCount {
        spec: rs.spec_replicas,
        available: rs.available,
    };
    let input = BasicCanaryInput {
        replicas,
        weight,
        max_surge: budgets.max_surge,
        max_unavailable: budgets.max_unavailable,
        canary: count(f.new_rs),
        stable: f.stable_rs.map(count),
        others: older.iter().map(|rs| count(rs)).collect(),
    };
    // The targets decide when a step is done; like upstream, one group moves per reconcile (stable, then
    // canary, then older ReplicaSets) so that the surge and availability budgets hold at every moment.
    let target = replicas::basic_canary(&input);
    let next = target.next_stage(&input);
    if !f.user_paused {
        for (rs, to) in older.iter().zip(next.others.iter()) {
            d.out.scale(rs, *to);
        }
    }
    Targets {
        canary: target.canary,
        stable: target.stable,
        next: Some((next.canary, next.stable)),
    }
}

/// An aborted canary under traffic routing is kept for abortScaleDownDelaySeconds once the stable is whole;
/// a canary that is desired again loses its scale-down deadline.
fn keep_aborted_canary(
    f: &Facts,
    mode: &Mode,
    canary: &CanaryStrategy,
    mut targets: Targets,
    d: &mut Draft,
) -> Targets {
    if !(mode.aborted && canary.traffic_routing.is_some()) {
        if f.new_rs.scale_down_deadline.is_some() {
            lifecycle::clear_scale_down_deadline(f.new_rs, d);
        }
        return targets;
    }
    let setting = canary.abort_scale_down_delay_seconds;
    targets.canary = lifecycle::aborted_target(f, setting, DEFAULT_ABORT_SCALE_DOWN_DELAY, d);
    targets.stable = f.replicas;
    targets
}

/// The stable Service follows the stable pods; the canary Service follows the new pods once one is available
/// (the stable ones when aborted).
fn services(obs: &Observed, f: &Facts, mode: &Mode, canary: &CanaryStrategy, d: &mut Draft) {
    if let (Some(name), Some(ServiceState::Selecting(current))) =
        (&canary.stable_service, &obs.stable_service)
        && current.as_deref() != Some(f.stable_hash.as_str())
        && f.stable_rs.is_some_and(|rs| rs.available > 0)
    {
        d.out.switch(name, current.clone(), &f.stable_hash);
    }
    let (target, ready) = if mode.aborted {
        (&f.stable_hash, f.stable_rs.is_some_and(|rs| rs.available > 0))
    } else {
        (&f.new_hash, f.new_rs.available > 0)
    };
    if let (Some(name), Some(ServiceState::Selecting(current))) =
        (&canary.canary_service, &obs.canary_service)
        && current.as_deref() != Some(target.as_str())
        && ready
    {
        d.out.switch(name, current.clone(), target);
    }
    for (configured, state) in [
        (&canary.stable_service, &obs.stable_service),
        (&canary.canary_service, &obs.canary_service),
    ] {
        if let (Some(name), Some(ServiceState::Missing)) = (configured, state) {
            d.out
                .warn("ServiceNotFound", format!("Service \"{name}\" not found"));
        }
    }
}

/// Subset split: the DestinationRule's subsets follow the hashes like the Services do. Returns the hash the
/// canary subset selects now.
fn subsets(obs: &Observed, f: &Facts, mode: &Mode, d: &mut Draft) -> Option<String> {
    match obs.subsets.as_ref()? {
        Ok((canary_now, stable_now)) => {
            let want_canary = if mode.aborted {
                f.stable_hash.clone()
            } else if f.new_rs.available > 0 {
                f.new_hash.clone()
            } else {
                canary_now.clone().unwrap_or_else(|| f.stable_hash.clone())
            };
            if canary_now.as_deref() != Some(want_canary.as_str())
                || stable_now.as_deref() != Some(f.stable_hash.as_str())
            {
                d.out.actions.push(Action::SetSubsets {
                    canary: want_canary,
                    stable: f.stable_hash.clone(),
                });
                d.out.event(
                    "UpdatedDestinationRule",
                    "DestinationRule subsets updated".to_string(),
                );
            }
            canary_now.clone()
        }
        Err(e) => {
            d.out.warn("TrafficRoutingError", e.clone());
            None
        }
    }
}

/// Traffic: never more to the canary than its available pods can take, and only through a canary Service (or
/// subset) that already selects them. Returns the weight the router has now.
fn traffic(
    obs: &Observed,
    f: &Facts,
    mode: &Mode,
    canary_subset: Option<&str>,
    additional: &[Additional],
    d: &mut Draft,
) -> Option<i32> {
    let mut observed_weight = None;
    match &obs.traffic {
        Some(TrafficState::Weight(w) | TrafficState::OutOfStep(w)) => observed_weight = Some(*w),
        Some(TrafficState::Error(e)) => d.out.warn("TrafficRoutingError", e.clone()),
        _ => {}
    }
    let service_hash = |state: &Option<ServiceState>| match state {
        Some(ServiceState::Selecting(h)) => h.clone(),
        _ => None,
    };
    let new_hash = f.new_hash.as_str();
    let wanted = if mode.aborted {
        0
    } else if f.fully_promoted {
        // Both sides select the same pods once the stable Service (or subset) has switched.
        let stable_switched = match &obs.subsets {
            Some(Ok((_, stable_now))) => stable_now.as_deref() == Some(new_hash),
            Some(Err(_)) => false,
            None => service_hash(&obs.stable_service).as_deref() == Some(new_hash),
        };
        if stable_switched {
            0
        } else {
            observed_weight.unwrap_or(0)
        }
    } else {
        step_weight(f.steps, mode.index)
    };
    let canary_selects_new = match &obs.subsets {
        Some(_) => canary_subset == Some(new_hash),
        None => service_hash(&obs.canary_service).as_deref() == Some(new_hash),
    };
    let replicas = f.replicas;
    let available = f.new_rs.available;
    let supported = |w: i32| -> bool {
        w == 0 || (!mode.aborted && canary_selects_new && available >= replicas::weight_replicas(w, replicas))
    };
    let weight = if f.fully_promoted || supported(wanted) {
        wanted
    } else {
        // Hold the current weight if the pods can still take it, else lower it to what they can.
        let held = observed_weight.unwrap_or(0);
        if supported(held) {
            held
        } else if canary_selects_new && replicas > 0 {
            (0..=held).rev().find(|w| supported(*w)).unwrap_or(0)
        } else {
            0
        }
    };
    // The stable side must be able to take the rest. With dynamicStableScale the stable ReplicaSet shrinks as
    // the canary grows, so going back (abort, a lower step) waits for stable pods, lowering the canary's share
    // step by step instead of sending everything to too few stable pods.
    let weight = match f.stable_rs.filter(|_| !f.fully_promoted && replicas > 0) {
        Some(stable) => {
            let min_canary = (100 - stable.available * 100 / replicas).max(0);
            if weight < min_canary {
                weight.max(min_canary.min(observed_weight.unwrap_or(min_canary)))
            } else {
                weight
            }
        }
        None => weight,
    };
    // Experiment destinations are not read back from the router: the weights last set (status) say which are
    // there, and those no longer wanted are sent with weight 0, which takes them out.
    let recorded = recorded_additional(obs);
    let mut sent: Vec<Additional> = additional.to_vec();
    for r in &recorded {
        if !sent.iter().any(|a| a.service == r.service) {
            sent.push(Additional {
                weight: 0,
                ..r.clone()
            });
        }
    }
    let additional_changed = recorded.as_slice() != additional;
    let out_of_step = matches!(obs.traffic, Some(TrafficState::OutOfStep(_)));
    if out_of_step && observed_weight == Some(weight) && !additional_changed {
        // Same weights, written again to bring the router's objects in step; no weight changed to tell of.
        d.out.actions.push(Action::SetCanaryWeight {
            weight,
            additional: sent,
        });
    } else if !matches!(obs.traffic, Some(TrafficState::Error(_)))
        && (observed_weight != Some(weight) || additional_changed)
    {
        d.out.actions.push(Action::SetCanaryWeight {
            weight,
            additional: sent,
        });
        let mut details = Vec::new();
        if observed_weight != Some(weight) || !additional_changed {
            details.push(format!("from {} to {weight}", observed_weight.unwrap_or(0)));
        }
        if additional_changed {
            details.push(format!("additional: {}", describe_additional(additional)));
        }
        d.out.event(
            "TrafficWeightUpdated",
            format!("Traffic weight updated {}", details.join(", ")),
        );
    }
    observed_weight
}

/// A step as a short description, as upstream's step-completed event prints it.
fn describe(step: &CanaryStep) -> String {
    if let Some(w) = step.set_weight {
        return format!("setWeight: {w}");
    }
    if let Some(p) = &step.pause {
        return match &p.duration {
            Some(d) => format!(
                "pause: {}",
                serde_json::to_string(d).unwrap_or_default().trim_matches('"')
            ),
            None => "pause".into(),
        };
    }
    if step.set_canary_scale.is_some() {
        return "setCanaryScale".into();
    }
    if step.analysis.is_some() {
        return "analysis".into();
    }
    if step.experiment.is_some() {
        return "experiment".into();
    }
    "step".into()
}

/// Step progress: whether the current step is done, and the index after this reconcile.
fn steps(
    obs: &Observed,
    f: &Facts,
    mode: &Mode,
    targets: &Targets,
    observed_weight: Option<i32>,
    done_already: bool,
    d: &mut Draft,
) -> usize {
    let index = mode.index;
    if mode.aborted || f.user_paused || f.fully_promoted || index >= f.steps.len() {
        return index;
    }
    let step = &f.steps[index];
    let routed =
        f.ro.spec
            .strategy
            .canary
            .as_ref()
            .is_some_and(|c| c.traffic_routing.is_some());
    let traffic_at = |w: i32| !routed || observed_weight == Some(w);
    let new_rs = f.new_rs;
    let canary_ready = new_rs.spec_replicas == targets.canary && new_rs.available >= targets.canary;
    let mut step_done = done_already;
    if let Some(w) = step.set_weight {
        let stable_ready = routed || f.stable_rs.is_none_or(|rs| rs.spec_replicas == targets.stable);
        step_done |= canary_ready && stable_ready && traffic_at(w);
    } else if step.set_canary_scale.is_some() {
        step_done |= canary_ready;
    } else if step.analysis.is_some() || step.experiment.is_some() {
        // Decided by the analysis and experiment stages.
    } else if step.set_header_route.is_some() || step.set_mirror_route.is_some() {
        route_step(obs, step, d);
        step_done = true;
    } else if let Some(pause) = &step.pause {
        step_done |= !step_done && pause_step(pause, d);
    }
    if !step_done {
        return index;
    }
    d.out.event(
        "RolloutStepCompleted",
        format!(
            "Rollout step {}/{} completed ({})",
            index + 1,
            f.steps.len(),
            describe(step)
        ),
    );
    d.st.current_step_index = Some(index as i32 + 1);
    index + 1
}

/// setHeaderRoute and setMirrorRoute: the route is set (or removed when the step has no match); the executor
/// reads it back, so the step is done in this reconcile.
fn route_step(obs: &Observed, step: &CanaryStep, d: &mut Draft) {
    let present = |name: &str| obs.managed_routes_present.iter().any(|p| p == name);
    if let Some(route) = &step.set_header_route {
        let name = route.name.clone().unwrap_or_default();
        match route.r#match.as_ref().filter(|m| !m.is_empty()) {
            Some(matches) => d.out.actions.push(Action::SetHeaderRoute {
                name,
                matches: matches.clone(),
            }),
            None if present(&name) => d
                .out
                .actions
                .push(Action::RemoveManagedRoutes { names: vec![name] }),
            None => {}
        }
    } else if let Some(route) = &step.set_mirror_route {
        match route.r#match.as_ref().filter(|m| !m.is_empty()) {
            Some(matches) => d.out.actions.push(Action::SetMirrorRoute {
                name: route.name.clone(),
                matches: matches.clone(),
                percentage: route.percentage,
            }),
            None if present(&route.name) => d.out.actions.push(Action::RemoveManagedRoutes {
                names: vec![route.name.clone()],
            }),
            None => {}
        }
    }
}

/// A pause step: starts the pause (CanaryPauseStep), and says whether a timed pause has expired.
fn pause_step(pause: &sluice_crds::rollout::RolloutPause, d: &mut Draft) -> bool {
    let existing =
        d.st.pause_conditions
            .as_ref()
            .and_then(|p| p.iter().find(|c| c.reason == CANARY_PAUSE_STEP))
            .cloned();
    match (existing, pause.duration.as_ref().and_then(parse_pause_duration)) {
        (Some(c), Some(duration)) => {
            let elapsed = seconds_since(&c.start_time, d.now);
            if elapsed >= duration.as_secs_f64() {
                d.st.pause_conditions = None;
                d.st.controller_pause = None;
                return true;
            }
            d.out
                .requeue(Duration::from_secs_f64(duration.as_secs_f64() - elapsed));
            false
        }
        (Some(_), None) => false,
        (None, Some(duration)) if duration.is_zero() => true,
        (None, duration) => {
            d.st.pause_conditions = Some(vec![PauseCondition {
                reason: CANARY_PAUSE_STEP.into(),
                start_time: d.time(),
            }]);
            d.st.controller_pause = Some(true);
            d.out.event(
                "RolloutPaused",
                format!("Rollout is paused ({CANARY_PAUSE_STEP})"),
            );
            if let Some(duration) = duration {
                d.out.requeue(duration);
            }
            false
        }
    }
}

/// Promotion: every step done, the new ReplicaSet whole and (with a router) all traffic on it.
fn promote(f: &Facts, mode: &Mode, index: usize, routed: bool, observed_weight: Option<i32>, d: &mut Draft) {
    if mode.aborted || f.fully_promoted || index < f.steps.len() || f.user_paused {
        return;
    }
    let new_rs = f.new_rs;
    let whole = new_rs.spec_replicas == f.replicas && new_rs.available >= f.replicas;
    if !whole || (routed && observed_weight != Some(100)) {
        return;
    }
    let how = if d.st.promote_full == Some(true) {
        "Full promotion requested".to_string()
    } else {
        format!("Completed all {} canary steps", f.steps.len())
    };
    d.st.stable_rs = Some(f.new_hash.clone());
    d.st.promote_full = None;
    d.st.current_step_index = (!f.steps.is_empty()).then_some(f.steps.len() as i32);
    d.out.event(
        "RolloutCompleted",
        format!(
            "Rollout completed update to revision {} ({}): {how}",
            f.revision, f.new_hash
        ),
    );
}

/// The experiment destinations the last weights written to the status name.
fn recorded_additional(obs: &Observed) -> Vec<Additional> {
    obs.rollout
        .status
        .as_ref()
        .and_then(|s| s.canary.as_ref())
        .and_then(|c| c.weights.as_ref())
        .and_then(|w| w.additional.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|w| {
            Some(Additional {
                service: w.service_name.clone().filter(|s| !s.is_empty())?,
                pod_template_hash: w.pod_template_hash.clone().unwrap_or_default(),
                weight: w.weight,
            })
        })
        .collect()
}

/// Experiment destinations as the TrafficWeightUpdated event lists them.
fn describe_additional(additional: &[Additional]) -> String {
    let parts: Vec<String> = additional
        .iter()
        .map(|a| format!("{}={}", a.service, a.weight))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// status.canary.weights: the canary weight as the router has it, the experiment destinations as set, and the
/// stable with the rest.
fn record_weights(
    f: &Facts,
    canary: &CanaryStrategy,
    observed_weight: Option<i32>,
    additional: &[Additional],
    d: &mut Draft,
) {
    let w = observed_weight.unwrap_or(0);
    let pending = d
        .out
        .actions
        .iter()
        .any(|a| matches!(a, Action::SetCanaryWeight { .. }));
    let others: i32 = additional.iter().map(|a| a.weight).sum();
    let destinations: Vec<WeightDestination> = additional
        .iter()
        .map(|a| WeightDestination {
            weight: a.weight,
            service_name: Some(a.service.clone()),
            pod_template_hash: Some(a.pod_template_hash.clone()).filter(|h| !h.is_empty()),
        })
        .collect();
    d.st.canary.get_or_insert_with(Default::default).weights = Some(TrafficWeights {
        canary: WeightDestination {
            weight: w,
            service_name: canary.canary_service.clone(),
            pod_template_hash: Some(f.new_hash.clone()),
        },
        stable: WeightDestination {
            weight: 100 - w - others,
            service_name: canary.stable_service.clone(),
            pod_template_hash: Some(f.stable_hash.clone()),
        },
        additional: (!destinations.is_empty()).then_some(destinations),
        verified: Some(!pending && observed_weight.is_some()),
    });
}
