//! `sluice-e2e bench-soak`: N Rollouts cycling through canaries for a while (setWeight 34, an analysis step on
//! the local Prometheus, setWeight 67; each Rollout gets a new image as soon as it is Healthy on the last one),
//! the operator's resident memory sampled every 10 s. Writes the samples (CSV) and their curve (SVG, and a PNG
//! when headless Chromium is installed) and prints the growth after the warm-up. A measurement, not a test.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Result, anyhow};
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use serde_json::json;
use sluice_crds::{analysis::AnalysisTemplate, rollout::Rollout};

use crate::{
    bench::{Operator, Strategy, current_rss, healthy_on, in_chunks, proc_stats, rollout, set_image},
    cluster::{ControlPlane, Options, wait_for},
    harness::{install_crds, kubectl},
    prometheus::{Prometheus, TrafficCounters, success_rate_query},
};

/// The soak's settings.
pub struct Settings {
    /// Directory of the control-plane binaries.
    pub bin_dir: PathBuf,
    /// The operator binary.
    pub sluice: PathBuf,
    /// Rollouts.
    pub count: usize,
    /// Length of the soak.
    pub minutes: u64,
    /// Minutes of warm-up the growth is measured after.
    pub warmup_minutes: u64,
    /// Where the samples and the plot are written.
    pub out: PathBuf,
}

/// One sample: seconds since the Rollouts were created, resident MiB, canary walks completed so far.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Seconds since the start.
    pub secs: f64,
    /// Resident memory, MiB.
    pub rss_mib: f64,
    /// Updates completed (all Rollouts together).
    pub cycles: u64,
}

/// What the soak measured.
#[derive(Debug)]
pub struct Report {
    /// The samples.
    pub samples: Vec<Sample>,
    /// Resident MiB at the end of the warm-up.
    pub at_warmup: f64,
    /// Highest resident MiB after the warm-up.
    pub max_after: f64,
    /// Resident MiB at the end.
    pub at_end: f64,
    /// Operator peak resident memory, MiB, and CPU seconds.
    pub peak_rss_mib: f64,
    /// CPU seconds.
    pub cpu_secs: f64,
}

impl Report {
    /// Growth of the highest sample after the warm-up over the sample at its end, percent.
    pub fn growth_percent(&self) -> f64 {
        (self.max_after - self.at_warmup) / self.at_warmup * 100.0
    }
}

/// The warm-up sample, the highest one after it and the last one.
pub fn summarize(samples: &[Sample], warmup_secs: f64) -> Option<(f64, f64, f64)> {
    let at_warmup = samples.iter().rev().find(|s| s.secs <= warmup_secs)?.rss_mib;
    let max_after = samples
        .iter()
        .filter(|s| s.secs > warmup_secs)
        .map(|s| s.rss_mib)
        .fold(at_warmup, f64::max);
    Some((at_warmup, max_after, samples.last()?.rss_mib))
}

/// The samples as CSV.
pub fn csv(samples: &[Sample]) -> String {
    let mut out = String::from("seconds,rss_mib,cycles\n");
    for s in samples {
        out.push_str(&format!("{:.0},{:.2},{}\n", s.secs, s.rss_mib, s.cycles));
    }
    out
}

