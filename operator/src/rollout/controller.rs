//! The Rollout controller's I/O: watches, observation, executing a plan's actions and writing the status.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, ReplicaSet},
        core::v1::{Pod, Service},
    },
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{
        ApiResource, DynamicObject, EvictParams, GroupVersionKind, ListParams, PartialObjectMeta, Patch,
        PatchParams, PostParams,
    },
    runtime::{
        Controller, WatchStreamExt,
        controller::Action as Requeue,
        reflector::{self, Store},
        watcher,
    },
};
use serde_json::{Value, json};
use sluice_analysis::Phase;
use sluice_crds::{
    analysis::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate},
    experiment::Experiment,
    rollout::{IstioDestinationRule, PodTemplateMetadata, Rollout},
};
use sluice_traffic::istio;

use crate::{events::EventWriter, packed::Packed};
use tracing::{info, warn};

use super::{
    DESIRED_REPLICAS_ANNOTATION, HASH_LABEL, MANAGED_BY_ANNOTATION, REVISION_ANNOTATION,
    SCALE_DOWN_DEADLINE_ANNOTATION, ephemeral,
    hash::{OwnedTemplate, current_hash, pod_template_hash},
    plan::{self, Action, Observed, RsInfo, ServiceState, WorkloadState},
};

/// Errors of one reconcile; each is retried with backoff and never stops the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// The traffic router could not be changed as planned.
    #[error("traffic routing: {0}")]
    Traffic(String),
    /// The new ReplicaSet's name is taken by one that is not this Rollout's.
    #[error("ReplicaSet {0} exists and is not this Rollout's")]
    HashCollision(String),
    /// A cached object could not be decoded.
    #[error("cache: {0}")]
    Cache(String),
}

/// What every reconcile shares.
pub struct Context {
    /// The client.
    pub client: Client,
    /// Cache of the ReplicaSets that carry the pod-template-hash label.
    pub replica_sets: Store<Packed<ReplicaSet>>,
    /// Cache of the Services, trimmed to their selectors and annotations.
    pub services: Store<Service>,
    /// Caches of the routers' objects and the DestinationRules.
    pub routed: super::drift::RoutedCaches,
    /// Event writer.
    pub events: EventWriter,
    /// What building the traffic routers needs (`--istio-api-version`, `--traffic-split-api-version`).
    pub routing: super::routing::RouterConfig,
    /// The resourceVersion of each Rollout after this controller's last write to it: a cached copy older than
    /// that is stale, and planning from it could repeat a step.
    pub written: std::sync::Mutex<std::collections::HashMap<(String, String), u64>>,
    /// Controller metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Cache of AnalysisRuns (shared with the AnalysisRun controller).
    pub analysis_runs: Store<AnalysisRun>,
    /// Cache of AnalysisTemplates.
    pub templates: Store<AnalysisTemplate>,
    /// Cache of ClusterAnalysisTemplates.
    pub cluster_templates: Store<ClusterAnalysisTemplate>,
    /// Cache of Experiments, their pod templates dropped (the Rollout reads names, phases and Services).
    pub experiments: Store<Experiment>,
    /// Whether ClusterAnalysisTemplates are watched (not in namespaced mode).
    pub cluster_templates_read: bool,
    /// Rollouts (by uid) this process has reconciled, for the RolloutAddedToInformer event.
    pub seen: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Consecutive failures per Rollout.
    pub backoff: crate::backoff::Backoff,
    /// Open once every cache here is synced while this process leads.
    pub gate: crate::ready::Gate,
    /// Sends the notifications of new events.
    pub notifier: Arc<crate::notifications::Notifier>,
    /// When each Rollout's last step completed, until the next weight is applied.
    pub step_clock: super::pacing::StepClock,
    /// When each Rollout's status was last written, to write pod counts in transit together.
    pub status_writes: super::pacing::StatusWrites,
    /// When a change of each Rollout's ReplicaSets was last seen (what completes a step).
    pub rs_changes: Arc<super::pacing::ReplicaSetChanges>,
}

/// Every analysis a Rollout's strategy runs: canary steps and background, blue-green pre- and post-promotion.
fn analyses(ro: &Rollout) -> Vec<&sluice_crds::rollout::RolloutAnalysis> {
    let canary = ro.spec.strategy.canary.as_ref();
    let background = canary.and_then(|c| c.analysis.as_ref()).map(|b| &b.analysis);
    let steps = canary
        .and_then(|c| c.steps.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|s| s.analysis.as_ref());
    let bg = ro.spec.strategy.blue_green.as_ref();
    let promotion = bg
        .and_then(|b| b.pre_promotion_analysis.as_ref())
        .into_iter()
        .chain(bg.and_then(|b| b.post_promotion_analysis.as_ref()));
    background.into_iter().chain(steps).chain(promotion).collect()
}

/// Whether a Rollout's analysis references the named template.
fn references(ro: &Rollout, name: &str, cluster: bool) -> bool {
    // Nested templates are not followed here: any Rollout with analysis in the namespace is looked at again
    // when a template changes whose name it does not reference directly but may reach through composition.
    analyses(ro).into_iter().any(|a| {
        a.templates.iter().flatten().any(|t| {
            (t.template_name.as_deref() == Some(name) && (t.cluster_scope == Some(true)) == cluster)
                || !cluster
        })
    })
}

fn resource_version(ro: &Rollout) -> Option<u64> {
    ro.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
}

/// What the Rollout controller shares with the rest of the process.
pub struct Shared {
    /// Controller metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Readiness, and the gate of writes.
    pub readiness: Arc<crate::ready::Readiness>,
    /// Notifications of new events.
    pub notifier: Arc<crate::notifications::Notifier>,
    /// Rollouts reconciled at once.
    pub workers: u16,
}

