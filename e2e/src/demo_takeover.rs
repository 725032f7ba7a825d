//! The demo's migration: a Rollout that Argo Rollouts left paused in the middle of its canary (its
//! ReplicaSets, Services, VirtualService and status as Argo writes them, with Argo's own hashes from the
//! `gohash` oracle) is taken over by Sluice without a step lost, and promoted on from there.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kube::{Api, api::DynamicObject};
use sluice_crds::rollout::Rollout;

use crate::{
    argo_state::{Hashes, InNamespace, Kubectl, argo_paused_canary},
    cluster::ClusterInfo,
    demo::{print_events, say},
    gohash::{Build, Oracle},
};

const NS: &str = "migration";
const NAME: &str = "checkout";

/// Writes what Argo Rollouts left before the operator starts: `checkout` paused at step 3 of 7 with 40 % of
/// the traffic on the canary.
pub(crate) async fn before_the_operator(info: &ClusterInfo) -> Result<Hashes> {
    say(
        "Migrating from Argo Rollouts: what it left of `checkout`, paused at step 3 of 7 with 40% on the canary",
    );
    crate::harness::kubectl(info, &["create", "namespace", NS], None)?;
    let ns = InNamespace { info, namespace: NS };
    let mut oracle = Oracle::start(Build::ControlPlane)?;
    let hashes = argo_paused_canary(&ns, &mut oracle, NAME).await?;
    println!(
        "    ReplicaSets {NAME}-{} (stable, v1) and {NAME}-{} (canary, v2), hashes as Argo Rollouts computes them",
        hashes.stable, hashes.new
    );
    println!(
        "{}",
        ns.kubectl(&["get", "rollouts,replicasets"], None)?.trim_end()
    );
    Ok(hashes)
}

/// With the operator running: the Rollout stays where Argo left it (same step, weights, ReplicaSets), then a
/// promote moves it on to setWeight 60.
pub(crate) async fn after_the_operator(
    info: &ClusterInfo,
    client: &kube::Client,
    operator_log: &std::sync::mpsc::Receiver<String>,
    hashes: &Hashes,
) -> Result<()> {
    say("Sluice takes `checkout` over: the same step, the same weights, the same two ReplicaSets");
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), NS);
    let vs = crate::rollouts::virtual_services(client, NS);
    let first = show(&rollouts, &vs).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    print_events(operator_log);
    let settled = show(&rollouts, &vs).await?;
    if settled != first || !settled.starts_with("step 3/7 | Paused") {
        bail!("the taken-over rollout moved: {first} -> {settled}");
    }
    let ns = InNamespace { info, namespace: NS };
    let names = ns.kubectl(&["get", "replicasets", "-o", "name"], None)?;
    println!("    {}", names.split_whitespace().collect::<Vec<_>>().join(", "));
    if names.lines().count() != 2 {
        bail!("Sluice made a ReplicaSet of its own: {names}");
    }

    say("The plugin reads what Argo Rollouts made as it reads its own");
    crate::demo::kubectl_sluice(info, NS, &["get", "rollout", NAME])?;
    say("Promoting `checkout` with the plugin: on to setWeight 60");
    crate::demo::kubectl_sluice(info, NS, &["promote", NAME])?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = settled;
    while !last.starts_with("step 5/7 | Paused") || !last.contains("canary  60") {
        if Instant::now() > deadline {
            bail!("checkout did not reach its next pause: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        print_events(operator_log);
        let line = show_quiet(&rollouts, &vs).await?;
        if line != last {
            println!("    {line}");
            last = line;
        }
    }
    println!(
        "    stable {NAME}-{}, canary {NAME}-{}: no new revision",
        hashes.stable, hashes.new
    );
    Ok(())
}

async fn show(rollouts: &Api<Rollout>, vs: &Api<DynamicObject>) -> Result<String> {
    let line = show_quiet(rollouts, vs).await?;
    println!("    {line}");
    Ok(line)
}

/// `step i/n | phase message | VirtualService weights` of the Rollout.
async fn show_quiet(rollouts: &Api<Rollout>, vs: &Api<DynamicObject>) -> Result<String> {
    let ro = rollouts.get(NAME).await?;
    let st = ro.status.clone().unwrap_or_default();
    let route = vs.get(&format!("{NAME}-vs")).await?.data["spec"]["http"][0]["route"].clone();
    Ok(format!(
        "step {}/7 | {} {} | VirtualService stable {:>3} / canary {:>3}",
        st.current_step_index.unwrap_or(0),
        st.phase.unwrap_or_default(),
        st.message.unwrap_or_default(),
        route[0]["weight"].as_i64().unwrap_or(0),
        route[1]["weight"].as_i64().unwrap_or(0),
    ))
}
