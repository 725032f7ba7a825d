//! A watch of one routing object (VirtualService, HTTPRoute, Ingress, TrafficSplit) that records every canary
//! weight it shows and checks, at each change, that the canary ReplicaSet has the available pods that weight
//! needs: the guarantee every router gives, checked at every watch event rather than between polls.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::{
    Api,
    api::{ApiResource, DynamicObject},
    runtime::{WatchStreamExt, watcher},
};
use sluice_crds::rollout::Rollout;

use crate::harness::TestNamespace;

/// Records the canary weights one object shows and the moments they were more than the canary pods could take.
pub struct WeightWatch {
    seen: Arc<Mutex<Vec<i64>>>,
    violations: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

/// What a weight watch looks at.
pub struct Watched {
    /// The kind of the routing object.
    pub resource: ApiResource,
    /// Its name.
    pub name: String,
    /// The canary weight it shows (`None`: the object shows none, e.g. no canary Ingress yet, read as 0).
    pub weight: fn(&DynamicObject) -> Option<i64>,
    /// The Rollout whose canary the weight goes to.
    pub rollout: String,
    /// Its spec.replicas.
    pub replicas: i32,
    /// The weight that means all traffic (100, or trafficRouting.maxTrafficWeight).
    pub total: i64,
}

impl WeightWatch {
    /// Starts watching; weights are recorded from the first event on.
    pub fn start(ns: &TestNamespace, watched: Watched) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let api: Api<DynamicObject> = Api::namespaced_with(ns.client.clone(), &ns.name, &watched.resource);
        let rollouts: Api<Rollout> = ns.api();
        let rss: Api<ReplicaSet> = ns.api();
        let (seen2, violations2) = (seen.clone(), violations.clone());
        let task = tokio::spawn(async move {
            let field = format!("metadata.name={}", watched.name);
            let stream = watcher(api, watcher::Config::default().fields(&field)).applied_objects();
            futures::pin_mut!(stream);
            while let Some(Ok(obj)) = stream.next().await {
                let canary = (watched.weight)(&obj).unwrap_or(0);
                {
                    let mut s = seen2.lock().unwrap();
                    if s.last() == Some(&canary) {
                        continue;
                    }
                    s.push(canary);
                }
                if canary <= 0 {
                    continue;
                }
                // The canary Service selects the current pod hash: its ReplicaSet must have the pods.
                let Ok(ro) = rollouts.get(&watched.rollout).await else {
                    continue;
                };
                let Some(hash) = ro.status.and_then(|s| s.current_pod_hash) else {
                    continue;
                };
                let need = (canary * i64::from(watched.replicas) + watched.total - 1) / watched.total;
                let avail = rss
                    .get(&format!("{}-{hash}", watched.rollout))
                    .await
                    .ok()
                    .and_then(|rs| rs.status)
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0);
                if i64::from(avail) < need {
                    violations2.lock().unwrap().push(format!(
                        "weight {canary} with {avail} available canary pods (need {need})"
                    ));
                }
            }
        });
        Self {
            seen,
            violations,
            task,
        }
    }

    /// The distinct consecutive weights seen so far.
    pub fn seen(&self) -> Vec<i64> {
        self.seen.lock().unwrap().clone()
    }

    /// Every moment a weight was more than the available canary pods could take.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().unwrap().clone()
    }
}

impl Drop for WeightWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}
