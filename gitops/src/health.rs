//! Health of live objects, as Argo CD assesses it (../shared/reference/argo-cd.md §3).
//!
//! [`health`] is gitops-engine's `GetResourceHealth` with the built-in checks plus the two Lua checks a
//! Rollouts-compatible GitOps controller needs (argoproj.io `Rollout` and the app-of-apps `Application`
//! check). [`aggregate`] is Argo CD's `setApplicationHealth`: the worst status of an Application's direct
//! managed resources. Everything here is a pure function of the objects as the API server returns them;
//! a malformed object gives [`HealthStatus::Unknown`] with a message, never a panic.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json_type;

/// A health status code. The declaration order is Argo CD's `healthOrder`, best to worst, so `Ord`
/// (and [`worse`]) follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HealthStatus {
    /// The resource is 100% healthy.
    Healthy,
    /// The resource is suspended or paused (a paused Deployment or Rollout, a suspended Job).
    Suspended,
    /// Not healthy yet, but it may still become healthy.
    Progressing,
    /// The resource does not exist in the cluster.
    Missing,
    /// The resource failed, or cannot reach a healthy state in time.
    Degraded,
    /// Health assessment failed; the actual health is unknown.
    Unknown,
}

impl HealthStatus {
    /// Every status, best to worst.
    pub const ALL: [HealthStatus; 6] = [
        HealthStatus::Healthy,
        HealthStatus::Suspended,
        HealthStatus::Progressing,
        HealthStatus::Missing,
        HealthStatus::Degraded,
        HealthStatus::Unknown,
    ];

    /// The exact string Argo CD writes (`status.health.status`, `status.resources[].health.status`).
    pub const fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "Healthy",
            HealthStatus::Suspended => "Suspended",
            HealthStatus::Progressing => "Progressing",
            HealthStatus::Missing => "Missing",
            HealthStatus::Degraded => "Degraded",
            HealthStatus::Unknown => "Unknown",
        }
    }

    /// Whether `self` is a worse condition than `other` (gitops-engine `IsWorse(other, self)`).
    pub fn is_worse_than(self, other: HealthStatus) -> bool {
        self > other
    }
}

/// The worse of two statuses by Argo CD's `healthOrder`.
pub fn worse(a: HealthStatus, b: HealthStatus) -> HealthStatus {
    a.max(b)
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is none of Argo CD's health status codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid health status {0:?}")]
pub struct ParseHealthStatusError(
    /// The rejected string.
    pub String,
);

impl FromStr for HealthStatus {
    type Err = ParseHealthStatusError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HealthStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| ParseHealthStatusError(s.to_string()))
    }
}

/// The result of a health assessment: Argo CD's `HealthStatus{status, message}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// The status code.
    pub status: HealthStatus,
    /// The human-readable message; empty when Argo CD gives none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl Health {
    /// A health with a status and a message (may be empty).
    pub fn new(status: HealthStatus, message: impl Into<String>) -> Self {
        Health {
            status,
            message: message.into(),
        }
    }
}

const HOOK_FINALIZER: &str = "argocd.argoproj.io/hook-finalizer";
const HOOK_ANNOTATION: &str = "argocd.argoproj.io/hook";
const HELM_HOOK_ANNOTATION: &str = "helm.sh/hook";
const IGNORE_RESTART_POLICY_ANNOTATION: &str = "argocd.argoproj.io/ignore-restart-policy";
const IGNORE_HEALTHCHECK_ANNOTATION: &str = "argocd.argoproj.io/ignore-healthcheck";
const LUA_INVALID_STATUS: &str = "Lua returned an invalid health status";

/// The health of a live object, or None when its group/kind has no health check (Argo CD then shows no
/// health and [`aggregate`] skips it).
///
/// First the generic rule: an object with `metadata.deletionTimestamp` set that does not carry the
/// `argocd.argoproj.io/hook-finalizer` finalizer is Progressing "Pending deletion", whatever its kind.
/// Then the built-in check of its group/kind: apps Deployment, StatefulSet, ReplicaSet, DaemonSet; core
/// Service, PersistentVolumeClaim, Pod; batch Job; Ingress (extensions, networking.k8s.io); APIService;
/// HorizontalPodAutoscaler; argoproj.io Workflow; and the Lua checks of argoproj.io Rollout and
/// Application. An object without a parsable `apiVersion`/`kind` has no check (None).
pub fn health(obj: &Value) -> Option<Health> {
    if pending_deletion(obj) {
        return Some(Health::new(HealthStatus::Progressing, "Pending deletion"));
    }
    let (group, version) = group_version(obj)?;
    let kind = str_field(obj, &["kind"])?;
    let check = builtin(group, kind)?;
    Some((check.run)(obj, version).unwrap_or_else(|fail| fail.into_health(check)))
}

/// What [`aggregate`] needs to know about one direct managed resource of an Application.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResourceHealth<'a> {
    /// The live object's health from [`health`]; None when its kind has no health check.
    pub health: Option<&'a Health>,
    /// The live object does not exist (only the target does): its health is Missing.
    pub missing: bool,
    /// The object is a sync hook (Argo CD reads it from the live object). Hooks are skipped.
    pub hook: bool,
    /// The object is ignored by the sync engine (an unknown hook type on the live object, or a target
    /// annotated `argocd.argoproj.io/hook: Skip`). Ignored objects are skipped.
    pub ignored: bool,
    /// The live object has `argocd.argoproj.io/ignore-healthcheck: "true"`: its health is not aggregated,
    /// but it still counts as an existing resource.
    pub ignore_healthcheck: bool,
    /// The object is an argoproj.io `Application` (a child app): its Missing or Unknown health is ignored.
    pub application: bool,
    /// The object is the Application being assessed (an app that manages itself): skipped.
    pub self_reference: bool,
}

impl<'a> ResourceHealth<'a> {
    /// A resource whose live object exists, with `application` and `ignore_healthcheck` read from it.
    /// `hook`, `ignored` and `self_reference` are the sync engine's to set.
    pub fn live(obj: &Value, health: Option<&'a Health>) -> Self {
        let application = group_version(obj).is_some_and(|(group, _)| group == "argoproj.io")
            && str_field(obj, &["kind"]) == Some("Application");
        ResourceHealth {
            health,
            application,
            ignore_healthcheck: ignores_healthcheck(obj),
            ..ResourceHealth::default()
        }
    }

    /// A resource whose live object does not exist. Argo CD shows its own health as Missing in
    /// `status.resources[].health`; it does not count towards the app's health.
    pub fn missing() -> Self {
        ResourceHealth {
            missing: true,
            ..ResourceHealth::default()
        }
    }
}

/// Whether an object carries `argocd.argoproj.io/ignore-healthcheck: "true"`.
pub fn ignores_healthcheck(obj: &Value) -> bool {
    annotation(obj, IGNORE_HEALTHCHECK_ANNOTATION) == Some("true")
}

/// The health of an Application from its direct managed resources, as Argo CD's `setApplicationHealth`:
/// the worst status (Healthy when nothing counts), skipping hooks, ignored objects, resources with
/// `ignore-healthcheck`, the app itself, resources without a health check, Missing resources, and child
/// Applications that are Missing or Unknown. If resources are expected but none of them exists, the app is
/// Missing (unless something is already worse). The message is empty, as Argo CD leaves it.
pub fn aggregate<'a>(resources: impl IntoIterator<Item = ResourceHealth<'a>>) -> Health {
    let mut status = HealthStatus::Healthy;
    let (mut expected, mut live) = (false, false);
    for resource in resources {
        if resource.hook || resource.ignored {
            continue;
        }
        expected = true;
        if resource.missing {
            // Missing resources do not affect the app's health (OutOfSync already says so).
            continue;
        }
        live = true;
        if resource.ignore_healthcheck || resource.self_reference {
            continue;
        }
        let Some(health) = resource.health else { continue };
        if resource.application && matches!(health.status, HealthStatus::Missing | HealthStatus::Unknown) {
            continue;
        }
        status = worse(status, health.status);
    }
    if expected && !live {
        status = worse(status, HealthStatus::Missing);
    }
    Health::new(status, "")
}

// ---------------------------------------------------------------------------------------------------
// Dispatch and errors

/// A failed check: the built-in returned an error, so the health is Unknown with this message.
enum Fail {
    /// A field has the wrong type; wrapped like Go's conversion error ("failed to convert …").
    Field(String),
    /// Any other error, used as the message as it is.
    Other(String),
}

impl Fail {
    fn field(path: &str, expected: &str, got: &Value) -> Fail {
        Fail::Field(format!("{path}: expected {expected}, got {}", json_type(got)))
    }

    fn within(self, prefix: &str) -> Fail {
        match self {
            Fail::Field(detail) => Fail::Field(format!("{prefix}.{detail}")),
            other => other,
        }
    }

    fn into_health(self, check: Builtin) -> Health {
        let message = match self {
            Fail::Field(detail) if check.lua => {
                format!("failed to evaluate {} health: {detail}", check.label)
            }
            Fail::Field(detail) => format!(
                "failed to convert unstructured {} to typed: {detail}",
                check.label
            ),
            Fail::Other(message) => message,
        };
        Health::new(HealthStatus::Unknown, message)
    }
}

type Check = Result<Health, Fail>;

#[derive(Clone, Copy)]
struct Builtin {
    /// The name Argo CD uses in its error messages.
    label: &'static str,
    /// A Lua check in Argo CD (resource_customizations), not a gitops-engine built-in.
    lua: bool,
    /// The check; gets the object and its API version.
    run: fn(&Value, &str) -> Check,
}

