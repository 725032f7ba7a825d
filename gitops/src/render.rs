//! Rendering an Application source into Kubernetes objects, as Argo CD's repo server does it
//! (`AC:reposerver/repository/repository.go`: `GetAppSourceType`, `GenerateManifests`, `newEnv`).
//!
//! - The tool is the one the source names with a `directory`, `kustomize` or `helm` block, empty or not (two
//!   blocks are an error, as upstream's `ExplicitType` makes them; a `plugin` block is refused, as Sluice runs
//!   no config management plugins). Otherwise it is detected from the files at the top of the app directory
//!   as upstream's `discovery.AppType` does: a name ending in `Chart.yaml` means Helm, `kustomization.yaml`,
//!   `kustomization.yml` or `Kustomization` means Kustomize, and of several such names the last in byte
//!   order wins (a directory holding both `Chart.yaml` and `kustomization.yaml` is Kustomize). Anything else
//!   is a plain directory, rendered by [`crate::directory`]. A Helm repository source (`chart`) is refused:
//!   only charts inside a Git repository are rendered.
//! - Paths stay in the repository. The app path is checked as [`crate::directory`] checks it, a checkout
//!   holding an out-of-bounds symlink is refused whole, and Helm value files and file parameters are resolved
//!   inside it (see [`crate::helm`]).
//! - Kustomize ([`crate::kustomize`]) and Helm ([`crate::helm`]) are the real binaries, run as child
//!   processes: an empty environment except `PATH`, the proxy and CA variables and the build environment
//!   ([`BuildEnv`]); a private temporary `HOME` with its own XDG and Helm directories; output bounded by
//!   [`MAX_TOOL_OUTPUT_BYTES`]; killed (and reaped) when one runs longer than [`Tools::timeout`]. Error
//!   messages carry the tool's standard error, with the checkout's directory shown as `.`. At most
//!   [`Tools::with_concurrency`] renders run at once.
//! - The checkout is shared by every Application of the repository and is never written: Kustomize
//!   overrides are applied to a private copy.
//! - [`RenderCache`] keeps renders, bounded, by repository, commit, path and a digest of everything else
//!   that shapes them.
//!
//! Known difference: the build environment has no `ARGOCD_APP_REVISION`/`ARGOCD_APP_REVISION_SHORT`
//! (a [`RenderContext`] does not carry the commit), so references to them expand to nothing.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use sluice_crds::application::ApplicationSource;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::Semaphore;

use crate::directory::{self, DirectoryOptions, RenderError};
use crate::{helm, kustomize};

/// How long one kustomize or helm run may take by default (Argo CD's `ARGOCD_EXEC_TIMEOUT` default).
pub const DEFAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(90);
/// How many renders run at once by default.
pub const DEFAULT_CONCURRENT_RENDERS: usize = 4;
/// The most standard output one tool run may produce (64 MiB); a run producing more fails.
pub const MAX_TOOL_OUTPUT_BYTES: usize = 64 * 1024 * 1024;
/// How much of a tool's standard error is kept for its error message.
const MAX_TOOL_STDERR_BYTES: usize = 64 * 1024;
/// The parent's environment variables a tool inherits (besides `PATH`).
const INHERITED_ENV: [&str; 8] = [
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];
/// The `PATH` of a tool when the parent has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The tool that renders a source, with Argo CD's names (`status.sourceType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceType {
    /// Plain YAML/JSON files.
    Directory,
    /// `kustomize build`.
    Kustomize,
    /// `helm template`.
    Helm,
}

impl SourceType {
    /// Argo CD's name of the type (`Directory`, `Kustomize`, `Helm`).
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::Directory => "Directory",
            SourceType::Kustomize => "Kustomize",
            SourceType::Helm => "Helm",
        }
    }
}

