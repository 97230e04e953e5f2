//! The history of the posting lists, for reads `asOf` without
//! materialising a past catalog.
//!
//! For every search key and value, table `h` keeps the changes of its
//! posting list: each is a time, an entity ordinal and the casings the
//! entity has the value in from then on (none: it no longer has it). The
//! posting list as of `t` is, for every ordinal, its last change at or
//! before `t` (ties: the later written). Only changes of membership are
//! kept, so an edit of a description adds nothing here, and reading a
//! list at any instant costs the changes of that list, not the history of
//! the whole catalog.
//!
//! | table | key | value |
//! |---|---|---|
//! | `h` | search key, value, segment (u32 BE) | [`Segment`]: changes in the order written |
//! | `u` | uid | ref key of every entity ever indexed (uids of past entities) |
//!
//! Changes are appended to a list's open segment (number `u32::MAX`); once
//! it holds [`SEGMENT_CHANGES`] it is sealed under the next number, so a
//! write rewrites at most one segment of each list it touches.
//!
//! The changes follow the served versions of `P` exactly: a version
//! written after every other of its ref records how the ref's rows moved
//! from the version before; a late one (earlier than a version already
//! kept) records the move from the version before it and, at the time of
//! the version after it, the move back to that one's rows. Because a
//! change states the casings an entity has from then on (not what to add
//! or remove), applying a list's changes in time order gives the rows of
//! the version in force at any instant.

use crate::keys;
use crate::postings::{Changes, Ordinals, Posting};
use crate::records::{self, SearchRow};
use crate::store::{Store, StoreError, WriteSet};

/// Changes in a list's open segment before it is sealed.
pub const SEGMENT_CHANGES: usize = 4096;
/// The number of a list's open segment.
const OPEN: u32 = u32::MAX;
/// Record version of `h` values.
const SEGMENT_VERSION: u8 = 1;

/// One change of a posting list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub at_ms: i64,
    pub ordinal: u32,
    /// The casings the entity has the value in from `at_ms` on.
    pub casings: Vec<String>,
}

/// A stored run of changes of one list, in the order written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Segment {
    /// In the open segment: how many segments are sealed before it.
    pub sealed: u32,
    pub changes: Vec<Change>,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.at)?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(out)
    }
}

