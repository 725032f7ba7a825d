//! Rendering of a plain-directory Application source (`spec.source.directory`), as Argo CD's repo server does
//! it (`AC:reposerver/repository/repository.go`: `findManifests`, `getPotentiallyValidManifests`,
//! `getPotentiallyValidManifestFile`, `getObjsFromYAMLOrJSON`, then the List expansion of `GenerateManifests`).
//!
//! - Before anything is read, the whole repository is checked for out-of-bounds symlinks as upstream's
//!   `CheckOutOfBoundsSymlinks` does: a symlink whose target is absolute, or whose target climbs above the
//!   repository root at any step, refuses the render ([`RenderError::OutsideRepository`] naming the symlink).
//! - The app path (`spec.source.path`) is relative to the repository; absolute, climbing out with `..`, or
//!   resolving outside through a symlink is refused. A missing app path, or one that is not a directory, is an
//!   error naming it. An app path that is itself a symlink renders nothing: upstream walks it with Go's
//!   `filepath.Walk`, which does not follow a symlinked root (argoproj/argo-cd#17810).
//! - The walk is `filepath.Walk`'s: depth first, each directory's entries in byte order of their names (files
//!   and directories interleaved), hidden files and directories included, subdirectories only with `recurse`,
//!   symlinked directories never entered.
//! - A file is a candidate when its name ends in `.yaml`, `.yml`, `.json` or `.jsonnet` (case-sensitive). A
//!   symlinked file is read through its target, which must be a regular file inside the repository (a dangling
//!   symlink is skipped); FIFOs, sockets and devices are skipped. Then `exclude`, then `include`, are matched
//!   against the path relative to the app path (see [`DirectoryOptions`]), and a file containing the marker
//!   `+argocd:skip-file-rendering` is skipped.
//! - Bounds: a file above [`MAX_MANIFEST_FILE_BYTES`] is refused before it is read, and the candidates together
//!   may not exceed [`MAX_COMBINED_MANIFEST_BYTES`] (upstream's `--max-combined-directory-manifests-size`
//!   default).
//! - Jsonnet is out of scope. Jsonnet options (`extVars`, `tlas`, `libs`) only act on `.jsonnet` files, so
//!   they are ignored (they are not part of [`DirectoryOptions`]); a `.jsonnet` file that survives the filters,
//!   which Argo CD would evaluate, is refused with [`RenderError::JsonnetUnsupported`] rather than silently
//!   dropped. Exclude it to render the rest.
//!
//! Parsing follows `getObjsFromYAMLOrJSON`:
//! - A `.json` file holds exactly one JSON object (not an array, not `null`, not empty); trailing content is
//!   refused as "multiple objects".
//! - A `.yaml`/`.yml` file whose first non-blank character (within its first 4096 bytes) is `{` is a stream
//!   of JSON values; otherwise it is split into documents at lines starting with `---` (followed only by blanks
//!   or a `#` comment; anything else is an invalid separator), as apimachinery's `YAMLReader` does. Empty and
//!   comment-only documents (and `null` values) are skipped.
//! - Every document must be a Kubernetes object: a mapping with a non-empty string `kind` (apiVersion is not
//!   required, as in `unstructured`). When a document fails, the whole file is an error if an earlier document
//!   of it was an object or if the file contains all of `apiVersion:`, `kind:` and `metadata:`; otherwise the
//!   file is taken for an unrelated YAML file (a Helm `values.yaml`, a config) and skipped whole.
//! - YAML scalars resolve as Go's YAML 1.1 parser does (`sigs.k8s.io/yaml` over `yaml.v2`): unquoted `yes`,
//!   `no`, `on`, `off`, `y`, `n` are booleans, `0644` is octal (420), `1_000` is 1000, and non-string keys become
//!   strings (`1: a` gives `"1"`). Duplicate keys keep the last value; `<<` merge keys apply at their position.
//!   Numbers with no fractional part become integers, as they do after Argo CD's JSON round trip; `.inf` and
//!   `.nan` are refused as JSON cannot hold them. Known differences: a custom tag (`!foo 12`) is ignored
//!   rather than forcing a string, and a plain scalar spelled `<<` is always a merge key.
//! - UTF-8 and UTF-16 byte order marks are honoured, as upstream's `utfutil` does.
//! - Finally every object whose `items` is an array is expanded into its items (`kind: List`, `ConfigMapList`,
//!   any kind: upstream tests `IsList`, i.e. the `items` field); an item that is not an object is an error, and
//!   a list with `items: null` (and no `spec`/`status`) yields nothing.

use std::borrow::Cow;
use std::fmt;
use std::fs::{self, File, FileType, Metadata};
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde_json::{Map, Number, Value};

use crate::glob::Glob;
use crate::json_type;

/// The largest single manifest file [`render`] reads, in bytes (10 MiB); a larger one is refused unread.
pub const MAX_MANIFEST_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// The largest combined size of the manifest files of one render, in bytes: Argo CD's default for
/// `--max-combined-directory-manifests-size` (`10M`). Skipped files (filtered out, or carrying the
/// skip-rendering marker) do not count.
pub const MAX_COMBINED_MANIFEST_BYTES: u64 = 10_000_000;

/// A file containing this text is not rendered (`skipFileRenderingMarker`).
const SKIP_FILE_RENDERING_MARKER: &[u8] = b"+argocd:skip-file-rendering";
/// How far apimachinery's `YAMLOrJSONDecoder` looks for a leading `{` (Argo CD passes 4096).
const JSON_SNIFF_BYTES: usize = 4096;

/// The `spec.source.directory` options that shape a plain-directory render.
///
/// `include` and `exclude` are Argo CD glob strings (`gobwas/glob` compiled without separators, as
/// `AC:util/glob` does): `*` and `**` match any run of characters *including* `/`, `?` any one character,
/// `[abc]`, `[a-z]` and `[!…]` one character, `{a,b}` any of the alternatives (nested alternatives allowed),
/// `\` escapes the next character. A pattern must match the whole path of the file relative to the app path,
/// with `/` separators (`deploy.yaml`, `env-usw2/configmap.yaml`): `*.yaml` therefore also matches
/// `sub/x.yaml`, while `**/*.yaml` does not match a top-level `x.yaml`. Exclude wins over include. An empty
/// string is no filter. A pattern that does not compile matches nothing (upstream logs a warning and
/// `glob.Match` answers false): an invalid `include` renders nothing, an invalid `exclude` excludes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryOptions {
    /// `recurse`: walk the subdirectories of the app path too (off: only its top-level files).
    pub recurse: bool,
    /// `include`: only files whose app-relative path matches this glob are rendered.
    pub include: Option<String>,
    /// `exclude`: files whose app-relative path matches this glob are not rendered.
    pub exclude: Option<String>,
}

/// Why a directory could not be rendered. Paths are relative to the repository root, with `/` separators.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The app path is absolute, climbs out of the repository with `..`, or resolves outside it through a
    /// symlink; or the repository holds a symlink that is absolute or points outside it (upstream: "repository
    /// contains out-of-bounds symlinks. file: …").
    #[error(
        "{path:?} is outside the repository (an absolute path, `..` leaving the root, or an out-of-bounds symlink)"
    )]
    OutsideRepository {
        /// The app path as given, or the offending symlink.
        path: String,
    },
    /// The app path does not exist.
    #[error("{path}: app path does not exist")]
    AppPathNotFound {
        /// The app path as given.
        path: String,
    },
    /// The app path exists but is not a directory.
    #[error("{path}: app path is not a directory")]
    NotADirectory {
        /// The app path as given.
        path: String,
    },
    /// A manifest file is larger than [`MAX_MANIFEST_FILE_BYTES`].
    #[error("manifest file {path:?} is {size} bytes, more than the {limit} bytes allowed")]
    FileTooLarge {
        /// The file.
        path: String,
        /// Its size (or as much of it as was read), in bytes.
        size: u64,
        /// The bound, in bytes.
        limit: u64,
    },
    /// The manifest files together exceed [`MAX_COMBINED_MANIFEST_BYTES`].
    #[error("exceeded max combined manifest file size of {limit} bytes at {path:?}")]
    CombinedSizeExceeded {
        /// The file that crossed the bound.
        path: String,
        /// The bound, in bytes.
        limit: u64,
    },
    /// A `.jsonnet` file would be rendered; jsonnet is not supported.
    #[error(
        "{path:?} is a jsonnet file, which Sluice does not evaluate: exclude it or commit its rendered YAML"
    )]
    JsonnetUnsupported {
        /// The file.
        path: String,
    },
    /// A manifest file does not parse, or holds something that is not a Kubernetes object.
    #[error("Failed to unmarshal {path:?}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, with the line where it has one.
        message: String,
    },
    /// kustomize or helm failed, or ran out of time.
    #[error("`{tool}` failed: {message}")]
    Tool {
        /// The command (`kustomize build`, `helm template`).
        tool: String,
        /// Its error output, or why it could not run.
        message: String,
    },
    /// kustomize or helm ran longer than allowed and was killed.
    #[error("`{tool}` timed out after {after:?} and was killed")]
    Timeout {
        /// The command (`kustomize build`, `helm template`).
        tool: String,
        /// The time it was given.
        after: std::time::Duration,
    },
    /// The source asks for something that cannot be rendered (two tool blocks, a plugin, a value file URL
    /// with a scheme that is not allowed, a replica count that is not a number, ...).
    #[error("{message}")]
    InvalidSource {
        /// What is wrong, in the words of the field at fault.
        message: String,
    },
    /// Reading the repository failed.
    #[error("{path:?}: {message}")]
    Io {
        /// The file or directory.
        path: String,
        /// The operating system's message.
        message: String,
    },
}

