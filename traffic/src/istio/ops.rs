//! Small constructors for JSON-patch operations and object introspection shared by the planners.

use json_patch::jsonptr::PointerBuf;
use json_patch::{
    AddOperation, MoveOperation, PatchOperation, RemoveOperation, ReplaceOperation, TestOperation,
};
use serde_json::Value;

use super::error::IstioError;

/// A JSON pointer from unescaped segments (`~` and `/` inside a segment are encoded).
pub(crate) fn ptr(segments: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(segments.iter().copied())
}

/// `test` op: the patch fails unless `path` holds `value`.
pub(crate) fn test(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Test(TestOperation { path, value })
}

/// `add` op.
pub(crate) fn add(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation { path, value })
}

/// `replace` op.
pub(crate) fn replace(path: PointerBuf, value: Value) -> PatchOperation {
    PatchOperation::Replace(ReplaceOperation { path, value })
}

/// `remove` op.
pub(crate) fn remove(path: PointerBuf) -> PatchOperation {
    PatchOperation::Remove(RemoveOperation { path })
}

/// `move` op.
pub(crate) fn move_op(from: PointerBuf, path: PointerBuf) -> PatchOperation {
    PatchOperation::Move(MoveOperation { from, path })
}

/// The object's kind and `metadata.name`, for error messages.
pub(crate) fn identity(obj: &Value, default_kind: &str) -> (String, String) {
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or(default_kind)
        .to_string();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_string();
    (kind, name)
}

/// A `Malformed` error about `path` of `obj`.
pub(crate) fn malformed(obj: &Value, default_kind: &str, path: String, problem: &str) -> IstioError {
    let (kind, name) = identity(obj, default_kind);
    IstioError::Malformed {
        kind,
        name,
        path,
        problem: problem.to_string(),
    }
}

/// The list at `spec.<field>`; absent or null reads as empty, any other non-list is an error.
pub(crate) fn spec_list<'a>(
    obj: &'a Value,
    field: &str,
    default_kind: &str,
) -> Result<&'a [Value], IstioError> {
    match obj.get("spec").and_then(|spec| spec.get(field)) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(malformed(
            obj,
            default_kind,
            format!("spec.{field}"),
            "is not a list",
        )),
    }
}

/// The `name` of a route or subset, if it is a string.
pub(crate) fn name_of(item: &Value) -> Option<&str> {
    item.get("name").and_then(Value::as_str)
}
