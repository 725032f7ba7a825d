//! Detection, dispatch, the child-process runner, the build environment and the cache.

use std::time::Instant;

use serde_json::json;

use super::test_support::{ctx, source, tools, write};
use super::*;

fn detected(files: &[&str], extra: serde_json::Value) -> Result<SourceType, RenderError> {
    let repo = tempfile::tempdir().expect("tempdir");
    for file in files {
        write(repo.path(), &format!("app/{file}"), "{}\n");
    }
    fs::create_dir_all(repo.path().join("app")).expect("mkdir");
    detect(&repo.path().join("app"), &source("app", extra))
}

#[test]
fn detection_follows_upstream_s_discovery() {
    let none = json!({});
    assert_eq!(
        detected(&["Chart.yaml", "values.yaml"], none.clone()),
        Ok(SourceType::Helm)
    );
    assert_eq!(
        detected(&["kustomization.yaml"], none.clone()),
        Ok(SourceType::Kustomize)
    );
    assert_eq!(
        detected(&["kustomization.yml"], none.clone()),
        Ok(SourceType::Kustomize)
    );
    assert_eq!(
        detected(&["Kustomization"], none.clone()),
        Ok(SourceType::Kustomize)
    );
    assert_eq!(
        detected(&["deploy.yaml"], none.clone()),
        Ok(SourceType::Directory)
    );
    assert_eq!(detected(&[], none.clone()), Ok(SourceType::Directory));
    assert_eq!(
        detected(&["Chart.yaml", "kustomization.yaml"], none.clone()),
        Ok(SourceType::Kustomize),
        "the last name in byte order wins"
    );
    assert_eq!(
        detected(&["kustomization.yaml", "myChart.yaml"], none.clone()),
        Ok(SourceType::Helm)
    );
    assert_eq!(
        detected(&["Chart.yaml/x.yaml", "sub/kustomization.yaml"], none),
        Ok(SourceType::Directory),
        "directories and files below the app directory do not count"
    );
}

#[test]
fn an_explicit_tool_block_wins() {
    let files = ["Chart.yaml", "kustomization.yaml"];
    assert_eq!(
        detected(&files, json!({"directory": {}})),
        Ok(SourceType::Directory)
    );
    assert_eq!(detected(&files, json!({"helm": {}})), Ok(SourceType::Helm));
    assert_eq!(
        detected(&["a.yaml"], json!({"kustomize": {}})),
        Ok(SourceType::Kustomize)
    );
    let err = detected(&files, json!({"helm": {}, "directory": {"recurse": true}})).expect_err("two blocks");
    assert_eq!(
        err.to_string(),
        "multiple application sources defined: Helm,Directory"
    );
    let err = detected(&files, json!({"plugin": {"name": "cmp"}})).expect_err("plugin");
    assert!(err.to_string().contains("plugins"), "{err}");
}

#[test]
fn source_types_have_argo_cd_s_names() {
    assert_eq!(SourceType::Directory.as_str(), "Directory");
    assert_eq!(SourceType::Kustomize.to_string(), "Kustomize");
    assert_eq!(SourceType::Helm.as_str(), "Helm");
}

#[tokio::test]
async fn a_plain_directory_goes_through_the_directory_renderer() {
    let repo = tempfile::tempdir().expect("tempdir");
    write(
        repo.path(),
        "app/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
    );
    write(
        repo.path(),
        "app/sub/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
    );
    let out = render(&tools(), repo.path(), &source("app", json!({})), &ctx())
        .await
        .expect("render");
    assert_eq!(out.source_type, SourceType::Directory);
    assert_eq!(out.objects.len(), 1);
    let recurse = json!({"directory": {"recurse": true, "exclude": "sub/*"}});
    let out = render(&tools(), repo.path(), &source("app", recurse), &ctx())
        .await
        .expect("render");
    assert_eq!(out.objects.len(), 1);
    let all = json!({"directory": {"recurse": true}});
    let all = render(&tools(), repo.path(), &source("app", all), &ctx())
        .await
        .expect("render");
    assert_eq!(all.objects.len(), 2);
}

