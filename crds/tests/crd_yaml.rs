//! The committed CRD YAML under crds/yaml/ is exactly what the types generate.

use std::{collections::BTreeSet, path::Path};

const REGENERATE: &str = "regenerate with `cargo run -p sluice -- crd --dir crds/yaml`";

#[test]
fn committed_crd_yaml_matches_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("yaml");
    let mut expected = BTreeSet::new();
    for (file, crd) in sluice_crds::all() {
        expected.insert(file.to_string());
        let committed = std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("crds/yaml/{file} is missing ({e}); {REGENERATE}"));
        assert!(
            committed == sluice_crds::to_yaml(&crd),
            "crds/yaml/{file} differs from the types; {REGENERATE}"
        );
    }
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("crds/yaml exists")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let stale: Vec<_> = present.difference(&expected).collect();
    assert!(
        stale.is_empty(),
        "crds/yaml has files no type generates: {stale:?}; {REGENERATE}"
    );
}

#[test]
fn every_kind_has_upstream_names() {
    let names: Vec<(String, String, Vec<String>, String)> = sluice_crds::all()
        .into_iter()
        .map(|(_, crd)| {
            let n = crd.spec.names;
            (
                crd.spec.group,
                n.kind,
                n.short_names.unwrap_or_default(),
                crd.spec.scope,
            )
        })
        .collect();
    let expect = [
        ("Rollout", vec!["ro"], "Namespaced"),
        ("AnalysisTemplate", vec!["at"], "Namespaced"),
        ("ClusterAnalysisTemplate", vec!["cat"], "Cluster"),
        ("AnalysisRun", vec!["ar"], "Namespaced"),
        ("Experiment", vec!["exp"], "Namespaced"),
        ("Application", vec!["app", "apps"], "Namespaced"),
        ("AppProject", vec!["appproj", "appprojs"], "Namespaced"),
    ];
    for (kind, short, scope) in expect {
        let found = names
            .iter()
            .find(|n| n.1 == kind)
            .unwrap_or_else(|| panic!("no CRD for {kind}"));
        assert_eq!(found.0, "argoproj.io", "{kind} group");
        assert_eq!(found.2, short, "{kind} short names");
        assert_eq!(found.3, scope, "{kind} scope");
    }
}

#[test]
fn rollout_has_scale_and_status_subresources() {
    let (_, crd) = sluice_crds::all()
        .into_iter()
        .find(|(f, _)| *f == "rollouts.yaml")
        .expect("rollouts.yaml");
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    let sub = version.subresources.as_ref().expect("subresources");
    assert!(sub.status.is_some());
    let scale = sub.scale.as_ref().expect("scale subresource");
    assert_eq!(scale.spec_replicas_path, ".spec.replicas");
    assert_eq!(scale.status_replicas_path, ".status.HPAReplicas");
    assert_eq!(scale.label_selector_path.as_deref(), Some(".status.selector"));
    let columns: Vec<_> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Desired", "Current", "Up-to-date", "Available", "Age"]);
}
