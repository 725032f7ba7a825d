//! The Experiment controller's I/O: watches, observation, executing a plan's actions and writing the status.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::{
    api::{apps::v1::ReplicaSet, core::v1::Service},
    jiff::Timestamp,
};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::{
        Controller,
        controller::Action as Requeue,
        reflector::{self, Store},
        watcher,
    },
};
use serde_json::json;
use sluice_analysis::Phase;
use sluice_crds::{
    analysis::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate},
    experiment::Experiment,
};
use tracing::{info, warn};

use super::{
    EXPERIMENT_NAME_ANNOTATION, TEMPLATE_NAME_ANNOTATION,
    plan::{self, Action, Observed, RsInfo, RunState, ServiceSeen},
};
use crate::{
    events::EventWriter,
    packed::Packed,
    rollout::{HASH_LABEL, SCALE_DOWN_DEADLINE_ANNOTATION, analysis::Templates},
};

/// Errors of one reconcile; retried with backoff, never fatal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("{0}")]
    Kube(#[from] kube::Error),
    /// A cached object could not be decoded.
    #[error("cache: {0}")]
    Cache(String),
}

/// What every reconcile shares.
struct Context {
    client: Client,
    replica_sets: Store<Packed<ReplicaSet>>,
    analysis_runs: Store<AnalysisRun>,
    templates: Store<AnalysisTemplate>,
    cluster_templates: Store<ClusterAnalysisTemplate>,
    cluster_templates_read: bool,
    events: EventWriter,
    metrics: Arc<crate::metrics::Metrics>,
    /// resourceVersion after this controller's last status write per Experiment: an older cached copy is stale.
    written: std::sync::Mutex<std::collections::HashMap<(String, String), u64>>,
    backoff: crate::backoff::Backoff,
    gate: crate::ready::Gate,
}

/// The caches an Experiment reconcile reads.
const CACHES: [&str; 5] = [
    "experiments",
    crate::rollout::controller::REPLICA_SETS_CACHE,
    "experiment-analysistemplates",
    CLUSTER_TEMPLATES_CACHE,
    crate::analysisrun::controller::CACHE,
];
const CLUSTER_TEMPLATES_CACHE: &str = "experiment-clusteranalysistemplates";

/// Resync period, as upstream's (an Experiment with nothing due is looked at again after it).
const RESYNC: Duration = Duration::from_secs(900);

/// Watches Experiments (of this controller instance), their ReplicaSets and AnalysisRuns, and reconciles until
/// `shutdown` resolves.
pub async fn run(
    client: Client,
    (scope, workers): (crate::scope::Scope, u16),
    metrics: Arc<crate::metrics::Metrics>,
    readiness: Arc<crate::ready::Readiness>,
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
    let caches: Vec<&str> = CACHES
        .into_iter()
        .filter(|c| !(scope.namespaced && *c == CLUSTER_TEMPLATES_CACHE))
        .collect();
    let gate = readiness.gate(&caches);
    let instance = watcher::Config::default().labels(&scope.instance_selector());
    let (ex_store, ex_stream) =
        crate::ready::reflected(scope.api::<Experiment>(&client), instance, &gate, CACHES[0]);
    // Experiment ReplicaSets carry the pod-template-hash label, as Rollouts' do: one cache serves both.
    let (rs_store, rs_stream) = replica_sets;
    let (tpl_store, tpl_stream) = crate::ready::reflected(
        scope.api::<AnalysisTemplate>(&client),
        watcher::Config::default(),
        &gate,
        CACHES[2],
    );
    let (ctpl_store, ctpl_stream) = if scope.namespaced {
        let (store, _writer) = reflector::store();
        (store, futures::stream::empty().left_stream())
    } else {
        let api = Api::<ClusterAnalysisTemplate>::all(client.clone());
        let (store, stream) =
            crate::ready::reflected(api, watcher::Config::default(), &gate, CLUSTER_TEMPLATES_CACHE);
        (store, stream.right_stream())
    };
    let _ = metrics.caches().experiments.set(ex_store.clone());
    let ctx = Arc::new(Context {
        client: client.clone(),
        replica_sets: rs_store,
        analysis_runs: analysis_runs.0,
        templates: tpl_store,
        cluster_templates: ctpl_store,
        cluster_templates_read: !scope.namespaced,
        events: EventWriter::new(client, "rollouts-controller"),
        metrics,
        written: Default::default(),
        backoff: Default::default(),
        gate: gate.clone(),
    });
    // The template caches only need to be kept; a change of one is seen at the next reconcile.
    let templates_kept = futures::stream::select(tpl_stream.map(|_| ()), ctpl_stream.map(|_| ()));
    tokio::spawn(templates_kept.for_each(|_| async {}));
    Controller::for_stream(ex_stream, ex_store)
        .with_config(kube::runtime::controller::Config::default().concurrency(workers))
        .reconcile_all_on(gate.opening())
        .owns_shared_stream(rs_stream)
        .owns_shared_stream(analysis_runs.1)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                crate::backoff::log_stream_error("experiment", &e);
            }
        })
        .await;
}

