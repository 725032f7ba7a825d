//! Metric providers: each takes one measurement and returns what was read, or the error text for the
//! measurement's message.

use std::collections::BTreeMap;

pub use crate::condition::ResultValue;

mod http;
pub mod prometheus;
pub mod web;

/// What one measurement read.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The value bound to `result` in the conditions.
    pub result: ResultValue,
    /// The measurement's `value` as upstream stores it (e.g. `0.97`, `[0.97,0.99]`).
    pub value: String,
    /// Measurement metadata (e.g. Prometheus `warnings`).
    pub metadata: BTreeMap<String, String>,
}

/// A float as Go's `strconv.FormatFloat(f, 'f', -1, 64)` writes it (what Prometheus' sample values print as):
/// the shortest decimal that reads back the same, never an exponent; `NaN`, `+Inf`, `-Inf`.
pub(crate) fn go_decimal(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_string()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        // Rust's Display is also shortest-round-trip and exponent-free.
        format!("{f}")
    }
}

/// A float as Go's `encoding/json` writes it: decimal, except exponent form (`1e+21`, `1e-7`) below 1e-6 and
/// from 1e21 on.
pub(crate) fn go_json_number(f: f64) -> String {
    let abs = f.abs();
    if !f.is_finite() {
        // JSON has no NaN or Inf; a decoded JSON document never holds one.
        return go_decimal(f);
    }
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mantissa, exponent)) if !exponent.starts_with('-') => format!("{mantissa}e+{exponent}"),
            _ => s,
        }
    } else {
        format!("{f}")
    }
}

/// JSON as Go's `json.Marshal` of a decoded `interface{}` writes it: object keys sorted, numbers as float64,
/// `<`, `>`, `&`, U+2028 and U+2029 escaped. This is the `value` upstream's web provider stores.
pub(crate) fn go_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_go_json(value, &mut out);
    out
}

fn write_go_json(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Null => out.push_str("null"),
        serde_json::Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        serde_json::Value::Number(n) => out.push_str(&go_json_number(n.as_f64().unwrap_or(f64::NAN))),
        serde_json::Value::String(s) => write_go_string(s, out),
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
            }
            out.push(']');
        }
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(key, out);
                out.push(':');
                write_go_json(item, out);
            }
            out.push('}');
        }
    }
}

fn write_go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_formats() {
        let decimal = [
            (0.97, "0.97"),
            (1.0, "1"),
            (-0.5, "-0.5"),
            (1e21, "1000000000000000000000"),
            (1e-7, "0.0000001"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (123456.789, "123456.789"),
        ];
        for (f, want) in decimal {
            assert_eq!(go_decimal(f), want);
        }
        let json = [
            (1.0, "1"),
            (1.1, "1.1"),
            (-1.1, "-1.1"),
            (0.0, "0"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e300, "1.5e+300"),
            (0.000001, "0.000001"),
            (1e-7, "1e-7"),
            (-2.5e-10, "-2.5e-10"),
            (12345678901234567890.0, "12345678901234567000"),
        ];
        for (f, want) in json {
            assert_eq!(go_json_number(f), want, "{f}");
        }
    }

    #[test]
    fn go_json_matches_encoding_json() {
        let cases = [
            (r#""true""#, r#""true""#),
            ("999", "999"),
            ("1.0", "1"),
            (
                r#"{"b": 1, "a": [true, null, "x"]}"#,
                r#"{"a":[true,null,"x"],"b":1}"#,
            ),
            (r#""<a & b>""#, r#""\u003ca \u0026 b\u003e""#),
            (
                r#""line\nbreak \"q\" \\ \u0001""#,
                r#""line\nbreak \"q\" \\ \u0001""#,
            ),
            ("\"caf\u{e9} \u{2028}\"", "\"caf\u{e9} \\u2028\""),
        ];
        for (input, want) in cases {
            let value: serde_json::Value = serde_json::from_str(input).expect("test JSON");
            assert_eq!(go_json(&value), want, "{input}");
        }
    }
}
