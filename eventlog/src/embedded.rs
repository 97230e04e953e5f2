//! A durable event log kept in RocksDB, for one process.
//!
//! Layout:
//!
//! - one column family per topic; record key = partition (`u32`, big endian)
//!   followed by offset (`u64`, big endian), so that a partition is one
//!   contiguous, ordered key range;
//! - record value = `[format: u8 = 1][timestamp_ms: i64 BE][key_len: u32 BE]
//!   [key][value]`;
//! - the default column family holds metadata: `partitions/<topic>` ->
//!   partition count (`u32` BE), fixed when the topic is first created;
//! - the `__groups` column family holds committed offsets: key =
//!   `[group_len: u32 BE][group][topic_len: u32 BE][topic][partition: u32 BE]`,
//!   value = next offset (`i64` BE).
//!
//! The next offset of every partition lives in memory (recovered at open by
//! seeking to the last key of each partition). An append takes the topic's
//! mutex, writes the record (with the WAL, not synced), bumps the offset and
//! wakes the readers waiting on the topic's condition variable. Because the
//! write happens under the mutex, every offset below the in-memory end is
//! readable, in order, when a reader looks.
//!
//! Durability: an appended record is in the RocksDB WAL (the OS page cache)
//! as soon as `append` returns, so it survives the process dying;
//! [`EventLog::flush`] fsyncs the WAL, after which it survives the machine
//! dying too.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rocksdb::{
    ColumnFamilyDescriptor, DB, DBCompressionType, Options, ReadOptions, WriteBatch, WriteOptions,
};

use crate::{EventLog, LogError, Reader, Record, Result, partition_for};

/// Column family of committed group offsets.
const GROUPS_CF: &str = "__groups";
/// RocksDB's own column family, used for metadata.
const DEFAULT_CF: &str = "default";
/// Metadata key prefix of a topic's partition count.
const PARTITIONS_META: &str = "partitions/";
/// Most records one [`Reader::poll`] returns.
const MAX_BATCH: usize = 1000;
/// Most bytes (keys and values) one [`Reader::poll`] returns, unless its
/// first record alone is larger: a poll stops after the record that
/// reaches it. Without it a poll held up to [`MAX_BATCH`] records
/// whatever their size (the entity event of a 300k-user file is 184 MB).
pub const MAX_BATCH_BYTES: usize = 64 << 20;
/// Records this large or larger are kept in blob files, not in tables.
pub const BLOB_BYTES: u64 = 1 << 20;
/// Bytes of such records appended to a topic after which its memtable is
/// flushed at once. A memtable holds every record written to it until its
/// flush, blob-sized ones included: the 184 MB event of a 300k-user file
/// (and the 64 MB observation before it) stayed in memory, next to the
/// copies its writer and its reader held, until the memtable filled up.
pub const FLUSH_AFTER_LARGE_BYTES: usize = 16 << 20;
/// Memtables of every topic together, before the largest is flushed.
const MEMTABLES_BYTES: usize = 128 << 20;
/// The block cache every topic shares. Readers read each record about
/// once, in order: a cache mostly holds what was just read.
const BLOCK_CACHE_BYTES: usize = 32 << 20;
/// Version byte of the record encoding.
const FORMAT_V1: u8 = 1;
/// Size of the fixed part of an encoded record.
const HEADER_LEN: usize = 1 + 8 + 4;

/// A durable log in a RocksDB directory. Cheap to clone: clones share the
/// database, offsets and readers' wake-ups.
#[derive(Clone)]
pub struct EmbeddedLog {
    shared: Arc<Shared>,
}

struct Shared {
    db: DB,
    path: PathBuf,
    topics: HashMap<String, Arc<Topic>>,
}

struct Topic {
    name: String,
    partitions: u32,
    state: Mutex<TopicState>,
    /// Signalled by `append` when readers are waiting.
    appended: Condvar,
}

struct TopicState {
    /// Next offset per partition.
    next: Vec<i64>,
    /// Readers blocked in `poll` on this topic.
    waiters: usize,
    /// Bytes of blob-sized records appended since the topic's memtable
    /// was last flushed for them.
    large_unflushed: usize,
}

impl Topic {
    fn lock(&self) -> MutexGuard<'_, TopicState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_partition(&self, partition: u32) -> Result<()> {
        if partition < self.partitions {
            Ok(())
        } else {
            Err(LogError::UnknownPartition {
                topic: self.name.clone(),
                partition,
            })
        }
    }
}

