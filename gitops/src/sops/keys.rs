//! Age identities from a Kubernetes Secret, and the unwrapping of a SOPS data key with them.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

use age::x25519::Identity;
use k8s_openapi::api::core::v1::Secret;
use zeroize::{Zeroize, Zeroizing};

use super::SopsError;
use super::metadata::AgeStanza;

/// The suffix of the Secret keys that hold age identities (Flux's convention).
pub const AGE_KEY_SUFFIX: &str = ".agekey";
/// How an X25519 age identity begins.
const IDENTITY_PREFIX: &str = "AGE-SECRET-KEY-1";
/// How a post-quantum (ML-KEM-768 + X25519) age identity begins.
const PQ_IDENTITY_PREFIX: &str = "AGE-SECRET-KEY-PQ-1";
/// The length of a SOPS data key (AES-256).
pub(super) const DATA_KEY_BYTES: usize = 32;
/// An armored age file holding a 32-byte data key is well under this; a larger `enc` is not sops'.
const MAX_STANZA_BYTES: usize = 64 * 1024;

/// The age identities of a decryption Secret. Its `Debug` shows how many there are and where they came from, never
/// a key.
pub struct AgeKeys {
    identities: Vec<Identity>,
    sources: Vec<String>,
}

impl fmt::Debug for AgeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgeKeys")
            .field("identities", &self.identities.len())
            .field("sources", &self.sources)
            .finish()
    }
}

impl AgeKeys {
    /// The identities under every key of `data` (a Secret's decoded data) that ends in `.agekey`: one per line,
    /// blank lines and `#` comments allowed. Errors name the Secret key and line, never their content.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<AgeKeys, String> {
        let mut identities = Vec::new();
        let mut sources = Vec::new();
        for (name, bytes) in data.iter().filter(|(name, _)| name.ends_with(AGE_KEY_SUFFIX)) {
            let text =
                std::str::from_utf8(bytes).map_err(|_| format!("the Secret key {name} is not UTF-8 text"))?;
            let before = identities.len();
            parse_identities(name, text, &mut identities)?;
            if identities.len() > before {
                sources.push(name.clone());
            }
        }
        if identities.is_empty() {
            let message = if data.keys().any(|k| k.ends_with(AGE_KEY_SUFFIX)) {
                "the decryption Secret's .agekey keys hold no age identity (AGE-SECRET-KEY-1...)"
            } else {
                "the decryption Secret has no key ending in .agekey (Flux's convention for age identities)"
            };
            return Err(message.to_string());
        }
        Ok(AgeKeys { identities, sources })
    }

    /// The identities of a Kubernetes Secret: its `data`, with `stringData` over it as the API server merges them.
    pub fn from_secret(secret: &Secret) -> Result<AgeKeys, String> {
        let mut data: BTreeMap<String, Vec<u8>> = secret
            .data
            .iter()
            .flatten()
            .map(|(key, value)| (key.clone(), value.0.clone()))
            .collect();
        for (key, value) in secret.string_data.iter().flatten() {
            data.insert(key.clone(), value.as_bytes().to_vec());
        }
        let keys = AgeKeys::from_secret_data(&data);
        data.values_mut().for_each(|value| value.zeroize());
        keys
    }

    /// How many identities there are.
    pub fn len(&self) -> usize {
        self.identities.len()
    }

    /// Whether there are none (never, for keys built by [`AgeKeys::from_secret_data`]).
    pub fn is_empty(&self) -> bool {
        self.identities.is_empty()
    }

    /// The public keys (`age1...`) of the identities, in order.
    pub fn recipients(&self) -> Vec<String> {
        self.identities
            .iter()
            .map(|identity| identity.to_public().to_string())
            .collect()
    }

    /// The data key wrapped in one of `stanzas`, opened with the first identity that is one of its recipients.
    pub(super) fn unwrap_data_key(&self, stanzas: &[AgeStanza]) -> Result<Zeroizing<Vec<u8>>, SopsError> {
        let mut failure = None;
        for stanza in stanzas {
            match self.unwrap_one(&stanza.enc) {
                Ok(Some(key)) => return Ok(key),
                Ok(None) => {}
                Err(e) => failure = Some(e),
            }
        }
        if let Some(failure) = failure {
            return Err(failure);
        }
        let recipients = stanzas
            .iter()
            .map(|s| s.recipient.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Err(SopsError::NoMatchingKey {
            identities: self.identities.len(),
            recipients,
        })
    }

    /// The data key in the armored age file `enc`, `None` when no identity is its recipient.
    fn unwrap_one(&self, enc: &str) -> Result<Option<Zeroizing<Vec<u8>>>, SopsError> {
        if enc.len() > MAX_STANZA_BYTES {
            return Err(SopsError::DataKey("an age stanza is too large".to_string()));
        }
        let armored = age::armor::ArmoredReader::new(enc.as_bytes());
        let decryptor = age::Decryptor::new(armored)
            .map_err(|e| SopsError::DataKey(format!("an age stanza is not an age file: {e}")))?;
        let identities = self.identities.iter().map(|i| i as &dyn age::Identity);
        let mut reader = match decryptor.decrypt(identities) {
            Ok(reader) => reader,
            Err(age::DecryptError::NoMatchingKeys) => return Ok(None),
            Err(e) => return Err(SopsError::DataKey(e.to_string())),
        };
        let mut key = Zeroizing::new(Vec::with_capacity(DATA_KEY_BYTES));
        reader
            .by_ref()
            .take(DATA_KEY_BYTES as u64 + 1)
            .read_to_end(&mut key)
            .map_err(|e| SopsError::DataKey(format!("the age payload does not decrypt: {e}")))?;
        if key.len() != DATA_KEY_BYTES {
            return Err(SopsError::DataKey(format!(
                "the data key is not {DATA_KEY_BYTES} bytes"
            )));
        }
        Ok(Some(key))
    }
}

/// Appends the identities of `text` (the Secret key `name`) to `out`.
fn parse_identities(name: &str, text: &str, out: &mut Vec<Identity>) -> Result<(), String> {
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("the Secret key {name}, line {}", number + 1);
        if line.starts_with(PQ_IDENTITY_PREFIX) {
            return Err(format!(
                "{} holds a post-quantum age identity ({PQ_IDENTITY_PREFIX}...), which Sluice cannot use; \
                 use an X25519 identity ({IDENTITY_PREFIX}..., age-keygen without -pq)",
                at()
            ));
        }
        if !line.starts_with(IDENTITY_PREFIX) {
            return Err(format!(
                "{} is not an age identity (expected {IDENTITY_PREFIX}...)",
                at()
            ));
        }
        let identity = line
            .parse::<Identity>()
            .map_err(|reason| format!("{} is not a valid age identity: {reason}", at()))?;
        out.push(identity);
    }
    Ok(())
}
