//! The AnalysisRun controller's I/O: the watch, secrets, providers, events and the status write.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{StreamExt, future::join_all};
use k8s_openapi::{
    api::{batch::v1::Job, core::v1::Secret},
    jiff::Timestamp,
};
use kube::runtime::reflector::Store;
use kube::{
    Api, Client, Resource, ResourceExt,
    api::DeleteParams,
    runtime::{Controller, WatchStreamExt, controller::Action as Requeue, reflector, watcher},
};
use sluice_analysis::{
    Phase,
    args::{ArgValue, redact, resolve_metric},
    provider, rollup,
};
use sluice_crds::analysis::{AnalysisRun, AnalysisRunSpec, AnalysisRunStatus, Argument, Metric};
use tracing::{debug, info, warn};

use super::{JOB_RUN_UID_LABEL, job};
use crate::{events::EventWriter, metrics::Metrics};

/// Errors of one reconcile; retried with backoff, never fatal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

/// What every reconcile shares.
pub struct Context {
    client: Client,
    events: EventWriter,
    metrics: Arc<Metrics>,
    /// resourceVersion after this controller's last status write per run: an older cached copy is stale, and
    /// measuring from it would repeat a measurement.
    written: Mutex<HashMap<(String, String), u64>>,
    /// Consecutive failures per run.
    backoff: crate::backoff::Backoff,
    /// Open once the run cache is synced while this process leads.
    gate: crate::ready::Gate,
}

/// Placeholder for a secret argument while only the shape of the metrics is checked (the secret itself is read
/// only when measuring).
const SECRET_PLACEHOLDER: &str = "temp-for-secret";

/// Watches AnalysisRuns (and the Jobs of job metrics) and reconciles until `shutdown` resolves.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    workers: u16,
    metrics: Arc<Metrics>,
    readiness: Arc<crate::ready::Readiness>,
    runs: (
        Store<AnalysisRun>,
        impl futures::Stream<Item = Arc<AnalysisRun>> + Send + 'static,
    ),
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let jobs: Api<Job> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (store, stream) = runs;
    let _ = metrics.caches().analysis_runs.set(store.clone());
    let ctx = Arc::new(Context {
        client: client.clone(),
        events: EventWriter::new(client, "rollouts-controller"),
        metrics,
        written: Mutex::default(),
        backoff: Default::default(),
        gate: readiness.gate(&[CACHE]),
    });
    // Only Jobs made for a measurement carry the run's uid label.
    let job_config = watcher::Config::default().labels(JOB_RUN_UID_LABEL);
    Controller::for_shared_stream(stream, store)
        .with_config(kube::runtime::controller::Config::default().concurrency(workers))
        .reconcile_all_on(ctx.gate.opening())
        .owns(jobs, job_config)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                crate::backoff::log_stream_error("analysisrun", &e);
            }
        })
        .await;
}

/// The AnalysisRun cache, shared by the AnalysisRun controller and the Rollout controller (which owns the runs):
/// the store, the task that keeps it, and one event stream per subscriber. Only this controller instance's
/// runs enter it.
pub fn shared_cache(
    client: &Client,
    scope: &crate::scope::Scope,
    readiness: &Arc<crate::ready::Readiness>,
) -> (
    Store<AnalysisRun>,
    impl std::future::Future<Output = ()> + Send + 'static,
    [reflector::ReflectHandle<AnalysisRun>; 3],
) {
    let api: Api<AnalysisRun> = scope.api(client);
    let (store, writer) = reflector::store_shared(crate::ready::SHARED_BUFFER);
    let subscribers = [
        writer.subscribe().expect("a shared store has subscribers"),
        writer.subscribe().expect("a shared store has subscribers"),
        writer.subscribe().expect("a shared store has subscribers"),
    ];
    let instance = watcher::Config::default().labels(&scope.instance_selector());
    let events = watcher(api, instance)
        .default_backoff()
        .modify(crate::ready::lean)
        .reflect_shared(writer);
    let source = readiness.track(CACHE, events).for_each(|event| async move {
        if let Err(e) = event {
            warn!(error = %e, "analysis run watch error; retrying with backoff");
        }
    });
    (store, source, subscribers)
}

