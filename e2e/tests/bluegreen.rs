//! Blue-green rollouts end to end: the operator against the real API server and kwok pods, with an active and
//! a preview Service, driven the way the upstream kubectl plugin drives Argo Rollouts (status and spec
//! patches), and judged where asked by AnalysisTemplates measuring a real Prometheus.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::anyhow;
use k8s_openapi::{
    api::{apps::v1::ReplicaSet, core::v1::Service},
    jiff::Timestamp,
};
use kube::{Api, ResourceExt, api::ListParams};
use serde_json::Value;
use sluice_crds::{
    analysis::AnalysisRun,
    rollout::{BlueGreenStatus, Rollout, RolloutStatus},
};
use sluice_e2e::rollouts::{blue_green_rollout_yaml as rollout_yaml, blue_green_services as services};
use sluice_e2e::{
    cluster::wait_for,
    harness::{Operator, TestNamespace, install_crds, namespace_with_operator},
    prometheus::{Prometheus, SUCCESS_RATE_TEMPLATE_QUERY, TrafficCounters, success_rate_query},
    rollouts::{
        healthy, patch_status, phase, promote, selector_hash, set_image, wait_rollout, wait_selector,
    },
    watch::Watch,
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");
const HASH: &str = "rollouts-pod-template-hash";
const DEADLINE: &str = "scale-down-deadline";

async fn setup(test: &str) -> (TestNamespace, Operator) {
    namespace_with_operator(SUPERVISOR, test, &["analysisruns"]).await
}

/// A namespace with the CRDs, traffic counters for one service, a Prometheus scraping them and an operator
/// whose `ARGO_ROLLOUTS_PROMETHEUS_ADDRESS` points at that Prometheus.
struct Env {
    ns: TestNamespace,
    _op: Operator,
    _traffic: TrafficCounters,
    _prom: Prometheus,
}

/// Serves `service` at 100 requests per second with `ratio` of them successful; returns once Prometheus has
/// its success rate, so that no analysis starts before there is data.
async fn setup_with_prometheus(test: &str, service: &str, ratio: f64) -> Env {
    let mut ns = TestNamespace::new(SUPERVISOR, test).await.expect("namespace");
    ns.dump_kinds.push("analysisruns".into());
    ns.dump_kinds.push("analysistemplates".into());
    install_crds(&ns.info, &ns.client).await.expect("CRDs");
    let traffic = TrafficCounters::start().await.expect("traffic");
    traffic.set_service(service, 100.0, ratio);
    let dir = std::env::temp_dir().join(format!("sluice-prom-{}", ns.name));
    let prom = Prometheus::start(&dir, &[traffic.address().to_string()])
        .await
        .expect("prometheus");
    prom.wait_until(&success_rate_query(service), Duration::from_secs(60), |v| {
        v.is_finite()
    })
    .await
    .expect("the success rate is in Prometheus");
    let op =
        Operator::start_with_env(&ns, &[("ARGO_ROLLOUTS_PROMETHEUS_ADDRESS", &prom.url)]).expect("operator");
    Env {
        ns,
        _op: op,
        _traffic: traffic,
        _prom: prom,
    }
}

/// The success-rate template: two measurements two seconds apart, each at least 95% non-5xx (a run measures long
/// enough for the tests' polls of the Rollout, its Services and its runs to see it Running on a loaded machine).
fn success_rate_template(name: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: {name}}}
spec:
  args:
  - name: service-name
  metrics:
  - name: success-rate
    interval: 2s
    count: 2
    successCondition: result[0] >= 0.95
    provider:
      prometheus:
        query: '{SUCCESS_RATE_TEMPLATE_QUERY}'
"#
    )
}

/// The Services and a blue-green Rollout on them, with `extra` strategy fields.
fn manifest(name: &str, replicas: i32, extra: &str) -> String {
    let strategy =
        format!("      activeService: {name}-active\n      previewService: {name}-preview\n{extra}");
    format!(
        "{}---\n{}",
        services(name),
        rollout_yaml(name, replicas, "app:v1", &strategy)
    )
}

fn hash_of(rs: &ReplicaSet) -> String {
    rs.labels().get(HASH).cloned().unwrap_or_default()
}

/// (spec.replicas, status.availableReplicas).
fn sizes(rs: &ReplicaSet) -> (i32, i32) {
    let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let avail = rs.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
    (spec, avail)
}

/// (spec.replicas, status.availableReplicas) of the app's ReplicaSets by hash.
async fn replica_sets(ns: &TestNamespace, app: &str) -> BTreeMap<String, (i32, i32)> {
    let rss: Api<ReplicaSet> = ns.api();
    rss.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .iter()
        .map(|rs| (hash_of(rs), sizes(rs)))
        .collect()
}

/// The `scale-down-deadline` annotation of a ReplicaSet, parsed.
async fn deadline(ns: &TestNamespace, rs: &str) -> Option<Timestamp> {
    let api: Api<ReplicaSet> = ns.api();
    let rs = api.get(rs).await.ok()?;
    let value = rs.annotations().get(DEADLINE)?.clone();
    Some(
        value
            .parse()
            .unwrap_or_else(|e| panic!("{DEADLINE} {value:?} is not a time: {e}")),
    )
}

/// The hashes a Service's selector shows.
type SelectorWatch = Watch<Option<String>>;

