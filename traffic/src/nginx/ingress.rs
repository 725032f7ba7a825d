//! The canary Ingress as the stable Ingress and the Rollout's spec make it: a pure function of both.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::INGRESS_CLASS_ANNOTATION;
use crate::router::RouterError;

/// Kubernetes object names are at most this long (DNS subdomain).
const MAX_NAME: usize = 253;

/// What the canary Ingress's name ends with.
const CANARY_SUFFIX: &str = "-canary";

/// The Rollout a canary Ingress belongs to (its ownerReference).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    /// The Rollout's name.
    pub name: String,
    /// The Rollout's uid.
    pub uid: String,
}

/// What the Rollout's spec says about its canary Ingresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CanaryIngressSpec {
    /// The Rollout that owns them.
    pub owner: Owner,
    /// canaryService: the backend the canary Ingress sends to.
    pub canary_service: String,
    /// stableService: the backend of the stable Ingress that is replaced.
    pub stable_service: String,
    /// trafficRouting.nginx.annotationPrefix (or the default).
    pub annotation_prefix: String,
    /// trafficRouting.nginx.additionalIngressAnnotations, keys without the prefix put under it.
    pub additional_ingress_annotations: BTreeMap<String, String>,
    /// trafficRouting.nginx.canaryIngressAnnotations, keys as written.
    pub canary_ingress_annotations: BTreeMap<String, String>,
    /// trafficRouting.maxTrafficWeight: written as `canary-weight-total` when set.
    pub max_traffic_weight: Option<i32>,
}

impl CanaryIngressSpec {
    /// `<prefix>/<name>`.
    pub fn annotation(&self, name: &str) -> String {
        format!("{}/{name}", self.annotation_prefix)
    }

    /// The annotations the canary Ingress carries for `weight`.
    fn annotations(&self, stable: &Value, weight: i32) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        // The controller picks Ingresses by class; the canary must be picked by the same one.
        if let Some(class) = stable
            .pointer(&format!(
                "/metadata/annotations/{}",
                INGRESS_CLASS_ANNOTATION.replace('/', "~1")
            ))
            .and_then(Value::as_str)
        {
            out.insert(INGRESS_CLASS_ANNOTATION.to_string(), class.to_string());
        }
        for (k, v) in &self.additional_ingress_annotations {
            let key = if k.starts_with(&self.annotation_prefix) {
                k.clone()
            } else {
                self.annotation(k)
            };
            out.insert(key, v.clone());
        }
        out.extend(self.canary_ingress_annotations.clone());
        // Last, so that no extra annotation can change the weight the rollout sets and verifies.
        out.insert(self.annotation("canary"), "true".into());
        out.insert(self.annotation("canary-weight"), weight.to_string());
        if let Some(total) = self.max_traffic_weight {
            out.insert(self.annotation("canary-weight-total"), total.to_string());
        }
        out
    }

    /// The ownerReference a canary Ingress carries: the Rollout, as its controller.
    fn owner_reference(&self) -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "name": self.owner.name,
            "uid": self.owner.uid,
            "controller": true,
            "blockOwnerDeletion": true,
        })
    }

    /// The stable Ingress's rules that send to the stable Service, with those backends sent to the canary
    /// Service instead (other paths of such a rule stay as they are, as upstream copies them).
    fn canary_rules(&self, stable: &Value) -> Vec<Value> {
        let mut rules = Vec::new();
        for rule in stable
            .pointer("/spec/rules")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut rule = rule.clone();
            let mut uses_stable = false;
            let paths = rule.pointer_mut("/http/paths").and_then(Value::as_array_mut);
            for path in paths.into_iter().flatten() {
                if let Some(name) = path.pointer_mut("/backend/service/name")
                    && name.as_str() == Some(self.stable_service.as_str())
                {
                    *name = Value::String(self.canary_service.clone());
                    uses_stable = true;
                }
            }
            if uses_stable {
                rules.push(rule);
            }
        }
        rules
    }

    /// Whether the object's controller is this spec's Rollout.
    pub fn controls(&self, obj: &Value) -> bool {
        obj.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|r| r["controller"] == true && r["uid"].as_str() == Some(self.owner.uid.as_str()))
    }

    /// The canary weight an Ingress shows: `canary-weight`, or 0 when it is not marked `canary: "true"` (the
    /// controller then sends it nothing) or has no weight.
    pub fn weight(&self, obj: &Value) -> Result<i32, RouterError> {
        let annotations = &obj["metadata"]["annotations"];
        if annotations[self.annotation("canary")].as_str() != Some("true") {
            return Ok(0);
        }
        let key = self.annotation("canary-weight");
        match annotations[&key].as_str() {
            None => Ok(0),
            Some(w) => w.trim().parse().map_err(|_| {
                let name = obj["metadata"]["name"].as_str().unwrap_or("<unnamed>");
                RouterError::Malformed(format!(
                    "Ingress \"{name}\": annotation {key} is \"{w}\", not a whole number"
                ))
            }),
        }
    }
}

/// The canary Ingress name of a Rollout and stable Ingress: `<rollout>-<stable>-canary`, the prefix cut so
/// that the whole is a valid object name.
pub fn canary_ingress_name(rollout: &str, stable_ingress: &str) -> String {
    let mut prefix = format!("{rollout}-{stable_ingress}");
    let room = MAX_NAME - CANARY_SUFFIX.len();
    if prefix.len() > room {
        let mut cut = room;
        while !prefix.is_char_boundary(cut) {
            cut -= 1;
        }
        prefix.truncate(cut);
    }
    prefix + CANARY_SUFFIX
}

/// The canary Ingress for stable Ingress `stable` at `weight`: the stable Ingress's rules that use the stable
/// Service (those backends turned to the canary Service), its TLS and class, the canary annotations and an
/// ownerReference to the Rollout. A stable Ingress with no backend naming the stable Service is an error.
pub fn canary_ingress(spec: &CanaryIngressSpec, stable: &Value, weight: i32) -> Result<Value, RouterError> {
    let stable_name = stable["metadata"]["name"].as_str().unwrap_or_default();
    let rules = spec.canary_rules(stable);
    if rules.is_empty() {
        return Err(RouterError::Malformed(format!(
            "ingress `{stable_name}` has no rules using service {} backend",
            spec.stable_service
        )));
    }
    let mut body = Map::new();
    if let Some(class) = stable.pointer("/spec/ingressClassName").filter(|c| !c.is_null()) {
        body.insert("ingressClassName".into(), class.clone());
    }
    body.insert("rules".into(), Value::Array(rules));
    if let Some(tls) = stable.pointer("/spec/tls").filter(|t| !t.is_null()) {
        body.insert("tls".into(), tls.clone());
    }
    let mut metadata = json!({
        "name": canary_ingress_name(&spec.owner.name, stable_name),
        "annotations": spec.annotations(stable, weight),
        "ownerReferences": [spec.owner_reference()],
    });
    if let Some(ns) = stable["metadata"]["namespace"].as_str() {
        metadata["namespace"] = Value::String(ns.to_string());
    }
    Ok(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": body,
    }))
}
