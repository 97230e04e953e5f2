//! The key-value store behind the projections: one trait, a RocksDB
//! implementation (primary or read-only secondary) and an in-memory one. The
//! same conformance tests run against both.

use std::collections::BTreeMap;
#[cfg(feature = "rocksdb")]
use std::path::Path;
use std::sync::RwLock;

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[cfg(feature = "rocksdb")]
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("a catalog as of a past instant cannot be written")]
    ReadOnly,
    #[error("stored record {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    /// A batch written in parts was given up between two of them (the
    /// service is stopping); it is applied again from its start.
    #[error("stopped between two parts of a batch")]
    Stopped,
    #[cfg(feature = "rocksdb")]
    #[error(
        "store at {path} is in use by another process (only one projector may own it): {source}"
    )]
    Locked {
        path: String,
        #[source]
        source: rocksdb::Error,
    },
}

/// A key with its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// One atomic write: puts (`Some`) and deletes (`None`).
pub type WriteSet = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// `bytes` in an allocation of their own length when growing left much
/// room over: a value grown from a few bytes holds up to twice its length,
/// and a batch keeps a million small values (the posting lists and their
/// history when a Location lists 544k targets) until it is written.
pub fn exact(bytes: Vec<u8>) -> Vec<u8> {
    if bytes.capacity() - bytes.len() > bytes.len() / 8 {
        bytes.as_slice().to_vec()
    } else {
        bytes
    }
}

/// An ordered key-value store.
pub trait Store: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Visits keys starting with `prefix` in order, from `from` (inclusive)
    /// when given, until `visit` returns false.
    fn scan(
        &self,
        prefix: &[u8],
        from: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;
    /// [`Store::scan`] for reading much once (a whole table, a scorecard
    /// evaluated for every entity): what it reads is not kept in the block
    /// cache, where it would push out what point reads use again.
    fn scan_once(
        &self,
        prefix: &[u8],
        from: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.scan(prefix, from, visit)
    }
    /// The values of `keys`, in their order: many point reads in one call.
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|k| self.get(k)).collect()
    }
    /// Visits the keys under each of `prefixes` (ascending) in turn, as
    /// `visit(i, key, value)` for the `i`th, until `visit` returns false
    /// for that prefix: many short scans in one call.
    fn scan_each(&self, prefixes: &[Vec<u8>], visit: &mut EachVisit<'_>) -> Result<(), StoreError> {
        for (i, p) in prefixes.iter().enumerate() {
            self.scan(p, None, &mut |k, v| visit(i, k, v))?;
        }
        Ok(())
    }
    /// The last key starting with `prefix` that is at most `upto`, with its
    /// value (a reverse seek).
    fn last_at_or_before(&self, prefix: &[u8], upto: &[u8]) -> Result<Option<Entry>, StoreError> {
        let mut last = None;
        self.scan(prefix, None, &mut |k, v| {
            if k > upto {
                return false;
            }
            last = Some((k.to_vec(), v.to_vec()));
            true
        })?;
        Ok(last)
    }
    /// For each `(prefix, key)`: the value at `key`, and the last entry
    /// starting with `prefix` before `key` (one iterator for them all where
    /// the store has them).
    #[allow(clippy::type_complexity)]
    fn at_and_before_each(
        &self,
        queries: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<(Option<Vec<u8>>, Option<Entry>)>, StoreError> {
        queries
            .iter()
            .map(|(prefix, key)| {
                let at = self.get(key)?;
                let mut before = None;
                self.scan(prefix, None, &mut |k, v| {
                    if k >= key.as_slice() {
                        return false;
                    }
                    before = Some((k.to_vec(), v.to_vec()));
                    true
                })?;
                Ok((at, before))
            })
            .collect()
    }
    /// The last key starting with `prefix` that is at most `key`, and the
    /// first that is greater, with their values (one iterator where the
    /// store has them).
    fn around(
        &self,
        prefix: &[u8],
        key: &[u8],
    ) -> Result<(Option<Entry>, Option<Entry>), StoreError> {
        let before = self.last_at_or_before(prefix, key)?;
        let mut after = None;
        self.scan(prefix, Some(key), &mut |k, v| {
            if k == key {
                return true;
            }
            after = Some((k.to_vec(), v.to_vec()));
            false
        })?;
        Ok((before, after))
    }
    /// Applies every change at once, or none (a RocksDB WriteBatch).
    fn write(&self, changes: WriteSet) -> Result<(), StoreError>;
    /// A number that changes whenever the store's content may have changed
    /// (RocksDB's sequence number), for caches of derived results.
    fn version(&self) -> u64;
    /// For a secondary: pick up what the primary wrote. Others: nothing.
    fn catch_up(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Whether the store's read cache lends most of its memory, while one
    /// batch needs an exceptional working set (see `run::apply_batch`):
    /// lending shrinks it to 1/[`LENT_CACHE_SHARE`] of its size, what it
    /// held beyond being evicted as the batch's reads bring blocks in;
    /// ending the loan gives it its size back, to be
    /// filled again by reads. Stores without such a cache: nothing.
    fn lend_cache(&self, _lend: bool) {}
}

/// What the read cache keeps of its size while it lends memory: a quarter.
pub const LENT_CACHE_SHARE: usize = 4;

/// What [`Store::scan_each`] calls with each key found: the number of its
/// prefix, the key and its value; false stops that prefix's scan.
pub type EachVisit<'a> = dyn FnMut(usize, &[u8], &[u8]) -> bool + 'a;

/// The in-memory store: a sorted map.
#[derive(Default)]
pub struct MemStore {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
    writes: std::sync::atomic::AtomicU64,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }
    /// Every key and value, for comparing two stores in tests.
    pub fn dump(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.map.read().expect("lock").clone()
    }
}

