//! The Experiment of a canary `experiment` step, pure: its name, labels and spec as upstream builds them from
//! the step and the canary and stable ReplicaSets, and which of a Rollout's Experiments the history limits drop.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::PodTemplateSpec,
    apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta},
};
use kube::{Resource, ResourceExt};
use sluice_analysis::Phase;
use sluice_crds::{
    experiment::{Experiment, ExperimentAnalysisTemplateRef, ExperimentSpec, TemplateSpec},
    rollout::{Rollout, RolloutExperimentStep, RolloutExperimentTemplate, TemplateService},
};

use super::analysis::{self as ra, RunInfo};

/// `specRef` of a template made from the canary ReplicaSet.
pub const SPEC_REF_CANARY: &str = "canary";
/// `specRef` of a template made from the stable ReplicaSet.
pub const SPEC_REF_STABLE: &str = "stable";

/// An Experiment the Rollout owns, as the planner needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct ExperimentInfo {
    /// Name.
    pub name: String,
    /// status.phase (Pending when none yet).
    pub phase: Phase,
    /// status.message.
    pub message: Option<String>,
    /// `spec.terminate` is set.
    pub terminating: bool,
    /// When it was created, seconds since the epoch (for history order).
    pub created: i64,
    /// Its `rollouts-pod-template-hash` label: the canary hash it was made for.
    pub hash: Option<String>,
    /// Its templates' statuses.
    pub templates: Vec<TemplateInfo>,
}

/// One template of an Experiment, from its status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TemplateInfo {
    /// Template name.
    pub name: String,
    /// The Service the Experiment created for it, if any.
    pub service: Option<String>,
    /// The pod-template hash of its ReplicaSet.
    pub pod_template_hash: Option<String>,
}

/// The pod template of one of the Rollout's ReplicaSets, as an experiment template copies it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RsTemplate {
    /// The ReplicaSet's pod-template hash.
    pub hash: String,
    /// spec.template.
    pub template: PodTemplateSpec,
    /// spec.selector.
    pub selector: LabelSelector,
    /// spec.minReadySeconds.
    pub min_ready_seconds: Option<i32>,
}

/// `<rollout>-<hash>-<revision>-<step>`: the name of a step's Experiment before any collision suffix.
pub fn base_name(rollout: &str, hash: &str, revision: i64, step: usize) -> String {
    format!("{rollout}-{hash}-{revision}-{step}")
}

