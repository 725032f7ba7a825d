//! The engine of the Application controller, as Argo CD defines it (../shared/reference/argo-cd.md): health of
//! live objects, the sync tasks of a sync (phases, waves, hooks, ordering) and the rendering of a source
//! directory. Pure where it can be: no Kubernetes client here; the controller in operator/ wires it.

pub mod directory;
pub mod health;
pub mod source;
pub mod tasks;
pub mod tracking;
