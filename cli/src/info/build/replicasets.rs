//! The ReplicaSets of a Rollout or an Experiment: health, the stable/canary/active/preview/ping/pong tags, the
//! scale-down delay, and their pods.

use jiff::Timestamp;
use k8s_openapi::api::{apps::v1::ReplicaSet, core::v1::Pod};
use sluice_crds::rollout::Rollout;

use super::{duration, meta, pods::pod_info};
use crate::info::{Icon, ReplicaSetInfo};

/// Tag words of a ReplicaSet, in the order upstream prints them in the INFO column.
pub const STABLE: &str = "stable";
/// The canary ReplicaSet.
pub const CANARY: &str = "canary";
/// The blue-green active ReplicaSet.
pub const ACTIVE: &str = "active";
/// The blue-green preview ReplicaSet.
pub const PREVIEW: &str = "preview";
/// The ReplicaSet behind the ping service.
pub const PING: &str = "ping";
/// The ReplicaSet behind the pong service.
pub const PONG: &str = "pong";

/// The ReplicaSets owned by `owner_uid` with their pods, newest revision first. `ro` is the owning Rollout
/// (None for an Experiment's ReplicaSets, which carry no tags).
pub fn replica_sets(
    owner_uid: &str,
    ro: Option<&Rollout>,
    all: &[ReplicaSet],
    pods: &[Pod],
    now: Timestamp,
) -> Vec<ReplicaSetInfo> {
    let mut owned: Vec<(&ReplicaSet, ReplicaSetInfo)> = all
        .iter()
        .filter(|rs| meta::owned_by(&rs.metadata, owner_uid))
        .map(|rs| (rs, replica_set_info(rs, ro, now)))
        .collect();
    // Upstream orders by revision, then by name (its creation-time comparison has no effect).
    owned.sort_by(|(_, a), (_, b)| b.revision.cmp(&a.revision).then_with(|| a.name.cmp(&b.name)));
    let uids: Vec<&str> = owned.iter().map(|(rs, _)| meta::uid(&rs.metadata)).collect();
    let mut infos: Vec<ReplicaSetInfo> = owned.into_iter().map(|(_, info)| info).collect();
    for pod in pods {
        if let Some(owner) = meta::owner(&pod.metadata, &uids)
            && let Some(i) = uids.iter().position(|u| *u == owner)
        {
            infos[i].pods.push(pod_info(pod));
        }
    }
    for info in &mut infos {
        info.pods
            .sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
    }
    infos
}

