//! `sluice-e2e bench-analysis`: N AnalysisRuns, each measuring one Prometheus metric every second until it is
//! terminated, against the real Prometheus on the local control plane.
//!
//! Setup: a fresh control plane (one kwok node: no pods are involved), [`TrafficCounters`] serving one service
//! at a 0.99 success ratio, Prometheus scraping them every second, the CRDs, and the operator given by
//! `--sluice`, run as `sluice run --namespace bench --metrics-addr 127.0.0.1:<port> --healthz-addr ...` with
//! `ARGO_ROLLOUTS_PROMETHEUS_ADDRESS` set. Once Prometheus answers the success-rate query, N AnalysisRuns are
//! created in parallel batches of 50, each with one metric: `interval: 1s`, no count,
//! `successCondition: result[0] >= 0.95`, provider prometheus with its address and [`success_rate_query`].
//!
//! When every run has its first measurement, a window of `--seconds` starts. At its end the bench reads:
//! - throughput: the measurements taken in the window (the growth of Σ `metricResults[].count + error` over
//!   all runs), per second, against the ideal of N per second (one per run per interval);
//! - delay: the window's increase of the operator's `analysis_run_measurement_delay_seconds` histogram
//!   (seconds from when a measurement was due to when it started), its mean and p50/p99 estimated from the
//!   buckets as PromQL's `histogram_quantile` does;
//! - lag from the statuses, a coarse cross-check: `measurements[i].startedAt − (measurements[i−1].finishedAt
//!   + 1 s)` over the measurements the runs retain (the timestamps have 1 s resolution);
//! - cost: the operator's peak RSS and CPU seconds over the whole run, the share of a core that the
//!   operator, kube-apiserver, etcd and Prometheus used during the window, and the API server's requests per
//!   second for Argo kinds by verb (from its own `apiserver_request_total`).
//!
//! Then it sets `spec.terminate: true` on every run and reports the seconds until all are Successful.
//!
//! A measurement, not a test: it asserts nothing about speed.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use sluice_crds::analysis::AnalysisRun;
use tokio::process::{Child, Command};

use crate::{
    bench::proc_stats,
    cluster::{ControlPlane, Options, wait_for},
    harness::{install_crds, kubectl},
    prometheus::{Prometheus, TrafficCounters, success_rate_query},
};

/// The namespace of the runs.
const NAMESPACE: &str = "bench";
/// The service whose success rate every run measures.
const SERVICE: &str = "canary";
/// The name of the operator's measurement-delay histogram.
pub const DELAY_HISTOGRAM: &str = "analysis_run_measurement_delay_seconds";
/// Runs created (and terminated) concurrently.
const BATCH: usize = 50;

/// Mean and quantiles of a set of delays, seconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DelayStats {
    /// Observations.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest observation, when known (not from a histogram).
    pub max: Option<f64>,
}

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    /// AnalysisRuns.
    pub count: usize,
    /// Seconds from the first create until every run had a measurement.
    pub first_measured_secs: f64,
    /// Length of the measuring window, seconds: between the middles of the two lists of runs that count the
    /// measurements, so a little longer than asked (a list of many runs takes seconds on a busy API server).
    pub window_secs: f64,
    /// Measurements taken in the window (with or without error).
    pub measurements: u64,
    /// Of those, measurements that ended in Error.
    pub errors: u64,
    /// Measurements per second in the window.
    pub per_sec: f64,
    /// The ideal: one measurement per run per second.
    pub ideal_per_sec: f64,
    /// The operator's delay histogram over the window; `None` when the operator does not export it.
    pub delay: Option<DelayStats>,
    /// Seconds between the two readings of the histogram (and of the CPU times): they are taken between
    /// the two lists, so this is a little shorter than the window.
    pub delay_window_secs: f64,
    /// Lag computed from the statuses' timestamps at the end of the window.
    pub status_lag: Option<DelayStats>,
    /// Seconds from setting `terminate` on every run until all were Successful; `None` if they were not
    /// within the time allowed.
    pub terminate_secs: Option<f64>,
    /// Operator peak resident memory, MiB.
    pub peak_rss_mib: f64,
    /// Operator CPU seconds (user + system) over the whole run.
    pub cpu_secs: f64,
    /// Share of one core used during the window, percent, by component: sluice, kube-apiserver, etcd,
    /// prometheus.
    pub window_cpu_percent: Vec<(String, f64)>,
    /// API requests the operator sent over the whole run, when it logs them at shutdown.
    pub api_requests: Option<u64>,
    /// Requests per second the API server served in the window for Argo kinds (from everyone, the bench's
    /// two lists included), by `VERB resource[/subresource]`, busiest first.
    pub api_server_rates: Vec<(String, f64)>,
}

