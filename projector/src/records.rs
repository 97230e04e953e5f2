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
///
/// Stored compactly: a run of rows with the same key is one group, the key
/// written once, and a value whose original is the same string is written
/// once: `[["spec.targets", ["./a.yaml", ["x", "X"]]], ...]`. A Location
/// listing 350k targets had a 105 MB value as a list of
/// `{"key","value","original"}` objects, which every compaction passing it
/// held three times over in its table builder. The older form
/// (`{"rows":[...]}`) is still read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchRows {
    pub rows: Vec<SearchRow>,
}

impl Serialize for SearchRows {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SearchRowsOf(&self.rows).serialize(s)
    }
}

/// Rows stored as [`SearchRows`] are, without a copy of them: a Location
/// listing 544k targets has twice as many rows (each target is also a key
/// of its own, as Backstage indexes string items), 0.2 GB to copy.
pub struct SearchRowsOf<'a>(pub &'a [SearchRow]);

impl Serialize for SearchRowsOf<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(None)?;
        for group in self.0.chunk_by(|a, b| a.key == b.key) {
            seq.serialize_element(&(&group[0].key, RowValues(group)))?;
        }
        seq.end()
    }
}

/// The values of a group of rows with one key, as stored.
struct RowValues<'a>(&'a [SearchRow]);

impl Serialize for RowValues<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for row in self.0 {
            if row.value == row.original {
                seq.serialize_element(&row.value)?;
            } else {
                seq.serialize_element(&(&row.value, &row.original))?;
            }
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for SearchRows {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RowsVisitor)
    }
}

struct RowsVisitor;

impl<'de> serde::de::Visitor<'de> for RowsVisitor {
    type Value = SearchRows;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("search rows: a list of [key, values] groups, or {\"rows\": [...]}")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<SearchRows, A::Error> {
        let mut rows = Vec::new();
        while let Some(group) = seq.next_element_seed(GroupSeed(&mut rows))? {
            let () = group;
        }
        Ok(SearchRows { rows })
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<SearchRows, A::Error> {
        let mut rows = None;
        while let Some(field) = map.next_key::<String>()? {
            if field == "rows" {
                rows = Some(map.next_value::<Vec<SearchRow>>()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        rows.map(|rows| SearchRows { rows })
            .ok_or_else(|| serde::de::Error::missing_field("rows"))
    }
}

/// One stored group, appended to the rows read so far.
struct GroupSeed<'r>(&'r mut Vec<SearchRow>);

impl<'de> serde::de::DeserializeSeed<'de> for GroupSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for GroupSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a [key, values] group of search rows")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let (key, values): (String, Vec<RowValue>) = exactly_two(seq, &self)?;
        self.0.extend(values.into_iter().map(|v| {
            let (value, original) = match v {
                RowValue::Same(v) => (v.clone(), v),
                RowValue::Differs(v, o) => (v, o),
            };
            SearchRow {
                key: key.clone(),
                value,
                original,
            }
        }));
        Ok(())
    }
}

/// A stored value: the string itself when the original is the same, or
/// `[value, original]`.
enum RowValue {
    Same(String),
    Differs(String, String),
}

impl<'de> Deserialize<'de> for RowValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RowValueVisitor)
    }
}

struct RowValueVisitor;

impl<'de> serde::de::Visitor<'de> for RowValueVisitor {
    type Value = RowValue;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a search row's value, or [value, original]")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RowValue, E> {
        Ok(RowValue::Same(v.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<RowValue, E> {
        Ok(RowValue::Same(v))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<RowValue, A::Error> {
        let (value, original) = exactly_two(seq, &self)?;
        Ok(RowValue::Differs(value, original))
    }
}

/// The two elements of a stored pair (a group, a value with its original),
/// refusing a shorter or a longer sequence.
fn exactly_two<'de, A, T, U>(
    mut seq: A,
    expected: &dyn serde::de::Expected,
) -> Result<(T, U), A::Error>
where
    A: serde::de::SeqAccess<'de>,
    T: Deserialize<'de>,
    U: Deserialize<'de>,
{
    use serde::de::Error;
    let first = seq
        .next_element()?
        .ok_or_else(|| A::Error::invalid_length(0, expected))?;
    let second = seq
        .next_element()?
        .ok_or_else(|| A::Error::invalid_length(1, expected))?;
    if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
        return Err(A::Error::invalid_length(3, expected));
    }
    Ok((first, second))
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

    fn row(key: &str, value: &str, original: &str) -> SearchRow {
        SearchRow {
            key: key.into(),
            value: value.into(),
            original: original.into(),
        }
    }

    #[test]
    fn search_rows_read_back_exactly_in_the_compact_form() {
        let cases = vec![
            vec![],
            vec![row("kind", "component", "Component")],
            vec![
                row("kind", "component", "Component"),
                row("metadata.name", "a", "a"),
                row("metadata.tags", "java", "java"),
                row("metadata.tags", "go", "Go"),
                row("metadata.tags", "", ""),
                // A key again after another: its own group, order kept.
                row("kind", "x", "x"),
                row("spec.targets", "[\"q\"]", "[\"Q\"]"),
            ],
        ];
        for rows in cases {
            let rows = SearchRows { rows };
            let bytes = encode(&rows);
            assert_eq!(decode::<SearchRows>(b"s", &bytes).unwrap(), rows);
        }
        let one = SearchRows {
            rows: vec![
                row("metadata.tags", "java", "java"),
                row("metadata.tags", "go", "Go"),
            ],
        };
        assert_eq!(
            &encode(&one)[1..],
            br#"[["metadata.tags",["java",["go","Go"]]]]"#
        );
    }

    #[test]
    fn search_rows_of_the_older_form_are_still_read() {
        let older = br#"{"rows":[{"key":"kind","value":"component","original":"Component"},{"key":"kind","value":"x","original":"x"}]}"#;
        let mut bytes = vec![RECORD_VERSION];
        bytes.extend_from_slice(older);
        let rows: SearchRows = decode(b"s", &bytes).unwrap();
        assert_eq!(
            rows.rows,
            vec![row("kind", "component", "Component"), row("kind", "x", "x")]
        );
        // Nor is anything else taken for rows.
        for bad in [
            &br#"{"other":[]}"#[..],
            br#"[["kind"]]"#,
            br#"[["kind",["a",["b"]]]]"#,
            br#"[["kind",["a",["b","c","d"]]]]"#,
            br#"[["kind",[1]]]"#,
            br#"[["kind",[],3]]"#,
            br#""rows""#,
        ] {
            let mut bytes = vec![RECORD_VERSION];
            bytes.extend_from_slice(bad);
            let err = decode::<SearchRows>(b"skey", &bytes).unwrap_err();
            assert!(err.to_string().contains("skey"), "{err}");
        }
    }

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
