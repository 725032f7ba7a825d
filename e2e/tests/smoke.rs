//! Smoke tests on the real control plane: the CRDs install, upstream-style manifests apply unchanged and keep
//! every field, the schema refuses bad input naming the field, kwok makes pods Ready, the operator starts and
//! stops cleanly, and Prometheus scrapes an endpoint the test controls.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow};
use k8s_openapi::{
    api::{apps::v1::Deployment, core::v1::Pod},
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{Api, api::ListParams};
use serde_json::Value;
use sluice_crds::{application::Application, rollout::Rollout};
use sluice_e2e::{
    cluster::wait_for,
    harness::{TestNamespace, install_crds, shared_cluster},
    prometheus::{MetricsEndpoint, Prometheus},
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");

async fn namespace(test: &str) -> TestNamespace {
    let ns = TestNamespace::new(SUPERVISOR, test)
        .await
        .expect("test namespace");
    install_crds(&ns.info, &ns.client).await.expect("CRDs install");
    ns
}

fn example(name: &str) -> String {
    let path = sluice_e2e::e2e_dir().join("manifests/examples").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).expect("yaml"))
        .filter(|v| !v.is_null())
        .collect()
}

/// Whether the API server stores the document as written: custom resources have no server-side defaults, while
/// built-in kinds (Services) get defaulted fields.
fn is_custom_resource(doc: &Value) -> bool {
    let api = doc["apiVersion"].as_str().unwrap_or_default();
    api.starts_with("argoproj.io/") || api.starts_with("networking.istio.io/")
}

/// `v` without null object members: the API server drops them, and they mean "absent" anyway.
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// The object as the API server stored it.
fn stored(ns: &TestNamespace, doc: &Value) -> Value {
    let kind = doc["kind"].as_str().unwrap().to_lowercase();
    let name = doc["metadata"]["name"].as_str().unwrap();
    let out = ns
        .kubectl(&["get", &kind, name, "-o", "json"], None)
        .expect("get");
    serde_json::from_str(&out).expect("json")
}

#[tokio::test]
async fn crds_install_and_become_established() {
    let ns = TestNamespace::new(SUPERVISOR, "crds").await.unwrap();
    let names = install_crds(&ns.info, &ns.client).await.unwrap();
    for want in [
        "rollouts.argoproj.io",
        "analysistemplates.argoproj.io",
        "clusteranalysistemplates.argoproj.io",
        "analysisruns.argoproj.io",
        "experiments.argoproj.io",
        "applications.argoproj.io",
        "appprojects.argoproj.io",
        "virtualservices.networking.istio.io",
        "destinationrules.networking.istio.io",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not installed: {names:?}");
    }
    // Short names resolve through discovery, as users type them.
    for short in ["ro", "at", "cat", "ar", "exp", "app", "appproj", "vs", "dr"] {
        ns.kubectl(&["get", short], None)
            .unwrap_or_else(|e| panic!("kubectl get {short}: {e:#}"));
    }
    // The scale subresource answers for a Rollout.
    let crds: Api<CustomResourceDefinition> = Api::all(ns.client.clone());
    let ro = crds.get("rollouts.argoproj.io").await.unwrap();
    assert!(ro.spec.versions[0].subresources.as_ref().unwrap().scale.is_some());
}

#[tokio::test]
async fn canary_with_istio_and_analysis_applies_unchanged_and_keeps_every_field() {
    let ns = namespace("canary-example").await;
    let manifest = example("canary-istio.yaml");
    ns.apply(&manifest).expect("kubectl apply");
    let docs = yaml_documents(&manifest);
    assert_eq!(docs.iter().filter(|d| is_custom_resource(d)).count(), 3);
    for doc in docs.iter().filter(|d| is_custom_resource(d)) {
        let live = stored(&ns, doc);
        assert_eq!(
            live["spec"], doc["spec"],
            "{} {} lost or changed fields",
            doc["kind"], doc["metadata"]["name"]
        );
    }
    // The typed client reads what kubectl wrote.
    let ro = ns.api::<Rollout>().get("rollouts-demo").await.unwrap();
    let canary = ro.spec.strategy.canary.unwrap();
    assert_eq!(canary.steps.unwrap().len(), 7);
    assert_eq!(
        canary
            .traffic_routing
            .unwrap()
            .istio
            .unwrap()
            .virtual_service
            .unwrap()
            .routes
            .unwrap(),
        ["primary"]
    );
    // The VirtualService keeps the fields other owners wrote.
    let vs = stored(&ns, &yaml_documents(&manifest)[3]);
    assert_eq!(vs["spec"]["http"][0]["retries"]["attempts"], 3);
}

