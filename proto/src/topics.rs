//! Topic names. A topic's name carries its major version.

/// ingest -> processor: what every source location holds now (compacted).
pub const OBSERVATIONS: &str = "catalog.observations.v1";
/// processor -> projector: the entities each location yields (the event store).
pub const ENTITIES: &str = "catalog.entities.v1";
/// Facts about subjects (repositories, cloud resources) for scorecards.
pub const FACTS: &str = "catalog.facts.v1";
/// Scorecard definitions and exemptions (the event store of both).
pub const SCORECARDS: &str = "catalog.scorecards.v1";
/// What could not be processed, with the reason.
pub const DLQ: &str = "catalog.dlq.v1";

/// Every topic the pipeline uses, in flow order.
pub const ALL: [&str; 5] = [OBSERVATIONS, ENTITIES, FACTS, SCORECARDS, DLQ];