fn builtin(group: &str, kind: &str) -> Option<Builtin> {
    let (label, lua, run): (&'static str, bool, fn(&Value, &str) -> Check) = match (group, kind) {
        ("apps", "Deployment") => ("Deployment", false, deployment),
        ("apps", "StatefulSet") => ("StatefulSet", false, stateful_set),
        ("apps", "ReplicaSet") => ("ReplicaSet", false, replica_set),
        ("apps", "DaemonSet") => ("DaemonSet", false, daemon_set),
        ("extensions" | "networking.k8s.io", "Ingress") => ("Ingress", false, ingress),
        ("", "Service") => ("Service", false, service),
        ("", "PersistentVolumeClaim") => ("PersistentVolumeClaim", false, pvc),
        ("", "Pod") => ("Pod", false, pod),
        ("batch", "Job") => ("Job", false, job),
        ("apiregistration.k8s.io", "APIService") => ("APIService", false, api_service),
        ("autoscaling", "HorizontalPodAutoscaler") => ("HPA", false, hpa),
        ("argoproj.io", "Workflow") => ("Workflow", false, workflow),
        ("argoproj.io", "Rollout") => ("Rollout", true, rollout),
        ("argoproj.io", "Application") => ("Application", true, application),
        _ => return None,
    };
    Some(Builtin { label, lua, run })
}

/// gitops-engine's built-ins convert to one typed API version; any other version is an error.
fn expect_version(
    version: &str,
    supported: &[&str],
    group: &str,
    kind: &str,
    label: &str,
) -> Result<(), Fail> {
    if supported.contains(&version) {
        Ok(())
    } else {
        Err(Fail::Other(format!(
            "unsupported {label} GVK: {group}/{version}, Kind={kind}"
        )))
    }
}

fn pending_deletion(obj: &Value) -> bool {
    at(obj, &["metadata", "deletionTimestamp"]).is_some()
        && !at(obj, &["metadata", "finalizers"])
            .and_then(Value::as_array)
            .is_some_and(|finalizers| finalizers.iter().any(|f| f.as_str() == Some(HOOK_FINALIZER)))
}

/// (group, version) of `apiVersion`; None when it is absent or has more than one `/`.
fn group_version(obj: &Value) -> Option<(&str, &str)> {
    let api_version = str_field(obj, &["apiVersion"])?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    (!version.contains('/')).then_some((group, version))
}

// ---------------------------------------------------------------------------------------------------
// Field access: absent and null read as Go's zero values; a value of the wrong type is a Fail.

/// The value at `keys`; None when a step is absent, null, or not an object.
fn at<'v>(obj: &'v Value, keys: &[&str]) -> Option<&'v Value> {
    let mut current = obj;
    for key in keys {
        current = current.as_object()?.get(*key)?;
    }
    (!current.is_null()).then_some(current)
}

fn str_field<'v>(obj: &'v Value, keys: &[&str]) -> Option<&'v str> {
    at(obj, keys).and_then(Value::as_str)
}

fn annotation<'v>(obj: &'v Value, key: &str) -> Option<&'v str> {
    at(obj, &["metadata", "annotations"])?.get(key)?.as_str()
}

fn as_int(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        let float = value.as_f64()?;
        (float.fract() == 0.0 && float.abs() < 9.0e15).then_some(float as i64)
    })
}

/// An integer field; None when absent.
fn opt_int(obj: &Value, keys: &[&str]) -> Result<Option<i64>, Fail> {
    match at(obj, keys) {
        None => Ok(None),
        Some(value) => as_int(value)
            .map(Some)
            .ok_or_else(|| Fail::field(&keys.join("."), "an integer", value)),
    }
}

/// An integer field; 0 when absent.
fn int(obj: &Value, keys: &[&str]) -> Result<i64, Fail> {
    Ok(opt_int(obj, keys)?.unwrap_or(0))
}

/// A string field; "" when absent.
fn string<'v>(obj: &'v Value, keys: &[&str]) -> Result<&'v str, Fail> {
    match at(obj, keys) {
        None => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(value) => Err(Fail::field(&keys.join("."), "a string", value)),
    }
}

/// A boolean field; false when absent.
fn boolean(obj: &Value, keys: &[&str]) -> Result<bool, Fail> {
    match at(obj, keys) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(value) => Err(Fail::field(&keys.join("."), "a boolean", value)),
    }
}

/// An array field; empty when absent.
fn list<'v>(obj: &'v Value, keys: &[&str]) -> Result<&'v [Value], Fail> {
    match at(obj, keys) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(value) => Err(Fail::field(&keys.join("."), "an array", value)),
    }
}

/// The elements of an array field, each required to be an object.
fn objects<'v>(obj: &'v Value, keys: &[&str]) -> Result<Vec<&'v Value>, Fail> {
    let path = keys.join(".");
    list(obj, keys)?
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(_) => Ok(item),
            other => Err(Fail::field(&format!("{path}[{i}]"), "an object", other)),
        })
        .collect()
}

/// A status condition (`type`, `status`, `reason`, `message`).
struct Condition<'v> {
    kind: &'v str,
    status: &'v str,
    reason: &'v str,
    message: &'v str,
}

fn conditions<'v>(obj: &'v Value, keys: &[&str]) -> Result<Vec<Condition<'v>>, Fail> {
    let path = keys.join(".");
    let items = objects(obj, keys)?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| condition(item).map_err(|fail| fail.within(&format!("{path}[{i}]"))))
        .collect()
}

fn condition(item: &Value) -> Result<Condition<'_>, Fail> {
    Ok(Condition {
        kind: string(item, &["type"])?,
        status: string(item, &["status"])?,
        reason: string(item, &["reason"])?,
        message: string(item, &["message"])?,
    })
}

/// Go's `%q` of a string.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn progressing(message: impl Into<String>) -> Check {
    Ok(Health::new(HealthStatus::Progressing, message))
}

fn healthy(message: impl Into<String>) -> Check {
    Ok(Health::new(HealthStatus::Healthy, message))
}

fn degraded(message: impl Into<String>) -> Check {
    Ok(Health::new(HealthStatus::Degraded, message))
}

// ---------------------------------------------------------------------------------------------------
// apps

fn deployment(obj: &Value, version: &str) -> Check {
    expect_version(version, &["v1"], "apps", "Deployment", "Deployment")?;
    if boolean(obj, &["spec", "paused"])? {
        return Ok(Health::new(HealthStatus::Suspended, "Deployment is paused"));
    }
    if int(obj, &["metadata", "generation"])? > int(obj, &["status", "observedGeneration"])? {
        return progressing(
            "Waiting for rollout to finish: observed deployment generation less than desired generation",
        );
    }
    let progress = conditions(obj, &["status", "conditions"])?
        .into_iter()
        .find(|c| c.kind == "Progressing");
    if progress.is_some_and(|c| c.reason == "ProgressDeadlineExceeded") {
        let name = go_quote(string(obj, &["metadata", "name"])?);
        return degraded(format!("Deployment {name} exceeded its progress deadline"));
    }
    let spec_replicas = opt_int(obj, &["spec", "replicas"])?;
    let updated = int(obj, &["status", "updatedReplicas"])?;
    let replicas = int(obj, &["status", "replicas"])?;
    let available = int(obj, &["status", "availableReplicas"])?;
    if let Some(desired) = spec_replicas
        && updated < desired
    {
        return progressing(format!(
            "Waiting for rollout to finish: {updated} out of {desired} new replicas have been updated..."
        ));
    }
    if replicas > updated {
        return progressing(format!(
            "Waiting for rollout to finish: {} old replicas are pending termination...",
            replicas - updated
        ));
    }
    if available < updated {
        return progressing(format!(
            "Waiting for rollout to finish: {available} of {updated} updated replicas are available..."
        ));
    }
    healthy("")
}

fn stateful_set(obj: &Value, version: &str) -> Check {
    expect_version(version, &["v1"], "apps", "StatefulSet", "StatefulSet")?;
    let observed = int(obj, &["status", "observedGeneration"])?;
    if observed == 0 || int(obj, &["metadata", "generation"])? > observed {
        return progressing("Waiting for statefulset spec update to be observed...");
    }
    let spec_replicas = opt_int(obj, &["spec", "replicas"])?;
    let ready = int(obj, &["status", "readyReplicas"])?;
    if let Some(desired) = spec_replicas
        && ready < desired
    {
        return progressing(format!("Waiting for {} pods to be ready...", desired - ready));
    }
    let strategy = string(obj, &["spec", "updateStrategy", "type"])?;
    let updated = int(obj, &["status", "updatedReplicas"])?;
    if strategy == "RollingUpdate" && at(obj, &["spec", "updateStrategy", "rollingUpdate"]).is_some() {
        let partition = opt_int(obj, &["spec", "updateStrategy", "rollingUpdate", "partition"])?;
        if let (Some(desired), Some(partition)) = (spec_replicas, partition)
            && updated < desired - partition
        {
            return progressing(format!(
                "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been \
                 updated...",
                desired - partition
            ));
        }
        return healthy(format!(
            "partitioned roll out complete: {updated} new pods have been updated..."
        ));
    }
    if strategy == "OnDelete" {
        return healthy(format!("statefulset has {ready} ready pods"));
    }
    let update_revision = string(obj, &["status", "updateRevision"])?;
    let current_revision = string(obj, &["status", "currentRevision"])?;
    if update_revision != current_revision {
        return progressing(format!(
            "waiting for statefulset rolling update to complete {updated} pods at revision \
             {update_revision}..."
        ));
    }
    let current = int(obj, &["status", "currentReplicas"])?;
    healthy(format!(
        "statefulset rolling update complete {current} pods at revision {current_revision}..."
    ))
}

