//! ApplicationSet rendering and the pure plan of its Applications, as Argo CD's ApplicationSet controller
//! defines them (`applicationset/utils/utils.go`, `controllers/template`, `applicationset_controller.go`).
//!
//! - [`render`] walks a template (the ApplicationSet's `spec.template` as JSON) and renders every string, object
//!   keys included, with one parameter set: fasttemplate tags (`{{ path.basename }}`, the default) or Go
//!   `text/template` with Sprig and Argo's `normalize`/`slugify` (`goTemplate: true`). Upstream renders each
//!   string of the typed template on its own (its old JSON-string rendering is gone), so a value with quotes or
//!   backslashes lands in the string as written and the output is valid JSON by construction.
//! - [`application`] renders, applies `templatePatch` and decodes the result into an Application.
//! - [`plan`] compares the generated Applications with the ones the ApplicationSet owns and says what to
//!   create, update and delete under the `applicationsSync` policy; a steady state plans nothing.
//! - [`conditions`] computes the status conditions upstream writes (ErrorOccurred, ParametersGenerated,
//!   ResourcesUpToDate) as `sluice_crds::applicationset::ApplicationSetCondition`s.
//!
//! Go templates run on the `gotmpl` crate (a Rust port of Go's `text/template` with Go's output); the Sprig
//! functions upstream users reach for, and Argo's own, are added in `sprig`.

mod conditions;
mod fasttemplate;
mod gotemplate;
mod patch;
mod plan;
mod sprig;
mod sprig_data;
#[cfg(test)]
mod tests;

use serde_json::Value;
use sluice_crds::application::Application;

pub use conditions::{Condition, Outcome, Reason, conditions};
pub use plan::{
    ANNOTATION_HYDRATE, ANNOTATION_NOTIFIED, ANNOTATION_REFRESH, AppAction, ApplicationsSync,
    POST_DELETE_FINALIZER, PRE_DELETE_FINALIZER, Policy, RESOURCES_FINALIZER, is_resources_finalizer, plan,
};
pub use sprig::{normalize, slugify};

/// One parameter set of a generator: flat string keys in fasttemplate mode (`"path.basename"`), nested
/// values in goTemplate mode (`{"path": {"basename": ...}}`).
pub type Params = serde_json::Map<String, Value>;

/// Renders every string (and object key) of `template` with `params`; other values are kept. With no
/// parameters the template is returned as written, as upstream does. Object entries whose value is `null` are
/// dropped, as upstream's walk skips nil values.
pub fn render(
    template: &Value,
    params: &Params,
    go_template: bool,
    options: &[String],
) -> Result<Value, String> {
    if params.is_empty() {
        return Ok(template.clone());
    }
    let engine = Engine::new(params, go_template, options)?;
    walk(template, &engine)
}

/// Renders the ApplicationSet `template` (`{metadata, spec}`) with `params`, applies `patch` (the
/// `templatePatch`, rendered with the same parameters) and decodes the Application. The namespace is always
/// the ApplicationSet's (upstream overwrites any other, the boundary of ApplicationSets in any namespace).
/// Owner references and the resources finalizer are left to the caller and to [`plan`].
pub fn application(
    appset_name: &str,
    appset_namespace: &str,
    template: &Value,
    patch: Option<&str>,
    params: &Params,
    go_template: bool,
    options: &[String],
) -> Result<Application, String> {
    let mut rendered = render(template, params, go_template, options)?;
    if let Some(patch) = patch {
        let engine = Engine::new(params, go_template, options)?;
        let text = engine
            .replace(patch)
            .map_err(|e| format!("error replacing values in templatePatch: {e}"))?;
        rendered = patch::apply(rendered, &text)?;
    }
    let mut app: Application = serde_json::from_value(rendered).map_err(|e| {
        format!("ApplicationSet {appset_name}: the rendered template is not an Application: {e}")
    })?;
    app.metadata.namespace = Some(appset_namespace.to_string());
    if app.metadata.name.as_deref().unwrap_or_default().is_empty() {
        return Err(format!(
            "ApplicationSet {appset_name} generated an Application with an empty name: resource name may not be empty"
        ));
    }
    Ok(app)
}

/// Executes one Go `text/template` string on `data` with the functions ApplicationSet templates have (Sprig's,
/// minus `env` and `expandenv`, and Argo's); a missing key prints `<no value>` as Go's default does. Other
/// controllers that take Go templates from users (notifications) render with it, so every template a user writes
/// for Sluice runs on the same engine.
pub fn go_template(template: &str, data: &Params) -> Result<String, String> {
    gotemplate::GoTemplate::new(data, &[])?.execute(template)
}

/// How the strings of one parameter set are rendered.
enum Engine<'a> {
    Fast(&'a Params),
    Go(gotemplate::GoTemplate),
}

impl<'a> Engine<'a> {
    fn new(params: &'a Params, go_template: bool, options: &[String]) -> Result<Self, String> {
        if go_template {
            Ok(Engine::Go(gotemplate::GoTemplate::new(params, options)?))
        } else {
            Ok(Engine::Fast(params))
        }
    }

    /// Renders one string.
    fn replace(&self, text: &str) -> Result<String, String> {
        match self {
            Engine::Fast(params) => fasttemplate::replace(text, params),
            Engine::Go(go) => go.execute(text),
        }
    }
}

/// Renders the strings of a JSON value, depth first.
fn walk(value: &Value, engine: &Engine<'_>) -> Result<Value, String> {
    match value {
        Value::String(text) => engine.replace(text).map(Value::String),
        Value::Array(items) => items
            .iter()
            .map(|item| walk(item, engine))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(entries) => {
            let mut out = serde_json::Map::new();
            for (key, item) in entries {
                if item.is_null() {
                    continue;
                }
                let item = walk(item, engine)?;
                out.insert(engine.replace(key)?, item);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}