fn key_of(ex: &Experiment) -> String {
    format!("{}/{}", ex.namespace().unwrap_or_default(), ex.name_any())
}

fn resource_version(ex: &Experiment) -> Option<u64> {
    ex.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
}

fn error_policy(ex: Arc<Experiment>, err: &Error, ctx: Arc<Context>) -> Requeue {
    let reason = match err {
        Error::Kube(e) => crate::backoff::kube_reason(e),
        Error::Cache(_) => "Cache",
    };
    ctx.metrics.reconcile_failed("experiment", reason);
    let key = key_of(&ex);
    let delay = ctx.backoff.failed(&key);
    warn!(experiment = %key, reason, error = %err, retry_in = ?delay, "reconcile failed; retrying");
    Requeue::requeue(delay)
}

async fn reconcile(ex: Arc<Experiment>, ctx: Arc<Context>) -> Result<Requeue, Error> {
    if !ctx.gate.is_open() {
        // Everything is reconciled when the gate opens.
        return Ok(Requeue::await_change());
    }
    let result = match reconcile_experiment(&ex, &ctx).await {
        Err(Error::Kube(e)) if crate::status_patch::is_conflict(&e) => {
            // Changed since read (e.g. terminated by a user): planned again from what is there now.
            Ok(Requeue::requeue(Duration::from_millis(100)))
        }
        r => r,
    };
    if result.is_ok() {
        ctx.backoff.succeeded(&key_of(&ex));
    }
    result
}

async fn reconcile_experiment(ex: &Experiment, ctx: &Context) -> Result<Requeue, Error> {
    let ns = ex.namespace().unwrap_or_default();
    let name = ex.name_any();
    let key = (ns.clone(), name.clone());
    if ex.meta().deletion_timestamp.is_some() {
        if let Ok(mut w) = ctx.written.lock() {
            w.remove(&key);
        }
        return Ok(Requeue::await_change());
    }
    let last_written = ctx.written.lock().ok().and_then(|w| w.get(&key).copied());
    if let (Some(written), Some(cached)) = (last_written, resource_version(ex))
        && cached < written
    {
        // Our own last write has not reached the cache yet; its watch event brings the next reconcile.
        return Ok(Requeue::requeue(Duration::from_millis(200)));
    }
    let templates = templates(ctx, &ns);
    let observed = observe(ex, ctx, &templates).await?;
    let mut plan = plan::plan(&observed, Timestamp::now());
    tracing::debug!(experiment = %name, namespace = %ns, actions = ?plan.actions, requeue = ?plan.requeue_after, "planned");
    for action in &plan.actions {
        if let Some((template, what, why)) = execute(ex, action, ctx).await? {
            // The API server will not take the object as it is: the template errs and the experiment ends.
            plan::creation_refused(&mut plan.status, &template, what, &why);
            plan.events.push(plan::Event {
                warning: true,
                reason: "TemplateError".into(),
                message: format!("Failed to create {what} for template '{template}': {why}"),
                to_rollout: false,
            });
            break;
        }
    }
    publish(ex, ctx, &plan.events).await;
    write_status(ex, ctx, &plan.status).await?;
    let mut after = plan.requeue_after.unwrap_or(RESYNC).min(RESYNC);
    if !plan.actions.is_empty() {
        after = after.min(Duration::from_millis(250));
    }
    Ok(Requeue::requeue(after))
}

