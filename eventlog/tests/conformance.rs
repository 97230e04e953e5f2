//! One conformance suite for every [`EventLog`] backend.
//!
//! Each check is written once, against a [`Harness`] (a backend able to make
//! fresh topics and open clients), and run against:
//!
//! - the embedded log, in a temporary directory;
//! - the Kafka backend, against librdkafka's in-process mock cluster;
//! - the Kafka backend, against a real cluster when `CATALOG_TEST_BROKERS`
//!   is set (skipped otherwise), with topic and group names unique to the
//!   run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use eventlog::{EventLog, LogError, Reader, Record, partition_for};

const PARTITIONS: u32 = 4;

/// A backend under test.
trait Harness {
    fn label(&self) -> &'static str;
    /// Makes fresh, empty topics of [`PARTITIONS`] partitions and returns
    /// their names.
    fn topics(&mut self, bases: &[&str]) -> Vec<String>;
    /// Opens a client. The embedded log can be open once at a time: drop
    /// the previous client (and its readers) first.
    fn open(&self) -> Box<dyn EventLog>;
    /// How long records may take to show up (covers group rebalances).
    fn patience(&self) -> Duration;
    /// Longest acceptable delay between an append and a waiting poll
    /// returning it.
    fn max_latency(&self) -> Duration;
    /// The partition a key must land on, when the backend promises one.
    fn expected_partition(&self, key: &[u8]) -> Option<u32>;
    fn describe_prefix(&self) -> &'static str;
}