/// Watches Rollouts (of this controller instance) and their ReplicaSets and reconciles until `shutdown`
/// resolves.
pub async fn run(
    client: Client,
    scope: crate::scope::Scope,
    routing: super::routing::RouterConfig,
    shared: Shared,
    analysis_runs: (
        Store<AnalysisRun>,
        impl futures::Stream<Item = Arc<AnalysisRun>> + Send + 'static,
    ),
    replica_sets: (
        Store<Packed<ReplicaSet>>,
        impl futures::Stream<Item = Arc<Packed<ReplicaSet>>> + Send + 'static,
    ),
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let Shared {
        metrics,
        readiness,
        notifier,
        workers,
    } = shared;
    // Upstream's namespaced mode never starts its ClusterAnalysisTemplate informer: nothing cluster-scoped
    // is read, and a Rollout that references one is told why it is not found.
    let caches: Vec<&str> = CACHES
        .into_iter()
        .filter(|c| !(scope.namespaced && *c == CLUSTER_TEMPLATES_CACHE))
        .collect();
    let gate = readiness.gate(&caches);
    // Other instances' Rollouts never enter the cache.
    let instance = watcher::Config::default().labels(&scope.instance_selector());
    let (ro_store, ro_stream) =
        crate::ready::reflected(scope.api::<Packed<Rollout>>(&client), instance, &gate, CACHES[0]);
    let (rs_store, rs_stream) = replica_sets;
    let rs_changes = Arc::new(super::pacing::ReplicaSetChanges::default());
    let rs_stream = noting_changes(rs_stream, rs_changes.clone());
    let templates_api: Api<AnalysisTemplate> = scope.api(&client);
    let (tpl_store, tpl_stream) =
        crate::ready::reflected(templates_api, watcher::Config::default(), &gate, CACHES[2]);
    let (ctpl_store, ctpl_stream) = cluster_templates(&client, &scope, &gate);
    let (exp_store, exp_stream) = experiments(&client, &scope, &gate);
    let routed = super::drift::RoutedCaches::default();
    let steered_caches = (&gate, &routed);
    let (services, steered) = super::drift::triggers(
        client.clone(),
        &scope,
        routing.clone(),
        ro_store.clone(),
        steered_caches,
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        services,
        routed,
        replica_sets: rs_store,
        events: EventWriter::new(client, "rollouts-controller"),
        routing,
        written: Default::default(),
        metrics: metrics.clone(),
        analysis_runs: analysis_runs.0,
        templates: tpl_store,
        cluster_templates: ctpl_store,
        experiments: exp_store,
        cluster_templates_read: !scope.namespaced,
        seen: Default::default(),
        backoff: Default::default(),
        gate: gate.clone(),
        notifier,
        step_clock: Default::default(),
        status_writes: Default::default(),
        rs_changes: rs_changes.clone(),
    });
    let _ = metrics.caches().rollouts.set(ro_store.clone());
    // Deployments named by a workloadRef: metadata only (a changed template bumps the generation); the
    // reconcile reads the one it needs.
    let deployments: Api<PartialObjectMeta<Deployment>> = scope.api(&ctx.client);
    let deployment_stream = watcher(deployments, watcher::Config::default())
        .default_backoff()
        .touched_objects();
    let for_workloads = ro_store.clone();
    let (for_templates, for_cluster_templates) = (ro_store.clone(), ro_store.clone());
    Controller::for_stream(ro_stream, ro_store)
        .with_config(kube::runtime::controller::Config::default().concurrency(workers))
        .reconcile_all_on(gate.opening())
        .reconcile_on(steered)
        .owns_shared_stream(rs_stream)
        .owns_shared_stream(analysis_runs.1)
        .owns_stream(exp_stream)
        // A template created or changed brings back the Rollouts of its namespace that use it (e.g. one
        // waiting with InvalidSpec for it).
        .watches_stream(tpl_stream, move |t: AnalysisTemplate| {
            rollouts_where(&for_templates, t.namespace(), |ro| {
                references(ro, &t.name_any(), false)
            })
        })
        .watches_stream(deployment_stream, move |d: PartialObjectMeta<Deployment>| {
            rollouts_where(&for_workloads, d.namespace(), |ro| {
                ro.spec.workload_ref.as_ref().is_some_and(|w| {
                    w.name.as_deref() == Some(d.name_any().as_str())
                        && w.kind.as_deref() == Some("Deployment")
                })
            })
        })
        .watches_stream(ctpl_stream, move |t: ClusterAnalysisTemplate| {
            let name = t.name_any();
            rollouts_where(&for_cluster_templates, None, |ro| references(ro, &name, true))
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                crate::backoff::log_stream_error("rollout", &e);
            }
        })
        .await;
}

/// Passes the ReplicaSets' watch events through, noting when each Rollout's ReplicaSets last changed (where
/// the step clock starts).
fn noting_changes(
    replica_sets: impl futures::Stream<Item = Arc<Packed<ReplicaSet>>> + Send + 'static,
    seen: Arc<super::pacing::ReplicaSetChanges>,
) -> impl futures::Stream<Item = Arc<Packed<ReplicaSet>>> + Send + 'static {
    replica_sets.inspect(move |rs| {
        let owner = rs.owner_references().iter().find(|o| o.controller == Some(true));
        if let Some(o) = owner.filter(|o| o.kind == "Rollout") {
            let key = (rs.namespace().unwrap_or_default(), o.name.clone());
            seen.changed(key, std::time::Instant::now());
        }
    })
}

/// The ClusterAnalysisTemplates' cache and changes; in namespaced mode an empty store that never changes.
fn cluster_templates(
    client: &Client,
    scope: &crate::scope::Scope,
    gate: &crate::ready::Gate,
) -> (
    Store<ClusterAnalysisTemplate>,
    impl futures::Stream<Item = Result<ClusterAnalysisTemplate, watcher::Error>> + use<>,
) {
    if scope.namespaced {
        let (store, _writer) = reflector::store();
        return (store, futures::stream::empty().left_stream());
    }
    let (store, stream) = crate::ready::reflected(
        Api::<ClusterAnalysisTemplate>::all(client.clone()),
        watcher::Config::default(),
        gate,
        CLUSTER_TEMPLATES_CACHE,
    );
    (store, stream.right_stream())
}

/// The caches a Rollout reconcile reads.
const CACHES: [&str; 7] = [
    "rollouts",
    REPLICA_SETS_CACHE,
    "analysistemplates",
    CLUSTER_TEMPLATES_CACHE,
    crate::analysisrun::controller::CACHE,
    EXPERIMENTS_CACHE,
    super::drift::SERVICES_CACHE,
];

/// The cache of Experiments.
const EXPERIMENTS_CACHE: &str = "experiments";

/// The Experiments' cache and changes, kept lean: no managed fields, no last-applied copy and no pod templates
/// (the Rollout reads their names, phases and Services; the Experiment's own controller reads the rest).
fn experiments(
    client: &Client,
    scope: &crate::scope::Scope,
    gate: &crate::ready::Gate,
) -> (
    Store<Experiment>,
    impl futures::Stream<Item = Result<Experiment, watcher::Error>> + use<>,
) {
    let (store, writer) = reflector::store();
    let events = watcher(scope.api::<Experiment>(client), watcher::Config::default())
        .default_backoff()
        .modify(|e: &mut Experiment| {
            crate::ready::lean(e);
            for t in &mut e.spec.templates {
                t.template = Default::default();
            }
        })
        .reflect(writer);
    (store, gate.track(EXPERIMENTS_CACHE, events).touched_objects())
}

/// The name of the ReplicaSet cache in readiness reports.
pub const REPLICA_SETS_CACHE: &str = "replicasets";

/// The changes of the shared ReplicaSets' cache, as one controller receives them.
pub type ReplicaSetHandle = reflector::ReflectHandle<Packed<ReplicaSet>>;

/// The one cache of the ReplicaSets that carry the pod-template-hash label (Rollouts' and Experiments'; a
/// Deployment's ReplicaSets stay out), packed (no managed fields, no last-applied copy), shared by the Rollout
/// and Experiment controllers: the future keeps it, each handle wakes one controller.
pub fn shared_replica_sets(
    client: &Client,
    scope: &crate::scope::Scope,
    readiness: &Arc<crate::ready::Readiness>,
) -> (
    Store<Packed<ReplicaSet>>,
    impl std::future::Future<Output = ()> + Send + 'static,
    [ReplicaSetHandle; 2],
) {
    let (store, writer) = reflector::store_shared(crate::ready::SHARED_BUFFER);
    let subscribers = [
        writer.subscribe().expect("a shared store has subscribers"),
        writer.subscribe().expect("a shared store has subscribers"),
    ];
    let events = watcher(scope.api(client), watcher::Config::default().labels(HASH_LABEL))
        .default_backoff()
        .reflect_shared(writer);
    let source = readiness
        .track(REPLICA_SETS_CACHE, events)
        .for_each(|event| async move {
            if let Err(e) = event {
                warn!(error = %e, "replica set watch error; retrying with backoff");
            }
        });
    (store, source, subscribers)
}

