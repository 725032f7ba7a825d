//! `sluice run`: connect, wait for the CRDs, keep lean caches of the watched kinds, stop cleanly on SIGTERM.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use futures::future::select_all;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client, Config,
    api::ApiResource,
    config::{KubeConfigOptions, Kubeconfig},
};
use tracing::{info, warn};

/// Flags of `sluice run`; each has an environment-variable twin.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Path of a kubeconfig; in-cluster config or $KUBECONFIG when omitted.
    #[arg(long, env = "SLUICE_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Watch only this namespace; all namespaces when omitted.
    #[arg(long, env = "SLUICE_NAMESPACE")]
    pub namespace: Option<String>,
    /// Namespaced mode: run in one namespace and need no cluster-scoped RBAC (a Role in that namespace is
    /// enough). The namespace is --namespace, else $POD_NAMESPACE, else the service account's, else the
    /// kubeconfig context's. Nothing cluster-scoped is read: CRDs count as installed when their kinds answer
    /// in the namespace, ClusterAnalysisTemplates are not watched (a Rollout that references one is told so
    /// in its status), the Lease defaults to the namespace, and the Application controller is off.
    #[arg(long, env = "SLUICE_NAMESPACED")]
    pub namespaced: bool,
    /// Handle only the Rollouts and AnalysisRuns labelled `argo-rollouts.argoproj.io/controller-instance-id`
    /// with this id (the AnalysisRuns of a labelled Rollout carry its label); without an id, only those
    /// without the label. Several controllers can so share a cluster. Applications are not filtered.
    #[arg(long, env = "SLUICE_INSTANCE_ID")]
    pub instance_id: Option<String>,
    /// Run the Application and ApplicationSet controller (once Argo CD's CRDs are established); `false`
    /// leaves Applications to another controller and needs none of their RBAC.
    #[arg(long, env = "SLUICE_APPLICATIONS", default_value_t = true, action = clap::ArgAction::Set)]
    pub applications: bool,
    /// Rollouts reconciled at once (upstream's `--rollout-threads`).
    #[arg(long, env = "SLUICE_ROLLOUT_THREADS", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub rollout_threads: u16,
    /// AnalysisRuns reconciled (measured) at once (upstream's `--analysis-threads`).
    #[arg(long, env = "SLUICE_ANALYSIS_THREADS", default_value_t = 30, value_parser = clap::value_parser!(u16).range(1..))]
    pub analysis_threads: u16,
    /// Experiments reconciled at once (upstream's `--experiment-threads`).
    #[arg(long, env = "SLUICE_EXPERIMENT_THREADS", default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    pub experiment_threads: u16,
    /// Log level filter (tracing's EnvFilter syntax).
    #[arg(long, env = "SLUICE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// How long to wait for the CRDs to be established before giving up.
    #[arg(long, env = "SLUICE_CRD_WAIT_SECONDS", default_value_t = 120)]
    pub crd_wait_seconds: u64,
    /// API version of Istio's VirtualService and DestinationRule.
    #[arg(long, env = "SLUICE_ISTIO_API_VERSION", default_value = "v1alpha3")]
    pub istio_api_version: String,
    /// API version of the SMI TrafficSplit (`split.smi-spec.io`) that Rollouts create and update: v1alpha1
    /// (weights as quantities), v1alpha2 or v1alpha3.
    #[arg(long, env = "SLUICE_TRAFFIC_SPLIT_API_VERSION", default_value = "v1alpha1")]
    pub traffic_split_api_version: sluice_traffic::smi::SmiVersion,
    /// Address of the Prometheus metrics endpoint (`/metrics`).
    #[arg(long, env = "SLUICE_METRICS_ADDR", default_value = "0.0.0.0:8090")]
    pub metrics_addr: std::net::SocketAddr,
    /// Address of the health endpoints (`/healthz`, `/readyz`).
    #[arg(long, env = "SLUICE_HEALTHZ_ADDR", default_value = "0.0.0.0:8080")]
    pub healthz_addr: std::net::SocketAddr,
    /// The namespace of the GitOps control plane: its Applications are tracked by their bare name, and
    /// repository Secrets and `argocd-secret` are read there (Argo CD's `argocd`).
    #[arg(long, env = "SLUICE_ARGOCD_NAMESPACE", default_value = "argocd")]
    pub argocd_namespace: String,
    /// Further namespaces whose Applications are reconciled, comma-separated, `*` for all (Argo CD's
    /// "apps in any namespace"; off by default).
    #[arg(long, env = "SLUICE_APPLICATION_NAMESPACES", value_delimiter = ',')]
    pub application_namespaces: Vec<String>,
    /// Seconds between comparisons of each Application with the latest commit (with up to 10 % jitter).
    #[arg(long, env = "SLUICE_APP_RESYNC", default_value_t = 180)]
    pub app_resync: u64,
    /// Directory of the Git mirrors and checkouts.
    #[arg(long, env = "SLUICE_REPO_CACHE_DIR")]
    pub repo_cache_dir: Option<PathBuf>,
    /// The kustomize binary.
    #[arg(long, env = "SLUICE_KUSTOMIZE", default_value = "kustomize")]
    pub kustomize: PathBuf,
    /// The helm binary.
    #[arg(long, env = "SLUICE_HELM", default_value = "helm")]
    pub helm: PathBuf,
    /// Address of the Git webhook endpoint (`POST /api/webhook`); `off` disables it.
    #[arg(long, env = "SLUICE_WEBHOOK_ADDR", default_value = "0.0.0.0:8081")]
    pub webhook_addr: String,
    /// Lead through a Lease so that only one replica writes (default: on in a cluster, off with a kubeconfig).
    #[arg(long, env = "SLUICE_LEADER_ELECT", num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: Option<bool>,
    /// Namespace of the Lease (default: the watched namespace, --namespace or namespaced mode's, else
    /// $POD_NAMESPACE, else the service account's, else argo-rollouts).
    #[arg(long, env = "SLUICE_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Namespace of the notifications ConfigMap `argo-rollouts-notification-configmap` and Secret
    /// `argo-rollouts-notification-secret` (default: namespaced mode's namespace, else $POD_NAMESPACE, else
    /// argo-rollouts, as upstream).
    #[arg(long, env = "SLUICE_NOTIFICATIONS_NAMESPACE")]
    pub notifications_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, env = "SLUICE_LEADER_ELECTION_LEASE_NAME", default_value = crate::leader::DEFAULT_LEASE_NAME)]
    pub leader_election_lease_name: String,
    /// How long a standby waits after the leader's last renewal before taking over.
    #[arg(long, env = "SLUICE_LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = go_duration)]
    pub leader_election_lease_duration: Duration,
    /// How long the leader tries to renew before it stops leading.
    #[arg(long, env = "SLUICE_LEADER_ELECTION_RENEW_DEADLINE", default_value = "10s", value_parser = go_duration)]
    pub leader_election_renew_deadline: Duration,
    /// Time between tries to acquire or renew the Lease.
    #[arg(long, env = "SLUICE_LEADER_ELECTION_RETRY_PERIOD", default_value = "2s", value_parser = go_duration)]
    pub leader_election_retry_period: Duration,
}

