//! successCondition / failureCondition in the expr language, evaluated against a measured `result`.
//!
//! The environment is upstream's: `result` plus `asInt`, `asFloat`, `isNaN`, `isInf`, `isNil` and
//! `default(result, x)`, next to expr's own builtins (`len`, `all`, `any`, `max`, closures over `#`, ...).

use std::borrow::Cow;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use expr::{Context, ContextProvider, Environment, Value};

use crate::Phase;

/// The longest condition or time expression accepted, in bytes.
pub const MAX_EXPRESSION_LEN: usize = 4096;

/// Stack for parsing and evaluating one expression. expr's parser and evaluator recurse once per operator, and an
/// expression at the length limit needs far more than a worker thread's 2 MiB in a debug build; the stack is
/// virtual memory, so only what is touched is committed.
const EXPRESSION_STACK: usize = 64 * 1024 * 1024;

/// The value a provider measured, bound to `result` in the conditions.
///
/// It has the shapes upstream's Go values have: numbers (every JSON number is a float, as Go's `float64`, so
/// `result.Status == 999` holds for a JSON `999`), strings, booleans, nil, lists and maps. Floats may be NaN or
/// ±Inf, which Prometheus answers and JSON cannot carry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultValue(Value);

impl ResultValue {
    /// The nil result.
    pub fn nil() -> Self {
        Self(Value::Nil)
    }

    /// A string result, e.g. a web answer that is not JSON.
    pub fn string(s: impl Into<String>) -> Self {
        Self(Value::String(s.into()))
    }

    /// Whether the result is nil (what `isNil(result)` answers).
    pub fn is_nil(&self) -> bool {
        self.0.is_nil()
    }

    /// The expr value bound to `result`.
    pub fn as_expr(&self) -> &Value {
        &self.0
    }

    /// Nil or an empty list: a provider that found no data.
    fn is_nil_or_empty(&self) -> bool {
        match &self.0 {
            Value::Nil => true,
            Value::Array(items) => items.is_empty(),
            _ => false,
        }
    }
}

impl From<f64> for ResultValue {
    fn from(value: f64) -> Self {
        Self(Value::Float(value))
    }
}

impl From<Vec<f64>> for ResultValue {
    fn from(values: Vec<f64>) -> Self {
        Self(Value::Array(values.into_iter().map(Value::Float).collect()))
    }
}

impl From<&serde_json::Value> for ResultValue {
    fn from(value: &serde_json::Value) -> Self {
        Self(json_to_expr(value))
    }
}

impl From<serde_json::Value> for ResultValue {
    fn from(value: serde_json::Value) -> Self {
        Self(json_to_expr(&value))
    }
}

impl From<Value> for ResultValue {
    fn from(value: Value) -> Self {
        Self(value)
    }
}

/// JSON as Go's `encoding/json` decodes it into `interface{}`: every number a float64.
fn json_to_expr(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(json_to_expr).collect()),
        serde_json::Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), json_to_expr(v))).collect(),
    }
}

/// Evaluates a measurement's conditions against `result` as upstream's `EvaluateResult` does: neither condition
/// → Successful; only a success condition → Failed when it is false; only a failure condition → Successful when
/// it is false; both → Failed when the failure condition holds (whatever the success condition says), Successful
/// when only the success condition holds, Inconclusive when neither does. An empty or blank condition is not
/// defined. An evaluation error (syntax, type, non-bool result) is Err with the measurement's message.
pub fn evaluate(success: Option<&str>, failure: Option<&str>, result: &ResultValue) -> Result<Phase, String> {
    let success = match defined(success) {
        Some(condition) => Some(holds("successCondition", condition, result)?),
        None => None,
    };
    let failure = match defined(failure) {
        Some(condition) => Some(holds("failureCondition", condition, result)?),
        None => None,
    };
    Ok(match (success, failure) {
        (None, None) => Phase::Successful,
        (Some(true), None) | (None, Some(false)) => Phase::Successful,
        (Some(false), None) | (None, Some(true)) => Phase::Failed,
        (Some(_), Some(true)) => Phase::Failed,
        (Some(true), Some(false)) => Phase::Successful,
        (Some(false), Some(false)) => Phase::Inconclusive,
    })
}

/// Reports a syntax error in a condition without evaluating it (for validating a template). A blank condition
/// is valid: it means "not defined".
pub fn check(condition: &str) -> Result<(), String> {
    let condition = condition.trim();
    if condition.is_empty() {
        return Ok(());
    }
    guarded(condition, |_| Ok(Value::Nil))
        .map(|_| ())
        .map_err(Failure::message)
}

