//! Watches that tests keep running beside their polls: every change of one object is recorded, even one that
//! comes and goes between two polls.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::anyhow;
use futures::StreamExt;
use kube::{
    Api,
    runtime::{WatchStreamExt, watcher},
};

use k8s_openapi::api::core::v1::Service;

use crate::{cluster::wait_for, harness::TestNamespace};

const HASH: &str = "rollouts-pod-template-hash";

/// Records every distinct consecutive view of one object, from a watch of it: changes that come and go
/// between two polls are seen too.
pub struct Watch<T> {
    seen: Arc<Mutex<Vec<T>>>,
    task: tokio::task::JoinHandle<()>,
}

impl<T: Clone + PartialEq + Send + 'static> Watch<T> {
    /// Starts watching the named object and returns once its current view is recorded.
    pub async fn start<K>(ns: &TestNamespace, name: &str, view: fn(K) -> T) -> Self
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send
            + 'static,
        <K as kube::Resource>::DynamicType: Default,
    {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let api: Api<K> = ns.api();
        let (seen2, field) = (seen.clone(), format!("metadata.name={name}"));
        let task = tokio::spawn(async move {
            let stream = watcher(api, watcher::Config::default().fields(&field)).applied_objects();
            futures::pin_mut!(stream);
            while let Some(Ok(obj)) = stream.next().await {
                let v = view(obj);
                let mut s = seen2.lock().unwrap();
                if s.last() != Some(&v) {
                    s.push(v);
                }
            }
        });
        let watch = Self { seen, task };
        wait_for(
            &format!("the watch of {name}"),
            Duration::from_secs(10),
            || async {
                if watch.seen().is_empty() {
                    Err(anyhow!("nothing seen yet"))
                } else {
                    Ok(())
                }
            },
        )
        .await
        .unwrap();
        watch
    }

    /// The views so far, each change once.
    pub fn seen(&self) -> Vec<T> {
        self.seen.lock().unwrap().clone()
    }
}

impl<T: Clone + PartialEq + std::fmt::Debug + Send + 'static> Watch<T> {
    /// Waits until the last view seen is `want`.
    pub async fn wait_last(&self, want: &T, secs: u64) {
        wait_for(
            &format!("the watch to see {want:?}"),
            Duration::from_secs(secs),
            || async {
                let seen = self.seen();
                if seen.last() == Some(want) {
                    Ok(())
                } else {
                    Err(anyhow!("seen {seen:?}"))
                }
            },
        )
        .await
        .unwrap();
    }
}

impl<T> Drop for Watch<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watch<Option<String>> {
    /// Watches the pod-template hash a Service's selector shows.
    pub async fn selector(ns: &TestNamespace, svc: &str) -> Self {
        Self::start::<Service>(ns, svc, |svc| {
            svc.spec
                .and_then(|s| s.selector)
                .and_then(|s| s.get(HASH).cloned())
        })
        .await
    }

    /// Waits until the hashes seen are `want` (a watch event may arrive after the poll that saw the change).
    pub async fn wait_seen(&self, want: &[&str]) {
        let want: Vec<Option<String>> = want.iter().map(|h| Some(h.to_string())).collect();
        wait_for(
            "the selectors seen by the watch",
            Duration::from_secs(10),
            || async {
                let seen = self.seen();
                if seen == want {
                    Ok(())
                } else {
                    Err(anyhow!("seen {seen:?}, want {want:?}"))
                }
            },
        )
        .await
        .unwrap();
    }
}
