//! What tools built for Argo Rollouts read and send, end to end: the status and events a refused pod template
//! leaves, Argo CD's promote-full action on an aborted rollout, the order of the events of a first deploy, the
//! events of a timed pause, a feature Sluice does not run yet, and a TLS-only VirtualService named with a route
//! list.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::anyhow;
use k8s_openapi::{api::apps::v1::ReplicaSet, jiff::Timestamp};
use kube::{
    Api, ResourceExt,
    api::{DynamicObject, ListParams},
};
use serde_json::Value;
use sluice_crds::rollout::{Rollout, RolloutCondition};
use sluice_e2e::{
    cluster::wait_for,
    harness::{Operator, TestNamespace, namespace_with_operator},
    rollouts::{canary_rollout_yaml, healthy, patch_status, phase, promote, set_image, step, wait_rollout},
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");
const HASH: &str = "rollouts-pod-template-hash";

async fn setup(test: &str) -> (TestNamespace, Operator) {
    namespace_with_operator(SUPERVISOR, test, &[]).await
}

/// (spec.replicas, status.availableReplicas, first container's image) of the app's ReplicaSets by hash.
async fn replica_sets(ns: &TestNamespace, app: &str) -> BTreeMap<String, (i32, i32, String)> {
    let rss: Api<ReplicaSet> = ns.api();
    rss.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|rs| {
            let hash = rs.labels().get(HASH).cloned().unwrap_or_default();
            let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            let avail = rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
            let image = rs
                .spec
                .and_then(|s| s.template)
                .and_then(|t| t.spec)
                .and_then(|s| s.containers.into_iter().next())
                .and_then(|c| c.image)
                .unwrap_or_default();
            (hash, (spec, avail, image))
        })
        .collect()
}

/// The core/v1 Events of an object, oldest first (by eventTime, then firstTimestamp).
fn events(ns: &TestNamespace, name: &str) -> Vec<Value> {
    let out = ns
        .kubectl(
            &[
                "get",
                "events",
                &format!("--field-selector=involvedObject.name={name}"),
                "-o",
                "json",
            ],
            None,
        )
        .unwrap();
    let list: Value = serde_json::from_str(&out).unwrap();
    let mut items: Vec<Value> = list["items"].as_array().cloned().unwrap_or_default();
    let at = |e: &Value| -> Option<Timestamp> {
        e["eventTime"]
            .as_str()
            .or_else(|| e["firstTimestamp"].as_str())
            .and_then(|t| t.parse().ok())
    };
    items.sort_by_key(|e| at(e));
    items
}

fn reason(e: &Value) -> &str {
    e["reason"].as_str().unwrap_or_default()
}

fn message(e: &Value) -> &str {
    e["message"].as_str().unwrap_or_default()
}

/// Waits for an event of `name` with this reason whose message satisfies `check`, and returns it.
async fn wait_event(ns: &TestNamespace, name: &str, want: &str, check: impl Fn(&str) -> bool) -> Value {
    let mut found = None;
    wait_for(
        &format!("event {want} of {name}"),
        Duration::from_secs(20),
        || {
            let all = events(ns, name);
            found = all
                .iter()
                .find(|e| reason(e) == want && check(message(e)))
                .cloned();
            let result = match found {
                Some(_) => Ok(()),
                None => Err(anyhow!("events: {:#?}", summary(&all))),
            };
            async move { result }
        },
    )
    .await
    .unwrap();
    found.unwrap()
}

/// (reason, message) of each event.
fn summary(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| (reason(e).to_string(), message(e).to_string()))
        .collect()
}

/// (reason, message) of the events of `name`, oldest first.
fn reasons(ns: &TestNamespace, name: &str) -> Vec<(String, String)> {
    summary(&events(ns, name))
}

fn condition(ro: &Rollout, kind: &str) -> Option<RolloutCondition> {
    ro.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.r#type == kind).cloned())
}

/// The status has caught up with the spec's current generation.
fn observed(ro: &Rollout) -> bool {
    ro.status.as_ref().and_then(|s| s.observed_generation.clone())
        == ro.metadata.generation.map(|g| g.to_string())
}

/// (stable, canary) weights of the first tls route.
fn tls_weights(vs: &DynamicObject) -> (i64, i64) {
    let route = &vs.data["spec"]["tls"][0]["route"];
    (
        route[0]["weight"].as_i64().unwrap_or(-1),
        route[1]["weight"].as_i64().unwrap_or(-1),
    )
}

