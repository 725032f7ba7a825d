//! AppProject sync windows as Argo CD evaluates them (`SyncWindows.Matches`, `Active`, `InactiveAllows`,
//! `CanSync`, `SyncWindow.Validate`): which windows apply to an application, which are open at an instant,
//! whether a sync may start or go on, and when the next window opens or closes so that the controller can
//! requeue exactly then. Schedules are the 5-field cron of robfig/cron's standard parser; durations are Go
//! durations; the schedule is read on the wall clock of the window's time zone.
//!
//! A window opened by start `s` is open on `[s, s + duration)`. Upstream shifts `now` by the zone's offset
//! at the moment of the call instead of converting each start; the two agree except for a window that spans
//! a daylight-saving change, where this module keeps the real duration (see the DST tests).

use jiff::civil::Date;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use sluice_crds::application::SyncWindow;

/// The status message of a sync operation that a sync window holds back (`controller/sync.go`).
pub const BLOCKED: &str = "Sync operation blocked by sync window";

/// How far [`next_change`] looks ahead.
pub const NEXT_CHANGE_HORIZON_DAYS: i64 = 366;

/// robfig/cron gives up looking for a matching time after five years; so does this module.
const SEARCH_DAYS: i64 = 5 * 366;

/// What a window's `applications`, `namespaces` and `clusters` are matched against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowTarget<'a> {
    /// The Application's name.
    pub application: &'a str,
    /// `spec.destination.namespace`.
    pub namespace: &'a str,
    /// `spec.destination.server` (empty when the destination is given by name).
    pub cluster: &'a str,
    /// `spec.destination.name` (empty when the destination is given by server).
    pub cluster_name: &'a str,
}

/// The message of an operation held back by the windows: [`BLOCKED`], with the reason when a window is invalid.
pub fn blocked_message(error: Option<&str>) -> String {
    match error {
        Some(e) => format!("{BLOCKED}: {e}"),
        None => BLOCKED.to_string(),
    }
}

/// Checks one window as `SyncWindow.Validate` does. An unknown time zone is not an error upstream: the
/// window is read in UTC (Argo CD logs a warning and rewrites the zone).
pub fn validate(window: &SyncWindow) -> Result<(), String> {
    let kind = window.kind.as_deref().unwrap_or("");
    if kind != "allow" && kind != "deny" {
        return Err(format!("kind '{kind}' mismatch: can only be allow or deny"));
    }
    Compiled::new(window).map(|_| ())
}

/// The windows that apply to `target` (`SyncWindows.Matches`), in project order.
pub fn matching<'w>(windows: &'w [SyncWindow], target: &WindowTarget) -> Vec<&'w SyncWindow> {
    windows.iter().filter(|w| matches(w, target)).collect()
}

/// The windows that apply to `target` and are open at `now`; an invalid applying window is left out.
pub fn active<'w>(windows: &'w [SyncWindow], target: &WindowTarget, now: Timestamp) -> Vec<&'w SyncWindow> {
    matching(windows, target)
        .into_iter()
        .filter(|w| Compiled::new(w).is_ok_and(|c| c.is_open(now)))
        .collect()
}

/// Whether a sync may start at `now` (`SyncWindows.Matches(app).CanSync(isManual)`); an invalid applying
/// window blocks every sync, as upstream's error does.
pub fn can_sync(windows: &[SyncWindow], target: &WindowTarget, manual: bool, now: Timestamp) -> bool {
    evaluate(windows, target, now).is_ok_and(|s| s.permits(manual))
}

/// Whether a sync may start at `now`, or the reason the windows cannot be read (upstream's
/// "invalid sync windows: ..." error, which blocks the sync and is appended to [`BLOCKED`]).
pub fn check(
    windows: &[SyncWindow],
    target: &WindowTarget,
    manual: bool,
    now: Timestamp,
) -> Result<bool, String> {
    evaluate(windows, target, now).map(|s| s.permits(manual))
}

/// Whether a running sync that started at `started_at` may go on at `now`: it may whenever a new sync could
/// start; otherwise only through `syncOverrun`, when it was permitted at its start and every window now
/// holding it back (all open denies, or all closed allows when no deny is open) has `syncOverrun`.
pub fn can_continue(
    windows: &[SyncWindow],
    target: &WindowTarget,
    manual: bool,
    started_at: Timestamp,
    now: Timestamp,
) -> bool {
    let Ok(state) = evaluate(windows, target, now) else {
        return false;
    };
    if state.permits(manual) {
        return true;
    }
    let holding = if state.open_denies.is_empty() {
        &state.closed_allows
    } else {
        &state.open_denies
    };
    holding.iter().all(|w| w.sync_overrun == Some(true)) && can_sync(windows, target, manual, started_at)
}

/// The next instant after `now` (within [`NEXT_CHANGE_HORIZON_DAYS`]) at which a window that applies to
/// `target` opens or closes; `None` when none does. Invalid windows never change.
pub fn next_change(windows: &[SyncWindow], target: &WindowTarget, now: Timestamp) -> Option<Timestamp> {
    let horizon = now
        .checked_add(SignedDuration::from_hours(24 * NEXT_CHANGE_HORIZON_DAYS))
        .ok()?;
    matching(windows, target)
        .into_iter()
        .filter_map(|w| Compiled::new(w).ok())
        .filter_map(|c| c.next_change(now, horizon))
        .filter(|t| *t <= horizon)
        .min()
}