impl Store for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map.read().expect("lock").get(key).cloned())
    }

    fn scan(
        &self,
        prefix: &[u8],
        from: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let map = self.map.read().expect("lock");
        let start = from.unwrap_or(prefix).to_vec();
        for (k, v) in map.range(start..) {
            if !k.starts_with(prefix) || !visit(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn at_and_before_each(
        &self,
        queries: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<(Option<Vec<u8>>, Option<Entry>)>, StoreError> {
        let map = self.map.read().expect("lock");
        Ok(queries
            .iter()
            .map(|(prefix, key)| {
                let before = map
                    .range(..key.clone())
                    .next_back()
                    .filter(|(k, _)| k.starts_with(prefix))
                    .map(|(k, v)| (k.clone(), v.clone()));
                (map.get(key).cloned(), before)
            })
            .collect())
    }

    fn last_at_or_before(&self, prefix: &[u8], upto: &[u8]) -> Result<Option<Entry>, StoreError> {
        let map = self.map.read().expect("lock");
        Ok(map
            .range(..=upto.to_vec())
            .next_back()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone())))
    }

    fn version(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn write(&self, changes: WriteSet) -> Result<(), StoreError> {
        let mut map = self.map.write().expect("lock");
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        for (k, v) in changes {
            match v {
                Some(v) => map.insert(k, v),
                None => map.remove(&k),
            };
        }
        Ok(())
    }
}

#[cfg(feature = "rocksdb")]
/// The RocksDB store. The projector opens it as primary; `catalog serve`
/// processes open it as secondaries and call [`Store::catch_up`].
pub struct RocksStore {
    db: rocksdb::DB,
    secondary: bool,
    /// The block cache and its size (see [`Store::lend_cache`]).
    cache: rocksdb::Cache,
    cache_bytes: usize,
    /// The keys ever written, when the store was empty when opened (see
    /// [`crate::written`]): point reads of others skip RocksDB.
    written: Option<crate::written::Written>,
}

/// What the memtables may hold together, active and waiting for their
/// flush.
#[cfg(feature = "rocksdb")]
const MEMTABLES_BYTES: usize = 160 << 20;

/// The projections' block cache: RocksDB's clock cache, sized by itself
/// as it fills (`estimated_entry_charge` 0). A replay looks up a data
/// block for every point read answered from a table file and every block
/// a compaction reads; with the LRU cache, whose lookups and inserts take
/// a shard's mutex and walk a hash chain, those lookups were 5-6% of a 1M
/// replay's samples (its hash table alone 3.5-3.8%).
#[cfg(feature = "rocksdb")]
fn block_cache(bytes: usize) -> rocksdb::Cache {
    rocksdb::Cache::new_hyper_clock_cache(bytes, 0)
}

#[cfg(feature = "rocksdb")]
fn options(cache: &rocksdb::Cache) -> rocksdb::Options {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    opts.increase_parallelism(2);
    // Bulk loads (a first sync, a replay) write millions of small keys:
    // several memtables and a later L0 slowdown keep writes from stalling,
    // while 64 MiB each bound what they hold to 256 MiB (at 128 MiB each,
    // memtables waiting for their flush were a quarter of the peak heap
    // of a bulk load).
    opts.set_write_buffer_size(64 << 20);
    opts.set_max_write_buffer_number(4);
    opts.set_db_write_buffer_size(MEMTABLES_BYTES);
    opts.set_level_zero_slowdown_writes_trigger(40);
    opts.set_level_zero_stop_writes_trigger(60);
    opts.set_target_file_size_base(64 << 20);
    // A secondary needs every file open; a primary is fine with it too.
    opts.set_max_open_files(-1);
    // Values of a megabyte or more (the served JSON, versions and history
    // of a Location listing 350k targets, 18 MB each; a large location's
    // record) live in blob files, the tables holding a reference. In a
    // table such a value shared its data block with the keys before it:
    // a seek to any of them decompressed the whole value (larger than a
    // block cache shard, so never kept), which at 1M entities turned into
    // most of the projector's time, and every compaction passing it
    // rewrote it in its table builder.
    opts.set_enable_blob_files(true);
    opts.set_min_blob_size(1 << 20);
    opts.set_blob_compression_type(rocksdb::DBCompressionType::Lz4);
    opts.set_enable_blob_gc(true);
    let mut block = rocksdb::BlockBasedOptions::default();
    block.set_block_cache(cache);
    block.set_bloom_filter(10.0, false);
    // Index and filter blocks are what every point read consults first.
    // They stay in the table readers' memory, outside the block cache
    // (about 1.3 bytes of filter per key, and an index of a few per cent of
    // the data): in the cache, at 1M entities, they were evicted by data
    // blocks and read back from the files on nearly every lookup.
    block.set_cache_index_and_filter_blocks(false);
    opts.set_block_based_table_factory(&block);
    opts
}

#[cfg(feature = "rocksdb")]
impl RocksStore {
    /// Opens (creating) the store as its one writer.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        let cache = block_cache(cache_bytes);
        let db = rocksdb::DB::open(&options(&cache), path).map_err(|e| {
            if e.to_string().contains("lock") {
                StoreError::Locked {
                    path: path.display().to_string(),
                    source: e,
                }
            } else {
                StoreError::Rocks(e)
            }
        })?;
        // An empty store: this process sees every write it will ever
        // have, so it can tell keys never written without asking.
        let empty = {
            let mut it = db.raw_iterator();
            it.seek_to_first();
            it.status()?;
            !it.valid()
        };
        Ok(RocksStore {
            db,
            secondary: false,
            cache,
            cache_bytes,
            written: empty.then(crate::written::Written::new),
        })
    }

    /// Point reads answered without RocksDB because the key was never
    /// written (`None`: the store keeps no filter of its keys, having had
    /// content when opened).
    pub fn reads_never_written(&self) -> Option<u64> {
        self.written.as_ref().map(crate::written::Written::answered)
    }

    /// Whether `key` is known never to have been written.
    fn never_written(&self, key: &[u8]) -> bool {
        self.written.as_ref().is_some_and(|w| w.never_written(key))
    }

    /// What the block cache holds now, in bytes.
    pub fn cache_usage(&self) -> usize {
        self.cache.get_usage()
    }

    /// A scan whose blocks go into the block cache or not (`cache`).
    fn scan_with(
        &self,
        cache: bool,
        prefix: &[u8],
        from: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let mut ro = rocksdb::ReadOptions::default();
        ro.fill_cache(cache);
        if let Some(upper) = prefix_upper_bound(prefix) {
            ro.set_iterate_upper_bound(upper);
        }
        let mut it = self.db.raw_iterator_opt(ro);
        it.seek(from.unwrap_or(prefix));
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            if !k.starts_with(prefix) || !visit(k, v) {
                break;
            }
            it.next();
        }
        it.status()?;
        Ok(())
    }

    /// Opens a read-only secondary that follows the primary at `path`.
    pub fn open_secondary(
        path: &Path,
        secondary_path: &Path,
        cache_bytes: usize,
    ) -> Result<Self, StoreError> {
        let cache = block_cache(cache_bytes);
        let mut opts = options(&cache);
        opts.create_if_missing(false);
        let db = rocksdb::DB::open_as_secondary(&opts, path, secondary_path)?;
        Ok(RocksStore {
            db,
            secondary: true,
            cache,
            cache_bytes,
            written: None,
        })
    }
}

