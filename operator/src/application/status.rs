//! The status an Application gets, pure: spec validation, the comparison written as `status.sync`,
//! `health`, `resources` and `summary`, conditions, the operation state with history, and the retry of a
//! failed operation as Argo CD marks it (phase Running with `finishedAt` set until the retry is due).

use std::time::Duration;

use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
use sluice_crds::application::{
    Application, ApplicationCondition, ApplicationStatus, ApplicationSummary, ComparedTo, HealthStatus,
    OperationState, SyncStatus,
};
use sluice_gitops::policy;

use super::{
    cluster::ObjectKey,
    compare::Comparison,
    observe::Targets,
    operation::{self, phase},
};

/// Why an Application's spec cannot be acted on, in Argo CD's words.
/// Argo CD's comparison of targets outside the app's project: their sync status is `Unknown` (a sync of
/// them is refused).
pub fn mark_outside_project(status: &mut ApplicationStatus, outside: &[ObjectKey]) {
    for r in status.resources.iter_mut().flatten() {
        let named = |k: &ObjectKey| {
            r.group.as_deref().unwrap_or("") == k.group
                && r.kind.as_deref().unwrap_or("") == k.kind
                && r.namespace.as_deref().unwrap_or("") == k.namespace
                && r.name.as_deref().unwrap_or("") == k.name
        };
        if outside.iter().any(named) {
            r.status = Some("Unknown".into());
        }
    }
}

pub fn validate(app: &Application) -> Result<(), String> {
    let d = &app.spec.destination;
    let server = d.server.as_deref().filter(|s| !s.is_empty());
    let name = d.name.as_deref().filter(|s| !s.is_empty());
    match (server, name) {
        (Some(s), Some(n)) => {
            return Err(format!(
                "application destination spec for {} is invalid: application destination can't have both name and server defined: {n} {s}",
                app.metadata.name.as_deref().unwrap_or_default()
            ));
        }
        (None, None) => {
            return Err(format!(
                "application destination spec for {} is invalid: an application destination requires a server or a name",
                app.metadata.name.as_deref().unwrap_or_default()
            ));
        }
        _ => {}
    }
    let source = super::observe::source(app)?;
    if source.repo_url.trim().is_empty() {
        return Err("spec.source.repoURL is required".into());
    }
    if source.chart.as_deref().is_some_and(|c| !c.is_empty()) {
        return Err("Helm repository sources (spec.source.chart) are not supported; point repoURL at a Git repository holding the chart".into());
    }
    Ok(())
}

/// `conditions` with `type_` set to `message`; its time is kept while the message stays the same.
pub fn set_condition(conditions: &mut Vec<ApplicationCondition>, type_: &str, message: &str, now: Timestamp) {
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.message != message {
            c.message = message.into();
            c.last_transition_time = Some(Time(now));
        }
        return;
    }
    conditions.push(ApplicationCondition {
        type_: type_.into(),
        message: message.into(),
        last_transition_time: Some(Time(now)),
    });
}

/// The condition of an app whose repository holds a Secret with readable data (a warning: it syncs).
pub const PLAIN_SECRET_WARNING: &str = "PlainSecretWarning";

/// Sets the warning condition `type_` to `message`, or clears it when there is none.
pub fn with_warning(status: &mut ApplicationStatus, type_: &str, message: Option<&str>, now: Timestamp) {
    match message {
        Some(message) => set_condition(
            status.conditions.get_or_insert_with(Vec::new),
            type_,
            message,
            now,
        ),
        None => clear_conditions(status, &[type_]),
    }
}

fn clear_conditions(status: &mut ApplicationStatus, types: &[&str]) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| !types.contains(&c.type_.as_str()));
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

/// The app's status with a condition of `type_` (the rest kept: a failed comparison leaves the last known
/// state in place).
pub fn with_condition(app: &Application, type_: &str, message: &str, now: Timestamp) -> ApplicationStatus {
    let mut status = app.status.clone().unwrap_or_default();
    let mut conditions = status.conditions.take().unwrap_or_default();
    set_condition(&mut conditions, type_, message, now);
    status.conditions = Some(conditions);
    status
}

