//! An in-memory log with fault injection, for the tests of every crate.
//!
//! It keeps the contract of the other backends (the conformance suite runs
//! on it too): messages are partitioned by key ([`crate::partition_for`]),
//! become readable only once [`EventLog::flush`] returned, keep their order
//! per partition, and a group reader starts at the group's committed
//! offsets. Clones share one log, as processes share a broker, so a test can
//! "restart" a stage by opening a new reader on a clone.
//!
//! With [`MemoryLog::with_max_message_bytes`] it has a message limit like a
//! broker's, and larger messages travel in parts ([`crate::parts`]), so the
//! tests of every stage can exercise them with small messages.
//!
//! [`Faults`] make the next appends, flushes or polls fail. A failed flush
//! drops what was queued, the pessimistic reading of a flush error (the
//! caller must not assume anything was delivered).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::parts::{self, Assembler};
use crate::{EventLog, LogError, Reader, Record, Result, partition_for};

/// Most records one poll returns.
const MAX_BATCH: usize = 1000;

/// Failures to inject: each counter is how many of the next calls fail.
#[derive(Debug, Default)]
pub struct Faults {
    pub appends: AtomicU32,
    pub flushes: AtomicU32,
    pub polls: AtomicU32,
}

impl Faults {
    fn take(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

#[derive(Debug, Clone)]
struct Stored {
    key: Vec<u8>,
    value: Vec<u8>,
    timestamp_ms: i64,
}

#[derive(Debug, Default)]
struct State {
    /// topic -> partitions -> records.
    topics: BTreeMap<String, Vec<Vec<Stored>>>,
    /// Appended, not yet flushed: (topic, partition, record).
    pending: Vec<(String, u32, Stored)>,
    /// (group, topic) -> partition -> next offset.
    committed: BTreeMap<(String, String), BTreeMap<u32, i64>>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled on every flush that made records readable.
    arrived: Condvar,
    faults: Faults,
    /// Messages larger than this are split into parts.
    max_message_bytes: Option<usize>,
}

/// The in-memory log. Cheap to clone; clones share everything.
#[derive(Debug, Clone, Default)]
pub struct MemoryLog {
    shared: Arc<Shared>,
}

impl MemoryLog {
    /// A log with `topics`, each of `partitions` partitions.
    pub fn new(topics: &[&str], partitions: u32) -> Self {
        let log = MemoryLog::default();
        for t in topics {
            log.create_topic(t, partitions);
        }
        log
    }

    /// A log like `new`, whose messages over `limit` bytes (key and value)
    /// are split into parts, as the Kafka backend splits messages over the
    /// producer's limit.
    pub fn with_max_message_bytes(topics: &[&str], partitions: u32, limit: usize) -> Self {
        let log = MemoryLog {
            shared: Arc::new(Shared {
                max_message_bytes: Some(limit),
                ..Shared::default()
            }),
        };
        for t in topics {
            log.create_topic(t, partitions);
        }
        log
    }

    /// The failures to inject.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Every readable record of `topic`, partition by partition.
    pub fn records(&self, topic: &str) -> Vec<Record> {
        let s = self.lock();
        let Some(parts) = s.topics.get(topic) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (p, records) in parts.iter().enumerate() {
            for (o, r) in records.iter().enumerate() {
                out.push(to_record(topic, p as u32, o as i64, r));
            }
        }
        out
    }

    /// The topics of the log.
    pub fn topic_names(&self) -> Vec<String> {
        self.lock().topics.keys().cloned().collect()
    }

    /// Adds `topic` with `partitions` partitions (a no-op if it exists).
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        self.lock()
            .topics
            .entry(topic.to_owned())
            .or_insert_with(|| vec![Vec::new(); partitions.max(1) as usize]);
    }

    /// Messages appended and not yet flushed.
    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn to_record(topic: &str, partition: u32, offset: i64, r: &Stored) -> Record {
    Record {
        topic: topic.to_owned(),
        partition,
        offset,
        key: r.key.clone(),
        value: r.value.clone(),
        timestamp_ms: r.timestamp_ms,
        next: offset + 1,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl EventLog for MemoryLog {
    fn append(&self, topic: &str, key: &[u8], value: &[u8]) -> Result<()> {
        if Faults::take(&self.shared.faults.appends) {
            return Err(LogError::Other(
                "memory log: injected append failure".into(),
            ));
        }
        let mut s = self.lock();
        let partitions = s
            .topics
            .get(topic)
            .ok_or_else(|| LogError::UnknownTopic(topic.to_owned()))?
            .len() as u32;
        let p = partition_for(key, partitions);
        let pieces = self
            .shared
            .max_message_bytes
            .and_then(|limit| parts::split(key, value, limit))
            .unwrap_or_else(|| vec![(key.to_vec(), value.to_vec())]);
        for (key, value) in pieces {
            s.pending.push((
                topic.to_owned(),
                p,
                Stored {
                    key,
                    value,
                    timestamp_ms: now_ms(),
                },
            ));
        }
        Ok(())
    }

    fn flush(&self, _timeout: Duration) -> Result<()> {
        let mut s = self.lock();
        if Faults::take(&self.shared.faults.flushes) {
            let lost = std::mem::take(&mut s.pending).len();
            return Err(LogError::Other(format!(
                "memory log: injected flush failure ({lost} message(s) not delivered)"
            )));
        }
        let pending = std::mem::take(&mut s.pending);
        let any = !pending.is_empty();
        for (topic, p, r) in pending {
            if let Some(parts) = s.topics.get_mut(&topic) {
                parts[p as usize].push(r);
            }
        }
        drop(s);
        if any {
            self.shared.arrived.notify_all();
        }
        Ok(())
    }

    fn partitions(&self, topic: &str) -> Result<u32> {
        self.lock()
            .topics
            .get(topic)
            .map(|p| p.len() as u32)
            .ok_or_else(|| LogError::UnknownTopic(topic.to_owned()))
    }

    fn end_offsets(&self, topic: &str) -> Result<Vec<i64>> {
        self.lock()
            .topics
            .get(topic)
            .map(|parts| parts.iter().map(|p| p.len() as i64).collect())
            .ok_or_else(|| LogError::UnknownTopic(topic.to_owned()))
    }

    fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Reader>> {
        let partitions = self.partitions(topic)?;
        let committed = self
            .lock()
            .committed
            .get(&(group.to_owned(), topic.to_owned()))
            .cloned()
            .unwrap_or_default();
        let positions = (0..partitions)
            .map(|p| (p, committed.get(&p).copied().unwrap_or(0)))
            .collect();
        Ok(Box::new(MemoryReader {
            log: self.clone(),
            topic: topic.to_owned(),
            group: Some(group.to_owned()),
            positions,
            next_first: 0,
            assembler: Assembler::default(),
        }))
    }

    fn assign(&self, topic: &str, starts: &[(u32, i64)]) -> Result<Box<dyn Reader>> {
        let partitions = self.partitions(topic)?;
        for &(p, o) in starts {
            if p >= partitions {
                return Err(LogError::UnknownPartition {
                    topic: topic.to_owned(),
                    partition: p,
                });
            }
            if o < 0 {
                return Err(LogError::Other(format!(
                    "memory log: cannot start {topic:?}/{p} at offset {o}"
                )));
            }
        }
        Ok(Box::new(MemoryReader {
            log: self.clone(),
            topic: topic.to_owned(),
            group: None,
            positions: starts.to_vec(),
            next_first: 0,
            assembler: Assembler::default(),
        }))
    }

    fn describe(&self) -> String {
        "memory:".to_owned()
    }
}

struct MemoryReader {
    log: MemoryLog,
    topic: String,
    group: Option<String>,
    positions: Vec<(u32, i64)>,
    /// Rotated so that a busy partition cannot starve the others.
    next_first: usize,
    assembler: Assembler,
}

impl MemoryReader {
    /// Takes what is readable past the positions, advancing them.
    fn take(&mut self, s: &State) -> Vec<Record> {
        let mut out = Vec::new();
        let Some(parts) = s.topics.get(&self.topic) else {
            return out;
        };
        let n = self.positions.len();
        for i in 0..n {
            let idx = (self.next_first + i) % n.max(1);
            let (p, next) = &mut self.positions[idx];
            let records = &parts[*p as usize];
            while (*next as usize) < records.len() && out.len() < MAX_BATCH {
                out.push(to_record(&self.topic, *p, *next, &records[*next as usize]));
                *next += 1;
            }
        }
        self.next_first = (self.next_first + 1) % n.max(1);
        out.into_iter()
            .filter_map(|r| self.assembler.accept(r))
            .collect()
    }
}

impl Reader for MemoryReader {
    fn poll(&mut self, timeout: Duration) -> Result<Vec<Record>> {
        if Faults::take(&self.log.shared.faults.polls) {
            return Err(LogError::Other("memory log: injected poll failure".into()));
        }
        let deadline = Instant::now() + timeout;
        let log = self.log.clone();
        let mut s = log.lock();
        loop {
            let before = self.positions.clone();
            let out = self.take(&s);
            if !out.is_empty() {
                return Ok(out);
            }
            if self.positions != before {
                // Only parts arrived: read on without waiting.
                continue;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Ok(out);
            }
            s = log
                .shared
                .arrived
                .wait_timeout(s, remaining)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn commit(&mut self, offsets: &[(u32, i64)]) -> Result<()> {
        let Some(group) = &self.group else {
            return Ok(());
        };
        let mut s = self.log.lock();
        let committed = s
            .committed
            .entry((group.clone(), self.topic.clone()))
            .or_default();
        for &(p, o) in offsets {
            committed.insert(p, o);
        }
        Ok(())
    }

    fn positions(&mut self) -> Result<Vec<(u32, i64)>> {
        Ok(self.positions.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_failures_fail_the_next_calls_only() {
        let log = MemoryLog::new(&["t"], 2);
        log.faults().appends.store(1, Ordering::SeqCst);
        assert!(log.append("t", b"k", b"v").is_err());
        log.append("t", b"k", b"v").unwrap();
        log.faults().flushes.store(1, Ordering::SeqCst);
        assert!(log.flush(Duration::ZERO).is_err());
        // The failed flush delivered nothing.
        assert_eq!(log.records("t").len(), 0);
        assert_eq!(log.pending(), 0);
        log.append("t", b"k", b"v2").unwrap();
        log.flush(Duration::ZERO).unwrap();
        let mut r = log.subscribe("t", "g").unwrap();
        log.faults().polls.store(1, Ordering::SeqCst);
        assert!(r.poll(Duration::ZERO).is_err());
        let got = r.poll(Duration::ZERO).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].value, b"v2");
    }
}
