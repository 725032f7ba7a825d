//! `lint -f FILE`: offline validation of a manifest with the controller's own rules (`sluice_crds::validate`,
//! the same functions the Rollout planner calls), plus upstream's strict decoding: a field the Rollout API
//! does not have is an error, not silently dropped.

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;
use sluice_crds::{rollout::Rollout, validate};

use crate::Outcome;

/// `lint`.
#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// File to lint
    #[arg(short = 'f', long = "filename")]
    pub file: std::path::PathBuf,
}

/// Paths (`spec.strategy.canary.foo`) present in `given` but not in `kept`: the fields decoding dropped.
fn dropped_fields(given: &Value, kept: &Value, path: &str, out: &mut Vec<String>) {
    let (Value::Object(g), Some(k)) = (given, kept.as_object()) else {
        if let (Value::Array(g), Some(k)) = (given, kept.as_array()) {
            for (i, (a, b)) in g.iter().zip(k).enumerate() {
                dropped_fields(a, b, &format!("{path}[{i}]"), out);
            }
        }
        return;
    };
    for (key, value) in g {
        let here = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match k.get(key) {
            Some(v) => dropped_fields(value, v, &here, out),
            None if value.is_null() => {}
            None => out.push(here),
        }
    }
}

/// The findings of one Rollout document: unknown fields, then the controller's InvalidSpec and
/// Unsupported rules, each as the line lint prints.
fn lint_rollout(doc: &Value) -> Vec<String> {
    let ro: Rollout = match serde_json::from_value(doc.clone()) {
        Ok(ro) => ro,
        Err(e) => return vec![format!("error unmarshaling Rollout: {e}")],
    };
    let name = ro.metadata.name.clone().unwrap_or_default();
    let mut out = Vec::new();
    let kept = serde_json::to_value(&ro).unwrap_or(Value::Null);
    let mut unknown = Vec::new();
    dropped_fields(doc, &kept, "", &mut unknown);
    out.extend(
        unknown
            .into_iter()
            .map(|f| format!("The Rollout {name:?} is invalid: unknown field {f:?}")),
    );
    if let Some(message) = validate::invalid_spec(&ro) {
        out.push(format!("The Rollout {name:?} is invalid: {message}"));
    }
    if let Some(feature) = validate::unsupported(&ro) {
        out.push(format!(
            "The Rollout {name:?} uses what Sluice does not support: {feature}"
        ));
    }
    out
}

/// Every finding of a manifest (YAML with any number of documents, or JSON); empty when it is valid.
/// Documents that are not Rollouts are read (they must parse) and otherwise skipped.
pub fn lint_text(text: &str) -> Result<Vec<String>, String> {
    let mut findings = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let doc = Value::deserialize(de).map_err(|e| format!("document {}: {e}", i + 1))?;
        if doc.is_null() {
            continue;
        }
        let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        if api_version.split('/').next() == Some(sluice_crds::GROUP) && kind == "Rollout" {
            findings.extend(lint_rollout(&doc));
        }
    }
    Ok(findings)
}

/// Runs `lint`: prints every finding; exits 1 with the first one as the error, 0 (silent) when valid.
pub fn run(a: LintArgs) -> Result<Outcome> {
    let text = std::fs::read_to_string(&a.file).with_context(|| format!("open {}", a.file.display()))?;
    let findings = lint_text(&text).map_err(anyhow::Error::msg)?;
    for f in &findings {
        println!("{f}");
    }
    match findings.first() {
        Some(first) => Err(anyhow::Error::msg(first.clone())),
        None => Ok(Outcome::Ok),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: stable}
spec: {ports: [{port: 80}]}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}, creationTimestamp: null}
    spec: {containers: [{name: web, image: "web:1", resources: {}}]}
  strategy:
    canary:
      maxSurge: "25%"
      steps: [{setWeight: 20}, {pause: {duration: 30s}}, {pause: {}}]
"#;

    #[test]
    fn a_valid_manifest_has_no_findings() {
        assert_eq!(lint_text(VALID), Ok(vec![]));
    }

    #[test]
    fn an_unknown_field_is_named_with_its_path() {
        let text = VALID.replace("maxSurge: \"25%\"", "maxSurge: \"25%\"\n      maxSurges: 1");
        assert_eq!(
            lint_text(&text),
            Ok(vec![
                r#"The Rollout "web" is invalid: unknown field "spec.strategy.canary.maxSurges""#.into()
            ])
        );
        let text = VALID.replace("{setWeight: 20}", "{setWeight: 20, pauze: {}}");
        assert_eq!(
            lint_text(&text).unwrap(),
            vec![r#"The Rollout "web" is invalid: unknown field "spec.strategy.canary.steps[0].pauze""#]
        );
    }

    #[test]
    fn the_controllers_rules_apply() {
        let text = VALID.replace("labels: {app: web}", "labels: {app: other}");
        assert_eq!(
            lint_text(&text).unwrap(),
            vec![
                r#"The Rollout "web" is invalid: The Rollout "selector" does not match the template "labels"."#
            ]
        );
        let text = VALID.replace("{pause: {duration: 30s}}", "{pause: {duration: 30x}}");
        let findings = lint_text(&text).unwrap();
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert!(
            findings[0].starts_with(r#"The Rollout "web" is invalid: "#),
            "{findings:?}"
        );
    }

    #[test]
    fn broken_yaml_is_an_error_naming_the_document() {
        let err = lint_text("apiVersion: v1\n---\nkind: [unclosed\n").unwrap_err();
        assert!(err.starts_with("document 2: "), "{err}");
    }
}
