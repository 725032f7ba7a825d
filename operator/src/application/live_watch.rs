//! Drift is noticed by watch, not by polling: for every kind an Application manages, one metadata-only
//! watch (no cache kept: each event is read for its tracking annotation and dropped) brings the app that
//! the object's `argocd.argoproj.io/tracking-id` names back to its reconcile, so a `kubectl edit` of a
//! managed object is compared (and self-healed) at once.

use std::{collections::HashSet, sync::Mutex};

use futures::StreamExt;
use kube::{
    Api, Client,
    api::{DynamicObject, GroupVersionKind, PartialObjectMeta},
    discovery,
    runtime::{WatchStreamExt, reflector::ObjectRef, watcher},
};
use serde_json::Value;
use sluice_crds::application::Application;
use sluice_gitops::tracking::{ANNOTATION_TRACKING_ID, TrackingId};
use tokio::sync::mpsc::UnboundedSender;

use super::cluster::ObjectKey;

/// The kinds watched so far, and where their events go.
pub struct Kinds {
    client: Client,
    trigger: UnboundedSender<ObjectRef<Application>>,
    control_plane_namespace: String,
    watched: Mutex<HashSet<(String, String)>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl Drop for Kinds {
    /// The watches end with their cluster's destination.
    fn drop(&mut self) {
        for task in self.tasks.get_mut().map(std::mem::take).unwrap_or_default() {
            task.abort();
        }
    }
}

/// The Application a tracking id's app instance names: `name` lives in the control-plane namespace,
/// `namespace_name` in its own namespace.
pub fn app_of(instance: &str, control_plane_namespace: &str) -> ObjectRef<Application> {
    match instance.split_once('_') {
        Some((ns, name)) => ObjectRef::new(name).within(ns),
        None => ObjectRef::new(instance).within(control_plane_namespace),
    }
}

impl Kinds {
    /// No kind watched yet.
    pub fn new(
        client: Client,
        trigger: UnboundedSender<ObjectRef<Application>>,
        control_plane_namespace: String,
    ) -> Self {
        Kinds {
            client,
            trigger,
            control_plane_namespace,
            watched: Mutex::new(HashSet::new()),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Starts a watch for each kind of `targets` and `inventory` not watched yet (kinds the server does not
    /// serve yet are tried again at the next reconcile).
    pub async fn watch(&self, targets: &[Value], inventory: &[ObjectKey]) {
        let mut kinds: Vec<(String, String)> = targets
            .iter()
            .map(|t| {
                let key = ObjectKey::of(t);
                (key.api_version(), key.kind)
            })
            .chain(inventory.iter().map(|k| (k.api_version(), k.kind.clone())))
            .collect();
        kinds.sort();
        kinds.dedup();
        for (api_version, kind) in kinds {
            let new = self
                .watched
                .lock()
                .map(|w| !w.contains(&(api_version.clone(), kind.clone())))
                .unwrap_or(false);
            if new
                && self.start(&api_version, &kind).await
                && let Ok(mut w) = self.watched.lock()
            {
                w.insert((api_version, kind));
            }
        }
    }

    async fn start(&self, api_version: &str, kind: &str) -> bool {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let Ok((ar, _)) = discovery::pinned_kind(&self.client, &gvk).await else {
            return false;
        };
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(self.client.clone(), &ar);
        let trigger = self.trigger.clone();
        let cp = self.control_plane_namespace.clone();
        let kind = kind.to_string();
        let task = tokio::spawn(async move {
            let events = watcher(api, watcher::Config::default()).default_backoff();
            futures::pin_mut!(events);
            while let Some(event) = events.next().await {
                let objects = match event {
                    Ok(
                        watcher::Event::Apply(o) | watcher::Event::Delete(o) | watcher::Event::InitApply(o),
                    ) => vec![o],
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!(kind, error = %e, "watch of managed objects failed; retrying");
                        continue;
                    }
                };
                for o in objects {
                    let id = o
                        .metadata
                        .annotations
                        .as_ref()
                        .and_then(|a| a.get(ANNOTATION_TRACKING_ID));
                    if let Some(Ok(id)) = id.map(|v| v.parse::<TrackingId>())
                        && trigger.send(app_of(&id.app, &cp)).is_err()
                    {
                        return;
                    }
                }
            }
        });
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(task.abort_handle());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_name_their_apps() {
        let a = app_of("guestbook", "argocd");
        assert_eq!(a.name, "guestbook");
        assert_eq!(a.namespace.as_deref(), Some("argocd"));
        let b = app_of("team-a_guestbook", "argocd");
        assert_eq!(b.name, "guestbook");
        assert_eq!(b.namespace.as_deref(), Some("team-a"));
    }
}
