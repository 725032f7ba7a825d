//! Secrets kept out of Git and the classes of Argo CD's security advisories, end to end: SOPS-encrypted
//! manifests decrypted into the cluster with age keys from a Secret while their values appear in no status,
//! event or log line; and repositories that try to reach outside themselves (a `..` app path, a symlink to a
//! file of the host, a Helm value file above the repository) refused before anything is applied.

use anyhow::bail;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use sluice_crds::application::Application;
use sluice_e2e::{
    apps::{app, config_map, git_repo, seed, synced_healthy, wait_app},
    harness::{Operator, TestNamespace, install_crds},
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");

/// Values of the SOPS fixtures (gitops/testdata/sops/multi.*) that must never be shown.
const PLAINTEXTS: [&str; 2] = ["first-doc-secret", "second-doc-secret"];

async fn setup(test: &str) -> (TestNamespace, Operator) {
    let mut ns = TestNamespace::new(SUPERVISOR, test).await.expect("namespace");
    ns.dump_kinds
        .extend(["applications", "configmaps"].map(String::from));
    install_crds(&ns.info, &ns.client).await.expect("CRDs");
    let op = Operator::start_with_env(&ns, &[("SLUICE_APP_RESYNC", "2")]).expect("operator starts");
    (ns, op)
}

fn fixture(name: &str) -> String {
    let path = sluice_e2e::repo_dir().join("gitops/testdata/sops").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn application(ns: &TestNamespace, name: &str, url: &str, path: &str, source_extra: Value) -> String {
    let mut source = json!({"repoURL": url, "targetRevision": "HEAD", "path": path});
    if let (Some(s), Some(extra)) = (source.as_object_mut(), source_extra.as_object()) {
        s.extend(extra.clone());
    }
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": ns.name},
        "spec": {
            "project": "default",
            "source": source,
            "destination": {"server": "https://kubernetes.default.svc", "namespace": ns.name},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}},
        }
    })
    .to_string()
}

/// The app carries a ComparisonError containing `text`.
fn comparison_error(text: &'static str) -> impl Fn(&Value) -> anyhow::Result<()> {
    move |a| {
        let found = a["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| {
                c["type"] == "ComparisonError" && c["message"].as_str().is_some_and(|m| m.contains(text))
            });
        if found {
            Ok(())
        } else {
            bail!("{}", a["status"]["conditions"])
        }
    }
}

/// Every place a value could leak to: the app (status included), the namespace's events, the operator log.
async fn shown_anywhere(ns: &TestNamespace, op: &Operator, app_name: &str) -> String {
    let app = app(ns, app_name).await.expect("app").to_string();
    let events = ns.api::<Event>().list(&Default::default()).await.expect("events");
    let events = serde_json::to_string(&events.items).unwrap_or_default();
    format!("{app}\n{events}\n{}", op.log())
}

