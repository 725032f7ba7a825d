//! `kustomize build` of an Application source, as Argo CD runs it (`AC:util/kustomize/kustomize.go`:
//! `Build`, `mapToEditAddArgs`, the `apply*` steps).
//!
//! - Without overrides the app directory is built in place: `kustomize build <app path>` from the repository
//!   root, which kustomize only reads.
//! - The overrides of `spec.source.kustomize` are applied first, in upstream's order, with `kustomize edit`
//!   in the app directory ([`edits`]): `set nameprefix`, `set namesuffix`, `set image` (all images in one
//!   command), `set replicas`, `add label` (`--force` with `forceCommonLabels`, `--without-selector`,
//!   `--include-templates`), `add annotation` (`--force` with `forceCommonAnnotations`), `set namespace`,
//!   then `patches` appended to the kustomization file (there is no edit command for them), then
//!   `add component`. Images and label values expand the build environment ([`BuildEnv::subst`]), annotation
//!   values only with `commonAnnotationsEnvsubst`. A replica count must be an integer (or a string holding
//!   one). With `ignoreMissingComponents`, components that do not exist (or lie outside the repository) are
//!   left out, and none left means no command.
//! - `kustomize edit` rewrites the kustomization file, so with overrides the repository (without `.git`) is
//!   first copied to a private temporary directory, files copied (never hard-linked) and made writable, and
//!   the edits and the build run there. The shared checkout is never written.
//! - Not applied: `version` (one kustomize binary is configured) and `kubeVersion`/`apiVersions` (upstream
//!   passes them only to Helm charts inflated with `--enable-helm`, which Sluice does not enable).

use std::fs;
use std::path::{Path, PathBuf};

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;
use sluice_crds::application::{ApplicationSourceKustomize, KustomizeReplica};

use crate::directory::{self, RenderError};
use crate::json_type;
use crate::render::{
    BuildEnv, Located, ToolRun, Tools, blocking, invalid, io_error, join_inside, parse_output, run_tool,
    tool_error,
};

/// The file names kustomize reads as a kustomization, in the order it looks for them.
pub const KUSTOMIZATION_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// One step applying an Application's overrides to its kustomization.
#[derive(Clone, Debug, PartialEq)]
pub enum Edit {
    /// A `kustomize` command run in the app directory (its arguments, starting with `edit`).
    Command(Vec<String>),
    /// Patches appended to the kustomization file's `patches`.
    AddPatches(Vec<Value>),
}

/// The steps that apply `options`, in upstream's order; `component_exists` answers for a component path
/// (relative to the app directory) when `ignoreMissingComponents` is set.
pub fn edits(
    options: &ApplicationSourceKustomize,
    env: &BuildEnv,
    component_exists: impl Fn(&str) -> bool,
) -> Result<Vec<Edit>, RenderError> {
    let mut steps = Vec::new();
    if let Some(prefix) = non_empty(&options.name_prefix) {
        steps.push(command(&["edit", "set", "nameprefix", "--", prefix]));
    }
    if let Some(suffix) = non_empty(&options.name_suffix) {
        steps.push(command(&["edit", "set", "namesuffix", "--", suffix]));
    }
    let images = options.images.as_deref().unwrap_or_default();
    if !images.is_empty() {
        let mut args = command_args(&["edit", "set", "image"]);
        args.extend(images.iter().map(|image| env.subst(image)));
        steps.push(Edit::Command(args));
    }
    let replicas = options.replicas.as_deref().unwrap_or_default();
    if !replicas.is_empty() {
        let mut args = command_args(&["edit", "set", "replicas"]);
        for replica in replicas {
            args.push(format!("{}={}", replica.name, replica_count(replica)?));
        }
        steps.push(Edit::Command(args));
    }
    steps.extend(label_edit(options, env));
    steps.extend(annotation_edit(options, env));
    if let Some(namespace) = non_empty(&options.namespace) {
        steps.push(command(&["edit", "set", "namespace", "--", namespace]));
    }
    let patches = options.patches.as_deref().unwrap_or_default();
    if !patches.is_empty() {
        steps.push(Edit::AddPatches(patches.to_vec()));
    }
    let ignore_missing = options.ignore_missing_components == Some(true);
    let components: Vec<&String> = options
        .components
        .iter()
        .flatten()
        .filter(|c| !ignore_missing || component_exists(c.as_str()))
        .collect();
    if !components.is_empty() {
        let mut args = command_args(&["edit", "add", "component"]);
        args.extend(components.into_iter().cloned());
        steps.push(Edit::Command(args));
    }
    Ok(steps)
}

