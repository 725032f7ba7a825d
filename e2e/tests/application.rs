//! The Application controller end to end: a real Git server (git daemon, and git http-backend behind basic
//! auth) on 127.0.0.1, the real API server with kwok nodes, and `sluice run`. Each test's Applications live
//! in its own namespace, which the operator runs as its Argo CD namespace, and deploy into it.

use std::time::Duration;

use anyhow::bail;
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Event},
};
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use sluice_crds::application::Application;
use sluice_e2e::{
    apps::{
        WAIT, app, cm_value, config_map, field, git_repo, github_push, seed, sync_is, synced_healthy,
        wait_app, wait_condition,
    },
    cluster::wait_for,
    harness::{Operator, TestNamespace, install_crds},
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");

async fn setup(test: &str, env: &[(&str, &str)]) -> (TestNamespace, Operator) {
    let mut ns = TestNamespace::new(SUPERVISOR, test).await.expect("namespace");
    ns.dump_kinds
        .extend(["applications", "configmaps", "deployments", "jobs"].map(String::from));
    install_crds(&ns.info, &ns.client).await.expect("CRDs");
    let op = Operator::start_with_env(&ns, env).expect("operator starts");
    (ns, op)
}

fn deployment(image: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: web
        image: {image}
"#
    )
}

fn application(ns: &TestNamespace, name: &str, repo_url: &str, path: &str, policy: Value) -> String {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": ns.name},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo_url, "targetRevision": "HEAD", "path": path},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": ns.name},
            "syncPolicy": policy,
        }
    })
    .to_string()
}

/// `kubectl patch` of a ConfigMap's value, as a user's live edit.
fn edit_value(ns: &TestNamespace, name: &str, value: &str) {
    let patch = json!({"data": {"value": value}}).to_string();
    ns.kubectl(&["patch", "configmap", name, "--type=merge", "-p", &patch], None)
        .expect("kubectl patch");
}

