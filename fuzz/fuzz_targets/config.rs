//! The configuration file: any text is read and checked, or refused with an
//! error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = catalog_config::Config::parse(text) {
        let _ = config.validate();
    }
});
