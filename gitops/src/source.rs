//! Git sources with the git CLI, as Argo CD's repo server uses it: one bare mirror per repository URL, fetched
//! shallowly and shared by every Application of that repository, and one read-only checkout per commit. Every
//! git command is a child process with a timeout, under a bound on how many run at once; credentials travel in
//! the child's environment (never its arguments) and are cut out of every message.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256};
use tokio::process::Command;
use tokio::sync::Semaphore;

/// Credentials for an http(s) repository, from a repository Secret. `Debug` never shows them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (Argo CD's `username`); a token alone goes in `password`.
    pub username: Option<String>,
    /// The password or token (Argo CD's `password`).
    pub password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials { .. }")
    }
}

impl Credentials {
    /// The `Authorization` header git sends: basic auth, with `x-access-token` as the user of a bare token.
    fn header(&self) -> Option<String> {
        let password = self.password.as_deref()?;
        let user = self.username.as_deref().unwrap_or("x-access-token");
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Some(format!("Authorization: Basic {token}"))
    }

    /// The secrets to cut out of a message.
    fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = self.password.iter().filter(|p| !p.is_empty()).cloned().collect();
        out.extend(self.header());
        out
    }
}

/// Why a git operation failed, with credentials removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    /// The revision names no branch, tag or commit of the repository.
    #[error("Unable to resolve '{revision}' to a commit SHA")]
    UnknownRevision {
        /// The revision asked for.
        revision: String,
    },
    /// git failed.
    #[error("git {command} failed: {message}")]
    Failed {
        /// The git subcommand.
        command: String,
        /// git's message (credentials removed).
        message: String,
    },
    /// git ran out of time and was killed.
    #[error("git {command} timed out after {seconds}s")]
    Timeout {
        /// The git subcommand.
        command: String,
        /// The timeout.
        seconds: u64,
    },
}

