//! The catalog as it stood at an instant, for reads `asOf`.
//!
//! Every change of a ref's served JSON (the entity with its stitched
//! relations, uid and etag) is kept in table `V` under the ref and the time
//! of the change that caused it (the source's observation time of that
//! event). The catalog at `t` is, for every ref, its last version at or
//! before `t`. [`materialize`] reads those into an in-memory store indexed
//! as the live one is (`E`, `U`, `s`, and the posting lists `x`, `o`, `r`), so every read route, its
//! filters, facets, totals, orderings and cursors, answers from it
//! unchanged. [`Catalog::as_of`](crate::Catalog::as_of) keeps the last few
//! such catalogs.

use crate::fold::derived_id;
use crate::keys;
use crate::records::{self, SearchRows};
use crate::search;
use crate::store::{MemStore, Store, StoreError, WriteSet};

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
        let rows = search::rows(&value);
        crate::postings::diff(&mut postings, ordinals.of(&r)?, &[], &rows);
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