#[tokio::test]
async fn a_directory_is_synced_and_kept_equal_to_git_by_polling() {
    let (_git, repo) = git_repo("shop").await;
    let first = seed(
        &repo,
        &[
            ("apps/web/deploy.yaml", deployment("web:1")),
            ("apps/web/config.yaml", config_map("settings", "one", "")),
            (
                "apps/web/extra.json",
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"extra"},"data":{"value":"x"}}"#
                    .into(),
            ),
            ("README.md", "not a manifest".into()),
        ],
    )
    .await;
    let (ns, _op) = setup("app-poll", &[("SLUICE_APP_RESYNC", "3")]).await;
    let policy = json!({"automated": {"prune": true, "selfHeal": true}});
    ns.apply(&application(&ns, "shop", &repo.git_url(), "apps/web", policy))
        .expect("apply app");
    let a = wait_app(&ns, "shop", "first sync", synced_healthy(&first)).await;
    assert_eq!(field(&a, "/status/sourceType"), "Directory");
    assert_eq!(a["status"]["summary"]["images"], json!(["web:1"]));
    assert_eq!(
        a["status"]["resources"].as_array().map(Vec::len),
        Some(3),
        "{}",
        a["status"]["resources"]
    );
    assert_eq!(field(&a, "/status/operationState/phase"), "Succeeded");
    assert_eq!(
        a["status"]["operationState"]["operation"]["initiatedBy"]["automated"],
        json!(true)
    );
    assert!(a.get("operation").is_none_or(Value::is_null), "operation cleared");
    assert_eq!(a["status"]["history"].as_array().map(Vec::len), Some(1));
    let cm = ns
        .api::<ConfigMap>()
        .get("settings")
        .await
        .expect("synced configmap");
    let id = cm.metadata.annotations.unwrap_or_default()["argocd.argoproj.io/tracking-id"].clone();
    assert_eq!(id, format!("shop:/ConfigMap:{}/settings", ns.name));
    let owners: Vec<String> = cm
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(owners.contains(&"argocd-controller".to_string()), "{owners:?}");

    // A commit that changes the image reaches the cluster by polling.
    repo.write("apps/web/deploy.yaml", deployment("web:2"))
        .await
        .unwrap();
    let second = repo.commit("web 2").await.unwrap();
    wait_app(&ns, "shop", "the new image synced", synced_healthy(&second)).await;
    let d = ns.api::<Deployment>().get("web").await.unwrap();
    let image = d.spec.unwrap().template.spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some("web:2"));

    // A removed file is pruned.
    repo.remove("apps/web/extra.json").await.unwrap();
    let third = repo.commit("no extra").await.unwrap();
    wait_app(&ns, "shop", "prune of extra", synced_healthy(&third)).await;
    wait_for("extra pruned", WAIT, || async {
        match ns.api::<ConfigMap>().get_opt("extra").await? {
            None => Ok(()),
            Some(_) => bail!("still there"),
        }
    })
    .await
    .unwrap();

    // selfHeal puts back what `kubectl edit` changed.
    edit_value(&ns, "settings", "edited");
    wait_for("self-heal", WAIT, || async {
        match cm_value(&ns, "settings").await.as_deref() {
            Some("one") => Ok(()),
            other => bail!("value {other:?}"),
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_webhook_push_refreshes_at_once_and_without_self_heal_drift_shows_out_of_sync() {
    let (_git, repo) = git_repo("hooked").await;
    let first = seed(&repo, &[("cm.yaml", config_map("settings", "one", ""))]).await;
    let (ns, op) = setup("app-webhook", &[]).await;
    let policy = json!({"automated": {}});
    ns.apply(&application(&ns, "hooked", &repo.git_url(), ".", policy))
        .expect("apply app");
    wait_app(&ns, "hooked", "first sync", synced_healthy(&first)).await;

    // Without selfHeal a live edit makes the app OutOfSync and stays.
    edit_value(&ns, "settings", "edited");
    wait_app(&ns, "hooked", "OutOfSync after the edit", sync_is("OutOfSync")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        cm_value(&ns, "settings").await.as_deref(),
        Some("edited"),
        "no self-heal"
    );

    // A push announced by webhook is synced long before the 180 s resync.
    repo.write("cm.yaml", config_map("settings", "two", ""))
        .await
        .unwrap();
    let second = repo.commit("two").await.unwrap();
    let url = format!("http://127.0.0.1:{}/api/webhook", op.webhook_port);
    let response = reqwest::Client::new()
        .post(&url)
        .header("X-GitHub-Event", "push")
        .header("Content-Type", "application/json")
        .body(github_push(&repo, &first, &second, &["cm.yaml"]).to_string())
        .send()
        .await
        .expect("webhook reachable");
    assert!(response.status().is_success(), "{}", response.status());
    wait_for("the pushed value", Duration::from_secs(30), || async {
        match cm_value(&ns, "settings").await.as_deref() {
            Some("two") => Ok(()),
            other => bail!("value {other:?}"),
        }
    })
    .await
    .unwrap();
    wait_app(
        &ns,
        "hooked",
        "synced to the pushed commit",
        synced_healthy(&second),
    )
    .await;
    let bad = reqwest::Client::new().post(&url).body("{}").send().await.unwrap();
    assert_eq!(
        bad.status().as_u16(),
        400,
        "a request of no known provider is refused"
    );
}

#[tokio::test]
async fn manual_operations_over_http_with_credentials_dry_run_and_prune() {
    let (git, repo) = git_repo("private").await;
    let secret_value = "s3cr3t-value-never-shown";
    let first = seed(
        &repo,
        &[
            ("a.yaml", config_map("alpha", "1", "")),
            ("b.yaml", config_map("beta", "1", "")),
            (
                "secret.yaml",
                format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  token: {secret_value}\n"),
            ),
        ],
    )
    .await;
    let (ns, op) = setup("app-manual", &[]).await;
    let repo_secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "private-repo", "labels": {"argocd.argoproj.io/secret-type": "repository"}},
        "stringData": {"type": "git", "url": repo.http_url(), "username": git.username(), "password": git.password()}
    });
    ns.apply(&repo_secret.to_string()).expect("repo secret");
    ns.apply(&application(&ns, "manual", &repo.http_url(), ".", json!({})))
        .expect("apply app");
    let a = wait_app(&ns, "manual", "compared, not synced", sync_is("OutOfSync")).await;
    assert_eq!(field(&a, "/status/sync/revision"), first);
    assert_eq!(field(&a, "/status/health/status"), "Missing");
    let apps = ns.api::<Application>();
    let sync = |body: Value| {
        let apps = apps.clone();
        async move {
            apps.patch(
                "manual",
                &PatchParams::default(),
                &Patch::Merge(json!({"operation": body})),
            )
            .await
            .map(|_| ())
        }
    };

    // A dry run changes nothing.
    sync(json!({"initiatedBy": {"username": "me"}, "sync": {"dryRun": true}}))
        .await
        .unwrap();
    let a = wait_app(&ns, "manual", "dry run done", |a| {
        match field(a, "/status/operationState/phase") {
            "Succeeded" => Ok(()),
            p => bail!("phase {p:?}"),
        }
    })
    .await;
    assert!(ns.api::<ConfigMap>().get_opt("alpha").await.unwrap().is_none());
    assert!(
        a["status"].get("history").is_none_or(Value::is_null),
        "no history for a dry run"
    );

    // A real sync.
    sync(json!({"initiatedBy": {"username": "me"}, "sync": {"syncStrategy": {"hook": {}}}}))
        .await
        .unwrap();
    wait_app(&ns, "manual", "synced", synced_healthy(&first)).await;

    // A removed file stays until a sync with prune.
    repo.remove("b.yaml").await.unwrap();
    let second = repo.commit("no beta").await.unwrap();
    apps.patch(
        "manual",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}})),
    )
    .await
    .unwrap();
    let a = wait_app(&ns, "manual", "beta requires pruning", |a| {
        let needs = a["status"]["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["name"] == "beta" && r["requiresPruning"] == true);
        if needs && field(a, "/status/sync/revision") == second {
            Ok(())
        } else {
            bail!("{}", a["status"]["resources"])
        }
    })
    .await;
    assert!(
        a["metadata"]["annotations"]
            .get("argocd.argoproj.io/refresh")
            .is_none(),
        "refresh annotation removed"
    );
    sync(json!({"initiatedBy": {"username": "me"}, "sync": {}}))
        .await
        .unwrap();
    wait_app(&ns, "manual", "sync without prune", |a| {
        let done = field(a, "/status/operationState/phase") == "Succeeded"
            && field(a, "/status/operationState/syncResult/revision") == second;
        if done {
            Ok(())
        } else {
            bail!("{}", a["status"]["operationState"])
        }
    })
    .await;
    assert!(
        ns.api::<ConfigMap>().get_opt("beta").await.unwrap().is_some(),
        "not pruned without prune"
    );
    sync(json!({"initiatedBy": {"username": "me"}, "sync": {"prune": true}}))
        .await
        .unwrap();
    let a = wait_app(&ns, "manual", "pruned", synced_healthy(&second)).await;
    assert!(ns.api::<ConfigMap>().get_opt("beta").await.unwrap().is_none());
    let pruned = a["status"]["operationState"]["syncResult"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "beta" && r["status"] == "Pruned");
    assert!(pruned, "{}", a["status"]["operationState"]);
    assert!(a["status"]["history"].as_array().map(Vec::len) >= Some(2));

    // Neither the repository password nor the Secret's value shows anywhere.
    let everything = format!(
        "{}\n{}\n{}",
        serde_json::to_string(&app(&ns, "manual").await.unwrap()).unwrap(),
        serde_json::to_string(
            &ns.api::<Event>()
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
        )
        .unwrap(),
        op.log()
    );
    assert!(!everything.contains(git.password()), "repository password leaked");
    assert!(!everything.contains(secret_value), "secret value leaked");
}

