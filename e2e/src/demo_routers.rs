//! The demo's experiment step behind a Gateway API HTTPRoute: the canary and the stable template run side by
//! side as an Experiment with their own share of the route, and the release goes on once Prometheus says the
//! canary is good.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kube::{
    Api,
    api::{ApiResource, DynamicObject, GroupVersionKind},
};
use serde_json::Value;
use sluice_crds::{experiment::Experiment, rollout::Rollout};

use crate::{demo::say, harness::kubectl, prometheus::TrafficCounters};

/// `name=weight` of every backend of the route's first rule.
fn backends(route: &DynamicObject) -> String {
    route.data["spec"]["rules"][0]["backendRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| {
            format!(
                "{}={}",
                b["name"].as_str().unwrap_or("?"),
                b["weight"].as_i64().unwrap_or(1)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Prints a line whenever the step, the phase, the route's backends or the Experiment change, until the
/// release is promoted.
async fn watch_release(
    rollouts: &Api<Rollout>,
    routes: &Api<DynamicObject>,
    experiments: &Api<Experiment>,
    operator_log: &std::sync::mpsc::Receiver<String>,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = String::new();
    loop {
        crate::demo::print_events(operator_log);
        let ro = rollouts.get("search").await?;
        let st = ro.status.clone().unwrap_or_default();
        let route = backends(&routes.get("search").await?);
        let experiment = match st.canary.as_ref().and_then(|c| c.current_experiment.clone()) {
            Some(name) => match experiments.get_opt(&name).await? {
                Some(e) => format!("{name} {}", e.status.and_then(|s| s.phase).unwrap_or_default()),
                None => name,
            },
            None => "-".into(),
        };
        let line = format!(
            "step {}/4 | {:<11} | HTTPRoute {route} | experiment {experiment}",
            st.current_step_index.unwrap_or(0),
            st.phase.clone().unwrap_or_default(),
        );
        if line != last {
            println!("    {line}");
            last = line;
        }
        if st.phase.as_deref() == Some("Healthy")
            && st.stable_rs == st.current_pod_hash
            && st.observed_generation == ro.metadata.generation.map(|g| g.to_string())
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for search 2.0 to be promoted");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Releases `search` 2.0 through an experiment step behind an HTTPRoute.
pub async fn run(
    info: &crate::cluster::ClusterInfo,
    client: &kube::Client,
    traffic: &TrafficCounters,
    operator_log: &std::sync::mpsc::Receiver<String>,
) -> Result<()> {
    say(
        "An experiment step behind a Gateway API HTTPRoute (the argoproj-labs/gatewayAPI plugin's config, unchanged)",
    );
    traffic.set_service("search-canary", 200.0, 0.99);
    let manifest = std::fs::read_to_string(crate::e2e_dir().join("manifests/demo/experiment-gateway.yaml"))?;
    println!(
        "{}",
        kubectl(info, &["apply", "-f", "-"], Some(&manifest))?.trim_end()
    );
    let rollouts: Api<Rollout> = Api::namespaced(client.clone(), "default");
    let gvk = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    let routes: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, "httproutes"),
    );
    let experiments: Api<Experiment> = Api::namespaced(client.clone(), "default");
    crate::cluster::wait_for("search Healthy", Duration::from_secs(60), || async {
        let ro = rollouts.get("search").await?;
        match ro.status.and_then(|s| s.phase).as_deref() {
            Some("Healthy") => Ok(()),
            other => Err(anyhow::anyhow!("{other:?}")),
        }
    })
    .await?;

    say("Release 2.0: canary at 20%, then canary and baseline side by side as an Experiment with 10% each");
    crate::demo::set_image(info, "search", "search:2.0")?;
    watch_release(&rollouts, &routes, &experiments, operator_log).await?;
    println!(
        "\n{}",
        kubectl(info, &["get", "experiments", "-n", "default"], None)?.trim_end()
    );
    let route = routes.get("search").await?;
    let rule = &route.data["spec"]["rules"][0];
    println!(
        "    the route after the release: {} (its timeout {} kept)",
        backends(&route),
        rule["timeouts"]["request"].as_str().unwrap_or("?")
    );
    if rule["backendRefs"].as_array().map_or(0, Vec::len) != 2 || rule["timeouts"] == Value::Null {
        bail!("the experiment's backends are still on the route, or its other fields were lost");
    }
    Ok(())
}