/// (reason, message) of the events of an object.
fn events(ns: &TestNamespace, name: &str) -> Vec<(String, String)> {
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
    let events: Value = serde_json::from_str(&out).unwrap();
    events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Waits for an event of the rollout with this reason whose message satisfies `check`.
async fn wait_event(ns: &TestNamespace, name: &str, reason: &str, check: impl Fn(&str) -> bool) {
    wait_for(
        &format!("event {reason} of {name}"),
        Duration::from_secs(15),
        || async {
            let all = events(ns, name);
            if all.iter().any(|(r, m)| r == reason && check(m)) {
                Ok(())
            } else {
                Err(anyhow!("events: {all:#?}"))
            }
        },
    )
    .await
    .unwrap();
}

fn status(ro: &Rollout) -> RolloutStatus {
    ro.status.clone().unwrap_or_default()
}

fn bg(ro: &Rollout) -> BlueGreenStatus {
    status(ro).blue_green.unwrap_or_default()
}

/// Healthy on a template other than the one whose hash is `old`.
fn healthy_after(ro: &Rollout, old: &str) -> bool {
    healthy(ro) && status(ro).stable_rs.as_deref() != Some(old)
}

/// Paused by the controller for the promotion.
fn paused_for_promotion(ro: &Rollout) -> bool {
    phase(ro) == ("Paused".into(), "BlueGreenPause".into())
        && status(ro)
            .pause_conditions
            .is_some_and(|p| p.first().is_some_and(|c| c.reason == "BlueGreenPause"))
}

fn run_phase(r: &AnalysisRun) -> &str {
    r.status.as_ref().map(|s| s.phase.as_str()).unwrap_or("")
}

/// What one poll saw, read in this order: the Rollout, its Services, its ReplicaSets, the AnalysisRuns.
#[derive(Clone, Debug)]
struct Sample {
    at: Instant,
    wall: Timestamp,
    ro: Rollout,
    active: Option<String>,
    preview: Option<String>,
    rss: BTreeMap<String, (i32, i32)>,
    /// The `scale-down-deadline` of each ReplicaSet that has one, by hash.
    deadlines: BTreeMap<String, Timestamp>,
    runs: Vec<AnalysisRun>,
}

impl Sample {
    fn run(&self, name: &str) -> Option<&AnalysisRun> {
        self.runs.iter().find(|r| r.name_any() == name)
    }
}

async fn sample(ns: &TestNamespace, name: &str) -> Option<Sample> {
    let ro = ns.api::<Rollout>().get(name).await.ok()?;
    let active = selector_hash(ns, &format!("{name}-active")).await;
    let preview = selector_hash(ns, &format!("{name}-preview")).await;
    let list = ns
        .api::<ReplicaSet>()
        .list(&ListParams::default().labels(&format!("app={name}")))
        .await
        .ok()?
        .items;
    let rss = list.iter().map(|rs| (hash_of(rs), sizes(rs))).collect();
    let deadlines = list
        .iter()
        .filter_map(|rs| Some((hash_of(rs), rs.annotations().get(DEADLINE)?.parse().ok()?)))
        .collect();
    let runs = ns
        .api::<AnalysisRun>()
        .list(&ListParams::default())
        .await
        .ok()?
        .items;
    Some(Sample {
        at: Instant::now(),
        wall: Timestamp::now(),
        ro,
        active,
        preview,
        rss,
        deadlines,
        runs,
    })
}

/// Polls the rollout, its Services, ReplicaSets and AnalysisRuns until `done` holds and returns every sample;
/// panics after `secs` with the last one. On every poll where a Service selects another hash than at the
/// previous poll, checks that the ReplicaSet it now selects has all its pods available, and for the active
/// Service at least the Rollout's spec.replicas. The Services are read before the ReplicaSets: a ReplicaSet can
/// only have gained available pods since the switch was seen.
async fn follow(
    ns: &TestNamespace,
    name: &str,
    what: &str,
    secs: u64,
    done: impl Fn(&Sample) -> bool,
) -> Vec<Sample> {
    let start = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    while start.elapsed() < Duration::from_secs(secs) {
        if let Some(s) = sample(ns, name).await {
            if let Some(prev) = samples.last() {
                let replicas = s.ro.spec.replicas.unwrap_or(1);
                for (svc, before, now, need) in [
                    ("active", &prev.active, &s.active, replicas),
                    ("preview", &prev.preview, &s.preview, 1),
                ] {
                    let Some(hash) = now.as_ref().filter(|_| now != before) else {
                        continue;
                    };
                    let (spec, avail) = s.rss.get(hash).copied().unwrap_or_default();
                    assert!(
                        avail >= need.max(spec),
                        "{name}-{svc} switched from {before:?} to {hash} whose ReplicaSet has {avail} of \
                         {spec} pods available (the rollout wants {replicas}); ReplicaSets: {:?}",
                        s.rss
                    );
                }
            }
            let finished = done(&s);
            samples.push(s);
            if finished {
                return samples;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = samples.last().map(|s| {
        format!(
            "active {:?}, preview {:?}, ReplicaSets {:?}, status {}",
            s.active,
            s.preview,
            s.rss,
            serde_json::to_string_pretty(&s.ro.status).unwrap_or_default()
        )
    });
    panic!(
        "rollout {name}: timed out after {secs}s waiting for {what}; last seen: {}",
        last.unwrap_or_default()
    );
}

/// The index of the first sample where the active Service selects `hash`.
fn switch_index(samples: &[Sample], hash: &str) -> usize {
    samples
        .iter()
        .position(|s| s.active.as_deref() == Some(hash))
        .unwrap_or_else(|| panic!("the active Service was never seen on {hash}"))
}

/// Applies the manifest, follows the first deploy to Healthy and returns its hash, checked to be the one both
/// Services select and the status names.
async fn deploy_v1(ns: &TestNamespace, name: &str, manifest: &str) -> String {
    ns.apply(manifest).expect("apply");
    let samples = follow(ns, name, "first deploy Healthy", 60, |s| {
        healthy(&s.ro) && s.active.is_some()
    })
    .await;
    let st = status(&samples.last().unwrap().ro);
    let v1 = st.stable_rs.clone().unwrap();
    wait_selector(ns, &format!("{name}-active"), &v1, 10).await;
    wait_selector(ns, &format!("{name}-preview"), &v1, 10).await;
    v1
}

#[tokio::test]
async fn initial_deploy_switches_both_services_to_the_first_replica_set_once_its_pods_are_available() {
    let (ns, _op) = setup("bg-initial").await;
    ns.apply(&manifest("first", 3, "      scaleDownDelaySeconds: 3\n"))
        .unwrap();
    let samples = follow(&ns, "first", "first deploy Healthy", 60, |s| {
        healthy(&s.ro) && s.active.is_some() && s.preview.is_some()
    })
    .await;
    let ro = &samples.last().unwrap().ro;
    let st = status(ro);
    let hash = st.current_pod_hash.clone().unwrap();
    assert_eq!(phase(ro).0, "Healthy");
    assert_eq!(st.stable_rs.as_deref(), Some(hash.as_str()));
    assert_eq!(bg(ro).active_selector.as_deref(), Some(hash.as_str()));
    let rss = replica_sets(&ns, "first").await;
    assert_eq!(rss.len(), 1, "{rss:?}");
    assert_eq!(rss[&hash], (3, 3), "{rss:?}");
    // The ReplicaSet was created at full size: no sample shows it smaller.
    for s in &samples {
        if let Some((spec, _)) = s.rss.get(&hash) {
            assert_eq!(*spec, 3, "created at full size: {:?}", s.rss);
        }
    }
    for svc in ["first-active", "first-preview"] {
        let service: Service = ns.api().get(svc).await.unwrap();
        let selector = service.spec.unwrap().selector.unwrap();
        assert_eq!(
            selector,
            BTreeMap::from([
                ("app".to_string(), "first".to_string()),
                (HASH.to_string(), hash.clone())
            ]),
            "{svc}: the hash is added, the user's selector kept"
        );
        let message = format!("Switched selector for service '{svc}' from '' to '{hash}'");
        wait_event(&ns, "first", "SwitchService", |m| m == message).await;
    }
    assert_eq!(bg(ro).preview_selector.as_deref(), Some(hash.as_str()));
}

#[tokio::test]
async fn auto_promotion_switches_preview_then_active_to_the_fully_available_new_pods_and_scales_the_old_down_after_the_delay()
 {
    let (ns, _op) = setup("bg-auto").await;
    let v1 = deploy_v1(
        &ns,
        "auto",
        &manifest("auto", 4, "      scaleDownDelaySeconds: 3\n"),
    )
    .await;
    let active_watch = SelectorWatch::selector(&ns, "auto-active").await;
    let preview_watch = SelectorWatch::selector(&ns, "auto-preview").await;
    set_image(&ns, "auto", "app:v2");
    let samples = follow(&ns, "auto", "Healthy on v2", 60, |s| {
        healthy_after(&s.ro, &v1) && s.active.as_deref() != Some(v1.as_str())
    })
    .await;
    let ro = &samples.last().unwrap().ro;
    let st = status(ro);
    let v2 = st.current_pod_hash.clone().unwrap();
    assert_ne!(v1, v2);
    assert_eq!(st.stable_rs.as_deref(), Some(v2.as_str()));
    assert_eq!(bg(ro).active_selector.as_deref(), Some(v2.as_str()));

    // The new ReplicaSet came up at full size next to the old one.
    assert!(
        samples
            .iter()
            .any(|s| s.rss.get(&v2).is_some_and(|r| r.0 == 4) && s.rss.get(&v1) == Some(&(4, 4))),
        "both ReplicaSets at full size at some point"
    );
    // The preview switched first, the active after it, each to a fully available ReplicaSet (checked by
    // `follow` on every poll), the old pods still all there.
    let preview_at = samples
        .iter()
        .position(|s| s.preview.as_deref() == Some(v2.as_str()))
        .expect("the preview Service selected the new pods");
    let active_at = switch_index(&samples, &v2);
    assert!(
        preview_at <= active_at,
        "preview switched at sample {preview_at}, active at {active_at}"
    );
    assert!(
        samples[..active_at]
            .iter()
            .all(|s| s.active.as_deref() == Some(v1.as_str())),
        "the active Service stayed on the old pods until the switch"
    );
    assert_eq!(
        samples[active_at].rss.get(&v1).map(|r| r.0),
        Some(4),
        "the old ReplicaSet is whole at the switch"
    );
    wait_event(&ns, "auto", "SwitchService", |m| {
        m == format!("Switched selector for service 'auto-active' from '{v1}' to '{v2}'")
    })
    .await;
    wait_event(&ns, "auto", "RolloutCompleted", |m| {
        m.ends_with("Completed blue-green update")
    })
    .await;

    // The old ReplicaSet keeps its pods until its scale-down deadline, then goes to 0.
    let old = format!("auto-{v1}");
    wait_for(
        "the scale-down deadline on the old ReplicaSet",
        Duration::from_secs(10),
        || async {
            let d = deadline(&ns, &old).await;
            let rss = replica_sets(&ns, "auto").await;
            if d.is_some() && rss[&v1] == (4, 4) {
                Ok(())
            } else {
                Err(anyhow!("deadline {d:?}, ReplicaSets {rss:?}"))
            }
        },
    )
    .await
    .unwrap();
    let until = deadline(&ns, &old).await.expect("the deadline");
    let ahead = until.duration_since(Timestamp::now()).as_secs_f64();
    assert!(
        ahead <= 4.0,
        "the deadline is scaleDownDelaySeconds (3) away: {until} is {ahead:.1}s ahead"
    );
    wait_for(
        "the old ReplicaSet scaled to 0",
        Duration::from_secs(20),
        || async {
            let rss = replica_sets(&ns, "auto").await;
            if rss[&v1].0 == 0 && rss[&v2] == (4, 4) {
                Ok(())
            } else {
                Err(anyhow!("{rss:?}"))
            }
        },
    )
    .await
    .unwrap();
    active_watch.wait_seen(&[&v1, &v2]).await;
    preview_watch.wait_seen(&[&v1, &v2]).await;
    let late = Timestamp::now().duration_since(until).as_secs_f64();
    assert!(
        late >= -1.0,
        "scaled down at its deadline {until}, not {:.1}s before",
        -late
    );
    assert_eq!(
        selector_hash(&ns, "auto-active").await.as_deref(),
        Some(v2.as_str())
    );
}

#[tokio::test]
async fn manual_promotion_holds_a_one_pod_preview_until_promoted_then_scales_it_up_before_switching() {
    let (ns, _op) = setup("bg-manual").await;
    let extra =
        "      autoPromotionEnabled: false\n      previewReplicaCount: 1\n      scaleDownDelaySeconds: 3\n";
    let v1 = deploy_v1(&ns, "manual", &manifest("manual", 3, extra)).await;
    assert_eq!(replica_sets(&ns, "manual").await[&v1], (3, 3));
    set_image(&ns, "manual", "app:v2");
    let samples = follow(&ns, "manual", "BlueGreenPause", 60, |s| {
        paused_for_promotion(&s.ro)
    })
    .await;
    let ro = &samples.last().unwrap().ro;
    let st = status(ro);
    let v2 = st.current_pod_hash.clone().unwrap();
    assert_ne!(v1, v2);
    assert_eq!(st.controller_pause, Some(true));
    assert_eq!(st.stable_rs.as_deref(), Some(v1.as_str()));
    wait_selector(&ns, "manual-preview", &v2, 10).await;
    let rss = replica_sets(&ns, "manual").await;
    assert_eq!(rss[&v2], (1, 1), "a preview of previewReplicaCount pods: {rss:?}");
    assert_eq!(rss[&v1], (3, 3), "{rss:?}");
    for s in &samples {
        assert_eq!(
            s.active.as_deref(),
            Some(v1.as_str()),
            "active stays on the old pods"
        );
        assert!(
            s.rss.get(&v2).is_none_or(|r| r.0 <= 1),
            "the preview never grows before promotion: {:?}",
            s.rss
        );
    }
    // It stays paused: nothing moves without the user.
    let held = follow(&ns, "manual", "two seconds of pause", 10, |s| {
        s.at.duration_since(samples.last().unwrap().at) >= Duration::from_secs(2)
    })
    .await;
    for s in &held {
        assert!(paused_for_promotion(&s.ro), "{:?}", phase(&s.ro));
        assert_eq!(s.active.as_deref(), Some(v1.as_str()));
        assert_eq!(s.preview.as_deref(), Some(v2.as_str()));
        assert_eq!(s.rss.get(&v2).map(|r| r.0), Some(1));
    }

    // Every blue-green status written from here on: (scaleUpPreviewCheckPoint, activeSelector).
    let statuses = Watch::start::<Rollout>(&ns, "manual", |ro| {
        let bg = bg(&ro);
        (bg.scale_up_preview_check_point, bg.active_selector)
    })
    .await;
    promote(&ns, "manual");
    let samples = follow(&ns, "manual", "Healthy on v2 after promote", 60, |s| {
        healthy_after(&s.ro, &v1) && s.active.as_deref() == Some(v2.as_str())
    })
    .await;
    let active_at = switch_index(&samples, &v2);
    assert_eq!(samples[active_at].rss[&v2], (3, 3));
    let ro = &samples.last().unwrap().ro;
    let st = status(ro);
    assert_eq!(st.stable_rs.as_deref(), Some(v2.as_str()));
    assert_eq!(st.pause_conditions.unwrap_or_default(), Vec::new());
    let settled = follow(&ns, "manual", "two seconds after the promotion", 10, |s| {
        s.at.duration_since(samples.last().unwrap().at) >= Duration::from_secs(2)
    })
    .await;
    // The checkpoint is written while the active Service is still on the old pods; the preview is scaled up
    // to 3 and all available before the switch (checked by `follow`).
    let seen = statuses.seen();
    let checkpoint = seen
        .iter()
        .position(|(c, a)| *c == Some(true) && a.as_deref() == Some(v1.as_str()));
    let switched = seen.iter().position(|(_, a)| a.as_deref() == Some(v2.as_str()));
    assert!(
        checkpoint.is_some() && checkpoint < switched,
        "scaleUpPreviewCheckPoint set before the active switch; (checkpoint, activeSelector) written: {seen:?}"
    );
    // Once promoted, the checkpoint is cleared and stays cleared.
    let stuck: Vec<String> = samples[active_at..]
        .iter()
        .chain(&settled)
        .filter(|s| healthy(&s.ro) && bg(&s.ro).scale_up_preview_check_point == Some(true))
        .map(|s| format!("{:?}", s.ro.status.as_ref().and_then(|st| st.blue_green.clone())))
        .collect();

    // The next update is held for promotion again, on a one-pod preview.
    set_image(&ns, "manual", "app:v3");
    let samples = follow(&ns, "manual", "BlueGreenPause on v3", 60, |s| {
        paused_for_promotion(&s.ro) && status(&s.ro).current_pod_hash.is_some_and(|h| h != v1 && h != v2)
    })
    .await;
    let last = samples.last().unwrap();
    let v3 = status(&last.ro).current_pod_hash.unwrap();
    assert_eq!(last.rss[&v3], (1, 1), "{:?}", last.rss);
    for s in &samples {
        assert_eq!(s.active.as_deref(), Some(v2.as_str()), "active stays on v2");
    }
    assert_eq!(
        stuck,
        Vec::<String>::new(),
        "scaleUpPreviewCheckPoint is cleared once promoted (Healthy)"
    );
}

#[tokio::test]
async fn auto_promotion_seconds_pauses_then_promotes_by_itself() {
    let (ns, _op) = setup("bg-seconds").await;
    let extra = "      autoPromotionSeconds: 3\n      scaleDownDelaySeconds: 3\n";
    let v1 = deploy_v1(&ns, "timed", &manifest("timed", 2, extra)).await;
    set_image(&ns, "timed", "app:v2");
    let paused = follow(&ns, "timed", "BlueGreenPause", 60, |s| {
        paused_for_promotion(&s.ro)
    })
    .await;
    let last = paused.last().unwrap();
    assert_eq!(last.active.as_deref(), Some(v1.as_str()));
    let started = status(&last.ro).pause_conditions.unwrap()[0].start_time.0;
    let samples = follow(&ns, "timed", "Healthy on v2 without any user action", 20, |s| {
        healthy_after(&s.ro, &v1)
    })
    .await;
    let v2 = status(&samples.last().unwrap().ro).stable_rs.unwrap();
    let active_at = switch_index(&samples, &v2);
    let waited = samples[active_at].wall.duration_since(started).as_secs_f64();
    let after_seen = samples[active_at].at.duration_since(last.at);
    assert!(
        waited >= 3.0 && after_seen <= Duration::from_secs(10),
        "switched {waited:.1}s after the pause started, {after_seen:?} after it was seen (autoPromotionSeconds: 3)"
    );
    for s in &samples[..active_at] {
        assert!(paused_for_promotion(&s.ro) || phase(&s.ro).0 != "Healthy");
        assert_eq!(s.active.as_deref(), Some(v1.as_str()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_pre_promotion_analysis_runs_before_the_switch_and_lets_it_happen() {
    let env = setup_with_prometheus("bg-pre-good", "pregood-preview", 0.99).await;
    let ns = &env.ns;
    ns.apply(&success_rate_template("success-rate")).unwrap();
    let extra = "      scaleDownDelaySeconds: 3
      prePromotionAnalysis:
        templates: [{templateName: success-rate}]
        args: [{name: service-name, value: pregood-preview}]
";
    let v1 = deploy_v1(ns, "pregood", &manifest("pregood", 3, extra)).await;
    let runs = ns
        .api::<AnalysisRun>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(
        runs.is_empty(),
        "the first deploy runs no analysis: {:?}",
        runs.iter().map(|r| r.name_any()).collect::<Vec<_>>()
    );
    set_image(ns, "pregood", "app:v2");
    let samples = follow(ns, "pregood", "Healthy on v2", 90, |s| {
        healthy_after(&s.ro, &v1) && s.active.as_deref().is_some_and(|a| a != v1)
    })
    .await;
    let v2 = status(&samples.last().unwrap().ro).current_pod_hash.unwrap();
    let run_name = format!("pregood-{v2}-2-pre");
    let active_at = switch_index(&samples, &v2);
    assert!(
        samples[..active_at]
            .iter()
            .any(|s| s.run(&run_name).is_some_and(|r| run_phase(r) != "Successful")),
        "the run {run_name} was seen measuring while the active Service was on the old pods"
    );
    let at_switch = samples[active_at]
        .run(&run_name)
        .unwrap_or_else(|| panic!("{run_name} exists at the switch"));
    assert_eq!(
        run_phase(at_switch),
        "Successful",
        "the switch waited for the analysis"
    );
    let run: AnalysisRun = ns.api().get(&run_name).await.unwrap();
    assert_eq!(run.labels()["rollout-type"], "PrePromotion");
    assert_eq!(run.labels()[HASH], v2);
    assert_eq!(run_phase(&run), "Successful");
    let result = &run.status.as_ref().unwrap().metric_results.as_ref().unwrap()[0];
    assert_eq!((result.count, result.successful), (Some(2), Some(2)));
    assert_eq!(
        run.spec.args.as_ref().unwrap()[0].value.as_deref(),
        Some("pregood-preview")
    );
    let ro = &samples.last().unwrap().ro;
    assert_eq!(status(ro).stable_rs.as_deref(), Some(v2.as_str()));
    assert_eq!(
        selector_hash(ns, "pregood-active").await.as_deref(),
        Some(v2.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pre_promotion_analysis_aborts_and_the_active_service_never_leaves_the_old_pods() {
    let env = setup_with_prometheus("bg-pre-bad", "prebad-preview", 0.80).await;
    let ns = &env.ns;
    ns.apply(&success_rate_template("success-rate")).unwrap();
    let extra = "      scaleDownDelaySeconds: 3
      prePromotionAnalysis:
        templates: [{templateName: success-rate}]
        args: [{name: service-name, value: prebad-preview}]
";
    let v1 = deploy_v1(ns, "prebad", &manifest("prebad", 3, extra)).await;
    let watch = SelectorWatch::selector(ns, "prebad-active").await;
    set_image(ns, "prebad", "app:v2");
    let samples = follow(ns, "prebad", "Degraded after the failed analysis", 90, |s| {
        phase(&s.ro).0 == "Degraded"
    })
    .await;
    let ro = &samples.last().unwrap().ro;
    let st = status(ro);
    let v2 = st.current_pod_hash.clone().unwrap();
    assert_ne!(v1, v2);
    let (_, message) = phase(ro);
    assert!(
        message.starts_with("RolloutAborted: Rollout aborted update to revision 2"),
        "{message}"
    );
    assert_eq!(st.abort, Some(true));
    assert_eq!(st.stable_rs.as_deref(), Some(v1.as_str()));
    let run_name = format!("prebad-{v2}-2-pre");
    let run: AnalysisRun = ns.api().get(&run_name).await.unwrap();
    assert_eq!(run.labels()["rollout-type"], "PrePromotion");
    assert_eq!(run_phase(&run), "Failed");
    wait_selector(ns, "prebad-preview", &v2, 10).await;
    // A little longer: the aborted rollout stays on the old pods.
    let after = follow(ns, "prebad", "two seconds after the abort", 10, |s| {
        s.at.duration_since(samples.last().unwrap().at) >= Duration::from_secs(2)
    })
    .await;
    for s in samples.iter().chain(&after) {
        assert_eq!(
            s.active.as_deref(),
            Some(v1.as_str()),
            "the active Service never left the old pods"
        );
    }
    assert_eq!(
        watch.seen(),
        [Some(v1.clone())],
        "the watch of the active Service saw only the old hash"
    );
    let last = after.last().unwrap();
    assert_eq!(last.preview.as_deref(), Some(v2.as_str()));
    assert_eq!(phase(&last.ro).0, "Degraded");
    assert_eq!(last.rss[&v1], (3, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_post_promotion_analysis_switches_the_active_service_back_to_the_stable_pods() {
    let env = setup_with_prometheus("bg-post-bad", "postbad-active", 0.80).await;
    let ns = &env.ns;
    ns.apply(&success_rate_template("success-rate")).unwrap();
    let extra = "      scaleDownDelaySeconds: 3
      postPromotionAnalysis:
        templates: [{templateName: success-rate}]
        args: [{name: service-name, value: postbad-active}]
";
    let v1 = deploy_v1(ns, "postbad", &manifest("postbad", 3, extra)).await;
    let watch = SelectorWatch::selector(ns, "postbad-active").await;
    set_image(ns, "postbad", "app:v2");
    let samples = follow(ns, "postbad", "Degraded after the failed analysis", 90, |s| {
        phase(&s.ro).0 == "Degraded"
    })
    .await;
    let ro = &samples.last().unwrap().ro;
    let v2 = status(ro).current_pod_hash.unwrap();
    assert_ne!(v1, v2);
    let run_name = format!("postbad-{v2}-2-post");
    // With kwok's pods the switch and the switch back can both fall between two polls; the watch sees them.
    watch.wait_seen(&[&v1, &v2, &v1]).await;
    wait_event(ns, "postbad", "SwitchService", |m| {
        m == format!("Switched selector for service 'postbad-active' from '{v1}' to '{v2}'")
    })
    .await;
    if let Some(active_at) = samples
        .iter()
        .position(|s| s.active.as_deref() == Some(v2.as_str()))
    {
        // The Services are read before the runs: the sample just before the switch may already show the run.
        for s in &samples[..active_at.saturating_sub(1)] {
            assert!(
                s.run(&run_name).is_none(),
                "the post-promotion run starts only after the switch"
            );
        }
    }
    for s in &samples {
        assert_eq!(
            status(&s.ro).stable_rs.as_deref(),
            Some(v1.as_str()),
            "the new pods never become stable"
        );
    }
    let (_, message) = phase(ro);
    assert!(
        message.starts_with("RolloutAborted: Rollout aborted update to revision 2"),
        "{message}"
    );
    assert_eq!(status(ro).abort, Some(true));
    let run: AnalysisRun = ns.api().get(&run_name).await.unwrap();
    assert_eq!(run.labels()["rollout-type"], "PostPromotion");
    assert_eq!(run_phase(&run), "Failed");
    // The active Service goes back to the stable pods (checked whole by `follow`).
    let back = follow(
        ns,
        "postbad",
        "the active Service back on the stable pods",
        20,
        |s| s.active.as_deref() == Some(v1.as_str()),
    )
    .await;
    let last = back.last().unwrap();
    assert_eq!(phase(&last.ro).0, "Degraded");
    assert_eq!(status(&last.ro).stable_rs.as_deref(), Some(v1.as_str()));
    assert_eq!(last.rss[&v1], (3, 3));
    wait_event(ns, "postbad", "SwitchService", |m| {
        m == format!("Switched selector for service 'postbad-active' from '{v2}' to '{v1}'")
    })
    .await;
}

#[tokio::test]
async fn abort_keeps_the_old_pods_active_scales_the_preview_down_after_its_delay_and_retry_brings_it_back() {
    let (ns, _op) = setup("bg-abort").await;
    let extra = "      autoPromotionEnabled: false\n      abortScaleDownDelaySeconds: 2\n      scaleDownDelaySeconds: 3\n";
    let v1 = deploy_v1(&ns, "abort", &manifest("abort", 2, extra)).await;
    let watch = SelectorWatch::selector(&ns, "abort-active").await;
    set_image(&ns, "abort", "app:v2");
    let paused = follow(&ns, "abort", "BlueGreenPause", 60, |s| {
        paused_for_promotion(&s.ro)
    })
    .await;
    let v2 = status(&paused.last().unwrap().ro).current_pod_hash.unwrap();
    assert_eq!(paused.last().unwrap().rss[&v2], (2, 2));

    let abort_at = Timestamp::now();
    patch_status(&ns, "abort", r#"{"status":{"abort":true}}"#);
    let aborted = follow(&ns, "abort", "Degraded after abort", 30, |s| {
        phase(&s.ro).0 == "Degraded"
    })
    .await;
    let ro = &aborted.last().unwrap().ro;
    assert!(
        phase(ro)
            .1
            .starts_with("RolloutAborted: Rollout aborted update to revision 2"),
        "{:?}",
        phase(ro)
    );
    assert_eq!(status(ro).abort, Some(true));
    let down = follow(&ns, "abort", "the new ReplicaSet scaled to 0", 30, |s| {
        s.rss.get(&v2).is_some_and(|r| r.0 == 0)
    })
    .await;
    // The new pods are kept until a deadline abortScaleDownDelaySeconds (2) after the abort (the annotation
    // has whole seconds), and scaled down once it has passed.
    let until = aborted
        .iter()
        .chain(&down)
        .find_map(|s| s.deadlines.get(&v2).filter(|_| s.rss[&v2].0 == 2))
        .copied()
        .unwrap_or_else(|| panic!("no sample shows the new pods kept with a {DEADLINE}"));
    let delay = until.duration_since(abort_at).as_secs_f64();
    assert!(
        (1.0..=3.5).contains(&delay),
        "the deadline {until} is {delay:.1}s after the abort"
    );
    let zero_at = down.last().unwrap().wall;
    assert!(
        zero_at >= until,
        "scaled to 0 at {zero_at}, before its deadline {until}"
    );
    for s in paused.iter().chain(&aborted).chain(&down) {
        assert_eq!(s.active.as_deref(), Some(v1.as_str()), "active on the old pods");
    }
    let last = down.last().unwrap();
    assert_eq!(last.rss[&v1], (2, 2));
    assert_eq!(phase(&last.ro).0, "Degraded");

    patch_status(&ns, "abort", r#"{"status":{"abort":false}}"#);
    let retried = follow(&ns, "abort", "BlueGreenPause again after retry", 60, |s| {
        paused_for_promotion(&s.ro)
    })
    .await;
    let last = retried.last().unwrap();
    assert_ne!(status(&last.ro).abort, Some(true));
    assert_eq!(status(&last.ro).current_pod_hash.as_deref(), Some(v2.as_str()));
    assert_eq!(last.rss[&v2], (2, 2), "the new ReplicaSet is back");
    assert_eq!(last.active.as_deref(), Some(v1.as_str()));
    assert_eq!(
        watch.seen(),
        [Some(v1.clone())],
        "the active Service stayed on the old pods through abort and retry"
    );

    promote(&ns, "abort");
    let done = follow(&ns, "abort", "Healthy on v2 after promote", 60, |s| {
        healthy_after(&s.ro, &v1) && s.active.as_deref() == Some(v2.as_str())
    })
    .await;
    assert_eq!(
        status(&done.last().unwrap().ro).stable_rs.as_deref(),
        Some(v2.as_str())
    );
    watch.wait_seen(&[&v1, &v2]).await;
}

#[tokio::test]
async fn undo_within_the_scale_down_delay_switches_back_to_the_old_replica_set_at_once() {
    let (ns, _op) = setup("bg-undo").await;
    let v1 = deploy_v1(
        &ns,
        "undo",
        &manifest("undo", 3, "      scaleDownDelaySeconds: 30\n"),
    )
    .await;
    set_image(&ns, "undo", "app:v2");
    let samples = follow(&ns, "undo", "Healthy on v2", 60, |s| {
        healthy_after(&s.ro, &v1) && s.active.as_deref().is_some_and(|a| a != v1)
    })
    .await;
    let v2 = status(&samples.last().unwrap().ro).current_pod_hash.unwrap();
    wait_for(
        "the old ReplicaSet within its scale-down delay",
        Duration::from_secs(10),
        || async {
            let d = deadline(&ns, &format!("undo-{v1}")).await;
            let rss = replica_sets(&ns, "undo").await;
            if d.is_some() && rss[&v1] == (3, 3) {
                Ok(())
            } else {
                Err(anyhow!("deadline {d:?}, ReplicaSets {rss:?}"))
            }
        },
    )
    .await
    .unwrap();

    let watch = SelectorWatch::selector(&ns, "undo-active").await;
    set_image(&ns, "undo", "app:v1");
    let undone = Instant::now();
    let samples = follow(&ns, "undo", "Healthy on v1 again", 30, |s| {
        healthy(&s.ro)
            && status(&s.ro).stable_rs.as_deref() == Some(v1.as_str())
            && s.active.as_deref() == Some(v1.as_str())
    })
    .await;
    for s in &samples {
        assert_eq!(s.rss.len(), 2, "no third ReplicaSet: {:?}", s.rss);
    }
    let back_at = switch_index(&samples, &v1);
    let took = samples[back_at].at.duration_since(undone);
    assert!(
        took <= Duration::from_secs(5),
        "the active Service went back at once, not after {took:?}"
    );
    assert_eq!(samples[back_at].rss[&v1], (3, 3));
    let ro = &samples.last().unwrap().ro;
    assert_eq!(status(ro).current_pod_hash.as_deref(), Some(v1.as_str()));
    assert_eq!(phase(ro).0, "Healthy");
    watch.wait_seen(&[&v2, &v1]).await;
    wait_selector(&ns, "undo-preview", &v1, 10).await;
    wait_event(&ns, "undo", "SwitchService", |m| {
        m == format!("Switched selector for service 'undo-active' from '{v2}' to '{v1}'")
    })
    .await;
}

#[tokio::test]
async fn the_scale_down_delay_keeps_only_the_previous_active_within_the_revision_limit() {
    let (ns, _op) = setup("bg-limit").await;
    let extra = "      scaleDownDelaySeconds: 30\n      scaleDownDelayRevisionLimit: 1\n";
    let v1 = deploy_v1(&ns, "limit", &manifest("limit", 2, extra)).await;
    set_image(&ns, "limit", "app:v2");
    let samples = follow(&ns, "limit", "Healthy on v2", 60, |s| {
        healthy_after(&s.ro, &v1) && s.active.as_deref().is_some_and(|a| a != v1)
    })
    .await;
    let v2 = status(&samples.last().unwrap().ro).current_pod_hash.unwrap();
    wait_for(
        "v1 kept within its scale-down delay",
        Duration::from_secs(10),
        || async {
            let d = deadline(&ns, &format!("limit-{v1}")).await;
            let rss = replica_sets(&ns, "limit").await;
            if d.is_some() && rss[&v1] == (2, 2) {
                Ok(())
            } else {
                Err(anyhow!("deadline {d:?}, ReplicaSets {rss:?}"))
            }
        },
    )
    .await
    .unwrap();
    let v1_deadline = deadline(&ns, &format!("limit-{v1}")).await.expect("the deadline");

    set_image(&ns, "limit", "app:v3");
    let samples = follow(&ns, "limit", "Healthy on v3", 60, |s| {
        healthy_after(&s.ro, &v2) && s.active.as_deref().is_some_and(|a| a != v1 && a != v2)
    })
    .await;
    let v3 = status(&samples.last().unwrap().ro).current_pod_hash.unwrap();
    assert!(v3 != v1 && v3 != v2);
    wait_for(
        "v2 kept with a deadline, v1 scaled to 0",
        Duration::from_secs(10),
        || async {
            let d = deadline(&ns, &format!("limit-{v2}")).await;
            let rss = replica_sets(&ns, "limit").await;
            if d.is_some() && rss[&v2] == (2, 2) && rss[&v1].0 == 0 && rss[&v3] == (2, 2) {
                Ok(())
            } else {
                Err(anyhow!("v2 deadline {d:?}, ReplicaSets {rss:?}"))
            }
        },
    )
    .await
    .unwrap();
    let early = v1_deadline.duration_since(Timestamp::now()).as_secs_f64();
    assert!(
        early > 0.0,
        "v1 went to 0 because of the revision limit, before its own deadline {v1_deadline} (now {:.1}s past it)",
        -early
    );
    let ro: Rollout = ns.api().get("limit").await.unwrap();
    assert!(healthy(&ro));
    assert_eq!(status(&ro).stable_rs.as_deref(), Some(v3.as_str()));
}

#[tokio::test]
async fn the_same_service_as_active_and_preview_is_an_invalid_spec_and_does_not_block_another_rollout() {
    let (ns, _op) = setup("bg-invalid").await;
    let message = "This rollout uses the same service for the active and preview services, but two different services are required.";
    ns.apply(&format!(
        "{}---\n{}",
        services("same"),
        rollout_yaml(
            "same",
            2,
            "x:v1",
            "      activeService: same-active\n      previewService: same-active\n"
        )
    ))
    .unwrap();
    ns.apply(&manifest("fine", 2, "      scaleDownDelaySeconds: 3\n"))
        .unwrap();
    let ro = wait_rollout(&ns, "same", "InvalidSpec", 30, |r| phase(r).0 == "Degraded").await;
    assert_eq!(phase(&ro).1, format!("InvalidSpec: {message}"));
    let cond = status(&ro)
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.r#type == "InvalidSpec")
        .expect("an InvalidSpec condition");
    assert_eq!((cond.status.as_str(), cond.message.as_str()), ("True", message));
    let ro = wait_rollout(&ns, "fine", "Healthy", 60, healthy).await;
    let v1 = status(&ro).stable_rs.unwrap();
    assert!(
        replica_sets(&ns, "same").await.is_empty(),
        "no ReplicaSet for an invalid spec"
    );
    assert_eq!(selector_hash(&ns, "same-active").await, None);
    set_image(&ns, "fine", "app:v2");
    wait_rollout(&ns, "fine", "Healthy on v2", 60, |r| healthy_after(r, &v1)).await;
    let ro: Rollout = ns.api().get("same").await.unwrap();
    assert_eq!(phase(&ro).1, format!("InvalidSpec: {message}"));
}