/// The mirrors and checkouts of every repository, under one directory.
pub struct GitCache {
    root: PathBuf,
    timeout: Duration,
    permits: Semaphore,
    repos: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// What `git ls-remote` says a revision is.
pub fn pick_ref(ls_remote: &str, revision: &str) -> Option<String> {
    let revision = if revision.is_empty() { "HEAD" } else { revision };
    let refs: Vec<(&str, &str)> = ls_remote.lines().filter_map(|l| l.split_once('\t')).collect();
    let find = |name: &str| {
        refs.iter()
            .find(|(_, r)| *r == name)
            .map(|(sha, _)| sha.to_string())
    };
    // An annotated tag names its tag object; the commit is the peeled `^{}` entry.
    let tag = format!("refs/tags/{revision}");
    find(&format!("{tag}^{{}}"))
        .or_else(|| find(revision))
        .or_else(|| find(&format!("refs/heads/{revision}")))
        .or_else(|| find(&tag))
}

/// Whether a revision is a full commit SHA.
pub fn is_commit_sha(revision: &str) -> bool {
    revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A URL with any user information replaced, fit for a message.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority = rest.split('/').next().unwrap_or_default();
    match authority.rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

impl GitCache {
    /// A cache under `root`; each git command may take `timeout`, and at most `concurrency` run at once.
    pub fn new(root: impl Into<PathBuf>, timeout: Duration, concurrency: usize) -> Self {
        GitCache {
            root: root.into(),
            timeout,
            permits: Semaphore::new(concurrency.max(1)),
            repos: Mutex::new(HashMap::new()),
        }
    }

    fn repo_dir(&self, url: &str) -> PathBuf {
        let digest = Sha256::digest(url.as_bytes());
        let name: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        self.root.join(name)
    }

    fn repo_lock(&self, url: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut repos = self.repos.lock().unwrap_or_else(|e| e.into_inner());
        repos.entry(url.to_string()).or_default().clone()
    }

    /// The commit a revision names now: HEAD (or empty), a branch, a tag, or a commit SHA (itself).
    pub async fn resolve(&self, url: &str, revision: &str, creds: &Credentials) -> Result<String, GitError> {
        if is_commit_sha(revision) {
            return Ok(revision.to_ascii_lowercase());
        }
        let out = self.git(None, &["ls-remote", url], creds).await?;
        pick_ref(&out, revision).ok_or_else(|| GitError::UnknownRevision {
            revision: revision.to_string(),
        })
    }

    /// A directory holding the files of `sha` (fetched shallowly into the repository's mirror when it is not
    /// there yet), to be read and not written.
    pub async fn checkout(&self, url: &str, sha: &str, creds: &Credentials) -> Result<PathBuf, GitError> {
        let lock = self.repo_lock(url);
        let _held = lock.lock().await;
        let repo = self.repo_dir(url);
        let mirror = repo.join("mirror.git");
        let tree = repo.join("trees").join(sha);
        if tree.join(".git").exists() {
            return Ok(tree);
        }
        if !mirror.exists() {
            let m = mirror.to_string_lossy().to_string();
            self.git(None, &["init", "--bare", "--quiet", &m], creds).await?;
        }
        let commit = format!("{sha}^{{commit}}");
        let have = self.git(Some(&mirror), &["cat-file", "-e", &commit], creds).await;
        if have.is_err() {
            let fetch = ["fetch", "--quiet", "--depth", "1", "--no-tags", url, sha];
            if self.git(Some(&mirror), &fetch, creds).await.is_err() {
                // A server that refuses a commit by SHA still serves its branches and tags.
                let heads = "+refs/heads/*:refs/heads/*";
                let tags = "+refs/tags/*:refs/tags/*";
                let all = ["fetch", "--quiet", "--depth", "1", url, heads, tags];
                self.git(Some(&mirror), &all, creds).await?;
            }
        }
        let t = tree.to_string_lossy().to_string();
        let add = ["worktree", "add", "--quiet", "--detach", "--force", &t, sha];
        self.git(Some(&mirror), &add, creds).await?;
        Ok(tree)
    }

    /// Runs git with the timeout and a permit; the credentials go in the environment as an extra header.
    async fn git(&self, dir: Option<&Path>, args: &[&str], creds: &Credentials) -> Result<String, GitError> {
        let command = args.first().copied().unwrap_or_default().to_string();
        let _permit = self.permits.acquire().await.map_err(|e| GitError::Failed {
            command: command.clone(),
            message: e.to_string(),
        })?;
        let mut cmd = Command::new("git");
        if let Some(dir) = dir {
            cmd.arg("--git-dir").arg(dir);
        }
        cmd.args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(header) = creds.header() {
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env("GIT_CONFIG_VALUE_0", header);
        }
        let seconds = self.timeout.as_secs();
        let out = tokio::time::timeout(self.timeout, cmd.output())
            .await
            .map_err(|_| GitError::Timeout {
                command: command.clone(),
                seconds,
            })?
            .map_err(|e| GitError::Failed {
                command: command.clone(),
                message: e.to_string(),
            })?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let mut message = String::from_utf8_lossy(&out.stderr).trim().to_string();
        for secret in creds.secrets() {
            message = message.replace(&secret, "***");
        }
        Err(GitError::Failed { command, message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LS: &str = "1111111111111111111111111111111111111111\tHEAD
2222222222222222222222222222222222222222\trefs/heads/main
3333333333333333333333333333333333333333\trefs/heads/release
4444444444444444444444444444444444444444\trefs/tags/v1
5555555555555555555555555555555555555555\trefs/tags/v1^{}
6666666666666666666666666666666666666666\trefs/tags/light
";

    #[test]
    fn ls_remote_names_heads_tags_and_head() {
        let sha = |c: char| Some(c.to_string().repeat(40));
        assert_eq!(pick_ref(LS, "HEAD"), sha('1'));
        assert_eq!(pick_ref(LS, ""), sha('1'), "no revision is HEAD");
        assert_eq!(pick_ref(LS, "main"), sha('2'));
        assert_eq!(pick_ref(LS, "refs/heads/release"), sha('3'));
        assert_eq!(
            pick_ref(LS, "v1"),
            sha('5'),
            "an annotated tag is peeled to its commit"
        );
        assert_eq!(pick_ref(LS, "light"), sha('6'));
        assert_eq!(pick_ref(LS, "nope"), None);
    }

    #[test]
    fn commit_shas_and_redaction() {
        assert!(is_commit_sha(&"a".repeat(40)));
        assert!(!is_commit_sha("main"));
        assert!(!is_commit_sha(&"g".repeat(40)));
        assert_eq!(
            redact_url("https://bob:s3cret@git.example/repo.git"),
            "https://***@git.example/repo.git"
        );
        assert_eq!(redact_url("https://git.example/a@b"), "https://git.example/a@b");
        assert_eq!(redact_url("file:///tmp/repo"), "file:///tmp/repo");
        let creds = Credentials {
            username: Some("bob".into()),
            password: Some("s3cret".into()),
        };
        assert_eq!(format!("{creds:?}"), "Credentials { .. }");
        assert!(creds.secrets().iter().any(|s| s == "s3cret"));
        assert_eq!(
            Credentials {
                username: None,
                password: Some("t".into())
            }
            .header()
            .as_deref(),
            Some("Authorization: Basic eC1hY2Nlc3MtdG9rZW46dA==")
        );
    }

    /// A repository made with the git CLI: a commit on main, an annotated tag, then a second commit.
    fn repo(dir: &Path) -> (String, String) {
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(args)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
                .output()
                .expect("git");
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        git(&["init", "--quiet", "--initial-branch=main"]);
        std::fs::write(dir.join("app.yaml"), "kind: ConfigMap\n").unwrap();
        git(&["add", "."]);
        git(&["commit", "--quiet", "-m", "one"]);
        let first = git(&["rev-parse", "HEAD"]);
        git(&["tag", "-a", "v1", "-m", "v1"]);
        std::fs::write(dir.join("app.yaml"), "kind: Secret\n").unwrap();
        git(&["commit", "--quiet", "-am", "two"]);
        (first, git(&["rev-parse", "HEAD"]))
    }

    #[tokio::test]
    async fn resolves_and_checks_out_branches_tags_and_commits_of_a_local_repository() {
        let src = tempfile::tempdir().unwrap();
        let (first, second) = repo(src.path());
        let url = format!("file://{}", src.path().display());
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path(), Duration::from_secs(30), 2);
        let none = Credentials::default();
        assert_eq!(cache.resolve(&url, "HEAD", &none).await.unwrap(), second);
        assert_eq!(cache.resolve(&url, "main", &none).await.unwrap(), second);
        assert_eq!(cache.resolve(&url, "v1", &none).await.unwrap(), first);
        assert_eq!(cache.resolve(&url, &first, &none).await.unwrap(), first);
        let err = cache.resolve(&url, "nope", &none).await.unwrap_err();
        assert_eq!(err.to_string(), "Unable to resolve 'nope' to a commit SHA");

        let tree = cache.checkout(&url, &first, &none).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(tree.join("app.yaml")).unwrap(),
            "kind: ConfigMap\n"
        );
        let tree2 = cache.checkout(&url, &second, &none).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(tree2.join("app.yaml")).unwrap(),
            "kind: Secret\n"
        );
        assert_eq!(
            cache.checkout(&url, &first, &none).await.unwrap(),
            tree,
            "checked out once"
        );
        let mirrors = std::fs::read_dir(cache_dir.path()).unwrap().count();
        assert_eq!(mirrors, 1, "one mirror for the repository");
    }

    #[tokio::test]
    async fn a_missing_repository_fails_without_showing_the_credentials() {
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = GitCache::new(cache_dir.path(), Duration::from_secs(30), 1);
        let creds = Credentials {
            username: Some("bob".into()),
            password: Some("s3cret".into()),
        };
        let err = cache
            .resolve("file:///nonexistent/sluice-repo", "main", &creds)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("git ls-remote failed: "), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
