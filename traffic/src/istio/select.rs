//! Finding the targeted routes of a VirtualService and the canary/stable destinations inside one route.

use std::collections::BTreeSet;

use serde_json::Value;

use super::error::IstioError;
use super::model::{Role, RouteKind, RouteRef, RouteSelector, Split, TcpMatch, TlsMatch};
use super::ops::{identity, malformed, name_of, spec_list};

/// Kind used in messages when the object does not say.
pub(crate) const VS_KIND: &str = "VirtualService";

/// `metadata.name` of the VirtualService.
pub(crate) fn vs_name(vs: &Value) -> String {
    identity(vs, VS_KIND).1
}

/// The routes of one section (`spec.http`, `spec.tls`, `spec.tcp`); absent reads as empty.
pub(crate) fn routes_of(vs: &Value, kind: RouteKind) -> Result<&[Value], IstioError> {
    spec_list(vs, kind.field(), VS_KIND)
}

/// The route a `RouteRef` points at.
pub(crate) fn route_at<'a>(vs: &'a Value, at: &RouteRef) -> Result<&'a Value, IstioError> {
    routes_of(vs, at.kind)?.get(at.index).ok_or_else(|| {
        malformed(
            vs,
            VS_KIND,
            format!("spec.{}[{}]", at.kind, at.index),
            "does not exist",
        )
    })
}

fn route_ref(kind: RouteKind, index: usize, route: &Value) -> RouteRef {
    RouteRef {
        kind,
        index,
        name: name_of(route).map(str::to_string),
    }
}

fn push_unique(targets: &mut Vec<RouteRef>, target: RouteRef) {
    if !targets
        .iter()
        .any(|t| t.kind == target.kind && t.index == target.index)
    {
        targets.push(target);
    }
}

/// Whether `route` is one of the managed routes (by name).
fn is_managed(route: &Value, managed: &[String]) -> bool {
    name_of(route).is_some_and(|n| managed.iter().any(|m| m == n))
}

/// The http routes that carry the weights: the named ones, or the single route that is not managed. With no http
/// route at all the error is `NoHttpRoutes` whether or not routes are named (a name cannot be the problem).
pub(crate) fn weighted_http_targets(
    vs: &Value,
    routes: &RouteSelector,
    managed: &[String],
) -> Result<Vec<RouteRef>, IstioError> {
    let http = routes_of(vs, RouteKind::Http)?;
    if http.is_empty() {
        return Err(IstioError::NoHttpRoutes { vs: vs_name(vs) });
    }
    let mut targets = Vec::new();
    match routes.http.as_ref().filter(|names| !names.is_empty()) {
        Some(names) => {
            for name in names {
                let index = http
                    .iter()
                    .position(|route| name_of(route) == Some(name.as_str()))
                    .ok_or_else(|| IstioError::HttpRouteNotFound {
                        vs: vs_name(vs),
                        name: name.clone(),
                    })?;
                push_unique(&mut targets, route_ref(RouteKind::Http, index, &http[index]));
            }
        }
        None => {
            let unmanaged: Vec<usize> = http
                .iter()
                .enumerate()
                .filter(|(_, route)| !is_managed(route, managed))
                .map(|(index, _)| index)
                .collect();
            match unmanaged.as_slice() {
                [] => return Err(IstioError::NoHttpRoutes { vs: vs_name(vs) }),
                [index] => targets.push(route_ref(RouteKind::Http, *index, &http[*index])),
                many => {
                    return Err(IstioError::AmbiguousHttpRoutes {
                        vs: vs_name(vs),
                        count: many.len(),
                    });
                }
            }
        }
    }
    Ok(targets)
}

/// Whether the selector targets http routes at all (tls/tcp selectors alone leave http untouched).
fn targets_http(routes: &RouteSelector) -> bool {
    routes.http.as_ref().is_some_and(|names| !names.is_empty())
        || (routes.tls.is_empty() && routes.tcp.is_empty())
}

