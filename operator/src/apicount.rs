//! Counts the operator's requests to the API server by method (dry runs apart) and by verb and resource, for
//! the shutdown log line, `/metrics` and benchmarks, and the requests the server refused as forbidden (an RBAC
//! gap, logged with the method and path).

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    task::{Context, Poll},
};

use futures::future::BoxFuture;

/// Request counters shared by every clone of the client: one per method, then one per method of dry runs;
/// the forbidden answers; and the requests by (verb, resource).
#[derive(Clone, Debug, Default)]
pub struct RequestCounter(Arc<[AtomicU64; 12]>, Arc<AtomicU64>, Arc<Mutex<ByResource>>);

/// Requests by (verb, resource): the kinds the operator reads and writes are few, and past
/// [`MAX_RESOURCES`] pairs the rest are counted under the resource `other`.
type ByResource = BTreeMap<(&'static str, String), u64>;

/// The most (verb, resource) pairs counted apart.
const MAX_RESOURCES: usize = 128;

/// The Kubernetes verb of a request: `get`, `list` and `watch` are told apart by the path and the query.
pub fn verb(method: &http::Method, uri: &http::Uri) -> &'static str {
    let watching = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let named = resource_of(uri.path()).1;
    match method.as_str() {
        "GET" if watching => "watch",
        "GET" if named => "get",
        "GET" => "list",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" if named => "delete",
        "DELETE" => "deletecollection",
        _ => "other",
    }
}

/// The resource a path names (`pods`, `rollouts.argoproj.io`, `rollouts.argoproj.io/status`) and whether it
/// names one object. Paths outside the resource APIs (`/version`, discovery) are `nonresource`.
pub fn resource_of(path: &str) -> (String, bool) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return ("nonresource".into(), false),
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    let Some(plural) = rest.first() else {
        return ("nonresource".into(), false);
    };
    let mut resource = if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    };
    if let Some(sub) = rest.get(2) {
        resource.push('/');
        resource.push_str(sub);
    }
    (resource, rest.len() >= 2)
}

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
        let verb = verb(method, uri);
        let (resource, _) = resource_of(uri.path());
        if let Ok(mut by) = self.2.lock() {
            let key = if by.len() < MAX_RESOURCES || by.contains_key(&(verb, resource.clone())) {
                (verb, resource)
            } else {
                (verb, "other".to_string())
            };
            *by.entry(key).or_default() += 1;
        }
    }

    /// ((verb, resource), count) for every pair counted so far, in order.
    pub fn by_resource(&self) -> Vec<((&'static str, String), u64)> {
        self.2
            .lock()
            .map(|by| by.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
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
    fn requests_are_counted_by_verb_and_resource() {
        let c = RequestCounter::default();
        let send = |m: &str, path: &str| {
            c.count(
                &http::Method::from_bytes(m.as_bytes()).unwrap(),
                &path.parse().unwrap(),
            )
        };
        send("GET", "/api/v1/namespaces/a/services/web");
        send("GET", "/api/v1/namespaces/a/services/web");
        send("GET", "/apis/apps/v1/namespaces/a/replicasets?labelSelector=x");
        send("GET", "/apis/apps/v1/replicasets?watch=true&resourceVersion=5");
        send(
            "PATCH",
            "/apis/argoproj.io/v1alpha1/namespaces/a/rollouts/r/status",
        );
        send("POST", "/api/v1/namespaces/a/events");
        send("DELETE", "/apis/apps/v1/namespaces/a/replicasets/r-1");
        send("GET", "/version");
        send("GET", "/api/v1/namespaces/a");
        let by: BTreeMap<_, _> = c.by_resource().into_iter().collect();
        let at = |v: &'static str, r: &str| by.get(&(v, r.to_string())).copied();
        assert_eq!(at("get", "services"), Some(2));
        assert_eq!(at("list", "replicasets.apps"), Some(1));
        assert_eq!(at("watch", "replicasets.apps"), Some(1));
        assert_eq!(at("patch", "rollouts.argoproj.io/status"), Some(1));
        assert_eq!(at("create", "events"), Some(1));
        assert_eq!(at("delete", "replicasets.apps"), Some(1));
        assert_eq!(at("list", "nonresource"), Some(1));
        assert_eq!(at("get", "namespaces"), Some(1));
    }

    #[test]
    fn past_the_bound_new_resources_are_counted_as_other() {
        let c = RequestCounter::default();
        for i in 0..MAX_RESOURCES + 10 {
            c.count(
                &http::Method::GET,
                &format!("/apis/g{i}/v1/things").parse().unwrap(),
            );
        }
        let by = c.by_resource();
        assert_eq!(by.len(), MAX_RESOURCES + 1);
        assert!(by.contains(&(("list", "other".to_string()), 10)));
    }

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
