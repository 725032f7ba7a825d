//! The objects of an Experiment, pure: each template's ReplicaSet and Service, and each analysis' AnalysisRun,
//! named, labelled, annotated and owned as upstream makes them.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::ReplicaSet,
        core::v1::{Service, ServicePort},
    },
    apimachinery::pkg::{apis::meta::v1::OwnerReference, util::intstr::IntOrString},
    jiff::Timestamp,
};
use kube::{Resource, ResourceExt};
use serde_json::json;
use sluice_crds::{
    analysis::{AnalysisRun, AnalysisRunSpec, Argument},
    experiment::{Experiment, ExperimentAnalysisTemplateRef, TemplateSpec},
};

use super::{EXPERIMENT_NAME_ANNOTATION, TEMPLATE_NAME_ANNOTATION};
use crate::rollout::{
    HASH_LABEL,
    analysis::{Templates, merged_template},
    hash::pod_template_hash,
};

/// The controller owner reference to the Experiment (blocking its deletion until the owned object is gone).
fn owner(ex: &Experiment) -> Option<OwnerReference> {
    ex.controller_owner_ref(&()).map(|mut o| {
        o.block_owner_deletion = Some(true);
        o
    })
}

/// `<experiment>-<template>`: the name of a template's ReplicaSet (and of its Service unless the template
/// names one).
pub fn replica_set_name(ex: &Experiment, template: &TemplateSpec) -> String {
    format!("{}-{}", ex.name_any(), template.name)
}

/// The name of a template's Service: the one the template gives, else its ReplicaSet's.
pub fn service_name(ex: &Experiment, template: &TemplateSpec) -> String {
    template
        .service
        .as_ref()
        .and_then(|s| s.name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| replica_set_name(ex, template))
}

/// The pod-template hash of a template: the hash of its pod template without any hash label it may carry.
pub fn template_hash(template: &TemplateSpec) -> String {
    let mut pod = template.template.clone();
    if let Some(labels) = pod.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    pod_template_hash(&pod, None)
}

/// The annotations naming the Experiment and template, by which its ReplicaSets and Services are claimed.
fn claim_annotations(ex: &Experiment, template: &TemplateSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (EXPERIMENT_NAME_ANNOTATION.to_string(), ex.name_any()),
        (TEMPLATE_NAME_ANNOTATION.to_string(), template.name.clone()),
    ])
}

/// A template's ReplicaSet `<experiment>-<template>` with `replicas`: the hash label on its labels, selector and
/// pod template, the claim annotations, minReadySeconds and the owner reference.
pub fn replica_set(ex: &Experiment, template: &TemplateSpec, replicas: i32) -> ReplicaSet {
    let hash = template_hash(template);
    let mut pod = template.template.clone();
    let meta = pod.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.clone());
    let mut selector = template.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.clone());
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": replica_set_name(ex, template),
            "namespace": ex.namespace(),
            "labels": {HASH_LABEL: hash},
            "annotations": claim_annotations(ex, template),
            "ownerReferences": owner(ex).into_iter().collect::<Vec<_>>(),
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": template.min_ready_seconds.unwrap_or(0),
            "selector": selector,
            "template": pod,
        }
    }))
    .unwrap_or_default()
}

/// The ports of a template's Service: one per container port, targeting it.
fn service_ports(template: &TemplateSpec) -> Vec<ServicePort> {
    let containers = template.template.spec.iter().flat_map(|s| s.containers.iter());
    containers
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| ServicePort {
            name: p.name.clone().filter(|n| !n.is_empty()),
            protocol: p.protocol.clone(),
            port: p.container_port,
            target_port: Some(IntOrString::Int(p.container_port)),
            ..Default::default()
        })
        .collect()
}

/// A template's Service selecting its pods by their hash, or None when its containers expose no port (a
/// Service needs one; upstream makes none then).
pub fn service(ex: &Experiment, template: &TemplateSpec) -> Option<Service> {
    let ports = service_ports(template);
    if ports.is_empty() {
        return None;
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(ex, template),
            "namespace": ex.namespace(),
            "annotations": claim_annotations(ex, template),
            "ownerReferences": owner(ex).into_iter().collect::<Vec<_>>(),
        },
        "spec": {
            "selector": {HASH_LABEL: template_hash(template)},
            "ports": ports,
        }
    }))
    .ok()
}

