//! Pause durations: an integer (seconds) or a string: "30" (seconds) or a Go duration such as "30s", "1m30s",
//! "1h", "500ms".

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Parses a pause duration; None when it is malformed or negative (upstream's InvalidSpec). Zero is a pause
/// that ends at once.
pub fn parse_pause_duration(d: &IntOrString) -> Option<Duration> {
    match d {
        IntOrString::Int(s) => (*s >= 0).then(|| Duration::from_secs(*s as u64)),
        IntOrString::String(s) => parse_go_duration(s),
    }
}

/// Parses "30" (seconds) or a Go `time.ParseDuration` string (units ns, us, µs, ms, s, m, h; fractions allowed;
/// no sign, since pauses cannot be negative).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    (total.is_finite() && (0.0..1e12).contains(&total)).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_durations_as_upstream_reads_them() {
        let cases: &[(IntOrString, Option<u64>)] = &[
            (IntOrString::Int(30), Some(30_000)),
            (IntOrString::Int(0), Some(0)),
            (IntOrString::Int(-5), None),
            (IntOrString::String("30".into()), Some(30_000)),
            (IntOrString::String("30s".into()), Some(30_000)),
            (IntOrString::String("1h".into()), Some(3_600_000)),
            (IntOrString::String("1m30s".into()), Some(90_000)),
            (IntOrString::String("1.5h".into()), Some(5_400_000)),
            (IntOrString::String("500ms".into()), Some(500)),
            (IntOrString::String("2d".into()), None),
            (IntOrString::String("abc".into()), None),
            (IntOrString::String("".into()), None),
            (IntOrString::String("0s".into()), Some(0)),
            (IntOrString::String("-1s".into()), None),
            (IntOrString::String("s".into()), None),
        ];
        for (input, want_ms) in cases {
            let got = parse_pause_duration(input).map(|d| d.as_millis() as u64);
            assert_eq!(got, *want_ms, "{input:?}");
        }
    }

    #[test]
    fn parser_never_panics_on_arbitrary_input() {
        // A small deterministic fuzz: every string over a hostile alphabet up to length 4.
        let alphabet: Vec<char> = "0123456789.smhµn-+ e".chars().collect();
        let mut inputs = vec![String::new()];
        for _ in 0..4 {
            let next: Vec<String> = inputs
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            for s in &next {
                let _ = parse_go_duration(s);
            }
            inputs = next.into_iter().step_by(7).collect();
        }
    }
}
