//! The routes of a Gateway API router, in the words of the plugin config.

use crate::router::Target;

/// The Gateway API group.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// The kind of a Gateway API route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKind {
    /// `HTTPRoute` (v1; config `httpRoute` / `httpRoutes`).
    Http,
    /// `GRPCRoute` (v1; config `grpcRoute` / `grpcRoutes`).
    Grpc,
    /// `TCPRoute` (v1alpha2; config `tcpRoute` / `tcpRoutes`).
    Tcp,
}

impl RouteKind {
    /// API version, kind and plural resource name.
    pub fn api(self) -> (&'static str, &'static str, &'static str) {
        match self {
            RouteKind::Http => ("v1", "HTTPRoute", "httproutes"),
            RouteKind::Grpc => ("v1", "GRPCRoute", "grpcroutes"),
            RouteKind::Tcp => ("v1alpha2", "TCPRoute", "tcproutes"),
        }
    }

    /// The route `name` in `namespace`.
    pub fn target(self, namespace: &str, name: &str) -> Target {
        let (version, kind, plural) = self.api();
        Target::new((GROUP, version), (kind, plural), namespace, name)
    }

    /// Whether `setHeaderRoute` applies to this kind (TCP has no headers).
    pub fn has_headers(self) -> bool {
        !matches!(self, RouteKind::Tcp)
    }
}

/// One route the Rollout shifts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayRoute {
    /// Its kind.
    pub kind: RouteKind,
    /// The object.
    pub target: Target,
    /// Whether `setHeaderRoute` adds its rule here (`useHeaderRoutes`; always for the single-route fields).
    pub use_header_routes: bool,
}

impl GatewayRoute {
    /// The route of `kind` named `name` in `namespace`.
    pub fn new(kind: RouteKind, namespace: &str, name: &str, use_header_routes: bool) -> Self {
        Self {
            kind,
            target: kind.target(namespace, name),
            use_header_routes,
        }
    }
}

/// The canary and stable Services, as `backendRefs[].name` spells them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Services {
    /// `spec.strategy.canary.canaryService`.
    pub canary: String,
    /// `spec.strategy.canary.stableService`.
    pub stable: String,
}
