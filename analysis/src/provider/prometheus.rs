//! The Prometheus provider: an instant or range query through the HTTP API.

use sluice_crds::analysis::PrometheusMetric;

use super::Reading;

/// Environment variable naming the Prometheus address when a metric gives none.
pub const ADDRESS_ENV: &str = "ARGO_ROLLOUTS_PROMETHEUS_ADDRESS";

/// Runs the metric's query; Err is the measurement's error message.
pub async fn measure(metric: &PrometheusMetric) -> Result<Reading, String> {
    let _ = metric;
    Err("prometheus provider is not available".to_string())
}