impl fmt::Display for SourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The render binaries and the bounds on running them.
#[derive(Clone, Debug)]
pub struct Tools {
    /// The kustomize binary.
    pub kustomize: PathBuf,
    /// The helm binary.
    pub helm: PathBuf,
    /// How long one tool run may take before it is killed.
    pub timeout: Duration,
    permits: Arc<Semaphore>,
}

impl Tools {
    /// The binaries, with [`DEFAULT_TOOL_TIMEOUT`] per run and [`DEFAULT_CONCURRENT_RENDERS`] renders at once.
    pub fn new(kustomize: PathBuf, helm: PathBuf) -> Self {
        Tools {
            kustomize,
            helm,
            timeout: DEFAULT_TOOL_TIMEOUT,
            permits: Arc::new(Semaphore::new(DEFAULT_CONCURRENT_RENDERS)),
        }
    }

    /// The same tools with at most `renders` renders at once (at least one).
    pub fn with_concurrency(mut self, renders: usize) -> Self {
        self.permits = Arc::new(Semaphore::new(renders.max(1)));
        self
    }

    /// The same tools with `timeout` per run.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// What a render needs to know about the Application besides its source.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RenderContext {
    /// The Application's name (Helm's default release name, `ARGOCD_APP_NAME`).
    pub app_name: String,
    /// The destination namespace (Helm's default `--namespace`, `ARGOCD_APP_NAMESPACE`).
    pub namespace: String,
    /// The destination cluster's Kubernetes version, for Helm's `--kube-version`.
    pub kube_version: Option<String>,
    /// The destination cluster's API versions, for Helm's `--api-versions`.
    pub api_versions: Vec<String>,
}

/// A rendered source.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    /// The tool used.
    pub source_type: SourceType,
    /// The objects, in the tool's order, Lists expanded.
    pub objects: Vec<Value>,
    /// Secrets with readable data in the app's files (named by file, never by value).
    pub plain_secrets: Vec<crate::secrets::PlainSecret>,
}

/// The tool of `source` at `app_dir`: the one its tool block names, else detected from the directory's files
/// (see the module documentation).
pub fn detect(app_dir: &Path, source: &ApplicationSource) -> Result<SourceType, RenderError> {
    if let Some(explicit) = explicit_type(source)? {
        return Ok(explicit);
    }
    let entries = fs::read_dir(app_dir).map_err(|e| io_error(app_dir, &e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(app_dir, &e))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if !is_dir {
            names.push(entry.file_name());
        }
    }
    Ok(detect_from_names(names))
}

/// The tool named by the source's tool block, if it has one; two blocks, or a plugin, are refused.
fn explicit_type(source: &ApplicationSource) -> Result<Option<SourceType>, RenderError> {
    let blocks = [
        (source.kustomize.is_some(), "Kustomize"),
        (source.helm.is_some(), "Helm"),
        (source.directory.is_some(), "Directory"),
        (source.plugin.is_some(), "Plugin"),
    ];
    let named: Vec<&str> = blocks.iter().filter(|(set, _)| *set).map(|(_, n)| *n).collect();
    match named.as_slice() {
        [] => Ok(None),
        ["Kustomize"] => Ok(Some(SourceType::Kustomize)),
        ["Helm"] => Ok(Some(SourceType::Helm)),
        ["Directory"] => Ok(Some(SourceType::Directory)),
        ["Plugin"] => Err(invalid(
            "config management plugins (spec.source.plugin) are not supported by Sluice",
        )),
        _ => Err(invalid(format!(
            "multiple application sources defined: {}",
            named.join(",")
        ))),
    }
}

/// Upstream's discovery over the names of the non-directory entries of the app directory.
fn detect_from_names(mut names: Vec<OsString>) -> SourceType {
    names.sort();
    let mut detected = SourceType::Directory;
    for name in &names {
        let name = name.to_string_lossy();
        if name.ends_with("Chart.yaml") {
            detected = SourceType::Helm;
        }
        if kustomize::KUSTOMIZATION_NAMES.contains(&name.as_ref()) {
            detected = SourceType::Kustomize;
        }
    }
    detected
}

