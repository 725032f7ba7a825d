//! The synthetic traffic of the analysis tests against the real Prometheus: the success-rate query reads back
//! each service's success ratio and follows a change; Prometheus can be stopped, restarted and paused in the
//! middle of a test. The waits are generous bounds for a busy machine, not timings; the times are printed.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use sluice_e2e::{
    cluster::wait_for,
    prometheus::{Prometheus, TrafficCounters, success_rate_query},
};

fn scratch_dir(test: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("sluice-{test}-{}", std::process::id()))
}

/// Waits until the success rate of `service` is within 0.005 of `want`, returning how long that took.
async fn wait_success_rate(
    prom: &Prometheus,
    service: &str,
    want: f64,
    timeout: Duration,
) -> Result<Duration> {
    let started = Instant::now();
    prom.wait_until(&success_rate_query(service), timeout, |v| {
        (v - want).abs() < 0.005
    })
    .await?;
    Ok(started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_rate_query_reads_each_services_ratio_and_follows_a_change() -> Result<()> {
    let traffic = TrafficCounters::start().await?;
    traffic.set_service("good", 50.0, 0.99);
    traffic.set_service("bad", 200.0, 0.80);
    traffic.set_rate("idle", 0.0);
    let dir = scratch_dir("prom-traffic");
    let prom = Prometheus::start(&dir, &[traffic.address().to_string()]).await?;

    let took = wait_success_rate(&prom, "good", 0.99, Duration::from_secs(40)).await?;
    eprintln!("good read 0.99 after {took:?}");
    wait_success_rate(&prom, "bad", 0.80, Duration::from_secs(10)).await?;
    let idle = prom.query_scalar(&success_rate_query("idle")).await?;
    assert!(idle.is_some_and(f64::is_nan), "no requests: NaN, got {idle:?}");
    let unknown = prom.query_scalar(&success_rate_query("nobody")).await?;
    assert_eq!(unknown, None, "a service never served: an empty vector");

    // Counters only grow.
    let (ok, failed) = traffic.totals("bad").ok_or_else(|| anyhow!("bad is served"))?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok2, failed2) = traffic.totals("bad").ok_or_else(|| anyhow!("bad is served"))?;
    assert!(
        ok2 > ok && failed2 > failed,
        "({ok}, {failed}) then ({ok2}, {failed2})"
    );

    // The good service turns bad: the 10 s window follows within about ten scrapes, passing through values
    // in between.
    traffic.set_success_ratio("good", 0.80);
    let took = wait_success_rate(&prom, "good", 0.80, Duration::from_secs(40)).await?;
    eprintln!("good read 0.80 {took:?} after the change");
    let bad = prom.query_scalar(&success_rate_query("bad")).await?;
    assert!(
        bad.is_some_and(|v| (v - 0.80).abs() < 0.005),
        "bad unchanged: {bad:?}"
    );

    // And back.
    traffic.set_success_ratio("good", 0.99);
    wait_success_rate(&prom, "good", 0.99, Duration::from_secs(40)).await?;

    // A service that is no longer served drops out of the query once the window has passed.
    traffic.remove_service("bad");
    wait_for("bad to drop out", Duration::from_secs(40), || async {
        match prom.query_scalar(&success_rate_query("bad")).await? {
            None => Ok(()),
            v => Err(anyhow!("{v:?}")),
        }
    })
    .await?;

    drop(prom);
    std::fs::remove_dir_all(dir).ok();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stops_restarts_on_the_same_port_and_pauses() -> Result<()> {
    let traffic = TrafficCounters::start().await?;
    traffic.set_service("canary", 100.0, 0.99);
    let dir = scratch_dir("prom-restart");
    let mut prom = Prometheus::start(&dir, &[traffic.address().to_string()]).await?;
    wait_success_rate(&prom, "canary", 0.99, Duration::from_secs(40)).await?;
    let url = prom.url.clone();
    let pid = prom
        .pid()
        .ok_or_else(|| anyhow!("a running prometheus has a pid"))?;

    let stopped_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    prom.stop();
    assert!(!prom.is_running());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z")),
        "prometheus {pid} is gone"
    );
    match prom.query("up").await {
        Ok(data) => bail!("a stopped prometheus answered {data}"),
        Err(e) => {
            let chain = format!("{e:?}");
            assert!(chain.contains("onnect"), "a connection error: {chain}");
        }
    }
    prom.stop(); // stopping twice does nothing

    // Traffic goes on while Prometheus is down; after the restart the rate is back within a few scrapes.
    traffic.set_success_ratio("canary", 0.80);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    prom.restart().await?;
    eprintln!("restarted in {:?}", started.elapsed());
    assert_eq!(prom.url, url, "same port");
    assert!(prom.is_running());
    let took = wait_success_rate(&prom, "canary", 0.80, Duration::from_secs(40)).await?;
    eprintln!("read 0.80 {took:?} after the restart");
    // Samples scraped before the stop are still there.
    let before = prom
        .query(&format!(
            "count_over_time(http_requests_total{{service=\"canary\",code=\"200\"}}[5m] @ {stopped_at})"
        ))
        .await?;
    let samples: f64 = before["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("{before}"))?;
    assert!(samples >= 1.0, "samples from before the stop are kept: {samples}");

    // A paused Prometheus accepts connections but never answers.
    prom.pause()?;
    let hung = tokio::time::timeout(Duration::from_secs(2), prom.query("up")).await;
    assert!(hung.is_err(), "a paused prometheus does not answer: {hung:?}");
    prom.resume()?;
    wait_success_rate(&prom, "canary", 0.80, Duration::from_secs(40)).await?;

    drop(prom);
    std::fs::remove_dir_all(dir).ok();
    Ok(())
}
