//! The projector stage: read the entity topic from the offsets stored with
//! the state, fold batches, and write each batch's state and offsets in one
//! write (exactly-once effect without transactions).

use crate::fold::{Fold, Parts, Yield};
use crate::keys;
use crate::metrics as m;
use crate::read::Catalog;
use crate::store::{Store, StoreError};
use eventlog::lag::LagGauge;
use eventlog::{EventLog, LogError, Record};
use proto::envelope::Versioned;
use proto::topics::MessageType;
use proto::{DeadLetter, FactEvent, RawEntityEvent, ScorecardChange, ScorecardEvent, topics};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Projector settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectorConfig {
    /// Most events folded into one write batch.
    pub batch_max: usize,
    /// Most bytes of events read into one batch (a batch takes at least
    /// one event, whatever its size).
    pub batch_max_bytes: usize,
    /// An event touching more refs than this (a location yielding, or
    /// having yielded, that many entities) is applied in parts of this many
    /// refs, each written on its own: memory stays bounded and the
    /// location's entities show up as they are applied.
    pub part_entities: usize,
    /// RocksDB block cache, MiB.
    pub cache_mb: usize,
    /// Days the change feed keeps its records (`None`: forever). History
    /// used by `asOf` and the metrics is kept regardless.
    pub feed_retention_days: Option<u32>,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        ProjectorConfig {
            batch_max: 5_000,
            batch_max_bytes: 64 << 20,
            part_entities: 5_000,
            cache_mb: 256,
            feed_retention_days: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectorError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `/readyz` and `/metrics` need to know of a running projector.
#[derive(Debug, Default)]
pub struct Status {
    inner: Mutex<StatusInner>,
}

#[derive(Debug, Default, Clone)]
struct StatusInner {
    applied: BTreeMap<u32, i64>,
    ends: Vec<i64>,
    known: bool,
    /// Why the end offsets are not known (the broker is away).
    unknown_because: Option<String>,
}

impl Status {
    /// Messages not yet applied, once the log's end offsets are known.
    pub fn lag(&self) -> Option<i64> {
        let s = self.inner.lock().expect("lock");
        s.known.then(|| {
            s.ends
                .iter()
                .enumerate()
                .map(|(p, end)| (end - s.applied.get(&(p as u32)).copied().unwrap_or(0)).max(0))
                .sum()
        })
    }

    /// The lag, or why it is not known (for `/readyz`).
    pub fn lag_or_reason(&self) -> Result<i64, String> {
        if let Some(lag) = self.lag() {
            return Ok(lag);
        }
        let s = self.inner.lock().expect("lock");
        Err(s
            .unknown_because
            .clone()
            .unwrap_or_else(|| "the log's end offsets are not known yet".to_owned()))
    }

    /// The log's end offsets, per partition.
    pub fn set_ends(&self, ends: Vec<i64>) {
        let mut s = self.inner.lock().expect("lock");
        s.ends = ends;
        s.known = true;
        s.unknown_because = None;
    }

    /// The end offsets could not be read: the lag is unknown until they
    /// can (the projections still answer, as of what was applied).
    pub fn set_unknown(&self, why: String) {
        let mut s = self.inner.lock().expect("lock");
        s.known = false;
        s.unknown_because = Some(why);
    }

    /// The next offset to apply of partition `p`.
    pub fn set_applied(&self, p: u32, next: i64) {
        self.inner.lock().expect("lock").applied.insert(p, next);
    }
}

/// The topics the projector folds: entities, facts, and scorecard
/// definitions and exemptions.
pub const INPUTS: [&str; 3] = [topics::ENTITIES, topics::FACTS, topics::SCORECARDS];

/// How often results whose time-bound rules or exemptions came due are
/// re-evaluated.
const DUE_EVERY: Duration = Duration::from_secs(1);

/// Runs until `stop` is set. Partitions start at the offsets in the store.
pub fn run(
    log: Arc<dyn EventLog>,
    store: Arc<dyn Store>,
    cfg: &ProjectorConfig,
    status: Arc<Status>,
    stop: Arc<AtomicBool>,
) -> Result<(), ProjectorError> {
    m::describe();
    let cleared = crate::relations::ensure_layout(store.as_ref())?;
    if cleared > 0 {
        tracing::warn!(
            keys = cleared,
            "the projections were written by an older layout (relations inside the served JSON); rebuilding them from the start of the logs"
        );
    }
    let marked = crate::scorecard::step::complete_depended_markers(store.as_ref())?;
    if marked > 0 {
        tracing::info!(
            dependencies = marked,
            "marked the scorecard dependencies of an older store"
        );
    }
    let ended = crate::scorecard::step::complete_history_ends(store.as_ref())?;
    if ended > 0 {
        tracing::info!(
            scorecards = ended,
            "recorded where the scorecard result histories of an older store end"
        );
    }
    let indexed = crate::postings::upgrade(store.as_ref())?;
    if indexed > 0 {
        tracing::info!(
            entities = indexed,
            "built the posting lists of an older store from its search rows"
        );
    }
    let Some(versioned) = crate::temporal::upgrade_until(store.as_ref(), &|| {
        stop.load(std::sync::atomic::Ordering::SeqCst)
    })?
    else {
        tracing::info!(
            "stopped while building the posting lists' history; the next start goes on from there"
        );
        return Ok(());
    };
    if versioned > 0 {
        tracing::info!(
            entities = versioned,
            "built the posting lists' history of an older store from its served versions"
        );
    }
    let stored = Catalog::new(store.clone()).offsets()?;
    let mut readers = Vec::new();
    for topic in INPUTS {
        let partitions = log.partitions(topic)?;
        let starts: Vec<(u32, i64)> = (0..partitions)
            .map(|p| {
                let off = stored.get(&(topic.to_string(), p)).copied().unwrap_or(0);
                if topic == topics::ENTITIES {
                    status.set_applied(p, off);
                }
                (p, off)
            })
            .collect();
        tracing::info!(topic, ?starts, log = %log.describe(), "projector starting");
        readers.push(log.assign(topic, &starts)?);
    }
    let mut lags: Vec<LagGauge> = INPUTS
        .iter()
        .map(|t| LagGauge::new("projector", t))
        .collect();
    let mut pending_offsets: Offsets = BTreeMap::new();
    let mut last_ends = Instant::now() - Duration::from_secs(60);
    let mut last_offset_flush = Instant::now();
    let mut last_due = Instant::now() - DUE_EVERY;
    while !stop.load(Ordering::Relaxed) {
        // The entity log's gauge is set from the end offsets read for the
        // status below (INPUTS[0] is the entity log), not read again.
        for (gauge, reader) in lags.iter_mut().zip(readers.iter_mut()).skip(1) {
            gauge.tick(log.as_ref(), reader.as_mut());
        }
        if last_due.elapsed() >= DUE_EVERY {
            apply_due(store.as_ref(), chrono::Utc::now())?;
            if let Some(days) = cfg.feed_retention_days {
                let before = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
                crate::feed::prune(store.as_ref(), before, 10_000)?;
            }
            last_due = Instant::now();
        }
        if last_ends.elapsed() > Duration::from_millis(500) {
            match log.end_offsets(topics::ENTITIES) {
                Ok(ends) => {
                    if let Ok(positions) = readers[0].positions() {
                        lags[0].set(&positions, &ends);
                    }
                    status.set_ends(ends);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read end offsets");
                    status.set_unknown(format!("cannot read the entity log's end offsets: {e}"));
                }
            }
            last_ends = Instant::now();
            if let Some(lag) = status.lag() {
                metrics::gauge!(m::LAG).set(lag as f64);
            }
        }
        // Entities first (the bulk); facts and scorecard events in the same
        // batch, so one write holds all three topics' offsets.
        let mut batch = Vec::new();
        let mut bytes = 0usize;
        for (i, reader) in readers.iter_mut().enumerate() {
            let wait = if i == 0 {
                Duration::from_millis(50)
            } else {
                Duration::ZERO
            };
            let mut got = reader.poll(wait)?;
            while !got.is_empty()
                && batch.len() + got.len() < cfg.batch_max
                && bytes < cfg.batch_max_bytes
            {
                bytes += got.iter().map(|r| r.value.len()).sum::<usize>();
                batch.extend(got);
                got = reader.poll(Duration::ZERO)?;
            }
            batch.extend(got);
        }
        if batch.is_empty() {
            // Offsets of events that changed nothing are kept in memory and
            // written now and then: replaying them is harmless.
            if !pending_offsets.is_empty() && last_offset_flush.elapsed() > Duration::from_secs(5) {
                store.write(offset_writes(&pending_offsets))?;
                pending_offsets.clear();
                last_offset_flush = Instant::now();
            }
            continue;
        }
        let started = Instant::now();
        let changed = match apply_batch(
            log.as_ref(),
            store.as_ref(),
            &batch,
            &mut pending_offsets,
            cfg.part_entities,
            &stop,
        )? {
            Applied::Changed => true,
            Applied::Unchanged => false,
            Applied::Abandoned => {
                // Stopping mid-batch: what was not written is folded again
                // after a restart.
                tracing::info!(
                    events = batch.len(),
                    "stopping: the batch in flight is abandoned"
                );
                break;
            }
        };
        for ((topic, p), off) in &pending_offsets {
            if topic == topics::ENTITIES {
                status.set_applied(*p, *off);
            }
        }
        if changed {
            pending_offsets.clear();
            last_offset_flush = Instant::now();
        }
        metrics::histogram!(m::BATCH_SECONDS).record(started.elapsed().as_secs_f64());
    }
    if !pending_offsets.is_empty() {
        store.write(offset_writes(&pending_offsets))?;
    }
    tracing::info!("projector stopped");
    Ok(())
}

/// Next offset to apply per (topic, partition).
pub type Offsets = BTreeMap<(String, u32), i64>;

fn offset_writes(offsets: &Offsets) -> crate::store::WriteSet {
    offsets
        .iter()
        .map(|((topic, p), off)| (keys::offset(topic, *p), Some(off.to_be_bytes().to_vec())))
        .collect()
}

/// Re-evaluates scorecard results whose time-bound rules or exemptions
/// came due by `now`. Returns how many were due.
pub fn apply_due(
    store: &dyn Store,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, ProjectorError> {
    let mut fold = Fold::new(store);
    let n = fold.due(now)?;
    if n > 0 {
        store.write(fold.finish()?)?;
    }
    Ok(n)
}

/// What [`apply_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The batch's changes and offsets were written.
    Changed,
    /// Nothing changed; the offsets stay in the caller's map, to be written
    /// with a later batch.
    Unchanged,
    /// `stop` was set before the batch was written whole: the offsets map
    /// holds only what was written (events before a large one, see
    /// [`Parts`]), the rest is folded again after a restart.
    Abandoned,
}

/// How many relation rows a part of a large event may move into or out of
/// the posting lists at once, per ref of `part_entities` (see
/// [`Parts::part_end`]): 100k at the default `part_entities`.
pub const PART_ROWS_PER_REF: usize = 20;

/// The store's read cache lending memory to a batch that folds a large
/// entity event whole, for as long as this lives ([`Store::lend_cache`]).
/// Such a batch is the projector's peak: in a 1M rebuild, folding the
/// Location that lists 544k targets took the process from 1.2 GB to
/// 2.0 GB for a few seconds (its changes to 1.09M posting lists and their
/// history, then their writes), while the block cache held some 200 MB of
/// blocks that can be read again. Lent, the cache keeps a quarter of its
/// size; the fold of a large record reads little that a later batch needs
/// again.
struct CacheLoan<'a>(&'a dyn Store);

impl<'a> CacheLoan<'a> {
    fn new(store: &'a dyn Store) -> Self {
        store.lend_cache(true);
        CacheLoan(store)
    }
}

impl Drop for CacheLoan<'_> {
    fn drop(&mut self) {
        self.0.lend_cache(false);
    }
}

