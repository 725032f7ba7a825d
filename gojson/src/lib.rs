//! Go's `encoding/json`, for the two hashes Argo Rollouts computes over it.
//!
//! Argo Rollouts names a ReplicaSet by FNV-32a of `json.Marshal(PodTemplateSpec)` and restarts the canary steps
//! when FNV-32a of `json.Marshal(canary.steps)` changes. Go writes struct fields in declaration order, leaves out
//! `omitempty` fields that are empty and `omitzero` fields that are zero, writes a nil slice or map as `null`,
//! a struct that is not a pointer even when absent, map keys sorted, `<`, `>` and `&` escaped, and quantities in
//! their canonical form. This module writes the same bytes from a JSON value, driven by a table generated from
//! the Go types themselves (`table.rs`, written by `e2e/scripts/build-gohash.sh --write-tables`).

pub mod arbitrary;
pub mod quantity;
#[rustfmt::skip]
#[allow(clippy::all)]
mod table;
#[rustfmt::skip]
#[allow(clippy::all)]
mod table_argo;
#[cfg(test)]
mod tests;

use serde_json::Value;

pub use table::{CANARY_STEPS, POD_TEMPLATE_SPEC};

/// The types of the control plane's Kubernetes modules (the table the hashes use).
pub static TYPES: &[Ty] = table::TYPES;
/// The types as the Argo Rollouts release the table names pins them: the same fields, fewer of the newest.
pub static ARGO_TYPES: &[Ty] = table_argo::TYPES;
/// `corev1.PodTemplateSpec` in `ARGO_TYPES`.
pub const ARGO_POD_TEMPLATE_SPEC: usize = table_argo::POD_TEMPLATE_SPEC;
/// `[]v1alpha1.CanaryStep` in `ARGO_TYPES`.
pub const ARGO_CANARY_STEPS: usize = table_argo::CANARY_STEPS;

/// Argo Rollouts' hash of Go JSON: FNV-32a of the bytes followed by the collision count, if any (as a 32-bit
/// little-endian number in 8 bytes), written in decimal and mapped into `rand.SafeEncodeString`'s alphabet.
pub fn argo_hash(json: &[u8], collision_count: Option<i32>) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    feed(json);
    if let Some(c) = collision_count {
        feed(&(c as u32).to_le_bytes());
        feed(&[0; 4]);
    }
    safe_encode(&hash.to_string())
}

/// The alphabet of `rand.SafeEncodeString`: no vowels (no words), no look-alike characters.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()] as char)
        .collect()
}

