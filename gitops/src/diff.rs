//! The per-resource diff of Argo CD's server-side diff strategy (`GE:pkg/diff/diff.go ServerSideDiff`,
//! `AC:util/argo/normalizers/diff_normalizer.go`, `AC:util/argo/managedfields`), as pure functions over
//! `serde_json::Value`s. No Kubernetes client here: the controller obtains the *predicted live* object by
//! a server-side apply dry-run of the desired manifest (`PATCH ?dryRun=All&fieldManager=argocd-controller
//! &force=true`, an apply patch) and hands it in with the live object.
//!
//! Why predicted live is compared with live as it is: the dry-run merges our manifest into the live object
//! the way the real apply would, so predicted live already holds every field of live that other managers
//! own, the API server's defaults and the admission webhooks' mutations, plus ours. Whatever differs after
//! [`normalize`] and the ignore rules is a field that the next sync would change. Upstream's
//! `removeWebhookMutation` step (keep from predicted live only the fields owned by `argocd-controller`,
//! then merge them into live) needs the typed schema of every kind to merge lists, so it is not done here:
//! a deterministic webhook writes the same value in the dry-run as it wrote into live and makes no
//! difference; a webhook that writes a fresh value on every admission needs an `ignoreDifferences` rule.
//! In exchange, a field deleted from Git (which the dry-run prunes) shows as a difference, which a merge
//! into live would hide.
//!
//! Anything shown to a person (a log line, an event, a status message) goes through [`mask_secret`] or
//! [`mask_secrets`] first: a Secret's values never leave this module in clear or in base64.

use std::collections::BTreeSet;

use base64::Engine;
use serde_json::{Map, Value};
use sluice_crds::application::ResourceIgnoreDifferences;

/// The annotation that client-side apply writes; it holds a full copy of the manifest (Secret values too).
pub const ANNOTATION_LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// How many differing paths a [`DiffResult::Modified`] lists at most.
pub const DIFF_PATH_LIMIT: usize = 20;

/// The `metadata` fields that the API server populates and that never count as a difference.
const SERVER_METADATA: [&str; 8] = [
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];
/// Length of the first mask of a Secret value; each further distinct value of the same key gets 4 more.
const MASK_FIRST_LEN: usize = 8;
const MASK_STEP: usize = 4;

/// The outcome of comparing one desired object with its live counterpart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffResult {
    /// Desired and live agree once normalized and once the ignore rules are applied.
    Synced,
    /// Desired but not live: the object needs creating (OutOfSync).
    Missing,
    /// Live but no longer desired: the object requires pruning (OutOfSync).
    Extraneous,
    /// Both exist and differ.
    Modified {
        /// The differing paths in jq syntax (`.spec.replicas`, `.metadata.labels["app.kubernetes.io/name"]`),
        /// at most [`DIFF_PATH_LIMIT`]; names only, never values.
        paths: Vec<String>,
        /// More paths differ than `paths` lists.
        truncated: bool,
    },
}

impl DiffResult {
    /// Whether the resource counts as Synced (every other outcome makes it OutOfSync).
    pub fn is_synced(&self) -> bool {
        matches!(self, DiffResult::Synced)
    }

    /// Whether the live object is extraneous and a prune would delete it.
    pub fn requires_pruning(&self) -> bool {
        matches!(self, DiffResult::Extraneous)
    }
}

/// Compares the desired object with the live one.
///
/// `predicted_live` is the result of the server-side apply dry-run when the object exists; when it does
/// not (`live` is `None`) no dry-run is needed and the rendered manifest, or `None` when nothing is
/// desired, is passed. Desired without live is [`DiffResult::Missing`], live without desired is
/// [`DiffResult::Extraneous`], neither is [`DiffResult::Synced`] (nothing to do). With both, the
/// [`normalize`]d values are compared after the matching ignore rules removed their fields from both sides;
/// `null` equals an absent field and numbers compare by value.
pub fn diff(predicted_live: Option<&Value>, live: Option<&Value>, rules: &IgnoreRules) -> DiffResult {
    let (predicted_live, live) = match (predicted_live, live) {
        (Some(predicted_live), Some(live)) => (predicted_live, live),
        (Some(_), None) => return DiffResult::Missing,
        (None, Some(_)) => return DiffResult::Extraneous,
        (None, None) => return DiffResult::Synced,
    };
    let mut desired = normalize(predicted_live);
    let mut actual = normalize(live);
    rules.apply(live, &mut desired, &mut actual);
    let mut paths = changed_paths(&desired, &actual, DIFF_PATH_LIMIT + 1);
    if paths.is_empty() {
        return DiffResult::Synced;
    }
    let truncated = paths.len() > DIFF_PATH_LIMIT;
    paths.truncate(DIFF_PATH_LIMIT);
    DiffResult::Modified { paths, truncated }
}

/// Returns a copy of `obj` without what the server populates or what must never count as a difference:
/// `status` (Argo CD's default `ignoreResourceStatusField: all`, CustomResourceDefinitions included), the
/// server-populated `metadata` fields (`managedFields`, `resourceVersion`, `uid`, `generation`,
/// `creationTimestamp`, `selfLink`, `deletionTimestamp`, `deletionGracePeriodSeconds`), the
/// last-applied-configuration annotation, and empty or null `annotations`/`labels` maps. A core Secret's
/// `stringData` is folded into base64 `data` (and a null `data` value becomes `""`), as the API server
/// stores it.
pub fn normalize(obj: &Value) -> Value {
    let mut out = obj.clone();
    let secret = is_core_secret(&out);
    let Some(map) = out.as_object_mut() else {
        return out;
    };
    map.remove("status");
    if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
        for field in SERVER_METADATA {
            metadata.remove(field);
        }
        if let Some(Value::Object(annotations)) = metadata.get_mut("annotations") {
            annotations.remove(ANNOTATION_LAST_APPLIED);
        }
        for field in ["annotations", "labels"] {
            if metadata.get(field).is_some_and(is_empty_map_or_null) {
                metadata.remove(field);
            }
        }
    }
    if secret {
        fold_string_data(map);
    }
    out
}

fn is_empty_map_or_null(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// The API group of an object: the part of `apiVersion` before `/`, empty for the core group.
fn group_of(obj: &Value) -> &str {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    api_version.split_once('/').map_or("", |(group, _)| group)
}

fn is_core_secret(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Secret") && group_of(obj).is_empty()
}

/// Folds a Secret's `stringData` into `data` as the API server does: each value base64-encoded, taking
/// precedence over a `data` entry of the same key. A null `data` value becomes `""`. A `stringData` that is
/// not a map is left in place (the API server would refuse it).
fn fold_string_data(secret: &mut Map<String, Value>) {
    if let Some(Value::Object(data)) = secret.get_mut("data") {
        for value in data.values_mut() {
            if value.is_null() {
                *value = Value::String(String::new());
            }
        }
    }
    let string_data = match secret.get("stringData") {
        Some(Value::Object(string_data)) => string_data.clone(),
        Some(Value::Null) => Map::new(),
        _ => return,
    };
    secret.remove("stringData");
    if string_data.is_empty() {
        return;
    }
    let data = secret.entry("data").or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Value::Object(data) = data {
        for (key, value) in string_data {
            let text = match value {
                Value::String(text) => text,
                Value::Null => String::new(),
                other => other.to_string(),
            };
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            data.insert(key, Value::String(encoded));
        }
    }
}

/// The paths (jq syntax, `.` for the root) at which `a` and `b` differ, at most `limit` of them, in key
/// order. Absent fields equal `null`, numbers compare by value (`1` equals `1.0`), and arrays compare
/// element by element (an element present on one side only is a difference at its index).
pub fn changed_paths(a: &Value, b: &Value, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = String::new();
    collect_changes(a, b, &mut path, limit, &mut out);
    out
}

fn collect_changes(a: &Value, b: &Value, path: &mut String, limit: usize, out: &mut Vec<String>) {
    if out.len() >= limit {
        return;
    }
    match (a, b) {
        (Value::Object(left), Value::Object(right)) => {
            let keys: BTreeSet<&String> = left.keys().chain(right.keys()).collect();
            for key in keys {
                let len = path.len();
                push_key(path, key);
                let left = left.get(key).unwrap_or(&Value::Null);
                let right = right.get(key).unwrap_or(&Value::Null);
                collect_changes(left, right, path, limit, out);
                path.truncate(len);
            }
        }
        (Value::Array(left), Value::Array(right)) => {
            for index in 0..left.len().max(right.len()) {
                let len = path.len();
                path.push_str(&format!("[{index}]"));
                match (left.get(index), right.get(index)) {
                    (Some(left), Some(right)) => collect_changes(left, right, path, limit, out),
                    _ if out.len() < limit => out.push(path.clone()),
                    _ => {}
                }
                path.truncate(len);
            }
        }
        _ if !json_eq(a, b, true) => {
            out.push(if path.is_empty() {
                ".".to_string()
            } else {
                path.clone()
            });
        }
        _ => {}
    }
}

/// Appends `.key`, or `["key"]` when the key is not a jq identifier.
fn push_key(path: &mut String, key: &str) {
    let mut chars = key.chars();
    let identifier = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if identifier {
        path.push('.');
        path.push_str(key);
    } else {
        path.push('[');
        path.push_str(&Value::String(key.to_string()).to_string());
        path.push(']');
    }
}

/// Deep equality with numbers compared by value; with `null_is_absent`, an object field that is `null`
/// equals one that is absent.
fn json_eq(a: &Value, b: &Value, null_is_absent: bool) -> bool {
    match (a, b) {
        (Value::Number(left), Value::Number(right)) => number_eq(left, right),
        (Value::Array(left), Value::Array(right)) => {
            left.len() == right.len() && left.iter().zip(right).all(|(l, r)| json_eq(l, r, null_is_absent))
        }
        (Value::Object(left), Value::Object(right)) if null_is_absent => {
            left.keys().chain(right.keys()).all(|key| {
                let l = left.get(key).unwrap_or(&Value::Null);
                let r = right.get(key).unwrap_or(&Value::Null);
                json_eq(l, r, true)
            })
        }
        (Value::Object(left), Value::Object(right)) => {
            left.len() == right.len()
                && left
                    .iter()
                    .all(|(k, l)| right.get(k).is_some_and(|r| json_eq(l, r, false)))
        }
        _ => a == b,
    }
}

fn number_eq(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
        return x == y;
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// Returns a copy of `obj` safe to show: for a core-group Secret, `stringData` is folded into `data`, every
/// `data` value is replaced by a mask of `+` characters and the last-applied-configuration annotation
/// (a copy in clear of the manifest) is dropped; any other object is returned unchanged.
pub fn mask_secret(obj: &Value) -> Value {
    let (masked, _) = mask_secrets(Some(obj), None);
    masked.unwrap_or(Value::Null)
}

/// Masks a pair of objects (desired and live) as Argo CD's `HideSecretData` does: per key, the first
/// distinct value is masked with 8 `+`, the next distinct one with 12, and so on, so the same value on
/// both sides gets the same mask and different values get different masks, while the masks reveal
/// nothing of the values, their length included. Non-Secret objects are returned unchanged.
pub fn mask_secrets(a: Option<&Value>, b: Option<&Value>) -> (Option<Value>, Option<Value>) {
    let mut sides = [a.map(prepare_secret), b.map(prepare_secret)];
    let mut keys = BTreeSet::new();
    for side in sides.iter().flatten().filter(|side| is_core_secret(side)) {
        if let Some(Value::Object(data)) = side.get("data") {
            keys.extend(data.keys().cloned());
        }
    }
    for key in keys {
        let mut assigned: Vec<(Value, String)> = Vec::new();
        for side in sides.iter_mut().flatten().filter(|side| is_core_secret(side)) {
            let Some(value) = side.get_mut("data").and_then(|data| data.get_mut(&key)) else {
                continue;
            };
            let mask = match assigned.iter().find(|(seen, _)| seen == value) {
                Some((_, mask)) => mask.clone(),
                None => {
                    let mask = "+".repeat(MASK_FIRST_LEN + MASK_STEP * assigned.len());
                    assigned.push((value.clone(), mask.clone()));
                    mask
                }
            };
            *value = Value::String(mask);
        }
    }
    let [a, b] = sides;
    (a, b)
}

/// Copies an object and, for a core Secret, folds `stringData`, drops the last-applied annotation and
/// masks a `data` or `stringData` that is not a map as a whole (its content cannot be told apart).
fn prepare_secret(obj: &Value) -> Value {
    let mut out = obj.clone();
    if !is_core_secret(&out) {
        return out;
    }
    let Some(map) = out.as_object_mut() else {
        return out;
    };
    fold_string_data(map);
    for field in ["data", "stringData"] {
        if map.get(field).is_some_and(|v| !v.is_object() && !v.is_null()) {
            map.insert(field.to_string(), Value::String("+".repeat(MASK_FIRST_LEN)));
        }
    }
    if let Some(Value::Object(metadata)) = map.get_mut("metadata")
        && let Some(Value::Object(annotations)) = metadata.get_mut("annotations")
    {
        annotations.remove(ANNOTATION_LAST_APPLIED);
        if annotations.is_empty() {
            metadata.remove("annotations");
        }
    }
    out
}

/// An `ignoreDifferences` entry that cannot be compiled; the message names the entry and the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreRuleError {
    /// A JSON pointer that is not RFC 6901.
    #[error("ignoreDifferences[{index}] (kind {kind:?}): malformed jsonPointer {pointer:?}: {reason}")]
    JsonPointer {
        /// Position of the entry in `ignoreDifferences`.
        index: usize,
        /// The entry's kind.
        kind: String,
        /// The pointer as written.
        pointer: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A jq path expression outside the supported subset, or not well formed.
    #[error(
        "ignoreDifferences[{index}] (kind {kind:?}): unsupported jqPathExpression {expression:?}: {reason}"
    )]
    JqPath {
        /// Position of the entry in `ignoreDifferences`.
        index: usize,
        /// The entry's kind.
        kind: String,
        /// The expression as written.
        expression: String,
        /// The construct that is not supported, or the syntax error.
        reason: String,
    },
}

