//! `POST /api/webhook`, as Argo CD's API server takes Git push events (GitHub, GitLab, Gitea/Gogs,
//! Bitbucket): the Applications whose source the push moved are refreshed at once, without waiting for
//! their resync, and so are the ApplicationSets whose Git generators read the pushed revision. Secrets come from `argocd-secret` in the control-plane namespace, as Argo CD keeps them.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt, runtime::reflector::ObjectRef};
use sluice_crds::application::Application;
use sluice_gitops::webhook::{self, Push, WebhookSecrets};
use tokio::sync::mpsc::UnboundedSender;

use super::controller::Context;

/// What the endpoint needs.
#[derive(Clone)]
pub struct Webhook {
    /// The controller's shared state (its app cache, and the apps to refresh).
    pub ctx: Arc<Context>,
    /// Where refreshed apps are sent to be reconciled.
    pub trigger: UnboundedSender<ObjectRef<Application>>,
    /// Where pushes are sent for the ApplicationSets whose Git generators read the repository.
    pub appsets: UnboundedSender<Push>,
    /// The control-plane namespace (`argocd-secret` lives there).
    pub namespace: String,
    /// The client.
    pub client: kube::Client,
}

/// Serves the endpoint on `addr` until the process ends.
pub async fn serve(hook: Webhook, addr: SocketAddr) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/api/webhook", post(receive))
        .with_state(hook);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "webhook endpoint listening");
    axum::serve(listener, app).await?;
    Ok(())
}

async fn secrets(hook: &Webhook) -> WebhookSecrets {
    let api: Api<Secret> = Api::namespaced(hook.client.clone(), &hook.namespace);
    let Ok(Some(secret)) = api.get_opt("argocd-secret").await else {
        return WebhookSecrets::default();
    };
    let data = secret.data.unwrap_or_default();
    let value = |k: &str| {
        data.get(k)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .filter(|v| !v.is_empty())
    };
    WebhookSecrets {
        github: value("webhook.github.secret"),
        gitlab: value("webhook.gitlab.secret"),
        gogs: value("webhook.gogs.secret"),
        bitbucket_uuid: value("webhook.bitbucket.uuid"),
        bitbucket_server: value("webhook.bitbucketserver.secret"),
    }
}

async fn receive(State(hook): State<Webhook>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
        .collect();
    let secrets = secrets(&hook).await;
    let push = match webhook::parse_push(&pairs, &body, &secrets) {
        Ok(Some(push)) => push,
        Ok(None) => return (StatusCode::OK, String::new()),
        Err(e) => {
            tracing::warn!(error = %e, "webhook refused");
            return (StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    let apps = matching(&hook.ctx.applications(), &push);
    tracing::info!(revision = %push.revision, refreshed = apps.len(), "webhook push received");
    for app in apps {
        let key = format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any());
        if let Ok(mut pushed) = hook.ctx.pushed.lock() {
            pushed.insert(key);
        }
        let _ = hook.trigger.send(ObjectRef::from_obj(&*app));
    }
    let _ = hook.appsets.send(push);
    (StatusCode::OK, String::new())
}

/// The apps a push concerns: same repository, a target revision the push moved, and (with the
/// `manifest-generate-paths` annotation) a changed file under the given paths.
pub fn matching(apps: &[Arc<Application>], push: &Push) -> Vec<Arc<Application>> {
    apps.iter()
        .filter(|app| {
            let Some(source) = app.spec.source.as_ref() else {
                return false;
            };
            let revision = source.target_revision.as_deref().unwrap_or("HEAD");
            let paths = app
                .annotations()
                .get("argocd.argoproj.io/manifest-generate-paths")
                .map(String::as_str);
            webhook::matches(push, &source.repo_url, revision)
                && webhook::touches_paths(&push.changed_files, paths, source.path.as_deref().unwrap_or("."))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(repo: &str, revision: &str, paths: Option<&str>) -> Arc<Application> {
        let mut app: Application = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "a", "namespace": "argocd"},
            "spec": {"source": {"repoURL": repo, "targetRevision": revision, "path": "apps/web"},
                     "destination": {"server": "https://kubernetes.default.svc"}, "project": "default"}
        }))
        .unwrap();
        if let Some(p) = paths {
            app.metadata.annotations = Some(
                [(
                    "argocd.argoproj.io/manifest-generate-paths".to_string(),
                    p.to_string(),
                )]
                .into(),
            );
        }
        Arc::new(app)
    }

    #[test]
    fn pushes_refresh_the_apps_they_move() {
        let push = Push {
            repo_urls: vec!["https://git.example.com/org/repo".into()],
            revision: "main".into(),
            default_branch: Some("main".into()),
            changed_files: vec!["apps/web/deploy.yaml".into()],
            ..Default::default()
        };
        let apps = vec![
            app("https://git.example.com/org/repo.git", "HEAD", None),
            app("https://git.example.com/org/repo.git", "main", Some(".")),
            app("https://git.example.com/org/repo.git", "release", None),
            app("https://git.example.com/org/other.git", "HEAD", None),
            app("https://git.example.com/org/repo.git", "main", Some("/apps/api")),
        ];
        let hit = matching(&apps, &push);
        assert_eq!(hit.len(), 2);
        assert!(Arc::ptr_eq(&hit[0], &apps[0]) && Arc::ptr_eq(&hit[1], &apps[1]));
    }
}
