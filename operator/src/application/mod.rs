//! The Application controller: Argo CD's `Application` (argoproj.io/v1alpha1) synced from Git as Argo CD
//! does it, built on the `sluice-gitops` engine. Observe (the commit, the rendered manifests, the live
//! objects and their drift) → compare (pure) → one step of the sync operation (pure decisions, executed)
//! → status, then the automated-sync decision.

pub mod appset;
pub mod cluster;
pub mod compare;
pub mod controller;
pub mod deletion;
pub mod destinations;
pub mod live_watch;
pub mod observe;
pub mod operation;
pub mod status;
pub mod sync;
pub mod webhook;