/// Writes what a batch folded before an event applied on its own (a large
/// location, a scorecard's definitions), with the offsets up to that
/// event, so that the event is computed against a store that holds it;
/// `durable` becomes those offsets. Returns whether it wrote.
fn write_before(
    fold: Fold<'_>,
    store: &dyn Store,
    offsets: &Offsets,
    durable: &mut Offsets,
) -> Result<bool, ProjectorError> {
    let mut before = fold.finish()?;
    if before.is_empty() && offsets == durable {
        return Ok(false);
    }
    before.extend(offset_writes(offsets));
    store.write(before)?;
    *durable = offsets.clone();
    Ok(true)
}

/// Folds one batch and writes its changes together with its offsets,
/// unless `stop` is set on the way (a large batch may take seconds, and a
/// service must stop within a few).
///
/// An entity event touching more than `part_entities` refs is applied in
/// parts: what the batch folded before it is written first (with the
/// offsets up to it), then each part on its own, then the location's
/// record with the rest of the batch and the offsets past it. A stop or a
/// crash between parts leaves a store that holds some of the event's
/// effect and offsets before it; the event is then applied again whole,
/// which changes nothing for the parts already written.
pub fn apply_batch(
    log: &dyn EventLog,
    store: &dyn Store,
    batch: &[Record],
    offsets: &mut Offsets,
    part_entities: usize,
    stop: &AtomicBool,
) -> Result<Applied, ProjectorError> {
    let mut fold = Fold::new(store);
    // The offsets as the store holds them, or as the caller keeps them.
    let mut durable = offsets.clone();
    let mut wrote = false;
    // The permit of the batch's first large record (see `eventlog::large`)
    // is held until the batch is written: much of a record's working set
    // is made only by `Fold::finish` (a Location listing 544k targets
    // changes as many posting lists there, 0.6 GB at once), and the
    // processor must not work on a large record meanwhile. Once held, it
    // covers the batch's other large records too.
    let mut large: Option<eventlog::large::LargePermit> = None;
    // From the first large entity event folded whole (not in parts, whose
    // working sets are bounded), the store's read cache lends most of its
    // memory to the batch until it is written (see `CacheLoan`).
    let mut loan: Option<CacheLoan<'_>> = None;
    for rec in batch {
        if stop.load(Ordering::Relaxed) {
            *offsets = durable;
            return Ok(Applied::Abandoned);
        }
        if large.is_none() {
            let Some(permit) = eventlog::large::permit(rec.value.len(), stop) else {
                *offsets = durable;
                return Ok(Applied::Abandoned);
            };
            if permit.held() {
                large = Some(permit);
            }
        }
        metrics::counter!(m::EVENTS).increment(1);
        let applied = match topics::Topic::named(&rec.topic).map(|t| t.message) {
            Some(MessageType::FactEvent) => FactEvent::decode(&rec.value)
                .map_err(|e| e.to_string())
                .map(|ev| fold.apply_facts(&ev).map_err(ProjectorError::from)),
            Some(MessageType::ScorecardEvent) => match ScorecardEvent::decode(&rec.value) {
                Err(e) => Err(e.to_string()),
                // Definitions may mean evaluating a scorecard for every
                // entity: folded alone, after the batch before them is
                // written (with the offsets up to them), their results are
                // written in parts; their own record and the offsets past
                // them come last.
                Ok(ev) if matches!(ev.change, ScorecardChange::DefinitionsPublished { .. }) => {
                    let done = std::mem::replace(&mut fold, Fold::new(store));
                    write_before(done, store, offsets, &mut durable)?;
                    let mut alone = Fold::new(store);
                    alone.evaluate_in_parts(part_entities.max(1), stop);
                    let changed = alone.apply_scorecard(&ev)?;
                    let mut writes = match alone.finish() {
                        Err(StoreError::Stopped) => {
                            *offsets = durable;
                            return Ok(Applied::Abandoned);
                        }
                        other => other?,
                    };
                    offsets.insert((rec.topic.clone(), rec.partition), rec.next);
                    writes.extend(offset_writes(offsets));
                    store.write(writes)?;
                    durable = offsets.clone();
                    wrote = true;
                    Ok(Ok(changed))
                }
                Ok(ev) => Ok(fold.apply_scorecard(&ev).map_err(ProjectorError::from)),
            },
            // Entities stay encoded until the event's size is known: a
            // large one is decoded one part at a time.
            Some(MessageType::EntityEvent) => match RawEntityEvent::decode(&rec.value) {
                Err(e) => Err(e.to_string()),
                Ok(raw) if fold.touches(&raw)? > part_entities.max(1) => match Yield::new(raw) {
                    Err(e) => Err(e.to_string()),
                    Ok(yielded) => {
                        // Everything before this event is written first, so
                        // its parts are computed against a store that holds
                        // it.
                        let done = std::mem::replace(&mut fold, Fold::new(store));
                        wrote |= write_before(done, store, offsets, &mut durable)?;
                        let parts = Parts::new(store, yielded)?;
                        let mut changed = false;
                        let (mut start, mut count) = (0, 0);
                        let rows = part_entities.max(1).saturating_mul(PART_ROWS_PER_REF);
                        while start < parts.touched().len() {
                            if stop.load(Ordering::Relaxed) {
                                *offsets = durable;
                                return Ok(Applied::Abandoned);
                            }
                            let end = parts.part_end(store, start, part_entities.max(1), rows)?;
                            let mut part = Fold::new(store);
                            changed |= part.apply_part(&parts, &parts.touched()[start..end])?;
                            let writes = part.finish()?;
                            if !writes.is_empty() {
                                store.write(writes)?;
                                wrote = true;
                            }
                            start = end;
                            count += 1;
                        }
                        tracing::debug!(
                            location = %String::from_utf8_lossy(&rec.key), refs = parts.touched().len(),
                            parts = count, "applied an event in parts"
                        );
                        Ok(fold
                            .apply_location(parts)
                            .map(|c| c || changed)
                            .map_err(ProjectorError::from))
                    }
                },
                Ok(raw) => match raw.into_event() {
                    Err(e) => Err(e.to_string()),
                    Ok(ev) => {
                        if loan.is_none() && eventlog::large::is_large(rec.value.len()) {
                            loan = Some(CacheLoan::new(store));
                        }
                        Ok(fold.apply(&ev).map_err(ProjectorError::from))
                    }
                },
            },
            other => Err(format!(
                "the projector folds no messages of topic {:?} ({other:?})",
                rec.topic
            )),
        };
        match applied {
            Ok(changed) => {
                if changed? {
                    metrics::counter!(m::EFFECTIVE).increment(1);
                }
            }
            Err(e) => {
                metrics::counter!(m::UNDECODABLE).increment(1);
                tracing::warn!(
                    topic = %rec.topic, partition = rec.partition, offset = rec.offset,
                    error = %e, "skipping undecodable event"
                );
                let dl = DeadLetter {
                    event_id: uuid::Uuid::now_v7(),
                    stage: "projector".into(),
                    at: chrono::Utc::now(),
                    topic: rec.topic.clone(),
                    partition: rec.partition,
                    offset: rec.offset,
                    key: String::from_utf8_lossy(&rec.key).into_owned(),
                    reason: e,
                    errors: vec![],
                };
                if let Err(e) = log.append(topics::DLQ, &rec.key, &dl.encode()) {
                    tracing::warn!(error = %e, "cannot write dead letter");
                }
            }
        }
        offsets.insert((rec.topic.clone(), rec.partition), rec.next);
    }
    if stop.load(Ordering::Relaxed) {
        *offsets = durable;
        return Ok(Applied::Abandoned);
    }
    let mut changes = fold.finish()?;
    if changes.is_empty() && !wrote {
        return Ok(Applied::Unchanged);
    }
    if stop.load(Ordering::Relaxed) {
        *offsets = durable;
        return Ok(Applied::Abandoned);
    }
    changes.extend(offset_writes(offsets));
    store.write(changes)?;
    Ok(Applied::Changed)
}
