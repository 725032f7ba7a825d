//! The test harness: one control plane per test process, one namespace per test, and a dump of the test's
//! objects when it fails.
//!
//! The cluster is started by the `sluice-e2e cluster up --watch-stdin` supervisor, whose standard input is a
//! pipe held by this process: when the test process ends (passed, failed, interrupted or killed), the pipe
//! closes and the supervisor stops every component. Set `SLUICE_E2E_CLUSTER=<dir>` to use a cluster that is
//! already running (`sluice-e2e cluster up --dir <dir>`) instead.

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, OnceLock},
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::{
    api::core::v1::Namespace, apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{Api, Client, api::PostParams};

use crate::cluster::{ClusterInfo, wait_for};

static CLUSTER: OnceLock<Result<ClusterInfo, String>> = OnceLock::new();
static SUPERVISOR: Mutex<Option<Child>> = Mutex::new(None);

/// The cluster shared by every test of this process, started on first use. `supervisor` is the path of the
/// `sluice-e2e` binary (`env!("CARGO_BIN_EXE_sluice-e2e")` in this crate's tests).
pub fn shared_cluster(supervisor: &str) -> Result<ClusterInfo> {
    CLUSTER
        .get_or_init(|| start_or_attach(supervisor).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))
}

fn start_or_attach(supervisor: &str) -> Result<ClusterInfo> {
    if let Ok(dir) = std::env::var("SLUICE_E2E_CLUSTER") {
        let path = Path::new(&dir).join("cluster.json");
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(serde_json::from_slice(&bytes)?);
    }
    let mut child = Command::new(supervisor)
        .args(["cluster", "up", "--watch-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {supervisor}"))?;
    let stdout = child.stdout.take().context("supervisor stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    if line.trim().is_empty() {
        let status = child.wait()?;
        bail!("the cluster did not start (supervisor exited with {status}); see its output above");
    }
    let info: ClusterInfo = serde_json::from_str(line.trim()).context("supervisor's ready line")?;
    // Keep the child (and with it the stdin pipe) for the life of the process.
    *SUPERVISOR
        .lock()
        .map_err(|_| anyhow!("supervisor lock poisoned"))? = Some(child);
    Ok(info)
}

/// Runs kubectl against the cluster, feeding `stdin`, and returns its standard output; fails with its
/// standard error.
pub fn kubectl(info: &ClusterInfo, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut child = Command::new(info.kubectl())
        .arg(format!("--kubeconfig={}", info.kubeconfig.display()))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .context("kubectl stdin")?
            .write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Paths of Sluice's CRDs (crds/yaml) and the hand-written CRDs of the traffic routers (e2e/manifests).
pub fn crd_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(crate::repo_dir().join("crds/yaml"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    // The routers' own CRDs, hand-written and minimal: e2e/manifests/<router>-crds.yaml.
    let mut routers: Vec<PathBuf> = std::fs::read_dir(crate::e2e_dir().join("manifests"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with("-crds.yaml"))
        .collect();
    routers.sort();
    files.extend(routers);
    files
}

/// Installs the CRDs with server-side apply (the Rollout CRD is too large for client-side apply's annotation)
/// and waits until each is Established.
pub async fn install_crds(info: &ClusterInfo, client: &Client) -> Result<Vec<String>> {
    let mut args = vec![
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=sluice-e2e",
    ];
    let files: Vec<String> = crd_files().iter().map(|p| p.display().to_string()).collect();
    for f in &files {
        args.push("-f");
        args.push(f);
    }
    kubectl(info, &args, None)?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut names = Vec::new();
    for f in crd_files() {
        let text = std::fs::read_to_string(&f)?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let crd: CustomResourceDefinition = serde::Deserialize::deserialize(doc)?;
            let name = crd.metadata.name.clone().unwrap_or_default();
            wait_established(&crds, &name).await?;
            names.push(name);
        }
    }
    Ok(names)
}

/// Waits until the named CRD has the condition Established=True.
pub async fn wait_established(crds: &Api<CustomResourceDefinition>, name: &str) -> Result<()> {
    wait_for(
        &format!("CRD {name} to be Established"),
        Duration::from_secs(30),
        || async move {
            let crd = crds.get(name).await?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Established" && c.status == "True"));
            if established {
                Ok(())
            } else {
                Err(anyhow!("not yet"))
            }
        },
    )
    .await
}

/// A namespace of one test. When the test panics, dropping it prints the test's objects and events; the
/// namespace is deleted either way.
pub struct TestNamespace {
    /// The cluster.
    pub info: ClusterInfo,
    /// A client for it.
    pub client: Client,
    /// The namespace's name.
    pub name: String,
    /// Kinds dumped on failure (kubectl resource names).
    pub dump_kinds: Vec<String>,
}

impl TestNamespace {
    /// Creates `t-<test>-<random>` in the shared cluster.
    pub async fn new(supervisor: &str, test: &str) -> Result<Self> {
        let info = shared_cluster(supervisor)?;
        let client = info.client().await?;
        let suffix: u32 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!("t-{}-{:x}", test.replace('_', "-"), suffix % 0xfffff);
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"sluice-e2e": "true"}}
        }))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(Self {
            info,
            client,
            name,
            dump_kinds: [
                "rollouts",
                "replicasets",
                "services",
                "virtualservices",
                "destinationrules",
                "events",
            ]
            .map(String::from)
            .to_vec(),
        })
    }

    /// A namespaced API of this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// `kubectl -n <ns> ARGS`.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        kubectl(&self.info, &all, stdin)
    }

    /// `kubectl apply -f -` of a manifest, exactly as a user would apply it.
    pub fn apply(&self, manifest: &str) -> Result<String> {
        self.kubectl(&["apply", "-f", "-"], Some(manifest))
    }

    fn dump(&self) {
        let kinds = self.dump_kinds.join(",");
        match self.kubectl(&["get", &kinds, "-o", "yaml"], None) {
            Ok(out) => eprintln!("==== objects in {} at failure ====\n{out}", self.name),
            Err(e) => eprintln!("==== could not dump {}: {e:#}", self.name),
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump();
        }
        let _ = kubectl(
            &self.info,
            &["delete", "namespace", &self.name, "--wait=false"],
            None,
        );
    }
}

