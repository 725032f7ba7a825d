//! The dashboard's routes against a fake backend: JSON answers, status codes, actions, the event feed and
//! the request guard.

use std::sync::Mutex;

use axum::body::Body;
use futures::StreamExt;
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::info::Icon;

struct Fake {
    rollouts: Mutex<Vec<RolloutInfo>>,
    tx: watch::Sender<u64>,
    acted: Mutex<Vec<(String, Action)>>,
    refuse: Option<Failure>,
}

impl Fake {
    fn new(names: &[&str]) -> Arc<Fake> {
        Arc::new(Fake {
            rollouts: Mutex::new(names.iter().map(|n| info(n, "Paused")).collect()),
            tx: watch::channel(0).0,
            acted: Mutex::new(Vec::new()),
            refuse: None,
        })
    }

    /// Replaces the list and signals a change, as a watch event would.
    fn set(&self, rollouts: Vec<RolloutInfo>) {
        *self.rollouts.lock().unwrap() = rollouts;
        self.tx.send_modify(|n| *n += 1);
    }
}

impl Backend for Fake {
    fn rollouts(&self) -> Vec<RolloutInfo> {
        self.rollouts.lock().unwrap().clone()
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    async fn act(&self, name: &str, action: Action) -> Result<(), Failure> {
        if let Some(f) = &self.refuse {
            return Err(f.clone());
        }
        self.acted.lock().unwrap().push((name.to_string(), action));
        Ok(())
    }
}

fn info(name: &str, status: &str) -> RolloutInfo {
    RolloutInfo {
        name: name.into(),
        namespace: "shop".into(),
        status: status.into(),
        icon: Icon::Paused,
        message: "CanaryPauseStep".into(),
        strategy: "Canary".into(),
        step: "1/2".into(),
        set_weight: "20".into(),
        actual_weight: "20".into(),
        images: Vec::new(),
        desired: 5,
        current: 5,
        updated: 1,
        ready: 5,
        available: 5,
        created: None,
        revisions: Vec::new(),
    }
}

fn app(backend: Arc<Fake>, base: &str) -> (Router, watch::Sender<bool>) {
    let (stop, shutdown) = watch::channel(false);
    let app = App {
        backend,
        namespace: "shop".into(),
        shutdown,
    };
    (router(app, base), stop)
}

fn request(method: Method, uri: &str, body: &str) -> Request {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "localhost:3100")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn send(router: &Router, req: Request) -> (StatusCode, HeaderMap, String) {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

async fn get_json(router: &Router, uri: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(router, request(Method::GET, uri, "")).await;
    (status, serde_json::from_str(&body).unwrap())
}

#[tokio::test]
async fn list_and_one_answer_the_view_model_in_camel_case() {
    let (r, _stop) = app(Fake::new(&["api", "web"]), "/rollouts");
    let (status, list) = get_json(&r, "/rollouts/api/v1/rollouts").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["api", "web"]);
    assert_eq!(list[0]["setWeight"], "20");

    let (status, one) = get_json(&r, "/rollouts/api/v1/rollouts/web").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (one["name"].as_str(), one["status"].as_str()),
        (Some("web"), Some("Paused"))
    );
    assert_eq!(one["icon"], "paused");

    let (_, ns) = get_json(&r, "/rollouts/api/v1/namespace").await;
    assert_eq!(ns["namespace"], "shop");
}

#[tokio::test]
async fn a_missing_rollout_is_a_json_404_in_the_api_servers_words() {
    let (r, _stop) = app(Fake::new(&["api"]), "/rollouts");
    let (status, err) = get_json(&r, "/rollouts/api/v1/rollouts/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"], "rollouts.argoproj.io \"nope\" not found");
    assert_eq!(err["code"], 404);
}

