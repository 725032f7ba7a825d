//! A pod's STATUS word as kubectl prints it (init containers first, then containers from last to first),
//! its icon, and its "ready:1/1,restarts:N" column.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::meta;
use crate::info::{Icon, PodInfo};

/// The view of one pod.
pub fn pod_info(pod: &Pod) -> PodInfo {
    let summary = summarise(pod);
    let total = pod.spec.as_ref().map_or(0, |s| s.containers.len());
    let mut info = format!("ready:{}/{}", summary.ready, total);
    if summary.restarts > 0 {
        info.push_str(&format!(",restarts:{}", summary.restarts));
    }
    PodInfo {
        name: meta::name(&pod.metadata),
        icon: pod_icon(&summary.status),
        status: summary.status,
        info,
        created: meta::created(&pod.metadata),
    }
}

/// What kubectl reads off a pod's status.
struct Summary {
    status: String,
    ready: usize,
    restarts: i32,
}

fn summarise(pod: &Pod) -> Summary {
    let status = pod.status.clone().unwrap_or_default();
    // A pod on a lost node, or one being deleted, shows only that: its container states are stale.
    let lost = status.phase.as_deref() == Some("Unknown")
        || (pod.metadata.deletion_timestamp.is_some() && status.reason.as_deref() == Some("NodeLost"));
    if lost || pod.metadata.deletion_timestamp.is_some() {
        let word = if lost { "Unknown" } else { "Terminating" };
        return Summary {
            status: word.to_string(),
            ready: 0,
            restarts: 0,
        };
    }
    let mut reason = status.phase.clone().unwrap_or_default();
    if let Some(r) = status.reason.as_deref().filter(|r| !r.is_empty()) {
        reason = r.to_string();
    }
    let init_containers = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let sidecars: Vec<&str> = init_containers
        .iter()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect();
    let init_statuses = status.init_container_statuses.as_deref().unwrap_or_default();
    match init_reason(init_statuses, init_containers.len(), &sidecars) {
        Some((i, init)) => Summary {
            status: init,
            ready: 0,
            restarts: init_statuses[..=i].iter().map(|c| c.restart_count).sum(),
        },
        None => container_summary(status.container_statuses.as_deref().unwrap_or_default(), reason),
    }
}

/// The index and "Init:..." word of the first init container that has not finished successfully; None once all
/// of them have, or when a started sidecar (an init container that restarts always) is not ready yet.
fn init_reason(
    statuses: &[ContainerStatus],
    init_count: usize,
    sidecars: &[&str],
) -> Option<(usize, String)> {
    for (i, c) in statuses.iter().enumerate() {
        let state = c.state.clone().unwrap_or_default();
        if let Some(t) = &state.terminated {
            if t.exit_code == 0 {
                continue;
            }
            let word = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => match t.signal.filter(|s| *s != 0) {
                    Some(signal) => format!("Init:Signal:{signal}"),
                    None => format!("Init:ExitCode:{}", t.exit_code),
                },
            };
            return Some((i, word));
        }
        if sidecars.contains(&c.name.as_str()) && c.started == Some(true) {
            if c.ready {
                continue;
            }
            return None;
        }
        let waiting = state.waiting.and_then(|w| w.reason);
        if let Some(r) = waiting.filter(|r| !r.is_empty() && r != "PodInitializing") {
            return Some((i, format!("Init:{r}")));
        }
        return Some((i, format!("Init:{i}/{init_count}")));
    }
    None
}

/// The reason of the first container (from the last) that is not running, the count of ready containers and
/// the restarts of all of them.
fn container_summary(statuses: &[ContainerStatus], mut reason: String) -> Summary {
    let mut ready = 0;
    let mut restarts = 0;
    let mut has_running = false;
    for c in statuses.iter().rev() {
        restarts += c.restart_count;
        let state = c.state.clone().unwrap_or_default();
        let waiting = state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.clone())
            .filter(|r| !r.is_empty());
        if let Some(r) = waiting {
            reason = r;
        } else if let Some(t) = &state.terminated {
            reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => r.to_string(),
                None => match t.signal.filter(|s| *s != 0) {
                    Some(signal) => format!("Signal:{signal}"),
                    None => format!("ExitCode:{}", t.exit_code),
                },
            };
        } else if c.ready && state.running.is_some() {
            has_running = true;
            ready += 1;
        }
    }
    if reason == "Completed" && has_running {
        reason = "Running".to_string();
    }
    Summary {
        status: reason,
        ready,
        restarts,
    }
}

