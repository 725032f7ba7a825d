//! Managed http routes (`setHeaderRoute`, `setMirrorRoute`): inserted at the top of `spec.http` in the order of
//! `trafficRouting.managedRoutes`, replaced in place, and removed at promotion or abort.

use json_patch::{Patch, PatchOperation};
use serde_json::{Map, Value, json};

use super::error::IstioError;
use super::model::{HeaderMatch, MirrorMatch, RouteKind, RouteSelector, StringMatch};
use super::ops::{add, move_op, name_of, ptr, remove, replace, test};
use super::select::{route_at, routes_of, vs_name, weighted_http_targets};

fn string_match(value: &StringMatch) -> Value {
    match value {
        StringMatch::Exact(v) => json!({ "exact": v }),
        StringMatch::Prefix(v) => json!({ "prefix": v }),
        StringMatch::Regex(v) => json!({ "regex": v }),
    }
}

fn headers_object(headers: &[HeaderMatch]) -> Value {
    let map: Map<String, Value> = headers
        .iter()
        .map(|h| (h.header_name.clone(), string_match(&h.value)))
        .collect();
    Value::Object(map)
}

fn name_test(index: usize, name: &str) -> PatchOperation {
    test(ptr(&["spec", "http", &index.to_string(), "name"]), json!(name))
}

/// Inserts `route` (or replaces the route of the same name in place), then moves the managed routes present to
/// the top of `spec.http` in `managed_order`, keeping the relative order of every other route.
fn place_managed_route(
    vs: &Value,
    name: &str,
    route: Value,
    managed_order: &[String],
) -> Result<Patch, IstioError> {
    if !managed_order.iter().any(|m| m == name) {
        return Err(IstioError::UnmanagedRoute(name.to_string()));
    }
    let http = routes_of(vs, RouteKind::Http)?;
    if http.is_empty() {
        return Err(IstioError::NoHttpRoutes { vs: vs_name(vs) });
    }
    // The planned layout of spec.http after each op, by route name, so that every index we emit is valid at
    // the moment its op runs.
    let mut layout: Vec<Option<String>> = http.iter().map(|r| name_of(r).map(str::to_string)).collect();
    let mut wanted_top: Vec<&str> = Vec::new();
    for managed in managed_order {
        let present = managed == name || layout.iter().any(|n| n.as_deref() == Some(managed.as_str()));
        if present && !wanted_top.contains(&managed.as_str()) {
            wanted_top.push(managed);
        }
    }

    let mut ops = Vec::new();
    match http.iter().position(|r| name_of(r) == Some(name)) {
        Some(index) => {
            if http[index] != route {
                ops.push(name_test(index, name));
                ops.push(replace(ptr(&["spec", "http", &index.to_string()]), route));
            }
        }
        None => {
            let at = wanted_top
                .iter()
                .position(|m| *m == name)
                .unwrap_or(0)
                .min(layout.len());
            ops.push(add(ptr(&["spec", "http", &at.to_string()]), route));
            layout.insert(at, Some(name.to_string()));
        }
    }
    for (target, managed) in wanted_top.iter().enumerate() {
        let Some(offset) = layout[target..]
            .iter()
            .position(|n| n.as_deref() == Some(*managed))
        else {
            continue;
        };
        let from = target + offset;
        if from != target {
            ops.push(name_test(from, managed));
            ops.push(move_op(
                ptr(&["spec", "http", &from.to_string()]),
                ptr(&["spec", "http", &target.to_string()]),
            ));
            let moved = layout.remove(from);
            layout.insert(target, moved);
        }
    }
    Ok(Patch(ops))
}

/// JSON patch for a `setHeaderRoute` step: an http route `name` sending requests that match any of `matches` to
/// `canary_destination` with weight 100, placed among the managed routes at the top of `spec.http`.
pub fn header_route_patch(
    vs: &Value,
    name: &str,
    matches: &[HeaderMatch],
    canary_destination: &Value,
    managed_route_names_in_order: &[String],
) -> Result<Patch, IstioError> {
    if matches.is_empty() {
        return Err(IstioError::EmptyMatch(name.to_string()));
    }
    let match_list: Vec<Value> = matches
        .iter()
        .map(|m| json!({ "headers": headers_object(std::slice::from_ref(m)) }))
        .collect();
    let route = json!({
        "name": name,
        "match": match_list,
        "route": [{ "destination": canary_destination, "weight": 100 }],
    });
    place_managed_route(vs, name, route, managed_route_names_in_order)
}

/// JSON patch for a `setMirrorRoute` step: an http route `name` for requests matching any of `matches` that keeps
/// the weighted route's destinations (a copy of the `route` list of the first http route `routes` targets,
/// managed routes skipped) and mirrors `percentage`% (default 100) of them to `canary_destination`, placed among
/// the managed routes at the top.
pub fn mirror_route_patch(
    vs: &Value,
    name: &str,
    matches: &[MirrorMatch],
    percentage: Option<i32>,
    canary_destination: &Value,
    routes: &RouteSelector,
    managed_route_names_in_order: &[String],
) -> Result<Patch, IstioError> {
    if matches.is_empty() {
        return Err(IstioError::EmptyMatch(name.to_string()));
    }
    let percentage = percentage.unwrap_or(100);
    if !(0..=100).contains(&percentage) {
        return Err(IstioError::MirrorPercentageOutOfRange(percentage));
    }
    let weighted = weighted_http_targets(vs, routes, managed_route_names_in_order)?
        .into_iter()
        .next()
        .ok_or_else(|| IstioError::NoHttpRoutes { vs: vs_name(vs) })?;
    let weighted_routes = route_at(vs, &weighted)?
        .get("route")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let match_list: Vec<Value> = matches
        .iter()
        .map(|m| {
            let mut entry = Map::new();
            if let Some(method) = &m.method {
                entry.insert("method".to_string(), string_match(method));
            }
            if let Some(path) = &m.path {
                entry.insert("uri".to_string(), string_match(path));
            }
            if !m.headers.is_empty() {
                entry.insert("headers".to_string(), headers_object(&m.headers));
            }
            Value::Object(entry)
        })
        .collect();
    let route = json!({
        "name": name,
        "match": match_list,
        "route": weighted_routes,
        "mirror": canary_destination,
        "mirrorPercentage": { "value": percentage },
    });
    place_managed_route(vs, name, route, managed_route_names_in_order)
}

/// JSON patch removing every http route named in `names` (managed routes at promotion or abort); indices go from
/// highest to lowest so each stays valid, and each removal is pinned by a `test` of the route's name.
pub fn remove_managed_routes_patch(vs: &Value, names: &[String]) -> Result<Patch, IstioError> {
    let http = routes_of(vs, RouteKind::Http)?;
    let mut ops = Vec::new();
    for (index, route) in http.iter().enumerate().rev() {
        if let Some(name) = name_of(route).filter(|n| names.iter().any(|m| m == n)) {
            ops.push(name_test(index, name));
            ops.push(remove(ptr(&["spec", "http", &index.to_string()])));
        }
    }
    Ok(Patch(ops))
}
