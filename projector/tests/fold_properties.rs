//! Properties of the fold: idempotence, independence of how partitions
//! interleave, and one store conformance check (RocksDB and the in-memory
//! store end byte-identical after the same events).

use chrono::{TimeZone, Utc};
use projector::postings::canonical;
use projector::{Fold, MemStore, Parts, RocksStore, Store, Yield, keys};
use proptest::prelude::*;
use proto::{
    Entity, EntityEvent, EntityRef, LocationKey, LocationOutcome, ProcessedEntity, RawEntityEvent,
    Relation, RelationType, SourceId, Versioned,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// A small universe: 4 locations, 5 names, 3 owners, so conflicts and
/// relation sharing happen often.
#[derive(Debug, Clone)]
struct Step {
    location: usize,
    /// (name, owner) pairs the location yields; empty + removed = Removed.
    yields: Vec<(usize, usize)>,
    removed: bool,
}

fn entity(name: usize, owner: usize, loc: &str) -> ProcessedEntity {
    // Each location writes the lifecycle in its own casing, so a facet's
    // displayed casing would depend on arrival order if it were recorded
    // at first write.
    let casing = ["production", "Production", "PRODUCTION", "pRoduction"];
    let lifecycle = casing[loc.bytes().map(usize::from).sum::<usize>() % casing.len()];
    let e: Entity = serde_json::from_value(serde_json::json!({
        "apiVersion": "backstage.io/v1alpha1", "kind": "Component",
        "metadata": {"name": format!("c{name}"), "namespace": "default",
            "annotations": {"backstage.io/managed-by-location": loc}},
        "spec": {"type": "service", "lifecycle": lifecycle, "owner": format!("g{owner}")}
    }))
    .unwrap();
    let me = e.entity_ref();
    let g = EntityRef::new("group", "default", &format!("g{owner}"));
    ProcessedEntity {
        entity: e,
        relations: vec![
            Relation {
                source: me.clone(),
                relation_type: RelationType::OwnedBy,
                target: g.clone(),
            },
            Relation {
                source: g,
                relation_type: RelationType::OwnerOf,
                target: me,
            },
        ],
    }
}

fn group(owner: usize, loc: &str) -> ProcessedEntity {
    let e: Entity = serde_json::from_value(serde_json::json!({
        "apiVersion": "backstage.io/v1alpha1", "kind": "Group",
        "metadata": {"name": format!("g{owner}"), "namespace": "default"},
        "spec": {"type": "team", "children": []}
    }))
    .unwrap();
    let _ = loc;
    ProcessedEntity {
        entity: e,
        relations: vec![],
    }
}

/// Events with fixed ids and times, so two runs are comparable byte for byte.
fn to_events(steps: &[Step]) -> Vec<EntityEvent> {
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let loc = format!("file:/org/l{}.yaml", s.location);
            let mut entities: Vec<ProcessedEntity> =
                s.yields.iter().map(|(n, o)| entity(*n, *o, &loc)).collect();
            if s.location == 3 && !s.removed {
                entities.push(group(0, &loc));
            }
            EntityEvent {
                event_id: Uuid::from_u128(i as u128 + 1),
                source: SourceId::new("p"),
                observed_at: Utc.timestamp_opt(1_700_000_000 + i as i64, 0).unwrap(),
                location: LocationKey::new(loc),
                origin: LocationKey::new("file:/org"),
                // Location 2 was seen first, then 0, 1, 3.
                first_seen_at: Utc.timestamp_opt([10, 20, 5, 30][s.location], 0).unwrap(),
                observation_id: Uuid::from_u128(1000 + i as u128),
                outcome: if s.removed {
                    LocationOutcome::Removed
                } else {
                    LocationOutcome::Processed {
                        entities,
                        errors: vec![],
                    }
                },
            }
        })
        .collect()
}

fn step() -> impl Strategy<Value = Step> {
    (
        0usize..4,
        prop::collection::vec((0usize..5, 0usize..3), 0..4),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(location, yields, removed)| Step {
            location,
            yields,
            removed,
        })
}

