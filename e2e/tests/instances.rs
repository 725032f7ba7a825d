//! Several controllers in one cluster: `--instance-id` gives each the Rollouts (and AnalysisRuns) labelled for
//! it, and `--namespaced` runs one on a namespaced Role alone, nothing cluster-scoped asked for.

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::{Api, ResourceExt, api::ListParams};
use sluice_crds::{analysis::AnalysisRun, rollout::Rollout};
use sluice_e2e::{
    harness::{Operator, TestNamespace, install_crds},
    prometheus::MetricsEndpoint,
    rollouts::{healthy, istio_strategy, phase, services_and_vs, set_image, wait_rollout},
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");
const INSTANCE_LABEL: &str = "argo-rollouts.argoproj.io/controller-instance-id";

/// An AnalysisTemplate `ok` whose one measurement asks `address` (which answers `{"ok": true}`).
fn ok_template(address: &str) -> String {
    template("AnalysisTemplate", "ok", address)
}

/// A template of `kind` whose one measurement asks `address`.
fn template(kind: &str, name: &str, address: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: {kind}
metadata: {{name: {name}}}
spec:
  metrics:
  - name: ok
    successCondition: result == true
    provider:
      web:
        url: http://{address}/metrics
        jsonPath: "{{$.ok}}"
"#
    )
}

/// A basic canary of two replicas labelled for `instance` (unlabelled when None): 50 %, then an analysis of
/// the template `template` (a YAML flow mapping).
fn labelled_rollout(name: &str, instance: Option<&str>, template: &str) -> String {
    let labels = match instance {
        Some(id) => format!("\n  labels: {{{INSTANCE_LABEL}: {id}}}"),
        None => String::new(),
    };
    let steps = format!(
        "      steps:\n      - setWeight: 50\n      - analysis:\n          templates: [{template}]\n"
    );
    sluice_e2e::rollouts::canary_rollout_yaml(name, 2, "app:1", &steps).replacen(
        &format!("  name: {name}\n"),
        &format!("  name: {name}{labels}\n"),
        1,
    )
}

/// The AnalysisRuns of a Rollout (by name prefix) with their instance label.
async fn runs_of(ns: &TestNamespace, rollout: &str) -> Vec<(String, Option<String>)> {
    let api: Api<AnalysisRun> = ns.api();
    let runs = api.list(&ListParams::default()).await.expect("list runs");
    runs.items
        .into_iter()
        .filter(|r| r.name_any().starts_with(&format!("{rollout}-")))
        .map(|r| (r.name_any(), r.labels().get(INSTANCE_LABEL).cloned()))
        .collect()
}

/// The ReplicaSets whose names start with `<rollout>-`.
async fn replica_sets_of(ns: &TestNamespace, rollout: &str) -> Vec<String> {
    let api: Api<ReplicaSet> = ns.api();
    let list = api.list(&ListParams::default()).await.expect("list replica sets");
    list.items
        .into_iter()
        .map(|rs| rs.name_any())
        .filter(|n| n.starts_with(&format!("{rollout}-")))
        .collect()
}

/// First deploy, then an update through the analysis step, to Healthy.
async fn progress(ns: &TestNamespace, name: &str) {
    wait_rollout(ns, name, "first deploy Healthy", 90, healthy).await;
    set_image(ns, name, "app:2");
    wait_rollout(ns, name, "update Healthy after its analysis", 120, |ro| {
        healthy(ro) && ro.status.as_ref().and_then(|s| s.current_step_index) == Some(2)
    })
    .await;
}

