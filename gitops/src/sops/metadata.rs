//! The `sops` block of a document, as sops' `stores/stores.go` reads it: the key groups, `lastmodified`, `mac`,
//! and the one rule that chose the encrypted values.

use regex::Regex;
use serde::Deserialize;
use serde_yaml::Value;

use super::SopsError;

/// The fields of a `sops` block that hold master keys (the flat form of a single key group, or `key_groups`).
pub(super) const KEY_FIELDS: [&str; 8] = [
    "age",
    "pgp",
    "kms",
    "gcp_kms",
    "azure_kv",
    "hc_vault",
    "hckms",
    "key_groups",
];

/// The suffix sops leaves unencrypted when a file names no rule.
const DEFAULT_UNENCRYPTED_SUFFIX: &str = "_unencrypted";

/// One age recipient of a document and the data key wrapped for it.
#[derive(Clone, Debug, Deserialize)]
pub(super) struct AgeStanza {
    /// The recipient's public key (`age1...`).
    #[serde(default)]
    pub recipient: String,
    /// The data key, as an armored age file.
    #[serde(default)]
    pub enc: String,
}

/// The rule that decides which values sops encrypted, given the keys on a value's path.
#[derive(Clone, Debug)]
pub(super) enum Rule {
    /// Values under a key ending in the suffix are plain; the others are encrypted.
    UnencryptedSuffix(String),
    /// Only values under a key ending in the suffix are encrypted.
    EncryptedSuffix(String),
    /// Values under a key matching the regex are plain.
    UnencryptedRegex(Regex),
    /// Only values under a key matching the regex are encrypted.
    EncryptedRegex(Regex),
    /// A comment rule: comments are not read, so a value is encrypted when it is in sops' `ENC[...]` form.
    ByForm,
}

/// What decryption needs from a `sops` block.
#[derive(Clone, Debug)]
pub(super) struct Metadata {
    /// The age recipients of the (single) key group.
    pub age: Vec<AgeStanza>,
    /// `lastmodified` as written (RFC 3339).
    pub lastmodified: String,
    /// The encrypted MAC.
    pub mac: String,
    /// The rule that chose the encrypted values.
    pub rule: Rule,
    /// Whether the MAC covers only the encrypted values.
    pub mac_only_encrypted: bool,
}

/// A key group in `key_groups`.
#[derive(Debug, Default, Deserialize)]
struct RawGroup {
    #[serde(default)]
    age: Option<Vec<AgeStanza>>,
    #[serde(flatten)]
    others: serde_yaml::Mapping,
}

/// The `sops` block as written; key types other than age are kept only to be named.
#[derive(Debug, Deserialize)]
struct RawMetadata {
    #[serde(default)]
    age: Option<Vec<AgeStanza>>,
    #[serde(default)]
    key_groups: Option<Vec<RawGroup>>,
    #[serde(default)]
    shamir_threshold: Option<u64>,
    #[serde(default)]
    lastmodified: Option<String>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    unencrypted_suffix: Option<String>,
    #[serde(default)]
    encrypted_suffix: Option<String>,
    #[serde(default)]
    unencrypted_regex: Option<String>,
    #[serde(default)]
    encrypted_regex: Option<String>,
    #[serde(default)]
    unencrypted_comment_regex: Option<String>,
    #[serde(default)]
    encrypted_comment_regex: Option<String>,
    #[serde(default)]
    mac_only_encrypted: Option<bool>,
    #[serde(flatten)]
    others: serde_yaml::Mapping,
}

impl Metadata {
    /// The metadata of `doc`'s top-level `sops` block.
    pub fn of(doc: &Value) -> Result<Metadata, SopsError> {
        let block = doc
            .get("sops")
            .filter(|b| b.is_mapping())
            .ok_or_else(|| SopsError::Metadata("no top-level sops mapping".to_string()))?;
        let raw: RawMetadata = serde_yaml::from_value(block.clone())
            .map_err(|e| SopsError::Metadata(format!("the sops block: {e}")))?;
        let rule = rule(&raw)?;
        let lastmodified = raw
            .lastmodified
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| SopsError::Metadata("sops.lastmodified is missing".to_string()))?;
        let mac = raw.mac.clone().unwrap_or_default();
        let mac_only_encrypted = raw.mac_only_encrypted.unwrap_or(false);
        Ok(Metadata {
            age: age_stanzas(raw)?,
            lastmodified,
            mac,
            rule,
            mac_only_encrypted,
        })
    }

    /// The additional data under which the MAC is encrypted: `lastmodified` as Go's `time.RFC3339` writes it
    /// back after parsing (no fractional seconds, `Z` for a zero offset).
    pub fn mac_additional_data(&self) -> String {
        go_rfc3339(&self.lastmodified)
    }
}

