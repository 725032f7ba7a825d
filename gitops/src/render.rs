//! Rendering an Application source into objects, as Argo CD's repo server does: the tool is the one the
//! source names (`directory`, `kustomize`, `helm`), else detected (`Chart.yaml` ⇒ Helm,
//! `kustomization.yaml|yml` or `Kustomization` ⇒ Kustomize, else a plain directory). Kustomize and Helm are
//! the real binaries, run as child processes with a timeout under a bound on how many run at once; the
//! shared checkout is never written (Kustomize overrides are applied to a private copy). Renders are cached
//! in memory, bounded, by (repository, commit, path, options).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use sha2::{Digest, Sha256};
use sluice_crds::application::{ApplicationSource, ApplicationSourceHelm, ApplicationSourceKustomize};
use tokio::{process::Command, sync::Semaphore};

use crate::directory::{self, DirectoryOptions, RenderError};

/// The tool that renders a source (`status.sourceType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceType {
    /// Plain YAML/JSON files.
    Directory,
    /// `kustomize build`.
    Kustomize,
    /// `helm template`.
    Helm,
}

impl SourceType {
    /// Argo CD's name of the type.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::Directory => "Directory",
            SourceType::Kustomize => "Kustomize",
            SourceType::Helm => "Helm",
        }
    }
}

/// The render binaries and the bounds on running them.
#[derive(Clone, Debug)]
pub struct Tools {
    /// The kustomize binary.
    pub kustomize: PathBuf,
    /// The helm binary.
    pub helm: PathBuf,
    /// How long one tool run may take.
    pub timeout: Duration,
    permits: Arc<Semaphore>,
}

impl Tools {
    /// The binaries, 90 s per run, at most 4 runs at once.
    pub fn new(kustomize: PathBuf, helm: PathBuf) -> Self {
        Tools {
            kustomize,
            helm,
            timeout: Duration::from_secs(90),
            permits: Arc::new(Semaphore::new(4)),
        }
    }
}

/// What a render needs from the Application.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RenderContext {
    /// The Application's name (Helm's default release name).
    pub app_name: String,
    /// The destination namespace (Helm's default `--namespace`).
    pub namespace: String,
    /// `--kube-version` for Helm.
    pub kube_version: Option<String>,
    /// `--api-versions` for Helm.
    pub api_versions: Vec<String>,
}

/// A rendered source.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The tool used.
    pub source_type: SourceType,
    /// The objects, in the tool's order.
    pub objects: Vec<Value>,
}

/// The tool of a source at `app_dir`.
pub fn detect(app_dir: &Path, source: &ApplicationSource) -> SourceType {
    if source.helm.is_some() {
        return SourceType::Helm;
    }
    if source.kustomize.is_some() {
        return SourceType::Kustomize;
    }
    if source.directory.is_some() {
        return SourceType::Directory;
    }
    if app_dir.join("Chart.yaml").is_file() {
        return SourceType::Helm;
    }
    let kustomization = ["kustomization.yaml", "kustomization.yml", "Kustomization"];
    if kustomization.iter().any(|f| app_dir.join(f).is_file()) {
        return SourceType::Kustomize;
    }
    SourceType::Directory
}

/// Renders `source` from the checkout at `repo_root`.
pub async fn render(
    tools: &Tools,
    repo_root: &Path,
    source: &ApplicationSource,
    ctx: &RenderContext,
) -> Result<Rendered, RenderError> {
    let app_path = source.path.as_deref().unwrap_or(".");
    let root = std::fs::canonicalize(repo_root).map_err(|e| io(repo_root, &e))?;
    directory::check_out_of_bounds_symlinks(&root)?;
    let rel = directory::clean_app_path(app_path)?;
    let Some(app_dir) = directory::resolve_app_dir(&root, &rel, app_path)? else {
        return Err(RenderError::AppPathNotFound {
            path: app_path.to_string(),
        });
    };
    let source_type = detect(&app_dir, source);
    let objects = match source_type {
        SourceType::Directory => {
            let d = source.directory.as_ref();
            let options = DirectoryOptions {
                recurse: d.and_then(|d| d.recurse).unwrap_or(false),
                include: d.and_then(|d| d.include.clone()).filter(|s| !s.is_empty()),
                exclude: d.and_then(|d| d.exclude.clone()).filter(|s| !s.is_empty()),
            };
            directory::render(&root, app_path, &options)?
        }
        SourceType::Kustomize => {
            let options = source.kustomize.clone().unwrap_or_default();
            kustomize(tools, &root, &rel, &options).await?
        }
        SourceType::Helm => {
            let options = source.helm.clone().unwrap_or_default();
            helm(tools, &root, &app_dir, &options, ctx).await?
        }
    };
    Ok(Rendered { source_type, objects })
}

