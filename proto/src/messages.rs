//! The messages of each topic.

use crate::entity::{Entity, RelationType};
use crate::envelope::{DecodeError, Versioned};
use crate::refs::{EntityRef, LocationKey, SourceId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `catalog.observations.v1`: what a source location holds now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub event_id: Uuid,
    pub source: SourceId,
    pub observed_at: DateTime<Utc>,
    pub location: LocationKey,
    /// The registered root this location was reached from (Backstage's
    /// origin location); equal to `location` for a root.
    pub origin: LocationKey,
    /// When ingest first saw this location; decides claim conflicts.
    pub first_seen_at: DateTime<Utc>,
    pub content: ObservedContent,
}

impl Versioned for Observation {
    const SCHEMA: &'static str = "catalog.observation";
    const VERSION: u32 = 1;

    /// The content, with room for JSON's escapes (YAML's line breaks).
    fn encoded_len_hint(&self) -> usize {
        match &self.content {
            ObservedContent::Present {
                content: Content::Utf8 { text },
            } => text.len().saturating_add(text.len() / 8),
            ObservedContent::Present {
                content: Content::Hex { data },
            } => data.len(),
            _ => 0,
        }
    }
}

/// The state of a location as a source sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ObservedContent {
    /// The location holds this content now.
    Present { content: Content },
    /// The location holds more than the configured limit; not shipped.
    TooLarge { size: u64, limit: u64 },
    /// The location exists but could not be read.
    Unreadable { reason: String },
    /// The location is gone from a complete listing.
    Removed,
}

/// Raw content. Text that is not UTF-8 travels as hex so that the processor,
/// not ingest, reports where the encoding broke.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "encoding", rename_all = "snake_case")]
pub enum Content {
    Utf8 { text: String },
    Hex { data: String },
}

/// `catalog.entities.v1`: all that one location yields now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityEvent {
    pub event_id: Uuid,
    pub source: SourceId,
    pub observed_at: DateTime<Utc>,
    pub location: LocationKey,
    pub origin: LocationKey,
    pub first_seen_at: DateTime<Utc>,
    /// The observation this was derived from.
    pub observation_id: Uuid,
    pub outcome: LocationOutcome,
}

impl Versioned for EntityEvent {
    const SCHEMA: &'static str = "catalog.entity-event";
    const VERSION: u32 = 1;
}

/// What a location yields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LocationOutcome {
    /// The valid entities of the location, and the errors of the rest.
    Processed {
        entities: Vec<ProcessedEntity>,
        errors: Vec<ProcessingError>,
    },
    /// The location is gone: everything it yielded goes with it.
    Removed,
    /// One entity was deleted through the API (Backstage's `DELETE
    /// /entities/by-uid`): the location stops yielding it until its next
    /// processed event that yields it again (an edit, or a refresh). Keyed
    /// by the location like every event of it, so it is applied in order
    /// with them. `by` is the subject of the caller's token.
    EntityDeleted {
        entity: EntityRef,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
}

/// A validated, normalised entity with the relations it emits (both halves
/// of every pair, so the target's side is known without a lookup).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessedEntity {
    pub entity: Entity,
    pub relations: Vec<Relation>,
}

/// One directed relation row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Relation {
    pub source: EntityRef,
    #[serde(rename = "type")]
    pub relation_type: RelationType,
    pub target: EntityRef,
}

/// A reason a location (or one document of it) yields nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessingError {
    pub location: LocationKey,
    pub kind: ErrorKind,
    pub message: String,
    /// 0-based index of the YAML document within the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<u32>,
    /// 1-based line and column where the problem is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// The entity the error is about, where one could be named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
}

/// The class of a processing error; stable wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Not valid YAML.
    Yaml,
    /// Not UTF-8.
    Encoding,
    /// Over the configured size.
    TooLarge,
    /// Over the parser's budgets: an alias bomb, deep nesting.
    Budget,
    /// A field breaks Backstage's rules.
    Validation,
    /// A kind or apiVersion no processor knows.
    UnknownKind,
    /// The source could not read the location.
    Unreadable,
    /// Another location already provides this entity.
    Conflict,
}

