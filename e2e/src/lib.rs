//! Sluice's end-to-end support: a local Kubernetes control plane started from binaries, a per-test namespace
//! harness that dumps what it saw when a test fails, and helpers to apply manifests the way users do.

pub mod apps;
pub mod argo_state;
pub mod bench;
pub mod bench_analysis;
pub mod bench_apps;
pub mod bench_soak;
pub mod chart;
pub mod cluster;
pub mod demo;
mod demo_gitops;
mod demo_routers;
mod demo_takeover;
pub mod git_server;
pub mod gohash;
pub mod harness;
pub mod pki;
pub mod plugin;
pub mod process;
pub mod prometheus;
pub mod receiver;
pub mod remote;
pub mod rollouts;
pub mod watch;
pub mod weight_watch;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// The e2e crate's directory (manifests, scripts).
pub fn e2e_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The repository's root directory.
pub fn repo_dir() -> PathBuf {
    e2e_dir()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| e2e_dir().to_path_buf())
}

/// Builds the control-plane binaries once per version (or finds them in the cache) and returns their directory.
pub fn build_bins() -> Result<PathBuf> {
    run_build_script("build-bins.sh")
}

/// Builds `gohash` and `gohash-argo` (e2e/gohash) once per source (or finds them) and returns their directory.
pub fn build_gohash() -> Result<PathBuf> {
    run_build_script("build-gohash.sh")
}

/// Builds `kustomize` and `helm` from their Go modules once per version (or finds them) and returns their
/// directory; the answer is kept for the process.
pub fn gitops_tools() -> Result<PathBuf> {
    static DIR: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| run_build_script("build-gitops-tools.sh").map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

/// Runs a build script of e2e/scripts and returns the directory it prints last.
fn run_build_script(name: &str) -> Result<PathBuf> {
    let script = e2e_dir().join("scripts").join(name);
    let out = std::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!("{} failed ({})", script.display(), out.status);
    }
    let dir = String::from_utf8(out.stdout)?
        .trim()
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    Ok(PathBuf::from(dir))
}