/// A name no other test (or run, against a shared cluster) uses.
fn unique(base: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    format!(
        "{base}-{}-{millis}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

mod backends {
    use super::*;
    use eventlog::embedded::EmbeddedLog;
    use eventlog::kafka::KafkaLog;
    use eventlog::memory::MemoryLog;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::DefaultProducerContext;

    /// Consumer settings that keep group rebalances short.
    fn kafka_extra() -> Vec<(String, String)> {
        vec![
            ("session.timeout.ms".to_owned(), "6000".to_owned()),
            ("heartbeat.interval.ms".to_owned(), "500".to_owned()),
        ]
    }

    pub struct Embedded {
        dir: tempfile::TempDir,
        topics: Vec<String>,
    }

    impl Harness for Embedded {
        fn label(&self) -> &'static str {
            "embedded"
        }
        fn topics(&mut self, bases: &[&str]) -> Vec<String> {
            let names: Vec<String> = bases.iter().map(|b| (*b).to_owned()).collect();
            self.topics.extend(names.iter().cloned());
            names
        }
        fn open(&self) -> Box<dyn EventLog> {
            let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
            Box::new(EmbeddedLog::open(self.dir.path(), &topics, PARTITIONS).unwrap())
        }
        fn patience(&self) -> Duration {
            Duration::from_secs(5)
        }
        fn max_latency(&self) -> Duration {
            Duration::from_millis(250)
        }
        fn expected_partition(&self, key: &[u8]) -> Option<u32> {
            Some(partition_for(key, PARTITIONS))
        }
        fn describe_prefix(&self) -> &'static str {
            "embedded:"
        }
    }

    /// The in-memory log: clones share one log, so a reopen sees it all.
    pub struct Memory {
        log: MemoryLog,
    }

    impl Harness for Memory {
        fn label(&self) -> &'static str {
            "memory"
        }
        fn topics(&mut self, bases: &[&str]) -> Vec<String> {
            for b in bases {
                self.log.create_topic(b, PARTITIONS);
            }
            bases.iter().map(|b| (*b).to_owned()).collect()
        }
        fn open(&self) -> Box<dyn EventLog> {
            Box::new(self.log.clone())
        }
        fn patience(&self) -> Duration {
            Duration::from_secs(5)
        }
        fn max_latency(&self) -> Duration {
            Duration::from_millis(250)
        }
        fn expected_partition(&self, key: &[u8]) -> Option<u32> {
            Some(partition_for(key, PARTITIONS))
        }
        fn describe_prefix(&self) -> &'static str {
            "memory:"
        }
    }

    pub struct Mock {
        // The clients of a check are dropped before the harness, so the
        // cluster outlives them.
        cluster: MockCluster<'static, DefaultProducerContext>,
    }

    impl Harness for Mock {
        fn label(&self) -> &'static str {
            "kafka-mock"
        }
        fn topics(&mut self, bases: &[&str]) -> Vec<String> {
            bases
                .iter()
                .map(|base| {
                    self.cluster
                        .create_topic(base, PARTITIONS as i32, 1)
                        .unwrap();
                    (*base).to_owned()
                })
                .collect()
        }
        fn open(&self) -> Box<dyn EventLog> {
            Box::new(KafkaLog::connect(&self.cluster.bootstrap_servers(), &kafka_extra()).unwrap())
        }
        fn patience(&self) -> Duration {
            Duration::from_secs(20)
        }
        fn max_latency(&self) -> Duration {
            Duration::from_secs(5)
        }
        fn expected_partition(&self, key: &[u8]) -> Option<u32> {
            // Messages sent in parts are placed by our own murmur2; it must
            // agree with the producer's partitioner.
            Some(eventlog::parts::kafka_partition(key, PARTITIONS))
        }
        fn describe_prefix(&self) -> &'static str {
            "kafka:"
        }
    }

    pub struct Broker {
        brokers: String,
    }

    impl Harness for Broker {
        fn label(&self) -> &'static str {
            "kafka-broker"
        }
        fn topics(&mut self, bases: &[&str]) -> Vec<String> {
            let names: Vec<String> = bases
                .iter()
                .map(|b| unique(&format!("eventlog-test-{b}")))
                .collect();
            let specs: Vec<(&str, u32, bool)> = names
                .iter()
                .map(|n| (n.as_str(), PARTITIONS, false))
                .collect();
            KafkaLog::connect(&self.brokers, &kafka_extra())
                .unwrap()
                .ensure_topics(&specs, Duration::from_secs(30))
                .unwrap();
            names
        }
        fn open(&self) -> Box<dyn EventLog> {
            Box::new(KafkaLog::connect(&self.brokers, &kafka_extra()).unwrap())
        }
        fn patience(&self) -> Duration {
            Duration::from_secs(30)
        }
        fn max_latency(&self) -> Duration {
            Duration::from_secs(5)
        }
        fn expected_partition(&self, key: &[u8]) -> Option<u32> {
            // Messages sent in parts are placed by our own murmur2; it must
            // agree with the producer's partitioner.
            Some(eventlog::parts::kafka_partition(key, PARTITIONS))
        }
        fn describe_prefix(&self) -> &'static str {
            "kafka:"
        }
    }

    pub fn embedded() -> Option<Box<dyn Harness>> {
        Some(Box::new(Embedded {
            dir: tempfile::tempdir().unwrap(),
            topics: Vec::new(),
        }))
    }

    pub fn memory() -> Option<Box<dyn Harness>> {
        // A small message limit, so that the memory log splits messages
        // into parts like the Kafka backend does at 1 MB.
        Some(Box::new(Memory {
            log: MemoryLog::with_max_message_bytes(&[], PARTITIONS, 64 * 1024),
        }))
    }

    pub fn kafka_mock() -> Option<Box<dyn Harness>> {
        Some(Box::new(Mock {
            cluster: MockCluster::new(1).unwrap(),
        }))
    }

    pub fn kafka_broker() -> Option<Box<dyn Harness>> {
        match std::env::var("CATALOG_TEST_BROKERS") {
            Ok(brokers) if !brokers.trim().is_empty() => Some(Box::new(Broker { brokers })),
            _ => {
                eprintln!("note: CATALOG_TEST_BROKERS is not set; skipping the real-broker run");
                None
            }
        }
    }
}

// ---------------------------------------------------------------- helpers

fn all_partitions_from_zero() -> Vec<(u32, i64)> {
    (0..PARTITIONS).map(|p| (p, 0)).collect()
}

/// Polls until `n` records arrived (panicking at the deadline), then checks
/// that nothing more comes.
fn collect_exactly(reader: &mut dyn Reader, n: usize, patience: Duration) -> Vec<Record> {
    let deadline = Instant::now() + patience;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "got {} of {n} records within {patience:?}",
            out.len()
        );
        let batch = reader.poll(Duration::from_millis(200)).unwrap();
        assert!(
            batch.len() <= 1000,
            "a poll returned {} records",
            batch.len()
        );
        out.extend(batch);
    }
    let extra = reader.poll(Duration::from_millis(300)).unwrap();
    assert!(
        out.len() == n && extra.is_empty(),
        "expected exactly {n} records, got {} (+{} more)",
        out.len(),
        extra.len()
    );
    out
}

