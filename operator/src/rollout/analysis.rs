//! Analysis for a Rollout, pure: the AnalysisRun spec built from the referenced templates and the Rollout's
//! arguments, run names and labels as upstream writes them, and which runs are current.

use std::collections::{BTreeMap, HashMap};

use sluice_analysis::Phase;
use sluice_crds::{
    analysis::{AnalysisRunSpec, AnalysisTemplateSpec, Argument, ValueFrom},
    rollout::{AnalysisRunArgument, Rollout, RolloutAnalysis},
};

/// Label naming what a run is for: `Step` or `Background`.
pub const ROLLOUT_TYPE_LABEL: &str = "rollout-type";
/// Label on a step run: the index of its step.
pub const STEP_INDEX_LABEL: &str = "step-index";
/// `rollout-type` of a step run.
pub const TYPE_STEP: &str = "Step";
/// `rollout-type` of a background run.
pub const TYPE_BACKGROUND: &str = "Background";
/// Successful (and unsuccessful) runs kept per Rollout unless its spec says otherwise.
pub const DEFAULT_RUN_HISTORY: i32 = 5;

/// The templates a Rollout may reference: its namespace's AnalysisTemplates and the ClusterAnalysisTemplates.
#[derive(Clone, Debug, Default)]
pub struct Templates {
    /// AnalysisTemplates of the Rollout's namespace by name.
    pub namespaced: HashMap<String, AnalysisTemplateSpec>,
    /// ClusterAnalysisTemplates by name.
    pub cluster: HashMap<String, AnalysisTemplateSpec>,
    /// ClusterAnalysisTemplates are not watched (namespaced mode): a reference to one says so.
    pub cluster_not_watched: bool,
}

/// An AnalysisRun owned by the Rollout, as the planner needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    /// Name.
    pub name: String,
    /// Phase (Pending when none yet).
    pub phase: Phase,
    /// Status message.
    pub message: Option<String>,
    /// `spec.terminate` is set.
    pub terminating: bool,
    /// When it was created (for history order), seconds since the epoch.
    pub created: i64,
}

fn merge_template(
    name: &str,
    cluster: bool,
    templates: &Templates,
    depth: usize,
    into: &mut AnalysisTemplateSpec,
) -> Result<(), String> {
    let kind = if cluster {
        "ClusterAnalysisTemplate"
    } else {
        "AnalysisTemplate"
    };
    if depth > 10 {
        return Err(format!(
            "{kind} \"{name}\": templates nested more than 10 deep (a cycle?)"
        ));
    }
    if cluster && templates.cluster_not_watched {
        return Err(format!(
            "{kind} \"{name}\" cannot be read: the controller runs in namespaced mode (--namespaced), \
             where ClusterAnalysisTemplates are not watched; use an AnalysisTemplate of the namespace"
        ));
    }
    let source = if cluster {
        &templates.cluster
    } else {
        &templates.namespaced
    };
    let t = source
        .get(name)
        .ok_or_else(|| format!("{kind} \"{name}\" not found"))?;
    for nested in t.templates.iter().flatten() {
        let nested_name = nested.template_name.as_deref().unwrap_or_default();
        merge_template(
            nested_name,
            nested.cluster_scope == Some(true),
            templates,
            depth + 1,
            into,
        )?;
    }
    for m in t.metrics.iter().flatten() {
        let metrics = into.metrics.get_or_insert_with(Vec::new);
        if metrics.iter().any(|x| x.name == m.name) {
            return Err(format!("two metrics have the same name '{}'", m.name));
        }
        metrics.push(m.clone());
    }
    for a in t.args.iter().flatten() {
        let args = into.args.get_or_insert_with(Vec::new);
        match args.iter_mut().find(|x| x.name == a.name) {
            Some(existing) => {
                if existing.value.is_some() && a.value.is_some() && existing.value != a.value {
                    return Err(format!(
                        "Argument `{}` specified multiple times with different values",
                        a.name
                    ));
                }
                if existing.value.is_none() && existing.value_from.is_none() {
                    *existing = a.clone();
                }
            }
            None => args.push(a.clone()),
        }
    }
    into.dry_run
        .get_or_insert_with(Vec::new)
        .extend(t.dry_run.iter().flatten().cloned());
    into.measurement_retention
        .get_or_insert_with(Vec::new)
        .extend(t.measurement_retention.iter().flatten().cloned());
    Ok(())
}