#[tokio::test]
async fn bluegreen_with_pre_promotion_analysis_and_application_apply_unchanged() {
    let ns = namespace("bluegreen-app").await;
    for file in ["bluegreen.yaml", "application.yaml"] {
        let manifest = example(file);
        ns.apply(&manifest)
            .unwrap_or_else(|e| panic!("apply {file}: {e:#}"));
        for doc in yaml_documents(&manifest).iter().filter(|d| is_custom_resource(d)) {
            let live = stored(&ns, doc);
            assert_eq!(
                live["spec"], doc["spec"],
                "{file}: {} lost or changed fields",
                doc["metadata"]["name"]
            );
        }
    }
    let ro = ns.api::<Rollout>().get("bluegreen-demo").await.unwrap();
    let bg = ro.spec.strategy.blue_green.unwrap();
    assert_eq!(
        bg.pre_promotion_analysis.unwrap().templates.unwrap()[0]
            .template_name
            .as_deref(),
        Some("smoke-tests")
    );
    let app = ns.api::<Application>().get("guestbook").await.unwrap();
    assert_eq!(
        app.spec.source.unwrap().repo_url,
        "https://git.example.com/platform/guestbook.git"
    );
}

#[tokio::test]
async fn every_crd_fixture_survives_the_api_server() {
    // The fixtures of the round-trip tests use every field; the API server must keep all of them (a field
    // missing from a CRD schema would be pruned silently).
    let ns = namespace("fixtures").await;
    let dir = sluice_e2e::repo_dir().join("crds/tests/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for mut doc in yaml_documents(&text) {
            // Status is written through its own subresource; namespaces are the test's; an owner that does not
            // exist here would have the garbage collector delete the object before it is read back.
            doc.as_object_mut().unwrap().remove("status");
            if let Some(meta) = doc["metadata"].as_object_mut() {
                meta.remove("namespace");
                meta.remove("ownerReferences");
            }
            let body = serde_json::to_string(&doc).unwrap();
            ns.apply(&body)
                .unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
            let live = stored(&ns, &doc);
            for field in ["spec", "operation"] {
                assert_eq!(
                    live[field],
                    without_nulls(&doc[field]),
                    "{}: {field} of {} changed",
                    file.display(),
                    doc["metadata"]["name"]
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} fixtures checked");
}

#[tokio::test]
async fn rollout_breaking_the_schema_is_refused_naming_the_field() {
    let ns = namespace("schema").await;
    let bad = "apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: bad}
spec:
  replicas: three
  selector: {matchLabels: {app: bad}}
  template:
    metadata: {labels: {app: bad}}
    spec: {containers: [{name: c, image: nginx}]}
  strategy:
    canary:
      steps:
      - setWeight: fifty
";
    let err = ns
        .apply(bad)
        .expect_err("the API server must refuse it")
        .to_string();
    assert!(
        err.contains("spec.replicas"),
        "message should name spec.replicas: {err}"
    );
    assert!(
        err.contains("spec.strategy.canary.steps[0].setWeight"),
        "message should name the step: {err}"
    );
    assert!(ns.api::<Rollout>().get_opt("bad").await.unwrap().is_none());

    // The selector cannot change once set.
    let good = bad
        .replace("replicas: three", "replicas: 1")
        .replace("setWeight: fifty", "setWeight: 50");
    ns.apply(&good).unwrap();
    let moved = good.replace(
        "{matchLabels: {app: bad}}",
        "{matchLabels: {app: bad, tier: web}}",
    );
    let err = ns.apply(&moved).expect_err("selector is immutable").to_string();
    assert!(
        err.contains("spec.selector") && err.contains("immutable"),
        "{err}"
    );
}

#[tokio::test]
async fn deployment_of_three_replicas_gets_three_ready_pods_on_kwok_nodes() {
    let ns = TestNamespace::new(SUPERVISOR, "deployment").await.unwrap();
    let started = Instant::now();
    ns.apply(
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.27}]}
",
    )
    .unwrap();
    let pods: Api<Pod> = ns.api();
    wait_for("3 ready pods", Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&ListParams::default().labels("app=web")).await?;
            let ready = list.items.iter().filter(|p| pod_ready(p)).count();
            if ready == 3 {
                Ok(())
            } else {
                Err(anyhow!("{ready}/3 ready"))
            }
        }
    })
    .await
    .unwrap();
    eprintln!("3 pods Ready {:.2}s after apply", started.elapsed().as_secs_f64());
    let list = pods.list(&ListParams::default().labels("app=web")).await.unwrap();
    for p in &list.items {
        let status = p.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert!(
            p.spec
                .as_ref()
                .unwrap()
                .node_name
                .as_deref()
                .unwrap()
                .starts_with("kwok-node-")
        );
        assert!(status.pod_ip.is_some());
    }
    let deploy = ns.api::<Deployment>().get("web").await.unwrap();
    assert_eq!(deploy.status.unwrap().available_replicas, Some(3));
}