fn hook_job(name: &str, hook: &str, ok: bool) -> String {
    // A failing Job: its pod is never scheduled, and its deadline fails it.
    let (image, fail, pin) = if ok {
        ("job:1", "", "")
    } else {
        (
            "job:fail",
            "\n  backoffLimit: 0\n  activeDeadlineSeconds: 2",
            "\n      nodeSelector: {no-such-node: \"true\"}",
        )
    };
    format!(
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
  annotations:
    argocd.argoproj.io/hook: {hook}
    argocd.argoproj.io/hook-delete-policy: BeforeHookCreation
spec:{fail}
  template:
    spec:
      restartPolicy: Never{pin}
      containers:
      - name: run
        image: {image}
"#
    )
}

#[tokio::test]
async fn waves_and_hooks_run_in_order() {
    let (_git, repo) = git_repo("waves").await;
    let wave = |w: i32| format!("  annotations:\n    argocd.argoproj.io/sync-wave: \"{w}\"\n");
    let first = seed(
        &repo,
        &[
            ("pre.yaml", hook_job("migrate", "PreSync", true)),
            ("w0.yaml", config_map("first", "0", &wave(0))),
            ("w1.yaml", config_map("second", "1", &wave(1))),
            ("post.yaml", hook_job("smoke", "PostSync", true)),
        ],
    )
    .await;
    let (ns, _op) = setup("app-waves", &[("SLUICE_APP_RESYNC", "3")]).await;
    ns.apply(&application(
        &ns,
        "waves",
        &repo.git_url(),
        ".",
        json!({"automated": {}, "retry": {"limit": 1, "backoff": {"duration": "1s"}}}),
    ))
    .expect("apply app");
    wait_app(&ns, "waves", "all waves synced", synced_healthy(&first)).await;
    let a = wait_app(&ns, "waves", "the operation finished", |a| {
        match field(a, "/status/operationState/phase") {
            "Succeeded" | "Failed" | "Error" => Ok(()),
            p => bail!("phase {p}"),
        }
    })
    .await;
    assert_eq!(
        field(&a, "/status/operationState/phase"),
        "Succeeded",
        "{}",
        a["status"]["operationState"]
    );
    let results = a["status"]["operationState"]["syncResult"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let order: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["syncPhase"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        order,
        vec!["PreSync:migrate", "Sync:first", "Sync:second", "PostSync:smoke"],
        "{results:?}"
    );
    for r in &results {
        assert_eq!(r["hookPhase"], "Succeeded", "{r}");
    }
    assert_eq!(
        a["status"]["resources"].as_array().map(Vec::len),
        Some(2),
        "hooks are not resources"
    );

    // A failing PreSync hook fails the sync, runs the SyncFail hook, and applies nothing of the Sync phase.
    repo.write("pre.yaml", hook_job("migrate", "PreSync", false))
        .await
        .unwrap();
    repo.write("fail.yaml", hook_job("on-fail", "SyncFail", true))
        .await
        .unwrap();
    repo.write("w0.yaml", config_map("first", "changed", &wave(0)))
        .await
        .unwrap();
    let second = repo.commit("failing migration").await.unwrap();
    let a = wait_app(&ns, "waves", "the failed sync", |a| {
        let failed = field(a, "/status/operationState/phase") == "Failed"
            && field(a, "/status/operationState/syncResult/revision") == second;
        if failed {
            Ok(())
        } else {
            bail!("{}", a["status"]["operationState"])
        }
    })
    .await;
    let results = a["status"]["operationState"]["syncResult"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        results
            .iter()
            .any(|r| r["name"] == "on-fail" && r["syncPhase"] == "SyncFail"),
        "{results:?}"
    );
    assert_eq!(
        cm_value(&ns, "first").await.as_deref(),
        Some("0"),
        "the Sync phase did not run"
    );
    // The automated sync does not loop on the failed revision: it says so.
    wait_app(&ns, "waves", "SyncError after the failed attempt", |a| {
        let found = a["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "SyncError");
        if found {
            Ok(())
        } else {
            bail!("{}", a["status"]["conditions"])
        }
    })
    .await;
}

#[tokio::test]
async fn bad_input_gets_a_condition_and_keeps_the_last_state() {
    let (_git, repo) = git_repo("bad").await;
    let first = seed(&repo, &[("ok.yaml", config_map("fine", "1", ""))]).await;
    let (ns, _op) = setup("app-bad", &[("SLUICE_APP_RESYNC", "2")]).await;
    let apps = ns.api::<Application>();
    ns.apply(&application(
        &ns,
        "bad",
        &repo.git_url(),
        ".",
        json!({"automated": {}, "retry": {"limit": 2, "backoff": {"duration": "1s"}}}),
    ))
    .expect("apply app");
    wait_app(&ns, "bad", "first sync", synced_healthy(&first)).await;

    let condition = |kind: &'static str, text: &'static str| {
        move |a: &Value| {
            let found = a["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == kind && c["message"].as_str().is_some_and(|m| m.contains(text)));
            if found {
                Ok(())
            } else {
                bail!("{}", a["status"]["conditions"])
            }
        }
    };
    // An unknown revision: a condition, and the last synced state stays.
    apps.patch(
        "bad",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"source": {"targetRevision": "no-such-branch"}}})),
    )
    .await
    .unwrap();
    let a = wait_app(
        &ns,
        "bad",
        "unknown revision",
        condition("ComparisonError", "no-such-branch"),
    )
    .await;
    assert_eq!(field(&a, "/status/sync/revision"), first, "last state kept");
    assert_eq!(cm_value(&ns, "fine").await.as_deref(), Some("1"));

    // An unreachable repository.
    apps.patch("bad", &PatchParams::default(), &Patch::Merge(json!({"spec": {"source": {"targetRevision": "HEAD", "repoURL": "git://127.0.0.1:1/nothing.git"}}})))
        .await
        .unwrap();
    wait_app(
        &ns,
        "bad",
        "unreachable repo",
        condition("ComparisonError", "unable to connect"),
    )
    .await;

    // A manifest that does not parse names its file.
    apps.patch(
        "bad",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"source": {"repoURL": repo.git_url()}}})),
    )
    .await
    .unwrap();
    repo.write(
        "broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: [unclosed\n",
    )
    .await
    .unwrap();
    repo.commit("broken").await.unwrap();
    wait_app(
        &ns,
        "bad",
        "parse error",
        condition("ComparisonError", "broken.yaml"),
    )
    .await;
    assert_eq!(cm_value(&ns, "fine").await.as_deref(), Some("1"));

    // A resource the server refuses fails the sync with its message, is retried with backoff, and the rest
    // of the cluster is left as it was.
    repo.remove("broken.yaml").await.unwrap();
    repo.write("ok.yaml", config_map("fine", "2", "")).await.unwrap();
    repo.write(
        "refused.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_A_Valid_Name\ndata: {}\n",
    )
    .await
    .unwrap();
    let refused = repo.commit("refused").await.unwrap();
    let a = wait_app(&ns, "bad", "retries exhausted", |a| {
        let s = &a["status"]["operationState"];
        let done =
            s["phase"] == "Failed" && s["syncResult"]["revision"] == refused.as_str() && s["retryCount"] == 2;
        if done { Ok(()) } else { bail!("{s}") }
    })
    .await;
    let results = a["status"]["operationState"]["syncResult"]["resources"].to_string();
    assert!(results.contains("Not_A_Valid_Name"), "{results}");
    assert!(
        results.contains("RFC 1123") || results.contains("invalid"),
        "{results}"
    );
    assert_eq!(
        cm_value(&ns, "fine").await.as_deref(),
        Some("1"),
        "nothing applied after the failed dry run"
    );
}