impl Segment {
    /// `[version][sealed: u32 BE][casings: varint]` then each casing
    /// `[len: varint][text]`, then `[changes: varint]` and each change
    /// `[time delta: zigzag varint][ordinal: varint][n: varint][casing
    /// index: varint]*n`.
    pub fn encode(&self) -> Vec<u8> {
        let mut table: Vec<&str> = Vec::new();
        for c in &self.changes {
            for s in &c.casings {
                if !table.contains(&s.as_str()) {
                    table.push(s);
                }
            }
        }
        let mut out = vec![SEGMENT_VERSION];
        out.extend_from_slice(&self.sealed.to_be_bytes());
        put_varint(&mut out, table.len() as u64);
        for s in &table {
            put_varint(&mut out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        put_varint(&mut out, self.changes.len() as u64);
        let mut prev = 0i64;
        for c in &self.changes {
            let d = c.at_ms.wrapping_sub(prev);
            put_varint(&mut out, ((d << 1) ^ (d >> 63)) as u64);
            prev = c.at_ms;
            put_varint(&mut out, u64::from(c.ordinal));
            put_varint(&mut out, c.casings.len() as u64);
            for s in &c.casings {
                let i = table.iter().position(|t| t == s).expect("in the table");
                put_varint(&mut out, i as u64);
            }
        }
        crate::store::exact(out)
    }

    pub fn decode(key: &[u8], bytes: &[u8]) -> Result<Segment, StoreError> {
        let corrupt = |reason: &str| StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: format!("posting history: {reason}"),
        };
        let mut r = Cursor { bytes, at: 0 };
        if r.take(1) != Some(&[SEGMENT_VERSION][..]) {
            return Err(corrupt("unknown record version"));
        }
        let sealed = u32::from_be_bytes(
            r.take(4)
                .ok_or_else(|| corrupt("short header"))?
                .try_into()
                .expect("4 bytes"),
        );
        let n = r.varint().ok_or_else(|| corrupt("short header"))?;
        let mut table = Vec::new();
        for _ in 0..n {
            let len = r.varint().ok_or_else(|| corrupt("short casing"))?;
            let text = r
                .take(usize::try_from(len).map_err(|_| corrupt("casing length"))?)
                .ok_or_else(|| corrupt("short casing"))?;
            table.push(
                std::str::from_utf8(text)
                    .map_err(|_| corrupt("casing is not UTF-8"))?
                    .to_string(),
            );
        }
        let n = r.varint().ok_or_else(|| corrupt("short header"))?;
        let mut changes = Vec::with_capacity(n.min(1 << 20) as usize);
        let mut prev = 0i64;
        for _ in 0..n {
            let z = r.varint().ok_or_else(|| corrupt("short change"))?;
            let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
            let at_ms = prev.wrapping_add(d);
            prev = at_ms;
            let ordinal = u32::try_from(r.varint().ok_or_else(|| corrupt("short change"))?)
                .map_err(|_| corrupt("ordinal out of range"))?;
            let k = r.varint().ok_or_else(|| corrupt("short change"))?;
            let mut casings = Vec::with_capacity(k.min(16) as usize);
            for _ in 0..k {
                let i = r.varint().ok_or_else(|| corrupt("short change"))?;
                casings.push(
                    table
                        .get(i as usize)
                        .ok_or_else(|| corrupt("casing index out of range"))?
                        .clone(),
                );
            }
            changes.push(Change {
                at_ms,
                ordinal,
                casings,
            });
        }
        if r.at != bytes.len() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(Segment { sealed, changes })
    }
}

/// The key of one segment of the history of `key` = `value`.
pub fn segment_key(key: &str, value: &str, segment: u32) -> Vec<u8> {
    // Made at its full length: a key grown past its first allocation
    // doubles it (a batch writes a million of them when a Location lists
    // 544k targets).
    let mut k = Vec::with_capacity(key.len() + value.len() + 7);
    k.push(keys::POSTING_HISTORY);
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k.extend_from_slice(value.as_bytes());
    k.push(0);
    k.extend_from_slice(&segment.to_be_bytes());
    k
}

/// The posting-list part of a segment key (without the segment number).
fn list_of(k: &[u8]) -> &[u8] {
    &k[..k.len().saturating_sub(5)]
}

/// Appends each list's changes in `past` (the history's part of
/// [`crate::postings::Changes`], grouped) to its open segment, sealing it
/// when full: one read and one write per list touched.
pub(crate) fn write_history(
    past: &crate::postings::ByList<(i64, u32, crate::postings::Casings)>,
    names: &crate::postings::Names,
    store: &dyn Store,
    out: &mut WriteSet,
) -> Result<(), StoreError> {
    past.write_lists(names, out, |key, value, entries, out| {
        let k = segment_key(key, value, OPEN);
        let mut open = match store.get(&k)? {
            Some(bytes) => Segment::decode(&k, &bytes)?,
            None => Segment::default(),
        };
        open.changes
            .extend(entries.iter().map(|(_, (at_ms, ordinal, casings))| {
                Change {
                    at_ms: *at_ms,
                    ordinal: *ordinal,
                    casings: names
                        .casing_names(casings)
                        .iter()
                        .map(|c| (*c).to_string())
                        .collect(),
                }
            }));
        if open.changes.len() >= SEGMENT_CHANGES {
            out.push((
                segment_key(key, value, open.sealed),
                Some(Segment { sealed: 0, ..open }.encode()),
            ));
            open = Segment {
                sealed: open.sealed + 1,
                changes: Vec::new(),
            };
        }
        out.push((k, Some(open.encode())));
        Ok(())
    })
}

/// Records that entity `ordinal`'s search rows moved from `old` to `new`
/// at `at_ms`: one change per value whose casings differ.
pub fn diff(changes: &mut Changes, at_ms: i64, ordinal: u32, old: &[SearchRow], new: &[SearchRow]) {
    crate::postings::each_moved_value(old, new, &mut |k, v, casings| {
        changes.record(k, v, at_ms, ordinal, casings);
    });
}

/// A list as of `at_ms`, from its segments' raw records in key order.
pub fn list_at(key: &[u8], segments: &[Vec<u8>], at_ms: i64) -> Result<Posting, StoreError> {
    Ok(list_at_each(key, segments, &[at_ms])?
        .pop()
        .unwrap_or_default())
}

/// A list at each of `instants` (ascending), from its segments' raw
/// records: one pass over its changes.
pub fn list_at_each(
    key: &[u8],
    segments: &[Vec<u8>],
    instants: &[i64],
) -> Result<Vec<Posting>, StoreError> {
    let mut changes = Vec::new();
    for bytes in segments {
        changes.extend(Segment::decode(key, bytes)?.changes);
    }
    if !changes.is_sorted_by_key(|c| c.at_ms) {
        // Late changes: into time order. The sort is stable, so of two
        // changes at one instant the later written still wins.
        changes.sort_by_key(|c| c.at_ms);
    }
    let mut out = Vec::with_capacity(instants.len());
    let mut posting = Posting::default();
    let mut next = changes.into_iter().peekable();
    for &t in instants {
        while let Some(c) = next.next_if(|c| c.at_ms <= t) {
            posting.set(c.ordinal, &c.casings);
        }
        out.push(posting.clone());
    }
    Ok(out)
}

/// Every list of search key `key` with a value starting with
/// `value_prefix`, each at every one of `instants` (ascending): the value
/// and its list at each instant.
pub fn lists_at_each(
    store: &dyn Store,
    key: &str,
    value_prefix: &str,
    instants: &[i64],
) -> Result<Vec<(String, Vec<Posting>)>, StoreError> {
    let mut prefix = keys::prefix(keys::POSTING_HISTORY, &[key.as_bytes()]);
    let values_at = prefix.len();
    prefix.extend_from_slice(value_prefix.as_bytes());
    let mut lists: Vec<(Vec<u8>, Vec<Vec<u8>>)> = Vec::new();
    store.scan(&prefix, None, &mut |k, v| {
        let list = list_of(k);
        match lists.last_mut() {
            Some((l, segs)) if l.as_slice() == list => segs.push(v.to_vec()),
            _ => lists.push((list.to_vec(), vec![v.to_vec()])),
        }
        true
    })?;
    lists
        .into_iter()
        .map(|(list, segments)| {
            let value =
                String::from_utf8_lossy(list.get(values_at..).unwrap_or_default()).into_owned();
            Ok((value, list_at_each(&list, &segments, instants)?))
        })
        .collect()
}

/// Visits each posting list under `x_prefix` (a prefix of `x` keys) as of
/// `at_ms`, in key order, with its `x` key; empty lists are skipped.
pub fn scan_at(
    store: &dyn Store,
    x_prefix: &[u8],
    from: Option<&[u8]>,
    at_ms: i64,
    visit: &mut dyn FnMut(&[u8], Posting) -> bool,
) -> Result<(), StoreError> {
    let to_history = |k: &[u8]| -> Vec<u8> {
        let mut h = k.to_vec();
        if let Some(first) = h.first_mut() {
            *first = keys::POSTING_HISTORY;
        }
        h
    };
    let prefix = to_history(x_prefix);
    let from = from.map(to_history);
    let mut current: Option<Vec<u8>> = None;
    let mut segments: Vec<Vec<u8>> = Vec::new();
    let mut err = None;
    let mut stopped = false;
    let mut flush = |list: &[u8], segments: &mut Vec<Vec<u8>>| -> bool {
        let result = list_at(list, segments, at_ms);
        segments.clear();
        match result {
            Ok(p) if p.casings.is_empty() => true,
            Ok(p) => {
                let mut xk = list.to_vec();
                xk[0] = keys::POSTING;
                visit(&xk, p)
            }
            Err(e) => {
                err = Some(e);
                false
            }
        }
    };
    store.scan(&prefix, from.as_deref(), &mut |k, v| {
        if k.len() < prefix.len().max(6) {
            return true;
        }
        let list = list_of(k);
        if current.as_deref() != Some(list) {
            if let Some(done) = current.take()
                && !flush(&done, &mut segments)
            {
                stopped = true;
                return false;
            }
            current = Some(list.to_vec());
        }
        segments.push(v.to_vec());
        true
    })?;
    if !stopped && let Some(done) = current.take() {
        flush(&done, &mut segments);
    }
    err.map_or(Ok(()), Err)
}

/// The uid -> ref record of every ref given an ordinal.
pub fn remember_uid(refkey: &str, out: &mut WriteSet) {
    let uid = proto::derived_id("entity", refkey).to_string();
    out.push((
        keys::key(keys::UID_EVER, &[uid.as_bytes()]),
        Some(refkey.as_bytes().to_vec()),
    ));
}

/// The ref key an entity uid belonged to, if the index ever held it.
pub fn ref_of_uid(store: &dyn Store, uid: &str) -> Result<Option<String>, StoreError> {
    Ok(store
        .get(&keys::key(keys::UID_EVER, &[uid.as_bytes()]))?
        .map(|r| String::from_utf8_lossy(&r).into_owned()))
}

/// Whether this store's posting lists have their history (else it was
/// written before it existed, see [`upgrade`]).
const UPGRADED: &str = "index-history-v1";

/// Whether reads as of the past can use the posting lists' history.
pub fn available(store: &dyn Store) -> Result<bool, StoreError> {
    Ok(store.get(&keys::meta(UPGRADED))?.is_some())
}

/// Marks a store as holding the posting lists' history (a new store, from
/// its first write on).
pub fn mark_upgraded(out: &mut WriteSet) {
    out.push((keys::meta(UPGRADED), Some(Vec::new())));
}

/// Where an interrupted [`upgrade`] goes on from (the last ref done).
const UPGRADE_AFTER: &str = "index-history-after";

/// Builds the posting lists' history of a store written before it was
/// kept, from the served versions (`P`): every ref's versions in time
/// order, 2,000 refs per write. Runs once; returns how many refs it read.
pub fn upgrade(store: &dyn Store) -> Result<usize, StoreError> {
    Ok(upgrade_until(store, &|| false)?.unwrap_or(0))
}

/// [`upgrade`], asking `stop` between writes: `None` when it stopped
/// before the end. Each write records the last ref done, so the next
/// start goes on from there.
pub fn upgrade_until(
    store: &dyn Store,
    stop: &dyn Fn() -> bool,
) -> Result<Option<usize>, StoreError> {
    upgrade_in_chunks(store, 2_000, stop)
}

fn upgrade_in_chunks(
    store: &dyn Store,
    chunk: usize,
    stop: &dyn Fn() -> bool,
) -> Result<Option<usize>, StoreError> {
    if store.get(&keys::meta(UPGRADED))?.is_some() {
        return Ok(Some(0));
    }
    let mut done = 0;
    let mut after: Option<String> = store
        .get(&keys::meta(UPGRADE_AFTER))?
        .map(|r| String::from_utf8_lossy(&r).into_owned());
    loop {
        if stop() {
            return Ok(None);
        }
        let mut refs: Vec<(String, Versions)> = Vec::new();
        let mut full = false;
        let from = after.as_deref().map(|a| keys::version(a, i64::MAX));
        scan_versions(
            store,
            &[keys::VERSION],
            from.as_deref(),
            true,
            &mut |r, versions| {
                if after.as_deref() == Some(r) {
                    return Ok(true);
                }
                refs.push((r.to_string(), versions));
                full = refs.len() >= chunk;
                Ok(!full)
            },
        )?;
        let mut changes = Changes::default();
        let mut ordinals = Ordinals::new(store);
        let mut out = WriteSet::new();
        for (r, versions) in &refs {
            let ordinal = ordinals.of(r)?;
            remember_uid(r, &mut out);
            let mut before: Vec<SearchRow> = Vec::new();
            for (at, body) in versions {
                let rows = match body {
                    Some(b) => rows_of(r, b)?,
                    None => Vec::new(),
                };
                diff(&mut changes, *at, ordinal, &before, &rows);
                before = rows;
            }
        }
        changes.write(store, &mut out)?;
        ordinals.drain_into(&mut out);
        done += refs.len();
        if let Some((last, _)) = refs.last() {
            after = Some(last.clone());
        }
        if !full {
            mark_upgraded(&mut out);
            out.push((keys::meta(UPGRADE_AFTER), None));
            store.write(out)?;
            return Ok(Some(done));
        }
        if let Some(a) = &after {
            out.push((keys::meta(UPGRADE_AFTER), Some(a.as_bytes().to_vec())));
        }
        store.write(out)?;
    }
}

/// A served version: its time and the served JSON (`None`: not served).
pub type Version = (i64, Option<Vec<u8>>);

/// A ref's versions, oldest first.
pub type Versions = Vec<Version>;

/// Visits the keys under `prefix` (from the key `from`) that end in `\0`
/// and a time, grouped by what comes before the time (the group keeps the
/// table byte), in key order: `each(state, key, time, value)` for every
/// key of a group, then `end(state, group)` once after its last, until
/// `end` says stop or either fails. The tables of versions (`P`) and of
/// relation changes (`G`) are read this way.
pub fn scan_grouped<S>(
    store: &dyn Store,
    prefix: &[u8],
    from: Option<&[u8]>,
    state: &mut S,
    mut each: impl FnMut(&mut S, &[u8], i64, &[u8]) -> Result<(), StoreError>,
    mut end: impl FnMut(&mut S, &[u8]) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let mut current: Option<Vec<u8>> = None;
    let mut err = None;
    let mut stopped = false;
    store.scan(prefix, from, &mut |k, v| {
        let (Some(t), Some(group)) = (keys::version_time(k), k.get(..k.len().saturating_sub(9)))
        else {
            return true;
        };
        if current.as_deref().is_some_and(|c| c != group) {
            let done = current.take().expect("some");
            match end(state, &done) {
                Ok(true) => {}
                Ok(false) => {
                    stopped = true;
                    return false;
                }
                Err(e) => {
                    err = Some(e);
                    return false;
                }
            }
        }
        if current.is_none() {
            current = Some(group.to_vec());
        }
        match each(state, k, t, v) {
            Ok(()) => true,
            Err(e) => {
                err = Some(e);
                false
            }
        }
    })?;
    if !stopped
        && err.is_none()
        && let Some(done) = current
        && let Err(e) = end(state, &done)
    {
        err = Some(e);
    }
    err.map_or(Ok(()), Err)
}

/// Visits each subject's versions under `prefix` (a table of versions
/// keyed by subject and time, such as `P`), in subject order, from the key
/// `from` (the first subject visited may be partial when `from` is inside
/// its versions), until `visit` says stop. Bodies are read only
/// `with_bodies` (else each served version's body is empty).
pub fn scan_versions(
    store: &dyn Store,
    prefix: &[u8],
    from: Option<&[u8]>,
    with_bodies: bool,
    visit: &mut dyn FnMut(&str, Versions) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let mut versions: Versions = Vec::new();
    scan_grouped(
        store,
        prefix,
        from,
        &mut versions,
        |vs, k, t, v| {
            let body = records::decode_version(k, v)?;
            vs.push((
                t,
                body.map(|b| if with_bodies { b.to_vec() } else { Vec::new() }),
            ));
            Ok(())
        },
        |vs, group| visit(&String::from_utf8_lossy(&group[1..]), std::mem::take(vs)),
    )
}

/// The search rows of a served version's JSON.
pub fn rows_of(r: &str, body: &[u8]) -> Result<Vec<SearchRow>, StoreError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| StoreError::Corrupt {
            key: format!("version of {r}"),
            reason: e.to_string(),
        })?;
    Ok(crate::search::rows(&value))
}

