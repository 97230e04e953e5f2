//! One result computed: an entity's checks evaluated as of its trigger,
//! exemptions applied, level and score derived, and what results group by
//! (owner groups, system, domain) read; and a scorecard evaluated for every
//! entity, reading the store by prefix scans.

use super::deps::{Dependency, Reads};
use super::results::Ready;
use super::subjects::{kind_of, targets};
use super::{Served, Trigger, get};
use crate::feed::FeedRecord;
use crate::fold::Table;
use crate::keys;
use crate::records as rec;
use crate::scorecard::lang::{self, Definition};
use crate::scorecard::records::{
    self as rk, CheckResult, CheckStatus, ExemptionSet, FactRecord, ResultRecord, Rollup,
};
use crate::store::{Store, StoreError, WriteSet};
use chrono::DateTime;
use proto::RelationType;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Whether a ref may be of a kind the definition applies to: a `kind`
/// condition is answered by the ref key itself, so entities of other kinds
/// are not even read.
pub(super) fn kind_filter(def: &Definition) -> impl Fn(&str) -> bool + use<> {
    let kinds = def.applies_to.kinds();
    move |r: &str| {
        let kind = r.split(':').next();
        kinds
            .as_ref()
            .is_none_or(|ks| ks.iter().any(|k| kind == Some(k.as_str())))
    }
}

/// Visits every stored entity that `wanted` keeps, in ref order, reading
/// the store in chunks (a scan merges level-0 files once; point lookups
/// would probe each of them), keeping none of it in the block cache.
pub(super) fn scan_entities(
    store: &dyn Store,
    wanted: &dyn Fn(&str) -> bool,
    visit: &mut dyn FnMut(String, Vec<u8>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    scan_entity_chunks(store, wanted, &mut |chunk| {
        for (r, body) in chunk {
            visit(r, body)?;
        }
        Ok(())
    })
}

/// Stored entities, each its ref and served JSON (relations included).
pub(super) type Chunk = Vec<(String, Vec<u8>)>;

/// [`scan_entities`] a chunk (of up to 2,048 entities) at a time.
pub(super) fn scan_entity_chunks(
    store: &dyn Store,
    wanted: &dyn Fn(&str) -> bool,
    visit: &mut dyn FnMut(Chunk) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut from: Option<Vec<u8>> = None;
    loop {
        let mut chunk: Vec<(String, Vec<u8>)> = Vec::new();
        let mut last = None;
        store.scan_once(&[keys::ENTITY], from.as_deref(), &mut |k, v| {
            last = Some(k.to_vec());
            if let Ok(r) = std::str::from_utf8(&k[1..])
                && wanted(r)
            {
                chunk.push((r.to_string(), v.to_vec()));
            }
            chunk.len() < 2048
        })?;
        let Some(mut next) = last else {
            return Ok(());
        };
        next.push(0);
        from = Some(next);
        // Their relations, stitched in: one scan for the chunk.
        let mut relations = match (chunk.first(), chunk.last()) {
            (Some((first, _)), Some((last, _))) => {
                crate::relations::json_of_range(store, first, last, true)?
            }
            _ => Default::default(),
        };
        let chunk = chunk
            .into_iter()
            .map(|(r, body)| {
                let body = match relations.remove(&r) {
                    Some(items) => crate::relations::splice_json(body, &items),
                    None => body,
                };
                (r, body)
            })
            .collect();
        visit(chunk)?;
    }
}

/// How a scorecard evaluated for every entity (a new or changed definition,
/// one that went away) is written: in parts of `results` results, each
/// written as soon as it is evaluated, without the batch's offsets.
/// A replay after a stop or a crash between parts evaluates the scorecard
/// again from its start, and a result a part already wrote is then
/// unchanged (no second history or feed record). The definition itself is
/// written last, with the batch, so a replay does evaluate again.
#[derive(Clone, Copy)]
pub struct Parts<'a> {
    pub results: usize,
    /// Checked between parts: set, the evaluation is given up
    /// ([`StoreError::Stopped`]).
    pub stop: &'a std::sync::atomic::AtomicBool,
}

