//! Experiments end to end: templates run as ReplicaSets (kwok makes their pods Ready) for a duration, with
//! analyses measuring the real Prometheus server, which scrapes request counters the test serves; the phase,
//! the scale-down, termination and template Services as upstream's controller leaves them.

use std::time::{Duration, Instant};

use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Service};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::json;
use sluice_crds::{analysis::AnalysisRun, experiment::Experiment};
use sluice_e2e::{
    harness::{Operator, TestNamespace, install_crds, namespace_with_operator},
    prometheus::{Prometheus, SUCCESS_RATE_TEMPLATE_QUERY, TrafficCounters, success_rate_query},
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");

const KINDS: &[&str] = &["experiments", "analysisruns", "analysistemplates"];

/// A template of `replicas` pods labelled `app: <name>`, with a container port (for a Service).
fn template(name: &str, replicas: i32, service: bool) -> String {
    let service = if service { "\n    service: {}" } else { "" };
    format!(
        "  - name: {name}
    replicas: {replicas}
    selector:
      matchLabels: {{app: {name}}}
    template:
      metadata:
        labels: {{app: {name}}}
      spec:
        containers:
        - name: app
          image: app:{name}
          ports: [{{name: http, containerPort: 8080}}]{service}
"
    )
}

fn experiment_yaml(name: &str, spec: &str, templates: &[String]) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1
kind: Experiment
metadata:
  name: {name}
spec:
{spec}  templates:
{}",
        templates.concat()
    )
}

async fn experiment(ns: &TestNamespace, name: &str) -> Experiment {
    ns.api::<Experiment>().get(name).await.expect("experiment")
}