/// Renders `source` from the checkout at `repo_root` (read, never written). See the module documentation.
pub async fn render(
    tools: &Tools,
    repo_root: &Path,
    source: &ApplicationSource,
    ctx: &RenderContext,
) -> Result<Rendered, RenderError> {
    let _permit = tools
        .permits
        .acquire()
        .await
        .map_err(|e| invalid(format!("the renderer is shut down: {e}")))?;
    let (located, source_type) = {
        let (root, source) = (repo_root.to_path_buf(), source.clone());
        blocking(move || prepare(&root, &source)).await?
    };
    let plain_secrets = {
        let (root, dir) = (located.root.clone(), located.app_dir.clone());
        blocking(move || Ok(crate::secrets::scan(&root, &dir))).await?
    };
    let env = BuildEnv::new(source, ctx);
    let objects = match source_type {
        SourceType::Directory => {
            let options = directory_options(source);
            let (root, app_path) = (repo_root.to_path_buf(), source.path.clone().unwrap_or_default());
            blocking(move || directory::render(&root, &app_path, &options)).await?
        }
        SourceType::Kustomize => kustomize::build(tools, &located, source.kustomize.as_ref(), &env).await?,
        SourceType::Helm => helm::template(tools, &located, source.helm.as_ref(), ctx, &env).await?,
    };
    Ok(Rendered {
        source_type,
        objects,
        plain_secrets,
    })
}

/// Where a source's files are, checked to be inside the repository.
#[derive(Clone, Debug)]
pub(crate) struct Located {
    /// The repository root, canonical.
    pub(crate) root: PathBuf,
    /// The real app directory, inside `root`.
    pub(crate) app_dir: PathBuf,
}

impl Located {
    /// The app directory relative to the root (empty for the root itself).
    pub(crate) fn app_rel(&self) -> &Path {
        self.app_dir.strip_prefix(&self.root).unwrap_or(Path::new(""))
    }
}

/// Locates the app directory and detects the tool; a tool-rendered source also has its checkout checked
/// for out-of-bounds symlinks (a plain directory's render checks it itself).
fn prepare(repo_root: &Path, source: &ApplicationSource) -> Result<(Located, SourceType), RenderError> {
    if source.chart.as_deref().is_some_and(|c| !c.is_empty()) {
        return Err(invalid(
            "Helm repository sources (spec.source.chart) are not supported: point spec.source.path at a chart in Git",
        ));
    }
    let app_path = source.path.as_deref().unwrap_or_default();
    let app_rel = directory::clean_app_path(app_path)?;
    let root = fs::canonicalize(repo_root).map_err(|e| io_error(repo_root, &e))?;
    let app_dir = match directory::resolve_app_dir(&root, &app_rel, app_path)? {
        Some(real) => real,
        None => fs::canonicalize(root.join(&app_rel)).map_err(|e| io_error(Path::new(app_path), &e))?,
    };
    let source_type = detect(&app_dir, source)?;
    if source_type != SourceType::Directory {
        directory::check_out_of_bounds_symlinks(&root)?;
    }
    Ok((Located { root, app_dir }, source_type))
}

/// The `spec.source.directory` options the plain-directory renderer takes.
fn directory_options(source: &ApplicationSource) -> DirectoryOptions {
    let directory = source.directory.as_ref();
    let glob = |g: Option<&String>| g.filter(|g| !g.is_empty()).cloned();
    DirectoryOptions {
        recurse: directory.and_then(|d| d.recurse).unwrap_or(false),
        include: glob(directory.and_then(|d| d.include.as_ref())),
        exclude: glob(directory.and_then(|d| d.exclude.as_ref())),
    }
}

