//! The per-source sync state: what ingest last shipped for every location,
//! kept in a small RocksDB of its own so that a restart neither re-emits
//! everything nor forgets what has to be removed.
//!
//! Key: `u16 BE length of the source id | source id | location key`.
//! Value: a versioned JSON [`LocationRecord`]; an unknown version is an
//! error naming the key, never a silent misread.
//!
//! A source's records are read from disk once and then kept in memory
//! (written through on every change), so that a poll every second does not
//! decode thousands of records every second.

use chrono::{DateTime, Utc};
use proto::{DecodeError, LocationKey, SourceId, SubjectKey, Versioned};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// Why the state store failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[cfg(feature = "rocksdb")]
    #[error("sync state: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("sync state: record {key:?}: {source}")]
    Decode {
        key: String,
        #[source]
        source: DecodeError,
    },
    #[error("sync state: malformed key {0:?}")]
    BadKey(String),
}

/// What a location held when it was last shipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ContentState {
    /// Shipped as content with this SHA-256 (hex) of the raw bytes.
    Present { sha256: String },
    /// Over the limit; not read.
    TooLarge { size: u64, limit: u64 },
    /// Could not be read.
    Unreadable { reason: String },
}

/// Cheap identity of a file version: when it is unchanged the file is not
/// read again. Only stored when the file was not modified within the racy
/// window of the stat (see [`crate::files`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time (Unix), nanoseconds since the epoch; 0 elsewhere.
    pub ctime_ns: i64,
    /// Inode number (Unix); 0 elsewhere.
    pub inode: u64,
}

/// The state of one (source, location).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocationRecord {
    pub origin: LocationKey,
    /// Set when the location is first shipped; kept until it is removed.
    pub first_seen_at: DateTime<Utc>,
    #[serde(flatten)]
    pub content: ContentState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    /// Absolute paths or globs of the `Location` targets the content names,
    /// so an unchanged file need not be parsed again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}

impl Versioned for LocationRecord {
    const SCHEMA: &'static str = "catalog.ingest.location-state";
    const VERSION: u32 = 1;
}

/// Column family of [`FactRecord`]s, keyed like locations by subject.
const FACTS_CF: &str = "facts";
/// Column family of what sources keep for themselves (HTTP validators,
/// per-repository summaries), keyed by source, namespace and key.
const AUX_CF: &str = "aux";

/// What was last shipped about a subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactRecord {
    /// SHA-256 (hex) of the facts' JSON.
    pub sha256: String,
}

impl Versioned for FactRecord {
    const SCHEMA: &'static str = "catalog.ingest.fact-state";
    const VERSION: u32 = 1;
}

/// A change to the fact state of a source.
#[derive(Debug, Clone, PartialEq)]
pub enum FactChange {
    Put(SubjectKey, FactRecord),
    Delete(SubjectKey),
}

/// A change to apply to a source's state.
#[derive(Debug, Clone, PartialEq)]
pub enum StateChange {
    Put(LocationKey, LocationRecord),
    Delete(LocationKey),
}

/// A raw key and value.
type KeyValue = (Vec<u8>, Vec<u8>);

/// Changes [`StateStore::apply`] writes at once.
const APPLY_CHUNK: usize = 4096;

/// A source's records, by location.
pub type Records = BTreeMap<LocationKey, LocationRecord>;

/// The sync state of every source.
pub struct StateStore {
    kv: backend::Kv,
    /// Records of the sources loaded so far; always equal to the disk.
    cache: Mutex<HashMap<SourceId, Arc<Records>>>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.kv.path())
            .finish()
    }
}

/// The column families: locations (`None`, the default family), facts, aux.
type Family = Option<&'static str>;

/// One atomic write: puts (`Some`) and deletes (`None`) by family and key.
type Batch = Vec<(Family, Vec<u8>, Option<Vec<u8>>)>;

/// The key-value store under the state: RocksDB.
#[cfg(feature = "rocksdb")]
mod backend {
    use super::{AUX_CF, Batch, FACTS_CF, Family, KeyValue, StateError};
    use std::path::{Path, PathBuf};

    pub(super) struct Kv {
        db: rocksdb::DB,
    }

    impl Kv {
        pub(super) fn open(path: &Path) -> Result<Kv, StateError> {
            let mut opts = rocksdb::Options::default();
            opts.create_if_missing(true);
            // A small store: keep its footprint small too.
            opts.set_max_open_files(64);
            opts.set_keep_log_file_num(2);
            opts.set_write_buffer_size(8 << 20);
            opts.create_missing_column_families(true);
            let db = rocksdb::DB::open_cf(&opts, path, [FACTS_CF, AUX_CF])?;
            Ok(Kv { db })
        }