/// The AnalysisTemplates of the namespace and the ClusterAnalysisTemplates, from the caches.
fn templates(ctx: &Context, ns: &str) -> Templates {
    Templates {
        namespaced: ctx
            .templates
            .state()
            .iter()
            .filter(|t| t.namespace().as_deref() == Some(ns))
            .map(|t| (t.name_any(), t.spec.clone()))
            .collect(),
        cluster: ctx
            .cluster_templates
            .state()
            .iter()
            .map(|t| (t.name_any(), t.spec.0.clone()))
            .collect(),
        cluster_not_watched: !ctx.cluster_templates_read,
    }
}

/// Whether `meta` names `ex` as its controller and carries the claim annotations of one of its templates;
/// returns the template.
fn claimed_by(
    ex: &Experiment,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<String> {
    let uid = ex.uid()?;
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))?;
    let annotations = meta.annotations.as_ref()?;
    if controller.uid != uid || annotations.get(EXPERIMENT_NAME_ANNOTATION) != Some(&ex.name_any()) {
        return None;
    }
    let template = annotations.get(TEMPLATE_NAME_ANNOTATION)?;
    ex.spec
        .templates
        .iter()
        .any(|t| &t.name == template)
        .then(|| template.clone())
}

async fn observe<'a>(
    ex: &'a Experiment,
    ctx: &Context,
    templates: &'a Templates,
) -> Result<Observed<'a>, Error> {
    let ns = ex.namespace().unwrap_or_default();
    let mut replica_sets = BTreeMap::new();
    let uid = ex.uid();
    for packed in ctx.replica_sets.state() {
        let controller = packed
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true));
        if packed.namespace().as_deref() != Some(ns.as_str()) || controller.map(|o| &o.uid) != uid.as_ref() {
            continue;
        }
        let rs = packed
            .unpack()
            .map_err(|e| Error::Cache(format!("ReplicaSet {}: {e}", packed.name_any())))?;
        let Some(template) = claimed_by(ex, &rs.metadata) else {
            continue;
        };
        let status = rs.status.clone().unwrap_or_default();
        replica_sets.insert(
            template,
            RsInfo {
                name: rs.name_any(),
                hash: rs.labels().get(HASH_LABEL).cloned().unwrap_or_default(),
                spec_replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                replicas: status.replicas,
                ready: status.ready_replicas.unwrap_or(0),
                available: status.available_replicas.unwrap_or(0),
                scale_down_deadline: rs.annotations().get(SCALE_DOWN_DEADLINE_ANNOTATION).cloned(),
            },
        );
    }
    let services_api: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    let mut services = BTreeMap::new();
    let statuses = ex
        .status
        .iter()
        .flat_map(|s| s.template_statuses.iter().flatten());
    for t in &ex.spec.templates {
        // Services are not watched: the one a template has (or had, per its status) is read by name.
        let had = statuses
            .clone()
            .find(|s| s.name == t.name)
            .and_then(|s| s.service_name.clone());
        let Some(svc_name) = t
            .service
            .as_ref()
            .map(|_| super::build::service_name(ex, t))
            .or(had)
        else {
            continue;
        };
        if let Some(svc) = services_api.get_opt(&svc_name).await? {
            let owned = claimed_by(ex, &svc.metadata).as_deref() == Some(t.name.as_str());
            services.insert(
                t.name.clone(),
                ServiceSeen {
                    name: svc_name,
                    owned,
                },
            );
        }
    }
    let runs_api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &ns);
    let mut runs = BTreeMap::new();
    for r in ex.status.iter().flat_map(|s| s.analysis_runs.iter().flatten()) {
        if r.analysis_run.is_empty() {
            continue;
        }
        let key = reflector::ObjectRef::new(&r.analysis_run).within(&ns);
        // A run just made may not be cached yet: it is read from the API server then.
        let run = match ctx.analysis_runs.get(&key) {
            Some(run) => Some((*run).clone()),
            None => runs_api.get_opt(&r.analysis_run).await?,
        };
        if let Some(run) = run {
            let status = run.status.clone().unwrap_or_default();
            runs.insert(
                r.analysis_run.clone(),
                RunState {
                    phase: Phase::parse(&status.phase),
                    message: status.message.clone(),
                    terminating: run.spec.terminate == Some(true),
                },
            );
        }
    }
    let uid = ex.uid().unwrap_or_default();
    let prefix = format!("{}-", ex.name_any());
    let taken_run_names = ctx
        .analysis_runs
        .state()
        .iter()
        .filter(|r| r.namespace().as_deref() == Some(ns.as_str()) && r.name_any().starts_with(&prefix))
        .map(|r| {
            let ours = r
                .owner_references()
                .iter()
                .any(|o| o.uid == uid && o.controller == Some(true));
            let phase = Phase::parse(r.status.as_ref().map(|s| s.phase.as_str()).unwrap_or_default());
            (r.name_any(), ours && !phase.completed())
        })
        .collect();
    Ok(Observed {
        experiment: ex,
        replica_sets,
        services,
        runs,
        taken_run_names,
        templates,
    })
}

