//! Why a VirtualService or DestinationRule cannot be brought to the wanted state.

use super::model::{Role, RouteRef};

/// Errors of the Istio planner; each names the object and route it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IstioError {
    /// The requested canary weight is not a percentage.
    #[error("canary weight {0} is outside 0..=100")]
    WeightOutOfRange(i32),
    /// The requested mirror percentage is not a percentage.
    #[error("mirror percentage {0} is outside 0..=100")]
    MirrorPercentageOutOfRange(i32),
    /// A route named in the Rollout does not exist in the VirtualService.
    #[error("VirtualService {vs:?} has no http route named {name:?}")]
    HttpRouteNotFound {
        /// VirtualService name.
        vs: String,
        /// The missing route name.
        name: String,
    },
    /// No TLS route has the selected port and SNI hosts.
    #[error("VirtualService {vs:?} has no tls route with port {port:?} and sniHosts {sni_hosts:?}")]
    TlsRouteNotFound {
        /// VirtualService name.
        vs: String,
        /// The selected port.
        port: Option<i64>,
        /// The selected SNI hosts.
        sni_hosts: Vec<String>,
    },
    /// No TCP route has the selected port.
    #[error("VirtualService {vs:?} has no tcp route with port {port:?}")]
    TcpRouteNotFound {
        /// VirtualService name.
        vs: String,
        /// The selected port.
        port: Option<i64>,
    },
    /// The VirtualService has no http route to shift.
    #[error("VirtualService {vs:?} has no http routes")]
    NoHttpRoutes {
        /// VirtualService name.
        vs: String,
    },
    /// Routes are unnamed in the Rollout but the VirtualService has several candidates.
    #[error(
        "VirtualService {vs:?} has {count} http routes; it must have exactly one when the Rollout names no \
         routes (set trafficRouting.istio.virtualService.routes)"
    )]
    AmbiguousHttpRoutes {
        /// VirtualService name.
        vs: String,
        /// How many unmanaged http routes it has.
        count: usize,
    },
    /// The VirtualService has only tls/tcp routes, the Rollout selects none, and it has several tls routes.
    #[error(
        "VirtualService {vs:?} has no http routes and {count} tls routes; it must have exactly one when the \
         Rollout selects none (set trafficRouting.istio.virtualService.tlsRoutes)"
    )]
    AmbiguousTlsRoutes {
        /// VirtualService name.
        vs: String,
        /// How many tls routes it has.
        count: usize,
    },
    /// The VirtualService has only tls/tcp routes, the Rollout selects none, and it has several tcp routes.
    #[error(
        "VirtualService {vs:?} has no http routes and {count} tcp routes; it must have exactly one when the \
         Rollout selects none (set trafficRouting.istio.virtualService.tcpRoutes)"
    )]
    AmbiguousTcpRoutes {
        /// VirtualService name.
        vs: String,
        /// How many tcp routes it has.
        count: usize,
    },
    /// A targeted route lacks the canary or stable destination.
    #[error("{route} of VirtualService {vs:?} has no destination for the {role} {target}")]
    DestinationNotFound {
        /// VirtualService name.
        vs: String,
        /// The route.
        route: RouteRef,
        /// Which side is missing.
        role: Role,
        /// What was looked for, e.g. `service "web-canary"` or `subset "canary"`.
        target: String,
    },
    /// A targeted route has two destinations for one side, so one weight cannot express the split.
    #[error("{route} of VirtualService {vs:?} has more than one destination for the {role} {target}")]
    DuplicateDestination {
        /// VirtualService name.
        vs: String,
        /// The route.
        route: RouteRef,
        /// Which side is duplicated.
        role: Role,
        /// What was looked for.
        target: String,
    },
    /// A targeted route sends traffic to a third destination, so canary + stable could not total 100.
    #[error(
        "{route} of VirtualService {vs:?} gives weight {weight} to {destination}, which is neither canary nor \
         stable; canary and stable weights would not total 100"
    )]
    ForeignDestination {
        /// VirtualService name.
        vs: String,
        /// The route.
        route: RouteRef,
        /// The foreign destination, e.g. `host "legacy"`.
        destination: String,
        /// Its weight.
        weight: i32,
    },
    /// A field has the wrong JSON type.
    #[error("{kind} {name:?}: {path} {problem}")]
    Malformed {
        /// Object kind (`VirtualService`, `DestinationRule`, ...).
        kind: String,
        /// Object name.
        name: String,
        /// Where, e.g. `spec.http[0].route`.
        path: String,
        /// What is wrong, e.g. `is not a list`.
        problem: String,
    },
    /// A subset named in the Rollout does not exist in the DestinationRule.
    #[error("DestinationRule {dr:?} has no subset named {subset:?}")]
    SubsetNotFound {
        /// DestinationRule name.
        dr: String,
        /// The missing subset.
        subset: String,
    },
    /// Canary and stable subsets are the same subset.
    #[error("canary and stable subsets are both {0:?}")]
    SameSubset(String),
    /// A header/mirror route is not listed in `trafficRouting.managedRoutes`.
    #[error("route {0:?} is not listed in trafficRouting.managedRoutes")]
    UnmanagedRoute(String),
    /// A header/mirror route without conditions would catch all traffic.
    #[error("managed route {0:?} has no match; refusing to send all traffic to it")]
    EmptyMatch(String),
}
