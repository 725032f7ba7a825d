//! The Helm chart (charts/sluice), with the real helm: lint and rendering in every mode, and its RBAC proven
//! on the real API server by running the operator as the chart's ServiceAccount (impersonation in its
//! kubeconfig) through a canary with Istio and Prometheus analysis, one through an SMI TrafficSplit, one
//! through an NGINX canary Ingress, a blue-green release, an Application sync and an ApplicationSet. Any
//! request the API server refuses as forbidden fails the test.

use serde_json::{Value, json};
use sluice_crds::analysis::AnalysisRun;
use sluice_e2e::{
    apps::{cm_value, config_map, git_repo, seed, synced_healthy, wait_app},
    harness::{Operator, TestNamespace, impersonating_kubeconfig, install_crds},
    prometheus::{Prometheus, SUCCESS_RATE_TEMPLATE_QUERY, TrafficCounters, success_rate_query},
    repo_dir,
    rollouts::{
        blue_green_rollout_yaml, blue_green_services, canary_rollout_yaml, healthy, istio_strategy,
        nginx_strategy, services_and_ingress, services_and_vs, set_image, wait_rollout,
    },
};
use std::{path::PathBuf, time::Duration};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");

fn chart() -> PathBuf {
    sluice_e2e::chart::dir()
}

fn helm(args: &[&str]) -> anyhow::Result<String> {
    sluice_e2e::chart::helm(args)
}

/// The documents of a YAML stream, nulls (empty documents) left out.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML document"))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

/// `helm template` of the chart as release `rel` in namespace `ns` with `--set` values.
fn template(rel: &str, ns: &str, sets: &[&str]) -> Vec<Value> {
    documents(&sluice_e2e::chart::render(rel, ns, sets).expect("helm template"))
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// Whether any rule of a role lets its holder read Secrets.
fn reads_secrets(role: &Value) -> bool {
    role["rules"].as_array().into_iter().flatten().any(|r| {
        r["resources"]
            .as_array()
            .is_some_and(|rs| rs.iter().any(|x| x == "secrets" || x == "*"))
    })
}

#[test]
fn lint_is_clean_in_every_mode() {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    for sets in [
        vec![],
        vec!["namespaced=true"],
        vec!["secrets.clusterWide=true", "metrics.serviceMonitor.enabled=true"],
        vec![
            "secrets.namespaces={a,b}",
            "instanceID=blue",
            "gitops.enabled=false",
        ],
    ] {
        let mut args = vec!["lint", "--strict", chart];
        for s in &sets {
            args.extend(["--set", s]);
        }
        let out = helm(&args).unwrap_or_else(|e| panic!("{sets:?}: {e:#}"));
        assert!(out.contains("0 chart(s) failed"), "{sets:?}: {out}");
        assert!(
            !out.contains("[WARNING]") && !out.contains("[ERROR]"),
            "{sets:?}: {out}"
        );
    }
}

#[test]
fn the_deployment_is_hardened_probed_and_elects_a_leader() {
    let docs = template(
        "prod",
        "ops",
        &["instanceID=blue", "extraArgs={--crd-wait-seconds=300}"],
    );
    let [deploy] = of_kind(&docs, "Deployment")[..] else {
        panic!("one Deployment: {docs:#?}")
    };
    let spec = &deploy["spec"];
    assert_eq!(spec["replicas"], 2);
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "prod-sluice");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(c["resources"]["requests"]["memory"].is_string());
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in [
        "run",
        "--leader-elect=true",
        "--leader-election-namespace=ops",
        "--instance-id=blue",
        "--argocd-namespace=ops",
        "--crd-wait-seconds=300",
    ] {
        assert!(args.contains(&want), "{want} in {args:?}");
    }
    assert!(!args.iter().any(|a| a.starts_with("--namespaced")), "{args:?}");
    assert_eq!(c["env"][0]["name"], "POD_NAMESPACE");
    // The metrics Service selects the controller's pods; no ServiceMonitor unless asked.
    let services = of_kind(&docs, "Service");
    assert!(
        services.iter().any(|s| s["spec"]["ports"][0]["port"] == 8090),
        "{services:#?}"
    );
    assert!(of_kind(&docs, "ServiceMonitor").is_empty());
    // Without the GitOps half, the Application controller is told to stay off.
    let rollouts_only = template("prod", "ops", &["gitops.enabled=false"]);
    let args = of_kind(&rollouts_only, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
        .to_string();
    assert!(
        args.contains("\"--applications=false\"") && !args.contains("--argocd-namespace"),
        "{args}"
    );
    let monitored = template("prod", "ops", &["metrics.serviceMonitor.enabled=true"]);
    assert_eq!(of_kind(&monitored, "ServiceMonitor").len(), 1);
}

#[test]
fn rbac_follows_the_mode_and_secrets_are_read_only_where_allowed() {
    // Cluster-wide: one ClusterRole, and it reads no Secret; the GitOps namespace gets its own Role.
    let docs = template("s", "ops", &[]);
    let cluster_roles = of_kind(&docs, "ClusterRole");
    assert_eq!(cluster_roles.len(), 1, "{cluster_roles:#?}");
    assert!(!reads_secrets(cluster_roles[0]), "{:#?}", cluster_roles[0]);
    let secret_roles: Vec<&str> = of_kind(&docs, "Role")
        .into_iter()
        .filter(|r| reads_secrets(r))
        .filter_map(|r| r["metadata"]["namespace"].as_str())
        .collect();
    assert_eq!(
        secret_roles,
        ["ops", "ops"],
        "notification Secret and GitOps Secrets"
    );

    // Analyses' Secrets: a Role per namespace listed, nothing cluster-wide.
    let docs = template(
        "s",
        "ops",
        &["secrets.namespaces={shop,pay}", "gitops.enabled=false"],
    );
    let mut readable: Vec<&str> = of_kind(&docs, "Role")
        .into_iter()
        .filter(|r| reads_secrets(r))
        .filter_map(|r| r["metadata"]["namespace"].as_str())
        .collect();
    readable.sort();
    assert_eq!(readable, ["ops", "pay", "shop"]);
    assert_eq!(of_kind(&docs, "RoleBinding").len(), 3);

    // The documented opt-in.
    let docs = template("s", "ops", &["secrets.clusterWide=true"]);
    assert_eq!(
        of_kind(&docs, "ClusterRole")
            .iter()
            .filter(|r| reads_secrets(r))
            .count(),
        1
    );

    // Namespaced mode: nothing cluster-scoped at all.
    let docs = template("s", "ops", &["namespaced=true", "watchNamespace=shop"]);
    assert!(of_kind(&docs, "ClusterRole").is_empty() && of_kind(&docs, "ClusterRoleBinding").is_empty());
    let watched = of_kind(&docs, "Role")
        .into_iter()
        .find(|r| r["metadata"]["name"] == "s-sluice")
        .expect("the controller's Role");
    assert_eq!(watched["metadata"]["namespace"], "shop");
    let deploy = of_kind(&docs, "Deployment")[0];
    let args = deploy["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains("\"--namespaced\"") && args.contains("--namespace=shop"),
        "{args}"
    );
}

