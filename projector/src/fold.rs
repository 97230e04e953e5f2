//! The fold: entity events -> state changes.
//!
//! [`Fold`] applies events to a working set of typed records read lazily
//! through the [`Store`] trait; [`Fold::finish`] derives what depends on the
//! final state of each touched entity (the served JSON with stitched
//! relations, uid, etag, search rows, facet counts) and returns one
//! [`WriteSet`] that the caller writes in one batch, with its offsets. The
//! fold does no I/O of its own beyond those reads, and an event that changes
//! nothing yields no change at all (not even history).
//!
//! Conflicts: when several locations yield the same ref, the one with the
//! earliest first-seen time wins, ties broken by location key, whatever
//! order the events arrived in. Losers keep their claim and see a conflict
//! error on their location.

use crate::feed::{self, FeedKind, FeedRecord};
use crate::keys;
use crate::records::{
    self, ChangeKind, Claims, HistoryRecord, LocationRecord, RelationRow, SearchRow, SearchRows,
};
use crate::scorecard::records::{Cause, CauseKind};
use crate::scorecard::step::{ScoreState, Served, Trigger};
use crate::search;
use crate::store::{Store, StoreError, WriteSet};
use proto::derived_id;
use proto::{
    DecodeError, EntityEvent, EntityRelation, FactEvent, LocationKey, LocationOutcome,
    ProcessedEntity, RawEntityEvent, ScorecardEvent,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// An entity event applied in parts, each part its own fold and write,
/// so that one location yielding hundreds of thousands of entities costs
/// bounded memory and shows progress: what the event yields and what its
/// location yielded before, by ref key.
///
/// Applying the parts in order and then [`Fold::apply_location`] has the
/// effect of [`Fold::apply`]. A part applied again changes nothing, so an
/// event whose parts were interrupted is applied again from its start.
pub struct Parts<'e> {
    /// The event without its entities.
    event: EntityEvent,
    /// Each ref it yields, still encoded.
    new: BTreeMap<String, &'e RawValue>,
    touched: Vec<String>,
}

/// What an event to be applied in parts yields, by ref key (the first of a
/// ref wins), each entity still encoded. Making it decodes every entity
/// once, to find its ref and to refuse the event before any part of it is
/// applied if one does not decode.
pub struct Yield<'e> {
    event: EntityEvent,
    new: BTreeMap<String, &'e RawValue>,
}

impl<'e> Yield<'e> {
    pub fn new(event: RawEntityEvent<'e>) -> Result<Self, DecodeError> {
        let mut new = BTreeMap::new();
        for raw in event.entities {
            let pe = RawEntityEvent::entity(raw)?;
            new.entry(pe.entity.entity_ref().key()).or_insert(raw);
        }
        Ok(Yield {
            event: event.header,
            new,
        })
    }
}

impl<'e> Parts<'e> {
    /// The parts of what an event yields against `store`, which must hold
    /// everything folded before it (no fold may hold unwritten changes).
    pub fn new(store: &dyn Store, yielded: Yield<'e>) -> Result<Self, StoreError> {
        let Yield { event, new } = yielded;
        let key = keys::location(event.location.as_str());
        let before: Option<LocationRecord> = match store.get(&key)? {
            Some(bytes) => Some(records::decode(&key, &bytes)?),
            None => None,
        };
        let mut touched: BTreeSet<&str> = new.keys().map(String::as_str).collect();
        touched.extend(
            before
                .iter()
                .flat_map(|b| b.refs.iter().map(String::as_str)),
        );
        let touched = touched.into_iter().map(str::to_owned).collect();
        Ok(Parts {
            event,
            new,
            touched,
        })
    }

    /// The refs the event touches (yielded now or before), sorted.
    pub fn touched(&self) -> &[String] {
        &self.touched
    }

    /// The end of the part that starts at `start` in [`Parts::touched`]:
    /// at most `refs` refs, and no more of them than keeps within `rows`
    /// the relation rows that move into or out of the posting lists at
    /// once (every row of an entity that starts or stops being served, see
    /// [`Fold::finish`]); one ref at least. Counted, not decoded. A replay
    /// of the realistic 1M org meets its 10,000 groups after the 544k
    /// components they own: each part of 5,000 groups moved over 100k rows
    /// in one working set and one write, where a part of users moves next
    /// to none.
    pub fn part_end(
        &self,
        store: &dyn Store,
        start: usize,
        refs: usize,
        rows: usize,
    ) -> Result<usize, StoreError> {
        let end = start.saturating_add(refs.max(1)).min(self.touched.len());
        let window = &self.touched[start.min(end)..end];
        let served = store.get_many(&window.iter().map(|r| keys::entity(r)).collect::<Vec<_>>())?;
        // The refs whose serving this event is expected to flip: served and
        // no longer yielded, or yielded and not served yet.
        let flips: Vec<usize> = window
            .iter()
            .zip(&served)
            .enumerate()
            .filter(|(_, (r, s))| s.is_some() != self.new.contains_key(*r))
            .map(|(i, _)| i)
            .collect();
        let prefixes: Vec<Vec<u8>> = flips
            .iter()
            .map(|i| keys::relations_of(&window[*i]))
            .collect();
        let mut moving = vec![0usize; window.len()];
        store.scan_each(&prefixes, &mut |j, _, _| {
            moving[flips[j]] += 1;
            true
        })?;
        let mut total = 0usize;
        for (i, n) in moving.iter().enumerate() {
            total += n;
            if i > 0 && total > rows {
                return Ok(start + i);
            }
        }
        Ok(end)
    }
}

/// What an event yields, by ref key (the first of a ref wins).
fn yielded(event: &EntityEvent) -> BTreeMap<String, &ProcessedEntity> {
    let mut new = BTreeMap::new();
    if let LocationOutcome::Processed { entities, .. } = &event.outcome {
        for pe in entities {
            new.entry(pe.entity.entity_ref().key()).or_insert(pe);
        }
    }
    new
}

/// The errors of an event's location.
fn errors(event: &EntityEvent) -> &[proto::ProcessingError] {
    match &event.outcome {
        LocationOutcome::Processed { errors, .. } => errors,
        LocationOutcome::Removed | LocationOutcome::EntityDeleted { .. } => &[],
    }
}

/// A lazily loaded, typed table of the working set.
pub(crate) struct Table<T> {
    table: u8,
    rows: crate::FastMap<Vec<u8>, (Option<T>, bool)>,
}

impl<T: Clone + Serialize + DeserializeOwned> Table<T> {
    pub(crate) fn new(table: u8) -> Self {
        Table {
            table,
            rows: crate::FastMap::default(),
        }
    }

    /// The slot of `key` (value, dirty), loaded from the store on first use.
    fn slot(
        &mut self,
        store: &dyn Store,
        key: Vec<u8>,
    ) -> Result<&mut (Option<T>, bool), StoreError> {
        debug_assert_eq!(key.first(), Some(&self.table));
        Ok(match self.rows.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let value = match store.get(e.key())? {
                    Some(bytes) => Some(records::decode(e.key(), &bytes)?),
                    None => None,
                };
                e.insert((value, false))
            }
        })
    }

    pub(crate) fn get(
        &mut self,
        store: &dyn Store,
        key: Vec<u8>,
    ) -> Result<Option<&T>, StoreError> {
        Ok(self.slot(store, key)?.0.as_ref())
    }

    /// The value of `key`, loaded if needed and marked for writing.
    pub(crate) fn get_mut(
        &mut self,
        store: &dyn Store,
        key: Vec<u8>,
    ) -> Result<&mut Option<T>, StoreError> {
        let slot = self.slot(store, key)?;
        slot.1 = true;
        Ok(&mut slot.0)
    }

    pub(crate) fn set(&mut self, key: Vec<u8>, value: Option<T>) {
        self.rows.insert(key, (value, true));
    }

    /// The working set's value of `key`, if it was loaded or written
    /// (`Some(None)`: known to be absent); never reads the store.
    pub(crate) fn cached(&self, key: &[u8]) -> Option<&Option<T>> {
        self.rows.get(key).map(|(v, _)| v)
    }

    /// Keys of the working set (loaded or written).
    pub(crate) fn keys(&self) -> Vec<Vec<u8>> {
        self.rows.keys().cloned().collect()
    }

    pub(crate) fn drain_into(&mut self, out: &mut WriteSet) {
        for (k, (v, dirty)) in self.rows.drain() {
            if dirty {
                out.push((k, v.as_ref().map(records::encode)));
            }
        }
    }
}

/// Applies events to a working set; see the module docs.
pub struct Fold<'s> {
    store: &'s dyn Store,
    claims: Table<Claims>,
    bodies: Table<ProcessedEntity>,
    locations: Table<LocationRecord>,
    location_ids: Table<LocationKey>,
    relations: Table<RelationRow>,
    /// The relation rows this working set changed, by source: each row's
    /// value before it. They change at the time of the source's cause (as
    /// its served version does).
    relation_changes: BTreeMap<String, BTreeMap<Vec<u8>, Option<RelationRow>>>,
    history: Vec<(Vec<u8>, HistoryRecord)>,
    /// The changes of this working set, in the order they were made.
    feed: Vec<FeedRecord>,
    dirty: BTreeSet<String>,
    /// Why each dirty ref changed (the last event that touched it).
    causes: crate::FastMap<String, Trigger>,
    score: ScoreState,
    /// Whole scorecards evaluated by this batch are written in parts.
    score_parts: Option<crate::scorecard::step::Parts<'s>>,
}

