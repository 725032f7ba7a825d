//! Watched objects kept in the caches as their compact JSON. A decoded Rollout takes about 14 KiB of memory
//! and a ReplicaSet about 8 KiB, mostly the inline room of fields that are not set; their JSON takes 2 KiB and
//! 1.2 KiB. A cache of `Packed` objects keeps the JSON and the few metadata fields its lookups read (name,
//! namespace, uid, resource version, generation, labels, owners), and a reconcile decodes the object it works
//! on. The managed fields and the last-applied copy are dropped before packing.

use std::{borrow::Cow, marker::PhantomData};

use k8s_openapi::{api::apps::v1::ReplicaSet, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::Resource;
use serde::{Deserialize, Deserializer, Serialize, de::DeserializeOwned};
use sluice_crds::rollout::Rollout;

/// A kind kept packed.
pub trait Pack: Resource + Serialize + DeserializeOwned {
    /// The names a lookup may match the object by without decoding it: a superset of the names of what it
    /// refers to. None by default.
    fn names(&self) -> Vec<Box<str>> {
        Vec::new()
    }
}

impl Pack for ReplicaSet {}

impl Pack for Rollout {
    /// Its own name (a router may default to it) and every string of its strategy: the Services and the
    /// traffic routers' objects it steers are among them.
    fn names(&self) -> Vec<Box<str>> {
        let mut names = vec![self.metadata.name.clone().unwrap_or_default().into_boxed_str()];
        let strategy = serde_json::to_value(&self.spec.strategy).unwrap_or_default();
        strings(&strategy, &mut names);
        names.sort();
        names.dedup();
        names
    }
}

fn strings(value: &serde_json::Value, out: &mut Vec<Box<str>>) {
    match value {
        serde_json::Value::String(s) => out.push(s.as_str().into()),
        serde_json::Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        serde_json::Value::Object(fields) => fields.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// An object as a cache keeps it.
#[derive(Debug)]
pub struct Packed<K> {
    metadata: ObjectMeta,
    names: Box<[Box<str>]>,
    json: Box<[u8]>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Packed<K> {
    fn clone(&self) -> Self {
        Self {
            metadata: self.metadata.clone(),
            names: self.names.clone(),
            json: self.json.clone(),
            kind: PhantomData,
        }
    }
}

impl<K: Pack> Packed<K> {
    /// `object` without its managed fields and last-applied copy, packed.
    pub fn pack(mut object: K) -> Self {
        crate::ready::lean(&mut object);
        let json = serde_json::to_vec(&object).unwrap_or_default().into_boxed_slice();
        let names = object.names().into_boxed_slice();
        let meta = object.meta_mut();
        let metadata = ObjectMeta {
            name: meta.name.take(),
            namespace: meta.namespace.take(),
            uid: meta.uid.take(),
            resource_version: meta.resource_version.take(),
            generation: meta.generation,
            labels: meta.labels.take(),
            owner_references: meta.owner_references.take(),
            deletion_timestamp: meta.deletion_timestamp.take(),
            ..ObjectMeta::default()
        };
        Self {
            metadata,
            names,
            json,
            kind: PhantomData,
        }
    }

    /// The whole object. It was encoded from the same type, so it decodes; an error names why it did not.
    pub fn unpack(&self) -> Result<K, serde_json::Error> {
        serde_json::from_slice(&self.json)
    }

    /// Whether the object may refer to `name` (or to `name.<namespace>`), by [`Pack::names`].
    pub fn may_name(&self, name: &str) -> bool {
        self.names.iter().any(|n| {
            n.strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        })
    }
}

/// A packed object is decoded as its kind and packed: the watches list and watch `Packed` objects directly.
impl<'de, K: Pack> Deserialize<'de> for Packed<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        K::deserialize(deserializer).map(Self::pack)
    }
}

impl<K: Resource> Resource for Packed<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;

    fn replica_set() -> ReplicaSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "web-577b6645f6", "namespace": "shop", "uid": "u-rs", "resourceVersion": "442",
                "generation": 4,
                "labels": {"app": "web", "rollouts-pod-template-hash": "577b6645f6"},
                "annotations": {
                    "rollout.argoproj.io/revision": "2",
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"big\": true}"
                },
                "managedFields": [{"manager": "sluice", "operation": "Update"}],
                "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web",
                    "uid": "u-ro", "controller": true, "blockOwnerDeletion": true}]
            },
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web", "rollouts-pod-template-hash": "577b6645f6"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "rollouts-pod-template-hash": "577b6645f6"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx:2",
                        "terminationMessagePath": "/dev/termination-log", "resources": {}}],
                        "securityContext": {}, "terminationGracePeriodSeconds": 30}
                }
            },
            "status": {"replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "observedGeneration": 4}
        }))
        .unwrap()
    }

    fn rollout() -> Rollout {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u-ro", "generation": 2},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": "nginx:2"}]}},
                "strategy": {"canary": {
                    "stableService": "web-stable", "canaryService": "web-canary",
                    "trafficRouting": {"istio": {"virtualService": {"name": "web-vs.mesh", "routes": ["primary"]}}},
                    "steps": [{"setWeight": 34}, {"pause": {"duration": 0}}, {"setWeight": 67}]
                }}
            },
            "status": {"phase": "Healthy", "currentPodHash": "577b6645f6", "stableRS": "577b6645f6"}
        }))
        .unwrap()
    }

    #[test]
    fn a_packed_object_decodes_to_the_object_lean() {
        let mut lean = replica_set();
        crate::ready::lean(&mut lean);
        let packed = Packed::pack(replica_set());
        assert_eq!(
            packed.unpack().unwrap(),
            lean,
            "everything but the managed fields and last-applied"
        );
        assert!(lean.annotations().contains_key("rollout.argoproj.io/revision"));
        let ro = rollout();
        assert_eq!(Packed::pack(ro.clone()).unpack().unwrap(), ro);
    }

    #[test]
    fn the_lookups_read_the_kept_metadata() {
        let packed = Packed::pack(replica_set());
        assert_eq!(packed.name_any(), "web-577b6645f6");
        assert_eq!(packed.namespace().as_deref(), Some("shop"));
        assert_eq!(packed.uid().as_deref(), Some("u-rs"));
        assert_eq!(packed.resource_version().as_deref(), Some("442"));
        assert_eq!(packed.meta().generation, Some(4));
        assert_eq!(packed.labels()["rollouts-pod-template-hash"], "577b6645f6");
        assert_eq!(packed.owner_references()[0].uid, "u-ro");
        assert!(
            packed.annotations().is_empty(),
            "annotations are read from the decoded object"
        );
        let key = kube::runtime::reflector::ObjectRef::from_obj(&packed);
        assert_eq!(
            key.erase(),
            kube::runtime::reflector::ObjectRef::from_obj(&replica_set()).erase()
        );
    }

    #[test]
    fn a_watch_decodes_straight_into_a_packed_object() {
        let json = serde_json::to_string(&replica_set()).unwrap();
        let packed: Packed<ReplicaSet> = serde_json::from_str(&json).unwrap();
        assert_eq!(packed.unpack().unwrap().spec, replica_set().spec);
        assert_eq!(
            Packed::<ReplicaSet>::plural(&()),
            "replicasets",
            "the same API path as the kind"
        );
        assert_eq!(Packed::<Rollout>::group(&()), "argoproj.io");
    }

    #[test]
    fn a_rollout_may_name_what_its_strategy_names() {
        let packed = Packed::pack(rollout());
        for name in ["web", "web-stable", "web-canary", "web-vs", "primary"] {
            assert!(packed.may_name(name), "{name}");
        }
        for name in ["web-v", "stable", "mesh", "other"] {
            assert!(!packed.may_name(name), "{name}");
        }
    }

    #[test]
    fn a_packed_object_is_a_fraction_of_the_decoded_one() {
        let packed = Packed::pack(replica_set());
        let inline = std::mem::size_of::<ReplicaSet>();
        assert!(
            packed.json.len() + std::mem::size_of::<Packed<ReplicaSet>>() < inline,
            "{} + {} vs {inline}",
            packed.json.len(),
            std::mem::size_of::<Packed<ReplicaSet>>()
        );
    }
}