/// `text` (an RFC 3339 time) as Go's `Format(time.RFC3339)` writes the time it parses to.
pub(super) fn go_rfc3339(text: &str) -> String {
    let text = text.trim();
    let (head, zone) = match text
        .char_indices()
        .skip(19)
        .find(|(_, c)| matches!(c, 'Z' | 'z' | '+' | '-'))
    {
        Some((at, _)) => text.split_at(at),
        None => return text.to_string(),
    };
    let head = match head.find('.') {
        Some(dot) if dot >= 19 => &head[..dot],
        _ => head,
    };
    let zone = match zone {
        "z" | "Z" | "+00:00" | "-00:00" => "Z",
        other => other,
    };
    format!("{head}{zone}")
}

/// The one rule of `raw` (sops refuses files with more than one); the `_unencrypted` suffix when none.
fn rule(raw: &RawMetadata) -> Result<Rule, SopsError> {
    let fields = [
        ("unencrypted_suffix", &raw.unencrypted_suffix),
        ("encrypted_suffix", &raw.encrypted_suffix),
        ("unencrypted_regex", &raw.unencrypted_regex),
        ("encrypted_regex", &raw.encrypted_regex),
        ("unencrypted_comment_regex", &raw.unencrypted_comment_regex),
        ("encrypted_comment_regex", &raw.encrypted_comment_regex),
    ];
    let named: Vec<(&str, &String)> = fields
        .into_iter()
        .filter_map(|(field, value)| value.as_ref().filter(|v| !v.is_empty()).map(|v| (field, v)))
        .collect();
    let compile = |field: &str, pattern: &str| {
        Regex::new(pattern).map_err(|e| SopsError::Metadata(format!("sops.{field}: {e}")))
    };
    match named.as_slice() {
        [] => Ok(Rule::UnencryptedSuffix(DEFAULT_UNENCRYPTED_SUFFIX.to_string())),
        [("unencrypted_suffix", s)] => Ok(Rule::UnencryptedSuffix(s.to_string())),
        [("encrypted_suffix", s)] => Ok(Rule::EncryptedSuffix(s.to_string())),
        [(field @ "unencrypted_regex", s)] => Ok(Rule::UnencryptedRegex(compile(field, s)?)),
        [(field @ "encrypted_regex", s)] => Ok(Rule::EncryptedRegex(compile(field, s)?)),
        [_] => Ok(Rule::ByForm),
        _ => Err(SopsError::Metadata(format!(
            "more than one rule for the encrypted values ({})",
            named
                .iter()
                .map(|(field, _)| *field)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The age stanzas of the single key group of `raw`; the other key types present are named when there are none.
fn age_stanzas(raw: RawMetadata) -> Result<Vec<AgeStanza>, SopsError> {
    let flat_others = other_key_types(&raw.others);
    let flat_age = raw.age.unwrap_or_default();
    let groups = raw.key_groups.unwrap_or_default();
    let (age, others) = if !flat_age.is_empty() || !flat_others.is_empty() {
        (flat_age, flat_others)
    } else if groups.len() > 1 {
        return Err(SopsError::Unsupported(format!(
            "the document's data key is split over {} key groups (Shamir secret sharing, threshold {}), \
             which Sluice does not combine; encrypt it with a single key group holding an age recipient",
            groups.len(),
            raw.shamir_threshold.unwrap_or(groups.len() as u64)
        )));
    } else if let Some(group) = groups.into_iter().next() {
        let others = other_key_types(&group.others);
        (group.age.unwrap_or_default(), others)
    } else {
        return Err(SopsError::Metadata("the sops block holds no keys".to_string()));
    };
    if age.is_empty() {
        let types = if others.is_empty() {
            "no key type".to_string()
        } else {
            others.join(", ")
        };
        return Err(SopsError::Unsupported(format!(
            "the document is encrypted for {types} only; Sluice decrypts SOPS with age: add an age recipient \
             (sops updatekeys) and put its identity in the decryption Secret under a key ending in .agekey"
        )));
    }
    Ok(age)
}

/// The non-age key types with at least one key in `fields`.
fn other_key_types(fields: &serde_yaml::Mapping) -> Vec<String> {
    KEY_FIELDS
        .iter()
        .filter(|field| !matches!(**field, "age" | "key_groups"))
        .filter(|field| {
            fields
                .get(**field)
                .and_then(Value::as_sequence)
                .is_some_and(|keys| !keys.is_empty())
        })
        .map(|field| field.to_string())
        .collect()
}
