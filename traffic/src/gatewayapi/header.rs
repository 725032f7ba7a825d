//! Header routes (`setHeaderRoute`): a rule appended to the route that sends the requests of the split rule
//! which also carry the headers to the canary backend alone, recorded in the route's annotation so that it can
//! be updated in place and removed at promotion or abort.

use std::collections::BTreeMap;

use json_patch::{Patch, PatchOperation};
use serde_json::{Value, json};

use super::MANAGED_ROUTES_ANNOTATION;
use super::model::{RouteKind, Services};
use super::rules::{annotation_ops, backend_refs, managed_rules, ref_name, rules, split_rules};
use crate::istio::ops::{add, ptr, remove, replace, test};
use crate::router::{HeaderMatch, RouterError, StringMatch};

/// A Gateway API header match: exact stays exact; a prefix becomes a regular expression anchored on it.
fn header_match(m: &HeaderMatch) -> Value {
    let (kind, value) = match &m.value {
        StringMatch::Exact(v) => ("Exact", v.clone()),
        StringMatch::Prefix(v) => ("RegularExpression", format!("{}.*", regex_escape(v))),
        StringMatch::Regex(v) => ("RegularExpression", v.clone()),
    };
    json!({"name": m.header_name, "type": kind, "value": value})
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if r"\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The fields of a match that select requests besides headers, per kind (HTTP: path, method, query
/// parameters; gRPC: method).
fn kept_match_fields(kind: RouteKind) -> &'static [&'static str] {
    match kind {
        RouteKind::Http => &["path", "method", "queryParams"],
        RouteKind::Grpc => &["method"],
        RouteKind::Tcp => &[],
    }
}

/// The header rule built from split rule `template`: each of its matches with the headers added (one match of
/// the headers alone when it has none), its filters, and the canary backend alone (same port).
fn header_rule(
    doc: &Value,
    kind: RouteKind,
    services: &Services,
    template: (usize, &Value),
    headers: &[HeaderMatch],
) -> Result<Value, RouterError> {
    let (i, rule) = template;
    let added: Vec<Value> = headers.iter().map(header_match).collect();
    let originals: Vec<&Value> = rule
        .get("matches")
        .and_then(Value::as_array)
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    let mut matches: Vec<Value> = Vec::new();
    for m in &originals {
        let mut out = serde_json::Map::new();
        for field in kept_match_fields(kind) {
            if let Some(v) = m.get(*field) {
                out.insert(field.to_string(), v.clone());
            }
        }
        let mut all = m
            .get("headers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        all.extend(added.iter().cloned());
        out.insert("headers".into(), Value::Array(all));
        matches.push(Value::Object(out));
    }
    if matches.is_empty() {
        matches.push(json!({ "headers": added }));
    }
    let canary = backend_refs(doc, rule, i)?
        .iter()
        .find(|r| ref_name(r) == Some(services.canary.as_str()))
        .cloned()
        .unwrap_or_default();
    let mut backend = json!({"group": "", "kind": "Service", "name": services.canary});
    if let Some(port) = canary.get("port") {
        backend["port"] = port.clone();
    }
    let mut out = json!({ "matches": matches, "backendRefs": [backend] });
    if let Some(filters) = rule.get("filters") {
        out["filters"] = filters.clone();
    }
    Ok(out)
}

fn rule_ptr(i: usize) -> json_patch::jsonptr::PointerBuf {
    ptr(&["spec", "rules", &i.to_string()])
}

fn state_value(state: &BTreeMap<String, usize>) -> Option<String> {
    (!state.is_empty()).then(|| json!(state).to_string())
}

/// The patch that adds header route `name` (or updates it in place) on a route of `kind`; with no matches it
/// removes the route, as the plugin does. Kinds without headers (TCP) get no patch.
pub fn header_route_patch(
    doc: &Value,
    kind: RouteKind,
    services: &Services,
    name: &str,
    headers: &[HeaderMatch],
) -> Result<Patch, RouterError> {
    if !kind.has_headers() {
        return Ok(Patch(Vec::new()));
    }
    if headers.is_empty() {
        return remove_managed_routes_patch(doc, &[name.to_string()]);
    }
    let all = rules(doc)?;
    let first = split_rules(doc, services)?[0];
    let rule = header_rule(doc, kind, services, (first, &all[first]), headers)?;
    let mut state = managed_rules(doc)?;
    let mut ops: Vec<PatchOperation> = Vec::new();
    match state.get(name) {
        Some(&i) if all[i] == rule => return Ok(Patch(Vec::new())),
        Some(&i) => {
            ops.push(test(rule_ptr(i), all[i].clone()));
            ops.push(replace(rule_ptr(i), rule));
        }
        None => {
            ops.push(add(ptr(&["spec", "rules", "-"]), rule));
            state.insert(name.to_string(), all.len());
        }
    }
    ops.extend(annotation_ops(
        doc,
        MANAGED_ROUTES_ANNOTATION,
        state_value(&state),
    ));
    Ok(Patch(ops))
}

/// The patch that removes the header routes `names` the rollout added to the route (each pinned by a `test`
/// of the whole rule), shifting the recorded indexes of the others. Empty when none of them is present.
pub fn remove_managed_routes_patch(doc: &Value, names: &[String]) -> Result<Patch, RouterError> {
    let all = rules(doc)?;
    let state = managed_rules(doc)?;
    let mut gone: Vec<usize> = state
        .iter()
        .filter(|(n, _)| names.contains(n))
        .map(|(_, i)| *i)
        .collect();
    gone.sort_unstable();
    gone.dedup();
    let mut ops: Vec<PatchOperation> = Vec::new();
    for &i in gone.iter().rev() {
        ops.push(test(rule_ptr(i), all[i].clone()));
        ops.push(remove(rule_ptr(i)));
    }
    let kept: BTreeMap<String, usize> = state
        .into_iter()
        .filter(|(n, i)| !names.contains(n) && !gone.contains(i))
        .map(|(n, i)| {
            let shift = gone.iter().filter(|g| **g < i).count();
            (n, i - shift)
        })
        .collect();
    ops.extend(annotation_ops(doc, MANAGED_ROUTES_ANNOTATION, state_value(&kept)));
    Ok(Patch(ops))
}