#[cfg(feature = "rocksdb")]
impl Store for RocksStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if self.never_written(key) {
            return Ok(None);
        }
        Ok(self.db.get(key)?)
    }

    fn scan(
        &self,
        prefix: &[u8],
        from: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.scan_with(true, prefix, from, visit)
    }

    fn scan_once(
        &self,
        prefix: &[u8],
        from: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.scan_with(false, prefix, from, visit)
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let ask: Vec<&Vec<u8>> = keys.iter().filter(|k| !self.never_written(k)).collect();
        let mut found = self
            .db
            .multi_get(ask.iter().copied())
            .into_iter()
            .map(|r| r.map_err(StoreError::from));
        if ask.len() == keys.len() {
            return found.collect();
        }
        let mut asked = ask.into_iter().peekable();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            // The keys asked are in `keys`' order, so the next one asked
            // is this key or a later one.
            if asked.peek().is_some_and(|a| std::ptr::eq(*a, k)) {
                asked.next();
                out.push(found.next().expect("one answer per key asked")?);
            } else {
                out.push(None);
            }
        }
        Ok(out)
    }

    fn scan_each(&self, prefixes: &[Vec<u8>], visit: &mut EachVisit<'_>) -> Result<(), StoreError> {
        // One iterator for the lot: creating one costs more than a seek.
        let mut it = self.db.raw_iterator();
        for (i, prefix) in prefixes.iter().enumerate() {
            it.seek(prefix);
            while it.valid() {
                let (Some(k), Some(v)) = (it.key(), it.value()) else {
                    break;
                };
                if !k.starts_with(prefix) || !visit(i, k, v) {
                    break;
                }
                it.next();
            }
            it.status()?;
        }
        Ok(())
    }

    fn last_at_or_before(&self, prefix: &[u8], upto: &[u8]) -> Result<Option<Entry>, StoreError> {
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_iterate_lower_bound(prefix.to_vec());
        let mut it = self.db.raw_iterator_opt(ro);
        it.seek_for_prev(upto);
        let found = match (it.valid(), it.key(), it.value()) {
            (true, Some(k), Some(v)) if k.starts_with(prefix) => Some((k.to_vec(), v.to_vec())),
            _ => None,
        };
        it.status()?;
        Ok(found)
    }

    fn at_and_before_each(
        &self,
        queries: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<(Option<Vec<u8>>, Option<Entry>)>, StoreError> {
        // One iterator for the lot: creating one costs more than a seek.
        let mut it = self.db.raw_iterator();
        let mut out = Vec::with_capacity(queries.len());
        for (prefix, key) in queries {
            it.seek_for_prev(key);
            let mut at = None;
            if it.valid() && it.key() == Some(key.as_slice()) {
                at = it.value().map(<[u8]>::to_vec);
                it.prev();
            }
            let before = match (it.valid(), it.key(), it.value()) {
                (true, Some(k), Some(v)) if k.starts_with(prefix) => Some((k.to_vec(), v.to_vec())),
                _ => None,
            };
            it.status()?;
            out.push((at, before));
        }
        Ok(out)
    }
    fn around(
        &self,
        prefix: &[u8],
        key: &[u8],
    ) -> Result<(Option<Entry>, Option<Entry>), StoreError> {
        let mut ro = rocksdb::ReadOptions::default();
        ro.set_iterate_lower_bound(prefix.to_vec());
        if let Some(upper) = prefix_upper_bound(prefix) {
            ro.set_iterate_upper_bound(upper);
        }
        let mut it = self.db.raw_iterator_opt(ro);
        let entry = |it: &rocksdb::DBRawIterator<'_>| match (it.valid(), it.key(), it.value()) {
            (true, Some(k), Some(v)) if k.starts_with(prefix) => Some((k.to_vec(), v.to_vec())),
            _ => None,
        };
        it.seek_for_prev(key);
        let before = entry(&it);
        if it.valid() {
            it.next();
        } else {
            it.seek(key);
        }
        let after = entry(&it).filter(|(k, _)| k.as_slice() > key);
        it.status()?;
        Ok((before, after))
    }

    fn version(&self) -> u64 {
        self.db.latest_sequence_number()
    }

    fn write(&self, changes: WriteSet) -> Result<(), StoreError> {
        // Applied in the order given, so of two changes to one key the
        // last wins. (Sorting the batch first, for the memtable's sake,
        // cost more than it saved: a 100k rebuild took 26.1 s with it,
        // 23.3 s without.)
        //
        // The batch is allocated once at its full size: grown by doubling,
        // its buffer (RocksDB's, outside the Rust allocator) was copied
        // and faulted in again at each step.
        let mut batch = rocksdb::WriteBatch::with_capacity_bytes(batch_bytes(&changes));
        for (k, v) in changes {
            match v {
                Some(v) => {
                    // The filter learns the key before RocksDB has it: a
                    // reader that sees the write finds its keys there too.
                    if let Some(w) = &self.written {
                        w.add(&k);
                    }
                    batch.put(k, v)
                }
                None => batch.delete(k),
            }
        }
        self.db.write(batch)?;
        Ok(())
    }

    fn lend_cache(&self, lend: bool) {
        let size = if lend {
            self.cache_bytes / LENT_CACHE_SHARE
        } else {
            self.cache_bytes
        };
        // The cache is shared; a clone is a handle to it.
        self.cache.clone().set_capacity(size);
    }

    fn catch_up(&self) -> Result<(), StoreError> {
        if self.secondary {
            self.db.try_catch_up_with_primary()?;
        }
        Ok(())
    }
}

