//! The pure half of an AnalysisRun reconcile: which measurements are due, how a finished measurement is counted,
//! how measurements roll up into a metric phase and metric phases into the run's phase, which measurements are
//! kept, and when the run must be looked at again. No client and no clock: `now` is passed in.
//!
//! The rules are upstream's (analysis/analysis.go): a metric fails when `failed > failureLimit`, is inconclusive
//! when `inconclusive > inconclusiveLimit`, errors when `consecutiveError > consecutiveErrorLimit` (later checks
//! win), succeeds on `consecutiveSuccessLimit` or when its count is reached; the run takes the worst phase of its
//! non-dry-run metrics once all are complete, and stops measuring as soon as one of them fails, errors or is
//! inconclusive.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::{
    apimachinery::pkg::{apis::meta::v1::Time, util::intstr::IntOrString},
    jiff::{SignedDuration, Timestamp},
};
use sluice_crds::analysis::{
    AnalysisRunSpec, AnalysisRunStatus, Measurement, Metric, MetricResult, RunSummary,
};

use crate::{Phase, condition, duration::parse_go_duration, provider::Reading};

/// Measurements kept per metric unless `measurementRetention` says otherwise.
pub const DEFAULT_MEASUREMENT_HISTORY: usize = 10;
/// An errored measurement is retried after this long, whatever the interval.
pub const ERROR_RETRY_INTERVAL: Duration = Duration::from_secs(10);
/// `consecutiveErrorLimit` when the metric does not set one.
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i32 = 4;

/// A timestamp as the API stores it (whole seconds), so that what is planned equals what is read back.
pub fn stamp(now: Timestamp) -> Time {
    Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
}

