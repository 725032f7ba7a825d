//! The ApplicationSet controller's I/O: the watch of ApplicationSets, one reconcile per set (check out what
//! its Git generators read → parameters → rendered Applications → the plan of creates, updates and deletes →
//! those writes → status) on the Application controller's caches (Applications, cluster and repository
//! Secrets, AppProjects), so it holds no second copy of any of them.

pub mod owned;
#[cfg(test)]
mod tests;

use std::{collections::BTreeMap, path::PathBuf, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition, jiff::Timestamp,
};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde_json::{Value, json};
use sluice_crds::{
    application::Application,
    applicationset::{ApplicationSet, ApplicationSetStatus},
};
use sluice_gitops::{
    appset,
    appset_render::{self, AppAction, Outcome, Reason},
    webhook::Push,
};
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{info, warn};

use super::controller::{self, Context};

/// What the ApplicationSet reconciles share.
struct SetContext {
    apps: Arc<Context>,
    failures: crate::backoff::Backoff,
    /// ApplicationSets a webhook push concerns, until their next reconcile.
    pushed: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Errors of one reconcile; retried with backoff.
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

fn set_key(set: &ApplicationSet) -> String {
    format!("{}/{}", set.namespace().unwrap_or_default(), set.name_any())
}

/// Runs the controller once `applicationsets.argoproj.io` is established (watching for it, so Applications
/// are served on a cluster without it), until `shutdown`.
pub(super) async fn run_when_installed(
    ctx: Arc<Context>,
    wakes: Wakes,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let crds: Api<CustomResourceDefinition> = Api::all(ctx.client().clone());
    let established = kube::runtime::wait::await_condition(
        crds,
        "applicationsets.argoproj.io",
        kube::runtime::wait::conditions::is_crd_established(),
    );
    let mut shutdown = Box::pin(shutdown);
    tokio::select! {
        r = established => if let Err(e) = r {
            warn!(error = %e, "watching for the ApplicationSet CRD failed; the ApplicationSet controller is off");
            return;
        },
        _ = &mut shutdown => return,
    }
    info!("applicationsets.argoproj.io is established: starting the ApplicationSet controller");
    run(ctx, wakes, shutdown).await;
}

/// What, besides its own watch, makes ApplicationSets reconcile.
pub(super) struct Wakes {
    /// The ApplicationSets whose Applications changed (the Application controller's watch sends them).
    pub touched: UnboundedReceiver<ObjectRef<ApplicationSet>>,
    /// Fires when a cluster Secret changes.
    pub clusters: UnboundedReceiver<()>,
    /// Git pushes received by the webhook.
    pub pushes: UnboundedReceiver<Push>,
}

/// Runs the controller until `shutdown`.
async fn run(
    ctx: Arc<Context>,
    wakes: Wakes,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let cp = ctx.config().control_plane_namespace.clone();
    let api: Api<ApplicationSet> = if ctx.config().all_namespaces() {
        Api::all(ctx.client().clone())
    } else {
        Api::namespaced(ctx.client().clone(), &cp)
    };
    let (store, writer) = reflector::store();
    let events = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|s| s.managed_fields_mut().clear())
        .reflect(writer)
        .touched_objects();
    let sctx = Arc::new(SetContext {
        apps: ctx,
        failures: Default::default(),
        pushed: Default::default(),
    });
    let all_on_cluster_change = every_set_on(wakes.clusters, store.clone());
    let pushed = pushed_sets(wakes.pushes, store.clone(), sctx.clone());
    Controller::for_stream(events, store)
        .reconcile_on(controller::stream_from(wakes.touched))
        .reconcile_on(all_on_cluster_change)
        .reconcile_on(pushed)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, sctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                crate::backoff::log_stream_error("applicationset", &e);
            }
        })
        .await;
}

