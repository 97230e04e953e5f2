//! The search index as posting lists: for every search key and value (see
//! [`crate::search`]), the set of entities that have it, as a compressed
//! bitmap (Roaring) over dense entity ordinals. Filters, predicates,
//! counts and facets are set algebra over these bitmaps; an entity change
//! rewrites only the lists of the rows that changed, once per batch
//! however many entities of the batch share them.
//!
//! | table | key | value |
//! |---|---|---|
//! | `x` | search key, value | [`Posting`]: per original casing, the ordinals with it |
//! | `o` | ref key | ordinal (u32 BE) |
//! | `r` | ordinal (u32 BE) | ref key |
//!
//! An ordinal is given to a ref the first time the index holds it and is
//! never given to another ref, even after the ref is deleted (a ref that
//! comes back gets its old one): so the ordinal -> ref map only grows, and
//! a reader can keep it in memory and read only what was added since. The
//! numbering follows the order in which this store first indexed refs (ref
//! order within a batch), so `x`, `o` and `r` are path tables, left out of
//! the checksum; the search rows (`s`) they are derived from are not.
//!
//! A posting keeps each original casing of the value with the ordinals
//! that wrote it that way, so the casing a facet shows is the casing of the
//! first entity in ref order, whatever order the entities came in.

use crate::keys;
use crate::store::{Store, StoreError, WriteSet};
use roaring::RoaringBitmap;
use smallvec::SmallVec;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The posting list of one search key and value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Posting {
    /// Each original casing, sorted, with the ordinals written that way.
    pub casings: Vec<(String, RoaringBitmap)>,
}

/// Record version of `x` values.
const POSTING_VERSION: u8 = 1;

impl Posting {
    /// Every ordinal with the value, whatever its casing.
    pub fn members(&self) -> RoaringBitmap {
        match self.casings.as_slice() {
            [(_, only)] => only.clone(),
            many => many
                .iter()
                .map(|(_, b)| b)
                .fold(RoaringBitmap::new(), |a, b| a | b),
        }
    }

    fn remove(&mut self, ordinal: u32) {
        for (_, b) in &mut self.casings {
            b.remove(ordinal);
        }
        self.casings.retain(|(_, b)| !b.is_empty());
    }

    /// The entity `ordinal` has the value in exactly these casings (none:
    /// not at all).
    pub(crate) fn set<S: AsRef<str>>(&mut self, ordinal: u32, casings: &[S]) {
        self.remove(ordinal);
        for c in casings {
            self.insert(ordinal, c.as_ref());
        }
    }

    fn insert(&mut self, ordinal: u32, original: &str) {
        match self
            .casings
            .binary_search_by(|(o, _)| o.as_str().cmp(original))
        {
            Ok(i) => {
                self.casings[i].1.insert(ordinal);
            }
            Err(i) => {
                let mut b = RoaringBitmap::new();
                b.insert(ordinal);
                self.casings.insert(i, (original.to_string(), b));
            }
        }
    }

    /// `[version][members: u32 BE][casings: u16 BE]` then per casing
    /// `[len: u16 BE][original][len: u32 BE][roaring]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![POSTING_VERSION];
        out.extend_from_slice(&(self.members().len() as u32).to_be_bytes());
        out.extend_from_slice(&(self.casings.len() as u16).to_be_bytes());
        for (original, b) in &self.casings {
            out.extend_from_slice(&(original.len() as u16).to_be_bytes());
            out.extend_from_slice(original.as_bytes());
            out.extend_from_slice(&(b.serialized_size() as u32).to_be_bytes());
            b.serialize_into(&mut out)
                .expect("serialising into a Vec cannot fail");
        }
        crate::store::exact(out)
    }

    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Posting, StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: format!("posting list: {reason}"),
        };
        let mut r = Reader { bytes, at: 0 };
        if r.take(1).ok_or_else(|| corrupt("empty"))? != [POSTING_VERSION] {
            return Err(corrupt("unknown record version"));
        }
        r.take(4).ok_or_else(|| corrupt("short header"))?;
        let n = u16::from_be_bytes(
            r.take(2)
                .ok_or_else(|| corrupt("short header"))?
                .try_into()
                .expect("2 bytes"),
        );
        let mut casings = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let len = u16::from_be_bytes(
                r.take(2)
                    .ok_or_else(|| corrupt("short casing"))?
                    .try_into()
                    .expect("2 bytes"),
            );
            let original = std::str::from_utf8(
                r.take(len as usize)
                    .ok_or_else(|| corrupt("short casing"))?,
            )
            .map_err(|_| corrupt("casing is not UTF-8"))?
            .to_string();
            let len = u32::from_be_bytes(
                r.take(4)
                    .ok_or_else(|| corrupt("short bitmap"))?
                    .try_into()
                    .expect("4 bytes"),
            );
            let raw = r
                .take(len as usize)
                .ok_or_else(|| corrupt("short bitmap"))?;
            let b = RoaringBitmap::deserialize_from(raw)
                .map_err(|e| corrupt(&format!("bitmap: {e}")))?;
            casings.push((original, b));
        }
        Ok(Posting { casings })
    }

    /// How many entities a stored posting holds and, when all of them
    /// write the value one way, that casing: without decoding a bitmap.
    pub fn peek(key: &[u8], bytes: &[u8]) -> Result<(u64, Option<String>), StoreError> {
        let count = Posting::count(key, bytes)?;
        let single = match bytes.get(5..) {
            Some([0, 1, a, b, rest @ ..]) => {
                let len = u16::from_be_bytes([*a, *b]) as usize;
                rest.get(..len)
                    .and_then(|o| std::str::from_utf8(o).ok())
                    .map(str::to_string)
            }
            _ => None,
        };
        Ok((count, single))
    }

    /// How many entities a stored posting holds, from its header alone.
    pub fn count(key: &[u8], bytes: &[u8]) -> Result<u64, StoreError> {
        match bytes {
            [POSTING_VERSION, a, b, c, d, ..] => Ok(u32::from_be_bytes([*a, *b, *c, *d]) as u64),
            _ => Err(StoreError::Corrupt {
                key: String::from_utf8_lossy(key).into_owned(),
                reason: "posting list: bad header".into(),
            }),
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }
}

