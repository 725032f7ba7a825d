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
    cluster::{ControlPlane, Options},
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
    /// Operator peak resident memory, MiB.
    pub peak_rss_mib: f64,
    /// Operator CPU seconds (user + system) over the whole run.
    pub cpu_secs: f64,
    /// API requests the operator sent, per rollout.
    pub requests_per_rollout: f64,
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

fn rollout(name: &str, image: &str, strategy: Strategy) -> serde_json::Value {
    let strategy = match strategy {
        Strategy::Canary => json!({"canary": {"steps": [
            {"setWeight": 34},
            {"pause": {"duration": 0}},
            {"setWeight": 67}
        ]}}),
        Strategy::BlueGreen => json!({"blueGreen": {"activeService": format!("{name}-active")}}),
    };
    json!({
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
    })
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

async fn wait_all_healthy(api: &Api<Rollout>, count: usize, image: &str, started: Instant) -> Result<f64> {
    let deadline = Duration::from_secs(1800);
    loop {
        let list = api.list(&ListParams::default()).await?;
        let done = list
            .items
            .iter()
            .filter(|r| {
                let st = r.status.as_ref();
                let image_now = r
                    .spec
                    .template
                    .as_ref()
                    .and_then(|t| t.spec.as_ref())
                    .map(|s| s.containers[0].image.clone());
                st.and_then(|s| s.phase.as_deref()) == Some("Healthy")
                    && st.is_some_and(|s| s.stable_rs.is_some() && s.stable_rs == s.current_pod_hash)
                    && st.and_then(|s| s.observed_generation.clone())
                        == r.metadata.generation.map(|g| g.to_string())
                    && image_now.flatten().as_deref() == Some(image)
            })
            .count();
        if done >= count {
            return Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > deadline {
            bail!("only {done}/{count} Healthy after {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
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
    let log_path = dir.join("operator.log");
    let log = std::fs::File::create(&log_path)?;
    let mut cmd = Command::new(sluice);
    cmd.args(["run", "--namespace", "bench", "--kubeconfig"])
        .arg(&info.kubeconfig)
        .args(["--metrics-addr", "127.0.0.1:0", "--healthz-addr", "127.0.0.1:0"])
        .env("SLUICE_LOG_LEVEL", "warn,sluice::run=info")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    crate::process::die_with_parent(cmd.as_std_mut());
    let mut operator = cmd.spawn().context("starting sluice")?;
    let pid = operator.id().context("operator pid")?;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let api: Api<Rollout> = Api::namespaced(client.clone(), "bench");
    eprintln!("bench: creating {count} rollouts");
    let started = Instant::now();
    let names: Vec<String> = (0..count).map(|i| format!("ro-{i:05}")).collect();
    if strategy == Strategy::BlueGreen {
        let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), "bench");
        for chunk in names.chunks(50) {
            let creates = chunk.iter().map(|n| {
                let services = services.clone();
                async move { services.create(&PostParams::default(), &active_service(n)).await }
            });
            for r in futures::future::join_all(creates).await {
                r?;
            }
        }
    }
    for chunk in names.chunks(50) {
        let creates = chunk.iter().map(|n| {
            let api = api.clone();
            let obj: Rollout = serde_json::from_value(rollout(n, "app:v1", strategy)).expect("valid rollout");
            async move { api.create(&PostParams::default(), &obj).await }
        });
        for r in futures::future::join_all(creates).await {
            r?;
        }
    }
    let deploy_secs = wait_all_healthy(&api, count, "app:v1", started).await?;
    eprintln!("bench: {count} first deploys Healthy in {deploy_secs:.1}s; updating every template");

    let started = Instant::now();
    let patch =
        json!([{"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "app:v2"}]);
    for chunk in names.chunks(50) {
        let patches = chunk.iter().map(|n| {
            let api = api.clone();
            let patch: json_patch::Patch = serde_json::from_value(patch.clone()).expect("patch");
            async move {
                api.patch(n, &PatchParams::default(), &Patch::<()>::Json(patch))
                    .await
            }
        });
        for r in futures::future::join_all(patches).await {
            r?;
        }
    }
    let update_secs = wait_all_healthy(&api, count, "app:v2", started).await?;
    let (peak_rss_mib, cpu_secs) = proc_stats(pid).unwrap_or_default();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    let _ = tokio::time::timeout(Duration::from_secs(15), operator.wait()).await;
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let requests = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["fields"]["api_requests"].as_u64())
        .unwrap_or(0);
    Ok(Report {
        count,
        deploy_secs,
        update_secs,
        peak_rss_mib,
        cpu_secs,
        requests_per_rollout: requests as f64 / count as f64,
    })
}