fn after(t: &Time, d: Duration) -> Timestamp {
    t.0.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

fn int_value(v: &IntOrString) -> Option<i32> {
    match v {
        IntOrString::Int(i) => Some(*i),
        IntOrString::String(s) => s.trim().parse().ok(),
    }
}

fn limit(v: &Option<IntOrString>, default: i32) -> i32 {
    v.as_ref().and_then(int_value).unwrap_or(default)
}

/// `failureLimit` (default 0; negative disables it).
pub fn failure_limit(m: &Metric) -> i32 {
    limit(&m.failure_limit, 0)
}

/// `inconclusiveLimit` (default 0; negative disables it).
pub fn inconclusive_limit(m: &Metric) -> i32 {
    limit(&m.inconclusive_limit, 0)
}

/// `consecutiveErrorLimit` (default 4; negative disables it).
pub fn consecutive_error_limit(m: &Metric) -> i32 {
    limit(&m.consecutive_error_limit, DEFAULT_CONSECUTIVE_ERROR_LIMIT)
}

/// `consecutiveSuccessLimit` (default 0: off).
pub fn consecutive_success_limit(m: &Metric) -> i32 {
    limit(&m.consecutive_success_limit, 0)
}

/// How many measurements the metric takes: neither count nor interval → 1; interval only → unlimited (None).
pub fn effective_count(m: &Metric) -> Option<i32> {
    match (&m.count, m.interval.as_deref().filter(|s| !s.is_empty())) {
        (Some(c), _) => Some(int_value(c).unwrap_or(0)),
        (None, None) => Some(1),
        (None, Some(_)) => None,
    }
}

fn interval(m: &Metric) -> Option<Duration> {
    m.interval
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(parse_go_duration)
}

fn initial_delay(m: &Metric) -> Option<Duration> {
    m.initial_delay
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(parse_go_duration)
}

fn provider_count(m: &Metric) -> usize {
    let p = &m.provider;
    [
        p.prometheus.is_some(),
        p.web.is_some(),
        p.job.is_some(),
        p.kayenta.is_some(),
        p.datadog.is_some(),
        p.new_relic.is_some(),
        p.wavefront.is_some(),
        p.cloud_watch.is_some(),
        p.graphite.is_some(),
        p.influxdb.is_some(),
        p.skywalking.is_some(),
        p.plugin.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count()
}

/// The provider type name used in metrics and messages (`Prometheus`, `Web`, `Job`, ...).
pub fn provider_type(m: &Metric) -> &'static str {
    let p = &m.provider;
    if p.prometheus.is_some() {
        "Prometheus"
    } else if p.web.is_some() {
        "Web"
    } else if p.job.is_some() {
        "Job"
    } else if p.kayenta.is_some() {
        "Kayenta"
    } else if p.datadog.is_some() {
        "Datadog"
    } else if p.new_relic.is_some() {
        "NewRelic"
    } else if p.wavefront.is_some() {
        "Wavefront"
    } else if p.cloud_watch.is_some() {
        "CloudWatch"
    } else if p.graphite.is_some() {
        "Graphite"
    } else if p.influxdb.is_some() {
        "Influxdb"
    } else if p.skywalking.is_some() {
        "SkyWalking"
    } else if p.plugin.is_some() {
        "Plugin"
    } else {
        ""
    }
}

/// Checks the metrics as upstream's `ValidateMetrics` does (messages as upstream's, prefixed `metrics[i]`).
pub fn validate_metrics(metrics: &[Metric]) -> Result<(), String> {
    if metrics.is_empty() {
        return Err("no metrics specified".into());
    }
    let mut names = BTreeSet::new();
    for (i, m) in metrics.iter().enumerate() {
        if !names.insert(m.name.as_str()) {
            return Err(format!("two metrics have the same name '{}'", m.name));
        }
        if let Some(s) = m.interval.as_deref().filter(|s| !s.is_empty())
            && parse_go_duration(s).is_none()
        {
            return Err(format!("metrics[{i}]: invalid interval string: {s:?}"));
        }
        if let Some(s) = m.initial_delay.as_deref().filter(|s| !s.is_empty())
            && parse_go_duration(s).is_none()
        {
            return Err(format!("metrics[{i}]: invalid startDelay value: {s:?}"));
        }
        for (field, value) in [
            ("count", &m.count),
            ("failureLimit", &m.failure_limit),
            ("inconclusiveLimit", &m.inconclusive_limit),
            ("consecutiveErrorLimit", &m.consecutive_error_limit),
            ("consecutiveSuccessLimit", &m.consecutive_success_limit),
        ] {
            if let Some(v) = value
                && int_value(v).is_none()
            {
                return Err(format!("metrics[{i}]: {field} must be an integer, got {v:?}"));
            }
        }
        if let Some(count) = effective_count(m) {
            if count < failure_limit(m) {
                return Err(format!("metrics[{i}]: count must be >= failureLimit"));
            }
            if count < inconclusive_limit(m) {
                return Err(format!("metrics[{i}]: count must be >= inconclusiveLimit"));
            }
            if count > 1 && interval(m).is_none() {
                return Err(format!("metrics[{i}]: interval must be specified when count > 1"));
            }
        }
        match provider_count(m) {
            0 => return Err(format!("metrics[{i}]: no provider specified")),
            1 => {}
            _ => return Err(format!("metrics[{i}]: multiple providers specified")),
        }
    }
    Ok(())
}

/// Names of the dry-run metrics (`metricName: "*"` selects all); an entry naming no metric is an error.
pub fn dry_run_metrics(spec: &AnalysisRunSpec, metrics: &[Metric]) -> Result<BTreeSet<String>, String> {
    let mut set = BTreeSet::new();
    for (i, d) in spec.dry_run.iter().flatten().enumerate() {
        if d.metric_name == "*" {
            set.extend(metrics.iter().map(|m| m.name.clone()));
        } else if metrics.iter().any(|m| m.name == d.metric_name) {
            set.insert(d.metric_name.clone());
        } else {
            return Err(format!(
                "dryRun[{i}]: analysis references metric '{}' which is not present in the template",
                d.metric_name
            ));
        }
    }
    Ok(set)
}

/// Measurements kept per metric name (`metricName: "*"` applies to all).
pub fn retention(spec: &AnalysisRunSpec, metrics: &[Metric]) -> Result<BTreeMap<String, usize>, String> {
    let mut map = BTreeMap::new();
    for (i, r) in spec.measurement_retention.iter().flatten().enumerate() {
        let keep = usize::try_from(r.limit).unwrap_or(0);
        if r.metric_name == "*" {
            for m in metrics {
                map.entry(m.name.clone()).or_insert(keep);
            }
        } else if metrics.iter().any(|m| m.name == r.metric_name) {
            map.insert(r.metric_name.clone(), keep);
        } else {
            return Err(format!(
                "measurementRetention[{i}]: analysis references metric '{}' which is not present in the template",
                r.metric_name
            ));
        }
    }
    Ok(map)
}

fn result<'a>(status: &'a AnalysisRunStatus, name: &str) -> Option<&'a MetricResult> {
    status.metric_results.iter().flatten().find(|r| r.name == name)
}

