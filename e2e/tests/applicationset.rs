//! The ApplicationSet controller end to end: a real Git server on 127.0.0.1, the real API server (with its
//! garbage collector) and `sluice run`. Each test's ApplicationSets and Applications live in its own
//! namespace, which the operator runs as its Argo CD namespace.

use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};
use sluice_crds::{application::Application, applicationset::ApplicationSet};
use sluice_e2e::{
    apps::{
        WAIT, app_names, cm_value, config_map, field, git_repo, github_push, seed, synced_healthy, wait_app,
    },
    cluster::wait_for,
    git_server::Repo,
    harness::{Operator, TestNamespace, install_crds},
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");

async fn setup(test: &str, resync: &str) -> (TestNamespace, Operator) {
    let mut ns = TestNamespace::new(SUPERVISOR, test).await.expect("namespace");
    ns.dump_kinds
        .extend(["applicationsets", "applications", "configmaps"].map(String::from));
    install_crds(&ns.info, &ns.client).await.expect("CRDs");
    let op = Operator::start_with_env(&ns, &[("SLUICE_APP_RESYNC", resync)]).expect("operator starts");
    (ns, op)
}

async fn wait_apps(ns: &TestNamespace, want: &[&str]) {
    wait_for(&format!("applications {want:?}"), WAIT, || async {
        let names = app_names(ns).await?;
        if names == want {
            Ok(())
        } else {
            bail!("applications {names:?}")
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
}

async fn appset(ns: &TestNamespace, name: &str) -> Result<Value> {
    Ok(serde_json::to_value(ns.api::<ApplicationSet>().get(name).await?)?)
}

/// The condition `kind` of the ApplicationSet, as (status, reason, message).
fn condition(set: &Value, kind: &str) -> (String, String, String) {
    let c = set["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
        .cloned()
        .unwrap_or_default();
    let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
    (s("status"), s("reason"), s("message"))
}

async fn wait_set(ns: &TestNamespace, name: &str, what: &str, check: impl Fn(&Value) -> Result<()>) -> Value {
    wait_for(what, WAIT, || async { check(&appset(ns, name).await?) })
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    appset(ns, name).await.expect("appset")
}

fn directories_set(ns: &TestNamespace, repo_url: &str) -> String {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "teams", "namespace": ns.name},
        "spec": {
            "generators": [{"git": {
                "repoURL": repo_url, "revision": "HEAD", "requeueAfterSeconds": 600,
                "directories": [{"path": "apps/*"}, {"path": "apps/skipped", "exclude": true}]
            }}],
            "template": {
                "metadata": {"name": "{{path.basename}}", "labels": {"team": "{{path.basename}}"}},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": repo_url, "targetRevision": "HEAD", "path": "{{path}}"},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": ns.name},
                    "syncPolicy": {"automated": {"prune": true, "selfHeal": true}}
                }
            }
        }
    })
    .to_string()
}

