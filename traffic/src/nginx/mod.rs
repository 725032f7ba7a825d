//! NGINX Ingress traffic routing: beside each stable Ingress the rollout keeps a canary Ingress (named
//! `<rollout>-<stableIngress>-canary`, as upstream Argo Rollouts names it) whose backends point at the
//! canary Service and whose `canary` / `canary-weight` annotations tell the NGINX Ingress controller how
//! much traffic to send there.
//!
//! The canary Ingress is the rollout's own object (an ownerReference to the Rollout, created with the whole
//! object). Once it exists, every change is a JSON patch: `test` ops pin the value being replaced (a
//! concurrent change fails the write instead of being overwritten), and only what the rollout derives is
//! touched, namely its annotations and the rules, TLS and class copied from the stable Ingress. Annotations
//! other owners put on it (outside the NGINX annotation prefix) stay.

mod ingress;
mod patch;
mod router;

pub use ingress::{CanaryIngressSpec, Owner, canary_ingress, canary_ingress_name};
pub use patch::sync_patch;
pub use router::{NginxRouter, ingress_target};

/// The annotation prefix the NGINX Ingress controller reads by default.
pub const DEFAULT_ANNOTATION_PREFIX: &str = "nginx.ingress.kubernetes.io";

/// The Ingress class annotation, copied from the stable Ingress (the controller picks Ingresses by it).
pub const INGRESS_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
