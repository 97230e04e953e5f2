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

fn users(n: usize) -> Vec<ProcessedEntity> {
    (0..n)
        .map(|i| ProcessedEntity {
            entity: serde_json::from_value(serde_json::json!({
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "User",
                "metadata": {"name": format!("user-{i}"), "namespace": "default"},
                "spec": {"profile": {"email": format!("user-{i}@example.com")}, "memberOf": []},
            }))
            .unwrap(),
            relations: vec![],
        })
        .collect()
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
        &stopped,
    )
    .unwrap();
    assert_eq!(applied, projector::run::Applied::Abandoned);
    let catalog = Catalog::new(store.clone());
    assert!(!has(&catalog, "user-0"));
    assert!(catalog.offsets().unwrap().is_empty());

    let running = AtomicBool::new(false);
    let applied =
        projector::run::apply_batch(&log, store.as_ref(), &[rec], &mut offsets, &running).unwrap();
    assert_eq!(applied, projector::run::Applied::Changed);
    assert!(has(&Catalog::new(store.clone()), "user-2"));
}
