//! The Application controller's view of the destination cluster: objects addressed by group, version, kind,
//! namespace and name, read, applied (server-side, Argo CD's field manager), dry-run and deleted through one
//! small trait, so that the reconcile's I/O can be exercised against a fake.

use std::{collections::HashMap, sync::Mutex};

use kube::{
    Api, Client,
    api::{
        ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
        PropagationPolicy, ValidationDirective,
    },
    discovery::{self, Scope},
};
use serde_json::{Value, json};

/// Argo CD's field manager: objects Argo CD applied are taken over without conflicts.
pub const FIELD_MANAGER: &str = "argocd-controller";

/// An object's address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// API group, empty for core kinds.
    pub group: String,
    /// API version (without the group).
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Namespace, empty for cluster-scoped kinds.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// The key of a manifest (`apiVersion`, `kind`, `metadata.namespace`, `metadata.name`).
    pub fn of(obj: &Value) -> ObjectKey {
        let api_version = str_at(obj, "/apiVersion");
        let (group, version) = match api_version.rsplit_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        ObjectKey {
            group,
            version,
            kind: str_at(obj, "/kind").into(),
            namespace: str_at(obj, "/metadata/namespace").into(),
            name: str_at(obj, "/metadata/name").into(),
        }
    }

    /// `group/kind/namespace/name`, the identity that ignores the version.
    pub fn identity(&self) -> (String, String, String, String) {
        (
            self.group.clone(),
            self.kind.clone(),
            self.namespace.clone(),
            self.name.clone(),
        )
    }

    /// `apiVersion` as manifests write it.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let group = if self.group.is_empty() { "" } else { &self.group };
        match self.namespace.as_str() {
            "" => write!(f, "{group}/{} {}", self.kind, self.name),
            ns => write!(f, "{group}/{} {ns}/{}", self.kind, self.name),
        }
    }
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// A refused or failed request, with the API server's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The kind is not served by the API server.
    #[error("the server could not find the requested resource {0}")]
    UnknownKind(String),
    /// The API server answered with an error status.
    #[error("{message}")]
    Refused {
        /// HTTP status code.
        code: u16,
        /// The server's message.
        message: String,
    },
    /// The request did not reach the API server or its answer could not be read.
    #[error("{0}")]
    Transport(String),
}

impl ClusterError {
    fn from_kube(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(status) => ClusterError::Refused {
                code: status.code,
                message: status.message.clone(),
            },
            other => ClusterError::Transport(other.to_string()),
        }
    }
}

/// How an object is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Only ask the server what it would do (`dryRun=All`).
    pub dry_run: bool,
    /// `Validate=false`: unknown fields are ignored instead of refused.
    pub no_validate: bool,
    /// `Replace=true`: replace (or create) instead of apply.
    pub replace: bool,
}

