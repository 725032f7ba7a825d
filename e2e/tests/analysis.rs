//! Analysis end to end: Rollouts whose canary is judged by AnalysisTemplates measuring the real Prometheus
//! server, which scrapes request counters the test serves for the canary and the stable service.

use std::time::{Duration, Instant};

use kube::{
    Api, ResourceExt,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams},
};
use sluice_crds::{analysis::AnalysisRun, rollout::Rollout};
use sluice_e2e::{
    harness::{Operator, TestNamespace, install_crds, namespace_with_operator},
    prometheus::{Prometheus, SUCCESS_RATE_TEMPLATE_QUERY, TrafficCounters, success_rate_query},
    rollouts::{healthy, phase, services_and_vs, set_image, wait_rollout},
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");

/// A namespace with the CRDs, the traffic counters, a Prometheus scraping them and an operator whose
/// `ARGO_ROLLOUTS_PROMETHEUS_ADDRESS` points at that Prometheus.
struct Env {
    ns: TestNamespace,
    op: Operator,
    traffic: TrafficCounters,
    prom: Prometheus,
    prom_url: String,
}

async fn setup(test: &str, canary_ratio: f64) -> Env {
    setup_with(test, canary_ratio, &[]).await
}

/// As [`setup`], with more services served; returns once Prometheus has a success rate for each canary, so that
/// no analysis starts before there is data (a first measurement without data is an Error).
async fn setup_with(test: &str, canary_ratio: f64, more: &[&str]) -> Env {
    let mut ns = TestNamespace::new(SUPERVISOR, test).await.expect("namespace");
    ns.dump_kinds.push("analysisruns".into());
    ns.dump_kinds.push("analysistemplates".into());
    install_crds(&ns.info, &ns.client).await.expect("CRDs");
    let traffic = TrafficCounters::start().await.expect("traffic");
    let canary = format!("{test}-canary");
    traffic.set_service(&canary, 100.0, canary_ratio);
    traffic.set_service(&format!("{test}-stable"), 100.0, 0.99);
    for service in more {
        traffic.set_service(service, 100.0, 0.99);
    }
    let dir = std::env::temp_dir().join(format!("sluice-prom-{}", ns.name));
    let prom = Prometheus::start(&dir, &[traffic.address().to_string()])
        .await
        .expect("prometheus");
    for service in std::iter::once(canary.as_str()).chain(more.iter().copied()) {
        prom.wait_until(&success_rate_query(service), Duration::from_secs(60), |v| {
            v.is_finite()
        })
        .await
        .expect("the success rate is in Prometheus");
    }
    let prom_url = prom.url.clone();
    let op =
        Operator::start_with_env(&ns, &[("ARGO_ROLLOUTS_PROMETHEUS_ADDRESS", &prom_url)]).expect("operator");
    Env {
        ns,
        op,
        traffic,
        prom,
        prom_url,
    }
}

/// The success-rate template of upstream's docs: the canary's share of non-5xx responses.
fn success_rate_template(name: &str, extra: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: {name}}}
spec:
  args:
  - name: service-name
  metrics:
  - name: success-rate
    interval: 2s
    successCondition: result[0] >= 0.95
    provider:
      prometheus:
        query: '{SUCCESS_RATE_TEMPLATE_QUERY}'
{extra}"#
    )
}

fn rollout_yaml(name: &str, steps: &str, background: &str) -> String {
    let front = services_and_vs(name);
    format!(
        "{front}---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: {name}
spec:
  replicas: 4
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: app:v1
  strategy:
    canary:
      canaryService: {name}-canary
      stableService: {name}-stable
      trafficRouting:
        istio:
          virtualService: {{name: {name}-vs, routes: [primary]}}
{background}      steps:
{steps}"
    )
}

/// A canary of 25% judged by the template at step 1, then 50% and done.
fn analysis_steps(name: &str, template: &str) -> String {
    format!(
        "      - setWeight: 25
      - analysis:
          templates: [{{templateName: {template}}}]
          args: [{{name: service-name, value: {name}-canary}}]
      - setWeight: 50
"
    )
}

