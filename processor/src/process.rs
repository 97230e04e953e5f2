//! `process`: one observation in, one entity event out. Pure: no I/O, and
//! the same input gives the same outcome (only `event_id` differs).

use crate::ProcessorConfig;
use crate::relations;
use crate::validate::{self, Verdict};
use crate::yaml::{self, Doc};
use proto::{
    Content, Entity, EntityEvent, ErrorKind, LocationKey, LocationOutcome, Observation,
    ObservedContent, ProcessedEntity, ProcessingError, Versioned,
};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use uuid::Uuid;

/// Annotation Backstage sets to the location an entity was read from.
pub const ANNOTATION_LOCATION: &str = "backstage.io/managed-by-location";
/// Annotation Backstage sets to the registered location that led there.
pub const ANNOTATION_ORIGIN_LOCATION: &str = "backstage.io/managed-by-origin-location";

/// At most this many errors are reported per location; the last one then
/// says how many were left out.
pub const MAX_ERRORS_PER_LOCATION: usize = 100;

/// Turns an observation into the entity event of its location.
///
/// - `Removed` passes through as [`LocationOutcome::Removed`];
/// - `TooLarge`, `Unreadable`, undecodable or oversize content yield no
///   entities and one error;
/// - otherwise every YAML document is parsed, validated as Backstage does,
///   normalised and given its relations. Each document stands alone: the
///   valid ones are kept whatever happens to the others.
pub fn process(obs: &Observation, cfg: &ProcessorConfig) -> EntityEvent {
    let mut entities = Vec::new();
    let errors = match outcome(obs, cfg, |pe| pe, |pe| entities.push(pe)) {
        Some(errors) => errors,
        None => return event_of(obs, Uuid::now_v7(), LocationOutcome::Removed),
    };
    event_of(
        obs,
        Uuid::now_v7(),
        LocationOutcome::Processed { entities, errors },
    )
}

/// An entity event already encoded for the log, as [`process`] would give
/// it once encoded, built without holding the location's entities decoded:
/// each valid entity is encoded (on all cores, with its validation) and
/// appended to the event's bytes in document order. A location of 300k
/// users then costs its encoded size, not its decoded size plus that.
pub struct Encoded {
    /// The event's id.
    pub event_id: Uuid,
    /// The event, encoded as [`proto::Versioned::encode`] encodes it.
    pub bytes: Vec<u8>,
    /// How many entities it yields.
    pub entities: usize,
    /// Its errors (none for a removed location).
    pub errors: Vec<ProcessingError>,
}

