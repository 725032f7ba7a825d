//! Canary/stable weights of a VirtualService: the patch that sets them, and reading them back.

use json_patch::{Patch, PatchOperation};
use serde_json::{Value, json};

use super::error::IstioError;
use super::model::{Role, RouteRef, RouteSelector, RouteWeights, Split};
use super::ops::{add, ptr, remove, replace, test};
use super::select::{
    Classified, Found, classify, route_at, select_targets, short_name, target_label, vs_name,
    weighted_http_targets,
};
use crate::router::Additional;

fn check_weight(canary_weight: i32) -> Result<i32, IstioError> {
    if (0..=100).contains(&canary_weight) {
        Ok(canary_weight)
    } else {
        Err(IstioError::WeightOutOfRange(canary_weight))
    }
}

/// JSON patch setting canary weight = `canary_weight` and stable weight = 100 − `canary_weight` on every
/// targeted route, and nothing else; empty when every route already has exactly those weights.
pub fn weight_patch(
    vs: &Value,
    split: &Split,
    routes: &RouteSelector,
    canary_weight: i32,
) -> Result<Patch, IstioError> {
    weight_patch_with_managed(vs, split, routes, &[], canary_weight)
}

/// `weight_patch` for a Rollout with `trafficRouting.managedRoutes`: those routes do not count against the
/// single-http-route rule, and managed mirror routes (which copy the weighted route list) are shifted too.
pub fn weight_patch_with_managed(
    vs: &Value,
    split: &Split,
    routes: &RouteSelector,
    managed_route_names: &[String],
    canary_weight: i32,
) -> Result<Patch, IstioError> {
    weight_patch_with_additional(vs, split, routes, managed_route_names, canary_weight, &[])
}

/// The experiment destinations to put in place: those with a Service (a destination is never written without
/// a host), each weight a percentage.
fn usable(additional: &[Additional]) -> Result<Vec<&Additional>, IstioError> {
    let usable: Vec<&Additional> = additional.iter().filter(|a| !a.service.is_empty()).collect();
    for a in &usable {
        check_weight(a.weight)?;
    }
    Ok(usable)
}

/// The stable's share: 100 − canary − Σ experiment weights, which must not be negative.
fn stable_share(canary_weight: i32, additional: &[&Additional]) -> Result<i32, IstioError> {
    let extra: i32 = additional.iter().map(|a| a.weight).sum();
    let stable = 100 - canary_weight - extra;
    if stable < 0 {
        return Err(IstioError::WeightOutOfRange(canary_weight + extra));
    }
    Ok(stable)
}

/// The experiment Service (of `additional`) a destination host names, if any.
fn experiment_of<'a>(additional: &[&'a Additional], host: Option<&str>) -> Option<&'a Additional> {
    let host = short_name(host?);
    additional.iter().copied().find(|a| a.service == host)
}

/// The route's experiment destinations with the weight each should get. Upstream deletes every other
/// destination; they are left alone here, which is only sound while they get no traffic (the weights of a route
/// must total 100), so another destination with weight is an error. Experiment destinations are ours to set.
fn experiment_destinations(
    vs: &Value,
    at: &RouteRef,
    found: &Classified,
    additional: &[&Additional],
) -> Result<Vec<(Found, i32)>, IstioError> {
    let mut experiments = Vec::new();
    for other in &found.others {
        if let Some(a) = experiment_of(additional, other.host.as_deref()) {
            let dest = Found {
                index: other.index,
                weight: other.weight,
                field: "host",
                value: other.host.clone().unwrap_or_default(),
            };
            experiments.push((dest, a.weight));
            continue;
        }
        let weight = found.effective(other.weight);
        if weight != 0 {
            return Err(IstioError::ForeignDestination {
                vs: vs_name(vs),
                route: at.clone(),
                destination: other.label.clone(),
                weight,
            });
        }
    }
    Ok(experiments)
}

