//! The AnalysisRun controller: takes the measurements that are due, rolls them up (pure, in
//! `sluice_analysis::rollup`) and writes the status; requeues at the next measurement's due time.

pub mod controller;
pub mod job;

/// Label on a Job naming the AnalysisRun (uid) it measures for.
pub const JOB_RUN_UID_LABEL: &str = "analysisrun.argoproj.io/uid";
/// Label on a Job naming its AnalysisRun.
pub const JOB_RUN_NAME_LABEL: &str = "analysisrun.argoproj.io/name";
/// Label on a Job naming its metric.
pub const JOB_METRIC_LABEL: &str = "analysisrun.argoproj.io/metric-name";
