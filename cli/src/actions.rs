//! The patches the mutating commands send, exactly as upstream's plugin sends them: pure, table-tested.
//! Status patches go to the `status` subresource; when that answers NotFound (a CRD without the
//! subresource) the command falls back to the `unified` patch on the main resource, as upstream does.

use serde_json::{Value, json};
use sluice_crds::rollout::Rollout;

/// `abort`: a merge patch of the status subresource.
pub const ABORT: &str = r#"{"status":{"abort":true}}"#;
/// `retry rollout`: a merge patch of the status subresource.
pub const RETRY_ROLLOUT: &str = r#"{"status":{"abort":false}}"#;
/// `retry experiment`: a merge patch of the main resource.
pub const RETRY_EXPERIMENT: &str = r#"{"status":null}"#;
/// `pause`: a merge patch of the main resource.
pub const PAUSE: &str = r#"{"spec":{"paused":true}}"#;
/// `resume` (and the spec half of `promote`): a merge patch of the main resource.
pub const UNPAUSE: &str = r#"{"spec":{"paused":false}}"#;
const CLEAR_PAUSE_CONDITIONS: &str = r#"{"status":{"pauseConditions":null}}"#;
const UNPAUSE_AND_CLEAR: &str = r#"{"spec":{"paused":false},"status":{"pauseConditions":null}}"#;
const PROMOTE_FULL: &str = r#"{"status":{"promoteFull":true}}"#;

/// Refusals of `promote`, in upstream's words.
pub const BOTH_SKIP_FLAGS: &str = "Cannot use skip-current-step and skip-all-steps flags at the same time";
/// `promote -c/-a` on a blue-green Rollout.
pub const SKIP_BLUE_GREEN: &str = "Cannot skip steps of a bluegreen rollout. Run without a flags";
/// `promote -c/-a` on a canary without steps.
pub const SKIP_NO_STEPS: &str = "Cannot skip steps of a rollout without steps";

/// How `promote` was asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Promote {
    /// `--full`
    pub full: bool,
    /// deprecated `-c/--skip-current-step`
    pub skip_current_step: bool,
    /// deprecated `-a/--skip-all-steps`
    pub skip_all_steps: bool,
}

/// The up to three patches of `promote`: spec (main resource), status (subresource), and the unified patch
/// that replaces both when the status subresource does not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patches {
    /// Merge patch of the main resource.
    pub spec: Option<String>,
    /// Merge patch of the status subresource.
    pub status: Option<String>,
    /// Merge patch of the main resource used instead of both when the subresource answers NotFound.
    pub unified: Option<String>,
}

fn step_count(ro: &Rollout) -> Option<usize> {
    ro.spec
        .strategy
        .canary
        .as_ref()
        .map(|c| c.steps.as_ref().map_or(0, Vec::len))
}

/// The step index after the current one, capped at the step count (None: not a canary with steps).
fn next_step(ro: &Rollout) -> Option<usize> {
    let n = step_count(ro).filter(|n| *n > 0)?;
    let current = ro
        .status
        .as_ref()
        .and_then(|s| s.current_step_index)
        .map_or(0, |i| i.max(0) as usize);
    Some(if current < n { current + 1 } else { current })
}

/// The refusal of `promote` for this Rollout, if any.
pub fn promote_refusal(ro: &Rollout, how: Promote) -> Option<&'static str> {
    if how.skip_current_step && how.skip_all_steps {
        return Some(BOTH_SKIP_FLAGS);
    }
    if how.skip_current_step || how.skip_all_steps {
        if ro.spec.strategy.blue_green.is_some() {
            return Some(SKIP_BLUE_GREEN);
        }
        if step_count(ro) == Some(0) {
            return Some(SKIP_NO_STEPS);
        }
    }
    None
}

