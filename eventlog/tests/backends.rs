//! Behaviour specific to one backend (the shared behaviour is in
//! `conformance.rs`).

use std::time::{Duration, Instant};

use eventlog::embedded::EmbeddedLog;
use eventlog::kafka::KafkaLog;
use eventlog::{EventLog, LogError, partition_for};
use rdkafka::mocking::MockCluster;

// --------------------------------------------------------------- embedded

#[test]
fn embedded_data_dir_is_locked_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), &["t"], 2).unwrap();
    let err = EmbeddedLog::open(dir.path(), &["t"], 2).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("is in use by another process"), "{text}");
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    drop(log);
    EmbeddedLog::open(dir.path(), &["t"], 2).unwrap();
}

#[test]
fn embedded_keeps_the_partition_count_of_existing_topics() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = EmbeddedLog::open(dir.path(), &["t"], 4).unwrap();
        for i in 0..20 {
            log.append("t", format!("k{i}").as_bytes(), b"v").unwrap();
        }
        log.flush(Duration::from_secs(1)).unwrap();
    }
    let log = EmbeddedLog::open(dir.path(), &["t", "u"], 8).unwrap();
    assert_eq!(log.partitions("t").unwrap(), 4);
    assert_eq!(log.end_offsets("t").unwrap().iter().sum::<i64>(), 20);
    assert_eq!(log.partitions("u").unwrap(), 8);
    // Keys still go where they went before.
    log.append("t", b"k3", b"again").unwrap();
    let p = partition_for(b"k3", 4) as usize;
    let mut reader = log.assign("t", &[(p as u32, 0)]).unwrap();
    let got = reader.poll(Duration::from_secs(1)).unwrap();
    let k3: Vec<&[u8]> = got
        .iter()
        .filter(|r| r.key == b"k3")
        .map(|r| r.value.as_slice())
        .collect();
    assert_eq!(k3, vec![&b"v"[..], b"again"]);
    drop(reader);
    drop(log);
    // A topic not named at open is still there.
    let log = EmbeddedLog::open(dir.path(), &[], 1).unwrap();
    assert_eq!(log.topics(), vec!["t".to_owned(), "u".to_owned()]);
    assert_eq!(log.partitions("t").unwrap(), 4);
}

#[test]
fn embedded_rejects_unknown_and_reserved_topics() {
    let dir = tempfile::tempdir().unwrap();
    assert!(EmbeddedLog::open(dir.path(), &["__groups"], 1).is_err());
    assert!(EmbeddedLog::open(dir.path(), &["t"], 0).is_err());
    let log = EmbeddedLog::open(dir.path(), &["t"], 1).unwrap();
    assert!(matches!(
        log.append("nope", b"k", b"v"),
        Err(LogError::UnknownTopic(t)) if t == "nope"
    ));
    let mut reader = log.subscribe("t", "g").unwrap();
    assert!(matches!(
        reader.commit(&[(1, 0)]),
        Err(LogError::UnknownPartition { partition: 1, .. })
    ));
    assert_eq!(log.describe(), format!("embedded:{}", dir.path().display()));
}

#[test]
fn embedded_appends_many_and_reads_in_bounded_batches() {
    const N: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), &["fast"], 8).unwrap();
    let value = vec![7u8; 200];
    let started = Instant::now();
    for i in 0..N {
        log.append("fast", format!("entity-{}", i % 500).as_bytes(), &value)
            .unwrap();
    }
    log.flush(Duration::from_secs(10)).unwrap();
    // How fast is for the benchmark to say; a test asserts no time bound.
    let took = started.elapsed();
    eprintln!(
        "embedded: {N} appends + flush in {took:?} ({:.0}/s)",
        N as f64 / took.as_secs_f64()
    );

    let mut reader = log
        .assign("fast", &(0..8).map(|p| (p, 0)).collect::<Vec<_>>())
        .unwrap();
    let started = Instant::now();
    let mut total = 0;
    let mut next = [0i64; 8];
    while total < N {
        let batch = reader.poll(Duration::from_secs(1)).unwrap();
        assert!(!batch.is_empty() && batch.len() <= 1000, "{}", batch.len());
        for r in &batch {
            assert_eq!(r.offset, next[r.partition as usize]);
            next[r.partition as usize] += 1;
        }
        total += batch.len();
    }
    eprintln!("embedded: read {N} in {:?}", started.elapsed());
    assert_eq!(next.to_vec(), log.end_offsets("fast").unwrap());
}