impl<'s> Fold<'s> {
    pub fn new(store: &'s dyn Store) -> Self {
        Fold {
            store,
            claims: Table::new(keys::CLAIMS),
            bodies: Table::new(keys::BODY),
            locations: Table::new(keys::LOCATION),
            location_ids: Table::new(keys::LOCATION_ID),
            relations: Table::new(keys::RELATION),
            relation_changes: BTreeMap::new(),
            history: Vec::new(),
            feed: Vec::new(),
            dirty: BTreeSet::new(),
            causes: crate::FastMap::default(),
            score: ScoreState::new(),
            score_parts: None,
        }
    }

    /// A scorecard this batch evaluates for every entity (a definition
    /// published, changed or removed) is written as it goes, `results`
    /// results at a time, without the batch's offsets; `finish` gives up
    /// between two parts once `stop` is set ([`StoreError::Stopped`]).
    /// Meant for a batch that holds one scorecard event alone (see
    /// `run::apply_batch`): a replay evaluates it again, and what the
    /// parts wrote is then unchanged.
    pub fn evaluate_in_parts(&mut self, results: usize, stop: &'s std::sync::atomic::AtomicBool) {
        self.score_parts = Some(crate::scorecard::step::Parts { results, stop });
    }

    /// Applies one fact event. Returns whether it changed anything.
    pub fn apply_facts(&mut self, event: &FactEvent) -> Result<bool, StoreError> {
        self.score.apply_facts(self.store, event)
    }

    /// Applies one scorecard event (definitions, exemptions). Returns
    /// whether it changed anything.
    pub fn apply_scorecard(&mut self, event: &ScorecardEvent) -> Result<bool, StoreError> {
        self.score.apply_scorecard(self.store, event)
    }

    /// Marks scorecard results whose time-bound rules or exemptions come
    /// due at or before `now` for re-evaluation. Returns how many.
    pub fn due(&mut self, now: chrono::DateTime<chrono::Utc>) -> Result<usize, StoreError> {
        self.score.due(self.store, now)
    }

    /// Applies one event. Returns whether it changed anything.
    pub fn apply(&mut self, event: &EntityEvent) -> Result<bool, StoreError> {
        if let LocationOutcome::EntityDeleted { entity, .. } = &event.outcome {
            return self.delete(event, &entity.key());
        }
        let loc = &event.location;
        let new = yielded(event);
        let old = self
            .locations
            .get(self.store, keys::location(loc.as_str()))?
            .cloned();
        let mut changed = false;
        // Every ref the location yields or yielded, in ref order, as
        // [`Parts`] takes them: the feed then records the same changes in
        // the same order whether the event was applied whole or in parts.
        let before = old.as_ref().map_or(&[][..], |o| o.refs.as_slice());
        let touched: BTreeSet<&str> = before
            .iter()
            .map(String::as_str)
            .chain(new.keys().map(String::as_str))
            .collect();
        for r in touched {
            changed |= match new.get(r) {
                Some(pe) => self.claim(loc, r, pe, event)?,
                None => self.unclaim(loc, r, event)?,
            };
        }
        changed |= self.update_location(old, new.into_keys().collect(), errors(event), event);
        Ok(changed)
    }

    /// One entity deleted through the API: its location stops yielding it
    /// (as if its last event had not), keeping its other entities and its
    /// errors, until an event of the location yields it again. Deleting
    /// what the location does not yield changes nothing.
    fn delete(&mut self, event: &EntityEvent, r: &str) -> Result<bool, StoreError> {
        let loc = &event.location;
        let key = keys::location(loc.as_str());
        let Some(mut rec) = self.locations.get(self.store, key.clone())?.cloned() else {
            return Ok(false);
        };
        let Ok(at) = rec.refs.binary_search_by(|x| x.as_str().cmp(r)) else {
            return Ok(false);
        };
        self.unclaim(loc, r, event)?;
        rec.refs.remove(at);
        rec.updated_at = event.observed_at;
        self.locations.set(key, Some(rec));
        Ok(true)
    }

    /// How many refs applying `event` touches: those it yields, or those
    /// its location yielded before, whichever is more (as the working set
    /// holds the location now).
    pub fn touches(&mut self, event: &RawEntityEvent<'_>) -> Result<usize, StoreError> {
        let yields = match &event.header.outcome {
            LocationOutcome::Processed { .. } => event.entities.len(),
            LocationOutcome::Removed => 0,
            LocationOutcome::EntityDeleted { .. } => return Ok(1),
        };
        let before = self
            .locations
            .get(self.store, keys::location(event.header.location.as_str()))?
            .map_or(0, |l| l.refs.len());
        Ok(yields.max(before))
    }

    /// Applies the part of an event that concerns `refs` (a slice of
    /// [`Parts::touched`]): claims what it yields among them, releases what
    /// its location no longer yields. The location's own record changes
    /// only with [`Fold::apply_location`], after every part. Returns
    /// whether anything changed.
    pub fn apply_part(&mut self, parts: &Parts<'_>, refs: &[String]) -> Result<bool, StoreError> {
        let event = &parts.event;
        let mut changed = false;
        for r in refs {
            changed |= match parts.new.get(r) {
                Some(raw) => {
                    // Decoded once already, when the parts were made.
                    let pe = RawEntityEvent::entity(raw).map_err(|e| StoreError::Corrupt {
                        key: r.clone(),
                        reason: e.to_string(),
                    })?;
                    self.claim(&event.location, r, &pe, event)?
                }
                None => self.unclaim(&event.location, r, event)?,
            };
        }
        Ok(changed)
    }

    /// Completes an event applied in parts: the location's record (what it
    /// yields, its errors). Returns whether it changed.
    pub fn apply_location(&mut self, parts: Parts<'_>) -> Result<bool, StoreError> {
        let Parts { event, new, .. } = parts;
        // Read through the working set, so the record written replaces the
        // one the parts were computed against.
        let old = self
            .locations
            .get(self.store, keys::location(event.location.as_str()))?
            .cloned();
        Ok(self.update_location(old, new.into_keys().collect(), errors(&event), &event))
    }

    fn update_location(
        &mut self,
        old: Option<LocationRecord>,
        refs: Vec<String>,
        errors: &[proto::ProcessingError],
        event: &EntityEvent,
    ) -> bool {
        let key = keys::location(event.location.as_str());
        if matches!(event.outcome, LocationOutcome::Removed) {
            return match old {
                Some(old) => {
                    self.locations.set(key, None);
                    self.location_ids.set(keys::location_id(&old.id), None);
                    self.location_changed(FeedKind::LocationDeleted, event, 0);
                    true
                }
                None => false,
            };
        }
        let id = derived_id("location", event.location.as_str());
        let mut rec = LocationRecord {
            id,
            location: event.location.clone(),
            origin: event.origin.clone(),
            source: event.source.clone(),
            first_seen_at: event.first_seen_at,
            updated_at: event.observed_at,
            refs,
            errors: errors.to_vec(),
        };
        if let Some(old) = &old {
            rec.updated_at = old.updated_at;
            if &rec == old {
                return false;
            }
            rec.updated_at = event.observed_at;
            self.location_changed(FeedKind::LocationUpdated, event, rec.errors.len());
        } else {
            self.location_ids
                .set(keys::location_id(&id), Some(event.location.clone()));
            self.location_changed(FeedKind::LocationCreated, event, rec.errors.len());
        }
        self.locations.set(key, Some(rec));
        true
    }

    fn location_changed(&mut self, kind: FeedKind, event: &EntityEvent, errors: usize) {
        self.feed.push(FeedRecord {
            at: event.observed_at,
            kind,
            entity: None,
            location: event.location.clone(),
            source: event.source.clone(),
            event_id: event.event_id,
            by: None,
            errors: Some(errors),
            scorecard: None,
        });
    }

    /// The body the winner of `r` yields, as the working set holds it now.
    fn winning_body(&mut self, r: &str) -> Result<Option<ProcessedEntity>, StoreError> {
        let Some(winner) = self
            .claims
            .get(self.store, keys::claims(r))?
            .and_then(Claims::winner)
            .cloned()
        else {
            return Ok(None);
        };
        Ok(self
            .bodies
            .get(self.store, keys::body(winner.as_str(), r))?
            .cloned())
    }

