//! The Sprig functions on lists, dicts, numbers and regular expressions, and the indentation helpers that
//! `templatePatch` YAML leans on (`{{ .values | toYaml | nindent 4 }}`). Regular expressions are Go's RE2
//! syntax, which the `regex` crate shares (linear time, so a user's pattern cannot hang the controller);
//! replacements expand `$1` and `${name}` as Go's do.

use std::sync::Arc;

use gotmpl::{Result, Value};

use super::sprig::{Func, arity, fail, int, is_empty, string, strval, text};

/// The functions of this module, by name.
pub(super) const FUNCS: &[(&str, Func)] = &[
    ("indent", indent),
    ("nindent", nindent),
    ("cat", cat),
    ("first", first),
    ("last", last),
    ("has", has),
    ("hasKey", has_key),
    ("get", get),
    ("keys", keys),
    ("add", add),
    ("sub", sub),
    ("int", to_int),
    ("regexMatch", regex_match),
    ("regexFind", regex_find),
    ("regexFindAll", regex_find_all),
    ("regexReplaceAll", regex_replace_all),
    ("regexReplaceAllLiteral", regex_replace_all_literal),
    ("regexSplit", regex_split),
];

/// `indent n s`: every line of `s` indented by `n` spaces.
fn indent(args: &[Value]) -> Result<Value> {
    arity("indent", args, 2)?;
    Ok(text(indented("indent", args)?))
}

/// `nindent n s`: a newline, then `indent n s`.
fn nindent(args: &[Value]) -> Result<Value> {
    arity("nindent", args, 2)?;
    Ok(text(format!("\n{}", indented("nindent", args)?)))
}

fn indented(name: &str, args: &[Value]) -> Result<String> {
    let spaces = usize::try_from(int(name, args, 0)?).unwrap_or(0);
    let pad = " ".repeat(spaces.min(1024));
    let body = string(name, args, 1)?;
    Ok(format!("{pad}{}", body.replace('\n', &format!("\n{pad}"))))
}

/// `cat a b ...`: the non-nil arguments as strings, joined by spaces.
fn cat(args: &[Value]) -> Result<Value> {
    let parts: Vec<String> = args
        .iter()
        .filter(|a| !matches!(a, Value::Nil))
        .map(strval)
        .collect();
    Ok(text(parts.join(" ")))
}

fn list_arg<'v>(name: &str, args: &'v [Value]) -> Result<&'v [Value]> {
    arity(name, args, 1)?;
    match &args[0] {
        Value::List(items) => Ok(items),
        Value::Nil => Ok(&[]),
        other => Err(fail(
            name,
            format!("cannot find {name} on type {}", other.type_name()),
        )),
    }
}

fn first(args: &[Value]) -> Result<Value> {
    Ok(list_arg("first", args)?.first().cloned().unwrap_or(Value::Nil))
}

fn last(args: &[Value]) -> Result<Value> {
    Ok(list_arg("last", args)?.last().cloned().unwrap_or(Value::Nil))
}

/// `has needle list`: whether the list holds the value.
fn has(args: &[Value]) -> Result<Value> {
    arity("has", args, 2)?;
    match &args[1] {
        Value::List(items) => Ok(Value::Bool(items.iter().any(|i| i == &args[0]))),
        Value::Nil => Ok(Value::Bool(false)),
        other => Err(fail(
            "has",
            format!("cannot find has on type {}", other.type_name()),
        )),
    }
}

fn map_arg<'v>(name: &str, args: &'v [Value]) -> Result<&'v std::collections::BTreeMap<Arc<str>, Value>> {
    match args.first() {
        Some(Value::Map(entries)) => Ok(entries),
        Some(other) => Err(fail(
            name,
            format!("wrong type for value; expected map; got {}", other.type_name()),
        )),
        None => Err(fail(name, "invalid value; expected map")),
    }
}

/// `hasKey dict key`.
fn has_key(args: &[Value]) -> Result<Value> {
    arity("hasKey", args, 2)?;
    let key = string("hasKey", args, 1)?;
    Ok(Value::Bool(map_arg("hasKey", args)?.contains_key(key)))
}

/// `get dict key`: the value, or "" when the key is absent.
fn get(args: &[Value]) -> Result<Value> {
    arity("get", args, 2)?;
    let key = string("get", args, 1)?;
    Ok(map_arg("get", args)?
        .get(key)
        .cloned()
        .unwrap_or_else(|| text("")))
}

