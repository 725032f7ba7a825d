//! Table tests of the notification pieces: configuration, subscriptions, triggers, rendering, payloads, and
//! delivery against a fake sender.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::config::{Config, Service, selector_matches, substitute};
use super::deliver::{self, RetryPolicy, SendError, Sender};
use super::dispatch::{self, trigger_name};
use super::payload::{self, Request};
use super::render;
use super::subscriptions::{self, Destination};

fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const WEBHOOK_CONFIG: &str = "url: http://hooks.example:8080/base/
headers:
- name: X-Token
  value: $hook-token
basicAuth:
  username: sluice
  password: $hook-password
";

fn config() -> Config {
    Config::parse(
        &map(&[
            ("service.webhook.hooks", WEBHOOK_CONFIG),
            (
                "service.slack",
                "token: $slack-token\napiURL: http://slack.example/api/\nusername: rollouts\nicon: ':rocket:'",
            ),
            ("trigger.on-rollout-step-completed", "- send: [step-completed]"),
            (
                "trigger.on-rollout-paused",
                "- send: [paused]\n  when: rollout.spec.replicas > 2",
            ),
            (
                "trigger.on-rollout-completed",
                "- send: [completed]\n- when: rollout.metadata.name == 'web'\n  send: [completed-web]",
            ),
            (
                "trigger.on-rollout-aborted",
                "- send: [aborted]\n  when: rollout.spec.replicas +",
            ),
            ("trigger.on-rollout-updated", "- send: [nowhere]"),
            ("trigger.on-broken", "- send: [x\n  when: ["),
            (
                "template.step-completed",
                "message: Rollout {{.rollout.metadata.name}} step {{add .rollout.status.currentStepIndex 1}} done\n\
                 webhook:\n  hooks:\n    method: POST\n    path: /steps/{{.rollout.metadata.name}}\n    \
                 body: '{\"rollout\": \"{{.rollout.metadata.name}}\", \"to\": \"{{.recipient}}\"}'",
            ),
            (
                "template.paused",
                "message: '{{.rollout.metadata.name}} paused for {{.recipient}}'",
            ),
            (
                "template.completed",
                "message: completed {{.rollout.metadata.name}}",
            ),
            ("template.completed-web", "message: web is done"),
            (
                "template.aborted",
                "message: aborted\nslack:\n  attachments: '[{\"title\": \"{{.rollout.metadata.name}}\"}]'",
            ),
            ("template.bad-syntax", "message: '{{.rollout.metadata.name'"),
        ]),
        &map(&[
            ("hook-token", "t0k3n"),
            ("hook-password", "s3cret"),
            ("slack-token", "xoxb-1"),
        ]),
    )
}

fn rollout(annotations: Value) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}, "annotations": annotations},
        "spec": {"replicas": 3},
        "status": {"currentStepIndex": 1}
    })
}

#[test]
fn trigger_names_follow_upstreams_kebab_case_of_the_reason() {
    for (reason, trigger) in [
        ("RolloutUpdated", "on-rollout-updated"),
        ("RolloutStepCompleted", "on-rollout-step-completed"),
        ("RolloutPaused", "on-rollout-paused"),
        ("RolloutResumed", "on-rollout-resumed"),
        ("RolloutCompleted", "on-rollout-completed"),
        ("RolloutAborted", "on-rollout-aborted"),
        ("AnalysisRunFailed", "on-analysis-run-failed"),
        ("AnalysisRunError", "on-analysis-run-error"),
        ("AnalysisRunRunning", "on-analysis-run-running"),
        ("ScalingReplicaSet", "on-scaling-replica-set"),
        ("NewReplicaSetCreated", "on-new-replica-set-created"),
        ("TrafficWeightUpdated", "on-traffic-weight-updated"),
        ("HPAReplicasUpdated", "on-hpa-replicas-updated"),
    ] {
        assert_eq!(trigger_name(reason), trigger, "{reason}");
    }
}

#[test]
fn secret_references_are_replaced_and_unknown_ones_kept() {
    let secret = map(&[("token", "abc"), ("a-b_c", "x"), ("p", "")]);
    for (text, want) in [
        ("$token", "abc"),
        ("Bearer $token", "Bearer abc"),
        ("$a-b_c/$token", "x/abc"),
        ("$missing", "$missing"),
        ("cost $5", "cost $5"),
        ("$", "$"),
        ("a$p.b", "a.b"),
        ("no reference", "no reference"),
    ] {
        assert_eq!(substitute(text, &secret), want, "{text}");
    }
}

