//! AppProject enforcement, as Argo CD's `AppProject` methods decide it (`IsSourcePermitted`,
//! `IsDestinationPermitted`, `IsGroupKindPermitted`) and with its messages. Pure: the controller passes the
//! project, the app and each rendered or live object.
//!
//! - Spec level: the app's repositories and its destination must be permitted, else `InvalidSpecError` and
//!   nothing is compared or synced. A project that does not exist is an error too, except `default`, which
//!   Argo CD creates permitting everything.
//! - Resource level: every rendered object is checked (so a Helm chart or a Kustomize overlay cannot render
//!   its way around the project): cluster-scoped kinds are denied unless whitelisted, namespaced kinds are
//!   allowed unless a whitelist leaves them out, blacklists always subtract, and a namespaced object's
//!   namespace must be a permitted destination. Live objects that are not permitted are never pruned.

use serde_json::Value;
use sluice_crds::application::{
    AppProjectSpec, Application, ApplicationDestination, ClusterResourceRestrictionItem, GroupKind,
};

use crate::glob;

/// The in-cluster destination's API server URL.
pub const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";
/// The in-cluster destination's name.
pub const IN_CLUSTER_NAME: &str = "in-cluster";
/// The project an app without `spec.project` belongs to.
pub const DEFAULT_PROJECT: &str = "default";
/// The operation message when a rendered object is outside the project (gitops-engine's wording).
pub const INVALID_TASKS: &str = "one or more synchronization tasks are not valid";

/// The `default` project as Argo CD creates it: any repository, any destination, any kind.
pub fn default_project() -> AppProjectSpec {
    AppProjectSpec {
        source_repos: Some(vec!["*".into()]),
        destinations: Some(vec![ApplicationDestination {
            server: Some("*".into()),
            name: Some("*".into()),
            namespace: Some("*".into()),
        }]),
        cluster_resource_whitelist: Some(vec![ClusterResourceRestrictionItem {
            group: "*".into(),
            kind: "*".into(),
            name: None,
        }]),
        ..AppProjectSpec::default()
    }
}

/// The message of an app naming a project that does not exist.
pub fn missing_project(name: &str) -> String {
    format!("Application referencing project {name} which does not exist")
}

/// Argo CD's `git.NormalizeGitURL` for comparisons: lower case, no trailing `/` or `.git`.
pub fn normalize_git_url(url: &str) -> String {
    let lower = url.trim().to_lowercase();
    let trimmed = lower.trim_end_matches('/');
    trimmed.strip_suffix(".git").unwrap_or(trimmed).to_string()
}

/// Argo CD's `globMatch(pattern, value, allowNegation, separators)`: `*` alone matches anything; `!p`
/// matches what `p` does not.
fn glob_match(pattern: &str, value: &str, separators: &[char]) -> bool {
    if let Some(negated) = pattern.strip_prefix('!') {
        return !glob_match(negated, value, separators);
    }
    pattern == "*" || glob::matches(pattern, value, separators)
}

fn is_deny(pattern: &str) -> bool {
    pattern.starts_with('!')
}

/// `IsSourcePermitted`: some pattern of `sourceRepos` matches, and no deny pattern excludes the URL.
pub fn source_permitted(project: &AppProjectSpec, repo_url: &str) -> bool {
    let url = normalize_git_url(repo_url);
    let mut any = false;
    for pattern in project.source_repos.as_deref().unwrap_or_default() {
        let normalized = match pattern.strip_prefix('!') {
            Some(denied) => format!("!{}", normalize_git_url(denied)),
            None => normalize_git_url(pattern),
        };
        if glob_match(&normalized, &url, &['/']) {
            any = true;
        } else if is_deny(&normalized) {
            return false;
        }
    }
    any
}

/// A resolved destination: the cluster's server URL and name, and a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination<'a> {
    /// The cluster's API server URL.
    pub server: &'a str,
    /// The cluster's name.
    pub name: &'a str,
    /// The namespace.
    pub namespace: &'a str,
}

/// `isDestinationMatched`: a destination entry matches by server or name, and namespace; no deny entry
/// excludes it.
pub fn destination_permitted(project: &AppProjectSpec, dst: Destination<'_>) -> bool {
    let mut any = false;
    let mut denied = false;
    for item in project.destinations.as_deref().unwrap_or_default() {
        let (item_server, item_name) = (
            item.server.as_deref().unwrap_or(""),
            item.name.as_deref().unwrap_or(""),
        );
        let item_namespace = item.namespace.as_deref().unwrap_or("");
        let name_matched = !dst.name.is_empty() && glob_match(item_name, dst.name, &[]);
        let server_matched = !dst.server.is_empty() && glob_match(item_server, dst.server, &[]);
        let namespace_matched = glob_match(item_namespace, dst.namespace, &[]);
        if (server_matched || name_matched) && namespace_matched {
            any = true;
        } else if (!name_matched && is_deny(item_name))
            || (!server_matched && is_deny(item_server))
            || (!namespace_matched && is_deny(item_namespace))
        {
            denied = true;
        }
    }
    any && !denied
}