/// The JSON kind of a Go type, as encoding/json writes it.
#[derive(Debug)]
pub enum Ty {
    /// A struct: its fields in the order Go writes them, embedded structs flattened in place.
    Struct(&'static [Field]),
    /// A pointer to the type at this index: `null` when nil.
    Ptr(usize),
    /// A slice of the type at this index: `null` when nil.
    Slice(usize),
    /// A map from strings to the type at this index: `null` when nil, keys sorted.
    Map(usize),
    /// A string (any named string type).
    String,
    /// A boolean.
    Bool,
    /// A signed or unsigned integer.
    Int,
    /// `resource.Quantity`: a string in canonical form.
    Quantity,
    /// `metav1.Time`: RFC 3339 in UTC to the second, `null` when zero.
    Time,
    /// `intstr.IntOrString`: an integer or a string, as it was given.
    IntOrString,
    /// `json.RawMessage` and `metav1.FieldsV1`: the JSON itself, compacted.
    RawJson,
}

/// One field of a struct: its JSON name, the index of its type and its options.
#[derive(Debug)]
pub struct Field(pub &'static str, pub usize, pub Omit);

/// The options of a field's tag that leave it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Omit {
    /// Neither option.
    N,
    /// `omitempty`: left out when false, 0, nil, or of length zero.
    E,
    /// `omitzero`: left out when the zero value.
    Z,
    /// Both.
    EZ,
}

/// Why a value cannot be encoded: Go would have refused to decode it into its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub String);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The bytes of Go's `json.Marshal` for `value` decoded into the Go type at `ty` of `TYPES`.
pub fn marshal(ty: usize, value: &Value) -> Result<Vec<u8>, EncodeError> {
    marshal_with(TYPES, ty, value)
}

/// The same over another table of types, such as `ARGO_TYPES`.
pub fn marshal_with(types: &'static [Ty], ty: usize, value: &Value) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(1024);
    Encoder { types }.encode(ty, value, &mut out)?;
    Ok(out)
}

/// Encodes over one table of types.
struct Encoder {
    types: &'static [Ty],
}

const NULL: Value = Value::Null;

impl Encoder {
    /// Writes `v` (`null` standing for absent) as Go writes the value it decodes into the type `ty`.
    fn encode(&self, ty: usize, v: &Value, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match (&self.types[ty], v) {
            (Ty::Ptr(_) | Ty::Slice(_) | Ty::Map(_) | Ty::Time | Ty::RawJson, Value::Null) => {
                out.extend_from_slice(b"null")
            }
            (Ty::Ptr(inner), v) => self.encode(*inner, v, out)?,
            (Ty::Slice(inner), Value::Array(items)) => {
                let mut items = items.iter();
                list(
                    out,
                    b'[',
                    b']',
                    || items.next(),
                    |item, out| self.encode(*inner, item, out),
                )?
            }
            (Ty::Map(inner), Value::Object(map)) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort_unstable();
                let mut keys = keys.into_iter();
                list(
                    out,
                    b'{',
                    b'}',
                    || keys.next(),
                    |k, out| {
                        string(k, out);
                        out.push(b':');
                        self.encode(*inner, &map[k], out)
                    },
                )?
            }
            (Ty::Struct(fields), Value::Null) => self.fields(fields, None, out)?,
            (Ty::Struct(fields), Value::Object(map)) => self.fields(fields, Some(map), out)?,
            (Ty::String, Value::Null) => out.extend_from_slice(b"\"\""),
            (Ty::String, Value::String(s)) => string(s, out),
            (Ty::Bool, Value::Null) => out.extend_from_slice(b"false"),
            (Ty::Bool, Value::Bool(b)) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            (Ty::Int | Ty::IntOrString, Value::Null) => out.push(b'0'),
            (Ty::Int | Ty::IntOrString, Value::Number(n)) => integer(n, out)?,
            (Ty::IntOrString, Value::String(s)) => string(s, out),
            (Ty::Quantity, Value::Null) => out.extend_from_slice(b"\"0\""),
            (Ty::Quantity, Value::String(s)) => self.quantity(s, out)?,
            (Ty::Quantity, Value::Number(n)) => self.quantity(&n.to_string(), out)?,
            (Ty::Time, Value::String(s)) => time(s, out)?,
            (Ty::RawJson, v) => raw(v, out)?,
            (ty, v) => return Err(EncodeError(format!("cannot decode {v} into {ty:?}"))),
        }
        Ok(())
    }

    fn fields(
        &self,
        fields: &[Field],
        map: Option<&serde_json::Map<String, Value>>,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        out.push(b'{');
        let mut first = true;
        for Field(name, ty, omit) in fields {
            let given = map.and_then(|m| m.get(*name));
            let v = given.unwrap_or(&NULL);
            // Raw JSON keeps an explicit null as the four bytes `null`: only an absent one is empty.
            let empty = match self.types[*ty] {
                Ty::RawJson => given.is_none(),
                _ => self.is_empty(*ty, v),
            };
            let empty = matches!(omit, Omit::E | Omit::EZ) && empty;
            if empty || matches!(omit, Omit::Z | Omit::EZ) && self.is_zero(*ty, v) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            string(name, out);
            out.push(b':');
            self.encode(*ty, v, out)?;
        }
        out.push(b'}');
        Ok(())
    }

    /// `omitempty`: false, 0, a nil pointer, and a slice, map or string of length zero. A struct is never empty.
    fn is_empty(&self, ty: usize, v: &Value) -> bool {
        match (&self.types[ty], v) {
            (Ty::Struct(_) | Ty::Quantity | Ty::Time | Ty::IntOrString, _) => false,
            (_, Value::Null) => true,
            (Ty::Slice(_), Value::Array(a)) => a.is_empty(),
            (Ty::Map(_), Value::Object(m)) => m.is_empty(),
            (Ty::String, Value::String(s)) => s.is_empty(),
            (Ty::Bool, Value::Bool(b)) => !b,
            (Ty::Int, Value::Number(n)) => is_zero_number(n),
            _ => false,
        }
    }

