//! `goTemplate: true`: each string is a Go `text/template` executed on the parameter set, with Sprig's
//! functions (minus `env`, `expandenv` and `getHostByName`) and Argo's `normalize`, `slugify`, `toYaml`,
//! `fromYaml`. `goTemplateOptions` are Go's template options; `missingkey=error` stops at a missing key.
//!
//! Numbers: Go decodes every JSON number of a parameter set as a float64 and prints a large one in exponent
//! form (`1e+06`); here an integer stays an integer and prints as written, which is what a template author
//! means by `{{ .replicas }}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::parse::{Expr, ListNode, Node, Parser, PipeNode};
use gotmpl::{MissingKey, Template, TemplateError, Value};

use super::{Params, sprig};

/// `{{range}}` iterations one template string may run: a template in an ApplicationSet is user input that
/// the controller executes, so it gets a budget (Go has none; a real template ranges over a few items).
const MAX_RANGE_ITERATIONS: u64 = 100_000;

/// A parameter set ready for Go templates, with the options of the ApplicationSet.
pub(super) struct GoTemplate {
    data: Value,
    missing_key: MissingKey,
}

impl GoTemplate {
    /// The parameter set as template data; an option Go does not know is an error (Go panics on it).
    pub(super) fn new(params: &Params, options: &[String]) -> Result<Self, String> {
        let mut missing_key = MissingKey::Invalid;
        for option in options {
            missing_key = parse_option(option)?;
        }
        let data = Value::Map(Arc::new(
            params
                .iter()
                .map(|(k, v)| (Arc::from(k.as_str()), to_go(v)))
                .collect(),
        ));
        Ok(Self { data, missing_key })
    }

    /// Parses and executes one template string, with upstream's error wording around the template's own.
    pub(super) fn execute(&self, template: &str) -> Result<String, String> {
        if !template.contains("{{") {
            return Ok(template.to_string());
        }
        check_functions(template)?;
        let parsed = Template::new("")
            .missing_key(self.missing_key)
            .max_range_iters(MAX_RANGE_ITERATIONS)
            .funcs(sprig::funcs())
            .parse(template)
            .map_err(|e| format!("failed to parse template {template}: {e}"))?;
        parsed.execute_to_string(&self.data).map_err(|e| {
            format!(
                "failed to execute go template {template}: {}",
                exec_error(template, &e)
            )
        })
    }
}

/// Go rejects a call of an unknown function when it parses a template, even in a branch that never runs;
/// `gotmpl` only finds it when it runs the call, so the parse tree is checked first.
fn check_functions(template: &str) -> Result<(), String> {
    let parse_error = |e: TemplateError| format!("failed to parse template {template}: {e}");
    let (tree, defines) = Parser::new(template, "{{", "}}")
        .and_then(Parser::parse)
        .map_err(parse_error)?;
    let mut unknown = None;
    visit_list(&tree, &mut unknown);
    for define in &defines {
        visit_list(&define.body, &mut unknown);
    }
    match unknown {
        Some((line, name)) => Err(format!(
            "failed to parse template {template}: template: :{line}: function {name:?} not defined"
        )),
        None => Ok(()),
    }
}

/// The first unknown function called in a list of nodes, with its line.
fn visit_list(list: &ListNode, unknown: &mut Option<(usize, String)>) {
    for node in &list.nodes {
        match node {
            Node::List(inner) => visit_list(inner, unknown),
            Node::Action(action) => visit_pipe(&action.pipe, unknown),
            Node::If(branch) | Node::Range(branch) | Node::With(branch) => {
                visit_pipe(&branch.pipe, unknown);
                visit_list(&branch.body, unknown);
                if let Some(other) = &branch.else_body {
                    visit_list(other, unknown);
                }
            }
            Node::Template(call) => {
                if let Some(pipe) = &call.pipe {
                    visit_pipe(pipe, unknown);
                }
            }
            Node::Define(define) => visit_list(&define.body, unknown),
            Node::Text(_) | Node::Break(_) | Node::Continue(_) => {}
        }
    }
}

fn visit_pipe(pipe: &PipeNode, unknown: &mut Option<(usize, String)>) {
    for arg in pipe.commands.iter().flat_map(|c| &c.args) {
        visit_expr(arg, unknown);
    }
}

