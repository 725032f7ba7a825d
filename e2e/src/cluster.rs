//! A local Kubernetes control plane started from binaries: etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler, and kwok playing the kubelets so that pods become Running and Ready without containers.
//!
//! [`ControlPlane::start`] runs inside the supervisor process (`sluice-e2e cluster up`). Every component is its
//! child and receives SIGKILL when the supervisor dies, however it dies, so that no process outlives it.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::{
    Api, Client, Config,
    api::{ListParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

use crate::pki;

/// What a started cluster tells its users (written to `<dir>/cluster.json` and printed by `cluster up`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The cluster's working directory (PKI, data, logs).
    pub dir: PathBuf,
    /// Path of the admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The API server's URL.
    pub server: String,
    /// Directory of the control-plane binaries (kubectl among them).
    pub bin_dir: PathBuf,
    /// Process id of the supervisor.
    pub supervisor_pid: u32,
    /// Process ids of the components, by name.
    #[serde(default)]
    pub component_pids: Vec<(String, u32)>,
}

impl ClusterInfo {
    /// A client for the cluster's admin user.
    pub async fn client(&self) -> Result<Client> {
        client_from(&self.kubeconfig).await
    }

    /// Path of kubectl.
    pub fn kubectl(&self) -> PathBuf {
        self.bin_dir.join("kubectl")
    }
}

/// A client built from a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> Result<Client> {
    let kc =
        Kubeconfig::read_from(kubeconfig).with_context(|| format!("reading {}", kubeconfig.display()))?;
    let mut config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    config.read_timeout = Some(Duration::from_secs(60));
    Ok(Client::try_from(config)?)
}

/// Options of a new cluster.
#[derive(Clone, Debug)]
pub struct Options {
    /// Working directory; created if missing.
    pub dir: PathBuf,
    /// Directory with kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok and
    /// kwok-stages.yaml.
    pub bin_dir: PathBuf,
    /// Number of kwok nodes.
    pub nodes: usize,
}

/// A running control plane; dropping it kills every component.
pub struct ControlPlane {
    /// What users of the cluster need.
    pub info: ClusterInfo,
    children: Vec<(&'static str, Child)>,
}

/// What the API server's start leaves for the components started after it.
struct ApiStarted {
    client: Client,
    kubeconfig: PathBuf,
    pki: pki::Pki,
}

async fn wait_default_namespace(client: &Client) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    wait_for("the default namespace", Duration::from_secs(30), || {
        let namespaces = namespaces.clone();
        async move { namespaces.get("default").await.map(|_| ()).map_err(Into::into) }
    })
    .await
}

