//! Building the view model from the objects (upstream's `info` package): pure, no client.

mod analysis;
pub mod duration;
mod meta;
pub mod phase;
mod pods;
mod replicasets;

use jiff::Timestamp;
use sluice_crds::rollout::Rollout;

use super::{ExperimentInfo, ImageInfo, Owned, ReplicaSetInfo, RevisionInfo, RolloutInfo};
use replicasets::{ACTIVE, CANARY, PING, PONG, PREVIEW, STABLE};

/// The view of one Rollout at `now`.
pub fn rollout_info(ro: &Rollout, owned: &Owned, now: Timestamp) -> RolloutInfo {
    let uid = meta::uid(&ro.metadata);
    let replica_sets = replicasets::replica_sets(uid, Some(ro), &owned.replica_sets, &owned.pods, now);
    let experiments = analysis::experiments(uid, owned, now);
    let analysis_runs = analysis::analysis_runs(uid, owned);
    let weights = weights(ro, &replica_sets);
    let (status, message) = phase::rollout_phase(ro);
    let st = ro.status.clone().unwrap_or_default();
    RolloutInfo {
        name: meta::name(&ro.metadata),
        namespace: ro.metadata.namespace.clone().unwrap_or_default(),
        icon: phase::rollout_icon(&status),
        status,
        message,
        strategy: weights.strategy.to_string(),
        step: weights.step,
        set_weight: weights.set_weight,
        actual_weight: weights.actual_weight,
        images: images(&replica_sets, uid, owned),
        desired: ro.spec.replicas.unwrap_or(1),
        current: st.replicas.unwrap_or(0),
        updated: st.updated_replicas.unwrap_or(0),
        ready: st.ready_replicas.unwrap_or(0),
        available: st.available_replicas.unwrap_or(0),
        created: meta::created(&ro.metadata),
        revisions: revisions(replica_sets, experiments, analysis_runs),
    }
}

/// The strategy and, for a canary, its step and weights.
struct Weights {
    strategy: &'static str,
    step: String,
    set_weight: String,
    actual_weight: String,
}

fn weights(ro: &Rollout, replica_sets: &[ReplicaSetInfo]) -> Weights {
    let Some(canary) = &ro.spec.strategy.canary else {
        let strategy = if ro.spec.strategy.blue_green.is_some() {
            "BlueGreen"
        } else {
            ""
        };
        return Weights {
            strategy,
            step: String::new(),
            set_weight: "-".into(),
            actual_weight: "-".into(),
        };
    };
    let status = ro.status.clone().unwrap_or_default();
    let steps = canary.steps.as_deref().unwrap_or_default();
    let step = match status.current_step_index {
        Some(i) if !steps.is_empty() => format!("{i}/{}", steps.len()),
        _ => String::new(),
    };
    let index = status.current_step_index.unwrap_or(0);
    let current_step = usize::try_from(index).ok().and_then(|i| steps.get(i));
    let set_weight = if status.abort == Some(true) {
        0
    } else if current_step.is_none() {
        100
    } else {
        let upto = usize::try_from(index).unwrap_or(0);
        steps[..=upto]
            .iter()
            .rev()
            .find_map(|s| s.set_weight)
            .unwrap_or(0)
    };
    let available = status.available_replicas.unwrap_or(0);
    let actual_weight = if current_step.is_none() {
        // Past the steps all traffic goes to the new pods: the router's full weight (maxTrafficWeight).
        let max = canary.traffic_routing.as_ref().and_then(|t| t.max_traffic_weight);
        max.unwrap_or(100).to_string()
    } else if available <= 0 {
        "0".to_string()
    } else if canary.traffic_routing.is_none() {
        // The last canary ReplicaSet's share of the available pods (upstream's loop keeps the last one).
        let canary_rs = replica_sets
            .iter()
            .rfind(|rs| rs.info.iter().any(|t| t == CANARY));
        canary_rs
            .map_or(0, |rs| rs.available * 100 / available)
            .to_string()
    } else {
        match status.canary.as_ref().and_then(|c| c.weights.as_ref()) {
            Some(w) => w.canary.weight.to_string(),
            None => set_weight.to_string(),
        }
    };
    Weights {
        strategy: "Canary",
        step,
        set_weight: set_weight.to_string(),
        actual_weight,
    }
}

