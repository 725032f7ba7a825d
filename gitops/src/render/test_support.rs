//! Helpers of the render tests: the real kustomize and helm (built once per version by
//! e2e/scripts/build-gitops-tools.sh, cached), repositories in temporary directories, and sources.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::json;
use sluice_crds::application::ApplicationSource;

use super::{RenderContext, Tools};

/// The real binaries, located by running the build script once per test process.
pub(crate) fn tools() -> Tools {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let script = workspace.join("e2e/scripts/build-gitops-tools.sh");
        let out = std::process::Command::new("bash")
            .arg(&script)
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("build-gitops-tools.sh runs");
        assert!(out.status.success(), "build-gitops-tools.sh failed");
        let stdout = String::from_utf8(out.stdout).expect("utf-8");
        PathBuf::from(stdout.lines().last().expect("the tools directory").trim())
    });
    Tools::new(dir.join("kustomize"), dir.join("helm"))
}

/// Writes `text` at `path` under `root`, creating directories.
pub(crate) fn write(root: &Path, path: &str, text: &str) {
    let file = root.join(path);
    fs::create_dir_all(file.parent().expect("a parent")).expect("mkdir");
    fs::write(file, text).expect("write");
}

/// A source of `git://example/repo.git` at `path`, with the extra fields of `extra` (`{"helm": {...}}`).
pub(crate) fn source(path: &str, extra: serde_json::Value) -> ApplicationSource {
    let mut value = json!({"repoURL": "git://example/repo.git", "path": path});
    if let (Some(fields), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
        fields.extend(extra.clone());
    }
    serde_json::from_value(value).expect("a source")
}

/// The Application `shop` with destination namespace `prod`.
pub(crate) fn ctx() -> RenderContext {
    RenderContext {
        app_name: "shop".into(),
        namespace: "prod".into(),
        ..RenderContext::default()
    }
}

/// Every entry under `root` (symlinks not followed) with its kind, permissions and content.
pub(crate) fn snapshot(root: &Path) -> BTreeMap<PathBuf, (String, Vec<u8>)> {
    let mut entries = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            let meta = fs::symlink_metadata(&path).expect("metadata");
            let content = if meta.is_file() {
                fs::read(&path).expect("read")
            } else if meta.file_type().is_symlink() {
                fs::read_link(&path)
                    .expect("link")
                    .into_os_string()
                    .into_encoded_bytes()
            } else {
                pending.push(path.clone());
                Vec::new()
            };
            let kind = format!("{:?} {:?}", meta.file_type(), meta.permissions());
            entries.insert(
                path.strip_prefix(root).expect("inside").to_path_buf(),
                (kind, content),
            );
        }
    }
    entries
}