/// [`process`], encoded (see [`Encoded`]).
pub fn process_encoded(obs: &Observation, cfg: &ProcessorConfig) -> Encoded {
    let event_id = Uuid::now_v7();
    // The envelope with no entities ends `"entities":[],"errors":[]}}` (the
    // outcome is the event's last field, its entities come before its
    // errors): the entities' bytes are appended right after its `[`, in the
    // buffer that becomes the event, so they are never copied.
    let mut bytes = event_of(
        obs,
        event_id,
        LocationOutcome::Processed {
            entities: Vec::new(),
            errors: Vec::new(),
        },
    )
    .encode();
    let tail = br#"],"errors":[]}}"#;
    assert!(
        bytes.ends_with(tail),
        "an entity event's encoding ends with its outcome's entities and errors"
    );
    bytes.truncate(bytes.len() - tail.len());
    // Room for the entities up front: grown by doubling, the buffer of a
    // 300k-user file was copied from 128 MB into 256 MB while both were
    // held. Room never written to costs address space, not memory.
    bytes.reserve(expected_event_bytes(&obs.content));
    let mut entities = 0usize;
    let encode =
        |pe: ProcessedEntity| serde_json::to_vec(&pe).expect("entities serialise infallibly");
    let append = |json: Vec<u8>| {
        if entities > 0 {
            bytes.push(b',');
        }
        bytes.extend_from_slice(&json);
        entities += 1;
    };
    let Some(errors) = outcome(obs, cfg, encode, append) else {
        return Encoded {
            event_id,
            bytes: event_of(obs, event_id, LocationOutcome::Removed).encode(),
            entities: 0,
            errors: Vec::new(),
        };
    };
    bytes.extend_from_slice(br#"],"errors":"#);
    serde_json::to_writer(&mut bytes, &errors).expect("errors serialise infallibly");
    bytes.extend_from_slice(b"}}");
    Encoded {
        event_id,
        bytes,
        entities,
        errors,
    }
}

/// About how long the entity event of `content` gets: a document's
/// entity, encoded as JSON with its location annotations and relations, is
/// two to three times its YAML (the event of a 72 MB users file is 184 MB).
fn expected_event_bytes(content: &ObservedContent) -> usize {
    match content {
        ObservedContent::Present {
            content: Content::Utf8 { text },
        } => text.len().saturating_mul(3),
        ObservedContent::Present {
            content: Content::Hex { data },
        } => data.len().saturating_mul(3) / 2,
        _ => 0,
    }
}

/// The entity event of `obs` with this id and outcome.
pub(crate) fn event_of(obs: &Observation, event_id: Uuid, outcome: LocationOutcome) -> EntityEvent {
    EntityEvent {
        event_id,
        source: obs.source.clone(),
        observed_at: obs.observed_at,
        location: obs.location.clone(),
        origin: obs.origin.clone(),
        first_seen_at: obs.first_seen_at,
        observation_id: obs.event_id,
        outcome,
    }
}

/// The errors of the observation's location, its valid entities each
/// turned by `map` (on the parse's worker threads) and handed to `each` in
/// document order; `None` for a removed location.
fn outcome<E: Send>(
    obs: &Observation,
    cfg: &ProcessorConfig,
    map: impl Fn(ProcessedEntity) -> E + Sync,
    each: impl FnMut(E),
) -> Option<Vec<ProcessingError>> {
    let location = &obs.location;
    Some(match &obs.content {
        ObservedContent::Removed => return None,
        ObservedContent::TooLarge { size, limit } => vec![location_error(
            location,
            ErrorKind::TooLarge,
            format!("the location holds {size} bytes, over the source's limit of {limit} bytes"),
        )],
        ObservedContent::Unreadable { reason } => vec![location_error(
            location,
            ErrorKind::Unreadable,
            format!("the location could not be read: {reason}"),
        )],
        ObservedContent::Present { content } => {
            match decode(location, content, cfg.max_file_bytes) {
                Ok(text) => process_text(
                    obs,
                    &text,
                    usize::try_from(cfg.max_document_bytes).unwrap_or(usize::MAX),
                    map,
                    each,
                ),
                Err(error) => vec![*error],
            }
        }
    })
}

fn location_error(location: &LocationKey, kind: ErrorKind, message: String) -> ProcessingError {
    ProcessingError {
        location: location.clone(),
        kind,
        message,
        document: None,
        line: None,
        column: None,
        entity: None,
    }
}

fn too_large(location: &LocationKey, size: u64, limit: u64) -> Box<ProcessingError> {
    Box::new(location_error(
        location,
        ErrorKind::TooLarge,
        format!(
            "the location holds {size} bytes, over the processor's per-file limit of {limit} bytes"
        ),
    ))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The text of the content, within the size limit and valid UTF-8.
fn decode<'a>(
    location: &LocationKey,
    content: &'a Content,
    limit: u64,
) -> Result<Cow<'a, str>, Box<ProcessingError>> {
    match content {
        Content::Utf8 { text } => {
            let size = text.len() as u64;
            if size > limit {
                return Err(too_large(location, size, limit));
            }
            Ok(Cow::Borrowed(text))
        }
        Content::Hex { data } => {
            let size = (data.len() / 2) as u64;
            if size > limit {
                return Err(too_large(location, size, limit));
            }
            let raw = data.as_bytes();
            if raw.len() % 2 != 0 {
                return Err(Box::new(location_error(
                    location,
                    ErrorKind::Encoding,
                    "the content is not valid hex: odd number of digits".into(),
                )));
            }
            let mut bytes = Vec::with_capacity(raw.len() / 2);
            for (i, pair) in raw.chunks_exact(2).enumerate() {
                match (hex_value(pair[0]), hex_value(pair[1])) {
                    (Some(hi), Some(lo)) => bytes.push(hi << 4 | lo),
                    _ => {
                        return Err(Box::new(location_error(
                            location,
                            ErrorKind::Encoding,
                            format!("the content is not valid hex at digit {}", 2 * i),
                        )));
                    }
                }
            }
            match String::from_utf8(bytes) {
                Ok(text) => Ok(Cow::Owned(text)),
                Err(e) => Err(Box::new(utf8_error(
                    location,
                    e.as_bytes(),
                    &e.utf8_error(),
                ))),
            }
        }
    }
}

/// Where the first invalid byte is: byte offset, 1-based line and column
/// (in characters).
fn utf8_error(location: &LocationKey, bytes: &[u8], e: &std::str::Utf8Error) -> ProcessingError {
    let offset = e.valid_up_to();
    let valid = &bytes[..offset];
    let line_start = valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
    let column = std::str::from_utf8(&valid[line_start..]).map_or(0, |s| s.chars().count()) + 1;
    let what = match e.error_len() {
        Some(_) => format!("invalid byte 0x{:02X}", bytes[offset]),
        None => "truncated multi-byte sequence".to_string(),
    };
    ProcessingError {
        line: u32::try_from(line).ok(),
        column: u32::try_from(column).ok(),
        ..location_error(
            location,
            ErrorKind::Encoding,
            format!(
                "the content is not valid UTF-8: {what} at byte offset {offset} (line {line}, column {column})"
            ),
        )
    }
}

