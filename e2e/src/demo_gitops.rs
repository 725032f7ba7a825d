//! The demo's GitOps part: a Rollout delivered by an Application from a local Git repository. A commit is
//! synced; a push announced by webhook is synced at once and its canary, judged by Prometheus, is promoted
//! while the Application reports the Rollout's health; a bad commit is rolled back by its analysis and the
//! Application reports the Rollout Degraded until the commit is reverted; a live edit is healed.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use kube::Api;
use serde_json::{Value, json};
use sluice_crds::application::Application;

use crate::{
    demo::say,
    git_server::{GitServer, Repo},
    harness::kubectl,
    prometheus::TrafficCounters,
};

const NAMESPACE: &str = "argocd";

fn rollout(image: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: storefront
spec:
  replicas: 2
  selector:
    matchLabels: {{app: storefront}}
  template:
    metadata:
      labels: {{app: storefront}}
    spec:
      containers:
      - name: storefront
        image: {image}
  strategy:
    canary:
      steps:
      - setWeight: 50
      - analysis:
          templates: [{{templateName: success-rate}}]
          args: [{{name: service-name, value: storefront-canary}}]
"#
    )
}

/// Judged by the operator's Prometheus (ARGO_ROLLOUTS_PROMETHEUS_ADDRESS), as with Argo Rollouts.
const ANALYSIS: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: success-rate
spec:
  args:
  - name: service-name
  metrics:
  - name: success-rate
    interval: 2s
    count: 3
    successCondition: result[0] >= 0.95
    failureLimit: 0
    provider:
      prometheus:
        query: |
          sum(rate(http_requests_total{service="{{args.service-name}}",code!~"5.."}[10s])) /
          sum(rate(http_requests_total{service="{{args.service-name}}"}[10s]))
"#;

const CONFIG: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: storefront-config\ndata:\n  banner: \"welcome\"\n";

fn line(app: &Value) -> String {
    let f = |p: &str| app.pointer(p).and_then(Value::as_str).unwrap_or("-").to_string();
    let rev = f("/status/sync/revision");
    format!(
        "sync {:<9} health {:<11} revision {:.7}  operation {}",
        f("/status/sync/status"),
        f("/status/health/status"),
        rev,
        f("/status/operationState/phase")
    )
}

/// Prints the Application's state whenever it changes until `done` holds, or fails after `timeout`.
async fn watch_app(
    apps: &Api<Application>,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let app = serde_json::to_value(apps.get("storefront").await?)?;
        let now = line(&app);
        if now != last {
            println!("    app storefront: {now}");
            last = now;
        }
        if done(&app) {
            return Ok(app);
        }
        if Instant::now() > deadline {
            bail!("the Application did not get there in {timeout:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Commits a new image and announces the push at the operator's webhook, as GitHub would.
async fn release(repo: &Repo, image: &str, before: &str, webhook_port: u16) -> Result<String> {
    repo.write("deploy/rollout.yaml", rollout(image)).await?;
    let after = repo.commit(&format!("storefront {image}")).await?;
    let push = json!({
        "ref": "refs/heads/main", "before": before, "after": after,
        "repository": {"html_url": repo.git_url().trim_end_matches(".git"), "default_branch": "main"},
        "commits": [{"id": after, "modified": ["deploy/rollout.yaml"]}],
    });
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{webhook_port}/api/webhook"))
        .header("X-GitHub-Event", "push")
        .body(push.to_string())
        .send()
        .await?;
    println!(
        "    commit {after:.7} ({image}); webhook answered {}",
        response.status()
    );
    Ok(after)
}

fn rollout_line(info: &crate::cluster::ClusterInfo) -> Result<()> {
    println!(
        "{}",
        kubectl(info, &["get", "rollout", "-n", "storefront", "storefront"], None)?.trim_end()
    );
    Ok(())
}

fn at(app: &Value, revision: &str, health: &str) -> bool {
    let f = |p: &str| app.pointer(p).and_then(Value::as_str).unwrap_or("");
    f("/status/sync/revision") == revision
        && f("/status/sync/status") == "Synced"
        && f("/status/health/status") == health
        && f("/status/operationState/phase") == "Succeeded"
}

/// The GitOps walk; `webhook_port` is the operator's webhook endpoint, `traffic` the counters Prometheus scrapes.
pub async fn run(
    info: &crate::cluster::ClusterInfo,
    client: &kube::Client,
    webhook_port: u16,
    traffic: &TrafficCounters,
) -> Result<()> {
    say(
        "GitOps: a Git server on 127.0.0.1 (git daemon) holding a Rollout, its AnalysisTemplate and a ConfigMap",
    );
    traffic.set_service("storefront-canary", 200.0, 0.99);
    let git = GitServer::start().await?;
    let repo = git.create_repo("storefront").await?;
    repo.write("deploy/rollout.yaml", rollout("storefront:1")).await?;
    repo.write("deploy/analysis.yaml", ANALYSIS).await?;
    repo.write("deploy/config.yaml", CONFIG).await?;
    let first = repo.commit("storefront 1").await?;
    println!("    {} at {:.7}", repo.git_url(), first);

    say("An Argo CD Application for it (automated, prune, selfHeal), in the argocd namespace");
    kubectl(info, &["create", "namespace", NAMESPACE], None)?;
    kubectl(info, &["create", "namespace", "storefront"], None)?;
    let app = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "storefront", "namespace": NAMESPACE},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo.git_url(), "targetRevision": "HEAD", "path": "deploy"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "storefront"},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}},
        }
    });
    println!(
        "{}",
        kubectl(info, &["apply", "-f", "-"], Some(&app.to_string()))?.trim_end()
    );
    let apps: Api<Application> = Api::namespaced(client.clone(), NAMESPACE);
    watch_app(&apps, Duration::from_secs(90), |a| at(a, &first, "Healthy")).await?;

    let fourth = releases(info, &apps, &repo, &first, webhook_port, traffic).await?;
    self_heal(info, &apps, &fourth).await
}

