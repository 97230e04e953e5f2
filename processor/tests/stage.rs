//! The stage loop against the embedded event log.

use chrono::Utc;
use eventlog::embedded::EmbeddedLog;
use eventlog::memory::MemoryLog;
use eventlog::{EventLog, Record};
use processor::ProcessorConfig;
use proto::{
    Content, DeadLetter, EntityEvent, ErrorKind, LocationKey, LocationOutcome, Observation,
    ObservedContent, SourceId, Versioned, topics,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("processor-stage-{}", Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn observation(location: &str, text: &str) -> Observation {
    Observation {
        event_id: Uuid::now_v7(),
        source: SourceId::new("test"),
        observed_at: Utc::now(),
        location: LocationKey::new(location),
        origin: LocationKey::new(location),
        first_seen_at: Utc::now(),
        content: ObservedContent::Present {
            content: Content::Utf8 {
                text: text.to_string(),
            },
        },
    }
}

const GOOD: &str = "apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: pay
spec:
  type: service
  lifecycle: production
  owner: team-a
";

fn read_all(log: &EmbeddedLog, topic: &str) -> Vec<Record> {
    let partitions = log.partitions(topic).unwrap();
    let starts: Vec<(u32, i64)> = (0..partitions).map(|p| (p, 0)).collect();
    let total: i64 = log.end_offsets(topic).unwrap().iter().sum();
    let mut reader = log.assign(topic, &starts).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while (out.len() as i64) < total && Instant::now() < deadline {
        out.extend(reader.poll(Duration::from_millis(100)).unwrap());
    }
    out
}

fn wait_for(log: &EmbeddedLog, topic: &str, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let total: i64 = log.end_offsets(topic).unwrap().iter().sum();
        if total >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: only {total} of {count} records"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_stage_emits_entity_events_and_dead_letters() {
    let dir = TempDir::new();
    let log = EmbeddedLog::open(&dir.0, &topics::ALL, 2).unwrap();

    let good = observation("file:/repo/good.yaml", GOOD);
    let mixed = observation(
        "file:/repo/mixed.yaml",
        &format!(
            "{GOOD}---\napiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: Bad Name!\n"
        ),
    );
    let removed = Observation {
        content: ObservedContent::Removed,
        ..observation("file:/repo/gone.yaml", "")
    };
    let mut future: serde_json::Value = serde_json::from_slice(&good.encode()).unwrap();
    future["version"] = 99.into();
    let future = serde_json::to_vec(&future).unwrap();

    log.append(
        topics::OBSERVATIONS,
        good.location.as_str().as_bytes(),
        &good.encode(),
    )
    .unwrap();
    log.append(
        topics::OBSERVATIONS,
        mixed.location.as_str().as_bytes(),
        &mixed.encode(),
    )
    .unwrap();
    log.append(topics::OBSERVATIONS, b"file:/repo/junk.yaml", b"{not json")
        .unwrap();
    log.append(topics::OBSERVATIONS, b"file:/repo/future.yaml", &future)
        .unwrap();
    log.append(
        topics::OBSERVATIONS,
        removed.location.as_str().as_bytes(),
        &removed.encode(),
    )
    .unwrap();

    let cfg = ProcessorConfig {
        group: "stage-test".into(),
        ..ProcessorConfig::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let log: Arc<dyn EventLog> = Arc::new(log.clone());
        let stop = stop.clone();
        let cfg = cfg.clone();
        std::thread::spawn(move || processor::run(log, &cfg, stop))
    };
    wait_for(&log, topics::ENTITIES, 3);
    wait_for(&log, topics::DLQ, 3);
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap().unwrap();

    let events: Vec<(Vec<u8>, EntityEvent)> = read_all(&log, topics::ENTITIES)
        .into_iter()
        .map(|r| (r.key.clone(), EntityEvent::decode(&r.value).unwrap()))
        .collect();
    assert_eq!(events.len(), 3);
    for (key, event) in &events {
        assert_eq!(key.as_slice(), event.location.as_str().as_bytes());
    }
    let by_location = |loc: &str| {
        events
            .iter()
            .find(|(_, e)| e.location.as_str() == loc)
            .map(|(_, e)| e.clone())
            .unwrap()
    };
    let good_event = by_location("file:/repo/good.yaml");
    assert_eq!(good_event.observation_id, good.event_id);
    match &good_event.outcome {
        LocationOutcome::Processed { entities, errors } => {
            assert_eq!(entities.len(), 1);
            assert!(errors.is_empty());
            assert_eq!(entities[0].relations.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    match &by_location("file:/repo/mixed.yaml").outcome {
        LocationOutcome::Processed { entities, errors } => {
            assert_eq!(entities.len(), 1);
            assert_eq!(errors.len(), 1);
            assert_eq!(errors[0].kind, ErrorKind::Validation);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        by_location("file:/repo/gone.yaml").outcome,
        LocationOutcome::Removed
    );

    let letters: Vec<DeadLetter> = read_all(&log, topics::DLQ)
        .iter()
        .map(|r| DeadLetter::decode(&r.value).unwrap())
        .collect();
    assert_eq!(letters.len(), 3, "{letters:#?}");
    assert!(
        letters
            .iter()
            .all(|l| l.stage == "processor" && l.topic == topics::OBSERVATIONS)
    );
    let letter = |key: &str| letters.iter().find(|l| l.key == key).unwrap();
    assert_eq!(letter("file:/repo/mixed.yaml").errors.len(), 1);
    assert!(letter("file:/repo/junk.yaml").reason.contains("malformed"));
    assert!(
        letter("file:/repo/future.yaml")
            .reason
            .contains("version 99")
    );

    // The batch was committed: the group has nothing left to read.
    let mut again = log.subscribe(topics::OBSERVATIONS, &cfg.group).unwrap();
    assert!(again.poll(Duration::from_millis(200)).unwrap().is_empty());
}

fn users(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata:\n  name: user-{i}\nspec:\n  \
                 profile:\n    email: user-{i}@example.com\n  memberOf: [team-{}]\n",
                i % 50
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

fn run_until(log: &MemoryLog, cfg: &ProcessorConfig, entity_events: usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let handle = {
        let log: Arc<dyn EventLog> = Arc::new(log.clone());
        let stop = stop.clone();
        let cfg = cfg.clone();
        std::thread::spawn(move || processor::run(log, &cfg, stop))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while read_whole(log, topics::ENTITIES).len() < entity_events {
        assert!(Instant::now() < deadline, "no entity events in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap().unwrap();
}

/// Whole records of a topic, as a reader hands them out.
fn read_whole(log: &MemoryLog, topic: &str) -> Vec<Record> {
    let starts: Vec<(u32, i64)> = (0..log.partitions(topic).unwrap())
        .map(|p| (p, 0))
        .collect();
    let mut reader = log.assign(topic, &starts).unwrap();
    let mut out = Vec::new();
    loop {
        let got = reader.poll(Duration::from_millis(50)).unwrap();
        if got.is_empty() {
            return out;
        }
        out.extend(got);
    }
}

#[test]
fn a_location_larger_than_a_message_travels_in_parts_both_ways() {
    let log = MemoryLog::with_max_message_bytes(&topics::ALL, 1, 64 * 1024);
    let big = observation("file:/org/users.yaml", &users(3000));
    assert!(big.encode().len() > 4 * 64 * 1024);
    log.append(
        topics::OBSERVATIONS,
        big.location.as_str().as_bytes(),
        &big.encode(),
    )
    .unwrap();
    let small = observation("file:/repo/good.yaml", GOOD);
    log.append(
        topics::OBSERVATIONS,
        small.location.as_str().as_bytes(),
        &small.encode(),
    )
    .unwrap();
    log.flush(Duration::from_secs(1)).unwrap();
    assert!(
        log.records(topics::OBSERVATIONS).len() > 5,
        "the observation went in parts"
    );

    let cfg = ProcessorConfig {
        group: "parts-test".into(),
        ..ProcessorConfig::default()
    };
    run_until(&log, &cfg, 2);
    let events: Vec<EntityEvent> = read_whole(&log, topics::ENTITIES)
        .iter()
        .map(|r| EntityEvent::decode(&r.value).unwrap())
        .collect();
    assert_eq!(events.len(), 2);
    match &events[0].outcome {
        LocationOutcome::Processed { entities, errors } => {
            assert_eq!(events[0].location, big.location);
            assert_eq!(entities.len(), 3000);
            assert!(errors.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(
        log.records(topics::ENTITIES).len() > 5,
        "the entity event went in parts"
    );
}

#[test]
fn a_half_read_message_is_not_committed_past() {
    let log = MemoryLog::with_max_message_bytes(&topics::ALL, 1, 64 * 1024);
    let big = observation("file:/org/users.yaml", &users(2000));
    let pieces =
        eventlog::parts::split(big.location.as_str().as_bytes(), &big.encode(), 64 * 1024).unwrap();
    let (manifest, parts) = pieces.split_last().unwrap();
    // The writer stopped after its parts (the manifest comes later); a
    // small observation follows.
    for (k, v) in parts {
        log.append(topics::OBSERVATIONS, k, v).unwrap();
    }
    let small = observation("file:/repo/good.yaml", GOOD);
    log.append(
        topics::OBSERVATIONS,
        small.location.as_str().as_bytes(),
        &small.encode(),
    )
    .unwrap();
    log.flush(Duration::from_secs(1)).unwrap();
    let cfg = ProcessorConfig {
        group: "half-read".into(),
        ..ProcessorConfig::default()
    };
    run_until(&log, &cfg, 1);
    // The group resumes at the first part, not after the small message.
    let mut again = log.subscribe(topics::OBSERVATIONS, &cfg.group).unwrap();
    assert_eq!(again.positions().unwrap(), vec![(0, 0)]);
    drop(again);

    log.append(topics::OBSERVATIONS, &manifest.0, &manifest.1)
        .unwrap();
    log.flush(Duration::from_secs(1)).unwrap();
    run_until(&log, &cfg, 3);
    let events: Vec<EntityEvent> = read_whole(&log, topics::ENTITIES)
        .iter()
        .map(|r| EntityEvent::decode(&r.value).unwrap())
        .collect();
    let big_events: Vec<&EntityEvent> = events
        .iter()
        .filter(|e| e.location == big.location)
        .collect();
    assert_eq!(big_events.len(), 1);
    match &big_events[0].outcome {
        LocationOutcome::Processed { entities, .. } => assert_eq!(entities.len(), 2000),
        other => panic!("{other:?}"),
    }
}