#[tokio::test]
async fn git_directories_make_one_application_each_gaining_and_losing_them_with_the_repository() {
    let (_git, repo) = git_repo("teams").await;
    let first = seed(
        &repo,
        &[
            ("apps/alpha/cm.yaml", config_map("alpha", "a", "")),
            ("apps/beta/cm.yaml", config_map("beta", "b", "")),
            ("apps/skipped/cm.yaml", config_map("skipped", "s", "")),
            ("README.md", "docs".into()),
        ],
    )
    .await;
    let (ns, op) = setup("appset-dirs", "600").await;
    ns.apply(&directories_set(&ns, &repo.git_url()))
        .expect("apply appset");
    wait_apps(&ns, &["alpha", "beta"]).await;
    let alpha = wait_app(&ns, "alpha", "alpha synced", synced_healthy(&first)).await;
    wait_app(&ns, "beta", "beta synced", synced_healthy(&first)).await;
    assert_eq!(field(&alpha, "/spec/source/path"), "apps/alpha");
    assert_eq!(field(&alpha, "/metadata/labels/team"), "alpha");
    let owner = &alpha["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["name"].as_str()),
        (Some("ApplicationSet"), Some("teams"))
    );
    assert_eq!(owner["controller"], json!(true));
    assert_eq!(
        alpha["metadata"]["finalizers"],
        json!(["resources-finalizer.argocd.argoproj.io"])
    );
    assert_eq!(cm_value(&ns, "alpha").await.as_deref(), Some("a"));
    assert_eq!(
        cm_value(&ns, "skipped").await,
        None,
        "an excluded directory makes no app"
    );

    let set = wait_set(&ns, "teams", "conditions and resources", |s| {
        let listed = s["status"]["resources"].as_array().map(Vec::len).unwrap_or(0);
        let healthy = s["status"]["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|r| r["health"]["status"] == "Healthy" && r["status"] == "Synced");
        if listed == 2 && healthy && condition(s, "ResourcesUpToDate").0 == "True" {
            Ok(())
        } else {
            bail!("{}", s["status"])
        }
    })
    .await;
    assert_eq!(
        condition(&set, "ParametersGenerated"),
        (
            "True".into(),
            "ParametersGenerated".into(),
            "Successfully generated parameters for all Applications".into()
        )
    );
    assert_eq!(condition(&set, "ErrorOccurred").0, "False");
    assert_eq!(
        condition(&set, "ResourcesUpToDate").2,
        "All applications have been generated successfully"
    );

    // A directory committed and announced by webhook gains an Application (the generator's own requeue is
    // ten minutes away); a directory removed loses it, and its resources go with it.
    repo.write("apps/gamma/cm.yaml", config_map("gamma", "g", ""))
        .await
        .expect("write");
    let second = repo.commit("gamma").await.expect("commit");
    push(&op, &repo, &first, &second, "apps/gamma/cm.yaml").await;
    wait_apps(&ns, &["alpha", "beta", "gamma"]).await;
    wait_app(&ns, "gamma", "gamma synced", synced_healthy(&second)).await;
    assert_eq!(cm_value(&ns, "gamma").await.as_deref(), Some("g"));
    repo.remove("apps/alpha").await.expect("remove");
    let third = repo.commit("alpha goes").await.expect("commit");
    push(&op, &repo, &second, &third, "apps/alpha/cm.yaml").await;
    wait_apps(&ns, &["beta", "gamma"]).await;
    wait_for("alpha's ConfigMap deleted with its app", WAIT, || async {
        match cm_value(&ns, "alpha").await {
            None => Ok(()),
            Some(v) => bail!("still there: {v}"),
        }
    })
    .await
    .unwrap();

    // A steady state writes nothing: neither the Applications' specs nor the set's status move.
    for name in ["beta", "gamma"] {
        wait_app(&ns, name, "synced at the last commit", synced_healthy(&third)).await;
    }
    let before = resource_versions(&ns).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = resource_versions(&ns).await;
    assert_eq!(
        before.0, after.0,
        "the ApplicationSet was rewritten in a steady state"
    );
    assert_eq!(
        before.1, after.1,
        "Application generations changed in a steady state"
    );
}

/// Announces a push of `file` from `before` to `after` on the operator's webhook, as GitHub does.
async fn push(op: &Operator, repo: &Repo, before: &str, after: &str, file: &str) {
    let url = format!("http://127.0.0.1:{}/api/webhook", op.webhook_port);
    let response = reqwest::Client::new()
        .post(&url)
        .header("X-GitHub-Event", "push")
        .header("Content-Type", "application/json")
        .body(github_push(repo, before, after, &[file]).to_string())
        .send()
        .await
        .expect("webhook reachable");
    assert!(response.status().is_success(), "{}", response.status());
}

/// The ApplicationSet's resourceVersion and each Application's generation (status writes do not bump it).
async fn resource_versions(ns: &TestNamespace) -> (String, Vec<(String, i64)>) {
    let set = ns.api::<ApplicationSet>().get("teams").await.expect("appset");
    let apps = ns
        .api::<Application>()
        .list(&Default::default())
        .await
        .expect("apps");
    let mut gens: Vec<(String, i64)> = apps
        .items
        .iter()
        .map(|a| {
            (
                a.metadata.name.clone().unwrap_or_default(),
                a.metadata.generation.unwrap_or(0),
            )
        })
        .collect();
    gens.sort();
    (set.metadata.resource_version.unwrap_or_default(), gens)
}

fn list_set(ns: &TestNamespace, repo_url: &str, elements: Value, sync_policy: Value) -> String {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "envs", "namespace": ns.name},
        "spec": {
            "goTemplate": true,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [{"list": {"elements": elements}}],
            "syncPolicy": sync_policy,
            "template": {
                "metadata": {"name": "{{.env}}-web", "annotations": {"stage": "{{ .stage | upper }}"}},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": repo_url, "targetRevision": "HEAD", "path": "envs/{{.env}}"},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": ns.name},
                    "syncPolicy": {"automated": {"prune": true}}
                }
            }
        }
    })
    .to_string()
}

