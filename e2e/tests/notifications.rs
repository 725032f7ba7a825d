//! Notifications end to end: the ConfigMap and Secret as Argo Rollouts reads them, a canary Rollout subscribed
//! through its annotations, walked through an update (step, pause, promote, complete) and an aborted one, and an
//! HTTP receiver on 127.0.0.1 standing in for a webhook and for Slack's Web API.

use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use serde_json::{Value, json};
use sluice_e2e::{
    harness::{Operator, TestNamespace, install_crds},
    receiver::{Received, Receiver},
    rollouts::{healthy, patch_status, phase, promote, set_image, step, wait_rollout},
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");

fn configuration(receiver: &str) -> String {
    format!(
        r##"apiVersion: v1
kind: Secret
metadata:
  name: argo-rollouts-notification-secret
stringData:
  hook-token: t0k3n
  hook-password: s3cret
  slack-token: xoxb-e2e
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: argo-rollouts-notification-configmap
data:
  service.webhook.receiver: |
    url: {receiver}/hooks/
    headers:
    - name: X-Token
      value: $hook-token
    - name: Content-Type
      value: application/json
    basicAuth:
      username: sluice
      password: $hook-password
  service.slack: |
    token: $slack-token
    apiURL: {receiver}/api/
    username: rollouts
    icon: ":rocket:"
  trigger.on-rollout-step-completed: |
    - send: [step-completed]
  trigger.on-rollout-paused: |
    - send: [paused]
  trigger.on-rollout-completed: |
    - send: [completed]
  trigger.on-rollout-aborted: |
    - send: [rollout-aborted]
  trigger.on-rollout-resumed: |
    - send: [broken]
  template.broken: |
    message: [unclosed
  template.step-completed: |
    webhook:
      receiver:
        method: POST
        path: /step-completed/{{{{.rollout.metadata.name}}}}/{{{{range .rollout.spec.template.spec.containers}}}}{{{{.image}}}}{{{{end}}}}/{{{{.rollout.status.currentStepIndex}}}}
        body: |
          {{"rollout": "{{{{.rollout.metadata.name}}}}", "step": {{{{add .rollout.status.currentStepIndex 1}}}}}}
  template.paused: |
    webhook:
      receiver:
        method: POST
        path: /paused/{{{{.rollout.metadata.name}}}}/{{{{range .rollout.spec.template.spec.containers}}}}{{{{.image}}}}{{{{end}}}}
        body: |
          {{"rollout": "{{{{.rollout.metadata.name}}}}", "namespace": "{{{{.rollout.metadata.namespace}}}}", "steps": {{{{len .rollout.spec.strategy.canary.steps}}}}}}
  template.completed: |
    message: Rollout {{{{.rollout.metadata.name}}}} has been completed.
    webhook:
      receiver:
        method: PUT
        path: /completed/{{{{.rollout.metadata.name}}}}/{{{{range .rollout.spec.template.spec.containers}}}}{{{{.image}}}}{{{{end}}}}
        body: "{{{{.rollout.metadata.name}}}} completed"
  template.rollout-aborted: |
    message: Rollout {{{{.rollout.metadata.name}}}} has been aborted.
    slack:
      attachments: |
        [{{"title": "{{{{.rollout.metadata.name}}}}", "color": "#E01E5A"}}]
"##
    )
}

const ROLLOUT: &str = r##"apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: notify
  annotations:
    notifications.argoproj.io/subscribe.on-rollout-step-completed.receiver: ""
    notifications.argoproj.io/subscribe.on-rollout-paused.receiver: ""
    notifications.argoproj.io/subscribe.on-rollout-completed.receiver: ""
    notifications.argoproj.io/subscribe.on-rollout-aborted.slack: "#rollouts"
    notifications.argoproj.io/subscribe.on-rollout-resumed.receiver: ""
    notifications.argoproj.io/subscribe.on-rollout-updated.receiver: ""
spec:
  replicas: 2
  revisionHistoryLimit: 3
  selector:
    matchLabels: {app: notify}
  template:
    metadata:
      labels: {app: notify}
    spec:
      containers:
      - name: app
        image: app:v1
  strategy:
    canary:
      steps:
      - setWeight: 50
      - pause: {}
"##;

/// The one delivered (200) request of `path`; fails on a repeat.
fn delivered_once(receiver: &Receiver, path: &str) -> Received {
    let ok: Vec<Received> = receiver
        .to_path(path)
        .into_iter()
        .filter(|r| r.status == 200)
        .collect();
    assert_eq!(ok.len(), 1, "{path} delivered {} times: {ok:?}", ok.len());
    ok[0].clone()
}

fn json_body(r: &Received) -> Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{} body {:?}: {e}", r.path, r.body))
}

#[tokio::test]
async fn rollout_events_notify_webhook_and_slack_subscribers_once_each_with_retries() {
    let ns = TestNamespace::new(SUPERVISOR, "notifications")
        .await
        .expect("namespace");
    install_crds(&ns.info, &ns.client).await.expect("CRDs");
    let op =
        Operator::start_with_env(&ns, &[("SLUICE_NOTIFICATIONS_NAMESPACE", &ns.name)]).expect("operator");
    let receiver = Receiver::start().await.expect("receiver");
    ns.apply(&configuration(&receiver.url())).expect("configuration");
    ns.apply(ROLLOUT).expect("rollout");
    wait_rollout(&ns, "notify", "Healthy", 60, healthy).await;

    // The pause notification fails twice and arrives on the third attempt.
    let paused_path = "/hooks/paused/notify/app:v2";
    receiver.fail_first(paused_path, 2);
    set_image(&ns, "notify", "app:v2");
    wait_rollout(&ns, "notify", "paused at the pause step", 60, |r| {
        step(r) == 1 && phase(r).0 == "Paused"
    })
    .await;
    let wait = Duration::from_secs(30);
    let attempts = receiver.wait_delivered(paused_path, wait).await.unwrap();
    let statuses: Vec<u16> = attempts.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 200]);
    let paused = delivered_once(&receiver, paused_path);
    assert_eq!(paused.method, "POST");
    assert_eq!(paused.headers["authorization"], "Basic c2x1aWNlOnMzY3JldA==");
    assert_eq!(paused.headers["x-token"], "t0k3n");
    assert_eq!(paused.headers["content-type"], "application/json");
    assert_eq!(
        json_body(&paused),
        json!({"rollout": "notify", "namespace": ns.name, "steps": 2})
    );
    assert!(
        attempts
            .iter()
            .all(|r| r.body == paused.body && r.headers == paused.headers)
    );

    promote(&ns, "notify");
    wait_rollout(&ns, "notify", "Healthy on v2", 60, healthy).await;
    let completed_path = "/hooks/completed/notify/app:v2";
    receiver.wait_delivered(completed_path, wait).await.unwrap();
    let completed = delivered_once(&receiver, completed_path);
    assert_eq!(
        (completed.method.as_str(), completed.body.trim()),
        ("PUT", "notify completed")
    );
    for (index, number) in [(0, 1), (1, 2)] {
        let path = format!("/hooks/step-completed/notify/app:v2/{index}");
        receiver.wait_delivered(&path, wait).await.unwrap();
        let step_done = delivered_once(&receiver, &path);
        assert_eq!(step_done.method, "POST");
        assert_eq!(
            json_body(&step_done),
            json!({"rollout": "notify", "step": number})
        );
    }

    // A second update is aborted at its pause: Slack's Web API gets the message with the bot token.
    set_image(&ns, "notify", "app:v3");
    wait_rollout(&ns, "notify", "paused on v3", 60, |r| {
        step(r) == 1 && phase(r).0 == "Paused"
    })
    .await;
    patch_status(&ns, "notify", r#"{"status":{"abort":true}}"#);
    wait_rollout(&ns, "notify", "Degraded after abort", 60, |r| {
        phase(r).0 == "Degraded"
    })
    .await;
    receiver
        .wait_delivered("/api/chat.postMessage", wait)
        .await
        .unwrap();
    let slack = delivered_once(&receiver, "/api/chat.postMessage");
    assert_eq!(slack.method, "POST");
    assert_eq!(slack.headers["authorization"], "Bearer xoxb-e2e");
    assert_eq!(slack.headers["content-type"], "application/json; charset=utf-8");
    assert_eq!(
        json_body(&slack),
        json!({
            "channel": "#rollouts",
            "text": "Rollout notify has been aborted.",
            "username": "rollouts",
            "icon_emoji": ":rocket:",
            "attachments": [{"title": "notify", "color": "#E01E5A"}]
        })
    );

    // A subscription to a trigger the ConfigMap lacks, and one whose template does not read, are told on the
    // Rollout (and logged); nothing is sent for them and every other notification went out.
    let events: kube::Api<Event> = ns.api();
    for (reason, expected) in [
        ("RolloutUpdated", "trigger 'on-rollout-updated' is not configured"),
        (
            "RolloutResumed",
            "template 'broken' could not be read: failed to unmarshal template broken",
        ),
    ] {
        let what = format!("a NotificationFailed warning for {reason}");
        sluice_e2e::cluster::wait_for(&what, wait, || async {
            let found = events
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .any(|e| {
                    e.reason.as_deref() == Some("NotificationFailed")
                        && e.type_.as_deref() == Some("Warning")
                        && e.message.as_deref().is_some_and(|m| {
                            m.starts_with(&format!("Notification for {reason} not sent:"))
                                && m.contains(expected)
                        })
                });
            if found { Ok(()) } else { anyhow::bail!("not yet") }
        })
        .await
        .unwrap();
    }
    let log = op.log();
    assert!(
        log.lines()
            .any(|l| l.contains("notification configuration key ignored") && l.contains("template.broken")),
        "the malformed key is logged"
    );
    assert!(
        !log.contains("s3cret") && !log.contains("xoxb-e2e") && !log.contains("t0k3n"),
        "no secret in the log"
    );

    // Nothing arrives twice, even after the operator has looked at the Rollout again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut delivered: Vec<String> = receiver
        .received()
        .into_iter()
        .filter(|r| r.status == 200)
        .map(|r| r.path)
        .collect();
    delivered.sort();
    let mut unique = delivered.clone();
    unique.dedup();
    assert_eq!(delivered, unique, "a notification arrived twice");
    let metrics = op.metrics().await.unwrap();
    // Two pauses (v2 and v3), each delivered once however many attempts it took.
    assert!(
        metrics
            .contains(r#"notification_send_success_total{trigger="on-rollout-paused",service="receiver"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"notification_send_success_total{trigger="on-rollout-aborted",service="slack"} 1"#),
        "{metrics}"
    );
    let per_rollout = metrics
        .lines()
        .filter(|l| l.starts_with("notification_") && l.contains("notify"))
        .count();
    assert_eq!(per_rollout, 0, "no per-Rollout labels on notification metrics");
}
