//! The Application controller's I/O: the watch of Applications (and of the kinds they manage, metadata only,
//! to notice drift), one reconcile per app (targets → live state → comparison → operation step → status →
//! automated sync) and the status write.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;
use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde_json::{Value, json};
use sluice_crds::application::{AppProject, AppProjectSpec, Application, ApplicationStatus};
use sluice_gitops::{
    diff::IgnoreRules,
    policy::{self, AutoSync, AutoSyncInput, RefreshKind, SelfHealBackoff},
    project, render, repo,
    source::{Credentials, GitCache},
    tracking,
    windows::{self, WindowTarget},
};
use tracing::{info, warn};

use super::{
    cluster::{Cluster, KubeCluster, ObjectKey},
    compare,
    destinations::Destination,
    observe,
    operation::{self, phase},
    status, sync,
};
use crate::events::EventWriter;

/// Flags of the Application controller.
#[derive(Clone, Debug)]
pub struct Config {
    /// The namespace Argo CD runs in: Applications there are tracked by their bare name, and repository
    /// Secrets are read there.
    pub control_plane_namespace: String,
    /// Further namespaces whose Applications are reconciled (`*` for all).
    pub application_namespaces: Vec<String>,
    /// How often each app compares with the latest commit (with up to 10 % jitter).
    pub resync: Duration,
    /// Where repository mirrors and checkouts live.
    pub repo_cache: PathBuf,
    /// The render tools.
    pub tools: render::Tools,
}

impl Config {
    fn watches(&self, namespace: &str) -> bool {
        namespace == self.control_plane_namespace
            || self
                .application_namespaces
                .iter()
                .any(|n| n == "*" || n == namespace)
    }

    pub(super) fn all_namespaces(&self) -> bool {
        !self.application_namespaces.is_empty()
    }
}

/// Errors of one reconcile; retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// The destination cluster refused or failed a request.
    #[error("{0}")]
    Cluster(#[from] super::cluster::ClusterError),
}

/// The targets last rendered for an app, and when to look at Git again.
#[derive(Clone)]
struct Snapshot {
    targets: observe::Targets,
    spec: String,
    due: Instant,
}

/// What every reconcile shares.
pub struct Context {
    client: Client,
    destinations: super::destinations::Destinations,
    git: GitCache,
    renders: render::RenderCache,
    config: Config,
    events: EventWriter,
    diffs: observe::DiffCache,
    snapshots: Mutex<HashMap<String, Snapshot>>,
    resolved: Mutex<HashMap<(String, String), (String, Instant)>>,
    secrets: Store<Secret>,
    projects: Store<AppProject>,
    apps: Store<Application>,
    /// Apps a webhook asked to refresh now.
    pub(super) pushed: Mutex<HashSet<String>>,
    failures: crate::backoff::Backoff,
    written: Mutex<HashMap<String, u64>>,
    metrics: Arc<crate::metrics::Metrics>,
    gate: crate::ready::Gate,
}

impl Context {
    /// The Applications in the cache.
    pub fn applications(&self) -> Vec<Arc<Application>> {
        self.apps.state()
    }

    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    pub(super) fn config(&self) -> &Config {
        &self.config
    }

    pub(super) fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    pub(super) fn gate(&self) -> &crate::ready::Gate {
        &self.gate
    }

    pub(super) fn git(&self) -> &GitCache {
        &self.git
    }

    pub(super) fn destinations(&self) -> &super::destinations::Destinations {
        &self.destinations
    }
}

fn app_key(app: &Application) -> String {
    format!("{}/{}", app.namespace().unwrap_or_default(), app.name_any())
}