    fn claim(
        &mut self,
        loc: &LocationKey,
        r: &str,
        pe: &ProcessedEntity,
        event: &EntityEvent,
    ) -> Result<bool, StoreError> {
        let body_key = keys::body(loc.as_str(), r);
        let body_same = self.bodies.get(self.store, body_key.clone())? == Some(pe);
        let mut claims = self
            .claims
            .get(self.store, keys::claims(r))?
            .cloned()
            .unwrap_or_default();
        let before_claims = claims.clone();
        claims.upsert(loc, event.first_seen_at);
        if body_same && claims == before_claims {
            return Ok(false);
        }
        let before = self.winning_body(r)?;
        if !body_same {
            self.bodies.set(body_key, Some(pe.clone()));
        }
        if claims != before_claims {
            self.claims.set(keys::claims(r), Some(claims));
        }
        let after = self.winning_body(r)?;
        self.transition(r, before, after, event)?;
        Ok(true)
    }

    fn unclaim(
        &mut self,
        loc: &LocationKey,
        r: &str,
        event: &EntityEvent,
    ) -> Result<bool, StoreError> {
        let before = self.winning_body(r)?;
        self.bodies.set(keys::body(loc.as_str(), r), None);
        let slot = self.claims.get_mut(self.store, keys::claims(r))?;
        if let Some(claims) = slot {
            claims.remove(loc);
            if claims.claims.is_empty() {
                *slot = None;
            }
        }
        let after = self.winning_body(r)?;
        self.transition(r, before, after, event)?;
        Ok(true)
    }

    /// The served body of `r` goes from `before` to `after`: move its
    /// relation contributions, mark what must be re-derived, record history.
    fn transition(
        &mut self,
        r: &str,
        before: Option<ProcessedEntity>,
        after: Option<ProcessedEntity>,
        event: &EntityEvent,
    ) -> Result<(), StoreError> {
        if before == after {
            return Ok(());
        }
        let trigger = Trigger {
            cause: Cause {
                kind: CauseKind::Entity,
                event_id: Some(event.event_id),
                detail: event.location.to_string(),
            },
            at: event.observed_at,
        };
        // Only the relations that come or go move: a relation in both
        // bodies stays as it is, and the entity at its other end (a hub
        // that half the catalog depends on, a group of thousands) is not
        // re-read, re-derived or re-written for an edit elsewhere.
        let kept: HashSet<&proto::Relation> = match (&before, &after) {
            (Some(b), Some(a)) => {
                let ours: HashSet<&proto::Relation> = b.relations.iter().collect();
                a.relations.iter().filter(|x| ours.contains(x)).collect()
            }
            _ => HashSet::new(),
        };
        for rel in before.iter().flat_map(|b| &b.relations) {
            if !kept.contains(rel) {
                self.relation(rel, r, false, &trigger)?;
            }
        }
        for rel in after.iter().flat_map(|b| &b.relations) {
            if !kept.contains(rel) {
                self.relation(rel, r, true, &trigger)?;
            }
        }
        self.dirty.insert(r.to_string());
        self.causes.insert(r.to_string(), trigger);
        let change = match (&before, &after) {
            (None, _) => ChangeKind::Created,
            (_, None) => ChangeKind::Deleted,
            _ => ChangeKind::Updated,
        };
        let at_ms = event.observed_at.timestamp_millis();
        let by = match &event.outcome {
            LocationOutcome::EntityDeleted { by, .. } => by.clone(),
            _ => None,
        };
        self.feed.push(FeedRecord {
            at: event.observed_at,
            kind: FeedKind::of_entity(change),
            entity: Some(r.to_string()),
            location: event.location.clone(),
            source: event.source.clone(),
            event_id: event.event_id,
            by: by.clone(),
            errors: None,
            scorecard: None,
        });
        self.history.push((
            keys::history(r, at_ms, &event.event_id),
            HistoryRecord {
                at: event.observed_at,
                event_id: event.event_id,
                location: event.location.clone(),
                change,
                entity: after.map(|a| a.entity),
                by,
            },
        ));
        Ok(())
    }

    /// `emitter` adds or withdraws its emission of `rel`: the relation's row
    /// changes, and nothing else until [`Fold::finish`] (the entity at its
    /// source is not re-derived: its relations are stitched when read).
    fn relation(
        &mut self,
        rel: &proto::Relation,
        emitter: &str,
        add: bool,
        trigger: &Trigger,
    ) -> Result<(), StoreError> {
        let source = rel.source.key();
        let key = keys::relation(&source, rel.relation_type.as_str(), &rel.target.key());
        let slot = self.relations.get_mut(self.store, key.clone())?;
        let before = slot.clone();
        if add {
            slot.get_or_insert_with(|| RelationRow {
                relation_type: rel.relation_type,
                target: rel.target.clone(),
                emitters: BTreeSet::new(),
            })
            .emitters
            .insert(emitter.to_string());
        } else if let Some(row) = slot {
            row.emitters.remove(emitter);
            if row.emitters.is_empty() {
                *slot = None;
            }
        }
        self.relation_changes
            .entry(source.clone())
            .or_default()
            .entry(key)
            .or_insert(before);
        self.causes.insert(source, trigger.clone());
        Ok(())
    }

    /// Derives the served entities, search rows and facet counts of every
    /// touched ref and returns all changes as one write set.
    pub fn finish(mut self) -> Result<WriteSet, StoreError> {
        let mut out = WriteSet::new();
        let mut postings = crate::postings::Changes::default();
        let mut ordinals = crate::postings::Ordinals::new(self.store);
        let dirty = std::mem::take(&mut self.dirty);
        let mut served = Served::new();
        // What each dirty ref needs is gathered from the working set in
        // order; deriving it (serving JSON, etag, search rows) runs on all
        // cores; the results are merged back in ref order, so the write set
        // is the same however many threads there were.
        let mut jobs = Vec::with_capacity(dirty.len());
        for r in &dirty {
            let body = self.winning_body(r)?;
            // The served JSON as of the change's time, for reads `asOf`.
            let at = self.causes.get(r).map_or(0, |c| c.at.timestamp_millis());
            jobs.push(DeriveJob {
                r: r.clone(),
                at,
                body,
            });
        }
        // What became of each derived ref.
        let mut serving: HashMap<String, Serving> = HashMap::new();
        for d in derive_all(self.store, jobs)? {
            serving.insert(
                d.r.clone(),
                Serving {
                    was: d.was_served,
                    is: d.is_served,
                    version: d.served.as_ref().map(|(_, v)| (d.at, v.is_some())),
                    late: d.moves.is_some(),
                },
            );
            if let Some((r, _)) = &d.served {
                out.push((
                    keys::version(r, d.at),
                    Some(records::encode_version(d.served_bytes.as_deref())),
                ));
                // Whether the version just written is the latest and what
                // is served; unknown after a late one (see `derive`).
                let latest = d.latest.then(|| d.at.to_be_bytes().to_vec());
                out.push((keys::latest_version(r), latest));
            }
            out.extend(d.writes);
            // Ordinals are given in ref order (the jobs' order).
            if let Some((r, old, new)) = &d.rows {
                let ordinal = ordinals.of(r)?;
                // One merge of the rows moves both the live lists and,
                // when this version follows the last one kept, their history.
                let follows = d.moves.is_none();
                let history_at = follows.then_some(d.at);
                crate::postings::each_moved_value(old, new, &mut |k, v, casings| {
                    postings.set_and_record(k, v, ordinal, casings, history_at);
                });
            }
            if let (Some(moves), Some((r, _))) = (&d.moves, &d.served) {
                let ordinal = ordinals.of(r)?;
                for (at, old, new) in moves {
                    crate::temporal::diff(&mut postings, *at, ordinal, old, new);
                }
            }
            if let Some((r, v)) = d.served {
                served.insert(r, v);
            }
        }
        let links_changed =
            self.move_relations(&serving, &mut ordinals, &mut postings, &mut out)?;
        if !served.is_empty() || !self.relation_changes.is_empty() {
            self.stitch_served(&serving, &mut served)?;
        }
        // The posting lists, their history and the scorecards each read
        // what the store held before this batch and add writes of their
        // own tables: they run side by side, and their writes join `out`
        // in this fixed order.
        let store = self.store;
        let lists_of = move || -> Result<WriteSet, StoreError> {
            let mut lists = WriteSet::new();
            postings.write(store, &mut lists)?;
            Ok(lists)
        };
        let (lists, scores) = both(
            side_by_side(dirty.len()),
            lists_of,
            || -> Result<WriteSet, StoreError> {
                // Scorecard outcomes first: their changes join the feed
                // after the catalog changes that caused them.
                let mut scores = WriteSet::new();
                self.score.finish(
                    store,
                    &served,
                    &self.causes,
                    &links_changed,
                    &mut scores,
                    &mut self.feed,
                    self.score_parts,
                )?;
                feed::write(store, std::mem::take(&mut self.feed), &mut scores)?;
                Ok(scores)
            },
        );
        // A large batch's served JSON is hundreds of thousands of small
        // allocations: freed on a thread of its own, off the batch's path
        // to its write (2% of the fold's thread in a 100k replay).
        if side_by_side(served.len()) {
            std::thread::spawn(move || drop(served));
        }
        out.extend(lists?);
        ordinals.drain_into(&mut out);
        self.claims.drain_into(&mut out);
        self.bodies.drain_into(&mut out);
        self.locations.drain_into(&mut out);
        self.location_ids.drain_into(&mut out);
        self.relations.drain_into(&mut out);
        for (k, h) in self.history.drain(..) {
            out.push((k, Some(records::encode(&h))));
        }
        out.extend(scores?);
        Ok(out)
    }

