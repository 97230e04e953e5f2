//! The metrics of the ingest stage (recorded through the `metrics` facade;
//! the binary installs the exporter).

use crate::sync::SyncReport;
use proto::SourceId;

/// Observations shipped, by `source` and `change` (`new`, `changed`, `removed`).
pub const OBSERVATIONS_TOTAL: &str = "catalog_ingest_observations_total";
/// Duration of a sync, by `source`.
pub const SYNC_DURATION_SECONDS: &str = "catalog_ingest_sync_duration_seconds";
/// Removals held back by the removal guard, by `source` (counted per sync
/// that held them back, so a standing hold keeps the counter rising).
pub const REMOVALS_HELD_BACK_TOTAL: &str = "catalog_ingest_removals_held_back_total";
/// Syncs that failed, by `source`.
pub const SYNC_ERRORS_TOTAL: &str = "catalog_ingest_sync_errors_total";

/// Registers descriptions and units of the metrics above.
pub fn describe() {
    metrics::describe_counter!(OBSERVATIONS_TOTAL, "Observations shipped by ingest.");
    metrics::describe_histogram!(
        SYNC_DURATION_SECONDS,
        metrics::Unit::Seconds,
        "Duration of one sync of one source."
    );
    metrics::describe_counter!(
        REMOVALS_HELD_BACK_TOTAL,
        "Removals held back because too many locations vanished at once."
    );
    metrics::describe_counter!(SYNC_ERRORS_TOTAL, "Syncs that failed.");
}

pub(crate) fn record_sync(r: &SyncReport) {
    let source = r.source.to_string();
    for (change, n) in [
        ("new", r.emitted_new),
        ("changed", r.emitted_changed),
        ("removed", r.emitted_removed),
    ] {
        if n > 0 {
            metrics::counter!(OBSERVATIONS_TOTAL, "source" => source.clone(), "change" => change)
                .increment(n as u64);
        }
    }
    metrics::histogram!(SYNC_DURATION_SECONDS, "source" => source.clone())
        .record(r.duration.as_secs_f64());
    if let Some(h) = r.held_back {
        metrics::counter!(REMOVALS_HELD_BACK_TOTAL, "source" => source)
            .increment(h.would_remove as u64);
    }
}

pub(crate) fn record_error(source: &SourceId) {
    metrics::counter!(SYNC_ERRORS_TOTAL, "source" => source.to_string()).increment(1);
}
