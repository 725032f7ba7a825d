//! Round trips of the Application and AppProject fixtures, with checks that fields land in the right typed
//! places, that the fixtures use every modelled field, and that the hand-built CRDs look like upstream's.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResourceExt, Resource};
use serde_json::{Value, json};
use sluice_crds::application::{AppProject, AppProjectSpec, Application, ApplicationSpec};

const APPLICATION_FIXTURES: &[&str] = &[
    "application-helm.yaml",
    "application-multi-source.yaml",
    "application-tools.yaml",
];
const APPPROJECT_FIXTURES: &[&str] = &["appproject-projects.yaml"];

fn documents(files: &[&str]) -> Vec<Value> {
    files.iter().flat_map(|file| common::documents(file)).collect()
}

#[test]
fn applications_round_trip() {
    let mut apps = BTreeMap::new();
    for doc in documents(APPLICATION_FIXTURES) {
        assert_eq!(doc["kind"], "Application");
        let app: Application = common::assert_roundtrip(&doc);
        apps.insert(app.metadata.name.clone().expect("fixtures are named"), app);
    }
    assert_eq!(apps.len(), 8);

    // A single Helm source, an operation at the top level, and the full status.
    let guestbook = &apps["guestbook"];
    let source = guestbook.spec.source.as_ref().unwrap();
    assert_eq!(source.repo_url, "https://charts.example.com/stable");
    let helm = source.helm.as_ref().unwrap();
    assert_eq!(helm.parameters.as_ref().unwrap()[1].force_string, Some(true));
    assert_eq!(
        helm.values_object.as_ref().unwrap()["resources"]["limits"]["cpu"],
        "500m"
    );
    let backoff = guestbook
        .spec
        .sync_policy
        .as_ref()
        .unwrap()
        .retry
        .as_ref()
        .unwrap()
        .backoff
        .as_ref();
    assert_eq!(backoff.unwrap().factor, Some(2));
    let operation = guestbook
        .operation
        .as_ref()
        .expect("operation is a top-level field");
    let sync = operation.sync.as_ref().unwrap();
    assert_eq!(sync.revision.as_deref(), Some("1.4.2"));
    assert!(sync.sync_strategy.as_ref().unwrap().hook.is_some());
    assert_eq!(
        operation.initiated_by.as_ref().unwrap().username.as_deref(),
        Some("alice")
    );
    let status = guestbook.status.as_ref().unwrap();
    assert_eq!(status.sync.as_ref().unwrap().status, "OutOfSync");
    assert_eq!(status.history.as_ref().unwrap()[1].id, 4);
    assert_eq!(status.resources.as_ref().unwrap()[3].sync_wave, Some(-1));
    let state = status.operation_state.as_ref().unwrap();
    assert_eq!(state.phase, "Running");
    assert_eq!(&state.operation, operation);
    let results = state.sync_result.as_ref().unwrap().resources.as_ref().unwrap();
    assert_eq!(results[0].hook_type.as_deref(), Some("PreSync"));
    assert_eq!(results[1].namespace, "");

    // Several sources, one of them only a `ref` for the others' values files.
    let monitoring = &apps["monitoring"];
    assert!(monitoring.spec.source.is_none());
    let sources = monitoring.spec.sources.as_ref().unwrap();
    assert_eq!(sources.len(), 3);
    assert_eq!(sources[1].r#ref.as_deref(), Some("values"));
    assert_eq!(sources[2].tag_prefix.as_deref(), Some("monitoring/"));
    let rollback = monitoring.operation.as_ref().unwrap().sync.as_ref().unwrap();
    assert_eq!(rollback.revisions.as_ref().unwrap()[0], "64.0.0");
    assert_eq!(rollback.sources.as_ref().unwrap().len(), 3);
    let monitoring_status = monitoring.status.as_ref().unwrap();
    assert_eq!(
        monitoring_status.resource_health_source.as_deref(),
        Some("appTree")
    );
    assert_eq!(
        monitoring_status
            .sync
            .as_ref()
            .unwrap()
            .revisions
            .as_ref()
            .unwrap()
            .len(),
        3
    );

    // Kustomize replica counts are integers or strings.
    let frontend = &apps["shop-frontend"];
    let kustomize = frontend.spec.source.as_ref().unwrap().kustomize.as_ref().unwrap();
    let replicas = kustomize.replicas.as_ref().unwrap();
    assert_eq!(replicas[0].count, IntOrString::Int(4));
    assert_eq!(replicas[1].count, IntOrString::String("2".into()));
    let strategy = frontend
        .operation
        .as_ref()
        .unwrap()
        .sync
        .as_ref()
        .unwrap()
        .sync_strategy
        .as_ref();
    assert_eq!(strategy.unwrap().apply.as_ref().unwrap().force, Some(true));

    // Open objects keep what they hold.
    let hydrator = apps["payments-api"].spec.source_hydrator.as_ref().unwrap();
    assert_eq!(hydrator["syncSource"]["targetBranch"], "environments/prod");
    let plugin = apps["payments-secrets"]
        .spec
        .source
        .as_ref()
        .unwrap()
        .plugin
        .as_ref()
        .unwrap();
    assert_eq!(plugin.parameters.as_ref().unwrap()[2]["array"][1], "tls.enc.yaml");
}

#[test]
fn appprojects_round_trip() {
    let mut projects = BTreeMap::new();
    for doc in documents(APPPROJECT_FIXTURES) {
        assert_eq!(doc["kind"], "AppProject");
        let project: AppProject = common::assert_roundtrip(&doc);
        projects.insert(
            project.metadata.name.clone().expect("fixtures are named"),
            project,
        );
    }
    assert_eq!(projects.len(), 3);

    let payments = &projects["payments"].spec;
    assert_eq!(
        payments.source_repos.as_ref().unwrap()[1],
        "!https://git.example.com/payments/legacy.git"
    );
    let whitelist = payments.cluster_resource_whitelist.as_ref().unwrap();
    assert_eq!(whitelist[1].name.as_deref(), Some("payments-*"));
    let roles = payments.roles.as_ref().unwrap();
    assert_eq!(roles[0].jwt_tokens.as_ref().unwrap()[0].exp, Some(1_767_225_600));
    assert_eq!(roles[1].groups.as_ref().unwrap()[0], "example-org:payments");
    let windows = payments.sync_windows.as_ref().unwrap();
    assert_eq!(windows[1].kind.as_deref(), Some("deny"));
    assert_eq!(windows[1].manual_sync, Some(true));
    assert_eq!(windows[0].time_zone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(
        payments.signature_keys.as_ref().unwrap()[0].key_id,
        "4AEE18F83AFDEB23"
    );
    let accounts = payments.destination_service_accounts.as_ref().unwrap();
    assert_eq!(accounts[0].default_service_account, "payments-deployer");
    let status = projects["payments"].status.as_ref().unwrap();
    assert_eq!(
        status.jwt_tokens_by_role.as_ref().unwrap()["ci"]["items"][1]["iat"],
        1_704_067_200
    );
    assert_eq!(
        projects["sandbox"].spec.permit_only_project_scoped_clusters,
        Some(true)
    );
}

#[test]
fn application_fixtures_use_every_field() {
    assert_fields_covered(&Application::crd(), &documents(APPLICATION_FIXTURES));
}

#[test]
fn appproject_fixtures_use_every_field() {
    assert_fields_covered(&AppProject::crd(), &documents(APPPROJECT_FIXTURES));
}

#[test]
fn application_crd_matches_upstream_shape() {
    let crd = Application::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("applications.argoproj.io"));
    assert_eq!(crd.spec.group, "argoproj.io");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "Application");
    assert_eq!(crd.spec.names.plural, "applications");
    assert_eq!(
        crd.spec.names.short_names,
        Some(vec!["app".to_string(), "apps".to_string()])
    );
    assert_eq!(Application::shortnames(), ["app", "apps"]);
    assert_eq!(crd.spec.versions.len(), 1);
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.served && version.storage);
    assert!(
        version.subresources.is_none(),
        "upstream Application has no status subresource"
    );

    let schema = schema_of(&crd);
    let properties = schema["properties"].as_object().unwrap();
    assert_eq!(
        properties.keys().collect::<Vec<_>>(),
        ["operation", "spec", "status"]
    );
    assert_eq!(schema["required"], json!(["spec"]));
    assert!(
        schema["properties"]["operation"]["properties"]["sync"]["properties"]["syncStrategy"].is_object()
    );
    assert!(
        schema["properties"]["status"]["properties"]["operationState"]["properties"]["operation"].is_object()
    );
    let mut spec_required = schema["properties"]["spec"]["required"]
        .as_array()
        .unwrap()
        .clone();
    spec_required.sort_by_key(|v| v.to_string());
    assert_eq!(spec_required, [json!("destination"), json!("project")]);
    let helm = &schema["properties"]["spec"]["properties"]["source"]["properties"]["helm"]["properties"];
    assert_eq!(helm["valuesObject"]["x-kubernetes-preserve-unknown-fields"], true);

    let columns: Vec<_> = version
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| (c.name.as_str(), c.json_path.as_str(), c.priority))
        .collect();
    assert_eq!(
        columns,
        [
            ("Sync Status", ".status.sync.status", None),
            ("Health Status", ".status.health.status", None),
            ("Revision", ".status.sync.revision", Some(10)),
            ("Project", ".spec.project", Some(10)),
            ("Age", ".metadata.creationTimestamp", None),
        ]
    );
}

