//! Derived ids: the uuids the catalog gives entities (`metadata.uid`) and
//! locations (a location's `id`), made from their keys so that replicas
//! and replays agree. They are part of the contract: clients hold them.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A deterministic id from a name in a namespace (`entity` with a ref key,
/// `location` with a location key, ...).
pub fn derived_id(namespace: &str, name: &str) -> Uuid {
    let digest = Sha256::digest(format!("{namespace}\0{name}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The id (`metadata.uid`) of the entity of a ref key.
pub fn entity_id(refkey: &str) -> Uuid {
    derived_id("entity", refkey)
}

/// The id of the location of a location key.
pub fn location_id(location: &str) -> Uuid {
    derived_id("location", location)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_namespaced() {
        assert_eq!(
            entity_id("component:default/a"),
            entity_id("component:default/a")
        );
        assert_ne!(entity_id("x"), location_id("x"));
        assert_eq!(location_id("url:x"), derived_id("location", "url:x"));
    }
}
