//! Ages and delays as kubectl prints them (`k8s.io/apimachinery/pkg/util/duration.HumanDuration`): two or three
//! significant figures, "7d", "2m30s", "3h59m", "<invalid>" for a time well in the future.

use jiff::Timestamp;

const SECOND: i64 = 1_000_000_000;
const MINUTE: i64 = 60 * SECOND;
const HOUR: i64 = 60 * MINUTE;

/// Nanoseconds from `from` to `to`, saturated to the range of a Go `time.Duration` (as Go's `Time.Sub` does).
pub fn nanos_between(from: Timestamp, to: Timestamp) -> i64 {
    let delta = to.as_nanosecond() - from.as_nanosecond();
    i64::try_from(delta).unwrap_or(if delta > 0 { i64::MAX } else { i64::MIN })
}

/// The age of an object created at `created`, seen at `now`; an unknown creation time is the zero time of Go,
/// whose age saturates to "292y".
pub fn age(created: Option<Timestamp>, now: Timestamp) -> String {
    match created {
        Some(created) => human_duration(nanos_between(created, now)),
        None => human_duration(i64::MAX),
    }
}

/// A duration in nanoseconds, the way kubectl prints ages.
pub fn human_duration(nanos: i64) -> String {
    let seconds = nanos / SECOND;
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = nanos / MINUTE;
    if minutes < 10 {
        return with_rest(minutes, "m", seconds % 60, "s");
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = nanos / HOUR;
    if hours < 8 {
        return with_rest(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return with_rest(hours / 24, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return with_rest(hours / 24 / 365, "y", (hours / 24) % 365, "d");
    }
    format!("{}y", hours / 24 / 365)
}

/// "2m30s", or "2m" when the smaller unit is zero.
fn with_rest(big: i64, big_unit: &str, small: i64, small_unit: &str) -> String {
    if small == 0 {
        format!("{big}{big_unit}")
    } else {
        format!("{big}{big_unit}{small}{small_unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_duration_matches_kubectl_at_every_boundary() {
        let cases: &[(i64, &str)] = &[
            (-3 * SECOND, "<invalid>"),
            (-SECOND - SECOND / 2, "0s"),
            (0, "0s"),
            (59 * SECOND, "59s"),
            (119 * SECOND, "119s"),
            (120 * SECOND, "2m"),
            (150 * SECOND, "2m30s"),
            (9 * MINUTE + 59 * SECOND, "9m59s"),
            (10 * MINUTE + 30 * SECOND, "10m"),
            (179 * MINUTE, "179m"),
            (3 * HOUR, "3h"),
            (4 * HOUR - SECOND, "3h59m"),
            (7 * HOUR + 59 * MINUTE, "7h59m"),
            (8 * HOUR, "8h"),
            (47 * HOUR, "47h"),
            (48 * HOUR, "2d"),
            (50 * HOUR, "2d2h"),
            (7 * 24 * HOUR, "7d"),
            (8 * 24 * HOUR, "8d"),
            (729 * 24 * HOUR, "729d"),
            (730 * 24 * HOUR, "2y"),
            (731 * 24 * HOUR, "2y1d"),
            (8 * 365 * 24 * HOUR, "8y"),
            (i64::MAX, "292y"),
        ];
        for (nanos, want) in cases {
            assert_eq!(human_duration(*nanos), *want, "{nanos}ns");
        }
    }

    #[test]
    fn an_unknown_creation_time_is_go_zero_time() {
        assert_eq!(age(None, Timestamp::UNIX_EPOCH), "292y");
    }
}