impl std::fmt::Debug for EmbeddedLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLog")
            .field("path", &self.shared.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedLog {
    /// Writes an encoded record of `topic` at the next offset of its key's
    /// partition.
    fn put_record(&self, topic: &str, key: &[u8], encoded: Vec<u8>) -> Result<()> {
        let topic = self.topic(topic)?;
        let partition = partition_for(key, topic.partitions);
        let db = &self.shared.db;
        let cf = column_family(db, &topic.name)?;
        let mut state = topic.lock();
        let offset = state.next[partition as usize];
        db.put_cf(&cf, record_key(partition, offset), &encoded)?;
        state.next[partition as usize] = offset + 1;
        if encoded.len() as u64 >= BLOB_BYTES {
            state.large_unflushed += encoded.len();
        }
        drop(encoded);
        if state.large_unflushed >= FLUSH_AFTER_LARGE_BYTES {
            state.large_unflushed = 0;
            // The record is in the WAL already: a failed flush only
            // leaves it in memory until the next one.
            if let Err(e) = db.flush_cf(&cf) {
                tracing::warn!(topic = %topic.name, error = %e, "embedded log: flushing large records failed");
            }
        }
        let wake = state.waiters > 0;
        drop(state);
        if wake {
            topic.appended.notify_all();
        }
        Ok(())
    }

    /// Opens (or creates) the log in directory `path` with a column family
    /// per topic. Topics created by an earlier open are kept, with the
    /// partition count they were created with: a different `partitions`
    /// for an existing topic is ignored, with a warning. Only one process
    /// can have a directory open at a time.
    pub fn open(path: &Path, topics: &[&str], partitions: u32) -> Result<Self> {
        if partitions == 0 {
            return Err(LogError::Other(
                "embedded log: a topic needs at least one partition".to_owned(),
            ));
        }
        for topic in topics {
            if topic.is_empty() || *topic == GROUPS_CF || *topic == DEFAULT_CF {
                return Err(LogError::Other(format!(
                    "embedded log: {topic:?} cannot be used as a topic name"
                )));
            }
        }
        std::fs::create_dir_all(path).map_err(|e| {
            LogError::Other(format!(
                "embedded log: cannot create data dir {}: {e}",
                path.display()
            ))
        })?;

        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_keep_log_file_num(4);
        // Every topic has its own memtable; bound the WAL so that it is
        // recycled even when some topics are quiet.
        db_opts.set_max_total_wal_size(256 << 20);
        db_opts.set_db_write_buffer_size(MEMTABLES_BYTES);
        let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);

        // Every column family of the directory must be opened.
        let mut cf_names: Vec<String> = DB::list_cf(&db_opts, path).unwrap_or_default();
        for name in [DEFAULT_CF, GROUPS_CF]
            .into_iter()
            .chain(topics.iter().copied())
        {
            if !cf_names.iter().any(|n| n == name) {
                cf_names.push(name.to_owned());
            }
        }
        let descriptors = cf_names.iter().map(|name| {
            let mut cf_opts = Options::default();
            let mut block = rocksdb::BlockBasedOptions::default();
            block.set_block_cache(&cache);
            cf_opts.set_block_based_table_factory(&block);
            if name != DEFAULT_CF && name != GROUPS_CF {
                cf_opts.set_compression_type(DBCompressionType::Lz4);
                // Records of a megabyte or more (the event of a large
                // location) go to blob files: in a table, reading one
                // decompressed the whole data block holding it into the
                // block cache, twice its size in memory for one read.
                cf_opts.set_enable_blob_files(true);
                cf_opts.set_min_blob_size(BLOB_BYTES);
                cf_opts.set_blob_compression_type(DBCompressionType::Lz4);
                cf_opts.set_enable_blob_gc(true);
            }
            ColumnFamilyDescriptor::new(name, cf_opts)
        });
        let db = DB::open_cf_descriptors(&db_opts, path, descriptors)
            .map_err(|e| open_error(path, e))?;

        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        let mut opened = HashMap::new();
        for name in cf_names
            .iter()
            .filter(|n| *n != DEFAULT_CF && *n != GROUPS_CF)
        {
            let meta_key = format!("{PARTITIONS_META}{name}");
            let stored = match db.get(meta_key.as_bytes())? {
                Some(bytes) => {
                    Some(u32::from_be_bytes(bytes.as_slice().try_into().map_err(
                        |_| LogError::Corrupt(format!("metadata {meta_key:?}")),
                    )?))
                }
                None => None,
            };
            let count = match stored {
                Some(count) => {
                    if count != partitions && topics.contains(&name.as_str()) {
                        tracing::warn!(
                            topic = %name,
                            stored = count,
                            requested = partitions,
                            "embedded log: keeping the partition count the topic was created with"
                        );
                    }
                    count
                }
                None => {
                    db.put_opt(meta_key.as_bytes(), partitions.to_be_bytes(), &sync)?;
                    partitions
                }
            };
            let next = recover_next_offsets(&db, name, count)?;
            opened.insert(
                name.clone(),
                Arc::new(Topic {
                    name: name.clone(),
                    partitions: count,
                    state: Mutex::new(TopicState {
                        next,
                        waiters: 0,
                        large_unflushed: 0,
                    }),
                    appended: Condvar::new(),
                }),
            );
        }
        tracing::info!(path = %path.display(), topics = opened.len(), "embedded log opened");
        Ok(Self {
            shared: Arc::new(Shared {
                db,
                path: path.to_path_buf(),
                topics: opened,
            }),
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The topics of the log, sorted.
    pub fn topics(&self) -> Vec<String> {
        let mut names: Vec<String> = self.shared.topics.keys().cloned().collect();
        names.sort();
        names
    }

    fn topic(&self, topic: &str) -> Result<&Arc<Topic>> {
        self.shared
            .topics
            .get(topic)
            .ok_or_else(|| LogError::UnknownTopic(topic.to_owned()))
    }

    fn reader(
        &self,
        topic: &str,
        positions: Vec<(u32, i64)>,
        group: Option<String>,
    ) -> Result<Box<dyn Reader>> {
        let topic = Arc::clone(self.topic(topic)?);
        Ok(Box::new(EmbeddedReader {
            shared: Arc::clone(&self.shared),
            topic,
            positions,
            group,
            next_first: 0,
        }))
    }
}

/// Maps RocksDB's lock failure to a message an operator understands.
fn open_error(path: &Path, e: rocksdb::Error) -> LogError {
    let text = e.to_string();
    if text.to_ascii_lowercase().contains("lock") {
        LogError::Other(format!(
            "data dir {} is in use by another process (or already open in this one): {text}",
            path.display()
        ))
    } else {
        LogError::Rocks(e)
    }
}

fn record_key(partition: u32, offset: i64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&partition.to_be_bytes());
    key[4..].copy_from_slice(&(offset as u64).to_be_bytes());
    key
}

fn parse_record_key(key: &[u8]) -> Option<(u32, i64)> {
    let partition = u32::from_be_bytes(key.get(..4)?.try_into().ok()?);
    let offset = u64::from_be_bytes(key.get(4..12)?.try_into().ok()?);
    (key.len() == 12 && offset <= i64::MAX as u64).then_some((partition, offset as i64))
}

fn encode_value(key: &[u8], value: &[u8], timestamp_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + key.len() + value.len());
    out.push(FORMAT_V1);
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out
}

/// [`encode_value`] in `value`'s own buffer: the header and key are put
/// in front of it, moving it within its capacity when there is room.
fn frame_value(key: &[u8], mut value: Vec<u8>, timestamp_ms: i64) -> Vec<u8> {
    let head = HEADER_LEN + key.len();
    let len = value.len();
    value.resize(len + head, 0);
    value.copy_within(0..len, head);
    value[0] = FORMAT_V1;
    value[1..9].copy_from_slice(&timestamp_ms.to_be_bytes());
    value[9..HEADER_LEN].copy_from_slice(&(key.len() as u32).to_be_bytes());
    value[HEADER_LEN..head].copy_from_slice(key);
    value
}

/// Decodes a stored value into (key, value, timestamp_ms).
fn decode_value(raw: &[u8]) -> Option<(Vec<u8>, Vec<u8>, i64)> {
    if raw.len() < HEADER_LEN || raw[0] != FORMAT_V1 {
        return None;
    }
    let timestamp_ms = i64::from_be_bytes(raw[1..9].try_into().ok()?);
    let key_len = u32::from_be_bytes(raw[9..13].try_into().ok()?) as usize;
    let rest = &raw[HEADER_LEN..];
    if rest.len() < key_len {
        return None;
    }
    let (key, value) = rest.split_at(key_len);
    Some((key.to_vec(), value.to_vec(), timestamp_ms))
}

fn group_key(group: &str, topic: &str, partition: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(12 + group.len() + topic.len());
    key.extend_from_slice(&(group.len() as u32).to_be_bytes());
    key.extend_from_slice(group.as_bytes());
    key.extend_from_slice(&(topic.len() as u32).to_be_bytes());
    key.extend_from_slice(topic.as_bytes());
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn column_family<'a>(db: &'a DB, name: &str) -> Result<Arc<rocksdb::BoundColumnFamily<'a>>> {
    db.cf_handle(name)
        .ok_or_else(|| LogError::Other(format!("embedded log: column family {name:?} is missing")))
}