fn apply(store: &dyn Store, events: &[EntityEvent], batch: usize) {
    for chunk in events.chunks(batch.max(1)) {
        let mut fold = Fold::new(store);
        for e in chunk {
            fold.apply(e).unwrap();
        }
        store.write(fold.finish().unwrap()).unwrap();
    }
}

/// Applies each event in parts of `size` refs, each part its own write,
/// then the location's record; when `interrupt` is set, the parts of each
/// event are first applied up to that many and dropped there (as a crash
/// would), then the event again from its start.
fn apply_in_parts(
    store: &dyn Store,
    events: &[EntityEvent],
    size: usize,
    interrupt: Option<usize>,
) {
    for e in events {
        // As the projector meets a large event: encoded, its entities
        // decoded one part at a time.
        let bytes = e.encode();
        let yielded = || Yield::new(RawEntityEvent::decode(&bytes).unwrap()).unwrap();
        if let Some(k) = interrupt {
            let parts = Parts::new(store, yielded()).unwrap();
            for refs in parts.touched().chunks(size).take(k) {
                let mut fold = Fold::new(store);
                fold.apply_part(&parts, refs).unwrap();
                store.write(fold.finish().unwrap()).unwrap();
            }
        }
        let parts = Parts::new(store, yielded()).unwrap();
        for refs in parts.touched().chunks(size) {
            let mut fold = Fold::new(store);
            fold.apply_part(&parts, refs).unwrap();
            store.write(fold.finish().unwrap()).unwrap();
        }
        let mut fold = Fold::new(store);
        fold.apply_location(parts).unwrap();
        store.write(fold.finish().unwrap()).unwrap();
    }
}

/// State without history and the change feed (they record the path, which
/// may differ when a conflict is resolved at a different moment, and the
/// feed numbers changes in the order partitions were applied).
fn state(store: &MemStore) -> BTreeMap<Vec<u8>, Vec<u8>> {
    // Entity ordinals are numbered in the order this store met the refs.
    canonical(store.dump())
        .into_iter()
        .filter(|(k, _)| {
            k[0] != keys::HISTORY
                && k[0] != keys::FEED
                && k[0] != keys::VERSION
                && k[0] != keys::LATEST_VERSION
                && k[0] != keys::RELATION_HISTORY
                && k[0] != keys::LATEST_RELATION
                && k[0] != keys::POSTING_HISTORY
                && k[0] != keys::UID_EVER
                && *k != keys::meta(keys::FEED_SEQ)
        })
        .collect()
}

/// The read tables of the catalog as of `at_ms` as [`projector::asof::PastStore`]
/// answers them (from the live store's history), canonical like `state`.
fn past_tables(live: Arc<MemStore>, at_ms: i64) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let ordinals: Vec<(Vec<u8>, Vec<u8>)> = live
        .dump()
        .into_iter()
        .filter(|(k, _)| k[0] == keys::ORDINAL_REF)
        .collect();
    let past = projector::asof::PastStore::new(live, at_ms);
    let mut entries = ordinals;
    let mut served = Vec::new();
    past.scan(&[keys::ENTITY], None, &mut |k, v| {
        served.push((k.to_vec(), v.to_vec()));
        true
    })
    .unwrap();
    for (k, v) in served {
        let r = String::from_utf8_lossy(&k[1..]).into_owned();
        assert_eq!(
            past.get(&k).unwrap(),
            Some(v.clone()),
            "get and scan of {r} agree"
        );
        let uid = keys::uid(&proto::derived_id("entity", &r).to_string());
        if let Some(u) = past.get(&uid).unwrap() {
            entries.push((uid, u));
        }
        let rows = keys::search_rows(&r);
        if let Some(s) = past.get(&rows).unwrap() {
            entries.push((rows, s));
        }
        entries.push((k, v));
    }
    let mut postings = Vec::new();
    past.scan(&[keys::POSTING], None, &mut |k, v| {
        postings.push((k.to_vec(), v.to_vec()));
        true
    })
    .unwrap();
    for (k, v) in postings {
        assert_eq!(
            past.get(&k).unwrap(),
            Some(v.clone()),
            "get and scan of a posting agree"
        );
        entries.push((k, v));
    }
    canonical(entries)
        .into_iter()
        .filter(|(k, _)| {
            [keys::ENTITY, keys::UID, keys::SEARCH_ROWS, keys::POSTING].contains(&k[0])
        })
        .collect()
}

