//! Rendering a trigger's templates into one notification, as upstream's templates service does: each
//! template's Go templates run on the variables (`rollout`, `recipient`, `serviceType`), in the order the trigger
//! lists them, a later template's non-empty message and its service fields replacing an earlier one's.

use std::collections::BTreeMap;

use serde_json::Value;

use super::config::{Config, Template};

/// A rendered notification.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notification {
    /// The message.
    pub message: String,
    /// Slack's rendered fields, when a template has any.
    pub slack: Option<SlackNotification>,
    /// Rendered requests by webhook service name.
    pub webhook: BTreeMap<String, WebhookNotification>,
}

/// Slack's rendered fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlackNotification {
    /// The sender's name.
    pub username: String,
    /// The sender's icon.
    pub icon: String,
    /// A JSON array of attachments.
    pub attachments: String,
    /// A JSON array of blocks.
    pub blocks: String,
}

/// A rendered webhook request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookNotification {
    /// The method as the template gives it (empty: the service's default).
    pub method: String,
    /// The path appended to the service's URL.
    pub path: String,
    /// The body.
    pub body: String,
}

/// The variables of a template: `rollout` (the Rollout as JSON), `recipient` and `serviceType` (the service's
/// name, as upstream sets it).
pub fn variables(rollout: &Value, service: &str, recipient: &str) -> serde_json::Map<String, Value> {
    let mut vars = serde_json::Map::new();
    vars.insert("rollout".into(), rollout.clone());
    vars.insert("recipient".into(), Value::String(recipient.into()));
    vars.insert("serviceType".into(), Value::String(service.into()));
    vars
}

/// Renders the named templates in order; a name the configuration lacks, or a template that does not parse or
/// run, is an error naming it.
pub fn render(
    config: &Config,
    names: &[String],
    vars: &serde_json::Map<String, Value>,
) -> Result<Notification, String> {
    let mut notification = Notification::default();
    for name in names {
        let Some(template) = config.templates.get(name) else {
            return Err(match config.error(&format!("template.{name}")) {
                Some(e) => format!("template '{name}' could not be read: {e}"),
                None => format!("template '{name}' is not supported"),
            });
        };
        apply(template, vars, &mut notification).map_err(|e| format!("template '{name}': {e}"))?;
    }
    Ok(notification)
}

/// Renders one template over what the earlier ones rendered.
fn apply(
    template: &Template,
    vars: &serde_json::Map<String, Value>,
    into: &mut Notification,
) -> Result<(), String> {
    let run = |text: &str| sluice_gitops::appset_render::go_template(text, vars);
    let message = run(&template.message)?;
    if !message.is_empty() {
        into.message = message;
    }
    if let Some(slack) = &template.slack {
        into.slack = Some(SlackNotification {
            username: run(&slack.username)?,
            icon: run(&slack.icon)?,
            attachments: run(&slack.attachments)?,
            blocks: run(&slack.blocks)?,
        });
    }
    for (service, request) in &template.webhook {
        let rendered = WebhookNotification {
            method: request.method.clone(),
            path: run(&request.path)?,
            body: run(&request.body)?,
        };
        into.webhook.insert(service.clone(), rendered);
    }
    Ok(())
}