/// The posting of `key` = `value`, empty when no entity has it.
pub fn get(store: &dyn Store, key: &str, value: &str) -> Result<Posting, StoreError> {
    let k = keys::posting(key, value);
    match store.get(&k)? {
        Some(bytes) => Posting::decode(&k, &bytes),
        None => Ok(Posting::default()),
    }
}

/// How many entities have `key` = `value`.
pub fn count(store: &dyn Store, key: &str, value: &str) -> Result<u64, StoreError> {
    let k = keys::posting(key, value);
    match store.get(&k)? {
        Some(bytes) => Posting::count(&k, &bytes),
        None => Ok(0),
    }
}

/// What [`scan`] calls with each posting: its value, key and raw record;
/// false stops the scan.
pub type Visit<'a> = dyn FnMut(&str, &[u8], &[u8]) -> Result<bool, StoreError> + 'a;

/// Visits the postings of `key` whose value starts with `value_prefix`, in
/// value order, with the value and the raw record, until `visit` says stop.
pub fn scan(
    store: &dyn Store,
    key: &str,
    value_prefix: &str,
    visit: &mut Visit<'_>,
) -> Result<(), StoreError> {
    let mut prefix = keys::prefix(keys::POSTING, &[key.as_bytes()]);
    let values_at = prefix.len();
    prefix.extend_from_slice(value_prefix.as_bytes());
    let mut err = None;
    store.scan(&prefix, None, &mut |k, v| {
        let value = String::from_utf8_lossy(&k[values_at..]);
        match visit(&value, k, v) {
            Ok(go_on) => go_on,
            Err(e) => {
                err = Some(e);
                false
            }
        }
    })?;
    err.map_or(Ok(()), Err)
}

/// The entities with any value of `key` starting with `value_prefix`.
pub fn union(
    store: &dyn Store,
    key: &str,
    value_prefix: &str,
) -> Result<RoaringBitmap, StoreError> {
    let mut out = RoaringBitmap::new();
    scan(store, key, value_prefix, &mut |_, k, v| {
        out |= Posting::decode(k, v)?.members();
        Ok(true)
    })?;
    Ok(out)
}

/// The ordinal of a ref, if the index ever held it.
pub fn ordinal(store: &dyn Store, refkey: &str) -> Result<Option<u32>, StoreError> {
    let k = keys::ordinal(refkey);
    match store.get(&k)? {
        Some(bytes) => Ok(Some(decode_ordinal(&k, &bytes)?)),
        None => Ok(None),
    }
}

fn decode_ordinal(key: &[u8], bytes: &[u8]) -> Result<u32, StoreError> {
    <[u8; 4]>::try_from(bytes)
        .map(u32::from_be_bytes)
        .map_err(|_| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "an ordinal is 4 bytes".into(),
        })
}

/// The next ordinal to give.
fn next_ordinal(store: &dyn Store) -> Result<u32, StoreError> {
    let k = keys::meta(keys::ORDINAL_NEXT);
    match store.get(&k)? {
        Some(bytes) => decode_ordinal(&k, &bytes),
        None => Ok(0),
    }
}

/// Ordinals of the refs of one write set: existing ones read, new ones
/// given in the order asked.
pub struct Ordinals<'a> {
    store: &'a dyn Store,
    next: Option<u32>,
    /// Ordinals given, in the order given.
    given: Vec<(String, u32)>,
    /// The same, by ref (a batch of a large location gives tens of
    /// thousands).
    index: crate::FastMap<String, u32>,
}

