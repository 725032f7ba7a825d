//! Controller metrics on `/metrics` (upstream's names) and `/healthz` `/readyz`.
//!
//! Info gauges (`rollout_info`, `analysis_run_info`, `analysis_run_metric_phase`, ...) are computed from the
//! reflector caches at scrape time, so a deleted object's series disappear with it and nothing is kept per object
//! in between. Histograms and counters carry no per-object labels (upstream labels `rollout_reconcile` with the
//! object's name, a series per object and bucket); a metric phase is exported only for the phase it is in.

use std::{
    net::SocketAddr,
    sync::{Arc, OnceLock},
};

use anyhow::{Context, Result};
use kube::{ResourceExt, runtime::reflector::Store};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{
        MetricType,
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::ConstGauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use sluice_analysis::rollup::provider_type;
use sluice_crds::{analysis::AnalysisRun, rollout::Rollout};
use tracing::{info, warn};

/// The controller's own metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Seconds per Rollout reconcile.
    pub rollout_reconcile: Histogram,
    /// Rollout reconciles that failed.
    pub rollout_reconcile_error: Counter,
    /// Seconds per AnalysisRun reconcile (measurements included).
    pub analysis_run_reconcile: Histogram,
    /// AnalysisRun reconciles that failed.
    pub analysis_run_reconcile_error: Counter,
    /// Seconds between when a measurement was due and when it started.
    pub measurement_delay: Histogram,
    /// Seconds per Application reconcile (Argo CD's `argocd_app_reconcile`, without per-app labels).
    pub app_reconcile: Histogram,
    /// Failed reconciles by controller and reason (bounded: see `backoff::kube_reason`).
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    /// Notifications delivered, by trigger and service (upstream's name; no per-Rollout labels).
    pub notification_send_success: Family<NotificationLabels, Counter>,
    /// Notifications given up on, by trigger and service.
    pub notification_send_error: Family<NotificationLabels, Counter>,
    /// Notifications dropped because the delivery queue was full.
    pub notification_dropped: Counter,
    /// Seconds per notification request.
    pub notification_send: Histogram,
    /// Seconds from a canary step completing to the next weight applied.
    pub step_transition: Histogram,
    caches: Arc<Caches>,
}

/// Labels of the notification counters: both come from the configuration, so the series stay few.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    /// The trigger (`on-rollout-completed`).
    pub trigger: String,
    /// The service's name.
    pub service: String,
}

/// Labels of `sluice_reconcile_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `rollout`, `analysisrun` or `application`.
    pub controller: &'static str,
    /// The error's category.
    pub reason: &'static str,
}

impl Metrics {
    /// Counts a failed reconcile.
    pub fn reconcile_failed(&self, controller: &'static str, reason: &'static str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels { controller, reason })
            .inc();
    }
}

