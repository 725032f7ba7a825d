//! `kubectl sluice dashboard`: a small local web UI of a namespace's rollouts, as upstream's
//! `kubectl argo rollouts dashboard`. One page (HTML, JS and CSS embedded in the binary, no build step), a JSON
//! API under `<root>/api/v1/`, and a Server-Sent Events stream that pushes the list whenever the watch caches
//! change. The handlers read and act through [`Backend`]: the cluster in `serve`, a fake in the tests.

use std::{convert::Infallible, future::Future, net::Ipv4Addr, sync::Arc, time::Duration};

use anyhow::{Context, Result, bail};
use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, Request, State},
    http::{HeaderMap, Method, StatusCode, header},
    middleware::{self, Next},
    response::{
        IntoResponse, Redirect, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post},
};
use futures::Stream;
use kube::{Api, api::ListParams};
use serde::Deserialize;
use serde_json::json;
use sluice_crds::rollout::Rollout;
use tokio::sync::watch;

use crate::{
    client::Ctx,
    commands,
    fetch::Live,
    info::{RolloutInfo, build::rollout_info},
};

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const STYLE_CSS: &str = include_str!("style.css");

/// How long a burst of watch events (a ReplicaSet scaled, its pods created) settles before one update is sent.
const SETTLE: Duration = Duration::from_millis(100);
/// How long open connections get to finish after Ctrl-C.
const DRAIN: Duration = Duration::from_secs(5);

/// What the dashboard's buttons do to a Rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `promote` (`full`: `promote --full`).
    Promote {
        /// Skip every remaining step, analysis and pause.
        full: bool,
    },
    /// `abort`.
    Abort,
    /// `retry rollout`.
    Retry,
}

impl Action {
    /// The line the CLI prints when the action is done.
    fn done(self, name: &str) -> String {
        let verb = match self {
            Action::Promote { full: true } => "fully promoted",
            Action::Promote { full: false } => "promoted",
            Action::Abort => "aborted",
            Action::Retry => "retried",
        };
        format!("rollout '{name}' {verb}")
    }
}

/// An answer that is not a success: the HTTP status that fits and the message shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The HTTP status.
    pub status: StatusCode,
    /// The message (the API server's own words for API errors).
    pub message: String,
}

impl Failure {
    fn new(status: StatusCode, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }

    /// The status of a command's error: the API server's code for API errors, 502 when the server could not be
    /// asked, 400 when the command itself refused (e.g. conflicting promote flags).
    pub fn from_error(e: &anyhow::Error) -> Failure {
        let kube_error = e.chain().find_map(|c| c.downcast_ref::<kube::Error>());
        let status = match kube_error {
            Some(kube::Error::Api(s)) => StatusCode::from_u16(s.code)
                .ok()
                .filter(|c| c.is_client_error() || c.is_server_error())
                .unwrap_or(StatusCode::BAD_GATEWAY),
            Some(_) => StatusCode::BAD_GATEWAY,
            None => StatusCode::BAD_REQUEST,
        };
        Failure::new(status, commands::describe(e))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = json!({"error": self.message, "code": self.status.as_u16()});
        (self.status, Json(body)).into_response()
    }
}

/// What the dashboard reads and does.
pub trait Backend: Send + Sync + 'static {
    /// The namespace's rollouts as views, in name order.
    fn rollouts(&self) -> Vec<RolloutInfo>;
    /// A receiver that wakes on every change of what `rollouts` reads.
    fn changes(&self) -> watch::Receiver<u64>;
    /// Performs `action` on the named Rollout.
    fn act(&self, name: &str, action: Action) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// The cluster: the namespace's watch caches, and its Rollouts for the actions.
struct Cluster {
    live: Live,
    api: Api<Rollout>,
}

impl Backend for Cluster {
    fn rollouts(&self) -> Vec<RolloutInfo> {
        let owned = self.live.owned();
        let now = jiff::Timestamp::now();
        self.live
            .rollouts()
            .iter()
            .map(|ro| rollout_info(ro, &owned, now))
            .collect()
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.live.changes()
    }

    async fn act(&self, name: &str, action: Action) -> Result<(), Failure> {
        let done = match action {
            Action::Promote { full } => commands::promote_rollout(&self.api, name, full).await,
            Action::Abort => commands::abort_rollout(&self.api, name).await,
            Action::Retry => commands::retry_rollout(&self.api, name).await,
        };
        done.map(drop).map_err(|e| Failure::from_error(&e))
    }
}

