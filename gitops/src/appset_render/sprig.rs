//! The template functions of upstream's goTemplate mode beyond Go's builtins: the Sprig functions
//! ApplicationSets use (Masterminds/sprig v3 semantics: argument order, `default`/`empty` rules, `trunc` with
//! a negative count, `quote` skipping nil) and Argo's own `normalize` (`SanitizeName`), `slugify`
//! (`SlugifyName` over gosimple/slug), `toYaml`, `fromYaml` and `fromYamlArray`. Lists, dicts, numbers, regular expressions
//! and indentation are in `sprig_data`.
//!
//! Arguments are typed as Go's are: a string parameter given a number is `wrong type for value; expected
//! string; got int`, and given a missing key is `invalid value; expected string`.

use std::sync::{Arc, LazyLock};

use base64::Engine as _;
use gotmpl::{FuncMap, Result, TemplateError, Value, ValueFunc};
use sha2::Digest as _;

use super::gotemplate::{from_go, to_go};

/// A template function.
pub(super) type Func = fn(&[Value]) -> Result<Value>;

/// The longest string `repeat` builds (1 MiB).
const MAX_REPEAT_BYTES: usize = 1 << 20;

const FUNCS: &[(&str, Func)] = &[
    ("lower", lower),
    ("upper", upper),
    ("title", title),
    ("trim", trim),
    ("trimAll", trim_all),
    ("trimPrefix", trim_prefix),
    ("trimSuffix", trim_suffix),
    ("nospace", nospace),
    ("replace", replace),
    ("trunc", trunc),
    ("repeat", repeat),
    ("contains", contains),
    ("hasPrefix", has_prefix),
    ("hasSuffix", has_suffix),
    ("quote", quote),
    ("squote", squote),
    ("default", default),
    ("empty", empty),
    ("coalesce", coalesce),
    ("ternary", ternary),
    ("join", join),
    ("split", split),
    ("splitList", split_list),
    ("toString", to_string),
    ("atoi", atoi),
    ("list", list),
    ("dict", dict),
    ("toJson", to_json),
    ("toPrettyJson", to_pretty_json),
    ("fromJson", from_json),
    ("toYaml", to_yaml),
    ("fromYaml", from_yaml),
    ("fromYamlArray", from_yaml_array),
    ("b64enc", b64enc),
    ("b64dec", b64dec),
    ("sha256sum", sha256sum),
    ("normalize", normalize_fn),
    ("slugify", slugify_fn),
];

static MAP: LazyLock<FuncMap> = LazyLock::new(|| {
    FUNCS
        .iter()
        .chain(super::sprig_data::FUNCS)
        .map(|(name, f)| (name.to_string(), Arc::new(*f) as ValueFunc))
        .collect()
});

/// Go's builtin template functions, which `gotmpl` provides.
const GO_BUILTINS: [&str; 19] = [
    "and", "call", "eq", "ge", "gt", "html", "index", "js", "le", "len", "lt", "ne", "not", "or", "print",
    "printf", "println", "slice", "urlquery",
];

/// The functions, shared by every template.
pub(super) fn funcs() -> FuncMap {
    MAP.clone()
}

/// Whether a template may call `name` (a Go builtin or one of these functions).
pub(super) fn is_function(name: &str) -> bool {
    GO_BUILTINS.contains(&name) || MAP.contains_key(name)
}

/// Argo's `normalize` (`SanitizeName`): lower case, every character outside `[-a-z0-9.]` becomes `-`, at
/// most 253 characters, no leading or trailing `-` or `.`.
pub fn normalize(name: &str) -> String {
    let mut out: String = name
        .to_lowercase()
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '.' => c,
            _ => '-',
        })
        .collect();
    out.truncate(253);
    out.trim_matches(['-', '.']).to_string()
}