/// `target/<profile>/sluice` next to the running test binary (`target/<profile>/deps/<test>-<hash>`).
pub fn sluice_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test binary location")?;
    let bin = dir.join("sluice");
    if !bin.is_file() {
        bail!("{} is missing: run `cargo build -p sluice` first", bin.display());
    }
    Ok(bin)
}

/// `target/<profile>/kubectl-sluice` (the plugin) next to the running test binary.
pub fn plugin_binary() -> Result<PathBuf> {
    let bin = sluice_binary()?.with_file_name("kubectl-sluice");
    if !bin.is_file() {
        bail!(
            "{} is missing: run `cargo build -p sluice-cli` first",
            bin.display()
        );
    }
    Ok(bin)
}

/// The operator running against a test namespace; killed when dropped, its log printed if the test failed.
pub struct Operator {
    child: Child,
    log: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Port of its `/metrics` endpoint on 127.0.0.1.
    pub metrics_port: u16,
    /// Port of its Git webhook endpoint (`POST /api/webhook`) on 127.0.0.1.
    pub webhook_port: u16,
    /// Port of its `/healthz` and `/readyz` on 127.0.0.1.
    pub healthz_port: u16,
}

impl Operator {
    /// Starts `sluice run` for the namespace.
    pub fn start(ns: &TestNamespace) -> Result<Self> {
        Self::start_with_env(ns, &[])
    }

    /// Starts `sluice run` for the namespace with extra environment variables.
    pub fn start_with_env(ns: &TestNamespace, env: &[(&str, &str)]) -> Result<Self> {
        Self::replica(ns, "", env)
    }

    /// Starts one of several `sluice run` processes for the namespace (each `name` has its own log and ports),
    /// with extra environment variables.
    pub fn replica(ns: &TestNamespace, name: &str, env: &[(&str, &str)]) -> Result<Self> {
        Self::with_kubeconfig(ns, name, &ns.info.kubeconfig, env)
    }

