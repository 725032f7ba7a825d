//! The routing I/O against a fake cluster: which writes are sent, that a weight is read back and verified,
//! and how observations of several objects combine.

use std::sync::Mutex;

use serde_json::{Value, json};
use sluice_traffic::{
    Desired, Router, Target, Write,
    istio::{HostSplit, IstioRouter, RouteSelector, Split, VirtualServiceRef, virtual_service_target},
};

use super::io::{ObjectIo, apply_weight, observe};
use crate::rollout::{controller::Error, plan::TrafficState};

/// Objects by target; patches are applied as the API server would, unless `frozen` (an admission webhook
/// that accepts the write and keeps the object as it was).
#[derive(Default)]
struct FakeCluster {
    objects: Mutex<std::collections::BTreeMap<Target, Value>>,
    sent: Mutex<Vec<Write>>,
    frozen: bool,
}

impl ObjectIo for FakeCluster {
    async fn get(&self, target: &Target) -> Result<Option<Value>, Error> {
        Ok(self.objects.lock().unwrap().get(target).cloned())
    }

    async fn send(&self, write: &Write) -> Result<(), Error> {
        self.sent.lock().unwrap().push(write.clone());
        if self.frozen {
            return Ok(());
        }
        let mut objects = self.objects.lock().unwrap();
        match write {
            Write::Patch { target, patch } => {
                let doc = objects.get_mut(target).expect("patched object exists");
                json_patch::patch(doc, patch).map_err(|e| Error::Traffic(e.to_string()))?;
            }
            Write::Create { target, object } => {
                objects.insert(target.clone(), object.clone());
            }
            Write::Delete { target } => {
                objects.remove(target);
            }
        }
        Ok(())
    }
}

fn vs(name: &str, canary: i64) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"http": [{"name": "primary", "retries": {"attempts": 3}, "route": [
            {"destination": {"host": "web-stable"}, "weight": 100 - canary},
            {"destination": {"host": "web-canary"}, "weight": canary},
        ]}]},
    })
}

fn target(name: &str) -> Target {
    virtual_service_target("v1beta1", "ns", name)
}

fn router(names: &[&str]) -> Vec<Box<dyn Router>> {
    let split = Split::Host(HostSplit {
        canary_service: "web-canary".into(),
        stable_service: "web-stable".into(),
    });
    vec![Box::new(IstioRouter {
        virtual_services: names
            .iter()
            .map(|n| VirtualServiceRef {
                target: target(n),
                split: split.clone(),
                routes: RouteSelector::default(),
            })
            .collect(),
        managed_routes: Vec::new(),
    })]
}

fn cluster(objects: &[(&str, i64)], frozen: bool) -> FakeCluster {
    FakeCluster {
        objects: Mutex::new(objects.iter().map(|(n, w)| (target(n), vs(n, *w))).collect()),
        frozen,
        ..Default::default()
    }
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn a_weight_is_one_patch_per_object_then_read_back_and_other_fields_stay() {
    let fake = cluster(&[("a", 0), ("b", 0)], false);
    run(apply_weight(&fake, &router(&["a", "b"]), &Desired::canary(20))).unwrap();
    assert_eq!(fake.sent.lock().unwrap().len(), 2);
    let objects = fake.objects.lock().unwrap();
    for name in ["a", "b"] {
        let route = &objects[&target(name)]["spec"]["http"][0];
        assert_eq!(route["route"][1]["weight"], 20);
        assert_eq!(route["route"][0]["weight"], 80);
        assert_eq!(route["retries"]["attempts"], 3);
    }
}

#[test]
fn an_object_already_at_the_weight_gets_no_write() {
    let fake = cluster(&[("a", 20)], false);
    run(apply_weight(&fake, &router(&["a"]), &Desired::canary(20))).unwrap();
    assert!(fake.sent.lock().unwrap().is_empty());
}

#[test]
fn a_write_accepted_but_not_shown_fails_the_verification() {
    let fake = cluster(&[("a", 0)], true);
    let err = run(apply_weight(&fake, &router(&["a"]), &Desired::canary(20))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "traffic routing: VirtualService \"a\" in namespace \"ns\" does not show weight 20 after the update"
    );
}

#[test]
fn objects_that_disagree_are_mixed_and_a_missing_one_is_an_error_naming_it() {
    let routers = router(&["a", "b"]);
    let (state, _) = run(observe(&cluster(&[("a", 10), ("b", 10)], false), &routers)).unwrap();
    assert_eq!(state, TrafficState::Weight(10));
    let (state, _) = run(observe(&cluster(&[("a", 10), ("b", 30)], false), &routers)).unwrap();
    assert_eq!(state, TrafficState::Mixed);
    let (state, _) = run(observe(&cluster(&[("a", 10)], false), &routers)).unwrap();
    assert_eq!(
        state,
        TrafficState::Error("VirtualService \"b\" in namespace \"ns\" not found".into())
    );
}
