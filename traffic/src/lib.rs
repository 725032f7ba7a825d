//! Traffic routers for Sluice.
//!
//! Each router is a pure transform: it reads the routing object the reconciler observed and returns a JSON patch
//! that touches only the fields the rollout owns (weights, managed routes, subset labels), so that fields written
//! by other owners (Argo CD, Helm, people) survive.

pub mod istio;