/// Whether the VirtualService has tls or tcp routes but no http route, so http route names can name nothing.
fn has_only_tls_or_tcp(vs: &Value) -> Result<bool, IstioError> {
    Ok(routes_of(vs, RouteKind::Http)?.is_empty()
        && !(routes_of(vs, RouteKind::Tls)?.is_empty() && routes_of(vs, RouteKind::Tcp)?.is_empty()))
}

/// The weighted http routes, then the managed mirror routes that carry a copy of their destinations.
fn http_targets(vs: &Value, routes: &RouteSelector, managed: &[String]) -> Result<Vec<RouteRef>, IstioError> {
    let mut targets = weighted_http_targets(vs, routes, managed)?;
    for (index, route) in routes_of(vs, RouteKind::Http)?.iter().enumerate() {
        if is_managed(route, managed) && route.get("mirror").is_some() {
            push_unique(&mut targets, route_ref(RouteKind::Http, index, route));
        }
    }
    Ok(targets)
}

/// The only route of a tls or tcp section when the Rollout selects none; `None` when the section is empty.
fn sole_route(
    vs: &Value,
    kind: RouteKind,
    ambiguous: fn(String, usize) -> IstioError,
) -> Result<Option<RouteRef>, IstioError> {
    match routes_of(vs, kind)? {
        [] => Ok(None),
        [route] => Ok(Some(route_ref(kind, 0, route))),
        many => Err(ambiguous(vs_name(vs), many.len())),
    }
}

/// The single tls route and the single tcp route, for a VirtualService without http routes and no selectors.
fn sole_tls_and_tcp_routes(vs: &Value) -> Result<Vec<RouteRef>, IstioError> {
    let tls = sole_route(vs, RouteKind::Tls, |vs, count| IstioError::AmbiguousTlsRoutes {
        vs,
        count,
    })?;
    let tcp = sole_route(vs, RouteKind::Tcp, |vs, count| IstioError::AmbiguousTcpRoutes {
        vs,
        count,
    })?;
    Ok(tls.into_iter().chain(tcp).collect())
}

/// Adds the tls routes each selector matches; a selector matching none is an error.
fn push_tls_targets(
    vs: &Value,
    selectors: &[TlsMatch],
    targets: &mut Vec<RouteRef>,
) -> Result<(), IstioError> {
    let tls = routes_of(vs, RouteKind::Tls)?;
    for selector in selectors {
        let mut found = false;
        for (index, route) in tls.iter().enumerate() {
            if tls_matches(selector, route) {
                found = true;
                push_unique(targets, route_ref(RouteKind::Tls, index, route));
            }
        }
        if !found {
            return Err(IstioError::TlsRouteNotFound {
                vs: vs_name(vs),
                port: selector.port,
                sni_hosts: selector.sni_hosts.clone(),
            });
        }
    }
    Ok(())
}

/// Adds the tcp routes each selector matches; a selector matching none is an error.
fn push_tcp_targets(
    vs: &Value,
    selectors: &[TcpMatch],
    targets: &mut Vec<RouteRef>,
) -> Result<(), IstioError> {
    let tcp = routes_of(vs, RouteKind::Tcp)?;
    for selector in selectors {
        let mut found = false;
        for (index, route) in tcp.iter().enumerate() {
            if tcp_matches(selector, route) {
                found = true;
                push_unique(targets, route_ref(RouteKind::Tcp, index, route));
            }
        }
        if !found {
            return Err(IstioError::TcpRouteNotFound {
                vs: vs_name(vs),
                port: selector.port,
            });
        }
    }
    Ok(())
}

/// Every route whose weights the rollout owns, in order http, tls, tcp, without duplicates. Managed mirror
/// routes are included because they carry a copy of the weighted route list (as upstream shifts them too).
///
/// Route names apply to the kinds that have them: on a VirtualService with tls/tcp routes but no http route the
/// http names are ignored, and without tls/tcp selectors its single tls route and single tcp route are targeted.
pub(crate) fn select_targets(
    vs: &Value,
    routes: &RouteSelector,
    managed: &[String],
) -> Result<Vec<RouteRef>, IstioError> {
    let mut targets = Vec::new();
    if has_only_tls_or_tcp(vs)? {
        if routes.tls.is_empty() && routes.tcp.is_empty() {
            return sole_tls_and_tcp_routes(vs);
        }
    } else if targets_http(routes) {
        targets = http_targets(vs, routes, managed)?;
    }
    push_tls_targets(vs, &routes.tls, &mut targets)?;
    push_tcp_targets(vs, &routes.tcp, &mut targets)?;
    Ok(targets)
}