#[tokio::test]
async fn a_kustomize_overlay_and_a_helm_chart_are_rendered_by_the_real_tools() {
    let (_git, repo) = git_repo("tools").await;
    let rev = seed(
        &repo,
        &[
            ("base/cm.yaml", config_map("settings", "base", "")),
            ("base/kustomization.yaml", "resources:\n- cm.yaml\n".into()),
            ("overlay/kustomization.yaml", "resources:\n- ../base\ncommonLabels:\n  tier: web\n".into()),
            ("chart/Chart.yaml", "apiVersion: v2\nname: shop\nversion: 0.1.0\n".into()),
            ("chart/values.yaml", "color: red\n".into()),
            (
                "chart/templates/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-colors\ndata:\n  value: {{ .Values.color | quote }}\n".into(),
            ),
        ],
    )
    .await;
    let (ns, _op) = setup("app-tools", &[]).await;
    let mut kustomized: Value = serde_json::from_str(&application(
        &ns,
        "kust",
        &repo.git_url(),
        "overlay",
        json!({"automated": {}}),
    ))
    .unwrap();
    kustomized["spec"]["source"]["kustomize"] =
        json!({"namePrefix": "prod-", "commonLabels": {"team": "shop"}});
    ns.apply(&kustomized.to_string()).expect("kustomize app");
    let mut helm: Value = serde_json::from_str(&application(
        &ns,
        "chart",
        &repo.git_url(),
        "chart",
        json!({"automated": {}}),
    ))
    .unwrap();
    helm["spec"]["source"]["helm"] =
        json!({"releaseName": "web", "parameters": [{"name": "color", "value": "blue"}]});
    ns.apply(&helm.to_string()).expect("helm app");
    let a = wait_app(&ns, "kust", "kustomize app synced", synced_healthy(&rev)).await;
    assert_eq!(field(&a, "/status/sourceType"), "Kustomize");
    let cm = ns
        .api::<ConfigMap>()
        .get("prod-settings")
        .await
        .expect("prefixed by the override");
    let labels = cm.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("shop"));
    assert_eq!(labels.get("tier").map(String::as_str), Some("web"));
    let a = wait_app(&ns, "chart", "helm app synced", synced_healthy(&rev)).await;
    assert_eq!(field(&a, "/status/sourceType"), "Helm");
    assert_eq!(cm_value(&ns, "web-colors").await.as_deref(), Some("blue"));
}

