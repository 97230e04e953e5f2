//! The catalog as it stood at an instant, for reads `asOf`.
//!
//! Every change of a ref's served JSON (the entity with its uid and etag)
//! is kept in table `P` under the ref and the time of the change that
//! caused it (the source's observation time of that event), and every
//! change of a relation in `G` ([`crate::relations`]). The catalog at `t` is, for every ref, its last version at or
//! before `t`, with the relations it had then. [`materialize`] reads those
//! into an in-memory store indexed as the live one is (`E`, `U`, `s`, `g`,
//! and the posting lists `x`, `o`, `r`), so every read route, its
//! filters, facets, totals, orderings and cursors, answers from it
//! unchanged.
//!
//! [`PastStore`] answers the same reads without materialising anything:
//! a served entity from its versions, its relations from their history,
//! its search rows from that JSON, and
//! each posting list from the list's history ([`crate::temporal`]). This is
//! what [`Catalog::as_of`](crate::Catalog::as_of) reads from; [`materialize`]
//! stays as the reference it is tested against (and for stores written
//! before the history of posting lists was kept).

use crate::keys;
use crate::records::{self, SearchRows};
use crate::search;
use crate::store::{MemStore, Store, StoreError, WriteSet};
use proto::derived_id;
use std::sync::Arc;

/// The served JSON of every ref at `at_ms`: its last version at or before
/// then, unless that version says it was not served.
pub fn served_at(store: &dyn Store, at_ms: i64) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let mut out = Vec::new();
    crate::adoption::each_ref(store, &[keys::VERSION], true, &mut |r, versions| {
        if let Some((_, Some(body))) = versions.iter().rev().find(|(t, _)| *t <= at_ms) {
            out.push((r.to_owned(), body.clone()));
        }
        Ok(())
    })?;
    Ok(out)
}

