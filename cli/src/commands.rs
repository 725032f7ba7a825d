//! The mutating commands: read the Rollout, send upstream's patch, print upstream's line.

use anyhow::{Result, bail};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::Value;
use sluice_crds::{experiment::Experiment, rollout::Rollout};

use crate::{Outcome, actions, client::Ctx};

/// One or more Rollout names.
#[derive(Debug, clap::Args)]
pub struct NameArg {
    /// The Rollouts.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// `promote`.
#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// The Rollout.
    pub name: String,
    /// Perform a full promotion, skipping analysis, pauses, and steps
    #[arg(long)]
    pub full: bool,
    /// Skip currently running canary step (deprecated: use without the flag)
    #[arg(short = 'c', long, hide = true)]
    pub skip_current_step: bool,
    /// Skip remaining steps (deprecated: use --full)
    #[arg(short = 'a', long, hide = true)]
    pub skip_all_steps: bool,
}

/// `retry rollout|experiment`.
#[derive(Debug, clap::Subcommand)]
pub enum RetryCommand {
    /// Retry an aborted rollout
    #[command(alias = "rollouts", alias = "ro")]
    Rollout(NameArg),
    /// Retry an experiment
    #[command(alias = "experiments", alias = "exp")]
    Experiment(NameArg),
}

/// `restart`.
#[derive(Debug, clap::Args)]
pub struct RestartArgs {
    /// The Rollout.
    pub name: String,
    /// Amount of time before a restart. (e.g. 30s, 5m, 1h)
    #[arg(short = 'i', long = "in")]
    pub in_: Option<String>,
}

/// `set image`.
#[derive(Debug, clap::Subcommand)]
pub enum SetCommand {
    /// Update the image of a rollout
    Image(SetImageArgs),
}

/// `set image NAME CONTAINER=IMAGE`.
#[derive(Debug, clap::Args)]
pub struct SetImageArgs {
    /// The Rollout.
    pub name: String,
    /// CONTAINER=IMAGE (`*=IMAGE` for every container).
    pub image: String,
}

/// `undo`.
#[derive(Debug, clap::Args)]
pub struct UndoArgs {
    /// The Rollout.
    pub name: String,
    /// The revision to rollback to. Default to 0 (last revision).
    #[arg(long, default_value_t = 0)]
    pub to_revision: i64,
}

/// An error as upstream words it: the API server's message for API errors ("rollouts.argoproj.io \"x\" not
/// found"), and a plain sentence when the cluster cannot be reached.
pub fn describe(e: &anyhow::Error) -> String {
    for cause in e.chain() {
        if let Some(k) = cause.downcast_ref::<kube::Error>() {
            return match k {
                kube::Error::Api(s) => s.message.clone(),
                kube::Error::HyperError(_) | kube::Error::Service(_) => {
                    format!("unable to connect to the server: {}", root_cause(cause))
                }
                other => chain(other),
            };
        }
    }
    chain(e.as_ref())
}

/// The two innermost causes ("tcp connect error: Connection refused (os error 111)"), without the client
/// stack's wrappers.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut texts = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        texts.push(s.to_string());
        src = s.source();
    }
    let from = texts.len().saturating_sub(2);
    texts[from..].join(": ")
}

fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        src = s.source();
    }
    out
}

fn merge(patch: &str) -> Result<Patch<Value>> {
    Ok(Patch::Merge(serde_json::from_str(patch)?))
}

/// A merge patch of the status subresource, falling back to `fallback` on the main resource when the
/// subresource answers NotFound (a CRD without it), as upstream does.
async fn patch_status(api: &Api<Rollout>, name: &str, status: &str, fallback: &str) -> Result<Rollout> {
    let pp = PatchParams::default();
    match api.patch_status(name, &pp, &merge(status)?).await {
        Err(kube::Error::Api(s)) if s.code == 404 => {
            // Tell a missing Rollout from a missing subresource.
            api.get(name).await?;
            Ok(api.patch(name, &pp, &merge(fallback)?).await?)
        }
        other => Ok(other?),
    }
}