/// The windows that apply, sorted by what `CanSync` asks of them.
struct WindowState<'w> {
    open_denies: Vec<&'w SyncWindow>,
    open_allow: bool,
    closed_allows: Vec<&'w SyncWindow>,
}

impl WindowState<'_> {
    /// `CanSync`: an open deny wins (unless every open deny allows manual syncs and this one is manual); an
    /// open allow permits; allows that are all closed block (unless every one allows manual syncs).
    fn permits(&self, manual: bool) -> bool {
        let all_manual = |ws: &[&SyncWindow]| ws.iter().all(|w| w.manual_sync == Some(true));
        if !self.open_denies.is_empty() {
            return manual && all_manual(&self.open_denies);
        }
        if self.open_allow || self.closed_allows.is_empty() {
            return true;
        }
        manual && all_manual(&self.closed_allows)
    }
}

fn evaluate<'w>(
    windows: &'w [SyncWindow],
    target: &WindowTarget,
    now: Timestamp,
) -> Result<WindowState<'w>, String> {
    let mut state = WindowState {
        open_denies: Vec::new(),
        open_allow: false,
        closed_allows: Vec::new(),
    };
    for window in matching(windows, target) {
        let open = Compiled::new(window)
            .map_err(|e| format!("invalid sync windows: {e}"))?
            .is_open(now);
        match (window.kind.as_deref(), open) {
            (Some("deny"), true) => state.open_denies.push(window),
            (Some("allow"), true) => state.open_allow = true,
            (Some("allow"), false) => state.closed_allows.push(window),
            _ => {}
        }
    }
    Ok(state)
}

/// Argo CD's `globMatch`: `*` matches everything, otherwise a gobwas glob without separators.
fn glob_match(pattern: &str, value: &str) -> bool {
    pattern == "*" || crate::glob::matches(pattern, value, &[])
}

/// `Matches` for one window: applications, then clusters (by name or server), then namespaces; OR by
/// default, AND with `andOperator`, where a selector that is not set does not restrict.
fn matches(window: &SyncWindow, target: &WindowTarget) -> bool {
    let and = window.and_operator == Some(true);
    let list = |l: &Option<Vec<String>>| l.clone().unwrap_or_default();
    let (apps, clusters, namespaces) = (
        list(&window.applications),
        list(&window.clusters),
        list(&window.namespaces),
    );
    let mut matched = false;
    let mut set = false;
    if !apps.is_empty() {
        set = true;
        matched = apps.iter().any(|a| glob_match(a, target.application));
    }
    if and && set && !matched {
        return false;
    } else if !and && matched {
        return true;
    }
    if !clusters.is_empty() {
        set = true;
        matched = clusters.iter().any(|c| {
            (!target.cluster_name.is_empty() && glob_match(c, target.cluster_name))
                || (!target.cluster.is_empty() && glob_match(c, target.cluster))
        });
    }
    if and && set && !matched {
        return false;
    } else if !and && matched {
        return true;
    }
    if !namespaces.is_empty() {
        matched = namespaces.iter().any(|n| glob_match(n, target.namespace));
    }
    matched
}

/// A window whose schedule, duration and zone have been read.
struct Compiled {
    schedule: Schedule,
    duration: SignedDuration,
    zone: TimeZone,
}

impl Compiled {
    fn new(window: &SyncWindow) -> Result<Compiled, String> {
        let spec = window.schedule.as_deref().unwrap_or("");
        let schedule = Schedule::parse(spec).map_err(|e| format!("cannot parse schedule '{spec}': {e}"))?;
        let text = window.duration.as_deref().unwrap_or("");
        let duration = parse_duration(text).map_err(|e| format!("cannot parse duration '{text}': {e}"))?;
        let zone = match window.time_zone.as_deref() {
            None | Some("") | Some("UTC") => TimeZone::UTC,
            Some(name) => TimeZone::get(name).unwrap_or(TimeZone::UTC),
        };
        Ok(Compiled {
            schedule,
            duration,
            zone,
        })
    }

    /// The scheduled starts on one civil date of the zone, in order. A wall time skipped by a DST change
    /// never starts; one repeated by a DST change starts twice, as robfig/cron's hourly jobs do.
    fn starts_on(&self, date: Date) -> Vec<Timestamp> {
        if !self.schedule.day_matches(date) {
            return Vec::new();
        }
        let mut starts = Vec::new();
        for hour in bits(self.schedule.hours, 0, 23) {
            for minute in bits(self.schedule.minutes, 0, 59) {
                let dt = date.at(hour as i8, minute as i8, 0, 0);
                let offsets = match self.zone.to_ambiguous_timestamp(dt).offset() {
                    AmbiguousOffset::Unambiguous { offset } => vec![offset],
                    AmbiguousOffset::Gap { .. } => vec![],
                    AmbiguousOffset::Fold { before, after } => vec![before, after],
                };
                starts.extend(offsets.into_iter().filter_map(|o| o.to_timestamp(dt).ok()));
            }
        }
        starts.sort();
        starts
    }

