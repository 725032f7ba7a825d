//! The control loop under the conditions of production: two replicas behind a Lease (one writes, the standby
//! takes over after a SIGKILL or a graceful stop), weights and selectors reset by another client put back at
//! once, user actions racing the controller's writes never overwritten, a ReplicaSet name taken by someone else,
//! and a cluster without Argo CD's CRDs. Failover and correction times are printed, not asserted tightly.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;
use sluice_crds::rollout::Rollout;
use sluice_e2e::{
    cluster::wait_for,
    harness::{Operator, TestNamespace, install_crds, namespace_with_operator},
    rollouts::{canary_rollout_yaml, istio_strategy, phase, promote, services_and_vs, step, wait_rollout},
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");

fn canary_weight(vs: &kube::api::DynamicObject) -> i64 {
    vs.data["spec"]["http"][0]["route"][1]["weight"]
        .as_i64()
        .unwrap_or(-1)
}

async fn wait_weight(ns: &TestNamespace, vs: &str, want: i64, secs: u64) -> Duration {
    let started = Instant::now();
    let api = ns.virtual_services();
    wait_for(
        &format!("{vs} canary weight {want}"),
        Duration::from_secs(secs),
        || async {
            let w = canary_weight(&api.get(vs).await?);
            if w == want {
                Ok(())
            } else {
                Err(anyhow::anyhow!("weight {w}"))
            }
        },
    )
    .await
    .unwrap();
    started.elapsed()
}

/// A paused Istio canary `name` of 4 replicas at setWeight 30.
async fn paused_canary(ns: &TestNamespace, name: &str) {
    ns.apply(&services_and_vs(name)).unwrap();
    let strategy = istio_strategy(name, "      - setWeight: 30\n      - pause: {}\n");
    ns.apply(&canary_rollout_yaml(name, 4, "app:1", &strategy))
        .unwrap();
    wait_rollout(ns, name, "first deploy Healthy", 60, |ro| {
        phase(ro).0 == "Healthy"
    })
    .await;
    sluice_e2e::rollouts::set_image(ns, name, "app:2");
    wait_rollout(ns, name, "paused at step 1", 60, |ro| {
        step(ro) == 1 && phase(ro).0 == "Paused"
    })
    .await;
    wait_weight(ns, &format!("{name}-vs"), 30, 30).await;
}

/// Writes (POST, PUT, PATCH, DELETE that are not dry runs) in an operator's request counters.
async fn writes(op: &Operator) -> u64 {
    let text = op.metrics().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("sluice_k8s_request_total{") && l.contains(r#"dry_run="false""#))
        .filter(|l| {
            ["POST", "PUT", "PATCH", "DELETE"]
                .iter()
                .any(|v| l.contains(&format!(r#"verb="{v}""#)))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

async fn leading(op: &Operator) -> bool {
    op.readyz()
        .await
        .is_ok_and(|(code, body)| code == 200 && body == "ok: leading")
}

/// Waits until the operator leads; panics after `secs`.
async fn wait_leading(op: &Operator, what: &str, secs: u64) {
    wait_for(what, Duration::from_secs(secs), || async {
        if leading(op).await {
            Ok(())
        } else {
            Err(anyhow::anyhow!("not yet"))
        }
    })
    .await
    .unwrap();
}

/// Waits until exactly one of the operators leads; returns its index and how long that took.
async fn leader_of(ops: &mut [&mut Operator], secs: u64) -> (usize, Duration) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        for (i, op) in ops.iter_mut().enumerate() {
            if !op.exited() && leading(op).await {
                return (i, started.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no operator leads after {secs}s");
}

#[tokio::test]
async fn two_replicas_one_leads_the_standby_writes_nothing_and_takes_over_after_a_kill_or_a_stop() {
    let ns = TestNamespace::new(SUPERVISOR, "leader").await.unwrap();
    install_crds(&ns.info, &ns.client).await.unwrap();
    let env = [
        ("SLUICE_LEADER_ELECT", "true"),
        ("SLUICE_LEADER_ELECTION_NAMESPACE", ns.name.as_str()),
    ];
    let mut a = Operator::replica(&ns, "a", &env).unwrap();
    let mut b = Operator::replica(&ns, "b", &env).unwrap();
    let (first, _) = leader_of(&mut [&mut a, &mut b], 30).await;
    let (leader, standby) = if first == 0 {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    // Ready once its caches are warm, and saying it is a standby.
    wait_for("the standby to be ready", Duration::from_secs(30), || async {
        match standby.readyz().await {
            Ok((200, body)) if body.starts_with("ok: standby") => Ok(()),
            other => Err(anyhow::anyhow!("{other:?}")),
        }
    })
    .await
    .unwrap();
    let (_, body) = standby.readyz().await.unwrap();
    assert!(
        body.contains(&format!("{}/argo-rollouts-controller-lock", ns.name)),
        "{body}"
    );

    // From here on the standby writes nothing (before, both candidates may have raced to create the Lease).
    let standby_writes = writes(standby).await;
    paused_canary(&ns, "ha").await;
    assert_eq!(writes(standby).await, standby_writes, "the standby wrote");

    // SIGKILL: the standby takes the Lease once it has not been renewed for the lease duration.
    leader.kill().unwrap();
    let killed = Instant::now();
    wait_leading(standby, "the standby to lead", 40).await;
    let after_kill = killed.elapsed();
    promote(&ns, "ha");
    wait_rollout(&ns, "ha", "promoted by the new leader", 60, |ro| {
        phase(ro).0 == "Healthy"
            && ro
                .status
                .as_ref()
                .is_some_and(|s| s.stable_rs == s.current_pod_hash)
    })
    .await;

    // The killed one comes back as a standby; a graceful stop of the leader releases the Lease.
    leader.restart().unwrap();
    wait_for(
        "the restarted replica to be a standby",
        Duration::from_secs(30),
        || async {
            match leader.readyz().await {
                Ok((200, body)) if body.starts_with("ok: standby") => Ok(()),
                other => Err(anyhow::anyhow!("{other:?}")),
            }
        },
    )
    .await
    .unwrap();
    let stopped = Instant::now();
    assert!(standby.stop().unwrap(), "a graceful stop exits successfully");
    wait_leading(leader, "the other replica to lead", 30).await;
    let after_stop = stopped.elapsed();
    assert!(
        standby.log().contains("released the leader lease"),
        "the stopped leader released the Lease"
    );
    sluice_e2e::rollouts::set_image(&ns, "ha", "app:3");
    wait_rollout(&ns, "ha", "the third leader walks the next release", 60, |ro| {
        step(ro) == 1 && phase(ro).0 == "Paused"
    })
    .await;
    eprintln!(
        "failover: {:.1}s after SIGKILL (lease 15s, retry 2s), {:.1}s after a graceful stop",
        after_kill.as_secs_f64(),
        after_stop.as_secs_f64()
    );
    assert!(
        after_stop < after_kill,
        "a released Lease is taken sooner than an expired one"
    );
}

#[tokio::test]
async fn a_weight_or_selector_reset_by_another_client_during_a_pause_is_put_back_at_once() {
    let (ns, _op) = namespace_with_operator(SUPERVISOR, "drift", &[]).await;
    paused_canary(&ns, "dr").await;
    let vs = ns.virtual_services();
    // What a GitOps tool applying the VirtualService from Git would do: all traffic to stable.
    let reset = json!([
        {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 100},
        {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 0}
    ]);
    let patch: json_patch::Patch = serde_json::from_value(reset).unwrap();
    vs.patch("dr-vs", &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .unwrap();
    let weight_fixed = wait_weight(&ns, "dr-vs", 30, 30).await;
    let events = ns.kubectl(&["get", "events", "-o", "json"], None).unwrap();
    assert!(
        events.contains("Traffic weight updated from 0 to 30"),
        "an event says what was corrected"
    );

    let services: Api<k8s_openapi::api::core::v1::Service> = ns.api();
    let before = sluice_e2e::rollouts::selector_hash(&ns, "dr-canary")
        .await
        .unwrap();
    let drop_hash = json!({"spec": {"selector": {"rollouts-pod-template-hash": null}}});
    services
        .patch("dr-canary", &PatchParams::default(), &Patch::Merge(drop_hash))
        .await
        .unwrap();
    let started = Instant::now();
    sluice_e2e::rollouts::wait_selector(&ns, "dr-canary", &before, 30).await;
    let selector_fixed = started.elapsed();
    eprintln!(
        "drift corrected: weight in {:.2}s, selector in {:.2}s (the Rollout's resync is 15 min)",
        weight_fixed.as_secs_f64(),
        selector_fixed.as_secs_f64()
    );
    let ro: Api<Rollout> = ns.api();
    assert_eq!(step(&ro.get("dr").await.unwrap()), 1, "the pause holds");
}

/// (resourceVersion, status.abort) of every version a watch saw.
type AbortLog = Arc<Mutex<Vec<(u64, bool)>>>;

/// Every version of the Rollout's `status.abort` a watch sees, with its resourceVersion.
fn watch_abort(ns: &TestNamespace, name: &str) -> (AbortLog, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let api: Api<Rollout> = ns.api();
    let (seen2, name) = (seen.clone(), name.to_string());
    let task = tokio::spawn(async move {
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let stream = watcher(api, config).applied_objects();
        futures::pin_mut!(stream);
        while let Some(Ok(ro)) = stream.next().await {
            let rv = ro.resource_version().and_then(|v| v.parse().ok()).unwrap_or(0);
            let abort = ro.status.as_ref().and_then(|s| s.abort).unwrap_or(false);
            seen2.lock().unwrap().push((rv, abort));
        }
    });
    (seen, task)
}

#[tokio::test]
async fn aborts_and_retries_racing_the_controller_thousands_of_times_are_never_overwritten() {
    let (ns, _op) = namespace_with_operator(SUPERVISOR, "race", &[]).await;
    let strategy = "      steps:\n      - setWeight: 50\n      - pause: {}\n";
    ns.apply(&canary_rollout_yaml("race", 2, "app:1", strategy))
        .unwrap();
    wait_rollout(&ns, "race", "first deploy Healthy", 60, |ro| {
        phase(ro).0 == "Healthy"
    })
    .await;
    sluice_e2e::rollouts::set_image(&ns, "race", "app:2");
    wait_rollout(&ns, "race", "paused", 60, |ro| phase(ro).0 == "Paused").await;
    let (seen, task) = watch_abort(&ns, "race");
    let api: Api<Rollout> = ns.api();
    // The client's writes: (resourceVersion it produced, the abort it wrote). Each abort makes the controller
    // scale the canary down and write the status; each retry starts the canary again: it writes all along.
    let mut written: Vec<(u64, bool)> = Vec::new();
    let rounds = 2000;
    for i in 0..rounds {
        let abort = i % 2 == 0;
        let patch = json!({"status": {"abort": abort}});
        let ro = api
            .patch_status("race", &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
        let rv = ro.resource_version().and_then(|v| v.parse().ok()).unwrap();
        written.push((rv, abort));
        // Between 0 and ~4 ms: sometimes before the controller reacts, sometimes while it writes.
        tokio::time::sleep(Duration::from_micros((i * 7919 % 4000) as u64)).await;
    }
    let (last_rv, last) = *written.last().unwrap();
    assert!(!last, "the last write is a retry");
    wait_rollout(&ns, "race", "the last retry walked to the pause", 60, |ro| {
        phase(ro).0 == "Paused" && ro.status.as_ref().and_then(|s| s.abort) != Some(true)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    task.abort();
    let seen = seen.lock().unwrap().clone();
    let ours: BTreeMap<u64, bool> = written.iter().copied().collect();
    let mut violations = Vec::new();
    let mut controller_writes = 0;
    for (rv, abort) in &seen {
        if ours.contains_key(rv) || *rv < written[0].0 {
            continue;
        }
        controller_writes += 1;
        // The user's value in force at this version: the last client write before it.
        let in_force = ours.range(..*rv).next_back().map(|(_, a)| *a).unwrap_or(false);
        if *abort != in_force {
            violations.push(format!(
                "rv {rv}: abort={abort} while the user's last write said {in_force}"
            ));
        }
    }
    eprintln!(
        "{rounds} user writes, {controller_writes} controller writes seen between them, last user rv {last_rv}"
    );
    assert!(
        controller_writes >= 10,
        "the controller raced the client ({controller_writes} writes)"
    );
    assert!(violations.is_empty(), "user actions overwritten: {violations:?}");
}

#[tokio::test]
async fn a_replica_set_name_taken_by_another_owner_bumps_the_collision_count() {
    let ns = TestNamespace::new(SUPERVISOR, "collision").await.unwrap();
    install_crds(&ns.info, &ns.client).await.unwrap();
    let manifest = canary_rollout_yaml("clash", 2, "app:1", "      steps:\n      - setWeight: 50\n");
    // Created before any operator runs: the template is hashed as the API server stores it.
    ns.apply(&manifest).unwrap();
    let stored = Api::<Rollout>::namespaced(ns.client.clone(), &ns.name)
        .get("clash")
        .await
        .unwrap();
    let template = serde_json::to_value(stored.spec.template.as_ref().unwrap()).unwrap();
    let mut oracle = sluice_e2e::gohash::Oracle::start(sluice_e2e::gohash::Build::ControlPlane).unwrap();
    let first = oracle.template(&template, None).unwrap().hash;
    let bumped = oracle.template(&template, Some(1)).unwrap().hash;
    assert_ne!(first, bumped);
    // Someone else's ReplicaSet holds the name the Rollout's first ReplicaSet would get.
    let squatter: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": format!("clash-{first}")},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "other"}},
            "template": {"metadata": {"labels": {"app": "other"}}, "spec": {"containers": [{"name": "o", "image": "other"}]}}
        }
    }))
    .unwrap();
    let rss: Api<ReplicaSet> = ns.api();
    rss.create(&PostParams::default(), &squatter).await.unwrap();
    let _op = Operator::start(&ns).unwrap();
    let ro = wait_rollout(&ns, "clash", "Healthy on a bumped hash", 60, |ro| {
        phase(ro).0 == "Healthy" && ro.status.as_ref().and_then(|s| s.collision_count) == Some(1)
    })
    .await;
    let st = ro.status.unwrap();
    assert_eq!(st.current_pod_hash.as_deref(), Some(bumped.as_str()));
    assert!(rss.get(&format!("clash-{bumped}")).await.is_ok());
    let squatter = rss.get(&format!("clash-{first}")).await.unwrap();
    assert!(
        squatter.owner_references().is_empty(),
        "the other ReplicaSet is left alone"
    );
}

#[tokio::test]
async fn rollouts_are_served_without_the_application_crd_and_applications_once_it_is_installed() {
    let bin_dir = sluice_e2e::build_bins().unwrap();
    let dir = std::env::temp_dir().join(format!("sluice-no-argocd-{}", std::process::id()));
    let mut cp = sluice_e2e::cluster::ControlPlane::start(&sluice_e2e::cluster::Options {
        dir: dir.clone(),
        bin_dir,
        nodes: 1,
    })
    .await
    .unwrap();
    let info = cp.info.clone();
    let client = info.client().await.unwrap();
    let files = sluice_e2e::harness::crd_files();
    let (gitops, rollouts): (Vec<_>, Vec<_>) = files.iter().partition(|f| {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        name.contains("application") || name.contains("appproject")
    });
    let apply = |paths: &[&std::path::PathBuf]| {
        let mut args = vec!["apply".to_string(), "--server-side".into()];
        for p in paths {
            args.push("-f".into());
            args.push(p.display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sluice_e2e::harness::kubectl(&info, &args, None).unwrap();
    };
    apply(&rollouts);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = dir.join("operator.log");
    let mut operator = std::process::Command::new(sluice_e2e::harness::sluice_binary().unwrap())
        .args(["run", "--metrics-addr=127.0.0.1:0", "--webhook-addr=off"])
        .arg(format!(
            "--healthz-addr=127.0.0.1:{}",
            sluice_e2e::cluster::free_port().unwrap()
        ))
        .arg(format!("--kubeconfig={}", info.kubeconfig.display()))
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let result = async {
        let ns_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        let ns: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(json!({"metadata": {"name": "argocd"}})).unwrap();
        ns_api.create(&PostParams::default(), &ns).await?;
        let ro: Rollout =
            serde_yaml::from_str(&canary_rollout_yaml("plain", 1, "app:1", "      steps: []\n"))?;
        let rollouts: Api<Rollout> = Api::namespaced(client.clone(), "default");
        rollouts.create(&PostParams::default(), &ro).await?;
        wait_for("the Rollout to be Healthy", Duration::from_secs(60), || async {
            let ro = rollouts.get("plain").await?;
            if phase(&ro).0 == "Healthy" {
                Ok(())
            } else {
                Err(anyhow::anyhow!("{:?}", phase(&ro)))
            }
        })
        .await?;
        apply(&gitops);
        let app = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "late", "namespace": "argocd"},
            "spec": {"project": "default",
                "source": {"repoURL": "file:///nonexistent.git", "targetRevision": "HEAD", "path": "."},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": "default"}}
        });
        wait_for(
            "the Application CRD to be served",
            Duration::from_secs(30),
            || async {
                sluice_e2e::harness::kubectl(&info, &["apply", "-f", "-"], Some(&app.to_string())).map(|_| ())
            },
        )
        .await?;
        let apps: Api<sluice_crds::application::Application> = Api::namespaced(client.clone(), "argocd");
        wait_for(
            "the Application to get a condition",
            Duration::from_secs(60),
            || async {
                let app = apps.get("late").await?;
                let conditions = app.status.and_then(|s| s.conditions).unwrap_or_default();
                if conditions.iter().any(|c| c.type_ == "ComparisonError") {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("none yet"))
                }
            },
        )
        .await
    }
    .await;
    let _ = operator.kill();
    let _ = operator.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    cp.stop().await;
    std::fs::remove_dir_all(&dir).ok();
    result.unwrap_or_else(|e| panic!("{e:#}\noperator log:\n{text}"));
    assert!(text.contains("starting the Application controller"), "{text}");
}
