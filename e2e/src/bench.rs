//! `sluice-e2e bench`: N Rollouts of 3 replicas through a 3-step canary with 0-second pauses (or a blue-green
//! update with an active Service each) on the local control plane. Prints the wall time until all are
//! Healthy, the operator's peak RSS and CPU seconds, and its API requests per rollout. A measurement, not a
//! test: it asserts nothing about speed.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;
use sluice_crds::rollout::Rollout;
use tokio::process::Command;

use crate::{
    bench_analysis::Histogram,
    cluster::{ControlPlane, Options, free_port},
    harness::{install_crds, kubectl},
};

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    /// Rollouts.
    pub count: usize,
    /// Seconds from creating the Rollouts to all Healthy (first deploy).
    pub deploy_secs: f64,
    /// Seconds from changing every template to all Healthy on the new version (the canary walk).
    pub update_secs: f64,
    /// Operator resident memory with no Rollouts, its caches synced, MiB.
    pub idle_rss_mib: f64,
    /// Operator peak resident memory, MiB.
    pub peak_rss_mib: f64,
    /// Operator CPU seconds (user + system) over the whole run.
    pub cpu_secs: f64,
    /// API requests the operator sent during the first deploy and the update walk, by (verb, resource).
    pub deploy: Requests,
    /// The same during the update walk.
    pub update: Requests,
    /// `sluice_rollout_step_transition_seconds` over the update walk: (count, p50, p99) in seconds.
    pub step_latency: (f64, Option<f64>, Option<f64>),
}

impl Report {
    /// API requests per rollout over both phases.
    pub fn requests_per_rollout(&self) -> f64 {
        (self.deploy.total() + self.update.total()) as f64 / self.count as f64
    }

    /// Memory each Rollout added above the idle operator, KiB.
    pub fn marginal_kib(&self) -> f64 {
        (self.peak_rss_mib - self.idle_rss_mib) * 1024.0 / self.count as f64
    }

    /// The table of one phase's requests per rollout by verb and resource (and, for the update walk, per
    /// step: `steps` steps per Rollout).
    pub fn breakdown(&self, title: &str, phase: &Requests, steps: usize) -> String {
        let mut out = format!(
            "{title}: {:.1} requests/rollout\n  {:<10} {:<36} {:>9} {:>9}\n",
            phase.total() as f64 / self.count as f64,
            "verb",
            "resource",
            "/rollout",
            "/step"
        );
        for ((verb, resource), n) in &phase.0 {
            let per = *n as f64 / self.count as f64;
            let step = if steps > 0 {
                format!("{:.2}", per / steps as f64)
            } else {
                "-".into()
            };
            out.push_str(&format!("  {verb:<10} {resource:<36} {per:>9.2} {step:>9}\n"));
        }
        out
    }
}

/// Requests by (verb, resource), from `sluice_k8s_request_by_resource_total`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Requests(pub std::collections::BTreeMap<(String, String), u64>);

impl Requests {
    /// Reads them from the operator's exposition text.
    pub fn parse(text: &str) -> Requests {
        let mut out = Requests::default();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("sluice_k8s_request_by_resource_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            let label = |name: &str| crate::bench_analysis::label(labels, name).map(str::to_string);
            if let (Some(verb), Some(resource)) = (label("verb"), label("resource")) {
                out.0.insert((verb, resource), value.trim().parse().unwrap_or(0));
            }
        }
        out
    }

    /// `self - earlier`, pair by pair (pairs with no new request left out).
    pub fn since(&self, earlier: &Requests) -> Requests {
        Requests(
            self.0
                .iter()
                .map(|(k, n)| (k.clone(), n - earlier.0.get(k).copied().unwrap_or(0)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        )
    }

    /// All requests.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Requests of a verb.
    pub fn of_verb(&self, verb: &str) -> u64 {
        self.0
            .iter()
            .filter(|((v, _), _)| v == verb)
            .map(|(_, n)| n)
            .sum()
    }
}

/// A process's resident memory now, MiB (`VmRSS`).
pub fn current_rss(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// A process's peak resident memory (MiB) and CPU seconds (user + system) so far, from /proc.
pub fn proc_stats(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ on Linux
    let cpu = (fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?) / ticks;
    Some((hwm_kib / 1024.0, cpu))
}

/// The strategy the benchmark's Rollouts run.
#[derive(Clone, Copy, Debug, PartialEq, clap::ValueEnum)]
pub enum Strategy {
    /// setWeight 34, pause 0 s, setWeight 67 (basic canary).
    Canary,
    /// Blue-green with an active Service, automatic promotion.
    BlueGreen,
}

/// Steps of the benchmark's canary.
pub const CANARY_STEPS: usize = 3;

/// A benchmark Rollout of 3 replicas; `analysis` names an AnalysisTemplate run as the canary's second step
/// (the soak's) instead of the 0-second pause.
pub fn rollout(name: &str, image: &str, strategy: Strategy, analysis: Option<&str>) -> Rollout {
    let strategy = match (strategy, analysis) {
        (Strategy::Canary, None) => json!({"canary": {"steps": [
            {"setWeight": 34},
            {"pause": {"duration": 0}},
            {"setWeight": 67}
        ]}}),
        (Strategy::Canary, Some(template)) => json!({"canary": {"steps": [
            {"setWeight": 34},
            {"analysis": {"templates": [{"templateName": template}]}},
            {"setWeight": 67}
        ]}}),
        (Strategy::BlueGreen, _) => json!({"blueGreen": {"activeService": format!("{name}-active")}}),
    };
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": 3,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            },
            "strategy": strategy
        }
    }))
    .expect("valid rollout")
}

