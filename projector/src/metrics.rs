//! The projector's metrics, named in one place.

pub const EVENTS: &str = "catalog_projector_events_total";
pub const EFFECTIVE: &str = "catalog_projector_effective_events_total";
pub const UNDECODABLE: &str = "catalog_projector_undecodable_total";
pub const BATCH_SECONDS: &str = "catalog_projector_batch_seconds";
pub const LAG: &str = "catalog_projector_lag_messages";

pub fn describe() {
    metrics::describe_counter!(EVENTS, "entity events read");
    metrics::describe_counter!(EFFECTIVE, "entity events that changed state");
    metrics::describe_counter!(
        UNDECODABLE,
        "entity events skipped: unknown version or malformed"
    );
    metrics::describe_histogram!(BATCH_SECONDS, "time to fold and write one batch");
    metrics::describe_gauge!(LAG, "entity events not yet applied");
}
