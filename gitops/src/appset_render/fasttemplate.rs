//! The default ApplicationSet syntax: valyala/fasttemplate with `{{` and `}}`, as Argo CD's `Replace` drives it.
//! A tag names a parameter after trimming spaces; a tag with no string parameter of that name (or an empty
//! one) is written back exactly as it was. A string is only parsed when one of its lines holds `{{` before
//! `}}` (upstream's `.*{{.*}}.*` check), so text with braces on different lines is left alone.

use serde_json::Value;

use super::Params;

/// Substitutes the tags of `template`; an opened tag that is never closed is an error, as in fasttemplate.
pub(super) fn replace(template: &str, params: &Params) -> Result<String, String> {
    if !is_templated(template) {
        return Ok(template.to_string());
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!(
                "invalid template: cannot find end tag \"}}}}\" in the template {template:?} starting from {after:?}"
            ));
        };
        let tag = &after[..end];
        match params.get(tag.trim()) {
            Some(Value::String(value)) if !tag.trim().is_empty() => out.push_str(value),
            _ => {
                out.push_str("{{");
                out.push_str(tag);
                out.push_str("}}");
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether one line of `text` holds `{{` followed by `}}` (a regexp `.` stops at `\n`).
fn is_templated(text: &str) -> bool {
    text.split('\n').any(|line| {
        line.find("{{")
            .is_some_and(|start| line[start + 2..].contains("}}"))
    })
}