    /// `omitzero`: the zero value of the type; a struct is zero when all its fields are.
    fn is_zero(&self, ty: usize, v: &Value) -> bool {
        match (&self.types[ty], v) {
            (_, Value::Null) => true,
            (Ty::Struct(fields), Value::Object(m)) => fields
                .iter()
                .all(|Field(name, ty, _)| self.is_zero(*ty, m.get(*name).unwrap_or(&NULL))),
            (Ty::String, Value::String(s)) => s.is_empty(),
            (Ty::Bool, Value::Bool(b)) => !b,
            (Ty::Int | Ty::IntOrString, Value::Number(n)) => is_zero_number(n),
            (Ty::Quantity, v) => quantity::canonical(&quantity_text(v)).is_ok_and(|q| q == "0"),
            _ => false,
        }
    }

    fn quantity(&self, s: &str, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let q = quantity::canonical(s).map_err(|e| EncodeError(format!("quantity {s:?}: {}", e.0)))?;
        string(&q, out);
        Ok(())
    }
}

fn quantity_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_zero_number(n: &serde_json::Number) -> bool {
    n.as_i64() == Some(0) || n.as_u64() == Some(0)
}

/// An integer as Go decodes it into an integer type: a JSON number with a fraction or an exponent is refused.
fn integer(n: &serde_json::Number, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    if let Some(i) = n.as_i64() {
        out.extend_from_slice(i.to_string().as_bytes());
    } else if let Some(u) = n.as_u64() {
        out.extend_from_slice(u.to_string().as_bytes());
    } else {
        return Err(EncodeError(format!("cannot decode {n} into an integer")));
    }
    Ok(())
}

/// A `metav1.Time`: RFC 3339 in, RFC 3339 in UTC out, the fraction of a second cut off as Go's format does.
fn time(s: &str, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let t: jiff::Timestamp = s.parse()?;
    string(&t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(), out);
    Ok(())
}

/// Raw JSON (`json.RawMessage`): Go writes it compacted, with `<`, `>`, `&` and U+2028/U+2029 escaped.
fn raw(v: &Value, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    match v {
        Value::Object(m) => {
            let mut entries = m.iter();
            let entry = |(k, v): (&String, &Value), out: &mut Vec<u8>| {
                string(k, out);
                out.push(b':');
                raw(v, out)
            };
            list(out, b'{', b'}', || entries.next(), entry)
        }
        Value::Array(a) => {
            let mut items = a.iter();
            list(out, b'[', b']', || items.next(), raw)
        }
        Value::String(s) => {
            string(s, out);
            Ok(())
        }
        other => {
            out.extend_from_slice(other.to_string().as_bytes());
            Ok(())
        }
    }
}

/// Writes `open`, the items `next` yields separated by commas, each written by `each`, and `close`.
fn list<T>(
    out: &mut Vec<u8>,
    open: u8,
    close: u8,
    mut next: impl FnMut() -> Option<T>,
    mut each: impl FnMut(T, &mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    out.push(open);
    let mut first = true;
    while let Some(item) = next() {
        if !first {
            out.push(b',');
        }
        first = false;
        each(item, out)?;
    }
    out.push(close);
    Ok(())
}

/// A JSON string as Go writes it with HTML escaping on: `"` and `\` escaped, `\b \f \n \r \t` short, other
/// control characters, `<`, `>`, `&`, U+2028 and U+2029 as `\u00XX`/`\u20XX` with lower-case hex.
fn string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut buf = [0u8; 4];
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{2028}' | '\u{2029}' => {
                out.extend_from_slice(b"\\u202");
                out.push(HEX[(c as usize) & 0xf]);
            }
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c as usize) >> 4]);
                out.push(HEX[(c as usize) & 0xf]);
            }
            c => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
        }
    }
    out.push(b'"');
}

impl From<jiff::Error> for EncodeError {
    fn from(e: jiff::Error) -> Self {
        EncodeError(format!("time: {e}"))
    }
}
