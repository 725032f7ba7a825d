//! Istio behind the [`Router`] trait: the VirtualServices of a Rollout, each with its split and route selector.

use serde_json::Value;

use super::{
    IstioError, RouteSelector, Split, canary_destination, header_route_patch, mirror_route_patch,
    observed_weights_with_managed, remove_managed_routes_patch, verify_with_additional,
    weight_patch_with_additional,
};
use crate::router::{
    Desired, HeaderRoute, MirrorRoute, Objects, Router, RouterError, Seen, Target, Write, required,
};

/// One VirtualService a Rollout shifts, and how its routes are found.
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualServiceRef {
    /// The VirtualService.
    pub target: Target,
    /// How canary and stable destinations are told apart.
    pub split: Split,
    /// Which routes carry the weights.
    pub routes: RouteSelector,
}

/// The Istio router of one Rollout.
#[derive(Clone, Debug, PartialEq)]
pub struct IstioRouter {
    /// The VirtualServices, in the order the spec names them.
    pub virtual_services: Vec<VirtualServiceRef>,
    /// trafficRouting.managedRoutes, in order of precedence.
    pub managed_routes: Vec<String>,
}

/// The VirtualService target `name` in `namespace` for API version `version` of `networking.istio.io`.
pub fn virtual_service_target(version: &str, namespace: &str, name: &str) -> Target {
    Target::new(
        ("networking.istio.io", version),
        ("VirtualService", "virtualservices"),
        namespace,
        name,
    )
}

fn malformed(target: &Target, e: IstioError) -> RouterError {
    RouterError::Malformed(format!("{} \"{}\": {e}", target.kind, target.name))
}

fn patch_write(target: &Target, patch: json_patch::Patch) -> Option<Write> {
    (!patch.0.is_empty()).then(|| Write::Patch {
        target: target.clone(),
        patch,
    })
}

impl IstioRouter {
    /// Each VirtualService with the object read for it.
    fn each<'a>(
        &'a self,
        objects: &'a Objects,
    ) -> impl Iterator<Item = Result<(&'a VirtualServiceRef, &'a Value), RouterError>> + 'a {
        self.virtual_services
            .iter()
            .map(move |vs| required(objects, &vs.target).map(|doc| (vs, doc)))
    }

    /// A write per VirtualService from `patch`, skipping those already as wanted.
    fn writes(
        &self,
        objects: &Objects,
        patch: impl Fn(&VirtualServiceRef, &Value) -> Result<json_patch::Patch, IstioError>,
    ) -> Result<Vec<Write>, RouterError> {
        let mut writes = Vec::new();
        for item in self.each(objects) {
            let (vs, doc) = item?;
            let p = patch(vs, doc).map_err(|e| malformed(&vs.target, e))?;
            writes.extend(patch_write(&vs.target, p));
        }
        Ok(writes)
    }
}

impl Router for IstioRouter {
    fn name(&self) -> &'static str {
        "istio"
    }

    fn targets(&self) -> Vec<Target> {
        self.virtual_services.iter().map(|vs| vs.target.clone()).collect()
    }

    fn observe(&self, objects: &Objects) -> Result<Seen, RouterError> {
        let mut seen = Seen::default();
        for item in self.each(objects) {
            let (vs, doc) = item?;
            for route in doc["spec"]["http"].as_array().into_iter().flatten() {
                if let Some(n) = route["name"]
                    .as_str()
                    .filter(|n| self.managed_routes.iter().any(|m| m == n))
                    && !seen.managed_routes.iter().any(|p| p == n)
                {
                    seen.managed_routes.push(n.to_string());
                }
            }
            let found = observed_weights_with_managed(doc, &vs.split, &vs.routes, &self.managed_routes)
                .map_err(|e| malformed(&vs.target, e))?;
            seen.weights.extend(found.into_iter().map(|r| r.canary));
        }
        Ok(seen)
    }

    fn apply(&self, objects: &Objects, desired: &Desired) -> Result<Vec<Write>, RouterError> {
        self.writes(objects, |vs, doc| {
            weight_patch_with_additional(
                doc,
                &vs.split,
                &vs.routes,
                &self.managed_routes,
                desired.canary,
                &desired.additional,
            )
        })
    }

    fn verify(&self, objects: &Objects, desired: &Desired) -> Result<bool, RouterError> {
        for item in self.each(objects) {
            let (vs, doc) = item?;
            let shown = verify_with_additional(
                doc,
                &vs.split,
                &vs.routes,
                &self.managed_routes,
                desired.canary,
                &desired.additional,
            )
            .map_err(|e| malformed(&vs.target, e))?;
            if !shown {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn reset(&self, objects: &Objects) -> Result<Vec<Write>, RouterError> {
        self.remove_managed_routes(objects, &self.managed_routes)
    }

    fn set_header_route(&self, objects: &Objects, route: &HeaderRoute) -> Result<Vec<Write>, RouterError> {
        self.writes(objects, |vs, doc| {
            let dest = canary_destination(doc, &vs.split, &vs.routes, &self.managed_routes)?;
            header_route_patch(doc, &route.name, &route.matches, &dest, &self.managed_routes)
        })
    }

    fn set_mirror_route(&self, objects: &Objects, route: &MirrorRoute) -> Result<Vec<Write>, RouterError> {
        self.writes(objects, |vs, doc| {
            let dest = canary_destination(doc, &vs.split, &vs.routes, &self.managed_routes)?;
            mirror_route_patch(
                doc,
                &route.name,
                &route.matches,
                route.percentage,
                &dest,
                &vs.routes,
                &self.managed_routes,
            )
        })
    }

    fn remove_managed_routes(&self, objects: &Objects, names: &[String]) -> Result<Vec<Write>, RouterError> {
        self.writes(objects, |_, doc| remove_managed_routes_patch(doc, names))
    }
}
