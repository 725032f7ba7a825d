//! The inputs and outputs of the Istio planner, in the words of the Rollout spec.

use std::fmt;

/// Traffic split between two Services (`canaryService` / `stableService`), matched by destination host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSplit {
    /// Name of the canary Service (`spec.strategy.canary.canaryService`).
    pub canary_service: String,
    /// Name of the stable Service (`spec.strategy.canary.stableService`).
    pub stable_service: String,
}

/// Traffic split between two DestinationRule subsets of one host, matched by destination subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubsetSplit {
    /// The DestinationRule host; when set, only destinations of this host (short name) are matched.
    pub host: Option<String>,
    /// Name of the canary subset (`destinationRule.canarySubsetName`).
    pub canary_subset: String,
    /// Name of the stable subset (`destinationRule.stableSubsetName`).
    pub stable_subset: String,
}

/// How canary and stable destinations are told apart in a VirtualService route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Split {
    /// Host-level split: one Service per side.
    Host(HostSplit),
    /// Subset-level split: one host, a DestinationRule subset per side.
    Subset(SubsetSplit),
}

/// A TLS route selector (`virtualService.tlsRoutes[]`): the route's single port and its exact set of SNI hosts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsMatch {
    /// The port of the route's `match[]` entries; `None` when they name no port.
    pub port: Option<i64>,
    /// The route's SNI hosts, compared as a set.
    pub sni_hosts: Vec<String>,
}

/// A TCP route selector (`virtualService.tcpRoutes[]`): the route's single port.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TcpMatch {
    /// The port of the route's `match[]` entries; `None` when they name no port.
    pub port: Option<i64>,
}

/// Which routes of a VirtualService carry the canary/stable weights.
///
/// With no http names and no tls/tcp selectors the VirtualService must have exactly one http route (managed
/// routes excepted, see `weight_patch_with_managed`); with tls/tcp selectors only, just those are targeted.
/// Route names apply to the kinds that have them: a VirtualService with tls/tcp routes but no http route ignores
/// `http`, and without tls/tcp selectors it must have at most one tls and at most one tcp route (both shifted).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteSelector {
    /// Names of the http routes (`virtualService.routes`); `None` or empty = the single unmanaged http route.
    pub http: Option<Vec<String>>,
    /// TLS route selectors (`virtualService.tlsRoutes`).
    pub tls: Vec<TlsMatch>,
    /// TCP route selectors (`virtualService.tcpRoutes`).
    pub tcp: Vec<TcpMatch>,
}

/// The protocol section of a VirtualService a route lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKind {
    /// `spec.http[]`
    Http,
    /// `spec.tls[]`
    Tls,
    /// `spec.tcp[]`
    Tcp,
}

impl RouteKind {
    /// The field name of this section under `spec`.
    pub fn field(self) -> &'static str {
        match self {
            RouteKind::Http => "http",
            RouteKind::Tls => "tls",
            RouteKind::Tcp => "tcp",
        }
    }
}

impl fmt::Display for RouteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field())
    }
}

/// A route of a VirtualService: its section, its index there and its name if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRef {
    /// The section (`http`, `tls`, `tcp`).
    pub kind: RouteKind,
    /// Index in `spec.<kind>[]` as observed.
    pub index: usize,
    /// The route's `name`, if any.
    pub name: Option<String>,
}

impl fmt::Display for RouteRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(
                f,
                "{} route {name:?} (spec.{}[{}])",
                self.kind, self.kind, self.index
            ),
            None => write!(f, "{} route spec.{}[{}]", self.kind, self.kind, self.index),
        }
    }
}

/// Which side of the split a destination belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The new version.
    Canary,
    /// The version currently serving.
    Stable,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Canary => "canary",
            Role::Stable => "stable",
        })
    }
}

/// The canary and stable weights found on one targeted route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteWeights {
    /// The route they were read from.
    pub route: RouteRef,
    /// Weight of the canary destination (0 when absent).
    pub canary: i32,
    /// Weight of the stable destination (0 when absent).
    pub stable: i32,
}

/// An Istio `StringMatch`: exactly one of exact, prefix or regex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringMatch {
    /// `{exact: v}`
    Exact(String),
    /// `{prefix: v}`
    Prefix(String),
    /// `{regex: v}` (RE2 syntax)
    Regex(String),
}

/// One header condition of a `setHeaderRoute` step (`match[].headerName` / `headerValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    /// The HTTP header to inspect.
    pub header_name: String,
    /// How its value must match.
    pub value: StringMatch,
}

/// One match block of a `setMirrorRoute` step: all given conditions must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MirrorMatch {
    /// HTTP method condition.
    pub method: Option<StringMatch>,
    /// URI path condition (Istio's `uri`).
    pub path: Option<StringMatch>,
    /// Header conditions.
    pub headers: Vec<HeaderMatch>,
}