/// Evaluates a time expression such as `now() - duration("5m")` (a Prometheus range query's start or end).
pub fn eval_time(expression: &str) -> Result<SystemTime, String> {
    let expression = expression.trim();
    if expression.is_empty() {
        return Err("the time expression is empty".to_string());
    }
    let value =
        guarded(expression, |program| ENVIRONMENT.run(&program, &Bindings(None))).map_err(|failure| {
            format!(
                "could not evaluate time expression \"{expression}\": {}",
                failure.message()
            )
        })?;
    match value {
        Value::DateTime(time) => {
            let seconds = time.timestamp();
            let nanos = time.timestamp_subsec_nanos();
            let since_epoch = Duration::new(seconds.unsigned_abs(), 0);
            let whole = if seconds >= 0 {
                UNIX_EPOCH.checked_add(since_epoch)
            } else {
                UNIX_EPOCH.checked_sub(since_epoch)
            };
            whole
                .and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
                .ok_or_else(|| format!("time expression \"{expression}\" is out of range"))
        }
        other => Err(format!(
            "could not evaluate time expression \"{expression}\": expected time.Time, but got {}",
            go_type(&other)
        )),
    }
}

/// Evaluates a predicate over named JSON values (e.g. a notification trigger's `when` over `rollout`), with the
/// same language, helpers and guards as the analysis conditions. A blank expression is an error: the caller
/// decides what "no condition" means. A non-bool result is an error, as it is for a condition.
pub fn predicate(
    expression: &str,
    variables: &serde_json::Map<String, serde_json::Value>,
) -> Result<bool, String> {
    let expression = expression.trim();
    if expression.is_empty() {
        return Err("the expression is empty".to_string());
    }
    let bound = Variables(
        variables
            .iter()
            .map(|(name, value)| (name.clone(), json_to_expr(value)))
            .collect(),
    );
    match guarded(expression, |program| ENVIRONMENT.run(&program, &bound)) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!(
            "could not evaluate \"{expression}\": expected bool, but got {}",
            go_type(&other)
        )),
        Err(failure) => Err(format!(
            "could not evaluate \"{expression}\": {}",
            failure.message()
        )),
    }
}

/// Named variables an expression sees (a predicate's environment).
struct Variables(std::collections::BTreeMap<String, Value>);

impl ContextProvider for Variables {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    fn to_context(&self) -> Context {
        let mut context = Context::default();
        for (name, value) in &self.0 {
            context.insert(name.as_str(), value.clone());
        }
        context
    }
}

/// A condition that is present and not blank.
fn defined(condition: Option<&str>) -> Option<&str> {
    condition.map(str::trim).filter(|c| !c.is_empty())
}

/// Evaluates one condition to a bool, with upstream's wording for errors (`formatEvalError`): a condition that
/// fails on a nil or empty result says so, since "index out of range" hides that the provider found no data.
fn holds(kind: &str, condition: &str, result: &ResultValue) -> Result<bool, String> {
    let outcome = guarded(condition, |program| {
        ENVIRONMENT.run(&program, &Bindings(Some(result.as_expr())))
    });
    match outcome {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!(
            "could not evaluate {kind} \"{condition}\": expected bool, but got {}",
            go_type(&other)
        )),
        Err(Failure::Runtime(_)) if result.is_nil_or_empty() => Err(format!(
            "could not evaluate {kind} \"{condition}\": metric result is nil or empty: no data returned from the \
             metric provider"
        )),
        Err(failure) => Err(format!(
            "could not evaluate {kind} \"{condition}\": {}",
            failure.message()
        )),
    }
}

/// Why an expression could not be evaluated.
enum Failure {
    /// It does not parse.
    Syntax(String),
    /// It parses but fails when run (a type error, an unknown name, a failing helper).
    Runtime(String),
    /// The language implementation itself failed on it.
    Internal(String),
}

impl Failure {
    fn message(self) -> String {
        match self {
            Failure::Syntax(m) | Failure::Runtime(m) | Failure::Internal(m) => m,
        }
    }
}

/// Compiles `source` and hands the program to `run`, on a stack of its own and with panics caught, so that no
/// expression (however deep or malformed) can take the controller down with it.
fn guarded<F>(source: &str, run: F) -> Result<Value, Failure>
where
    F: FnOnce(expr::Program) -> expr::Result<Value>,
{
    if source.len() > MAX_EXPRESSION_LEN {
        return Err(Failure::Syntax(format!(
            "the expression is {} bytes long; at most {MAX_EXPRESSION_LEN} are accepted",
            source.len()
        )));
    }
    let (code, inserted) = expand_member_shorthand(source);
    stacker::grow(EXPRESSION_STACK, || {
        catch_unwind(AssertUnwindSafe(|| {
            let program =
                expr::compile(&code).map_err(|e| Failure::Syntax(syntax_error(source, &inserted, e)))?;
            run(program).map_err(|e| Failure::Runtime(e.to_string()))
        }))
        .unwrap_or_else(|panic| {
            let detail = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown cause");
            Err(Failure::Internal(format!("evaluation logic panicked: {detail}")))
        })
    })
}

