//! The change feed: every effective change to the catalog, in the order the
//! projector committed it, numbered by a sequence kept with the state.
//!
//! A feed record is small: what changed, where, when and why. An entity's
//! bodies are not copied: its record points at the entity's history record
//! (table `H`, by ref, time and event id), which holds the body after the
//! change; the body before is the history record preceding it.
//!
//! The numbering is the order in which this store applied events. Two
//! replicas that consumed partitions in different interleavings number
//! the same changes differently, so the feed is a path table (left out of
//! the checksum), and a cursor belongs to the replica that issued it.

use crate::keys;
use crate::records::{self, ChangeKind};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use proto::{LocationKey, SourceId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedKind {
    EntityCreated,
    EntityUpdated,
    EntityDeleted,
    LocationCreated,
    LocationUpdated,
    LocationDeleted,
    /// A scorecard's outcome for an entity changed (level, score or a
    /// check's status).
    ScorecardChanged,
}

impl FeedKind {
    pub const ALL: [FeedKind; 7] = [
        FeedKind::EntityCreated,
        FeedKind::EntityUpdated,
        FeedKind::EntityDeleted,
        FeedKind::LocationCreated,
        FeedKind::LocationUpdated,
        FeedKind::LocationDeleted,
        FeedKind::ScorecardChanged,
    ];

    /// The event type's name, as Backstage's history module spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedKind::EntityCreated => "entity_created",
            FeedKind::EntityUpdated => "entity_updated",
            FeedKind::EntityDeleted => "entity_deleted",
            FeedKind::LocationCreated => "location_created",
            FeedKind::LocationUpdated => "location_updated",
            FeedKind::LocationDeleted => "location_deleted",
            FeedKind::ScorecardChanged => "scorecard_changed",
        }
    }

    pub fn is_location(self) -> bool {
        matches!(
            self,
            FeedKind::LocationCreated | FeedKind::LocationUpdated | FeedKind::LocationDeleted
        )
    }

    pub fn is_entity(self) -> bool {
        matches!(
            self,
            FeedKind::EntityCreated | FeedKind::EntityUpdated | FeedKind::EntityDeleted
        )
    }

    pub fn of_entity(change: ChangeKind) -> FeedKind {
        match change {
            ChangeKind::Created => FeedKind::EntityCreated,
            ChangeKind::Updated => FeedKind::EntityUpdated,
            ChangeKind::Deleted => FeedKind::EntityDeleted,
        }
    }
}

/// One change, as stored under its sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedRecord {
    /// When the change was observed at its source.
    pub at: DateTime<Utc>,
    pub kind: FeedKind,
    /// The entity's ref key, for entity changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    pub location: LocationKey,
    pub source: SourceId,
    /// The log event that caused it.
    pub event_id: Uuid,
    /// Who caused it through the API (a token's subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// For location changes: how many processing errors the location has
    /// after the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<usize>,
    /// For scorecard changes: what changed (the location is then the one
    /// whose event caused it, or empty when it was not a location's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scorecard: Option<ScorecardOutcome>,
}

/// A change of one scorecard's outcome for one entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScorecardOutcome {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_before: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_after: Option<u32>,
    /// Checks whose status changed: id -> (before, after).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<
        String,
        (
            Option<crate::scorecard::CheckStatus>,
            Option<crate::scorecard::CheckStatus>,
        ),
    >,
    /// Why: `entity`, `related`, `fact`, `definition`, `exemption` or
    /// `time`, and the location, subject, file, exemption or deadline.
    pub cause: crate::scorecard::records::CauseKind,
    pub detail: String,
}

impl FeedRecord {
    /// The key of the entity's history record this change wrote.
    pub fn history_key(&self) -> Option<Vec<u8>> {
        if !self.kind.is_entity() {
            return None;
        }
        let r = self.entity.as_deref()?;
        Some(keys::history(r, self.at.timestamp_millis(), &self.event_id))
    }
}

/// A feed record with its sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEntry {
    pub seq: u64,
    pub record: FeedRecord,
}

/// The last sequence number written (0: none).
pub fn last_seq(store: &dyn Store) -> Result<u64, StoreError> {
    Ok(match store.get(&keys::meta(keys::FEED_SEQ))? {
        Some(v) => {
            u64::from_be_bytes(v.as_slice().try_into().map_err(|_| StoreError::Corrupt {
                key: "feed sequence".into(),
                reason: format!("{} bytes, not 8", v.len()),
            })?)
        }
        None => 0,
    })
}

/// Numbers `records` after the last written sequence and adds them, and
/// the new last sequence, to `out`.
pub fn write(
    store: &dyn Store,
    records: Vec<FeedRecord>,
    out: &mut crate::store::WriteSet,
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let mut seq = last_seq(store)?;
    for r in records {
        seq += 1;
        out.push((keys::feed(seq), Some(records::encode(&r))));
    }
    out.push((keys::meta(keys::FEED_SEQ), Some(seq.to_be_bytes().to_vec())));
    Ok(())
}

