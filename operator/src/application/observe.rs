//! What a reconcile reads: the commit a source names, the manifests rendered from it (tracked for this app),
//! and the live objects with their drift from those manifests.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use futures::{StreamExt, stream};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sluice_crds::application::{Application, ApplicationSource};
use sluice_gitops::{
    diff::{self, DiffResult, IgnoreRules},
    tracking,
};

use super::{
    cluster::{ApplyOptions, Cluster, ClusterError, ObjectKey},
    compare::{Drift, Pair},
};

/// How many live objects are read (or dry-run) at once for one app.
const PARALLEL_READS: usize = 8;

/// The manifests of one revision, ready to compare and sync.
#[derive(Clone, Debug)]
pub struct Targets {
    /// The commit.
    pub revision: String,
    /// `Directory`, `Kustomize` or `Helm`.
    pub source_type: String,
    /// The objects: namespaced ones in the destination namespace when they name none, tracking set.
    pub objects: Vec<Value>,
    /// The warning about Secrets with readable data in the app's files, if there are any.
    pub plain_secrets: Option<String>,
}

/// A digest of a JSON value (for cache keys).
pub fn digest(value: &impl serde::Serialize) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    Sha256::digest(&bytes)
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The app's single source; several sources are not supported yet.
pub fn source(app: &Application) -> Result<&ApplicationSource, String> {
    if app.spec.sources.as_ref().is_some_and(|s| !s.is_empty()) {
        return Err("spec.sources (multiple sources) is not supported; use spec.source".into());
    }
    app.spec
        .source
        .as_ref()
        .ok_or_else(|| "spec.source is required".to_string())
}

/// The objects with the destination namespace filled in where a namespaced object has none (cluster-scoped
/// objects lose a namespace they name), and the tracking annotation of `instance`. `namespaced` answers per
/// (apiVersion, kind); unknown kinds count as namespaced.
pub fn place(
    objects: Vec<Value>,
    namespace: &str,
    instance: &str,
    namespaced: &HashMap<(String, String), bool>,
) -> Vec<Value> {
    objects
        .into_iter()
        .map(|mut obj| {
            let api_version = obj
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
            let scoped = namespaced.get(&(api_version, kind)).copied().unwrap_or(true);
            if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                let has_ns = meta
                    .get("namespace")
                    .and_then(Value::as_str)
                    .is_some_and(|n| !n.is_empty());
                if !scoped {
                    meta.remove("namespace");
                } else if !has_ns && !namespace.is_empty() {
                    meta.insert("namespace".into(), Value::String(namespace.into()));
                }
            }
            // Namespaced objects carry their namespace by now; cluster-scoped ones are tracked without one.
            tracking::set_tracking(&mut obj, instance, "", "");
            obj
        })
        .collect()
}

/// Asks the cluster which kinds of `objects` are namespaced.
pub async fn scopes(
    cluster: &impl Cluster,
    objects: &[Value],
) -> Result<HashMap<(String, String), bool>, ClusterError> {
    let kinds: HashSet<(String, String)> = objects
        .iter()
        .map(|o| {
            let s = |k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            (s("apiVersion"), s("kind"))
        })
        .collect();
    let mut out = HashMap::new();
    for (api_version, kind) in kinds {
        if let Some(namespaced) = cluster.namespaced(&api_version, &kind).await? {
            out.insert((api_version, kind), namespaced);
        }
    }
    Ok(out)
}

/// Cached drift results: a dry run is repeated only when the target or the live object changed.
#[derive(Default)]
pub struct DiffCache {
    entries: Mutex<HashMap<(String, ObjectKey), CachedDiff>>,
}

/// (target digest, live resourceVersion, result).
type CachedDiff = (String, String, DiffResult);

/// Bound on remembered drift results; beyond it the cache starts over.
const MAX_DIFFS: usize = 50_000;

impl DiffCache {
    fn get(&self, app: &str, key: &ObjectKey, target: &str, live_rv: &str) -> Option<DiffResult> {
        let entries = self.entries.lock().ok()?;
        let (t, rv, result) = entries.get(&(app.to_string(), key.clone()))?;
        (t == target && rv == live_rv).then(|| result.clone())
    }