    /// The row of a relation this working set changed (one of the keys of
    /// `relation_changes`), as it holds it now: loaded when it changed, so
    /// borrowed without a read.
    fn changed_row(&self, key: &[u8]) -> Option<&RelationRow> {
        self.relations
            .cached(key)
            .expect("a changed relation's row is in the working set")
            .as_ref()
    }

    /// Every relation row of `source`: as the store holds them (`now`:
    /// false), or as this working set leaves them.
    fn rows_of(&mut self, source: &str, now: bool) -> Result<Vec<RelationRow>, StoreError> {
        Ok(self
            .rows_of_many(std::slice::from_ref(&source.to_string()), now)?
            .pop()
            .unwrap_or_default())
    }

    /// [`Fold::rows_of`] of each of `sources`, in their order: one
    /// iterator for the lot (a batch serves thousands of new entities).
    fn rows_of_many(
        &mut self,
        sources: &[String],
        now: bool,
    ) -> Result<Vec<Vec<RelationRow>>, StoreError> {
        let mut order: Vec<usize> = (0..sources.len()).collect();
        order.sort_by(|a, b| sources[*a].cmp(&sources[*b]));
        let prefixes: Vec<Vec<u8>> = order
            .iter()
            .map(|i| keys::relations_of(&sources[*i]))
            .collect();
        let mut rows: Vec<BTreeMap<Vec<u8>, RelationRow>> = vec![BTreeMap::new(); sources.len()];
        let mut err = None;
        self.store.scan_each(&prefixes, &mut |j, k, v| {
            match records::decode::<RelationRow>(k, v) {
                Ok(row) => {
                    rows[order[j]].insert(k.to_vec(), row);
                }
                Err(e) => err = Some(e),
            }
            err.is_none()
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        if now {
            for (source, rows) in sources.iter().zip(rows.iter_mut()) {
                let Some(changes) = self.relation_changes.get(source) else {
                    continue;
                };
                for k in changes.keys() {
                    match self.changed_row(k) {
                        Some(row) => rows.insert(k.clone(), row.clone()),
                        None => rows.remove(k),
                    };
                }
            }
        }
        Ok(rows
            .into_iter()
            .map(|r| r.into_values().collect())
            .collect())
    }

    /// The relations of `source` as this working set leaves them, sorted.
    fn relations_of(&mut self, source: &str) -> Result<Vec<EntityRelation>, StoreError> {
        let rows = self.rows_of(source, true)?;
        Ok(sorted_relations(rows))
    }

    /// Moves the posting lists (and their history) of the relations of
    /// served entities, and keeps each relation's changes in `G`: for an
    /// entity served before and after, the rows that came or went; for one
    /// that starts or stops being served, all of its rows. Returns the
    /// groups and systems whose rollup link (a group's `childOf`, a
    /// system's domain) may have changed.
    fn move_relations(
        &mut self,
        serving: &HashMap<String, Serving>,
        ordinals: &mut crate::postings::Ordinals<'_>,
        postings: &mut crate::postings::Changes,
        out: &mut WriteSet,
    ) -> Result<BTreeSet<String>, StoreError> {
        let mut sources: BTreeSet<String> = self.relation_changes.keys().cloned().collect();
        sources.extend(
            serving
                .iter()
                .filter(|(_, s)| s.was != s.is || s.late)
                .map(|(r, _)| r.clone()),
        );
        // The rows of the sources that start being served: read at once.
        let starting: Vec<String> = sources
            .iter()
            .filter(|s| serving.get(*s).is_some_and(|s| !s.was && s.is))
            .cloned()
            .collect();
        let mut starting_rows: HashMap<String, Vec<RelationRow>> = starting
            .iter()
            .cloned()
            .zip(self.rows_of_many(&starting, true)?)
            .collect();
        let mut links_changed = BTreeSet::new();
        for source in sources {
            let derived = serving.get(&source);
            let (was, is) = match derived {
                Some(s) => (s.was, s.is),
                None => {
                    let served = self.store.get(&keys::entity(&source))?.is_some();
                    (served, served)
                }
            };
            // Everything moves at the time of the source's cause, the time
            // its served version is kept at.
            let at = self
                .causes
                .get(&source)
                .map_or(0, |c| c.at.timestamp_millis());
            // This batch's changes of each relation: (key, row before,
            // row from `at` on).
            let mut kept: Vec<(Vec<u8>, Option<RelationRow>, Option<RelationRow>)> = Vec::new();
            for (k, before) in self.relation_changes.get(&source).into_iter().flatten() {
                let now = self.changed_row(k);
                let same = match (before, now) {
                    (Some(a), Some(b)) => a.target == b.target,
                    (None, None) => true,
                    _ => false,
                };
                if !same {
                    out.push((
                        keys::relation_history(k, at),
                        Some(crate::relations::encode_change(now)),
                    ));
                    kept.push((k.clone(), before.clone(), now.cloned()));
                }
            }
            // Whether this moves the past: the source's versions or its
            // relations' history already hold something later than `at`
            // (a late change), so the lists' history is recomputed from
            // `at` on instead of recording one move. After a late change
            // the latest of that history may say otherwise than the rows
            // and serving do now, so a source once late is recomputed
            // whenever it changes (rare: late changes are).
            let mark = crate::relations::Mark::read(self.store, &source)?;
            let diverged = mark.is_some_and(|m| m.late);
            let version = derived.and_then(|s| s.version);
            let mut late = derived.is_some_and(|s| s.late) || diverged;
            if version.is_some() || !kept.is_empty() {
                late |= mark.is_some_and(|m| m.latest > at);
            }
            if !kept.is_empty() && version.is_none() {
                late |= match time_at(self.store, &keys::latest_version(&source))? {
                    Some(t) => t > at,
                    None => crate::temporal::has_versions(self.store, &source)?,
                };
            }
            if !kept.is_empty() || (late && !diverged) {
                let m = crate::relations::Mark {
                    latest: mark.map_or(at, |m| m.latest.max(at)),
                    changes: mark.map_or(0, |m| m.changes) + u64::from(!kept.is_empty()),
                    late,
                };
                out.push((keys::latest_relation(&source), Some(m.encode())));
            }
            // (row before, row after) of each of its relations, when the
            // source starts or stops being served: all of them move.
            let mut whole: Vec<(Option<RelationRow>, Option<RelationRow>)> = Vec::new();
            match (was, is) {
                (true, true) => {}
                (false, true) => {
                    let rows = match starting_rows.remove(&source) {
                        Some(rows) => rows,
                        None => self.rows_of(&source, true)?,
                    };
                    for row in rows {
                        whole.push((None, Some(row)));
                    }
                }
                (true, false) => {
                    for row in self.rows_of(&source, false)? {
                        whole.push((Some(row), None));
                    }
                }
                (false, false) => {}
            }
            // A source never served is in no list, then or now.
            let recompute =
                late && (version.is_some() || crate::temporal::has_versions(self.store, &source)?);
            // The relations that moved: those the batch changed, for a
            // source served before and after.
            let moved: Vec<(Option<&RelationRow>, Option<&RelationRow>)> = if was && is {
                kept.iter()
                    .map(|(_, b, n)| (b.as_ref(), n.as_ref()))
                    .collect()
            } else {
                whole
                    .iter()
                    .map(|(b, a)| (b.as_ref(), a.as_ref()))
                    .collect()
            };
            if moved.is_empty() && !recompute {
                continue;
            }
            let ordinal = ordinals.of(&source)?;
            for &(before, after) in &moved {
                let old: Vec<SearchRow> = before
                    .into_iter()
                    .filter_map(crate::relations::search_row)
                    .collect();
                let new: Vec<SearchRow> = after
                    .into_iter()
                    .filter_map(crate::relations::search_row)
                    .collect();
                let history_at = (!late).then_some(at);
                crate::postings::each_moved_value(&old, &new, &mut |k, v, casings| {
                    postings.set_and_record(k, v, ordinal, casings, history_at);
                });
                let row = before.or(after).expect("a row moved");
                if rollup_link(&source, row) {
                    links_changed.insert(source.clone());
                }
            }
            if recompute {
                relation_history_from(self.store, &source, ordinal, at, version, &kept, postings)?;
            }
        }
        Ok(links_changed)
    }

    /// Scorecards evaluate entities with their relations: the served JSON
    /// of what this batch derived gets them stitched, and an entity whose
    /// relations alone changed is handed over as changed too, when a
    /// scorecard reads relations of a type that changed. So a hub that
    /// gains a dependent (`dependencyOf`, which no scorecard reads) is
    /// neither stitched nor evaluated again; and nothing is stitched when
    /// no scorecard is defined.
    fn stitch_served(
        &mut self,
        serving: &HashMap<String, Serving>,
        served: &mut Served,
    ) -> Result<(), StoreError> {
        let read = self.score.relations_read(self.store)?;
        if read == crate::scorecard::lang::RelationsRead::Nothing {
            return Ok(());
        }
        let refs: Vec<String> = served
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(r, _)| r.clone())
            .collect();
        let rows = self.rows_of_many(&refs, true)?;
        for (r, rows) in refs.into_iter().zip(rows) {
            let relations = sorted_relations(rows);
            if let Some(Some(value)) = served.get_mut(&r)
                && !relations.is_empty()
            {
                let v = std::sync::Arc::make_mut(value);
                if let Some(map) = v.as_object_mut() {
                    map.insert(
                        "relations".into(),
                        serde_json::to_value(&relations).expect("relations serialise"),
                    );
                }
            }
        }
        let sources: Vec<String> = self.relation_changes.keys().cloned().collect();
        for source in sources {
            if served.contains_key(&source) || serving.contains_key(&source) {
                continue;
            }
            let any = self.relation_changes[&source].iter().any(|(k, before)| {
                let now = self.changed_row(k);
                now.is_some() != before.is_some()
                    && now
                        .or(before.as_ref())
                        .is_some_and(|row| read.reads(row.relation_type))
            });
            if !any {
                continue;
            }
            let Some(bytes) = self.store.get(&keys::entity(&source))? else {
                continue;
            };
            let relations = self.relations_of(&source)?;
            let value: serde_json::Value = serde_json::from_slice(&crate::relations::splice(
                bytes, &relations,
            ))
            .map_err(|e| StoreError::Corrupt {
                key: source.clone(),
                reason: e.to_string(),
            })?;
            served.insert(source, Some(std::sync::Arc::new(value)));
        }
        Ok(())
    }
}

/// Relation rows as an entity's relations, sorted.
fn sorted_relations(rows: Vec<RelationRow>) -> Vec<EntityRelation> {
    let mut out: Vec<EntityRelation> = rows
        .into_iter()
        .map(|row| EntityRelation {
            relation_type: row.relation_type,
            target_ref: row.target,
        })
        .collect();
    crate::relations::sort(&mut out);
    out
}

/// What deriving a ref did to its serving, for its relations.
struct Serving {
    was: bool,
    is: bool,
    /// The version written: its time and whether it serves the ref.
    version: Option<(i64, bool)>,
    /// Whether that version is a late one (earlier than one kept).
    late: bool,
}

/// The time (ms, BE) stored at `key`.
fn time_at(store: &dyn Store, key: &[u8]) -> Result<Option<i64>, StoreError> {
    match store.get(key)? {
        Some(b) => Ok(Some(i64::from_be_bytes(b.as_slice().try_into().map_err(
            |_| StoreError::Corrupt {
                key: String::from_utf8_lossy(key).into_owned(),
                reason: "a time that is not 8 bytes".into(),
            },
        )?))),
        None => Ok(None),
    }
}

/// Records again, from `from` on, the history of the posting lists of
/// `source`'s relations: a relation is in its list at `t` when the
/// source's version in force then serves it and the relation's last
/// change at or before `t` did not end it. Membership changes only at the
/// times of those versions and changes, so one change per relation at
/// each of them (from `from` on) makes the lists' history agree with the
/// versions and the relations' history, after a late change moved either.
/// `version` and `kept` are what this batch writes of them.
fn relation_history_from(
    store: &dyn Store,
    source: &str,
    ordinal: u32,
    from: i64,
    version: Option<(i64, bool)>,
    kept: &[(Vec<u8>, Option<RelationRow>, Option<RelationRow>)],
    history: &mut crate::postings::Changes,
) -> Result<(), StoreError> {
    let at = from;
    // The source's versions: time -> serves it.
    let mut versions: BTreeMap<i64, bool> = BTreeMap::new();
    crate::temporal::scan_versions(
        store,
        &keys::prefix(keys::VERSION, &[source.as_bytes()]),
        None,
        false,
        &mut |_, vs| {
            for (t, body) in vs {
                versions.insert(t, body.is_some());
            }
            Ok(true)
        },
    )?;
    if let Some((t, serves)) = version {
        versions.insert(t, serves);
    }
    if versions.is_empty() {
        // Never served: never in a list.
        return Ok(());
    }
    // Each relation's changes: key -> time -> row from then on; and the
    // relation itself (its target's casing), as any change names it.
    let mut relations: BTreeMap<Vec<u8>, BTreeMap<i64, Option<RelationRow>>> = BTreeMap::new();
    let mut named: HashMap<Vec<u8>, RelationRow> = HashMap::new();
    for (g, t, state) in crate::relations::history_of(store, source)? {
        if let Some(r) = &state {
            named.entry(g.clone()).or_insert_with(|| r.clone());
        }
        relations.entry(g).or_default().insert(t, state);
    }
    for (k, before, now) in kept {
        if let Some(r) = now.as_ref().or(before.as_ref()) {
            named.entry(k.clone()).or_insert_with(|| r.clone());
        }
        relations
            .entry(k.clone())
            .or_default()
            .insert(at, now.clone());
    }
    let served_at = |t: i64| versions.range(..=t).next_back().is_some_and(|(_, s)| *s);
    for (k, changes) in &relations {
        let Some(row) = named.get(k) else {
            continue;
        };
        let Some(search_row) = crate::relations::search_row(row) else {
            continue;
        };
        // Only at those times: every change a list's history holds for a
        // relation is at one of them, so a later recompute from an earlier
        // time overwrites them all (ties go to the later written).
        let mut times: BTreeSet<i64> = versions.range(at..).map(|(t, _)| *t).collect();
        times.extend(changes.range(at..).map(|(t, _)| *t));
        for t in times {
            let present = changes
                .range(..=t)
                .next_back()
                .is_some_and(|(_, r)| r.is_some());
            let member = served_at(t) && present;
            let (old, new) = if member {
                (Vec::new(), vec![search_row.clone()])
            } else {
                (vec![search_row.clone()], Vec::new())
            };
            crate::temporal::diff(history, t, ordinal, &old, &new);
        }
    }
    Ok(())
}

/// What deriving one dirty ref needs from the working set.
struct DeriveJob {
    r: String,
    /// The time of the change that made the ref dirty.
    at: i64,
    body: Option<ProcessedEntity>,
}

/// What deriving one ref produced.
struct Derived {
    r: String,
    /// Whether the ref was served before and is after.
    was_served: bool,
    is_served: bool,
    /// The time its served version is kept at.
    at: i64,
    /// How the posting lists' history moves, when this version does not
    /// simply follow the last one kept (a late version, or a store whose
    /// last version is not what is served): (time, rows before, rows
    /// after). `None`: as the live rows moved, at `at`.
    #[allow(clippy::type_complexity)]
    moves: Option<Vec<(i64, Vec<SearchRow>, Vec<SearchRow>)>>,
    writes: WriteSet,
    /// The ref's search rows before and after, when they changed.
    rows: Option<(String, Vec<SearchRow>, Vec<SearchRow>)>,
    served: Option<(String, Option<std::sync::Arc<serde_json::Value>>)>,
    /// The served JSON written (absent when the ref stopped being served).
    served_bytes: Option<Vec<u8>>,
    /// Whether the version written is the ref's latest (no later one is
    /// kept), hence what is served.
    latest: bool,
}

/// Whether a relation of `r` is what scorecard rollups group by: a
/// group's parent (`childOf`), a system's domain (`partOf` a domain).
fn rollup_link(r: &str, row: &RelationRow) -> bool {
    if r.starts_with("group:") {
        row.relation_type == proto::RelationType::ChildOf
    } else if r.starts_with("system:") {
        row.relation_type == proto::RelationType::PartOf && row.target.key().starts_with("domain:")
    } else {
        false
    }
}

/// Whether work over `n` refs is worth more than one thread: 256 refs or
/// more, on a machine with more than one core.
fn side_by_side(n: usize) -> bool {
    n >= 256 && std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get) > 1
}