fn phase(ex: &Experiment) -> &str {
    ex.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

/// Polls the Experiment until `check` holds (or panics after `secs` with its status).
async fn wait_experiment(
    ns: &TestNamespace,
    name: &str,
    what: &str,
    secs: u64,
    check: impl Fn(&Experiment) -> bool,
) -> Experiment {
    let start = Instant::now();
    loop {
        let ex = experiment(ns, name).await;
        if check(&ex) {
            return ex;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            panic!(
                "timed out after {secs}s waiting for {name}: {what}; status: {:#?}",
                ex.status
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn replica_set(ns: &TestNamespace, name: &str) -> ReplicaSet {
    ns.api::<ReplicaSet>().get(name).await.expect("replicaset")
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(-1)
}

/// Polls until both ReplicaSets are scaled to 0.
async fn wait_scaled_down(ns: &TestNamespace, names: &[&str], secs: u64) {
    let start = Instant::now();
    loop {
        let mut scales = Vec::new();
        for n in names {
            scales.push(spec_replicas(&replica_set(ns, n).await));
        }
        if scales.iter().all(|r| *r == 0) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "{names:?} not scaled down within {secs}s: {scales:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn template_states(ex: &Experiment) -> Vec<(String, String)> {
    ex.status
        .iter()
        .flat_map(|s| s.template_statuses.iter().flatten())
        .map(|t| (t.name.clone(), t.status.clone().unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_templates_run_for_their_duration_then_succeed_and_scale_down() {
    let (ns, _op) = namespace_with_operator(SUPERVISOR, "exp-duration", KINDS).await;
    let spec = "  duration: 6s\n  scaleDownDelaySeconds: 2\n";
    let templates = [template("baseline", 1, false), template("canary", 2, false)];
    ns.apply(&experiment_yaml("ab", spec, &templates)).expect("apply");
    let running = wait_experiment(&ns, "ab", "Running", 60, |ex| phase(ex) == "Running").await;
    let status = running.status.as_ref().unwrap();
    assert!(
        status.available_at.is_some(),
        "availableAt is set once every template is available"
    );
    assert_eq!(
        template_states(&running),
        vec![
            ("baseline".into(), "Running".into()),
            ("canary".into(), "Running".into())
        ]
    );
    let canary = &status.template_statuses.as_ref().unwrap()[1];
    assert_eq!((canary.replicas, canary.available_replicas), (2, 2));
    for (name, replicas) in [("ab-baseline", 1), ("ab-canary", 2)] {
        let rs = replica_set(&ns, name).await;
        assert_eq!(spec_replicas(&rs), replicas, "{name}");
        let hash = rs.labels()["rollouts-pod-template-hash"].clone();
        let sel = rs.spec.as_ref().unwrap().selector.match_labels.clone().unwrap();
        assert_eq!(sel["rollouts-pod-template-hash"], hash);
        let owner = &rs.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("Experiment", "ab", Some(true))
        );
        assert_eq!(
            rs.annotations()["experiment.argoproj.io/template-name"],
            &name[3..]
        );
    }
    let done = wait_experiment(&ns, "ab", "Successful", 30, |ex| phase(ex) == "Successful").await;
    assert_eq!(
        template_states(&done),
        vec![
            ("baseline".into(), "Successful".into()),
            ("canary".into(), "Successful".into())
        ]
    );
    let cond = done.status.as_ref().unwrap().conditions.as_ref().unwrap();
    assert!(
        cond.iter()
            .any(|c| c.r#type == "Progressing" && c.status == "False" && c.reason == "ExperimentCompleted"),
        "{cond:?}"
    );
    // Kept up for scaleDownDelaySeconds, then scaled down.
    let rs = replica_set(&ns, "ab-canary").await;
    assert!(rs.annotations().contains_key("scale-down-deadline") || spec_replicas(&rs) == 0);
    wait_scaled_down(&ns, &["ab-baseline", "ab-canary"], 30).await;
}

/// An AnalysisTemplate measuring a service's success rate twice, 2 s apart; `hash` is taken to show the
/// experiment variables reach the run.
fn success_rate_template(name: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: {name}}}
spec:
  args:
  - name: service-name
  - name: hash
  metrics:
  - name: success-rate
    interval: 2s
    count: 2
    successCondition: result[0] >= 0.95
    provider:
      prometheus:
        query: '{SUCCESS_RATE_TEMPLATE_QUERY}'
"#
    )
}

fn analysis_spec(service: &str, required: bool) -> String {
    format!(
        "  scaleDownDelaySeconds: 0
  analyses:
  - name: success
    templateName: success-rate
    requiredForCompletion: {required}
    args:
    - {{name: service-name, value: {service}}}
    - {{name: hash, value: '{{{{templates.canary.podTemplateHash}}}}'}}
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_analysis_ends_successful_and_a_failing_one_ends_failed() {
    let mut ns = TestNamespace::new(SUPERVISOR, "exp-analysis")
        .await
        .expect("namespace");
    ns.dump_kinds.extend(KINDS.iter().map(|k| k.to_string()));
    install_crds(&ns.info, &ns.client).await.expect("CRDs");
    let traffic = TrafficCounters::start().await.expect("traffic");
    traffic.set_service("good", 100.0, 0.99);
    traffic.set_service("bad", 100.0, 0.5);
    let dir = std::env::temp_dir().join(format!("sluice-prom-{}", ns.name));
    let prom = Prometheus::start(&dir, &[traffic.address().to_string()])
        .await
        .expect("prometheus");
    for service in ["good", "bad"] {
        prom.wait_until(&success_rate_query(service), Duration::from_secs(60), |v| {
            v.is_finite()
        })
        .await
        .expect("the success rate is in Prometheus");
    }
    let _op =
        Operator::start_with_env(&ns, &[("ARGO_ROLLOUTS_PROMETHEUS_ADDRESS", &prom.url)]).expect("operator");
    ns.apply(&success_rate_template("success-rate"))
        .expect("template");
    let templates = [template("baseline", 1, false), template("canary", 1, false)];
    ns.apply(&experiment_yaml("good", &analysis_spec("good", true), &templates))
        .expect("good");
    ns.apply(&experiment_yaml("bad", &analysis_spec("bad", false), &templates))
        .expect("bad");

    let good = wait_experiment(&ns, "good", "Successful", 90, |ex| phase(ex) == "Successful").await;
    let status = good.status.as_ref().unwrap();
    assert_eq!(status.message.as_deref(), Some("Required AnalysisRuns completed"));
    let analysis = &status.analysis_runs.as_ref().unwrap()[0];
    assert_eq!(
        (analysis.analysis_run.as_str(), analysis.phase.as_str()),
        ("good-success", "Successful")
    );
    let run = ns.api::<AnalysisRun>().get("good-success").await.expect("run");
    let owner = &run.owner_references()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Experiment", "good"));
    let hash = replica_set(&ns, "good-canary").await.labels()["rollouts-pod-template-hash"].clone();
    let args = run.spec.args.clone().unwrap();
    let arg = |n: &str| args.iter().find(|a| a.name == n).and_then(|a| a.value.clone());
    assert_eq!(
        (arg("service-name"), arg("hash")),
        (Some("good".into()), Some(hash))
    );
    wait_scaled_down(&ns, &["good-baseline", "good-canary"], 30).await;

    let bad = wait_experiment(&ns, "bad", "Failed", 90, |ex| phase(ex) == "Failed").await;
    let analysis = &bad.status.as_ref().unwrap().analysis_runs.as_ref().unwrap()[0];
    assert_eq!(analysis.phase, "Failed");
    wait_scaled_down(&ns, &["bad-baseline", "bad-canary"], 30).await;
    drop(prom);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_ends_a_running_experiment_and_scales_it_down() {
    let (ns, _op) = namespace_with_operator(SUPERVISOR, "exp-terminate", KINDS).await;
    let templates = [template("baseline", 1, false), template("canary", 1, false)];
    ns.apply(&experiment_yaml(
        "open",
        "  scaleDownDelaySeconds: 0\n",
        &templates,
    ))
    .expect("apply");
    wait_experiment(&ns, "open", "Running", 60, |ex| phase(ex) == "Running").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        phase(&experiment(&ns, "open").await),
        "Running",
        "no duration: it runs until told"
    );
    ns.api::<Experiment>()
        .patch(
            "open",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"terminate": true}})),
        )
        .await
        .expect("terminate");
    let done = wait_experiment(&ns, "open", "Successful", 30, |ex| phase(ex) == "Successful").await;
    assert_eq!(
        template_states(&done),
        vec![
            ("baseline".into(), "Successful".into()),
            ("canary".into(), "Successful".into())
        ]
    );
    wait_scaled_down(&ns, &["open-baseline", "open-canary"], 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_service_selects_its_pods_and_goes_when_the_experiment_ends() {
    let (ns, _op) = namespace_with_operator(SUPERVISOR, "exp-service", KINDS).await;
    let templates = [template("canary", 1, true)];
    let spec = "  duration: 4s\n  scaleDownDelaySeconds: 0\n";
    ns.apply(&experiment_yaml("svc", spec, &templates))
        .expect("apply");
    let running = wait_experiment(&ns, "svc", "Running with a Service", 60, |ex| {
        phase(ex) == "Running"
            && ex
                .status
                .iter()
                .flat_map(|s| s.template_statuses.iter().flatten())
                .any(|t| t.service_name.is_some())
    })
    .await;
    let ts = &running
        .status
        .as_ref()
        .unwrap()
        .template_statuses
        .as_ref()
        .unwrap()[0];
    assert_eq!(ts.service_name.as_deref(), Some("svc-canary"));
    let hash = replica_set(&ns, "svc-canary").await.labels()["rollouts-pod-template-hash"].clone();
    assert_eq!(ts.pod_template_hash.as_deref(), Some(hash.as_str()));
    let services: Api<Service> = ns.api();
    let svc = services.get("svc-canary").await.expect("service");
    let spec = svc.spec.clone().unwrap();
    assert_eq!(spec.selector.unwrap()["rollouts-pod-template-hash"], hash);
    assert_eq!(spec.ports.unwrap()[0].port, 8080);
    assert_eq!(svc.owner_references()[0].kind, "Experiment");
    wait_experiment(&ns, "svc", "Successful", 30, |ex| phase(ex) == "Successful").await;
    wait_scaled_down(&ns, &["svc-canary"], 30).await;
    let start = Instant::now();
    while services.get_opt("svc-canary").await.expect("get").is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the Service outlived the experiment"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