/// The cache of ClusterAnalysisTemplates, which namespaced mode does without.
const CLUSTER_TEMPLATES_CACHE: &str = "clusteranalysistemplates";

/// The Rollouts of `namespace` (of every namespace when `None`) in the store for which `wanted` holds, to
/// reconcile. Each is decoded: for the changes of templates and workloads, which are rare.
fn rollouts_where(
    store: &Store<Packed<Rollout>>,
    namespace: Option<String>,
    wanted: impl Fn(&Rollout) -> bool,
) -> Vec<reflector::ObjectRef<Packed<Rollout>>> {
    store
        .state()
        .into_iter()
        .filter(|ro| namespace.is_none() || ro.namespace() == namespace)
        .filter(|ro| ro.unpack().is_ok_and(|ro| wanted(&ro)))
        .map(|ro| reflector::ObjectRef::from_obj(&*ro))
        .collect()
}

fn key_of(ro: &impl ResourceExt) -> String {
    format!("{}/{}", ro.namespace().unwrap_or_default(), ro.name_any())
}

impl Error {
    /// The bounded category the failure is counted under.
    fn reason(&self) -> &'static str {
        match self {
            Error::Kube(e) => crate::backoff::kube_reason(e),
            Error::Traffic(_) => "TrafficRouting",
            Error::HashCollision(_) => "HashCollision",
            Error::Cache(_) => "Cache",
        }
    }
}

fn error_policy(ro: Arc<Packed<Rollout>>, err: &Error, ctx: Arc<Context>) -> Requeue {
    ctx.metrics.rollout_reconcile_error.inc();
    ctx.metrics.reconcile_failed("rollout", err.reason());
    let key = key_of(&*ro);
    let delay = ctx.backoff.failed(&key);
    warn!(rollout = %key, reason = err.reason(), error = %err, retry_in = ?delay, "reconcile failed; retrying");
    Requeue::requeue(delay)
}

async fn reconcile(packed: Arc<Packed<Rollout>>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    if !ctx.gate.is_open() {
        // Everything is reconciled when the gate opens.
        return Ok(Requeue::await_change());
    }
    let started = std::time::Instant::now();
    let metrics = ctx.metrics.clone();
    let key = key_of(&*packed);
    let ro = packed
        .unpack()
        .map_err(|e| Error::Cache(format!("Rollout {key}: {e}")))?;
    let backoff = ctx.clone();
    let result = reconcile_rollout(Arc::new(ro), ctx).await;
    if result.is_ok() {
        backoff.backoff.succeeded(&key);
    }
    metrics.rollout_reconcile.observe(started.elapsed().as_secs_f64());
    result
}

async fn reconcile_rollout(ro: Arc<Rollout>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    let started = std::time::Instant::now();
    let ns = ro.namespace().unwrap_or_default();
    let name = ro.name_any();
    if ro.meta().deletion_timestamp.is_some() {
        if let Ok(mut w) = ctx.written.lock() {
            w.remove(&(ns.clone(), name.clone()));
        }
        ctx.step_clock.forget(&(ns.clone(), name.clone()));
        ctx.status_writes.forget(&(ns.clone(), name.clone()));
        ctx.rs_changes.forget(&(ns, name));
        return Ok(Requeue::await_change());
    }
    // Planning without the full list of ReplicaSets would start a revision that already exists.
    if ctx.replica_sets.wait_until_ready().await.is_err() {
        return Ok(Requeue::requeue(Duration::from_secs(1)));
    }
    let key = (ns.clone(), name.clone());
    let last_written = ctx.written.lock().ok().and_then(|w| w.get(&key).copied());
    if let (Some(written), Some(cached)) = (last_written, resource_version(&ro))
        && cached < written
    {
        // Our own last write has not reached the cache yet; its watch event brings the next reconcile (the
        // requeue only in case the watch is restarting).
        return Ok(Requeue::requeue(Duration::from_secs(2)));
    }
    let observed = observe(&ro, &ctx).await?;
    let plan = plan::plan_steps(&observed, Timestamp::now());
    tracing::debug!(rollout = %name, namespace = %ns, traffic = ?observed.traffic, subsets = ?observed.subsets, actions = ?plan.actions, requeue = ?plan.requeue_after, "planned");
    let first_sight = first_sight(&ctx, &ro);
    if first_sight {
        // Told by every process that starts reconciling the Rollout, as upstream's informer does.
        let message = format!("Rollout resource added to informer: {ns}/{name}");
        let reference = ro.object_ref(&());
        if let Err(e) = ctx
            .events
            .publish(&reference, false, "RolloutAddedToInformer", &message)
            .await
        {
            warn!(rollout = %name, error = %e, "could not record event");
        }
        info!(rollout = %name, namespace = %ns, reason = "RolloutAddedToInformer", "{message}");
    }
    for action in &plan.actions {
        match execute(&observed.rollout, action, &ctx).await {
            Ok(()) => {}
            Err(Error::Kube(kube::Error::Api(e))) if refused(action, &e) => {
                return replica_set_refused(&ro, &ctx, &observed.desired_hash, &e.message).await;
            }
            Err(Error::Kube(e)) if crate::status_patch::is_conflict(&e) => {
                return Ok(Requeue::requeue(Duration::from_millis(100)));
            }
            Err(Error::HashCollision(taken)) => return hash_collision(&ro, &ctx, &taken).await,
            Err(e) => return Err(e),
        }
    }
    let index = ro.status.as_ref().and_then(|s| s.current_step_index);
    if let Some(waited) = ctx
        .step_clock
        .applied(&key, index, &plan.actions, std::time::Instant::now())
    {
        ctx.metrics.step_transition.observe(waited.as_secs_f64());
    }
    // The events, then the status: a crash in between tells nothing twice (events are named by the version
    // planned from) and loses none. When a user's action landed since the plan was made, the status write is
    // refused and the Rollout is planned again from what the user wrote.
    publish(&ro, &ctx, &plan.events).await;
    let current = ro.status.clone().unwrap_or_default();
    let moving = super::pacing::in_transit(&observed.replica_sets, &plan.actions);
    let now = std::time::Instant::now();
    if let Some(wait) = ctx
        .status_writes
        .hold(&key, (&current, &plan.status), moving, now)
    {
        // Pod counts in transit: written with what changes next, once the ReplicaSets settle (their watch
        // brings the reconcile), or at the latest when the window has passed.
        let after = plan.requeue_after.map_or(wait, |r| r.min(wait));
        return Ok(Requeue::requeue(after));
    }
    match write_status(&ro, &ctx, &plan.status).await {
        Err(Error::Kube(e)) if crate::status_patch::is_conflict(&e) => {
            tracing::debug!(rollout = %name, namespace = %ns, "changed since planned; planning again");
            return Ok(Requeue::requeue(Duration::from_millis(100)));
        }
        r => r?,
    }
    let steps = ro.spec.strategy.canary.as_ref().and_then(|c| c.steps.as_deref());
    let moved = (index, plan.status.current_step_index);
    let times = (ctx.rs_changes.trigger(&key, started), std::time::Instant::now());
    let steps = steps.unwrap_or_default();
    if let Some(took) = ctx.step_clock.completed(&key, steps, moved, &plan.actions, times) {
        ctx.metrics.step_transition.observe(took.as_secs_f64());
    }
    // What a change does comes back through the watches: ReplicaSets (availability), AnalysisRuns and
    // Experiments (owned), Services and the routers' objects (`drift`). After changing anything, look again
    // within FOLLOW_UP anyway (a traffic router plugin's state has no watch); otherwise at the plan's next
    // deadline, or at the resync period.
    let mut after = plan.requeue_after.unwrap_or(Duration::from_secs(900));
    if !plan.actions.is_empty() {
        after = after.min(FOLLOW_UP);
    }
    Ok(Requeue::requeue(after))
}

