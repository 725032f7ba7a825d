//! Leader election on a `coordination.k8s.io` Lease, as client-go's leaderelection does it: a candidate takes
//! the Lease when it is free or when its holder has not renewed it for the lease duration (measured on this
//! process's clock from when it last saw the record change, so clock skew between nodes does not matter); the
//! leader renews it every retry period and gives up when it could not renew within the renew deadline, before
//! any standby may take it; a graceful stop releases it so a standby takes over at its next try.

use std::time::{Duration, Instant};

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::MicroTime,
    jiff::Timestamp,
};
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};
use tokio::sync::watch;
use tracing::{info, warn};

/// Upstream's lock name.
pub const DEFAULT_LEASE_NAME: &str = "argo-rollouts-controller-lock";

/// The election's settings (upstream's defaults: 15 s, 10 s, 2 s).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This process's identity: `<hostname>_<random>`.
    pub identity: String,
    /// How long a standby waits after the last renewal it saw before taking the Lease.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    pub renew_deadline: Duration,
    /// Time between tries.
    pub retry_period: Duration,
}

/// What a candidate does with the Lease it read.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// There is none: create it, holding it.
    Create,
    /// It is free or expired: take it.
    Take,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds it and renews it.
    Wait,
}

/// Decides what to do with `spec` as last read. `unchanged_for` is how long the record has looked the same to
/// this process; `default_duration` applies when the record names none.
pub fn decide(
    spec: Option<&LeaseSpec>,
    me: &str,
    unchanged_for: Duration,
    default_duration: Duration,
) -> Step {
    let Some(spec) = spec else {
        return Step::Create;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == me {
        return Step::Renew;
    }
    let duration = spec
        .lease_duration_seconds
        .filter(|s| *s > 0)
        .map_or(default_duration, |s| Duration::from_secs(s as u64));
    if holder.is_empty() || unchanged_for >= duration {
        Step::Take
    } else {
        Step::Wait
    }
}

/// The record to write for `step` over `current` (the transitions count grows when the holder changes).
pub fn record(
    step: &Step,
    current: Option<&LeaseSpec>,
    me: &str,
    settings: &Settings,
    now: Timestamp,
) -> LeaseSpec {
    let now = MicroTime(now);
    let duration = settings.lease_duration.as_secs().max(1) as i32;
    let transitions = current.and_then(|c| c.lease_transitions).unwrap_or(0);
    match step {
        Step::Renew => LeaseSpec {
            renew_time: Some(now),
            lease_duration_seconds: Some(duration),
            ..current.cloned().unwrap_or_default()
        },
        _ => LeaseSpec {
            holder_identity: Some(me.to_string()),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_duration_seconds: Some(duration),
            lease_transitions: Some(if current.is_some() { transitions + 1 } else { 0 }),
            ..Default::default()
        },
    }
}

/// The record a leader leaves when it stops: no holder, so a standby takes it at its next try.
pub fn released(current: &LeaseSpec, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: None,
        lease_duration_seconds: Some(1),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        ..current.clone()
    }
}

/// Leadership was lost: the Lease could not be renewed within the deadline, or someone else took it.
#[derive(Debug, thiserror::Error)]
#[error("lost the leader lease {0}")]
pub struct Lost(pub String);

/// A candidate for one Lease.
pub struct Elector {
    api: Api<Lease>,
    settings: Settings,
    /// The record last read and since when it has looked that way.
    seen: Option<(LeaseSpec, Instant)>,
}

impl Elector {
    /// A candidate with these settings.
    pub fn new(client: kube::Client, settings: Settings) -> Self {
        Elector {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            seen: None,
        }
    }

    fn lease_ref(&self) -> String {
        format!("{}/{}", self.settings.namespace, self.settings.name)
    }