/// `catalog.dlq.v1`: a message a stage could not process, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub event_id: Uuid,
    /// The stage that gave up (`processor`, `projector`).
    pub stage: String,
    pub at: DateTime<Utc>,
    pub topic: String,
    pub partition: u32,
    pub offset: i64,
    /// The message key, lossily decoded.
    pub key: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProcessingError>,
}

impl Versioned for DeadLetter {
    const SCHEMA: &'static str = "catalog.dead-letter";
    const VERSION: u32 = 1;
}

/// An entity event whose entities stay encoded, borrowed from the
/// message's bytes, to be decoded one at a time: a location of 300k users
/// then costs its message and a few words per entity, not the message and
/// every entity decoded beside it.
#[derive(Debug, Clone)]
pub struct RawEntityEvent<'a> {
    /// The event with no entities (its errors and everything else kept).
    pub header: EntityEvent,
    /// Each entity's JSON, in the event's order (empty unless `Processed`).
    pub entities: Vec<&'a serde_json::value::RawValue>,
}

#[derive(Deserialize)]
struct RawWire<'a> {
    event_id: Uuid,
    source: SourceId,
    observed_at: DateTime<Utc>,
    location: LocationKey,
    origin: LocationKey,
    first_seen_at: DateTime<Utc>,
    observation_id: Uuid,
    #[serde(borrow)]
    outcome: &'a serde_json::value::RawValue,
}

/// The shape of a `Processed` outcome, read without the tagged enum's
/// buffering (which cannot keep JSON raw).
#[derive(Deserialize)]
struct RawProcessed<'a> {
    state: String,
    #[serde(borrow, default)]
    entities: Option<Vec<&'a serde_json::value::RawValue>>,
    #[serde(default)]
    errors: Option<Vec<ProcessingError>>,
}

impl<'a> RawEntityEvent<'a> {
    /// Decodes an entity event, leaving its entities encoded. Accepts
    /// what [`EntityEvent::decode`] accepts, and more: an entity that does
    /// not decode is found only by [`RawEntityEvent::entity`] (or
    /// [`RawEntityEvent::into_event`]).
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        crate::envelope::check::<EntityEvent>(bytes)?;
        let malformed = |source| DecodeError::Malformed {
            schema: EntityEvent::SCHEMA,
            source,
        };
        let wire: RawWire<'a> = serde_json::from_slice(bytes).map_err(malformed)?;
        let probe: RawProcessed<'a> =
            serde_json::from_str(wire.outcome.get()).map_err(malformed)?;
        let (outcome, entities) = if let ("processed", Some(entities), Some(errors)) =
            (probe.state.as_str(), probe.entities, probe.errors)
        {
            let outcome = LocationOutcome::Processed {
                entities: Vec::new(),
                errors,
            };
            (outcome, entities)
        } else {
            // Any other state, or a processed outcome missing a field,
            // decoded (or refused) as the whole event would be.
            let outcome: LocationOutcome =
                serde_json::from_str(wire.outcome.get()).map_err(malformed)?;
            (outcome, Vec::new())
        };
        Ok(RawEntityEvent {
            header: EntityEvent {
                event_id: wire.event_id,
                source: wire.source,
                observed_at: wire.observed_at,
                location: wire.location,
                origin: wire.origin,
                first_seen_at: wire.first_seen_at,
                observation_id: wire.observation_id,
                outcome,
            },
            entities,
        })
    }

    /// One encoded entity, decoded.
    pub fn entity(raw: &serde_json::value::RawValue) -> Result<ProcessedEntity, DecodeError> {
        serde_json::from_str(raw.get()).map_err(|source| DecodeError::Malformed {
            schema: EntityEvent::SCHEMA,
            source,
        })
    }

    /// The whole event, every entity decoded: what [`EntityEvent::decode`]
    /// gives.
    pub fn into_event(self) -> Result<EntityEvent, DecodeError> {
        let RawEntityEvent {
            mut header,
            entities,
        } = self;
        if let LocationOutcome::Processed { entities: all, .. } = &mut header.outcome {
            *all = entities
                .into_iter()
                .map(Self::entity)
                .collect::<Result<_, _>>()?;
        }
        Ok(header)
    }
}