/// Runs the controller (and, with an address, the webhook endpoint) until `shutdown`.
pub async fn run(
    client: Client,
    config: Config,
    webhook_addr: Option<std::net::SocketAddr>,
    metrics: Arc<crate::metrics::Metrics>,
    readiness: Arc<crate::ready::Readiness>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let cp = config.control_plane_namespace.clone();
    let apps_api: Api<Application> = if config.all_namespaces() {
        Api::all(client.clone())
    } else {
        Api::namespaced(client.clone(), &cp)
    };
    let gate = readiness.gate(&[
        "applications",
        "repository-secrets",
        "cluster-secrets",
        "app-projects",
    ]);
    let (app_store, app_events) = cached(apps_api, watcher::Config::default(), &gate, "applications");
    let (touched_tx, touched_rx) = tokio::sync::mpsc::unbounded_channel();
    let app_stream = app_events.inspect(move |r| notify_owner(r, &touched_tx));
    let repositories =
        watcher::Config::default().labels("argocd.argoproj.io/secret-type in (repository,repo-creds)");
    let (secret_store, secret_stream) = cached(
        Api::<Secret>::namespaced(client.clone(), &cp),
        repositories,
        &gate,
        "repository-secrets",
    );
    let clusters = watcher::Config::default().labels(sluice_gitops::clusters::CLUSTER_SELECTOR);
    let (cluster_store, cluster_stream) = cached(
        Api::<Secret>::namespaced(client.clone(), &cp),
        clusters,
        &gate,
        "cluster-secrets",
    );
    let (project_store, project_stream) = cached(
        Api::<AppProject>::namespaced(client.clone(), &cp),
        watcher::Config::default(),
        &gate,
        "app-projects",
    );
    let (trigger_tx, trigger_rx) = tokio::sync::mpsc::unbounded_channel::<ObjectRef<Application>>();
    tokio::spawn(reconcile_project_apps(
        project_stream,
        app_store.clone(),
        trigger_tx.clone(),
    ));
    let destinations =
        super::destinations::Destinations::new(client.clone(), cluster_store, trigger_tx.clone(), cp.clone());
    let ctx = Arc::new(Context {
        destinations,
        git: GitCache::new(config.repo_cache.clone(), Duration::from_secs(90), 8),
        renders: render::RenderCache::new(512),
        events: EventWriter::new(client.clone(), "argocd-application-controller"),
        diffs: Default::default(),
        snapshots: Default::default(),
        resolved: Default::default(),
        secrets: secret_store,
        projects: project_store,
        apps: app_store.clone(),
        pushed: Default::default(),
        failures: Default::default(),
        written: Default::default(),
        metrics,
        gate: gate.clone(),
        client,
        config,
    });
    let (pushes_tx, pushes_rx) = tokio::sync::mpsc::unbounded_channel();
    if let Some(addr) = webhook_addr {
        serve_webhook(&ctx, addr, trigger_tx.clone(), pushes_tx, cp);
    }
    let (clusters_tx, clusters_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(reconcile_cluster_apps(
        cluster_stream,
        ctx.clone(),
        trigger_tx.clone(),
        clusters_tx,
    ));
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    tokio::spawn(super::appset::run_when_installed(
        ctx.clone(),
        super::appset::Wakes {
            touched: touched_rx,
            clusters: clusters_rx,
            pushes: pushes_rx,
        },
        shutdown.clone(),
    ));
    let triggers = stream_from(trigger_rx);
    let secrets_drained = secret_stream.for_each(|_| async {});
    tokio::spawn(secrets_drained);
    Controller::for_stream(app_stream, app_store)
        .reconcile_all_on(gate.opening())
        .reconcile_on(triggers)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                crate::backoff::log_stream_error("application", &e);
            }
        })
        .await;
}

/// A lean watch cache of `api` (no managedFields) tracked by the readiness gate as `name`: its store, and
/// the objects its events touch.
fn cached<K>(
    api: Api<K>,
    config: watcher::Config,
    gate: &crate::ready::Gate,
    name: &'static str,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + use<K>,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let events = watcher(api, config)
        .default_backoff()
        .modify(|o| o.managed_fields_mut().clear())
        .reflect(writer);
    (store, gate.track(name, events).touched_objects())
}

/// Serves the Git webhook on `addr`: pushed apps are sent to `trigger`, the pushes to the ApplicationSets.
fn serve_webhook(
    ctx: &Arc<Context>,
    addr: std::net::SocketAddr,
    trigger: tokio::sync::mpsc::UnboundedSender<ObjectRef<Application>>,
    appsets: tokio::sync::mpsc::UnboundedSender<sluice_gitops::webhook::Push>,
    namespace: String,
) {
    let hook = super::webhook::Webhook {
        ctx: ctx.clone(),
        trigger,
        appsets,
        namespace,
        client: ctx.client.clone(),
    };
    tokio::spawn(async move {
        if let Err(e) = super::webhook::serve(hook, addr).await {
            warn!(error = %e, "the webhook endpoint stopped");
        }
    });
}

/// Every change of an AppProject reconciles the apps of that project (its rules may have changed).
async fn reconcile_project_apps(
    projects: impl futures::Stream<Item = Result<AppProject, watcher::Error>>,
    apps: Store<Application>,
    trigger: tokio::sync::mpsc::UnboundedSender<ObjectRef<Application>>,
) {
    futures::pin_mut!(projects);
    while let Some(changed) = projects.next().await {
        let Ok(changed) = changed else { continue };
        let name = changed.name_any();
        for app in apps.state() {
            if project_name(&app) == name {
                let _ = trigger.send(ObjectRef::from_obj(&*app));
            }
        }
    }
}

/// An Application controlled by an ApplicationSet changed or went: that set is reconciled (it may have to
/// recreate it, and its status lists it).
fn notify_owner(
    event: &Result<Application, watcher::Error>,
    touched: &tokio::sync::mpsc::UnboundedSender<ObjectRef<sluice_crds::applicationset::ApplicationSet>>,
) {
    if let Ok(app) = event
        && let Some(owner) = super::appset::owned::owner_name(app)
    {
        let _ = touched.send(ObjectRef::new(owner).within(&app.namespace().unwrap_or_default()));
    }
}

