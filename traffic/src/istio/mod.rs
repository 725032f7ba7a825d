//! Istio traffic routing: VirtualService weights, DestinationRule subset labels and managed (header / mirror)
//! routes, each computed as a JSON patch from the observed object.
//!
//! Upstream Argo Rollouts writes the whole VirtualService back (`Update`), which drops fields its Go types do not
//! know (argoproj/argo-rollouts#2266 lost `retries`). Here every function returns the smallest patch: `test` ops
//! pin the route and destination it is about (a concurrent reorder makes the patch fail instead of writing the
//! wrong destination), then `add`/`replace`/`move`/`remove` touch only what the rollout owns. An empty patch means
//! the object is already in the wanted state, so the executor sends nothing.

mod destination_rule;
mod error;
mod managed;
mod model;
pub(crate) mod ops;
mod router;
mod select;
mod weights;

pub use destination_rule::{managed_by_patch, observed_subset_hashes, release_patch, subset_patch};
pub use error::IstioError;
pub use managed::{header_route_patch, mirror_route_patch, remove_managed_routes_patch};
pub use model::{
    HeaderMatch, HostSplit, MirrorMatch, Role, RouteKind, RouteRef, RouteSelector, RouteWeights, Split,
    StringMatch, SubsetSplit, TcpMatch, TlsMatch,
};
pub use router::{IstioRouter, VirtualServiceRef, virtual_service_target};
pub use weights::{
    canary_destination, observed_weights, observed_weights_with_managed, verify, verify_with_additional,
    verify_with_managed, weight_patch, weight_patch_with_additional, weight_patch_with_managed,
};

/// Label that ties a DestinationRule subset (and a Service selector) to one ReplicaSet's pods.
pub const POD_TEMPLATE_HASH_LABEL: &str = "rollouts-pod-template-hash";

/// Annotation marking an object as managed by a Rollout (value: the Rollout's name).
pub const MANAGED_BY_ANNOTATION: &str = "argo-rollouts.argoproj.io/managed-by-rollouts";