/// The ApplicationSets a push concerns (a Git generator reading the pushed repository and revision), each
/// marked so that its next reconcile asks Git for the revision again instead of using the shared cache.
fn pushed_sets(
    pushes: UnboundedReceiver<Push>,
    sets: Store<ApplicationSet>,
    ctx: Arc<SetContext>,
) -> impl futures::Stream<Item = ObjectRef<ApplicationSet>> + Send + 'static {
    controller::stream_from(pushes).flat_map(move |push| {
        let moved: Vec<ObjectRef<ApplicationSet>> = sets
            .state()
            .iter()
            .filter(|set| {
                appset::git_sources(&set.spec.generators)
                    .iter()
                    .any(|(url, rev)| {
                        let rev = if rev.is_empty() { "HEAD" } else { rev.as_str() };
                        sluice_gitops::webhook::matches(&push, url, rev)
                    })
            })
            .map(|set| ObjectRef::from_obj(&**set))
            .collect();
        if let Ok(mut pushed) = ctx.pushed.lock() {
            pushed.extend(
                moved
                    .iter()
                    .map(|r| format!("{}/{}", r.namespace.clone().unwrap_or_default(), r.name)),
            );
        }
        info!(revision = %push.revision, applicationsets = moved.len(), "webhook push received");
        futures::stream::iter(moved)
    })
}

/// Every ApplicationSet, each time `ticks` fires.
fn every_set_on(
    ticks: UnboundedReceiver<()>,
    sets: Store<ApplicationSet>,
) -> impl futures::Stream<Item = ObjectRef<ApplicationSet>> + Send + 'static {
    controller::stream_from(ticks).flat_map(move |()| {
        futures::stream::iter(
            sets.state()
                .iter()
                .map(|s| ObjectRef::from_obj(&**s))
                .collect::<Vec<_>>(),
        )
    })
}

fn error_policy(set: Arc<ApplicationSet>, err: &Error, ctx: Arc<SetContext>) -> Action {
    let key = set_key(&set);
    let reason = match err {
        Error::Kube(e) => crate::backoff::kube_reason(e),
    };
    ctx.apps.metrics().reconcile_failed("applicationset", reason);
    let delay = ctx.failures.failed(&key);
    warn!(applicationset = %key, reason, error = %err, retry_in = ?delay, "reconcile failed; retrying");
    Action::requeue(delay)
}

async fn reconcile(set: Arc<ApplicationSet>, ctx: Arc<SetContext>) -> Result<Action, Error> {
    if !ctx.apps.gate().is_open() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    if set.metadata.deletion_timestamp.is_some() {
        // Owner references delete the Applications; the resources finalizer decides about their resources.
        return Ok(Action::await_change());
    }
    let key = set_key(&set);
    let mut failures = Vec::new();
    let fresh = ctx.pushed.lock().map(|mut p| p.remove(&key)).unwrap_or(false);
    match generate(&set, &ctx.apps, fresh).await {
        Ok((desired, invalid)) => {
            failures.extend(invalid);
            let owned: Vec<Application> = owned_apps(&set, &ctx.apps)
                .iter()
                .map(|a| (**a).clone())
                .collect();
            match policy(&set).and_then(|p| appset_render::plan(&desired, &owned, p)) {
                Ok(actions) => {
                    // With any Application failing to render or validate, nothing is deleted: a broken
                    // parameter set must not remove the Application it used to make.
                    let keep_all = !failures.is_empty();
                    let actions = actions
                        .into_iter()
                        .filter(|a| !(keep_all && matches!(a, AppAction::Delete { .. })))
                        .collect();
                    let apps = KubeApps(Api::namespaced(
                        ctx.apps.client().clone(),
                        &set.namespace().unwrap_or_default(),
                    ));
                    failures.extend(execute(&set, &apps, actions).await);
                }
                Err(message) => failures.push(failure(Reason::ApplicationValidationError, message)),
            }
        }
        Err(f) => failures.push(f),
    }
    if let Some(first) = failures.first() {
        warn!(applicationset = %key, reason = first.reason.as_str(), message = %first.message, errors = failures.len(), "the ApplicationSet is not up to date");
    }
    write_status(&set, &ctx, failures.first()).await?;
    ctx.failures.succeeded(&key);
    Ok(if failures.is_empty() {
        owned::requeue_after(&set.spec.generators).map_or_else(Action::await_change, Action::requeue)
    } else {
        let retries = ctx.failures.count(&key);
        let wait = crate::backoff::delay(retries + 2, crate::backoff::seed_of(&key));
        Action::requeue(wait.min(owned::DEFAULT_GIT_REQUEUE))
    })
}