/// At least what a RocksDB write batch of `changes` holds: its header,
/// then per change a tag, the key and the value, each length a varint
/// (5 bytes at most).
#[cfg(feature = "rocksdb")]
fn batch_bytes(changes: &WriteSet) -> usize {
    const HEADER: usize = 12;
    HEADER
        + changes
            .iter()
            .map(|(k, v)| 1 + 5 + k.len() + v.as_ref().map_or(0, |v| 5 + v.len()))
            .sum::<usize>()
}

#[cfg(feature = "rocksdb")]
/// The smallest key greater than every key with this prefix.
fn prefix_upper_bound(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut upper = prefix.to_vec();
    while let Some(last) = upper.pop() {
        if last < u8::MAX {
            upper.push(last + 1);
            return Some(upper);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "rocksdb")]
    #[test]
    fn of_two_changes_to_one_key_in_a_write_the_last_wins() {
        let dir = tempfile::tempdir().unwrap();
        let rocks = RocksStore::open(dir.path(), 1 << 20).unwrap();
        let memory = MemStore::new();
        let put = |k: &str, v: &str| (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()));
        let delete = |k: &str| (k.as_bytes().to_vec(), None);
        // Keys out of order, each changed twice or more, a put after a
        // delete and a delete after a put.
        let writes = vec![
            put("m", "1"),
            put("b", "1"),
            delete("m"),
            put("z", "1"),
            put("b", "2"),
            put("m", "3"),
            put("a", "1"),
            put("z", "2"),
            delete("a"),
        ];
        for store in [&rocks as &dyn Store, &memory] {
            store.write(writes.clone()).unwrap();
            let got: Vec<(String, Option<Vec<u8>>)> = ["a", "b", "m", "z"]
                .iter()
                .map(|k| (k.to_string(), store.get(k.as_bytes()).unwrap()))
                .collect();
            assert_eq!(
                got,
                vec![
                    ("a".to_string(), None),
                    ("b".to_string(), Some(b"2".to_vec())),
                    ("m".to_string(), Some(b"3".to_vec())),
                    ("z".to_string(), Some(b"2".to_vec())),
                ]
            );
        }
    }

    #[cfg(feature = "rocksdb")]
    #[test]
    fn a_write_batch_is_sized_ahead_for_all_it_holds() {
        // Lengths on both sides of each varint width (1, 2 and 3 bytes),
        // empty keys and values, deletes.
        let mut changes: WriteSet = Vec::new();
        for (i, len) in [0usize, 1, 127, 128, 16_383, 16_384, 70_000]
            .into_iter()
            .enumerate()
        {
            changes.push((vec![b'k'; len], Some(vec![b'v'; len])));
            changes.push((vec![b'd'; len], None));
            changes.push((vec![i as u8], Some(vec![b'w'; len])));
        }
        let mut batch = rocksdb::WriteBatch::default();
        for (k, v) in &changes {
            match v {
                Some(v) => batch.put(k, v),
                None => batch.delete(k),
            }
        }
        let needed = batch.size_in_bytes();
        let sized = batch_bytes(&changes);
        assert!(sized >= needed, "sized {sized} for a batch of {needed}");
        // And not far over: at most 9 bytes of slack per change.
        assert!(sized <= needed + 9 * changes.len());
    }

    #[cfg(feature = "rocksdb")]
    #[test]
    fn a_store_created_empty_reads_keys_never_written_without_rocksdb() {
        let dir = tempfile::tempdir().unwrap();
        let rocks = RocksStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(rocks.reads_never_written(), Some(0));
        let written: Vec<Vec<u8>> = (0..1000).map(|i| numbered_key(i * 2)).collect();
        rocks
            .write(
                written
                    .iter()
                    .map(|k| (k.clone(), Some(k.clone())))
                    .collect(),
            )
            .unwrap();
        // A key put then deleted, and one only ever deleted.
        rocks
            .write(vec![(numbered_key(0), None), (b"gone".to_vec(), None)])
            .unwrap();
        rocks.db.flush().unwrap();
        let expect = |i: u32| (i.is_multiple_of(2) && i > 0).then(|| numbered_key(i));
        for i in 0..2000 {
            assert_eq!(rocks.get(&numbered_key(i)).unwrap(), expect(i), "key {i}");
        }
        assert_eq!(rocks.get(b"gone").unwrap(), None);
        // The odd keys, but a few that seem written (a false "maybe"
        // asks RocksDB, which finds nothing either).
        let skipped = rocks.reads_never_written().unwrap();
        assert!((900..=1001).contains(&skipped), "{skipped} reads skipped");
        // Many at once: the answers in the order asked, asked or not.
        let keys: Vec<Vec<u8>> = (0..2000).rev().map(numbered_key).collect();
        let got = rocks.get_many(&keys).unwrap();
        let want: Vec<Option<Vec<u8>>> = (0..2000).rev().map(expect).collect();
        assert_eq!(got, want);
        assert!(rocks.reads_never_written().unwrap() >= skipped + 900);
    }

    #[cfg(feature = "rocksdb")]
    #[test]
    fn a_store_opened_with_content_asks_rocksdb_for_every_read() {
        let dir = tempfile::tempdir().unwrap();
        let rocks = RocksStore::open(dir.path(), 1 << 20).unwrap();
        rocks
            .write(vec![(b"a".to_vec(), Some(b"1".to_vec()))])
            .unwrap();
        drop(rocks);
        // Reopened, it holds keys this handle did not see written: it
        // keeps no filter and asks RocksDB for every read.
        let rocks = RocksStore::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(rocks.reads_never_written(), None);
        assert_eq!(rocks.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(rocks.get(b"b").unwrap(), None);
        assert_eq!(
            rocks.get_many(&[b"b".to_vec(), b"a".to_vec()]).unwrap(),
            vec![None, Some(b"1".to_vec())]
        );
    }

    /// The `i`th key of a test table (`k` and six digits, in order).
    #[cfg(feature = "rocksdb")]
    fn numbered_key(i: u32) -> Vec<u8> {
        format!("k{i:06}").into_bytes()
    }

    /// `len` bytes for the `i`th key that do not compress, so that a table
    /// of them is read through the block cache block by block.
    #[cfg(feature = "rocksdb")]
    fn incompressible(i: u32, len: u32) -> Vec<u8> {
        (0..len)
            .map(|j| (i.wrapping_mul(2_654_435_761) ^ j.wrapping_mul(40_503)).to_le_bytes()[1])
            .collect()
    }

    #[cfg(feature = "rocksdb")]
    #[test]
    fn a_lent_cache_keeps_a_quarter_of_its_size_until_the_loan_ends() {
        let dir = tempfile::tempdir().unwrap();
        let size = 4 << 20;
        let rocks = RocksStore::open(dir.path(), size).unwrap();
        // 16 MiB of values that do not compress, in tables, so that reads
        // go through the block cache.
        let (key, value) = (numbered_key, |i| incompressible(i, 1024));
        for chunk in (0..16_384u32).collect::<Vec<_>>().chunks(4096) {
            rocks
                .write(chunk.iter().map(|i| (key(*i), Some(value(*i)))).collect())
                .unwrap();
        }
        rocks.db.flush().unwrap();
        let read_all = || {
            for i in 0..16_384u32 {
                assert_eq!(rocks.get(&key(i)).unwrap(), Some(value(i)));
            }
        };
        read_all();
        let full = rocks.cache_usage();
        assert!(full > size / 2, "reads filled the cache: {full} bytes");

        // The clock cache evicts as blocks come in, not when told its new
        // size: what the loan's batch reads replaces what was kept.
        rocks.lend_cache(true);
        read_all();
        let lent = rocks.cache_usage();
        assert!(
            lent <= size / LENT_CACHE_SHARE,
            "and keeps it small: {lent} bytes"
        );

        rocks.lend_cache(false);
        read_all();
        let back = rocks.cache_usage();
        assert!(
            back > size / 2,
            "the loan over, reads fill it again: {back} bytes"
        );
    }

    #[cfg(feature = "rocksdb")]
    #[test]
    fn a_scan_once_reads_what_a_scan_reads_and_leaves_the_cache_alone() {
        let dir = tempfile::tempdir().unwrap();
        let size = 8 << 20;
        let rocks = RocksStore::open(dir.path(), size).unwrap();
        let (key, value) = (numbered_key, |i| incompressible(i, 512));
        rocks
            .write((0..8_192u32).map(|i| (key(i), Some(value(i)))).collect())
            .unwrap();
        rocks.db.flush().unwrap();
        let read = |once: bool, from: Option<&[u8]>| {
            let mut seen = Vec::new();
            let visit = &mut |k: &[u8], v: &[u8]| {
                seen.push((k.to_vec(), v.to_vec()));
                seen.len() < 5_000
            };
            if once {
                rocks.scan_once(b"k", from, visit).unwrap();
            } else {
                rocks.scan(b"k", from, visit).unwrap();
            }
            seen
        };
        let from = key(1_234);
        for from in [None, Some(from.as_slice())] {
            let all = read(true, from);
            assert_eq!(all.len(), 5_000);
            assert!(all == read(false, from), "the same entries from {from:?}");
        }
        // Only the scans that keep what they read filled the cache.
        let rocks = {
            drop(rocks);
            RocksStore::open(dir.path(), size).unwrap()
        };
        rocks.scan_once(b"k", None, &mut |_, _| true).unwrap();
        let once = rocks.cache_usage();
        assert!(once < 64 << 10, "a scan once kept {once} bytes");
        rocks.scan(b"k", None, &mut |_, _| true).unwrap();
        let kept = rocks.cache_usage();
        assert!(kept > 2 << 20, "a scan kept {kept} bytes");
    }

    #[cfg(feature = "rocksdb")]
    #[test]
    fn reverse_seeks_agree_between_rocksdb_and_memory() {
        let dir = tempfile::tempdir().unwrap();
        let rocks = RocksStore::open(dir.path(), 1 << 20).unwrap();
        let mem = MemStore::new();
        let keys: Vec<&[u8]> = vec![
            b"Pa\x00\x01",
            b"Pa\x00\x05",
            b"Pa\x00\x09",
            b"Pab\x00\x03",
            b"Q",
        ];
        let w: WriteSet = keys
            .iter()
            .map(|k| (k.to_vec(), Some(k.to_vec())))
            .collect();
        rocks.write(w.clone()).unwrap();
        mem.write(w).unwrap();
        let prefixes: [&[u8]; 3] = [b"Pa\x00", b"Pab\x00", b"Pz\x00"];
        for prefix in prefixes {
            for probe in 0u8..12 {
                let mut key = prefix.to_vec();
                key.push(probe);
                assert_eq!(
                    rocks.around(prefix, &key).unwrap(),
                    mem.around(prefix, &key).unwrap(),
                    "around {key:?}"
                );
                assert_eq!(
                    rocks.last_at_or_before(prefix, &key).unwrap(),
                    mem.last_at_or_before(prefix, &key).unwrap(),
                    "before {key:?}"
                );
            }
        }
        // Many at once, as the feed reads bodies: the same answers from the
        // default (a get and a scan per query), the in-memory map and one
        // RocksDB iterator, visiting prefixes out of order.
        let mut queries = Vec::new();
        for prefix in [b"Pab\x00".as_slice(), b"Pa\x00", b"Pz\x00", b"Pa\x00"] {
            for probe in (0u8..12).rev() {
                let mut key = prefix.to_vec();
                key.push(probe);
                queries.push((prefix.to_vec(), key));
            }
        }
        struct Plain<'a>(&'a MemStore);
        impl Store for Plain<'_> {
            fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
                self.0.get(key)
            }
            fn scan(
                &self,
                prefix: &[u8],
                from: Option<&[u8]>,
                visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
            ) -> Result<(), StoreError> {
                self.0.scan(prefix, from, visit)
            }
            fn version(&self) -> u64 {
                self.0.version()
            }
            fn write(&self, changes: WriteSet) -> Result<(), StoreError> {
                self.0.write(changes)
            }
        }
        let each = mem.at_and_before_each(&queries).unwrap();
        assert_eq!(rocks.at_and_before_each(&queries).unwrap(), each);
        assert_eq!(Plain(&mem).at_and_before_each(&queries).unwrap(), each);
        let at = |k: &[u8]| queries.iter().position(|(_, q)| q == k).unwrap();
        assert_eq!(
            each[at(b"Pa\x00\x05")],
            (
                Some(b"Pa\x00\x05".to_vec()),
                Some((b"Pa\x00\x01".to_vec(), b"Pa\x00\x01".to_vec()))
            )
        );
        assert_eq!(
            each[at(b"Pa\x00\x01")],
            (Some(b"Pa\x00\x01".to_vec()), None)
        );
        assert_eq!(
            each[at(b"Pab\x00\x03")].1,
            None,
            "another ref's versions are not this one's"
        );
        let (before, after) = mem.around(b"Pa\x00", b"Pa\x00\x05").unwrap();
        assert_eq!(before.unwrap().0, b"Pa\x00\x05".to_vec());
        assert_eq!(after.unwrap().0, b"Pa\x00\x09".to_vec());
        let (before, after) = mem.around(b"Pa\x00", b"Pa\x00\x00").unwrap();
        assert!(before.is_none());
        assert_eq!(after.unwrap().0, b"Pa\x00\x01".to_vec());
        let (before, after) = mem.around(b"Pa\x00", b"Pa\x00\x0a").unwrap();
        assert_eq!(before.unwrap().0, b"Pa\x00\x09".to_vec());
        assert!(
            after.is_none(),
            "the next ref's versions are not this one's"
        );
    }

    #[cfg(feature = "rocksdb")]
    #[test]
    fn large_values_in_blob_files_read_back_from_primary_and_secondary() {
        let dir = tempfile::tempdir().unwrap();
        let big = |c: u8| vec![c; 3 << 20];
        let writes: WriteSet = vec![
            (b"Pa\0\x01".to_vec(), Some(b"small a".to_vec())),
            (b"Pb\0\x01".to_vec(), Some(big(b'b'))),
            (b"Pb\0\x02".to_vec(), Some(b"small b".to_vec())),
            (b"Pc\0\x01".to_vec(), Some(big(b'c'))),
        ];
        {
            let rocks = RocksStore::open(dir.path(), 1 << 20).unwrap();
            rocks.write(writes.clone()).unwrap();
        }
        // Reopened, the memtable is flushed: the large values are in a blob
        // file now.
        let rocks = RocksStore::open(dir.path(), 1 << 20).unwrap();
        let blobs = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("blob".as_ref()))
            .count();
        assert!(blobs > 0, "no blob file was written");
        let mem = MemStore::new();
        mem.write(writes).unwrap();
        let second = tempfile::tempdir().unwrap();
        let secondary = RocksStore::open_secondary(dir.path(), second.path(), 1 << 20).unwrap();
        secondary.catch_up().unwrap();
        for store in [&rocks as &dyn Store, &secondary] {
            assert_eq!(store.get(b"Pc\0\x01").unwrap(), Some(big(b'c')));
            for prefix in [&b"P"[..], b"Pb\0", b"Pc\0"] {
                let mut seen = Vec::new();
                store
                    .scan(prefix, None, &mut |k, v| {
                        seen.push((k.to_vec(), v.to_vec()));
                        true
                    })
                    .unwrap();
                let mut want = Vec::new();
                mem.scan(prefix, None, &mut |k, v| {
                    want.push((k.to_vec(), v.to_vec()));
                    true
                })
                .unwrap();
                assert_eq!(seen, want);
            }
            for (prefix, key) in [
                (&b"Pb\0"[..], &b"Pb\0\x01"[..]),
                (b"Pb\0", b"Pb\0\x00"),
                (b"Pa\0", b"Pa\0\x09"),
                (b"Pc\0", b"Pc\0\x01"),
            ] {
                assert_eq!(
                    store.around(prefix, key).unwrap(),
                    mem.around(prefix, key).unwrap()
                );
            }
        }
    }

    #[test]
    fn upper_bound_of_prefix() {
        assert_eq!(prefix_upper_bound(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_upper_bound(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_upper_bound(b"\xff\xff"), None);
    }
}
