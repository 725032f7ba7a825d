//! Repository credentials from Secrets, as Argo CD stores them (`AC:util/db/repository_secrets.go`,
//! `AC:docs/operator-manual/declarative-setup.md#repositories`): a Secret labelled
//! `argocd.argoproj.io/secret-type: repository` declares one repository (`url`, `username`, `password`,
//! `type`, `name`, `project`, ...), one labelled `repo-creds` is a credential template for every
//! repository whose URL starts with its `url`. Pure: the caller lists the Secrets.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;

use crate::source::{Credentials, redact_url};
use crate::webhook::{normalize_git_url, same_url};

/// The label that says what an Argo CD Secret holds.
pub const LABEL_SECRET_TYPE: &str = "argocd.argoproj.io/secret-type";
/// [`LABEL_SECRET_TYPE`] of a repository declaration.
pub const SECRET_TYPE_REPOSITORY: &str = "repository";
/// [`LABEL_SECRET_TYPE`] of a credential template.
pub const SECRET_TYPE_REPO_CREDS: &str = "repo-creds";

/// Data keys whose values are secret (and are cut out by [`redact`]).
const SECRET_KEYS: &[&str] = &[
    "password",
    "sshPrivateKey",
    "tlsClientCertKey",
    "githubAppPrivateKey",
    "gcpServiceAccountKey",
    "bearerToken",
];

/// Data keys that give a repository credentials of its own (`Repository.HasCredentials`); a repository
/// without any inherits those of the matching credential template.
const CREDENTIAL_KEYS: &[&str] = &[
    "username",
    "password",
    "sshPrivateKey",
    "tlsClientCertData",
    "tlsClientCertKey",
    "githubAppPrivateKey",
    "gcpServiceAccountKey",
    "bearerToken",
];

/// Which kind of Argo CD repository Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepoSecretKind {
    /// `secret-type: repository`: one repository.
    Repository,
    /// `secret-type: repo-creds`: a credential template for a URL prefix.
    CredentialTemplate,
}

/// A repository Secret as Argo CD reads it. `Debug` shows which credentials are set, never their values.
#[derive(Clone, PartialEq, Eq)]
pub struct RepoSecret {
    /// The Secret's name.
    pub secret_name: String,
    /// Repository or credential template.
    pub kind: RepoSecretKind,
    /// `url`: the repository, or the prefix of a template.
    pub url: String,
    /// `name`: a display name.
    pub name: Option<String>,
    /// `type`: `git` (the default), `helm` or `oci`.
    pub repo_type: Option<String>,
    /// `project`: the AppProject the repository is scoped to.
    pub project: Option<String>,
    /// `username` and `password`.
    pub credentials: Credentials,
    data: BTreeMap<String, String>,
}

impl std::fmt::Debug for RepoSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set: Vec<&str> = CREDENTIAL_KEYS
            .iter()
            .copied()
            .filter(|k| self.data.contains_key(*k))
            .collect();
        f.debug_struct("RepoSecret")
            .field("secret_name", &self.secret_name)
            .field("kind", &self.kind)
            .field("url", &redact_url(&self.url))
            .field("name", &self.name)
            .field("repo_type", &self.repo_type)
            .field("project", &self.project)
            .field("credentials_set", &set)
            .finish()
    }
}

/// The non-empty string values of a Secret: `data` decoded as UTF-8 (lossily), with `stringData` over it
/// (as the API server merges them).
fn secret_strings(secret: &Secret) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, value) in secret.data.iter().flatten() {
        out.insert(key.clone(), String::from_utf8_lossy(&value.0).into_owned());
    }
    for (key, value) in secret.string_data.iter().flatten() {
        out.insert(key.clone(), value.clone());
    }
    out.retain(|_, v| !v.is_empty());
    out
}

impl RepoSecret {
    /// The repository Secret, or `None` when the Secret is not labelled as one or has no `url`.
    pub fn from_secret(secret: &Secret) -> Option<Self> {
        let labels = secret.metadata.labels.as_ref()?;
        let kind = match labels.get(LABEL_SECRET_TYPE).map(String::as_str) {
            Some(SECRET_TYPE_REPOSITORY) => RepoSecretKind::Repository,
            Some(SECRET_TYPE_REPO_CREDS) => RepoSecretKind::CredentialTemplate,
            _ => return None,
        };
        let data = secret_strings(secret);
        let get = |key: &str| data.get(key).cloned();
        Some(RepoSecret {
            secret_name: secret.metadata.name.clone().unwrap_or_default(),
            kind,
            url: get("url")?,
            name: get("name"),
            repo_type: get("type"),
            project: get("project"),
            credentials: Credentials {
                username: get("username"),
                password: get("password"),
            },
            data,
        })
    }

