//! Prometheus (Debian's `prometheus` package) on 127.0.0.1, scraping every second an endpoint that the test
//! controls: a good canary and a bad canary are two series values, not a mock of Prometheus.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
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
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    child: Child,
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
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.join("prometheus.log"))?;
        // The shell keeps Prometheus tied to this process: when our end of its stdin closes (we exit, however
        // we exit), it kills Prometheus.
        let child = Command::new("bash")
            .arg("-c")
            .arg(r#""$@" </dev/null & p=$!; trap 'kill -9 $p 2>/dev/null' EXIT; while read -r _; do :; done"#)
            .arg("prometheus-tied")
            .arg(&bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--storage.tsdb.retention.time=2h")
            .arg("--web.enable-lifecycle")
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let url = format!("http://127.0.0.1:{port}");
        let prom = Prometheus {
            url: url.clone(),
            child,
        };
        wait_for("prometheus to be ready", Duration::from_secs(60), || {
            let url = url.clone();
            async move {
                let status = reqwest::get(format!("{url}/-/ready")).await?.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(anyhow!("status {status}"))
                }
            }
        })
        .await?;
        Ok(prom)
    }

    /// Runs an instant query and returns the `data` object of the answer.
    pub async fn query(&self, promql: &str) -> Result<serde_json::Value> {
        let answer: serde_json::Value = reqwest::Client::new()
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
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // Closing stdin makes the wrapper kill Prometheus; then reap the wrapper.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
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
        if let Ok(mut b) = self.body.lock() {
            *b = text.to_string();
        }
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}
