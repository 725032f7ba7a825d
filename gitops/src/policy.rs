//! The sync policy of an Application, as Argo CD applies it (reference/argo-cd.md §1.3–§1.5). Pure: no
//! client, no clock of its own.
//!
//! - [`SyncOptions`] and [`CompareOptions`]: the app's `syncPolicy.syncOptions` merged with a resource's
//!   `argocd.argoproj.io/sync-options` annotation, and the `compare-options` annotation.
//! - Retries (`RetryStrategy.NextRetryAt`): [`parse_duration`], [`next_retry_delay`], [`should_retry`].
//! - Self-heal backoff (`selfHealRemainingBackoff`): [`SelfHealBackoff`], [`self_heal_delay`].
//! - The automated sync decision (`autoSync`, `alreadyAttemptedSync`): [`auto_sync`].
//! - The refresh annotation: [`refresh_kind`].

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use sluice_crds::application::{
    Application, ApplicationSource, Operation, OperationInitiator, OperationState, ResourceStatus,
    RetryStrategy, SyncOperation, SyncOperationResource, SyncStatus,
};

pub use crate::tasks::ANNOTATION_SYNC_OPTIONS;

/// Per-resource compare options, comma-separated (`IgnoreExtraneous`, `ServerSideDiff=true`).
pub const ANNOTATION_COMPARE_OPTIONS: &str = "argocd.argoproj.io/compare-options";
/// Requests a refresh of the Application (`normal` or `hard`); the controller removes it afterwards.
pub const ANNOTATION_REFRESH: &str = "argocd.argoproj.io/refresh";

/// Sync status of an application or resource that differs from its desired state.
pub const SYNC_STATUS_OUT_OF_SYNC: &str = "OutOfSync";
/// Sync status of an application or resource that matches its desired state.
pub const SYNC_STATUS_SYNCED: &str = "Synced";
/// Operation phase of a successful operation.
pub const PHASE_SUCCEEDED: &str = "Succeeded";

// ---------------------------------------------------------------------------------------------------------
// Sync options (`GE:pkg/sync/common/types.go`, `AC:controller/sync.go`)

/// The options Sluice knows and the values each may take; anything else is reported by
/// [`SyncOptions::unknown`]. Values are matched exactly, as Argo CD's `HasOption` does.
const KNOWN_SYNC_OPTIONS: &[(&str, &[&str])] = &[
    ("CreateNamespace", &["true", "false"]),
    ("ApplyOutOfSyncOnly", &["true", "false"]),
    ("ServerSideApply", &["true", "false"]),
    ("ClientSideApplyMigration", &["true", "false"]),
    ("PruneLast", &["true", "false"]),
    ("Prune", &["true", "false", "confirm"]),
    ("Delete", &["true", "false", "confirm"]),
    ("Validate", &["true", "false"]),
    ("Replace", &["true", "false"]),
    ("Force", &["true", "false"]),
    ("PrunePropagationPolicy", &["foreground", "background", "orphan"]),
    ("SkipDryRunOnMissingResource", &["true", "false"]),
    ("RespectIgnoreDifferences", &["true", "false"]),
    ("FailOnSharedResource", &["true", "false"]),
];

/// What `Prune=` says about pruning a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PruneOption {
    /// Pruned when the sync prunes (the default).
    #[default]
    Enabled,
    /// `Prune=false`: never pruned; the prune task ends `PruneSkipped`.
    Disabled,
    /// `Prune=confirm`: pruned once the app has the `deletion-approved` annotation.
    Confirm,
}

/// What `Delete=` says about deleting a resource when its Application is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeleteOption {
    /// Deleted with the Application (the default).
    #[default]
    Enabled,
    /// `Delete=false`: left in the cluster.
    Disabled,
    /// `Delete=confirm`: deleted once the app has the `deletion-approved` annotation.
    Confirm,
}

/// `PrunePropagationPolicy=`: the `propagationPolicy` of prune deletions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PropagationPolicy {
    /// Dependents are deleted first (the default).
    #[default]
    Foreground,
    /// The owner is deleted at once and dependents in the background.
    Background,
    /// Dependents are left behind.
    Orphan,
}

impl PropagationPolicy {
    /// The `DeleteOptions.propagationPolicy` value.
    pub fn as_str(self) -> &'static str {
        match self {
            PropagationPolicy::Foreground => "Foreground",
            PropagationPolicy::Background => "Background",
            PropagationPolicy::Orphan => "Orphan",
        }
    }
}

/// The sync options in force for an app or one of its resources: the app's list with the resource's
/// annotation laid over it, key by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOptions {
    values: BTreeMap<&'static str, String>,
    unknown: Vec<String>,
}

/// The items of a comma-separated annotation value: trimmed, empty items dropped.
fn csv_items(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// An annotation of a JSON object.
fn object_annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")?.get(key)?.as_str()
}

/// Pushes `item` unless it is already there.
fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|i| i == item) {
        list.push(item.to_string());
    }
}

impl SyncOptions {
    /// The options of `app_options` (`syncPolicy.syncOptions`, one option per item) overridden by those
    /// of `resource_annotation` (the `sync-options` annotation, comma-separated).
    pub fn parse(app_options: &[String], resource_annotation: Option<&str>) -> Self {
        let mut options = SyncOptions::default();
        for item in app_options {
            options.set(item.trim());
        }
        if let Some(value) = resource_annotation {
            for item in csv_items(value) {
                options.set(item);
            }
        }
        options
    }

    /// The app-level options of an Application.
    pub fn of_app(app: &Application) -> Self {
        let list = app
            .spec
            .sync_policy
            .as_ref()
            .and_then(|p| p.sync_options.as_deref());
        Self::parse(list.unwrap_or_default(), None)
    }

    /// These options with a resource's `sync-options` annotation laid over them.
    pub fn for_object(&self, obj: &Value) -> Self {
        let mut options = self.clone();
        if let Some(value) = object_annotation(obj, ANNOTATION_SYNC_OPTIONS) {
            for item in csv_items(value) {
                options.set(item);
            }
        }
        options
    }

    /// Records one `Key=Value` option; a later value of a key replaces an earlier one.
    fn set(&mut self, item: &str) {
        if item.is_empty() {
            return;
        }
        let known = item.split_once('=').and_then(|(key, value)| {
            let (key, value) = (key.trim(), value.trim());
            KNOWN_SYNC_OPTIONS
                .iter()
                .find(|(k, values)| *k == key && values.contains(&value))
                .map(|(k, _)| (*k, value))
        });
        match known {
            Some((key, value)) => {
                self.values.insert(key, value.to_string());
            }
            None => push_unique(&mut self.unknown, item),
        }
    }