impl<'a> Ordinals<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Ordinals {
            store,
            next: None,
            given: Vec::new(),
            index: crate::FastMap::default(),
        }
    }

    /// The ordinal of `refkey`, given now if it has none.
    pub fn of(&mut self, refkey: &str) -> Result<u32, StoreError> {
        if let Some(o) = ordinal(self.store, refkey)? {
            return Ok(o);
        }
        if let Some(o) = self.index.get(refkey) {
            return Ok(*o);
        }
        let next = match self.next {
            Some(n) => n,
            None => next_ordinal(self.store)?,
        };
        self.next = Some(next + 1);
        self.given.push((refkey.to_string(), next));
        self.index.insert(refkey.to_string(), next);
        Ok(next)
    }

    /// The writes that record the ordinals given.
    pub fn drain_into(self, out: &mut WriteSet) {
        if let Some(next) = self.next {
            out.push((
                keys::meta(keys::ORDINAL_NEXT),
                Some(next.to_be_bytes().to_vec()),
            ));
        }
        for (r, o) in self.given {
            crate::temporal::remember_uid(&r, out);
            out.push((keys::ordinal(&r), Some(o.to_be_bytes().to_vec())));
            out.push((keys::ordinal_ref(o), Some(r.into_bytes())));
        }
    }
}

/// The casings an entity has a value in, as numbers given by [`Names`].
pub type Casings = SmallVec<[u32; 2]>;

/// The names a batch's list changes refer to, each kept once: a number
/// per list (search key and value) and per casing. A batch of thousands of
/// entities makes hundreds of thousands of changes, one per entity per
/// value; they hold these numbers rather than strings of their own.
#[derive(Default)]
pub struct Names {
    /// `key \0 value` -> list number (neither holds a NUL, see
    /// [`crate::search`]). The map and `list_names` share one allocation
    /// per list: a Location listing 350k targets changes 350k lists in a
    /// batch, in the posting lists and in their history.
    lists: crate::FastMap<Arc<str>, u32>,
    list_names: Vec<Arc<str>>,
    casings: crate::FastMap<String, u32>,
    casing_names: Vec<String>,
    scratch: String,
}

impl Names {
    /// The number of the list `key` = `value`, given now if it has none.
    pub fn list(&mut self, key: &str, value: &str) -> usize {
        self.scratch.clear();
        self.scratch.push_str(key);
        self.scratch.push('\0');
        self.scratch.push_str(value);
        if let Some(i) = self.lists.get(self.scratch.as_str()) {
            return *i as usize;
        }
        let i = self.list_names.len();
        let name: Arc<str> = Arc::from(self.scratch.as_str());
        self.lists.insert(name.clone(), i as u32);
        self.list_names.push(name);
        i
    }

    /// The search key and value of list `list`.
    pub fn list_name(&self, list: usize) -> (&str, &str) {
        self.list_names[list]
            .split_once('\0')
            .expect("a list name joins its key and value with a NUL")
    }

    /// Every list numbered, in (key, value) order: the order of the joined
    /// names, as NUL sorts before every other character and no key holds
    /// one.
    pub fn lists_in_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.list_names.len()).collect();
        order.sort_by(|a, b| self.list_names[*a].cmp(&self.list_names[*b]));
        order
    }

    /// The rank of each list in (key, value) order, by list number.
    pub fn ranks(&self) -> Vec<u32> {
        let order = self.lists_in_order();
        let mut rank = vec![0u32; order.len()];
        for (r, list) in order.into_iter().enumerate() {
            rank[list] = r as u32;
        }
        rank
    }

    /// The numbers of `casings`, given now where they have none.
    pub fn casings(&mut self, casings: &[&str]) -> Casings {
        casings
            .iter()
            .map(|c| match self.casings.get(*c) {
                Some(i) => *i,
                None => {
                    let i = self.casing_names.len() as u32;
                    self.casings.insert((*c).to_string(), i);
                    self.casing_names.push((*c).to_string());
                    i
                }
            })
            .collect()
    }

    /// The casings numbered `ids`.
    pub fn casing_names(&self, ids: &[u32]) -> SmallVec<[&str; 2]> {
        ids.iter()
            .map(|i| self.casing_names[*i as usize].as_str())
            .collect()
    }
}

/// Entries gathered over a batch per list (search key and value), in the
/// order added, with the lists and casings they name numbered by a
/// [`Names`] kept beside them: the changes of the posting lists or of
/// their history. The two share one [`Names`] ([`Changes`]): a Location
/// listing 544k targets changes 1.09M lists (each target is a value and a
/// key of its own), and their names held twice were 0.13 GB of that
/// batch's peak.
///
/// The entries of every list share one vector, each tagged with its list:
/// a vector per list cost a header and an allocation of four entries
/// apiece (about 0.3 GB of one batch's peak at 1M entities).
pub struct ByList<E> {
    entries: Vec<(u32, E)>,
    /// Whether `entries` is grouped by list in (key, value) order.
    grouped: bool,
}