/// Runs `a` and `b`, side by side when `apart` (on a second thread; the
/// caller's runs `a`).
fn both<A: Send, B: Send>(
    apart: bool,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if !apart {
        return (a(), b());
    }
    std::thread::scope(|scope| {
        let b = scope.spawn(b);
        let a = a();
        (a, b.join().expect("a fold thread panicked"))
    })
}

/// Derives every job, on up to 4 threads for a large batch, in job order.
fn derive_all(store: &dyn Store, jobs: Vec<DeriveJob>) -> Result<Vec<Derived>, StoreError> {
    let threads = if side_by_side(jobs.len()) {
        crate::cores()
    } else {
        1
    };
    crate::in_runs(jobs, threads, |chunk| {
        chunk.into_iter().map(|j| derive(store, j)).collect()
    })
}

/// The served JSON, uid and search rows of one ref, as changes against
/// the store (nothing when the served JSON is unchanged).
fn derive(store: &dyn Store, job: DeriveJob) -> Result<Derived, StoreError> {
    let DeriveJob { r, at, body } = job;
    let mut d = Derived {
        r: r.clone(),
        was_served: false,
        is_served: false,
        at,
        moves: None,
        writes: WriteSet::new(),
        rows: None,
        served: None,
        served_bytes: None,
        latest: true,
    };
    let entity_key = keys::entity(&r);
    let served_before = store.get(&entity_key)?;
    let served_after = body.map(|body| serve(&r, body));
    d.was_served = served_before.is_some();
    d.is_served = served_after.is_some();
    if served_before.as_deref() == served_after.as_ref().map(|(b, _)| b.as_slice()) {
        return Ok(d);
    }
    let rows_key = keys::search_rows(&r);
    let old_rows: SearchRows = match store.get(&rows_key)? {
        Some(bytes) => records::decode(&rows_key, &bytes)?,
        None => SearchRows::default(),
    };
    let uid = derived_id("entity", &r).to_string();
    let new_rows = match served_after {
        Some((bytes, value)) => {
            d.served_bytes = Some(bytes.clone());
            d.writes.push((entity_key, Some(bytes)));
            d.writes
                .push((keys::uid(&uid), Some(r.as_bytes().to_vec())));
            let rows = search::rows(&value);
            d.served = Some((r.clone(), Some(std::sync::Arc::new(value))));
            rows
        }
        None => {
            d.served = Some((r.clone(), None));
            d.writes.push((entity_key, None));
            d.writes.push((keys::uid(&uid), None));
            Vec::new()
        }
    };
    // The versions this one sits between: when it is the latest and the
    // one before is what was served, the history moves as the live rows
    // do; otherwise from the rows of the version before, and back to the
    // rows of the version after at its time.
    //
    // The common case is known without reading a version: the time of the
    // latest version is kept while that version is what is served, so a
    // change at or after it follows the served version. Reading the
    // versions around `at` instead costs an iterator per ref, and for an
    // entity with a large body (a hub with half a million relations) the
    // decompression of tens of megabytes per batch.
    let apart = match time_at(store, &keys::latest_version(&r))? {
        Some(t) if t <= at => None,
        _ => {
            let (before, after) = crate::temporal::neighbours(store, &r, at)?;
            let follows_served = after.is_none()
                && match &before {
                    Some((_, body)) => body.as_deref() == served_before.as_deref(),
                    None => served_before.is_none(),
                };
            (!follows_served).then_some((before, after))
        }
    };
    if let Some((before, after)) = apart {
        d.latest = after.is_none();
        let rows_of = |v: &Option<crate::temporal::Version>| -> Result<Vec<SearchRow>, StoreError> {
            match v {
                Some((_, Some(body))) => crate::temporal::rows_of(&r, body),
                _ => Ok(Vec::new()),
            }
        };
        let mut moves = vec![(at, rows_of(&before)?, new_rows.clone())];
        if let Some((next_at, _)) = &after {
            moves.push((*next_at, new_rows.clone(), rows_of(&after)?));
        }
        d.moves = Some(moves);
    }
    if old_rows.rows != new_rows {
        let rows_value =
            (!new_rows.is_empty()).then(|| records::encode(&records::SearchRowsOf(&new_rows)));
        d.writes.push((rows_key, rows_value));
        d.rows = Some((r, old_rows.rows, new_rows));
    }
    Ok(d)
}

