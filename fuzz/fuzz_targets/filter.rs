//! The GET filter language (`filter=kind=component,spec.type=service`):
//! nothing panics, and a filter that parses selects the same entities as
//! the predicate it converts to (the two languages must agree).
#![no_main]

use libfuzzer_sys::fuzz_target;
use projector::{EntityFilter, Predicate};

fuzz_target!(|params: Vec<String>| {
    let Ok(Some(filter)) = EntityFilter::parse(&params) else {
        return;
    };
    let catalog = catalog_fuzz::catalog();
    let by_filter = catalog
        .evaluate(Some(&filter))
        .expect("the memory store reads");
    let by_predicate = catalog
        .evaluate_predicate(&Predicate::from_filter(&filter))
        .expect("the memory store reads");
    assert_eq!(
        by_filter, by_predicate,
        "filter {params:?} and its predicate disagree"
    );
});
