//! Round trips of the AnalysisTemplate, ClusterAnalysisTemplate, AnalysisRun and Experiment fixtures, with
//! checks that fields land in the right typed places and that the fixtures cover every modelled field.

mod common;

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResourceExt;
use serde_json::Value;
use sluice_crds::analysis::{
    AnalysisRun, AnalysisTemplate, AnalysisTemplateSpec, ClusterAnalysisTemplate,
    ClusterAnalysisTemplateSpec, Metric,
};
use sluice_crds::experiment::Experiment;

/// Every document of `file`, round-tripped as `T`.
fn roundtrip_all<T: serde::Serialize + serde::de::DeserializeOwned>(file: &str) -> Vec<T> {
    let docs = common::documents(file);
    assert!(!docs.is_empty(), "{file} has no documents");
    docs.iter().map(common::assert_roundtrip::<T>).collect()
}

/// The metric called `name` of a template spec.
fn metric<'a>(spec: &'a AnalysisTemplateSpec, name: &str) -> &'a Metric {
    spec.metrics
        .iter()
        .flatten()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

#[test]
fn analysis_templates_round_trip() {
    let templates: Vec<AnalysisTemplate> = roundtrip_all("analysis-templates.yaml");
    assert_eq!(templates.len(), 6);

    // Prometheus instant query with headers and SigV4.
    let spec = &templates[0].spec;
    let success = metric(spec, "success-rate");
    assert_eq!(
        success.success_condition.as_deref(),
        Some("result[0] >= {{args.threshold}}")
    );
    assert_eq!(success.interval.as_deref(), Some("1m"));
    assert_eq!(success.initial_delay.as_deref(), Some("30s"));
    assert_eq!(success.count, Some(IntOrString::Int(5)));
    assert_eq!(success.consecutive_success_limit, Some(IntOrString::Int(3)));
    let prom = success.provider.prometheus.as_ref().expect("prometheus provider");
    assert!(
        prom.query
            .as_deref()
            .unwrap_or_default()
            .starts_with("sum(irate(istio_requests_total")
    );
    assert_eq!(prom.timeout, Some(20));
    let headers = prom.headers.as_ref().expect("headers");
    assert_eq!(headers[0].key, "Authorization");
    assert_eq!(headers[1].value, "{{args.namespace}}");
    let sigv4 = prom
        .authentication
        .as_ref()
        .and_then(|a| a.sigv4.as_ref())
        .expect("sigv4");
    assert_eq!(
        sigv4.role_arn.as_deref(),
        Some("arn:aws:iam::123456789012:role/prometheus-query")
    );
    let budget = metric(spec, "error-budget");
    assert_eq!(budget.count, Some(IntOrString::String("{{args.count}}".into())));
    assert_eq!(
        budget.failure_limit,
        Some(IntOrString::String("{{args.failure-limit}}".into()))
    );

    let args = spec.args.as_ref().expect("args");
    assert_eq!(args[0].name, "service-name");
    assert!(args[0].value.is_none() && args[0].value_from.is_none());
    let field_ref = args[2]
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .expect("fieldRef");
    assert_eq!(field_ref.field_path, "metadata.labels['app']");
    let secret = args[3]
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("secretKeyRef");
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("prometheus-credentials", "token")
    );
    assert_eq!(args[4].value.as_deref(), Some("0.95"));
    assert_eq!(
        spec.dry_run.as_ref().expect("dryRun")[0].metric_name,
        "error-budget"
    );
    let retention = spec.measurement_retention.as_ref().expect("measurementRetention");
    assert_eq!((retention[0].metric_name.as_str(), retention[0].limit), ("*", 20));

    // Prometheus range query with OAuth2.
    let latency = metric(&templates[1].spec, "p99-latency");
    assert_eq!(latency.failure_limit, Some(IntOrString::Int(-1)));
    let prom = latency.provider.prometheus.as_ref().expect("prometheus provider");
    let range = prom.range_query.as_ref().expect("rangeQuery");
    assert_eq!(range.start.as_deref(), Some("now() - duration(\"10m\")"));
    assert_eq!(range.step.as_deref(), Some("1m"));
    assert_eq!(prom.insecure, Some(true));
    let oauth2 = prom
        .authentication
        .as_ref()
        .and_then(|a| a.oauth2.as_ref())
        .expect("oauth2");
    assert_eq!(
        oauth2.token_url.as_deref(),
        Some("https://sso.example.com/oauth2/token")
    );
    assert_eq!(
        oauth2.scopes.as_deref(),
        Some(&["metrics.read".to_string(), "openid".to_string()][..])
    );

    // Web with a JSON body and basic auth, and web with a string body.
    let status = metric(&templates[2].spec, "status-api");
    let web = status.provider.web.as_ref().expect("web provider");
    assert_eq!(web.method.as_deref(), Some("POST"));
    assert_eq!(web.url, "https://status.example.com/api/v1/verdict");
    let body = web.json_body.as_ref().expect("jsonBody");
    assert_eq!(body["window"], 300);
    assert_eq!(body["checks"][1], "errors");
    assert_eq!(body["owner"], Value::Null);
    assert_eq!(web.timeout_seconds, Some(15));
    assert_eq!(web.json_path.as_deref(), Some("{$.data}"));
    let basic = web
        .authentication
        .as_ref()
        .and_then(|a| a.basic_auth.as_ref())
        .expect("basicAuth");
    assert_eq!(basic.username.as_deref(), Some("rollouts"));
    let version = metric(&templates[2].spec, "version");
    let web = version.provider.web.as_ref().expect("web provider");
    assert_eq!(web.body.as_deref(), Some(r#"{"probe": "canary"}"#));
    assert!(web.json_body.is_none());

    // Job with metadata and a JobSpec.
    let job = metric(&templates[3].spec, "smoke")
        .provider
        .job
        .as_ref()
        .expect("job provider");
    let job_meta = job.metadata.as_ref().expect("job metadata");
    assert_eq!(job_meta.labels.as_ref().expect("labels")["app"], "smoke-test");
    assert_eq!(job.spec.backoff_limit, Some(1));
    assert_eq!(job.spec.ttl_seconds_after_finished, Some(300));
    let pod = job.spec.template.spec.as_ref().expect("pod spec");
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("registry.example.com/shop/smoke-test:2.4.1")
    );

    // Composition only: no metrics of its own.
    let composed = &templates[4].spec;
    assert!(composed.metrics.is_none());
    let refs = composed.templates.as_ref().expect("templates");
    assert_eq!(refs[2].template_name.as_deref(), Some("platform-error-rate"));
    assert_eq!(refs[2].cluster_scope, Some(true));

    // Providers Sluice keeps as written.
    let vendors = &templates[5].spec;
    let kayenta = metric(vendors, "kayenta")
        .provider
        .kayenta
        .as_ref()
        .expect("kayenta");
    assert_eq!(kayenta["threshold"]["pass"], 90);
    let datadog = metric(vendors, "datadog")
        .provider
        .datadog
        .as_ref()
        .expect("datadog");
    assert_eq!(datadog["formula"], "errors / total");
    assert!(metric(vendors, "newrelic").provider.new_relic.is_some());
    assert!(metric(vendors, "wavefront").provider.wavefront.is_some());
    assert!(metric(vendors, "cloudwatch").provider.cloud_watch.is_some());
    assert!(metric(vendors, "graphite").provider.graphite.is_some());
    assert!(metric(vendors, "influxdb").provider.influxdb.is_some());
    assert!(metric(vendors, "skywalking").provider.skywalking.is_some());
    let plugin = metric(vendors, "plugin")
        .provider
        .plugin
        .as_ref()
        .expect("plugin");
    assert_eq!(plugin["argoproj-labs/sample-prometheus"]["retries"], 3);
}

