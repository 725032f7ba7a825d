//! The git generator (`AC:applicationset/generators/git.go`, the repo server's `GetGitDirectories` and
//! `GetGitFiles`) over a checked-out repository.
//!
//! Directories: every directory of the checkout (walked in lexical order without following symbolic links,
//! dot-directories and what is under them skipped), matched against `directories[].path` with Go's
//! `path.Match`; an `exclude` match wins. Files: every file of the checkout but `.git` (as `git ls-files`
//! lists them) selected by the git pathspecs of `files[]`, minus those of the excluding items, in sorted
//! order; each object of each JSON or YAML file is one parameter set. A file that is a symbolic link pointing
//! outside the checkout, and a pattern with `..` or an absolute one, are refused.

use std::path::{Path, PathBuf};

use serde_json::Value;
use sluice_crds::applicationset::GitGenerator;

use super::params::{append_values, flatten, go_base, go_dir, sanitize_name, yaml_to_json};
use super::pattern::{go_path_match, pathspec_match};
use super::{Context, Params};
use crate::json_type;

/// The parameter sets of a git generator.
pub(crate) fn params(git: &GitGenerator, ctx: &Context<'_>) -> Result<Vec<Params>, String> {
    let key = (git.repo_url.clone(), git.revision.clone());
    let root = ctx.inputs.checkouts.get(&key).ok_or_else(|| {
        format!(
            "no checkout of {} at revision {:?}",
            git.repo_url,
            if git.revision.is_empty() {
                "HEAD"
            } else {
                &git.revision
            }
        )
    })?;
    let prefix = git.path_param_prefix.as_deref().unwrap_or("");
    match (&git.directories, &git.files) {
        (Some(dirs), _) if !dirs.is_empty() => {
            let all = directories(root).map_err(|e| format!("error getting directories from repo: {e}"))?;
            let mut out = Vec::new();
            for dir in all.iter().filter(|d| selected_directory(git, d)) {
                let mut params = directory_params(dir, prefix, ctx.options.go_template);
                append_values(git.values.as_ref(), &mut params, ctx).map_err(|e| {
                    format!("error generating params from apps: failed to append templated values: {e}")
                })?;
                out.push(params);
            }
            Ok(out)
        }
        (_, Some(files)) if !files.is_empty() => file_params(git, root, ctx),
        _ => Err("ApplicationSet is empty".into()),
    }
}

/// Upstream's `filterApps`: included by some item and excluded by none.
fn selected_directory(git: &GitGenerator, dir: &str) -> bool {
    let items = git.directories.iter().flatten();
    let mut include = false;
    for item in items {
        if go_path_match(&item.path, dir) {
            if item.exclude == Some(true) {
                return false;
            }
            include = true;
        }
    }
    include
}

/// Every directory under `root` (relative, `/`-separated) in `filepath.WalkDir` order; symbolic links are
/// not followed and dot-directories are skipped with everything under them.
pub(crate) fn directories(root: &Path) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    directories_under(root, "", &mut out)?;
    Ok(out)
}

fn directories_under(dir: &Path, rel: &str, out: &mut Vec<String>) -> Result<(), String> {
    for (name, path, kind) in entries(dir)? {
        if kind.is_dir() && !name.starts_with('.') {
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            out.push(child.clone());
            directories_under(&path, &child, out)?;
        }
    }
    Ok(())
}

/// The entries of `dir` sorted by name, with their own type (a symbolic link is not resolved).
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf, std::fs::FileType)>, String> {
    let read =
        std::fs::read_dir(dir).map_err(|e| format!("error walking the file tree: {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| format!("error walking the file tree: {e}"))?;
        let kind = entry
            .file_type()
            .map_err(|e| format!("error walking the file tree: {e}"))?;
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
            kind,
        ));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The `path` parameters of a directory (`generateParamsFromApps`).
fn directory_params(dir: &str, prefix: &str, go_template: bool) -> Params {
    let base = go_base(dir);
    let mut params = Params::new();
    if go_template {
        let path = Params::from_iter([
            ("path".to_string(), Value::from(dir)),
            ("basename".to_string(), Value::from(base.as_str())),
            (
                "basenameNormalized".to_string(),
                Value::from(sanitize_name(&base)),
            ),
            ("segments".to_string(), segments(dir)),
        ]);
        insert_go_path(&mut params, prefix, path);
    } else {
        let name = flat_name(prefix);
        params.insert(name.clone(), dir.into());
        params.insert(format!("{name}.basename"), base.as_str().into());
        params.insert(format!("{name}.basenameNormalized"), sanitize_name(&base).into());
        insert_flat_segments(&mut params, &name, dir);
    }
    params
}

fn flat_name(prefix: &str) -> String {
    if prefix.is_empty() {
        "path".into()
    } else {
        format!("{prefix}.path")
    }
}

fn segments(path: &str) -> Value {
    Value::Array(path.split('/').map(Value::from).collect())
}

fn insert_flat_segments(params: &mut Params, name: &str, path: &str) {
    for (i, segment) in path.split('/').enumerate().filter(|(_, s)| !s.is_empty()) {
        params.insert(format!("{name}[{i}]"), segment.into());
    }
}

fn insert_go_path(params: &mut Params, prefix: &str, path: Params) {
    if prefix.is_empty() {
        params.insert("path".into(), Value::Object(path));
    } else {
        let nested = Params::from_iter([("path".to_string(), Value::Object(path))]);
        params.insert(prefix.into(), Value::Object(nested));
    }
}

/// `generateParamsForGitFiles`: the selected files in sorted order, each read and turned into parameter sets.
fn file_params(git: &GitGenerator, root: &Path, ctx: &Context<'_>) -> Result<Vec<Params>, String> {
    let items = git.files.iter().flatten();
    let (exclude, include): (Vec<_>, Vec<_>) = items.partition(|i| i.exclude == Some(true));
    for item in include.iter().chain(&exclude) {
        check_pattern(&item.path)?;
    }
    let all = files(root)?;
    let selected = all.iter().filter(|f| {
        include.iter().any(|i| pathspec_match(&i.path, f))
            && !exclude.iter().any(|i| pathspec_match(&i.path, f))
    });
    let mut out = Vec::new();
    for file in selected {
        let content = read_inside(root, file)?;
        let sets = file_sets(git, file, &content, ctx)
            .map_err(|e| format!("unable to process file '{file}': {e}"))?;
        out.extend(sets);
    }
    Ok(out)
}

/// Refuses a pattern that could name a file outside the checkout.
fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern.starts_with('/') || pattern.split('/').any(|segment| segment == "..") {
        return Err(format!(
            "the file pattern {pattern:?} is outside the repository: patterns are relative to the repository \
             root and may not contain '..'"
        ));
    }
    Ok(())
}

