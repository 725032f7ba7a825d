//! The web provider: an HTTP request whose JSON answer (or a part of it picked by `jsonPath`) is the result.

use sluice_crds::analysis::WebMetric;

use super::Reading;

/// Sends the request; Err is the measurement's error message.
pub async fn measure(metric: &WebMetric) -> Result<Reading, String> {
    let _ = metric;
    Err("web provider is not available".to_string())
}
