//! The clusters Applications deploy to: the controller's own (`in-cluster`) and those declared by cluster
//! Secrets. A remote cluster's client, discovery cache and managed-object watches are built on first use
//! and rebuilt when its Secret changes; a removed Secret drops them.

use std::{collections::HashMap, sync::Arc, sync::Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
    runtime::reflector::{ObjectRef, Store},
};
use sluice_crds::application::{Application, ApplicationDestination};
use sluice_gitops::clusters::{self, ClusterSecret, Target};
use tokio::sync::mpsc::UnboundedSender;

use super::{cluster::KubeCluster, live_watch};

/// One destination cluster: how objects are read and written there, and the watches that notice drift.
pub struct Destination {
    /// Reads, applies and deletes objects.
    pub cluster: KubeCluster,
    /// The managed-object watches.
    pub kinds: live_watch::Kinds,
    /// The cluster's URL.
    pub server: String,
    /// The cluster's name.
    pub name: String,
}

/// Every destination.
pub struct Destinations {
    local: Arc<Destination>,
    secrets: Store<Secret>,
    remotes: Mutex<HashMap<String, (String, Arc<Destination>)>>,
    trigger: UnboundedSender<ObjectRef<Application>>,
    control_plane_namespace: String,
}

impl Destinations {
    /// The controller's own cluster through `client`, remote ones from the cluster Secrets in `secrets`.
    pub fn new(
        client: Client,
        secrets: Store<Secret>,
        trigger: UnboundedSender<ObjectRef<Application>>,
        control_plane_namespace: String,
    ) -> Self {
        let local = Arc::new(Destination {
            cluster: KubeCluster::new(client.clone()),
            kinds: live_watch::Kinds::new(client, trigger.clone(), control_plane_namespace.clone()),
            server: sluice_gitops::project::IN_CLUSTER_SERVER.into(),
            name: sluice_gitops::project::IN_CLUSTER_NAME.into(),
        });
        Destinations {
            local,
            secrets,
            remotes: Mutex::new(HashMap::new()),
            trigger,
            control_plane_namespace,
        }
    }

    /// The controller's own cluster (where Applications live).
    pub fn home(&self) -> &Destination {
        &self.local
    }

    /// The readable cluster Secrets (broken ones are logged by [`Destinations::log_broken`]).
    pub fn cluster_secrets(&self) -> Vec<ClusterSecret> {
        let secrets: Vec<Secret> = self.secrets.state().iter().map(|s| (**s).clone()).collect();
        clusters::cluster_secrets(&secrets).0
    }

    /// Logs each cluster Secret that cannot be read (called when they change).
    pub fn log_broken(&self) {
        let secrets: Vec<Secret> = self.secrets.state().iter().map(|s| (**s).clone()).collect();
        for message in clusters::cluster_secrets(&secrets).1 {
            tracing::warn!(message, "cluster Secret ignored");
        }
    }

    /// The destination `dst` names; the error is the app's InvalidSpecError message.
    pub async fn of(&self, dst: &ApplicationDestination) -> Result<Arc<Destination>, String> {
        let secrets = self.cluster_secrets();
        let resolved = clusters::resolve(dst, &secrets)?;
        let Target::Remote(secret) = resolved.target else {
            return Ok(self.local.clone());
        };
        self.forget_removed(&secrets);
        if let Some((version, dest)) = self
            .remotes
            .lock()
            .ok()
            .and_then(|r| r.get(&secret.server).cloned())
            && version == secret.resource_version
        {
            return Ok(dest);
        }
        let client = client_for(&secret).await?;
        let dest = Arc::new(Destination {
            cluster: KubeCluster::new(client.clone()),
            kinds: live_watch::Kinds::new(client, self.trigger.clone(), self.control_plane_namespace.clone()),
            server: secret.server.clone(),
            name: secret.name.clone(),
        });
        if let Ok(mut remotes) = self.remotes.lock() {
            remotes.insert(
                secret.server.clone(),
                (secret.resource_version.clone(), dest.clone()),
            );
        }
        tracing::info!(cluster = %secret.name, server = %secret.server, "connected to a destination cluster");
        Ok(dest)
    }

    /// Drops the clients of clusters whose Secret is gone (their watches end with the last reference).
    fn forget_removed(&self, secrets: &[ClusterSecret]) {
        if let Ok(mut remotes) = self.remotes.lock() {
            remotes.retain(|server, _| secrets.iter().any(|s| &s.server == server));
        }
    }
}

/// A client for a declared cluster, from its Secret's credentials; errors name the cluster, never a
/// credential.
async fn client_for(secret: &ClusterSecret) -> Result<Client, String> {
    let fail = |what: &str| format!("cluster '{}' ({}): {what}", secret.server, secret.name);
    let kubeconfig: Kubeconfig = serde_json::from_value(clusters::kubeconfig(secret))
        .map_err(|e| fail(&format!("invalid connection settings: {e}")))?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| fail(&format!("invalid connection settings: {e}")))?;
    config.read_timeout = Some(std::time::Duration::from_secs(60));
    Client::try_from(config).map_err(|e| fail(&format!("cannot build a client: {e}")))
}
