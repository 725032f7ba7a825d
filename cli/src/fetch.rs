//! Reading what a view is built from: once (`get`, `list`) or live from watches (`--watch`, the dashboard).
//! Live reads keep one reflector per kind in the namespace and signal every change; nothing polls.

use std::sync::Arc;

use anyhow::Result;
use futures::StreamExt;
use k8s_openapi::api::{apps::v1::ReplicaSet, batch::v1::Job, core::v1::Pod};
use kube::{
    Api, Client, Resource,
    api::ListParams,
    runtime::{WatchStreamExt, reflector, watcher},
};
use serde::de::DeserializeOwned;
use sluice_crds::{analysis::AnalysisRun, experiment::Experiment, rollout::Rollout};
use tokio::sync::watch;

use crate::info::Owned;

fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Lists a kind; a kind whose CRD is not installed (Experiments on a cluster without them) reads as empty.
async fn list<K>(client: &Client, ns: Option<&str>) -> Result<Vec<K>>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope> + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    match api::<K>(client, ns).list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Everything a namespace's rollouts are drawn from (None: all namespaces).
pub async fn owned(client: &Client, ns: Option<&str>) -> Result<Owned> {
    let (replica_sets, pods, analysis_runs, experiments, jobs) = futures::try_join!(
        list::<ReplicaSet>(client, ns),
        list::<Pod>(client, ns),
        list::<AnalysisRun>(client, ns),
        list::<Experiment>(client, ns),
        list::<Job>(client, ns),
    )?;
    Ok(Owned {
        replica_sets,
        pods,
        analysis_runs,
        experiments,
        jobs,
    })
}

/// Rollouts of a namespace (None: all namespaces), sorted by namespace and name.
pub async fn rollouts(client: &Client, ns: Option<&str>) -> Result<Vec<Rollout>> {
    let mut items = api::<Rollout>(client, ns)
        .list(&ListParams::default())
        .await?
        .items;
    items.sort_by(|a, b| {
        (a.metadata.namespace.as_deref(), a.metadata.name.as_deref())
            .cmp(&(b.metadata.namespace.as_deref(), b.metadata.name.as_deref()))
    });
    Ok(items)
}

/// Watch caches of a namespace (None: all namespaces), with a counter that moves on every change.
#[derive(Clone)]
pub struct Live {
    rollouts: reflector::Store<Rollout>,
    replica_sets: reflector::Store<ReplicaSet>,
    pods: reflector::Store<Pod>,
    analysis_runs: reflector::Store<AnalysisRun>,
    experiments: reflector::Store<Experiment>,
    jobs: reflector::Store<Job>,
    changes: watch::Receiver<u64>,
}

/// Starts one reflector; every event bumps the change counter. A kind whose CRD is missing stays empty.
fn reflect<K>(client: &Client, ns: Option<&str>, bump: Arc<watch::Sender<u64>>) -> reflector::Store<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api::<K>(client, ns), watcher::Config::default())
        .default_backoff()
        .modify(|o: &mut K| o.meta_mut().managed_fields = None)
        .reflect(writer);
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if event.is_ok() {
                bump.send_modify(|n| *n += 1);
            }
        }
    });
    reader
}

impl Live {
    /// Starts the watches; returns once the Rollout cache has its first full list.
    pub async fn start(client: &Client, ns: Option<&str>) -> Result<Live> {
        let (tx, changes) = watch::channel(0u64);
        let tx = Arc::new(tx);
        let live = Live {
            rollouts: reflect(client, ns, tx.clone()),
            replica_sets: reflect(client, ns, tx.clone()),
            pods: reflect(client, ns, tx.clone()),
            analysis_runs: reflect(client, ns, tx.clone()),
            experiments: reflect(client, ns, tx.clone()),
            jobs: reflect(client, ns, tx),
            changes,
        };
        live.rollouts.wait_until_ready().await?;
        Ok(live)
    }

    /// A receiver that wakes on every change (`changed().await`).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// The Rollouts now cached, sorted by namespace and name.
    pub fn rollouts(&self) -> Vec<Rollout> {
        let mut items: Vec<Rollout> = self.rollouts.state().iter().map(|r| (**r).clone()).collect();
        items.sort_by(|a, b| {
            (a.metadata.namespace.as_deref(), a.metadata.name.as_deref())
                .cmp(&(b.metadata.namespace.as_deref(), b.metadata.name.as_deref()))
        });
        items
    }

    /// The owned objects now cached.
    pub fn owned(&self) -> Owned {
        fn all<K: Clone + Resource>(s: &reflector::Store<K>) -> Vec<K>
        where
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            s.state().iter().map(|o| (**o).clone()).collect()
        }
        Owned {
            replica_sets: all(&self.replica_sets),
            pods: all(&self.pods),
            analysis_runs: all(&self.analysis_runs),
            experiments: all(&self.experiments),
            jobs: all(&self.jobs),
        }
    }
}

/// One Rollout, with the view controller's not-found wording (`rollout.argoproj.io "x" not found`).
pub async fn rollout(client: &Client, ns: &str, name: &str) -> Result<Rollout> {
    match Api::<Rollout>::namespaced(client.clone(), ns).get(name).await {
        Ok(ro) => Ok(ro),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(anyhow::anyhow!(
            "rollout.{} {name:?} not found",
            sluice_crds::GROUP
        )),
        Err(e) => Err(e.into()),
    }
}

/// Every new state of the Rollouts of a namespace (None: all), or of the one named: a watch, with the
/// watcher's backoff on errors, that yields each added or modified Rollout.
pub fn rollout_updates(
    client: &Client,
    ns: Option<&str>,
    name: Option<&str>,
) -> impl futures::Stream<Item = Rollout> + Send + 'static {
    let mut config = watcher::Config::default();
    if let Some(name) = name {
        config = config.fields(&format!("metadata.name={name}"));
    }
    watcher(api::<Rollout>(client, ns), config)
        .default_backoff()
        .applied_objects()
        .filter_map(|r| async move { r.ok() })
}