/// Runs blocking file-system work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, RenderError> + Send + 'static,
) -> Result<T, RenderError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| RenderError::Io {
            path: ".".to_owned(),
            message: format!("the render task failed: {e}"),
        })?
}

/// A relative `path` joined to `base` (a directory inside `root`), `.` and `..` resolved lexically as Go's
/// `filepath.Join` does; `None` when it is absolute or climbs above `root`.
pub(crate) fn join_inside(root: &Path, base: &Path, path: &str) -> Option<PathBuf> {
    let mut parts: Vec<OsString> = base
        .strip_prefix(root)
        .ok()?
        .components()
        .map(|c| c.as_os_str().to_owned())
        .collect();
    for component in Path::new(path).components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Normal(part) => parts.push(part.to_owned()),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(root.join(parts.iter().collect::<PathBuf>()))
}

pub(crate) fn invalid(message: impl Into<String>) -> RenderError {
    RenderError::InvalidSource {
        message: message.into(),
    }
}

pub(crate) fn tool_error(tool: &str, message: impl Into<String>) -> RenderError {
    RenderError::Tool {
        tool: tool.to_owned(),
        message: message.into(),
    }
}

pub(crate) fn io_error(path: &Path, error: &std::io::Error) -> RenderError {
    RenderError::Io {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Build environment

/// The build environment of a render, as upstream's `newEnv`: `ARGOCD_APP_NAME`, `ARGOCD_APP_NAMESPACE`,
/// `ARGOCD_APP_SOURCE_REPO_URL`, `ARGOCD_APP_SOURCE_PATH`, `ARGOCD_APP_SOURCE_TARGET_REVISION`. The tools
/// inherit it, and Kustomize images and labels, Helm parameters and value file paths expand references to
/// it ([`BuildEnv::subst`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildEnv {
    vars: Vec<(String, String)>,
}

impl BuildEnv {
    /// The build environment of `source` rendered for `ctx`.
    pub fn new(source: &ApplicationSource, ctx: &RenderContext) -> Self {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let vars = [
            ("ARGOCD_APP_NAME", ctx.app_name.clone()),
            ("ARGOCD_APP_NAMESPACE", ctx.namespace.clone()),
            ("ARGOCD_APP_SOURCE_REPO_URL", source.repo_url.clone()),
            ("ARGOCD_APP_SOURCE_PATH", text(&source.path)),
            ("ARGOCD_APP_SOURCE_TARGET_REVISION", text(&source.target_revision)),
        ];
        BuildEnv {
            vars: vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    /// The variables, as (name, value).
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }

    /// `text` with `$NAME` and `${NAME}` replaced as Go's `os.Expand` does with upstream's `Envsubst`
    /// mapping: unknown names become empty, `$$` is `$`, a `$` not followed by a name stays, a malformed
    /// `${` or `${}` is dropped.
    pub fn subst(&self, text: &str) -> String {
        let value = |name: &str| -> String {
            if name == "$" {
                return "$".to_owned();
            }
            self.vars
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let bytes = text.as_bytes();
        let mut out = String::with_capacity(text.len());
        let (mut literal_start, mut j) = (0, 0);
        while j < bytes.len() {
            if bytes[j] == b'$' && j + 1 < bytes.len() {
                out.push_str(&text[literal_start..j]);
                let (name, width) = shell_name(&text[j + 1..]);
                if !name.is_empty() {
                    out.push_str(&value(name));
                } else if width == 0 {
                    out.push('$');
                }
                j += width;
                literal_start = j + 1;
            }
            j += 1;
        }
        out.push_str(text.get(literal_start..).unwrap_or_default());
        out
    }
}

/// The variable name at the start of `s` (just after a `$`) and how many bytes it spans, as Go's
/// `getShellName`: an empty name with a width is malformed syntax to drop.
fn shell_name(s: &str) -> (&str, usize) {
    let bytes = s.as_bytes();
    let special = |c: u8| b"*#$@!?-0123456789".contains(&c);
    if bytes.first() == Some(&b'{') {
        if bytes.len() > 2 && special(bytes[1]) && bytes[2] == b'}' {
            return (&s[1..2], 3);
        }
        return match bytes.iter().skip(1).position(|&c| c == b'}') {
            Some(0) => ("", 2),
            Some(end) => (&s[1..=end], end + 2),
            None => ("", 1),
        };
    }
    if bytes.first().is_some_and(|&c| special(c)) {
        return (&s[..1], 1);
    }
    let len = bytes
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    (&s[..len], len)
}

// ---------------------------------------------------------------------------------------------------------
// Child processes

/// One run of kustomize or helm.
pub(crate) struct ToolRun<'a> {
    /// The command as error messages name it (`kustomize build`, `helm template`).
    pub(crate) tool: &'static str,
    /// The binary.
    pub(crate) program: &'a Path,
    /// Its arguments.
    pub(crate) args: Vec<String>,
    /// Its working directory.
    pub(crate) dir: &'a Path,
    /// The build environment it inherits.
    pub(crate) env: &'a BuildEnv,
    /// Directories shown in its error messages as the given text instead.
    pub(crate) redact: Vec<(PathBuf, &'static str)>,
}

/// Runs a tool with a private `HOME` and the `timeout` (killed and reaped when it runs out); its standard
/// output on success, its standard error in the error otherwise.
pub(crate) async fn run_tool(run: ToolRun<'_>, timeout: Duration) -> Result<Vec<u8>, RenderError> {
    let home = tempfile::Builder::new()
        .prefix("sluice-tool-home-")
        .tempdir()
        .map_err(|e| io_error(Path::new("$TMPDIR"), &e))?;
    let mut command = Command::new(run.program);
    command
        .args(&run.args)
        .current_dir(run.dir)
        .env_clear()
        .envs(tool_env(home.path(), run.env))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| tool_error(run.tool, format!("cannot run {}: {e}", run.program.display())))?;
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let finished = tokio::time::timeout(timeout, async {
        let (out, err) = tokio::join!(
            read_capped(stdout, MAX_TOOL_OUTPUT_BYTES),
            read_capped(stderr, MAX_TOOL_STDERR_BYTES)
        );
        (out, err, child.wait().await)
    })
    .await;
    let Ok(((stdout, stdout_overflow), (stderr, _), status)) = finished else {
        // `kill` also waits for the child, so no zombie is left.
        let _ = child.kill().await;
        return Err(RenderError::Timeout {
            tool: run.tool.to_owned(),
            after: timeout,
        });
    };
    let status = status.map_err(|e| tool_error(run.tool, e.to_string()))?;
    if !status.success() {
        let message = redact(String::from_utf8_lossy(&stderr).trim(), &run.redact);
        let message = if message.is_empty() {
            format!("{status} with no error output")
        } else {
            message
        };
        return Err(tool_error(run.tool, message));
    }
    if stdout_overflow {
        return Err(tool_error(
            run.tool,
            format!("its output exceeds {MAX_TOOL_OUTPUT_BYTES} bytes"),
        ));
    }
    Ok(stdout)
}

/// The whole environment of a tool run whose private home is `home`.
fn tool_env(home: &Path, env: &BuildEnv) -> Vec<(OsString, OsString)> {
    let mut vars: Vec<(OsString, OsString)> = Vec::new();
    let path = std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into());
    vars.push(("PATH".into(), path));
    for name in INHERITED_ENV {
        if let Some(value) = std::env::var_os(name) {
            vars.push((name.into(), value));
        }
    }
    let dirs = [
        ("HOME", ""),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_CACHE_HOME", "cache"),
        ("XDG_DATA_HOME", "data"),
        ("HELM_CONFIG_HOME", "helm/config"),
        ("HELM_CACHE_HOME", "helm/cache"),
        ("HELM_DATA_HOME", "helm/data"),
    ];
    for (name, sub) in dirs {
        vars.push((name.into(), home.join(sub).into_os_string()));
    }
    vars.push(("GIT_TERMINAL_PROMPT".into(), "0".into()));
    vars.push(("GIT_CONFIG_NOSYSTEM".into(), "1".into()));
    for (name, value) in env.vars() {
        vars.push((name.into(), value.into()));
    }
    vars
}

/// Reads a child's stream to its end, keeping at most `cap` bytes; whether more came.
async fn read_capped<R: AsyncRead + Unpin>(stream: Option<R>, cap: usize) -> (Vec<u8>, bool) {
    let (mut kept, mut overflow) = (Vec::new(), false);
    let Some(mut stream) = stream else {
        return (kept, overflow);
    };
    let mut buffer = vec![0; 64 * 1024];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                overflow |= n > room;
                kept.extend_from_slice(&buffer[..n.min(room)]);
            }
        }
    }
    (kept, overflow)
}