/// `keys dict...`: the keys of every dict, sorted (Go's order is random).
fn keys(args: &[Value]) -> Result<Value> {
    let mut out = Vec::new();
    for arg in args {
        let entries = map_arg("keys", std::slice::from_ref(arg))?;
        out.extend(entries.keys().map(|k| Value::String(k.clone())));
    }
    out.sort_by_key(strval);
    Ok(Value::List(out.into()))
}

/// Sprig's `toInt64` (spf13/cast): integers, truncated floats, numeric strings, booleans; else 0.
fn as_i64(value: &Value) -> i64 {
    match value {
        Value::Int(n) => *n,
        Value::Uint(n) => i64::try_from(*n).unwrap_or(i64::MAX),
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

fn add(args: &[Value]) -> Result<Value> {
    Ok(Value::Int(args.iter().map(as_i64).fold(0, i64::wrapping_add)))
}

fn sub(args: &[Value]) -> Result<Value> {
    arity("sub", args, 2)?;
    Ok(Value::Int(as_i64(&args[0]).wrapping_sub(as_i64(&args[1]))))
}

fn to_int(args: &[Value]) -> Result<Value> {
    arity("int", args, 1)?;
    Ok(Value::Int(if is_empty(&args[0]) { 0 } else { as_i64(&args[0]) }))
}

fn pattern(name: &str, args: &[Value]) -> Result<regex::Regex> {
    let source = string(name, args, 0)?;
    regex::Regex::new(source).map_err(|e| fail(name, format!("error parsing regexp {source:?}: {e}")))
}

/// `regexMatch regex s`.
fn regex_match(args: &[Value]) -> Result<Value> {
    arity("regexMatch", args, 2)?;
    let s = string("regexMatch", args, 1)?;
    Ok(Value::Bool(pattern("regexMatch", args)?.is_match(s)))
}

/// `regexFind regex s`: the first match, or "".
fn regex_find(args: &[Value]) -> Result<Value> {
    arity("regexFind", args, 2)?;
    let s = string("regexFind", args, 1)?;
    Ok(text(
        pattern("regexFind", args)?.find(s).map_or("", |m| m.as_str()),
    ))
}

/// `regexFindAll regex s n`: at most `n` matches (all when `n` is negative).
fn regex_find_all(args: &[Value]) -> Result<Value> {
    arity("regexFindAll", args, 3)?;
    let (s, n) = (string("regexFindAll", args, 1)?, int("regexFindAll", args, 2)?);
    let limit = usize::try_from(n).unwrap_or(usize::MAX);
    let re = pattern("regexFindAll", args)?;
    Ok(Value::List(
        re.find_iter(s).take(limit).map(|m| text(m.as_str())).collect(),
    ))
}

/// `regexReplaceAll regex s replacement`, expanding `$1` and `${name}`.
fn regex_replace_all(args: &[Value]) -> Result<Value> {
    arity("regexReplaceAll", args, 3)?;
    let (s, with) = (
        string("regexReplaceAll", args, 1)?,
        string("regexReplaceAll", args, 2)?,
    );
    Ok(text(
        pattern("regexReplaceAll", args)?
            .replace_all(s, with)
            .into_owned(),
    ))
}

/// `regexReplaceAllLiteral regex s replacement`, the replacement taken as written.
fn regex_replace_all_literal(args: &[Value]) -> Result<Value> {
    let name = "regexReplaceAllLiteral";
    arity(name, args, 3)?;
    let (s, with) = (string(name, args, 1)?, string(name, args, 2)?);
    Ok(text(
        pattern(name, args)?
            .replace_all(s, regex::NoExpand(with))
            .into_owned(),
    ))
}

/// `regexSplit regex s n`: at most `n` parts (all when `n` is negative, none when 0).
fn regex_split(args: &[Value]) -> Result<Value> {
    arity("regexSplit", args, 3)?;
    let (s, n) = (string("regexSplit", args, 1)?, int("regexSplit", args, 2)?);
    let re = pattern("regexSplit", args)?;
    let parts: Vec<Value> = match usize::try_from(n) {
        Ok(0) => Vec::new(),
        Ok(n) => re.splitn(s, n).map(text).collect(),
        Err(_) => re.split(s).map(text).collect(),
    };
    Ok(Value::List(parts.into()))
}