fn result_mut<'a>(status: &'a mut AnalysisRunStatus, name: &str) -> Option<&'a mut MetricResult> {
    status
        .metric_results
        .iter_mut()
        .flatten()
        .find(|r| r.name == name)
}

fn n(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// Whether the run stops measuring: `spec.terminate`, or a non-dry-run metric already Failed, Error or
/// Inconclusive.
pub fn is_terminating(spec: &AnalysisRunSpec, status: &AnalysisRunStatus) -> bool {
    spec.terminate == Some(true)
        || status.metric_results.iter().flatten().any(|r| {
            r.dry_run != Some(true)
                && matches!(
                    Phase::parse(&r.phase),
                    Phase::Failed | Phase::Error | Phase::Inconclusive
                )
        })
}

/// A measurement to take now: the metric (by index) and, when an unfinished one is resumed, that measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Index into the run's metrics.
    pub metric: usize,
    /// The unfinished measurement to resume (asynchronous providers such as Job).
    pub resume: Option<Measurement>,
    /// When the measurement was due (for the delay histogram).
    pub due: Timestamp,
}

/// The measurements due at `now` (upstream's `generateMetricTasks`).
pub fn due_tasks(
    spec: &AnalysisRunSpec,
    status: &AnalysisRunStatus,
    metrics: &[Metric],
    now: Timestamp,
) -> Vec<Task> {
    let terminating = is_terminating(spec, status);
    let mut tasks = Vec::new();
    for (i, m) in metrics.iter().enumerate() {
        let res = result(status, &m.name);
        if res.is_some_and(|r| Phase::parse(&r.phase).completed()) {
            continue;
        }
        let last = res.and_then(|r| r.measurements.as_ref()).and_then(|ms| ms.last());
        if let Some(last) = last.filter(|l| l.finished_at.is_none()) {
            let resume_at = last.resume_at.as_ref().map(|t| t.0);
            if resume_at.is_none_or(|t| t <= now) {
                tasks.push(Task {
                    metric: i,
                    resume: Some(last.clone()),
                    due: resume_at.unwrap_or(now),
                });
            }
            continue;
        }
        if terminating {
            continue;
        }
        let Some(last) = last else {
            let due = match (initial_delay(m), &status.started_at) {
                (Some(d), Some(started)) => after(started, d),
                (Some(_), None) => continue,
                (None, _) => status.started_at.as_ref().map(|t| t.0).unwrap_or(now),
            };
            if due <= now {
                tasks.push(Task {
                    metric: i,
                    resume: None,
                    due,
                });
            }
            continue;
        };
        if let Some(count) = effective_count(m)
            && res.map(|r| n(r.count)).unwrap_or(0) >= count
        {
            continue;
        }
        let wait = if Phase::parse(&last.phase) == Phase::Error {
            ERROR_RETRY_INTERVAL
        } else {
            interval(m).unwrap_or(ERROR_RETRY_INTERVAL)
        };
        let Some(finished) = &last.finished_at else {
            continue;
        };
        let due = after(finished, wait);
        if due <= now {
            tasks.push(Task {
                metric: i,
                resume: None,
                due,
            });
        }
    }
    tasks
}

/// Turns what a provider read (or its error) into a finished measurement, evaluating the metric's conditions.
pub fn finish_measurement(
    metric: &Metric,
    started: Timestamp,
    outcome: Result<Reading, String>,
    now: Timestamp,
) -> Measurement {
    let mut m = Measurement {
        started_at: Some(stamp(started)),
        finished_at: Some(stamp(now)),
        ..Measurement::default()
    };
    match outcome {
        Err(message) => {
            m.phase = Phase::Error.to_string();
            m.message = Some(message);
        }
        Ok(reading) => {
            m.value = Some(reading.value.clone());
            if !reading.metadata.is_empty() {
                m.metadata = Some(reading.metadata.clone());
            }
            match condition::evaluate(
                metric.success_condition.as_deref(),
                metric.failure_condition.as_deref(),
                &reading.result,
            ) {
                Ok(phase) => m.phase = phase.to_string(),
                Err(message) => {
                    m.phase = Phase::Error.to_string();
                    m.message = Some(message);
                }
            }
        }
    }
    m
}