/// The name of the run cache in readiness reports.
pub const CACHE: &str = "analysisruns";

fn key_of(run: &AnalysisRun) -> String {
    format!("{}/{}", run.namespace().unwrap_or_default(), run.name_any())
}

fn error_policy(run: Arc<AnalysisRun>, err: &Error, ctx: Arc<Context>) -> Requeue {
    let Error::Kube(e) = err;
    let reason = crate::backoff::kube_reason(e);
    ctx.metrics.analysis_run_reconcile_error.inc();
    ctx.metrics.reconcile_failed("analysisrun", reason);
    let key = key_of(&run);
    let delay = ctx.backoff.failed(&key);
    warn!(analysisrun = %key, reason, error = %err, retry_in = ?delay, "reconcile failed; retrying");
    Requeue::requeue(delay)
}

fn resource_version(run: &AnalysisRun) -> Option<u64> {
    run.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
}

async fn reconcile(run: Arc<AnalysisRun>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    if !ctx.gate.is_open() {
        // Everything is reconciled when the gate opens.
        return Ok(Requeue::await_change());
    }
    let started = Instant::now();
    let result = match reconcile_inner(&run, &ctx).await {
        Err(Error::Kube(e)) if crate::status_patch::is_conflict(&e) => {
            // Changed since read (e.g. terminated): measured again from what is there now.
            Ok(Requeue::requeue(Duration::from_millis(100)))
        }
        r => r,
    };
    if result.is_ok() {
        ctx.backoff.succeeded(&key_of(&run));
    }
    ctx.metrics
        .analysis_run_reconcile
        .observe(started.elapsed().as_secs_f64());
    result
}

/// Argument values as the run's spec gives them; secrets are a placeholder.
fn args_without_secrets(args: &[Argument]) -> Vec<ArgValue> {
    args.iter()
        .map(|a| ArgValue {
            name: a.name.clone(),
            value: match (&a.value, &a.value_from) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(from)) if from.secret_key_ref.is_some() => Some(SECRET_PLACEHOLDER.to_string()),
                _ => None,
            },
        })
        .collect()
}

/// Argument values with secrets read from the run's namespace; also returns the secret values (to redact).
async fn args_with_secrets(
    client: &Client,
    ns: &str,
    args: &[Argument],
) -> Result<(Vec<ArgValue>, Vec<String>), String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut read: HashMap<String, Secret> = HashMap::new();
    let mut values = Vec::new();
    let mut hidden = Vec::new();
    for a in args {
        let value = match (
            &a.value,
            a.value_from.as_ref().and_then(|f| f.secret_key_ref.as_ref()),
        ) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(r)) => {
                if !read.contains_key(&r.name) {
                    let secret = secrets.get(&r.name).await.map_err(|e| match e {
                        kube::Error::Api(s) if s.code == 404 => format!("secrets \"{}\" not found", r.name),
                        other => format!("reading secret \"{}\": {other}", r.name),
                    })?;
                    read.insert(r.name.clone(), secret);
                }
                let secret = &read[&r.name];
                let bytes = secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(&r.key))
                    .map(|b| b.0.clone())
                    .or_else(|| {
                        secret
                            .string_data
                            .as_ref()
                            .and_then(|d| d.get(&r.key))
                            .map(|s| s.clone().into_bytes())
                    })
                    .ok_or_else(|| format!("key '{}' does not exist in secret '{}'", r.key, r.name))?;
                let text = String::from_utf8_lossy(&bytes).into_owned();
                hidden.push(text.clone());
                Some(text)
            }
            (None, None) => None,
        };
        values.push(ArgValue {
            name: a.name.clone(),
            value,
        });
    }
    Ok((values, hidden))
}