fn io(path: &Path, e: &std::io::Error) -> RenderError {
    RenderError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn tool_error(tool: &str, message: impl Into<String>) -> RenderError {
    RenderError::Tool {
        tool: tool.to_string(),
        message: message.into(),
    }
}

/// Runs a tool in `dir` with a private HOME, the timeout and a permit; returns its standard output.
async fn run(
    tools: &Tools,
    name: &str,
    program: &Path,
    args: &[String],
    dir: &Path,
) -> Result<Vec<u8>, RenderError> {
    let _permit = tools
        .permits
        .acquire()
        .await
        .map_err(|e| tool_error(name, e.to_string()))?;
    let home = tempfile::tempdir().map_err(|e| io(Path::new("tmp"), &e))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("HELM_CONFIG_HOME", home.path().join("helm/config"))
        .env("HELM_CACHE_HOME", home.path().join("helm/cache"))
        .env("HELM_DATA_HOME", home.path().join("helm/data"))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(tools.timeout, cmd.output()).await {
        Err(_) => {
            return Err(tool_error(
                name,
                format!("timed out after {}s", tools.timeout.as_secs()),
            ));
        }
        Ok(Err(e)) => return Err(tool_error(name, format!("{}: {e}", program.display()))),
        Ok(Ok(out)) => out,
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(tool_error(name, stderr));
    }
    Ok(out.stdout)
}

/// The `kustomize edit` commands that apply the Application's overrides.
pub fn kustomize_edits(options: &ApplicationSourceKustomize) -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut edits = Vec::new();
    if let Some(p) = options.name_prefix.as_deref().filter(|p| !p.is_empty()) {
        edits.push(s(&["edit", "set", "nameprefix", "--", p]));
    }
    if let Some(p) = options.name_suffix.as_deref().filter(|p| !p.is_empty()) {
        edits.push(s(&["edit", "set", "namesuffix", "--", p]));
    }
    for image in options.images.iter().flatten() {
        edits.push(s(&["edit", "set", "image", image]));
    }
    if let Some(labels) = options.common_labels.as_ref().filter(|l| !l.is_empty()) {
        let mut args = s(&["edit", "add", "label"]);
        if options.force_common_labels == Some(true) {
            args.push("--force".into());
        }
        if options.label_without_selector == Some(true) {
            args.push("--without-selector".into());
        }
        args.push("--".into());
        args.push(
            labels
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(","),
        );
        edits.push(args);
    }
    if let Some(annotations) = options.common_annotations.as_ref().filter(|a| !a.is_empty()) {
        let mut args = s(&["edit", "add", "annotation"]);
        if options.force_common_annotations == Some(true) {
            args.push("--force".into());
        }
        args.push("--".into());
        args.push(
            annotations
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(","),
        );
        edits.push(args);
    }
    if let Some(ns) = options.namespace.as_deref().filter(|n| !n.is_empty()) {
        edits.push(s(&["edit", "set", "namespace", "--", ns]));
    }
    for r in options.replicas.iter().flatten() {
        let count = match &r.count {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => i.to_string(),
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.clone(),
        };
        edits.push(vec![
            "edit".into(),
            "set".into(),
            "replicas".into(),
            format!("{}={count}", r.name),
        ]);
    }
    for c in options.components.iter().flatten() {
        edits.push(s(&["edit", "add", "component", c]));
    }
    edits
}

/// Copies a directory tree (without `.git`), following no symlinks out of it (they were checked).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