/// `text` with each directory of `pairs` replaced by its stand-in.
fn redact(text: &str, pairs: &[(PathBuf, &'static str)]) -> String {
    let mut text = text.to_owned();
    for (dir, stand_in) in pairs {
        if let Some(dir) = dir.to_str().filter(|d| d.len() > 1) {
            text = text.replace(dir, stand_in);
        }
    }
    text
}

/// The objects of a tool's output, Lists expanded.
pub(crate) fn parse_output(tool: &str, output: &[u8]) -> Result<Vec<Value>, RenderError> {
    let decoded = directory::decode_manifest_stream(output)
        .map_err(|m| tool_error(tool, format!("its output does not parse: {m}")))?;
    let mut objects = Vec::with_capacity(decoded.len());
    for object in decoded {
        directory::push_expanded(tool, object, &mut objects)?;
    }
    Ok(objects)
}

// ---------------------------------------------------------------------------------------------------------
// Cache

/// The key of a render: repository, commit, app path and a digest of the rest of the source and of the
/// [`RenderContext`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RenderKey {
    repo_url: String,
    revision: String,
    path: String,
    digest: [u8; 32],
}

/// Rendered sources by [`RenderKey`], at most a fixed number of them, the least recently used evicted first.
pub struct RenderCache {
    bound: usize,
    state: Mutex<CacheState>,
}

/// The entries with the tick of their last use, and the keys by tick.
#[derive(Default)]
struct CacheState {
    tick: u64,
    entries: HashMap<RenderKey, (u64, Rendered)>,
    by_use: BTreeMap<u64, RenderKey>,
}

impl CacheState {
    /// Marks the entry of `key`, if any, as just used.
    fn touch(&mut self, key: &RenderKey) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(entry) = self.entries.get_mut(key) {
            self.by_use.remove(&entry.0);
            entry.0 = tick;
            self.by_use.insert(tick, key.clone());
        }
    }
}