/// Polls the canary weight until it is `want` (or `secs` pass); returns the last weight seen.
async fn wait_weight(ns: &TestNamespace, vs: &str, want: i64, secs: u64) -> i64 {
    let start = std::time::Instant::now();
    loop {
        let w = canary_weight(ns, vs);
        if w == want || start.elapsed() > std::time::Duration::from_secs(secs) {
            return w;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn canary_weight(ns: &TestNamespace, vs: &str) -> i64 {
    let out = ns
        .kubectl(
            &[
                "get",
                "virtualservice",
                vs,
                "-o",
                "jsonpath={.spec.http[0].route[1].weight}",
            ],
            None,
        )
        .expect("virtualservice");
    out.trim().parse().unwrap_or(-1)
}

async fn deploy_v1(env: &Env, name: &str, manifest: &str) {
    env.ns.apply(manifest).expect("apply");
    wait_rollout(&env.ns, name, "first deploy Healthy", 60, healthy).await;
}

async fn runs(ns: &TestNamespace) -> Vec<AnalysisRun> {
    let api: Api<AnalysisRun> = ns.api();
    api.list(&ListParams::default()).await.expect("list runs").items
}

async fn wait_run(
    ns: &TestNamespace,
    what: &str,
    secs: u64,
    check: impl Fn(&AnalysisRun) -> bool,
) -> AnalysisRun {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if let Some(r) = runs(ns).await.into_iter().find(|r| check(r)) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all: Vec<_> = runs(ns)
        .await
        .into_iter()
        .map(|r| (r.name_any(), r.status))
        .collect();
    panic!("timed out after {secs}s waiting for a run: {what}; runs: {all:#?}");
}

fn run_phase(r: &AnalysisRun) -> &str {
    r.status.as_ref().map(|s| s.phase.as_str()).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_canary_passes_its_analysis_and_is_promoted() {
    let env = setup("good", 0.99).await;
    env.ns
        .apply(&success_rate_template("success-rate", "    count: 2\n"))
        .unwrap();
    env.ns
        .apply(&success_rate_template("until-promoted", ""))
        .unwrap();
    // Background analysis from step 1, measuring every 2 s until the rollout is fully promoted.
    let background = "      analysis:
        templates: [{templateName: until-promoted}]
        startingStep: 1
        args: [{name: service-name, value: good-canary}]
";
    deploy_v1(
        &env,
        "good",
        &rollout_yaml("good", &analysis_steps("good", "success-rate"), background),
    )
    .await;
    set_image(&env.ns, "good", "app:v2");
    let run = wait_run(&env.ns, "the step run", 30, |r| {
        r.labels().get("rollout-type").map(String::as_str) == Some("Step")
    })
    .await;
    let hash = run.labels()["rollouts-pod-template-hash"].clone();
    assert_eq!(run.name_any(), format!("good-{hash}-2-1"));
    assert_eq!(run.labels()["step-index"], "1");
    assert_eq!(run.annotations()["rollout.argoproj.io/revision"], "2");
    let owner = &run.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("Rollout", "good", Some(true))
    );
    assert_eq!(
        run.spec.args.as_ref().unwrap()[0].value.as_deref(),
        Some("good-canary")
    );
    assert_eq!(
        canary_weight(&env.ns, "good-vs"),
        25,
        "the analysis judges the canary at its step's weight"
    );

    let ro = wait_rollout(&env.ns, "good", "Healthy on v2", 60, healthy).await;
    assert_ne!(ro.status.as_ref().unwrap().stable_rs, None);
    let run = runs(&env.ns)
        .await
        .into_iter()
        .find(|r| r.name_any() == run.name_any())
        .unwrap();
    let st = run.status.clone().unwrap();
    assert_eq!(st.phase, "Successful");
    let result = &st.metric_results.as_ref().unwrap()[0];
    assert_eq!((result.count, result.successful), (Some(2), Some(2)));
    let last = result.measurements.as_ref().unwrap().last().unwrap();
    let value: Vec<f64> = serde_json::from_str(last.value.as_deref().unwrap()).unwrap();
    assert!((value[0] - 0.99).abs() < 0.01, "measured {value:?}");
    // After the promotion the stable Service switches to the new pods, then the canary's share goes back to 0.
    assert_eq!(wait_weight(&env.ns, "good-vs", 0, 30).await, 0);
    // The background run measured from step 1 until the promotion, then was terminated.
    let bg = wait_run(&env.ns, "the background run terminated", 30, |r| {
        r.labels().get("rollout-type").map(String::as_str) == Some("Background")
            && run_phase(r) == "Successful"
    })
    .await;
    assert_eq!(bg.name_any(), format!("good-{hash}-2"));
    assert_eq!(bg.spec.terminate, Some(true));
    assert_eq!(
        bg.status.as_ref().unwrap().message.as_deref(),
        Some("Run Terminated")
    );
    let ro: Rollout = env.ns.api().get("good").await.unwrap();
    assert_eq!(
        ro.status
            .unwrap()
            .canary
            .and_then(|c| c.current_background_analysis_run_status),
        None
    );
    // The controller's metrics describe the run.
    let metrics = env.op.metrics().await.unwrap();
    let info = format!(
        "analysis_run_info{{namespace=\"{}\",name=\"{}\",phase=\"Successful\"}} 1",
        env.ns.name,
        run.name_any()
    );
    assert!(metrics.contains(&info), "{info} missing from:\n{metrics}");
    assert!(metrics.contains("analysis_run_metric_phase{"), "{metrics}");
    assert!(metrics.contains("analysis_run_reconcile_bucket"), "{metrics}");
    assert!(metrics.contains("rollout_info{"), "{metrics}");
    drop(env.traffic);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_canary_fails_its_analysis_and_is_rolled_back_with_the_reason() {
    let env = setup("bad", 0.80).await;
    env.ns
        .apply(&success_rate_template("success-rate", "    count: 3\n"))
        .unwrap();
    deploy_v1(
        &env,
        "bad",
        &rollout_yaml("bad", &analysis_steps("bad", "success-rate"), ""),
    )
    .await;
    set_image(&env.ns, "bad", "app:v2");
    let ro = wait_rollout(&env.ns, "bad", "aborted", 120, |r| phase(r).0 == "Degraded").await;
    let (_, message) = phase(&ro);
    assert!(message.starts_with("RolloutAborted: Rollout aborted update to revision 2: Metric \"success-rate\" assessed Failed due to failed (1) > failureLimit (0)"), "{message}");
    // The measured value is named: about 0.80 (a rate over a 10 s window moves a little around the ratio).
    let value: f64 = message
        .split("last measured value [")
        .nth(1)
        .and_then(|v| v.split(']').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("the measured value is named: {message}"));
    assert!((value - 0.80).abs() < 0.05, "measured {value}: {message}");
    assert_eq!(ro.status.as_ref().unwrap().abort, Some(true));
    assert_eq!(canary_weight(&env.ns, "bad-vs"), 0, "traffic is back on stable");
    let run = runs(&env.ns)
        .await
        .into_iter()
        .find(|r| r.labels().get("step-index").is_some())
        .unwrap();
    assert_eq!(run_phase(&run), "Failed");
    let st = run.status.unwrap();
    assert_eq!(st.run_summary.as_ref().unwrap().failed, Some(1));
    assert!(st.message.unwrap().contains("success-rate"));
    let events = env
        .ns
        .kubectl(
            &[
                "get",
                "events",
                "-o",
                "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}",
            ],
            None,
        )
        .unwrap();
    for reason in ["AnalysisRunFailed", "RolloutAborted", "MetricFailed"] {
        assert!(
            events.lines().any(|l| l == reason),
            "event {reason} missing: {events}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stopped_mid_analysis_errors_the_run_and_aborts_the_rollout() {
    let mut env = setup("outage", 0.99).await;
    // Background analysis from the first step, measured every second, with the default consecutiveErrorLimit (4).
    env.ns.apply(&success_rate_template("success-rate", "")).unwrap();
    let background = "      analysis:
        templates: [{templateName: success-rate}]
        args: [{name: service-name, value: outage-canary}]
";
    let steps = "      - setWeight: 25\n      - pause: {}\n";
    deploy_v1(&env, "outage", &rollout_yaml("outage", steps, background)).await;
    set_image(&env.ns, "outage", "app:v2");
    let run = wait_run(&env.ns, "a background run measuring", 60, |r| {
        r.status
            .as_ref()
            .and_then(|s| s.metric_results.as_ref())
            .is_some_and(|m| m[0].successful.unwrap_or(0) >= 1)
    })
    .await;
    assert_eq!(run.labels()["rollout-type"], "Background");
    env.prom.stop();
    let outage = Instant::now();
    let ro = wait_rollout(&env.ns, "outage", "aborted after the outage", 120, |r| {
        phase(r).0 == "Degraded"
    })
    .await;
    let took = outage.elapsed();
    eprintln!("outage to abort: {:.1}s", took.as_secs_f64());
    let (_, message) = phase(&ro);
    assert!(
        message.contains("assessed Error due to consecutiveErrors (5) > consecutiveErrorLimit (4)"),
        "{message}"
    );
    assert!(
        message.contains(&env.prom_url.replace("http://", "")) || message.contains("connect"),
        "{message}"
    );
    assert_eq!(canary_weight(&env.ns, "outage-vs"), 0);
    let run = runs(&env.ns)
        .await
        .into_iter()
        .find(|r| r.name_any() == run.name_any())
        .unwrap();
    assert_eq!(run_phase(&run), "Error");
    let result = &run.status.unwrap().metric_results.unwrap()[0];
    assert_eq!(result.consecutive_error, Some(5));
    // Errors are retried every 10 s: the fifth error lands about 40 s after the first.
    assert!(
        took >= Duration::from_secs(38),
        "errors are retried after 10 s, not at once: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inconclusive_analysis_pauses_and_promote_continues() {
    let env = setup("unsure", 0.90).await;
    // 0.90 is neither a success (>= 0.95) nor a failure (< 0.5).
    env.ns
        .apply(&success_rate_template(
            "success-rate",
            "    count: 1\n    failureCondition: result[0] < 0.5\n",
        ))
        .unwrap();
    deploy_v1(
        &env,
        "unsure",
        &rollout_yaml("unsure", &analysis_steps("unsure", "success-rate"), ""),
    )
    .await;
    set_image(&env.ns, "unsure", "app:v2");
    let ro = wait_rollout(&env.ns, "unsure", "paused by the inconclusive run", 60, |r| {
        phase(r).0 == "Paused"
    })
    .await;
    let st = ro.status.clone().unwrap();
    assert_eq!(phase(&ro).1, "InconclusiveAnalysisRun");
    assert_eq!(st.pause_conditions.unwrap()[0].reason, "InconclusiveAnalysisRun");
    assert_eq!(st.current_step_index, Some(1));
    let step_run = st.canary.unwrap().current_step_analysis_run_status.unwrap();
    assert_eq!(step_run.status, "Inconclusive");
    assert_eq!(
        canary_weight(&env.ns, "unsure-vs"),
        25,
        "an inconclusive run holds the canary where it is"
    );
    env.ns
        .kubectl(
            &[
                "patch",
                "rollout",
                "unsure",
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"status":{"pauseConditions":null}}"#,
            ],
            None,
        )
        .unwrap();
    wait_rollout(&env.ns, "unsure", "Healthy after promote", 60, healthy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_message_and_never_stops_the_controller() {
    let env = setup_with("bad-input", 0.99, &["fine-canary", "notemplate-canary"]).await;
    let ns = &env.ns;
    let quick = "    count: 1\n    consecutiveErrorLimit: 0\n";
    ns.apply(&success_rate_template("good-template", quick)).unwrap();
    // Malformed PromQL: Prometheus answers 400 with its parse error.
    ns.apply(
        &success_rate_template("good-template", quick)
            .replace("good-template", "bad-promql")
            .replace(SUCCESS_RATE_TEMPLATE_QUERY, "sum(rate(http_requests_total[10s]"),
    )
    .unwrap();
    // A condition that does not parse.
    ns.apply(&success_rate_template("bad-condition", quick).replace("result[0] >= 0.95", "result[0] >="))
        .unwrap();
    // A Secret that does not exist.
    ns.apply(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: secret-template}
spec:
  args:
  - name: service-name
  - name: token
    valueFrom: {secretKeyRef: {name: no-such-secret, key: token}}
  metrics:
  - name: success-rate
    successCondition: result[0] >= 0.95
    provider:
      prometheus:
        query: 'vector(1)'
        headers: [{key: Authorization, value: 'Bearer {{args.token}}'}]
"#,
    )
    .unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("promql", "bad-promql", "parse error"),
        ("cond", "bad-condition", "success-rate"),
        (
            "secret",
            "secret-template",
            "secrets \"no-such-secret\" not found",
        ),
    ];
    for (name, template, _) in cases {
        deploy_v1(
            &env,
            name,
            &rollout_yaml(name, &analysis_steps(name, template), ""),
        )
        .await;
        set_image(ns, name, "app:v2");
    }
    // A missing argument: the template's service-name is never given.
    let no_args = analysis_steps("noarg", "good-template").replace(
        "          args: [{name: service-name, value: noarg-canary}]\n",
        "",
    );
    deploy_v1(&env, "noarg", &rollout_yaml("noarg", &no_args, "")).await;
    set_image(ns, "noarg", "app:v2");
    // A template that does not exist.
    ns.apply(&rollout_yaml(
        "notemplate",
        &analysis_steps("notemplate", "no-such-template"),
        "",
    ))
    .unwrap();
    // Meanwhile a good rollout goes all the way.
    deploy_v1(
        &env,
        "fine",
        &rollout_yaml("fine", &analysis_steps("fine", "good-template"), ""),
    )
    .await;
    set_image(ns, "fine", "app:v2");

    for (name, _, want) in cases {
        let ro = wait_rollout(ns, name, "aborted", 60, |r| phase(r).0 == "Degraded").await;
        let (_, message) = phase(&ro);
        assert!(message.contains(want), "{name}: {message}");
        eprintln!("{name}: {message}");
    }
    let ro = wait_rollout(ns, "noarg", "aborted", 60, |r| phase(r).0 == "Degraded").await;
    let (_, message) = phase(&ro);
    assert!(message.contains("service-name"), "{message}");
    assert!(
        message.contains("Unable to resolve metric arguments"),
        "{message}"
    );
    let ro = wait_rollout(ns, "notemplate", "InvalidSpec", 30, |r| {
        phase(r).1.contains("InvalidSpec")
    })
    .await;
    let (p, message) = phase(&ro);
    assert_eq!(p, "Degraded");
    assert!(
        message.contains("AnalysisTemplate \"no-such-template\" not found"),
        "{message}"
    );
    wait_rollout(ns, "fine", "Healthy on v2", 90, healthy).await;
    // Creating the missing template lets the waiting rollout go on.
    ns.apply(&success_rate_template("no-such-template", quick))
        .unwrap();
    wait_rollout(ns, "notemplate", "no longer invalid", 30, |r| {
        !phase(r).1.contains("InvalidSpec")
    })
    .await;
    let log = env.op.log();
    assert!(!log.contains("panicked"), "the controller never panics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_arguments_are_read_when_measuring_and_never_written_anywhere() {
    let env = setup("secret", 0.99).await;
    let ns = &env.ns;
    let token = "s3cr3t-t0ken-value";
    ns.apply(&format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: prom-token}}
stringData: {{token: {token}}}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata: {{name: with-secret}}
spec:
  args:
  - name: token
    valueFrom: {{secretKeyRef: {{name: prom-token, key: token}}}}
  - name: address
    value: {address}
  metrics:
  - name: secret-in-header
    successCondition: result[0] == 1
    provider:
      prometheus:
        address: '{{{{args.address}}}}'
        query: 'vector(1)'
        headers: [{{key: Authorization, value: 'Bearer {{{{args.token}}}}'}}]
  - name: secret-in-address
    successCondition: result[0] == 1
    consecutiveErrorLimit: 0
    provider:
      prometheus:
        address: 'http://127.0.0.1:9/{{{{args.token}}}}'
        query: 'vector(1)'
"#,
        address = env.prom_url
    ))
    .unwrap();
    let run = wait_run(ns, "the run completes", 60, |r| {
        r.name_any() == "with-secret" && run_phase(r) == "Error"
    })
    .await;
    let st = run.status.clone().unwrap();
    let header = st
        .metric_results
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "secret-in-header")
        .unwrap();
    assert_eq!(
        header.phase, "Successful",
        "a metric using the secret in a header works: {st:#?}"
    );
    let text = serde_json::to_string(&run).unwrap();
    assert!(
        !text.contains(token),
        "the secret is not in the AnalysisRun: {text}"
    );
    assert!(
        text.contains("*****"),
        "the error message shows the secret redacted: {text}"
    );
    let events = ns.kubectl(&["get", "events", "-o", "yaml"], None).unwrap();
    assert!(!events.contains(token), "the secret is not in an event");
    assert!(!env.op.log().contains(token), "the secret is not in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_metric_succeeds_when_its_job_completes() {
    let env = setup("job", 0.99).await;
    let ns = &env.ns;
    ns.apply(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata: {name: smoke-job}
spec:
  metrics:
  - name: smoke
    provider:
      job:
        spec:
          backoffLimit: 0
          template:
            spec:
              restartPolicy: Never
              containers:
              - {name: smoke, image: busybox, command: [sh, -c, "exit 0"]}
"#,
    )
    .unwrap();
    let run = wait_run(ns, "the job run completes", 90, |r| {
        r.name_any() == "smoke-job" && Phase::is_done(run_phase(r))
    })
    .await;
    let st = run.status.clone().unwrap();
    let m = &st.metric_results.as_ref().unwrap()[0]
        .measurements
        .as_ref()
        .unwrap()[0];
    let job_name = m.metadata.as_ref().unwrap()["job-name"].clone();
    assert_eq!(job_name, format!("{}.smoke.1", run.uid().unwrap()));
    assert_eq!(st.phase, "Successful", "{st:#?}");
    let jobs = Api::<DynamicObject>::namespaced_with(
        ns.client.clone(),
        &ns.name,
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("batch", "v1", "Job"), "jobs"),
    );
    let job = jobs.get(&job_name).await.unwrap();
    assert_eq!(job.labels()["analysisrun.argoproj.io/uid"], run.uid().unwrap());
}

/// Phases that end a run.
struct Phase;
impl Phase {
    fn is_done(p: &str) -> bool {
        matches!(p, "Successful" | "Failed" | "Error" | "Inconclusive")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_retention_terminate_and_time_to_live_of_an_analysis_run() {
    let env = setup("arspec", 0.80).await;
    let ns = &env.ns;
    let query = SUCCESS_RATE_TEMPLATE_QUERY.replace("{{args.service-name}}", "arspec-canary");
    ns.apply(&format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata: {{name: long}}
spec:
  dryRun: [{{metricName: failing}}]
  measurementRetention: [{{metricName: passing, limit: 2}}]
  ttlStrategy: {{secondsAfterCompletion: 3}}
  metrics:
  - name: passing
    interval: 1s
    successCondition: 'true'
    provider: {{prometheus: {{query: 'vector(1)'}}}}
  - name: failing
    interval: 1s
    count: 2
    successCondition: result[0] >= 0.95
    provider: {{prometheus: {{query: '{query}'}}}}
"#
    ))
    .unwrap();
    // The dry-run metric fails without failing the run, which keeps measuring.
    let run = wait_run(
        ns,
        "the dry-run metric done and 4 measurements of the other",
        60,
        |r| {
            r.status
                .as_ref()
                .and_then(|s| s.metric_results.as_ref())
                .is_some_and(|m| {
                    m.iter().any(|x| x.name == "failing" && x.phase == "Failed")
                        && m.iter().any(|x| x.name == "passing" && x.count.unwrap_or(0) >= 4)
                })
        },
    )
    .await;
    let st = run.status.clone().unwrap();
    assert_eq!(st.phase, "Running", "a dry-run failure does not end the run");
    let failing = st
        .metric_results
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "failing")
        .unwrap();
    assert_eq!(failing.dry_run, Some(true));
    assert!(
        failing
            .message
            .as_deref()
            .unwrap_or("")
            .starts_with("Metric assessed Failed due to failed"),
        "{failing:?}"
    );
    assert_eq!(st.dry_run_summary.as_ref().unwrap().failed, Some(1));
    let passing = st
        .metric_results
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "passing")
        .unwrap();
    assert_eq!(
        passing.measurements.as_ref().unwrap().len(),
        2,
        "measurementRetention keeps 2"
    );
    // terminate: the run ends Successful, then its time to live deletes it.
    ns.kubectl(
        &[
            "patch",
            "analysisrun",
            "long",
            "--type=merge",
            "-p",
            r#"{"spec":{"terminate":true}}"#,
        ],
        None,
    )
    .unwrap();
    let run = wait_run(ns, "terminated", 30, |r| {
        r.name_any() == "long" && run_phase(r) == "Successful"
    })
    .await;
    assert_eq!(run.status.unwrap().message.as_deref(), Some("Run Terminated"));
    let api: Api<AnalysisRun> = ns.api();
    let start = Instant::now();
    while api.get_opt("long").await.unwrap().is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "deleted 3 s after completion"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "not before its time to live"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsupported_provider_or_option_errors_the_run_at_once_without_measuring() {
    let (ns, _op) = namespace_with_operator(SUPERVISOR, "unsupported", &["analysisruns"]).await;
    let amp = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-0123";
    ns.apply(&format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata: {{name: datadog}}
spec:
  metrics:
  - name: success-rate
    interval: 1s
    successCondition: default(result, 0) >= 0.95
    provider:
      datadog:
        apiVersion: v2
        query: 'sum:requests.error.rate{{service:canary}}'
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata: {{name: sigv4}}
spec:
  metrics:
  - name: latency
    interval: 1s
    successCondition: result[0] < 0.5
    provider:
      prometheus:
        address: {amp}
        query: 'vector(0.1)'
        authentication:
          sigv4: {{region: us-east-1}}
"#
    ))
    .unwrap();
    let cases = [
        (
            "datadog",
            "Analysis spec invalid: metric \"success-rate\": provider Datadog is not supported by this \
             controller (supported: prometheus, web, job)"
                .to_string(),
        ),
        (
            "sigv4",
            format!(
                "Analysis spec invalid: metric \"latency\": provider Prometheus: authentication.sigv4 is not \
                 supported by this controller: address \"{amp}\" is Amazon Managed Prometheus, whose requests \
                 must be signed with AWS SigV4"
            ),
        ),
    ];
    for (name, want) in cases {
        // Erroring after measurements would take consecutiveErrorLimit + 1 errors, 10 s apart.
        let run = wait_run(&ns, "the run errors", 20, |r| {
            r.name_any() == name && Phase::is_done(run_phase(r))
        })
        .await;
        let st = run.status.clone().unwrap();
        assert_eq!(st.phase, "Error", "{name}: {st:#?}");
        assert_eq!(st.message.as_deref(), Some(want.as_str()), "{name}");
        let measured = st
            .metric_results
            .iter()
            .flatten()
            .any(|m| m.measurements.as_ref().is_some_and(|ms| !ms.is_empty()));
        assert!(!measured, "{name}: no measurement was taken: {st:#?}");
        assert!(st.started_at.is_some() && st.completed_at.is_some(), "{st:#?}");
    }
    // The run stays as it ended: nothing is measured afterwards either.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for r in runs(&ns).await {
        let st = r.status.unwrap();
        assert_eq!(st.phase, "Error");
        assert!(
            st.metric_results
                .iter()
                .flatten()
                .all(|m| m.measurements.is_none()),
            "{st:#?}"
        );
    }
    let events = ns.kubectl(&["get", "events", "-o", "yaml"], None).unwrap();
    assert!(events.contains("AnalysisRunError"), "{events}");
}