/// Deletes feed records observed before `before`, oldest first, at most
/// `max` of them (the feed's retention; a reader whose cursor is older
/// continues from the oldest record kept). Returns how many went.
pub fn prune(store: &dyn Store, before: DateTime<Utc>, max: usize) -> Result<usize, StoreError> {
    let mut gone = Vec::new();
    let mut err = None;
    store.scan(
        &[keys::FEED],
        None,
        &mut |k, v| match records::decode::<FeedRecord>(k, v) {
            Ok(r) if r.at < before => {
                gone.push((k.to_vec(), None));
                gone.len() < max
            }
            Ok(_) => false,
            Err(e) => {
                err = Some(e);
                false
            }
        },
    )?;
    if let Some(e) = err {
        return Err(e);
    }
    let n = gone.len();
    if n > 0 {
        store.write(gone)?;
    }
    Ok(n)
}

/// Up to `limit` entries after `after`, oldest first, that `keep` accepts;
/// scanning stops after `budget` entries read (so a selective filter over
/// a long feed answers in bounded time). Returns the entries and the last
/// sequence number read.
pub fn read(
    store: &dyn Store,
    after: u64,
    limit: usize,
    budget: usize,
    keep: &mut dyn FnMut(&FeedRecord) -> bool,
) -> Result<(Vec<FeedEntry>, u64), StoreError> {
    let mut out = Vec::new();
    let mut last = after;
    let mut read = 0usize;
    let mut err = None;
    let from = keys::feed(after.saturating_add(1));
    store.scan(&[keys::FEED], Some(&from), &mut |k, v| {
        let Some(seq) = keys::feed_seq(k) else {
            return true;
        };
        let record: FeedRecord = match records::decode(k, v) {
            Ok(r) => r,
            Err(e) => {
                err = Some(e);
                return false;
            }
        };
        last = seq;
        read += 1;
        if keep(&record) {
            out.push(FeedEntry { seq, record });
        }
        out.len() < limit && read < budget
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    Ok((out, last))
}

/// The entity bodies around an entity change: the history record the
/// change wrote (after) and the one preceding it (before), read as `T`
/// (a [`crate::records::HistoryRecord`], or just its entity's JSON text,
/// see [`EntityText`]).
pub fn bodies<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    record: &FeedRecord,
) -> Result<(Option<T>, Option<T>), StoreError> {
    Ok(bodies_each(store, &[record])?.pop().unwrap_or((None, None)))
}

/// [`bodies`] of each of `records` (none for a change that is not an
/// entity's), read with one iterator: a seek to each change's record (the
/// body after it) and a step back (the body before it), however long the
/// entity's history.
#[allow(clippy::type_complexity)]
pub fn bodies_each<T: serde::de::DeserializeOwned>(
    store: &dyn Store,
    records: &[&FeedRecord],
) -> Result<Vec<(Option<T>, Option<T>)>, StoreError> {
    let mut queries = Vec::new();
    let mut which = Vec::new();
    for (i, record) in records.iter().enumerate() {
        if let (Some(r), Some(key)) = (record.entity.as_deref(), record.history_key()) {
            queries.push((keys::prefix(keys::HISTORY, &[r.as_bytes()]), key));
            which.push(i);
        }
    }
    let found = store.at_and_before_each(&queries)?;
    let mut out: Vec<(Option<T>, Option<T>)> = records.iter().map(|_| (None, None)).collect();
    for ((i, (_, key)), (at, before)) in which.into_iter().zip(&queries).zip(found) {
        let after = at.map(|v| records::decode(key, &v)).transpose()?;
        let before = before.map(|(k, v)| records::decode(&k, &v)).transpose()?;
        out[i] = (before, after);
    }
    Ok(out)
}

/// A history record's entity as its stored JSON text, neither read into
/// the typed entity nor into a JSON tree: what the feed sends, as it is.
#[derive(Debug, Deserialize)]
pub struct EntityText {
    #[serde(default)]
    pub entity: Option<Box<serde_json::value::RawValue>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;
    use chrono::TimeZone;

    fn record(day: u32) -> FeedRecord {
        FeedRecord {
            at: Utc.with_ymd_and_hms(2026, 3, day, 12, 0, 0).unwrap(),
            kind: FeedKind::LocationUpdated,
            entity: None,
            location: LocationKey::new("file:/a.yaml"),
            source: SourceId::new("files"),
            event_id: Uuid::nil(),
            by: None,
            errors: None,
            scorecard: None,
        }
    }

    #[test]
    fn retention_drops_the_oldest_records_and_keeps_the_numbering() {
        let store = MemStore::new();
        let mut out = Vec::new();
        write(&store, (1..=5).map(record).collect(), &mut out).unwrap();
        store.write(out).unwrap();
        let cutoff = Utc.with_ymd_and_hms(2026, 3, 3, 0, 0, 0).unwrap();
        assert_eq!(prune(&store, cutoff, 1).unwrap(), 1, "at most max");
        assert_eq!(prune(&store, cutoff, 100).unwrap(), 1);
        assert_eq!(prune(&store, cutoff, 100).unwrap(), 0);
        let (left, last) = read(&store, 0, 100, 100, &mut |_| true).unwrap();
        let seqs: Vec<u64> = left.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [3, 4, 5]);
        assert_eq!(last, 5);
        // New records continue the numbering.
        let mut out = Vec::new();
        write(&store, vec![record(6)], &mut out).unwrap();
        store.write(out).unwrap();
        assert_eq!(last_seq(&store).unwrap(), 6);
    }
}
