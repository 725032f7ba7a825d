//! The analysis engine: metric providers (Prometheus, web), condition evaluation in the expr language, argument
//! substitution and the pure measurement → metric → run phase roll-up of an AnalysisRun.

pub mod args;
pub mod condition;
pub use sluice_crds::duration;
pub mod phase;
pub mod provider;
pub mod rollup;

pub use phase::Phase;