impl Report {
    /// The header of the table's first line, aligned with [`Report`]'s `Display`.
    pub const HEADER: &'static str =
        "runs  window-s  measurements  errors   meas/s  ideal/s  achieved  first-measured-s  terminate-s";
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let achieved = if self.ideal_per_sec > 0.0 {
            100.0 * self.per_sec / self.ideal_per_sec
        } else {
            0.0
        };
        let terminate = self
            .terminate_secs
            .map_or_else(|| "not all".to_string(), |s| format!("{s:.1}"));
        writeln!(
            f,
            "{:>4}  {:>8.1}  {:>12}  {:>6}  {:>7.1}  {:>7.1}  {:>7.1}%  {:>16.1}  {:>11}",
            self.count,
            self.window_secs,
            self.measurements,
            self.errors,
            self.per_sec,
            self.ideal_per_sec,
            achieved,
            self.first_measured_secs,
            terminate
        )?;
        match &self.delay {
            Some(d) => writeln!(
                f,
                "      delay, operator histogram: n={} ({:.1}/s) mean {:.1} ms, p50 {:.1} ms, p99 {:.1} ms",
                d.count,
                d.count as f64 / self.delay_window_secs.max(f64::MIN_POSITIVE),
                d.mean * 1e3,
                d.p50 * 1e3,
                d.p99 * 1e3
            )?,
            None => writeln!(f, "      delay, operator histogram: not exported")?,
        }
        match &self.status_lag {
            Some(d) => writeln!(
                f,
                "      lag from statuses (1 s resolution): n={} mean {:.2} s, p50 {:.0} s, p99 {:.0} s, max {:.0} s",
                d.count,
                d.mean,
                d.p50,
                d.p99,
                d.max.unwrap_or(f64::NAN)
            )?,
            None => writeln!(f, "      lag from statuses: no consecutive measurements")?,
        }
        let cpu: Vec<String> = self
            .window_cpu_percent
            .iter()
            .map(|(name, pct)| format!("{name} {pct:.0}%"))
            .collect();
        let requests = self
            .api_requests
            .map_or_else(String::new, |r| format!(", {r} API requests"));
        write!(
            f,
            "      operator: peak RSS {:.1} MiB, {:.1} CPU-s in all{requests}; CPU in the window: {}",
            self.peak_rss_mib,
            self.cpu_secs,
            cpu.join(", ")
        )?;
        if !self.api_server_rates.is_empty() {
            let rates: Vec<String> = self
                .api_server_rates
                .iter()
                .take(5)
                .map(|(what, rate)| format!("{what} {rate:.1}/s"))
                .collect();
            write!(f, "\n      API server in the window: {}", rates.join(", "))?;
        }
        Ok(())
    }
}

/// The AnalysisRun of the benchmark: one Prometheus metric every second, until terminated.
pub fn analysis_run(name: &str, prometheus_url: &str) -> serde_json::Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": name},
        "spec": {
            "metrics": [{
                "name": "success-rate",
                "interval": "1s",
                "successCondition": "result[0] >= 0.95",
                "provider": {"prometheus": {
                    "address": prometheus_url,
                    "query": success_rate_query(SERVICE)
                }}
            }]
        }
    })
}