/// A cluster Secret added, changed or removed reconciles every app: any of them may now resolve its
/// destination to another cluster, or to none.
async fn reconcile_cluster_apps(
    secrets: impl futures::Stream<Item = Result<Secret, watcher::Error>>,
    ctx: Arc<Context>,
    trigger: tokio::sync::mpsc::UnboundedSender<ObjectRef<Application>>,
    appsets: tokio::sync::mpsc::UnboundedSender<()>,
) {
    futures::pin_mut!(secrets);
    while let Some(changed) = secrets.next().await {
        if changed.is_err() {
            continue;
        }
        ctx.destinations.log_broken();
        let _ = appsets.send(());
        for app in ctx.apps.state() {
            let _ = trigger.send(ObjectRef::from_obj(&*app));
        }
    }
}

/// The targets the project does not permit (placed targets: a cluster-scoped one has no namespace).
fn outside_project(
    app: &Application,
    (name, spec): &(String, AppProjectSpec),
    targets: &[Value],
) -> Vec<ObjectKey> {
    let (server, cluster) = project::resolve_destination(&app.spec.destination);
    targets
        .iter()
        .filter(|t| {
            let namespaced = t
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            project::object_violation(name, spec, t, namespaced, (&server, &cluster)).is_some()
        })
        .map(ObjectKey::of)
        .collect()
}

/// What the project's sync windows match the app by.
fn window_target(app: &Application) -> WindowTarget<'_> {
    let d = &app.spec.destination;
    WindowTarget {
        application: app.metadata.name.as_deref().unwrap_or(""),
        namespace: d.namespace.as_deref().unwrap_or(""),
        cluster: d.server.as_deref().unwrap_or(""),
        cluster_name: d.name.as_deref().unwrap_or(""),
    }
}

/// How long until the app's sync windows next open or close (None: never within a year).
fn until_windows_change(app: &Application, spec: &AppProjectSpec, now: Timestamp) -> Option<Duration> {
    let windows = spec.sync_windows.as_deref().unwrap_or_default();
    let at = windows::next_change(windows, &window_target(app), now)?;
    Some(
        Duration::from_millis(u64::try_from(at.duration_since(now).as_millis()).unwrap_or(0))
            + Duration::from_millis(500),
    )
}

/// `spec.project`, `default` when empty.
fn project_name(app: &Application) -> &str {
    if app.spec.project.is_empty() {
        project::DEFAULT_PROJECT
    } else {
        &app.spec.project
    }
}

/// The app's AppProject (name and spec): from the cache, Argo CD's built-in `default` when there is no
/// AppProject of that name, else the InvalidSpecError message.
pub(super) fn project_of(app: &Application, ctx: &Context) -> Result<(String, AppProjectSpec), String> {
    let name = project_name(app);
    let key = ObjectRef::new(name).within(&ctx.config.control_plane_namespace);
    match ctx.projects.get(&key) {
        Some(p) => Ok((name.to_string(), p.spec.clone())),
        None if name == project::DEFAULT_PROJECT => Ok((name.to_string(), project::default_project())),
        None => Err(project::missing_project(name)),
    }
}

/// The items sent to `rx`, as a stream.
pub(super) fn stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn error_policy(app: Arc<Application>, err: &Error, ctx: Arc<Context>) -> Action {
    let key = app_key(&app);
    let reason = match err {
        Error::Kube(e) => crate::backoff::kube_reason(e),
        Error::Cluster(_) => "Cluster",
    };
    ctx.metrics.reconcile_failed("application", reason);
    let delay = ctx.failures.failed(&key);
    warn!(application = %key, reason, error = %err, retry_in = ?delay, "reconcile failed; retrying");
    Action::requeue(delay)
}

async fn reconcile(app: Arc<Application>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.gate.is_open() {
        // Everything is reconciled when the gate opens.
        return Ok(Action::await_change());
    }
    let ns = app.namespace().unwrap_or_default();
    if !ctx.config.watches(&ns) || skip_reconcile(&app) {
        return Ok(Action::await_change());
    }
    if stale(&ctx, &app) {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    if app.metadata.deletion_timestamp.is_some() {
        // The managed objects are watched: their deletion reconciles the app again; the requeue is a floor.
        let inventory = observe::inventory(&app);
        let home = &ctx.destinations.home().cluster;
        let done = match ctx.destinations.of(&app.spec.destination).await {
            Ok(dest) => {
                super::deletion::step(&dest.cluster, home, &app, &inventory, &instance(&app, &ctx)).await?
            }
            Err(message) => {
                // Argo CD drops the resource entries of a cluster it no longer knows.
                warn!(application = %app_key(&app), message, "destination unknown: the app is deleted without its resources");
                super::deletion::release(home, &app).await?;
                true
            }
        };
        return Ok(if done {
            Action::await_change()
        } else {
            Action::requeue(Duration::from_secs(5))
        });
    }
    let started = Instant::now();
    let result = reconcile_app(&app, &ctx).await;
    ctx.metrics.app_reconcile.observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.failures.succeeded(&app_key(&app));
    }
    result
}

fn skip_reconcile(app: &Application) -> bool {
    app.annotations()
        .get("argocd.argoproj.io/skip-reconcile")
        .is_some_and(|v| v == "true")
}

fn instance(app: &Application, ctx: &Context) -> String {
    tracking::instance_name(
        &app.name_any(),
        &app.namespace().unwrap_or_default(),
        &ctx.config.control_plane_namespace,
    )
}