/// The served JSON of `r`: the winner's entity with a uid derived from the
/// ref and an etag of the content. Its relations are rows of their own,
/// stitched in when it is read ([`crate::relations`]).
fn serve(r: &str, body: ProcessedEntity) -> (Vec<u8>, serde_json::Value) {
    let mut entity = body.entity;
    entity.relations = Vec::new();
    entity.metadata.uid = Some(derived_id("entity", r).to_string());
    entity.metadata.etag = None;
    let mut value = serde_json::to_value(&entity).expect("entities serialise");
    let unsigned = serde_json::to_vec(&value).expect("values serialise");
    let etag = hex::encode(&Sha256::digest(&unsigned)[..10]);
    if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.insert("etag".into(), serde_json::Value::String(etag));
    }
    let bytes = serde_json::to_vec(&value).expect("values serialise");
    (bytes, value)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::MemStore;
    use chrono::{TimeZone, Utc};
    use proto::{EntityRef, Relation, RelationType, SourceId};
    use uuid::Uuid;

    pub(crate) fn event(loc: &str, first_seen: i64, entities: Vec<ProcessedEntity>) -> EntityEvent {
        EntityEvent {
            event_id: Uuid::now_v7(),
            source: SourceId::new("t"),
            observed_at: Utc.timestamp_opt(1_700_000_000 + first_seen, 0).unwrap(),
            location: LocationKey::new(loc),
            origin: LocationKey::new("file:/root"),
            first_seen_at: Utc.timestamp_opt(first_seen, 0).unwrap(),
            observation_id: Uuid::now_v7(),
            outcome: LocationOutcome::Processed {
                entities,
                errors: vec![],
            },
        }
    }

    pub(crate) fn component(name: &str, owner: &str, loc: &str) -> ProcessedEntity {
        let entity: proto::Entity = serde_json::from_value(serde_json::json!({
            "apiVersion": "backstage.io/v1alpha1", "kind": "Component",
            "metadata": {"name": name, "namespace": "default",
                "annotations": {"backstage.io/managed-by-location": loc}},
            "spec": {"type": "service", "lifecycle": "production", "owner": owner}
        }))
        .unwrap();
        let me = entity.entity_ref();
        let group = EntityRef::new("group", "default", owner);
        ProcessedEntity {
            entity,
            relations: vec![
                Relation {
                    source: me.clone(),
                    relation_type: RelationType::OwnedBy,
                    target: group.clone(),
                },
                Relation {
                    source: group,
                    relation_type: RelationType::OwnerOf,
                    target: me,
                },
            ],
        }
    }

    /// A team with no parent, no children and no relations of its own.
    pub(crate) fn group(name: &str) -> ProcessedEntity {
        ProcessedEntity {
            entity: serde_json::from_value(serde_json::json!({
                "apiVersion": "backstage.io/v1alpha1", "kind": "Group",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"type": "team", "children": []}
            }))
            .unwrap(),
            relations: vec![],
        }
    }

    fn apply_all(store: &MemStore, events: &[EntityEvent]) -> usize {
        let mut fold = Fold::new(store);
        for e in events {
            fold.apply(e).unwrap();
        }
        let changes = fold.finish().unwrap();
        let n = changes.len();
        store.write(changes).unwrap();
        n
    }

    fn served(store: &MemStore, r: &str) -> Option<serde_json::Value> {
        store
            .get(&keys::entity(r))
            .unwrap()
            .map(|b| crate::relations::stitched(store, r, b).unwrap())
            .map(|b| serde_json::from_slice(&b).unwrap())
    }

    fn feed_after(store: &MemStore, after: u64) -> Vec<(u64, &'static str, Option<String>)> {
        let (entries, _) = feed::read(store, after, usize::MAX, usize::MAX, &mut |_| true).unwrap();
        entries
            .into_iter()
            .map(|e| (e.seq, e.record.kind.as_str(), e.record.entity))
            .collect()
    }

    #[test]
    fn an_edit_that_keeps_the_relations_leaves_the_other_ends_alone() {
        let store = MemStore::new();
        let (org, a) = ("file:/org/groups.yaml", "file:/org/a.yaml");
        apply_all(
            &store,
            &[
                event(org, 1, vec![group("team-a"), group("team-b")]),
                event(
                    a,
                    2,
                    vec![component("c1", "team-a", a), component("c2", "team-a", a)],
                ),
            ],
        );
        let owned = |r: &str| -> Vec<String> {
            let served = served(&store, r).unwrap();
            served["relations"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["type"] == "ownerOf")
                .map(|x| x["targetRef"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            owned("group:default/team-a"),
            vec!["component:default/c1", "component:default/c2"]
        );
        let team_a = [
            keys::entity("group:default/team-a"),
            keys::relation("group:default/team-a", "ownerOf", "component:default/c1"),
        ];

        // A new description: c1 is written again, its owner is not.
        let mut edited = component("c1", "team-a", a);
        edited.entity.metadata.description = Some("edited".into());
        let mut fold = Fold::new(&store);
        assert!(
            fold.apply(&event(a, 2, vec![edited, component("c2", "team-a", a)]))
                .unwrap()
        );
        let changes = fold.finish().unwrap();
        assert!(
            changes
                .iter()
                .any(|(k, _)| *k == keys::entity("component:default/c1"))
        );
        assert!(
            !changes.iter().any(|(k, _)| team_a.contains(k)),
            "the owner was re-derived for an edit that kept the relations"
        );
        store.write(changes).unwrap();
        assert_eq!(
            served(&store, "component:default/c1").unwrap()["metadata"]["description"],
            "edited"
        );

        // A new owner moves the relation: both groups are re-derived.
        let mut fold = Fold::new(&store);
        fold.apply(&event(
            a,
            2,
            vec![component("c1", "team-b", a), component("c2", "team-a", a)],
        ))
        .unwrap();
        let changes = fold.finish().unwrap();
        assert!(changes.iter().any(|(k, _)| team_a.contains(k)));
        store.write(changes).unwrap();
        assert_eq!(owned("group:default/team-a"), vec!["component:default/c2"]);
        assert_eq!(owned("group:default/team-b"), vec!["component:default/c1"]);
    }

    #[test]
    fn the_latest_version_time_is_kept_while_it_is_what_is_served() {
        let store = MemStore::new();
        let a = "file:/org/a.yaml";
        let c1 = "component:default/c1";
        let latest = |store: &MemStore| {
            store
                .get(&keys::latest_version(c1))
                .unwrap()
                .map(|b| i64::from_be_bytes(b.try_into().unwrap()))
        };
        let ms = |s: i64| (1_700_000_000 + s) * 1000;
        apply_all(&store, &[event(a, 10, vec![component("c1", "team-a", a)])]);
        assert_eq!(latest(&store), Some(ms(10)));
        // A later change follows the served version.
        apply_all(&store, &[event(a, 20, vec![component("c1", "team-b", a)])]);
        assert_eq!(latest(&store), Some(ms(20)));
        // A late one (observed before the latest version) is written between
        // the versions: the latest is no longer what is served, so the time
        // goes until a change follows again.
        apply_all(&store, &[event(a, 15, vec![component("c1", "team-c", a)])]);
        assert_eq!(latest(&store), None);
        let versions = |store: &MemStore| {
            let mut out = Vec::new();
            store
                .scan(
                    &keys::prefix(keys::VERSION, &[c1.as_bytes()]),
                    None,
                    &mut |k, _| {
                        out.push(keys::version_time(k).unwrap());
                        true
                    },
                )
                .unwrap();
            out
        };
        assert_eq!(versions(&store), vec![ms(10), ms(15), ms(20)]);
        apply_all(&store, &[event(a, 30, vec![component("c1", "team-a", a)])]);
        assert_eq!(latest(&store), Some(ms(30)));
        assert_eq!(versions(&store), vec![ms(10), ms(15), ms(20), ms(30)]);
    }

    #[test]
    fn the_feed_numbers_every_effective_change_in_commit_order() {
        let store = MemStore::new();
        let a = "file:/org/a.yaml";
        let c1 = "component:default/c1".to_string();
        let c2 = "component:default/c2".to_string();
        let first = event(
            a,
            1,
            vec![component("c1", "team-a", a), component("c2", "team-a", a)],
        );
        apply_all(&store, &[first]);
        assert_eq!(
            feed_after(&store, 0),
            vec![
                (1, "entity_created", Some(c1.clone())),
                (2, "entity_created", Some(c2.clone())),
                (3, "location_created", None),
            ]
        );
        assert_eq!(feed::last_seq(&store).unwrap(), 3);

        // c1 changes owner, c2 goes: one update, one deletion, the location.
        let second = event(a, 1, vec![component("c1", "team-b", a)]);
        let mut second_at = second.clone();
        second_at.observed_at = Utc.timestamp_opt(1_700_000_100, 0).unwrap();
        apply_all(&store, std::slice::from_ref(&second_at));
        assert_eq!(
            feed_after(&store, 3),
            vec![
                (4, "entity_updated", Some(c1.clone())),
                (5, "entity_deleted", Some(c2.clone())),
                (6, "location_updated", None),
            ]
        );
        // The same content again changes nothing, so the feed stays.
        let mut again = second_at.clone();
        again.event_id = Uuid::now_v7();
        assert_eq!(apply_all(&store, &[again]), 0);
        assert_eq!(feed::last_seq(&store).unwrap(), 6);

        // The bodies around the update and the deletion.
        let (entries, _) = feed::read(&store, 3, 10, 100, &mut |_| true).unwrap();
        let (before, after) = feed::bodies(&store, &entries[0].record).unwrap();
        let owner = |h: Option<HistoryRecord>| {
            h.and_then(|h| h.entity)
                .and_then(|e| e.spec)
                .and_then(|s| s.get("owner").cloned())
        };
        assert_eq!(owner(before), Some(serde_json::json!("team-a")));
        assert_eq!(owner(after), Some(serde_json::json!("team-b")));
        let (before, after) =
            feed::bodies::<crate::records::HistoryRecord>(&store, &entries[1].record).unwrap();
        assert!(before.unwrap().entity.is_some());
        assert!(
            after.unwrap().entity.is_none(),
            "a deletion's record has no body"
        );

        // Selection and budgets: only entity changes; stop after 2 read.
        let (only_entities, last) =
            feed::read(&store, 0, 10, 100, &mut |r| r.entity.is_some()).unwrap();
        assert_eq!(only_entities.len(), 4);
        assert_eq!(last, 6);
        let (budgeted, last) = feed::read(&store, 0, 10, 2, &mut |_| true).unwrap();
        assert_eq!((budgeted.len(), last), (2, 2));

        // The location goes: its entity, then itself.
        let mut gone = event(a, 1, vec![]);
        gone.outcome = LocationOutcome::Removed;
        apply_all(&store, &[gone]);
        assert_eq!(
            feed_after(&store, 6),
            vec![
                (7, "entity_deleted", Some(c1)),
                (8, "location_deleted", None)
            ]
        );
    }

    #[test]
    fn a_large_batch_derived_on_several_threads_writes_what_small_batches_write() {
        // 900 refs dirty in one batch take the parallel path; one event per
        // batch takes the sequential one. The stores must be identical.
        let events: Vec<EntityEvent> = (0..300)
            .map(|i| {
                let loc = format!("file:/repo/{i}.yaml");
                event(
                    &loc,
                    1_000 + i,
                    vec![
                        component(&format!("svc-{i}"), &format!("team-{}", i % 7), &loc),
                        component(&format!("lib-{i}"), &format!("team-{}", i % 5), &loc),
                    ],
                )
            })
            .collect();
        let one = MemStore::new();
        apply_all(&one, &events);
        let many = MemStore::new();
        for e in &events {
            apply_all(&many, std::slice::from_ref(e));
        }
        assert!(served(&one, "component:default/svc-299").is_some());
        // Entity ordinals follow the order each store met the refs in. The
        // relations' changes are kept per batch (at the time of their
        // source's last change in it), like the served versions.
        let state = |s: &MemStore| {
            let mut d = crate::postings::canonical(s.dump());
            d.retain(|k, _| ![keys::RELATION_HISTORY, keys::LATEST_RELATION].contains(&k[0]));
            d
        };
        assert_eq!(state(&one), state(&many));
    }

    #[test]
    fn creates_stitches_and_is_idempotent() {
        let store = MemStore::new();
        let ev = event(
            "file:/a.yaml",
            1,
            vec![component("pay", "team-a", "file:/a.yaml")],
        );
        assert!(apply_all(&store, std::slice::from_ref(&ev)) > 0);
        let e = served(&store, "component:default/pay").unwrap();
        assert_eq!(e["relations"][0]["type"], "ownedBy");
        assert_eq!(e["relations"][0]["targetRef"], "group:default/team-a");
        assert!(e["metadata"]["uid"].is_string() && e["metadata"]["etag"].is_string());
        // The group does not exist: its relation row waits for it.
        assert!(served(&store, "group:default/team-a").is_none());
        // The same event again writes nothing at all.
        let mut again = ev.clone();
        again.event_id = Uuid::now_v7();
        assert_eq!(apply_all(&store, &[again]), 0);
    }

    #[test]
    fn a_deleted_entity_stays_away_until_its_location_yields_it_again() {
        let store = MemStore::new();
        let loc = "file:/a.yaml";
        let ev = event(
            loc,
            1,
            vec![
                component("pay", "team-a", loc),
                component("web", "team-a", loc),
            ],
        );
        apply_all(&store, std::slice::from_ref(&ev));
        let mut del = ev.clone();
        del.event_id = Uuid::now_v7();
        del.outcome = LocationOutcome::EntityDeleted {
            entity: EntityRef::new("component", "default", "pay"),
            by: Some("ci".into()),
        };
        assert!(apply_all(&store, std::slice::from_ref(&del)) > 0);
        assert!(served(&store, "component:default/pay").is_none());
        assert!(served(&store, "component:default/web").is_some());
        let rec: LocationRecord =
            records::decode(b"l", &store.get(&keys::location(loc)).unwrap().unwrap()).unwrap();
        assert_eq!(rec.refs, vec!["component:default/web".to_string()]);
        // Deleting it again, or what the location never yielded, is nothing.
        assert_eq!(apply_all(&store, std::slice::from_ref(&del)), 0);
        let mut other = del.clone();
        other.outcome = LocationOutcome::EntityDeleted {
            entity: EntityRef::new("component", "default", "nope"),
            by: None,
        };
        assert_eq!(apply_all(&store, &[other]), 0);
        // The location's next event that yields it brings it back, equal to
        // what it was.
        let before = served(&store, "component:default/web");
        let mut again = ev.clone();
        again.event_id = Uuid::now_v7();
        assert!(apply_all(&store, &[again]) > 0);
        assert!(served(&store, "component:default/pay").is_some());
        assert_eq!(served(&store, "component:default/web"), before);
    }

    #[test]
    fn earliest_first_seen_wins_whatever_the_order() {
        let a = event(
            "file:/a.yaml",
            5,
            vec![component("pay", "team-a", "file:/a.yaml")],
        );
        let b = event(
            "file:/b.yaml",
            1,
            vec![component("pay", "team-b", "file:/b.yaml")],
        );
        let s1 = MemStore::new();
        apply_all(&s1, &[a.clone(), b.clone()]);
        let s2 = MemStore::new();
        apply_all(&s2, std::slice::from_ref(&b));
        apply_all(&s2, std::slice::from_ref(&a));
        let e1 = served(&s1, "component:default/pay").unwrap();
        assert_eq!(e1["spec"]["owner"], "team-b");
        assert_eq!(e1, served(&s2, "component:default/pay").unwrap());
        // Removing the winner promotes the other claim.
        let mut gone = b.clone();
        gone.outcome = LocationOutcome::Removed;
        apply_all(&s1, &[gone]);
        assert_eq!(
            served(&s1, "component:default/pay").unwrap()["spec"]["owner"],
            "team-a"
        );
    }

    #[test]
    fn facets_and_search_follow_changes() {
        let store = MemStore::new();
        apply_all(
            &store,
            &[
                event(
                    "file:/a.yaml",
                    1,
                    vec![component("a", "t1", "file:/a.yaml")],
                ),
                event(
                    "file:/b.yaml",
                    1,
                    vec![component("b", "t1", "file:/b.yaml")],
                ),
            ],
        );
        let count = |k: &str, v: &str| -> u64 { crate::postings::count(&store, k, v).unwrap() };
        assert_eq!(count("kind", "component"), 2);
        assert_eq!(count("relations.ownedby", "group:default/t1"), 2);
        apply_all(
            &store,
            &[event(
                "file:/b.yaml",
                1,
                vec![component("b", "t2", "file:/b.yaml")],
            )],
        );
        assert_eq!(count("relations.ownedby", "group:default/t1"), 1);
        assert_eq!(count("spec.owner", "t2"), 1);
        let mut gone = event("file:/a.yaml", 1, vec![]);
        gone.outcome = LocationOutcome::Removed;
        apply_all(&store, &[gone]);
        assert_eq!(count("kind", "component"), 1);
        let a = crate::postings::ordinal(&store, "component:default/a")
            .unwrap()
            .expect("a keeps its ordinal");
        assert!(
            !crate::postings::get(&store, "kind", "component")
                .unwrap()
                .members()
                .contains(a)
        );
    }

    #[test]
    fn cached_filter_answers_follow_writes() {
        let store = std::sync::Arc::new(MemStore::new());
        let catalog = crate::Catalog::new(store.clone());
        let filter = crate::EntityFilter::parse(&["kind=component".into()]).unwrap();
        apply_all(
            &store,
            &[event(
                "file:/a.yaml",
                1,
                vec![component("a", "t", "file:/a.yaml")],
            )],
        );
        assert_eq!(catalog.refs(filter.as_ref()).unwrap().len(), 1);
        assert_eq!(catalog.refs(filter.as_ref()).unwrap().len(), 1, "cached");
        apply_all(
            &store,
            &[event(
                "file:/b.yaml",
                1,
                vec![component("b", "t", "file:/b.yaml")],
            )],
        );
        assert_eq!(
            catalog.refs(filter.as_ref()).unwrap().len(),
            2,
            "a write invalidates"
        );
    }

    #[test]
    fn filter_evaluation_agrees_with_brute_force() {
        let store = std::sync::Arc::new(MemStore::new());
        let types = ["service", "website", "library"];
        let lifecycles = ["production", "experimental", "deprecated", "Production"];
        let events: Vec<EntityEvent> = (0..90)
            .map(|i| {
                let loc = format!("file:/c{i}.yaml");
                let mut pe = component(&format!("c{i}"), &format!("t{}", i % 4), &loc);
                let spec = pe.entity.spec.as_mut().unwrap();
                spec["type"] = types[i % 3].into();
                spec["lifecycle"] = lifecycles[i % 4].into();
                if i % 5 == 0 {
                    pe.entity.metadata.tags = vec![format!("tag{}", i % 2)];
                }
                event(&loc, 1, vec![pe])
            })
            .collect();
        apply_all(&store, &events);
        let catalog = crate::Catalog::new(store.clone());
        // Every served ref from the entity table itself, not the index.
        let all: Vec<String> = catalog
            .entities_after(None, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        assert_eq!(all.len(), 90);
        for filters in [
            vec!["kind=component,spec.type=service"],
            vec!["spec.type=website,metadata.name=c7", "metadata.name=c8"],
            vec!["spec.lifecycle=production,metadata.tags"],
            vec!["spec.lifecycle=experimental,spec.lifecycle=deprecated,spec.type=library"],
            vec!["relations.ownedby=group:default/t1,metadata.tags=tag0"],
            vec!["spec.type=nothing"],
        ] {
            let parsed = crate::EntityFilter::parse(
                &filters.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
            )
            .unwrap()
            .unwrap();
            let got = catalog.evaluate(Some(&parsed)).unwrap();
            let expected: Vec<String> = all
                .iter()
                .filter(|r| {
                    let rows = catalog.search_rows(r).unwrap().rows;
                    parsed.any_of.iter().any(|clause| {
                        clause.all_of.iter().all(|c| {
                            rows.iter().any(|row| {
                                row.key == c.key
                                    && (c.values.is_empty() || c.values.contains(&row.value))
                            })
                        })
                    })
                })
                .cloned()
                .collect();
            assert_eq!(got, expected, "{filters:?}");
            // Paged in ref order from the posting lists: forwards by ref,
            // by offset, and backwards from the end.
            let p = crate::Predicate::from_filter(&parsed);
            let mut paged: Vec<String> = Vec::new();
            loop {
                let start = match paged.last() {
                    Some(r) => crate::RefStart::After(r),
                    None => crate::RefStart::Offset(0),
                };
                let page = catalog.page_in_ref_order(Some(&p), start, 7).unwrap();
                assert_eq!((page.total, page.from), (expected.len(), paged.len()));
                let n = page.refs.len();
                paged.extend(page.refs);
                if n < 7 {
                    break;
                }
            }
            assert_eq!(paged, expected, "paged {filters:?}");
            let page = catalog
                .page_in_ref_order(Some(&p), crate::RefStart::Offset(3), 5)
                .unwrap();
            assert_eq!(
                page.refs,
                expected.iter().skip(3).take(5).cloned().collect::<Vec<_>>()
            );
            if let Some(last) = expected.last() {
                let page = catalog
                    .page_in_ref_order(Some(&p), crate::RefStart::Before(last), 4)
                    .unwrap();
                let before_last = &expected[..expected.len() - 1];
                assert_eq!(
                    page.refs,
                    before_last[before_last.len().saturating_sub(4)..]
                );
                assert_eq!(page.from, before_last.len().saturating_sub(4));
            }
            // The same selection as a predicate, and its complement.
            assert_eq!(catalog.evaluate_predicate(&p).unwrap(), expected);
            let not = crate::Predicate::Not(Box::new(p.clone()));
            let rest: Vec<String> = all
                .iter()
                .filter(|r| !expected.contains(r))
                .cloned()
                .collect();
            assert_eq!(
                catalog.evaluate_predicate(&not).unwrap(),
                rest,
                "not {filters:?}"
            );
            // Facet counts over the selection, against its rows.
            let facets = catalog
                .facets(&["spec.lifecycle".to_string()], Some(&parsed))
                .unwrap();
            let mut counted: BTreeMap<String, u64> = BTreeMap::new();
            for r in &expected {
                for row in catalog.search_rows(r).unwrap().rows {
                    if row.key == "spec.lifecycle" {
                        *counted.entry(row.value).or_default() += 1;
                    }
                }
            }
            let got: BTreeMap<String, u64> = facets["spec.lifecycle"]
                .iter()
                .map(|(v, n)| (v.to_lowercase(), *n))
                .collect();
            assert_eq!(got, counted, "facets of {filters:?}");
        }
        // A value written in two casings ("production", "Production")
        // shows in the casing of the first entity in ref order that has it.
        let all_lifecycles = catalog
            .facets(&["spec.lifecycle".to_string()], None)
            .unwrap();
        let first = all
            .iter()
            .find_map(|r| {
                catalog
                    .search_rows(r)
                    .unwrap()
                    .rows
                    .into_iter()
                    .find(|row| row.key == "spec.lifecycle" && row.value == "production")
                    .map(|row| row.original)
            })
            .unwrap();
        assert!(
            all_lifecycles["spec.lifecycle"].contains(&(first, 45)),
            "{all_lifecycles:?}"
        );
        let prefixed = catalog
            .evaluate_predicate(&crate::Predicate::Prefix {
                key: "metadata.name".into(),
                prefix: "c1".into(),
            })
            .unwrap();
        let expected: Vec<String> = all
            .iter()
            .filter(|r| r.starts_with("component:default/c1"))
            .cloned()
            .collect();
        assert_eq!(prefixed, expected);
    }
}