/// The compiled `ignoreDifferences` of an Application: which objects each entry matches and the fields it
/// removes from both sides before they are compared.
///
/// - `jsonPointers`: RFC 6901 (`~0` is `~`, `~1` is `/`); a pointer to nothing removes nothing.
/// - `jqPathExpressions`: what `del(expr)` deletes, for the subset of jq that ignore rules use: paths
///   (`.a.b`, `."x.y"`, `.a["x.y"]`, `.a[0]`, `.a[-1]`, `.a[]`, `?`), stages joined by `|`, alternatives
///   joined by `,`, parentheses, and `select(cond)` where `cond` combines paths and literals with `==`,
///   `!=`, `<`, `<=`, `>`, `>=`, `and`, `or`, `|`, `startswith`, `endswith`, `contains` (strings), `has`,
///   `not`, `ascii_downcase` and `ascii_upcase`. Anything else is a compile error naming the construct.
/// - `managedFieldsManagers`: the fields that those managers own in the live object's
///   `metadata.managedFields` (FieldsV1: `f:` fields, `k:{...}` keyed items, `v:` set values, `i:`
///   indexes) are removed from both sides.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    rules: Vec<IgnoreRule>,
}

#[derive(Debug, Clone)]
struct IgnoreRule {
    group: String,
    kind: String,
    name: Option<String>,
    namespace: Option<String>,
    pointers: Vec<Vec<String>>,
    jq: Vec<jq::PathExpr>,
    managers: Vec<String>,
}

impl IgnoreRules {
    /// Compiles `ignoreDifferences` entries. Group and kind match as upstream's globs (`*` any run of
    /// characters, `?` one character; an empty group is the core group); an unset or empty name or
    /// namespace matches every object. A malformed JSON pointer or an unsupported jq expression is an
    /// error naming it.
    pub fn compile(entries: &[ResourceIgnoreDifferences]) -> Result<Self, IgnoreRuleError> {
        let mut rules = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let mut pointers = Vec::new();
            for pointer in entry.json_pointers.iter().flatten() {
                let tokens = parse_pointer(pointer).map_err(|reason| IgnoreRuleError::JsonPointer {
                    index,
                    kind: entry.kind.clone(),
                    pointer: pointer.clone(),
                    reason,
                })?;
                pointers.push(tokens);
            }
            let mut expressions = Vec::new();
            for expression in entry.jq_path_expressions.iter().flatten() {
                let compiled = jq::compile(expression).map_err(|reason| IgnoreRuleError::JqPath {
                    index,
                    kind: entry.kind.clone(),
                    expression: expression.clone(),
                    reason,
                })?;
                expressions.push(compiled);
            }
            rules.push(IgnoreRule {
                group: entry.group.clone().unwrap_or_default(),
                kind: entry.kind.clone(),
                name: entry.name.clone().filter(|name| !name.is_empty()),
                namespace: entry.namespace.clone().filter(|namespace| !namespace.is_empty()),
                pointers,
                jq: expressions,
                managers: entry.managed_fields_managers.clone().unwrap_or_default(),
            });
        }
        Ok(IgnoreRules { rules })
    }

    /// Whether there are no rules at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Removes the ignored fields from both normalized sides. The rules match the raw `live` object, whose
    /// `metadata.managedFields` also say which fields the listed managers own. As upstream, empty maps and
    /// arrays left behind are removed once any rule matched.
    fn apply(&self, live: &Value, desired: &mut Value, actual: &mut Value) {
        let mut matched = false;
        for rule in self.rules.iter().filter(|rule| rule.matches(live)) {
            matched = true;
            for side in [&mut *desired, &mut *actual] {
                for pointer in &rule.pointers {
                    remove_pointer(side, pointer);
                }
                for expression in &rule.jq {
                    let paths = expression.paths(side);
                    jq::delete_paths(side, paths);
                }
            }
            for fields in managed_fields_of(live, &rule.managers) {
                remove_owned(desired, fields, &[]);
                remove_owned(actual, fields, &[]);
            }
        }
        if matched {
            remove_empty(desired);
            remove_empty(actual);
        }
    }
}

impl IgnoreRule {
    fn matches(&self, obj: &Value) -> bool {
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let metadata = obj.get("metadata");
        let field = |name: &str| {
            metadata
                .and_then(|m| m.get(name))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        glob_match(&self.group, group_of(obj))
            && glob_match(&self.kind, kind)
            && self.name.as_deref().is_none_or(|name| name == field("name"))
            && self
                .namespace
                .as_deref()
                .is_none_or(|namespace| namespace == field("namespace"))
    }
}

/// Argo CD's `glob.Match` without separators.
fn glob_match(pattern: &str, text: &str) -> bool {
    crate::glob::matches(pattern, text, &[])
}

/// Splits an RFC 6901 pointer into its unescaped reference tokens.
fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Err("the empty pointer names the whole object, which cannot be ignored".to_string());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err("a JSON pointer starts with '/'".to_string());
    };
    let mut tokens = Vec::new();
    for raw in rest.split('/') {
        let mut token = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c != '~' {
                token.push(c);
                continue;
            }
            match chars.next() {
                Some('0') => token.push('~'),
                Some('1') => token.push('/'),
                _ => return Err(format!("'~' must be followed by '0' or '1' in {raw:?}")),
            }
        }
        tokens.push(token);
    }
    Ok(tokens)
}

/// Removes the field a pointer names; a path that does not exist removes nothing.
fn remove_pointer(root: &mut Value, tokens: &[String]) {
    let Some((last, parents)) = tokens.split_last() else {
        return;
    };
    let mut current = root;
    for token in parents {
        let next = match current {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => pointer_index(token).and_then(|i| items.get_mut(i)),
            _ => None,
        };
        match next {
            Some(next) => current = next,
            None => return,
        }
    }
    match current {
        Value::Object(map) => {
            map.remove(last);
        }
        Value::Array(items) => {
            if let Some(index) = pointer_index(last).filter(|&i| i < items.len()) {
                items.remove(index);
            }
        }
        _ => {}
    }
}

/// An array index token: `0` or a decimal number without leading zeros.
fn pointer_index(token: &str) -> Option<usize> {
    let canonical = token == "0" || (!token.starts_with('0') && token.bytes().all(|b| b.is_ascii_digit()));
    if canonical { token.parse().ok() } else { None }
}

/// The FieldsV1 trees of the `metadata.managedFields` entries of `live` whose manager is listed.
fn managed_fields_of<'a>(live: &'a Value, managers: &[String]) -> Vec<&'a Map<String, Value>> {
    if managers.is_empty() {
        return Vec::new();
    }
    let entries = live.pointer("/metadata/managedFields").and_then(Value::as_array);
    entries
        .into_iter()
        .flatten()
        .filter(|entry| {
            let manager = entry.get("manager").and_then(Value::as_str).unwrap_or("");
            managers.iter().any(|listed| listed == manager)
        })
        .filter_map(|entry| entry.get("fieldsV1").and_then(Value::as_object))
        .collect()
}

