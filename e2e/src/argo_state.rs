//! What Argo Rollouts leaves behind when it stops: a Rollout with its ReplicaSets, Services, VirtualService and
//! status exactly as Argo Rollouts writes them, with Argo's own hashes from the `gohash` oracle (computed by Go
//! from the objects as the API server returns them). The takeover tests and the demo hand these to Sluice.

use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::cluster::{ClusterInfo, wait_for};
use crate::gohash::Oracle;
use crate::harness::TestNamespace;
use crate::rollouts::{canary_rollout_yaml, istio_strategy, services_and_vs};

/// The label that carries the pod-template hash.
pub const HASH: &str = "rollouts-pod-template-hash";
/// The revision annotation of Rollouts and ReplicaSets.
pub const REVISION: &str = "rollout.argoproj.io/revision";
const DESIRED: &str = "rollout.argoproj.io/desired-replicas";
const MANAGED: &str = "argo-rollouts.argoproj.io/managed-by-rollouts";

/// kubectl in one namespace: a test's namespace, or one of the demo's.
pub trait Kubectl {
    /// `kubectl -n <namespace> ARGS`.
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String>;

    /// `kubectl apply -f -`.
    fn apply(&self, manifest: &str) -> Result<String> {
        self.kubectl(&["apply", "-f", "-"], Some(manifest))
    }

    /// A merge patch of a Rollout's status subresource, as a controller writes it.
    fn patch_status(&self, rollout: &str, patch: &Value) -> Result<()> {
        let patch = patch.to_string();
        let args = [
            "patch",
            "rollout",
            rollout,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch,
        ];
        self.kubectl(&args, None)?;
        Ok(())
    }
}

impl Kubectl for TestNamespace {
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        TestNamespace::kubectl(self, args, stdin)
    }
}

/// A namespace of a cluster.
pub struct InNamespace<'a> {
    /// The cluster.
    pub info: &'a ClusterInfo,
    /// The namespace.
    pub namespace: &'a str,
}

impl Kubectl for InNamespace<'_> {
    fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut all = vec!["-n", self.namespace];
        all.extend_from_slice(args);
        crate::harness::kubectl(self.info, &all, stdin)
    }
}

/// The hashes of what Argo left: its stable ReplicaSet's, its new ReplicaSet's and the canary steps'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashes {
    /// The stable (blue-green: active) ReplicaSet's hash.
    pub stable: String,
    /// The new (canary, preview) ReplicaSet's hash.
    pub new: String,
    /// `status.currentStepHash` (empty for blue-green).
    pub steps: String,
}

/// `kubectl get <kind> <name> -o json`: the object as the API server returns it.
pub fn get_json(ns: &impl Kubectl, kind: &str, name: &str) -> Result<Value> {
    let out = ns.kubectl(&["get", kind, name, "-o", "json"], None)?;
    Ok(serde_json::from_str(&out)?)
}