#[test]
fn cluster_analysis_templates_round_trip() {
    let templates: Vec<ClusterAnalysisTemplate> = roundtrip_all("analysis-cluster-templates.yaml");
    assert_eq!(templates.len(), 2);
    let spec = &templates[0].spec;
    let error_rate = metric(spec, "error-rate");
    assert_eq!(
        error_rate.success_condition.as_deref(),
        Some("len(result) == 0 || result[0] <= 0.01")
    );
    assert_eq!(error_rate.inconclusive_limit, Some(IntOrString::Int(2)));
    assert_eq!(error_rate.consecutive_error_limit, Some(IntOrString::Int(5)));
    let prom = error_rate
        .provider
        .prometheus
        .as_ref()
        .expect("prometheus provider");
    assert_eq!(
        prom.address.as_deref(),
        Some("https://prometheus.platform.example.com")
    );
    let basic = prom
        .authentication
        .as_ref()
        .and_then(|a| a.basic_auth.as_ref())
        .expect("basicAuth");
    assert_eq!(basic.password.as_deref(), Some("{{args.prometheus-password}}"));
    assert_eq!(spec.dry_run.as_ref().expect("dryRun")[0].metric_name, "*");
    assert_eq!(
        templates[1].spec.templates.as_ref().expect("templates")[0].cluster_scope,
        Some(true)
    );
}