/// The version of `r` in force at `at_ms` (the last at or before it) with
/// its time, and the first after it: what a late version sits between.
#[allow(clippy::type_complexity)]
pub fn neighbours(
    store: &dyn Store,
    r: &str,
    at_ms: i64,
) -> Result<(Option<Version>, Option<Version>), StoreError> {
    let prefix = keys::prefix(keys::VERSION, &[r.as_bytes()]);
    let decode = |k: &[u8], v: &[u8]| -> Result<Version, StoreError> {
        let t = keys::version_time(k).ok_or_else(|| StoreError::Corrupt {
            key: String::from_utf8_lossy(k).into_owned(),
            reason: "version key without a time".into(),
        })?;
        Ok((t, records::decode_version(k, v)?.map(<[u8]>::to_vec)))
    };
    let (before, after) = store.around(&prefix, &keys::version(r, at_ms))?;
    let before = match before {
        Some((k, v)) => Some(decode(&k, &v)?),
        None => None,
    };
    let after = match after {
        Some((k, v)) => Some(decode(&k, &v)?),
        None => None,
    };
    Ok((before, after))
}

/// Whether any version of `r` is kept.
pub fn has_versions(store: &dyn Store, r: &str) -> Result<bool, StoreError> {
    let mut any = false;
    store.scan(
        &keys::prefix(keys::VERSION, &[r.as_bytes()]),
        None,
        &mut |_, _| {
            any = true;
            false
        },
    )?;
    Ok(any)
}