/// Adds a measurement to its metric's result (replacing the resumed one) and updates the counters as upstream's
/// `runMeasurements` does. A new metric result starts Running.
pub fn record(
    status: &mut AnalysisRunStatus,
    metric: &str,
    dry_run: bool,
    measurement: Measurement,
    resumed: bool,
) {
    if result(status, metric).is_none() {
        status
            .metric_results
            .get_or_insert_with(Vec::new)
            .push(MetricResult {
                name: metric.to_string(),
                phase: Phase::Running.to_string(),
                dry_run: dry_run.then_some(true),
                ..MetricResult::default()
            });
    }
    let Some(r) = result_mut(status, metric) else {
        return;
    };
    let bump = |v: &mut Option<i32>| *v = Some(n(*v) + 1);
    match Phase::parse(&measurement.phase) {
        Phase::Successful => {
            bump(&mut r.successful);
            bump(&mut r.count);
            bump(&mut r.consecutive_success);
            r.consecutive_error = None;
        }
        Phase::Failed => {
            bump(&mut r.failed);
            bump(&mut r.count);
            r.consecutive_success = None;
            r.consecutive_error = None;
        }
        Phase::Inconclusive => {
            bump(&mut r.inconclusive);
            bump(&mut r.count);
            r.consecutive_success = None;
            r.consecutive_error = None;
        }
        Phase::Error => {
            bump(&mut r.error);
            bump(&mut r.consecutive_error);
        }
        Phase::Pending | Phase::Running => {}
    }
    let list = r.measurements.get_or_insert_with(Vec::new);
    if resumed && !list.is_empty() {
        let last = list.len() - 1;
        list[last] = measurement;
    } else {
        list.push(measurement);
    }
}

/// Failed, Inconclusive or Error by the metric's limits, with the reason (upstream's
/// `assessMetricFailureInconclusiveOrError`; later checks win).
pub fn limit_breach(metric: &Metric, r: &MetricResult) -> Option<(Phase, String)> {
    let mut breach = None;
    let failure = failure_limit(metric);
    if failure >= 0 && n(r.failed) > failure {
        breach = Some((
            Phase::Failed,
            format!("failed ({}) > failureLimit ({failure})", n(r.failed)),
        ));
    }
    let inconclusive = inconclusive_limit(metric);
    if inconclusive >= 0 && n(r.inconclusive) > inconclusive {
        breach = Some((
            Phase::Inconclusive,
            format!(
                "inconclusive ({}) > inconclusiveLimit ({inconclusive})",
                n(r.inconclusive)
            ),
        ));
    }
    let errors = consecutive_error_limit(metric);
    if errors >= 0 && n(r.consecutive_error) > errors {
        breach = Some((
            Phase::Error,
            format!(
                "consecutiveErrors ({}) > consecutiveErrorLimit ({errors})",
                n(r.consecutive_error)
            ),
        ));
    }
    breach
}

/// The phase of one metric from its measurements (upstream's `assessMetricStatus`).
pub fn assess_metric(metric: &Metric, r: &MetricResult, terminating: bool) -> Phase {
    let current = Phase::parse(&r.phase);
    if current.completed() {
        return current;
    }
    let Some(last) = r.measurements.as_ref().and_then(|m| m.last()) else {
        return if terminating {
            Phase::Successful
        } else {
            Phase::Pending
        };
    };
    if !Phase::parse(&last.phase).completed() {
        return Phase::Running;
    }
    if let Some((phase, _)) = limit_breach(metric, r) {
        return phase;
    }
    let success_limit = consecutive_success_limit(metric);
    if success_limit > 0 && n(r.consecutive_success) >= success_limit {
        return Phase::Successful;
    }
    if let Some(count) = effective_count(metric)
        && n(r.count) >= count
    {
        if success_limit > 0 {
            // The count ran out before enough consecutive successes: with a failure limit in force too that is
            // neither a pass nor a fail; with the success limit alone it is a fail.
            return if failure_limit(metric) >= 0 {
                Phase::Inconclusive
            } else {
                Phase::Failed
            };
        }
        return Phase::Successful;
    }
    if terminating {
        Phase::Successful
    } else {
        Phase::Running
    }
}

