//! Prometheus (Debian's `prometheus` package) on 127.0.0.1, scraping every second an endpoint that the test
//! controls: a good canary and a bad canary are two series values, not a mock of Prometheus.
//!
//! [`TrafficCounters`] plays the services' request counters: `http_requests_total{service,code}` grows at a
//! set rate and success ratio, so that [`success_rate_query`] (the query an AnalysisTemplate would use) reads
//! back that ratio. [`Prometheus::stop`], [`Prometheus::restart`] and [`Prometheus::pause`] take the server
//! away in the middle of an analysis.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use axum::{Router, extract::State, routing::get};

use crate::cluster::wait_for;

/// The Prometheus binary: `$SLUICE_PROMETHEUS` or `/usr/bin/prometheus`.
pub fn binary() -> PathBuf {
    std::env::var_os("SLUICE_PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"))
}

/// A running Prometheus server; dropping it stops the server.
pub struct Prometheus {
    /// Base URL, e.g. `http://127.0.0.1:41234`; it stays the same across [`Prometheus::restart`].
    pub url: String,
    dir: PathBuf,
    port: u16,
    /// The wrapper shell (see [`Prometheus::spawn`]); `None` while stopped.
    child: Option<Child>,
}

impl Prometheus {
    /// Starts Prometheus in `dir` with a 1 s scrape of each `target` (`host:port`), and waits until it is ready.
    pub async fn start(dir: &Path, targets: &[String]) -> Result<Self> {
        let bin = binary();
        if !bin.is_file() {
            bail!(
                "{} is missing: install Debian's prometheus package",
                bin.display()
            );
        }
        std::fs::create_dir_all(dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n- job_name: e2e\n  static_configs: [{{targets: {}}}]\n",
            serde_json::to_string(targets)?
        );
        std::fs::write(dir.join("prometheus.yml"), config)?;
        std::fs::write(dir.join("prometheus.log"), "")?;
        let mut prom = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
            port,
            child: None,
        };
        prom.spawn()?;
        prom.wait_ready().await?;
        Ok(prom)
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.join("prometheus.pid")
    }

    fn spawn(&mut self) -> Result<()> {
        let bin = binary();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("prometheus.log"))?;
        std::fs::remove_file(self.pid_file()).ok();
        // The shell keeps Prometheus tied to this process: when our end of its stdin closes (we exit, however
        // we exit, or [`Prometheus::stop`] closes it), it kills Prometheus. It records Prometheus's pid for
        // pause and resume.
        let child = Command::new("bash")
            .arg("-c")
            .arg(
                r#""$@" </dev/null & p=$!; echo "$p" >"$PROMETHEUS_PID_FILE"; trap 'kill -9 $p 2>/dev/null' EXIT; while read -r _; do :; done"#,
            )
            .arg("prometheus-tied")
            .arg(&bin)
            .arg(format!(
                "--config.file={}",
                self.dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--storage.tsdb.retention.time=2h")
            .arg("--web.enable-lifecycle")
            .env("PROMETHEUS_PID_FILE", self.pid_file())
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let url = self.url.clone();
        let log = self.dir.join("prometheus.log");
        let pid_file = self.pid_file();
        wait_for("prometheus to be ready", Duration::from_secs(60), || {
            let url = url.clone();
            let log = log.clone();
            let pid_file = pid_file.clone();
            async move {
                // Fail at once, with the reason, if Prometheus has already exited (e.g. its port is taken).
                if let Some(pid) = read_pid(&pid_file)
                    && !crate::process::alive(pid)
                {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(5).collect();
                    return Err(anyhow!(
                        "prometheus exited: {}",
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    ));
                }
                let status = reqwest::get(format!("{url}/-/ready")).await?.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(anyhow!("status {status}"))
                }
            }
        })
        .await
    }

    /// Process id of the Prometheus server itself (not its wrapper), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref()?;
        read_pid(&self.pid_file()).filter(|&pid| crate::process::alive(pid))
    }

    /// Whether the server is running (started and not stopped).
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// Kills the server (SIGKILL: no shutdown of any kind) and waits until it is gone, so that queries fail
    /// with "connection refused" from now on. Its data and port are kept for [`Prometheus::restart`]. Stopping
    /// a stopped server does nothing.
    pub fn stop(&mut self) {
        let pid = self.pid();
        if let Some(mut child) = self.child.take() {
            // Closing stdin makes the wrapper kill Prometheus; then reap the wrapper.
            drop(child.stdin.take());
            let _ = child.wait();
        }
        if let Some(pid) = pid {
            let deadline = Instant::now() + Duration::from_secs(10);
            while crate::process::alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Starts the server again on the same port with the same data (series scraped before the stop are kept;
    /// the gap has no samples), and waits until it is ready. Stops it first if it is running.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop();
        // The listening socket is closed once the process is gone; allow the kernel a moment anyway.
        let port = self.port;
        wait_for(
            "prometheus's port to be free",
            Duration::from_secs(10),
            || async move {
                std::net::TcpListener::bind(("127.0.0.1", port))
                    .map(drop)
                    .map_err(Into::into)
            },
        )
        .await?;
        self.spawn()?;
        self.wait_ready().await
    }

    /// Freezes the server (SIGSTOP): connections are accepted by the kernel but never answered, as with a hung
    /// Prometheus. [`Prometheus::resume`] lets it go on.
    pub fn pause(&self) -> Result<()> {
        self.signal("-STOP")
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) -> Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> Result<()> {
        let pid = self.pid().context("prometheus is not running")?;
        let status = Command::new("kill").args([signal, &pid.to_string()]).status()?;
        if !status.success() {
            bail!("kill {signal} {pid}: {status}");
        }
        Ok(())
    }

    /// Runs an instant query and returns the `data` object of the answer (10 s timeout).
    pub async fn query(&self, promql: &str) -> Result<serde_json::Value> {
        let answer: serde_json::Value = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", promql)])
            .send()
            .await?
            .json()
            .await?;
        if answer["status"] != "success" {
            bail!("query {promql} failed: {answer}");
        }
        Ok(answer["data"].clone())
    }

    /// Runs an instant query whose answer is a vector and returns the value of its first sample, or `None`
    /// when the vector is empty (no data yet). `NaN` comes back as `f64::NAN`.
    pub async fn query_scalar(&self, promql: &str) -> Result<Option<f64>> {
        let data = self.query(promql).await?;
        let Some(value) = data["result"][0]["value"][1].as_str() else {
            return Ok(None);
        };
        Ok(Some(
            value
                .parse()
                .with_context(|| format!("value {value} of {promql}"))?,
        ))
    }
}

impl Prometheus {
    /// Runs `promql` every 200 ms until its first sample's value satisfies `want`, and returns that value. A
    /// new server scrapes its targets for the first time about 5 s after it is ready (its scrape manager
    /// applies new targets every 5 s), and a `rate` over them needs two scrapes: wait with this before
    /// starting an analysis that expects data.
    pub async fn wait_until(
        &self,
        promql: &str,
        timeout: Duration,
        want: impl Fn(f64) -> bool,
    ) -> Result<f64> {
        let started = Instant::now();
        loop {
            let last = match self.query_scalar(promql).await {
                Ok(Some(v)) if want(v) => return Ok(v),
                Ok(v) => format!("{v:?}"),
                Err(e) => format!("{e:#}"),
            };
            if started.elapsed() > timeout {
                bail!("timed out after {timeout:?} waiting for {promql}; last answer: {last}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A `/metrics` endpoint whose exposition text the test sets at any time.
pub struct MetricsEndpoint {
    /// `127.0.0.1:<port>`.
    pub address: String,
    body: Arc<Mutex<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl MetricsEndpoint {
    /// Serves `initial` on a free port of 127.0.0.1.
    pub async fn start(initial: &str) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let body = Arc::new(Mutex::new(initial.to_string()));
        let app = Router::new()
            .route(
                "/metrics",
                get(|State(b): State<Arc<Mutex<String>>>| async move {
                    b.lock().map(|s| s.clone()).unwrap_or_default()
                }),
            )
            .with_state(body.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { address, body, task })
    }

    /// Replaces the exposition text served from now on.
    pub fn set(&self, text: &str) {
        set_body(&self.body, text.to_string());
    }
}

fn set_body(body: &Mutex<String>, text: String) {
    if let Ok(mut b) = body.lock() {
        *b = text;
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The window of [`success_rate_query`]: ten scrapes at the harness's 1 s scrape interval.
pub const SUCCESS_RATE_WINDOW: &str = "10s";

/// The success-rate query as an AnalysisTemplate writes it, with the service as the argument `service-name`:
/// the share of the service's requests over the last 10 s whose code is not 5xx.
pub const SUCCESS_RATE_TEMPLATE_QUERY: &str = r#"sum(rate(http_requests_total{service="{{args.service-name}}",code!~"5.."}[10s])) / sum(rate(http_requests_total{service="{{args.service-name}}"}[10s]))"#;

/// The success rate of `service` over the last [`SUCCESS_RATE_WINDOW`], as [`TrafficCounters`] serves it:
/// `sum(rate(http_requests_total{service="canary",code!~"5.."}[10s])) /
/// sum(rate(http_requests_total{service="canary"}[10s]))`. It reads the service's success ratio about two
/// scrapes after the counters start, follows a change of ratio fully within the window, is `NaN` at a
/// request rate of 0 and an empty vector for a service that is not (or no longer) served.
pub fn success_rate_query(service: &str) -> String {
    success_rate_query_over(service, SUCCESS_RATE_WINDOW)
}

/// [`success_rate_query`] over another window (e.g. `5s` to follow a change faster; at least `2s`).
pub fn success_rate_query_over(service: &str, window: &str) -> String {
    format!(
        r#"sum(rate(http_requests_total{{service="{service}",code!~"5.."}}[{window}])) / sum(rate(http_requests_total{{service="{service}"}}[{window}]))"#
    )
}

/// Request rate of a service added by [`TrafficCounters::set_success_ratio`], requests per second.
pub const DEFAULT_REQUEST_RATE: f64 = 100.0;

/// How often [`TrafficCounters`] advances its counters.
pub const TRAFFIC_TICK: Duration = Duration::from_millis(100);

#[derive(Clone, Debug)]
struct Traffic {
    rate: f64,
    success_ratio: f64,
    ok: f64,
    failed: f64,
}

/// Request counters of services under synthetic traffic, served on their own `/metrics` endpoint for
/// Prometheus to scrape: `http_requests_total{service="<name>",code="200"}` and `{...,code="500"}`, counters
/// (floats) that grow every [`TRAFFIC_TICK`] by `rate × elapsed × success_ratio` and `rate × elapsed ×
/// (1 − success_ratio)`. Rates and ratios can be changed at any time; the counters never go down. Dropping it
/// stops the traffic and the endpoint.
pub struct TrafficCounters {
    endpoint: MetricsEndpoint,
    services: Arc<Mutex<BTreeMap<String, Traffic>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TrafficCounters {
    /// Starts an endpoint with no service on a free port of 127.0.0.1 and the task that advances the counters.
    pub async fn start() -> Result<Self> {
        let endpoint = MetricsEndpoint::start("").await?;
        let services: Arc<Mutex<BTreeMap<String, Traffic>>> = Arc::default();
        let body = endpoint.body.clone();
        let state = services.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(TRAFFIC_TICK);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last = Instant::now();
            loop {
                ticks.tick().await;
                // The real elapsed time, so that a late tick (a busy machine) still yields the set rate.
                let elapsed = last.elapsed().as_secs_f64();
                last = Instant::now();
                let text = match state.lock() {
                    Ok(mut services) => {
                        for t in services.values_mut() {
                            let requests = t.rate * elapsed;
                            t.ok += requests * t.success_ratio;
                            t.failed += requests * (1.0 - t.success_ratio);
                        }
                        exposition(&services)
                    }
                    Err(_) => return,
                };
                set_body(&body, text);
            }
        });
        Ok(Self {
            endpoint,
            services,
            task,
        })
    }

    /// The endpoint's `host:port`, for Prometheus's scrape targets.
    pub fn address(&self) -> &str {
        &self.endpoint.address
    }

    /// Sets a service's request rate (requests per second, ≥ 0) and success ratio (0–1, the share of code 200;
    /// the rest are code 500), adding the service if it is new.
    pub fn set_service(&self, service: &str, rate: f64, success_ratio: f64) {
        self.update(service, |t| {
            t.rate = rate.max(0.0);
            t.success_ratio = success_ratio.clamp(0.0, 1.0);
        });
    }

    /// Sets a service's success ratio (e.g. `0.8`: 80% code 200, 20% code 500), adding the service at
    /// [`DEFAULT_REQUEST_RATE`] if it is new.
    pub fn set_success_ratio(&self, service: &str, success_ratio: f64) {
        self.update(service, |t| t.success_ratio = success_ratio.clamp(0.0, 1.0));
    }

    /// Sets a service's request rate (requests per second; 0 makes the success rate `NaN`), adding the service
    /// with a success ratio of 1 if it is new.
    pub fn set_rate(&self, service: &str, rate: f64) {
        self.update(service, |t| t.rate = rate.max(0.0));
    }

    /// Stops serving a service's series: Prometheus marks them stale at its next scrape, and
    /// [`success_rate_query`] returns an empty vector once the window has passed. Setting the service again
    /// starts its counters from zero.
    pub fn remove_service(&self, service: &str) {
        if let Ok(mut services) = self.services.lock() {
            services.remove(service);
        }
    }

    /// The requests counted so far for a service: (code 200, code 500).
    pub fn totals(&self, service: &str) -> Option<(f64, f64)> {
        let services = self.services.lock().ok()?;
        services.get(service).map(|t| (t.ok, t.failed))
    }

    fn update(&self, service: &str, change: impl FnOnce(&mut Traffic)) {
        if let Ok(mut services) = self.services.lock() {
            let t = services.entry(service.to_string()).or_insert(Traffic {
                rate: DEFAULT_REQUEST_RATE,
                success_ratio: 1.0,
                ok: 0.0,
                failed: 0.0,
            });
            change(t);
            // Serve the new service's series at once rather than at the next tick.
            set_body(&self.endpoint.body, exposition(&services));
        }
    }
}

impl Drop for TrafficCounters {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The Prometheus text exposition of the counters.
fn exposition(services: &BTreeMap<String, Traffic>) -> String {
    let mut text = String::from(
        "# HELP http_requests_total Requests served, by service and status code.\n# TYPE http_requests_total counter\n",
    );
    for (name, t) in services {
        let _ = writeln!(
            text,
            "http_requests_total{{service=\"{name}\",code=\"200\"}} {}",
            t.ok
        );
        let _ = writeln!(
            text,
            "http_requests_total{{service=\"{name}\",code=\"500\"}} {}",
            t.failed
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_the_service_and_the_window() {
        assert_eq!(
            success_rate_query("canary"),
            r#"sum(rate(http_requests_total{service="canary",code!~"5.."}[10s])) / sum(rate(http_requests_total{service="canary"}[10s]))"#
        );
        assert_eq!(
            SUCCESS_RATE_TEMPLATE_QUERY.replace("{{args.service-name}}", "canary"),
            success_rate_query("canary")
        );
    }

    #[test]
    fn exposition_has_both_codes_of_each_service() {
        let mut services = BTreeMap::new();
        services.insert(
            "canary".to_string(),
            Traffic {
                rate: 10.0,
                success_ratio: 0.8,
                ok: 8.0,
                failed: 2.5,
            },
        );
        let text = exposition(&services);
        assert!(text.contains("# TYPE http_requests_total counter\n"), "{text}");
        assert!(
            text.contains("http_requests_total{service=\"canary\",code=\"200\"} 8\n"),
            "{text}"
        );
        assert!(
            text.contains("http_requests_total{service=\"canary\",code=\"500\"} 2.5\n"),
            "{text}"
        );
    }
}