/// Whether the API server refused an object for what it says (invalid, forbidden, taken), which retrying
/// cannot fix.
fn refused(e: &kube::Error) -> Option<String> {
    match e {
        kube::Error::Api(s) if matches!(s.code, 400 | 403 | 422) => Some(s.message.clone()),
        _ => None,
    }
}

/// Performs one action. Returns (template, kind, why) when the API server refused to create a template's
/// ReplicaSet or Service.
async fn execute(
    ex: &Experiment,
    action: &Action,
    ctx: &Context,
) -> Result<Option<(String, &'static str, String)>, Error> {
    let ns = ex.namespace().unwrap_or_default();
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let svc_api: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    let runs_api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &ns);
    let log = |what: &str| info!(experiment = %ex.name_any(), namespace = %ns, "{what}");
    match action {
        Action::CreateReplicaSet {
            template,
            replica_set,
        } => {
            match rs_api.create(&PostParams::default(), replica_set).await {
                Ok(_) => log(&format!("Created ReplicaSet {}", replica_set.name_any())),
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    // Ours when the cache lags; someone else's otherwise.
                    let existing = rs_api.get(&replica_set.name_any()).await?;
                    if claimed_by(ex, &existing.metadata).as_deref() != Some(template.as_str()) {
                        return Ok(Some((template.clone(), "ReplicaSet", s.message)));
                    }
                }
                Err(e) => match refused(&e) {
                    Some(why) => return Ok(Some((template.clone(), "ReplicaSet", why))),
                    None => return Err(e.into()),
                },
            }
        }
        Action::ScaleReplicaSet { name, from, to } => {
            // Pinned to the scale planned from: a ReplicaSet changed meanwhile is planned again.
            let patch = json!([
                {"op": "test", "path": "/spec/replicas", "value": from},
                {"op": "replace", "path": "/spec/replicas", "value": to},
            ]);
            let patch: json_patch::Patch = serde_json::from_value(patch).unwrap_or_default();
            rs_api
                .patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
                .await?;
            log(&format!("Scaled ReplicaSet {name} from {from} to {to}"));
        }
        Action::SetScaleDownDeadline { name, deadline } => {
            let patch = json!({"metadata": {"annotations": {SCALE_DOWN_DEADLINE_ANNOTATION: deadline}}});
            rs_api
                .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
        }
        Action::RemoveScaleDownDeadline { name } => {
            let patch = json!({"metadata": {"annotations": {SCALE_DOWN_DEADLINE_ANNOTATION: null}}});
            rs_api
                .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
        }
        Action::CreateService { template, service } => {
            match svc_api.create(&PostParams::default(), service).await {
                Ok(_) => log(&format!("Created Service {}", service.name_any())),
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => match refused(&e) {
                    Some(why) => return Ok(Some((template.clone(), "Service", why))),
                    None => return Err(e.into()),
                },
            }
        }
        Action::DeleteService { name } => match svc_api.delete(name, &DeleteParams::default()).await {
            Ok(_) => log(&format!("Deleted Service {name}")),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        },
        Action::CreateAnalysisRun(run) => match runs_api.create(&PostParams::default(), run).await {
            Ok(_) => log(&format!("Created AnalysisRun {}", run.name_any())),
            // Made by an earlier reconcile whose status write did not land.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        },
        Action::TerminateAnalysisRun { name } => {
            let patch = json!({"spec": {"terminate": true}});
            runs_api
                .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
        }
    }
    Ok(None)
}