fn go_duration(s: &str) -> Result<Duration, String> {
    sluice_analysis::duration::parse_go_duration(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?} is not a positive duration such as 15s or 1m"))
}

impl Args {
    /// What this process watches, `default_namespace` being the kubeconfig context's namespace (or the
    /// service account's in a cluster).
    fn scope(&self, default_namespace: &str) -> Result<crate::scope::Scope> {
        let instance_id = self.instance_id.clone().filter(|id| !id.is_empty());
        if let Some(why) = instance_id.as_deref().and_then(crate::scope::invalid_instance_id) {
            anyhow::bail!(why);
        }
        let namespace = if self.namespaced {
            let pod = std::env::var("POD_NAMESPACE").ok();
            let service_account = std::fs::read_to_string(crate::scope::SERVICE_ACCOUNT_NAMESPACE_FILE).ok();
            let ns = crate::scope::namespaced_namespace(
                self.namespace.as_deref(),
                pod.as_deref(),
                service_account.as_deref(),
                Some(default_namespace),
            )
            .context("--namespaced: no namespace (set --namespace)")?;
            Some(ns)
        } else {
            self.namespace.clone()
        };
        Ok(crate::scope::Scope {
            namespace,
            namespaced: self.namespaced,
            instance_id,
        })
    }

    /// The election's settings, or None when this process leads without one. In namespaced mode the Lease
    /// lives in the watched namespace unless told otherwise.
    fn election(&self, scope: &crate::scope::Scope) -> Result<Option<crate::leader::Settings>> {
        let in_cluster = self.kubeconfig.is_none() && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
        if !self.leader_elect.unwrap_or(in_cluster) {
            return Ok(None);
        }
        if self.leader_election_renew_deadline >= self.leader_election_lease_duration {
            anyhow::bail!(
                "--leader-election-renew-deadline must be shorter than --leader-election-lease-duration"
            );
        }
        if self.leader_election_retry_period >= self.leader_election_renew_deadline {
            anyhow::bail!(
                "--leader-election-retry-period must be shorter than --leader-election-renew-deadline"
            );
        }
        let namespace = self
            .leader_election_namespace
            .clone()
            .or_else(|| scope.namespace.clone())
            .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()))
            .or_else(|| {
                std::fs::read_to_string(crate::scope::SERVICE_ACCOUNT_NAMESPACE_FILE)
                    .ok()
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty())
            })
            .unwrap_or_else(|| "argo-rollouts".into());
        Ok(Some(crate::leader::Settings {
            namespace,
            name: self.leader_election_lease_name.clone(),
            identity: crate::leader::identity(),
            lease_duration: self.leader_election_lease_duration,
            renew_deadline: self.leader_election_renew_deadline,
            retry_period: self.leader_election_retry_period,
        }))
    }

    /// Where the notifications configuration is read.
    fn notifications_namespace(&self, scope: &crate::scope::Scope) -> String {
        self.notifications_namespace
            .clone()
            .filter(|n| !n.is_empty())
            // Namespaced mode reads nothing outside its namespace.
            .or_else(|| scope.namespace.clone().filter(|_| scope.namespaced))
            .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()))
            .unwrap_or_else(|| "argo-rollouts".into())
    }

    fn application_config(
        &self,
    ) -> Result<(
        crate::application::controller::Config,
        Option<std::net::SocketAddr>,
    )> {
        let webhook = match self.webhook_addr.as_str() {
            "off" | "" => None,
            addr => Some(addr.parse().with_context(|| format!("--webhook-addr {addr}"))?),
        };
        let config = crate::application::controller::Config {
            control_plane_namespace: self.argocd_namespace.clone(),
            application_namespaces: self
                .application_namespaces
                .iter()
                .filter(|n| !n.is_empty())
                .cloned()
                .collect(),
            resync: Duration::from_secs(self.app_resync.max(1)),
            repo_cache: self
                .repo_cache_dir
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join("sluice-repos")),
            tools: sluice_gitops::render::Tools::new(self.kustomize.clone(), self.helm.clone()),
        };
        Ok((config, webhook))
    }
}

