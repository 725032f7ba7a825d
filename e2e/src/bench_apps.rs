//! `sluice-e2e bench-apps`: N Argo CD Applications of 10 resources each (a Deployment, a headless Service and
//! eight ConfigMaps), every one from its own path of one Git repository served by git daemon, automated sync
//! into its own namespace (CreateNamespace=true). Prints the wall time until all are Synced and Healthy, the
//! operator's peak RSS and CPU seconds, its API requests per Application for that first sync, and then, over an
//! idle window in which nothing changes, what one refresh costs: requests per refresh by kind, dry-run applies
//! and writes (the target is none of either), and how many Applications had their status rewritten. A
//! measurement, not a test: it asserts nothing about speed.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use kube::{
    Api, ResourceExt,
    api::{ListParams, PostParams},
};
use serde_json::{Value, json};
use sluice_crds::{application::Application, applicationset::ApplicationSet};
use tokio::process::Command;

use crate::{
    bench::proc_stats,
    cluster::{ControlPlane, Options, free_port},
    git_server::GitServer,
    harness::{install_crds, kubectl},
};

const NAMESPACE: &str = "argocd";

/// Resources per Application.
pub const RESOURCES: usize = 10;

/// What one run measured.
#[derive(Debug)]
pub struct Report {
    /// Applications.
    pub count: usize,
    /// Seconds from creating the Applications to all Synced and Healthy with a succeeded sync.
    pub sync_secs: f64,
    /// API requests per Application until then.
    pub requests_per_app: f64,
    /// Operator peak resident memory, MiB.
    pub peak_rss_mib: f64,
    /// Operator CPU seconds (user + system) until all were synced.
    pub cpu_secs: f64,
    /// The idle window.
    pub idle: Idle,
}

/// What the operator did in a window where nothing changed.
#[derive(Debug)]
pub struct Idle {
    /// Length of the window, seconds.
    pub secs: f64,
    /// Application reconciles (refreshes) in it.
    pub refreshes: u64,
    /// API requests per refresh, all verbs.
    pub requests_per_refresh: f64,
    /// Reads (GET) per refresh.
    pub gets_per_refresh: f64,
    /// Dry-run requests in the window.
    pub dry_runs: u64,
    /// Writes (POST, PUT, PATCH, DELETE without dryRun) in the window.
    pub writes: u64,
    /// Applications whose resourceVersion changed in the window.
    pub apps_rewritten: usize,
    /// Operator CPU seconds in the window.
    pub cpu_secs: f64,
}

/// The header of [`Report::row`].
pub const HEADER: &str = "apps  resources  synced-healthy-s  peak-rss-MiB  cpu-s  requests/app  | idle-s  refreshes  requests/refresh  GET/refresh  dry-runs  writes  apps-rewritten  idle-cpu-s";

impl Report {
    /// One line under [`HEADER`].
    pub fn row(&self) -> String {
        let i = &self.idle;
        format!(
            "{:>4}  {:>9}  {:>16.1}  {:>12.1}  {:>5.1}  {:>12.1}  | {:>6.0}  {:>9}  {:>16.2}  {:>11.2}  {:>8}  {:>6}  {:>14}  {:>10.2}",
            self.count,
            self.count * RESOURCES,
            self.sync_secs,
            self.peak_rss_mib,
            self.cpu_secs,
            self.requests_per_app,
            i.secs,
            i.refreshes,
            i.requests_per_refresh,
            i.gets_per_refresh,
            i.dry_runs,
            i.writes,
            i.apps_rewritten,
            i.cpu_secs
        )
    }
}

/// The manifests of one Application's path: a Deployment, a headless Service and eight ConfigMaps.
pub fn manifests(app: &str) -> String {
    let mut docs = vec![format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {{app: {app}}}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: registry.local/{app}:1\n"
    )];
    // Headless: the local control plane's Service IP range holds a few hundred.
    docs.push("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  clusterIP: None\n  selector: {app: web}\n  ports:\n  - port: 80\n".to_string());
    for i in 0..RESOURCES - 2 {
        docs.push(format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings-{i}\ndata:\n  app: {app}\n  index: \"{i}\"\n"
        ));
    }
    docs.join("---\n")
}

fn application(name: &str, repo_url: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo_url, "targetRevision": "HEAD", "path": format!("apps/{name}")},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": name},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}, "syncOptions": ["CreateNamespace=true"]},
        }
    })
}

