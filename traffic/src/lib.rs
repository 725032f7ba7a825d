//! Traffic routers for Sluice, each behind the [`Router`] trait (`observe / apply / verify / reset`): Istio
//! (VirtualService weights, DestinationRule subsets) and NGINX (a canary Ingress beside each stable Ingress).
//!
//! Each router is a pure transform: it reads the routing object the reconciler observed and returns a JSON patch
//! that touches only the fields the rollout owns (weights, managed routes, subset labels), so that fields written
//! by other owners (Argo CD, Helm, people) survive.

pub mod gatewayapi;
pub mod istio;
pub mod nginx;
pub mod router;
pub mod smi;

pub use router::{
    Additional, Desired, HeaderMatch, HeaderRoute, MirrorMatch, MirrorRoute, Objects, Router, RouterError,
    Seen, StringMatch, Target, Write, required,
};