#[tokio::test]
async fn app_paths_leaving_the_repository_and_chart_sources_are_refused() {
    let repo = tempfile::tempdir().expect("tempdir");
    write(
        repo.path(),
        "app/Chart.yaml",
        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
    );
    for bad in ["../x", "/etc", "app/../../x"] {
        let err = render(&tools(), repo.path(), &source(bad, json!({})), &ctx())
            .await
            .expect_err("outside");
        assert_eq!(err, RenderError::OutsideRepository { path: bad.into() });
    }
    let err = render(&tools(), repo.path(), &source("missing", json!({})), &ctx())
        .await
        .expect_err("missing");
    assert_eq!(
        err,
        RenderError::AppPathNotFound {
            path: "missing".into()
        }
    );
    let chart = json!({"chart": "nginx", "targetRevision": "1.0.0"});
    let err = render(&tools(), repo.path(), &source("", chart), &ctx())
        .await
        .expect_err("chart");
    assert!(matches!(err, RenderError::InvalidSource { .. }), "{err}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_checkout_with_an_out_of_bounds_symlink_is_refused_for_the_tools() {
    let outside = tempfile::tempdir().expect("tempdir");
    write(outside.path(), "values.yaml", "a: 1\n");
    let repo = tempfile::tempdir().expect("tempdir");
    write(
        repo.path(),
        "chart/Chart.yaml",
        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
    );
    std::os::unix::fs::symlink(outside.path(), repo.path().join("elsewhere")).expect("symlink");
    let err = render(&tools(), repo.path(), &source("chart", json!({})), &ctx())
        .await
        .expect_err("out of bounds");
    assert_eq!(
        err,
        RenderError::OutsideRepository {
            path: "elsewhere".into()
        }
    );
}

#[test]
fn the_build_environment_expands_as_go_s_os_expand() {
    let source = source(
        "apps/web",
        json!({"targetRevision": "main", "repoURL": "https://git.example/r.git"}),
    );
    let env = BuildEnv::new(&source, &ctx());
    let cases = [
        ("web:$ARGOCD_APP_NAME", "web:shop"),
        ("web:${ARGOCD_APP_NAME}-x", "web:shop-x"),
        ("$ARGOCD_APP_NAMESPACE/$ARGOCD_APP_SOURCE_PATH", "prod/apps/web"),
        (
            "${ARGOCD_APP_SOURCE_TARGET_REVISION}@${ARGOCD_APP_SOURCE_REPO_URL}",
            "main@https://git.example/r.git",
        ),
        ("$UNKNOWN|${UNKNOWN}", "|"),
        ("cost: 5$", "cost: 5$"),
        ("$$HOME", "$HOME"),
        ("a$-b", "ab"),
        ("a${}b", "ab"),
        ("a${b", "ab"),
        ("a$ b", "a$ b"),
        ("é$ARGOCD_APP_NAMEé", "éshopé"),
        ("é${ARGOCD_APP_NAME}é", "éshopé"),
        ("", ""),
    ];
    for (text, want) in cases {
        assert_eq!(env.subst(text), want, "{text}");
    }
}

/// An executable shell script at `dir/name`.
#[cfg(unix)]
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[cfg(unix)]
fn run_in<'a>(program: &'a Path, dir: &'a Path, env: &'a BuildEnv) -> ToolRun<'a> {
    ToolRun {
        tool: "helm template",
        program,
        args: vec!["a b".into()],
        dir,
        env,
        redact: vec![(dir.to_path_buf(), ".")],
    }
}