impl RenderCache {
    /// An empty cache holding up to `bound` renders (at least one).
    pub fn new(bound: usize) -> Self {
        RenderCache {
            bound: bound.max(1),
            state: Mutex::new(CacheState::default()),
        }
    }

    /// The key of rendering `source` at commit `revision` of `repo_url` for `ctx`.
    pub fn key(repo_url: &str, revision: &str, source: &ApplicationSource, ctx: &RenderContext) -> RenderKey {
        let shaping = serde_json::to_vec(&(source, ctx)).unwrap_or_default();
        RenderKey {
            repo_url: repo_url.to_owned(),
            revision: revision.to_owned(),
            path: source.path.clone().unwrap_or_default(),
            digest: Sha256::digest(&shaping).into(),
        }
    }

    /// The cached render of `key`, now the most recently used.
    pub fn get(&self, key: &RenderKey) -> Option<Rendered> {
        let mut state = self.lock();
        let rendered = state.entries.get(key)?.1.clone();
        state.touch(key);
        Some(rendered)
    }

    /// Stores a render as the most recently used, evicting the least recently used beyond the bound.
    pub fn insert(&self, key: RenderKey, rendered: Rendered) {
        let mut state = self.lock();
        if let Some((old_tick, _)) = state.entries.insert(key.clone(), (0, rendered)) {
            state.by_use.remove(&old_tick);
        }
        state.touch(&key);
        while state.entries.len() > self.bound {
            let Some((_, oldest)) = state.by_use.pop_first() else {
                break;
            };
            state.entries.remove(&oldest);
        }
    }