#[test]
fn cluster_and_namespaced_templates_share_one_shape() {
    // The same spec JSON goes through both Rust types unchanged and to the same value.
    for doc in common::documents("analysis-templates.yaml") {
        let namespaced: AnalysisTemplateSpec = serde_json::from_value(doc["spec"].clone()).expect("spec");
        let cluster: ClusterAnalysisTemplateSpec = serde_json::from_value(doc["spec"].clone()).expect("spec");
        assert_eq!(serde_json::to_value(&cluster).expect("serializes"), doc["spec"]);
        assert_eq!(*cluster, namespaced);
    }
    // And the CRDs carry the same spec schema.
    let schema =
        |crd: Value| crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone();
    let at = schema(serde_json::to_value(AnalysisTemplate::crd()).expect("crd"));
    let cat = schema(serde_json::to_value(ClusterAnalysisTemplate::crd()).expect("crd"));
    assert!(
        at["properties"]["metrics"].is_object(),
        "the spec schema has no metrics"
    );
    assert!(
        at["properties"] == cat["properties"],
        "the template kinds' spec schemas differ"
    );
    assert!(
        at["required"] == cat["required"],
        "the template kinds' required spec fields differ"
    );
}

#[test]
fn analysis_runs_round_trip() {
    let runs: Vec<AnalysisRun> = roundtrip_all("analysis-runs.yaml");
    assert_eq!(runs.len(), 3);

    let failed = &runs[0];
    assert_eq!(failed.spec.terminate, Some(false));
    let ttl = failed.spec.ttl_strategy.as_ref().expect("ttlStrategy");
    assert_eq!(
        (
            ttl.seconds_after_completion,
            ttl.seconds_after_failure,
            ttl.seconds_after_success
        ),
        (Some(86400), Some(604800), Some(3600))
    );
    let secret = failed.spec.args.as_ref().expect("args")[1]
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("secretKeyRef");
    assert_eq!(secret.key, "token");
    let latency = failed
        .spec
        .metrics
        .iter()
        .find(|m| m.name == "latency")
        .expect("latency metric");
    let range = latency
        .provider
        .prometheus
        .as_ref()
        .and_then(|p| p.range_query.as_ref())
        .expect("rangeQuery");
    assert_eq!(range.end.as_deref(), Some("now()"));

    let status = failed.status.as_ref().expect("status");
    assert_eq!(status.phase, "Failed");
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("failureLimit (1)")
    );
    assert!(status.started_at.is_some() && status.completed_at.is_some());
    let summary = status.run_summary.as_ref().expect("runSummary");
    assert_eq!((summary.count, summary.failed), (Some(1), Some(1)));
    assert_eq!(
        status.dry_run_summary.as_ref().expect("dryRunSummary").successful,
        Some(1)
    );
    let results = status.metric_results.as_ref().expect("metricResults");
    assert_eq!(results[0].name, "success-rate");
    assert_eq!(results[0].phase, "Failed");
    assert_eq!(
        (results[0].count, results[0].successful, results[0].failed),
        (Some(3), Some(1), Some(2))
    );
    let measurements = results[0].measurements.as_ref().expect("measurements");
    assert_eq!(measurements.len(), 3);
    assert_eq!(measurements[1].phase, "Failed");
    assert_eq!(measurements[1].value.as_deref(), Some("[0.81]"));
    assert!(
        measurements[2]
            .metadata
            .as_ref()
            .expect("metadata")
            .contains_key("warnings")
    );
    assert!(
        results[0]
            .metadata
            .as_ref()
            .expect("metadata")
            .contains_key("ResolvedPrometheusQuery")
    );
    assert_eq!(results[1].dry_run, Some(true));
    assert_eq!(results[1].consecutive_success, Some(3));

    let running = runs[1].status.as_ref().expect("status");
    assert_eq!(running.phase, "Running");
    let smoke = &running.metric_results.as_ref().expect("metricResults")[0];
    let pending = &smoke.measurements.as_ref().expect("measurements")[0];
    assert!(pending.finished_at.is_none() && pending.resume_at.is_some());
    let job = runs[1].spec.metrics[0]
        .provider
        .job
        .as_ref()
        .expect("job provider");
    assert_eq!(job.spec.backoff_limit, Some(0));

    let errored = &runs[2];
    assert_eq!(errored.spec.terminate, Some(true));
    let status = errored.status.as_ref().expect("status");
    assert_eq!(status.phase, "Error");
    let summary = status.run_summary.as_ref().expect("runSummary");
    assert_eq!((summary.inconclusive, summary.error), (Some(1), Some(1)));
    let availability = &status.metric_results.as_ref().expect("metricResults")[0];
    assert_eq!(
        (availability.error, availability.consecutive_error),
        (Some(5), Some(5))
    );
}