/// One ApplicationSet making [`application`] of every `apps/*` directory of the repository.
fn application_set(repo_url: &str) -> Value {
    let mut template = application("{{path.basename}}", repo_url);
    template["spec"]["source"]["path"] = json!("{{path}}");
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "fleet", "namespace": NAMESPACE},
        "spec": {
            "generators": [{"git": {"repoURL": repo_url, "revision": "HEAD", "directories": [{"path": "apps/*"}]}}],
            "syncPolicy": {"preserveResourcesOnDeletion": true},
            "template": {
                "metadata": {"name": "{{path.basename}}"},
                "spec": template["spec"],
            }
        }
    })
}

/// Waits until the ApplicationSet has made all `count` Applications; prints how long that took.
async fn wait_generated(apps: &Api<Application>, count: usize, started: Instant) -> Result<()> {
    loop {
        let made = apps.list(&ListParams::default().limit(1)).await?;
        let total = made.metadata.remaining_item_count.unwrap_or(0) as usize + made.items.len();
        if total >= count {
            eprintln!(
                "bench-apps: the ApplicationSet generated {count} Applications in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("the ApplicationSet made {total}/{count} Applications in 600 s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether the Application is Synced and Healthy at `revision` after a succeeded sync.
pub fn synced_healthy(app: &Application, revision: &str) -> bool {
    let Ok(v) = serde_json::to_value(app) else {
        return false;
    };
    let f = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or("");
    f("/status/sync/status") == "Synced"
        && f("/status/sync/revision") == revision
        && f("/status/health/status") == "Healthy"
        && f("/status/operationState/phase") == "Succeeded"
}

/// The counters of the operator's `/metrics` this benchmark reads.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counters {
    /// `sluice_k8s_request_total` by (verb, dry_run).
    pub requests: BTreeMap<(String, bool), u64>,
    /// `argocd_app_reconcile_count`.
    pub reconciles: u64,
}

impl Counters {
    /// Reads them from the exposition text.
    pub fn parse(text: &str) -> Counters {
        let mut out = Counters::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("argocd_app_reconcile_count ") {
                out.reconciles = rest.trim().parse().unwrap_or(0);
            } else if let Some(rest) = line.strip_prefix("sluice_k8s_request_total{") {
                let Some((labels, value)) = rest.split_once("} ") else {
                    continue;
                };
                let label = |name: &str| {
                    labels
                        .split(',')
                        .find_map(|kv| kv.strip_prefix(&format!("{name}=\"")))
                        .map(|v| v.trim_end_matches('"').to_string())
                };
                if let (Some(verb), Some(dry)) = (label("verb"), label("dry_run")) {
                    let n = value.trim().parse().unwrap_or(0);
                    out.requests.insert((verb, dry == "true"), n);
                }
            }
        }
        out
    }

    fn total(&self) -> u64 {
        self.requests.values().sum()
    }

    fn sum(&self, keep: impl Fn(&str, bool) -> bool) -> u64 {
        self.requests
            .iter()
            .filter(|((verb, dry), _)| keep(verb, *dry))
            .map(|(_, n)| n)
            .sum()
    }

    /// `self - earlier`, counter by counter.
    pub fn since(&self, earlier: &Counters) -> Counters {
        let requests = self
            .requests
            .iter()
            .map(|(k, n)| (k.clone(), n - earlier.requests.get(k).copied().unwrap_or(0)))
            .collect();
        Counters {
            requests,
            reconciles: self.reconciles - earlier.reconciles,
        }
    }
}

fn is_write(verb: &str) -> bool {
    matches!(verb, "POST" | "PUT" | "PATCH" | "DELETE")
}

/// The benchmark's settings.
pub struct Settings {
    /// Directory of the control-plane binaries.
    pub bin_dir: PathBuf,
    /// The operator binary.
    pub sluice: PathBuf,
    /// The operator's `--app-resync`, seconds.
    pub resync: u64,
    /// Length of the idle window, seconds.
    pub idle: u64,
    /// One ApplicationSet generates the Applications (a Git directories generator) instead of N creates.
    pub appset: bool,
}

/// Runs the benchmark with `count` Applications.
pub async fn run(settings: &Settings, count: usize) -> Result<Report> {
    let dir = std::env::temp_dir().join(format!("sluice-bench-apps-{}", std::process::id()));
    eprintln!("bench-apps: starting a control plane");
    let mut cp = ControlPlane::start(&Options {
        dir: dir.clone(),
        bin_dir: settings.bin_dir.clone(),
        nodes: 10,
    })
    .await?;
    let result = measure(&cp, settings, count, &dir).await;
    cp.stop().await;
    std::fs::remove_dir_all(&dir).ok();
    result
}

struct RunningOperator {
    child: tokio::process::Child,
    pid: u32,
    metrics_url: String,
}

impl RunningOperator {
    async fn start(settings: &Settings, kubeconfig: &Path, dir: &Path) -> Result<Self> {
        let port = free_port()?;
        let log = std::fs::File::create(dir.join("operator.log"))?;
        let mut cmd = Command::new(&settings.sluice);
        cmd.arg("run")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--argocd-namespace={NAMESPACE}"))
            .arg(format!("--app-resync={}", settings.resync))
            .arg(format!("--metrics-addr=127.0.0.1:{port}"))
            .arg(format!("--healthz-addr=127.0.0.1:{}", free_port()?))
            .arg("--webhook-addr=off")
            .arg(format!("--repo-cache-dir={}", dir.join("repos").display()))
            .env("SLUICE_LOG_LEVEL", "warn,sluice::run=info")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        crate::process::die_with_parent(cmd.as_std_mut());
        let child = cmd.spawn().context("starting sluice")?;
        let pid = child.id().context("operator pid")?;
        let op = RunningOperator {
            child,
            pid,
            metrics_url: format!("http://127.0.0.1:{port}/metrics"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while op.counters().await.is_err() {
            if Instant::now() > deadline {
                bail!("the operator's /metrics did not answer in 30 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(op)
    }

    async fn counters(&self) -> Result<Counters> {
        let text = reqwest::get(&self.metrics_url).await?.text().await?;
        Ok(Counters::parse(&text))
    }

    async fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
    }
}

async fn write_repo(git: &GitServer, names: &[String]) -> Result<(String, String)> {
    let repo = git.create_repo("fleet").await?;
    for name in names {
        repo.write(&format!("apps/{name}/resources.yaml"), manifests(name))
            .await?;
    }
    let revision = repo.commit(&format!("{} applications", names.len())).await?;
    Ok((repo.git_url(), revision))
}

async fn create_apps(apps: &Api<Application>, names: &[String], repo_url: &str) -> Result<()> {
    for chunk in names.chunks(50) {
        let creates = chunk.iter().map(|n| {
            let apps = apps.clone();
            let app: Application =
                serde_json::from_value(application(n, repo_url)).expect("valid application");
            async move { apps.create(&PostParams::default(), &app).await }
        });
        for r in futures::future::join_all(creates).await {
            r?;
        }
    }
    Ok(())
}

async fn wait_synced(apps: &Api<Application>, count: usize, revision: &str, started: Instant) -> Result<f64> {
    let deadline = Duration::from_secs(2400);
    let mut reported = Instant::now();
    loop {
        // A busy API server may time a listing out; the next one is a second away.
        let list = match apps.list(&ListParams::default()).await {
            Ok(list) => list,
            Err(e) if started.elapsed() < deadline => {
                eprintln!("bench-apps: listing the Applications failed ({e}); again in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let done = list.items.iter().filter(|a| synced_healthy(a, revision)).count();
        if done >= count {
            return Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() > deadline {
            bail!("only {done}/{count} Synced and Healthy after {deadline:?}");
        }
        if reported.elapsed() > Duration::from_secs(15) {
            eprintln!(
                "bench-apps: {done}/{count} Synced and Healthy after {:.0}s",
                started.elapsed().as_secs_f64()
            );
            reported = Instant::now();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn versions(apps: &Api<Application>) -> Result<BTreeMap<String, String>> {
    let list = apps.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .map(|a| (a.name_any(), a.resource_version().unwrap_or_default()))
        .collect())
}

async fn measure_idle(op: &RunningOperator, apps: &Api<Application>, settings: &Settings) -> Result<Idle> {
    // Let the last writes of the first sync (status after health, events) land before the window opens.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = op.counters().await?;
    let versions_before = versions(apps).await?;
    let cpu_before = proc_stats(op.pid).map_or(0.0, |s| s.1);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(settings.idle)).await;
    let window = op.counters().await?.since(&before);
    let secs = started.elapsed().as_secs_f64();
    let cpu_secs = proc_stats(op.pid).map_or(0.0, |s| s.1) - cpu_before;
    let versions_after = versions(apps).await?;
    // The listing itself is the benchmark's, not the operator's; the operator's counters exclude it.
    let apps_rewritten = versions_after
        .iter()
        .filter(|(name, rv)| versions_before.get(*name) != Some(rv))
        .count();
    let per = |n: u64| n as f64 / window.reconciles.max(1) as f64;
    Ok(Idle {
        secs,
        refreshes: window.reconciles,
        requests_per_refresh: per(window.total()),
        gets_per_refresh: per(window.sum(|verb, _| verb == "GET")),
        dry_runs: window.sum(|_, dry| dry),
        writes: window.sum(|verb, dry| !dry && is_write(verb)),
        apps_rewritten,
        cpu_secs,
    })
}

async fn measure(cp: &ControlPlane, settings: &Settings, count: usize, dir: &Path) -> Result<Report> {
    let info = &cp.info;
    let client = info.client().await?;
    install_crds(info, &client).await?;
    kubectl(info, &["create", "namespace", NAMESPACE], None)?;
    let names: Vec<String> = (0..count).map(|i| format!("app-{i:04}")).collect();
    let git = GitServer::start().await?;
    let (repo_url, revision) = write_repo(&git, &names).await?;
    eprintln!("bench-apps: {repo_url} at {revision:.7} holds {count} paths of {RESOURCES} resources");

    let op = RunningOperator::start(settings, &info.kubeconfig, dir).await?;
    let start_counters = op.counters().await?;
    let apps: Api<Application> = Api::namespaced(client.clone(), NAMESPACE);
    let started = Instant::now();
    if settings.appset {
        eprintln!("bench-apps: creating one ApplicationSet for {count} Applications");
        let sets: Api<ApplicationSet> = Api::namespaced(client.clone(), NAMESPACE);
        let set: ApplicationSet = serde_json::from_value(application_set(&repo_url))?;
        sets.create(&PostParams::default(), &set).await?;
        wait_generated(&apps, count, started).await?;
    } else {
        eprintln!("bench-apps: creating {count} Applications");
        create_apps(&apps, &names, &repo_url).await?;
    }
    let sync_secs = wait_synced(&apps, count, &revision, started).await?;
    let synced = op.counters().await?.since(&start_counters);
    let (peak_rss_mib, cpu_secs) = proc_stats(op.pid).unwrap_or_default();
    eprintln!(
        "bench-apps: all {count} Synced and Healthy in {sync_secs:.1}s; idle for {}s (--app-resync={})",
        settings.idle, settings.resync
    );
    let idle = measure_idle(&op, &apps, settings).await;
    let peak_rss_mib = proc_stats(op.pid).map_or(peak_rss_mib, |s| s.0);
    op.stop().await;
    Ok(Report {
        count,
        sync_secs,
        requests_per_app: synced.total() as f64 / count as f64,
        peak_rss_mib,
        cpu_secs,
        idle: idle?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_holds_ten_resources_of_three_kinds() {
        let text = manifests("app-0007");
        let docs: Vec<serde_yaml::Value> = text
            .split("---\n")
            .map(|d| serde_yaml::from_str(d).expect("yaml"))
            .collect();
        assert_eq!(docs.len(), RESOURCES);
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds[..2], ["Deployment", "Service"]);
        assert!(kinds[2..].iter().all(|k| *k == "ConfigMap"));
        assert!(text.contains("registry.local/app-0007:1"));
    }

    #[test]
    fn counters_are_read_from_the_exposition_and_subtracted() {
        let text = "# HELP x\nsluice_k8s_request_total{verb=\"GET\",dry_run=\"false\"} 12\n\
                    sluice_k8s_request_total{verb=\"PATCH\",dry_run=\"true\"} 3\n\
                    argocd_app_reconcile_sum 1.5\nargocd_app_reconcile_count 4\n";
        let later = Counters::parse(text);
        assert_eq!(later.reconciles, 4);
        assert_eq!(later.requests[&("GET".to_string(), false)], 12);
        let earlier = Counters::parse(
            "sluice_k8s_request_total{verb=\"GET\",dry_run=\"false\"} 2\nargocd_app_reconcile_count 1\n",
        );
        let d = later.since(&earlier);
        assert_eq!(d.reconciles, 3);
        assert_eq!(d.total(), 13);
        assert_eq!(d.sum(|_, dry| dry), 3);
        assert_eq!(d.sum(|v, dry| !dry && is_write(v)), 0);
    }
}