/// The stored results of one scorecard, read in ref order a chunk at a
/// time alongside the entities (both are keyed by ref), so a full
/// evaluation never holds all of them. A result is read before the part
/// that rewrites it is written: parts only write results of refs already
/// passed.
pub(super) struct OldResults {
    prefix: Vec<u8>,
    from: Option<Vec<u8>>,
    chunk: std::collections::VecDeque<(String, Vec<u8>)>,
    done: bool,
}

impl OldResults {
    pub(super) fn new(prefix: Vec<u8>) -> Self {
        OldResults {
            prefix,
            from: None,
            chunk: Default::default(),
            done: false,
        }
    }

    /// The stored result of `r`, if any; results of refs before it (whose
    /// entities are gone, or of kinds no longer evaluated) go to `gone`.
    fn take(
        &mut self,
        store: &dyn Store,
        r: &str,
        gone: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        loop {
            if self.chunk.is_empty() {
                if self.done {
                    return Ok(None);
                }
                self.fill(store)?;
                continue;
            }
            match self.chunk[0].0.as_str().cmp(r) {
                std::cmp::Ordering::Less => gone.extend(self.chunk.pop_front()),
                std::cmp::Ordering::Equal => {
                    return Ok(self.chunk.pop_front().map(|(_, v)| v));
                }
                std::cmp::Ordering::Greater => return Ok(None),
            }
        }
    }

    /// Every stored result not taken yet, to `gone`.
    fn rest(
        &mut self,
        store: &dyn Store,
        gone: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<(), StoreError> {
        loop {
            let chunk = self.next_chunk(store)?;
            if chunk.is_empty() {
                return Ok(());
            }
            gone.extend(chunk);
        }
    }

    /// The next stored results not taken yet, up to a chunk of them (none:
    /// all were).
    pub(super) fn next_chunk(&mut self, store: &dyn Store) -> Result<Chunk, StoreError> {
        if self.chunk.is_empty() && !self.done {
            self.fill(store)?;
        }
        Ok(self.chunk.drain(..).collect())
    }

    fn fill(&mut self, store: &dyn Store) -> Result<(), StoreError> {
        const CHUNK: usize = 2048;
        let (prefix, chunk) = (&self.prefix, &mut self.chunk);
        let mut last = None;
        let mut read = 0;
        store.scan_once(prefix, self.from.as_deref(), &mut |k, v| {
            chunk.push_back((
                String::from_utf8_lossy(&k[prefix.len()..]).into_owned(),
                v.to_vec(),
            ));
            read += 1;
            if read == CHUNK {
                last = Some(k.to_vec());
            }
            read < CHUNK
        })?;
        match last {
            Some(mut next) => {
                next.push(0);
                self.from = Some(next);
            }
            None => self.done = true,
        }
        Ok(())
    }
}

/// What evaluations read often and keep: entities, facts, outcomes of
/// rules on related entities, parent groups and domains. A second set
/// serves a full evaluation's helper thread.
#[derive(Default)]
pub(super) struct Caches {
    pub(super) entities: HashMap<String, Option<Arc<Value>>>,
    /// The facts last read (several fact rules of one entity read them).
    pub(super) last_facts: Option<(String, Option<Arc<Value>>)>,
    /// Outcomes of rules on related entities, with what they read.
    pub(super) memo: HashMap<lang::Recall, (lang::Remembered, Vec<Dependency>)>,
    /// The parent group of a group, the domain of a system (their
    /// relation lists hold every owned entity or part: read them once).
    pub(super) parent: HashMap<String, Option<String>>,
    pub(super) domain: HashMap<String, Option<String>>,
}

pub(super) struct Evaluator<'a> {
    pub(super) store: &'a dyn Store,
    pub(super) served: &'a Served,
    /// The relation types the scorecards read: what is stitched into an
    /// entity read from the store (a group's thousands of `ownerOf` are
    /// not, unless a rule reads them).
    pub(super) relations: lang::RelationsRead,
    /// Facts and exemptions as this batch leaves them (changed ones are in
    /// the working set; others are read from the store, not kept).
    pub(super) facts: &'a Table<FactRecord>,
    pub(super) exemptions: &'a Table<ExemptionSet>,
    pub(super) caches: Caches,
    pub(super) rollups: HashMap<(String, String, String), Rollup>,
    /// A scorecard's stored exemptions, read at once for a full evaluation.
    pub(super) known_exemptions: Option<Arc<HashMap<String, ExemptionSet>>>,
    /// Results evaluated, and results whose outcome changed.
    pub(super) evaluated: u64,
    pub(super) changed: u64,
    /// Where each scorecard's stored result history ends, as read before
    /// this evaluator wrote any (never moved by its own writes: with
    /// [`Parts`], a history end written by one part must not make every
    /// later result read its history); the end this evaluator's `k` writes
    /// moved it to; and the newest history time it wrote per scorecard,
    /// not yet in a `k` write.
    pub(super) history_ends: HashMap<String, super::results::HistoryEnd>,
    pub(super) ends_written: HashMap<String, i64>,
    pub(super) newest_history: HashMap<String, i64>,
    /// Whole scorecards evaluated in parts (see [`Parts`]), and how many
    /// results the part being evaluated holds so far.
    pub(super) parts: Option<Parts<'a>>,
    pub(super) in_part: usize,
    pub(super) out: &'a mut WriteSet,
    /// Outcome changes, for the change feed.
    pub(super) feed: &'a mut Vec<FeedRecord>,
}

