//! The demo: a local control plane, Sluice's CRDs, the operator, and a sample canary Rollout, narrated.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use kube::{Api, api::DynamicObject};
use sluice_crds::rollout::Rollout;
use tokio::process::Command;

use crate::{
    cluster::{ControlPlane, Options},
    harness::{install_crds, kubectl},
    prometheus::{Prometheus, TrafficCounters},
};

fn phase(ro: &Rollout) -> &str {
    ro.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// Prints a line whenever the rollout's step, phase, weights or pods change, and the operator's log lines,
/// until `done` holds.
async fn watch_until(
    name: &str,
    rollouts: &Api<Rollout>,
    vs: &Api<DynamicObject>,
    operator_log: &std::sync::mpsc::Receiver<String>,
    what: &str,
    done: impl Fn(&Rollout) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = String::new();
    loop {
        print_events(operator_log);
        let ro = rollouts.get(name).await?;
        let st = ro.status.clone().unwrap_or_default();
        let route = vs
            .get(&format!("{name}-vsvc"))
            .await
            .map(|v| v.data["spec"]["http"][0]["route"].clone())
            .unwrap_or_default();
        let line = format!(
            "step {}/{} | {:<11} {:<32} | VirtualService stable {:>3} / canary {:>3} | pods {}/{} available, {} updated",
            st.current_step_index.unwrap_or(0),
            ro.spec
                .strategy
                .canary
                .as_ref()
                .and_then(|c| c.steps.as_ref())
                .map_or(0, Vec::len),
            st.phase.clone().unwrap_or_default(),
            st.message.clone().unwrap_or_default(),
            route[0]["weight"].as_i64().unwrap_or(0),
            route[1]["weight"].as_i64().unwrap_or(0),
            st.available_replicas.unwrap_or(0),
            st.replicas.unwrap_or(0),
            st.updated_replicas.unwrap_or(0),
        );
        if line != last {
            println!("    {line}");
            last = line;
        }
        if done(&ro) && st.observed_generation == ro.metadata.generation.map(|g| g.to_string()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn say(step: &str) {
    println!("\n==> {step}");
}

/// `kubectl-sluice` next to this binary (`target/<profile>/`).
fn plugin_binary() -> Result<PathBuf> {
    let bin = std::env::current_exe()?.with_file_name("kubectl-sluice");
    if !bin.is_file() {
        bail!(
            "{} is missing: build it with `cargo build -p sluice-cli`",
            bin.display()
        );
    }
    Ok(bin)
}

/// Runs `kubectl sluice -n NS ARGS` as a user would, echoing the command and what it printed; fails when it
/// exits non-zero. Piped, `get` is asked for no colour.
pub(crate) fn kubectl_sluice(info: &crate::cluster::ClusterInfo, ns: &str, args: &[&str]) -> Result<String> {
    use std::io::IsTerminal;
    let plugin = crate::plugin::Plugin::new(&plugin_binary()?, &info.kubeconfig, ns);
    let mut args = args.to_vec();
    if args.first() == Some(&"get") && !std::io::stdout().is_terminal() {
        args.push("--no-color");
    }
    println!("    $ kubectl sluice -n {ns} {}", args.join(" "));
    let out = plugin.ok(&args)?;
    print!("{out}");
    Ok(out)
}

/// Runs the demo with the control-plane binaries in `bin_dir` and the `sluice` binary at `sluice`.
pub async fn run(bin_dir: PathBuf, sluice: &Path) -> Result<()> {
    if !sluice.is_file() {
        bail!(
            "{} is missing: build it with `cargo build -p sluice`",
            sluice.display()
        );
    }
    plugin_binary()?;
    let dir = std::env::temp_dir().join(format!("sluice-demo-{}", std::process::id()));
    say(
        "Starting a local Kubernetes control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)",
    );
    let started = Instant::now();
    let mut cp = ControlPlane::start(&Options {
        dir: dir.clone(),
        bin_dir,
        nodes: 3,
    })
    .await?;
    println!(
        "    ready in {:.1}s at {}",
        started.elapsed().as_secs_f64(),
        cp.info.server
    );
    let result = narrate(&cp, sluice).await;
    say("Stopping the control plane");
    cp.stop().await;
    std::fs::remove_dir_all(&dir).ok();
    result
}

async fn narrate(cp: &ControlPlane, sluice: &Path) -> Result<()> {
    let info = &cp.info;
    let client = info.client().await?;
    println!("{}", kubectl(info, &["get", "nodes"], None)?.trim_end());

    say(
        "Installing Sluice's CRDs (argoproj.io/v1alpha1, as Argo Rollouts and Argo CD define them) and Istio's",
    );
    for name in install_crds(info, &client).await? {
        println!("    established: {name}");
    }

    say("Starting Prometheus (Debian's package) scraping the request counters of the checkout service");
    let traffic = TrafficCounters::start().await?;
    traffic.set_service("checkout-canary", 200.0, 0.99);
    traffic.set_service("checkout-stable", 200.0, 0.99);
    traffic.set_service("cart-preview", 200.0, 0.99);
    let prom_dir = std::env::temp_dir().join(format!("sluice-demo-prometheus-{}", std::process::id()));
    let prom = Prometheus::start(&prom_dir, &[traffic.address().to_string()]).await?;
    println!(
        "    Prometheus at {}, scraping {} every second",
        prom.url,
        traffic.address()
    );

    let migrated = crate::demo_takeover::before_the_operator(info).await?;

    say("Starting the operator: ARGO_ROLLOUTS_PROMETHEUS_ADDRESS=<prometheus> sluice run");
    let webhook_port = crate::cluster::free_port()?;
    let (mut operator, rx) = start_operator(info, sluice, &prom.url, webhook_port).await?;
    crate::demo_takeover::after_the_operator(info, &client, &rx, &migrated).await?;
    say(
        "Applying the upstream example manifests unchanged (canary with Istio and analysis, blue-green, Application)",
    );
    for file in ["canary-istio.yaml", "bluegreen.yaml", "application.yaml"] {
        let manifest = std::fs::read_to_string(crate::e2e_dir().join("manifests/examples").join(file))?;
        let ns = file.trim_end_matches(".yaml");
        kubectl(info, &["create", "namespace", ns], None)?;
        println!(
            "{}",
            kubectl(info, &["apply", "-n", ns, "-f", "-"], Some(&manifest))?.trim_end()
        );
    }

    manual_canary(info, &client, &rx).await?;
    analysis_demo(info, &client, &traffic, &rx).await?;
    bluegreen_demo(info, &client, &traffic, &rx).await?;
    crate::demo_routers::run(info, &client, &traffic, &rx).await?;
    crate::demo_gitops::run(info, &client, webhook_port, &traffic).await?;
    drop(prom);
    std::fs::remove_dir_all(&prom_dir).ok();

    say("Stopping the operator with SIGTERM");
    if let Some(pid) = operator.id() {
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
    }
    let status = tokio::time::timeout(Duration::from_secs(10), operator.wait()).await??;
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
        println!("    sluice | {line}");
    }
    println!("    operator exited: {status}");
    Ok(())
}

/// Starts `sluice run` against the cluster with the Prometheus address; returns it with its log lines, once
/// it watches rollouts.
async fn start_operator(
    info: &crate::cluster::ClusterInfo,
    sluice: &Path,
    prometheus: &str,
    webhook_port: u16,
) -> Result<(tokio::process::Child, std::sync::mpsc::Receiver<String>)> {
    let mut cmd = Command::new(sluice);
    cmd.env("ARGO_ROLLOUTS_PROMETHEUS_ADDRESS", prometheus)
        .env("SLUICE_NOTIFICATIONS_NAMESPACE", "default");
    cmd.arg("run")
        .arg("--kubeconfig")
        .arg(&info.kubeconfig)
        .args(["--metrics-addr", "127.0.0.1:0", "--healthz-addr", "127.0.0.1:0"])
        .arg(format!("--webhook-addr=127.0.0.1:{webhook_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd.kill_on_drop(true);
    crate::process::die_with_parent(cmd.as_std_mut());
    let mut operator = cmd.spawn().context("starting sluice")?;
    let stderr = operator
        .stderr
        .take()
        .context("operator stderr")?
        .into_owned_fd()?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(std::fs::File::from(stderr))
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                println!("    sluice | {line}");
                if line.contains("watching rollouts") {
                    break;
                }
            }
            Err(_) if Instant::now() > deadline => bail!("the operator did not start watching within 30 s"),
            Err(_) => {}
        }
    }

    Ok((operator, rx))
}

/// The canary walked by hand: release, the pause {} step, promote, and what it left (objects, events).
async fn manual_canary(
    info: &crate::cluster::ClusterInfo,
    client: &kube::Client,
    rx: &std::sync::mpsc::Receiver<String>,
) -> Result<()> {
    say(
        "A canary with Istio traffic routing: 5 replicas, setWeight 20 -> pause 2s -> setWeight 50 -> pause {}",
    );
    let manifest = std::fs::read_to_string(crate::e2e_dir().join("manifests/demo/canary.yaml"))?;
    println!(
        "{}",
        kubectl(info, &["apply", "-f", "-"], Some(&manifest))?.trim_end()
    );
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), "default");
    let vs = crate::rollouts::virtual_services(client, "default");
    watch_until("demo", &rollouts, &vs, rx, "first deploy Healthy", |ro| {
        phase(ro) == "Healthy"
    })
    .await?;

    say("Releasing a new version with the plugin");
    kubectl_sluice(
        info,
        "default",
        &["set", "image", "demo", "demo=argoproj/rollouts-demo:green"],
    )?;
    watch_until("demo", &rollouts, &vs, rx, "the pause {} step", |ro| {
        phase(ro) == "Paused" && ro.status.as_ref().and_then(|s| s.current_step_index) == Some(3)
    })
    .await?;

    say("The tree at the pause {} step: revisions, ReplicaSets, pods, weights");
    kubectl_sluice(info, "default", &["get", "rollout", "demo"])?;
    say("Promoting with the plugin (the status patch `kubectl argo rollouts promote` sends)");
    kubectl_sluice(info, "default", &["promote", "demo"])?;
    watch_until(
        "demo",
        &rollouts,
        &vs,
        rx,
        "Healthy on the new version with the weight back to 0",
        |ro| {
            phase(ro) == "Healthy"
                && ro
                    .status
                    .as_ref()
                    .and_then(|s| s.canary.as_ref())
                    .and_then(|c| c.weights.as_ref())
                    .is_some_and(|w| w.canary.weight == 0)
        },
    )
    .await?;
    say("Promoted: the tree once more, and the VirtualService");
    kubectl_sluice(info, "default", &["get", "rollout", "demo"])?;
    println!(
        "{}",
        kubectl(info, &["get", "virtualservices", "-n", "default"], None)?.trim_end()
    );
    let events = kubectl(
        info,
        &[
            "get",
            "events",
            "-n",
            "default",
            "--field-selector=involvedObject.name=demo",
            "--sort-by=.eventTime",
            "-o",
            "custom-columns=REASON:.reason,MESSAGE:.message",
        ],
        None,
    )?;
    say("Events of the rollout, in order");
    println!("{}", events.trim_end());

    Ok(())
}