#[tokio::test]
async fn a_pod_template_the_api_server_refuses_gives_replica_set_create_error_and_recovers_when_fixed() {
    let (ns, _op) = setup("rs-refused").await;
    let manifest = canary_rollout_yaml("bad", 3, "bad:v1", "      steps:\n      - setWeight: 50\n").replace(
        "        image: bad:v1\n",
        "        image: bad:v1\n        resources: {requests: {memory: invalid}}\n",
    );
    ns.apply(&manifest).expect("the CRD does not validate quantities");
    let ro = wait_rollout(&ns, "bad", "Degraded by the refused ReplicaSet", 30, |r| {
        phase(r).0 == "Degraded"
    })
    .await;
    let st = ro.status.clone().unwrap();
    let hash = st.current_pod_hash.clone().expect("the desired hash is recorded");
    let refused = format!("Failed to create new replica set \"bad-{hash}\": ");
    let prefix = format!("ReplicaSetCreateError: {refused}");
    assert!(phase(&ro).1.starts_with(&prefix), "{:?}", phase(&ro));
    let progressing = condition(&ro, "Progressing").expect("a Progressing condition");
    assert_eq!(
        (progressing.status.as_str(), progressing.reason.as_str()),
        ("False", "ReplicaSetCreateError"),
        "{progressing:?}"
    );
    assert_eq!(st.stable_rs, None, "nothing was ever deployed");
    assert!(replica_sets(&ns, "bad").await.is_empty());

    let event = wait_event(&ns, "bad", "ReplicaSetCreateError", |m| m.starts_with(&refused)).await;
    assert_eq!(event["type"], "Warning");
    let count = |e: &Value| e["count"].as_i64().unwrap_or(1);
    let first = count(&event);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let again: Vec<Value> = events(&ns, "bad")
        .into_iter()
        .filter(|e| reason(e) == "ReplicaSetCreateError")
        .collect();
    assert_eq!(
        again.iter().map(count).sum::<i64>(),
        first,
        "the refusal is not recorded again and again: {again:#?}"
    );
    assert!(replica_sets(&ns, "bad").await.is_empty());

    ns.kubectl(
        &[
            "patch",
            "rollout",
            "bad",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/template/spec/containers/0/resources/requests/memory","value":"64Mi"}]"#,
        ],
        None,
    )
    .unwrap();
    let ro = wait_rollout(&ns, "bad", "Healthy once the template is fixed", 60, healthy).await;
    let fixed = ro.status.clone().unwrap().stable_rs.unwrap();
    assert_ne!(fixed, hash);
    let rss = replica_sets(&ns, "bad").await;
    assert_eq!(rss.len(), 1, "{rss:?}");
    assert_eq!(
        (rss[&fixed].0, rss[&fixed].1),
        (3, 3),
        "a first deploy: all replicas at once"
    );
    let progressing = condition(&ro, "Progressing").unwrap();
    assert_ne!(progressing.reason, "ReplicaSetCreateError", "{progressing:?}");
    wait_event(&ns, "bad", "RolloutCompleted", |m| m.ends_with("Initial deploy")).await;
}