    /// Forgets every render (a hard refresh).
    pub fn invalidate_all(&self) {
        let mut state = self.lock();
        state.entries.clear();
        state.by_use.clear();
    }

    /// How many renders are cached.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state; a panic while it was held left it consistent, so a poisoned lock is taken over.
    fn lock(&self) -> MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests;

// ---------------------------------------------------------------------------------------------------------
// SOPS

/// Whether any rendered object is a SOPS-encrypted document still to be decrypted.
pub fn has_encrypted(objects: &[Value]) -> bool {
    objects.iter().any(|o| o.get(directory::SOPS_SOURCE).is_some())
}

/// The rendered objects with every SOPS-encrypted document decrypted with `keys`, in place and in order.
/// Consecutive documents sharing one `sops` block are one multi-document file (one MAC covers them all)
/// and are decrypted together. Errors name the documents by kind and name, never a value; with `keys`
/// `None`, an encrypted document is an error.
pub fn reveal_sops(objects: Vec<Value>, keys: Option<&crate::sops::AgeKeys>) -> Result<Vec<Value>, String> {
    let mut out = Vec::with_capacity(objects.len());
    let mut run: Vec<Value> = Vec::new();
    for object in objects {
        let continues = run
            .last()
            .is_some_and(|last| last.get("sops") == object.get("sops"));
        if !run.is_empty() && !continues {
            out.extend(decrypt_run(std::mem::take(&mut run), keys)?);
        }
        if object.get(directory::SOPS_SOURCE).is_some() {
            run.push(object);
        } else {
            out.push(object);
        }
    }
    if !run.is_empty() {
        out.extend(decrypt_run(run, keys)?);
    }
    Ok(out)
}

/// One multi-document SOPS file (or a single document), decrypted and decoded.
fn decrypt_run(run: Vec<Value>, keys: Option<&crate::sops::AgeKeys>) -> Result<Vec<Value>, String> {
    let names: Vec<String> = run.iter().map(object_name).collect();
    let fail = |why: String| format!("decrypting the SOPS document {}: {why}", names.join(", "));
    let keys = keys.ok_or_else(|| {
        fail(format!(
            "it is SOPS-encrypted and the application names no decryption Secret (annotation {DECRYPTION_SECRET_ANNOTATION})"
        ))
    })?;
    let text = run
        .iter()
        .filter_map(|o| o.get(directory::SOPS_SOURCE).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n---\n");
    let (plain, _) = crate::sops::decrypt_stream(&text, Some(keys)).map_err(|e| fail(e.to_string()))?;
    directory::decode_manifest_stream(plain.as_bytes())
        .map_err(|_| fail("the decrypted document is not a Kubernetes object".into()))
}

/// `Kind/name` of a rendered object, for messages.
fn object_name(object: &Value) -> String {
    format!(
        "{}/{}",
        object["kind"].as_str().unwrap_or(""),
        object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    )
}

/// The Application annotation naming the Secret (in the Application's namespace) whose `*.agekey` entries
/// decrypt its SOPS-encrypted manifests, as Flux's `spec.decryption.secretRef` does for a Kustomization.
pub const DECRYPTION_SECRET_ANNOTATION: &str = "sluice.dev/decryption-secret";

#[cfg(test)]
#[path = "render/sops_tests.rs"]
mod sops_tests;