/// Removes from `target` the fields that a FieldsV1 tree owns. An entry without children (`f:replicas: {}`,
/// `v:"finalizer"`, or only the `.` marker) is an owned leaf and is removed; an entry with children is
/// descended into: `f:name` a field of a map, `k:{...}` the items of a list whose key fields equal the
/// key, `i:N` an item by index. The `.` marker alone removes nothing below a node with children, so a
/// field that another manager sets inside a map or list item still counts, and the key fields of a
/// `k:` item (`protected`) are kept so that the items of both sides still pair up.
fn remove_owned(target: &mut Value, fields: &Map<String, Value>, protected: &[String]) {
    let mut doomed_items = Vec::new();
    for (entry, sub) in fields {
        let empty = Map::new();
        let sub = sub.as_object().unwrap_or(&empty);
        let leaf = sub.keys().all(|key| key == ".");
        if let Some(name) = entry.strip_prefix("f:") {
            if protected.iter().any(|key| key == name) {
                continue;
            }
            let Value::Object(map) = &mut *target else {
                continue;
            };
            if leaf {
                map.remove(name);
            } else if let Some(child) = map.get_mut(name) {
                remove_owned(child, sub, &[]);
            }
        } else if let Some(key) = entry.strip_prefix("k:") {
            let Ok(Value::Object(key)) = serde_json::from_str::<Value>(key) else {
                continue;
            };
            let Value::Array(items) = &mut *target else {
                continue;
            };
            let key_fields: Vec<String> = key.keys().cloned().collect();
            for (index, item) in items.iter_mut().enumerate() {
                let same_key = key
                    .iter()
                    .all(|(k, v)| item.get(k).is_some_and(|x| json_eq(x, v, false)));
                if !same_key {
                    continue;
                }
                if leaf {
                    doomed_items.push(index);
                } else {
                    remove_owned(item, sub, &key_fields);
                }
            }
        } else if let Some(value) = entry.strip_prefix("v:") {
            let Ok(value) = serde_json::from_str::<Value>(value) else {
                continue;
            };
            let Value::Array(items) = &*target else { continue };
            let equal = items
                .iter()
                .enumerate()
                .filter(|(_, item)| json_eq(item, &value, false));
            doomed_items.extend(equal.map(|(index, _)| index));
        } else if let Some(index) = entry.strip_prefix("i:") {
            let Ok(index) = index.parse::<usize>() else {
                continue;
            };
            let Some(item) = target.as_array_mut().and_then(|items| items.get_mut(index)) else {
                continue;
            };
            if leaf {
                doomed_items.push(index);
            } else {
                remove_owned(item, sub, &[]);
            }
        }
    }
    if let Value::Array(items) = target {
        doomed_items.sort_unstable();
        doomed_items.dedup();
        for index in doomed_items.into_iter().rev() {
            items.remove(index);
        }
    }
}

/// Upstream's `removeEmptyObjects`: drops, recursively, map fields whose value is an empty map or array,
/// and list items that are maps and became empty.
fn remove_empty(value: &mut Value) {
    let Value::Object(map) = value else { return };
    let keys: Vec<String> = map.keys().cloned().collect();
    for key in keys {
        let remove = match map.get_mut(&key) {
            Some(child @ Value::Object(_)) => {
                remove_empty(child);
                child.as_object().is_some_and(Map::is_empty)
            }
            Some(Value::Array(items)) => {
                for item in items.iter_mut() {
                    remove_empty(item);
                }
                items.retain(|item| item.as_object().is_none_or(|m| !m.is_empty()));
                items.is_empty()
            }
            _ => false,
        };
        if remove {
            map.remove(&key);
        }
    }
}

/// The subset of jq that `jqPathExpressions` use, evaluated as the paths that `del(expr)` deletes.
///
/// Paths: `.`, `.a.b`, `."x.y"`, `.a["x.y"]`, `.[0]`, `.a[-1]`, `.a[]`, `.[]` (arrays and maps), the
/// optional marker `?`; stages joined by `|` and alternatives by `,`; parentheses. Filters:
/// `select(cond)`, where `cond` combines paths and literals (strings, numbers, `true`, `false`, `null`)
/// with `==`, `!=`, `<`, `<=`, `>`, `>=`, `and`, `or`, `|` and the functions `startswith(s)`,
/// `endswith(s)`, `contains(s)` (strings), `has(k)`, `not`, `ascii_downcase`, `ascii_upcase`. Where jq
/// would stop with a runtime error (a field of a string, `startswith` of a number), the value simply
/// yields nothing, so an item is not selected and nothing is deleted through it.
mod jq {
    use std::cmp::Ordering;

    use serde_json::Value;

    use super::json_eq;

    /// One step of a concrete path inside a document.
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
    pub(super) enum Step {
        Key(String),
        Index(usize),
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Seg {
        Key(String),
        Index(i64),
        Iterate,
    }

    /// A compiled path expression: stages joined by `|`, each a list of `,` alternatives.
    #[derive(Debug, Clone)]
    pub(super) struct PathExpr {
        stages: Vec<Vec<Term>>,
    }

    #[derive(Debug, Clone)]
    struct Term {
        base: Base,
        suffix: Vec<Seg>,
    }

    #[derive(Debug, Clone)]
    enum Base {
        Identity,
        Select(Expr),
        Group(PathExpr),
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum CmpOp {
        Eq,
        Ne,
        Lt,
        Le,
        Gt,
        Ge,
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Func {
        StartsWith,
        EndsWith,
        Contains,
        Has,
        Not,
        AsciiDowncase,
        AsciiUpcase,
    }

    /// A value expression inside `select(...)`.
    #[derive(Debug, Clone)]
    enum Expr {
        Identity,
        Literal(Value),
        Index(Box<Expr>, Vec<Seg>),
        Pipe(Box<Expr>, Box<Expr>),
        Or(Box<Expr>, Box<Expr>),
        And(Box<Expr>, Box<Expr>),
        Cmp(CmpOp, Box<Expr>, Box<Expr>),
        Call(Func, Option<Box<Expr>>),
    }

    #[derive(Debug, Clone, PartialEq)]
    enum Tok {
        Dot,
        Ident(String),
        Str(String),
        Num(serde_json::Number),
        LBracket,
        RBracket,
        LParen,
        RParen,
        Pipe,
        Comma,
        Question,
        Cmp(CmpOp),
    }

    const SUPPORTED: &str = "supported: paths (.a, .\"x.y\", .a[\"x\"], .a[0], .a[]), `|`, `,`, parentheses and \
        select() with ==, !=, <, <=, >, >=, and, or, startswith, endswith, contains, has, not, \
        ascii_downcase, ascii_upcase";

    /// Compiles a path expression, or says which construct is not supported.
    pub(super) fn compile(src: &str) -> Result<PathExpr, String> {
        let toks = lex(src)?;
        if toks.is_empty() {
            return Err("the expression is empty".to_string());
        }
        let mut parser = Parser {
            toks,
            pos: 0,
            depth: 0,
        };
        let expr = parser.path_expr()?;
        match parser.toks.get(parser.pos) {
            None => Ok(expr),
            Some((tok, offset)) => Err(format!(
                "unexpected {} at offset {offset} ({SUPPORTED})",
                describe(tok)
            )),
        }
    }

    fn describe(tok: &Tok) -> String {
        match tok {
            Tok::Dot => "`.`".to_string(),
            Tok::Ident(name) => format!("`{name}`"),
            Tok::Str(text) => format!("string {text:?}"),
            Tok::Num(n) => format!("number {n}"),
            Tok::LBracket => "`[`".to_string(),
            Tok::RBracket => "`]`".to_string(),
            Tok::LParen => "`(`".to_string(),
            Tok::RParen => "`)`".to_string(),
            Tok::Pipe => "`|`".to_string(),
            Tok::Comma => "`,`".to_string(),
            Tok::Question => "`?`".to_string(),
            Tok::Cmp(op) => format!("comparison `{}`", cmp_text(*op)),
        }
    }

    fn cmp_text(op: CmpOp) -> &'static str {
        match op {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }

    fn lex(src: &str) -> Result<Vec<(Tok, usize)>, String> {
        let mut toks = Vec::new();
        let mut chars = src.char_indices().peekable();
        while let Some((offset, c)) = chars.next() {
            let next = chars.peek().map(|&(_, n)| n);
            let tok = match (c, next) {
                (c, _) if c.is_whitespace() => continue,
                ('.', Some('.')) => return Err("recursive descent `..` is not supported".to_string()),
                ('.', _) => Tok::Dot,
                ('[', _) => Tok::LBracket,
                (']', _) => Tok::RBracket,
                ('(', _) => Tok::LParen,
                (')', _) => Tok::RParen,
                (',', _) => Tok::Comma,
                ('?', _) => Tok::Question,
                ('|', Some('=')) => return Err("update-assignment `|=` is not supported".to_string()),
                ('|', _) => Tok::Pipe,
                ('/', Some('/')) => return Err("the alternative operator `//` is not supported".to_string()),
                ('=' | '!' | '<' | '>', _) => {
                    let two = next == Some('=');
                    let op = match (c, two) {
                        ('=', true) => CmpOp::Eq,
                        ('!', true) => CmpOp::Ne,
                        ('<', false) => CmpOp::Lt,
                        ('<', true) => CmpOp::Le,
                        ('>', false) => CmpOp::Gt,
                        ('>', true) => CmpOp::Ge,
                        _ => return Err(format!("`{c}` at offset {offset} is not supported (assignment)")),
                    };
                    if two {
                        chars.next();
                    }
                    Tok::Cmp(op)
                }
                ('"', _) => Tok::Str(lex_string(src, offset, &mut chars)?),
                (c, n) if c.is_ascii_digit() || (c == '-' && n.is_some_and(|n| n.is_ascii_digit())) => {
                    Tok::Num(lex_number(src, offset, &mut chars)?)
                }
                (c, _) if c.is_ascii_alphabetic() || c == '_' => {
                    let mut end = offset + 1;
                    while let Some(&(i, n)) = chars.peek() {
                        if !(n.is_ascii_alphanumeric() || n == '_') {
                            break;
                        }
                        end = i + 1;
                        chars.next();
                    }
                    Tok::Ident(src[offset..end].to_string())
                }
                ('$', _) => return Err(format!("variables (`$` at offset {offset}) are not supported")),
                ('-' | '/' | ':' | '@', _) => {
                    return Err(format!(
                        "`{c}` at offset {offset} is not supported; quote a key that contains it \
                         (.\"app.kubernetes.io/name\") ({SUPPORTED})"
                    ));
                }
                (c, _) => return Err(format!("`{c}` at offset {offset} is not supported ({SUPPORTED})")),
            };
            toks.push((tok, offset));
        }
        Ok(toks)
    }

    type Chars<'a> = std::iter::Peekable<std::str::CharIndices<'a>>;

    /// A string literal: jq's escapes are JSON's, so the raw literal is decoded as JSON.
    fn lex_string(src: &str, start: usize, chars: &mut Chars<'_>) -> Result<String, String> {
        let mut escaped = false;
        for (i, c) in chars.by_ref() {
            match (escaped, c) {
                (true, '(') => return Err("string interpolation `\\(...)` is not supported".to_string()),
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    let raw = &src[start..=i];
                    return serde_json::from_str(raw).map_err(|e| format!("bad string literal {raw}: {e}"));
                }
                (false, _) => {}
            }
        }
        Err(format!("unterminated string starting at offset {start}"))
    }

