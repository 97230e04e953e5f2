//! Relations, one row per relation, stitched into an entity when it is read.
//!
//! An entity's served JSON (`E`, and its versions in `P`) holds what its
//! winning location yields, with uid and etag, but not its relations: a
//! hub that half the catalog depends on would otherwise carry hundreds of
//! thousands of them, re-read, re-serialised and re-written whole for each
//! dependent added. Instead each relation is a row of its own (`g`:
//! source, type, target), written when the relation comes or goes, and
//! each of its changes is kept in `G` at the time of the change that
//! caused it. Reads stitch the rows of an entity into its JSON
//! ([`splice`]); reads `asOf` stitch the rows as they stood then
//! ([`scan_at`]). The search index gets `relations.<type>` = target for
//! each row of a served entity, moved row by row.

use crate::keys;
use crate::records::{self, RelationRow, SearchRow};
use crate::store::{Store, StoreError};
use proto::{EntityRelation, RelationType};
use std::collections::HashMap;

/// Readies a store of projections for this layout. A store written with
/// relation sets inside the served JSON (it has sets in table `R`) is
/// emptied, offsets included, so the projector rebuilds it from the start
/// of its input logs (the entity log is the event store). Returns how many
/// keys it deleted.
pub fn ensure_layout(store: &dyn Store) -> Result<u64, StoreError> {
    let mut older = false;
    store.scan(&[keys::RELATIONS], None, &mut |_, _| {
        older = true;
        false
    })?;
    if !older {
        return Ok(0);
    }
    let mut deleted = 0u64;
    loop {
        let mut chunk = Vec::new();
        store.scan(&[], None, &mut |k, _| {
            chunk.push((k.to_vec(), None));
            chunk.len() < 100_000
        })?;
        if chunk.is_empty() {
            return Ok(deleted);
        }
        deleted += chunk.len() as u64;
        store.write(chunk)?;
    }
}

/// A ref's relation mark (`j`): what the fold knows of its relations'
/// history, and what a reader needs to know they have not changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The time of the latest change kept in `G`.
    pub latest: i64,
    /// How many batches changed its relations.
    pub changes: u64,
    /// Whether a late change has been applied to its relations or its
    /// versions (their history is then recomputed at every change).
    pub late: bool,
}

impl Mark {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(17);
        v.extend_from_slice(&self.latest.to_be_bytes());
        v.extend_from_slice(&self.changes.to_be_bytes());
        if self.late {
            v.push(1);
        }
        v
    }

    /// The mark of `r`, if its relations ever changed.
    pub fn read(store: &dyn Store, r: &str) -> Result<Option<Mark>, StoreError> {
        let key = keys::latest_relation(r);
        Mark::decode(&key, store.get(&key)?.as_deref())
    }

    /// The mark stored at `key` (`None`: none is).
    pub fn decode(key: &[u8], stored: Option<&[u8]>) -> Result<Option<Mark>, StoreError> {
        match stored {
            Some(b) if b.len() == 16 || b.len() == 17 => Ok(Some(Mark {
                latest: i64::from_be_bytes(b[..8].try_into().expect("8 bytes")),
                changes: u64::from_be_bytes(b[8..16].try_into().expect("8 bytes")),
                late: b.len() == 17,
            })),
            Some(_) => Err(StoreError::Corrupt {
                key: String::from_utf8_lossy(key).into_owned(),
                reason: "not a relation mark (time, changes, flag)".into(),
            }),
            None => Ok(None),
        }
    }
}

/// The source ref key of a `g` (or `G`) key.
pub fn source_of(k: &[u8]) -> &[u8] {
    let rest = &k[1..];
    match rest.iter().position(|b| *b == 0) {
        Some(i) => &rest[..i],
        None => rest,
    }
}

fn decode_row(k: &[u8], v: &[u8]) -> Result<RelationRow, StoreError> {
    records::decode(k, v)
}

