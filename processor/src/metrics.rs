//! The processor's metrics, through the `metrics` facade (the binary
//! installs the Prometheus exporter).

use proto::ErrorKind;

/// Observations read and processed (decoded successfully).
pub const OBSERVATIONS_TOTAL: &str = "catalog_processor_observations_total";
/// Processing errors reported in entity events, by `kind`.
pub const ERRORS_TOTAL: &str = "catalog_processor_errors_total";
/// Messages written to the dead-letter topic.
pub const DEAD_LETTERS_TOTAL: &str = "catalog_processor_dead_letters_total";
/// Observations of a schema version this build does not know (skipped).
pub const UNKNOWN_VERSIONS_TOTAL: &str = "catalog_processor_unknown_versions_total";
/// Valid entities emitted.
pub const ENTITIES_TOTAL: &str = "catalog_processor_entities_total";

/// Registers the descriptions of the processor's metrics.
pub fn describe() {
    use metrics::{Unit, describe_counter};
    describe_counter!(
        OBSERVATIONS_TOTAL,
        Unit::Count,
        "Observations processed by the processor stage."
    );
    describe_counter!(
        ERRORS_TOTAL,
        Unit::Count,
        "Processing errors reported in entity events, by kind."
    );
    describe_counter!(
        DEAD_LETTERS_TOTAL,
        Unit::Count,
        "Messages the processor sent to the dead-letter topic."
    );
    describe_counter!(
        UNKNOWN_VERSIONS_TOTAL,
        Unit::Count,
        "Observations skipped because their schema version is unknown to this build."
    );
    describe_counter!(
        ENTITIES_TOTAL,
        Unit::Count,
        "Valid entities emitted by the processor."
    );
}

/// The stable wire name of an error kind, used as the `kind` label.
pub fn error_kind_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Yaml => "yaml",
        ErrorKind::Encoding => "encoding",
        ErrorKind::TooLarge => "too_large",
        ErrorKind::Budget => "budget",
        ErrorKind::Validation => "validation",
        ErrorKind::UnknownKind => "unknown_kind",
        ErrorKind::Unreadable => "unreadable",
        ErrorKind::Conflict => "conflict",
    }
}

pub(crate) fn observation() {
    metrics::counter!(OBSERVATIONS_TOTAL).increment(1);
}

pub(crate) fn entities(n: usize) {
    metrics::counter!(ENTITIES_TOTAL).increment(n as u64);
}

pub(crate) fn error(kind: ErrorKind) {
    metrics::counter!(ERRORS_TOTAL, "kind" => error_kind_label(kind)).increment(1);
}

pub(crate) fn dead_letter() {
    metrics::counter!(DEAD_LETTERS_TOTAL).increment(1);
}

pub(crate) fn unknown_version() {
    metrics::counter!(UNKNOWN_VERSIONS_TOTAL).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_the_wire_names() {
        for kind in [
            ErrorKind::Yaml,
            ErrorKind::Encoding,
            ErrorKind::TooLarge,
            ErrorKind::Budget,
            ErrorKind::Validation,
            ErrorKind::UnknownKind,
            ErrorKind::Unreadable,
            ErrorKind::Conflict,
        ] {
            let wire = serde_json::to_value(kind).unwrap();
            assert_eq!(wire, error_kind_label(kind));
        }
    }
}
