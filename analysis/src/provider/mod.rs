//! Metric providers: each takes one measurement and returns what was read, or the error text for the
//! measurement's message.

use std::collections::BTreeMap;

use sluice_crds::analysis::{Authentication, Metric};

pub use crate::condition::ResultValue;
use crate::rollup::provider_type;

pub mod http;
pub mod prometheus;
pub mod web;

/// The providers this controller measures, as messages list them.
pub const SUPPORTED_PROVIDERS: &str = "prometheus, web, job";

/// Whether this controller can measure the metric: Err names the metric and the provider, or the provider's
/// option, that it cannot honour. A Prometheus metric without an address is judged by the address in
/// `ARGO_ROLLOUTS_PROMETHEUS_ADDRESS`, the one it would query.
pub fn supported(metric: &Metric) -> Result<(), String> {
    let fallback = std::env::var(prometheus::ADDRESS_ENV).ok();
    supported_with(metric, fallback.as_deref())
}

/// As [`supported`], with `prometheus_fallback` as the address of a Prometheus metric that names none.
pub fn supported_with(metric: &Metric, prometheus_fallback: Option<&str>) -> Result<(), String> {
    let p = &metric.provider;
    let refused = if let Some(prom) = &p.prometheus {
        prometheus::refused_option(prom, prometheus_fallback)
    } else if let Some(web) = &p.web {
        web::refused_option(web)
    } else if p.job.is_some() {
        None
    } else {
        return Err(not_supported(metric));
    };
    match refused {
        None => Ok(()),
        Some(option) => Err(format!(
            "metric \"{}\": provider {}: {option}",
            metric.name,
            provider_type(metric)
        )),
    }
}

/// The message for a metric whose provider this controller does not measure at all.
pub fn not_supported(metric: &Metric) -> String {
    match provider_type(metric) {
        "" => format!("metric \"{}\": no provider specified", metric.name),
        provider => format!(
            "metric \"{}\": provider {provider} is not supported by this controller (supported: \
             {SUPPORTED_PROVIDERS})",
            metric.name
        ),
    }
}