#[test]
fn the_crds_are_the_repositorys_own() {
    let chart = chart();
    // `helm show crds` prints each file of crds/ in turn, with a blank line (no `---`) between them.
    let text = helm(&["show", "crds", chart.to_str().unwrap()]).expect("helm show crds");
    let shown: Vec<Value> = text
        .split("\napiVersion: ")
        .enumerate()
        .map(|(i, part)| {
            if i == 0 {
                part.to_string()
            } else {
                format!("apiVersion: {part}")
            }
        })
        .flat_map(|doc| documents(&doc))
        .collect();
    let mut files: Vec<Value> = std::fs::read_dir(repo_dir().join("crds/yaml"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .flat_map(|p| documents(&std::fs::read_to_string(p).unwrap()))
        .collect();
    let name = |v: &Value| v["metadata"]["name"].as_str().unwrap_or("").to_string();
    let mut shown = shown;
    shown.sort_by_key(name);
    files.sort_by_key(name);
    assert_eq!(shown.len(), 8);
    assert_eq!(shown, files, "the chart's crds/ is crds/yaml itself");
}

/// A success-rate template whose query also carries a token read from a Secret (secretKeyRef), so the
/// analysis needs the Secret permission the chart grants in the Rollout's namespace.
fn template_with_secret(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: prom-token}}
stringData: {{token: not-a-real-token}}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: {name}}}
spec:
  args:
  - name: service-name
  - name: token
    valueFrom: {{secretKeyRef: {{name: prom-token, key: token}}}}
  metrics:
  - name: success-rate
    interval: 1s
    count: 2
    successCondition: result[0] >= 0.95
    provider:
      prometheus:
        query: '{SUCCESS_RATE_TEMPLATE_QUERY}'
        headers: [{{key: Authorization, value: 'Bearer {{{{args.token}}}}'}}]
