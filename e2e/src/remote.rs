//! A second cluster for multi-cluster tests: etcd and an API server of its own (no nodes, no controllers;
//! objects applied there are only stored), and the cluster Secrets Argo CD declares clusters with.

use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use k8s_openapi::api::{
    authentication::v1::TokenRequest, core::v1::ServiceAccount, rbac::v1::ClusterRoleBinding,
};
use kube::{Api, Client, api::PostParams};
use serde_json::{Value, json};

use crate::cluster::{ClusterInfo, ControlPlane, Options};

/// A running API-server-only cluster; dropping it stops it.
pub struct RemoteCluster {
    /// The control plane (kept for its lifetime).
    pub control_plane: ControlPlane,
    /// An admin client.
    pub client: Client,
}

impl RemoteCluster {
    /// Starts a cluster in `dir` with the binaries the shared cluster uses.
    pub async fn start(shared: &ClusterInfo, dir: &Path) -> Result<Self> {
        let opts = Options {
            dir: dir.to_path_buf(),
            bin_dir: shared.bin_dir.clone(),
            nodes: 0,
        };
        let control_plane = ControlPlane::start_api_only(&opts).await?;
        let client = control_plane.info.client().await?;
        Ok(Self {
            control_plane,
            client,
        })
    }

    /// The API server's URL.
    pub fn server(&self) -> &str {
        &self.control_plane.info.server
    }

    /// A bearer token of a cluster-admin service account (`kube-system/argocd-manager`, as `argocd cluster
    /// add` creates it).
    pub async fn manager_token(&self) -> Result<String> {
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), "kube-system");
        let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "argocd-manager"}}))?;
        sas.create(&PostParams::default(), &sa).await?;
        let binding: ClusterRoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "argocd-manager"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "argocd-manager", "namespace": "kube-system"}],
        }))?;
        Api::<ClusterRoleBinding>::all(self.client.clone())
            .create(&PostParams::default(), &binding)
            .await?;
        let request: TokenRequest =
            serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 86400}}))?;
        let issued = sas
            .create_token_request("argocd-manager", &PostParams::default(), &request)
            .await?;
        issued
            .status
            .and_then(|s| s.token)
            .context("the token request returned no token")
    }

    /// The `config` of a cluster Secret that reaches this cluster with `token`, its CA verified.
    pub fn token_config(&self, token: &str) -> Result<Value> {
        let tls = kubeconfig_tls(&self.control_plane.info.kubeconfig)?;
        Ok(json!({"bearerToken": token, "tlsClientConfig": {"caData": tls["caData"]}}))
    }
}

/// The `tlsClientConfig` of a kubeconfig's first cluster and user (CA and client certificate, base64 PEM).
pub fn kubeconfig_tls(kubeconfig: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(kubeconfig).with_context(|| format!("reading {}", kubeconfig.display()))?;
    let kc: Value = serde_yaml::from_str(&text)?;
    let at = |p: &str| kc.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    Ok(json!({
        "caData": at("/clusters/0/cluster/certificate-authority-data"),
        "certData": at("/users/0/user/client-certificate-data"),
        "keyData": at("/users/0/user/client-key-data"),
    }))
}

/// A cluster Secret (`argocd.argoproj.io/secret-type: cluster`) in `namespace`.
pub fn cluster_secret(
    namespace: &str,
    name: &str,
    server: &str,
    config: &Value,
    labels: &[(&str, &str)],
) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut all_labels = serde_json::Map::new();
    all_labels.insert("argocd.argoproj.io/secret-type".into(), "cluster".into());
    for (k, v) in labels {
        all_labels.insert((*k).into(), (*v).into());
    }
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("cluster-{name}"), "namespace": namespace, "labels": all_labels},
        "type": "Opaque",
        "data": {"name": b64(name), "server": b64(server), "config": b64(&config.to_string())},
    })
    .to_string()
}
