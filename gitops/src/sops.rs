//! SOPS-encrypted manifests, decrypted as Flux's kustomize-controller does with age keys.
//!
//! A SOPS document keeps its keys in clear and replaces each value it encrypts by
//! `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`; its top-level `sops` block holds the data key, wrapped for each
//! recipient (`sops.age[].enc`, an armored age file), the rule that chose the encrypted values
//! (`encrypted_regex`, `unencrypted_suffix`, …), and a MAC: the SHA-512 of the plaintext values in document order,
//! encrypted with the data key under `lastmodified`. Decryption here follows sops' own (`sops.go`, `aes/cipher.go`,
//! `stores/stores.go`): a value's additional data is its path of mapping keys joined by `:` with a trailing `:`
//! (sequence indices are not part of it), and the MAC must match or nothing is returned. The MAC covers values,
//! not keys: an encrypted value is bound to its path by its additional data, a clear key is not bound at all.
//!
//! Keys come from a Kubernetes Secret, Flux's convention: every data key ending in `.agekey` holds age identities.
//! Only age is supported; a document encrypted for PGP, a cloud KMS or Vault only is refused with a message that
//! says what to add. Error messages name paths and recipients, never a value or a key.
//!
//! YAML is read with `serde_yaml`, whose mappings keep their order (the MAC depends on it); JSON documents are read
//! the same way (JSON is YAML). YAML comments are not read, so values chosen by `encrypted_comment_regex` or
//! `unencrypted_comment_regex` are recognised by their `ENC[…]` form. Encrypted values carry their type; a value
//! left in clear is hashed as serde_yaml reads it. sops writes clear values back in the form its reader (yaml.v3)
//! typed them (a bare date as RFC 3339, `0755` as `493`), which reads to the same bytes; a clear value edited by
//! hand into a form yaml.v3 types differently (`2024-01-01`, `0755`, `1_000`) fails the MAC check: an error, never
//! a wrong plaintext.

mod keys;
mod metadata;
mod tree;
mod value;

#[cfg(test)]
mod tests;

use serde::Deserialize;
use serde_yaml::Value;

pub use keys::AgeKeys;

/// Why a SOPS document could not be decrypted. No variant carries a plaintext value or key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SopsError {
    /// The `sops` block is missing, malformed, or uses a rule that cannot be applied.
    #[error("invalid SOPS metadata: {0}")]
    Metadata(String),
    /// The document can only be opened by a key type Sluice does not read.
    #[error("{0}")]
    Unsupported(String),
    /// No identity of the decryption Secret is a recipient of the document.
    #[error(
        "none of the {identities} age identities of the decryption Secret can unwrap the data key \
         (the document is encrypted for {recipients})"
    )]
    NoMatchingKey {
        /// How many identities were tried.
        identities: usize,
        /// The document's age recipients (public keys), comma-separated.
        recipients: String,
    },
    /// An age stanza matched but did not yield a usable data key.
    #[error("the SOPS data key could not be unwrapped: {0}")]
    DataKey(String),
    /// A value could not be decrypted (wrong data key, tampered ciphertext, or not in sops' form).
    #[error("the value at {path} could not be decrypted: {reason}")]
    Value {
        /// Where the value is, as `key.key[index]`.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The stored MAC could not be opened with the data key.
    #[error("the SOPS MAC could not be decrypted: {0}")]
    Mac(String),
    /// The MAC of the decrypted values differs from the stored one.
    #[error(
        "SOPS MAC mismatch: the document's values were changed, added, removed or reordered after it was encrypted"
    )]
    MacMismatch,
    /// An encrypted document met a caller that has no keys.
    #[error(
        "{document} is SOPS-encrypted, but the application names no decryption Secret \
         (a Secret with an age identity under a key ending in .agekey)"
    )]
    NoDecryptionSecret {
        /// The document, as `document N (Kind name)`.
        document: String,
    },
    /// Decrypting one document of a stream failed.
    #[error("{document}: {source}")]
    InDocument {
        /// The document, as `document N (Kind name)`.
        document: String,
        /// Why.
        source: Box<SopsError>,
    },
    /// The YAML stream does not parse.
    #[error("YAML: {0}")]
    Yaml(String),
}

