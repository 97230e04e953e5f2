//! The event contract of the catalog: versioned envelopes for every topic,
//! the Backstage entity model, entity references and location keys.
//!
//! This crate knows nothing of Kafka, RocksDB or HTTP. A change to the wire
//! format is a new version (see the golden files under `tests/golden/`).

pub mod entity;
pub mod envelope;
pub mod facts;
pub mod ids;
pub mod locations;
pub mod messages;
pub mod refs;
pub mod scorecards;
pub mod topics;

pub use entity::{Entity, EntityLink, EntityMeta, EntityRelation, RelationType};
pub use envelope::{DecodeError, Versioned};
pub use facts::{
    Access, AlertCounts, BranchProtection, CloudResourceFacts, FactEvent, FactState, Facts,
    RepositoryFacts, SubjectKey,
};
pub use ids::derived_id;
pub use locations::{LocationChange, LocationCommand};
pub use messages::{
    Content, DeadLetter, EntityEvent, ErrorKind, LocationOutcome, Observation, ObservedContent,
    ProcessedEntity, ProcessingError, RawEntityEvent, Relation,
};
pub use refs::{EntityRef, LocationKey, RefError, SourceId};
pub use scorecards::{Exemption, ScorecardChange, ScorecardEvent};
