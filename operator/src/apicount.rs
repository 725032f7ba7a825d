//! Counts the operator's requests to the API server by method, for the shutdown log line and benchmarks.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering::Relaxed},
};

/// Request counters shared by every clone of the client.
#[derive(Clone, Default)]
pub struct RequestCounter(Arc<[AtomicU64; 6]>);

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OTHER"];

impl RequestCounter {
    /// Counts one request.
    pub fn count(&self, method: &http::Method) {
        let i = METHODS
            .iter()
            .position(|m| *m == method.as_str())
            .unwrap_or(METHODS.len() - 1);
        self.0[i].fetch_add(1, Relaxed);
    }

    /// (method, count) pairs and the total.
    pub fn snapshot(&self) -> (Vec<(&'static str, u64)>, u64) {
        let counts: Vec<_> = METHODS
            .iter()
            .zip(self.0.iter())
            .map(|(m, c)| (*m, c.load(Relaxed)))
            .collect();
        let total = counts.iter().map(|(_, c)| c).sum();
        (counts, total)
    }

    /// A client whose every request is counted here.
    pub fn client(&self, config: kube::Config) -> kube::Result<kube::Client> {
        let counter = self.clone();
        let layer = tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
            counter.count(req.method());
            req
        });
        Ok(kube::client::ClientBuilder::try_from(config)?
            .with_layer(&layer)
            .build())
    }
}