/// What every handler shares.
struct App<B> {
    backend: Arc<B>,
    namespace: String,
    /// Turns true on Ctrl-C: event streams end, so that the graceful shutdown does not wait for browsers.
    shutdown: watch::Receiver<bool>,
}

impl<B> Clone for App<B> {
    fn clone(&self) -> Self {
        App {
            backend: self.backend.clone(),
            namespace: self.namespace.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

/// Serves the dashboard on 127.0.0.1:`port` under `/<root_path>/` until Ctrl-C.
pub async fn serve(ctx: Ctx, port: u16, root_path: String) -> Result<()> {
    let base = base_path(&root_path)?;
    let api: Api<Rollout> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    // One plain read first: a cluster that cannot be reached, or has no Rollout CRD, is an error now rather
    // than a watch that retries behind a page that never fills.
    api.list(&ListParams::default().limit(1)).await?;
    let live = Live::start(&ctx.client, Some(&ctx.namespace)).await?;
    let backend = Cluster { live, api };
    let (stop, shutdown) = watch::channel(false);
    let app = App {
        backend: Arc::new(backend),
        namespace: ctx.namespace.clone(),
        shutdown: shutdown.clone(),
    };
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .await
        .with_context(|| format!("listening on 127.0.0.1:{port}"))?;
    let port = listener.local_addr()?.port();
    // Upstream logs this line with logrus, which writes to standard error.
    eprintln!("{}", ready_line(port, &base));
    let mut stopped = shutdown;
    let server = axum::serve(listener, router(app, &base))
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|&s| s).await;
        })
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => served?,
        signal = tokio::signal::ctrl_c() => {
            signal.context("waiting for Ctrl-C")?;
            let _ = stop.send(true);
            // A connection that does not close in time is dropped with the process.
            let _ = tokio::time::timeout(DRAIN, server).await;
        }
    }
    Ok(())
}

/// The line printed once the dashboard listens, in upstream's shape.
fn ready_line(port: u16, base: &str) -> String {
    format!("INFO[0000] Sluice Dashboard is now available at http://localhost:{port}{base}")
}

/// `--root-path` as a path prefix: "rollouts" → "/rollouts", "/a/b/" → "/a/b", "" or "/" → "".
fn base_path(root_path: &str) -> Result<String> {
    let trimmed = root_path.trim_matches('/');
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~/".contains(c);
    let dots = trimmed
        .split('/')
        .any(|segment| segment == "." || segment == "..");
    if !trimmed.chars().all(allowed) || trimmed.contains("//") || dots {
        bail!("invalid root path {root_path:?}: use letters, digits, '-', '.', '_', '~' and '/'");
    }
    Ok(if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    })
}

