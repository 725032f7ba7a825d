//! Snapshot tests: fixture objects (cli/testdata/<case>/objects.yaml) → view model → text, compared with the
//! output upstream's own tests expect. Uncoloured snapshots are upstream's text (compared, as upstream compares
//! them, without trailing blanks); coloured snapshots are compared byte for byte. `SLUICE_BLESS=1` rewrites the
//! snapshots from the current output.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::Deserialize;
use sluice_crds::rollout::Rollout;

use super::{list::table, tree};
use crate::info::{Owned, RolloutInfo, build::rollout_info};

/// Every fixture object was created a week before `now` (upstream's fixtures do the same).
const CREATED: &str = "2026-01-01T00:00:00Z";
const NOW: &str = "2026-01-08T00:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn testdata(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata").join(case)
}

/// The rollouts and owned objects of a fixture.
struct Fixture {
    rollouts: Vec<Rollout>,
    owned: Owned,
}

fn created(meta: &mut ObjectMeta) {
    meta.creation_timestamp = Some(Time(CREATED.parse().unwrap()));
}

fn load(case: &str) -> Fixture {
    let text = std::fs::read_to_string(testdata(case).join("objects.yaml")).unwrap();
    let mut fx = Fixture {
        rollouts: Vec::new(),
        owned: Owned::default(),
    };
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(doc).unwrap();
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_string();
        let o = &mut fx.owned;
        match kind.as_str() {
            "Rollout" => fx.rollouts.push(serde_yaml::from_value(value).unwrap()),
            "ReplicaSet" => o.replica_sets.push(serde_yaml::from_value(value).unwrap()),
            "Pod" => o.pods.push(serde_yaml::from_value(value).unwrap()),
            "AnalysisRun" => o.analysis_runs.push(serde_yaml::from_value(value).unwrap()),
            "Experiment" => o.experiments.push(serde_yaml::from_value(value).unwrap()),
            other => panic!("{case}: unexpected kind {other:?}"),
        }
    }
    fx.rollouts.iter_mut().for_each(|r| created(&mut r.metadata));
    fx.owned
        .replica_sets
        .iter_mut()
        .for_each(|r| created(&mut r.metadata));
    fx.owned.pods.iter_mut().for_each(|p| created(&mut p.metadata));
    fx.owned
        .experiments
        .iter_mut()
        .for_each(|e| created(&mut e.metadata));
    for run in &mut fx.owned.analysis_runs {
        created(&mut run.metadata);
        let results = run.status.as_mut().and_then(|s| s.metric_results.as_mut());
        for m in results
            .into_iter()
            .flatten()
            .flat_map(|r| r.measurements.iter_mut().flatten())
        {
            m.started_at = Some(Time(CREATED.parse().unwrap()));
        }
    }
    fx
}

impl Fixture {
    fn info(&self, name: &str) -> RolloutInfo {
        let ro = self
            .rollouts
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
            .unwrap();
        rollout_info(ro, &self.owned, now())
    }
}

fn strip_trailing_blanks(s: &str) -> String {
    s.lines().map(str::trim_end).collect::<Vec<_>>().join("\n") + "\n"
}

/// Compares `actual` with the snapshot `case/file` (exactly, or without trailing blanks).
fn check(case: &str, file: &str, actual: &str, exact: bool) {
    let path = testdata(case).join(file);
    let actual = if exact {
        actual.to_string()
    } else {
        strip_trailing_blanks(actual)
    };
    if std::env::var_os("SLUICE_BLESS").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(actual, want, "{} differs; got:\n{actual}", path.display());
}

/// (fixture, rollout, snapshot name) of every `get rollout` case of upstream's get_test.go.
const TREES: &[(&str, &str, &str)] = &[
    ("blue-green", "bluegreen-demo", "tree"),
    ("canary", "canary-demo", "tree"),
    ("canary", "canary-demo-pingpong", "tree-pingpong"),
    ("experiment-analysis", "rollout-experiment-analysis", "tree"),
    ("experiment-step", "canary-demo", "tree"),
    ("rollout-invalid", "rollout-invalid", "tree"),
    ("rollout-aborted", "rollout-background-analysis", "tree"),
];

#[test]
fn get_rollout_prints_what_upstream_prints() {
    for (case, name, snapshot) in TREES {
        let info = load(case).info(name);
        check(
            case,
            &format!("{snapshot}.txt"),
            &tree(&info, now(), false),
            false,
        );
    }
}

#[test]
fn get_rollout_in_colour_carries_upstreams_escape_codes() {
    for (case, name, snapshot) in TREES {
        let info = load(case).info(name);
        check(
            case,
            &format!("{snapshot}.colour.txt"),
            &tree(&info, now(), true),
            true,
        );
    }
}

#[test]
fn without_colour_there_is_no_escape_code() {
    for (case, name, _) in TREES {
        assert!(
            !tree(&load(case).info(name), now(), false).contains('\x1b'),
            "{case}"
        );
    }
}

/// Upstream's scale-down-delay cases: the preview ReplicaSet loses its hash label and gets a deadline.
fn blue_green_with_deadline(deadline: &str) -> RolloutInfo {
    let mut fx = load("blue-green");
    let rs = fx
        .owned
        .replica_sets
        .iter_mut()
        .find(|r| r.metadata.name.as_deref() == Some("bluegreen-demo-74b948fccb"));
    let meta = &mut rs.unwrap().metadata;
    meta.labels.as_mut().unwrap().remove("rollouts-pod-template-hash");
    meta.annotations
        .get_or_insert_default()
        .insert("scale-down-deadline".into(), deadline.into());
    fx.info("bluegreen-demo")
}