#[test]
fn experiments_round_trip() {
    let experiments: Vec<Experiment> = roundtrip_all("experiment-baseline-canary.yaml");
    assert_eq!(experiments.len(), 2);

    let spec = &experiments[0].spec;
    assert_eq!(spec.duration.as_deref(), Some("15m"));
    assert_eq!(spec.progress_deadline_seconds, Some(300));
    assert_eq!(spec.scale_down_delay_seconds, Some(45));
    let baseline = &spec.templates[0];
    assert_eq!(
        (
            baseline.name.as_str(),
            baseline.replicas,
            baseline.min_ready_seconds
        ),
        ("baseline", Some(1), Some(10))
    );
    assert_eq!(
        baseline.selector.match_labels.as_ref().expect("matchLabels")["variant"],
        "baseline"
    );
    let container = &baseline.template.spec.as_ref().expect("pod spec").containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("registry.example.com/shop/checkout:1.41.0")
    );
    assert_eq!(
        baseline.service.as_ref().and_then(|s| s.name.as_deref()),
        Some("checkout-baseline")
    );
    assert!(
        spec.templates[1]
            .service
            .as_ref()
            .is_some_and(|s| s.name.is_none())
    );
    let analyses = spec.analyses.as_ref().expect("analyses");
    assert_eq!(analyses[0].template_name, "success-rate");
    assert_eq!(analyses[0].required_for_completion, Some(true));
    let secret = analyses[0].args.as_ref().expect("args")[2]
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("secretKeyRef");
    assert_eq!(secret.name, "prometheus-credentials");
    assert_eq!(analyses[1].cluster_scope, Some(true));
    let metadata = spec.analysis_run_metadata.as_ref().expect("analysisRunMetadata");
    assert_eq!(
        metadata.annotations.as_ref().expect("annotations")["shop.example.com/ticket"],
        "REL-1042"
    );

    let status = experiments[0].status.as_ref().expect("status");
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(status.available_at.is_some());
    let canary = &status.template_statuses.as_ref().expect("templateStatuses")[1];
    assert_eq!(
        (canary.replicas, canary.ready_replicas, canary.collision_count),
        (2, 1, Some(1))
    );
    assert_eq!(canary.status.as_deref(), Some("Progressing"));
    assert_eq!(canary.pod_template_hash.as_deref(), Some("7b9c4d2e1"));
    let runs = status.analysis_runs.as_ref().expect("analysisRuns");
    assert_eq!(
        (runs[1].analysis_run.as_str(), runs[1].phase.as_str()),
        ("checkout-baseline-vs-canary-platform", "Failed")
    );
    let condition = &status.conditions.as_ref().expect("conditions")[0];
    assert_eq!(
        (condition.r#type.as_str(), condition.reason.as_str()),
        ("Progressing", "NewReplicaSetAvailable")
    );

    assert!(experiments[1].status.is_none());
    assert!(experiments[1].spec.analyses.is_none());
}