/// `kubectl sluice set image NAME *=IMAGE`: every container of the template runs `image`.
/// `kubectl sluice set image NAME *=IMAGE` in `default`.
pub(crate) fn set_image(info: &crate::cluster::ClusterInfo, name: &str, image: &str) -> Result<()> {
    kubectl_sluice(info, "default", &["set", "image", name, &format!("*={image}")])?;
    Ok(())
}

fn print_runs(info: &crate::cluster::ClusterInfo) -> Result<()> {
    let runs = kubectl(
        info,
        &[
            "get",
            "analysisruns",
            "-n",
            "default",
            "--sort-by=.metadata.creationTimestamp",
            "-o",
            "custom-columns=ANALYSISRUN:.metadata.name,PHASE:.status.phase,VALUES:.status.metricResults[0].measurements[*].value,MESSAGE:.status.message",
        ],
        None,
    )?;
    println!("{}", runs.trim_end());
    Ok(())
}

/// Two releases of `checkout` judged by Prometheus: a healthy one promoted by itself, a failing one rolled back
/// by itself.
async fn analysis_demo(
    info: &crate::cluster::ClusterInfo,
    client: &kube::Client,
    traffic: &TrafficCounters,
    rx: &std::sync::mpsc::Receiver<String>,
) -> Result<()> {
    say(
        "An automatic canary: `checkout` is judged by an AnalysisTemplate (success rate >= 95% in Prometheus)",
    );
    let manifest = std::fs::read_to_string(crate::e2e_dir().join("manifests/demo/analysis.yaml"))?;
    println!(
        "{}",
        kubectl(info, &["apply", "-f", "-"], Some(&manifest))?.trim_end()
    );
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), "default");
    let vs = crate::rollouts::virtual_services(client, "default");
    watch_until("checkout", &rollouts, &vs, rx, "first deploy Healthy", |ro| {
        phase(ro) == "Healthy"
    })
    .await?;

    say("Release 1.1: its canary answers 99% of requests well; nobody touches anything");
    set_image(info, "checkout", "checkout:1.1")?;
    watch_until(
        "checkout",
        &rollouts,
        &vs,
        rx,
        "1.1 promoted by its analysis",
        |ro| {
            phase(ro) == "Healthy"
                && ro
                    .spec
                    .template
                    .as_ref()
                    .and_then(|t| t.spec.as_ref())
                    .map(|s| s.containers[0].image.clone())
                    == Some(Some("checkout:1.1".into()))
                && ro
                    .status
                    .as_ref()
                    .is_some_and(|s| s.stable_rs == s.current_pod_hash)
        },
    )
    .await?;
    print_runs(info)?;

    let receiver = subscribe_to_aborts(info).await?;

    say("Release 1.2: its canary fails 20% of requests (the counters now say so); nobody touches anything");
    traffic.set_success_ratio("checkout-canary", 0.80);
    let started = Instant::now();
    set_image(info, "checkout", "checkout:1.2")?;
    watch_until(
        "checkout",
        &rollouts,
        &vs,
        rx,
        "1.2 rolled back by its analysis",
        |ro| phase(ro) == "Degraded",
    )
    .await?;
    let ro = rollouts.get("checkout").await?;
    println!(
        "\n    rolled back automatically {:.1}s after the release; the rollout says why:\n    {}",
        started.elapsed().as_secs_f64(),
        ro.status.and_then(|s| s.message).unwrap_or_default()
    );
    print_runs(info)?;
    let told = receiver
        .wait_delivered("/hooks/aborted", Duration::from_secs(30))
        .await?;
    for r in told {
        println!(
            "    the team's webhook got: {} {} {}",
            r.method,
            r.path,
            r.body.trim()
        );
    }
    Ok(())
}