/// `weight_patch_with_managed` with experiment destinations: each experiment Service gets its weight (its
/// destination `{host: <service>}` appended where missing), one with weight 0 is removed, and the stable gets
/// 100 − canary − Σ experiment weights.
pub fn weight_patch_with_additional(
    vs: &Value,
    split: &Split,
    routes: &RouteSelector,
    managed_route_names: &[String],
    canary_weight: i32,
    additional: &[Additional],
) -> Result<Patch, IstioError> {
    let canary_weight = check_weight(canary_weight)?;
    let additional = usable(additional)?;
    let stable_weight = stable_share(canary_weight, &additional)?;
    let mut ops: Vec<PatchOperation> = Vec::new();
    for at in select_targets(vs, routes, managed_route_names)? {
        let found = classify(vs, &at, split)?;
        let missing = |role| IstioError::DestinationNotFound {
            vs: vs_name(vs),
            route: at.clone(),
            role,
            target: target_label(split, role),
        };
        let canary = found.canary.clone().ok_or_else(|| missing(Role::Canary))?;
        let stable = found.stable.clone().ok_or_else(|| missing(Role::Stable))?;
        let experiments = experiment_destinations(vs, &at, &found, &additional)?;
        let kind = at.kind.field();
        let route_index = at.index.to_string();
        let mut route_pinned = false;
        let mut pin = |ops: &mut Vec<PatchOperation>| {
            if let (Some(name), false) = (&at.name, route_pinned) {
                ops.push(test(ptr(&["spec", kind, &route_index, "name"]), json!(name)));
                route_pinned = true;
            }
        };
        let kept = experiments
            .iter()
            .filter(|(_, w)| *w > 0)
            .map(|(d, w)| (d.clone(), *w));
        for (dest, wanted) in [(canary, canary_weight), (stable, stable_weight)]
            .into_iter()
            .chain(kept)
        {
            // A missing field is rewritten even when it would read as the wanted value: explicit weights are
            // unambiguous across Istio versions.
            if dest.weight == Some(wanted) {
                continue;
            }
            pin(&mut ops);
            let dest_index = dest.index.to_string();
            ops.push(test(
                ptr(&[
                    "spec",
                    kind,
                    &route_index,
                    "route",
                    &dest_index,
                    "destination",
                    dest.field,
                ]),
                json!(dest.value),
            ));
            let path = ptr(&["spec", kind, &route_index, "route", &dest_index, "weight"]);
            ops.push(match dest.weight {
                Some(_) => replace(path, json!(wanted)),
                None => add(path, json!(wanted)),
            });
        }
        // Removals from the highest index down, so that the indices still to come do not move.
        let mut gone: Vec<&Found> = experiments
            .iter()
            .filter(|(_, w)| *w == 0)
            .map(|(d, _)| d)
            .collect();
        gone.sort_by_key(|d| std::cmp::Reverse(d.index));
        for dest in gone {
            pin(&mut ops);
            let dest_index = dest.index.to_string();
            ops.push(test(
                ptr(&[
                    "spec",
                    kind,
                    &route_index,
                    "route",
                    &dest_index,
                    "destination",
                    "host",
                ]),
                json!(dest.value),
            ));
            ops.push(remove(ptr(&["spec", kind, &route_index, "route", &dest_index])));
        }
        for a in additional.iter().filter(|a| a.weight > 0) {
            if experiments.iter().any(|(d, _)| short_name(&d.value) == a.service) {
                continue;
            }
            pin(&mut ops);
            ops.push(add(
                ptr(&["spec", kind, &route_index, "route", "-"]),
                json!({"destination": {"host": a.service}, "weight": a.weight}),
            ));
        }
    }
    Ok(Patch(ops))
}

/// The canary and stable weights of every targeted route as Istio would apply them: a missing weight counts as
/// 100 on a single-destination route and 0 otherwise; a missing destination counts as 0.
pub fn observed_weights(
    vs: &Value,
    split: &Split,
    routes: &RouteSelector,
) -> Result<Vec<RouteWeights>, IstioError> {
    observed_weights_with_managed(vs, split, routes, &[])
}