/// The named AnalysisTemplate (or ClusterAnalysisTemplate) with the templates it nests merged into one spec
/// (metrics, arguments, dry-run and retention), as an Experiment's analysis references it.
pub fn merged_template(
    name: &str,
    cluster: bool,
    templates: &Templates,
) -> Result<AnalysisTemplateSpec, String> {
    let mut merged = AnalysisTemplateSpec::default();
    merge_template(name, cluster, templates, 0, &mut merged)?;
    Ok(merged)
}

/// Reads a field of the Rollout by a `fieldRef` path: `metadata.name`, `metadata.labels['app']`,
/// `spec.template.spec.containers[0].image`, ...
pub fn field_value(ro: &Rollout, path: &str) -> Option<String> {
    let mut v = serde_json::to_value(ro).ok()?;
    let mut rest = path.trim();
    while !rest.is_empty() {
        rest = rest.strip_prefix('.').unwrap_or(rest);
        if let Some(after) = rest.strip_prefix("['").or_else(|| rest.strip_prefix("[\"")) {
            let end = after.find(['\'', '"'])?;
            v = v.get(&after[..end])?.clone();
            rest = after[end + 1..].strip_prefix(']')?;
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            v = v.get(after[..end].trim().parse::<usize>().ok()?)?.clone();
            rest = &after[end + 1..];
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            v = v.get(&rest[..end])?.clone();
            rest = &rest[end..];
        }
    }
    match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// A Rollout's argument with its value resolved: a literal, the `Stable` or `Latest` pod-template hash
/// (`podTemplateHashValue`), or a field of the Rollout (`fieldRef`); no value when it names none.
pub fn resolve_argument(
    a: &AnalysisRunArgument,
    ro: &Rollout,
    stable_hash: &str,
    latest_hash: &str,
) -> Result<Argument, String> {
    let value = match (&a.value, &a.value_from) {
        (Some(v), _) => Some(v.clone()),
        (None, Some(from)) => {
            if let Some(which) = &from.pod_template_hash_value {
                match which.as_str() {
                    "Stable" => Some(stable_hash.to_string()),
                    "Latest" => Some(latest_hash.to_string()),
                    other => {
                        return Err(format!(
                            "args[{}]: podTemplateHashValue must be Stable or Latest, got {other:?}",
                            a.name
                        ));
                    }
                }
            } else if let Some(f) = &from.field_ref {
                Some(field_value(ro, &f.field_path).ok_or_else(|| {
                    format!(
                        "args[{}]: fieldRef {:?} names no field of the Rollout",
                        a.name, f.field_path
                    )
                })?)
            } else {
                None
            }
        }
        (None, None) => None,
    };
    Ok(Argument {
        name: a.name.clone(),
        value,
        value_from: None,
    })
}

/// The AnalysisRun spec of a step or background analysis: the referenced templates merged (composition
/// included), the Rollout's arguments over the templates' (`podTemplateHashValue` and `fieldRef` resolved here;
/// secret references stay references, read only when measuring).
pub fn run_spec(
    analysis: &RolloutAnalysis,
    ro: &Rollout,
    stable_hash: &str,
    latest_hash: &str,
    templates: &Templates,
) -> Result<AnalysisRunSpec, String> {
    let mut merged = AnalysisTemplateSpec::default();
    let refs = analysis.templates.as_deref().unwrap_or_default();
    if refs.is_empty() {
        return Err("analysis has no templates".into());
    }
    for (i, r) in refs.iter().enumerate() {
        let name = r.template_name.as_deref().filter(|n| !n.is_empty());
        let Some(name) = name else {
            return Err(format!("templates[{i}]: templateName is required"));
        };
        merge_template(name, r.cluster_scope == Some(true), templates, 0, &mut merged)?;
    }
    let mut args = merged.args.unwrap_or_default();
    for a in analysis.args.iter().flatten() {
        let arg = resolve_argument(a, ro, stable_hash, latest_hash)?;
        match args.iter_mut().find(|x| x.name == a.name) {
            Some(existing) => *existing = arg,
            None => args.push(arg),
        }
    }
    // A template argument read from a Secret keeps its reference; one from a field of the Rollout is resolved.
    for a in args.iter_mut() {
        if a.value.is_none()
            && let Some(ValueFrom {
                field_ref: Some(f),
                secret_key_ref: None,
            }) = &a.value_from
        {
            a.value = field_value(ro, &f.field_path);
            a.value_from = None;
        }
    }
    let mut dry_run = merged.dry_run.unwrap_or_default();
    dry_run.extend(analysis.dry_run.iter().flatten().cloned());
    let mut retention = merged.measurement_retention.unwrap_or_default();
    retention.extend(analysis.measurement_retention.iter().flatten().cloned());
    Ok(AnalysisRunSpec {
        metrics: merged.metrics.unwrap_or_default(),
        args: (!args.is_empty()).then_some(args),
        dry_run: (!dry_run.is_empty()).then_some(dry_run),
        measurement_retention: (!retention.is_empty()).then_some(retention),
        ..AnalysisRunSpec::default()
    })
}

/// `rollout-type` of a blue-green run before the active Service switches.
pub const TYPE_PRE_PROMOTION: &str = "PrePromotion";
/// `rollout-type` of a blue-green run after the active Service switched.
pub const TYPE_POST_PROMOTION: &str = "PostPromotion";

/// What a Rollout's AnalysisRun is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunKind {
    /// The analysis of canary step N.
    Step(usize),
    /// The canary's background analysis.
    Background,
    /// Blue-green pre-promotion analysis.
    PrePromotion,
    /// Blue-green post-promotion analysis.
    PostPromotion,
}