fn match_entries(route: &Value) -> &[Value] {
    route
        .get("match")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Port 0 and no port mean the same thing (upstream reads both as 0).
fn normalise_port(port: Option<i64>) -> Option<i64> {
    port.filter(|p| *p != 0)
}

/// The single port a route's match entries agree on; `Err(())` when they name several (never selectable).
fn single_port(route: &Value) -> Result<Option<i64>, ()> {
    let ports: BTreeSet<Option<i64>> = match_entries(route)
        .iter()
        .map(|entry| normalise_port(entry.get("port").and_then(Value::as_i64)))
        .collect();
    match ports.len() {
        0 => Ok(None),
        1 => Ok(ports.into_iter().next().flatten()),
        _ => Err(()),
    }
}

/// A TLS route matches when its match entries name exactly the selector's port and SNI host set.
fn tls_matches(selector: &TlsMatch, route: &Value) -> bool {
    let Ok(port) = single_port(route) else {
        return false;
    };
    let sni: BTreeSet<&str> = match_entries(route)
        .iter()
        .filter_map(|entry| entry.get("sniHosts").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let wanted: BTreeSet<&str> = selector.sni_hosts.iter().map(String::as_str).collect();
    port == normalise_port(selector.port) && sni == wanted
}

/// A TCP route matches when its match entries name exactly the selector's port.
fn tcp_matches(selector: &TcpMatch, route: &Value) -> bool {
    single_port(route).is_ok_and(|port| port == normalise_port(selector.port))
}

/// Host short name: the text before the first `.` (`svc.ns.svc.cluster.local` → `svc`).
pub(crate) fn short_name(host: &str) -> &str {
    host.split('.').next().unwrap_or(host)
}

/// A canary or stable destination found in a route.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// Index in the route's `route[]` list.
    pub index: usize,
    /// Its `weight`, if the field is present.
    pub weight: Option<i32>,
    /// The identifying field under `destination` (`host` or `subset`), pinned by `test` ops.
    pub field: &'static str,
    /// The identifying value as found.
    pub value: String,
}

/// A destination that is neither canary nor stable.
#[derive(Debug, Clone)]
pub(crate) struct Other {
    /// A description, e.g. `host "legacy"`.
    pub label: String,
    /// Its `weight`, if the field is present.
    pub weight: Option<i32>,
    /// Index in the route's `route[]` list.
    pub index: usize,
    /// Its host, when it names no subset (an experiment Service's destination does not).
    pub host: Option<String>,
}

/// The destinations of one route sorted into canary, stable and the rest.
#[derive(Debug, Clone)]
pub(crate) struct Classified {
    /// The canary destination, if present.
    pub canary: Option<Found>,
    /// The stable destination, if present.
    pub stable: Option<Found>,
    /// Other destinations (experiment Services are among them).
    pub others: Vec<Other>,
    /// Whether the route has exactly one destination (Istio then sends it everything, weight or not).
    pub single: bool,
}

impl Classified {
    /// The weight traffic actually gets: a missing field means 100 on a single-destination route, else 0.
    pub fn effective(&self, weight: Option<i32>) -> i32 {
        weight.unwrap_or(if self.single { 100 } else { 0 })
    }
}

/// What a side of the split is looked up by, for messages: `service "x"` or `subset "x"`.
pub(crate) fn target_label(split: &Split, role: Role) -> String {
    match (split, role) {
        (Split::Host(h), Role::Canary) => format!("service {:?}", h.canary_service),
        (Split::Host(h), Role::Stable) => format!("service {:?}", h.stable_service),
        (Split::Subset(s), Role::Canary) => format!("subset {:?}", s.canary_subset),
        (Split::Subset(s), Role::Stable) => format!("subset {:?}", s.stable_subset),
    }
}

fn role_of(split: &Split, host: &str, subset: Option<&str>) -> Option<Role> {
    match split {
        Split::Host(h) => {
            let short = short_name(host);
            if short.is_empty() {
                None
            } else if short == short_name(&h.canary_service) {
                Some(Role::Canary)
            } else if short == short_name(&h.stable_service) {
                Some(Role::Stable)
            } else {
                None
            }
        }
        Split::Subset(s) => {
            let host_ok = s
                .host
                .as_deref()
                .is_none_or(|want| short_name(want) == short_name(host));
            match subset {
                Some(sub) if host_ok && sub == s.canary_subset => Some(Role::Canary),
                Some(sub) if host_ok && sub == s.stable_subset => Some(Role::Stable),
                _ => None,
            }
        }
    }
}

/// Reads a weight field (Istio's int32): absent is `None`; integers and integral floats are accepted.
fn parse_weight(vs: &Value, at: &RouteRef, index: usize, dest: &Value) -> Result<Option<i32>, IstioError> {
    let invalid = |problem| malformed(vs, VS_KIND, dest_path(at, index, "weight"), problem);
    match dest.get("weight") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let whole = match (n.as_i64(), n.as_f64()) {
                (Some(w), _) => w,
                (None, Some(f)) if f.fract() == 0.0 && f.abs() <= f64::from(i32::MAX) => f as i64,
                _ => return Err(invalid("is not a 32-bit integer")),
            };
            i32::try_from(whole)
                .map(Some)
                .map_err(|_| invalid("is not a 32-bit integer"))
        }
        Some(_) => Err(invalid("is not a number")),
    }
}