/// Now, as Go's metav1.Time writes it.
pub fn now() -> String {
    Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The oracle's `rollouts-pod-template-hash` of a Rollout's `spec.template` (no collision count).
pub fn template_hash(oracle: &mut Oracle, template: &Value) -> Result<String> {
    let answer = oracle.template(template, None)?;
    ensure!(
        answer.error.is_empty(),
        "Go refuses the template: {}",
        answer.error
    );
    Ok(answer.hash)
}

/// The oracle's `status.currentStepHash` of the Rollout's canary steps.
pub fn steps_hash(oracle: &mut Oracle, ro: &Value) -> Result<String> {
    let answer = oracle.steps(&ro["spec"]["strategy"]["canary"]["steps"])?;
    ensure!(answer.error.is_empty(), "Go refuses the steps: {}", answer.error);
    Ok(answer.hash)
}

/// A copy of a pod template with the first container running `image`.
pub fn with_image(template: &Value, image: &str) -> Value {
    let mut t = template.clone();
    t["spec"]["containers"][0]["image"] = json!(image);
    t
}

/// The ReplicaSet Argo Rollouts makes of `template` for the Rollout `ro`: named and labelled by the hash,
/// owned by the Rollout, annotated with its revision and the Rollout's replicas.
pub fn argo_replica_set(ro: &Value, template: &Value, hash: &str, revision: &str, replicas: i64) -> Value {
    let name = ro["metadata"]["name"].as_str().unwrap_or_default();
    let mut template = template.clone();
    template["metadata"]["labels"][HASH] = json!(hash);
    let mut selector = ro["spec"]["selector"].clone();
    selector["matchLabels"][HASH] = json!(hash);
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{name}-{hash}"),
            "labels": template["metadata"]["labels"],
            "annotations": {REVISION: revision, DESIRED: ro["spec"]["replicas"].to_string()},
            "ownerReferences": [{
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Rollout",
                "name": name,
                "uid": ro["metadata"]["uid"],
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {"replicas": replicas, "selector": selector, "template": template},
    })
}

/// Creates Argo's ReplicaSet and waits until kwok has its pods available.
pub async fn create_replica_set(ns: &impl Kubectl, rs: &Value) -> Result<()> {
    ns.kubectl(&["create", "-f", "-"], Some(&rs.to_string()))?;
    let name = rs["metadata"]["name"].as_str().unwrap_or_default();
    let want = rs["spec"]["replicas"].to_string();
    wait_for(&format!("{name}'s pods"), Duration::from_secs(60), || async {
        let path = "-o=jsonpath={.status.availableReplicas}";
        let avail = ns.kubectl(&["get", "replicaset", name, path], None)?;
        if avail.trim() == want {
            Ok(())
        } else {
            Err(anyhow!("{avail:?} of {want} available"))
        }
    })
    .await
}

/// What Argo does to a Service it manages: a strategic-merge patch of the hash into its selector, with the
/// managed-by annotation.
pub fn argo_service_selector(ns: &impl Kubectl, svc: &str, rollout: &str, hash: &str) -> Result<()> {
    let patch = json!({"metadata": {"annotations": {MANAGED: rollout}}, "spec": {"selector": {HASH: hash}}});
    ns.kubectl(&["patch", "service", svc, "-p", &patch.to_string()], None)?;
    Ok(())
}

/// A condition as Argo writes it.
pub fn condition(kind: &str, status: &str, reason: &str, message: &str, at: &str) -> Value {
    json!({
        "type": kind, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": at, "lastUpdateTime": at,
    })
}

/// The conditions of a rollout Argo paused in the middle of an update.
pub fn paused_conditions(at: &str) -> Value {
    json!([
        condition("Progressing", "Unknown", "RolloutPaused", "Rollout is paused", at),
        condition(
            "Available",
            "True",
            "AvailableReason",
            "Rollout has minimum availability",
            at
        ),
        condition("Paused", "True", "RolloutPaused", "Rollout is paused", at),
        condition("Healthy", "False", "RolloutHealthy", "Rollout is not healthy", at),
        condition("Completed", "False", "RolloutCompleted", "RolloutCompleted", at),
    ])
}

/// The steps of the mid-canary Rollout: it is paused at index 3, after setWeight 40.
pub const CANARY_STEPS: &str = "      - setWeight: 20
      - pause: {}
      - setWeight: 40
      - pause: {}
      - setWeight: 60
      - pause: {}
      - setWeight: 80
";

/// The mid-canary Rollout: 5 replicas on Istio, template at v2, revision 2.
pub fn istio_canary_yaml(name: &str) -> String {
    let strategy = istio_strategy(name, CANARY_STEPS);
    canary_rollout_yaml(name, 5, &format!("{name}:v2"), &strategy).replace(
        &format!("metadata:\n  name: {name}\n"),
        &format!("metadata:\n  name: {name}\n  annotations: {{{REVISION}: \"2\"}}\n"),
    )
}

/// The status Argo writes at step 3 (the pause after setWeight 40) with a traffic router: 2 canary pods
/// (ceil(5 × 40%)), the stable kept whole at 5, the router at 60/40.
pub fn canary_paused_status(ro: &Value, stable: &str, canary: &str, steps: &str, at: &str) -> Value {
    let name = ro["metadata"]["name"].as_str().unwrap_or_default();
    let weight =
        |svc: &str, w: i64, hash: &str| json!({"weight": w, "serviceName": svc, "podTemplateHash": hash});
    json!({"status": {
        "HPAReplicas": 7, "replicas": 7, "updatedReplicas": 2, "readyReplicas": 7, "availableReplicas": 7,
        "selector": format!("app={name}"),
        "currentPodHash": canary,
        "stableRS": stable,
        "currentStepIndex": 3,
        "currentStepHash": steps,
        "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": at}],
        "controllerPause": true,
        "canary": {"weights": {
            "canary": weight(&format!("{name}-canary"), 40, canary),
            "stable": weight(&format!("{name}-stable"), 60, stable),
        }},
        "blueGreen": {},
        "observedGeneration": ro["metadata"]["generation"].to_string(),
        "phase": "Paused",
        "message": "CanaryPauseStep",
        "conditions": paused_conditions(at),
    }})
}