fn daemon_set(obj: &Value, version: &str) -> Check {
    expect_version(version, &["v1"], "apps", "DaemonSet", "DaemonSet")?;
    if int(obj, &["metadata", "generation"])? > int(obj, &["status", "observedGeneration"])? {
        return progressing(
            "Waiting for rollout to finish: observed daemon set generation less than desired generation",
        );
    }
    let updated = int(obj, &["status", "updatedNumberScheduled"])?;
    let desired = int(obj, &["status", "desiredNumberScheduled"])?;
    if string(obj, &["spec", "updateStrategy", "type"])? == "OnDelete" {
        return healthy(format!(
            "daemon set {updated} out of {desired} new pods have been updated"
        ));
    }
    let name = go_quote(string(obj, &["metadata", "name"])?);
    if updated < desired {
        return progressing(format!(
            "Waiting for daemon set {name} rollout to finish: {updated} out of {desired} new pods have \
             been updated..."
        ));
    }
    let available = int(obj, &["status", "numberAvailable"])?;
    if available < desired {
        return progressing(format!(
            "Waiting for daemon set {name} rollout to finish: {available} of {desired} updated pods are \
             available..."
        ));
    }
    healthy("")
}

fn replica_set(obj: &Value, version: &str) -> Check {
    expect_version(version, &["v1"], "apps", "ReplicaSet", "ReplicaSet")?;
    if int(obj, &["metadata", "generation"])? > int(obj, &["status", "observedGeneration"])? {
        return progressing(
            "Waiting for rollout to finish: observed replica set generation less than desired generation",
        );
    }
    let conditions = conditions(obj, &["status", "conditions"])?;
    if let Some(failure) = conditions.iter().find(|c| c.kind == "ReplicaFailure")
        && failure.status == "True"
    {
        return degraded(failure.message);
    }
    let available = int(obj, &["status", "availableReplicas"])?;
    if let Some(desired) = opt_int(obj, &["spec", "replicas"])?
        && available < desired
    {
        return progressing(format!(
            "Waiting for rollout to finish: {available} out of {desired} new replicas are available..."
        ));
    }
    healthy("")
}

// ---------------------------------------------------------------------------------------------------
// core, networking, batch, apiregistration, autoscaling

fn service(obj: &Value, version: &str) -> Check {
    expect_version(version, &["v1"], "", "Service", "Service")?;
    if string(obj, &["spec", "type"])? == "LoadBalancer"
        && list(obj, &["status", "loadBalancer", "ingress"])?.is_empty()
    {
        return progressing("");
    }
    healthy("")
}

fn ingress(obj: &Value, _version: &str) -> Check {
    // gitops-engine reads the list without type conversion: anything but a non-empty list is Progressing.
    let assigned = at(obj, &["status", "loadBalancer", "ingress"])
        .and_then(Value::as_array)
        .is_some_and(|ingresses| !ingresses.is_empty());
    if assigned { healthy("") } else { progressing("") }
}

fn pvc(obj: &Value, version: &str) -> Check {
    expect_version(
        version,
        &["v1"],
        "",
        "PersistentVolumeClaim",
        "PersistentVolumeClaim",
    )?;
    let status = match string(obj, &["status", "phase"])? {
        "Lost" => HealthStatus::Degraded,
        "Pending" => HealthStatus::Progressing,
        "Bound" => HealthStatus::Healthy,
        _ => HealthStatus::Unknown,
    };
    Ok(Health::new(status, ""))
}

fn pod(obj: &Value, version: &str) -> Check {
    expect_version(version, &["v1"], "", "Pod", "Pod")?;
    // The API server defaults restartPolicy to Always.
    let policy = match at(obj, &["spec", "restartPolicy"]) {
        None => "Always",
        Some(_) => string(obj, &["spec", "restartPolicy"])?,
    };
    // Only long-running pods may turn Degraded while waiting or running: hook pods (Never/OnFailure) must
    // not fail a sync prematurely. The ignore-restart-policy annotation opts a non-hook pod in.
    let long_running = policy == "Always"
        || (annotation(obj, IGNORE_RESTART_POLICY_ANNOTATION) == Some("true") && !is_hook(obj));
    let statuses = objects(obj, &["status", "containerStatuses"])?;
    if long_running && let Some(waiting) = pod_waiting_error(&statuses)? {
        return Ok(waiting);
    }
    let message = string(obj, &["status", "message"])?;
    match string(obj, &["status", "phase"])? {
        "Pending" => progressing(message),
        "Succeeded" => healthy(message),
        "Failed" => pod_failed(obj, &statuses, message),
        "Running" if long_running => {
            let ready = conditions(obj, &["status", "conditions"])?
                .iter()
                .any(|c| c.kind == "Ready" && c.status == "True");
            if ready {
                return healthy(message);
            }
            if statuses
                .iter()
                .any(|s| at(s, &["lastState", "terminated"]).is_some())
            {
                return degraded(message);
            }
            progressing(message)
        }
        "Running" if policy == "OnFailure" || policy == "Never" => progressing(message),
        _ => Ok(Health::new(HealthStatus::Unknown, message)),
    }
}

/// Degraded when any container waits for an error reason (prefix `Err`, suffix `Error` or `BackOff`).
fn pod_waiting_error(statuses: &[&Value]) -> Result<Option<Health>, Fail> {
    let mut messages = Vec::new();
    for status in statuses {
        let reason = string(status, &["state", "waiting", "reason"])?;
        if reason.starts_with("Err") || reason.ends_with("Error") || reason.ends_with("BackOff") {
            messages.push(string(status, &["state", "waiting", "message"])?);
        }
    }
    Ok((!messages.is_empty()).then(|| Health::new(HealthStatus::Degraded, messages.join(", "))))
}

fn pod_failed(obj: &Value, statuses: &[&Value], message: &str) -> Check {
    if !message.is_empty() {
        return degraded(message);
    }
    let init = objects(obj, &["status", "initContainerStatuses"])?;
    for container in init.iter().chain(statuses) {
        if at(container, &["state", "terminated"]).is_none() {
            continue;
        }
        let terminated_message = string(container, &["state", "terminated", "message"])?;
        if !terminated_message.is_empty() {
            return degraded(terminated_message);
        }
        if string(container, &["state", "terminated", "reason"])? == "OOMKilled" {
            return degraded("OOMKilled");
        }
        let exit_code = int(container, &["state", "terminated", "exitCode"])?;
        if exit_code != 0 {
            let name = go_quote(string(container, &["name"])?);
            return degraded(format!("container {name} failed with exit code {exit_code}"));
        }
    }
    degraded("")
}

/// gitops-engine `hook.IsHook`: an Argo CD hook annotation that is not only `Skip`, or a Helm hook
/// annotation other than `crd-install`.
fn is_hook(obj: &Value) -> bool {
    const TYPES: [&str; 7] = [
        "PreSync",
        "Sync",
        "PostSync",
        "SyncFail",
        "PreDelete",
        "PostDelete",
        "Skip",
    ];
    if let Some(value) = annotation(obj, HOOK_ANNOTATION) {
        let types: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|t| TYPES.contains(t))
            .collect();
        return !(types.len() == 1 && types[0] == "Skip");
    }
    annotation(obj, HELM_HOOK_ANNOTATION).is_some_and(|value| value != "crd-install")
}

fn job(obj: &Value, version: &str) -> Check {
    expect_version(version, &["v1"], "batch", "Job", "Job")?;
    let (mut failed, mut complete, mut suspended) = (false, false, false);
    let (mut fail_message, mut message) = ("", "");
    for condition in conditions(obj, &["status", "conditions"])? {
        match condition.kind {
            "Failed" => (failed, complete, fail_message) = (true, true, condition.message),
            "Complete" => (complete, message) = (true, condition.message),
            "Suspended" => {
                (complete, message) = (true, condition.message);
                suspended |= condition.status == "True";
            }
            _ => {}
        }
    }
    if !complete {
        progressing(message)
    } else if failed {
        degraded(fail_message)
    } else if suspended {
        // gitops-engine reports the (empty) failure message here, not the Suspended condition's.
        Ok(Health::new(HealthStatus::Suspended, fail_message))
    } else {
        healthy(message)
    }
}

fn api_service(obj: &Value, version: &str) -> Check {
    expect_version(
        version,
        &["v1", "v1beta1"],
        "apiregistration.k8s.io",
        "APIService",
        "APIService",
    )?;
    let conditions = conditions(obj, &["status", "conditions"])?;
    match conditions.iter().find(|c| c.kind == "Available") {
        Some(c) if c.status == "True" => healthy(format!("{}: {}", c.reason, c.message)),
        Some(c) => progressing(format!("{}: {}", c.reason, c.message)),
        None => progressing("Waiting to be processed"),
    }
}