    fn value(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    fn is_true(&self, key: &str) -> bool {
        self.value(key) == Some("true")
    }

    /// `CreateNamespace=true`: create the destination namespace first.
    pub fn create_namespace(&self) -> bool {
        self.is_true("CreateNamespace")
    }

    /// `ApplyOutOfSyncOnly=true`: apply only resources whose diff is not empty.
    pub fn apply_out_of_sync_only(&self) -> bool {
        self.is_true("ApplyOutOfSyncOnly")
    }

    /// `ServerSideApply=true|false`, or `None` when unset (the caller's default applies).
    pub fn server_side_apply(&self) -> Option<bool> {
        self.value("ServerSideApply").map(|v| v == "true")
    }

    /// `ClientSideApplyMigration` (default on): move client-side-apply fields to the SSA manager.
    pub fn client_side_apply_migration(&self) -> bool {
        self.value("ClientSideApplyMigration") != Some("false")
    }

    /// `PruneLast=true`: prune after the last wave.
    pub fn prune_last(&self) -> bool {
        self.is_true("PruneLast")
    }

    /// `Prune=true|false|confirm`.
    pub fn prune(&self) -> PruneOption {
        match self.value("Prune") {
            Some("false") => PruneOption::Disabled,
            Some("confirm") => PruneOption::Confirm,
            _ => PruneOption::Enabled,
        }
    }

    /// `Delete=true|false|confirm`.
    pub fn delete(&self) -> DeleteOption {
        match self.value("Delete") {
            Some("false") => DeleteOption::Disabled,
            Some("confirm") => DeleteOption::Confirm,
            _ => DeleteOption::Enabled,
        }
    }

    /// Schema validation on apply; off only with `Validate=false`.
    pub fn validate(&self) -> bool {
        self.value("Validate") != Some("false")
    }

    /// `Replace=true`: `kubectl replace` (or create) instead of apply.
    pub fn replace(&self) -> bool {
        self.is_true("Replace")
    }

    /// `Force=true`: delete and recreate (with `Replace=true`).
    pub fn force(&self) -> bool {
        self.is_true("Force")
    }

    /// `PrunePropagationPolicy=foreground|background|orphan` (default foreground).
    pub fn prune_propagation_policy(&self) -> PropagationPolicy {
        match self.value("PrunePropagationPolicy") {
            Some("background") => PropagationPolicy::Background,
            Some("orphan") => PropagationPolicy::Orphan,
            _ => PropagationPolicy::Foreground,
        }
    }

    /// `SkipDryRunOnMissingResource=true`: no dry run for kinds the cluster does not know yet.
    pub fn skip_dry_run_on_missing_resource(&self) -> bool {
        self.is_true("SkipDryRunOnMissingResource")
    }

    /// `RespectIgnoreDifferences=true`: ignored fields keep their live values on apply.
    pub fn respect_ignore_differences(&self) -> bool {
        self.is_true("RespectIgnoreDifferences")
    }

    /// `FailOnSharedResource=true`: fail when a resource is tracked by another app.
    pub fn fail_on_shared_resource(&self) -> bool {
        self.is_true("FailOnSharedResource")
    }

    /// The options that were not understood, each once, in the order first seen (for a log line).
    pub fn unknown(&self) -> &[String] {
        &self.unknown
    }
}

/// The per-resource `argocd.argoproj.io/compare-options` annotation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompareOptions {
    /// `IgnoreExtraneous`: an extraneous (requires-pruning) object does not make the app OutOfSync.
    pub ignore_extraneous: bool,
    /// `ServerSideDiff=true|false`, or `None` when unset.
    pub server_side_diff: Option<bool>,
    /// `IncludeMutationWebhook=true`: server-side diff keeps fields set by mutating webhooks.
    pub include_mutation_webhook: bool,
    unknown: Vec<String>,
}

impl CompareOptions {
    /// The options of an annotation value (comma-separated).
    pub fn parse(annotation: Option<&str>) -> Self {
        let mut options = CompareOptions::default();
        for item in annotation.map(csv_items).into_iter().flatten() {
            match item {
                "IgnoreExtraneous" => options.ignore_extraneous = true,
                "ServerSideDiff=true" => options.server_side_diff = Some(true),
                "ServerSideDiff=false" => options.server_side_diff = Some(false),
                "IncludeMutationWebhook=true" => options.include_mutation_webhook = true,
                other => push_unique(&mut options.unknown, other),
            }
        }
        options
    }

    /// The compare options of a JSON object.
    pub fn of_object(obj: &Value) -> Self {
        Self::parse(object_annotation(obj, ANNOTATION_COMPARE_OPTIONS))
    }

    /// The options that were not understood, each once (for a log line).
    pub fn unknown(&self) -> &[String] {
        &self.unknown
    }
}

// ---------------------------------------------------------------------------------------------------------
// Refresh

/// The refresh an Application asks for with `argocd.argoproj.io/refresh`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshKind {
    /// Compare with the latest revision, reusing cached manifests.
    Normal,
    /// Also regenerate the manifests (the manifest cache is bypassed).
    Hard,
}

/// The refresh requested by an Application's annotations: `hard` is a hard refresh and any other value
/// (including an empty one) a normal refresh, as `IsRefreshRequested` reads it; `None` without the
/// annotation.
pub fn refresh_kind(annotations: Option<&BTreeMap<String, String>>) -> Option<RefreshKind> {
    let value = annotations?.get(ANNOTATION_REFRESH)?;
    Some(if value == "hard" {
        RefreshKind::Hard
    } else {
        RefreshKind::Normal
    })
}

// ---------------------------------------------------------------------------------------------------------
// Durations and retries (`types.go parseStringToDuration`, `RetryStrategy.NextRetryAt`)

/// First retry delay when `backoff.duration` is unset (`DefaultSyncRetryDuration`).
pub const DEFAULT_RETRY_DURATION: Duration = Duration::from_secs(5);
/// Backoff factor when `backoff.factor` is unset (`DefaultSyncRetryFactor`).
pub const DEFAULT_RETRY_FACTOR: i64 = 2;
/// Longest retry delay when `backoff.maxDuration` is unset (`DefaultSyncRetryMaxDuration`).
pub const DEFAULT_RETRY_MAX_DURATION: Duration = Duration::from_secs(180);
/// Retry limit of an automated sync whose app has no `syncPolicy.retry`.
pub const AUTOMATED_RETRY_LIMIT: i64 = 5;

/// A duration that is neither a whole number of seconds nor a Go duration string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse {0} as a duration")]
pub struct DurationError(pub String);

/// A backoff duration as Argo CD reads it: a bare integer is seconds (`"10"`), anything else a Go
/// duration string (`"5s"`, `"1h30m"`, `"1.5h"`, `"-2m"`, `"300ms"`).
pub fn parse_duration(text: &str) -> Result<SignedDuration, DurationError> {
    let error = || DurationError(text.to_string());
    if let Some(seconds) = go_atoi(text) {
        return seconds
            .checked_mul(1_000_000_000)
            .map(SignedDuration::from_nanos)
            .ok_or_else(error);
    }
    go_parse_duration(text)
        .map(SignedDuration::from_nanos)
        .ok_or_else(error)
}

/// `strconv.Atoi`: an optional sign and decimal digits, nothing else.
fn go_atoi(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.strip_prefix('+').unwrap_or(text).parse().ok()
}

/// Go's `time.ParseDuration` in nanoseconds: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or `0`.
fn go_parse_duration(text: &str) -> Option<i64> {
    const UNITS: &[(&str, u64)] = &[
        ("ns", 1),
        ("us", 1_000),
        ("\u{b5}s", 1_000),
        ("\u{3bc}s", 1_000),
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
        ("m", 60_000_000_000),
        ("h", 3_600_000_000_000),
    ];
    const LIMIT: u64 = 1 << 63;
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return None;
        }
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let &(_, scale) = UNITS.iter().find(|(u, _)| *u == unit)?;
        let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
        if whole > LIMIT / scale {
            return None;
        }
        let mut value = whole * scale;
        value += fraction_nanos(fraction, scale);
        total = total.checked_add(value).filter(|t| *t <= LIMIT)?;
        rest = next;
    }
    match (negative, total) {
        (true, t) => Some((t as i128).wrapping_neg() as i64),
        (false, t) if t < LIMIT => Some(t as i64),
        _ => None,
    }
}

/// The value of the digits after a decimal point in units of `scale` (Go's `leadingFraction`: digits
/// past what fits in 63 bits are ignored).
fn fraction_nanos(fraction: &str, scale: u64) -> u64 {
    let (mut digits, mut divisor) = (0u64, 1f64);
    for b in fraction.bytes() {
        if digits > (i64::MAX as u64) / 10 {
            break;
        }
        digits = digits * 10 + u64::from(b - b'0');
        divisor *= 10.0;
    }
    (digits as f64 * (scale as f64 / divisor)) as u64
}

/// The retry strategy of an automated sync: the app's `syncPolicy.retry`, or `{limit: 5}`.
pub fn automated_retry(spec_retry: Option<&RetryStrategy>) -> RetryStrategy {
    spec_retry.cloned().unwrap_or(RetryStrategy {
        limit: Some(AUTOMATED_RETRY_LIMIT),
        ..RetryStrategy::default()
    })
}