/// Runs the benchmark with `count` AnalysisRuns and a measuring window of `seconds`. The working directory
/// (the operator's, Prometheus's and the control plane's logs) is removed afterwards unless the run failed or
/// `keep` is set.
pub async fn run(bin_dir: PathBuf, sluice: &Path, count: usize, seconds: u64, keep: bool) -> Result<Report> {
    let dir = std::env::temp_dir().join(format!("sluice-bench-analysis-{}-{count}", std::process::id()));
    eprintln!("bench-analysis: starting a control plane");
    let mut cp = ControlPlane::start(&Options {
        dir: dir.clone(),
        bin_dir,
        nodes: 1,
    })
    .await?;
    let result = measure(&cp, sluice, count, seconds, &dir).await;
    cp.stop().await;
    if result.is_ok() && !keep {
        std::fs::remove_dir_all(&dir).ok();
    } else {
        eprintln!("bench-analysis: logs kept in {}", dir.display());
    }
    result
}

/// The operator under measurement; killed when dropped.
struct Operator {
    child: Child,
    pid: u32,
    log: PathBuf,
    metrics_url: String,
}

impl Operator {
    async fn start(sluice: &Path, kubeconfig: &Path, prometheus_url: &str, dir: &Path) -> Result<Self> {
        let free_port =
            || -> Result<u16> { Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()) };
        let (port, healthz_port) = (free_port()?, free_port()?);
        let log = dir.join("operator.log");
        let mut cmd = Command::new(sluice);
        cmd.args(["run", "--namespace", NAMESPACE, "--kubeconfig"])
            .arg(kubeconfig)
            .arg(format!("--metrics-addr=127.0.0.1:{port}"))
            .arg(format!("--healthz-addr=127.0.0.1:{healthz_port}"))
            .env("ARGO_ROLLOUTS_PROMETHEUS_ADDRESS", prometheus_url)
            .env("SLUICE_LOG_LEVEL", "warn,sluice::run=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true);
        crate::process::die_with_parent(cmd.as_std_mut());
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", sluice.display()))?;
        let pid = child.id().context("operator pid")?;
        let mut op = Operator {
            child,
            pid,
            log,
            metrics_url: format!("http://127.0.0.1:{port}/metrics"),
        };
        let ready = wait_for("the operator's /metrics", Duration::from_secs(30), || {
            let exited = op.child.try_wait().ok().flatten();
            let url = op.metrics_url.clone();
            async move {
                if let Some(status) = exited {
                    return Err(anyhow!("the operator exited with {status}"));
                }
                reqwest::get(url).await?.error_for_status()?;
                Ok(())
            }
        })
        .await;
        if let Err(e) = ready {
            bail!("{e:#}; its log ends with:\n{}", op.log_tail(20));
        }
        Ok(op)
    }

