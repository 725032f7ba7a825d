//! Applications deploying to other clusters, declared by cluster Secrets as in Argo CD: a second local
//! control plane (its own etcd and API server) reached with a service-account bearer token, and the shared
//! cluster reached by its URL with a TLS client certificate.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use serde_json::{Value, json};
use sluice_crds::application::Application;
use sluice_e2e::{
    apps::{
        WAIT, app_names, cm_value, cm_value_in, config_map, git_repo, seed, synced_healthy, wait_app,
        wait_condition,
    },
    cluster::wait_for,
    harness::{Operator, TestNamespace, install_crds},
    remote::{RemoteCluster, cluster_secret, kubeconfig_tls},
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");

async fn setup(test: &str, env: &[(&str, &str)]) -> (TestNamespace, Operator) {
    let mut ns = TestNamespace::new(SUPERVISOR, test).await.expect("namespace");
    ns.dump_kinds
        .extend(["applications", "configmaps", "secrets"].map(String::from));
    install_crds(&ns.info, &ns.client).await.expect("CRDs");
    let op = Operator::start_with_env(&ns, env).expect("operator starts");
    (ns, op)
}

/// An automated, self-healing app of `path` deploying to `destination` (namespace `namespace`, created).
fn remote_app(ns: &TestNamespace, name: &str, url: &str, path: &str, destination: Value) -> String {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": ns.name,
                     "finalizers": ["resources-finalizer.argocd.argoproj.io"]},
        "spec": {
            "project": "default",
            "source": {"repoURL": url, "targetRevision": "HEAD", "path": path},
            "destination": destination,
            "syncPolicy": {"automated": {"selfHeal": true, "prune": true},
                           "syncOptions": ["CreateNamespace=true"]},
        }
    })
    .to_string()
}