fn spec_digest(app: &Application) -> String {
    observe::digest(&json!({
        "source": app.spec.source,
        "sources": app.spec.sources,
        "destination": app.spec.destination,
        "ignoreDifferences": app.spec.ignore_differences,
    }))
}

async fn reconcile_app(app: &Application, ctx: &Context) -> Result<Action, Error> {
    let key = app_key(app);
    let refresh = policy::refresh_kind(app.metadata.annotations.as_ref());
    if let Err(message) = status::validate(app) {
        return invalid_spec(app, ctx, &message).await;
    }
    let project = match project_of(app, ctx) {
        Ok(p) => p,
        Err(message) => return invalid_spec(app, ctx, &message).await,
    };
    let violations = project::spec_violations(&project.0, &project.1, app);
    if !violations.is_empty() {
        return invalid_spec(app, ctx, &violations.join("; ")).await;
    }
    let dest = match ctx.destinations.of(&app.spec.destination).await {
        Ok(d) => d,
        Err(message) => {
            let message = format!(
                "application destination spec for {} is invalid: {message}",
                app.name_any()
            );
            return invalid_spec(app, ctx, &message).await;
        }
    };
    let targets = match current_targets(app, ctx, &dest, refresh).await {
        Ok(t) => t,
        Err(message) => return comparison_failed(app, ctx, &message, refresh.is_some()).await,
    };
    let rules = match IgnoreRules::compile(app.spec.ignore_differences.as_deref().unwrap_or_default()) {
        Ok(r) => r,
        Err(e) => return comparison_failed(app, ctx, &e.to_string(), refresh.is_some()).await,
    };
    let instance = instance(app, ctx);
    let inventory = observe::inventory(app);
    let live = observe::live_state(
        &dest.cluster,
        &ctx.diffs,
        &key,
        &instance,
        &targets.objects,
        &inventory,
        &rules,
    )
    .await?;
    dest.kinds.watch(&targets.objects, &inventory).await;
    let comparison = compare::compare(&live.pairs);
    let mut next = status::with_comparison(app, &targets, &comparison, &live.errors, Timestamp::now());
    status::mark_outside_project(&mut next, &outside_project(app, &project, &targets.objects));
    status::with_warning(
        &mut next,
        status::PLAIN_SECRET_WARNING,
        targets.plain_secrets.as_deref(),
        Timestamp::now(),
    );
    let mut finished = false;
    let mut requeue = None;
    if let Some(run) = operation_to_run(app) {
        let scope = Scope {
            project: &project,
            dest: &dest,
        };
        let outcome = run_operation(app, ctx, run, &targets, &live, &rules, scope).await?;
        requeue = outcome.requeue;
        finished = outcome.finished;
        status::with_operation(&mut next, app, outcome.state, Timestamp::now());
    }
    write_status(app, ctx, &next, finished, refresh.is_some()).await?;
    if finished {
        announce_finished(app, ctx, &next).await;
    }
    let auto = auto_sync(app, ctx, &next, finished, &project.1).await?;
    let due = ctx
        .snapshots
        .lock()
        .ok()
        .and_then(|s| {
            s.get(&key)
                .map(|s| s.due.saturating_duration_since(Instant::now()))
        })
        .unwrap_or(ctx.config.resync);
    let wait = [requeue, auto, Some(due)]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(due);
    Ok(Action::requeue(wait.max(Duration::from_millis(200))))
}

/// The targets to compare with: the last rendered ones while they are fresh, else the latest commit's.
async fn current_targets(
    app: &Application,
    ctx: &Context,
    dest: &Destination,
    refresh: Option<RefreshKind>,
) -> Result<observe::Targets, String> {
    let key = app_key(app);
    let spec = spec_digest(app);
    let pushed = ctx.pushed.lock().map(|mut p| p.remove(&key)).unwrap_or(false);
    let cached = ctx.snapshots.lock().ok().and_then(|s| s.get(&key).cloned());
    if let Some(snapshot) = &cached
        && refresh.is_none()
        && !pushed
        && snapshot.spec == spec
        && snapshot.due > Instant::now()
    {
        return Ok(snapshot.targets.clone());
    }
    if refresh == Some(RefreshKind::Hard) {
        ctx.renders.invalidate_all();
        ctx.diffs.forget(&key);
    }
    let source = observe::source(app)?;
    let fresh = refresh.is_some() || pushed || cached.as_ref().is_none_or(|c| c.spec != spec);
    let revision = resolve(
        ctx,
        &source.repo_url,
        source.target_revision.as_deref().unwrap_or("HEAD"),
        fresh,
    )
    .await?;
    let targets = targets_at(app, ctx, dest, &revision).await?;
    let due = Instant::now()
        + ctx.config.resync
        + crate::backoff::jitter(ctx.config.resync, crate::backoff::seed_of(&key));
    if let Ok(mut s) = ctx.snapshots.lock() {
        s.insert(
            key,
            Snapshot {
                targets: targets.clone(),
                spec,
                due,
            },
        );
    }
    Ok(targets)
}