/// Argo's `slugify`: [`normalize`], then gosimple/slug with `max_length` (0: no limit when truncating
/// smartly) and smart truncation (cut at the last `-` within the limit).
pub fn slugify(name: &str, max_length: usize, smart_truncate: bool) -> String {
    let mut slug = normalize(name);
    if !smart_truncate && slug.len() >= max_length {
        slug.truncate(max_length);
    }
    let mut out = String::with_capacity(slug.len());
    for c in slug.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '-'
        };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    let out = out.trim_matches(['-', '_']);
    if max_length == 0 || !smart_truncate || out.len() <= max_length {
        return out.to_string();
    }
    let cut = (0..=max_length).rev().find(|&i| out.as_bytes()[i] == b'-');
    out[..cut.unwrap_or(max_length)].to_string()
}

pub(super) fn fail(name: &str, message: impl std::fmt::Display) -> TemplateError {
    TemplateError::Exec(format!("error calling {name}: {message}"))
}

pub(super) fn arity(name: &str, args: &[Value], want: usize) -> Result<()> {
    if args.len() == want {
        Ok(())
    } else {
        Err(fail(
            name,
            format!("wrong number of args: want {want} got {}", args.len()),
        ))
    }
}

/// Argument `i` as a Go `string` parameter.
pub(super) fn string<'v>(name: &str, args: &'v [Value], i: usize) -> Result<&'v str> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s),
        Some(Value::Nil) | None => Err(fail(name, "invalid value; expected string")),
        Some(other) => Err(fail(
            name,
            format!("wrong type for value; expected string; got {}", other.type_name()),
        )),
    }
}

/// Argument `i` as a Go `int` parameter.
pub(super) fn int(name: &str, args: &[Value], i: usize) -> Result<i64> {
    match args.get(i) {
        Some(Value::Int(n)) => Ok(*n),
        Some(Value::Uint(n)) => i64::try_from(*n).map_err(|_| fail(name, "integer overflow")),
        Some(Value::Nil) | None => Err(fail(name, "invalid value; expected int")),
        Some(other) => Err(fail(
            name,
            format!("wrong type for value; expected int; got {}", other.type_name()),
        )),
    }
}

pub(super) fn text(s: impl Into<Arc<str>>) -> Value {
    Value::String(s.into())
}

/// Sprig's `strval`: a string as it is, anything else as Go's `%v` prints it.
pub(super) fn strval(value: &Value) -> String {
    match value {
        Value::String(s) => s.to_string(),
        other => other.to_string(),
    }
}

/// Sprig's `empty`: nil, false, zero, and empty strings, lists and maps.
pub(super) fn is_empty(value: &Value) -> bool {
    match value {
        Value::Nil => true,
        Value::Bool(b) => !b,
        Value::Int(n) => *n == 0,
        Value::Uint(n) => *n == 0,
        Value::Float(f) => *f == 0.0,
        Value::String(s) => s.is_empty(),
        Value::List(items) => items.is_empty(),
        Value::Map(entries) => entries.is_empty(),
        Value::Function(_) => false,
    }
}

/// A one-string function.
fn on_string(name: &str, args: &[Value], f: impl Fn(&str) -> String) -> Result<Value> {
    arity(name, args, 1)?;
    Ok(text(f(string(name, args, 0)?)))
}

/// A function of two strings, `(a, s)`, as Sprig orders them (the operand last, for pipelines).
fn on_strings<T>(name: &str, args: &[Value], f: impl Fn(&str, &str) -> T) -> Result<T> {
    arity(name, args, 2)?;
    Ok(f(string(name, args, 0)?, string(name, args, 1)?))
}

fn lower(args: &[Value]) -> Result<Value> {
    on_string("lower", args, str::to_lowercase)
}

fn upper(args: &[Value]) -> Result<Value> {
    on_string("upper", args, str::to_uppercase)
}

/// Go's `strings.Title`: the first letter of every word in upper case.
fn title(args: &[Value]) -> Result<Value> {
    on_string("title", args, |s| {
        let mut prev = ' ';
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if is_separator(prev) {
                out.extend(c.to_uppercase());
            } else {
                out.push(c);
            }
            prev = c;
        }
        out
    })
}

