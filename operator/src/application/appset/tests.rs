//! Carrying out a plan against a fake writer: every write is attempted, each failure is reported under its
//! reason, and created Applications are owned by the set.

use std::sync::Mutex;

use serde_json::json;
use sluice_crds::{application::Application, applicationset::ApplicationSet};
use sluice_gitops::appset_render::{AppAction, Reason};

use super::{AppWriter, execute};

#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<String>>,
    created: Mutex<Vec<Application>>,
}

impl AppWriter for Fake {
    async fn create(&self, app: &Application) -> Result<(), String> {
        let name = app.metadata.name.clone().unwrap_or_default();
        self.calls.lock().unwrap().push(format!("create {name}"));
        self.created.lock().unwrap().push(app.clone());
        if name == "refused" {
            return Err("admission webhook denied the request".into());
        }
        Ok(())
    }

    async fn update(&self, name: &str, _: &Application) -> Result<(), String> {
        self.calls.lock().unwrap().push(format!("update {name}"));
        Ok(())
    }

    async fn delete(&self, name: &str, keep_resources: bool) -> Result<(), String> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("delete {name} keep={keep_resources}"));
        Err(format!("applications.argoproj.io \"{name}\" is forbidden"))
    }
}

fn app(name: &str) -> Application {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {"destination": {}, "project": "default"}
    }))
    .unwrap()
}

fn set() -> ApplicationSet {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "fleet", "namespace": "argocd", "uid": "u-9"},
        "spec": {"generators": [], "template": {"metadata": {}, "spec": {"destination": {}, "project": ""}}}
    }))
    .unwrap()
}

#[tokio::test]
async fn every_write_is_attempted_and_each_failure_is_reported_under_its_reason() {
    let fake = Fake::default();
    let actions = vec![
        AppAction::Create(app("a")),
        AppAction::Create(app("refused")),
        AppAction::Update {
            name: "b".into(),
            app: app("b"),
        },
        AppAction::Delete {
            name: "old".into(),
            keep_resources: true,
        },
    ];
    let failures = execute(&set(), &fake, actions).await;
    let mut calls = fake.calls.lock().unwrap().clone();
    calls.sort();
    assert_eq!(
        calls,
        ["create a", "create refused", "delete old keep=true", "update b"]
    );
    let mut reported: Vec<(Reason, String)> = failures.into_iter().map(|f| (f.reason, f.message)).collect();
    reported.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(
        reported,
        [
            (
                Reason::CreateApplicationError,
                "admission webhook denied the request".to_string()
            ),
            (
                Reason::DeleteApplicationError,
                "applications.argoproj.io \"old\" is forbidden".to_string()
            ),
        ]
    );
    for created in fake.created.lock().unwrap().iter() {
        let owner = &created.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.name.as_str(), owner.uid.as_str()), ("fleet", "u-9"));
    }
}

#[tokio::test]
async fn an_empty_plan_writes_nothing() {
    let fake = Fake::default();
    assert!(execute(&set(), &fake, Vec::new()).await.is_empty());
    assert!(fake.calls.lock().unwrap().is_empty());
}
