//! Git push webhooks, as Argo CD's API server reads them (`AC:util/webhook/webhook.go`): the payload of a
//! push from GitHub, GitLab, Gitea, Gogs, Bitbucket Cloud or Bitbucket Server becomes a [`Push`] once its
//! signature is verified; [`matches`] says whether an Application source is concerned (the repository URL
//! and `revisionMatches` rule), and [`touches_paths`] whether the commits touched its
//! `manifest-generate-paths`. Also Argo CD's URL comparison (`util/git` `NormalizeGitURL`, `SameURL`).
//! Pure: no client, no I/O.

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Paths (`;`-separated) whose changes make a push refresh the app; other pushes leave it alone.
pub const ANNOTATION_MANIFEST_GENERATE_PATHS: &str = "argocd.argoproj.io/manifest-generate-paths";

/// The Git server a webhook came from, told by its event header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// `X-GitHub-Event`.
    GitHub,
    /// `X-Gitlab-Event`.
    GitLab,
    /// `X-Gitea-Event`.
    Gitea,
    /// `X-Gogs-Event`.
    Gogs,
    /// Bitbucket Cloud: `X-Hook-UUID`.
    Bitbucket,
    /// Bitbucket Server (Data Center): `X-Event-Key` without `X-Hook-UUID`.
    BitbucketServer,
}

impl Provider {
    /// The provider's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Provider::GitHub => "GitHub",
            Provider::GitLab => "GitLab",
            Provider::Gitea => "Gitea",
            Provider::Gogs => "Gogs",
            Provider::Bitbucket => "Bitbucket",
            Provider::BitbucketServer => "Bitbucket Server",
        }
    }
}

/// The webhook secrets of Argo CD's `argocd-secret` (`webhook.github.secret`, ...). A provider without a
/// secret is not verified. `Debug` never shows the values.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct WebhookSecrets {
    /// HMAC key of `X-Hub-Signature-256`.
    pub github: Option<String>,
    /// The expected `X-Gitlab-Token`.
    pub gitlab: Option<String>,
    /// HMAC key of Gitea's and Gogs' signatures (Argo CD's `webhook.gogs.secret`).
    pub gogs: Option<String>,
    /// The expected `X-Hook-UUID` of Bitbucket Cloud.
    pub bitbucket_uuid: Option<String>,
    /// HMAC key of Bitbucket Server's `X-Hub-Signature`.
    pub bitbucket_server: Option<String>,
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |s: &Option<String>| {
            if s.as_deref().is_some_and(|v| !v.is_empty()) {
                "set"
            } else {
                "unset"
            }
        };
        f.debug_struct("WebhookSecrets")
            .field("github", &set(&self.github))
            .field("gitlab", &set(&self.gitlab))
            .field("gogs", &set(&self.gogs))
            .field("bitbucket_uuid", &set(&self.bitbucket_uuid))
            .field("bitbucket_server", &set(&self.bitbucket_server))
            .finish()
    }
}

/// A push, as the payload names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Push {
    /// Every URL the payload gives for the repository (web page, https clone, ssh clone), without
    /// duplicates.
    pub repo_urls: Vec<String>,
    /// The branch or tag pushed: the `ref` without `refs/heads/` or `refs/tags/`.
    pub revision: String,
    /// The repository's default branch; `None` when the payload does not say (Bitbucket).
    pub default_branch: Option<String>,
    /// The commit before the push, when given.
    pub before: Option<String>,
    /// The commit after the push, when given.
    pub after: Option<String>,
    /// The files the pushed commits added, modified or removed; empty when the payload has no list.
    pub changed_files: Vec<String>,
}

impl Push {
    /// Whether the push moved the default branch (`touchedHead`); true when the payload does not say
    /// which branch is the default, so that the app is refreshed rather than missed.
    pub fn touched_head(&self) -> bool {
        self.default_branch.as_deref().is_none_or(|d| d == self.revision)
    }
}

/// Why a webhook request is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No header of a known provider.
    #[error("Unknown webhook event")]
    UnknownProvider,
    /// An event of the provider that is not a push.
    #[error("{provider} event {event:?} is not a push event")]
    UnsupportedEvent {
        /// The provider's name.
        provider: &'static str,
        /// The event header's value.
        event: String,
    },
    /// A secret is configured and the request carries no signature or token.
    #[error("{provider} webhook is missing the {header} header")]
    MissingSignature {
        /// The provider's name.
        provider: &'static str,
        /// The header that should carry the signature or token.
        header: &'static str,
    },
    /// The signature or token does not match the configured secret.
    #[error("{provider} webhook signature verification failed")]
    BadSignature {
        /// The provider's name.
        provider: &'static str,
    },
    /// The body is not the JSON the provider sends.
    #[error("{provider} webhook payload is not valid: {message}")]
    InvalidPayload {
        /// The provider's name.
        provider: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// A header's value, the name compared case-insensitively.
fn header<'a>(headers: &[(&str, &'a str)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
        .filter(|v| !v.is_empty())
}

/// The provider and the event of a request, in Argo CD's order (Gitea and Gogs also send GitHub's
/// headers, and Bitbucket Cloud also sends `X-Event-Key`).
fn provider_event<'a>(headers: &[(&str, &'a str)]) -> Option<(Provider, &'a str)> {
    let checks = [
        ("X-Gitea-Event", Provider::Gitea),
        ("X-Gogs-Event", Provider::Gogs),
        ("X-GitHub-Event", Provider::GitHub),
        ("X-Gitlab-Event", Provider::GitLab),
    ];
    for (name, provider) in checks {
        if let Some(event) = header(headers, name) {
            return Some((provider, event));
        }
    }
    let key = header(headers, "X-Event-Key")?;
    if header(headers, "X-Hook-UUID").is_some() {
        Some((Provider::Bitbucket, key))
    } else {
        Some((Provider::BitbucketServer, key))
    }
}

/// A push from a webhook request: `Ok(None)` for a ping (or a GitLab system hook that is not a push),
/// an error for an unknown provider, another event, a missing or wrong signature, or a bad body.
pub fn parse_push(
    headers: &[(&str, &str)],
    body: &[u8],
    secrets: &WebhookSecrets,
) -> Result<Option<Push>, WebhookError> {
    let (provider, event) = provider_event(headers).ok_or(WebhookError::UnknownProvider)?;
    let name = provider.name();
    let push_event = match (provider, event) {
        (Provider::GitHub | Provider::Gitea | Provider::Gogs, "push") => true,
        (Provider::GitHub, "ping") => false,
        (Provider::GitLab, "Push Hook" | "Tag Push Hook" | "System Hook") => true,
        (Provider::Bitbucket, "repo:push") => true,
        (Provider::BitbucketServer, "repo:refs_changed") => true,
        (Provider::BitbucketServer, "diagnostics:ping") => false,
        _ => {
            return Err(WebhookError::UnsupportedEvent {
                provider: name,
                event: event.to_string(),
            });
        }
    };
    verify(provider, headers, body, secrets)?;
    if !push_event {
        return Ok(None);
    }
    let payload: Value = serde_json::from_slice(body).map_err(|e| WebhookError::InvalidPayload {
        provider: name,
        message: e.to_string(),
    })?;
    if !payload.is_object() {
        return Err(WebhookError::InvalidPayload {
            provider: name,
            message: format!("expected an object, got {}", crate::json_type(&payload)),
        });
    }
    Ok(match provider {
        Provider::GitHub | Provider::Gitea | Provider::Gogs => Some(github_like_push(&payload)),
        Provider::GitLab => gitlab_push(&payload, event),
        Provider::Bitbucket => Some(bitbucket_push(&payload)),
        Provider::BitbucketServer => Some(bitbucket_server_push(&payload)),
    })
}

