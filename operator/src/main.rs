//! `sluice`: the progressive-delivery operator.

// The global allocator is an `unsafe impl` by nature; each call is passed on unchanged.
#[allow(unsafe_code)]
mod alloc;
mod analysisrun;
mod apicount;
mod application;
mod backoff;
mod events;
mod experiment;
mod leader;
mod metrics;
mod notifications;
mod packed;
mod ready;
mod rollout;
mod run;
mod scope;
mod status_patch;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

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
    /// Measures the Rollout planner alone: N observed Rollouts in memory planned round after round; prints
    /// plans per second and heap allocations per plan.
    BenchPlanner {
        /// Observed Rollouts held in memory.
        #[arg(long, default_value_t = 10_000)]
        rollouts: usize,
        /// Rounds of planning every one of them.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
    },
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
        Command::BenchPlanner { rollouts, rounds } => {
            eprintln!("bench-planner: building {rollouts} observed Rollouts");
            alloc::counting(true);
            let r = rollout::plan_bench::run(rollouts, rounds, alloc::allocations);
            alloc::counting(false);
            println!("rollouts  plans  seconds  plans/s  allocations/plan  actions/plan");
            println!(
                "{:>8}  {:>5}  {:>7.2}  {:>7.0}  {:>16.1}  {:>12.2}",
                r.rollouts,
                r.plans,
                r.elapsed.as_secs_f64(),
                r.plans_per_second(),
                r.allocations_per_plan(),
                r.actions as f64 / r.plans.max(1) as f64
            );
            Ok(())
        }
        Command::Run(args) => {
            alloc::one_arena();
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