impl From<Option<usize>> for RunKind {
    fn from(step: Option<usize>) -> Self {
        step.map_or(RunKind::Background, RunKind::Step)
    }
}

impl RunKind {
    /// The `rollout-type` label value, also the word upstream's events use for the run.
    pub fn label(self) -> &'static str {
        match self {
            RunKind::Step(_) => TYPE_STEP,
            RunKind::Background => TYPE_BACKGROUND,
            RunKind::PrePromotion => TYPE_PRE_PROMOTION,
            RunKind::PostPromotion => TYPE_POST_PROMOTION,
        }
    }
    /// The part of the run name after `<rollout>-<hash>-<revision>`.
    fn suffix(self) -> String {
        match self {
            RunKind::Step(i) => format!("-{i}"),
            RunKind::Background => String::new(),
            RunKind::PrePromotion => "-pre".into(),
            RunKind::PostPromotion => "-post".into(),
        }
    }
}

/// `<rollout>-<hash>-<revision>[-<step>|-pre|-post]`, with `.N` appended when that name is taken.
pub fn run_name(
    rollout: &str,
    hash: &str,
    revision: i64,
    kind: impl Into<RunKind>,
    taken: &[RunInfo],
) -> String {
    let base = run_base_name(rollout, hash, revision, kind.into());
    let mut name = base.clone();
    let mut n = 1;
    while taken.iter().any(|r| r.name == name) {
        name = format!("{base}.{n}");
        n += 1;
    }
    name
}

/// The name of a run before any collision suffix.
pub fn run_base_name(rollout: &str, hash: &str, revision: i64, kind: RunKind) -> String {
    format!("{rollout}-{hash}-{revision}{}", kind.suffix())
}

/// Labels of a run: what it is for, its step, the pod-template hash and the Rollout's controller instance
/// (`instance_id`, its `controller-instance-id` label, so that the run stays with that instance), plus the
/// analysis' own labels.
pub fn run_labels(
    analysis: &RolloutAnalysis,
    hash: &str,
    kind: impl Into<RunKind>,
    instance_id: Option<&str>,
) -> BTreeMap<String, String> {
    let kind = kind.into();
    let mut labels = analysis
        .analysis_run_metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(super::HASH_LABEL.into(), hash.into());
    labels.insert(ROLLOUT_TYPE_LABEL.into(), kind.label().into());
    if let RunKind::Step(i) = kind {
        labels.insert(STEP_INDEX_LABEL.into(), i.to_string());
    }
    if let Some(id) = instance_id.filter(|id| !id.is_empty()) {
        labels.insert(crate::scope::INSTANCE_ID_LABEL.into(), id.into());
    }
    labels
}

/// Annotations of a run: the Rollout's revision plus the analysis' own annotations.
pub fn run_annotations(analysis: &RolloutAnalysis, revision: i64) -> BTreeMap<String, String> {
    let mut annotations = analysis
        .analysis_run_metadata
        .as_ref()
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    annotations.insert(super::REVISION_ANNOTATION.into(), revision.to_string());
    annotations
}