#[test]
fn every_key_is_read_on_its_own_and_a_bad_one_is_kept_with_why() {
    let config = config();
    assert_eq!(config.triggers.len(), 5);
    assert!(
        config
            .error("trigger.on-broken")
            .unwrap()
            .contains("trigger on-broken")
    );
    let Some(Service::Webhook(hooks)) = config.services.get("hooks") else {
        panic!("webhook service: {:?}", config.services);
    };
    assert_eq!(hooks.url, "http://hooks.example:8080/base/");
    assert_eq!(hooks.headers[0].value, "t0k3n");
    assert_eq!(hooks.basic_auth.as_ref().unwrap().password, "s3cret");
    let Some(Service::Slack(slack)) = config.services.get("slack") else {
        panic!("slack service");
    };
    assert_eq!(
        (slack.token.as_str(), slack.api_url.as_str()),
        ("xoxb-1", "http://slack.example/api/")
    );
    let others = Config::parse(
        &map(&[
            ("service.email.ops", "host: smtp"),
            ("service.a.b.c", "x: 1"),
            ("service.webhook.bad", "url: [unclosed"),
            ("defaultTriggers", "[on-rollout-completed]"),
            ("defaultTriggers.slack", "- on-rollout-aborted"),
            ("template.empty", ""),
            ("unrelated", "anything"),
        ]),
        &BTreeMap::new(),
    );
    assert!(
        others
            .error("service.email.ops")
            .unwrap()
            .contains("'email' is not supported")
    );
    assert!(
        others
            .error("service.a.b.c")
            .unwrap()
            .contains("invalid service key")
    );
    assert_eq!(others.service_error("bad").unwrap().0, "service.webhook.bad");
    assert_eq!(others.default_triggers, ["on-rollout-completed"]);
    assert_eq!(others.service_default_triggers["slack"], ["on-rollout-aborted"]);
    assert!(others.templates.contains_key("empty"));
    assert_eq!(others.errors.len(), 3);
}

#[test]
fn a_service_error_quotes_the_reference_never_the_secret() {
    let config = Config::parse(
        &map(&[("service.webhook.leaky", "url: http://x\nbasicAuth: $password")]),
        &map(&[("password", "hunter2")]),
    );
    let error = config.error("service.webhook.leaky").unwrap();
    assert!(
        error.contains("$password") && !error.contains("hunter2"),
        "{error}"
    );
}

#[test]
fn equality_selectors_match_labels() {
    let labels = map(&[("app", "web"), ("tier", "front")]);
    for (selector, want) in [
        ("", true),
        ("app=web", true),
        ("app==web, tier=front", true),
        ("app=api", false),
        ("app!=api", true),
        ("tier", true),
        ("!tier", false),
        ("!db", true),
    ] {
        assert_eq!(selector_matches(selector, &labels), want, "{selector}");
    }
}

fn dest(service: &str, recipient: &str) -> Destination {
    Destination {
        service: service.into(),
        recipient: recipient.into(),
    }
}

#[test]
fn subscriptions_come_from_each_annotation_form_and_the_configmap() {
    let mut config = Config::parse(
        &map(&[
            ("defaultTriggers", "[on-rollout-completed]"),
            ("defaultTriggers.teams", "[on-rollout-aborted]"),
            (
                "subscriptions",
                "- recipients: [slack:ops]\n  selector: app=web\n- recipients: [slack:never]\n  selector: app=api",
            ),
        ]),
        &BTreeMap::new(),
    );
    let annotations = map(&[
        (
            "notifications.argoproj.io/subscribe.on-rollout-completed.slack",
            "a; b;;",
        ),
        (
            "notifications.argoproj.io/subscribe.on-rollout-completed.hooks",
            "",
        ),
        ("notifications.argoproj.io/subscribe.slack", "defaulted"),
        ("notifications.argoproj.io/subscribe.teams", "t"),
        (
            "notifications.argoproj.io/subscriptions",
            "- trigger: [on-rollout-completed, on-rollout-paused]\n  destinations:\n  - service: slack\n    recipients: [a, c]\n  - service: other",
        ),
        ("other.io/subscribe.on-rollout-completed.slack", "ignored"),
    ]);
    let labels = map(&[("app", "web")]);
    let (completed, problems) =
        subscriptions::destinations("on-rollout-completed", &annotations, &labels, &config);
    assert!(problems.is_empty());
    assert_eq!(
        completed,
        [
            dest("slack", "ops"),
            dest("hooks", ""),
            dest("slack", "a"),
            dest("slack", "b"),
            dest("slack", "defaulted"),
            dest("slack", "c"),
            dest("other", ""),
        ]
    );
    let (aborted, _) = subscriptions::destinations("on-rollout-aborted", &annotations, &labels, &config);
    assert_eq!(aborted, [dest("teams", "t")]);
    let (paused, _) = subscriptions::destinations("on-rollout-paused", &annotations, &labels, &config);
    assert_eq!(
        paused,
        [dest("slack", "a"), dest("slack", "c"), dest("other", "")]
    );
    config.subscriptions.clear();
    let broken = map(&[("notifications.argoproj.io/subscriptions", "- trigger: {")]);
    let (none, problems) = subscriptions::destinations("on-rollout-paused", &broken, &labels, &config);
    assert!(none.is_empty());
    assert!(
        problems[0].contains("notifications.argoproj.io/subscriptions"),
        "{problems:?}"
    );
    assert!(subscriptions::any(&broken) && !subscriptions::any(&map(&[("a", "b")])));
}