fn pod_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `target/debug/sluice` next to this test binary (`target/debug/deps/smoke-*`).
fn sluice_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|d| d.parent()).unwrap().join("sluice");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p sluice` first",
        bin.display()
    );
    bin
}

#[tokio::test]
async fn operator_waits_for_crds_watches_and_stops_on_sigterm() {
    let ns = namespace("operator").await;
    let mut child = Command::new(sluice_binary())
        .args(["run", "--kubeconfig"])
        .arg(&ns.info.kubeconfig)
        .args(["--namespace", &ns.name])
        .args(["--metrics-addr", "127.0.0.1:0", "--healthz-addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|_| panic!("log line is not JSON: {line}"));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let wait_message = |rx: &std::sync::mpsc::Receiver<Value>, want: &str| -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(v) = rx.recv_timeout(Duration::from_millis(200))
                && v["fields"]["message"].as_str().is_some_and(|m| m.contains(want))
            {
                return v;
            }
        }
        panic!("no log line containing {want:?}");
    };
    wait_message(&rx, "connected");
    let watching = wait_message(&rx, "watching rollouts");
    assert_eq!(watching["level"], "INFO");
    assert_eq!(watching["fields"]["namespace"], ns.name.as_str());

    // A Rollout applied now is seen by the running operator without disturbing it.
    ns.apply(&example("canary-istio.yaml")).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the operator exited while watching"
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "sluice did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "sluice exited with {status}");
    let stopping = wait_message(&rx, "shutting down");
    assert_eq!(stopping["fields"]["signal"], "SIGTERM");
}

#[tokio::test]
async fn operator_reports_an_unreachable_api_server_and_exits_nonzero() {
    let info = shared_cluster(SUPERVISOR).unwrap();
    let kubeconfig = std::env::temp_dir().join(format!("sluice-dead-{}.kubeconfig", std::process::id()));
    let text = std::fs::read_to_string(&info.kubeconfig)
        .unwrap()
        .replace(&info.server, "https://127.0.0.1:9");
    std::fs::write(&kubeconfig, text).unwrap();
    let out = Command::new(sluice_binary())
        .args(["run", "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["--metrics-addr", "127.0.0.1:0", "--healthz-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    std::fs::remove_file(&kubeconfig).ok();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last: Value = serde_json::from_str(stderr.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| panic!("the failure is logged as JSON: {stderr}"));
    assert_eq!(last["level"], "ERROR");
    assert!(
        last["fields"]["error"]
            .as_str()
            .unwrap()
            .contains("contacting the API server"),
        "{stderr}"
    );
}

#[tokio::test]
async fn prometheus_scrapes_an_endpoint_the_test_controls() -> Result<()> {
    let endpoint = MetricsEndpoint::start(
        "# TYPE requests_total counter\nrequests_total{service=\"canary\",code=\"200\"} 99\nrequests_total{service=\"canary\",code=\"500\"} 1\n",
    )
    .await?;
    let dir = std::env::temp_dir().join(format!("sluice-prom-{}", std::process::id()));
    let prom = Prometheus::start(&dir, std::slice::from_ref(&endpoint.address)).await?;
    let query =
        r#"sum(requests_total{service="canary",code!~"5.."}) / sum(requests_total{service="canary"})"#;
    let value = |data: Value| data["result"][0]["value"][1].as_str().map(str::to_string);
    wait_for("the first scrape", Duration::from_secs(30), || async {
        let v = value(prom.query(query).await?);
        if v.as_deref() == Some("0.99") {
            Ok(())
        } else {
            Err(anyhow!("{v:?}"))
        }
    })
    .await?;
    endpoint.set("requests_total{service=\"canary\",code=\"200\"} 80\nrequests_total{service=\"canary\",code=\"500\"} 20\n");
    wait_for("the new value", Duration::from_secs(30), || async {
        let v = value(prom.query(query).await?);
        if v.as_deref() == Some("0.8") {
            Ok(())
        } else {
            Err(anyhow!("{v:?}"))
        }
    })
    .await?;
    drop(prom);
    std::fs::remove_dir_all(dir).ok();
    Ok(())
}
