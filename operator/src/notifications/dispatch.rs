//! From a Rollout event to the requests it sends, without I/O: the event's reason names the trigger
//! (`RolloutStepCompleted` → `on-rollout-step-completed`, as upstream's `translateReasonToTrigger`), the
//! Rollout's subscriptions name the destinations, each condition of the trigger whose `when` holds names the
//! templates, and each destination's service turns the rendered notification into a request.
//!
//! Upstream sends the first condition's templates whenever any condition holds; here each condition that holds
//! sends its own templates, which is what a trigger with several conditions is written for.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::Value;

use super::config::{CONFIG_MAP, Config};
use super::payload::{self, Request};
use super::render;
use super::subscriptions::{self, Destination};

/// One notification to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The trigger that fired.
    pub trigger: String,
    /// The service's name.
    pub service: String,
    /// The request.
    pub request: Request,
}

/// What one event sends, and what stopped part of it (each a sentence for a log line and a Warning event).
#[derive(Debug, Default)]
pub struct Outcome {
    /// The requests, in order.
    pub deliveries: Vec<Delivery>,
    /// Configuration problems met on the way.
    pub problems: Vec<String>,
}

/// Upstream's trigger name of an event reason: `on-` and the reason in kebab case, with upstream's two rules
/// (`(.)([A-Z][a-z]+)` then `([a-z0-9])([A-Z])`), so that `HPAReplicasUpdated` reads `on-hpa-replicas-updated`.
pub fn trigger_name(reason: &str) -> String {
    static FIRST_CAP: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new("(.)([A-Z][a-z]+)").expect("valid pattern"));
    static ALL_CAP: LazyLock<regex::Regex> =
        LazyLock::new(|| regex::Regex::new("([a-z0-9])([A-Z])").expect("valid pattern"));
    let once = FIRST_CAP.replace_all(reason, "${1}-${2}");
    let twice = ALL_CAP.replace_all(&once, "${1}-${2}");
    format!("on-{}", twice.to_lowercase())
}

/// The deliveries of the event `reason` on `rollout` (the Rollout as JSON).
pub fn plan(config: &Config, rollout: &Value, reason: &str) -> Outcome {
    let trigger = trigger_name(reason);
    let mut outcome = Outcome::default();
    let annotations = string_map(&rollout["metadata"]["annotations"]);
    let labels = string_map(&rollout["metadata"]["labels"]);
    let (destinations, problems) = subscriptions::destinations(&trigger, &annotations, &labels, config);
    outcome.problems.extend(problems);
    if destinations.is_empty() {
        return outcome;
    }
    let Some(conditions) = config.triggers.get(&trigger) else {
        outcome
            .problems
            .push(match config.error(&format!("trigger.{trigger}")) {
                Some(e) => format!("trigger '{trigger}' could not be read: {e}"),
                None => format!("trigger '{trigger}' is not configured in ConfigMap {CONFIG_MAP}"),
            });
        return outcome;
    };
    let mut condition_vars = serde_json::Map::new();
    condition_vars.insert("rollout".into(), rollout.clone());
    for condition in conditions {
        let holds = condition.when.trim().is_empty()
            || match sluice_analysis::condition::predicate(&condition.when, &condition_vars) {
                Ok(holds) => holds,
                Err(e) => {
                    outcome.problems.push(format!("trigger '{trigger}': {e}"));
                    false
                }
            };
        if !holds {
            continue;
        }
        for destination in &destinations {
            match deliver_to(config, rollout, &condition.send, destination) {
                Ok(request) => outcome.deliveries.push(Delivery {
                    trigger: trigger.clone(),
                    service: destination.service.clone(),
                    request,
                }),
                Err(e) => outcome.problems.push(format!(
                    "trigger '{trigger}', service '{}': {e}",
                    destination.service
                )),
            }
        }
    }
    outcome
}

/// The request of one destination for the templates of one condition.
fn deliver_to(
    config: &Config,
    rollout: &Value,
    templates: &[String],
    destination: &Destination,
) -> Result<Request, String> {
    let Some(service) = config.services.get(&destination.service) else {
        return Err(match config.service_error(&destination.service) {
            Some((key, e)) => format!("{key} could not be read: {e}"),
            None => format!("notification service '{}' is not supported", destination.service),
        });
    };
    let vars = render::variables(rollout, &destination.service, &destination.recipient);
    let notification = render::render(config, templates, &vars)?;
    payload::request(
        &destination.service,
        service,
        &notification,
        &destination.recipient,
    )
}

/// A JSON object of strings (labels, annotations) as a map; anything else is empty.
fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}
