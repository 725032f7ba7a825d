//! An HTTP receiver on 127.0.0.1 that records every request (method, path, headers, body) and answers 200
//! `{"ok": true}` (what Slack's Web API answers too), or 500 to the first requests of a path told to fail: the
//! other end of the operator's notifications in the end-to-end tests.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Result;
use axum::{Router, body::Body, extract::Request, http::StatusCode, response::Response};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// The method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, names in lower case.
    pub headers: BTreeMap<String, String>,
    /// The body as text.
    pub body: String,
    /// What the receiver answered.
    pub status: u16,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Path → how many more requests of it get a 500.
    failing: BTreeMap<String, u32>,
}

/// The running receiver; stops when dropped.
pub struct Receiver {
    /// Its port on 127.0.0.1.
    pub port: u16,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start() -> Result<Receiver> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let app = Router::new().fallback(move |request: Request| record(shared.clone(), request));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { port, state, task })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Answers the next `times` requests of `path` with HTTP 500.
    pub fn fail_first(&self, path: &str, times: u32) {
        self.state.lock().unwrap().failing.insert(path.to_string(), times);
    }

    /// Everything received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// The requests of `path` so far.
    pub fn to_path(&self, path: &str) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.path == path).collect()
    }

    /// Waits until a request of `path` was answered 200; returns every request of that path.
    pub async fn wait_delivered(&self, path: &str, timeout: Duration) -> Result<Vec<Received>> {
        crate::cluster::wait_for(&format!("a delivered request to {path}"), timeout, || async {
            let seen = self.to_path(path);
            if seen.iter().any(|r| r.status == 200) {
                Ok(())
            } else {
                let all: Vec<String> = self
                    .received()
                    .iter()
                    .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
                    .collect();
                anyhow::bail!("received so far: {all:?}")
            }
        })
        .await?;
        Ok(self.to_path(path))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(state: Arc<Mutex<State>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let mut state = state.lock().unwrap();
    let status = match state.failing.get_mut(&path) {
        Some(left) if *left > 0 => {
            *left -= 1;
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::OK,
    };
    state.received.push(Received {
        method: parts.method.to_string(),
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        status: status.as_u16(),
    });
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(r#"{"ok": true}"#))
        .unwrap_or_default()
}