    /// A data value other than the typed ones (`insecure`, `proxy`, `enableLfs`, ...).
    pub fn value(&self, key: &str) -> Option<&str> {
        self.data.get(key).map(String::as_str)
    }

    /// Whether the Secret carries credentials of any kind (`HasCredentials`).
    pub fn has_credentials(&self) -> bool {
        CREDENTIAL_KEYS.iter().any(|k| self.data.contains_key(*k))
    }

    /// The secret values, for redaction; a basic-auth header of them is included, as git sends it.
    fn secret_values(&self) -> Vec<String> {
        let mut values: Vec<String> = SECRET_KEYS
            .iter()
            .filter_map(|k| self.data.get(*k).cloned())
            .collect();
        if let Some(password) = self.credentials.password.as_deref() {
            for user in [
                self.credentials.username.as_deref().unwrap_or("x-access-token"),
                "x-access-token",
            ] {
                let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                values.push(basic);
            }
        }
        values
    }
}

/// Every repository Secret among `secrets`, in their order.
pub fn repo_secrets(secrets: &[Secret]) -> Vec<RepoSecret> {
    secrets.iter().filter_map(RepoSecret::from_secret).collect()
}

/// The credentials for `url` of an app whose project has no repository of its own: the repository
/// Secret of that URL without a project, else the longest matching credential template. See
/// [`credentials_for_project`].
pub fn credentials_for(url: &str, secrets: &[Secret]) -> Option<Credentials> {
    credentials_for_project(url, "", secrets)
}

/// The credentials for `url` of an app in `project`, as `GetRepository` resolves them:
/// 1. the repository Secret whose `url` is the same repository ([`same_url`]) and whose `project` is
///    `project`, else the last one of that URL without a project;
/// 2. when there is none, or it has no credentials of its own, the credential template whose
///    normalized `url` is the longest prefix of the normalized `url` (the first of equal ones).
///
/// A repository with credentials other than a user name and password (an SSH key, a client
/// certificate) gives its `username`/`password`, which may both be empty.
pub fn credentials_for_project(url: &str, project: &str, secrets: &[Secret]) -> Option<Credentials> {
    let all = repo_secrets(secrets);
    let repositories = all.iter().filter(|s| s.kind == RepoSecretKind::Repository);
    let mut fallback: Option<&RepoSecret> = None;
    let mut exact: Option<&RepoSecret> = None;
    for repo in repositories.filter(|r| same_url(&r.url, url)) {
        let scope = repo.project.as_deref().unwrap_or_default();
        if scope == project {
            exact = Some(repo);
            break;
        }
        if scope.is_empty() {
            fallback = Some(repo);
        }
    }
    if let Some(repo) = exact.or(fallback).filter(|r| r.has_credentials()) {
        return Some(repo.credentials.clone());
    }
    let templates = all
        .iter()
        .filter(|s| s.kind == RepoSecretKind::CredentialTemplate);
    credential_template(url, templates).map(|t| t.credentials.clone())
}

/// The template whose normalized URL is the longest prefix of the normalized `url`
/// (`getRepositoryCredentialIndex`); a template whose URL does not parse matches nothing.
fn credential_template<'a>(
    url: &str,
    templates: impl Iterator<Item = &'a RepoSecret>,
) -> Option<&'a RepoSecret> {
    let url = normalize_git_url(url);
    let mut best: Option<(usize, &RepoSecret)> = None;
    for template in templates {
        let prefix = normalize_git_url(&template.url);
        if prefix.is_empty() || !url.starts_with(&prefix) {
            continue;
        }
        if best.is_none_or(|(len, _)| prefix.len() > len) {
            best = Some((prefix.len(), template));
        }
    }
    best.map(|(_, template)| template)
}

/// `text` with every secret value of the repository Secrets among `secrets` replaced by `***`, and the
/// user information of any URL in it too.
pub fn redact(text: &str, secrets: &[Secret]) -> String {
    let mut values: Vec<String> = repo_secrets(secrets)
        .iter()
        .flat_map(RepoSecret::secret_values)
        .collect();
    values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    values.dedup();
    let mut out = text.to_string();
    for value in values.iter().filter(|v| !v.is_empty()) {
        out = out.replace(value.as_str(), "***");
    }
    redact_url_userinfo(&out)
}

