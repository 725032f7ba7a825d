//! `{{args.name}}` substitution across a metric, and the redaction of secret argument values from messages.
//!
//! Upstream renders the metric's JSON text as a template with JSON-escaped values. Substituting inside the
//! decoded strings (and map keys) of the metric's JSON tree gives the same result without any escaping to get
//! wrong: a value with quotes, backslashes or newlines lands in its string exactly as it was given.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::Value as Json;
use sluice_crds::analysis::Metric;

/// A resolved argument: its name and its value, None when no value was supplied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgValue {
    /// Argument name.
    pub name: String,
    /// Its value; None when neither a value nor a resolvable source was given.
    pub value: Option<String>,
}

/// What a secret value becomes in a message.
pub const REDACTED: &str = "*****";

/// Substitutes `{{args.name}}` and `{{ args.name }}` everywhere in the metric. As upstream: every argument must
/// have a value (`argument "name" was not supplied`, even when no field refers to it), a `{{...}}` that names no
/// argument is `failed to resolve {{...}}`, and a `{{` without its `}}` is an error too.
pub fn resolve_metric(metric: &Metric, args: &[ArgValue]) -> Result<Metric, String> {
    let mut values = HashMap::with_capacity(args.len());
    for arg in args {
        let Some(value) = &arg.value else {
            return Err(format!("argument \"{}\" was not supplied", arg.name));
        };
        values.insert(format!("args.{}", arg.name), value.as_str());
    }
    let mut tree = serde_json::to_value(metric).map_err(|e| {
        format!(
            "metric \"{}\" could not be read for argument substitution: {e}",
            metric.name
        )
    })?;
    substitute_tree(&mut tree, &values)?;
    serde_json::from_value(tree).map_err(|e| {
        format!(
            "metric \"{}\" is invalid once its arguments are substituted: {e}",
            metric.name
        )
    })
}

/// Replaces every non-empty secret value in a message by `*****`, as upstream does for measurement messages.
pub fn redact(message: &str, secrets: &[String]) -> String {
    let mut ordered: Vec<&str> = secrets
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    // Longest first, so that a secret containing another is masked whole.
    ordered.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = message.to_string();
    for secret in ordered {
        if out.contains(secret) {
            out = out.replace(secret, REDACTED);
        }
    }
    out
}

fn substitute_tree(node: &mut Json, values: &HashMap<String, &str>) -> Result<(), String> {
    match node {
        Json::String(s) => {
            if let Cow::Owned(rendered) = substitute(s, values)? {
                *s = rendered;
            }
        }
        Json::Array(items) => {
            for item in items {
                substitute_tree(item, values)?;
            }
        }
        Json::Object(map) => {
            // Upstream renders the whole JSON text, keys included (a jsonBody or an opaque provider may template a
            // key).
            if map.keys().any(|k| k.contains("{{")) {
                let entries = std::mem::take(map);
                for (key, mut value) in entries {
                    substitute_tree(&mut value, values)?;
                    map.insert(substitute(&key, values)?.into_owned(), value);
                }
            } else {
                for value in map.values_mut() {
                    substitute_tree(value, values)?;
                }
            }
        }
        Json::Null | Json::Bool(_) | Json::Number(_) => {}
    }
    Ok(())
}