    fn put(&self, app: &str, key: &ObjectKey, target: String, live_rv: String, result: DiffResult) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_DIFFS {
                entries.clear();
            }
            entries.insert((app.to_string(), key.clone()), (target, live_rv, result));
        }
    }

    /// Forgets an app's results (a hard refresh).
    pub fn forget(&self, app: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|(a, _), _| a != app);
        }
    }
}

/// The keys an app managed at its last comparison (`status.resources`), which may need pruning now.
pub fn inventory(app: &Application) -> Vec<ObjectKey> {
    let resources = app.status.as_ref().and_then(|s| s.resources.as_ref());
    resources
        .into_iter()
        .flatten()
        .map(|r| ObjectKey {
            group: r.group.clone().unwrap_or_default(),
            version: r.version.clone().unwrap_or_default(),
            kind: r.kind.clone().unwrap_or_default(),
            namespace: r.namespace.clone().unwrap_or_default(),
            name: r.name.clone().unwrap_or_default(),
        })
        .collect()
}

/// What reading the live state found: the pairs, and the objects whose comparison failed.
pub struct LiveState {
    /// One pair per target and per extraneous managed object.
    pub pairs: Vec<Pair>,
    /// `(object, message)` for each dry run the server refused.
    pub errors: Vec<(String, String)>,
}

fn is_managed_root(live: &Value, instance: &str) -> bool {
    let owned = live
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|o| !o.is_empty());
    !owned && tracking::is_managed_by(live, instance)
}