/// Renders the plain-directory source at `app_path` of the repository checked out at `repo_root`: the
/// Kubernetes objects of its manifest files, in upstream's order (walk order, then document order, Lists
/// expanded in place). See the module documentation for every rule.
pub fn render(
    repo_root: &Path,
    app_path: &str,
    options: &DirectoryOptions,
) -> Result<Vec<Value>, RenderError> {
    let app_rel = clean_app_path(app_path)?;
    let root = fs::canonicalize(repo_root).map_err(|e| io_error(&repo_root.display().to_string(), &e))?;
    check_out_of_bounds_symlinks(&root)?;
    let Some(app_dir) = resolve_app_dir(&root, &app_rel, app_path)? else {
        return Ok(Vec::new());
    };
    let filter = PathFilter::new(options);
    let mut walk = ManifestWalk {
        root: &root,
        app_dir: &app_dir,
        app_rel: &app_rel,
        recurse: options.recurse,
        filter: &filter,
        total: 0,
        files: Vec::new(),
    };
    walk.run()?;
    let mut decoded = Vec::new();
    for file in &walk.files {
        for object in decode_file(file)? {
            decoded.push((file.path.as_str(), object));
        }
    }
    let mut objects = Vec::with_capacity(decoded.len());
    for (path, object) in decoded {
        push_expanded(path, object, &mut objects)?;
    }
    Ok(objects)
}

/// Refuses a repository holding a symlink that is absolute or whose target, followed component by component
/// from the symlink's directory, ever climbs above `repo_root` (upstream's `CheckOutOfBoundsSymlinks`, run
/// on every checkout before any rendering). Symlinked directories are not entered; entries vanishing during
/// the walk are ignored. The error names the first such symlink in walk order.
pub fn check_out_of_bounds_symlinks(repo_root: &Path) -> Result<(), RenderError> {
    let mut stack = sorted_children(repo_root, Path::new("")).map_err(|e| io_error(".", &e))?;
    stack.reverse();
    while let Some(item) = stack.pop() {
        let display = slash_path(&item.rel);
        if item.file_type.is_symlink() {
            if symlink_escapes(repo_root, &item.rel).map_err(|e| io_error(&display, &e))? {
                return Err(RenderError::OutsideRepository { path: display });
            }
        } else if item.file_type.is_dir() {
            match sorted_children(&repo_root.join(&item.rel), &item.rel) {
                Ok(children) => stack.extend(children.into_iter().rev()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&display, &e)),
            }
        }
    }
    Ok(())
}

/// Whether the symlink at `rel_link` (relative to `root`) is absolute or leaves `root` at some step.
fn symlink_escapes(root: &Path, rel_link: &Path) -> io::Result<bool> {
    let target = match fs::read_link(root.join(rel_link)) {
        Ok(target) => target,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if target.has_root() {
        return Ok(true);
    }
    let mut depth = rel_link.components().count().saturating_sub(1);
    for component in target.components() {
        match component {
            Component::ParentDir if depth == 0 => return Ok(true),
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Ok(true),
        }
    }
    Ok(false)
}

/// The app path's normal components, `.` and inner `..` resolved lexically (as Go's `filepath.Join` does);
/// absolute paths and `..` leaving the root are refused.
pub(crate) fn clean_app_path(app_path: &str) -> Result<PathBuf, RenderError> {
    let outside = || RenderError::OutsideRepository {
        path: app_path.to_owned(),
    };
    let mut parts = Vec::new();
    for component in Path::new(app_path).components() {
        match component {
            Component::Prefix(_) | Component::RootDir => return Err(outside()),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop().ok_or_else(outside)?;
            }
            Component::Normal(part) => parts.push(part),
        }
    }
    Ok(parts.iter().collect())
}

/// The real app directory, inside `root`; `None` when the app path is itself a symlink (upstream walks
/// nothing then).
pub(crate) fn resolve_app_dir(
    root: &Path,
    app_rel: &Path,
    app_path: &str,
) -> Result<Option<PathBuf>, RenderError> {
    let not_found = || RenderError::AppPathNotFound {
        path: app_path.to_owned(),
    };
    let joined = root.join(app_rel);
    let is_link = match fs::symlink_metadata(&joined) {
        Ok(meta) => meta.file_type().is_symlink(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found()),
        Err(e) => return Err(io_error(app_path, &e)),
    };
    let real = match fs::canonicalize(&joined) {
        Ok(real) => real,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(not_found()),
        Err(e) => return Err(io_error(app_path, &e)),
    };
    if !real.starts_with(root) {
        return Err(RenderError::OutsideRepository {
            path: app_path.to_owned(),
        });
    }
    let meta = fs::metadata(&real).map_err(|e| io_error(app_path, &e))?;
    if !meta.is_dir() {
        return Err(RenderError::NotADirectory {
            path: app_path.to_owned(),
        });
    }
    Ok((!is_link).then_some(real))
}

/// A directory entry met by a walk, relative to the walk's root.
struct DirItem {
    rel: PathBuf,
    file_type: FileType,
}

/// The entries of `dir`, sorted by name bytes as Go's `filepath.Walk` sorts them; `rel_dir` prefixes them.
fn sorted_children(dir: &Path, rel_dir: &Path) -> io::Result<Vec<DirItem>> {
    let mut children = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let file_type = entry.file_type()?;
        children.push(DirItem {
            rel: rel_dir.join(entry.file_name()),
            file_type,
        });
    }
    children.sort_by(|a, b| a.rel.file_name().cmp(&b.rel.file_name()));
    Ok(children)
}

/// A path's normal components joined with `/`.
fn slash_path(path: &Path) -> String {
    let parts: Vec<Cow<'_, str>> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_string_lossy()),
            _ => None,
        })
        .collect();
    parts.join("/")
}

fn io_error(path: &str, error: &io::Error) -> RenderError {
    RenderError::Io {
        path: path.to_owned(),
        message: error.to_string(),
    }
}

fn parse_error(path: &str, message: String) -> RenderError {
    RenderError::Parse {
        path: path.to_owned(),
        message,
    }
}

/// The compiled `include`/`exclude` of a render: `None` is no filter, `Some(None)` a pattern that does not
/// compile (and so matches nothing).
struct PathFilter {
    include: Option<Option<Glob>>,
    exclude: Option<Option<Glob>>,
}

impl PathFilter {
    fn new(options: &DirectoryOptions) -> Self {
        let compile = |pattern: Option<&str>| pattern.filter(|p| !p.is_empty()).map(Glob::compile);
        PathFilter {
            include: compile(options.include.as_deref()),
            exclude: compile(options.exclude.as_deref()),
        }
    }

    /// Whether the file at `rel` (relative to the app path) is rendered: not excluded, and included.
    fn admits(&self, rel: &str) -> bool {
        let matches = |glob: &Option<Glob>| glob.as_ref().is_some_and(|g| g.matches(rel));
        let excluded = self.exclude.as_ref().is_some_and(matches);
        let included = self.include.as_ref().is_none_or(matches);
        !excluded && included
    }
}

/// What a candidate file name says the file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ManifestKind {
    Yaml,
    Json,
    Jsonnet,
}

/// Upstream's `^.*\.(yaml|yml|json|jsonnet)$` on the file name (`.` does not match a newline).
fn manifest_kind(name: &str) -> Option<ManifestKind> {
    if name.contains('\n') {
        None
    } else if name.ends_with(".yaml") || name.ends_with(".yml") {
        Some(ManifestKind::Yaml)
    } else if name.ends_with(".json") {
        Some(ManifestKind::Json)
    } else if name.ends_with(".jsonnet") {
        Some(ManifestKind::Jsonnet)
    } else {
        None
    }
}

/// A manifest file to decode.
struct ManifestFile {
    path: String,
    kind: ManifestKind,
    bytes: Vec<u8>,
}

/// The walk of an app directory, collecting the manifest files to decode.
struct ManifestWalk<'a> {
    root: &'a Path,
    app_dir: &'a Path,
    app_rel: &'a Path,
    recurse: bool,
    filter: &'a PathFilter,
    total: u64,
    files: Vec<ManifestFile>,
}

