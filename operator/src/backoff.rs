//! Per-object exponential backoff of failed reconciles (1 s doubling to 5 min, spread by jitter, reset by a
//! success), the jitter of periodic requeues, and the bounded reason an error is counted under.

use std::{collections::HashMap, sync::Mutex, time::Duration};

/// The longest wait between retries of a failing object.
pub const MAX_DELAY: Duration = Duration::from_secs(300);

/// Consecutive failures per object key (`namespace/name`).
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Counts one more consecutive failure of `key` and returns how long to wait before retrying it.
    pub fn failed(&self, key: &str) -> Duration {
        let n = self.count(key);
        delay(n, seed_of(key))
    }

    /// Counts one more consecutive failure of `key`; returns how many there are now.
    pub fn count(&self, key: &str) -> u32 {
        self.failures
            .lock()
            .map(|mut f| {
                let n = f.entry(key.to_string()).or_insert(0);
                *n = n.saturating_add(1);
                *n
            })
            .unwrap_or(1)
    }

    /// Forgets the failures of `key` after a success.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut f) = self.failures.lock()
            && !f.is_empty()
        {
            f.remove(key);
        }
    }

    /// How many consecutive failures `key` has.
    #[cfg(test)]
    pub fn failures(&self, key: &str) -> u32 {
        self.failures
            .lock()
            .ok()
            .and_then(|f| f.get(key).copied())
            .unwrap_or(0)
    }
}

/// The wait after `failures` consecutive failures: 1 s, 2 s, 4 s ... up to [`MAX_DELAY`], plus up to 10 %
/// jitter spread by `seed` so that objects failing together do not retry together.
pub fn delay(failures: u32, seed: u64) -> Duration {
    let base = Duration::from_secs(1u64 << failures.clamp(1, 10).saturating_sub(1)).min(MAX_DELAY);
    base + jitter(base, seed ^ u64::from(failures))
}

/// Up to 10 % of `period`, spread by `seed` (no randomness needed: objects differ by their keys).
pub fn jitter(period: Duration, seed: u64) -> Duration {
    let spread = period.as_millis() as u64 / 10;
    if spread == 0 {
        return Duration::ZERO;
    }
    let mixed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    Duration::from_millis(mixed % spread)
}

/// A stable seed from an object key (FNV-1a).
pub fn seed_of(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// The reason a client error is counted under: a handful of values, never an object's name.
pub fn kube_reason(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) => match s.code {
            400 | 422 => "Invalid",
            401 | 403 => "Forbidden",
            404 => "NotFound",
            409 => "Conflict",
            410 => "Expired",
            429 => "TooManyRequests",
            500..=599 => "ServerError",
            _ => "ApiError",
        },
        kube::Error::SerdeError(_) => "Decode",
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::HttpError(_) => "Transport",
        _ => "Other",
    }
}

/// Logs an error of a controller's stream: a failed reconcile was logged by its error policy and a vanished
/// object is expected, but a failing watch or runner is logged at warn, never hidden.
pub fn log_stream_error<E, Q>(controller: &str, e: &kube::runtime::controller::Error<E, Q>)
where
    E: std::error::Error,
    Q: std::error::Error,
{
    use kube::runtime::controller::Error as E2;
    match e {
        E2::ReconcilerFailed(..) | E2::ObjectNotFound(_) => {
            tracing::debug!(controller, error = %e, "reconcile ended with an error");
        }
        E2::QueueError(_) | E2::RunnerError(_) => {
            tracing::warn!(controller, error = %e, "the controller's watch or queue failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn delays_double_from_one_second_and_cap_at_five_minutes() {
        let s = seed_of("ns/a");
        assert!(delay(1, s) >= Duration::from_secs(1) && delay(1, s) < Duration::from_millis(1100));
        assert!(delay(2, s) >= Duration::from_secs(2) && delay(2, s) < Duration::from_millis(2200));
        assert!(delay(4, s) >= Duration::from_secs(8));
        assert!(delay(9, s) >= Duration::from_secs(256));
        for n in [10, 11, 50, u32::MAX] {
            assert!(
                delay(n, s) >= MAX_DELAY && delay(n, s) <= MAX_DELAY + MAX_DELAY / 10,
                "{n}"
            );
        }
        assert_eq!(delay(0, s), delay(1, s ^ 1));
    }

    #[test]
    fn objects_failing_together_retry_apart() {
        let delays: HashSet<_> = (0..50)
            .map(|i| delay(5, seed_of(&format!("ns/ro-{i}"))))
            .collect();
        assert!(delays.len() > 40, "{}", delays.len());
    }

    #[test]
    fn failures_count_per_key_and_reset_on_success() {
        let b = Backoff::default();
        assert!(b.failed("ns/a") < Duration::from_millis(1100));
        assert!(b.failed("ns/a") >= Duration::from_secs(2));
        assert!(b.failed("ns/b") < Duration::from_millis(1100));
        assert_eq!(b.failures("ns/a"), 2);
        b.succeeded("ns/a");
        assert_eq!(b.failures("ns/a"), 0);
        assert_eq!(b.failures("ns/b"), 1);
        assert!(b.failed("ns/a") < Duration::from_millis(1100));
    }

    #[test]
    fn jitter_is_bounded_and_spread() {
        let period = Duration::from_secs(180);
        let values: HashSet<_> = (0..50)
            .map(|i| jitter(period, seed_of(&format!("argocd/app-{i}"))))
            .collect();
        assert!(values.iter().all(|j| *j < Duration::from_secs(18)));
        assert!(values.len() > 40);
        assert_eq!(jitter(Duration::from_millis(5), 3), Duration::ZERO);
    }

    #[test]
    fn reasons_are_few_and_named_by_status() {
        let api = |code: u16| kube::Error::Api(kube::core::Status::failure("m", "r").with_code(code).boxed());
        assert_eq!(kube_reason(&api(409)), "Conflict");
        assert_eq!(kube_reason(&api(422)), "Invalid");
        assert_eq!(kube_reason(&api(503)), "ServerError");
        assert_eq!(kube_reason(&api(418)), "ApiError");
    }
}