fn is_separator(c: char) -> bool {
    if c.is_ascii() {
        return !(c.is_ascii_alphanumeric() || c == '_');
    }
    !c.is_alphanumeric() && c.is_whitespace()
}

fn trim(args: &[Value]) -> Result<Value> {
    on_string("trim", args, |s| s.trim().to_string())
}

fn trim_all(args: &[Value]) -> Result<Value> {
    on_strings("trimAll", args, |cut, s| {
        text(s.trim_matches(|c| cut.contains(c)))
    })
}

fn trim_prefix(args: &[Value]) -> Result<Value> {
    on_strings("trimPrefix", args, |p, s| text(s.strip_prefix(p).unwrap_or(s)))
}

fn trim_suffix(args: &[Value]) -> Result<Value> {
    on_strings("trimSuffix", args, |p, s| text(s.strip_suffix(p).unwrap_or(s)))
}

fn nospace(args: &[Value]) -> Result<Value> {
    on_string("nospace", args, |s| {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    })
}

fn replace(args: &[Value]) -> Result<Value> {
    arity("replace", args, 3)?;
    let (old, new) = (string("replace", args, 0)?, string("replace", args, 1)?);
    Ok(text(string("replace", args, 2)?.replace(old, new)))
}

/// `trunc n s`: the first `n` bytes, or with a negative `n` the last `-n`; never inside a character.
fn trunc(args: &[Value]) -> Result<Value> {
    arity("trunc", args, 2)?;
    let (n, s) = (int("trunc", args, 0)?, string("trunc", args, 1)?);
    let len = i64::try_from(s.len()).unwrap_or(i64::MAX);
    let out = if n < 0 && len + n > 0 {
        let mut start = usize::try_from(len + n).unwrap_or(0);
        while !s.is_char_boundary(start) {
            start += 1;
        }
        &s[start..]
    } else if n >= 0 && len > n {
        let mut end = usize::try_from(n).unwrap_or(0);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        &s[..end]
    } else {
        s
    };
    Ok(text(out))
}

/// `repeat n s`; the result is capped at [`MAX_REPEAT_BYTES`], as the template is user input.
fn repeat(args: &[Value]) -> Result<Value> {
    arity("repeat", args, 2)?;
    let count =
        usize::try_from(int("repeat", args, 0)?).map_err(|_| fail("repeat", "negative Repeat count"))?;
    let s = string("repeat", args, 1)?;
    if s.len().saturating_mul(count) > MAX_REPEAT_BYTES {
        return Err(fail(
            "repeat",
            format!("the result would exceed {MAX_REPEAT_BYTES} bytes"),
        ));
    }
    Ok(text(s.repeat(count)))
}

fn contains(args: &[Value]) -> Result<Value> {
    on_strings("contains", args, |sub, s| Value::Bool(s.contains(sub)))
}

fn has_prefix(args: &[Value]) -> Result<Value> {
    on_strings("hasPrefix", args, |p, s| Value::Bool(s.starts_with(p)))
}

fn has_suffix(args: &[Value]) -> Result<Value> {
    on_strings("hasSuffix", args, |p, s| Value::Bool(s.ends_with(p)))
}

/// `quote`: every non-nil argument as a Go-quoted string, joined by spaces.
fn quote(args: &[Value]) -> Result<Value> {
    let quoted: Vec<String> = args
        .iter()
        .filter(|a| !matches!(a, Value::Nil))
        .map(|a| go_quote(&strval(a)))
        .collect();
    Ok(text(quoted.join(" ")))
}

fn squote(args: &[Value]) -> Result<Value> {
    let quoted: Vec<String> = args
        .iter()
        .filter(|a| !matches!(a, Value::Nil))
        .map(|a| format!("'{}'", strval(a)))
        .collect();
    Ok(text(quoted.join(" ")))
}

/// Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            ' ' => out.push(' '),
            c if c.is_control() || c.is_whitespace() => {
                let n = u32::from(c);
                if n < 0x80 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n < 0x10000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `default d v`: `v` unless it is empty (or absent), else `d`.
fn default(args: &[Value]) -> Result<Value> {
    match args {
        [] => Err(fail("default", "wrong number of args: want at least 1 got 0")),
        [fallback] => Ok(fallback.clone()),
        [fallback, given, ..] if is_empty(given) => Ok(fallback.clone()),
        [_, given, ..] => Ok(given.clone()),
    }
}

fn empty(args: &[Value]) -> Result<Value> {
    arity("empty", args, 1)?;
    Ok(Value::Bool(is_empty(&args[0])))
}

fn coalesce(args: &[Value]) -> Result<Value> {
    Ok(args.iter().find(|a| !is_empty(a)).cloned().unwrap_or(Value::Nil))
}

fn ternary(args: &[Value]) -> Result<Value> {
    arity("ternary", args, 3)?;
    match &args[2] {
        Value::Bool(true) => Ok(args[0].clone()),
        Value::Bool(false) => Ok(args[1].clone()),
        other => Err(fail(
            "ternary",
            format!("wrong type for value; expected bool; got {}", other.type_name()),
        )),
    }
}

/// `join sep list`: the non-nil items as strings; a single value joins as itself.
fn join(args: &[Value]) -> Result<Value> {
    arity("join", args, 2)?;
    let sep = string("join", args, 0)?;
    let items: Vec<String> = match &args[1] {
        Value::List(items) => items
            .iter()
            .filter(|i| !matches!(i, Value::Nil))
            .map(strval)
            .collect(),
        Value::Nil => Vec::new(),
        other => vec![strval(other)],
    };
    Ok(text(items.join(sep)))
}

/// Go's `strings.Split`: an empty separator splits into characters.
fn split_parts(sep: &str, s: &str) -> Vec<String> {
    if sep.is_empty() {
        s.chars().map(String::from).collect()
    } else {
        s.split(sep).map(String::from).collect()
    }
}

/// `split sep s`: a map `{_0: ..., _1: ...}`.
fn split(args: &[Value]) -> Result<Value> {
    let parts = on_strings("split", args, split_parts)?;
    let entries = parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| (Arc::from(format!("_{i}")), text(part)))
        .collect();
    Ok(Value::Map(Arc::new(entries)))
}

fn split_list(args: &[Value]) -> Result<Value> {
    let parts = on_strings("splitList", args, split_parts)?;
    Ok(Value::List(parts.into_iter().map(text).collect()))
}

fn to_string(args: &[Value]) -> Result<Value> {
    arity("toString", args, 1)?;
    Ok(text(strval(&args[0])))
}

/// `atoi`: the integer, or 0 when the string is not one.
fn atoi(args: &[Value]) -> Result<Value> {
    arity("atoi", args, 1)?;
    Ok(Value::Int(string("atoi", args, 0)?.parse().unwrap_or(0)))
}

fn list(args: &[Value]) -> Result<Value> {
    Ok(Value::List(args.iter().cloned().collect()))
}

/// `dict k1 v1 k2 v2...`: a key without a value maps to "".
fn dict(args: &[Value]) -> Result<Value> {
    let entries = args
        .chunks(2)
        .map(|pair| {
            let value = pair.get(1).cloned().unwrap_or_else(|| text(""));
            (Arc::from(strval(&pair[0])), value)
        })
        .collect();
    Ok(Value::Map(Arc::new(entries)))
}

