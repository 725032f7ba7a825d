//! Two replicas behind a Lease run 50 Istio canaries judged by the real Prometheus while the leader is killed
//! with SIGKILL every 30 s (and stopped gracefully once) for three minutes; each canary is released again and
//! again, promoted or aborted by the test as a user would. Checked at every watch event the test sees: no
//! VirtualService sends a canary more weight than its available pods can take, no step is skipped or repeated
//! (currentStepIndex per revision, and the step events), no promote or abort is lost, and every Rollout ends
//! where its last user action says. A test with bounded time, not a benchmark: failover times are printed.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Event};
use kube::{
    Api, ResourceExt,
    runtime::{WatchStreamExt, watcher},
};
use sluice_crds::rollout::Rollout;
use sluice_e2e::{
    harness::{Operator, TestNamespace, install_crds},
    prometheus::{Prometheus, TrafficCounters},
    rollouts::{canary_rollout_yaml, istio_strategy, phase, promote, services_and_vs, set_image, step},
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");
const ROLLOUTS: usize = 50;
const REPLICAS: i64 = 2;
const CHAOS: Duration = Duration::from_secs(180);
const STEPS: &str = "      - setWeight: 20
      - analysis:
          templates: [{templateName: success}]
      - setWeight: 50
      - pause: {duration: 3s}
      - setWeight: 80
      - pause: {}
";
/// Index of the indefinite pause where the user promotes or aborts.
const USER_PAUSE: i32 = 5;

fn template(prometheus: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: success}}
spec:
  metrics:
  - name: success-rate
    interval: 2s
    count: 2
    successCondition: result[0] >= 0.95
    provider:
      prometheus:
        address: {prometheus}
        query: sum(rate(http_requests_total{{service=\"chaos\",code!~\"5..\"}}[10s])) / sum(rate(http_requests_total{{service=\"chaos\"}}[10s]))
"
    )
}

/// What the checkers found.
#[derive(Default)]
struct Findings {
    violations: Vec<String>,
    /// (rollout, pod hash) → distinct currentStepIndex values in the order seen.
    steps: HashMap<(String, String), Vec<i32>>,
}

type Shared = Arc<Mutex<Findings>>;

fn violation(f: &Shared, v: String) {
    eprintln!("VIOLATION {v}");
    f.lock().unwrap().violations.push(v);
}

/// Every VirtualService version: a canary weight above what the canary's available pods can take is a violation.
fn check_weights(ns: &TestNamespace, found: Shared) -> tokio::task::JoinHandle<()> {
    let (vs, rollouts, rss): (_, Api<Rollout>, Api<ReplicaSet>) = (ns.virtual_services(), ns.api(), ns.api());
    tokio::spawn(async move {
        let stream = watcher(vs, watcher::Config::default()).applied_objects();
        futures::pin_mut!(stream);
        let mut last: HashMap<String, i64> = HashMap::new();
        while let Some(Ok(obj)) = stream.next().await {
            let name = obj.name_any().trim_end_matches("-vs").to_string();
            let weight = obj.data["spec"]["http"][0]["route"][1]["weight"]
                .as_i64()
                .unwrap_or(0);
            if last.insert(name.clone(), weight) == Some(weight) || weight <= 0 {
                continue;
            }
            let Ok(ro) = rollouts.get(&name).await else {
                continue;
            };
            let Some(hash) = ro.status.and_then(|s| s.current_pod_hash) else {
                continue;
            };
            let available = rss
                .get(&format!("{name}-{hash}"))
                .await
                .ok()
                .and_then(|rs| rs.status)
                .and_then(|s| s.available_replicas)
                .unwrap_or(0);
            let need = (weight * REPLICAS + 99) / 100;
            if i64::from(available) < need {
                violation(
                    &found,
                    format!("{name}: weight {weight} with {available} available canary pods"),
                );
            }
        }
    })
}

/// Every Rollout version: within one revision (pod hash) currentStepIndex only moves forward one step at a time
/// (an abort returns it to 0).
fn check_steps(ns: &TestNamespace, found: Shared) -> tokio::task::JoinHandle<()> {
    let api: Api<Rollout> = ns.api();
    tokio::spawn(async move {
        let stream = watcher(api, watcher::Config::default()).applied_objects();
        futures::pin_mut!(stream);
        while let Some(Ok(ro)) = stream.next().await {
            let Some(st) = ro.status.as_ref() else { continue };
            let (Some(hash), Some(index)) = (st.current_pod_hash.clone(), st.current_step_index) else {
                continue;
            };
            let mut f = found.lock().unwrap();
            let seq = f.steps.entry((ro.name_any(), hash.clone())).or_default();
            let Some(&prev) = seq.last() else {
                seq.push(index);
                continue;
            };
            if index == prev {
                continue;
            }
            seq.push(index);
            // An abort goes back to step 0, as upstream's does; nothing else goes back or jumps.
            let aborted = st.abort == Some(true) && index == 0;
            if !aborted && (index < prev || index > prev + 1) {
                let v = format!("{} ({hash}): step {prev} → {index}", ro.name_any());
                drop(f);
                violation(&found, v);
            }
        }
    })
}

/// The number of times each (rollout, step-completed message) was told, summed over Event objects.
async fn step_events(ns: &TestNamespace) -> BTreeMap<(String, String), i32> {
    let events: Api<Event> = ns.api();
    let mut out = BTreeMap::new();
    for e in events.list(&Default::default()).await.unwrap().items {
        if e.reason.as_deref() != Some("RolloutStepCompleted") {
            continue;
        }
        let name = e.involved_object.name.clone().unwrap_or_default();
        let key = (name, e.message.clone().unwrap_or_default());
        *out.entry(key).or_insert(0) += e.count.unwrap_or(1);
    }
    out
}

/// What the test, as the user, did to each rollout.
#[derive(Clone, Debug, Default)]
struct Driver {
    /// The image of the release in flight.
    version: u32,
    /// Releases that reached the user's pause.
    judged: u32,
    /// The last action: true for promote, false for abort.
    promoted: Vec<bool>,
    /// Set while the user's action waits to be seen.
    acted: bool,
}

fn image(v: u32) -> String {
    format!("app:{v}")
}

/// One look at every rollout: releases, promotes or aborts as its state asks. Returns how many are idle
/// (Healthy or aborted with nothing in flight).
async fn drive(ns: &TestNamespace, drivers: &mut [Driver], releasing: bool) -> usize {
    let api: Api<Rollout> = ns.api();
    let mut idle = 0;
    for (i, d) in drivers.iter_mut().enumerate() {
        let name = format!("c{i:02}");
        let Ok(ro) = api.get(&name).await else { continue };
        let (ph, _) = phase(&ro);
        let st = ro.status.clone().unwrap_or_default();
        let on_release = ro
            .spec
            .template
            .as_ref()
            .and_then(|t| t.spec.as_ref())
            .map(|s| s.containers[0].image.clone().unwrap_or_default())
            == Some(image(d.version));
        let aborted = st.abort == Some(true);
        let settled = on_release
            && !d.acted
            && (ph == "Healthy" && st.stable_rs == st.current_pod_hash || aborted && ph == "Degraded");
        if d.acted {
            let seen = if *d.promoted.last().unwrap() {
                ph == "Healthy" && st.stable_rs == st.current_pod_hash
            } else {
                aborted
            };
            if seen {
                d.acted = false;
            }
            continue;
        }
        if settled {
            if releasing {
                d.version += 1;
                set_image(ns, &name, &image(d.version));
            } else {
                idle += 1;
            }
            continue;
        }
        if on_release && ph == "Paused" && step(&ro) == USER_PAUSE && !aborted {
            let promote_it = !(i as u32 + d.version).is_multiple_of(5);
            if promote_it {
                promote(ns, &name);
            } else {
                sluice_e2e::rollouts::patch_status(ns, &name, r#"{"status":{"abort":true}}"#);
            }
            d.judged += 1;
            d.promoted.push(promote_it);
            d.acted = true;
        }
    }
    idle
}

async fn leader(ops: &mut [Operator; 2]) -> Option<usize> {
    for (i, op) in ops.iter_mut().enumerate() {
        if op.exited() {
            continue;
        }
        if let Ok((200, body)) = op.readyz().await
            && body == "ok: leading"
        {
            return Some(i);
        }
    }
    None
}

/// Kills (or once stops) the leader every 30 s and restarts it as a standby; returns the failover times.
async fn chaos(ops: &mut [Operator; 2], until: Instant, found: &Shared) -> Vec<(String, f64)> {
    let mut failovers = Vec::new();
    let mut round = 0;
    while Instant::now() + Duration::from_secs(30) < until {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let Some(l) = leader(ops).await else {
            violation(found, "no leader at a chaos round".into());
            continue;
        };
        round += 1;
        let graceful = round == 3;
        let took = Instant::now();
        if graceful {
            assert!(ops[l].stop().unwrap(), "a graceful stop exits successfully");
        } else {
            ops[l].kill().unwrap();
        }
        ops[l].restart().unwrap();
        loop {
            if leader(ops).await.is_some() {
                break;
            }
            if took.elapsed() > Duration::from_secs(40) {
                violation(found, "no leader 40 s after a failover".into());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let how = if graceful { "graceful stop" } else { "SIGKILL" };
        failovers.push((how.to_string(), took.elapsed().as_secs_f64()));
    }
    failovers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_canaries_survive_a_leader_killed_every_thirty_seconds() {
    let ns = TestNamespace::new(SUPERVISOR, "chaos").await.unwrap();
    install_crds(&ns.info, &ns.client).await.unwrap();
    let traffic = TrafficCounters::start().await.unwrap();
    traffic.set_service("chaos", 100.0, 0.99);
    let prom_dir = std::env::temp_dir().join(format!("sluice-chaos-prom-{}", std::process::id()));
    let prom = Prometheus::start(&prom_dir, &[traffic.address().to_string()])
        .await
        .unwrap();
    ns.apply(&template(&prom.url)).unwrap();
    let env = [
        ("SLUICE_LEADER_ELECT", "true"),
        ("SLUICE_LEADER_ELECTION_NAMESPACE", ns.name.as_str()),
    ];
    let mut ops = [
        Operator::replica(&ns, "a", &env).unwrap(),
        Operator::replica(&ns, "b", &env).unwrap(),
    ];
    for i in 0..ROLLOUTS {
        let name = format!("c{i:02}");
        ns.apply(&services_and_vs(&name)).unwrap();
        ns.apply(&canary_rollout_yaml(
            &name,
            REPLICAS as i32,
            &image(0),
            &istio_strategy(&name, STEPS),
        ))
        .unwrap();
    }
    let found: Shared = Arc::default();
    let watches = [check_weights(&ns, found.clone()), check_steps(&ns, found.clone())];
    let started = Instant::now();
    let until = started + CHAOS;
    let mut drivers = vec![Driver::default(); ROLLOUTS];
    let driving = async {
        while Instant::now() < until {
            drive(&ns, &mut drivers, true).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let settle = Instant::now();
        while drive(&ns, &mut drivers, false).await < ROLLOUTS {
            assert!(
                settle.elapsed() < Duration::from_secs(180),
                "rollouts did not settle: {drivers:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let (failovers, ()) = tokio::join!(chaos(&mut ops, until, &found), driving);
    let events = step_events(&ns).await;
    for w in watches {
        w.abort();
    }
    drop(prom);
    std::fs::remove_dir_all(&prom_dir).ok();

    // Every user action is where it was left: promoted releases on stable, aborted ones aborted.
    let api: Api<Rollout> = ns.api();
    let mut late = Vec::new();
    for (i, d) in drivers.iter().enumerate() {
        let name = format!("c{i:02}");
        let ro = api.get(&name).await.unwrap();
        let st = ro.status.clone().unwrap_or_default();
        match d.promoted.last() {
            Some(true) => assert!(
                phase(&ro).0 == "Healthy" && st.stable_rs == st.current_pod_hash,
                "{name}: {st:?}"
            ),
            Some(false) => assert_eq!(st.abort, Some(true), "{name}: the abort was lost"),
            None => {}
        }
        // Each judged release completed steps 1..5 once.
        for s in 1..=USER_PAUSE {
            let told: i32 = events
                .iter()
                .filter(|((n, m), _)| *n == name && m.starts_with(&format!("Rollout step {s}/6 completed")))
                .map(|(_, c)| *c)
                .sum();
            if told != d.judged as i32 {
                // Fewer is a skipped step, more a repeated one.
                late.push(format!(
                    "{name}: step {s} told {told} times for {} releases",
                    d.judged
                ));
            }
        }
    }
    let judged: u32 = drivers.iter().map(|d| d.judged).sum();
    let aborted = drivers.iter().flat_map(|d| &d.promoted).filter(|p| !**p).count();
    eprintln!(
        "{judged} releases judged by the user ({aborted} aborted) over {:.0}s; failovers: {failovers:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        failovers.len() >= 4,
        "the leader changed at least four times: {failovers:?}"
    );
    assert!(
        judged as usize >= ROLLOUTS * 2,
        "each rollout was released and judged at least twice: {judged}"
    );
    let mut violations = found.lock().unwrap().violations.clone();
    violations.extend(late);
    assert!(
        violations.is_empty(),
        "{} violations: {:#?}",
        violations.len(),
        violations
    );
}
