//! `status NAME [--watch] [--timeout]`: prints `Phase - message` lines and exits as upstream does: 0 once
//! Healthy, 1 with "The rollout is in a degraded state with message: ..." once Degraded, 1 with "Rollout
//! status watch exceeded timeout" when the watch ends (timeout, Ctrl-C) before either.

use std::time::Duration;

use crate::{Outcome, client::Ctx, fetch, info::build::phase::rollout_phase};
use anyhow::{Result, anyhow};
use futures::StreamExt;

/// `status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The Rollout.
    pub name: String,
    /// Watch the status of the rollout until it's done
    #[arg(short = 'w', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub watch: bool,
    /// The length of time to watch before giving up (e.g. 1s, 2m, 3h). Zero means wait forever
    #[arg(short = 't', long, default_value = "0s")]
    pub timeout: String,
}

/// The one line `status` prints without `--watch`.
pub fn once_line(status: &str, message: &str) -> String {
    if status == "Healthy" || status == "Degraded" {
        status.to_string()
    } else {
        format!("{status} - {message}")
    }
}

/// A line of `status --watch` (the message only when there is one).
pub fn watch_line(status: &str, message: &str) -> String {
    if message.is_empty() {
        status.to_string()
    } else {
        format!("{status} - {message}")
    }
}

/// Whether a watch stops at this phase.
fn settled(status: &str) -> bool {
    status == "Healthy" || status == "Degraded"
}

/// The exit of `status`, from the last phase seen.
pub fn verdict(status: &str, message: &str, watched: bool) -> Result<Outcome> {
    if status == "Degraded" {
        Err(anyhow!(
            "The rollout is in a degraded state with message: {message}"
        ))
    } else if status != "Healthy" && watched {
        Err(anyhow!("Rollout status watch exceeded timeout"))
    } else {
        Ok(Outcome::Ok)
    }
}

/// The `--timeout` value (Go duration; zero: none).
fn timeout(text: &str) -> Result<Option<Duration>> {
    let d = sluice_crds::duration::parse_go_duration(text).ok_or_else(|| {
        anyhow!("invalid argument {text:?} for \"-t, --timeout\" flag: time: invalid duration {text:?}")
    })?;
    Ok((!d.is_zero()).then_some(d))
}

/// Prints phase changes of the Rollout until it settles, Ctrl-C or the timeout; the last phase seen.
async fn watch(ctx: &Ctx, name: &str, first: (String, String), limit: Option<Duration>) -> (String, String) {
    let mut interrupt = crate::get::interrupt();
    let mut last = first;
    let mut shown = watch_line(&last.0, &last.1);
    println!("{shown}");
    if settled(&last.0) {
        return last;
    }
    let updates = fetch::rollout_updates(&ctx.client, Some(&ctx.namespace), Some(name));
    tokio::pin!(updates);
    let deadline = crate::get::after(limit);
    tokio::pin!(deadline);
    loop {
        let ro = tokio::select! {
            Some(ro) = updates.next() => ro,
            _ = &mut deadline => return last,
            _ = &mut interrupt => return last,
        };
        last = rollout_phase(&ro);
        let line = watch_line(&last.0, &last.1);
        if line != shown {
            println!("{line}");
            shown = line;
        }
        if settled(&last.0) {
            return last;
        }
    }
}

/// Runs `status`.
pub async fn run(ctx: &Ctx, a: StatusArgs) -> Result<Outcome> {
    let limit = timeout(&a.timeout)?;
    let ro = fetch::rollout(&ctx.client, &ctx.namespace, &a.name).await?;
    let now = rollout_phase(&ro);
    if !a.watch {
        println!("{}", once_line(&now.0, &now.1));
        return verdict(&now.0, &now.1, false);
    }
    let (status, message) = watch(ctx, &a.name, now, limit).await;
    verdict(&status, &message, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_upstreams() {
        assert_eq!(once_line("Healthy", "ignored"), "Healthy");
        assert_eq!(once_line("Degraded", "RolloutAborted: x"), "Degraded");
        assert_eq!(once_line("Paused", "CanaryPauseStep"), "Paused - CanaryPauseStep");
        assert_eq!(once_line("Progressing", ""), "Progressing - ");
        assert_eq!(watch_line("Progressing", ""), "Progressing");
        assert_eq!(watch_line("Paused", "BlueGreenPause"), "Paused - BlueGreenPause");
    }

    #[test]
    fn exits_are_upstreams() {
        assert!(matches!(verdict("Healthy", "", true), Ok(Outcome::Ok)));
        assert!(matches!(verdict("Paused", "x", false), Ok(Outcome::Ok)));
        let e = verdict(
            "Degraded",
            "RolloutAborted: metric \"web\" assessed Failed",
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "The rollout is in a degraded state with message: RolloutAborted: metric \"web\" assessed Failed"
        );
        let e = verdict("Paused", "BlueGreenPause", true).unwrap_err();
        assert_eq!(e.to_string(), "Rollout status watch exceeded timeout");
    }

    #[test]
    fn timeouts_are_go_durations() {
        assert_eq!(timeout("0s").unwrap(), None);
        assert_eq!(timeout("1m30s").unwrap(), Some(Duration::from_secs(90)));
        assert!(timeout("soon").is_err());
    }
}
