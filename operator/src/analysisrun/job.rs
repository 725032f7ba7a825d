//! The job provider: a Kubernetes Job per measurement; its completion is a Successful measurement, its failure
//! a Failed one. The measurement stays Running (no finishedAt) in between; the Job watch brings the run back.

use std::collections::BTreeMap;

use k8s_openapi::{api::batch::v1::Job, apimachinery::pkg::apis::meta::v1::ObjectMeta, jiff::Timestamp};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, PostParams, PropagationPolicy},
};
use sluice_analysis::{Phase, rollup::stamp};
use sluice_crds::analysis::{AnalysisRun, JobMetric, Measurement};

use super::{JOB_METRIC_LABEL, JOB_RUN_NAME_LABEL, JOB_RUN_UID_LABEL};

const JOB_NAME_KEY: &str = "job-name";
const JOB_NAMESPACE_KEY: &str = "job-namespace";

/// Creates the Job of a new measurement; the measurement is Running, or Error when the Job cannot be created.
pub async fn start(
    client: &Client,
    run: &AnalysisRun,
    metric: &str,
    job: &JobMetric,
    index: i32,
    now: Timestamp,
) -> Measurement {
    let ns = run.namespace().unwrap_or_default();
    let uid = run.uid().unwrap_or_default();
    let name = format!("{uid}.{metric}.{index}");
    let mut labels = job
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(JOB_RUN_UID_LABEL.into(), uid.clone());
    labels.insert(JOB_RUN_NAME_LABEL.into(), run.name_any());
    labels.insert(JOB_METRIC_LABEL.into(), metric.to_string());
    let object = Job {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(labels),
            annotations: job.metadata.as_ref().and_then(|m| m.annotations.clone()),
            owner_references: run.controller_owner_ref(&()).map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        spec: Some(job.spec.clone()),
        ..Job::default()
    };
    let mut m = Measurement {
        phase: Phase::Running.to_string(),
        started_at: Some(stamp(now)),
        metadata: Some(BTreeMap::from([
            (JOB_NAME_KEY.to_string(), name.clone()),
            (JOB_NAMESPACE_KEY.to_string(), ns.clone()),
        ])),
        ..Measurement::default()
    };
    let api: Api<Job> = Api::namespaced(client.clone(), &ns);
    match api.create(&PostParams::default(), &object).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => {
            m.phase = Phase::Error.to_string();
            m.message = Some(format!("creating job {name}: {e}"));
            m.finished_at = Some(stamp(now));
        }
    }
    m
}

/// Checks the Job of a running measurement: Complete → Successful, Failed → Failed, otherwise unchanged. With
/// `terminate`, a Job still running is deleted and the measurement ends Successful ("Metric Terminated").
pub async fn resume(
    client: &Client,
    measurement: &Measurement,
    terminate: bool,
    now: Timestamp,
) -> Measurement {
    let mut m = measurement.clone();
    let meta = m.metadata.clone().unwrap_or_default();
    let (Some(name), Some(ns)) = (meta.get(JOB_NAME_KEY), meta.get(JOB_NAMESPACE_KEY)) else {
        m.phase = Phase::Error.to_string();
        m.message = Some("job measurement has no job name".into());
        m.finished_at = Some(stamp(now));
        return m;
    };
    let api: Api<Job> = Api::namespaced(client.clone(), ns);
    let job = match api.get_opt(name).await {
        Ok(Some(job)) => job,
        Ok(None) => {
            m.phase = Phase::Error.to_string();
            m.message = Some(format!("job {name} not found"));
            m.finished_at = Some(stamp(now));
            return m;
        }
        Err(e) => {
            m.phase = Phase::Error.to_string();
            m.message = Some(format!("reading job {name}: {e}"));
            m.finished_at = Some(stamp(now));
            return m;
        }
    };
    let condition = |t: &str| {
        job.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == t && c.status == "True"))
    };
    if condition("Complete") {
        m.phase = Phase::Successful.to_string();
        m.finished_at = Some(stamp(now));
    } else if condition("Failed") {
        m.phase = Phase::Failed.to_string();
        m.finished_at = Some(stamp(now));
    } else if terminate {
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        let _ = api.delete(name, &dp).await;
        m.phase = Phase::Successful.to_string();
        m.message = Some("Metric Terminated".into());
        m.finished_at = Some(stamp(now));
    }
    m
}
