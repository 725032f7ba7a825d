//! The notifications configuration as upstream's notifications-engine reads it from
//! `argo-rollouts-notification-configmap` and `argo-rollouts-notification-secret`:
//!
//! - `trigger.<name>`: a YAML list of conditions `{when, send, oncePer, description}`;
//! - `template.<name>`: `{message, slack: {username, icon, attachments, blocks}, webhook: {<service>: {method,
//!   path, body}}}` (other services' fields are accepted and ignored);
//! - `service.<type>` or `service.<type>.<name>`: a service's options, `$key` in any string replaced by the
//!   Secret's `key` (a key the Secret lacks stays as written, as upstream leaves it);
//! - `defaultTriggers` and `defaultTriggers.<service>`: the triggers of a subscription that names none;
//! - `subscriptions`: subscriptions of every Rollout whose labels match a selector.
//!
//! Upstream refuses the whole configuration when one key is malformed; here every key stands on its own, so a
//! typo in one template silences only the notifications that use it, and the error is kept under its key to be
//! told to the Rollouts that reach it.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The ConfigMap upstream reads.
pub const CONFIG_MAP: &str = "argo-rollouts-notification-configmap";
/// The Secret upstream reads `$key` references from.
pub const SECRET: &str = "argo-rollouts-notification-secret";

/// One condition of a trigger.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Condition {
    /// An expr predicate over `rollout`; empty means the condition always holds.
    pub when: String,
    /// The templates sent when it holds.
    pub send: Vec<String>,
    /// Accepted as upstream writes it; each Rollout event notifies once already, so it changes nothing.
    pub once_per: String,
    /// Free text.
    pub description: String,
}

/// A notification template: the message and what each service makes of it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Template {
    /// The text every service sends unless its own fields say otherwise.
    pub message: String,
    /// Slack's fields.
    pub slack: Option<SlackTemplate>,
    /// Per webhook service name: the request to send.
    pub webhook: BTreeMap<String, WebhookTemplate>,
}

/// A template's Slack fields; each is itself a Go template.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SlackTemplate {
    /// Overrides the service's username.
    pub username: String,
    /// Overrides the service's icon (`:emoji:` or an image URL).
    pub icon: String,
    /// A JSON array of Slack attachments.
    pub attachments: String,
    /// A JSON array of Slack blocks.
    pub blocks: String,
}

/// A template's request for one webhook service; each field is a Go template but the method.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct WebhookTemplate {
    /// GET unless given, as upstream.
    pub method: String,
    /// Appended to the service's URL.
    pub path: String,
    /// The request body (the template's message when the template has no webhook entry).
    pub body: String,
}

/// A configured notification service.
#[derive(Debug, Clone, PartialEq)]
pub enum Service {
    /// `service.webhook.<name>`.
    Webhook(WebhookService),
    /// `service.slack`.
    Slack(SlackService),
}

/// A header sent with every request of a webhook.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Header {
    /// Its name.
    pub name: String,
    /// Its value (often a `$key` of the Secret).
    pub value: String,
}

/// Basic authentication of a webhook.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct BasicAuth {
    /// The user.
    pub username: String,
    /// The password.
    pub password: String,
}

/// Options of a webhook service.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WebhookService {
    /// Where requests go; a template's path is appended.
    pub url: String,
    /// Headers of every request.
    pub headers: Vec<Header>,
    /// Basic authentication of every request.
    pub basic_auth: Option<BasicAuth>,
    /// Skip TLS certificate verification.
    pub insecure_skip_verify: bool,
}

/// Options of the Slack service: a bot token (chat.postMessage on `apiURL`, upstream's), or an incoming webhook
/// URL (`webhookURL`, Sluice's own: upstream reaches incoming webhooks through a webhook service).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SlackService {
    /// The bot token (`xoxb-...`).
    pub token: String,
    /// Slack's Web API (`https://slack.com/api/` unless given).
    #[serde(rename = "apiURL")]
    pub api_url: String,
    /// An incoming webhook to post to when there is no token.
    #[serde(rename = "webhookURL")]
    pub webhook_url: String,
    /// The sender's name.
    pub username: String,
    /// The sender's icon (`:emoji:` or an image URL).
    pub icon: String,
    /// Skip TLS certificate verification.
    pub insecure_skip_verify: bool,
}

/// A default subscription of the ConfigMap's `subscriptions` key.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct GlobalSubscription {
    /// `<service>:<recipient>` (or just `<service>`).
    pub recipients: Vec<String>,
    /// The triggers; `defaultTriggers` when empty.
    pub triggers: Vec<String>,
    /// An equality label selector (`app=web,tier!=db`); every Rollout when empty.
    pub selector: String,
}

/// The parsed configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Conditions by trigger name.
    pub triggers: BTreeMap<String, Vec<Condition>>,
    /// Templates by name.
    pub templates: BTreeMap<String, Template>,
    /// Services by name (`slack`, or the `<name>` of `service.webhook.<name>`).
    pub services: BTreeMap<String, Service>,
    /// Triggers of a subscription that names none.
    pub default_triggers: Vec<String>,
    /// Per service: the triggers of a subscription that names none.
    pub service_default_triggers: BTreeMap<String, Vec<String>>,
    /// Subscriptions of every matching Rollout.
    pub subscriptions: Vec<GlobalSubscription>,
    /// Keys that could not be read, with why.
    pub errors: BTreeMap<String, String>,
}