impl ManifestWalk<'_> {
    fn run(&mut self) -> Result<(), RenderError> {
        let mut stack = Vec::new();
        self.push_children(Path::new(""), &mut stack)?;
        while let Some(item) = stack.pop() {
            if item.file_type.is_dir() {
                if self.recurse {
                    self.push_children(&item.rel, &mut stack)?;
                }
            } else {
                self.visit_file(&item)?;
            }
        }
        Ok(())
    }

    fn push_children(&self, rel_dir: &Path, stack: &mut Vec<DirItem>) -> Result<(), RenderError> {
        let children = sorted_children(&self.app_dir.join(rel_dir), rel_dir)
            .map_err(|e| io_error(&self.repo_path(rel_dir), &e))?;
        stack.extend(children.into_iter().rev());
        Ok(())
    }

    /// The path of `rel` (relative to the app directory) relative to the repository root.
    fn repo_path(&self, rel: &Path) -> String {
        let path = slash_path(&self.app_rel.join(rel));
        if path.is_empty() { ".".to_owned() } else { path }
    }

    fn visit_file(&mut self, item: &DirItem) -> Result<(), RenderError> {
        let name = item
            .rel
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let Some(kind) = manifest_kind(&name) else {
            return Ok(());
        };
        let repo_path = self.repo_path(&item.rel);
        let Some((real, meta)) = self.regular_file(item, &repo_path)? else {
            return Ok(());
        };
        if !self.filter.admits(&slash_path(&item.rel)) {
            return Ok(());
        }
        let bytes = read_manifest(&real, meta.len(), &repo_path)?;
        if contains(&bytes, SKIP_FILE_RENDERING_MARKER) {
            return Ok(());
        }
        if kind == ManifestKind::Jsonnet {
            return Err(RenderError::JsonnetUnsupported { path: repo_path });
        }
        self.total = self.total.saturating_add(bytes.len() as u64);
        if self.total > MAX_COMBINED_MANIFEST_BYTES {
            return Err(RenderError::CombinedSizeExceeded {
                path: repo_path,
                limit: MAX_COMBINED_MANIFEST_BYTES,
            });
        }
        self.files.push(ManifestFile {
            path: repo_path,
            kind,
            bytes,
        });
        Ok(())
    }

    /// The path to read and the metadata of the regular file behind `item` (through a symlink, whose target
    /// must stay inside the repository); `None` for a dangling symlink or anything that is not a regular file.
    fn regular_file(
        &self,
        item: &DirItem,
        repo_path: &str,
    ) -> Result<Option<(PathBuf, Metadata)>, RenderError> {
        let path = self.app_dir.join(&item.rel);
        let path = if item.file_type.is_symlink() {
            let real = match fs::canonicalize(&path) {
                Ok(real) => real,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(io_error(repo_path, &e)),
            };
            if !real.starts_with(self.root) {
                return Err(RenderError::OutsideRepository {
                    path: repo_path.to_owned(),
                });
            }
            real
        } else if item.file_type.is_file() {
            path
        } else {
            return Ok(None);
        };
        match fs::metadata(&path) {
            Ok(meta) => Ok(meta.is_file().then_some((path, meta))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(repo_path, &e)),
        }
    }
}

/// Reads a manifest file, never more than [`MAX_MANIFEST_FILE_BYTES`] (plus one byte to notice growth).
fn read_manifest(path: &Path, size: u64, repo_path: &str) -> Result<Vec<u8>, RenderError> {
    let too_large = |size| RenderError::FileTooLarge {
        path: repo_path.to_owned(),
        size,
        limit: MAX_MANIFEST_FILE_BYTES,
    };
    if size > MAX_MANIFEST_FILE_BYTES {
        return Err(too_large(size));
    }
    let file = File::open(path).map_err(|e| io_error(repo_path, &e))?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or_default());
    file.take(MAX_MANIFEST_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(repo_path, &e))?;
    let read = bytes.len() as u64;
    if read > MAX_MANIFEST_FILE_BYTES {
        return Err(too_large(read));
    }
    Ok(bytes)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|window| window == needle)
}

/// Appends `object`, or the items of a list (any object whose `items` is an array), to `out`.
pub(crate) fn push_expanded(path: &str, mut object: Value, out: &mut Vec<Value>) -> Result<(), RenderError> {
    let (is_list, is_null_list) = match &object {
        Value::Object(map) => (
            matches!(map.get("items"), Some(Value::Array(_))),
            matches!(map.get("items"), Some(Value::Null))
                && !map.contains_key("spec")
                && !map.contains_key("status"),
        ),
        _ => (false, false),
    };
    if is_null_list {
        return Ok(());
    }
    if !is_list {
        out.push(object);
        return Ok(());
    }
    let items = object.get_mut("items").map(Value::take);
    for (index, item) in items
        .into_iter()
        .flat_map(|items| match items {
            Value::Array(items) => items,
            _ => Vec::new(),
        })
        .enumerate()
    {
        if !item.is_object() {
            return Err(parse_error(
                path,
                format!("items member {index} of the list is not an object"),
            ));
        }
        out.push(item);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Decoding

fn decode_file(file: &ManifestFile) -> Result<Vec<Value>, RenderError> {
    match file.kind {
        ManifestKind::Json => decode_json_file(&file.bytes)
            .map(|object| vec![object])
            .map_err(|m| parse_error(&file.path, m)),
        ManifestKind::Yaml | ManifestKind::Jsonnet => decode_yaml_file(&file.path, &file.bytes),
    }
}

/// The text of a file, honouring a UTF-8 or UTF-16 byte order mark (upstream reads through `utfutil`).
fn decode_text(bytes: &[u8]) -> Result<Cow<'_, str>, String> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return std::str::from_utf8(rest)
            .map(Cow::Borrowed)
            .map_err(|e| format!("invalid UTF-8: {e}"));
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return Ok(Cow::Owned(decode_utf16(rest, u16::from_le_bytes)));
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return Ok(Cow::Owned(decode_utf16(rest, u16::from_be_bytes)));
    }
    std::str::from_utf8(bytes)
        .map(Cow::Borrowed)
        .map_err(|e| format!("invalid UTF-8: {e}"))
}

fn decode_utf16(bytes: &[u8], unit: fn([u8; 2]) -> u16) -> String {
    let units = bytes.chunks(2).map(|pair| match pair {
        [a, b] => unit([*a, *b]),
        _ => 0xFFFD,
    });
    char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// A `.json` file: exactly one JSON object that is a Kubernetes object.
fn decode_json_file(bytes: &[u8]) -> Result<Value, String> {
    let text = decode_text(bytes).unwrap_or_else(|_| String::from_utf8_lossy(bytes));
    let mut stream = serde_json::Deserializer::from_str(&text).into_iter::<Value>();
    let value = match stream.next() {
        None => return Err("EOF: the file holds no JSON value".to_owned()),
        Some(Err(e)) => return Err(e.to_string()),
        Some(Ok(value)) => value,
    };
    let object = carry_sops_source(kubernetes_object(normalize_numbers(value))?, &text);
    // Go's `Decoder.More`: another value follows unless the next non-blank byte ends the input, `]` or `}`.
    let rest = text.get(stream.byte_offset()..).unwrap_or_default();
    if rest
        .trim_start_matches([' ', '\t', '\r', '\n'])
        .starts_with(|c| c != ']' && c != '}')
    {
        return Err("found multiple objects; only single objects are allowed in JSON files".to_owned());
    }
    Ok(object)
}

/// A `.yaml`/`.yml` file, with upstream's rule for files that are not manifests at all.
pub(crate) fn decode_yaml_file(path: &str, bytes: &[u8]) -> Result<Vec<Value>, RenderError> {
    let (objects, error, text) = match decode_text(bytes) {
        Ok(text) => {
            let (objects, error) = decode_yaml_stream(&text);
            (objects, error, text)
        }
        Err(message) => (Vec::new(), Some(message), String::from_utf8_lossy(bytes)),
    };
    let Some(message) = error else {
        return Ok(objects);
    };
    let text = text.as_bytes();
    let looks_like_manifest =
        contains(text, b"apiVersion:") && contains(text, b"kind:") && contains(text, b"metadata:");
    if objects.is_empty() && !looks_like_manifest {
        return Ok(Vec::new());
    }
    Err(parse_error(
        path,
        format!("failed to unmarshal manifest: {message}"),
    ))
}

/// The Kubernetes objects of a tool's output (a YAML or JSON stream), Lists not yet expanded; any document
/// that does not decode into a Kubernetes object is an error, as upstream's `kube.SplitYAML` makes it.
pub(crate) fn decode_manifest_stream(bytes: &[u8]) -> Result<Vec<Value>, String> {
    let text = decode_text(bytes)?;
    match decode_yaml_stream(&text) {
        (objects, None) => Ok(objects),
        (_, Some(message)) => Err(message),
    }
}

/// The first document of a YAML text as JSON, with Go's YAML 1.1 scalars (`Null` for an empty document).
pub(crate) fn decode_yaml_value(text: &str) -> Result<Value, String> {
    decode_yaml_document(text, 0)
}

/// The Kubernetes objects of a YAML (or sniffed JSON) stream, up to the first failure and its message.
fn decode_yaml_stream(text: &str) -> (Vec<Value>, Option<String>) {
    if looks_like_json(text) {
        return decode_json_stream(text);
    }
    let (chunks, separator_error) = split_documents(text);
    let mut objects = Vec::new();
    for chunk in chunks {
        let decoded = decode_yaml_document(chunk.text, chunk.first_line).and_then(|value| match value {
            Value::Null => Ok(None),
            value => kubernetes_object(value)
                .map(Some)
                .map_err(|m| format!("document at line {}: {m}", chunk.first_line + 1)),
        });
        match decoded {
            Ok(Some(object)) => objects.push(carry_sops_source(object, chunk.text)),
            Ok(None) => {}
            Err(message) => return (objects, Some(message)),
        }
    }
    (objects, separator_error)
}

/// The key under which a SOPS-encrypted document carries its own text: decryption needs the document's
/// key order (the MAC covers the values in that order), which the decoded JSON object no longer has. No
/// Kubernetes object has a field of this name, so one that is never decrypted cannot be applied.
pub const SOPS_SOURCE: &str = "$sopsSource";

/// `object` with its text attached under [`SOPS_SOURCE`] when it is SOPS-encrypted (a top-level `sops`
/// mapping with a `mac`), unchanged otherwise.
fn carry_sops_source(mut object: Value, text: &str) -> Value {
    let encrypted = object
        .get("sops")
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key("mac"));
    if encrypted && let Value::Object(map) = &mut object {
        map.insert(SOPS_SOURCE.to_owned(), Value::String(text.to_owned()));
    }
    object
}