/// Completed runs beyond the history limits (oldest first), neither of them current.
pub fn runs_to_delete(
    runs: &[RunInfo],
    current: &[&str],
    successful_limit: i32,
    unsuccessful_limit: i32,
) -> Vec<String> {
    let mut done: Vec<&RunInfo> = runs
        .iter()
        .filter(|r| r.phase.completed() && !current.contains(&r.name.as_str()))
        .collect();
    done.sort_by_key(|r| std::cmp::Reverse((r.created, r.name.clone())));
    let mut out = Vec::new();
    let (mut ok, mut bad) = (0, 0);
    for r in done {
        let (seen, limit) = if r.phase == Phase::Successful {
            (&mut ok, successful_limit)
        } else {
            (&mut bad, unsuccessful_limit)
        };
        *seen += 1;
        if *seen > limit.max(0) {
            out.push(r.name.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_crds::{
        analysis::{Metric, SecretKeyRef},
        rollout::{AnalysisRunArgument, AnalysisTemplateRef, ArgumentValueFrom, FieldRef},
    };

    fn template(metrics: &[&str], args: &[(&str, Option<&str>)]) -> AnalysisTemplateSpec {
        AnalysisTemplateSpec {
            metrics: Some(
                metrics
                    .iter()
                    .map(|m| Metric {
                        name: m.to_string(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            args: Some(
                args.iter()
                    .map(|(n, v)| Argument {
                        name: n.to_string(),
                        value: v.map(String::from),
                        value_from: None,
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn refs(names: &[(&str, bool)]) -> RolloutAnalysis {
        RolloutAnalysis {
            templates: Some(
                names
                    .iter()
                    .map(|(n, c)| AnalysisTemplateRef {
                        template_name: Some(n.to_string()),
                        cluster_scope: c.then_some(true),
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn rollout() -> Rollout {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"strategy": {"canary": {}}, "template": {"spec": {"containers": [{"name": "c", "image": "web:2"}]}}}
        }))
        .unwrap()
    }

    #[test]
    fn templates_compose_and_rollout_args_win() {
        let mut t = Templates::default();
        t.namespaced.insert(
            "rate".into(),
            template(&["success-rate"], &[("service", None), ("hash", None)]),
        );
        let mut nested = template(&["latency"], &[("service", Some("default"))]);
        nested.templates = Some(vec![AnalysisTemplateRef {
            template_name: Some("rate".into()),
            cluster_scope: None,
        }]);
        t.cluster.insert("all".into(), nested);
        let mut a = refs(&[("all", true)]);
        a.args = Some(vec![
            AnalysisRunArgument {
                name: "service".into(),
                value: Some("web-canary".into()),
                value_from: None,
            },
            AnalysisRunArgument {
                name: "hash".into(),
                value: None,
                value_from: Some(ArgumentValueFrom {
                    pod_template_hash_value: Some("Latest".into()),
                    field_ref: None,
                }),
            },
            AnalysisRunArgument {
                name: "app".into(),
                value: None,
                value_from: Some(ArgumentValueFrom {
                    pod_template_hash_value: None,
                    field_ref: Some(FieldRef {
                        field_path: "metadata.labels['app']".into(),
                    }),
                }),
            },
        ]);
        let spec = run_spec(&a, &rollout(), "s1", "l2", &t).unwrap();
        let names: Vec<_> = spec.metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["success-rate", "latency"]);
        let args: Vec<_> = spec
            .args
            .unwrap()
            .into_iter()
            .map(|a| (a.name, a.value))
            .collect();
        assert_eq!(
            args,
            vec![
                ("service".into(), Some("web-canary".into())),
                ("hash".into(), Some("l2".into())),
                ("app".into(), Some("web".into())),
            ]
        );
    }

    #[test]
    fn missing_templates_and_duplicates_are_errors() {
        let t = Templates::default();
        assert_eq!(
            run_spec(&refs(&[("nope", false)]), &rollout(), "", "", &t).unwrap_err(),
            "AnalysisTemplate \"nope\" not found"
        );
        assert_eq!(
            run_spec(&refs(&[("nope", true)]), &rollout(), "", "", &t).unwrap_err(),
            "ClusterAnalysisTemplate \"nope\" not found"
        );
        let mut t = Templates {
            cluster_not_watched: true,
            ..Templates::default()
        };
        t.cluster.insert("nope".into(), template(&["m"], &[]));
        t.namespaced.insert("here".into(), template(&["m"], &[]));
        let err = run_spec(&refs(&[("nope", true)]), &rollout(), "", "", &t).unwrap_err();
        assert!(
            err.starts_with(
                "ClusterAnalysisTemplate \"nope\" cannot be read: the controller runs in namespaced mode"
            ),
            "{err}"
        );
        assert!(run_spec(&refs(&[("here", false)]), &rollout(), "", "", &t).is_ok());
        let mut t = Templates::default();
        t.namespaced.insert("a".into(), template(&["m"], &[]));
        t.namespaced.insert("b".into(), template(&["m"], &[]));
        assert_eq!(
            run_spec(&refs(&[("a", false), ("b", false)]), &rollout(), "", "", &t).unwrap_err(),
            "two metrics have the same name 'm'"
        );
        let mut cyclic = template(&[], &[]);
        cyclic.templates = Some(vec![AnalysisTemplateRef {
            template_name: Some("c".into()),
            cluster_scope: None,
        }]);
        t.namespaced.insert("c".into(), cyclic);
        assert!(
            run_spec(&refs(&[("c", false)]), &rollout(), "", "", &t)
                .unwrap_err()
                .contains("a cycle?")
        );
    }

    #[test]
    fn secret_arguments_stay_references_and_unsupplied_ones_stay_empty() {
        let mut spec = template(&["m"], &[("missing", None)]);
        spec.args.as_mut().unwrap().push(Argument {
            name: "token".into(),
            value: None,
            value_from: Some(ValueFrom {
                secret_key_ref: Some(SecretKeyRef {
                    name: "creds".into(),
                    key: "token".into(),
                }),
                field_ref: None,
            }),
        });
        let mut t = Templates::default();
        t.namespaced.insert("t".into(), spec);
        let run = run_spec(&refs(&[("t", false)]), &rollout(), "", "", &t).unwrap();
        let args = run.args.unwrap();
        assert_eq!(args[0].value, None, "left for the run to report as not supplied");
        assert!(args[1].value.is_none() && args[1].value_from.as_ref().unwrap().secret_key_ref.is_some());
    }

    #[test]
    fn field_paths() {
        let ro = rollout();
        assert_eq!(field_value(&ro, "metadata.name").as_deref(), Some("web"));
        assert_eq!(field_value(&ro, "metadata.labels['app']").as_deref(), Some("web"));
        assert_eq!(
            field_value(&ro, "spec.template.spec.containers[0].image").as_deref(),
            Some("web:2")
        );
        assert_eq!(field_value(&ro, "metadata.labels['nope']"), None);
        assert_eq!(field_value(&ro, "metadata.labels['unterminated"), None);
    }

    #[test]
    fn a_run_carries_the_instance_id_of_its_rollout() {
        let analysis: RolloutAnalysis = serde_json::from_value(serde_json::json!({
            "analysisRunMetadata": {"labels": {
                "team": "shop",
                "argo-rollouts.argoproj.io/controller-instance-id": "other"
            }}
        }))
        .unwrap();
        let key = crate::scope::INSTANCE_ID_LABEL;
        let cases = [
            (Some("a"), Some("a")),
            (None, Some("other")),
            (Some(""), Some("other")),
        ];
        for (instance, want) in cases {
            let labels = run_labels(&analysis, "abc", Some(1), instance);
            assert_eq!(labels.get(key).map(String::as_str), want, "{instance:?}");
            assert_eq!(labels["team"], "shop");
        }
        let plain = run_labels(&RolloutAnalysis::default(), "abc", None, None);
        assert!(
            !plain.contains_key(key),
            "an unlabelled Rollout's runs stay unlabelled"
        );
    }

    #[test]
    fn names_labels_and_collisions_as_upstream() {
        let taken = |names: &[&str]| -> Vec<RunInfo> {
            names
                .iter()
                .map(|n| RunInfo {
                    name: n.to_string(),
                    phase: Phase::Failed,
                    message: None,
                    terminating: false,
                    created: 0,
                })
                .collect()
        };
        assert_eq!(run_name("web", "abc", 2, Some(1), &[]), "web-abc-2-1");
        assert_eq!(run_name("web", "abc", 2, None, &[]), "web-abc-2");
        assert_eq!(
            run_name(
                "web",
                "abc",
                2,
                Some(1),
                &taken(&["web-abc-2-1", "web-abc-2-1.1"])
            ),
            "web-abc-2-1.2"
        );
        let labels = run_labels(&RolloutAnalysis::default(), "abc", Some(3), None);
        assert_eq!(labels["rollout-type"], "Step");
        assert_eq!(labels["step-index"], "3");
        assert_eq!(labels["rollouts-pod-template-hash"], "abc");
        assert_eq!(
            run_labels(&RolloutAnalysis::default(), "abc", None, None)["rollout-type"],
            "Background"
        );
        assert_eq!(
            run_annotations(&RolloutAnalysis::default(), 4)["rollout.argoproj.io/revision"],
            "4"
        );
    }

    #[test]
    fn history_keeps_five_of_each_and_never_a_current_run() {
        let runs: Vec<RunInfo> = (0..14)
            .map(|i| RunInfo {
                name: format!("r{i}"),
                phase: if i % 2 == 0 {
                    Phase::Successful
                } else {
                    Phase::Error
                },
                message: None,
                terminating: false,
                created: i,
            })
            .collect();
        let gone = runs_to_delete(&runs, &["r0"], 5, 5);
        assert_eq!(
            gone,
            vec!["r3", "r2", "r1"],
            "oldest beyond five of each kind; r0 is current"
        );
    }
}