/// The values of the experiment variables: `templates.<name>.podTemplateHash` and
/// `templates.<name>.replicaset.name` of each template whose ReplicaSet exists, `experiment.availableAt` once
/// available and `experiment.finishedAt` (availableAt + duration) when it has a duration.
pub fn variables(
    ex: &Experiment,
    replica_sets: &BTreeMap<String, (String, String)>,
) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    let available = ex.status.as_ref().and_then(|s| s.available_at.as_ref());
    if let Some(at) = available {
        vars.insert("experiment.availableAt".into(), rfc3339(at.0));
        let duration = ex
            .spec
            .duration
            .as_deref()
            .and_then(sluice_crds::duration::parse_go_duration);
        if let Some(d) = duration {
            let end = Timestamp::from_second(at.0.as_second() + d.as_secs() as i64).unwrap_or(at.0);
            vars.insert("experiment.finishedAt".into(), rfc3339(end));
        }
    }
    for t in &ex.spec.templates {
        if let Some((name, hash)) = replica_sets.get(&t.name) {
            vars.insert(format!("templates.{}.podTemplateHash", t.name), hash.clone());
            vars.insert(format!("templates.{}.replicaset.name", t.name), name.clone());
        }
    }
    vars
}

/// A time as Go's RFC 3339 (whole seconds, UTC).
fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `value` with every `{{ variable }}` replaced; a variable that has no value is an error, as upstream says it.
pub fn resolve(value: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            // An unclosed tag is text, as fasttemplate leaves it.
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let tag = &after[..end];
        match vars.get(tag.trim()) {
            Some(v) => out.push_str(v),
            None => return Err(format!("failed to resolve {{{{{tag}}}}}")),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `<experiment>-<analysis>`: the name of an analysis' AnalysisRun.
pub fn run_name(ex: &Experiment, analysis: &ExperimentAnalysisTemplateRef) -> String {
    format!("{}-{}", ex.name_any(), analysis.name)
}

/// The AnalysisRun spec of an analysis: the referenced template merged (composition included), the analysis'
/// arguments (experiment variables resolved) over the template's, and the Experiment's dry-run and retention.
pub fn run_spec(
    ex: &Experiment,
    analysis: &ExperimentAnalysisTemplateRef,
    templates: &Templates,
    vars: &BTreeMap<String, String>,
) -> Result<AnalysisRunSpec, String> {
    let cluster = analysis.cluster_scope == Some(true);
    let merged = merged_template(&analysis.template_name, cluster, templates)?;
    let mut args = merged.args.unwrap_or_default();
    for a in analysis.args.iter().flatten() {
        // Upstream passes only literal values from an experiment; a valueFrom leaves the template's argument.
        let Some(value) = &a.value else { continue };
        let arg = Argument {
            name: a.name.clone(),
            value: Some(resolve(value, vars)?),
            value_from: None,
        };
        match args.iter_mut().find(|x| x.name == a.name) {
            Some(existing) => *existing = arg,
            None => args.push(arg),
        }
    }
    if let Some(a) = args.iter().find(|a| a.value.is_none() && a.value_from.is_none()) {
        return Err(format!("args.{} was not resolved", a.name));
    }
    let mut dry_run = merged.dry_run.unwrap_or_default();
    dry_run.extend(ex.spec.dry_run.iter().flatten().cloned());
    let mut retention = merged.measurement_retention.unwrap_or_default();
    retention.extend(ex.spec.measurement_retention.iter().flatten().cloned());
    Ok(AnalysisRunSpec {
        metrics: merged.metrics.unwrap_or_default(),
        args: (!args.is_empty()).then_some(args),
        dry_run: (!dry_run.is_empty()).then_some(dry_run),
        measurement_retention: (!retention.is_empty()).then_some(retention),
        ..AnalysisRunSpec::default()
    })
}

/// An analysis' AnalysisRun, owned by the Experiment: the Experiment's controller-instance label (so that the
/// run stays with the same controller) and the analysisRunMetadata's labels and annotations.
pub fn analysis_run(
    ex: &Experiment,
    analysis: &ExperimentAnalysisTemplateRef,
    spec: AnalysisRunSpec,
) -> AnalysisRun {
    let metadata = ex.spec.analysis_run_metadata.as_ref();
    let mut labels = BTreeMap::new();
    if let Some(id) = ex.labels().get(crate::scope::INSTANCE_ID_LABEL) {
        labels.insert(crate::scope::INSTANCE_ID_LABEL.to_string(), id.clone());
    }
    labels.extend(metadata.and_then(|m| m.labels.clone()).unwrap_or_default());
    let annotations = metadata.and_then(|m| m.annotations.clone()).unwrap_or_default();
    AnalysisRun {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(run_name(ex, analysis)),
            namespace: ex.namespace(),
            labels: (!labels.is_empty()).then_some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: owner(ex).map(|o| vec![o]),
            ..Default::default()
        },
        spec,
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_crds::analysis::{AnalysisTemplateSpec, Metric};

    fn experiment() -> Experiment {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Experiment",
            "metadata": {"name": "exp", "namespace": "shop", "uid": "u1",
                         "labels": {crate::scope::INSTANCE_ID_LABEL: "a"}},
            "spec": {
                "duration": "5m",
                "templates": [{
                    "name": "baseline",
                    "replicas": 2,
                    "minReadySeconds": 3,
                    "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}},
                                 "spec": {"containers": [{"name": "web", "image": "v1",
                                          "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]}},
                    "service": {}
                }],
                "analyses": [{"name": "check", "templateName": "rate",
                              "args": [{"name": "hash", "value": "{{templates.baseline.podTemplateHash}}"},
                                       {"name": "from", "value": "{{ experiment.availableAt }}"}]}],
                "dryRun": [{"metricName": "m"}],
                "analysisRunMetadata": {"labels": {"team": "x"}, "annotations": {"note": "y"}}
            },
            "status": {"availableAt": "2026-01-01T10:00:00Z"}
        }))
        .unwrap()
    }

    #[test]
    fn the_replica_set_is_named_labelled_annotated_and_owned_as_upstream() {
        let ex = experiment();
        let t = &ex.spec.templates[0];
        let rs = replica_set(&ex, t, 0);
        let hash = template_hash(t);
        assert_eq!(rs.name_any(), "exp-baseline");
        assert_eq!(rs.namespace().as_deref(), Some("shop"));
        assert_eq!(
            rs.labels(),
            &BTreeMap::from([(HASH_LABEL.to_string(), hash.clone())])
        );
        assert_eq!(rs.annotations()[EXPERIMENT_NAME_ANNOTATION], "exp");
        assert_eq!(rs.annotations()[TEMPLATE_NAME_ANNOTATION], "baseline");
        let spec = rs.spec.as_ref().unwrap();
        assert_eq!((spec.replicas, spec.min_ready_seconds), (Some(0), Some(3)));
        let sel = spec.selector.match_labels.as_ref().unwrap();
        assert_eq!(
            (sel["app"].as_str(), sel[HASH_LABEL].as_str()),
            ("web", hash.as_str())
        );
        let pod_labels = spec
            .template
            .as_ref()
            .unwrap()
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        assert_eq!(
            (pod_labels["app"].as_str(), pod_labels[HASH_LABEL].as_str()),
            ("web", hash.as_str())
        );
        let o = &rs.owner_references()[0];
        assert_eq!(
            (
                o.kind.as_str(),
                o.name.as_str(),
                o.uid.as_str(),
                o.controller,
                o.block_owner_deletion
            ),
            ("Experiment", "exp", "u1", Some(true), Some(true))
        );
    }

    #[test]
    fn the_hash_ignores_a_hash_label_in_the_template() {
        let ex = experiment();
        let mut t = ex.spec.templates[0].clone();
        let plain = template_hash(&t);
        t.template
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(HASH_LABEL.into(), "x".into());
        assert_eq!(template_hash(&t), plain);
    }

    #[test]
    fn the_service_selects_the_template_hash_on_every_container_port() {
        let ex = experiment();
        let t = &ex.spec.templates[0];
        let svc = service(&ex, t).unwrap();
        assert_eq!(svc.name_any(), "exp-baseline");
        let spec = svc.spec.clone().unwrap();
        assert_eq!(spec.selector.unwrap()[HASH_LABEL], template_hash(t));
        let port = &spec.ports.unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.port, port.target_port.clone()),
            (Some("http"), 8080, Some(IntOrString::Int(8080)))
        );
        assert_eq!(svc.owner_references()[0].kind, "Experiment");
        let mut named = t.clone();
        named.service = Some(sluice_crds::rollout::TemplateService {
            name: Some("preview".into()),
        });
        assert_eq!(service(&ex, &named).unwrap().name_any(), "preview");
        let mut portless = t.clone();
        portless.template.spec.as_mut().unwrap().containers[0].ports = None;
        assert!(
            service(&ex, &portless).is_none(),
            "a Service without a port cannot be made"
        );
    }

    #[test]
    fn variables_are_resolved_and_an_unknown_one_is_an_error() {
        let ex = experiment();
        let rss = BTreeMap::from([(
            "baseline".to_string(),
            ("exp-baseline".to_string(), "abc".to_string()),
        )]);
        let vars = variables(&ex, &rss);
        assert_eq!(vars["experiment.availableAt"], "2026-01-01T10:00:00Z");
        assert_eq!(vars["experiment.finishedAt"], "2026-01-01T10:05:00Z");
        assert_eq!(
            resolve("h={{templates.baseline.podTemplateHash}}", &vars).unwrap(),
            "h=abc"
        );
        assert_eq!(
            resolve("{{ templates.baseline.replicaset.name }}", &vars).unwrap(),
            "exp-baseline"
        );
        assert_eq!(resolve("plain", &vars).unwrap(), "plain");
        assert_eq!(
            resolve("{{templates.canary.podTemplateHash}}", &vars).unwrap_err(),
            "failed to resolve {{templates.canary.podTemplateHash}}"
        );
    }

    fn templates() -> Templates {
        let mut t = Templates::default();
        t.namespaced.insert(
            "rate".into(),
            AnalysisTemplateSpec {
                metrics: Some(vec![Metric {
                    name: "m".into(),
                    ..Default::default()
                }]),
                args: Some(vec![
                    Argument {
                        name: "hash".into(),
                        ..Default::default()
                    },
                    Argument {
                        name: "from".into(),
                        ..Default::default()
                    },
                    Argument {
                        name: "fixed".into(),
                        value: Some("1".into()),
                        value_from: None,
                    },
                ]),
                ..Default::default()
            },
        );
        t
    }

    #[test]
    fn the_run_merges_the_template_with_resolved_arguments_and_is_owned_and_labelled() {
        let ex = experiment();
        let rss = BTreeMap::from([(
            "baseline".to_string(),
            ("exp-baseline".to_string(), "abc".to_string()),
        )]);
        let vars = variables(&ex, &rss);
        let a = &ex.spec.analyses.as_ref().unwrap()[0];
        let spec = run_spec(&ex, a, &templates(), &vars).unwrap();
        let args: Vec<(String, Option<String>)> = spec
            .args
            .clone()
            .unwrap()
            .into_iter()
            .map(|a| (a.name, a.value))
            .collect();
        assert_eq!(
            args,
            vec![
                ("hash".into(), Some("abc".into())),
                ("from".into(), Some("2026-01-01T10:00:00Z".into())),
                ("fixed".into(), Some("1".into())),
            ]
        );
        assert_eq!(spec.dry_run.as_ref().unwrap()[0].metric_name, "m");
        let run = analysis_run(&ex, a, spec);
        assert_eq!(run.name_any(), "exp-check");
        assert_eq!(run.labels()["team"], "x");
        assert_eq!(run.labels()[crate::scope::INSTANCE_ID_LABEL], "a");
        assert_eq!(run.annotations()["note"], "y");
        assert_eq!(run.owner_references()[0].kind, "Experiment");
    }

    #[test]
    fn a_missing_template_or_argument_is_told() {
        let ex = experiment();
        let a = &ex.spec.analyses.as_ref().unwrap()[0];
        let err = run_spec(&ex, a, &Templates::default(), &BTreeMap::new()).unwrap_err();
        assert_eq!(err, "AnalysisTemplate \"rate\" not found");
        let mut bare = a.clone();
        bare.args = None;
        assert_eq!(
            run_spec(&ex, &bare, &templates(), &BTreeMap::new()).unwrap_err(),
            "args.hash was not resolved"
        );
    }
}