/// How soon a Rollout whose reconcile changed something is looked at again when no watch event brings it back
/// first.
const FOLLOW_UP: Duration = Duration::from_secs(3);

/// Whether this process reconciles the Rollout for the first time (upstream's RolloutAddedToInformer). Rollouts
/// gone from the cache are forgotten now and then, so the set does not grow with churn.
fn first_sight(ctx: &Context, ro: &Rollout) -> bool {
    let Ok(mut seen) = ctx.seen.lock() else {
        return false;
    };
    let first = seen.insert(ro.uid().unwrap_or_default());
    // Every 256 new Rollouts, the ones deleted meanwhile are dropped.
    if first
        && seen.len() % 256 == 0
        && let Some(store) = ctx.metrics.caches().rollouts.get()
    {
        let live: std::collections::HashSet<String> = store.state().iter().filter_map(|r| r.uid()).collect();
        seen.retain(|uid| live.contains(uid));
    }
    first
}

/// The API server refused to create the new ReplicaSet because of what the template says (invalid, forbidden by
/// admission or quota): retrying at once cannot help.
fn refused(action: &Action, e: &kube::core::Status) -> bool {
    matches!(action, Action::CreateReplicaSet { .. }) && matches!(e.code, 400 | 403 | 422)
}

/// Records why the new ReplicaSet could not be created (the ReplicaSetCreateError condition and a warning
/// event, once per message) and looks again later; a change of the Rollout brings it back at once.
async fn replica_set_refused(ro: &Rollout, ctx: &Context, hash: &str, error: &str) -> Result<Requeue, Error> {
    let current = ro.status.clone().unwrap_or_default();
    let status = super::progress::replica_set_create_error(ro, hash, error, Timestamp::now());
    if status != current {
        let message = super::progress::replica_set_create_message(ro, hash, error);
        warn!(rollout = %ro.name_any(), namespace = ro.namespace(), "{message}");
        publish(
            ro,
            ctx,
            &[plan::Event {
                warning: true,
                reason: "ReplicaSetCreateError",
                message,
            }],
        )
        .await;
        write_status(ro, ctx, &status).await?;
    }
    Ok(Requeue::requeue(Duration::from_secs(60)))
}

/// Records events on the Rollout, in order, and logs them.
async fn publish(ro: &Rollout, ctx: &Context, events: &[plan::Event]) {
    let reference = ro.object_ref(&());
    let (name, ns) = (ro.name_any(), ro.namespace().unwrap_or_default());
    // Told once per version planned from: a plan made again from the same version after a crash (events
    // written, status not) repeats no event.
    let planned = ro.resource_version().unwrap_or_default();
    // Sent together: each is its own object, named by what it tells.
    let sent = futures::future::join_all(events.iter().map(|ev| {
        ctx.events
            .publish_once(&reference, &planned, ev.warning, ev.reason, &ev.message)
    }))
    .await;
    for (ev, result) in events.iter().zip(sent) {
        match result {
            // Notified once per event, as the event is told: a plan made again from the same version repeats
            // neither.
            Ok(true) => notify(ro, ctx, ev.reason).await,
            Ok(false) => {}
            Err(e) => warn!(rollout = %name, error = %e, "could not record event"),
        }
        info!(rollout = %name, namespace = %ns, reason = ev.reason, "{}", ev.message);
    }
}

/// Queues the notifications of a new event; a configuration problem is logged and told on the Rollout as a
/// Warning, and never stops the reconcile.
async fn notify(ro: &Rollout, ctx: &Context, reason: &str) {
    for problem in ctx.notifier.notify(ro, reason) {
        warn!(rollout = %ro.name_any(), namespace = ro.namespace(), event_reason = reason, "notification not sent: {problem}");
        let message = format!("Notification for {reason} not sent: {problem}");
        if let Err(e) = ctx
            .events
            .publish(
                &ro.object_ref(&()),
                true,
                crate::notifications::FAILED_REASON,
                &message,
            )
            .await
        {
            warn!(rollout = %ro.name_any(), error = %e, "could not record event");
        }
    }
}

/// Writes the status when it differs from the observed one, and remembers the resourceVersion it produced.
async fn write_status(
    ro: &Rollout,
    ctx: &Context,
    status: &sluice_crds::rollout::RolloutStatus,
) -> Result<(), Error> {
    let current = ro.status.clone().unwrap_or_default();
    if *status == current {
        return Ok(());
    }
    let (name, ns) = (ro.name_any(), ro.namespace().unwrap_or_default());
    let rollouts: Api<Rollout> = Api::namespaced(ctx.client.clone(), &ns);
    let planned = planned_version(ctx, ro);
    let updated =
        crate::status_patch::write_at(&rollouts, &name, planned.as_deref(), &current, status).await?;
    ctx.status_writes.wrote(&(ns, name));
    remember_written(ctx, &updated);
    Ok(())
}

/// The resourceVersion this reconcile's writes to the Rollout are conditional on: the cached one it planned
/// from, or the one its own earlier write in this reconcile produced (a reconcile starts only once the cache
/// holds this process's last write, so a newer remembered version is this reconcile's).
fn planned_version(ctx: &Context, ro: &Rollout) -> Option<String> {
    let key = (ro.namespace().unwrap_or_default(), ro.name_any());
    let written = ctx.written.lock().ok().and_then(|w| w.get(&key).copied());
    match (resource_version(ro), written) {
        (Some(cached), Some(w)) if w > cached => Some(w.to_string()),
        (Some(cached), _) => Some(cached.to_string()),
        _ => None,
    }
}

/// Remembers the resourceVersion a write to the Rollout produced.
fn remember_written(ctx: &Context, updated: &Rollout) {
    let key = (updated.namespace().unwrap_or_default(), updated.name_any());
    if let (Ok(mut w), Some(rv)) = (ctx.written.lock(), resource_version(updated)) {
        w.insert(key, rv);
    }
}