/// OAuth2 (a token URL given) is refused by every HTTP provider: the token exchange is not implemented.
fn refused_oauth2(auth: Option<&Authentication>) -> Option<String> {
    auth.and_then(|a| a.oauth2.as_ref())
        .and_then(|o| o.token_url.as_deref())
        .is_some_and(|u| !u.trim().is_empty())
        .then(|| "authentication.oauth2 is not supported by this controller".to_string())
}

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

    /// A metric named `m` with the provider given as its JSON.
    fn metric(provider: serde_json::Value) -> Metric {
        serde_json::from_value(serde_json::json!({"name": "m", "provider": provider})).expect("test metric")
    }

    #[test]
    fn supported_providers_and_options() {
        use serde_json::json;
        let amp = "https://aps-workspaces.us-east-1.amazonaws.com/workspaces/ws-1";
        let oauth2 = json!({"oauth2": {"tokenUrl": "https://sso.example.com/token", "clientId": "c"}});
        let not_supported = |provider: &str| {
            format!(
                "metric \"m\": provider {provider} is not supported by this controller (supported: prometheus, \
                 web, job)"
            )
        };
        let sigv4 = |address: &str| {
            format!(
                "metric \"m\": provider Prometheus: authentication.sigv4 is not supported by this controller: \
                 address \"{address}\" is Amazon Managed Prometheus, whose requests must be signed with AWS SigV4"
            )
        };
        let oauth2_refused = |provider: &str| {
            format!(
                "metric \"m\": provider {provider}: authentication.oauth2 is not supported by this controller"
            )
        };
        type Case<'a> = (&'a str, serde_json::Value, Option<&'a str>, Result<(), String>);
        let cases: Vec<Case> = vec![
            ("prometheus", json!({"prometheus": {"query": "up"}}), None, Ok(())),
            (
                "prometheus with basic auth and headers",
                json!({"prometheus": {"address": "http://p:9090", "query": "up",
                    "headers": [{"key": "X-Scope-OrgID", "value": "a"}],
                    "authentication": {"basicAuth": {"username": "u", "password": "p"}}}}),
                None,
                Ok(()),
            ),
            (
                "sigv4 on an address that is not Amazon Managed Prometheus is not used",
                json!({"prometheus": {"address": "http://p:9090", "query": "up",
                    "authentication": {"sigv4": {"region": "us-east-1"}}}}),
                Some(amp),
                Ok(()),
            ),
            (
                "sigv4 on Amazon Managed Prometheus",
                json!({"prometheus": {"address": amp, "query": "up",
                    "authentication": {"sigv4": {"region": "us-east-1"}}}}),
                None,
                Err(sigv4(amp)),
            ),
            (
                "Amazon Managed Prometheus is signed even without sigv4 settings",
                json!({"prometheus": {"address": amp, "query": "up"}}),
                None,
                Err(sigv4(amp)),
            ),
            (
                "Amazon Managed Prometheus from the fallback address",
                json!({"prometheus": {"query": "up"}}),
                Some(amp),
                Err(sigv4(amp)),
            ),
            (
                "an empty oauth2 block is not used",
                json!({"prometheus": {"query": "up", "authentication": {"oauth2": {"tokenUrl": " "}}}}),
                None,
                Ok(()),
            ),
            (
                "prometheus oauth2",
                json!({"prometheus": {"query": "up", "authentication": oauth2.clone()}}),
                None,
                Err(oauth2_refused("Prometheus")),
            ),
            (
                "web",
                json!({"web": {"url": "http://w", "method": "post"}}),
                None,
                Ok(()),
            ),
            (
                "web oauth2",
                json!({"web": {"url": "http://w", "authentication": oauth2}}),
                None,
                Err(oauth2_refused("Web")),
            ),
            (
                "web method",
                json!({"web": {"url": "http://w", "method": "PATCH"}}),
                None,
                Err(
                    "metric \"m\": provider Web: method \"PATCH\" is not supported: use GET, POST or PUT"
                        .into(),
                ),
            ),
            ("job", json!({"job": {"spec": {"template": {}}}}), None, Ok(())),
            (
                "datadog",
                json!({"datadog": {"query": "avg:x"}}),
                None,
                Err(not_supported("Datadog")),
            ),
            (
                "newRelic",
                json!({"newRelic": {"query": "x"}}),
                None,
                Err(not_supported("NewRelic")),
            ),
            (
                "wavefront",
                json!({"wavefront": {"query": "x"}}),
                None,
                Err(not_supported("Wavefront")),
            ),
            (
                "kayenta",
                json!({"kayenta": {"address": "x"}}),
                None,
                Err(not_supported("Kayenta")),
            ),
            (
                "cloudWatch",
                json!({"cloudWatch": {"interval": "1m"}}),
                None,
                Err(not_supported("CloudWatch")),
            ),
            (
                "graphite",
                json!({"graphite": {"query": "x"}}),
                None,
                Err(not_supported("Graphite")),
            ),
            (
                "influxdb",
                json!({"influxdb": {"query": "x"}}),
                None,
                Err(not_supported("Influxdb")),
            ),
            (
                "skywalking",
                json!({"skywalking": {"query": "x"}}),
                None,
                Err(not_supported("SkyWalking")),
            ),
            (
                "plugin",
                json!({"plugin": {"example/metric": {}}}),
                None,
                Err(not_supported("Plugin")),
            ),
            (
                "no provider",
                json!({}),
                None,
                Err("metric \"m\": no provider specified".into()),
            ),
        ];
        for (case, provider, fallback, want) in cases {
            assert_eq!(supported_with(&metric(provider), fallback), want, "{case}");
        }
    }

    #[tokio::test]
    async fn refused_options_fail_the_measurement_before_any_request() {
        // Nothing listens on these addresses: an answer other than the refusal would be a connection error.
        let amp = "https://aps-workspaces.invalid/workspaces/ws-1";
        let m = metric(serde_json::json!({"prometheus": {"address": amp, "query": "up"}}));
        let prom = m.provider.prometheus.as_ref().expect("prometheus");
        let want = supported_with(&m, None).unwrap_err();
        let got = prometheus::measure_with(prom, None).await.unwrap_err();
        assert!(want.ends_with(&got), "{want} / {got}");
        let m = metric(serde_json::json!({"web": {"url": "http://127.0.0.1:9/x",
            "authentication": {"oauth2": {"tokenUrl": "http://127.0.0.1:9/token"}}}}));
        let web = m.provider.web.as_ref().expect("web");
        let got = web::measure(web).await.unwrap_err();
        assert_eq!(got, "authentication.oauth2 is not supported by this controller");
        assert!(supported_with(&m, None).unwrap_err().ends_with(&got));
    }

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
