//! Messages read from the log (another version or another writer may have
//! put anything there): every topic's decoder refuses what it cannot read
//! with an error, and what it reads survives encoding again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::Versioned;

fn round_trip<T: Versioned + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(message) = T::decode(data) {
        let again = T::decode(&message.encode()).expect("what decoded once decodes again");
        assert_eq!(again, message);
    }
}

/// The projector reads entity events with their entities left encoded: what
/// the whole read accepts, that read accepts too and gives the same event.
fn raw_alike(data: &[u8]) {
    let raw = proto::RawEntityEvent::decode(data);
    if let Ok(whole) = proto::EntityEvent::decode(data) {
        let raw = raw.expect("what decodes whole decodes with its entities encoded");
        assert_eq!(raw.into_event().expect("and its entities decode"), whole);
    }
}

fuzz_target!(|data: &[u8]| {
    raw_alike(data);
    round_trip::<proto::Observation>(data);
    round_trip::<proto::EntityEvent>(data);
    round_trip::<proto::DeadLetter>(data);
    round_trip::<proto::FactEvent>(data);
    round_trip::<proto::LocationCommand>(data);
    round_trip::<proto::ScorecardEvent>(data);
});