/// Every property path of a CRD's spec and status schema, e.g. `spec.metrics[].provider.web.url`, except the
/// `stop` paths and everything under them (embedded Kubernetes types, or shapes another fixture covers).
fn schema_paths(crd: &Value, stop: &[&str]) -> BTreeSet<String> {
    fn walk(path: &str, schema: &Value, stop: &[&str], out: &mut BTreeSet<String>) {
        if let Some(items) = schema.get("items") {
            walk(&format!("{path}[]"), items, stop, out);
        }
        for (name, sub) in schema
            .get("properties")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let p = format!("{path}.{name}");
            if stop.iter().any(|s| p.ends_with(s)) {
                continue;
            }
            out.insert(p.clone());
            walk(&p, sub, stop, out);
        }
    }
    let root = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    let mut out = BTreeSet::new();
    for top in ["spec", "status"] {
        if let Some(schema) = root.get(top) {
            out.insert(top.to_string());
            walk(top, schema, stop, &mut out);
        }
    }
    out
}

/// Asserts that the fixtures together set every field the CRD's schema models.
fn assert_covers(crd: Value, files: &[&str], stop: &[&str]) {
    let used: BTreeSet<String> = files
        .iter()
        .flat_map(|f| common::documents(f))
        .flat_map(|doc| common::key_paths(&doc))
        .collect();
    let missing: Vec<_> = schema_paths(&crd, stop)
        .into_iter()
        .filter(|p| !used.contains(p))
        .collect();
    assert!(
        missing.is_empty(),
        "{} fixtures never set: {missing:#?}",
        crd["spec"]["names"]["kind"]
    );
}

#[test]
fn fixtures_cover_every_field() {
    let json = |crd| serde_json::to_value(crd).expect("crd");
    // SigV4 signs Amazon Managed Prometheus requests only; the web provider shares the type, covered there.
    assert_covers(
        json(AnalysisTemplate::crd()),
        &["analysis-templates.yaml"],
        &[".provider.job.spec", ".provider.web.authentication.sigv4"],
    );
    // The two template kinds share one schema (checked above); the cluster fixtures cover its top levels.
    assert_covers(
        json(ClusterAnalysisTemplate::crd()),
        &["analysis-cluster-templates.yaml"],
        &["spec.metrics[].provider"],
    );
    // Providers are shared with the templates, and dryRunSummary has the shape of runSummary: both covered there.
    assert_covers(
        json(AnalysisRun::crd()),
        &["analysis-runs.yaml"],
        &[
            "spec.metrics[].provider",
            ".dryRunSummary.failed",
            ".dryRunSummary.inconclusive",
            ".dryRunSummary.error",
        ],
    );
    assert_covers(
        json(Experiment::crd()),
        &["experiment-baseline-canary.yaml"],
        &["spec.templates[].selector", "spec.templates[].template"],
    );
}

#[test]
fn crds_have_upstream_names_scopes_and_columns() {
    let mut crds = sluice_crds::analysis::crds();
    crds.extend(sluice_crds::experiment::crds());
    let summary: Vec<String> = crds
        .iter()
        .map(|(file, crd)| {
            let version = &crd.spec.versions[0];
            let columns: Vec<_> = version
                .additional_printer_columns
                .iter()
                .flatten()
                .map(|c| format!(" {}={}:{}", c.name, c.json_path, c.type_))
                .collect();
            let status = version.subresources.as_ref().is_some_and(|s| s.status.is_some());
            format!(
                "{file} {} {}/{} {} {} status={status}{}",
                crd.metadata.name.as_deref().unwrap_or_default(),
                crd.spec.group,
                version.name,
                crd.spec.scope,
                crd.spec.names.short_names.clone().unwrap_or_default().join(","),
                columns.concat(),
            )
        })
        .collect();
    let columns = " Status=.status.phase:string Age=.metadata.creationTimestamp:date";
    assert_eq!(summary, [
        "analysistemplates.yaml analysistemplates.argoproj.io argoproj.io/v1alpha1 Namespaced at status=false"
            .to_string(),
        "clusteranalysistemplates.yaml clusteranalysistemplates.argoproj.io argoproj.io/v1alpha1 Cluster cat \
         status=false"
            .to_string(),
        format!("analysisruns.yaml analysisruns.argoproj.io argoproj.io/v1alpha1 Namespaced ar status=true{columns}"),
        format!("experiments.yaml experiments.argoproj.io argoproj.io/v1alpha1 Namespaced exp status=true{columns}"),
    ]);
}