/// apimachinery's `GuessJSONStream`: the first non-blank character, within the first 4096 bytes, is `{`.
fn looks_like_json(text: &str) -> bool {
    text.char_indices()
        .find(|(_, c)| !c.is_whitespace())
        .is_some_and(|(i, c)| c == '{' && i < JSON_SNIFF_BYTES)
}

fn decode_json_stream(text: &str) -> (Vec<Value>, Option<String>) {
    let mut objects = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut start = 0;
    while let Some(item) = stream.next() {
        let end = stream.byte_offset();
        let own_text = text.get(start..end).unwrap_or_default();
        start = end;
        match item.map_err(|e| e.to_string()).and_then(|v| match v {
            Value::Null => Ok(None),
            v => kubernetes_object(normalize_numbers(v)).map(Some),
        }) {
            Ok(Some(object)) => objects.push(carry_sops_source(object, own_text)),
            Ok(None) => {}
            Err(message) => return (objects, Some(message)),
        }
    }
    (objects, None)
}

/// One YAML document of a file, and the 0-based line of the file it starts at.
struct Chunk<'t> {
    text: &'t str,
    first_line: usize,
}

/// Splits YAML text into documents as apimachinery's `YAMLReader` does: at lines starting with `---` that
/// carry nothing else but blanks or a `#` comment; any other `---` line ends the split with an error.
fn split_documents(text: &str) -> (Vec<Chunk<'_>>, Option<String>) {
    let mut chunks = Vec::new();
    let (mut start, mut start_line, mut offset) = (0, 0, 0);
    for (line_number, line) in text.split_inclusive('\n').enumerate() {
        let line_start = offset;
        offset += line.len();
        let Some(rest) = line.strip_prefix("---") else {
            continue;
        };
        let trimmed = rest.trim();
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            let message = format!(
                "invalid Yaml document separator at line {}: {trimmed}",
                line_number + 1
            );
            return (chunks, Some(message));
        }
        if line_start > start {
            chunks.push(Chunk {
                text: text.get(start..line_start).unwrap_or_default(),
                first_line: start_line,
            });
        }
        start = offset;
        start_line = line_number + 1;
    }
    if offset > start {
        chunks.push(Chunk {
            text: text.get(start..).unwrap_or_default(),
            first_line: start_line,
        });
    }
    (chunks, None)
}

/// The first YAML document of `chunk` as JSON (`Null` for an empty document).
fn decode_yaml_document(chunk: &str, first_line: usize) -> Result<Value, String> {
    let Some(document) = serde_yaml::Deserializer::from_str(chunk).next() else {
        return Ok(Value::Null);
    };
    YamlNode { source: chunk }
        .deserialize(document)
        .map_err(|e| yaml_error_message(&e, first_line))
}

/// serde_yaml's message, its line made relative to the whole file.
fn yaml_error_message(error: &serde_yaml::Error, first_line: usize) -> String {
    let text = error.to_string();
    let Some(location) = error.location() else {
        return text;
    };
    let relative = format!(" at line {} column {}", location.line(), location.column());
    if !text.contains(&relative) {
        return format!("{text} (in the document starting at line {})", first_line + 1);
    }
    let absolute = format!(
        " at line {} column {}",
        location.line() + first_line,
        location.column()
    );
    text.replacen(&relative, &absolute, 1)
}

/// `value` if it is a Kubernetes object as `unstructured` decodes one: a mapping with a non-empty string
/// `kind` (and an `apiVersion`, if a string, that parses as a group/version).
fn kubernetes_object(value: Value) -> Result<Value, String> {
    let Value::Object(map) = &value else {
        return Err(format!(
            "cannot unmarshal {} into a Kubernetes object",
            json_type(&value)
        ));
    };
    let has_kind = matches!(map.get("kind"), Some(Value::String(kind)) if !kind.is_empty());
    let version_parses = match map.get("apiVersion") {
        Some(Value::String(version)) => version.matches('/').count() <= 1,
        _ => true,
    };
    if has_kind && version_parses {
        Ok(value)
    } else {
        Err("Object 'Kind' is missing".to_owned())
    }
}

/// Floats without a fractional part become integers (what Argo CD's JSON round trip makes of them).
fn normalize_numbers(value: Value) -> Value {
    match value {
        Value::Number(number) => match number.as_f64() {
            Some(float) if number.is_f64() => float_value(float).unwrap_or(Value::Number(number)),
            _ => Value::Number(number),
        },
        Value::Array(items) => Value::Array(items.into_iter().map(normalize_numbers).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, normalize_numbers(v))).collect())
        }
        other => other,
    }
}

/// A float as JSON: an integer when integral, refused when not finite (Go's `json: unsupported value`).
fn float_value(float: f64) -> Result<Value, String> {
    if !float.is_finite() {
        let name = if float.is_nan() {
            "NaN"
        } else if float > 0.0 {
            "+Inf"
        } else {
            "-Inf"
        };
        return Err(format!("json: unsupported value: {name}"));
    }
    if float.fract() == 0.0 && float.abs() < 9.0e18 {
        return Ok(Value::from(float as i64));
    }
    Number::from_f64(float)
        .map(Value::Number)
        .ok_or_else(|| format!("json: unsupported value: {float}"))
}

// ---------------------------------------------------------------------------------------------------------
// YAML 1.1 scalars, as `yaml.v2` resolves them under `sigs.k8s.io/yaml`

/// Whether `scalar`, handed out by serde_yaml borrowed from `source`, was written plain: not quoted, and not
/// under an explicit tag such as `!!str`. serde_yaml resolves plain scalars with YAML 1.2 rules and leaves
/// the rest to us; quoted and block scalars (not borrowed, or preceded by their quote) are strings.
fn is_plain_scalar(source: &str, scalar: &str) -> bool {
    let Some(offset) = (scalar.as_ptr() as usize).checked_sub(source.as_ptr() as usize) else {
        return false;
    };
    if offset
        .checked_add(scalar.len())
        .is_none_or(|end| end > source.len())
    {
        return false;
    }
    let before = source.as_bytes().get(..offset).unwrap_or_default();
    !matches!(before.last(), Some(b'\'' | b'"')) && !preceded_by_tag(before)
}

/// Whether the token before a scalar (skipping anchors) is a tag.
fn preceded_by_tag(before: &[u8]) -> bool {
    let mut rest = before;
    loop {
        let end = rest
            .iter()
            .rposition(|b| !b" \t\r\n".contains(b))
            .map_or(0, |i| i + 1);
        rest = rest.get(..end).unwrap_or_default();
        let start = rest
            .iter()
            .rposition(|b| b" \t\r\n[{,".contains(b))
            .map_or(0, |i| i + 1);
        match rest.get(start) {
            Some(b'!') => return true,
            Some(b'&') => rest = rest.get(..start).unwrap_or_default(),
            _ => return false,
        }
    }
}