#[test]
fn a_scale_down_deadline_shows_as_a_delay_until_it_passes() {
    // Upstream sets the deadline four hours ahead and reads the clock a moment later: "3h59m".
    let info = blue_green_with_deadline("2026-01-08T03:59:59Z");
    check(
        "blue-green",
        "tree-scale-down-delay.txt",
        &tree(&info, now(), false),
        false,
    );
    let info = blue_green_with_deadline("2026-01-07T23:00:00Z");
    check(
        "blue-green",
        "tree-scale-down-passed.txt",
        &tree(&info, now(), false),
        false,
    );
}

#[test]
fn tree_cells_are_padded_like_the_tabwriter_pads_them() {
    let out = tree(&load("blue-green").info("bluegreen-demo"), now(), false);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[15],
        "⟳ bluegreen-demo                            Rollout     ॥ Paused      7d   "
    );
    assert_eq!(
        lines[16],
        format!("├──# revision:11{}", " ".repeat(28 + 12 + 14 + 5))
    );
    assert_eq!(
        lines[27],
        "   └──⧉ bluegreen-demo-746d5fddf6           ReplicaSet  • ScaledDown  7d   "
    );
    assert!(
        out.contains("Strategy:        BlueGreen\nImages:"),
        "no canary lines for a blue-green"
    );
}

#[test]
fn coloured_names_follow_their_tags_and_phases() {
    let out = tree(&load("blue-green").info("bluegreen-demo"), now(), true);
    assert!(out.contains("Status:          \x1b[0m॥\x1b[0m Paused\n"));
    assert!(out.contains("argoproj/rollouts-demo:blue (\x1b[32mstable\x1b[0m, \x1b[32mactive\x1b[0m)\n"));
    assert!(out.contains(
        "⧉ \x1b[32m\x1b[32mbluegreen-demo-6cbccd9f99\x1b[0m\x1b[0m           ReplicaSet  \x1b[32m✔\x1b[0m Healthy     7d   \x1b[32mstable\x1b[0m,\x1b[32mactive\x1b[0m\n"
    ));
    let out = tree(&load("experiment-step").info("canary-demo"), now(), true);
    assert!(out.contains("α \x1b[94mcanary-demo-645d5dbc4c-2-0-stress-test\x1b[0m  "));
    assert!(out.contains("(\x1b[0mΣ:canary-preview\x1b[0m)"));
    let out = tree(
        &load("experiment-analysis").info("rollout-experiment-analysis"),
        now(),
        true,
    );
    assert!(out.contains("\x1b[32m✔\x1b[0m 4,\x1b[31m✖\x1b[0m 4,\x1b[33m?\x1b[0m 1,\x1b[31m⚠\x1b[0m 1\n"));
}

#[test]
fn the_view_carries_what_the_dashboard_reads() {
    let info = load("rollout-aborted").info("rollout-background-analysis");
    let run = &info.revisions[0].analysis_runs[0];
    assert_eq!(
        (
            run.metrics[0].last_value.as_str(),
            run.metrics[0].success_condition.as_str()
        ),
        ("false", "result == \"true\"")
    );
    assert_eq!(
        run.message,
        "metric \"web\" assessed Failed due to failed (1) > failureLimit (0)"
    );
    let stable = &info.revisions[1].replica_sets[0];
    assert_eq!(
        (stable.replicas, stable.available, stable.created),
        (1, 1, Some(CREATED.parse().unwrap()))
    );
    assert_eq!(
        info.revisions.iter().map(|r| r.revision).collect::<Vec<_>>(),
        [2, 1]
    );
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(
        json["revisions"][0]["analysisRuns"][0]["metrics"][0]["lastValue"],
        "false"
    );
}

fn list_infos() -> Vec<RolloutInfo> {
    let fx = load("list");
    fx.rollouts
        .iter()
        .map(|ro| rollout_info(ro, &fx.owned, now()))
        .collect()
}

#[test]
fn list_rollouts_prints_what_upstream_prints() {
    check("list", "list.txt", &table(&list_infos(), false, None), true);
}

#[test]
fn list_rollouts_with_namespaces_and_timestamps() {
    let zero_time: Timestamp = "0001-01-01T00:00:00Z".parse().unwrap();
    let canary = &list_infos()[..1];
    check(
        "list",
        "list-all-namespaces-timestamps.txt",
        &table(canary, true, Some(zero_time)),
        true,
    );
    assert_eq!(super::list(&[], true, true), "", "no rollouts: nothing on stdout");
}

#[test]
fn list_namespace_column_comes_first_without_timestamps() {
    let out = table(&list_infos(), true, None);
    assert!(out.starts_with("NAMESPACE  NAME           STRATEGY"), "{out}");
    assert!(
        out.contains("\ntest       bg-guestbook   BlueGreen  Progressing   -     -"),
        "{out}"
    );
}

#[test]
fn the_list_header_alone_is_what_a_watch_of_no_rollouts_prints() {
    assert_eq!(
        crate::render::list_header(false, false),
        "NAME  STRATEGY  STATUS  STEP  SET-WEIGHT  READY  DESIRED  UP-TO-DATE  AVAILABLE\n"
    );
    assert!(crate::render::list_header(true, true).starts_with("TIMESTAMP  NAMESPACE  NAME  "));
}
