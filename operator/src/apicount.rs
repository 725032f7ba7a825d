//! Counts the operator's requests to the API server by method (dry runs apart), for the shutdown log line,
//! `/metrics` and benchmarks, and the requests the server refused as forbidden (an RBAC gap, logged with the
//! method and path).

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    task::{Context, Poll},
};

use futures::future::BoxFuture;

/// Request counters shared by every clone of the client: one per method, then one per method of dry runs;
/// and the forbidden answers.
#[derive(Clone, Debug, Default)]
pub struct RequestCounter(Arc<[AtomicU64; 12]>, Arc<AtomicU64>);

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

    /// Requests the API server answered with 403 Forbidden.
    pub fn forbidden(&self) -> u64 {
        self.1.load(Relaxed)
    }

    /// Counts one 403 answer and tells which request it was, so that the missing permission is plain.
    fn refused(&self, method: &http::Method, uri: &http::Uri) {
        self.1.fetch_add(1, Relaxed);
        tracing::warn!(
            method = %method,
            path = uri.path(),
            "the API server refused a request as forbidden: the controller's RBAC lacks this permission"
        );
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

    /// A client whose every request (and every forbidden answer) is counted here.
    pub fn client(&self, config: kube::Config) -> kube::Result<kube::Client> {
        let layer = CountLayer(self.clone());
        Ok(kube::client::ClientBuilder::try_from(config)?
            .with_layer(&layer)
            .build())
    }
}

/// Wraps the client's HTTP service in [`Counted`].
struct CountLayer(RequestCounter);

impl<S> tower::Layer<S> for CountLayer {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Counted {
            inner,
            counter: self.0.clone(),
        }
    }
}

/// Counts each request on its way out and looks at the status of its answer.
#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    counter: RequestCounter,
}

impl<S, B> tower::Service<http::Request<kube::client::Body>> for Counted<S>
where
    S: tower::Service<http::Request<kube::client::Body>, Response = http::Response<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
        self.counter.count(req.method(), req.uri());
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let counter = self.counter.clone();
        let answer = self.inner.call(req);
        Box::pin(async move {
            let response = answer.await?;
            if response.status() == http::StatusCode::FORBIDDEN {
                counter.refused(&method, &uri);
            }
            Ok(response)
        })
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

    #[tokio::test]
    async fn forbidden_answers_are_counted_and_other_answers_are_not() {
        use tower::{Layer, Service, ServiceExt};
        let counter = RequestCounter::default();
        let server = tower::service_fn(|req: http::Request<kube::client::Body>| async move {
            let status = if req.uri().path().contains("secrets") {
                403
            } else {
                200
            };
            Ok::<_, std::convert::Infallible>(http::Response::builder().status(status).body(()).unwrap())
        });
        let mut service = CountLayer(counter.clone()).layer(server);
        for path in ["/api/v1/namespaces/a/pods", "/api/v1/namespaces/a/secrets/s"] {
            let req = http::Request::get(path)
                .body(kube::client::Body::empty())
                .unwrap();
            let answer = service.ready().await.unwrap().call(req).await.unwrap();
            assert_eq!(answer.status().as_u16() == 403, path.contains("secrets"));
        }
        assert_eq!(counter.forbidden(), 1);
        assert_eq!(counter.snapshot().1, 2);
    }
}
