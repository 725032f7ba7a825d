//! The contract every traffic router keeps: `observe / apply / verify / reset`, each a pure function of the
//! routing objects the reconciler read.
//!
//! A router names the objects it needs ([`Router::targets`]); the reconciler reads them (a missing one reads as
//! `None`) and hands them back as [`Objects`]. [`Router::apply`] returns the writes that put a weight in place
//! (JSON patches that touch only what the rollout owns, or whole objects the rollout itself creates, such as
//! NGINX's canary Ingress); the reconciler sends them, reads the objects again and asks [`Router::verify`]
//! whether the router now shows that weight. An empty list of writes means the objects are already as wanted.
//!
//! Adding a router is a new module that implements this trait; nothing else in the reconciler changes.

use std::collections::BTreeMap;

use serde_json::Value;

pub use crate::istio::{HeaderMatch, MirrorMatch, StringMatch};

/// An object a router reads or writes, named by its API and place.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// API group (`""` for the core group).
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural resource name.
    pub plural: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl Target {
    /// A target of `group/version` `kind` (`plural`) named `name` in `namespace`.
    pub fn new(
        (group, version): (&str, &str),
        (kind, plural): (&str, &str),
        namespace: &str,
        name: &str,
    ) -> Self {
        Self {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// `Kind "name" in namespace "ns"`, as messages name it.
    pub fn describe(&self) -> String {
        format!(
            "{} \"{}\" in namespace \"{}\"",
            self.kind, self.name, self.namespace
        )
    }
}

/// The objects the reconciler read for a router: each target and what was found (`None`: it does not exist).
pub type Objects = BTreeMap<Target, Option<Value>>;

/// The object read for `target`, or a [`RouterError::NotFound`].
pub fn required<'a>(objects: &'a Objects, target: &Target) -> Result<&'a Value, RouterError> {
    objects
        .get(target)
        .and_then(Option::as_ref)
        .ok_or_else(|| RouterError::NotFound(target.describe()))
}

/// One write to the cluster.
#[derive(Clone, Debug, PartialEq)]
pub enum Write {
    /// A JSON patch of an existing object.
    Patch {
        /// The object.
        target: Target,
        /// The patch (its `test` ops make a concurrent change fail the write instead of being overwritten).
        patch: json_patch::Patch,
    },
    /// Create an object the rollout owns (the whole object).
    Create {
        /// Where.
        target: Target,
        /// The object.
        object: Value,
    },
    /// Delete an object the rollout created.
    Delete {
        /// The object.
        target: Target,
    },
}

/// A weight for the ReplicaSet of an experiment template, routed through its own Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Additional {
    /// The template's Service.
    pub service: String,
    /// The template's pod-template hash.
    pub pod_template_hash: String,
    /// Percentage of traffic.
    pub weight: i32,
}

/// The weights to put in place: the canary's, and any experiment templates'. The stable side gets the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// Percentage to the canary.
    pub canary: i32,
    /// Experiment templates with a weight of their own.
    pub additional: Vec<Additional>,
}

impl Desired {
    /// Only a canary weight.
    pub fn canary(weight: i32) -> Self {
        Self {
            canary: weight,
            additional: Vec::new(),
        }
    }
}

/// What a router found on its objects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The canary weight of every place the router sets one (routes, Ingresses, splits), in order.
    pub weights: Vec<i32>,
    /// The managed routes (trafficRouting.managedRoutes) present now.
    pub managed_routes: Vec<String>,
    /// An object the router keeps needs a write beyond its weight (e.g. a canary Ingress whose rules no
    /// longer follow the stable Ingress): putting the same weight in place again brings it in step.
    pub out_of_step: bool,
}

/// A header-based route to the canary (canary step `setHeaderRoute`).
#[derive(Clone, Debug, PartialEq)]
pub struct HeaderRoute {
    /// Name of the route (one of trafficRouting.managedRoutes).
    pub name: String,
    /// Matches; every one must hold.
    pub matches: Vec<HeaderMatch>,
}

/// A mirror route to the canary (canary step `setMirrorRoute`).
#[derive(Clone, Debug, PartialEq)]
pub struct MirrorRoute {
    /// Name of the route (one of trafficRouting.managedRoutes).
    pub name: String,
    /// Matches; any one selects a request.
    pub matches: Vec<MirrorMatch>,
    /// Percentage of the selected requests mirrored (all when `None`).
    pub percentage: Option<i32>,
}

/// Why a router cannot do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouterError {
    /// An object the router needs does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// An object is not shaped as the router expects (a route without the Services, a list that is not one).
    #[error("{0}")]
    Malformed(String),
    /// The router does not do this (e.g. mirror routes on NGINX).
    #[error("{router} does not support {what}")]
    Unsupported {
        /// The router.
        router: &'static str,
        /// What was asked.
        what: String,
    },
}

/// A traffic router. Every method is pure: the reconciler reads [`Router::targets`] and performs the writes.
pub trait Router: Send + Sync {
    /// The router's name as the Rollout spec spells it (`istio`, `nginx`, `smi`, `argoproj-labs/gatewayAPI`).
    fn name(&self) -> &'static str;

    /// The objects observe, apply and verify read.
    fn targets(&self) -> Vec<Target>;

    /// The weights found (and managed routes present).
    fn observe(&self, objects: &Objects) -> Result<Seen, RouterError>;

    /// The writes that put `desired` in place; empty when it already is.
    fn apply(&self, objects: &Objects, desired: &Desired) -> Result<Vec<Write>, RouterError>;

    /// Whether the objects (read again after `apply`'s writes) show `desired`.
    fn verify(&self, objects: &Objects, desired: &Desired) -> Result<bool, RouterError>;

    /// The writes that take back what the rollout put on the objects beyond weights (objects it created,
    /// managed routes), used when the rollout stops routing through them.
    fn reset(&self, objects: &Objects) -> Result<Vec<Write>, RouterError>;

    /// The writes that add or update a header route to the canary.
    fn set_header_route(&self, objects: &Objects, route: &HeaderRoute) -> Result<Vec<Write>, RouterError> {
        let _ = (objects, route);
        Err(RouterError::Unsupported {
            router: self.name(),
            what: "setHeaderRoute".into(),
        })
    }

    /// The writes that add or update a mirror route to the canary.
    fn set_mirror_route(&self, objects: &Objects, route: &MirrorRoute) -> Result<Vec<Write>, RouterError> {
        let _ = (objects, route);
        Err(RouterError::Unsupported {
            router: self.name(),
            what: "setMirrorRoute".into(),
        })
    }

    /// The writes that remove the named managed routes (none when the router has none of them).
    fn remove_managed_routes(&self, objects: &Objects, names: &[String]) -> Result<Vec<Write>, RouterError> {
        let _ = (objects, names);
        Ok(Vec::new())
    }
}
