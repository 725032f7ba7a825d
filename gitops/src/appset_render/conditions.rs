//! The ApplicationSet status conditions upstream's `setApplicationSetStatusCondition` writes after each
//! reconcile: `ErrorOccurred`, `ParametersGenerated` and `ResourcesUpToDate`, in the types, reasons and
//! messages upstream uses. Conditions of other types (`RolloutProgressing`) are kept as they were.
//!
//! Two departures, both what users mean: `lastTransitionTime` changes only when a condition's status does
//! (upstream also moves it when only the message changes), and a failed delete is reported as an error
//! (upstream reports it on `ResourcesUpToDate` with status True, and the error is lost from the conditions).

use serde::{Deserialize, Serialize};

/// `ErrorOccurred`: True while the last reconcile failed.
pub const CONDITION_ERROR_OCCURRED: &str = "ErrorOccurred";
/// `ParametersGenerated`: True when every generator produced its parameters and templates rendered.
pub const CONDITION_PARAMETERS_GENERATED: &str = "ParametersGenerated";
/// `ResourcesUpToDate`: True when the Applications match what the ApplicationSet generates.
pub const CONDITION_RESOURCES_UP_TO_DATE: &str = "ResourcesUpToDate";

const EVALUATED: [&str; 3] = [
    CONDITION_ERROR_OCCURRED,
    CONDITION_PARAMETERS_GENERATED,
    CONDITION_RESOURCES_UP_TO_DATE,
];
const ALL_GENERATED: &str = "All applications have been generated successfully";
const PARAMETERS_GENERATED: &str = "Successfully generated parameters for all Applications";
const REASON_UP_TO_DATE: &str = "ApplicationSetUpToDate";

/// One status condition, serialized as upstream's `ApplicationSetCondition`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// The condition type (`ErrorOccurred`, ...).
    #[serde(rename = "type")]
    pub type_: String,
    /// What happened, for people.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// `"True"`, `"False"` or `"Unknown"`.
    pub status: String,
    /// Why, in one word.
    #[serde(default)]
    pub reason: String,
}

/// Why a reconcile failed, as upstream's `ApplicationSetReasonType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A generator failed to produce parameters.
    ApplicationParamsGenerationError,
    /// A template (or templatePatch) failed to render with a parameter set.
    RenderTemplateParamsError,
    /// An Application could not be generated from its parameters.
    ApplicationGenerationFromParamsError,
    /// A generated Application is invalid (duplicate name, unknown project, bad destination).
    ApplicationValidationError,
    /// Creating an Application failed.
    CreateApplicationError,
    /// Updating an Application failed.
    UpdateApplicationError,
    /// Deleting an Application failed.
    DeleteApplicationError,
    /// Clearing the ApplicationSet's refresh annotation failed.
    RefreshApplicationError,
}

impl Reason {
    /// The reason as the condition writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApplicationParamsGenerationError => "ApplicationParamsGenerationError",
            Self::RenderTemplateParamsError => "RenderTemplateParamsError",
            Self::ApplicationGenerationFromParamsError => "ApplicationGenerationFromParamsError",
            Self::ApplicationValidationError => "ApplicationValidationError",
            Self::CreateApplicationError => "CreateApplicationError",
            Self::UpdateApplicationError => "UpdateApplicationError",
            Self::DeleteApplicationError => "DeleteApplicationError",
            Self::RefreshApplicationError => "RefreshApplicationError",
        }
    }

    /// Whether the failure came after every parameter set was generated and rendered.
    fn after_parameters(self) -> bool {
        !matches!(
            self,
            Self::ApplicationParamsGenerationError
                | Self::RenderTemplateParamsError
                | Self::ApplicationGenerationFromParamsError
        )
    }
}

/// How a reconcile ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Parameters generated, Applications valid, and the plan carried out.
    UpToDate,
    /// The reconcile stopped (or skipped invalid Applications) for `reason`.
    Failed {
        /// The failing step.
        reason: Reason,
        /// The error, as it is shown in the conditions.
        message: String,
    },
}

/// The conditions after `outcome`, given the `previous` ones, sorted by type; a condition whose status is
/// unchanged keeps its `lastTransitionTime`, so an unchanged outcome yields `previous` again.
pub fn conditions(outcome: &Outcome, previous: &[Condition], now: &str) -> Vec<Condition> {
    let mut out: Vec<Condition> = previous
        .iter()
        .filter(|c| !EVALUATED.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    for mut condition in evaluate(outcome) {
        let prior = previous.iter().find(|p| p.type_ == condition.type_);
        condition.last_transition_time = match prior {
            Some(p) if p.status == condition.status && p.last_transition_time.is_some() => {
                p.last_transition_time.clone()
            }
            _ => Some(now.to_string()),
        };
        out.push(condition);
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// The three evaluated conditions for an outcome, without times.
fn evaluate(outcome: &Outcome) -> [Condition; 3] {
    let condition = |type_: &str, status: bool, reason: &str, message: &str| Condition {
        type_: type_.to_string(),
        message: message.to_string(),
        last_transition_time: None,
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
    };
    match outcome {
        Outcome::UpToDate => [
            condition(CONDITION_ERROR_OCCURRED, false, REASON_UP_TO_DATE, ALL_GENERATED),
            condition(
                CONDITION_PARAMETERS_GENERATED,
                true,
                "ParametersGenerated",
                PARAMETERS_GENERATED,
            ),
            condition(
                CONDITION_RESOURCES_UP_TO_DATE,
                true,
                REASON_UP_TO_DATE,
                ALL_GENERATED,
            ),
        ],
        Outcome::Failed { reason, message } => [
            condition(CONDITION_ERROR_OCCURRED, true, reason.as_str(), message),
            if reason.after_parameters() {
                condition(
                    CONDITION_PARAMETERS_GENERATED,
                    true,
                    "ParametersGenerated",
                    PARAMETERS_GENERATED,
                )
            } else {
                condition(CONDITION_PARAMETERS_GENERATED, false, "ErrorOccurred", message)
            },
            condition(CONDITION_RESOURCES_UP_TO_DATE, false, reason.as_str(), message),
        ],
    }
}