/// One failure of a reconcile: its condition reason and message.
#[derive(Clone, Debug)]
struct Failure {
    reason: Reason,
    message: String,
}

fn failure(reason: Reason, message: String) -> Failure {
    Failure { reason, message }
}

/// The Applications the generators and the template make, and the failures of those that could not be
/// made; a generator that fails is the error (nothing is planned then).
async fn generate(
    set: &ApplicationSet,
    ctx: &Context,
    fresh: bool,
) -> Result<(Vec<Application>, Vec<Failure>), Failure> {
    let params = parameters(set, ctx, fresh)
        .await
        .map_err(|m| failure(Reason::ApplicationParamsGenerationError, m))?;
    let go = set.spec.go_template.unwrap_or(false);
    let options = set.spec.go_template_options.clone().unwrap_or_default();
    let (mut desired, mut failures) = (Vec::new(), Vec::new());
    for generated in &params {
        let rendered = appset_render::application(
            &set.name_any(),
            &set.namespace().unwrap_or_default(),
            &generated.template,
            set.spec.template_patch.as_deref(),
            &generated.params,
            go,
            &options,
        );
        match rendered {
            Ok(app) => match controller::project_of(&app, ctx) {
                Ok(_) => desired.push(app),
                Err(_) => failures.push(failure(
                    Reason::ApplicationValidationError,
                    format!(
                        "application references project {} which does not exist",
                        app.spec.project
                    ),
                )),
            },
            Err(message) => failures.push(failure(Reason::RenderTemplateParamsError, message)),
        }
    }
    Ok((desired, failures))
}

/// The parameter sets of the generators, each with its template (the set's, with the generator's own
/// override merged in), every repository they read checked out at its revision first.
async fn parameters(
    set: &ApplicationSet,
    ctx: &Context,
    fresh: bool,
) -> Result<Vec<appset::GeneratedSet>, String> {
    let mut checkouts = BTreeMap::new();
    for (url, revision) in appset::git_sources(&set.spec.generators) {
        let rev = if revision.is_empty() {
            "HEAD"
        } else {
            revision.as_str()
        };
        let sha = controller::resolve(ctx, &url, rev, fresh).await?;
        let creds = controller::credentials(ctx, &url);
        let dir: PathBuf = ctx
            .git()
            .checkout(&url, &sha, &creds)
            .await
            .map_err(|e| format!("error getting git contents of {url}: {e}"))?;
        checkouts.insert((url, revision), dir);
    }
    let inputs = appset::Inputs {
        clusters: sluice_gitops::clusters::known_clusters(&ctx.destinations().cluster_secrets()),
        checkouts,
    };
    let options = appset::Options {
        go_template: set.spec.go_template.unwrap_or(false),
        apply_nested_selectors: set.spec.apply_nested_selectors.unwrap_or(false),
    };
    let renderer = Renderer(set.spec.go_template_options.clone().unwrap_or_default());
    let template = serde_json::to_value(&set.spec.template).unwrap_or_default();
    appset::generate_sets(&set.spec.generators, &inputs, &renderer, options, &template)
}

/// Interpolates a nested generator with the parameters of the one before it (matrix).
struct Renderer(Vec<String>);

