//! SMI traffic routing: a `split.smi-spec.io` TrafficSplit that the Rollout creates and owns, whose backends
//! (canary, experiment Services, stable) carry the weights.
//!
//! As upstream Argo Rollouts does, the TrafficSplit is created with a controller owner reference to the Rollout
//! (so it goes when the Rollout goes), and one the Rollout does not own is an error rather than taken over.
//! Unlike upstream, which merge-patches the whole spec, an existing TrafficSplit gets a JSON patch that touches
//! only the backend weights (and the root Service or a missing backend when they differ from the spec), each
//! write pinned with a `test` of the backend's Service. The API version is one per controller
//! (`--traffic-split-api-version`, v1alpha1 by default as upstream): v1alpha1 writes weights as Kubernetes
//! quantities, v1alpha2 and v1alpha3 as integers.

mod quantity;
mod router;
mod split;

pub use quantity::parse_weight;
pub use router::{Owner, SmiRouter};
pub use split::{SMI_GROUP, SmiVersion, TRAFFIC_SPLIT_KIND, TRAFFIC_SPLIT_PLURAL, traffic_split_target};