/// The resident-memory curve as an SVG line chart (minutes across, MiB up, from 0).
pub fn svg(samples: &[Sample], title: &str) -> String {
    let (w, h, left, bottom) = (900.0, 420.0, 60.0, 40.0);
    let max_t = samples.iter().map(|s| s.secs).fold(60.0, f64::max);
    let max_y = (samples.iter().map(|s| s.rss_mib).fold(1.0, f64::max) * 1.2).ceil();
    let x = |t: f64| left + (w - left - 20.0) * t / max_t;
    let y = |v: f64| (h - bottom) - (h - bottom - 30.0) * v / max_y;
    let points: Vec<String> = samples
        .iter()
        .map(|s| format!("{:.1},{:.1}", x(s.secs), y(s.rss_mib)))
        .collect();
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" \
         font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"18\" font-size=\"14\">{title}</text>\n"
    );
    for i in 0..=4 {
        let v = max_y * f64::from(i) / 4.0;
        out.push_str(&format!(
            "<line x1=\"{left}\" x2=\"{:.0}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{v:.0} MiB</text>\n",
            w - 20.0,
            y(v),
            y(v),
            left - 6.0,
            y(v) + 4.0
        ));
    }
    let minutes = (max_t / 60.0).ceil() as u64;
    let step = (minutes / 6).max(1);
    for m in (0..=minutes).step_by(step as usize) {
        let t = m as f64 * 60.0;
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.0}\" text-anchor=\"middle\">{m} min</text>\n",
            x(t),
            h - bottom + 18.0
        ));
    }
    out.push_str(&format!(
        "<polyline fill=\"none\" stroke=\"#1f6feb\" stroke-width=\"2\" points=\"{}\"/>\n</svg>\n",
        points.join(" ")
    ));
    out
}

/// The soak's AnalysisTemplate: one measurement of the success rate on the local Prometheus.
fn template(prometheus_url: &str) -> AnalysisTemplate {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "success-rate"},
        "spec": {"metrics": [{
            "name": "success-rate",
            "successCondition": "result[0] >= 0.95",
            "provider": {"prometheus": {"address": prometheus_url, "query": success_rate_query("soak")}}
        }]}
    }))
    .expect("valid template")
}

/// Runs the soak.
pub async fn run(settings: &Settings) -> Result<Report> {
    let dir = std::env::temp_dir().join(format!("sluice-bench-soak-{}", std::process::id()));
    eprintln!("bench-soak: starting a control plane");
    let mut cp = ControlPlane::start(&Options {
        dir: dir.clone(),
        bin_dir: settings.bin_dir.clone(),
        nodes: 10,
    })
    .await?;
    let result = soak(&cp, settings, &dir).await;
    cp.stop().await;
    if result.is_ok() {
        std::fs::remove_dir_all(&dir).ok();
    }
    result
}

async fn soak(cp: &ControlPlane, settings: &Settings, dir: &Path) -> Result<Report> {
    let info = &cp.info;
    let client = info.client().await?;
    install_crds(info, &client).await?;
    kubectl(info, &["create", "namespace", "bench"], None)?;
    let traffic = TrafficCounters::start().await?;
    traffic.set_service("soak", 100.0, 0.99);
    let prom = Prometheus::start(&dir.join("prometheus"), &[traffic.address().to_string()]).await?;
    let query = success_rate_query("soak");
    wait_for("Prometheus to answer", Duration::from_secs(60), || async {
        match prom.query_scalar(&query).await? {
            Some(v) if v.is_finite() => Ok(()),
            v => Err(anyhow!("{v:?}")),
        }
    })
    .await?;
    let templates: Api<AnalysisTemplate> = Api::namespaced(client.clone(), "bench");
    templates
        .create(&PostParams::default(), &template(&prom.url))
        .await?;
    let operator = Operator::start(&settings.sluice, &info.kubeconfig, dir, &[]).await?;
    let api: Api<Rollout> = Api::namespaced(client.clone(), "bench");
    let names: Vec<String> = (0..settings.count).map(|i| format!("ro-{i:05}")).collect();
    in_chunks(&names, |n| {
        let api = api.clone();
        let obj = rollout(&n, "app:v1", Strategy::Canary, Some("success-rate"));
        async move { api.create(&PostParams::default(), &obj).await }
    })
    .await?;
    let samples = cycle(&api, &operator, settings).await?;
    let (peak_rss_mib, cpu_secs) = proc_stats(operator.pid).unwrap_or_default();
    operator.stop().await;
    let (at_warmup, max_after, at_end) = summarize(&samples, settings.warmup_minutes as f64 * 60.0)
        .ok_or_else(|| anyhow!("the soak ended before its warm-up"))?;
    write_outputs(settings, &samples).await?;
    Ok(Report {
        samples,
        at_warmup,
        max_after,
        at_end,
        peak_rss_mib,
        cpu_secs,
    })
}

