//! Who a Rollout's notifications go to, as upstream reads it from the Rollout's annotations:
//!
//! - `notifications.argoproj.io/subscribe.<trigger>.<service>: <recipient>;<recipient>` (an empty value is one
//!   empty recipient, what a webhook needs);
//! - `notifications.argoproj.io/subscribe.<service>: ...`: the service's default triggers, else
//!   `defaultTriggers`;
//! - `notifications.argoproj.io/subscriptions`: a YAML list of `{trigger: [..], destinations: [{service,
//!   recipients: [..]}]}`;
//!
//! and from the ConfigMap's `subscriptions` for Rollouts whose labels match.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::config::{Config, selector_matches};

/// The annotation prefix of subscriptions.
pub const PREFIX: &str = "notifications.argoproj.io/";

/// One place a notification goes to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Destination {
    /// The service's name.
    pub service: String,
    /// The recipient (a Slack channel; empty for a webhook).
    pub recipient: String,
}

/// One entry of the `subscriptions` annotation.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Subscription {
    trigger: Vec<String>,
    destinations: Vec<SubscriptionDestination>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SubscriptionDestination {
    service: String,
    recipients: Vec<String>,
}

/// The destinations of `trigger` for a Rollout with these annotations and labels, in order, without repeats;
/// and what could not be read (a malformed `subscriptions` annotation).
pub fn destinations(
    trigger: &str,
    annotations: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
    config: &Config,
) -> (Vec<Destination>, Vec<String>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let mut add = |triggers: &[String], service: &str, recipient: &str| {
        let dest = Destination {
            service: service.to_string(),
            recipient: recipient.to_string(),
        };
        if triggers.iter().any(|t| t == trigger) && !found.contains(&dest) {
            found.push(dest);
        }
    };
    for global in &config.subscriptions {
        if !selector_matches(&global.selector, labels) {
            continue;
        }
        let triggers = if global.triggers.is_empty() {
            &config.default_triggers
        } else {
            &global.triggers
        };
        for recipient in &global.recipients {
            let (service, to) = recipient.split_once(':').unwrap_or((recipient, ""));
            add(triggers, service, to);
        }
    }
    for (key, value) in annotations {
        let Some(rest) = key.strip_prefix(PREFIX) else {
            continue;
        };
        if let Some(spec) = rest.strip_prefix("subscribe.") {
            let parts: Vec<&str> = spec.split('.').collect();
            let (trigger_named, service) = match parts[..] {
                [service] => (None, service),
                [trigger, service, ..] => (Some(trigger), service),
                [] => continue,
            };
            let triggers = match trigger_named {
                Some(t) => vec![t.to_string()],
                None => config
                    .service_default_triggers
                    .get(service)
                    .unwrap_or(&config.default_triggers)
                    .clone(),
            };
            for recipient in recipients(value) {
                add(&triggers, service, &recipient);
            }
        } else if rest == "subscriptions" {
            match serde_yaml::from_str::<Option<Vec<Subscription>>>(value) {
                Ok(subscriptions) => {
                    for sub in subscriptions.unwrap_or_default() {
                        let triggers = if sub.trigger.is_empty() {
                            config.default_triggers.clone()
                        } else {
                            sub.trigger
                        };
                        for dest in &sub.destinations {
                            // A webhook needs no recipient: a destination that lists none still gets sent to.
                            let listed = if dest.recipients.is_empty() {
                                vec![String::new()]
                            } else {
                                dest.recipients.clone()
                            };
                            for recipient in &listed {
                                add(&triggers, &dest.service, recipient.trim());
                            }
                        }
                    }
                }
                Err(e) => problems.push(format!("annotation {key} is not a list of subscriptions: {e}")),
            }
        }
    }
    (found, problems)
}

/// `a;b; c` → `[a, b, c]`; an empty value is one empty recipient (a webhook subscription).
fn recipients(value: &str) -> Vec<String> {
    if value.is_empty() {
        return vec![String::new()];
    }
    value
        .split(';')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(String::from)
        .collect()
}

/// Whether a Rollout with these annotations may be subscribed to anything (a cheap check before any work).
pub fn any(annotations: &BTreeMap<String, String>) -> bool {
    annotations.keys().any(|k| {
        k.strip_prefix(PREFIX)
            .is_some_and(|rest| rest.starts_with("subscribe.") || rest == "subscriptions")
    })
}
