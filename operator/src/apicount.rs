//! Counts the operator's requests to the API server by method (dry runs apart), for the shutdown log line,
//! `/metrics` and benchmarks.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering::Relaxed},
};

/// Request counters shared by every clone of the client: one per method, then one per method of dry runs.
#[derive(Clone, Debug, Default)]
pub struct RequestCounter(Arc<[AtomicU64; 12]>);

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OTHER"];

/// Whether a request only asks what the server would do (`dryRun=All` in its query).
fn is_dry_run(uri: &http::Uri) -> bool {
    uri.query()
        .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("dryRun=")))
}

impl RequestCounter {
    /// Counts one request.
    pub fn count(&self, method: &http::Method, uri: &http::Uri) {
        let i = METHODS
            .iter()
            .position(|m| *m == method.as_str())
            .unwrap_or(METHODS.len() - 1);
        let offset = if is_dry_run(uri) { METHODS.len() } else { 0 };
        self.0[i + offset].fetch_add(1, Relaxed);
    }

    /// (method, dry run, count) for every counter.
    pub fn detailed(&self) -> Vec<(&'static str, bool, u64)> {
        self.0
            .iter()
            .enumerate()
            .map(|(i, c)| (METHODS[i % METHODS.len()], i >= METHODS.len(), c.load(Relaxed)))
            .collect()
    }

    /// (method, count) pairs and the total.
    pub fn snapshot(&self) -> (Vec<(&'static str, u64)>, u64) {
        let counts: Vec<_> = METHODS
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let both = self.0[i].load(Relaxed) + self.0[i + METHODS.len()].load(Relaxed);
                (*m, both)
            })
            .collect();
        let total = counts.iter().map(|(_, c)| c).sum();
        (counts, total)
    }

    /// A client whose every request is counted here.
    pub fn client(&self, config: kube::Config) -> kube::Result<kube::Client> {
        let counter = self.clone();
        let layer = tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
            counter.count(req.method(), req.uri());
            req
        });
        Ok(kube::client::ClientBuilder::try_from(config)?
            .with_layer(&layer)
            .build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_runs_are_counted_apart_and_in_the_totals() {
        let c = RequestCounter::default();
        let uri = |s: &str| s.parse::<http::Uri>().unwrap();
        c.count(&http::Method::GET, &uri("/api/v1/namespaces/a/configmaps/b"));
        c.count(
            &http::Method::PATCH,
            &uri("/api/v1/x?fieldManager=m&dryRun=All&force=true"),
        );
        c.count(&http::Method::PATCH, &uri("/api/v1/x?fieldManager=m"));
        c.count(&http::Method::from_bytes(b"WATCH").unwrap(), &uri("/api/v1/x"));
        let detailed = c.detailed();
        let get = |m: &str, d: bool| {
            detailed
                .iter()
                .find(|(mm, dd, _)| *mm == m && *dd == d)
                .unwrap()
                .2
        };
        assert_eq!(get("GET", false), 1);
        assert_eq!(get("PATCH", true), 1);
        assert_eq!(get("PATCH", false), 1);
        assert_eq!(get("OTHER", false), 1);
        let (by_method, total) = c.snapshot();
        assert_eq!(total, 4);
        assert!(by_method.contains(&("PATCH", 2)));
    }
}