#[tokio::test]
async fn list_elements_render_go_templates_and_policies_decide_what_is_written() {
    let (_git, repo) = git_repo("envs").await;
    let first = seed(
        &repo,
        &[
            ("envs/dev/cm.yaml", config_map("dev", "d", "")),
            ("envs/prod/cm.yaml", config_map("prod", "p", "")),
        ],
    )
    .await;
    let (ns, _op) = setup("appset-list", "3").await;
    let two = json!([{"env": "dev", "stage": "test"}, {"env": "prod", "stage": "live"}]);
    let preserve = json!({"preserveResourcesOnDeletion": true, "applicationsSync": "create-update"});
    ns.apply(&list_set(&ns, &repo.git_url(), two.clone(), preserve.clone()))
        .expect("apply appset");
    wait_apps(&ns, &["dev-web", "prod-web"]).await;
    let dev = wait_app(&ns, "dev-web", "dev synced", synced_healthy(&first)).await;
    assert_eq!(field(&dev, "/metadata/annotations/stage"), "TEST");
    assert_eq!(
        dev["metadata"].get("finalizers"),
        None,
        "preserved resources: no resources finalizer"
    );
    wait_app(&ns, "prod-web", "prod synced", synced_healthy(&first)).await;

    // missingkey=error: an element without `stage` is an error on the set; nothing is deleted because of it.
    let broken = json!([{"env": "dev", "stage": "test"}, {"env": "prod"}]);
    ns.apply(&list_set(&ns, &repo.git_url(), broken, preserve.clone()))
        .expect("apply");
    let set = wait_set(&ns, "envs", "the render error", |s| {
        match condition(s, "ErrorOccurred") {
            (st, _, m) if st == "True" && m.contains("stage") => Ok(()),
            other => bail!("{other:?}"),
        }
    })
    .await;
    assert_eq!(condition(&set, "ResourcesUpToDate").0, "False");
    assert_eq!(app_names(&ns).await.unwrap(), ["dev-web", "prod-web"]);

    // create-update: an element that goes away keeps its Application.
    let one = json!([{"env": "dev", "stage": "qa"}]);
    ns.apply(&list_set(&ns, &repo.git_url(), one, preserve))
        .expect("apply");
    wait_app(&ns, "dev-web", "dev updated", |a| {
        match field(a, "/metadata/annotations/stage") {
            "QA" => Ok(()),
            s => bail!("stage {s}"),
        }
    })
    .await;
    wait_set(&ns, "envs", "errors cleared", |s| {
        match condition(s, "ErrorOccurred").0.as_str() {
            "False" => Ok(()),
            _ => bail!("{}", s["status"]["conditions"]),
        }
    })
    .await;
    assert_eq!(app_names(&ns).await.unwrap(), ["dev-web", "prod-web"]);

    // Deleting the set garbage-collects its Applications; preserveResourcesOnDeletion keeps what they deployed.
    ns.kubectl(&["delete", "applicationset", "envs", "--wait=false"], None)
        .expect("delete");
    wait_apps(&ns, &[]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        cm_value(&ns, "dev").await.as_deref(),
        Some("d"),
        "dev's resources stay"
    );
    assert_eq!(
        cm_value(&ns, "prod").await.as_deref(),
        Some("p"),
        "prod's resources stay"
    );
}
