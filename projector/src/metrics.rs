//! The projector's metrics, named in one place.

pub const EVENTS: &str = "catalog_projector_events_total";
pub const EFFECTIVE: &str = "catalog_projector_effective_events_total";
pub const UNDECODABLE: &str = "catalog_projector_undecodable_total";
pub const BATCH_SECONDS: &str = "catalog_projector_batch_seconds";
pub const LAG: &str = "catalog_projector_lag_messages";
pub const SCORECARD_EVALUATIONS: &str = "catalog_projector_scorecard_evaluations_total";
pub const SCORECARD_CHANGES: &str = "catalog_projector_scorecard_result_changes_total";
pub const SCORECARD_FULL_SECONDS: &str = "catalog_projector_scorecard_full_evaluation_seconds";
pub const SCORECARD_REJECTED: &str = "catalog_projector_scorecard_definitions_rejected_total";

pub fn describe() {
    metrics::describe_counter!(EVENTS, "entity events read");
    metrics::describe_counter!(EFFECTIVE, "entity events that changed state");
    metrics::describe_counter!(
        UNDECODABLE,
        "entity events skipped: unknown version or malformed"
    );
    metrics::describe_histogram!(BATCH_SECONDS, "time to fold and write one batch");
    metrics::describe_gauge!(LAG, "entity events not yet applied");
    metrics::describe_counter!(
        SCORECARD_EVALUATIONS,
        "scorecard results evaluated (entity x scorecard)"
    );
    metrics::describe_counter!(
        SCORECARD_CHANGES,
        "scorecard results whose outcome changed (each one a history record)"
    );
    metrics::describe_histogram!(
        SCORECARD_FULL_SECONDS,
        "time to evaluate every entity under a new or changed definition"
    );
    metrics::describe_counter!(
        SCORECARD_REJECTED,
        "definition files rejected (the previous good text stays in force)"
    );
}