/// Renders one string as fasttemplate does with `{{` and `}}`: a tag is looked up with surrounding spaces
/// trimmed.
fn substitute<'a>(template: &'a str, values: &HashMap<String, &str>) -> Result<Cow<'a, str>, String> {
    if !template.contains("{{") {
        return Ok(Cow::Borrowed(template));
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!(
                "Cannot find end tag=\"}}}}\" in the template=\"{template}\" starting from \"{after}\""
            ));
        };
        let tag = &after[..end];
        match values.get(tag.trim()) {
            Some(value) => out.push_str(value),
            None => return Err(format!("failed to resolve {{{{{tag}}}}}")),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use sluice_crds::analysis::{MetricProvider, PrometheusMetric, WebMetric, WebMetricHeader};

    use super::*;

    fn arg(name: &str, value: &str) -> ArgValue {
        ArgValue {
            name: name.into(),
            value: Some(value.into()),
        }
    }

    fn prometheus_metric(query: &str, success: &str) -> Metric {
        Metric {
            name: "success-rate".into(),
            success_condition: Some(success.into()),
            provider: MetricProvider {
                prometheus: Some(PrometheusMetric {
                    address: Some("http://prometheus:9090".into()),
                    query: Some(query.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn query(m: &Metric) -> &str {
        m.provider
            .prometheus
            .as_ref()
            .and_then(|p| p.query.as_deref())
            .unwrap_or_default()
    }

    #[test]
    fn substitution_table() {
        let args = [
            arg("service-name", "canary-svc"),
            arg("threshold", "0.95"),
            arg("quoted", "a \"b\" \\c\nd\te"),
            arg("empty", ""),
        ];
        let cases = [
            (
                "sum(x{svc=\"{{args.service-name}}\"})",
                "sum(x{svc=\"canary-svc\"})",
            ),
            (
                "{{ args.service-name }}/{{args.service-name}}",
                "canary-svc/canary-svc",
            ),
            ("{{  args.threshold\t}}", "0.95"),
            ("{{args.quoted}}", "a \"b\" \\c\nd\te"),
            ("[{{args.empty}}]", "[]"),
            ("no tags at all", "no tags at all"),
            ("single { braces } stay", "single { braces } stay"),
            ("}}{{args.threshold}}", "}}0.95"),
        ];
        for (template, want) in cases {
            let m = resolve_metric(&prometheus_metric(template, "result[0] >= 1"), &args).expect(template);
            assert_eq!(query(&m), want, "{template}");
        }
    }

    #[test]
    fn every_field_is_rendered() {
        let mut metric = prometheus_metric("up", "result[0] >= {{args.threshold}}");
        metric.failure_condition = Some("result[0] < {{ args.floor }}".into());
        metric.count = Some(IntOrString::String("{{args.count}}".into()));
        metric.interval = Some("{{args.interval}}".into());
        metric.provider = MetricProvider {
            web: Some(WebMetric {
                url: "http://{{args.host}}/api?svc={{args.svc}}".into(),
                headers: Some(vec![WebMetricHeader {
                    key: "{{args.header}}".into(),
                    value: "Bearer {{args.token}}".into(),
                }]),
                json_body: Some(serde_json::json!({"{{args.key}}": ["{{args.svc}}", 1, true, null]})),
                ..Default::default()
            }),
            ..Default::default()
        };
        let args = [
            arg("threshold", "0.9"),
            arg("floor", "0.5"),
            arg("count", "5"),
            arg("interval", "30s"),
            arg("host", "web:8080"),
            arg("svc", "my \"svc\""),
            arg("header", "Authorization"),
            arg("token", "s3cr3t"),
            arg("key", "service"),
        ];
        let m = resolve_metric(&metric, &args).expect("resolved");
        assert_eq!(m.success_condition.as_deref(), Some("result[0] >= 0.9"));
        assert_eq!(m.failure_condition.as_deref(), Some("result[0] < 0.5"));
        assert_eq!(m.count, Some(IntOrString::String("5".into())));
        assert_eq!(m.interval.as_deref(), Some("30s"));
        let web = m.provider.web.expect("web");
        assert_eq!(web.url, "http://web:8080/api?svc=my \"svc\"");
        let header = &web.headers.expect("headers")[0];
        assert_eq!(
            (header.key.as_str(), header.value.as_str()),
            ("Authorization", "Bearer s3cr3t")
        );
        assert_eq!(
            web.json_body,
            Some(serde_json::json!({"service": ["my \"svc\"", 1, true, null]}))
        );
    }

    #[test]
    fn errors_are_upstreams() {
        let metric = prometheus_metric("{{args.svc}}", "true");
        let no_value = [
            arg("svc", "a"),
            ArgValue {
                name: "unused".into(),
                value: None,
            },
        ];
        assert_eq!(
            resolve_metric(&metric, &no_value),
            Err("argument \"unused\" was not supplied".into())
        );
        assert_eq!(
            resolve_metric(&metric, &[]),
            Err("failed to resolve {{args.svc}}".into())
        );
        let spaced = prometheus_metric("{{ args.nope }}", "true");
        assert_eq!(
            resolve_metric(&spaced, &[arg("svc", "a")]),
            Err("failed to resolve {{ args.nope }}".into())
        );
        let other = prometheus_metric("{{templates.canary.podTemplateHash}}", "true");
        assert_eq!(
            resolve_metric(&other, &[]),
            Err("failed to resolve {{templates.canary.podTemplateHash}}".into())
        );
        let open = prometheus_metric("test-{{args.var", "true");
        assert_eq!(
            resolve_metric(&open, &[arg("var", "x")]),
            Err(
                "Cannot find end tag=\"}}\" in the template=\"test-{{args.var\" starting from \"args.var\""
                    .into()
            )
        );
    }

    #[test]
    fn a_metric_without_tags_is_unchanged() {
        let metric = prometheus_metric("sum(rate(x[5m]))", "result[0] > 0");
        assert_eq!(resolve_metric(&metric, &[arg("a", "b")]), Ok(metric.clone()));
        assert_eq!(resolve_metric(&metric, &[]), Ok(metric));
    }

    #[test]
    fn substituted_values_stay_strings() {
        let mut metric = prometheus_metric("up", "true");
        metric.provider.prometheus = None;
        metric.provider.web = Some(WebMetric {
            url: "http://x".into(),
            timeout_seconds: None,
            json_body: Some(serde_json::json!("{{args.body}}")),
            ..Default::default()
        });
        // A substituted string stays a string: JSON-looking values never change the metric's structure.
        let m = resolve_metric(&metric, &[arg("body", "{\"a\": 1}")]).expect("resolved");
        assert_eq!(
            m.provider.web.and_then(|w| w.json_body),
            Some(serde_json::json!("{\"a\": 1}"))
        );
    }

    #[test]
    fn redaction_table() {
        let secrets = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases = [
            (
                "Get \"https://user:pw@host\": refused",
                secrets(&["pw"]),
                "Get \"https://user:*****@host\": refused",
            ),
            (
                "token abc and abc again",
                secrets(&["abc"]),
                "token ***** and ***** again",
            ),
            (
                "nothing secret here",
                secrets(&["", "zzz"]),
                "nothing secret here",
            ),
            ("key abcdef", secrets(&["abc", "abcdef"]), "key *****"),
            ("a-b", secrets(&["a", "b"]), "*****-*****"),
            ("", secrets(&["x"]), ""),
        ];
        for (message, secrets, want) in cases {
            assert_eq!(redact(message, &secrets), want, "{message}");
        }
    }
}