/// The variables an expression sees: `result` only, borrowed so that a long range result is not copied per
/// evaluation.
struct Bindings<'a>(Option<&'a Value>);

impl ContextProvider for Bindings<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        if key == "result" { self.0 } else { None }
    }

    fn to_context(&self) -> Context {
        let mut context = Context::default();
        if let Some(result) = self.0 {
            context.insert("result", result.clone());
        }
        context
    }
}

/// expr's builtins plus upstream's helpers, built once.
static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.add_function("asInt", |call| as_int(one_argument("asInt", call.args)?));
    env.add_function("asFloat", |call| as_float(one_argument("asFloat", call.args)?));
    env.add_function("isNaN", |call| match one_argument("isNaN", call.args)? {
        Value::Float(f) => Ok(Value::Bool(f.is_nan())),
        Value::Integer(_) => Ok(Value::Bool(false)),
        other => Err(format!("isNaN() expects a number, got {}", go_type(&other)).into()),
    });
    env.add_function("isInf", |call| match one_argument("isInf", call.args)? {
        Value::Float(f) => Ok(Value::Bool(f.is_infinite())),
        Value::Integer(_) => Ok(Value::Bool(false)),
        other => Err(format!("isInf() expects a number, got {}", go_type(&other)).into()),
    });
    // Upstream binds isNil and default to the measured value: their first argument is ignored.
    env.add_function("isNil", |call| {
        one_argument("isNil", call.args)?;
        Ok(Value::Bool(call.ctx.get("result").is_none_or(Value::is_nil)))
    });
    env.add_function("default", |mut call| {
        if call.args.len() != 2 {
            return Err("default() takes exactly two arguments: default(result, value)"
                .to_string()
                .into());
        }
        let fallback = call.args.pop().unwrap_or_default();
        Ok(match call.ctx.get("result") {
            Some(result) if !result.is_nil() => result.clone(),
            _ => fallback,
        })
    });
    env
});

fn one_argument(name: &str, mut args: Vec<Value>) -> expr::Result<Value> {
    match (args.pop(), args.is_empty()) {
        (Some(arg), true) => Ok(arg),
        _ => Err(format!("{name}() takes exactly one argument").into()),
    }
}

/// Upstream's `asInt`: floats are truncated toward zero, strings parsed as base-10 integers.
fn as_int(value: Value) -> expr::Result<Value> {
    match value {
        Value::Integer(i) => Ok(Value::Integer(i)),
        Value::Float(f) => Ok(Value::Integer(f as i64)),
        Value::String(s) => s
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| format!("asInt(): \"{s}\" is not an integer").into()),
        other => Err(format!("asInt() not supported on {} {other}", go_type(&other)).into()),
    }
}

/// Upstream's `asFloat`: numbers as they are, strings parsed as Go's `strconv.ParseFloat` does (so "NaN" and
/// "+Inf" are numbers).
fn as_float(value: Value) -> expr::Result<Value> {
    match value {
        Value::Integer(i) => Ok(Value::Float(i as f64)),
        Value::Float(f) => Ok(Value::Float(f)),
        Value::String(s) => parse_go_float(&s)
            .map(Value::Float)
            .ok_or_else(|| format!("asFloat(): \"{s}\" is not a number").into()),
        other => Err(format!("asFloat() not supported on {} {other}", go_type(&other)).into()),
    }
}

/// Parses a float as Go's `strconv.ParseFloat` does for the forms that occur in practice, including "NaN",
/// "Inf", "+Inf" and "-Inf" in any case.
pub(crate) fn parse_go_float(s: &str) -> Option<f64> {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let negative = s.starts_with('-');
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if s.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN);
    }
    if unsigned.eq_ignore_ascii_case("nan") {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Go's `%T` of the value upstream would hold, for "expected bool, but got T".
fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::Integer(_) => "int",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::Bytes(_) => "[]uint8",
        Value::Array(_) => "[]interface {}",
        Value::Map(_) | Value::KeyedMap(_) => "map[string]interface {}",
        Value::DateTime(_) => "time.Time",
        Value::Duration(_) => "time.Duration",
        Value::Timezone(_) => "*time.Location",
        Value::Month(_) => "time.Month",
        Value::Weekday(_) => "time.Weekday",
    }
}