    async fn metrics(&self) -> Result<String> {
        Ok(reqwest::get(&self.metrics_url)
            .await?
            .error_for_status()?
            .text()
            .await?)
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stops the operator with SIGTERM (as a Deployment would) and returns the API requests it logged.
    async fn shutdown(mut self) -> Result<Option<u64>> {
        std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?;
        let _ = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut problems: BTreeMap<String, usize> = BTreeMap::new();
        let mut requests = None;
        for v in text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        {
            if let Some(r) = v["fields"]["api_requests"].as_u64() {
                requests = Some(r);
            }
            if matches!(v["level"].as_str(), Some("WARN" | "ERROR")) {
                let message = v["fields"]["message"].as_str().unwrap_or_default().to_string();
                *problems.entry(message).or_default() += 1;
            }
        }
        for (message, n) in problems.iter().take(10) {
            eprintln!("bench-analysis: the operator logged {n}× at WARN/ERROR: {message}");
        }
        if problems.len() > 10 {
            eprintln!(
                "bench-analysis: ... and {} other WARN/ERROR messages",
                problems.len() - 10
            );
        }
        Ok(requests)
    }
}

/// Totals over all runs at one moment.
#[derive(Debug, Default)]
struct Totals {
    measurements: u64,
    errors: u64,
    measured_runs: usize,
    phases: BTreeMap<String, usize>,
}

fn totals(runs: &[AnalysisRun]) -> Totals {
    let mut t = Totals::default();
    for run in runs {
        let status = run.status.as_ref();
        let phase = status.map(|s| s.phase.clone()).unwrap_or_default();
        *t.phases.entry(phase).or_default() += 1;
        let mut taken = 0;
        for m in status
            .and_then(|s| s.metric_results.as_ref())
            .into_iter()
            .flatten()
        {
            let errors = m.error.unwrap_or(0).max(0) as u64;
            taken += m.count.unwrap_or(0).max(0) as u64 + errors;
            t.errors += errors;
        }
        t.measurements += taken;
        if taken > 0 {
            t.measured_runs += 1;
        }
    }
    t
}

/// `startedAt − (previous finishedAt + interval)` of every pair of consecutive retained measurements, seconds.
fn status_lags(runs: &[AnalysisRun], interval: Duration) -> Vec<f64> {
    let interval_ms = interval.as_millis() as i64;
    let mut lags = Vec::new();
    for run in runs {
        let results = run.status.as_ref().and_then(|s| s.metric_results.as_ref());
        for m in results.into_iter().flatten() {
            let measurements = m.measurements.as_deref().unwrap_or_default();
            for pair in measurements.windows(2) {
                if let (Some(finished), Some(started)) = (&pair[0].finished_at, &pair[1].started_at) {
                    let ms = started.0.as_millisecond() - (finished.0.as_millisecond() + interval_ms);
                    lags.push(ms as f64 / 1e3);
                }
            }
        }
    }
    lags
}

/// Mean, nearest-rank p50/p99 and maximum of `values`.
fn stats_of(mut values: Vec<f64>) -> Option<DelayStats> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let rank = |q: f64| values[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
    Some(DelayStats {
        count: n as u64,
        mean: values.iter().sum::<f64>() / n as f64,
        p50: rank(0.5),
        p99: rank(0.99),
        max: values.last().copied(),
    })
}

/// A Prometheus histogram read from an exposition text, summed over its label sets.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// Cumulative counts by upper bound (`le`), ascending; the last bound is `+Inf`.
    pub buckets: Vec<(f64, f64)>,
    /// Sum of the observations.
    pub sum: f64,
    /// Number of observations.
    pub count: f64,
}

impl Histogram {
    /// Reads the histogram `name` (its `_bucket`, `_sum` and `_count` lines, in the Prometheus or OpenMetrics
    /// text format, with or without a name prefix such as `sluice_`) from `text`; `None` if it is absent.
    pub fn parse(text: &str, name: &str) -> Option<Self> {
        let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        let (mut sum, mut count, mut found) = (0.0, 0.0, false);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, labels, value) = match (line.find('{'), line.find('}')) {
                (Some(open), Some(close)) if open < close => {
                    (&line[..open], &line[open + 1..close], &line[close + 1..])
                }
                _ => match line.split_once(char::is_whitespace) {
                    Some((series, value)) => (series, "", value),
                    None => continue,
                },
            };
            let Some(value) = value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
            else {
                continue;
            };
            let Some(suffix) = series
                .strip_suffix("_bucket")
                .map(|s| (s, "bucket"))
                .or_else(|| series.strip_suffix("_sum").map(|s| (s, "sum")))
                .or_else(|| series.strip_suffix("_count").map(|s| (s, "count")))
            else {
                continue;
            };
            let (base, kind) = suffix;
            if !(base == name || base.ends_with(&format!("_{name}"))) {
                continue;
            }
            found = true;
            match kind {
                "sum" => sum += value,
                "count" => count += value,
                _ => {
                    let Some(le) = label(labels, "le").and_then(|v| v.parse::<f64>().ok()) else {
                        continue;
                    };
                    // f64 bits order like the values for the non-negative bounds of a histogram; +Inf last.
                    let entry = buckets.entry(le.to_bits()).or_insert((le, 0.0));
                    entry.1 += value;
                }
            }
        }
        found.then(|| Histogram {
            buckets: buckets.into_values().collect(),
            sum,
            count,
        })
    }

    /// The observations made since `earlier` (a reading of the same histogram).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let before = |le: f64| {
            earlier
                .buckets
                .iter()
                .find(|(l, _)| *l == le)
                .map_or(0.0, |(_, c)| *c)
        };
        Histogram {
            buckets: self.buckets.iter().map(|&(le, c)| (le, c - before(le))).collect(),
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    /// The mean observation; `None` without observations.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// The `q` quantile (0–1) estimated as PromQL's `histogram_quantile` does: linear interpolation inside the
    /// bucket that holds it, the highest finite bound if it falls in the `+Inf` bucket.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(le, cumulative) in &self.buckets {
            if cumulative >= rank {
                if le.is_infinite() {
                    return Some(lower.0);
                }
                let in_bucket = cumulative - lower.1;
                if in_bucket <= 0.0 {
                    return Some(le);
                }
                return Some(lower.0 + (le - lower.0) * (rank - lower.1) / in_bucket);
            }
            lower = (le, cumulative);
        }
        Some(lower.0)
    }

    /// Count, mean, p50 and p99.
    pub fn stats(&self) -> Option<DelayStats> {
        Some(DelayStats {
            count: self.count.max(0.0) as u64,
            mean: self.mean()?,
            p50: self.quantile(0.5)?,
            p99: self.quantile(0.99)?,
            max: None,
        })
    }
}