/// A random merge of the per-location sequences: each location is one
/// partition's order, partitions interleave arbitrarily.
fn interleave(events: &[EntityEvent], choices: &[usize]) -> Vec<EntityEvent> {
    let mut queues: BTreeMap<String, std::collections::VecDeque<EntityEvent>> = BTreeMap::new();
    for e in events {
        queues
            .entry(e.location.to_string())
            .or_default()
            .push_back(e.clone());
    }
    let mut out = Vec::new();
    let mut c = choices.iter().cycle();
    while queues.values().any(|q| !q.is_empty()) {
        let live: Vec<String> = queues
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        let pick = &live[c.next().copied().unwrap_or(0) % live.len()];
        out.push(queues.get_mut(pick).unwrap().pop_front().unwrap());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn order_of_partitions_does_not_matter(
        steps in prop::collection::vec(step(), 1..25),
        choices in prop::collection::vec(0usize..7, 1..20),
        batch in 1usize..6,
    ) {
        let events = to_events(&steps);
        let a = MemStore::new();
        apply(&a, &events, 1);
        let b = MemStore::new();
        apply(&b, &interleave(&events, &choices), batch);
        prop_assert_eq!(state(&a), state(&b));
    }

    #[test]
    fn applying_an_event_again_changes_nothing(
        steps in prop::collection::vec(step(), 1..25),
        batch in 1usize..6,
    ) {
        let events = to_events(&steps);
        let store = MemStore::new();
        for e in &events {
            apply(&store, std::slice::from_ref(e), batch);
            let before = store.dump();
            let mut fold = Fold::new(&store);
            prop_assert!(!fold.apply(e).unwrap(), "a repeated event reported a change");
            prop_assert!(fold.finish().unwrap().is_empty(), "a repeated event wrote something");
            prop_assert_eq!(before, store.dump());
        }
    }

    #[test]
    fn applying_in_parts_is_applying_whole(
        steps in prop::collection::vec(step(), 1..25),
        size in 1usize..4,
        interrupt in prop::option::of(1usize..3),
    ) {
        let events = to_events(&steps);
        let whole = MemStore::new();
        apply(&whole, &events, 1);
        let parted = MemStore::new();
        apply_in_parts(&parted, &events, size, interrupt);
        // The relation marks count the writes that changed a source's
        // relations: one per part.
        let without_marks = |s: &MemStore| -> BTreeMap<Vec<u8>, Vec<u8>> {
            canonical(s.dump())
                .into_iter()
                .filter(|(k, _)| k[0] != keys::LATEST_RELATION)
                .collect()
        };
        prop_assert_eq!(without_marks(&whole), without_marks(&parted));
    }

    #[test]
    fn the_catalog_as_of_any_instant_is_the_catalog_then(
        steps in prop::collection::vec(step(), 1..25),
    ) {
        // The read tables (served JSON, uids, search rows, posting lists)
        // after each event, against the catalog materialized afterwards as
        // of that event's time.
        let read_tables = |s: &MemStore| -> BTreeMap<Vec<u8>, Vec<u8>> {
            canonical(s.dump())
                .into_iter()
                .filter(|(k, _)| {
                    [keys::ENTITY, keys::UID, keys::SEARCH_ROWS, keys::POSTING]
                        .contains(&k[0])
                })
                .collect()
        };
        let events = to_events(&steps);
        let store = Arc::new(MemStore::new());
        let mut then = Vec::new();
        for e in &events {
            apply(store.as_ref(), std::slice::from_ref(e), 1);
            then.push((e.observed_at.timestamp_millis(), read_tables(&store)));
        }
        prop_assert!(read_tables(&projector::asof::materialize(store.as_ref(), 0).unwrap()).is_empty());
        prop_assert!(past_tables(store.clone(), 0).is_empty());
        for (at, tables) in then {
            let past = projector::asof::materialize(store.as_ref(), at).unwrap();
            prop_assert_eq!(read_tables(&past), tables.clone());
            // Read from the posting lists' history, nothing materialised.
            prop_assert_eq!(past_tables(store.clone(), at), tables);
        }
    }

    #[test]
    fn the_past_read_from_history_is_the_past_materialised_whatever_the_order_of_times(
        steps in prop::collection::vec(step(), 1..25),
        times in prop::collection::vec(0i64..12, 25),
        batch in 1usize..4,
    ) {
        // Observation times out of order: late changes are placed in the
        // past, between versions already kept.
        let mut events = to_events(&steps);
        for (e, t) in events.iter_mut().zip(&times) {
            e.observed_at = Utc.timestamp_opt(1_700_000_000 + t, 0).unwrap();
        }
        let store = Arc::new(MemStore::new());
        apply(store.as_ref(), &events, batch);
        for t in -1..13 {
            let at = (1_700_000_000 + t) * 1000;
            let past = projector::asof::materialize(store.as_ref(), at).unwrap();
            let want: BTreeMap<Vec<u8>, Vec<u8>> = canonical(past.dump())
                .into_iter()
                .filter(|(k, _)| {
                    [keys::ENTITY, keys::UID, keys::SEARCH_ROWS, keys::POSTING].contains(&k[0])
                })
                .collect();
            prop_assert_eq!(past_tables(store.clone(), at), want, "as of {}", t);
        }
    }

    #[test]
    fn batching_does_not_change_the_result(
        steps in prop::collection::vec(step(), 1..25),
        batch in 2usize..10,
    ) {
        let events = to_events(&steps);
        let one = MemStore::new();
        apply(&one, &events, 1);
        let many = MemStore::new();
        apply(&many, &events, batch);
        // Served versions are kept per batch: fewer batches, fewer versions
        // (and fewer changes in the posting lists' history, and perhaps
        // fewer refs ever indexed).
        let without_versions = |s: &MemStore| -> BTreeMap<Vec<u8>, Vec<u8>> {
            canonical(s.dump())
                .into_iter()
                .filter(|(k, _)| {
                    ![
                        keys::VERSION,
                        keys::LATEST_VERSION,
                        keys::RELATION_HISTORY,
                        keys::LATEST_RELATION,
                        keys::POSTING_HISTORY,
                        keys::UID_EVER,
                    ]
                    .contains(&k[0])
                })
                .collect()
        };
        prop_assert_eq!(without_versions(&one), without_versions(&many));
    }
}

#[test]
fn rocksdb_and_memory_stores_agree() {
    let steps: Vec<Step> = (0..60)
        .map(|i| Step {
            location: i % 4,
            yields: vec![(i % 5, i % 3), ((i + 2) % 5, (i + 1) % 3)],
            removed: i % 11 == 10,
        })
        .collect();
    let events = to_events(&steps);
    let mem = MemStore::new();
    apply(&mem, &events, 7);
    let dir = tempfile::tempdir().unwrap();
    let rocks = RocksStore::open(dir.path(), 8 << 20).unwrap();
    apply(&rocks, &events, 7);
    let mut dumped = BTreeMap::new();
    rocks
        .scan(&[], None, &mut |k, v| {
            dumped.insert(k.to_vec(), v.to_vec());
            true
        })
        .unwrap();
    assert!(!dumped.is_empty());
    assert_eq!(mem.dump(), dumped);
    // Reopening finds the same state.
    drop(rocks);
    let again = RocksStore::open(dir.path(), 8 << 20).unwrap();
    let mut n = 0;
    again
        .scan(&[], None, &mut |_, _| {
            n += 1;
            true
        })
        .unwrap();
    assert_eq!(n, dumped.len());
}