        pub(super) fn path(&self) -> PathBuf {
            self.db.path().to_path_buf()
        }

        fn cf(&self, name: &str) -> std::sync::Arc<rocksdb::BoundColumnFamily<'_>> {
            self.db
                .cf_handle(name)
                .expect("column families are created at open")
        }

        pub(super) fn get(
            &self,
            family: Family,
            key: &[u8],
        ) -> Result<Option<Vec<u8>>, StateError> {
            Ok(match family {
                None => self.db.get(key)?,
                Some(cf) => self.db.get_cf(&self.cf(cf), key)?,
            })
        }

        pub(super) fn write(&self, batch: Batch) -> Result<(), StateError> {
            let mut b = rocksdb::WriteBatch::default();
            for (family, k, v) in batch {
                match (family, v) {
                    (None, Some(v)) => b.put(k, v),
                    (None, None) => b.delete(k),
                    (Some(cf), Some(v)) => b.put_cf(&self.cf(cf), k, v),
                    (Some(cf), None) => b.delete_cf(&self.cf(cf), k),
                }
            }
            Ok(self.db.write(b)?)
        }

        /// The entries under `prefix`, prefix stripped.
        pub(super) fn scan(
            &self,
            family: Family,
            prefix: &[u8],
        ) -> Result<Vec<KeyValue>, StateError> {
            let mode = rocksdb::IteratorMode::From(prefix, rocksdb::Direction::Forward);
            let iter = match family {
                None => self.db.iterator(mode),
                Some(cf) => self.db.iterator_cf(&self.cf(cf), mode),
            };
            let mut out = Vec::new();
            for item in iter {
                let (k, v) = item?;
                let Some(rest) = k.strip_prefix(prefix) else {
                    break;
                };
                out.push((rest.to_vec(), v.to_vec()));
            }
            Ok(out)
        }

        /// The first key at or after `from`.
        pub(super) fn first_key(
            &self,
            family: Family,
            from: &[u8],
        ) -> Result<Option<Vec<u8>>, StateError> {
            let mode = rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward);
            let mut iter = match family {
                None => self.db.iterator(mode),
                Some(cf) => self.db.iterator_cf(&self.cf(cf), mode),
            };
            Ok(iter.next().transpose()?.map(|(k, _)| k.to_vec()))
        }
    }
}

/// The key-value store under the state, in memory: builds without RocksDB
/// (the fuzz targets of the parsers) keep nothing across restarts.
#[cfg(not(feature = "rocksdb"))]
mod backend {
    use super::{Batch, Family, KeyValue, StateError};
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    type Table = BTreeMap<(Family, Vec<u8>), Vec<u8>>;

    pub(super) struct Kv {
        path: PathBuf,
        table: Mutex<Table>,
    }

    impl Kv {
        pub(super) fn open(path: &Path) -> Result<Kv, StateError> {
            Ok(Kv {
                path: path.to_path_buf(),
                table: Mutex::new(BTreeMap::new()),
            })
        }

        pub(super) fn path(&self) -> PathBuf {
            self.path.clone()
        }

        fn table(&self) -> std::sync::MutexGuard<'_, Table> {
            self.table.lock().unwrap_or_else(|e| e.into_inner())
        }

        pub(super) fn get(
            &self,
            family: Family,
            key: &[u8],
        ) -> Result<Option<Vec<u8>>, StateError> {
            Ok(self.table().get(&(family, key.to_vec())).cloned())
        }

        pub(super) fn write(&self, batch: Batch) -> Result<(), StateError> {
            let mut table = self.table();
            for (family, k, v) in batch {
                match v {
                    Some(v) => table.insert((family, k), v),
                    None => table.remove(&(family, k)),
                };
            }
            Ok(())
        }

        pub(super) fn scan(
            &self,
            family: Family,
            prefix: &[u8],
        ) -> Result<Vec<KeyValue>, StateError> {
            Ok(self
                .table()
                .range((family, prefix.to_vec())..)
                .take_while(|((f, k), _)| *f == family && k.starts_with(prefix))
                .map(|((_, k), v)| (k[prefix.len()..].to_vec(), v.clone()))
                .collect())
        }

        pub(super) fn first_key(
            &self,
            family: Family,
            from: &[u8],
        ) -> Result<Option<Vec<u8>>, StateError> {
            Ok(self
                .table()
                .range((family, from.to_vec())..)
                .next()
                .filter(|((f, _), _)| *f == family)
                .map(|((_, k), _)| k.clone()))
        }
    }
}