/// Whether a failed operation that was retried `retry_count` times is retried again: below `limit`, or
/// always with a negative limit. A limit of 0 (or none) means no retries.
pub fn should_retry(strategy: &RetryStrategy, retry_count: i64) -> bool {
    let limit = strategy.limit.unwrap_or(0);
    limit < 0 || retry_count < limit
}

/// How long to wait before retry number `retry_count + 1`: `duration * factor^retry_count`, capped at
/// `maxDuration` when that is positive (a zero or negative `maxDuration` means no cap). A negative
/// result is no wait; an uncapped overflow saturates.
pub fn next_retry_delay(strategy: &RetryStrategy, retry_count: i64) -> Result<Duration, DurationError> {
    let backoff = strategy.backoff.as_ref();
    let parse = |text: Option<&String>, default: Duration| match text.filter(|t| !t.is_empty()) {
        Some(text) => parse_duration(text).map(|d| d.as_nanos() as f64),
        None => Ok(default.as_nanos() as f64),
    };
    let duration = parse(backoff.and_then(|b| b.duration.as_ref()), DEFAULT_RETRY_DURATION)?;
    let max = parse(
        backoff.and_then(|b| b.max_duration.as_ref()),
        DEFAULT_RETRY_MAX_DURATION,
    )?;
    let factor = backoff.and_then(|b| b.factor).unwrap_or(DEFAULT_RETRY_FACTOR);
    let mut wait = duration * (factor as f64).powf(retry_count as f64);
    if max > 0.0 {
        wait = wait.min(max);
    }
    Ok(nanos_to_duration(wait))
}

/// When retry number `retry_count + 1` is due after an attempt that finished at `last_attempt`.
pub fn next_retry_at(
    strategy: &RetryStrategy,
    last_attempt: Timestamp,
    retry_count: i64,
) -> Result<Timestamp, DurationError> {
    let delay = next_retry_delay(strategy, retry_count)?;
    let delay = SignedDuration::try_from(delay).unwrap_or(SignedDuration::MAX);
    Ok(last_attempt.checked_add(delay).unwrap_or(Timestamp::MAX))
}

/// A float number of nanoseconds as a `Duration`: negative and NaN are zero, too large saturates.
fn nanos_to_duration(nanos: f64) -> Duration {
    if nanos.is_nan() || nanos <= 0.0 {
        return Duration::ZERO;
    }
    if nanos >= u64::MAX as f64 {
        return Duration::from_nanos(u64::MAX);
    }
    Duration::from_nanos(nanos as u64)
}

// ---------------------------------------------------------------------------------------------------------
// Self-heal backoff (`selfHealRemainingBackoff`, the controller's `--self-heal-backoff-*` flags)

/// The self-heal backoff: `wait.Backoff{Duration: initial, Factor: factor, Cap: cap}` stepped once per
/// attempt already made, and the cooldown after which a healthy app starts again from no attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SelfHealBackoff {
    /// Delay before the first repeated self-heal (`--self-heal-backoff-timeout-seconds`, 2).
    pub initial: Duration,
    /// Growth per attempt (`--self-heal-backoff-factor`, 3).
    pub factor: f64,
    /// Longest delay (`--self-heal-backoff-cap-seconds`, 300).
    pub cap: Duration,
    /// Time an app must stay synced before its attempt count is reset
    /// (`--self-heal-backoff-cooldown-seconds`, 330).
    pub cooldown: Duration,
}

impl Default for SelfHealBackoff {
    fn default() -> Self {
        SelfHealBackoff {
            initial: Duration::from_secs(2),
            factor: 3.0,
            cap: Duration::from_secs(300),
            cooldown: Duration::from_secs(330),
        }
    }
}

impl SelfHealBackoff {
    /// The delay after `attempts` self-heal attempts: no delay before the first one, then `initial`,
    /// `initial * factor`, ... until the cap, which then holds (`wait.Backoff.Step` called `attempts`
    /// times; like it, a first step larger than the cap is not cut).
    pub fn delay(&self, attempts: i64) -> Duration {
        // Past this many steps a non-capped value no longer changes in f64.
        const MAX_STEPS: i64 = 100_000;
        let cap = self.cap.as_nanos() as f64;
        let mut duration = self.initial.as_nanos() as f64;
        let mut delay = 0f64;
        let steps = attempts.clamp(0, MAX_STEPS);
        for step in 0..steps {
            delay = duration;
            if self.factor == 0.0 {
                break;
            }
            let next = duration * self.factor;
            if cap > 0.0 && next > cap {
                // wait.Backoff drops its remaining steps here: every later step returns the cap.
                if step + 1 < attempts {
                    delay = cap;
                }
                break;
            }
            if next == duration {
                break;
            }
            duration = next;
        }
        nanos_to_duration(delay)
    }
}

/// The self-heal delay after `attempts` attempts with the controller's default flags: 0, 2s, 6s, 18s,
/// 54s, 162s, then 300s.
pub fn self_heal_delay(attempts: i64) -> Duration {
    SelfHealBackoff::default().delay(attempts)
}

// ---------------------------------------------------------------------------------------------------------
// Automated sync (`appcontroller.go autoSync`, `alreadyAttemptedSync`)

/// What the automated sync decision needs besides the Application.
#[derive(Debug, Clone, Copy)]
pub struct AutoSyncInput<'a> {
    /// The comparison just made: its status and the revision(s) it resolved.
    pub sync: &'a SyncStatus,
    /// The managed resources of that comparison.
    pub resources: &'a [ResourceStatus],
    /// Whether the new revision changed the app's manifests (upstream's `shouldCompareRevisions`); when
    /// false a commit that touched nothing of the app does not count as a new revision.
    pub revision_changed: bool,
    /// Whether the project's sync windows allow an automated sync now (`CanSync(false)`).
    pub sync_window_open: bool,
    /// The self-heal backoff of the controller.
    pub self_heal: &'a SelfHealBackoff,
    /// The time of the decision.
    pub now: Timestamp,
}

/// The automated sync decision.
#[derive(Debug, Clone, PartialEq)]
pub enum AutoSync {
    /// Nothing to do now.
    Skip(AutoSyncSkip),
    /// Set this operation on the Application.
    Sync(Box<AutoSyncOperation>),
    /// Do not sync, and set a `SyncError` condition with this message.
    Refuse(String),
}

/// An automated sync to start.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoSyncOperation {
    /// The operation to write to `/operation`.
    pub operation: Operation,
    /// A self-heal: a selective sync of the drifted resources only (so no hooks run).
    pub self_heal: bool,
    /// The `OperationStarted` event message: "Initiated automated sync to '<revision>'".
    pub message: String,
}

impl AutoSyncOperation {
    /// Whether the sync prunes.
    pub fn prune(&self) -> bool {
        self.sync().and_then(|s| s.prune).unwrap_or(false)
    }

    /// The resources of a self-heal, `None` for a full sync.
    pub fn self_heal_resources(&self) -> Option<&[SyncOperationResource]> {
        self.sync().and_then(|s| s.resources.as_deref())
    }

    fn sync(&self) -> Option<&SyncOperation> {
        self.operation.sync.as_ref()
    }
}

/// Why an automated sync is not started; `Display` is upstream's log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoSyncSkip {
    /// No `syncPolicy.automated`, or `enabled: false`.
    NotAutomated,
    /// The app already has an operation.
    OperationInProgress,
    /// The app is being deleted.
    Deleting,
    /// The app is not OutOfSync (the status is given).
    NotOutOfSync(String),
    /// A sync window forbids automated syncs now.
    SyncWindowClosed,
    /// Only pruning is needed and automated prune is off.
    PruneOnly,
    /// The last sync already went to these revisions and self-heal is off.
    AlreadySynced(Vec<String>),
    /// Self-heal waits for its backoff; refresh again after `remaining`.
    SelfHealBackoff {
        /// The revisions of the last sync.
        revisions: Vec<String>,
        /// Time left before the next self-heal may run.
        remaining: Duration,
    },
}

impl AutoSyncSkip {
    /// When the app should be refreshed again to reconsider (only while self-heal backs off).
    pub fn requeue_after(&self) -> Option<Duration> {
        match self {
            AutoSyncSkip::SelfHealBackoff { remaining, .. } => Some(*remaining),
            _ => None,
        }
    }
}