/// Every file under `root` but those in `.git` directories (relative, `/`-separated, sorted); a symbolic
/// link counts as a file, as git stores it, and is not descended into.
fn files(root: &Path) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        for (name, path, kind) in entries(&dir)? {
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if kind.is_dir() {
                if name != ".git" {
                    stack.push((path, child));
                }
            } else {
                out.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The content of `file`, refused when it resolves (through symbolic links) to anything outside `root`.
fn read_inside(root: &Path, file: &str) -> Result<Vec<u8>, String> {
    let unreadable = |e: std::io::Error| format!("unable to read file '{file}': {e}");
    let real_root = root.canonicalize().map_err(unreadable)?;
    let real = root.join(file).canonicalize().map_err(unreadable)?;
    if !real.starts_with(&real_root) {
        return Err(format!(
            "unable to read file '{file}': it is a symbolic link to a path outside the repository"
        ));
    }
    std::fs::read(&real).map_err(unreadable)
}

/// `generateParamsFromGitFile`: one parameter set per object in the file (one object, or a list of them).
fn file_sets(
    git: &GitGenerator,
    file: &str,
    content: &[u8],
    ctx: &Context<'_>,
) -> Result<Vec<Params>, String> {
    let prefix = git.path_param_prefix.as_deref().unwrap_or("");
    let text = String::from_utf8_lossy(content);
    let objects = match yaml_to_json(&text).map_err(|e| format!("unable to parse file: {e}"))? {
        Value::Null => vec![Params::new()],
        Value::Object(map) => vec![map],
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(map) => Ok(map),
                Value::Null => Ok(Params::new()),
                other => Err(format!(
                    "unable to parse file: a list item is {}, not an object",
                    json_type(&other)
                )),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "unable to parse file: it holds {}, not an object",
                json_type(&other)
            ));
        }
    };
    let mut out = Vec::new();
    for object in objects {
        let mut params = file_object_params(file, object, prefix, ctx.options.go_template);
        append_values(git.values.as_ref(), &mut params, ctx)
            .map_err(|e| format!("failed to append templated values: {e}"))?;
        out.push(params);
    }
    Ok(out)
}

/// The parameters of one object of a file: the object (flattened for fasttemplate) and its `path` params.
fn file_object_params(file: &str, object: Params, prefix: &str, go_template: bool) -> Params {
    let dir = go_dir(file);
    let base = go_base(&dir);
    let filename = go_base(file);
    if go_template {
        let mut params = object;
        let path = Params::from_iter([
            ("path".to_string(), Value::from(dir.as_str())),
            ("basename".to_string(), Value::from(base.as_str())),
            ("filename".to_string(), Value::from(filename.as_str())),
            (
                "basenameNormalized".to_string(),
                Value::from(sanitize_name(&base)),
            ),
            (
                "filenameNormalized".to_string(),
                Value::from(sanitize_name(&filename)),
            ),
            ("segments".to_string(), segments(&dir)),
        ]);
        insert_go_path(&mut params, prefix, path);
        return params;
    }
    let mut params: Params = flatten(&object)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let name = flat_name(prefix);
    params.insert(name.clone(), dir.as_str().into());
    params.insert(format!("{name}.basename"), base.as_str().into());
    params.insert(format!("{name}.filename"), filename.as_str().into());
    params.insert(format!("{name}.basenameNormalized"), sanitize_name(&base).into());
    params.insert(
        format!("{name}.filenameNormalized"),
        sanitize_name(&filename).into(),
    );
    insert_flat_segments(&mut params, &name, &dir);
    params
}

#[cfg(test)]
mod tests;