fn fail(status: &mut AnalysisRunStatus, message: String, now: Timestamp) {
    status.phase = Phase::Error.to_string();
    status.message = Some(message);
    if status.started_at.is_none() {
        status.started_at = Some(rollup::stamp(now));
    }
    status.completed_at = Some(rollup::stamp(now));
}

/// What a run's spec resolves to once checked.
struct CheckedSpec {
    /// The metrics with their arguments resolved, secrets as a placeholder.
    metrics: Vec<Metric>,
    /// Names of the dry-run metrics.
    dry_run: BTreeSet<String>,
    /// Measurements kept per metric name.
    retention: BTreeMap<String, usize>,
}

/// Checks the run's spec; Err is the run's Error message. As upstream, a dry-run metric is checked like any
/// other: a metric this controller cannot measure ends the whole run before a first measurement.
fn check_spec(spec: &AnalysisRunSpec) -> Result<CheckedSpec, String> {
    let placeholder_args = args_without_secrets(spec.args.as_deref().unwrap_or_default());
    let metrics = spec
        .metrics
        .iter()
        .map(|m| resolve_metric(m, &placeholder_args))
        .collect::<Result<Vec<Metric>, String>>()
        .map_err(|e| format!("Unable to resolve metric arguments: {e}"))?;
    let invalid = |e: String| format!("Analysis spec invalid: {e}");
    rollup::validate_metrics(&metrics).map_err(invalid)?;
    metrics
        .iter()
        .try_for_each(provider::supported)
        .map_err(invalid)?;
    let dry_run = rollup::dry_run_metrics(spec, &metrics).map_err(invalid)?;
    let retention = rollup::retention(spec, &metrics).map_err(invalid)?;
    Ok(CheckedSpec {
        metrics,
        dry_run,
        retention,
    })
}