    fn lex_number(src: &str, start: usize, chars: &mut Chars<'_>) -> Result<serde_json::Number, String> {
        let mut end = start + 1;
        let mut seen_dot = false;
        while let Some(&(i, c)) = chars.peek() {
            let after = src[i + c.len_utf8()..].chars().next();
            let digit_follows = after.is_some_and(|a| a.is_ascii_digit());
            let take = c.is_ascii_digit()
                || (c == '.' && !seen_dot && digit_follows)
                || ((c == 'e' || c == 'E') && (digit_follows || matches!(after, Some('+' | '-'))))
                || ((c == '+' || c == '-') && matches!(src[..i].chars().last(), Some('e' | 'E')));
            if !take {
                break;
            }
            seen_dot |= c == '.';
            end = i + c.len_utf8();
            chars.next();
        }
        let raw = &src[start..end];
        serde_json::from_str(raw).map_err(|e| format!("bad number literal {raw}: {e}"))
    }

    /// How deeply parentheses, `select` and function arguments may nest; the expressions come from
    /// Application specs, and the parser must not exhaust the controller's stack on a hostile one.
    const MAX_NESTING: usize = 32;

    struct Parser {
        toks: Vec<(Tok, usize)>,
        pos: usize,
        depth: usize,
    }

    impl Parser {
        fn peek(&self) -> Option<&Tok> {
            self.toks.get(self.pos).map(|(tok, _)| tok)
        }

        fn eat(&mut self, tok: &Tok) -> bool {
            let found = self.peek() == Some(tok);
            if found {
                self.pos += 1;
            }
            found
        }

        fn eat_ident(&mut self, name: &str) -> bool {
            let found = matches!(self.peek(), Some(Tok::Ident(ident)) if ident == name);
            if found {
                self.pos += 1;
            }
            found
        }

        fn expect(&mut self, tok: &Tok) -> Result<(), String> {
            if self.eat(tok) {
                return Ok(());
            }
            Err(match self.toks.get(self.pos) {
                Some((found, offset)) => {
                    format!(
                        "expected {} but found {} at offset {offset}",
                        describe(tok),
                        describe(found)
                    )
                }
                None => format!("expected {} but the expression ends", describe(tok)),
            })
        }

        fn unexpected(&self) -> String {
            match self.toks.get(self.pos) {
                Some((tok, offset)) => {
                    format!("unexpected {} at offset {offset} ({SUPPORTED})", describe(tok))
                }
                None => "the expression ends too early".to_string(),
            }
        }

        /// Runs a nested parse, refusing to go deeper than [`MAX_NESTING`].
        fn nested<T>(&mut self, parse: impl FnOnce(&mut Self) -> Result<T, String>) -> Result<T, String> {
            if self.depth >= MAX_NESTING {
                return Err(format!(
                    "the expression nests more than {MAX_NESTING} levels deep"
                ));
            }
            self.depth += 1;
            let result = parse(self);
            self.depth -= 1;
            result
        }

        fn path_expr(&mut self) -> Result<PathExpr, String> {
            self.nested(Self::path_stages)
        }

        fn path_stages(&mut self) -> Result<PathExpr, String> {
            let mut stages = vec![self.alternatives()?];
            while self.eat(&Tok::Pipe) {
                stages.push(self.alternatives()?);
            }
            Ok(PathExpr { stages })
        }

        fn alternatives(&mut self) -> Result<Vec<Term>, String> {
            let mut terms = vec![self.term()?];
            while self.eat(&Tok::Comma) {
                terms.push(self.term()?);
            }
            Ok(terms)
        }

        fn term(&mut self) -> Result<Term, String> {
            let base = match self.peek() {
                Some(Tok::Dot) => {
                    self.pos += 1;
                    return Ok(Term {
                        base: Base::Identity,
                        suffix: self.after_dot()?,
                    });
                }
                Some(Tok::LParen) => {
                    self.pos += 1;
                    let inner = self.path_expr()?;
                    self.expect(&Tok::RParen)?;
                    Base::Group(inner)
                }
                Some(Tok::Ident(name)) if name == "select" => {
                    self.pos += 1;
                    self.expect(&Tok::LParen)?;
                    let cond = self.expr()?;
                    self.expect(&Tok::RParen)?;
                    Base::Select(cond)
                }
                Some(Tok::Ident(name)) => return Err(unsupported_ident(name)),
                Some(tok @ (Tok::Str(_) | Tok::Num(_))) => {
                    return Err(format!("{} is a value, not a path ({SUPPORTED})", describe(tok)));
                }
                _ => return Err(self.unexpected()),
            };
            Ok(Term {
                base,
                suffix: self.suffix()?,
            })
        }

        /// What follows a leading `.`: a field name, a quoted key, a bracket, or nothing (identity).
        fn after_dot(&mut self) -> Result<Vec<Seg>, String> {
            let mut segs = Vec::new();
            match self.peek().cloned() {
                Some(Tok::Ident(name)) => {
                    self.pos += 1;
                    segs.push(Seg::Key(name));
                }
                Some(Tok::Str(key)) => {
                    self.pos += 1;
                    segs.push(Seg::Key(key));
                }
                Some(Tok::LBracket) => {
                    self.pos += 1;
                    segs.push(self.bracket()?);
                }
                _ => {}
            }
            segs.extend(self.suffix()?);
            Ok(segs)
        }

        fn suffix(&mut self) -> Result<Vec<Seg>, String> {
            let mut segs = Vec::new();
            loop {
                match self.peek().cloned() {
                    Some(Tok::Dot) => {
                        self.pos += 1;
                        match self.peek().cloned() {
                            Some(Tok::Ident(name)) => segs.push(Seg::Key(name)),
                            Some(Tok::Str(key)) => segs.push(Seg::Key(key)),
                            Some(Tok::LBracket) => {
                                self.pos += 1;
                                segs.push(self.bracket()?);
                                continue;
                            }
                            _ => {
                                return Err(format!(
                                    "`.` must be followed by a field name; {}",
                                    self.unexpected()
                                ));
                            }
                        }
                        self.pos += 1;
                    }
                    Some(Tok::LBracket) => {
                        self.pos += 1;
                        segs.push(self.bracket()?);
                    }
                    Some(Tok::Question) => self.pos += 1,
                    _ => return Ok(segs),
                }
            }
        }

        /// The inside of `[...]`, the `[` already consumed.
        fn bracket(&mut self) -> Result<Seg, String> {
            let seg = match self.peek().cloned() {
                Some(Tok::RBracket) => {
                    self.pos += 1;
                    return Ok(Seg::Iterate);
                }
                Some(Tok::Str(key)) => Seg::Key(key),
                Some(Tok::Num(n)) => match n.as_i64() {
                    Some(index) => Seg::Index(index),
                    None => return Err(format!("the index {n} is not an integer")),
                },
                _ => {
                    return Err(format!(
                        "only [], [\"key\"] and [N] are supported in brackets (no slices or computed \
                         indexes); {}",
                        self.unexpected()
                    ));
                }
            };
            self.pos += 1;
            self.expect(&Tok::RBracket)
                .map_err(|e| format!("{e} (slices are not supported)"))?;
            Ok(seg)
        }

        fn expr(&mut self) -> Result<Expr, String> {
            self.nested(Self::pipe_expr)
        }

        fn pipe_expr(&mut self) -> Result<Expr, String> {
            let mut left = self.or_expr()?;
            while self.eat(&Tok::Pipe) {
                let right = self.or_expr()?;
                left = Expr::Pipe(Box::new(left), Box::new(right));
            }
            Ok(left)
        }

        fn or_expr(&mut self) -> Result<Expr, String> {
            let mut left = self.and_expr()?;
            while self.eat_ident("or") {
                let right = self.and_expr()?;
                left = Expr::Or(Box::new(left), Box::new(right));
            }
            Ok(left)
        }

        fn and_expr(&mut self) -> Result<Expr, String> {
            let mut left = self.cmp_expr()?;
            while self.eat_ident("and") {
                let right = self.cmp_expr()?;
                left = Expr::And(Box::new(left), Box::new(right));
            }
            Ok(left)
        }

        fn cmp_expr(&mut self) -> Result<Expr, String> {
            let left = self.postfix()?;
            let Some(Tok::Cmp(op)) = self.peek().cloned() else {
                return Ok(left);
            };
            self.pos += 1;
            let right = self.postfix()?;
            Ok(Expr::Cmp(op, Box::new(left), Box::new(right)))
        }

        fn postfix(&mut self) -> Result<Expr, String> {
            let primary = match self.peek().cloned() {
                Some(Tok::Dot) => {
                    self.pos += 1;
                    let segs = self.after_dot()?;
                    return Ok(if segs.is_empty() {
                        Expr::Identity
                    } else {
                        Expr::Index(Box::new(Expr::Identity), segs)
                    });
                }
                Some(Tok::Str(text)) => {
                    self.pos += 1;
                    Expr::Literal(Value::String(text))
                }
                Some(Tok::Num(n)) => {
                    self.pos += 1;
                    Expr::Literal(Value::Number(n))
                }
                Some(Tok::LParen) => {
                    self.pos += 1;
                    let inner = self.expr()?;
                    self.expect(&Tok::RParen)?;
                    inner
                }
                Some(Tok::Ident(name)) => {
                    self.pos += 1;
                    self.call_or_keyword(&name)?
                }
                _ => return Err(self.unexpected()),
            };
            let segs = self.suffix()?;
            Ok(if segs.is_empty() {
                primary
            } else {
                Expr::Index(Box::new(primary), segs)
            })
        }

        fn call_or_keyword(&mut self, name: &str) -> Result<Expr, String> {
            let func = match name {
                "true" => return Ok(Expr::Literal(Value::Bool(true))),
                "false" => return Ok(Expr::Literal(Value::Bool(false))),
                "null" => return Ok(Expr::Literal(Value::Null)),
                "startswith" => Func::StartsWith,
                "endswith" => Func::EndsWith,
                "contains" => Func::Contains,
                "has" => Func::Has,
                "not" => return Ok(Expr::Call(Func::Not, None)),
                "ascii_downcase" => return Ok(Expr::Call(Func::AsciiDowncase, None)),
                "ascii_upcase" => return Ok(Expr::Call(Func::AsciiUpcase, None)),
                other => return Err(unsupported_ident(other)),
            };
            self.expect(&Tok::LParen)?;
            let arg = self.expr()?;
            self.expect(&Tok::RParen)?;
            Ok(Expr::Call(func, Some(Box::new(arg))))
        }
    }