    /// Campaigns until it leads, then renews until `release` turns true (releasing the Lease) or the Lease is
    /// lost. `leading` says which it is at every moment.
    pub async fn run(
        mut self,
        leading: watch::Sender<bool>,
        mut release: watch::Receiver<bool>,
    ) -> Result<(), Lost> {
        let lease = self.lease_ref();
        info!(lease = %lease, identity = %self.settings.identity, "attempting to acquire the leader lease");
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => warn!(lease = %lease, error = %e, "reading the leader lease failed"),
            }
            tokio::select! {
                _ = requested(&mut release) => return Ok(()),
                _ = tokio::time::sleep(self.settings.retry_period) => {}
            }
        }
        info!(lease = %lease, identity = %self.settings.identity, "acquired the leader lease: leading");
        let _ = leading.send(true);
        let mut renewed = Instant::now();
        loop {
            tokio::select! {
                _ = requested(&mut release) => {
                    self.release().await;
                    let _ = leading.send(false);
                    return Ok(());
                }
                _ = tokio::time::sleep(self.settings.retry_period) => {}
            }
            match self.try_acquire_or_renew().await {
                Ok(true) => renewed = Instant::now(),
                Ok(false) => {
                    let _ = leading.send(false);
                    return Err(Lost(format!("{lease}: taken by another candidate")));
                }
                Err(e) => warn!(lease = %lease, error = %e, "renewing the leader lease failed"),
            }
            if renewed.elapsed() >= self.settings.renew_deadline {
                let _ = leading.send(false);
                return Err(Lost(format!(
                    "{lease}: not renewed within {:?}",
                    self.settings.renew_deadline
                )));
            }
        }
    }

    /// One try: reads the Lease and creates, takes or renews it as [`decide`] says. True when this process
    /// holds it afterwards; a conflicting write by another candidate is a lost race, not an error.
    async fn try_acquire_or_renew(&mut self) -> kube::Result<bool> {
        let current = self.api.get_opt(&self.settings.name).await?;
        let spec = current.as_ref().map(|l| l.spec.clone().unwrap_or_default());
        let unchanged_for = self.observe(spec.as_ref());
        let step = decide(
            spec.as_ref(),
            &self.settings.identity,
            unchanged_for,
            self.settings.lease_duration,
        );
        if step == Step::Wait {
            return Ok(false);
        }
        let next = record(
            &step,
            spec.as_ref(),
            &self.settings.identity,
            &self.settings,
            Timestamp::now(),
        );
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.settings.name.clone()),
                        namespace: Some(self.settings.namespace.clone()),
                        ..Default::default()
                    },
                    spec: Some(next.clone()),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                // The resourceVersion read above makes this a compare-and-swap: a candidate that wrote in
                // between makes it fail with 409.
                lease.spec = Some(next.clone());
                lease.metadata.managed_fields = None;
                self.api
                    .replace(&self.settings.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => {
                self.seen = Some((next, Instant::now()));
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Remembers `spec` and returns how long it has looked this way to this process.
    fn observe(&mut self, spec: Option<&LeaseSpec>) -> Duration {
        let now = Instant::now();
        match (&self.seen, spec) {
            (Some((seen, since)), Some(spec)) if seen == spec => now.duration_since(*since),
            (_, Some(spec)) => {
                if self.seen.as_ref().map(|(s, _)| &s.holder_identity) != Some(&spec.holder_identity) {
                    info!(lease = %self.lease_ref(), holder = spec.holder_identity.as_deref().unwrap_or(""), "leader lease holder");
                }
                self.seen = Some((spec.clone(), now));
                Duration::ZERO
            }
            (_, None) => {
                self.seen = None;
                Duration::ZERO
            }
        }
    }

    async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.settings.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_ref() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return;
        }
        lease.spec = Some(released(spec, Timestamp::now()));
        lease.metadata.managed_fields = None;
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!(lease = %self.lease_ref(), "released the leader lease"),
            Err(e) => warn!(lease = %self.lease_ref(), error = %e, "releasing the leader lease failed"),
        }
    }
}

/// Resolves when `release` turns true (or its sender is gone).
async fn requested(release: &mut watch::Receiver<bool>) {
    let _ = release.wait_for(|r| *r).await.map(|_| ());
}

/// `<hostname>_<16 random hex digits>`, as client-go's identities look.
pub fn identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| "sluice".into());
    let mut bytes = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .is_ok();
    if !random {
        bytes = (std::process::id() as u64 ^ Timestamp::now().as_nanosecond() as u64).to_le_bytes();
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{host}_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(seconds),
            lease_transitions: Some(3),
            ..Default::default()
        }
    }

    fn settings() -> Settings {
        Settings {
            namespace: "ns".into(),
            name: DEFAULT_LEASE_NAME.into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    #[test]
    fn a_candidate_takes_only_a_free_or_expired_lease() {
        let d = Duration::from_secs(15);
        let s = |n| Duration::from_secs(n);
        let cases: Vec<(&str, Option<LeaseSpec>, Duration, Step)> = vec![
            ("none yet", None, s(0), Step::Create),
            ("ours", Some(held_by("me", 15)), s(100), Step::Renew),
            ("held, fresh", Some(held_by("other", 15)), s(14), Step::Wait),
            ("held, expired", Some(held_by("other", 15)), s(15), Step::Take),
            (
                "released",
                Some(released(&held_by("other", 15), Timestamp::now())),
                s(0),
                Step::Take,
            ),
            ("no holder", Some(LeaseSpec::default()), s(0), Step::Take),
            (
                "record's duration wins",
                Some(held_by("other", 60)),
                s(30),
                Step::Wait,
            ),
            (
                "no duration: ours",
                Some(LeaseSpec {
                    lease_duration_seconds: None,
                    ..held_by("other", 0)
                }),
                s(16),
                Step::Take,
            ),
        ];
        for (name, spec, unchanged, want) in cases {
            assert_eq!(decide(spec.as_ref(), "me", unchanged, d), want, "{name}");
        }
    }

    #[test]
    fn taking_counts_a_transition_and_renewing_keeps_the_acquire_time() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let later = Timestamp::from_second(1_800_000_010).unwrap();
        let current = held_by("other", 15);
        let taken = record(&Step::Take, Some(&current), "me", &settings(), now);
        assert_eq!(taken.holder_identity.as_deref(), Some("me"));
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.acquire_time, Some(MicroTime(now)));
        let renewed = record(&Step::Renew, Some(&taken), "me", &settings(), later);
        assert_eq!(renewed.acquire_time, Some(MicroTime(now)));
        assert_eq!(renewed.renew_time, Some(MicroTime(later)));
        assert_eq!(renewed.lease_transitions, Some(4));
        let created = record(&Step::Create, None, "me", &settings(), now);
        assert_eq!(created.lease_transitions, Some(0));
        assert_eq!(created.lease_duration_seconds, Some(15));
    }

    #[test]
    fn identities_are_unique_per_process_start() {
        let (a, b) = (identity(), identity());
        assert_ne!(a, b);
        assert!(a.contains('_'));
    }
}