/// `edit add label` for `commonLabels` (values expanded), with its flags.
fn label_edit(options: &ApplicationSourceKustomize, env: &BuildEnv) -> Option<Edit> {
    let labels = options.common_labels.as_ref().filter(|l| !l.is_empty())?;
    let mut args = command_args(&["edit", "add", "label"]);
    let flags = [
        (options.force_common_labels, "--force"),
        (options.label_without_selector, "--without-selector"),
        (options.label_include_templates, "--include-templates"),
    ];
    args.extend(
        flags
            .iter()
            .filter(|(on, _)| *on == Some(true))
            .map(|(_, flag)| (*flag).to_owned()),
    );
    args.extend(labels.iter().map(|(k, v)| format!("{k}:{}", env.subst(v))));
    Some(Edit::Command(args))
}

/// `edit add annotation` for `commonAnnotations` (values expanded only with `commonAnnotationsEnvsubst`).
fn annotation_edit(options: &ApplicationSourceKustomize, env: &BuildEnv) -> Option<Edit> {
    let annotations = options.common_annotations.as_ref().filter(|a| !a.is_empty())?;
    let mut args = command_args(&["edit", "add", "annotation"]);
    if options.force_common_annotations == Some(true) {
        args.push("--force".to_owned());
    }
    let expand = options.common_annotations_envsubst == Some(true);
    args.extend(annotations.iter().map(|(k, v)| {
        let value = if expand { env.subst(v) } else { v.clone() };
        format!("{k}:{value}")
    }));
    Some(Edit::Command(args))
}