/// `yaml.v2`'s `resolve` for a plain scalar serde_yaml left as a string.
fn resolve_plain(scalar: &str) -> Result<Value, String> {
    match scalar {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => return Ok(Value::Bool(true)),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => return Ok(Value::Bool(false)),
        _ => {}
    }
    if !scalar.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-') {
        return Ok(Value::String(scalar.to_owned()));
    }
    let plain = scalar.replace('_', "");
    if let Some(number) = go_integer(&plain) {
        return Ok(number);
    }
    if is_yaml_float(&plain)
        && let Ok(float) = plain.parse::<f64>()
        && float.is_finite()
    {
        return float_value(float);
    }
    Ok(Value::String(scalar.to_owned()))
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint`: sign, then `0x`, `0o`, `0b` or a leading `0` (octal).
fn go_integer(text: &str) -> Option<Value> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, text.get(1..)?),
        Some(b'+') => (false, text.get(1..)?),
        _ => (false, text),
    };
    let prefixed = |lower: &str, upper: &str| body.strip_prefix(lower).or_else(|| body.strip_prefix(upper));
    let (radix, digits) = if let Some(rest) = prefixed("0x", "0X") {
        (16, rest)
    } else if let Some(rest) = prefixed("0b", "0B") {
        (2, rest)
    } else if let Some(rest) = prefixed("0o", "0O") {
        (8, rest)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, body.get(1..)?)
    } else {
        (10, body)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(digits, radix).ok()?;
    if negative {
        let value = i64::try_from(magnitude)
            .ok()
            .map(|m| -m)
            .or((magnitude == 1 << 63).then_some(i64::MIN))?;
        Some(Value::from(value))
    } else if let Ok(value) = i64::try_from(magnitude) {
        Some(Value::from(value))
    } else {
        u64::try_from(magnitude).ok().map(Value::from)
    }
}

/// `yaml.v2`'s `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_float(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits_at = |i: usize| {
        bytes
            .get(i..)
            .map_or(0, |rest| rest.iter().take_while(|b| b.is_ascii_digit()).count())
    };
    let mut i = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let whole = digits_at(i);
    i += whole;
    if whole == 0 {
        if bytes.get(i) != Some(&b'.') || digits_at(i + 1) == 0 {
            return false;
        }
        i += 1 + digits_at(i + 1);
    } else if bytes.get(i) == Some(&b'.') {
        i += 1 + digits_at(i + 1);
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        i += usize::from(matches!(bytes.get(i), Some(b'+' | b'-')));
        let exponent = digits_at(i);
        if exponent == 0 {
            return false;
        }
        i += exponent;
    }
    i == bytes.len()
}

/// A float map key as `sigs.k8s.io/yaml` writes it: `strconv.FormatFloat(f, 'g', -1, 32)`.
fn float_key(float: f64) -> String {
    if float.is_nan() {
        return ".nan".to_owned();
    }
    if float.is_infinite() {
        return if float > 0.0 { ".inf" } else { "-.inf" }.to_owned();
    }
    let narrow = float as f32;
    if narrow == 0.0 {
        return if narrow.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    let exponent = narrow.abs().log10().floor();
    if (-4.0..6.0).contains(&exponent) {
        return format!("{narrow}");
    }
    let scientific = format!("{narrow:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let (sign, digits) = exponent.strip_prefix('-').map_or(("+", exponent), |d| ("-", d));
    format!("{mantissa}e{sign}{digits:0>2}")
}

/// A deserialization seed turning a YAML node into JSON with `yaml.v2`'s resolution rules.
struct YamlNode<'s> {
    source: &'s str,
}

impl<'de> DeserializeSeed<'de> for YamlNode<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for YamlNode<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        float_value(v as f64).map_err(E::custom)
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        float_value(v as f64).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        float_value(v).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Value, E> {
        if is_plain_scalar(self.source, v) {
            resolve_plain(v).map_err(E::custom)
        } else {
            self.visit_str(v)
        }
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(YamlNode { source: self.source })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key_seed(YamlKeySeed { source: self.source })? {
            let value = map.next_value_seed(YamlNode { source: self.source })?;
            match key {
                YamlKey::Name(name) => {
                    object.insert(name, value);
                }
                YamlKey::Merge => merge_into(&mut object, value).map_err(de::Error::custom)?,
            }
        }
        Ok(Value::Object(object))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        let (_tag, variant): (de::IgnoredAny, _) = data.variant()?;
        variant.newtype_variant_seed(self)
    }
}

/// `yaml.v2`'s `<<`: the merged mapping (or each mapping of a sequence, earlier ones winning) is applied at
/// its position, over keys set before it.
fn merge_into(object: &mut Map<String, Value>, merged: Value) -> Result<(), String> {
    const WANT_MAP: &str = "map merge requires map or sequence of maps as the value";
    match merged {
        Value::Object(map) => object.extend(map),
        Value::Array(items) => {
            for item in items.into_iter().rev() {
                let Value::Object(map) = item else {
                    return Err(WANT_MAP.to_owned());
                };
                object.extend(map);
            }
        }
        _ => return Err(WANT_MAP.to_owned()),
    }
    Ok(())
}

/// A mapping key: a JSON object key, or the merge key `<<`.
enum YamlKey {
    Name(String),
    Merge,
}

/// A deserialization seed for mapping keys, stringified as `sigs.k8s.io/yaml` does.
struct YamlKeySeed<'s> {
    source: &'s str,
}

impl<'de> DeserializeSeed<'de> for YamlKeySeed<'_> {
    type Value = YamlKey;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<YamlKey, D::Error> {
        deserializer.deserialize_any(self)
    }
}

fn key_from_value(value: Value) -> Result<YamlKey, String> {
    match value {
        Value::String(name) => Ok(YamlKey::Name(name)),
        Value::Bool(flag) => Ok(YamlKey::Name(flag.to_string())),
        Value::Number(number) => Ok(YamlKey::Name(match number.as_f64() {
            Some(float) if number.is_f64() => float_key(float),
            _ => number.to_string(),
        })),
        other => Err(format!("unsupported map key: {}", json_type(&other))),
    }
}