pub(super) fn credentials(ctx: &Context, url: &str) -> Credentials {
    let secrets: Vec<Secret> = ctx.secrets.state().iter().map(|s| (**s).clone()).collect();
    repo::credentials_for(url, &secrets).unwrap_or_default()
}

/// The commit `revision` names: shared between apps for a while, so that many apps of one repository cost
/// one `ls-remote` per resync; `fresh` asks git again.
pub(super) async fn resolve(ctx: &Context, url: &str, revision: &str, fresh: bool) -> Result<String, String> {
    let cache_key = (url.to_string(), revision.to_string());
    let ttl = (ctx.config.resync / 2).max(Duration::from_secs(1));
    if !fresh
        && let Some((sha, at)) = ctx.resolved.lock().ok().and_then(|r| r.get(&cache_key).cloned())
        && at.elapsed() < ttl
    {
        return Ok(sha);
    }
    let creds = credentials(ctx, url);
    let sha = ctx.git.resolve(url, revision, &creds).await.map_err(|e| {
        format!("Failed to load target state: failed to generate manifest for source 1 of 1: rpc error: {e}")
    })?;
    if let Ok(mut r) = ctx.resolved.lock() {
        if r.len() > 10_000 {
            r.clear();
        }
        r.insert(cache_key, (sha.clone(), Instant::now()));
    }
    Ok(sha)
}

/// The app's manifests at commit `sha`: checked out, rendered (cached), placed and tracked.
async fn targets_at(
    app: &Application,
    ctx: &Context,
    dest: &Destination,
    sha: &str,
) -> Result<observe::Targets, String> {
    let source = observe::source(app)?;
    let creds = credentials(ctx, &source.repo_url);
    let fail = |e: String| {
        format!("Failed to load target state: failed to generate manifest for source 1 of 1: rpc error: {e}")
    };
    let namespace = app.spec.destination.namespace.clone().unwrap_or_default();
    let render_ctx = render::RenderContext {
        app_name: app.name_any(),
        namespace: namespace.clone(),
        kube_version: None,
        api_versions: Vec::new(),
    };
    let cache_key = render::RenderCache::key(&source.repo_url, sha, source, &render_ctx);
    let rendered = match ctx.renders.get(&cache_key) {
        Some(r) => r,
        None => {
            let dir = ctx
                .git
                .checkout(&source.repo_url, sha, &creds)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let r = render::render(&ctx.config.tools, &dir, source, &render_ctx)
                .await
                .map_err(|e| fail(e.to_string()))?;
            ctx.renders.insert(cache_key, r.clone());
            r
        }
    };
    let objects = decrypted(app, ctx, rendered.objects.clone())
        .await
        .map_err(fail)?;
    let scopes = observe::scopes(&dest.cluster, &objects)
        .await
        .map_err(|e| fail(e.to_string()))?;
    Ok(observe::Targets {
        revision: sha.to_string(),
        source_type: rendered.source_type.as_str().to_string(),
        objects: observe::place(objects, &namespace, &instance(app, ctx), &scopes),
        plain_secrets: sluice_gitops::secrets::warning(&rendered.plain_secrets),
    })
}

/// The rendered objects with their SOPS-encrypted documents decrypted by the age identities of the Secret
/// the app's `sluice.dev/decryption-secret` annotation names (in the app's namespace). The render cache
/// keeps the ciphertext; the plaintext lives only in the targets compared and applied, and no error names
/// a value.
async fn decrypted(app: &Application, ctx: &Context, objects: Vec<Value>) -> Result<Vec<Value>, String> {
    if !render::has_encrypted(&objects) {
        return Ok(objects);
    }
    let keys = match app.annotations().get(render::DECRYPTION_SECRET_ANNOTATION) {
        None => None,
        Some(name) => {
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
            let secret = api
                .get_opt(name)
                .await
                .map_err(|e| format!("reading the decryption Secret {name}: {e}"))?
                .ok_or_else(|| format!("the decryption Secret {name} does not exist"))?;
            let keys = sluice_gitops::sops::AgeKeys::from_secret(&secret)
                .map_err(|e| format!("the decryption Secret {name}: {e}"))?;
            Some(keys)
        }
    };
    render::reveal_sops(objects, keys.as_ref())
}

/// Records the InvalidSpecError; an operation asked for (or running) meanwhile ends in Error with the same
/// message, as Argo CD ends a sync of an app whose spec it cannot act on, instead of waiting forever.
async fn invalid_spec(app: &Application, ctx: &Context, message: &str) -> Result<Action, Error> {
    let mut next = status::with_condition(app, "InvalidSpecError", message, Timestamp::now());
    let ended = operation_to_run(app)
        .map(|(state, _)| operation::conclude(&state, phase::ERROR, message, Timestamp::now()));
    let finished = ended.is_some();
    if let Some(state) = ended {
        status::with_operation(&mut next, app, state, Timestamp::now());
    }
    write_status(app, ctx, &next, finished, false).await?;
    if finished {
        announce_finished(app, ctx, &next).await;
    }
    warn!(application = %app_key(app), message, "invalid application spec");
    Ok(Action::await_change())
}