#[tokio::test]
async fn promote_full_on_an_aborted_rollout_promotes_it() {
    let (ns, _op) = setup("promote-full").await;
    let steps = "      steps:\n      - setWeight: 50\n      - pause: {}\n";
    ns.apply(&canary_rollout_yaml("full", 4, "full:v1", steps))
        .unwrap();
    let ro = wait_rollout(&ns, "full", "first deploy Healthy", 60, healthy).await;
    let v1 = ro.status.unwrap().stable_rs.unwrap();

    set_image(&ns, "full", "full:v2");
    let ro = wait_rollout(&ns, "full", "the pause step", 60, |r| {
        step(r) == 1 && phase(r).0 == "Paused"
    })
    .await;
    assert_eq!(phase(&ro).1, "CanaryPauseStep");
    let v2 = ro.status.unwrap().current_pod_hash.unwrap();
    assert_ne!(v1, v2);

    patch_status(&ns, "full", r#"{"status":{"abort":true}}"#);
    let ro = wait_rollout(&ns, "full", "Degraded after abort", 30, |r| {
        phase(r).0 == "Degraded"
    })
    .await;
    assert!(phase(&ro).1.starts_with("RolloutAborted: "), "{:?}", phase(&ro));

    // All Argo CD's promote-full action sends.
    patch_status(&ns, "full", r#"{"status":{"promoteFull":true}}"#);
    let ro = wait_rollout(&ns, "full", "Healthy on v2 after promote full", 60, |r| {
        healthy(r) && r.status.as_ref().and_then(|s| s.stable_rs.as_deref()) == Some(v2.as_str())
    })
    .await;
    let st = ro.status.unwrap();
    assert_ne!(st.abort, Some(true), "the abort is over");
    assert_eq!(st.current_pod_hash.as_deref(), Some(v2.as_str()));
    wait_for("every pod on v2", Duration::from_secs(30), || async {
        let rss = replica_sets(&ns, "full").await;
        if rss
            .get(&v2)
            .is_some_and(|(s, a, image)| (*s, *a, image.as_str()) == (4, 4, "full:v2"))
        {
            Ok(())
        } else {
            Err(anyhow!("{rss:?}"))
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn events_follow_upstreams_order_from_informer_to_completion() {
    let (ns, _op) = setup("event-order").await;
    ns.apply(&canary_rollout_yaml(
        "order",
        2,
        "order:v1",
        "      steps:\n      - setWeight: 50\n",
    ))
    .unwrap();
    let ro = wait_rollout(&ns, "order", "first deploy Healthy", 60, healthy).await;
    let hash = ro.status.unwrap().stable_rs.unwrap();
    wait_event(&ns, "order", "RolloutCompleted", |_| true).await;
    let all = reasons(&ns, "order");
    let want = [
        "RolloutAddedToInformer",
        "RolloutUpdated",
        "NewReplicaSetCreated",
        "ScalingReplicaSet",
        "RolloutCompleted",
    ];
    let got: Vec<&str> = all.iter().take(want.len()).map(|(r, _)| r.as_str()).collect();
    assert_eq!(got, want, "events in order: {all:#?}");
    assert_eq!(
        all[0].1,
        format!("Rollout resource added to informer: {}/order", ns.name)
    );
    assert_eq!(
        all[3].1,
        format!("Scaled up ReplicaSet order-{hash} (revision 1) from 0 to 2")
    );
    assert!(all[4].1.ends_with("Initial deploy"), "{:?}", all[4]);
}

#[tokio::test]
async fn a_timed_pause_records_rollout_resumed_when_it_ends() {
    let (ns, _op) = setup("timed-pause").await;
    let steps =
        "      steps:\n      - setWeight: 50\n      - pause: {duration: 2s}\n      - setWeight: 100\n";
    ns.apply(&canary_rollout_yaml("timed", 2, "timed:v1", steps))
        .unwrap();
    let ro = wait_rollout(&ns, "timed", "first deploy Healthy", 60, healthy).await;
    let v1 = ro.status.unwrap().stable_rs.unwrap();

    set_image(&ns, "timed", "timed:v2");
    wait_rollout(&ns, "timed", "Healthy on v2 after the timed pause", 60, |r| {
        healthy(r) && r.status.as_ref().and_then(|s| s.stable_rs.as_deref()) != Some(v1.as_str())
    })
    .await;
    wait_event(&ns, "timed", "RolloutPaused", |m| {
        m == "Rollout is paused (CanaryPauseStep)"
    })
    .await;
    wait_event(&ns, "timed", "RolloutResumed", |m| m == "Rollout is resumed").await;
    let all = reasons(&ns, "timed");
    let paused = all.iter().position(|(r, _)| r == "RolloutPaused").unwrap();
    let resumed = all.iter().rposition(|(r, _)| r == "RolloutResumed").unwrap();
    assert!(paused < resumed, "paused, then resumed: {all:#?}");
}

#[tokio::test]
async fn an_unsupported_feature_leaves_a_running_rollout_alone_with_a_condition_naming_it() {
    let (ns, _op) = setup("unsupported").await;
    ns.apply(&canary_rollout_yaml(
        "exp",
        2,
        "exp:v1",
        "      steps:\n      - setWeight: 50\n",
    ))
    .unwrap();
    let ro = wait_rollout(&ns, "exp", "first deploy Healthy", 60, healthy).await;
    let v1 = ro.status.unwrap().stable_rs.unwrap();

    let steps_patch = |steps: &str| {
        ns.kubectl(
            &[
                "patch",
                "rollout",
                "exp",
                "--type=merge",
                "-p",
                &format!(r#"{{"spec":{{"strategy":{{"canary":{{"steps":{steps}}}}}}}}}"#),
            ],
            None,
        )
        .unwrap();
    };
    steps_patch(r#"[{"setWeight":50},{"plugin":{"name":"argoproj-labs/step-exec","config":{}}}]"#);
    let ro = wait_rollout(&ns, "exp", "the UnsupportedFeature condition", 30, |r| {
        condition(r, "UnsupportedFeature").is_some()
    })
    .await;
    let cond = condition(&ro, "UnsupportedFeature").unwrap();
    assert_eq!(cond.status, "True");
    assert!(
        cond.message.contains("spec.strategy.canary.steps[1].plugin"),
        "{cond:?}"
    );
    assert_eq!(phase(&ro).0, "Healthy", "not Degraded: {:?}", phase(&ro));
    let event = wait_event(&ns, "exp", "UnsupportedFeature", |m| {
        m.contains("spec.strategy.canary.steps[1].plugin")
    })
    .await;
    assert_eq!(event["type"], "Warning");
    let rss = replica_sets(&ns, "exp").await;
    assert_eq!((rss[&v1].0, rss[&v1].1), (2, 2), "{rss:?}");

    set_image(&ns, "exp", "exp:v2");
    let ro = wait_rollout(&ns, "exp", "the new generation observed", 30, observed).await;
    assert!(condition(&ro, "UnsupportedFeature").is_some());
    assert_ne!(phase(&ro).0, "Degraded", "{:?}", phase(&ro));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        let rss = replica_sets(&ns, "exp").await;
        assert_eq!(
            rss.keys().collect::<Vec<_>>(),
            [&v1],
            "nothing is created while the step plugin is there"
        );
        assert_eq!((rss[&v1].0, rss[&v1].1), (2, 2), "{rss:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    steps_patch(r#"[{"setWeight":50}]"#);
    let ro = wait_rollout(&ns, "exp", "Healthy on v2 once the step is gone", 60, |r| {
        healthy(r) && r.status.as_ref().and_then(|s| s.stable_rs.as_deref()) != Some(v1.as_str())
    })
    .await;
    assert_eq!(condition(&ro, "UnsupportedFeature"), None);
    let v2 = ro.status.unwrap().stable_rs.unwrap();
    assert_eq!(replica_sets(&ns, "exp").await[&v2].2, "exp:v2");
}

#[tokio::test]
async fn a_tls_only_virtual_service_with_a_route_name_list_shifts_its_tls_route() {
    let (ns, _op) = setup("tls-only").await;
    ns.apply(
        "apiVersion: v1
kind: Service
metadata: {name: edge-stable}
spec:
  selector: {app: edge}
  ports: [{port: 443, targetPort: 8443}]
---
apiVersion: v1
kind: Service
metadata: {name: edge-canary}
spec:
  selector: {app: edge}
  ports: [{port: 443, targetPort: 8443}]
---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: edge-vs}
spec:
  hosts: [edge.example.com]
  tls:
  - match: [{port: 443, sniHosts: [edge.example.com]}]
    route:
    - destination: {host: edge-stable}
      weight: 100
    - destination: {host: edge-canary}
      weight: 0
",
    )
    .unwrap();
    let strategy = "      canaryService: edge-canary
      stableService: edge-stable
      trafficRouting:
        istio:
          virtualService:
            name: edge-vs
            routes: [primary]
            tlsRoutes: [{port: 443, sniHosts: [edge.example.com]}]
      steps:
      - setWeight: 30
      - pause: {}
";
    ns.apply(&canary_rollout_yaml("edge", 5, "edge:v1", strategy))
        .unwrap();
    wait_rollout(&ns, "edge", "first deploy Healthy", 60, healthy).await;

    set_image(&ns, "edge", "edge:v2");
    let ro = wait_rollout(&ns, "edge", "the pause step", 60, |r| {
        (step(r) == 1 && phase(r).0 == "Paused") || phase(r).0 == "Degraded"
    })
    .await;
    assert_eq!(phase(&ro), ("Paused".into(), "CanaryPauseStep".into()));
    assert_eq!(
        tls_weights(&ns.virtual_services().get("edge-vs").await.unwrap()),
        (70, 30)
    );

    promote(&ns, "edge");
    wait_rollout(&ns, "edge", "Healthy after promote", 60, healthy).await;
    wait_for("the tls route back to 100/0", Duration::from_secs(30), || async {
        let w = tls_weights(&ns.virtual_services().get("edge-vs").await?);
        if w == (100, 0) {
            Ok(())
        } else {
            Err(anyhow!("{w:?}"))
        }
    })
    .await
    .unwrap();
    let vs = ns.virtual_services().get("edge-vs").await.unwrap();
    assert!(vs.data["spec"].get("http").is_none(), "no http section appears");
}
