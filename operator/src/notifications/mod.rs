//! Notifications as Argo Rollouts configures them (its notifications-engine's ConfigMap, Secret, triggers,
//! templates and subscription annotations): each new event the Rollout controller records fires the trigger
//! `on-<reason in kebab case>` for the Rollout's subscribers, through webhook and Slack services.
//!
//! The pure pieces: [`config`] (reading the ConfigMap and Secret), [`subscriptions`] (the annotations),
//! [`render`] (Go templates), [`payload`] (each service's request) and [`dispatch`] (event → requests). The I/O:
//! [`Notifier`] keeps the two objects in watch caches (that name only, no managedFields) and queues what an
//! event sends; [`deliver`] sends it in the background with retries.

pub mod config;
pub mod deliver;
pub mod dispatch;
pub mod payload;
pub mod render;
pub mod subscriptions;
#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, sync::Arc};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, reflector, reflector::Store, watcher},
};
use sluice_crds::rollout::Rollout;
use tracing::{debug, warn};

use config::{CONFIG_MAP, Config, SECRET};

/// The event reason of a Warning about a notification that could not be sent as configured.
pub const FAILED_REASON: &str = "NotificationFailed";

/// Turns a Rollout's events into queued notifications.
pub struct Notifier {
    namespace: String,
    config_maps: Store<ConfigMap>,
    secrets: Store<Secret>,
    queue: deliver::Queue,
    parsed: std::sync::Mutex<Option<Parsed>>,
}

/// The configuration last parsed, and the resourceVersions of the ConfigMap and the Secret it was parsed from.
type Parsed = ((String, String), Arc<Config>);

impl Notifier {
    /// Watches the ConfigMap and the Secret in `namespace` and starts the delivery task.
    pub fn start(client: &Client, namespace: &str, metrics: Arc<crate::metrics::Metrics>) -> Arc<Notifier> {
        let config_maps = watched::<ConfigMap>(client, namespace, CONFIG_MAP);
        let secrets = watched::<Secret>(client, namespace, SECRET);
        let queue = deliver::Queue::start(Arc::new(deliver::HttpSender), metrics, Default::default());
        Arc::new(Notifier {
            namespace: namespace.to_string(),
            config_maps,
            secrets,
            queue,
            parsed: Default::default(),
        })
    }

    /// Queues the notifications of a new event `reason` on `ro`; returns the configuration problems met, for
    /// the caller to tell on the Rollout. Nothing here waits on the network.
    pub fn notify(&self, ro: &Rollout, reason: &str) -> Vec<String> {
        let config = self.config();
        if config.subscriptions.is_empty() && !subscriptions::any(ro.annotations()) {
            return Vec::new();
        }
        let rollout = match serde_json::to_value(ro) {
            Ok(v) => v,
            Err(e) => return vec![format!("the Rollout could not be read as JSON: {e}")],
        };
        let outcome = dispatch::plan(&config, &rollout, reason);
        for delivery in outcome.deliveries {
            debug!(rollout = %ro.name_any(), trigger = %delivery.trigger, service = %delivery.service, "notification queued");
            self.queue.enqueue(delivery);
        }
        outcome.problems
    }

    /// The configuration of the cached objects, parsed again only when one of them changed. Without the
    /// ConfigMap it is empty.
    fn config(&self) -> Arc<Config> {
        let key = |meta: Option<String>| meta.unwrap_or_default();
        let config_map = self.config_maps.find(|c| c.name_any() == CONFIG_MAP);
        let secret = self.secrets.find(|s| s.name_any() == SECRET);
        let versions = (
            key(config_map.as_ref().and_then(|c| c.resource_version())),
            key(secret.as_ref().and_then(|s| s.resource_version())),
        );
        if let Ok(parsed) = self.parsed.lock()
            && let Some((seen, config)) = parsed.as_ref()
            && *seen == versions
        {
            return config.clone();
        }
        let data = config_map.and_then(|c| c.data.clone()).unwrap_or_default();
        let secret_data: BTreeMap<String, String> = secret
            .and_then(|s| s.data.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect();
        let config = Arc::new(Config::parse(&data.into_iter().collect(), &secret_data));
        for (key, error) in &config.errors {
            warn!(configmap = %format!("{}/{CONFIG_MAP}", self.namespace), key = %key, error = %error, "notification configuration key ignored");
        }
        if let Ok(mut parsed) = self.parsed.lock() {
            *parsed = Some((versions, config.clone()));
        }
        config
    }
}

/// A cache of the one object `name` in `namespace`, kept by a watch of its own (a field selector on the name,
/// managed fields dropped).
fn watched<K>(client: &Client, namespace: &str, name: &str) -> Store<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let (store, writer) = reflector::store();
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let events = watcher(api, config)
        .default_backoff()
        .modify(|o| o.managed_fields_mut().clear())
        .reflect(writer);
    let what = format!("{namespace}/{name}");
    tokio::spawn(async move {
        events
            .for_each(|e| {
                if let Err(e) = e {
                    warn!(object = %what, error = %e, "watching the notifications configuration failed; retrying");
                }
                std::future::ready(())
            })
            .await;
    });
    store
}
