//! Reading a router's objects and sending its writes: the only I/O of traffic routing.

use std::future::Future;

use kube::{
    Api, Client,
    api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams},
};
use serde_json::Value;
use sluice_traffic::{Desired, HeaderRoute, MirrorRoute, Objects, Router, RouterError, Target, Write};

use super::super::{controller::Error, plan::Action, plan::TrafficState};

/// Reads and writes the objects routers name (the cluster, or a fake in tests).
pub trait ObjectIo: Sync {
    /// The object, or `None` when it (or its kind) does not exist.
    fn get(&self, target: &Target) -> impl Future<Output = Result<Option<Value>, Error>> + Send;
    /// Performs one write.
    fn send(&self, write: &Write) -> impl Future<Output = Result<(), Error>> + Send;
}

/// The cluster, through dynamic objects.
pub struct ClusterObjects<'a>(pub &'a Client);

fn api(client: &Client, target: &Target) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(&target.group, &target.version, &target.kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, &target.plural);
    Api::namespaced_with(client.clone(), &target.namespace, &resource)
}

impl ObjectIo for ClusterObjects<'_> {
    async fn get(&self, target: &Target) -> Result<Option<Value>, Error> {
        let found = api(self.0, target).get_opt(&target.name).await?;
        Ok(found.map(|o| serde_json::to_value(o).unwrap_or_default()))
    }

    async fn send(&self, write: &Write) -> Result<(), Error> {
        match write {
            Write::Patch { target, patch } => {
                api(self.0, target)
                    .patch(
                        &target.name,
                        &PatchParams::default(),
                        &Patch::<()>::Json(patch.clone()),
                    )
                    .await?;
            }
            Write::Create { target, object } => {
                let object: DynamicObject =
                    serde_json::from_value(object.clone()).map_err(|e| Error::Traffic(e.to_string()))?;
                match api(self.0, target).create(&PostParams::default(), &object).await {
                    Ok(_) => {}
                    // Created by an earlier reconcile whose read did not see it yet: the next read does.
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Write::Delete { target } => {
                match api(self.0, target)
                    .delete(&target.name, &DeleteParams::default())
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}

/// The caches first: a target of a kind whose cache is kept and synced is read from it; others from the API
/// server. Writes go to the API server.
pub struct CachedObjects<'a>(pub &'a Client, pub &'a super::super::drift::RoutedCaches);

impl ObjectIo for CachedObjects<'_> {
    async fn get(&self, target: &Target) -> Result<Option<Value>, Error> {
        match self
            .1
            .get(&target.group, &target.plural, &target.namespace, &target.name)
        {
            Some(cached) => Ok(cached.map(|o| serde_json::to_value(&*o).unwrap_or_default())),
            None => ClusterObjects(self.0).get(target).await,
        }
    }

    async fn send(&self, write: &Write) -> Result<(), Error> {
        ClusterObjects(self.0).send(write).await
    }
}

/// Every target of the router, read.
async fn read(io: &impl ObjectIo, router: &dyn Router) -> Result<Objects, Error> {
    let mut objects = Objects::new();
    for target in router.targets() {
        let found = io.get(&target).await?;
        objects.insert(target, found);
    }
    Ok(objects)
}

fn failed(e: RouterError) -> Error {
    Error::Traffic(e.to_string())
}

/// The canary weight every router shows (or why it cannot be read) and the managed routes present.
pub async fn observe(
    io: &impl ObjectIo,
    routers: &[Box<dyn Router>],
) -> Result<(TrafficState, Vec<String>), Error> {
    let mut weights = Vec::new();
    let mut present: Vec<String> = Vec::new();
    let mut out_of_step = false;
    for router in routers {
        let objects = read(io, router.as_ref()).await?;
        match router.observe(&objects) {
            Ok(seen) => {
                weights.extend(seen.weights);
                out_of_step |= seen.out_of_step;
                for route in seen.managed_routes {
                    if !present.contains(&route) {
                        present.push(route);
                    }
                }
            }
            Err(e) => return Ok((TrafficState::Error(e.to_string()), present)),
        }
    }
    let state = match weights.first() {
        Some(w) if weights.iter().all(|x| x == w) && out_of_step => TrafficState::OutOfStep(*w),
        Some(w) if weights.iter().all(|x| x == w) => TrafficState::Weight(*w),
        _ => TrafficState::Mixed,
    };
    Ok((state, present))
}

/// Sends `writes` in order.
async fn send_all(io: &impl ObjectIo, writes: &[Write]) -> Result<(), Error> {
    for write in writes {
        io.send(write).await?;
    }
    Ok(())
}

/// Puts `desired` on every router, reads each back and checks it shows the weight: a router that accepted the
/// write but shows something else (an admission webhook, another controller) fails the reconcile.
pub async fn apply_weight(
    io: &impl ObjectIo,
    routers: &[Box<dyn Router>],
    desired: &Desired,
) -> Result<(), Error> {
    for router in routers {
        let objects = read(io, router.as_ref()).await?;
        let writes = router.apply(&objects, desired).map_err(failed)?;
        send_all(io, &writes).await?;
        let after = read(io, router.as_ref()).await?;
        if !router.verify(&after, desired).map_err(failed)? {
            let names: Vec<String> = router.targets().iter().map(Target::describe).collect();
            return Err(Error::Traffic(format!(
                "{} does not show weight {} after the update",
                names.join(", "),
                desired.canary
            )));
        }
    }
    Ok(())
}

/// A managed-route step (setHeaderRoute, setMirrorRoute, their removal) on every router.
pub async fn change_managed_routes(
    io: &impl ObjectIo,
    routers: &[Box<dyn Router>],
    action: &Action,
) -> Result<(), Error> {
    for router in routers {
        let objects = read(io, router.as_ref()).await?;
        let writes = match action {
            Action::SetHeaderRoute { name, matches } => {
                let route = HeaderRoute {
                    name: name.clone(),
                    matches: matches.iter().filter_map(super::header_match).collect(),
                };
                router.set_header_route(&objects, &route)
            }
            Action::SetMirrorRoute {
                name,
                matches,
                percentage,
            } => {
                let route = MirrorRoute {
                    name: name.clone(),
                    matches: matches.iter().map(super::mirror_match).collect(),
                    percentage: *percentage,
                };
                router.set_mirror_route(&objects, &route)
            }
            Action::RemoveManagedRoutes { names } => router.remove_managed_routes(&objects, names),
            _ => Ok(Vec::new()),
        }
        .map_err(failed)?;
        send_all(io, &writes).await?;
    }
    Ok(())
}