impl<E> Default for ByList<E> {
    fn default() -> Self {
        ByList {
            entries: Vec::new(),
            grouped: true,
        }
    }
}

impl<E> ByList<E> {
    /// Adds to list `key` = `value` (numbered in `names`) the entry `make`
    /// gives, with the numbers of `casings`.
    pub fn push(
        &mut self,
        names: &mut Names,
        key: &str,
        value: &str,
        casings: &[&str],
        make: impl FnOnce(Casings) -> E,
    ) {
        let list = names.list(key, value) as u32;
        let casings = names.casings(casings);
        self.add(list, make(casings));
    }

    /// Adds `entry` to the list numbered `list`.
    fn add(&mut self, list: u32, entry: E) {
        self.entries.push((list, entry));
        self.grouped = false;
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many lists have entries. [`ByList::group`] first.
    pub fn list_count(&self) -> usize {
        self.entries.chunk_by(|a, b| a.0 == b.0).count()
    }

    /// Groups the entries by list, lists in (key, value) order as `rank`
    /// ([`Names::ranks`]) gives it, each list's entries in the order added;
    /// [`ByList::lists`] needs it.
    pub fn group(&mut self, rank: &[u32]) {
        if self.grouped {
            return;
        }
        // Stable: a list's entries keep the order they were added in.
        self.entries.sort_by_key(|(list, _)| rank[*list as usize]);
        self.grouped = true;
    }

    /// Each list's key, value and entries (each with its list's number),
    /// in (key, value) order. [`ByList::group`] first.
    pub fn lists<'a>(
        &'a self,
        names: &'a Names,
    ) -> impl Iterator<Item = (&'a str, &'a str, &'a [(u32, E)])> {
        assert!(self.grouped, "ByList::group before ByList::lists");
        self.entries.chunk_by(|a, b| a.0 == b.0).map(|run| {
            let (key, value) = names.list_name(run[0].0 as usize);
            (key, value, run)
        })
    }

    /// Calls `each` with every list (as [`ByList::lists`] gives them) and
    /// a write set of its own run of lists: runs of many lists each on a
    /// thread, up to one per core (4 at most). The runs' writes join `out`
    /// in list order, so `out` is the same however many threads ran.
    /// [`ByList::group`] first.
    pub fn write_lists<F>(
        &self,
        names: &Names,
        out: &mut WriteSet,
        each: F,
    ) -> Result<(), StoreError>
    where
        E: Sync,
        F: Fn(&str, &str, &[(u32, E)], &mut WriteSet) -> Result<(), StoreError> + Sync,
    {
        self.write_lists_on(names, crate::cores(), out, each)
    }

    /// [`ByList::write_lists`] on at most `threads` threads.
    fn write_lists_on<F>(
        &self,
        names: &Names,
        threads: usize,
        out: &mut WriteSet,
        each: F,
    ) -> Result<(), StoreError>
    where
        E: Sync,
        F: Fn(&str, &str, &[(u32, E)], &mut WriteSet) -> Result<(), StoreError> + Sync,
    {
        assert!(self.grouped, "ByList::group before ByList::write_lists");
        let threads = threads.min(self.list_count() / LISTS_PER_THREAD).max(1);
        // Runs of about as many entries each, cut where a list starts: no
        // vector of every list is made (a Location listing 544k targets
        // changes 1.09M lists, each a run of its own).
        let entries = &self.entries[..];
        let mut runs: Vec<&[(u32, E)]> = Vec::with_capacity(threads);
        let mut start = 0;
        for t in 1..=threads {
            let mut end = (entries.len() * t / threads).max(start);
            while end > start && end < entries.len() && entries[end].0 == entries[end - 1].0 {
                end += 1;
            }
            if end > start {
                runs.push(&entries[start..end]);
            }
            start = end;
        }
        // Each run's writes join `out` as they are, not through a vector of
        // them all first.
        let runs = crate::in_runs(runs, threads, |runs| {
            // A write per list at most (and a sealed segment now and then).
            let mut writes = WriteSet::with_capacity(runs.iter().map(|r| r.len()).sum());
            for run in runs {
                for list in run.chunk_by(|a, b| a.0 == b.0) {
                    let (key, value) = names.list_name(list[0].0 as usize);
                    each(key, value, list, &mut writes)?;
                }
            }
            Ok::<_, StoreError>(vec![writes])
        })?;
        out.reserve(runs.iter().map(Vec::len).sum());
        for run in runs {
            out.extend(run);
        }
        Ok(())
    }
}

/// The fewest lists worth a thread of their own in [`ByList::write_lists`]:
/// each costs a read of the store, a decode and an encode (a few
/// microseconds), a thread about as much as a hundred of them.
const LISTS_PER_THREAD: usize = 512;

