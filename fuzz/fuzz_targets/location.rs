//! Registration targets (`POST /locations` type and target): nothing
//! panics, and a `file` target accepted is under an allowed root.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (kind, target) = input;
    let root = std::env::temp_dir();
    let config = ingest::LocationsConfig {
        allow_file_roots: vec![root.clone()],
        observe: true,
    };
    if let Ok(key) = config.key_of(kind, target) {
        let (kind, target) = key.type_and_target();
        if kind == "file" {
            let root = root.canonicalize().unwrap_or(root);
            assert!(
                std::path::Path::new(target).starts_with(&root),
                "{target} is outside {}",
                root.display()
            );
        }
    }
});
