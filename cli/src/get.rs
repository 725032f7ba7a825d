//! `get rollout` and `list rollouts`: once, or redrawn on every watch event with `--watch`.

use std::{io::IsTerminal, io::Write, time::Duration};

use anyhow::Result;
use futures::StreamExt;
use jiff::Timestamp;
use sluice_crds::rollout::Rollout;
use tokio::time::{Instant, sleep_until};

use crate::{
    Outcome,
    client::KubeFlags,
    fetch::{self, Live},
    info::{Owned, RolloutInfo, build::rollout_info},
    render,
};

/// `get ...`.
#[derive(Debug, clap::Subcommand)]
pub enum GetCommand {
    /// Get details about a rollout
    #[command(alias = "rollouts", alias = "ro")]
    Rollout(GetRolloutArgs),
}

/// `get rollout NAME`.
#[derive(Debug, clap::Args)]
pub struct GetRolloutArgs {
    /// The Rollout.
    pub name: String,
    /// Watch live updates to the rollout
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Do not colorize output
    #[arg(long)]
    pub no_color: bool,
    /// Timeout after specified seconds
    #[arg(long, default_value_t = 0)]
    pub timeout_seconds: u64,
}

/// `list ...`.
#[derive(Debug, clap::Subcommand)]
pub enum ListCommand {
    /// List rollouts
    #[command(alias = "rollout", alias = "ro")]
    Rollouts(ListRolloutsArgs),
}

/// `list rollouts`.
#[derive(Debug, clap::Args)]
pub struct ListRolloutsArgs {
    /// Include all namespaces
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only show rollout with specified name
    #[arg(long)]
    pub name: Option<String>,
    /// Watch for changes
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Print timestamps on updates
    #[arg(long)]
    pub timestamps: bool,
}

/// Upstream colours unless `--no-color` or `TERM=dumb`.
fn colour_wanted(no_color: bool) -> bool {
    !no_color && std::env::var("TERM").as_deref() != Ok("dumb")
}

/// Upstream's flicker guard: redraws at most this often, however fast events come.
const MIN_REDRAW: Duration = Duration::from_millis(200);

/// Clears the screen and homes the cursor (upstream's sequence); hides the cursor while watching.
const CLEAR: &str = "\x1b[H\x1b[2J\x1b[0;0H";
const HIDE_CURSOR: &str = "\x1b[?25l";
const SHOW_CURSOR: &str = "\x1b[?25h";

/// How a watch ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Ctrl-C.
    Interrupted,
    /// The timeout passed.
    TimedOut,
    /// The caches stopped (the connection is gone for good).
    Closed,
}

/// Resolves once `limit` has passed; never without one.
pub async fn after(limit: Option<Duration>) {
    match limit {
        Some(t) => tokio::time::sleep(t).await,
        None => std::future::pending().await,
    }
}

/// Ctrl-C, armed at once: from the moment this returns, a ^C resolves the future instead of ending the
/// process with the default action (a handler installed on first poll would miss a ^C that comes earlier).
pub fn interrupt() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) {
        Ok(mut signal) => Box::pin(async move {
            signal.recv().await;
        }),
        // No handler: ^C keeps its default action, which ends the process as well.
        Err(_) => Box::pin(std::future::pending()),
    }
}

/// Calls `frame` now and after every change of `live` (coalesced, at most every 200 ms) until `interrupt`
/// (Ctrl-C), the timeout, or the caches close. Event-driven: nothing runs between changes.
pub async fn follow(
    live: &Live,
    timeout: Option<Duration>,
    mut interrupt: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    mut frame: impl FnMut(&Live),
) -> End {
    let mut changes = live.changes();
    let deadline = after(timeout);
    tokio::pin!(deadline);
    loop {
        changes.borrow_and_update();
        frame(live);
        let earliest = Instant::now() + MIN_REDRAW;
        tokio::select! {
            r = changes.changed() => if r.is_err() { return End::Closed },
            _ = &mut interrupt => return End::Interrupted,
            _ = &mut deadline => return End::TimedOut,
        }
        tokio::select! {
            _ = sleep_until(earliest) => {}
            _ = &mut interrupt => return End::Interrupted,
            _ = &mut deadline => return End::TimedOut,
        }
    }
}

/// The view of the Rollout named, from what `live` holds (None once it is deleted).
fn live_info(live: &Live, ns: &str, name: &str, now: Timestamp) -> Option<RolloutInfo> {
    let ro = live
        .rollouts()
        .into_iter()
        .find(|r| r.metadata.name.as_deref() == Some(name) && r.metadata.namespace.as_deref() == Some(ns))?;
    Some(rollout_info(&ro, &live.owned(), now))
}