#[tokio::test]
async fn each_instance_progresses_only_the_rollouts_labelled_for_it() {
    let mut ns = TestNamespace::new(SUPERVISOR, "instances")
        .await
        .expect("namespace");
    ns.dump_kinds.push("analysisruns".into());
    install_crds(&ns.info, &ns.client).await.expect("CRDs");
    let web = MetricsEndpoint::start(r#"{"ok": true}"#).await.expect("endpoint");
    ns.apply(&ok_template(&web.address)).unwrap();
    let op_a = Operator::replica(&ns, "a", &[("SLUICE_INSTANCE_ID", "a")]).expect("instance a");
    let op_none = Operator::replica(&ns, "none", &[]).expect("the instance without an id");
    // Outside namespaced mode ClusterAnalysisTemplates are read, by every instance.
    let global = format!("{}-ok", ns.name);
    sluice_e2e::harness::kubectl(
        &ns.info,
        &["apply", "-f", "-"],
        Some(&template("ClusterAnalysisTemplate", &global, &web.address)),
    )
    .unwrap();
    let ok = "{templateName: ok}";
    ns.apply(&labelled_rollout("inst-a", Some("a"), ok)).unwrap();
    let cluster_ok = format!("{{templateName: {global}, clusterScope: true}}");
    ns.apply(&labelled_rollout("inst-none", None, &cluster_ok))
        .unwrap();
    // Labelled for an instance that is not running: nobody may touch it.
    ns.apply(&labelled_rollout("inst-b", Some("b"), ok)).unwrap();

    progress(&ns, "inst-a").await;
    progress(&ns, "inst-none").await;

    // Each run carries its Rollout's instance (the instance without an id writes no label).
    let runs_a = runs_of(&ns, "inst-a").await;
    assert!(!runs_a.is_empty(), "inst-a has its analysis run");
    assert!(
        runs_a.iter().all(|(_, id)| id.as_deref() == Some("a")),
        "{runs_a:?}"
    );
    let runs_none = runs_of(&ns, "inst-none").await;
    assert!(!runs_none.is_empty(), "inst-none has its analysis run");
    assert!(runs_none.iter().all(|(_, id)| id.is_none()), "{runs_none:?}");

    // The Rollout of instance b was never reconciled: no status, no ReplicaSet, no run.
    let ro_b: Rollout = ns.api().get("inst-b").await.unwrap();
    assert!(
        ro_b.status
            .as_ref()
            .and_then(|s| s.observed_generation.as_ref())
            .is_none(),
        "inst-b has a status: {:?}",
        ro_b.status
    );
    assert!(replica_sets_of(&ns, "inst-b").await.is_empty());
    assert!(runs_of(&ns, "inst-b").await.is_empty());

    // Other instances' objects never entered a cache: each log names only its own Rollout.
    let (log_a, log_none) = (op_a.log(), op_none.log());
    assert!(log_a.contains("inst-a"), "instance a logs its Rollout");
    assert!(
        log_none.contains("inst-none"),
        "the instance without an id logs its Rollout"
    );
    for (log, who, foreign) in [
        (&log_a, "a", ["inst-none", "inst-b"]),
        (&log_none, "none", ["inst-a", "inst-b"]),
    ] {
        for name in foreign {
            assert!(!log.contains(name), "instance {who} names {name}");
        }
    }
    sluice_e2e::harness::kubectl(&ns.info, &["delete", "clusteranalysistemplate", &global], None).unwrap();
}

/// The chart's objects in namespaced mode for the namespace (release `sluice`: service account, Role and
/// RoleBinding `sluice`, nothing cluster-scoped), and a kubeconfig that acts as that service account.
fn namespaced_chart(ns: &TestNamespace) -> std::path::PathBuf {
    let rendered =
        sluice_e2e::chart::render("sluice", &ns.name, &["namespaced=true"]).expect("helm template");
    assert!(
        !rendered.contains("kind: Cluster"),
        "nothing cluster-scoped: {rendered}"
    );
    ns.apply(&rendered).expect("the chart's objects");
    let path = std::env::temp_dir().join(format!("sluice-kubeconfig-{}", ns.name));
    let user = format!("system:serviceaccount:{}:sluice", ns.name);
    sluice_e2e::harness::impersonating_kubeconfig(&ns.info, &user, &path).expect("kubeconfig");
    path
}

fn istio_rollout(name: &str, steps: &str) -> String {
    let strategy = istio_strategy(name, steps);
    format!(
        "{}---\n{}",
        services_and_vs(name),
        sluice_e2e::rollouts::canary_rollout_yaml(name, 2, "app:1", &strategy)
    )
}

#[tokio::test]
async fn a_namespaced_controller_runs_a_canary_on_a_role_alone_and_ignores_other_namespaces() {
    let mut ns = TestNamespace::new(SUPERVISOR, "namespaced")
        .await
        .expect("namespace");
    ns.dump_kinds.push("analysisruns".into());
    let other = TestNamespace::new(SUPERVISOR, "namespaced-other")
        .await
        .expect("other namespace");
    install_crds(&ns.info, &ns.client).await.expect("CRDs");
    let kubeconfig = namespaced_chart(&ns);
    let sa = format!("system:serviceaccount:{}:sluice", ns.name);
    let can = |args: &[&str]| {
        let mut all = vec!["auth", "can-i"];
        all.extend_from_slice(args);
        all.push(&sa);
        sluice_e2e::harness::kubectl(&ns.info, &all, None)
            .unwrap_or_else(|e| e.to_string())
            .trim()
            .ends_with("yes")
    };
    assert!(can(&["list", "rollouts.argoproj.io", "-n", &ns.name, "--as"]));
    assert!(!can(&["list", "customresourcedefinitions", "--as"]));
    assert!(!can(&["list", "clusteranalysistemplates.argoproj.io", "--as"]));
    assert!(!can(&["list", "rollouts.argoproj.io", "-n", &other.name, "--as"]));

    let web = MetricsEndpoint::start(r#"{"ok": true}"#).await.expect("endpoint");
    ns.apply(&ok_template(&web.address)).unwrap();
    let op = Operator::with_kubeconfig(
        &ns,
        "namespaced",
        &kubeconfig,
        &[("SLUICE_NAMESPACED", "true"), ("SLUICE_LEADER_ELECT", "true")],
    )
    .expect("namespaced operator");

    let steps = "      - setWeight: 50\n      - analysis:\n          templates: [{templateName: ok}]\n";
    ns.apply(&istio_rollout("web", steps)).unwrap();
    let cluster_steps = "      - setWeight: 50\n      - analysis:\n          templates: [{templateName: global, clusterScope: true}]\n";
    ns.apply(&istio_rollout("global", cluster_steps)).unwrap();
    other.apply(&istio_rollout("elsewhere", steps)).unwrap();

    wait_rollout(&ns, "web", "first deploy Healthy", 90, healthy).await;
    set_image(&ns, "web", "app:2");
    let done = wait_rollout(&ns, "web", "canary through its analysis to Healthy", 120, |ro| {
        healthy(ro) && ro.status.as_ref().and_then(|s| s.current_step_index) == Some(2)
    })
    .await;
    assert_eq!(phase(&done).0, "Healthy");
    let vs_api = ns.virtual_services();
    sluice_e2e::cluster::wait_for("all traffic back on stable", Duration::from_secs(30), || async {
        let vs = vs_api.get("web-vs").await?;
        match vs.data["spec"]["http"][0]["route"][1]["weight"].as_i64() {
            Some(0) => Ok(()),
            w => Err(anyhow::anyhow!("canary weight {w:?}")),
        }
    })
    .await
    .unwrap();
    assert!(!runs_of(&ns, "web").await.is_empty(), "the analysis ran");

    // A ClusterAnalysisTemplate cannot be read in namespaced mode, and the Rollout says so.
    let global = wait_rollout(&ns, "global", "InvalidSpec naming namespaced mode", 60, |ro| {
        ro.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.r#type == "InvalidSpec" && c.message.contains("namespaced mode"))
            })
    })
    .await;
    assert_eq!(phase(&global).0, "Degraded", "{:?}", phase(&global));

    // The Lease is in the namespace, and the Rollout of the other namespace was never touched.
    let (code, body) = op.readyz().await.expect("readyz");
    assert_eq!((code, body.as_str()), (200, "ok: leading"));
    let elsewhere: Rollout = other.api().get("elsewhere").await.unwrap();
    assert!(elsewhere.status.is_none(), "{:?}", elsewhere.status);
    assert!(replica_sets_of(&other, "elsewhere").await.is_empty());

    // The same identity without --namespaced asks for CRDs first, and is refused.
    let mut cluster_mode = Operator::with_kubeconfig(&ns, "cluster-mode", &kubeconfig, &[])
        .expect("operator without --namespaced");
    sluice_e2e::cluster::wait_for(
        "the operator without --namespaced to give up",
        Duration::from_secs(30),
        || {
            let gone = cluster_mode.exited();
            async move {
                if gone {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("still running"))
                }
            }
        },
    )
    .await
    .unwrap();
    assert!(
        cluster_mode.log().to_lowercase().contains("forbidden"),
        "{}",
        cluster_mode.log()
    );

    // Nothing was refused: no request went beyond the chart's Role.
    let metrics = op.metrics().await.expect("metrics");
    assert!(metrics.contains("sluice_k8s_forbidden_total 0\n"), "{metrics}");
    let log = op.log();
    assert!(!log.to_lowercase().contains("forbidden"), "a request was refused");
    assert!(log.contains("namespaced mode: the Application controller is off"));
    let _ = std::fs::remove_file(kubeconfig);
}
