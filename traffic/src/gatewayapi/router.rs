//! Gateway API behind the [`Router`] trait: the HTTPRoutes, GRPCRoutes and TCPRoutes of a Rollout.

use serde_json::Value;

use super::header::{header_route_patch, remove_managed_routes_patch};
use super::model::{GatewayRoute, Services};
use super::rules::{managed_rules, observed_weights};
use super::weights::weight_patch;
use crate::router::{
    Desired, HeaderRoute, MirrorRoute, Objects, Router, RouterError, Seen, Target, Write, required,
};

/// The Gateway API router of one Rollout (plugin `argoproj-labs/gatewayAPI`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayRouter {
    /// The routes, HTTP then gRPC then TCP, each in the order the config names them.
    pub routes: Vec<GatewayRoute>,
    /// The canary and stable Services.
    pub services: Services,
}

fn patch_write(target: &Target, patch: json_patch::Patch) -> Option<Write> {
    (!patch.0.is_empty()).then(|| Write::Patch {
        target: target.clone(),
        patch,
    })
}

impl GatewayRouter {
    /// A write per route from `patch`, skipping routes already as wanted.
    fn writes<'a>(
        &'a self,
        objects: &Objects,
        routes: impl Iterator<Item = &'a GatewayRoute>,
        patch: impl Fn(&GatewayRoute, &Value) -> Result<json_patch::Patch, RouterError>,
    ) -> Result<Vec<Write>, RouterError> {
        let mut writes = Vec::new();
        for route in routes {
            let doc = required(objects, &route.target)?;
            writes.extend(patch_write(&route.target, patch(route, doc)?));
        }
        Ok(writes)
    }
}

impl Router for GatewayRouter {
    fn name(&self) -> &'static str {
        "argoproj-labs/gatewayAPI"
    }

    fn targets(&self) -> Vec<Target> {
        self.routes.iter().map(|r| r.target.clone()).collect()
    }

    fn observe(&self, objects: &Objects) -> Result<Seen, RouterError> {
        let mut seen = Seen::default();
        for route in &self.routes {
            let doc = required(objects, &route.target)?;
            for name in managed_rules(doc)?.into_keys() {
                if !seen.managed_routes.contains(&name) {
                    seen.managed_routes.push(name);
                }
            }
            seen.weights.extend(observed_weights(doc, &self.services)?);
        }
        Ok(seen)
    }

    fn apply(&self, objects: &Objects, desired: &Desired) -> Result<Vec<Write>, RouterError> {
        self.writes(objects, self.routes.iter(), |_, doc| {
            weight_patch(doc, &self.services, desired)
        })
    }

    /// The routes show `desired` when there is nothing left to write: one rule decides both.
    fn verify(&self, objects: &Objects, desired: &Desired) -> Result<bool, RouterError> {
        Ok(self.apply(objects, desired)?.is_empty())
    }

    fn reset(&self, objects: &Objects) -> Result<Vec<Write>, RouterError> {
        let mut names: Vec<String> = Vec::new();
        for route in &self.routes {
            names.extend(managed_rules(required(objects, &route.target)?)?.into_keys());
        }
        self.remove_managed_routes(objects, &names)
    }

    fn set_header_route(&self, objects: &Objects, route: &HeaderRoute) -> Result<Vec<Write>, RouterError> {
        let chosen = self.routes.iter().filter(|r| r.use_header_routes);
        self.writes(objects, chosen, |r, doc| {
            header_route_patch(doc, r.kind, &self.services, &route.name, &route.matches)
        })
    }

    fn set_mirror_route(&self, _objects: &Objects, _route: &MirrorRoute) -> Result<Vec<Write>, RouterError> {
        Err(RouterError::Unsupported {
            router: self.name(),
            what: "setMirrorRoute (mirror routes on Gateway API routes)".into(),
        })
    }

    fn remove_managed_routes(&self, objects: &Objects, names: &[String]) -> Result<Vec<Write>, RouterError> {
        self.writes(objects, self.routes.iter(), |_, doc| {
            remove_managed_routes_patch(doc, names)
        })
    }
}