/// Changes to posting lists and to their history, gathered over a batch:
/// per list, (ordinal, the casings it has now; none: it no longer has the
/// value), in the order set (the last for an ordinal wins); and per list,
/// (time, ordinal, casings from then on), in the order recorded. Both name
/// their lists by one [`Names`].
#[derive(Default)]
pub struct Changes {
    names: Names,
    live: ByList<(u32, Casings)>,
    past: ByList<(i64, u32, Casings)>,
}

impl Changes {
    /// The entity `ordinal` now has `key` = `value` in these casings (none:
    /// it no longer has the value).
    pub fn set(&mut self, key: &str, value: &str, ordinal: u32, casings: &[&str]) {
        self.set_and_record(key, value, ordinal, casings, None);
    }

    /// Entity `ordinal` has `key` = `value` in these casings from `at_ms`
    /// on (none: not at all), in the lists' history.
    pub fn record(&mut self, key: &str, value: &str, at_ms: i64, ordinal: u32, casings: &[&str]) {
        self.past.push(&mut self.names, key, value, casings, |c| {
            (at_ms, ordinal, c)
        });
    }

    /// [`Changes::set`], and with `at_ms` [`Changes::record`] too: the
    /// list and casings numbered once for both.
    pub fn set_and_record(
        &mut self,
        key: &str,
        value: &str,
        ordinal: u32,
        casings: &[&str],
        at_ms: Option<i64>,
    ) {
        let list = self.names.list(key, value) as u32;
        let casings = self.names.casings(casings);
        if let Some(at) = at_ms {
            self.past.add(list, (at, ordinal, casings.clone()));
        }
        self.live.add(list, (ordinal, casings));
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.past.is_empty()
    }

    /// Reads each posting changed once, applies its changes and adds the
    /// result (or its deletion, when no entity is left) to `out`; then
    /// the history's changes ([`crate::temporal::write_history`]).
    pub fn write(mut self, store: &dyn Store, out: &mut WriteSet) -> Result<(), StoreError> {
        let rank = self.names.ranks();
        self.live.group(&rank);
        self.past.group(&rank);
        drop(rank);
        // Every list's write, and a sealed segment for some of the
        // history's: reserved at once, not grown by doubling.
        out.reserve(self.live.list_count() + self.past.list_count() + 16);
        let names = &self.names;
        self.live
            .write_lists(names, out, |key, value, entries, out| {
                let k = keys::posting(key, value);
                let mut posting = match store.get(&k)? {
                    Some(bytes) => Posting::decode(&k, &bytes)?,
                    None => Posting::default(),
                };
                for (_, (ordinal, casings)) in entries {
                    posting.set(*ordinal, &names.casing_names(casings));
                }
                let value = (!posting.casings.is_empty()).then(|| posting.encode());
                out.push((k, value));
                Ok(())
            })?;
        self.live = ByList::default();
        crate::temporal::write_history(&self.past, names, store, out)
    }
}

/// The runs of `rows` (sorted) that share a key and value: one row per
/// casing.
fn value_runs(rows: &[crate::records::SearchRow]) -> Vec<std::ops::Range<usize>> {
    let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        match runs.last_mut() {
            Some(run) if rows[run.start].key == row.key && rows[run.start].value == row.value => {
                run.end = i + 1;
            }
            _ => runs.push(i..i + 1),
        }
    }
    runs
}

type Rows = [crate::records::SearchRow];

/// `rows` sorted and without duplicates: as they are, when they already are.
fn sorted_rows(rows: &Rows) -> std::borrow::Cow<'_, Rows> {
    if rows.is_sorted() {
        std::borrow::Cow::Borrowed(rows)
    } else {
        let mut rows = rows.to_vec();
        rows.sort();
        rows.dedup();
        std::borrow::Cow::Owned(rows)
    }
}

/// The search key and value of a run of rows.
fn name<'r>(rows: &'r Rows, run: &std::ops::Range<usize>) -> (&'r str, &'r str) {
    (rows[run.start].key.as_str(), rows[run.start].value.as_str())
}

/// The casings of a run of rows.
fn casings<'r>(rows: &'r Rows, run: &std::ops::Range<usize>) -> SmallVec<[&'r str; 2]> {
    rows[run.clone()]
        .iter()
        .map(|r| r.original.as_str())
        .collect()
}

/// Calls `moved(key, value, casings)` for each value whose casings differ
/// between an entity's rows `old` and `new` (no casings: the entity left
/// that value's list). What the live lists and their history both record.
///
/// Rows are kept sorted (see [`crate::search::rows`]), so this is one
/// merge of the two lists; rows that are not are sorted first.
pub fn each_moved_value(
    old: &[crate::records::SearchRow],
    new: &[crate::records::SearchRow],
    moved: &mut dyn FnMut(&str, &str, &[&str]),
) {
    let (old, new) = (sorted_rows(old), sorted_rows(new));
    let (a, b) = (value_runs(&old), value_runs(&new));
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let order = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => name(&old, x).cmp(&name(&new, y)),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                let (k, v) = name(&old, &a[i]);
                moved(k, v, &[]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let (k, v) = name(&new, &b[j]);
                moved(k, v, &casings(&new, &b[j]));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let now = casings(&new, &b[j]);
                if casings(&old, &a[i]) != now {
                    let (k, v) = name(&new, &b[j]);
                    moved(k, v, &now);
                }
                i += 1;
                j += 1;
            }
        }
    }
}

