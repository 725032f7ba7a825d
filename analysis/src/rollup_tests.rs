use super::*;
use sluice_crds::analysis::{DryRun, MeasurementRetention, MetricProvider, PrometheusMetric, TtlStrategy};

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn metric(name: &str) -> Metric {
    Metric {
        name: name.into(),
        provider: MetricProvider {
            prometheus: Some(PrometheusMetric {
                query: Some("up".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn with(mut m: Metric, f: impl FnOnce(&mut Metric)) -> Metric {
    f(&mut m);
    m
}

fn int(i: i32) -> Option<IntOrString> {
    Some(IntOrString::Int(i))
}

fn measurement(phase: Phase, at: i64) -> Measurement {
    Measurement {
        phase: phase.to_string(),
        started_at: Some(Time(ts(at))),
        finished_at: Some(Time(ts(at))),
        value: Some("[0.5]".into()),
        ..Default::default()
    }
}

/// A result after recording the given measurement phases, one a second from t=0.
fn result_of(name: &str, phases: &[Phase]) -> AnalysisRunStatus {
    let mut status = AnalysisRunStatus::default();
    for (i, p) in phases.iter().enumerate() {
        record(&mut status, name, false, measurement(*p, i as i64), false);
    }
    status
}

use Phase::{Error as E, Failed as F, Inconclusive as I, Successful as S};

#[test]
fn metric_phase_follows_the_limits_rule_by_rule() {
    // (metric settings, measurement phases, terminating, expected metric phase)
    type Case = (&'static str, fn(&mut Metric), &'static [Phase], bool, Phase);
    let cases: &[Case] = &[
        ("one success, count 1", |_| {}, &[S], false, S),
        ("one failure, failureLimit 0", |_| {}, &[F], false, F),
        (
            "failure within failureLimit 1, count reached",
            |m| {
                m.count = int(2);
                m.interval = Some("1s".into());
                m.failure_limit = int(1);
            },
            &[F, S],
            false,
            S,
        ),
        (
            "failures beyond failureLimit 1",
            |m| {
                m.count = int(5);
                m.interval = Some("1s".into());
                m.failure_limit = int(1);
            },
            &[F, S, F],
            false,
            F,
        ),
        (
            "failureLimit -1 never fails",
            |m| {
                m.count = int(2);
                m.interval = Some("1s".into());
                m.failure_limit = int(-1);
            },
            &[F, F],
            false,
            S,
        ),
        ("inconclusive beyond inconclusiveLimit 0", |_| {}, &[I], false, I),
        (
            "inconclusive within inconclusiveLimit 1",
            |m| {
                m.count = int(3);
                m.interval = Some("1s".into());
                m.inconclusive_limit = int(1);
            },
            &[I, S],
            false,
            Phase::Running,
        ),
        (
            "errors up to the default limit 4 keep running",
            |m| {
                m.interval = Some("1s".into());
            },
            &[E, E, E, E],
            false,
            Phase::Running,
        ),
        (
            "a fifth consecutive error is Error",
            |m| {
                m.interval = Some("1s".into());
            },
            &[E, E, E, E, E],
            false,
            E,
        ),
        (
            "errors do not count towards count",
            |_| {},
            &[E],
            false,
            Phase::Running,
        ),
        (
            "a success resets the consecutive errors",
            |m| {
                m.interval = Some("1s".into());
                m.consecutive_error_limit = int(1);
            },
            &[E, S, E],
            false,
            Phase::Running,
        ),
        (
            "consecutiveErrorLimit 0: the first error is Error",
            |m| {
                m.interval = Some("1s".into());
                m.consecutive_error_limit = int(0);
            },
            &[E],
            false,
            E,
        ),
        (
            "error wins over failure (later checks win)",
            |m| {
                m.interval = Some("1s".into());
                m.consecutive_error_limit = int(0);
            },
            &[F, E],
            false,
            E,
        ),
        (
            "consecutiveSuccessLimit reached",
            |m| {
                m.interval = Some("1s".into());
                m.consecutive_success_limit = int(2);
                m.failure_limit = int(3);
            },
            &[S, F, S, S],
            false,
            S,
        ),
        (
            "count reached without enough consecutive successes, failureLimit in force: Inconclusive",
            |m| {
                m.interval = Some("1s".into());
                m.count = int(3);
                m.consecutive_success_limit = int(3);
                m.failure_limit = int(3);
            },
            &[S, F, S],
            false,
            I,
        ),
        (
            "count reached without enough consecutive successes, success limit alone: Failed",
            |m| {
                m.interval = Some("1s".into());
                m.count = int(3);
                m.consecutive_success_limit = int(3);
                m.failure_limit = int(-1);
            },
            &[S, F, S],
            false,
            F,
        ),
        (
            "interval without count runs until terminated",
            |m| {
                m.interval = Some("1s".into());
            },
            &[S, S, S, S, S, S],
            false,
            Phase::Running,
        ),
        (
            "terminating an unlimited metric is Successful",
            |m| {
                m.interval = Some("1s".into());
            },
            &[S, S],
            true,
            S,
        ),
        (
            "terminating before any measurement is Successful",
            |_| {},
            &[],
            true,
            S,
        ),
        (
            "no measurement yet is Pending",
            |_| {},
            &[],
            false,
            Phase::Pending,
        ),
        (
            "count given as a string",
            |m| {
                m.count = Some(IntOrString::String("2".into()));
                m.interval = Some("1s".into());
            },
            &[S, S],
            false,
            S,
        ),
    ];
    for (name, setup, phases, terminating, want) in cases {
        let m = with(metric("m"), setup);
        let status = result_of("m", phases);
        let r = status
            .metric_results
            .as_ref()
            .and_then(|r| r.first())
            .cloned()
            .unwrap_or(MetricResult {
                name: "m".into(),
                ..Default::default()
            });
        assert_eq!(assess_metric(&m, &r, *terminating), *want, "{name}");
    }
}

#[test]
fn counters_follow_each_measurement() {
    let status = result_of("m", &[S, S, E, F, E, E, I, S]);
    let r = &status.metric_results.unwrap()[0];
    assert_eq!(
        (
            r.count,
            r.successful,
            r.failed,
            r.inconclusive,
            r.error,
            r.consecutive_error,
            r.consecutive_success
        ),
        (Some(5), Some(3), Some(1), Some(1), Some(3), None, Some(1))
    );
    assert_eq!(r.measurements.as_ref().unwrap().len(), 8);
    let status = result_of("m", &[S, E, E]);
    let r = &status.metric_results.unwrap()[0];
    assert_eq!(r.consecutive_error, Some(2));
    assert_eq!(
        r.consecutive_success,
        Some(1),
        "errors neither count nor break a success streak"
    );
}

#[test]
fn run_takes_the_worst_metric_and_says_why() {
    let spec = AnalysisRunSpec::default();
    let a = metric("a");
    let b = with(metric("b"), |m| m.failure_limit = int(0));
    let mut status = result_of("a", &[S]);
    record(&mut status, "b", false, measurement(F, 0), false);
    let out = assess_run(&spec, &mut status, &[a, b], &BTreeSet::new(), ts(5));
    assert_eq!(out.run, Some(F));
    assert_eq!(status.phase, "Failed");
    assert_eq!(
        status.message.as_deref(),
        Some("Metric \"b\" assessed Failed due to failed (1) > failureLimit (0): last measured value [0.5]")
    );
    assert_eq!(status.completed_at, Some(Time(ts(5))));
    assert_eq!(status.started_at, Some(Time(ts(5))));
    let summary = status.run_summary.clone().unwrap();
    assert_eq!(
        (summary.count, summary.successful, summary.failed),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(
        out.metrics,
        vec![
            Transition {
                metric: "a".into(),
                phase: S
            },
            Transition {
                metric: "b".into(),
                phase: F
            }
        ]
    );
}

#[test]
fn run_phase_order_failed_beats_error_beats_inconclusive() {
    let spec = AnalysisRunSpec::default();
    let metrics = [
        with(metric("i"), |m| m.inconclusive_limit = int(0)),
        with(metric("e"), |m| m.consecutive_error_limit = int(0)),
        metric("f"),
    ];
    let mut status = AnalysisRunStatus::default();
    record(&mut status, "i", false, measurement(I, 0), false);
    record(&mut status, "e", false, measurement(E, 0), false);
    assess_run(&spec, &mut status, &metrics, &BTreeSet::new(), ts(1));
    assert_eq!(status.phase, "Error", "a run stops as soon as one metric errors");
    assert!(
        status.message.as_deref().unwrap().starts_with(
            "Metric \"e\" assessed Error due to consecutiveErrors (1) > consecutiveErrorLimit (0)"
        )
    );
    let mut status = AnalysisRunStatus::default();
    record(&mut status, "i", false, measurement(I, 0), false);
    record(&mut status, "f", false, measurement(F, 0), false);
    assess_run(&spec, &mut status, &metrics, &BTreeSet::new(), ts(1));
    assert_eq!(status.phase, "Failed");
}

#[test]
fn running_until_every_metric_completes() {
    let spec = AnalysisRunSpec::default();
    let metrics = [metric("a"), with(metric("b"), |m| m.interval = Some("1m".into()))];
    let mut status = result_of("a", &[S]);
    record(&mut status, "b", false, measurement(S, 0), false);
    let out = assess_run(&spec, &mut status, &metrics, &BTreeSet::new(), ts(1));
    assert_eq!(status.phase, "Running");
    assert_eq!(out.run, Some(Phase::Running));
    let out = assess_run(&spec, &mut status, &metrics, &BTreeSet::new(), ts(2));
    assert_eq!(out.run, None, "an unchanged phase is not a transition");
}

#[test]
fn dry_run_metrics_never_decide_the_phase() {
    let spec = AnalysisRunSpec {
        dry_run: Some(vec![DryRun {
            metric_name: "noisy".into(),
        }]),
        ..Default::default()
    };
    let metrics = [metric("ok"), metric("noisy")];
    let dry = dry_run_metrics(&spec, &metrics).unwrap();
    let mut status = result_of("ok", &[S]);
    record(&mut status, "noisy", true, measurement(F, 0), false);
    assert!(!is_terminating(&spec, &status));
    assess_run(&spec, &mut status, &metrics, &dry, ts(1));
    assert_eq!(status.phase, "Successful");
    assert_eq!(status.run_summary.as_ref().unwrap().count, Some(1));
    let dry_summary = status.dry_run_summary.as_ref().unwrap();
    assert_eq!((dry_summary.count, dry_summary.failed), (Some(1), Some(1)));
    let noisy = status
        .metric_results
        .as_ref()
        .unwrap()
        .iter()
        .find(|r| r.name == "noisy")
        .unwrap();
    assert_eq!(
        noisy.message.as_deref(),
        Some("Metric assessed Failed due to failed (1) > failureLimit (0)")
    );
    assert_eq!(noisy.dry_run, Some(true));
    let all = AnalysisRunSpec {
        dry_run: Some(vec![DryRun {
            metric_name: "*".into(),
        }]),
        ..Default::default()
    };
    assert_eq!(dry_run_metrics(&all, &metrics).unwrap().len(), 2);
    let bad = AnalysisRunSpec {
        dry_run: Some(vec![DryRun {
            metric_name: "nope".into(),
        }]),
        ..Default::default()
    };
    assert!(dry_run_metrics(&bad, &metrics).unwrap_err().contains("'nope'"));
}

#[test]
fn terminate_ends_a_run_successfully_with_run_terminated() {
    let spec = AnalysisRunSpec {
        terminate: Some(true),
        ..Default::default()
    };
    let metrics = [with(metric("a"), |m| m.interval = Some("1s".into()))];
    let mut status = result_of("a", &[S, S]);
    assert!(
        due_tasks(&spec, &status, &metrics, ts(100)).is_empty(),
        "a terminating run measures nothing new"
    );
    assess_run(&spec, &mut status, &metrics, &BTreeSet::new(), ts(3));
    assert_eq!(status.phase, "Successful");
    assert_eq!(status.message.as_deref(), Some("Run Terminated"));
    let mut empty = AnalysisRunStatus::default();
    assess_run(&spec, &mut empty, &metrics, &BTreeSet::new(), ts(3));
    assert_eq!(empty.phase, "Successful", "terminated before any measurement");
}

#[test]
fn measurements_are_due_on_interval_initial_delay_and_error_retry() {
    let spec = AnalysisRunSpec::default();
    let every = with(metric("m"), |m| m.interval = Some("30s".into()));
    let delayed = with(metric("d"), |m| m.initial_delay = Some("1m".into()));
    let metrics = [every.clone(), delayed];
    let mut status = AnalysisRunStatus {
        started_at: Some(Time(ts(0))),
        ..Default::default()
    };
    let due: Vec<usize> = due_tasks(&spec, &status, &metrics, ts(0))
        .iter()
        .map(|t| t.metric)
        .collect();
    assert_eq!(due, vec![0], "the delayed metric waits");
    assert_eq!(next_due(&status, &metrics, ts(0)), Some(ts(60)));
    record(&mut status, "m", false, measurement(S, 0), false);
    assert!(due_tasks(&spec, &status, &metrics[..1], ts(29)).is_empty());
    let task = &due_tasks(&spec, &status, &metrics[..1], ts(31))[0];
    assert_eq!(task.due, ts(30));
    assert_eq!(next_due(&status, &metrics[..1], ts(1)), Some(ts(30)));
    record(&mut status, "m", false, measurement(E, 31), false);
    assert_eq!(
        next_due(&status, &metrics[..1], ts(31)),
        Some(ts(41)),
        "errors retry after 10 s"
    );
    assert_eq!(due_tasks(&spec, &status, &metrics, ts(60)).len(), 2);
    // count reached: nothing more is due
    let once = metric("once");
    let status = result_of("once", &[S]);
    assert!(due_tasks(&spec, &status, std::slice::from_ref(&once), ts(100)).is_empty());
    assert_eq!(next_due(&status, &[once], ts(100)), None);
}

#[test]
fn an_unfinished_measurement_is_resumed_at_its_time() {
    let spec = AnalysisRunSpec::default();
    let m = metric("job");
    let mut status = AnalysisRunStatus::default();
    let running = Measurement {
        phase: "Running".into(),
        started_at: Some(Time(ts(0))),
        resume_at: Some(Time(ts(10))),
        ..Default::default()
    };
    record(&mut status, "job", false, running, false);
    assert!(due_tasks(&spec, &status, std::slice::from_ref(&m), ts(5)).is_empty());
    assert_eq!(next_due(&status, std::slice::from_ref(&m), ts(5)), Some(ts(10)));
    let tasks = due_tasks(&spec, &status, std::slice::from_ref(&m), ts(10));
    assert!(tasks[0].resume.is_some());
    record(&mut status, "job", false, measurement(S, 12), true);
    let r = &status.metric_results.as_ref().unwrap()[0];
    assert_eq!(
        r.measurements.as_ref().unwrap().len(),
        1,
        "the resumed measurement is replaced"
    );
    assert_eq!(assess_metric(&m, r, false), S);
}

#[test]
fn measurement_history_is_trimmed_to_the_retention() {
    let spec = AnalysisRunSpec {
        measurement_retention: Some(vec![MeasurementRetention {
            metric_name: "kept".into(),
            limit: 3,
        }]),
        ..Default::default()
    };
    let metrics = [metric("kept"), metric("default")];
    let keep = retention(&spec, &metrics).unwrap();
    let mut status = result_of("kept", &[S; 20]);
    for i in 0..20 {
        record(&mut status, "default", false, measurement(S, i), false);
    }
    trim_measurements(&mut status, &keep);
    let lens: Vec<usize> = status
        .metric_results
        .unwrap()
        .iter()
        .map(|r| r.measurements.as_ref().unwrap().len())
        .collect();
    assert_eq!(lens, vec![3, DEFAULT_MEASUREMENT_HISTORY]);
}

#[test]
fn metrics_are_validated_with_clear_messages() {
    let cases: &[(Vec<Metric>, Option<&str>)] = &[
        (vec![metric("a")], None),
        (
            vec![metric("a"), metric("a")],
            Some("two metrics have the same name 'a'"),
        ),
        (
            vec![with(metric("a"), |m| m.interval = Some("soon".into()))],
            Some("metrics[0]: invalid interval string"),
        ),
        (
            vec![with(metric("a"), |m| {
                m.count = int(2);
                m.failure_limit = int(3);
                m.interval = Some("1s".into());
            })],
            Some("metrics[0]: count must be >= failureLimit"),
        ),
        (
            vec![with(metric("a"), |m| m.count = int(3))],
            Some("metrics[0]: interval must be specified when count > 1"),
        ),
        (
            vec![with(metric("a"), |m| m.provider = MetricProvider::default())],
            Some("metrics[0]: no provider specified"),
        ),
        (
            vec![with(metric("a"), |m| {
                m.failure_limit = Some(IntOrString::String("x".into()))
            })],
            Some("failureLimit must be an integer"),
        ),
        (vec![], Some("no metrics specified")),
    ];
    for (metrics, want) in cases {
        match (validate_metrics(metrics), want) {
            (Ok(()), None) => {}
            (Err(e), Some(w)) => assert!(e.contains(w), "{e} should contain {w}"),
            (got, want) => panic!("{got:?} vs {want:?}"),
        }
    }
}

#[test]
fn effective_count_as_upstream() {
    assert_eq!(effective_count(&metric("a")), Some(1));
    assert_eq!(
        effective_count(&with(metric("a"), |m| m.interval = Some("1s".into()))),
        None
    );
    assert_eq!(effective_count(&with(metric("a"), |m| m.count = int(4))), Some(4));
}

#[test]
fn ttl_strategy_deadlines() {
    let ttl = TtlStrategy {
        seconds_after_success: Some(60),
        seconds_after_failure: Some(600),
        ..Default::default()
    };
    let spec = AnalysisRunSpec {
        ttl_strategy: Some(ttl),
        ..Default::default()
    };
    let done = |phase: &str| AnalysisRunStatus {
        phase: phase.into(),
        completed_at: Some(Time(ts(0))),
        ..Default::default()
    };
    assert_eq!(ttl_deadline(&spec, &done("Successful")), Some(ts(60)));
    assert_eq!(ttl_deadline(&spec, &done("Failed")), Some(ts(600)));
    assert_eq!(ttl_deadline(&spec, &done("Running")), None);
    let completion = AnalysisRunSpec {
        ttl_strategy: Some(TtlStrategy {
            seconds_after_completion: Some(5),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(ttl_deadline(&completion, &done("Error")), Some(ts(5)));
    assert_eq!(
        ttl_deadline(&AnalysisRunSpec::default(), &done("Successful")),
        None
    );
}

#[test]
fn a_failed_measurement_message_reaches_the_run() {
    let spec = AnalysisRunSpec::default();
    let m = with(metric("m"), |m| m.consecutive_error_limit = int(0));
    let mut status = AnalysisRunStatus::default();
    let errored = finish_measurement(
        &m,
        ts(0),
        Err("Post \"http://prom\": connection refused".into()),
        ts(1),
    );
    assert_eq!(errored.phase, "Error");
    record(&mut status, "m", false, errored, false);
    assess_run(&spec, &mut status, &[m], &BTreeSet::new(), ts(1));
    assert_eq!(status.phase, "Error");
    assert_eq!(
        status.message.as_deref(),
        Some(
            "Metric \"m\" assessed Error due to consecutiveErrors (1) > consecutiveErrorLimit (0): \
             \"Error Message: Post \"http://prom\": connection refused\""
        )
    );
}