#[test]
fn embedded_polls_are_bounded_by_bytes_and_a_larger_record_comes_alone() {
    use eventlog::embedded::MAX_BATCH_BYTES;
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), &["big"], 1).unwrap();
    // One record larger than a poll's budget, then five of a quarter of it
    // (each a little over, so that four reach it).
    let mut sizes = vec![MAX_BATCH_BYTES + 1];
    sizes.extend([MAX_BATCH_BYTES / 4 + 1; 5]);
    for (i, size) in sizes.iter().enumerate() {
        log.append("big", b"k", &vec![i as u8; *size]).unwrap();
    }
    log.flush(Duration::from_secs(10)).unwrap();
    let polls = read_back(&log, "big", &sizes);
    assert_eq!(polls, vec![1, 4, 1]);
    // Blob files hold the large records once they are flushed.
    drop(log);
    let log = EmbeddedLog::open(dir.path(), &["big"], 1).unwrap();
    let blobs = files_ending(dir.path(), "blob");
    assert!(blobs > 0, "no blob file in {}", dir.path().display());
    let mut reader = log.assign("big", &[(0, 0)]).unwrap();
    let batch = reader.poll(Duration::from_secs(5)).unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0].value.len(), MAX_BATCH_BYTES + 1);
}

#[test]
fn embedded_large_records_leave_memory_for_blob_files_once_appended() {
    use eventlog::embedded::{BLOB_BYTES, FLUSH_AFTER_LARGE_BYTES};
    let dir = tempfile::tempdir().unwrap();
    let log = EmbeddedLog::open(dir.path(), &["big"], 1).unwrap();
    let files = |ext: &str| files_ending(dir.path(), ext);
    // Records under the blob size stay in the memtable, however many.
    let small = BLOB_BYTES as usize - 4096;
    let mut sizes = vec![small; FLUSH_AFTER_LARGE_BYTES / small + 2];
    for (i, size) in sizes.iter().enumerate() {
        log.append("big", b"k", &vec![i as u8; *size]).unwrap();
    }
    assert_eq!(
        (files("sst"), files("blob")),
        (0, 0),
        "small records were flushed"
    );
    // Large ones go to blob files as soon as enough of them arrived, not
    // when the memtable fills up.
    let large = FLUSH_AFTER_LARGE_BYTES / 4 + 1;
    for _ in 0..4 {
        let i = sizes.len();
        log.append("big", b"k", &vec![i as u8; large]).unwrap();
        sizes.push(large);
    }
    assert!(
        files("blob") > 0,
        "no blob file in {}",
        dir.path().display()
    );
    // A value handed over whole reads back as one copied.
    let i = sizes.len();
    log.append_owned("big", b"k", vec![i as u8; large]).unwrap();
    sizes.push(large);
    // Every record reads back whole, in order.
    read_back(&log, "big", &sizes);
}

/// How many files in `dir` have the extension `ext`.
fn files_ending(dir: &std::path::Path, ext: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == ext)
        })
        .count()
}