/// The icon of a pod STATUS word.
fn pod_icon(status: &str) -> Icon {
    if status.starts_with("Init:") {
        return Icon::Progressing;
    }
    if status.starts_with("Signal:") || status.starts_with("ExitCode:") {
        return Icon::Bad;
    }
    if status.ends_with("Error") || status.starts_with("Err") {
        return Icon::Warning;
    }
    match status {
        "Pending" | "Terminating" | "ContainerCreating" => Icon::Progressing,
        "Running" | "Completed" => Icon::Ok,
        "Failed" | "InvalidImageName" | "CrashLoopBackOff" => Icon::Bad,
        "ImagePullBackOff" | "RegistryUnavailable" => Icon::Warning,
        "Unknown" => Icon::Unknown,
        // Upstream prints a blank for a word it does not know (a run not yet picked up, an Evicted pod).
        _ => Icon::Blank,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn kubectl_status_words() {
        let cases = [
            (
                "spec: {containers: [{name: a}]}\nstatus: {phase: Running, containerStatuses: [{name: a, image: x, imageID: '', ready: true, restartCount: 0, state: {running: {}}}]}",
                "Running",
                Icon::Ok,
                "ready:1/1",
            ),
            (
                "spec: {containers: [{name: a}]}\nstatus: {phase: Pending, containerStatuses: [{name: a, image: x, imageID: '', ready: false, restartCount: 2, state: {waiting: {reason: ImagePullBackOff}}}]}",
                "ImagePullBackOff",
                Icon::Warning,
                "ready:0/1,restarts:2",
            ),
            (
                "spec: {containers: [{name: a}]}\nstatus: {phase: Running, containerStatuses: [{name: a, image: x, imageID: '', ready: false, restartCount: 5, state: {waiting: {reason: CrashLoopBackOff}}}]}",
                "CrashLoopBackOff",
                Icon::Bad,
                "ready:0/1,restarts:5",
            ),
            (
                "spec: {containers: [{name: a}]}\nstatus: {phase: Failed, containerStatuses: [{name: a, image: x, imageID: '', ready: false, restartCount: 0, state: {terminated: {exitCode: 3}}}]}",
                "ExitCode:3",
                Icon::Bad,
                "ready:0/1",
            ),
            (
                "spec: {containers: [{name: a}], initContainers: [{name: i}, {name: j}]}\nstatus: {phase: Pending, initContainerStatuses: [{name: i, image: x, imageID: '', ready: false, restartCount: 0, state: {running: {}}}]}",
                "Init:0/2",
                Icon::Progressing,
                "ready:0/1",
            ),
            (
                "metadata: {deletionTimestamp: '2026-01-01T00:00:00Z'}\nspec: {containers: [{name: a}]}\nstatus: {phase: Running, containerStatuses: [{name: a, image: x, imageID: '', ready: true, restartCount: 1, state: {running: {}}}]}",
                "Terminating",
                Icon::Progressing,
                "ready:0/1",
            ),
            (
                "spec: {containers: [{name: a}]}\nstatus: {phase: Unknown, reason: NodeLost, containerStatuses: [{name: a, image: x, imageID: '', ready: false, restartCount: 3, state: {waiting: {reason: CrashLoopBackOff}}}]}",
                "Unknown",
                Icon::Unknown,
                "ready:0/1",
            ),
            (
                "metadata: {deletionTimestamp: '2026-01-01T00:00:00Z'}\nspec: {containers: [{name: a}]}\nstatus: {phase: Unknown}",
                "Unknown",
                Icon::Unknown,
                "ready:0/1",
            ),
            (
                "spec: {containers: [{name: a}], initContainers: [{name: proxy, restartPolicy: Always}]}\nstatus: {phase: Running, initContainerStatuses: [{name: proxy, image: x, imageID: '', ready: true, started: true, restartCount: 0, state: {running: {}}}], containerStatuses: [{name: a, image: x, imageID: '', ready: true, restartCount: 0, state: {running: {}}}]}",
                "Running",
                Icon::Ok,
                "ready:1/1",
            ),
            (
                "spec: {containers: [{name: a}]}\nstatus: {phase: Pending}",
                "Pending",
                Icon::Progressing,
                "ready:0/1",
            ),
            (
                "spec: {containers: [{name: a}]}\nstatus: {phase: Failed, reason: Evicted}",
                "Evicted",
                Icon::Blank,
                "ready:0/1",
            ),
        ];
        for (yaml, status, icon, info) in cases {
            let got = pod_info(&pod(yaml));
            assert_eq!(
                (got.status.as_str(), got.icon, got.info.as_str()),
                (status, icon, info),
                "{yaml}"
            );
        }
    }
}