// ---------------------------------------------------------------------------------------------------------
// Signatures (go-playground/webhooks, as Argo CD configures it)

/// Checks the request against the provider's secret, when one is configured.
fn verify(
    provider: Provider,
    headers: &[(&str, &str)],
    body: &[u8],
    secrets: &WebhookSecrets,
) -> Result<(), WebhookError> {
    let configured = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    let name = provider.name();
    let missing = |header| WebhookError::MissingSignature {
        provider: name,
        header,
    };
    let bad = WebhookError::BadSignature { provider: name };
    match provider {
        Provider::GitHub | Provider::BitbucketServer => {
            let (secret, header_name) = match provider {
                Provider::GitHub => (configured(&secrets.github), "X-Hub-Signature-256"),
                _ => (configured(&secrets.bitbucket_server), "X-Hub-Signature"),
            };
            let Some(secret) = secret else { return Ok(()) };
            let signature = header(headers, header_name).ok_or_else(|| missing(header_name))?;
            let hex = signature.strip_prefix("sha256=").unwrap_or(signature);
            hmac_matches(&secret, body, hex).then_some(()).ok_or(bad)
        }
        Provider::Gitea | Provider::Gogs => {
            let Some(secret) = configured(&secrets.gogs) else {
                return Ok(());
            };
            let (primary, fallback) = match provider {
                Provider::Gitea => ("X-Gitea-Signature", "X-Gogs-Signature"),
                _ => ("X-Gogs-Signature", "X-Gogs-Signature"),
            };
            let signature = header(headers, primary)
                .or_else(|| header(headers, fallback))
                .ok_or_else(|| missing(primary))?;
            hmac_matches(&secret, body, signature).then_some(()).ok_or(bad)
        }
        Provider::GitLab | Provider::Bitbucket => {
            let (secret, header_name) = match provider {
                Provider::GitLab => (configured(&secrets.gitlab), "X-Gitlab-Token"),
                _ => (configured(&secrets.bitbucket_uuid), "X-Hook-UUID"),
            };
            let Some(secret) = secret else { return Ok(()) };
            let token = header(headers, header_name).ok_or_else(|| missing(header_name))?;
            constant_time_eq(token.as_bytes(), secret.as_bytes())
                .then_some(())
                .ok_or(bad)
        }
    }
}

/// Whether `signature_hex` is the HMAC-SHA256 of `body` under `secret`, compared in constant time.
fn hmac_matches(secret: &str, body: &[u8], signature_hex: &str) -> bool {
    let Some(signature) = decode_hex(signature_hex.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// Equality of two secrets that takes the same time wherever they differ: their SHA-256 digests are
/// compared byte by byte without stopping early.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Bytes of a hex string (either case); `None` when it is not hex.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| char::from(b).to_digit(16);
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8))
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// Payloads

