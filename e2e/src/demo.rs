//! The demo: a local control plane, Sluice's CRDs, the operator, and a sample canary Rollout, narrated.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use kube::Api;
use sluice_crds::rollout::Rollout;
use tokio::process::Command;

use crate::{
    cluster::{ControlPlane, Options, wait_for},
    harness::{install_crds, kubectl},
};

fn say(step: &str) {
    println!("\n==> {step}");
}

/// Runs the demo with the control-plane binaries in `bin_dir` and the `sluice` binary at `sluice`.
pub async fn run(bin_dir: PathBuf, sluice: &Path) -> Result<()> {
    if !sluice.is_file() {
        bail!(
            "{} is missing: build it with `cargo build -p sluice`",
            sluice.display()
        );
    }
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

    say("Starting the operator: sluice run");
    let mut cmd = Command::new(sluice);
    cmd.arg("run")
        .arg("--kubeconfig")
        .arg(&info.kubeconfig)
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

    say("Applying a sample canary Rollout with Istio traffic routing and analysis (unchanged Argo manifest)");
    let manifest = std::fs::read_to_string(crate::e2e_dir().join("manifests/examples/canary-istio.yaml"))?;
    println!(
        "{}",
        kubectl(info, &["apply", "-f", "-"], Some(&manifest))?.trim_end()
    );
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), "default");
    wait_for("the rollout", Duration::from_secs(10), || async {
        rollouts
            .get("rollouts-demo")
            .await
            .map(|_| ())
            .map_err(Into::into)
    })
    .await?;
    let ro = rollouts.get("rollouts-demo").await?;
    let canary = ro.spec.strategy.canary.clone().unwrap_or_default();
    println!(
        "    rollout rollouts-demo: {} replicas, {} canary steps:",
        ro.spec.replicas.unwrap_or(1),
        canary.steps.as_ref().map_or(0, Vec::len)
    );
    for (i, step) in canary.steps.iter().flatten().enumerate() {
        println!("      {i}: {}", serde_json::to_string(step)?);
    }
    say("kubectl get rollouts,virtualservices,services");
    println!(
        "{}",
        kubectl(
            info,
            &["get", "rollouts,virtualservices,services", "-n", "default"],
            None
        )?
        .trim_end()
    );

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