/// The Rollout that owns the Experiment (an experiment step's), if one does.
fn owning_rollout(ex: &Experiment) -> Option<k8s_openapi::api::core::v1::ObjectReference> {
    let owner = ex
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "Rollout")?;
    Some(k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(owner.api_version.clone()),
        kind: Some(owner.kind.clone()),
        name: Some(owner.name.clone()),
        namespace: ex.namespace(),
        uid: Some(owner.uid.clone()),
        ..Default::default()
    })
}

/// Records events on the Experiment (and the analyses' transitions on its Rollout), in order, and logs them.
async fn publish(ex: &Experiment, ctx: &Context, events: &[plan::Event]) {
    let reference = ex.object_ref(&());
    let rollout = owning_rollout(ex);
    // Told once per version planned from: a plan made again from the same version repeats no event.
    let planned = ex.resource_version().unwrap_or_default();
    for ev in events {
        if let Err(e) = ctx
            .events
            .publish_once(&reference, &planned, ev.warning, &ev.reason, &ev.message)
            .await
        {
            warn!(experiment = %ex.name_any(), error = %e, "could not record event");
        }
        if let Some(ro) = rollout.as_ref().filter(|_| ev.to_rollout)
            && let Err(e) = ctx
                .events
                .publish_once(ro, &planned, true, &ev.reason, &ev.message)
                .await
        {
            warn!(experiment = %ex.name_any(), error = %e, "could not record event on the Rollout");
        }
        info!(experiment = %ex.name_any(), namespace = ex.namespace(), reason = %ev.reason, "{}", ev.message);
    }
}

/// Writes the status when it changed, conditional on the version planned from.
async fn write_status(
    ex: &Experiment,
    ctx: &Context,
    status: &sluice_crds::experiment::ExperimentStatus,
) -> Result<(), Error> {
    let current = ex.status.clone().unwrap_or_default();
    if *status == current {
        return Ok(());
    }
    let (name, ns) = (ex.name_any(), ex.namespace().unwrap_or_default());
    let api: Api<Experiment> = Api::namespaced(ctx.client.clone(), &ns);
    let planned = ex.resource_version();
    let updated = crate::status_patch::write_at(&api, &name, planned.as_deref(), &current, status).await?;
    if let (Ok(mut w), Some(rv)) = (ctx.written.lock(), resource_version(&updated)) {
        w.insert((ns, name), rv);
    }
    Ok(())
}
