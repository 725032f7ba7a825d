//! Placeholder until the canonical quantity form lands.
/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantityError(pub String);
/// Placeholder.
pub fn canonical(s: &str) -> Result<String, QuantityError> {
    Ok(s.to_string())
}