/// Whether `doc` is a SOPS document: a top-level `sops` mapping with a `mac`, a `lastmodified` and some key group.
pub fn is_encrypted(doc: &Value) -> bool {
    let Some(sops) = doc.get("sops").and_then(Value::as_mapping) else {
        return false;
    };
    let has = |field: &str| sops.contains_key(field);
    has("mac") && has("lastmodified") && metadata::KEY_FIELDS.iter().any(|field| has(field))
}

/// [`is_encrypted`] for a JSON value.
pub fn is_encrypted_json(doc: &serde_json::Value) -> bool {
    let Some(sops) = doc.get("sops").and_then(serde_json::Value::as_object) else {
        return false;
    };
    let has = |field: &str| sops.contains_key(field);
    has("mac") && has("lastmodified") && metadata::KEY_FIELDS.iter().any(|field| has(field))
}

/// The plaintext of one SOPS document: values decrypted to their types, the `sops` block removed, the MAC verified.
pub fn decrypt(doc: &Value, keys: &AgeKeys) -> Result<Value, SopsError> {
    let mut out = decrypt_documents(std::slice::from_ref(doc), keys)?;
    Ok(out.pop().unwrap_or(Value::Null))
}

/// The plaintext of the documents of one multi-document SOPS file. sops writes the same `sops` block into each
/// document and computes one MAC over all of them in order; the metadata is read from the first.
pub fn decrypt_documents(docs: &[Value], keys: &AgeKeys) -> Result<Vec<Value>, SopsError> {
    let first = docs
        .first()
        .ok_or_else(|| SopsError::Metadata("no document".to_string()))?;
    let meta = metadata::Metadata::of(first)?;
    let data_key = keys.unwrap_data_key(&meta.age)?;
    let mut branches = docs.iter().map(strip_metadata).collect::<Result<Vec<_>, _>>()?;
    let computed = tree::decrypt_branches(&mut branches, &meta, &data_key)?;
    let stored = value::decrypt_mac(&meta.mac, &data_key, &meta.mac_additional_data())?;
    // Plain equality, as sops compares: the stored MAC is itself authenticated by AES-GCM under the data key.
    if stored != computed {
        return Err(SopsError::MacMismatch);
    }
    Ok(branches)
}

/// `doc` without its top-level `sops` key (the order of the other keys kept: the MAC depends on it).
fn strip_metadata(doc: &Value) -> Result<Value, SopsError> {
    let mut doc = doc.clone();
    let Value::Mapping(map) = &mut doc else {
        return Err(SopsError::Metadata(
            "a SOPS document must be a mapping".to_string(),
        ));
    };
    map.shift_remove("sops");
    Ok(doc)
}

/// A multi-document YAML stream with its SOPS documents decrypted, and how many were. Consecutive documents
/// carrying the same `sops` block are one multi-document SOPS file and are decrypted together. Documents that are
/// not encrypted keep their text (comments, quoting, plain scalars that YAML 1.1 readers resolve differently);
/// decrypted ones are written by serde_yaml. A stream without SOPS documents is returned as it is. With `keys`
/// `None`, an encrypted document is an error.
pub fn decrypt_stream(yaml_text: &str, keys: Option<&AgeKeys>) -> Result<(String, usize), SopsError> {
    let docs = match parse_stream(yaml_text) {
        Ok(docs) => docs,
        // The renderer's own parser reports where the YAML breaks; nothing here was encrypted to say otherwise.
        Err(_) if !mentions_sops(yaml_text) => return Ok((yaml_text.to_string(), 0)),
        Err(e) => return Err(e),
    };
    if !docs.iter().any(is_encrypted) {
        return Ok((yaml_text.to_string(), 0));
    }
    let (texts, docs) = match documents_with_text(yaml_text) {
        Some(pieces) => pieces.into_iter().map(|(text, doc)| (Some(text), doc)).unzip(),
        None => (vec![None; docs.len()], docs),
    };
    let mut out = String::new();
    let mut decrypted = 0;
    let mut index = 0;
    while index < docs.len() {
        let group = same_file_run(&docs[index..]);
        if group == 0 {
            match texts[index] {
                Some(text) => push_text(&mut out, text),
                None if docs[index].is_null() => {}
                None => emit(&mut out, &docs[index])?,
            }
            index += 1;
            continue;
        }
        for doc in decrypt_run(&docs[index..index + group], index, keys)? {
            emit(&mut out, &doc)?;
        }
        decrypted += group;
        index += group;
    }
    Ok((out, decrypted))
}

