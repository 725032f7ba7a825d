//! Readiness and the reconcile gate. A controller reconciles nothing until every cache it reads has had its
//! first full listing and this process leads; `/readyz` answers 503 while a cache is still filling and says
//! when the process is a standby (whose caches stay warm, and which writes nothing).

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use futures::{Stream, StreamExt};
use kube::runtime::watcher;
use tokio::sync::watch;

/// What `/readyz` reports.
#[derive(Debug)]
pub struct Readiness {
    caches: Mutex<BTreeMap<&'static str, bool>>,
    /// Bumped whenever a cache becomes synced (wakes every waiting gate).
    synced_tx: watch::Sender<u64>,
    leading: watch::Receiver<bool>,
    lease: Option<String>,
}

impl Readiness {
    /// Readiness of a process that leads when `leading` says so; `lease` names the Lease when elected.
    pub fn new(leading: watch::Receiver<bool>, lease: Option<String>) -> Arc<Self> {
        Arc::new(Readiness {
            caches: Mutex::default(),
            synced_tx: watch::Sender::new(0),
            leading,
            lease,
        })
    }

    /// Registers a cache that is not synced yet.
    pub fn expect(&self, cache: &'static str) {
        if let Ok(mut c) = self.caches.lock() {
            c.entry(cache).or_insert(false);
        }
    }

    /// Marks a cache as synced.
    pub fn synced(&self, cache: &'static str) {
        if let Ok(mut c) = self.caches.lock() {
            c.insert(cache, true);
        }
        self.synced_tx.send_modify(|n| *n += 1);
    }

    /// Resolves once every cache registered so far is synced.
    pub async fn all_synced(&self) {
        let mut synced = self.synced_tx.subscribe();
        let all = |_: &u64| {
            self.caches
                .lock()
                .map(|c| c.values().all(|s| *s))
                .unwrap_or(false)
        };
        let _ = synced.wait_for(all).await;
    }

    /// (HTTP status, body) of `/readyz`.
    pub fn report(&self) -> (u16, String) {
        let waiting: Vec<&str> = self
            .caches
            .lock()
            .map(|c| c.iter().filter(|(_, s)| !**s).map(|(n, _)| *n).collect())
            .unwrap_or_default();
        if !waiting.is_empty() {
            return (503, format!("waiting for caches: {}", waiting.join(", ")));
        }
        match (&self.lease, *self.leading.borrow()) {
            (_, true) => (200, "ok: leading".into()),
            (Some(lease), false) => (
                200,
                format!("ok: standby (caches warm, waiting for the lease {lease})"),
            ),
            (None, false) => (503, "not leading".into()),
        }
    }

    /// Passes a reflector's events through, marking `cache` synced at the end of its first full listing.
    pub fn track<S, K>(
        self: &Arc<Self>,
        cache: &'static str,
        events: S,
    ) -> impl Stream<Item = S::Item> + Send + use<S, K>
    where
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    {
        self.expect(cache);
        let readiness = self.clone();
        events.inspect(move |e| {
            if let Ok(watcher::Event::InitDone) = e {
                readiness.synced(cache);
            }
        })
    }