/// The routes under `base` (see `base_path`); `/` and `base` redirect to `base/`, whose relative links the
/// page uses.
fn router<B: Backend>(app: App<B>, base: &str) -> Router {
    let page = format!("{base}/");
    let mut r = Router::new()
        .route(
            &page,
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            &format!("{base}/app.js"),
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            &format!("{base}/style.css"),
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route(&format!("{base}/api/v1/namespace"), get(namespace::<B>))
        .route(&format!("{base}/api/v1/rollouts"), get(list::<B>))
        .route(&format!("{base}/api/v1/rollouts/{{name}}"), get(one::<B>))
        .route(
            &format!("{base}/api/v1/rollouts/{{name}}/{{action}}"),
            post(act::<B>),
        )
        .route(&format!("{base}/api/v1/stream"), get(stream::<B>));
    if !base.is_empty() {
        let to_page = move || std::future::ready(Redirect::temporary(&page));
        r = r.route("/", get(to_page.clone())).route(base, get(to_page));
    }
    r.fallback(|| async { Failure::new(StatusCode::NOT_FOUND, "not found") })
        .layer(middleware::from_fn(guard))
        .with_state(app)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Refuses what a web page of another site could send through the user's browser.
async fn guard(req: Request, next: Next) -> Response {
    match check_request(req.method(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(f) => f.into_response(),
    }
}

/// A request must name a loopback host (so that a DNS name rebound to 127.0.0.1 reads nothing), and a request
/// that changes something must come from this dashboard's own origin when the browser says where it comes from.
fn check_request(method: &Method, headers: &HeaderMap) -> Result<(), Failure> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let forbidden = |why: &str| Err(Failure::new(StatusCode::FORBIDDEN, why));
    let host = text(header::HOST);
    if let Some(host) = host {
        let name = match host.rsplit_once(':') {
            Some((name, port)) if !port.ends_with(']') => name,
            _ => host,
        };
        if !matches!(name, "localhost" | "127.0.0.1" | "[::1]") {
            return forbidden("the dashboard answers only requests to localhost");
        }
    }
    if method != Method::GET
        && method != Method::HEAD
        && let Some(origin) = text(header::ORIGIN)
        && host.map(|h| format!("http://{h}")).as_deref() != Some(origin)
    {
        return forbidden("cross-origin requests may not act on rollouts");
    }
    Ok(())
}

async fn namespace<B: Backend>(State(app): State<App<B>>) -> Response {
    Json(json!({"namespace": app.namespace})).into_response()
}

async fn list<B: Backend>(State(app): State<App<B>>) -> Response {
    Json(app.backend.rollouts()).into_response()
}

async fn one<B: Backend>(State(app): State<App<B>>, Path(name): Path<String>) -> Response {
    match app.backend.rollouts().into_iter().find(|r| r.name == name) {
        Some(info) => Json(info).into_response(),
        // The API server's words for a missing object.
        None => Failure::new(
            StatusCode::NOT_FOUND,
            format!("rollouts.argoproj.io \"{name}\" not found"),
        )
        .into_response(),
    }
}

/// `?full=true` of a promote.
#[derive(Debug, Default, Deserialize)]
struct ActionQuery {
    full: Option<bool>,
}

/// The optional JSON body of an action (`{"full": true}`, as upstream's API takes it).
#[derive(Debug, Default, Deserialize)]
struct ActionBody {
    #[serde(default)]
    full: bool,
}

/// The action a POST names: the path's verb, and for promote `full` from the query or the body.
fn parse_action(verb: &str, query: &ActionQuery, body: &[u8]) -> Result<Action, Failure> {
    let body: ActionBody = if body.iter().all(u8::is_ascii_whitespace) {
        ActionBody::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, format!("invalid request body: {e}")))?
    };
    match verb {
        "promote" => Ok(Action::Promote {
            full: query.full.unwrap_or(false) || body.full,
        }),
        "abort" => Ok(Action::Abort),
        "retry" => Ok(Action::Retry),
        other => Err(Failure::new(
            StatusCode::NOT_FOUND,
            format!("unknown action {other:?}: use promote, abort or retry"),
        )),
    }
}

async fn act<B: Backend>(
    State(app): State<App<B>>,
    Path((name, verb)): Path<(String, String)>,
    Query(query): Query<ActionQuery>,
    body: Bytes,
) -> Response {
    let action = match parse_action(&verb, &query, &body) {
        Ok(a) => a,
        Err(f) => return f.into_response(),
    };
    match app.backend.act(&name, action).await {
        Ok(()) => Json(json!({"name": name, "message": action.done(&name)})).into_response(),
        Err(f) => f.into_response(),
    }
}

async fn stream<B: Backend>(State(app): State<App<B>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    use futures::StreamExt;
    let events = payloads(app.backend.clone(), app.shutdown.clone())
        .map(|data| Ok::<_, Infallible>(Event::default().data(data)));
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// The JSON of the rollout list: first the current one, then one after each change that alters it; ends when
/// the caches stop or the dashboard shuts down.
fn payloads<B: Backend>(backend: Arc<B>, shutdown: watch::Receiver<bool>) -> impl Stream<Item = String> {
    struct Feed<B> {
        backend: Arc<B>,
        changes: watch::Receiver<u64>,
        shutdown: watch::Receiver<bool>,
        last: Option<String>,
    }
    let mut changes = backend.changes();
    changes.borrow_and_update();
    let feed = Feed {
        backend,
        changes,
        shutdown,
        last: None,
    };
    futures::stream::unfold(feed, |mut feed| async move {
        loop {
            if feed.last.is_some() {
                tokio::select! {
                    changed = feed.changes.changed() => changed.ok()?,
                    _ = feed.shutdown.wait_for(|&s| s) => return None,
                }
                tokio::time::sleep(SETTLE).await;
                feed.changes.borrow_and_update();
            }
            if *feed.shutdown.borrow() {
                return None;
            }
            let data = serde_json::to_string(&feed.backend.rollouts()).unwrap_or_else(|_| "[]".into());
            if feed.last.as_ref() != Some(&data) {
                feed.last = Some(data.clone());
                return Some((data, feed));
            }
        }
    })
}

#[cfg(test)]
mod tests;