    fn unsupported_ident(name: &str) -> String {
        match name {
            "if" | "then" | "elif" | "else" | "end" | "as" | "def" | "reduce" | "foreach" | "try"
            | "catch" | "label" | "import" | "include" | "and" | "or" => {
                format!("`{name}` is not supported here ({SUPPORTED})")
            }
            "test" | "match" | "capture" | "scan" | "splits" | "sub" | "gsub" => {
                format!("`{name}` (regular expressions) is not supported ({SUPPORTED})")
            }
            "select" => format!("`select` is only supported as a stage of the path ({SUPPORTED})"),
            _ => format!("the function `{name}` is not supported ({SUPPORTED})"),
        }
    }

    impl PathExpr {
        /// The concrete paths, inside `root`, that `del(expr)` deletes.
        pub(super) fn paths(&self, root: &Value) -> Vec<Vec<Step>> {
            self.paths_from(Vec::new(), root)
                .into_iter()
                .map(|(path, _)| path)
                .collect()
        }

        fn paths_from<'v>(&self, path: Vec<Step>, value: &'v Value) -> Vec<(Vec<Step>, &'v Value)> {
            let mut current = vec![(path, value)];
            for stage in &self.stages {
                let mut next = Vec::new();
                for (path, value) in &current {
                    for term in stage {
                        term.paths_into(path, value, &mut next);
                    }
                }
                current = next;
            }
            current
        }
    }

    impl Term {
        fn paths_into<'v>(&self, path: &[Step], value: &'v Value, out: &mut Vec<(Vec<Step>, &'v Value)>) {
            let based = match &self.base {
                Base::Identity => vec![(path.to_vec(), value)],
                Base::Select(cond) if eval(cond, value).iter().any(truthy) => vec![(path.to_vec(), value)],
                Base::Select(_) => Vec::new(),
                Base::Group(inner) => inner.paths_from(path.to_vec(), value),
            };
            for start in based {
                let mut current = vec![start];
                for seg in &self.suffix {
                    current = current
                        .into_iter()
                        .flat_map(|(p, v)| step_paths(p, v, seg))
                        .collect();
                }
                out.extend(current);
            }
        }
    }