/// A Rollout whose workloadRef names a Deployment, with that Deployment's template (and its selector when the
/// Rollout has none) in place of its own, and the Deployment's state.
async fn resolve_workload(ro: &Rollout, ctx: &Context) -> Result<(Rollout, Option<WorkloadState>), Error> {
    let Some(wref) = ro.spec.workload_ref.as_ref() else {
        return Ok((ro.clone(), None));
    };
    let name = wref.name.clone().unwrap_or_default();
    let mut state = WorkloadState {
        name: name.clone(),
        ..Default::default()
    };
    let kind = wref.kind.as_deref().unwrap_or_default();
    if ro
        .spec
        .template
        .as_ref()
        .is_some_and(|t| *t != Default::default())
    {
        state.error = Some("template must be empty for workload reference rollout".into());
        return Ok((ro.clone(), Some(state)));
    }
    if kind != "Deployment" {
        // Named by the planner as an unsupported feature.
        return Ok((ro.clone(), None));
    }
    let deployments: Api<Deployment> =
        Api::namespaced(ctx.client.clone(), &ro.namespace().unwrap_or_default());
    let Some(deployment) = deployments.get_opt(&name).await? else {
        state.error = Some(format!("deployments.apps \"{name}\" not found"));
        return Ok((ro.clone(), Some(state)));
    };
    state.generation = deployment.metadata.generation.unwrap_or(0);
    let spec = deployment.spec.unwrap_or_default();
    state.replicas = spec.replicas.unwrap_or(1);
    let mut resolved = ro.clone();
    resolved.spec.template = Some(spec.template);
    if resolved.spec.selector.is_none() {
        resolved.spec.selector = Some(spec.selector);
    }
    Ok((resolved, Some(state)))
}

async fn observe(ro: &Rollout, ctx: &Context) -> Result<Observed, Error> {
    let (resolved, workload) = resolve_workload(ro, ctx).await?;
    let ro = &resolved;
    let owned = owned_replica_sets(ro, ctx)?;
    let (desired_hash, replica_sets) = observe_replica_sets(ro, workload.as_ref(), &owned);
    let canary = ro.spec.strategy.canary.as_ref();
    let (stable_name, canary_name) = super::drift::services(ro);
    let stable_service = service_state(ro, ctx, stable_name);
    let canary_service = service_state(ro, ctx, canary_name);
    let (traffic, managed_routes_present) = match canary.and_then(|c| c.traffic_routing.as_ref()) {
        None => (None, Vec::new()),
        Some(_) => {
            let routers = super::routing::routers(ro, &ctx.routing);
            let io = super::routing::CachedObjects(&ctx.client, &ctx.routed);
            let (state, present) = super::routing::observe(&io, &routers).await?;
            (Some(state), present)
        }
    };
    let pods_to_restart = if plan::restart_pending(ro) {
        pods_created_before_restart(ro, ctx).await?
    } else {
        Vec::new()
    };
    let subsets = observe_subsets(ro, ctx).await?;
    let (analysis_runs, templates) = observe_analysis(ro, ctx);
    let experiments = observe_experiments(ro, ctx);
    let rs_templates = experiment_sources(ro, &desired_hash, &owned);
    Ok(Observed {
        experiments,
        rs_templates,
        analysis_runs,
        templates,
        rollout: ro.clone(),
        desired_hash,
        replica_sets,
        stable_service,
        canary_service,
        traffic,
        subsets,
        pods_to_restart,
        managed_routes_present,
        workload,
        orphans: observe_orphans(ro, ctx).await?,
    })
}

