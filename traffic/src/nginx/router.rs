//! NGINX behind the [`Router`] trait: one canary Ingress per stable Ingress of a Rollout.

use serde_json::Value;

use super::{CanaryIngressSpec, canary_ingress, canary_ingress_name, sync_patch};
use crate::router::{Desired, Objects, Router, RouterError, Seen, Target, Write, required};

/// The NGINX router of one Rollout.
#[derive(Clone, Debug, PartialEq)]
pub struct NginxRouter {
    /// The Rollout's namespace (every Ingress is in it).
    pub namespace: String,
    /// stableIngress, or stableIngresses in order.
    pub stable_ingresses: Vec<String>,
    /// How the canary Ingresses are made.
    pub spec: CanaryIngressSpec,
}

/// The networking.k8s.io/v1 Ingress target `name` in `namespace`.
pub fn ingress_target(namespace: &str, name: &str) -> Target {
    Target::new(
        ("networking.k8s.io", "v1"),
        ("Ingress", "ingresses"),
        namespace,
        name,
    )
}

/// A stable Ingress as read, and its canary Ingress's target and state.
struct Pair<'a> {
    stable: &'a Value,
    canary_target: Target,
    canary: Option<&'a Value>,
}

impl NginxRouter {
    /// (stable, canary) targets of each stable Ingress.
    fn pairs(&self) -> impl Iterator<Item = (Target, Target)> + '_ {
        self.stable_ingresses.iter().map(|stable| {
            (
                ingress_target(&self.namespace, stable),
                ingress_target(
                    &self.namespace,
                    &canary_ingress_name(&self.spec.owner.name, stable),
                ),
            )
        })
    }

    /// Each stable Ingress (it must exist) with its canary Ingress, which must be this Rollout's if it is
    /// there.
    fn read<'a>(&self, objects: &'a Objects) -> Result<Vec<Pair<'a>>, RouterError> {
        let mut out = Vec::new();
        for (stable_target, canary_target) in self.pairs() {
            let stable = required(objects, &stable_target)?;
            let canary = objects.get(&canary_target).and_then(Option::as_ref);
            if let Some(c) = canary
                && !self.spec.controls(c)
            {
                return Err(RouterError::Malformed(format!(
                    "canary ingress `{}` controlled by different object",
                    canary_target.name
                )));
            }
            out.push(Pair {
                stable,
                canary_target,
                canary,
            });
        }
        Ok(out)
    }

    /// The weight each canary Ingress shows (a missing one sends nothing: 0), and whether one differs from
    /// what its stable Ingress and the spec make at that weight. Each stable Ingress must make a canary one.
    fn weights(&self, objects: &Objects) -> Result<(Vec<i32>, bool), RouterError> {
        let mut weights = Vec::new();
        let mut out_of_step = false;
        for pair in self.read(objects)? {
            let weight = match pair.canary {
                Some(c) => self.spec.weight(c)?,
                None => 0,
            };
            let wanted = canary_ingress(&self.spec, pair.stable, weight)?;
            if let Some(c) = pair.canary {
                out_of_step |= !sync_patch(c, &wanted, &self.spec.annotation_prefix).0.is_empty();
            }
            weights.push(weight);
        }
        Ok((weights, out_of_step))
    }
}

impl Router for NginxRouter {
    fn name(&self) -> &'static str {
        "nginx"
    }

    fn targets(&self) -> Vec<Target> {
        self.pairs().flat_map(|(s, c)| [s, c]).collect()
    }

    fn observe(&self, objects: &Objects) -> Result<Seen, RouterError> {
        let (weights, out_of_step) = self.weights(objects)?;
        Ok(Seen {
            weights,
            managed_routes: Vec::new(),
            out_of_step,
        })
    }

    fn apply(&self, objects: &Objects, desired: &Desired) -> Result<Vec<Write>, RouterError> {
        if !desired.additional.is_empty() {
            return Err(RouterError::Unsupported {
                router: self.name(),
                what: "weights for experiment templates".into(),
            });
        }
        let mut writes = Vec::new();
        for pair in self.read(objects)? {
            let wanted = canary_ingress(&self.spec, pair.stable, desired.canary)?;
            match pair.canary {
                None => writes.push(Write::Create {
                    target: pair.canary_target,
                    object: wanted,
                }),
                Some(current) => {
                    let patch = sync_patch(current, &wanted, &self.spec.annotation_prefix);
                    if !patch.0.is_empty() {
                        writes.push(Write::Patch {
                            target: pair.canary_target,
                            patch,
                        });
                    }
                }
            }
        }
        Ok(writes)
    }

    fn verify(&self, objects: &Objects, desired: &Desired) -> Result<bool, RouterError> {
        Ok(self.weights(objects)?.0.iter().all(|w| *w == desired.canary))
    }

    fn reset(&self, objects: &Objects) -> Result<Vec<Write>, RouterError> {
        // Only canary Ingresses this Rollout controls are deleted; an Ingress of that name owned by something
        // else is not the rollout's to remove.
        Ok(self
            .pairs()
            .filter_map(|(_, canary)| {
                let found = objects.get(&canary).and_then(Option::as_ref)?;
                self.spec
                    .controls(found)
                    .then_some(Write::Delete { target: canary })
            })
            .collect())
    }
}