/// Argo Rollouts' notification configuration in `default` (where the operator reads it): a webhook service
/// pointing at a receiver the demo runs, and `checkout` subscribed to `on-rollout-aborted`.
async fn subscribe_to_aborts(info: &crate::cluster::ClusterInfo) -> Result<crate::receiver::Receiver> {
    say(
        "Notifications: the team's webhook is told when a rollout is aborted (argo-rollouts-notification-configmap)",
    );
    let receiver = crate::receiver::Receiver::start().await?;
    let config = format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: argo-rollouts-notification-configmap, namespace: default}}
data:
  service.webhook.team: |
    url: {url}
  trigger.on-rollout-aborted: |
    - send: [rollout-aborted]
  template.rollout-aborted: |
    webhook:
      team:
        method: POST
        path: /hooks/aborted
        body: 'Rollout {{{{.rollout.metadata.name}}}} in {{{{.rollout.metadata.namespace}}}} was aborted'
"#,
        url = receiver.url()
    );
    println!(
        "{}",
        kubectl(info, &["apply", "-f", "-"], Some(&config))?.trim_end()
    );
    let subscribe = "notifications.argoproj.io/subscribe.on-rollout-aborted.team=";
    let out = kubectl(
        info,
        &["annotate", "-n", "default", "rollout", "checkout", subscribe],
        None,
    )?;
    println!(
        "    $ kubectl annotate rollout checkout {subscribe}\n    {}",
        out.trim_end()
    );
    Ok(receiver)
}