/// The app's status after a successful comparison.
pub fn with_comparison(
    app: &Application,
    targets: &Targets,
    comparison: &Comparison,
    errors: &[(String, String)],
    now: Timestamp,
) -> ApplicationStatus {
    let mut status = app.status.clone().unwrap_or_default();
    status.sync = Some(SyncStatus {
        status: comparison.sync.into(),
        revision: Some(targets.revision.clone()),
        revisions: None,
        compared_to: Some(ComparedTo {
            source: app.spec.source.clone(),
            sources: None,
            destination: app.spec.destination.clone(),
            ignore_differences: app.spec.ignore_differences.clone(),
        }),
    });
    let health = comparison.health.status.to_string();
    let previous = status.health.take().unwrap_or_default();
    status.health = Some(HealthStatus {
        last_transition_time: match previous.status.as_deref() == Some(health.as_str()) {
            true => previous.last_transition_time.or(Some(Time(now))),
            false => Some(Time(now)),
        },
        status: Some(health),
        message: (!comparison.health.message.is_empty()).then(|| comparison.health.message.clone()),
    });
    status.resources = (!comparison.resources.is_empty()).then(|| comparison.resources.clone());
    status.summary = (!comparison.images.is_empty()).then(|| ApplicationSummary {
        external_urls: None,
        images: Some(comparison.images.clone()),
    });
    status.source_type = Some(targets.source_type.clone());
    clear_conditions(&mut status, &["ComparisonError", "InvalidSpecError"]);
    if !errors.is_empty() {
        let message = errors
            .iter()
            .map(|(obj, m)| format!("{obj}: {m}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut conditions = status.conditions.take().unwrap_or_default();
        set_condition(
            &mut conditions,
            "ComparisonError",
            &format!("Failed to compare desired state to live state: {message}"),
            now,
        );
        status.conditions = Some(conditions);
    }
    status
}

/// Records the operation state; a finished sync may add history, and a successful one clears SyncError.
pub fn with_operation(
    status: &mut ApplicationStatus,
    app: &Application,
    state: OperationState,
    now: Timestamp,
) {
    if operation::is_completed(&state) {
        status.history = Some(operation::with_history(app, &state, now)).filter(|h| !h.is_empty());
        if state.phase == phase::SUCCEEDED {
            clear_conditions(status, &["SyncError"]);
        }
    }
    status.operation_state = Some(state);
}

/// A failed operation that is retried: the state to write (phase Running, `finishedAt` set, the message
/// naming the attempt) and the wait before the retry; `None` when it is not retried.
pub fn retry_marker(
    app: &Application,
    done: &OperationState,
    now: Timestamp,
) -> Option<(OperationState, Duration)> {
    if !matches!(done.phase.as_str(), phase::FAILED | phase::ERROR) {
        return None;
    }
    let strategy = done.operation.retry.as_ref()?;
    let count = done.retry_count.unwrap_or(0);
    if !policy::should_retry(strategy, count) || app.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let wait = policy::next_retry_delay(strategy, count).unwrap_or(policy::DEFAULT_RETRY_DURATION);
    let mut marked = done.clone();
    marked.phase = phase::RUNNING.into();
    marked.finished_at = Some(Time(now));
    marked.message = Some(format!(
        "{}. Retrying attempt #{} at {}.",
        done.message.as_deref().unwrap_or_default(),
        count + 1,
        kitchen(now.checked_add(wait).unwrap_or(now))
    ));
    Some((marked, wait))
}

/// Go's `time.Kitchen` layout (`3:04PM`) in UTC.
fn kitchen(t: Timestamp) -> String {
    let dt = t.to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC);
    let (h, m) = (dt.hour(), dt.minute());
    let (h12, ampm) = match h {
        0 => (12, "AM"),
        1..=11 => (h, "AM"),
        12 => (12, "PM"),
        _ => (h - 12, "PM"),
    };
    format!("{h12}:{m:02}{ampm}")
}

/// For an operation marked for retry: the time still to wait, or `None` once due, in which case the state
/// is reset for a fresh attempt (results cleared, `retryCount` incremented).
pub fn retry_wait(state: &mut OperationState, now: Timestamp) -> Option<Duration> {
    if state.phase != phase::RUNNING {
        return None;
    }
    let finished = state.finished_at.clone()?;
    let strategy = state.operation.retry.clone().unwrap_or_default();
    let count = state.retry_count.unwrap_or(0);
    let due = policy::next_retry_at(&strategy, finished.0, count).unwrap_or(finished.0);
    if due > now {
        let wait = now.duration_until(due).unsigned_abs();
        return Some(wait);
    }
    state.finished_at = None;
    state.sync_result = None;
    state.message = None;
    state.retry_count = Some(count + 1);
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_crds::application::{Operation, RetryStrategy};

    #[test]
    fn targets_outside_the_project_compare_as_unknown() {
        let mut status: ApplicationStatus = serde_json::from_value(json!({"resources": [
            {"group": "", "version": "v1", "kind": "ConfigMap", "namespace": "prod", "name": "inside", "status": "OutOfSync"},
            {"group": "rbac.authorization.k8s.io", "version": "v1", "kind": "ClusterRole", "name": "admin", "status": "OutOfSync"},
        ]}))
        .unwrap();
        let outside = ObjectKey {
            group: "rbac.authorization.k8s.io".into(),
            version: "v1".into(),
            kind: "ClusterRole".into(),
            namespace: String::new(),
            name: "admin".into(),
        };
        mark_outside_project(&mut status, &[outside]);
        let statuses: Vec<_> = status
            .resources
            .unwrap()
            .into_iter()
            .map(|r| r.status.unwrap_or_default())
            .collect();
        assert_eq!(statuses, ["OutOfSync", "Unknown"]);
    }

    fn app(destination: serde_json::Value) -> Application {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "shop", "namespace": "argocd"},
            "spec": {"source": {"repoURL": "git://127.0.0.1/r.git", "path": "."},
                     "destination": destination, "project": "default"}
        }))
        .unwrap()
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn destinations() {
        assert!(
            validate(&app(
                json!({"server": "https://kubernetes.default.svc", "namespace": "a"})
            ))
            .is_ok()
        );
        assert!(validate(&app(json!({"name": "in-cluster"}))).is_ok());
        let both = validate(&app(
            json!({"name": "in-cluster", "server": "https://kubernetes.default.svc"}),
        ));
        assert!(
            both.unwrap_err()
                .contains("can't have both name and server defined")
        );
        // Another cluster's URL is valid here: it is resolved against the cluster Secrets later.
        assert!(validate(&app(json!({"server": "https://elsewhere:6443"}))).is_ok());
        let none = validate(&app(json!({"namespace": "a"}))).unwrap_err();
        assert!(none.contains("requires a server or a name"));
    }

    #[test]
    fn conditions_keep_their_time_while_unchanged() {
        let mut c = Vec::new();
        set_condition(&mut c, "ComparisonError", "repo down", t("2026-01-01T00:00:00Z"));
        set_condition(&mut c, "ComparisonError", "repo down", t("2026-01-01T00:05:00Z"));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, Some(Time(t("2026-01-01T00:00:00Z"))));
        set_condition(&mut c, "ComparisonError", "other", t("2026-01-01T00:06:00Z"));
        assert_eq!(c[0].last_transition_time, Some(Time(t("2026-01-01T00:06:00Z"))));
    }

    fn failed(retry: Option<RetryStrategy>, count: Option<i64>) -> OperationState {
        let mut s = operation::begin(
            &Operation {
                retry,
                ..Default::default()
            },
            t("2026-01-01T00:00:00Z"),
        );
        s.retry_count = count;
        operation::conclude(
            &s,
            phase::FAILED,
            "one or more objects failed to apply",
            t("2026-01-01T00:00:10Z"),
        )
    }

    #[test]
    fn retries_are_marked_then_restarted() {
        let a = app(json!({"server": "https://kubernetes.default.svc"}));
        assert!(retry_marker(&a, &failed(None, None), t("2026-01-01T00:00:10Z")).is_none());
        let strategy = RetryStrategy {
            limit: Some(2),
            ..Default::default()
        };
        let now = t("2026-01-01T13:04:10Z");
        let (mut marked, wait) = retry_marker(&a, &failed(Some(strategy.clone()), None), now).unwrap();
        assert_eq!(wait, Duration::from_secs(5));
        assert_eq!(marked.phase, "Running");
        assert_eq!(
            marked.message.as_deref(),
            Some("one or more objects failed to apply. Retrying attempt #1 at 1:04PM.")
        );
        assert_eq!(
            retry_wait(&mut marked, t("2026-01-01T13:04:12Z")),
            Some(Duration::from_secs(3))
        );
        assert_eq!(retry_wait(&mut marked, t("2026-01-01T13:04:15Z")), None);
        assert_eq!(marked.retry_count, Some(1));
        assert!(marked.finished_at.is_none() && marked.sync_result.is_none());
        let (_, wait) = retry_marker(&a, &failed(Some(strategy.clone()), Some(1)), now).unwrap();
        assert_eq!(wait, Duration::from_secs(10));
        assert!(retry_marker(&a, &failed(Some(strategy), Some(2)), now).is_none());
    }

    #[test]
    fn kitchen_times() {
        assert_eq!(kitchen(t("2026-01-01T00:07:00Z")), "12:07AM");
        assert_eq!(kitchen(t("2026-01-01T12:30:00Z")), "12:30PM");
        assert_eq!(kitchen(t("2026-01-01T23:59:00Z")), "11:59PM");
    }
}