/// Reads partition 0 of `topic` from its start, checking that record `i`
/// has `sizes[i]` bytes, each `i as u8`; how many records each poll gave.
fn read_back(log: &EmbeddedLog, topic: &str, sizes: &[usize]) -> Vec<usize> {
    let mut reader = log.assign(topic, &[(0, 0)]).unwrap();
    let mut polls = Vec::new();
    let mut next = 0;
    while next < sizes.len() as i64 {
        let batch = reader.poll(Duration::from_secs(5)).unwrap();
        assert!(!batch.is_empty(), "records are left but a poll found none");
        for r in &batch {
            assert_eq!(r.offset, next);
            assert_eq!(r.value.len(), sizes[next as usize]);
            assert!(r.value.iter().all(|b| *b == next as u8));
            next += 1;
        }
        polls.push(batch.len());
    }
    polls
}

// ------------------------------------------------------------ kafka mock

fn mock_log(
    cluster: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
    extra: &[(&str, &str)],
) -> KafkaLog {
    let extra: Vec<(String, String)> = extra
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    KafkaLog::connect(&cluster.bootstrap_servers(), &extra).unwrap()
}

#[test]
fn kafka_ensure_topics_accepts_existing_and_explains_missing_create_support() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("present", 3, 1).unwrap();
    let log = mock_log(&cluster, &[]);
    assert_eq!(
        log.describe(),
        format!("kafka:{}", cluster.bootstrap_servers())
    );
    log.ensure_topics(&[("present", 3, false)], Duration::from_secs(10))
        .unwrap();
    // A different partition count is only logged.
    log.ensure_topics(&[("present", 5, true)], Duration::from_secs(10))
        .unwrap();
    assert_eq!(log.partitions("present").unwrap(), 3);

    let started = Instant::now();
    let err = log
        .ensure_topics(
            &[("present", 3, false), ("absent-topic", 2, true)],
            Duration::from_secs(3),
        )
        .unwrap_err();
    let text = err.to_string();
    eprintln!(
        "ensure_topics on the mock cluster: {text} ({:?})",
        started.elapsed()
    );
    assert!(text.contains("absent-topic"), "{text}");
    assert!(text.contains("create the topic beforehand"), "{text}");
    assert!(!text.contains("present"), "{text}");
    assert!(matches!(
        log.partitions("absent-topic"),
        Err(LogError::UnknownTopic(_))
    ));
}

#[test]
fn kafka_flush_reports_failed_deliveries_once() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("exists", 2, 1).unwrap();
    let log = mock_log(&cluster, &[("message.timeout.ms", "1500")]);

    log.append("exists", b"k", b"fine").unwrap();
    log.flush(Duration::from_secs(20)).unwrap();

    // Topics are never auto-created: this message cannot be delivered.
    log.append("missing-topic", b"k", b"lost").unwrap();
    let err = log.flush(Duration::from_secs(20)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("1 message(s) failed delivery"), "{text}");
    assert!(text.contains("missing-topic"), "{text}");

    // Reported once: the next flush only covers what followed.
    log.append("exists", b"k", b"fine again").unwrap();
    log.flush(Duration::from_secs(20)).unwrap();
    assert_eq!(log.end_offsets("exists").unwrap().iter().sum::<i64>(), 2);
}

#[test]
fn kafka_ensure_topics_creates_topics_on_a_real_broker() {
    let Ok(brokers) = std::env::var("CATALOG_TEST_BROKERS") else {
        eprintln!("note: CATALOG_TEST_BROKERS is not set; skipping");
        return;
    };
    let suffix = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let plain = format!("eventlog-ensure-plain-{suffix}");
    let compacted = format!("eventlog-ensure-compacted-{suffix}");
    let log = KafkaLog::connect(&brokers, &[]).unwrap();
    let specs = [(plain.as_str(), 3, false), (compacted.as_str(), 2, true)];
    log.ensure_topics(&specs, Duration::from_secs(30)).unwrap();
    // Idempotent.
    log.ensure_topics(&specs, Duration::from_secs(30)).unwrap();
    assert_eq!(log.partitions(&plain).unwrap(), 3);
    assert_eq!(log.partitions(&compacted).unwrap(), 2);
}