#[test]
fn appproject_crd_matches_upstream_shape() {
    let crd = AppProject::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("appprojects.argoproj.io"));
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "AppProject");
    assert_eq!(crd.spec.names.plural, "appprojects");
    assert_eq!(
        crd.spec.names.short_names,
        Some(vec!["appproj".to_string(), "appprojs".to_string()])
    );
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(
        version.subresources.is_none(),
        "upstream AppProject has no status subresource"
    );
    let schema = schema_of(&crd);
    assert_eq!(schema["required"], json!(["spec"]));
    assert_eq!(
        schema["properties"]["status"]["properties"]["jwtTokensByRole"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
}

#[test]
fn module_lists_both_crds() {
    let crds = sluice_crds::application::crds();
    let names: Vec<_> = crds
        .iter()
        .map(|(file, crd)| (*file, crd.spec.names.kind.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("applications.yaml", "Application"),
            ("appprojects.yaml", "AppProject")
        ]
    );
}

#[test]
fn roots_work_with_the_kube_client() {
    // Instantiating these generic functions makes the compiler check every bound kube puts on the type.
    let _namespaced: fn(kube::Client, &str) -> kube::Api<Application> = kube::Api::namespaced;
    let _get = kube::Api::<Application>::get;
    let _patch = kube::Api::<Application>::patch::<Value>;
    let _watch = kube::runtime::watcher::<Application>;
    let _projects: fn(kube::Client, &str) -> kube::Api<AppProject> = kube::Api::namespaced;
    let _get_project = kube::Api::<AppProject>::get;

    assert_eq!(Application::api_version(&()), "argoproj.io/v1alpha1");
    assert_eq!(
        Application::url_path(&(), Some("argocd")),
        "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications"
    );
    assert_eq!(AppProject::api_resource().plural, "appprojects");

    let app = Application::new(
        "hello",
        ApplicationSpec {
            project: "default".into(),
            ..Default::default()
        },
    );
    let value = serde_json::to_value(&app).unwrap();
    assert_eq!(value["apiVersion"], "argoproj.io/v1alpha1");
    assert_eq!(value["kind"], "Application");
    assert!(value.get("status").is_none() && value.get("operation").is_none());
    let project = serde_json::to_value(AppProject::new("default", AppProjectSpec::default())).unwrap();
    assert_eq!(
        project,
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject", "metadata": {"name": "default"}, "spec": {}})
    );
}

/// The `openAPIV3Schema` of a CRD's only version, as JSON.
fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let validation = crd.spec.versions[0].schema.as_ref().expect("a schema");
    serde_json::to_value(
        validation
            .open_api_v3_schema
            .as_ref()
            .expect("an openAPIV3Schema"),
    )
    .unwrap()
}