fn hpa(obj: &Value, version: &str) -> Check {
    const WAITING: &str = "Waiting to Autoscale";
    match version {
        "v1" => {
            let Some(raw) = annotation(obj, "autoscaling.alpha.kubernetes.io/conditions") else {
                return progressing(WAITING);
            };
            let parsed: Value = serde_json::from_str(raw)
                .map_err(|e| Fail::Other(format!("failed to convert conditions annotation to typed: {e}")))?;
            let wrapped = serde_json::json!({ "conditions": parsed });
            let conditions = conditions(&wrapped, &["conditions"]).map_err(|fail| match fail {
                Fail::Field(detail) => Fail::Other(format!(
                    "failed to convert conditions annotation to typed: {detail}"
                )),
                other => other,
            })?;
            Ok(hpa_conditions(&conditions, WAITING))
        }
        "v2" | "v2beta1" | "v2beta2" => Ok(hpa_conditions(
            &conditions(obj, &["status", "conditions"])?,
            WAITING,
        )),
        _ => Err(Fail::Other(format!(
            "unsupported HPA GVK: autoscaling/{version}, Kind=HorizontalPodAutoscaler"
        ))),
    }
}

/// Any degraded condition wins over a healthy one (a scaling error behind `AbleToScale=True` still shows).
fn hpa_conditions(conditions: &[Condition<'_>], waiting: &str) -> Health {
    const DEGRADED: [(&str, &str); 8] = [
        ("AbleToScale", "FailedGetScale"),
        ("AbleToScale", "FailedUpdateScale"),
        ("ScalingActive", "FailedGetResourceMetric"),
        ("ScalingActive", "FailedGetObjectMetric"),
        ("ScalingActive", "FailedGetPodsMetric"),
        ("ScalingActive", "FailedGetExternalMetric"),
        ("ScalingActive", "FailedComputeMetricsReplicas"),
        ("ScalingActive", "InvalidSelector"),
    ];
    if let Some(c) = conditions.iter().find(|c| DEGRADED.contains(&(c.kind, c.reason))) {
        return Health::new(HealthStatus::Degraded, c.message);
    }
    let healthy =
        |c: &&Condition<'_>| c.status == "True" && matches!(c.kind, "AbleToScale" | "ScalingLimited");
    match conditions.iter().find(healthy) {
        Some(c) => Health::new(HealthStatus::Healthy, c.message),
        None => Health::new(HealthStatus::Progressing, waiting),
    }
}

// ---------------------------------------------------------------------------------------------------
// argoproj.io

fn workflow(obj: &Value, _version: &str) -> Check {
    let message = string(obj, &["status", "message"])?;
    let status = match string(obj, &["status", "phase"])? {
        "" | "Pending" | "Running" => HealthStatus::Progressing,
        "Succeeded" => HealthStatus::Healthy,
        "Failed" | "Error" => HealthStatus::Degraded,
        _ => HealthStatus::Unknown,
    };
    Ok(Health::new(status, message))
}

/// The app-of-apps check Argo CD documents for argocd-cm (`resource.customizations.health.
/// argoproj.io_Application`): the child's own `status.health`, Progressing while it has none.
fn application(obj: &Value, _version: &str) -> Check {
    let Some(child) = at(obj, &["status", "health"]) else {
        return progressing("");
    };
    let message = str_field(child, &["message"]).unwrap_or("");
    Ok(lua_status(at(child, &["status"]), message))
}

/// A status a Lua check returned: valid codes pass, anything else is Unknown (Argo CD's Lua VM check).
fn lua_status(status: Option<&Value>, message: &str) -> Health {
    match status.and_then(Value::as_str).map(str::parse::<HealthStatus>) {
        Some(Ok(status)) => Health::new(status, message),
        _ => Health::new(HealthStatus::Unknown, LUA_INVALID_STATUS),
    }
}

/// Lua `tonumber`: numbers as they are, numeric strings (decimal or 0x hex) parsed, anything else nil.
fn lua_number(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let s = s.trim();
            let (negative, digits) = match s.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, s),
            };
            if let Some(hex) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
                let n = u64::from_str_radix(hex, 16).ok()? as f64;
                return Some(if negative { -n } else { n });
            }
            let numeric = !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c));
            numeric.then(|| s.parse::<f64>().ok()).flatten()
        }
        _ => None,
    }
}

/// Lua `==` on two field values (nil equals nil; numbers compare numerically).
fn lua_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64() == y.as_f64(),
        (a, b) => a == b,
    }
}

/// Lua truthiness: everything but nil and false.
fn lua_truthy(value: Option<&Value>) -> bool {
    !matches!(value, None | Some(Value::Bool(false)))
}

/// A number field the Lua script reads with a default.
fn lua_count(obj: &Value, keys: &[&str], default: f64) -> Result<f64, Fail> {
    match at(obj, keys) {
        None => Ok(default),
        Some(Value::Number(n)) => Ok(n.as_f64().unwrap_or(default)),
        Some(value) => Err(Fail::field(&keys.join("."), "a number", value)),
    }
}

/// argo-cd `resource_customizations/argoproj.io/Rollout/health.lua`.
fn rollout(obj: &Value, _version: &str) -> Check {
    if !rollout_generation_observed(obj)? || !rollout_workload_generation_observed(obj) {
        return progressing("Waiting for rollout spec update to be observed");
    }
    // Rollouts >= 1.0 compute phase and message themselves; Argo CD surfaces them as they are.
    if let Some(phase) = at(obj, &["status", "phase"]) {
        let message = str_field(obj, &["status", "message"]).unwrap_or("");
        if phase.as_str() == Some("Paused") {
            return Ok(Health::new(HealthStatus::Suspended, message));
        }
        return Ok(lua_status(Some(phase), message));
    }
    rollout_legacy(obj)
}

/// A numeric `status.observedGeneration` must equal `metadata.generation`; a missing or non-numeric one
/// (a v0.9 pod-template hash) or one above the generation counts as observed. No status: not observed.
fn rollout_generation_observed(obj: &Value) -> Result<bool, Fail> {
    if at(obj, &["status"]).is_none() {
        return Ok(false);
    }
    let Some(observed) = lua_number(at(obj, &["status", "observedGeneration"])) else {
        return Ok(true);
    };
    let generation = at(obj, &["metadata", "generation"]);
    let Some(generation) = generation.and_then(Value::as_f64) else {
        return Err(Fail::field(
            "metadata.generation",
            "a number",
            generation.unwrap_or(&Value::Null),
        ));
    };
    Ok(observed >= generation)
}

/// With `spec.workloadRef`, the `rollout.argoproj.io/workload-generation` annotation must equal
/// `status.workloadObservedGeneration` (as Lua numbers; both absent counts as equal).
fn rollout_workload_generation_observed(obj: &Value) -> bool {
    if at(obj, &["spec", "workloadRef"]).is_none() || at(obj, &["metadata", "annotations"]).is_none() {
        return true;
    }
    let wanted = annotation(obj, "rollout.argoproj.io/workload-generation").map(|s| Value::String(s.into()));
    let wanted = lua_number(wanted.as_ref());
    let observed = lua_number(at(obj, &["status", "workloadObservedGeneration"]));
    wanted == observed
}

