//! Delivery off the reconcile path: a bounded queue drained by a background task, each request sent with
//! retries and exponential backoff. A full queue drops the notification with a warning and a count, so a
//! receiver that is down never slows a reconcile. Logs name the trigger, the service and the receiver's host,
//! never a header, a body, a path or a query (tokens live there).

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use tokio::sync::{Semaphore, mpsc};
use tracing::{debug, warn};

use super::dispatch::Delivery;
use super::payload::{Request, redact};
use crate::metrics::Metrics;

/// Notifications waiting to be sent beyond which new ones are dropped.
pub const QUEUE_CAPACITY: usize = 1024;
/// Requests in flight at once.
const CONCURRENCY: usize = 8;
/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request failed, and whether trying again may help.
#[derive(Debug, Clone, PartialEq)]
pub struct SendError {
    /// What happened, without secrets.
    pub message: String,
    /// A connection failure, a timeout, a 5xx or a 429: worth another attempt.
    pub retry: bool,
}

/// Sends one request.
pub trait Sender: Send + Sync + 'static {
    /// Sends `request` once.
    fn send<'a>(
        &'a self,
        request: &'a Request,
    ) -> Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;
}

/// Attempts per notification and the wait before the second one (doubled before each further one).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all.
    pub attempts: u32,
    /// The wait after the first failure.
    pub first_wait: Duration,
}

impl Default for RetryPolicy {
    /// Five attempts, 1 s, 2 s, 4 s and 8 s apart.
    fn default() -> Self {
        Self {
            attempts: 5,
            first_wait: Duration::from_secs(1),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `n` (1-based).
    pub fn wait(&self, n: u32) -> Duration {
        self.first_wait
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
    }
}

/// The sending end of the queue.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::Sender<Delivery>,
    metrics: Arc<Metrics>,
}

impl Queue {
    /// Starts the background task that delivers what is queued through `sender`.
    pub fn start(sender: Arc<dyn Sender>, metrics: Arc<Metrics>, policy: RetryPolicy) -> Queue {
        let (tx, mut rx) = mpsc::channel::<Delivery>(QUEUE_CAPACITY);
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let worker_metrics = metrics.clone();
        tokio::spawn(async move {
            while let Some(delivery) = rx.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (sender, metrics) = (sender.clone(), worker_metrics.clone());
                tokio::spawn(async move {
                    deliver(sender.as_ref(), &delivery, policy, &metrics).await;
                    drop(slot);
                });
            }
        });
        Queue { tx, metrics }
    }

    /// A queue over a channel the test holds the other end of.
    #[cfg(test)]
    pub fn for_tests(tx: mpsc::Sender<Delivery>, metrics: Arc<Metrics>) -> Queue {
        Queue { tx, metrics }
    }

    /// Queues a delivery; false when the queue is full and it was dropped.
    pub fn enqueue(&self, delivery: Delivery) -> bool {
        match self.tx.try_send(delivery) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(d) | mpsc::error::TrySendError::Closed(d)) => {
                self.metrics.notification_dropped.inc();
                warn!(trigger = %d.trigger, service = %d.service, "the notification queue is full; notification dropped");
                false
            }
        }
    }
}

/// Sends one delivery with retries; returns whether it was delivered.
pub async fn deliver(
    sender: &dyn Sender,
    delivery: &Delivery,
    policy: RetryPolicy,
    metrics: &Metrics,
) -> bool {
    let labels = crate::metrics::NotificationLabels {
        trigger: delivery.trigger.clone(),
        service: delivery.service.clone(),
    };
    for attempt in 1..=policy.attempts.max(1) {
        let started = std::time::Instant::now();
        let result = sender.send(&delivery.request).await;
        metrics.notification_send.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(()) => {
                metrics.notification_send_success.get_or_create(&labels).inc();
                debug!(trigger = %delivery.trigger, service = %delivery.service, attempt, "notification sent");
                return true;
            }
            Err(e) if e.retry && attempt < policy.attempts => {
                let wait = policy.wait(attempt);
                warn!(trigger = %delivery.trigger, service = %delivery.service, to = %redact(&delivery.request.url), attempt, retry_in = ?wait, error = %e.message, "notification failed; retrying");
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                metrics.notification_send_error.get_or_create(&labels).inc();
                warn!(trigger = %delivery.trigger, service = %delivery.service, to = %redact(&delivery.request.url), attempt, error = %e.message, "notification failed; giving up");
                return false;
            }
        }
    }
    false
}

/// The sender of the running operator: the analysis providers' pooled HTTP client.
pub struct HttpSender;

impl Sender for HttpSender {
    fn send<'a>(
        &'a self,
        request: &'a Request,
    ) -> Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>> {
        Box::pin(send_http(request))
    }
}

async fn send_http(request: &Request) -> Result<(), SendError> {
    use sluice_analysis::provider::http::{Call, send};
    let method = http::Method::from_bytes(request.method.as_bytes()).map_err(|_| SendError {
        message: format!("invalid method {:?}", request.method),
        retry: false,
    })?;
    let call = Call {
        method,
        url: &request.url,
        headers: request.headers.clone(),
        body: Some((bytes_of(&request.body), None)),
        timeout: ATTEMPT_TIMEOUT,
        insecure: request.insecure,
    };
    // The client's errors start with the full URL; only its host may be told.
    let answer = send(call).await.map_err(|e| SendError {
        message: e.replace(&request.url, &redact(&request.url)),
        retry: true,
    })?;
    judge(request, answer.status.as_u16(), &answer.body)
}

fn bytes_of(body: &str) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(body.as_bytes())
}

/// Whether an answer is a delivery: a 2xx (and, from Slack's Web API, `ok: true`).
pub fn judge(request: &Request, status: u16, body: &[u8]) -> Result<(), SendError> {
    if !(200..300).contains(&status) {
        return Err(SendError {
            message: format!("the receiver answered HTTP {status}"),
            retry: status >= 500 || status == 429,
        });
    }
    if request.slack_answer {
        let answer: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        if answer["ok"] != serde_json::Value::Bool(true) {
            let why = answer["error"].as_str().unwrap_or("no ok in the answer");
            return Err(SendError {
                message: format!("Slack refused the message: {why}"),
                retry: why == "ratelimited",
            });
        }
    }
    Ok(())
}
