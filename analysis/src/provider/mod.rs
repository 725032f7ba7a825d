//! Metric providers: each takes one measurement and returns what was read, or the error text for the
//! measurement's message.

use std::collections::BTreeMap;

pub mod prometheus;
pub mod web;

/// What one measurement read.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The value bound to `result` in the conditions.
    pub result: serde_json::Value,
    /// The measurement's `value` as upstream stores it (e.g. `0.97`, `[0.97,0.99]`).
    pub value: String,
    /// Measurement metadata (e.g. Prometheus `warnings`).
    pub metadata: BTreeMap<String, String>,
}
