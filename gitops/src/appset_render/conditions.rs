//! The ApplicationSet status conditions upstream's `setApplicationSetStatusCondition` writes after each
//! reconcile: `ErrorOccurred`, `ParametersGenerated` and `ResourcesUpToDate`, in the types, reasons and
//! messages upstream uses. Conditions of other types (`RolloutProgressing`) are kept as they were.
//!
//! Two departures, both what users mean: `lastTransitionTime` changes only when a condition's status does
//! (upstream also moves it when only the message changes), and a failed delete is reported as an error
//! (upstream reports it on `ResourcesUpToDate` with status True, and the error is lost from the conditions).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_crds::applicationset::{
    ApplicationSetCondition, CONDITION_ERROR_OCCURRED, CONDITION_PARAMETERS_GENERATED,
    CONDITION_RESOURCES_UP_TO_DATE, REASON_APPLICATION_PARAMS_GENERATION_ERROR,
    REASON_APPLICATION_SET_UP_TO_DATE, REASON_APPLICATION_VALIDATION_ERROR, REASON_CREATE_APPLICATION_ERROR,
    REASON_DELETE_APPLICATION_ERROR, REASON_ERROR_OCCURRED, REASON_PARAMETERS_GENERATED,
    REASON_RENDER_TEMPLATE_PARAMS_ERROR, REASON_UPDATE_APPLICATION_ERROR,
};

/// A condition as the ApplicationSet's status holds it.
pub type Condition = ApplicationSetCondition;

const EVALUATED: [&str; 3] = [
    CONDITION_ERROR_OCCURRED,
    CONDITION_PARAMETERS_GENERATED,
    CONDITION_RESOURCES_UP_TO_DATE,
];
const ALL_GENERATED: &str = "All applications have been generated successfully";
const PARAMETERS_GENERATED: &str = "Successfully generated parameters for all Applications";

/// Why a reconcile failed, as upstream's `ApplicationSetReasonType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A generator failed to produce parameters (written `ApplicationGenerationFromParamsError`, as upstream).
    ApplicationParamsGenerationError,
    /// A template (or templatePatch) failed to render with a parameter set.
    RenderTemplateParamsError,
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
    /// Starting the sync of a RollingSync step failed.
    SyncApplicationError,
}

impl Reason {
    /// The reason as the condition writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApplicationParamsGenerationError => REASON_APPLICATION_PARAMS_GENERATION_ERROR,
            Self::RenderTemplateParamsError => REASON_RENDER_TEMPLATE_PARAMS_ERROR,
            Self::ApplicationValidationError => REASON_APPLICATION_VALIDATION_ERROR,
            Self::CreateApplicationError => REASON_CREATE_APPLICATION_ERROR,
            Self::UpdateApplicationError => REASON_UPDATE_APPLICATION_ERROR,
            Self::DeleteApplicationError => REASON_DELETE_APPLICATION_ERROR,
            Self::RefreshApplicationError => "RefreshApplicationError",
            Self::SyncApplicationError => "SyncApplicationError",
        }
    }

    /// Whether the failure came after every parameter set was generated and rendered.
    fn after_parameters(self) -> bool {
        !matches!(
            self,
            Self::ApplicationParamsGenerationError | Self::RenderTemplateParamsError
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
pub fn conditions(
    outcome: &Outcome,
    previous: &[ApplicationSetCondition],
    now: &Time,
) -> Vec<ApplicationSetCondition> {
    let mut out: Vec<ApplicationSetCondition> = previous
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
            _ => Some(now.clone()),
        };
        out.push(condition);
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// The three evaluated conditions for an outcome, without times.
fn evaluate(outcome: &Outcome) -> [ApplicationSetCondition; 3] {
    let condition = |type_: &str, status: bool, reason: &str, message: &str| ApplicationSetCondition {
        type_: type_.to_string(),
        message: message.to_string(),
        last_transition_time: None,
        status: if status { "True" } else { "False" }.to_string(),
        reason: reason.to_string(),
    };
    let generated = || {
        let reason = REASON_PARAMETERS_GENERATED;
        condition(CONDITION_PARAMETERS_GENERATED, true, reason, PARAMETERS_GENERATED)
    };
    let up_to_date = REASON_APPLICATION_SET_UP_TO_DATE;
    match outcome {
        Outcome::UpToDate => [
            condition(CONDITION_ERROR_OCCURRED, false, up_to_date, ALL_GENERATED),
            generated(),
            condition(CONDITION_RESOURCES_UP_TO_DATE, true, up_to_date, ALL_GENERATED),
        ],
        Outcome::Failed { reason, message } => [
            condition(CONDITION_ERROR_OCCURRED, true, reason.as_str(), message),
            if reason.after_parameters() {
                generated()
            } else {
                condition(
                    CONDITION_PARAMETERS_GENERATED,
                    false,
                    REASON_ERROR_OCCURRED,
                    message,
                )
            },
            condition(CONDITION_RESOURCES_UP_TO_DATE, false, reason.as_str(), message),
        ],
    }
}
