//! Backend weights as the API server returns them: integers (v1alpha2, v1alpha3) or Kubernetes quantities
//! (v1alpha1: `"10"`, `"500m"`, `"1k"`, `"1e2"`).

use serde_json::Value;

/// The numeric value of a backend weight: a JSON number or a quantity string; `None` when it is neither.
pub fn parse_weight(weight: &Value) -> Option<f64> {
    match weight {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_quantity(s.trim()),
        _ => None,
    }
}

/// A Kubernetes quantity: a signed decimal number and an optional suffix (binary `Ki`..`Ei`, decimal
/// `n u m k M G T P E`, or an exponent `e3` / `E-2`).
fn parse_quantity(s: &str) -> Option<f64> {
    let end = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || ((*c == '+' || *c == '-') && *i == 0)))
        .map_or(s.len(), |(i, _)| i);
    let (number, suffix) = s.split_at(end);
    if !number.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => 10f64.powi(exp[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    Some(value * scale)
}