/// The AppProject `team` of the test: one repository, the test namespace on any cluster, no cluster-scoped
/// kind, no Secret.
fn team_project(ns: &TestNamespace, repo_url: &str) -> String {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": "team", "namespace": ns.name},
        "spec": {
            "sourceRepos": [repo_url],
            "destinations": [{"server": "*", "namespace": ns.name}],
            "namespaceResourceBlacklist": [{"group": "", "kind": "Secret"}],
        }
    })
    .to_string()
}

/// An app of project `team` (else as `application`), its Helm parameters given.
fn team_app(
    ns: &TestNamespace,
    name: &str,
    repo_url: &str,
    path: &str,
    namespace: &str,
    helm: Value,
) -> String {
    let mut app: Value =
        serde_json::from_str(&application(ns, name, repo_url, path, json!({"automated": {}}))).unwrap();
    app["spec"]["project"] = json!("team");
    app["spec"]["destination"]["namespace"] = json!(namespace);
    if !helm.is_null() {
        app["spec"]["source"]["helm"] = helm;
    }
    app.to_string()
}

#[tokio::test]
async fn an_app_project_keeps_apps_and_what_their_charts_render_in_their_lane() {
    let (git, repo) = git_repo("team").await;
    let other = git.create_repo("other").await.expect("other repo");
    let chart = "{{- if .Values.escape }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: escaped
  namespace: kube-system
data: {value: out}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ .Release.Namespace }}-escalation
rules: [{apiGroups: ['*'], resources: ['*'], verbs: ['*']}]
---
{{- end }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: inside
data: {value: in}
";
    let rev = seed(
        &repo,
        &[
            ("plain/cm.yaml", config_map("plain", "1", "")),
            (
                "chart/Chart.yaml",
                "apiVersion: v2\nname: lane\nversion: 0.1.0\n".into(),
            ),
            ("chart/values.yaml", "escape: false\n".into()),
            ("chart/templates/all.yaml", chart.into()),
        ],
    )
    .await;
    seed(&other, &[("cm.yaml", config_map("foreign", "1", ""))]).await;
    let (ns, _op) = setup("app-project", &[]).await;
    ns.apply(&team_project(&ns, &repo.git_url())).expect("AppProject");

    // Spec level: a destination, a repository or a project outside the lane is InvalidSpecError.
    ns.apply(&team_app(
        &ns,
        "elsewhere",
        &repo.git_url(),
        "plain",
        "kube-system",
        Value::Null,
    ))
    .unwrap();
    ns.apply(&team_app(
        &ns,
        "foreign",
        &other.git_url(),
        ".",
        &ns.name,
        Value::Null,
    ))
    .unwrap();
    let mut orphan: Value = serde_json::from_str(&team_app(
        &ns,
        "orphan",
        &repo.git_url(),
        "plain",
        &ns.name,
        Value::Null,
    ))
    .unwrap();
    orphan["spec"]["project"] = json!("nope");
    ns.apply(&orphan.to_string()).unwrap();
    let denied = "application destination server 'https://kubernetes.default.svc' and namespace 'kube-system' do not match any of the allowed destinations in project 'team'";
    wait_condition(&ns, "elsewhere", "InvalidSpecError", denied).await;
    let foreign = format!(
        "application repo {} is not permitted in project 'team'",
        other.git_url()
    );
    wait_condition(&ns, "foreign", "InvalidSpecError", &foreign).await;
    wait_condition(
        &ns,
        "orphan",
        "InvalidSpecError",
        "Application referencing project nope which does not exist",
    )
    .await;
    assert!(ns.api::<ConfigMap>().get_opt("foreign").await.unwrap().is_none());
    // A sync asked of an app its project refuses ends in Error with that message; it does not hang.
    let sync = json!({"operation": {"sync": {}, "initiatedBy": {"username": "admin"}}});
    ns.api::<Application>()
        .patch("orphan", &PatchParams::default(), &Patch::Merge(&sync))
        .await
        .unwrap();
    let a = wait_app(&ns, "orphan", "the refused sync ended", |a| {
        match field(a, "/status/operationState/phase") {
            "Error" => Ok(()),
            p => bail!("phase {p:?}: {}", a["status"]["operationState"]),
        }
    })
    .await;
    assert_eq!(
        field(&a, "/status/operationState/message"),
        "Application referencing project nope which does not exist"
    );
    assert!(a.get("operation").is_none_or(Value::is_null), "operation cleared");

    // Resource level: a chart rendering into kube-system and a ClusterRole fails its sync before applying
    // anything, the object inside the lane included.
    ns.apply(&team_app(
        &ns,
        "chart",
        &repo.git_url(),
        "chart",
        &ns.name,
        json!({"parameters": [{"name": "escape", "value": "true"}]}),
    ))
    .unwrap();
    // (An automated sync retries; each attempt is refused the same way.)
    let a = wait_app(&ns, "chart", "the sync refused", |a| {
        let message = field(a, "/status/operationState/message");
        if message.starts_with("one or more synchronization tasks are not valid") {
            Ok(())
        } else {
            bail!("operation: {}", a["status"]["operationState"])
        }
    })
    .await;
    let results: Vec<String> = a["status"]["operationState"]["syncResult"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["status"] == "SyncFailed")
        .map(|r| {
            format!(
                "{}/{}: {}",
                r["kind"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or(""),
                r["message"].as_str().unwrap_or("")
            )
        })
        .collect();
    let escalation = format!(
        "ClusterRole/{}-escalation: resource rbac.authorization.k8s.io:ClusterRole is not permitted in project team",
        ns.name
    );
    assert!(results.contains(&escalation), "{results:?}");
    assert!(
        results.contains(
            &"ConfigMap/escaped: namespace kube-system is not permitted in project 'team'".to_string()
        ),
        "{results:?}"
    );
    let unknown: Vec<&str> = a["status"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["status"] == "Unknown")
        .map(|r| r["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        unknown.len(),
        2,
        "targets outside the project compare as Unknown: {}",
        a["status"]["resources"]
    );
    let cms = ns.api::<ConfigMap>();
    assert!(cms.get_opt("inside").await.unwrap().is_none(), "nothing applied");
    let system: kube::Api<ConfigMap> = kube::Api::namespaced(ns.client.clone(), "kube-system");
    assert!(
        system.get_opt("escaped").await.unwrap().is_none(),
        "nothing applied"
    );

    // Rendered inside the lane, the same chart syncs.
    ns.apply(&team_app(
        &ns,
        "chart",
        &repo.git_url(),
        "chart",
        &ns.name,
        json!({"parameters": [{"name": "escape", "value": "false"}]}),
    ))
    .unwrap();
    wait_app(
        &ns,
        "chart",
        "the chart synced inside the lane",
        synced_healthy(&rev),
    )
    .await;
    assert_eq!(cm_value(&ns, "inside").await.as_deref(), Some("in"));

    // The project widened: the app that was outside it is reconciled at once and syncs.
    let mut widened: Value = serde_json::from_str(&team_project(&ns, &repo.git_url())).unwrap();
    widened["spec"]["sourceRepos"] = json!([repo.git_url(), other.git_url()]);
    ns.apply(&widened.to_string()).unwrap();
    wait_app(
        &ns,
        "foreign",
        "synced once its repository is permitted",
        |a| match field(a, "/status/sync/status") {
            "Synced" => Ok(()),
            s => bail!("sync {s:?}: {}", a["status"]["conditions"]),
        },
    )
    .await;
    assert_eq!(cm_value(&ns, "foreign").await.as_deref(), Some("1"));
}

/// A child Application of the app of apps: `path` of `repo_url` into the test namespace, automated, with the
/// resources finalizer so that deleting it deletes what it made.
fn child_app(ns: &TestNamespace, name: &str, repo_url: &str, path: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {name}
  finalizers: [resources-finalizer.argocd.argoproj.io]
spec:
  project: default
  source: {{repoURL: '{repo_url}', targetRevision: HEAD, path: {path}}}
  destination: {{server: 'https://kubernetes.default.svc', namespace: {ns}}}
  syncPolicy: {{automated: {{prune: true}}}}
",
        ns = ns.name
    )
}

#[tokio::test]
async fn an_app_of_apps_creates_its_children_rolls_up_their_health_and_cascades_deletion() {
    let (_git, repo) = git_repo("apps").await;
    let (ns, _op) = setup("app-of-apps", &[]).await;
    let url = repo.git_url();
    let mut files: Vec<(String, String)> = Vec::new();
    for child in ["red", "green", "blue"] {
        files.push((format!("apps/{child}.yaml"), child_app(&ns, child, &url, child)));
        files.push((
            format!("{child}/cm.yaml"),
            config_map(&format!("{child}-config"), child, ""),
        ));
    }
    files.push(("loose/cm.yaml".into(), config_map("loose-kept", "kept", "")));
    let files: Vec<(&str, String)> = files.iter().map(|(p, c)| (p.as_str(), c.clone())).collect();
    let rev = seed(&repo, &files).await;
    let mut root: Value =
        serde_json::from_str(&application(&ns, "root", &url, "apps", json!({"automated": {}}))).unwrap();
    root["metadata"]["finalizers"] = json!(["resources-finalizer.argocd.argoproj.io"]);
    ns.apply(&root.to_string()).expect("root app");

    let a = wait_app(&ns, "root", "the root synced and healthy", synced_healthy(&rev)).await;
    let children: Vec<&str> = a["status"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["kind"] == "Application")
        .map(|r| r["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(children.len(), 3, "{}", a["status"]["resources"]);
    for child in ["red", "green", "blue"] {
        wait_app(&ns, child, "a child synced and healthy", synced_healthy(&rev)).await;
        assert_eq!(
            cm_value(&ns, &format!("{child}-config")).await.as_deref(),
            Some(child)
        );
    }

    // A child that turns Degraded makes the root Degraded; fixed, both are Healthy again.
    let stuck = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: stuck\nspec:\n  progressDeadlineSeconds: 1\n  selector:\n    matchLabels: {app: stuck}\n  template:\n    metadata:\n      labels: {app: stuck}\n    spec:\n      nodeSelector: {no-such-label: none}\n      containers:\n      - {name: app, image: stuck:1}\n";
    repo.write("red/stuck.yaml", stuck).await.unwrap();
    let degraded_rev = repo.commit("red gets stuck").await.unwrap();
    let refresh = json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}});
    let apps = ns.api::<Application>();
    apps.patch("red", &PatchParams::default(), &Patch::Merge(&refresh))
        .await
        .unwrap();
    let health_is = |want: &'static str| {
        move |a: &Value| match field(a, "/status/health/status") {
            h if h == want => Ok(()),
            h => bail!("health {h}: {}", a["status"]["health"]),
        }
    };
    let red = wait_app(&ns, "red", "the child Degraded", health_is("Degraded")).await;
    assert_eq!(field(&red, "/status/sync/revision"), degraded_rev);
    wait_app(
        &ns,
        "root",
        "the root Degraded by its child",
        health_is("Degraded"),
    )
    .await;
    repo.remove("red/stuck.yaml").await.unwrap();
    let rev = repo.commit("red unstuck").await.unwrap();
    apps.patch("red", &PatchParams::default(), &Patch::Merge(&refresh))
        .await
        .unwrap();
    wait_app(&ns, "red", "the child Healthy again", health_is("Healthy")).await;
    wait_app(&ns, "root", "the root Healthy again", health_is("Healthy")).await;

    // An app without the finalizer goes alone: what it made stays.
    ns.apply(&application(
        &ns,
        "loose",
        &url,
        "loose",
        json!({"automated": {}}),
    ))
    .unwrap();
    wait_app(&ns, "loose", "the loose app synced", synced_healthy(&rev)).await;
    ns.kubectl(&["delete", "application", "loose"], None)
        .expect("delete loose");
    assert!(ns.api::<Application>().get_opt("loose").await.unwrap().is_none());
    assert_eq!(
        cm_value(&ns, "loose-kept").await.as_deref(),
        Some("kept"),
        "kept without the finalizer"
    );

    // Deleting the root deletes its children, and theirs deletes what they made.
    ns.kubectl(&["delete", "application", "root", "--wait=false"], None)
        .expect("delete root");
    wait_for("the root, its children and their objects gone", WAIT, || async {
        let apps = ns.api::<Application>().list(&ListParams::default()).await?;
        let cms = ns.api::<ConfigMap>().list(&ListParams::default()).await?;
        let left: Vec<String> = apps
            .items
            .iter()
            .map(|a| format!("Application/{}", a.metadata.name.clone().unwrap_or_default()))
            .chain(
                cms.items
                    .iter()
                    .filter_map(|c| c.metadata.name.clone())
                    .filter(|n| n.ends_with("-config"))
                    .map(|n| format!("ConfigMap/{n}")),
            )
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            bail!("left: {left:?}")
        }
    })
    .await
    .unwrap();
    assert_eq!(cm_value(&ns, "loose-kept").await.as_deref(), Some("kept"));
}