/// Revisions as Go's `%s` prints a `[]string`: `[a b]`.
fn go_list(revisions: &[String]) -> String {
    format!("[{}]", revisions.join(" "))
}

impl fmt::Display for AutoSyncSkip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AutoSyncSkip::NotAutomated => f.write_str("Skipping auto-sync: automated sync is not enabled"),
            AutoSyncSkip::OperationInProgress => {
                f.write_str("Skipping auto-sync: another operation is in progress")
            }
            AutoSyncSkip::Deleting => f.write_str("Skipping auto-sync: deletion in progress"),
            AutoSyncSkip::NotOutOfSync(status) => {
                write!(f, "Skipping auto-sync: application status is {status}")
            }
            AutoSyncSkip::SyncWindowClosed => {
                f.write_str("Skipping auto-sync: a sync window does not allow automated syncs now")
            }
            AutoSyncSkip::PruneOnly => f.write_str(
                "Skipping auto-sync: need to prune extra resources only but automated prune is disabled",
            ),
            AutoSyncSkip::AlreadySynced(revisions) => {
                write!(
                    f,
                    "Skipping auto-sync: most recent sync already to {}",
                    go_list(revisions)
                )
            }
            AutoSyncSkip::SelfHealBackoff { revisions, remaining } => write!(
                f,
                "Skipping auto-sync: already attempted sync to {} (retrying in {remaining:?})",
                go_list(revisions)
            ),
        }
    }
}

/// Whether an app's automated sync is on: `automated` is set and `enabled` is not false.
pub fn automated_sync_enabled(app: &Application) -> bool {
    let automated = app.spec.sync_policy.as_ref().and_then(|p| p.automated.as_ref());
    automated.is_some_and(|a| a.enabled != Some(false))
}

/// Whether the app has several sources (`HasMultipleSources`).
fn multi_source(app: &Application) -> bool {
    app.spec.sources.as_ref().is_some_and(|s| !s.is_empty())
}

/// The source an operation syncs (`GetSource`): the first of several, else the single one.
fn primary_source(app: &Application) -> ApplicationSource {
    match app.spec.sources.as_deref() {
        Some([first, ..]) => first.clone(),
        _ => app.spec.source.clone().unwrap_or_default(),
    }
}

/// Whether a phase is a successful end.
fn successful(phase: &str) -> bool {
    phase == PHASE_SUCCEEDED
}

/// Whether a phase is an end (`Completed`): Succeeded, Failed or Error.
fn completed(phase: &str) -> bool {
    matches!(phase, "Succeeded" | "Failed" | "Error")
}

/// Whether the last sync went to `desired` with the app's current source(s), the revisions it went to,
/// and its phase (`alreadyAttemptedSync`). A finished operation without a sync result counts as
/// attempted, so that a sync that errored before producing one is not repeated forever.
fn already_attempted(
    app: &Application,
    state: Option<&OperationState>,
    desired: &[String],
    revision_changed: bool,
) -> (bool, Vec<String>) {
    let Some(state) = state else {
        return (false, Vec::new());
    };
    let Some(result) = state.sync_result.as_ref() else {
        return (completed(&state.phase), Vec::new());
    };
    let multi = multi_source(app);
    let last: Vec<String> = if multi {
        result.revisions.clone().unwrap_or_default()
    } else {
        vec![result.revision.clone()]
    };
    if revision_changed {
        let same = if multi {
            last == desired
        } else {
            desired.len() == 1 && last == desired
        };
        if !same {
            return (false, last);
        }
    }
    let same_source = if multi {
        app.spec.sources.clone().unwrap_or_default() == result.sources.clone().unwrap_or_default()
    } else {
        primary_source(app) == result.source.clone().unwrap_or_default()
    };
    (same_source, last)
}

/// The decision of `autoSync`, in upstream's order: enabled, no operation, not deleting, OutOfSync, sync
/// window, prune-only, already attempted (failed ⇒ refuse without retry; succeeded ⇒ skip, or self-heal
/// the drifted resources after the backoff), and the wipe-out guard.
pub fn auto_sync(app: &Application, input: &AutoSyncInput<'_>) -> AutoSync {
    let policy = app.spec.sync_policy.as_ref();
    let Some(automated) = policy
        .and_then(|p| p.automated.as_ref())
        .filter(|_| automated_sync_enabled(app))
    else {
        return AutoSync::Skip(AutoSyncSkip::NotAutomated);
    };
    if app.operation.is_some() {
        return AutoSync::Skip(AutoSyncSkip::OperationInProgress);
    }
    if app.metadata.deletion_timestamp.is_some() {
        return AutoSync::Skip(AutoSyncSkip::Deleting);
    }
    if input.sync.status != SYNC_STATUS_OUT_OF_SYNC {
        return AutoSync::Skip(AutoSyncSkip::NotOutOfSync(input.sync.status.clone()));
    }
    if !input.sync_window_open {
        return AutoSync::Skip(AutoSyncSkip::SyncWindowClosed);
    }
    let prune = automated.prune.unwrap_or(false);
    let requires_pruning = |r: &ResourceStatus| r.requires_pruning.unwrap_or(false);
    let synced = |r: &ResourceStatus| r.status.as_deref() == Some(SYNC_STATUS_SYNCED);
    if !prune && input.resources.iter().all(|r| synced(r) || requires_pruning(r)) {
        return AutoSync::Skip(AutoSyncSkip::PruneOnly);
    }
    let multi = multi_source(app);
    let desired: Vec<String> = if multi {
        input.sync.revisions.clone().unwrap_or_default()
    } else {
        vec![input.sync.revision.clone().unwrap_or_default()]
    };
    let state = app.status.as_ref().and_then(|s| s.operation_state.as_ref());
    let (attempted, last) = already_attempted(app, state, &desired, input.revision_changed);
    let mut self_heal: Option<(i64, Vec<SyncOperationResource>)> = None;
    if attempted {
        let phase = state.map(|s| s.phase.as_str()).unwrap_or_default();
        if !successful(phase) {
            let message = state.and_then(|s| s.message.as_deref()).unwrap_or_default();
            return AutoSync::Refuse(format!(
                "Failed last sync attempt to {}: {message}",
                go_list(&last)
            ));
        }
        if automated.self_heal != Some(true) {
            return AutoSync::Skip(AutoSyncSkip::AlreadySynced(desired));
        }
        let attempts = self_heal_attempts(state, input);
        let remaining = self_heal_remaining(state, input, attempts);
        if remaining > Duration::ZERO {
            return AutoSync::Skip(AutoSyncSkip::SelfHealBackoff {
                revisions: last,
                remaining,
            });
        }
        let drifted = input
            .resources
            .iter()
            .filter(|r| !synced(r))
            .map(selective_resource)
            .collect();
        self_heal = Some((attempts + 1, drifted));
    }
    if prune && automated.allow_empty != Some(true) && input.resources.iter().all(requires_pruning) {
        return AutoSync::Refuse(format!(
            "Skipping sync attempt to {}: auto-sync will wipe out all resources",
            go_list(&desired)
        ));
    }
    AutoSync::Sync(Box::new(automated_operation(app, input.sync, prune, self_heal)))
}

/// The self-heal attempts made so far: the last operation's count, unless the app has stayed synced
/// for the cooldown since it finished.
fn self_heal_attempts(state: Option<&OperationState>, input: &AutoSyncInput<'_>) -> i64 {
    let Some(state) = state else {
        return 0;
    };
    let Some(finished) = state.finished_at.as_ref() else {
        return 0;
    };
    let since = input.now.duration_since(finished.0).as_nanos();
    let cooled_down = since >= input.self_heal.cooldown.as_nanos() as i128 && successful(&state.phase);
    if cooled_down {
        return 0;
    }
    let sync = state.operation.sync.as_ref();
    sync.and_then(|s| s.auto_heal_attempts_count).unwrap_or(0)
}