/// The images of the running ReplicaSets with their tags, then those of the experiments' ReplicaSets,
/// sorted by image (upstream's merge: an image seen twice gets the sorted union of its tags).
fn images(replica_sets: &[ReplicaSetInfo], rollout_uid: &str, owned: &Owned) -> Vec<ImageInfo> {
    let mut images = Vec::new();
    for rs in replica_sets.iter().filter(|rs| rs.replicas > 0) {
        let tags: Vec<String> = [CANARY, STABLE, ACTIVE, PREVIEW, PING, PONG]
            .into_iter()
            .filter(|tag| rs.info.iter().any(|t| t == tag))
            .map(String::from)
            .collect();
        for image in &rs.images {
            merge_image(
                &mut images,
                ImageInfo {
                    image: image.clone(),
                    tags: tags.clone(),
                },
            );
        }
    }
    let experiments = owned
        .experiments
        .iter()
        .filter(|e| meta::owned_by(&e.metadata, rollout_uid));
    for exp in experiments {
        for image in experiment_images(meta::uid(&exp.metadata), owned) {
            merge_image(&mut images, image);
        }
    }
    images
}

/// The images of an experiment's running ReplicaSets, tagged "Σ:<template>".
fn experiment_images(experiment_uid: &str, owned: &Owned) -> Vec<ImageInfo> {
    let mut images = Vec::new();
    let running = owned.replica_sets.iter().filter(|rs| {
        meta::owned_by(&rs.metadata, experiment_uid) && rs.status.as_ref().is_some_and(|s| s.replicas > 0)
    });
    for rs in running {
        let template = meta::annotation(&rs.metadata, meta::EXPERIMENT_TEMPLATE);
        let tags: Vec<String> = Some(template)
            .filter(|t| !t.is_empty())
            .map(|t| format!("Σ:{t}"))
            .into_iter()
            .collect();
        let containers = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .and_then(|t| t.spec.as_ref());
        for c in containers.map(|s| s.containers.as_slice()).unwrap_or_default() {
            let image = c.image.clone().unwrap_or_default();
            merge_image(
                &mut images,
                ImageInfo {
                    image,
                    tags: tags.clone(),
                },
            );
        }
    }
    images
}

fn merge_image(images: &mut Vec<ImageInfo>, image: ImageInfo) {
    match images.iter_mut().find(|i| i.image == image.image) {
        Some(existing) => {
            let mut tags = std::mem::take(&mut existing.tags);
            tags.extend(image.tags);
            tags.sort();
            tags.dedup();
            existing.tags = tags;
        }
        None => images.push(image),
    }
    images.sort_by(|a, b| a.image.cmp(&b.image));
}