/// One app lands in a second cluster (by the cluster's name, with a bearer token), its drift there is
/// healed by watch; another reaches the shared cluster by URL with a client certificate; an unknown name
/// is an InvalidSpecError; deleting the app deletes what it made in the other cluster; removing the
/// cluster Secret leaves apps that name it with Argo CD's message.
#[tokio::test]
async fn apps_deploy_to_clusters_declared_by_secrets_and_heal_drift_there() {
    let (_git, repo) = git_repo("fleet").await;
    let url = repo.git_url();
    let rev = seed(
        &repo,
        &[
            ("far/cm.yaml", config_map("far-settings", "one", "")),
            ("near/cm.yaml", config_map("near-settings", "two", "")),
        ],
    )
    .await;
    let (ns, _op) = setup("multicluster", &[("SLUICE_APP_RESYNC", "600")]).await;
    let dir = std::env::temp_dir().join(format!("sluice-{}-second", ns.name));
    let second = RemoteCluster::start(&ns.info, &dir)
        .await
        .expect("second cluster");
    let token = second.manager_token().await.expect("token");
    let config = second.token_config(&token).unwrap();
    ns.apply(&cluster_secret(&ns.name, "second", second.server(), &config, &[]))
        .expect("cluster secret");
    let tls = kubeconfig_tls(&ns.info.kubeconfig).unwrap();
    ns.apply(&cluster_secret(
        &ns.name,
        "first",
        &ns.info.server,
        &json!({"tlsClientConfig": tls}),
        &[],
    ))
    .expect("cluster secret");

    ns.apply(&remote_app(
        &ns,
        "far",
        &url,
        "far",
        json!({"name": "second", "namespace": "apps"}),
    ))
    .unwrap();
    ns.apply(&remote_app(
        &ns,
        "near",
        &url,
        "near",
        json!({"server": format!("{}/", ns.info.server), "namespace": ns.name}),
    ))
    .unwrap();
    ns.apply(&remote_app(
        &ns,
        "lost",
        &url,
        "far",
        json!({"name": "nowhere", "namespace": "apps"}),
    ))
    .unwrap();
    wait_app(&ns, "far", "the remote app synced", synced_healthy(&rev)).await;
    wait_app(&ns, "near", "the app by URL synced", synced_healthy(&rev)).await;
    let far_cms: Api<ConfigMap> = Api::namespaced(second.client.clone(), "apps");
    assert_eq!(
        cm_value_in(&far_cms, "far-settings").await.as_deref(),
        Some("one")
    );
    assert_eq!(
        cm_value(&ns, "far-settings").await,
        None,
        "not in the shared cluster"
    );
    assert_eq!(cm_value(&ns, "near-settings").await.as_deref(), Some("two"));
    wait_condition(
        &ns,
        "lost",
        "InvalidSpecError",
        "application destination spec for lost is invalid: unable to find destination server: there are no clusters with this name: nowhere",
    )
    .await;

    // A live edit in the second cluster is seen by its watch and healed (the resync is 10 minutes away).
    let patch = json!({"data": {"value": "drift"}});
    far_cms
        .patch(
            "far-settings",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .unwrap();
    wait_for("the drift in the second cluster healed", WAIT, || async {
        match cm_value_in(&far_cms, "far-settings").await.as_deref() {
            Some("one") => Ok(()),
            other => anyhow::bail!("value {other:?}"),
        }
    })
    .await
    .unwrap();

    // Deleting the app deletes its objects in the other cluster, then the app.
    ns.kubectl(&["delete", "application", "far", "--wait=false"], None)
        .unwrap();
    wait_for("the remote objects and the app gone", WAIT, || async {
        let left = cm_value_in(&far_cms, "far-settings").await;
        let app = ns.api::<Application>().get_opt("far").await?;
        anyhow::ensure!(
            left.is_none() && app.is_none(),
            "left {left:?}, app {}",
            app.is_some()
        );
        Ok(())
    })
    .await
    .unwrap();

    // Without its Secret, the cluster is unknown again.
    ns.apply(&remote_app(
        &ns,
        "again",
        &url,
        "far",
        json!({"name": "second", "namespace": "apps"}),
    ))
    .unwrap();
    wait_app(&ns, "again", "the app synced", synced_healthy(&rev)).await;
    ns.kubectl(&["delete", "secret", "cluster-second"], None).unwrap();
    wait_condition(
        &ns,
        "again",
        "InvalidSpecError",
        "application destination spec for again is invalid: unable to find destination server: there are no clusters with this name: second",
    )
    .await;
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A matrix of a clusters generator (label-selected cluster Secrets) and a Git directories generator puts
/// each directory into each selected cluster: one Application per pair, across the two control planes. A
/// cluster that loses its label loses its Applications, and what they deployed there.
#[tokio::test]
async fn an_applicationset_matrix_deploys_every_directory_to_every_selected_cluster() {
    let (_git, repo) = git_repo("matrix").await;
    let url = repo.git_url();
    let rev = seed(
        &repo,
        &[
            ("apps/web/cm.yaml", config_map("web", "w", "")),
            ("apps/api/cm.yaml", config_map("api", "a", "")),
        ],
    )
    .await;
    let (mut ns, _op) = setup("appset-matrix", &[("SLUICE_APP_RESYNC", "3")]).await;
    ns.dump_kinds.push("applicationsets".into());
    let dir = std::env::temp_dir().join(format!("sluice-{}-second", ns.name));
    let second = RemoteCluster::start(&ns.info, &dir)
        .await
        .expect("second cluster");
    let token = second.manager_token().await.expect("token");
    let config = second.token_config(&token).unwrap();
    let staging = [("env", "staging")];
    ns.apply(&cluster_secret(
        &ns.name,
        "second",
        second.server(),
        &config,
        &staging,
    ))
    .expect("cluster secret");
    let tls = json!({"tlsClientConfig": kubeconfig_tls(&ns.info.kubeconfig).unwrap()});
    ns.apply(&cluster_secret(
        &ns.name,
        "first",
        &ns.info.server,
        &tls,
        &staging,
    ))
    .expect("cluster secret");
    ns.apply(&cluster_secret(
        &ns.name,
        "unlabelled",
        "https://127.0.0.1:1",
        &tls,
        &[],
    ))
    .expect("cluster secret");
    let set = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "fleet", "namespace": ns.name},
        "spec": {
            "goTemplate": true,
            "generators": [{"matrix": {"generators": [
                {"clusters": {"selector": {"matchLabels": {"env": "staging"}}}},
                {"git": {"repoURL": url, "revision": "HEAD", "requeueAfterSeconds": 2,
                         "directories": [{"path": "apps/*"}]}}
            ]}}],
            "template": {
                "metadata": {"name": "{{.name}}-{{.path.basename}}"},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": url, "targetRevision": "HEAD", "path": "{{.path.path}}"},
                    "destination": {"server": "{{.server}}", "namespace": ns.name},
                    "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}
                }
            }
        }
    });
    ns.apply(&set.to_string()).expect("apply appset");
    for name in ["first-api", "first-web", "second-api", "second-web"] {
        wait_app(&ns, name, name, synced_healthy(&rev)).await;
    }
    let apps = ns.api::<Application>().list(&Default::default()).await.unwrap();
    assert_eq!(apps.items.len(), 4, "nothing for the unlabelled cluster");
    let far: Api<ConfigMap> = Api::namespaced(second.client.clone(), &ns.name);
    assert_eq!(cm_value_in(&far, "web").await.as_deref(), Some("w"));
    assert_eq!(cm_value_in(&far, "api").await.as_deref(), Some("a"));
    assert_eq!(cm_value(&ns, "web").await.as_deref(), Some("w"));
    assert_eq!(cm_value(&ns, "api").await.as_deref(), Some("a"));

    // The second cluster leaves the selection: its two apps and their objects there are deleted.
    ns.apply(&cluster_secret(&ns.name, "second", second.server(), &config, &[]))
        .expect("relabel");
    wait_for("the second cluster's apps and objects gone", WAIT, || async {
        let names = app_names(&ns).await?;
        let left = (cm_value_in(&far, "web").await, cm_value_in(&far, "api").await);
        anyhow::ensure!(
            names == ["first-api", "first-web"] && left == (None, None),
            "apps {names:?}, objects left {left:?}"
        );
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(
        cm_value(&ns, "web").await.as_deref(),
        Some("w"),
        "the first cluster keeps its own"
    );
    drop(second);
    let _ = std::fs::remove_dir_all(&dir);
}