/// The caches the info gauges are computed from; each is set when its controller starts.
#[derive(Debug, Default)]
pub struct Caches {
    /// Rollouts.
    pub rollouts: OnceLock<Store<crate::packed::Packed<Rollout>>>,
    /// AnalysisRuns.
    pub analysis_runs: OnceLock<Store<AnalysisRun>>,
    /// Experiments.
    pub experiments: OnceLock<Store<sluice_crds::experiment::Experiment>>,
    /// The operator's API requests.
    pub requests: OnceLock<crate::apicount::RequestCounter>,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::default();
        let reconcile_buckets = [0.01, 0.15, 0.25, 0.5, 1.0];
        let rollout_reconcile = Histogram::new(reconcile_buckets);
        let analysis_run_reconcile = Histogram::new(reconcile_buckets);
        let measurement_delay = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let rollout_reconcile_error = Counter::default();
        let analysis_run_reconcile_error = Counter::default();
        let app_reconcile = Histogram::new([0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]);
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let notification_send_success = Family::<NotificationLabels, Counter>::default();
        let notification_send_error = Family::<NotificationLabels, Counter>::default();
        let notification_dropped = Counter::default();
        let notification_send = Histogram::new(reconcile_buckets);
        let step_transition = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0,
        ]);
        registry.register(
            "sluice_rollout_step_transition_seconds",
            "Seconds from a canary step completing to the next weight applied.",
            step_transition.clone(),
        );
        registry.register(
            "notification_send_success",
            "Notification send success.",
            notification_send_success.clone(),
        );
        registry.register(
            "notification_send_error",
            "Error sending the notification",
            notification_send_error.clone(),
        );
        registry.register(
            "sluice_notification_dropped",
            "Notifications dropped because the delivery queue was full.",
            notification_dropped.clone(),
        );
        registry.register(
            "notification_send",
            "Notification send performance.",
            notification_send.clone(),
        );
        registry.register(
            "sluice_reconcile_errors",
            "Failed reconciles by controller and reason.",
            reconcile_errors.clone(),
        );
        registry.register(
            "argocd_app_reconcile",
            "Application reconciliation performance in seconds.",
            app_reconcile.clone(),
        );
        registry.register(
            "rollout_reconcile",
            "Rollout reconciliation performance.",
            rollout_reconcile.clone(),
        );
        registry.register(
            "rollout_reconcile_error",
            "Error occurring during the rollout",
            rollout_reconcile_error.clone(),
        );
        registry.register(
            "analysis_run_reconcile",
            "Analysis Run reconciliation performance.",
            analysis_run_reconcile.clone(),
        );
        registry.register(
            "analysis_run_reconcile_error",
            "Error occurring during the analysis run",
            analysis_run_reconcile_error.clone(),
        );
        registry.register(
            "analysis_run_measurement_delay_seconds",
            "Seconds between when a measurement was due and when it started.",
            measurement_delay.clone(),
        );
        let caches = Arc::new(Caches::default());
        registry.register_collector(Box::new(caches.clone()));
        Arc::new(Metrics {
            registry,
            rollout_reconcile,
            rollout_reconcile_error,
            analysis_run_reconcile,
            analysis_run_reconcile_error,
            measurement_delay,
            app_reconcile,
            reconcile_errors,
            notification_send_success,
            notification_send_error,
            notification_dropped,
            notification_send,
            step_transition,
            caches,
        })
    }

    /// Where controllers hand in their caches.
    pub fn caches(&self) -> &Caches {
        &self.caches
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry) {
            warn!(error = %e, "encoding metrics");
        }
        out
    }
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Vec<(&'static str, String)>, i64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        let labels: Vec<(&str, String)> = labels;
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn encode_requests(
    encoder: &mut DescriptorEncoder,
    requests: &crate::apicount::RequestCounter,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "sluice_k8s_request",
        "Requests the controller sent to the API server, by verb and dry run.",
        None,
        MetricType::Counter,
    )?;
    for (verb, dry_run, count) in requests.detailed() {
        let labels = [("verb", verb.to_string()), ("dry_run", dry_run.to_string())];
        ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
    }
    let forbidden = encoder.encode_descriptor(
        "sluice_k8s_forbidden",
        "Requests the API server refused as forbidden (the controller's RBAC lacks a permission).",
        None,
        MetricType::Counter,
    )?;
    ConstCounter::new(requests.forbidden()).encode(forbidden)?;
    let mut family = encoder.encode_descriptor(
        "sluice_k8s_request_by_resource",
        "Requests the controller sent to the API server, by verb and resource.",
        None,
        MetricType::Counter,
    )?;
    for ((verb, resource), count) in requests.by_resource() {
        let labels = [("verb", verb.to_string()), ("resource", resource)];
        ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Caches {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(requests) = self.requests.get() {
            encode_requests(&mut encoder, requests)?;
        }
        if let Some(store) = self.rollouts.get() {
            // Decoded one at a time: a scrape holds a line per Rollout, never every Rollout at once.
            let lines: Vec<RolloutLine> = store
                .state()
                .iter()
                .filter_map(|ro| ro.unpack().ok())
                .map(|ro| RolloutLine::of(&ro))
                .collect();
            encode_rollouts(&mut encoder, &lines)?;
        }
        if let Some(store) = self.analysis_runs.get() {
            encode_analysis_runs(&mut encoder, &store.state())?;
        }
        if let Some(store) = self.experiments.get() {
            encode_experiments(&mut encoder, &store.state())?;
        }
        Ok(())
    }
}

/// What the Rollout metrics tell of one Rollout.
struct RolloutLine {
    namespace: String,
    name: String,
    strategy: &'static str,
    router: &'static str,
    phase: String,
    available: i32,
    updated: i32,
    desired: i32,
}

impl RolloutLine {
    fn of(ro: &Rollout) -> Self {
        let canary = ro.spec.strategy.canary.as_ref();
        let router = canary
            .and_then(|c| c.traffic_routing.as_ref())
            .map(|t| if t.istio.is_some() { "Istio" } else { "Plugin" })
            .unwrap_or("");
        let status = ro.status.as_ref();
        RolloutLine {
            namespace: ro.namespace().unwrap_or_default(),
            name: ro.name_any(),
            strategy: if canary.is_some() { "canary" } else { "blueGreen" },
            router,
            phase: status.and_then(|s| s.phase.clone()).unwrap_or_default(),
            available: status.and_then(|s| s.available_replicas).unwrap_or(0),
            updated: status.and_then(|s| s.updated_replicas).unwrap_or(0),
            desired: ro.spec.replicas.unwrap_or(1),
        }
    }
}

/// `rollout_info` and `rollout_info_replicas_*` of the cached Rollouts.
fn encode_rollouts(encoder: &mut DescriptorEncoder, rollouts: &[RolloutLine]) -> Result<(), std::fmt::Error> {
    let info = rollouts.iter().map(|ro| {
        (
            vec![
                ("namespace", ro.namespace.clone()),
                ("name", ro.name.clone()),
                ("strategy", ro.strategy.to_string()),
                ("traffic_router", ro.router.to_string()),
                ("phase", ro.phase.clone()),
            ],
            1,
        )
    });
    gauge(encoder, "rollout_info", "Information about rollout.", info)?;
    for (name, help, pick) in [
        (
            "rollout_info_replicas_available",
            "The number of available replicas per rollout.",
            (|r: &RolloutLine| r.available) as fn(&RolloutLine) -> i32,
        ),
        (
            "rollout_info_replicas_updated",
            "The number of updated replicas per rollout.",
            |r| r.updated,
        ),
        (
            "rollout_info_replicas_desired",
            "The number of desired replicas per rollout.",
            |r| r.desired,
        ),
    ] {
        let series = rollouts.iter().map(|ro| {
            (
                vec![("namespace", ro.namespace.clone()), ("name", ro.name.clone())],
                i64::from(pick(ro)),
            )
        });
        gauge(encoder, name, help, series)?;
    }
    Ok(())
}

/// `experiment_info` of the cached Experiments: one series per Experiment in its phase, as upstream.
fn encode_experiments(
    encoder: &mut DescriptorEncoder,
    experiments: &[Arc<sluice_crds::experiment::Experiment>],
) -> Result<(), std::fmt::Error> {
    let info = experiments.iter().map(|ex| {
        let phase = ex
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        (
            vec![
                ("namespace", ex.namespace().unwrap_or_default()),
                ("name", ex.name_any()),
                ("phase", phase),
            ],
            1,
        )
    });
    gauge(encoder, "experiment_info", "Information about Experiment.", info)
}

/// `analysis_run_info`, `analysis_run_metric_type` and `analysis_run_metric_phase` of the cached runs.
fn encode_analysis_runs(
    encoder: &mut DescriptorEncoder,
    runs: &[Arc<AnalysisRun>],
) -> Result<(), std::fmt::Error> {
    let info = runs.iter().map(|ar| {
        let phase = ar.status.as_ref().map(|s| s.phase.clone()).unwrap_or_default();
        (
            vec![
                ("namespace", ar.namespace().unwrap_or_default()),
                ("name", ar.name_any()),
                ("phase", phase),
            ],
            1,
        )
    });
    gauge(
        encoder,
        "analysis_run_info",
        "Information about analysis run.",
        info,
    )?;
    let types = runs.iter().flat_map(|ar| {
        ar.spec.metrics.iter().map(|m| {
            (
                vec![
                    ("namespace", ar.namespace().unwrap_or_default()),
                    ("name", ar.name_any()),
                    ("metric", m.name.clone()),
                    ("type", provider_type(m).to_string()),
                ],
                1,
            )
        })
    });
    gauge(
        encoder,
        "analysis_run_metric_type",
        "Information on the type of a specific metric in the Analysis Runs.",
        types,
    )?;
    let phases = runs.iter().flat_map(|ar| {
        let results = ar
            .status
            .as_ref()
            .and_then(|s| s.metric_results.clone())
            .unwrap_or_default();
        ar.spec.metrics.iter().map(move |m| {
            let r = results.iter().find(|r| r.name == m.name);
            let phase = r.map(|r| r.phase.clone()).unwrap_or_else(|| "Pending".into());
            let dry_run = r.and_then(|r| r.dry_run).unwrap_or(false);
            (
                vec![
                    ("namespace", ar.namespace().unwrap_or_default()),
                    ("name", ar.name_any()),
                    ("metric", m.name.clone()),
                    ("type", provider_type(m).to_string()),
                    ("dry_run", dry_run.to_string()),
                    ("phase", phase),
                ],
                1,
            )
        })
    });
    gauge(
        encoder,
        "analysis_run_metric_phase",
        "Information on the duration of a specific metric in the Analysis Run",
        phases,
    )?;
    Ok(())
}

/// Serves `/metrics` on `metrics_addr` and `/healthz`, `/readyz` (see [`crate::ready`]) on `healthz_addr`
/// until the process ends.
pub async fn serve(
    metrics: Arc<Metrics>,
    readiness: Arc<crate::ready::Readiness>,
    metrics_addr: SocketAddr,
    healthz_addr: SocketAddr,
) -> Result<()> {
    use axum::{Router, routing::get};
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    );
    let health = Router::new().route("/healthz", get(|| async { "ok" })).route(
        "/readyz",
        get(move || {
            let (code, body) = readiness.report();
            let code = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::SERVICE_UNAVAILABLE);
            async move { (code, body) }
        }),
    );
    let metrics_listener = tokio::net::TcpListener::bind(metrics_addr)
        .await
        .with_context(|| format!("binding the metrics address {metrics_addr}"))?;
    let health_listener = tokio::net::TcpListener::bind(healthz_addr)
        .await
        .with_context(|| format!("binding the health address {healthz_addr}"))?;
    info!(
        metrics = %metrics_listener.local_addr()?,
        healthz = %health_listener.local_addr()?,
        "serving /metrics and /healthz"
    );
    let a = tokio::spawn(async move { axum::serve(metrics_listener, app).await });
    let b = tokio::spawn(async move { axum::serve(health_listener, health).await });
    let (a, b) = tokio::join!(a, b);
    a??;
    b??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experiments_are_exported_with_their_phase() {
        let metrics = Metrics::new();
        let (store, mut writer) = kube::runtime::reflector::store();
        let ex: sluice_crds::experiment::Experiment = serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Experiment",
            "metadata": {"name": "exp", "namespace": "ns"},
            "spec": {"templates": []},
            "status": {"phase": "Running"}
        }))
        .unwrap();
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(ex));
        let _ = metrics.caches().experiments.set(store);
        let text = metrics.render();
        assert!(
            text.contains(r#"experiment_info{namespace="ns",name="exp",phase="Running"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn rollouts_are_exported_from_the_packed_cache_with_strategy_router_phase_and_replicas() {
        let metrics = Metrics::new();
        let (store, mut writer) = kube::runtime::reflector::store();
        for ro in [
            serde_json::json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                "metadata": {"name": "web", "namespace": "ns"},
                "spec": {"replicas": 4, "strategy": {"canary": {"trafficRouting": {"istio": {
                    "virtualService": {"name": "vs"}}}}}},
                "status": {"phase": "Progressing", "availableReplicas": 3, "updatedReplicas": 1}
            }),
            serde_json::json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                "metadata": {"name": "api", "namespace": "ns"},
                "spec": {"strategy": {"blueGreen": {"activeService": "api"}}}
            }),
        ] {
            let ro: Rollout = serde_json::from_value(ro).unwrap();
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(
                crate::packed::Packed::pack(ro),
            ));
        }
        let _ = metrics.caches().rollouts.set(store);
        let text = metrics.render();
        for line in [
            r#"rollout_info{namespace="ns",name="web",strategy="canary",traffic_router="Istio",phase="Progressing"} 1"#,
            r#"rollout_info{namespace="ns",name="api",strategy="blueGreen",traffic_router="",phase=""} 1"#,
            r#"rollout_info_replicas_available{namespace="ns",name="web"} 3"#,
            r#"rollout_info_replicas_updated{namespace="ns",name="web"} 1"#,
            r#"rollout_info_replicas_desired{namespace="ns",name="web"} 4"#,
            r#"rollout_info_replicas_desired{namespace="ns",name="api"} 1"#,
            r#"rollout_info_replicas_available{namespace="ns",name="api"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn requests_and_app_reconciles_are_exported_without_per_object_labels() {
        let metrics = Metrics::new();
        let requests = crate::apicount::RequestCounter::default();
        requests.count(&http::Method::PATCH, &"/api/v1/x?dryRun=All".parse().unwrap());
        let _ = metrics.caches().requests.set(requests);
        metrics.app_reconcile.observe(0.3);
        let text = metrics.render();
        assert!(
            text.contains(r#"sluice_k8s_request_total{verb="PATCH",dry_run="true"} 1"#),
            "{text}"
        );
        assert!(text.contains("sluice_k8s_forbidden_total 0"), "{text}");
        assert!(
            text.contains(r#"sluice_k8s_request_total{verb="GET",dry_run="false"} 0"#),
            "{text}"
        );
        assert!(text.contains("argocd_app_reconcile_count 1"), "{text}");
        metrics.reconcile_failed("rollout", "Conflict");
        let text = metrics.render();
        assert!(
            text.contains(r#"sluice_reconcile_errors_total{controller="rollout",reason="Conflict"} 1"#),
            "{text}"
        );
    }
}
