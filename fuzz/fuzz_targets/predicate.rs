//! Predicate queries (`POST /entities/by-query`, `/entity-facets`): any
//! JSON parses or is refused, nothing panics; a predicate that is also a
//! plain filter selects the same entities both ways.
#![no_main]

use libfuzzer_sys::fuzz_target;
use projector::Predicate;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(predicate) = Predicate::parse(&value) else {
        return;
    };
    let catalog = catalog_fuzz::catalog();
    let selected = catalog
        .evaluate_predicate(&predicate)
        .expect("the memory store reads");
    if let Some(filter) = predicate.as_filter() {
        let by_filter = catalog
            .evaluate(Some(&filter))
            .expect("the memory store reads");
        assert_eq!(by_filter, selected, "{value} as a filter disagrees");
    }
});