impl<'a> Evaluator<'a> {
    pub(super) fn new(
        store: &'a dyn Store,
        served: &'a Served,
        facts: &'a Table<FactRecord>,
        exemptions: &'a Table<ExemptionSet>,
        out: &'a mut WriteSet,
        feed: &'a mut Vec<FeedRecord>,
    ) -> Self {
        Evaluator {
            store,
            served,
            relations: lang::RelationsRead::All,
            facts,
            exemptions,
            caches: Caches::default(),
            rollups: HashMap::new(),
            known_exemptions: None,
            evaluated: 0,
            changed: 0,
            history_ends: HashMap::new(),
            ends_written: HashMap::new(),
            newest_history: HashMap::new(),
            parts: None,
            in_part: 0,
            out,
            feed,
        }
    }
}

impl Evaluator<'_> {
    /// An entity as this batch leaves it, not cached: what is evaluated is
    /// read once; [`Evaluator::entity`] caches the owners, systems and
    /// targets many entities read.
    pub(super) fn subject(&self, r: &str) -> Option<Arc<Value>> {
        if let Some(v) = self.served.get(r) {
            return v.clone();
        }
        self.store
            .get(&keys::entity(r))
            .ok()
            .flatten()
            .and_then(|b| {
                let relations = match &self.relations {
                    lang::RelationsRead::Types(types) => {
                        crate::relations::of_types(self.store, r, types.iter().copied())
                    }
                    _ => crate::relations::of(self.store, r),
                };
                relations
                    .ok()
                    .map(|rels| crate::relations::splice(b, &rels))
            })
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .map(Arc::new)
    }

    pub(super) fn entity(&mut self, r: &str) -> Option<Arc<Value>> {
        if let Some(v) = self.served.get(r) {
            return v.clone();
        }
        if let Some(v) = self.caches.entities.get(r) {
            return v.clone();
        }
        let v = self.subject(r);
        if self.caches.entities.len() > 10_000 {
            self.caches.entities.clear();
        }
        self.caches.entities.insert(r.to_string(), v.clone());
        v
    }

    /// The least target of `r`'s relations of type `t` (of kind `kind`,
    /// when given), as in [`Evaluator::entity`]'s JSON: a group's parent, a
    /// system's domain, which every result's rollup groups need. From the
    /// store, only the entity's presence and those relation rows are read,
    /// not its JSON and every relation type scorecards read (a seek per
    /// type, for each of thousands of groups in every batch of a replay).
    fn link(&mut self, r: &str, t: RelationType, kind: Option<&str>) -> Option<String> {
        let kept = |x: &String| kind.is_none_or(|k| kind_of(x) == k);
        let pick = |e: &Value| targets(e, t).filter(kept).min();
        if let Some(v) = self.served.get(r) {
            return v.as_deref().and_then(pick);
        }
        if let Some(v) = self.caches.entities.get(r) {
            return v.as_deref().and_then(pick);
        }
        self.store.get(&keys::entity(r)).ok()??;
        crate::relations::of_types(self.store, r, [t])
            .ok()?
            .iter()
            .map(|rel| rel.target_ref.to_string().to_ascii_lowercase())
            .filter(kept)
            .min()
    }

    pub(super) fn facts(&mut self, subject: &str) -> Option<Arc<Value>> {
        if let Some((s, v)) = &self.caches.last_facts
            && s == subject
        {
            return v.clone();
        }
        let v = match self.facts.cached(&rk::facts(subject)) {
            // Changed in this batch.
            Some(row) => row.as_ref().map(|f| Arc::new(f.facts.clone())),
            None => get::<FactRecord>(self.store, &rk::facts(subject))
                .ok()
                .flatten()
                .map(|f| Arc::new(f.facts)),
        };
        self.caches.last_facts = Some((subject.to_string(), v.clone()));
        v
    }

    /// The result of `def` for entity `r` as of the trigger's time.
    pub(super) fn evaluate(
        &mut self,
        def: &Definition,
        r: &str,
        entity: Option<&Value>,
        t: &Trigger,
    ) -> Result<Option<ResultRecord>, StoreError> {
        let Some(entity) = entity else {
            return Ok(None);
        };
        if !def.applies(entity) {
            return Ok(None);
        }
        self.evaluated += 1;
        let now = t.at;
        let mut reads = Reads {
            ev: self,
            deps: BTreeSet::new(),
            captures: Vec::new(),
        };
        let evaluation = def.evaluate(entity, &mut reads, now);
        // Owner and its parents, system and domain: what rollups group by.
        let owner = targets(entity, RelationType::OwnedBy).min();
        let mut groups = Vec::new();
        if let Some(owner) = owner {
            let mut next = Some(owner);
            while let Some(g) = next.take() {
                if groups.contains(&g) || groups.len() >= 32 {
                    break;
                }
                groups.push(g.clone());
                if kind_of(&g) == "group" {
                    reads.note(Dependency::Links(g.clone()));
                    next = match reads.ev.caches.parent.get(&g) {
                        Some(p) => p.clone(),
                        None => {
                            let p = reads.ev.link(&g, RelationType::ChildOf, None);
                            reads.ev.caches.parent.insert(g.clone(), p.clone());
                            p
                        }
                    };
                }
            }
        }
        let own_kind = entity
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        let system = if own_kind == "system" {
            None
        } else {
            targets(entity, RelationType::PartOf)
                .filter(|t| kind_of(t) == "system")
                .min()
        };
        let domain = if own_kind == "system" {
            targets(entity, RelationType::PartOf)
                .filter(|t| kind_of(t) == "domain")
                .min()
        } else {
            match &system {
                Some(s) => {
                    reads.note(Dependency::Links(s.clone()));
                    match reads.ev.caches.domain.get(s) {
                        Some(d) => d.clone(),
                        None => {
                            let d = reads.ev.link(s, RelationType::PartOf, Some("domain"));
                            reads.ev.caches.domain.insert(s.clone(), d.clone());
                            d
                        }
                    }
                }
                None => None,
            }
        };
        // Stored as text, in the order of the text (the enum sorts so too).
        let deps: Vec<String> = reads.deps.iter().map(Dependency::encode).collect();
        // Exemptions turn failing checks into exempt ones until they end.
        let key = rk::exemptions(&def.id, r);
        let exemptions = match (self.exemptions.cached(&key), &self.known_exemptions) {
            (Some(set), _) => set.clone().unwrap_or_default(),
            (None, Some(known)) => known.get(r).cloned().unwrap_or_default(),
            (None, None) => super::get::<ExemptionSet>(self.store, &key)?.unwrap_or_default(),
        };
        let mut next_change = evaluation.next_change;
        let mut checks = Vec::with_capacity(def.checks.len());
        for (check, outcome) in def.checks.iter().zip(evaluation.checks) {
            let mut result = CheckResult {
                status: if outcome.pass {
                    CheckStatus::Pass
                } else {
                    CheckStatus::Fail
                },
                value: outcome.value,
                reason: outcome.reason,
                exemption: None,
            };
            if !outcome.pass
                && let Some(x) = exemptions
                    .items
                    .iter()
                    .filter(|x| x.exemption.check == check.id && x.active(now))
                    .min_by_key(|x| x.exemption.id)
            {
                result.status = CheckStatus::Exempt;
                result.exemption = Some(x.exemption.id);
                if let Some(e) = x.exemption.expires_at {
                    next_change = Some(next_change.map_or(e, |n| n.min(e)));
                }
            }
            checks.push(result);
        }
        let passing = |c: &CheckResult| c.status != CheckStatus::Fail;
        let mut level = None;
        for l in 0..def.levels.len() {
            let ok = def
                .checks
                .iter()
                .zip(&checks)
                .filter(|(c, _)| c.level <= l)
                .all(|(_, r)| passing(r));
            if !ok {
                break;
            }
            level = Some(l);
        }
        let total: u64 = def.checks.iter().map(|c| u64::from(c.weight)).sum();
        let earned: u64 = def
            .checks
            .iter()
            .zip(&checks)
            .filter(|(_, r)| passing(r))
            .map(|(c, _)| u64::from(c.weight))
            .sum();
        // No checks: nothing to fail.
        let score = (earned * 100 + total / 2)
            .checked_div(total)
            .map_or(100, |s| s as u32);
        // Deadlines are kept in whole milliseconds, rounded up, so that
        // evaluating at the deadline sees the change.
        let next_change = next_change.map(|t| {
            let ms = t.timestamp_millis() + i64::from(t.timestamp_subsec_nanos() % 1_000_000 != 0);
            DateTime::from_timestamp_millis(ms).unwrap_or(t)
        });
        Ok(Some(ResultRecord {
            level,
            score,
            checks,
            groups,
            system,
            domain,
            deps,
            next_change,
        }))
    }

    /// Stores the result of a whole scorecard's evaluation of `r` against
    /// its stored one (`old`); rollups are rebuilt from the new results.
    fn store_whole(
        &mut self,
        def: &Definition,
        r: &str,
        old: Option<Vec<u8>>,
        new: Option<ResultRecord>,
        t: &Trigger,
    ) -> Result<(), StoreError> {
        let ready = Ready::make(def, r, old.as_deref(), new)?;
        self.store_ready(def, r, ready, t, false, None)?;
        self.part_done()
    }

    /// Stores a chunk's results made ready (in ref order).
    fn store_chunk(
        &mut self,
        def: &Definition,
        refs: Vec<String>,
        ready: Vec<Ready>,
        t: &Trigger,
    ) -> Result<(), StoreError> {
        // Usually every history record of the card is older than the
        // change: then no result's history is read.
        let tail = self
            .history_before(&def.id, t.at.timestamp_millis())?
            .then_some(None);
        for (r, x) in refs.iter().zip(ready) {
            self.store_ready(def, r, x, t, false, tail)?;
            self.part_done()?;
        }
        Ok(())
    }

    /// The results of `def` for a chunk of stored entities (ref and served
    /// JSON), each against its stored result (`olds`, in chunk order), made
    /// ready to store. `first` runs before this thread takes its share
    /// (storing the previous chunk, while the helper evaluates).
    ///
    /// With a second core, a helper thread with caches of its own
    /// (`helper`, kept from chunk to chunk) evaluates too, both taking
    /// slices of the chunk in turn until none is left: what an evaluation
    /// reads does not change while a scorecard is evaluated whole (storing
    /// writes results, their history and indexes, which no evaluation
    /// reads), so which thread and cache answers does not change a result.
    fn evaluate_chunk(
        &mut self,
        def: &Definition,
        chunk: &[(String, Vec<u8>)],
        olds: &[Option<Vec<u8>>],
        t: &Trigger,
        helper: &mut Caches,
        first: impl FnOnce(&mut Self) -> Result<(), StoreError>,
    ) -> Result<Vec<Ready>, StoreError> {
        const SLICE: usize = 64;
        let served = self.served;
        let one = |ev: &mut Evaluator<'_>, i: usize| {
            let (r, body) = &chunk[i];
            let entity = match served.get(r) {
                Some(v) => v.clone(),
                None => serde_json::from_slice::<Value>(body).ok().map(Arc::new),
            };
            let new = ev.evaluate(def, r, entity.as_deref(), t)?;
            Ready::make(def, r, olds[i].as_deref(), new)
        };
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        if chunk.len() < 256 || cores < 2 {
            first(self)?;
            return (0..chunk.len()).map(|i| one(self, i)).collect();
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let given_up = std::sync::atomic::AtomicBool::new(false);
        let take = |ev: &mut Evaluator<'_>| -> Result<Vec<(usize, Vec<Ready>)>, StoreError> {
            use std::sync::atomic::Ordering::Relaxed;
            let mut slices = Vec::new();
            while !given_up.load(Relaxed) {
                let from = next.fetch_add(SLICE, Relaxed);
                if from >= chunk.len() {
                    break;
                }
                let slice = (from..(from + SLICE).min(chunk.len()))
                    .map(|i| one(ev, i))
                    .collect::<Result<Vec<_>, _>>();
                match slice {
                    Ok(slice) => slices.push((from, slice)),
                    Err(e) => {
                        given_up.store(true, Relaxed);
                        return Err(e);
                    }
                }
            }
            Ok(slices)
        };
        let (mut out, mut feed) = (WriteSet::new(), Vec::new());
        let mut other = Evaluator::new(
            self.store,
            self.served,
            self.facts,
            self.exemptions,
            &mut out,
            &mut feed,
        );
        other.relations = self.relations.clone();
        other.known_exemptions = self.known_exemptions.clone();
        other.caches = std::mem::take(helper);
        let (mine, (theirs, evaluated, caches)) = std::thread::scope(|scope| {
            let other = scope.spawn(|| {
                let slices = take(&mut other);
                (slices, other.evaluated, other.caches)
            });
            let mine = match first(self) {
                Ok(()) => take(self),
                Err(e) => {
                    given_up.store(true, std::sync::atomic::Ordering::Relaxed);
                    Err(e)
                }
            };
            (mine, other.join().expect("an evaluation thread panicked"))
        });
        *helper = caches;
        self.evaluated += evaluated;
        let mut slices = mine?;
        slices.extend(theirs?);
        slices.sort_unstable_by_key(|(from, _)| *from);
        Ok(slices.into_iter().flat_map(|(_, slice)| slice).collect())
    }

    /// Runs `work`, which stores results of a whole scorecard: with
    /// [`Parts`], what the batch had written before (fact versions, due
    /// deadlines taken, the feed's catalog records) is set aside so that
    /// only results go out in parts, and comes back before what is left.
    pub(super) fn whole_scorecard(
        &mut self,
        work: impl FnOnce(&mut Self) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if self.parts.is_none() {
            return work(self);
        }
        let out = std::mem::take(self.out);
        let feed = std::mem::take(self.feed);
        self.in_part = 0;
        work(self)?;
        let rest = std::mem::replace(self.out, out);
        self.out.extend(rest);
        let rest = std::mem::replace(self.feed, feed);
        self.feed.extend(rest);
        Ok(())
    }

    /// One more result of a whole scorecard stored: with [`Parts`], a full
    /// part is written (its results, their indexes, history and feed
    /// records; rollups wait for the batch).
    pub(super) fn part_done(&mut self) -> Result<(), StoreError> {
        let Some(parts) = self.parts else {
            return Ok(());
        };
        self.in_part += 1;
        if self.in_part < parts.results.max(1) {
            return Ok(());
        }
        self.in_part = 0;
        if parts.stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(StoreError::Stopped);
        }
        let mut writes = std::mem::take(self.out);
        writes.extend(self.history_end_writes()?);
        crate::feed::write(self.store, std::mem::take(self.feed), &mut writes)?;
        if writes.is_empty() {
            return Ok(());
        }
        self.store.write(writes)
    }

    pub(super) fn reevaluate_all(
        &mut self,
        def: &Definition,
        t: &Trigger,
    ) -> Result<(), StoreError> {
        let wanted = kind_filter(def);
        // Everything is read by prefix scans (entities, old results, the
        // scorecard's exemptions), not point lookups: right after a bulk
        // load, a lookup probes every level-0 file, a scan merges them once.
        let mut old = OldResults::new(keys::prefix(rk::RESULT, &[def.id.as_bytes()]));
        let ep = keys::prefix(rk::EXEMPTIONS, &[def.id.as_bytes()]);
        let mut exempt: HashMap<String, ExemptionSet> = HashMap::new();
        let mut bad = None;
        self.store.scan(&ep, None, &mut |k, v| {
            match rec::decode(k, v) {
                Ok(x) => {
                    exempt.insert(String::from_utf8_lossy(&k[ep.len()..]).into_owned(), x);
                }
                Err(e) => bad = Some(e),
            }
            true
        })?;
        if let Some(e) = bad {
            return Err(e);
        }
        self.known_exemptions = Some(Arc::new(exempt));
        let mut pending: Vec<String> = self.served.keys().filter(|r| wanted(r)).cloned().collect();
        pending.sort();
        // Results with no entity in the store to go with them: of entities
        // gone, of kinds no longer evaluated, or of entities this batch
        // creates.
        let mut unmatched = Vec::new();
        let mut helper = Caches::default();
        self.whole_scorecard(|ev| {
            // Each chunk's results are stored while the next is evaluated.
            let mut evaluated: Option<(Vec<String>, Vec<Ready>)> = None;
            scan_entity_chunks(ev.store, &wanted, &mut |chunk| {
                let olds = chunk
                    .iter()
                    .map(|(r, _)| old.take(ev.store, r, &mut unmatched))
                    .collect::<Result<Vec<_>, _>>()?;
                let before = evaluated.take();
                let ready =
                    ev.evaluate_chunk(def, &chunk, &olds, t, &mut helper, |ev| match before {
                        Some((refs, ready)) => ev.store_chunk(def, refs, ready, t),
                        None => Ok(()),
                    })?;
                evaluated = Some((chunk.into_iter().map(|(r, _)| r).collect(), ready));
                Ok(())
            })?;
            if let Some((refs, ready)) = evaluated.take() {
                ev.store_chunk(def, refs, ready, t)?;
            }
            old.rest(ev.store, &mut unmatched)?;
            let mut unmatched: BTreeMap<String, Vec<u8>> = unmatched.into_iter().collect();
            // Entities created in this batch are not in the store yet.
            for r in pending {
                if ev.store.get(&keys::entity(&r))?.is_none() {
                    let entity = ev.served.get(&r).cloned().flatten();
                    let new = ev.evaluate(def, &r, entity.as_deref(), t)?;
                    ev.store_whole(def, &r, unmatched.remove(&r), new, t)?;
                }
            }
            // Results of entities that are gone.
            for (r, bytes) in unmatched {
                let before = ResultRecord::decode(&rk::result(&def.id, &r), &bytes)?;
                ev.store_result(def, &r, Some(before), None, t, false)?;
                ev.part_done()?;
            }
            Ok(())
        })?;
        self.known_exemptions = None;
        Ok(())
    }
}