#[cfg(unix)]
#[tokio::test]
async fn a_tool_that_runs_out_of_time_is_killed_and_reaped() {
    let bin = tempfile::tempdir().expect("tempdir");
    let pid_file = bin.path().join("pid");
    let body = format!("echo $$ > {}\nexec sleep 30", pid_file.display());
    let sleeper = script(bin.path(), "helm", &body);
    let env = BuildEnv::default();
    let started = Instant::now();
    let err = run_tool(run_in(&sleeper, bin.path(), &env), Duration::from_millis(500))
        .await
        .expect_err("timeout");
    assert_eq!(
        err,
        RenderError::Timeout {
            tool: "helm template".into(),
            after: Duration::from_millis(500)
        }
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let pid = fs::read_to_string(&pid_file).expect("pid").trim().to_owned();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the child is gone, not even a zombie"
    );

    let repo = tempfile::tempdir().expect("tempdir");
    write(
        repo.path(),
        "chart/Chart.yaml",
        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
    );
    let slow = Tools::new(PathBuf::from("kustomize"), sleeper).with_timeout(Duration::from_millis(300));
    let err = render(&slow, repo.path(), &source("chart", json!({})), &ctx())
        .await
        .expect_err("timeout");
    assert!(matches!(err, RenderError::Timeout { .. }), "{err}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_tool_runs_in_a_private_environment_and_its_errors_carry_stderr() {
    let bin = tempfile::tempdir().expect("tempdir");
    let env_dump = script(bin.path(), "dump", "echo \"$1\"; env");
    let env = BuildEnv::new(&source("app", json!({})), &ctx());
    let out = run_tool(run_in(&env_dump, bin.path(), &env), Duration::from_secs(10))
        .await
        .expect("runs");
    let out = String::from_utf8(out).expect("utf-8");
    let vars: BTreeMap<&str, &str> = out.lines().skip(1).filter_map(|l| l.split_once('=')).collect();
    assert_eq!(
        out.lines().next(),
        Some("a b"),
        "arguments are passed as they are"
    );
    assert_eq!(vars.get("ARGOCD_APP_NAME"), Some(&"shop"));
    let home = vars.get("HOME").expect("HOME");
    assert_ne!(Some(*home), std::env::var("HOME").ok().as_deref());
    assert!(vars.get("HELM_CACHE_HOME").is_some_and(|d| d.starts_with(home)));
    assert!(
        !vars.contains_key("CARGO_MANIFEST_DIR"),
        "nothing else is inherited"
    );
    assert!(!Path::new(home).exists(), "the private home is removed");

    let body = format!("echo \"Error: open {}/x.yaml\" >&2; exit 3", bin.path().display());
    let failing = script(bin.path(), "fail", &body);
    let err = run_tool(run_in(&failing, bin.path(), &env), Duration::from_secs(10))
        .await
        .expect_err("fails");
    assert_eq!(
        err,
        RenderError::Tool {
            tool: "helm template".into(),
            message: "Error: open ./x.yaml".into()
        }
    );
    let silent = script(bin.path(), "silent", "exit 2");
    let err = run_tool(run_in(&silent, bin.path(), &env), Duration::from_secs(10))
        .await
        .expect_err("fails");
    assert!(err.to_string().contains("exit status: 2"), "{err}");
    let missing = bin.path().join("no-such-binary");
    let err = run_tool(run_in(&missing, bin.path(), &env), Duration::from_secs(10))
        .await
        .expect_err("missing");
    assert!(err.to_string().contains("cannot run"), "{err}");
}

#[tokio::test]
async fn tool_output_is_bounded() {
    assert_eq!(read_capped(Some(&b"hello"[..]), 3).await, (b"hel".to_vec(), true));
    assert_eq!(
        read_capped(Some(&b"hello"[..]), 5).await,
        (b"hello".to_vec(), false)
    );
    assert_eq!(read_capped(None::<&[u8]>, 5).await, (Vec::new(), false));
}

#[test]
fn tool_output_parses_into_objects_with_lists_expanded() {
    let output = b"---\n# Source: c/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n\
        ---\n# only a comment\n---\napiVersion: v1\nkind: List\nitems:\n\
        - {apiVersion: v1, kind: Secret, metadata: {name: s}}\n";
    let objects = parse_output("helm template", output).expect("parses");
    let kinds: Vec<&str> = objects.iter().filter_map(|o| o["kind"].as_str()).collect();
    assert_eq!(kinds, ["ConfigMap", "Secret"]);
    let err = parse_output("helm template", b"just: data\n").expect_err("not an object");
    assert!(matches!(err, RenderError::Tool { .. }), "{err}");
}

fn rendered(n: u64) -> Rendered {
    Rendered {
        source_type: SourceType::Directory,
        objects: vec![json!({"n": n})],
        plain_secrets: Vec::new(),
    }
}

#[test]
fn the_cache_is_keyed_by_everything_that_shapes_a_render() {
    let s = source("a", json!({}));
    let base = RenderCache::key("repo", "sha1", &s, &ctx());
    let newer_cluster = RenderContext {
        kube_version: Some("1.36.0".into()),
        ..ctx()
    };
    let others = [
        RenderCache::key("other-repo", "sha1", &s, &ctx()),
        RenderCache::key("repo", "sha2", &s, &ctx()),
        RenderCache::key("repo", "sha1", &source("b", json!({})), &ctx()),
        RenderCache::key(
            "repo",
            "sha1",
            &source("a", json!({"helm": {"releaseName": "x"}})),
            &ctx(),
        ),
        RenderCache::key("repo", "sha1", &s, &newer_cluster),
    ];
    for other in &others {
        assert_ne!(&base, other);
    }
    assert_eq!(base, RenderCache::key("repo", "sha1", &s, &ctx()));
}

#[test]
fn the_cache_is_bounded_and_evicts_the_least_recently_used() {
    let cache = RenderCache::new(2);
    let key = |n: u64| RenderCache::key("repo", &n.to_string(), &source("a", json!({})), &ctx());
    cache.insert(key(1), rendered(1));
    cache.insert(key(2), rendered(2));
    assert_eq!(cache.get(&key(1)), Some(rendered(1)));
    cache.insert(key(3), rendered(3));
    assert_eq!(cache.len(), 2);
    assert_eq!(cache.get(&key(2)), None, "the least recently used is evicted");
    assert_eq!(cache.get(&key(1)), Some(rendered(1)));
    cache.insert(key(3), rendered(33));
    assert_eq!(cache.len(), 2, "a key stored again is replaced");
    cache.insert(key(4), rendered(4));
    assert_eq!(cache.get(&key(1)), None);
    assert_eq!(cache.get(&key(3)), Some(rendered(33)));
    cache.invalidate_all();
    assert!(cache.is_empty());
    assert_eq!(cache.get(&key(3)), None);
    assert_eq!(RenderCache::new(0).bound, 1);
}