/// The active Service of a blue-green benchmark Rollout.
fn active_service(name: &str) -> k8s_openapi::api::core::v1::Service {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": format!("{name}-active")},
        // Headless: the local control plane's Service IP range holds a few hundred.
        "spec": {"clusterIP": "None", "selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .expect("valid service")
}

/// Whether the Rollout is Healthy on `image`, its status describing its spec.
pub fn healthy_on(r: &Rollout, image: &str) -> bool {
    let st = r.status.as_ref();
    let image_now = r
        .spec
        .template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers[0].image.clone());
    st.and_then(|s| s.phase.as_deref()) == Some("Healthy")
        && st.is_some_and(|s| s.stable_rs.is_some() && s.stable_rs == s.current_pod_hash)
        && st.and_then(|s| s.observed_generation.clone()) == r.metadata.generation.map(|g| g.to_string())
        && image_now.as_deref() == Some(image)
}

async fn wait_all_healthy(api: &Api<Rollout>, count: usize, image: &str, started: Instant) -> Result<f64> {
    let deadline = Duration::from_secs(1800);
    loop {
        let list = api.list(&ListParams::default()).await?;
        let done = list.items.iter().filter(|r| healthy_on(r, image)).count();
        if done >= count {
            return Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > deadline {
            bail!("only {done}/{count} Healthy after {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The operator under measurement, with its `/metrics`.
pub struct Operator {
    child: tokio::process::Child,
    /// Its process id.
    pub pid: u32,
    metrics_url: String,
}

impl Operator {
    /// Starts `sluice run` for the namespace `bench` and waits for its `/readyz`.
    pub async fn start(sluice: &Path, kubeconfig: &Path, dir: &Path, env: &[(&str, &str)]) -> Result<Self> {
        let (port, healthz) = (free_port()?, free_port()?);
        let log = std::fs::File::create(dir.join("operator.log"))?;
        let mut cmd = Command::new(sluice);
        cmd.args(["run", "--namespace", "bench", "--kubeconfig"])
            .arg(kubeconfig)
            .arg(format!("--metrics-addr=127.0.0.1:{port}"))
            .arg(format!("--healthz-addr=127.0.0.1:{healthz}"))
            .env("SLUICE_LOG_LEVEL", "warn,sluice::run=info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        crate::process::die_with_parent(cmd.as_std_mut());
        let child = cmd.spawn().context("starting sluice")?;
        let pid = child.id().context("operator pid")?;
        let ready = format!("http://127.0.0.1:{healthz}/readyz");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match reqwest::get(&ready).await {
                Ok(r) if r.status().is_success() => break,
                _ if Instant::now() > deadline => bail!("the operator was not ready in 60 s"),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        Ok(Operator {
            child,
            pid,
            metrics_url: format!("http://127.0.0.1:{port}/metrics"),
        })
    }

    /// Its exposition text.
    pub async fn metrics(&self) -> Result<String> {
        Ok(reqwest::get(&self.metrics_url).await?.text().await?)
    }

    /// Stops it with SIGTERM.
    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
    }
}

/// Runs the benchmark with `count` rollouts.
pub async fn run(bin_dir: PathBuf, sluice: &Path, count: usize, strategy: Strategy) -> Result<Report> {
    let dir = std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id()));
    eprintln!("bench: starting a control plane");
    let mut cp = ControlPlane::start(&Options {
        dir: dir.clone(),
        bin_dir,
        nodes: 10,
    })
    .await?;
    let result = measure(&cp, sluice, count, strategy, &dir).await;
    cp.stop().await;
    std::fs::remove_dir_all(&dir).ok();
    result
}

/// Creates, or patches, the named objects 50 at a time.
pub async fn in_chunks<F, Fut, T>(names: &[String], each: F) -> Result<()>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = kube::Result<T>>,
{
    for chunk in names.chunks(50) {
        for r in futures::future::join_all(chunk.iter().cloned().map(&each)).await {
            r?;
        }
    }
    Ok(())
}

/// Points every named Rollout at `image`.
pub async fn set_image(api: &Api<Rollout>, names: &[String], image: &str) -> Result<()> {
    let patch = json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": image}]);
    in_chunks(names, |n| {
        let api = api.clone();
        let patch: json_patch::Patch = serde_json::from_value(patch.clone()).expect("patch");
        async move {
            api.patch(&n, &PatchParams::default(), &Patch::<()>::Json(patch))
                .await
        }
    })
    .await
}

/// The idle operator's resident memory: sampled for 10 s once it is ready, the last sample.
async fn idle_rss(pid: u32) -> f64 {
    let mut rss = 0.0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss = current_rss(pid).unwrap_or(rss);
    }
    rss
}

async fn measure(
    cp: &ControlPlane,
    sluice: &Path,
    count: usize,
    strategy: Strategy,
    dir: &Path,
) -> Result<Report> {
    let info = &cp.info;
    let client = info.client().await?;
    install_crds(info, &client).await?;
    kubectl(info, &["create", "namespace", "bench"], None)?;
    let operator = Operator::start(sluice, &info.kubeconfig, dir, &[]).await?;
    let idle_rss_mib = idle_rss(operator.pid).await;
    let at_start = Requests::parse(&operator.metrics().await?);

    let api: Api<Rollout> = Api::namespaced(client.clone(), "bench");
    eprintln!("bench: creating {count} rollouts (idle operator: {idle_rss_mib:.1} MiB)");
    let started = Instant::now();
    let names: Vec<String> = (0..count).map(|i| format!("ro-{i:05}")).collect();
    if strategy == Strategy::BlueGreen {
        let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), "bench");
        in_chunks(&names, |n| {
            let services = services.clone();
            async move { services.create(&PostParams::default(), &active_service(&n)).await }
        })
        .await?;
    }
    in_chunks(&names, |n| {
        let api = api.clone();
        let obj = rollout(&n, "app:v1", strategy, None);
        async move { api.create(&PostParams::default(), &obj).await }
    })
    .await?;
    let deploy_secs = wait_all_healthy(&api, count, "app:v1", started).await?;
    let deployed = operator.metrics().await?;
    eprintln!("bench: {count} first deploys Healthy in {deploy_secs:.1}s; updating every template");

    let started = Instant::now();
    set_image(&api, &names, "app:v2").await?;
    let update_secs = wait_all_healthy(&api, count, "app:v2", started).await?;
    // The last status writes of the walk reach the counters before they are read.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let updated = operator.metrics().await?;
    let (peak_rss_mib, cpu_secs) = proc_stats(operator.pid).unwrap_or_default();
    operator.stop().await;
    let name = "sluice_rollout_step_transition_seconds";
    let latency = match (
        Histogram::parse(&updated, name),
        Histogram::parse(&deployed, name),
    ) {
        (Some(after), Some(before)) => {
            let walk = after.since(&before);
            (walk.count, walk.quantile(0.5), walk.quantile(0.99))
        }
        _ => (0.0, None, None),
    };
    let deployed = Requests::parse(&deployed);
    Ok(Report {
        count,
        deploy_secs,
        update_secs,
        idle_rss_mib,
        peak_rss_mib,
        cpu_secs,
        update: Requests::parse(&updated).since(&deployed),
        deploy: deployed.since(&at_start),
        step_latency: latency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_by_verb_and_resource_and_subtracted() {
        let before = Requests::parse(
            "# TYPE x counter\nsluice_k8s_request_by_resource_total{verb=\"get\",resource=\"services\"} 4\n",
        );
        let after = Requests::parse(
            "sluice_k8s_request_by_resource_total{verb=\"get\",resource=\"services\"} 4\n\
             sluice_k8s_request_by_resource_total{verb=\"patch\",resource=\"rollouts.argoproj.io/status\"} 7\n\
             sluice_k8s_request_total{verb=\"GET\",dry_run=\"false\"} 9\n",
        );
        let walk = after.since(&before);
        assert_eq!(walk.total(), 7);
        assert_eq!(walk.of_verb("patch"), 7);
        assert_eq!(walk.of_verb("get"), 0);
    }

    #[test]
    fn the_soak_rollout_runs_its_analysis_as_the_second_step() {
        let ro = rollout("ro-1", "app:v1", Strategy::Canary, Some("success"));
        let steps = ro.spec.strategy.canary.unwrap().steps.unwrap();
        assert_eq!(steps.len(), CANARY_STEPS);
        assert!(steps[1].analysis.is_some());
    }
}