async fn reconcile_inner(run: &AnalysisRun, ctx: &Context) -> Result<Requeue, Error> {
    let ns = run.namespace().unwrap_or_default();
    let name = run.name_any();
    let key = (ns.clone(), name.clone());
    if run.meta().deletion_timestamp.is_some() {
        if let Ok(mut w) = ctx.written.lock() {
            w.remove(&key);
        }
        return Ok(Requeue::await_change());
    }
    let last_written = ctx.written.lock().ok().and_then(|w| w.get(&key).copied());
    if let (Some(written), Some(cached)) = (last_written, resource_version(run))
        && cached < written
    {
        // Our own last write has not reached the cache yet; its watch event brings the next reconcile.
        return Ok(Requeue::requeue(Duration::from_millis(200)));
    }
    let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &ns);
    let current = run.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    if Phase::parse(&current.phase).completed() {
        // Nothing more is measured: the stale-cache guard has nothing left to protect.
        if let Ok(mut w) = ctx.written.lock() {
            w.remove(&key);
        }
        return Ok(match rollup::ttl_deadline(&run.spec, &current) {
            Some(deadline) if deadline <= now => {
                info!(analysisrun = %name, namespace = %ns, "deleting: time to live after completion reached");
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
                Requeue::await_change()
            }
            Some(deadline) => Requeue::requeue(until(deadline, now)),
            None => Requeue::await_change(),
        });
    }

    let mut status = current.clone();
    let args = run.spec.args.clone().unwrap_or_default();
    let mut transitions = rollup::Assessment::default();
    let mut next = None;
    match check_spec(&run.spec) {
        Err(message) => {
            warn!(analysisrun = %name, namespace = %ns, "{message}");
            fail(&mut status, message, now);
            transitions.run = Some(Phase::Error);
        }
        Ok(CheckedSpec {
            metrics,
            dry_run,
            retention,
        }) => {
            if status.started_at.is_none() {
                status.started_at = Some(rollup::stamp(now));
            }
            let tasks = rollup::due_tasks(&run.spec, &status, &metrics, now);
            match measure(run, ctx, &args, &metrics, &dry_run, &mut status, tasks).await {
                Err(message) => {
                    let message = format!("Unable to resolve metric arguments: {message}");
                    warn!(analysisrun = %name, namespace = %ns, "{message}");
                    fail(&mut status, message, now);
                    transitions.run = Some(Phase::Error);
                }
                Ok(()) => {
                    let done = Timestamp::now();
                    transitions = rollup::assess_run(&run.spec, &mut status, &metrics, &dry_run, done);
                    rollup::trim_measurements(&mut status, &retention);
                    next = rollup::next_due(&status, &metrics, done);
                }
            }
        }
    }

    // The status first, then the events it tells of.
    if status != current {
        // Conditional on the version measured from: a run terminated meanwhile is looked at again, and the
        // events of a refused write are not told.
        let planned = run.metadata.resource_version.as_deref();
        let updated = crate::status_patch::write_at(&api, &name, planned, &current, &status).await?;
        if let (Ok(mut w), Some(rv)) = (ctx.written.lock(), resource_version(&updated)) {
            w.insert(key, rv);
        }
        let reference = run.object_ref(&());
        for t in &transitions.metrics {
            if t.phase.completed() {
                let warning = matches!(t.phase, Phase::Failed | Phase::Error);
                let message = format!("Metric '{}' Completed. Result: {}", t.metric, t.phase);
                publish(ctx, &reference, warning, &format!("Metric{}", t.phase), &message).await;
            }
        }
        if let Some(phase) = transitions.run.filter(|p| p.completed()) {
            let warning = matches!(phase, Phase::Failed | Phase::Error);
            info!(analysisrun = %name, namespace = %ns, phase = %phase, message = status.message.as_deref().unwrap_or(""), "analysis completed");
            publish(
                ctx,
                &reference,
                warning,
                &format!("AnalysisRun{phase}"),
                &format!("Analysis Completed. Result: {phase}"),
            )
            .await;
        }
    }
    let now = Timestamp::now();
    if Phase::parse(&status.phase).completed() {
        return Ok(match rollup::ttl_deadline(&run.spec, &status) {
            Some(deadline) => Requeue::requeue(until(deadline, now)),
            None => Requeue::await_change(),
        });
    }
    Ok(match next {
        Some(t) => Requeue::requeue(until(t, now)),
        // Nothing scheduled (e.g. a Job still running): its watch brings the run back.
        None => Requeue::requeue(Duration::from_secs(300)),
    })
}

fn until(t: Timestamp, now: Timestamp) -> Duration {
    let d = t.duration_since(now);
    Duration::try_from(d)
        .unwrap_or(Duration::ZERO)
        .max(Duration::from_millis(10))
}

async fn publish(
    ctx: &Context,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    warning: bool,
    reason: &str,
    message: &str,
) {
    if let Err(e) = ctx.events.publish(reference, warning, reason, message).await {
        warn!(error = %e, reason, "could not record event");
    }
}