#[tokio::test]
async fn actions_reach_the_backend_with_full_from_the_query_or_the_body() {
    let fake = Fake::new(&["api"]);
    let (r, _stop) = app(fake.clone(), "/rollouts");
    let cases = [
        (
            "/rollouts/api/v1/rollouts/api/promote",
            "",
            Action::Promote { full: false },
        ),
        (
            "/rollouts/api/v1/rollouts/api/promote?full=true",
            "",
            Action::Promote { full: true },
        ),
        (
            "/rollouts/api/v1/rollouts/api/promote",
            r#"{"full":true}"#,
            Action::Promote { full: true },
        ),
        ("/rollouts/api/v1/rollouts/api/abort", "", Action::Abort),
        ("/rollouts/api/v1/rollouts/api/retry", "{}", Action::Retry),
    ];
    for (uri, body, want) in cases {
        let (status, _, text) = send(&r, request(Method::POST, uri, body)).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["message"], want.done("api"), "{uri}");
        assert_eq!(
            fake.acted.lock().unwrap().pop(),
            Some(("api".to_string(), want)),
            "{uri}"
        );
    }
    assert_eq!(
        Action::Promote { full: true }.done("api"),
        "rollout 'api' fully promoted"
    );
}

#[tokio::test]
async fn bad_actions_and_bodies_are_refused_before_the_backend() {
    let fake = Fake::new(&["api"]);
    let (r, _stop) = app(fake.clone(), "/rollouts");
    let (status, _, _) = send(
        &r,
        request(Method::POST, "/rollouts/api/v1/rollouts/api/explode", ""),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, text) = send(
        &r,
        request(Method::POST, "/rollouts/api/v1/rollouts/api/promote", "{"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let (status, _, _) = send(
        &r,
        request(Method::GET, "/rollouts/api/v1/rollouts/api/promote", ""),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(fake.acted.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_refused_action_answers_the_backends_status_and_message() {
    let fake = Arc::new(Fake {
        refuse: Some(Failure::new(StatusCode::CONFLICT, "the object has been modified")),
        ..Arc::into_inner(Fake::new(&["api"])).unwrap()
    });
    let (r, _stop) = app(fake, "/rollouts");
    let (status, _, text) = send(
        &r,
        request(Method::POST, "/rollouts/api/v1/rollouts/api/abort", ""),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let err: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(err["error"], "the object has been modified");
}

#[test]
fn command_errors_map_to_http_statuses() {
    let api = |code: u16, message: &str| {
        anyhow::Error::from(kube::Error::Api(
            kube::core::Status {
                code,
                message: message.into(),
                ..Default::default()
            }
            .boxed(),
        ))
    };
    let f = Failure::from_error(&api(404, "rollouts.argoproj.io \"x\" not found"));
    assert_eq!(
        (f.status, f.message.as_str()),
        (StatusCode::NOT_FOUND, "rollouts.argoproj.io \"x\" not found")
    );
    assert_eq!(
        Failure::from_error(&api(422, "invalid")).status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // A code the server did not set is no reason to claim success.
    assert_eq!(Failure::from_error(&api(0, "?")).status, StatusCode::BAD_GATEWAY);
    let refused = Failure::from_error(&anyhow::anyhow!("--skip-current-step and --skip-all-steps"));
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_under_the_root_path() {
    let (r, _stop) = app(Fake::new(&[]), "/rollouts");
    let (status, headers, body) = send(&r, request(Method::GET, "/rollouts/", "")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        body.contains(r#"<script src="app.js">"#),
        "relative links, resolved under the root path"
    );
    let (_, headers, js) = send(&r, request(Method::GET, "/rollouts/app.js", "")).await;
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(!js.contains("innerHTML"), "texts go in as text nodes");
    let (_, headers, _) = send(&r, request(Method::GET, "/rollouts/style.css", "")).await;
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    for from in ["/", "/rollouts"] {
        let (status, headers, _) = send(&r, request(Method::GET, from, "")).await;
        assert!(status.is_redirection(), "{from}: {status}");
        assert_eq!(headers[header::LOCATION], "/rollouts/", "{from}");
    }
    let (status, _, _) = send(&r, request(Method::GET, "/elsewhere", "")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_empty_root_path_serves_at_the_top() {
    let (r, _stop) = app(Fake::new(&["api"]), &base_path("/").unwrap());
    let (status, _, _) = send(&r, request(Method::GET, "/", "")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get_json(&r, "/api/v1/rollouts/api").await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn root_paths_become_prefixes() {
    assert_eq!(base_path("rollouts").unwrap(), "/rollouts");
    assert_eq!(base_path("/a/b/").unwrap(), "/a/b");
    assert_eq!(base_path("").unwrap(), "");
    for bad in ["a{b}", "a//b", "x y", "a?b", "../up", "a/./b"] {
        assert!(base_path(bad).is_err(), "{bad}");
    }
    assert_eq!(
        ready_line(3100, "/rollouts"),
        "INFO[0000] Sluice Dashboard is now available at http://localhost:3100/rollouts"
    );
}

#[tokio::test]
async fn requests_from_other_sites_are_refused() {
    let fake = Fake::new(&["api"]);
    let (r, _stop) = app(fake.clone(), "/rollouts");
    let mut rebound = request(Method::GET, "/rollouts/api/v1/rollouts", "");
    rebound
        .headers_mut()
        .insert(header::HOST, "evil.example:3100".parse().unwrap());
    assert_eq!(send(&r, rebound).await.0, StatusCode::FORBIDDEN);

    let post = |origin: &str| {
        let mut req = request(Method::POST, "/rollouts/api/v1/rollouts/api/abort", "");
        req.headers_mut().insert(header::ORIGIN, origin.parse().unwrap());
        req
    };
    assert_eq!(
        send(&r, post("http://evil.example")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(send(&r, post("null")).await.0, StatusCode::FORBIDDEN);
    assert!(fake.acted.lock().unwrap().is_empty());
    assert_eq!(send(&r, post("http://localhost:3100")).await.0, StatusCode::OK);

    for host in ["127.0.0.1:3100", "[::1]:3100", "[::1]", "localhost"] {
        let mut loopback = request(Method::GET, "/rollouts/api/v1/rollouts", "");
        loopback.headers_mut().insert(header::HOST, host.parse().unwrap());
        assert_eq!(send(&r, loopback).await.0, StatusCode::OK, "{host}");
    }
}

#[tokio::test]
async fn the_feed_sends_the_list_then_each_change_once_and_ends_on_shutdown() {
    let fake = Fake::new(&["api"]);
    let (stop, shutdown) = watch::channel(false);
    let feed = payloads(fake.clone(), shutdown);
    futures::pin_mut!(feed);
    let first: Value = serde_json::from_str(&feed.next().await.unwrap()).unwrap();
    assert_eq!(first[0]["status"], "Paused");

    // A change that leaves the view as it was (a pod's resourceVersion) sends nothing; the next real one does.
    fake.set(vec![info("api", "Paused")]);
    let quiet = tokio::time::timeout(SETTLE * 5, feed.next()).await;
    assert!(quiet.is_err(), "an unchanged list is not sent again: {quiet:?}");
    fake.set(vec![info("api", "Healthy")]);
    let next: Value = serde_json::from_str(&feed.next().await.unwrap()).unwrap();
    assert_eq!(next[0]["status"], "Healthy");

    stop.send(true).unwrap();
    assert_eq!(feed.next().await, None);
}

#[tokio::test]
async fn the_stream_route_speaks_server_sent_events() {
    let (r, stop) = app(Fake::new(&["api"]), "/rollouts");
    let res = r
        .clone()
        .oneshot(request(Method::GET, "/rollouts/api/v1/stream", ""))
        .await
        .unwrap();
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut frames = res.into_body().into_data_stream();
    let first = frames.next().await.unwrap().unwrap();
    let text = String::from_utf8(first.to_vec()).unwrap();
    assert!(text.starts_with("data: [{"), "{text}");
    assert!(text.contains(r#""name":"api""#), "{text}");
    // Shutting down ends the response, so that a graceful stop need not wait for the browser.
    stop.send(true).unwrap();
    let rest: Vec<_> = frames.collect().await;
    assert!(rest.iter().all(Result::is_ok), "{rest:?}");
}
