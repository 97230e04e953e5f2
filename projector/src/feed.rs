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
use crate::records::{self, ChangeKind, HistoryRecord};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use proto::{LocationKey, SourceId};
use serde::{Deserialize, Serialize};
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
}

impl FeedKind {
    pub const ALL: [FeedKind; 6] = [
        FeedKind::EntityCreated,
        FeedKind::EntityUpdated,
        FeedKind::EntityDeleted,
        FeedKind::LocationCreated,
        FeedKind::LocationUpdated,
        FeedKind::LocationDeleted,
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
        }
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
}

impl FeedRecord {
    /// The key of the entity's history record this change wrote.
    pub fn history_key(&self) -> Option<Vec<u8>> {
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
/// change wrote (after) and the one preceding it (before).
pub fn bodies(
    store: &dyn Store,
    record: &FeedRecord,
) -> Result<(Option<HistoryRecord>, Option<HistoryRecord>), StoreError> {
    let (Some(r), Some(key)) = (record.entity.as_deref(), record.history_key()) else {
        return Ok((None, None));
    };
    let prefix = keys::prefix(keys::HISTORY, &[r.as_bytes()]);
    let mut before: Option<Vec<u8>> = None;
    let mut after = None;
    store.scan(&prefix, None, &mut |k, v| {
        if k == key.as_slice() {
            after = Some(v.to_vec());
            return false;
        }
        if k > key.as_slice() {
            return false;
        }
        before = Some(k.to_vec());
        true
    })?;
    let before = match before {
        Some(k) => match store.get(&k)? {
            Some(v) => Some(records::decode(&k, &v)?),
            None => None,
        },
        None => None,
    };
    let after = match after {
        Some(v) => Some(records::decode(&key, &v)?),
        None => None,
    };
    Ok((before, after))
}