/// Takes the due measurements concurrently and records them. Err only when the arguments (secrets) cannot be
/// resolved, which fails the whole run as upstream does.
async fn measure(
    run: &AnalysisRun,
    ctx: &Context,
    args: &[Argument],
    metrics: &[Metric],
    dry_run: &BTreeSet<String>,
    status: &mut AnalysisRunStatus,
    tasks: Vec<rollup::Task>,
) -> Result<(), String> {
    if tasks.is_empty() {
        return Ok(());
    }
    let ns = run.namespace().unwrap_or_default();
    let (values, secrets) = args_with_secrets(&ctx.client, &ns, args).await?;
    let terminating = rollup::is_terminating(&run.spec, status);
    let measurements = join_all(tasks.iter().map(|task| {
        let values = &values;
        let status = &*status;
        async move {
            let metric = resolve_metric(&run.spec.metrics[task.metric], values)?;
            let start = Timestamp::now();
            if task.resume.is_none() {
                let late = start.duration_since(task.due).as_secs_f64().max(0.0);
                ctx.metrics.measurement_delay.observe(late);
            }
            let p = &metric.provider;
            let m = if let Some(job_metric) = &p.job {
                match &task.resume {
                    Some(m) => job::resume(&ctx.client, m, terminating, start).await,
                    None => {
                        let taken = status
                            .metric_results
                            .iter()
                            .flatten()
                            .find(|r| r.name == metric.name)
                            .map(|r| r.count.unwrap_or(0) + r.error.unwrap_or(0))
                            .unwrap_or(0);
                        job::start(&ctx.client, run, &metric.name, job_metric, taken + 1, start).await
                    }
                }
            } else {
                let outcome = if let Some(prom) = &p.prometheus {
                    provider::prometheus::measure(prom).await
                } else if let Some(web) = &p.web {
                    provider::web::measure(web).await
                } else {
                    Err(provider::not_supported(&metric))
                };
                rollup::finish_measurement(&metric, start, outcome, Timestamp::now())
            };
            Ok::<_, String>((task, metric.name.clone(), m))
        }
    }))
    .await;
    for outcome in measurements {
        let (task, metric, mut m) = outcome?;
        if let Some(msg) = m.message.take() {
            m.message = Some(redact(&msg, &secrets));
        }
        if m.phase == Phase::Error.as_str() {
            warn!(analysisrun = %run.name_any(), namespace = %ns, metric = %metric, message = m.message.as_deref().unwrap_or(""), "measurement had an error");
        } else {
            debug!(analysisrun = %run.name_any(), metric = %metric, phase = %m.phase, value = m.value.as_deref().unwrap_or(""), "measured");
        }
        let _ = &metrics[task.metric];
        rollup::record(
            status,
            &metric,
            dry_run.contains(&metric),
            m,
            task.resume.is_some(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> AnalysisRunSpec {
        serde_json::from_value(json).expect("test spec")
    }

    #[test]
    fn analysisrun_spec_check_refuses_what_cannot_be_measured() {
        use serde_json::json;
        let prometheus = json!({"name": "rate", "provider": {"prometheus": {"query": "up"}}});
        let datadog = json!({"name": "dd", "provider": {"datadog": {"query": "avg:x"}}});
        let amp = json!({"name": "amp", "provider": {"prometheus": {
            "address": "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1", "query": "up",
            "authentication": {"sigv4": {"region": "eu-west-1"}}}}});
        let dd_refused = "Analysis spec invalid: metric \"dd\": provider Datadog is not supported by this \
                          controller (supported: prometheus, web, job)";
        let cases = [
            ("measurable", json!({"metrics": [prometheus]}), Ok(())),
            (
                "an unknown provider",
                json!({"metrics": [prometheus, datadog]}),
                Err(dd_refused.to_string()),
            ),
            (
                "an unknown provider in a dry-run metric",
                json!({"metrics": [prometheus, datadog], "dryRun": [{"metricName": "dd"}]}),
                Err(dd_refused.to_string()),
            ),
            (
                "an unsupported option",
                json!({"metrics": [amp]}),
                Err("Analysis spec invalid: metric \"amp\": provider Prometheus: authentication.sigv4 is not \
                     supported by this controller: address \
                     \"https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1\" is Amazon Managed \
                     Prometheus, whose requests must be signed with AWS SigV4"
                    .to_string()),
            ),
            (
                "an option given by an argument",
                json!({"args": [{"name": "method", "value": "DELETE"}],
                       "metrics": [{"name": "w", "provider": {"web": {"url": "http://w", "method": "{{args.method}}"}}}]}),
                Err("Analysis spec invalid: metric \"w\": provider Web: method \"DELETE\" is not supported: use \
                     GET, POST or PUT"
                    .to_string()),
            ),
            (
                "the shape of the metrics is checked first",
                json!({"metrics": [datadog.clone(), datadog]}),
                Err("Analysis spec invalid: two metrics have the same name 'dd'".to_string()),
            ),
        ];
        for (case, json, want) in cases {
            assert_eq!(check_spec(&spec(json)).map(|_| ()), want, "{case}");
        }
    }
}