async fn kustomize(
    tools: &Tools,
    root: &Path,
    rel: &Path,
    options: &ApplicationSourceKustomize,
) -> Result<Vec<Value>, RenderError> {
    let edits = kustomize_edits(options);
    if edits.is_empty() {
        return build_kustomize(tools, &root.join(rel)).await;
    }
    let copy = tempfile::tempdir().map_err(|e| io(Path::new("tmp"), &e))?;
    copy_tree(root, copy.path()).map_err(|e| io(root, &e))?;
    let dir = copy.path().join(rel);
    for edit in &edits {
        run(tools, "kustomize edit", &tools.kustomize, edit, &dir).await?;
    }
    build_kustomize(tools, &dir).await
}

async fn build_kustomize(tools: &Tools, dir: &Path) -> Result<Vec<Value>, RenderError> {
    let out = run(
        tools,
        "kustomize build",
        &tools.kustomize,
        &["build".into(), ".".into()],
        dir,
    )
    .await?;
    parse_output("kustomize build", &out)
}

fn parse_output(tool: &str, out: &[u8]) -> Result<Vec<Value>, RenderError> {
    let mut objects = Vec::new();
    for object in directory::decode_yaml_file(tool, out)? {
        directory::push_expanded(tool, object, &mut objects)?;
    }
    Ok(objects)
}

/// A value file or file parameter path, checked to stay inside the repository; URLs pass through.
fn inside(root: &Path, app_dir: &Path, path: &str) -> Result<Option<PathBuf>, RenderError> {
    if path.starts_with("http://") || path.starts_with("https://") {
        return Ok(Some(PathBuf::from(path)));
    }
    let outside = || RenderError::OutsideRepository {
        path: path.to_string(),
    };
    if Path::new(path).is_absolute() {
        return Err(outside());
    }
    let joined = app_dir.join(path);
    let Ok(real) = std::fs::canonicalize(&joined) else {
        // A missing file must still not name a place outside the repository.
        let mut depth: i64 = app_dir
            .strip_prefix(root)
            .map(|p| p.components().count() as i64)
            .unwrap_or(0);
        for c in Path::new(path).components() {
            match c {
                std::path::Component::ParentDir => depth -= 1,
                std::path::Component::Normal(_) => depth += 1,
                _ => {}
            }
            if depth < 0 {
                return Err(outside());
            }
        }
        return Ok(None);
    };
    if !real.starts_with(root) {
        return Err(outside());
    }
    Ok(Some(real))
}

/// The `helm template` arguments for a chart at `app_dir` (value files resolved by the caller).
pub fn helm_args(
    options: &ApplicationSourceHelm,
    ctx: &RenderContext,
    value_files: &[PathBuf],
    inline_values: Option<&Path>,
    file_parameters: &[(String, PathBuf)],
) -> Vec<String> {
    let release = options
        .release_name
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| ctx.app_name.clone());
    let namespace = options
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| ctx.namespace.clone());
    let mut args = vec![
        "template".to_string(),
        ".".into(),
        "--name-template".into(),
        release,
    ];
    if !namespace.is_empty() {
        args.extend(["--namespace".into(), namespace]);
    }
    if let Some(v) = options.kube_version.clone().or(ctx.kube_version.clone()) {
        args.extend(["--kube-version".into(), v]);
    }
    for v in options.api_versions.iter().flatten().chain(&ctx.api_versions) {
        args.extend(["--api-versions".into(), v.clone()]);
    }
    if options.skip_crds != Some(true) {
        args.push("--include-crds".into());
    }
    if options.skip_tests == Some(true) {
        args.push("--skip-tests".into());
    }
    if options.skip_schema_validation == Some(true) {
        args.push("--skip-schema-validation".into());
    }
    for f in value_files {
        args.extend(["--values".into(), f.display().to_string()]);
    }
    if let Some(f) = inline_values {
        args.extend(["--values".into(), f.display().to_string()]);
    }
    for p in options.parameters.iter().flatten() {
        let (Some(name), value) = (p.name.as_deref(), p.value.as_deref().unwrap_or("")) else {
            continue;
        };
        let flag = if p.force_string == Some(true) {
            "--set-string"
        } else {
            "--set"
        };
        args.extend([flag.into(), format!("{name}={value}")]);
    }
    for (name, path) in file_parameters {
        args.extend(["--set-file".into(), format!("{name}={}", path.display())]);
    }
    args
}

