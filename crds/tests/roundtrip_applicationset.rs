//! Round trips of ApplicationSet fixtures modelled on upstream's examples (list, git directories, git files,
//! clusters, matrix, merge), with checks that fields land in the right typed places, and of the CRD's names and
//! subresources.

mod common;

use std::collections::BTreeMap;

use kube::{CustomResourceExt, Resource};
use serde_json::json;
use sluice_crds::applicationset::{
    ApplicationSet, ApplicationsSyncPolicy, NestedMatrixGenerator, NestedMergeGenerator,
};

fn appsets() -> BTreeMap<String, ApplicationSet> {
    common::documents("applicationset-generators.yaml")
        .iter()
        .map(|doc| {
            assert_eq!(doc["kind"], "ApplicationSet");
            let set: ApplicationSet = common::assert_roundtrip(doc);
            (set.metadata.name.clone().expect("fixtures are named"), set)
        })
        .collect()
}

#[test]
fn every_fixture_round_trips() {
    let sets = appsets();
    let names: Vec<&str> = sets.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "cluster-addons",
            "cluster-git",
            "cluster-git-merge",
            "guestbook-clusters",
            "guestbook-files",
            "guestbook-list"
        ]
    );
    let paths: std::collections::BTreeSet<String> = common::documents("applicationset-generators.yaml")
        .iter()
        .flat_map(common::key_paths)
        .collect();
    for path in [
        "spec.generators[].git.files[].exclude",
        "spec.generators[].git.directories[].exclude",
        "spec.generators[].clusters.selector.matchExpressions[].operator",
        "spec.generators[].matrix.generators[].merge.generators[].list.elements",
        "spec.generators[].merge.mergeKeys",
        "status.resources[].health.message",
    ] {
        assert!(paths.contains(path), "fixtures do not use {path}");
    }
}

#[test]
fn list_generator_fields_are_typed() {
    let set = &appsets()["guestbook-list"];
    let spec = &set.spec;
    assert_eq!(spec.go_template, Some(true));
    assert_eq!(
        spec.go_template_options.as_deref(),
        Some(&["missingkey=error".to_string()][..])
    );
    let list = spec.generators[0].list.as_ref().expect("list");
    let elements = list.elements.as_ref().expect("elements");
    assert_eq!(elements[0]["values"]["replicas"], "2");
    assert_eq!(elements[1]["replicas"], 3, "elements keep non-string values");
    assert_eq!(
        list.elements_yaml.as_deref(),
        Some("{{ .key.components | toJson }}")
    );
    assert!(list.template.is_some());
    let selector = spec.generators[0].selector.as_ref().expect("selector");
    assert_eq!(
        selector.match_labels.as_ref().unwrap()["cluster"],
        "engineering-dev"
    );
    assert_eq!(
        spec.template.metadata.name.as_deref(),
        Some("{{.cluster}}-guestbook")
    );
    assert_eq!(spec.template.spec.project, "my-project");
    let policy = spec.sync_policy.as_ref().expect("syncPolicy");
    assert_eq!(
        policy.applications_sync,
        Some(ApplicationsSyncPolicy::CreateUpdate)
    );
    assert!(policy.applications_sync.unwrap().allow_update());
    assert!(!policy.applications_sync.unwrap().allow_delete());
    assert!(spec.template_patch.as_deref().unwrap().contains("automated"));
    assert_eq!(
        spec.strategy.as_ref().unwrap()["rollingSync"]["steps"][1]["maxUpdate"],
        "10%"
    );
    let status = set.status.as_ref().expect("status");
    assert_eq!(status.conditions.as_ref().unwrap()[0].type_, "ErrorOccurred");
    let resource = &status.resources.as_ref().unwrap()[0];
    assert_eq!(
        resource.health.as_ref().unwrap().status.as_deref(),
        Some("Healthy")
    );
}