    /// Like [`Operator::replica`], connecting with another kubeconfig (one that impersonates a service
    /// account, say).
    pub fn with_kubeconfig(
        ns: &TestNamespace,
        name: &str,
        kubeconfig: &Path,
        env: &[(&str, &str)],
    ) -> Result<Self> {
        let suffix = if name.is_empty() {
            String::new()
        } else {
            format!("-{name}")
        };
        let log = std::env::temp_dir().join(format!("sluice-operator-{}{suffix}.log", ns.name));
        let metrics_port = crate::cluster::free_port()?;
        let webhook_port = crate::cluster::free_port()?;
        let healthz_port = crate::cluster::free_port()?;
        let repos = std::env::temp_dir().join(format!("sluice-repos-{}", ns.name));
        let args = vec![
            "run".to_string(),
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--namespace={}", ns.name),
            format!("--argocd-namespace={}", ns.name),
            format!("--metrics-addr=127.0.0.1:{metrics_port}"),
            format!("--healthz-addr=127.0.0.1:{healthz_port}"),
            format!("--webhook-addr=127.0.0.1:{webhook_port}"),
            format!("--repo-cache-dir={}", repos.display()),
        ];
        let mut env: Vec<(String, String)> =
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        if let Ok(tools) = crate::gitops_tools() {
            env.push((
                "SLUICE_KUSTOMIZE".into(),
                tools.join("kustomize").display().to_string(),
            ));
            env.push(("SLUICE_HELM".into(), tools.join("helm").display().to_string()));
        }
        let child = Self::spawn(&args, &env, &log)?;
        Ok(Self {
            child,
            log,
            args,
            env,
            metrics_port,
            webhook_port,
            healthz_port,
        })
    }

    /// `/readyz`: status code and body.
    pub async fn readyz(&self) -> Result<(u16, String)> {
        let url = format!("http://127.0.0.1:{}/readyz", self.healthz_port);
        let response = reqwest::get(&url).await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the operator with SIGTERM and waits until it exits; returns whether it exited successfully.
    pub fn stop(&mut self) -> Result<bool> {
        std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        Ok(self.child.wait()?.success())
    }

    /// Whether the process has exited (without waiting).
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// The operator's `/metrics` text.
    pub async fn metrics(&self) -> Result<String> {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        Ok(reqwest::get(&url).await?.error_for_status()?.text().await?)
    }

    fn spawn(args: &[String], env: &[(String, String)], log: &Path) -> Result<Child> {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
        Ok(Command::new(sluice_binary()?)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env(
                "SLUICE_LOG_LEVEL",
                std::env::var("SLUICE_E2E_OPERATOR_LOG").unwrap_or_else(|_| "info,kube=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?)
    }

    /// Kills the operator with SIGKILL (no shutdown of any kind) and waits for it to be gone.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Starts it again with the same arguments.
    pub fn restart(&mut self) -> Result<()> {
        self.child = Self::spawn(&self.args, &self.env, &self.log)?;
        Ok(())
    }

    /// The operator's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "==== operator log (last 80 lines) ====\n{}",
                lines[lines.len().saturating_sub(80)..].join("\n")
            );
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A copy of the cluster's kubeconfig (at `path`) whose every request impersonates `user` (kubectl's `--as`):
/// what runs with it has exactly the permissions RBAC gives that user. A service account
/// (`system:serviceaccount:<ns>:<name>`) gets its groups from the API server.
pub fn impersonating_kubeconfig(info: &ClusterInfo, user: &str, path: &Path) -> Result<()> {
    let mut config = kube::config::Kubeconfig::read_from(&info.kubeconfig)?;
    for named in &mut config.auth_infos {
        if let Some(auth) = named.auth_info.as_mut() {
            auth.impersonate = Some(user.to_string());
        }
    }
    std::fs::write(path, serde_yaml::to_string(&config)?)?;
    Ok(())
}

/// A namespace of its own on the shared cluster, the CRDs installed, and an operator of its own: what each
/// end-to-end test starts from. `dump_kinds` are listed too when the test fails.
pub async fn namespace_with_operator(
    supervisor: &str,
    test: &str,
    dump_kinds: &[&str],
) -> (TestNamespace, Operator) {
    let mut ns = TestNamespace::new(supervisor, test).await.expect("namespace");
    ns.dump_kinds.extend(dump_kinds.iter().map(|k| k.to_string()));
    install_crds(&ns.info, &ns.client).await.expect("CRDs");
    let op = Operator::start(&ns).expect("operator starts");
    (ns, op)
}
