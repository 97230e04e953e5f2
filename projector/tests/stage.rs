//! The projector stage against the in-memory log with a small message
//! limit: entity events larger than a message arrive in parts, and the
//! offsets stored with the state never skip a half-read one.

use chrono::Utc;
use eventlog::EventLog;
use eventlog::memory::MemoryLog;
use projector::run::{ProjectorConfig, Status};
use projector::{Catalog, MemStore, Store};
use proto::{
    EntityEvent, LocationKey, LocationOutcome, ProcessedEntity, SourceId, Versioned, topics,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

const LIMIT: usize = 64 * 1024;

/// `n` entities without relations, the `i`th as `entity(i)` describes it.
fn entities(n: usize, entity: impl Fn(usize) -> serde_json::Value) -> Vec<ProcessedEntity> {
    (0..n)
        .map(|i| ProcessedEntity {
            entity: serde_json::from_value(entity(i)).unwrap(),
            relations: vec![],
        })
        .collect()
}

fn users(n: usize) -> Vec<ProcessedEntity> {
    entities(n, |i| {
        serde_json::json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "User",
            "metadata": {"name": format!("user-{i}"), "namespace": "default"},
            "spec": {"profile": {"email": format!("user-{i}@example.com")}, "memberOf": []},
        })
    })
}

fn event(location: &str, entities: Vec<ProcessedEntity>) -> EntityEvent {
    EntityEvent {
        event_id: Uuid::now_v7(),
        source: SourceId::new("test"),
        observed_at: Utc::now(),
        location: LocationKey::new(location),
        origin: LocationKey::new(location),
        first_seen_at: Utc::now(),
        observation_id: Uuid::now_v7(),
        outcome: LocationOutcome::Processed {
            entities,
            errors: vec![],
        },
    }
}

