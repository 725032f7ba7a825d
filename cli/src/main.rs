//! `kubectl-sluice`: the kubectl plugin of Sluice, with the commands, flags, output and exit codes of
//! `kubectl argo rollouts`. Installed on PATH it runs as `kubectl sluice ...`.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

mod actions;
mod client;
mod commands;
mod dashboard;
mod fetch;
mod get;
mod info;
mod lint;
mod render;
mod status;

/// Manage Sluice and Argo Rollouts rollouts.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-sluice",
    bin_name = "kubectl sluice",
    about = "Manage rollouts (Sluice and Argo Rollouts)",
    long_about = "This command consists of multiple subcommands which can be used to manage rollouts.",
    disable_version_flag = true
)]
struct Cli {
    #[command(flatten)]
    kube: client::KubeFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Get details about rollouts and experiments
    #[command(subcommand)]
    Get(get::GetCommand),
    /// List rollouts or experiments
    #[command(subcommand)]
    List(get::ListCommand),
    /// Show the status of a rollout
    Status(status::StatusArgs),
    /// Promote a rollout
    Promote(commands::PromoteArgs),
    /// Abort a rollout
    Abort(commands::NameArg),
    /// Retry a rollout or experiment
    #[command(subcommand)]
    Retry(commands::RetryCommand),
    /// Pause a rollout
    Pause(commands::NameArg),
    /// Resume a paused rollout
    Resume(commands::NameArg),
    /// Restart the pods of a rollout
    Restart(commands::RestartArgs),
    /// Update various values on resources
    #[command(subcommand)]
    Set(commands::SetCommand),
    /// Undo a rollout
    Undo(commands::UndoArgs),
    /// Lint and validate a Rollout
    Lint(lint::LintArgs),
    /// Start UI dashboard
    Dashboard(DashboardArgs),
    /// Print version
    Version(VersionArgs),
    /// Generate completion script
    Completion(CompletionArgs),
}

#[derive(Debug, clap::Args)]
struct DashboardArgs {
    /// port to listen on
    #[arg(short = 'p', long, default_value_t = 3100)]
    port: u16,
    /// root path of the dashboard
    #[arg(long, default_value = "rollouts")]
    root_path: String,
}

#[derive(Debug, clap::Args)]
struct VersionArgs {
    /// print just the version number
    #[arg(long)]
    short: bool,
}

#[derive(Debug, clap::Args)]
struct CompletionArgs {
    /// bash, zsh, fish or powershell
    shell: clap_complete::Shell,
}

/// The version line, as upstream prints it (`kubectl-argo-rollouts: v1.8.3+...`).
fn version(short: bool) -> String {
    let v = concat!("v", env!("CARGO_PKG_VERSION"));
    if short {
        format!("kubectl-sluice: {v}\n")
    } else {
        format!(
            "kubectl-sluice: {v}\n  BuildDate: unknown\n  GitCommit: unknown\n  GitTreeState: unknown\n  GoVersion: none (Rust)\n  Compiler: rustc\n  Platform: {}/{}\n",
            std::env::consts::OS,
            go_arch(std::env::consts::ARCH)
        )
    }
}

/// Go's name of an architecture, as upstream's `version` prints it.
fn go_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// What a command ended with: upstream's cobra prints "Error: <message>" and exits 1.
#[derive(Debug)]
pub enum Outcome {
    /// Exit 0.
    Ok,
    /// Exit with this code, having printed what there was to print.
    Code(u8),
}

async fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let kube = cli.kube;
    match cli.command {
        Command::Version(a) => {
            print!("{}", version(a.short));
            Ok(Outcome::Ok)
        }
        Command::Completion(a) => {
            let mut cmd = Cli::command();
            clap_complete::generate(a.shell, &mut cmd, "kubectl-sluice", &mut std::io::stdout());
            Ok(Outcome::Ok)
        }
        Command::Lint(a) => lint::run(a),
        Command::Get(c) => get::get(&kube, c).await,
        Command::List(c) => get::list(&kube, c).await,
        Command::Status(a) => status::run(&kube.connect().await?, a).await,
        Command::Promote(a) => commands::promote(&kube.connect().await?, a).await,
        Command::Abort(a) => commands::abort(&kube.connect().await?, a).await,
        Command::Retry(c) => commands::retry(&kube.connect().await?, c).await,
        Command::Pause(a) => commands::pause(&kube.connect().await?, a).await,
        Command::Resume(a) => commands::resume(&kube.connect().await?, a).await,
        Command::Restart(a) => commands::restart(&kube.connect().await?, a).await,
        Command::Set(c) => commands::set(&kube.connect().await?, c).await,
        Command::Undo(a) => commands::undo(&kube.connect().await?, a).await,
        Command::Dashboard(a) => {
            dashboard::serve(kube.connect().await?, a.port, a.root_path).await?;
            Ok(Outcome::Ok)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Code(c)) => ExitCode::from(c),
        Err(e) => {
            eprintln!("Error: {}", commands::describe(&e));
            ExitCode::from(1)
        }
    }
}