/// Adds to `changes` what turning an entity's rows `old` into `new` does to
/// the postings.
pub fn diff(
    changes: &mut Changes,
    ordinal: u32,
    old: &[crate::records::SearchRow],
    new: &[crate::records::SearchRow],
) {
    each_moved_value(old, new, &mut |k, v, casings| {
        changes.set(k, v, ordinal, casings);
    });
}

/// Whether this store's index is posting lists (else it still has the
/// search rows and facet counts of an older layout, see [`upgrade`]).
const UPGRADED: &str = "index-postings-v1";

/// Builds the posting lists of a store written before they existed, from
/// its search rows (`s`), and deletes the older index (`S` rows and `F`
/// counts). Runs once; returns how many entities it indexed.
pub fn upgrade(store: &dyn Store) -> Result<usize, StoreError> {
    if store.get(&keys::meta(UPGRADED))?.is_some() {
        return Ok(0);
    }
    const CHUNK: usize = 20_000;
    let mut indexed = 0;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let mut rows: Vec<(String, crate::records::SearchRows)> = Vec::new();
        let mut err = None;
        let prefix = [keys::SEARCH_ROWS];
        store.scan(&prefix, after.as_deref(), &mut |k, v| {
            if after.as_deref() == Some(k) {
                return true;
            }
            match crate::records::decode(k, v) {
                Ok(r) => rows.push((String::from_utf8_lossy(&k[1..]).into_owned(), r)),
                Err(e) => err = Some(e),
            }
            err.is_none() && rows.len() < CHUNK
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        let Some((last, _)) = rows.last() else { break };
        after = Some(keys::search_rows(last));
        let mut out = WriteSet::new();
        let mut ordinals = Ordinals::new(store);
        let mut changes = Changes::default();
        for (r, rows) in &rows {
            let o = ordinals.of(r)?;
            diff(&mut changes, o, &[], &rows.rows);
        }
        indexed += rows.len();
        changes.write(store, &mut out)?;
        ordinals.drain_into(&mut out);
        store.write(out)?;
    }
    for table in [keys::SEARCH, keys::FACET] {
        loop {
            let mut out = WriteSet::new();
            store.scan(&[table], None, &mut |k, _| {
                out.push((k.to_vec(), None));
                out.len() < 100_000
            })?;
            if out.is_empty() {
                break;
            }
            store.write(out)?;
        }
    }
    store.write(vec![(keys::meta(UPGRADED), Some(Vec::new()))])?;
    Ok(indexed)
}

/// Marks a store as indexed by posting lists (a new one, or one built
/// whole, as a materialised past catalog).
pub fn mark_upgraded(out: &mut WriteSet) {
    out.push((keys::meta(UPGRADED), Some(Vec::new())));
}

/// A store's entries with ordinals taken out, for comparing the state of
/// stores whose numbering took different paths: every posting becomes its
/// casings with their sorted refs, and the ordinal tables and counter are
/// left out.
pub fn canonical(
    entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let entries: Vec<(Vec<u8>, Vec<u8>)> = entries.into_iter().collect();
    let refs: BTreeMap<u32, &[u8]> = entries
        .iter()
        .filter_map(|(k, v)| Some((keys::ordinal_of_key(k)?, v.as_slice())))
        .collect();
    let next = keys::meta(keys::ORDINAL_NEXT);
    let text_of = |p: &Posting| -> String {
        p.casings
            .iter()
            .map(|(c, b)| {
                let mut rs: Vec<String> = b
                    .iter()
                    .map(|o| match refs.get(&o) {
                        Some(r) => String::from_utf8_lossy(r).into_owned(),
                        None => format!("#{o}"),
                    })
                    .collect();
                rs.sort();
                format!("{c}={}", rs.join(","))
            })
            .collect::<Vec<_>>()
            .join(";")
    };
    // A list's history becomes the list at each instant it changed.
    let mut histories: BTreeMap<Vec<u8>, Vec<Vec<u8>>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for (k, v) in &entries {
        match k.first() {
            Some(&keys::ORDINAL) | Some(&keys::ORDINAL_REF) => continue,
            _ if *k == next => continue,
            Some(&keys::POSTING_HISTORY) => {
                histories
                    .entry(k[..k.len().saturating_sub(5)].to_vec())
                    .or_default()
                    .push(v.clone());
            }
            Some(&keys::POSTING) => {
                let text = match Posting::decode(k, v) {
                    Ok(p) => text_of(&p),
                    Err(e) => e.to_string(),
                };
                out.insert(k.clone(), text.into_bytes());
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    for (list, segments) in histories {
        let mut times: Vec<i64> = Vec::new();
        for s in &segments {
            if let Ok(seg) = crate::temporal::Segment::decode(&list, s) {
                times.extend(seg.changes.iter().map(|c| c.at_ms));
            }
        }
        times.sort_unstable();
        times.dedup();
        let mut states: Vec<String> = Vec::new();
        for t in times {
            let text = match crate::temporal::list_at(&list, &segments, t) {
                Ok(p) => format!("{t}:{}", text_of(&p)),
                Err(e) => e.to_string(),
            };
            let same = states.last().is_some_and(|l| {
                l.split_once(':').map(|x| x.1) == text.split_once(':').map(|x| x.1)
            });
            if !same {
                states.push(text);
            }
        }
        out.insert(list, states.join("\n").into_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::SearchRow;
    use crate::store::MemStore;

    #[test]
    fn lists_are_numbered_once_and_ordered_by_key_then_value() {
        let mut names = Names::default();
        let pairs = [
            ("spec.type", "service"),
            ("kind", "component"),
            ("kind", "api"),
            ("kind.x", "a"),
            ("kin", "zzz"),
            ("spec.type", ""),
            ("kind", "component"),
            ("spec.targets", "./repos/r1/repo-1.yaml"),
        ];
        let numbers: Vec<usize> = pairs.iter().map(|(k, v)| names.list(k, v)).collect();
        // The same pair, the same number; a new pair, the next number.
        assert_eq!(numbers, vec![0, 1, 2, 3, 4, 5, 1, 6]);
        for (i, (k, v)) in pairs.iter().enumerate() {
            assert_eq!(names.list_name(numbers[i]), (*k, *v));
        }
        let ordered: Vec<(&str, &str)> = names
            .lists_in_order()
            .into_iter()
            .map(|l| names.list_name(l))
            .collect();
        let mut expected: Vec<(&str, &str)> = pairs.to_vec();
        expected.sort();
        expected.dedup();
        assert_eq!(ordered, expected);
    }

    #[test]
    fn entries_come_out_by_list_in_key_value_order_each_in_the_order_added() {
        let mut by: ByList<u32> = ByList::default();
        let mut names = Names::default();
        let pushes = [
            ("spec.type", "service", 0),
            ("kind", "component", 1),
            ("kind.x", "a", 2),
            ("kind", "api", 3),
            ("kind", "component", 4),
            ("kin", "zzz", 5),
            ("spec.type", "service", 6),
            ("kind", "component", 7),
        ];
        for (k, v, n) in pushes {
            by.push(&mut names, k, v, &["Cased"], |c| {
                assert_eq!(c.len(), 1);
                n
            });
        }
        by.group(&names.ranks());
        let got: Vec<(&str, &str, Vec<u32>)> = by
            .lists(&names)
            .map(|(k, v, entries)| (k, v, entries.iter().map(|(_, n)| *n).collect()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("kin", "zzz", vec![5]),
                ("kind", "api", vec![3]),
                ("kind", "component", vec![1, 4, 7]),
                ("kind.x", "a", vec![2]),
                ("spec.type", "service", vec![0, 6]),
            ]
        );
        // Grouping again, after more entries, keeps what was grouped.
        by.push(&mut names, "kind", "api", &[], |_| 8);
        by.push(&mut names, "a", "b", &[], |_| 9);
        by.group(&names.ranks());
        let got: Vec<(&str, Vec<u32>)> = by
            .lists(&names)
            .map(|(_, v, entries)| (v, entries.iter().map(|(_, n)| *n).collect()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("b", vec![9]),
                ("zzz", vec![5]),
                ("api", vec![3, 8]),
                ("component", vec![1, 4, 7]),
                ("a", vec![2]),
                ("service", vec![0, 6]),
            ]
        );
    }

    #[test]
    fn lists_written_on_several_threads_write_what_one_thread_writes() {
        // Enough lists for 3 threads with a short last run, lists of
        // several entries, and one failing list.
        let mut by: ByList<u32> = ByList::default();
        let mut names = Names::default();
        let n = 3 * LISTS_PER_THREAD + 7;
        for i in 0..n {
            for e in 0..(i % 3 + 1) {
                by.push(
                    &mut names,
                    "metadata.name",
                    &format!("v{i:05}"),
                    &[],
                    |_| (i * 10 + e) as u32,
                );
            }
        }
        by.group(&names.ranks());
        let each = |key: &str, value: &str, entries: &[(u32, u32)], out: &mut WriteSet| {
            let entries: Vec<u8> = entries.iter().flat_map(|(_, e)| e.to_be_bytes()).collect();
            out.push((format!("{key}={value}").into_bytes(), Some(entries)));
            Ok(())
        };
        let mut one = WriteSet::new();
        by.write_lists_on(&names, 1, &mut one, each).unwrap();
        assert_eq!(one.len(), n);
        assert!(one.is_sorted_by(|a, b| a.0 < b.0));
        for threads in [2, 3, 4] {
            let mut many = vec![(b"before".to_vec(), None)];
            by.write_lists_on(&names, threads, &mut many, each).unwrap();
            assert_eq!(many[0], (b"before".to_vec(), None));
            assert_eq!(&many[1..], &one[..], "on {threads} threads");
        }
        // An error in any run is the answer.
        let failing = |key: &str, value: &str, entries: &[(u32, u32)], out: &mut WriteSet| {
            if value == "v01000" {
                return Err(StoreError::Corrupt {
                    key: key.to_string(),
                    reason: "bad".into(),
                });
            }
            each(key, value, entries, out)
        };
        assert!(
            by.write_lists_on(&names, 3, &mut WriteSet::new(), failing)
                .is_err()
        );
    }

    fn row(k: &str, v: &str, o: &str) -> SearchRow {
        SearchRow {
            key: k.into(),
            value: v.into(),
            original: o.into(),
        }
    }

    #[test]
    fn postings_round_trip_and_follow_changes() {
        let store = MemStore::new();
        let mut out = WriteSet::new();
        let mut ords = Ordinals::new(&store);
        let (a, b) = (
            ords.of("component:default/a").unwrap(),
            ords.of("component:default/b").unwrap(),
        );
        assert_eq!((a, b), (0, 1));
        assert_eq!(
            ords.of("component:default/a").unwrap(),
            0,
            "asked twice, one ordinal"
        );
        let mut changes = Changes::default();
        diff(
            &mut changes,
            a,
            &[],
            &[
                row("kind", "component", "Component"),
                row("spec.lifecycle", "production", "Production"),
            ],
        );
        diff(
            &mut changes,
            b,
            &[],
            &[
                row("kind", "component", "component"),
                row("spec.lifecycle", "production", "production"),
            ],
        );
        changes.write(&store, &mut out).unwrap();
        ords.drain_into(&mut out);
        store.write(out).unwrap();
        let p = get(&store, "kind", "component").unwrap();
        assert_eq!(p.members().iter().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(p.casings.len(), 2);
        assert_eq!(count(&store, "kind", "component").unwrap(), 2);
        let k = keys::posting("kind", "component");
        assert_eq!(Posting::decode(&k, &p.encode()).unwrap(), p);
        assert_eq!(
            Posting::peek(&k, &p.encode()).unwrap(),
            (2, None),
            "two casings"
        );
        let one = get(&store, "spec.lifecycle", "production").unwrap();
        assert_eq!(one.casings.len(), 2);
        let mut single = Posting::default();
        single.insert(7, "Production");
        assert_eq!(
            Posting::peek(&k, &single.encode()).unwrap(),
            (1, Some("Production".to_string()))
        );
        assert_eq!(ordinal(&store, "component:default/b").unwrap(), Some(1));

        // b leaves production; a changes only the casing of its kind.
        let mut out = WriteSet::new();
        let mut changes = Changes::default();
        diff(
            &mut changes,
            b,
            &[
                row("kind", "component", "component"),
                row("spec.lifecycle", "production", "production"),
            ],
            &[row("kind", "component", "component")],
        );
        diff(
            &mut changes,
            a,
            &[row("kind", "component", "Component")],
            &[row("kind", "component", "COMPONENT")],
        );
        changes.write(&store, &mut out).unwrap();
        store.write(out).unwrap();
        assert_eq!(count(&store, "spec.lifecycle", "production").unwrap(), 1);
        let p = get(&store, "kind", "component").unwrap();
        assert_eq!(p.members().len(), 2);
        assert_eq!(
            p.casings
                .iter()
                .map(|(c, _)| c.as_str())
                .collect::<Vec<_>>(),
            vec!["COMPONENT", "component"]
        );
        // A new ref continues the numbering.
        let mut ords = Ordinals::new(&store);
        assert_eq!(ords.of("api:default/c").unwrap(), 2);
        // The last entity leaving a value deletes its posting.
        let mut out = WriteSet::new();
        let mut changes = Changes::default();
        diff(
            &mut changes,
            a,
            &[row("spec.lifecycle", "production", "Production")],
            &[],
        );
        changes.write(&store, &mut out).unwrap();
        store.write(out).unwrap();
        assert!(
            store
                .get(&keys::posting("spec.lifecycle", "production"))
                .unwrap()
                .is_none()
        );
        assert_eq!(union(&store, "kind", "").unwrap().len(), 2);
    }

    #[test]
    fn bad_records_are_errors_naming_the_key() {
        for bytes in [
            &b""[..],
            &[9, 0, 0, 0, 1, 0, 1][..],
            &[1, 0, 0, 0, 1, 0, 1, 0, 5, b'a'][..],
        ] {
            let e = Posting::decode(b"xkind\0x", bytes).unwrap_err().to_string();
            assert!(e.contains("xkind") && e.contains("posting list"), "{e}");
        }
    }
}
