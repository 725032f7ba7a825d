//! The Helm chart (charts/sluice) through the real helm, built from its Go module like the other tools.

use std::{path::PathBuf, process::Command};

use anyhow::{Context, Result, bail};

/// The chart's directory.
pub fn dir() -> PathBuf {
    crate::repo_dir().join("charts/sluice")
}

/// Runs helm with its caches in a directory of their own; its standard output, or an error with what it
/// printed.
pub fn helm(args: &[&str]) -> Result<String> {
    let bin = crate::gitops_tools()?.join("helm");
    let home = std::env::temp_dir().join("sluice-chart-helm");
    let out = Command::new(&bin)
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "helm {args:?} failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(text)
}

/// `helm template` of the chart as release `release` in `namespace` with `--set` values: the objects a
/// `helm install` creates, CRDs aside.
pub fn render(release: &str, namespace: &str, sets: &[&str]) -> Result<String> {
    let chart = dir();
    let mut args = vec![
        "template",
        release,
        chart.to_str().context("chart path")?,
        "--namespace",
        namespace,
    ];
    for s in sets {
        args.extend(["--set", s]);
    }
    helm(&args)
}