/// Next offset of every partition: one past the last stored key.
fn recover_next_offsets(db: &DB, topic: &str, partitions: u32) -> Result<Vec<i64>> {
    let cf = column_family(db, topic)?;
    let mut it = db.raw_iterator_cf(&cf);
    let mut next = Vec::with_capacity(partitions as usize);
    for partition in 0..partitions {
        it.seek_for_prev(record_key(partition, i64::MAX));
        let end = match it.key().and_then(parse_record_key) {
            Some((p, offset)) if p == partition => offset + 1,
            _ => 0,
        };
        next.push(end);
    }
    it.status()?;
    Ok(next)
}

impl EventLog for EmbeddedLog {
    fn append(&self, topic: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.put_record(topic, key, encode_value(key, value, now_ms()))
    }

    fn append_owned(&self, topic: &str, key: &[u8], value: Vec<u8>) -> Result<()> {
        self.put_record(topic, key, frame_value(key, value, now_ms()))
    }

    fn flush(&self, _timeout: Duration) -> Result<()> {
        // Appends are in the WAL already; make it survive a power loss.
        self.shared.db.flush_wal(true)?;
        Ok(())
    }

    fn partitions(&self, topic: &str) -> Result<u32> {
        Ok(self.topic(topic)?.partitions)
    }