    /// The latest start at or before `at`, looking back at most `days` civil days.
    fn latest_start(&self, at: Timestamp, days: i64) -> Option<Timestamp> {
        let mut date = self.local_date(at).tomorrow().ok()?;
        for _ in 0..=days + 1 {
            if let Some(s) = self.starts_on(date).into_iter().rev().find(|s| *s <= at) {
                return Some(s);
            }
            date = date.yesterday().ok()?;
        }
        None
    }

    /// The earliest start after `after` and no later than `until`.
    fn next_start(&self, after: Timestamp, until: Timestamp) -> Option<Timestamp> {
        let mut date = self.local_date(after).yesterday().ok()?;
        let last = self.local_date(until).tomorrow().ok()?;
        while date <= last {
            if let Some(s) = self.starts_on(date).into_iter().find(|s| *s > after) {
                return Some(s);
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    fn local_date(&self, at: Timestamp) -> Date {
        self.zone.to_datetime(at).date()
    }

    /// How many civil days back a start can lie and still hold the window open.
    fn lookback_days(&self) -> i64 {
        (self.duration.as_secs() / 86_400 + 1).min(SEARCH_DAYS)
    }

    /// Open at `at`: the latest start `s <= at` has `at < s + duration`.
    fn is_open(&self, at: Timestamp) -> bool {
        if !self.duration.is_positive() {
            return false;
        }
        self.latest_start(at, self.lookback_days())
            .and_then(|s| s.checked_add(self.duration).ok())
            .is_some_and(|end| at < end)
    }

    /// When this window next opens (closed now) or closes (open now: the end of the run of starts whose
    /// open spans touch or overlap). A run that outlasts [`MERGE_STEPS`] jumps yields the end reached so
    /// far: an instant no later than the real close, so a requeue then is early, never late.
    fn next_change(&self, now: Timestamp, horizon: Timestamp) -> Option<Timestamp> {
        if !self.is_open(now) {
            return if self.duration.is_positive() {
                self.next_start(now, horizon)
            } else {
                None
            };
        }
        let mut start = self.latest_start(now, self.lookback_days())?;
        let mut end = start.checked_add(self.duration).ok()?;
        for _ in 0..MERGE_STEPS {
            // The latest start inside the current span carries the window furthest.
            match self.latest_start(end, self.lookback_days()) {
                Some(later) if later > start => {
                    start = later;
                    end = later.checked_add(self.duration).ok()?;
                }
                _ => return Some(end),
            }
            if end > horizon {
                return None;
            }
        }
        Some(end)
    }
}

/// How many overlapping starts [`Compiled::next_change`] follows before it settles for an early requeue.
const MERGE_STEPS: usize = 64;

/// The values a bit set holds within `[lo, hi]`, in ascending order.
fn bits(set: u64, lo: u32, hi: u32) -> impl Iterator<Item = u32> {
    (lo..=hi).filter(move |v| set & (1 << v) != 0)
}

/// A robfig/cron schedule of the standard parser (minute hour day-of-month month day-of-week).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Schedule {
    minutes: u64,
    hours: u64,
    dom: u64,
    months: u64,
    dow: u64,
    /// The day-of-month field was `*` or `?` (robfig's starBit).
    dom_star: bool,
    /// The day-of-week field was `*` or `?`.
    dow_star: bool,
}

/// The bounds and names of one cron field.
struct FieldSpec {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTH_NAMES: &[&str] = &[
    "", "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DOW_NAMES: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const FIELDS: [FieldSpec; 5] = [
    FieldSpec {
        min: 0,
        max: 59,
        names: &[],
    },
    FieldSpec {
        min: 0,
        max: 23,
        names: &[],
    },
    FieldSpec {
        min: 1,
        max: 31,
        names: &[],
    },
    FieldSpec {
        min: 1,
        max: 12,
        names: MONTH_NAMES,
    },
    FieldSpec {
        min: 0,
        max: 6,
        names: DOW_NAMES,
    },
];

impl Schedule {
    /// Parses as `cron.NewParser(Minute | Hour | Dom | Month | Dow)`, with robfig's error messages.
    /// That parser has no `Descriptor` option, so `@daily` and friends are refused, as upstream does.
    fn parse(spec: &str) -> Result<Schedule, String> {
        if spec.is_empty() {
            return Err("empty spec string".into());
        }
        if spec.starts_with('@') {
            return Err(format!("parser does not accept descriptors: {spec}"));
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            ));
        }
        let mut parsed = [(0u64, false); 5];
        for (i, field) in fields.iter().enumerate() {
            parsed[i] = parse_field(field, &FIELDS[i])?;
        }
        Ok(Schedule {
            minutes: parsed[0].0,
            hours: parsed[1].0,
            dom: parsed[2].0,
            months: parsed[3].0,
            dow: parsed[4].0,
            dom_star: parsed[2].1,
            dow_star: parsed[4].1,
        })
    }

    /// robfig's `dayMatches`: when either day field is `*`, both must match; when both are restricted,
    /// either may.
    fn day_matches(&self, date: Date) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.dom & (1 << date.day()) != 0;
        let dow = self.dow & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }
}