/// Whether `name` is `base` or `base` with a collision suffix (`-1`, `-2`, ...).
pub fn belongs(name: &str, base: &str) -> bool {
    name == base
        || name
            .strip_prefix(base)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// `base`, or `base-N` with the first N whose name no Experiment has (upstream's collision handling).
pub fn free_name(base: &str, taken: &[ExperimentInfo]) -> String {
    let mut name = base.to_string();
    let mut n = 1;
    while taken.iter().any(|e| e.name == name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

/// What [`build`] makes an Experiment from.
pub struct Sources<'a> {
    /// The Rollout.
    pub rollout: &'a Rollout,
    /// The experiment step.
    pub step: &'a RolloutExperimentStep,
    /// The Experiment's name.
    pub name: &'a str,
    /// The Rollout's revision.
    pub revision: i64,
    /// The canary (new) ReplicaSet's template.
    pub canary: &'a RsTemplate,
    /// The stable ReplicaSet's template.
    pub stable: &'a RsTemplate,
    /// The controller instance the Rollout is labelled for.
    pub instance_id: Option<&'a str>,
}

/// The Experiment of an experiment step, as upstream's GetExperimentFromTemplate builds it: the Rollout's labels
/// plus the canary hash (and instance id), the revision annotation, a controller owner reference, each template
/// copied from the ReplicaSet its specRef names (hash label included: the Experiment's controller puts its own
/// ReplicaSet's hash over it), and the analyses with their arguments resolved.
pub fn build(src: &Sources) -> Result<Experiment, String> {
    let ro = src.rollout;
    let step = src.step;
    let mut labels: BTreeMap<String, String> = ro.labels().clone();
    labels.insert(super::HASH_LABEL.into(), src.canary.hash.clone());
    if let Some(id) = src.instance_id.filter(|id| !id.is_empty()) {
        labels.insert(crate::scope::INSTANCE_ID_LABEL.into(), id.into());
    }
    let annotations = BTreeMap::from([(super::REVISION_ANNOTATION.to_string(), src.revision.to_string())]);
    let templates = step
        .templates
        .iter()
        .map(|t| template(t, src.canary, src.stable))
        .collect::<Result<Vec<_>, _>>()?;
    let mut analyses = Vec::new();
    for a in step.analyses.iter().flatten() {
        let args = a
            .args
            .iter()
            .flatten()
            .map(|arg| ra::resolve_argument(arg, ro, &src.stable.hash, &src.canary.hash))
            .collect::<Result<Vec<_>, _>>()?;
        analyses.push(ExperimentAnalysisTemplateRef {
            name: a.name.clone(),
            template_name: a.template_name.clone(),
            cluster_scope: a.cluster_scope,
            args: (!args.is_empty()).then_some(args),
            required_for_completion: a.required_for_completion,
        });
    }
    Ok(Experiment {
        metadata: ObjectMeta {
            name: Some(src.name.to_string()),
            namespace: ro.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: ro.controller_owner_ref(&()).map(|mut o| {
                o.block_owner_deletion = Some(true);
                vec![o]
            }),
            ..Default::default()
        },
        spec: ExperimentSpec {
            templates,
            duration: step.duration.clone(),
            progress_deadline_seconds: ro.spec.progress_deadline_seconds,
            terminate: None,
            analyses: (!analyses.is_empty()).then_some(analyses),
            scale_down_delay_seconds: step.scale_down_delay_seconds,
            dry_run: step.dry_run.clone(),
            measurement_retention: step.measurement_retention.clone(),
            analysis_run_metadata: step.analysis_run_metadata.clone(),
        },
        status: None,
    })
}

/// One experiment template: the named ReplicaSet's pod template, selector and minReadySeconds, the step's extra
/// labels (on the pods and in the selector) and annotations, and a Service when it has a weight or asks for one.
fn template(
    t: &RolloutExperimentTemplate,
    canary: &RsTemplate,
    stable: &RsTemplate,
) -> Result<TemplateSpec, String> {
    let source = match t.spec_ref.as_str() {
        SPEC_REF_CANARY => canary,
        SPEC_REF_STABLE => stable,
        _ => return Err("Invalid template step SpecRef: must be canary or stable".into()),
    };
    let mut pod = source.template.clone();
    let mut selector = t.selector.clone().unwrap_or_else(|| source.selector.clone());
    if let Some(extra) = t.metadata.as_ref().and_then(|m| m.labels.as_ref()) {
        let meta = pod.metadata.get_or_insert_with(Default::default);
        let pod_labels = meta.labels.get_or_insert_with(Default::default);
        let match_labels = selector.match_labels.get_or_insert_with(Default::default);
        for (k, v) in extra {
            pod_labels.insert(k.clone(), v.clone());
            match_labels.insert(k.clone(), v.clone());
        }
    }
    if let Some(extra) = t.metadata.as_ref().and_then(|m| m.annotations.as_ref()) {
        let meta = pod.metadata.get_or_insert_with(Default::default);
        let pod_annotations = meta.annotations.get_or_insert_with(Default::default);
        for (k, v) in extra {
            pod_annotations.insert(k.clone(), v.clone());
        }
    }
    let service = (t.weight.is_some() || t.service.is_some()).then(|| TemplateService {
        name: t
            .service
            .as_ref()
            .and_then(|s| s.name.clone())
            .filter(|n| !n.is_empty()),
    });
    Ok(TemplateSpec {
        name: t.name.clone(),
        replicas: t.replicas,
        min_ready_seconds: source.min_ready_seconds,
        selector,
        template: pod,
        service,
    })
}

/// Experiments to delete, oldest first, none of them current: those made for a ReplicaSet that no longer exists
/// (or with no hash label), and completed ones beyond the history limits (Successful against the successful
/// limit; Failed, Error and Inconclusive against the unsuccessful one), as upstream's FilterExperimentsToDelete.
pub fn to_delete(
    experiments: &[ExperimentInfo],
    current: Option<&str>,
    rs_hashes: &[&str],
    successful_limit: i32,
    unsuccessful_limit: i32,
) -> Vec<String> {
    let others: Vec<&ExperimentInfo> = experiments
        .iter()
        .filter(|e| Some(e.name.as_str()) != current)
        .collect();
    let orphaned = |e: &ExperimentInfo| e.hash.as_deref().is_none_or(|h| !rs_hashes.contains(&h));
    let mut out: Vec<(i64, String)> = others
        .iter()
        .filter(|e| orphaned(e))
        .map(|e| (e.created, e.name.clone()))
        .collect();
    let kept: Vec<RunInfo> = others
        .iter()
        .filter(|e| !orphaned(e))
        .map(|e| RunInfo {
            name: e.name.clone(),
            phase: e.phase,
            message: None,
            terminating: e.terminating,
            created: e.created,
        })
        .collect();
    for name in ra::runs_to_delete(&kept, &[], successful_limit, unsuccessful_limit) {
        let created = kept.iter().find(|r| r.name == name).map_or(0, |r| r.created);
        out.push((created, name));
    }
    out.sort();
    out.into_iter().map(|(_, name)| name).collect()
}