/// One line naming where the expression stops parsing, instead of the parser's multi-line rule listing.
fn syntax_error(source: &str, inserted: &[usize], error: expr::Error) -> String {
    let expr::Error::PestError(error) = error else {
        return error.to_string();
    };
    let at = match error.location {
        pest::error::InputLocation::Pos(p) | pest::error::InputLocation::Span((p, _)) => p,
    };
    // Positions count the `#`s added by expand_member_shorthand; the user wrote none of them.
    let at = at - inserted.iter().enumerate().filter(|(k, p)| **p + k < at).count();
    let mut at = at.min(source.len());
    while !source.is_char_boundary(at) {
        at -= 1;
    }
    let before = &source[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let place = if source.contains('\n') {
        format!("line {line}, column {column}")
    } else {
        format!("column {column}")
    };
    match source[at..].chars().next() {
        None => format!("syntax error at {place}: unexpected end of expression"),
        Some(c) => format!("syntax error at {place}: unexpected {c:?}"),
    }
}

/// Words after which a `.name` starts an operand rather than continuing one.
const OPERATOR_WORDS: &[&str] = &[
    "and",
    "or",
    "not",
    "in",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "let",
    "if",
    "else",
];

/// Rewrites the closure shorthand `.field` (Go expr's `#.field`, as in `all(xs, {asFloat(.value) > 1})`) into
/// `#.field`, which the Rust implementation parses. Returns the code and the byte offsets (in `source`) where a
/// `#` was inserted.
fn expand_member_shorthand(source: &str) -> (Cow<'_, str>, Vec<usize>) {
    let bytes = source.as_bytes();
    let mut inserted = Vec::new();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == b'\\' && q != b'`' {
                i += 2;
                continue;
            }
            if b == q {
                quote = None;
            }
        } else if matches!(b, b'\'' | b'"' | b'`') {
            quote = Some(b);
        } else if b == b'.'
            && bytes
                .get(i + 1)
                .is_some_and(|n| n.is_ascii_alphabetic() || *n == b'_' || *n == b'$')
            && starts_operand(&bytes[..i])
        {
            inserted.push(i);
        }
        i += 1;
    }
    if inserted.is_empty() {
        return (Cow::Borrowed(source), inserted);
    }
    let mut code = String::with_capacity(source.len() + inserted.len());
    let mut from = 0;
    for &at in &inserted {
        code.push_str(&source[from..at]);
        code.push('#');
        from = at;
    }
    code.push_str(&source[from..]);
    (Cow::Owned(code), inserted)
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'#')
}