fn prefix(source: &SourceId) -> Vec<u8> {
    let s = source.as_str().as_bytes();
    let len = u16::try_from(s.len()).expect("source ids are short");
    let mut k = Vec::with_capacity(2 + s.len());
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(s);
    k
}

fn key(source: &SourceId, location: &LocationKey) -> Vec<u8> {
    let mut k = prefix(source);
    k.extend_from_slice(location.as_str().as_bytes());
    k
}

fn utf8_key(k: Vec<u8>) -> Result<String, StateError> {
    String::from_utf8(k)
        .map_err(|e| StateError::BadKey(String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

impl StateStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        Ok(StateStore {
            kv: backend::Kv::open(path)?,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn cache(&self) -> MutexGuard<'_, HashMap<SourceId, Arc<Records>>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every record of `source`, by location. Drop the result before
    /// [`StateStore::apply`] to spare it a copy.
    pub fn load(&self, source: &SourceId) -> Result<Arc<Records>, StateError> {
        // Read under the cache's lock: no apply can slip in between.
        let mut cache = self.cache();
        if let Some(r) = cache.get(source) {
            return Ok(r.clone());
        }
        let records = Arc::new(self.read(source)?);
        cache.insert(source.clone(), records.clone());
        Ok(records)
    }

    fn read(&self, source: &SourceId) -> Result<Records, StateError> {
        let mut out = BTreeMap::new();
        for (k, v) in self.kv.scan(None, &prefix(source))? {
            let loc = utf8_key(k)?;
            let record = decode(source, &loc, &v)?;
            out.insert(LocationKey::new(loc), record);
        }
        Ok(out)
    }

    /// The record of one location.
    pub fn get(
        &self,
        source: &SourceId,
        location: &LocationKey,
    ) -> Result<Option<LocationRecord>, StateError> {
        if let Some(r) = self.cache().get(source) {
            return Ok(r.get(location).cloned());
        }
        match self.kv.get(None, &key(source, location))? {
            Some(v) => Ok(Some(decode(source, location.as_str(), &v)?)),
            None => Ok(None),
        }
    }

    /// Applies `changes`, in order, in writes of [`APPLY_CHUNK`] (a first
    /// sync of half a million files would otherwise encode, batch and
    /// insert them all at once). A crash part way leaves some applied: the
    /// sync that made them had shipped all of them already, and what is
    /// not remembered is only shipped again.
    pub fn apply(&self, source: &SourceId, changes: Vec<StateChange>) -> Result<(), StateError> {
        if changes.is_empty() {
            return Ok(());
        }
        // Write and update the cache under its lock, so that a concurrent
        // load never caches what is already stale.
        let mut cache = self.cache();
        let mut changes = changes.into_iter().peekable();
        while changes.peek().is_some() {
            let chunk: Vec<StateChange> = changes.by_ref().take(APPLY_CHUNK).collect();
            let batch = chunk
                .iter()
                .map(|c| match c {
                    StateChange::Put(loc, rec) => (None, key(source, loc), Some(rec.encode())),
                    StateChange::Delete(loc) => (None, key(source, loc), None),
                })
                .collect();
            self.kv.write(batch)?;
            if let Some(records) = cache.get_mut(source) {
                let records = Arc::make_mut(records);
                for c in chunk {
                    match c {
                        StateChange::Put(loc, rec) => {
                            records.insert(loc, rec);
                        }
                        StateChange::Delete(loc) => {
                            records.remove(&loc);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Every source that has locations or subjects in the state, whether
    /// configured or not (a source removed from the configuration keeps
    /// its records until they are removed from the catalog).
    pub fn source_ids(&self) -> Result<std::collections::BTreeSet<SourceId>, StateError> {
        let mut out = std::collections::BTreeSet::new();
        for family in [None, Some(FACTS_CF)] {
            let mut from = Vec::new();
            while let Some(k) = self.kv.first_key(family, &from)? {
                let Some((len, rest)) = k.split_first_chunk::<2>() else {
                    return Err(StateError::BadKey(String::from_utf8_lossy(&k).into_owned()));
                };
                let len = usize::from(u16::from_be_bytes(*len));
                let Some(id) = rest.get(..len) else {
                    return Err(StateError::BadKey(String::from_utf8_lossy(&k).into_owned()));
                };
                let id = SourceId::new(utf8_key(id.to_vec())?);
                // Past every key of this source: its prefix with the last
                // byte raised (ids are UTF-8, so no byte is 0xff).
                from = prefix(&id);
                if let Some(last) = from.last_mut() {
                    *last += 1;
                }
                out.insert(id);
            }
        }
        Ok(out)
    }

    /// Deletes every value a source kept for itself (a retired source's).
    pub fn aux_clear(&self, source: &SourceId) -> Result<(), StateError> {
        let batch = self
            .kv
            .scan(Some(AUX_CF), &prefix(source))?
            .into_iter()
            .map(|(k, _)| {
                let mut key = prefix(source);
                key.extend_from_slice(&k);
                (Some(AUX_CF), key, None)
            })
            .collect();
        self.kv.write(batch)
    }

    /// What was last shipped about every subject of `source`.
    pub fn facts(&self, source: &SourceId) -> Result<BTreeMap<SubjectKey, FactRecord>, StateError> {
        let mut out = BTreeMap::new();
        for (k, v) in self.kv.scan(Some(FACTS_CF), &prefix(source))? {
            let subject = utf8_key(k)?;
            let rec = FactRecord::decode(&v).map_err(|e| StateError::Decode {
                key: format!("{source}/{subject}"),
                source: e,
            })?;
            out.insert(SubjectKey::new(subject), rec);
        }
        Ok(out)
    }

    pub fn apply_facts(&self, source: &SourceId, changes: &[FactChange]) -> Result<(), StateError> {
        if changes.is_empty() {
            return Ok(());
        }
        let batch = changes
            .iter()
            .map(|c| match c {
                FactChange::Put(s, rec) => (
                    Some(FACTS_CF),
                    key(source, &LocationKey::new(s.as_str())),
                    Some(rec.encode()),
                ),
                FactChange::Delete(s) => (
                    Some(FACTS_CF),
                    key(source, &LocationKey::new(s.as_str())),
                    None,
                ),
            })
            .collect();
        self.kv.write(batch)
    }

    fn aux_key(source: &SourceId, namespace: &str, key: &str) -> Vec<u8> {
        let mut k = prefix(source);
        k.extend_from_slice(namespace.as_bytes());
        k.push(0);
        k.extend_from_slice(key.as_bytes());
        k
    }

    /// A value a source keeps for itself under `namespace`/`key`.
    pub fn aux_get(
        &self,
        source: &SourceId,
        namespace: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StateError> {
        self.kv
            .get(Some(AUX_CF), &Self::aux_key(source, namespace, key))
    }

    /// Writes (`Some`) or deletes (`None`) values of a source, atomically.
    pub fn aux_write<'a>(
        &self,
        source: &SourceId,
        namespace: &str,
        entries: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    ) -> Result<(), StateError> {
        let batch = entries
            .into_iter()
            .map(|(k, v)| {
                (
                    Some(AUX_CF),
                    Self::aux_key(source, namespace, k),
                    v.map(<[u8]>::to_vec),
                )
            })
            .collect();
        self.kv.write(batch)
    }

    /// Every value of a source under `namespace`, by key.
    pub fn aux_scan(
        &self,
        source: &SourceId,
        namespace: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        self.kv
            .scan(Some(AUX_CF), &Self::aux_key(source, namespace, ""))?
            .into_iter()
            .map(|(k, v)| Ok((utf8_key(k)?, v)))
            .collect()
    }

    /// Writes raw bytes under a location's key (tests of version handling).
    #[doc(hidden)]
    pub fn put_raw(
        &self,
        source: &SourceId,
        location: &LocationKey,
        value: &[u8],
    ) -> Result<(), StateError> {
        self.kv
            .write(vec![(None, key(source, location), Some(value.to_vec()))])?;
        self.cache().remove(source);
        Ok(())
    }
}

fn decode(source: &SourceId, location: &str, bytes: &[u8]) -> Result<LocationRecord, StateError> {
    LocationRecord::decode(bytes).map_err(|e| StateError::Decode {
        key: format!("{source}/{location}"),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sha: &str) -> LocationRecord {
        LocationRecord {
            origin: LocationKey::new("file:/root"),
            first_seen_at: "2024-01-02T03:04:05Z".parse().unwrap(),
            content: ContentState::Present { sha256: sha.into() },
            fingerprint: Some(Fingerprint {
                size: 10,
                mtime_ns: 1_700_000_000_123_456_789,
                ctime_ns: 1_700_000_000_123_456_789,
                inode: 42,
            }),
            targets: vec!["/root/x/*.yaml".into()],
        }
    }

    #[test]
    fn round_trips_and_separates_sources() {
        let dir = tempfile::tempdir().unwrap();
        let st = StateStore::open(dir.path()).unwrap();
        let a = SourceId::new("a");
        let ab = SourceId::new("ab");
        let k1 = LocationKey::new("file:/x/1.yaml");
        let k2 = LocationKey::new("file:/x/2.yaml");
        st.apply(
            &a,
            vec![
                StateChange::Put(k1.clone(), record("11")),
                StateChange::Put(k2.clone(), record("22")),
            ],
        )
        .unwrap();
        st.apply(&ab, vec![StateChange::Put(k1.clone(), record("33"))])
            .unwrap();
        let loaded = st.load(&a).unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[&k1], record("11"));
        assert_eq!(st.load(&ab).unwrap()[&k1], record("33"));
        assert!(st.load(&SourceId::new("b")).unwrap().is_empty());

        st.apply(&a, vec![StateChange::Delete(k1.clone())]).unwrap();
        assert_eq!(st.get(&a, &k1).unwrap(), None);
        assert_eq!(st.get(&a, &k2).unwrap(), Some(record("22")));
        assert_eq!(st.get(&ab, &k1).unwrap(), Some(record("33")));
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let a = SourceId::new("a");
        let k = LocationKey::new("file:/x/1.yaml");
        {
            let st = StateStore::open(dir.path()).unwrap();
            st.apply(&a, vec![StateChange::Put(k.clone(), record("11"))])
                .unwrap();
        }
        let st = StateStore::open(dir.path()).unwrap();
        assert_eq!(st.get(&a, &k).unwrap(), Some(record("11")));
    }

    /// More changes than one write holds: all are on disk and in the
    /// cached records, in order (a later change of a location wins).
    #[test]
    fn changes_beyond_one_write_are_all_applied_and_cached() {
        let dir = tempfile::tempdir().unwrap();
        let a = SourceId::new("a");
        let n = APPLY_CHUNK * 2 + 7;
        let k = |i: usize| LocationKey::new(format!("file:/x/{i:06}.yaml"));
        {
            let st = StateStore::open(dir.path()).unwrap();
            st.apply(
                &a,
                (0..n)
                    .map(|i| StateChange::Put(k(i), record("1")))
                    .collect(),
            )
            .unwrap();
            assert_eq!(
                st.load(&a).unwrap().len(),
                n,
                "cached before the next apply"
            );
            // Puts and deletes across chunk boundaries; location 0 is put,
            // deleted and put again in the one call.
            let mut changes: Vec<StateChange> = (0..n)
                .filter(|i| i % 3 == 0)
                .map(|i| StateChange::Delete(k(i)))
                .collect();
            changes.extend(
                (0..n)
                    .filter(|i| i % 3 == 1)
                    .map(|i| StateChange::Put(k(i), record("2"))),
            );
            changes.push(StateChange::Put(k(0), record("3")));
            st.apply(&a, changes).unwrap();
            let cached = st.load(&a).unwrap();
            assert_eq!(cached.len(), n - n.div_ceil(3) + 1);
            assert_eq!(cached[&k(0)], record("3"));
            assert_eq!(cached[&k(1)], record("2"));
            assert_eq!(cached[&k(2)], record("1"));
            assert!(!cached.contains_key(&k(3)));
        }
        let st = StateStore::open(dir.path()).unwrap();
        let read = st.load(&a).unwrap();
        assert_eq!(
            read.len(),
            n - n.div_ceil(3) + 1,
            "the disk holds what the cache held"
        );
        assert_eq!(read[&k(0)], record("3"));
        assert_eq!(
            read[&k(n - 1)],
            record(if (n - 1) % 3 == 1 { "2" } else { "1" })
        );
    }

    #[test]
    fn records_are_versioned_json() {
        let bytes = record("ab").encode();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["schema"], "catalog.ingest.location-state");
        assert_eq!(v["version"], 1);
        assert_eq!(v["state"], "present");
        assert_eq!(v["sha256"], "ab");
        assert_eq!(v["first_seen_at"], "2024-01-02T03:04:05Z");
    }

    #[test]
    fn unknown_version_is_an_error_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let st = StateStore::open(dir.path()).unwrap();
        let a = SourceId::new("a");
        let k = LocationKey::new("file:/x/future.yaml");
        let mut v: serde_json::Value = serde_json::from_slice(&record("1").encode()).unwrap();
        v["version"] = 2.into();
        st.put_raw(&a, &k, &serde_json::to_vec(&v).unwrap())
            .unwrap();
        for err in [st.get(&a, &k).unwrap_err(), st.load(&a).unwrap_err()] {
            let text = err.to_string();
            assert!(text.contains("a/file:/x/future.yaml"), "{text}");
            assert!(matches!(
                err,
                StateError::Decode {
                    source: DecodeError::UnknownVersion { found: 2, .. },
                    ..
                }
            ));
        }
    }
}
