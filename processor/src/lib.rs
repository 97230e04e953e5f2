//! The processor stage: observations in, entity events out.
//!
//! It owns everything between the raw text of a location and the entities
//! it yields: descriptor parsing (multi-document YAML under budgets),
//! validation exactly as Backstage's catalog-model does it, normalisation
//! (default namespace, location annotations), relation derivation as
//! Backstage's `BuiltinKindsEntityProcessor`, and dead letters for what
//! cannot be processed.
//!
//! It knows nothing of RocksDB, Kafka or HTTP: [`process`] is a pure
//! function, and [`run`] talks only to the [`eventlog::EventLog`] traits.

pub mod metrics;
mod process;
mod relations;
mod stage;
mod validate;
mod yaml;

pub use process::{
    ANNOTATION_LOCATION, ANNOTATION_ORIGIN_LOCATION, Encoded, MAX_ERRORS_PER_LOCATION, process,
    process_encoded,
};
pub use stage::{ProcessorError, STAGE, run};

use serde::{Deserialize, Serialize};

/// Configuration of the processor stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessorConfig {
    /// A location holding more than this many bytes is not parsed (error
    /// kind `too_large`).
    pub max_file_bytes: u64,
    /// One YAML document over this many bytes is not parsed (error kind
    /// `budget`, on that document); the others of its file are.
    pub max_document_bytes: u64,
    /// The consumer group the stage reads observations as.
    pub group: String,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        ProcessorConfig {
            max_file_bytes: 256 * 1024 * 1024,
            // A Location listing 350k targets is ~20 MB.
            max_document_bytes: 64 * 1024 * 1024,
            group: "catalog-processor".to_string(),
        }
    }
}

#[cfg(test)]
mod tests;