    /// A gate for a controller that reads the named caches.
    pub fn gate(self: &Arc<Self>, caches: &[&'static str]) -> Gate {
        for c in caches {
            self.expect(c);
        }
        Gate {
            readiness: self.clone(),
            caches: caches.to_vec(),
            open: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// One controller's gate: open once its caches are synced while this process leads.
#[derive(Clone, Debug)]
pub struct Gate {
    readiness: Arc<Readiness>,
    caches: Vec<&'static str>,
    open: Arc<AtomicBool>,
}

impl Gate {
    /// Whether reconciles may run (and write) now.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire) && *self.readiness.leading.borrow()
    }

    fn caches_synced(&self) -> bool {
        self.readiness
            .caches
            .lock()
            .map(|c| self.caches.iter().all(|n| c.get(n).copied().unwrap_or(false)))
            .unwrap_or(false)
    }

    /// Resolves when the gate opens: every cache synced and this process leading.
    pub async fn opened(&self) {
        let mut synced = self.readiness.synced_tx.subscribe();
        let _ = synced.wait_for(|_| self.caches_synced()).await.map(|_| ());
        let mut leading = self.readiness.leading.clone();
        let _ = leading.wait_for(|l| *l).await.map(|_| ());
        self.open.store(true, Ordering::Release);
    }

    /// A stream that yields once, when the gate opens: the controller `reconcile_all_on` it.
    pub fn opening(&self) -> impl Stream<Item = ()> + Send + use<> {
        let gate = self.clone();
        futures::stream::once(async move { gate.opened().await })
    }

    /// Passes a reflector's events through, marking `cache` synced at the end of its first full listing.
    pub fn track<S, K>(
        &self,
        cache: &'static str,
        events: S,
    ) -> impl Stream<Item = S::Item> + Send + use<S, K>
    where
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    {
        self.readiness.track(cache, events)
    }
}

/// How many changes a shared cache (ReplicaSets, AnalysisRuns) buffers for the controllers that follow it.
/// Each slot is an object reference (about 100 bytes, preallocated); when the buffer is full the watch waits
/// for the slowest controller, which takes the changes in a moment: nothing is dropped.
pub const SHARED_BUFFER: usize = 256;

/// Drops from a cached object what no reconcile reads: its managed fields and `kubectl apply`'s last-applied
/// copy (as long as the object).
pub fn lean<K: kube::Resource>(o: &mut K) {
    o.meta_mut().managed_fields = None;
    if let Some(a) = o.meta_mut().annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// A watch of `api` kept in a store, managed fields and the last-applied copy (`kubectl apply`'s, as long as the
/// object) dropped; the stream yields the objects that changed.
pub fn reflected<K>(
    api: kube::Api<K>,
    config: watcher::Config,
    gate: &Gate,
    cache: &'static str,
) -> (
    kube::runtime::reflector::Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + use<K>,
)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    use kube::runtime::WatchStreamExt;
    let (store, writer) = kube::runtime::reflector::store();
    let events = watcher(api, config)
        .default_backoff()
        .modify(lean)
        .reflect(writer);
    (store, gate.track(cache, events).touched_objects())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_gate_opens_when_caches_are_synced_and_the_lease_is_held() {
        let (lead, leading) = watch::channel(false);
        let readiness = Readiness::new(leading, Some("ns/lock".into()));
        let gate = readiness.gate(&["rollouts", "replicasets"]);
        assert_eq!(
            readiness.report(),
            (503, "waiting for caches: replicasets, rollouts".into())
        );
        let events = futures::stream::iter([
            Ok(watcher::Event::<String>::Init),
            Ok(watcher::Event::InitApply("a".to_string())),
            Ok(watcher::Event::InitDone),
        ]);
        let seen: Vec<_> = gate.track("rollouts", events).collect().await;
        assert_eq!(seen.len(), 3, "events pass through");
        assert_eq!(readiness.report().0, 503);
        readiness.synced("replicasets");
        assert_eq!(
            readiness.report(),
            (
                200,
                "ok: standby (caches warm, waiting for the lease ns/lock)".into()
            )
        );
        let opening = tokio::spawn({
            let gate = gate.clone();
            async move { gate.opened().await }
        });
        tokio::task::yield_now().await;
        assert!(!gate.is_open());
        lead.send(true).unwrap();
        opening.await.unwrap();
        assert!(gate.is_open());
        assert_eq!(readiness.report(), (200, "ok: leading".into()));
        lead.send(false).unwrap();
        assert!(!gate.is_open(), "a process that lost the lease writes nothing");
    }

    #[test]
    fn without_election_the_process_leads_once_caches_are_synced() {
        let (_lead, leading) = watch::channel(true);
        let readiness = Readiness::new(leading, None);
        let _gate = readiness.gate(&["applications"]);
        assert_eq!(readiness.report().0, 503);
        readiness.synced("applications");
        assert_eq!(readiness.report(), (200, "ok: leading".into()));
    }

    #[tokio::test]
    async fn all_synced_waits_for_every_registered_cache() {
        let (_lead, leading) = watch::channel(false);
        let readiness = Readiness::new(leading, None);
        readiness.expect("rollouts");
        readiness.expect("replicasets");
        let waiting = tokio::spawn({
            let readiness = readiness.clone();
            async move { readiness.all_synced().await }
        });
        readiness.synced("rollouts");
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one cache is still listing");
        readiness.synced("replicasets");
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("resolves once both are synced")
            .unwrap();
    }
}
