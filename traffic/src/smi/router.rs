//! SMI behind the [`Router`] trait: the one TrafficSplit of a Rollout.

use serde_json::{Value, json};

use super::split::{
    Backend, SmiVersion, backends_json, observed_backends, traffic_split_target, weight_patch,
};
use crate::router::{Desired, Objects, Router, RouterError, Seen, Target, Write};

/// The Rollout a TrafficSplit belongs to: what its controller owner reference names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    /// The Rollout's name.
    pub name: String,
    /// The Rollout's `metadata.uid` (what ownership is decided by, as Kubernetes' `IsControlledBy` does).
    pub uid: String,
}

/// The SMI router of one Rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmiRouter {
    /// API version the TrafficSplit is read and written in.
    pub version: SmiVersion,
    /// The Rollout's namespace (the TrafficSplit's).
    pub namespace: String,
    /// Name of the TrafficSplit (trafficRouting.smi.trafficSplitName, else the Rollout's name).
    pub traffic_split: String,
    /// The TrafficSplit's `spec.service` (trafficRouting.smi.rootService, else the stable Service).
    pub root_service: String,
    /// The canary Service.
    pub canary_service: String,
    /// The stable Service.
    pub stable_service: String,
    /// The Rollout.
    pub owner: Owner,
}

impl SmiRouter {
    fn target(&self) -> Target {
        traffic_split_target(self.version, &self.namespace, &self.traffic_split)
    }

    /// The TrafficSplit read for this Rollout, `None` when it does not exist; one controlled by anything else
    /// is an error (upstream's message), never taken over.
    fn owned<'a>(&self, objects: &'a Objects) -> Result<Option<&'a Value>, RouterError> {
        let Some(doc) = objects.get(&self.target()).and_then(Option::as_ref) else {
            return Ok(None);
        };
        let controlled = doc
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
            .and_then(|r| r.get("uid").and_then(Value::as_str))
            .is_some_and(|uid| !self.owner.uid.is_empty() && uid == self.owner.uid);
        if controlled {
            Ok(Some(doc))
        } else {
            Err(RouterError::Malformed(format!(
                "Rollout does not own TrafficSplit `{}`",
                self.traffic_split
            )))
        }
    }

    /// Canary, experiment Services, stable (upstream's order), the stable side getting what is left of 100.
    fn wanted(&self, desired: &Desired) -> Result<Vec<Backend>, RouterError> {
        let out_of_range = |what: &str, w: i32| {
            RouterError::Malformed(format!("{what} weight {w} is not between 0 and 100"))
        };
        if !(0..=100).contains(&desired.canary) {
            return Err(out_of_range("canary", desired.canary));
        }
        let mut backends = vec![(self.canary_service.clone(), desired.canary)];
        for extra in &desired.additional {
            if !(0..=100).contains(&extra.weight) {
                return Err(out_of_range(&format!("Service {}", extra.service), extra.weight));
            }
            backends.push((extra.service.clone(), extra.weight));
        }
        let stable = 100 - backends.iter().map(|(_, w)| w).sum::<i32>();
        if stable < 0 {
            return Err(RouterError::Malformed(format!(
                "the weights of the canary and experiment Services add up to {}, more than 100",
                100 - stable
            )));
        }
        backends.push((self.stable_service.clone(), stable));
        Ok(backends)
    }

    /// The whole TrafficSplit the Rollout creates, controlled by it.
    fn object(&self, wanted: &[Backend]) -> Value {
        json!({
            "apiVersion": format!("{}/{}", super::SMI_GROUP, self.version),
            "kind": super::TRAFFIC_SPLIT_KIND,
            "metadata": {
                "name": self.traffic_split,
                "namespace": self.namespace,
                "ownerReferences": [{
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Rollout",
                    "name": self.owner.name,
                    "uid": self.owner.uid,
                    "controller": true,
                    "blockOwnerDeletion": true,
                }],
            },
            "spec": {
                "service": self.root_service,
                "backends": backends_json(self.version, wanted),
            },
        })
    }
}

impl Router for SmiRouter {
    fn name(&self) -> &'static str {
        "smi"
    }

    fn targets(&self) -> Vec<Target> {
        vec![self.target()]
    }

    /// The canary's share of all backend weights, rounded up (what the canary pods must be able to take); a
    /// TrafficSplit not created yet sends nothing to the canary.
    fn observe(&self, objects: &Objects) -> Result<Seen, RouterError> {
        let Some(doc) = self.owned(objects)? else {
            return Ok(Seen {
                weights: vec![0],
                ..Seen::default()
            });
        };
        let backends = observed_backends(doc, &self.traffic_split)?;
        let total: f64 = backends.iter().map(|(_, w)| w).sum();
        let canary = backends
            .iter()
            .find(|(s, _)| *s == self.canary_service)
            .map_or(0.0, |(_, w)| *w);
        let share = if total > 0.0 {
            (canary * 100.0 / total).ceil().clamp(0.0, 100.0) as i32
        } else {
            0
        };
        Ok(Seen {
            weights: vec![share],
            ..Seen::default()
        })
    }

    fn apply(&self, objects: &Objects, desired: &Desired) -> Result<Vec<Write>, RouterError> {
        let wanted = self.wanted(desired)?;
        let target = self.target();
        let Some(doc) = self.owned(objects)? else {
            return Ok(vec![Write::Create {
                object: self.object(&wanted),
                target,
            }]);
        };
        let patch = weight_patch(
            doc,
            &self.traffic_split,
            self.version,
            &self.root_service,
            &wanted,
        )?;
        Ok(if patch.0.is_empty() {
            Vec::new()
        } else {
            vec![Write::Patch { target, patch }]
        })
    }

    /// Shown when the TrafficSplit exists, is this Rollout's and would need no write.
    fn verify(&self, objects: &Objects, desired: &Desired) -> Result<bool, RouterError> {
        Ok(self.apply(objects, desired)?.is_empty())
    }

    /// Deletes the TrafficSplit when this Rollout created it (nothing otherwise).
    fn reset(&self, objects: &Objects) -> Result<Vec<Write>, RouterError> {
        Ok(match self.owned(objects) {
            Ok(Some(_)) => vec![Write::Delete {
                target: self.target(),
            }],
            Ok(None) | Err(_) => Vec::new(),
        })
    }
}