/// What Argo Rollouts leaves of `name` paused at step 3: returns (stable hash, canary hash, steps hash).
pub async fn argo_paused_canary(ns: &impl Kubectl, oracle: &mut Oracle, name: &str) -> Result<Hashes> {
    let routed = services_and_vs(name)
        .replace("weight: 100", "weight: 60")
        .replace("weight: 0", "weight: 40");
    ns.apply(&routed)?;
    ns.apply(&istio_canary_yaml(name))?;
    let ro = get_json(ns, "rollout", name)?;
    let template = &ro["spec"]["template"];
    let canary = template_hash(oracle, template)?;
    let stable_template = with_image(template, &format!("{name}:v1"));
    let stable = template_hash(oracle, &stable_template)?;
    ensure!(stable != canary, "two templates, two hashes");
    let steps = steps_hash(oracle, &ro)?;
    create_replica_set(ns, &argo_replica_set(&ro, &stable_template, &stable, "1", 5)).await?;
    create_replica_set(ns, &argo_replica_set(&ro, template, &canary, "2", 2)).await?;
    argo_service_selector(ns, &format!("{name}-stable"), name, &stable)?;
    argo_service_selector(ns, &format!("{name}-canary"), name, &canary)?;
    ns.patch_status(name, &canary_paused_status(&ro, &stable, &canary, &steps, &now()))?;
    Ok(Hashes {
        stable,
        new: canary,
        steps,
    })
}

/// A blue-green Rollout of 3 replicas at v2, revision 2, waiting for a manual promotion.
pub fn blue_green_yaml(name: &str) -> String {
    let strategy = format!(
        "      activeService: {name}-active
      previewService: {name}-preview
      autoPromotionEnabled: false
"
    );
    // The same Rollout as a canary's but for the strategy's key.
    canary_rollout_yaml(name, 3, &format!("{name}:v2"), &strategy)
        .replace("    canary:\n", "    blueGreen:\n")
        .replace(
            &format!("metadata:\n  name: {name}\n"),
            &format!("metadata:\n  name: {name}\n  annotations: {{{REVISION}: \"2\"}}\n"),
        )
}

/// The Services `<name>-active` and `<name>-preview`, selecting every pod of the app until Argo narrows them.
pub fn blue_green_services(name: &str) -> String {
    ["active", "preview"]
        .map(|role| {
            format!(
                "apiVersion: v1
kind: Service
metadata: {{name: {name}-{role}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080}}]
"
            )
        })
        .join("---\n")
}

/// The status Argo writes while the new ReplicaSet is up behind the preview Service and the active one still
/// selects the old: counts of available and ready pods come from the active ReplicaSet.
pub fn blue_green_paused_status(ro: &Value, old: &str, new: &str, at: &str) -> Value {
    let name = ro["metadata"]["name"].as_str().unwrap_or_default();
    json!({"status": {
        "HPAReplicas": 3, "replicas": 6, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
        "selector": format!("app={name},{HASH}={old}"),
        "currentPodHash": new,
        "stableRS": old,
        "blueGreen": {"activeSelector": old, "previewSelector": new},
        "canary": {},
        "pauseConditions": [{"reason": "BlueGreenPause", "startTime": at}],
        "controllerPause": true,
        "observedGeneration": ro["metadata"]["generation"].to_string(),
        "phase": "Paused",
        "message": "BlueGreenPause",
        "conditions": paused_conditions(at),
    }})
}

/// What Argo Rollouts leaves of `name` paused before promotion: returns (old hash, new hash).
pub async fn argo_paused_blue_green(ns: &impl Kubectl, oracle: &mut Oracle, name: &str) -> Result<Hashes> {
    ns.apply(&blue_green_services(name))?;
    ns.apply(&blue_green_yaml(name))?;
    let ro = get_json(ns, "rollout", name)?;
    let new_template = ro["spec"]["template"].clone();
    let old_template = with_image(&new_template, &format!("{name}:v1"));
    let (old, new) = (
        template_hash(oracle, &old_template)?,
        template_hash(oracle, &new_template)?,
    );
    ensure!(old != new, "two templates, two hashes");
    create_replica_set(ns, &argo_replica_set(&ro, &old_template, &old, "1", 3)).await?;
    create_replica_set(ns, &argo_replica_set(&ro, &new_template, &new, "2", 3)).await?;
    argo_service_selector(ns, &format!("{name}-active"), name, &old)?;
    argo_service_selector(ns, &format!("{name}-preview"), name, &new)?;
    ns.patch_status(name, &blue_green_paused_status(&ro, &old, &new, &now()))?;
    Ok(Hashes {
        stable: old,
        new,
        steps: String::new(),
    })
}