/// Reads the live object of every named target and of every inventory object no target names (kept when
/// its tracking id names this app and it has no owner), and computes each pair's drift.
pub async fn live_state(
    cluster: &impl Cluster,
    cache: &DiffCache,
    app_key: &str,
    instance: &str,
    targets: &[Value],
    inventory: &[ObjectKey],
    rules: &IgnoreRules,
) -> Result<LiveState, ClusterError> {
    let named: Vec<&Value> = targets
        .iter()
        .filter(|t| {
            t.pointer("/metadata/name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty())
        })
        .collect();
    let known: HashSet<_> = named.iter().map(|t| ObjectKey::of(t).identity()).collect();
    let extra: Vec<&ObjectKey> = inventory
        .iter()
        .filter(|k| !known.contains(&k.identity()))
        .collect();
    let mut jobs = Vec::with_capacity(named.len() + extra.len());
    for target in &named {
        jobs.push(pair_of(
            cluster,
            cache,
            app_key,
            instance,
            ObjectKey::of(target),
            Some(*target),
            rules,
        ));
    }
    for key in &extra {
        jobs.push(pair_of(
            cluster,
            cache,
            app_key,
            instance,
            (*key).clone(),
            None,
            rules,
        ));
    }
    let read: Vec<Result<PairOutcome, ClusterError>> =
        stream::iter(jobs).buffered(PARALLEL_READS).collect().await;
    let mut state = LiveState {
        pairs: Vec::new(),
        errors: Vec::new(),
    };
    for result in read {
        match result? {
            PairOutcome::Pair(p) => state.pairs.push(p),
            PairOutcome::Failed(p, message) => {
                state.errors.push((p.key.to_string(), message));
                state.pairs.push(p);
            }
            PairOutcome::Unmanaged => {}
        }
    }
    Ok(state)
}

enum PairOutcome {
    Pair(Pair),
    Failed(Pair, String),
    Unmanaged,
}

/// Reads the live object of `key` and pairs it with its target: its drift from a cached result, or from a
/// dry run of the target when the target or the live object changed.
async fn pair_of(
    cluster: &impl Cluster,
    cache: &DiffCache,
    app_key: &str,
    instance: &str,
    key: ObjectKey,
    target: Option<&Value>,
    rules: &IgnoreRules,
) -> Result<PairOutcome, ClusterError> {
    let live = cluster.get(&key).await?;
    let make = |drift| Pair {
        key: key.clone(),
        target: target.cloned(),
        live: live.clone(),
        drift,
    };
    let Some(target) = target else {
        return Ok(match &live {
            Some(l) if is_managed_root(l, instance) => PairOutcome::Pair(make(Drift::Extraneous)),
            _ => PairOutcome::Unmanaged,
        });
    };
    let Some(live_obj) = &live else {
        return Ok(PairOutcome::Pair(make(Drift::Missing)));
    };
    let target_digest = digest(target);
    let rv = live_obj
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let result = match cache.get(app_key, &key, &target_digest, &rv) {
        Some(r) => r,
        None => {
            let options = ApplyOptions {
                dry_run: true,
                ..Default::default()
            };
            match cluster.apply(target, options).await {
                Ok(predicted) => {
                    let r = diff::diff(Some(&predicted), Some(live_obj), rules);
                    cache.put(app_key, &key, target_digest, rv, r.clone());
                    r
                }
                Err(e) => return Ok(PairOutcome::Failed(make(Drift::Modified(vec![])), e.to_string())),
            }
        }
    };
    Ok(PairOutcome::Pair(make(drift_of(result))))
}

fn drift_of(result: DiffResult) -> Drift {
    match result {
        DiffResult::Synced => Drift::Synced,
        DiffResult::Missing => Drift::Missing,
        DiffResult::Extraneous => Drift::Extraneous,
        DiffResult::Modified { paths, .. } => Drift::Modified(paths),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn place_fills_namespaces_and_tracks() {
        let objects = vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "other"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "namespace": "x"}}),
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
        ];
        let mut scopes = HashMap::new();
        scopes.insert(("v1".to_string(), "ConfigMap".to_string()), true);
        scopes.insert(("v1".to_string(), "Namespace".to_string()), false);
        let placed = place(objects, "shop", "guestbook", &scopes);
        assert_eq!(placed[0]["metadata"]["namespace"], "shop");
        assert_eq!(placed[1]["metadata"]["namespace"], "other");
        assert!(placed[2]["metadata"].get("namespace").is_none());
        assert_eq!(placed[3]["metadata"]["namespace"], "shop");
        assert_eq!(
            placed[0]["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"],
            "guestbook:/ConfigMap:shop/a"
        );
        assert_eq!(
            placed[2]["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"],
            "guestbook:/Namespace:/shop"
        );
    }

    #[test]
    fn managed_roots_only() {
        let tracked = json!({"metadata": {"name": "a", "namespace": "shop",
            "annotations": {"argocd.argoproj.io/tracking-id": "app:/ConfigMap:shop/a"}},
            "apiVersion": "v1", "kind": "ConfigMap"});
        assert!(is_managed_root(&tracked, "app"));
        assert!(!is_managed_root(&tracked, "other"));
        let mut owned = tracked.clone();
        owned["metadata"]["ownerReferences"] = json!([{"kind": "X", "name": "y"}]);
        assert!(!is_managed_root(&owned, "app"));
        let mut copied = tracked.clone();
        copied["metadata"]["name"] = json!("b");
        assert!(!is_managed_root(&copied, "app"));
    }

    #[test]
    fn diff_cache_keys_on_target_and_live_version() {
        let cache = DiffCache::default();
        let key = ObjectKey::of(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}));
        cache.put("app", &key, "t1".into(), "5".into(), DiffResult::Synced);
        assert_eq!(cache.get("app", &key, "t1", "5"), Some(DiffResult::Synced));
        assert_eq!(cache.get("app", &key, "t1", "6"), None);
        assert_eq!(cache.get("app", &key, "t2", "5"), None);
        cache.forget("app");
        assert_eq!(cache.get("app", &key, "t1", "5"), None);
    }

    #[test]
    fn one_source_only() {
        let mut app: Application = serde_json::from_value(json!({
            "metadata": {"name": "a"},
            "spec": {"destination": {}, "project": "default"}
        }))
        .unwrap();
        assert_eq!(source(&app).unwrap_err(), "spec.source is required");
        app.spec.sources = Some(vec![ApplicationSource::default()]);
        assert!(source(&app).unwrap_err().contains("multiple sources"));
    }
}