"#
    )
}

fn canary(name: &str) -> String {
    let steps = format!(
        "      - setWeight: 25
      - analysis:
          templates: [{{templateName: success-rate}}]
          args: [{{name: service-name, value: {name}-canary}}]
      - setWeight: 50
"
    );
    let strategy = istio_strategy(name, &steps);
    format!(
        "{}---\n{}",
        services_and_vs(name),
        canary_rollout_yaml(name, 2, "app:v1", &strategy)
    )
}

/// A canary routed through an SMI TrafficSplit the Rollout creates (named after it).
fn smi_canary(name: &str) -> String {
    let services = ["stable", "canary"]
        .map(|role| {
            format!(
                "apiVersion: v1
kind: Service
metadata: {{name: {name}-{role}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080}}]
---
"
            )
        })
        .concat();
    let strategy = format!(
        "      canaryService: {name}-canary
      stableService: {name}-stable
      trafficRouting:
        smi: {{}}
      steps:
      - setWeight: 50
      - pause: {{duration: 1}}
"
    );
    format!("{services}{}", canary_rollout_yaml(name, 2, "app:v1", &strategy))
}

/// A canary routed by NGINX: its canary Ingress is created, then patched.
fn nginx_canary(name: &str) -> String {
    let steps = "      - setWeight: 50\n      - pause: {duration: 1}\n";
    let strategy = nginx_strategy(name, &format!("          stableIngress: {name}"), steps);
    format!(
        "{}---\n{}",
        services_and_ingress(name, name, &format!("{name}.example.com")),
        canary_rollout_yaml(name, 2, "app:v1", &strategy)
    )
}

fn blue_green(name: &str) -> String {
    let strategy = format!(
        "      activeService: {name}-active\n      previewService: {name}-preview\n      scaleDownDelaySeconds: 2\n"
    );
    format!(
        "{}---\n{}",
        blue_green_services(name),
        blue_green_rollout_yaml(name, 1, "app:v1", &strategy)
    )
}

/// An Experiment of one template with a Service, for a few seconds.
fn experiment(name: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1
kind: Experiment
metadata: {{name: {name}}}
spec:
  duration: 3s
  scaleDownDelaySeconds: 0
  templates:
  - name: canary
    selector: {{matchLabels: {{app: {name}}}}}
    service: {{}}
    template:
      metadata: {{labels: {{app: {name}}}}}
      spec:
        containers: [{{name: app, image: app:v1, ports: [{{containerPort: 8080}}]}}]
"
    )
}

/// Waits for the Experiment to end Successful with its template Service deleted.
async fn wait_experiment_gone_service(ns: &TestNamespace, name: &str) {
    let experiments: kube::Api<sluice_crds::experiment::Experiment> = ns.api();
    let services: kube::Api<k8s_openapi::api::core::v1::Service> = ns.api();
    let start = std::time::Instant::now();
    loop {
        let ex = experiments.get(name).await.expect("experiment");
        let phase = ex.status.as_ref().and_then(|s| s.phase.clone());
        let service = services
            .get_opt(&format!("{name}-canary"))
            .await
            .expect("service");
        if phase.as_deref() == Some("Successful") && service.is_none() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "experiment {name}: {:?}, Service left: {}",
            ex.status,
            service.is_some()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn application(ns: &str, repo_url: &str) -> String {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "shop", "namespace": ns},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo_url, "targetRevision": "HEAD", "path": "app"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": ns},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}},
        }
    })
    .to_string()
}

/// An ApplicationSet whose list generator makes one Application, `extra`, from the directory `extra`.
fn application_set(ns: &str, repo_url: &str) -> String {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "shops", "namespace": ns},
        "spec": {
            "generators": [{"list": {"elements": [{"name": "extra"}]}}],
            "template": {
                "metadata": {"name": "{{name}}"},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": repo_url, "targetRevision": "HEAD", "path": "{{name}}"},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": ns},
                    "syncPolicy": {"automated": {}},
                }
            }
        }
    })
    .to_string()
}