async fn helm(
    tools: &Tools,
    root: &Path,
    app_dir: &Path,
    options: &ApplicationSourceHelm,
    ctx: &RenderContext,
) -> Result<Vec<Value>, RenderError> {
    let mut value_files = Vec::new();
    for f in options.value_files.iter().flatten() {
        match inside(root, app_dir, f)? {
            Some(p) => value_files.push(p),
            None if options.ignore_missing_value_files == Some(true) => {}
            None => {
                return Err(tool_error(
                    "helm template",
                    format!("open {f}: no such file or directory"),
                ));
            }
        }
    }
    let mut file_parameters = Vec::new();
    for p in options.file_parameters.iter().flatten() {
        let (Some(name), Some(path)) = (p.name.as_deref(), p.path.as_deref()) else {
            continue;
        };
        match inside(root, app_dir, path)? {
            Some(real) => file_parameters.push((name.to_string(), real)),
            None => {
                return Err(tool_error(
                    "helm template",
                    format!("open {path}: no such file or directory"),
                ));
            }
        }
    }
    let scratch = tempfile::tempdir().map_err(|e| io(Path::new("tmp"), &e))?;
    let inline = inline_values(options)?;
    let inline_path = match inline {
        Some(text) => {
            let p = scratch.path().join("values.yaml");
            std::fs::write(&p, text).map_err(|e| io(&p, &e))?;
            Some(p)
        }
        None => None,
    };
    let args = helm_args(
        options,
        ctx,
        &value_files,
        inline_path.as_deref(),
        &file_parameters,
    );
    let out = run(tools, "helm template", &tools.helm, &args, app_dir).await?;
    parse_output("helm template", &out)
}

/// `valuesObject` (which wins) or `values`, as one values document.
fn inline_values(options: &ApplicationSourceHelm) -> Result<Option<String>, RenderError> {
    if let Some(obj) = options.values_object.as_ref().filter(|v| !v.is_null()) {
        return serde_json::to_string(obj)
            .map(Some)
            .map_err(|e| tool_error("helm template", e.to_string()));
    }
    Ok(options.values.clone().filter(|v| !v.trim().is_empty()))
}

/// Rendered sources by (repository, commit, path, options), at most `bound` of them.
pub struct RenderCache {
    bound: usize,
    entries: Mutex<(u64, Entries)>,
}

/// Renders by key, each with the clock tick of its last use.
type Entries = HashMap<String, (u64, Rendered)>;

impl RenderCache {
    /// An empty cache holding up to `bound` renders.
    pub fn new(bound: usize) -> Self {
        RenderCache {
            bound: bound.max(1),
            entries: Mutex::new((0, HashMap::new())),
        }
    }

    /// The key of a render.
    pub fn key(repo: &str, sha: &str, source: &ApplicationSource, ctx: &RenderContext) -> String {
        let options = serde_json::to_vec(&(source, ctx)).unwrap_or_default();
        let digest: String = Sha256::digest(&options)
            .iter()
            .take(16)
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{repo}@{sha}#{digest}")
    }

    /// A cached render (marked as recently used).
    pub fn get(&self, key: &str) -> Option<Rendered> {
        let mut guard = self.entries.lock().ok()?;
        let (clock, entries) = &mut *guard;
        *clock += 1;
        let entry = entries.get_mut(key)?;
        entry.0 = *clock;
        Some(entry.1.clone())
    }

    /// Stores a render, evicting the least recently used one beyond the bound.
    pub fn insert(&self, key: String, rendered: Rendered) {
        let Ok(mut guard) = self.entries.lock() else {
            return;
        };
        let (clock, entries) = &mut *guard;
        *clock += 1;
        entries.insert(key, (*clock, rendered));
        while entries.len() > self.bound {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            entries.remove(&oldest);
        }
    }

    /// Forgets every render (a hard refresh).
    pub fn invalidate_all(&self) {
        if let Ok(mut guard) = self.entries.lock() {
            guard.1.clear();
        }
    }

    /// How many renders are cached.
    pub fn len(&self) -> usize {
        self.entries.lock().map(|g| g.1.len()).unwrap_or(0)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