/// Three releases through Git: a good one promoted by its analysis, a bad one rolled back, and the revert;
/// returns the revert's commit.
async fn releases(
    info: &crate::cluster::ClusterInfo,
    apps: &Api<Application>,
    repo: &Repo,
    first: &str,
    webhook_port: u16,
    traffic: &TrafficCounters,
) -> Result<String> {
    say(
        "storefront:2 is committed and pushed (webhook); its canary answers 99% well and its analysis promotes it",
    );
    let second = release(repo, "storefront:2", first, webhook_port).await?;
    watch_app(apps, Duration::from_secs(120), |a| at(a, &second, "Healthy")).await?;
    rollout_line(info)?;

    say(
        "storefront:3 is committed and pushed; its canary fails 20% of requests and its analysis rolls it back",
    );
    traffic.set_success_ratio("storefront-canary", 0.80);
    let started = Instant::now();
    let third = release(repo, "storefront:3", &second, webhook_port).await?;
    let degraded = watch_app(apps, Duration::from_secs(120), |a| at(a, &third, "Degraded")).await?;
    let rollout_health = degraded["status"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["kind"] == "Rollout")
        .and_then(|r| r["health"]["message"].as_str())
        .unwrap_or("-")
        .to_string();
    println!(
        "    rolled back {:.1}s after the push; the Application's Rollout is Degraded: {rollout_health}",
        started.elapsed().as_secs_f64()
    );
    rollout_line(info)?;

    say(
        "The bad commit is reverted in Git; the Rollout returns to storefront:2 and the Application to Healthy",
    );
    traffic.set_success_ratio("storefront-canary", 0.99);
    let fourth = release(repo, "storefront:2", &third, webhook_port).await?;
    watch_app(apps, Duration::from_secs(120), |a| at(a, &fourth, "Healthy")).await?;
    rollout_line(info)?;
    Ok(fourth)
}

/// A hand edit of the ConfigMap, put back by selfHeal: a sync of only what drifted.
async fn self_heal(
    info: &crate::cluster::ClusterInfo,
    apps: &Api<Application>,
    revision: &str,
) -> Result<()> {
    say("Someone edits the ConfigMap by hand; selfHeal puts Git's value back");
    // A self-heal syncs only what drifted (an operation naming just the ConfigMap), and adds no history entry,
    // as Argo CD. Its start may fall in the same second as the revert's, so it is told apart by what it synced.
    let synced = |app: &Value| -> Vec<String> {
        app.pointer("/status/operationState/syncResult/resources")
            .and_then(Value::as_array)
            .map(|rs| {
                let name = |r: &Value| {
                    format!(
                        "{}/{}",
                        r["kind"].as_str().unwrap_or(""),
                        r["name"].as_str().unwrap_or("")
                    )
                };
                rs.iter().map(name).collect()
            })
            .unwrap_or_default()
    };
    let patch = r#"{"data":{"banner":"edited by hand"}}"#;
    kubectl(
        info,
        &[
            "patch",
            "configmap",
            "-n",
            "storefront",
            "storefront-config",
            "--type=merge",
            "-p",
            patch,
        ],
        None,
    )?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let banner = kubectl(
            info,
            &[
                "get",
                "configmap",
                "-n",
                "storefront",
                "storefront-config",
                "-o",
                "jsonpath={.data.banner}",
            ],
            None,
        )?;
        if banner == "welcome" {
            println!("    banner is {banner:?} again");
            break;
        }
        if Instant::now() > deadline {
            bail!("selfHeal did not restore the ConfigMap: {banner:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let healed = ["ConfigMap/storefront-config".to_string()];
    let app = watch_app(apps, Duration::from_secs(30), |a| {
        synced(a) == healed && at(a, revision, "Healthy")
    })
    .await?;
    println!(
        "    self-heal synced {}; images: {}",
        synced(&app).join(", "),
        app["status"]["summary"]["images"]
    );
    Ok(())
}