async fn comparison_failed(
    app: &Application,
    ctx: &Context,
    message: &str,
    refreshed: bool,
) -> Result<Action, Error> {
    let next = status::with_condition(app, "ComparisonError", message, Timestamp::now());
    write_status(app, ctx, &next, false, refreshed).await?;
    warn!(application = %app_key(app), message, "comparison failed");
    let key = app_key(app);
    let failures = ctx.failures.count(&key);
    let wait = crate::backoff::delay(failures + 2, crate::backoff::seed_of(&key));
    Ok(Action::requeue(wait.min(ctx.config.resync)))
}

/// An operation to start or continue: `(state, terminating)`.
fn operation_to_run(app: &Application) -> Option<(sluice_crds::application::OperationState, bool)> {
    let current = app.status.as_ref().and_then(|s| s.operation_state.clone());
    match (current, &app.operation) {
        (Some(state), _) if state.phase == phase::TERMINATING => Some((state, true)),
        (Some(state), _) if state.phase == phase::RUNNING => Some((state, false)),
        (_, Some(op)) => Some((operation::begin(op, Timestamp::now()), false)),
        _ => None,
    }
}

/// Where an operation runs: the app's project and its destination.
#[derive(Clone, Copy)]
struct Scope<'a> {
    project: &'a (String, AppProjectSpec),
    dest: &'a Destination,
}

struct OperationOutcome {
    state: sluice_crds::application::OperationState,
    finished: bool,
    requeue: Option<Duration>,
}

/// Advances the operation by one step (or waits for its retry), returning the state to write.
async fn run_operation(
    app: &Application,
    ctx: &Context,
    (mut state, terminating): (sluice_crds::application::OperationState, bool),
    compared: &observe::Targets,
    live: &observe::LiveState,
    rules: &IgnoreRules,
    scope: Scope<'_>,
) -> Result<OperationOutcome, Error> {
    let ((project_name, project), dest) = (scope.project, scope.dest);
    if !terminating && let Some(wait) = status::retry_wait(&mut state, Timestamp::now()) {
        return Ok(OperationOutcome {
            state,
            finished: false,
            requeue: Some(wait),
        });
    }
    if !terminating && let Some(held) = held_by_windows(app, &mut state, project) {
        return Ok(held);
    }
    let revision = match sync_revision(app, ctx, &state, compared).await {
        Ok(r) => r,
        Err(message) => return Ok(conclude(app, state, phase::ERROR, &message)),
    };
    let (targets, lives) = if revision == compared.revision {
        (compared.clone(), lives_of(live))
    } else {
        let targets = match targets_at(app, ctx, dest, &revision).await {
            Ok(t) => t,
            Err(message) => return Ok(conclude(app, state, phase::ERROR, &message)),
        };
        let state_now = observe::live_state(
            &dest.cluster,
            &ctx.diffs,
            &app_key(app),
            &instance(app, ctx),
            &targets.objects,
            &observe::inventory(app),
            rules,
        )
        .await?;
        (targets, lives_of(&state_now))
    };
    if policy::SyncOptions::of_app(app).create_namespace() && state.sync_result.is_none() {
        ensure_namespace(app, &dest.cluster).await?;
    }
    let scopes = observe::scopes(&dest.cluster, &targets.objects).await?;
    let namespaced = |group: &str, kind: &str| {
        scopes
            .iter()
            .find(|((av, k), _)| k == kind && av.rsplit_once('/').map_or("", |(g, _)| g) == group)
            .is_none_or(|(_, ns)| *ns)
    };
    let synced: HashSet<_> = live
        .pairs
        .iter()
        .filter(|p| p.drift == compare::Drift::Synced)
        .map(|p| p.key.identity())
        .collect();
    let in_sync = |k: &ObjectKey| synced.contains(&k.identity());
    let (server, name) = (&dest.server, &dest.name);
    let violation = |obj: &Value| {
        let (group, kind) = (
            ObjectKey::of(obj).group,
            obj["kind"].as_str().unwrap_or("").to_string(),
        );
        project::object_violation(
            project_name,
            project,
            obj,
            namespaced(&group, &kind),
            (server, name),
        )
    };
    // Live objects outside the project are neither compared with nor pruned.
    let lives: Vec<Value> = lives.into_iter().filter(|l| violation(l).is_none()).collect();
    let planned = sync::task_states(&sync::StepInput {
        app,
        state: &state,
        targets: &targets.objects,
        lives: &lives,
        revision: &revision,
        namespaced: &namespaced,
        in_sync: &in_sync,
    });
    let mut tasks = match planned {
        Ok(t) => t,
        Err(message) => return Ok(conclude(app, state, phase::FAILED, &message)),
    };
    if sync::refuse_outside_project(&mut tasks, &violation) {
        state = operation::with_results(&state, &revision, app, &tasks);
        return Ok(conclude(app, state, phase::FAILED, project::INVALID_TASKS));
    }
    refresh_task_lives(&dest.cluster, &mut tasks).await?;
    let outcome = sync::step(&dest.cluster, app, &state.operation, tasks, terminating).await;
    tracing::debug!(
        application = %app_key(app),
        phase = outcome.phase,
        message = %outcome.message,
        tasks = ?outcome.tasks.iter().map(|t| (t.task.result_key(), t.task.live.is_some(), t.result.phase)).collect::<Vec<_>>(),
        "operation step"
    );
    state = operation::with_results(&state, &revision, app, &outcome.tasks);
    if outcome.phase == phase::RUNNING {
        state.message = Some(outcome.message);
        let wait = if outcome.applied {
            Duration::from_secs(2)
        } else {
            Duration::from_secs(1)
        };
        return Ok(OperationOutcome {
            state,
            finished: false,
            requeue: Some(wait),
        });
    }
    Ok(conclude(app, state, outcome.phase, &outcome.message))
}

