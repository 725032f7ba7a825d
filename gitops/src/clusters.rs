//! Destination clusters from Secrets, as Argo CD declares them (`AC:docs/operator-manual/declarative-setup.md
//! #clusters`, `AC:util/argo/argo.go`): a Secret labelled `argocd.argoproj.io/secret-type: cluster` in the
//! control-plane namespace carries `name`, `server` and `config` (JSON: `bearerToken`, `username`/`password`,
//! `tlsClientConfig{caData, certData, keyData, insecure, serverName}`), and optionally `namespaces`,
//! `clusterResources` and `project`. `https://kubernetes.default.svc` is the implicit `in-cluster` cluster,
//! reached with the controller's own credentials; a Secret for that URL may rename it. Pure: the caller lists
//! the Secrets and builds the clients.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;
use sluice_crds::application::ApplicationDestination;

use crate::project::{IN_CLUSTER_NAME, IN_CLUSTER_SERVER};
use crate::repo::LABEL_SECRET_TYPE;

/// [`LABEL_SECRET_TYPE`] of a cluster declaration.
pub const SECRET_TYPE_CLUSTER: &str = "cluster";

/// The label selector of cluster Secrets (the watch reads nothing else).
pub const CLUSTER_SELECTOR: &str = "argocd.argoproj.io/secret-type=cluster";

/// How the controller authenticates to a cluster: the `config` of its Secret. `Debug` names which
/// credentials are set, never their values.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfig {
    /// A bearer token.
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Basic authentication user.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic authentication password.
    #[serde(default)]
    pub password: Option<String>,
    /// TLS settings and client certificate.
    #[serde(default)]
    pub tls_client_config: TlsClientConfig,
}

/// `config.tlsClientConfig`; the data fields are base64 of PEM, as a kubeconfig's `*-data` fields.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsClientConfig {
    /// Skip verification of the server's certificate.
    #[serde(default)]
    pub insecure: bool,
    /// The CA bundle that signs the server's certificate.
    #[serde(default)]
    pub ca_data: Option<String>,
    /// The client certificate.
    #[serde(default)]
    pub cert_data: Option<String>,
    /// The client key.
    #[serde(default)]
    pub key_data: Option<String>,
    /// The name the server's certificate is checked against, when not the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |v: &Option<String>| v.as_ref().map(|_| "<set>");
        f.debug_struct("ClusterConfig")
            .field("bearer_token", &set(&self.bearer_token))
            .field("username", &self.username)
            .field("password", &set(&self.password))
            .field("insecure", &self.tls_client_config.insecure)
            .field("ca_data", &set(&self.tls_client_config.ca_data))
            .field("cert_data", &set(&self.tls_client_config.cert_data))
            .field("key_data", &set(&self.tls_client_config.key_data))
            .field("server_name", &self.tls_client_config.server_name)
            .finish()
    }
}

impl ClusterConfig {
    /// Every credential value, for cutting out of messages.
    pub fn secret_values(&self) -> Vec<&str> {
        [
            &self.bearer_token,
            &self.password,
            &self.tls_client_config.key_data,
        ]
        .into_iter()
        .filter_map(|v| v.as_deref())
        .filter(|v| !v.is_empty())
        .collect()
    }
}

/// A cluster Secret as Argo CD reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSecret {
    /// The Secret's name.
    pub secret_name: String,
    /// The Secret's resourceVersion: a client built from it is rebuilt when it changes.
    pub resource_version: String,
    /// `name`.
    pub name: String,
    /// `server`, without a trailing `/`.
    pub server: String,
    /// `config`.
    pub config: ClusterConfig,
    /// `namespaces` (comma-separated): the namespaces the cluster is limited to; empty for all.
    pub namespaces: Vec<String>,
    /// `clusterResources`: whether cluster-scoped kinds are managed while `namespaces` is set.
    pub cluster_resources: bool,
    /// `project`: the only AppProject that may use this cluster, when set.
    pub project: Option<String>,
    /// The Secret's labels (the ApplicationSet clusters generator selects on them).
    pub labels: BTreeMap<String, String>,
    /// The Secret's annotations.
    pub annotations: BTreeMap<String, String>,
}

