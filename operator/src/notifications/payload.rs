//! The HTTP request each service sends for a rendered notification, built without I/O.
//!
//! - Webhook, as upstream: the service's URL with the template's path appended (one `/` between them), the
//!   template's method (GET when it names none) and body (the message when the template has no entry for the
//!   service), the service's headers in order and its basic authentication.
//! - Slack: the chat.postMessage payload `{channel, text, username, icon_emoji | icon_url, attachments,
//!   blocks}`, posted as JSON to `<apiURL>/chat.postMessage` with the bot token, or to an incoming webhook
//!   (`webhookURL`) when there is no token. The template's username and icon win over the service's.

use base64::Engine as _;
use serde_json::{Value, json};

use super::config::{Service, SlackService, WebhookService};
use super::render::Notification;

/// Slack's Web API, when the service names none.
pub const SLACK_API: &str = "https://slack.com/api/";

/// One request to send.
#[derive(Clone, PartialEq)]
pub struct Request {
    /// The method.
    pub method: String,
    /// The absolute URL.
    pub url: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
    /// Skip TLS certificate verification.
    pub insecure: bool,
    /// The answer is Slack's `{"ok": ...}`: `ok: false` is a failure whatever the status.
    pub slack_answer: bool,
}

impl std::fmt::Debug for Request {
    /// Only the method and where it goes, host only: headers, path and query may hold secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.method, redact(&self.url))
    }
}

/// `scheme://host[:port]` of a URL: what may be logged of it (a path or query may carry a token, as Slack's
/// incoming webhooks do).
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{port}", u.scheme(), u.host_str().unwrap_or(""))
        }
        Err(_) => "<invalid URL>".to_string(),
    }
}

/// The request of `service` (named `name`) for `notification` to `recipient`.
pub fn request(
    name: &str,
    service: &Service,
    notification: &Notification,
    recipient: &str,
) -> Result<Request, String> {
    match service {
        Service::Webhook(webhook) => Ok(webhook_request(name, webhook, notification)),
        Service::Slack(slack) => slack_request(slack, notification, recipient),
    }
}

/// A webhook's request.
pub fn webhook_request(name: &str, service: &WebhookService, notification: &Notification) -> Request {
    let mut method = "GET".to_string();
    let mut url = service.url.clone();
    let mut body = notification.message.clone();
    if let Some(own) = notification.webhook.get(name) {
        body = own.body.clone();
        if !own.method.is_empty() {
            method = own.method.to_ascii_uppercase();
        }
        if !own.path.is_empty() {
            url = format!(
                "{}/{}",
                url.trim_end_matches('/'),
                own.path.trim_start_matches('/')
            );
        }
    }
    let mut headers: Vec<(String, String)> = service
        .headers
        .iter()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    if let Some(auth) = &service.basic_auth {
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", auth.username, auth.password));
        headers.push(("Authorization".into(), format!("Basic {token}")));
    }
    Request {
        method,
        url,
        headers,
        body,
        insecure: service.insecure_skip_verify,
        slack_answer: false,
    }
}

/// Slack's request: chat.postMessage with the token, else the incoming webhook.
pub fn slack_request(
    service: &SlackService,
    notification: &Notification,
    channel: &str,
) -> Result<Request, String> {
    let payload = slack_payload(service, notification, channel)?;
    let mut headers = vec![(
        "Content-Type".to_string(),
        "application/json; charset=utf-8".to_string(),
    )];
    let url = if !service.token.is_empty() {
        headers.push(("Authorization".into(), format!("Bearer {}", service.token)));
        let api = if service.api_url.is_empty() {
            SLACK_API
        } else {
            &service.api_url
        };
        format!("{}/chat.postMessage", api.trim_end_matches('/'))
    } else if !service.webhook_url.is_empty() {
        service.webhook_url.clone()
    } else {
        return Err("the slack service has neither a token nor a webhookURL".into());
    };
    Ok(Request {
        method: "POST".into(),
        url,
        headers,
        body: payload.to_string(),
        insecure: service.insecure_skip_verify,
        slack_answer: !service.token.is_empty(),
    })
}

/// The message payload (chat.postMessage's fields, which incoming webhooks read too).
pub fn slack_payload(
    service: &SlackService,
    notification: &Notification,
    channel: &str,
) -> Result<Value, String> {
    let mut payload = json!({"text": notification.message});
    if !channel.is_empty() {
        payload["channel"] = json!(channel);
    }
    let own = notification.slack.as_ref();
    let pick = |mine: Option<&String>, theirs: &String| match mine {
        Some(m) if !m.is_empty() => m.clone(),
        _ => theirs.clone(),
    };
    let username = pick(own.map(|s| &s.username), &service.username);
    if !username.is_empty() {
        payload["username"] = json!(username);
    }
    let icon = pick(own.map(|s| &s.icon), &service.icon);
    if icon.len() > 2 && icon.starts_with(':') && icon.ends_with(':') {
        payload["icon_emoji"] = json!(icon);
    } else if icon.starts_with("http://") || icon.starts_with("https://") {
        payload["icon_url"] = json!(icon);
    }
    if let Some(slack) = own {
        for (field, text) in [("attachments", &slack.attachments), ("blocks", &slack.blocks)] {
            if text.trim().is_empty() {
                continue;
            }
            let parsed: Value = serde_json::from_str(text)
                .map_err(|e| format!("failed to unmarshal {field} '{}': {e}", text.trim()))?;
            payload[field] = parsed;
        }
    }
    Ok(payload)
}