/// One comma-separated field: the union of its ranges, and whether it began with `*`/`?` unstepped.
fn parse_field(field: &str, spec: &FieldSpec) -> Result<(u64, bool), String> {
    let mut set = 0u64;
    let mut star = false;
    for expr in field.split(',') {
        let (bits, is_star) = parse_range(expr, spec)?;
        set |= bits;
        star |= is_star;
    }
    Ok((set, star))
}

/// robfig's `getRange`: `*`, `?`, `n`, `a-b`, each optionally `/step`; `n/step` runs to the maximum.
fn parse_range(expr: &str, spec: &FieldSpec) -> Result<(u64, bool), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let (mut start, mut end, mut star);
    if low_and_high[0] == "*" || low_and_high[0] == "?" {
        (start, end, star) = (spec.min, spec.max, true);
    } else {
        start = parse_int_or_name(low_and_high[0], spec.names)?;
        end = match low_and_high.len() {
            1 => start,
            2 => parse_int_or_name(low_and_high[1], spec.names)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        star = false;
    }
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = parse_uint(range_and_step[1])?;
            if low_and_high.len() == 1 {
                end = spec.max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < spec.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            spec.min
        ));
    }
    if end > spec.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            spec.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    let mut bits = 0u64;
    while start <= end {
        bits |= 1 << start;
        start += step;
    }
    Ok((bits, star))
}

fn parse_int_or_name(expr: &str, names: &[&str]) -> Result<u32, String> {
    let lower = expr.to_ascii_lowercase();
    match names.iter().position(|n| !n.is_empty() && *n == lower) {
        Some(i) => Ok(i as u32),
        None => parse_uint(expr),
    }
}

/// robfig's `mustParseInt` over Go's `strconv.Atoi`.
fn parse_uint(expr: &str) -> Result<u32, String> {
    let digits = expr.strip_prefix(['+', '-']).unwrap_or(expr);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "failed to parse int from {expr}: strconv.Atoi: parsing \"{expr}\": invalid syntax"
        ));
    }
    let value: i64 = expr.parse().map_err(|_| {
        format!("failed to parse int from {expr}: strconv.Atoi: parsing \"{expr}\": value out of range")
    })?;
    if value < 0 {
        return Err(format!("negative number ({value}) not allowed: {expr}"));
    }
    // Values this large fail the range checks anyway; keep them out of the bit shifts.
    Ok(value.min(1000) as u32)
}

/// Go's `time.ParseDuration`, signed ("-1h" is a valid window that never opens), with its messages.
fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if body == "0" {
        return Ok(SignedDuration::ZERO);
    }
    if !body.is_empty() && body.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!("time: missing unit in duration \"{text}\""));
    }
    let parsed = sluice_crds::duration::parse_go_duration(body).ok_or_else(|| duration_error(text, body))?;
    let duration =
        SignedDuration::try_from(parsed).map_err(|_| format!("time: invalid duration \"{text}\""))?;
    Ok(if negative { -duration } else { duration })
}