/// The AppProject `windowed`: anything permitted, and the given sync windows.
fn windowed_project(ns: &TestNamespace, windows: Value) -> String {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": "windowed", "namespace": ns.name},
        "spec": {
            "sourceRepos": ["*"],
            "destinations": [{"server": "*", "namespace": "*"}],
            "syncWindows": windows,
        }
    })
    .to_string()
}

#[tokio::test]
async fn a_deny_window_holds_automated_and_manual_syncs_until_it_is_lifted() {
    let (_git, repo) = git_repo("windowed").await;
    let rev = seed(&repo, &[("cm.yaml", config_map("frozen", "1", ""))]).await;
    let (ns, _op) = setup("app-window", &[]).await;
    // A deny window that opens every minute for an hour: always open.
    let deny = json!([{"kind": "deny", "schedule": "* * * * *", "duration": "1h", "applications": ["*"]}]);
    ns.apply(&windowed_project(&ns, deny)).expect("AppProject");
    let mut frozen: Value = serde_json::from_str(&application(
        &ns,
        "frozen",
        &repo.git_url(),
        ".",
        json!({"automated": {}}),
    ))
    .unwrap();
    frozen["spec"]["project"] = json!("windowed");
    ns.apply(&frozen.to_string()).expect("app");

    wait_app(&ns, "frozen", "compared but not synced", sync_is("OutOfSync")).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let a2 = app(&ns, "frozen").await.unwrap();
    assert!(
        a2["status"]["operationState"].is_null(),
        "no automated sync in a deny window: {}",
        a2["status"]
    );
    assert!(cm_value(&ns, "frozen").await.is_none());

    // A manual sync is held too (the window has no manualSync), with Argo CD's message.
    ns.api::<Application>()
        .patch(
            "frozen",
            &PatchParams::default(),
            &Patch::Merge(json!({"operation": {"initiatedBy": {"username": "me"}, "sync": {}}})),
        )
        .await
        .unwrap();
    wait_app(&ns, "frozen", "the manual sync held", |a| {
        match (
            field(a, "/status/operationState/phase"),
            field(a, "/status/operationState/message"),
        ) {
            ("Running", "Sync operation blocked by sync window") => Ok(()),
            other => bail!("{other:?}"),
        }
    })
    .await;
    assert!(cm_value(&ns, "frozen").await.is_none());

    // Lifting the window (an AppProject change) lets the held sync run at once.
    ns.apply(&windowed_project(&ns, json!([])))
        .expect("AppProject without windows");
    wait_app(
        &ns,
        "frozen",
        "synced once the window is lifted",
        synced_healthy(&rev),
    )
    .await;
    assert_eq!(cm_value(&ns, "frozen").await.as_deref(), Some("1"));
}