impl ClusterSecret {
    /// Whether this Secret declares the controller's own cluster.
    pub fn is_in_cluster(&self) -> bool {
        self.server == IN_CLUSTER_SERVER
    }

    /// Reads a cluster Secret; `None` for Secrets of another type, an error naming what is missing or
    /// malformed (never a credential) for a broken one.
    pub fn from_secret(secret: &Secret) -> Option<Result<ClusterSecret, String>> {
        let labels = secret.metadata.labels.clone().unwrap_or_default();
        if labels.get(LABEL_SECRET_TYPE).map(String::as_str) != Some(SECRET_TYPE_CLUSTER) {
            return None;
        }
        let secret_name = secret.metadata.name.clone().unwrap_or_default();
        let data = secret_data(secret);
        let text = |k: &str| data.get(k).map(|v| v.trim().to_string()).unwrap_or_default();
        let server = text("server").trim_end_matches('/').to_string();
        if server.is_empty() {
            return Some(Err(format!("cluster Secret {secret_name} has no server")));
        }
        let config = match data.get("config").map(String::as_str) {
            None | Some("") => ClusterConfig::default(),
            Some(json) => match serde_json::from_str(json) {
                Ok(c) => c,
                Err(e) => {
                    return Some(Err(format!(
                        "cluster Secret {secret_name}: config is not valid JSON of a cluster config \
                         (line {}, column {})",
                        e.line(),
                        e.column()
                    )));
                }
            },
        };
        let name = match text("name") {
            n if n.is_empty() && server == IN_CLUSTER_SERVER => IN_CLUSTER_NAME.to_string(),
            n if n.is_empty() => server.clone(),
            n => n,
        };
        Some(Ok(ClusterSecret {
            resource_version: secret.metadata.resource_version.clone().unwrap_or_default(),
            name,
            config,
            namespaces: split_list(&text("namespaces")),
            cluster_resources: text("clusterResources") == "true",
            project: Some(text("project")).filter(|p| !p.is_empty()),
            labels,
            annotations: secret.metadata.annotations.clone().unwrap_or_default(),
            secret_name,
            server,
        }))
    }
}

/// A Secret's `data` (base64-decoded) over its `stringData`, as text.
fn secret_data(secret: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = secret.string_data.clone().unwrap_or_default();
    for (k, v) in secret.data.iter().flatten() {
        out.insert(k.clone(), String::from_utf8_lossy(&v.0).into_owned());
    }
    out
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The cluster Secrets among `secrets`, and the messages of those that cannot be read.
pub fn cluster_secrets(secrets: &[Secret]) -> (Vec<ClusterSecret>, Vec<String>) {
    let mut clusters = Vec::new();
    let mut broken = Vec::new();
    for read in secrets.iter().filter_map(ClusterSecret::from_secret) {
        match read {
            Ok(c) => clusters.push(c),
            Err(message) => broken.push(message),
        }
    }
    clusters.sort_by(|a, b| a.name.cmp(&b.name).then(a.server.cmp(&b.server)));
    (clusters, broken)
}

/// A cluster the controller knows, as the ApplicationSet clusters generator and the project checks see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownCluster {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub server: String,
    /// The declaring Secret's labels (empty for the implicit in-cluster).
    pub labels: BTreeMap<String, String>,
    /// The declaring Secret's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The declaring Secret's `project` (empty when unset, and for the implicit in-cluster).
    pub project: String,
    /// Whether it is declared by a Secret (the implicit in-cluster is not).
    pub declared: bool,
}