/// `kubectl auth can-i` as the chart's ServiceAccount.
fn can_i(ns: &TestNamespace, user: &str, args: &[&str]) -> bool {
    let mut all = vec!["auth", "can-i", "--as", user];
    all.extend_from_slice(args);
    // can-i exits 1 for "no", which kubectl() reports as an error.
    ns.kubectl(&all, None).map(|o| o.trim() == "yes").unwrap_or(false)
}

/// Applies the chart's rendered objects (no CRDs: the harness installed the same files) for release `rel`.
fn install_chart(ns: &TestNamespace, rel: &str) {
    let secrets = format!("secrets.namespaces={{{}}}", ns.name);
    let rendered = sluice_e2e::chart::render(rel, &ns.name, &[&secrets]).expect("helm template");
    ns.apply(&rendered).expect("the chart's objects are accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_rbac_is_all_the_operator_needs() {
    let mut ns = TestNamespace::new(SUPERVISOR, "chart-rbac")
        .await
        .expect("namespace");
    ns.dump_kinds.extend(
        [
            "analysisruns",
            "applications",
            "configmaps",
            "roles",
            "rolebindings",
        ]
        .map(String::from),
    );
    install_crds(&ns.info, &ns.client).await.expect("CRDs");
    let rel = ns.name.clone();
    install_chart(&ns, &rel);
    let user = format!("system:serviceaccount:{}:{rel}-sluice", ns.name);
    assert!(can_i(&ns, &user, &["patch", "rollouts.argoproj.io"]));
    assert!(can_i(&ns, &user, &["get", "secrets", "-n", &ns.name]));
    assert!(
        !can_i(&ns, &user, &["get", "secrets", "-n", "kube-system"]),
        "no Secret elsewhere"
    );
    assert!(!can_i(&ns, &user, &["list", "secrets", "--all-namespaces"]));
    assert!(can_i(&ns, &user, &["create", "trafficsplits.split.smi-spec.io"]));
    assert!(!can_i(&ns, &user, &["create", "clusterrolebindings"]));
    assert!(!can_i(&ns, &user, &["delete", "customresourcedefinitions"]));
    for route in ["httproutes", "grpcroutes", "tcproutes"] {
        let resource = format!("{route}.gateway.networking.k8s.io");
        assert!(
            can_i(&ns, &user, &["patch", &resource]),
            "Gateway API {route} patched"
        );
        assert!(
            !can_i(&ns, &user, &["delete", &resource]),
            "Gateway API {route} never deleted"
        );
    }

    let traffic = TrafficCounters::start().await.expect("traffic");
    traffic.set_service("web-canary", 100.0, 0.99);
    traffic.set_service("web-stable", 100.0, 0.99);
    let dir = std::env::temp_dir().join(format!("sluice-prom-{}", ns.name));
    let prom = Prometheus::start(&dir, &[traffic.address().to_string()])
        .await
        .expect("prometheus");
    prom.wait_until(&success_rate_query("web-canary"), Duration::from_secs(60), |v| {
        v.is_finite()
    })
    .await
    .expect("a success rate in Prometheus");
    let (_git, repo) = git_repo("chart-shop").await;
    let commit = seed(
        &repo,
        &[
            ("app/settings.yaml", config_map("settings", "v1", "")),
            ("extra/extra.yaml", config_map("extra", "x", "")),
        ],
    )
    .await;

    let kubeconfig = std::env::temp_dir().join(format!("sluice-kubeconfig-{}", ns.name));
    impersonating_kubeconfig(&ns.info, &user, &kubeconfig).expect("kubeconfig");
    let op = Operator::with_kubeconfig(
        &ns,
        "",
        &kubeconfig,
        &[
            ("ARGO_ROLLOUTS_PROMETHEUS_ADDRESS", prom.url.as_str()),
            ("SLUICE_LEADER_ELECT", "true"),
            ("SLUICE_LEADER_ELECTION_NAMESPACE", ns.name.as_str()),
            // As the chart's Deployment sets it: notifications are configured in the release namespace.
            ("POD_NAMESPACE", ns.name.as_str()),
        ],
    )
    .expect("operator");

    // A canary with Istio weights, judged by Prometheus with a Secret argument.
    ns.apply(&template_with_secret("success-rate")).expect("template");
    ns.apply(&canary("web")).expect("canary");
    // A canary through an SMI TrafficSplit.
    ns.apply(&smi_canary("mesh")).expect("SMI canary");
    // A canary through an NGINX canary Ingress.
    ns.apply(&nginx_canary("edge")).expect("nginx canary");
    // A blue-green release.
    ns.apply(&blue_green("bg")).expect("blue-green");
    // An Experiment with a template Service, deleted when it ends.
    ns.apply(&experiment("try")).expect("experiment");
    // An Application synced from Git, and one made by an ApplicationSet.
    ns.apply(&application(&ns.name, &repo.git_url()))
        .expect("application");
    ns.apply(&application_set(&ns.name, &repo.git_url()))
        .expect("application set");

    wait_rollout(&ns, "web", "first canary deploy Healthy", 90, healthy).await;
    wait_rollout(&ns, "bg", "first blue-green deploy Healthy", 90, healthy).await;
    wait_rollout(&ns, "mesh", "first SMI canary deploy Healthy", 90, healthy).await;
    wait_rollout(&ns, "edge", "first nginx canary deploy Healthy", 90, healthy).await;
    set_image(&ns, "web", "app:v2");
    set_image(&ns, "mesh", "app:v2");
    set_image(&ns, "bg", "app:v2");
    set_image(&ns, "edge", "app:v2");
    let released = |ro: &sluice_crds::rollout::Rollout| {
        let image = ro
            .spec
            .template
            .as_ref()
            .and_then(|t| t.spec.as_ref())
            .and_then(|s| s.containers[0].image.clone());
        healthy(ro)
            && image.as_deref() == Some("app:v2")
            && ro
                .status
                .as_ref()
                .is_some_and(|s| s.stable_rs == s.current_pod_hash)
    };
    wait_rollout(
        &ns,
        "web",
        "the canary promoted after its analysis",
        120,
        released,
    )
    .await;
    wait_rollout(&ns, "bg", "the blue-green release promoted", 120, released).await;
    wait_rollout(&ns, "mesh", "the SMI canary promoted", 120, released).await;
    let split = ns.kubectl(
        &["get", "trafficsplits.split.smi-spec.io", "mesh", "-o", "name"],
        None,
    );
    assert!(split.is_ok(), "the SMI canary made its TrafficSplit: {split:?}");
    wait_rollout(&ns, "edge", "the nginx canary promoted", 120, released).await;
    let canary_ingress = ns
        .kubectl(
            &[
                "get",
                "ingress",
                "edge-edge-canary",
                "-o",
                "jsonpath={.metadata.annotations}",
            ],
            None,
        )
        .expect("the canary Ingress was made");
    assert!(
        canary_ingress.contains(r#""nginx.ingress.kubernetes.io/canary-weight":"0""#),
        "{canary_ingress}"
    );
    let runs = ns
        .api::<AnalysisRun>()
        .list(&Default::default())
        .await
        .expect("runs")
        .items;
    assert!(
        runs.iter()
            .any(|r| r.status.as_ref().is_some_and(|s| s.phase == "Successful")),
        "the analysis ran and passed: {runs:#?}"
    );
    wait_app(&ns, "shop", "the Application synced", synced_healthy(&commit)).await;
    assert_eq!(cm_value(&ns, "settings").await.as_deref(), Some("v1"));
    wait_app(
        &ns,
        "extra",
        "the ApplicationSet's Application synced",
        synced_healthy(&commit),
    )
    .await;
    assert_eq!(cm_value(&ns, "extra").await.as_deref(), Some("x"));
    wait_experiment_gone_service(&ns, "try").await;
    let lease = ns.kubectl(
        &["get", "lease", "argo-rollouts-controller-lock", "-o", "name"],
        None,
    );
    assert!(lease.is_ok(), "the operator led through its Lease: {lease:?}");

    let metrics = op.metrics().await.expect("metrics");
    let forbidden = metrics
        .lines()
        .find(|l| l.starts_with("sluice_k8s_forbidden_total"))
        .unwrap_or("");
    assert_eq!(
        forbidden,
        "sluice_k8s_forbidden_total 0",
        "{}",
        refusals(&op.log())
    );
    let _ = std::fs::remove_file(&kubeconfig);
    drop(prom);
}

/// The operator's log lines about forbidden requests.
fn refusals(log: &str) -> String {
    log.lines()
        .filter(|l| l.contains("forbidden"))
        .collect::<Vec<_>>()
        .join("\n")
}
