//! Plain Secrets in Git: a `kind: Secret` whose `data` or `stringData` sits readable in the repository is the
//! first thing a GitOps review should catch. The app's files are scanned as they are in the checkout (before
//! any tool runs), so the warning names the file. A SOPS-encrypted document (one with a `sops` block) is not
//! plain. Only file paths and Secret names are reported, never a value.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

/// Files larger than this are not read (manifests are small; this bounds the scan).
const MAX_FILE_BYTES: u64 = 1 << 20;
/// Files visited at most, so a huge repository cannot stall a render.
const MAX_FILES: usize = 5000;

/// A Secret with readable data, found in the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlainSecret {
    /// The file, relative to the repository root, with `/` separators.
    pub file: String,
    /// The Secret's `metadata.name`.
    pub name: String,
}

/// The plain Secrets of one file's text (YAML, any number of documents, or JSON); from a document that does
/// not parse (a Helm template) on, the file is skipped.
pub fn in_text(file: &str, text: &str) -> Vec<PlainSecret> {
    let mut out = Vec::new();
    for de in serde_yaml::Deserializer::from_str(text) {
        // A document that does not parse ends the file's scan: the YAML stream cannot be resynchronised.
        let Ok(doc) = Value::deserialize(de) else { break };
        let filled = |field: &str| {
            doc.get(field)
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
        };
        let is_secret = doc.get("kind").and_then(Value::as_str) == Some("Secret")
            && doc.get("apiVersion").and_then(Value::as_str) == Some("v1");
        if is_secret && doc.get("sops").is_none() && (filled("data") || filled("stringData")) {
            let name = doc
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            out.push(PlainSecret {
                file: file.to_string(),
                name: name.to_string(),
            });
        }
    }
    out
}

/// The plain Secrets under `app_dir` (inside `repo_root`): manifest files (`.yaml`, `.yml`, `.json`) in
/// name order, symlinks and dot-directories not followed.
pub fn scan(repo_root: &Path, app_dir: &Path) -> Vec<PlainSecret> {
    let mut out = Vec::new();
    let mut visited = 0;
    let mut stack = vec![app_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.file_name()));
        for entry in entries {
            let Ok(kind) = entry.file_type() else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            if kind.is_dir() && !name.starts_with('.') {
                stack.push(entry.path());
                continue;
            }
            let manifest = [".yaml", ".yml", ".json"].iter().any(|ext| name.ends_with(ext));
            if !kind.is_file() || !manifest || entry.metadata().map_or(true, |m| m.len() > MAX_FILE_BYTES) {
                continue;
            }
            visited += 1;
            if visited > MAX_FILES {
                return out;
            }
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let rel = entry.path().strip_prefix(repo_root).map_or(name.clone(), |p| {
                p.components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/")
            });
            out.extend(in_text(&rel, &text));
        }
    }
    out.sort_by(|a, b| (&a.file, &a.name).cmp(&(&b.file, &b.name)));
    out
}

/// The condition message for what `scan` found (None when nothing).
pub fn warning(found: &[PlainSecret]) -> Option<String> {
    let first = found.first()?;
    let more = match found.len() {
        1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    Some(format!(
        "Secret {:?} in {} holds plain data in Git{more}: encrypt it (SOPS) or keep it out of the repository",
        first.name, first.file
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_with_data_are_found_encrypted_or_empty_ones_are_not() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\ndata: {password: aHVudGVyMg==}\n---\n\
                    apiVersion: v1\nkind: Secret\nmetadata: {name: tls}\ntype: kubernetes.io/tls\n---\n\
                    apiVersion: v1\nkind: Secret\nmetadata: {name: sealed}\nstringData: {a: 'ENC[AES256_GCM,data:x]'}\nsops: {version: 3.8.1}\n---\n\
                    apiVersion: v1\nkind: Secret\nmetadata: {name: api}\nstringData: {token: abc}\n---\n\
                    apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n";
        let found = in_text("prod/secrets.yaml", text);
        let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["db", "api"]);
        assert!(
            in_text("t.yaml", "kind: Secret\ndata: {{ .Values.x }}\n").is_empty(),
            "templates are skipped"
        );
    }

    #[test]
    fn the_warning_names_the_first_file_and_never_a_value() {
        let found = in_text(
            "prod/db.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\ndata: {p: aHVudGVyMg==}\n",
        );
        let message = warning(&found).unwrap();
        assert_eq!(
            message,
            "Secret \"db\" in prod/db.yaml holds plain data in Git: encrypt it (SOPS) or keep it out of the repository"
        );
        assert!(!message.contains("aHVudGVyMg"));
        assert_eq!(warning(&[]), None);
    }

    #[test]
    fn the_scan_walks_the_app_directory_only() {
        let repo = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = repo.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {a: b}\n";
        write("app/base/secret.yaml", secret);
        write("app/.hidden/secret.yaml", secret);
        write("app/notes.txt", secret);
        write("other/secret.yaml", secret);
        let found = scan(repo.path(), &repo.path().join("app"));
        assert_eq!(
            found,
            [PlainSecret {
                file: "app/base/secret.yaml".into(),
                name: "s".into()
            }]
        );
    }
}
