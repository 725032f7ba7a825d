//! successCondition / failureCondition in the expr language, evaluated against a measured `result`.

use crate::Phase;

/// Evaluates a measurement's conditions against `result` as upstream's `EvaluateResult` does: only a success
/// condition → Failed when it is false; only a failure condition → Successful when it is false; neither → Successful;
/// a true failure condition → Failed; both false → Inconclusive. An evaluation error (syntax, type, non-bool
/// result) is Err with the message for the measurement.
pub fn evaluate(
    success: Option<&str>,
    failure: Option<&str>,
    result: &serde_json::Value,
) -> Result<Phase, String> {
    let _ = (success, failure, result);
    Err("condition evaluation is not available".to_string())
}