/// Promotes a Rollout as upstream's `promote` does (see actions::promote_patches).
pub async fn promote_with(api: &Api<Rollout>, name: &str, how: actions::Promote) -> Result<Rollout> {
    let ro = api.get(name).await?;
    if let Some(refusal) = actions::promote_refusal(&ro, how) {
        bail!(refusal);
    }
    let p = actions::promote_patches(&ro, how);
    let mut out = ro;
    let mut spec = p.spec;
    if let Some(status) = &p.status {
        match api
            .patch_status(name, &PatchParams::default(), &merge(status)?)
            .await
        {
            Ok(ro) => out = ro,
            Err(kube::Error::Api(s)) if s.code == 404 => spec = p.unified.clone(),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(spec) = spec {
        out = api.patch(name, &PatchParams::default(), &merge(&spec)?).await?;
    }
    Ok(out)
}

/// `promote` (or `promote --full`) of one Rollout: the dashboard's button.
pub async fn promote_rollout(api: &Api<Rollout>, name: &str, full: bool) -> Result<Rollout> {
    let how = actions::Promote {
        full,
        ..Default::default()
    };
    promote_with(api, name, how).await
}

/// `abort` of one Rollout.
pub async fn abort_rollout(api: &Api<Rollout>, name: &str) -> Result<Rollout> {
    patch_status(api, name, actions::ABORT, actions::ABORT).await
}

/// `retry rollout` of one Rollout.
pub async fn retry_rollout(api: &Api<Rollout>, name: &str) -> Result<Rollout> {
    patch_status(api, name, actions::RETRY_ROLLOUT, actions::RETRY_ROLLOUT).await
}

fn rollouts(ctx: &Ctx) -> Api<Rollout> {
    Api::namespaced(ctx.client.clone(), &ctx.namespace)
}

/// `promote`.
pub async fn promote(ctx: &Ctx, a: PromoteArgs) -> Result<Outcome> {
    let how = actions::Promote {
        full: a.full,
        skip_current_step: a.skip_current_step,
        skip_all_steps: a.skip_all_steps,
    };
    let ro = promote_with(&rollouts(ctx), &a.name, how).await?;
    let name = ro.metadata.name.unwrap_or(a.name);
    if a.full {
        println!("rollout '{name}' fully promoted");
    } else {
        println!("rollout '{name}' promoted");
    }
    Ok(Outcome::Ok)
}

/// `abort`.
pub async fn abort(ctx: &Ctx, a: NameArg) -> Result<Outcome> {
    for name in a.names {
        abort_rollout(&rollouts(ctx), &name).await?;
        println!("rollout '{name}' aborted");
    }
    Ok(Outcome::Ok)
}

/// `retry`.
pub async fn retry(ctx: &Ctx, c: RetryCommand) -> Result<Outcome> {
    match c {
        RetryCommand::Rollout(a) => {
            for name in a.names {
                retry_rollout(&rollouts(ctx), &name).await?;
                println!("rollout '{name}' retried");
            }
        }
        RetryCommand::Experiment(a) => {
            let api: Api<Experiment> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
            for name in a.names {
                api.patch(&name, &PatchParams::default(), &merge(actions::RETRY_EXPERIMENT)?)
                    .await?;
                println!("experiment '{name}' retried");
            }
        }
    }
    Ok(Outcome::Ok)
}

async fn patch_spec_each(ctx: &Ctx, names: Vec<String>, patch: &str, verb: &str) -> Result<Outcome> {
    for name in names {
        rollouts(ctx)
            .patch(&name, &PatchParams::default(), &merge(patch)?)
            .await?;
        println!("rollout '{name}' {verb}");
    }
    Ok(Outcome::Ok)
}

/// `pause`.
pub async fn pause(ctx: &Ctx, a: NameArg) -> Result<Outcome> {
    patch_spec_each(ctx, a.names, actions::PAUSE, "paused").await
}

/// `resume`.
pub async fn resume(ctx: &Ctx, a: NameArg) -> Result<Outcome> {
    patch_spec_each(ctx, a.names, actions::UNPAUSE, "resumed").await
}

/// `restart`.
pub async fn restart(ctx: &Ctx, a: RestartArgs) -> Result<Outcome> {
    let delay = match &a.in_ {
        Some(s) => sluice_crds::duration::parse_go_duration(s)
            .ok_or_else(|| anyhow::anyhow!("invalid duration {s:?} (e.g. 30s, 5m, 1h)"))?,
        None => std::time::Duration::ZERO,
    };
    let at = jiff::Timestamp::now() + jiff::SignedDuration::try_from(delay)?;
    let api = rollouts(ctx);
    api.get(&a.name).await?;
    api.patch(
        &a.name,
        &PatchParams::default(),
        &merge(&actions::restart_patch(at))?,
    )
    .await?;
    println!(
        "rollout '{}' restarts in {}",
        a.name,
        a.in_.as_deref().unwrap_or("0s")
    );
    Ok(Outcome::Ok)
}

/// `set image`: an update retried on conflict (5 attempts, as upstream).
pub async fn set(ctx: &Ctx, c: SetCommand) -> Result<Outcome> {
    let SetCommand::Image(a) = c;
    let Some((container, image)) = a.image.split_once('=').filter(|(_, i)| !i.contains('=')) else {
        bail!("expected CONTAINER=IMAGE, got {:?}", a.image);
    };
    let api = rollouts(ctx);
    for attempt in 1..=5 {
        let ro = api.get(&a.name).await?;
        let Some(updated) = actions::set_image(&ro, container, image) else {
            bail!("unable to find container named \"{container}\"");
        };
        match api.replace(&a.name, &PostParams::default(), &updated).await {
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 5 => continue,
            other => {
                other?;
                break;
            }
        }
    }
    println!("rollout \"{}\" image updated", a.name);
    Ok(Outcome::Ok)
}

/// The ReplicaSets the Rollout controls (by selector, then by owner uid).
async fn owned_replica_sets(ctx: &Ctx, ro: &Rollout) -> Result<Vec<ReplicaSet>> {
    let uid = ro.metadata.uid.clone().unwrap_or_default();
    let selector = ro
        .spec
        .selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref())
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let list = api.list(&ListParams::default().labels(&selector)).await?;
    Ok(list
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid && o.controller == Some(true))
        })
        .collect())
}