/// The hash a Service selects, or "-".
async fn selects(services: &Api<k8s_openapi::api::core::v1::Service>, name: &str) -> String {
    services
        .get(name)
        .await
        .ok()
        .and_then(|s| s.spec?.selector?.get("rollouts-pod-template-hash").cloned())
        .unwrap_or_else(|| "-".into())
}

/// Prints a line whenever the blue-green rollout's phase, Services or ReplicaSets change, and the events, until
/// `done` holds.
async fn watch_blue_green_until(
    client: &kube::Client,
    name: &str,
    operator_log: &std::sync::mpsc::Receiver<String>,
    what: &str,
    done: impl Fn(&Rollout) -> bool,
) -> Result<()> {
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), "default");
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), "default");
    let replica_sets: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
        Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = String::new();
    loop {
        print_events(operator_log);
        let ro = rollouts.get(name).await?;
        let st = ro.status.clone().unwrap_or_default();
        let mut sizes: Vec<String> = replica_sets
            .list(&kube::api::ListParams::default().labels(&format!("app={name}")))
            .await?
            .items
            .into_iter()
            .map(|rs| {
                let hash = rs
                    .metadata
                    .labels
                    .unwrap_or_default()
                    .remove("rollouts-pod-template-hash");
                let available = rs.status.and_then(|s| s.available_replicas).unwrap_or(0);
                let spec = rs.spec.and_then(|s| s.replicas).unwrap_or(0);
                format!("{}={available}/{spec}", hash.unwrap_or_default())
            })
            .collect();
        sizes.sort();
        let line = format!(
            "{:<11} {:<32} | active -> {:<10} preview -> {:<10} | ReplicaSets {}",
            st.phase.clone().unwrap_or_default(),
            st.message.clone().unwrap_or_default(),
            selects(&services, &format!("{name}-active")).await,
            selects(&services, &format!("{name}-preview")).await,
            sizes.join(" "),
        );
        if line != last {
            println!("    {line}");
            last = line;
        }
        if done(&ro) && st.observed_generation == ro.metadata.generation.map(|g| g.to_string()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The events the operator logged since the last call.
pub(crate) fn print_events(operator_log: &std::sync::mpsc::Receiver<String>) {
    while let Ok(line) = operator_log.try_recv() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
            && let Some(reason) = v["fields"]["reason"].as_str()
        {
            println!(
                "      event {reason}: {}",
                v["fields"]["message"].as_str().unwrap_or_default()
            );
        }
    }
}

/// A blue-green release of `cart`: a one-pod preview passes a smoke analysis in Prometheus, then it is scaled up
/// and the active Service switches; the previous version goes after its scale-down delay.
async fn bluegreen_demo(
    info: &crate::cluster::ClusterInfo,
    client: &kube::Client,
    traffic: &TrafficCounters,
    rx: &std::sync::mpsc::Receiver<String>,
) -> Result<()> {
    say(
        "A blue-green rollout: `cart`, 3 replicas, a preview of 1 pod judged by a smoke analysis before promotion",
    );
    let manifest = std::fs::read_to_string(crate::e2e_dir().join("manifests/demo/bluegreen.yaml"))?;
    println!(
        "{}",
        kubectl(info, &["apply", "-f", "-"], Some(&manifest))?.trim_end()
    );
    let stable_healthy = |ro: &Rollout| {
        phase(ro) == "Healthy"
            && ro
                .status
                .as_ref()
                .is_some_and(|s| s.stable_rs == s.current_pod_hash)
    };
    watch_blue_green_until(client, "cart", rx, "first deploy Healthy", stable_healthy).await?;
    say(
        "Release cart:2.0: the preview answers 99% of requests well; the smoke analysis passes, then the switch",
    );
    traffic.set_success_ratio("cart-preview", 0.99);
    set_image(info, "cart", "cart:2.0")?;
    watch_blue_green_until(client, "cart", rx, "cart:2.0 promoted", |ro| {
        stable_healthy(ro)
            && ro
                .spec
                .template
                .as_ref()
                .and_then(|t| t.spec.as_ref())
                .map(|s| s.containers[0].image.clone())
                == Some(Some("cart:2.0".into()))
    })
    .await?;
    say("The previous version is scaled down after scaleDownDelaySeconds (5 s)");
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), "default");
    let old = kubectl(
        info,
        &[
            "get",
            "replicasets",
            "-n",
            "default",
            "-l",
            "app=cart",
            "-o",
            "custom-columns=NAME:.metadata.name,DESIRED:.spec.replicas,AVAILABLE:.status.availableReplicas,DEADLINE:.metadata.annotations.scale-down-deadline",
        ],
        None,
    )?;
    println!("{}", old.trim_end());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ro = rollouts.get("cart").await?;
        let sets = kubectl(
            info,
            &[
                "get",
                "replicasets",
                "-n",
                "default",
                "-l",
                "app=cart",
                "-o",
                "jsonpath={.items[*].spec.replicas}",
            ],
            None,
        )?;
        if sets.split_whitespace().filter(|r| *r == "0").count() == 1 {
            print_events(rx);
            println!(
                "    previous version scaled to 0; cart-active stays on {}",
                ro.status
                    .and_then(|s| s.blue_green)
                    .and_then(|b| b.active_selector)
                    .unwrap_or_default()
            );
            break;
        }
        if Instant::now() > deadline {
            bail!("the previous version was not scaled down");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    print_runs(info)?;
    Ok(())
}