/// A string at a JSON pointer, when non-empty.
fn text(payload: &Value, pointer: &str) -> Option<String> {
    payload
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

/// The last part of a ref split at most twice on `/` (`ParseRevision`): `refs/heads/a/b` is `a/b`.
pub fn parse_revision(git_ref: &str) -> &str {
    git_ref.splitn(3, '/').last().unwrap_or_default()
}

/// The strings at the pointers, in order, without empties or duplicates.
fn urls(payload: &Value, pointers: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for url in pointers.iter().filter_map(|p| text(payload, p)) {
        if !out.contains(&url) {
            out.push(url);
        }
    }
    out
}

/// The files of `commits[].added`, `modified` and `removed`, in payload order.
fn commit_files(payload: &Value) -> Vec<String> {
    let commits = payload.get("commits").and_then(Value::as_array);
    let mut files = Vec::new();
    for commit in commits.into_iter().flatten() {
        for list in ["added", "modified", "removed"] {
            let items = commit.get(list).and_then(Value::as_array);
            files.extend(
                items
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(String::from),
            );
        }
    }
    files
}

/// A push whose `ref`, `before` and `after` are at the top level.
fn ref_push(payload: &Value, repo_urls: Vec<String>, default_branch: Option<String>) -> Push {
    let revision = text(payload, "/ref").unwrap_or_default();
    Push {
        repo_urls,
        revision: parse_revision(&revision).to_string(),
        default_branch,
        before: text(payload, "/before"),
        after: text(payload, "/after"),
        changed_files: commit_files(payload),
    }
}

/// GitHub's push event, which Gitea and Gogs copy.
fn github_like_push(payload: &Value) -> Push {
    let repo_urls = urls(
        payload,
        &[
            "/repository/html_url",
            "/repository/clone_url",
            "/repository/ssh_url",
            "/repository/git_url",
        ],
    );
    ref_push(payload, repo_urls, text(payload, "/repository/default_branch"))
}

/// GitLab's push and tag push events (also as system hooks; other system hooks are not pushes).
fn gitlab_push(payload: &Value, event: &str) -> Option<Push> {
    if event == "System Hook"
        && !matches!(
            text(payload, "/object_kind").as_deref(),
            Some("push" | "tag_push")
        )
    {
        return None;
    }
    let repo_urls = urls(
        payload,
        &[
            "/project/web_url",
            "/project/git_http_url",
            "/project/git_ssh_url",
            "/repository/homepage",
            "/repository/git_http_url",
            "/repository/git_ssh_url",
        ],
    );
    Some(ref_push(
        payload,
        repo_urls,
        text(payload, "/project/default_branch"),
    ))
}

/// Bitbucket Cloud's `repo:push`: the first change names the branch; no default branch, no files.
fn bitbucket_push(payload: &Value) -> Push {
    let change = payload.pointer("/push/changes/0").cloned().unwrap_or_default();
    Push {
        repo_urls: urls(payload, &["/repository/links/html/href"]),
        revision: text(&change, "/new/name").unwrap_or_default(),
        default_branch: None,
        before: text(&change, "/old/target/hash"),
        after: text(&change, "/new/target/hash"),
        changed_files: Vec::new(),
    }
}

/// Bitbucket Server's `repo:refs_changed`: the http and ssh clone links, the first change's ref.
fn bitbucket_server_push(payload: &Value) -> Push {
    let links = payload
        .pointer("/repository/links/clone")
        .and_then(Value::as_array);
    let mut repo_urls: Vec<String> = Vec::new();
    for link in links.into_iter().flatten() {
        let name = link.get("name").and_then(Value::as_str);
        if let (Some("http" | "ssh"), Some(href)) = (name, text(link, "/href"))
            && !repo_urls.contains(&href)
        {
            repo_urls.push(href);
        }
    }
    let change = payload.pointer("/changes/0").cloned().unwrap_or_default();
    Push {
        repo_urls,
        revision: parse_revision(&text(&change, "/ref/id").unwrap_or_default()).to_string(),
        default_branch: None,
        before: text(&change, "/fromHash"),
        after: text(&change, "/toHash"),
        changed_files: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Which sources a push concerns (`sourceRevisionHasChanged`, `sourceUsesURL`, `GetWebURLRegex`)

/// Whether a push concerns a source with this `repoURL` and `targetRevision`: the revision rule of
/// [`revision_matches`] and one of the push's URLs naming the same repository ([`url_matches`]).
pub fn matches(push: &Push, repo_url: &str, target_revision: &str) -> bool {
    revision_matches(target_revision, &push.revision, push.touched_head())
        && push.repo_urls.iter().any(|url| url_matches(url, repo_url))
}

/// Argo CD's revision rule: a `HEAD` or empty target follows the default branch; a target written as
/// `refs/heads/x` or `refs/tags/x` matches the pushed `x`; any other target must equal the pushed
/// branch or tag. (Upstream also reads a target that is a semver constraint, such as `>=1.2`, against a
/// pushed tag; Sluice does not, so such an app waits for its next poll.)
pub fn revision_matches(target_revision: &str, pushed: &str, touched_head: bool) -> bool {
    let target = parse_revision(target_revision);
    if target == "HEAD" || target.is_empty() {
        return touched_head;
    }
    if target_revision.starts_with("refs/heads/") || target_revision.starts_with("refs/tags/") {
        return pushed == target;
    }
    pushed == target_revision
}

/// The host (without port) and path (without leading `/`, `.git` or trailing `/`) of a repository URL
/// from a payload: `scheme://[user@]host[:port]/path` or the scp form `user@host:path`.
fn host_and_path(url: &str) -> Option<(String, String)> {
    let (host, path) = match url.split_once("://") {
        Some((_, rest)) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let host = match host_port.strip_prefix('[') {
                Some(v6) => v6.split_once(']')?.0,
                None => host_port.split_once(':').map_or(host_port, |(h, _)| h),
            };
            (host, path.split(['?', '#']).next().unwrap_or_default())
        }
        None => {
            let (user_host, path) = url.split_once(':')?;
            (user_host.rsplit_once('@')?.1, path)
        }
    };
    let path = path.trim_start_matches('/').trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    (!host.is_empty() && !path.is_empty()).then(|| (host.to_lowercase(), path.to_lowercase()))
}

/// A user name as upstream's webhook regex accepts it: `[\w.][\w.-]{0,30}[\w.$-]?`.
fn is_username(user: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    let chars: Vec<char> = user.chars().collect();
    let Some((&first, rest)) = chars.split_first() else {
        return false;
    };
    if chars.len() > 32 || !word(first) {
        return false;
    }
    rest.iter().enumerate().all(|(i, &c)| {
        let last = i + 1 == rest.len();
        word(c) || c == '-' || (last && c == '$')
    })
}

/// Whether an app's `repoURL` names the repository of a payload URL, as upstream's `GetWebURLRegex`
/// does (case-insensitively): `((https?|ssh)://)?(user@)?((alt)?ssh\.)?host(:port)?[:/]path(\.git)?`.
/// Unlike upstream, a trailing `/` on the `repoURL` also matches (git reads it as the same repository), and
/// so does a `git://` URL (the git daemon protocol names the same repository).
pub fn url_matches(payload_url: &str, repo_url: &str) -> bool {
    let Some((host, path)) = host_and_path(payload_url) else {
        return false;
    };
    let candidate = repo_url.to_lowercase();
    let mut rest = candidate.as_str();
    for scheme in ["https://", "http://", "ssh://", "git://"] {
        if let Some(r) = rest.strip_prefix(scheme) {
            rest = r;
            break;
        }
    }
    let mut starts = vec![rest];
    if let Some((user, after)) = rest.split_once('@')
        && is_username(user)
    {
        starts.push(after);
    }
    starts.into_iter().any(|start| {
        ["", "ssh.", "altssh."].iter().any(|sub| {
            let after_host = start
                .strip_prefix(sub)
                .and_then(|s| s.strip_prefix(host.as_str()));
            after_host.is_some_and(|after| port_and_path_match(after, &path))
        })
    })
}

/// Whether what follows the host is `(:port)?[:/]path(\.git)?/?`.
fn port_and_path_match(after_host: &str, path: &str) -> bool {
    let without_port = after_host
        .strip_prefix(':')
        .map(|p| p.trim_start_matches(|c: char| c.is_ascii_digit()))
        .filter(|rest| rest.len() + 1 < after_host.len());
    [Some(after_host), without_port].into_iter().flatten().any(|s| {
        let Some(p) = s.strip_prefix([':', '/']) else {
            return false;
        };
        let p = p.strip_suffix('/').unwrap_or(p);
        p == path || p.strip_suffix(".git") == Some(path)
    })
}

// ---------------------------------------------------------------------------------------------------------
// manifest-generate-paths (`util/app/path` `GetSourceRefreshPaths`, `AppFilesHaveChanged`)

/// Whether a push that changed `changed_files` concerns an app whose source path is `app_path` and
/// whose `manifest-generate-paths` annotation is `annotation`: always without a list of files or
/// without the annotation; otherwise when a file is one of the paths, lies under one, or matches one as
/// a glob. Paths are `;`-separated; a relative one (`.`, `../common`) is relative to the app path, an
/// absolute one (`/charts`) to the repository root.
pub fn touches_paths(changed_files: &[String], annotation: Option<&str>, app_path: &str) -> bool {
    if changed_files.is_empty() {
        return true;
    }
    let refresh_paths: Vec<String> = annotation
        .unwrap_or_default()
        .split(';')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| match item.strip_prefix('/') {
            Some(absolute) => absolute.to_string(),
            None => clean_path(&format!("{app_path}/{item}")),
        })
        .collect();
    if refresh_paths.is_empty() {
        return true;
    }
    changed_files.iter().any(|file| {
        let file = ensure_absolute(file);
        refresh_paths.iter().any(|item| {
            let item = ensure_absolute(item);
            file == item || under_root(&item, &file) || glob_match(&item, &file)
        })
    })
}

/// A path with a leading `/`.
fn ensure_absolute(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

/// Go's `path.Clean`: no empty or `.` segments, `..` resolved lexically, `.` for nothing.
pub(crate) fn clean_path(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if !rooted => parts.push(".."),
                _ => {}
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Whether the directory of `file` is `root` or below it (`security.EnforceToCurrentRoot`).
fn under_root(root: &str, file: &str) -> bool {
    let root = clean_path(root);
    let dir = match file.rfind('/') {
        Some(0) => "/".to_string(),
        Some(i) => clean_path(&file[..i]),
        None => ".".to_string(),
    };
    if root == "/" || root == dir {
        return true;
    }
    let with_slash = |s: &str| {
        if s.ends_with('/') {
            s.to_string()
        } else {
            format!("{s}/")
        }
    };
    with_slash(&dir).starts_with(&with_slash(&root))
}

/// One element of a glob pattern.
#[derive(Debug, Clone, PartialEq)]
enum GlobToken {
    /// `*`: any run of non-`/` characters.
    Star,
    /// `?`: one non-`/` character.
    Any,
    /// A literal character (`\x` included).
    Char(char),
    /// `[...]`: one character in (or, negated, not in) the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl GlobToken {
    /// Whether this single-character token matches `c`.
    fn matches(&self, c: char) -> bool {
        match self {
            GlobToken::Star => false,
            GlobToken::Any => c != '/',
            GlobToken::Char(want) => c == *want,
            GlobToken::Class { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated
            }
        }
    }
}

/// The tokens of a pattern as Go's `filepath.Match` reads it; `None` for a malformed pattern (a
/// trailing `\`, an unclosed or empty class, a range bound that is `-` or `]`).
fn glob_tokens(pattern: &str) -> Option<Vec<GlobToken>> {
    let mut chars = pattern.chars().peekable();
    let mut tokens = Vec::new();
    // A class bound: a character other than `-` and `]`, or an escaped one.
    fn bound(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
        match chars.next()? {
            '-' | ']' => None,
            '\\' => chars.next(),
            c => Some(c),
        }
    }
    while let Some(c) = chars.next() {
        let token = match c {
            '*' => GlobToken::Star,
            '?' => GlobToken::Any,
            '\\' => GlobToken::Char(chars.next()?),
            '[' => {
                let negated = chars.next_if_eq(&'^').is_some();
                let mut ranges = Vec::new();
                loop {
                    if !ranges.is_empty() && chars.next_if_eq(&']').is_some() {
                        break;
                    }
                    let lo = bound(&mut chars)?;
                    let hi = if chars.next_if_eq(&'-').is_some() {
                        bound(&mut chars)?
                    } else {
                        lo
                    };
                    ranges.push((lo, hi));
                }
                GlobToken::Class { negated, ranges }
            }
            c => GlobToken::Char(c),
        };
        tokens.push(token);
    }
    Some(tokens)
}

/// Go's `filepath.Match`: `*` is any run of non-`/` characters, `?` one non-`/` character, `[...]` a
/// class (`^` negates, `a-z` ranges), `\` escapes. A malformed pattern matches nothing. Linear in the
/// name for each star: only the last star is ever extended, since no star crosses a `/`.
fn glob_match(pattern: &str, name: &str) -> bool {
    let Some(tokens) = glob_tokens(pattern) else {
        return false;
    };
    let name: Vec<char> = name.chars().collect();
    let (mut t, mut n) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while n < name.len() {
        match tokens.get(t) {
            Some(GlobToken::Star) => {
                last_star = Some((t, n));
                t += 1;
            }
            Some(token) if token.matches(name[n]) => {
                t += 1;
                n += 1;
            }
            _ => match last_star {
                Some((star, from)) if name[from] != '/' => {
                    last_star = Some((star, from + 1));
                    t = star + 1;
                    n = from + 1;
                }
                _ => return false,
            },
        }
    }
    tokens[t..].iter().all(|token| *token == GlobToken::Star)
}

// ---------------------------------------------------------------------------------------------------------
// URL normalization (`util/git` `NormalizeGitURL`, `SameURL`, `IsSSHURL`)

/// Whether two repository URLs name the same repository for Argo CD (`SameURL`): their
/// [`normalize_git_url`] forms are equal and not empty.
pub fn same_url(left: &str, right: &str) -> bool {
    let (left, right) = (normalize_git_url(left), normalize_git_url(right));
    !left.is_empty() && left == right
}

/// A repository URL in Argo CD's comparison form (`NormalizeGitURL`): trimmed and lower-cased, the scp
/// form `git@host:org/repo` written as `git@host/org/repo`, a `ssh://` prefix dropped, a `.git` suffix
/// dropped, then parsed and printed again as Go's `net/url` does; empty when it does not parse. A
/// trailing `/` is kept (for credential templates it bounds an organization).
pub fn normalize_git_url(repo: &str) -> String {
    let mut repo = repo.trim().to_lowercase();
    if is_ssh_url(&repo) && !repo.starts_with("ssh://") {
        repo = format!("ssh://{}", repo.replacen(':', "/", 1));
    }
    if let Some(stripped) = repo.strip_suffix(".git") {
        repo.truncate(stripped.len());
    }
    match reprint_url(&repo) {
        Some(url) => url.strip_prefix("ssh://").map(String::from).unwrap_or(url),
        None => String::new(),
    }
}

/// `IsSSHURL`: `^(ssh://)?([^/:]*?)@[^@]+$`.
fn is_ssh_url(url: &str) -> bool {
    let Some(at) = url.rfind('@') else {
        return false;
    };
    let user = &url[..at];
    let user = user.strip_prefix("ssh://").unwrap_or(user);
    at + 1 < url.len() && !user.contains(['/', ':'])
}

/// Whether each `%` starts a two-digit hex escape.
fn valid_escapes(text: &str) -> bool {
    let bytes = text.as_bytes();
    let hex = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_hexdigit);
    bytes
        .iter()
        .enumerate()
        .all(|(i, b)| *b != b'%' || (hex(i + 1) && hex(i + 2)))
}

/// Go's `url.Parse` followed by `String`, for the parts a repository URL has; `None` where Go fails.
fn reprint_url(url: &str) -> Option<String> {
    if url.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    let (rest, fragment) = url.split_once('#').map_or((url, None), |(r, f)| (r, Some(f)));
    let (scheme, rest) = url_scheme(rest)?;
    let (rest, query) = rest.split_once('?').map_or((rest, None), |(r, q)| (r, Some(q)));
    let mut out = String::new();
    if !scheme.is_empty() {
        out.push_str(scheme);
        out.push(':');
    }
    if !scheme.is_empty() && !rest.starts_with('/') {
        out.push_str(rest);
    } else if rest.starts_with("//") && !(scheme.is_empty() && rest.starts_with("///")) {
        let (authority, path) = rest[2..].split_at(rest[2..].find('/').unwrap_or(rest.len() - 2));
        valid_authority(authority).then_some(())?;
        if !authority.is_empty() || !path.is_empty() {
            out.push_str("//");
        }
        out.push_str(authority);
        out.push_str(&reprint_path(path)?);
    } else {
        let first_segment = rest.split('/').next().unwrap_or_default();
        if scheme.is_empty() && first_segment.contains(':') {
            return None;
        }
        out.push_str(&reprint_path(rest)?);
    }
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    if let Some(fragment) = fragment.filter(|f| !f.is_empty()) {
        valid_escapes(fragment).then_some(())?;
        out.push('#');
        out.push_str(fragment);
    }
    Some(out)
}

/// Go's `getScheme`: letters, then letters, digits, `+`, `-` or `.`, up to a `:`; `None` for a leading `:`.
fn url_scheme(url: &str) -> Option<(&str, &str)> {
    for (i, c) in url.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return None,
            ':' => return Some((&url[..i], &url[i + 1..])),
            _ => return Some(("", url)),
        }
    }
    Some(("", url))
}

