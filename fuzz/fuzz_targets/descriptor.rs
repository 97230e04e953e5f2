//! Descriptor files, as a source ships them: bytes of any kind through the
//! processor (YAML streams, budgets, validation, relations). Nothing
//! panics; every error names the location; the event it yields survives
//! the wire.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use proto::{
    Content, EntityEvent, LocationKey, LocationOutcome, Observation, ObservedContent, SourceId,
    Versioned,
};

const LOCATION: &str = "file:/org/catalog-info.yaml";

fuzz_target!(|data: &[u8]| {
    let content = match std::str::from_utf8(data) {
        Ok(text) => Content::Utf8 {
            text: text.to_owned(),
        },
        Err(_) => Content::Hex {
            data: data.iter().map(|b| format!("{b:02x}")).collect(),
        },
    };
    let obs = Observation {
        event_id: uuid::Uuid::from_u128(1),
        source: SourceId::new("fuzz"),
        observed_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        location: LocationKey::new(LOCATION),
        origin: LocationKey::new(LOCATION),
        first_seen_at: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
        content: ObservedContent::Present { content },
    };
    let event = processor::process(&obs, &processor::ProcessorConfig::default());
    if let LocationOutcome::Processed { errors, .. } = &event.outcome {
        for e in errors {
            assert_eq!(e.location.as_str(), LOCATION, "an error names its location");
            assert!(!e.message.is_empty(), "an error says why");
        }
    }
    let back = EntityEvent::decode(&event.encode()).expect("an event decodes");
    assert_eq!(back, event, "an event survives the wire");
    // What the processor's stage appends: the event encoded as its
    // entities are validated.
    let encoded = processor::process_encoded(&obs, &processor::ProcessorConfig::default());
    let mut streamed = EntityEvent::decode(&encoded.bytes).expect("an encoded event decodes");
    streamed.event_id = event.event_id;
    assert_eq!(streamed, event, "the encoded event is the event");
});