fn set_step(i: usize) -> String {
    format!(r#"{{"status":{{"currentStepIndex":{i}}}}}"#)
}

/// The patches `promote` sends for this Rollout (call `promote_refusal` first).
pub fn promote_patches(ro: &Rollout, how: Promote) -> Patches {
    let status = ro.status.clone().unwrap_or_default();
    if how.skip_current_step {
        let s = next_step(ro).map(set_step);
        return Patches {
            spec: None,
            status: s.clone(),
            unified: s,
        };
    }
    if how.skip_all_steps {
        let s = Some(set_step(step_count(ro).unwrap_or(0)));
        return Patches {
            spec: None,
            status: s.clone(),
            unified: s,
        };
    }
    if how.full {
        let promoted = status.current_pod_hash == status.stable_rs;
        return Patches {
            spec: None,
            status: (!promoted).then(|| PROMOTE_FULL.to_string()),
            unified: None,
        };
    }
    let mut p = Patches {
        spec: ro.spec.paused.unwrap_or(false).then(|| UNPAUSE.to_string()),
        status: None,
        unified: Some(UNPAUSE_AND_CLEAR.to_string()),
    };
    if !status.pause_conditions.as_ref().is_none_or(Vec::is_empty) {
        p.status = Some(CLEAR_PAUSE_CONDITIONS.to_string());
    } else if let Some(i) = next_step(ro) {
        p.status = Some(format!(
            r#"{{"status":{{"pauseConditions":null, "currentStepIndex":{i}}}}}"#
        ));
        p.unified = Some(format!(
            r#"{{"spec":{{"paused":false}},"status":{{"pauseConditions":null, "currentStepIndex":{i}}}}}"#
        ));
    }
    p
}

/// `restart`: a merge patch of the main resource setting spec.restartAt (RFC 3339, seconds).
pub fn restart_patch(at: jiff::Timestamp) -> String {
    let at = at.round(jiff::Unit::Second).unwrap_or(at);
    json!({"spec": {"restartAt": at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}}).to_string()
}

/// `set image`: the Rollout with the image set on every container (init, regular, ephemeral) named
/// `container` (`*`: all of them); None when no container has that name. Sent as an update, as upstream does.
pub fn set_image(ro: &Rollout, container: &str, image: &str) -> Option<Rollout> {
    let mut out = ro.clone();
    let mut found = false;
    let spec = out.spec.template.as_mut()?.spec.as_mut()?;
    let mut set = |name: &str, img: &mut Option<String>| {
        if name == container || container == "*" {
            found = true;
            *img = Some(image.to_string());
        }
    };
    for c in spec.init_containers.iter_mut().flatten() {
        set(&c.name, &mut c.image);
    }
    for c in spec.containers.iter_mut() {
        set(&c.name, &mut c.image);
    }
    for c in spec.ephemeral_containers.iter_mut().flatten() {
        set(&c.name, &mut c.image);
    }
    found.then_some(out)
}

/// The label that names a pod template's hash.
pub const HASH_LABEL: &str = "rollouts-pod-template-hash";
/// The annotation of a ReplicaSet's revision.
pub const REVISION: &str = "rollout.argoproj.io/revision";

/// A ReplicaSet's revision as `undo` reads it: no annotation is 0, a malformed one is skipped.
fn revision(rs: &k8s_openapi::api::apps::v1::ReplicaSet) -> Option<i64> {
    match rs.metadata.annotations.as_ref().and_then(|a| a.get(REVISION)) {
        None => Some(0),
        Some(v) => v.parse().ok(),
    }
}

/// The ReplicaSet `undo` goes back to: `to_revision` when > 0, else the second newest revision. `owned`
/// holds the Rollout's own ReplicaSets. Errors are upstream's messages.
pub fn undo_target<'a>(
    ro_name: &str,
    owned: &'a [k8s_openapi::api::apps::v1::ReplicaSet],
    to_revision: i64,
) -> Result<&'a k8s_openapi::api::apps::v1::ReplicaSet, String> {
    if to_revision > 0 {
        return owned
            .iter()
            .find(|rs| revision(rs) == Some(to_revision))
            .ok_or_else(|| format!("unable to find specified revision {to_revision} in history"));
    }
    let mut by_rev: Vec<(i64, &k8s_openapi::api::apps::v1::ReplicaSet)> = owned
        .iter()
        .filter_map(|rs| revision(rs).map(|r| (r, rs)))
        .collect();
    by_rev.sort_by_key(|b| std::cmp::Reverse(b.0));
    by_rev.dedup_by_key(|(r, _)| *r);
    by_rev
        .get(1)
        .map(|(_, rs)| *rs)
        .ok_or_else(|| format!("no revision found for rollout {ro_name:?}"))
}

/// A pod template as JSON without the hash label (what `undo` restores and compares).
pub fn template_without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove(HASH_LABEL);
    }
    t
}

/// Whether every field set in `current` (the Rollout's template) equals the ReplicaSet's: upstream's
/// semantic DeepDerivative, where fields unset in the first do not count.
pub fn derivative(current: &Value, target: &Value) -> bool {
    match (current, target) {
        (Value::Null, _) => true,
        (Value::Object(a), Value::Object(b)) => a.iter().all(|(k, v)| {
            let empty = v.is_null() || v.as_object().is_some_and(|o| o.is_empty());
            match b.get(k) {
                Some(w) => derivative(v, w),
                None => empty || v.as_array().is_some_and(Vec::is_empty),
            }
        }),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| derivative(x, y))
        }
        (Value::String(a), Value::String(b)) if a.is_empty() => b.is_empty() || a == b,
        _ => current == target,
    }
}