/// Runs the projector until `done` holds of the store.
fn run_until(log: &MemoryLog, store: &Arc<MemStore>, done: impl Fn(&Catalog) -> bool) {
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let log: Arc<dyn EventLog> = Arc::new(log.clone());
        let store: Arc<dyn Store> = store.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            projector::run::run(
                log,
                store,
                &ProjectorConfig::default(),
                Arc::new(Status::default()),
                stop,
            )
        })
    };
    let catalog = Catalog::new(store.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(&catalog) {
        assert!(
            Instant::now() < deadline,
            "the projector did not get there in time"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap().unwrap();
}

fn has(catalog: &Catalog, name: &str) -> bool {
    catalog
        .entity(&format!("user:default/{name}"))
        .unwrap()
        .is_some()
}

#[test]
fn entity_events_in_parts_are_applied_whole_and_offsets_wait_for_the_manifest() {
    let log = MemoryLog::with_max_message_bytes(&topics::ALL, 1, LIMIT);
    let store = Arc::new(MemStore::new());

    // A whole large event, then the parts of another whose manifest is not
    // written yet, then a small event.
    let first = event("file:/org/users.yaml", users(1500));
    log.append(
        topics::ENTITIES,
        first.location.as_str().as_bytes(),
        &first.encode(),
    )
    .unwrap();
    let second = event("file:/org/more-users.yaml", users(3000).split_off(1500));
    let pieces =
        eventlog::parts::split(second.location.as_str().as_bytes(), &second.encode(), LIMIT)
            .unwrap();
    let (manifest, parts) = pieces.split_last().unwrap();
    for (k, v) in parts {
        log.append(topics::ENTITIES, k, v).unwrap();
    }
    let small = event("file:/repo/one.yaml", users(3001).split_off(3000));
    log.append(
        topics::ENTITIES,
        small.location.as_str().as_bytes(),
        &small.encode(),
    )
    .unwrap();
    log.flush(Duration::from_secs(1)).unwrap();
    let first_part_offset = log.records(topics::ENTITIES).len() as i64 - parts.len() as i64 - 1;
    assert!(first_part_offset > 5, "the first event went in parts");

    run_until(&log, &store, |c| has(c, "user-0") && has(c, "user-3000"));
    let catalog = Catalog::new(store.clone());
    assert!(has(&catalog, "user-1499"));
    assert!(
        !has(&catalog, "user-1500"),
        "the half-sent event is not applied"
    );
    let stored = catalog.offsets().unwrap();
    assert_eq!(
        stored.get(&(topics::ENTITIES.to_owned(), 0)),
        Some(&first_part_offset),
        "the stored offset waits at the first part"
    );

    // A restart reads the parts again and applies the event once its
    // manifest arrives.
    log.append(topics::ENTITIES, &manifest.0, &manifest.1)
        .unwrap();
    log.flush(Duration::from_secs(1)).unwrap();
    run_until(&log, &store, |c| has(c, "user-2999"));
    let catalog = Catalog::new(store.clone());
    assert!(has(&catalog, "user-1500"));
    let end = log.end_offsets(topics::ENTITIES).unwrap()[0];
    assert_eq!(
        catalog
            .offsets()
            .unwrap()
            .get(&(topics::ENTITIES.to_owned(), 0)),
        Some(&end)
    );
}

#[test]
fn a_batch_stopped_midway_writes_nothing() {
    let log = MemoryLog::new(&topics::ALL, 1);
    let store = Arc::new(MemStore::new());
    let ev = event("file:/repo/a.yaml", users(3));
    let rec = eventlog::Record {
        topic: topics::ENTITIES.to_owned(),
        partition: 0,
        offset: 0,
        key: ev.location.as_str().as_bytes().to_vec(),
        value: ev.encode(),
        timestamp_ms: 0,
        next: 1,
    };
    let mut offsets = projector::run::Offsets::new();
    let stopped = AtomicBool::new(true);
    let applied = projector::run::apply_batch(
        &log,
        store.as_ref(),
        std::slice::from_ref(&rec),
        &mut offsets,
        10_000,
        &stopped,
    )
    .unwrap();
    assert_eq!(applied, projector::run::Applied::Abandoned);
    let catalog = Catalog::new(store.clone());
    assert!(!has(&catalog, "user-0"));
    assert!(catalog.offsets().unwrap().is_empty());

    let running = AtomicBool::new(false);
    let applied =
        projector::run::apply_batch(&log, store.as_ref(), &[rec], &mut offsets, 10_000, &running)
            .unwrap();
    assert_eq!(applied, projector::run::Applied::Changed);
    assert!(has(&Catalog::new(store.clone()), "user-2"));
}

/// A store that watches its use: it calls `after_write` once each write is
/// taken (a test's way to act, or to look, at the moment a batch is
/// written), and notes each [`Store::lend_cache`] call and, at each write,
/// whether the cache was lent then.
struct Watched {
    inner: MemStore,
    after_write: Box<dyn Fn() + Send + Sync>,
    /// Each `lend_cache` call's argument, in order.
    lends: std::sync::Mutex<Vec<bool>>,
    /// At each write, whether the cache was lent.
    writes: std::sync::Mutex<Vec<bool>>,
}

impl Watched {
    fn new(inner: MemStore, after_write: impl Fn() + Send + Sync + 'static) -> Self {
        Watched {
            inner,
            after_write: Box::new(after_write),
            lends: Default::default(),
            writes: Default::default(),
        }
    }
}

impl Default for Watched {
    fn default() -> Self {
        Watched::new(MemStore::new(), || {})
    }
}

impl Store for Watched {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, projector::StoreError> {
        self.inner.get(key)
    }
    fn scan(
        &self,
        prefix: &[u8],
        from: Option<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), projector::StoreError> {
        self.inner.scan(prefix, from, visit)
    }
    fn write(&self, changes: projector::WriteSet) -> Result<(), projector::StoreError> {
        let lent = self.lends.lock().unwrap().last() == Some(&true);
        self.writes.lock().unwrap().push(lent);
        self.inner.write(changes)?;
        (self.after_write)();
        Ok(())
    }
    fn version(&self) -> u64 {
        self.inner.version()
    }
    fn lend_cache(&self, lend: bool) {
        self.lends.lock().unwrap().push(lend);
    }
}

fn record(offset: i64, ev: &EntityEvent) -> eventlog::Record {
    eventlog::Record {
        topic: topics::ENTITIES.to_owned(),
        partition: 0,
        offset,
        key: ev.location.as_str().as_bytes().to_vec(),
        value: ev.encode(),
        timestamp_ms: 0,
        next: offset + 1,
    }
}

#[test]
fn a_location_larger_than_a_part_is_applied_in_parts_and_resumed_after_a_stop() {
    let log = MemoryLog::new(&topics::ALL, 1);
    let small = event("file:/org/a.yaml", users(3));
    let mut many = users(53);
    for pe in &mut many {
        pe.entity.metadata.name = pe.entity.metadata.name.replace("user", "member");
    }
    let big = event("file:/org/users.yaml", many);
    let after = event("file:/org/b.yaml", users(5)[3..].to_vec());
    let batch = [record(0, &small), record(1, &big), record(2, &after)];

    // A witness folds the batch whole.
    let witness = MemStore::new();
    let mut offsets = projector::run::Offsets::new();
    let running = AtomicBool::new(false);
    let applied =
        projector::run::apply_batch(&log, &witness, &batch, &mut offsets, 1_000, &running).unwrap();
    assert_eq!(applied, projector::run::Applied::Changed);

    // In parts of 10 refs, stopped after the write of what came before the
    // large event and two of its parts.
    let stop = Arc::new(AtomicBool::new(false));
    let writes = std::sync::atomic::AtomicUsize::new(0);
    let stopping = stop.clone();
    // Sets `stop` once 3 writes are taken, as a SIGTERM arriving between
    // two of them would.
    let store = Arc::new(Watched::new(MemStore::new(), move || {
        if writes.fetch_add(1, Ordering::SeqCst) + 1 >= 3 {
            stopping.store(true, Ordering::SeqCst);
        }
    }));
    let mut offsets = projector::run::Offsets::new();
    let applied =
        projector::run::apply_batch(&log, store.as_ref(), &batch, &mut offsets, 10, &stop).unwrap();
    assert_eq!(applied, projector::run::Applied::Abandoned);
    let catalog = Catalog::new(store.clone());
    assert!(
        has(&catalog, "user-2"),
        "the event before the large one is written"
    );
    let shown = (0..53)
        .filter(|i| has(&catalog, &format!("member-{i}")))
        .count();
    assert!(
        (1..53).contains(&shown),
        "two parts of the large event are written, not all of it: {shown} of 53"
    );
    assert!(!has(&catalog, "user-3"), "the event after it is not");
    let stored = catalog.offsets().unwrap();
    assert_eq!(
        stored.get(&(topics::ENTITIES.to_string(), 0)),
        Some(&1),
        "the stored offset is the large event's own"
    );
    assert_eq!(offsets, stored, "the caller keeps only what was written");

    // Restarted from the stored offset: the large event again, whole.
    drop(catalog);
    stop.store(false, Ordering::SeqCst);
    let store = Watched::new(Arc::into_inner(store).unwrap().inner, || {});
    let applied =
        projector::run::apply_batch(&log, &store, &batch[1..], &mut offsets, 10, &stop).unwrap();
    assert_eq!(applied, projector::run::Applied::Changed);
    // Entity ordinals follow the order the store met the refs in.
    assert_eq!(
        projector::postings::canonical(store.inner.dump()),
        projector::postings::canonical(witness.dump()),
        "applied in parts, interrupted and resumed, the store is what one whole batch writes"
    );
}

#[test]
fn a_large_record_keeps_the_processs_permit_until_its_batch_is_written() {
    let log = MemoryLog::new(&topics::ALL, 1);
    let mut one = users(1);
    one[0].entity.metadata.description = Some("x".repeat(eventlog::large::LARGE_RECORD_BYTES));
    let batch = [
        record(0, &event("file:/org/small.yaml", users(2))),
        record(1, &event("file:/org/large.yaml", one)),
    ];
    assert!(batch[1].value.len() >= eventlog::large::LARGE_RECORD_BYTES);
    // At each write, whether the permit is taken: told to stop, `permit`
    // gives up at once when it is.
    let taken = Arc::new(std::sync::Mutex::new(Vec::new()));
    let noted = taken.clone();
    let store = Watched::new(MemStore::new(), move || {
        let free =
            eventlog::large::permit(eventlog::large::LARGE_RECORD_BYTES, &AtomicBool::new(true));
        noted.lock().unwrap().push(free.is_none());
    });
    let mut offsets = projector::run::Offsets::new();
    let running = AtomicBool::new(false);
    let applied =
        projector::run::apply_batch(&log, &store, &batch, &mut offsets, 1_000, &running).unwrap();
    assert_eq!(applied, projector::run::Applied::Changed);
    assert_eq!(
        *taken.lock().unwrap(),
        vec![true],
        "taken while the batch was written"
    );
    // And given back after.
    assert!(eventlog::large::permit(eventlog::large::LARGE_RECORD_BYTES, &running).is_some());
}

#[test]
fn the_cache_is_lent_while_a_batch_with_a_large_record_is_folded_and_written() {
    let log = MemoryLog::new(&topics::ALL, 1);
    // Two entities, one of them large.
    let mut two = users(2);
    two[0].entity.metadata.name = "large-user".into();
    two[0].entity.metadata.description = Some("x".repeat(eventlog::large::LARGE_RECORD_BYTES));
    two[1].entity.metadata.name = "its-neighbour".into();
    let small = [record(0, &event("file:/org/small.yaml", users(2)))];
    let running = AtomicBool::new(false);

    // Folds `batch` into a fresh store, in parts of `part` refs.
    let fold = |batch: &[eventlog::Record], part: usize| {
        let store = Watched::default();
        let mut offsets = projector::run::Offsets::new();
        let applied =
            projector::run::apply_batch(&log, &store, batch, &mut offsets, part, &running).unwrap();
        assert_eq!(applied, projector::run::Applied::Changed);
        store
    };

    // Small records only: the cache is never lent.
    let store = fold(&small, 1_000);
    assert_eq!(*store.lends.lock().unwrap(), Vec::<bool>::new());
    assert_eq!(*store.writes.lock().unwrap(), vec![false]);

    // A large one after a small one: lent from the large record on, through
    // the batch's write, and given back after.
    let batch = [
        record(0, &event("file:/org/small.yaml", users(2))),
        record(1, &event("file:/org/large.yaml", two)),
    ];
    let store = fold(&batch, 1_000);
    assert_eq!(*store.lends.lock().unwrap(), vec![true, false]);
    assert_eq!(*store.writes.lock().unwrap(), vec![true]);
    assert!(has(&Catalog::new(Arc::new(store)), "large-user"));

    // A large event applied in parts (here, of one ref each: it touches
    // two) bounds its working sets itself: no loan.
    let store = fold(&batch, 1);
    assert_eq!(*store.lends.lock().unwrap(), Vec::<bool>::new());
    assert!(has(&Catalog::new(Arc::new(store)), "its-neighbour"));
}

/// `n` components, each owned by `group:default/group-{i % owners}`, with
/// the relations the processor derives in both directions.
fn components(n: usize, owners: usize) -> Vec<ProcessedEntity> {
    (0..n)
        .map(|i| {
            let me = proto::EntityRef::new("component", "default", &format!("c-{i}"));
            let owner = proto::EntityRef::new("group", "default", &format!("group-{}", i % owners));
            ProcessedEntity {
                entity: serde_json::from_value(serde_json::json!({
                    "apiVersion": "backstage.io/v1alpha1",
                    "kind": "Component",
                    "metadata": {"name": format!("c-{i}"), "namespace": "default"},
                    "spec": {"type": "service", "lifecycle": "production", "owner": owner.to_string()},
                }))
                .unwrap(),
                relations: vec![
                    proto::Relation {
                        source: me.clone(),
                        relation_type: proto::RelationType::OwnedBy,
                        target: owner.clone(),
                    },
                    proto::Relation {
                        source: owner,
                        relation_type: proto::RelationType::OwnerOf,
                        target: me,
                    },
                ],
            }
        })
        .collect()
}

fn groups(n: usize) -> Vec<ProcessedEntity> {
    entities(n, |i| {
        serde_json::json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Group",
            "metadata": {"name": format!("group-{i}"), "namespace": "default"},
            "spec": {"type": "team", "children": []},
        })
    })
}