/// `undo`.
pub async fn undo(ctx: &Ctx, a: UndoArgs) -> Result<Outcome> {
    let api = rollouts(ctx);
    let ro = api.get(&a.name).await?;
    if ro.spec.workload_ref.is_some() {
        bail!(
            "undo of a Rollout with spec.workloadRef is not supported: change the referenced Deployment instead"
        );
    }
    let owned = owned_replica_sets(ctx, &ro).await?;
    let target = actions::undo_target(&a.name, &owned, a.to_revision).map_err(anyhow::Error::msg)?;
    let target_template = serde_json::to_value(target.spec.as_ref().and_then(|s| s.template.as_ref()))?;
    let current = serde_json::to_value(&ro.spec.template)?;
    if actions::derivative(
        &actions::template_without_hash(&current),
        &actions::template_without_hash(&target_template),
    ) {
        println!(
            "skipped rollback (current template already matches revision {})",
            a.to_revision
        );
        return Ok(Outcome::Ok);
    }
    let patch: json_patch::Patch = serde_json::from_value(actions::undo_patch(&target_template))?;
    api.patch(&a.name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "failed restoring revision {}: {}",
                a.to_revision,
                describe(&e.into())
            )
        })?;
    println!("rollout '{}' undo", a.name);
    Ok(Outcome::Ok)
}