/// Sorts relations as their rows are kept: by type name, then target.
pub fn sort(relations: &mut [EntityRelation]) {
    relations.sort_by_cached_key(|r| (r.relation_type.as_str(), r.target_ref.key()));
}

/// The part of a `g` value a read needs, borrowed from its JSON.
#[derive(serde::Deserialize)]
struct RowView<'a> {
    #[serde(rename = "type", borrow)]
    relation_type: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    target: std::borrow::Cow<'a, str>,
}

/// Appends the relation of the `g` row (`k`, `v`) to `out` as an item of
/// a served entity's `relations` array, without parsing its target.
pub(crate) fn push_json(out: &mut Vec<u8>, k: &[u8], v: &[u8]) -> Result<(), StoreError> {
    let view: RowView = match v.split_first() {
        Some((&records::RECORD_VERSION, rest)) => serde_json::from_slice(rest).ok(),
        _ => None,
    }
    .ok_or_else(|| StoreError::Corrupt {
        key: String::from_utf8_lossy(k).into_owned(),
        reason: "not a relation row".into(),
    })?;
    if !out.is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(b"{\"type\":");
    serde_json::to_writer(&mut *out, &view.relation_type).expect("strings serialise");
    out.extend_from_slice(b",\"targetRef\":");
    serde_json::to_writer(&mut *out, &view.target).expect("strings serialise");
    out.push(b'}');
    Ok(())
}

/// The relations of `source` as the items of its `relations` array (JSON,
/// without the brackets; empty when it has none), in row order.
pub fn json_of(store: &dyn Store, source: &str) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    let mut err = None;
    store.scan(&keys::relations_of(source), None, &mut |k, v| {
        if let Err(e) = push_json(&mut out, k, v) {
            err = Some(e);
        }
        err.is_none()
    })?;
    err.map_or(Ok(out), Err)
}