/// Go's message for a duration it refuses: a unit it does not know, a number without unit, or neither.
fn duration_error(text: &str, body: &str) -> String {
    let is_number = |c: char| c.is_ascii_digit() || c == '.';
    let mut rest = body;
    while let Some(start) = rest.find(|c: char| !is_number(c)) {
        if start == 0 {
            break;
        }
        let unit_len = rest[start..].find(is_number).unwrap_or(rest.len() - start);
        let unit = &rest[start..start + unit_len];
        if !["ns", "us", "µs", "μs", "ms", "s", "m", "h"].contains(&unit) {
            return format!("time: unknown unit \"{unit}\" in duration \"{text}\"");
        }
        rest = &rest[start + unit_len..];
        if !rest.is_empty() && rest.find(|c: char| !is_number(c)).is_none() {
            return format!("time: missing unit in duration \"{text}\"");
        }
    }
    format!("time: invalid duration \"{text}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn window(kind: &str, schedule: &str, duration: &str) -> SyncWindow {
        SyncWindow {
            kind: Some(kind.into()),
            schedule: Some(schedule.into()),
            duration: Some(duration.into()),
            applications: Some(vec!["*".into()]),
            ..Default::default()
        }
    }

    fn zoned(mut w: SyncWindow, zone: &str) -> SyncWindow {
        w.time_zone = Some(zone.into());
        w
    }

    fn manual(mut w: SyncWindow) -> SyncWindow {
        w.manual_sync = Some(true);
        w
    }

    fn overrun(mut w: SyncWindow) -> SyncWindow {
        w.sync_overrun = Some(true);
        w
    }

    const APP: WindowTarget<'static> = WindowTarget {
        application: "guestbook",
        namespace: "default",
        cluster: "https://kubernetes.default.svc",
        cluster_name: "in-cluster",
    };

    #[test]
    fn window_open_from_its_start_for_its_duration() {
        // 2026-11-30 is a Monday.
        let weekdays = window("allow", "0 9 * * 1-5", "8h");
        let cases = [
            ("2026-11-30T08:59:59Z", false),
            ("2026-11-30T09:00:00Z", true),
            ("2026-11-30T12:00:00Z", true),
            ("2026-11-30T16:59:59Z", true),
            ("2026-11-30T17:00:00Z", false),
            ("2026-12-05T10:00:00Z", false), // Saturday
            ("2026-12-07T10:00:00Z", true),  // Monday again
        ];
        for (now, want) in cases {
            assert_eq!(
                !active(std::slice::from_ref(&weekdays), &APP, at(now)).is_empty(),
                want,
                "{now}"
            );
        }
    }

    #[test]
    fn upstream_sync_window_active_cases() {
        // TestSyncWindow_Active: "* 10 * * *" for 2h, asked at 11:00 and 13:00 UTC, also via a UTC-4 clock.
        for kind in ["allow", "deny"] {
            let w = [window(kind, "* 10 * * *", "2h")];
            for (now, want) in [
                ("2026-12-03T11:00:00Z", true),
                ("2026-12-03T13:00:00Z", false),
                ("2026-12-03T07:00:00-04:00", true),
                ("2026-12-03T09:00:00-04:00", false),
            ] {
                assert_eq!(!active(&w, &APP, at(now)).is_empty(), want, "{kind} at {now}");
            }
        }
    }

    #[test]
    fn schedules_as_robfig_reads_them() {
        let cases: &[(&str, &str, &str, bool)] = &[
            ("* * * * *", "1m", "2026-06-01T12:34:56Z", true),
            ("*/15 * * * *", "5m", "2026-06-01T12:31:00Z", true),
            ("*/15 * * * *", "5m", "2026-06-01T12:36:00Z", false),
            ("10-20/5 * * * *", "1m", "2026-06-01T12:15:30Z", true),
            ("10-20/5 * * * *", "1m", "2026-06-01T12:25:30Z", false),
            ("5/20 * * * *", "1m", "2026-06-01T12:45:10Z", true),
            ("0 0,12 * * *", "1h", "2026-06-01T12:30:00Z", true),
            ("0 0 1 JAN *", "24h", "2027-01-01T10:00:00Z", true),
            ("0 0 1 jan-mar *", "24h", "2026-03-01T10:00:00Z", true),
            ("0 0 * * SUN", "24h", "2026-06-07T10:00:00Z", true), // Sunday
            ("0 0 * * sat", "24h", "2026-06-07T10:00:00Z", false),
            ("0 0 ? * 0", "24h", "2026-06-07T10:00:00Z", true),
            // Both day fields restricted: either matches (1st of the month, or a Friday).
            ("0 0 1 * 5", "1h", "2026-06-05T00:30:00Z", true), // Friday the 5th
            ("0 0 1 * 5", "1h", "2026-06-01T00:30:00Z", true), // Monday the 1st
            ("0 0 1 * 5", "1h", "2026-06-02T00:30:00Z", false),
            // Day of month starred: only the weekday counts.
            ("0 0 * * 5", "1h", "2026-06-01T00:30:00Z", false),
            ("0 0 */2 * 5", "1h", "2026-06-03T00:30:00Z", true), // stepped star is a restriction
            ("0 0 29 2 *", "24h", "2028-02-29T12:00:00Z", true),
            ("0 0 30 2 *", "24h", "2028-02-29T12:00:00Z", false),
            ("0 22 * * *", "4h", "2026-06-02T01:59:00Z", true), // opened the day before
            ("0 0 1 1 *", "8784h", "2026-12-31T12:00:00Z", true), // opened almost a year ago
        ];
        for (schedule, duration, now, want) in cases {
            let w = [window("deny", schedule, duration)];
            assert_eq!(
                !active(&w, &APP, at(now)).is_empty(),
                *want,
                "{schedule} {duration} at {now}"
            );
        }
    }

    #[test]
    fn invalid_windows_rejected_with_upstreams_messages() {
        let cases: &[(&str, &str, &str, &str)] = &[
            ("allow", "* * * * *", "1h", ""),
            ("deny", "0 1 * * *", "-1h", ""),
            (
                "",
                "* * * * *",
                "1h",
                "kind '' mismatch: can only be allow or deny",
            ),
            (
                "block",
                "* * * * *",
                "1h",
                "kind 'block' mismatch: can only be allow or deny",
            ),
            ("allow", "", "1h", "cannot parse schedule '': empty spec string"),
            (
                "allow",
                "* * * *",
                "1h",
                "cannot parse schedule '* * * *': expected exactly 5 fields, found 4: [* * * *]",
            ),
            (
                "allow",
                "0 * * * * *",
                "1h",
                "cannot parse schedule '0 * * * * *': expected exactly 5 fields, found 6: [0 * * * * *]",
            ),
            (
                "allow",
                "@daily",
                "1h",
                "cannot parse schedule '@daily': parser does not accept descriptors: @daily",
            ),
            (
                "allow",
                "60 * * * *",
                "1h",
                "cannot parse schedule '60 * * * *': end of range (60) above maximum (59): 60",
            ),
            (
                "allow",
                "* * 0 * *",
                "1h",
                "cannot parse schedule '* * 0 * *': beginning of range (0) below minimum (1): 0",
            ),
            (
                "allow",
                "* * * * 7",
                "1h",
                "cannot parse schedule '* * * * 7': end of range (7) above maximum (6): 7",
            ),
            (
                "allow",
                "5-1 * * * *",
                "1h",
                "cannot parse schedule '5-1 * * * *': beginning of range (5) beyond end of range (1): 5-1",
            ),
            (
                "allow",
                "*/0 * * * *",
                "1h",
                "cannot parse schedule '*/0 * * * *': step of range should be a positive number: */0",
            ),
            (
                "allow",
                "1-2-3 * * * *",
                "1h",
                "cannot parse schedule '1-2-3 * * * *': too many hyphens: 1-2-3",
            ),
            (
                "allow",
                "*/2/3 * * * *",
                "1h",
                "cannot parse schedule '*/2/3 * * * *': too many slashes: */2/3",
            ),
            (
                "allow",
                "x * * * *",
                "1h",
                "cannot parse schedule 'x * * * *': failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            (
                "allow",
                "* * * * *",
                "",
                "cannot parse duration '': time: invalid duration \"\"",
            ),
            (
                "allow",
                "* * * * *",
                "30",
                "cannot parse duration '30': time: missing unit in duration \"30\"",
            ),
            (
                "allow",
                "* * * * *",
                "2d",
                "cannot parse duration '2d': time: unknown unit \"d\" in duration \"2d\"",
            ),
            (
                "allow",
                "* * * * *",
                "1000days",
                "cannot parse duration '1000days': time: unknown unit \"days\" in duration \"1000days\"",
            ),
            (
                "allow",
                "* * * * *",
                "1h30",
                "cannot parse duration '1h30': time: missing unit in duration \"1h30\"",
            ),
            (
                "allow",
                "* * * * *",
                "h",
                "cannot parse duration 'h': time: invalid duration \"h\"",
            ),
            (
                "allow",
                "* * *",
                "1h",
                "cannot parse schedule '* * *': expected exactly 5 fields, found 3: [* * *]",
            ),
        ];
        for (kind, schedule, duration, want) in cases {
            let got = validate(&window(kind, schedule, duration));
            let got = got.err().unwrap_or_default();
            assert_eq!(got, *want, "{kind} {schedule} {duration}");
        }
        // An unknown time zone is read as UTC, as upstream does.
        assert_eq!(
            validate(&zoned(window("allow", "* * * * *", "1h"), "Mars/Olympus")),
            Ok(())
        );
    }

    #[test]
    fn can_sync_as_upstream_decides() {
        let now = at("2026-06-01T12:30:00Z");
        let open_allow = window("allow", "0 12 * * *", "1h");
        let closed_allow = window("allow", "0 2 * * *", "1h");
        let open_deny = window("deny", "0 12 * * *", "1h");
        let closed_deny = window("deny", "0 2 * * *", "1h");
        let cases: Vec<(&str, Vec<SyncWindow>, bool, bool)> = vec![
            ("no windows", vec![], true, true),
            ("open allow", vec![open_allow.clone()], true, true),
            ("closed allow", vec![closed_allow.clone()], false, false),
            (
                "closed allow with manualSync",
                vec![manual(closed_allow.clone())],
                false,
                true,
            ),
            (
                "one open allow of two",
                vec![open_allow.clone(), closed_allow.clone()],
                true,
                true,
            ),
            ("open deny", vec![open_deny.clone()], false, false),
            (
                "open deny with manualSync",
                vec![manual(open_deny.clone())],
                false,
                true,
            ),
            (
                "deny beats allow",
                vec![open_allow.clone(), open_deny.clone()],
                false,
                false,
            ),
            (
                "deny beats allow, manual",
                vec![manual(open_allow.clone()), manual(open_deny.clone())],
                false,
                true,
            ),
            (
                "every open deny must allow manual syncs",
                vec![manual(open_deny.clone()), open_deny.clone()],
                false,
                false,
            ),
            ("closed deny", vec![closed_deny.clone()], true, true),
            (
                "closed deny, closed allow",
                vec![closed_deny.clone(), closed_allow.clone()],
                false,
                false,
            ),
            (
                "every closed allow must allow manual syncs",
                vec![manual(closed_allow.clone()), closed_allow.clone()],
                false,
                false,
            ),
            (
                "invalid schedule blocks",
                vec![window("allow", "bad", "1h")],
                false,
                false,
            ),
            (
                "invalid duration blocks",
                vec![window("deny", "* * * * *", "1x")],
                false,
                false,
            ),
            (
                "unknown kind is ignored",
                vec![window("pause", "* * * * *", "1h")],
                true,
                true,
            ),
        ];
        for (name, windows, auto, by_hand) in cases {
            assert_eq!(can_sync(&windows, &APP, false, now), auto, "{name}: automated");
            assert_eq!(can_sync(&windows, &APP, true, now), by_hand, "{name}: manual");
        }
        let err = check(&[window("allow", "bad", "1h")], &APP, true, now).unwrap_err();
        assert_eq!(
            blocked_message(Some(&err)),
            "Sync operation blocked by sync window: invalid sync windows: cannot parse schedule 'bad': \
             expected exactly 5 fields, found 1: [bad]"
        );
        assert_eq!(blocked_message(None), BLOCKED);
    }

    #[test]
    fn windows_match_by_application_cluster_or_namespace() {
        let sel = |apps: &[&str], clusters: &[&str], namespaces: &[&str], and: bool| SyncWindow {
            applications: (!apps.is_empty()).then(|| apps.iter().map(|s| s.to_string()).collect()),
            clusters: (!clusters.is_empty()).then(|| clusters.iter().map(|s| s.to_string()).collect()),
            namespaces: (!namespaces.is_empty()).then(|| namespaces.iter().map(|s| s.to_string()).collect()),
            and_operator: Some(and),
            ..window("deny", "* * * * *", "1h")
        };
        let cases = [
            ("nothing selected", sel(&[], &[], &[], false), false),
            ("application glob", sel(&["guest*"], &[], &[], false), true),
            ("application ?", sel(&["guestboo?"], &[], &[], false), true),
            ("application class", sel(&["[fg]uestbook"], &[], &[], false), true),
            ("other application", sel(&["billing"], &[], &[], false), false),
            ("cluster by name", sel(&[], &["in-*"], &[], false), true),
            (
                "cluster by server",
                sel(&[], &["https://kubernetes.*"], &[], false),
                true,
            ),
            ("namespace", sel(&[], &[], &["def*"], false), true),
            (
                "or: any selector",
                sel(&["billing"], &[], &["default"], false),
                true,
            ),
            (
                "and: all set selectors",
                sel(&["guestbook"], &["in-cluster"], &["default"], true),
                true,
            ),
            (
                "and: namespace differs",
                sel(&["guestbook"], &["in-cluster"], &["prod"], true),
                false,
            ),
            (
                "and: cluster differs",
                sel(&["guestbook"], &["prod"], &["default"], true),
                false,
            ),
            (
                "and: application differs",
                sel(&["billing"], &[], &["default"], true),
                false,
            ),
            (
                "and: unset selectors do not restrict",
                sel(&["guestbook"], &[], &[], true),
                true,
            ),
        ];
        for (name, w, want) in cases {
            assert_eq!(
                matching(std::slice::from_ref(&w), &APP).len() == 1,
                want,
                "{name}"
            );
        }
        let by_server_only = WindowTarget {
            cluster_name: "",
            ..APP
        };
        assert!(matches(
            &sel(&[], &["https://kubernetes.default.svc"], &[], false),
            &by_server_only
        ));
        assert!(!matches(&sel(&[], &["in-cluster"], &[], false), &by_server_only));
        // A window for another application does not hold this one back.
        assert!(can_sync(
            &[sel(&["billing"], &[], &[], false)],
            &APP,
            false,
            at("2026-06-01T00:00:00Z")
        ));
    }

    #[test]
    fn schedules_read_on_the_wall_clock_of_the_time_zone() {
        let amsterdam = zoned(window("deny", "0 22 * * *", "1h"), "Europe/Amsterdam");
        let cases = [
            ("2026-01-15T21:30:00Z", true),  // 22:30 CET
            ("2026-01-15T22:30:00Z", false), // 23:30 CET
            ("2026-07-15T20:30:00Z", true),  // 22:30 CEST
            ("2026-07-15T21:30:00Z", false), // 23:30 CEST
        ];
        for (now, want) in cases {
            assert_eq!(
                !active(std::slice::from_ref(&amsterdam), &APP, at(now)).is_empty(),
                want,
                "{now}"
            );
        }
    }

    #[test]
    fn window_across_a_dst_change_keeps_its_real_duration_not_upstreams_current_offset_shift() {
        // 2026-03-08: New York springs forward at 02:00 EST to 03:00 EDT.
        let night = zoned(window("deny", "0 1 * * *", "3h"), "America/New_York");
        // Opens 01:00 EST = 06:00Z and lasts three real hours, to 09:00Z (05:00 EDT).
        assert!(!active(std::slice::from_ref(&night), &APP, at("2026-03-08T08:30:00Z")).is_empty());
        assert!(active(std::slice::from_ref(&night), &APP, at("2026-03-08T09:00:00Z")).is_empty());
        assert_eq!(
            next_change(std::slice::from_ref(&night), &APP, at("2026-03-08T07:00:00Z")),
            Some(at("2026-03-08T09:00:00Z"))
        );
    }

    #[test]
    fn wall_times_skipped_by_dst_never_start_and_repeated_ones_start_twice() {
        let skipped = zoned(window("deny", "30 2 * * *", "10m"), "America/New_York");
        // 02:30 does not exist on 2026-03-08: the next start is 02:30 EDT on 03-09 (06:30Z).
        assert_eq!(
            next_change(std::slice::from_ref(&skipped), &APP, at("2026-03-08T05:00:00Z")),
            Some(at("2026-03-09T06:30:00Z"))
        );
        // 2026-11-01: 01:00-02:00 EDT is repeated as EST; 01:30 starts at 05:30Z and again at 06:30Z.
        let repeated = [zoned(window("deny", "30 1 * * *", "10m"), "America/New_York")];
        assert!(!active(&repeated, &APP, at("2026-11-01T05:35:00Z")).is_empty());
        assert!(active(&repeated, &APP, at("2026-11-01T06:00:00Z")).is_empty());
        assert!(!active(&repeated, &APP, at("2026-11-01T06:35:00Z")).is_empty());
        assert_eq!(
            next_change(&repeated, &APP, at("2026-11-01T05:45:00Z")),
            Some(at("2026-11-01T06:30:00Z"))
        );
    }

    #[test]
    fn next_change_is_the_next_open_or_close() {
        let now = at("2026-06-01T12:30:00Z");
        let cases: Vec<(&str, Vec<SyncWindow>, Option<&str>)> = vec![
            ("no windows", vec![], None),
            (
                "closed: next open",
                vec![window("allow", "0 14 * * *", "1h")],
                Some("2026-06-01T14:00:00Z"),
            ),
            (
                "closed: tomorrow",
                vec![window("allow", "0 2 * * *", "1h")],
                Some("2026-06-02T02:00:00Z"),
            ),
            (
                "open: its close",
                vec![window("deny", "0 12 * * *", "1h")],
                Some("2026-06-01T13:00:00Z"),
            ),
            (
                "earliest of several",
                vec![
                    window("deny", "0 12 * * *", "2h"),
                    window("allow", "0 13 * * *", "1h"),
                ],
                Some("2026-06-01T13:00:00Z"),
            ),
            // Starts every 30 minutes lasting 45: the spans overlap until the last start at 12:30.
            (
                "overlapping starts merge",
                vec![window("deny", "0,30 10-12 * * *", "45m")],
                Some("2026-06-01T13:15:00Z"),
            ),
            // Back-to-back spans never leave a gap: the window stays open until the run ends.
            (
                "touching spans merge",
                vec![window("deny", "0 12,13 * * *", "1h")],
                Some("2026-06-01T14:00:00Z"),
            ),
            (
                "nothing within a year",
                vec![window("deny", "0 0 30 2 *", "1h")],
                None,
            ),
            (
                "invalid windows never change",
                vec![window("deny", "bad", "1h")],
                None,
            ),
            ("never-open window", vec![window("deny", "* * * * *", "0s")], None),
        ];
        for (name, windows, want) in cases {
            assert_eq!(next_change(&windows, &APP, now), want.map(at), "{name}");
        }
        // A window open every minute for an hour never closes; the answer is an early requeue or none.
        let always = [window("deny", "* * * * *", "1h")];
        if let Some(t) = next_change(&always, &APP, now) {
            assert!(t > now && !active(&always, &APP, t).is_empty());
        }
    }

    #[test]
    fn running_sync_goes_on_only_through_sync_overrun() {
        let started = at("2026-06-01T11:50:00Z");
        let now = at("2026-06-01T12:30:00Z");
        let deny_now = window("deny", "0 12 * * *", "1h");
        let allow_then = window("allow", "0 11 * * *", "1h"); // closed at 12:00
        let cases: Vec<(&str, Vec<SyncWindow>, bool)> = vec![
            (
                "no window -> deny with overrun",
                vec![overrun(deny_now.clone())],
                true,
            ),
            ("no window -> deny without overrun", vec![deny_now.clone()], false),
            (
                "allow with overrun -> deny with overrun",
                vec![overrun(allow_then.clone()), overrun(deny_now.clone())],
                true,
            ),
            (
                "allow with overrun -> deny without overrun",
                vec![overrun(allow_then.clone()), deny_now.clone()],
                false,
            ),
            (
                "allow without overrun -> deny with overrun",
                vec![allow_then.clone(), overrun(deny_now.clone())],
                true,
            ),
            (
                "allow without overrun -> deny without overrun",
                vec![allow_then.clone(), deny_now.clone()],
                false,
            ),
            (
                "allow with overrun -> allow ends",
                vec![overrun(allow_then.clone())],
                true,
            ),
            (
                "allow without overrun -> allow ends",
                vec![allow_then.clone()],
                false,
            ),
            (
                "all allows must have overrun",
                vec![overrun(allow_then.clone()), window("allow", "30 11 * * *", "20m")],
                false,
            ),
        ];
        for (name, windows, want) in cases {
            assert_eq!(can_continue(&windows, &APP, false, started, now), want, "{name}");
        }
        // A sync that was itself blocked at its start gains nothing from overrun.
        let blocked_start = at("2026-06-01T10:30:00Z");
        assert!(!can_continue(
            &[overrun(allow_then)],
            &APP,
            false,
            blocked_start,
            now
        ));
    }

    #[test]
    fn arbitrary_schedules_and_durations_never_panic() {
        let alphabet: Vec<char> = "0123456789*/-,? @abcdefjmnorstuhmsx.+".chars().collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let now = at("2026-06-01T12:00:00Z");
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..(seed % 24) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let w = [window("deny", &text, &text), window("allow", &text, "90m")];
            let _ = validate(&w[0]);
            let _ = validate(&w[1]);
            let _ = can_sync(&w, &APP, false, now);
            let _ = next_change(&w, &APP, now);
        }
    }
}