/// Runs `get`.
pub async fn get(kube: &KubeFlags, c: GetCommand) -> Result<Outcome> {
    let GetCommand::Rollout(a) = c;
    let interrupted = a.watch.then(interrupt);
    let ctx = kube.connect().await?;
    let ro = fetch::rollout(&ctx.client, &ctx.namespace, &a.name).await?;
    if !a.watch {
        let owned = fetch::owned(&ctx.client, Some(&ctx.namespace)).await?;
        let now = Timestamp::now();
        print!(
            "{}",
            render::tree(&rollout_info(&ro, &owned, now), now, colour_wanted(a.no_color))
        );
        return Ok(Outcome::Ok);
    }
    let interrupted = interrupted.unwrap_or_else(interrupt);
    let live = Live::start(&ctx.client, Some(&ctx.namespace)).await?;
    let terminal = std::io::stdout().is_terminal();
    // Piped, a watch prints each new tree as plain text: no escape codes at all.
    let colour = terminal && colour_wanted(a.no_color);
    let timeout = (a.timeout_seconds > 0).then(|| Duration::from_secs(a.timeout_seconds));
    let mut out = std::io::stdout().lock();
    if terminal {
        let _ = write!(out, "{HIDE_CURSOR}");
    }
    let mut last = String::new();
    follow(&live, timeout, interrupted, |live| {
        let now = Timestamp::now();
        let Some(info) = live_info(live, &ctx.namespace, &a.name, now) else {
            return;
        };
        let text = render::tree(&info, now, colour);
        if terminal {
            let _ = write!(out, "{CLEAR}{text}");
        } else if text != last {
            let _ = writeln!(out, "{text}");
        }
        let _ = out.flush();
        last = text;
    })
    .await;
    if terminal {
        let _ = write!(out, "{SHOW_CURSOR}");
        let _ = out.flush();
    }
    Ok(Outcome::Ok)
}

/// The `list` rows of `rollouts` (the list reads only the Rollouts themselves, as upstream's does).
fn list_infos(rollouts: &[Rollout], name: Option<&str>, now: Timestamp) -> Vec<RolloutInfo> {
    let none = Owned::default();
    rollouts
        .iter()
        .filter(|r| name.is_none_or(|n| r.metadata.name.as_deref() == Some(n)))
        .map(|r| rollout_info(r, &none, now))
        .collect()
}

/// The table without its header line: the rows a watch prints as Rollouts change.
fn rows(infos: &[RolloutInfo], all_namespaces: bool, timestamps: bool) -> String {
    let table = render::list(infos, all_namespaces, timestamps);
    table
        .split_once('\n')
        .map(|(_, rest)| rest.to_string())
        .unwrap_or_default()
}

/// Runs `list`: the table, then with `--watch` a row for every Rollout whose row changed.
pub async fn list(kube: &KubeFlags, c: ListCommand) -> Result<Outcome> {
    let ListCommand::Rollouts(a) = c;
    let mut interrupt = a.watch.then(interrupt);
    let ctx = kube.connect().await?;
    let ns = (!a.all_namespaces).then_some(ctx.namespace.as_str());
    let rollouts = fetch::rollouts(&ctx.client, ns).await?;
    let infos = list_infos(&rollouts, a.name.as_deref(), Timestamp::now());
    if infos.is_empty() && !a.watch {
        eprintln!("No resources found.");
        return Ok(Outcome::Ok);
    }
    if infos.is_empty() {
        print!("{}", render::list_header(a.all_namespaces, a.timestamps));
    } else {
        print!("{}", render::list(&infos, a.all_namespaces, a.timestamps));
    }
    if !a.watch {
        return Ok(Outcome::Ok);
    }
    let key = |i: &RolloutInfo| (i.namespace.clone(), i.name.clone());
    let mut printed: std::collections::HashMap<_, _> = infos
        .iter()
        .map(|i| (key(i), rows(std::slice::from_ref(i), a.all_namespaces, false)))
        .collect();
    let updates = fetch::rollout_updates(&ctx.client, ns, a.name.as_deref());
    tokio::pin!(updates);
    let mut interrupt = interrupt
        .take()
        .unwrap_or_else(|| Box::pin(std::future::pending()));
    loop {
        let ro = tokio::select! {
            Some(ro) = updates.next() => ro,
            _ = &mut interrupt => return Ok(Outcome::Ok),
        };
        let info = rollout_info(&ro, &Owned::default(), Timestamp::now());
        let row = rows(std::slice::from_ref(&info), a.all_namespaces, false);
        if printed.get(&key(&info)) != Some(&row) {
            print!(
                "{}",
                rows(std::slice::from_ref(&info), a.all_namespaces, a.timestamps)
            );
            let _ = std::io::stdout().flush();
            printed.insert(key(&info), row);
        }
    }
}
