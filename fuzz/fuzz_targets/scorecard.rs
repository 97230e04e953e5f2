//! Scorecard definition files: any text compiles or fails with errors that
//! name the file; a compiled definition evaluates any entity.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match projector::scorecard::compile("cards/fuzz.yaml", text) {
        Ok(definition) => {
            let entity = catalog_fuzz::sample_entity();
            if definition.applies(&entity) {
                let _ = catalog_fuzz::evaluate(&definition, &entity);
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "a failure says why");
            for e in errors {
                assert_eq!(e.file, "cards/fuzz.yaml", "an error names the file");
            }
        }
    }
});
