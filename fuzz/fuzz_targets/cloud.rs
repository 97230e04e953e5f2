//! Answers of the cloud APIs (Cloud Asset Inventory results, Resource Graph
//! rows, AWS ARNs) map to resources and entities, or are skipped, never a
//! panic; every entity made has a valid name.
#![no_main]

use ingest::sources::cloud::{self, Mapping};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, &[u8])| {
    let (which, bytes) = input;
    let mapping = Mapping::default();
    let resource = match which % 3 {
        0 => {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
                return;
            };
            ingest::sources::gcp::resource("p", &v)
        }
        1 => {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
                return;
            };
            ingest::sources::azure::resource("00000000-0000-0000-0000-000000000001", &v)
        }
        _ => {
            let Ok(arn) = std::str::from_utf8(bytes) else {
                return;
            };
            let _ = ingest::sources::aws::parse_arn(arn);
            return;
        }
    };
    if let Some(r) = resource {
        let e = cloud::entity(&r, &mapping);
        let name = e["metadata"]["name"].as_str().unwrap();
        assert!(cloud::is_valid_name(name), "{name:?}");
        let _ = cloud::listing(&[r], &mapping, &[], &[]);
    }
});