fn in_group_kinds(list: &[GroupKind], group: &str, kind: &str) -> bool {
    list.iter()
        .any(|i| glob_match(&i.group, group, &[]) && glob_match(&i.kind, kind, &[]))
}

fn in_cluster_items(list: &[ClusterResourceRestrictionItem], group: &str, kind: &str, name: &str) -> bool {
    list.iter().any(|i| {
        glob_match(&i.group, group, &[])
            && glob_match(&i.kind, kind, &[])
            && i.name
                .as_deref()
                .is_none_or(|n| n.is_empty() || glob_match(n, name, &[]))
    })
}

/// `IsGroupKindNamePermitted`: whether a kind (and, cluster-scoped, a name) may be managed.
pub fn kind_permitted(
    project: &AppProjectSpec,
    group: &str,
    kind: &str,
    name: &str,
    namespaced: bool,
) -> bool {
    if namespaced {
        let white = project.namespace_resource_whitelist.as_deref();
        let black = project
            .namespace_resource_blacklist
            .as_deref()
            .unwrap_or_default();
        let whitelisted = white.is_none_or(|w| !w.is_empty() && in_group_kinds(w, group, kind));
        return whitelisted && !in_group_kinds(black, group, kind);
    }
    let white = project.cluster_resource_whitelist.as_deref().unwrap_or_default();
    let black = project.cluster_resource_blacklist.as_deref().unwrap_or_default();
    in_cluster_items(white, group, kind, name) && !in_cluster_items(black, group, kind, name)
}

/// The repository URLs an app reads from (`source`, or every one of `sources`).
fn repo_urls(app: &Application) -> Vec<&str> {
    match &app.spec.sources {
        Some(sources) if !sources.is_empty() => sources.iter().map(|s| s.repo_url.as_str()).collect(),
        _ => app.spec.source.iter().map(|s| s.repo_url.as_str()).collect(),
    }
}

/// The app's destination with the in-cluster server and name filled in from one another.
pub fn resolve_destination(dst: &ApplicationDestination) -> (String, String) {
    let server = dst.server.as_deref().unwrap_or("").trim_end_matches('/');
    let name = dst.name.as_deref().unwrap_or("");
    match (server, name) {
        ("", IN_CLUSTER_NAME) => (IN_CLUSTER_SERVER.into(), IN_CLUSTER_NAME.into()),
        (IN_CLUSTER_SERVER, "") => (IN_CLUSTER_SERVER.into(), IN_CLUSTER_NAME.into()),
        (server, name) => (server.into(), name.into()),
    }
}

/// The InvalidSpecError messages of an app in `project` (named `project_name`); empty when it is inside.
pub fn spec_violations(project_name: &str, project: &AppProjectSpec, app: &Application) -> Vec<String> {
    let mut out: Vec<String> = repo_urls(app)
        .into_iter()
        .filter(|url| !source_permitted(project, url))
        .map(|url| format!("application repo {url} is not permitted in project '{project_name}'"))
        .collect();
    let (server, name) = resolve_destination(&app.spec.destination);
    let namespace = app.spec.destination.namespace.as_deref().unwrap_or("");
    let dst = Destination {
        server: &server,
        name: &name,
        namespace,
    };
    if !destination_permitted(project, dst) {
        let shown = if server.is_empty() { &name } else { &server };
        out.push(format!(
            "application destination server '{shown}' and namespace '{namespace}' do not match any of the allowed destinations in project '{project_name}'"
        ));
    }
    out
}

fn group_of(obj: &Value) -> &str {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

fn meta<'v>(obj: &'v Value, field: &str) -> &'v str {
    obj.pointer(&format!("/metadata/{field}"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Why `obj` may not be managed in `project` (gitops-engine's permission validator wording), if it may not.
/// `namespaced` says whether its kind is namespaced; `cluster` is the destination's (server, name).
pub fn object_violation(
    project_name: &str,
    project: &AppProjectSpec,
    obj: &Value,
    namespaced: bool,
    cluster: (&str, &str),
) -> Option<String> {
    let (group, kind) = (
        group_of(obj),
        obj.get("kind").and_then(Value::as_str).unwrap_or(""),
    );
    if !kind_permitted(project, group, kind, meta(obj, "name"), namespaced) {
        return Some(format!(
            "resource {group}:{kind} is not permitted in project {project_name}"
        ));
    }
    let namespace = meta(obj, "namespace");
    let dst = Destination {
        server: cluster.0,
        name: cluster.1,
        namespace,
    };
    if namespaced && !destination_permitted(project, dst) {
        return Some(format!(
            "namespace {namespace} is not permitted in project '{project_name}'"
        ));
    }
    None
}

#[cfg(test)]
mod tests;