/// A metric that changed phase in an assessment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// Metric name.
    pub metric: String,
    /// Its new phase.
    pub phase: Phase,
}

/// What an assessment decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assessment {
    /// Metrics whose phase changed.
    pub metrics: Vec<Transition>,
    /// The run's new phase when it changed.
    pub run: Option<Phase>,
}

fn summary_add(s: &mut RunSummary, phase: Option<Phase>) {
    let bump = |v: &mut Option<i32>| *v = Some(n(*v) + 1);
    match phase {
        Some(Phase::Error) => bump(&mut s.error),
        Some(Phase::Failed) => bump(&mut s.failed),
        Some(Phase::Inconclusive) => bump(&mut s.inconclusive),
        _ => bump(&mut s.successful),
    }
}

fn zero_summary() -> RunSummary {
    RunSummary {
        count: Some(0),
        successful: Some(0),
        failed: Some(0),
        inconclusive: Some(0),
        error: Some(0),
    }
}

fn last_value(r: &MetricResult) -> Option<&str> {
    r.measurements
        .iter()
        .flatten()
        .rev()
        .find_map(|m| m.value.as_deref())
        .filter(|v| !v.is_empty())
}

/// Rolls the metric results up into the run's phase and message (upstream's `assessRunStatus`): sets
/// `startedAt`, the metric phases and messages, `runSummary` and `dryRunSummary`, and — when the phase changes —
/// `phase`, `message` and, for a final phase, `completedAt`.
pub fn assess_run(
    spec: &AnalysisRunSpec,
    status: &mut AnalysisRunStatus,
    metrics: &[Metric],
    dry_run: &BTreeSet<String>,
    now: Timestamp,
) -> Assessment {
    let was_terminating = is_terminating(spec, status);
    let mut out = assess_pass(spec, status, metrics, dry_run, now, was_terminating);
    if !was_terminating && is_terminating(spec, status) {
        // A metric just failed: the run stops now rather than one reconcile later.
        let again = assess_pass(spec, status, metrics, dry_run, now, true);
        out.metrics.extend(again.metrics);
        out.run = again.run.or(out.run);
    }
    out
}

fn assess_pass(
    spec: &AnalysisRunSpec,
    status: &mut AnalysisRunStatus,
    metrics: &[Metric],
    dry_run: &BTreeSet<String>,
    now: Timestamp,
    terminating: bool,
) -> Assessment {
    let mut out = Assessment::default();
    if status.started_at.is_none() {
        status.started_at = Some(stamp(now));
    }
    let mut worst: Option<Phase> = None;
    let mut worst_message = if spec.terminate == Some(true) {
        "Run Terminated".to_string()
    } else {
        String::new()
    };
    let mut everything_completed = true;
    let mut summary = zero_summary();
    let mut dry_summary = zero_summary();
    for m in metrics {
        let is_dry = dry_run.contains(&m.name);
        let s = if is_dry { &mut dry_summary } else { &mut summary };
        s.count = Some(n(s.count) + 1);
        let Some(r) = result_mut(status, &m.name) else {
            everything_completed = false;
            continue;
        };
        let phase = assess_metric(m, r, terminating);
        if Phase::parse(&r.phase) != phase {
            if let Some(last) = r.measurements.as_ref().and_then(|ms| ms.last()) {
                r.message = last.message.clone().filter(|s| !s.is_empty());
            }
            r.phase = phase.to_string();
            out.metrics.push(Transition {
                metric: m.name.clone(),
                phase,
            });
        }
        if !phase.completed() {
            everything_completed = false;
            continue;
        }
        let breach = limit_breach(m, r);
        if is_dry {
            worst.get_or_insert(Phase::Successful);
            if let Some((p, why)) = &breach {
                r.message = Some(format!("Metric assessed {p} due to {why}"));
            }
            summary_add(&mut dry_summary, breach.map(|b| b.0));
            continue;
        }
        if worst.is_none_or(|w| phase.severity() > w.severity()) {
            worst = Some(phase);
            if let Some((_, why)) = &breach {
                let mut msg = format!("Metric \"{}\" assessed {phase} due to {why}", m.name);
                if let Some(err) = r.message.as_deref().filter(|s| !s.is_empty()) {
                    msg.push_str(&format!(": \"Error Message: {err}\""));
                } else if let Some(value) = last_value(r) {
                    msg.push_str(&format!(": last measured value {value}"));
                }
                worst_message = msg;
            }
        }
        summary_add(&mut summary, breach.map(|b| b.0));
    }
    status.run_summary = Some(summary);
    status.dry_run_summary = Some(dry_summary);
    let (phase, message) = if terminating {
        (
            worst.unwrap_or(Phase::Successful),
            worst_message.trim().to_string(),
        )
    } else if !everything_completed || worst.is_none() {
        (Phase::Running, String::new())
    } else {
        (worst.unwrap_or(Phase::Running), worst_message.trim().to_string())
    };
    if Phase::parse(&status.phase) != phase || status.phase.is_empty() {
        status.phase = phase.to_string();
        status.message = Some(message).filter(|m| !m.is_empty());
        if phase.completed() {
            status.completed_at = Some(stamp(now));
        }
        out.run = Some(phase);
    }
    out
}

