//! The Gateway API router of a Rollout: the `argoproj-labs/gatewayAPI` entry of `trafficRouting.plugins`, read
//! with the plugin's own field names so that manifests written for the plugin run unchanged.

use kube::ResourceExt;
use serde::Deserialize;
use sluice_crds::rollout::Rollout;
use sluice_crds::validate::GATEWAY_API_PLUGIN;
use sluice_traffic::gatewayapi::{GatewayRoute, GatewayRouter, RouteKind, Services};

/// A route of the list fields (`httpRoutes`, `grpcRoutes`, `tcpRoutes`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedRoute {
    /// The route's name.
    pub name: String,
    /// Whether setHeaderRoute adds its rule to this route (default false, as in the plugin).
    #[serde(default)]
    pub use_header_routes: bool,
}

/// The plugin config, as the plugin reads it (fields Sluice does not read are refused by validation).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayApiConfig {
    /// A single HTTPRoute (header routes always apply to it).
    #[serde(default)]
    pub http_route: Option<String>,
    /// HTTPRoutes.
    #[serde(default)]
    pub http_routes: Vec<NamedRoute>,
    /// A single GRPCRoute (header routes always apply to it).
    #[serde(default)]
    pub grpc_route: Option<String>,
    /// GRPCRoutes.
    #[serde(default)]
    pub grpc_routes: Vec<NamedRoute>,
    /// A single TCPRoute.
    #[serde(default)]
    pub tcp_route: Option<String>,
    /// TCPRoutes.
    #[serde(default)]
    pub tcp_routes: Vec<NamedRoute>,
    /// Namespace of the routes (default: the Rollout's).
    #[serde(default)]
    pub namespace: Option<String>,
}

impl GatewayApiConfig {
    /// The routes of `kind`: the list first, then the single field (with header routes), as the plugin orders
    /// them.
    fn named(&self, kind: RouteKind) -> Vec<NamedRoute> {
        let (list, single) = match kind {
            RouteKind::Http => (&self.http_routes, &self.http_route),
            RouteKind::Grpc => (&self.grpc_routes, &self.grpc_route),
            RouteKind::Tcp => (&self.tcp_routes, &self.tcp_route),
        };
        let single = single.iter().filter(|n| !n.is_empty()).map(|n| NamedRoute {
            name: n.clone(),
            use_header_routes: true,
        });
        list.iter().cloned().chain(single).collect()
    }
}

/// The Gateway API config of `ro`, if its `trafficRouting.plugins` names the plugin.
pub fn config(ro: &Rollout) -> Option<Result<GatewayApiConfig, String>> {
    let entry = ro
        .spec
        .strategy
        .canary
        .as_ref()?
        .traffic_routing
        .as_ref()?
        .plugins
        .as_ref()?
        .get(GATEWAY_API_PLUGIN)?;
    Some(serde_json::from_value(entry.clone()).map_err(|e| {
        format!(
            "spec.strategy.canary.trafficRouting.plugins[\"{GATEWAY_API_PLUGIN}\"] is not a valid config: {e}"
        )
    }))
}

/// The Gateway API router for `ro` from `config`, or why the config cannot be routed.
pub fn router(ro: &Rollout, config: &GatewayApiConfig) -> Result<GatewayRouter, String> {
    let canary = ro.spec.strategy.canary.clone().unwrap_or_default();
    let ns = config
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| ro.namespace().unwrap_or_default());
    let routes: Vec<GatewayRoute> = [RouteKind::Http, RouteKind::Grpc, RouteKind::Tcp]
        .into_iter()
        .flat_map(|kind| {
            config
                .named(kind)
                .into_iter()
                .map(move |r| (kind, r))
                .collect::<Vec<_>>()
        })
        .map(|(kind, r)| GatewayRoute::new(kind, &ns, &r.name, r.use_header_routes))
        .collect();
    if routes.is_empty() {
        return Err(format!(
            "spec.strategy.canary.trafficRouting.plugins[\"{GATEWAY_API_PLUGIN}\"] names no route \
             (httpRoute, httpRoutes, grpcRoute, grpcRoutes, tcpRoute or tcpRoutes)"
        ));
    }
    if let Some(r) = routes.iter().find(|r| r.target.name.is_empty()) {
        return Err(format!(
            "spec.strategy.canary.trafficRouting.plugins[\"{GATEWAY_API_PLUGIN}\"] names a {} without a name",
            r.target.kind
        ));
    }
    Ok(GatewayRouter {
        routes,
        services: Services {
            canary: canary.canary_service.unwrap_or_default(),
            stable: canary.stable_service.unwrap_or_default(),
        },
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sluice_traffic::Target;

    use super::*;

    fn rollout(plugin: serde_json::Value) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"strategy": {"canary": {
                "canaryService": "web-canary",
                "stableService": "web-stable",
                "trafficRouting": {"plugins": {"argoproj-labs/gatewayAPI": plugin}},
            }}},
        }))
        .expect("rollout")
    }

    /// Each route's target and whether header routes apply to it.
    type Routes = Vec<(Target, bool)>;

    fn built(plugin: serde_json::Value) -> Result<Routes, String> {
        let ro = rollout(plugin);
        let config = config(&ro).expect("plugin named")?;
        let r = router(&ro, &config)?;
        assert_eq!(r.services.canary, "web-canary");
        assert_eq!(r.services.stable, "web-stable");
        Ok(r.routes
            .into_iter()
            .map(|r| (r.target, r.use_header_routes))
            .collect())
    }

    fn http(ns: &str, name: &str) -> Target {
        RouteKind::Http.target(ns, name)
    }

    #[test]
    fn table_of_plugin_configs() {
        let cases: Vec<(serde_json::Value, Result<Routes, &str>)> = vec![
            (json!({"httpRoute": "web"}), Ok(vec![(http("shop", "web"), true)])),
            (
                json!({"httpRoute": "web", "namespace": "edge"}),
                Ok(vec![(http("edge", "web"), true)]),
            ),
            (
                json!({"httpRoutes": [{"name": "a", "useHeaderRoutes": true}, {"name": "b"}], "httpRoute": "c"}),
                Ok(vec![
                    (http("shop", "a"), true),
                    (http("shop", "b"), false),
                    (http("shop", "c"), true),
                ]),
            ),
            (
                json!({"tcpRoute": "db", "grpcRoutes": [{"name": "rpc"}], "httpRoute": "web", "configMap": "x"}),
                Ok(vec![
                    (http("shop", "web"), true),
                    (RouteKind::Grpc.target("shop", "rpc"), false),
                    (RouteKind::Tcp.target("shop", "db"), true),
                ]),
            ),
            (json!({}), Err("names no route")),
            (
                json!({"httpRoutes": [{"name": ""}]}),
                Err("names a HTTPRoute without a name"),
            ),
            (
                json!({"httpRoute": 3}),
                Err("is not a valid config: invalid type"),
            ),
            (json!({"httpRoutes": "web"}), Err("is not a valid config")),
        ];
        for (plugin, want) in cases {
            match (built(plugin.clone()), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{plugin}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{plugin}: {got}"),
                (got, want) => panic!("{plugin}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_bad_config_fails_every_routing_call_with_its_reason() {
        let ro = rollout(json!({"httpRoutes": "web"}));
        let config = crate::rollout::routing::RouterConfig {
            istio_version: "v1beta1".into(),
            smi_version: Default::default(),
        };
        let routers = crate::rollout::routing::routers(&ro, &config);
        assert_eq!(routers.len(), 1);
        let err = routers[0].observe(&Default::default()).expect_err("bad config");
        assert!(err.to_string().contains("is not a valid config"), "{err}");
    }
}