/// Every cluster: those declared by Secrets, and the implicit in-cluster unless a Secret declares its URL.
pub fn known_clusters(clusters: &[ClusterSecret]) -> Vec<KnownCluster> {
    let mut out: Vec<KnownCluster> = clusters
        .iter()
        .map(|c| KnownCluster {
            name: c.name.clone(),
            server: c.server.clone(),
            labels: c.labels.clone(),
            annotations: c.annotations.clone(),
            project: c.project.clone().unwrap_or_default(),
            declared: true,
        })
        .collect();
    if !clusters.iter().any(ClusterSecret::is_in_cluster) {
        out.insert(
            0,
            KnownCluster {
                name: IN_CLUSTER_NAME.into(),
                server: IN_CLUSTER_SERVER.into(),
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
                project: String::new(),
                declared: false,
            },
        );
    }
    out
}

/// Where an Application's destination points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The controller's own cluster.
    InCluster,
    /// A cluster declared by this Secret.
    Remote(Box<ClusterSecret>),
}

/// A destination resolved to a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The cluster's URL.
    pub server: String,
    /// The cluster's name.
    pub name: String,
    /// How it is reached.
    pub target: Target,
}

/// Resolves `dst` among `clusters` as Argo CD's `ValidateDestination` does; the error is the message of the
/// app's InvalidSpecError.
pub fn resolve(dst: &ApplicationDestination, clusters: &[ClusterSecret]) -> Result<Resolved, String> {
    let server = dst.server.as_deref().unwrap_or("").trim_end_matches('/');
    let name = dst.name.as_deref().unwrap_or("");
    let known = known_clusters(clusters);
    let found = match (server, name) {
        ("", "") => return Err("Destination server missing from app spec".into()),
        (s, n) if !s.is_empty() && !n.is_empty() => {
            return Err(format!(
                "application destination can't have both name and server defined: {n} {s}"
            ));
        }
        ("", n) => {
            let named: Vec<&KnownCluster> = known.iter().filter(|c| c.name == n).collect();
            match named.as_slice() {
                [one] => *one,
                [] => {
                    return Err(format!(
                        "unable to find destination server: there are no clusters with this name: {n}"
                    ));
                }
                many => {
                    let servers: Vec<&str> = many.iter().map(|c| c.server.as_str()).collect();
                    return Err(format!(
                        "unable to find destination server: there are {} clusters with the same name: [{}]",
                        many.len(),
                        servers.join(" ")
                    ));
                }
            }
        }
        (s, _) => match known.iter().find(|c| c.server == s) {
            Some(c) => c,
            None => {
                return Err(format!(
                    "unable to find destination server: there are no clusters with this URL: {s}"
                ));
            }
        },
    };
    let target = match clusters.iter().find(|c| c.server == found.server) {
        Some(c) if !c.is_in_cluster() => Target::Remote(Box::new(c.clone())),
        _ => Target::InCluster,
    };
    Ok(Resolved {
        server: found.server.clone(),
        name: found.name.clone(),
        target,
    })
}

/// A kubeconfig (as JSON) that reaches `cluster` with its Secret's credentials, for the client library.
pub fn kubeconfig(cluster: &ClusterSecret) -> serde_json::Value {
    let tls = &cluster.config.tls_client_config;
    let mut entry = serde_json::json!({"server": cluster.server});
    if tls.insecure {
        entry["insecure-skip-tls-verify"] = true.into();
    }
    if let Some(ca) = &tls.ca_data {
        entry["certificate-authority-data"] = ca.clone().into();
    }
    if let Some(name) = &tls.server_name {
        entry["tls-server-name"] = name.clone().into();
    }
    let mut user = serde_json::json!({});
    let c = &cluster.config;
    for (field, value) in [
        ("token", &c.bearer_token),
        ("username", &c.username),
        ("password", &c.password),
        ("client-certificate-data", &tls.cert_data),
        ("client-key-data", &tls.key_data),
    ] {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            user[field] = v.clone().into();
        }
    }
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": entry}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    })
}

#[cfg(test)]
mod tests;