fn by_partition(records: &[Record]) -> BTreeMap<u32, Vec<&Record>> {
    let mut map: BTreeMap<u32, Vec<&Record>> = BTreeMap::new();
    for r in records {
        map.entry(r.partition).or_default().push(r);
    }
    map
}

/// The records of each partition have the offsets `from[p]..to[p]`, in
/// order, and no other partition has any.
fn assert_ranges(records: &[Record], from: &[i64], to: &[i64]) {
    let parts = by_partition(records);
    for p in 0..PARTITIONS {
        let got: Vec<i64> = parts
            .get(&p)
            .map(|rs| rs.iter().map(|r| r.offset).collect())
            .unwrap_or_default();
        let want: Vec<i64> = (from[p as usize]..to[p as usize]).collect();
        assert_eq!(got, want, "offsets of partition {p}");
    }
    assert!(parts.keys().all(|p| *p < PARTITIONS));
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// ----------------------------------------------------------------- checks

mod checks {
    use super::*;

    /// Same key -> same partition, in order; offsets from 0, contiguous;
    /// end offsets match what was read.
    pub fn ordering(h: &mut dyn Harness) {
        let [topic] = <[String; 1]>::try_from(h.topics(&["ordering"])).unwrap();
        let log = h.open();
        assert!(
            log.describe().starts_with(h.describe_prefix()),
            "{}",
            log.describe()
        );
        assert_eq!(log.partitions(&topic).unwrap(), PARTITIONS);
        assert_eq!(
            log.end_offsets(&topic).unwrap(),
            vec![0; PARTITIONS as usize]
        );

        let before = now_ms();
        let keys: Vec<String> = (0..12).map(|k| format!("entity-{k}")).collect();
        for seq in 0..25 {
            for key in &keys {
                log.append(&topic, key.as_bytes(), format!("{key}#{seq}").as_bytes())
                    .unwrap();
            }
        }
        log.flush(Duration::from_secs(30)).unwrap();
        let after = now_ms();

        let ends = log.end_offsets(&topic).unwrap();
        assert_eq!(ends.len(), PARTITIONS as usize);
        assert_eq!(ends.iter().sum::<i64>(), 300, "end offsets {ends:?}");

        let mut reader = log.assign(&topic, &all_partitions_from_zero()).unwrap();
        let records = collect_exactly(reader.as_mut(), 300, h.patience());
        assert_ranges(&records, &[0; PARTITIONS as usize], &ends);

        let mut partition_of: BTreeMap<&[u8], u32> = BTreeMap::new();
        let mut seqs: BTreeMap<&[u8], Vec<u32>> = BTreeMap::new();
        for r in &records {
            assert_eq!(r.topic, topic);
            assert!(
                r.timestamp_ms >= before - 60_000 && r.timestamp_ms <= after + 60_000,
                "timestamp {} not near {before}..{after}",
                r.timestamp_ms
            );
            let first = *partition_of.entry(&r.key).or_insert(r.partition);
            assert_eq!(first, r.partition, "key {:?} on two partitions", r.key);
            if let Some(p) = h.expected_partition(&r.key) {
                assert_eq!(r.partition, p, "partition of key {:?}", r.key);
            }
            let value = String::from_utf8(r.value.clone()).unwrap();
            let (key, seq) = value.split_once('#').unwrap();
            assert_eq!(key.as_bytes(), r.key.as_slice());
            seqs.entry(&r.key).or_default().push(seq.parse().unwrap());
        }
        assert_eq!(seqs.len(), keys.len());
        for (key, seq) in &seqs {
            assert_eq!(*seq, (0..25).collect::<Vec<u32>>(), "order of key {key:?}");
        }
        let used: BTreeSet<u32> = partition_of.values().copied().collect();
        assert!(used.len() >= 2, "12 keys all on partitions {used:?}");
    }

    /// Replay from zero twice gives the same records; a reader started in
    /// the middle of a partition gets exactly the rest; one at the end gets
    /// nothing.
    pub fn replay_and_resume(h: &mut dyn Harness) {
        let [topic] = <[String; 1]>::try_from(h.topics(&["replay"])).unwrap();
        let log = h.open();
        for i in 0..60 {
            log.append(
                &topic,
                format!("k{}", i % 6).as_bytes(),
                format!("v{i}").as_bytes(),
            )
            .unwrap();
        }
        log.flush(Duration::from_secs(30)).unwrap();
        let ends = log.end_offsets(&topic).unwrap();
        assert_eq!(ends.iter().sum::<i64>(), 60);

        let mut first = log.assign(&topic, &all_partitions_from_zero()).unwrap();
        let mut second = log.assign(&topic, &all_partitions_from_zero()).unwrap();
        let a = collect_exactly(first.as_mut(), 60, h.patience());
        let b = collect_exactly(second.as_mut(), 60, h.patience());
        assert_eq!(by_partition(&a), by_partition(&b));

        let (busiest, end) = ends
            .iter()
            .enumerate()
            .max_by_key(|(_, e)| **e)
            .map(|(p, e)| (p as u32, *e))
            .unwrap();
        let middle = end / 2;
        assert!(middle > 0);
        let mut resumed = log.assign(&topic, &[(busiest, middle)]).unwrap();
        let rest = collect_exactly(resumed.as_mut(), (end - middle) as usize, h.patience());
        assert!(rest.iter().all(|r| r.partition == busiest));
        let offsets: Vec<i64> = rest.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (middle..end).collect::<Vec<_>>());
        // The same records as the replay from zero.
        let replayed: Vec<&Record> = by_partition(&a)[&busiest][middle as usize..].to_vec();
        assert_eq!(replayed, rest.iter().collect::<Vec<_>>());

        let mut at_end = log.assign(&topic, &[(busiest, end)]).unwrap();
        assert!(at_end.poll(Duration::from_millis(500)).unwrap().is_empty());
        // Committing an assigned reader is a harmless no-op.
        at_end.commit(&[(busiest, 1)]).unwrap();

        match log.assign(&topic, &[(PARTITIONS, 0)]) {
            Err(LogError::UnknownPartition { partition, .. }) => assert_eq!(partition, PARTITIONS),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("assigned a partition that does not exist"),
        }
    }

    /// A group resumes after its committed offsets; another group starts at
    /// zero.
    pub fn group_resume(h: &mut dyn Harness) {
        let [topic] = <[String; 1]>::try_from(h.topics(&["groups"])).unwrap();
        let group = unique("group");
        let log = h.open();
        for i in 0..40 {
            log.append(
                &topic,
                format!("k{}", i % 8).as_bytes(),
                format!("v{i}").as_bytes(),
            )
            .unwrap();
        }
        log.flush(Duration::from_secs(30)).unwrap();
        let ends = log.end_offsets(&topic).unwrap();

        let mut reader = log.subscribe(&topic, &group).unwrap();
        let all = collect_exactly(reader.as_mut(), 40, h.patience());
        assert_ranges(&all, &[0; PARTITIONS as usize], &ends);
        let middles: Vec<i64> = ends.iter().map(|e| e / 2).collect();
        let commits: Vec<(u32, i64)> = (0..PARTITIONS).zip(middles.iter().copied()).collect();
        reader.commit(&commits).unwrap();
        drop(reader);

        let mut reader = log.subscribe(&topic, &group).unwrap();
        let expected: i64 = ends.iter().zip(&middles).map(|(e, m)| e - m).sum();
        let rest = collect_exactly(reader.as_mut(), expected as usize, h.patience());
        assert_ranges(&rest, &middles, &ends);
        let done: Vec<(u32, i64)> = (0..PARTITIONS).zip(ends.iter().copied()).collect();
        reader.commit(&done).unwrap();
        drop(reader);

        log.append(&topic, b"late", b"after the commit").unwrap();
        log.flush(Duration::from_secs(30)).unwrap();
        let mut reader = log.subscribe(&topic, &group).unwrap();
        let late = collect_exactly(reader.as_mut(), 1, h.patience());
        assert_eq!(late[0].value, b"after the commit");
        assert_eq!(late[0].offset, ends[late[0].partition as usize]);
        drop(reader);

        let mut other = log.subscribe(&topic, &unique("other-group")).unwrap();
        collect_exactly(other.as_mut(), 41, h.patience());
    }

    /// Everything, committed offsets included, survives closing the log
    /// (embedded: the database) and opening a new one; appends continue
    /// after the old end.
    pub fn restart(h: &mut dyn Harness) {
        let [topic] = <[String; 1]>::try_from(h.topics(&["restart"])).unwrap();
        let group = unique("restart-group");
        let (ends, before, committed) = {
            let log = h.open();
            for i in 0..30 {
                log.append(
                    &topic,
                    format!("k{}", i % 5).as_bytes(),
                    format!("v{i}").as_bytes(),
                )
                .unwrap();
            }
            log.flush(Duration::from_secs(30)).unwrap();
            let ends = log.end_offsets(&topic).unwrap();
            let mut reader = log.assign(&topic, &all_partitions_from_zero()).unwrap();
            let before = collect_exactly(reader.as_mut(), 30, h.patience());
            drop(reader);

            let committed: Vec<i64> = ends.iter().map(|e| (*e).min(2)).collect();
            let mut member = log.subscribe(&topic, &group).unwrap();
            collect_exactly(member.as_mut(), 30, h.patience());
            let commits: Vec<(u32, i64)> = (0..PARTITIONS).zip(committed.iter().copied()).collect();
            member.commit(&commits).unwrap();
            (ends, before, committed)
        };

        let log = h.open();
        assert_eq!(log.partitions(&topic).unwrap(), PARTITIONS);
        assert_eq!(log.end_offsets(&topic).unwrap(), ends);
        let mut reader = log.assign(&topic, &all_partitions_from_zero()).unwrap();
        let after = collect_exactly(reader.as_mut(), 30, h.patience());
        assert_eq!(by_partition(&before), by_partition(&after));
        drop(reader);

        let mut member = log.subscribe(&topic, &group).unwrap();
        let expected: i64 = ends.iter().zip(&committed).map(|(e, c)| e - c).sum();
        let rest = collect_exactly(member.as_mut(), expected as usize, h.patience());
        assert_ranges(&rest, &committed, &ends);
        drop(member);

        log.append(&topic, b"k0", b"after restart").unwrap();
        log.flush(Duration::from_secs(30)).unwrap();
        let new_ends = log.end_offsets(&topic).unwrap();
        let grown: Vec<usize> = (0..PARTITIONS as usize)
            .filter(|p| new_ends[*p] != ends[*p])
            .collect();
        assert_eq!(grown.len(), 1, "{ends:?} -> {new_ends:?}");
        let p = grown[0];
        assert_eq!(new_ends[p], ends[p] + 1);
        let mut reader = log.assign(&topic, &[(p as u32, ends[p])]).unwrap();
        let got = collect_exactly(reader.as_mut(), 1, h.patience());
        assert_eq!(
            (got[0].offset, got[0].value.as_slice()),
            (ends[p], &b"after restart"[..])
        );
    }

    /// Keys and values are opaque bytes: zeros, high bytes, empty values,
    /// an empty key, long keys.
    pub fn binary_keys_and_empty_values(h: &mut dyn Harness) {
        let [topic] = <[String; 1]>::try_from(h.topics(&["binary"])).unwrap();
        let log = h.open();
        let mut sent: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (vec![0], vec![]),
            (vec![0, 0, 0], vec![0xff]),
            (vec![0xff, 0xfe, 0, 1], vec![]),
            (vec![0x80; 300], vec![0; 1000]),
            ((0..=255).collect(), b"\0\x01binary\xff".to_vec()),
            (b"plain".to_vec(), vec![]),
            (vec![], b"empty key".to_vec()),
        ];
        let second: Vec<(Vec<u8>, Vec<u8>)> = sent
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), vec![i as u8, 0, 0xff]))
            .collect();
        sent.extend(second);
        for (key, value) in &sent {
            log.append(&topic, key, value).unwrap();
        }
        log.flush(Duration::from_secs(30)).unwrap();

        let mut reader = log.assign(&topic, &all_partitions_from_zero()).unwrap();
        let records = collect_exactly(reader.as_mut(), sent.len(), h.patience());
        // Per key, the values in append order.
        let mut want: BTreeMap<&[u8], Vec<&[u8]>> = BTreeMap::new();
        for (k, v) in &sent {
            want.entry(k).or_default().push(v);
        }
        let mut got: BTreeMap<&[u8], Vec<&[u8]>> = BTreeMap::new();
        let mut partition_of: BTreeMap<&[u8], u32> = BTreeMap::new();
        let mut ordered = records.clone();
        ordered.sort_by_key(|r| (r.partition, r.offset));
        for r in &records {
            let p = *partition_of.entry(&r.key).or_insert(r.partition);
            assert_eq!(p, r.partition, "key {:?} on two partitions", r.key);
        }
        for r in &ordered {
            got.entry(&r.key).or_default().push(&r.value);
        }
        assert_eq!(got, want);
    }

    /// An idle poll waits about its timeout and returns nothing; a poll
    /// waiting when a record is appended returns it promptly.
    pub fn idle_then_live(h: &mut dyn Harness) {
        let [topic] = <[String; 1]>::try_from(h.topics(&["live"])).unwrap();
        let log = h.open();
        let starts: Vec<(u32, i64)> = log
            .end_offsets(&topic)
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(p, e)| (p as u32, e))
            .collect();
        let mut reader = log.assign(&topic, &starts).unwrap();

        let started = Instant::now();
        let idle = reader.poll(Duration::from_millis(700)).unwrap();
        let waited = started.elapsed();
        assert!(idle.is_empty());
        assert!(
            waited >= Duration::from_millis(650) && waited < Duration::from_secs(4),
            "an idle poll of 700ms took {waited:?}"
        );

        let appended_at = std::thread::scope(|s| {
            let appender = s.spawn(|| {
                std::thread::sleep(Duration::from_millis(300));
                let at = Instant::now();
                log.append(&topic, b"late", b"hello").unwrap();
                log.flush(Duration::from_secs(30)).unwrap();
                at
            });
            let deadline = Instant::now() + h.patience();
            let mut got = Vec::new();
            while got.is_empty() && Instant::now() < deadline {
                got = reader.poll(h.patience()).unwrap();
            }
            let returned = Instant::now();
            let appended_at = appender.join().unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(
                (got[0].key.as_slice(), got[0].value.as_slice()),
                (&b"late"[..], &b"hello"[..])
            );
            let latency = returned.saturating_duration_since(appended_at);
            eprintln!("{}: append -> poll latency {latency:?}", h.label());
            assert!(
                latency < h.max_latency(),
                "a waiting poll returned {latency:?} after the append"
            );
            appended_at
        });
        assert!(appended_at.elapsed() < h.patience() * 2);
        assert!(reader.poll(Duration::from_millis(200)).unwrap().is_empty());
    }

    /// Several readers wait on one topic at once (e.g. projector and
    /// processor in one process); one append wakes them all.
    pub fn concurrent_readers(h: &mut dyn Harness) {
        let [topic] = <[String; 1]>::try_from(h.topics(&["shared"])).unwrap();
        let log = h.open();
        let mut readers: Vec<Box<dyn Reader>> = vec![
            log.assign(&topic, &all_partitions_from_zero()).unwrap(),
            log.assign(&topic, &all_partitions_from_zero()).unwrap(),
            log.subscribe(&topic, &unique("shared-group")).unwrap(),
        ];
        std::thread::scope(|s| {
            let handles: Vec<_> = readers
                .iter_mut()
                .map(|reader| {
                    let patience = h.patience();
                    s.spawn(move || collect_exactly(reader.as_mut(), 3, patience))
                })
                .collect();
            std::thread::sleep(Duration::from_millis(300));
            for i in 0..3 {
                log.append(&topic, b"same key", format!("m{i}").as_bytes())
                    .unwrap();
            }
            log.flush(Duration::from_secs(30)).unwrap();
            for handle in handles {
                let got = handle.join().unwrap();
                let values: Vec<&[u8]> = got.iter().map(|r| r.value.as_slice()).collect();
                assert_eq!(values, vec![&b"m0"[..], b"m1", b"m2"]);
                assert_eq!(
                    got.iter().map(|r| r.offset).collect::<Vec<_>>(),
                    vec![0, 1, 2]
                );
            }
        });
    }

    /// More records than one poll returns: batches stay bounded and order
    /// holds across them.
    pub fn large_backlog(h: &mut dyn Harness) {
        let [topic] = <[String; 1]>::try_from(h.topics(&["backlog"])).unwrap();
        let log = h.open();
        for i in 0..2500u32 {
            log.append(&topic, b"one key", &i.to_be_bytes()).unwrap();
        }
        log.flush(Duration::from_secs(30)).unwrap();
        let mut reader = log.assign(&topic, &all_partitions_from_zero()).unwrap();
        let records = collect_exactly(reader.as_mut(), 2500, h.patience());
        let values: Vec<u32> = records
            .iter()
            .map(|r| u32::from_be_bytes(r.value.as_slice().try_into().unwrap()))
            .collect();
        assert_eq!(values, (0..2500).collect::<Vec<_>>());
        assert!(records.iter().all(|r| r.partition == records[0].partition));
    }

    /// A message far over a broker's default 1 MB limit travels (in parts
    /// where the backend has a limit) and is read back whole, in order with
    /// the small messages of its key, on its key's partition; a reader
    /// resumed from a record's `next` offset misses nothing.
    pub fn large_messages(h: &mut dyn Harness) {
        let [topic] = <[String; 1]>::try_from(h.topics(&["large"])).unwrap();
        let log = h.open();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let keys: Vec<String> = (0..6)
            .map(|k| format!("file:/org/users-{k}.yaml"))
            .collect();
        for key in &keys {
            log.append(&topic, key.as_bytes(), b"{\"first\":1}")
                .unwrap();
        }
        log.append(&topic, keys[0].as_bytes(), &big).unwrap();
        for key in &keys {
            log.append(&topic, key.as_bytes(), b"{\"last\":1}").unwrap();
        }
        log.flush(Duration::from_secs(60)).unwrap();

        let mut reader = log.assign(&topic, &all_partitions_from_zero()).unwrap();
        let records = collect_exactly(reader.as_mut(), 13, h.patience());
        let of_key: Vec<&Record> = records
            .iter()
            .filter(|r| r.key == keys[0].as_bytes())
            .collect();
        assert_eq!(of_key.len(), 3);
        assert_eq!(of_key[0].value, b"{\"first\":1}");
        assert!(of_key[1].value == big, "the large value came back changed");
        assert_eq!(of_key[2].value, b"{\"last\":1}");
        assert!(of_key.iter().all(|r| r.partition == of_key[0].partition));
        if let Some(p) = h.expected_partition(keys[0].as_bytes()) {
            assert_eq!(of_key[0].partition, p);
        }
        assert!(of_key[0].offset < of_key[1].offset && of_key[1].offset < of_key[2].offset);
        for r in &records {
            assert_eq!(r.next, r.offset + 1, "nothing is half read after {r:?}");
        }
        drop(reader);

        // Resuming where the first record of the key left off reads the
        // large message again, whole.
        let starts: Vec<(u32, i64)> = (0..PARTITIONS)
            .map(|p| {
                if p == of_key[0].partition {
                    (p, of_key[0].next)
                } else {
                    (p, log.end_offsets(&topic).unwrap()[p as usize])
                }
            })
            .collect();
        let after = records
            .iter()
            .filter(|r| r.partition == of_key[0].partition && r.offset > of_key[0].offset)
            .count();
        let mut reader = log.assign(&topic, &starts).unwrap();
        let again = collect_exactly(reader.as_mut(), after, h.patience());
        let again: Vec<&Record> = again
            .iter()
            .filter(|r| r.key == keys[0].as_bytes())
            .collect();
        assert_eq!(again.len(), 2);
        assert!(again[0].value == big);
        assert_eq!(again[1].value, b"{\"last\":1}");
    }

    /// Unknown topics are reported as such.
    pub fn unknown_topic(h: &mut dyn Harness) {
        h.topics(&["known"]);
        let log = h.open();
        let missing = unique("no-such-topic");
        let is_unknown = |r: eventlog::Result<()>| match r {
            Err(LogError::UnknownTopic(t)) => assert_eq!(t, missing),
            Err(e) => panic!("expected UnknownTopic, got {e}"),
            Ok(()) => panic!("{missing} exists"),
        };
        is_unknown(log.partitions(&missing).map(drop));
        is_unknown(log.end_offsets(&missing).map(drop));
        is_unknown(log.subscribe(&missing, "g").map(drop));
        is_unknown(log.assign(&missing, &[(0, 0)]).map(drop));
    }
}

macro_rules! conformance {
    ($backend:ident: $($check:ident),* $(,)?) => {
        mod $backend {
            $(
                #[test]
                fn $check() {
                    let Some(mut harness) = crate::backends::$backend() else { return };
                    let started = std::time::Instant::now();
                    crate::checks::$check(harness.as_mut());
                    eprintln!(
                        "{} {}: {:?}",
                        harness.label(),
                        stringify!($check),
                        started.elapsed()
                    );
                }
            )*
        }
    };
}

macro_rules! suite {
    ($($backend:ident),*) => {
        $(
            conformance!($backend:
                ordering,
                replay_and_resume,
                group_resume,
                restart,
                binary_keys_and_empty_values,
                idle_then_live,
                concurrent_readers,
                large_backlog,
                large_messages,
                unknown_topic,
            );
        )*
    };
}

suite!(memory, embedded, kafka_mock, kafka_broker);