/// `undo`: the JSON patch that replaces spec.template with the target's template (hash label removed).
pub fn undo_patch(target_template: &Value) -> Value {
    json!([{"op": "replace", "path": "/spec/template", "value": template_without_hash(target_template)}])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(spec: Value, status: Value) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "ro", "namespace": "ns"},
            "spec": spec, "status": status,
        }))
        .unwrap()
    }

    fn canary(steps: usize, paused: bool) -> Value {
        let steps: Vec<Value> = (0..steps).map(|_| json!({"pause": {}})).collect();
        json!({"paused": paused, "selector": {"matchLabels": {"app": "a"}},
               "strategy": {"canary": {"steps": steps}}})
    }

    fn blue_green() -> Value {
        json!({"selector": {"matchLabels": {"app": "a"}},
               "strategy": {"blueGreen": {"activeService": "active"}}})
    }

    fn pause_conditions() -> Value {
        json!([{"reason": "CanaryPauseStep", "startTime": "2026-01-01T00:00:00Z"}])
    }

    #[test]
    fn promote_sends_upstreams_patches() {
        let pc = pause_conditions();
        let cases: Vec<(&str, Rollout, Promote, Patches)> = vec![
            (
                "paused at a pause step: clear the pause conditions only",
                rollout(canary(3, false), json!({"currentStepIndex": 1, "pauseConditions": pc})),
                Promote::default(),
                Patches {
                    spec: None,
                    status: Some(CLEAR_PAUSE_CONDITIONS.into()),
                    unified: Some(UNPAUSE_AND_CLEAR.into()),
                },
            ),
            (
                "spec.paused and pause conditions: unpause the spec too",
                rollout(canary(3, true), json!({"currentStepIndex": 1, "pauseConditions": pc})),
                Promote::default(),
                Patches {
                    spec: Some(UNPAUSE.into()),
                    status: Some(CLEAR_PAUSE_CONDITIONS.into()),
                    unified: Some(UNPAUSE_AND_CLEAR.into()),
                },
            ),
            (
                "canary mid-analysis, no pause condition: move to the next step",
                rollout(canary(3, false), json!({"currentStepIndex": 1})),
                Promote::default(),
                Patches {
                    spec: None,
                    status: Some(r#"{"status":{"pauseConditions":null, "currentStepIndex":2}}"#.into()),
                    unified: Some(
                        r#"{"spec":{"paused":false},"status":{"pauseConditions":null, "currentStepIndex":2}}"#
                            .into(),
                    ),
                },
            ),
            (
                "canary at the end: the index stays",
                rollout(canary(3, false), json!({"currentStepIndex": 3})),
                Promote::default(),
                Patches {
                    spec: None,
                    status: Some(r#"{"status":{"pauseConditions":null, "currentStepIndex":3}}"#.into()),
                    unified: Some(
                        r#"{"spec":{"paused":false},"status":{"pauseConditions":null, "currentStepIndex":3}}"#
                            .into(),
                    ),
                },
            ),
            (
                "blue-green paused before promotion",
                rollout(blue_green(), json!({"pauseConditions": [{"reason": "BlueGreenPause", "startTime": "2026-01-01T00:00:00Z"}]})),
                Promote::default(),
                Patches {
                    spec: None,
                    status: Some(CLEAR_PAUSE_CONDITIONS.into()),
                    unified: Some(UNPAUSE_AND_CLEAR.into()),
                },
            ),
            (
                "--full mid-update",
                rollout(canary(3, false), json!({"currentPodHash": "b", "stableRS": "a"})),
                Promote { full: true, ..Default::default() },
                Patches { spec: None, status: Some(PROMOTE_FULL.into()), unified: None },
            ),
            (
                "--full when already promoted sends nothing",
                rollout(canary(3, false), json!({"currentPodHash": "a", "stableRS": "a"})),
                Promote { full: true, ..Default::default() },
                Patches::default(),
            ),
            (
                "-c skips the current step",
                rollout(canary(3, false), json!({"currentStepIndex": 0})),
                Promote { skip_current_step: true, ..Default::default() },
                Patches {
                    spec: None,
                    status: Some(r#"{"status":{"currentStepIndex":1}}"#.into()),
                    unified: Some(r#"{"status":{"currentStepIndex":1}}"#.into()),
                },
            ),
            (
                "-a skips to the end",
                rollout(canary(3, false), json!({"currentStepIndex": 0})),
                Promote { skip_all_steps: true, ..Default::default() },
                Patches {
                    spec: None,
                    status: Some(r#"{"status":{"currentStepIndex":3}}"#.into()),
                    unified: Some(r#"{"status":{"currentStepIndex":3}}"#.into()),
                },
            ),
        ];
        for (name, ro, how, want) in cases {
            assert_eq!(promote_refusal(&ro, how), None, "{name}");
            assert_eq!(promote_patches(&ro, how), want, "{name}");
        }
    }

    #[test]
    fn promote_refuses_skips_a_strategy_cannot_take() {
        let skip = Promote {
            skip_current_step: true,
            ..Default::default()
        };
        assert_eq!(
            promote_refusal(&rollout(blue_green(), json!({})), skip),
            Some(SKIP_BLUE_GREEN)
        );
        assert_eq!(
            promote_refusal(&rollout(canary(0, false), json!({})), skip),
            Some(SKIP_NO_STEPS)
        );
        let both = Promote {
            skip_current_step: true,
            skip_all_steps: true,
            ..Default::default()
        };
        assert_eq!(
            promote_refusal(&rollout(canary(2, false), json!({})), both),
            Some(BOTH_SKIP_FLAGS)
        );
    }

    #[test]
    fn restart_sets_restart_at_in_rfc3339_seconds() {
        let at: jiff::Timestamp = "2026-12-03T01:02:03.456Z".parse().unwrap();
        assert_eq!(
            restart_patch(at),
            r#"{"spec":{"restartAt":"2026-12-03T01:02:03Z"}}"#
        );
    }

    fn with_containers() -> Rollout {
        let mut spec = canary(1, false);
        spec["template"] = json!({"spec": {
            "initContainers": [{"name": "init", "image": "i:1"}],
            "containers": [{"name": "app", "image": "a:1"}, {"name": "side", "image": "s:1"}]}});
        rollout(spec, json!({}))
    }

    fn images(ro: &Rollout) -> Vec<String> {
        let spec = ro.spec.template.as_ref().unwrap().spec.as_ref().unwrap();
        let init = spec.init_containers.iter().flatten();
        init.chain(&spec.containers)
            .map(|c| c.image.clone().unwrap())
            .collect()
    }

    #[test]
    fn set_image_sets_the_named_container_or_all_with_a_star() {
        let ro = with_containers();
        assert_eq!(
            images(&set_image(&ro, "app", "a:2").unwrap()),
            ["i:1", "a:2", "s:1"]
        );
        assert_eq!(
            images(&set_image(&ro, "init", "i:2").unwrap()),
            ["i:2", "a:1", "s:1"]
        );
        assert_eq!(
            images(&set_image(&ro, "*", "x:9").unwrap()),
            ["x:9", "x:9", "x:9"]
        );
        assert!(set_image(&ro, "nope", "x:9").is_none());
    }

    fn rs(name: &str, revision: Option<&str>) -> k8s_openapi::api::apps::v1::ReplicaSet {
        let mut meta = json!({"name": name});
        if let Some(r) = revision {
            meta["annotations"] = json!({REVISION: r});
        }
        serde_json::from_value(json!({"metadata": meta})).unwrap()
    }

    #[test]
    fn undo_goes_to_the_second_newest_revision_or_the_one_asked() {
        let owned = vec![rs("a", Some("1")), rs("c", Some("3")), rs("b", Some("2"))];
        let name = |r: Result<&k8s_openapi::api::apps::v1::ReplicaSet, String>| {
            r.map(|rs| rs.metadata.name.clone().unwrap())
        };
        assert_eq!(name(undo_target("ro", &owned, 0)), Ok("b".into()));
        assert_eq!(name(undo_target("ro", &owned, 1)), Ok("a".into()));
        assert_eq!(
            name(undo_target("ro", &owned, 7)),
            Err("unable to find specified revision 7 in history".into())
        );
        assert_eq!(
            name(undo_target("ro", &owned[..1], 0)),
            Err(r#"no revision found for rollout "ro""#.into())
        );
    }

    #[test]
    fn undo_restores_the_template_without_its_hash_label() {
        let t = json!({"metadata": {"labels": {"app": "a", HASH_LABEL: "abc"}}, "spec": {"containers": []}});
        assert_eq!(
            undo_patch(&t),
            json!([{"op": "replace", "path": "/spec/template",
                    "value": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": []}}}])
        );
        let current = json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}});
        let target = json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "x:1", "imagePullPolicy": "IfNotPresent"}], "dnsPolicy": "ClusterFirst"}});
        assert!(
            derivative(&current, &target),
            "defaults the server added do not count"
        );
        let other = json!({"spec": {"containers": [{"name": "c", "image": "x:2"}]}});
        assert!(!derivative(&other, &target));
    }
}