/// An in-memory store holding the catalog at `at_ms`, indexed for reads
/// as the live store is (ordinals given in ref order).
pub fn materialize(store: &dyn Store, at_ms: i64) -> Result<MemStore, StoreError> {
    let mem = MemStore::new();
    let mut writes = WriteSet::new();
    let mut postings = crate::postings::Changes::default();
    let mut ordinals = crate::postings::Ordinals::new(&mem);
    for (r, body) in served_at(store, at_ms)? {
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| StoreError::Corrupt {
                key: format!("version of {r}"),
                reason: e.to_string(),
            })?;
        let mut rows = search::rows(&value);
        // Its relations as they stood then.
        let mut relations = Vec::new();
        let mut err = None;
        crate::relations::scan_at(store, &keys::relations_of(&r), None, at_ms, &mut |k, v| {
            match records::decode::<records::RelationRow>(k, v) {
                Ok(row) => relations.push(row),
                Err(e) => err = Some(e),
            }
            writes.push((k.to_vec(), Some(v.to_vec())));
            err.is_none()
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        rows.extend(relations.iter().filter_map(crate::relations::search_row));
        rows.sort();
        rows.dedup();
        crate::postings::diff(&mut postings, ordinals.of(&r)?, &[], &rows);
        // The search rows table holds the body's rows, as the live one does.
        let rows: Vec<records::SearchRow> = rows
            .into_iter()
            .filter(|row| !row.key.starts_with("relations."))
            .collect();
        writes.push((
            keys::uid(&derived_id("entity", &r).to_string()),
            Some(r.as_bytes().to_vec()),
        ));
        if !rows.is_empty() {
            writes.push((
                keys::search_rows(&r),
                Some(records::encode(&SearchRows { rows })),
            ));
        }
        writes.push((keys::entity(&r), Some(body)));
        if writes.len() > 100_000 {
            mem.write(std::mem::take(&mut writes))?;
        }
    }
    postings.write(&mem, &mut writes)?;
    ordinals.drain_into(&mut writes);
    crate::postings::mark_upgraded(&mut writes);
    mem.write(writes)?;
    Ok(mem)
}

/// The read tables of the catalog as of an instant (`E`, `U`, `s`, `g`, `x`,
/// with the live ordinals `o`, `r`), answered from the live store's
/// history. Nothing else is held; writes are refused.
pub struct PastStore {
    live: Arc<dyn Store>,
    at_ms: i64,
}

impl PastStore {
    pub fn new(live: Arc<dyn Store>, at_ms: i64) -> Self {
        PastStore { live, at_ms }
    }

    /// The served JSON of `r` at the instant.
    fn served(&self, r: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let r = String::from_utf8_lossy(r);
        let prefix = keys::prefix(keys::VERSION, &[r.as_bytes()]);
        match self
            .live
            .last_at_or_before(&prefix, &keys::version(&r, self.at_ms))?
        {
            Some((k, v)) => Ok(records::decode_version(&k, &v)?.map(<[u8]>::to_vec)),
            None => Ok(None),
        }
    }
}

impl Store for PastStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match key.first() {
            Some(&keys::ENTITY) => self.served(&key[1..]),
            Some(&keys::UID) => {
                let uid = String::from_utf8_lossy(&key[1..]);
                match crate::temporal::ref_of_uid(self.live.as_ref(), &uid)? {
                    Some(r) if self.served(r.as_bytes())?.is_some() => Ok(Some(r.into_bytes())),
                    _ => Ok(None),
                }
            }
            Some(&keys::SEARCH_ROWS) => {
                let r = String::from_utf8_lossy(&key[1..]).into_owned();
                match self.served(r.as_bytes())? {
                    Some(body) => {
                        let rows = crate::temporal::rows_of(&r, &body)?;
                        Ok((!rows.is_empty()).then(|| records::encode(&SearchRows { rows })))
                    }
                    None => Ok(None),
                }
            }
            Some(&keys::POSTING) => {
                let mut prefix = key.to_vec();
                prefix.push(0);
                let mut found = None;
                crate::temporal::scan_at(
                    self.live.as_ref(),
                    &prefix,
                    None,
                    self.at_ms,
                    &mut |k, p| {
                        if k == key {
                            found = Some(p.encode());
                        }
                        false
                    },
                )?;
                Ok(found)
            }
            Some(&keys::ORDINAL) | Some(&keys::ORDINAL_REF) => self.live.get(key),
            _ if key == keys::meta(keys::ORDINAL_NEXT).as_slice() => self.live.get(key),
            _ => Ok(None),
        }
    }

    fn scan(
        &self,
        prefix: &[u8],
        from: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        match prefix.first() {
            Some(&keys::POSTING) => crate::temporal::scan_at(
                self.live.as_ref(),
                prefix,
                from,
                self.at_ms,
                &mut |k, p| visit(k, &p.encode()),
            ),
            Some(&keys::ORDINAL) | Some(&keys::ORDINAL_REF) => self.live.scan(prefix, from, visit),
            Some(&keys::RELATION) => {
                crate::relations::scan_at(self.live.as_ref(), prefix, from, self.at_ms, visit)
            }
            Some(&keys::ENTITY) => {
                // Served entities in ref order: each ref's versions, the
                // one in force at the instant.
                let start = from.unwrap_or(prefix);
                let mut p_from = vec![keys::VERSION];
                p_from.extend_from_slice(&start[1..]);
                crate::temporal::scan_versions(
                    self.live.as_ref(),
                    &[keys::VERSION],
                    Some(&p_from),
                    true,
                    &mut |r, versions| {
                        let mut k = vec![keys::ENTITY];
                        k.extend_from_slice(r.as_bytes());
                        if k.as_slice() < start {
                            return Ok(true);
                        }
                        if !k.starts_with(prefix) {
                            return Ok(false);
                        }
                        match versions.iter().rev().find(|(t, _)| *t <= self.at_ms) {
                            Some((_, Some(body))) => Ok(visit(&k, body)),
                            _ => Ok(true),
                        }
                    },
                )
            }
            // Nothing else is kept of the past.
            _ => Ok(()),
        }
    }

    fn write(&self, _: WriteSet) -> Result<(), StoreError> {
        Err(StoreError::ReadOnly)
    }

    /// The live store's: any write may add to the past (a late change).
    fn version(&self) -> u64 {
        self.live.version()
    }

    fn catch_up(&self) -> Result<(), StoreError> {
        self.live.catch_up()
    }
}