#[tokio::test]
async fn sops_encrypted_secrets_are_decrypted_into_the_cluster_and_their_values_shown_nowhere() {
    let (_git, repo) = git_repo("sealed").await;
    let rev = seed(
        &repo,
        &[
            ("app/cm.yaml", config_map("settings", "1", "")),
            ("app/secrets.enc.yaml", fixture("multi.enc.yaml")),
        ],
    )
    .await;
    let (ns, op) = setup("sops").await;
    ns.apply(&application(&ns, "sealed", &repo.git_url(), "app", json!({})))
        .unwrap();

    // No decryption Secret named: a clear error, and nothing of the app applied.
    wait_app(
        &ns,
        "sealed",
        "the missing keys",
        comparison_error("names no decryption Secret"),
    )
    .await;
    assert!(ns.api::<Secret>().get_opt("first").await.unwrap().is_none());
    assert!(ns.api::<ConfigMap>().get_opt("settings").await.unwrap().is_none());

    // The age identity in a Secret, named by the annotation: decrypted and applied.
    let key = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "sops-age", "namespace": ns.name},
        "stringData": {"identity.agekey": fixture("test.agekey")},
    });
    ns.apply(&key.to_string()).unwrap();
    let annotate = json!({"metadata": {"annotations": {"sluice.dev/decryption-secret": "sops-age"}}});
    ns.api::<Application>()
        .patch("sealed", &PatchParams::default(), &Patch::Merge(&annotate))
        .await
        .unwrap();
    wait_app(&ns, "sealed", "decrypted and synced", synced_healthy(&rev)).await;
    let first = ns.api::<Secret>().get("first").await.unwrap();
    let value = first.data.unwrap_or_default().get("one").map(|b| b.0.clone());
    assert_eq!(value.as_deref(), Some(PLAINTEXTS[0].as_bytes()));
    assert!(ns.api::<Secret>().get_opt("second").await.unwrap().is_some());

    // A live edit of a decrypted Secret is healed; still no value in any status, event or log.
    let drift = json!({"stringData": {"one": "edited-by-hand"}});
    ns.api::<Secret>()
        .patch("first", &PatchParams::default(), &Patch::Merge(&drift))
        .await
        .unwrap();
    sluice_e2e::cluster::wait_for("the drift healed", sluice_e2e::apps::WAIT, || async {
        let s = ns.api::<Secret>().get("first").await?;
        match s.data.unwrap_or_default().get("one") {
            Some(b) if b.0 == PLAINTEXTS[0].as_bytes() => Ok(()),
            other => bail!("value {other:?}"),
        }
    })
    .await
    .unwrap();

    // The wrong identity: an error that names the documents and no value; the cluster keeps what it has.
    let wrong = json!({"stringData": {"identity.agekey": fixture("other.agekey")}});
    ns.api::<Secret>()
        .patch("sops-age", &PatchParams::default(), &Patch::Merge(&wrong))
        .await
        .unwrap();
    repo.write("app/cm.yaml", config_map("settings", "2", ""))
        .await
        .unwrap();
    repo.commit("touch").await.unwrap();
    wait_app(&ns, "sealed", "the wrong key", comparison_error("Secret/first")).await;
    assert!(ns.api::<Secret>().get_opt("first").await.unwrap().is_some());
    let shown = shown_anywhere(&ns, &op, "sealed").await;
    for secret in PLAINTEXTS
        .iter()
        .copied()
        .chain(["AGE-SECRET-KEY", "edited-by-hand"])
    {
        assert!(!shown.contains(secret), "{secret:?} is shown");
    }
}

#[tokio::test]
async fn repository_escapes_are_refused_before_anything_is_applied() {
    let (git, repo) = git_repo("escape").await;
    let chart = "apiVersion: v2\nname: chart\nversion: 0.1.0\n";
    let template = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-chart\ndata:\n  value: {{ .Values.v | quote }}\n";
    seed(
        &repo,
        &[
            ("apps/ok/cm.yaml", config_map("inside", "1", "")),
            ("chart/Chart.yaml", chart.into()),
            ("chart/values.yaml", "v: x\n".into()),
            ("chart/templates/cm.yaml", template.into()),
        ],
    )
    .await;
    // Another repository holds a symlink to a file of the host, committed as a symlink.
    let linked = git.create_repo("linked").await.unwrap();
    seed(
        &linked,
        &[("apps/leak/cm.yaml", config_map("next-to-the-link", "1", ""))],
    )
    .await;
    std::os::unix::fs::symlink("/etc/passwd", linked.work_dir().join("apps/leak/passwd.yaml")).unwrap();
    linked.commit("a link out").await.unwrap();
    let (ns, op) = setup("escape").await;
    let url = repo.git_url();
    ns.apply(&application(&ns, "climb", &url, "apps/../../..", json!({})))
        .unwrap();
    ns.apply(&application(
        &ns,
        "link",
        &linked.git_url(),
        "apps/leak",
        json!({}),
    ))
    .unwrap();
    let values = json!({"helm": {"valueFiles": ["../../../../../etc/passwd"]}});
    ns.apply(&application(&ns, "values", &url, "chart", values))
        .unwrap();
    ns.apply(&application(&ns, "fine", &url, "apps/ok", json!({})))
        .unwrap();

    for name in ["climb", "link", "values"] {
        wait_app(&ns, name, name, comparison_error("outside the repository")).await;
    }
    let link = app(&ns, "link").await.unwrap().to_string();
    assert!(
        link.contains("passwd.yaml"),
        "the error names the symlink: {link}"
    );
    wait_app(&ns, "fine", "the app inside its repository synced", |a| {
        synced_healthy(a["status"]["sync"]["revision"].as_str().unwrap_or("?"))(a)
    })
    .await;
    assert!(ns.api::<ConfigMap>().get_opt("inside").await.unwrap().is_some());
    for cm in ["next-to-the-link", "from-chart"] {
        assert!(
            ns.api::<ConfigMap>().get_opt(cm).await.unwrap().is_none(),
            "{cm} applied"
        );
    }
    let shown = shown_anywhere(&ns, &op, "link").await;
    assert!(!shown.contains("root:x:0:0"), "a host file's content is shown");
}