/// What the controller does to a cluster.
pub trait Cluster: Send + Sync {
    /// Whether a kind is namespaced, `None` when the server does not serve it.
    fn namespaced(
        &self,
        api_version: &str,
        kind: &str,
    ) -> impl Future<Output = Result<Option<bool>, ClusterError>> + Send;
    /// The live object, `None` when it does not exist.
    fn get(&self, key: &ObjectKey) -> impl Future<Output = Result<Option<Value>, ClusterError>> + Send;
    /// Applies (or dry-runs, or replaces) an object and returns what the server made of it.
    fn apply(
        &self,
        obj: &Value,
        options: ApplyOptions,
    ) -> impl Future<Output = Result<Value, ClusterError>> + Send;
    /// Deletes an object with a propagation policy (`foreground`, `background`, `orphan`); gone is success.
    fn delete(
        &self,
        key: &ObjectKey,
        propagation: &str,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;
    /// Removes one finalizer from an object (a JSON patch guarded by the list it read).
    fn remove_finalizer(
        &self,
        key: &ObjectKey,
        finalizer: &str,
    ) -> impl Future<Output = Result<(), ClusterError>> + Send;
}

/// The cluster the controller runs in, with a cache of what discovery said about each kind.
pub struct KubeCluster {
    client: Client,
    kinds: Mutex<HashMap<(String, String), Discovered>>,
}

/// What discovery said of a kind: its resource and whether it is namespaced, `None` when not served.
type Discovered = Option<(ApiResource, bool)>;

impl KubeCluster {
    /// A cluster reached with `client`.
    pub fn new(client: Client) -> Self {
        KubeCluster {
            client,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    async fn resource(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<Option<(ApiResource, bool)>, ClusterError> {
        let cache_key = (api_version.to_string(), kind.to_string());
        if let Some(Some(found)) = self.kinds.lock().ok().and_then(|k| k.get(&cache_key).cloned()) {
            return Ok(Some(found));
        }
        let (group, version) = match api_version.rsplit_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let found = match discovery::pinned_kind(&self.client, &gvk).await {
            Ok((ar, caps)) => Some((ar, caps.scope == Scope::Namespaced)),
            Err(kube::Error::Api(s)) if s.code == 404 => None,
            Err(kube::Error::Discovery(_)) => None,
            Err(e) => return Err(ClusterError::from_kube(e)),
        };
        // Unknown kinds are asked again next time: a CRD may be installed by the same sync.
        if found.is_some()
            && let Ok(mut kinds) = self.kinds.lock()
        {
            kinds.insert(cache_key, found.clone());
        }
        Ok(found)
    }

    async fn api(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
    ) -> Result<Api<DynamicObject>, ClusterError> {
        let Some((ar, namespaced)) = self.resource(api_version, kind).await? else {
            return Err(ClusterError::UnknownKind(format!("{api_version}, Kind={kind}")));
        };
        Ok(if namespaced {
            Api::namespaced_with(self.client.clone(), namespace, &ar)
        } else {
            Api::all_with(self.client.clone(), &ar)
        })
    }
}

fn to_value(obj: DynamicObject) -> Result<Value, ClusterError> {
    serde_json::to_value(obj).map_err(|e| ClusterError::Transport(e.to_string()))
}

fn propagation_policy(name: &str) -> PropagationPolicy {
    match name.to_ascii_lowercase().as_str() {
        "background" => PropagationPolicy::Background,
        "orphan" => PropagationPolicy::Orphan,
        _ => PropagationPolicy::Foreground,
    }
}

impl Cluster for KubeCluster {
    async fn namespaced(&self, api_version: &str, kind: &str) -> Result<Option<bool>, ClusterError> {
        Ok(self.resource(api_version, kind).await?.map(|(_, ns)| ns))
    }

    async fn get(&self, key: &ObjectKey) -> Result<Option<Value>, ClusterError> {
        let api = match self.api(&key.api_version(), &key.kind, &key.namespace).await {
            Ok(api) => api,
            Err(ClusterError::UnknownKind(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        match api.get_opt(&key.name).await {
            Ok(found) => found.map(to_value).transpose(),
            Err(e) => Err(ClusterError::from_kube(e)),
        }
    }

    async fn apply(&self, obj: &Value, options: ApplyOptions) -> Result<Value, ClusterError> {
        let key = ObjectKey::of(obj);
        let api = self.api(&key.api_version(), &key.kind, &key.namespace).await?;
        if options.replace {
            return replace(&api, &key, obj, options).await;
        }
        let mut params = PatchParams::apply(FIELD_MANAGER).force();
        params.dry_run = options.dry_run;
        if options.no_validate {
            params.field_validation = Some(ValidationDirective::Ignore);
        }
        api.patch(&key.name, &params, &Patch::Apply(obj))
            .await
            .map_err(ClusterError::from_kube)
            .and_then(to_value)
    }

    async fn delete(&self, key: &ObjectKey, propagation: &str) -> Result<(), ClusterError> {
        let api = self.api(&key.api_version(), &key.kind, &key.namespace).await?;
        let params = DeleteParams {
            propagation_policy: Some(propagation_policy(propagation)),
            ..DeleteParams::default()
        };
        match api.delete(&key.name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(ClusterError::from_kube(e)),
        }
    }

    async fn remove_finalizer(&self, key: &ObjectKey, finalizer: &str) -> Result<(), ClusterError> {
        let Some(live) = self.get(key).await? else {
            return Ok(());
        };
        let finalizers: Vec<Value> = live
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let Some(index) = finalizers.iter().position(|f| f.as_str() == Some(finalizer)) else {
            return Ok(());
        };
        let api = self.api(&key.api_version(), &key.kind, &key.namespace).await?;
        let patch: json_patch::Patch = serde_json::from_value(json!([
            {"op": "test", "path": format!("/metadata/finalizers/{index}"), "value": finalizer},
            {"op": "remove", "path": format!("/metadata/finalizers/{index}")},
        ]))
        .map_err(|e| ClusterError::Transport(e.to_string()))?;
        match api
            .patch(&key.name, &PatchParams::default(), &Patch::<()>::Json(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(ClusterError::from_kube(e)),
        }
    }
}

async fn replace(
    api: &Api<DynamicObject>,
    key: &ObjectKey,
    obj: &Value,
    options: ApplyOptions,
) -> Result<Value, ClusterError> {
    let mut object: DynamicObject =
        serde_json::from_value(obj.clone()).map_err(|e| ClusterError::Transport(e.to_string()))?;
    let params = PostParams {
        dry_run: options.dry_run,
        field_manager: Some(FIELD_MANAGER.into()),
    };
    match api.get_opt(&key.name).await.map_err(ClusterError::from_kube)? {
        Some(live) => {
            object.metadata.resource_version = live.metadata.resource_version;
            api.replace(&key.name, &params, &object).await
        }
        None => api.create(&params, &object).await,
    }
    .map_err(ClusterError::from_kube)
    .and_then(to_value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_manifests() {
        let key = ObjectKey::of(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"}
        }));
        assert_eq!(key.group, "apps");
        assert_eq!(key.version, "v1");
        assert_eq!(key.api_version(), "apps/v1");
        assert_eq!(key.to_string(), "apps/Deployment shop/web");
        let core =
            ObjectKey::of(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}));
        assert_eq!(core.group, "");
        assert_eq!(core.api_version(), "v1");
        assert_eq!(core.to_string(), "/Namespace a");
    }

    #[test]
    fn propagation_policies() {
        assert!(matches!(
            propagation_policy("background"),
            PropagationPolicy::Background
        ));
        assert!(matches!(propagation_policy("Orphan"), PropagationPolicy::Orphan));
        assert!(matches!(propagation_policy(""), PropagationPolicy::Foreground));
        assert!(matches!(
            propagation_policy("foreground"),
            PropagationPolicy::Foreground
        ));
    }
}