/// The view of one ReplicaSet, without its pods.
fn replica_set_info(rs: &ReplicaSet, ro: Option<&Rollout>, now: Timestamp) -> ReplicaSetInfo {
    let status = rs.status.clone().unwrap_or_default();
    let health = health(rs);
    let mut info: Vec<String> = ro
        .map(|ro| tags(rs, ro))
        .unwrap_or_default()
        .into_iter()
        .map(String::from)
        .collect();
    let deadline = meta::annotation(&rs.metadata, meta::SCALE_DOWN_DEADLINE);
    if !deadline.is_empty() {
        info.push(format!("delay:{}", scale_down_delay(deadline, now)));
    }
    let images = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .map(|s| {
            s.containers
                .iter()
                .map(|c| c.image.clone().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    ReplicaSetInfo {
        name: meta::name(&rs.metadata),
        icon: health_icon(health),
        status: health.to_string(),
        revision: meta::revision(&rs.metadata),
        info,
        images,
        replicas: status.replicas,
        available: status.available_replicas.unwrap_or(0),
        created: meta::created(&rs.metadata),
        pods: Vec::new(),
    }
}

/// Upstream's ReplicaSet health: Progressing until observed and available, ReplicaFailure, ScaledDown, Healthy.
fn health(rs: &ReplicaSet) -> &'static str {
    let status = rs.status.clone().unwrap_or_default();
    let desired = rs.spec.as_ref().and_then(|s| s.replicas);
    if rs.metadata.generation.unwrap_or(0) > status.observed_generation.unwrap_or(0) {
        return "Progressing";
    }
    let failure = status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| c.type_ == "ReplicaFailure");
    if failure.is_some_and(|c| c.status == "True") {
        return "ReplicaFailure";
    }
    if desired.is_some_and(|d| status.available_replicas.unwrap_or(0) < d) {
        return "Progressing";
    }
    if desired == Some(0) {
        return "ScaledDown";
    }
    "Healthy"
}

fn health_icon(health: &str) -> Icon {
    match health {
        "Progressing" => Icon::Progressing,
        "Healthy" => Icon::Ok,
        "ReplicaFailure" => Icon::Bad,
        _ => Icon::Neutral,
    }
}

/// The tags of a Rollout's ReplicaSet: stable, then canary / active / preview, then ping, pong.
fn tags(rs: &ReplicaSet, ro: &Rollout) -> Vec<&'static str> {
    let hash = meta::label(&rs.metadata, meta::POD_TEMPLATE_HASH);
    let status = ro.status.clone().unwrap_or_default();
    let is = |v: &Option<String>| v.as_deref().unwrap_or("") == hash;
    let mut tags = Vec::new();
    if let Some(canary) = &ro.spec.strategy.canary {
        let ping_pong = canary.ping_pong.is_some();
        let stable_is_ping = status.canary.as_ref().and_then(|c| c.stable_ping_pong.as_deref()) == Some(PING);
        if is(&status.stable_rs) {
            tags.push(STABLE);
            if ping_pong {
                tags.push(if stable_is_ping { PING } else { PONG });
            }
        } else if is(&status.current_pod_hash) {
            tags.push(CANARY);
            if ping_pong {
                tags.push(if stable_is_ping { PONG } else { PING });
            }
        }
    }
    if ro.spec.strategy.blue_green.is_some() {
        let bg = status.blue_green.clone().unwrap_or_default();
        if is(&status.stable_rs) {
            tags.push(STABLE);
        }
        if is(&bg.active_selector) {
            tags.push(ACTIVE);
        } else if is(&bg.preview_selector) {
            tags.push(PREVIEW);
        }
    }
    tags
}

/// "passed", or the time left until the scale-down deadline; empty when the deadline is not RFC 3339.
fn scale_down_delay(deadline: &str, now: Timestamp) -> String {
    match deadline.parse::<Timestamp>() {
        Ok(deadline) if deadline < now => "passed".to_string(),
        Ok(deadline) => duration::human_duration(duration::nanos_between(now, deadline)),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(yaml: &str) -> ReplicaSet {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn health_words() {
        let cases = [
            (
                "metadata: {generation: 2}\nstatus: {replicas: 1, observedGeneration: 1}",
                "Progressing",
            ),
            (
                "spec: {replicas: 2}\nstatus: {replicas: 2, conditions: [{type: ReplicaFailure, status: 'True'}]}",
                "ReplicaFailure",
            ),
            (
                "spec: {replicas: 2}\nstatus: {replicas: 2, availableReplicas: 1}",
                "Progressing",
            ),
            ("spec: {replicas: 0}\nstatus: {replicas: 0}", "ScaledDown"),
            (
                "spec: {replicas: 2}\nstatus: {replicas: 2, availableReplicas: 2}",
                "Healthy",
            ),
        ];
        for (yaml, want) in cases {
            assert_eq!(health(&rs(yaml)), want, "{yaml}");
        }
    }

    #[test]
    fn scale_down_delay_counts_down_then_passes() {
        let now: Timestamp = "2026-01-08T00:00:00Z".parse().unwrap();
        assert_eq!(scale_down_delay("2026-01-08T03:59:59Z", now), "3h59m");
        assert_eq!(scale_down_delay("2026-01-08T00:00:30Z", now), "30s");
        assert_eq!(scale_down_delay("2026-01-07T23:00:00Z", now), "passed");
        assert_eq!(scale_down_delay("soon", now), "");
    }
}