/// An operation the project's sync windows hold back: Running with Argo CD's message until they allow it
/// (a manual sync passes a window with `manualSync`; a started one goes on through `syncOverrun`).
fn held_by_windows(
    app: &Application,
    state: &mut sluice_crds::application::OperationState,
    project: &AppProjectSpec,
) -> Option<OperationOutcome> {
    let windows = project.sync_windows.as_deref().unwrap_or_default();
    if windows.is_empty() {
        return None;
    }
    let now = Timestamp::now();
    let manual = state
        .operation
        .initiated_by
        .as_ref()
        .is_none_or(|i| i.automated != Some(true));
    let target = window_target(app);
    let allowed = match windows::check(windows, &target, manual, now) {
        Ok(true) => return None,
        Ok(false) if state.sync_result.is_some() => {
            windows::can_continue(windows, &target, manual, state.started_at.0, now)
        }
        Ok(false) => false,
        Err(e) => {
            state.message = Some(windows::blocked_message(Some(&e)));
            return Some(OperationOutcome {
                state: state.clone(),
                finished: false,
                requeue: None,
            });
        }
    };
    if allowed {
        return None;
    }
    state.message = Some(windows::BLOCKED.to_string());
    Some(OperationOutcome {
        state: state.clone(),
        finished: false,
        requeue: until_windows_change(app, project, now),
    })
}

fn conclude(
    app: &Application,
    state: sluice_crds::application::OperationState,
    phase: &str,
    message: &str,
) -> OperationOutcome {
    let now = Timestamp::now();
    let done = operation::conclude(&state, phase, message, now);
    match status::retry_marker(app, &done, now) {
        Some((marked, wait)) => OperationOutcome {
            state: marked,
            finished: false,
            requeue: Some(wait),
        },
        None => OperationOutcome {
            state: done,
            finished: true,
            requeue: None,
        },
    }
}

fn lives_of(live: &observe::LiveState) -> Vec<Value> {
    live.pairs.iter().filter_map(|p| p.live.clone()).collect()
}

/// Tasks that were started and have no live object read it again (hooks with generated names).
async fn refresh_task_lives(
    cluster: &KubeCluster,
    tasks: &mut [sluice_gitops::tasks::TaskState],
) -> Result<(), Error> {
    for state in tasks.iter_mut() {
        if state.task.live.is_some() || state.result.is_pending() {
            continue;
        }
        let Some(target) = &state.task.target else {
            continue;
        };
        let mut key = ObjectKey::of(target);
        key.namespace = state.task.namespace.clone();
        key.name = state.task.name.clone();
        if let Some(live) = cluster.get(&key).await? {
            state.health = sluice_gitops::health::health(&live).map(|h| (h.status.to_string(), h.message));
            state.task.live = Some(live);
        }
    }
    Ok(())
}

/// The commit the operation syncs: recorded at its first step, else the operation's revision (resolved),
/// else the compared one.
async fn sync_revision(
    app: &Application,
    ctx: &Context,
    state: &sluice_crds::application::OperationState,
    compared: &observe::Targets,
) -> Result<String, String> {
    if let Some(result) = &state.sync_result {
        return Ok(result.revision.clone());
    }
    let asked = state
        .operation
        .sync
        .as_ref()
        .and_then(|s| s.revision.clone())
        .unwrap_or_default();
    if asked.is_empty() || asked == compared.revision {
        return Ok(compared.revision.clone());
    }
    let source = observe::source(app)?;
    resolve(ctx, &source.repo_url, &asked, true).await
}

async fn ensure_namespace(app: &Application, cluster: &KubeCluster) -> Result<(), Error> {
    let Some(ns) = app
        .spec
        .destination
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
    else {
        return Ok(());
    };
    let meta = app
        .spec
        .sync_policy
        .as_ref()
        .and_then(|p| p.managed_namespace_metadata.clone());
    let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    if let Some(meta) = meta {
        obj["metadata"]["labels"] = json!(meta.labels.unwrap_or_default());
        obj["metadata"]["annotations"] = json!(meta.annotations.unwrap_or_default());
    }
    cluster.apply(&obj, Default::default()).await?;
    Ok(())
}