impl Config {
    /// Reads the ConfigMap's data with the Secret's data for `$key` references.
    pub fn parse(data: &BTreeMap<String, String>, secret: &BTreeMap<String, String>) -> Config {
        let mut config = Config::default();
        for (key, value) in data {
            if let Err(e) = config.read_key(key, value, secret) {
                config.errors.insert(key.clone(), e);
            }
        }
        config
    }

    fn read_key(&mut self, key: &str, value: &str, secret: &BTreeMap<String, String>) -> Result<(), String> {
        let yaml = |what: &str, e: serde_yaml::Error| format!("failed to unmarshal {what}: {e}");
        if key == "subscriptions" {
            self.subscriptions = serde_yaml::from_str(value).map_err(|e| yaml("subscriptions", e))?;
        } else if key == "defaultTriggers" {
            self.default_triggers = serde_yaml::from_str(value).map_err(|e| yaml("defaultTriggers", e))?;
        } else if let Some(service) = key.strip_prefix("defaultTriggers.") {
            let triggers = serde_yaml::from_str(value).map_err(|e| yaml("default triggers", e))?;
            self.service_default_triggers
                .insert(service.to_string(), triggers);
        } else if let Some(name) = key.strip_prefix("trigger.") {
            let conditions: Option<Vec<Condition>> =
                serde_yaml::from_str(value).map_err(|e| yaml(&format!("trigger {name}"), e))?;
            self.triggers
                .insert(name.to_string(), conditions.unwrap_or_default());
        } else if let Some(name) = key.strip_prefix("template.") {
            let template: Option<Template> =
                serde_yaml::from_str(value).map_err(|e| yaml(&format!("template {name}"), e))?;
            self.templates
                .insert(name.to_string(), template.unwrap_or_default());
        } else if let Some(rest) = key.strip_prefix("service.") {
            let (kind, name) = match rest.split('.').collect::<Vec<_>>()[..] {
                [kind] => (kind, kind),
                [kind, name] => (kind, name),
                _ => {
                    return Err(format!(
                        "invalid service key; expected 'service.<type>(.<name>)' but got '{key}'"
                    ));
                }
            };
            let service = parse_service(kind, value, secret)?;
            self.services.insert(name.to_string(), service);
        }
        Ok(())
    }

    /// Why the named key could not be read, if it could not.
    pub fn error(&self, key: &str) -> Option<&str> {
        self.errors.get(key).map(String::as_str)
    }

    /// Why the service of that name is missing, if a `service.*.<name>` key failed.
    pub fn service_error(&self, name: &str) -> Option<(&str, &str)> {
        self.errors.iter().find_map(|(key, e)| {
            let rest = key.strip_prefix("service.")?;
            let own = rest.rsplit('.').next() == Some(name);
            own.then_some((key.as_str(), e.as_str()))
        })
    }
}

/// One service's options, `$key` references replaced first.
fn parse_service(kind: &str, value: &str, secret: &BTreeMap<String, String>) -> Result<Service, String> {
    let mut options: serde_yaml::Value = serde_yaml::from_str(value)
        .map_err(|e| format!("failed to render service configuration {kind}: {e}"))?;
    if options.is_null() {
        options = serde_yaml::Value::Mapping(Default::default());
    }
    // Checked as written first, so that an error quotes `$key` and never the Secret's value.
    let invalid = |e: serde_yaml::Error| format!("invalid {kind} service configuration: {e}");
    match kind {
        "webhook" => drop(serde_yaml::from_value::<WebhookService>(options.clone()).map_err(invalid)?),
        "slack" => drop(serde_yaml::from_value::<SlackService>(options.clone()).map_err(invalid)?),
        other => {
            return Err(format!(
                "service type '{other}' is not supported (Sluice sends webhook and slack notifications)"
            ));
        }
    }
    replace_secrets(&mut options, secret);
    let hidden = |_| format!("invalid {kind} service configuration once its $key references are replaced");
    Ok(match kind {
        "webhook" => Service::Webhook(serde_yaml::from_value(options).map_err(hidden)?),
        _ => Service::Slack(serde_yaml::from_value(options).map_err(hidden)?),
    })
}

/// Replaces `$key` (letters, digits, `_` and `-`) in every string with the Secret's value of `key`.
fn replace_secrets(value: &mut serde_yaml::Value, secret: &BTreeMap<String, String>) {
    match value {
        serde_yaml::Value::String(s) if s.contains('$') => *s = substitute(s, secret),
        serde_yaml::Value::Sequence(items) => items.iter_mut().for_each(|v| replace_secrets(v, secret)),
        serde_yaml::Value::Mapping(map) => map.values_mut().for_each(|v| replace_secrets(v, secret)),
        _ => {}
    }
}

/// `$name` references in `text` replaced by the Secret's values; unknown names are left as written.
pub fn substitute(text: &str, secret: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let len = after
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(after.len());
        let name = &after[..len];
        match secret.get(name) {
            Some(value) if !name.is_empty() => out.push_str(value),
            _ => {
                out.push('$');
                out.push_str(name);
            }
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// Whether `labels` match an equality selector (`a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-separated).
pub fn selector_matches(selector: &str, labels: &BTreeMap<String, String>) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .all(|term| {
            if let Some((key, value)) = term.split_once("!=") {
                labels.get(key.trim()).map(String::as_str) != Some(value.trim())
            } else if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
                labels.get(key.trim()).map(String::as_str) == Some(value.trim())
            } else if let Some(key) = term.strip_prefix('!') {
                !labels.contains_key(key.trim())
            } else {
                labels.contains_key(term)
            }
        })
}