/// Keeps every Rollout walking: one Healthy on its last image gets the next. Samples memory every 10 s.
async fn cycle(api: &Api<Rollout>, operator: &Operator, settings: &Settings) -> Result<Vec<Sample>> {
    let started = Instant::now();
    let length = Duration::from_secs(settings.minutes * 60);
    let mut version: HashMap<String, u64> = HashMap::new();
    let (mut cycles, mut samples, mut next_sample) = (0u64, Vec::new(), Duration::ZERO);
    while started.elapsed() < length {
        if started.elapsed() >= next_sample {
            let rss_mib = current_rss(operator.pid).ok_or_else(|| anyhow!("the operator exited"))?;
            samples.push(Sample {
                secs: started.elapsed().as_secs_f64(),
                rss_mib,
                cycles,
            });
            if samples.len() % 30 == 1 {
                eprintln!(
                    "bench-soak: {:.0} min, {rss_mib:.1} MiB, {cycles} updates done",
                    started.elapsed().as_secs_f64() / 60.0
                );
            }
            next_sample += Duration::from_secs(10);
        }
        let list = match api.list(&ListParams::default()).await {
            Ok(list) => list,
            Err(e) => {
                eprintln!("bench-soak: listing the Rollouts: {e}; again in 2 s");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let mut ready = Vec::new();
        for ro in &list.items {
            let name = ro.metadata.name.clone().unwrap_or_default();
            let v = *version.entry(name.clone()).or_insert(1);
            if healthy_on(ro, &format!("app:v{v}")) {
                ready.push(name);
            }
        }
        for name in &ready {
            let v = version.get_mut(name).expect("seen");
            *v += 1;
            cycles += u64::from(*v > 2);
            set_image(api, std::slice::from_ref(name), &format!("app:v{v}")).await?;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Ok(samples)
}

/// Writes `soak.csv`, `soak.svg` and, with headless Chromium at hand, `soak.png` into the output directory.
async fn write_outputs(settings: &Settings, samples: &[Sample]) -> Result<()> {
    std::fs::create_dir_all(&settings.out)?;
    std::fs::write(settings.out.join("soak.csv"), csv(samples))?;
    let title = format!(
        "sluice resident memory, {} Rollouts cycling through canaries with analysis",
        settings.count
    );
    let svg_path = settings.out.join("soak.svg");
    std::fs::write(&svg_path, svg(samples, &title))?;
    let svg_path = std::fs::canonicalize(&svg_path)?;
    let png = settings.out.join("soak.png");
    let made = tokio::process::Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
        .arg("--window-size=900,420")
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", svg_path.display()))
        .output()
        .await;
    match made {
        Ok(o) if o.status.success() => eprintln!("bench-soak: wrote {}", png.display()),
        _ => eprintln!("bench-soak: no PNG (headless chromium not available); the SVG is there"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64, rss_mib: f64) -> Sample {
        Sample {
            secs,
            rss_mib,
            cycles: 0,
        }
    }

    #[test]
    fn growth_is_measured_from_the_end_of_the_warm_up_to_the_highest_sample_after_it() {
        let samples = [
            s(0.0, 10.0),
            s(590.0, 20.0),
            s(600.0, 20.0),
            s(900.0, 21.0),
            s(1200.0, 20.5),
        ];
        assert_eq!(summarize(&samples, 600.0), Some((20.0, 21.0, 20.5)));
        assert_eq!(summarize(&[], 600.0), None);
    }

    #[test]
    fn the_curve_is_written_as_csv_and_svg() {
        let samples = [s(0.0, 10.0), s(10.0, 12.5)];
        assert_eq!(csv(&samples), "seconds,rss_mib,cycles\n0,10.00,0\n10,12.50,0\n");
        let svg = svg(&samples, "t");
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("0 min"));
    }
}
