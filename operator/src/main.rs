//! `sluice`: the progressive-delivery operator.

mod analysisrun;
mod apicount;
mod application;
mod backoff;
mod events;
mod experiment;
mod leader;
mod metrics;
mod notifications;
mod ready;
mod rollout;
mod run;
mod scope;
mod status_patch;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "Progressive delivery for Kubernetes, compatible with Argo Rollouts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Prints the CRDs (Rollout, AnalysisTemplate, ClusterAnalysisTemplate, AnalysisRun, Experiment,
    /// Application, AppProject) as YAML, or writes one file per CRD into --dir.
    Crd {
        /// Write `<plural>.yaml` files into this directory instead of printing.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Runs the controllers.
    Run(Box<run::Args>),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { dir: None } => {
            print!("{}", sluice_crds::all_yaml());
            Ok(())
        }
        Command::Crd { dir: Some(dir) } => {
            std::fs::create_dir_all(&dir)?;
            for (file, crd) in sluice_crds::all() {
                let path = dir.join(file);
                std::fs::write(&path, sluice_crds::to_yaml(&crd))
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
        Command::Run(args) => {
            run::init_logging(&args.log_level);
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            if let Err(e) = rt.block_on(run::run(*args)) {
                tracing::error!(error = format!("{e:#}"), "sluice run failed");
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