/// Drops the oldest measurements beyond each metric's retention.
pub fn trim_measurements(status: &mut AnalysisRunStatus, retention: &BTreeMap<String, usize>) {
    for r in status.metric_results.iter_mut().flatten() {
        let keep = retention
            .get(&r.name)
            .copied()
            .filter(|k| *k > 0)
            .unwrap_or(DEFAULT_MEASUREMENT_HISTORY);
        if let Some(list) = r.measurements.as_mut()
            && list.len() > keep
        {
            list.drain(..list.len() - keep);
        }
    }
}

/// When the next measurement of a still running run is due (upstream's `calculateNextReconcileTime`).
pub fn next_due(status: &AnalysisRunStatus, metrics: &[Metric], now: Timestamp) -> Option<Timestamp> {
    let mut next: Option<Timestamp> = None;
    let mut consider = |t: Timestamp| {
        if next.is_none_or(|n| t < n) {
            next = Some(t);
        }
    };
    for m in metrics {
        let res = result(status, &m.name);
        if res.is_some_and(|r| Phase::parse(&r.phase).completed()) {
            continue;
        }
        let Some(last) = res.and_then(|r| r.measurements.as_ref()).and_then(|ms| ms.last()) else {
            if let Some(d) = initial_delay(m) {
                let start = status.started_at.clone().unwrap_or(Time(now));
                consider(after(&start, d));
            }
            continue;
        };
        let Some(finished) = &last.finished_at else {
            if let Some(resume) = &last.resume_at {
                consider(resume.0);
            }
            continue;
        };
        if let Some(count) = effective_count(m)
            && res.map(|r| n(r.count)).unwrap_or(0) >= count
        {
            continue;
        }
        let wait = if Phase::parse(&last.phase) == Phase::Error {
            Some(ERROR_RETRY_INTERVAL)
        } else {
            interval(m)
        };
        if let Some(wait) = wait {
            consider(after(finished, wait));
        }
    }
    next
}

/// When a completed run is to be deleted under its `ttlStrategy` (None: kept).
pub fn ttl_deadline(spec: &AnalysisRunSpec, status: &AnalysisRunStatus) -> Option<Timestamp> {
    let ttl = spec.ttl_strategy.as_ref()?;
    let phase = Phase::parse(&status.phase);
    if !phase.completed() {
        return None;
    }
    let seconds = match phase {
        Phase::Successful => ttl.seconds_after_success.or(ttl.seconds_after_completion),
        Phase::Failed | Phase::Error | Phase::Inconclusive => {
            ttl.seconds_after_failure.or(ttl.seconds_after_completion)
        }
        _ => None,
    }?;
    let completed = status.completed_at.as_ref()?;
    Some(after(
        completed,
        Duration::from_secs(u64::try_from(seconds).unwrap_or(0)),
    ))
}

#[cfg(test)]
#[path = "rollup_tests.rs"]
mod tests;
