//! One sops value: `ENC[AES256_GCM,data:<b64>,iv:<b64>,tag:<b64>,type:<type>]`, opened with AES-256-GCM (a 32-byte
//! nonce, as sops' `aes/cipher.go` uses) and restored to its type; and the bytes a value adds to the MAC
//! (sops' `ToBytes`).

use aes_gcm::AesGcm;
use aes_gcm::aead::consts::U32;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes256;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_yaml::Value;
use zeroize::Zeroizing;

/// AES-256-GCM with sops' 32-byte nonce.
type SopsGcm = AesGcm<Aes256, U32>;
/// How every sops value begins.
pub(super) const ENC_PREFIX: &str = "ENC[AES256_GCM,";
const NONCE_BYTES: usize = 32;
const TAG_BYTES: usize = 16;

/// The parts of an `ENC[...]` value.
struct Sealed {
    data: Vec<u8>,
    iv: Vec<u8>,
    tag: Vec<u8>,
    datatype: String,
}

/// The parts of `text`, or why it is not a sops value (never echoing it).
fn parse(text: &str) -> Result<Sealed, String> {
    let not_sops = || "it is not in sops' ENC[AES256_GCM,...] form".to_string();
    let body = text
        .strip_prefix("ENC[AES256_GCM,data:")
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or_else(not_sops)?;
    let (data, rest) = body.split_once(",iv:").ok_or_else(not_sops)?;
    let (iv, rest) = rest.split_once(",tag:").ok_or_else(not_sops)?;
    let (tag, datatype) = rest.split_once(",type:").ok_or_else(not_sops)?;
    let decode = |part: &str, what: &str| {
        STANDARD
            .decode(part)
            .map_err(|_| format!("its {what} is not base64"))
    };
    Ok(Sealed {
        data: decode(data, "data")?,
        iv: decode(iv, "iv")?,
        tag: decode(tag, "tag")?,
        datatype: datatype.to_string(),
    })
}

/// The plaintext bytes of `sealed` under `key` and `additional_data`.
fn open(sealed: Sealed, key: &[u8], additional_data: &[u8]) -> Result<(Zeroizing<Vec<u8>>, String), String> {
    if sealed.iv.len() != NONCE_BYTES || sealed.tag.len() != TAG_BYTES {
        return Err(format!(
            "its iv is {} bytes and its tag {} (sops writes {NONCE_BYTES} and {TAG_BYTES})",
            sealed.iv.len(),
            sealed.tag.len()
        ));
    }
    let cipher = SopsGcm::new_from_slice(key).map_err(|_| "the data key is not 32 bytes".to_string())?;
    let mut buffer = Zeroizing::new(sealed.data);
    cipher
        .decrypt_in_place_detached(
            GenericArray::from_slice(&sealed.iv),
            additional_data,
            &mut buffer,
            GenericArray::from_slice(&sealed.tag),
        )
        .map_err(|_| {
            "authentication failed (another data key, or the value or its place in the document changed)"
                .to_string()
        })?;
    Ok((buffer, sealed.datatype))
}

/// The value `text` decrypts to under `key`, with `additional_data` its path (`a:b:`), restored to its type.
/// An empty string is sops' encryption of an empty string.
pub(super) fn decrypt_value(text: &str, key: &[u8], additional_data: &str) -> Result<Value, String> {
    if text.is_empty() {
        return Ok(Value::String(String::new()));
    }
    let (plain, datatype) = open(parse(text)?, key, additional_data.as_bytes())?;
    let plain = std::str::from_utf8(&plain).map_err(|_| format!("its {datatype} plaintext is not UTF-8"))?;
    typed(plain, &datatype)
}

/// `plain` as a value of sops type `datatype`; errors name the type, never the plaintext.
fn typed(plain: &str, datatype: &str) -> Result<Value, String> {
    let invalid = || format!("it decrypts to an invalid {datatype}");
    match datatype {
        "str" | "bytes" => Ok(Value::String(plain.to_string())),
        "int" | "int64" => plain.parse::<i64>().map(Value::from).map_err(|_| invalid()),
        "float" => plain.parse::<f64>().map(Value::from).map_err(|_| invalid()),
        "bool" => go_parse_bool(plain).map(Value::Bool).ok_or_else(invalid),
        // A YAML timestamp (sops 3.10 and later), written as Go's `time.MarshalText` (RFC 3339); Kubernetes reads
        // timestamps as strings, and the MAC hashes the same text.
        "time" if plain.parse::<jiff::Timestamp>().is_ok() => Ok(Value::String(plain.to_string())),
        "time" => Err(invalid()),
        "comment" => Err("it is an encrypted comment where a value belongs".to_string()),
        other if other.len() <= 16 && other.chars().all(|c| c.is_ascii_alphanumeric()) => {
            Err(format!("its type {other} is not one sops writes"))
        }
        _ => Err("its type is not one sops writes".to_string()),
    }
}

/// Go's `strconv.ParseBool`.
pub(super) fn go_parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The bytes a leaf adds to the MAC (sops' `ToBytes`): strings as they are, integers in decimal, floats as Go's
/// `FormatFloat(f, 'f', -1, 64)`, booleans as `True`/`False`. `None` for what is not a leaf.
pub(super) fn mac_bytes(leaf: &Value) -> Option<Vec<u8>> {
    match leaf {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Bool(true) => Some(b"True".to_vec()),
        Value::Bool(false) => Some(b"False".to_vec()),
        Value::Number(n) => Some(number_text(n).into_bytes()),
        Value::Null | Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => None,
    }
}

/// A YAML number as Go formats the `int` or `float64` sops decodes it to.
fn number_text(n: &serde_yaml::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    go_format_float(n.as_f64().unwrap_or(f64::NAN))
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest decimal that reads back as `f`, without an exponent
/// (Rust's `Display` for `f64`), and Go's names for the non-finite values.
pub(super) fn go_format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_string()
    } else if f == f64::INFINITY {
        "+Inf".to_string()
    } else if f == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        f.to_string()
    }
}

/// The MAC stored in `sops.mac`, decrypted under `additional_data` (the normalised `lastmodified`).
pub(super) fn decrypt_mac(mac: &str, key: &[u8], additional_data: &str) -> Result<String, super::SopsError> {
    if mac.is_empty() {
        return Err(super::SopsError::Mac("sops.mac is empty".to_string()));
    }
    match decrypt_value(mac, key, additional_data).map_err(super::SopsError::Mac)? {
        Value::String(s) => Ok(s),
        _ => Err(super::SopsError::Mac("it is not a string".to_string())),
    }
}
