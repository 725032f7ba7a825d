//! `sluice-e2e`: starts and stops the local control plane, runs the benchmarks and the demo.

use std::{path::PathBuf, time::Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use sluice_e2e::cluster::{ClusterInfo, ControlPlane, Options};

#[derive(Parser)]
#[command(
    name = "sluice-e2e",
    about = "The local Kubernetes control plane of Sluice's end-to-end tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Control-plane lifecycle.
    Cluster {
        #[command(subcommand)]
        action: ClusterCmd,
    },
    /// Benchmarks: N Rollouts of 3 replicas through a 3-step canary with 0-second pauses.
    Bench {
        /// Number of rollouts per run; repeat for several runs (e.g. --count 200 --count 1000).
        #[arg(long, default_values_t = [200usize])]
        count: Vec<usize>,
        /// The strategy of the Rollouts: a 3-step canary, or blue-green with an active Service each.
        #[arg(long, value_enum, default_value_t = sluice_e2e::bench::Strategy::Canary)]
        strategy: sluice_e2e::bench::Strategy,
        /// Directory of the control-plane binaries (default: built or found by e2e/scripts/build-bins.sh).
        #[arg(long, env = "SLUICE_BIN_DIR")]
        bin_dir: Option<PathBuf>,
        /// The operator binary (default: `sluice` next to this binary; build it with --release to measure it).
        #[arg(long, env = "SLUICE_BINARY")]
        sluice: Option<PathBuf>,
    },
    /// Benchmarks: N AnalysisRuns measuring a Prometheus query every second; throughput, delay, cost.
    BenchAnalysis {
        /// Number of analysis runs per run; repeat for several runs (e.g. --count 100 --count 1000).
        #[arg(long, default_values_t = [100usize])]
        count: Vec<usize>,
        /// Length of the measuring window, which starts once every run has its first measurement.
        #[arg(long, default_value_t = 120)]
        seconds: u64,
        /// Keep each run's working directory (operator, Prometheus and control-plane logs).
        #[arg(long)]
        keep: bool,
        /// Directory of the control-plane binaries (default: built or found by e2e/scripts/build-bins.sh).
        #[arg(long, env = "SLUICE_BIN_DIR")]
        bin_dir: Option<PathBuf>,
        /// The operator binary (default: `sluice` next to this binary; build it with --release to measure it).
        #[arg(long, env = "SLUICE_BINARY")]
        sluice: Option<PathBuf>,
    },
    /// Benchmarks: N Argo CD Applications of 10 resources each from one Git repository; time to all Synced and
    /// Healthy, memory, CPU, and the API requests of a refresh when nothing changed.
    BenchApps {
        /// Number of Applications per run; repeat for several runs (e.g. --count 100 --count 1000).
        #[arg(long, default_values_t = [100usize])]
        count: Vec<usize>,
        /// The operator's --app-resync (seconds between refreshes of an unchanged Application).
        #[arg(long, default_value_t = 30)]
        resync: u64,
        /// Length of the idle window after all are synced, seconds (three resync periods by default).
        #[arg(long, default_value_t = 90)]
        idle: u64,
        /// Generate the Applications with one ApplicationSet (a Git directories generator over the
        /// repository's paths) instead of creating each one.
        #[arg(long)]
        appset: bool,
        /// Directory of the control-plane binaries (default: built or found by e2e/scripts/build-bins.sh).
        #[arg(long, env = "SLUICE_BIN_DIR")]
        bin_dir: Option<PathBuf>,
        /// The operator binary (default: `sluice` next to this binary; build it with --release to measure it).
        #[arg(long, env = "SLUICE_BINARY")]
        sluice: Option<PathBuf>,
    },
    /// Soak: N Rollouts cycling through canaries with analysis on the local Prometheus for a while, the
    /// operator's resident memory sampled every 10 s; writes soak.csv, soak.svg and soak.png to --out.
    BenchSoak {
        /// Number of Rollouts.
        #[arg(long, default_value_t = 200)]
        count: usize,
        /// Length of the soak, minutes.
        #[arg(long, default_value_t = 60)]
        minutes: u64,
        /// Warm-up, minutes: growth is measured from its end.
        #[arg(long, default_value_t = 10)]
        warmup: u64,
        /// Where the samples and the plot go.
        #[arg(long, default_value = "target/soak")]
        out: PathBuf,
        /// Directory of the control-plane binaries (default: built or found by e2e/scripts/build-bins.sh).
        #[arg(long, env = "SLUICE_BIN_DIR")]
        bin_dir: Option<PathBuf>,
        /// The operator binary (default: `sluice` next to this binary; build it with --release to measure it).
        #[arg(long, env = "SLUICE_BINARY")]
        sluice: Option<PathBuf>,
    },
    /// Starts a control plane, installs the CRDs, runs the operator and walks a sample Rollout, narrating.
    Demo {
        /// Directory of the control-plane binaries (default: built or found by e2e/scripts/build-bins.sh).
        #[arg(long, env = "SLUICE_BIN_DIR")]
        bin_dir: Option<PathBuf>,
        /// The operator binary (default: `sluice` next to this binary).
        #[arg(long, env = "SLUICE_BINARY")]
        sluice: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ClusterCmd {
    /// Starts a cluster and supervises it until SIGTERM/SIGINT (or, with --watch-stdin, until stdin closes).
    /// Prints one JSON line with the kubeconfig path once the cluster is ready.
    Up {
        /// Working directory (default: a new directory under $TMPDIR).
        #[arg(long, env = "SLUICE_E2E_DIR")]
        dir: Option<PathBuf>,
        /// Directory of the control-plane binaries (default: built or found by e2e/scripts/build-bins.sh).
        #[arg(long, env = "SLUICE_BIN_DIR")]
        bin_dir: Option<PathBuf>,
        /// Number of kwok nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Stop when standard input reaches end of file (how tests tie the cluster's life to theirs).
        #[arg(long)]
        watch_stdin: bool,
        /// Keep the working directory (logs, data) after stopping.
        #[arg(long)]
        keep: bool,
    },
    /// Stops the cluster supervised in DIR.
    Down {
        /// The cluster's working directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Runs the Rollout benchmark once per count and prints each run's request tables, then one summary line per
/// run.
fn print_bench(
    rt: &tokio::runtime::Runtime,
    bin_dir: &std::path::Path,
    sluice: &std::path::Path,
    count: Vec<usize>,
    strategy: sluice_e2e::bench::Strategy,
) -> Result<()> {
    let mut reports = Vec::new();
    for n in count {
        let r = rt.block_on(sluice_e2e::bench::run(bin_dir.to_path_buf(), sluice, n, strategy))?;
        let steps = match strategy {
            sluice_e2e::bench::Strategy::Canary => sluice_e2e::bench::CANARY_STEPS,
            sluice_e2e::bench::Strategy::BlueGreen => 0,
        };
        println!("--- {} rollouts", r.count);
        print!("{}", r.breakdown("first deploy", &r.deploy, 0));
        print!("{}", r.breakdown("update walk", &r.update, steps));
        reports.push(r);
    }
    println!(
        "rollouts  first-deploy-s  update-walk-s  idle-rss-MiB  peak-rss-MiB  KiB/rollout  cpu-s  \
         api-requests/rollout  step->weight-p50-ms  p99-ms"
    );
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0}", v * 1000.0));
    for r in reports {
        println!(
            "{:>8}  {:>14.1}  {:>13.1}  {:>12.1}  {:>12.1}  {:>11.1}  {:>5.1}  {:>20.1}  {:>19}  {:>6}",
            r.count,
            r.deploy_secs,
            r.update_secs,
            r.idle_rss_mib,
            r.peak_rss_mib,
            r.marginal_kib(),
            r.cpu_secs,
            r.requests_per_rollout(),
            ms(r.step_latency.1),
            ms(r.step_latency.2),
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // One thread: components get SIGKILL when the thread that spawned them dies (see process.rs).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Cmd::Cluster {
            action:
                ClusterCmd::Up {
                    dir,
                    bin_dir,
                    nodes,
                    watch_stdin,
                    keep,
                },
        } => rt.block_on(up(dir, bin_dir, nodes, watch_stdin, keep)),
        Cmd::Cluster {
            action: ClusterCmd::Down { dir },
        } => down(&dir),
        Cmd::Bench {
            count,
            strategy,
            bin_dir,
            sluice,
        } => {
            let (bin_dir, sluice) = binaries(bin_dir, sluice)?;
            print_bench(&rt, &bin_dir, &sluice, count, strategy)
        }
        Cmd::BenchSoak {
            count,
            minutes,
            warmup,
            out,
            bin_dir,
            sluice,
        } => {
            let (bin_dir, sluice) = binaries(bin_dir, sluice)?;
            let settings = sluice_e2e::bench_soak::Settings {
                bin_dir,
                sluice,
                count,
                minutes,
                warmup_minutes: warmup,
                out,
            };
            let r = rt.block_on(sluice_e2e::bench_soak::run(&settings))?;
            let cycles = r.samples.last().map_or(0, |s| s.cycles);
            println!(
                "rollouts  minutes  updates  rss-at-{warmup}-min-MiB  max-after-MiB  end-MiB  growth-%  peak-rss-MiB  cpu-s"
            );
            println!(
                "{count:>8}  {minutes:>7}  {cycles:>7}  {:>19.1}  {:>13.1}  {:>7.1}  {:>8.1}  {:>12.1}  {:>5.1}",
                r.at_warmup,
                r.max_after,
                r.at_end,
                r.growth_percent(),
                r.peak_rss_mib,
                r.cpu_secs
            );
            Ok(())
        }
        Cmd::BenchAnalysis {
            count,
            seconds,
            keep,
            bin_dir,
            sluice,
        } => {
            let (bin_dir, sluice) = binaries(bin_dir, sluice)?;
            println!("{}", sluice_e2e::bench_analysis::Report::HEADER);
            for n in count {
                let r = rt.block_on(sluice_e2e::bench_analysis::run(
                    bin_dir.clone(),
                    &sluice,
                    n,
                    seconds,
                    keep,
                ))?;
                println!("{r}");
            }
            Ok(())
        }
        Cmd::BenchApps {
            count,
            resync,
            idle,
            appset,
            bin_dir,
            sluice,
        } => {
            let (bin_dir, sluice) = binaries(bin_dir, sluice)?;
            let settings = sluice_e2e::bench_apps::Settings {
                bin_dir,
                sluice,
                resync,
                idle,
                appset,
            };
            println!("{}", sluice_e2e::bench_apps::HEADER);
            for n in count {
                let r = rt.block_on(sluice_e2e::bench_apps::run(&settings, n))?;
                println!("{}", r.row());
            }
            Ok(())
        }
        Cmd::Demo { bin_dir, sluice } => {
            let (bin_dir, sluice) = binaries(bin_dir, sluice)?;
            rt.block_on(sluice_e2e::demo::run(bin_dir, &sluice))
        }
    }
}

async fn up(
    dir: Option<PathBuf>,
    bin_dir: Option<PathBuf>,
    nodes: usize,
    watch_stdin: bool,
    keep: bool,
) -> Result<()> {
    let bin_dir = match bin_dir {
        Some(d) => d,
        None => sluice_e2e::build_bins()?,
    };
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join(format!("sluice-e2e-{}", std::process::id())));
    let started = Instant::now();
    let mut cp = match ControlPlane::start(&Options {
        dir: dir.clone(),
        bin_dir,
        nodes,
    })
    .await
    {
        Ok(cp) => cp,
        Err(e) => {
            eprintln!(
                "cluster failed to start: {e:#}\nlogs are in {}",
                dir.join("logs").display()
            );
            std::process::exit(1);
        }
    };
    eprintln!(
        "cluster ready in {:.1}s: export KUBECONFIG={}",
        started.elapsed().as_secs_f64(),
        cp.info.kubeconfig.display()
    );
    println!("{}", serde_json::to_string(&cp.info)?);

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // A plain thread reads stdin (a blocking read that never returns while the pipe is open must not hold up
    // the runtime's shutdown) and reports end of file.
    let (eof_tx, eof_rx) = tokio::sync::oneshot::channel::<()>();
    if watch_stdin {
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin();
            while matches!(std::io::Read::read(&mut stdin, &mut buf), Ok(n) if n > 0) {}
            let _ = eof_tx.send(());
        });
    }
    let stdin_closed = async {
        if eof_rx.await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let reason = tokio::select! {
        _ = term.recv() => "SIGTERM".to_string(),
        _ = tokio::signal::ctrl_c() => "SIGINT".to_string(),
        _ = stdin_closed => "stdin closed".to_string(),
        exited = cp.wait_any_exit() => {
            let name = exited.split_whitespace().next().unwrap_or_default().to_string();
            format!("{exited}; last log lines:\n{}", cp.log_tail(&name, 20))
        }
    };
    eprintln!("stopping cluster: {reason}");
    cp.stop().await;
    if !keep {
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(())
}

/// The control-plane binaries' directory (built or found in the cache when not given) and the operator binary
/// (`sluice` next to this one when not given).
fn binaries(bin_dir: Option<PathBuf>, sluice: Option<PathBuf>) -> Result<(PathBuf, PathBuf)> {
    let bin_dir = match bin_dir {
        Some(d) => d,
        None => sluice_e2e::build_bins()?,
    };
    let sluice = match sluice {
        Some(s) => s,
        None => std::env::current_exe()?.with_file_name("sluice"),
    };
    Ok((bin_dir, sluice))
}

fn down(dir: &std::path::Path) -> Result<()> {
    let path = dir.join("cluster.json");
    let info: ClusterInfo = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("no cluster at {}", dir.display()))?,
    )?;
    let pid = info.supervisor_pid.to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()?;
    // Gone, or a zombie waiting for its parent to reap it.
    let running = || pid.parse().is_ok_and(sluice_e2e::process::alive);
    for _ in 0..100 {
        if !running() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    anyhow::bail!("supervisor {pid} did not stop within 10 s")
}
