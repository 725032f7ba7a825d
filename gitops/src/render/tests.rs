//! Renders with the real kustomize and helm (built by e2e/scripts/build-gitops-tools.sh, cached).

use std::{path::Path, sync::OnceLock};

use serde_json::json;

use super::*;

fn tools() -> Tools {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../e2e/scripts/build-gitops-tools.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .expect("build-gitops-tools.sh runs");
        assert!(out.status.success(), "build-gitops-tools.sh failed");
        PathBuf::from(
            String::from_utf8(out.stdout)
                .unwrap()
                .trim()
                .lines()
                .last()
                .unwrap(),
        )
    });
    Tools::new(dir.join("kustomize"), dir.join("helm"))
}

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn source(path: &str, extra: serde_json::Value) -> ApplicationSource {
    let mut v = json!({"repoURL": "git://x/r.git", "path": path});
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    serde_json::from_value(v).unwrap()
}

fn ctx() -> RenderContext {
    RenderContext {
        app_name: "shop".into(),
        namespace: "prod".into(),
        ..Default::default()
    }
}

fn kustomize_repo() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: web:1\n";
    write(repo.path(), "base/deploy.yaml", deploy);
    write(
        repo.path(),
        "base/kustomization.yaml",
        "resources:\n- deploy.yaml\n",
    );
    write(
        repo.path(),
        "overlays/prod/kustomization.yaml",
        "resources:\n- ../../base\ncommonAnnotations:\n  env: prod\n",
    );
    repo
}

#[test]
fn detection() {
    let repo = tempfile::tempdir().unwrap();
    write(repo.path(), "chart/Chart.yaml", "name: c\nversion: 0.1.0\n");
    write(repo.path(), "k/kustomization.yml", "resources: []\n");
    write(repo.path(), "plain/a.yaml", "{}");
    assert_eq!(
        detect(&repo.path().join("chart"), &source("chart", json!({}))),
        SourceType::Helm
    );
    assert_eq!(
        detect(&repo.path().join("k"), &source("k", json!({}))),
        SourceType::Kustomize
    );
    assert_eq!(
        detect(&repo.path().join("plain"), &source("plain", json!({}))),
        SourceType::Directory
    );
    let forced = source("chart", json!({"directory": {"recurse": true}}));
    assert_eq!(detect(&repo.path().join("chart"), &forced), SourceType::Directory);
    assert_eq!(SourceType::Kustomize.as_str(), "Kustomize");
}

#[tokio::test]
async fn a_kustomize_overlay_with_overrides_leaves_the_checkout_untouched() {
    let repo = kustomize_repo();
    let before = std::fs::read_to_string(repo.path().join("overlays/prod/kustomization.yaml")).unwrap();
    let overrides = json!({"kustomize": {"namePrefix": "prod-", "images": ["web=web:2"],
                                         "commonLabels": {"team": "shop"}}});
    let out = render(&tools(), repo.path(), &source("overlays/prod", overrides), &ctx())
        .await
        .unwrap();
    assert_eq!(out.source_type, SourceType::Kustomize);
    let d = &out.objects[0];
    assert_eq!(d["metadata"]["name"], "prod-web");
    assert_eq!(d["metadata"]["labels"]["team"], "shop");
    assert_eq!(d["metadata"]["annotations"]["env"], "prod");
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "web:2");
    let after = std::fs::read_to_string(repo.path().join("overlays/prod/kustomization.yaml")).unwrap();
    assert_eq!(before, after, "the shared checkout is not modified");
    let plain = render(&tools(), repo.path(), &source("overlays/prod", json!({})), &ctx())
        .await
        .unwrap();
    assert_eq!(plain.objects[0]["metadata"]["name"], "web");
}

#[tokio::test]
async fn a_broken_kustomization_reports_kustomize_s_message() {
    let repo = tempfile::tempdir().unwrap();
    write(
        repo.path(),
        "k/kustomization.yaml",
        "resources:\n- missing.yaml\n",
    );
    let err = render(&tools(), repo.path(), &source("k", json!({})), &ctx())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("kustomize build") && text.contains("missing.yaml"),
        "{text}"
    );
}

fn chart_repo() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    write(
        repo.path(),
        "chart/Chart.yaml",
        "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
    );
    write(
        repo.path(),
        "chart/values.yaml",
        "color: red\nsize: 1\nflag: plain\n",
    );
    write(repo.path(), "chart/values-prod.yaml", "size: 2\n");
    write(
        repo.path(),
        "chart/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cfg\n  namespace: {{ .Release.Namespace }}\ndata:\n  color: {{ .Values.color | quote }}\n  size: {{ .Values.size | quote }}\n  flag: {{ .Values.flag | kindOf | quote }}\n",
    );
    write(
        repo.path(),
        "chart/crds/crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions: []\n",
    );
    write(repo.path(), "secret.yaml", "color: stolen\n");
    repo
}

#[tokio::test]
async fn a_helm_chart_with_values_in_upstream_s_precedence() {
    let repo = chart_repo();
    let helm = json!({"helm": {"releaseName": "web", "valueFiles": ["values-prod.yaml"],
        "values": "color: blue\n", "parameters": [{"name": "flag", "value": "true", "forceString": true}]}});
    let out = render(&tools(), repo.path(), &source("chart", helm), &ctx())
        .await
        .unwrap();
    assert_eq!(out.source_type, SourceType::Helm);
    let cm = out.objects.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
    assert_eq!(cm["metadata"]["name"], "web-cfg");
    assert_eq!(cm["metadata"]["namespace"], "prod");
    assert_eq!(cm["data"]["color"], "blue");
    assert_eq!(cm["data"]["size"], "2");
    assert_eq!(cm["data"]["flag"], "string");
    assert!(
        out.objects
            .iter()
            .any(|o| o["kind"] == "CustomResourceDefinition")
    );
    let object_wins = json!({"helm": {"values": "color: blue\n", "valuesObject": {"color": "green"},
        "parameters": [{"name": "size", "value": "9"}], "skipCrds": true}});
    let out = render(&tools(), repo.path(), &source("chart", object_wins), &ctx())
        .await
        .unwrap();
    let cm = out.objects.iter().find(|o| o["kind"] == "ConfigMap").unwrap();
    assert_eq!(
        cm["metadata"]["name"], "shop-cfg",
        "the app name is the default release"
    );
    assert_eq!(cm["data"]["color"], "green");
    assert_eq!(cm["data"]["size"], "9");
    assert!(
        !out.objects
            .iter()
            .any(|o| o["kind"] == "CustomResourceDefinition")
    );
}