fn dest_path(at: &RouteRef, index: usize, leaf: &str) -> String {
    format!("spec.{}[{}].route[{}].{leaf}", at.kind, at.index, index)
}

/// The `route[]` destination list of a route; absent reads as empty.
pub(crate) fn destinations<'a>(
    vs: &Value,
    at: &RouteRef,
    route: &'a Value,
) -> Result<&'a [Value], IstioError> {
    match route.get("route") {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(malformed(
            vs,
            VS_KIND,
            format!("spec.{}[{}].route", at.kind, at.index),
            "is not a list",
        )),
    }
}

/// Sorts the destinations of the route at `at` into canary, stable and others.
pub(crate) fn classify(vs: &Value, at: &RouteRef, split: &Split) -> Result<Classified, IstioError> {
    let route = route_at(vs, at)?;
    let dests = destinations(vs, at, route)?;
    let mut out = Classified {
        canary: None,
        stable: None,
        others: Vec::new(),
        single: dests.len() == 1,
    };
    for (index, dest) in dests.iter().enumerate() {
        let destination = dest.get("destination");
        let host = destination
            .and_then(|d| d.get("host"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let subset = destination.and_then(|d| d.get("subset")).and_then(Value::as_str);
        let weight = parse_weight(vs, at, index, dest)?;
        let Some(role) = role_of(split, host, subset) else {
            let label = match subset {
                Some(sub) => format!("host {host:?} subset {sub:?}"),
                None => format!("host {host:?}"),
            };
            out.others.push(Other {
                label,
                weight,
                index,
                host: subset.is_none().then(|| host.to_string()),
            });
            continue;
        };
        let (field, value) = match split {
            Split::Host(_) => ("host", host.to_string()),
            Split::Subset(_) => ("subset", subset.unwrap_or_default().to_string()),
        };
        let slot = match role {
            Role::Canary => &mut out.canary,
            Role::Stable => &mut out.stable,
        };
        if slot.is_some() {
            return Err(IstioError::DuplicateDestination {
                vs: vs_name(vs),
                route: at.clone(),
                role,
                target: target_label(split, role),
            });
        }
        *slot = Some(Found {
            index,
            weight,
            field,
            value,
        });
    }
    Ok(out)
}