/// After a spec change, the Services and DestinationRules of the namespace marked as managed by this Rollout
/// that its spec no longer names (trafficRouting or a Service removed). Nothing is listed otherwise.
async fn observe_orphans(ro: &Rollout, ctx: &Context) -> Result<Vec<plan::Orphan>, Error> {
    let generation = ro.metadata.generation.map(|g| g.to_string());
    let status = ro.status.clone().unwrap_or_default();
    let strategy = &ro.spec.strategy;
    let canary = strategy.canary.as_ref();
    let bg = strategy.blue_green.as_ref();
    // Only a spec that dropped traffic routing (whose weights the status still records) or blue-green can
    // leave something behind.
    let dropped_routing = status.canary.as_ref().is_some_and(|c| c.weights.is_some())
        && canary.is_none_or(|c| c.traffic_routing.is_none());
    let dropped_blue_green = status
        .blue_green
        .as_ref()
        .is_some_and(|b| b.active_selector.is_some())
        && bg.is_none();
    if status.observed_generation == generation || !(dropped_routing || dropped_blue_green) {
        return Ok(Vec::new());
    }
    let name = ro.name_any();
    let ns = ro.namespace().unwrap_or_default();
    let named: Vec<String> = [
        canary.and_then(|c| c.stable_service.clone()),
        canary.and_then(|c| c.canary_service.clone()),
        bg.map(|b| b.active_service.clone()),
        bg.and_then(|b| b.preview_service.clone()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let managed = |annotations: &std::collections::BTreeMap<String, String>| {
        annotations.get(MANAGED_BY_ANNOTATION) == Some(&name)
    };
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    let mut orphans: Vec<plan::Orphan> = services
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|svc| managed(svc.annotations()) && !named.contains(&svc.name_any()))
        .map(|svc| plan::Orphan::Service(svc.name_any()))
        .collect();
    let routed_dr = destination_rule(ro)
        .filter(|(_, dr_ns)| *dr_ns == ns)
        .map(|(dr, _)| dr.name);
    match dr_api(ctx, &ns).list(&ListParams::default()).await {
        Ok(list) => orphans.extend(
            list.items
                .into_iter()
                .filter(|dr| managed(dr.annotations()) && Some(dr.name_any()) != routed_dr)
                .map(|dr| plan::Orphan::DestinationRule(dr.name_any())),
        ),
        // No DestinationRule kind in this cluster: nothing to release.
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(orphans)
}

/// The hash of the desired template and the ReplicaSets the Rollout owns. The desired ReplicaSet is found by
/// its exact hash, or as `hash::current_hash` chooses when another controller hashed the template otherwise.
fn observe_replica_sets(
    ro: &Rollout,
    workload: Option<&WorkloadState>,
    owned: &[ReplicaSet],
) -> (String, Vec<RsInfo>) {
    let status = ro.status.as_ref();
    let collision = status.and_then(|s| s.collision_count);
    let desired_hash = match ro.spec.template.as_ref() {
        None => String::new(),
        Some(template) => {
            let generation = |g: Option<i64>| g.map(|g| g.to_string());
            let describes = status.is_some_and(|s| {
                s.observed_generation == generation(ro.metadata.generation)
                    && workload
                        .is_none_or(|w| s.workload_observed_generation == generation(Some(w.generation)))
            });
            let recorded = status
                .and_then(|s| s.current_pod_hash.as_deref())
                .filter(|_| describes);
            let templates: Vec<_> = owned
                .iter()
                .filter_map(|rs| {
                    Some(OwnedTemplate {
                        hash: rs.labels().get(HASH_LABEL)?,
                        template: rs.spec.as_ref().and_then(|s| s.template.as_ref()),
                    })
                })
                .collect();
            current_hash(
                pod_template_hash(template, collision),
                template,
                recorded,
                &templates,
            )
        }
    };
    (desired_hash, owned.iter().map(rs_info).collect())
}

/// Whether `ro` is the controller of `object`, in its namespace.
fn controls(ro: &Rollout, object: &impl ResourceExt) -> bool {
    let uid = ro.uid().unwrap_or_default();
    object.namespace() == ro.namespace()
        && object
            .owner_references()
            .iter()
            .any(|o| o.uid == uid && o.controller == Some(true))
}

/// The ReplicaSets the Rollout controls, decoded from the cache.
fn owned_replica_sets(ro: &Rollout, ctx: &Context) -> Result<Vec<ReplicaSet>, Error> {
    ctx.replica_sets
        .state()
        .into_iter()
        .filter(|rs| controls(ro, &**rs))
        .map(|rs| {
            rs.unpack()
                .map_err(|e| Error::Cache(format!("ReplicaSet {}: {e}", rs.name_any())))
        })
        .collect()
}

/// The hash a Service selects, if it is configured and exists, from the Services' cache.
fn service_state(ro: &Rollout, ctx: &Context, name: Option<String>) -> Option<ServiceState> {
    let name = name?;
    let key = reflector::ObjectRef::new(&name).within(&ro.namespace().unwrap_or_default());
    Some(match ctx.services.get(&key) {
        None => ServiceState::Missing,
        Some(svc) => ServiceState::Selecting(
            svc.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .and_then(|s| s.get(HASH_LABEL).cloned()),
        ),
    })
}

/// The DestinationRule's (canary, stable) subset hashes, when the canary splits by subset.
async fn observe_subsets(ro: &Rollout, ctx: &Context) -> Result<Option<plan::SubsetState>, Error> {
    let Some((dr, dr_ns)) = destination_rule(ro) else {
        return Ok(None);
    };
    let found = match ctx
        .routed
        .get("networking.istio.io", "destinationrules", &dr_ns, &dr.name)
    {
        Some(cached) => cached.map(|o| (*o).clone()),
        None => dr_api(ctx, &dr_ns).get_opt(&dr.name).await?,
    };
    Ok(Some(match found {
        None => Err(format!(
            "DestinationRule \"{}\" not found in namespace \"{dr_ns}\"",
            dr.name
        )),
        Some(obj) => istio::observed_subset_hashes(
            &serde_json::to_value(&obj).unwrap_or_default(),
            &dr.canary_subset_name,
            &dr.stable_subset_name,
        )
        .map_err(|e| format!("DestinationRule \"{}\": {e}", dr.name)),
    }))
}

/// The AnalysisRuns the Rollout owns and the templates it may reference, from the caches.
fn observe_analysis(
    ro: &Rollout,
    ctx: &Context,
) -> (Vec<super::analysis::RunInfo>, super::analysis::Templates) {
    let analysis_runs = ctx
        .analysis_runs
        .state()
        .into_iter()
        .filter(|r| controls(ro, &**r))
        .map(|r| super::analysis::RunInfo {
            name: r.name_any(),
            phase: Phase::parse(r.status.as_ref().map(|s| s.phase.as_str()).unwrap_or_default()),
            message: r.status.as_ref().and_then(|s| s.message.clone()),
            terminating: r.spec.terminate == Some(true),
            created: r.creation_timestamp().map(|t| t.0.as_second()).unwrap_or(0),
        })
        .collect();
    let mut templates = super::analysis::Templates {
        cluster_not_watched: !ctx.cluster_templates_read,
        ..Default::default()
    };
    if has_analysis(ro) {
        templates.namespaced = ctx
            .templates
            .state()
            .into_iter()
            .filter(|t| t.namespace() == ro.namespace())
            .map(|t| (t.name_any(), t.spec.clone()))
            .collect();
        templates.cluster = ctx
            .cluster_templates
            .state()
            .into_iter()
            .map(|t| (t.name_any(), t.spec.0.clone()))
            .collect();
    }
    (analysis_runs, templates)
}

/// The Experiments the Rollout owns, from the cache.
fn observe_experiments(ro: &Rollout, ctx: &Context) -> Vec<plan::ExperimentInfo> {
    ctx.experiments
        .state()
        .into_iter()
        .filter(|e| controls(ro, &**e))
        .map(|e| {
            let status = e.status.clone().unwrap_or_default();
            plan::ExperimentInfo {
                name: e.name_any(),
                phase: Phase::parse(status.phase.as_deref().unwrap_or_default()),
                message: status.message.clone(),
                terminating: e.spec.terminate == Some(true),
                created: e.creation_timestamp().map(|t| t.0.as_second()).unwrap_or(0),
                hash: e.labels().get(HASH_LABEL).cloned(),
                templates: status
                    .template_statuses
                    .iter()
                    .flatten()
                    .map(|t| plan::TemplateInfo {
                        name: t.name.clone(),
                        service: t.service_name.clone(),
                        pod_template_hash: t.pod_template_hash.clone(),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// While the current step is an experiment, the pod templates of the Rollout's ReplicaSets (the canary's and
/// the stable's among them), which the Experiment's templates copy.
fn experiment_sources(ro: &Rollout, desired_hash: &str, owned: &[ReplicaSet]) -> Vec<plan::RsTemplate> {
    let steps = ro
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.steps.as_deref())
        .unwrap_or_default();
    let index = ro
        .status
        .as_ref()
        .and_then(|s| s.current_step_index)
        .unwrap_or(0)
        .max(0) as usize;
    if steps.get(index).is_none_or(|s| s.experiment.is_none()) {
        return Vec::new();
    }
    let stable = ro.status.as_ref().and_then(|s| s.stable_rs.as_deref());
    owned
        .iter()
        .filter_map(|rs| {
            let hash = rs.labels().get(HASH_LABEL)?.clone();
            if hash != desired_hash && Some(hash.as_str()) != stable {
                return None;
            }
            let spec = rs.spec.as_ref()?;
            Some(plan::RsTemplate {
                hash,
                template: spec.template.clone()?,
                selector: spec.selector.clone(),
                min_ready_seconds: spec.min_ready_seconds,
            })
        })
        .collect()
}

/// Pods of the rollout (by its selector) created before spec.restartAt and not already terminating. Listed
/// only while a restart is pending, so no pod cache is kept.
async fn pods_created_before_restart(ro: &Rollout, ctx: &Context) -> Result<Vec<(String, String)>, Error> {
    let Some(restart_at) = ro.spec.restart_at.as_ref() else {
        return Ok(Vec::new());
    };
    let selector = ro
        .spec
        .selector
        .as_ref()
        .map(plan::selector_string)
        .unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ro.namespace().unwrap_or_default());
    let list = pods.list(&ListParams::default().labels(&selector)).await?;
    Ok(list
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.metadata
                .creation_timestamp
                .as_ref()
                .is_some_and(|c| c.0 < restart_at.0)
        })
        .map(|p| {
            let hash = p.labels().get(HASH_LABEL).cloned().unwrap_or_default();
            (p.name_any(), hash)
        })
        .collect())
}

fn rs_info(rs: &ReplicaSet) -> RsInfo {
    let status = rs.status.clone().unwrap_or_default();
    RsInfo {
        name: rs.name_any(),
        hash: rs.labels().get(HASH_LABEL).cloned().unwrap_or_default(),
        revision: rs
            .annotations()
            .get(REVISION_ANNOTATION)
            .and_then(|r| r.parse().ok())
            .unwrap_or(0),
        spec_replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0),
        replicas: status.replicas,
        ready: status.ready_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
        scale_down_deadline: rs
            .annotations()
            .get(SCALE_DOWN_DEADLINE_ANNOTATION)
            .and_then(|d| d.parse().ok()),
        ephemeral: ephemeral::recorded(rs.annotations().get(ephemeral::EPHEMERAL_METADATA_ANNOTATION)),
    }
}

/// The DestinationRule of a subset split, with its namespace.
fn destination_rule(ro: &Rollout) -> Option<(IstioDestinationRule, String)> {
    let dr = ro
        .spec
        .strategy
        .canary
        .as_ref()?
        .traffic_routing
        .as_ref()?
        .istio
        .as_ref()?
        .destination_rule
        .clone()?;
    let ns = ro.namespace().unwrap_or_default();
    Some(match dr.name.split_once('.') {
        Some((n, other)) => (
            IstioDestinationRule {
                name: n.to_string(),
                ..dr.clone()
            },
            other.to_string(),
        ),
        None => (dr, ns),
    })
}

fn dr_api(ctx: &Context, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(
        "networking.istio.io",
        &ctx.routing.istio_version,
        "DestinationRule",
    );
    Api::namespaced_with(
        ctx.client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "destinationrules"),
    )
}

fn has_analysis(ro: &Rollout) -> bool {
    !analyses(ro).is_empty()
}

async fn execute(ro: &Rollout, action: &Action, ctx: &Context) -> Result<(), Error> {
    let ns = ro.namespace().unwrap_or_default();
    let name = ro.name_any();
    match action {
        Action::CreateAnalysisRun { .. }
        | Action::TerminateAnalysisRun { .. }
        | Action::DeleteAnalysisRun { .. } => execute_analysis_run(ro, action, ctx).await?,
        Action::CreateExperiment { .. }
        | Action::TerminateExperiment { .. }
        | Action::DeleteExperiment { .. } => execute_experiment(ro, action, ctx).await?,
        Action::CreateReplicaSet { .. }
        | Action::ScaleReplicaSet { .. }
        | Action::SetScaleDownDeadline { .. }
        | Action::SetReplicaSetRevision { .. }
        | Action::DeleteReplicaSet { .. } => execute_replica_set(ro, action, ctx).await?,
        Action::SetEphemeralMetadata {
            name: rs_name,
            hash,
            recorded,
            wanted,
        } => set_ephemeral_metadata(ro, ctx, rs_name, hash, recorded.as_ref(), wanted.as_ref()).await?,
        Action::SwitchService { service, to, .. } => {
            let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
            let patch = json!({
                "metadata": {"annotations": {MANAGED_BY_ANNOTATION: name}},
                "spec": {"selector": {HASH_LABEL: to}},
            });
            services
                .patch(service, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
        }
        Action::SetCanaryWeight { weight, additional } => {
            let routers = super::routing::routers(ro, &ctx.routing);
            let io = super::routing::ClusterObjects(&ctx.client);
            let desired = sluice_traffic::Desired {
                canary: *weight,
                additional: additional.clone(),
            };
            super::routing::apply_weight(&io, &routers, &desired).await?
        }
        Action::Release { orphan } => release(ro, ctx, orphan).await?,
        Action::ScaleWorkload {
            name: deployment,
            replicas,
        } => {
            let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
            let patch = json!({"spec": {"replicas": replicas}});
            deployments
                .patch(deployment, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
        }
        Action::SetSubsets { canary, stable } => {
            if let Some((dr, dr_ns)) = destination_rule(ro) {
                let api = dr_api(ctx, &dr_ns);
                let doc = serde_json::to_value(api.get(&dr.name).await?).unwrap_or_default();
                let mut patch = istio::subset_patch(
                    &doc,
                    &dr.canary_subset_name,
                    &dr.stable_subset_name,
                    canary,
                    stable,
                )
                .map_err(|e| Error::Traffic(format!("{}: {e}", dr.name)))?;
                let managed =
                    istio::managed_by_patch(&doc, &name).map_err(|e| Error::Traffic(e.to_string()))?;
                patch.0.extend(managed.0);
                if !patch.0.is_empty() {
                    api.patch(&dr.name, &PatchParams::default(), &Patch::<()>::Json(patch))
                        .await?;
                }
            }
        }
        Action::SetHeaderRoute { .. }
        | Action::SetMirrorRoute { .. }
        | Action::RemoveManagedRoutes { .. } => {
            let routers = super::routing::routers(ro, &ctx.routing);
            let io = super::routing::ClusterObjects(&ctx.client);
            super::routing::change_managed_routes(&io, &routers, action).await?
        }
        Action::EvictPod { name: pod } => {
            let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
            match pods.evict(pod, &EvictParams::default()).await {
                Ok(_) => info!(rollout = %name, namespace = %ns, pod = %pod, "evicted for restart"),
                // A PodDisruptionBudget says not now (429), or the pod is already gone: try again later.
                Err(kube::Error::Api(e)) if e.code == 429 || e.code == 404 => {
                    info!(rollout = %name, namespace = %ns, pod = %pod, reason = %e.message, "eviction refused for now")
                }
                Err(e) => return Err(e.into()),
            }
        }
        Action::AnnotateRevision { revision } => {
            let rollouts: Api<Rollout> = Api::namespaced(ctx.client.clone(), &ns);
            let patch = json!({"metadata": {
                "annotations": {REVISION_ANNOTATION: revision.to_string()},
                "resourceVersion": planned_version(ctx, ro),
            }});
            let updated = rollouts
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
            remember_written(ctx, &updated);
        }
    }
    Ok(())
}

/// Whether a ReplicaSet is this Rollout's, for the pod template hash `hash`.
fn runs_for(ro: &Rollout, rs: &ReplicaSet, hash: &str) -> bool {
    rs.labels().get(HASH_LABEL).map(String::as_str) == Some(hash) && controls(ro, rs)
}

/// Bumps status.collisionCount, so the next plan hashes the template to a new name (upstream's resolution).
async fn hash_collision(ro: &Rollout, ctx: &Context, taken: &str) -> Result<Requeue, Error> {
    let mut status = ro.status.clone().unwrap_or_default();
    let before = status.collision_count.unwrap_or(0);
    status.collision_count = Some(before + 1);
    warn!(
        rollout = %key_of(ro), replicaset = %taken,
        "Found a hash collision for rollout {:?} - bumping collisionCount ({before}->{}) to resolve it",
        ro.name_any(),
        before + 1
    );
    match write_status(ro, ctx, &status).await {
        Err(Error::Kube(e)) if crate::status_patch::is_conflict(&e) => {}
        r => r?,
    }
    Ok(Requeue::requeue(Duration::from_millis(100)))
}

/// Creates, terminates or deletes one of the Rollout's AnalysisRuns.
async fn execute_analysis_run(ro: &Rollout, action: &Action, ctx: &Context) -> Result<(), Error> {
    let ns = ro.namespace().unwrap_or_default();
    let name = ro.name_any();
    let runs: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &ns);
    match action {
        Action::CreateAnalysisRun {
            name: run_name,
            labels,
            annotations,
            spec,
        } => {
            let run = super::build::analysis_run(ro, run_name, labels, annotations, spec);
            match runs.create(&PostParams::default(), &run).await {
                Ok(_) => {
                    info!(rollout = %name, namespace = %ns, analysisrun = %run_name, "created analysis run")
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Action::TerminateAnalysisRun { name: run_name } => {
            let patch = json!({"spec": {"terminate": true}});
            match runs
                .patch(run_name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => {
                    info!(rollout = %name, namespace = %ns, analysisrun = %run_name, "terminated analysis run")
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Action::DeleteAnalysisRun { name: run_name } => {
            match runs.delete(run_name, &Default::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        _ => {}
    }
    Ok(())
}

/// Creates, terminates or deletes one of the Rollout's Experiments.
async fn execute_experiment(ro: &Rollout, action: &Action, ctx: &Context) -> Result<(), Error> {
    let ns = ro.namespace().unwrap_or_default();
    let name = ro.name_any();
    let experiments: Api<Experiment> = Api::namespaced(ctx.client.clone(), &ns);
    match action {
        Action::CreateExperiment { experiment } => {
            let exp_name = experiment.name_any();
            match experiments.create(&PostParams::default(), experiment).await {
                Ok(_) => {
                    info!(rollout = %name, namespace = %ns, experiment = %exp_name, "created experiment")
                }
                // Created by an earlier reconcile whose cache did not show it yet.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Action::TerminateExperiment { name: exp_name } => {
            let patch = json!({"spec": {"terminate": true}});
            match experiments
                .patch(exp_name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => {
                    info!(rollout = %name, namespace = %ns, experiment = %exp_name, "terminated experiment")
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Action::DeleteExperiment { name: exp_name } => {
            match experiments.delete(exp_name, &Default::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        _ => {}
    }
    Ok(())
}

/// Creates, scales, annotates or deletes one of the Rollout's ReplicaSets.
async fn execute_replica_set(ro: &Rollout, action: &Action, ctx: &Context) -> Result<(), Error> {
    let ns = ro.namespace().unwrap_or_default();
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let replicas = ro.spec.replicas.unwrap_or(1);
    match action {
        Action::CreateReplicaSet {
            hash,
            replicas: initial,
            revision,
        } => {
            let rs = super::build::replica_set(ro, hash, *initial, *revision);
            match rs_api.create(&PostParams::default(), &rs).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    // Ours, not yet in the cache; or someone else's: a collision, resolved by a new hash.
                    let name = rs.name_any();
                    let existing = rs_api.get_opt(&name).await?;
                    if !existing.as_ref().is_some_and(|x| runs_for(ro, x, hash)) {
                        return Err(Error::HashCollision(name));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Action::ScaleReplicaSet {
            name: rs_name, to, ..
        } => {
            let patch = json!({
                "metadata": {"annotations": {DESIRED_REPLICAS_ANNOTATION: replicas.to_string()}},
                "spec": {"replicas": to},
            });
            rs_api
                .patch(rs_name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
        }
        Action::SetScaleDownDeadline {
            name: rs_name,
            deadline,
        } => {
            let value = deadline
                .map(|d| Value::String(d.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
                .unwrap_or(Value::Null);
            let patch = json!({"metadata": {"annotations": {SCALE_DOWN_DEADLINE_ANNOTATION: value}}});
            rs_api
                .patch(rs_name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
        }
        Action::SetReplicaSetRevision {
            name: rs_name,
            revision,
        } => {
            let patch = json!({"metadata": {"annotations": {REVISION_ANNOTATION: revision.to_string()}}});
            rs_api
                .patch(rs_name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
        }
        Action::DeleteReplicaSet { name: rs_name } => {
            match rs_api.delete(rs_name, &Default::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        _ => {}
    }
    Ok(())
}

/// Takes back the hash and the managed-by annotation Sluice put on an object the Rollout no longer names.
async fn release(ro: &Rollout, ctx: &Context, orphan: &plan::Orphan) -> Result<(), Error> {
    let ns = ro.namespace().unwrap_or_default();
    let result = match orphan {
        plan::Orphan::Service(name) => {
            let patch = json!({
                "metadata": {"annotations": {MANAGED_BY_ANNOTATION: null}},
                "spec": {"selector": {HASH_LABEL: null}},
            });
            let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
            services
                .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map(|_| ())
        }
        plan::Orphan::DestinationRule(name) => {
            let api = dr_api(ctx, &ns);
            let doc = serde_json::to_value(api.get(name).await?).unwrap_or_default();
            let patch = istio::release_patch(&doc).map_err(|e| Error::Traffic(format!("{name}: {e}")))?;
            if patch.0.is_empty() {
                return Ok(());
            }
            api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
                .await
                .map(|_| ())
        }
    };
    match result {
        Ok(()) => {
            info!(rollout = %ro.name_any(), namespace = %ns, object = ?orphan, "released");
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Puts a role's ephemeral metadata on a ReplicaSet's pod template (recording what was injected) and on its
/// live pods, which a template change does not restart.
async fn set_ephemeral_metadata(
    ro: &Rollout,
    ctx: &Context,
    rs_name: &str,
    hash: &str,
    recorded: Option<&PodTemplateMetadata>,
    wanted: Option<&PodTemplateMetadata>,
) -> Result<(), Error> {
    let ns = ro.namespace().unwrap_or_default();
    let metadata = ephemeral::metadata_patch(recorded, wanted);
    let record = wanted.map_or(Value::Null, |w| {
        Value::String(serde_json::to_string(w).unwrap_or_default())
    });
    let rs_patch = json!({
        "metadata": {"annotations": {ephemeral::EPHEMERAL_METADATA_ANNOTATION: record}},
        "spec": {"template": {"metadata": metadata}},
    });
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    rs_api
        .patch(rs_name, &PatchParams::default(), &Patch::Merge(rs_patch))
        .await?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = format!("{HASH_LABEL}={hash}");
    for pod in pods
        .list_metadata(&ListParams::default().labels(&selector))
        .await?
        .items
    {
        let patch = json!({"metadata": metadata});
        match pods
            .patch(&pod.name_any(), &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica_set(owner_kind: &str) -> Arc<Packed<ReplicaSet>> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web-abc", "namespace": "shop", "ownerReferences": [{
                    "apiVersion": "argoproj.io/v1alpha1", "kind": owner_kind, "name": "web",
                    "uid": "u1", "controller": true
                }]}
            }))
            .unwrap(),
        )
    }

    #[tokio::test]
    async fn a_rollouts_replica_set_change_is_noted_and_passed_on() {
        let seen = Arc::new(super::super::pacing::ReplicaSetChanges::default());
        let events = futures::stream::iter([replica_set("Rollout"), replica_set("Experiment")]);
        let passed: Vec<_> = noting_changes(events, seen.clone()).collect().await;
        assert_eq!(passed.len(), 2, "every event passes through");
        let later = std::time::Instant::now() + Duration::from_millis(50);
        let key = ("shop".to_string(), "web".to_string());
        assert!(
            seen.trigger(&key, later) < later,
            "the change is where the step clock starts"
        );
        let other = ("shop".to_string(), "other".to_string());
        assert_eq!(
            seen.trigger(&other, later),
            later,
            "nothing noted for another Rollout"
        );
    }
}
