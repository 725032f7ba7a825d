//! Helpers of the Application end-to-end tests: manifests, a Git repository to sync from, and waits on an
//! Application's status.

use std::time::Duration;

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use serde_json::Value;
use sluice_crds::application::Application;

use crate::{
    cluster::wait_for,
    git_server::{GitServer, Repo},
    harness::TestNamespace,
};

/// How long an Application wait lasts.
pub const WAIT: Duration = Duration::from_secs(90);

/// A ConfigMap `name` with `data.value`; `extra` goes into its metadata (indented lines).
pub fn config_map(name: &str, value: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{extra}data:\n  value: \"{value}\"\n"
    )
}

/// The Application `name` of `api` as JSON.
pub async fn app_in(api: &Api<Application>, name: &str) -> Result<Value> {
    Ok(serde_json::to_value(api.get(name).await?)?)
}

/// The Application `name` of the test's namespace as JSON.
pub async fn app(ns: &TestNamespace, name: &str) -> Result<Value> {
    app_in(&ns.api::<Application>(), name).await
}

/// Waits until the app's status satisfies `check` (which says what is still missing); the app then.
pub async fn wait_app(
    ns: &TestNamespace,
    name: &str,
    what: &str,
    check: impl Fn(&Value) -> Result<()>,
) -> Value {
    wait_for(what, WAIT, || async {
        let a = app(ns, name).await?;
        check(&a)?;
        Ok(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}"));
    app(ns, name).await.expect("app")
}

/// The string at `pointer`, empty when absent.
pub fn field<'a>(a: &'a Value, pointer: &str) -> &'a str {
    a.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The app's sync status is `want`.
pub fn sync_is(want: &'static str) -> impl Fn(&Value) -> Result<()> {
    move |a| match field(a, "/status/sync/status") {
        s if s == want => Ok(()),
        s => bail!("sync {s:?}: {}", a["status"]["conditions"]),
    }
}

/// The app is Synced and Healthy at `revision`.
pub fn synced_healthy(revision: &str) -> impl Fn(&Value) -> Result<()> + '_ {
    move |a| {
        let (sync, health, rev) = (
            field(a, "/status/sync/status"),
            field(a, "/status/health/status"),
            field(a, "/status/sync/revision"),
        );
        if sync == "Synced" && health == "Healthy" && rev == revision {
            Ok(())
        } else {
            bail!(
                "sync {sync}, health {health}, revision {rev}: {}",
                a["status"]["conditions"]
            )
        }
    }
}

/// Waits until the app carries a condition of `kind` with exactly `message`; the app then.
pub async fn wait_condition(ns: &TestNamespace, app_name: &str, kind: &str, message: &str) -> Value {
    wait_app(ns, app_name, &format!("{kind}: {message}"), |a| {
        let found = a["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == kind && c["message"] == message);
        if found {
            Ok(())
        } else {
            bail!("{}", a["status"]["conditions"])
        }
    })
    .await
}

/// `data.value` of the ConfigMap `name` in `api`'s namespace.
pub async fn cm_value_in(api: &Api<ConfigMap>, name: &str) -> Option<String> {
    let cm = api.get_opt(name).await.ok()??;
    cm.data?.get("value").cloned()
}

/// `data.value` of the ConfigMap `name` in the test's namespace.
pub async fn cm_value(ns: &TestNamespace, name: &str) -> Option<String> {
    cm_value_in(&ns.api::<ConfigMap>(), name).await
}

/// A Git server on 127.0.0.1 and one empty repository on it.
pub async fn git_repo(name: &str) -> (GitServer, Repo) {
    let git = GitServer::start().await.expect("git server");
    let repo = git.create_repo(name).await.expect("repo");
    (git, repo)
}

/// Writes `files` and commits them; the commit.
pub async fn seed(repo: &Repo, files: &[(&str, String)]) -> String {
    for (path, content) in files {
        repo.write(path, content).await.expect("write");
    }
    repo.commit("seed").await.expect("commit")
}

/// A GitHub push event of `files` to `main` of `repo`, from `before` to `after`.
pub fn github_push(repo: &Repo, before: &str, after: &str, files: &[&str]) -> Value {
    serde_json::json!({
        "ref": "refs/heads/main", "before": before, "after": after,
        "repository": {"html_url": repo.git_url().trim_end_matches(".git"), "clone_url": repo.git_url(),
                       "default_branch": "main"},
        "commits": [{"id": after, "added": files, "modified": [], "removed": []}],
    })
}

/// The names of the Applications in the test's namespace, sorted.
pub async fn app_names(ns: &TestNamespace) -> Result<Vec<String>> {
    let apps = ns.api::<Application>().list(&Default::default()).await?;
    let mut names: Vec<String> = apps
        .items
        .iter()
        .filter_map(|a| a.metadata.name.clone())
        .collect();
    names.sort();
    Ok(names)
}
