//! The projector stage: read the entity topic from the offsets stored with
//! the state, fold batches, and write each batch's state and offsets in one
//! write (exactly-once effect without transactions).

use crate::fold::Fold;
use crate::keys;
use crate::metrics as m;
use crate::read::Catalog;
use crate::store::{Store, StoreError};
use eventlog::{EventLog, LogError, Record};
use proto::envelope::Versioned;
use proto::{DeadLetter, EntityEvent, topics};
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
    /// RocksDB block cache, MiB.
    pub cache_mb: usize,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        ProjectorConfig {
            batch_max: 20_000,
            cache_mb: 256,
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

    /// The log's end offsets, per partition.
    pub fn set_ends(&self, ends: Vec<i64>) {
        let mut s = self.inner.lock().expect("lock");
        s.ends = ends;
        s.known = true;
    }

    /// The next offset to apply of partition `p`.
    pub fn set_applied(&self, p: u32, next: i64) {
        self.inner.lock().expect("lock").applied.insert(p, next);
    }
}

/// Runs until `stop` is set. Partitions start at the offsets in the store.
pub fn run(
    log: Arc<dyn EventLog>,
    store: Arc<dyn Store>,
    cfg: &ProjectorConfig,
    status: Arc<Status>,
    stop: Arc<AtomicBool>,
) -> Result<(), ProjectorError> {
    m::describe();
    let partitions = log.partitions(topics::ENTITIES)?;
    let stored = Catalog::new(store.clone()).offsets()?;
    let starts: Vec<(u32, i64)> = (0..partitions)
        .map(|p| {
            let off = stored
                .get(&(topics::ENTITIES.to_string(), p))
                .copied()
                .unwrap_or(0);
            status.set_applied(p, off);
            (p, off)
        })
        .collect();
    tracing::info!(?starts, log = %log.describe(), "projector starting");
    let mut reader = log.assign(topics::ENTITIES, &starts)?;
    let mut pending_offsets: BTreeMap<u32, i64> = BTreeMap::new();
    let mut last_ends = Instant::now() - Duration::from_secs(60);
    let mut last_offset_flush = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if last_ends.elapsed() > Duration::from_millis(500) {
            match log.end_offsets(topics::ENTITIES) {
                Ok(ends) => status.set_ends(ends),
                Err(e) => tracing::warn!(error = %e, "cannot read end offsets"),
            }
            last_ends = Instant::now();
            if let Some(lag) = status.lag() {
                metrics::gauge!(m::LAG).set(lag as f64);
            }
        }
        let mut batch = reader.poll(Duration::from_millis(100))?;
        while !batch.is_empty() && batch.len() < cfg.batch_max {
            let more = reader.poll(Duration::ZERO)?;
            if more.is_empty() {
                break;
            }
            batch.extend(more);
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
        let changed = apply_batch(log.as_ref(), store.as_ref(), &batch, &mut pending_offsets)?;
        for (p, off) in &pending_offsets {
            status.set_applied(*p, *off);
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

fn offset_writes(offsets: &BTreeMap<u32, i64>) -> crate::store::WriteSet {
    offsets
        .iter()
        .map(|(p, off)| {
            (
                keys::offset(topics::ENTITIES, *p),
                Some(off.to_be_bytes().to_vec()),
            )
        })
        .collect()
}

/// Folds one batch and writes its changes together with its offsets.
/// Returns whether anything was written (offsets stay in `offsets` if not).
pub fn apply_batch(
    log: &dyn EventLog,
    store: &dyn Store,
    batch: &[Record],
    offsets: &mut BTreeMap<u32, i64>,
) -> Result<bool, ProjectorError> {
    let mut fold = Fold::new(store);
    for rec in batch {
        metrics::counter!(m::EVENTS).increment(1);
        match EntityEvent::decode(&rec.value) {
            Ok(event) => {
                if fold.apply(&event)? {
                    metrics::counter!(m::EFFECTIVE).increment(1);
                }
            }
            Err(e) => {
                metrics::counter!(m::UNDECODABLE).increment(1);
                tracing::warn!(
                    topic = %rec.topic, partition = rec.partition, offset = rec.offset,
                    error = %e, "skipping entity event"
                );
                let dl = DeadLetter {
                    event_id: uuid::Uuid::now_v7(),
                    stage: "projector".into(),
                    at: chrono::Utc::now(),
                    topic: rec.topic.clone(),
                    partition: rec.partition,
                    offset: rec.offset,
                    key: String::from_utf8_lossy(&rec.key).into_owned(),
                    reason: e.to_string(),
                    errors: vec![],
                };
                if let Err(e) = log.append(topics::DLQ, &rec.key, &dl.encode()) {
                    tracing::warn!(error = %e, "cannot write dead letter");
                }
            }
        }
        offsets.insert(rec.partition, rec.offset + 1);
    }
    let mut changes = fold.finish()?;
    if changes.is_empty() {
        return Ok(false);
    }
    changes.extend(offset_writes(offsets));
    store.write(changes)?;
    Ok(true)
}