/// Writes the status when it changed (a merge patch of the difference), `operation: null` when the
/// operation finished, and drops the refresh annotation after a refresh.
async fn write_status(
    app: &Application,
    ctx: &Context,
    next: &ApplicationStatus,
    finished: bool,
    refreshed: bool,
) -> Result<(), Error> {
    let current = app.status.clone().unwrap_or_default();
    let mut patch = serde_json::Map::new();
    if *next != current {
        let mut next = next.clone();
        next.reconciled_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            Timestamp::now(),
        ));
        patch.insert(
            "status".into(),
            crate::status_patch::merge_diff(
                &serde_json::to_value(&current).unwrap_or_default(),
                &serde_json::to_value(&next).unwrap_or_default(),
            ),
        );
    }
    if finished {
        patch.insert("operation".into(), Value::Null);
    }
    if refreshed {
        patch.insert(
            "metadata".into(),
            json!({"annotations": {policy::ANNOTATION_REFRESH: null}}),
        );
    }
    if patch.is_empty() {
        return Ok(());
    }
    let api: Api<Application> = Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
    let written = api
        .patch(
            &app.name_any(),
            &PatchParams::default(),
            &Patch::Merge(Value::Object(patch)),
        )
        .await?;
    remember_written(ctx, &written);
    Ok(())
}

fn resource_version(app: &Application) -> u64 {
    app.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Remembers the resourceVersion a write produced, so that a reconcile of an older cached copy waits for
/// the watch to catch up instead of acting on a status it already replaced.
fn remember_written(ctx: &Context, written: &Application) {
    if let Ok(mut w) = ctx.written.lock() {
        if w.len() > 100_000 {
            w.clear();
        }
        w.insert(app_key(written), resource_version(written));
    }
}

/// Whether the cached app is older than the controller's own last write of it.
fn stale(ctx: &Context, app: &Application) -> bool {
    let written = ctx
        .written
        .lock()
        .ok()
        .and_then(|w| w.get(&app_key(app)).copied());
    written.is_some_and(|rv| resource_version(app) < rv)
}

async fn announce_finished(app: &Application, ctx: &Context, next: &ApplicationStatus) {
    let Some(state) = &next.operation_state else {
        return;
    };
    let ok = state.phase == phase::SUCCEEDED;
    let message = state.message.clone().unwrap_or_default();
    // Argo CD gives both outcomes the reason OperationCompleted; a failure is a Warning event.
    let reason = "OperationCompleted";
    let text = if ok {
        format!(
            "Sync operation to {} succeeded",
            state
                .sync_result
                .as_ref()
                .map(|r| r.revision.as_str())
                .unwrap_or("")
        )
    } else {
        format!(
            "Sync operation to {} failed: {message}",
            state
                .sync_result
                .as_ref()
                .map(|r| r.revision.as_str())
                .unwrap_or("")
        )
    };
    info!(application = %app_key(app), phase = %state.phase, message, "operation finished");
    if let Err(e) = ctx.events.publish(&app.object_ref(&()), !ok, reason, &text).await {
        warn!(error = %e, "writing an event failed");
    }
}

/// Starts an automated sync when the policy says so; returns when to look again (self-heal backoff).
async fn auto_sync(
    app: &Application,
    ctx: &Context,
    next: &ApplicationStatus,
    finished: bool,
    project: &AppProjectSpec,
) -> Result<Option<Duration>, Error> {
    if finished || operation::in_progress(app) || app.operation.is_some() {
        return Ok(None);
    }
    let Some(sync) = next.sync.as_ref() else {
        return Ok(None);
    };
    let mut view = app.clone();
    view.status = Some(next.clone());
    let resources = next.resources.clone().unwrap_or_default();
    let backoff = SelfHealBackoff::default();
    let now = Timestamp::now();
    let windows = project.sync_windows.as_deref().unwrap_or_default();
    let input = AutoSyncInput {
        sync,
        resources: &resources,
        revision_changed: true,
        sync_window_open: windows::can_sync(windows, &window_target(app), false, now),
        self_heal: &backoff,
        now,
    };
    match policy::auto_sync(&view, &input) {
        AutoSync::Skip(policy::AutoSyncSkip::SyncWindowClosed) => {
            tracing::debug!(application = %app_key(app), "{}", policy::AutoSyncSkip::SyncWindowClosed);
            Ok(until_windows_change(app, project, now))
        }
        AutoSync::Skip(skip) => {
            tracing::debug!(application = %app_key(app), "{skip}");
            Ok(skip.requeue_after())
        }
        AutoSync::Refuse(message) => {
            let refused = status::with_condition(&view, "SyncError", &message, Timestamp::now());
            write_status(&view, ctx, &refused, false, false).await?;
            Ok(None)
        }
        AutoSync::Sync(op) => {
            let api: Api<Application> =
                Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
            let patch = json!({"operation": op.operation});
            let written = api
                .patch(&app.name_any(), &PatchParams::default(), &Patch::Merge(patch))
                .await?;
            remember_written(ctx, &written);
            info!(application = %app_key(app), "{}", op.message);
            let _ = ctx
                .events
                .publish(&app.object_ref(&()), false, "OperationStarted", &op.message)
                .await;
            Ok(Some(Duration::from_millis(200)))
        }
    }
}
