//! Deleting an Application: with Argo CD's resources finalizer (`resources-finalizer.argocd.argoproj.io`,
//! optionally `/foreground` or `/background`) its managed objects are deleted first, and the finalizer is
//! removed once none is left; without it Kubernetes removes the Application alone and every object stays.
//! An app of apps cascades: its child Applications are managed objects, deleted with their own finalizers.

use serde_json::Value;
use sluice_crds::application::Application;
use sluice_gitops::tracking;

use super::cluster::{Cluster, ClusterError, ObjectKey};

/// Argo CD's resources finalizer (background propagation).
pub const RESOURCES_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";

/// The resources finalizer the app carries and the propagation it asks for.
pub fn resources_finalizer(app: &Application) -> Option<(&str, &'static str)> {
    app.metadata.finalizers.iter().flatten().find_map(|f| {
        let propagation = match f.strip_prefix(RESOURCES_FINALIZER)? {
            "" | "/background" => "background",
            "/foreground" => "foreground",
            _ => return None,
        };
        Some((f.as_str(), propagation))
    })
}

/// What one deletion step does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Delete these objects (still there, managed by the app, not yet being deleted) and look again.
    Delete(Vec<ObjectKey>),
    /// Objects are still going away: look again.
    Wait(usize),
    /// Nothing managed is left: remove the finalizer.
    Done,
}

/// The step, from the app's inventory objects as they are live (`None`: gone). Objects that another app
/// manages or that have an owner (a ReplicaSet of a Deployment) are not this app's to delete.
pub fn plan(lives: &[(ObjectKey, Option<Value>)], instance: &str) -> Step {
    let managed: Vec<&(ObjectKey, Option<Value>)> = lives
        .iter()
        .filter(|(_, live)| {
            live.as_ref().is_some_and(|l| {
                tracking::is_managed_by(l, instance)
                    && l.pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .is_none_or(|o| o.is_empty())
            })
        })
        .collect();
    if managed.is_empty() {
        return Step::Done;
    }
    let deleting = |live: &Option<Value>| {
        live.as_ref()
            .and_then(|l| l.pointer("/metadata/deletionTimestamp"))
            .is_some()
    };
    let to_delete: Vec<ObjectKey> = managed
        .iter()
        .filter(|(_, live)| !deleting(live))
        .map(|(key, _)| key.clone())
        .collect();
    if to_delete.is_empty() {
        Step::Wait(managed.len())
    } else {
        Step::Delete(to_delete)
    }
}

/// The Application itself as an object key (for its finalizer).
fn app_key(app: &Application) -> ObjectKey {
    ObjectKey {
        group: sluice_crds::GROUP.into(),
        version: "v1alpha1".into(),
        kind: "Application".into(),
        namespace: app.metadata.namespace.clone().unwrap_or_default(),
        name: app.metadata.name.clone().unwrap_or_default(),
    }
}

/// Removes the resources finalizer without deleting anything: the app's cluster is unknown.
pub async fn release(home: &impl Cluster, app: &Application) -> Result<(), ClusterError> {
    if let Some((finalizer, _)) = resources_finalizer(app) {
        home.remove_finalizer(&app_key(app), finalizer).await?;
    }
    Ok(())
}

/// One step of deleting an app that carries the resources finalizer: its objects in `cluster`, then its
/// finalizer in `home` (where the Application lives); true once the finalizer is removed.
pub async fn step(
    cluster: &impl Cluster,
    home: &impl Cluster,
    app: &Application,
    inventory: &[ObjectKey],
    instance: &str,
) -> Result<bool, ClusterError> {
    let Some((finalizer, propagation)) = resources_finalizer(app) else {
        return Ok(true);
    };
    let mut lives = Vec::with_capacity(inventory.len());
    for key in inventory {
        lives.push((key.clone(), cluster.get(key).await?));
    }
    match plan(&lives, instance) {
        Step::Delete(keys) => {
            for key in &keys {
                cluster.delete(key, propagation).await?;
            }
            tracing::info!(application = %app_key(app), deleted = keys.len(), "deleting the app's resources");
            Ok(false)
        }
        Step::Wait(left) => {
            tracing::debug!(application = %app_key(app), left, "waiting for the app's resources to go");
            Ok(false)
        }
        Step::Done => {
            home.remove_finalizer(&app_key(app), finalizer).await?;
            tracing::info!(application = %app_key(app), "resources deleted; finalizer removed");
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(kind: &str, name: &str) -> ObjectKey {
        ObjectKey {
            group: String::new(),
            version: "v1".into(),
            kind: kind.into(),
            namespace: "prod".into(),
            name: name.into(),
        }
    }

    fn live(kind: &str, name: &str, instance: &str, extra: Value) -> Option<Value> {
        let mut obj =
            json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "prod"}});
        tracking::set_tracking(&mut obj, instance, "prod", "");
        if let (Some(meta), Some(extra)) = (obj["metadata"].as_object_mut(), extra.as_object()) {
            meta.extend(extra.clone());
        }
        Some(obj)
    }

    #[test]
    fn finalizer_variants_and_their_propagation() {
        let app = |finalizers: Vec<&str>| -> Application {
            serde_json::from_value(json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": {"name": "a", "finalizers": finalizers},
                "spec": {"destination": {}, "project": "default"}
            }))
            .unwrap()
        };
        assert_eq!(resources_finalizer(&app(vec![])), None);
        assert_eq!(resources_finalizer(&app(vec!["other"])), None);
        assert_eq!(
            resources_finalizer(&app(vec![RESOURCES_FINALIZER])).map(|f| f.1),
            Some("background")
        );
        assert_eq!(
            resources_finalizer(&app(vec!["resources-finalizer.argocd.argoproj.io/foreground"])).map(|f| f.1),
            Some("foreground")
        );
        assert_eq!(
            resources_finalizer(&app(vec!["resources-finalizer.argocd.argoproj.io/x"])),
            None
        );
    }

    #[test]
    fn managed_objects_are_deleted_then_waited_for_then_the_finalizer_goes() {
        let mine = live("ConfigMap", "a", "shop", json!({}));
        let going = live(
            "ConfigMap",
            "b",
            "shop",
            json!({"deletionTimestamp": "2026-12-03T00:00:00Z"}),
        );
        let others = live("ConfigMap", "c", "cart", json!({}));
        let owned = live(
            "ReplicaSet",
            "d",
            "shop",
            json!({"ownerReferences": [{"kind": "Deployment", "name": "web"}]}),
        );
        let lives = vec![
            (key("ConfigMap", "a"), mine.clone()),
            (key("ConfigMap", "b"), going.clone()),
            (key("ConfigMap", "c"), others.clone()),
            (key("ReplicaSet", "d"), owned.clone()),
            (key("ConfigMap", "e"), None),
        ];
        assert_eq!(plan(&lives, "shop"), Step::Delete(vec![key("ConfigMap", "a")]));
        assert_eq!(plan(&[(key("ConfigMap", "b"), going)], "shop"), Step::Wait(1));
        assert_eq!(
            plan(
                &[(key("ConfigMap", "c"), others), (key("ReplicaSet", "d"), owned)],
                "shop"
            ),
            Step::Done
        );
        assert_eq!(plan(&[], "shop"), Step::Done);
    }
}
