//! The walk of sops' `Tree.Decrypt` (`sops.go`): every leaf in document order, decrypted when the rule says it was
//! encrypted, and hashed into the MAC (all leaves, or only the encrypted ones with `mac_only_encrypted`).

use serde_yaml::Value;
use sha2::{Digest, Sha512};

use super::SopsError;
use super::metadata::{Metadata, Rule};
use super::value::{self, ENC_PREFIX};

/// The first bytes of a `mac_only_encrypted` MAC (sops' `MACOnlyEncryptedInitialization`, SHA-256 of "sops"), so
/// that it never equals the MAC of the same values without that setting.
pub(super) const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b, 0x0b,
    0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// One step of a value's path.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

/// The state of one walk.
struct Walk<'a> {
    meta: &'a Metadata,
    key: &'a [u8],
    mac: Sha512,
    path: Vec<Step>,
}

/// Decrypts every branch (document, its `sops` key removed) in place, in order, and returns the MAC of their
/// plaintext as sops writes it (uppercase hex of SHA-512).
pub(super) fn decrypt_branches(
    branches: &mut [Value],
    meta: &Metadata,
    key: &[u8],
) -> Result<String, SopsError> {
    let mut walk = Walk {
        meta,
        key,
        mac: Sha512::new(),
        path: Vec::new(),
    };
    if meta.mac_only_encrypted {
        walk.mac.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    for branch in branches.iter_mut() {
        walk.value(branch)?;
    }
    Ok(upper_hex(&walk.mac.finalize()))
}

impl Walk<'_> {
    fn value(&mut self, node: &mut Value) -> Result<(), SopsError> {
        match node {
            Value::Null => Ok(()),
            Value::Mapping(map) => {
                for (key, child) in map.iter_mut() {
                    let Some(key) = key.as_str() else {
                        return Err(SopsError::Metadata(format!(
                            "a mapping at {} has a key that is not a string (sops supports only string keys)",
                            self.display_path()
                        )));
                    };
                    self.path.push(Step::Key(key.to_string()));
                    self.value(child)?;
                    self.path.pop();
                }
                Ok(())
            }
            Value::Sequence(items) => {
                for (index, child) in items.iter_mut().enumerate() {
                    self.path.push(Step::Index(index));
                    self.value(child)?;
                    self.path.pop();
                }
                Ok(())
            }
            Value::Tagged(tagged) => self.value(&mut tagged.value),
            Value::String(_) | Value::Bool(_) | Value::Number(_) => self.leaf(node),
        }
    }

    /// Decrypts `leaf` if it was encrypted, and hashes its plaintext into the MAC when the MAC covers it.
    fn leaf(&mut self, leaf: &mut Value) -> Result<(), SopsError> {
        let encrypted = self.was_encrypted(leaf);
        if encrypted {
            let Value::String(text) = &*leaf else {
                return Err(self.value_error("sops would have encrypted it, but it is not a string"));
            };
            *leaf = value::decrypt_value(text, self.key, &self.additional_data())
                .map_err(|reason| self.value_error(&reason))?;
        }
        let covered = !self.meta.mac_only_encrypted || encrypted;
        if let Some(bytes) = value::mac_bytes(leaf).filter(|_| covered) {
            self.mac.update(bytes);
        }
        Ok(())
    }

    /// sops' `shouldBeEncrypted` for the mapping keys on the current path.
    fn was_encrypted(&self, leaf: &Value) -> bool {
        let mut keys = self.path.iter().filter_map(|step| match step {
            Step::Key(key) => Some(key.as_str()),
            Step::Index(_) => None,
        });
        match &self.meta.rule {
            Rule::UnencryptedSuffix(suffix) => !keys.any(|k| k.ends_with(suffix.as_str())),
            Rule::EncryptedSuffix(suffix) => keys.any(|k| k.ends_with(suffix.as_str())),
            Rule::UnencryptedRegex(regex) => !keys.any(|k| regex.is_match(k)),
            Rule::EncryptedRegex(regex) => keys.any(|k| regex.is_match(k)),
            Rule::ByForm => leaf.as_str().is_some_and(|s| s.starts_with(ENC_PREFIX)),
        }
    }

    /// The additional data of the current value: its mapping keys joined by `:`, and a trailing `:`.
    fn additional_data(&self) -> String {
        let mut out = String::new();
        for step in &self.path {
            if let Step::Key(key) = step {
                out.push_str(key);
                out.push(':');
            }
        }
        out
    }

    /// The current path for a message: `data.password`, `items[2].name`.
    fn display_path(&self) -> String {
        let mut out = String::new();
        for step in &self.path {
            match step {
                Step::Key(key) if out.is_empty() => out.push_str(key),
                Step::Key(key) => {
                    out.push('.');
                    out.push_str(key);
                }
                Step::Index(index) => out.push_str(&format!("[{index}]")),
            }
        }
        if out.is_empty() {
            "the top level".to_string()
        } else {
            out
        }
    }

    fn value_error(&self, reason: &str) -> SopsError {
        SopsError::Value {
            path: self.display_path(),
            reason: reason.to_string(),
        }
    }
}

/// `bytes` as uppercase hexadecimal (Go's `%X`).
fn upper_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}