/// JSON logs on stderr.
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(args: Args) -> Result<()> {
    let requests = crate::apicount::RequestCounter::default();
    let metrics = crate::metrics::Metrics::new();
    let _ = metrics.caches().requests.set(requests.clone());
    let config = kube_config(&args).await?;
    let scope = args.scope(&config.default_namespace)?;
    let election = args.election(&scope)?;
    let (lead_tx, leading) = tokio::sync::watch::channel(election.is_none());
    let readiness = crate::ready::Readiness::new(
        leading,
        election.as_ref().map(|e| format!("{}/{}", e.namespace, e.name)),
    );
    let server = tokio::spawn(crate::metrics::serve(
        metrics.clone(),
        readiness.clone(),
        args.metrics_addr,
        args.healthz_addr,
    ));
    let client = requests.client(config)?;
    let version = client
        .apiserver_version()
        .await
        .context("contacting the API server")?;
    info!(server_version = %version.git_version, "connected");

    let mut shutdown = Box::pin(shutdown_signal());
    tokio::select! {
        r = wait_for_crds(&client, &scope, Duration::from_secs(args.crd_wait_seconds)) => r?,
        s = &mut shutdown => { info!(signal = s, "shutting down before the CRDs were established"); return Ok(()); }
    }

    let (release_tx, release_rx) = tokio::sync::watch::channel(false);
    let mut elector = match election {
        Some(settings) => {
            let elector = crate::leader::Elector::new(client.clone(), settings);
            tokio::spawn(elector.run(lead_tx, release_rx))
        }
        None => tokio::spawn(async move {
            let _keep = (lead_tx, release_rx);
            std::future::pending().await
        }),
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (controllers, watches) = spawn_controllers(&args, &client, &scope, &metrics, &readiness, stop_rx)?;
    // What filling the caches freed goes back at once, then every 30 s.
    let synced = readiness.clone();
    let trimming = tokio::spawn(async move {
        synced.all_synced().await;
        crate::alloc::return_freed().await
    });

    let mut lost = None;
    tokio::select! {
        s = &mut shutdown => info!(signal = s, "shutting down"),
        (done, _, _) = select_all(watches) => warn!(?done, "a watch ended unexpectedly"),
        r = server => match r {
            Ok(Err(e)) => return Err(e),
            other => warn!(?other, "the metrics server ended unexpectedly"),
        },
        r = &mut elector => lost = Some(match r {
            Ok(Err(e)) => e.to_string(),
            other => format!("the election ended: {other:?}"),
        }),
    }
    let _ = stop_tx.send(true);
    trimming.abort();
    if let Some(why) = &lost {
        // The gate closed with the lease: nothing more is written; a restart makes this a standby.
        tracing::error!(reason = %why, "stopped leading; exiting");
    }
    // Reconciles in flight finish; no new one starts.
    let all = futures::future::join_all(controllers);
    if tokio::time::timeout(Duration::from_secs(10), all).await.is_err() {
        warn!("the controllers did not stop within 10 s");
    }
    // Only now that nothing writes any more may a standby take over.
    let _ = release_tx.send(true);
    if lost.is_none() {
        let _ = tokio::time::timeout(Duration::from_secs(5), elector).await;
    }
    let (by_method, total) = requests.snapshot();
    let by_method: std::collections::BTreeMap<_, _> = by_method.into_iter().collect();
    let by_resource: std::collections::BTreeMap<String, u64> = requests
        .by_resource()
        .into_iter()
        .map(|((verb, resource), n)| (format!("{verb} {resource}"), n))
        .collect();
    let by_resource = serde_json::to_string(&by_resource).unwrap_or_default();
    info!(api_requests = total, ?by_method, %by_resource, "stopped");
    match lost {
        Some(why) => Err(anyhow::anyhow!("stopped leading: {why}")),
        None => Ok(()),
    }
}

/// A spawned controller or watch.
type Task = tokio::task::JoinHandle<()>;

/// Starts the Rollout, AnalysisRun and (outside namespaced mode) Application controllers, each stopping once
/// `stop` turns true; returns them and the watches whose end is fatal.
fn spawn_controllers(
    args: &Args,
    client: &Client,
    scope: &crate::scope::Scope,
    metrics: &std::sync::Arc<crate::metrics::Metrics>,
    readiness: &std::sync::Arc<crate::ready::Readiness>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(Vec<Task>, Vec<Task>)> {
    let stopped = |rx: tokio::sync::watch::Receiver<bool>| async move {
        let mut rx = rx;
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let (runs, runs_source, [runs_for_rollouts, runs_for_analysis, runs_for_experiments]) =
        crate::analysisrun::controller::shared_cache(client, scope, readiness);
    let (replica_sets, replica_sets_source, [rs_for_rollouts, rs_for_experiments]) =
        crate::rollout::controller::shared_replica_sets(client, scope, readiness);
    let notifications_namespace = args.notifications_namespace(scope);
    let notifier = crate::notifications::Notifier::start(client, &notifications_namespace, metrics.clone());
    info!(namespace = %notifications_namespace, "reading the notifications configuration");
    let mut controllers = vec![
        tokio::spawn(crate::rollout::controller::run(
            client.clone(),
            scope.clone(),
            crate::rollout::RouterConfig {
                istio_version: args.istio_api_version.clone(),
                smi_version: args.traffic_split_api_version,
            },
            crate::rollout::controller::Shared {
                metrics: metrics.clone(),
                readiness: readiness.clone(),
                notifier,
                workers: args.rollout_threads,
            },
            (runs.clone(), runs_for_rollouts),
            (replica_sets.clone(), rs_for_rollouts),
            stopped(stop.clone()),
        )),
        tokio::spawn(crate::experiment::controller::run(
            client.clone(),
            (scope.clone(), args.experiment_threads),
            metrics.clone(),
            readiness.clone(),
            (runs.clone(), runs_for_experiments),
            (replica_sets, rs_for_experiments),
            stopped(stop.clone()),
        )),
        tokio::spawn(crate::analysisrun::controller::run(
            client.clone(),
            scope.namespace.clone(),
            args.analysis_threads,
            metrics.clone(),
            readiness.clone(),
            (runs, runs_for_analysis),
            stopped(stop.clone()),
        )),
    ];
    if scope.namespaced {
        // Syncing an Application reads and writes whatever kinds its manifests hold, cluster-scoped ones
        // included: that is not a namespaced controller's job.
        info!("namespaced mode: the Application controller is off");
    } else if !args.applications {
        info!("--applications=false: the Application controller is off");
    } else {
        let (app_config, webhook_addr) = args.application_config()?;
        controllers.push(tokio::spawn(applications_when_installed(
            client.clone(),
            app_config,
            webhook_addr,
            metrics.clone(),
            readiness.clone(),
            stopped(stop),
        )));
    }
    info!(
        namespace = scope.namespace.as_deref().unwrap_or("*"),
        namespaced = scope.namespaced,
        instance = %scope.instance_selector(),
        "watching rollouts, experiments and analysisruns{}",
        if scope.namespaced { "" } else { " (and applications once installed)" }
    );
    Ok((
        controllers,
        vec![tokio::spawn(runs_source), tokio::spawn(replica_sets_source)],
    ))
}

/// Runs the Application controller once its CRD is established (watching for it, so a cluster without Argo
/// CD's CRDs still gets Rollouts served).
async fn applications_when_installed(
    client: Client,
    config: crate::application::controller::Config,
    webhook_addr: Option<std::net::SocketAddr>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    readiness: std::sync::Arc<crate::ready::Readiness>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = |name: &'static str| {
        kube::runtime::wait::await_condition(
            crds.clone(),
            name,
            kube::runtime::wait::conditions::is_crd_established(),
        )
    };
    // The Application controller reads AppProjects: both of Argo CD's CRDs must be there.
    let established = async {
        crd("applications.argoproj.io").await?;
        crd("appprojects.argoproj.io").await
    };
    let mut shutdown = Box::pin(shutdown);
    tokio::select! {
        r = established => if let Err(e) = r {
            warn!(error = %e, "watching for the Application CRD failed; the Application controller is off");
            return;
        },
        _ = &mut shutdown => return,
    }
    info!(
        "applications.argoproj.io and appprojects.argoproj.io are established: starting the Application controller"
    );
    crate::application::controller::run(client, config, webhook_addr, metrics, readiness, shutdown).await;
}

async fn kube_config(args: &Args) -> Result<Config> {
    Ok(match &args.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
        }
        None => Config::infer()
            .await
            .context("no kubeconfig and not running in a cluster")?,
    })
}