/// Whether a `.` preceded by `before` begins an operand (`{.x`, `(.x`, `&& .x`) rather than accessing a member
/// (`result.x`, `f().x`, `a[0].x`, `a?.x`, `"s".x`).
fn starts_operand(before: &[u8]) -> bool {
    match before.last() {
        None => return true,
        Some(c) if !c.is_ascii_whitespace() => {
            return !(is_ident_byte(*c)
                || matches!(c, b')' | b']' | b'}' | b'?' | b'.' | b'\'' | b'"' | b'`'));
        }
        Some(_) => {}
    }
    let trimmed = before.trim_ascii_end();
    match trimmed.last() {
        None => true,
        Some(c) if is_ident_byte(*c) => {
            let start = trimmed
                .iter()
                .rposition(|b| !is_ident_byte(*b))
                .map_or(0, |p| p + 1);
            let word = &trimmed[start..];
            OPERATOR_WORDS.iter().any(|w| w.as_bytes() == word)
        }
        Some(c) => !matches!(c, b')' | b']' | b'}' | b'\'' | b'"' | b'`'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> ResultValue {
        ResultValue::from(serde_json::from_str::<serde_json::Value>(text).expect("test JSON"))
    }

    fn eval(condition: &str, result: &ResultValue) -> Result<bool, String> {
        holds("successCondition", condition, result)
    }

    /// Predicates over named objects, as notification triggers write them (upstream's docs and issues).
    #[test]
    fn predicates_over_named_objects() {
        let rollout = serde_json::json!({
            "metadata": {"name": "web", "generation": 3, "annotations": {"team": "shop"}},
            "spec": {"template": {"spec": {"containers": [{"image": "argoproj/rollouts-demo:purple"}]}},
                     "strategy": {"canary": {"steps": [{}, {}]}}},
            "status": {"observedGeneration": "3", "currentStepIndex": 2, "currentPodHash": "a", "stableRS": "a"}
        });
        let vars: serde_json::Map<String, serde_json::Value> =
            [("rollout".to_string(), rollout)].into_iter().collect();
        for (expression, want) in [
            (
                "rollout.spec.template.spec.containers[0].image == 'argoproj/rollouts-demo:purple'",
                Ok(true),
            ),
            (
                "rollout.metadata.annotations['team'] == 'shop' and rollout.metadata.name == 'web'",
                Ok(true),
            ),
            (
                "rollout.status != nil && rollout.status.currentPodHash == rollout.status.stableRS",
                Ok(true),
            ),
            (
                "rollout.status.currentStepIndex == len(rollout.spec.strategy.canary.steps)",
                Ok(true),
            ),
            ("rollout.spec.strategy.blueGreen != nil", Ok(false)),
            ("rollout.metadata.name", Err("expected bool, but got string")),
            ("rollout.metadata.name ==", Err("could not evaluate")),
            ("  ", Err("the expression is empty")),
        ] {
            let got = predicate(expression, &vars);
            match (&got, want) {
                (Ok(g), Ok(w)) => assert_eq!(*g, w, "{expression}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{expression}: {e}"),
                _ => panic!("{expression}: {got:?}"),
            }
        }
    }

    /// Every real condition form from upstream's docs and e2e manifests, each with a result that makes it true
    /// and one that makes it false.
    #[test]
    fn upstream_condition_corpus() {
        let cases: Vec<(&str, ResultValue, ResultValue)> = vec![
            ("result[0] >= 0.95", vec![0.97].into(), vec![0.90].into()),
            (
                "all(result, # < 1000)",
                vec![120.0, 850.5, 999.9].into(),
                vec![120.0, 1200.0].into(),
            ),
            ("result[0] >= 10", vec![12.0].into(), vec![3.0].into()),
            ("isNaN(result) || result >= 0.95", f64::NAN.into(), 0.5.into()),
            ("isNaN(result) || result >= 0.95", 0.99.into(), 0.94.into()),
            (
                "len(result) == 0 || result[0] >= 0.95",
                Vec::<f64>::new().into(),
                vec![0.5].into(),
            ),
            (
                "len(result) == 0 || result[0] >= 0.95",
                vec![0.99].into(),
                vec![0.1, 0.99].into(),
            ),
            (
                "len(result) > 0 && result[0] >= 0.95",
                vec![0.96].into(),
                Vec::<f64>::new().into(),
            ),
            ("result == 'true'", json(r#""true""#), json(r#""false""#)),
            (
                "result.ok && result.successPercent >= 0.90",
                json(r#"{"ok": true, "successPercent": 0.95}"#),
                json(r#"{"ok": true, "successPercent": 0.80}"#),
            ),
            ("result == true", json("true"), json("false")),
            (
                "result.major == '1'",
                json(r#"{"major": "1", "minor": "30"}"#),
                json(r#"{"major": "2"}"#),
            ),
            (
                "result.Status == 999",
                json(r#"{"Status": 999}"#),
                json(r#"{"Status": 200}"#),
            ),
            (
                "result.Status == -1",
                json(r#"{"Status": -1}"#),
                json(r#"{"Status": 999}"#),
            ),
            (
                "result == 'It worked!'",
                ResultValue::string("It worked!"),
                ResultValue::string("<html>"),
            ),
            ("default(result, 0) < 0.05", ResultValue::nil(), 0.2.into()),
            ("default(result, 0) < 0.05", 0.01.into(), json("0.07")),
            (
                "max(result) < 0.05",
                vec![0.01, 0.04, 0.02].into(),
                vec![0.01, 0.06].into(),
            ),
            (
                "len(result[0].Values) >= 5 and all(result[0].Values, {# <= 0.01})",
                json(r#"[{"Label": "5xx", "Values": [0.0, 0.001, 0.01, 0.002, 0.0]}]"#),
                json(r#"[{"Label": "5xx", "Values": [0.0, 0.001, 0.02, 0.002, 0.0]}]"#),
            ),
            (
                "len(result[0].Values) >= 5 and all(result[0].Values, {# <= 0.01})",
                json(r#"[{"Values": [0.0, 0.001, 0.002, 0.0, 0.0, 0.0]}]"#),
                json(r#"[{"Values": [0.0, 0.001]}]"#),
            ),
            (
                "all(result.service_apdex.values.values, {asFloat(.value) >= 9900})",
                json(
                    r#"{"service_apdex": {"values": {"values": [{"id": "a", "value": "9950"},
                        {"id": "b", "value": "10000"}]}}}"#,
                ),
                json(
                    r#"{"service_apdex": {"values": {"values": [{"id": "a", "value": "9950"},
                        {"id": "b", "value": "9800"}]}}}"#,
                ),
            ),
            ("result[0] >= 0.99", vec![0.995].into(), vec![0.98].into()),
            (
                "result == \"it-worked\"",
                ResultValue::string("it-worked"),
                ResultValue::string("nope"),
            ),
        ];
        for (condition, truthy, falsy) in cases {
            assert_eq!(eval(condition, &truthy), Ok(true), "{condition} with {truthy:?}");
            assert_eq!(eval(condition, &falsy), Ok(false), "{condition} with {falsy:?}");
            assert_eq!(check(condition), Ok(()), "{condition}");
        }
    }

    #[test]
    fn evaluate_result_rule_table() {
        use Phase::*;
        let r = ResultValue::from(1.0);
        let t = Some("result == 1");
        let f = Some("result == 2");
        let cases: Vec<(Option<&str>, Option<&str>, Phase)> = vec![
            (None, None, Successful),
            (Some(""), Some("   "), Successful),
            (t, None, Successful),
            (f, None, Failed),
            (None, t, Failed),
            (None, f, Successful),
            (t, f, Successful),
            (f, t, Failed),
            // Both conditions true: the failure wins, as upstream checks it first.
            (t, t, Failed),
            (f, f, Inconclusive),
            (Some("  "), f, Successful),
            (t, Some(""), Successful),
        ];
        for (success, failure, want) in cases {
            assert_eq!(
                evaluate(success, failure, &r),
                Ok(want),
                "success {success:?}, failure {failure:?}"
            );
        }
    }

    #[test]
    fn errors_are_errors_whatever_the_other_condition_says() {
        let r = ResultValue::from(1.0);
        let err = evaluate(Some("result +"), Some("result == 1"), &r).unwrap_err();
        assert!(
            err.starts_with("could not evaluate successCondition \"result +\": syntax error"),
            "{err}"
        );
        let err = evaluate(Some("result == 1"), Some("result.x.y"), &r).unwrap_err();
        assert!(
            err.starts_with("could not evaluate failureCondition \"result.x.y\""),
            "{err}"
        );
    }

    #[test]
    fn syntax_errors_name_the_place() {
        let err = evaluate(Some("sum(rate(x[1m]"), None, &ResultValue::from(1.0)).unwrap_err();
        assert_eq!(
            err,
            "could not evaluate successCondition \"sum(rate(x[1m]\": syntax error at column 13: unexpected 'm'"
        );
        assert_eq!(
            check("result[0] >="),
            Err("syntax error at column 13: unexpected end of expression".into())
        );
        assert_eq!(
            check("result > 1 &&\n  result <"),
            Err("syntax error at line 2, column 11: unexpected end of expression".into())
        );
        // The column counts what was written, not the `#` that the closure shorthand gains.
        assert_eq!(
            check("all(result, {.value > })"),
            Err("syntax error at column 23: unexpected '}'".into())
        );
        assert_eq!(check(""), Ok(()));
        assert_eq!(check("all(result, {.v >= 1}) and len(result) > 2"), Ok(()));
    }

    #[test]
    fn empty_or_nil_results_say_so() {
        let empty = ResultValue::from(Vec::<f64>::new());
        let want = "could not evaluate successCondition \"result[0] >= 0.95\": metric result is nil or empty: no \
                    data returned from the metric provider";
        assert_eq!(
            evaluate(Some("result[0] >= 0.95"), None, &empty),
            Err(want.to_string())
        );
        assert_eq!(
            evaluate(Some("result[0] >= 0.95"), None, &ResultValue::nil()),
            Err(want.to_string())
        );
        // A syntax error is reported as such, even on an empty result.
        let err = evaluate(Some("result[0] >="), None, &empty).unwrap_err();
        assert!(err.contains("syntax error"), "{err}");
        // Indexing past the end of a non-empty list is an error too.
        let err = evaluate(Some("result[3] >= 0.95"), None, &vec![1.0].into()).unwrap_err();
        assert!(err.contains("Invalid operands"), "{err}");
    }

    #[test]
    fn non_bool_results_are_errors() {
        let cases: Vec<(&str, ResultValue, &str)> = vec![
            ("result", 0.97.into(), "float64"),
            ("result", json(r#""x""#), "string"),
            ("1 + 1", ResultValue::nil(), "int"),
            ("result", vec![1.0].into(), "[]interface {}"),
            ("result", json(r#"{"a": 1}"#), "map[string]interface {}"),
            ("result", ResultValue::nil(), "<nil>"),
        ];
        for (condition, result, type_name) in cases {
            assert_eq!(
                evaluate(Some(condition), None, &result),
                Err(format!(
                    "could not evaluate successCondition \"{condition}\": expected bool, but got {type_name}"
                )),
            );
        }
    }

    #[test]
    fn helpers_behave_as_upstream() {
        let yes: Vec<(&str, ResultValue)> = vec![
            ("asInt(result) == 12", json(r#""12""#)),
            ("asInt(result) == 12", 12.9.into()),
            ("asInt(result) == -3", (-3.7).into()),
            ("asFloat(result) == 0.25", json(r#""0.25""#)),
            ("asFloat(result) == 3", json("3")),
            ("isNaN(asFloat(result))", json(r#""NaN""#)),
            ("isInf(asFloat(result))", json(r#""+Inf""#)),
            ("isInf(result)", f64::NEG_INFINITY.into()),
            ("!isInf(result) && !isNaN(result)", 1.0.into()),
            ("isNil(result)", ResultValue::nil()),
            ("isNil(nil)", ResultValue::nil()),
            ("!isNil(result)", vec![].into()),
            ("!isNil(nil)", 1.0.into()),
            ("default(result, 5) == 5", ResultValue::nil()),
            ("default(result, 5) == 2", 2.0.into()),
            ("default(nil, 5) == 2", 2.0.into()),
            ("all(result, {isNaN(#) || # > 1})", vec![f64::NAN, 2.0].into()),
            ("result[0] > 1", vec![f64::INFINITY].into()),
        ];
        for (condition, result) in yes {
            assert_eq!(eval(condition, &result), Ok(true), "{condition} with {result:?}");
        }
        let err = eval("asInt(result) > 0", &json(r#""abc""#)).unwrap_err();
        assert!(err.ends_with("asInt(): \"abc\" is not an integer"), "{err}");
        let err = eval("asFloat(result) > 0", &json(r#""1,5""#)).unwrap_err();
        assert!(err.ends_with("asFloat(): \"1,5\" is not a number"), "{err}");
        let err = eval("isNaN(result)", &vec![1.0].into()).unwrap_err();
        assert!(
            err.ends_with("isNaN() expects a number, got []interface {}"),
            "{err}"
        );
        let err = eval("default(result) == 1", &1.0.into()).unwrap_err();
        assert!(err.contains("default() takes exactly two arguments"), "{err}");
    }

    #[test]
    fn json_numbers_compare_as_go_floats() {
        assert_eq!(
            eval("result.Status == 999", &json(r#"{"Status": 999}"#)),
            Ok(true)
        );
        assert_eq!(
            eval("result.Status == 999.0", &json(r#"{"Status": 999}"#)),
            Ok(true)
        );
        assert_eq!(
            eval("result.n > 1.5 && result.n < 2", &json(r#"{"n": 1.75}"#)),
            Ok(true)
        );
        assert_eq!(eval("result.missing == nil", &json(r#"{"n": 1}"#)), Ok(true));
        assert_eq!(eval("result[1] == 'b'", &json(r#"["a", "b"]"#)), Ok(true));
        assert_eq!(eval("result == nil", &json("null")), Ok(true));
    }

    #[test]
    fn member_shorthand_is_expanded_only_where_an_operand_starts() {
        let cases = [
            ("all(xs, {.value > 1})", "all(xs, {#.value > 1})"),
            ("all(xs, .ok)", "all(xs, #.ok)"),
            ("map(xs, {asFloat(.v)})", "map(xs, {asFloat(#.v)})"),
            ("{.a > 1 and .b < 2}", "{#.a > 1 and #.b < 2}"),
            ("{.a || not .b}", "{#.a || not #.b}"),
            ("result.ok && result .x", "result.ok && result .x"),
            ("f().x + a[0].y + a?.z + m{}.w", "f().x + a[0].y + a?.z + m{}.w"),
            ("1..3", "1..3"),
            ("x >= .5", "x >= .5"),
            ("'.a' + \".b\" + `.c`", "'.a' + \".b\" + `.c`"),
            ("'it\\'s .a' == .b", "'it\\'s .a' == #.b"),
            ("#.a", "#.a"),
            ("c ? .a : .b", "c ? #.a : #.b"),
        ];
        for (source, want) in cases {
            assert_eq!(expand_member_shorthand(source).0, want, "{source}");
        }
    }

    #[test]
    fn time_expressions() {
        let now = SystemTime::now();
        let start = eval_time(r#"now() - duration("5m")"#).expect("time");
        let ago = now.duration_since(start).expect("in the past").as_secs_f64();
        assert!((295.0..310.0).contains(&ago), "{ago}");
        let end = eval_time("now()").expect("time");
        assert!(end >= now);
        assert_eq!(
            eval_time("1 + 1"),
            Err("could not evaluate time expression \"1 + 1\": expected time.Time, but got int".into())
        );
        assert!(eval_time("now() -").unwrap_err().contains("syntax error"));
        assert!(
            eval_time(r#"now() - duration("5x")"#)
                .unwrap_err()
                .contains("invalid duration")
        );
        assert_eq!(eval_time("  "), Err("the time expression is empty".into()));
    }

    #[test]
    fn result_constructors() {
        assert_eq!(ResultValue::from(0.5).as_expr(), &Value::Float(0.5));
        assert_eq!(
            ResultValue::from(vec![1.0, f64::INFINITY]).as_expr(),
            &Value::Array(vec![1.0.into(), f64::INFINITY.into()])
        );
        assert_eq!(json("999").as_expr(), &Value::Float(999.0));
        assert!(json("null").is_nil());
        assert!(ResultValue::default().is_nil());
        assert!(!ResultValue::from(Vec::<f64>::new()).is_nil());
        assert_eq!(ResultValue::string("x").as_expr(), &Value::String("x".into()));
    }

    #[test]
    fn overlong_and_deep_expressions_are_refused_or_survived() {
        let long = format!("result > {}", "1".repeat(MAX_EXPRESSION_LEN));
        assert!(check(&long).unwrap_err().contains("at most 4096"));
        // Worst cases at the length limit run on the expression's own stack instead of overflowing the caller's.
        let half = MAX_EXPRESSION_LEN / 2 - 2;
        let deep = [
            format!("{}1{} == 1", "(".repeat(half), ")".repeat(half)),
            format!("1{} > 0", "+1".repeat(half - 4)),
            format!("result{} == nil", ".a".repeat(half - 4)),
            format!("{}true", "!".repeat(MAX_EXPRESSION_LEN - 5)),
            format!("{}1{} == 1", "[".repeat(half), "]".repeat(half)),
            format!("{}1", "-".repeat(MAX_EXPRESSION_LEN - 1)),
        ];
        for condition in deep {
            let outcome = evaluate(Some(&condition), None, &json(r#"{"a": null}"#));
            assert!(outcome.is_ok() || outcome.is_err(), "{condition}");
        }
    }

    #[test]
    fn a_panic_inside_the_language_is_an_error() {
        // expr-lang panics on a map literal nested in a map literal; the measurement gets an error instead.
        let err = evaluate(Some("{a: {a: 1}}.a.a == 1"), None, &ResultValue::nil()).unwrap_err();
        assert!(err.contains("evaluation logic panicked"), "{err}");
    }

    /// Deterministic garbage, made of expression tokens and stray characters, never panics the caller.
    #[test]
    fn garbage_never_panics() {
        const TOKENS: &[&str] = &[
            "result",
            "[",
            "]",
            "(",
            ")",
            "{",
            "}",
            "#",
            ".",
            ",",
            "0",
            "1.5",
            "-2",
            "1e9",
            "'a'",
            "\"",
            "'",
            "`",
            "&&",
            "||",
            "and",
            "or",
            "not",
            "in",
            "!",
            "all",
            "any",
            "none",
            "one",
            "filter",
            "map",
            "len",
            "max",
            "min",
            "sum",
            "count",
            "default",
            "isNaN",
            "isInf",
            "isNil",
            "asInt",
            "asFloat",
            "?",
            ":",
            "..",
            "+",
            "-",
            "*",
            "/",
            "%",
            "**",
            "^",
            "==",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            " ",
            "nil",
            "true",
            "false",
            "now()",
            "duration(",
            "date(",
            "{a:",
            "|",
            "??",
            "?.",
            "let x = 1;",
            ";",
            "\\",
            "é",
            "\n",
            "$env",
            "matches",
            "contains",
            "startsWith",
            "upper(",
            "split(",
            "fromJSON(",
            "toJSON(",
            "type(",
            "int(",
            "float(",
            "string(",
            "keys(",
            "values(",
            "reduce(",
            "#acc",
            "#index",
            "if",
            "else",
            "//",
            "/*",
            "*/",
            "b'x'",
            "0x",
            "_",
            "1_000",
            "9223372036854775807",
            "1e999",
            "\u{0}",
            "🙂",
        ];
        let results = [
            ResultValue::nil(),
            ResultValue::from(0.5),
            ResultValue::from(vec![1.0, f64::NAN, f64::INFINITY]),
            json(r#"{"ok": true, "values": [{"value": "1"}], "n": 3}"#),
            ResultValue::string("true"),
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..3000 {
            let pieces = (next() % 24) as usize;
            let mut condition = String::new();
            for _ in 0..pieces {
                let pick = next();
                if pick % 5 == 0 {
                    condition.push(char::from_u32((pick >> 8) as u32 % 0x3000).unwrap_or('?'));
                } else {
                    condition.push_str(TOKENS[(pick >> 8) as usize % TOKENS.len()]);
                }
            }
            let result = &results[round % results.len()];
            let _ = evaluate(Some(&condition), Some(&condition), result);
            let _ = check(&condition);
            let _ = eval_time(&condition);
        }
    }
}