#[tokio::test]
async fn a_plain_secret_in_git_is_flagged_by_file_without_its_value() {
    let (_git, repo) = git_repo("leaky").await;
    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {password: hunter2}\n";
    let first = seed(
        &repo,
        &[
            ("app/cm.yaml", config_map("settings", "1", "")),
            ("app/prod/db.yaml", secret.into()),
        ],
    )
    .await;
    let (ns, _op) = setup("app-plain-secret", &[("SLUICE_APP_RESYNC", "2")]).await;
    ns.apply(&application(
        &ns,
        "leaky",
        &repo.git_url(),
        "app",
        json!({"automated": {"prune": true}}),
    ))
    .unwrap();
    let flagged = "Secret \"db\" in app/prod/db.yaml holds plain data in Git: encrypt it (SOPS) or keep it out of the repository";
    let a = wait_condition(&ns, "leaky", "PlainSecretWarning", flagged).await;
    wait_app(&ns, "leaky", "synced all the same", synced_healthy(&first)).await;
    assert!(
        !a.to_string().contains("hunter2"),
        "the value is nowhere in the status"
    );

    repo.remove("app/prod/db.yaml").await.unwrap();
    let second = repo.commit("no secret in git").await.unwrap();
    let a = wait_app(&ns, "leaky", "the warning cleared", |a| {
        let flagged = a["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "PlainSecretWarning");
        synced_healthy(&second)(a)?;
        if flagged { bail!("still flagged") } else { Ok(()) }
    })
    .await;
    assert!(!a.to_string().contains("hunter2"));
}