/// The value of label `name` in `a="x",b="y"`.
pub fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// Runs `call` up to three times: on a saturated API server a request can time out, and a measurement should
/// not end for one timeout. Only for idempotent calls.
async fn with_retries<T, F, Fut>(what: &str, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < 3 => {
                eprintln!("bench-analysis: {what} failed ({e:#}); retrying");
                attempt += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.context(what.to_string())),
        }
    }
}

async fn list_runs(api: &Api<AnalysisRun>) -> Result<Vec<AnalysisRun>> {
    with_retries("listing the runs", || async {
        Ok(api.list(&ListParams::default()).await?.items)
    })
    .await
}

/// Creates the run; one that a timed-out earlier attempt created counts as created.
async fn create_run(api: &Api<AnalysisRun>, run: &AnalysisRun) -> Result<()> {
    let name = run.metadata.name.clone().unwrap_or_default();
    with_retries(&format!("creating {name}"), || async {
        match api.create(&PostParams::default(), run).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    })
    .await
}

async fn terminate_run(api: &Api<AnalysisRun>, name: &str) -> Result<()> {
    let patch = Patch::Merge(json!({"spec": {"terminate": true}}));
    with_retries(&format!("terminating {name}"), || async {
        api.patch(name, &PatchParams::default(), &patch).await?;
        Ok(())
    })
    .await
}

/// The runs and the middle of the time the list took.
async fn timed_list(api: &Api<AnalysisRun>) -> Result<(Vec<AnalysisRun>, Instant)> {
    let started = Instant::now();
    let runs = list_runs(api).await?;
    Ok((runs, started + started.elapsed() / 2))
}

/// The API server's count of requests for Argo kinds so far, by `VERB resource[/subresource]`.
async fn apiserver_requests(client: &kube::Client) -> Result<BTreeMap<String, f64>> {
    let text = client
        .request_text(http::Request::get("/metrics").body(Vec::new())?)
        .await?;
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once('}') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        if label(labels, "group") != Some("argoproj.io") {
            continue;
        }
        let verb = label(labels, "verb").unwrap_or_default();
        let resource = label(labels, "resource").unwrap_or_default();
        let key = match label(labels, "subresource").filter(|s| !s.is_empty()) {
            Some(sub) => format!("{verb} {resource}/{sub}"),
            None => format!("{verb} {resource}"),
        };
        *counts.entry(key).or_default() += value;
    }
    Ok(counts)
}