/// The posting-list members of a list as of `at_ms`, for tests and tools:
/// every ordinal with its casings.
pub fn members_at(
    store: &dyn Store,
    key: &str,
    value: &str,
    at_ms: i64,
) -> Result<Posting, StoreError> {
    let x = keys::posting(key, value);
    let mut out = Posting::default();
    let mut prefix = x.clone();
    prefix.push(0);
    scan_at(store, &prefix, None, at_ms, &mut |k, p| {
        if k == x.as_slice() {
            out = p;
        }
        true
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;
    use std::collections::BTreeMap;

    fn change(at_ms: i64, ordinal: u32, casings: &[&str]) -> Change {
        Change {
            at_ms,
            ordinal,
            casings: casings.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn segments_round_trip_and_refuse_damage() {
        let s = Segment {
            sealed: 3,
            changes: vec![
                change(1_700_000_000_000, 7, &["Prod"]),
                change(1_600_000_000_000, 70_000, &[]),
                change(-5, 2, &["prod", "Prod"]),
            ],
        };
        let bytes = s.encode();
        assert_eq!(Segment::decode(b"k", &bytes).unwrap(), s);
        for cut in 0..bytes.len() {
            assert!(
                Segment::decode(b"k", &bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let e = Segment::decode(b"Xkind", &longer).unwrap_err().to_string();
        assert!(e.contains("Xkind") && e.contains("trailing"), "{e}");
    }

    #[test]
    fn a_list_as_of_an_instant_follows_time_not_writing_order() {
        let store = MemStore::new();
        let mut out = WriteSet::new();
        let mut c = Changes::default();
        for (at, ordinal, casings) in [
            (10, 1, &["Component"][..]),
            (20, 2, &["component"]),
            (30, 1, &[]),
            // Late: written after, placed before.
            (15, 2, &["Component"]),
        ] {
            c.record("kind", "component", at, ordinal, casings);
        }
        c.write(&store, &mut out).unwrap();
        store.write(out).unwrap();
        let at = |t: i64| {
            let p = members_at(&store, "kind", "component", t).unwrap();
            p.casings
                .iter()
                .map(|(c, b)| format!("{c}={:?}", b.iter().collect::<Vec<_>>()))
                .collect::<Vec<_>>()
                .join(";")
        };
        assert_eq!(at(9), "");
        assert_eq!(at(10), "Component=[1]");
        assert_eq!(at(15), "Component=[1, 2]");
        assert_eq!(at(20), "Component=[1];component=[2]");
        assert_eq!(at(30), "component=[2]");
    }

    #[test]
    fn an_upgrade_stopped_and_started_again_builds_the_history_the_fold_keeps() {
        use crate::fold::tests::{component, event};
        let live = MemStore::new();
        upgrade(&live).unwrap();
        let at = |d: i64| chrono::DateTime::from_timestamp(1_700_000_000 + d * 86_400, 0).unwrap();
        // Eight refs over four locations, owners moving, one location
        // removed, one change observed late.
        for (i, d) in [0i64, 1, 2, 3, 5, 4, 6, 7].into_iter().enumerate() {
            let loc = format!("file:/org/l{}.yaml", i % 4);
            let mut e = event(
                &loc,
                1,
                (0..2)
                    .map(|k| {
                        component(
                            &format!("c{}", (i % 4) * 2 + k),
                            &format!("team-{}", (i + k) % 3),
                            &loc,
                        )
                    })
                    .collect(),
            );
            if i == 6 {
                e.outcome = proto::LocationOutcome::Removed;
            }
            e.observed_at = at(d);
            let mut fold = crate::Fold::new(&live);
            fold.apply(&e).unwrap();
            live.write(fold.finish().unwrap()).unwrap();
        }
        // The same store as if written before the history was kept.
        let old = MemStore::new();
        old.write(
            live.dump()
                .into_iter()
                .filter(|(k, _)| {
                    ![keys::POSTING_HISTORY, keys::UID_EVER].contains(&k[0])
                        && *k != keys::meta(UPGRADED)
                })
                .map(|(k, v)| (k, Some(v)))
                .collect(),
        )
        .unwrap();
        let asked = std::cell::Cell::new(0);
        let stop_on_third = || {
            asked.set(asked.get() + 1);
            asked.get() >= 3
        };
        assert_eq!(upgrade_in_chunks(&old, 3, &stop_on_third).unwrap(), None);
        assert!(old.get(&keys::meta(UPGRADE_AFTER)).unwrap().is_some());
        assert!(!available(&old).unwrap());
        assert!(upgrade_in_chunks(&old, 3, &|| false).unwrap().is_some());
        assert!(available(&old).unwrap());
        assert!(old.get(&keys::meta(UPGRADE_AFTER)).unwrap().is_none());
        let history = |s: &MemStore| -> BTreeMap<Vec<u8>, Vec<u8>> {
            crate::postings::canonical(s.dump())
                .into_iter()
                .filter(|(k, _)| [keys::POSTING_HISTORY, keys::UID_EVER].contains(&k[0]))
                // Relations are not in the served versions: their lists'
                // history comes from the relation rows' own (a store
                // without it is rebuilt, see `relations::ensure_layout`).
                .filter(|(k, _)| !k[1..].starts_with(b"relations."))
                .collect()
        };
        let (built, kept) = (history(&old), history(&live));
        assert!(built.len() > 10, "{built:?}");
        assert_eq!(built, kept);
    }

    #[test]
    fn full_segments_are_sealed_and_read_in_order() {
        let store = MemStore::new();
        for batch in 0..3u32 {
            let mut c = Changes::default();
            for i in 0..(SEGMENT_CHANGES as u32 / 2 + 1) {
                let o = batch * 10_000 + i;
                c.record("spec.type", "service", i64::from(o), o, &["service"]);
            }
            let mut out = WriteSet::new();
            c.write(&store, &mut out).unwrap();
            store.write(out).unwrap();
        }
        let mut segments = 0;
        store
            .scan(&[keys::POSTING_HISTORY], None, &mut |_, _| {
                segments += 1;
                true
            })
            .unwrap();
        assert_eq!(segments, 2, "one sealed, one open");
        let all = members_at(&store, "spec.type", "service", i64::MAX).unwrap();
        assert_eq!(all.members().len(), 3 * (SEGMENT_CHANGES as u64 / 2 + 1));
        let some = members_at(&store, "spec.type", "service", 10_005).unwrap();
        assert_eq!(some.members().len(), SEGMENT_CHANGES as u64 / 2 + 1 + 6);
    }
}