/// JSON as Go's `encoding/json` writes it: `<`, `>`, `&`, U+2028 and U+2029 escaped.
fn go_json(value: &Value, pretty: bool) -> String {
    let Ok(json) = from_go(value) else {
        return String::new();
    };
    let out = if pretty {
        serde_json::to_string_pretty(&json)
    } else {
        serde_json::to_string(&json)
    };
    out.unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn to_json(args: &[Value]) -> Result<Value> {
    arity("toJson", args, 1)?;
    Ok(text(go_json(&args[0], false)))
}

fn to_pretty_json(args: &[Value]) -> Result<Value> {
    arity("toPrettyJson", args, 1)?;
    Ok(text(go_json(&args[0], true)))
}

/// `fromJson`: the decoded value, or nil when the string is not JSON.
fn from_json(args: &[Value]) -> Result<Value> {
    arity("fromJson", args, 1)?;
    let parsed = serde_json::from_str::<serde_json::Value>(string("fromJson", args, 0)?);
    Ok(parsed.map(|v| to_go(&v)).unwrap_or(Value::Nil))
}

/// `toYaml`: YAML without the final newline.
fn to_yaml(args: &[Value]) -> Result<Value> {
    arity("toYaml", args, 1)?;
    let json = from_go(&args[0]).map_err(|e| fail("toYaml", e))?;
    let yaml = serde_yaml::to_string(&json).map_err(|e| fail("toYaml", e))?;
    Ok(text(yaml.strip_suffix('\n').unwrap_or(&yaml)))
}

/// `fromYaml`: a YAML mapping as a map; anything else is an error, as upstream's `map[string]interface{}`.
fn from_yaml(args: &[Value]) -> Result<Value> {
    arity("fromYaml", args, 1)?;
    let source = string("fromYaml", args, 0)?;
    let parsed: serde_json::Value = serde_yaml::from_str(source).map_err(|e| fail("fromYaml", e))?;
    match parsed {
        serde_json::Value::Null => Ok(to_go(&serde_json::json!({}))),
        v @ serde_json::Value::Object(_) => Ok(to_go(&v)),
        other => Err(fail(
            "fromYaml",
            format!("cannot unmarshal {} into a map", crate::json_type(&other)),
        )),
    }
}

/// `fromYamlArray`: a YAML sequence as a list; anything else is an error, as upstream's `[]interface{}`.
fn from_yaml_array(args: &[Value]) -> Result<Value> {
    arity("fromYamlArray", args, 1)?;
    let source = string("fromYamlArray", args, 0)?;
    let parsed: serde_json::Value = serde_yaml::from_str(source).map_err(|e| fail("fromYamlArray", e))?;
    match parsed {
        serde_json::Value::Null => Ok(Value::List(Vec::new().into())),
        v @ serde_json::Value::Array(_) => Ok(to_go(&v)),
        other => Err(fail(
            "fromYamlArray",
            format!("cannot unmarshal {} into a list", crate::json_type(&other)),
        )),
    }
}

fn b64enc(args: &[Value]) -> Result<Value> {
    on_string("b64enc", args, |s| {
        base64::engine::general_purpose::STANDARD.encode(s)
    })
}

/// `b64dec`: the decoded text, or the decoding error's message (as Sprig returns it).
fn b64dec(args: &[Value]) -> Result<Value> {
    on_string(
        "b64dec",
        args,
        |s| match base64::engine::general_purpose::STANDARD.decode(s) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => e.to_string(),
        },
    )
}

fn sha256sum(args: &[Value]) -> Result<Value> {
    on_string("sha256sum", args, |s| {
        sha2::Sha256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    })
}

fn normalize_fn(args: &[Value]) -> Result<Value> {
    on_string("normalize", args, normalize)
}

/// `slugify [maxSize [smartTruncate]] name`: the name is the last argument; maxSize defaults to 50 and smart
/// truncation to true.
fn slugify_fn(args: &[Value]) -> Result<Value> {
    let Some(last) = args.len().checked_sub(1) else {
        return Ok(text(""));
    };
    let name = string("slugify", args, last)?;
    let max = if last >= 1 { int("slugify", args, 0)? } else { 50 };
    let smart = match args.get(1) {
        Some(Value::Bool(b)) if last >= 2 => *b,
        Some(other) if last >= 2 => {
            return Err(fail(
                "slugify",
                format!("wrong type for value; expected bool; got {}", other.type_name()),
            ));
        }
        _ => true,
    };
    let max = match usize::try_from(max) {
        Ok(max) => max,
        Err(_) if smart => 0,
        Err(_) => return Err(fail("slugify", "maxSize is negative")),
    };
    Ok(text(slugify(name, max, smart)))
}
