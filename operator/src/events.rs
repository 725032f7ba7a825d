//! Kubernetes events as upstream controllers write them (core/v1, one per distinct message, a repeat bumps
//! the count), so that `kubectl describe` and tools that read event reasons in order see what they expect.

use std::{collections::HashMap, sync::Mutex};

use k8s_openapi::{
    api::core::v1::{Event, EventSource, ObjectReference},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

/// Beyond this many remembered events the memory is cleared (a repeat then starts a new event). Repeats come
/// close together (a warning told again at each retry), and most events are never repeated (each AnalysisRun's
/// outcome names the run): a small memory keeps the counts right and costs at most about 0.6 MiB.
const MAX_REMEMBERED: usize = 2048;

/// (object uid, reason, message) → (event name, count).
type Seen = HashMap<(String, String, String), (String, i32)>;

/// Writes events for one controller.
pub struct EventWriter {
    client: Client,
    component: String,
    seen: Mutex<Seen>,
}

impl EventWriter {
    /// A writer whose events name `component` as their source.
    pub fn new(client: Client, component: &str) -> Self {
        Self {
            client,
            component: component.into(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Records an event about `object`; a failure is returned for logging and never stops a reconcile.
    pub async fn publish(
        &self,
        object: &ObjectReference,
        warning: bool,
        reason: &str,
        message: &str,
    ) -> kube::Result<()> {
        let api = self.api(object);
        let now = Timestamp::now();
        let key = (
            object.uid.clone().unwrap_or_default(),
            reason.to_string(),
            message.to_string(),
        );
        let previous = self.seen.lock().ok().and_then(|s| s.get(&key).cloned());
        if let Some((name, count)) = previous {
            let patch = json!({"count": count + 1, "lastTimestamp": Time(now)});
            if api
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .is_ok()
            {
                if let Ok(mut s) = self.seen.lock() {
                    s.insert(key, (name, count + 1));
                }
                return Ok(());
            }
        }
        let mut event = self.event(object, warning, reason, message, now);
        event.metadata.generate_name = Some(format!("{}.", object.name.clone().unwrap_or_default()));
        let created = api.create(&PostParams::default(), &event).await?;
        if let (Ok(mut s), Some(name)) = (self.seen.lock(), created.metadata.name) {
            if s.len() >= MAX_REMEMBERED {
                s.clear();
            }
            s.insert(key, (name, 1));
        }
        Ok(())
    }

    /// Records an event told by the plan made from `occurrence` (e.g. the object's resourceVersion) exactly once:
    /// its name is derived from what it tells, so a plan made again from the same version (after a crash
    /// between the event and the status write) tells nothing twice. Ok(true) when this call recorded it, Ok(false)
    /// when it was recorded before (what is done once per event, such as notifying, is done on true only).
    pub async fn publish_once(
        &self,
        object: &ObjectReference,
        occurrence: &str,
        warning: bool,
        reason: &str,
        message: &str,
    ) -> kube::Result<bool> {
        let api = self.api(object);
        let mut event = self.event(object, warning, reason, message, Timestamp::now());
        event.metadata.name = Some(once_name(object, occurrence, reason, message));
        match api.create(&PostParams::default(), &event).await {
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            r => r.map(|_| true),
        }
    }

    fn api(&self, object: &ObjectReference) -> Api<Event> {
        let ns = object.namespace.as_deref().unwrap_or("default");
        Api::namespaced(self.client.clone(), ns)
    }

    fn event(
        &self,
        object: &ObjectReference,
        warning: bool,
        reason: &str,
        message: &str,
        now: Timestamp,
    ) -> Event {
        Event {
            metadata: ObjectMeta {
                namespace: object.namespace.clone().or_else(|| Some("default".into())),
                ..Default::default()
            },
            involved_object: object.clone(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(std::env::var("HOSTNAME").unwrap_or_else(|_| self.component.clone())),
            action: Some(reason.into()),
            count: Some(1),
            ..Default::default()
        }
    }
}

/// `<object>.<16 hex digits>` from the object's uid, the occurrence, the reason and the message (FNV-1a).
fn once_name(object: &ObjectReference, occurrence: &str, reason: &str, message: &str) -> String {
    let uid = object.uid.clone().unwrap_or_default();
    let hash = [uid.as_str(), occurrence, reason, message]
        .iter()
        .flat_map(|p| p.bytes().chain([0]))
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
    let object_name: String = object
        .name
        .clone()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    format!("{object_name}.{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_names_differ_by_occurrence_and_content_only() {
        let o = ObjectReference {
            name: Some("web".into()),
            uid: Some("u1".into()),
            ..Default::default()
        };
        let a = once_name(
            &o,
            "42",
            "RolloutStepCompleted",
            "Rollout step 1/3 completed (setWeight: 20)",
        );
        assert_eq!(
            a,
            once_name(
                &o,
                "42",
                "RolloutStepCompleted",
                "Rollout step 1/3 completed (setWeight: 20)"
            )
        );
        assert!(a.starts_with("web."));
        assert_ne!(
            a,
            once_name(
                &o,
                "43",
                "RolloutStepCompleted",
                "Rollout step 1/3 completed (setWeight: 20)"
            )
        );
        assert_ne!(
            a,
            once_name(
                &o,
                "42",
                "RolloutStepCompleted",
                "Rollout step 2/3 completed (setWeight: 50)"
            )
        );
    }
}