/// [`json_of`] for every source from `first` to `last` (ref keys, in
/// order): one scan for a run of entities read in ref order; `once`: a
/// pass over every entity, read with [`Store::scan_once`].
pub fn json_of_range(
    store: &dyn Store,
    first: &str,
    last: &str,
    once: bool,
) -> Result<HashMap<String, Vec<u8>>, StoreError> {
    let mut out: HashMap<String, Vec<u8>> = HashMap::new();
    let mut current: Option<(Vec<u8>, Vec<u8>)> = None;
    let mut err = None;
    let from = keys::relations_of(first);
    let scan = if once { Store::scan_once } else { Store::scan };
    scan(store, &[keys::RELATION], Some(&from), &mut |k, v| {
        let source = source_of(k);
        if source > last.as_bytes() {
            return false;
        }
        if current
            .as_ref()
            .is_some_and(|(s, _)| s.as_slice() != source)
            && let Some((s, json)) = current.take()
        {
            out.insert(String::from_utf8_lossy(&s).into_owned(), json);
        }
        let (_, json) = current.get_or_insert_with(|| (source.to_vec(), Vec::new()));
        if let Err(e) = push_json(json, k, v) {
            err = Some(e);
        }
        err.is_none()
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    if let Some((s, json)) = current {
        out.insert(String::from_utf8_lossy(&s).into_owned(), json);
    }
    Ok(out)
}

/// Served JSON with the relation items `items` (from [`json_of`]) added
/// last as its `relations` array; nothing added when there are none.
pub fn splice_json(mut served: Vec<u8>, items: &[u8]) -> Vec<u8> {
    if items.is_empty() || served.last() != Some(&b'}') {
        return served;
    }
    served.pop();
    if served.last() != Some(&b'{') {
        served.push(b',');
    }
    served.reserve(items.len() + 16);
    served.extend_from_slice(b"\"relations\":[");
    served.extend_from_slice(items);
    served.extend_from_slice(b"]}");
    served
}

fn relation_of(row: RelationRow) -> EntityRelation {
    EntityRelation {
        relation_type: row.relation_type,
        target_ref: row.target,
    }
}

/// The relations of `source` in the store, in row order (see [`sort`]).
pub fn of(store: &dyn Store, source: &str) -> Result<Vec<EntityRelation>, StoreError> {
    let mut out = Vec::new();
    let mut err = None;
    store.scan(&keys::relations_of(source), None, &mut |k, v| {
        match decode_row(k, v) {
            Ok(row) => out.push(relation_of(row)),
            Err(e) => err = Some(e),
        }
        err.is_none()
    })?;
    if let Some(e) = err {
        return Err(e);
    }
    sort(&mut out);
    Ok(out)
}

/// The relations of `source` of the given types, sorted: a scan per type,
/// so a hub's relations of other types are not read.
pub fn of_types(
    store: &dyn Store,
    source: &str,
    types: impl IntoIterator<Item = RelationType>,
) -> Result<Vec<EntityRelation>, StoreError> {
    let mut out = Vec::new();
    let mut err = None;
    for t in types {
        let prefix = keys::prefix(keys::RELATION, &[source.as_bytes(), t.as_str().as_bytes()]);
        store.scan(&prefix, None, &mut |k, v| {
            match decode_row(k, v) {
                Ok(row) => out.push(relation_of(row)),
                Err(e) => err = Some(e),
            }
            err.is_none()
        })?;
        if let Some(e) = err.take() {
            return Err(e);
        }
    }
    sort(&mut out);
    Ok(out)
}

/// Served JSON with its relations: the object `served` (written without
/// a `relations` member) with `"relations": [...]` added last. Nothing is
/// added when there are none, as an entity without relations is served.
pub fn splice(mut served: Vec<u8>, relations: &[EntityRelation]) -> Vec<u8> {
    if relations.is_empty() || served.last() != Some(&b'}') {
        return served;
    }
    served.pop();
    let empty = served.last() == Some(&b'{');
    served.extend_from_slice(if empty {
        b"\"relations\":".as_slice()
    } else {
        b",\"relations\":".as_slice()
    });
    serde_json::to_writer(&mut served, relations).expect("relations serialise");
    served.push(b'}');
    served
}

/// The served JSON of `source` with its relations stitched in.
pub fn stitched(store: &dyn Store, source: &str, served: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    Ok(splice_json(served, &json_of(store, source)?))
}

/// The search row of one relation (`relations.<type>` = target ref).
/// A ref key fits the index's value limit (names and namespaces are at
/// most 63 characters), so each relation of a source has its own value.
pub fn search_row(row: &RelationRow) -> Option<SearchRow> {
    crate::search::relation_row(row.relation_type.as_str(), &row.target.to_string())
}

/// The search rows of a list of relations, sorted.
pub fn search_rows(relations: &[EntityRelation]) -> Vec<SearchRow> {
    let mut out: Vec<SearchRow> = relations
        .iter()
        .filter_map(|r| {
            crate::search::relation_row(r.relation_type.as_str(), &r.target_ref.to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A `G` value: the relation from then on (who emits it left out), or
/// `None` from its end on.
pub fn encode_change(row: Option<&RelationRow>) -> Vec<u8> {
    records::encode(&row.map(|r| RelationRow {
        relation_type: r.relation_type,
        target: r.target.clone(),
        emitters: Default::default(),
    }))
}

/// Visits, in key order, the `g` rows under `prefix` (from the `g` key
/// `from`) as they stood at `at_ms`, read from their history `G`: for
/// each relation, its last change at or before then (ties: the later
/// written), when that change did not end it.
pub fn scan_at(
    store: &dyn Store,
    prefix: &[u8],
    from: Option<&[u8]>,
    at_ms: i64,
    visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<(), StoreError> {
    let to_history = |k: &[u8]| {
        let mut h = k.to_vec();
        if let Some(t) = h.first_mut() {
            *t = keys::RELATION_HISTORY;
        }
        h
    };
    let prefix_h = to_history(prefix);
    let from_h = from.map(to_history);
    // Per relation: the value of its last change at or before the instant.
    let mut state: Option<Vec<u8>> = None;
    crate::temporal::scan_grouped(
        store,
        &prefix_h,
        from_h.as_deref(),
        &mut state,
        |s, _, t, v| {
            if t <= at_ms {
                *s = Some(v.to_vec());
            }
            Ok(())
        },
        |s, group| {
            let Some(value) = s.take() else {
                return Ok(true);
            };
            match records::decode::<Option<RelationRow>>(group, &value)? {
                Some(row) => {
                    let mut k = group.to_vec();
                    k[0] = keys::RELATION;
                    Ok(visit(&k, &records::encode(&row)))
                }
                None => Ok(true),
            }
        },
    )
}

/// The relations of `source` at `at_ms`, from their history, sorted.
pub fn of_at(
    store: &dyn Store,
    source: &str,
    at_ms: i64,
) -> Result<Vec<EntityRelation>, StoreError> {
    let mut out = Vec::new();
    let mut err = None;
    scan_at(
        store,
        &keys::relations_of(source),
        None,
        at_ms,
        &mut |k, v| {
            match decode_row(k, v) {
                Ok(row) => out.push(relation_of(row)),
                Err(e) => err = Some(e),
            }
            err.is_none()
        },
    )?;
    if let Some(e) = err {
        return Err(e);
    }
    sort(&mut out);
    Ok(out)
}

/// One `G` entry: the relation's `g` key, the time of the change and the
/// relation from then on (`None`: it ended); `None` for a key without a
/// time.
#[allow(clippy::type_complexity)]
pub fn parse_change(
    k: &[u8],
    v: &[u8],
) -> Result<Option<(Vec<u8>, i64, Option<RelationRow>)>, StoreError> {
    let (Some(t), Some(row)) = (keys::version_time(k), k.get(..k.len().saturating_sub(9))) else {
        return Ok(None);
    };
    let state = records::decode::<Option<RelationRow>>(k, v)?;
    let mut g = row.to_vec();
    g[0] = keys::RELATION;
    Ok(Some((g, t, state)))
}

/// The changes of `source`'s relations, by relation key, each in time order.
pub fn history_of(store: &dyn Store, source: &str) -> Result<RelationHistory, StoreError> {
    let mut out = Vec::new();
    let mut err = None;
    let mut prefix = vec![keys::RELATION_HISTORY];
    prefix.extend_from_slice(source.as_bytes());
    prefix.push(0);
    store.scan(&prefix, None, &mut |k, v| {
        match parse_change(k, v) {
            Ok(Some(change)) => out.push(change),
            Ok(None) => {}
            Err(e) => err = Some(e),
        }
        err.is_none()
    })?;
    err.map_or(Ok(out), Err)
}

/// Each relation's changes (time, the relation from then on or `None`),
/// for sources visited in ref order: reads `G` in chunks ahead, so a pass
/// over every ref costs one scan, not an iterator per ref.
pub struct HistoryCursor<'s> {
    store: &'s dyn Store,
    /// Read ahead: (source, relation key, time, state from then on).
    buffer: std::collections::VecDeque<(String, Vec<u8>, i64, Option<RelationRow>)>,
    next: Option<Vec<u8>>,
    done: bool,
}

/// One source's relation changes (`g` key, time, relation from then on),
/// by relation key, in time order.
pub type RelationHistory = Vec<(Vec<u8>, i64, Option<RelationRow>)>;

impl<'s> HistoryCursor<'s> {
    const CHUNK: usize = 4096;

    pub fn new(store: &'s dyn Store) -> Self {
        HistoryCursor {
            store,
            buffer: Default::default(),
            next: None,
            done: false,
        }
    }

    /// The changes of `source`'s relations; sources must be asked in
    /// ascending order.
    pub fn of(&mut self, source: &str) -> Result<RelationHistory, StoreError> {
        let mut out = Vec::new();
        loop {
            while let Some((s, ..)) = self.buffer.front() {
                match s.as_str().cmp(source) {
                    std::cmp::Ordering::Less => {
                        self.buffer.pop_front();
                    }
                    std::cmp::Ordering::Equal => {
                        let (_, k, t, row) = self.buffer.pop_front().expect("front");
                        out.push((k, t, row));
                    }
                    std::cmp::Ordering::Greater => return Ok(out),
                }
            }
            if self.done {
                return Ok(out);
            }
            self.fill(source)?;
        }
    }

    fn fill(&mut self, source: &str) -> Result<(), StoreError> {
        // Skip what lies before the source asked for.
        let skip_to = {
            let mut k = vec![keys::RELATION_HISTORY];
            k.extend_from_slice(source.as_bytes());
            k.push(0);
            k
        };
        let from = match self.next.take() {
            Some(n) if n > skip_to => n,
            _ => skip_to,
        };
        let mut read = 0;
        let mut err = None;
        let mut last = None;
        let buffer = &mut self.buffer;
        self.store
            .scan(&[keys::RELATION_HISTORY], Some(&from), &mut |k, v| {
                read += 1;
                last = Some(k.to_vec());
                match parse_change(k, v) {
                    Ok(Some((g, t, state))) => buffer.push_back((
                        String::from_utf8_lossy(source_of(k)).into_owned(),
                        g,
                        t,
                        state,
                    )),
                    Ok(None) => {}
                    Err(e) => err = Some(e),
                }
                err.is_none() && read < Self::CHUNK
            })?;
        if let Some(e) = err {
            return Err(e);
        }
        match last {
            Some(mut k) if read >= Self::CHUNK => {
                k.push(0);
                self.next = Some(k);
            }
            _ => self.done = true,
        }
        Ok(())
    }
}

/// The relations a source's history says it had at `at_ms`, sorted.
pub fn at(history: &RelationHistory, at_ms: i64) -> Vec<EntityRelation> {
    let mut now: std::collections::BTreeMap<&[u8], &Option<RelationRow>> = Default::default();
    for (k, t, state) in history {
        if *t <= at_ms {
            now.insert(k.as_slice(), state);
        }
    }
    let mut out: Vec<EntityRelation> = now
        .into_values()
        .filter_map(|s| s.clone().map(relation_of))
        .collect();
    sort(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;
    use proto::EntityRef;

    fn row(t: RelationType, target: &str) -> RelationRow {
        RelationRow {
            relation_type: t,
            target: EntityRef::parse(target, None, "default").unwrap(),
            emitters: ["x".to_string()].into(),
        }
    }

    #[test]
    fn splicing_adds_relations_last_and_nothing_when_there_are_none() {
        let served = br#"{"kind":"Group","metadata":{"name":"a"}}"#.to_vec();
        assert_eq!(splice(served.clone(), &[]), served);
        let rels = vec![EntityRelation {
            relation_type: RelationType::OwnerOf,
            target_ref: EntityRef::parse("component:default/C", None, "default").unwrap(),
        }];
        let v: serde_json::Value = serde_json::from_slice(&splice(served, &rels)).unwrap();
        assert_eq!(v["metadata"]["name"], "a");
        assert_eq!(v["relations"][0]["type"], "ownerOf");
        assert_eq!(v["relations"][0]["targetRef"], "component:default/C");
        let v: serde_json::Value = serde_json::from_slice(&splice(b"{}".to_vec(), &rels)).unwrap();
        assert_eq!(v["relations"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_store_with_relation_sets_is_emptied_and_one_without_is_kept() {
        let store = MemStore::new();
        store
            .write(vec![(
                keys::entity("group:default/a"),
                Some(b"{}".to_vec()),
            )])
            .unwrap();
        assert_eq!(ensure_layout(&store).unwrap(), 0);
        assert_eq!(store.dump().len(), 1);
        store
            .write(vec![(
                keys::key(keys::RELATIONS, &[b"group:default/a"]),
                Some(b"set".to_vec()),
            )])
            .unwrap();
        assert_eq!(ensure_layout(&store).unwrap(), 2);
        assert!(store.dump().is_empty());
    }

    #[test]
    fn the_rows_read_as_json_are_the_relations_serialised() {
        let store = MemStore::new();
        let src = "group:default/a";
        let rows = [
            row(RelationType::OwnerOf, "component:default/Zed"),
            row(RelationType::OwnerOf, "component:default/alpha"),
            row(RelationType::ChildOf, "group:default/Root"),
        ];
        store
            .write(
                rows.iter()
                    .map(|r| {
                        (
                            keys::relation(src, r.relation_type.as_str(), &r.target.key()),
                            Some(records::encode(r)),
                        )
                    })
                    .collect(),
            )
            .unwrap();
        let served = br#"{"kind":"Group"}"#.to_vec();
        let by_json = splice_json(served.clone(), &json_of(&store, src).unwrap());
        let by_value = splice(served, &of(&store, src).unwrap());
        assert_eq!(by_json, by_value);
        let v: serde_json::Value = serde_json::from_slice(&by_json).unwrap();
        assert_eq!(v["relations"][0]["targetRef"], "group:default/Root");
        assert_eq!(v["relations"][1]["targetRef"], "component:default/alpha");
        let range = json_of_range(&store, "group:default/a", "group:default/z", false).unwrap();
        assert_eq!(range.len(), 1);
        assert_eq!(range[src], json_of(&store, src).unwrap());
        assert!(json_of(&store, "group:default/b").unwrap().is_empty());
    }

    #[test]
    fn history_gives_each_relation_as_it_stood() {
        let store = MemStore::new();
        let a = keys::relation("group:default/a", "ownerOf", "component:default/c1");
        let b = keys::relation("group:default/a", "ownerOf", "component:default/c2");
        let other = keys::relation("group:default/b", "ownerOf", "component:default/c3");
        let c1 = row(RelationType::OwnerOf, "component:default/c1");
        let c2 = row(RelationType::OwnerOf, "component:default/c2");
        let c3 = row(RelationType::OwnerOf, "component:default/c3");
        store
            .write(vec![
                (
                    keys::relation_history(&a, 10),
                    Some(encode_change(Some(&c1))),
                ),
                (keys::relation_history(&a, 30), Some(encode_change(None))),
                (
                    keys::relation_history(&b, 20),
                    Some(encode_change(Some(&c2))),
                ),
                (
                    keys::relation_history(&other, 5),
                    Some(encode_change(Some(&c3))),
                ),
            ])
            .unwrap();
        let names = |rels: Vec<EntityRelation>| -> Vec<String> {
            rels.into_iter().map(|r| r.target_ref.key()).collect()
        };
        let src = "group:default/a";
        assert!(of_at(&store, src, 9).unwrap().is_empty());
        assert_eq!(
            names(of_at(&store, src, 10).unwrap()),
            ["component:default/c1"]
        );
        assert_eq!(
            names(of_at(&store, src, 25).unwrap()),
            ["component:default/c1", "component:default/c2"]
        );
        assert_eq!(
            names(of_at(&store, src, 30).unwrap()),
            ["component:default/c2"]
        );
        // The cursor reads the same, one source after the other.
        let mut cursor = HistoryCursor::new(&store);
        let h = cursor.of("group:default/a").unwrap();
        assert_eq!(h.len(), 3);
        assert_eq!(names(at(&h, 25)), names(of_at(&store, src, 25).unwrap()));
        assert_eq!(names(at(&h, 31)), ["component:default/c2"]);
        let h = cursor.of("group:default/b").unwrap();
        assert_eq!(names(at(&h, 5)), ["component:default/c3"]);
        assert!(cursor.of("group:default/c").unwrap().is_empty());
    }
}
