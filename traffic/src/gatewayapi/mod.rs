//! Gateway API traffic routing (HTTPRoute, GRPCRoute, TCPRoute), read as the `argoproj-labs/gatewayAPI` plugin
//! reads its Rollout config: in every rule that holds both the canary and the stable Service as `backendRefs`,
//! the canary backend gets the canary weight and the stable backend the rest.
//!
//! The plugin writes the whole route back (`Update`); here every write is a JSON patch that touches only the two
//! backends' `weight` (pinned by `test` ops on their names), the rules the rollout added for `setHeaderRoute`,
//! and the annotations that record those rules and the experiment backends, so that every other field of the
//! route (filters, matches, other backends, hostnames) survives.

mod header;
mod model;
mod router;
mod rules;
mod weights;

pub use header::{header_route_patch, remove_managed_routes_patch};
pub use model::{GatewayRoute, RouteKind, Services};
pub use router::GatewayRouter;
pub use rules::{managed_rules, observed_weights};
pub use weights::weight_patch;

/// Annotation on a route naming the rules the rollout added for `setHeaderRoute` (JSON: route name → index).
pub const MANAGED_ROUTES_ANNOTATION: &str = "sluice.dev/managed-routes";

/// Annotation on a route naming the experiment Services the rollout added as backends (JSON list).
pub const EXPERIMENT_BACKENDS_ANNOTATION: &str = "sluice.dev/experiment-backends";