impl appset::Interpolate for Renderer {
    fn interpolate(
        &self,
        value: &Value,
        params: &appset::Params,
        go_template: bool,
    ) -> Result<Value, String> {
        appset_render::render(value, params, go_template, &self.0)
    }
}

fn policy(set: &ApplicationSet) -> Result<appset_render::Policy, String> {
    let sync = set.spec.sync_policy.as_ref().and_then(|s| s.applications_sync);
    let sync = match sync {
        Some(p) => serde_json::to_value(p)
            .ok()
            .and_then(|v| v.as_str().map(appset_render::ApplicationsSync::parse))
            .unwrap_or(Ok(appset_render::ApplicationsSync::Sync))?,
        None => appset_render::ApplicationsSync::Sync,
    };
    let preserved = set.spec.preserved_fields.as_ref();
    Ok(appset_render::Policy {
        application_set: set.name_any(),
        sync,
        preserve_resources_on_deletion: owned::preserves_resources(set),
        preserved_annotations: preserved.and_then(|p| p.annotations.clone()).unwrap_or_default(),
        preserved_labels: preserved.and_then(|p| p.labels.clone()).unwrap_or_default(),
    })
}

fn owned_apps(set: &ApplicationSet, ctx: &Context) -> Vec<Arc<Application>> {
    let uid = set.metadata.uid.clone().unwrap_or_default();
    let ns = set.namespace().unwrap_or_default();
    ctx.applications()
        .into_iter()
        .filter(|a| a.namespace().as_deref() == Some(&ns) && owned::owned_by(a, &uid))
        .collect()
}

/// How many writes of one plan are in flight at once.
const PARALLEL_WRITES: usize = 16;

/// The writes the controller makes to Applications, behind a small trait so that carrying out a plan can
/// be exercised against a fake.
pub(super) trait AppWriter: Sync {
    /// Creates an Application.
    fn create(&self, app: &Application) -> impl Future<Output = Result<(), String>> + Send;
    /// Replaces what the set controls of an existing Application.
    fn update(&self, name: &str, app: &Application) -> impl Future<Output = Result<(), String>> + Send;
    /// Deletes an Application, first removing the resources finalizer with `keep_resources`.
    fn delete(&self, name: &str, keep_resources: bool) -> impl Future<Output = Result<(), String>> + Send;
}

/// The Applications of one namespace on the API server.
struct KubeApps(Api<Application>);

impl AppWriter for KubeApps {
    async fn create(&self, app: &Application) -> Result<(), String> {
        create(&self.0, app).await
    }

    async fn update(&self, name: &str, app: &Application) -> Result<(), String> {
        update(&self.0, name, app).await
    }

    async fn delete(&self, name: &str, keep_resources: bool) -> Result<(), String> {
        delete(&self.0, name, keep_resources).await
    }
}

/// Carries out the plan, up to [`PARALLEL_WRITES`] writes at a time; each write that fails is one error (the
/// others still happen). Created Applications get the set's owner reference.
async fn execute(set: &ApplicationSet, apps: &impl AppWriter, actions: Vec<AppAction>) -> Vec<Failure> {
    let key = set_key(set);
    let writes = actions.into_iter().map(|action| {
        let key = &key;
        async move {
            let (reason, result) = write(set, apps, key, action).await;
            result.err().map(|message| {
                warn!(applicationset = %key, message, "writing an application failed");
                failure(reason, message)
            })
        }
    });
    futures::stream::iter(writes)
        .buffer_unordered(PARALLEL_WRITES)
        .filter_map(|f| async move { f })
        .collect()
        .await
}

