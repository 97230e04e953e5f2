//! Stored records. Every value starts with a one-byte record version; an
//! unknown version is an error naming the key, never a misread.

use crate::store::StoreError;
use chrono::{DateTime, Utc};
use proto::{EntityRef, LocationKey, ProcessingError, RelationType, SourceId};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::collections::BTreeSet;
use uuid::Uuid;

/// Version byte of every record this build writes.
pub const RECORD_VERSION: u8 = 1;

/// A `V` value: the served JSON of a ref from a moment on (`Some`), or
/// that it is not served from then on (`None`). Raw, not a JSON record:
/// one tag byte, then the served JSON as the `E` table holds it.
pub fn encode_version(served: Option<&[u8]>) -> Vec<u8> {
    match served {
        Some(b) => {
            let mut out = Vec::with_capacity(b.len() + 1);
            out.push(1);
            out.extend_from_slice(b);
            out
        }
        None => vec![0],
    }
}

/// The served JSON of an [`encode_version`] value.
pub fn decode_version<'a>(key: &[u8], bytes: &'a [u8]) -> Result<Option<&'a [u8]>, StoreError> {
    match bytes.split_first() {
        Some((1, rest)) => Ok(Some(rest)),
        Some((0, [])) => Ok(None),
        _ => Err(StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "not a served version".into(),
        }),
    }
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![RECORD_VERSION];
    serde_json::to_writer(&mut out, value).expect("records serialise infallibly");
    out
}

pub fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    };
    match bytes.split_first() {
        Some((&RECORD_VERSION, rest)) => {
            serde_json::from_slice(rest).map_err(|e| corrupt(e.to_string()))
        }
        Some((v, _)) => Err(corrupt(format!("unknown record version {v}"))),
        None => Err(corrupt("empty record".into())),
    }
}

/// The locations that claim one entity ref, ordered by the conflict rule:
/// earliest first-seen time, then location key. The first one wins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    pub claims: Vec<Claim>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Claim {
    pub first_seen_at: DateTime<Utc>,
    pub location: LocationKey,
}

impl Claims {
    pub fn winner(&self) -> Option<&LocationKey> {
        self.claims.first().map(|c| &c.location)
    }
    /// Adds or updates the claim of `location`, keeping the order.
    pub fn upsert(&mut self, location: &LocationKey, first_seen_at: DateTime<Utc>) {
        self.claims.retain(|c| &c.location != location);
        let claim = Claim {
            first_seen_at,
            location: location.clone(),
        };
        let at = self.claims.partition_point(|c| c < &claim);
        self.claims.insert(at, claim);
    }
    pub fn remove(&mut self, location: &LocationKey) {
        self.claims.retain(|c| &c.location != location);
    }
}

/// What the projector knows of one location.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationRecord {
    pub id: Uuid,
    pub location: LocationKey,
    pub origin: LocationKey,
    pub source: SourceId,
    pub first_seen_at: DateTime<Utc>,
    /// When the last effective change of this location was observed.
    pub updated_at: DateTime<Utc>,
    /// Ref keys the location yields, sorted.
    pub refs: Vec<String>,
    pub errors: Vec<ProcessingError>,
}

/// One relation (a `g` row): its type, its target as first emitted, and
/// the entities that emit it (a pair can be emitted from both ends, e.g. a
/// group's `children` and the child's `parent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationRow {
    #[serde(rename = "type")]
    pub relation_type: RelationType,
    pub target: EntityRef,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub emitters: BTreeSet<String>,
}

/// The search rows of one served entity: (key, lower-cased value, original).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchRows {
    pub rows: Vec<SearchRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SearchRow {
    pub key: String,
    pub value: String,
    pub original: String,
}

/// One effective change of an entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    pub at: DateTime<Utc>,
    pub event_id: Uuid,
    pub location: LocationKey,
    pub change: ChangeKind,
    /// The entity as its location yields it after the change (no relations,
    /// uid or etag), absent for a deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<proto::Entity>,
    /// Who caused it through the API (the subject of the caller's token),
    /// for a deletion through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Created,
    Updated,
    Deleted,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn claims_order_by_first_seen_then_location() {
        let t = |s| Utc.timestamp_opt(s, 0).unwrap();
        let mut c = Claims::default();
        c.upsert(&LocationKey::new("file:/b"), t(5));
        c.upsert(&LocationKey::new("file:/c"), t(1));
        c.upsert(&LocationKey::new("file:/a"), t(5));
        assert_eq!(c.winner().unwrap().as_str(), "file:/c");
        c.remove(&LocationKey::new("file:/c"));
        assert_eq!(c.winner().unwrap().as_str(), "file:/a");
        c.upsert(&LocationKey::new("file:/b"), t(0));
        assert_eq!(c.winner().unwrap().as_str(), "file:/b");
        assert_eq!(c.claims.len(), 2);
    }

    #[test]
    fn unknown_record_version_is_an_error() {
        let mut bytes = encode(&Claims::default());
        bytes[0] = 9;
        let err = decode::<Claims>(b"Cx", &bytes).unwrap_err();
        assert!(
            err.to_string().contains("unknown record version 9"),
            "{err}"
        );
    }
}