fn visit_expr(expr: &Expr, unknown: &mut Option<(usize, String)>) {
    match expr {
        Expr::Identifier(pos, name) if unknown.is_none() && !sprig::is_function(name) => {
            *unknown = Some((pos.line, name.to_string()));
        }
        Expr::Pipe(_, pipe) => visit_pipe(pipe, unknown),
        Expr::Chain(_, inner, _) => visit_expr(inner, unknown),
        _ => {}
    }
}

/// `missingkey=default|invalid|zero|error`, the one option Go's templates have.
fn parse_option(option: &str) -> Result<MissingKey, String> {
    let invalid = || format!("invalid goTemplateOptions entry {option:?}: unrecognized option");
    let (key, value) = option.split_once('=').ok_or_else(invalid)?;
    if key != "missingkey" {
        return Err(invalid());
    }
    value.parse::<MissingKey>().map_err(|_| invalid())
}

/// An execution error in Go's words; a missing key names where in the template it was asked for.
fn exec_error(template: &str, error: &TemplateError) -> String {
    match error {
        TemplateError::MissingKey { key } => {
            let message = format!("map has no entry for key {key:?}");
            match locate_field(template, key) {
                Some((line, col, chain)) => {
                    format!("template: :{line}:{col}: executing \"\" at <{chain}>: {message}")
                }
                None => message,
            }
        }
        other => other.to_string(),
    }
}

/// The line, column and field chain (`.path.nope`) of the first action in `template` that reads `.key`, as Go
/// reports them: the column is the byte offset in the line (from 0) of the field, or for a chain of its second
/// element (`.nope` in `.path.nope`).
fn locate_field<'t>(template: &'t str, key: &str) -> Option<(usize, usize, &'t str)> {
    let bytes = template.as_bytes();
    let needle = format!(".{key}");
    let mut from = 0;
    while let Some(found) = template[from..].find(&needle).map(|i| i + from) {
        let end = found + needle.len();
        let whole = bytes.get(end).is_none_or(|b| !is_ident(*b));
        if whole && inside_action(template, found) {
            let mut start = found;
            while start > 0 && (is_ident(bytes[start - 1]) || matches!(bytes[start - 1], b'.' | b'$')) {
                start -= 1;
            }
            let mut stop = end;
            while stop < bytes.len() && (is_ident(bytes[stop]) || bytes[stop] == b'.') {
                stop += 1;
            }
            let at = template[start + 1..stop]
                .find('.')
                .map_or(start, |i| start + 1 + i);
            let line_start = template[..at].rfind('\n').map_or(0, |i| i + 1);
            let line = template[..at].matches('\n').count() + 1;
            return Some((line, at - line_start, &template[start..stop]));
        }
        from = found + 1;
    }
    None
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Whether byte offset `at` is between an action's `{{` and its `}}`.
fn inside_action(template: &str, at: usize) -> bool {
    let before = &template[..at];
    match (before.rfind("{{"), before.rfind("}}")) {
        (Some(open), Some(close)) => open > close,
        (Some(_), None) => true,
        _ => false,
    }
}

/// A JSON value as template data: objects are maps, integers stay integers.
pub(super) fn to_go(value: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match value {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Int(i),
            (None, Some(u)) => Value::Uint(u),
            _ => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Value::String(Arc::from(s.as_str())),
        J::Array(items) => Value::List(items.iter().map(to_go).collect()),
        J::Object(entries) => Value::Map(Arc::new(
            entries
                .iter()
                .map(|(k, v)| (Arc::from(k.as_str()), to_go(v)))
                .collect::<BTreeMap<_, _>>(),
        )),
    }
}

/// Template data back as JSON (for `toJson`, `toYaml`); a function value has no JSON form.
pub(super) fn from_go(value: &Value) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match value {
        Value::Nil => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Uint(u) => J::from(*u),
        Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(J::Number)
            .ok_or_else(|| format!("unsupported value: {f}"))?,
        Value::String(s) => J::String(s.to_string()),
        Value::List(items) => J::Array(items.iter().map(from_go).collect::<Result<_, _>>()?),
        Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| Ok((k.to_string(), from_go(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        Value::Function(_) => return Err("unsupported type: func".to_string()),
    })
}