fn process_text<E: Send>(
    obs: &Observation,
    text: &str,
    max_document_bytes: usize,
    map: impl Fn(ProcessedEntity) -> E + Sync,
    mut each: impl FnMut(E),
) -> Vec<ProcessingError> {
    let mut errors: Vec<ProcessingError> = Vec::new();
    // Identity key -> document that defined it first.
    let mut seen: HashMap<String, u32> = HashMap::new();
    // Documents are parsed, validated and mapped on all cores; duplicates
    // are resolved here, in document order.
    let validated = |doc: Doc| {
        let result = entity_of(obs, &doc).map(|pe| {
            let me = pe.entity.entity_ref();
            (me, map(pe))
        });
        (doc.index, doc.spans.root(), result)
    };
    yaml::parse_each(text, max_document_bytes, validated, |parsed| match parsed {
        Err(f) => errors.push(ProcessingError {
            location: obs.location.clone(),
            kind: if f.budget {
                ErrorKind::Budget
            } else {
                ErrorKind::Yaml
            },
            message: f.message,
            document: Some(f.index),
            line: Some(f.line),
            column: Some(f.column),
            entity: None,
        }),
        Ok((index, (line, column), result)) => match result {
            Ok((me, mapped)) => match seen.get(&me.key()) {
                Some(first) => {
                    errors.push(ProcessingError {
                        location: obs.location.clone(),
                        kind: ErrorKind::Validation,
                        message: format!(
                            "duplicate entity \"{me}\": document {first} of this location already defines it; only the first is kept"
                        ),
                        document: Some(index),
                        line: Some(line),
                        column: Some(column),
                        entity: Some(me.to_string()),
                    });
                }
                None => {
                    seen.insert(me.key(), index);
                    each(mapped);
                }
            },
            Err(errs) => errors.extend(errs),
        },
    });
    if errors.len() > MAX_ERRORS_PER_LOCATION {
        let left_out = errors.len() - (MAX_ERRORS_PER_LOCATION - 1);
        let first_left_out = errors[MAX_ERRORS_PER_LOCATION - 1].clone();
        errors.truncate(MAX_ERRORS_PER_LOCATION - 1);
        errors.push(ProcessingError {
            message: format!(
                "{left_out} more errors in this location are not shown; the first: {}",
                first_left_out.message
            ),
            ..first_left_out
        });
    }
    for e in &errors {
        tracing::debug!(
            location = %obs.location,
            kind = ?e.kind,
            document = e.document,
            line = e.line,
            "{}",
            e.message
        );
    }
    errors
}

/// Validates, normalises and relates one document.
fn entity_of(obs: &Observation, doc: &Doc) -> Result<ProcessedEntity, Vec<ProcessingError>> {
    let entity_name = validate::best_effort_ref(&doc.value);
    let error = |kind: ErrorKind, path: &str, message: String| {
        let (line, column) = doc.spans.nearest(path);
        ProcessingError {
            location: obs.location.clone(),
            kind,
            message,
            document: Some(doc.index),
            line: Some(line),
            column: Some(column),
            entity: entity_name.clone(),
        }
    };
    if let Verdict::Invalid(violations) = validate::validate(&doc.value) {
        return Err(violations
            .into_iter()
            .map(|v| error(v.kind, &v.path, v.message))
            .collect());
    }
    let value = normalise(doc.value.clone(), obs);
    let entity: Entity = serde_json::from_value(value).map_err(|e| {
        vec![error(
            ErrorKind::Validation,
            "",
            format!("the entity could not be read: {e}"),
        )]
    })?;
    let me = entity.entity_ref();
    match relations::derive(&entity.kind, &me, entity.spec.as_ref()) {
        Ok(relations) => Ok(ProcessedEntity { entity, relations }),
        Err(bad) => Err(bad
            .into_iter()
            .map(|b| error(ErrorKind::Validation, &b.path, b.message))
            .collect()),
    }
}

/// Backstage's normalisation of a valid entity: the default namespace, the
/// location annotations (which the catalog always overwrites), and no
/// catalog-owned fields (`uid`, `etag`, `relations`, `status`) from the file.
fn normalise(mut value: Value, obs: &Observation) -> Value {
    if let Some(root) = value.as_object_mut() {
        root.remove("relations");
        root.remove("status");
        if let Some(meta) = root.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("uid");
            meta.remove("etag");
            meta.entry("namespace")
                .or_insert_with(|| Value::String("default".into()));
            let annotations = meta
                .entry("annotations")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(annotations) = annotations.as_object_mut() {
                annotations.insert(
                    ANNOTATION_LOCATION.into(),
                    Value::String(obs.location.to_string()),
                );
                annotations.insert(
                    ANNOTATION_ORIGIN_LOCATION.into(),
                    Value::String(obs.origin.to_string()),
                );
            }
        }
    }
    value
}