#[test]
fn a_part_ends_where_the_rows_it_would_move_at_once_run_over() {
    let log = MemoryLog::new(&topics::ALL, 1);
    // Groups 0 and 1 own 30 components each, written before the groups
    // are: serving a group moves its 30 rows into the lists at once.
    let owned = event("file:/repos.yaml", components(60, 2));
    let org = event("file:/org/groups.yaml", groups(4));
    let batch = [record(0, &owned), record(1, &org)];

    let witness = MemStore::new();
    let mut offsets = projector::run::Offsets::new();
    let go = AtomicBool::new(false);
    projector::run::apply_batch(&log, &witness, &batch, &mut offsets, 1_000, &go).unwrap();

    let store = MemStore::new();
    let mut offsets = projector::run::Offsets::new();
    projector::run::apply_batch(&log, &store, &batch[..1], &mut offsets, 1_000, &go).unwrap();
    let bytes = org.encode();
    let parts = projector::Parts::new(
        &store,
        projector::Yield::new(proto::RawEntityEvent::decode(&bytes).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(parts.touched().len(), 4);
    // By refs alone, three refs make a part.
    assert_eq!(parts.part_end(&store, 0, 3, usize::MAX).unwrap(), 3);
    // At most 40 rows: group-0 (30) alone, then group-1 (30) with the two
    // that own nothing.
    assert_eq!(parts.part_end(&store, 0, 3, 40).unwrap(), 1);
    assert_eq!(parts.part_end(&store, 1, 3, 40).unwrap(), 4);
    // A ref whose rows alone run over is a part of its own.
    assert_eq!(parts.part_end(&store, 0, 3, 10).unwrap(), 1);
    assert_eq!(parts.part_end(&store, 1, 3, 10).unwrap(), 2);
    assert_eq!(parts.part_end(&store, 2, 3, 10).unwrap(), 4);
    drop(parts);

    // Applied in parts cut that way, the store is what one batch writes.
    projector::run::apply_batch(&log, &store, &batch[1..], &mut offsets, 2, &go).unwrap();
    assert_eq!(
        projector::postings::canonical(store.dump()),
        projector::postings::canonical(witness.dump()),
    );
    let catalog = Catalog::new(Arc::new(store));
    let owner = catalog.entity("group:default/group-1").unwrap();
    assert!(owner.is_some_and(|e| String::from_utf8_lossy(&e).contains("component:default/c-59")));
}