/// Groups the ReplicaSets, Experiments and AnalysisRuns by revision, newest first.
fn revisions(
    replica_sets: Vec<ReplicaSetInfo>,
    experiments: Vec<ExperimentInfo>,
    analysis_runs: Vec<super::AnalysisRunInfo>,
) -> Vec<RevisionInfo> {
    let mut numbers: Vec<i64> = replica_sets
        .iter()
        .map(|r| r.revision)
        .chain(experiments.iter().map(|e| e.revision))
        .chain(analysis_runs.iter().map(|a| a.revision))
        .collect();
    numbers.sort_unstable_by(|a, b| b.cmp(a));
    numbers.dedup();
    numbers
        .into_iter()
        .map(|revision| RevisionInfo {
            revision,
            replica_sets: replica_sets
                .iter()
                .filter(|r| r.revision == revision)
                .cloned()
                .collect(),
            experiments: experiments
                .iter()
                .filter(|e| e.revision == revision)
                .cloned()
                .collect(),
            analysis_runs: analysis_runs
                .iter()
                .filter(|a| a.revision == revision)
                .cloned()
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canary(yaml: &str) -> Rollout {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn canary_rs(available: i32) -> ReplicaSetInfo {
        ReplicaSetInfo {
            name: "ro-new".into(),
            status: "Healthy".into(),
            icon: crate::info::Icon::Ok,
            revision: 2,
            info: vec![CANARY.into()],
            images: vec!["app:v2".into()],
            replicas: available,
            available,
            created: None,
            pods: Vec::new(),
        }
    }

    #[test]
    fn weights_follow_upstream() {
        let steps = "steps: [{setWeight: 20}, {pause: {}}, {setWeight: 50}]";
        let cases = [
            // Without a traffic router the actual weight is the canary's share of the available pods.
            (
                format!("{{canary: {{{steps}}}}}"),
                "{currentStepIndex: 1, availableReplicas: 4}",
                "1/3",
                "20",
                "25",
            ),
            // With one, it is the weight last set on the router, else the step's weight.
            (
                format!("{{canary: {{{steps}, trafficRouting: {{istio: {{}}}}}}}}"),
                "{currentStepIndex: 2, availableReplicas: 4, canary: {weights: {canary: {weight: 40}, stable: {weight: 60}}}}",
                "2/3",
                "50",
                "40",
            ),
            (
                format!("{{canary: {{{steps}, trafficRouting: {{istio: {{}}}}}}}}"),
                "{currentStepIndex: 2, availableReplicas: 4}",
                "2/3",
                "50",
                "50",
            ),
            // Past the last step, or without steps, everything is at 100.
            (
                format!("{{canary: {{{steps}}}}}"),
                "{currentStepIndex: 3, availableReplicas: 4}",
                "3/3",
                "100",
                "100",
            ),
            (
                "{canary: {}}".to_string(),
                "{availableReplicas: 4}",
                "",
                "100",
                "100",
            ),
            (
                "{canary: {trafficRouting: {maxTrafficWeight: 1000}}}".to_string(),
                "{availableReplicas: 4}",
                "",
                "100",
                "1000",
            ),
            // An abort sets the weight to 0; nothing available is an actual weight of 0.
            (
                format!("{{canary: {{{steps}}}}}"),
                "{currentStepIndex: 2, abort: true, availableReplicas: 4}",
                "2/3",
                "0",
                "25",
            ),
            (
                format!("{{canary: {{{steps}}}}}"),
                "{currentStepIndex: 0}",
                "0/3",
                "20",
                "0",
            ),
        ];
        for (strategy, status, step, set, actual) in cases {
            let ro = canary(&format!(
                "metadata: {{name: ro}}\nspec: {{strategy: {strategy}}}\nstatus: {status}"
            ));
            let w = weights(&ro, &[canary_rs(1)]);
            assert_eq!(
                (w.step.as_str(), w.set_weight.as_str(), w.actual_weight.as_str()),
                (step, set, actual),
                "{status}"
            );
        }
        let bg = canary("metadata: {name: ro}\nspec: {strategy: {blueGreen: {activeService: a}}}");
        let w = weights(&bg, &[]);
        assert_eq!(
            (w.strategy, w.set_weight.as_str(), w.actual_weight.as_str()),
            ("BlueGreen", "-", "-")
        );
    }

    #[test]
    fn an_image_of_two_replica_sets_gets_the_sorted_union_of_their_tags() {
        let mut stable = canary_rs(3);
        stable.info = vec![STABLE.into()];
        stable.images = vec!["app:v2".into(), "sidecar:1".into()];
        let images = images(&[canary_rs(1), stable], "ro-uid", &Owned::default());
        let got: Vec<(&str, Vec<&str>)> = images
            .iter()
            .map(|i| (i.image.as_str(), i.tags.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            got,
            [
                ("app:v2", vec!["canary", "stable"]),
                ("sidecar:1", vec!["stable"])
            ]
        );
    }
}