/// One write of the plan, and the reason its failure is reported under.
async fn write(
    set: &ApplicationSet,
    apps: &impl AppWriter,
    key: &str,
    action: AppAction,
) -> (Reason, Result<(), String>) {
    match action {
        AppAction::Create(app) => {
            info!(applicationset = %key, application = %app.name_any(), "creating application");
            let app = owned::with_owner(app, set);
            (Reason::CreateApplicationError, apps.create(&app).await)
        }
        AppAction::Update { name, app } => {
            info!(applicationset = %key, application = %name, "updating application");
            (Reason::UpdateApplicationError, apps.update(&name, &app).await)
        }
        AppAction::Delete { name, keep_resources } => {
            info!(applicationset = %key, application = %name, keep_resources, "deleting application");
            (
                Reason::DeleteApplicationError,
                apps.delete(&name, keep_resources).await,
            )
        }
    }
}

async fn create(apps: &Api<Application>, app: &Application) -> Result<(), String> {
    match apps.create(&PostParams::default(), app).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Err(format!(
            "application {} already exists and is not owned by this ApplicationSet",
            app.name_any()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Replaces what the set controls (spec, labels, annotations, finalizers, owner) and nothing else: the
/// status and the operation an Application controller or a user wrote stay.
async fn update(apps: &Api<Application>, name: &str, app: &Application) -> Result<(), String> {
    let meta = &app.metadata;
    let ops = json!([
        {"op": "add", "path": "/spec", "value": app.spec},
        {"op": "add", "path": "/metadata/labels", "value": meta.labels.clone().unwrap_or_default()},
        {"op": "add", "path": "/metadata/annotations", "value": meta.annotations.clone().unwrap_or_default()},
        {"op": "add", "path": "/metadata/finalizers", "value": meta.finalizers.clone().unwrap_or_default()},
        {"op": "add", "path": "/metadata/ownerReferences", "value": meta.owner_references.clone().unwrap_or_default()},
    ]);
    let mut ops = ops;
    if let (Some(op), Some(list)) = (&app.operation, ops.as_array_mut()) {
        list.push(json!({"op": "add", "path": "/operation", "value": op}));
    }
    let patch: json_patch::Patch = serde_json::from_value(ops).map_err(|e| e.to_string())?;
    apps.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

async fn delete(apps: &Api<Application>, name: &str, keep_resources: bool) -> Result<(), String> {
    if keep_resources {
        let current = apps.get_opt(name).await.map_err(|e| e.to_string())?;
        if let Some(current) = current {
            let kept: Vec<String> = current
                .finalizers()
                .iter()
                .filter(|f| !appset_render::is_resources_finalizer(f))
                .cloned()
                .collect();
            if kept.len() != current.finalizers().len() {
                let patch =
                    json!({"metadata": {"finalizers": kept, "resourceVersion": current.resource_version()}});
                apps.patch(name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    match apps.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// Writes the conditions and the Applications' status, only when they change.
async fn write_status(set: &ApplicationSet, ctx: &SetContext, failed: Option<&Failure>) -> Result<(), Error> {
    let current = set.status.clone().unwrap_or_default();
    let owned = owned_apps(set, &ctx.apps);
    let outcome = match failed {
        None => Outcome::UpToDate,
        Some(f) => Outcome::Failed {
            reason: f.reason,
            message: f.message.clone(),
        },
    };
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now());
    let previous = current.conditions.as_deref().unwrap_or_default();
    let conditions = appset_render::conditions(&outcome, previous, &now);
    let next = ApplicationSetStatus {
        conditions: serde_json::to_value(conditions)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok()),
        resources: Some(owned::resources(&owned.iter().map(|a| &**a).collect::<Vec<_>>()))
            .filter(|r| !r.is_empty()),
        application_status: current.application_status.clone(),
    };
    if next == current {
        return Ok(());
    }
    let api: Api<ApplicationSet> =
        Api::namespaced(ctx.apps.client().clone(), &set.namespace().unwrap_or_default());
    let patch = json!({"status": crate::status_patch::merge_diff(
        &serde_json::to_value(&current).unwrap_or_default(),
        &serde_json::to_value(&next).unwrap_or_default(),
    )});
    api.patch_status(&set.name_any(), &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}