/// `text` with the `user:password@` of every `scheme://user:password@host` replaced by `***@`.
fn redact_url_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || "\"'<>".contains(c))
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    /// A Secret of `kind` with `data` (stored base64-decoded, as the API returns it).
    fn secret(name: &str, kind: &str, data: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("argocd".into()),
                labels: Some(BTreeMap::from([(
                    LABEL_SECRET_TYPE.to_string(),
                    kind.to_string(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    fn repo(name: &str, url: &str, user: &str, password: &str) -> Secret {
        secret(
            name,
            SECRET_TYPE_REPOSITORY,
            &[("url", url), ("username", user), ("password", password)],
        )
    }

    fn creds(name: &str, url: &str, password: &str) -> Secret {
        secret(
            name,
            SECRET_TYPE_REPO_CREDS,
            &[("url", url), ("username", name), ("password", password)],
        )
    }

    fn password(found: Option<Credentials>) -> Option<String> {
        found.and_then(|c| c.password)
    }

    #[test]
    fn an_exact_repository_wins_over_templates() {
        let secrets = [
            creds("org", "https://github.com/acme", "org-token"),
            repo(
                "guestbook",
                "https://GitHub.com/acme/guestbook.git",
                "bob",
                "repo-token",
            ),
        ];
        let found = credentials_for("https://github.com/acme/guestbook", &secrets).unwrap();
        assert_eq!(found.username.as_deref(), Some("bob"));
        assert_eq!(found.password.as_deref(), Some("repo-token"));
        assert_eq!(
            password(credentials_for("https://github.com/acme/other", &secrets)),
            Some("org-token".into()),
            "another repository of the organization gets the template"
        );
        assert_eq!(
            credentials_for("https://gitlab.com/acme/guestbook", &secrets),
            None
        );
    }

    #[test]
    fn a_repository_without_credentials_inherits_the_template() {
        let secrets = [
            secret(
                "public",
                SECRET_TYPE_REPOSITORY,
                &[("url", "https://github.com/acme/app"), ("type", "git")],
            ),
            creds("org", "https://github.com/acme/", "org-token"),
        ];
        assert_eq!(
            password(credentials_for("https://github.com/acme/app", &secrets)),
            Some("org-token".into())
        );
        let ssh_only = [
            secret(
                "ssh",
                SECRET_TYPE_REPOSITORY,
                &[("url", "git@github.com:acme/app.git"), ("sshPrivateKey", "KEY")],
            ),
            creds("org", "git@github.com:acme", "org-token"),
        ];
        let found = credentials_for("ssh://git@github.com/acme/app", &ssh_only).unwrap();
        assert_eq!(
            found,
            Credentials::default(),
            "an SSH key is credentials of its own: nothing is inherited"
        );
    }

    #[test]
    fn the_longest_template_prefix_wins() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, Option<&'a str>);
        let cases: &[Case] = &[
            (
                &[
                    ("a", "https://github.com/argoproj"),
                    ("b", "https://github.com/argoproj/argo-cd"),
                ],
                "https://github.com/argoproj/argo-cd.git",
                Some("b"),
            ),
            (
                &[
                    ("b", "https://github.com/argoproj/argo-cd"),
                    ("a", "https://github.com/argoproj"),
                ],
                "https://github.com/argoproj/argo-cd",
                Some("b"),
            ),
            (
                &[
                    ("a", "https://github.com/argoproj"),
                    ("b", "https://github.com/argoproj/argo-cd"),
                ],
                "https://github.com/argoproj/argo-rollouts",
                Some("a"),
            ),
            (
                &[
                    ("a", "https://github.com/argoproj"),
                    ("b", "https://github.com/argoproj/"),
                ],
                "https://github.com/argoproj/argo-cd",
                Some("b"),
            ),
            (
                &[
                    ("a", "https://github.com/argoproj/argo-cd"),
                    ("b", "https://GitHub.com/argoproj/argo-cd"),
                ],
                "https://github.com/argoproj/argo-cd",
                Some("a"),
            ),
            (
                &[("a", "https://example.com/a"), ("b", "https://example.com/b")],
                "https://example.com/c/repo",
                None,
            ),
            (
                &[
                    ("a", "https://{github,gitlab}.com/org"),
                    ("b", "https://github.com/argoproj"),
                ],
                "https://github.com/argoproj/argo-cd",
                Some("b"),
            ),
            (
                &[("a", "https://github.com/argoproj/")],
                "https://github.com/argoproj-labs/applicationset",
                None,
            ),
            (
                &[("a", "https://github.com/argoproj/")],
                "https://github.com/argoproj",
                None,
            ),
            (
                &[("a", "https://my-company")],
                "https://not-my-company.com/repo",
                None,
            ),
            (
                &[("a", "https://x-access-token@github.com/my-org/")],
                "https://github.com/my-org/app",
                None,
            ),
            (
                &[("a", "git@github.com:argoproj")],
                "ssh://git@github.com/argoproj/argo-cd",
                Some("a"),
            ),
            (
                &[("a", "git@github.com:argoproj")],
                "https://github.com/argoproj/argo-cd",
                None,
            ),
            (
                &[("a", "https://git.example.com:8443/org")],
                "https://git.example.com:9443/org/repo",
                None,
            ),
            (
                &[("a", "ssh://git@github.com:argoproj")],
                "ssh://git@github.com:evil/other",
                None,
            ),
            (&[("a", "https://")], "https://github.com/org/repo", Some("a")),
            (&[("a", "https://")], "http://github.com/org/repo", None),
        ];
        for (templates, url, want) in cases {
            let secrets: Vec<Secret> = templates.iter().map(|(n, u)| creds(n, u, n)).collect();
            let got = credentials_for(url, &secrets).and_then(|c| c.username);
            assert_eq!(got.as_deref(), *want, "{templates:?} {url}");
        }
    }

    #[test]
    fn project_scoped_repositories() {
        let secrets = [
            repo("team-a", "https://github.com/acme/app", "a", "token-a"),
            repo("global", "https://github.com/acme/app", "g", "token-g"),
        ];
        let mut scoped = secrets.clone();
        scoped[0]
            .data
            .as_mut()
            .unwrap()
            .insert("project".into(), ByteString(b"team-a".to_vec()));
        let url = "https://github.com/acme/app";
        assert_eq!(
            password(credentials_for_project(url, "team-a", &scoped)),
            Some("token-a".into())
        );
        assert_eq!(
            password(credentials_for_project(url, "team-b", &scoped)),
            Some("token-g".into())
        );
        assert_eq!(password(credentials_for(url, &scoped)), Some("token-g".into()));
        let only_scoped = &scoped[..1];
        assert_eq!(
            credentials_for_project(url, "team-b", only_scoped),
            None,
            "another project's repository is not used"
        );
        assert_eq!(
            password(credentials_for(url, &secrets)),
            Some("token-a".into()),
            "the first of equal matches"
        );
    }

    #[test]
    fn secrets_that_are_not_repositories_are_ignored() {
        let mut unlabelled = repo("x", "https://github.com/acme/app", "u", "p");
        unlabelled.metadata.labels = None;
        let cluster = secret(
            "c",
            "cluster",
            &[("url", "https://github.com/acme/app"), ("password", "p")],
        );
        let no_url = secret("n", SECRET_TYPE_REPOSITORY, &[("password", "p")]);
        assert!(repo_secrets(&[unlabelled, cluster, no_url]).is_empty());
        let mut string_data = secret(
            "s",
            SECRET_TYPE_REPOSITORY,
            &[("url", "https://github.com/acme/app")],
        );
        string_data.string_data = Some(BTreeMap::from([(
            "password".to_string(),
            "from-string-data".to_string(),
        )]));
        let parsed = RepoSecret::from_secret(&string_data).unwrap();
        assert_eq!(parsed.credentials.password.as_deref(), Some("from-string-data"));
        assert_eq!(parsed.value("url"), Some("https://github.com/acme/app"));
        assert!(parsed.has_credentials());
    }

    #[test]
    fn debug_never_shows_secret_values() {
        let s = secret(
            "guestbook",
            SECRET_TYPE_REPOSITORY,
            &[
                ("url", "https://bob:inline-pass@github.com/acme/guestbook"),
                ("username", "bob"),
                ("password", "hunter2"),
                ("sshPrivateKey", "-----BEGIN OPENSSH PRIVATE KEY-----"),
                ("project", "default"),
            ],
        );
        let parsed = RepoSecret::from_secret(&s).unwrap();
        let shown = format!("{parsed:?}");
        for hidden in ["hunter2", "inline-pass", "BEGIN OPENSSH"] {
            assert!(!shown.contains(hidden), "{shown}");
        }
        assert!(
            shown.contains("\"password\""),
            "which credentials are set is shown: {shown}"
        );
        assert!(shown.contains("https://***@github.com/acme/guestbook"), "{shown}");
        let found = credentials_for_project(
            "https://bob:inline-pass@github.com/acme/guestbook",
            "default",
            std::slice::from_ref(&s),
        );
        assert_eq!(format!("{found:?}"), "Some(Credentials { .. })");
    }

    #[test]
    fn redact_cuts_out_passwords_headers_and_url_userinfo() {
        let secrets = [repo("r", "https://github.com/acme/app", "bob", "hunter2")];
        let basic = base64::engine::general_purpose::STANDARD.encode("bob:hunter2");
        let text = format!(
            "fatal: auth hunter2 failed; header Basic {basic}; remote https://bob:hunter2@github.com/acme/app and git://x@h/y"
        );
        let redacted = redact(&text, &secrets);
        assert!(!redacted.contains("hunter2"), "{redacted}");
        assert!(!redacted.contains(&basic), "{redacted}");
        assert_eq!(
            redacted,
            "fatal: auth *** failed; header Basic ***; remote https://***@github.com/acme/app and git://***@h/y"
        );
        assert_eq!(redact("nothing to hide", &secrets), "nothing to hide");
        assert_eq!(
            redact("https://github.com/acme/app", &[]),
            "https://github.com/acme/app"
        );
    }
}