/// Go's checks of `[userinfo@]host[:port]`.
fn valid_authority(authority: &str) -> bool {
    let (user, host) = authority
        .rsplit_once('@')
        .map_or((None, authority), |(u, h)| (Some(u), h));
    let user_ok = user.is_none_or(|u| {
        valid_escapes(u)
            && u.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._:~!$&'()*+,;=%@".contains(c))
    });
    let port_ok = |port: &str| {
        port.is_empty()
            || port
                .strip_prefix(':')
                .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
    };
    let host_ok = match host.strip_prefix('[') {
        Some(v6) => v6.rsplit_once(']').is_some_and(|(_, port)| port_ok(port)),
        None => {
            let name = host.rfind(':').map_or(host, |i| &host[..i]);
            port_ok(&host[name.len()..])
                && valid_escapes(name)
                && name.chars().all(|c| {
                    !c.is_ascii() || c.is_ascii_alphanumeric() || "-_.~!$&'()*+,;=[]<>\"%".contains(c)
                })
        }
    };
    user_ok && host_ok
}

/// A path as Go prints it: kept when it is validly encoded, else decoded and escaped again.
fn reprint_path(path: &str) -> Option<String> {
    valid_escapes(path).then_some(())?;
    let keep = |b: u8| b.is_ascii_alphanumeric() || b"-_.~$&+,/:;=@".contains(&b);
    let valid = path.bytes().all(|b| keep(b) || b"!'()*[]%".contains(&b));
    if valid {
        return Some(path.to_string());
    }
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            decoded.push(u8::from_str_radix(&path[i + 1..i + 3], 16).ok()?);
            i += 3;
        } else {
            decoded.push(bytes[i]);
            i += 1;
        }
    }
    Some(
        decoded
            .iter()
            .map(|&b| {
                if keep(b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SHA_BEFORE: &str = "9049f1265b7d61be4a8904a9a27120d2064dab3b";
    const SHA_AFTER: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";

    fn github_push() -> Value {
        json!({
            "ref": "refs/heads/main",
            "before": SHA_BEFORE,
            "after": SHA_AFTER,
            "created": false,
            "deleted": false,
            "repository": {
                "id": 1296269,
                "name": "guestbook",
                "full_name": "acme/guestbook",
                "html_url": "https://github.com/acme/guestbook",
                "url": "https://github.com/acme/guestbook",
                "git_url": "git://github.com/acme/guestbook.git",
                "ssh_url": "git@github.com:acme/guestbook.git",
                "clone_url": "https://github.com/acme/guestbook.git",
                "default_branch": "main",
                "master_branch": "main"
            },
            "pusher": {"name": "octocat", "email": "octocat@example.com"},
            "commits": [
                {"id": SHA_AFTER, "message": "bump web", "added": ["apps/web/hpa.yaml"],
                 "removed": [], "modified": ["apps/web/deploy.yaml"]},
                {"id": "1111111111111111111111111111111111111111", "message": "docs",
                 "added": [], "removed": ["README.md"], "modified": []}
            ],
            "head_commit": {"id": SHA_AFTER}
        })
    }

    fn gitlab_push(kind: &str, git_ref: &str) -> Value {
        json!({
            "object_kind": kind,
            "event_name": kind,
            "before": SHA_BEFORE,
            "after": SHA_AFTER,
            "ref": git_ref,
            "checkout_sha": SHA_AFTER,
            "user_username": "jsmith",
            "project": {
                "id": 15,
                "name": "guestbook",
                "web_url": "https://gitlab.example.com/acme/guestbook",
                "git_ssh_url": "git@gitlab.example.com:acme/guestbook.git",
                "git_http_url": "https://gitlab.example.com/acme/guestbook.git",
                "namespace": "acme",
                "path_with_namespace": "acme/guestbook",
                "default_branch": "main"
            },
            "repository": {
                "name": "guestbook",
                "url": "git@gitlab.example.com:acme/guestbook.git",
                "homepage": "https://gitlab.example.com/acme/guestbook",
                "git_http_url": "https://gitlab.example.com/acme/guestbook.git",
                "git_ssh_url": "git@gitlab.example.com:acme/guestbook.git"
            },
            "commits": [
                {"id": SHA_AFTER, "message": "update", "added": ["charts/web/values.yaml"],
                 "modified": ["apps/web/deploy.yaml"], "removed": []}
            ],
            "total_commits_count": 1
        })
    }

    fn gitea_push() -> Value {
        json!({
            "ref": "refs/heads/release/1.x",
            "before": SHA_BEFORE,
            "after": SHA_AFTER,
            "compare_url": "https://gitea.example.com/acme/guestbook/compare/a...b",
            "commits": [
                {"id": SHA_AFTER, "message": "release", "url": "https://gitea.example.com/acme/guestbook/commit/x",
                 "added": [], "removed": ["apps/old.yaml"], "modified": ["apps/web/deploy.yaml"]}
            ],
            "repository": {
                "id": 7,
                "name": "guestbook",
                "full_name": "acme/guestbook",
                "html_url": "https://gitea.example.com/acme/guestbook",
                "ssh_url": "ssh://git@gitea.example.com:2222/acme/guestbook.git",
                "clone_url": "https://gitea.example.com/acme/guestbook.git",
                "default_branch": "main"
            },
            "pusher": {"login": "gitea-admin"}
        })
    }

    fn bitbucket_server_push() -> Value {
        json!({
            "eventKey": "repo:refs_changed",
            "date": "2026-03-01T12:00:00+0000",
            "repository": {
                "slug": "guestbook",
                "project": {"key": "ACME"},
                "links": {
                    "clone": [
                        {"href": "ssh://git@bitbucket.example.com:7999/acme/guestbook.git", "name": "ssh"},
                        {"href": "https://bitbucket.example.com/scm/acme/guestbook.git", "name": "http"}
                    ],
                    "self": [{"href": "https://bitbucket.example.com/projects/ACME/repos/guestbook/browse"}]
                }
            },
            "changes": [{"ref": {"id": "refs/heads/main", "displayId": "main", "type": "BRANCH"},
                         "refId": "refs/heads/main", "fromHash": SHA_BEFORE, "toHash": SHA_AFTER, "type": "UPDATE"}]
        })
    }

    fn bitbucket_push() -> Value {
        json!({
            "repository": {
                "full_name": "acme/guestbook",
                "name": "guestbook",
                "links": {"html": {"href": "https://bitbucket.org/acme/guestbook"}}
            },
            "push": {"changes": [{
                "new": {"type": "branch", "name": "main", "target": {"hash": SHA_AFTER}},
                "old": {"type": "branch", "name": "main", "target": {"hash": SHA_BEFORE}}
            }]}
        })
    }

    fn hmac_hex(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn body(payload: &Value) -> Vec<u8> {
        serde_json::to_vec(payload).unwrap()
    }

    fn no_secrets() -> WebhookSecrets {
        WebhookSecrets::default()
    }

    #[test]
    fn a_github_push_names_every_url_the_revision_and_the_files() {
        let push = parse_push(
            &[("X-GitHub-Event", "push")],
            &body(&github_push()),
            &no_secrets(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            push.repo_urls,
            [
                "https://github.com/acme/guestbook",
                "https://github.com/acme/guestbook.git",
                "git@github.com:acme/guestbook.git",
                "git://github.com/acme/guestbook.git"
            ]
        );
        assert_eq!(push.revision, "main");
        assert_eq!(push.default_branch.as_deref(), Some("main"));
        assert!(push.touched_head());
        assert_eq!(push.before.as_deref(), Some(SHA_BEFORE));
        assert_eq!(push.after.as_deref(), Some(SHA_AFTER));
        assert_eq!(
            push.changed_files,
            ["apps/web/hpa.yaml", "apps/web/deploy.yaml", "README.md"]
        );
    }

    #[test]
    fn gitlab_push_and_tag_push_hooks() {
        let headers = [("X-Gitlab-Event", "Push Hook")];
        let push = parse_push(
            &headers,
            &body(&gitlab_push("push", "refs/heads/main")),
            &no_secrets(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            push.repo_urls,
            [
                "https://gitlab.example.com/acme/guestbook",
                "https://gitlab.example.com/acme/guestbook.git",
                "git@gitlab.example.com:acme/guestbook.git"
            ]
        );
        assert_eq!(push.revision, "main");
        assert!(push.touched_head());
        assert_eq!(
            push.changed_files,
            ["charts/web/values.yaml", "apps/web/deploy.yaml"]
        );

        let headers = [("x-gitlab-event", "Tag Push Hook")];
        let tag = gitlab_push("tag_push", "refs/tags/v1.2.0");
        let push = parse_push(&headers, &body(&tag), &no_secrets()).unwrap().unwrap();
        assert_eq!(push.revision, "v1.2.0");
        assert!(!push.touched_head(), "a tag is not the default branch");

        let system = [("X-Gitlab-Event", "System Hook")];
        assert!(parse_push(&system, &body(&tag), &no_secrets()).unwrap().is_some());
        let merge = json!({"object_kind": "merge_request"});
        assert_eq!(parse_push(&system, &body(&merge), &no_secrets()), Ok(None));
    }

    #[test]
    fn a_gitea_push_with_a_branch_that_has_a_slash() {
        let push = parse_push(
            &[("X-Gitea-Event", "push"), ("X-GitHub-Event", "push")],
            &body(&gitea_push()),
            &no_secrets(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(push.revision, "release/1.x");
        assert!(!push.touched_head());
        assert_eq!(push.repo_urls[1], "https://gitea.example.com/acme/guestbook.git");
        assert_eq!(push.changed_files, ["apps/web/deploy.yaml", "apps/old.yaml"]);
        assert!(matches(
            &push,
            "ssh://git@gitea.example.com:2222/acme/guestbook.git",
            "release/1.x"
        ));
    }

    #[test]
    fn bitbucket_pushes_name_no_default_branch_and_no_files() {
        let headers = [("X-Event-Key", "repo:refs_changed")];
        let push = parse_push(&headers, &body(&bitbucket_server_push()), &no_secrets())
            .unwrap()
            .unwrap();
        assert_eq!(
            push.repo_urls,
            [
                "ssh://git@bitbucket.example.com:7999/acme/guestbook.git",
                "https://bitbucket.example.com/scm/acme/guestbook.git"
            ]
        );
        assert_eq!(push.revision, "main");
        assert_eq!(push.default_branch, None);
        assert!(push.touched_head(), "unknown default branch: assume it moved");
        assert!(push.changed_files.is_empty());
        assert_eq!(push.after.as_deref(), Some(SHA_AFTER));

        let headers = [("X-Event-Key", "repo:push"), ("X-Hook-UUID", "{f0e1}")];
        let push = parse_push(&headers, &body(&bitbucket_push()), &no_secrets())
            .unwrap()
            .unwrap();
        assert_eq!(push.repo_urls, ["https://bitbucket.org/acme/guestbook"]);
        assert_eq!(push.revision, "main");
        assert_eq!(push.before.as_deref(), Some(SHA_BEFORE));
    }

    #[test]
    fn github_signature_matches_githubs_documented_example() {
        // docs.github.com "Validating webhook deliveries": this secret and payload give this signature.
        let secrets = WebhookSecrets {
            github: Some("It's a Secret to Everybody".into()),
            ..WebhookSecrets::default()
        };
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(
            verify(
                Provider::GitHub,
                &[("X-Hub-Signature-256", signature)],
                b"Hello, World!",
                &secrets
            )
            .is_ok()
        );
    }

    #[test]
    fn github_signatures_valid_invalid_and_missing() {
        let secrets = WebhookSecrets {
            github: Some("s3cret".into()),
            ..WebhookSecrets::default()
        };
        let payload = body(&github_push());
        let good = format!("sha256={}", hmac_hex("s3cret", &payload));
        let wrong = format!("sha256={}", hmac_hex("other", &payload));
        let parse = |headers: &[(&str, &str)]| parse_push(headers, &payload, &secrets);
        assert!(
            parse(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &good)])
                .unwrap()
                .is_some()
        );
        let bad = WebhookError::BadSignature { provider: "GitHub" };
        assert_eq!(
            parse(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", &wrong)]),
            Err(bad.clone())
        );
        assert_eq!(
            parse(&[("X-GitHub-Event", "push"), ("X-Hub-Signature-256", "sha256=zz")]),
            Err(bad.clone())
        );
        let missing = parse(&[("X-GitHub-Event", "push")]).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "GitHub webhook is missing the X-Hub-Signature-256 header"
        );
        assert!(
            parse(&[("X-GitHub-Event", "ping"), ("X-Hub-Signature-256", &wrong)]).is_err(),
            "a ping is verified too"
        );
        let tampered = [payload.as_slice(), b" "].concat();
        let headers = [("X-GitHub-Event", "push"), ("X-Hub-Signature-256", good.as_str())];
        assert_eq!(parse_push(&headers, &tampered, &secrets), Err(bad));
    }

    #[test]
    fn gitlab_tokens_and_bitbucket_uuids_are_compared_whole() {
        let secrets = WebhookSecrets {
            gitlab: Some("token-1".into()),
            bitbucket_uuid: Some("{uuid-1}".into()),
            ..WebhookSecrets::default()
        };
        let payload = body(&gitlab_push("push", "refs/heads/main"));
        let gitlab = |token: Option<&str>| {
            let mut headers = vec![("X-Gitlab-Event", "Push Hook")];
            headers.extend(token.map(|t| ("X-Gitlab-Token", t)));
            parse_push(&headers, &payload, &secrets)
        };
        assert!(gitlab(Some("token-1")).unwrap().is_some());
        assert_eq!(
            gitlab(Some("token-2")),
            Err(WebhookError::BadSignature { provider: "GitLab" })
        );
        assert_eq!(
            gitlab(Some("token-")),
            Err(WebhookError::BadSignature { provider: "GitLab" })
        );
        assert_eq!(
            gitlab(None),
            Err(WebhookError::MissingSignature {
                provider: "GitLab",
                header: "X-Gitlab-Token"
            })
        );
        let bb = body(&bitbucket_push());
        let headers = |uuid| [("X-Event-Key", "repo:push"), ("X-Hook-UUID", uuid)];
        assert!(parse_push(&headers("{uuid-1}"), &bb, &secrets).is_ok());
        assert!(parse_push(&headers("{uuid-2}"), &bb, &secrets).is_err());
    }

    #[test]
    fn gitea_gogs_and_bitbucket_server_hmac_signatures() {
        let secrets = WebhookSecrets {
            gogs: Some("shared".into()),
            bitbucket_server: Some("bb".into()),
            ..WebhookSecrets::default()
        };
        let payload = body(&gitea_push());
        let good = hmac_hex("shared", &payload);
        let gitea = |headers: &[(&str, &str)]| parse_push(headers, &payload, &secrets);
        assert!(
            gitea(&[("X-Gitea-Event", "push"), ("X-Gitea-Signature", &good)])
                .unwrap()
                .is_some()
        );
        assert!(
            gitea(&[("X-Gitea-Event", "push"), ("X-Gogs-Signature", &good)]).is_ok(),
            "Gogs' header also works"
        );
        assert!(
            gitea(&[
                ("X-Gogs-Event", "push"),
                ("X-Gogs-Signature", &good.to_uppercase())
            ])
            .is_ok()
        );
        assert_eq!(
            gitea(&[
                ("X-Gitea-Event", "push"),
                ("X-Gitea-Signature", &hmac_hex("x", &payload))
            ]),
            Err(WebhookError::BadSignature { provider: "Gitea" })
        );
        assert_eq!(
            gitea(&[("X-Gitea-Event", "push")]),
            Err(WebhookError::MissingSignature {
                provider: "Gitea",
                header: "X-Gitea-Signature"
            })
        );
        let bb = body(&bitbucket_server_push());
        let signed = format!("sha256={}", hmac_hex("bb", &bb));
        let headers = [
            ("X-Event-Key", "repo:refs_changed"),
            ("X-Hub-Signature", signed.as_str()),
        ];
        assert!(parse_push(&headers, &bb, &secrets).unwrap().is_some());
        let headers = [("X-Event-Key", "repo:refs_changed")];
        assert!(parse_push(&headers, &bb, &secrets).is_err());
    }

    #[test]
    fn without_a_secret_nothing_is_verified() {
        let headers = [("X-GitHub-Event", "push"), ("X-Hub-Signature-256", "sha256=00")];
        assert!(
            parse_push(&headers, &body(&github_push()), &no_secrets())
                .unwrap()
                .is_some()
        );
        let empty = WebhookSecrets {
            github: Some(String::new()),
            ..WebhookSecrets::default()
        };
        assert!(parse_push(&[("X-GitHub-Event", "push")], &body(&github_push()), &empty).is_ok());
        let shown = format!(
            "{:?}",
            WebhookSecrets {
                github: Some("hunter2".into()),
                ..WebhookSecrets::default()
            }
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("github: \"set\""), "{shown}");
    }

    #[test]
    fn other_events_and_bad_bodies_are_rejected() {
        let payload = body(&github_push());
        assert_eq!(
            parse_push(&[("X-GitHub-Event", "ping")], b"{}", &no_secrets()),
            Ok(None)
        );
        assert_eq!(
            parse_push(&[("X-Event-Key", "diagnostics:ping")], b"{}", &no_secrets()),
            Ok(None)
        );
        assert_eq!(
            parse_push(&[("X-GitHub-Event", "issues")], &payload, &no_secrets()),
            Err(WebhookError::UnsupportedEvent {
                provider: "GitHub",
                event: "issues".into()
            })
        );
        assert_eq!(
            parse_push(&[("Content-Type", "application/json")], &payload, &no_secrets()),
            Err(WebhookError::UnknownProvider)
        );
        assert!(matches!(
            parse_push(&[("X-GitHub-Event", "push")], b"{not json", &no_secrets()),
            Err(WebhookError::InvalidPayload {
                provider: "GitHub",
                ..
            })
        ));
        assert!(parse_push(&[("X-GitHub-Event", "push")], b"[1]", &no_secrets()).is_err());
        let empty = parse_push(&[("X-GitHub-Event", "push")], b"{}", &no_secrets())
            .unwrap()
            .unwrap();
        assert!(empty.repo_urls.is_empty());
        assert!(!matches(&empty, "https://github.com/acme/guestbook", "HEAD"));
    }

    #[test]
    fn url_normalization_as_argo_cd() {
        let cases = [
            (
                "https://GitHub.com/Argoproj/Argo-CD.git",
                "https://github.com/argoproj/argo-cd",
            ),
            ("  https://github.com/org/repo  ", "https://github.com/org/repo"),
            ("git@github.com:org/repo.git", "git@github.com/org/repo"),
            ("ssh://git@github.com/org/repo", "git@github.com/org/repo"),
            (
                "ssh://git@github.com:22/org/repo.git",
                "git@github.com:22/org/repo",
            ),
            ("https://github.com/org/repo/", "https://github.com/org/repo/"),
            (
                "https://github.com/org/my repo",
                "https://github.com/org/my%20repo",
            ),
            (
                "https://github.com/org/repo?ref=main",
                "https://github.com/org/repo?ref=main",
            ),
            (
                "https://github.com/org/repo#readme",
                "https://github.com/org/repo#readme",
            ),
            (
                "https://x-access-token@github.com/org/",
                "https://x-access-token@github.com/org/",
            ),
            ("https://[::1]:8443/repo", "https://[::1]:8443/repo"),
            ("registry.example.com:5000/team", "registry.example.com:5000/team"),
            ("file:///var/git/team", "file:///var/git/team"),
            ("/var/git/team", "/var/git/team"),
            ("https://", "https:"),
            ("https://{github,gitlab}.com/x", ""),
            ("ssh://git@github.com:argoproj", ""),
            ("https://github.com/org/%zz", ""),
            ("1github.com:org/repo", ""),
            (":foo", ""),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_git_url(input), want, "{input:?}");
        }
    }

    #[test]
    fn same_url_table() {
        let cases = [
            (
                "https://github.com/org/repo",
                "https://github.com/org/repo.git",
                true,
            ),
            ("https://GITHUB.com/org/repo", "https://github.com/org/repo", true),
            (
                "git@github.com:org/repo.git",
                "ssh://git@github.com/org/repo",
                true,
            ),
            (
                "https://github.com/org/repo",
                "git@github.com:org/repo.git",
                false,
            ),
            (
                "https://github.com/org/repo",
                "https://github.com/org/repo2",
                false,
            ),
            (
                "https://github.com/org/repo/",
                "https://github.com/org/repo",
                false,
            ),
            ("", "", false),
            ("https://{x}/a", "https://{x}/a", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(same_url(a, b), want, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn payload_urls_match_repo_urls_in_every_form() {
        let web = "https://github.com/acme/guestbook";
        let cases = [
            (web, "https://github.com/acme/guestbook", true),
            (web, "https://github.com/acme/guestbook.git", true),
            (web, "https://GitHub.com/Acme/Guestbook", true),
            (web, "http://github.com/acme/guestbook", true),
            (web, "github.com/acme/guestbook", true),
            (web, "git@github.com:acme/guestbook.git", true),
            (web, "ssh://git@github.com/acme/guestbook", true),
            (web, "ssh://git@ssh.github.com:443/acme/guestbook.git", true),
            (web, "https://user@github.com/acme/guestbook", true),
            (web, "https://github.com:8443/acme/guestbook", true),
            (web, "https://github.com/acme/guestbook-ui", false),
            (web, "https://github.com/acme/guest", false),
            (web, "https://github.com/acme", false),
            (web, "https://gitlab.com/acme/guestbook", false),
            (web, "https://evilgithub.com/acme/guestbook", false),
            (web, "https://github.com.evil/acme/guestbook", false),
            (web, "https://user:pw@github.com/acme/guestbook", false),
            (web, "git://github.com/acme/guestbook", true),
            (
                "git@gitlab.example.com:acme/guestbook.git",
                "https://gitlab.example.com/acme/guestbook",
                true,
            ),
            (
                "https://gitlab.example.com/acme/guestbook.git",
                "git@gitlab.example.com:acme/guestbook",
                true,
            ),
            (
                "https://gitea.example.com:3000/acme/guestbook",
                "https://gitea.example.com:3000/acme/guestbook.git",
                true,
            ),
            ("not a url", "not a url", false),
        ];
        for (payload, repo, want) in cases {
            assert_eq!(url_matches(payload, repo), want, "{payload} vs {repo}");
        }
    }

    #[test]
    fn a_trailing_slash_on_the_repo_url_still_matches_though_upstreams_regex_misses_it() {
        assert!(url_matches(
            "https://github.com/acme/guestbook",
            "https://github.com/acme/guestbook/"
        ));
        assert!(url_matches(
            "https://github.com/acme/guestbook",
            "https://github.com/acme/guestbook.git/"
        ));
    }

    #[test]
    fn revision_matching_table() {
        let cases = [
            ("HEAD", "main", true, true),
            ("HEAD", "feature", false, false),
            ("", "main", true, true),
            ("", "dev", false, false),
            ("main", "main", false, true),
            ("main", "dev", true, false),
            ("refs/heads/main", "main", false, true),
            ("refs/heads/feature/x", "feature/x", false, true),
            ("refs/tags/v1.0", "v1.0", false, true),
            ("refs/tags/v1.0", "v1.1", false, false),
            ("feature/x", "feature/x", false, true),
            ("feature/x", "x", false, false),
            ("v1.0", "v1.0", false, true),
            ("0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "main", true, false),
            (">=1.0.0", "v1.2.0", false, false),
        ];
        for (target, pushed, touched, want) in cases {
            assert_eq!(
                revision_matches(target, pushed, touched),
                want,
                "{target:?} vs {pushed:?}"
            );
        }
        assert_eq!(parse_revision("refs/heads/a/b/c"), "a/b/c");
        assert_eq!(parse_revision("main"), "main");
        assert_eq!(parse_revision(""), "");
    }

    #[test]
    fn a_push_matches_a_source_by_url_and_revision() {
        let push = parse_push(
            &[("X-GitHub-Event", "push")],
            &body(&github_push()),
            &no_secrets(),
        )
        .unwrap()
        .unwrap();
        assert!(matches(&push, "git@github.com:acme/guestbook.git", "HEAD"));
        assert!(matches(&push, "https://github.com/acme/guestbook", "main"));
        assert!(!matches(&push, "https://github.com/acme/guestbook", "dev"));
        assert!(!matches(&push, "https://github.com/acme/other", "HEAD"));
    }

    #[test]
    fn manifest_generate_paths() {
        let files = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: &[(&[&str], Option<&str>, &str, bool)] = &[
            (&[], Some("."), "apps/web", true),
            (&["apps/api/deploy.yaml"], None, "apps/web", true),
            (&["apps/api/deploy.yaml"], Some(""), "apps/web", true),
            (&["apps/api/deploy.yaml"], Some(" ; "), "apps/web", true),
            (&["apps/web/deploy.yaml"], Some("."), "apps/web", true),
            (&["apps/web/sub/deep/x.yaml"], Some("."), "apps/web", true),
            (&["/apps/web/deploy.yaml"], Some("."), "apps/web", true),
            (&["apps/api/deploy.yaml"], Some("."), "apps/web", false),
            (&["apps/webx/deploy.yaml"], Some("."), "apps/web", false),
            (&["apps/web"], Some("."), "apps/web", true),
            (
                &["charts/common/values.yaml"],
                Some("/charts/common"),
                "apps/web",
                true,
            ),
            (
                &["charts/other/values.yaml"],
                Some("/charts/common"),
                "apps/web",
                false,
            ),
            (&["apps/common/x.yaml"], Some("../common"), "apps/web", true),
            (
                &["README.md", "apps/web/a.yaml"],
                Some("/charts;."),
                "apps/web",
                true,
            ),
            (&["README.md"], Some("/charts; ."), "apps/web", false),
            (&["apps/web/values.yaml"], Some("values.yaml"), "apps/web", true),
            (
                &["apps/web/values-prod.yaml"],
                Some("values-*.yaml"),
                "apps/web",
                true,
            ),
            (
                &["apps/web/sub/values-prod.yaml"],
                Some("values-*.yaml"),
                "apps/web",
                false,
            ),
            (&["anything/at/all.yaml"], Some("/"), "apps/web", true),
            (&["README.md"], Some("."), "", true),
        ];
        for (changed, annotation, path, want) in cases {
            assert_eq!(
                touches_paths(&files(changed), *annotation, path),
                *want,
                "{changed:?} {annotation:?} {path:?}"
            );
        }
    }

    /// A small deterministic generator (xorshift64) for the generated cases.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn text(&mut self, alphabet: &[char], max_len: usize) -> String {
            let len = self.below(max_len + 1);
            (0..len).map(|_| alphabet[self.below(alphabet.len())]).collect()
        }
    }

    #[test]
    fn generated_urls_paths_and_bodies_never_panic() {
        let mut rng = Rng(0x853c_49e6_748f_ea9b);
        let url_chars: Vec<char> = "ab:/@.%2f[]?#{} gitGH\u{e9}-_~0".chars().collect();
        let glob_chars: Vec<char> = "a/*?[]^-\\.b".chars().collect();
        for _ in 0..20_000 {
            let (a, b) = (rng.text(&url_chars, 24), rng.text(&url_chars, 24));
            let normalized = normalize_git_url(&a);
            assert_eq!(same_url(&a, &a), !normalized.is_empty(), "{a:?}");
            let _ = url_matches(&a, &b);
            let (pattern, name) = (rng.text(&glob_chars, 10), rng.text(&glob_chars, 10));
            let _ = glob_match(&pattern, &name);
            let _ = touches_paths(std::slice::from_ref(&name), Some(&pattern), &a);
        }
        let body_chars: Vec<char> = "{}[]\":,refsh/ 0a".chars().collect();
        let headers = [("X-GitHub-Event", "push")];
        for _ in 0..5_000 {
            let body = rng.text(&body_chars, 40);
            let _ = parse_push(&headers, body.as_bytes(), &no_secrets());
        }
    }

    #[test]
    fn globs_and_clean_paths_as_go() {
        let globs = [
            ("/a/*.yaml", "/a/b.yaml", true),
            ("/a/*.yaml", "/a/b/c.yaml", false),
            ("/a/?.yaml", "/a/b.yaml", true),
            ("/a/[bc].yaml", "/a/c.yaml", true),
            ("/a/[^bc].yaml", "/a/c.yaml", false),
            ("/a/[a-c]x", "/a/bx", true),
            ("/a/\\*", "/a/*", true),
            ("/a/\\*", "/a/b", false),
            ("/a/[", "/a/b", false),
            ("/a/[]b]", "/a/b", false),
            ("/a/[-b]", "/a/b", false),
            ("/a/\\", "/a/b", false),
            ("/a[^b]c", "/a/c", true),
            ("*", "/a", false),
            ("/*/*/x", "/a/b/x", true),
            ("/a*b*c*d", "/aXbYcZd", true),
            ("/a*b*c*d", "/aXbYcZ/d", false),
        ];
        for (pattern, name, want) in globs {
            assert_eq!(glob_match(pattern, name), want, "{pattern} {name}");
        }
        let cleans = [
            ("", "."),
            ("a/./b/", "a/b"),
            ("a/../../b", "../b"),
            ("/../a", "/a"),
            ("a//b", "a/b"),
            ("/", "/"),
            ("./.", "."),
        ];
        for (input, want) in cleans {
            assert_eq!(clean_path(input), want, "{input:?}");
        }
    }
}