/// Time left of the self-heal backoff: the delay for `attempts` minus the time since the last operation
/// finished (`selfHealRemainingBackoff`).
fn self_heal_remaining(state: Option<&OperationState>, input: &AutoSyncInput<'_>, attempts: i64) -> Duration {
    let Some(state) = state else {
        return Duration::ZERO;
    };
    let delay = input.self_heal.delay(attempts).as_nanos() as i128;
    let since = match state.finished_at.as_ref() {
        Some(finished) => input.now.duration_since(finished.0).as_nanos(),
        None => 0,
    };
    let remaining = delay - since;
    if remaining <= 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(u64::try_from(remaining).unwrap_or(u64::MAX))
    }
}

/// A drifted resource as a selective-sync entry: group, kind and name (no namespace, as upstream).
fn selective_resource(r: &ResourceStatus) -> SyncOperationResource {
    SyncOperationResource {
        group: r.group.clone(),
        kind: r.kind.clone().unwrap_or_default(),
        name: r.name.clone().unwrap_or_default(),
        namespace: None,
    }
}

/// The operation of an automated sync: the compared revision(s), the app's prune flag, sync options and
/// retry (or `{limit: 5}`), and for a self-heal the drifted resources and the new attempt count.
fn automated_operation(
    app: &Application,
    sync: &SyncStatus,
    prune: bool,
    self_heal: Option<(i64, Vec<SyncOperationResource>)>,
) -> AutoSyncOperation {
    let policy = app.spec.sync_policy.as_ref();
    let multi = multi_source(app);
    let (attempts, resources) = self_heal.clone().unwrap_or_default();
    let revision = sync.revision.clone().filter(|r| !r.is_empty());
    let operation = Operation {
        sync: Some(SyncOperation {
            revision: revision.clone(),
            revisions: sync.revisions.clone().filter(|r| !r.is_empty()),
            prune: prune.then_some(true),
            sync_options: policy.and_then(|p| p.sync_options.clone()),
            source: (!multi).then(|| primary_source(app)),
            resources: (!resources.is_empty()).then_some(resources),
            auto_heal_attempts_count: (attempts > 0).then_some(attempts),
            ..SyncOperation::default()
        }),
        initiated_by: Some(OperationInitiator {
            username: None,
            automated: Some(true),
        }),
        info: None,
        retry: Some(automated_retry(policy.and_then(|p| p.retry.as_ref()))),
    };
    let target = if multi {
        sync.revisions.clone().unwrap_or_default().join(", ")
    } else {
        revision.unwrap_or_default()
    };
    AutoSyncOperation {
        operation,
        self_heal: self_heal.is_some(),
        message: format!("Initiated automated sync to '{target}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sync_options_come_from_the_app_list_and_the_resource_csv() {
        let app = strings(&["CreateNamespace=true", " PruneLast=true ", "ServerSideApply=true"]);
        let o = SyncOptions::parse(&app, None);
        assert!(o.create_namespace());
        assert!(o.prune_last(), "app items are trimmed");
        assert_eq!(o.server_side_apply(), Some(true));
        assert!(!o.apply_out_of_sync_only());
        assert_eq!(o.prune(), PruneOption::Enabled);
        assert!(o.unknown().is_empty());

        let r = SyncOptions::parse(&app, Some(" ServerSideApply=false , Prune=false,,Replace=true"));
        assert_eq!(
            r.server_side_apply(),
            Some(false),
            "the resource value overrides the app value"
        );
        assert_eq!(r.prune(), PruneOption::Disabled);
        assert!(r.replace());
        assert!(
            r.create_namespace(),
            "keys the resource does not name keep the app value"
        );
    }

    #[test]
    fn every_known_option_has_its_accessor() {
        type Check = fn(&SyncOptions) -> bool;
        let cases: &[(&str, Check)] = &[
            ("CreateNamespace=true", |o| o.create_namespace()),
            ("ApplyOutOfSyncOnly=true", |o| o.apply_out_of_sync_only()),
            ("ServerSideApply=true", |o| o.server_side_apply() == Some(true)),
            ("ServerSideApply=false", |o| o.server_side_apply() == Some(false)),
            ("ClientSideApplyMigration=false", |o| {
                !o.client_side_apply_migration()
            }),
            ("PruneLast=true", |o| o.prune_last()),
            ("Prune=true", |o| o.prune() == PruneOption::Enabled),
            ("Prune=false", |o| o.prune() == PruneOption::Disabled),
            ("Prune=confirm", |o| o.prune() == PruneOption::Confirm),
            ("Delete=false", |o| o.delete() == DeleteOption::Disabled),
            ("Delete=confirm", |o| o.delete() == DeleteOption::Confirm),
            ("Validate=false", |o| !o.validate()),
            ("Replace=true", |o| o.replace()),
            ("Force=true", |o| o.force()),
            ("PrunePropagationPolicy=background", |o| {
                o.prune_propagation_policy() == PropagationPolicy::Background
            }),
            ("PrunePropagationPolicy=orphan", |o| {
                o.prune_propagation_policy().as_str() == "Orphan"
            }),
            ("PrunePropagationPolicy=foreground", |o| {
                o.prune_propagation_policy() == PropagationPolicy::Foreground
            }),
            ("SkipDryRunOnMissingResource=true", |o| {
                o.skip_dry_run_on_missing_resource()
            }),
            ("RespectIgnoreDifferences=true", |o| {
                o.respect_ignore_differences()
            }),
            ("FailOnSharedResource=true", |o| o.fail_on_shared_resource()),
        ];
        for (option, check) in cases {
            let o = SyncOptions::parse(&[], Some(option));
            assert!(check(&o), "{option}");
            assert!(o.unknown().is_empty(), "{option}");
        }
        let defaults = SyncOptions::default();
        assert!(defaults.validate());
        assert!(defaults.client_side_apply_migration());
        assert_eq!(defaults.server_side_apply(), None);
        assert_eq!(defaults.delete(), DeleteOption::Enabled);
        assert_eq!(defaults.prune_propagation_policy(), PropagationPolicy::Foreground);
    }

    #[test]
    fn unknown_options_are_reported_once_and_ignored() {
        let app = strings(&["Foo=bar", "createnamespace=true"]);
        let o = SyncOptions::parse(&app, Some("Foo=bar, Prune=maybe ,Foo=bar"));
        assert_eq!(o.unknown(), ["Foo=bar", "createnamespace=true", "Prune=maybe"]);
        assert!(
            !o.create_namespace(),
            "keys and values match exactly, as HasOption does"
        );
        assert_eq!(o.prune(), PruneOption::Enabled);
    }

    #[test]
    fn a_later_value_of_the_same_key_wins() {
        let o = SyncOptions::parse(&strings(&["Prune=false", "Prune=confirm"]), None);
        assert_eq!(o.prune(), PruneOption::Confirm);
        let o = SyncOptions::parse(&[], Some("ServerSideApply=true,ServerSideApply=false"));
        assert_eq!(o.server_side_apply(), Some(false));
    }

    #[test]
    fn options_of_an_app_and_of_an_object() {
        let app: Application = serde_json::from_value(json!({
            "metadata": {"name": "a"},
            "spec": {"destination": {}, "project": "default",
                     "syncPolicy": {"syncOptions": ["ServerSideApply=true", "Validate=false"]}}
        }))
        .unwrap();
        let o = SyncOptions::of_app(&app);
        assert_eq!(o.server_side_apply(), Some(true));
        let obj = json!({"metadata": {"annotations": {ANNOTATION_SYNC_OPTIONS: "ServerSideApply=false"}}});
        let r = o.for_object(&obj);
        assert_eq!(r.server_side_apply(), Some(false));
        assert!(!r.validate());
        assert_eq!(o.for_object(&json!({"metadata": {}})), o);
    }

    #[test]
    fn compare_options() {
        let o = CompareOptions::parse(Some(" IgnoreExtraneous , ServerSideDiff=false,Nope,Nope"));
        assert!(o.ignore_extraneous);
        assert_eq!(o.server_side_diff, Some(false));
        assert!(!o.include_mutation_webhook);
        assert_eq!(o.unknown(), ["Nope"]);
        let obj = json!({"metadata": {"annotations": {
            ANNOTATION_COMPARE_OPTIONS: "ServerSideDiff=true,IncludeMutationWebhook=true"}}});
        let o = CompareOptions::of_object(&obj);
        assert_eq!(o.server_side_diff, Some(true));
        assert!(o.include_mutation_webhook);
        assert!(!o.ignore_extraneous);
        assert_eq!(CompareOptions::parse(None), CompareOptions::default());
    }

    #[test]
    fn refresh_annotation_values() {
        let with = |v: &str| BTreeMap::from([(ANNOTATION_REFRESH.to_string(), v.to_string())]);
        let cases = [
            ("normal", Some(RefreshKind::Normal)),
            ("hard", Some(RefreshKind::Hard)),
            ("", Some(RefreshKind::Normal)),
            ("Hard", Some(RefreshKind::Normal)),
            ("soft", Some(RefreshKind::Normal)),
        ];
        for (value, want) in cases {
            assert_eq!(refresh_kind(Some(&with(value))), want, "{value:?}");
        }
        assert_eq!(refresh_kind(None), None);
        assert_eq!(refresh_kind(Some(&BTreeMap::new())), None);
    }

    #[test]
    fn durations_as_argo_cd_parses_them() {
        let ok = [
            ("5s", 5_000_000_000i64),
            ("3m", 180_000_000_000),
            ("10", 10_000_000_000),
            ("+7", 7_000_000_000),
            ("0", 0),
            ("-0", 0),
            ("1h2m3s", 3_723_000_000_000),
            ("1h30m", 5_400_000_000_000),
            ("1.5h", 5_400_000_000_000),
            (".5s", 500_000_000),
            ("1.s", 1_000_000_000),
            ("300ms", 300_000_000),
            ("1us", 1_000),
            ("1\u{b5}s", 1_000),
            ("1\u{3bc}s", 1_000),
            ("42ns", 42),
            ("-2m", -120_000_000_000),
            ("-5", -5_000_000_000),
            ("2562047h", 2_562_047 * 3_600_000_000_000),
        ];
        for (text, nanos) in ok {
            assert_eq!(
                parse_duration(text).map(|d| d.as_nanos()),
                Ok(i128::from(nanos)),
                "{text:?}"
            );
        }
        let bad = [
            "", "s", ".", "5x", "abc", "1h 2m", " 5s", "5s ", "1..5s", "--5s", "2562048h",
        ];
        for text in bad {
            let err = parse_duration(text).unwrap_err();
            assert_eq!(err.to_string(), format!("unable to parse {text} as a duration"));
        }
        assert!(
            parse_duration("99999999999999999999").is_err(),
            "an integer that overflows"
        );
        assert!(
            parse_duration("9999999999999").is_err(),
            "seconds that overflow nanoseconds"
        );
    }

    fn retry(
        limit: Option<i64>,
        duration: Option<&str>,
        factor: Option<i64>,
        max: Option<&str>,
    ) -> RetryStrategy {
        RetryStrategy {
            limit,
            backoff: Some(sluice_crds::application::Backoff {
                duration: duration.map(String::from),
                factor,
                max_duration: max.map(String::from),
            }),
            refresh: None,
        }
    }

    #[test]
    fn retry_backoff_sequence_defaults_and_cap() {
        let s = |secs: &[u64]| secs.iter().map(|s| Duration::from_secs(*s)).collect::<Vec<_>>();
        let delays = |strategy: &RetryStrategy, n: i64| {
            (0..n)
                .map(|c| next_retry_delay(strategy, c).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            delays(&RetryStrategy::default(), 8),
            s(&[5, 10, 20, 40, 80, 160, 180, 180]),
            "5s doubling, capped at 3m"
        );
        let custom = retry(Some(3), Some("10"), Some(3), Some("1m"));
        assert_eq!(delays(&custom, 4), s(&[10, 30, 60, 60]));
        let empty = retry(None, Some(""), None, Some(""));
        assert_eq!(delays(&empty, 2), s(&[5, 10]), "empty strings take the defaults");
        let flat = retry(None, Some("2m"), Some(1), None);
        assert_eq!(delays(&flat, 3), s(&[120, 120, 120]));
        let zero_factor = retry(None, Some("4s"), Some(0), None);
        assert_eq!(delays(&zero_factor, 3), s(&[4, 0, 0]), "0^0 is 1, then nothing");
    }

    #[test]
    fn retry_backoff_without_a_cap_and_bad_durations() {
        let uncapped = retry(None, Some("1s"), Some(2), Some("0"));
        assert_eq!(
            next_retry_delay(&uncapped, 10).unwrap(),
            Duration::from_secs(1024)
        );
        assert_eq!(
            next_retry_delay(&uncapped, 10_000).unwrap(),
            Duration::from_nanos(u64::MAX),
            "an uncapped overflow saturates"
        );
        let negative_max = retry(None, Some("1s"), Some(2), Some("-1m"));
        assert_eq!(
            next_retry_delay(&negative_max, 4).unwrap(),
            Duration::from_secs(16)
        );
        let negative = retry(None, Some("-5s"), None, None);
        assert_eq!(next_retry_delay(&negative, 0).unwrap(), Duration::ZERO);
        let bad = retry(None, Some("soon"), None, None);
        assert_eq!(
            next_retry_delay(&bad, 0).unwrap_err().to_string(),
            "unable to parse soon as a duration"
        );
        let bad_max = retry(None, None, None, Some("5 minutes"));
        assert!(next_retry_delay(&bad_max, 0).is_err());
        let at: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let next = next_retry_at(&RetryStrategy::default(), at, 1).unwrap();
        assert_eq!(next.to_string(), "2026-01-01T00:00:10Z");
    }

    #[test]
    fn retry_limits() {
        let limit = |l: Option<i64>| RetryStrategy {
            limit: l,
            ..RetryStrategy::default()
        };
        let cases = [
            (None, 0, false),
            (Some(0), 0, false),
            (Some(5), 0, true),
            (Some(5), 4, true),
            (Some(5), 5, false),
            (Some(-1), 0, true),
            (Some(-1), 1_000_000, true),
        ];
        for (l, count, want) in cases {
            assert_eq!(should_retry(&limit(l), count), want, "limit {l:?} count {count}");
        }
        assert_eq!(automated_retry(None).limit, Some(AUTOMATED_RETRY_LIMIT));
        assert_eq!(automated_retry(None).backoff, None);
        let spec = limit(Some(-1));
        assert_eq!(
            automated_retry(Some(&spec)),
            spec,
            "the app's retry replaces the default"
        );
    }

    #[test]
    fn self_heal_backoff_sequence() {
        let secs = [0u64, 2, 6, 18, 54, 162, 300, 300];
        for (attempts, want) in secs.iter().enumerate() {
            assert_eq!(
                self_heal_delay(attempts as i64),
                Duration::from_secs(*want),
                "{attempts}"
            );
        }
        assert_eq!(self_heal_delay(1_000), Duration::from_secs(300));
        assert_eq!(self_heal_delay(i64::MAX), Duration::from_secs(300));
        assert_eq!(self_heal_delay(-3), Duration::ZERO);
        let big_first = SelfHealBackoff {
            initial: Duration::from_secs(500),
            ..SelfHealBackoff::default()
        };
        assert_eq!(
            big_first.delay(1),
            Duration::from_secs(500),
            "the first step is not capped"
        );
        assert_eq!(big_first.delay(2), Duration::from_secs(300));
        let flat = SelfHealBackoff {
            factor: 1.0,
            ..SelfHealBackoff::default()
        };
        assert_eq!(flat.delay(i64::MAX), Duration::from_secs(2));
    }

    /// A small deterministic generator (xorshift64) for the generated cases.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn generated_durations_round_trip_and_junk_never_panics() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..5_000 {
            let (h, m, s, ms) = (rng.below(1000), rng.below(60), rng.below(60), rng.below(1000));
            let text = format!("{h}h{m}m{s}s{ms}ms");
            let want = i128::from(((h * 3600 + m * 60 + s) * 1000 + ms) * 1_000_000);
            assert_eq!(parse_duration(&text).unwrap().as_nanos(), want, "{text}");
            let secs = rng.below(1 << 33);
            let parsed = parse_duration(&secs.to_string()).unwrap();
            assert_eq!(parsed.as_nanos(), i128::from(secs) * 1_000_000_000);
        }
        let alphabet: Vec<char> = "019.hmsun\u{b5}\u{3bc}+- x".chars().collect();
        for _ in 0..20_000 {
            let len = rng.below(12);
            let text: String = (0..len)
                .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                .collect();
            if let Ok(d) = parse_duration(&text) {
                assert!(!text.starts_with('-') || d.as_nanos() <= 0, "{text:?}");
            }
        }
    }

    #[test]
    fn generated_retry_strategies_stay_within_their_cap() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let texts = ["", "0", "1", "5s", "-3s", "1h", "bad", "2562047h", "1.5m"];
        for _ in 0..5_000 {
            let pick = |rng: &mut Rng| texts[rng.below(texts.len() as u64) as usize];
            let (duration, max) = (pick(&mut rng), pick(&mut rng));
            let factor = rng.below(7) as i64 - 2;
            let strategy = retry(None, Some(duration), Some(factor), Some(max));
            let count = rng.below(100) as i64;
            match (next_retry_delay(&strategy, count), parse_duration(max)) {
                (Ok(delay), Ok(cap)) if cap.as_nanos() > 0 => {
                    assert!(delay.as_nanos() as i128 <= cap.as_nanos(), "{strategy:?} {count}");
                }
                (Ok(_), _) => {}
                (Err(_), _) => assert!(
                    parse_duration(duration).is_err() || parse_duration(max).is_err(),
                    "{strategy:?}"
                ),
            }
        }
    }

    // ----- auto-sync -----

    const T0: &str = "2026-03-01T12:00:00Z";
    const REV: &str = "1111111111111111111111111111111111111111";
    const NEW: &str = "2222222222222222222222222222222222222222";

    fn at(secs: i64) -> Timestamp {
        let t0: Timestamp = T0.parse().unwrap();
        Timestamp::from_second(t0.as_second() + secs).unwrap()
    }

    fn source() -> serde_json::Value {
        json!({"repoURL": "https://git.example/app.git", "path": "app", "targetRevision": "HEAD"})
    }

    /// An automated app (prune on) whose last operation synced `REV` with the current source, finished at
    /// T0 in `phase`.
    fn app(automated: serde_json::Value, last_phase: Option<&str>) -> Application {
        let mut value = json!({
            "metadata": {"name": "guestbook", "namespace": "argocd"},
            "spec": {"source": source(), "destination": {"namespace": "default"}, "project": "default",
                     "syncPolicy": {"automated": automated, "syncOptions": ["CreateNamespace=true"]}},
        });
        if let Some(phase) = last_phase {
            value["status"] = json!({"operationState": {
                "operation": {"sync": {"revision": REV, "autoHealAttemptsCount": 2}},
                "phase": phase, "message": "one or more objects failed to apply",
                "startedAt": "2026-03-01T11:59:00Z", "finishedAt": T0,
                "syncResult": {"revision": REV, "source": source()}}});
        }
        serde_json::from_value(value).unwrap()
    }

    fn resource(name: &str, status: &str, requires_pruning: bool) -> ResourceStatus {
        ResourceStatus {
            group: Some("apps".into()),
            kind: Some("Deployment".into()),
            namespace: Some("default".into()),
            name: Some(name.into()),
            status: Some(status.into()),
            requires_pruning: Some(requires_pruning),
            ..ResourceStatus::default()
        }
    }

    fn out_of_sync(revision: &str) -> SyncStatus {
        SyncStatus {
            status: SYNC_STATUS_OUT_OF_SYNC.into(),
            revision: Some(revision.into()),
            ..SyncStatus::default()
        }
    }

    fn decide_at(app: &Application, sync: &SyncStatus, resources: &[ResourceStatus], now: i64) -> AutoSync {
        let backoff = SelfHealBackoff::default();
        let input = AutoSyncInput {
            sync,
            resources,
            revision_changed: true,
            sync_window_open: true,
            self_heal: &backoff,
            now: at(now),
        };
        auto_sync(app, &input)
    }

    fn decide(app: &Application, sync: &SyncStatus, resources: &[ResourceStatus]) -> AutoSync {
        decide_at(app, sync, resources, 60)
    }

    fn drifted() -> Vec<ResourceStatus> {
        vec![
            resource("web", "OutOfSync", false),
            resource("db", "Synced", false),
        ]
    }

    fn expect_sync(decision: AutoSync) -> AutoSyncOperation {
        match decision {
            AutoSync::Sync(op) => *op,
            other => panic!("expected a sync, got {other:?}"),
        }
    }

    #[test]
    fn auto_sync_skips_before_looking_at_history() {
        let on = json!({"prune": true});
        let mut no_policy = app(on.clone(), None);
        no_policy.spec.sync_policy = None;
        let disabled = app(json!({"enabled": false}), None);
        let mut operating = app(on.clone(), None);
        operating.operation = Some(Operation::default());
        let mut deleting = app(on.clone(), None);
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(0)));
        let plain = app(on, None);
        let synced = SyncStatus {
            status: "Synced".into(),
            ..out_of_sync(REV)
        };
        let cases: [(&Application, &SyncStatus, AutoSyncSkip); 5] = [
            (&no_policy, &out_of_sync(REV), AutoSyncSkip::NotAutomated),
            (&disabled, &out_of_sync(REV), AutoSyncSkip::NotAutomated),
            (&operating, &out_of_sync(REV), AutoSyncSkip::OperationInProgress),
            (&deleting, &out_of_sync(REV), AutoSyncSkip::Deleting),
            (&plain, &synced, AutoSyncSkip::NotOutOfSync("Synced".into())),
        ];
        for (app, sync, want) in cases {
            assert_eq!(
                decide(app, sync, &drifted()),
                AutoSync::Skip(want.clone()),
                "{want}"
            );
        }
        assert_eq!(
            AutoSyncSkip::NotOutOfSync("Unknown".into()).to_string(),
            "Skipping auto-sync: application status is Unknown"
        );
        let backoff = SelfHealBackoff::default();
        let closed = AutoSyncInput {
            sync: &out_of_sync(REV),
            resources: &drifted(),
            revision_changed: true,
            sync_window_open: false,
            self_heal: &backoff,
            now: at(0),
        };
        assert_eq!(
            auto_sync(&plain, &closed),
            AutoSync::Skip(AutoSyncSkip::SyncWindowClosed)
        );
    }

    #[test]
    fn auto_sync_skips_when_only_pruning_is_needed_and_prune_is_off() {
        let no_prune = app(json!({}), None);
        let prune_only = [
            resource("web", "Synced", false),
            resource("old", "OutOfSync", true),
        ];
        assert_eq!(
            decide(&no_prune, &out_of_sync(REV), &prune_only),
            AutoSync::Skip(AutoSyncSkip::PruneOnly)
        );
        assert_eq!(
            AutoSyncSkip::PruneOnly.to_string(),
            "Skipping auto-sync: need to prune extra resources only but automated prune is disabled"
        );
        let op = expect_sync(decide(&no_prune, &out_of_sync(REV), &drifted()));
        assert!(!op.prune());
        assert_eq!(
            op.operation.sync.as_ref().unwrap().prune,
            None,
            "prune: false is omitted"
        );
    }

    #[test]
    fn a_first_automated_sync_carries_the_revision_options_and_default_retry() {
        let a = app(json!({"prune": true}), None);
        let op = expect_sync(decide(&a, &out_of_sync(REV), &drifted()));
        assert!(op.prune());
        assert!(!op.self_heal);
        assert_eq!(op.self_heal_resources(), None);
        assert_eq!(op.message, format!("Initiated automated sync to '{REV}'"));
        let sync = op.operation.sync.as_ref().unwrap();
        assert_eq!(sync.revision.as_deref(), Some(REV));
        assert_eq!(sync.sync_options, Some(strings(&["CreateNamespace=true"])));
        assert_eq!(sync.source, a.spec.source);
        assert_eq!(sync.auto_heal_attempts_count, None);
        assert_eq!(op.operation.initiated_by.as_ref().unwrap().automated, Some(true));
        assert_eq!(
            op.operation.retry.as_ref().unwrap().limit,
            Some(5),
            "{{limit: 5}} without spec.retry"
        );

        let mut with_retry = a.clone();
        let custom = retry(Some(2), Some("1m"), None, None);
        with_retry.spec.sync_policy.as_mut().unwrap().retry = Some(custom.clone());
        let op = expect_sync(decide(&with_retry, &out_of_sync(REV), &drifted()));
        assert_eq!(op.operation.retry, Some(custom));
    }

    #[test]
    fn a_failed_attempt_at_the_same_revision_is_not_retried() {
        let a = app(json!({"prune": true, "selfHeal": true}), Some("Failed"));
        assert_eq!(
            decide(&a, &out_of_sync(REV), &drifted()),
            AutoSync::Refuse(format!(
                "Failed last sync attempt to [{REV}]: one or more objects failed to apply"
            ))
        );
        let errored = app(json!({"prune": true}), Some("Error"));
        assert!(matches!(
            decide(&errored, &out_of_sync(REV), &drifted()),
            AutoSync::Refuse(_)
        ));
        let op = expect_sync(decide(&a, &out_of_sync(NEW), &drifted()));
        assert_eq!(
            op.operation.sync.unwrap().revision.as_deref(),
            Some(NEW),
            "a new revision syncs"
        );
    }

    #[test]
    fn a_finished_operation_without_a_sync_result_counts_as_attempted() {
        let mut a = app(json!({"prune": true}), Some("Error"));
        let state = a.status.as_mut().unwrap().operation_state.as_mut().unwrap();
        state.sync_result = None;
        state.message = Some("rpc error".into());
        assert_eq!(
            decide(&a, &out_of_sync(NEW), &drifted()),
            AutoSync::Refuse("Failed last sync attempt to []: rpc error".into())
        );
    }

    #[test]
    fn a_successful_attempt_is_not_repeated_without_self_heal() {
        let a = app(json!({"prune": true}), Some("Succeeded"));
        let skip = decide(&a, &out_of_sync(REV), &drifted());
        assert_eq!(
            skip,
            AutoSync::Skip(AutoSyncSkip::AlreadySynced(vec![REV.into()]))
        );
        let AutoSync::Skip(reason) = skip else {
            unreachable!()
        };
        assert_eq!(
            reason.to_string(),
            format!("Skipping auto-sync: most recent sync already to [{REV}]")
        );
        assert_eq!(reason.requeue_after(), None);
        assert!(matches!(
            decide(&a, &out_of_sync(NEW), &drifted()),
            AutoSync::Sync(_)
        ));
    }

    #[test]
    fn a_new_commit_that_does_not_touch_the_app_is_not_a_new_revision() {
        let a = app(json!({"prune": true}), Some("Succeeded"));
        let backoff = SelfHealBackoff::default();
        let resources = drifted();
        let sync = out_of_sync(NEW);
        let input = AutoSyncInput {
            sync: &sync,
            resources: &resources,
            revision_changed: false,
            sync_window_open: true,
            self_heal: &backoff,
            now: at(60),
        };
        assert_eq!(
            auto_sync(&a, &input),
            AutoSync::Skip(AutoSyncSkip::AlreadySynced(vec![NEW.into()]))
        );
    }

    #[test]
    fn a_changed_source_is_a_new_attempt_at_the_same_revision() {
        let mut a = app(json!({"prune": true}), Some("Failed"));
        a.spec.source.as_mut().unwrap().path = Some("other".into());
        assert!(matches!(
            decide(&a, &out_of_sync(REV), &drifted()),
            AutoSync::Sync(_)
        ));
    }

    #[test]
    fn self_heal_waits_for_the_backoff_then_syncs_only_drifted_resources() {
        let a = app(json!({"prune": true, "selfHeal": true}), Some("Succeeded"));
        // Two attempts made: the delay is 6s after the last operation finished at T0.
        let wait = decide_at(&a, &out_of_sync(REV), &drifted(), 2);
        let want = AutoSyncSkip::SelfHealBackoff {
            revisions: vec![REV.into()],
            remaining: Duration::from_secs(4),
        };
        assert_eq!(wait, AutoSync::Skip(want.clone()));
        assert_eq!(want.requeue_after(), Some(Duration::from_secs(4)));
        let op = expect_sync(decide_at(&a, &out_of_sync(REV), &drifted(), 6));
        assert!(op.self_heal);
        let sync = op.operation.sync.as_ref().unwrap();
        assert_eq!(sync.auto_heal_attempts_count, Some(3));
        let resources = op.self_heal_resources().unwrap();
        assert_eq!(resources.len(), 1, "only the non-Synced resource");
        assert_eq!(
            (
                resources[0].group.as_deref(),
                resources[0].kind.as_str(),
                resources[0].name.as_str()
            ),
            (Some("apps"), "Deployment", "web")
        );
        assert_eq!(resources[0].namespace, None);
    }

    #[test]
    fn self_heal_attempts_reset_after_the_cooldown() {
        let a = app(json!({"prune": true, "selfHeal": true}), Some("Succeeded"));
        let op = expect_sync(decide_at(&a, &out_of_sync(REV), &drifted(), 330));
        assert_eq!(op.operation.sync.unwrap().auto_heal_attempts_count, Some(1));
        let mut running = a.clone();
        running
            .status
            .as_mut()
            .unwrap()
            .operation_state
            .as_mut()
            .unwrap()
            .finished_at = None;
        let op = expect_sync(decide_at(&running, &out_of_sync(REV), &drifted(), 0));
        assert_eq!(op.operation.sync.unwrap().auto_heal_attempts_count, Some(1));
    }

    #[test]
    fn auto_sync_refuses_to_wipe_out_every_resource() {
        let a = app(json!({"prune": true}), None);
        let all_extraneous = [resource("a", "OutOfSync", true), resource("b", "OutOfSync", true)];
        assert_eq!(
            decide(&a, &out_of_sync(REV), &all_extraneous),
            AutoSync::Refuse(format!(
                "Skipping sync attempt to [{REV}]: auto-sync will wipe out all resources"
            ))
        );
        let allow = app(json!({"prune": true, "allowEmpty": true}), None);
        assert!(expect_sync(decide(&allow, &out_of_sync(REV), &all_extraneous)).prune());
    }

    #[test]
    fn multi_source_apps_compare_every_revision() {
        let mut a = app(json!({"prune": true}), Some("Succeeded"));
        a.spec.sources = Some(vec![serde_json::from_value(source()).unwrap()]);
        a.spec.source = None;
        let state = a.status.as_mut().unwrap().operation_state.as_mut().unwrap();
        let result = state.sync_result.as_mut().unwrap();
        result.revisions = Some(vec![REV.into(), REV.into()]);
        result.sources = a.spec.sources.clone();
        let sync = |revs: &[&str]| SyncStatus {
            status: SYNC_STATUS_OUT_OF_SYNC.into(),
            revisions: Some(strings(revs)),
            ..SyncStatus::default()
        };
        assert_eq!(
            decide(&a, &sync(&[REV, REV]), &drifted()),
            AutoSync::Skip(AutoSyncSkip::AlreadySynced(strings(&[REV, REV])))
        );
        let op = expect_sync(decide(&a, &sync(&[REV, NEW]), &drifted()));
        assert_eq!(op.message, format!("Initiated automated sync to '{REV}, {NEW}'"));
        let sync_op = op.operation.sync.unwrap();
        assert_eq!(sync_op.source, None);
        assert_eq!(sync_op.revisions, Some(strings(&[REV, NEW])));
    }
}
