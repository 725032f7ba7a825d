//! AnalysisRuns (with the Jobs of their job metrics) and Experiments (with their ReplicaSets and runs).

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use sluice_crds::{analysis::AnalysisRun, experiment::Experiment};

use super::{meta, replicasets::replica_sets};
use crate::info::{AnalysisRunInfo, ExperimentInfo, Icon, JobInfo, MetricInfo, Owned};

/// The measurement metadata key naming the Job a job metric created.
const JOB_NAME: &str = "job-name";

/// The AnalysisRuns owned by `owner_uid`: newest revision first, then oldest first, then by name descending
/// (upstream's order).
pub fn analysis_runs(owner_uid: &str, owned: &Owned) -> Vec<AnalysisRunInfo> {
    let mut runs: Vec<AnalysisRunInfo> = owned
        .analysis_runs
        .iter()
        .filter(|r| meta::owned_by(&r.metadata, owner_uid))
        .map(|r| analysis_run_info(r, &owned.jobs))
        .collect();
    runs.sort_by(|a, b| {
        b.revision
            .cmp(&a.revision)
            .then_with(|| a.created.cmp(&b.created))
            .then_with(|| b.name.cmp(&a.name))
    });
    runs
}

/// The view of one AnalysisRun; `jobs` supply a Job's creation time when its measurement has no start time.
fn analysis_run_info(run: &AnalysisRun, jobs: &[Job]) -> AnalysisRunInfo {
    let status = run.status.clone().unwrap_or_default();
    let results = status.metric_results.as_deref().unwrap_or_default();
    let sum = |f: fn(&sluice_crds::analysis::MetricResult) -> Option<i32>| results.iter().filter_map(f).sum();
    let (successful, failed, inconclusive, error) = (
        sum(|m| m.successful),
        sum(|m| m.failed),
        sum(|m| m.inconclusive),
        sum(|m| m.error),
    );
    let jobs = results
        .iter()
        .flat_map(|m| m.measurements.as_deref().unwrap_or_default())
        .filter_map(|m| {
            let name = m.metadata.as_ref()?.get(JOB_NAME)?;
            Some(JobInfo {
                name: name.clone(),
                icon: analysis_icon(&m.phase),
                status: m.phase.clone(),
                created: m
                    .started_at
                    .as_ref()
                    .map(|t| t.0)
                    .or_else(|| job_created(jobs, run, name)),
            })
        })
        .collect();
    let metrics = results
        .iter()
        .map(|m| MetricInfo {
            name: m.name.clone(),
            phase: m.phase.clone(),
            last_value: m
                .measurements
                .as_deref()
                .and_then(<[_]>::last)
                .and_then(|x| x.value.clone())
                .unwrap_or_default(),
            success_condition: run
                .spec
                .metrics
                .iter()
                .find(|spec| spec.name == m.name)
                .and_then(|spec| spec.success_condition.clone())
                .unwrap_or_default(),
        })
        .collect();
    AnalysisRunInfo {
        name: meta::name(&run.metadata),
        icon: analysis_icon(&status.phase),
        status: status.phase.clone(),
        revision: meta::revision(&run.metadata),
        successful,
        failed,
        inconclusive,
        error,
        info: counts_info(successful, failed, inconclusive, error),
        message: status.message.clone().unwrap_or_default(),
        metrics,
        jobs,
        created: meta::created(&run.metadata),
    }
}

/// The creation time of the Job `name` in the run's namespace.
fn job_created(jobs: &[Job], run: &AnalysisRun, name: &str) -> Option<Timestamp> {
    jobs.iter()
        .find(|j| j.metadata.name.as_deref() == Some(name) && j.metadata.namespace == run.metadata.namespace)
        .and_then(|j| meta::created(&j.metadata))
}

/// "✔ 4,✖ 4,? 1,⚠ 1": the non-zero measurement counts.
fn counts_info(successful: i32, failed: i32, inconclusive: i32, error: i32) -> String {
    [
        (Icon::Ok, successful),
        (Icon::Bad, failed),
        (Icon::Unknown, inconclusive),
        (Icon::Warning, error),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(icon, n)| format!("{} {n}", icon.glyph()))
    .collect::<Vec<_>>()
    .join(",")
}

/// The icon of an analysis (or experiment, or measurement) phase.
pub fn analysis_icon(phase: &str) -> Icon {
    match phase {
        "Successful" => Icon::Ok,
        "Inconclusive" => Icon::Unknown,
        "Failed" => Icon::Bad,
        "Error" => Icon::Warning,
        "Running" => Icon::Progressing,
        "Pending" => Icon::Waiting,
        // Upstream prints a blank for a word it does not know (a run not yet picked up, an Evicted pod).
        _ => Icon::Blank,
    }
}

/// The Experiments owned by `owner_uid`, newest revision first, then oldest first.
pub fn experiments(owner_uid: &str, owned: &Owned, now: Timestamp) -> Vec<ExperimentInfo> {
    let mut exps: Vec<ExperimentInfo> = owned
        .experiments
        .iter()
        .filter(|e| meta::owned_by(&e.metadata, owner_uid))
        .map(|e| experiment_info(e, owned, now))
        .collect();
    exps.sort_by(|a, b| {
        b.revision
            .cmp(&a.revision)
            .then_with(|| a.created.cmp(&b.created))
    });
    exps
}

/// The view of one Experiment.
fn experiment_info(exp: &Experiment, owned: &Owned, now: Timestamp) -> ExperimentInfo {
    let status = exp.status.clone().unwrap_or_default();
    let phase = status.phase.unwrap_or_default();
    let uid = meta::uid(&exp.metadata);
    ExperimentInfo {
        name: meta::name(&exp.metadata),
        icon: analysis_icon(&phase),
        status: phase,
        revision: meta::revision(&exp.metadata),
        message: status.message.unwrap_or_default(),
        replica_sets: replica_sets(uid, None, &owned.replica_sets, &owned.pods, now),
        analysis_runs: analysis_runs(uid, owned),
        created: meta::created(&exp.metadata),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_show_only_what_happened() {
        assert_eq!(counts_info(4, 4, 1, 1), "✔ 4,✖ 4,? 1,⚠ 1");
        assert_eq!(counts_info(0, 1, 0, 0), "✖ 1");
        assert_eq!(counts_info(0, 0, 0, 0), "");
    }

    #[test]
    fn runs_keep_upstreams_order() {
        let run = |name: &str, revision: &str, created: &str| -> AnalysisRun {
            serde_yaml::from_str(&format!(
                "metadata: {{name: {name}, uid: u-{name}, creationTimestamp: '{created}', annotations: {{rollout.argoproj.io/revision: '{revision}'}}, ownerReferences: [{{apiVersion: v1, kind: Rollout, name: ro, uid: ro-uid}}]}}\nspec: {{metrics: []}}"
            ))
            .unwrap()
        };
        let all = [
            run("a", "1", "2026-01-01T00:00:00Z"),
            run("b", "2", "2026-01-02T00:00:00Z"),
            run("c", "2", "2026-01-01T00:00:00Z"),
            run("d", "2", "2026-01-01T00:00:00Z"),
        ];
        let owned = Owned {
            analysis_runs: all.to_vec(),
            ..Owned::default()
        };
        let names: Vec<String> = analysis_runs("ro-uid", &owned)
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["d", "c", "b", "a"]);
    }
}