/// Each document of `yaml_text` with its text, split at the lines that start with the `---` marker (YAML forbids
/// such a line inside a scalar); `None` when a piece does not hold exactly one document (a directive before a
/// marker, say), and the caller writes every document anew.
fn documents_with_text(yaml_text: &str) -> Option<Vec<(&str, Value)>> {
    let mut pieces = Vec::new();
    for text in split_at_markers(yaml_text) {
        let mut docs = parse_stream(text).ok()?;
        match docs.len() {
            0 => {}
            1 => pieces.push((text, docs.pop()?)),
            _ => return None,
        }
    }
    Some(pieces)
}

/// `yaml_text` cut before every line that starts a document (`---` alone or followed by a space or tab).
fn split_at_markers(yaml_text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let (mut start, mut offset) = (0, 0);
    for line in yaml_text.split_inclusive('\n') {
        let is_marker = line
            .strip_prefix("---")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']));
        if is_marker && offset > start {
            pieces.push(&yaml_text[start..offset]);
            start = offset;
        }
        offset += line.len();
    }
    if offset > start {
        pieces.push(&yaml_text[start..]);
    }
    pieces
}

/// Appends the text of one document (which may begin with its own `---`) to the stream `out`.
fn push_text(out: &mut String, text: &str) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    if !out.is_empty() && !text.starts_with("---") {
        out.push_str("---\n");
    }
    out.push_str(text);
}

/// The documents of a YAML stream; the first that does not parse is the error (serde_yaml's iterator would
/// repeat it forever).
fn parse_stream(yaml_text: &str) -> Result<Vec<Value>, SopsError> {
    let mut docs = Vec::new();
    for de in serde_yaml::Deserializer::from_str(yaml_text) {
        match Value::deserialize(de) {
            Ok(doc) => docs.push(doc),
            Err(e) => return Err(SopsError::Yaml(e.to_string())),
        }
    }
    Ok(docs)
}

/// Whether a stream that does not parse could hold a SOPS document (its `sops` block and a sops value).
fn mentions_sops(yaml_text: &str) -> bool {
    yaml_text.contains("sops") && yaml_text.contains("ENC[AES256_GCM,")
}

/// How many documents at the head of `docs` are encrypted with the same `sops` block (0: the first is plain).
fn same_file_run(docs: &[Value]) -> usize {
    let Some(first) = docs.first().filter(|doc| is_encrypted(doc)) else {
        return 0;
    };
    let block = first.get("sops");
    docs.iter()
        .take_while(|doc| is_encrypted(doc) && doc.get("sops") == block)
        .count()
}

/// The plaintext of the encrypted documents `run`, the first of which is document `index` (from 0) of the stream.
fn decrypt_run(run: &[Value], index: usize, keys: Option<&AgeKeys>) -> Result<Vec<Value>, SopsError> {
    let document = describe(&run[0], index);
    let Some(keys) = keys else {
        return Err(SopsError::NoDecryptionSecret { document });
    };
    decrypt_documents(run, keys).map_err(|source| SopsError::InDocument {
        document,
        source: Box::new(source),
    })
}

/// `document N (Kind name)`, with what of the kind and name is in clear.
fn describe(doc: &Value, index: usize) -> String {
    let clear = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .filter(|s| !s.starts_with("ENC["))
            .map(str::to_string)
    };
    let kind = clear(doc.get("kind"));
    let name = clear(doc.get("metadata").and_then(|m| m.get("name")));
    match (kind, name) {
        (Some(kind), Some(name)) => format!("document {} ({kind} {name})", index + 1),
        (Some(kind), None) => format!("document {} ({kind})", index + 1),
        (None, Some(name)) => format!("document {} ({name})", index + 1),
        (None, None) => format!("document {}", index + 1),
    }
}

/// Appends `doc` to the stream `out` as one YAML document.
fn emit(out: &mut String, doc: &Value) -> Result<(), SopsError> {
    let text = serde_yaml::to_string(doc).map_err(|e| SopsError::Yaml(e.to_string()))?;
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    if !out.is_empty() {
        out.push_str("---\n");
    }
    out.push_str(&text);
    Ok(())
}