    fn end_offsets(&self, topic: &str) -> Result<Vec<i64>> {
        Ok(self.topic(topic)?.lock().next.clone())
    }

    fn subscribe(&self, topic: &str, group: &str) -> Result<Box<dyn Reader>> {
        let t = self.topic(topic)?;
        let db = &self.shared.db;
        let cf = column_family(db, GROUPS_CF)?;
        let mut positions = Vec::with_capacity(t.partitions as usize);
        for partition in 0..t.partitions {
            let committed = match db.get_cf(&cf, group_key(group, topic, partition))? {
                Some(bytes) => i64::from_be_bytes(bytes.as_slice().try_into().map_err(|_| {
                    LogError::Corrupt(format!(
                        "committed offset of group {group:?}, {topic:?}/{partition}"
                    ))
                })?),
                None => 0,
            };
            positions.push((partition, committed));
        }
        self.reader(topic, positions, Some(group.to_owned()))
    }

    fn assign(&self, topic: &str, starts: &[(u32, i64)]) -> Result<Box<dyn Reader>> {
        let t = self.topic(topic)?;
        let mut positions = BTreeMap::new();
        for &(partition, offset) in starts {
            t.check_partition(partition)?;
            if offset < 0 {
                return Err(LogError::Other(format!(
                    "embedded log: cannot start {topic:?}/{partition} at offset {offset}"
                )));
            }
            positions.insert(partition, offset);
        }
        self.reader(topic, positions.into_iter().collect(), None)
    }

    fn describe(&self) -> String {
        format!("embedded:{}", self.shared.path.display())
    }
}

/// A reader of some partitions of one topic.
struct EmbeddedReader {
    shared: Arc<Shared>,
    topic: Arc<Topic>,
    /// (partition, next offset to read)
    positions: Vec<(u32, i64)>,
    /// The group to commit for; `None` for an assigned reader.
    group: Option<String>,
    /// Index in `positions` read first by the next poll, rotated so that a
    /// busy partition cannot starve the others.
    next_first: usize,
}

impl EmbeddedReader {
    /// End offsets once at least one of our partitions has something to
    /// read, or `None` at the deadline.
    fn wait_for_records(&self, deadline: Instant) -> Option<Vec<i64>> {
        let topic = &self.topic;
        let mut state = topic.lock();
        loop {
            if self
                .positions
                .iter()
                .any(|&(p, next)| next < state.next[p as usize])
            {
                return Some(state.next.clone());
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            state.waiters += 1;
            let (guard, _) = topic
                .appended
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner);
            state = guard;
            state.waiters -= 1;
        }
    }