    /// The existing children that a segment reaches, with their paths; a missing field reaches nothing,
    /// since deleting it would delete nothing.
    fn step_paths<'v>(path: Vec<Step>, value: &'v Value, seg: &Seg) -> Vec<(Vec<Step>, &'v Value)> {
        let with = |step: Step, child: &'v Value| {
            let mut path = path.clone();
            path.push(step);
            (path, child)
        };
        match (seg, value) {
            (Seg::Key(key), Value::Object(map)) => map
                .get(key)
                .map(|child| with(Step::Key(key.clone()), child))
                .into_iter()
                .collect(),
            (Seg::Index(index), Value::Array(items)) => resolve_index(*index, items.len())
                .map(|i| with(Step::Index(i), &items[i]))
                .into_iter()
                .collect(),
            (Seg::Iterate, Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, child)| with(Step::Index(i), child))
                .collect(),
            (Seg::Iterate, Value::Object(map)) => map
                .iter()
                .map(|(key, child)| with(Step::Key(key.clone()), child))
                .collect(),
            _ => Vec::new(),
        }
    }

    fn resolve_index(index: i64, len: usize) -> Option<usize> {
        let resolved = if index < 0 {
            i64::try_from(len).ok()? + index
        } else {
            index
        };
        usize::try_from(resolved).ok().filter(|&i| i < len)
    }

    /// The values of a segment in a value expression: a missing field or index of a map, array or null
    /// is `null`, as in jq.
    fn step_values(value: Value, seg: &Seg) -> Vec<Value> {
        match (seg, value) {
            (Seg::Key(_) | Seg::Index(_), Value::Null) => vec![Value::Null],
            (Seg::Key(key), Value::Object(mut map)) => vec![map.remove(key).unwrap_or(Value::Null)],
            (Seg::Index(index), Value::Array(mut items)) => match resolve_index(*index, items.len()) {
                Some(i) => vec![items.swap_remove(i)],
                None => vec![Value::Null],
            },
            (Seg::Iterate, Value::Array(items)) => items,
            (Seg::Iterate, Value::Object(map)) => map.into_iter().map(|(_, v)| v).collect(),
            _ => Vec::new(),
        }
    }

    fn truthy(value: &Value) -> bool {
        !matches!(value, Value::Null | Value::Bool(false))
    }

    fn eval(expr: &Expr, input: &Value) -> Vec<Value> {
        match expr {
            Expr::Identity => vec![input.clone()],
            Expr::Literal(value) => vec![value.clone()],
            Expr::Index(base, segs) => {
                let mut current = eval(base, input);
                for seg in segs {
                    current = current.into_iter().flat_map(|v| step_values(v, seg)).collect();
                }
                current
            }
            Expr::Pipe(left, right) => eval(left, input).iter().flat_map(|v| eval(right, v)).collect(),
            Expr::Or(left, right) | Expr::And(left, right) => {
                let is_or = matches!(expr, Expr::Or(..));
                let mut out = Vec::new();
                for l in eval(left, input) {
                    if truthy(&l) == is_or {
                        out.push(Value::Bool(is_or));
                    } else {
                        out.extend(eval(right, input).iter().map(|r| Value::Bool(truthy(r))));
                    }
                }
                out
            }
            Expr::Cmp(op, left, right) => {
                let rights = eval(right, input);
                let lefts = eval(left, input);
                let mut out = Vec::new();
                for r in &rights {
                    out.extend(lefts.iter().filter_map(|l| compare(*op, l, r)).map(Value::Bool));
                }
                out
            }
            Expr::Call(func, arg) => call(*func, arg.as_deref(), input),
        }
    }

    fn call(func: Func, arg: Option<&Expr>, input: &Value) -> Vec<Value> {
        let one = |f: &dyn Fn(&str) -> Value| match input {
            Value::String(text) => vec![f(text)],
            _ => Vec::new(),
        };
        match func {
            Func::Not => vec![Value::Bool(!truthy(input))],
            Func::AsciiDowncase => one(&|text| Value::String(text.to_ascii_lowercase())),
            Func::AsciiUpcase => one(&|text| Value::String(text.to_ascii_uppercase())),
            Func::StartsWith | Func::EndsWith | Func::Contains | Func::Has => {
                let args = arg.map(|arg| eval(arg, input)).unwrap_or_default();
                args.iter()
                    .filter_map(|a| call_with(func, input, a))
                    .map(Value::Bool)
                    .collect()
            }
        }
    }

    fn call_with(func: Func, input: &Value, arg: &Value) -> Option<bool> {
        match (func, input, arg) {
            (Func::StartsWith, Value::String(text), Value::String(s)) => Some(text.starts_with(s.as_str())),
            (Func::EndsWith, Value::String(text), Value::String(s)) => Some(text.ends_with(s.as_str())),
            (Func::Contains, Value::String(text), Value::String(s)) => Some(text.contains(s.as_str())),
            (Func::Has, Value::Object(map), Value::String(key)) => Some(map.contains_key(key)),
            (Func::Has, Value::Array(items), Value::Number(n)) => Some(
                n.as_u64()
                    .is_some_and(|i| usize::try_from(i).is_ok_and(|i| i < items.len())),
            ),
            _ => None,
        }
    }

    fn compare(op: CmpOp, left: &Value, right: &Value) -> Option<bool> {
        let order = || order(left, right);
        Some(match op {
            CmpOp::Eq => json_eq(left, right, false),
            CmpOp::Ne => !json_eq(left, right, false),
            CmpOp::Lt => order()? == Ordering::Less,
            CmpOp::Le => order()? != Ordering::Greater,
            CmpOp::Gt => order()? == Ordering::Greater,
            CmpOp::Ge => order()? != Ordering::Less,
        })
    }

    /// jq's order of values, for scalars: null < false < true < numbers < strings; arrays and maps are
    /// after those, and two of them are not ordered here.
    fn order(left: &Value, right: &Value) -> Option<Ordering> {
        let rank = |v: &Value| match v {
            Value::Null => 0,
            Value::Bool(false) => 1,
            Value::Bool(true) => 2,
            Value::Number(_) => 3,
            Value::String(_) => 4,
            Value::Array(_) => 5,
            Value::Object(_) => 6,
        };
        match (left, right) {
            (Value::Number(l), Value::Number(r)) => l.as_f64()?.partial_cmp(&r.as_f64()?),
            (Value::String(l), Value::String(r)) => Some(l.cmp(r)),
            (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_)) => None,
            _ => Some(rank(left).cmp(&rank(right))),
        }
    }

    /// Deletes every path, deepest and last first so that earlier indexes stay valid; the root is never
    /// deleted (ignoring a whole object is not a field difference).
    pub(super) fn delete_paths(root: &mut Value, mut paths: Vec<Vec<Step>>) {
        paths.sort();
        paths.dedup();
        for path in paths.iter().rev() {
            let Some((last, parents)) = path.split_last() else {
                continue;
            };
            match (last, lookup_mut(root, parents)) {
                (Step::Key(key), Some(Value::Object(map))) => {
                    map.remove(key);
                }
                (Step::Index(i), Some(Value::Array(items))) if *i < items.len() => {
                    items.remove(*i);
                }
                _ => {}
            }
        }
    }

    fn lookup_mut<'a>(root: &'a mut Value, steps: &[Step]) -> Option<&'a mut Value> {
        let mut current = root;
        for step in steps {
            current = match (step, current) {
                (Step::Key(key), Value::Object(map)) => map.get_mut(key)?,
                (Step::Index(i), Value::Array(items)) => items.get_mut(*i)?,
                _ => return None,
            };
        }
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}},
            "spec": {
                "replicas": 3,
                "template": {"spec": {"containers": [{"name": "app", "image": image}]}}
            }
        })
    }

    fn entry(group: &str, kind: &str) -> ResourceIgnoreDifferences {
        ResourceIgnoreDifferences {
            group: Some(group.into()),
            kind: kind.into(),
            ..Default::default()
        }
    }

    fn pointers(group: &str, kind: &str, pointers: &[&str]) -> IgnoreRules {
        let json_pointers = Some(pointers.iter().map(|p| p.to_string()).collect());
        IgnoreRules::compile(&[ResourceIgnoreDifferences {
            json_pointers,
            ..entry(group, kind)
        }])
        .unwrap()
    }

    fn jq_rules(group: &str, kind: &str, expressions: &[&str]) -> IgnoreRules {
        let jq_path_expressions = Some(expressions.iter().map(|p| p.to_string()).collect());
        IgnoreRules::compile(&[ResourceIgnoreDifferences {
            jq_path_expressions,
            ..entry(group, kind)
        }])
        .unwrap()
    }

    fn managers(names: &[&str]) -> IgnoreRules {
        let managed_fields_managers = Some(names.iter().map(|p| p.to_string()).collect());
        IgnoreRules::compile(&[ResourceIgnoreDifferences {
            managed_fields_managers,
            ..entry("apps", "Deployment")
        }])
        .unwrap()
    }

    fn modified(paths: &[&str]) -> DiffResult {
        DiffResult::Modified {
            paths: paths.iter().map(|p| p.to_string()).collect(),
            truncated: false,
        }
    }

    fn set(doc: &mut Value, pointer: &str, value: Value) {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let parent = doc
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("no parent for {pointer}"));
        match parent {
            Value::Object(map) => {
                map.insert(key.to_string(), value);
            }
            Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
            _ => panic!("{pointer} is inside a scalar"),
        }
    }

    #[test]
    fn server_populated_fields_never_count() {
        let cases: [(&str, &str, Value); 13] = [
            (
                "managed fields",
                "/metadata/managedFields",
                json!([{"manager": "kubectl", "operation": "Update"}]),
            ),
            ("resource version", "/metadata/resourceVersion", json!("4711")),
            ("uid", "/metadata/uid", json!("0b0e6c6e-1")),
            ("generation", "/metadata/generation", json!(7)),
            (
                "creation timestamp",
                "/metadata/creationTimestamp",
                json!("2026-01-01T00:00:00Z"),
            ),
            (
                "self link",
                "/metadata/selfLink",
                json!("/apis/apps/v1/namespaces/prod/deployments/web"),
            ),
            (
                "deletion timestamp",
                "/metadata/deletionTimestamp",
                json!("2026-01-02T00:00:00Z"),
            ),
            (
                "deletion grace period",
                "/metadata/deletionGracePeriodSeconds",
                json!(30),
            ),
            ("status", "/status", json!({"replicas": 3, "readyReplicas": 1})),
            ("empty annotations", "/metadata/annotations", json!({})),
            ("null annotations", "/metadata/annotations", Value::Null),
            (
                "last applied",
                "/metadata/annotations",
                json!({ANNOTATION_LAST_APPLIED: "{\"kind\":\"Deployment\"}"}),
            ),
            ("null field", "/spec/paused", Value::Null),
        ];
        for (name, pointer, value) in cases {
            let predicted = deployment("nginx:1.27");
            let mut live = deployment("nginx:1.27");
            set(&mut live, pointer, value);
            assert_eq!(
                diff(Some(&predicted), Some(&live), &IgnoreRules::default()),
                DiffResult::Synced,
                "{name}"
            );
        }
        let mut empty_labels = deployment("nginx:1.27");
        set(&mut empty_labels, "/metadata/labels", json!({}));
        let mut no_labels = deployment("nginx:1.27");
        no_labels["metadata"].as_object_mut().unwrap().remove("labels");
        assert_eq!(
            diff(Some(&empty_labels), Some(&no_labels), &IgnoreRules::default()),
            DiffResult::Synced
        );
    }

    #[test]
    fn status_is_ignored_for_every_kind_custom_resource_definitions_included() {
        let crd = |status: Value| {
            json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "rollouts.argoproj.io"},
                "spec": {"group": "argoproj.io"},
                "status": status
            })
        };
        let predicted = crd(json!({}));
        let live = crd(json!({"acceptedNames": {"kind": "Rollout"}, "storedVersions": ["v1alpha1"]}));
        assert_eq!(
            diff(Some(&predicted), Some(&live), &IgnoreRules::default()),
            DiffResult::Synced
        );
        assert_eq!(normalize(&live).get("status"), None);
    }

    #[test]
    fn server_defaults_in_predicted_live_equal_to_live_are_synced() {
        let with_defaults = |revision: &str| {
            let mut obj = deployment("nginx:1.27");
            set(
                &mut obj,
                "/metadata/annotations",
                json!({"deployment.kubernetes.io/revision": revision}),
            );
            set(&mut obj, "/spec/revisionHistoryLimit", json!(10));
            set(
                &mut obj,
                "/spec/template/spec/containers/0/imagePullPolicy",
                json!("IfNotPresent"),
            );
            set(
                &mut obj,
                "/spec/template/spec/containers/0/terminationMessagePath",
                json!("/dev/termination-log"),
            );
            set(&mut obj, "/spec/template/spec/restartPolicy", json!("Always"));
            obj
        };
        let predicted = with_defaults("3");
        let mut live = with_defaults("3");
        set(&mut live, "/metadata/resourceVersion", json!("99"));
        set(&mut live, "/status", json!({"observedGeneration": 3}));
        assert_eq!(
            diff(Some(&predicted), Some(&live), &IgnoreRules::default()),
            DiffResult::Synced
        );
    }

    #[test]
    fn changed_image_is_modified_with_its_path() {
        let predicted = deployment("nginx:1.28");
        let live = deployment("nginx:1.27");
        let result = diff(Some(&predicted), Some(&live), &IgnoreRules::default());
        assert_eq!(result, modified(&[".spec.template.spec.containers[0].image"]));
        assert!(!result.is_synced());
        assert!(!result.requires_pruning());
    }

    #[test]
    fn creation_pruning_and_nothing_at_all() {
        let desired = deployment("nginx:1.27");
        let none = IgnoreRules::default();
        let cases = [
            (Some(&desired), None, DiffResult::Missing, false, false),
            (None, Some(&desired), DiffResult::Extraneous, false, true),
            (None, None, DiffResult::Synced, true, false),
        ];
        for (predicted, live, want, synced, prune) in cases {
            let got = diff(predicted, live, &none);
            assert_eq!(got, want);
            assert_eq!(
                (got.is_synced(), got.requires_pruning()),
                (synced, prune),
                "{want:?}"
            );
        }
    }

    #[test]
    fn null_equals_absent_and_numbers_compare_by_value() {
        let cases = [
            (json!({"a": 1}), json!({"a": 1.0}), true),
            (json!({"a": 1, "b": null}), json!({"a": 1}), true),
            (json!({"a": [1, 2]}), json!({"a": [1.0, 2]}), true),
            (json!({"a": -3}), json!({"a": -3.0}), true),
            (json!({"a": 1}), json!({"a": 2}), false),
            (json!({"a": "1"}), json!({"a": 1}), false),
            (json!({"a": []}), json!({"a": null}), false),
            (json!({"a": [1, null]}), json!({"a": [1]}), false),
            (json!({"a": u64::MAX}), json!({"a": u64::MAX}), true),
        ];
        for (a, b, equal) in cases {
            assert_eq!(changed_paths(&a, &b, 10).is_empty(), equal, "{a} vs {b}");
            assert_eq!(json_eq(&a, &b, true), equal, "{a} vs {b}");
        }
    }

    #[test]
    fn changed_paths_name_fields_in_jq_syntax_and_are_bounded() {
        let a = json!({"metadata": {"annotations": {"sidecar.istio.io/inject": "true", "plain_key": "x"}},
                       "spec": {"containers": [{"name": "app"}, {"name": "extra"}]}});
        let b = json!({"metadata": {"annotations": {"sidecar.istio.io/inject": "false", "plain_key": "y"}},
                       "spec": {"containers": [{"name": "app"}]}});
        assert_eq!(
            changed_paths(&a, &b, 10),
            [
                ".metadata.annotations.plain_key",
                ".metadata.annotations[\"sidecar.istio.io/inject\"]",
                ".spec.containers[1]"
            ]
        );
        assert_eq!(changed_paths(&json!(1), &json!(2), 10), ["."]);
        assert_eq!(changed_paths(&a, &b, 1).len(), 1);

        let mut predicted = deployment("nginx:1.27");
        let labels: Map<String, Value> = (0..30).map(|i| (format!("l{i:02}"), json!("x"))).collect();
        set(&mut predicted, "/metadata/labels", Value::Object(labels));
        let DiffResult::Modified { paths, truncated } = diff(
            Some(&predicted),
            Some(&deployment("nginx:1.27")),
            &IgnoreRules::default(),
        ) else {
            panic!("thirty new labels are a difference");
        };
        assert_eq!(paths.len(), DIFF_PATH_LIMIT);
        assert!(truncated);
        assert_eq!(paths[0], ".metadata.labels.app");
    }

    #[test]
    fn json_pointers_remove_the_field_from_both_sides() {
        let cases: [(&str, &str, Value); 5] = [
            ("/spec/replicas", "/spec/replicas", json!(7)),
            (
                "/metadata/annotations/example.com~1build",
                "/metadata/annotations",
                json!({"example.com/build": "42"}),
            ),
            (
                "/metadata/labels/a~0b",
                "/metadata/labels",
                json!({"app": "web", "a~b": "x"}),
            ),
            (
                "/spec/template/spec/containers/0/image",
                "/spec/template/spec/containers/0/image",
                json!("other"),
            ),
            (
                "/spec/template/spec/containers/0",
                "/spec/template/spec/containers/0/image",
                json!("other"),
            ),
        ];
        for (pointer, changed, value) in cases {
            let predicted = deployment("nginx:1.27");
            let mut live = deployment("nginx:1.27");
            set(&mut live, changed, value);
            let rules = pointers("apps", "Deployment", &[pointer]);
            assert_eq!(
                diff(Some(&predicted), Some(&live), &rules),
                DiffResult::Synced,
                "{pointer}"
            );
            assert!(
                !diff(Some(&predicted), Some(&live), &IgnoreRules::default()).is_synced(),
                "{pointer}"
            );
        }
        let missing = pointers(
            "apps",
            "Deployment",
            &["/spec/strategy/rollingUpdate", "/spec/template/spec/containers/9"],
        );
        let predicted = deployment("nginx:1.28");
        let live = deployment("nginx:1.27");
        assert_eq!(
            diff(Some(&predicted), Some(&live), &missing),
            modified(&[".spec.template.spec.containers[0].image"]),
            "a pointer to nothing removes nothing"
        );
    }

    #[test]
    fn malformed_json_pointers_are_compile_errors_naming_them() {
        let cases = [
            ("spec/replicas", "starts with '/'"),
            ("/spec/a~2b", "'~' must be followed"),
            ("/x~", "'~'"),
            ("", "whole object"),
        ];
        for (pointer, reason) in cases {
            let entries = [ResourceIgnoreDifferences {
                json_pointers: Some(vec!["/ok".into(), pointer.into()]),
                ..entry("apps", "Deployment")
            }];
            let err = IgnoreRules::compile(&entries).unwrap_err();
            let message = err.to_string();
            assert!(
                matches!(&err, IgnoreRuleError::JsonPointer { index: 0, pointer: p, .. } if p == pointer)
            );
            assert!(
                message.contains(&format!("{pointer:?}")) && message.contains(reason),
                "{message}"
            );
        }
    }

    fn jq_delete(expression: &str, doc: &Value) -> Value {
        let compiled = jq::compile(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
        let mut out = doc.clone();
        let paths = compiled.paths(&out);
        jq::delete_paths(&mut out, paths);
        out
    }

    #[test]
    fn jq_paths_delete_what_jq_del_deletes() {
        let pod = json!({
            "metadata": {"annotations": {"sidecar.istio.io/inject": "true", "keep": "1"}, "finalizers": ["a", "b", "c"]},
            "spec": {
                "replicas": 2,
                "initContainers": [{"name": "injected-init-container"}, {"name": "mine"}],
                "containers": [
                    {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B"}]},
                    {"name": "istio-proxy", "image": "istio/proxyv2:1.22"},
                    {"name": "log", "image": "fluent:2", "ports": [{"containerPort": 80}, {"containerPort": 9090}]}
                ]
            }
        });
        let drop = |pointers: &[&str]| {
            let mut out = pod.clone();
            let mut sorted: Vec<&str> = pointers.to_vec();
            sorted.sort_by(|a, b| b.cmp(a));
            for pointer in sorted {
                remove_pointer(&mut out, &parse_pointer(pointer).unwrap());
            }
            out
        };
        let cases: Vec<(&str, Value)> = vec![
            (".spec.replicas", drop(&["/spec/replicas"])),
            (
                ".metadata.annotations.\"sidecar.istio.io/inject\"",
                drop(&["/metadata/annotations/sidecar.istio.io~1inject"]),
            ),
            (
                ".metadata.annotations[\"sidecar.istio.io/inject\"]",
                drop(&["/metadata/annotations/sidecar.istio.io~1inject"]),
            ),
            (".[\"spec\"].replicas?", drop(&["/spec/replicas"])),
            (
                ".spec.initContainers[] | select(.name == \"injected-init-container\")",
                drop(&["/spec/initContainers/0"]),
            ),
            (
                ".spec.containers[] | select(.name != \"app\")",
                drop(&["/spec/containers/1", "/spec/containers/2"]),
            ),
            (
                ".spec.containers[] | select(.image | startswith(\"istio/\"))",
                drop(&["/spec/containers/1"]),
            ),
            (
                ".spec.containers[] | select(.image | endswith(\":2\")) | .ports[1]",
                drop(&["/spec/containers/2/ports/1"]),
            ),
            (
                ".spec.containers[0].env[] | select(has(\"value\") | not)",
                drop(&["/spec/containers/0/env/1"]),
            ),
            (
                ".spec.containers[].image",
                drop(&[
                    "/spec/containers/0/image",
                    "/spec/containers/1/image",
                    "/spec/containers/2/image",
                ]),
            ),
            (".spec.containers[-1]", drop(&["/spec/containers/2"])),
            (
                ".metadata.finalizers[] | select(. == \"a\" or . == \"c\")",
                drop(&["/metadata/finalizers/0", "/metadata/finalizers/2"]),
            ),
            (
                ".spec.containers[] | select(.name == \"log\" and (.ports[].containerPort > 8080))",
                drop(&["/spec/containers/2"]),
            ),
            (
                ".spec.containers[] | select(.name | ascii_upcase | contains(\"PROXY\"))",
                drop(&["/spec/containers/1"]),
            ),
            (
                ".spec.replicas, .metadata.finalizers",
                drop(&["/spec/replicas", "/metadata/finalizers"]),
            ),
            (
                "(.spec.initContainers, .spec.containers)[0].name",
                drop(&["/spec/initContainers/0/name", "/spec/containers/0/name"]),
            ),
            (
                ".metadata.annotations[]",
                drop(&[
                    "/metadata/annotations/sidecar.istio.io~1inject",
                    "/metadata/annotations/keep",
                ]),
            ),
            (
                ".spec.containers[] | select(.missing == null) | select(.name == \"app\").image",
                drop(&["/spec/containers/0/image"]),
            ),
            (".spec.nothing.below | .x", pod.clone()),
            (".spec.replicas.field", pod.clone()),
            (".spec.containers[] | select(.image | startswith(5))", pod.clone()),
            (".", pod.clone()),
        ];
        for (expression, want) in cases {
            assert_eq!(jq_delete(expression, &pod), want, "{expression}");
        }
    }

    #[test]
    fn jq_rules_ignore_injected_containers_in_a_diff() {
        let mut predicted = deployment("nginx:1.27");
        set(
            &mut predicted,
            "/spec/template/spec/initContainers",
            json!([{"name": "injected-init-container", "image": "init:2"}]),
        );
        set(
            &mut predicted,
            "/metadata/annotations",
            json!({"sidecar.istio.io/inject": "true"}),
        );
        let mut live = deployment("nginx:1.27");
        set(
            &mut live,
            "/spec/template/spec/initContainers",
            json!([{"name": "injected-init-container", "image": "init:1"}]),
        );
        let rules = jq_rules(
            "apps",
            "Deployment",
            &[
                ".spec.template.spec.initContainers[] | select(.name == \"injected-init-container\")",
                ".metadata.annotations.\"sidecar.istio.io/inject\"",
            ],
        );
        assert_eq!(diff(Some(&predicted), Some(&live), &rules), DiffResult::Synced);
        assert_eq!(
            diff(Some(&predicted), Some(&live), &IgnoreRules::default()),
            modified(&[
                ".metadata.annotations",
                ".spec.template.spec.initContainers[0].image"
            ])
        );
        set(
            &mut predicted,
            "/spec/template/spec/containers/0/image",
            json!("nginx:1.28"),
        );
        assert_eq!(
            diff(Some(&predicted), Some(&live), &rules),
            modified(&[".spec.template.spec.containers[0].image"])
        );
    }

    #[test]
    fn unsupported_jq_is_a_compile_error_naming_the_construct() {
        let cases = [
            ("", "empty"),
            ("..", "recursive descent"),
            (".spec | map(.x)", "`map`"),
            (".a[1:2]", "`:`"),
            (".a = 1", "assignment"),
            (".a |= 1", "`|=`"),
            (".metadata.namespace == \"x\"", "comparison `==`"),
            (
                ".spec.containers[] | select(.name | test(\"^istio\"))",
                "regular expressions",
            ),
            ("$x", "variables"),
            (".a // .b", "`//`"),
            ("\"x\"", "a value, not a path"),
            (".a.", "field name"),
            (".[\"a\"", "expected `]`"),
            (".a[.b]", "in brackets"),
            (".a[1.5]", "not an integer"),
            (".a | select(.b", "expected `)`"),
            ("select(.a) | .b |", "ends too early"),
            (".x | \"\\(.y)\"", "interpolation"),
            (".\"unterminated", "unterminated"),
            ("if . then .a else .b end", "`if`"),
            (".a + 1", "`+`"),
            (
                ".spec.containers[] | select(select(.a))",
                "`select` is only supported",
            ),
            (".a .b )", "unexpected `)`"),
            (".metadata.labels.app-name", "quote a key"),
        ];
        for (expression, reason) in cases {
            let entries = [ResourceIgnoreDifferences {
                jq_path_expressions: Some(vec![".ok".into(), expression.into()]),
                ..entry("", "ConfigMap")
            }];
            let err = IgnoreRules::compile(&entries).unwrap_err();
            let message = err.to_string();
            assert!(
                matches!(&err, IgnoreRuleError::JqPath { index: 0, expression: e, .. } if e == expression),
                "{err:?}"
            );
            assert!(message.contains(reason), "{expression:?}: {message}");
            assert!(message.contains(&format!("{expression:?}")), "{message}");
        }
    }

    #[test]
    fn deeply_nested_jq_is_refused_not_a_stack_overflow() {
        let deep = format!("{}.a{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(jq::compile(&deep).unwrap_err().contains("nests more than"));
        let deep_select = format!(".a | select({}.b{})", "(".repeat(10_000), ")".repeat(10_000));
        assert!(jq::compile(&deep_select).unwrap_err().contains("nests more than"));
        let fine = format!("{}.a{}", "(".repeat(8), ")".repeat(8));
        assert!(jq::compile(&fine).is_ok());
    }

    #[test]
    fn jq_compiler_never_panics_on_mangled_expressions() {
        let seeds = [
            ".spec.template.spec.initContainers[] | select(.name == \"injected-init-container\")",
            ".metadata.annotations.\"sidecar.istio.io/inject\"",
            ".a[\"x.y\"][0][-1][] | select(.x | startswith(\"y\")) , (.b.c)?",
            "select(.a < 1.5e3 and (.b >= -2 or .c != null)) | .d[\"\\u00e9\\\"\"]",
        ];
        let inserts = [
            '.', '[', ']', '(', ')', '|', '"', '\\', '-', '1', 'e', ',', '?', '=', 'é', ' ',
        ];
        let doc = json!({"a": [{"x": "yes", "b": {"c": 1}}], "spec": {"template": {"spec": {"initContainers": [{"name": "injected-init-container"}]}}}});
        for seed in seeds {
            let chars: Vec<char> = seed.chars().collect();
            for cut in 0..=chars.len() {
                let mut variants: Vec<String> =
                    vec![chars[..cut].iter().collect(), chars[cut..].iter().collect()];
                for insert in inserts {
                    let mut changed = chars.clone();
                    changed.insert(cut, insert);
                    variants.push(changed.iter().collect());
                    if cut < chars.len() {
                        let mut replaced = chars.clone();
                        replaced[cut] = insert;
                        variants.push(replaced.iter().collect());
                    }
                }
                for variant in variants {
                    if let Ok(compiled) = jq::compile(&variant) {
                        let mut out = doc.clone();
                        let paths = compiled.paths(&out);
                        jq::delete_paths(&mut out, paths);
                    }
                }
            }
        }
    }

    fn managed(entries: Value) -> Value {
        let mut live = deployment("nginx:1.27");
        set(&mut live, "/metadata/managedFields", entries);
        live
    }

    #[test]
    fn managed_fields_managers_remove_the_fields_those_managers_own() {
        let hpa = json!([
            {"manager": "argocd-controller", "operation": "Apply", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "kube-controller-manager", "operation": "Update", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}}
        ]);
        let predicted = deployment("nginx:1.27");
        let mut live = managed(hpa);
        set(&mut live, "/spec/replicas", json!(5));
        assert_eq!(
            diff(
                Some(&predicted),
                Some(&live),
                &managers(&["kube-controller-manager"])
            ),
            DiffResult::Synced
        );
        assert_eq!(
            diff(Some(&predicted), Some(&live), &managers(&["someone-else"])),
            modified(&[".spec.replicas"])
        );
        assert_eq!(
            diff(Some(&predicted), Some(&live), &IgnoreRules::default()),
            modified(&[".spec.replicas"])
        );
    }

    #[test]
    fn managed_fields_keyed_list_items_remove_only_the_owned_fields_of_the_matching_item() {
        let fields = json!([{"manager": "kubectl-set", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {
            "f:metadata": {"f:finalizers": {"v:\"example.com/cleanup\"": {}}},
            "f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"app\"}": {".": {}, "f:name": {}, "f:image": {}}
            }}}}
        }}]);
        let two_containers = |app: &str, sidecar: &str, cpu: &str| json!([{"name": "app", "image": app, "resources": {"limits": {"cpu": cpu}}}, {"name": "sidecar", "image": sidecar}]);
        let mut predicted = deployment("unused");
        set(
            &mut predicted,
            "/spec/template/spec/containers",
            two_containers("app:2", "side:1", "1"),
        );
        set(
            &mut predicted,
            "/metadata/finalizers",
            json!(["example.com/cleanup", "example.com/keep"]),
        );
        let mut live = managed(fields);
        set(
            &mut live,
            "/spec/template/spec/containers",
            two_containers("app:1", "side:1", "1"),
        );
        set(&mut live, "/metadata/finalizers", json!(["example.com/keep"]));
        let rules = managers(&["kubectl-set"]);
        assert_eq!(diff(Some(&predicted), Some(&live), &rules), DiffResult::Synced);

        set(
            &mut predicted,
            "/spec/template/spec/containers/1/image",
            json!("side:2"),
        );
        set(
            &mut predicted,
            "/spec/template/spec/containers/0/resources/limits/cpu",
            json!("2"),
        );
        assert_eq!(
            diff(Some(&predicted), Some(&live), &rules),
            modified(&[
                ".spec.template.spec.containers[0].resources.limits.cpu",
                ".spec.template.spec.containers[1].image"
            ]),
            "the `.` marker of the app item does not hide a field that another manager sets in it"
        );
    }

    #[test]
    fn managed_fields_keep_key_fields_so_a_second_manager_still_finds_the_item() {
        let entry = |manager: &str, fields: Value| {
            json!({"manager": manager, "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {
                "f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": fields}}}}
            }})
        };
        let mut live = managed(json!([
            entry("kubectl-set", json!({".": {}, "f:name": {}, "f:image": {}})),
            entry("injector", json!({"f:env": {}})),
        ]));
        set(
            &mut live,
            "/spec/template/spec/containers/0/env",
            json!([{"name": "A", "value": "1"}]),
        );
        let mut predicted = deployment("nginx:1.28");
        set(
            &mut predicted,
            "/spec/template/spec/containers/0/env",
            json!([{"name": "A", "value": "2"}]),
        );
        let rules = managers(&["kubectl-set", "injector"]);
        assert_eq!(diff(Some(&predicted), Some(&live), &rules), DiffResult::Synced);
    }

    #[test]
    fn managed_fields_composite_keys_and_indexes_match_by_value() {
        let fields = json!([{"manager": "mesh", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {
            "f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {"f:targetPort": {}}},
                       "f:list": {"i:1": {}}}
        }}]);
        let service = |target: i64, second: &str| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "prod"},
                   "spec": {"ports": [{"port": 80.0, "protocol": "TCP", "targetPort": target},
                                      {"port": 443, "protocol": "TCP", "targetPort": 8443}],
                            "list": ["a", second]}})
        };
        let predicted = service(8080, "x");
        let mut live = service(9090, "y");
        set(&mut live, "/metadata/managedFields", fields);
        assert_eq!(
            diff(Some(&predicted), Some(&live), &managers(&["mesh"])),
            DiffResult::Synced
        );
    }

    #[test]
    fn rules_match_by_group_kind_name_and_namespace() {
        let object = |api_version: &str, kind: &str, namespace: &str, name: &str| json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}});
        let named = |group: &str, kind: &str, name: Option<&str>, namespace: Option<&str>| {
            ResourceIgnoreDifferences {
                name: name.map(Into::into),
                namespace: namespace.map(Into::into),
                ..entry(group, kind)
            }
        };
        let deploy = object("apps/v1", "Deployment", "prod", "web");
        let config_map = object("v1", "ConfigMap", "prod", "settings");
        let cases = [
            (named("apps", "Deployment", None, None), &deploy, true),
            (named("", "Deployment", None, None), &deploy, false),
            (named("apps", "StatefulSet", None, None), &deploy, false),
            (named("", "ConfigMap", None, None), &config_map, true),
            (named("apps", "ConfigMap", None, None), &config_map, false),
            (named("*", "*", None, None), &config_map, true),
            (named("*", "*", None, None), &deploy, true),
            (named("app?", "Deploy*", None, None), &deploy, true),
            (named("*.k8s.io", "*", None, None), &deploy, false),
            (named("apps", "Deployment", Some("web"), None), &deploy, true),
            (named("apps", "Deployment", Some("api"), None), &deploy, false),
            (named("apps", "Deployment", Some(""), Some("")), &deploy, true),
            (
                named("apps", "Deployment", Some("web"), Some("prod")),
                &deploy,
                true,
            ),
            (named("apps", "Deployment", None, Some("staging")), &deploy, false),
        ];
        for (rule, obj, want) in cases {
            let compiled = IgnoreRules::compile(std::slice::from_ref(&rule)).unwrap();
            assert_eq!(compiled.rules[0].matches(obj), want, "{rule:?} on {obj}");
        }
        let predicted = deployment("nginx:1.28");
        let live = deployment("nginx:1.27");
        let other_kind = pointers("apps", "StatefulSet", &["/spec/template/spec/containers/0/image"]);
        assert!(!diff(Some(&predicted), Some(&live), &other_kind).is_synced());
        assert!(
            !IgnoreRules::compile(&[entry("apps", "Deployment")])
                .unwrap()
                .is_empty()
        );
        assert!(IgnoreRules::compile(&[]).unwrap().is_empty());
    }

    #[test]
    fn glob_matches_as_upstream_globs_do() {
        let cases = [
            ("", "", true),
            ("", "apps", false),
            ("*", "", true),
            ("*", "anything", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbb", false),
            ("*.io", "argoproj.io", true),
            ("?", "", false),
            ("a?c", "abc", true),
            ("**x", "yyx", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(glob_match(pattern, text), want, "{pattern:?} ~ {text:?}");
        }
    }

    fn secret(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "prod",
               "annotations": {ANNOTATION_LAST_APPLIED: "{\"stringData\":{\"password\":\"hunter2\"}}", "team": "core"}},
               "type": "Opaque", "data": data})
    }

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn secret_masks_keep_equality_and_reveal_nothing() {
        let desired = secret(json!({"password": b64("hunter2"), "user": b64("admin"), "token": b64("abc")}));
        let live = secret(json!({"password": b64("hunter3"), "user": b64("admin"), "extra": b64("zzz")}));
        let (masked_desired, masked_live) = mask_secrets(Some(&desired), Some(&live));
        let (masked_desired, masked_live) = (masked_desired.unwrap(), masked_live.unwrap());
        let m = |n: usize| Value::String("+".repeat(n));
        assert_eq!(
            masked_desired["data"],
            json!({"password": m(8), "user": m(8), "token": m(8)})
        );
        assert_eq!(
            masked_live["data"],
            json!({"password": m(12), "user": m(8), "extra": m(8)})
        );
        for masked in [&masked_desired, &masked_live] {
            assert_eq!(masked["metadata"]["annotations"], json!({"team": "core"}));
            let text = masked.to_string();
            for secret in ["hunter2", "hunter3", "admin", "abc", "zzz"] {
                assert!(
                    !text.contains(secret) && !text.contains(&b64(secret)),
                    "{secret} leaked in {text}"
                );
            }
        }
        let paths = changed_paths(&normalize(&masked_desired), &normalize(&masked_live), 10);
        assert_eq!(
            paths,
            [".data.extra", ".data.password", ".data.token"],
            "masks still show which keys differ"
        );
    }

    #[test]
    fn secret_masking_folds_string_data_and_leaves_other_objects_alone() {
        let mut desired = secret(json!({"user": b64("admin")}));
        set(
            &mut desired,
            "/stringData",
            json!({"password": "hunter2", "user": "root"}),
        );
        let live = secret(json!({"password": b64("hunter2"), "user": b64("admin")}));
        let (masked_desired, masked_live) = mask_secrets(Some(&desired), Some(&live));
        let (masked_desired, masked_live) = (masked_desired.unwrap(), masked_live.unwrap());
        assert_eq!(masked_desired.get("stringData"), None);
        assert_eq!(
            masked_desired["data"]["password"],
            masked_live["data"]["password"]
        );
        assert_ne!(
            masked_desired["data"]["user"], masked_live["data"]["user"],
            "root differs from admin"
        );
        assert!(
            !masked_desired.to_string().contains("hunter2") && !masked_desired.to_string().contains("root")
        );

        let single = mask_secret(&live);
        assert_eq!(
            single["data"],
            json!({"password": "++++++++", "user": "++++++++"})
        );
        let garbled = mask_secret(&secret(json!("aGVsbG8=")));
        assert_eq!(garbled["data"], json!("++++++++"));

        let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"password": "visible"},
                                "metadata": {"annotations": {ANNOTATION_LAST_APPLIED: "{}"}}});
        assert_eq!(mask_secret(&config_map), config_map);
        let not_core = json!({"apiVersion": "example.com/v1", "kind": "Secret", "data": {"k": "v"}});
        assert_eq!(mask_secret(&not_core), not_core);
        assert_eq!(
            mask_secrets(None, Some(&config_map)),
            (None, Some(config_map.clone()))
        );
    }

    #[test]
    fn string_data_folds_into_base64_data() {
        let mut desired = secret(json!({"user": b64("admin"), "empty": null}));
        set(&mut desired, "/stringData", json!({"password": "hunter2"}));
        let live = secret(json!({"user": b64("admin"), "password": b64("hunter2"), "empty": ""}));
        let folded = normalize(&desired);
        assert_eq!(
            folded["data"],
            json!({"user": b64("admin"), "password": b64("hunter2"), "empty": ""})
        );
        assert_eq!(folded.get("stringData"), None);
        assert_eq!(
            diff(Some(&desired), Some(&live), &IgnoreRules::default()),
            DiffResult::Synced
        );

        set(
            &mut desired,
            "/stringData",
            json!({"password": "hunter3", "user": "admin"}),
        );
        assert_eq!(
            diff(Some(&desired), Some(&live), &IgnoreRules::default()),
            modified(&[".data.password"])
        );

        let only_string_data = json!({"apiVersion": "v1", "kind": "Secret", "stringData": {"k": "v"}});
        assert_eq!(normalize(&only_string_data)["data"], json!({"k": b64("v")}));
        let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap", "stringData": {"k": "v"}});
        assert_eq!(normalize(&config_map), config_map, "only Secrets fold stringData");
    }
}
