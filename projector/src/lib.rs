//! The projector: folds entity events into RocksDB projections and offers
//! the read side the query service serves from.
//!
//! Owns: the pure fold ([`fold`]), the store behind a trait ([`store`]:
//! RocksDB, in-memory), offsets kept in the same write batch as the state,
//! the search index, facet counts, relations, conflicts and history, and
//! the read model ([`read`]). It must not know HTTP or where events came
//! from beyond the [`eventlog::EventLog`] trait.
//!
//! The read API the HTTP layer uses is small: [`Catalog`] and the types
//! its methods take and return: filters and predicates
//! ([`EntityFilter`], [`Predicate`]), ordering and paging ([`order`]:
//! [`OrderField`], [`SortKey`], [`Start`], [`Page`], by
//! [`Catalog::ordered_page`] and [`Catalog::ordered`]; ref-order pages by
//! [`Catalog::page_in_ref_order`]), locations ([`Location`]) and
//! scorecards ([`scorecard::DefinitionInfo`] and the views of
//! [`scorecard::read`]). Stored records ([`records`]) and key layouts
//! ([`keys`]) stay public for the binary, the tests and the fuzz targets
//! that inspect the store; the query service names neither.

pub mod adoption;
pub mod asof;
pub mod checksum;
pub mod export;
pub mod feed;
pub mod fold;
pub mod keys;
pub mod metrics;
pub mod order;
pub mod postings;
pub mod predicate;
pub mod read;
pub mod records;
pub mod relations;
pub mod run;
pub mod scorecard;
pub mod search;
pub mod store;
pub mod temporal;
#[cfg(feature = "rocksdb")]
pub mod written;

pub use fold::{Fold, Parts, Yield};
pub use order::{Direction, FullText, OrderField, Page, SortKey, Start};
pub use predicate::{Predicate, PredicateError};
pub use read::{
    Catalog, ChangeKind, EntityChange, EntityFilter, FilterError, Location, RefPage, RefStart,
};
pub use run::{ProjectorConfig, ProjectorError, Status, run};
#[cfg(feature = "rocksdb")]
pub use store::RocksStore;
pub use store::{MemStore, Store, StoreError, WriteSet};

/// The hash map of the fold's working set: a batch hashes every row key
/// and list name it touches (millions of lookups in a large one), and
/// std's SipHash was 5% of a rebuild's time. aHash is several times
/// faster on short keys and still seeded at random, so keys taken from
/// outside input cannot be chosen to collide.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

/// Threads worth using for work in runs: one per core, 4 at most.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .clamp(1, 4)
}

/// Splits `items` into `threads` contiguous runs, calls `run` on each on a
/// thread of its own (on the caller's, for one), and joins the results in
/// item order: the answer is the same however many threads ran. The first
/// error, in run order, is the answer; a panic in a run is the caller's.
pub(crate) fn in_runs<T: Send, R: Send, E: Send>(
    items: Vec<T>,
    threads: usize,
    run: impl Fn(Vec<T>) -> Result<Vec<R>, E> + Sync,
) -> Result<Vec<R>, E> {
    if threads <= 1 || items.len() <= 1 {
        return run(items);
    }
    let per = items.len().div_ceil(threads);
    let mut runs: Vec<Vec<T>> = Vec::with_capacity(threads);
    let mut items = items.into_iter();
    loop {
        let chunk: Vec<T> = items.by_ref().take(per).collect();
        if chunk.is_empty() {
            break;
        }
        runs.push(chunk);
    }
    // The items' buffer is let go before the runs start, not held to the end.
    drop(items);
    let run = &run;
    std::thread::scope(|scope| {
        let handles: Vec<_> = runs
            .into_iter()
            .map(|chunk| scope.spawn(move || run(chunk)))
            .collect();
        let mut results = Vec::with_capacity(handles.len());
        for h in handles {
            results.push(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?);
        }
        // Joined at their full size at once: grown by doubling, a batch's
        // million list writes were copied (and held twice) on the way.
        let mut out = Vec::with_capacity(results.iter().map(Vec::len).sum());
        for r in results {
            out.extend(r);
        }
        Ok(out)
    })
}