    /// Reads `[from, from + count)` of `partition` into `out`, stopping
    /// early after the record that brings `bytes` (what `out` holds) to
    /// [`MAX_BATCH_BYTES`]; returns how many it read.
    fn read_range(
        &self,
        partition: u32,
        from: i64,
        count: usize,
        bytes: &mut usize,
        out: &mut Vec<Record>,
    ) -> Result<usize> {
        let db = &self.shared.db;
        let cf = column_family(db, &self.topic.name)?;
        let end = from + count as i64;
        let mut opts = ReadOptions::default();
        opts.set_iterate_upper_bound(record_key(partition, end).to_vec());
        let mut it = db.raw_iterator_cf_opt(&cf, opts);
        it.seek(record_key(partition, from));
        let mut expected = from;
        while expected < end && *bytes < MAX_BATCH_BYTES {
            let Some((key, raw)) = it.item() else { break };
            let corrupt =
                || LogError::Corrupt(format!("{}/{partition}@{expected}", self.topic.name));
            if parse_record_key(key) != Some((partition, expected)) {
                return Err(corrupt());
            }
            let (key, value, timestamp_ms) = decode_value(raw).ok_or_else(corrupt)?;
            *bytes += key.len() + value.len();
            out.push(Record {
                topic: self.topic.name.clone(),
                partition,
                offset: expected,
                key,
                value,
                timestamp_ms,
                next: expected + 1,
            });
            expected += 1;
            it.next();
        }
        it.status()?;
        if expected < end && *bytes < MAX_BATCH_BYTES {
            return Err(LogError::Corrupt(format!(
                "{}/{partition}@{expected} (missing)",
                self.topic.name
            )));
        }
        Ok((expected - from) as usize)
    }
}

impl Reader for EmbeddedReader {
    fn positions(&mut self) -> Result<Vec<(u32, i64)>> {
        Ok(self.positions.clone())
    }

    fn poll(&mut self, timeout: Duration) -> Result<Vec<Record>> {
        let deadline = Instant::now() + timeout;
        let Some(ends) = self.wait_for_records(deadline) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        let mut bytes = 0;
        let n = self.positions.len();
        for i in 0..n {
            let index = (self.next_first + i) % n;
            let (partition, next) = self.positions[index];
            let budget = MAX_BATCH - out.len();
            let available = (ends[partition as usize] - next).max(0) as usize;
            let count = available.min(budget);
            if count == 0 {
                continue;
            }
            let read = self.read_range(partition, next, count, &mut bytes, &mut out)?;
            self.positions[index].1 = next + read as i64;
            if out.len() >= MAX_BATCH || bytes >= MAX_BATCH_BYTES {
                break;
            }
        }
        self.next_first = (self.next_first + 1) % n.max(1);
        Ok(out)
    }

    fn commit(&mut self, offsets: &[(u32, i64)]) -> Result<()> {
        let Some(group) = &self.group else {
            return Ok(());
        };
        let db = &self.shared.db;
        let cf = column_family(db, GROUPS_CF)?;
        let mut batch = WriteBatch::default();
        for &(partition, offset) in offsets {
            self.topic.check_partition(partition)?;
            if offset < 0 {
                return Err(LogError::Other(format!(
                    "embedded log: cannot commit offset {offset} for {:?}/{partition}",
                    self.topic.name
                )));
            }
            batch.put_cf(
                &cf,
                group_key(group, &self.topic.name, partition),
                offset.to_be_bytes(),
            );
        }
        db.write(batch)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_framed_in_its_own_buffer_is_encoded_as_a_copied_one() {
        for (key, len, room) in [(&b""[..], 0, 0), (b"k", 5, 0), (b"\0key", 1000, 4096)] {
            let value: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut owned = Vec::with_capacity(len + room);
            owned.extend_from_slice(&value);
            let framed = frame_value(key, owned, -5);
            assert_eq!(
                framed,
                encode_value(key, &value, -5),
                "key {key:?}, {len} bytes"
            );
            assert_eq!(decode_value(&framed), Some((key.to_vec(), value, -5)));
        }
    }

    #[test]
    fn value_encoding_round_trips() {
        let raw = encode_value(b"\0key", b"", -5);
        assert_eq!(
            decode_value(&raw),
            Some((b"\0key".to_vec(), Vec::new(), -5))
        );
        assert_eq!(decode_value(&raw[..5]), None);
        let mut bad = raw.clone();
        bad[0] = 9;
        assert_eq!(decode_value(&bad), None);
    }

    #[test]
    fn record_keys_sort_by_partition_then_offset() {
        assert!(record_key(0, 255) < record_key(0, 256));
        assert!(record_key(0, i64::MAX) < record_key(1, 0));
        assert_eq!(parse_record_key(&record_key(7, 42)), Some((7, 42)));
    }
}