/// A free TCP port on 127.0.0.1, below the kernel's ephemeral range: a port the kernel hands out (`bind` to
/// port 0) is also what any outgoing connection may take as its source port before the component listens on
/// it, which has failed a start with "address already in use". Below the range only another `free_port` can
/// clash; the start is random and each candidate is bound once to see it is free.
pub fn free_port() -> Result<u16> {
    // Ports handed out by this process: none is handed out twice, even before its component binds it.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let (low, _) = ephemeral_range();
    let floor = 10_000u16;
    let mut given = GIVEN.lock().map_err(|_| anyhow!("port lock poisoned"))?;
    if low > floor + 1_000 {
        let span = u32::from(low - floor);
        let mut seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ std::process::id().rotate_left(16))
            .unwrap_or_default()
            | 1;
        for _ in 0..256 {
            // xorshift: cheap, and different in each process and call.
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let port = floor + (seed % span) as u16;
            if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
                given.push(port);
                return Ok(port);
            }
        }
    }
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    given.push(port);
    Ok(port)
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`), Linux's default when unreadable.
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .unwrap_or((32_768, 60_999))
}

impl ControlPlane {
    /// Starts etcd, the API server, the controller manager, the scheduler and kwok, creates the kwok nodes and
    /// waits until the API is ready and every node is Ready.
    pub async fn start(opts: &Options) -> Result<Self> {
        let (mut cp, api) = Self::start_api(opts).await?;
        cp.start_workers(opts, &api).await?;
        std::fs::write(
            opts.dir.join("cluster.json"),
            serde_json::to_vec_pretty(&cp.info)?,
        )?;
        Ok(cp)
    }

    /// Starts etcd and the API server alone (a cluster to apply objects to, without controllers or nodes)
    /// and waits until the API is ready and the `default` namespace exists.
    pub async fn start_api_only(opts: &Options) -> Result<Self> {
        let (cp, api) = Self::start_api(opts).await?;
        wait_default_namespace(&api.client).await?;
        Ok(cp)
    }

    async fn start_api(opts: &Options) -> Result<(Self, ApiStarted)> {
        let dir = &opts.dir;
        let bin = &opts.bin_dir;
        for b in ["etcd", "kube-apiserver", "kubectl"] {
            if !bin.join(b).is_file() {
                bail!(
                    "{} is missing; run e2e/scripts/build-bins.sh",
                    bin.join(b).display()
                );
            }
        }
        std::fs::create_dir_all(dir.join("logs"))?;
        let pki_dir = dir.join("pki");
        let pki = pki::generate(&pki_dir)?;

        let etcd_port = free_port()?;
        let etcd_peer = free_port()?;
        let api_port = free_port()?;
        let server = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, pki::kubeconfig(&pki, &server))?;

        let info = ClusterInfo {
            dir: dir.clone(),
            kubeconfig: kubeconfig.clone(),
            server: server.clone(),
            bin_dir: bin.clone(),
            supervisor_pid: std::process::id(),
            component_pids: Vec::new(),
        };
        let mut cp = ControlPlane {
            info,
            children: Vec::new(),
        };
        let p = |f: &Path| f.display().to_string();

        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer}");
        cp.spawn(
            "etcd",
            &[
                "--name=sluice".into(),
                format!("--data-dir={}", p(&dir.join("etcd"))),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=sluice={peer_url}"),
                "--unsafe-no-fsync".into(),
                "--auto-compaction-retention=1".into(),
                "--quota-backend-bytes=4294967296".into(),
                "--log-level=warn".into(),
            ],
        )?;
        wait_for("etcd", Duration::from_secs(30), || async {
            let body = reqwest::get(format!("{etcd_url}/health")).await?.text().await?;
            if body.contains("\"health\":\"true\"") {
                Ok(())
            } else {
                Err(anyhow!("etcd says {body}"))
            }
        })
        .await?;

        cp.spawn(
            "kube-apiserver",
            &[
                format!("--etcd-servers={etcd_url}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                format!("--secure-port={api_port}"),
                format!("--tls-cert-file={}", p(&pki.apiserver_crt)),
                format!("--tls-private-key-file={}", p(&pki.apiserver_key)),
                format!("--client-ca-file={}", p(&pki.ca_crt)),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                format!("--service-account-key-file={}", p(&pki.sa_pub)),
                format!("--service-account-signing-key-file={}", p(&pki.sa_key)),
                "--service-cluster-ip-range=10.0.0.0/24".into(),
                "--authorization-mode=RBAC".into(),
                "--allow-privileged=true".into(),
                "--endpoint-reconciler-type=none".into(),
                // Pods need no service-account token: kwok runs no containers.
                "--disable-admission-plugins=ServiceAccount".into(),
                "--enable-priority-and-fairness=false".into(),
                "--max-requests-inflight=0".into(),
                "--max-mutating-requests-inflight=0".into(),
                "--profiling=false".into(),
                format!("--cert-dir={}", p(&dir.join("apiserver-certs"))),
            ],
        )?;
        let client = client_from(&kubeconfig).await?;
        wait_for("kube-apiserver", Duration::from_secs(90), || {
            let client = client.clone();
            async move {
                let req = http::Request::get("/readyz").body(Vec::new())?;
                let text = client.request_text(req).await?;
                if text.trim() == "ok" {
                    Ok(())
                } else {
                    Err(anyhow!("readyz: {text}"))
                }
            }
        })
        .await?;
        Ok((
            cp,
            ApiStarted {
                client,
                kubeconfig,
                pki,
            },
        ))
    }

    async fn start_workers(&mut self, opts: &Options, api: &ApiStarted) -> Result<()> {
        let bin = &opts.bin_dir;
        for b in ["kube-controller-manager", "kube-scheduler", "kwok"] {
            if !bin.join(b).is_file() {
                bail!(
                    "{} is missing; run e2e/scripts/build-bins.sh",
                    bin.join(b).display()
                );
            }
        }
        let (client, pki) = (api.client.clone(), &api.pki);
        let p = |f: &Path| f.display().to_string();
        let kcm_port = free_port()?;
        let sched_port = free_port()?;
        let kwok_port = free_port()?;
        let cp = self;
        let admin_kc = p(&api.kubeconfig);
        cp.spawn(
            "kube-controller-manager",
            &[
                format!("--kubeconfig={admin_kc}"),
                "--leader-elect=false".into(),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={kcm_port}"),
                format!("--service-account-private-key-file={}", p(&pki.sa_key)),
                format!("--root-ca-file={}", p(&pki.ca_crt)),
                "--controllers=*".into(),
                "--kube-api-qps=200".into(),
                "--kube-api-burst=400".into(),
                "--concurrent-replicaset-syncs=10".into(),
                "--concurrent-deployment-syncs=10".into(),
                "--profiling=false".into(),
            ],
        )?;
        cp.spawn(
            "kube-scheduler",
            &[
                format!("--kubeconfig={admin_kc}"),
                "--leader-elect=false".into(),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={sched_port}"),
                "--profiling=false".into(),
            ],
        )?;
        cp.spawn(
            "kwok",
            &[
                format!("--kubeconfig={admin_kc}"),
                format!("--config={}", p(&bin.join("kwok-stages.yaml"))),
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".into(),
                "--cidr=10.244.0.0/16".into(),
                "--node-lease-duration-seconds=40".into(),
                format!("--server-address=127.0.0.1:{kwok_port}"),
            ],
        )?;

        let nodes: Api<Node> = Api::all(client.clone());
        for i in 0..opts.nodes {
            let node: Node = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": format!("kwok-node-{i}"),
                    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        "type": "kwok",
                        "kubernetes.io/hostname": format!("kwok-node-{i}"),
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                    },
                },
            }))?;
            nodes.create(&PostParams::default(), &node).await?;
        }
        let want = opts.nodes;
        wait_for("kwok nodes", Duration::from_secs(60), || {
            let nodes = nodes.clone();
            async move {
                let ready = nodes
                    .list(&ListParams::default())
                    .await?
                    .items
                    .iter()
                    .filter(|n| node_ready(n))
                    .count();
                if ready >= want {
                    Ok(())
                } else {
                    Err(anyhow!("{ready}/{want} nodes Ready"))
                }
            }
        })
        .await?;
        wait_default_namespace(&client).await?;
        for (name, port) in [
            ("kube-controller-manager", kcm_port),
            ("kube-scheduler", sched_port),
        ] {
            wait_for(name, Duration::from_secs(60), || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .map(|_| ())
                    .map_err(Into::into)
            })
            .await?;
        }
        Ok(())
    }

    fn spawn(&mut self, name: &'static str, args: &[String]) -> Result<()> {
        let log = std::fs::File::create(self.info.dir.join("logs").join(format!("{name}.log")))?;
        let mut cmd = Command::new(self.info.bin_dir.join(name));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        crate::process::die_with_parent(cmd.as_std_mut());
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        if let Some(pid) = child.id() {
            self.info.component_pids.push((name.to_string(), pid));
        }
        self.children.push((name, child));
        Ok(())
    }

    /// Resolves when a component exits (which is always a failure for a control plane), naming it.
    pub async fn wait_any_exit(&mut self) -> String {
        loop {
            for (name, child) in &mut self.children {
                if let Ok(Some(status)) = child.try_wait() {
                    return format!("{name} exited with {status}");
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Kills every component (newest first) and waits for them to be gone.
    pub async fn stop(&mut self) {
        while let Some((_, mut child)) = self.children.pop() {
            let _ = child.kill().await;
        }
    }

    /// The last lines of a component's log (for error messages).
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.info.dir.join("logs").join(format!("{name}.log")))
            .unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

fn node_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Retries `check` every 200 ms until it succeeds or `timeout` passes; the error names what was awaited and
/// the last reason.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() > timeout => {
                bail!("timed out after {timeout:?} waiting for {what}: {e:#}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