#[test]
fn git_and_cluster_generator_fields_are_typed() {
    let sets = appsets();
    let dirs = sets["cluster-addons"].spec.generators[0]
        .git
        .as_ref()
        .expect("git");
    assert_eq!(dirs.repo_url, "https://github.com/argoproj/argo-cd.git");
    assert_eq!(dirs.revision, "HEAD");
    assert_eq!(dirs.directories.as_ref().unwrap()[1].exclude, Some(true));
    assert_eq!(dirs.path_param_prefix.as_deref(), Some("addon"));
    assert_eq!(dirs.requeue_after_seconds, Some(60));
    assert_eq!(dirs.values.as_ref().unwrap()["cluster"], "in-cluster");
    let files = sets["guestbook-files"].spec.generators[0]
        .git
        .as_ref()
        .expect("git");
    assert_eq!(files.files.as_ref().unwrap()[1].exclude, Some(true));
    let clusters = &sets["guestbook-clusters"].spec.generators;
    let selector = clusters[0].clusters.as_ref().unwrap().selector.as_ref().unwrap();
    assert_eq!(selector.match_expressions.as_ref().unwrap()[0].operator, "In");
    assert_eq!(clusters[1].clusters.as_ref().unwrap().flat_list, Some(true));
}

#[test]
fn nested_combinations_are_open_objects_read_on_use() {
    let sets = appsets();
    let gens = &sets["cluster-git"].spec.generators;
    let matrix = gens[0].matrix.as_ref().expect("matrix");
    assert_eq!(matrix.generators.len(), 2);
    assert!(matrix.generators[0].git.is_some() && matrix.generators[1].clusters.is_some());
    let nested = gens[1].matrix.as_ref().unwrap().generators[0]
        .merge
        .as_ref()
        .expect("raw merge");
    let merge = NestedMergeGenerator::from_value(nested).unwrap().into_merge();
    assert_eq!(merge.merge_keys, ["server"]);
    assert!(merge.generators[0].clusters.is_some() && merge.generators[1].list.is_some());
    assert!(
        gens[1].matrix.as_ref().unwrap().generators[1]
            .pull_request
            .is_some()
    );
    assert!(gens[2].scm_provider.is_some() && gens[3].plugin.is_some());
    assert!(gens[4].cluster_decision_resource.is_some());
    let merged = sets["cluster-git-merge"].spec.generators[0]
        .merge
        .as_ref()
        .unwrap();
    assert_eq!(merged.generators.len(), 4);
    let raw = merged.generators[3].matrix.as_ref().expect("raw matrix");
    let inner = NestedMatrixGenerator::from_value(raw).unwrap().into_matrix();
    assert_eq!(inner.generators.len(), 2);
    assert!(
        NestedMatrixGenerator::from_value(&json!({"generators": "x"}))
            .unwrap_err()
            .starts_with("invalid nested matrix generator")
    );
}

#[test]
fn crd_has_upstream_names_and_a_status_subresource() {
    let crd = ApplicationSet::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("applicationsets.argoproj.io"));
    assert_eq!(crd.spec.group, "argoproj.io");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "ApplicationSet");
    assert_eq!(crd.spec.names.plural, "applicationsets");
    assert_eq!(
        crd.spec.names.short_names,
        Some(vec!["appset".into(), "appsets".into()])
    );
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
    assert_eq!(ApplicationSet::api_version(&()), "argoproj.io/v1alpha1");
    assert!(
        sluice_crds::all()
            .iter()
            .any(|(f, _)| *f == "applicationsets.yaml")
    );
}

#[test]
fn an_unknown_applications_sync_policy_is_refused() {
    let doc = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet", "metadata": {"name": "x"},
        "spec": {"generators": [], "template": {"metadata": {}, "spec": {"project": "p", "destination": {}}},
                 "syncPolicy": {"applicationsSync": "delete-everything"}}
    });
    let err = serde_json::from_value::<ApplicationSet>(doc)
        .unwrap_err()
        .to_string();
    assert!(err.contains("delete-everything"), "{err}");
}