#[test]
fn templates_render_in_order_with_rollout_and_recipient() {
    let config = config();
    let ro = rollout(json!({}));
    let vars = render::variables(&ro, "hooks", "ops");
    let step = render::render(&config, &["step-completed".into()], &vars).unwrap();
    assert_eq!(step.message, "Rollout web step 2 done");
    assert_eq!(step.webhook["hooks"].path, "/steps/web");
    assert_eq!(step.webhook["hooks"].body, r#"{"rollout": "web", "to": "ops"}"#);
    let later = render::render(&config, &["paused".into(), "completed".into()], &vars).unwrap();
    assert_eq!(later.message, "completed web");
    let unknown = render::render(&config, &["nowhere".into()], &vars).unwrap_err();
    assert_eq!(unknown, "template 'nowhere' is not supported");
    let syntax = render::render(&config, &["bad-syntax".into()], &vars).unwrap_err();
    assert!(
        syntax.starts_with("template 'bad-syntax': failed to parse template"),
        "{syntax}"
    );
}

fn notification(message: &str) -> render::Notification {
    render::Notification {
        message: message.into(),
        ..Default::default()
    }
}

#[test]
fn webhook_requests_follow_upstream_defaults_and_overrides() {
    let config = config();
    let Some(Service::Webhook(hooks)) = config.services.get("hooks") else {
        panic!()
    };
    let plain = payload::webhook_request("hooks", hooks, &notification("hello"));
    assert_eq!(
        (plain.method.as_str(), plain.url.as_str(), plain.body.as_str()),
        ("GET", "http://hooks.example:8080/base/", "hello")
    );
    assert_eq!(
        plain.headers,
        [
            ("X-Token".to_string(), "t0k3n".to_string()),
            (
                "Authorization".to_string(),
                "Basic c2x1aWNlOnMzY3JldA==".to_string()
            ),
        ]
    );
    let mut own = notification("hello");
    own.webhook.insert(
        "hooks".into(),
        render::WebhookNotification {
            method: "post".into(),
            path: "/steps/web".into(),
            body: "{}".into(),
        },
    );
    let posted = payload::webhook_request("hooks", hooks, &own);
    assert_eq!(
        (posted.method.as_str(), posted.url.as_str(), posted.body.as_str()),
        ("POST", "http://hooks.example:8080/base/steps/web", "{}")
    );
    let other = payload::webhook_request("other", hooks, &own);
    assert_eq!((other.method.as_str(), other.body.as_str()), ("GET", "hello"));
    assert_eq!(format!("{posted:?}"), "POST http://hooks.example:8080");
}

#[test]
fn slack_requests_post_the_message_payload() {
    let config = config();
    let Some(Service::Slack(slack)) = config.services.get("slack") else {
        panic!()
    };
    let mut n = notification("aborted");
    n.slack = Some(render::SlackNotification {
        attachments: r#"[{"title": "web"}]"#.into(),
        ..Default::default()
    });
    let request = payload::slack_request(slack, &n, "#ops").unwrap();
    assert_eq!(request.url, "http://slack.example/api/chat.postMessage");
    assert!(request.slack_answer);
    assert!(
        request
            .headers
            .contains(&("Authorization".into(), "Bearer xoxb-1".into()))
    );
    let body: Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(
        body,
        json!({"channel": "#ops", "text": "aborted", "username": "rollouts", "icon_emoji": ":rocket:",
               "attachments": [{"title": "web"}]})
    );
    let mut hook = slack.clone();
    hook.token.clear();
    hook.webhook_url = "https://hooks.slack.example/services/T/B/secret".into();
    hook.icon = "https://img.example/i.png".into();
    let posted = payload::slack_request(&hook, &notification("hi"), "").unwrap();
    assert_eq!(posted.url, hook.webhook_url);
    assert!(!posted.slack_answer);
    let body: Value = serde_json::from_str(&posted.body).unwrap();
    assert_eq!(
        body,
        json!({"text": "hi", "username": "rollouts", "icon_url": "https://img.example/i.png"})
    );
    assert_eq!(format!("{posted:?}"), "POST https://hooks.slack.example");
    n.slack.as_mut().unwrap().blocks = "not json".into();
    let bad = payload::slack_request(slack, &n, "#ops").unwrap_err();
    assert!(bad.starts_with("failed to unmarshal blocks 'not json'"), "{bad}");
    hook.webhook_url.clear();
    assert!(payload::slack_request(&hook, &n, "").is_err());
}

fn subscribed(trigger: &str, service: &str, recipient: &str) -> Value {
    rollout(json!({ format!("notifications.argoproj.io/subscribe.{trigger}.{service}"): recipient }))
}

#[test]
fn an_event_sends_what_its_trigger_and_subscriptions_say() {
    let config = config();
    let step = dispatch::plan(
        &config,
        &subscribed("on-rollout-step-completed", "hooks", ""),
        "RolloutStepCompleted",
    );
    assert!(step.problems.is_empty(), "{:?}", step.problems);
    assert_eq!(step.deliveries.len(), 1);
    let d = &step.deliveries[0];
    assert_eq!(
        (d.trigger.as_str(), d.service.as_str()),
        ("on-rollout-step-completed", "hooks")
    );
    assert_eq!(d.request.url, "http://hooks.example:8080/base/steps/web");
    assert_eq!(d.request.body, r#"{"rollout": "web", "to": ""}"#);
    // Each condition that holds sends its own templates.
    let completed = dispatch::plan(
        &config,
        &subscribed("on-rollout-completed", "hooks", ""),
        "RolloutCompleted",
    );
    let bodies: Vec<&str> = completed
        .deliveries
        .iter()
        .map(|d| d.request.body.as_str())
        .collect();
    assert_eq!(bodies, ["completed web", "web is done"]);
    // `when` is evaluated over the Rollout.
    let paused = dispatch::plan(
        &config,
        &subscribed("on-rollout-paused", "slack", "a;b"),
        "RolloutPaused",
    );
    assert_eq!(paused.deliveries.len(), 2);
    let mut small = subscribed("on-rollout-paused", "slack", "a");
    small["spec"]["replicas"] = json!(1);
    let quiet = dispatch::plan(&config, &small, "RolloutPaused");
    assert!(quiet.deliveries.is_empty() && quiet.problems.is_empty());
    // Not subscribed: nothing, and nothing to complain about.
    let none = dispatch::plan(
        &config,
        &subscribed("on-rollout-paused", "slack", "a"),
        "RolloutResumed",
    );
    assert!(none.deliveries.is_empty() && none.problems.is_empty());
}

#[test]
fn bad_configuration_is_a_problem_of_the_notifications_it_reaches() {
    let config = config();
    for (trigger, reason, service, want) in [
        (
            "on-rollout-aborted",
            "RolloutAborted",
            "slack",
            "trigger 'on-rollout-aborted': could not evaluate",
        ),
        (
            "on-rollout-updated",
            "RolloutUpdated",
            "hooks",
            "template 'nowhere' is not supported",
        ),
        (
            "on-rollout-resumed",
            "RolloutResumed",
            "hooks",
            "trigger 'on-rollout-resumed' is not configured",
        ),
        (
            "on-broken",
            "Broken",
            "hooks",
            "trigger 'on-broken' could not be read: failed to unmarshal",
        ),
        (
            "on-rollout-completed",
            "RolloutCompleted",
            "pager",
            "notification service 'pager' is not supported",
        ),
    ] {
        let outcome = dispatch::plan(&config, &subscribed(trigger, service, ""), reason);
        assert!(outcome.deliveries.is_empty(), "{trigger}");
        assert!(
            outcome.problems.iter().any(|p| p.contains(want)),
            "{trigger}: {:?}",
            outcome.problems
        );
    }
}

/// Answers from a script, recording each request.
struct Scripted {
    answers: Mutex<Vec<Result<(), SendError>>>,
    seen: Mutex<Vec<Request>>,
}

impl Sender for Scripted {
    fn send<'a>(
        &'a self,
        request: &'a Request,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SendError>> + Send + 'a>> {
        self.seen.lock().unwrap().push(request.clone());
        let next = {
            let mut answers = self.answers.lock().unwrap();
            if answers.is_empty() {
                Ok(())
            } else {
                answers.remove(0)
            }
        };
        Box::pin(async move { next })
    }
}

fn failure(retry: bool) -> Result<(), SendError> {
    Err(SendError {
        message: "the receiver answered HTTP 500".into(),
        retry,
    })
}

fn delivery() -> dispatch::Delivery {
    let config = config();
    dispatch::plan(
        &config,
        &subscribed("on-rollout-step-completed", "hooks", ""),
        "RolloutStepCompleted",
    )
    .deliveries
    .remove(0)
}

fn counter(metrics: &crate::metrics::Metrics, name: &str) -> String {
    metrics
        .render()
        .lines()
        .filter(|l| l.starts_with(name))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_failing_receiver_gets_the_notification_after_retries() {
    let policy = RetryPolicy {
        attempts: 5,
        first_wait: Duration::from_millis(1),
    };
    let metrics = crate::metrics::Metrics::new();
    let sender = Scripted {
        answers: Mutex::new(vec![failure(true), failure(true)]),
        seen: Mutex::default(),
    };
    assert!(deliver::deliver(&sender, &delivery(), policy, &metrics).await);
    assert_eq!(sender.seen.lock().unwrap().len(), 3);
    assert_eq!(
        counter(&metrics, "notification_send_success"),
        r#"notification_send_success_total{trigger="on-rollout-step-completed",service="hooks"} 1"#
    );
    // A refusal that retrying cannot change is given up at once; a receiver that never recovers after the
    // attempts run out.
    let refused = Scripted {
        answers: Mutex::new(vec![failure(false)]),
        seen: Mutex::default(),
    };
    assert!(!deliver::deliver(&refused, &delivery(), policy, &metrics).await);
    assert_eq!(refused.seen.lock().unwrap().len(), 1);
    let down = Scripted {
        answers: Mutex::new((0..9).map(|_| failure(true)).collect()),
        seen: Mutex::default(),
    };
    assert!(!deliver::deliver(&down, &delivery(), policy, &metrics).await);
    assert_eq!(down.seen.lock().unwrap().len(), 5);
    assert_eq!(
        counter(&metrics, "notification_send_error"),
        r#"notification_send_error_total{trigger="on-rollout-step-completed",service="hooks"} 2"#
    );
}

#[tokio::test]
async fn the_queue_delivers_in_the_background_and_drops_when_full() {
    let metrics = crate::metrics::Metrics::new();
    let sender = Arc::new(Scripted {
        answers: Mutex::default(),
        seen: Mutex::default(),
    });
    let queue = deliver::Queue::start(sender.clone(), metrics.clone(), RetryPolicy::default());
    assert!(queue.enqueue(delivery()));
    for _ in 0..100 {
        if !sender.seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sender.seen.lock().unwrap().len(), 1);
    // A queue whose worker is gone drops with a count instead of waiting.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(rx);
    let closed = deliver::Queue::for_tests(tx, metrics.clone());
    assert!(!closed.enqueue(delivery()));
    assert_eq!(
        counter(&metrics, "sluice_notification_dropped"),
        "sluice_notification_dropped_total 1"
    );
}

#[test]
fn retry_waits_double_and_answers_are_judged_as_upstream() {
    let policy = RetryPolicy::default();
    let waits: Vec<u64> = (1..=4).map(|n| policy.wait(n).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 8]);
    let webhook = delivery().request;
    assert!(deliver::judge(&webhook, 204, b"").is_ok());
    for (status, retry) in [(500, true), (503, true), (429, true), (404, false), (401, false)] {
        assert_eq!(
            deliver::judge(&webhook, status, b"").unwrap_err().retry,
            retry,
            "{status}"
        );
    }
    let mut slack = webhook.clone();
    slack.slack_answer = true;
    assert!(deliver::judge(&slack, 200, br#"{"ok": true}"#).is_ok());
    let refused = deliver::judge(&slack, 200, br#"{"ok": false, "error": "channel_not_found"}"#).unwrap_err();
    assert_eq!(
        (refused.message.as_str(), refused.retry),
        ("Slack refused the message: channel_not_found", false)
    );
    assert!(
        deliver::judge(&slack, 200, br#"{"ok": false, "error": "ratelimited"}"#)
            .unwrap_err()
            .retry
    );
}