/// The pre-1.0 path, for Rollouts that do not write `status.phase`.
fn rollout_legacy(obj: &Value) -> Check {
    for c in conditions(obj, &["status", "conditions"])? {
        let aborted =
            c.kind == "Progressing" && matches!(c.reason, "RolloutAborted" | "ProgressDeadlineExceeded");
        if c.kind == "InvalidSpec" || aborted {
            return degraded(c.message);
        }
    }
    let pause_conditions = at(obj, &["status", "pauseConditions"]).and_then(Value::as_array);
    if pause_conditions.is_some_and(|p| !p.is_empty()) || lua_truthy(at(obj, &["spec", "paused"])) {
        return Ok(Health::new(HealthStatus::Suspended, "Rollout is paused"));
    }
    let Some(pod_hash) = at(obj, &["status", "currentPodHash"]) else {
        return progressing("Waiting for rollout to finish: status has not been reconciled.");
    };
    let desired = lua_count(obj, &["spec", "replicas"], 1.0)?;
    let replicas = lua_count(obj, &["status", "replicas"], 0.0)?;
    let updated = lua_count(obj, &["status", "updatedReplicas"], 0.0)?;
    let available = lua_count(obj, &["status", "availableReplicas"], 0.0)?;
    if updated < desired {
        return progressing("Waiting for roll out to finish: More replicas need to be updated");
    }
    if available < updated {
        return progressing("Waiting for roll out to finish: updated replicas are still becoming available");
    }
    // v0.8 moved .status.canary.stableRS to .status.stableRS; with neither, Lua gets "" (no canary
    // status) or nil (a canary status without stableRS).
    static NO_STABLE: Value = Value::String(String::new());
    let stable = match at(obj, &["status", "stableRS"]) {
        Some(stable) => Some(stable),
        None if at(obj, &["status", "canary"]).is_some() => at(obj, &["status", "canary", "stableRS"]),
        None => Some(&NO_STABLE),
    };
    let no_stable = lua_eq(stable, Some(&NO_STABLE));
    if at(obj, &["spec", "strategy", "blueGreen"]).is_some() {
        if !lua_eq(
            at(obj, &["status", "blueGreen", "activeSelector"]),
            Some(pod_hash),
        ) {
            return progressing("active service cutover pending");
        }
        if !no_stable && !lua_eq(stable, Some(pod_hash)) {
            return progressing("waiting for analysis to complete");
        }
    } else if at(obj, &["spec", "strategy", "canary"]).is_some() {
        if replicas > updated {
            return progressing("Waiting for roll out to finish: old replicas are pending termination");
        }
        if no_stable || !lua_eq(stable, Some(pod_hash)) {
            return progressing("Waiting for rollout to finish steps");
        }
    }
    healthy("")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use HealthStatus::{Degraded, Healthy, Missing, Progressing, Suspended, Unknown};

    /// One table row: the rule's name, the object, and the health wanted (None: no health check).
    struct Case {
        name: &'static str,
        obj: Value,
        want: Option<(HealthStatus, String)>,
    }

    fn case(name: &'static str, obj: Value, status: HealthStatus, message: &str) -> Case {
        Case {
            name,
            obj,
            want: Some((status, message.to_string())),
        }
    }

    fn none(name: &'static str, obj: Value) -> Case {
        Case {
            name,
            obj,
            want: None,
        }
    }

    fn run(cases: Vec<Case>) {
        for c in cases {
            let got = health(&c.obj).map(|h| (h.status, h.message));
            assert_eq!(got, c.want, "case {:?}", c.name);
        }
    }

    /// An object named `web` in `default` at generation 1, with extra metadata merged in.
    fn object(api_version: &str, kind: &str, metadata: Value, spec: Value, status: Value) -> Value {
        let mut meta = json!({ "name": "web", "namespace": "default", "generation": 1 });
        merge(&mut meta, metadata);
        json!({ "apiVersion": api_version, "kind": kind, "metadata": meta, "spec": spec, "status": status })
    }

    fn merge(into: &mut Value, extra: Value) {
        if let (Some(into), Value::Object(extra)) = (into.as_object_mut(), extra) {
            into.extend(extra);
        }
    }

    fn with(mut base: Value, extra: Value) -> Value {
        merge(&mut base, extra);
        base
    }

    #[test]
    fn status_strings_serde_and_order() {
        let names = [
            "Healthy",
            "Suspended",
            "Progressing",
            "Missing",
            "Degraded",
            "Unknown",
        ];
        for (status, name) in HealthStatus::ALL.into_iter().zip(names) {
            assert_eq!(status.as_str(), name);
            assert_eq!(status.to_string(), name);
            assert_eq!(
                serde_json::to_value(status).ok(),
                Some(json!(name)),
                "serialise {name}"
            );
            assert_eq!(
                serde_json::from_value::<HealthStatus>(json!(name)).ok(),
                Some(status)
            );
            assert_eq!(name.parse::<HealthStatus>(), Ok(status));
        }
        assert!("Paused".parse::<HealthStatus>().is_err());
        for pair in HealthStatus::ALL.windows(2) {
            assert!(
                pair[1].is_worse_than(pair[0]),
                "{} worse than {}",
                pair[1],
                pair[0]
            );
            assert!(!pair[0].is_worse_than(pair[1]));
            assert_eq!(worse(pair[0], pair[1]), pair[1]);
            assert_eq!(worse(pair[1], pair[0]), pair[1]);
        }
        assert_eq!(worse(Missing, Degraded), Degraded);
        let h = Health::new(Healthy, "");
        assert_eq!(
            serde_json::to_value(&h).ok(),
            Some(json!({ "status": "Healthy" }))
        );
        let back: Option<Health> =
            serde_json::from_value(json!({ "status": "Degraded", "message": "x" })).ok();
        assert_eq!(back, Some(Health::new(Degraded, "x")));
    }

    #[test]
    #[rustfmt::skip]
    fn generic_rules() {
        let deleting = json!({ "deletionTimestamp": "2026-01-01T00:00:00Z" });
        let hook_deleting = json!({
            "deletionTimestamp": "2026-01-01T00:00:00Z",
            "finalizers": ["other", "argocd.argoproj.io/hook-finalizer"],
        });
        let plain = |api: &str, kind: &str| object(api, kind, json!({}), json!({}), json!({}));
        run(vec![
            case("deletionTimestamp set => Progressing Pending deletion",
                object("apps/v1", "Deployment", deleting.clone(), json!({}), json!({})),
                Progressing, "Pending deletion"),
            case("pending deletion applies to kinds without a check",
                object("v1", "ConfigMap", deleting, json!({}), json!({})), Progressing, "Pending deletion"),
            case("hook finalizer => the built-in check runs",
                object("v1", "Pod", hook_deleting, json!({}), json!({ "phase": "Succeeded" })), Healthy, ""),
            none("kind without health check => None", plain("v1", "ConfigMap")),
            none("unknown CRD => None", plain("example.com/v1", "Widget")),
            none("extensions Deployment is not built in", plain("extensions/v1beta1", "Deployment")),
            none("no kind => None", json!({ "apiVersion": "v1" })),
            none("not an object => None", json!("Pod")),
        ]);
    }

    fn deploy(generation: i64, replicas: Value, status: Value) -> Value {
        object(
            "apps/v1",
            "Deployment",
            json!({ "generation": generation }),
            json!({ "replicas": replicas }),
            status,
        )
    }

    fn counts(observed: i64, replicas: i64, updated: i64, available: i64) -> Value {
        json!({ "observedGeneration": observed, "replicas": replicas, "updatedReplicas": updated,
                "availableReplicas": available })
    }

    #[test]
    #[rustfmt::skip]
    fn deployment_rules() {
        let deadline = json!({ "observedGeneration": 2, "conditions": [
            { "type": "Available", "status": "True" },
            { "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded" },
        ]});
        let paused_spec = json!({ "paused": true });
        let paused = object("apps/v1", "Deployment", json!({}), paused_spec, counts(0, 3, 1, 1));
        run(vec![
            case("spec.paused => Suspended", paused, Suspended, "Deployment is paused"),
            case("generation not observed => Progressing", deploy(3, json!(3), counts(2, 3, 3, 3)),
                Progressing,
                "Waiting for rollout to finish: observed deployment generation less than desired generation"),
            case("ProgressDeadlineExceeded => Degraded", deploy(2, json!(3), deadline), Degraded,
                "Deployment \"web\" exceeded its progress deadline"),
            case("updated < spec.replicas => Progressing", deploy(2, json!(3), counts(2, 3, 1, 1)),
                Progressing,
                "Waiting for rollout to finish: 1 out of 3 new replicas have been updated..."),
            case("no spec.replicas => that check is skipped", deploy(2, Value::Null, counts(2, 1, 1, 1)),
                Healthy, ""),
            case("old replicas pending termination => Progressing", deploy(2, json!(3), counts(2, 4, 3, 3)),
                Progressing, "Waiting for rollout to finish: 1 old replicas are pending termination..."),
            case("available < updated => Progressing", deploy(2, json!(3), counts(2, 3, 3, 2)), Progressing,
                "Waiting for rollout to finish: 2 of 3 updated replicas are available..."),
            case("all replicas updated and available => Healthy", deploy(2, json!(3), counts(2, 3, 3, 3)),
                Healthy, ""),
            case("other apps version => Unknown unsupported GVK",
                object("apps/v1beta2", "Deployment", json!({}), json!({}), json!({})),
                Unknown, "unsupported Deployment GVK: apps/v1beta2, Kind=Deployment"),
            case("malformed spec.replicas => Unknown", deploy(1, json!("three"), counts(1, 0, 0, 0)), Unknown,
                "failed to convert unstructured Deployment to typed: \
                 spec.replicas: expected an integer, got a string"),
        ]);
    }

    fn sts(spec: Value, status: Value) -> Value {
        object("apps/v1", "StatefulSet", json!({}), spec, status)
    }

    #[test]
    #[rustfmt::skip]
    fn stateful_set_rules() {
        let rolling = |update: Value| {
            json!({ "replicas": 3, "updateStrategy": { "type": "RollingUpdate", "rollingUpdate": update } })
        };
        let ready = |updated: i64, update_revision: &str, current_revision: &str| {
            json!({ "observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": updated,
                    "currentReplicas": 3,
                    "updateRevision": update_revision, "currentRevision": current_revision })
        };
        let rolling_no_partition = json!({ "replicas": 3, "updateStrategy": { "type": "RollingUpdate" } });
        run(vec![
            case("observedGeneration 0 => Progressing", sts(json!({ "replicas": 3 }), json!({})), Progressing,
                "Waiting for statefulset spec update to be observed..."),
            case("generation > observed => Progressing",
                object("apps/v1", "StatefulSet", json!({ "generation": 2 }), json!({}),
                    json!({ "observedGeneration": 1 })),
                Progressing, "Waiting for statefulset spec update to be observed..."),
            case("ready < replicas => Progressing",
                sts(json!({ "replicas": 3 }), json!({ "observedGeneration": 1, "readyReplicas": 1 })),
                Progressing, "Waiting for 2 pods to be ready..."),
            case("partitioned rollout pending => Progressing",
                sts(rolling(json!({ "partition": 1 })), ready(1, "b", "a")), Progressing,
                "Waiting for partitioned roll out to finish: 1 out of 2 new pods have been updated..."),
            case("partitioned rollout complete => Healthy, before the revision check",
                sts(rolling(json!({ "partition": 1 })), ready(2, "b", "a")), Healthy,
                "partitioned roll out complete: 2 new pods have been updated..."),
            case("rollingUpdate without partition => Healthy", sts(rolling(json!({})), ready(0, "b", "a")),
                Healthy, "partitioned roll out complete: 0 new pods have been updated..."),
            case("OnDelete => Healthy",
                sts(json!({ "replicas": 3, "updateStrategy": { "type": "OnDelete" } }), ready(0, "b", "a")),
                Healthy, "statefulset has 3 ready pods"),
            case("updateRevision != currentRevision => Progressing",
                sts(rolling_no_partition.clone(), ready(1, "web-2", "web-1")), Progressing,
                "waiting for statefulset rolling update to complete 1 pods at revision web-2..."),
            case("revisions equal => Healthy", sts(rolling_no_partition, ready(3, "web-1", "web-1")), Healthy,
                "statefulset rolling update complete 3 pods at revision web-1..."),
        ]);
    }

    fn ds(generation: i64, spec: Value, updated: i64, available: i64) -> Value {
        let status = json!({ "observedGeneration": 1, "desiredNumberScheduled": 3,
                             "updatedNumberScheduled": updated, "numberAvailable": available });
        object(
            "apps/v1",
            "DaemonSet",
            json!({ "generation": generation }),
            spec,
            status,
        )
    }

    #[test]
    #[rustfmt::skip]
    fn daemon_set_rules() {
        let on_delete = json!({ "updateStrategy": { "type": "OnDelete" } });
        run(vec![
            case("generation not observed => Progressing", ds(2, json!({}), 3, 3), Progressing,
                "Waiting for rollout to finish: observed daemon set generation less than desired generation"),
            case("OnDelete => Healthy", ds(1, on_delete, 1, 1), Healthy,
                "daemon set 1 out of 3 new pods have been updated"),
            case("updated < desired => Progressing", ds(1, json!({}), 1, 3), Progressing,
                "Waiting for daemon set \"web\" rollout to finish: 1 out of 3 new pods have been updated..."),
            case("available < desired => Progressing", ds(1, json!({}), 3, 2), Progressing,
                "Waiting for daemon set \"web\" rollout to finish: 2 of 3 updated pods are available..."),
            case("all updated and available => Healthy", ds(1, json!({}), 3, 3), Healthy, ""),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn replica_set_rules() {
        let rs = |generation: i64, status: Value| {
            let metadata = json!({ "generation": generation });
            object("apps/v1", "ReplicaSet", metadata, json!({ "replicas": 3 }), status)
        };
        let failure = json!([{ "type": "ReplicaFailure", "status": "True", "message": "quota exceeded" }]);
        run(vec![
            case("ReplicaFailure=True => Degraded with its message",
                rs(1, json!({ "observedGeneration": 1, "conditions": failure })), Degraded, "quota exceeded"),
            case("available < spec.replicas => Progressing",
                rs(1, json!({ "observedGeneration": 1, "availableReplicas": 1 })), Progressing,
                "Waiting for rollout to finish: 1 out of 3 new replicas are available..."),
            case("all available => Healthy",
                rs(1, json!({ "observedGeneration": 1, "availableReplicas": 3 })),
                Healthy, ""),
            case("generation not observed => Progressing", rs(2, json!({ "observedGeneration": 1 })),
                Progressing,
                "Waiting for rollout to finish: observed replica set generation less than desired \
                 generation"),
        ]);
    }

    fn pod(annotations: Value, policy: &str, status: Value) -> Value {
        let spec = json!({ "restartPolicy": policy });
        object("v1", "Pod", json!({ "annotations": annotations }), spec, status)
    }

    fn waiting(reason: &str, message: &str) -> Value {
        json!({ "name": "main", "state": { "waiting": { "reason": reason, "message": message } } })
    }

    fn running(ready: bool, containers: Value) -> Value {
        let ready = if ready { "True" } else { "False" };
        json!({ "phase": "Running", "containerStatuses": containers,
                "conditions": [{ "type": "Ready", "status": ready }] })
    }

    #[test]
    #[rustfmt::skip]
    fn pod_restart_policy_rules() {
        const IGNORE: &str = "argocd.argoproj.io/ignore-restart-policy";
        let ignore = json!({ IGNORE: "true" });
        let ignore_hook = json!({ IGNORE: "true", "argocd.argoproj.io/hook": "PostSync" });
        let ignore_skip = json!({ IGNORE: "true", "argocd.argoproj.io/hook": "Skip" });
        let ignore_helm_hook = json!({ IGNORE: "true", "helm.sh/hook": "post-install" });
        let backoff = json!([
            waiting("CrashLoopBackOff", "back-off restarting"),
            waiting("ErrImagePull", "no pull"),
        ]);
        let config_waiting = waiting("CreateContainerConfigError", "no secret");
        let config_error = json!({ "phase": "Pending", "containerStatuses": [config_waiting] });
        let no_policy = object("v1", "Pod", json!({}), json!({}), running(false, backoff.clone()));
        run(vec![
            case("Always + waiting BackOff/Err => Degraded, messages joined",
                pod(json!({}), "Always", running(false, backoff.clone())), Degraded,
                "back-off restarting, no pull"),
            case("waiting reason suffix Error => Degraded", pod(json!({}), "Always", config_error), Degraded,
                "no secret"),
            case("missing restartPolicy defaults to Always", no_policy, Degraded,
                "back-off restarting, no pull"),
            case("Never + BackOff => not Degraded (hook semantics)",
                pod(json!({}), "Never", running(false, backoff.clone())), Progressing, ""),
            case("ignore-restart-policy on a non-hook + BackOff => Degraded",
                pod(ignore.clone(), "Never", running(false, backoff.clone())), Degraded,
                "back-off restarting, no pull"),
            case("ignore-restart-policy on a non-hook + Running Ready => Healthy",
                pod(ignore, "Never", running(true, json!([]))), Healthy, ""),
            case("hook: Skip alone is not a hook, so the annotation applies",
                pod(ignore_skip, "Never", running(true, json!([]))), Healthy, ""),
            case("ignore-restart-policy on an Argo CD hook is ignored",
                pod(ignore_hook, "Never", running(true, json!([]))), Progressing, ""),
            case("ignore-restart-policy on a Helm hook is ignored",
                pod(ignore_helm_hook, "Never", running(false, backoff)), Progressing, ""),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn pod_phase_rules() {
        let failed = |container: Value| json!({ "phase": "Failed", "containerStatuses": [container] });
        let terminated = |t: Value| json!({ "name": "main", "state": { "terminated": t } });
        let init_failed = json!({ "phase": "Failed",
            "initContainerStatuses": [{ "name": "init", "state": { "terminated": { "exitCode": 3 } } }] });
        let restarted = json!([{ "name": "main", "lastState": { "terminated": { "exitCode": 1 } },
                                 "state": { "running": {} } }]);
        let never = |status: Value| pod(json!({}), "Never", status);
        let always = |status: Value| pod(json!({}), "Always", status);
        run(vec![
            case("Pending => Progressing with the pod message",
                always(json!({ "phase": "Pending", "message": "scheduling" })), Progressing, "scheduling"),
            case("Succeeded => Healthy", never(json!({ "phase": "Succeeded" })), Healthy, ""),
            case("Failed with a pod message => Degraded",
                never(json!({ "phase": "Failed", "message": "evicted" })),
                Degraded, "evicted"),
            case("Failed, terminated message => Degraded",
                never(failed(terminated(json!({ "message": "boom", "exitCode": 1 })))), Degraded, "boom"),
            case("Failed, OOMKilled => Degraded",
                never(failed(terminated(json!({ "reason": "OOMKilled", "exitCode": 137 })))), Degraded,
                "OOMKilled"),
            case("Failed, exit code => Degraded",
                never(failed(terminated(json!({ "reason": "Error", "exitCode": 2 })))), Degraded,
                "container \"main\" failed with exit code 2"),
            case("Failed, init containers first => Degraded", never(init_failed), Degraded,
                "container \"init\" failed with exit code 3"),
            case("Failed, nothing known => Degraded with no message", never(json!({ "phase": "Failed" })),
                Degraded, ""),
            case("Running + Always + Ready => Healthy", always(running(true, json!([]))), Healthy, ""),
            case("Running + Always, not Ready, a lastState.terminated => Degraded",
                always(running(false, restarted)), Degraded, ""),
            case("Running + Always, not Ready => Progressing", always(running(false, json!([]))),
                Progressing, ""),
            case("Running + Never => Progressing", never(running(true, json!([]))), Progressing, ""),
            case("Running + OnFailure => Progressing", pod(json!({}), "OnFailure", running(true, json!([]))),
                Progressing, ""),
            case("other phase => Unknown", always(json!({ "phase": "Unknown", "message": "node lost" })),
                Unknown,
                "node lost"),
            case("malformed containerStatuses => Unknown",
                always(json!({ "phase": "Running", "containerStatuses": "none" })), Unknown,
                "failed to convert unstructured Pod to typed: \
                 status.containerStatuses: expected an array, got a string"),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn service_ingress_pvc_rules() {
        let svc = |kind: &str,
        status: Value| object("v1", "Service", json!({}), json!({ "type": kind }), status);
        let ing = |api: &str, status: Value| object(api, "Ingress", json!({}), json!({}), status);
        let pvc = |phase: &str| {
            object("v1", "PersistentVolumeClaim", json!({}), json!({}), json!({ "phase": phase }))
        };
        let lb = json!({ "loadBalancer": { "ingress": [{ "ip": "10.0.0.1" }] } });
        let no_lb = json!({ "loadBalancer": { "ingress": [] } });
        run(vec![
            case("ClusterIP Service => Healthy", svc("ClusterIP", json!({})), Healthy, ""),
            case("LoadBalancer without ingress => Progressing",
                svc("LoadBalancer", json!({ "loadBalancer": {} })),
                Progressing, ""),
            case("LoadBalancer with ingress => Healthy", svc("LoadBalancer", lb.clone()), Healthy, ""),
            case("networking.k8s.io Ingress with an address => Healthy",
                ing("networking.k8s.io/v1", lb.clone()),
                Healthy, ""),
            case("Ingress without an address => Progressing", ing("networking.k8s.io/v1", no_lb),
                Progressing, ""),
            case("extensions Ingress with an address => Healthy", ing("extensions/v1beta1", lb), Healthy, ""),
            case("PVC Bound => Healthy", pvc("Bound"), Healthy, ""),
            case("PVC Pending => Progressing", pvc("Pending"), Progressing, ""),
            case("PVC Lost => Degraded", pvc("Lost"), Degraded, ""),
            case("PVC other phase => Unknown", pvc(""), Unknown, ""),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn job_rules() {
        let job = |conditions: Value| {
            object("batch/v1", "Job", json!({}), json!({}), json!({ "conditions": conditions }))
        };
        let cond = |kind: &str, status: &str, message: &str| {
            json!({ "type": kind, "status": status, "message": message })
        };
        run(vec![
            case("Failed => Degraded with its message",
                job(json!([cond("Failed", "True", "BackoffLimitExceeded")])),
                Degraded, "BackoffLimitExceeded"),
            case("Complete => Healthy with its message", job(json!([cond("Complete", "True", "done")])),
                Healthy,
                "done"),
            case("Suspended=True => Suspended", job(json!([cond("Suspended", "True", "Job suspended")])),
                Suspended,
                ""),
            case("no terminal condition => Progressing", job(json!([])), Progressing, ""),
            case("Failed wins over Complete",
                job(json!([cond("Complete", "True", "ok"), cond("Failed", "True", "x")])), Degraded, "x"),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn api_service_rules() {
        let api = |version: &str, conditions: Value| {
            let api_version = format!("apiregistration.k8s.io/{version}");
            object(&api_version, "APIService", json!({}), json!({}), json!({ "conditions": conditions }))
        };
        let available = |status: &str, reason: &str, message: &str| {
            json!([{ "type": "Available", "status": status, "reason": reason, "message": message }])
        };
        run(vec![
            case("v1 Available=True => Healthy", api("v1", available("True", "Passed", "all checks passed")),
                Healthy, "Passed: all checks passed"),
            case("v1beta1 Available=False => Progressing reason: message",
                api("v1beta1", available("False", "MissingEndpoints", "no endpoints")), Progressing,
                "MissingEndpoints: no endpoints"),
            case("no Available condition => Progressing", api("v1", json!([])), Progressing,
                "Waiting to be processed"),
            case("other version => Unknown", api("v2", json!([])), Unknown,
                "unsupported APIService GVK: apiregistration.k8s.io/v2, Kind=APIService"),
        ]);
    }

    fn hpa_condition(kind: &str, status: &str, reason: &str, message: &str) -> Value {
        json!({ "type": kind, "status": status, "reason": reason, "message": message })
    }

    #[test]
    #[rustfmt::skip]
    fn hpa_v2_rules() {
        let v2 = |conditions: Value| {
            let status = json!({ "conditions": conditions });
            object("autoscaling/v2", "HorizontalPodAutoscaler", json!({}), json!({}), status)
        };
        let able = hpa_condition("AbleToScale", "True", "SucceededGetScale", "can scale");
        let no_metric = hpa_condition("ScalingActive", "False", "FailedGetResourceMetric", "no metrics");
        let compute =
            hpa_condition("ScalingActive", "False", "FailedComputeMetricsReplicas", "invalid metrics");
        let limited = hpa_condition("ScalingLimited", "True", "TooFewReplicas", "min");
        let v2beta2 = object("autoscaling/v2beta2", "HorizontalPodAutoscaler", json!({}), json!({}),
            json!({ "conditions": [able.clone()] }));
        run(vec![
            case("FailedGetResourceMetric => Degraded", v2(json!([no_metric.clone()])), Degraded,
                "no metrics"),
            case("a degraded condition wins over an earlier healthy one",
                v2(json!([able.clone(), no_metric])),
                Degraded, "no metrics"),
            case("FailedComputeMetricsReplicas => Degraded", v2(json!([compute])), Degraded,
                "invalid metrics"),
            case("AbleToScale=True => Healthy", v2(json!([able])), Healthy, "can scale"),
            case("ScalingLimited=True => Healthy", v2(json!([limited])), Healthy, "min"),
            case("no conditions => Progressing", v2(json!([])), Progressing, "Waiting to Autoscale"),
            case("v2beta2 reads status.conditions too", v2beta2, Healthy, "can scale"),
            case("other version => Unknown",
                object("autoscaling/v3", "HorizontalPodAutoscaler", json!({}), json!({}), json!({})), Unknown,
                "unsupported HPA GVK: autoscaling/v3, Kind=HorizontalPodAutoscaler"),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn hpa_v1_rules() {
        const KEY: &str = "autoscaling.alpha.kubernetes.io/conditions";
        let v1 = |annotations: Value| {
            let metadata = json!({ "annotations": annotations });
            object("autoscaling/v1", "HorizontalPodAutoscaler", metadata, json!({}), json!({}))
        };
        let failed_scale =
            json!([hpa_condition("AbleToScale", "True", "FailedGetScale", "no scale")]).to_string();
        run(vec![
            case("conditions annotation => Degraded", v1(json!({ KEY: failed_scale })), Degraded, "no scale"),
            case("no annotation => Progressing", v1(json!({})), Progressing, "Waiting to Autoscale"),
            case("empty annotation list => Progressing", v1(json!({ KEY: "[]" })), Progressing,
                "Waiting to Autoscale"),
            case("bad annotation JSON => Unknown", v1(json!({ KEY: "{not json" })), Unknown,
                "failed to convert conditions annotation to typed: key must be a string at line 1 column 2"),
        ]);
    }

    fn ro(metadata: Value, spec: Value, status: Value) -> Value {
        object("argoproj.io/v1alpha1", "Rollout", metadata, spec, status)
    }

    fn phased(phase: &str, message: &str) -> Value {
        ro(
            json!({}),
            json!({}),
            json!({ "observedGeneration": "1", "phase": phase, "message": message }),
        )
    }

    #[test]
    #[rustfmt::skip]
    fn rollout_phase_rules() {
        run(vec![
            case("phase Healthy => Healthy", phased("Healthy", ""), Healthy, ""),
            case("phase Progressing => Progressing with message",
                phased("Progressing", "more replicas need to be updated"), Progressing,
                "more replicas need to be updated"),
            case("phase Degraded => Degraded with message",
                phased("Degraded", "RolloutAborted: metric failed"),
                Degraded, "RolloutAborted: metric failed"),
            case("phase Paused => Suspended with message", phased("Paused", "CanaryPauseStep"), Suspended,
                "CanaryPauseStep"),
            case("phase outside Argo CD's codes => Unknown", phased("Waiting", "x"), Unknown,
                "Lua returned an invalid health status"),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn rollout_generation_rules() {
        const OBSERVED: &str = "Waiting for rollout spec update to be observed";
        let at_generation = |generation: Value, observed: Value| {
            ro(json!({ "generation": generation }), json!({}),
                json!({ "observedGeneration": observed, "phase": "Healthy" }))
        };
        let workload = |annotations: Value, observed: Value| {
            ro(json!({ "annotations": annotations }),
                json!({ "workloadRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" } }),
                json!({ "observedGeneration": "1", "workloadObservedGeneration": observed,
                        "phase": "Healthy" }))
        };
        let wanted = |generation: &str| json!({ "rollout.argoproj.io/workload-generation": generation });
        let no_annotations = ro(json!({}), json!({ "workloadRef": { "name": "web" } }),
            json!({ "observedGeneration": "1", "workloadObservedGeneration": "9", "phase": "Healthy" }));
        let no_status = object("argoproj.io/v1alpha1", "Rollout", json!({}), json!({}), Value::Null);
        run(vec![
            case("observedGeneration behind => Progressing", at_generation(json!(2), json!("1")), Progressing,
                OBSERVED),
            case("numeric observedGeneration equal => observed", at_generation(json!(2), json!(2)), Healthy,
                ""),
            case("observedGeneration above generation => legacy, observed",
                at_generation(json!(2), json!("7")),
                Healthy, ""),
            case("hash observedGeneration => legacy, observed", at_generation(json!(2), json!("5f8d7c9b")),
                Healthy, ""),
            case("no observedGeneration => observed", at_generation(json!(2), Value::Null), Healthy, ""),
            case("no status => Progressing", no_status, Progressing, OBSERVED),
            case("workloadRef generation not observed => Progressing", workload(wanted("3"), json!("2")),
                Progressing, OBSERVED),
            case("workloadRef generation observed => phase", workload(wanted("3"), json!("3")), Healthy, ""),
            case("workloadRef, annotation and observed both absent => observed",
                workload(json!({ "other": "x" }), Value::Null), Healthy, ""),
            case("workloadRef without annotations => observed", no_annotations, Healthy, ""),
            case("non-numeric metadata.generation => Unknown", at_generation(json!("one"), json!("1")),
                Unknown,
                "failed to evaluate Rollout health: metadata.generation: expected a number, got a string"),
        ]);
    }

    /// A pre-1.0 Rollout (no `status.phase`) whose generation is observed.
    fn legacy(spec: Value, status: Value) -> Value {
        ro(
            json!({}),
            spec,
            with(json!({ "observedGeneration": "1" }), status),
        )
    }

    /// A legacy status with all replicas updated and available, and the given stable ReplicaSet.
    fn settled(stable: Value, extra: Value) -> Value {
        let mut status = json!({ "currentPodHash": "abc", "replicas": 3, "updatedReplicas": 3,
                                 "availableReplicas": 3, "canary": {} });
        if !stable.is_null() {
            merge(&mut status, json!({ "stableRS": stable }));
        }
        with(status, extra)
    }

    fn canary(extra: Value) -> Value {
        with(
            json!({ "replicas": 3, "strategy": { "canary": { "steps": [] } } }),
            extra,
        )
    }

    #[test]
    #[rustfmt::skip]
    fn rollout_legacy_rules() {
        let condition = |kind: &str, reason: &str| {
            json!({ "conditions": [{ "type": kind, "reason": reason, "status": "False", "message": "why" }] })
        };
        let paused = json!({ "pauseConditions": [{ "reason": "CanaryPauseStep" }] });
        let bare = json!({ "strategy": { "canary": {} } });
        run(vec![
            case("InvalidSpec => Degraded", legacy(canary(json!({})), condition("InvalidSpec", "")),
                Degraded, "why"),
            case("Progressing/RolloutAborted => Degraded",
                legacy(canary(json!({})), condition("Progressing", "RolloutAborted")), Degraded, "why"),
            case("Progressing/ProgressDeadlineExceeded => Degraded",
                legacy(canary(json!({})), condition("Progressing", "ProgressDeadlineExceeded")), Degraded,
                "why"),
            case("pauseConditions => Suspended", legacy(canary(json!({})), paused), Suspended,
                "Rollout is paused"),
            case("spec.paused => Suspended", legacy(canary(json!({ "paused": true })), json!({})), Suspended,
                "Rollout is paused"),
            case("no currentPodHash => Progressing", legacy(canary(json!({})), json!({})), Progressing,
                "Waiting for rollout to finish: status has not been reconciled."),
            case("updated < spec.replicas (default 1) => Progressing",
                legacy(bare, json!({ "currentPodHash": "abc" })), Progressing,
                "Waiting for roll out to finish: More replicas need to be updated"),
            case("available < updated => Progressing",
                legacy(canary(json!({})), settled(json!("abc"), json!({ "availableReplicas": 1 }))),
                Progressing,
                "Waiting for roll out to finish: updated replicas are still becoming available"),
            case("malformed replicas => Unknown",
                legacy(canary(json!({ "replicas": "3" })), settled(json!("abc"), json!({}))), Unknown,
                "failed to evaluate Rollout health: spec.replicas: expected a number, got a string"),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn rollout_legacy_strategy_rules() {
        let bg = json!({ "replicas": 3, "strategy": { "blueGreen": { "activeService": "web" } } });
        let active = |selector: &str| json!({ "blueGreen": { "activeSelector": selector } });
        run(vec![
            case("blueGreen active selector differs => Progressing",
                legacy(bg.clone(), settled(json!("abc"), active("old"))), Progressing,
                "active service cutover pending"),
            case("blueGreen stableRS differs => Progressing",
                legacy(bg.clone(), settled(json!("old"), active("abc"))),
                Progressing, "waiting for analysis to complete"),
            case("blueGreen, canary status without stableRS (nil) => analysis pending",
                legacy(bg.clone(), settled(Value::Null, active("abc"))), Progressing,
                "waiting for analysis to complete"),
            case("blueGreen, no stableRS anywhere (\"\") => Healthy",
                legacy(bg.clone(), with(settled(Value::Null, active("abc")), json!({ "canary": null }))),
                Healthy, ""),
            case("blueGreen cut over => Healthy", legacy(bg, settled(json!("abc"), active("abc"))), Healthy,
                ""),
            case("canary old replicas => Progressing",
                legacy(canary(json!({})), settled(json!("abc"), json!({ "replicas": 4 }))), Progressing,
                "Waiting for roll out to finish: old replicas are pending termination"),
            case("canary stableRS differs => Progressing",
                legacy(canary(json!({})), settled(json!("old"), json!({}))),
                Progressing, "Waiting for rollout to finish steps"),
            case("canary stableRS equals the pod hash => Healthy",
                legacy(canary(json!({})), settled(json!("abc"), json!({}))), Healthy, ""),
            case("canary, legacy status.canary.stableRS => Healthy",
                legacy(canary(json!({})), settled(Value::Null, json!({ "canary": { "stableRS": "abc" } }))),
                Healthy, ""),
        ]);
    }

    #[test]
    #[rustfmt::skip]
    fn application_and_workflow_rules() {
        let app = |status: Value| object("argoproj.io/v1alpha1", "Application", json!({}), json!({}), status);
        let wf = |phase: &str| {
            let status = json!({ "phase": phase, "message": "m" });
            object("argoproj.io/v1alpha1", "Workflow", json!({}), json!({}), status)
        };
        run(vec![
            case("child app health surfaced", app(json!({ "health": { "status": "Healthy" } })), Healthy, ""),
            case("child app Degraded with its message",
                app(json!({ "health": { "status": "Degraded", "message": "bad" } })), Degraded, "bad"),
            case("child app Missing", app(json!({ "health": { "status": "Missing" } })), Missing, ""),
            case("child app without health => Progressing", app(json!({ "sync": { "status": "Synced" } })),
                Progressing, ""),
            case("child app health without a valid status => Unknown",
                app(json!({ "health": { "message": "x" } })),
                Unknown, "Lua returned an invalid health status"),
            case("Workflow Running => Progressing", wf("Running"), Progressing, "m"),
            case("Workflow Succeeded => Healthy", wf("Succeeded"), Healthy, "m"),
            case("Workflow Error => Degraded", wf("Error"), Degraded, "m"),
            case("Workflow other phase => Unknown", wf("Skipped"), Unknown, "m"),
        ]);
    }

    fn res(health: &Health) -> ResourceHealth<'_> {
        ResourceHealth {
            health: Some(health),
            ..ResourceHealth::default()
        }
    }

    fn app(health: &Health) -> ResourceHealth<'_> {
        ResourceHealth {
            application: true,
            ..res(health)
        }
    }

    #[test]
    #[rustfmt::skip]
    fn aggregate_rules() {
        let h = |status: HealthStatus| Health::new(status, "msg");
        let (healthy, progressing, degraded) = (h(Healthy), h(Progressing), h(Degraded));
        let (missing, unknown, suspended) = (h(Missing), h(Unknown), h(Suspended));
        let none = ResourceHealth::default();
        let gone = ResourceHealth::missing;
        let cases: Vec<(&str, Vec<ResourceHealth<'_>>, HealthStatus)> = vec![
            ("no resources => Healthy", vec![], Healthy),
            ("worst of => Degraded", vec![res(&healthy), res(&degraded), res(&progressing)], Degraded),
            ("Suspended is worse than Healthy only", vec![res(&healthy), res(&suspended)], Suspended),
            ("Unknown is the worst", vec![res(&degraded), res(&unknown)], Unknown),
            ("hooks skipped", vec![res(&healthy), ResourceHealth { hook: true, ..res(&degraded) }], Healthy),
            ("ignored skipped", vec![res(&healthy), ResourceHealth { ignored: true, ..res(&degraded) }],
                Healthy),
            ("ignore-healthcheck skipped",
                vec![res(&healthy), ResourceHealth { ignore_healthcheck: true, ..res(&degraded) }], Healthy),
            ("ignore-healthcheck still counts as existing",
                vec![ResourceHealth { ignore_healthcheck: true, ..res(&degraded) }, gone()], Healthy),
            ("the app itself skipped", vec![ResourceHealth { self_reference: true, ..res(&degraded) }],
                Healthy),
            ("no health check skipped", vec![none, res(&progressing)], Progressing),
            ("Missing only when nothing exists", vec![gone(), gone()], Missing),
            ("Missing ignored when something exists", vec![gone(), res(&healthy)], Healthy),
            ("a live object without health check prevents Missing", vec![gone(), none], Healthy),
            ("only hooks => Healthy, not Missing", vec![ResourceHealth { hook: true, ..gone() }], Healthy),
            ("nothing exists but something is worse => the worse", vec![gone(), res(&unknown)], Unknown),
            ("child Application Missing ignored", vec![res(&healthy), app(&missing)], Healthy),
            ("child Application Unknown ignored", vec![res(&progressing), app(&unknown)], Progressing),
            ("child Application Degraded counts", vec![res(&healthy), app(&degraded)], Degraded),
            ("a live object reported Missing counts", vec![res(&healthy), res(&missing)], Missing),
        ];
        for (name, resources, want) in cases {
            assert_eq!(aggregate(resources), Health::new(want, ""), "case {name:?}");
        }
    }

    #[test]
    fn resource_health_from_live_objects() {
        let child = json!({ "apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {} });
        let ignored = json!({ "apiVersion": "v1", "kind": "Pod", "metadata": {
            "annotations": { "argocd.argoproj.io/ignore-healthcheck": "true" } } });
        let degraded = Health::new(Degraded, "");
        let live_child = ResourceHealth::live(&child, Some(&degraded));
        assert!(live_child.application && !live_child.ignore_healthcheck && !live_child.missing);
        let live_ignored = ResourceHealth::live(&ignored, Some(&degraded));
        assert!(live_ignored.ignore_healthcheck && !live_ignored.application);
        assert_eq!(aggregate([live_ignored]).status, Healthy);
        assert_eq!(aggregate([live_child]).status, Degraded);
        assert!(ResourceHealth::missing().missing);
    }
}