/// Waits until every required CRD is Established, logging what it still waits for. In namespaced mode a CRD
/// counts as established when its kind answers in the namespace, and ClusterAnalysisTemplates are not needed.
async fn wait_for_crds(client: &Client, scope: &crate::scope::Scope, timeout: Duration) -> Result<()> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_missing = Vec::new();
    loop {
        let mut missing = Vec::new();
        for (name, resource) in required_crds() {
            let established = match (&scope.namespace, scope.namespaced) {
                (_, true) if name == CLUSTER_TEMPLATES_CRD => true,
                (Some(ns), true) => crate::scope::served_in(client, ns, &resource)
                    .await
                    .with_context(|| format!("asking whether {name} is served in namespace {ns}"))?,
                _ => match crds.get_opt(name).await? {
                    Some(crd) => crd
                        .status
                        .and_then(|s| s.conditions)
                        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True")),
                    None => false,
                },
            };
            if !established {
                missing.push(name);
            }
        }
        if missing.is_empty() {
            info!("CRDs established");
            return Ok(());
        }
        if missing != last_missing {
            info!(
                ?missing,
                "waiting for CRDs to be established (install them with `sluice crd | kubectl apply --server-side -f -`)"
            );
            last_missing = missing.clone();
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("CRDs not established after {timeout:?}: {}", missing.join(", "));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The CRD of ClusterAnalysisTemplates, which namespaced mode does without.
const CLUSTER_TEMPLATES_CRD: &str = "clusteranalysistemplates.argoproj.io";

/// The CRDs the Rollout and AnalysisRun controllers need before they can watch anything, with their kinds.
/// The Application controller starts on its own once `applications.argoproj.io` is established.
fn required_crds() -> [(&'static str, ApiResource); 5] {
    use sluice_crds::{analysis, experiment::Experiment, rollout::Rollout};
    [
        ("rollouts.argoproj.io", ApiResource::erase::<Rollout>(&())),
        ("experiments.argoproj.io", ApiResource::erase::<Experiment>(&())),
        (
            "analysisruns.argoproj.io",
            ApiResource::erase::<analysis::AnalysisRun>(&()),
        ),
        (
            "analysistemplates.argoproj.io",
            ApiResource::erase::<analysis::AnalysisTemplate>(&()),
        ),
        (
            CLUSTER_TEMPLATES_CRD,
            ApiResource::erase::<analysis::ClusterAnalysisTemplate>(&()),
        ),
    ]
}

async fn shutdown_signal() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}
