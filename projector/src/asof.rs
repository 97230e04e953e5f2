//! The catalog as it stood at an instant, for reads `asOf`.
//!
//! Every change of a ref's served JSON (the entity with its stitched
//! relations, uid and etag) is kept in table `V` under the ref and the time
//! of the change that caused it (the source's observation time of that
//! event). The catalog at `t` is, for every ref, its last version at or
//! before `t`. [`materialize`] reads those into an in-memory store indexed
//! as the live one is (`E`, `U`, `S`, `s`, `F`), so every read route, its
//! filters, facets, totals, orderings and cursors, answers from it
//! unchanged. [`Catalog::as_of`](crate::Catalog::as_of) keeps the last few
//! such catalogs.

use crate::fold::derived_id;
use crate::keys;
use crate::records::{self, FacetCount, SearchRows};
use crate::search;
use crate::store::{MemStore, Store, StoreError, WriteSet};
use std::collections::BTreeMap;

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

/// An in-memory store holding the catalog at `at_ms`, indexed for reads.
pub fn materialize(store: &dyn Store, at_ms: i64) -> Result<MemStore, StoreError> {
    let mem = MemStore::new();
    let mut writes = WriteSet::new();
    let mut facets: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (r, body) in served_at(store, at_ms)? {
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| StoreError::Corrupt {
                key: format!("version of {r}"),
                reason: e.to_string(),
            })?;
        let rows = search::rows(&value);
        for row in &rows {
            writes.push((
                keys::search(&row.key, &row.value, &r),
                Some(row.original.as_bytes().to_vec()),
            ));
            if search::counted(&row.key) {
                *facets
                    .entry((row.key.clone(), row.value.clone()))
                    .or_default() += 1;
            }
        }
        writes.push((
            keys::uid(&derived_id("entity", &r).to_string()),
            Some(r.as_bytes().to_vec()),
        ));
        writes.push((
            keys::search_rows(&r),
            Some(records::encode(&SearchRows { rows })),
        ));
        writes.push((keys::entity(&r), Some(body)));
        if writes.len() > 100_000 {
            mem.write(std::mem::take(&mut writes))?;
        }
    }
    for ((k, v), count) in facets {
        writes.push((
            keys::facet(&k, &v),
            Some(records::encode(&FacetCount { count })),
        ));
    }
    mem.write(writes)?;
    Ok(mem)
}