impl<'de> Visitor<'de> for YamlKeySeed<'_> {
    type Value = YamlKey;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML mapping key")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<YamlKey, E> {
        Ok(YamlKey::Name(v.to_string()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<YamlKey, E> {
        Ok(YamlKey::Name(v.to_string()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<YamlKey, E> {
        Ok(YamlKey::Name(v.to_string()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<YamlKey, E> {
        Ok(YamlKey::Name(float_key(v as f64)))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<YamlKey, E> {
        Ok(YamlKey::Name(float_key(v as f64)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<YamlKey, E> {
        Ok(YamlKey::Name(float_key(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<YamlKey, E> {
        Ok(YamlKey::Name(v.to_owned()))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<YamlKey, E> {
        if !is_plain_scalar(self.source, v) {
            return self.visit_str(v);
        }
        if v == "<<" {
            return Ok(YamlKey::Merge);
        }
        resolve_plain(v).and_then(key_from_value).map_err(E::custom)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<YamlKey, E> {
        Ok(YamlKey::Name(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<YamlKey, E> {
        Err(E::custom("unsupported map key: null"))
    }

    fn visit_none<E: de::Error>(self) -> Result<YamlKey, E> {
        self.visit_unit()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<YamlKey, A::Error> {
        Err(de::Error::custom("unsupported map key: a sequence"))
    }

    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<YamlKey, A::Error> {
        Err(de::Error::custom("unsupported map key: a mapping"))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<YamlKey, A::Error> {
        let (_tag, variant): (de::IgnoredAny, _) = data.variant()?;
        variant.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::{Value, json};

    use super::*;

    fn repo() -> tempfile::TempDir {
        tempfile::tempdir().expect("temp dir")
    }

    fn write(root: &Path, rel: &str, content: &str) {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(path, content).expect("write");
    }

    fn cm(name: &str) -> String {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n")
    }

    fn names(objects: &[Value]) -> Vec<String> {
        objects
            .iter()
            .map(|o| {
                o.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned()
            })
            .collect()
    }

    fn opts(recurse: bool, include: Option<&str>, exclude: Option<&str>) -> DirectoryOptions {
        DirectoryOptions {
            recurse,
            include: include.map(str::to_owned),
            exclude: exclude.map(str::to_owned),
        }
    }

    fn render_names(root: &Path, app: &str, options: &DirectoryOptions) -> Vec<String> {
        names(&render(root, app, options).expect("render"))
    }

    /// A tree for the include/exclude cases (the example of the upstream docs, plus nesting).
    fn filter_tree(root: &Path) {
        write(
            root,
            "app/config.json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"config"}}"#,
        );
        write(root, "app/deployment.yaml", &cm("deployment"));
        write(root, "app/extra.yml", &cm("extra"));
        write(root, "app/env-use2/configmap.yaml", &cm("use2"));
        write(root, "app/env-usw2/configmap.yaml", &cm("usw2"));
        write(root, "app/env-usw2/deep/nested.yaml", &cm("nested"));
    }

    #[test]
    fn plain_files_are_rendered_in_name_order() {
        let dir = repo();
        write(
            dir.path(),
            "app/c.json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#,
        );
        write(dir.path(), "app/b.yml", &cm("b"));
        write(dir.path(), "app/a.yaml", &cm("a"));
        assert_eq!(
            render_names(dir.path(), "app", &DirectoryOptions::default()),
            ["a", "b", "c"]
        );
    }

    #[test]
    fn other_extensions_are_skipped() {
        let dir = repo();
        write(dir.path(), "README.md", &cm("readme"));
        write(dir.path(), "notes.txt", &cm("txt"));
        write(dir.path(), "UPPER.YAML", &cm("upper"));
        write(dir.path(), "secret.yaml.sealed", &cm("sealed"));
        write(dir.path(), "ok.yaml", &cm("ok"));
        assert_eq!(render_names(dir.path(), "", &DirectoryOptions::default()), ["ok"]);
    }

    #[test]
    fn recurse_off_reads_only_top_level_files() {
        let dir = repo();
        write(dir.path(), "app/top.yaml", &cm("top"));
        write(dir.path(), "app/sub/nested.yaml", &cm("nested"));
        assert_eq!(
            render_names(dir.path(), "app", &DirectoryOptions::default()),
            ["top"]
        );
    }

    #[test]
    fn recurse_walks_depth_first_with_files_and_directories_interleaved() {
        let dir = repo();
        write(dir.path(), "c.yaml", &cm("c"));
        write(dir.path(), "b/x.yaml", &cm("b-x"));
        write(dir.path(), "b/sub/y.yaml", &cm("b-sub-y"));
        write(dir.path(), "a.yaml", &cm("a"));
        assert_eq!(
            render_names(dir.path(), ".", &opts(true, None, None)),
            ["a", "b-sub-y", "b-x", "c"]
        );
    }

    #[test]
    fn hidden_files_and_directories_are_read() {
        let dir = repo();
        write(dir.path(), "app/.hidden.yaml", &cm("hidden"));
        write(dir.path(), "app/.dir/inner.yaml", &cm("inner"));
        assert_eq!(
            render_names(dir.path(), "app", &opts(true, None, None)),
            ["inner", "hidden"]
        );
    }

    #[test]
    fn include_star_matches_nested_paths_too() {
        let dir = repo();
        filter_tree(dir.path());
        let got = render_names(dir.path(), "app", &opts(true, Some("*.yaml"), None));
        assert_eq!(got, ["deployment", "use2", "usw2", "nested"]);
    }

    #[test]
    fn include_alternatives() {
        let dir = repo();
        filter_tree(dir.path());
        let got = render_names(dir.path(), "app", &opts(false, Some("{*.yml,config.json}"), None));
        assert_eq!(got, ["config", "extra"]);
    }

    #[test]
    fn exclude_alternatives_with_a_directory_as_in_the_upstream_docs() {
        let dir = repo();
        filter_tree(dir.path());
        let options = opts(true, Some("*.yaml"), Some("{config.json,env-usw2/*}"));
        assert_eq!(render_names(dir.path(), "app", &options), ["deployment", "use2"]);
    }

    #[test]
    fn include_a_directory_and_exclude_wins() {
        let dir = repo();
        filter_tree(dir.path());
        let got = render_names(dir.path(), "app", &opts(true, Some("env-usw2/*"), None));
        assert_eq!(got, ["usw2", "nested"]);
        let got = render_names(
            dir.path(),
            "app",
            &opts(true, Some("env-usw2/*"), Some("env-usw2/deep/*")),
        );
        assert_eq!(got, ["usw2"]);
    }

    #[test]
    fn globs_match_the_path_relative_to_the_app_path() {
        let dir = repo();
        filter_tree(dir.path());
        // The app path is not part of the matched path.
        assert!(render_names(dir.path(), "app", &opts(true, Some("app/*"), None)).is_empty());
        let got = render_names(dir.path(), "app/env-usw2", &opts(true, Some("deep/*.yaml"), None));
        assert_eq!(got, ["nested"]);
    }

    #[test]
    fn invalid_include_renders_nothing_and_invalid_exclude_excludes_nothing() {
        let dir = repo();
        filter_tree(dir.path());
        assert!(render_names(dir.path(), "app", &opts(false, Some("e[[a*"), None)).is_empty());
        let got = render_names(dir.path(), "app", &opts(false, None, Some("[")));
        assert_eq!(got, ["config", "deployment", "extra"]);
    }

    #[test]
    fn empty_filter_strings_are_no_filter() {
        let dir = repo();
        filter_tree(dir.path());
        let got = render_names(dir.path(), "app", &opts(false, Some(""), Some("")));
        assert_eq!(got, ["config", "deployment", "extra"]);
    }

    #[test]
    fn glob_wildcards_cross_slashes_without_separators() {
        let glob = |p: &str| Glob::compile(p).expect("compiles");
        assert!(glob("*.yaml").matches("a/b/c.yaml"));
        assert!(glob("a*b").matches("a/b"));
        assert!(glob("**").matches(""));
        assert!(glob("?at").matches("cat") && !glob("?at").matches("at"));
        assert!(glob("a?b").matches("a/b"));
        assert!(!glob("**/*.yaml").matches("top.yaml"));
        assert!(glob("**/*.yaml").matches("sub/top.yaml"));
        assert!(!glob("hell").matches("hello") && glob("hell*").matches("hello"));
    }

    #[test]
    fn glob_classes_ranges_and_escapes() {
        let glob = |p: &str| Glob::compile(p).expect("compiles");
        assert!(glob("[abc].yaml").matches("b.yaml") && !glob("[abc].yaml").matches("d.yaml"));
        assert!(glob("[!abc].yaml").matches("d.yaml") && !glob("[!abc].yaml").matches("a.yaml"));
        assert!(glob("v[0-9]").matches("v7") && !glob("v[0-9]").matches("vx"));
        assert!(glob("[!0-9]x").matches("ax") && !glob("[!0-9]x").matches("1x"));
        assert!(glob(r"\*.yaml").matches("*.yaml") && !glob(r"\*.yaml").matches("a.yaml"));
        assert!(glob(r"[\]]").matches("]"));
        assert!(
            glob("a,b}").matches("a,b}"),
            "outside braces , and }} are literal"
        );
    }

    #[test]
    fn glob_alternatives_nest_and_may_be_empty_or_unclosed() {
        let glob = |p: &str| Glob::compile(p).expect("compiles");
        let nested = glob("{a,{b,c}d}.yaml");
        assert!(nested.matches("a.yaml") && nested.matches("bd.yaml") && nested.matches("cd.yaml"));
        assert!(!nested.matches("b.yaml"));
        assert!(glob("x{,.bak}").matches("x") && glob("x{,.bak}").matches("x.bak"));
        assert!(
            glob("{a,b").matches("b"),
            "gobwas closes an open brace at the end"
        );
        assert!(glob("{*.yml,*.yaml}").matches("deep/dir/x.yml"));
    }

    #[test]
    fn glob_syntax_errors() {
        for bad in ["e[[a*", "[", "[]", "[!]", "[z-a]", "[a-", "[a-z0-9]", "x\u{FFFD}"] {
            assert_eq!(Glob::compile(bad), None, "{bad:?}");
        }
        let deep = format!("{}a", "{".repeat(crate::glob::MAX_GLOB_NESTING + 1));
        assert_eq!(Glob::compile(&deep), None);
    }

    #[test]
    fn multi_document_yaml_skips_empty_documents_and_accepts_separator_forms() {
        let dir = repo();
        let content = format!(
            "---\n{}---\n---\n# only a comment\n--- # a comment after the separator\n{}---   \r\n{}...\n---\n~\n---\n",
            cm("one"),
            cm("two"),
            cm("three")
        );
        write(dir.path(), "multi.yaml", &content);
        assert_eq!(
            render_names(dir.path(), "", &DirectoryOptions::default()),
            ["one", "two", "three"]
        );
    }

    #[test]
    fn crlf_documents_parse() {
        let dir = repo();
        let content = format!("{}---\r\n{}", cm("one"), cm("two")).replace('\n', "\r\n");
        write(dir.path(), "crlf.yaml", &content);
        assert_eq!(
            render_names(dir.path(), "", &DirectoryOptions::default()),
            ["one", "two"]
        );
    }

    #[test]
    fn invalid_document_separator_is_an_error() {
        let dir = repo();
        write(
            dir.path(),
            "bad.yaml",
            &format!("{}--- foo: bar\n{}", cm("one"), cm("two")),
        );
        let err = render(dir.path(), "", &DirectoryOptions::default()).expect_err("bad separator");
        let RenderError::Parse { path, message } = err else {
            panic!("{err:?}")
        };
        assert_eq!(path, "bad.yaml");
        assert!(
            message.contains("invalid Yaml document separator at line 5: foo: bar"),
            "{message}"
        );
    }

    #[test]
    fn json_object_file() {
        let dir = repo();
        let body = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":2.0}}"#;
        write(dir.path(), "app/web.json", body);
        let got = render(dir.path(), "app", &DirectoryOptions::default()).expect("render");
        assert_eq!(
            got,
            [
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}})
            ]
        );
    }

    #[test]
    fn json_files_hold_exactly_one_object() {
        let cases = [
            (
                "array.json",
                "[{\"kind\":\"ConfigMap\"}]",
                "cannot unmarshal an array",
            ),
            (
                "two.json",
                "{\"kind\":\"A\"}\n{\"kind\":\"B\"}",
                "found multiple objects",
            ),
            ("empty.json", "", "EOF"),
            ("null.json", "null", "cannot unmarshal null"),
            ("kindless.json", "{\"name\":\"pkg\"}", "Object 'Kind' is missing"),
            ("broken.json", "{\"kind\":", "EOF while parsing"),
        ];
        for (name, body, want) in cases {
            let dir = repo();
            write(dir.path(), name, body);
            let err = render(dir.path(), "", &DirectoryOptions::default()).expect_err(name);
            let RenderError::Parse { path, message } = &err else {
                panic!("{err:?}")
            };
            assert_eq!(path, name);
            assert!(message.contains(want), "{name}: {message}");
        }
    }

    #[test]
    fn yaml_file_holding_a_json_stream() {
        let dir = repo();
        write(
            dir.path(),
            "stream.yaml",
            "  {\"kind\":\"A\",\"metadata\":{\"name\":\"a\"}}\n{\"kind\":\"B\",\"metadata\":{\"name\":\"b\"}}",
        );
        assert_eq!(
            render_names(dir.path(), "", &DirectoryOptions::default()),
            ["a", "b"]
        );
    }

    #[test]
    fn lists_are_expanded_in_place() {
        let dir = repo();
        let list = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: l1}}\n- {apiVersion: v1, kind: Secret, metadata: {name: l2}}\n";
        let typed = "apiVersion: v1\nkind: ConfigMapList\nitems:\n- {metadata: {name: t1}}\n";
        let empty = "apiVersion: v1\nkind: List\nitems: []\n";
        let null = "apiVersion: v1\nkind: ConfigMapList\nitems: null\n";
        write(
            dir.path(),
            "a.yaml",
            &format!("{}---\n{list}---\n{}", cm("before"), cm("after")),
        );
        write(dir.path(), "b.yaml", &format!("{typed}---\n{empty}---\n{null}"));
        let got = render(dir.path(), "", &DirectoryOptions::default()).expect("render");
        assert_eq!(names(&got), ["before", "l1", "l2", "after", "t1"]);
        // Items are taken as they are: upstream does not fill in a kind.
        assert_eq!(got[4], json!({"metadata": {"name": "t1"}}));
    }

    #[test]
    fn list_item_that_is_not_an_object_is_an_error() {
        let dir = repo();
        write(
            dir.path(),
            "list.yaml",
            "apiVersion: v1\nkind: List\nitems:\n- just a string\n",
        );
        let err = render(dir.path(), "", &DirectoryOptions::default()).expect_err("bad item");
        assert!(
            matches!(&err, RenderError::Parse { path, message } if path == "list.yaml" && message.contains("not an object")),
            "{err:?}"
        );
    }

    #[test]
    fn yaml_that_is_not_a_manifest_is_skipped() {
        let dir = repo();
        write(
            dir.path(),
            "values.yaml",
            "replicaCount: 2\nimage:\n  repository: nginx\n",
        );
        write(
            dir.path(),
            "Chart.yaml",
            "apiVersion: v2\nname: chart\nversion: 1.0.0\n",
        );
        write(dir.path(), "scalar.yaml", "just text\n");
        write(dir.path(), "seq.yml", "- a\n- b\n");
        write(dir.path(), "ok.yaml", &cm("ok"));
        assert_eq!(render_names(dir.path(), "", &DirectoryOptions::default()), ["ok"]);
    }

    #[test]
    fn kindless_yaml_that_looks_like_a_manifest_is_an_error() {
        let dir = repo();
        write(
            dir.path(),
            "app/cm.yaml",
            "apiVersion: v1\nmetadata:\n  name: x\n# kind: forgotten\n",
        );
        let err = render(dir.path(), "app", &DirectoryOptions::default()).expect_err("kindless");
        assert_eq!(
            err,
            RenderError::Parse {
                path: "app/cm.yaml".into(),
                message: "failed to unmarshal manifest: document at line 1: Object 'Kind' is missing".into(),
            }
        );
    }

    #[test]
    fn a_bad_document_after_a_good_one_is_an_error() {
        let dir = repo();
        write(
            dir.path(),
            "mixed.yaml",
            &format!("{}---\nfoo: bar\n", cm("good")),
        );
        let err = render(dir.path(), "", &DirectoryOptions::default()).expect_err("mixed");
        assert!(
            matches!(&err, RenderError::Parse { message, .. } if message.contains("line 6")),
            "{err:?}"
        );
    }

    #[test]
    fn bad_yaml_names_the_file_and_the_parser_message() {
        let dir = repo();
        let broken = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: broken}\nk: v\n  bad: 1\n";
        write(
            dir.path(),
            "app/sub/broken.yaml",
            &format!("{}---\n{broken}", cm("fine")),
        );
        let err = render(dir.path(), "app", &opts(true, None, None)).expect_err("broken");
        let RenderError::Parse { path, message } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(path, "app/sub/broken.yaml");
        assert!(message.contains("mapping values are not allowed"), "{message}");
        assert!(
            message.contains("at line 10 column 6"),
            "line relative to the file: {message}"
        );
        assert!(
            err.to_string()
                .starts_with("Failed to unmarshal \"app/sub/broken.yaml\": "),
            "{err}"
        );
    }

    #[test]
    fn skip_rendering_marker_skips_the_file() {
        let dir = repo();
        write(
            dir.path(),
            "values.yaml",
            &format!("# +argocd:skip-file-rendering\n{}", cm("skipped")),
        );
        write(
            dir.path(),
            "broken.yaml",
            "# +argocd:skip-file-rendering\napiVersion: v1\nkind: [\nmetadata:\n",
        );
        write(dir.path(), "ok.yaml", &cm("ok"));
        assert_eq!(render_names(dir.path(), "", &DirectoryOptions::default()), ["ok"]);
    }

    #[test]
    fn yaml_1_1_scalars_resolve_as_go_does() {
        let dir = repo();
        let body = "apiVersion: v1\nkind: Config\nmetadata: {name: s}\ndata:\n  octal: 0644\n  quoted: '0644'\n  dq: \"0644\"\n  tagged: !!str 0644\n  yes: yes\n  off: Off\n  quotedYes: 'yes'\n  under: 1_000\n  hex: 0x1F\n  float: 1.0\n  half: 0.5\n  nine: 09\n  date: 2024-01-02\n  block: |\n    0644\n  anchored: &a 010\n  alias: *a\n  flow: [on, 'on', 0755]\n";
        write(dir.path(), "s.yaml", body);
        let got = render(dir.path(), "", &DirectoryOptions::default()).expect("render");
        let want = json!({
            "octal": 420, "quoted": "0644", "dq": "0644", "tagged": "0644", "true": true, "false": false,
            "quotedYes": "yes", "under": 1000, "hex": 31, "float": 1, "half": 0.5, "nine": 9,
            "date": "2024-01-02", "block": "0644\n", "anchored": 8, "alias": 8, "flow": [true, "on", 493]
        });
        assert_eq!(got[0]["data"], want);
    }

    #[test]
    fn keys_are_stringified_duplicates_keep_the_last_and_merges_apply() {
        let dir = repo();
        let body = "apiVersion: v1\nkind: Config\nmetadata: {name: k}\nbase: &base {a: 1, b: 2}\nmerged:\n  <<: *base\n  b: 3\nmany:\n  <<: [{x: 1}, {x: 2, z: 2, y: 2}]\ndup: first\ndup: second\nnums:\n  1: one\n  true: t\n  1.5: f\n";
        write(dir.path(), "k.yaml", body);
        let got = render(dir.path(), "", &DirectoryOptions::default()).expect("render");
        assert_eq!(got[0]["merged"], json!({"a": 1, "b": 3}));
        assert_eq!(
            got[0]["many"],
            json!({"x": 1, "z": 2, "true": 2}),
            "a plain y key is the boolean true in YAML 1.1"
        );
        assert_eq!(got[0]["dup"], json!("second"));
        assert_eq!(got[0]["nums"], json!({"1": "one", "true": "t", "1.5": "f"}));
    }

    #[test]
    fn null_keys_and_infinities_are_errors() {
        for (body, want) in [
            ("~: v\n", "unsupported map key: null"),
            ("v: .inf\n", "unsupported value: +Inf"),
        ] {
            let dir = repo();
            write(dir.path(), "x.yaml", &format!("{}{body}", cm("x")));
            let err = render(dir.path(), "", &DirectoryOptions::default()).expect_err(body);
            assert!(
                matches!(&err, RenderError::Parse { message, .. } if message.contains(want)),
                "{err:?}"
            );
        }
    }

    #[test]
    fn byte_order_marks_are_honoured() {
        let dir = repo();
        let mut utf8 = b"\xEF\xBB\xBF".to_vec();
        utf8.extend_from_slice(cm("bom8").as_bytes());
        fs::write(dir.path().join("a.yaml"), utf8).expect("write");
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(cm("bom16").encode_utf16().flat_map(u16::to_le_bytes));
        fs::write(dir.path().join("b.yaml"), utf16).expect("write");
        fs::write(dir.path().join("c.yaml"), b"\xff\xfe\xfd garbage \x80").expect("write");
        assert_eq!(
            render_names(dir.path(), "", &DirectoryOptions::default()),
            ["bom8", "bom16"]
        );
    }

    #[test]
    fn absolute_app_path_is_refused() {
        let dir = repo();
        let app = dir.path().display().to_string();
        let err = render(dir.path(), &app, &DirectoryOptions::default()).expect_err("absolute");
        assert_eq!(err, RenderError::OutsideRepository { path: app });
    }

    #[test]
    fn dot_dot_leaving_the_root_is_refused_and_staying_inside_is_allowed() {
        let dir = repo();
        write(dir.path(), "b/x.yaml", &cm("x"));
        for app in ["..", "../x", "b/../..", "b/../../sibling"] {
            let err = render(dir.path(), app, &DirectoryOptions::default()).expect_err(app);
            assert_eq!(err, RenderError::OutsideRepository { path: app.into() });
        }
        assert_eq!(
            render_names(dir.path(), "a/../b", &DirectoryOptions::default()),
            ["x"]
        );
        assert_eq!(
            render_names(dir.path(), "./b/", &DirectoryOptions::default()),
            ["x"]
        );
    }

    #[test]
    fn missing_app_path_and_file_app_path_are_errors() {
        let dir = repo();
        write(dir.path(), "file.yaml", &cm("f"));
        let err = render(dir.path(), "nope/app", &DirectoryOptions::default()).expect_err("missing");
        assert_eq!(
            err,
            RenderError::AppPathNotFound {
                path: "nope/app".into()
            }
        );
        assert_eq!(err.to_string(), "nope/app: app path does not exist");
        let err = render(dir.path(), "file.yaml", &DirectoryOptions::default()).expect_err("file");
        assert_eq!(
            err,
            RenderError::NotADirectory {
                path: "file.yaml".into()
            }
        );
    }

    #[test]
    fn jsonnet_files_are_refused_unless_filtered_out() {
        let dir = repo();
        write(dir.path(), "app/main.jsonnet", "{}");
        write(dir.path(), "app/ok.yaml", &cm("ok"));
        let err = render(dir.path(), "app", &DirectoryOptions::default()).expect_err("jsonnet");
        assert_eq!(
            err,
            RenderError::JsonnetUnsupported {
                path: "app/main.jsonnet".into()
            }
        );
        let got = render_names(dir.path(), "app", &opts(false, None, Some("*.jsonnet")));
        assert_eq!(got, ["ok"]);
    }

    #[test]
    fn a_file_over_the_bound_is_refused_unread() {
        let dir = repo();
        let file = File::create(dir.path().join("huge.yaml")).expect("create");
        file.set_len(MAX_MANIFEST_FILE_BYTES + 1).expect("sparse");
        let err = render(dir.path(), "", &DirectoryOptions::default()).expect_err("huge");
        assert_eq!(
            err,
            RenderError::FileTooLarge {
                path: "huge.yaml".into(),
                size: MAX_MANIFEST_FILE_BYTES + 1,
                limit: MAX_MANIFEST_FILE_BYTES
            }
        );
        // Excluded, it is never read.
        assert!(render_names(dir.path(), "", &opts(false, None, Some("huge.yaml"))).is_empty());
    }

    #[test]
    fn the_combined_size_is_bounded() {
        let dir = repo();
        for name in ["a.yaml", "b.yaml"] {
            let file = File::create(dir.path().join(name)).expect("create");
            file.set_len(MAX_COMBINED_MANIFEST_BYTES / 2 + 1).expect("sparse");
        }
        let err = render(dir.path(), "", &DirectoryOptions::default()).expect_err("combined");
        assert_eq!(
            err,
            RenderError::CombinedSizeExceeded {
                path: "b.yaml".into(),
                limit: MAX_COMBINED_MANIFEST_BYTES
            }
        );
    }

    #[test]
    fn ordering_is_deterministic() {
        let dir = repo();
        for name in ["z", "m", "a", "Q", "b_", "b-", "b0"] {
            write(dir.path(), &format!("app/{name}.yaml"), &cm(name));
        }
        let first = render_names(dir.path(), "app", &DirectoryOptions::default());
        assert_eq!(first, ["Q", "a", "b-", "b0", "b_", "m", "z"]);
        assert_eq!(
            render_names(dir.path(), "app", &DirectoryOptions::default()),
            first
        );
    }

    #[cfg(unix)]
    mod symlinks {
        use std::os::unix::fs::symlink;

        use super::*;

        #[test]
        fn file_symlink_pointing_outside_is_refused() {
            let outside = repo();
            write(outside.path(), "secret.yaml", &cm("secret"));
            let dir = repo();
            write(dir.path(), "app/ok.yaml", &cm("ok"));
            symlink("../../outside/secret.yaml", dir.path().join("app/leak.yaml")).expect("symlink");
            let err = render(dir.path(), "app", &DirectoryOptions::default()).expect_err("leak");
            assert_eq!(
                err,
                RenderError::OutsideRepository {
                    path: "app/leak.yaml".into()
                }
            );
        }

        #[test]
        fn directory_symlink_pointing_outside_is_refused_even_elsewhere_in_the_repository() {
            let outside = repo();
            write(outside.path(), "secret.yaml", &cm("secret"));
            let dir = repo();
            write(dir.path(), "app/ok.yaml", &cm("ok"));
            fs::create_dir_all(dir.path().join("other")).expect("mkdir");
            symlink(outside.path(), dir.path().join("other/escape")).expect("symlink");
            let err = render(dir.path(), "app", &opts(true, None, None)).expect_err("escape");
            assert_eq!(
                err,
                RenderError::OutsideRepository {
                    path: "other/escape".into()
                }
            );
        }

        #[test]
        fn app_path_resolving_outside_through_a_symlink_is_refused() {
            let outside = repo();
            write(outside.path(), "secret.yaml", &cm("secret"));
            let dir = repo();
            symlink(outside.path(), dir.path().join("out")).expect("symlink");
            let err = render(dir.path(), "out", &DirectoryOptions::default()).expect_err("outside");
            assert_eq!(err, RenderError::OutsideRepository { path: "out".into() });
        }

        #[test]
        fn relative_dir_symlink_climbing_out_and_back_is_refused() {
            let dir = repo();
            let base = dir
                .path()
                .file_name()
                .and_then(|n| n.to_str())
                .expect("name")
                .to_owned();
            write(dir.path(), "real/x.yaml", &cm("x"));
            symlink(format!("../{base}/real"), dir.path().join("loop")).expect("symlink");
            let err = render(dir.path(), "real", &DirectoryOptions::default()).expect_err("climbs");
            assert_eq!(err, RenderError::OutsideRepository { path: "loop".into() });
        }

        #[test]
        fn absolute_symlink_is_refused_even_when_it_points_inside() {
            let dir = repo();
            write(dir.path(), "real.yaml", &cm("real"));
            symlink(dir.path().join("real.yaml"), dir.path().join("abs.yaml")).expect("symlink");
            let err = render(dir.path(), "", &DirectoryOptions::default()).expect_err("absolute");
            assert_eq!(
                err,
                RenderError::OutsideRepository {
                    path: "abs.yaml".into()
                }
            );
        }

        #[test]
        fn symlink_staying_inside_is_read_through() {
            let dir = repo();
            write(dir.path(), "shared/base.yaml", &cm("shared"));
            write(dir.path(), "app/own.yaml", &cm("own"));
            symlink("../shared/base.yaml", dir.path().join("app/linked.yaml")).expect("symlink");
            symlink("../shared/base.yaml", dir.path().join("app/linked.txt")).expect("symlink");
            assert_eq!(
                render_names(dir.path(), "app", &DirectoryOptions::default()),
                ["shared", "own"]
            );
            // Globs see the symlink's own path.
            assert_eq!(
                render_names(dir.path(), "app", &opts(false, Some("linked*"), None)),
                ["shared"]
            );
        }

        #[test]
        fn symlinked_directories_inside_are_not_entered() {
            let dir = repo();
            write(dir.path(), "shared/base.yaml", &cm("shared"));
            write(dir.path(), "app/own.yaml", &cm("own"));
            symlink("../shared", dir.path().join("app/sub")).expect("symlink");
            symlink("../shared", dir.path().join("app/dir.yaml")).expect("symlink");
            assert_eq!(render_names(dir.path(), "app", &opts(true, None, None)), ["own"]);
        }

        #[test]
        fn app_path_that_is_a_symlink_renders_nothing_as_upstream() {
            let dir = repo();
            write(dir.path(), "real/x.yaml", &cm("x"));
            symlink("real", dir.path().join("alias")).expect("symlink");
            assert!(render_names(dir.path(), "alias", &DirectoryOptions::default()).is_empty());
            // `alias/.` is cleaned to `alias` as Go's filepath.Join cleans it: still the symlink.
            assert!(render_names(dir.path(), "alias/.", &DirectoryOptions::default()).is_empty());
            // Through a symlinked parent the real directory is walked.
            write(dir.path(), "real/sub/y.yaml", &cm("why"));
            assert_eq!(
                render_names(dir.path(), "alias/sub", &DirectoryOptions::default()),
                ["why"]
            );
        }

        #[test]
        fn dangling_symlink_is_skipped() {
            let dir = repo();
            write(dir.path(), "ok.yaml", &cm("ok"));
            symlink("missing.yaml", dir.path().join("dangling.yaml")).expect("symlink");
            assert_eq!(render_names(dir.path(), "", &DirectoryOptions::default()), ["ok"]);
        }

        #[test]
        fn check_out_of_bounds_symlinks_accepts_inward_links() {
            let dir = repo();
            write(dir.path(), "a/b/file.yaml", &cm("f"));
            symlink("../b/file.yaml", dir.path().join("a/b/same.yaml")).expect("symlink");
            symlink("./a/./b", dir.path().join("short")).expect("symlink");
            assert_eq!(check_out_of_bounds_symlinks(dir.path()), Ok(()));
        }
    }
}