/// `observed_weights` for a Rollout with `trafficRouting.managedRoutes` (see `weight_patch_with_managed`).
pub fn observed_weights_with_managed(
    vs: &Value,
    split: &Split,
    routes: &RouteSelector,
    managed_route_names: &[String],
) -> Result<Vec<RouteWeights>, IstioError> {
    select_targets(vs, routes, managed_route_names)?
        .into_iter()
        .map(|route| {
            let found = classify(vs, &route, split)?;
            let weight_of = |dest: &Option<Found>| dest.as_ref().map_or(0, |d| found.effective(d.weight));
            Ok(RouteWeights {
                canary: weight_of(&found.canary),
                stable: weight_of(&found.stable),
                route,
            })
        })
        .collect()
}

/// True iff every targeted route gives exactly `canary_weight` to canary and 100 − `canary_weight` to stable.
pub fn verify(
    vs: &Value,
    split: &Split,
    routes: &RouteSelector,
    canary_weight: i32,
) -> Result<bool, IstioError> {
    verify_with_managed(vs, split, routes, &[], canary_weight)
}

/// `verify` for a Rollout with `trafficRouting.managedRoutes` (see `weight_patch_with_managed`).
pub fn verify_with_managed(
    vs: &Value,
    split: &Split,
    routes: &RouteSelector,
    managed_route_names: &[String],
    canary_weight: i32,
) -> Result<bool, IstioError> {
    verify_with_additional(vs, split, routes, managed_route_names, canary_weight, &[])
}

/// `verify_with_managed` with experiment destinations (see `weight_patch_with_additional`): each experiment
/// Service shows its weight, one with weight 0 is absent, and the stable has the rest.
pub fn verify_with_additional(
    vs: &Value,
    split: &Split,
    routes: &RouteSelector,
    managed_route_names: &[String],
    canary_weight: i32,
    additional: &[Additional],
) -> Result<bool, IstioError> {
    let canary_weight = check_weight(canary_weight)?;
    let additional = usable(additional)?;
    let stable_weight = stable_share(canary_weight, &additional)?;
    for at in select_targets(vs, routes, managed_route_names)? {
        let found = classify(vs, &at, split)?;
        let weight_of = |dest: &Option<Found>| dest.as_ref().map_or(0, |d| found.effective(d.weight));
        if weight_of(&found.canary) != canary_weight || weight_of(&found.stable) != stable_weight {
            return Ok(false);
        }
        for a in &additional {
            let shown: i32 = found
                .others
                .iter()
                .filter(|o| o.host.as_deref().is_some_and(|h| short_name(h) == a.service))
                .map(|o| found.effective(o.weight))
                .sum();
            let present = found
                .others
                .iter()
                .any(|o| o.host.as_deref().is_some_and(|h| short_name(h) == a.service));
            if shown != a.weight || (a.weight == 0 && present) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The canary `destination` object (`{host, subset?, port?}`) of the first weighted http route (managed routes
/// skipped), to be used as the target of header routes and mirrors so they reach the canary as it does.
pub fn canary_destination(
    vs: &Value,
    split: &Split,
    routes: &RouteSelector,
    managed_route_names: &[String],
) -> Result<Value, IstioError> {
    let at = weighted_http_targets(vs, routes, managed_route_names)?
        .into_iter()
        .next()
        .ok_or_else(|| IstioError::NoHttpRoutes { vs: vs_name(vs) })?;
    let found = classify(vs, &at, split)?;
    let canary = found.canary.ok_or_else(|| IstioError::DestinationNotFound {
        vs: vs_name(vs),
        route: at.clone(),
        role: Role::Canary,
        target: target_label(split, Role::Canary),
    })?;
    let route = route_at(vs, &at)?;
    Ok(route
        .get("route")
        .and_then(|dests| dests.get(canary.index))
        .and_then(|dest| dest.get("destination"))
        .cloned()
        .unwrap_or(Value::Null))
}