/// Asserts that every property of every object type in the CRD's schema appears in at least one document.
///
/// Types are told apart by their schema (without descriptions and nullability), so a type used in several
/// places (ApplicationSource in spec, status and operation) counts as covered when each of its fields appears
/// under any one of those places.
fn assert_fields_covered(crd: &CustomResourceDefinition, docs: &[Value]) {
    let mut types = BTreeMap::new();
    collect_types("", &schema_of(crd), &mut types);
    let used: BTreeSet<String> = docs.iter().flat_map(common::key_paths).collect();
    let mut missing = Vec::new();
    for (fields, places) in types.values() {
        for field in fields {
            if !places.iter().any(|place| used.contains(&join(place, field))) {
                missing.push(join(&places[0], field));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "fields no fixture uses:\n  {}",
        missing.join("\n  ")
    );
}

/// Object types of a schema: signature -> (property names, paths where the type occurs).
type Types = BTreeMap<String, (BTreeSet<String>, Vec<String>)>;

fn collect_types(path: &str, schema: &Value, out: &mut Types) {
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        let entry = out.entry(signature(schema).to_string()).or_default();
        entry.0.extend(properties.keys().cloned());
        entry.1.push(path.to_string());
        for (name, property) in properties {
            collect_types(&join(path, name), property, out);
        }
    }
    if let Some(items) = schema.get("items") {
        collect_types(&format!("{path}[]"), items, out);
    }
}

fn signature(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| *k != "description" && *k != "nullable")
                .map(|(k, v)| (k.clone(), signature(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(signature).collect()),
        other => other.clone(),
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}