/// The arguments of the build of the app directory at `app_rel` (relative to the repository root, which is
/// the working directory).
pub fn build_args(app_rel: &Path) -> Vec<String> {
    let path = app_rel.to_string_lossy();
    let path = if path.is_empty() { ".".into() } else { path };
    vec!["build".to_owned(), path.into_owned()]
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

fn command_args(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

fn command(args: &[&str]) -> Edit {
    Edit::Command(command_args(args))
}

/// A replica override's count as upstream's `GetIntCount` reads it.
fn replica_count(replica: &KustomizeReplica) -> Result<i64, RenderError> {
    match &replica.count {
        IntOrString::Int(count) => Ok(i64::from(*count)),
        IntOrString::String(text) => text.parse().map_err(|_| {
            invalid(format!(
                "expected integer value for count of replica override {:?}. Received: {text}",
                replica.name
            ))
        }),
    }
}

/// Renders the kustomization at the located app directory with the Application's overrides.
pub(crate) async fn build(
    tools: &Tools,
    located: &Located,
    options: Option<&ApplicationSourceKustomize>,
    env: &BuildEnv,
) -> Result<Vec<Value>, RenderError> {
    let steps = match options {
        Some(options) => edits(options, env, |component| {
            join_inside(&located.root, &located.app_dir, component).is_some_and(|p| p.exists())
        })?,
        None => Vec::new(),
    };
    let app_rel = located.app_rel().to_path_buf();
    let shared = vec![(located.root.clone(), ".")];
    if steps.is_empty() {
        let args = build_args(&app_rel);
        let output = kustomize(tools, "kustomize build", args, &located.root, env, shared).await?;
        return parse_output("kustomize build", &output);
    }
    let copy = {
        let root = located.root.clone();
        blocking(move || private_copy(&root)).await?
    };
    let copy_root = fs::canonicalize(copy.path()).map_err(|e| io_error(copy.path(), &e))?;
    let app_dir = copy_root.join(&app_rel);
    let mut redact = shared;
    redact.push((copy_root.clone(), "."));
    for step in steps {
        match step {
            Edit::Command(args) => {
                kustomize(tools, "kustomize edit", args, &app_dir, env, redact.clone()).await?;
            }
            Edit::AddPatches(patches) => {
                let dir = app_dir.clone();
                blocking(move || add_patches(&dir, &patches)).await?;
            }
        }
    }
    let args = build_args(&app_rel);
    let output = kustomize(tools, "kustomize build", args, &copy_root, env, redact).await?;
    parse_output("kustomize build", &output)
}

/// One kustomize run in `dir`.
async fn kustomize(
    tools: &Tools,
    tool: &'static str,
    args: Vec<String>,
    dir: &Path,
    env: &BuildEnv,
    redact: Vec<(PathBuf, &'static str)>,
) -> Result<Vec<u8>, RenderError> {
    let run = ToolRun {
        tool,
        program: &tools.kustomize,
        args,
        dir,
        env,
        redact,
    };
    run_tool(run, tools.timeout).await
}

/// A private, writable copy of the repository at `root` (without `.git`), removed when dropped.
fn private_copy(root: &Path) -> Result<tempfile::TempDir, RenderError> {
    let copy = tempfile::Builder::new()
        .prefix("sluice-kustomize-")
        .tempdir()
        .map_err(|e| io_error(Path::new("$TMPDIR"), &e))?;
    copy_tree(root, copy.path())?;
    Ok(copy)
}

/// Copies the tree at `from` into the existing directory `to`: directories, regular files (made writable
/// by their owner) and symlinks (as written; they were checked to stay inside), skipping `.git` entries.
fn copy_tree(from: &Path, to: &Path) -> Result<(), RenderError> {
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let (src_dir, dst_dir) = (from.join(&rel), to.join(&rel));
        fs::create_dir_all(&dst_dir).map_err(|e| io_error(&rel, &e))?;
        let entries = fs::read_dir(&src_dir).map_err(|e| io_error(&rel, &e))?;
        for entry in entries {
            let entry = entry.map_err(|e| io_error(&rel, &e))?;
            let name = entry.file_name();
            if name == ".git" {
                continue;
            }
            let (src, dst, entry_rel) = (entry.path(), dst_dir.join(&name), rel.join(&name));
            let kind = entry.file_type().map_err(|e| io_error(&entry_rel, &e))?;
            if kind.is_dir() {
                pending.push(entry_rel);
            } else if kind.is_symlink() {
                copy_symlink(&src, &dst).map_err(|e| io_error(&entry_rel, &e))?;
            } else if kind.is_file() {
                fs::copy(&src, &dst).map_err(|e| io_error(&entry_rel, &e))?;
                make_writable(&dst).map_err(|e| io_error(&entry_rel, &e))?;
            }
        }
    }
    Ok(())
}

#[cfg(unix)]
fn copy_symlink(src: &Path, dst: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(fs::read_link(src)?, dst)
}

#[cfg(not(unix))]
fn copy_symlink(src: &Path, dst: &Path) -> std::io::Result<()> {
    fs::copy(src, dst).map(|_| ())
}

#[cfg(unix)]
fn make_writable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut permissions = fs::metadata(path)?.permissions();
    permissions.set_mode(permissions.mode() | 0o200);
    fs::set_permissions(path, permissions)
}

#[cfg(not(unix))]
fn make_writable(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Appends `patches` to the `patches` of the kustomization file in `app_dir` (created when absent), as
/// upstream's `applyPatches` does; the file is written back as JSON, which kustomize reads as YAML.
fn add_patches(app_dir: &Path, patches: &[Value]) -> Result<(), RenderError> {
    let edit_error = |message: String| tool_error("kustomize edit", message);
    let name = KUSTOMIZATION_NAMES
        .iter()
        .find(|name| app_dir.join(name).is_file())
        .ok_or_else(|| edit_error("kustomization file not found in the path".to_owned()))?;
    let path = app_dir.join(name);
    let text = fs::read_to_string(&path).map_err(|e| io_error(Path::new(name), &e))?;
    let mut kustomization = directory::decode_yaml_value(&text)
        .map_err(|m| edit_error(format!("failed to unmarshal {name}: {m}")))?;
    let Value::Object(fields) = &mut kustomization else {
        return Err(edit_error(format!(
            "expected {name} to be a mapping, but got {}",
            json_type(&kustomization)
        )));
    };
    match fields.get_mut("patches") {
        Some(Value::Array(existing)) => existing.extend(patches.iter().cloned()),
        Some(other) => {
            return Err(edit_error(format!(
                "expected 'patches' field in {name} to be a list, but got {}",
                json_type(other)
            )));
        }
        None => {
            fields.insert("patches".to_owned(), Value::Array(patches.to_vec()));
        }
    }
    let bytes = serde_json::to_vec_pretty(&kustomization).map_err(|e| edit_error(e.to_string()))?;
    fs::write(&path, bytes).map_err(|e| io_error(Path::new(name), &e))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::render::test_support::{ctx, snapshot, source, tools, write};
    use crate::render::{RenderContext, SourceType, render};

    fn options(value: Value) -> ApplicationSourceKustomize {
        serde_json::from_value(value).expect("kustomize options")
    }

    fn env() -> BuildEnv {
        let source = source("apps/web", json!({"targetRevision": "main"}));
        BuildEnv::new(&source, &ctx())
    }

    fn args(step: &Edit) -> Vec<&str> {
        match step {
            Edit::Command(args) => args.iter().map(String::as_str).collect(),
            Edit::AddPatches(_) => vec!["<patches>"],
        }
    }

    #[test]
    fn edits_follow_upstream_s_order_and_flags() {
        let all = options(json!({
            "namePrefix": "p-", "nameSuffix": "-s", "images": ["web=web:2", "db:${ARGOCD_APP_NAME}"],
            "replicas": [{"name": "web", "count": 3}, {"name": "db", "count": "2"}],
            "commonLabels": {"team": "shop", "app": "$ARGOCD_APP_NAME"}, "forceCommonLabels": true,
            "labelWithoutSelector": true,
            "commonAnnotations": {"owner": "$ARGOCD_APP_NAME"}, "forceCommonAnnotations": true,
            "namespace": "ns", "patches": [{"patch": "[]", "target": {"kind": "Deployment"}}],
            "components": ["../c1", "missing"], "ignoreMissingComponents": true
        }));
        let steps = edits(&all, &env(), |c| c == "../c1").expect("edits");
        let got: Vec<Vec<&str>> = steps.iter().map(args).collect();
        assert_eq!(
            got,
            [
                vec!["edit", "set", "nameprefix", "--", "p-"],
                vec!["edit", "set", "namesuffix", "--", "-s"],
                vec!["edit", "set", "image", "web=web:2", "db:shop"],
                vec!["edit", "set", "replicas", "web=3", "db=2"],
                vec![
                    "edit",
                    "add",
                    "label",
                    "--force",
                    "--without-selector",
                    "app:shop",
                    "team:shop"
                ],
                vec!["edit", "add", "annotation", "--force", "owner:$ARGOCD_APP_NAME"],
                vec!["edit", "set", "namespace", "--", "ns"],
                vec!["<patches>"],
                vec!["edit", "add", "component", "../c1"],
            ]
        );
        let expanded = options(json!({"commonAnnotations": {"owner": "${ARGOCD_APP_NAME}"},
                                      "commonAnnotationsEnvsubst": true}));
        let steps = edits(&expanded, &env(), |_| true).expect("edits");
        assert_eq!(args(&steps[0]), ["edit", "add", "annotation", "owner:shop"]);
        let kept = options(json!({"components": ["missing"]}));
        let steps = edits(&kept, &env(), |_| false).expect("edits");
        assert_eq!(
            args(&steps[0]),
            ["edit", "add", "component", "missing"],
            "kustomize reports it"
        );
    }

    #[test]
    fn no_overrides_means_no_edits_and_an_in_place_build() {
        let empty = options(json!({"namePrefix": "", "images": [], "commonLabels": {}, "components": []}));
        assert!(edits(&empty, &env(), |_| true).expect("edits").is_empty());
        let none_left = options(json!({"components": ["gone"], "ignoreMissingComponents": true}));
        assert!(edits(&none_left, &env(), |_| false).expect("edits").is_empty());
        assert_eq!(build_args(Path::new("")), ["build", "."]);
        assert_eq!(build_args(Path::new("overlays/prod")), ["build", "overlays/prod"]);
    }

    #[test]
    fn a_replica_count_that_is_not_a_number_is_refused() {
        let bad = options(json!({"replicas": [{"name": "web", "count": "three"}]}));
        let err = edits(&bad, &env(), |_| true).expect_err("not a number");
        assert!(matches!(err, RenderError::InvalidSource { .. }), "{err}");
        assert!(err.to_string().contains("three"), "{err}");
    }

    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {app: web}\n\
        spec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      \
        labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: registry.local/web:1\n";

    fn overlay_repo() -> tempfile::TempDir {
        let repo = tempfile::tempdir().expect("tempdir");
        write(repo.path(), "base/deploy.yaml", DEPLOY);
        write(
            repo.path(),
            "base/kustomization.yaml",
            "resources:\n- deploy.yaml\n",
        );
        write(
            repo.path(),
            "components/extra/kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncommonAnnotations:\n  extra: \"yes\"\n",
        );
        write(
            repo.path(),
            "overlays/prod/kustomization.yaml",
            "resources:\n- ../../base\ncommonAnnotations:\n  env: prod\n",
        );
        write(repo.path(), ".git", "gitdir: /nowhere\n");
        repo
    }

    fn deployment(objects: &[Value]) -> &Value {
        objects
            .iter()
            .find(|o| o["kind"] == "Deployment")
            .expect("a Deployment")
    }

    #[tokio::test]
    async fn an_overlay_with_overrides_renders_and_leaves_the_checkout_untouched() {
        let repo = overlay_repo();
        let before = snapshot(repo.path());
        let patch = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  annotations:\n    \
                     patched: \"true\"\n";
        let overrides = json!({"kustomize": {
            "namePrefix": "prod-", "nameSuffix": "-v2", "images": ["registry.local/web=registry.local/web:2"],
            "commonLabels": {"team": "shop"}, "replicas": [{"name": "web", "count": 4}],
            "components": ["../../components/extra"],
            "patches": [{"target": {"kind": "Deployment"}, "patch": patch}]
        }});
        let out = render(&tools(), repo.path(), &source("overlays/prod", overrides), &ctx())
            .await
            .expect("render");
        assert_eq!(out.source_type, SourceType::Kustomize);
        let d = deployment(&out.objects);
        assert_eq!(d["metadata"]["name"], "prod-web-v2");
        assert_eq!(d["metadata"]["labels"]["team"], "shop");
        assert_eq!(d["spec"]["selector"]["matchLabels"]["team"], "shop");
        assert_eq!(d["metadata"]["annotations"]["env"], "prod");
        assert_eq!(d["metadata"]["annotations"]["extra"], "yes");
        assert_eq!(d["metadata"]["annotations"]["patched"], "true");
        assert_eq!(d["spec"]["replicas"], 4);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["image"],
            "registry.local/web:2"
        );
        assert_eq!(
            snapshot(repo.path()),
            before,
            "the shared checkout is not modified"
        );

        let plain = render(&tools(), repo.path(), &source("overlays/prod", json!({})), &ctx())
            .await
            .expect("render");
        assert_eq!(deployment(&plain.objects)["metadata"]["name"], "web");
        assert!(
            deployment(&plain.objects)["metadata"]["labels"]
                .get("team")
                .is_none()
        );
        assert_eq!(snapshot(repo.path()), before);
    }

    #[tokio::test]
    async fn namespace_and_labels_without_selector() {
        let repo = overlay_repo();
        let overrides = json!({"kustomize": {"namespace": "shop-prod", "commonLabels": {"team": "shop"},
                                             "labelWithoutSelector": true}});
        let ctx = RenderContext {
            app_name: "shop".into(),
            namespace: "ignored-by-kustomize".into(),
            ..RenderContext::default()
        };
        let out = render(&tools(), repo.path(), &source("overlays/prod", overrides), &ctx)
            .await
            .expect("render");
        let d = deployment(&out.objects);
        assert_eq!(d["metadata"]["namespace"], "shop-prod");
        assert_eq!(d["metadata"]["labels"]["team"], "shop");
        assert!(d["spec"]["selector"]["matchLabels"].get("team").is_none());
    }

    #[tokio::test]
    async fn a_broken_kustomization_reports_kustomize_s_message() {
        let repo = tempfile::tempdir().expect("tempdir");
        write(
            repo.path(),
            "k/kustomization.yaml",
            "resources:\n- missing.yaml\n",
        );
        let err = render(&tools(), repo.path(), &source("k", json!({})), &ctx())
            .await
            .expect_err("missing resource");
        let RenderError::Tool { tool, message } = &err else {
            panic!("not a tool error: {err}");
        };
        assert_eq!(tool, "kustomize build");
        assert!(message.contains("missing.yaml"), "{message}");
        let root = fs::canonicalize(repo.path()).expect("canonical");
        assert!(
            !message.contains(root.to_str().expect("utf-8")),
            "the checkout's directory is shown as `.`: {message}"
        );
    }

    #[tokio::test]
    async fn a_missing_component_fails_unless_ignored() {
        let repo = overlay_repo();
        let missing = json!({"kustomize": {"components": ["../../components/nope"]}});
        let err = render(&tools(), repo.path(), &source("overlays/prod", missing), &ctx())
            .await
            .expect_err("missing component");
        assert!(
            matches!(&err, RenderError::Tool { tool, .. } if tool == "kustomize edit"),
            "{err}"
        );
        let ignored = json!({"kustomize": {"components": ["../../components/nope", "../../components/extra"],
                                           "ignoreMissingComponents": true}});
        let out = render(&tools(), repo.path(), &source("overlays/prod", ignored), &ctx())
            .await
            .expect("render");
        assert_eq!(
            deployment(&out.objects)["metadata"]["annotations"]["extra"],
            "yes"
        );
    }

    #[test]
    fn patches_are_appended_to_the_kustomization() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "kustomization.yaml",
            "resources: [a.yaml]\npatches:\n- path: p.yaml\n",
        );
        add_patches(dir.path(), &[json!({"patch": "[]"})]).expect("patches");
        let text = fs::read_to_string(dir.path().join("kustomization.yaml")).expect("read");
        let written: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            written,
            json!({"resources": ["a.yaml"], "patches": [{"path": "p.yaml"}, {"patch": "[]"}]})
        );
        write(dir.path(), "kustomization.yaml", "patches: {}\n");
        let err = add_patches(dir.path(), &[json!({})]).expect_err("not a list");
        assert!(err.to_string().contains("to be a list"), "{err}");
        let empty = tempfile::tempdir().expect("tempdir");
        assert!(add_patches(empty.path(), &[json!({})]).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn the_private_copy_is_writable_and_keeps_symlinks() {
        use std::os::unix::fs::PermissionsExt;
        let repo = tempfile::tempdir().expect("tempdir");
        write(repo.path(), "a/kustomization.yaml", "resources: []\n");
        write(repo.path(), ".git/HEAD", "ref\n");
        std::os::unix::fs::symlink("a", repo.path().join("link")).expect("symlink");
        let file = repo.path().join("a/kustomization.yaml");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o444)).expect("chmod");
        let copy = private_copy(repo.path()).expect("copy");
        let copied = copy.path().join("a/kustomization.yaml");
        assert_eq!(fs::read_to_string(&copied).expect("read"), "resources: []\n");
        let mode = fs::metadata(&copied).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o200, 0o200, "writable by its owner");
        assert_eq!(
            fs::read_link(copy.path().join("link")).expect("link"),
            Path::new("a")
        );
        assert!(!copy.path().join(".git").exists());
        assert_eq!(
            fs::metadata(&file).expect("metadata").permissions().mode() & 0o777,
            0o444
        );
    }
}