#[tokio::test]
async fn value_files_outside_the_repository_or_missing() {
    let repo = chart_repo();
    for bad in ["../../etc/passwd", "/etc/passwd", "../../../outside.yaml"] {
        let helm = json!({"helm": {"valueFiles": [bad]}});
        let err = render(&tools(), repo.path(), &source("chart", helm), &ctx())
            .await
            .unwrap_err();
        assert!(
            matches!(err, RenderError::OutsideRepository { .. }),
            "{bad}: {err}"
        );
    }
    let inside = json!({"helm": {"valueFiles": ["../secret.yaml"]}});
    let out = render(&tools(), repo.path(), &source("chart", inside), &ctx())
        .await
        .unwrap();
    assert_eq!(
        out.objects.iter().find(|o| o["kind"] == "ConfigMap").unwrap()["data"]["color"],
        "stolen"
    );
    let missing = json!({"helm": {"valueFiles": ["nope.yaml"]}});
    let err = render(&tools(), repo.path(), &source("chart", missing), &ctx())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope.yaml"), "{err}");
    let ignored = json!({"helm": {"valueFiles": ["nope.yaml"], "ignoreMissingValueFiles": true}});
    assert!(
        render(&tools(), repo.path(), &source("chart", ignored), &ctx())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_failing_chart_reports_helm_s_message_and_a_slow_tool_is_killed() {
    let repo = chart_repo();
    write(
        repo.path(),
        "chart/templates/bad.yaml",
        "{{ .Values.nothing.here }}\n",
    );
    let err = render(&tools(), repo.path(), &source("chart", json!({})), &ctx())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("helm template") && err.to_string().contains("nil pointer"),
        "{err}"
    );
    let mut slow = tools();
    slow.helm = PathBuf::from("/bin/sleep");
    slow.timeout = Duration::from_millis(200);
    let fake = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let err = run(
        &slow,
        "sleep",
        Path::new("/bin/sleep"),
        &["5".into()],
        fake.path(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn helm_arguments() {
    let options: ApplicationSourceHelm = serde_json::from_value(json!({
        "releaseName": "r", "namespace": "n", "skipTests": true, "kubeVersion": "1.36.0",
        "parameters": [{"name": "a", "value": "1"}, {"name": "b", "value": "x", "forceString": true}]
    }))
    .unwrap();
    let args = helm_args(
        &options,
        &ctx(),
        &[PathBuf::from("/r/v.yaml")],
        Some(Path::new("/t/values.yaml")),
        &[],
    );
    assert_eq!(
        args,
        [
            "template",
            ".",
            "--name-template",
            "r",
            "--namespace",
            "n",
            "--kube-version",
            "1.36.0",
            "--include-crds",
            "--skip-tests",
            "--values",
            "/r/v.yaml",
            "--values",
            "/t/values.yaml",
            "--set",
            "a=1",
            "--set-string",
            "b=x"
        ]
    );
}

#[test]
fn kustomize_edit_commands() {
    let options: ApplicationSourceKustomize = serde_json::from_value(json!({
        "namePrefix": "p-", "images": ["web=web:2"], "commonLabels": {"a": "b"}, "forceCommonLabels": true,
        "namespace": "ns", "replicas": [{"name": "web", "count": 3}]
    }))
    .unwrap();
    let edits = kustomize_edits(&options);
    assert_eq!(edits[0], ["edit", "set", "nameprefix", "--", "p-"]);
    assert_eq!(edits[1], ["edit", "set", "image", "web=web:2"]);
    assert_eq!(edits[2], ["edit", "add", "label", "--force", "--", "a:b"]);
    assert_eq!(edits[3], ["edit", "set", "namespace", "--", "ns"]);
    assert_eq!(edits[4], ["edit", "set", "replicas", "web=3"]);
    assert!(kustomize_edits(&ApplicationSourceKustomize::default()).is_empty());
}

#[test]
fn the_cache_is_bounded_and_keyed_by_everything() {
    let cache = RenderCache::new(2);
    let r = |n: &str| Rendered {
        source_type: SourceType::Directory,
        objects: vec![json!({"n": n})],
    };
    let s = source("a", json!({}));
    let k1 = RenderCache::key("repo", "sha1", &s, &ctx());
    let k2 = RenderCache::key("repo", "sha2", &s, &ctx());
    let k3 = RenderCache::key("repo", "sha1", &source("b", json!({})), &ctx());
    assert!(k1 != k2 && k1 != k3);
    cache.insert(k1.clone(), r("1"));
    cache.insert(k2.clone(), r("2"));
    assert!(cache.get(&k1).is_some());
    cache.insert(k3.clone(), r("3"));
    assert_eq!(cache.len(), 2);
    assert!(cache.get(&k2).is_none(), "the least recently used is evicted");
    assert!(cache.get(&k1).is_some() && cache.get(&k3).is_some());
    cache.invalidate_all();
    assert!(cache.is_empty());
}
