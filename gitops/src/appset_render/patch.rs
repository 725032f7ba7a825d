//! `templatePatch`: upstream renders it with the parameters, reads it as JSON (when it starts with `{`) or
//! YAML, and applies it to the rendered Application as a strategic merge patch (`applyTemplatePatch`). For
//! the Application type that is a JSON merge patch (objects merge, `null` deletes, lists are replaced) except
//! `metadata.finalizers`, which ObjectMeta declares `patchStrategy: merge`: the patch's finalizers are added
//! to the template's. The patch cannot change `spec.project` (upstream restores it, so a template patch cannot
//! move an application to another project).

use serde_json::Value;

/// Applies the rendered `patch` text to the rendered Application JSON.
pub(super) fn apply(mut app: Value, text: &str) -> Result<Value, String> {
    let mut patch = parse(text)?;
    match &patch {
        Value::Null => return Ok(app),
        Value::Object(_) => {}
        other => {
            return Err(format!(
                "invalid templatePatch {text:?}: cannot unmarshal {} into an Application",
                crate::json_type(other)
            ));
        }
    }
    let project = app.pointer("/spec/project").cloned();
    union_finalizers(&app, &mut patch);
    json_patch::merge(&mut app, &patch);
    if let Some(spec) = app.get_mut("spec").and_then(Value::as_object_mut) {
        match project {
            Some(project) => spec.insert("project".to_string(), project),
            None => spec.remove("project"),
        };
    }
    Ok(app)
}

/// Upstream's `ConvertYAMLToJSON`: JSON when the text starts with `{`, YAML otherwise.
fn parse(patch: &str) -> Result<Value, String> {
    let parsed = if patch.trim_start().starts_with('{') {
        serde_json::from_str(patch).map_err(|e| e.to_string())
    } else {
        serde_yaml::from_str(patch).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| format!("error while converting template to json {patch:?}: {e}"))
}

/// Rewrites the patch's `metadata.finalizers` list to the union of the Application's and the patch's.
fn union_finalizers(app: &Value, patch: &mut Value) {
    let Some(Value::Array(added)) = patch.pointer_mut("/metadata/finalizers") else {
        return;
    };
    let mut union: Vec<Value> = match app.pointer("/metadata/finalizers") {
        Some(Value::Array(present)) => present.clone(),
        _ => Vec::new(),
    };
    for finalizer in added.drain(..) {
        if !union.contains(&finalizer) {
            union.push(finalizer);
        }
    }
    *added = union;
}
