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

fuzz_target!(|data: &[u8]| {
    round_trip::<proto::Observation>(data);
    round_trip::<proto::EntityEvent>(data);
    round_trip::<proto::DeadLetter>(data);
    round_trip::<proto::FactEvent>(data);
    round_trip::<proto::LocationCommand>(data);
    round_trip::<proto::ScorecardEvent>(data);
});