fn cpu_now(pids: &[(String, u32)]) -> Vec<f64> {
    pids.iter()
        .map(|(_, pid)| proc_stats(*pid).map_or(0.0, |(_, cpu)| cpu))
        .collect()
}

async fn measure(cp: &ControlPlane, sluice: &Path, count: usize, seconds: u64, dir: &Path) -> Result<Report> {
    let info = &cp.info;
    let client = info.client().await?;
    install_crds(info, &client).await?;
    kubectl(info, &["create", "namespace", NAMESPACE], None)?;

    let traffic = TrafficCounters::start().await?;
    traffic.set_service(SERVICE, 100.0, 0.99);
    let prom = Prometheus::start(&dir.join("prometheus"), &[traffic.address().to_string()]).await?;
    let query = success_rate_query(SERVICE);
    wait_for(
        "Prometheus to answer the success-rate query",
        Duration::from_secs(60),
        || async {
            match prom.query_scalar(&query).await? {
                Some(v) if v.is_finite() => Ok(()),
                v => Err(anyhow!("{v:?}")),
            }
        },
    )
    .await?;

    let operator = Operator::start(sluice, &info.kubeconfig, &prom.url, dir).await?;
    let mut pids = vec![("sluice".to_string(), operator.pid)];
    for name in ["kube-apiserver", "etcd"] {
        if let Some((_, pid)) = info.component_pids.iter().find(|(n, _)| n == name) {
            pids.push((name.to_string(), *pid));
        }
    }
    if let Some(pid) = prom.pid() {
        pids.push(("prometheus".to_string(), pid));
    }

    let api: Api<AnalysisRun> = Api::namespaced(client.clone(), NAMESPACE);
    eprintln!("bench-analysis: creating {count} analysis runs");
    let started = Instant::now();
    let names: Vec<String> = (0..count).map(|i| format!("run-{i:05}")).collect();
    for chunk in names.chunks(BATCH) {
        let creates = chunk.iter().map(|n| {
            let api = api.clone();
            let obj = serde_json::from_value::<AnalysisRun>(analysis_run(n, &prom.url));
            async move { create_run(&api, &obj?).await }
        });
        for r in futures::future::join_all(creates).await {
            r?;
        }
    }
    eprintln!(
        "bench-analysis: created in {:.1}s; waiting for every run's first measurement",
        started.elapsed().as_secs_f64()
    );
    let first_deadline = Duration::from_secs(300);
    loop {
        let t = totals(&list_runs(&api).await?);
        if t.measured_runs >= count {
            break;
        }
        if started.elapsed() > first_deadline {
            bail!(
                "only {}/{count} runs had a measurement after {first_deadline:?} (phases {:?}); the operator's log ends with:\n{}",
                t.measured_runs,
                t.phases,
                operator.log_tail(20)
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let first_measured_secs = started.elapsed().as_secs_f64();

    eprintln!("bench-analysis: all runs measuring after {first_measured_secs:.1}s; measuring for {seconds}s");
    let histogram_at = |text: &str| Histogram::parse(text, DELAY_HISTOGRAM);
    // Each reading is placed at the middle of the list that took it: under load a list takes a while.
    let (runs, list0) = timed_list(&api).await?;
    let before = totals(&runs);
    let (cpu0, cpu_t0) = (cpu_now(&pids), Instant::now());
    let hist0 = histogram_at(&operator.metrics().await?);
    let requests0 = apiserver_requests(&client)
        .await
        .inspect_err(|e| eprintln!("bench-analysis: the API server's /metrics: {e:#}"))
        .ok();
    tokio::time::sleep(Duration::from_secs(seconds).saturating_sub(list0.elapsed())).await;
    let (cpu1, cpu_window) = (cpu_now(&pids), cpu_t0.elapsed().as_secs_f64());
    let hist1 = histogram_at(&operator.metrics().await?);
    let requests1 = apiserver_requests(&client)
        .await
        .inspect_err(|e| eprintln!("bench-analysis: the API server's /metrics: {e:#}"))
        .ok();
    let (runs, list1) = timed_list(&api).await?;
    let window_secs = (list1 - list0).as_secs_f64();
    let after = totals(&runs);
    if after.phases.get("Running").copied().unwrap_or(0) < count {
        eprintln!(
            "bench-analysis: phases at the end of the window: {:?}",
            after.phases
        );
    }
    let measurements = after.measurements.saturating_sub(before.measurements);
    let delay = match (&hist0, &hist1) {
        (Some(h0), Some(h1)) => h1.since(h0).stats(),
        (None, Some(h1)) => h1.stats(),
        _ => None,
    };
    let status_lag = stats_of(status_lags(&runs, Duration::from_secs(1)));
    let window_cpu_percent = pids
        .iter()
        .zip(cpu0.iter().zip(&cpu1))
        .map(|((name, _), (c0, c1))| (name.clone(), 100.0 * (c1 - c0) / cpu_window))
        .collect();
    let mut api_server_rates: Vec<(String, f64)> = match (requests0, requests1) {
        (Some(r0), Some(r1)) => r1
            .iter()
            .map(|(k, v)| (k.clone(), (v - r0.get(k).copied().unwrap_or(0.0)) / cpu_window))
            .filter(|(_, rate)| *rate >= 0.05)
            .collect(),
        _ => Vec::new(),
    };
    api_server_rates.sort_by(|a, b| b.1.total_cmp(&a.1));

    eprintln!("bench-analysis: terminating every run");
    let terminated = Instant::now();
    for chunk in names.chunks(BATCH) {
        let patches = chunk.iter().map(|n| {
            let api = api.clone();
            async move { terminate_run(&api, n).await }
        });
        for r in futures::future::join_all(patches).await {
            r?;
        }
    }
    let terminate_deadline = Duration::from_secs(seconds.max(120));
    let terminate_secs = loop {
        let t = totals(&list_runs(&api).await?);
        if t.phases.get("Successful").copied().unwrap_or(0) >= count {
            break Some(terminated.elapsed().as_secs_f64());
        }
        if terminated.elapsed() > terminate_deadline {
            eprintln!(
                "bench-analysis: after {terminate_deadline:?} the phases are {:?}",
                t.phases
            );
            break None;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let (peak_rss_mib, cpu_secs) = proc_stats(operator.pid).unwrap_or_default();
    let api_requests = operator.shutdown().await?;
    drop(prom);
    drop(traffic);
    Ok(Report {
        count,
        first_measured_secs,
        window_secs,
        measurements,
        errors: after.errors.saturating_sub(before.errors),
        per_sec: measurements as f64 / window_secs,
        ideal_per_sec: count as f64,
        delay,
        delay_window_secs: cpu_window,
        status_lag,
        terminate_secs,
        peak_rss_mib,
        cpu_secs,
        window_cpu_percent,
        api_requests,
        api_server_rates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP analysis_run_measurement_delay_seconds Seconds from due to start.
# TYPE analysis_run_measurement_delay_seconds histogram
analysis_run_measurement_delay_seconds_sum 1.5
analysis_run_measurement_delay_seconds_count 100
analysis_run_measurement_delay_seconds_bucket{le="0.01"} 50
analysis_run_measurement_delay_seconds_bucket{le="0.1"} 90
analysis_run_measurement_delay_seconds_bucket{le="1.0"} 100
analysis_run_measurement_delay_seconds_bucket{le="+Inf"} 100
analysis_run_info_total{namespace="bench"} 3
# EOF
"#;

    #[test]
    fn histogram_reads_buckets_sum_and_count() {
        let h = Histogram::parse(TEXT, DELAY_HISTOGRAM).expect("present");
        assert_eq!(h.count, 100.0);
        assert_eq!(h.sum, 1.5);
        assert_eq!(
            h.buckets,
            vec![(0.01, 50.0), (0.1, 90.0), (1.0, 100.0), (f64::INFINITY, 100.0)]
        );
        assert_eq!(h.mean(), Some(0.015));
        assert_eq!(Histogram::parse(TEXT, "something_else"), None);
    }

    #[test]
    fn histogram_sums_label_sets_and_accepts_a_prefix() {
        let text = "sluice_analysis_run_measurement_delay_seconds_bucket{provider=\"prometheus\",le=\"1\"} 3\n\
                    sluice_analysis_run_measurement_delay_seconds_bucket{provider=\"prometheus\",le=\"+Inf\"} 3\n\
                    sluice_analysis_run_measurement_delay_seconds_count{provider=\"prometheus\"} 3\n\
                    sluice_analysis_run_measurement_delay_seconds_bucket{provider=\"web\",le=\"1\"} 4\n\
                    sluice_analysis_run_measurement_delay_seconds_bucket{provider=\"web\",le=\"+Inf\"} 4 # {a=\"b\"} 1.0\n\
                    sluice_analysis_run_measurement_delay_seconds_count{provider=\"web\"} 4\n";
        let h = Histogram::parse(text, DELAY_HISTOGRAM).expect("present");
        assert_eq!(h.buckets, vec![(1.0, 7.0), (f64::INFINITY, 7.0)]);
        assert_eq!(h.count, 7.0);
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket_like_histogram_quantile() {
        let h = Histogram::parse(TEXT, DELAY_HISTOGRAM).expect("present");
        // Rank 50 is the top of the first bucket; rank 70 is halfway through the second.
        assert_eq!(h.quantile(0.5), Some(0.01));
        let p70 = h.quantile(0.7).expect("p70");
        assert!((p70 - 0.055).abs() < 1e-12, "{p70}");
        let p99 = h.quantile(0.99).expect("p99");
        assert!((p99 - 0.91).abs() < 1e-12, "{p99}");
        // In the +Inf bucket: the highest finite bound.
        let tail = Histogram {
            buckets: vec![(1.0, 1.0), (f64::INFINITY, 10.0)],
            sum: 50.0,
            count: 10.0,
        };
        assert_eq!(tail.quantile(0.99), Some(1.0));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn since_subtracts_an_earlier_reading() {
        let h1 = Histogram::parse(TEXT, DELAY_HISTOGRAM).expect("present");
        let h0 = Histogram {
            buckets: vec![(0.01, 40.0), (0.1, 40.0), (1.0, 40.0), (f64::INFINITY, 40.0)],
            sum: 0.2,
            count: 40.0,
        };
        let d = h1.since(&h0);
        assert_eq!(d.count, 60.0);
        assert_eq!(
            d.buckets,
            vec![(0.01, 10.0), (0.1, 50.0), (1.0, 60.0), (f64::INFINITY, 60.0)]
        );
        assert!((d.sum - 1.3).abs() < 1e-12);
    }

    #[test]
    fn status_lag_is_start_minus_previous_finish_plus_interval() {
        let run: AnalysisRun = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": "r"},
            "spec": {"metrics": []},
            "status": {"phase": "Running", "metricResults": [{
                "name": "m", "phase": "Running", "count": 3,
                "measurements": [
                    {"phase": "Successful", "startedAt": "2025-01-01T00:00:00Z", "finishedAt": "2025-01-01T00:00:00Z"},
                    {"phase": "Successful", "startedAt": "2025-01-01T00:00:01Z", "finishedAt": "2025-01-01T00:00:01Z"},
                    {"phase": "Successful", "startedAt": "2025-01-01T00:00:04Z", "finishedAt": "2025-01-01T00:00:05Z"},
                    {"phase": "Running", "startedAt": "2025-01-01T00:00:06Z"}
                ]
            }]}
        }))
        .expect("run");
        assert_eq!(status_lags(&[run], Duration::from_secs(1)), vec![0.0, 2.0, 0.0]);
        let s = stats_of(vec![0.0, 2.0, 0.0, 1.0]).expect("stats");
        assert_eq!(
            (s.count, s.mean, s.p50, s.p99, s.max),
            (4, 0.75, 0.0, 2.0, Some(2.0))
        );
        assert_eq!(stats_of(Vec::new()), None);
    }
}
